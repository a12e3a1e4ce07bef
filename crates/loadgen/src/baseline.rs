//! The baseline: the per-request design most wallet backends use, on PostgreSQL, with no
//! HTTP in front (so it is an upper bound for that design). One database transaction per
//! transfer:
//!
//! ```sql
//! BEGIN;
//! UPDATE accounts SET balance = balance - $amount WHERE id = $from AND balance >= $amount;
//! UPDATE accounts SET balance = balance + $amount WHERE id = $to;
//! INSERT INTO transfers (idempotency_key, …) VALUES ($key, …);  -- key is UNIQUE
//! COMMIT;
//! ```
//!
//! driven by N concurrent tasks sharing a bounded sqlx pool, with durable commits
//! (`synchronous_commit` as the server has it, `on` by default), in a scratch database
//! of its own. Deadlocks (two transfers locking the same pair in opposite orders) are
//! retried, as such a service would.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::Context;
use sqlx::{PgPool, postgres::PgPoolOptions};
use tokio::task::JoinSet;
use uuid::Uuid;

use crate::{
    http::Clock,
    latency::Latencies,
    postgres::ScratchDatabase,
    workload::{FUNDING_AMOUNT, Random, Shape, TRANSFER_AMOUNT},
};

/// Most connections the baseline's pool opens. PostgreSQL allows 100 by default and
/// Coffer's pool (16) and the harness's admin connections need some of them; on two
/// cores, more backends than this only add contention. More tasks than connections wait
/// for one, as requests would in a service with the same pool.
pub const BASELINE_POOL_CONNECTIONS_MAX: u32 = 64;
/// Times one transfer is retried after a deadlock or serialization failure.
pub const BASELINE_RETRIES_MAX: u32 = 5;
/// Longest a task waits for a pooled connection before the transfer counts as an error.
pub const BASELINE_ACQUIRE_TIMEOUT_MS: u64 = 35_000;

const SCHEMA: &str = "
CREATE TABLE accounts (
    id BIGINT PRIMARY KEY,
    balance BIGINT NOT NULL
);
CREATE TABLE transfers (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    idempotency_key UUID NOT NULL UNIQUE,
    debit_account_id BIGINT NOT NULL REFERENCES accounts (id),
    credit_account_id BIGINT NOT NULL REFERENCES accounts (id),
    amount BIGINT NOT NULL CHECK (amount > 0),
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
";

/// What one baseline run measured, and whether its database adds up.
#[derive(Debug, Default)]
pub struct BaselineOutcome {
    /// Transfers committed in transactions started while measuring.
    pub measured_ok: u64,
    /// The measured window.
    pub measured: Duration,
    /// Latency of each transfer (pool wait included) started while measuring.
    pub latencies: Latencies,
    /// Transfers that failed while measuring (after retries), or found no funds.
    pub errors: u64,
    /// Deadlocks and serialization failures retried, over the whole run.
    pub retries: u64,
    /// The first error, for the report.
    pub first_error: Option<String>,
    /// CPU time the harness used while measuring, in seconds (the PostgreSQL server's
    /// own is not counted).
    pub client_cpu_seconds: f64,
    /// Check failures; empty when the database adds up.
    pub failures: Vec<String>,
    acknowledged_ok: u64,
    unknown: u64,
}

/// Runs the baseline on a scratch database of the server at `admin_url`: `wallets`
/// accounts funded with [`FUNDING_AMOUNT`], `tasks` concurrent tasks, transfers of
/// `shape`, then checks conservation and counts, and drops the database.
pub async fn run(
    admin_url: &str,
    shape: Shape,
    wallets: usize,
    tasks: usize,
    warmup: Duration,
    duration: Duration,
) -> anyhow::Result<BaselineOutcome> {
    let database = ScratchDatabase::create(admin_url, "baseline").await?;
    let result = run_on(&database.url, shape, wallets, tasks, warmup, duration).await;
    database.drop_database().await?;
    result
}

async fn run_on(
    url: &str,
    shape: Shape,
    wallets: usize,
    tasks: usize,
    warmup: Duration,
    duration: Duration,
) -> anyhow::Result<BaselineOutcome> {
    let connections = u32::try_from(tasks).unwrap_or(u32::MAX).clamp(1, BASELINE_POOL_CONNECTIONS_MAX);
    let pool = PgPoolOptions::new()
        .max_connections(connections)
        .acquire_timeout(Duration::from_millis(BASELINE_ACQUIRE_TIMEOUT_MS))
        .connect(url)
        .await
        .context("connecting to the baseline database")?;
    sqlx::raw_sql(SCHEMA).execute(&pool).await?;
    sqlx::query("INSERT INTO accounts (id, balance) SELECT g, $1 FROM generate_series(1, $2) AS g")
        .bind(FUNDING_AMOUNT as i64)
        .bind(wallets as i64)
        .execute(&pool)
        .await?;
    sqlx::query("ANALYZE").execute(&pool).await?;

    let clock = Clock::start(warmup, duration);
    let mut workers = JoinSet::new();
    let pool = Arc::new(pool);
    for _ in 0..tasks {
        let pool = pool.clone();
        workers.spawn(worker(pool, shape, wallets, clock));
    }
    tokio::time::sleep_until(clock.measure_from.into()).await;
    let cpu_start = crate::run::own_cpu_seconds();
    let mut total = BaselineOutcome::default();
    while let Some(outcome) = workers.join_next().await {
        let outcome = outcome?;
        total.measured_ok += outcome.measured_ok;
        total.latencies.merge(&outcome.latencies);
        total.errors += outcome.errors;
        total.retries += outcome.retries;
        total.acknowledged_ok += outcome.acknowledged_ok;
        total.unknown += outcome.unknown;
        total.first_error = total.first_error.or(outcome.first_error);
    }
    total.measured = Instant::now().saturating_duration_since(clock.measure_from);
    total.client_cpu_seconds = crate::run::own_cpu_seconds() - cpu_start;
    total.failures = check(&pool, wallets, total.acknowledged_ok, total.unknown).await?;
    pool.close().await;
    Ok(total)
}

async fn worker(pool: Arc<PgPool>, shape: Shape, wallets: usize, clock: Clock) -> BaselineOutcome {
    let mut outcome = BaselineOutcome::default();
    let mut random = Random::new(rand::random());
    while Instant::now() < clock.end {
        let (debit, credit) = shape.pick(&mut random, wallets);
        // Account ids are 1-based in the baseline's table.
        let (debit, credit) = (debit as i64 + 1, credit as i64 + 1);
        let key = Uuid::new_v4();
        let started = Instant::now();
        let measured = started >= clock.measure_from;
        let mut attempt = 0;
        let result = loop {
            match transfer(&pool, debit, credit, key).await {
                Err(error) if is_retryable(&error) && attempt < BASELINE_RETRIES_MAX => {
                    attempt += 1;
                    outcome.retries += 1;
                }
                result => break result,
            }
        };
        if measured {
            outcome.latencies.record(started.elapsed());
        }
        match result {
            Ok(true) => {
                outcome.acknowledged_ok += 1;
                outcome.measured_ok += u64::from(measured);
            }
            Ok(false) => {
                outcome.errors += u64::from(measured);
                outcome.first_error.get_or_insert_with(|| "insufficient funds".into());
            }
            Err(error) => {
                // A failed COMMIT may still have committed: the checks allow for it.
                outcome.unknown += 1;
                outcome.errors += u64::from(measured);
                outcome.first_error.get_or_insert_with(|| error.to_string());
            }
        }
    }
    outcome
}

/// One transfer in one transaction; `Ok(false)` when the debit account lacks the funds.
async fn transfer(pool: &PgPool, debit: i64, credit: i64, key: Uuid) -> Result<bool, sqlx::Error> {
    let amount = TRANSFER_AMOUNT as i64;
    let mut transaction = pool.begin().await?;
    let debited = sqlx::query("UPDATE accounts SET balance = balance - $1 WHERE id = $2 AND balance >= $1")
        .bind(amount)
        .bind(debit)
        .execute(&mut *transaction)
        .await?;
    if debited.rows_affected() == 0 {
        transaction.rollback().await?;
        return Ok(false);
    }
    sqlx::query("UPDATE accounts SET balance = balance + $1 WHERE id = $2")
        .bind(amount)
        .bind(credit)
        .execute(&mut *transaction)
        .await?;
    sqlx::query("INSERT INTO transfers (idempotency_key, debit_account_id, credit_account_id, amount) VALUES ($1, $2, $3, $4)")
        .bind(key)
        .bind(debit)
        .bind(credit)
        .bind(amount)
        .execute(&mut *transaction)
        .await?;
    transaction.commit().await?;
    Ok(true)
}

/// Deadlock detected (40P01) or serialization failure (40001): safe to run again.
fn is_retryable(error: &sqlx::Error) -> bool {
    error
        .as_database_error()
        .and_then(|error| error.code())
        .is_some_and(|code| code == "40P01" || code == "40001")
}

async fn check(
    pool: &PgPool,
    wallets: usize,
    acknowledged: u64,
    unknown: u64,
) -> anyhow::Result<Vec<String>> {
    let mut failures = Vec::new();
    let (sum, min): (i64, i64) =
        sqlx::query_as("SELECT SUM(balance)::BIGINT, MIN(balance) FROM accounts").fetch_one(pool).await?;
    let expected = (FUNDING_AMOUNT * wallets as u64) as i64;
    if sum != expected {
        failures.push(format!("baseline: money not conserved: balances sum to {sum}, expected {expected}"));
    }
    if min < 0 {
        failures.push(format!("baseline: an account is negative ({min})"));
    }
    let (stored,): (i64,) = sqlx::query_as("SELECT count(*) FROM transfers").fetch_one(pool).await?;
    let stored = stored as u64;
    if stored < acknowledged || stored > acknowledged + unknown {
        failures.push(format!(
            "baseline: {stored} transfers stored, {acknowledged} acknowledged ({unknown} unknown)"
        ));
    }
    Ok(failures)
}
