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
