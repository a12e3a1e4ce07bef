//! Coffer as a child process. The harness runs its own executable with the hidden
//! `serve-coffer` subcommand, which binds Coffer's HTTP and gRPC listeners on
//! 127.0.0.1:0 and prints `listening http://ADDRESS` then `listening-grpc http://ADDRESS`
//! as its first two stdout lines; the parent reads them (no sleeping to wait for
//! readiness), reads the child's memory from `/proc/PID/status`, and stops it by closing
//! its stdin, which also stops it if the harness dies.
//!
//! A separate process keeps the server's RSS its own and its allocator and runtime apart
//! from the load generator's, as in production.

use std::{path::Path, process::Stdio, time::Duration};

use anyhow::{Context, bail};
use coffer::config::ServeArgs;
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, BufReader},
    process::{Child, Command},
};

use crate::postgres::ScratchDatabase;

/// The line prefix the child prints once it listens.
const LISTENING_PREFIX: &str = "listening ";
/// The prefix of the second line: where its gRPC listener is (`none` without one).
const LISTENING_GRPC_PREFIX: &str = "listening-grpc ";
/// Longest the child may take to migrate and bind: migrations on a fresh PostgreSQL
/// database take a second or two; a debug build on a busy machine several.
pub const STARTUP_TIMEOUT_MS: u64 = 60_000;
/// Longest the child may take to drain and stop after its stdin closes, before it is
/// killed (a full commit queue drains in well under a second).
pub const SHUTDOWN_TIMEOUT_MS: u64 = 30_000;
/// The admin key the harness gives the child servers it starts (they are private).
const CHILD_ADMIN_KEY: &str = "loadgen-admin-key-not-a-secret";
/// Environment variables the child must not inherit: they would override the flags the
/// harness passes (for example a DATABASE_URL in the user's shell turning the SQLite run
/// into a PostgreSQL one).
const INHERITED_ENV_PREFIXES: [&str; 2] = ["COFFER_", "DATABASE_URL"];

/// A Coffer server running as a child process, with its data.
#[derive(Debug)]
pub struct ChildServer {
    child: Child,
    pid: u32,
    /// `http://127.0.0.1:PORT`.
    pub base_url: String,
    /// The gRPC listener, `http://127.0.0.1:PORT` (`None` if the child serves none).
    pub grpc_url: Option<String>,
    /// The child's admin API key.
    pub admin_key: String,
    data_dir: tempfile::TempDir,
    database: Option<ScratchDatabase>,
}

/// Memory figures of a process, in bytes.
#[derive(Clone, Copy, Debug, Default)]
pub struct Memory {
    /// Resident set size now.
    pub rss_bytes: u64,
    /// Peak resident set size since the process started.
    pub peak_rss_bytes: u64,
}

impl ChildServer {
    /// Starts `executable serve-coffer` on SQLite in a temporary directory, or on a fresh
    /// scratch database when `postgres_admin_url` is given; returns once it listens.
    pub async fn start(executable: &Path, postgres_admin_url: Option<&str>) -> anyhow::Result<Self> {
        let data_dir = tempfile::Builder::new().prefix("coffer-loadgen-").tempdir()?;
        let database = match postgres_admin_url {
            Some(url) => Some(ScratchDatabase::create(url, "coffer").await?),
            None => None,
        };
        let mut command = Command::new(executable);
        command.arg("serve-coffer").arg("--data-dir").arg(data_dir.path()).args(["--listen", "127.0.0.1:0"]);
        // gRPC on a free port of its own (the fixed default could clash between runs).
        command.args(["--grpc-listen", "127.0.0.1:0"]);
        if let Some(database) = &database {
            command.args(["--database-url", &database.url]);
        }
        for (name, _) in std::env::vars_os() {
            if INHERITED_ENV_PREFIXES.iter().any(|prefix| name.to_string_lossy().starts_with(prefix)) {
                command.env_remove(name);
            }
        }
        // Passed by environment, not argument, so it does not show in `ps`.
        command.env("COFFER_ADMIN_API_KEY", CHILD_ADMIN_KEY).env("COFFER_LOG", "warn");
        // The wallet scenario measures money movement, not logins or the per-customer
        // limit: a cheap password hash keeps its setup (a registration per customer)
        // short, and the rate limit is lifted so the server, not the limiter, is measured.
        command.env("COFFER_ARGON2_MEMORY_KIB", "1024").env("COFFER_MONEY_REQUESTS_PER_MINUTE", "1000000");
        command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::inherit()).kill_on_drop(true);
        let mut child = command.spawn().with_context(|| format!("starting {}", executable.display()))?;
        let pid = child.id().context("child has no pid")?;
        let stdout = child.stdout.take().context("child stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let started = tokio::time::timeout(Duration::from_millis(STARTUP_TIMEOUT_MS), async {
            Ok::<_, std::io::Error>((lines.next_line().await?, lines.next_line().await?))
        });
        let (first, second) = started.await.context("Coffer did not start in time")??;
        let Some(address) = first.as_deref().and_then(|line| line.strip_prefix(LISTENING_PREFIX)) else {
            bail!("Coffer did not start: first line {first:?} (its stderr is above)");
        };
        let base_url = address.to_owned();
        let Some(grpc) = second.as_deref().and_then(|line| line.strip_prefix(LISTENING_GRPC_PREFIX)) else {
            bail!("Coffer did not say where gRPC listens: second line {second:?}");
        };
        let grpc_url = (grpc != "none").then(|| grpc.to_owned());
        // Whatever else the child prints must not fill the pipe and block it.
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                eprintln!("coffer: {line}");
            }
        });
        Ok(Self { child, pid, base_url, grpc_url, admin_key: CHILD_ADMIN_KEY.to_owned(), data_dir, database })
    }

    /// The URL of the child's database: its scratch PostgreSQL database, or the SQLite file
    /// in its data directory (where `coffer serve` puts it). The `reports` scenario loads
    /// rows into it directly.
    pub fn database_url(&self) -> String {
        let database = coffer::config::DatabaseArgs {
            data_dir: self.data_dir.path().to_owned(),
            database_url: self.database.as_ref().map(|database| database.url.clone()),
            // Not read by `url()`.
            database_max_connections: 2,
        };
        database.url()
    }

    /// The child's memory now (from `/proc/PID/status`).
    pub fn memory(&self) -> anyhow::Result<Memory> {
        memory_of(self.pid)
    }

    /// CPU time the child has used so far, in seconds.
    pub fn cpu_seconds(&self) -> anyhow::Result<f64> {
        cpu_seconds_of(self.pid)
    }

    /// Stops the child gracefully (closing its stdin), then drops its scratch database.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        drop(self.child.stdin.take());
        match tokio::time::timeout(Duration::from_millis(SHUTDOWN_TIMEOUT_MS), self.child.wait()).await {
            Ok(status) => {
                let status = status?;
                if !status.success() {
                    bail!("Coffer exited with {status}");
                }
            }
            Err(_) => {
                self.child.kill().await?;
                bail!("Coffer did not stop within {SHUTDOWN_TIMEOUT_MS} ms; killed");
            }
        }
        drop(self.data_dir);
        if let Some(database) = self.database.take() {
            database.drop_database().await?;
        }
        Ok(())
    }
}

/// Clock ticks per second in `/proc/PID/stat` (`USER_HZ`): 100 on every Linux
/// configuration that exposes it to user space, fixed by the kernel ABI.
const USER_HZ: f64 = 100.0;

/// CPU time process `pid` has used so far (user + system, all threads), in seconds.
pub fn cpu_seconds_of(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name (field 2) may hold spaces; the fields after its `)` do not.
    let after_name = &stat[stat.rfind(')').context("malformed /proc stat")? + 2..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
    let ticks: u64 = fields.get(11).context("no utime")?.parse::<u64>()?
        + fields.get(12).context("no stime")?.parse::<u64>()?;
    Ok(ticks as f64 / USER_HZ)
}

/// `VmRSS` and `VmHWM` of process `pid`.
pub fn memory_of(pid: u32) -> anyhow::Result<Memory> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| -> anyhow::Result<u64> {
        let line =
            status.lines().find(|line| line.starts_with(name)).with_context(|| format!("no {name}"))?;
        let kilobytes: u64 = line[name.len()..].trim().trim_end_matches("kB").trim().parse()?;
        Ok(kilobytes * 1024)
    };
    Ok(Memory { rss_bytes: field("VmRSS:")?, peak_rss_bytes: field("VmHWM:")? })
}

/// The child side: binds Coffer with `args`, prints its addresses, and serves until stdin
/// closes (the parent stopped it or died) or a signal arrives.
pub async fn serve_coffer(args: ServeArgs) -> anyhow::Result<()> {
    // No trace export: the harness measures Coffer without it.
    let _telemetry = coffer::telemetry::init(
        &std::env::var("COFFER_LOG").unwrap_or_else(|_| "warn".into()),
        coffer::config::LogFormat::Text,
        None,
    )?;
    let server = coffer::server::Server::bind(args).await?;
    let address = server.local_addr()?;
    let grpc = server.grpc_local_addr().map_or_else(|| "none".to_owned(), |grpc| format!("http://{grpc}"));
    // Plain println: the parent reads exactly these lines, and stdout is line-buffered
    // only on a terminal, so flush explicitly.
    println!("{LISTENING_PREFIX}http://{address}");
    println!("{LISTENING_GRPC_PREFIX}{grpc}");
    std::io::Write::flush(&mut std::io::stdout())?;
    let stdin_closed = async {
        let mut stdin = tokio::io::stdin();
        let mut buffer = [0u8; 64];
        while matches!(stdin.read(&mut buffer).await, Ok(read) if read > 0) {}
    };
    server
        .run(async move {
            tokio::select! {
                () = stdin_closed => {},
                () = coffer::server::shutdown_signal() => {},
            }
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_memory_is_readable() {
        let memory = memory_of(std::process::id()).unwrap();
        assert!(memory.rss_bytes > 0);
        assert!(memory.peak_rss_bytes >= memory.rss_bytes);
        // Spin until the kernel's 10 ms accounting ticks over (or give up after 5 s).
        let before = cpu_seconds_of(std::process::id()).unwrap();
        let started = std::time::Instant::now();
        let mut after = before;
        while after <= before && started.elapsed() < Duration::from_secs(5) {
            std::hint::black_box(started.elapsed());
            after = cpu_seconds_of(std::process::id()).unwrap();
        }
        assert!(after > before, "spinning shows as CPU time: {before} -> {after}");
    }
}
