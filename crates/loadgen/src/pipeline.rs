//! The `pipeline` scenario: Coffer's commit pipeline and store in this process, with no
//! transport in front — batches of `--batch-size` transfers handed to
//! `ledger_api::enqueue_transfers`, exactly as the REST and gRPC handlers hand theirs, by
//! `--batch-connections` tasks each keeping one batch in the pipeline. It is what the
//! server could sustain if HTTP and gRPC cost nothing, so `grpc-stream` and `batch` can
//! be read against it.
//!
//! The store is opened as `coffer serve` opens it (SQLite in a temporary directory, or a
//! scratch PostgreSQL database), with the server's default pool and commit queue. The
//! checks are the HTTP scenarios' (`http::audit` over every account read back from the
//! store, and the sampled transfers looked up), so the row is checked like the others.
//! Everything runs in the harness, so its CPU is the harness's own.

use std::{sync::Arc, time::Instant};

use anyhow::{Context, ensure};
use coffer::{
    commit::{CommitPipeline, PipelineConfig},
    config::DatabaseArgs,
    ledger_api,
};
use ledger::{AccountFlags, BATCH_EVENTS_MAX, CreateAccountResult, CreateTransferResult, Transfer};
use store::Store;
use uuid::Uuid;

use crate::{
    api::{AccountView, BatchOutcome},
    http::{self, Clock, WriteOutcome, collect_writes},
    postgres::ScratchDatabase,
    run::own_cpu_seconds,
    workload::{CODE, FUNDING_AMOUNT, FUNDING_WORKER, LEDGER, Layout, Random, Shape, TRANSFER_AMOUNT},
};

/// The server's default commit queue (`COFFER_COMMIT_QUEUE_MAX`), in requests.
const COMMIT_QUEUE_REQUESTS_MAX: usize = 4096;

/// The server's default database pool (`COFFER_DATABASE_MAX_CONNECTIONS`).
const DATABASE_CONNECTIONS_MAX: u32 = 16;

/// What the `pipeline` scenario measured, and what its checks found.
#[derive(Debug)]
pub struct PipelineOutcome {
    pub writes: WriteOutcome,
    /// Cores this process kept busy while measuring (the pipeline, the store and the
    /// workers that feed them).
    pub cores: f64,
    /// Check failures; empty when the ledger is right.
    pub failures: Vec<String>,
}

/// The store and pipeline of one run, and where their data lives.
struct Running {
    store: Store,
    pipeline: CommitPipeline,
    task: coffer::commit::pipeline::PipelineTask,
    _data_dir: tempfile::TempDir,
    database: Option<ScratchDatabase>,
}

impl Running {
    async fn start(postgres_admin_url: Option<&str>) -> anyhow::Result<Self> {
        let data_dir = tempfile::Builder::new().prefix("coffer-loadgen-pipeline-").tempdir()?;
        let database = match postgres_admin_url {
            Some(url) => Some(ScratchDatabase::create(url, "pipeline").await?),
            None => None,
        };
        let args = DatabaseArgs {
            data_dir: data_dir.path().to_owned(),
            database_url: database.as_ref().map(|database| database.url.clone()),
            database_max_connections: DATABASE_CONNECTIONS_MAX,
        };
        let store = coffer::server::open_store(&args).await.context("opening the store")?;
        let (pipeline, task) = CommitPipeline::start(
            store.clone(),
            PipelineConfig { queue_requests_max: COMMIT_QUEUE_REQUESTS_MAX },
        );
        Ok(Self { store, pipeline, task, _data_dir: data_dir, database })
    }

    async fn stop(self) -> anyhow::Result<()> {
        self.task.shutdown().await;
        self.store.close().await;
        if let Some(database) = self.database {
            database.drop_database().await?;
        }
        Ok(())
    }
}

/// Runs the scenario: setup, `tasks` workers until the clock's end, then the checks.
pub async fn run(
    postgres_admin_url: Option<&str>,
    accounts: usize,
    shape: Shape,
    size: usize,
    tasks: usize,
    clock_of: impl FnOnce() -> Clock,
) -> anyhow::Result<PipelineOutcome> {
    let running = Running::start(postgres_admin_url).await?;
    let layout = Arc::new(Layout::new(accounts));
    setup(&running.pipeline, &layout).await?;
    let clock = clock_of();
    let workers: Vec<_> = (0..tasks)
        .map(|worker| write_worker(running.pipeline.clone(), layout.clone(), shape, worker, size, clock))
        .collect();
    let cpu_at_start = async {
        tokio::time::sleep_until(clock.measure_from.into()).await;
        own_cpu_seconds()
    };
    let (writes, cpu_at_start) = tokio::join!(collect_writes(workers), cpu_at_start);
    let mut writes = writes?;
    writes.measured = clock.measured();
    let cores = (own_cpu_seconds() - cpu_at_start) / writes.measured.as_secs_f64().max(f64::MIN_POSITIVE);
    let failures = check(&running.store, &layout, &writes).await?;
    running.stop().await?;
    Ok(PipelineOutcome { writes, cores, failures })
}

/// The workload's accounts and funding, through the pipeline as the API would send them.
async fn setup(pipeline: &CommitPipeline, layout: &Layout) -> anyhow::Result<()> {
    let mut accounts: Vec<ledger::Account> = (0..layout.wallets)
        .map(|index| ledger::Account {
            id: layout.wallet_id(index),
            ledger: LEDGER,
            code: CODE,
            flags: AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS,
            ..ledger::Account::default()
        })
        .collect();
    accounts.push(ledger::Account {
        id: layout.funding_id(),
        ledger: LEDGER,
        code: CODE,
        ..Default::default()
    });
    for chunk in accounts.chunks(BATCH_EVENTS_MAX) {
        let results = ledger_api::create_accounts(pipeline, chunk.to_vec()).await?;
        ensure!(
            results.iter().all(|result| *result == CreateAccountResult::Ok),
            "creating the accounts: {results:?}"
        );
    }
    let funding: Vec<Transfer> = (0..layout.wallets)
        .map(|index| Transfer {
            id: layout.transfer_id(FUNDING_WORKER, index as u64),
            debit_account_id: layout.funding_id(),
            credit_account_id: layout.wallet_id(index),
            amount: FUNDING_AMOUNT,
            ledger: LEDGER,
            code: CODE,
            ..Transfer::default()
        })
        .collect();
    for chunk in funding.chunks(BATCH_EVENTS_MAX) {
        let results = ledger_api::create_transfers(pipeline, chunk.to_vec()).await?;
        ensure!(results.iter().all(|result| *result == CreateTransferResult::Ok), "funding the wallets");
    }
    Ok(())
}

async fn write_worker(
    pipeline: CommitPipeline,
    layout: Arc<Layout>,
    shape: Shape,
    worker: usize,
    size: usize,
    clock: Clock,
) -> WriteOutcome {
    let mut outcome = WriteOutcome::for_worker();
    let mut random = Random::new(rand::random());
    let mut sequence = 0u64;
    while Instant::now() < clock.end {
        let batch: Vec<Transfer> = (0..size)
            .map(|_| {
                let (debit, credit) = shape.pick(&mut random, layout.wallets);
                let id = layout.transfer_id(worker, sequence);
                sequence += 1;
                Transfer {
                    id,
                    debit_account_id: layout.wallet_id(debit),
                    credit_account_id: layout.wallet_id(credit),
                    amount: TRANSFER_AMOUNT,
                    ledger: LEDGER,
                    code: CODE,
                    ..Transfer::default()
                }
            })
            .collect();
        let first = (batch[0].id, batch[0].debit_account_id, batch[0].credit_account_id);
        let sent = Instant::now();
        let result = match ledger_api::enqueue_transfers(&pipeline, batch) {
            Ok(results) => results.await,
            Err(error) => Err(error),
        };
        let measured = sent >= clock.measure_from;
        if measured {
            outcome.latencies.record(sent.elapsed());
        }
        let result = result
            .map(|results| BatchOutcome {
                ok: results.iter().map(|result| *result == CreateTransferResult::Ok).collect(),
                first_failure: results
                    .iter()
                    .find(|result| **result != CreateTransferResult::Ok)
                    .map(|result| result.as_str().to_owned()),
            })
            .map_err(|error| anyhow::anyhow!("{error}"));
        if outcome.count(result, size, first, measured, &mut random) {
            tokio::time::sleep(std::time::Duration::from_millis(http::ERROR_BACKOFF_MS)).await;
        }
    }
    outcome
}

/// The HTTP scenarios' checks, on accounts and transfers read from the store.
async fn check(store: &Store, layout: &Layout, outcome: &WriteOutcome) -> anyhow::Result<Vec<String>> {
    let ids: Vec<u128> =
        (0..layout.wallets).map(|index| layout.wallet_id(index)).chain([layout.funding_id()]).collect();
    let mut accounts = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(BATCH_EVENTS_MAX) {
        // The store answers in id order; the checks want the layout's.
        let found = store.accounts(chunk).await?;
        ensure!(found.len() == chunk.len(), "{} of {} accounts read back", found.len(), chunk.len());
        let in_layout_order = chunk.iter().map(|id| {
            let at =
                found.binary_search_by_key(id, |account| account.id).expect("every account was read back");
            found[at]
        });
        accounts.extend(in_layout_order.map(|account| AccountView {
            id: Uuid::from_u128(account.id),
            ledger: account.ledger,
            flags: account.flags.names().map(str::to_owned).collect(),
            debits_pending: account.debits_pending,
            debits_posted: account.debits_posted,
            credits_pending: account.credits_pending,
            credits_posted: account.credits_posted,
        }));
    }
    let mut failures = http::audit(layout, &accounts, outcome.acknowledged_ok, outcome.unknown);
    for (id, debit, credit) in outcome.samples() {
        match store.transfers(&[*id]).await?.first() {
            Some(transfer)
                if transfer.debit_account_id == *debit
                    && transfer.credit_account_id == *credit
                    && transfer.amount == TRANSFER_AMOUNT => {}
            found => failures
                .push(format!("acknowledged transfer {} reads back as {found:?}", Uuid::from_u128(*id))),
        }
    }
    Ok(failures)
}
