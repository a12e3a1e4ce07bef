//! The wallet API: `/v1/wallets`, `/v1/transfers`, `/v1/operations`. Customers only see
//! and touch their own objects: someone else's wallet or transfer is a 404.
//!
//! Every POST here needs an `Idempotency-Key` (see [`crate::http::idempotency`]); the ledger
//! ids it writes are derived from the key, so a retry never moves money twice.

use axum::{
    Router,
    extract::State,
    http::StatusCode,
    response::Response,
    routing::{get, post},
};
use serde::{Deserialize, Serialize};
use store::{OperationFilter, WalletRow};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::http::{
    AppState,
    dates::{instant, rfc3339},
    error::ApiError,
    export,
    extract::{Path, Query, RawJson},
    idempotency::{self, Answered, IdempotencyKeyHeader},
    paging::{self, PAGE_LIMIT_MAX, Page, PageQuery},
    validate,
};
use crate::{
    http::caller::{AdminUser, AuthUser},
    wallet_api::{self, HistoryQuery, Keyed, SendMoney, TIMESTAMP_MAX, To, TransferBody, transfer_answer},
    wallets::{
        Balance, Currency, WalletError, WalletKind, derive_id,
        history::{CounterpartyKind, Operation, OperationKind, OperationStatus},
    },
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/wallets", post(create_wallet).get(list_wallets))
        .route("/v1/wallets/{id}", get(get_wallet))
        .route("/v1/wallets/{id}/operations", get(wallet_operations))
        .route("/v1/transfers", post(create_transfer))
        .route("/v1/transfers/{id}", get(get_transfer))
        .route("/v1/transfers/{id}/reversals", post(reverse_transfer))
        .route("/v1/operations", get(all_operations))
        .route("/v1/exports/operations.csv", get(export_operations))
}

/// Longest wallet name, in characters.
const TEXT_LEN_MAX: usize = 200;

/// A wallet to open.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewWalletBody {
    /// ISO 4217 code: USD, EUR, GBP, JPY, KES, RWF or NGN.
    #[schema(example = "USD")]
    pub currency: String,
    #[serde(rename = "type", default = "default_kind")]
    pub kind: WalletKind,
    pub name: Option<String>,
    /// For `credit_card` wallets: how far below zero it may go, in minor units.
    #[serde(default)]
    pub credit_limit: u64,
}

fn default_kind() -> WalletKind {
    WalletKind::Wallet
}

/// Balances in minor units.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct BalanceView {
    pub posted: i64,
    pub pending: i64,
    pub available: i64,
}

/// A wallet.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct WalletView {
    pub id: Uuid,
    pub currency: String,
    #[serde(rename = "type")]
    pub kind: WalletKind,
    pub name: Option<String>,
    pub credit_limit: u64,
    pub balance: BalanceView,
    /// RFC 3339, UTC.
    pub created_at: String,
}

/// A transfer to make: to a wallet by id, or to a customer by email (their default
/// wallet in this currency). Exactly one of `to_wallet_id` and `to_email`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTransferBody {
    pub from_wallet_id: Uuid,
    pub to_wallet_id: Option<Uuid>,
    pub to_email: Option<String>,
    /// Minor units, more than zero.
    pub amount: u64,
    pub description: Option<String>,
}

/// Who is on the other side of an operation.
#[derive(Debug, Serialize, ToSchema)]
pub struct Counterparty {
    /// `wallet`, or the system account's role.
    #[serde(rename = "type")]
    pub kind: CounterpartyKind,
    pub wallet_id: Option<Uuid>,
}

/// One line of a wallet's history, shaped like a balance transaction.
#[derive(Debug, Serialize, ToSchema)]
pub struct OperationView {
    /// The ledger transfer's id.
    pub id: Uuid,
    pub wallet_id: Uuid,
    #[serde(rename = "type")]
    pub kind: OperationKind,
    /// Positive: money in; negative: money out. Minor units.
    pub amount: i64,
    pub currency: String,
    pub status: OperationStatus,
    pub counterparty: Counterparty,
    pub description: Option<String>,
    /// The wallet's posted balance right after this operation.
    pub balance_after: Option<i64>,
    /// For a `conversion`: both of its legs (the other one is a line of the other
    /// wallet's history).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conversion: Option<crate::wallets::history::Conversion>,
    pub created_at: String,
}

/// The kinds of operation a history can be filtered by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OperationType {
    TransferIn,
    TransferOut,
    TopUp,
    Withdrawal,
    Fee,
    Reversal,
    /// A payment to a merchant (`POST /v1/wallets/{id}/payments`).
    Payment,
    /// A currency conversion's leg (`POST /v1/fx/quotes/{id}/execute`).
    Conversion,
}

impl OperationType {
    fn kind(self) -> OperationKind {
        match self {
            Self::TransferIn => OperationKind::TransferIn,
            Self::TransferOut => OperationKind::TransferOut,
            Self::TopUp => OperationKind::TopUp,
            Self::Withdrawal => OperationKind::Withdrawal,
            Self::Fee => OperationKind::Fee,
            Self::Reversal => OperationKind::Reversal,
            Self::Payment => OperationKind::Payment,
            Self::Conversion => OperationKind::Conversion,
        }
    }
}

/// Paging and filters of a history.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct OperationsQuery {
    pub limit: Option<u32>,
    pub cursor: Option<String>,
    #[serde(rename = "type")]
    #[param(inline)]
    pub kind: Option<OperationType>,
    #[param(inline)]
    pub status: Option<OperationStatus>,
    /// Only operations at or after this time (RFC 3339).
    pub from: Option<String>,
    /// Only operations before this time (RFC 3339).
    pub to: Option<String>,
    pub amount_min: Option<u64>,
    pub amount_max: Option<u64>,
}

fn wallet_view(wallet: &WalletRow) -> WalletView {
    let balance = Balance::of(wallet);
    WalletView {
        id: wallet.id,
        currency: wallet.currency.clone(),
        kind: wallet.wallet_type.into(),
        name: wallet.name.clone(),
        credit_limit: wallet.credit_limit,
        balance: BalanceView {
            posted: balance.posted,
            pending: balance.pending,
            available: balance.available,
        },
        created_at: rfc3339(wallet.created_at),
    }
}

impl From<WalletError> for ApiError {
    fn from(error: WalletError) -> Self {
        use StatusCode as S;
        let detail = error.to_string();
        match error {
            WalletError::WalletNotFound => ApiError::rejected(S::NOT_FOUND, "wallet_not_found", detail),
            WalletError::TransferNotFound => ApiError::rejected(S::NOT_FOUND, "transfer_not_found", detail),
            WalletError::RecipientNotFound => ApiError::rejected(S::NOT_FOUND, "recipient_not_found", detail),
            WalletError::CurrencyNotSupported => {
                ApiError::rejected(S::UNPROCESSABLE_ENTITY, "currency_not_supported", detail)
            }
            WalletError::CurrencyMismatch => {
                ApiError::rejected(S::UNPROCESSABLE_ENTITY, "currency_mismatch", detail)
            }
            WalletError::SameWallet => ApiError::rejected(S::UNPROCESSABLE_ENTITY, "same_wallet", detail),
            WalletError::InsufficientFunds => {
                ApiError::rejected(S::UNPROCESSABLE_ENTITY, "insufficient_funds", detail)
            }
            WalletError::TooManyWallets(_) => ApiError::rejected(S::CONFLICT, "too_many_wallets", detail),
            WalletError::TooManyMonitors(_) => ApiError::rejected(S::CONFLICT, "too_many_monitors", detail),
            WalletError::MonitorNotFound => ApiError::rejected(S::NOT_FOUND, "monitor_not_found", detail),
            WalletError::CreditLimitNotAllowed => ApiError::field("/credit_limit", detail),
            WalletError::KeyReused => ApiError::rejected(S::CONFLICT, "idempotency_key_reused", detail),
            WalletError::FailedBefore(_) => ApiError::rejected(S::CONFLICT, "transfer_failed_before", detail),
            WalletError::Commit(error) => error.into(),
            WalletError::Store(error) => error.into(),
            WalletError::Ledger(answer) => ApiError::Internal(anyhow::anyhow!("ledger answered {answer}")),
        }
    }
}

/// Open a wallet.
#[utoipa::path(post, path = "/v1/wallets", tag = "wallets",
    request_body = NewWalletBody,
    params(("Idempotency-Key" = String, Header, description = "Unique per request; retries reuse it")),
    security(("access_token" = [])),
    responses(
        (status = 201, body = WalletView),
        (status = 400, description = "Missing Idempotency-Key or malformed body", body = crate::http::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "Idempotency conflict, or too many wallets", body = crate::http::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Unsupported currency or invalid fields", body = crate::http::error::Problem, content_type = "application/problem+json"),
    ))]
async fn create_wallet(
    user: AuthUser,
    key: IdempotencyKeyHeader,
    State(state): State<AppState>,
    body: RawJson<NewWalletBody>,
) -> Result<Response, ApiError> {
    let RawJson { value: request, bytes } = body;
    let keyed = Keyed { customer_id: user.customer_id, key: &key, route: "POST /v1/wallets", body: &bytes };
    open_wallet(&state, keyed, request).await
}

/// Opens a wallet once per key (its id derives from the key: [`opened_wallet_id`]),
/// within the money rate limit; the answer is the wallet (201) or the refusal, as
/// remembered under the key. The REST route and the web console both open wallets here.
pub async fn open_wallet(
    state: &AppState,
    keyed: Keyed<'_>,
    request: NewWalletBody,
) -> Result<Response, ApiError> {
    let Keyed { customer_id, key, route, body } = keyed;
    let wallets = state.wallets.clone();
    let id = opened_wallet_id(customer_id, key);
    state.limits.money.check(customer_id).await?;
    idempotency::once(state, customer_id, key, route, body, || async move {
        let currency = Currency::parse(&request.currency).ok_or_else(|| {
            ApiError::rejected(
                StatusCode::UNPROCESSABLE_ENTITY,
                "currency_not_supported",
                format!("`{}` is not a supported currency", request.currency),
            )
        })?;
        let name = validate::text("/name", request.name.as_deref(), TEXT_LEN_MAX)?;
        if request.credit_limit > crate::wallets::service::CREDIT_LIMIT_MAX {
            return Err(ApiError::field("/credit_limit", "too large"));
        }
        let wallet = wallets
            .create(customer_id, id, currency, request.kind.into(), name, request.credit_limit)
            .await?;
        Ok((StatusCode::CREATED, serde_json::to_value(wallet_view(&wallet)).expect("serialisable")))
    })
    .await
}

/// The id of the wallet that opening one under `key` makes.
pub fn opened_wallet_id(customer_id: Uuid, key: &IdempotencyKeyHeader) -> u128 {
    derive_id(customer_id, "wallet", &key.0)
}

/// My wallets, oldest first.
#[utoipa::path(get, path = "/v1/wallets", tag = "wallets", params(PageQuery),
    security(("access_token" = [])),
    responses((status = 200, body = Page<WalletView>)))]
async fn list_wallets(
    user: AuthUser,
    State(state): State<AppState>,
    Query(query): Query<PageQuery>,
) -> Result<axum::Json<Page<WalletView>>, ApiError> {
    let limit = paging::limit(query.limit)?;
    let after = paging::after("w1", query.cursor.as_deref())?;
    let rows = state.wallets.list(user.customer_id, after, limit + 1).await?;
    Ok(axum::Json(Page::of(
        rows,
        limit,
        |wallet| paging::cursor("w1", &(wallet.created_at, wallet.id)),
        |wallet| wallet_view(&wallet),
    )))
}

/// One of my wallets, with balances.
#[utoipa::path(get, path = "/v1/wallets/{id}", tag = "wallets",
    params(("id" = Uuid, Path)), security(("access_token" = [])),
    responses((status = 200, body = WalletView)))]
async fn get_wallet(
    user: AuthUser,
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> Result<axum::Json<WalletView>, ApiError> {
    Ok(axum::Json(wallet_view(&state.wallets.owned(user.customer_id, id).await?)))
}

/// Send money from one of my wallets to another wallet, or to a customer by email.
#[utoipa::path(post, path = "/v1/transfers", tag = "wallets",
    request_body = NewTransferBody,
    params(("Idempotency-Key" = String, Header, description = "Unique per transfer; retries reuse it")),
    security(("access_token" = [])),
    responses(
        (status = 201, body = TransferBody),
        (status = 400, description = "Missing Idempotency-Key or malformed body", body = crate::http::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "wallet_not_found or recipient_not_found", body = crate::http::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "insufficient_funds, same_wallet, currency_mismatch or invalid fields", body = crate::http::error::Problem, content_type = "application/problem+json"),
    ))]
async fn create_transfer(
    user: AuthUser,
    key: IdempotencyKeyHeader,
    State(state): State<AppState>,
    body: RawJson<NewTransferBody>,
) -> Result<Response, ApiError> {
    let RawJson { value: request, bytes } = body;
    let to = match (request.to_wallet_id, request.to_email) {
        (Some(wallet), None) => Some(To::Wallet(wallet)),
        (None, Some(email)) => Some(To::Email(email)),
        _ => None,
    };
    let request = SendMoney {
        from_wallet_id: request.from_wallet_id,
        to,
        amount: request.amount,
        description: request.description,
    };
    let keyed = Keyed { customer_id: user.customer_id, key: &key, route: "POST /v1/transfers", body: &bytes };
    wallet_api::transfer(&state, keyed, request).await.map(Answered::into_response)
}

/// A transfer I sent or received.
#[utoipa::path(get, path = "/v1/transfers/{id}", tag = "wallets",
    params(("id" = Uuid, Path)), security(("access_token" = [])),
    responses((status = 200, body = TransferBody)))]
async fn get_transfer(
    user: AuthUser,
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> Result<axum::Json<TransferBody>, ApiError> {
    match state.wallets.transfer_view(user.customer_id, id).await? {
        Some(view) => Ok(axum::Json(TransferBody::from(view))),
        None => Err(ApiError::rejected(StatusCode::NOT_FOUND, "transfer_not_found", "no such transfer")),
    }
}

/// Reverse a transfer (admins): the recipient's wallet pays the amount back to the
/// sender's, as a new transfer of type `reversal`. Once per transfer.
#[utoipa::path(post, path = "/v1/transfers/{id}/reversals", tag = "wallets",
    params(("id" = Uuid, Path, description = "The transfer to reverse"), ("Idempotency-Key" = String, Header)),
    security(("admin_api_key" = []), ("access_token" = [])),
    responses(
        (status = 201, body = TransferBody),
        (status = 403, description = "Not an admin", body = crate::http::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "transfer_not_found", body = crate::http::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "insufficient_funds: the recipient no longer holds the amount", body = crate::http::error::Problem, content_type = "application/problem+json"),
    ))]
async fn reverse_transfer(
    admin: AdminUser,
    key: IdempotencyKeyHeader,
    State(state): State<AppState>,
    Path(original): Path<Uuid>,
) -> Result<Response, ApiError> {
    // The admin API key acts as one owner of idempotency keys (the nil id).
    let owner = admin.customer_id.unwrap_or(Uuid::nil());
    let route = format!("POST /v1/transfers/{original}/reversals");
    let wallets = state.wallets.clone();
    idempotency::once_batched(&state, owner, &key, &route, b"", |key| async move {
        let answer = wallets.reverse_answered(original, transfer_answer(key)).await?;
        tracing::info!(transfer_id = %original, status = answer.status, "reversal answered");
        Ok(answer)
    })
    .await
}

/// The history of one of my wallets, newest first.
#[utoipa::path(get, path = "/v1/wallets/{id}/operations", tag = "wallets",
    params(("id" = Uuid, Path), OperationsQuery), security(("access_token" = [])),
    responses((status = 200, body = Page<OperationView>)))]
async fn wallet_operations(
    user: AuthUser,
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    Query(query): Query<OperationsQuery>,
) -> Result<axum::Json<Page<OperationView>>, ApiError> {
    operations(&state, user, Some(id), query).await
}

/// The history of all my wallets, newest first.
#[utoipa::path(get, path = "/v1/operations", tag = "wallets",
    params(OperationsQuery), security(("access_token" = [])),
    responses((status = 200, body = Page<OperationView>)))]
async fn all_operations(
    user: AuthUser,
    State(state): State<AppState>,
    Query(query): Query<OperationsQuery>,
) -> Result<axum::Json<Page<OperationView>>, ApiError> {
    operations(&state, user, None, query).await
}

async fn operations(
    state: &AppState,
    user: AuthUser,
    wallet_id: Option<Uuid>,
    query: OperationsQuery,
) -> Result<axum::Json<Page<OperationView>>, ApiError> {
    let from = query.from.as_deref().map(|t| instant("from", t)).transpose()?;
    let to = query.to.as_deref().map(|t| instant("to", t)).transpose()?;
    let query = HistoryQuery {
        wallet_id,
        kind: query.kind.map(OperationType::kind),
        status: query.status,
        from,
        to,
        amount_min: query.amount_min,
        amount_max: query.amount_max,
        limit: query.limit,
        cursor: query.cursor.as_deref(),
    };
    let page = wallet_api::history(state, user.customer_id, query).await?;
    Ok(axum::Json(Page {
        data: page.data.into_iter().map(operation_view).collect(),
        has_more: page.has_more,
        next_cursor: page.next_cursor,
    }))
}

fn operation_view(operation: Operation) -> OperationView {
    OperationView {
        id: operation.transfer_id,
        wallet_id: operation.wallet_id,
        kind: operation.kind,
        amount: operation.amount,
        currency: operation.currency,
        status: operation.status,
        counterparty: Counterparty {
            kind: operation.counterparty,
            wallet_id: operation.counterparty_wallet_id,
        },
        description: operation.description,
        balance_after: operation.balance_after,
        conversion: operation.conversion,
        created_at: rfc3339(operation.timestamp),
    }
}

/// Operations one CSV export holds at most.
const EXPORT_ROWS_MAX: usize = 100_000;

/// All my wallets' operations as CSV, newest first (amounts signed, in minor units).
#[utoipa::path(get, path = "/v1/exports/operations.csv", tag = "reports", security(("access_token" = [])),
    responses((status = 200, description = "CSV", content_type = "text/csv", body = String)))]
async fn export_operations(
    user: AuthUser,
    State(state): State<AppState>,
) -> Result<axum::response::Response, ApiError> {
    operations_csv(&state, user.customer_id).await
}

/// The customer's whole history as a CSV download (newest first, at most
/// `EXPORT_ROWS_MAX` rows): the REST export and the web console's.
pub async fn operations_csv(
    state: &AppState,
    customer_id: Uuid,
) -> Result<axum::response::Response, ApiError> {
    let mut out = String::from(
        "id,created_at,wallet_id,type,amount,currency,status,counterparty,description,balance_after\n",
    );
    let mut after = None;
    let mut rows = 0;
    while rows < EXPORT_ROWS_MAX {
        let filter = OperationFilter {
            wallet_ids: Vec::new(),
            debits: true,
            credits: true,
            kind: None,
            status: None,
            timestamp_min: 0,
            timestamp_max: TIMESTAMP_MAX,
            amount_min: 0,
            amount_max: ledger::AMOUNT_MAX,
            reversed: true,
            after,
            limit: PAGE_LIMIT_MAX,
        };
        let page = state.wallets.history(customer_id, None, filter).await?;
        if page.is_empty() {
            break;
        }
        rows += page.len();
        after = page.last().map(|operation| operation.position);
        for view in page.into_iter().map(operation_view) {
            let fields = [
                view.id.to_string(),
                view.created_at,
                view.wallet_id.to_string(),
                view.kind.as_str().to_owned(),
                view.amount.to_string(),
                view.currency,
                view.status.as_str().to_owned(),
                view.counterparty
                    .wallet_id
                    .map_or_else(|| view.counterparty.kind.as_str().to_owned(), |id| id.to_string()),
                view.description.unwrap_or_default(),
                view.balance_after.map(|balance| balance.to_string()).unwrap_or_default(),
            ];
            export::push_csv_line(&mut out, &fields);
        }
    }
    Ok(export::csv_response("operations.csv", out))
}
