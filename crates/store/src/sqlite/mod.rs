//! The SQLite adapter: the embedded default, one file in WAL mode.
//!
//! Every ledger batch runs on the embedded ledger writer ([`writer`]): a thread of its own
//! with a synchronous connection, each batch in `BEGIN IMMEDIATE` so that the write lock
//! is taken before the reads that decide the batch: no other writer can slip in between
//! read and write, and a busy database fails (and is retried) at `BEGIN`, not half-way
//! through. The few writes outside ledger batches (customers, wallets' rows, the
//! consumers' tables) go through an async pool of one connection, also with
//! `BEGIN IMMEDIATE` ([`crate::BeginWrite`]). The two take turns through one fair lock in
//! the process ([`SqliteStore::write_turn`]), so neither polls SQLite's file lock; the
//! busy timeout remains for another process holding the file. Reads run on a separate
//! bounded pool of `query_only` connections, which WAL lets proceed while a writer writes.
//!
//! Durability: `synchronous = FULL`. In WAL mode, `NORMAL` would fsync only at
//! checkpoints, so a commit acknowledged to a client could vanish on power loss; a ledger
//! must not acknowledge what it may forget. Group commit amortises the fsync over a whole
//! batch, which is what makes `FULL` affordable.
//!
//! Checkpoints (copying the WAL back into the database file, with its own fsync) run on a
//! background connection every [`CHECKPOINT_INTERVAL_MS`], not inside a commit: a commit
//! that crossed SQLite's automatic threshold used to pay for the whole copy, a latency
//! spike for every request in its batch. The writer's own automatic checkpoint stays as a
//! backstop that bounds the WAL if the background one cannot keep up.

use std::str::FromStr as _;
use std::time::Duration;

use ledger::{Account, AccountBalance, PendingStatus, Transfer};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{AssertSqlSafe, Sqlite, SqliteConnection};

use crate::batch::BatchOutput;
use crate::codec::{ACCOUNT_COLUMNS, AccountRow, TRANSFER_COLUMNS_T, TransferRow, uuid};
use crate::{AccountFilter, Command, Result, StoreError, StoreOptions, reads};

/// How long a connection waits for another process's lock on the file before SQLite
/// reports `SQLITE_BUSY`. Within one process the writer pool already serialises writers;
/// this covers a second process (say, `coffer migrate`) briefly holding the file.
pub(crate) const BUSY_TIMEOUT_MS: u64 = 5_000;

mod writer;

use writer::LedgerWriter;
pub(crate) use writer::Syncing;

/// SQLite's default limit on bound variables per statement (`SQLITE_MAX_VARIABLE_NUMBER`
/// since 3.32). Multi-row statements stay under it.
const BIND_VARIABLES_MAX: usize = 32_766;

/// Ids per `WHERE id IN (…)` lookup. A fixed size (the last chunk is padded by repeating
/// an id) keeps the statement text constant, so it is prepared once and then cached.
const IN_LIST_IDS: usize = 1_000;

const _: () = assert!(IN_LIST_IDS <= BIND_VARIABLES_MAX);

#[cfg(test)]
mod in_list_tests {
    #[test]
    fn lists_are_padded_to_the_next_fixed_size() {
        use super::in_list_size;
        assert_eq!([1, 2, 8, 9, 64, 65, 1_000].map(in_list_size), [1, 8, 8, 64, 64, 1_000, 1_000]);
    }
}

/// Prepared statements kept per async connection: the reads (with their padded `IN`
/// lists) and the writes outside ledger batches, with room to spare.
const STATEMENT_CACHE_CAPACITY: usize = 256;

/// Page cache of the ledger writer's connection, in KiB. A batch of 8,190 transfers touches
/// thousands of random B-tree pages (ids are random); with SQLite's default 2 MiB the
/// writer re-reads and spills pages mid-transaction. 64 MiB holds a batch's working set
/// for ledgers of a few million rows and stays well inside the service's memory budget.
pub(crate) const WRITER_CACHE_SIZE_KIB: u32 = 64 * 1024;

/// WAL pages after which the committing connection checkpoints by itself: only a backstop
/// (the background checkpointer normally keeps the WAL far smaller), bounding the WAL file
/// to 1 GiB (4 KiB pages) when readers or load keep the checkpointer from catching up.
pub(crate) const WAL_AUTOCHECKPOINT_PAGES: u32 = 262_144;

/// How often the background checkpointer copies committed WAL pages into the database
/// file. A checkpoint with nothing new to copy costs a few syscalls; a fifth of a second
/// keeps the WAL to the pages of a few batches.
const CHECKPOINT_INTERVAL_MS: u64 = 200;

/// The SQLite store: a writer pool of one connection, a pool of readers, and the
/// background checkpointer (stopped when the store is dropped or closed).
#[derive(Debug)]
pub(crate) struct SqliteStore {
    pub(crate) writer: SqlitePool,
    pub(crate) readers: SqlitePool,
    /// The thread that runs every ledger batch ([`writer`]).
    ledger: LedgerWriter,
    /// Whose turn it is to write: the ledger writer thread and the async writer take it
    /// for each transaction, first come first served, so neither waits on SQLite's lock
    /// (whose busy handler polls) and neither starves the other.
    turn: std::sync::Arc<tokio::sync::Mutex<()>>,
    checkpointer: std::sync::Mutex<Option<tokio::sync::oneshot::Sender<()>>>,
}

/// Runs `PRAGMA wal_checkpoint(PASSIVE)` on its own connection every
/// [`CHECKPOINT_INTERVAL_MS`] until `stop` fires or is dropped. PASSIVE never waits for
/// the writer or the readers: it copies what it can and leaves the rest for next time.
fn spawn_checkpointer(connection: SqlitePool) -> tokio::sync::oneshot::Sender<()> {
    let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(CHECKPOINT_INTERVAL_MS));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = &mut stopped => break,
                _ = tick.tick() => {
                    if let Err(error) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)").execute(&connection).await {
                        tracing::warn!(%error, "background WAL checkpoint failed; will retry");
                    }
                }
            }
        }
        connection.close().await;
    });
    stop
}

/// The file path in `sqlite:PATH` or `sqlite://PATH` (query parameters are not supported).
fn path_of(url: &str) -> Option<&str> {
    let path = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:"))?;
    // The writer and the readers are separate connections: an in-memory database would
    // give each its own empty database.
    let usable = !path.is_empty() && !path.contains('?') && !path.contains(":memory:");
    usable.then_some(path)
}

impl SqliteStore {
    pub(crate) async fn open(url: &str, options: StoreOptions) -> Result<Self> {
        let path = path_of(url).ok_or(StoreError::UnsupportedUrl)?;
        if let Some(parent) = std::path::Path::new(path).parent().filter(|p| !p.as_os_str().is_empty()) {
            tokio::fs::create_dir_all(parent).await.map_err(|error| StoreError::Database(error.into()))?;
        }
        let base = SqliteConnectOptions::from_str("sqlite:")?
            .filename(path)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_millis(BUSY_TIMEOUT_MS))
            .statement_cache_capacity(STATEMENT_CACHE_CAPACITY);
        let writer_options = base
            .clone()
            .create_if_missing(true)
            .pragma("wal_autocheckpoint", WAL_AUTOCHECKPOINT_PAGES.to_string())
            // Statement journals of multi-row writes stay in memory, not in temp files.
            .pragma("temp_store", "MEMORY");
        // No ping before each use (`test_before_acquire`): a SQLite connection is a file
        // handle in this process, not a socket that can silently die, and the ping was a
        // round trip to the connection's thread on every acquire.
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .test_before_acquire(false)
            .connect_with(writer_options)
            .await?;
        // One connection of the budget is the writer's; readers get the rest (at least one).
        let readers_max = options.max_connections.saturating_sub(1).max(1);
        let readers = SqlitePoolOptions::new()
            .max_connections(readers_max)
            .test_before_acquire(false)
            .connect_with(base.clone().pragma("query_only", "ON"))
            .await?;
        let checkpoint_connection =
            SqlitePoolOptions::new().max_connections(1).test_before_acquire(false).connect_with(base).await?;
        let checkpointer = std::sync::Mutex::new(Some(spawn_checkpointer(checkpoint_connection)));
        let turn = std::sync::Arc::new(tokio::sync::Mutex::new(()));
        let ledger = LedgerWriter::start(std::path::Path::new(path), turn.clone())?;
        Ok(Self { writer, readers, ledger, turn, checkpointer })
    }

    /// The read pool (`query_only` connections).
    pub(crate) fn readers(&self) -> &SqlitePool {
        &self.readers
    }

    /// The single writer connection, for the writes outside ledger batches (take
    /// [`SqliteStore::write_turn`] first).
    pub(crate) fn writer(&self) -> &SqlitePool {
        &self.writer
    }

    /// Waits for this process's turn to write (fair, in arrival order with the ledger
    /// writer's batches) and holds it until the guard is dropped.
    pub(crate) async fn write_turn(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.turn.lock().await
    }

    pub(crate) async fn migrate(&self) -> Result<()> {
        sqlx::migrate!("./migrations/sqlite").run(&self.writer).await?;
        Ok(())
    }

    pub(crate) async fn commit(&self, commands: &[Command], expire_limit: usize) -> Result<BatchOutput> {
        self.ledger.commit(commands, expire_limit).await
    }

    pub(crate) async fn commit_staged(&self, commands: &[Command], expire_limit: usize) -> writer::Syncing {
        self.ledger.commit_staged(commands, expire_limit).await
    }

    pub(crate) async fn accounts(&self, ids: &[u128]) -> Result<Vec<Account>> {
        let mut connection = self.readers.acquire().await?;
        select_accounts(&mut connection, ids).await
    }

    pub(crate) async fn transfers(&self, ids: &[u128]) -> Result<Vec<(Transfer, Option<PendingStatus>)>> {
        let mut connection = self.readers.acquire().await?;
        select_transfers(&mut connection, ids).await
    }

    pub(crate) async fn account_transfers(&self, filter: &AccountFilter) -> Result<Vec<Transfer>> {
        let Some(bounds) = reads::bounds(filter) else { return Ok(Vec::new()) };
        let sql = sqlite_placeholders(&reads::account_transfers(filter));
        let rows: Vec<TransferRow> = sqlx::query_as(AssertSqlSafe(sql))
            .bind(uuid(filter.account_id))
            .bind(bounds.timestamp_min)
            .bind(bounds.timestamp_max)
            .bind(bounds.limit)
            .fetch_all(&self.readers)
            .await?;
        rows.into_iter().map(TransferRow::transfer).collect()
    }

    pub(crate) async fn account_balances(&self, filter: &AccountFilter) -> Result<Vec<AccountBalance>> {
        let Some(bounds) = reads::bounds(filter) else { return Ok(Vec::new()) };
        let sql = sqlite_placeholders(&reads::account_balances(filter));
        let rows: Vec<crate::codec::BalanceRow> = sqlx::query_as(AssertSqlSafe(sql))
            .bind(uuid(filter.account_id))
            .bind(bounds.timestamp_min)
            .bind(bounds.timestamp_max)
            .bind(bounds.limit)
            .fetch_all(&self.readers)
            .await?;
        rows.into_iter().map(AccountBalance::try_from).collect()
    }

    pub(crate) async fn transfers_count(&self) -> Result<u64> {
        let count: i64 =
            sqlx::query_scalar("SELECT count(*) FROM transfers").fetch_one(&self.readers).await?;
        u64::try_from(count).map_err(|_| StoreError::Corrupt(format!("negative count {count}")))
    }

    pub(crate) async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.readers).await?;
        Ok(())
    }

    pub(crate) async fn close(&self) {
        if let Some(stop) = self.checkpointer.lock().expect("not poisoned").take() {
            let _ = stop.send(());
        }
        self.ledger.close();
        self.writer.close().await;
        self.readers.close().await;
    }
}

/// SQLite reads `?n` as "the n-th bound value", which is what `$n` means to PostgreSQL.
pub(crate) fn sqlite_placeholders(sql: &str) -> String {
    sql.replace('$', "?")
}

/// The sizes an id list is padded to. A few fixed sizes keep the statement texts — and
/// so the prepared-statement cache — few, while a single lookup (a balance read) binds
/// one id rather than a thousand: padding every list to 1,000 made reads ~50x dearer.
const IN_LIST_SIZES: [usize; 4] = [1, 8, 64, IN_LIST_IDS];

/// The padded size for a chunk of `len` ids.
fn in_list_size(len: usize) -> usize {
    IN_LIST_SIZES.into_iter().find(|size| *size >= len).unwrap_or(IN_LIST_IDS)
}

/// `SELECT … WHERE <column> IN (?, …)` with `size` placeholders.
fn in_list_sql(prefix: &str, size: usize) -> String {
    let placeholders = vec!["?"; size].join(", ");
    format!("{prefix} IN ({placeholders})")
}

/// Binds one chunk of ids, padding it to its list size with its last id.
fn bind_chunk<'q, O>(
    mut query: sqlx::query::QueryAs<'q, Sqlite, O, sqlx::sqlite::SqliteArguments>,
    chunk: &[u128],
) -> sqlx::query::QueryAs<'q, Sqlite, O, sqlx::sqlite::SqliteArguments> {
    let last = *chunk.last().expect("chunks are never empty");
    for index in 0..in_list_size(chunk.len()) {
        query = query.bind(uuid(chunk.get(index).copied().unwrap_or(last)));
    }
    query
}

async fn select_accounts(connection: &mut SqliteConnection, ids: &[u128]) -> Result<Vec<Account>> {
    let prefix = format!("SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE id");
    let mut accounts = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(IN_LIST_IDS) {
        let sql = in_list_sql(&prefix, in_list_size(chunk.len()));
        let query = bind_chunk(sqlx::query_as::<_, AccountRow>(AssertSqlSafe(sql)), chunk);
        for row in query.fetch_all(&mut *connection).await? {
            accounts.push(Account::try_from(row)?);
        }
    }
    Ok(accounts)
}

async fn select_transfers(
    connection: &mut SqliteConnection,
    ids: &[u128],
) -> Result<Vec<(Transfer, Option<PendingStatus>)>> {
    let prefix = format!(
        "SELECT {TRANSFER_COLUMNS_T}, p.status FROM transfers t \
         LEFT JOIN pending_transfers p ON p.id = t.id WHERE t.id"
    );
    let mut transfers = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(IN_LIST_IDS) {
        let sql = in_list_sql(&prefix, in_list_size(chunk.len()));
        let query = bind_chunk(sqlx::query_as::<_, TransferRow>(AssertSqlSafe(sql)), chunk);
        for row in query.fetch_all(&mut *connection).await? {
            transfers.push(row.decode()?);
        }
    }
    Ok(transfers)
}

#[cfg(test)]
mod tests {
    use super::path_of;

    #[test]
    fn parses_sqlite_urls() {
        assert_eq!(path_of("sqlite:coffer-data/coffer.db"), Some("coffer-data/coffer.db"));
        assert_eq!(path_of("sqlite:///var/lib/coffer.db"), Some("/var/lib/coffer.db"));
        assert_eq!(path_of("sqlite://./coffer.db"), Some("./coffer.db"));
        assert_eq!(path_of("sqlite::memory:"), None);
        assert_eq!(path_of("sqlite:"), None);
        assert_eq!(path_of("sqlite:coffer.db?mode=ro"), None);
        assert_eq!(path_of("postgres://localhost/coffer"), None);
    }
}
