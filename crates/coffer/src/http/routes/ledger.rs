//! The ledger API (`/v1/ledger/*`): TigerBeetle-shaped batches of accounts and
//! transfers, lookups, an account's transfers and its balance history. Admin key only.
//!
//! Handlers only translate: JSON ⇄ ledger types, and results back in order. The checks,
//! the submission to the commit pipeline and the history paging are in
//! [`crate::ledger_api`], shared with the gRPC `LedgerService`. Ids are UUID strings (the
//! ledger's u128 ids), amounts JSON integers in minor units, `timestamp` the ledger's
//! nanosecond clock (it orders events and is unique, which RFC 3339 text would hide).

use axum::{
    Extension, Router,
    extract::{DefaultBodyLimit, State},
    routing::{get, post},
};
use ledger::{AccountFlags, TransferFlags};
use serde::{Deserialize, Serialize, de::IgnoredAny};
use utoipa::ToSchema;
use uuid::Uuid;

pub use crate::ledger_api::{HistoryQuery, Order, Side};
use crate::{
    http::{
        AppState,
        caller::AdminAuth,
        error::{ApiError, FieldError},
        extract::{BodyLimit, JsonBatch, Path, Query},
        paging::Page,
    },
    ledger_api::{self, check_batch_len, reject},
};

/// Bytes a batch request may carry: a full batch of 8,190 transfers with every field set
/// is about 4.5 MB of compact JSON; room for some whitespace, and a cap on abuse.
pub const LEDGER_BODY_BYTES_MAX: usize = 8 * 1024 * 1024;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/ledger/accounts", post(create_accounts))
        .route("/v1/ledger/transfers", post(create_transfers))
        .layer(DefaultBodyLimit::max(LEDGER_BODY_BYTES_MAX))
        .layer(Extension(BodyLimit(LEDGER_BODY_BYTES_MAX)))
        .route("/v1/ledger/accounts/{id}", get(get_account))
        .route("/v1/ledger/accounts/{id}/transfers", get(list_account_transfers))
        .route("/v1/ledger/accounts/{id}/balances", get(list_account_balances))
        .route("/v1/ledger/transfers/{id}", get(get_transfer))
        .route("/v1/ledger/chain/head", get(chain_head))
}

macro_rules! flag_names {
    ($(#[$doc:meta])* $name:ident => $flags:ty { $($variant:ident = $flag:ident,)* }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $($variant,)*
        }

        impl $name {
            fn flag(self) -> $flags {
                match self {
                    $(Self::$variant => <$flags>::$flag,)*
                }
            }

            fn collect(flags: &[Self]) -> $flags {
                flags.iter().fold(<$flags>::empty(), |all, flag| all.union(flag.flag()))
            }

            fn list(flags: $flags) -> Vec<Self> {
                [$(Self::$variant),*].into_iter().filter(|name| flags.contains(name.flag())).collect()
            }
        }
    };
}

flag_names! {
    /// An account flag.
    AccountFlag => AccountFlags {
        Linked = LINKED,
        DebitsMustNotExceedCredits = DEBITS_MUST_NOT_EXCEED_CREDITS,
        CreditsMustNotExceedDebits = CREDITS_MUST_NOT_EXCEED_DEBITS,
        History = HISTORY,
        Closed = CLOSED,
    }
}

flag_names! {
    /// A transfer flag.
    TransferFlag => TransferFlags {
        Linked = LINKED,
        Pending = PENDING,
        PostPendingTransfer = POST_PENDING_TRANSFER,
        VoidPendingTransfer = VOID_PENDING_TRANSFER,
        BalancingDebit = BALANCING_DEBIT,
        BalancingCredit = BALANCING_CREDIT,
        ClosingDebit = CLOSING_DEBIT,
        ClosingCredit = CLOSING_CREDIT,
    }
}

/// An account to create. Balances and `timestamp` belong to the ledger and are refused.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAccount {
    /// Client-chosen; creating the same account again answers `exists`.
    pub id: Uuid,
    /// The ledger (one per currency or asset). Required, non-zero.
    #[serde(default)]
    pub ledger: u32,
    /// The account's type, chosen by the client. Required, non-zero.
    #[serde(default)]
    pub code: u16,
    #[serde(default)]
    pub flags: Vec<AccountFlag>,
    #[serde(default)]
    pub user_data_128: Uuid,
    #[serde(default)]
    pub user_data_64: u64,
    #[serde(default)]
    pub user_data_32: u32,
    #[serde(default)]
    #[schema(ignore)]
    debits_pending: Option<IgnoredAny>,
    #[serde(default)]
    #[schema(ignore)]
    debits_posted: Option<IgnoredAny>,
    #[serde(default)]
    #[schema(ignore)]
    credits_pending: Option<IgnoredAny>,
    #[serde(default)]
    #[schema(ignore)]
    credits_posted: Option<IgnoredAny>,
    #[serde(default)]
    #[schema(ignore)]
    timestamp: Option<IgnoredAny>,
}

/// A transfer to create. Fields left out are zero, as in TigerBeetle (a post or void may
/// leave out the accounts, amount, ledger and code to take them from the pending transfer).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTransfer {
    /// Client-chosen; it is the idempotency key: sending it again answers `exists`.
    pub id: Uuid,
    #[serde(default)]
    pub debit_account_id: Uuid,
    #[serde(default)]
    pub credit_account_id: Uuid,
    /// Minor units, at most 9223372036854775807 (which, on a post, means "all of it").
    #[serde(default)]
    pub amount: u64,
    /// The pending transfer that a post or void resolves.
    #[serde(default)]
    pub pending_id: Uuid,
    /// Seconds until a pending transfer expires; zero is never.
    #[serde(default)]
    pub timeout: u32,
    #[serde(default)]
    pub ledger: u32,
    #[serde(default)]
    pub code: u16,
    #[serde(default)]
    pub flags: Vec<TransferFlag>,
    #[serde(default)]
    pub user_data_128: Uuid,
    #[serde(default)]
    pub user_data_64: u64,
    #[serde(default)]
    pub user_data_32: u32,
    #[serde(default)]
    #[schema(ignore)]
    timestamp: Option<IgnoredAny>,
}

/// An account with its balances.
#[derive(Debug, Serialize, ToSchema)]
pub struct AccountView {
    pub id: Uuid,
    pub ledger: u32,
    pub code: u16,
    pub flags: Vec<AccountFlag>,
    pub user_data_128: Uuid,
    pub user_data_64: u64,
    pub user_data_32: u32,
    pub debits_pending: u64,
    pub debits_posted: u64,
    pub credits_pending: u64,
    pub credits_posted: u64,
    /// Nanoseconds since the Unix epoch; unique, set by the ledger.
    pub timestamp: u64,
}

/// A transfer as written (transfers never change).
#[derive(Debug, Serialize, ToSchema)]
pub struct TransferView {
    pub id: Uuid,
    pub debit_account_id: Uuid,
    pub credit_account_id: Uuid,
    pub amount: u64,
    pub pending_id: Uuid,
    pub timeout: u32,
    pub ledger: u32,
    pub code: u16,
    pub flags: Vec<TransferFlag>,
    pub user_data_128: Uuid,
    pub user_data_64: u64,
    pub user_data_32: u32,
    /// Nanoseconds since the Unix epoch; unique, set by the ledger.
    pub timestamp: u64,
}

/// An account's balances just after a transfer touched it.
#[derive(Debug, Serialize, ToSchema)]
pub struct AccountBalanceView {
    /// The timestamp of the transfer (or expiry) that produced these balances.
    pub timestamp: u64,
    pub debits_pending: u64,
    pub debits_posted: u64,
    pub credits_pending: u64,
    pub credits_posted: u64,
}

/// The outcome of one event of a batch.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventResult {
    /// The event's position in the request.
    pub index: usize,
    pub id: Uuid,
    /// `ok`, `exists`, or why the event was not applied (e.g. `exceeds_credits`,
    /// `linked_event_failed`): the snake_case result codes of TigerBeetle's model.
    #[schema(example = "ok")]
    pub result: &'static str,
}

/// One result per event, in request order.
#[derive(Debug, Serialize, ToSchema)]
pub struct BatchResults {
    pub results: Vec<EventResult>,
}

fn id(uuid: Uuid) -> u128 {
    uuid.as_u128()
}

fn uuid(id: u128) -> Uuid {
    Uuid::from_u128(id)
}

fn set_by_ledger(index: usize, field: &str, given: bool, errors: &mut Vec<FieldError>) {
    if given {
        errors.push(FieldError {
            field: format!("/{index}/{field}"),
            message: format!("`{field}` is set by the ledger and must be left out"),
        });
    }
}

fn results<R: Copy>(ids: &[Uuid], results: Vec<R>, name: impl Fn(R) -> &'static str) -> BatchResults {
    assert_eq!(ids.len(), results.len(), "one result per event");
    BatchResults {
        results: ids
            .iter()
            .zip(results)
            .enumerate()
            .map(|(index, (id, result))| EventResult { index, id: *id, result: name(result) })
            .collect(),
    }
}

/// Create accounts: a batch of 1 to 8,190, one result per account, in order.
#[utoipa::path(post, path = "/v1/ledger/accounts", tag = "ledger",
    request_body = Vec<NewAccount>,
    security(("admin_api_key" = [])),
    responses(
        (status = 200, description = "One result per account", body = BatchResults),
        (status = 422, description = "Invalid fields or batch size", body = crate::http::error::Problem, content_type = "application/problem+json"),
        (status = 503, description = "Busy or database unavailable; retry with the same ids", body = crate::http::error::Problem, content_type = "application/problem+json"),
    ))]
async fn create_accounts(
    _: AdminAuth,
    State(state): State<AppState>,
    JsonBatch(events): JsonBatch<NewAccount>,
) -> Result<axum::Json<BatchResults>, ApiError> {
    check_batch_len(events.len())?;
    let mut errors = Vec::new();
    for (index, event) in events.iter().enumerate() {
        set_by_ledger(index, "debits_pending", event.debits_pending.is_some(), &mut errors);
        set_by_ledger(index, "debits_posted", event.debits_posted.is_some(), &mut errors);
        set_by_ledger(index, "credits_pending", event.credits_pending.is_some(), &mut errors);
        set_by_ledger(index, "credits_posted", event.credits_posted.is_some(), &mut errors);
        set_by_ledger(index, "timestamp", event.timestamp.is_some(), &mut errors);
    }
    reject(errors)?;
    let ids: Vec<Uuid> = events.iter().map(|event| event.id).collect();
    let accounts = events
        .into_iter()
        .map(|event| ledger::Account {
            id: id(event.id),
            ledger: event.ledger,
            code: event.code,
            flags: AccountFlag::collect(&event.flags),
            user_data_128: id(event.user_data_128),
            user_data_64: event.user_data_64,
            user_data_32: event.user_data_32,
            ..Default::default()
        })
        .collect();
    let outcome = ledger_api::create_accounts(&state.pipeline, accounts).await?;
    Ok(axum::Json(results(&ids, outcome, |r| r.as_str())))
}

/// Create transfers: a batch of 1 to 8,190, one result per transfer, in order. Linked
/// transfers (flag `linked`) succeed or fail together.
#[utoipa::path(post, path = "/v1/ledger/transfers", tag = "ledger",
    request_body = Vec<NewTransfer>,
    security(("admin_api_key" = [])),
    responses(
        (status = 200, description = "One result per transfer", body = BatchResults),
        (status = 422, description = "Invalid fields or batch size", body = crate::http::error::Problem, content_type = "application/problem+json"),
        (status = 503, description = "Busy or database unavailable; retry with the same ids", body = crate::http::error::Problem, content_type = "application/problem+json"),
    ))]
async fn create_transfers(
    _: AdminAuth,
    State(state): State<AppState>,
    JsonBatch(events): JsonBatch<NewTransfer>,
) -> Result<axum::Json<BatchResults>, ApiError> {
    check_batch_len(events.len())?;
    let mut errors = Vec::new();
    let mut ids = Vec::with_capacity(events.len());
    let mut transfers = Vec::with_capacity(events.len());
    for (index, event) in events.into_iter().enumerate() {
        set_by_ledger(index, "timestamp", event.timestamp.is_some(), &mut errors);
        let transfer = ledger::Transfer {
            id: id(event.id),
            debit_account_id: id(event.debit_account_id),
            credit_account_id: id(event.credit_account_id),
            amount: event.amount,
            pending_id: id(event.pending_id),
            user_data_128: id(event.user_data_128),
            user_data_64: event.user_data_64,
            user_data_32: event.user_data_32,
            timeout: event.timeout,
            ledger: event.ledger,
            code: event.code,
            flags: TransferFlag::collect(&event.flags),
            timestamp: 0,
        };
        ledger_api::check_transfer(index, &transfer, &mut errors);
        ids.push(event.id);
        transfers.push(transfer);
    }
    reject(errors)?;
    let outcome = ledger_api::create_transfers(&state.pipeline, transfers).await?;
    Ok(axum::Json(results(&ids, outcome, |r| r.as_str())))
}

fn account_view(account: ledger::Account) -> AccountView {
    AccountView {
        id: uuid(account.id),
        ledger: account.ledger,
        code: account.code,
        flags: AccountFlag::list(account.flags),
        user_data_128: uuid(account.user_data_128),
        user_data_64: account.user_data_64,
        user_data_32: account.user_data_32,
        debits_pending: account.debits_pending,
        debits_posted: account.debits_posted,
        credits_pending: account.credits_pending,
        credits_posted: account.credits_posted,
        timestamp: account.timestamp,
    }
}

fn transfer_view(transfer: ledger::Transfer) -> TransferView {
    TransferView {
        id: uuid(transfer.id),
        debit_account_id: uuid(transfer.debit_account_id),
        credit_account_id: uuid(transfer.credit_account_id),
        amount: transfer.amount,
        pending_id: uuid(transfer.pending_id),
        timeout: transfer.timeout,
        ledger: transfer.ledger,
        code: transfer.code,
        flags: TransferFlag::list(transfer.flags),
        user_data_128: uuid(transfer.user_data_128),
        user_data_64: transfer.user_data_64,
        user_data_32: transfer.user_data_32,
        timestamp: transfer.timestamp,
    }
}

async fn find_account(state: &AppState, account_id: Uuid) -> Result<ledger::Account, ApiError> {
    ledger_api::find_account(&state.store, id(account_id)).await
}

/// One account with its balances.
#[utoipa::path(get, path = "/v1/ledger/accounts/{id}", tag = "ledger",
    params(("id" = Uuid, Path, description = "Account id")),
    security(("admin_api_key" = [])),
    responses(
        (status = 200, body = AccountView),
        (status = 404, description = "No such account", body = crate::http::error::Problem, content_type = "application/problem+json"),
    ))]
async fn get_account(
    _: AdminAuth,
    State(state): State<AppState>,
    Path(account_id): Path<Uuid>,
) -> Result<axum::Json<AccountView>, ApiError> {
    Ok(axum::Json(account_view(find_account(&state, account_id).await?)))
}

/// One transfer.
#[utoipa::path(get, path = "/v1/ledger/transfers/{id}", operation_id = "get_ledger_transfer", tag = "ledger",
    params(("id" = Uuid, Path, description = "Transfer id")),
    security(("admin_api_key" = [])),
    responses(
        (status = 200, body = TransferView),
        (status = 404, description = "No such transfer", body = crate::http::error::Problem, content_type = "application/problem+json"),
    ))]
async fn get_transfer(
    _: AdminAuth,
    State(state): State<AppState>,
    Path(transfer_id): Path<Uuid>,
) -> Result<axum::Json<TransferView>, ApiError> {
    Ok(axum::Json(transfer_view(ledger_api::find_transfer(&state.store, id(transfer_id)).await?)))
}

/// The latest link of the ledger's hash chain: one per committed batch that created
/// transfers, a SHA-256 over the link before and the batch's transfers. Kept somewhere
/// else, it lets `coffer verify` prove later that no stored transfer was changed, added
/// or removed up to it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChainHead {
    /// The link's number (1 for the first); 0 before any batch with transfers.
    pub seq: u64,
    /// Hex SHA-256; 64 zeros before the first link.
    pub hash: String,
    /// The ledger timestamps of the batch's first and last transfer (0 before any).
    pub first_timestamp: u64,
    pub last_timestamp: u64,
    /// Transfers in the batch.
    pub transfers: u32,
}

/// The head of the ledger's hash chain, to publish or escrow.
#[utoipa::path(get, path = "/v1/ledger/chain/head", tag = "ledger",
    security(("admin_api_key" = [])),
    responses((status = 200, body = ChainHead)))]
async fn chain_head(_: AdminAuth, State(state): State<AppState>) -> Result<axum::Json<ChainHead>, ApiError> {
    let head = state.store.chain_head().await?;
    Ok(axum::Json(match head {
        Some(link) => ChainHead {
            seq: link.seq,
            hash: hex::encode(link.hash),
            first_timestamp: link.first_timestamp,
            last_timestamp: link.last_timestamp,
            transfers: link.transfers,
        },
        None => ChainHead {
            seq: 0,
            hash: hex::encode(::ledger::chain::GENESIS),
            first_timestamp: 0,
            last_timestamp: 0,
            transfers: 0,
        },
    }))
}

/// The transfers that debit or credit an account, newest first by default.
#[utoipa::path(get, path = "/v1/ledger/accounts/{id}/transfers", tag = "ledger",
    params(("id" = Uuid, Path, description = "Account id"), HistoryQuery),
    security(("admin_api_key" = [])),
    responses(
        (status = 200, body = Page<TransferView>),
        (status = 400, description = "Malformed id, query or cursor", body = crate::http::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such account", body = crate::http::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Limit out of range", body = crate::http::error::Problem, content_type = "application/problem+json"),
    ))]
async fn list_account_transfers(
    _: AdminAuth,
    State(state): State<AppState>,
    Path(account_id): Path<Uuid>,
    Query(query): Query<HistoryQuery>,
) -> Result<axum::Json<Page<TransferView>>, ApiError> {
    let page = ledger_api::account_transfers(&state.store, id(account_id), query).await?;
    Ok(axum::Json(Page {
        data: page.data.into_iter().map(transfer_view).collect(),
        has_more: page.has_more,
        next_cursor: page.next_cursor,
    }))
}

/// The balance history of an account created with the `history` flag.
#[utoipa::path(get, path = "/v1/ledger/accounts/{id}/balances", tag = "ledger",
    params(("id" = Uuid, Path, description = "Account id"), HistoryQuery),
    security(("admin_api_key" = [])),
    responses(
        (status = 200, body = Page<AccountBalanceView>),
        (status = 400, description = "Malformed id, query or cursor", body = crate::http::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such account", body = crate::http::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Limit out of range, or the account keeps no history", body = crate::http::error::Problem, content_type = "application/problem+json"),
    ))]
async fn list_account_balances(
    _: AdminAuth,
    State(state): State<AppState>,
    Path(account_id): Path<Uuid>,
    Query(query): Query<HistoryQuery>,
) -> Result<axum::Json<Page<AccountBalanceView>>, ApiError> {
    let page = ledger_api::account_balances(&state.store, id(account_id), query).await?;
    let view = |balance: ledger::AccountBalance| AccountBalanceView {
        timestamp: balance.timestamp,
        debits_pending: balance.debits_pending,
        debits_posted: balance.debits_posted,
        credits_pending: balance.credits_pending,
        credits_posted: balance.credits_posted,
    };
    Ok(axum::Json(Page {
        data: page.data.into_iter().map(view).collect(),
        has_more: page.has_more,
        next_cursor: page.next_cursor,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_map_both_ways() {
        let flags = AccountFlag::collect(&[AccountFlag::History, AccountFlag::DebitsMustNotExceedCredits]);
        assert_eq!(
            AccountFlag::list(flags),
            vec![AccountFlag::DebitsMustNotExceedCredits, AccountFlag::History]
        );
        for (name, flag) in TransferFlags::NAMED {
            let parsed: TransferFlag = serde_json::from_value(serde_json::json!(name)).unwrap();
            assert_eq!(parsed.flag(), *flag);
        }
        for (name, flag) in AccountFlags::NAMED {
            let parsed: AccountFlag = serde_json::from_value(serde_json::json!(name)).unwrap();
            assert_eq!(parsed.flag(), *flag);
        }
    }
}
