//! Tokens: short-lived JWT access tokens (HS256 only) and opaque refresh tokens. The
//! signing secrets come from `identity::keys`.
//!
//! Access tokens are verified without touching the database; that is why they live only
//! fifteen minutes. Refresh tokens are random strings the server stores only as SHA-256
//! hashes; they rotate on every use (see `store::Store::rotate_refresh_token`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

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
pub const CLOCK_LEEWAY_SECONDS: u64 = 5;
/// `iss` of every access token.
pub const ISSUER: &str = "coffer";
/// `aud` of every access token: this API and nothing else.
pub const AUDIENCE: &str = "coffer-api";
/// The one signing algorithm accepted. Listing exactly one is what stops `alg=none` and
/// algorithm-confusion tokens.
const ALGORITHM: Algorithm = Algorithm::HS256;

/// Shortest accepted secret, in bytes: HS256 wants a key at least as long as its hash.
pub const JWT_SECRET_BYTES_MIN: usize = 32;

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

/// Signs access tokens with the current HS256 secret and verifies them with it or, until
/// its time is up, with the secret it replaced (`keys`): the header's `kid` names which.
pub struct AccessTokens {
    current: SigningKey,
    /// The replaced secret and when it stops being accepted (unix seconds; `None`: while
    /// it is configured).
    previous: Option<(SigningKey, Option<u64>)>,
    validation: Validation,
}

/// One secret as `jsonwebtoken` keys, with its id.
struct SigningKey {
    kid: String,
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl SigningKey {
    fn new(secret: &Secret) -> Self {
        Self {
            kid: key_id(secret),
            encoding: EncodingKey::from_secret(secret.expose().as_bytes()),
            decoding: DecodingKey::from_secret(secret.expose().as_bytes()),
        }
    }
}

/// A secret's `kid`: the first 8 bytes of its SHA-256, in hex. It names the secret
/// without revealing anything usable about it.
pub fn key_id(secret: &Secret) -> String {
    Sha256::digest(secret.expose().as_bytes())[..8].iter().map(|byte| format!("{byte:02x}")).collect()
}

impl std::fmt::Debug for AccessTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AccessTokens(***)")
    }
}

impl AccessTokens {
    /// Signs with `current`; also verifies with `previous` until its end (unix seconds).
    pub fn new(current: &Secret, previous: Option<(&Secret, Option<u64>)>) -> Self {
        let mut validation = Validation::new(ALGORITHM);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "nbf", "iat", "iss", "aud", "sub"]);
        validation.validate_nbf = true;
        validation.leeway = CLOCK_LEEWAY_SECONDS;
        Self {
            current: SigningKey::new(current),
            previous: previous.map(|(secret, until)| (SigningKey::new(secret), until)),
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
        let mut header = Header::new(ALGORITHM);
        header.kid = Some(self.current.kid.clone());
        Ok(jsonwebtoken::encode(&header, &claims, &self.current.encoding)?)
    }

    /// The claims of a valid token; `None` for anything else (bad signature, other
    /// algorithm, a retired secret past its end, expired, not yet valid, living longer
    /// than [`ACCESS_TOKEN_TTL_SECONDS`], wrong issuer or audience, malformed). A token
    /// without `kid` (issued before tokens carried one) is checked with the current secret.
    pub fn verify(&self, token: &str, now: SystemTime) -> Option<Claims> {
        let header = jsonwebtoken::decode_header(token).ok()?;
        let key = match (header.kid, &self.previous) {
            (None, _) => &self.current,
            (Some(kid), _) if kid == self.current.kid => &self.current,
            (Some(kid), Some((previous, until))) if kid == previous.kid => {
                let now = now.duration_since(UNIX_EPOCH).ok()?.as_secs();
                if until.is_some_and(|until| now >= until) {
                    return None;
                }
                previous
            }
            _ => return None,
        };
        let claims = jsonwebtoken::decode::<Claims>(token, &key.decoding, &self.validation).ok()?.claims;
        // A token signed with a leaked secret could claim any lifetime; ours live 15 minutes.
        (claims.exp.saturating_sub(claims.iat) <= ACCESS_TOKEN_TTL_SECONDS).then_some(claims)
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

    const SECRET: &str = "an-hs256-secret-of-at-least-32-bytes";
    const OTHER: &str = "another-hs256-secret-of-32-bytes-or-more";

    fn keys(secret: &str) -> AccessTokens {
        AccessTokens::new(&Secret::new(secret.to_owned()), None)
    }

    #[test]
    fn issued_tokens_verify_with_their_claims() {
        let tokens = keys(SECRET);
        let id = Uuid::now_v7();
        let token = tokens.issue(id, Role::Admin, SystemTime::now()).unwrap();
        let claims = tokens.verify(&token, SystemTime::now()).unwrap();
        assert_eq!(
            (claims.sub, claims.role, claims.iss.as_str(), claims.aud.as_str()),
            (id, Role::Admin, ISSUER, AUDIENCE)
        );
        assert_eq!(claims.exp - claims.iat, ACCESS_TOKEN_TTL_SECONDS);
        assert!(keys(OTHER).verify(&token, SystemTime::now()).is_none());
    }

    #[test]
    fn expired_and_future_tokens_are_refused() {
        let tokens = keys(SECRET);
        let old = SystemTime::now() - Duration::from_secs(ACCESS_TOKEN_TTL_SECONDS + 60);
        let now = SystemTime::now();
        assert!(tokens.verify(&tokens.issue(Uuid::now_v7(), Role::Customer, old).unwrap(), now).is_none());
        let future = SystemTime::now() + Duration::from_secs(60);
        assert!(tokens.verify(&tokens.issue(Uuid::now_v7(), Role::Customer, future).unwrap(), now).is_none());
    }

    #[test]
    fn the_replaced_secret_verifies_until_its_end_and_never_signs() {
        let (old, new) = (Secret::new(SECRET.to_owned()), Secret::new(OTHER.to_owned()));
        let now = SystemTime::now();
        let until = now.duration_since(UNIX_EPOCH).unwrap().as_secs() + 60;
        let signed_before = AccessTokens::new(&old, None).issue(Uuid::now_v7(), Role::Customer, now).unwrap();
        let rotated = AccessTokens::new(&new, Some((&old, Some(until))));
        assert!(rotated.verify(&signed_before, now).is_some(), "honoured until it expires");
        assert!(rotated.verify(&signed_before, now + Duration::from_secs(61)).is_none(), "not past the end");
        let signed_after = rotated.issue(Uuid::now_v7(), Role::Customer, now).unwrap();
        assert_eq!(jsonwebtoken::decode_header(&signed_after).unwrap().kid, Some(key_id(&new)));
        assert!(keys(OTHER).verify(&signed_after, now).is_some());
        assert!(keys(SECRET).verify(&signed_after, now).is_none(), "the old secret no longer signs");
        let unrelated =
            keys("a-third-hs256-secret-of-32-bytes-and-more").issue(Uuid::now_v7(), Role::Admin, now);
        assert!(rotated.verify(&unrelated.unwrap(), now).is_none(), "an unknown kid is refused");
    }

    #[test]
    fn tokens_claiming_a_longer_life_are_refused() {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
        let claims = Claims {
            iss: ISSUER.to_owned(),
            aud: AUDIENCE.to_owned(),
            exp: now + 24 * 3600,
            nbf: now,
            iat: now,
            sub: Uuid::now_v7(),
            jti: Uuid::now_v7(),
            role: Role::Admin,
        };
        let key = EncodingKey::from_secret(SECRET.as_bytes());
        let token = jsonwebtoken::encode(&Header::new(ALGORITHM), &claims, &key).unwrap();
        assert!(keys(SECRET).verify(&token, SystemTime::now()).is_none());
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
    fn short_secrets_are_refused() {
        assert!(parse_secret("too-short").is_err());
        assert!(parse_secret(SECRET).is_ok());
    }
}
