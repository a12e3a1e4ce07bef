//! The server's two secrets — the admin API key and the secret that signs access tokens —
//! where they come from, and how they are rotated without a restart.
//!
//! Each is configured (`COFFER_ADMIN_API_KEY`, `COFFER_JWT_SECRET`) or kept in the data
//! directory (`admin-api-key`, `jwt-secret`: made on the first start, owner-only).
//! [`rotate`] (`coffer keys rotate`) writes a new secret into the file and moves the old
//! one to `<file>.previous` with the time until which it is still accepted: for the signing
//! secret, until every token it signed has expired; for the admin key, after a grace the
//! operator picks (zero: refused at once). Servers re-read the files every
//! [`RELOAD_INTERVAL`] ([`Keys::reload`]), so a rotation takes effect on every node that
//! shares the directory without a restart. A configured secret is rotated by the
//! deployment: the old value goes into `COFFER_ADMIN_API_KEY_PREVIOUS` /
//! `COFFER_JWT_SECRET_PREVIOUS` while the nodes restart with the new one, and is removed
//! after the grace.

use std::{
    fs, io,
    path::{Path, PathBuf},
    sync::{Arc, RwLock},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use rand::RngCore;

use super::token::{
    self, ACCESS_TOKEN_TTL_SECONDS, AccessTokens, CLOCK_LEEWAY_SECONDS, JWT_SECRET_BYTES_MIN,
};
use crate::config::{MIN_ADMIN_KEY_LEN, Secret};

/// How often a server re-reads the secrets kept in the data directory.
pub const RELOAD_INTERVAL: Duration = Duration::from_secs(2);
/// Random bytes in a generated secret: 256 bits, beyond any guessing.
const GENERATED_BYTES: usize = 32;
/// The suffix of the file that keeps a replaced secret.
const PREVIOUS_SUFFIX: &str = ".previous";

/// Which of the two secrets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    /// The admin API key.
    AdminKey,
    /// The secret that signs access tokens.
    JwtSecret,
}

impl Kind {
    /// The file inside the data directory.
    pub fn file(self) -> &'static str {
        match self {
            Kind::AdminKey => "admin-api-key",
            Kind::JwtSecret => "jwt-secret",
        }
    }

    /// The configuration variable that replaces the file.
    pub fn variable(self) -> &'static str {
        match self {
            Kind::AdminKey => "COFFER_ADMIN_API_KEY",
            Kind::JwtSecret => "COFFER_JWT_SECRET",
        }
    }

    fn len_min(self) -> usize {
        match self {
            Kind::AdminKey => MIN_ADMIN_KEY_LEN,
            Kind::JwtSecret => JWT_SECRET_BYTES_MIN,
        }
    }

    fn generate(self) -> String {
        let mut bytes = [0u8; GENERATED_BYTES];
        rand::rng().fill_bytes(&mut bytes);
        let random = URL_SAFE_NO_PAD.encode(bytes);
        match self {
            Kind::AdminKey => format!("coffer_admin_{random}"),
            Kind::JwtSecret => random,
        }
    }
}

/// A secret and the one it replaced, while that one is still accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeySet {
    pub current: Secret,
    /// The replaced secret and the end of its grace (unix seconds; `None`: for as long as
    /// it is configured).
    pub previous: Option<(Secret, Option<u64>)>,
}

impl KeySet {
    /// Whether `credential` is the current secret, or the previous one before its end.
    /// Compared in constant time.
    fn accepts(&self, credential: &str, now: SystemTime) -> bool {
        let now = unix_seconds(now);
        let previous = self
            .previous
            .iter()
            .filter(|(_, until)| until.is_none_or(|until| now < until))
            .map(|(secret, _)| secret);
        // Both compared, always: the time taken does not say which one matched.
        std::iter::once(&self.current).chain(previous).fold(false, |found, secret| {
            constant_time_eq(credential.as_bytes(), secret.expose().as_bytes()) | found
        })
    }
}

/// Where the secrets come from: configured values; the data directory for the others.
#[derive(Clone, Debug)]
pub struct KeySources {
    pub data_dir: PathBuf,
    pub admin_key: Option<Secret>,
    pub admin_key_previous: Option<Secret>,
    pub jwt_secret: Option<Secret>,
    pub jwt_secret_previous: Option<Secret>,
}

/// The secrets in force. Shared by the HTTP layer (the admin key) and [`super::Identity`]
/// (tokens); [`Keys::reload`] swaps them when the files change.
pub struct Keys {
    /// `None`: fixed at construction.
    sources: Option<KeySources>,
    loaded: RwLock<Arc<Loaded>>,
}

struct Loaded {
    admin: KeySet,
    jwt: KeySet,
    tokens: AccessTokens,
}

impl Loaded {
    fn new(admin: KeySet, jwt: KeySet) -> Self {
        let previous = jwt.previous.as_ref().map(|(secret, until)| (secret, *until));
        let tokens = AccessTokens::new(&jwt.current, previous);
        Self { admin, jwt, tokens }
    }
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keys(***)")
    }
}

impl Keys {
    /// The configured secrets, and the kept ones for the rest (made and stored when the
    /// data directory has none; a made admin key is printed once on standard error).
    pub fn load(sources: KeySources) -> anyhow::Result<Self> {
        let (admin, jwt) = sources.key_sets(Kept::MakeIfMissing)?;
        Ok(Self { sources: Some(sources), loaded: RwLock::new(Arc::new(Loaded::new(admin, jwt))) })
    }

    /// Fixed secrets, never reloaded (commands that issue no token).
    pub fn fixed(admin: Secret, jwt: Secret) -> Self {
        let loaded =
            Loaded::new(KeySet { current: admin, previous: None }, KeySet { current: jwt, previous: None });
        Self { sources: None, loaded: RwLock::new(Arc::new(loaded)) }
    }

    /// Whether any secret is kept in the data directory (and so worth re-reading).
    pub fn reloadable(&self) -> bool {
        self.sources
            .as_ref()
            .is_some_and(|sources| sources.admin_key.is_none() || sources.jwt_secret.is_none())
    }

    /// Re-reads the kept secrets; `true` when they changed. On an error (a half-edited
    /// or removed file) the secrets in force stay: only a start makes a missing secret.
    pub fn reload(&self) -> anyhow::Result<bool> {
        let Some(sources) = &self.sources else { return Ok(false) };
        let (admin, jwt) = sources.key_sets(Kept::MustExist)?;
        let current = self.current();
        if current.admin == admin && current.jwt == jwt {
            return Ok(false);
        }
        *self.loaded.write().unwrap_or_else(|poisoned| poisoned.into_inner()) =
            Arc::new(Loaded::new(admin, jwt));
        Ok(true)
    }

    fn current(&self) -> Arc<Loaded> {
        self.loaded.read().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    /// The current admin API key.
    pub fn admin_key(&self) -> Secret {
        self.current().admin.current.clone()
    }

    /// Whether `credential` is an admin API key in force.
    pub fn is_admin_key(&self, credential: &str) -> bool {
        self.current().admin.accepts(credential, SystemTime::now())
    }

    /// A fresh access token, signed with the current secret.
    pub fn issue(
        &self,
        customer_id: uuid::Uuid,
        role: super::Role,
        now: SystemTime,
    ) -> anyhow::Result<String> {
        self.current().tokens.issue(customer_id, role, now)
    }

    /// A key for `purpose`, made from the current token signing secret: the same on every
    /// node that shares the secret, and not guessable without it.
    pub fn derive(&self, purpose: &str) -> [u8; 32] {
        use hmac::{Hmac, KeyInit as _, Mac as _};
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(self.current().jwt.current.expose().as_bytes())
            .expect("HMAC takes keys of any length");
        mac.update(purpose.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// The claims of an access token signed by a secret in force.
    pub fn verify(&self, token: &str) -> Option<token::Claims> {
        self.current().tokens.verify(token, SystemTime::now())
    }
}

/// What to do when a kept secret's file is missing.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kept {
    /// Make one (a server's first start).
    MakeIfMissing,
    /// Fail (a reload: the file was removed under a running server).
    MustExist,
}

impl KeySources {
    /// The admin key's and the signing secret's sets.
    fn key_sets(&self, kept: Kept) -> anyhow::Result<(KeySet, KeySet)> {
        let admin = key_set(Kind::AdminKey, &self.admin_key, &self.admin_key_previous, &self.data_dir, kept)?;
        let jwt =
            key_set(Kind::JwtSecret, &self.jwt_secret, &self.jwt_secret_previous, &self.data_dir, kept)?;
        Ok((admin, jwt))
    }
}

/// The configured secret with its configured predecessor, or the kept ones.
fn key_set(
    kind: Kind,
    configured: &Option<Secret>,
    configured_previous: &Option<Secret>,
    data_dir: &Path,
    kept: Kept,
) -> anyhow::Result<KeySet> {
    if let Some(current) = configured {
        let previous = configured_previous.clone().map(|secret| (secret, None));
        return Ok(KeySet { current: current.clone(), previous });
    }
    let path = data_dir.join(kind.file());
    let current = match kept {
        Kept::MakeIfMissing => {
            let (current, made) = crate::support::secret_file(&path, kind.len_min(), || kind.generate())?;
            if made && kind == Kind::AdminKey {
                // Printed, not logged: the key must not end up in a log pipeline.
                eprintln!(
                    "Generated an admin API key (stored in {}); use it as `Authorization: Bearer {}`",
                    path.display(),
                    current.expose()
                );
            }
            current
        }
        Kept::MustExist => crate::support::read_secret(&path, kind.len_min())?
            .ok_or_else(|| anyhow::anyhow!("{} was removed", path.display()))?,
    };
    let previous = read_previous(&previous_path(&path), kind.len_min())?;
    Ok(KeySet { current, previous: previous.map(|(secret, until)| (secret, Some(until))) })
}

fn previous_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(PREVIOUS_SUFFIX);
    PathBuf::from(name)
}

/// A `.previous` file: the secret on the first line, `until <unix seconds>` on the second.
fn read_previous(path: &Path, len_min: usize) -> anyhow::Result<Option<(Secret, u64)>> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(error) => anyhow::bail!("cannot read {}: {error}", path.display()),
    };
    let mut lines = text.lines();
    let secret = lines.next().unwrap_or_default().trim();
    let until = lines.next().and_then(|line| line.trim().strip_prefix("until ")).and_then(|n| n.parse().ok());
    match until {
        Some(until) if secret.len() >= len_min => Ok(Some((Secret::new(secret.to_owned()), until))),
        _ => anyhow::bail!("{} is not a secret followed by `until <unix seconds>`", path.display()),
    }
}

/// The outcome of [`rotate`].
#[derive(Debug)]
pub struct Rotated {
    pub new: Secret,
    /// Until when the replaced secret is still accepted (unix seconds).
    pub previous_until: u64,
}

/// Replaces the secret kept in `data_dir`: a new one in its file, the old one in
/// `<file>.previous`, accepted until `now + grace` (the signing secret: until every token
/// it signed has expired, whatever `grace` says). Each file is replaced atomically, the `.previous`
/// first, so a crash between the two leaves the old secret in force. A replaced secret
/// still in its grace is dropped (its tokens or clients fail early): rotate again only
/// after the grace.
pub fn rotate(data_dir: &Path, kind: Kind, grace: Duration, now: SystemTime) -> anyhow::Result<Rotated> {
    let path = data_dir.join(kind.file());
    let old = crate::support::read_secret(&path, kind.len_min())?.ok_or_else(|| {
        anyhow::anyhow!(
            "{} does not exist: a server makes it on its first start (or the secret is configured with {})",
            path.display(),
            kind.variable()
        )
    })?;
    let grace = match kind {
        Kind::AdminKey => grace,
        // No longer than its last token can live: an old secret is no use after that.
        Kind::JwtSecret => Duration::from_secs(ACCESS_TOKEN_TTL_SECONDS + CLOCK_LEEWAY_SECONDS),
    };
    let previous_until = unix_seconds(now) + grace.as_secs();
    let previous = format!("{}\nuntil {previous_until}\n", old.expose());
    crate::support::replace_owner_only(&previous_path(&path), previous.as_bytes())?;
    let new = kind.generate();
    crate::support::replace_owner_only(&path, format!("{new}\n").as_bytes())?;
    Ok(Rotated { new: Secret::new(new), previous_until })
}

fn unix_seconds(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |since| since.as_secs())
}

/// Compares without an early exit, so response time does not reveal how much of a
/// guessed key was right. (The length may leak; keys are long and random.)
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kept(dir: &Path) -> KeySources {
        KeySources {
            data_dir: dir.to_owned(),
            admin_key: None,
            admin_key_previous: None,
            jwt_secret: None,
            jwt_secret_previous: None,
        }
    }

    #[test]
    fn secrets_are_made_once_owner_only_then_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let first = Keys::load(kept(dir.path())).unwrap();
        let second = Keys::load(kept(dir.path())).unwrap();
        assert_eq!(first.admin_key(), second.admin_key());
        assert!(first.admin_key().expose().starts_with("coffer_admin_"));
        let token =
            first.issue(uuid::Uuid::now_v7(), super::super::Role::Customer, SystemTime::now()).unwrap();
        assert!(second.verify(&token).is_some(), "the same signing secret was read back");
        #[cfg(unix)]
        for kind in [Kind::AdminKey, Kind::JwtSecret] {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(dir.path().join(kind.file())).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn configured_secrets_win_and_touch_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let key: Secret = "configured-admin-key-0123".parse().unwrap();
        let old: Secret = "previous-admin-key-012345".parse().unwrap();
        let sources = KeySources {
            admin_key: Some(key.clone()),
            admin_key_previous: Some(old.clone()),
            jwt_secret: Some(Secret::new("j".repeat(32))),
            ..kept(dir.path())
        };
        let keys = Keys::load(sources).unwrap();
        assert_eq!(keys.admin_key(), key);
        assert!(keys.is_admin_key(key.expose()) && keys.is_admin_key(old.expose()));
        assert!(!keys.is_admin_key("configured-admin-key-0124"));
        assert!(!keys.reloadable());
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn a_rotated_admin_key_is_accepted_until_its_grace_ends() {
        let dir = tempfile::tempdir().unwrap();
        let keys = Keys::load(kept(dir.path())).unwrap();
        let old = keys.admin_key();
        let now = SystemTime::now();
        let rotated = rotate(dir.path(), Kind::AdminKey, Duration::from_secs(60), now).unwrap();
        assert!(!keys.is_admin_key(rotated.new.expose()), "not before the files are re-read");
        assert!(keys.reload().unwrap());
        assert!(!keys.reload().unwrap(), "nothing changed since");
        assert_eq!(keys.admin_key(), rotated.new);
        let set = &keys.current().admin;
        assert!(set.accepts(old.expose(), now + Duration::from_secs(59)));
        assert!(!set.accepts(old.expose(), now + Duration::from_secs(60)));
        assert!(set.accepts(rotated.new.expose(), now + Duration::from_secs(3600)));

        rotate(dir.path(), Kind::AdminKey, Duration::ZERO, now).unwrap();
        keys.reload().unwrap();
        assert!(!keys.is_admin_key(rotated.new.expose()), "no grace: refused at once");
        assert!(!keys.is_admin_key(old.expose()), "two rotations back: gone");
    }

    #[test]
    fn a_rotated_signing_secret_honours_its_tokens_until_they_expire() {
        let dir = tempfile::tempdir().unwrap();
        let keys = Keys::load(kept(dir.path())).unwrap();
        let customer = uuid::Uuid::now_v7();
        let before = keys.issue(customer, super::super::Role::Customer, SystemTime::now()).unwrap();
        let rotated = rotate(dir.path(), Kind::JwtSecret, Duration::ZERO, SystemTime::now()).unwrap();
        let now = unix_seconds(SystemTime::now());
        assert!(
            (now + ACCESS_TOKEN_TTL_SECONDS..=now + ACCESS_TOKEN_TTL_SECONDS + 10)
                .contains(&rotated.previous_until)
        );
        assert!(keys.reload().unwrap());
        assert_eq!(keys.verify(&before).map(|claims| claims.sub), Some(customer), "old token still honoured");
        let after = keys.issue(customer, super::super::Role::Customer, SystemTime::now()).unwrap();
        assert_ne!(
            jsonwebtoken::decode_header(&before).unwrap().kid,
            jsonwebtoken::decode_header(&after).unwrap().kid
        );
        assert!(keys.verify(&after).is_some());
    }

    #[test]
    fn a_broken_or_removed_file_keeps_the_secrets_in_force() {
        let dir = tempfile::tempdir().unwrap();
        let keys = Keys::load(kept(dir.path())).unwrap();
        let key = keys.admin_key();
        fs::write(dir.path().join("admin-api-key.previous"), "short\n").unwrap();
        assert!(keys.reload().is_err());
        assert_eq!(keys.admin_key(), key);
        assert!(Keys::load(kept(dir.path())).is_err(), "and a start with it fails");
        fs::remove_file(dir.path().join("admin-api-key.previous")).unwrap();
        fs::remove_file(dir.path().join("admin-api-key")).unwrap();
        assert!(keys.reload().is_err(), "a removed key is not silently replaced");
        assert!(!dir.path().join("admin-api-key").exists());
        assert!(keys.is_admin_key(key.expose()));
    }

    #[test]
    fn rotating_needs_a_kept_secret() {
        let dir = tempfile::tempdir().unwrap();
        let error = rotate(dir.path(), Kind::JwtSecret, Duration::ZERO, SystemTime::now()).unwrap_err();
        assert!(error.to_string().contains("COFFER_JWT_SECRET"), "{error}");
    }

    #[test]
    fn constant_time_eq_compares_whole_strings() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }
}
