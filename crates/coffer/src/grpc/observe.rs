//! What every gRPC call goes through before its method runs, as every HTTP request does
//! in `http::router`: a request id (the caller's `x-request-id`, or a new one, sent back
//! in the response metadata and named by every log line of the call), a tracing span,
//! a deadline, and the metrics `coffer_grpc_requests_total{method,code}` and
//! `coffer_grpc_request_duration_seconds{method,code}`.
//!
//! **Deadlines.** A call ends with DEADLINE_EXCEEDED at the caller's deadline (its
//! `grpc-timeout`) or at the server's request timeout (`COFFER_REQUEST_TIMEOUT_MS`),
//! whichever comes first; the server answers [`DEADLINE_MARGIN`] before the caller's
//! deadline, so the answer can still reach it. The method's work is dropped there. What
//! it had already handed to the commit pipeline commits whole or not at all (a batch is
//! one transaction), never half-way; a retry with the same idempotency key (or, on the
//! ledger, the same ids) finds what did commit. For a streaming call the deadline bounds
//! the time to open the stream; the caller's own deadline ends the stream after that.
//!
//! **Metrics.** A call is counted when its response ends, with the status code it ended
//! with — from the response headers (a call refused before its method answered) or its
//! trailers; a call the client abandoned counts as CANCELLED. The method label is the
//! full method name when it is one the server serves, `unknown` otherwise, so a client
//! cannot grow the label space.

use std::{
    collections::{HashMap, HashSet},
    pin::Pin,
    sync::{OnceLock, RwLock},
    task::{Context, Poll},
    time::{Duration, Instant},
};

use axum::http::{HeaderMap, HeaderValue, Request, Response};
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use metrics::{Counter, Histogram};
use prost::Message;
use tonic::{Code, Status};
use tracing::Instrument;

/// The metadata key of the request id, as the HTTP header.
pub const REQUEST_ID: &str = crate::http::REQUEST_ID_HEADER;

/// Longest request id taken from a caller; a longer one (or one that is not visible
/// ASCII) is replaced by a new id.
const REQUEST_ID_LEN_MAX: usize = 128;

/// How long before the caller's deadline the server gives up and answers: time for the
/// answer to travel back before the caller's own timer fires (and before tonic's own
/// deadline check, which would end the call as CANCELLED).
pub const DEADLINE_MARGIN: Duration = Duration::from_millis(5);

/// The tower layer: wraps the gRPC services of the server.
#[derive(Clone, Debug)]
pub struct ObserveLayer {
    /// The server's own limit on a call (the HTTP request timeout).
    pub timeout: Duration,
}

impl<S> tower::Layer<S> for ObserveLayer {
    type Service = Observe<S>;

    fn layer(&self, inner: S) -> Observe<S> {
        known_methods();
        Observe { inner, timeout: self.timeout }
    }
}

/// See the module documentation.
#[derive(Clone, Debug)]
pub struct Observe<S> {
    inner: S,
    timeout: Duration,
}

impl<S, B, ResBody> tower::Service<Request<B>> for Observe<S>
where
    S: tower::Service<Request<B>, Response = Response<ResBody>> + Send + 'static,
    S::Future: Send + 'static,
    ResBody: Default,
{
    type Response = Response<Observed<ResBody>>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let method = method_label(request.uri().path());
        let request_id = request_id(request.headers());
        let value = HeaderValue::from_str(&request_id).expect("visible ASCII");
        request.headers_mut().insert(REQUEST_ID, value.clone());
        let deadline = match caller_deadline(request.headers()) {
            Some(caller) => caller.saturating_sub(DEADLINE_MARGIN).min(self.timeout),
            None => self.timeout,
        };
        let span = tracing::info_span!("grpc", method, request_id = %request_id);
        let call = Call { method, started: Instant::now(), code: None };
        let response = self.inner.call(request);
        Box::pin(
            async move {
                let mut call = call;
                let mut response = match tokio::time::timeout(deadline, response).await {
                    Ok(response) => response?,
                    Err(_) => {
                        tracing::info!(deadline_ms = deadline.as_millis(), "deadline exceeded");
                        Status::deadline_exceeded("the call's deadline passed before it finished").into_http()
                    }
                };
                response.headers_mut().insert(REQUEST_ID, value);
                call.code = code_in(response.headers());
                Ok(response.map(|inner| Observed { inner, call }))
            }
            .instrument(span),
        )
    }
}

/// A response body that records its call when it ends (or is dropped).
#[derive(Debug)]
pub struct Observed<B> {
    inner: B,
    call: Call,
}

impl<B: Body<Data = Bytes> + Unpin> Body for Observed<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(trailers) = frame.trailers_ref()
        {
            self.call.code = code_in(trailers).or(self.call.code);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// One call being measured; recorded when dropped.
#[derive(Debug)]
struct Call {
    method: &'static str,
    started: Instant,
    /// The status it ended with, once known.
    code: Option<Code>,
}

impl Drop for Call {
    fn drop(&mut self) {
        // No status yet: the client went away before the call ended.
        let code = self.code.unwrap_or(Code::Cancelled);
        let elapsed = self.started.elapsed();
        let (requests, duration) = handles(self.method, code);
        requests.increment(1);
        duration.record(elapsed.as_secs_f64());
        tracing::debug!(method = self.method, code = ?code, elapsed_ms = elapsed.as_millis(), "gRPC call ended");
    }
}

/// The status code in a header map (`grpc-status`), if there is one.
fn code_in(headers: &HeaderMap) -> Option<Code> {
    let value = headers.get("grpc-status")?;
    Some(Code::from_bytes(value.as_bytes()))
}

/// The caller's id when it sent a usable one, a new UUID otherwise.
fn request_id(headers: &HeaderMap) -> String {
    headers
        .get(REQUEST_ID)
        .and_then(|value| value.to_str().ok())
        .filter(|id| {
            (1..=REQUEST_ID_LEN_MAX).contains(&id.len()) && id.bytes().all(|byte| byte.is_ascii_graphic())
        })
        .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned)
}

/// The caller's deadline, from `grpc-timeout`: up to 8 digits and a unit (`H`, `M`, `S`,
/// `m`, `u` or `n`), as the gRPC HTTP/2 protocol spells it. A malformed one is ignored.
pub fn caller_deadline(headers: &HeaderMap) -> Option<Duration> {
    let text = headers.get("grpc-timeout")?.to_str().ok()?;
    let (digits, unit) = text.split_at(text.len().checked_sub(1)?);
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    let amount: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(amount * 3600),
        "M" => Duration::from_secs(amount * 60),
        "S" => Duration::from_secs(amount),
        "m" => Duration::from_millis(amount),
        "u" => Duration::from_micros(amount),
        "n" => Duration::from_nanos(amount),
        _ => return None,
    })
}

/// The full names (`/package.Service/Method`) of every method the server serves, read
/// once from the descriptor sets it serves reflection from (and kept for the process's
/// life: they are the metric labels).
fn known_methods() -> &'static HashSet<&'static str> {
    static KNOWN: OnceLock<HashSet<&'static str>> = OnceLock::new();
    KNOWN.get_or_init(|| {
        let sets = [
            super::FILE_DESCRIPTOR_SET,
            tonic_health::pb::FILE_DESCRIPTOR_SET,
            tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET,
            tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
        ];
        let mut known = HashSet::new();
        for set in sets {
            let set =
                prost_types::FileDescriptorSet::decode(set).expect("the descriptor sets compiled in decode");
            for file in set.file {
                let package = file.package.unwrap_or_default();
                for service in file.service {
                    let service_name = service.name.unwrap_or_default();
                    for method in service.method {
                        let name = format!("/{package}.{service_name}/{}", method.name.unwrap_or_default());
                        known.insert(&*Box::leak(name.into_boxed_str()));
                    }
                }
            }
        }
        known
    })
}

/// The method label of a request path: the path itself when the server serves it.
fn method_label(path: &str) -> &'static str {
    known_methods().get(path).copied().unwrap_or("unknown")
}

/// The request counter and duration histogram of (`method`, `code`), registered on first
/// use: a call then finds them with one map lookup.
fn handles(method: &'static str, code: Code) -> (Counter, Histogram) {
    type Handles = RwLock<HashMap<(&'static str, i32), (Counter, Histogram)>>;
    static HANDLES: OnceLock<Handles> = OnceLock::new();
    let handles = HANDLES.get_or_init(|| {
        // Handles made before the recorder is installed would count nothing, for good.
        crate::http::metrics::handle();
        RwLock::default()
    });
    let key = (method, code as i32);
    if let Some(found) = handles.read().expect("not poisoned").get(&key) {
        return found.clone();
    }
    let labels = [("method", method.to_owned()), ("code", code_name(code).to_owned())];
    let made = (
        metrics::counter!("coffer_grpc_requests_total", &labels),
        metrics::histogram!("coffer_grpc_request_duration_seconds", &labels),
    );
    handles.write().expect("not poisoned").entry(key).or_insert(made).clone()
}

/// The canonical name of a status code, as gRPC's own tools print it (`NOT_FOUND`).
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timeout(value: &str) -> Option<Duration> {
        let mut headers = HeaderMap::new();
        headers.insert("grpc-timeout", HeaderValue::from_str(value).unwrap());
        caller_deadline(&headers)
    }

    #[test]
    fn grpc_timeouts_parse_in_every_unit() {
        assert_eq!(timeout("2H"), Some(Duration::from_secs(7200)));
        assert_eq!(timeout("3M"), Some(Duration::from_secs(180)));
        assert_eq!(timeout("4S"), Some(Duration::from_secs(4)));
        assert_eq!(timeout("250m"), Some(Duration::from_millis(250)));
        assert_eq!(timeout("99999999u"), Some(Duration::from_micros(99_999_999)));
        assert_eq!(timeout("5n"), Some(Duration::from_nanos(5)));
        for bad in ["", "S", "123456789S", "12x", "-1S", "1.5S", "m"] {
            assert_eq!(timeout(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn only_served_methods_are_labels() {
        assert_eq!(
            method_label("/coffer.v1.LedgerService/CreateTransfers"),
            "/coffer.v1.LedgerService/CreateTransfers"
        );
        assert_eq!(
            method_label("/coffer.v1.WalletService/TransferMoney"),
            "/coffer.v1.WalletService/TransferMoney"
        );
        assert_eq!(method_label("/grpc.health.v1.Health/Check"), "/grpc.health.v1.Health/Check");
        assert_eq!(method_label("/coffer.v1.LedgerService/Nope"), "unknown");
        assert_eq!(method_label("/x"), "unknown");
    }
}
