//! Card top-ups and withdrawals: `POST /v1/wallets/{id}/top-ups`,
//! `POST /v1/wallets/{id}/withdrawals`, `GET /v1/top-ups/{id}`, `GET /v1/withdrawals/{id}`.
//!
//! A top-up or withdrawal is a resource with a status: `201` with `succeeded` or `failed`
//! (and the provider's `failure_code`) when the provider answered, `202` with `pending`
//! when its answer is not known yet — the recovery worker finishes it, and
//! `GET /v1/top-ups/{id}` shows the outcome.

use axum::{
    Router,
    extract::State,
    http::StatusCode,
    response::Response,
    routing::{get, post},
};
use serde::Deserialize;
use store::PaymentKind;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::http::{
    AppState,
    error::ApiError,
    extract::{Path, RawJson},
    idempotency::{Answered, IdempotencyKeyHeader},
};
use crate::{
    http::caller::AuthUser,
    payments::PaymentError,
    wallet_api::{self, Keyed, Payment, PaymentView},
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/wallets/{id}/top-ups", post(create_top_up))
        .route("/v1/wallets/{id}/withdrawals", post(create_withdrawal))
        .route("/v1/top-ups/{id}", get(get_top_up))
        .route("/v1/withdrawals/{id}", get(get_withdrawal))
}

/// A card top-up: the card is tokenised by the gateway on the client side.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTopUp {
    /// Minor units, more than zero.
    pub amount: u64,
    /// The gateway's token for the card, e.g. `tok_visa` (with the mock provider:
    /// `tok_chargeDeclined`, `tok_insufficientFunds` and `tok_timeout` too).
    #[schema(example = "tok_visa")]
    pub payment_method: String,
}

/// A withdrawal to a tokenised bank account.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewWithdrawal {
    pub amount: u64,
    /// The payout provider's token for the bank account (mock: `ba_fail` is refused,
    /// `ba_timeout` times out).
    #[schema(example = "ba_checking")]
    pub destination: String,
}

impl From<PaymentError> for ApiError {
    fn from(error: PaymentError) -> Self {
        match error {
            PaymentError::Wallet(error) => error.into(),
            PaymentError::NotFound => {
                ApiError::rejected(StatusCode::NOT_FOUND, "payment_not_found", "no such payment")
            }
            PaymentError::Store(error) => error.into(),
        }
    }
}

/// Top up a wallet from a card.
#[utoipa::path(post, path = "/v1/wallets/{id}/top-ups", tag = "payments",
    request_body = NewTopUp,
    params(("id" = Uuid, Path, description = "Wallet id"), ("Idempotency-Key" = String, Header)),
    security(("access_token" = [])),
    responses(
        (status = 201, description = "Succeeded or failed (see status)", body = PaymentView),
        (status = 202, description = "Pending: the gateway's answer is not known yet", body = PaymentView),
        (status = 404, description = "wallet_not_found", body = crate::http::error::Problem, content_type = "application/problem+json"),
    ))]
async fn create_top_up(
    user: AuthUser,
    key: IdempotencyKeyHeader,
    State(state): State<AppState>,
    Path(wallet_id): Path<Uuid>,
    body: RawJson<NewTopUp>,
) -> Result<Response, ApiError> {
    let route = format!("POST /v1/wallets/{wallet_id}/top-ups");
    let RawJson { value: request, bytes } = body;
    let keyed = Keyed { customer_id: user.customer_id, key: &key, route: &route, body: &bytes };
    let request = Payment {
        kind: PaymentKind::TopUp,
        wallet_id,
        amount: request.amount,
        token: request.payment_method,
    };
    wallet_api::pay(&state, keyed, request).await.map(Answered::into_response)
}

/// Withdraw from a wallet to a bank account.
#[utoipa::path(post, path = "/v1/wallets/{id}/withdrawals", tag = "payments",
    request_body = NewWithdrawal,
    params(("id" = Uuid, Path, description = "Wallet id"), ("Idempotency-Key" = String, Header)),
    security(("access_token" = [])),
    responses(
        (status = 201, description = "Succeeded or failed (see status)", body = PaymentView),
        (status = 202, description = "Pending: the provider's answer is not known yet", body = PaymentView),
        (status = 404, description = "wallet_not_found", body = crate::http::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "insufficient_funds or invalid fields", body = crate::http::error::Problem, content_type = "application/problem+json"),
    ))]
async fn create_withdrawal(
    user: AuthUser,
    key: IdempotencyKeyHeader,
    State(state): State<AppState>,
    Path(wallet_id): Path<Uuid>,
    body: RawJson<NewWithdrawal>,
) -> Result<Response, ApiError> {
    let route = format!("POST /v1/wallets/{wallet_id}/withdrawals");
    let RawJson { value: request, bytes } = body;
    let keyed = Keyed { customer_id: user.customer_id, key: &key, route: &route, body: &bytes };
    let request = Payment {
        kind: PaymentKind::Withdrawal,
        wallet_id,
        amount: request.amount,
        token: request.destination,
    };
    wallet_api::pay(&state, keyed, request).await.map(Answered::into_response)
}

/// One of my top-ups.
#[utoipa::path(get, path = "/v1/top-ups/{id}", tag = "payments",
    params(("id" = Uuid, Path)), security(("access_token" = [])),
    responses((status = 200, body = PaymentView)))]
async fn get_top_up(
    user: AuthUser,
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> Result<axum::Json<PaymentView>, ApiError> {
    Ok(axum::Json(PaymentView::from(&state.payments.get(PaymentKind::TopUp, user.customer_id, id).await?)))
}

/// One of my withdrawals.
#[utoipa::path(get, path = "/v1/withdrawals/{id}", tag = "payments",
    params(("id" = Uuid, Path)), security(("access_token" = [])),
    responses((status = 200, body = PaymentView)))]
async fn get_withdrawal(
    user: AuthUser,
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> Result<axum::Json<PaymentView>, ApiError> {
    Ok(axum::Json(PaymentView::from(
        &state.payments.get(PaymentKind::Withdrawal, user.customer_id, id).await?,
    )))
}
