//! Small pieces the rest of the service shares: the retry delay ([`backoff`]), the
//! background worker loop ([`repeat`]), secrets kept in files of the data directory
//! ([`secret_file`]) and the TLS crypto provider ([`install_crypto_provider`]).

use std::{
    fs,
    io::{self, Write as _},
    path::Path,
    time::Duration,
};

use crate::config::Secret;

/// Makes ring rustls's crypto provider for the process (every outgoing HTTPS client —
/// webhooks, trace export — needs one); installing twice is refused harmlessly.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The delay before retry number `attempt` (1-based) of something that keeps failing:
/// `base`, doubled per attempt, at most `max`. Every retrying worker uses it (emails,
/// webhooks, scheduled payments, bank syncs, the relay).
pub fn backoff(base: Duration, attempt: u32, max: Duration) -> Duration {
    base.saturating_mul(1u32 << attempt.saturating_sub(1).min(20)).min(max)
}

/// Runs `step` every `interval` (at once again while it reports a full batch) until
/// `shutdown`: the loop of every background worker (emails, webhooks, scheduled
/// payments, bank syncs). A failed step is logged and tried again after `interval`.
pub async fn repeat<F, Fut>(
    name: &'static str,
    interval: Duration,
    shutdown: tokio_util::sync::CancellationToken,
    mut step: F,
) where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<bool>>,
{
    loop {
        let again = match step().await {
            Ok(full) => full,
            Err(error) => {
                tracing::warn!(worker = name, %error, "worker step failed; retrying");
                false
            }
        };
        if shutdown.is_cancelled() {
            return;
        }
        if !again {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(interval) => {}
            }
        }
    }
}

/// A secret kept in `path`: the one stored there (at least `len_min` bytes), or, when
/// there is none, one made by `generate` and stored owner-only. The flag says whether it
/// was just made.
pub fn secret_file(
    path: &Path,
    len_min: usize,
    generate: impl FnOnce() -> String,
) -> anyhow::Result<(Secret, bool)> {
    if let Some(secret) = read_secret(path, len_min)? {
        return Ok((secret, false));
    }
    if let Some(directory) = path.parent() {
        fs::create_dir_all(directory)?;
    }
    let secret = generate();
    write_owner_only(path, format!("{secret}\n").as_bytes())?;
    // The new name must survive a power cut too: a key printed once and then lost would
    // be replaced by another at the next start.
    sync_directory_of(path)?;
    Ok((Secret::new(secret), true))
}

/// The secret stored in `path` (its first line, at least `len_min` bytes); `None` when
/// there is no such file.
pub fn read_secret(path: &Path, len_min: usize) -> anyhow::Result<Option<Secret>> {
    match fs::read_to_string(path) {
        Ok(text) => {
            let secret = text.lines().next().unwrap_or_default().trim().to_owned();
            anyhow::ensure!(
                secret.len() >= len_min,
                "{} holds a secret shorter than {len_min} bytes",
                path.display()
            );
            Ok(Some(Secret::new(secret)))
        }
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(anyhow::anyhow!("cannot read {}: {error}", path.display())),
    }
}

/// Replaces `path` with an owner-only file holding `contents`, atomically and durably:
/// written and synced beside it, renamed over it, and the rename made durable.
pub fn replace_owner_only(path: &Path, contents: &[u8]) -> io::Result<()> {
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".new");
    let temporary = std::path::PathBuf::from(temporary);
    // A leftover of a crash would keep its permissions: start afresh.
    match fs::remove_file(&temporary) {
        Err(error) if error.kind() != io::ErrorKind::NotFound => return Err(error),
        _ => {}
    }
    write_owner_only(&temporary, contents)?;
    fs::rename(&temporary, path)?;
    sync_directory_of(path)
}

/// Makes the names in `path`'s directory durable (a new file, a rename): fsync of the
/// directory itself, which a file's own fsync does not cover.
pub fn sync_directory_of(path: &Path) -> io::Result<()> {
    match path.parent() {
        Some(directory) if !directory.as_os_str().is_empty() => fs::File::open(directory)?.sync_all(),
        _ => fs::File::open(".")?.sync_all(),
    }
}

/// Writes a new file readable and writable by its owner only (secrets live in it).
fn write_owner_only(path: &Path, contents: &[u8]) -> io::Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_file_is_made_once_then_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested").join("secret");
        let (first, made) = secret_file(&path, 8, || "0123456789".into()).unwrap();
        assert!(made);
        let (second, made) = secret_file(&path, 8, || unreachable!("already stored")).unwrap();
        assert!(!made);
        assert_eq!(first, second);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        fs::write(&path, "short\n").unwrap();
        assert!(secret_file(&path, 8, || unreachable!()).is_err(), "a short stored secret is refused");
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let base = Duration::from_millis(100);
        assert_eq!(backoff(base, 1, Duration::MAX), base);
        assert_eq!(backoff(base, 3, Duration::MAX), base * 4);
        assert_eq!(backoff(base, 30, Duration::from_secs(1)), Duration::from_secs(1));
    }
}
