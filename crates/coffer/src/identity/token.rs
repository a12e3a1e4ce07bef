//! Tokens: short-lived JWT access tokens (HS256 only) and opaque refresh tokens, and the
//! signing secret (configured, or generated once into `DATA_DIR/jwt-secret`).
//!
//! Access tokens are verified without touching the database; that is why they live only
//! fifteen minutes. Refresh tokens are random strings the server stores only as SHA-256
//! hashes; they rotate on every use (see `store::Store::rotate_refresh_token`).

use std::{
    path::Path,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::Role;
use crate::config::Secret;

/// How long an access token is valid, in seconds (15 minutes): short, because it cannot
/// be revoked before it expires.
pub const ACCESS_TOKEN_TTL_SECONDS: u64 = 15 * 60;
/// How long a refresh token family lives, in seconds (30 days), counted from login:
/// rotation hands the expiry on, it never extends it.
pub const REFRESH_TOKEN_TTL_SECONDS: u64 = 30 * 24 * 3600;
/// Random bytes in a refresh token: 256 bits, far beyond guessing (≥ 128 required).
const REFRESH_TOKEN_BYTES: usize = 32;
/// Clock skew tolerated between the node that issued a token and the one checking it.
const CLOCK_LEEWAY_SECONDS: u64 = 5;
/// `iss` of every access token.
pub const ISSUER: &str = "coffer";
/// `aud` of every access token: this API and nothing else.
pub const AUDIENCE: &str = "coffer-api";
/// The one signing algorithm accepted. Listing exactly one is what stops `alg=none` and
/// algorithm-confusion tokens.
const ALGORITHM: Algorithm = Algorithm::HS256;

/// The secret's file inside the data directory.
pub const JWT_SECRET_FILE: &str = "jwt-secret";
/// Shortest accepted secret, in bytes: HS256 wants a key at least as long as its hash.
pub const JWT_SECRET_BYTES_MIN: usize = 32;
/// Random bytes in a generated secret.
const GENERATED_SECRET_BYTES: usize = 32;

/// The claims of an access token.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    pub iss: String,
    pub aud: String,
    pub exp: u64,
    pub nbf: u64,
    pub iat: u64,
    /// The customer id.
    pub sub: Uuid,
    /// A unique id per token, for audit trails.
    pub jti: Uuid,
    pub role: Role,
}

/// Signs and verifies access tokens with one HS256 secret.
pub struct AccessTokens {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

impl std::fmt::Debug for AccessTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AccessTokens(***)")
    }
}

impl AccessTokens {
    pub fn new(secret: &Secret) -> Self {
        let mut validation = Validation::new(ALGORITHM);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "nbf", "iat", "iss", "aud", "sub"]);
        validation.validate_nbf = true;
        validation.leeway = CLOCK_LEEWAY_SECONDS;
        Self {
            encoding: EncodingKey::from_secret(secret.expose().as_bytes()),
            decoding: DecodingKey::from_secret(secret.expose().as_bytes()),
            validation,
        }
    }

    /// A fresh access token for `customer_id` with `role`, valid from `now`.
    pub fn issue(&self, customer_id: Uuid, role: Role, now: SystemTime) -> anyhow::Result<String> {
        let now = now.duration_since(UNIX_EPOCH)?.as_secs();
        let claims = Claims {
            iss: ISSUER.to_owned(),
            aud: AUDIENCE.to_owned(),
            exp: now + ACCESS_TOKEN_TTL_SECONDS,
            nbf: now,
            iat: now,
            sub: customer_id,
            jti: Uuid::now_v7(),
            role,
        };
        Ok(jsonwebtoken::encode(&Header::new(ALGORITHM), &claims, &self.encoding)?)
    }

    /// The claims of a valid token; `None` for anything else (bad signature, other
    /// algorithm, expired, not yet valid, wrong issuer or audience, malformed).
    pub fn verify(&self, token: &str) -> Option<Claims> {
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation).ok().map(|data| data.claims)
    }
}

/// A new refresh token: the string for the client and the hash to store.
pub fn new_refresh_token() -> (String, [u8; 32]) {
    let mut bytes = [0u8; REFRESH_TOKEN_BYTES];
    rand::rng().fill_bytes(&mut bytes);
    let token = URL_SAFE_NO_PAD.encode(bytes);
    let hash = hash_refresh_token(&token);
    (token, hash)
}

/// SHA-256 of a refresh token: what the store keeps and looks up. A fast hash is right
/// here (unlike for passwords): the token has 256 random bits, nothing to brute-force.
pub fn hash_refresh_token(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// The refresh token lifetime as a [`Duration`].
pub fn refresh_token_ttl() -> Duration {
    Duration::from_secs(REFRESH_TOKEN_TTL_SECONDS)
}

/// The configured secret, or the one stored in the data directory, or a freshly
/// generated and stored one. Every node of a deployment must share it: configure
/// `COFFER_JWT_SECRET` when there is more than one.
pub fn load_or_create_secret(data_dir: &Path, configured: Option<Secret>) -> anyhow::Result<Secret> {
    if let Some(secret) = configured {
        return Ok(secret);
    }
    let path = data_dir.join(JWT_SECRET_FILE);
    let (secret, _) = crate::support::secret_file(&path, JWT_SECRET_BYTES_MIN, || {
        let mut bytes = [0u8; GENERATED_SECRET_BYTES];
        rand::rng().fill_bytes(&mut bytes);
        URL_SAFE_NO_PAD.encode(bytes)
    })?;
    Ok(secret)
}

/// Parses `COFFER_JWT_SECRET`: at least [`JWT_SECRET_BYTES_MIN`] bytes.
pub fn parse_secret(value: &str) -> Result<Secret, String> {
    if value.len() < JWT_SECRET_BYTES_MIN {
        return Err(format!("must be at least {JWT_SECRET_BYTES_MIN} bytes"));
    }
    Ok(Secret::new(value.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(secret: &str) -> AccessTokens {
        AccessTokens::new(&Secret::new(secret.to_owned()))
    }

    #[test]
    fn issued_tokens_verify_with_their_claims() {
        let tokens = keys("an-hs256-secret-of-at-least-32-bytes");
        let id = Uuid::now_v7();
        let token = tokens.issue(id, Role::Admin, SystemTime::now()).unwrap();
        let claims = tokens.verify(&token).unwrap();
        assert_eq!(
            (claims.sub, claims.role, claims.iss.as_str(), claims.aud.as_str()),
            (id, Role::Admin, ISSUER, AUDIENCE)
        );
        assert_eq!(claims.exp - claims.iat, ACCESS_TOKEN_TTL_SECONDS);
        assert!(keys("another-hs256-secret-of-32-bytes-or-more").verify(&token).is_none());
    }

    #[test]
    fn expired_and_future_tokens_are_refused() {
        let tokens = keys("an-hs256-secret-of-at-least-32-bytes");
        let old = SystemTime::now() - Duration::from_secs(ACCESS_TOKEN_TTL_SECONDS + 60);
        assert!(tokens.verify(&tokens.issue(Uuid::now_v7(), Role::Customer, old).unwrap()).is_none());
        let future = SystemTime::now() + Duration::from_secs(60);
        assert!(tokens.verify(&tokens.issue(Uuid::now_v7(), Role::Customer, future).unwrap()).is_none());
    }

    #[test]
    fn refresh_tokens_are_random_and_hashed() {
        let (first, hash) = new_refresh_token();
        let (second, _) = new_refresh_token();
        assert_ne!(first, second);
        assert_eq!(first.len(), 43, "256 bits in unpadded base64url");
        assert_eq!(hash_refresh_token(&first), hash);
    }

    #[test]
    fn secret_is_generated_once() {
        let dir = tempfile::tempdir().unwrap();
        let first = load_or_create_secret(dir.path(), None).unwrap();
        let second = load_or_create_secret(dir.path(), None).unwrap();
        assert_eq!(first.expose(), second.expose());
        assert!(first.expose().len() >= JWT_SECRET_BYTES_MIN);
        assert!(parse_secret("too-short").is_err());
    }
}
