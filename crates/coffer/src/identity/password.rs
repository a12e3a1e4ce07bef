//! Passwords: the policy a new password must meet ([`NewPassword`]) and Argon2id
//! hashing and verification ([`PasswordHasher`]), always off the async threads.
//!
//! Logging in with an unknown email verifies against a dummy hash made with the same
//! parameters, so "no such user" and "wrong password" take about the same time and give
//! the same answer.

use std::{collections::HashSet, fmt, sync::LazyLock};

use argon2::{
    Algorithm, Argon2, Params, Version,
    password_hash::{PasswordHasher as _, PasswordVerifier as _},
};

/// Shortest password accepted, in characters (OWASP ASVS 2.1.1 / NIST 800-63B).
pub const PASSWORD_CHARS_MIN: usize = 8;
/// Longest password accepted, in characters: long passphrases are welcome, but hashing
/// cost and request size stay bounded.
pub const PASSWORD_CHARS_MAX: usize = 128;

/// Argon2id memory cost OWASP recommends at least (19 MiB), in KiB. The production
/// default; configurable only so that test suites can hash quickly.
pub const ARGON2_MEMORY_KIB_DEFAULT: u32 = 19_456;
/// Argon2id passes (OWASP: 2 with 19 MiB).
const ARGON2_ITERATIONS: u32 = 2;
/// Argon2id lanes (OWASP: 1).
const ARGON2_PARALLELISM: u32 = 1;

/// Common passwords, most common first: John the Ripper's `password.lst` (3,546 entries,
/// compiled by Solar Designer of the Openwall Project, 1996–2011, stated to be in the
/// public domain; taken from the Debian package `john-data` 1.9.0-2). Its `#!comment:`
/// header is kept in the file as the attribution.
const COMMON_PASSWORDS_LIST: &str = include_str!("common-passwords.txt");

/// The list above, lowercased, for case-insensitive lookups.
static COMMON_PASSWORDS: LazyLock<HashSet<String>> = LazyLock::new(|| {
    COMMON_PASSWORDS_LIST
        .lines()
        .filter(|line| !line.starts_with("#!comment:") && !line.is_empty())
        .map(str::to_lowercase)
        .collect()
});

/// Why a new password was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    #[error("the password must be at least {PASSWORD_CHARS_MIN} characters long")]
    TooShort,
    #[error("the password must be at most {PASSWORD_CHARS_MAX} characters long")]
    TooLong,
    #[error("the password is too common; choose one that is harder to guess")]
    TooCommon,
}

/// A password that meets the policy. Its `Debug` never shows it.
#[derive(Clone)]
pub struct NewPassword(String);

impl NewPassword {
    pub fn parse(password: String) -> Result<Self, PasswordError> {
        let chars = password.chars().count();
        if chars < PASSWORD_CHARS_MIN {
            return Err(PasswordError::TooShort);
        }
        if chars > PASSWORD_CHARS_MAX {
            return Err(PasswordError::TooLong);
        }
        if COMMON_PASSWORDS.contains(&password.to_lowercase()) {
            return Err(PasswordError::TooCommon);
        }
        Ok(Self(password))
    }
}

impl fmt::Debug for NewPassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NewPassword(***)")
    }
}

/// Hashes and verifies passwords with Argon2id at fixed parameters.
#[derive(Clone)]
pub struct PasswordHasher {
    params: Params,
    /// A hash of a random password, verified against when the account does not exist.
    dummy_hash: String,
}

impl fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PasswordHasher").field("params", &self.params).finish_non_exhaustive()
    }
}

impl PasswordHasher {
    /// A hasher with `memory_kib` of memory per hash (see [`ARGON2_MEMORY_KIB_DEFAULT`]).
    pub async fn new(memory_kib: u32) -> anyhow::Result<Self> {
        let params = Params::new(memory_kib, ARGON2_ITERATIONS, ARGON2_PARALLELISM, None)
            .map_err(|error| anyhow::anyhow!("invalid Argon2 parameters: {error}"))?;
        let dummy_password = uuid::Uuid::new_v4().to_string();
        let dummy_hash = hash_blocking(params.clone(), dummy_password).await?;
        Ok(Self { params, dummy_hash })
    }

    /// The PHC string of `password` (Argon2id, fresh random salt).
    pub async fn hash(&self, password: NewPassword) -> anyhow::Result<String> {
        hash_blocking(self.params.clone(), password.0).await
    }

    /// Whether `candidate` matches `stored`. With no stored hash (no such account) it
    /// verifies against the dummy hash and answers false, taking the same time.
    pub async fn verify(&self, candidate: String, stored: Option<String>) -> anyhow::Result<bool> {
        let exists = stored.is_some();
        let hash = stored.unwrap_or_else(|| self.dummy_hash.clone());
        let matches = tokio::task::spawn_blocking(move || {
            // The parameters come from the stored hash, so older hashes still verify.
            Argon2::default().verify_password(candidate.as_bytes(), hash.as_str()).is_ok()
        })
        .await?;
        Ok(exists && matches)
    }
}

async fn hash_blocking(params: Params, password: String) -> anyhow::Result<String> {
    tokio::task::spawn_blocking(move || {
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
            .hash_password(password.as_bytes())
            .map(|hash| hash.to_string())
            .map_err(|error| anyhow::anyhow!("hashing failed: {error}"))
    })
    .await?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_is_long_enough_and_case_insensitive() {
        assert!(COMMON_PASSWORDS.len() >= 1_000, "{}", COMMON_PASSWORDS.len());
        assert_eq!(NewPassword::parse("PASSWORD1".into()).unwrap_err(), PasswordError::TooCommon);
        assert_eq!(NewPassword::parse("12345678".into()).unwrap_err(), PasswordError::TooCommon);
    }

    #[test]
    fn length_is_counted_in_characters() {
        assert_eq!(NewPassword::parse("short".into()).unwrap_err(), PasswordError::TooShort);
        // Eight characters, sixteen bytes.
        assert!(NewPassword::parse("ééééxyzw".into()).is_ok());
        assert_eq!(NewPassword::parse("x".repeat(129)).unwrap_err(), PasswordError::TooLong);
        assert!(NewPassword::parse("correct horse battery staple".into()).is_ok());
        assert_eq!(
            format!("{:?}", NewPassword::parse("a secret phrase".into()).unwrap()),
            "NewPassword(***)"
        );
    }

    #[tokio::test]
    async fn hashes_verify_and_unknown_accounts_never_match() {
        let hasher = PasswordHasher::new(1024).await.unwrap();
        let hash = hasher.hash(NewPassword::parse("correct horse battery".into()).unwrap()).await.unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=1024,t=2,p=1$"), "{hash}");
        assert!(hasher.verify("correct horse battery".into(), Some(hash.clone())).await.unwrap());
        assert!(!hasher.verify("wrong horse battery".into(), Some(hash)).await.unwrap());
        assert!(!hasher.verify("anything at all".into(), None).await.unwrap());
    }
}
