//! `coffer backup` and `coffer restore`, for the embedded database.
//!
//! A backup file is a gzip stream: the line `COFFER-BACKUP 1`, one line of JSON (the
//! [`Manifest`]: schema version, counts, the hash chain's head), then the database file.
//! `zcat FILE | head -2` shows what a file holds. The copy is consistent while the server
//! runs (`store::backup::sqlite_copy`). Restore writes into an empty data directory only,
//! refuses a schema newer than this build's, and checks the result against the manifest
//! and SQLite's integrity check before putting it in place; `coffer verify` is the check
//! of the books after it.
//!
//! PostgreSQL deployments use PostgreSQL's tools (`pg_dump`, base backups with WAL
//! archiving for point-in-time recovery); the README says how.

use std::fs::File;
use std::io::{BufRead as _, BufReader, BufWriter, Read as _, Write as _};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail, ensure};
use flate2::{Compression, read::GzDecoder, write::GzEncoder};
use serde::{Deserialize, Serialize};

/// The first line of every backup file.
const MAGIC: &str = "COFFER-BACKUP 1";

/// What a backup holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// When it was made (RFC 3339).
    pub created_at: String,
    /// The newest migration applied to the database.
    pub schema_version: i64,
    pub accounts: u64,
    pub transfers: u64,
    pub wallets: u64,
    /// The hash chain's head at the time (0 and 64 zeros before the first link).
    pub chain_seq: u64,
    pub chain_hash: String,
    /// Bytes of the database file that follows.
    pub database_bytes: u64,
}

impl Manifest {
    fn of(facts: &store::backup::CopyFacts, database_bytes: u64) -> Self {
        let (chain_seq, chain_hash) = match &facts.chain_head {
            Some(link) => (link.seq, hex::encode(link.hash)),
            None => (0, hex::encode(ledger::chain::GENESIS)),
        };
        Self {
            created_at: crate::rfc3339(store::now_ns()),
            schema_version: facts.schema_version,
            accounts: facts.accounts,
            transfers: facts.transfers,
            wallets: facts.wallets,
            chain_seq,
            chain_hash,
            database_bytes,
        }
    }

    /// Whether `facts` (of a restored file) are what this manifest recorded.
    fn matches(&self, facts: &store::backup::CopyFacts) -> bool {
        let again = Self::of(facts, self.database_bytes);
        (
            again.schema_version,
            again.accounts,
            again.transfers,
            again.wallets,
            again.chain_seq,
            &again.chain_hash,
        ) == (
            self.schema_version,
            self.accounts,
            self.transfers,
            self.wallets,
            self.chain_seq,
            &self.chain_hash,
        )
    }
}

/// `path` with `suffix` added to its file name.
fn beside(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().map(|name| name.to_os_string()).unwrap_or_default();
    name.push(suffix);
    path.with_file_name(name)
}

/// Writes a backup of the embedded database file `source` to `to` (replacing nothing:
/// `to` must not exist). `progress` is called with the bytes written so far and the total.
pub fn backup(source: &Path, to: &Path, mut progress: impl FnMut(u64, u64)) -> anyhow::Result<Manifest> {
    ensure!(source.is_file(), "no embedded database at {}", source.display());
    ensure!(!to.exists(), "{} exists already; a backup never replaces a file", to.display());
    let copy = beside(to, ".db-copy");
    let partial = beside(to, ".partial");
    let result = (|| {
        store::backup::sqlite_copy(source, &copy).context("copying the database")?;
        let facts = store::backup::sqlite_facts(&copy)?;
        let total = std::fs::metadata(&copy)?.len();
        let manifest = Manifest::of(&facts, total);
        let file = File::create(&partial).with_context(|| format!("creating {}", partial.display()))?;
        let mut out = GzEncoder::new(BufWriter::new(file), Compression::fast());
        writeln!(out, "{MAGIC}")?;
        writeln!(out, "{}", serde_json::to_string(&manifest)?)?;
        let mut input = File::open(&copy)?;
        let mut buffer = vec![0u8; 1 << 20];
        let mut written = 0u64;
        loop {
            let read = input.read(&mut buffer)?;
            if read == 0 {
                break;
            }
            out.write_all(&buffer[..read])?;
            written += read as u64;
            progress(written, total);
        }
        ensure!(written == total, "the copy changed while it was packed");
        let file = out.finish()?.into_inner().map_err(|error| error.into_error())?;
        file.sync_all()?;
        std::fs::rename(&partial, to)?;
        crate::support::sync_directory_of(to)?;
        Ok(manifest)
    })();
    let _ = std::fs::remove_file(&copy);
    if result.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    result
}

/// Reads a backup's manifest (the first two lines).
pub fn manifest(from: &Path) -> anyhow::Result<Manifest> {
    let mut input = BufReader::new(GzDecoder::new(File::open(from)?));
    read_manifest(&mut input)
}

fn read_manifest(input: &mut impl std::io::BufRead) -> anyhow::Result<Manifest> {
    let mut line = String::new();
    input.read_line(&mut line).context("reading the backup")?;
    ensure!(line.trim_end() == MAGIC, "not a Coffer backup (it does not start with {MAGIC})");
    line.clear();
    input.read_line(&mut line)?;
    serde_json::from_str(line.trim_end()).context("the backup's manifest is unreadable")
}

/// Restores the backup `from` as the embedded database file `target`, which must not
/// exist yet (nor its WAL).
pub fn restore(from: &Path, target: &Path, mut progress: impl FnMut(u64, u64)) -> anyhow::Result<Manifest> {
    let target = target.to_path_buf();
    for existing in [target.clone(), beside(&target, "-wal")] {
        ensure!(
            !existing.exists(),
            "{} exists: restore only into an empty data directory",
            existing.display()
        );
    }
    let mut input = BufReader::new(GzDecoder::new(
        File::open(from).with_context(|| format!("opening {}", from.display()))?,
    ));
    let manifest = read_manifest(&mut input)?;
    let newest = store::backup::sqlite_schema_version();
    if manifest.schema_version > newest {
        bail!(
            "the backup's schema ({}) is newer than this build's ({newest}): restore it with the Coffer version that made it",
            manifest.schema_version
        );
    }
    if let Some(directory) = target.parent().filter(|parent| !parent.as_os_str().is_empty()) {
        std::fs::create_dir_all(directory)?;
    }
    let partial = beside(&target, ".restoring");
    let result = (|| {
        let mut out = BufWriter::new(File::create(&partial)?);
        let mut written = 0u64;
        loop {
            let buffer = input.fill_buf()?;
            if buffer.is_empty() {
                break;
            }
            let read = buffer.len();
            out.write_all(buffer)?;
            input.consume(read);
            written += read as u64;
            progress(written, manifest.database_bytes);
        }
        ensure!(
            written == manifest.database_bytes,
            "the backup is truncated: {written} of {} database bytes",
            manifest.database_bytes
        );
        out.into_inner().map_err(|error| error.into_error())?.sync_all()?;
        if let Err(problem) = store::backup::sqlite_integrity(&partial)? {
            bail!("the restored database fails SQLite's integrity check: {problem}");
        }
        let facts = store::backup::sqlite_facts(&partial)?;
        ensure!(manifest.matches(&facts), "the restored database does not hold what the manifest says");
        std::fs::rename(&partial, &target)?;
        crate::support::sync_directory_of(&target)?;
        Ok(manifest)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    result
}
