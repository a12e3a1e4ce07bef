//! The real `coffer` binary as a child process, for the tests that must kill it (`kill -9`
//! at a random point), run two of it on one database, or read everything it logs.
//!
//! The child runs `coffer serve --listen 127.0.0.1:0` with JSON logs on stderr; the
//! harness reads stderr line by line and takes the address from the `listening` line
//! (no sleeping to wait for readiness). Every line the child prints is kept, so a test
//! can scan the logs afterwards.

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, Command},
};

/// Longest a child may take to migrate and bind: migrations on a fresh PostgreSQL database
/// take a second or two; a debug build on a busy two-core machine several.
pub const STARTUP_TIMEOUT_MS: u64 = 60_000;

/// Longest a child may take to stop after SIGTERM before the test fails.
pub const SHUTDOWN_TIMEOUT_MS: u64 = 30_000;

/// The admin key every child gets (by environment, so it never shows in `ps`).
pub const CHILD_ADMIN_KEY: &str = "proof-admin-key-0123456789abcdef";

/// Environment variables a child must not inherit from whoever runs the tests: they would
/// override the settings the harness chooses.
const INHERITED_ENV_PREFIXES: [&str; 2] = ["COFFER_", "DATABASE_URL"];

/// What to run a child on.
#[derive(Clone, Debug)]
pub struct ChildConfig {
    pub data_dir: PathBuf,
    /// PostgreSQL URL; `None` is SQLite in `data_dir`.
    pub database_url: Option<String>,
    /// The tracing filter (`COFFER_LOG`).
    pub log: String,
    /// Further `COFFER_*` settings.
    pub env: Vec<(String, String)>,
}

impl ChildConfig {
    pub fn new(data_dir: &Path, database_url: Option<String>) -> Self {
        Self { data_dir: data_dir.to_path_buf(), database_url, log: "info".into(), env: Vec::new() }
    }

    pub fn with_env(mut self, name: &str, value: &str) -> Self {
        self.env.push((name.to_owned(), value.to_owned()));
        self
    }
}

/// A running `coffer serve`.
#[derive(Debug)]
pub struct ChildServer {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub base_url: String,
    /// Every stderr line so far (shared with the task that reads them).
    logs: Arc<Mutex<Vec<String>>>,
    reader: tokio::task::JoinHandle<()>,
}

impl ChildServer {
    /// Starts the binary; returns once it listens. Panics (failing the test) if it does
    /// not start within [`STARTUP_TIMEOUT_MS`].
    pub async fn start(config: &ChildConfig) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_coffer"));
        command.arg("serve").arg("--data-dir").arg(&config.data_dir).args(["--listen", "127.0.0.1:0"]);
        // Parallel tests cannot share gRPC's default port; these tests speak HTTP only.
        command.args(["--grpc-listen", "none"]);
        for (name, _) in std::env::vars_os() {
            if INHERITED_ENV_PREFIXES.iter().any(|prefix| name.to_string_lossy().starts_with(prefix)) {
                command.env_remove(name);
            }
        }
        if let Some(url) = &config.database_url {
            command.env("DATABASE_URL", url);
        }
        command
            .env("COFFER_ADMIN_API_KEY", CHILD_ADMIN_KEY)
            .env("COFFER_JWT_SECRET", super::TEST_JWT_SECRET)
            .env("COFFER_ARGON2_MEMORY_KIB", super::TEST_ARGON2_MEMORY_KIB.to_string())
            .env("COFFER_MONEY_REQUESTS_PER_MINUTE", "1000000")
            .env("COFFER_DATABASE_MAX_CONNECTIONS", "8")
            .env("COFFER_LOG", &config.log)
            .env("COFFER_LOG_FORMAT", "json");
        for (name, value) in &config.env {
            command.env(name, value);
        }
        command.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped()).kill_on_drop(true);
        let mut child = command.spawn().expect("the coffer binary starts");
        let stderr = child.stderr.take().expect("child stderr");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (address_tx, address_rx) = tokio::sync::oneshot::channel::<String>();
        let reader = {
            let logs = logs.clone();
            tokio::spawn(async move {
                let mut lines = BufReader::new(stderr).lines();
                let mut address_tx = Some(address_tx);
                while let Ok(Some(line)) = lines.next_line().await {
                    if let Some(address) = listening_address(&line)
                        && let Some(tx) = address_tx.take()
                    {
                        let _ = tx.send(address);
                    }
                    logs.lock().unwrap().push(line);
                }
            })
        };
        let address = match tokio::time::timeout(Duration::from_millis(STARTUP_TIMEOUT_MS), address_rx).await
        {
            Ok(Ok(address)) => address,
            outcome => {
                let logs = logs.lock().unwrap().join("\n");
                panic!("coffer did not start ({outcome:?}); its log:\n{logs}");
            }
        };
        Self { child, base_url: format!("http://{address}"), logs, reader }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base_url, path)
    }

    /// `kill -9`: no shutdown hook runs, nothing is flushed but what was committed.
    pub async fn kill(mut self) {
        self.child.start_kill().expect("SIGKILL delivered");
        let status = tokio::time::timeout(Duration::from_millis(SHUTDOWN_TIMEOUT_MS), self.child.wait())
            .await
            .expect("a killed process exits")
            .unwrap();
        assert!(!status.success(), "killed, not exited: {status}");
        self.reader.abort();
    }

    /// SIGTERM, then waits for a clean exit (the graceful shutdown path); returns the logs.
    pub async fn stop(mut self) -> Vec<String> {
        let pid = self.child.id().expect("running child has a pid");
        let sent = std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status().unwrap();
        assert!(sent.success(), "kill -TERM {pid}");
        let status = tokio::time::timeout(Duration::from_millis(SHUTDOWN_TIMEOUT_MS), self.child.wait())
            .await
            .expect("coffer stops after SIGTERM")
            .unwrap();
        // The reader ends at end of file, once the child's stderr closes.
        let _ = tokio::time::timeout(Duration::from_millis(SHUTDOWN_TIMEOUT_MS), &mut self.reader).await;
        assert!(status.success(), "graceful shutdown exits 0: {status}");
        self.logs()
    }

    /// Every stderr line so far.
    pub fn logs(&self) -> Vec<String> {
        self.logs.lock().unwrap().clone()
    }
}

/// The address in the server's `listening` log line, if this is that line.
fn listening_address(line: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(line).ok()?;
    (value["message"] == "listening").then(|| value["address"].as_str().map(str::to_owned))?
}

/// A database for child servers: a fresh PostgreSQL database (dropped by [`Self::drop`])
/// or SQLite in the data directory.
#[derive(Debug)]
pub struct ChildDatabase {
    pub data_dir: tempfile::TempDir,
    pub url: Option<String>,
    postgres: Option<(String, String)>,
}

impl ChildDatabase {
    pub async fn new(backend: &super::Backend) -> Self {
        let data_dir = tempfile::tempdir().unwrap();
        match backend {
            super::Backend::Sqlite => Self { data_dir, url: None, postgres: None },
            super::Backend::Postgres(server) => {
                let (url, name) = super::create_database(server).await;
                Self { data_dir, url: Some(url), postgres: Some((server.clone(), name)) }
            }
        }
    }

    pub fn config(&self) -> ChildConfig {
        ChildConfig::new(self.data_dir.path(), self.url.clone())
    }

    pub async fn drop(self) {
        if let Some((server, name)) = &self.postgres {
            super::drop_database(server, name).await;
        }
    }
}

#[test]
fn the_listening_line_gives_the_address() {
    let line = r#"{"timestamp":"x","level":"INFO","message":"listening","address":"127.0.0.1:4242","backend":"Sqlite"}"#;
    assert_eq!(listening_address(line).as_deref(), Some("127.0.0.1:4242"));
    assert_eq!(listening_address(r#"{"message":"shut down"}"#), None);
    assert_eq!(listening_address("not json"), None);
}
