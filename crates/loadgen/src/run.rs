//! What a run does, in order: the core in memory, then each HTTP and gRPC scenario on
//! each backend (a fresh Coffer child process and database per scenario, so every
//! scenario starts from an empty ledger and its server's peak RSS is its own), the
//! `pipeline` scenario (the commit pipeline in process, no transport) on each backend,
//! then the baseline at each concurrency, then the ratios and comparisons. The `reports`
//! scenario (only when asked for by name) runs per backend like the HTTP scenarios, on a
//! history it loads first. A scenario that fails to run, or whose checks fail, is
//! recorded and the run goes on; any failure makes the run fail at the end.

use std::{
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::bail;

use clap::ValueEnum;

use crate::{
    api::Api,
    baseline,
    commits::CommitCounters,
    core,
    grpc::{self, GRPC_CONNECTIONS_MAX, GrpcMode, STREAMS_MAX},
    http::{self, Clock, WriteMode},
    pipeline, postgres,
    report::{Checks, Report, Row, System},
    reports::{self, History},
    server::ChildServer,
    wallet,
    workload::{Layout, Shape, WALLETS_MAX, WALLETS_MIN},
};

/// The PostgreSQL the baseline uses when neither `--database-url` nor
/// `COFFER_BENCH_DATABASE_URL` names one, if it answers.
pub const BASELINE_DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
/// The environment variable naming the baseline's PostgreSQL.
pub const BASELINE_URL_ENV: &str = "COFFER_BENCH_DATABASE_URL";
/// The baseline's smaller concurrency, beside the one `single` uses: the targets quote
/// the baseline at 16 connections.
pub const BASELINE_TASKS_LOW: usize = 16;
/// Most connections (tasks) any scenario may use: past this the client, not the server,
/// is what a 2-core machine measures, and file descriptors run short.
pub const CONNECTIONS_MAX: usize = 4096;

/// Which scenarios to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    /// All of them.
    All,
    /// The ledger core alone, in memory, one thread.
    Core,
    /// POST /v1/ledger/transfers with many transfers per request.
    Batch,
    /// One transfer per request.
    Single,
    /// CreateTransfers over gRPC (coffer-client) with many transfers per call.
    GrpcBatch,
    /// CreateTransfers over gRPC, one transfer per call, many calls multiplexed over a
    /// few HTTP/2 connections.
    GrpcSingle,
    /// CreateTransfersStream: a few streams, each keeping batches in flight.
    GrpcStream,
    /// Batches through the commit pipeline and store in this process, no transport: what
    /// the transports are read against.
    Pipeline,
    /// GET /v1/ledger/accounts/{id}.
    Reads,
    /// POST /v1/transfers through the full wallet API, one transfer per request.
    Wallet,
    /// Only the per-request PostgreSQL baseline.
    Baseline,
    /// GET /v1/reports/monthly/{year}/{month} over a bulk-loaded history of expenses
    /// (1,000,000 by default). Not part of `all`: loading takes minutes.
    Reports,
}

/// What drives the `single`, `reads` and `wallet` scenarios (`batch`, the setup and the
/// checks always use reqwest: they send few requests).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum Client {
    /// The light HTTP/1.1 client (`wire`): raw keep-alive connections, requests built
    /// once and patched in place, only what the checks need parsed.
    #[default]
    Light,
    /// reqwest, as before the light client: reproduces the figures taken with it.
    Reqwest,
}

/// The size of the `reports` scenario's history and how many reports it times.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReportsOptions {
    /// Customers whose expenses are loaded (the measured ones among them).
    pub customers: usize,
    /// Expenses per customer, income included, over [`reports::MONTHS`] months.
    pub expenses_per_customer: usize,
    /// Reports timed one after the other (after the first and a warm-up), over HTTP and
    /// again in process.
    pub requests: usize,
}

impl Default for ReportsOptions {
    /// The requirement's size: 1,000,000 expenses across 10,000 customers.
    fn default() -> Self {
        Self { customers: 10_000, expenses_per_customer: 100, requests: 1_000 }
    }
}

/// Most reports one run may time per backend and path: a million sequential requests
/// already take far longer than the load.
pub const REPORT_REQUESTS_MAX: usize = 1_000_000;

/// Where the baseline runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BaselineDatabase {
    /// `--database-url`, else `COFFER_BENCH_DATABASE_URL`, else [`BASELINE_DEFAULT_URL`]
    /// if it answers; skipped (and said so) otherwise.
    Auto,
    /// This PostgreSQL server (an admin URL; a scratch database is made on it).
    Url(String),
    /// Do not run the baseline.
    Skip,
}

/// Everything a run needs; the binary fills it from the command line.
#[derive(Clone, Debug)]
pub struct Options {
    pub scenario: Scenario,
    /// Also run the HTTP scenarios on PostgreSQL (an admin URL on which scratch
    /// databases are created and dropped).
    pub database_url: Option<String>,
    /// Target this running server instead of starting one (`http://host:port`).
    pub url: Option<String>,
    /// The running server's gRPC listener (`http://host:port`), for the gRPC scenarios.
    pub grpc_url: Option<String>,
    /// The running server's admin key (with `url`).
    pub admin_key: Option<String>,
    pub warmup: Duration,
    pub duration: Duration,
    /// Connections for `single`, `reads` and the baseline's higher concurrency.
    pub connections: usize,
    /// Connections for `batch`, calls in flight for `grpc-batch`, tasks for `pipeline`.
    pub batch_connections: usize,
    /// HTTP/2 connections the gRPC scenarios spread their calls (or streams) over.
    pub grpc_connections: usize,
    /// Streams `grpc-stream` keeps open.
    pub streams: usize,
    /// Transfers per `batch` request (and per core batch).
    pub batch_size: usize,
    /// Wallets the transfers move money between.
    pub accounts: usize,
    /// `batch`: unmeasured batch writes before the measured run.
    pub prefill: Duration,
    /// `wallet`: balance monitors set on every wallet at setup (0 to 3).
    pub monitors_per_wallet: u8,
    /// What drives `single`, `reads` and `wallet`.
    pub client: Client,
    pub baseline: BaselineDatabase,
    /// The `reports` scenario's sizes.
    pub reports: ReportsOptions,
    /// The executable to run as `serve-coffer` (the harness's own).
    pub server_executable: PathBuf,
}

impl Options {
    fn wants(&self, scenario: Scenario) -> bool {
        self.scenario == scenario || (self.scenario == Scenario::All && scenario != Scenario::Reports)
    }

    fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            (WALLETS_MIN..=WALLETS_MAX).contains(&self.accounts),
            "--accounts must be {WALLETS_MIN} to {WALLETS_MAX}"
        );
        anyhow::ensure!(
            (1..=ledger::BATCH_EVENTS_MAX).contains(&self.batch_size),
            "--batch-size must be 1 to {}",
            ledger::BATCH_EVENTS_MAX
        );
        for connections in [self.connections, self.batch_connections] {
            anyhow::ensure!(
                (1..=CONNECTIONS_MAX).contains(&connections),
                "connections must be 1 to {CONNECTIONS_MAX}"
            );
        }
        anyhow::ensure!(
            (1..=GRPC_CONNECTIONS_MAX).contains(&self.grpc_connections),
            "--grpc-connections must be 1 to {GRPC_CONNECTIONS_MAX}"
        );
        anyhow::ensure!((1..=STREAMS_MAX).contains(&self.streams), "--streams must be 1 to {STREAMS_MAX}");
        anyhow::ensure!(!self.duration.is_zero(), "the duration must be more than zero");
        anyhow::ensure!(self.url.is_none() || self.admin_key.is_some(), "--url needs --admin-key");
        anyhow::ensure!(self.grpc_url.is_none() || self.url.is_some(), "--grpc-url goes with --url");
        if self.scenario == Scenario::Reports {
            anyhow::ensure!(
                (1..=REPORT_REQUESTS_MAX).contains(&self.reports.requests),
                "--report-requests must be 1 to {REPORT_REQUESTS_MAX}"
            );
            anyhow::ensure!(
                self.url.is_none(),
                "reports loads the database directly, so it cannot run against --url"
            );
        }
        Ok(())
    }
}

/// Where the HTTP scenarios run.
#[derive(Clone, Debug)]
enum Target {
    Sqlite,
    Postgres(String),
    Remote { url: String, admin_key: String },
}

impl Target {
    fn name(&self) -> &'static str {
        match self {
            Target::Sqlite => "sqlite",
            Target::Postgres(_) => "postgres",
            Target::Remote { .. } => "remote",
        }
    }
}

/// A server ready for one scenario.
struct Running {
    api: Api,
    base_url: String,
    /// The gRPC listener, when the server has one (or `--grpc-url` names it).
    grpc_url: Option<String>,
    admin_key: String,
    server: Option<ChildServer>,
    idle_rss: u64,
}

impl Running {
    async fn start(options: &Options, target: &Target, connections: usize) -> anyhow::Result<Self> {
        let server = match target {
            Target::Sqlite => Some(ChildServer::start(&options.server_executable, None).await?),
            Target::Postgres(url) => Some(ChildServer::start(&options.server_executable, Some(url)).await?),
            Target::Remote { .. } => None,
        };
        let (base_url, grpc_url, admin_key) = match (target, &server) {
            (Target::Remote { url, admin_key }, _) => {
                (url.clone(), options.grpc_url.clone(), admin_key.clone())
            }
            (_, Some(server)) => (server.base_url.clone(), server.grpc_url.clone(), server.admin_key.clone()),
            _ => unreachable!("a started target has a server"),
        };
        let idle_rss =
            server.as_ref().map(|server| server.memory()).transpose()?.map_or(0, |memory| memory.rss_bytes);
        let api = Api::new(&base_url, &admin_key, connections.max(http::CHECK_CONNECTIONS))?;
        Ok(Self { api, base_url, grpc_url, admin_key, server, idle_rss })
    }

    /// (idle, peak) RSS of the server, when the harness started it.
    fn rss(&self) -> anyhow::Result<Option<(u64, u64)>> {
        Ok(match &self.server {
            Some(server) => Some((self.idle_rss, server.memory()?.peak_rss_bytes)),
            None => None,
        })
    }

    fn server_cpu(&self) -> Option<f64> {
        self.server.as_ref().and_then(|server| server.cpu_seconds().ok())
    }

    async fn stop(self) -> anyhow::Result<()> {
        match self.server {
            Some(server) => server.stop().await,
            None => Ok(()),
        }
    }
}

/// What an HTTP scenario measured, for its report row.
struct Measured {
    measured_ok: u64,
    measured: Duration,
    /// Requests sent while measuring (the latencies recorded).
    requests: u64,
    errors: u64,
    rss: Option<(u64, u64)>,
    cpu_cores: (Option<f64>, f64),
}

impl Measured {
    /// The scenario's row, without latencies (the caller adds its histogram).
    fn row(
        self,
        scenario: impl Into<String>,
        shape: &'static str,
        target: &Target,
        connections: usize,
        unit: &'static str,
        failures: &[String],
    ) -> Row {
        Row {
            scenario: scenario.into(),
            shape,
            backend: target.name().into(),
            system: System::Coffer,
            connections,
            throughput: self.measured_ok as f64 / self.measured.as_secs_f64(),
            unit,
            p50: Duration::ZERO,
            p99: Duration::ZERO,
            max: Duration::ZERO,
            errors: self.errors,
            rss: self.rss,
            cpu_cores: Some(self.cpu_cores),
            client_us_per_request: per_request_us(
                self.cpu_cores.1 * self.measured.as_secs_f64(),
                self.requests,
            ),
            ratio: None,
            checks: if failures.is_empty() { Checks::Passed } else { Checks::Failed },
        }
    }
}

/// CPU time of the server and of the harness, and the server's commit counters, when
/// measuring started.
struct CpuStart {
    server: Option<f64>,
    client: f64,
    commits: Option<CommitCounters>,
}

impl CpuStart {
    /// Waits for the clock's `measure_from`, then reads both CPU times.
    async fn at(running: &Running, clock: Clock) -> Self {
        tokio::time::sleep_until(clock.measure_from.into()).await;
        let (server, client) = (running.server_cpu(), own_cpu_seconds());
        Self { server, client, commits: CommitCounters::read(&running.api).await }
    }

    /// What the commit pipeline did since then, as a note for the report (`None` when the
    /// server's `/metrics` could not be read).
    async fn commits_note(&self, running: &Running, measured: Duration, label: &str) -> Option<String> {
        let start = self.commits?;
        let end = CommitCounters::read(&running.api).await?;
        Some(format!("commits, {label}: {}", start.summary(&end, measured)))
    }

    /// Cores busy since then: (server, harness).
    fn cores(&self, running: &Running, measured: Duration) -> (Option<f64>, f64) {
        let seconds = measured.as_secs_f64();
        let server = match (self.server, running.server_cpu()) {
            (Some(start), Some(end)) => Some((end - start) / seconds),
            _ => None,
        };
        (server, (own_cpu_seconds() - self.client) / seconds)
    }
}

/// `cpu_seconds` spread over `requests`, in microseconds; `None` without requests.
fn per_request_us(cpu_seconds: f64, requests: u64) -> Option<f64> {
    (requests > 0).then(|| cpu_seconds * 1e6 / requests as f64)
}

/// CPU time this process has used, in seconds (zero if /proc cannot say).
pub fn own_cpu_seconds() -> f64 {
    crate::server::cpu_seconds_of(std::process::id()).unwrap_or(0.0)
}

/// Runs the scenarios `options` selects and returns the report (the caller prints it
/// and fails when `failures` is not empty).
pub async fn run(options: &Options) -> anyhow::Result<Report> {
    options.validate()?;
    let mut report = Report::default();
    let loads = [
        (
            Scenario::Batch,
            Load::Rest(WriteMode::Batch { size: options.batch_size, connections: options.batch_connections }),
        ),
        (Scenario::Single, Load::Rest(WriteMode::Single { connections: options.connections })),
        (
            Scenario::GrpcBatch,
            Load::Grpc(GrpcMode::Batch {
                size: options.batch_size,
                calls: options.batch_connections,
                connections: options.grpc_connections,
            }),
        ),
        (
            Scenario::GrpcSingle,
            Load::Grpc(GrpcMode::Single {
                calls: options.connections,
                connections: options.grpc_connections,
            }),
        ),
        (
            Scenario::GrpcStream,
            Load::Grpc(GrpcMode::Stream {
                size: options.batch_size,
                streams: options.streams,
                connections: options.grpc_connections,
            }),
        ),
    ];

    if options.wants(Scenario::Core) {
        for shape in Shape::ALL {
            let (wallets, size, warmup, duration) =
                (options.accounts, options.batch_size, options.warmup, options.duration);
            let (cpu_start, started) = (own_cpu_seconds(), Instant::now());
            let outcome =
                tokio::task::spawn_blocking(move || core::run(shape, wallets, size, warmup, duration))
                    .await??;
            // The core runs in this process: its cores, warm-up included, are the harness's.
            let cores =
                (own_cpu_seconds() - cpu_start) / started.elapsed().as_secs_f64().max(f64::MIN_POSITIVE);
            let checks = if outcome.failures.is_empty() { Checks::Passed } else { Checks::Failed };
            report.failures.extend(outcome.failures);
            report.rows.push(
                Row {
                    scenario: "core".into(),
                    shape: shape.name(),
                    backend: "memory".into(),
                    system: System::Coffer,
                    connections: 1,
                    throughput: outcome.transfers as f64 / outcome.busy.as_secs_f64().max(f64::MIN_POSITIVE),
                    unit: "transfers/s",
                    p50: Duration::ZERO,
                    p99: Duration::ZERO,
                    max: Duration::ZERO,
                    errors: outcome.errors,
                    rss: None,
                    cpu_cores: Some((None, cores)),
                    client_us_per_request: None,
                    ratio: None,
                    checks,
                }
                .with_latencies(&outcome.latencies),
            );
        }
        report.notes.push(format!(
            "core: one thread, batches of {} transfers; throughput over create_transfers + take_changes time, latency per batch",
            options.batch_size
        ));
    }

    let targets = match (&options.url, &options.admin_key) {
        (Some(url), Some(admin_key)) => {
            vec![Target::Remote { url: url.clone(), admin_key: admin_key.clone() }]
        }
        _ => {
            let mut targets = vec![Target::Sqlite];
            targets.extend(options.database_url.clone().map(Target::Postgres));
            targets
        }
    };
    // One history for every backend: the same rows, so their figures compare.
    let history = if options.wants(Scenario::Reports) {
        let (customers, per_customer) = (options.reports.customers, options.reports.expenses_per_customer);
        Some(tokio::task::spawn_blocking(move || History::generate(customers, per_customer)).await??)
    } else {
        None
    };
    for target in &targets {
        for (scenario, load) in loads {
            if !options.wants(scenario) {
                continue;
            }
            if let Load::Grpc(mode) = load {
                if matches!(target, Target::Remote { .. }) && options.grpc_url.is_none() {
                    // Asked for by name, it must run; as part of `all`, it is said to be left out.
                    let skipped = format!("{}: skipped, --url without --grpc-url", load.label());
                    match options.scenario {
                        Scenario::All => report.notes.push(skipped),
                        _ => report.failures.push(skipped),
                    }
                    continue;
                }
                report.notes.push(format!("{}: {}", load.label(), mode.describe()));
            }
            for shape in Shape::ALL {
                let label = load.label();
                match run_write(options, target, shape, load, &label).await {
                    Ok((row, failures, notes)) => {
                        report.rows.push(row);
                        report.failures.extend(failures);
                        report.notes.extend(notes);
                    }
                    Err(error) => report.failures.push(format!(
                        "{label} {} on {}: {error:#}",
                        shape.name(),
                        target.name()
                    )),
                }
            }
        }
        if options.wants(Scenario::Pipeline) {
            run_pipelines(options, target, &mut report).await;
        }
        if options.wants(Scenario::Wallet) {
            for shape in Shape::ALL {
                match run_wallet(options, target, shape).await {
                    Ok((row, failures, notes)) => {
                        report.rows.push(row);
                        report.failures.extend(failures);
                        report.notes.extend(notes);
                    }
                    Err(error) => report.failures.push(format!(
                        "wallet {} on {}: {error:#}",
                        shape.name(),
                        target.name()
                    )),
                }
            }
        }
        if options.wants(Scenario::Reads) {
            match run_reads(options, target).await {
                Ok((row, failures, notes)) => {
                    report.rows.push(row);
                    report.failures.extend(failures);
                    report.notes.extend(notes);
                }
                Err(error) => report.failures.push(format!("reads on {}: {error:#}", target.name())),
            }
        }
        if let Some(history) = &history {
            match run_reports(options, target, history).await {
                Ok((rows, failures, notes)) => {
                    report.rows.extend(rows);
                    report.failures.extend(failures);
                    report.notes.extend(notes);
                }
                Err(error) => report.failures.push(format!("reports on {}: {error:#}", target.name())),
            }
        }
    }
    if options.wants(Scenario::Batch)
        || options.wants(Scenario::Single)
        || options.scenario == Scenario::Baseline
    {
        run_baselines(options, &mut report).await;
    }
    if targets.iter().any(|target| matches!(target, Target::Sqlite | Target::Postgres(_)))
        && report.rows.iter().any(|row| row.rss.is_some())
    {
        report.notes.push("RSS: the Coffer child process, VmRSS after start and VmHWM after the load (from /proc/PID/status)".into());
        report.notes.push(
            "CPU srv/cli: cores busy while measuring, in the Coffer child and in this harness (the machine's total is nproc; PostgreSQL's own is not counted); cli us/req: the harness's CPU microseconds per request sent while measuring".into(),
        );
    }
    if options.wants(Scenario::Single) || options.wants(Scenario::Reads) || options.wants(Scenario::Wallet) {
        report.notes.push(match options.client {
            Client::Light => "client: light (raw keep-alive HTTP/1.1, one connection per worker, pre-built requests patched in place) for single, reads and wallet; reqwest for batch, setup and checks (--client reqwest for the old figures)".into(),
            Client::Reqwest => "client: reqwest for every scenario (--client reqwest)".into(),
        });
    }
    report.compute_ratios();
    report.notes.extend(report.comparisons());
    if options.scenario != Scenario::Reports {
        report.notes.push(
            "coffer/baseline: Coffer's throughput over the best baseline row of the same shape (client and server share the machine; the baseline has no HTTP)".into(),
        );
    }
    Ok(report)
}

/// How a write scenario reaches the server.
#[derive(Clone, Copy, Debug)]
enum Load {
    /// The REST ledger API (`batch`, `single`).
    Rest(WriteMode),
    /// The gRPC LedgerService through coffer-client (`grpc-*`).
    Grpc(GrpcMode),
}

impl Load {
    /// The scenario's name in the table.
    fn label(self) -> String {
        match self {
            Load::Rest(WriteMode::Batch { size, .. }) => format!("batch/{size}"),
            Load::Rest(WriteMode::Single { .. }) => "single".into(),
            Load::Grpc(GrpcMode::Batch { size, .. }) => format!("grpc-batch/{size}"),
            Load::Grpc(GrpcMode::Single { .. }) => "grpc-single".into(),
            Load::Grpc(GrpcMode::Stream { size, .. }) => format!("grpc-stream/{size}"),
        }
    }

    /// Requests in flight at once: the table's `conns`.
    fn in_flight(self) -> usize {
        match self {
            Load::Rest(mode) => mode.connections(),
            Load::Grpc(mode) => mode.in_flight(),
        }
    }

    /// Runs the load until the clock's end; with gRPC, also what the client did besides.
    async fn drive(
        self,
        options: &Options,
        running: &Running,
        layout: Arc<Layout>,
        shape: Shape,
        clock: Clock,
    ) -> anyhow::Result<(http::WriteOutcome, Option<grpc::ClientNotes>)> {
        match self {
            Load::Rest(mode) => {
                let outcome =
                    http::run_writes(&running.api, layout, shape, mode, clock, options.client).await?;
                Ok((outcome, None))
            }
            Load::Grpc(mode) => {
                let Some(endpoint) = &running.grpc_url else {
                    bail!("the gRPC scenarios need the server's gRPC address (--grpc-url with --url)");
                };
                let (outcome, notes) =
                    grpc::run_writes(endpoint, &running.admin_key, layout, shape, mode, clock).await?;
                Ok((outcome, Some(notes)))
            }
        }
    }
}

async fn run_write(
    options: &Options,
    target: &Target,
    shape: Shape,
    load: Load,
    label: &str,
) -> anyhow::Result<(Row, Vec<String>, Vec<String>)> {
    // The REST connections to keep idle: the load's own, or none beyond the checks'.
    let rest_connections = match load {
        Load::Rest(mode) => mode.connections(),
        Load::Grpc(_) => 0,
    };
    let running = Running::start(options, target, rest_connections).await?;
    let layout = Arc::new(Layout::new(options.accounts));
    http::setup(&running.api, &layout).await?;
    let prefilled = match load {
        Load::Rest(mode) => prefill(options, &running, &layout, shape, mode, label).await?,
        Load::Grpc(_) => http::WriteOutcome::default(),
    };
    let clock = Clock::start(options.warmup, options.duration);
    let (outcome, cpu) = tokio::join!(
        load.drive(options, &running, layout.clone(), shape, clock),
        CpuStart::at(&running, clock)
    );
    let (mut outcome, client_notes) = outcome?;
    // The checks count every transfer acknowledged, prefill included.
    outcome.acknowledged_ok += prefilled.acknowledged_ok;
    outcome.unknown += prefilled.unknown;
    // Read before the checks, which load both processes too.
    let cpu_cores = cpu.cores(&running, outcome.measured);
    let commits = cpu
        .commits_note(&running, outcome.measured, &format!("{label} {} on {}", shape.name(), target.name()))
        .await;
    let rss = running.rss()?;
    let mut failures: Vec<String> = http::check_ledger(&running.api, &layout, &outcome)
        .await?
        .into_iter()
        .map(|failure| format!("{label} {} on {}: {failure}", shape.name(), target.name()))
        .collect();
    if outcome.measured_ok == 0 {
        failures.push(format!(
            "{label} {} on {}: no transfer succeeded ({:?})",
            shape.name(),
            target.name(),
            outcome.first_error
        ));
    }
    running.stop().await?;
    let row = Measured {
        measured_ok: outcome.measured_ok,
        measured: outcome.measured,
        requests: outcome.latencies.count(),
        errors: outcome.errors,
        rss,
        cpu_cores,
    }
    .row(label, shape.name(), target, load.in_flight(), "transfers/s", &failures)
    .with_latencies(&outcome.latencies);
    if let Some(error) = outcome.first_error {
        eprintln!("{label} {} on {}: first error: {error}", shape.name(), target.name());
    }
    let scenario = format!("{label} {} on {}", shape.name(), target.name());
    let prefill_note = (!options.prefill.is_zero() && matches!(load, Load::Rest(mode) if mode.is_batch())).then(|| {
        format!(
            "{scenario}: measured on a ledger prefilled with {} transfers in {:.0} s ({:.0}/s), unmeasured; {} more were written in warm-up and measurement",
            prefilled.acknowledged_ok,
            options.prefill.as_secs_f64(),
            prefilled.acknowledged_ok as f64 / options.prefill.as_secs_f64(),
            outcome.acknowledged_ok - prefilled.acknowledged_ok,
        )
    });
    let client_note = client_notes.filter(|notes| notes.retries + notes.streams_reopened > 0).map(|notes| {
        format!(
            "{scenario}: the gRPC client retried {} calls refused with UNAVAILABLE and opened {} streams again (each retry is in the latency)",
            notes.retries, notes.streams_reopened
        )
    });
    let notes = commits
        .into_iter()
        .chain(reconnects_note(&scenario, outcome.reconnects))
        .chain(prefill_note)
        .chain(client_note)
        .collect();
    Ok((row, failures, notes))
}

/// The `pipeline` scenario on `target`'s backend, both shapes; rows, failures and a note
/// go into `report`.
async fn run_pipelines(options: &Options, target: &Target, report: &mut Report) {
    let postgres = match target {
        Target::Sqlite => None,
        Target::Postgres(url) => Some(url.as_str()),
        Target::Remote { .. } => {
            report
                .notes
                .push("pipeline: skipped with --url (it runs the commit pipeline in this process)".into());
            return;
        }
    };
    for shape in Shape::ALL {
        let label = format!("pipeline/{}", options.batch_size);
        let scenario = format!("{label} {} on {}", shape.name(), target.name());
        let (warmup, duration) = (options.warmup, options.duration);
        let outcome = pipeline::run(
            postgres,
            options.accounts,
            shape,
            options.batch_size,
            options.batch_connections,
            move || Clock::start(warmup, duration),
        )
        .await;
        let outcome = match outcome {
            Ok(outcome) => outcome,
            Err(error) => {
                report.failures.push(format!("{scenario}: {error:#}"));
                continue;
            }
        };
        let writes = outcome.writes;
        let mut failures: Vec<String> =
            outcome.failures.into_iter().map(|failure| format!("{scenario}: {failure}")).collect();
        if writes.measured_ok == 0 {
            failures.push(format!("{scenario}: no transfer succeeded ({:?})", writes.first_error));
        }
        if let Some(error) = &writes.first_error {
            eprintln!("{scenario}: first error: {error}");
        }
        let seconds = writes.measured.as_secs_f64();
        report.rows.push(
            Row {
                scenario: label,
                shape: shape.name(),
                backend: target.name().into(),
                system: System::Coffer,
                connections: options.batch_connections,
                throughput: writes.measured_ok as f64 / seconds.max(f64::MIN_POSITIVE),
                unit: "transfers/s",
                p50: Duration::ZERO,
                p99: Duration::ZERO,
                max: Duration::ZERO,
                errors: writes.errors,
                rss: None,
                cpu_cores: Some((None, outcome.cores)),
                client_us_per_request: per_request_us(outcome.cores * seconds, writes.latencies.count()),
                ratio: None,
                checks: if failures.is_empty() { Checks::Passed } else { Checks::Failed },
            }
            .with_latencies(&writes.latencies),
        );
        report.failures.extend(failures);
    }
    report.notes.push(format!(
        "pipeline: {} tasks each with one batch of {} in the commit pipeline, store and pipeline in this process, no transport; its CPU (cli) is all of it, pipeline and store included",
        options.batch_connections, options.batch_size
    ));
}

/// With `--prefill-secs`, the `batch` scenario's unmeasured writes before it is measured.
async fn prefill(
    options: &Options,
    running: &Running,
    layout: &Arc<Layout>,
    shape: Shape,
    mode: WriteMode,
    label: &str,
) -> anyhow::Result<http::WriteOutcome> {
    if options.prefill.is_zero() || !mode.is_batch() {
        return Ok(http::WriteOutcome::default());
    }
    eprintln!("{label} {}: prefilling for {} s", shape.name(), options.prefill.as_secs());
    let clock = Clock::start(Duration::ZERO, options.prefill);
    // Transfer ids of its own: the measured run's workers number theirs from zero again.
    let layout = Arc::new(layout.with_fresh_transfers());
    http::run_writes(&running.api, layout, shape, mode, clock, options.client).await
}

/// A note when the light client had to open connections again: each is a connection the
/// server closed or a request that failed, and a cost the figure includes.
fn reconnects_note(scenario: &str, reconnects: u64) -> Option<String> {
    (reconnects > 0).then(|| {
        format!("{scenario}: the light client opened {reconnects} connections again (the server closed them, or a failed request's was dropped)")
    })
}

async fn run_wallet(
    options: &Options,
    target: &Target,
    shape: Shape,
) -> anyhow::Result<(Row, Vec<String>, Vec<String>)> {
    let running = Running::start(options, target, options.connections).await?;
    let (base_url, admin_key) = (running.base_url.clone(), running.admin_key.clone());
    let client = coffer::notifications::http_client()
        .pool_max_idle_per_host(options.connections)
        .timeout(Duration::from_millis(crate::api::REQUEST_TIMEOUT_MS))
        .tcp_nodelay(true)
        .build()?;
    let customers = Arc::new(wallet::setup(&client, &base_url, options.monitors_per_wallet).await?);
    let clock = Clock::start(options.warmup, options.duration);
    let (outcome, cpu) = tokio::join!(
        wallet::run(&client, &base_url, customers.clone(), shape, options.connections, clock, options.client),
        CpuStart::at(&running, clock)
    );
    let outcome = outcome?;
    let cpu_cores = cpu.cores(&running, outcome.measured);
    let commits = cpu
        .commits_note(&running, outcome.measured, &format!("wallet {} on {}", shape.name(), target.name()))
        .await;
    let rss = running.rss()?;
    let mut failures: Vec<String> = wallet::check(&client, &base_url, &admin_key, &customers, &outcome)
        .await?
        .into_iter()
        .map(|failure| format!("wallet {} on {}: {failure}", shape.name(), target.name()))
        .collect();
    if outcome.measured_ok == 0 {
        failures.push(format!(
            "wallet {} on {}: no transfer succeeded ({:?})",
            shape.name(),
            target.name(),
            outcome.first_error
        ));
    }
    if let Some(error) = &outcome.first_error {
        eprintln!("wallet {} on {}: first error: {error}", shape.name(), target.name());
    }
    running.stop().await?;
    let row = Measured {
        measured_ok: outcome.measured_ok,
        measured: outcome.measured,
        requests: outcome.latencies.count(),
        errors: outcome.errors,
        rss,
        cpu_cores,
    }
    .row("wallet", shape.name(), target, options.connections, "transfers/s", &failures)
    .with_latencies(&outcome.latencies);
    let scenario = format!("wallet {} on {}", shape.name(), target.name());
    let notes = commits.into_iter().chain(reconnects_note(&scenario, outcome.reconnects)).collect();
    Ok((row, failures, notes))
}

async fn run_reads(options: &Options, target: &Target) -> anyhow::Result<(Row, Vec<String>, Vec<String>)> {
    let running = Running::start(options, target, options.connections).await?;
    let layout = Arc::new(Layout::new(options.accounts));
    http::setup(&running.api, &layout).await?;
    let clock = Clock::start(options.warmup, options.duration);
    let (outcome, cpu) = tokio::join!(
        http::run_reads(&running.api, layout, options.connections, clock, options.client),
        CpuStart::at(&running, clock)
    );
    let outcome = outcome?;
    // Read before the checks, which load both processes too.
    let cpu_cores = cpu.cores(&running, outcome.measured);
    let rss = running.rss()?;
    running.stop().await?;
    let mut failures = Vec::new();
    if outcome.wrong > 0 {
        failures.push(format!(
            "reads on {}: {} wrong answers, first: {:?}",
            target.name(),
            outcome.wrong,
            outcome.first_error
        ));
    }
    if outcome.measured_ok == 0 {
        failures.push(format!("reads on {}: no read succeeded ({:?})", target.name(), outcome.first_error));
    }
    let row = Measured {
        measured_ok: outcome.measured_ok,
        measured: outcome.measured,
        requests: outcome.latencies.count(),
        errors: outcome.errors,
        rss,
        cpu_cores,
    }
    .row("reads", Shape::Uniform.name(), target, options.connections, "reads/s", &failures)
    .with_latencies(&outcome.latencies);
    let notes =
        reconnects_note(&format!("reads on {}", target.name()), outcome.reconnects).into_iter().collect();
    Ok((row, failures, notes))
}

/// The `reports` scenario on one backend: a Coffer child on a fresh database, the
/// measured customers registered, the history loaded around it, then the reports timed
/// over HTTP and in process, every answer checked, and the queries' plans read.
async fn run_reports(
    options: &Options,
    target: &Target,
    history: &History,
) -> anyhow::Result<(Vec<Row>, Vec<String>, Vec<String>)> {
    if matches!(target, Target::Remote { .. }) {
        bail!("reports loads the database directly, so it cannot run against --url");
    }
    let backend = target.name();
    let running = Running::start(options, target, 1).await?;
    let url = running.server.as_ref().map(ChildServer::database_url).expect("a started target has a server");
    let client = coffer::notifications::http_client()
        .timeout(Duration::from_millis(crate::api::REQUEST_TIMEOUT_MS))
        .tcp_nodelay(true)
        .build()?;
    let base_url = running.base_url.clone();
    let mut customers = reports::register(&client, &base_url, history).await?;
    let ids = history.ids(&customers);
    let loaded = reports::load(history, &url, &ids, customers.len()).await?;
    let mut failures = Vec::new();
    let mut notes = Vec::new();
    if loaded.expenses != history.expenses() as u64 || loaded.categories != history.categories() as u64 {
        failures.push(format!(
            "reports on {backend}: {} expenses and {} categories in the database, {} and {} loaded",
            loaded.expenses,
            loaded.categories,
            history.expenses(),
            history.categories()
        ));
    }
    notes.push(format!(
        "reports on {backend}: loaded {} expenses ({} per customer over {} months) and {} categories for {} customers in {:.1} s ({:.0} expenses/s){}; counted afterwards: {} expenses, {} categories",
        history.expenses(),
        history.expenses_per_customer,
        reports::MONTHS,
        history.categories(),
        history.customers,
        loaded.took.as_secs_f64(),
        history.expenses() as f64 / loaded.took.as_secs_f64().max(f64::MIN_POSITIVE),
        loaded.vacuum.map_or_else(String::new, |vacuum| format!(", then VACUUM (ANALYZE) in {:.1} s", vacuum.as_secs_f64())),
        loaded.expenses,
        loaded.categories,
    ));
    // Access tokens last 15 minutes; the load may have taken longer.
    for customer in &mut customers {
        reports::login(&client, &base_url, customer).await?;
    }
    let month = reports::report_month();
    let expected = customers
        .iter()
        .enumerate()
        .map(|(index, customer)| history.expected_report(index, customer, month))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let requests = options.reports.requests;

    let (server_cpu, client_cpu) = (running.server_cpu(), own_cpu_seconds());
    let http = reports::time_reports(&expected, requests, async |index| {
        reports::http_report(&client, &base_url, &customers[index], month).await
    })
    .await;
    let seconds = http.elapsed.as_secs_f64().max(f64::MIN_POSITIVE);
    let cpu_cores = (
        server_cpu.zip(running.server_cpu()).map(|(start, end)| (end - start) / seconds),
        (own_cpu_seconds() - client_cpu) / seconds,
    );
    let rss = running.rss()?;

    let store = store::Store::open(&url, store::StoreOptions::default()).await?;
    let finance = coffer::finance::Finance::new(store.clone());
    let client_cpu = own_cpu_seconds();
    let in_process = reports::time_reports(&expected, requests, async |index| {
        reports::finance_report(&finance, &customers[index], month).await
    })
    .await;
    let in_process_cores =
        (own_cpu_seconds() - client_cpu) / in_process.elapsed.as_secs_f64().max(f64::MIN_POSITIVE);
    store.close().await;

    let plans = reports::plans(&url, history, &customers[0], month).await?;
    running.stop().await?;

    let mut rows = Vec::new();
    for (path, timed) in [("http", &http), ("in-process", &in_process)] {
        let label = format!("reports on {backend} ({path})");
        if timed.wrong + timed.errors > 0 {
            failures.push(format!(
                "{label}: {} wrong answers and {} errors, first: {:?}",
                timed.wrong, timed.errors, timed.first_problem
            ));
        }
        let (p50, p95, p99, max) = (
            timed.latencies.quantile(0.50),
            timed.latencies.quantile(0.95),
            timed.latencies.quantile(0.99),
            timed.latencies.max(),
        );
        let target_ms = Duration::from_millis(reports::REPORT_TARGET_MS);
        notes.push(format!(
            "{label}: GET /v1/reports/monthly/{}/{} for {} customers in turn, {} timed one at a time after the first and {} warm-up: first {:.2} ms, median {:.2}, p95 {:.2}, p99 {:.2}, max {:.2} ms; under {} ms: {}",
            month.0,
            month.1,
            customers.len(),
            timed.latencies.count(),
            reports::WARMUP_REQUESTS,
            milliseconds(timed.first),
            milliseconds(p50),
            milliseconds(p95),
            milliseconds(p99),
            milliseconds(max),
            reports::REPORT_TARGET_MS,
            if max < target_ms { "every request" } else if p99 < target_ms { "p99 yes, not every request" } else { "NO" },
        ));
        let checks = if timed.wrong + timed.errors == 0 { Checks::Passed } else { Checks::Failed };
        rows.push(
            Row {
                scenario: if path == "http" { "reports".into() } else { "reports/in-process".into() },
                shape: "monthly",
                backend: backend.into(),
                system: System::Coffer,
                connections: 1,
                throughput: timed.latencies.count() as f64
                    / timed.elapsed.as_secs_f64().max(f64::MIN_POSITIVE),
                unit: "reports/s",
                p50: Duration::ZERO,
                p99: Duration::ZERO,
                max: Duration::ZERO,
                errors: timed.wrong + timed.errors,
                rss: if path == "http" { rss } else { None },
                cpu_cores: Some(if path == "http" { cpu_cores } else { (None, in_process_cores) }),
                client_us_per_request: per_request_us(
                    if path == "http" { cpu_cores.1 } else { in_process_cores } * timed.elapsed.as_secs_f64(),
                    timed.latencies.count(),
                ),
                ratio: None,
                checks,
            }
            .with_latencies(&timed.latencies),
        );
    }
    for plan in &plans {
        let indexed = plan.uses_index();
        notes.push(format!(
            "reports on {backend}, plan of {} ({}):\n      {}",
            plan.query,
            if indexed { format!("uses {}", plan.index) } else { format!("does NOT use {}", plan.index) },
            plan.lines.join("\n      ")
        ));
        if !indexed && reports::Plan::judged(loaded.expenses) {
            failures.push(format!("reports on {backend}: {} does not use {}", plan.query, plan.index));
        }
    }
    Ok((rows, failures, notes))
}

fn milliseconds(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

async fn run_baselines(options: &Options, report: &mut Report) {
    let url = match &options.baseline {
        BaselineDatabase::Skip => {
            report.notes.push("baseline: skipped (not asked for)".into());
            return;
        }
        BaselineDatabase::Url(url) => url.clone(),
        BaselineDatabase::Auto => {
            let candidate = options
                .database_url
                .clone()
                .or_else(|| std::env::var(BASELINE_URL_ENV).ok().filter(|url| !url.is_empty()))
                .unwrap_or_else(|| BASELINE_DEFAULT_URL.to_owned());
            if !postgres::reachable(&candidate).await {
                report.notes.push(format!(
                    "baseline: SKIPPED, no PostgreSQL answered at {} (give --database-url or {BASELINE_URL_ENV})",
                    postgres::redact(&candidate)
                ));
                return;
            }
            candidate
        }
    };
    let mut levels = vec![BASELINE_TASKS_LOW, options.connections];
    levels.sort_unstable();
    levels.dedup();
    for shape in Shape::ALL {
        for &tasks in &levels {
            match baseline::run(&url, shape, options.accounts, tasks, options.warmup, options.duration).await
            {
                Ok(outcome) => {
                    let checks = if outcome.failures.is_empty() { Checks::Passed } else { Checks::Failed };
                    if outcome.measured_ok == 0 {
                        report.failures.push(format!(
                            "baseline {} x{tasks}: nothing committed ({:?})",
                            shape.name(),
                            outcome.first_error
                        ));
                    }
                    if let Some(error) = &outcome.first_error {
                        eprintln!("baseline {} x{tasks}: first error: {error}", shape.name());
                    }
                    report.failures.extend(outcome.failures);
                    report.rows.push(
                        Row {
                            scenario: "baseline".into(),
                            shape: shape.name(),
                            backend: "postgres".into(),
                            system: System::Baseline,
                            connections: tasks,
                            throughput: outcome.measured_ok as f64 / outcome.measured.as_secs_f64(),
                            unit: "transfers/s",
                            p50: Duration::ZERO,
                            p99: Duration::ZERO,
                            max: Duration::ZERO,
                            errors: outcome.errors,
                            rss: None,
                            cpu_cores: Some((
                                None,
                                outcome.client_cpu_seconds / outcome.measured.as_secs_f64(),
                            )),
                            client_us_per_request: per_request_us(
                                outcome.client_cpu_seconds,
                                outcome.latencies.count(),
                            ),
                            ratio: None,
                            checks,
                        }
                        .with_latencies(&outcome.latencies),
                    );
                    if outcome.retries > 0 {
                        report.notes.push(format!(
                            "baseline {} x{tasks}: {} deadlocks retried",
                            shape.name(),
                            outcome.retries
                        ));
                    }
                }
                Err(error) => report.failures.push(format!("baseline {} x{tasks}: {error:#}", shape.name())),
            }
        }
    }
    report.notes.push(format!(
        "baseline: one PostgreSQL transaction per transfer, pool of at most {} connections, latency includes waiting for one",
        baseline::BASELINE_POOL_CONNECTIONS_MAX
    ));
}
