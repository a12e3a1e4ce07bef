//! `Idempotency-Key` for POSTs that move money or create things.
//!
//! The first request with a key claims it (with a hash of its method, path and body),
//! runs, and stores its response; the same key with the same request replays that
//! response with `Idempotent-Replayed: true`; with a different request it is 409
//! `idempotency_key_reused`; while the first still runs it is 409
//! `idempotency_key_in_use`. Refusals (4xx) are stored too, so a retry cannot later
//! succeed under the same key; a failure of ours (5xx) releases the key, and the retry
//! runs again — safely, because the ledger ids it writes derive from the key.
//!
//! Two ways to hold a key while the request runs:
//! - [`once`] claims it in the database (a row with a lease) and stores the answer after
//!   the work: two write transactions of their own. For requests whose work writes outside
//!   the ledger batches (wallet creation, expenses, schedules).
//! - [`once_batched`], for requests whose every write is a ledger batch's (P2P transfers,
//!   reversals, top-ups and withdrawals): the key is held in this node's memory
//!   ([`Leases`]), and the answer is written by the batch that decides it, in its
//!   transaction ([`store::KeyedResponse`]); a refusal decided before the ledger runs is
//!   remembered through the pipeline too. No write of its own on the request path. Across
//!   nodes the database's unique key decides: two nodes running one key at once write the
//!   same ledger ids (and payment ids), so the second finds the first's transfer
//!   (`exists`) and gives the same answer, and the first answer stays.

use std::future::Future;

use axum::{
    extract::FromRequestParts,
    http::{HeaderValue, StatusCode, header, request::Parts},
    response::{IntoResponse, Response},
};
use sha2::{Digest, Sha256};
use store::{Begin, IdempotencyKey, KeyedResponse, ResponseDraft, StoredResponse};
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

impl IdempotencyKeyHeader {
    /// The key carried by a request (its header, or its gRPC metadata), checked: 400
    /// `idempotency_key_required` without one, 400 `invalid_idempotency_key` for one
    /// that is not 1–255 visible ASCII characters.
    pub fn parse(value: Option<&[u8]>) -> Result<Self, ApiError> {
        let value = value.ok_or_else(|| {
            ApiError::rejected(
                StatusCode::BAD_REQUEST,
                "idempotency_key_required",
                "this request moves money or creates something: send an Idempotency-Key header",
            )
        })?;
        let key = std::str::from_utf8(value).ok().filter(|key| {
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

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKeyHeader {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        Self::parse(parts.headers.get(IDEMPOTENCY_KEY_HEADER).map(HeaderValue::as_bytes))
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

/// The idempotency keys held by the batched requests running on this node. Bounded by the
/// requests in flight (each holds one key while it runs).
#[derive(Debug, Default)]
pub struct Leases {
    held: std::sync::Mutex<std::collections::HashSet<(Uuid, String)>>,
}

/// A key held in [`Leases`] until dropped.
#[derive(Debug)]
struct Lease<'a> {
    leases: &'a Leases,
    owner_id: Uuid,
    key: String,
}

impl Leases {
    fn take(&self, owner_id: Uuid, key: &str) -> Option<Lease<'_>> {
        let fresh = self.held.lock().expect("not poisoned").insert((owner_id, key.to_owned()));
        fresh.then(|| Lease { leases: self, owner_id, key: key.to_owned() })
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        let entry = (self.owner_id, std::mem::take(&mut self.key));
        self.leases.held.lock().expect("not poisoned").remove(&entry);
    }
}

fn claim(owner_id: Uuid, key: &IdempotencyKeyHeader, route: &str, body: &[u8]) -> IdempotencyKey {
    let mut hash = Sha256::new();
    hash.update(route.as_bytes());
    hash.update([0]);
    hash.update(body);
    IdempotencyKey { owner_id, key: key.0.clone(), request_hash: hash.finalize().to_vec() }
}

/// What a stored key means for a request that finds it; `None` when it may run.
fn found(route: &str, begin: Begin) -> Option<Result<Answered, ApiError>> {
    match begin {
        Begin::Started => None,
        Begin::Replay { status, body } => {
            tracing::info!(route, status, "request replayed");
            Some(Ok(Answered { status, body, replayed: true }))
        }
        Begin::Mismatch => Some(Err(ApiError::rejected(
            StatusCode::CONFLICT,
            "idempotency_key_reused",
            "this Idempotency-Key was used with a different request",
        ))),
        Begin::InFlight => Some(Err(in_use())),
    }
}

fn in_use() -> ApiError {
    ApiError::rejected(
        StatusCode::CONFLICT,
        "idempotency_key_in_use",
        "a request with this Idempotency-Key is still running; retry later",
    )
}

/// The answer to remember for a refusal (4xx); `None` for a failure of ours.
pub fn refusal(error: &ApiError) -> Option<StoredResponse> {
    if !error.status().is_client_error() {
        return None;
    }
    let problem = error.problem();
    let body = serde_json::to_string(&problem).ok()?;
    Some(StoredResponse { status: problem.status, body })
}

/// The answer to remember for a success.
pub fn success(status: StatusCode, value: &impl serde::Serialize) -> StoredResponse {
    StoredResponse {
        status: status.as_u16(),
        body: serde_json::to_string(value).expect("API bodies serialise"),
    }
}

/// A keyed request's answer as remembered: the status and JSON body (a problem for a
/// refusal) of the REST answer, which both transports render — REST as it is, gRPC
/// decoded into its messages and statuses — so that a key answers alike however often
/// it is asked.
#[derive(Debug)]
pub struct Answered {
    pub status: u16,
    pub body: String,
    /// An earlier request with this key decided the answer.
    pub replayed: bool,
}

impl Answered {
    /// The answer as an HTTP response (`Idempotent-Replayed: true` on a replay).
    pub fn into_response(self) -> Response {
        let replayed = self.replayed;
        let mut response = stored(self.status, self.body);
        if replayed {
            response.headers_mut().insert(REPLAYED_HEADER, HeaderValue::from_static("true"));
        }
        response
    }
}

/// [`batched`], answered over HTTP.
pub async fn once_batched<F, Fut>(
    state: &AppState,
    owner_id: Uuid,
    key: &IdempotencyKeyHeader,
    route: &str,
    body: &[u8],
    work: F,
) -> Result<Response, ApiError>
where
    F: FnOnce(IdempotencyKey) -> Fut,
    Fut: Future<Output = Result<StoredResponse, ApiError>>,
{
    batched(state, owner_id, key, route, body, work).await.map(Answered::into_response)
}

/// Runs `work` at most once per (owner, key) like [`once`], for work that commits in one
/// ledger batch: `work` gets the key to hand to that batch, which writes the answer with
/// the money, and returns the answer the batch remembered — a success, or a refusal the
/// ledger decided. An error from `work` is a refusal decided before the batch (remembered
/// here, through the pipeline) or a failure of ours (not remembered). `route` and `body`
/// identify the request: its transport's name for the operation and its encoded bytes.
pub async fn batched<F, Fut>(
    state: &AppState,
    owner_id: Uuid,
    key: &IdempotencyKeyHeader,
    route: &str,
    body: &[u8],
    work: F,
) -> Result<Answered, ApiError>
where
    F: FnOnce(IdempotencyKey) -> Fut,
    Fut: Future<Output = Result<StoredResponse, ApiError>>,
{
    let claim = claim(owner_id, key, route, body);
    let Some(_lease) = state.leases.take(owner_id, &claim.key) else { return Err(in_use()) };
    let now = store::now_ns();
    if let Some(begin) = state.store.idempotency_lookup(&claim, now).await? {
        return found(route, begin).expect("a lookup finds no free key");
    }
    let outcome = work(claim.clone()).await;
    match outcome {
        Ok(response) => {
            tracing::info!(route, status = response.status, "request done");
            Ok(Answered { status: response.status, body: response.body, replayed: false })
        }
        Err(error) => {
            tracing::info!(route, status = error.status().as_u16(), code = error.code(), "request refused");
            // A refusal is remembered so that a retry cannot later succeed. A failure of
            // ours is not: the retry runs again.
            if let Some(response) = refusal(&error) {
                let record =
                    KeyedResponse { key: claim, created_at: now, draft: ResponseDraft::Known(response) };
                state.pipeline.submit(store::Command::RecordResponse(record)).await?;
            }
            Err(error)
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
    let claim = claim(owner_id, key, route, body);
    let store = &state.store;
    let lease_ns = u64::try_from(state.idempotency_lease.as_nanos()).unwrap_or(u64::MAX);
    let begin = store.idempotency_begin(&claim, store::now_ns(), lease_ns).await?;
    if let Some(answer) = found(route, begin) {
        return answer.map(Answered::into_response);
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
            store.idempotency_finish(owner_id, &claim.key, status.as_u16(), &body).await?;
            Ok(json_response(status, body))
        }
        Err(error) if error.status().is_client_error() => {
            let problem = error.problem();
            let body = serde_json::to_string(&problem).map_err(|error| ApiError::Internal(error.into()))?;
            store.idempotency_finish(owner_id, &claim.key, problem.status, &body).await?;
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

/// A stored answer as a response: a problem (with its content type) or JSON.
fn stored(status: u16, body: String) -> Response {
    if status >= 400 {
        match serde_json::from_str::<Problem>(&body) {
            Ok(problem) => problem.into_response(),
            Err(error) => {
                ApiError::Internal(anyhow::anyhow!("stored problem unreadable: {error}")).into_response()
            }
        }
    } else {
        json_response(StatusCode::from_u16(status).unwrap_or(StatusCode::OK), body)
    }
}
