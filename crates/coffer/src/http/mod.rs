//! The HTTP layer: one router per resource, merged here, and the middleware every route
//! shares (request ids, tracing, problem+json rendering, timeouts, body limits, panics).

pub mod caller;
pub mod dates;
pub mod error;
pub mod export;
pub mod extract;
pub mod idempotency;
pub mod metrics;
pub mod openapi;
pub mod paging;
pub mod routes;
pub mod validate;

use std::{sync::Arc, time::Duration};

use axum::{
    Router,
    extract::{DefaultBodyLimit, Request, State},
    http::HeaderName,
    middleware::{self, Next},
    response::{IntoResponse, Response},
};
use store::Store;
use tokio::sync::Semaphore;
use tower::ServiceBuilder;
use tower_http::{
    catch_panic::CatchPanicLayer,
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer},
    trace::TraceLayer,
};

use crate::{commit::CommitPipeline, identity::Identity, payments::Payments, wallets::Wallets};
use error::ApiError;
use routes::{
    analytics, auth, banks, credit, customers, finance, fx, health, insights, ledger, monitors,
    notifications, payments, reconciliations, reports, schedules, stream, verify, wallets,
};

/// The header carrying each request's id (set by the client, or generated).
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// Bytes a request body may carry unless its route says otherwise: ample for any single
/// object, small enough that a flood of large bodies cannot exhaust memory.
pub const BODY_BYTES_MAX: usize = 64 * 1024;

/// What every handler can reach. Cheap to clone (axum clones it per request).
#[derive(Clone, Debug)]
pub struct AppState {
    pub store: Store,
    pub pipeline: CommitPipeline,
    /// The admin API key and token secrets in force.
    pub keys: Arc<crate::identity::keys::Keys>,
    pub wallets: Arc<Wallets>,
    pub payments: Arc<Payments>,
    /// Settlement files matched against the ledger.
    pub reconciliations: Arc<crate::payments::Reconciliations>,
    /// Credit reports from the bureau, with consent.
    pub credit: Arc<crate::credit::Credit>,
    /// Recurring payments and spending alerts from a customer's expenses.
    pub insights: crate::insights::Insights,
    /// Currency conversion: rates, quotes, execution.
    pub fx: Arc<crate::fx::Fx>,
    /// The built-in provider, for its settlement files.
    pub mock_provider: Arc<crate::payments::MockProvider>,
    /// Per-customer limits on money-moving requests and open streams (shared through
    /// Redis when one is configured).
    pub limits: Arc<crate::limits::Limits>,
    /// Customers, passwords and tokens; also what the auth extractors verify with.
    pub identity: Arc<Identity>,
    /// The WebSocket stream's bus and heartbeat.
    pub stream: Arc<stream::StreamSettings>,
    /// The broker, when one is configured (readiness checks it).
    pub nats: Option<crate::events::nats::Nats>,
    /// The inbox and webhook endpoints.
    pub endpoints: Arc<crate::notifications::endpoints::Endpoints>,
    /// Categories, expenses and rules.
    pub finance: Arc<crate::finance::Finance>,
    /// Scheduled and recurring payments.
    pub schedules: Arc<crate::finance::schedules::Schedules>,
    pub analytics: Arc<crate::analytics::Analytics>,
    /// Bank connections through the aggregator, and "sync now".
    pub banks: Arc<crate::finance::banks::sync::Banks>,
    /// Runs of the books' check.
    pub verifier: crate::verify::Verifier,
    /// How long a running request holds its `Idempotency-Key`
    /// ([`idempotency::lease_for`] the request timeout).
    pub idempotency_lease: Duration,
    /// Keys of the batched requests running on this node ([`idempotency::once_batched`]).
    pub leases: Arc<idempotency::Leases>,
    /// Whether cookies are marked `Secure` (REST is served over TLS).
    pub secure_cookies: bool,
    /// Proxies whose `X-Forwarded-For` names the client (`COFFER_TRUSTED_PROXIES`).
    pub trusted_proxies: Arc<[ipnet::IpNet]>,
}

/// Limits that apply to every request.
#[derive(Clone, Copy, Debug)]
pub struct RequestLimits {
    /// Longest a request may take.
    pub timeout: Duration,
    /// Requests handled at once at most; more get 503 at once rather than queue.
    pub in_flight_max: usize,
}

/// The whole API.
pub fn router(state: AppState, limits: RequestLimits) -> Router {
    metrics::handle();
    let in_flight = Arc::new(Semaphore::new(limits.in_flight_max));
    let request_id = HeaderName::from_static(REQUEST_ID_HEADER);
    Router::new()
        .merge(ledger::router())
        .merge(auth::router())
        .merge(customers::router())
        .merge(wallets::router())
        .merge(payments::router())
        .merge(stream::router())
        .merge(notifications::router())
        .merge(finance::router())
        .merge(reports::router())
        .merge(schedules::router())
        .merge(analytics::router())
        .merge(verify::router())
        .merge(reconciliations::router())
        .merge(fx::router())
        .merge(insights::router())
        .merge(credit::router())
        .merge(monitors::router())
        .merge(banks::router())
        .merge(health::router())
        .merge(metrics::router())
        .merge(crate::console::router())
        .route_layer(middleware::from_fn(metrics::record))
        .merge(openapi::router())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(
            // Outermost first: the request id exists before anything logs or fails.
            ServiceBuilder::new()
                .layer(SetRequestIdLayer::new(request_id.clone(), MakeRequestUuid))
                .layer(TraceLayer::new_for_http().make_span_with(|request: &Request| {
                    let id = request.headers().get(REQUEST_ID_HEADER).and_then(|v| v.to_str().ok()).unwrap_or("");
                    let span = tracing::info_span!("request", method = %request.method(), path = %request.uri().path(),
                        request_id = %id, trace_id = tracing::field::Empty);
                    // With an OTLP exporter, every log line of the request names its trace.
                    if let Some(trace_id) = crate::telemetry::trace_id(&span) {
                        span.record("trace_id", trace_id);
                    }
                    span
                }))
                .layer(PropagateRequestIdLayer::new(request_id))
                .layer(middleware::from_fn(error::render_problems))
                .layer(middleware::from_fn_with_state(in_flight, limit_in_flight))
                .layer(middleware::from_fn_with_state(limits.timeout, timeout))
                .layer(CatchPanicLayer::custom(|_panic: Box<dyn std::any::Any + Send>| {
                    ApiError::Internal(anyhow::anyhow!("handler panicked")).into_response()
                }))
                .layer(DefaultBodyLimit::max(BODY_BYTES_MAX)),
        )
        .with_state(state)
}

/// What a process without the `api` role serves: probes and metrics (recorded from the
/// start, not from the first scrape).
pub fn ops_router(state: AppState) -> Router {
    metrics::handle();
    Router::new().merge(health::router()).merge(metrics::router()).fallback(not_found).with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::NotFound { code: "route_not_found", detail: "no such route".into() }
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

/// Sheds load past the in-flight limit: a fast 503 with `Retry-After` is better for a
/// client (and for the requests already admitted) than an ever longer wait.
async fn limit_in_flight(State(permits): State<Arc<Semaphore>>, request: Request, next: Next) -> Response {
    match permits.try_acquire() {
        Ok(_permit) => next.run(request).await,
        Err(_) => ApiError::Overloaded.into_response(),
    }
}

/// Bounds every request's time. A write cut off here still commits (the pipeline runs
/// on its own); the client retries with the same ids and gets `exists`.
async fn timeout(State(limit): State<Duration>, request: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::Timeout.into_response(),
    }
}
