//! The PostgreSQL adapter: a bounded pool, shared by readers and the ledger's writers,
//! against a database that several coffer processes may share.
//!
//! A ledger transaction runs at READ COMMITTED and first locks the one row of
//! `ledger_clock` (`SELECT … FOR UPDATE`). That lock serialises ledger writers across all
//! processes and keeps timestamps strictly increasing; because every statement at READ
//! COMMITTED takes a fresh snapshot, the reads that follow the lock see every batch that
//! committed before it. (At REPEATABLE READ the snapshot would predate the lock and the
//! batch would be decided on stale balances.) Accounts the writer does not remember are
//! then read with `FOR UPDATE` in id order; remembered ones are not read at all, which is
//! safe only because every ledger writer takes the clock (see `memory.rs`: the clock is
//! the fence). A writer that changed balances without taking the clock would make the
//! others decide on stale balances.
//!
//! A read replica ([`Store::with_read_replica`](crate::Store::with_read_replica)) serves
//! the reads marked `replica` (history, reports, analytics, ledger lookups), each only
//! once the replica has replayed the primary's WAL up to where it was flushed when the
//! read began — so a read never misses a write acknowledged before it, on any node. A
//! replica that is further behind than the wait allows, or unreachable, is skipped: the
//! read goes to the primary.
//!
//! Many-row reads use `= ANY($1)` with one array parameter and writes use `UNNEST` of
//! arrays: one statement, one round trip, whatever the batch size.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use ledger::{Account, AccountBalance, Changes, CreateTransferResult, PendingStatus, Transfer};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use sqlx::{AssertSqlSafe, Connection as _};
use uuid::Uuid;

use crate::batch::{self, BatchOutput, LedgerTx};
use crate::codec::{
    ACCOUNT_COLUMNS, AccountRow, BalanceRow, FailureRow, PendingRow, TRANSFER_COLUMNS, TRANSFER_COLUMNS_T,
    TransferRow, bits64, int, uuid,
};
use crate::memory::Memory;
use crate::{AccountFilter, Command, Result, StoreError, StoreOptions, TransferNote, reads};

/// How long a caller waits for a pooled connection before the store reports an error.
/// Long enough to queue behind a few 8,190-event batches, short enough that an
/// overloaded node fails requests instead of piling them up.
const ACQUIRE_TIMEOUT_MS: u64 = 10_000;

/// The PostgreSQL store: one bounded pool, and this process's memory of the ledger
/// (held for the whole of each batch; batches are serialised by the clock lock anyway).
#[derive(Debug)]
pub(crate) struct PostgresStore {
    pub(crate) pool: PgPool,
    memory: Box<tokio::sync::Mutex<Memory>>,
    replica: Option<Replica>,
}

/// A streaming replica of the database, for the reads that may wait for it.
#[derive(Debug)]
pub(crate) struct Replica {
    pool: PgPool,
    /// Longest a read waits for the replica to catch up before it goes to the primary.
    max_wait: Duration,
    /// Set when the replica failed: skipped until then.
    skip_until: Mutex<Option<Instant>>,
}

/// How long an unreachable replica is skipped before it is tried again.
const REPLICA_PAUSE_AFTER_FAILURE: Duration = Duration::from_secs(1);
/// Between looks at a lagging replica's replay position.
const REPLICA_POLL: Duration = Duration::from_millis(2);

impl PostgresStore {
    pub(crate) async fn open(url: &str, options: StoreOptions) -> Result<Self> {
        let connect: PgConnectOptions = url.parse()?;
        // No ping before each use (`test_before_acquire`): it was a round trip per acquire.
        // A connection the server dropped fails its next statement instead; the ledger
        // batch retries that on a fresh connection, and a read answers 503 once.
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections.max(1))
            .test_before_acquire(false)
            .acquire_timeout(Duration::from_millis(ACQUIRE_TIMEOUT_MS))
            .connect_with(connect)
            .await?;
        Ok(Self { pool, memory: Box::default(), replica: None })
    }

    /// Sends the `replica` reads to the database at `url` (a streaming replica of this one).
    pub(crate) fn add_replica(&mut self, url: &str, max_connections: u32, max_wait: Duration) -> Result<()> {
        let connect: PgConnectOptions = url.parse()?;
        // Lazy: a replica that is down at start is skipped like one that goes down later.
        let pool = PgPoolOptions::new()
            .max_connections(max_connections.max(1))
            .test_before_acquire(false)
            .acquire_timeout(Duration::from_millis(ACQUIRE_TIMEOUT_MS))
            .connect_lazy_with(connect);
        self.replica = Some(Replica { pool, max_wait, skip_until: Mutex::new(None) });
        Ok(())
    }

    /// The pool, for reads and for writes outside ledger batches.
    pub(crate) fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The pool for a read that may be served by the replica: the replica once it has
    /// replayed everything the primary had flushed when this was called, else the primary.
    pub(crate) async fn reader(&self) -> PgPool {
        let Some(replica) = &self.replica else { return self.pool.clone() };
        if replica.skip_until.lock().expect("not poisoned").is_some_and(|until| Instant::now() < until) {
            metrics::counter!("coffer_replica_reads_total", "served_by" => "primary", "why" => "replica_failed").increment(1);
            return self.pool.clone();
        }
        // Where the primary's WAL is flushed: every acknowledged commit lies before it. The
        // primary failing this fails the read there too.
        let flushed: String =
            match sqlx::query_scalar("SELECT pg_current_wal_flush_lsn()::text").fetch_one(&self.pool).await {
                Ok(flushed) => flushed,
                Err(_) => return self.pool.clone(),
            };
        match replica.caught_up(&flushed).await {
            Ok(true) => {
                metrics::counter!("coffer_replica_reads_total", "served_by" => "replica", "why" => "caught_up").increment(1);
                replica.pool.clone()
            }
            Ok(false) => {
                metrics::counter!("coffer_replica_reads_total", "served_by" => "primary", "why" => "replica_lagging").increment(1);
                self.pool.clone()
            }
            Err(error) => {
                tracing::warn!(%error, "read replica unreachable; reading from the primary");
                *replica.skip_until.lock().expect("not poisoned") =
                    Some(Instant::now() + REPLICA_PAUSE_AFTER_FAILURE);
                metrics::counter!("coffer_replica_reads_total", "served_by" => "primary", "why" => "replica_failed").increment(1);
                self.pool.clone()
            }
        }
    }

    pub(crate) async fn migrate(&self) -> Result<()> {
        sqlx::migrate!("./migrations/postgres").run(&self.pool).await?;
        Ok(())
    }

    pub(crate) async fn commit(&self, commands: &[Command], expire_limit: usize) -> Result<BatchOutput> {
        batch::retrying(is_transient, || async {
            let mut memory = self.memory.lock().await;
            let attempted = self.attempt(&mut memory, commands, expire_limit).await;
            match &attempted {
                Ok(_) => memory.settle(),
                // Perhaps committed, perhaps not: the clock will tell.
                Err(_) => memory.forget(),
            }
            attempted
        })
        .await
    }

    async fn attempt(
        &self,
        memory: &mut Memory,
        commands: &[Command],
        expire_limit: usize,
    ) -> Result<BatchOutput> {
        let mut connection = self.pool.acquire().await?;
        let mut transaction = connection.begin().await?;
        let now = batch::now_ns();
        let output =
            batch::run(&mut PostgresTx { connection: &mut transaction }, memory, commands, expire_limit, now)
                .await?;
        transaction.commit().await?;
        Ok(output)
    }

    pub(crate) async fn accounts(&self, ids: &[u128]) -> Result<Vec<Account>> {
        let sql = format!("SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE id = ANY($1)");
        let rows: Vec<AccountRow> =
            sqlx::query_as(AssertSqlSafe(sql)).bind(uuids(ids)).fetch_all(&self.pool).await?;
        rows.into_iter().map(Account::try_from).collect()
    }

    pub(crate) async fn transfers(&self, ids: &[u128]) -> Result<Vec<(Transfer, Option<PendingStatus>)>> {
        let mut connection = self.pool.acquire().await?;
        select_transfers(&mut connection, ids).await
    }

    pub(crate) async fn account_transfers(&self, filter: &AccountFilter) -> Result<Vec<Transfer>> {
        let Some(bounds) = reads::bounds(filter) else { return Ok(Vec::new()) };
        let rows: Vec<TransferRow> = sqlx::query_as(AssertSqlSafe(reads::account_transfers(filter)))
            .bind(uuid(filter.account_id))
            .bind(bounds.timestamp_min)
            .bind(bounds.timestamp_max)
            .bind(bounds.limit)
            .fetch_all(&self.reader().await)
            .await?;
        rows.into_iter().map(TransferRow::transfer).collect()
    }

    pub(crate) async fn account_balances(&self, filter: &AccountFilter) -> Result<Vec<AccountBalance>> {
        let Some(bounds) = reads::bounds(filter) else { return Ok(Vec::new()) };
        let rows: Vec<BalanceRow> = sqlx::query_as(AssertSqlSafe(reads::account_balances(filter)))
            .bind(uuid(filter.account_id))
            .bind(bounds.timestamp_min)
            .bind(bounds.timestamp_max)
            .bind(bounds.limit)
            .fetch_all(&self.reader().await)
            .await?;
        rows.into_iter().map(AccountBalance::try_from).collect()
    }

    pub(crate) async fn transfers_count(&self) -> Result<u64> {
        let count: i64 = sqlx::query_scalar("SELECT count(*) FROM transfers").fetch_one(&self.pool).await?;
        u64::try_from(count).map_err(|_| StoreError::Corrupt(format!("negative count {count}")))
    }

    pub(crate) async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub(crate) async fn close(&self) {
        self.pool.close().await;
        if let Some(replica) = &self.replica {
            replica.pool.close().await;
        }
    }
}

impl Replica {
    /// Whether the replica has replayed the primary's WAL up to `flushed` within `max_wait`.
    async fn caught_up(&self, flushed: &str) -> Result<bool> {
        let started = Instant::now();
        let mut connection = self.pool.acquire().await?;
        loop {
            let replayed: Option<bool> = sqlx::query_scalar("SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn")
                .bind(flushed)
                .fetch_one(&mut *connection)
                .await?;
            match replayed {
                Some(true) => return Ok(true),
                // NULL: not a replica at all; never serve from it.
                None => return Err(StoreError::NotAReplica),
                Some(false) if started.elapsed() >= self.max_wait => return Ok(false),
                Some(false) => tokio::time::sleep(REPLICA_POLL).await,
            }
        }
    }
}

/// Serialization failures and deadlocks are resolved by running the transaction again;
/// so is a lost connection (the transaction it carried was rolled back, or committed, in
/// which case the re-run reads its effects and answers `exists`).
fn is_transient(error: &sqlx::Error) -> bool {
    const SERIALIZATION_FAILURE: &str = "40001";
    const DEADLOCK_DETECTED: &str = "40P01";
    match error {
        sqlx::Error::Database(error) => {
            matches!(error.code().as_deref(), Some(SERIALIZATION_FAILURE | DEADLOCK_DETECTED))
        }
        sqlx::Error::Io(_) => true,
        _ => false,
    }
}

fn uuids(ids: &[u128]) -> Vec<Uuid> {
    ids.iter().map(|&id| uuid(id)).collect()
}

async fn select_transfers(
    connection: &mut PgConnection,
    ids: &[u128],
) -> Result<Vec<(Transfer, Option<PendingStatus>)>> {
    let sql = format!(
        "SELECT {TRANSFER_COLUMNS_T}, p.status FROM transfers t \
         LEFT JOIN pending_transfers p ON p.id = t.id WHERE t.id = ANY($1)"
    );
    let rows: Vec<TransferRow> =
        sqlx::query_as(AssertSqlSafe(sql)).bind(uuids(ids)).fetch_all(connection).await?;
    rows.into_iter().map(TransferRow::decode).collect()
}

/// The ledger transaction on one pooled connection.
struct PostgresTx<'c> {
    connection: &'c mut PgConnection,
}

impl LedgerTx for PostgresTx<'_> {
    async fn lock_clock(&mut self) -> Result<u64> {
        let last: i64 = sqlx::query_scalar("SELECT last_timestamp FROM ledger_clock WHERE id = 1 FOR UPDATE")
            .fetch_one(&mut *self.connection)
            .await?;
        u64::try_from(last).map_err(|_| StoreError::Corrupt(format!("negative ledger clock {last}")))
    }

    async fn due_pending(&mut self, now: u64, limit: usize) -> Result<Vec<u128>> {
        let ids: Vec<Uuid> = sqlx::query_scalar(
            "SELECT id FROM pending_transfers WHERE status = 'pending' AND expires_at IS NOT NULL \
             AND expires_at <= $1 ORDER BY expires_at, id LIMIT $2",
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
        let rows: Vec<FailureRow> =
            sqlx::query_as("SELECT id, result FROM transfer_failures WHERE id = ANY($1)")
                .bind(uuids(ids))
                .fetch_all(&mut *self.connection)
                .await?;
        rows.into_iter().map(FailureRow::decode).collect()
    }

    async fn lock_accounts(&mut self, ids: &[u128]) -> Result<Vec<Account>> {
        let sql = format!("SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE id = ANY($1) ORDER BY id FOR UPDATE");
        let rows: Vec<AccountRow> =
            sqlx::query_as(AssertSqlSafe(sql)).bind(uuids(ids)).fetch_all(&mut *self.connection).await?;
        rows.into_iter().map(Account::try_from).collect()
    }

    async fn write_events(&mut self, events: &[crate::NewEvent]) -> Result<()> {
        // One statement for the batch's events; ORDINALITY keeps their order in `seq`.
        sqlx::query(
            "INSERT INTO outbox (id, type, customer_id, payload, created_at) \
             SELECT id, type, customer_id, payload, created_at \
             FROM UNNEST($1::uuid[], $2::text[], $3::uuid[], $4::text[], $5::int8[]) \
             WITH ORDINALITY AS e(id, type, customer_id, payload, created_at, n) ORDER BY n",
        )
        .bind(events.iter().map(|event| event.id).collect::<Vec<_>>())
        .bind(events.iter().map(|event| event.event_type.as_str()).collect::<Vec<_>>())
        .bind(events.iter().map(|event| event.customer_id).collect::<Vec<_>>())
        .bind(events.iter().map(|event| event.payload.as_str()).collect::<Vec<_>>())
        .bind(events.iter().map(|event| crate::codec::saturating(event.created_at)).collect::<Vec<_>>())
        .execute(&mut *self.connection)
        .await?;
        Ok(())
    }

    async fn write_responses(&mut self, rows: &[crate::idempotency::ResponseRow]) -> Result<()> {
        // The same upsert as `idempotency::UPSERT_RESPONSE`, for all rows in one statement
        // (the batch never holds two answers for one key).
        sqlx::query(
            "INSERT INTO idempotency_keys \
             (owner_id, key, request_hash, response_status, response_body, locked_until, created_at) \
             SELECT owner_id, key, request_hash, status, body, created_at, created_at \
             FROM UNNEST($1::uuid[], $2::text[], $3::bytea[], $4::int4[], $5::text[], $6::int8[]) \
             AS r(owner_id, key, request_hash, status, body, created_at) \
             ON CONFLICT (owner_id, key) DO UPDATE SET response_status = EXCLUDED.response_status, \
             response_body = EXCLUDED.response_body \
             WHERE idempotency_keys.response_status IS NULL \
             AND idempotency_keys.request_hash = EXCLUDED.request_hash",
        )
        .bind(rows.iter().map(|row| row.key.owner_id).collect::<Vec<_>>())
        .bind(rows.iter().map(|row| row.key.key.as_str()).collect::<Vec<_>>())
        .bind(rows.iter().map(|row| row.key.request_hash.as_slice()).collect::<Vec<_>>())
        .bind(rows.iter().map(|row| i32::from(row.response.status)).collect::<Vec<_>>())
        .bind(rows.iter().map(|row| row.response.body.as_str()).collect::<Vec<_>>())
        .bind(rows.iter().map(|row| crate::codec::saturating(row.created_at)).collect::<Vec<_>>())
        .execute(&mut *self.connection)
        .await?;
        Ok(())
    }

    async fn write_payments(&mut self, changes: &[crate::PaymentChange]) -> Result<()> {
        // Statement by statement: a batch holds a few payments at most.
        use crate::codec::saturating as signed;
        for change in changes {
            match change {
                crate::PaymentChange::Record(kind, row) => {
                    sqlx::query(AssertSqlSafe(crate::payments::insert_text(*kind)))
                        .bind(row.id)
                        .bind(row.customer_id)
                        .bind(row.wallet_id)
                        .bind(signed(row.amount))
                        .bind(&row.currency)
                        .bind(row.status.as_str())
                        .bind(&row.failure_code)
                        .bind(&row.provider_id)
                        .bind(signed(row.created_at))
                        .bind(signed(row.updated_at))
                        .execute(&mut *self.connection)
                        .await?;
                }
                crate::PaymentChange::Finish { kind, id, finish, at, event } => {
                    let updated = sqlx::query(AssertSqlSafe(crate::payments::finish_text(*kind)))
                        .bind(id)
                        .bind(finish.status.as_str())
                        .bind(&finish.failure_code)
                        .bind(&finish.provider_id)
                        .bind(signed(*at))
                        .execute(&mut *self.connection)
                        .await?
                        .rows_affected();
                    if updated == 1 {
                        self.write_events(std::slice::from_ref(event)).await?;
                    }
                }
            }
        }
        Ok(())
    }

    async fn write_notes(&mut self, notes: &[TransferNote]) -> Result<()> {
        sqlx::query(
            "INSERT INTO transfer_notes (transfer_id, kind, description) \
             SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::text[])",
        )
        .bind(notes.iter().map(|note| uuid(note.transfer_id)).collect::<Vec<_>>())
        .bind(notes.iter().map(|note| note.kind.as_str()).collect::<Vec<_>>())
        .bind(notes.iter().map(|note| note.description.clone()).collect::<Vec<_>>())
        .execute(&mut *self.connection)
        .await?;
        Ok(())
    }

    async fn chain_head(&mut self) -> Result<Option<ledger::chain::Link>> {
        let row: Option<crate::codec::LinkRow> = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT {} FROM ledger_chain ORDER BY seq DESC LIMIT 1",
            crate::codec::LINK_COLUMNS
        )))
        .fetch_optional(&mut *self.connection)
        .await?;
        row.map(ledger::chain::Link::try_from).transpose()
    }

    async fn write_link(&mut self, link: &ledger::chain::Link) -> Result<()> {
        sqlx::query(
            "INSERT INTO ledger_chain (seq, first_timestamp, last_timestamp, transfers, hash) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(int(link.seq))
        .bind(int(link.first_timestamp))
        .bind(int(link.last_timestamp))
        .bind(i32::try_from(link.transfers).unwrap_or(i32::MAX))
        .bind(&link.hash[..])
        .execute(&mut *self.connection)
        .await?;
        Ok(())
    }

    async fn write(&mut self, changes: &Changes, pending: &[PendingRow], last_timestamp: u64) -> Result<()> {
        let connection = &mut *self.connection;
        let accounts = &changes.accounts_created;
        if !accounts.is_empty() {
            sqlx::query(AssertSqlSafe(format!(
                "INSERT INTO accounts ({ACCOUNT_COLUMNS}) SELECT * FROM UNNEST($1::uuid[], $2::int8[], \
                 $3::int8[], $4::int8[], $5::int8[], $6::uuid[], $7::int8[], $8::int8[], $9::int8[], \
                 $10::int4[], $11::int4[], $12::int8[])"
            )))
            .bind(accounts.iter().map(|a| uuid(a.id)).collect::<Vec<_>>())
            .bind(accounts.iter().map(|a| int(a.debits_pending)).collect::<Vec<_>>())
            .bind(accounts.iter().map(|a| int(a.debits_posted)).collect::<Vec<_>>())
            .bind(accounts.iter().map(|a| int(a.credits_pending)).collect::<Vec<_>>())
            .bind(accounts.iter().map(|a| int(a.credits_posted)).collect::<Vec<_>>())
            .bind(accounts.iter().map(|a| uuid(a.user_data_128)).collect::<Vec<_>>())
            .bind(accounts.iter().map(|a| bits64(a.user_data_64)).collect::<Vec<_>>())
            .bind(accounts.iter().map(|a| i64::from(a.user_data_32)).collect::<Vec<_>>())
            .bind(accounts.iter().map(|a| i64::from(a.ledger)).collect::<Vec<_>>())
            .bind(accounts.iter().map(|a| i32::from(a.code)).collect::<Vec<_>>())
            .bind(accounts.iter().map(|a| i32::from(a.flags.bits())).collect::<Vec<_>>())
            .bind(accounts.iter().map(|a| int(a.timestamp)).collect::<Vec<_>>())
            .execute(&mut *connection)
            .await?;
        }
        let accounts = &changes.accounts_updated;
        if !accounts.is_empty() {
            let updated = sqlx::query(
                "UPDATE accounts AS a SET debits_pending = v.debits_pending, debits_posted = v.debits_posted, \
                 credits_pending = v.credits_pending, credits_posted = v.credits_posted, flags = v.flags \
                 FROM UNNEST($1::uuid[], $2::int8[], $3::int8[], $4::int8[], $5::int8[], $6::int4[]) \
                 AS v(id, debits_pending, debits_posted, credits_pending, credits_posted, flags) \
                 WHERE a.id = v.id",
            )
            .bind(accounts.iter().map(|a| uuid(a.id)).collect::<Vec<_>>())
            .bind(accounts.iter().map(|a| int(a.debits_pending)).collect::<Vec<_>>())
            .bind(accounts.iter().map(|a| int(a.debits_posted)).collect::<Vec<_>>())
            .bind(accounts.iter().map(|a| int(a.credits_pending)).collect::<Vec<_>>())
            .bind(accounts.iter().map(|a| int(a.credits_posted)).collect::<Vec<_>>())
            .bind(accounts.iter().map(|a| i32::from(a.flags.bits())).collect::<Vec<_>>())
            .execute(&mut *connection)
            .await?
            .rows_affected();
            if updated != accounts.len() as u64 {
                return Err(StoreError::Corrupt(format!(
                    "updated {updated} of {} accounts: some vanished mid-transaction",
                    accounts.len()
                )));
            }
        }
        let transfers = &changes.transfers_created;
        if !transfers.is_empty() {
            sqlx::query(AssertSqlSafe(format!(
                "INSERT INTO transfers ({TRANSFER_COLUMNS}) SELECT * FROM UNNEST($1::uuid[], $2::uuid[], \
                 $3::uuid[], $4::int8[], $5::uuid[], $6::uuid[], $7::int8[], $8::int8[], $9::int8[], \
                 $10::int8[], $11::int4[], $12::int4[], $13::int8[])"
            )))
            .bind(transfers.iter().map(|t| uuid(t.id)).collect::<Vec<_>>())
            .bind(transfers.iter().map(|t| uuid(t.debit_account_id)).collect::<Vec<_>>())
            .bind(transfers.iter().map(|t| uuid(t.credit_account_id)).collect::<Vec<_>>())
            .bind(transfers.iter().map(|t| int(t.amount)).collect::<Vec<_>>())
            .bind(transfers.iter().map(|t| uuid(t.pending_id)).collect::<Vec<_>>())
            .bind(transfers.iter().map(|t| uuid(t.user_data_128)).collect::<Vec<_>>())
            .bind(transfers.iter().map(|t| bits64(t.user_data_64)).collect::<Vec<_>>())
            .bind(transfers.iter().map(|t| i64::from(t.user_data_32)).collect::<Vec<_>>())
            .bind(transfers.iter().map(|t| i64::from(t.timeout)).collect::<Vec<_>>())
            .bind(transfers.iter().map(|t| i64::from(t.ledger)).collect::<Vec<_>>())
            .bind(transfers.iter().map(|t| i32::from(t.code)).collect::<Vec<_>>())
            .bind(transfers.iter().map(|t| i32::from(t.flags.bits())).collect::<Vec<_>>())
            .bind(transfers.iter().map(|t| int(t.timestamp)).collect::<Vec<_>>())
            .execute(&mut *connection)
            .await?;
        }
        if !pending.is_empty() {
            sqlx::query(
                "INSERT INTO pending_transfers (id, status, expires_at) \
                 SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::int8[]) \
                 ON CONFLICT (id) DO UPDATE SET status = EXCLUDED.status",
            )
            .bind(pending.iter().map(|p| uuid(p.id)).collect::<Vec<_>>())
            .bind(pending.iter().map(|p| p.status.as_str()).collect::<Vec<_>>())
            .bind(pending.iter().map(|p| p.expires_at).collect::<Vec<_>>())
            .execute(&mut *connection)
            .await?;
        }
        let failed = &changes.failed_transfers;
        if !failed.is_empty() {
            sqlx::query(
                "INSERT INTO transfer_failures (id, result) SELECT * FROM UNNEST($1::uuid[], $2::text[])",
            )
            .bind(failed.iter().map(|(id, _)| uuid(*id)).collect::<Vec<_>>())
            .bind(failed.iter().map(|(_, result)| result.as_str()).collect::<Vec<_>>())
            .execute(&mut *connection)
            .await?;
        }
        let balances = &changes.balances;
        if !balances.is_empty() {
            sqlx::query(AssertSqlSafe(format!(
                "INSERT INTO account_balances ({}) SELECT * FROM UNNEST($1::uuid[], $2::int8[], $3::int8[], \
                 $4::int8[], $5::int8[], $6::int8[])",
                crate::codec::BALANCE_COLUMNS
            )))
            .bind(balances.iter().map(|b| uuid(b.account_id)).collect::<Vec<_>>())
            .bind(balances.iter().map(|b| int(b.timestamp)).collect::<Vec<_>>())
            .bind(balances.iter().map(|b| int(b.debits_pending)).collect::<Vec<_>>())
            .bind(balances.iter().map(|b| int(b.debits_posted)).collect::<Vec<_>>())
            .bind(balances.iter().map(|b| int(b.credits_pending)).collect::<Vec<_>>())
            .bind(balances.iter().map(|b| int(b.credits_posted)).collect::<Vec<_>>())
            .execute(&mut *connection)
            .await?;
        }
        sqlx::query("UPDATE ledger_clock SET last_timestamp = $1 WHERE id = 1")
            .bind(int(last_timestamp))
            .execute(&mut *connection)
            .await?;
        Ok(())
    }
}
