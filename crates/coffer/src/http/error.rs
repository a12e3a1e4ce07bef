//! The one error type of the HTTP layer, rendered as RFC 9457 problem+json.
//!
//! Every failure a client can see is an [`ApiError`] variant whose doc names its status.
//! Bodies carry a stable machine `code`, a human `detail`, the `request_id`, and for
//! validation failures a list of field errors. Internal causes are logged, never sent.
//!
//! `into_response` cannot see the request, so it attaches the [`Problem`] to the response
//! and [`render_problems`] (a middleware on every route) fills in the request id and
//! writes the body.

use axum::{
    extract::Request,
    http::{HeaderValue, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// One invalid field of a request.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct FieldError {
    /// JSON Pointer (RFC 6901) to the field in the request body, or the parameter name.
    pub field: String,
    pub message: String,
}

/// An error response body (RFC 9457 problem details).
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem: `urn:coffer:problem:<code>`.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// Stable machine-readable code, e.g. `validation_failed`.
    pub code: String,
    /// The request's `x-request-id`, to quote when asking for help.
    pub request_id: Option<String>,
    /// Field-level errors, for validation failures.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

impl Problem {
    /// A response carrying this problem, rendered (with the current request id) by
    /// [`render_problems`]; used to replay a stored failure.
    pub fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = status.into_response();
        response.extensions_mut().insert(self);
        response
    }
}

/// Everything that can go wrong in a request, as the client sees it.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the body is not well-formed JSON.
    #[error("the request body is not valid JSON: {0}")]
    MalformedJson(String),
    /// 400: a path or query parameter is malformed.
    #[error("{detail}")]
    InvalidParameter { detail: String },
    /// 401: no credentials, or wrong ones.
    #[error("missing or invalid credentials")]
    Unauthorized,
    /// 403: authenticated, but not allowed (a customer on an admin endpoint).
    #[error("this endpoint needs the admin role or the admin API key")]
    Forbidden,
    /// 404: the route, or the object, does not exist (or is not the caller's).
    #[error("{detail}")]
    NotFound { code: &'static str, detail: String },
    /// 405: the route exists, but not with this method.
    #[error("method not allowed on this route")]
    MethodNotAllowed,
    /// A refusal by the domain, with its own status (4xx) and stable code: for example
    /// 422 `insufficient_funds`, 404 `wallet_not_found`, 409 `idempotency_key_reused`.
    #[error("{detail}")]
    Rejected { status: StatusCode, code: &'static str, detail: String },
    /// 413: the body is larger than this route accepts.
    #[error("the request body is larger than {limit_bytes} bytes")]
    PayloadTooLarge { limit_bytes: usize },
    /// 415: the body is not `application/json`.
    #[error("expected a body with content-type application/json")]
    UnsupportedMediaType,
    /// 422: well-formed JSON whose fields are wrong; `errors` says which.
    #[error("{detail}")]
    Validation { detail: String, errors: Vec<FieldError> },
    /// 429 + Retry-After: too many attempts (login throttling, rate limits).
    #[error("too many requests; retry in {retry_after_seconds} seconds")]
    TooManyRequests { retry_after_seconds: u64 },
    /// 503 + Retry-After: the commit queue is full.
    #[error("the server is busy; retry shortly")]
    Overloaded,
    /// 503: the server is shutting down.
    #[error("the server is shutting down")]
    ShuttingDown,
    /// 503 + Retry-After: the database failed or is unreachable. Writes that reported
    /// this may be retried with the same ids: ids are idempotency keys.
    #[error("the database is unavailable")]
    Unavailable(#[source] anyhow::Error),
    /// 503: the request took longer than the configured timeout.
    #[error("the request timed out")]
    Timeout,
    /// 500: a bug. Logged with its cause; the client sees only that it happened.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl From<crate::limits::Limited> for ApiError {
    fn from(limited: crate::limits::Limited) -> Self {
        Self::TooManyRequests { retry_after_seconds: limited.retry_after_seconds }
    }
}

/// Seconds a client should wait before retrying after a 503.
const RETRY_AFTER_SECONDS: &str = "1";

impl ApiError {
    /// A domain refusal with its status, code and explanation.
    pub fn rejected(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        Self::Rejected { status, code, detail: detail.into() }
    }

    /// A 422 for a single field.
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        let message = message.into();
        Self::Validation {
            detail: message.clone(),
            errors: vec![FieldError { field: field.into(), message }],
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::MalformedJson(_) | Self::InvalidParameter { .. } => StatusCode::BAD_REQUEST,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::NotFound { .. } => StatusCode::NOT_FOUND,
            Self::Rejected { status, .. } => *status,
            Self::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Validation { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Overloaded | Self::ShuttingDown | Self::Unavailable(_) | Self::Timeout => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable machine code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::MalformedJson(_) => "malformed_json",
            Self::InvalidParameter { .. } => "invalid_parameter",
            Self::Unauthorized => "unauthorized",
            Self::Forbidden => "forbidden",
            Self::NotFound { code, .. } | Self::Rejected { code, .. } => code,
            Self::TooManyRequests { .. } => "too_many_requests",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::PayloadTooLarge { .. } => "payload_too_large",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::Validation { .. } => "validation_failed",
            Self::Overloaded => "overloaded",
            Self::ShuttingDown => "shutting_down",
            Self::Unavailable(_) => "database_unavailable",
            Self::Timeout => "timeout",
            Self::Internal(_) => "internal_error",
        }
    }

    pub fn problem(&self) -> Problem {
        let status = self.status();
        let code = self.code();
        Problem {
            kind: format!("urn:coffer:problem:{code}"),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail: self.to_string(),
            code: code.to_owned(),
            request_id: None,
            errors: match self {
                Self::Validation { errors, .. } => errors.clone(),
                _ => Vec::new(),
            },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match &self {
            Self::Internal(cause) => tracing::error!(error = ?cause, "internal error"),
            Self::Unavailable(cause) => tracing::warn!(error = ?cause, "database unavailable"),
            _ => {}
        }
        let mut response = self.status().into_response();
        let headers = response.headers_mut();
        match self {
            Self::Overloaded | Self::Unavailable(_) => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER_SECONDS));
            }
            Self::TooManyRequests { retry_after_seconds } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(retry_after_seconds));
            }
            Self::Unauthorized => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            _ => {}
        }
        response.extensions_mut().insert(self.problem());
        response
    }
}

/// Middleware: writes the problem+json body of every error response, with the request id.
/// Also turns axum's own bodiless error statuses into problems, so no route answers an
/// error in another shape.
pub async fn render_problems(request: Request, next: Next) -> Response {
    let request_id = request
        .headers()
        .get(super::REQUEST_ID_HEADER)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let mut response = next.run(request).await;
    let problem = match response.extensions_mut().remove::<Problem>() {
        Some(problem) => problem,
        None if response.status() == StatusCode::METHOD_NOT_ALLOWED => ApiError::MethodNotAllowed.problem(),
        None => return response,
    };
    let problem = Problem { request_id, ..problem };
    let body = serde_json::to_vec(&problem).expect("a problem always serialises");
    let (mut parts, _) = response.into_parts();
    parts.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, axum::body::Body::from(body))
}

/// A database failure is the server's problem, and usually a passing one: 503.
impl From<store::StoreError> for ApiError {
    fn from(error: store::StoreError) -> Self {
        Self::Unavailable(anyhow::Error::new(error))
    }
}

/// The commit pipeline's refusals: full (503 overloaded), shutting down, or the store failed.
impl From<crate::commit::CommitError> for ApiError {
    fn from(error: crate::commit::CommitError) -> Self {
        match error {
            crate::commit::CommitError::QueueFull => Self::Overloaded,
            crate::commit::CommitError::ShuttingDown => Self::ShuttingDown,
            crate::commit::CommitError::Store(error) => Self::Unavailable(anyhow::Error::new(error)),
        }
    }
}
