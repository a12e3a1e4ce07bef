//! Coffer's storage: one [`Store`] over SQLite (the embedded default) or PostgreSQL.
//!
//! Writes come in as batches of [`Command`]s from the commit pipeline. `commit` runs the
//! whole batch in one database transaction: load what the events refer to, apply them
//! with the pure ledger core, write the changes, commit. A transaction that fails is
//! re-run whole from the reads, never by replaying writes. Reads go straight to the
//! database.
//!
//! Module map: `batch` holds the commit logic both backends share (and the retries),
//! `memory` what a ledger writer remembers between batches, `sqlite` and `postgres` hold
//! each backend's connections and SQL, `reads` the SQL of the shared read queries, `codec`
//! the conversions between ledger types and columns; `identity` the customers and refresh
//! tokens (SQL shared by both backends), `wallets` the wallets, idempotency keys and
//! operation history, `payments` card top-ups and withdrawals, `idempotency` the answers
//! of keyed requests written inside a batch, `outbox` the events written with each change,
//! `notifications` what the event consumers keep, `finance` categories, expenses, rules
//! and budgets, `scheduled` scheduled and recurring payments, `analytics` the read-side
//! projection of platform analytics, `bank` the bank connections and where their syncs
//! stand. The modules are private: their public names are re-exported here, listed per
//! module below.

mod analytics;
mod audit;
pub mod backup;
mod bank;
mod batch;
mod codec;
mod credit;
mod finance;
mod fx;
mod idempotency;
mod identity;
mod memory;
mod monitors;
mod notifications;
mod outbox;
mod payments;
mod postgres;
mod reads;
mod reconciliation;
mod scheduled;
mod sqlite;
mod wallets;

// The public API, by the module that defines it. Everything else in the modules is
// crate-private.
pub use analytics::{
    DailyCustomers, DailyVolume, ProjectedBalance, ProjectedEvent, ProjectedSpend, Projection,
};
pub use audit::{AUDIT_PAGE_MAX, Scanned, VERIFY_RUNS_PAGE_MAX, VerifyRunRow, WalletAccount};
pub use bank::{
    BANK_ACCOUNTS_PER_CONNECTION_MAX, BANK_CONNECTIONS_PER_CUSTOMER_MAX, BankAccountRow, BankConnectionRow,
    SyncOutcome,
};
pub use batch::now_ns;
pub use credit::{CREDIT_HISTORY_MAX, CreditConsentRow, CreditReportRow};
pub use finance::{
    BUDGETS_PER_CUSTOMER_MAX, BudgetRow, CATEGORIES_PER_CUSTOMER_MAX, CATEGORIES_SQL, CATEGORY_TOTALS_SQL,
    CategoryDayTotal, CategoryRow, CategoryTotal, EXPENSES_PAGE_MAX, ExpenseFilter, ExpenseRow,
    MerchantDayTotal, MerchantTotal, RULES_PER_CUSTOMER_MAX, RuleRow, SPENDS_MAX, Saved, merchant_totals_sql,
};
pub use fx::{FX_RATE_DAYS_MAX, FxCurrencyTotals, FxQuoteRow, FxRateRow};
pub use idempotency::{KeyedResponse, RenderResponseFn, ResponseDraft, StoredResponse};
pub use identity::{
    CreateCustomerError, Customer, CustomerRole, CustomerUpdate, KycStatus, NewCustomer, NewRefreshToken,
    Rotation, SESSIONS_LISTED_MAX, SessionRow,
};
pub use monitors::{MONITORS_PER_WALLET_MAX, MonitorCondition, MonitorRow};
pub use notifications::{
    AppliedEvent, Attempt, DeliveryRow, Effects, EmailRow, EmailStatusRow, NOTIFICATIONS_PAGE_MAX, NewEmail,
    NewNotification, NotificationRow, WebhookEndpoint,
};
pub use outbox::{EventDraft, NewEvent, OUTBOX_BATCH_MAX, Payload, RenderFn, StoredEvent};
pub use payments::{
    Finish, PaymentChange, PaymentKind, PaymentRow, PaymentStatus, PaymentsDraft, RenderPaymentsFn,
};
pub use reconciliation::{RECONCILIATIONS_PAGE_MAX, ReconciliationRow};
pub use scheduled::{
    RunRow, RunStatus, SCHEDULES_PER_CUSTOMER_MAX, ScheduleFrequency, ScheduleRow, ScheduleStatus, Step,
};
pub use wallets::{
    Begin, IdempotencyKey, NewWallet, OperationFilter, OperationRow, WALLETS_PER_CUSTOMER_MAX, WalletRow,
    WalletType,
};

use std::sync::Arc;
use std::time::Duration;

use ledger::{Account, AccountBalance, CreateAccountResult, CreateTransferResult, PendingStatus, Transfer};

use crate::postgres::PostgresStore;
use crate::sqlite::SqliteStore;

/// One caller's request in a commit batch. Linked chains never span two commands.
#[derive(Clone, Debug)]
pub enum Command {
    CreateAccounts(Vec<Account>),
    CreateTransfers(Vec<Transfer>),
    /// Transfers with notes: each note is written in the same transaction as its
    /// transfer, if and only if the transfer is created (`ok`), so what the wallet layer
    /// says about a transfer can never be lost or outlive it.
    /// Their events ([`EventDraft`]) likewise: written with a transfer this batch creates,
    /// never with a replay or a failure.
    /// With `response`, the request's answer is remembered under its idempotency key in
    /// the same transaction, rendered from the results ([`KeyedResponse`]); with
    /// `payments`, the top-up or withdrawal the transfers belong to is recorded or
    /// finished there too ([`PaymentsDraft`]). A command may hold no transfers at all (a
    /// payment recorded before its provider is called, or declined).
    CreateTransfersWithNotes {
        transfers: Vec<Transfer>,
        notes: Vec<TransferNote>,
        events: Vec<EventDraft>,
        response: Option<KeyedResponse>,
        payments: Option<PaymentsDraft>,
    },
    /// Remembers a keyed request's answer that needed no ledger work (a refusal decided
    /// before it), so that a retry under the same key gets the same answer.
    RecordResponse(KeyedResponse),
}

impl Command {
    /// The number of ledger events in the command (notes ride along).
    pub fn events(&self) -> usize {
        match self {
            Self::CreateAccounts(events) => events.len(),
            Self::CreateTransfers(events) | Self::CreateTransfersWithNotes { transfers: events, .. } => {
                events.len()
            }
            Self::RecordResponse(_) => 0,
        }
    }
}

/// What the wallet layer records about one ledger transfer: the kind of operation it is
/// part of and a description.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransferNote {
    pub transfer_id: u128,
    pub kind: NoteKind,
    pub description: Option<String>,
}

/// The kind of operation a ledger transfer is part of, stored as its name in
/// `transfer_notes.kind` (and carried as the `operation` of transfer events).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NoteKind {
    /// Between two wallets.
    Transfer,
    /// A card top-up.
    TopUp,
    /// A payout to a bank account (its hold, then its posting).
    Withdrawal,
    Fee,
    /// An admin's reversal of a transfer.
    Reversal,
    /// A payment to a merchant from a wallet.
    Payment,
    /// A credit card wallet's line being opened.
    CreditLine,
    /// A currency conversion's legs: from the sell wallet, and into the buy wallet.
    Conversion,
}

impl NoteKind {
    pub const ALL: [Self; 8] = [
        Self::Transfer,
        Self::TopUp,
        Self::Withdrawal,
        Self::Fee,
        Self::Reversal,
        Self::Payment,
        Self::CreditLine,
        Self::Conversion,
    ];

    /// Its stored name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Transfer => "transfer",
            Self::TopUp => "top_up",
            Self::Withdrawal => "withdrawal",
            Self::Fee => "fee",
            Self::Reversal => "reversal",
            Self::Payment => "payment",
            Self::CreditLine => "credit_line",
            Self::Conversion => "conversion",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == name)
    }

    /// A stored name read back; anything else is a corrupt row.
    pub(crate) fn decode(name: &str) -> Result<Self> {
        Self::parse(name).ok_or_else(|| StoreError::Corrupt(format!("unknown note kind {name}")))
    }
}

/// The per-event results of one [`Command`], in the order of its events.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The results of a [`Command::CreateAccounts`].
    Accounts(Vec<CreateAccountResult>),
    /// The results of a [`Command::CreateTransfers`].
    Transfers(Vec<CreateTransferResult>),
    /// The outcome of a [`Command::CreateTransfersWithNotes`].
    Noted(Noted),
    /// A [`Command::RecordResponse`] was written (or the key had its answer already).
    Recorded,
}

/// What a [`Command::CreateTransfersWithNotes`] did: the per-event results and, per event,
/// the timestamp of the transfer it names (zero where it created and found nothing), so
/// the caller answers without reading the transfer back; and the answer remembered under
/// the request's idempotency key, if it gave one and an answer was rendered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Noted {
    pub results: Vec<CreateTransferResult>,
    pub timestamps: Vec<u64>,
    pub response: Option<StoredResponse>,
}

/// Which transfers of an account to list (TigerBeetle's `AccountFilter`).
#[derive(Clone, Copy, Debug)]
pub struct AccountFilter {
    /// The account whose transfers or balances to list.
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
    /// The database failed (or failed transiently more often than the store retries).
    #[error("database error")]
    Database(#[from] sqlx::Error),
    /// The embedded ledger writer's connection failed.
    #[error("database error")]
    Embedded(#[source] rusqlite::Error),
    /// The store was closed: it takes no more writes.
    #[error("the store is closed")]
    Closed,
    /// Making a batch durable failed (an fsync error): the batch may or may not survive a
    /// crash, and the store takes no more ledger writes until it is restarted.
    #[error("the database could not make a write durable; restart to recover")]
    Durability,
    /// The embedded migrations could not be applied.
    #[error("migration failed")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The URL names neither `sqlite:PATH` nor `postgres://…` / `postgresql://…`.
    #[error("unsupported database url (expected sqlite:… or postgres://…)")]
    UnsupportedUrl,
    /// A stored value is out of its domain (a negative balance, an unknown flag bit…).
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// A bounded query would have answered short.
    #[error("{0}")]
    LimitReached(&'static str),
    /// The read replica's URL names a database that is not in recovery (not a replica).
    #[error("the read database is not a replica of the primary")]
    NotAReplica,
}

/// The store's result type.
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
    /// An embedded SQLite file (the default).
    Sqlite,
    /// A PostgreSQL server, possibly shared by several coffer processes.
    Postgres,
}

/// A committed batch on its way to being durable (see [`Store::commit_staged`]).
#[derive(Debug)]
pub struct Durable {
    inner: DurableInner,
    count: usize,
}

#[derive(Debug)]
enum DurableInner {
    Ready(Result<Vec<Outcome>>),
    Syncing(sqlite::Syncing),
}

impl Durable {
    /// The batch's outcomes, one per command, once it is durable; or why it failed.
    pub async fn outcomes(self) -> Result<Vec<Outcome>> {
        let outcomes = match self.inner {
            DurableInner::Ready(outcomes) => outcomes?,
            DurableInner::Syncing(syncing) => syncing.output().await?.outcomes,
        };
        assert_eq!(outcomes.len(), self.count, "one outcome per command");
        Ok(outcomes)
    }
}

/// The ledger store. Cheap to clone; clones share the connection pools.
#[derive(Clone, Debug)]
pub struct Store {
    inner: Arc<Inner>,
}

/// The backend behind a [`Store`]. An enum rather than a trait object: there are exactly
/// two, and both run the same batch logic (`batch::run`) over their own `LedgerTx`.
#[derive(Debug)]
enum Inner {
    Sqlite(SqliteStore),
    Postgres(PostgresStore),
}

/// Calls the same method on whichever backend is behind the store.
macro_rules! dispatch {
    ($store:expr, $backend:ident => $call:expr) => {
        match &*$store.inner {
            Inner::Sqlite($backend) => $call,
            Inner::Postgres($backend) => $call,
        }
    };
}

/// Rows per multi-row statement (an event consumer's batch, an `IN` list): one statement
/// per table and batch instead of one per row (each a round trip to the database), with
/// the binds (at most ~10 per row) far below either backend's limit.
pub(crate) const ROWS_PER_STATEMENT: usize = 256;

/// `template` (a row of `$` placeholders) repeated `rows` times, comma-separated, with the
/// placeholders numbered `$1`, `$2`, … in order: `numbered("$", 3)` is `$1, $2, $3`, an
/// `IN` list; `numbered("($, $)", 2)` is `($1, $2), ($3, $4)`, rows of a `VALUES`.
pub(crate) fn numbered(template: &str, rows: usize) -> String {
    let mut text = String::with_capacity((template.len() + 8) * rows);
    let mut next = 1;
    for row in 0..rows {
        if row > 0 {
            text.push_str(", ");
        }
        for character in template.chars() {
            if character == '$' {
                text.push_str(&format!("${next}"));
                next += 1;
            } else {
                text.push(character);
            }
        }
    }
    text
}

/// Runs `$body` with `$pool` bound to the backend's pool for reads (`read`), for reads a
/// read replica may serve (`replica`: on PostgreSQL with a replica, see
/// `PostgresStore::reader`; otherwise as `read`) or for writes outside ledger batches
/// (`write`; on SQLite while holding the turn to write, see `SqliteStore::write_turn`), and `$sql` bound to a function that adapts SQL
/// written once with `$n` placeholders to the backend. The body is compiled once per
/// backend, so the same query code serves both.
macro_rules! with_pool {
    ($store:expr, $kind:ident, |$pool:ident, $sql:ident| $body:expr) => {
        match &*$store.inner {
            $crate::Inner::Sqlite(backend) => {
                let _turn = with_pool!(@turn backend, $kind);
                let $pool = with_pool!(@sqlite backend, $kind);
                let $sql = |text: &str| sqlx::AssertSqlSafe(crate::sqlite::sqlite_placeholders(text));
                $body
            }
            $crate::Inner::Postgres(backend) => {
                let $pool = &with_pool!(@postgres backend, $kind);
                let $sql = |text: &str| sqlx::AssertSqlSafe(text.to_owned());
                $body
            }
        }
    };
    (@postgres $backend:ident, replica) => { $backend.reader().await };
    (@postgres $backend:ident, $kind:ident) => { $backend.pool().clone() };
    (@sqlite $backend:ident, replica) => { $backend.readers() };
    (@sqlite $backend:ident, read) => { $backend.readers() };
    (@sqlite $backend:ident, write) => { $backend.writer() };
    (@turn $backend:ident, read) => { () };
    (@turn $backend:ident, replica) => { () };
    (@turn $backend:ident, write) => { $backend.write_turn().await };
}
pub(crate) use with_pool;

/// Opens a write transaction outside ledger batches on the pool [`with_pool!`] binds for
/// `write`. On SQLite it is `BEGIN IMMEDIATE`, taking the write lock first: the ledger
/// batches run on another connection (the embedded writer thread), and a deferred
/// transaction that read before writing would fail at once (`SQLITE_BUSY_SNAPSHOT`) if a
/// batch committed in between, instead of waiting for the lock.
pub(crate) trait BeginWrite {
    type Database: sqlx::Database;

    fn begin_write(
        &self,
    ) -> impl std::future::Future<Output = sqlx::Result<sqlx::Transaction<'static, Self::Database>>> + Send;
}

impl BeginWrite for sqlx::SqlitePool {
    type Database = sqlx::Sqlite;

    fn begin_write(
        &self,
    ) -> impl std::future::Future<Output = sqlx::Result<sqlx::Transaction<'static, sqlx::Sqlite>>> + Send
    {
        self.begin_with("BEGIN IMMEDIATE")
    }
}

impl BeginWrite for sqlx::PgPool {
    type Database = sqlx::Postgres;

    fn begin_write(
        &self,
    ) -> impl std::future::Future<Output = sqlx::Result<sqlx::Transaction<'static, sqlx::Postgres>>> + Send
    {
        self.begin()
    }
}

impl Store {
    /// Opens `url` (`sqlite:PATH` creating the file, or `postgres://…`).
    ///
    /// Does not migrate: call [`Store::migrate`] (the service does at startup).
    pub async fn open(url: &str, options: StoreOptions) -> Result<Self> {
        let inner = if url.starts_with("sqlite:") {
            Inner::Sqlite(SqliteStore::open(url, options).await?)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Inner::Postgres(PostgresStore::open(url, options).await?)
        } else {
            return Err(StoreError::UnsupportedUrl);
        };
        Ok(Self { inner: Arc::new(inner) })
    }

    /// Serves the reads that may lag a little (history, reports, analytics, ledger
    /// lookups) from `url`, a streaming replica of this PostgreSQL database, each once the
    /// replica has replayed every commit acknowledged before the read began (waiting at
    /// most `max_wait`, else reading from the primary). Call before the store is shared.
    pub fn with_read_replica(mut self, url: &str, max_connections: u32, max_wait: Duration) -> Result<Self> {
        match Arc::get_mut(&mut self.inner) {
            Some(Inner::Postgres(backend)) => backend.add_replica(url, max_connections, max_wait)?,
            Some(Inner::Sqlite(_)) => return Err(StoreError::UnsupportedUrl),
            None => panic!("with_read_replica is called on a store before it is shared"),
        }
        Ok(self)
    }

    /// Which database this store runs on.
    pub fn backend(&self) -> Backend {
        match &*self.inner {
            Inner::Sqlite(_) => Backend::Sqlite,
            Inner::Postgres(_) => Backend::Postgres,
        }
    }

    /// Runs the embedded migrations of this backend.
    pub async fn migrate(&self) -> Result<()> {
        dispatch!(self, backend => backend.migrate().await)
    }

    /// Applies a batch in one transaction; one [`Outcome`] per command, in order.
    ///
    /// Each command is its own linked scope and sees the effects of the commands before
    /// it. The batch also expires up to a bounded number of due pending transfers first,
    /// so that a post or void never races an expiry that is already due.
    pub async fn commit(&self, commands: &[Command]) -> Result<Vec<Outcome>> {
        self.commit_staged(commands).await.outcomes().await
    }

    /// [`Store::commit`] in two steps, for a pipeline that overlaps batches: returns once
    /// the batch's transaction is over, with what resolves once it is durable
    /// ([`Durable::outcomes`]). On SQLite the next batch can be applied meanwhile (the
    /// embedded writer syncs in the background); on PostgreSQL the commit is the sync, and
    /// the outcomes are ready at once.
    pub async fn commit_staged(&self, commands: &[Command]) -> Durable {
        let count = commands.len();
        let inner = if commands.is_empty() {
            DurableInner::Ready(Ok(Vec::new()))
        } else {
            match &*self.inner {
                Inner::Sqlite(backend) => {
                    DurableInner::Syncing(backend.commit_staged(commands, batch::COMMIT_EXPIRIES_MAX).await)
                }
                Inner::Postgres(backend) => DurableInner::Ready(
                    backend.commit(commands, batch::COMMIT_EXPIRIES_MAX).await.map(|output| output.outcomes),
                ),
            }
        };
        Durable { inner, count }
    }

    /// Expires up to `limit` due pending transfers; returns how many expired.
    pub async fn expire_pending(&self, limit: usize) -> Result<usize> {
        if limit == 0 {
            return Ok(0);
        }
        let output = dispatch!(self, backend => backend.commit(&[], limit).await)?;
        Ok(output.expired)
    }

    /// The account `id`, if it exists.
    pub async fn account(&self, id: u128) -> Result<Option<Account>> {
        Ok(self.accounts(&[id]).await?.pop())
    }

    /// The accounts among `ids` that exist, in id order.
    pub async fn accounts(&self, ids: &[u128]) -> Result<Vec<Account>> {
        let mut ids = ids.to_vec();
        ids.sort_unstable();
        ids.dedup();
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut accounts = dispatch!(self, backend => backend.accounts(&ids).await)?;
        accounts.sort_unstable_by_key(|account| account.id);
        Ok(accounts)
    }

    /// The transfer `id`, if it exists.
    pub async fn transfer(&self, id: u128) -> Result<Option<Transfer>> {
        let transfers = dispatch!(self, backend => backend.transfers(&[id]).await)?;
        Ok(transfers.into_iter().next().map(|(transfer, _)| transfer))
    }

    /// The transfers among `ids` that exist, in id order.
    pub async fn transfers(&self, ids: &[u128]) -> Result<Vec<Transfer>> {
        let mut ids = ids.to_vec();
        ids.sort_unstable();
        ids.dedup();
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let transfers = dispatch!(self, backend => backend.transfers(&ids).await)?;
        let mut transfers: Vec<Transfer> = transfers.into_iter().map(|(transfer, _)| transfer).collect();
        transfers.sort_unstable_by_key(|transfer| transfer.id);
        Ok(transfers)
    }

    /// The transfers committed just before (`before`: newest first) or just after (oldest
    /// first) the ledger timestamp `timestamp`, at most `limit`: a transfer's neighbours
    /// in commit order, where the rest of a linked chain is.
    pub async fn transfers_next_to(&self, timestamp: u64, before: bool, limit: u32) -> Result<Vec<Transfer>> {
        let statement = if before {
            format!(
                "SELECT {} FROM transfers t WHERE t.timestamp < $1 ORDER BY t.timestamp DESC LIMIT $2",
                codec::TRANSFER_COLUMNS_T
            )
        } else {
            format!(
                "SELECT {} FROM transfers t WHERE t.timestamp > $1 ORDER BY t.timestamp LIMIT $2",
                codec::TRANSFER_COLUMNS_T
            )
        };
        let timestamp = i64::try_from(timestamp).unwrap_or(i64::MAX);
        let rows: Vec<codec::TransferRow> = with_pool!(self, read, |pool, sql| {
            sqlx::query_as(sql(&statement)).bind(timestamp).bind(i64::from(limit)).fetch_all(pool).await?
        });
        rows.into_iter().map(codec::TransferRow::transfer).collect()
    }

    /// Where the pending transfer `id` stands; `None` when there is no such transfer or it
    /// is not a pending transfer.
    pub async fn pending_status(&self, id: u128) -> Result<Option<PendingStatus>> {
        let transfers = dispatch!(self, backend => backend.transfers(&[id]).await)?;
        Ok(transfers.into_iter().next().and_then(|(_, status)| status))
    }

    /// The account's transfers that match `filter`, in timestamp order.
    pub async fn account_transfers(&self, filter: &AccountFilter) -> Result<Vec<Transfer>> {
        dispatch!(self, backend => backend.account_transfers(filter).await)
    }

    /// The account's balance history (accounts with the `history` flag) that matches
    /// `filter`, in timestamp order.
    pub async fn account_balances(&self, filter: &AccountFilter) -> Result<Vec<AccountBalance>> {
        dispatch!(self, backend => backend.account_balances(filter).await)
    }

    /// How many transfers are stored (for tests, metrics and the benchmark).
    pub async fn transfers_count(&self) -> Result<u64> {
        dispatch!(self, backend => backend.transfers_count().await)
    }

    /// Checks that the database answers.
    pub async fn ping(&self) -> Result<()> {
        dispatch!(self, backend => backend.ping().await)
    }

    /// Closes the pools, waiting for connections in use to be returned.
    pub async fn close(&self) {
        dispatch!(self, backend => backend.close().await)
    }
}

#[cfg(test)]
mod numbered_tests {
    #[test]
    fn placeholders_are_numbered_across_rows() {
        assert_eq!(super::numbered("$", 3), "$1, $2, $3");
        assert_eq!(super::numbered("($, 'x', $)", 2), "($1, 'x', $2), ($3, 'x', $4)");
        assert_eq!(super::numbered("($)", 0), "");
    }
}

#[cfg(test)]
mod note_kind_tests {
    use super::{NoteKind, StoreError};

    #[test]
    fn every_note_kind_reads_back_and_nothing_else_does() {
        for kind in NoteKind::ALL {
            assert_eq!(NoteKind::decode(kind.as_str()).unwrap(), kind);
        }
        assert!(matches!(NoteKind::decode("refund"), Err(StoreError::Corrupt(_))));
        assert_eq!(NoteKind::parse("Transfer"), None);
    }
}
