//! Store throughput: commits batches of 8,190 random transfers among 10,000 accounts for
//! about ten seconds and prints transfers per second, on SQLite (a temporary file) and on
//! PostgreSQL when an admin URL is given (a scratch database is created and dropped).
//!
//! ```text
//! cargo run --release -p store --example commit_bench [postgres://postgres@127.0.0.1:5432/postgres]
//! ```

use std::time::{Duration, Instant};

use ledger::{Account, AccountFlags, CreateAccountResult, CreateTransferResult, Transfer};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sqlx::{AssertSqlSafe, Connection, PgConnection};
use store::{Command, Outcome, Store, StoreOptions};

/// Accounts the transfers move money among.
const ACCOUNTS: usize = 10_000;
/// Transfers per commit: the ledger's batch size.
const BATCH_TRANSFERS: usize = ledger::BATCH_EVENTS_MAX;
/// How long each backend is measured.
const RUN_DURATION_MS: u64 = 10_000;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let url = format!("sqlite:{}", dir.path().join("bench.db").display());
    run("sqlite", &url).await?;

    if let Some(admin) = std::env::args().nth(1) {
        let name = format!("coffer_bench_{:016x}", rand::random::<u64>());
        let mut connection = PgConnection::connect(&admin).await?;
        sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&mut connection).await?;
        let base = admin.rsplit_once('/').map_or(admin.as_str(), |(base, _)| base);
        let result = run("postgres", &format!("{base}/{name}")).await;
        sqlx::query(AssertSqlSafe(format!("DROP DATABASE {name} WITH (FORCE)")))
            .execute(&mut connection)
            .await?;
        result?;
    }
    Ok(())
}

async fn run(label: &str, url: &str) -> Result<(), Box<dyn std::error::Error>> {
    let store = Store::open(url, StoreOptions::default()).await?;
    store.migrate().await?;
    let mut rng = StdRng::seed_from_u64(1);
    let ids: Vec<u128> = (0..ACCOUNTS).map(|_| rng.random_range(1..u128::MAX)).collect();
    for chunk in ids.chunks(ledger::BATCH_EVENTS_MAX) {
        let accounts = chunk
            .iter()
            .map(|&id| Account { id, ledger: 1, code: 1, flags: AccountFlags::empty(), ..Account::default() })
            .collect();
        let outcomes = store.commit(&[Command::CreateAccounts(accounts)]).await?;
        let Some(Outcome::Accounts(results)) = outcomes.first() else { return Err("no outcome".into()) };
        assert!(results.iter().all(|r| *r == CreateAccountResult::Ok));
    }

    let started = Instant::now();
    let mut transfers = 0usize;
    let mut latencies = Vec::new();
    while started.elapsed() < Duration::from_millis(RUN_DURATION_MS) {
        let batch: Vec<Transfer> = (0..BATCH_TRANSFERS)
            .map(|_| {
                let debit = rng.random_range(0..ACCOUNTS);
                let credit = (debit + rng.random_range(1..ACCOUNTS)) % ACCOUNTS;
                Transfer {
                    id: rng.random_range(1..u128::MAX),
                    debit_account_id: ids[debit],
                    credit_account_id: ids[credit],
                    amount: rng.random_range(1..1_000),
                    ledger: 1,
                    code: 1,
                    ..Transfer::default()
                }
            })
            .collect();
        let batch_started = Instant::now();
        let outcomes = store.commit(&[Command::CreateTransfers(batch)]).await?;
        latencies.push(batch_started.elapsed());
        let Some(Outcome::Transfers(results)) = outcomes.first() else { return Err("no outcome".into()) };
        transfers += results.iter().filter(|r| **r == CreateTransferResult::Ok).count();
    }
    let elapsed = started.elapsed();
    latencies.sort_unstable();
    let p50 = latencies[latencies.len() / 2];
    let max = latencies[latencies.len() - 1];
    println!(
        "{label}: {transfers} transfers in {} batches, {:.1} s: {:.0} transfers/s (batch p50 {} ms, max {} ms)",
        latencies.len(),
        elapsed.as_secs_f64(),
        transfers as f64 / elapsed.as_secs_f64(),
        p50.as_millis(),
        max.as_millis(),
    );
    assert_eq!(store.transfers_count().await?, transfers as u64);
    store.close().await;
    Ok(())
}
