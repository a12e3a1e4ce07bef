//! Coffer's storage: one [`Store`] over SQLite (the embedded default) or PostgreSQL.
//!
//! Writes come in as batches of [`Command`]s from the commit pipeline. `commit` runs the
//! whole batch in one database transaction: load what the events refer to, apply them
//! with the pure ledger core, write the changes, commit. A transaction that fails is
//! re-run whole from the reads, never by replaying writes. Reads go straight to the
//! database.

use ledger::{Account, AccountBalance, CreateAccountResult, CreateTransferResult, Transfer};

/// One caller's request in a commit batch. Linked chains never span two commands.
#[derive(Clone, Debug)]
pub enum Command {
    CreateAccounts(Vec<Account>),
    CreateTransfers(Vec<Transfer>),
}

/// The per-event results of one [`Command`], in the order of its events.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Accounts(Vec<CreateAccountResult>),
    Transfers(Vec<CreateTransferResult>),
}

/// Which transfers of an account to list (TigerBeetle's `AccountFilter`).
#[derive(Clone, Copy, Debug)]
pub struct AccountFilter {
    pub account_id: u128,
    /// Inclusive lower bound on `timestamp`; zero means none.
    pub timestamp_min: u64,
    /// Inclusive upper bound on `timestamp`; zero means none.
    pub timestamp_max: u64,
    /// Rows to return at most (the caller caps it).
    pub limit: u32,
    /// Include transfers where the account is debited.
    pub debits: bool,
    /// Include transfers where the account is credited.
    pub credits: bool,
    /// Newest first when true, oldest first otherwise.
    pub reversed: bool,
}

/// A storage failure. Bad input never reaches here: it is a result code or a 4xx before.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error")]
    Database(#[from] sqlx::Error),
    #[error("migration failed")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("unsupported database url (expected sqlite:… or postgres://…)")]
    UnsupportedUrl,
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Connection settings that are not in the URL.
#[derive(Clone, Copy, Debug)]
pub struct StoreOptions {
    /// Connections to keep at most (readers included). Bounded so that many API nodes
    /// cannot exhaust the database's own connection limit.
    pub max_connections: u32,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self { max_connections: 16 }
    }
}

/// Which database is behind a [`Store`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The ledger store. Cheap to clone; clones share the connection pools.
#[derive(Clone, Debug)]
pub struct Store {
    _private: (),
}

impl Store {
    /// Opens `url` (`sqlite:PATH` creating the file, or `postgres://…`).
    pub async fn open(url: &str, options: StoreOptions) -> Result<Self> {
        let _ = (url, options);
        unimplemented!("store is being written")
    }
    pub fn backend(&self) -> Backend {
        unimplemented!("store is being written")
    }
    /// Runs the embedded migrations of this backend.
    pub async fn migrate(&self) -> Result<()> {
        unimplemented!("store is being written")
    }
    /// Applies a batch in one transaction; one [`Outcome`] per command, in order.
    pub async fn commit(&self, commands: &[Command]) -> Result<Vec<Outcome>> {
        let _ = commands;
        unimplemented!("store is being written")
    }
    /// Expires up to `limit` due pending transfers; returns how many expired.
    pub async fn expire_pending(&self, limit: usize) -> Result<usize> {
        let _ = limit;
        unimplemented!("store is being written")
    }
    pub async fn account(&self, id: u128) -> Result<Option<Account>> {
        let _ = id;
        unimplemented!("store is being written")
    }
    pub async fn transfer(&self, id: u128) -> Result<Option<Transfer>> {
        let _ = id;
        unimplemented!("store is being written")
    }
    pub async fn account_transfers(&self, filter: &AccountFilter) -> Result<Vec<Transfer>> {
        let _ = filter;
        unimplemented!("store is being written")
    }
    pub async fn account_balances(&self, filter: &AccountFilter) -> Result<Vec<AccountBalance>> {
        let _ = filter;
        unimplemented!("store is being written")
    }
    /// Checks that the database answers.
    pub async fn ping(&self) -> Result<()> {
        unimplemented!("store is being written")
    }
    /// Closes the pools, waiting for connections in use to be returned.
    pub async fn close(&self) {
        unimplemented!("store is being written")
    }
}
