//! Coffer's ledger core: a pure, deterministic double-entry state machine in
//! TigerBeetle's model (accounts, transfers, two-phase transfers, linked chains,
//! balancing and closing transfers, per-event result codes).
//!
//! No I/O, no async, no database types: the store loads a [`State`], calls
//! [`create_accounts`] / [`create_transfers`] / [`expire_pending_transfers`], and writes
//! back the [`Changes`]. Everything about money correctness is decided here.

mod account;
mod apply;
pub mod audit;
pub mod chain;
mod flags;
mod hash;
mod result;
mod state;
mod transfer;

pub use account::{Account, AccountBalance};
pub use apply::{Prefetch, create_accounts, create_transfers, expire_pending_transfers, prefetch};
pub use flags::{AccountFlags, TransferFlags};
pub use hash::{IdBuildHasher, IdHasher, IdMap};
pub use result::{CreateAccountResult, CreateTransferResult};
pub use state::{Changes, State};
pub use transfer::{PendingStatus, Transfer};

/// The most events one batch (one request) may carry: TigerBeetle's batch size, so a
/// client written for it batches the same way.
pub const BATCH_EVENTS_MAX: usize = 8190;

/// The largest amount and balance. Coffer keeps amounts and balances within 63 bits so
/// that SQLite and PostgreSQL store them as native signed 64-bit integers and sum them
/// in SQL; TigerBeetle uses 128 bits. Going past it is an `overflows_*` result.
pub const AMOUNT_MAX: u64 = i64::MAX as u64;

/// Nanoseconds per second, for pending-transfer timeouts.
pub const NANOS_PER_SECOND: u64 = 1_000_000_000;
