//! The authentication API (`/v1/auth/*`): register, login, refresh, logout and `me`.
//!
//! Handlers parse the body into the identity types, call [`crate::identity::Identity`] and
//! map the result. Passwords and tokens never reach a log line: request bodies are not
//! logged, and the types that carry them redact their `Debug`.

use axum::{
    Router,
    extract::State,
    http::StatusCode,
    routing::{get, post},
};
use serde::{Deserialize, Serialize};
use store::Customer;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::http::caller::{AuthUser, ClientAddress};
use crate::http::{
    AppState,
    error::{ApiError, FieldError},
    extract::Json,
};
use crate::identity::{
    IdentityError, Role, TokenPair,
    password::NewPassword,
    profile::{CustomerName, Email},
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/auth/register", post(register))
        .route("/v1/auth/login", post(login))
        .route("/v1/auth/refresh", post(refresh))
        .route("/v1/auth/logout", post(logout))
        .route("/v1/auth/me", get(me))
}

impl From<IdentityError> for ApiError {
    fn from(error: IdentityError) -> Self {
        match error {
            IdentityError::EmailTaken => Self::rejected(
                axum::http::StatusCode::CONFLICT,
                "email_taken",
                "the email address is already registered",
            ),
            IdentityError::InvalidCredentials | IdentityError::InvalidRefreshToken => Self::Unauthorized,
            IdentityError::Throttled { retry_after_seconds } => Self::TooManyRequests { retry_after_seconds },
            IdentityError::CustomerNotFound => {
                Self::NotFound { code: "customer_not_found", detail: "no such customer".into() }
            }
            IdentityError::SessionNotFound => {
                Self::NotFound { code: "session_not_found", detail: "no such session".into() }
            }
            IdentityError::Store(error) => error.into(),
            IdentityError::Internal(error) => Self::Internal(error),
        }
    }
}

/// A customer as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct CustomerView {
    pub id: Uuid,
    pub email: String,
    pub name: String,
    /// E.164, such as `+442071838750`.
    pub phone: Option<String>,
    /// ISO 3166-1 alpha-2, such as `GB`.
    pub country: Option<String>,
    /// The customer's own settings: a JSON object.
    #[schema(value_type = Object)]
    pub preferences: serde_json::Value,
    /// `unverified`, `pending`, `verified` or `rejected`; set by admins only.
    #[schema(example = "unverified")]
    pub kyc_status: &'static str,
    pub role: Role,
    /// RFC 3339, UTC.
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub updated_at: String,
}

impl CustomerView {
    pub fn from_customer(customer: Customer) -> Result<Self, ApiError> {
        let rfc3339 = |time: time::OffsetDateTime| {
            time.format(&time::format_description::well_known::Rfc3339)
                .map_err(|error| ApiError::Internal(error.into()))
        };
        let preferences = serde_json::from_str(&customer.preferences).map_err(|error| {
            ApiError::Internal(anyhow::anyhow!("stored preferences are not JSON: {error}"))
        })?;
        Ok(Self {
            id: customer.id,
            email: customer.email,
            name: customer.name,
            phone: customer.phone,
            country: customer.country,
            preferences,
            kyc_status: customer.kyc_status.as_str(),
            role: customer.role.into(),
            created_at: rfc3339(customer.created_at)?,
            updated_at: rfc3339(customer.updated_at)?,
        })
    }
}

/// A new account.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    #[schema(example = "ada@example.com")]
    pub email: String,
    /// 8 to 128 characters, not one of the most common passwords.
    #[schema(example = "correct horse battery staple")]
    pub password: String,
    #[schema(example = "Ada Lovelace")]
    pub name: String,
}

/// Email and password.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub email: String,
    pub password: String,
}

/// A refresh token, to rotate or to revoke.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    pub refresh_token: String,
}

/// The tokens of a session.
#[derive(Serialize, ToSchema)]
pub struct TokenResponse {
    /// A JWT for `Authorization: Bearer …`, valid `expires_in` seconds.
    pub access_token: String,
    /// Opaque; use once with `/v1/auth/refresh` to get a new pair. Valid 30 days from login.
    pub refresh_token: String,
    #[schema(example = "Bearer")]
    pub token_type: &'static str,
    #[schema(example = 900)]
    pub expires_in: u64,
}

impl From<TokenPair> for TokenResponse {
    fn from(pair: TokenPair) -> Self {
        Self {
            access_token: pair.access_token,
            refresh_token: pair.refresh_token,
            token_type: "Bearer",
            expires_in: pair.expires_in,
        }
    }
}

/// `Debug` that names the type and hides every field: these carry passwords or tokens,
/// which must never reach a log line.
macro_rules! redacted_debug {
    ($($name:ty),*) => {
        $(impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(concat!(stringify!($name), "(***)"))
            }
        })*
    };
}

redacted_debug!(RegisterRequest, LoginRequest, RefreshRequest, TokenResponse);

/// Collects the field errors of several parses into one 422.
#[derive(Default)]
pub(crate) struct FieldErrors(Vec<FieldError>);

impl FieldErrors {
    pub(crate) fn check<T, E: ToString>(&mut self, field: &str, parsed: Result<T, E>) -> Option<T> {
        parsed
            .map_err(|error| self.0.push(FieldError { field: field.into(), message: error.to_string() }))
            .ok()
    }

    pub(crate) fn finish(self) -> Result<(), ApiError> {
        match self.0.first() {
            None => Ok(()),
            Some(first) => Err(ApiError::Validation {
                detail: format!("invalid {}: {}", first.field, first.message),
                errors: self.0,
            }),
        }
    }
}

/// The fields of a registration, parsed (422 naming every bad field): the API's and the
/// web console's.
pub(crate) fn registration(
    email: &str,
    password: String,
    name: &str,
) -> Result<(Email, NewPassword, CustomerName), ApiError> {
    let mut errors = FieldErrors::default();
    let email = errors.check("/email", Email::parse(email));
    let password = errors.check("/password", NewPassword::parse(password));
    let name = errors.check("/name", CustomerName::parse(name));
    errors.finish()?;
    match (email, password, name) {
        (Some(email), Some(password), Some(name)) => Ok((email, password, name)),
        _ => unreachable!("finish() returns an error whenever a parse failed"),
    }
}

/// Creates a customer account (role `customer`).
#[utoipa::path(post, path = "/v1/auth/register", tag = "auth", request_body = RegisterRequest, responses(
    (status = 201, body = CustomerView),
    (status = 409, description = "Email already registered (`email_taken`)", body = crate::http::error::Problem, content_type = "application/problem+json"),
    (status = 422, description = "Invalid email, name, or a short, long or common password", body = crate::http::error::Problem, content_type = "application/problem+json"),
    ))]
async fn register(
    State(state): State<AppState>,
    Json(request): Json<RegisterRequest>,
) -> Result<(StatusCode, axum::Json<CustomerView>), ApiError> {
    let (email, password, name) = registration(&request.email, request.password, &request.name)?;
    let customer = state.identity.register(email, password, name).await?;
    Ok((StatusCode::CREATED, axum::Json(CustomerView::from_customer(customer)?)))
}

/// Exchanges email and password for an access token and a refresh token. Every failure
/// (unknown email, wrong password) is the same 401; repeated failures get 429.
#[utoipa::path(post, path = "/v1/auth/login", tag = "auth", request_body = LoginRequest, responses(
    (status = 200, body = TokenResponse),
    (status = 401, description = "Invalid email or password", body = crate::http::error::Problem, content_type = "application/problem+json"),
    (status = 429, description = "Too many failed logins for this account or address (or, with COFFER_REDIS_URL set, Redis cannot count them); see Retry-After", body = crate::http::error::Problem, content_type = "application/problem+json"),
    ))]
async fn login(
    State(state): State<AppState>,
    ClientAddress(address): ClientAddress,
    Json(request): Json<LoginRequest>,
) -> Result<axum::Json<TokenResponse>, ApiError> {
    let pair = state.identity.login(&request.email, request.password, address).await?;
    Ok(axum::Json(pair.into()))
}

/// Rotates a refresh token: returns a new pair; the old refresh token is spent. Using a
/// spent token again revokes every token descended from the same login.
#[utoipa::path(post, path = "/v1/auth/refresh", tag = "auth", request_body = RefreshRequest, responses(
    (status = 200, body = TokenResponse),
    (status = 401, description = "Unknown, expired, revoked or already used refresh token", body = crate::http::error::Problem, content_type = "application/problem+json"),
    ))]
async fn refresh(
    State(state): State<AppState>,
    Json(request): Json<RefreshRequest>,
) -> Result<axum::Json<TokenResponse>, ApiError> {
    Ok(axum::Json(state.identity.refresh(&request.refresh_token).await?.into()))
}

/// Revokes the refresh token and every token of its family (this login's session).
/// Access tokens already issued stay valid until they expire (at most 15 minutes).
#[utoipa::path(post, path = "/v1/auth/logout", tag = "auth", request_body = RefreshRequest, responses((status = 204, description = "Logged out (also when the token was unknown or already revoked)")))]
async fn logout(
    State(state): State<AppState>,
    Json(request): Json<RefreshRequest>,
) -> Result<StatusCode, ApiError> {
    state.identity.logout(&request.refresh_token).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The caller's own customer record.
#[utoipa::path(get, path = "/v1/auth/me", tag = "auth", security(("access_token" = [])), responses((status = 200, body = CustomerView)))]
async fn me(user: AuthUser, State(state): State<AppState>) -> Result<axum::Json<CustomerView>, ApiError> {
    let customer = state.identity.customer(user.customer_id).await?;
    Ok(axum::Json(CustomerView::from_customer(customer)?))
}
