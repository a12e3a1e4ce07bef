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
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use store::{PaymentKind, PaymentRow, PaymentStatus};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::http::{
    AppState,
    dates::rfc3339,
    error::ApiError,
    extract::{Path, RawJson},
    idempotency::{self, IdempotencyKeyHeader},
    validate,
};
use crate::{
    http::caller::AuthUser,
    payments::{PaymentAnswer, PaymentError, PaymentRequest, service::RenderPaymentAnswer},
    wallets::derive_id,
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/wallets/{id}/top-ups", post(create_top_up))
        .route("/v1/wallets/{id}/withdrawals", post(create_withdrawal))
        .route("/v1/top-ups/{id}", get(get_top_up))
        .route("/v1/withdrawals/{id}", get(get_withdrawal))
}

/// Longest payment-method or destination token accepted.
const TOKEN_LEN_MAX: usize = 100;

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

/// A top-up or withdrawal.
#[derive(Debug, Serialize, ToSchema)]
pub struct PaymentView {
    pub id: Uuid,
    pub wallet_id: Uuid,
    pub amount: u64,
    pub currency: String,
    /// `pending`, `succeeded` or `failed`.
    pub status: &'static str,
    /// Why it failed: the provider's code (`card_declined`, …) or ours.
    pub failure_code: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

fn view(payment: &PaymentRow) -> PaymentView {
    PaymentView {
        id: payment.id,
        wallet_id: payment.wallet_id,
        amount: payment.amount,
        currency: payment.currency.clone(),
        status: payment.status.as_str(),
        failure_code: payment.failure_code.clone(),
        created_at: rfc3339(payment.created_at),
        updated_at: rfc3339(payment.updated_at),
    }
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

fn check_token(field: &str, token: &str) -> Result<(), ApiError> {
    if token.is_empty()
        || token.len() > TOKEN_LEN_MAX
        || !token.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        return Err(ApiError::field(
            field,
            format!("must be a provider token: 1 to {TOKEN_LEN_MAX} letters, digits or _"),
        ));
    }
    Ok(())
}

/// How a keyed payment's answer looks (the payment, `202` while pending, or the refusal):
/// rendered in the batch that decides it, and remembered with it.
fn answer(key: store::IdempotencyKey) -> PaymentAnswer {
    let render: RenderPaymentAnswer = Arc::new(|outcome| match outcome {
        Ok(payment) => {
            let pending = payment.status == PaymentStatus::Pending;
            let status = if pending { StatusCode::ACCEPTED } else { StatusCode::CREATED };
            Some(idempotency::success(status, &view(payment)))
        }
        Err(error) => idempotency::refusal(&ApiError::from(error)),
    });
    PaymentAnswer { key, render }
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
    let payments = state.payments.clone();
    let id = Uuid::from_u128(derive_id(user.customer_id, "top-up", &key.0));
    state.money_rate_limit.check(user.customer_id)?;
    let RawJson { value: request, bytes } = body;
    idempotency::once_batched(&state, user.customer_id, &key, &route, &bytes, |key| async move {
        validate::amount("/amount", request.amount, ledger::AMOUNT_MAX)?;
        check_token("/payment_method", &request.payment_method)?;
        let (customer_id, amount, token) = (user.customer_id, request.amount, request.payment_method);
        let request = PaymentRequest { customer_id, wallet_id, id, amount, token };
        let answer = payments.top_up_answered(request, answer(key)).await?;
        tracing::info!(top_up_id = %id, status = answer.status, "top-up answered");
        Ok(answer)
    })
    .await
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
    let payments = state.payments.clone();
    let id = Uuid::from_u128(derive_id(user.customer_id, "withdrawal", &key.0));
    state.money_rate_limit.check(user.customer_id)?;
    let RawJson { value: request, bytes } = body;
    idempotency::once_batched(&state, user.customer_id, &key, &route, &bytes, |key| async move {
        validate::amount("/amount", request.amount, ledger::AMOUNT_MAX)?;
        check_token("/destination", &request.destination)?;
        let (customer_id, amount, token) = (user.customer_id, request.amount, request.destination);
        let request = PaymentRequest { customer_id, wallet_id, id, amount, token };
        let answer = payments.withdraw_answered(request, answer(key)).await?;
        tracing::info!(withdrawal_id = %id, status = answer.status, "withdrawal answered");
        Ok(answer)
    })
    .await
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
    Ok(axum::Json(view(&state.payments.get(PaymentKind::TopUp, user.customer_id, id).await?)))
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
    Ok(axum::Json(view(&state.payments.get(PaymentKind::Withdrawal, user.customer_id, id).await?)))
}
