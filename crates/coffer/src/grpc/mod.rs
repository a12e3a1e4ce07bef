//! gRPC beside REST: `coffer.v1.LedgerService` and `coffer.v1.WalletService` (see
//! `proto/coffer/v1/` and docs/grpc.md), the standard `grpc.health.v1.Health` and server
//! reflection v1, on their own listener (`COFFER_GRPC_LISTEN`).
//!
//! This layer only maps: protobuf ⇄ the shared operations' types, and [`ApiError`] ⇄
//! gRPC status. The rules, the commit pipeline and the store are the ones REST uses
//! ([`crate::ledger_api`], [`crate::wallet_api`]), so both transports accept, refuse and
//! answer alike. Errors carry `google.rpc` details: an `ErrorInfo` whose reason is the
//! REST problem `code` (domain `coffer`) and, for invalid fields, a `BadRequest` with
//! the REST field paths. Every call goes through [`observe`] first: request id, span,
//! deadline, metrics.

pub mod ledger;
pub mod observe;
pub mod wallet;

use std::{collections::HashMap, future::Future, time::Duration};

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::{Code, Status, metadata::MetadataMap};
use tonic_health::{ServingStatus, server::HealthReporter};
use tonic_types::{ErrorDetails, StatusExt};
use uuid::Uuid;

use crate::http::{
    AppState,
    caller::bearer_credential,
    error::{ApiError, FieldError, Problem},
    idempotency::{IDEMPOTENCY_KEY_HEADER, IdempotencyKeyHeader},
};

/// The generated messages, server and client of `proto/coffer/v1/*.proto`.
pub mod proto {
    #![allow(missing_docs, missing_debug_implementations, clippy::all)]
    tonic::include_proto!("coffer.v1");
}

/// The encoded descriptor set of Coffer's proto files, served by reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/coffer_descriptor.bin"));

/// The largest message a client may send, in bytes: the same cap as a REST ledger batch
/// (a full batch of 8,190 transfers encodes to well under 1 MB of protobuf, so this
/// leaves room and still bounds the memory one request can take). Larger: RESOURCE_EXHAUSTED.
pub const MESSAGE_BYTES_MAX: usize = crate::http::routes::ledger::LEDGER_BODY_BYTES_MAX;

/// The largest message a `WalletService` client may send: REST's cap on a request body
/// (a wallet request is a few hundred bytes).
pub const WALLET_MESSAGE_BYTES_MAX: usize = crate::http::BODY_BYTES_MAX;

/// Concurrent streams (calls) per HTTP/2 connection: enough for a client multiplexing
/// many requests on one connection, few enough that one connection cannot take over the
/// commit queue.
pub const STREAMS_PER_CONNECTION_MAX: u32 = 256;

/// HTTP/2 pings on idle connections, to find dead peers (and keep NATs open).
pub const KEEPALIVE_INTERVAL_S: u64 = 30;

/// How long a ping may go unanswered before the connection is closed.
pub const KEEPALIVE_TIMEOUT_S: u64 = 10;

/// Between readiness checks of the database behind the health service.
const HEALTH_CHECK_INTERVAL_S: u64 = 5;

/// The names the health service answers for: the server as a whole and each service.
const HEALTH_SERVICES: [&str; 3] = ["", "coffer.v1.LedgerService", "coffer.v1.WalletService"];

/// The domain of every `ErrorInfo` Coffer sends.
pub const ERROR_DOMAIN: &str = "coffer";

/// The gRPC status for an error of the shared rules: the code that matches its HTTP
/// status, with `ErrorInfo` (reason = the REST problem code) and, for validation
/// failures, a `BadRequest` listing the fields.
pub fn status(error: ApiError) -> Status {
    status_with(error, HashMap::new())
}

/// [`status`], with `metadata` added to the `ErrorInfo` (say, which batch of a stream).
pub fn status_with(error: ApiError, metadata: HashMap<String, String>) -> Status {
    match &error {
        ApiError::Internal(cause) => tracing::error!(error = ?cause, "internal error"),
        ApiError::Unavailable(cause) => tracing::warn!(error = ?cause, "database unavailable"),
        _ => {}
    }
    let fields = match &error {
        ApiError::Validation { errors, .. } => errors.as_slice(),
        _ => &[],
    };
    rich_status(error.status().as_u16(), error.code(), &error.to_string(), fields, metadata)
}

/// The status of a refusal remembered as a REST problem (an idempotency key's answer).
pub fn problem_status(problem: &Problem) -> Status {
    rich_status(problem.status, &problem.code, &problem.detail, &problem.errors, HashMap::new())
}

/// The gRPC code of a REST answer: its HTTP status, and the problem `code` where one
/// status covers several (422 is INVALID_ARGUMENT for invalid fields, but
/// FAILED_PRECONDITION for a refusal such as `insufficient_funds`; 503 `timeout` is
/// DEADLINE_EXCEEDED).
fn code_for(http_status: u16, reason: &str) -> Code {
    match (http_status, reason) {
        (400 | 415, _) | (422, "validation_failed") => Code::InvalidArgument,
        (401, _) => Code::Unauthenticated,
        (403, _) => Code::PermissionDenied,
        (404, _) => Code::NotFound,
        (405, _) => Code::Unimplemented,
        (409, _) => Code::Aborted,
        (413 | 429, _) => Code::ResourceExhausted,
        (503, "timeout") => Code::DeadlineExceeded,
        (503, _) => Code::Unavailable,
        (400..500, _) => Code::FailedPrecondition,
        _ => Code::Internal,
    }
}

fn rich_status(
    http_status: u16,
    reason: &str,
    message: &str,
    fields: &[FieldError],
    metadata: HashMap<String, String>,
) -> Status {
    let mut details = ErrorDetails::new();
    details.set_error_info(reason, ERROR_DOMAIN, metadata);
    for field in fields {
        details.add_bad_request_violation(field.field.clone(), field.message.clone());
    }
    Status::with_error_details(code_for(http_status, reason), message, details)
}

/// The credential of a call's `authorization: Bearer …` metadata, if it has one.
fn credential(metadata: &MetadataMap) -> Option<&str> {
    metadata.get("authorization").and_then(|value| value.to_str().ok()).and_then(bearer_credential)
}

/// The customer a call acts for, from its access token, as REST's `AuthUser` checks it:
/// UNAUTHENTICATED without a valid one, PERMISSION_DENIED for the admin API key (which
/// owns no wallets).
pub fn require_customer(state: &AppState, metadata: &MetadataMap) -> Result<Uuid, Status> {
    let credential = credential(metadata).ok_or_else(|| status(ApiError::Unauthorized))?;
    if let Some(claims) = state.identity.verify_access_token(credential) {
        return Ok(claims.sub);
    }
    if state.keys.is_admin_key(credential) {
        return Err(status(ApiError::Forbidden));
    }
    Err(status(ApiError::Unauthorized))
}

/// The call's `idempotency-key` metadata, checked as REST checks the header.
pub fn idempotency_key(metadata: &MetadataMap) -> Result<IdempotencyKeyHeader, Status> {
    let value = metadata.get(IDEMPOTENCY_KEY_HEADER).map(|value| value.as_encoded_bytes());
    IdempotencyKeyHeader::parse(value).map_err(status)
}

/// Checks that a call carries the admin API key (`authorization: Bearer <key>`), as the
/// REST ledger API's `AdminAuth` does: UNAUTHENTICATED without a valid credential,
/// PERMISSION_DENIED for a valid access token (a customer's or an admin's), which the
/// ledger methods do not accept.
pub fn require_admin_key(state: &AppState, metadata: &MetadataMap) -> Result<(), Status> {
    let credential = credential(metadata).ok_or_else(|| status(ApiError::Unauthorized))?;
    if state.keys.is_admin_key(credential) {
        return Ok(());
    }
    match state.identity.verify_access_token(credential) {
        Some(_) => Err(status(ApiError::Forbidden)),
        None => Err(status(ApiError::Unauthorized)),
    }
}

/// Serves gRPC on `listener` until `shutdown` completes, then finishes the calls in
/// flight. Health answers SERVING while the database answers, NOT_SERVING otherwise
/// and once shutdown has begun. `timeout` bounds every call, as the HTTP request timeout
/// bounds every request; with `tls`, only TLS connections are served.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    timeout: Duration,
    tls: Option<tonic::transport::ServerTlsConfig>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let (health, health_service) = tonic_health::server::health_reporter();
    // Reflection in both versions: v1, and v1alpha for the many tools (grpcurl before
    // 1.8.8 among them) that still ask only that one. It describes the google.rpc error
    // details too, so such tools can show an error's ErrorInfo and BadRequest.
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)
    };
    let (reflection, reflection_v1alpha) = (reflection().build_v1()?, reflection().build_v1alpha()?);
    let store = state.store.clone();
    // Cancelled when shutdown begins: health turns NOT_SERVING and open streams stop
    // taking batches, so that a client holding a stream open cannot hold up shutdown.
    let stopping = CancellationToken::new();
    let wallets = proto::wallet_service_server::WalletServiceServer::new(wallet::Wallets::new(state.clone()))
        .max_decoding_message_size(WALLET_MESSAGE_BYTES_MAX)
        .max_encoding_message_size(MESSAGE_BYTES_MAX);
    let ledger =
        proto::ledger_service_server::LedgerServiceServer::new(ledger::Ledger::new(state, stopping.clone()))
            .max_decoding_message_size(MESSAGE_BYTES_MAX)
            .max_encoding_message_size(MESSAGE_BYTES_MAX);
    // The store answered its migrations at bind: serving from the first call, then
    // kept in step with the database by `report_readiness`.
    for service in HEALTH_SERVICES {
        health.set_service_status(service, ServingStatus::Serving).await;
    }
    let checks = tokio::spawn(report_readiness(health, store, stopping.clone()));
    let mut server = tonic::transport::Server::builder();
    if let Some(tls) = tls {
        server = server.tls_config(tls)?;
    }
    let served = server
        .max_concurrent_streams(STREAMS_PER_CONNECTION_MAX)
        .http2_keepalive_interval(Some(Duration::from_secs(KEEPALIVE_INTERVAL_S)))
        .http2_keepalive_timeout(Some(Duration::from_secs(KEEPALIVE_TIMEOUT_S)))
        .layer(observe::ObserveLayer { timeout })
        .layer(tower::util::MapResponseLayer::new(size_limit_status))
        .add_service(health_service)
        .add_service(reflection)
        .add_service(reflection_v1alpha)
        .add_service(ledger)
        .add_service(wallets)
        .serve_with_incoming_shutdown(tokio_stream::wrappers::TcpListenerStream::new(listener), async move {
            shutdown.await;
            stopping.cancel();
        })
        .await;
    if let Err(error) = checks.await {
        tracing::error!(%error, "the gRPC health reporter failed");
    }
    Ok(served?)
}

/// Keeps the health service's answer in step with the database until `stop`.
async fn report_readiness(health: HealthReporter, store: store::Store, stop: CancellationToken) {
    let mut ticks = tokio::time::interval(Duration::from_secs(HEALTH_CHECK_INTERVAL_S));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            _ = ticks.tick() => {}
        }
        let serving = match store.ping().await {
            Ok(()) => ServingStatus::Serving,
            Err(error) => {
                tracing::warn!(%error, "gRPC health: the database does not answer");
                ServingStatus::NotServing
            }
        };
        for service in HEALTH_SERVICES {
            health.set_service_status(service, serving).await;
        }
    }
    for service in HEALTH_SERVICES {
        health.set_service_status(service, ServingStatus::NotServing).await;
    }
}

/// tonic refuses a message over the size cap with OUT_OF_RANGE; the gRPC specification
/// (and REST's 413) make it RESOURCE_EXHAUSTED, which is what clients retry differently.
/// The refusal comes before any handler runs, as a trailers-only response, so its status
/// is in the headers.
fn size_limit_status<B>(mut response: axum::http::Response<B>) -> axum::http::Response<B> {
    let headers = response.headers_mut();
    let oversize = headers.get("grpc-status").is_some_and(|code| code == "11")
        && headers
            .get("grpc-message")
            .and_then(|message| message.to_str().ok())
            .is_some_and(|message| message.contains("too%20large") || message.contains("too large"));
    if oversize {
        headers.insert("grpc-status", axum::http::HeaderValue::from_static("8"));
    }
    response
}
