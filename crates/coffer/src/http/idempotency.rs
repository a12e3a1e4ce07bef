//! `Idempotency-Key` for POSTs that move money or create things.
//!
//! The first request with a key claims it (with a hash of its method, path and body),
//! runs, and stores its response; the same key with the same request replays that
//! response with `Idempotent-Replayed: true`; with a different request it is 409
//! `idempotency_key_reused`; while the first still runs it is 409
//! `idempotency_key_in_use`. Refusals (4xx) are stored too, so a retry cannot later
//! succeed under the same key; a failure of ours (5xx) releases the key, and the retry
//! runs again — safely, because the ledger ids it writes derive from the key.

use std::future::Future;

use axum::{
    extract::FromRequestParts,
    http::{HeaderValue, StatusCode, header, request::Parts},
    response::{IntoResponse, Response},
};
use sha2::{Digest, Sha256};
use store::{Begin, IdempotencyKey};
use uuid::Uuid;

use super::{
    AppState,
    error::{ApiError, Problem},
};

/// The request header naming the key.
pub const IDEMPOTENCY_KEY_HEADER: &str = "idempotency-key";

/// The same header as the API documentation spells it.
pub const IDEMPOTENCY_KEY_HEADER_NAME: &str = "Idempotency-Key";

/// The response header on replays.
pub const REPLAYED_HEADER: &str = "idempotent-replayed";

/// Longest key accepted: room for a UUID or a client's own scheme, no more.
pub const KEY_LEN_MAX: usize = 255;

/// How much longer than the request timeout a running request holds its key: the lease
/// must outlast any request (so a slow request is never overtaken by its own retry), and
/// the margin covers the time between claiming the key and the timeout starting to count.
/// A request that died (a crash, a `kill -9`) frees its key after the lease.
pub const LEASE_MARGIN_MS: u64 = 1_000;

/// The lease for a server whose requests time out after `request_timeout`.
pub fn lease_for(request_timeout: std::time::Duration) -> std::time::Duration {
    request_timeout + std::time::Duration::from_millis(LEASE_MARGIN_MS)
}

/// The request's `Idempotency-Key`: required, 1–255 visible ASCII characters.
#[derive(Clone, Debug)]
pub struct IdempotencyKeyHeader(pub String);

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKeyHeader {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let value = parts.headers.get(IDEMPOTENCY_KEY_HEADER).ok_or_else(|| {
            ApiError::rejected(
                StatusCode::BAD_REQUEST,
                "idempotency_key_required",
                "this request moves money or creates something: send an Idempotency-Key header",
            )
        })?;
        let key = value.to_str().ok().filter(|key| {
            (1..=KEY_LEN_MAX).contains(&key.len()) && key.bytes().all(|byte| byte.is_ascii_graphic())
        });
        match key {
            Some(key) => Ok(Self(key.to_owned())),
            None => Err(ApiError::rejected(
                StatusCode::BAD_REQUEST,
                "invalid_idempotency_key",
                format!("Idempotency-Key must be 1 to {KEY_LEN_MAX} visible ASCII characters"),
            )),
        }
    }
}

/// On routes where the key is optional (creating things that move no money at once): no
/// header is None, a malformed one is still refused.
impl<S: Send + Sync> axum::extract::OptionalFromRequestParts<S> for IdempotencyKeyHeader {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Option<Self>, ApiError> {
        if parts.headers.contains_key(IDEMPOTENCY_KEY_HEADER) {
            <Self as FromRequestParts<S>>::from_request_parts(parts, state).await.map(Some)
        } else {
            Ok(None)
        }
    }
}

fn unavailable(error: store::StoreError) -> ApiError {
    ApiError::Unavailable(anyhow::Error::new(error))
}

/// [`once`] when the request has a key; otherwise runs `work` (a retry without a key may
/// create a second object: the API docs say to send one).
pub async fn once_if_keyed<F, Fut>(
    state: &AppState,
    owner_id: Uuid,
    key: Option<&IdempotencyKeyHeader>,
    route: &str,
    body: &[u8],
    work: F,
) -> Result<Response, ApiError>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<(StatusCode, serde_json::Value), ApiError>>,
{
    match key {
        Some(key) => once(state, owner_id, key, route, body, work).await,
        None => {
            let (status, value) = work().await?;
            Ok((status, axum::Json(value)).into_response())
        }
    }
}

/// Runs `work` at most once per (owner, key), replaying its stored response otherwise.
/// `route` and `body` identify the request (a different one under the same key is
/// refused).
pub async fn once<F, Fut>(
    state: &AppState,
    owner_id: Uuid,
    key: &IdempotencyKeyHeader,
    route: &str,
    body: &[u8],
    work: F,
) -> Result<Response, ApiError>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<(StatusCode, serde_json::Value), ApiError>>,
{
    let mut hash = Sha256::new();
    hash.update(route.as_bytes());
    hash.update([0]);
    hash.update(body);
    let claim = IdempotencyKey { owner_id, key: key.0.clone(), request_hash: hash.finalize().to_vec() };
    let store = &state.store;
    let lease_ns = u64::try_from(state.idempotency_lease.as_nanos()).unwrap_or(u64::MAX);
    match store.idempotency_begin(&claim, store::now_ns(), lease_ns).await.map_err(unavailable)? {
        Begin::Started => {}
        Begin::Replay { status, body } => {
            tracing::info!(route, status, "request replayed");
            return Ok(replay(status, &body));
        }
        Begin::Mismatch => {
            return Err(ApiError::rejected(
                StatusCode::CONFLICT,
                "idempotency_key_reused",
                "this Idempotency-Key was used with a different request",
            ));
        }
        Begin::InFlight => {
            return Err(ApiError::rejected(
                StatusCode::CONFLICT,
                "idempotency_key_in_use",
                "a request with this Idempotency-Key is still running; retry later",
            ));
        }
    }
    let outcome = work().await;
    // Every money-moving request leaves one line with its outcome (inside the request's
    // span, so with its request id); bodies are never logged: they may hold tokens.
    match &outcome {
        Ok((status, _)) => tracing::info!(route, status = status.as_u16(), "request done"),
        Err(error) => {
            tracing::info!(route, status = error.status().as_u16(), code = error.code(), "request refused")
        }
    }
    match outcome {
        Ok((status, value)) => {
            let body = serde_json::to_string(&value).map_err(|error| ApiError::Internal(error.into()))?;
            store
                .idempotency_finish(owner_id, &claim.key, status.as_u16(), &body)
                .await
                .map_err(unavailable)?;
            Ok(json_response(status, body))
        }
        Err(error) if error.status().is_client_error() => {
            let problem = error.problem();
            let body = serde_json::to_string(&problem).map_err(|error| ApiError::Internal(error.into()))?;
            store
                .idempotency_finish(owner_id, &claim.key, problem.status, &body)
                .await
                .map_err(unavailable)?;
            Err(error)
        }
        Err(error) => {
            // Nothing is known to have happened; let a retry run again.
            if let Err(release) = store.idempotency_release(owner_id, &claim.key).await {
                tracing::warn!(error = %release, "could not release an idempotency key; it frees itself after its lease");
            }
            Err(error)
        }
    }
}

fn json_response(status: StatusCode, body: String) -> Response {
    let mut response = (status, body).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

fn replay(status: u16, body: &str) -> Response {
    let mut response = if status >= 400 {
        match serde_json::from_str::<Problem>(body) {
            Ok(problem) => problem.into_response(),
            Err(error) => {
                ApiError::Internal(anyhow::anyhow!("stored problem unreadable: {error}")).into_response()
            }
        }
    } else {
        json_response(StatusCode::from_u16(status).unwrap_or(StatusCode::OK), body.to_owned())
    };
    response.headers_mut().insert(REPLAYED_HEADER, HeaderValue::from_static("true"));
    response
}
