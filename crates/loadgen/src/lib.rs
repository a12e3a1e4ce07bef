//! Coffer's benchmark harness as a library, so that the binary (`main.rs`) and the CI
//! smoke test (`tests/smoke.rs`) run exactly the same code.
//!
//! [`run`] runs the selected scenarios against the ledger core in memory, against Coffer
//! over HTTP and gRPC (a child process it starts, or a running server), against the
//! commit pipeline in process, and against the per-request PostgreSQL baseline; it checks the ledger after every write scenario and
//! returns one [`report::Report`]. Modules:
//!
//! - `workload`: the accounts, their funding, and the transfer pairs of each shape;
//! - `latency`: bounded latency recording;
//! - `core`: the ledger core alone, in memory, one thread;
//! - `api`: the reqwest client for the ledger API (`batch`, setup, checks);
//! - `wire`: the light HTTP/1.1 client `single`, `reads` and `wallet` use by default;
//! - `commits`: what the server's commit pipeline did while measuring (from `/metrics`);
//! - `http`: the `batch`, `single` and `reads` scenarios and the checks after them;
//! - `grpc`: the `grpc-batch`, `grpc-single` and `grpc-stream` scenarios, through
//!   `coffer-client` (checked by `http`'s checks);
//! - `pipeline`: the `pipeline` scenario, the commit pipeline and store in process;
//! - `wallet`: the `wallet` scenario, its setup and its checks;
//! - `server`: Coffer as a child process (and the hidden `serve-coffer` side of it);
//! - `postgres`: scratch databases, created and dropped per scenario;
//! - `baseline`: one PostgreSQL transaction per transfer, no HTTP;
//! - `reports`: the `reports` scenario's history, its load, and the timed, checked
//!   monthly reports;
//! - `report`: the table.

pub mod api;
pub mod baseline;
pub mod commits;
pub mod core;
pub mod grpc;
pub mod http;
pub mod latency;
pub mod pipeline;
pub mod postgres;
pub mod report;
pub mod reports;
pub mod run;
pub mod server;
pub mod wallet;
pub mod wire;
pub mod workload;

pub use run::{Client, Options, Scenario, run};
