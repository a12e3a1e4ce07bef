//! Who is calling: the extractors that authenticate a request before its handler runs.
//! [`AuthUser`] needs a valid access token; [`AdminUser`] an admin's access token or the
//! admin API key; [`AdminAuth`] the admin API key itself. All answer 401 problem+json
//! without a valid credential (and `AdminUser` 403 for a customer's token).

use axum::{
    extract::FromRequestParts,
    http::{HeaderMap, header, request::Parts},
};
use uuid::Uuid;

use super::{AppState, error::ApiError};
use crate::identity::Role;

/// A caller authenticated by a valid access token (`Authorization: Bearer <jwt>`); 401
/// problem+json otherwise.
#[derive(Clone, Copy, Debug)]
pub struct AuthUser {
    pub customer_id: Uuid,
    pub role: Role,
}

/// An admin: an access token with role admin (403 for a customer token) or the admin API
/// key; 401 without credentials.
#[derive(Clone, Copy, Debug)]
pub struct AdminUser {
    /// The admin customer, or `None` when the caller used the admin API key.
    pub customer_id: Option<Uuid>,
}

/// The bearer credential of a request, if it has one.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    bearer_credential(headers.get(header::AUTHORIZATION)?.to_str().ok()?)
}

/// The credential of an `authorization` value `Bearer <credential>` (the scheme in any
/// case), for HTTP headers and gRPC metadata alike.
pub fn bearer_credential(value: &str) -> Option<&str> {
    let (scheme, credential) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| credential.trim())
}

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let claims = bearer(&parts.headers)
            .and_then(|token| state.identity.verify_access_token(token))
            .ok_or(ApiError::Unauthorized)?;
        Ok(Self { customer_id: claims.sub, role: claims.role })
    }
}

impl FromRequestParts<AppState> for AdminUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let credential = bearer(&parts.headers).ok_or(ApiError::Unauthorized)?;
        if state.keys.is_admin_key(credential) {
            return Ok(Self { customer_id: None });
        }
        let claims = state.identity.verify_access_token(credential).ok_or(ApiError::Unauthorized)?;
        match claims.role {
            Role::Admin => Ok(Self { customer_id: Some(claims.sub) }),
            Role::Customer => Err(ApiError::Forbidden),
        }
    }
}

/// Proof that the request carries the admin API key itself (`Authorization: Bearer
/// <key>`), for the ledger API; 401 otherwise. Put it first among a handler's arguments
/// so that credentials are checked before the body is read.
#[derive(Debug, Clone, Copy)]
pub struct AdminAuth;

impl FromRequestParts<AppState> for AdminAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        match bearer(&parts.headers) {
            Some(credential) if state.keys.is_admin_key(credential) => Ok(AdminAuth),
            _ => Err(ApiError::Unauthorized),
        }
    }
}
