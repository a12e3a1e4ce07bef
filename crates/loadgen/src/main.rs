//! The `loadgen` binary: parses the command line, runs the harness and prints its table
//! (exit status 1 when a check failed), or — as the hidden `serve-coffer` subcommand —
//! is the Coffer server the harness starts as a child process.

use std::{process::ExitCode, time::Duration};

use clap::{Args, Parser, Subcommand};
use loadgen::{
    Client, Options, Scenario,
    run::{BaselineDatabase, ReportsOptions},
};

/// Coffer's benchmark harness: the ledger core, the HTTP and gRPC ledger APIs and the
/// commit pipeline alone on SQLite (and on PostgreSQL with --database-url), and a
/// per-request PostgreSQL baseline, side by side in one table. Every write scenario is checked afterwards: money conserved, no wallet
/// negative, transfers stored == transfers acknowledged. `reports` (run only by name)
/// times monthly reports over a bulk-loaded history and checks every answer.
#[derive(Debug, Parser)]
#[command(name = "loadgen", args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
struct Cli {
    #[command(subcommand)]
    internal: Option<Internal>,
    #[command(flatten)]
    bench: BenchArgs,
}

#[derive(Debug, Subcommand)]
enum Internal {
    /// Run Coffer as the harness's child process (prints its address, stops when stdin closes).
    #[command(hide = true)]
    ServeCoffer(coffer::config::ServeArgs),
}

#[derive(Debug, Args)]
struct BenchArgs {
    /// The scenario to run, or `all`.
    #[arg(value_enum, required = true)]
    scenario: Option<Scenario>,
    /// A PostgreSQL admin URL: run the HTTP scenarios on PostgreSQL too (scratch
    /// databases are created and dropped), and the baseline there.
    #[arg(long)]
    database_url: Option<String>,
    /// Target this running Coffer instead of starting one (needs --admin-key).
    #[arg(long)]
    url: Option<String>,
    /// The gRPC listener of the server at --url (`http://host:port`), for the gRPC
    /// scenarios.
    #[arg(long, requires = "url")]
    grpc_url: Option<String>,
    /// The admin API key of the server at --url.
    #[arg(long, env = "COFFER_ADMIN_API_KEY", hide_env_values = true)]
    admin_key: Option<String>,
    /// Seconds each scenario is measured.
    #[arg(long, default_value_t = 10)]
    duration_secs: u64,
    /// Seconds each scenario runs before measuring starts.
    #[arg(long, default_value_t = 2)]
    warmup_secs: u64,
    /// Connections for `single`, `reads` and the baseline's higher concurrency; calls in
    /// flight for `grpc-single`.
    #[arg(long, default_value_t = 256)]
    connections: usize,
    /// Connections for `batch`; calls in flight for `grpc-batch`; tasks for `pipeline`.
    #[arg(long, default_value_t = 4)]
    batch_connections: usize,
    /// HTTP/2 connections the gRPC scenarios spread their calls (or streams) over.
    #[arg(long, default_value_t = 4)]
    grpc_connections: usize,
    /// Streams `grpc-stream` keeps open, each with 4 batches in flight.
    #[arg(long, default_value_t = 2)]
    streams: usize,
    /// Transfers per `batch`, `grpc-batch`, `grpc-stream` and `pipeline` batch, and per
    /// core batch.
    #[arg(long, default_value_t = ledger::BATCH_EVENTS_MAX)]
    batch_size: usize,
    /// Wallets the transfers move money between.
    #[arg(long, default_value_t = 10_000)]
    accounts: usize,
    /// `batch`: seconds of unmeasured batch writes before the measured run, so that it
    /// runs on a ledger that already holds transfers (how many is printed).
    #[arg(long, default_value_t = 0)]
    prefill_secs: u64,
    /// `wallet`: balance monitors set on every wallet at setup (up to 3: available below 1,
    /// available above twice the funds, a debit above 1,000 — none is crossed by the
    /// run's one-unit transfers, so this measures what checking them costs).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=3))]
    monitors_per_wallet: u8,
    /// What drives `single`, `reads` and `wallet`: the light HTTP/1.1 client, or reqwest
    /// (as before it, to reproduce older figures). `batch` always uses reqwest.
    #[arg(long, value_enum, default_value_t = Client::Light)]
    client: Client,
    /// Do not run the PostgreSQL baseline.
    #[arg(long)]
    no_baseline: bool,
    /// `reports`: customers whose expenses are loaded.
    #[arg(long, default_value_t = ReportsOptions::default().customers)]
    report_customers: usize,
    /// `reports`: expenses per customer (income included), over 24 months.
    #[arg(long, default_value_t = ReportsOptions::default().expenses_per_customer)]
    report_expenses_per_customer: usize,
    /// `reports`: reports timed one after the other, over HTTP and in process.
    #[arg(long, default_value_t = ReportsOptions::default().requests)]
    report_requests: usize,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    match cli.internal {
        Some(Internal::ServeCoffer(args)) => match runtime.block_on(loadgen::server::serve_coffer(args)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("serve-coffer: {error:#}");
                ExitCode::FAILURE
            }
        },
        None => runtime.block_on(bench(cli.bench)),
    }
}

async fn bench(args: BenchArgs) -> ExitCode {
    let server_executable = match std::env::current_exe() {
        Ok(path) => path,
        Err(error) => {
            eprintln!("cannot find my own executable to start Coffer: {error}");
            return ExitCode::FAILURE;
        }
    };
    let options = Options {
        scenario: args.scenario.unwrap_or(Scenario::All),
        database_url: args.database_url,
        url: args.url,
        grpc_url: args.grpc_url,
        admin_key: args.admin_key,
        warmup: Duration::from_secs(args.warmup_secs),
        duration: Duration::from_secs(args.duration_secs),
        connections: args.connections,
        batch_connections: args.batch_connections,
        grpc_connections: args.grpc_connections,
        streams: args.streams,
        batch_size: args.batch_size,
        accounts: args.accounts,
        prefill: Duration::from_secs(args.prefill_secs),
        monitors_per_wallet: args.monitors_per_wallet,
        client: args.client,
        baseline: if args.no_baseline { BaselineDatabase::Skip } else { BaselineDatabase::Auto },
        reports: ReportsOptions {
            customers: args.report_customers,
            expenses_per_customer: args.report_expenses_per_customer,
            requests: args.report_requests,
        },
        server_executable,
    };
    match loadgen::run(&options).await {
        Ok(report) => {
            print!("{report}");
            if report.failures.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE }
        }
        Err(error) => {
            eprintln!("loadgen: {error:#}");
            ExitCode::FAILURE
        }
    }
}
