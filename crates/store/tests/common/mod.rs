//! The storage test harness shared by the contract suites: a fresh database per test —
//! SQLite in a temporary directory always, PostgreSQL when `COFFER_TEST_DATABASE_URL` is
//! set (a new database on that server, dropped afterwards) — and `contract!`, which runs
//! each named test against both.

#![allow(dead_code)]

use sqlx::{AssertSqlSafe, Connection, PgConnection};
use store::{Store, StoreOptions};

/// Connections per store in tests: enough for the concurrency test to contend, few enough
/// that parallel PostgreSQL tests stay under the server's connection limit.
const TEST_CONNECTIONS_MAX: u32 = 6;

/// A fresh, empty, migrated database for one test, and the way to reopen it.
pub struct TestDb {
    pub store: Store,
    url: String,
    /// Keeps the SQLite file's directory alive for the test's duration.
    _dir: Option<tempfile::TempDir>,
    /// `(admin url, database name)` of a PostgreSQL test database, dropped on drop.
    pub postgres: Option<(String, String)>,
}

impl TestDb {
    pub async fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let url = format!("sqlite:{}", dir.path().join("data").join("coffer.db").display());
        let store = open(&url).await;
        Self { store, url, _dir: Some(dir), postgres: None }
    }

    /// `None` when `COFFER_TEST_DATABASE_URL` is unset (PostgreSQL is optional locally,
    /// never under `CI=true`).
    pub async fn postgres() -> Option<Self> {
        let Ok(admin) = std::env::var("COFFER_TEST_DATABASE_URL") else {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI=true but COFFER_TEST_DATABASE_URL is not set: the PostgreSQL suite must run in CI"
            );
            return None;
        };
        let name = format!("coffer_test_{:016x}", rand::random::<u64>());
        let mut connection = PgConnection::connect(&admin)
            .await
            .expect("COFFER_TEST_DATABASE_URL is set but PostgreSQL cannot be reached");
        sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut connection)
            .await
            .expect("create the test database");
        connection.close().await.expect("close the admin connection");
        let url = with_database(&admin, &name);
        let store = open(&url).await;
        Some(Self { store, url, _dir: None, postgres: Some((admin, name)) })
    }

    /// Another fresh database on the same backend.
    pub async fn like(&self) -> Self {
        if self.postgres.is_some() {
            Self::postgres().await.expect("configured")
        } else {
            Self::sqlite().await
        }
    }

    /// Another store on the same database, as a second coffer process (or a restart).
    pub async fn reopen(&self) -> Store {
        open(&self.url).await
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some((admin, name)) = self.postgres.take() else { return };
        // Drop runs outside async; a thread with its own runtime does the async cleanup,
        // also when the test panicked. FORCE ends the pools' connections.
        let cleanup = std::thread::spawn(move || {
            let runtime =
                tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            runtime.block_on(async move {
                let mut connection =
                    PgConnection::connect(&admin).await.expect("reach PostgreSQL to clean up");
                sqlx::query(AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")))
                    .execute(&mut connection)
                    .await
                    .expect("drop the test database");
            });
        });
        if cleanup.join().is_err() && !std::thread::panicking() {
            panic!("dropping the test database failed");
        }
    }
}

/// `admin` with its database name replaced by `name`.
pub fn with_database(admin: &str, name: &str) -> String {
    let (base, query) = match admin.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (admin, String::new()),
    };
    let authority_start = base.find("://").map_or(0, |index| index + 3);
    let base = match base[authority_start..].find('/') {
        Some(slash) => &base[..authority_start + slash],
        None => base,
    };
    format!("{base}/{name}{query}")
}

pub async fn open(url: &str) -> Store {
    let store = Store::open(url, StoreOptions { max_connections: TEST_CONNECTIONS_MAX }).await.expect("open");
    store.migrate().await.expect("migrate");
    store
}

/// Runs each named contract test against SQLite and, when configured, PostgreSQL.
#[macro_export]
macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let db = $crate::common::TestDb::sqlite().await;
                    super::$name(&db).await;
                    db.store.close().await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(db) = $crate::common::TestDb::postgres().await else { return };
                    super::$name(&db).await;
                    db.store.close().await;
                }
            )*
        }
    };
}
