//! The one table the harness prints: a row per scenario, shape, backend and system, with
//! throughput, latency percentiles, errors, the server's memory, the CPU of the server
//! and of the harness (cores, and the harness's microseconds per request), the
//! Coffer/baseline ratio and whether the ledger checked out, followed by notes and any
//! check failures.

use std::{fmt, time::Duration};

use crate::latency::Latencies;

/// Which system a row measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum System {
    Coffer,
    Baseline,
}

/// Whether the ledger checked out after the row's run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Checks {
    Passed,
    Failed,
    /// Nothing to check (a read-only scenario checks every answer instead).
    None,
}

/// One measured run.
#[derive(Clone, Debug)]
pub struct Row {
    /// `core`, `batch/8190`, `single`, `grpc-batch/8190`, `grpc-single`,
    /// `grpc-stream/8190`, `pipeline/8190`, `reads`, `baseline`.
    pub scenario: String,
    /// `uniform` or `hot`.
    pub shape: &'static str,
    /// `memory`, `sqlite`, `postgres` or `remote`.
    pub backend: String,
    pub system: System,
    /// Requests (or transactions) in flight at once.
    pub connections: usize,
    /// Operations per second over the measured window.
    pub throughput: f64,
    /// What `throughput` counts: `transfers/s` or `reads/s`.
    pub unit: &'static str,
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
    /// Failed requests and events answered with anything but `ok`.
    pub errors: u64,
    /// The server's RSS when idle (after start) and at its peak, in bytes; `None` when
    /// the harness did not start the server.
    pub rss: Option<(u64, u64)>,
    /// Cores busy while measuring: the server's (when the harness started it) and the
    /// harness's own, which shares the machine with it.
    pub cpu_cores: Option<(Option<f64>, f64)>,
    /// The harness's CPU time per request sent while measuring, in microseconds: what
    /// one request costs the client (`None` where the row counts no requests).
    pub client_us_per_request: Option<f64>,
    /// This row's throughput over the best baseline row of the same shape.
    pub ratio: Option<f64>,
    pub checks: Checks,
}

impl Row {
    /// Fills the latency columns from `latencies`.
    pub fn with_latencies(mut self, latencies: &Latencies) -> Self {
        self.p50 = latencies.quantile(0.50);
        self.p99 = latencies.quantile(0.99);
        self.max = latencies.max();
        self
    }
}

/// Everything one run of the harness found.
#[derive(Clone, Debug, Default)]
pub struct Report {
    pub rows: Vec<Row>,
    /// Lines printed under the table (what was skipped, what the columns mean).
    pub notes: Vec<String>,
    /// Check failures and scenarios that could not run; any makes the run fail.
    pub failures: Vec<String>,
}

impl Report {
    /// Sets each Coffer write row's ratio to the best baseline row of the same shape:
    /// the most favourable figure the baseline reached, so the ratio is conservative.
    pub fn compute_ratios(&mut self) {
        let best = |shape: &str, rows: &[Row]| {
            rows.iter()
                .filter(|row| row.system == System::Baseline && row.shape == shape && row.throughput > 0.0)
                .map(|row| row.throughput)
                .fold(None, |best: Option<f64>, value| Some(best.map_or(value, |best| best.max(value))))
        };
        let rows = self.rows.clone();
        for row in &mut self.rows {
            let served_write = row.scenario.starts_with("batch")
                || row.scenario == "single"
                || row.scenario.starts_with("grpc-");
            if row.system == System::Coffer && served_write {
                row.ratio = best(row.shape, &rows).map(|baseline| row.throughput / baseline);
            }
        }
    }
}

/// The comparisons the gRPC work is judged by, as (numerator, denominator, the target
/// ratio the issue set, or none): the stream at least as fast as REST batches and at
/// least 80 % of what the pipeline sustains with no transport; one transfer per call at
/// least 1.5 times REST's one per request.
pub const COMPARISONS: [(&str, &str, Option<f64>); 4] = [
    ("grpc-stream", "batch", Some(1.0)),
    ("grpc-stream", "pipeline", Some(0.8)),
    ("grpc-single", "single", Some(1.5)),
    ("grpc-batch", "batch", None),
];

/// The scenario's family: `batch/8190` is `batch`.
fn family(scenario: &str) -> &str {
    scenario.split('/').next().unwrap_or(scenario)
}

impl Report {
    /// One note per backend and shape with the [`COMPARISONS`] its rows allow: each
    /// ratio of throughputs, and whether it meets its target.
    pub fn comparisons(&self) -> Vec<String> {
        let mut notes = Vec::new();
        let mut seen: Vec<(&str, &str)> = Vec::new();
        for row in self.rows.iter().filter(|row| row.system == System::Coffer) {
            let key = (row.backend.as_str(), row.shape);
            if seen.contains(&key) {
                continue;
            }
            seen.push(key);
            let throughput = |name: &str| {
                self.rows
                    .iter()
                    .find(|row| {
                        row.system == System::Coffer
                            && (row.backend.as_str(), row.shape) == key
                            && family(&row.scenario) == name
                    })
                    .map(|row| row.throughput)
                    .filter(|throughput| *throughput > 0.0)
            };
            let parts: Vec<String> = COMPARISONS
                .iter()
                .filter_map(|(over, under, target)| {
                    let ratio = throughput(over)? / throughput(under)?;
                    Some(match target {
                        Some(target) => format!(
                            "{over}/{under} {ratio:.2} (target {target:.2}: {})",
                            if ratio >= *target { "met" } else { "MISSED" }
                        ),
                        None => format!("{over}/{under} {ratio:.2}"),
                    })
                })
                .collect();
            if !parts.is_empty() {
                notes.push(format!("{} on {}: {}", key.1, key.0, parts.join(", ")));
            }
        }
        notes
    }
}

fn milliseconds(duration: Duration) -> String {
    format!("{:.2}", duration.as_secs_f64() * 1000.0)
}

const MEBIBYTE: f64 = 1024.0 * 1024.0;

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let header = [
            "scenario",
            "shape",
            "backend",
            "system",
            "conns",
            "throughput",
            "unit",
            "p50 ms",
            "p99 ms",
            "max ms",
            "errors",
            "RSS idle/peak MB",
            "CPU srv/cli",
            "cli us/req",
            "coffer/baseline",
            "checks",
        ];
        let mut lines: Vec<Vec<String>> = vec![header.iter().map(|cell| (*cell).to_owned()).collect()];
        // Every row has exactly one cell per header column (checked below).
        for row in &self.rows {
            lines.push(vec![
                row.scenario.clone(),
                row.shape.to_owned(),
                row.backend.clone(),
                match row.system {
                    System::Coffer => "coffer".into(),
                    System::Baseline => "baseline".into(),
                },
                row.connections.to_string(),
                format!("{:.0}", row.throughput),
                row.unit.to_owned(),
                milliseconds(row.p50),
                milliseconds(row.p99),
                milliseconds(row.max),
                row.errors.to_string(),
                row.rss.map_or_else(
                    || "-".into(),
                    |(idle, peak)| format!("{:.0}/{:.0}", idle as f64 / MEBIBYTE, peak as f64 / MEBIBYTE),
                ),
                row.cpu_cores.map_or_else(
                    || "-".into(),
                    |(server, client)| match server {
                        Some(server) => format!("{server:.2}/{client:.2}"),
                        None => format!("-/{client:.2}"),
                    },
                ),
                row.client_us_per_request.map_or_else(|| "-".into(), |micros| format!("{micros:.1}")),
                row.ratio.map_or_else(|| "-".into(), |ratio| format!("{ratio:.1}x")),
                match row.checks {
                    Checks::Passed => "ok".into(),
                    Checks::Failed => "FAILED".into(),
                    Checks::None => "-".into(),
                },
            ]);
        }
        assert!(lines.iter().all(|line| line.len() == header.len()), "one cell per column");
        let widths: Vec<usize> = (0..header.len())
            .map(|column| lines.iter().map(|line| line[column].chars().count()).max().unwrap_or(0))
            .collect();
        for (number, line) in lines.iter().enumerate() {
            let cells: Vec<String> = line
                .iter()
                .zip(&widths)
                .enumerate()
                .map(|(column, (cell, width))| {
                    // Text left, numbers right, as people read tables.
                    if column < 4 || column == 6 || column == 15 {
                        format!("{cell:<width$}")
                    } else {
                        format!("{cell:>width$}")
                    }
                })
                .collect();
            writeln!(f, "| {} |", cells.join(" | "))?;
            if number == 0 {
                let rule: Vec<String> = widths.iter().map(|width| "-".repeat(*width)).collect();
                writeln!(f, "|-{}-|", rule.join("-|-"))?;
            }
        }
        for note in &self.notes {
            writeln!(f, "note: {note}")?;
        }
        for failure in &self.failures {
            writeln!(f, "FAILED: {failure}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(system: System, shape: &'static str, scenario: &str, throughput: f64) -> Row {
        Row {
            scenario: scenario.into(),
            shape,
            backend: "sqlite".into(),
            system,
            connections: 16,
            throughput,
            unit: "transfers/s",
            p50: Duration::from_micros(1_500),
            p99: Duration::from_millis(3),
            max: Duration::from_millis(4),
            errors: 0,
            rss: Some((10 << 20, 20 << 20)),
            cpu_cores: Some((Some(1.0), 0.5)),
            client_us_per_request: Some(12.34),
            ratio: None,
            checks: Checks::Passed,
        }
    }

    #[test]
    fn comparisons_pair_rows_of_the_same_backend_and_shape() {
        let report = Report {
            rows: vec![
                row(System::Coffer, "hot", "batch/8190", 100.0),
                row(System::Coffer, "hot", "grpc-stream/8190", 90.0),
                row(System::Coffer, "hot", "pipeline/8190", 100.0),
                row(System::Coffer, "hot", "single", 10.0),
                row(System::Coffer, "hot", "grpc-single", 16.0),
                row(System::Coffer, "uniform", "batch/8190", 50.0),
                row(System::Baseline, "uniform", "grpc-stream/8190", 500.0),
            ],
            ..Report::default()
        };
        let notes = report.comparisons();
        assert_eq!(
            notes,
            [
                "hot on sqlite: grpc-stream/batch 0.90 (target 1.00: MISSED), grpc-stream/pipeline 0.90 (target 0.80: met), grpc-single/single 1.60 (target 1.50: met)"
            ],
            "uniform has nothing to compare (a baseline row is not Coffer's)"
        );
    }

    #[test]
    fn ratios_use_the_best_baseline_of_the_same_shape_and_the_table_lines_up() {
        let mut report = Report {
            rows: vec![
                row(System::Coffer, "hot", "single", 3_000.0),
                row(System::Coffer, "hot", "reads", 3_000.0),
                row(System::Baseline, "hot", "baseline", 100.0),
                row(System::Baseline, "hot", "baseline", 300.0),
                row(System::Baseline, "uniform", "baseline", 1_000.0),
            ],
            ..Report::default()
        };
        report.compute_ratios();
        assert_eq!(report.rows[0].ratio, Some(10.0));
        assert_eq!(report.rows[1].ratio, None, "reads have no baseline");
        let table = report.to_string();
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 2 + report.rows.len());
        assert!(lines.iter().all(|line| line.len() == lines[0].len()), "aligned:\n{table}");
        assert!(
            lines[0].contains("CPU srv/cli")
                && lines[2].contains("1.00/0.50")
                && lines[2].contains(" 12.3 ")
                && lines[2].contains("10.0x"),
            "{table}"
        );
    }
}
