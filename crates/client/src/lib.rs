//! A Rust client of Coffer's gRPC ledger, `coffer.v1.LedgerService`
//! (`proto/coffer/v1/ledger.proto`, docs/grpc.md; how to use this crate: docs/client.md).
//!
//! It speaks in the ledger's own types — [`ledger::Account`], [`ledger::Transfer`], their
//! flags and the per-event result codes — so a caller never handles 16-byte ids, flag
//! enums or result numbers. Modules:
//!
//! - [`client`]: [`Client`], one HTTP/2 connection with the admin key on every call and
//!   retries on `UNAVAILABLE` (the same request, the same ids) within the call's deadline;
//! - [`stream`]: [`TransferStream`], a `CreateTransfersStream` with a few batches in flight;
//! - [`batcher`]: [`Batcher`], which gathers single transfers submitted by many tasks
//!   into batches sent over one stream, each submitter getting its own transfer's result;
//! - [`retry`]: the bounded, jittered exponential backoff both use;
//! - [`error`]: [`Error`], which keeps the server's `google.rpc` details (the REST problem
//!   code and the invalid fields);
//! - `convert`: protobuf ⇄ ledger types, mirroring the server's mapping.
//!
//! Ids are idempotency keys: a transfer sent again (by a retry, or by a resent batch)
//! after the server committed it answers [`CreateTransferResult::Exists`], which this
//! client reports as it is.
//!
//! ```no_run
//! use coffer_client::{Account, AccountFlags, Batcher, BatcherOptions, Client, CreateTransferResult, Transfer};
//!
//! # async fn example() -> Result<(), coffer_client::Error> {
//! let client = Client::builder("http://127.0.0.1:9090", "the-admin-api-key").connect().await?;
//! let wallet = Account {
//!     id: 0x0193_a5c0_0000_7000_8000_0000_0000_0002,
//!     ledger: 840,
//!     code: 1,
//!     flags: AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS,
//!     ..Account::default()
//! };
//! let funding = Account { id: 0x0193_a5c0_0000_7000_8000_0000_0000_0001, ledger: 840, code: 1, ..Account::default() };
//! client.create_accounts(&[funding, wallet]).await?;
//! let top_up = Transfer {
//!     id: 0x0193_a5c0_0000_7000_8000_0000_0000_00a1,
//!     debit_account_id: funding.id,
//!     credit_account_id: wallet.id,
//!     amount: 1250,
//!     ledger: 840,
//!     code: 1,
//!     ..Transfer::default()
//! };
//! // One result per transfer; `exists` if an earlier attempt committed it.
//! assert!(client.create_transfers(&[top_up]).await?[0].is_success());
//!
//! // Many tasks, one transfer each, batched over one stream.
//! let batcher = Batcher::start(&client, BatcherOptions::default())?;
//! let result = batcher.submit(Transfer { id: 0x0193_a5c0_0000_7000_8000_0000_0000_00a2, amount: 50, ..top_up }).await?;
//! assert_eq!(result, CreateTransferResult::Ok);
//! # Ok(())
//! # }
//! ```

pub mod batcher;
pub mod client;
mod convert;
pub mod error;
pub mod retry;
pub mod stream;

pub use batcher::{Batcher, BatcherOptions, BatcherStats};
pub use client::{Client, ClientBuilder, HistoryQuery, Order, Page, Side};
pub use error::{Error, FieldViolation, Rejection};
pub use ledger::{
    Account, AccountBalance, AccountFlags, BATCH_EVENTS_MAX, CreateAccountResult, CreateTransferResult,
    Transfer, TransferFlags,
};
pub use retry::RetryPolicy;
pub use stream::{BatchAnswer, STREAM_BATCHES_IN_FLIGHT_MAX, TransferStream};

/// The generated messages and client stub of `proto/coffer/v1/ledger.proto`, for callers
/// that need a field this crate does not wrap.
pub mod proto {
    #![allow(missing_docs, missing_debug_implementations, clippy::all)]
    tonic::include_proto!("coffer.v1");
}
