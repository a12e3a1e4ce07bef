//! Copies of the embedded database, for `coffer backup` and `coffer restore`.
//!
//! [`sqlite_copy`] uses SQLite's online backup API in a single step: it reads the source
//! inside one read transaction, so the copy is the database as of one commit, while the
//! server keeps writing (in WAL mode readers and the writer do not block each other).
//! [`sqlite_facts`] reads what a manifest records about a copy. PostgreSQL is backed up
//! with its own tools (`pg_dump`, or base backups with WAL archiving).

use std::path::Path;

use ledger::chain::Link;
use rusqlite::{Connection, OpenFlags, OptionalExtension as _};

use crate::{Result, StoreError};

/// What a copy holds, to record in its manifest and check after a restore.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CopyFacts {
    /// The newest migration applied to it.
    pub schema_version: i64,
    pub accounts: u64,
    pub transfers: u64,
    pub wallets: u64,
    /// The hash chain's latest link.
    pub chain_head: Option<Link>,
}

/// The newest SQLite migration this build has.
pub fn sqlite_schema_version() -> i64 {
    sqlx::migrate!("./migrations/sqlite")
        .migrations
        .iter()
        .map(|migration| migration.version)
        .max()
        .unwrap_or(0)
}

fn embedded(error: rusqlite::Error) -> StoreError {
    StoreError::Embedded(error)
}

/// Copies the SQLite database at `source` (which a server may be writing) into a new file
/// at `destination`, consistently.
pub fn sqlite_copy(source: &Path, destination: &Path) -> Result<()> {
    let from = Connection::open_with_flags(
        source,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(embedded)?;
    from.busy_timeout(std::time::Duration::from_secs(30)).map_err(embedded)?;
    let mut to = Connection::open(destination).map_err(embedded)?;
    let backup = rusqlite::backup::Backup::new(&from, &mut to).map_err(embedded)?;
    // All pages in one step: one read transaction, so no write can restart it.
    loop {
        match backup.step(-1).map_err(embedded)? {
            rusqlite::backup::StepResult::Done => break,
            // Busy or locked: a writer holds a lock for a moment; try again.
            _ => std::thread::sleep(std::time::Duration::from_millis(10)),
        }
    }
    drop(backup);
    // A self-contained file: no WAL beside it.
    to.pragma_update(None, "journal_mode", "DELETE").map_err(embedded)?;
    Ok(())
}

/// What the SQLite database at `path` holds (opened read-only).
pub fn sqlite_facts(path: &Path) -> Result<CopyFacts> {
    let connection = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(embedded)?;
    let count = |table: &str| -> Result<u64> {
        let count: i64 = connection
            .query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |row| row.get(0))
            .map_err(embedded)?;
        Ok(count.max(0) as u64)
    };
    let schema_version: i64 = connection
        .query_row("SELECT COALESCE(MAX(version), 0) FROM _sqlx_migrations WHERE success", [], |row| {
            row.get(0)
        })
        .map_err(embedded)?;
    let chained: bool = connection
        .query_row(
            "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'ledger_chain')",
            [],
            |row| row.get(0),
        )
        .map_err(embedded)?;
    // A database from before the hash chain has no links.
    let chain_head = if !chained {
        None
    } else {
        connection
            .query_row(
                &format!("SELECT {} FROM ledger_chain ORDER BY seq DESC LIMIT 1", crate::codec::LINK_COLUMNS),
                [],
                crate::codec::LinkRow::read,
            )
            .optional()
            .map_err(embedded)?
            .map(Link::try_from)
            .transpose()?
    };
    Ok(CopyFacts {
        schema_version,
        accounts: count("accounts")?,
        transfers: count("transfers")?,
        wallets: count("wallets")?,
        chain_head,
    })
}

/// Whether the SQLite database at `path` passes SQLite's own integrity check.
pub fn sqlite_integrity(path: &Path) -> Result<std::result::Result<(), String>> {
    let connection = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(embedded)?;
    let answer: String =
        connection.query_row("PRAGMA integrity_check", [], |row| row.get(0)).map_err(embedded)?;
    Ok(if answer == "ok" { Ok(()) } else { Err(answer) })
}
