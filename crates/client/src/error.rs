//! The client's one error type. A call the server refused keeps what the server said in
//! a [`Rejection`]: the gRPC code and message, the `google.rpc.ErrorInfo` reason — the
//! REST problem `code` (`validation_failed`, `account_not_found`, `overloaded`, …) — with
//! its metadata (a stream's refused `batch_id`), and the `google.rpc.BadRequest` field
//! violations, whose paths are the REST JSON Pointers (`/3/amount`). The variants sort
//! refusals by what a caller does about them; per-event outcomes such as
//! `exceeds_credits` are results, not errors.
//!
//! Errors are `Clone` because the [`crate::Batcher`] hands one stream's failure to every
//! task whose transfer was in the failed batch.

use std::{collections::HashMap, fmt};

use tonic::{Code, Status};
use tonic_types::StatusExt;

/// One invalid field of a refused request (`google.rpc.BadRequest.FieldViolation`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldViolation {
    /// The REST JSON Pointer into the request: `/3/amount` is the fourth event's amount,
    /// `""` the batch as a whole.
    pub field: String,
    /// Why it is invalid.
    pub description: String,
}

/// What the server said when it refused a call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    /// The gRPC status code.
    pub code: Code,
    /// The status message (for people; match on `reason` instead).
    pub message: String,
    /// The `ErrorInfo` reason: the REST problem `code`. `None` when the status carried no
    /// `ErrorInfo`, as transport failures (a refused connection, a reset stream) do not.
    pub reason: Option<String>,
    /// The `ErrorInfo` metadata; on a stream, `batch_id` names the refused batch.
    pub metadata: HashMap<String, String>,
    /// The `BadRequest` field violations, for invalid requests.
    pub violations: Vec<FieldViolation>,
}

impl Rejection {
    /// The code, message and `google.rpc` details of `status`.
    pub fn from_status(status: &Status) -> Self {
        let details = status.get_error_details();
        let (reason, metadata) = match details.error_info() {
            Some(info) => (Some(info.reason.clone()), info.metadata.clone()),
            None => (None, HashMap::new()),
        };
        let violations = details
            .bad_request()
            .map(|bad| {
                bad.field_violations
                    .iter()
                    .map(|violation| FieldViolation {
                        field: violation.field.clone(),
                        description: violation.description.clone(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        Self { code: status.code(), message: status.message().to_owned(), reason, metadata, violations }
    }

    /// A refusal made on this side: a connection that could not be opened, say.
    pub fn local(code: Code, message: impl Into<String>) -> Self {
        Self { code, message: message.into(), reason: None, metadata: HashMap::new(), violations: Vec::new() }
    }

    /// The stream batch this refusal names (the `batch_id` of the `ErrorInfo` metadata).
    pub fn batch_id(&self) -> Option<u64> {
        self.metadata.get("batch_id").and_then(|id| id.parse().ok())
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.code)?;
        if let Some(reason) = &self.reason {
            write!(f, " ({reason})")?;
        }
        if !self.message.is_empty() {
            write!(f, ": {}", self.message)?;
        }
        for violation in &self.violations {
            write!(f, "; {:?}: {}", violation.field, violation.description)?;
        }
        Ok(())
    }
}

/// Why a call, a stream or a submission did not get its results.
#[derive(Clone, Debug, thiserror::Error)]
pub enum Error {
    /// `INVALID_ARGUMENT`: the request broke a rule (a batch of 0 or more than 8,190
    /// events, an amount above 2^63 - 1, a page size above 100, a bad page token, an
    /// account without history for `get_account_balances`). `violations` name the fields.
    /// Not retried: the same request would be refused again.
    #[error("invalid argument: {0}")]
    InvalidArgument(Box<Rejection>),
    /// `UNAUTHENTICATED`: no admin key, or a wrong one.
    #[error("unauthenticated: {0}")]
    Unauthenticated(Box<Rejection>),
    /// `PERMISSION_DENIED`: a valid access token, but not the admin API key.
    #[error("permission denied: {0}")]
    PermissionDenied(Box<Rejection>),
    /// `NOT_FOUND`: the account of a history request does not exist (reason
    /// `account_not_found`).
    #[error("not found: {0}")]
    NotFound(Box<Rejection>),
    /// `UNAVAILABLE` on every attempt (the server down or unreachable, its commit queue
    /// full, shutting down), or on the last one the retry policy or the deadline allowed.
    /// A write may or may not have been applied: send it again with the same ids.
    #[error("unavailable after {attempts} attempt(s): {last}")]
    Unavailable {
        /// Attempts made.
        attempts: u32,
        /// What the last attempt got.
        last: Box<Rejection>,
    },
    /// The call's deadline passed. A write may or may not have been applied: send it
    /// again with the same ids.
    #[error("deadline exceeded after {attempts} attempt(s){}", last.as_ref().map(|last| format!(": {last}")).unwrap_or_default())]
    DeadlineExceeded {
        /// Attempts made (the last one cut short by the deadline).
        attempts: u32,
        /// The server's `DEADLINE_EXCEEDED`, when it said so itself.
        last: Option<Box<Rejection>>,
    },
    /// Any other status: `RESOURCE_EXHAUSTED` (a message over 8 MiB), `INTERNAL` (a bug on
    /// the server), a transport failure that is not a refused connection (`UNKNOWN`,
    /// `CANCELLED` for a reset stream), …
    #[error("refused: {0}")]
    Rejected(Box<Rejection>),
    /// Refused by this client before anything was sent: the request cannot be valid (an
    /// empty or oversized batch, a stream with no room for another batch, an invalid
    /// endpoint or admin key).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The server's answer does not fit the request (a result for another id, a missing
    /// result, an unknown result code): a server of another version, or a bug.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The stream or [`crate::Batcher`] has ended; nothing more can be sent on it.
    #[error("closed")]
    Closed,
}

impl Error {
    /// The error for a status that ended the call after `attempts` attempts.
    pub fn from_status(status: &Status, attempts: u32) -> Self {
        let rejection = Box::new(Rejection::from_status(status));
        match status.code() {
            Code::InvalidArgument => Self::InvalidArgument(rejection),
            Code::Unauthenticated => Self::Unauthenticated(rejection),
            Code::PermissionDenied => Self::PermissionDenied(rejection),
            Code::NotFound => Self::NotFound(rejection),
            Code::Unavailable => Self::Unavailable { attempts, last: rejection },
            Code::DeadlineExceeded => Self::DeadlineExceeded { attempts, last: Some(rejection) },
            _ => Self::Rejected(rejection),
        }
    }

    /// What the server said, when the error is a refusal.
    pub fn rejection(&self) -> Option<&Rejection> {
        match self {
            Self::InvalidArgument(rejection)
            | Self::Unauthenticated(rejection)
            | Self::PermissionDenied(rejection)
            | Self::NotFound(rejection)
            | Self::Rejected(rejection)
            | Self::Unavailable { last: rejection, .. }
            | Self::DeadlineExceeded { last: Some(rejection), .. } => Some(rejection),
            Self::DeadlineExceeded { last: None, .. }
            | Self::InvalidRequest(_)
            | Self::Protocol(_)
            | Self::Closed => None,
        }
    }

    /// The REST problem code the server gave (`ErrorInfo.reason`), if any.
    pub fn reason(&self) -> Option<&str> {
        self.rejection().and_then(|rejection| rejection.reason.as_deref())
    }

    /// The invalid fields the server named (empty for other errors).
    pub fn violations(&self) -> &[FieldViolation] {
        self.rejection().map_or(&[], |rejection| &rejection.violations)
    }
}

#[cfg(test)]
mod tests {
    use tonic_types::ErrorDetails;

    use super::*;

    #[test]
    fn the_reason_metadata_and_violations_survive() {
        let mut details = ErrorDetails::new();
        details.set_error_info("validation_failed", "coffer", [("batch_id".to_owned(), "7".to_owned())]);
        details.add_bad_request_violation("/3/amount", "must be at most 9223372036854775807");
        let status = Status::with_error_details(Code::InvalidArgument, "1 invalid field(s)", details);
        let error = Error::from_status(&status, 1);
        assert!(matches!(error, Error::InvalidArgument(_)), "{error:?}");
        assert_eq!(error.reason(), Some("validation_failed"));
        assert_eq!(error.rejection().unwrap().batch_id(), Some(7));
        assert_eq!(
            error.violations(),
            [FieldViolation {
                field: "/3/amount".into(),
                description: "must be at most 9223372036854775807".into()
            }]
        );
        assert!(error.to_string().contains("/3/amount"), "{error}");
    }

    #[test]
    fn codes_sort_into_variants() {
        let cases = [
            (Code::Unauthenticated, "Unauthenticated"),
            (Code::PermissionDenied, "PermissionDenied"),
            (Code::NotFound, "NotFound"),
            (Code::Unavailable, "Unavailable"),
            (Code::DeadlineExceeded, "DeadlineExceeded"),
            (Code::Internal, "Rejected"),
            (Code::ResourceExhausted, "Rejected"),
        ];
        for (code, variant) in cases {
            let error = Error::from_status(&Status::new(code, "no"), 3);
            assert!(format!("{error:?}").starts_with(variant), "{code:?} → {error:?}");
            assert_eq!(error.rejection().unwrap().code, code);
            assert_eq!(error.reason(), None, "a bare status has no ErrorInfo");
        }
    }
}
