//! gRPC beside REST: the `coffer.v1.LedgerService` (see `proto/coffer/v1/ledger.proto`
//! and docs/grpc.md), the standard `grpc.health.v1.Health` and server reflection v1, on
//! their own listener (`COFFER_GRPC_LISTEN`).
//!
//! This layer only maps: protobuf ⇄ ledger types, and [`ApiError`] ⇄ gRPC status. The
//! rules, the commit pipeline and the store are the ones REST uses
//! ([`crate::ledger_api`]), so both transports accept, refuse and answer alike. Errors
//! carry `google.rpc` details: an `ErrorInfo` whose reason is the REST problem `code`
//! (domain `coffer`) and, for invalid fields, a `BadRequest` with the REST field paths.

pub mod ledger;

use std::{collections::HashMap, future::Future, time::Duration};

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::{Code, Status, metadata::MetadataMap};
use tonic_health::{ServingStatus, server::HealthReporter};
use tonic_types::{ErrorDetails, StatusExt};

use crate::http::{AppState, caller::bearer_credential, error::ApiError};

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

/// The names the health service answers for: the server as a whole and the ledger.
const HEALTH_SERVICES: [&str; 2] = ["", "coffer.v1.LedgerService"];

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
    let code = match &error {
        ApiError::MalformedJson(_) | ApiError::InvalidParameter { .. } | ApiError::Validation { .. } => {
            Code::InvalidArgument
        }
        ApiError::Unauthorized => Code::Unauthenticated,
        ApiError::Forbidden => Code::PermissionDenied,
        ApiError::NotFound { .. } => Code::NotFound,
        ApiError::Rejected { status, .. } => match status.as_u16() {
            404 => Code::NotFound,
            409 => Code::Aborted,
            _ => Code::FailedPrecondition,
        },
        ApiError::TooManyRequests { .. } | ApiError::PayloadTooLarge { .. } => Code::ResourceExhausted,
        ApiError::MethodNotAllowed => Code::Unimplemented,
        ApiError::UnsupportedMediaType => Code::InvalidArgument,
        ApiError::Overloaded | ApiError::ShuttingDown | ApiError::Unavailable(_) => Code::Unavailable,
        ApiError::Timeout => Code::DeadlineExceeded,
        ApiError::Internal(_) => Code::Internal,
    };
    match &error {
        ApiError::Internal(cause) => tracing::error!(error = ?cause, "internal error"),
        ApiError::Unavailable(cause) => tracing::warn!(error = ?cause, "database unavailable"),
        _ => {}
    }
    let mut details = ErrorDetails::new();
    details.set_error_info(error.code(), ERROR_DOMAIN, metadata);
    if let ApiError::Validation { errors, .. } = &error {
        for field in errors {
            details.add_bad_request_violation(field.field.clone(), field.message.clone());
        }
    }
    Status::with_error_details(code, error.to_string(), details)
}

/// Checks that a call carries the admin API key (`authorization: Bearer <key>`), as the
/// REST ledger API's `AdminAuth` does: UNAUTHENTICATED without a valid credential,
/// PERMISSION_DENIED for a valid access token (a customer's or an admin's), which the
/// ledger methods do not accept.
pub fn require_admin_key(state: &AppState, metadata: &MetadataMap) -> Result<(), Status> {
    let credential = metadata
        .get("authorization")
        .and_then(|value| value.to_str().ok())
        .and_then(bearer_credential)
        .ok_or_else(|| status(ApiError::Unauthorized))?;
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
/// and once shutdown has begun.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let (health, health_service) = tonic_health::server::health_reporter();
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let store = state.store.clone();
    // Cancelled when shutdown begins: health turns NOT_SERVING and open streams stop
    // taking batches, so that a client holding a stream open cannot hold up shutdown.
    let stopping = CancellationToken::new();
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
    let served = tonic::transport::Server::builder()
        .max_concurrent_streams(STREAMS_PER_CONNECTION_MAX)
        .http2_keepalive_interval(Some(Duration::from_secs(KEEPALIVE_INTERVAL_S)))
        .http2_keepalive_timeout(Some(Duration::from_secs(KEEPALIVE_TIMEOUT_S)))
        .layer(tower::util::MapResponseLayer::new(size_limit_status))
        .add_service(health_service)
        .add_service(reflection)
        .add_service(ledger)
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
