//! The operator console (`/admin`), for customers with the admin role signed in to the
//! console: the platform at a glance (the outbox relay's backlog and lag, daily volume and
//! active customers as charts), customers (find by email, open one: wallets, operations,
//! role), the ledger explorer (a transfer with its linked chain and pending status, an
//! account with its
//! balances and transfers), and what went out: webhook deliveries and emails with their
//! status, each queued again on request.
//!
//! Anyone else — signed out, or a customer — gets the 404 page: the console does not say
//! that an operator area exists. It reads through the same services as the admin API
//! (`identity`, `analytics`, `ledger_api`, `wallet_api`); changing a role is the API's
//! operation too.

use askama::Template;
use axum::{
    extract::{FromRequestParts, Query, State},
    http::request::Parts,
    response::{IntoResponse, Redirect, Response},
};
use serde::Deserialize;
use time::{Duration as Days, OffsetDateTime};
use uuid::Uuid;

use super::{
    Chrome, IdPath, PageError, charts,
    customer::{OperationLine, WalletLine},
    money::svg,
    page,
    session::Posted,
    session::Signed,
};
use crate::{
    http::{
        AppState,
        dates::{nanos, rfc3339},
        error::ApiError,
    },
    identity::{Role, profile::Email},
    ledger_api,
    wallet_api::{self, HistoryQuery},
    wallets::money::shown,
};

/// Days in the overview's charts.
const DAYS: i64 = 30;
/// Customers per page of the list.
const CUSTOMERS_PAGE: u32 = 50;

/// A signed-in admin; anyone else is shown the 404 page.
#[derive(Debug)]
pub struct Operator(Signed);

impl FromRequestParts<AppState> for Operator {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, PageError> {
        match Signed::from_request_parts(parts, state).await {
            Ok(signed) if signed.role == Role::Admin => Ok(Self(signed)),
            _ => Err(PageError::Api(ApiError::NotFound {
                code: "route_not_found",
                detail: "no such page".into(),
            })),
        }
    }
}

#[derive(Template)]
#[template(path = "console/admin/overview.html")]
struct OverviewPage {
    chrome: Chrome,
    backlog: u64,
    lag_seconds: String,
    head: u64,
    from: String,
    to: String,
    /// (day, active customers, new customers, volume lines as text)
    days: Vec<(String, i64, i64, String)>,
}

fn window() -> (time::Date, time::Date) {
    let today = OffsetDateTime::now_utc().date();
    (today - Days::days(DAYS - 1), today)
}

/// `GET /admin`.
pub async fn overview(
    State(state): State<AppState>,
    Operator(signed): Operator,
) -> Result<Response, PageError> {
    let outbox = crate::events::relay::outbox_status(&state.store).await.map_err(ApiError::from)?;
    let (from, to) = window();
    let days = state.analytics.daily(from, to).await.map_err(ApiError::Unavailable)?;
    let days = days
        .into_iter()
        .rev()
        .map(|day| {
            let volume = day
                .volume
                .iter()
                .map(|line| {
                    format!("{} {} ×{}", line.operation, shown(line.amount, &line.currency), line.count)
                })
                .collect::<Vec<_>>()
                .join(", ");
            (day.date, day.active_customers, day.new_customers, volume)
        })
        .collect();
    Ok(page(&OverviewPage {
        chrome: Chrome::admin("Operations", "admin", signed.csrf()),
        backlog: outbox.backlog,
        lag_seconds: format!("{:.1}", outbox.lag_seconds),
        head: outbox.head,
        from: from.to_string(),
        to: to.to_string(),
        days,
    }))
}

/// `GET /admin/volume.svg`: posted volume per day of the busiest currency, and active
/// customers per day.
pub async fn volume_chart(State(state): State<AppState>, _operator: Operator) -> Result<Response, PageError> {
    let (from, to) = window();
    let days = state.analytics.daily(from, to).await.map_err(ApiError::Unavailable)?;
    let mut totals: std::collections::BTreeMap<&str, i64> = Default::default();
    for line in days.iter().flat_map(|day| &day.volume) {
        *totals.entry(line.currency.as_str()).or_default() += line.amount;
    }
    let currency = totals.iter().max_by_key(|(_, total)| **total).map(|(code, _)| code.to_string());
    let labels: Vec<String> = days.iter().map(|day| day.date[5..].to_owned()).collect();
    let active: Vec<f64> = days.iter().map(|day| day.active_customers as f64).collect();
    let mut series = vec![("Active customers", charts::PLAIN, active)];
    let unit = match &currency {
        Some(code) => {
            let exponent = crate::wallets::Currency::parse(code).map_or(0, |c| c.exponent());
            let volume = days
                .iter()
                .map(|day| {
                    let minor: i64 =
                        day.volume.iter().filter(|l| &l.currency == code).map(|l| l.amount).sum();
                    minor as f64 / 10f64.powi(i32::from(exponent))
                })
                .collect();
            series.push(("Volume", charts::INCOME, volume));
            format!("{code} / customers")
        }
        None => "customers".to_owned(),
    };
    svg(charts::lines(&labels, &series, &unit))
}

pub struct CustomerLine {
    pub id: Uuid,
    pub name: String,
    pub email: String,
    pub role: &'static str,
    pub since: String,
}

impl CustomerLine {
    fn of(customer: &store::Customer) -> Self {
        Self {
            id: customer.id,
            name: customer.name.clone(),
            email: customer.email.clone(),
            role: customer.role.as_str(),
            since: customer.created_at.date().to_string(),
        }
    }
}

#[derive(Deserialize, Default)]
pub struct CustomersQuery {
    q: Option<String>,
    after: Option<Uuid>,
}

#[derive(Template)]
#[template(path = "console/admin/customers.html")]
struct CustomersPage {
    chrome: Chrome,
    q: String,
    customers: Vec<CustomerLine>,
    next: Option<Uuid>,
    searched: bool,
}

/// `GET /admin/customers?q=email`: one customer by email, or all of them a page at a time.
pub async fn customers(
    State(state): State<AppState>,
    Operator(signed): Operator,
    Query(query): Query<CustomersQuery>,
) -> Result<Response, PageError> {
    let q = query.q.unwrap_or_default().trim().to_owned();
    let (customers, next) = if q.is_empty() {
        let (rows, more) =
            state.identity.list_customers(query.after, CUSTOMERS_PAGE).await.map_err(ApiError::from)?;
        let next = if more { rows.last().map(|c| c.id) } else { None };
        (rows.iter().map(CustomerLine::of).collect(), next)
    } else {
        let found = match Email::parse(&q) {
            Ok(email) => state.identity.customer_by_email(&email).await.map_err(ApiError::from)?,
            Err(_) => None,
        };
        (found.iter().map(CustomerLine::of).collect(), None)
    };
    Ok(page(&CustomersPage {
        chrome: Chrome::admin("Customers", "admin-customers", signed.csrf()),
        searched: !q.is_empty(),
        q,
        customers,
        next,
    }))
}

#[derive(Template)]
#[template(path = "console/admin/customer.html")]
struct CustomerPage {
    chrome: Chrome,
    csrf: String,
    customer: CustomerLine,
    wallets: Vec<WalletLine>,
    operations: Vec<OperationLine>,
}

/// `GET /admin/customers/{id}`.
pub async fn customer(
    State(state): State<AppState>,
    Operator(signed): Operator,
    IdPath(id): IdPath,
) -> Result<Response, PageError> {
    let customer = state.identity.customer(id).await.map_err(ApiError::from)?;
    let wallets =
        state.wallets.list(id, None, store::WALLETS_PER_CUSTOMER_MAX as u32).await.map_err(ApiError::from)?;
    let history =
        wallet_api::history(&state, id, HistoryQuery { limit: Some(20), ..HistoryQuery::default() }).await?;
    Ok(page(&CustomerPage {
        chrome: Chrome::admin(customer.name.clone(), "admin-customers", signed.csrf()),
        csrf: signed.csrf().to_owned(),
        customer: CustomerLine::of(&customer),
        wallets: wallets.iter().map(WalletLine::of).collect(),
        operations: history.data.iter().map(OperationLine::of).collect(),
    }))
}

#[derive(Deserialize)]
pub struct RoleForm {
    #[serde(default)]
    role: String,
}

/// `POST /admin/customers/{id}/role`.
pub async fn set_role(
    State(state): State<AppState>,
    Operator(signed): Operator,
    IdPath(id): IdPath,
    posted: Posted<RoleForm>,
) -> Result<Response, PageError> {
    signed.check(posted.csrf.as_deref())?;
    let role = match posted.form.role.as_str() {
        "admin" => Role::Admin,
        "customer" => Role::Customer,
        _ => return Err(ApiError::field("/role", "customer or admin").into()),
    };
    state.identity.set_role(id, role).await.map_err(ApiError::from)?;
    Ok(Redirect::to(&format!("/admin/customers/{id}")).into_response())
}

#[derive(Deserialize, Default)]
pub struct LedgerQuery {
    id: Option<String>,
}

/// A transfer as the explorer shows it.
pub struct TransferLine {
    pub id: Uuid,
    pub debit: Uuid,
    pub credit: Uuid,
    pub amount: String,
    pub ledger: u32,
    pub code: u16,
    pub flags: String,
    pub pending_id: Option<Uuid>,
    pub when: String,
}

impl TransferLine {
    fn of(transfer: &ledger::Transfer) -> Self {
        let currency = crate::wallets::Currency::from_ledger(transfer.ledger).map(|c| c.code()).unwrap_or("");
        Self {
            id: Uuid::from_u128(transfer.id),
            debit: Uuid::from_u128(transfer.debit_account_id),
            credit: Uuid::from_u128(transfer.credit_account_id),
            amount: shown(transfer.amount, currency),
            ledger: transfer.ledger,
            code: transfer.code,
            flags: transfer.flags.names().collect::<Vec<_>>().join(", "),
            pending_id: (transfer.pending_id != 0).then(|| Uuid::from_u128(transfer.pending_id)),
            when: rfc3339(transfer.timestamp),
        }
    }
}

/// A ledger account as the explorer shows it (amounts in its currency).
pub struct AccountView {
    pub id: Uuid,
    pub ledger: u32,
    pub code: u16,
    pub flags: String,
    pub debits_posted: String,
    pub credits_posted: String,
    pub debits_pending: String,
    pub credits_pending: String,
}

#[derive(Template)]
#[template(path = "console/admin/ledger.html")]
struct LedgerPage {
    chrome: Chrome,
    id: String,
    transfer: Option<TransferLine>,
    /// The linked chain the transfer is in, in commit order (empty when it is in none).
    chain: Vec<TransferLine>,
    pending: Option<&'static str>,
    account: Option<AccountView>,
    transfers: Vec<TransferLine>,
    /// (when, debits posted, credits posted)
    balances: Vec<(String, String, String)>,
    missing: bool,
}

/// `GET /admin/ledger?id=`: a transfer or an account by id.
pub async fn ledger(
    State(state): State<AppState>,
    Operator(signed): Operator,
    Query(query): Query<LedgerQuery>,
) -> Result<Response, PageError> {
    let text = query.id.unwrap_or_default().trim().to_owned();
    let mut view = LedgerPage {
        chrome: Chrome::admin("Ledger explorer", "admin-ledger", signed.csrf()),
        id: text.clone(),
        transfer: None,
        chain: Vec::new(),
        pending: None,
        account: None,
        transfers: Vec::new(),
        balances: Vec::new(),
        missing: false,
    };
    if text.is_empty() {
        return Ok(page(&view));
    }
    let Ok(id) = Uuid::parse_str(&text).map(|id| id.as_u128()) else {
        view.missing = true;
        return Ok(page(&view));
    };
    let store = &state.store;
    match ledger_api::find_transfer(store, id).await {
        Ok(transfer) => {
            view.pending = ledger_api::pending_status(store, &transfer).await?.map(|status| match status {
                ledger::PendingStatus::Pending => "pending",
                ledger::PendingStatus::Posted => "posted",
                ledger::PendingStatus::Voided => "voided",
                ledger::PendingStatus::Expired => "expired",
            });
            let chain = ledger_api::linked_chain(store, &transfer).await?;
            if chain.len() > 1 {
                view.chain = chain.iter().map(TransferLine::of).collect();
            }
            view.transfer = Some(TransferLine::of(&transfer));
            return Ok(page(&view));
        }
        Err(error) if error.status() == axum::http::StatusCode::NOT_FOUND => {}
        Err(error) => return Err(error.into()),
    }
    let account = match ledger_api::find_account(store, id).await {
        Ok(account) => account,
        Err(error) if error.status() == axum::http::StatusCode::NOT_FOUND => {
            view.missing = true;
            return Ok(page(&view));
        }
        Err(error) => return Err(error.into()),
    };
    let currency = crate::wallets::Currency::from_ledger(account.ledger).map(|c| c.code()).unwrap_or("");
    view.account = Some(AccountView {
        id: Uuid::from_u128(account.id),
        ledger: account.ledger,
        code: account.code,
        flags: account.flags.names().collect::<Vec<_>>().join(", "),
        debits_posted: shown(account.debits_posted, currency),
        credits_posted: shown(account.credits_posted, currency),
        debits_pending: shown(account.debits_pending, currency),
        credits_pending: shown(account.credits_pending, currency),
    });
    let page_of = || ledger_api::HistoryQuery { limit: Some(20), ..ledger_api::HistoryQuery::default() };
    view.transfers = ledger_api::account_transfers(store, id, page_of())
        .await?
        .data
        .iter()
        .map(TransferLine::of)
        .collect();
    if account.flags.contains(ledger::AccountFlags::HISTORY) {
        view.balances = ledger_api::account_balances(store, id, page_of())
            .await?
            .data
            .iter()
            .map(|b| {
                (rfc3339(b.timestamp), shown(b.debits_posted, currency), shown(b.credits_posted, currency))
            })
            .collect();
    }
    Ok(page(&view))
}

/// A webhook delivery as the operator sees it.
pub struct DeliveryLine {
    pub id: Uuid,
    pub endpoint_id: Uuid,
    pub event_type: String,
    pub status: String,
    pub attempts: i64,
    pub last: String,
    pub created: String,
}

/// An email as the operator sees it.
pub struct EmailLine {
    pub id: Uuid,
    pub recipient: String,
    pub subject: String,
    pub status: String,
    pub attempts: i64,
    pub last_error: String,
    pub created: String,
}

#[derive(Deserialize, Default)]
pub struct OutboundQuery {
    status: Option<String>,
    done: Option<String>,
}

#[derive(Template)]
#[template(path = "console/admin/outbound.html")]
struct OutboundPage {
    chrome: Chrome,
    csrf: String,
    status: String,
    deliveries: Vec<DeliveryLine>,
    emails: Vec<EmailLine>,
    done: Option<&'static str>,
}

/// Rows of each kind on the page.
const OUTBOUND_SHOWN: u32 = 50;

/// `GET /admin/outbound?status=`: webhook deliveries and emails, newest first.
pub async fn outbound(
    State(state): State<AppState>,
    Operator(signed): Operator,
    Query(query): Query<OutboundQuery>,
) -> Result<Response, PageError> {
    let status = query.status.unwrap_or_default();
    let (delivery_status, email_status) = match status.as_str() {
        "failed" => (Some("failed"), Some("failed")),
        "pending" => (Some("pending"), Some("pending")),
        _ => (None, None),
    };
    let deliveries = state
        .endpoints
        .recent_deliveries(delivery_status, OUTBOUND_SHOWN)
        .await
        .map_err(ApiError::from)?
        .into_iter()
        .map(|row| DeliveryLine {
            id: row.id,
            endpoint_id: row.endpoint_id,
            event_type: row.event_type,
            status: row.status,
            attempts: row.attempts,
            last: match (row.last_status_code, row.last_error) {
                (Some(code), _) => format!("HTTP {code}"),
                (None, Some(error)) => error,
                (None, None) => String::new(),
            },
            created: nanos(row.created_at),
        })
        .collect();
    let emails = state
        .endpoints
        .recent_emails(email_status, OUTBOUND_SHOWN)
        .await
        .map_err(ApiError::from)?
        .into_iter()
        .map(|row| EmailLine {
            id: row.id,
            recipient: row.recipient,
            subject: row.subject,
            status: row.status,
            attempts: row.attempts,
            last_error: row.last_error.unwrap_or_default(),
            created: nanos(row.created_at),
        })
        .collect();
    let done = match query.done.as_deref() {
        Some("delivery") => Some("The delivery is queued again."),
        Some("email") => Some("The email is queued again."),
        _ => None,
    };
    Ok(page(&OutboundPage {
        chrome: Chrome::admin("Webhooks and emails", "admin-outbound", signed.csrf()),
        csrf: signed.csrf().to_owned(),
        status,
        deliveries,
        emails,
        done,
    }))
}

/// `POST /admin/deliveries/{endpoint}/{id}/retry`.
pub async fn retry_delivery(
    State(state): State<AppState>,
    Operator(signed): Operator,
    axum::extract::Path((endpoint, id)): axum::extract::Path<(Uuid, Uuid)>,
    posted: Posted<super::Empty>,
) -> Result<Response, PageError> {
    signed.check(posted.csrf.as_deref())?;
    state.endpoints.retry_delivery(endpoint, id).await.map_err(ApiError::from)?;
    Ok(Redirect::to("/admin/outbound?done=delivery").into_response())
}

/// `POST /admin/emails/{id}/retry`.
pub async fn retry_email(
    State(state): State<AppState>,
    Operator(signed): Operator,
    IdPath(id): IdPath,
    posted: Posted<super::Empty>,
) -> Result<Response, PageError> {
    signed.check(posted.csrf.as_deref())?;
    state.endpoints.resend_email(id).await.map_err(ApiError::from)?;
    Ok(Redirect::to("/admin/outbound?done=email").into_response())
}
