//! The embedded ledger writer: one thread that owns a write connection to the SQLite file
//! (rusqlite, synchronous, every statement prepared once and cached) and runs each ledger
//! batch start to finish on itself — `BEGIN IMMEDIATE`, the shared batch logic
//! ([`crate::batch::run`]), `COMMIT` — then sends the batch's output back.
//!
//! Why a thread of its own: through the async driver every statement was a round trip
//! between a tokio task and the driver's connection thread (two wake-ups per statement,
//! and rows streamed one message each), hundreds per batch; on two cores those hand-offs
//! cost more than the SQL. Here a batch is one message in and one message out, and the
//! statements are plain function calls. Point lookups and one-row writes through cached
//! statements replace the padded `IN` lists and multi-row texts the async path needed.
//!
//! The batch logic is shared with PostgreSQL through the async [`LedgerTx`] trait; on this
//! thread each of its methods completes at once, so a batch's future is polled once with a
//! no-op waker ([`ready`]) and never waits.
//!
//! Durability is pipelined. The writer commits with `synchronous = NORMAL` (the commit
//! writes the WAL but does not wait for the disk) and hands the batch to the syncer thread,
//! then goes on with the next batch at once. The syncer `fdatasync`s the WAL file and only
//! then sends the replies of every batch that committed before that sync began, in commit
//! order: one fsync covers all the batches that committed while the previous one ran, and
//! the writer never waits for the disk. A reply therefore always means "durable". If a sync
//! fails, nothing written since the last good one can be trusted: the syncer fails those
//! batches' callers and the writer refuses every later batch (`StoreError::Durability`)
//! until the process restarts and SQLite recovers from the WAL; an fsync is never retried
//! as if nothing had happened.
//!
//! What this gives up: another connection (a read) may see a committed batch during the
//! millisecond or so before its sync ends. A process crash (`kill -9`) loses nothing (the
//! WAL is in the kernel's page cache), but a power loss in that window could take back a
//! batch that a read saw, though never one that a caller was told about.

use std::future::Future;
use std::path::Path;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use ledger::{Account, Changes, CreateTransferResult, PendingStatus, Transfer};
use rusqlite::{Connection, OpenFlags, OptionalExtension as _, params};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use crate::batch::{self, BatchOutput, LedgerTx};
use crate::codec::{
    ACCOUNT_COLUMNS, AccountRow, BALANCE_COLUMNS, FailureRow, PendingRow, TRANSFER_COLUMNS,
    TRANSFER_COLUMNS_T, TransferRow, bits64, int, saturating,
};
use crate::idempotency::{ResponseRow, UPSERT_RESPONSE};
use crate::memory::Memory;
use crate::outbox::{INSERT_EVENT, NewEvent};
use crate::payments::{finish_text, insert_text};
use crate::{Command, PaymentChange, Result, StoreError, TransferNote};

use super::{BUSY_TIMEOUT_MS, WAL_AUTOCHECKPOINT_PAGES, WRITER_CACHE_SIZE_KIB, sqlite_placeholders};

/// Batches waiting for the writer at most. The commit pipeline sends one batch at a time
/// and waits for it, so a handful is plenty; a full queue makes the sender wait.
const JOBS_QUEUED_MAX: usize = 4;

/// Prepared statements the writer keeps: the ledger's two dozen, with room to spare.
const STATEMENT_CACHE_CAPACITY: usize = 64;

struct Job {
    commands: Vec<Command>,
    expire_limit: usize,
    /// Told (or dropped, when the batch failed) once the transaction is over, so that the
    /// next batch can be gathered while this one syncs.
    committed: oneshot::Sender<()>,
    reply: oneshot::Sender<Result<BatchOutput>>,
}

/// A batch handed to the writer: its transaction is over (committed or failed), and
/// [`Syncing::output`] resolves once it is durable (or with its error).
#[derive(Debug)]
pub(crate) struct Syncing {
    reply: oneshot::Receiver<Result<BatchOutput>>,
}

impl Syncing {
    pub(crate) async fn output(self) -> Result<BatchOutput> {
        self.reply.await.map_err(|_| StoreError::Closed)?
    }
}

/// A committed batch waiting for the sync that makes it durable.
struct Committed {
    output: BatchOutput,
    reply: oneshot::Sender<Result<BatchOutput>>,
}

/// The process's turn to write (shared with the async writer).
pub(crate) type Turn = std::sync::Arc<tokio::sync::Mutex<()>>;

/// Makes the WAL durable; `fdatasync` of the file, replaceable in tests.
pub(crate) type SyncFn = Box<dyn FnMut(&Path) -> std::io::Result<()> + Send>;

/// The order of durability and replies, recorded for tests (`None` otherwise).
pub(crate) type Trace = Option<std::sync::Arc<std::sync::Mutex<Vec<TraceEntry>>>>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TraceEntry {
    /// A sync returned; the number of batches it covered.
    Synced(usize),
    /// The syncer sent a batch's reply.
    Replied,
}

/// The handle to the writer thread. Dropping it (or [`LedgerWriter::close`]) ends the
/// thread once the batches already sent are done.
#[derive(Debug)]
pub(crate) struct LedgerWriter {
    jobs: std::sync::Mutex<Option<mpsc::Sender<Job>>>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job").field("commands", &self.commands.len()).finish_non_exhaustive()
    }
}

impl LedgerWriter {
    /// Opens the write connection to `path` and starts the writer and syncer threads.
    /// `turn` is the process's turn to write, taken for each batch's transaction.
    pub(crate) fn start(path: &Path, turn: Turn) -> Result<Self> {
        Self::start_with(path, turn, Box::new(sync_wal), None)
    }

    /// [`LedgerWriter::start`] with the sync given, recording to `trace` (tests).
    pub(crate) fn start_with(path: &Path, turn: Turn, sync: SyncFn, trace: Trace) -> Result<Self> {
        let connection = open(path).map_err(embedded)?;
        let (sender, receiver) = mpsc::channel(JOBS_QUEUED_MAX);
        let (committed, to_sync) = std::sync::mpsc::sync_channel(JOBS_QUEUED_MAX);
        let failed = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let wal = std::path::PathBuf::from(format!("{}-wal", path.display()));
        let syncer_failed = failed.clone();
        std::thread::Builder::new()
            .name("coffer-ledger-sync".into())
            .spawn(move || {
                syncer(wal, sync, to_sync, &syncer_failed, trace);
            })
            .map_err(|error| StoreError::Database(error.into()))?;
        std::thread::Builder::new()
            .name("coffer-ledger-writer".into())
            .spawn(move || serve(connection, receiver, committed, &failed, &turn))
            .map_err(|error| StoreError::Database(error.into()))?;
        Ok(Self { jobs: std::sync::Mutex::new(Some(sender)) })
    }

    /// Runs `commands` (and up to `expire_limit` expiries) as one transaction on the writer
    /// and returns once it is durable.
    pub(crate) async fn commit(&self, commands: &[Command], expire_limit: usize) -> Result<BatchOutput> {
        self.commit_staged(commands, expire_limit).await.output().await
    }

    /// Runs `commands` as one transaction on the writer and returns once the transaction
    /// is over, with what resolves once it is durable.
    pub(crate) async fn commit_staged(&self, commands: &[Command], expire_limit: usize) -> Syncing {
        let (reply, answer) = oneshot::channel();
        let syncing = Syncing { reply: answer };
        let Some(sender) = self.jobs.lock().expect("not poisoned").clone() else {
            let _ = reply.send(Err(StoreError::Closed));
            return syncing;
        };
        let (committed, over) = oneshot::channel();
        let job = Job { commands: commands.to_vec(), expire_limit, committed, reply };
        if let Err(refused) = sender.send(job).await {
            let _ = refused.0.reply.send(Err(StoreError::Closed));
            return syncing;
        }
        // Dropped unsent when the batch failed: its error is in the reply.
        let _ = over.await;
        syncing
    }

    /// Stops taking batches; the thread ends after those already sent.
    pub(crate) fn close(&self) {
        self.jobs.lock().expect("not poisoned").take();
    }
}

fn embedded(error: rusqlite::Error) -> StoreError {
    StoreError::Embedded(error)
}

fn open(path: &Path) -> rusqlite::Result<Connection> {
    let flags =
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let connection = Connection::open_with_flags(path, flags)?;
    connection.busy_handler(Some(wait_for_lock))?;
    connection.set_prepared_statement_cache_capacity(STATEMENT_CACHE_CAPACITY);
    // The same settings as the async connections (see the module above this one), and the
    // writer's larger page cache.
    connection.pragma_update(None, "journal_mode", "WAL")?;
    // The writer does not wait for the disk at COMMIT: the syncer makes the WAL durable
    // before any reply goes out (see the module's comment).
    connection.pragma_update(None, "synchronous", "NORMAL")?;
    // No foreign-key probes on the ledger's tables: every batch writes only what the ledger
    // core checked (a transfer's accounts exist, a note or status goes with a transfer the
    // batch holds, a payment names a wallet the service read), and each probe was a B-tree
    // seek per row. The crash suite checks the same rules on the database afterwards.
    connection.pragma_update(None, "foreign_keys", "OFF")?;
    connection.pragma_update(None, "cache_size", format!("-{WRITER_CACHE_SIZE_KIB}"))?;
    connection.pragma_update(None, "wal_autocheckpoint", WAL_AUTOCHECKPOINT_PAGES)?;
    connection.pragma_update(None, "temp_store", "MEMORY")?;
    Ok(connection)
}

/// How long the writer sleeps between looks at a lock another connection holds. SQLite's
/// own busy handler sleeps in growing steps (up to 100 ms): the writer would sleep on
/// long after the other writer (a consumer's short transaction) let go, and every request
/// of the waiting batch with it.
const LOCK_POLL_US: u64 = 100;

/// The writer's busy handler: short sleeps, for [`BUSY_TIMEOUT_MS`] in all.
fn wait_for_lock(attempts: i32) -> bool {
    let waited_us = u64::try_from(attempts).unwrap_or(0) * LOCK_POLL_US;
    if waited_us >= BUSY_TIMEOUT_MS * 1_000 {
        return false;
    }
    std::thread::sleep(Duration::from_micros(LOCK_POLL_US));
    true
}

fn serve(
    mut connection: Connection,
    mut jobs: mpsc::Receiver<Job>,
    committed: std::sync::mpsc::SyncSender<Committed>,
    failed: &std::sync::atomic::AtomicBool,
    turn: &tokio::sync::Mutex<()>,
) {
    let mut memory = Memory::default();
    while let Some(job) = jobs.blocking_recv() {
        if failed.load(std::sync::atomic::Ordering::Acquire) {
            let _ = job.reply.send(Err(StoreError::Durability));
            continue;
        }
        match commit_retrying(&mut connection, &mut memory, turn, &job.commands, job.expire_limit) {
            Ok(output) => {
                let _ = job.committed.send(());
                if let Err(unsent) = committed.send(Committed { output, reply: job.reply }) {
                    // The syncer is gone (it only stops when this thread does).
                    let _ = unsent.0.reply.send(Err(StoreError::Closed));
                }
            }
            // Nothing of a failed batch was written: its caller may hear at once.
            Err(error) => {
                let _ = job.reply.send(Err(error));
            }
        }
    }
}

/// Makes batches durable in groups and answers their callers, in commit order.
fn syncer(
    wal: std::path::PathBuf,
    mut sync: SyncFn,
    committed: std::sync::mpsc::Receiver<Committed>,
    failed: &std::sync::atomic::AtomicBool,
    trace: Trace,
) {
    let mut directory_synced = false;
    while let Ok(first) = committed.recv() {
        // Everything committed by now is in the WAL: one sync covers it all.
        let mut group = vec![first];
        group.extend(committed.try_iter());
        let synced = if failed.load(std::sync::atomic::Ordering::Acquire) {
            Err(std::io::Error::other("an earlier sync failed"))
        } else {
            sync(&wal).and_then(|()| {
                // The WAL file's own name must be durable too, once.
                if !directory_synced {
                    if let Some(directory) = wal.parent().filter(|parent| !parent.as_os_str().is_empty()) {
                        std::fs::File::open(directory)?.sync_all()?;
                    }
                    directory_synced = true;
                }
                Ok(())
            })
        };
        let record = |entry| {
            if let Some(trace) = &trace {
                trace.lock().expect("not poisoned").push(entry);
            }
        };
        match synced {
            Ok(()) => {
                record(TraceEntry::Synced(group.len()));
                for batch in group {
                    record(TraceEntry::Replied);
                    let _ = batch.reply.send(Ok(batch.output));
                }
            }
            Err(error) => {
                if !failed.swap(true, std::sync::atomic::Ordering::AcqRel) {
                    tracing::error!(%error, "syncing the WAL failed: the ledger takes no more writes until restarted");
                }
                for batch in group {
                    let _ = batch.reply.send(Err(StoreError::Durability));
                }
            }
        }
    }
}

/// `fdatasync` of the WAL file (opened anew each time: cheap next to the sync itself, and
/// never a stale handle).
fn sync_wal(wal: &Path) -> std::io::Result<()> {
    std::fs::OpenOptions::new().write(true).open(wal)?.sync_data()
}

/// Runs one batch, re-running it whole (fresh transaction, fresh reads) while another
/// process holds the file's lock past the busy timeout.
fn commit_retrying(
    connection: &mut Connection,
    memory: &mut Memory,
    turn: &tokio::sync::Mutex<()>,
    commands: &[Command],
    expire_limit: usize,
) -> Result<BatchOutput> {
    let mut backoff_ms = batch::RETRY_BACKOFF_MIN_MS;
    let mut attempts = 1;
    loop {
        // The turn is held for the transaction only, not across the backoff.
        let held = turn.blocking_lock();
        let attempted = attempt(connection, memory, commands, expire_limit);
        drop(held);
        match attempted {
            Err(StoreError::Embedded(error)) if attempts < batch::COMMIT_ATTEMPTS_MAX && is_busy(&error) => {
                tracing::warn!(attempt = attempts, %error, "ledger transaction found the database busy; retrying");
                std::thread::sleep(Duration::from_millis(backoff_ms));
                backoff_ms = (backoff_ms * 2).min(batch::RETRY_BACKOFF_MAX_MS);
                attempts += 1;
            }
            result => return result,
        }
    }
}

fn attempt(
    connection: &mut Connection,
    memory: &mut Memory,
    commands: &[Command],
    expire_limit: usize,
) -> Result<BatchOutput> {
    connection.execute_batch("BEGIN IMMEDIATE").map_err(embedded)?;
    let now = batch::now_ns();
    let mut tx = WriterTx { connection: &mut *connection };
    let output = ready(batch::run(&mut tx, memory, commands, expire_limit, now));
    let finished = match output {
        Ok(output) => connection.execute_batch("COMMIT").map(|()| output).map_err(embedded),
        Err(error) => Err(error),
    };
    match &finished {
        Ok(_) => memory.settle(),
        Err(_) => memory.forget(),
    }
    if finished.is_err() && !connection.is_autocommit() {
        // Nothing of a failed batch may stay: roll back whatever the attempt wrote.
        if let Err(error) = connection.execute_batch("ROLLBACK") {
            tracing::error!(%error, "rolling back a failed ledger batch failed");
        }
    }
    finished
}

fn is_busy(error: &rusqlite::Error) -> bool {
    matches!(
        error.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

/// The value of a future that never waits (every [`LedgerTx`] method here is synchronous).
fn ready<T>(future: impl Future<Output = T>) -> T {
    let mut future = std::pin::pin!(future);
    match future.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(value) => value,
        Poll::Pending => unreachable!("the embedded writer's batch waited on something"),
    }
}

/// SQL written with `$n` placeholders, as SQLite reads it.
fn sql(text: &str) -> String {
    sqlite_placeholders(text)
}

/// An id as the tables store it (a 16-byte big-endian blob, as the async driver writes it).
fn blob(id: u128) -> Uuid {
    Uuid::from_u128(id)
}

fn account_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<AccountRow> {
    Ok(AccountRow {
        id: row.get(0)?,
        debits_pending: row.get(1)?,
        debits_posted: row.get(2)?,
        credits_pending: row.get(3)?,
        credits_posted: row.get(4)?,
        user_data_128: row.get(5)?,
        user_data_64: row.get(6)?,
        user_data_32: row.get(7)?,
        ledger: row.get(8)?,
        code: row.get(9)?,
        flags: row.get(10)?,
        timestamp: row.get(11)?,
    })
}

fn transfer_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<TransferRow> {
    Ok(TransferRow {
        id: row.get(0)?,
        debit_account_id: row.get(1)?,
        credit_account_id: row.get(2)?,
        amount: row.get(3)?,
        pending_id: row.get(4)?,
        user_data_128: row.get(5)?,
        user_data_64: row.get(6)?,
        user_data_32: row.get(7)?,
        timeout: row.get(8)?,
        ledger: row.get(9)?,
        code: row.get(10)?,
        flags: row.get(11)?,
        timestamp: row.get(12)?,
        status: row.get(13)?,
    })
}

/// The ledger transaction on the writer's connection, inside `BEGIN IMMEDIATE`.
struct WriterTx<'c> {
    connection: &'c mut Connection,
}

impl WriterTx<'_> {
    /// Runs the cached statement `text` once per item of `rows`, binding each with `bind`.
    fn each<T>(
        &self,
        text: &str,
        rows: &[T],
        mut bind: impl FnMut(&mut rusqlite::CachedStatement<'_>, &T) -> rusqlite::Result<usize>,
    ) -> Result<()> {
        let mut statement = self.connection.prepare_cached(text).map_err(embedded)?;
        for row in rows {
            bind(&mut statement, row).map_err(embedded)?;
        }
        Ok(())
    }

    fn insert_events(&self, events: &[NewEvent]) -> Result<()> {
        self.each(&sql(INSERT_EVENT), events, |statement, event| {
            statement.execute(params![
                event.id,
                event.event_type,
                event.customer_id,
                event.payload,
                saturating(event.created_at)
            ])
        })
    }
}

impl LedgerTx for WriterTx<'_> {
    async fn lock_clock(&mut self) -> Result<u64> {
        // BEGIN IMMEDIATE already holds the database's write lock.
        let last: i64 = self
            .connection
            .prepare_cached("SELECT last_timestamp FROM ledger_clock WHERE id = 1")
            .and_then(|mut statement| statement.query_row([], |row| row.get(0)))
            .map_err(embedded)?;
        u64::try_from(last).map_err(|_| StoreError::Corrupt(format!("negative ledger clock {last}")))
    }

    async fn due_pending(&mut self, now: u64, limit: usize) -> Result<Vec<u128>> {
        let mut statement = self
            .connection
            .prepare_cached(
                "SELECT id FROM pending_transfers WHERE status = 'pending' AND expires_at IS NOT NULL \
                 AND expires_at <= ?1 ORDER BY expires_at, id LIMIT ?2",
            )
            .map_err(embedded)?;
        let now = i64::try_from(now).unwrap_or(i64::MAX);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let ids = statement
            .query_map(params![now, limit], |row| row.get::<_, Uuid>(0))
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(embedded)?;
        Ok(ids.into_iter().map(|id| id.as_u128()).collect())
    }

    async fn load_transfers(&mut self, ids: &[u128]) -> Result<Vec<(Transfer, Option<PendingStatus>)>> {
        let text = format!(
            "SELECT {TRANSFER_COLUMNS_T}, p.status FROM transfers t \
             LEFT JOIN pending_transfers p ON p.id = t.id WHERE t.id = ?1"
        );
        let mut statement = self.connection.prepare_cached(&text).map_err(embedded)?;
        let mut transfers = Vec::with_capacity(ids.len());
        for id in ids {
            let mut rows = statement.query([blob(*id)]).map_err(embedded)?;
            if let Some(row) = rows.next().map_err(embedded)? {
                transfers.push(transfer_row(row).map_err(embedded)?.decode()?);
            }
        }
        Ok(transfers)
    }

    async fn load_failed(&mut self, ids: &[u128]) -> Result<Vec<(u128, CreateTransferResult)>> {
        let mut statement = self
            .connection
            .prepare_cached("SELECT id, result FROM transfer_failures WHERE id = ?1")
            .map_err(embedded)?;
        let mut failed = Vec::new();
        for id in ids {
            let mut rows = statement.query([blob(*id)]).map_err(embedded)?;
            if let Some(row) = rows.next().map_err(embedded)? {
                let row =
                    FailureRow { id: row.get(0).map_err(embedded)?, result: row.get(1).map_err(embedded)? };
                failed.push(row.decode()?);
            }
        }
        Ok(failed)
    }

    async fn lock_accounts(&mut self, ids: &[u128]) -> Result<Vec<Account>> {
        // Nothing to lock row by row: BEGIN IMMEDIATE holds the whole database.
        let text = format!("SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE id = ?1");
        let mut statement = self.connection.prepare_cached(&text).map_err(embedded)?;
        let mut accounts = Vec::with_capacity(ids.len());
        for id in ids {
            let mut rows = statement.query([blob(*id)]).map_err(embedded)?;
            if let Some(row) = rows.next().map_err(embedded)? {
                accounts.push(Account::try_from(account_row(row).map_err(embedded)?)?);
            }
        }
        Ok(accounts)
    }

    async fn write_notes(&mut self, notes: &[TransferNote]) -> Result<()> {
        self.each(
            "INSERT INTO transfer_notes (transfer_id, kind, description) VALUES (?1, ?2, ?3)",
            notes,
            |statement, note| {
                statement.execute(params![blob(note.transfer_id), note.kind.as_str(), note.description])
            },
        )
    }

    async fn write_events(&mut self, events: &[NewEvent]) -> Result<()> {
        self.insert_events(events)
    }

    async fn write_responses(&mut self, rows: &[ResponseRow]) -> Result<()> {
        self.each(&sql(UPSERT_RESPONSE), rows, |statement, row| {
            statement.execute(params![
                row.key.owner_id,
                row.key.key,
                row.key.request_hash,
                i32::from(row.response.status),
                row.response.body,
                saturating(row.created_at)
            ])
        })
    }

    async fn write_payments(&mut self, changes: &[PaymentChange]) -> Result<()> {
        for change in changes {
            match change {
                PaymentChange::Record(kind, row) => {
                    let mut statement =
                        self.connection.prepare_cached(&sql(&insert_text(*kind))).map_err(embedded)?;
                    statement
                        .execute(params![
                            row.id,
                            row.customer_id,
                            row.wallet_id,
                            saturating(row.amount),
                            row.currency,
                            row.status.as_str(),
                            row.failure_code,
                            row.provider_id,
                            saturating(row.created_at),
                            saturating(row.updated_at),
                        ])
                        .map_err(embedded)?;
                }
                PaymentChange::Finish { kind, id, finish, at, event } => {
                    let mut statement =
                        self.connection.prepare_cached(&sql(&finish_text(*kind))).map_err(embedded)?;
                    let updated = statement
                        .execute(params![
                            id,
                            finish.status.as_str(),
                            finish.failure_code,
                            finish.provider_id,
                            saturating(*at)
                        ])
                        .map_err(embedded)?;
                    if updated == 1 {
                        self.insert_events(std::slice::from_ref(event))?;
                    }
                }
            }
        }
        Ok(())
    }

    async fn chain_head(&mut self) -> Result<Option<ledger::chain::Link>> {
        let row = self
            .connection
            .prepare_cached(&format!(
                "SELECT {} FROM ledger_chain ORDER BY seq DESC LIMIT 1",
                crate::codec::LINK_COLUMNS
            ))
            .and_then(|mut statement| statement.query_row([], crate::codec::LinkRow::read).optional())
            .map_err(embedded)?;
        row.map(ledger::chain::Link::try_from).transpose()
    }

    async fn write_link(&mut self, link: &ledger::chain::Link) -> Result<()> {
        self.connection
            .prepare_cached(
                "INSERT INTO ledger_chain (seq, first_timestamp, last_timestamp, transfers, hash) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )
            .and_then(|mut statement| {
                statement.execute(params![
                    int(link.seq),
                    int(link.first_timestamp),
                    int(link.last_timestamp),
                    i64::from(link.transfers),
                    &link.hash[..],
                ])
            })
            .map_err(embedded)?;
        Ok(())
    }

    async fn write(&mut self, changes: &Changes, pending: &[PendingRow], last_timestamp: u64) -> Result<()> {
        self.each(
            &format!("INSERT INTO accounts ({ACCOUNT_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"),
            &changes.accounts_created,
            |statement, account| {
                statement.execute(params![
                    blob(account.id),
                    int(account.debits_pending),
                    int(account.debits_posted),
                    int(account.credits_pending),
                    int(account.credits_posted),
                    blob(account.user_data_128),
                    bits64(account.user_data_64),
                    i64::from(account.user_data_32),
                    i64::from(account.ledger),
                    i32::from(account.code),
                    i32::from(account.flags.bits()),
                    int(account.timestamp),
                ])
            },
        )?;
        let mut update = self
            .connection
            .prepare_cached(
                "UPDATE accounts SET debits_pending = ?2, debits_posted = ?3, credits_pending = ?4, \
                 credits_posted = ?5, flags = ?6 WHERE id = ?1",
            )
            .map_err(embedded)?;
        for account in &changes.accounts_updated {
            let updated = update
                .execute(params![
                    blob(account.id),
                    int(account.debits_pending),
                    int(account.debits_posted),
                    int(account.credits_pending),
                    int(account.credits_posted),
                    i32::from(account.flags.bits()),
                ])
                .map_err(embedded)?;
            if updated != 1 {
                return Err(StoreError::Corrupt(format!(
                    "account {:#x} vanished mid-transaction",
                    account.id
                )));
            }
        }
        drop(update);
        self.each(
            &format!(
                "INSERT INTO transfers ({TRANSFER_COLUMNS}) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)"
            ),
            &changes.transfers_created,
            |statement, transfer| {
                statement.execute(params![
                    blob(transfer.id),
                    blob(transfer.debit_account_id),
                    blob(transfer.credit_account_id),
                    int(transfer.amount),
                    blob(transfer.pending_id),
                    blob(transfer.user_data_128),
                    bits64(transfer.user_data_64),
                    i64::from(transfer.user_data_32),
                    i64::from(transfer.timeout),
                    i64::from(transfer.ledger),
                    i32::from(transfer.code),
                    i32::from(transfer.flags.bits()),
                    int(transfer.timestamp),
                ])
            },
        )?;
        self.each(
            "INSERT INTO pending_transfers (id, status, expires_at) VALUES (?1, ?2, ?3) \
             ON CONFLICT (id) DO UPDATE SET status = excluded.status",
            pending,
            |statement, pending| {
                statement.execute(params![blob(pending.id), pending.status.as_str(), pending.expires_at])
            },
        )?;
        self.each(
            "INSERT INTO transfer_failures (id, result) VALUES (?1, ?2)",
            &changes.failed_transfers,
            |statement, (id, result)| statement.execute(params![blob(*id), result.as_str()]),
        )?;
        self.each(
            &format!("INSERT INTO account_balances ({BALANCE_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"),
            &changes.balances,
            |statement, balance| {
                statement.execute(params![
                    blob(balance.account_id),
                    int(balance.timestamp),
                    int(balance.debits_pending),
                    int(balance.debits_posted),
                    int(balance.credits_pending),
                    int(balance.credits_posted),
                ])
            },
        )?;
        self.connection
            .prepare_cached("UPDATE ledger_clock SET last_timestamp = ?1 WHERE id = 1")
            .and_then(|mut statement| statement.execute([int(last_timestamp)]))
            .map_err(embedded)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use ledger::{Account, CreateAccountResult};

    use super::*;
    use crate::{Outcome, Store, StoreOptions};

    /// A migrated database file in `dir`, and the path of it.
    async fn database(dir: &tempfile::TempDir) -> std::path::PathBuf {
        let path = dir.path().join("writer.db");
        let store =
            Store::open(&format!("sqlite:{}", path.display()), StoreOptions::default()).await.unwrap();
        store.migrate().await.unwrap();
        store.close().await;
        path
    }

    fn accounts(id: u128) -> Vec<Command> {
        vec![Command::CreateAccounts(vec![Account { id, ledger: 1, code: 1, ..Default::default() }])]
    }

    /// No reply leaves before the sync that covers its batch has returned: with the disk
    /// "stuck" (the sync waits on a gate) a committed batch is not answered, and once the
    /// sync returns it is; in the trace every reply follows a sync that covered it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn replies_wait_for_the_sync_of_their_batch() {
        let dir = tempfile::tempdir().unwrap();
        let path = database(&dir).await;
        let (gate, gated) = std::sync::mpsc::channel::<()>();
        let gated = Mutex::new(gated);
        let sync: SyncFn = Box::new(move |wal| {
            gated.lock().unwrap().recv().map_err(std::io::Error::other)?;
            sync_wal(wal)
        });
        let trace = Arc::new(Mutex::new(Vec::new()));
        let writer =
            Arc::new(LedgerWriter::start_with(&path, Turn::default(), sync, Some(trace.clone())).unwrap());
        let first = tokio::spawn({
            let writer = writer.clone();
            async move { writer.commit(&accounts(1), 0).await }
        });
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(!first.is_finished(), "answered before its sync returned");
        // Committed (visible to the writer's next batch) but not yet durable or answered.
        let second = tokio::spawn({
            let writer = writer.clone();
            async move { writer.commit(&accounts(1), 0).await }
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!second.is_finished());
        for _ in 0..2 {
            gate.send(()).unwrap();
        }
        let first = first.await.unwrap().unwrap();
        let second = second.await.unwrap().unwrap();
        assert_eq!(first.outcomes, [Outcome::Accounts(vec![CreateAccountResult::Ok])]);
        assert_eq!(second.outcomes, [Outcome::Accounts(vec![CreateAccountResult::Exists])]);
        // Many batches at once: each reply is covered by a sync before it.
        let gate_all = gate.clone();
        let callers: Vec<_> = (10..40u128)
            .map(|id| {
                let writer = writer.clone();
                tokio::spawn(async move { writer.commit(&accounts(id), 0).await })
            })
            .collect();
        // Opens the gate for every sync until the syncer is gone.
        let opener = std::thread::spawn(move || {
            while gate_all.send(()).is_ok() {
                std::thread::sleep(Duration::from_millis(1));
            }
        });
        for caller in callers {
            caller.await.unwrap().unwrap();
        }
        let (mut durable, mut replied) = (0, 0);
        for entry in trace.lock().unwrap().iter() {
            match entry {
                TraceEntry::Synced(batches) => durable += batches,
                TraceEntry::Replied => {
                    replied += 1;
                    assert!(replied <= durable, "a reply went out before its batch was synced");
                }
            }
        }
        assert_eq!(replied, 32);
        drop(writer);
        drop(gate);
        let _ = opener.join();
    }

    fn transfer(id: u128, debit: u128, credit: u128, amount: u64) -> Transfer {
        Transfer {
            id,
            debit_account_id: debit,
            credit_account_id: credit,
            amount,
            ledger: 1,
            code: 1,
            ..Default::default()
        }
    }

    /// A workload touching everything the writer remembers: accounts (one that must not
    /// go negative), transfers, pending transfers posted, voided and expired, and a failure.
    fn workload() -> Vec<Vec<Command>> {
        use ledger::{AccountFlags, TransferFlags};
        let account = |id, flags| Account { id, ledger: 1, code: 1, flags, ..Default::default() };
        let pending = |id, debit, credit, amount, timeout| Transfer {
            flags: TransferFlags::PENDING,
            timeout,
            ..transfer(id, debit, credit, amount)
        };
        // Posting AMOUNT_MAX posts the whole pending amount.
        let resolve = |id, pending_id, flags| Transfer {
            id,
            pending_id,
            flags,
            amount: ledger::AMOUNT_MAX,
            ..Default::default()
        };
        vec![
            vec![Command::CreateAccounts(vec![
                account(1, AccountFlags::default()),
                account(2, AccountFlags::default()),
                account(3, AccountFlags::default()),
                account(4, AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS.union(AccountFlags::HISTORY)),
            ])],
            vec![Command::CreateTransfers(vec![
                transfer(10, 1, 4, 100),
                pending(11, 4, 2, 30, 0),
                pending(12, 4, 3, 20, 0),
                pending(13, 1, 3, 5, 1),
                // More than account 4 has left: a failure the ledger remembers.
                transfer(14, 4, 1, 80),
            ])],
            vec![Command::CreateTransfers(vec![
                resolve(15, 11, TransferFlags::POST_PENDING_TRANSFER),
                resolve(16, 12, TransferFlags::VOID_PENDING_TRANSFER),
                transfer(10, 1, 4, 100),
                transfer(14, 4, 1, 80),
                transfer(17, 4, 1, 50),
            ])],
        ]
    }

    /// A transfer as read, with its pending status.
    type Loaded = (Transfer, Option<PendingStatus>);

    /// Reads what a process that just started would: the accounts, transfers (with their
    /// pending statuses) and failures among `ids`, from the file, outside any memory.
    fn fresh_load(
        path: &Path,
        ids: &[u128],
    ) -> (Vec<Account>, Vec<Loaded>, Vec<(u128, CreateTransferResult)>) {
        let mut connection = open(path).unwrap();
        let mut tx = WriterTx { connection: &mut connection };
        let accounts = ready(tx.lock_accounts(ids)).unwrap();
        let transfers = ready(tx.load_transfers(ids)).unwrap();
        let failed = ready(tx.load_failed(ids)).unwrap();
        (accounts, transfers, failed)
    }

    /// The writer's memory is what the database holds. After a workload, every account,
    /// transfer and failure it remembers equals, field by field, what a fresh load of the
    /// file gives; and the next batches give the same outcomes and the same file whether
    /// they run with that memory or after a restart (an empty memory over a copy).
    #[tokio::test]
    async fn memory_is_what_a_fresh_load_reads() {
        let dir = tempfile::tempdir().unwrap();
        let path = database(&dir).await;
        let mut connection = open(&path).unwrap();
        let mut memory = Memory::default();
        for commands in workload() {
            attempt(&mut connection, &mut memory, &commands, 0).unwrap();
        }
        // Transfer 13 times out after a second; the next batch expires it.
        std::thread::sleep(Duration::from_millis(1_100));
        attempt(&mut connection, &mut memory, &[], batch::COMMIT_EXPIRIES_MAX).unwrap();

        let mut ids: Vec<u128> = memory.accounts.iter().map(|(id, _)| id).collect();
        ids.extend(memory.transfers.iter().map(|(id, _)| id));
        ids.extend(memory.failed.iter().map(|(id, _)| id));
        ids.sort_unstable();
        ids.dedup();
        let (accounts, transfers, failed) = fresh_load(&path, &ids);
        assert_eq!(memory.accounts.len(), 4);
        assert_eq!(accounts.len(), 4);
        for account in &accounts {
            assert_eq!(memory.accounts.get(account.id), Some(account), "account {}", account.id);
        }
        // Every pending transfer, and the transfers batch 3 read again (10).
        assert_eq!(memory.transfers.len(), 4);
        assert_eq!(transfers.len(), memory.transfers.len());
        for loaded in &transfers {
            assert_eq!(memory.transfers.get(loaded.0.id), Some(loaded), "transfer {}", loaded.0.id);
        }
        assert_eq!(memory.transfers.get(13).map(|(_, status)| *status), Some(Some(PendingStatus::Expired)));
        assert_eq!(memory.failed.len(), 1);
        assert_eq!(failed.len(), 1);
        assert_eq!(memory.failed.get(14), Some(&failed[0].1));

        // A restart: a copy of the file with an empty memory takes the same batches.
        let copy = dir.path().join("restarted.db");
        connection.execute("VACUUM INTO ?1", [copy.to_str().unwrap()]).unwrap();
        let mut restarted = open(&copy).unwrap();
        let mut empty = Memory::default();
        let next = vec![
            Command::CreateTransfers(vec![
                transfer(20, 4, 2, 10),
                transfer(21, 4, 2, 1_000),
                transfer(14, 4, 1, 80),
            ]),
            Command::CreateTransfers(vec![Transfer {
                id: 22,
                pending_id: 13,
                amount: ledger::AMOUNT_MAX,
                flags: ledger::TransferFlags::POST_PENDING_TRANSFER,
                ..Default::default()
            }]),
        ];
        let warm = attempt(&mut connection, &mut memory, &next, 0).unwrap();
        let cold = attempt(&mut restarted, &mut empty, &next, 0).unwrap();
        assert_eq!(warm.outcomes, cold.outcomes);
        let (accounts_warm, transfers_warm, _) = fresh_load(&path, &(1..=30).collect::<Vec<_>>());
        let (accounts_cold, transfers_cold, _) = fresh_load(&copy, &(1..=30).collect::<Vec<_>>());
        assert_eq!(accounts_warm.len(), 4);
        let strip = |transfers: Vec<(Transfer, Option<PendingStatus>)>| {
            // Timestamps differ between the two runs (each took its own clock reading).
            transfers
                .into_iter()
                .map(|(transfer, status)| (transfer.id, transfer.amount, status))
                .collect::<Vec<_>>()
        };
        let balances = |accounts: Vec<Account>| {
            accounts
                .into_iter()
                .map(|a| (a.id, a.debits_pending, a.debits_posted, a.credits_pending, a.credits_posted))
                .collect::<Vec<_>>()
        };
        assert_eq!(balances(accounts_warm), balances(accounts_cold));
        assert_eq!(strip(transfers_warm), strip(transfers_cold));
    }

    /// Another writer on the same file changes the ledger between two batches of this one:
    /// the clock tells, this writer forgets, and its next batch reads the change (here: a
    /// balance another writer spent, which must not be spent twice).
    #[tokio::test]
    async fn memory_is_forgotten_when_another_writer_changed_the_ledger() {
        let dir = tempfile::tempdir().unwrap();
        let path = database(&dir).await;
        let mut ours = open(&path).unwrap();
        let mut theirs = open(&path).unwrap();
        let mut memory = Memory::default();
        let mut their_memory = Memory::default();
        for commands in workload() {
            attempt(&mut ours, &mut memory, &commands, 0).unwrap();
        }
        // Account 4 holds 100 credited - 30 posted - 50 spent = 20.
        assert_eq!(memory.accounts.get(4).map(|a| a.credits_posted - a.debits_posted), Some(20));
        let spend = |id| vec![Command::CreateTransfers(vec![transfer(id, 4, 1, 20)])];
        let output = attempt(&mut theirs, &mut their_memory, &spend(30), 0).unwrap();
        assert_eq!(output.outcomes, [Outcome::Transfers(vec![CreateTransferResult::Ok])]);
        let output = attempt(&mut ours, &mut memory, &spend(31), 0).unwrap();
        assert_eq!(output.outcomes, [Outcome::Transfers(vec![CreateTransferResult::ExceedsCredits])]);
        assert_eq!(memory.accounts.get(4).map(|a| a.credits_posted - a.debits_posted), Some(0));
    }

    /// A failed sync fails the batches it was to cover, and every batch after it: an fsync
    /// is never retried as if nothing had happened.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_sync_stops_the_ledger_writes() {
        let dir = tempfile::tempdir().unwrap();
        let path = database(&dir).await;
        let sync: SyncFn = Box::new(|_| Err(std::io::Error::other("the disk is gone")));
        let writer = LedgerWriter::start_with(&path, Turn::default(), sync, None).unwrap();
        assert!(matches!(writer.commit(&accounts(1), 0).await, Err(StoreError::Durability)));
        assert!(matches!(writer.commit(&accounts(2), 0).await, Err(StoreError::Durability)));
    }
}
