//! CI smoke of the harness: every scenario for about a second, through the same code the
//! binary runs (`loadgen::run`, with Coffer started as a child process from this
//! package's own `loadgen` executable), on SQLite — and on PostgreSQL plus the baseline
//! when `COFFER_TEST_DATABASE_URL` is set. It asserts that the ledger checks pass and
//! that the table prints every scenario; it asserts no timing, because CI machines are
//! not benchmark machines. The `reports` scenario, which `all` leaves out, runs on a
//! small history (50 customers × 20 expenses) with every answer checked. `single`,
//! `reads` and `wallet` run on the light client (the default); `reads` and `wallet` run
//! once more on `--client reqwest`, so the old path keeps working. The gRPC scenarios
//! (`grpc-batch`, `grpc-single`, `grpc-stream`) and `pipeline` run within `all`, and
//! `grpc-stream` once more against a running server given by `--url` and `--grpc-url`.

use std::{path::PathBuf, time::Duration};

use loadgen::{
    Client, Options, Scenario,
    report::{Checks, System},
    run::{BaselineDatabase, ReportsOptions},
};

/// The PostgreSQL admin URL the other suites use, if set; CI must set it.
fn postgres_url() -> Option<String> {
    match std::env::var("COFFER_TEST_DATABASE_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var("CI").is_ok_and(|ci| ci == "true") => {
            panic!("CI=true but COFFER_TEST_DATABASE_URL is not set: the PostgreSQL smoke must run in CI")
        }
        _ => None,
    }
}

/// A one-second run of `scenario` on `client`, with the baseline where `postgres` is set.
/// Small numbers keep a debug build well under 30 s; the code path is the same.
fn smoke(scenario: Scenario, client: Client, postgres: Option<String>) -> Options {
    Options {
        scenario,
        database_url: postgres.clone(),
        url: None,
        grpc_url: None,
        admin_key: None,
        warmup: Duration::ZERO,
        duration: Duration::from_secs(1),
        connections: 16,
        batch_connections: 2,
        grpc_connections: 2,
        streams: 2,
        batch_size: 500,
        accounts: 200,
        // `batch` runs on a prefilled ledger: its checks count the prefill's transfers.
        prefill: Duration::from_secs(1),
        // The wallet scenario's setup path with monitors on every wallet.
        monitors_per_wallet: 3,
        client,
        baseline: postgres.map_or(BaselineDatabase::Skip, BaselineDatabase::Url),
        reports: ReportsOptions::default(),
        server_executable: PathBuf::from(env!("CARGO_BIN_EXE_loadgen")),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_scenario_runs_and_the_ledger_checks_out() {
    let postgres = postgres_url();
    // The default: single, reads and wallet on the light client.
    let options = smoke(Scenario::All, Client::Light, postgres.clone());
    let report = loadgen::run(&options).await.expect("the harness runs");
    let table = report.to_string();
    println!("{table}");
    assert!(report.failures.is_empty(), "checks failed:\n{table}");

    let backends: &[&str] = if postgres.is_some() { &["sqlite", "postgres"] } else { &["sqlite"] };
    for backend in backends {
        for (scenario, shapes) in [
            ("batch/500", 2),
            ("single", 2),
            ("grpc-batch/500", 2),
            ("grpc-single", 2),
            ("grpc-stream/500", 2),
            ("wallet", 2),
            ("reads", 1),
        ] {
            let rows: Vec<_> = report
                .rows
                .iter()
                .filter(|row| row.scenario == scenario && row.backend == *backend)
                .collect();
            assert_eq!(rows.len(), shapes, "{scenario} on {backend}:\n{table}");
            for row in rows {
                assert!(row.throughput > 0.0, "{scenario} {} on {backend} did nothing:\n{table}", row.shape);
                assert!(
                    row.cpu_cores.is_some() && row.client_us_per_request.is_some(),
                    "the harness's CPU beside the figure:\n{table}"
                );
                assert!(row.rss.is_some_and(|(idle, peak)| idle > 0 && peak >= idle), "RSS read:\n{table}");
                assert_eq!(row.checks, Checks::Passed, "{scenario} {} on {backend}:\n{table}", row.shape);
            }
        }
    }
    // The pipeline runs in the harness: no child, so no RSS, and its CPU is the harness's.
    for backend in backends {
        let rows: Vec<_> = report
            .rows
            .iter()
            .filter(|row| row.scenario == "pipeline/500" && row.backend == *backend)
            .collect();
        assert_eq!(rows.len(), 2, "pipeline on {backend}:\n{table}");
        for row in rows {
            assert!(row.throughput > 0.0 && row.checks == Checks::Passed, "pipeline {}:\n{table}", row.shape);
            assert!(
                row.rss.is_none()
                    && row.cpu_cores.is_some_and(|(server, client)| server.is_none() && client > 0.0)
            );
            assert!(row.client_us_per_request.is_some(), "{table}");
        }
    }
    for comparison in ["grpc-stream/batch", "grpc-stream/pipeline", "grpc-single/single"] {
        assert!(table.contains(comparison), "the table compares {comparison}:\n{table}");
    }
    let core: Vec<_> = report.rows.iter().filter(|row| row.scenario == "core").collect();
    assert_eq!(core.len(), 2, "core in both shapes:\n{table}");
    assert!(core.iter().all(|row| row.checks == Checks::Passed && row.throughput > 0.0), "{table}");
    let baselines = report.rows.iter().filter(|row| row.system == System::Baseline).count();
    if postgres.is_some() {
        assert_eq!(baselines, 2, "baseline in both shapes:\n{table}");
        let single = report.rows.iter().find(|row| row.scenario == "single").expect("single row");
        assert!(single.ratio.is_some(), "the ratio column is filled:\n{table}");
    } else {
        assert_eq!(baselines, 0, "{table}");
        assert!(table.contains("baseline: skipped"), "the table says the baseline was skipped:\n{table}");
    }
    for scenario in ["core", "batch/500", "single", "grpc-stream/500", "pipeline/500", "reads"] {
        assert!(table.contains(scenario), "{scenario} missing from the table:\n{table}");
    }
    assert!(table.contains("client: light"), "the table names the client:\n{table}");
    assert!(table.contains("prefilled with"), "the table says how much the ledger held:\n{table}");
    assert!(!table.contains("reports"), "all leaves the reports scenario out:\n{table}");
}

/// `--client reqwest` keeps the old figures reproducible: its `reads` and `wallet`
/// workers (its `single` worker is the `batch` one, run above) still run and check out.
#[tokio::test(flavor = "multi_thread")]
async fn the_reqwest_client_still_drives_reads_and_wallet() {
    for (scenario, name, shapes) in [(Scenario::Reads, "reads", 1), (Scenario::Wallet, "wallet", 2)] {
        let options = smoke(scenario, Client::Reqwest, None);
        let report = loadgen::run(&options).await.expect("the harness runs");
        let table = report.to_string();
        println!("{table}");
        assert!(report.failures.is_empty(), "checks failed:\n{table}");
        let rows: Vec<_> = report.rows.iter().filter(|row| row.scenario == name).collect();
        assert_eq!(rows.len(), shapes, "{name}:\n{table}");
        for row in rows {
            assert!(row.throughput > 0.0 && row.checks == Checks::Passed, "{name} {}:\n{table}", row.shape);
            assert!(row.cpu_cores.is_some() && row.client_us_per_request.is_some(), "CPU printed:\n{table}");
        }
        assert!(table.contains("client: reqwest"), "the table names the client:\n{table}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_reports_scenario_loads_a_small_history_and_every_report_checks_out() {
    let postgres = postgres_url();
    let options = Options {
        baseline: BaselineDatabase::Skip,
        reports: ReportsOptions { customers: 50, expenses_per_customer: 20, requests: 20 },
        ..smoke(Scenario::Reports, Client::Light, postgres.clone())
    };
    let report = loadgen::run(&options).await.expect("the harness runs");
    let table = report.to_string();
    println!("{table}");
    assert!(report.failures.is_empty(), "checks failed:\n{table}");
    let backends: &[&str] = if postgres.is_some() { &["sqlite", "postgres"] } else { &["sqlite"] };
    for backend in backends {
        for scenario in ["reports", "reports/in-process"] {
            let row = report
                .rows
                .iter()
                .find(|row| row.scenario == scenario && row.backend == *backend)
                .unwrap_or_else(|| panic!("{scenario} on {backend} missing:\n{table}"));
            assert_eq!(row.checks, Checks::Passed, "{scenario} on {backend}:\n{table}");
            assert_eq!(row.errors, 0, "{scenario} on {backend}:\n{table}");
            assert!(
                row.throughput > 0.0 && row.p50 > Duration::ZERO,
                "{scenario} on {backend} timed:\n{table}"
            );
        }
        assert!(
            table.contains(&format!("reports on {backend}: loaded 1000 expenses"))
                && table.contains("counted afterwards: 1000 expenses, "),
            "the load is counted:\n{table}"
        );
        assert!(table.contains(&format!("reports on {backend}, plan of category_totals")), "{table}");
    }
    assert_eq!(report.rows.len(), 2 * backends.len(), "only the reports rows:\n{table}");
}

/// `--url` and `--grpc-url`: the gRPC scenarios against a server the harness did not
/// start (here one it starts by hand, as an operator would run one).
#[tokio::test(flavor = "multi_thread")]
async fn the_grpc_scenarios_run_against_a_running_server() {
    let executable = PathBuf::from(env!("CARGO_BIN_EXE_loadgen"));
    let server = loadgen::server::ChildServer::start(&executable, None).await.expect("Coffer starts");
    let grpc_url = server.grpc_url.clone().expect("the child serves gRPC");
    let remote = |scenario, grpc_url: Option<String>| Options {
        url: Some(server.base_url.clone()),
        grpc_url,
        admin_key: Some(server.admin_key.clone()),
        ..smoke(scenario, Client::Light, None)
    };
    let report = loadgen::run(&remote(Scenario::GrpcStream, Some(grpc_url))).await.expect("the harness runs");
    let table = report.to_string();
    println!("{table}");
    assert!(report.failures.is_empty(), "checks failed:\n{table}");
    let rows: Vec<_> = report.rows.iter().filter(|row| row.scenario == "grpc-stream/500").collect();
    assert_eq!(rows.len(), 2, "{table}");
    for row in rows {
        assert_eq!((row.backend.as_str(), row.checks), ("remote", Checks::Passed), "{table}");
        assert!(row.throughput > 0.0 && row.rss.is_none(), "{table}");
    }
    // Asked for by name without --grpc-url, the scenario fails instead of passing empty.
    let report = loadgen::run(&remote(Scenario::GrpcSingle, None)).await.expect("the harness runs");
    assert!(report.failures.iter().any(|failure| failure.contains("--grpc-url")), "{report}");
    server.stop().await.expect("Coffer stops");
}
