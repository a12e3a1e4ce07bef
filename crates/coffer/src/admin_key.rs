//! The admin API key: from configuration, or generated once and kept in the data dir.
//!
//! A server that starts with no key configured must still be protected, so the first
//! start makes a random key, writes it to `DATA_DIR/admin-api-key` (owner-only) and prints
//! it once on stderr. Later starts read the same file and print nothing.

use std::path::Path;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use rand::RngCore;

use crate::config::{MIN_ADMIN_KEY_LEN, Secret};

/// The file name inside the data directory.
pub const ADMIN_KEY_FILE: &str = "admin-api-key";

/// Random bytes in a generated key: 256 bits, beyond any guessing.
const GENERATED_KEY_BYTES: usize = 32;

/// Returns the configured key, or the stored one, or a freshly generated and stored one.
pub fn load_or_create(data_dir: &Path, configured: Option<Secret>) -> anyhow::Result<Secret> {
    if let Some(key) = configured {
        return Ok(key);
    }
    let path = data_dir.join(ADMIN_KEY_FILE);
    let (key, made) = crate::support::secret_file(&path, MIN_ADMIN_KEY_LEN, || {
        let mut bytes = [0u8; GENERATED_KEY_BYTES];
        rand::rng().fill_bytes(&mut bytes);
        format!("coffer_admin_{}", URL_SAFE_NO_PAD.encode(bytes))
    })?;
    if made {
        // Printed, not logged: the key must not end up in a log pipeline.
        eprintln!(
            "Generated an admin API key (stored in {}); use it as `Authorization: Bearer {}`",
            path.display(),
            key.expose()
        );
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generates_once_then_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let first = load_or_create(dir.path(), None).unwrap();
        let second = load_or_create(dir.path(), None).unwrap();
        assert_eq!(first.expose(), second.expose());
        assert!(first.expose().len() > 40);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(ADMIN_KEY_FILE)).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn configured_key_wins_and_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let key: Secret = "configured-admin-key-123".parse().unwrap();
        assert_eq!(load_or_create(dir.path(), Some(key.clone())).unwrap(), key);
        assert!(!dir.path().join(ADMIN_KEY_FILE).exists());
    }
}
