//! A read replica (`COFFER_READ_DATABASE_URL`): a real PostgreSQL primary and a streaming
//! replica of it made by `tools/cluster/pg-pair.sh`. History is served by the replica
//! while it keeps up; with its WAL replay paused (the replica held behind on purpose), a
//! transfer acknowledged a moment before is still in the history the customer reads next —
//! the read waited, then went to the primary — and with the replica stopped, reads go on
//! from the primary without an error.
//!
//! Runs when `COFFER_TEST_DATABASE_URL` is set (the PostgreSQL suites are on); needs
//! Debian's PostgreSQL server binaries, as the system PostgreSQL does.

mod common;

use std::path::{Path, PathBuf};

use common::customer::{card_top_up, get, open_wallet, transfer};
use common::{Backend, Options, register_and_login, spawn_app_with};
use sqlx::Connection as _;

/// A primary and its replica, removed when dropped.
struct Pair {
    dir: tempfile::TempDir,
    primary: String,
    replica: String,
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tools/cluster/pg-pair.sh")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Pair {
    fn up() -> Self {
        let dir = tempfile::tempdir().unwrap();
        // The servers run as `postgres`, which must reach the folder.
        std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let output = std::process::Command::new(script())
            .arg("up")
            .arg(dir.path().join("pg"))
            .args([free_port().to_string(), free_port().to_string()])
            .output()
            .unwrap();
        assert!(output.status.success(), "pg-pair.sh up: {}", String::from_utf8_lossy(&output.stderr));
        let urls = String::from_utf8(output.stdout).unwrap();
        let mut urls = urls.lines().map(str::to_owned);
        Self { primary: urls.next().unwrap(), replica: urls.next().unwrap(), dir }
    }

    /// Runs one statement on the replica server.
    async fn on_replica(&self, statement: &str) {
        let mut connection = sqlx::PgConnection::connect(&self.replica).await.unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(statement.to_owned())).execute(&mut connection).await.unwrap();
    }

    fn stop_replica(&self) {
        let status = std::process::Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(pg_ctl())
            .arg("-D")
            .arg(self.dir.path().join("pg/replica"))
            .args(["-m", "immediate", "-w", "stop"])
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        let _ = std::process::Command::new(script()).arg("down").arg(self.dir.path().join("pg")).status();
    }
}

fn pg_ctl() -> PathBuf {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .unwrap()
        .map(|entry| entry.unwrap().path().join("bin/pg_ctl"))
        .filter(|path| path.exists())
        .collect();
    found.sort();
    found.pop().expect("Debian's PostgreSQL server binaries")
}

/// `coffer_replica_reads_total` for reads served by `served_by` (`replica`, `primary`)
/// for the reason `why`, from the server's metrics.
async fn replica_reads(app: &common::TestApp, served_by: &str, why: &str) -> u64 {
    let text = app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    let labels = [format!("served_by=\"{served_by}\""), format!("why=\"{why}\"")];
    text.lines()
        .filter(|line| line.starts_with("coffer_replica_reads_total{"))
        .filter(|line| labels.iter().all(|label| line.contains(label.as_str())))
        .map(|line| line.rsplit(' ').next().unwrap().parse::<f64>().unwrap() as u64)
        .sum()
}

#[tokio::test]
async fn history_never_misses_an_acknowledged_transfer_while_the_replica_lags() {
    if !common::backends().iter().any(|backend| matches!(backend, Backend::Postgres(_))) {
        return;
    }
    let pair = Pair::up();
    let options = Options {
        read_replica: Some(pair.replica.clone()),
        configure: |args| args.read_replica_wait_ms = 200,
        ..Options::default()
    };
    let app = spawn_app_with(&Backend::Postgres(pair.primary.clone()), options).await;
    let alice = register_and_login(&app, "alice@example.com").await;
    let bob = register_and_login(&app, "bob@example.com").await;
    let wallet = open_wallet(&app, &alice, "USD").await;
    let bobs = open_wallet(&app, &bob, "USD").await;
    card_top_up(&app, &alice, &wallet, 10_000, "tok_visa").await;
    let history = format!("/v1/wallets/{wallet}/operations");
    let first = transfer(&app, &alice, &wallet, &bobs, 100).await;

    // Keeping up: the replica serves the history, and it holds the transfer.
    let served = replica_reads(&app, "replica", "caught_up").await;
    let (status, page) = get(&app, &alice, &history).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["data"][0]["id"], first["id"], "{page}");
    assert!(replica_reads(&app, "replica", "caught_up").await > served, "the replica served it");

    // Held behind: replay paused, then a transfer is acknowledged.
    pair.on_replica("SELECT pg_wal_replay_pause()").await;
    let lagging = replica_reads(&app, "primary", "replica_lagging").await;
    let second = transfer(&app, &alice, &wallet, &bobs, 7).await;
    let (status, page) = get(&app, &alice, &history).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["data"][0]["id"], second["id"], "the acknowledged transfer is in the history: {page}");
    assert!(replica_reads(&app, "primary", "replica_lagging").await > lagging, "the primary answered");
    // ... and the replica really does not have it yet.
    let replica_database =
        common::replace_database(&pair.replica, app.database_url().rsplit('/').next().unwrap());
    let mut replica = sqlx::PgConnection::connect(&replica_database).await.unwrap();
    let notes: i64 = sqlx::query_scalar("SELECT count(*) FROM transfer_notes WHERE kind = 'transfer'")
        .fetch_one(&mut replica)
        .await
        .unwrap();
    assert_eq!(notes, 1, "the replica is behind: it has the first transfer only");
    replica.close().await.unwrap();

    // Caught up again: the replica serves the next read.
    pair.on_replica("SELECT pg_wal_replay_resume()").await;
    let served = replica_reads(&app, "replica", "caught_up").await;
    let (status, page) = get(&app, &alice, &history).await;
    assert_eq!((status, &page["data"][0]["id"]), (200, &second["id"]));
    assert!(replica_reads(&app, "replica", "caught_up").await > served);

    // Gone: reads go on from the primary.
    pair.stop_replica();
    let (status, page) = get(&app, &alice, &history).await;
    assert_eq!((status, &page["data"][0]["id"]), (200, &second["id"]), "{page}");
    assert!(replica_reads(&app, "primary", "replica_failed").await > 0);
    app.stop().await;
}
