//! Scratch PostgreSQL databases: each scenario that touches PostgreSQL gets a database of
//! its own, created from the admin URL the user gave and dropped afterwards, so runs
//! never see each other's rows and leave nothing behind.

use std::time::Duration;

use anyhow::Context;
use sqlx::{AssertSqlSafe, Connection, Executor, PgConnection};

/// How long to wait for PostgreSQL when only probing whether it is there (for the
/// baseline's default URL): long enough for a local server, short enough not to stall.
pub const PROBE_TIMEOUT_MS: u64 = 2_000;

/// A database created for one scenario; [`ScratchDatabase::drop_database`] removes it.
#[derive(Debug)]
pub struct ScratchDatabase {
    admin_url: String,
    name: String,
    /// The URL of the new database.
    pub url: String,
}

impl ScratchDatabase {
    /// Creates `coffer_bench_<label>_<random>` on the server `admin_url` points at.
    pub async fn create(admin_url: &str, label: &str) -> anyhow::Result<Self> {
        let name = format!("coffer_bench_{label}_{:016x}", rand::random::<u64>());
        let mut connection = PgConnection::connect(admin_url)
            .await
            .with_context(|| format!("connecting to PostgreSQL at {}", redact(admin_url)))?;
        connection.execute(AssertSqlSafe(format!("CREATE DATABASE {name}"))).await?;
        connection.close().await?;
        let url = replace_database(admin_url, &name);
        Ok(Self { admin_url: admin_url.to_owned(), name, url })
    }

    /// Drops the database, closing whatever connections are still open on it.
    pub async fn drop_database(self) -> anyhow::Result<()> {
        let mut connection = PgConnection::connect(&self.admin_url).await?;
        connection
            .execute(AssertSqlSafe(format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name)))
            .await?;
        connection.close().await?;
        Ok(())
    }
}

/// Whether a PostgreSQL server answers at `url` within [`PROBE_TIMEOUT_MS`].
pub async fn reachable(url: &str) -> bool {
    let connect = PgConnection::connect(url);
    matches!(tokio::time::timeout(Duration::from_millis(PROBE_TIMEOUT_MS), connect).await, Ok(Ok(_)))
}

/// `url` without its password, for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// `server_url` with its database name replaced by `name` (query string kept).
pub fn replace_database(server_url: &str, name: &str) -> String {
    let (base, query) = match server_url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (server_url, None),
    };
    let scheme_end = base.find("://").map_or(0, |at| at + 3);
    let base = match base[scheme_end..].find('/') {
        Some(slash) => &base[..scheme_end + slash],
        None => base,
    };
    match query {
        Some(query) => format!("{base}/{name}?{query}"),
        None => format!("{base}/{name}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_name_is_replaced_and_passwords_hidden() {
        assert_eq!(replace_database("postgres://u@h:5432/postgres", "x"), "postgres://u@h:5432/x");
        assert_eq!(replace_database("postgres://u@h:5432", "x"), "postgres://u@h:5432/x");
        assert_eq!(
            replace_database("postgres://u@h/db?sslmode=disable", "x"),
            "postgres://u@h/x?sslmode=disable"
        );
        assert_eq!(redact("postgres://u:secret@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
    }
}
