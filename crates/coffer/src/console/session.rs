//! Who is using the console, and proof that a form came from its own pages.
//!
//! A session is a refresh-token family started by signing in
//! ([`crate::identity::Identity::sign_in`]): its one token is the `coffer_session` cookie
//! (HttpOnly, SameSite=Strict, `Secure` over TLS, [`SESSION_LIFETIME`] at most), looked
//! up on every request, so ending it (sign-out, the session list, a password change)
//! takes effect at once. Signing in always starts a new family: a session id planted
//! before sign-in is never promoted.
//!
//! Every form carries a CSRF token in a hidden `csrf` field. Signed in, it is derived from
//! the session token ([`Signed::check`]); before sign-in (the sign-in and register forms)
//! it is derived from a random `coffer_form` cookie ([`Visitor`]). Any POST whose `Origin`
//! or `Sec-Fetch-Site` names another site is refused before that.

use std::time::Duration;

use axum::{
    extract::{FromRequest, FromRequestParts, Request},
    http::{HeaderMap, HeaderValue, Method, header, request::Parts},
};
use rand::RngCore as _;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::PageError;
use crate::{http::AppState, identity::Role};

/// The session cookie.
pub const SESSION_COOKIE: &str = "coffer_session";
/// The pre-sign-in form cookie.
const FORM_COOKIE: &str = "coffer_form";
/// How long a console session lives at most, whatever is done with it.
pub const SESSION_LIFETIME: Duration = Duration::from_secs(12 * 3600);

/// A signed-in customer (or admin), from a live session cookie. Without one, pages
/// redirect to sign-in.
#[derive(Clone, Debug)]
pub struct Signed {
    pub customer_id: Uuid,
    pub role: Role,
    /// The session (refresh-token family), so its own row in the session list is marked
    /// and a password change keeps it.
    pub family_id: Uuid,
    csrf: String,
}

impl Signed {
    /// The CSRF token the session's forms carry.
    pub fn csrf(&self) -> &str {
        &self.csrf
    }

    /// Refuses a form whose CSRF token is not this session's.
    pub fn check(&self, presented: Option<&str>) -> Result<(), PageError> {
        if presented.is_some_and(|token| same(token, &self.csrf)) { Ok(()) } else { Err(PageError::Forged) }
    }
}

impl FromRequestParts<AppState> for Signed {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, PageError> {
        let token = cookie(&parts.headers, SESSION_COOKIE).ok_or(PageError::SignIn)?;
        let session = state.identity.session(token).await.map_err(|error| PageError::Api(error.into()))?;
        let session = session.ok_or(PageError::SignIn)?;
        Ok(Self {
            customer_id: session.customer_id,
            role: session.role,
            family_id: session.family_id,
            csrf: csrf_of(token),
        })
    }
}

/// Someone before sign-in: the `coffer_form` cookie their forms' CSRF token derives from
/// (made on the first page that shows a form).
#[derive(Clone, Debug)]
pub struct Visitor {
    secret: String,
    fresh: bool,
}

impl Visitor {
    pub fn csrf(&self) -> String {
        csrf_of(&self.secret)
    }

    /// The `Set-Cookie` value a page must send when the cookie is new.
    pub fn set_cookie(&self, secure: bool) -> Option<HeaderValue> {
        self.fresh.then(|| set_cookie(FORM_COOKIE, &self.secret, Some(SESSION_LIFETIME), secure))
    }

    /// Refuses a form whose CSRF token does not match the cookie (or with no cookie).
    pub fn check(&self, presented: Option<&str>) -> Result<(), PageError> {
        let expected = csrf_of(&self.secret);
        if !self.fresh && presented.is_some_and(|token| same(token, &expected)) {
            Ok(())
        } else {
            Err(PageError::Forged)
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Visitor {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(match cookie(&parts.headers, FORM_COOKIE) {
            Some(secret) if secret.len() == 43 => Self { secret: secret.to_owned(), fresh: false },
            _ => Self { secret: random_secret(), fresh: true },
        })
    }
}

/// A submitted form (`application/x-www-form-urlencoded`): its `csrf` field apart from the
/// rest. Refused as forged when the request says it comes from another site; a body that
/// does not parse is a 400 page.
#[derive(Debug)]
pub struct Posted<T> {
    pub csrf: Option<String>,
    pub form: T,
}

#[derive(serde::Deserialize)]
struct WithCsrf<T> {
    csrf: Option<String>,
    #[serde(flatten)]
    form: T,
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Posted<T> {
    type Rejection = PageError;

    async fn from_request(request: Request, state: &S) -> Result<Self, PageError> {
        if request.method() == Method::POST && cross_site(request.headers()) {
            return Err(PageError::Forged);
        }
        let axum::Form(WithCsrf { csrf, form }) = axum::Form::<WithCsrf<T>>::from_request(request, state)
            .await
            .map_err(|rejection| PageError::BadForm(rejection.body_text()))?;
        Ok(Self { csrf, form })
    }
}

/// Whether the browser says the request comes from another site. Browsers that send
/// `Sec-Fetch-Site` are believed (`same-origin`, or `none` for a typed address, are
/// this site); without it, an `Origin` whose host is not this one (or `null`) is
/// another site's.
pub fn cross_site(headers: &HeaderMap) -> bool {
    if let Some(site) = headers.get("sec-fetch-site") {
        return !matches!(site.to_str(), Ok("same-origin" | "none"));
    }
    let host = headers.get(header::HOST).and_then(|value| value.to_str().ok());
    match headers.get(header::ORIGIN).map(|value| value.to_str().ok()) {
        None => false,
        Some(origin) => {
            let origin_host = origin.and_then(|origin| origin.split_once("://")).map(|(_, rest)| rest);
            origin_host.is_none() || origin_host != host
        }
    }
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find_map(|(key, value)| (key == name).then_some(value))
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Strict, path `/`, `Secure` when served over
/// TLS; `max_age` `None` removes the cookie.
pub fn set_cookie(name: &str, value: &str, max_age: Option<Duration>, secure: bool) -> HeaderValue {
    let age = max_age.map_or(0, |age| age.as_secs());
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::try_from(format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={age}{secure}"))
        .expect("cookie values are base64url")
}

/// The session cookie that ends the session in the browser.
pub fn clear_session(secure: bool) -> HeaderValue {
    set_cookie(SESSION_COOKIE, "", None, secure)
}

/// 32 random bytes, base64url without padding (43 characters).
fn random_secret() -> String {
    use base64::Engine as _;
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The CSRF token bound to a cookie secret: a hash, so the page never carries the secret.
fn csrf_of(secret: &str) -> String {
    let digest =
        Sha256::new().chain_update(b"coffer console csrf\0").chain_update(secret.as_bytes()).finalize();
    hex::encode(&digest[..16])
}

/// Compares in time independent of where the strings differ.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn cookies_are_found_by_name() {
        let map = headers(&[("cookie", "a=1; coffer_session=abc"), ("cookie", "b=2")]);
        assert_eq!(cookie(&map, SESSION_COOKIE), Some("abc"));
        assert_eq!(cookie(&map, "b"), Some("2"));
        assert_eq!(cookie(&map, "c"), None);
    }

    #[test]
    fn other_sites_are_told_apart() {
        assert!(!cross_site(&headers(&[("host", "127.0.0.1:8080")])));
        assert!(!cross_site(&headers(&[("host", "127.0.0.1:8080"), ("origin", "http://127.0.0.1:8080")])));
        assert!(cross_site(&headers(&[("host", "127.0.0.1:8080"), ("origin", "http://evil.example")])));
        assert!(cross_site(&headers(&[("host", "127.0.0.1:8080"), ("origin", "null")])));
        assert!(cross_site(&headers(&[("host", "a"), ("sec-fetch-site", "cross-site")])));
        assert!(cross_site(&headers(&[("host", "a"), ("sec-fetch-site", "same-site")])));
        assert!(!cross_site(&headers(&[("host", "a"), ("sec-fetch-site", "same-origin")])));
        assert!(
            !cross_site(&headers(&[("host", "a"), ("origin", "null"), ("sec-fetch-site", "same-origin")])),
            "a browser's own word wins over an opaque origin"
        );
    }

    #[test]
    fn csrf_tokens_bind_to_their_secret() {
        let token = csrf_of("secret-one");
        assert_eq!(token.len(), 32);
        assert_ne!(token, csrf_of("secret-two"));
        assert!(same(&token, &csrf_of("secret-one")));
        assert!(!same(&token, &token[1..]));
    }

    #[test]
    fn cookies_are_strict_and_http_only() {
        let value = set_cookie(SESSION_COOKIE, "t", Some(SESSION_LIFETIME), true);
        assert_eq!(value, "coffer_session=t; Path=/; HttpOnly; SameSite=Strict; Max-Age=43200; Secure");
        assert_eq!(clear_session(false), "coffer_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
    }
}
