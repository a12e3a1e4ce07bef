//! The SQLite adapter: the embedded default, one file in WAL mode.
//!
//! One dedicated writer connection (a pool of one) runs every ledger transaction, opened
//! with `BEGIN IMMEDIATE` so that the write lock is taken before the reads that decide the
//! batch: no other writer can slip in between read and write, and a busy database fails
//! (and is retried) at `BEGIN`, not half-way through. Reads run on a separate bounded pool
//! of `query_only` connections, which WAL lets proceed while the writer writes.
//!
//! Durability: `synchronous = FULL`. In WAL mode, `NORMAL` would fsync only at
//! checkpoints, so a commit acknowledged to a client could vanish on power loss; a ledger
//! must not acknowledge what it may forget. Group commit amortises the fsync over a whole
//! batch, which is what makes `FULL` affordable.

use std::str::FromStr as _;
use std::time::Duration;

use ledger::{Account, AccountBalance, Changes, CreateTransferResult, PendingStatus, Transfer};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{AssertSqlSafe, Connection as _, QueryBuilder, Sqlite, SqliteConnection};

use crate::batch::{self, BatchOutput, LedgerTx};
use crate::codec::{
    ACCOUNT_COLUMNS, AccountRow, FailureRow, PendingRow, TRANSFER_COLUMNS, TRANSFER_COLUMNS_T, TransferRow,
    bits64, int, uuid,
};
use crate::{AccountFilter, Command, Result, StoreError, StoreOptions, TransferNote, reads};

/// How long a connection waits for another process's lock on the file before SQLite
/// reports `SQLITE_BUSY`. Within one process the writer pool already serialises writers;
/// this covers a second process (say, `coffer migrate`) briefly holding the file.
const BUSY_TIMEOUT_MS: u64 = 5_000;

/// SQLite's default limit on bound variables per statement (`SQLITE_MAX_VARIABLE_NUMBER`
/// since 3.32). Multi-row statements stay under it.
const BIND_VARIABLES_MAX: usize = 32_766;

/// Ids per `WHERE id IN (…)` lookup. A fixed size (the last chunk is padded by repeating
/// an id) keeps the statement text constant, so it is prepared once and then cached.
const IN_LIST_IDS: usize = 1_000;

/// Rows per multi-row `INSERT`/`UPDATE`: a round number under [`BIND_VARIABLES_MAX`] for
/// the widest row (13 transfer columns), large enough to amortise a statement's overhead.
const WRITE_ROWS_PER_STATEMENT: usize = 1_000;

const _: () = assert!(WRITE_ROWS_PER_STATEMENT * 13 <= BIND_VARIABLES_MAX);
const _: () = assert!(IN_LIST_IDS <= BIND_VARIABLES_MAX);

#[cfg(test)]
mod in_list_tests {
    #[test]
    fn lists_are_padded_to_the_next_fixed_size() {
        use super::in_list_size;
        assert_eq!([1, 2, 8, 9, 64, 65, 1_000].map(in_list_size), [1, 8, 8, 64, 64, 1_000, 1_000]);
    }
}

/// Prepared statements kept per connection: the few dozen distinct statements of the
/// ledger, with room for the remainder-sized chunks of multi-row writes.
const STATEMENT_CACHE_CAPACITY: usize = 256;

/// Page cache of the writer connection, in KiB. A batch of 8,190 transfers touches
/// thousands of random B-tree pages (ids are random); with SQLite's default 2 MiB the
/// writer re-reads and spills pages mid-transaction. 64 MiB holds a batch's working set
/// for ledgers of a few million rows and stays well inside the service's memory budget.
const WRITER_CACHE_SIZE_KIB: u32 = 64 * 1024;

/// WAL pages after which SQLite checkpoints into the main file. The default (1,000 pages,
/// 4 MiB) is smaller than one large batch, so every batch would pay for a checkpoint;
/// 16,384 pages (64 MiB) lets several batches share one.
const WAL_AUTOCHECKPOINT_PAGES: u32 = 16_384;

/// The SQLite store: a writer pool of one connection and a pool of readers.
#[derive(Debug)]
pub(crate) struct SqliteStore {
    pub(crate) writer: SqlitePool,
    pub(crate) readers: SqlitePool,
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
            // A negative cache_size is in KiB rather than pages.
            .pragma("cache_size", format!("-{WRITER_CACHE_SIZE_KIB}"))
            .pragma("wal_autocheckpoint", WAL_AUTOCHECKPOINT_PAGES.to_string())
            // Statement journals of multi-row writes stay in memory, not in temp files.
            .pragma("temp_store", "MEMORY");
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .connect_with(writer_options)
            .await?;
        // One connection of the budget is the writer's; readers get the rest (at least one).
        let readers_max = options.max_connections.saturating_sub(1).max(1);
        let readers = SqlitePoolOptions::new()
            .max_connections(readers_max)
            .connect_with(base.pragma("query_only", "ON"))
            .await?;
        Ok(Self { writer, readers })
    }

    /// The read pool (`query_only` connections).
    pub(crate) fn readers(&self) -> &SqlitePool {
        &self.readers
    }

    /// The single writer connection, for the few writes outside ledger batches. SQLite
    /// has one writer at a time anyway; sharing the connection avoids busy waits.
    pub(crate) fn writer(&self) -> &SqlitePool {
        &self.writer
    }

    pub(crate) async fn migrate(&self) -> Result<()> {
        sqlx::migrate!("./migrations/sqlite").run(&self.writer).await?;
        Ok(())
    }

    pub(crate) async fn commit(&self, commands: &[Command], expire_limit: usize) -> Result<BatchOutput> {
        batch::retrying(is_transient, || async {
            let mut connection = self.writer.acquire().await?;
            let mut transaction = connection.begin_with("BEGIN IMMEDIATE").await?;
            let now = batch::now_ns();
            let output =
                batch::run(&mut SqliteTx { connection: &mut transaction }, commands, expire_limit, now)
                    .await?;
            transaction.commit().await?;
            Ok(output)
        })
        .await
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
        self.writer.close().await;
        self.readers.close().await;
    }
}

/// SQLite reads `?n` as "the n-th bound value", which is what `$n` means to PostgreSQL.
pub(crate) fn sqlite_placeholders(sql: &str) -> String {
    sql.replace('$', "?")
}

/// SQLite's busy and locked errors are transient: another connection (another process)
/// held the lock for longer than the busy timeout. Lost connections do not exist here.
fn is_transient(error: &sqlx::Error) -> bool {
    const SQLITE_BUSY: i64 = 5;
    const SQLITE_LOCKED: i64 = 6;
    let sqlx::Error::Database(error) = error else { return false };
    // Extended result codes carry the primary code in their low byte.
    let primary = error.code().and_then(|code| code.parse::<i64>().ok()).map(|code| code & 0xff);
    matches!(primary, Some(SQLITE_BUSY | SQLITE_LOCKED))
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

/// The ledger transaction on the writer connection, inside `BEGIN IMMEDIATE`.
struct SqliteTx<'c> {
    connection: &'c mut SqliteConnection,
}

impl LedgerTx for SqliteTx<'_> {
    async fn lock_clock(&mut self) -> Result<u64> {
        // BEGIN IMMEDIATE already holds the database's write lock.
        let last: i64 = sqlx::query_scalar("SELECT last_timestamp FROM ledger_clock WHERE id = 1")
            .fetch_one(&mut *self.connection)
            .await?;
        u64::try_from(last).map_err(|_| StoreError::Corrupt(format!("negative ledger clock {last}")))
    }

    async fn due_pending(&mut self, now: u64, limit: usize) -> Result<Vec<u128>> {
        let ids: Vec<uuid::Uuid> = sqlx::query_scalar(
            "SELECT id FROM pending_transfers WHERE status = 'pending' AND expires_at IS NOT NULL \
             AND expires_at <= ?1 ORDER BY expires_at, id LIMIT ?2",
        )
        .bind(i64::try_from(now).unwrap_or(i64::MAX))
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&mut *self.connection)
        .await?;
        Ok(ids.into_iter().map(|id| id.as_u128()).collect())
    }

    async fn load_transfers(&mut self, ids: &[u128]) -> Result<Vec<(Transfer, Option<PendingStatus>)>> {
        select_transfers(self.connection, ids).await
    }

    async fn load_failed(&mut self, ids: &[u128]) -> Result<Vec<(u128, CreateTransferResult)>> {
        let mut failed = Vec::new();
        for chunk in ids.chunks(IN_LIST_IDS) {
            let sql =
                in_list_sql("SELECT id, result FROM transfer_failures WHERE id", in_list_size(chunk.len()));
            let query = bind_chunk(sqlx::query_as::<_, FailureRow>(AssertSqlSafe(sql)), chunk);
            for row in query.fetch_all(&mut *self.connection).await? {
                failed.push(row.decode()?);
            }
        }
        Ok(failed)
    }

    async fn lock_accounts(&mut self, ids: &[u128]) -> Result<Vec<Account>> {
        // Nothing to lock row by row: BEGIN IMMEDIATE holds the whole database.
        select_accounts(self.connection, ids).await
    }

    async fn write_events(&mut self, events: &[crate::NewEvent]) -> Result<()> {
        crate::outbox::insert_events!(
            self.connection,
            |text: &str| AssertSqlSafe(sqlite_placeholders(text)),
            events
        );
        Ok(())
    }

    async fn write_notes(&mut self, notes: &[TransferNote]) -> Result<()> {
        for chunk in notes.chunks(WRITE_ROWS_PER_STATEMENT) {
            let mut insert =
                QueryBuilder::<Sqlite>::new("INSERT INTO transfer_notes (transfer_id, kind, description) ");
            insert.push_values(chunk, |mut row, note| {
                row.push_bind(uuid(note.transfer_id))
                    .push_bind(note.kind.clone())
                    .push_bind(note.description.clone());
            });
            insert.build().execute(&mut *self.connection).await?;
        }
        Ok(())
    }

    async fn write(&mut self, changes: &Changes, pending: &[PendingRow], last_timestamp: u64) -> Result<()> {
        let connection = &mut *self.connection;
        for chunk in changes.accounts_created.chunks(WRITE_ROWS_PER_STATEMENT) {
            let mut insert =
                QueryBuilder::<Sqlite>::new(format!("INSERT INTO accounts ({ACCOUNT_COLUMNS}) "));
            insert.push_values(chunk, |mut row, account| {
                row.push_bind(uuid(account.id))
                    .push_bind(int(account.debits_pending))
                    .push_bind(int(account.debits_posted))
                    .push_bind(int(account.credits_pending))
                    .push_bind(int(account.credits_posted))
                    .push_bind(uuid(account.user_data_128))
                    .push_bind(bits64(account.user_data_64))
                    .push_bind(i64::from(account.user_data_32))
                    .push_bind(i64::from(account.ledger))
                    .push_bind(i32::from(account.code))
                    .push_bind(i32::from(account.flags.bits()))
                    .push_bind(int(account.timestamp));
            });
            insert.build().execute(&mut *connection).await?;
        }
        for chunk in changes.accounts_updated.chunks(WRITE_ROWS_PER_STATEMENT) {
            let mut update = QueryBuilder::<Sqlite>::new(
                "UPDATE accounts SET debits_pending = v.column2, debits_posted = v.column3, \
                 credits_pending = v.column4, credits_posted = v.column5, flags = v.column6 FROM (",
            );
            update.push_values(chunk, |mut row, account| {
                row.push_bind(uuid(account.id))
                    .push_bind(int(account.debits_pending))
                    .push_bind(int(account.debits_posted))
                    .push_bind(int(account.credits_pending))
                    .push_bind(int(account.credits_posted))
                    .push_bind(i32::from(account.flags.bits()));
            });
            update.push(") AS v WHERE accounts.id = v.column1");
            let updated = update.build().execute(&mut *connection).await?.rows_affected();
            if updated != chunk.len() as u64 {
                return Err(StoreError::Corrupt(format!(
                    "updated {updated} of {} accounts: some vanished mid-transaction",
                    chunk.len()
                )));
            }
        }
        for chunk in changes.transfers_created.chunks(WRITE_ROWS_PER_STATEMENT) {
            let mut insert =
                QueryBuilder::<Sqlite>::new(format!("INSERT INTO transfers ({TRANSFER_COLUMNS}) "));
            insert.push_values(chunk, |mut row, transfer| {
                row.push_bind(uuid(transfer.id))
                    .push_bind(uuid(transfer.debit_account_id))
                    .push_bind(uuid(transfer.credit_account_id))
                    .push_bind(int(transfer.amount))
                    .push_bind(uuid(transfer.pending_id))
                    .push_bind(uuid(transfer.user_data_128))
                    .push_bind(bits64(transfer.user_data_64))
                    .push_bind(i64::from(transfer.user_data_32))
                    .push_bind(i64::from(transfer.timeout))
                    .push_bind(i64::from(transfer.ledger))
                    .push_bind(i32::from(transfer.code))
                    .push_bind(i32::from(transfer.flags.bits()))
                    .push_bind(int(transfer.timestamp));
            });
            insert.build().execute(&mut *connection).await?;
        }
        for chunk in pending.chunks(WRITE_ROWS_PER_STATEMENT) {
            let mut upsert =
                QueryBuilder::<Sqlite>::new("INSERT INTO pending_transfers (id, status, expires_at) ");
            upsert.push_values(chunk, |mut row, pending| {
                row.push_bind(uuid(pending.id))
                    .push_bind(pending.status.as_str())
                    .push_bind(pending.expires_at);
            });
            upsert.push(" ON CONFLICT (id) DO UPDATE SET status = excluded.status");
            upsert.build().execute(&mut *connection).await?;
        }
        for chunk in changes.failed_transfers.chunks(WRITE_ROWS_PER_STATEMENT) {
            let mut insert = QueryBuilder::<Sqlite>::new("INSERT INTO transfer_failures (id, result) ");
            insert.push_values(chunk, |mut row, (id, result)| {
                row.push_bind(uuid(*id)).push_bind(result.as_str());
            });
            insert.build().execute(&mut *connection).await?;
        }
        for chunk in changes.balances.chunks(WRITE_ROWS_PER_STATEMENT) {
            let mut insert = QueryBuilder::<Sqlite>::new(format!(
                "INSERT INTO account_balances ({}) ",
                crate::codec::BALANCE_COLUMNS
            ));
            insert.push_values(chunk, |mut row, balance| {
                row.push_bind(uuid(balance.account_id))
                    .push_bind(int(balance.timestamp))
                    .push_bind(int(balance.debits_pending))
                    .push_bind(int(balance.debits_posted))
                    .push_bind(int(balance.credits_pending))
                    .push_bind(int(balance.credits_posted));
            });
            insert.build().execute(&mut *connection).await?;
        }
        sqlx::query("UPDATE ledger_clock SET last_timestamp = ?1 WHERE id = 1")
            .bind(int(last_timestamp))
            .execute(&mut *connection)
            .await?;
        Ok(())
    }
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
