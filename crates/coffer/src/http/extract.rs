//! Request extractors whose every rejection is an [`ApiError`], so malformed input gets
//! the same problem+json shape as every other error: JSON bodies (with the path of the
//! bad field), query strings and path parameters. Credentials are `caller`'s.

use axum::{
    body::Bytes,
    extract::{FromRequest, FromRequestParts, Request, rejection::BytesRejection},
    http::{StatusCode, header, request::Parts},
};
use serde::de::DeserializeOwned;

use super::{error::ApiError, error::FieldError};

/// A JSON object request body. Unknown fields are rejected by the target types
/// (`deny_unknown_fields`), which stops mass assignment; a top-level array is refused
/// (serde would otherwise read it into a struct field by field).
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = json_body(request, state).await?;
        parse_object(&bytes).map(Json)
    }
}

/// A JSON array request body: the ledger's batches.
#[derive(Debug, Clone, Default)]
pub struct JsonBatch<T>(pub Vec<T>);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBatch<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = json_body(request, state).await?;
        parse_json(&bytes).map(JsonBatch)
    }
}

/// A JSON request body with its raw bytes, for requests whose exact body matters (the
/// idempotency key's request hash).
#[derive(Debug, Clone)]
pub struct RawJson<T> {
    pub value: T,
    pub bytes: Bytes,
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for RawJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = json_body(request, state).await?;
        Ok(RawJson { value: parse_object(&bytes)?, bytes })
    }
}

/// The body of an `application/json` (or `+json`) request, within the route's limit.
async fn json_body<S: Send + Sync>(request: Request, state: &S) -> Result<Bytes, ApiError> {
    let is_json = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|mime| {
            let mime = mime.trim();
            mime.eq_ignore_ascii_case("application/json")
                || (mime.starts_with("application/") && mime.ends_with("+json"))
        });
    if !is_json {
        return Err(ApiError::UnsupportedMediaType);
    }
    let limit_bytes = body_limit(&request);
    Bytes::from_request(request, state).await.map_err(|rejection| match rejection {
        BytesRejection::FailedToBufferBody(ref inner) if inner.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::PayloadTooLarge { limit_bytes }
        }
        other => ApiError::MalformedJson(other.body_text()),
    })
}

/// The body limit in force for a request, for the 413 message. Routes set it with
/// [`axum::extract::DefaultBodyLimit`], which does not expose it, so the router also
/// records it as a request extension.
fn body_limit(request: &Request) -> usize {
    request.extensions().get::<BodyLimit>().map_or(super::BODY_BYTES_MAX, |limit| limit.0)
}

/// The body limit of a route, recorded for error messages (see [`body_limit`]).
#[derive(Clone, Copy, Debug)]
pub struct BodyLimit(pub usize);

/// Parses a JSON object into `T` (see [`Json`]): well-formed JSON that is not an object
/// is 422.
pub fn parse_object<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let first = bytes.iter().find(|byte| !byte.is_ascii_whitespace());
    if first.is_some_and(|byte| *byte != b'{')
        && serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_ok()
    {
        return Err(ApiError::field("", "must be a JSON object"));
    }
    parse_json(bytes)
}

/// Parses JSON, telling syntax errors (400) from wrong fields (422, with a JSON Pointer
/// to the field).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let pointer = json_pointer(error.path());
        let inner = error.into_inner();
        match inner.classify() {
            serde_json::error::Category::Data => {
                let message = strip_position(&inner.to_string());
                ApiError::Validation {
                    detail: format!("invalid request body at {}: {message}", display_pointer(&pointer)),
                    errors: vec![FieldError { field: pointer, message }],
                }
            }
            _ => ApiError::MalformedJson(inner.to_string()),
        }
    })?;
    // Trailing characters after the value make the body malformed, not partly valid.
    deserializer.end().map_err(|error| ApiError::MalformedJson(error.to_string()))?;
    Ok(value)
}

fn json_pointer(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut pointer = String::new();
    for segment in path.iter() {
        pointer.push('/');
        match segment {
            Segment::Seq { index } => pointer.push_str(&index.to_string()),
            Segment::Map { key } | Segment::Enum { variant: key } => {
                pointer.push_str(&key.replace('~', "~0").replace('/', "~1"));
            }
            Segment::Unknown => pointer.push('?'),
        }
    }
    pointer
}

fn display_pointer(pointer: &str) -> &str {
    if pointer.is_empty() { "the top level" } else { pointer }
}

/// serde_json appends " at line L column C"; the pointer says where more usefully.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(at) => message[..at].to_owned(),
        None => message.to_owned(),
    }
}

/// A query string; a malformed one is a 400 naming the problem.
#[derive(Debug, Clone, Copy, Default)]
pub struct Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(value)| Query(value))
            .map_err(|rejection| ApiError::InvalidParameter { detail: rejection.body_text() })
    }
}

/// Path parameters; a malformed one (say, an id that is not a UUID) is a 400.
#[derive(Debug, Clone, Copy, Default)]
pub struct Path<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(value)| Path(value))
            .map_err(|rejection| ApiError::InvalidParameter { detail: rejection.body_text() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Item {
        amount: u64,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Patch {
        name: Option<String>,
        note: Option<String>,
    }

    #[test]
    fn an_array_is_not_an_object() {
        assert!(parse_json::<Patch>(b"[null, null]").is_ok(), "what serde alone would accept");
        let error = parse_object::<Patch>(b" [null, null]").unwrap_err();
        assert!(matches!(error, ApiError::Validation { .. }), "{error:?}");
        assert!(matches!(parse_object::<Patch>(b"[nul").unwrap_err(), ApiError::MalformedJson(_)));
        assert!(parse_object::<Patch>(br#"{"name": "x"}"#).is_ok());
    }

    #[test]
    fn wrong_field_points_at_it() {
        let error = parse_json::<Vec<Item>>(br#"[{"amount": 1}, {"amount": "x"}]"#).unwrap_err();
        let ApiError::Validation { errors, .. } = error else { panic!("expected validation, got {error:?}") };
        assert_eq!(errors[0].field, "/1/amount");
        assert!(errors[0].message.contains("invalid type"), "{}", errors[0].message);
    }

    #[test]
    fn unknown_field_is_rejected() {
        let error = parse_json::<Item>(br#"{"amount": 1, "balance": 5}"#).unwrap_err();
        assert!(matches!(error, ApiError::Validation { .. }), "{error:?}");
        assert!(error.to_string().contains("unknown field `balance`"), "{error}");
    }

    #[test]
    fn syntax_error_and_trailing_garbage_are_malformed() {
        assert!(matches!(parse_json::<Item>(br#"{"amount": "#), Err(ApiError::MalformedJson(_))));
        assert!(matches!(parse_json::<Item>(br#"{"amount": 1} x"#), Err(ApiError::MalformedJson(_))));
    }
}
