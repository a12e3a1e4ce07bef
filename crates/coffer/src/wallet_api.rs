//! The wallet API's operations, shared by both transports: REST
//! (`http::routes::wallets`, `http::routes::payments`) and gRPC (`grpc::wallet`). Each
//! transport decodes its wire format into the requests here and renders the answers
//! back; in between everything happens once — the money rate limit, the
//! `Idempotency-Key` (the answer a key keeps is the REST answer, [`Answered`], which
//! gRPC decodes into its messages), the field checks with their REST field paths, the
//! recipient lookup by email and the history's filters and paging. Errors are
//! [`ApiError`]s, which gRPC maps to status codes, so both transports refuse alike.

use std::sync::Arc;

use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use store::{OperationFilter, PaymentKind, PaymentRow, PaymentStatus};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{
    http::{
        AppState,
        dates::rfc3339,
        error::ApiError,
        idempotency::{self, Answered, IdempotencyKeyHeader},
        paging::{self, Page},
        validate,
    },
    identity::profile::Email,
    payments::{PaymentAnswer, PaymentRequest, service::RenderPaymentAnswer},
    wallets::{
        Answer, Recipient, RenderAnswer, TransferRequest, TransferView, derive_id,
        history::{Operation, OperationKind, OperationStatus},
    },
};

/// Longest transfer description, in characters.
pub const TEXT_LEN_MAX: usize = 200;

/// Longest payment-method or destination token accepted.
const TOKEN_LEN_MAX: usize = 100;

/// The latest time an operation can have: ledger timestamps are stored as signed 64-bit
/// nanoseconds.
pub const TIMESTAMP_MAX: u64 = i64::MAX as u64;

/// A transfer between wallets, as both transports answer it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TransferBody {
    pub id: Uuid,
    #[schema(example = "posted")]
    pub status: String,
    pub amount: u64,
    pub currency: String,
    pub from_wallet_id: Uuid,
    pub to_wallet_id: Uuid,
    pub description: Option<String>,
    pub created_at: String,
}

impl From<TransferView> for TransferBody {
    fn from(view: TransferView) -> Self {
        TransferBody {
            id: view.id,
            status: view.status.to_owned(),
            amount: view.amount,
            currency: view.currency.code().to_owned(),
            from_wallet_id: view.from_wallet_id,
            to_wallet_id: view.to_wallet_id,
            description: view.description,
            created_at: rfc3339(view.created_at),
        }
    }
}

/// A top-up or withdrawal, as both transports answer it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PaymentView {
    pub id: Uuid,
    pub wallet_id: Uuid,
    pub amount: u64,
    pub currency: String,
    /// `pending`, `succeeded` or `failed`.
    pub status: String,
    /// Why it failed: the provider's code (`card_declined`, …) or ours.
    pub failure_code: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl From<&PaymentRow> for PaymentView {
    fn from(payment: &PaymentRow) -> Self {
        PaymentView {
            id: payment.id,
            wallet_id: payment.wallet_id,
            amount: payment.amount,
            currency: payment.currency.clone(),
            status: payment.status.as_str().to_owned(),
            failure_code: payment.failure_code.clone(),
            created_at: rfc3339(payment.created_at),
            updated_at: rfc3339(payment.updated_at),
        }
    }
}

/// Where a transfer goes: a wallet, or a customer by email (their default wallet in the
/// transfer's currency).
#[derive(Debug)]
pub enum To {
    Wallet(Uuid),
    Email(String),
}

/// A transfer to make, as decoded by a transport. `to` is `None` when the request named
/// no recipient, or both kinds (422 on `/to_wallet_id`).
#[derive(Debug)]
pub struct SendMoney {
    pub from_wallet_id: Uuid,
    pub to: Option<To>,
    pub amount: u64,
    pub description: Option<String>,
}

/// Who asks, and under which key: the customer, their `Idempotency-Key`, and what
/// identifies the request to the key (the transport's name for the operation and the
/// request's bytes: the same key with another request is 409 `idempotency_key_reused`).
#[derive(Debug)]
pub struct Keyed<'a> {
    pub customer_id: Uuid,
    pub key: &'a IdempotencyKeyHeader,
    pub route: &'a str,
    pub body: &'a [u8],
}

/// Sends money from one of the customer's wallets: once per key (the ledger ids derive
/// from it), within the customer's money rate limit. The answer is the transfer (201)
/// or the ledger's refusal, remembered under the key.
pub async fn transfer(state: &AppState, keyed: Keyed<'_>, request: SendMoney) -> Result<Answered, ApiError> {
    let Keyed { customer_id, key, route, body } = keyed;
    let id = derive_id(customer_id, "transfer", &key.0);
    state.limits.money.check(customer_id).await?;
    let app = state.clone();
    idempotency::batched(state, customer_id, key, route, body, |key| async move {
        validate::amount("/amount", request.amount, ledger::AMOUNT_MAX)?;
        let description = validate::text("/description", request.description.as_deref(), TEXT_LEN_MAX)?;
        let to = match request.to {
            Some(To::Wallet(wallet)) => Recipient::Wallet(wallet),
            Some(To::Email(email)) => {
                let email =
                    Email::parse(&email).map_err(|invalid| ApiError::field("/to_email", invalid.0))?;
                Recipient::Customer(app.wallets.recipient_by_email(&email).await?)
            }
            None => {
                return Err(ApiError::field(
                    "/to_wallet_id",
                    "give exactly one of `to_wallet_id` and `to_email`",
                ));
            }
        };
        let request = TransferRequest {
            from_wallet_id: request.from_wallet_id,
            to,
            amount: request.amount,
            description,
        };
        let answer = app.wallets.transfer_answered(customer_id, id, request, transfer_answer(key)).await?;
        tracing::info!(transfer_id = %Uuid::from_u128(id), status = answer.status, "transfer answered");
        Ok(answer)
    })
    .await
}

/// How a keyed transfer's answer (the transfer, or the ledger's refusal) looks: rendered
/// in the batch that decides it, and remembered with it.
pub fn transfer_answer(key: store::IdempotencyKey) -> Answer {
    let render: RenderAnswer = Arc::new(|outcome| match outcome {
        Ok(view) => Some(idempotency::success(StatusCode::CREATED, &TransferBody::from(view))),
        Err(error) => idempotency::refusal(&ApiError::from(error)),
    });
    Answer { key, render }
}

/// A card top-up or a withdrawal to a bank account, as decoded by a transport.
#[derive(Debug)]
pub struct Payment {
    pub kind: PaymentKind,
    pub wallet_id: Uuid,
    /// Minor units, more than zero.
    pub amount: u64,
    /// The provider's token: the card (`payment_method`) or the bank account
    /// (`destination`).
    pub token: String,
}

/// Tops up a wallet from a card, or withdraws from it to a bank account: once per key,
/// within the money rate limit. The answer is the payment — 201 `succeeded` or `failed`,
/// 202 `pending` while the provider's answer is not known — or the refusal.
pub async fn pay(state: &AppState, keyed: Keyed<'_>, request: Payment) -> Result<Answered, ApiError> {
    let Keyed { customer_id, key, route, body } = keyed;
    let (label, token_field) = match request.kind {
        PaymentKind::TopUp => ("top-up", "/payment_method"),
        PaymentKind::Withdrawal => ("withdrawal", "/destination"),
    };
    let id = Uuid::from_u128(derive_id(customer_id, label, &key.0));
    state.limits.money.check(customer_id).await?;
    let payments = state.payments.clone();
    idempotency::batched(state, customer_id, key, route, body, |key| async move {
        validate::amount("/amount", request.amount, ledger::AMOUNT_MAX)?;
        check_token(token_field, &request.token)?;
        let Payment { kind, wallet_id, amount, token } = request;
        let request = PaymentRequest { customer_id, wallet_id, id, amount, token };
        let answer = match kind {
            PaymentKind::TopUp => payments.top_up_answered(request, payment_answer(key)).await?,
            PaymentKind::Withdrawal => payments.withdraw_answered(request, payment_answer(key)).await?,
        };
        tracing::info!(payment_id = %id, kind = label, status = answer.status, "payment answered");
        Ok(answer)
    })
    .await
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
fn payment_answer(key: store::IdempotencyKey) -> PaymentAnswer {
    let render: RenderPaymentAnswer = Arc::new(|outcome| match outcome {
        Ok(payment) => {
            let pending = payment.status == PaymentStatus::Pending;
            let status = if pending { StatusCode::ACCEPTED } else { StatusCode::CREATED };
            Some(idempotency::success(status, &PaymentView::from(payment)))
        }
        Err(error) => idempotency::refusal(&ApiError::from(error)),
    });
    PaymentAnswer { key, render }
}

/// Which operations of a history to list, and which page.
#[derive(Debug, Default)]
pub struct HistoryQuery<'a> {
    /// One wallet of the customer's, or all of them.
    pub wallet_id: Option<Uuid>,
    pub kind: Option<OperationKind>,
    pub status: Option<OperationStatus>,
    /// Nanoseconds since the epoch: only operations at or after this time.
    pub from: Option<u64>,
    /// Only operations before this time.
    pub to: Option<u64>,
    pub amount_min: Option<u64>,
    pub amount_max: Option<u64>,
    /// 1 to 100 (default 20).
    pub limit: Option<u32>,
    /// The `next_cursor` of the page before.
    pub cursor: Option<&'a str>,
}

/// One page of the customer's history (of one wallet, or all of theirs), newest first.
/// Someone else's wallet is 404 `wallet_not_found`.
pub async fn history(
    state: &AppState,
    customer_id: Uuid,
    query: HistoryQuery<'_>,
) -> Result<Page<Operation>, ApiError> {
    let limit = paging::limit(query.limit)?;
    let (kind, debits, credits) = match query.kind.and_then(OperationKind::selection) {
        None => (None, true, true),
        Some((note, debits, credits)) => (Some(note), debits, credits),
    };
    let after = paging::after("o1", query.cursor)?;
    let filter = OperationFilter {
        wallet_ids: Vec::new(),
        debits,
        credits,
        kind,
        status: query.status.map(Into::into),
        timestamp_min: query.from.unwrap_or(0),
        timestamp_max: query.to.map_or(TIMESTAMP_MAX, |to| to.saturating_sub(1)),
        amount_min: query.amount_min.unwrap_or(0),
        amount_max: query.amount_max.unwrap_or(ledger::AMOUNT_MAX),
        reversed: true,
        after,
        limit: limit + 1,
    };
    let operations = state.wallets.history(customer_id, query.wallet_id, filter).await?;
    Ok(Page::of(
        operations,
        limit,
        |operation| paging::cursor("o1", &operation.position),
        |operation| operation,
    ))
}
