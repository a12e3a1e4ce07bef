//! Insights over HTTP: `GET /v1/insights/recurring` (my subscriptions and bills, with the
//! next charge expected), `GET /v1/insights/alerts` (my spends worth a second look, each
//! with its reason) and `GET /v1/insights/forecast` (each wallet's expected balance). The rules are `crate::insights`'.

use axum::{Router, extract::State, routing::get};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::http::{AppState, caller::AuthUser, error::ApiError, extract::Query, paging};
use crate::insights::detect::{AlertKind, Cadence, PriceChange, RecurringKind};
use crate::insights::forecast::{FlowSource, HORIZON_DAYS_MAX};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/insights/recurring", get(recurring_payments))
        .route("/v1/insights/alerts", get(spending_alerts))
        .route("/v1/insights/forecast", get(cash_flow_forecast))
}

fn at(seconds: i64) -> String {
    crate::rfc3339(u64::try_from(seconds).unwrap_or(0).saturating_mul(1_000_000_000))
}

/// A subscription's price change.
#[derive(Debug, Serialize, ToSchema)]
pub struct PriceChangeView {
    pub from: i64,
    pub to: i64,
    /// When the new price was first charged.
    pub at: String,
}

impl From<PriceChange> for PriceChangeView {
    fn from(change: PriceChange) -> Self {
        Self { from: change.from, to: change.to, at: at(change.at) }
    }
}

/// A recurring payment found in my expenses. Amounts in minor units.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecurringView {
    pub merchant: String,
    pub currency: String,
    pub cadence: Cadence,
    /// `subscription` (the same price every time) or `bill` (an amount that varies a little).
    pub kind: RecurringKind,
    pub occurrences: usize,
    /// The latest charge, and the typical one (the median).
    pub amount: i64,
    pub typical_amount: i64,
    pub first_charged_at: String,
    pub last_charged_at: String,
    pub next_expected_at: String,
    pub next_amount: i64,
    /// Set when a subscription's price changed.
    #[schema(required = true)]
    pub price_change: Option<PriceChangeView>,
    /// The category of the latest charge.
    pub category_id: Uuid,
}

/// My recurring payments.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecurringList {
    pub data: Vec<RecurringView>,
}

/// My subscriptions and bills, found in my expenses of the last 400 days: charges at one
/// merchant at a regular interval (weekly, monthly or yearly) with stable amounts, the next
/// expected first. A series whose next charge is overdue by more than a period has ended
/// and is not listed.
#[utoipa::path(get, path = "/v1/insights/recurring", tag = "finance", security(("access_token" = [])),
    responses((status = 200, body = RecurringList)))]
async fn recurring_payments(
    user: AuthUser,
    State(state): State<AppState>,
) -> Result<axum::Json<RecurringList>, ApiError> {
    let found = state.insights.recurring(user.customer_id).await?;
    let data = found
        .into_iter()
        .map(|item| RecurringView {
            merchant: item.merchant,
            currency: item.currency,
            cadence: item.cadence,
            kind: item.kind,
            occurrences: item.occurrences,
            amount: item.amount,
            typical_amount: item.typical,
            first_charged_at: at(item.first_at),
            last_charged_at: at(item.last_at),
            next_expected_at: at(item.next_at),
            next_amount: item.next_amount,
            price_change: item.price_change.map(Into::into),
            category_id: item.category_id,
        })
        .collect();
    Ok(axum::Json(RecurringList { data }))
}

/// How many alerts to list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AlertsQuery {
    /// 1 to 100; default 20.
    pub limit: Option<u32>,
}

/// A spend worth a second look. Amounts in minor units.
#[derive(Debug, Serialize, ToSchema)]
pub struct SpendingAlertView {
    pub kind: AlertKind,
    pub expense_id: Uuid,
    /// The earlier charge a duplicate repeats.
    #[schema(required = true)]
    pub related_expense_id: Option<Uuid>,
    pub merchant: String,
    pub amount: i64,
    pub currency: String,
    pub occurred_at: String,
    /// Why, in words.
    pub reason: String,
}

/// My spending alerts.
#[derive(Debug, Serialize, ToSchema)]
pub struct SpendingAlertList {
    pub data: Vec<SpendingAlertView>,
}

/// My spends of the last 400 days worth a second look, newest first: a duplicate charge
/// (the same merchant and amount within 10 minutes), a first charge from a merchant far
/// above my usual spend, or an amount unusual for me in its category (a robust z-score
/// over the trailing 90 days). Each is judged against the spends before it.
#[utoipa::path(get, path = "/v1/insights/alerts", tag = "finance", params(AlertsQuery),
    security(("access_token" = [])),
    responses((status = 200, body = SpendingAlertList)))]
async fn spending_alerts(
    user: AuthUser,
    State(state): State<AppState>,
    Query(query): Query<AlertsQuery>,
) -> Result<axum::Json<SpendingAlertList>, ApiError> {
    let limit = paging::limit(query.limit)?;
    let found = state.insights.alerts(user.customer_id).await?;
    let data = found
        .into_iter()
        .take(limit as usize)
        .map(|alert| SpendingAlertView {
            kind: alert.kind,
            expense_id: alert.expense_id,
            related_expense_id: alert.related_expense_id,
            merchant: alert.merchant,
            amount: alert.amount,
            currency: alert.currency,
            occurred_at: at(alert.at),
            reason: alert.reason,
        })
        .collect();
    Ok(axum::Json(SpendingAlertList { data }))
}

/// How far to look ahead.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ForecastQuery {
    /// Days from today, 1 to 90; default 30.
    pub days: Option<u32>,
}

/// A flow expected on a day. Minor units: negative leaves the wallet.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExpectedFlowView {
    pub date: String,
    pub amount: i64,
    pub source: FlowSource,
    pub description: String,
}

/// A wallet's expected balance at the end of a day.
#[derive(Debug, Serialize, ToSchema)]
pub struct DailyBalanceView {
    pub date: String,
    pub balance: i64,
}

/// One wallet's forecast. Minor units.
#[derive(Debug, Serialize, ToSchema)]
pub struct WalletForecastView {
    pub wallet_id: Uuid,
    pub currency: String,
    /// Available now.
    pub balance: i64,
    /// Average income per day over the last 90 days, counted every day ahead.
    pub daily_income: i64,
    pub end_balance: i64,
    pub lowest_balance: i64,
    pub lowest_on: String,
    /// The first day expected to end below zero; `null` when none is.
    #[schema(required = true)]
    pub below_zero_on: Option<String>,
    pub expected: Vec<ExpectedFlowView>,
    pub daily: Vec<DailyBalanceView>,
}

/// The forecast of every one of my wallets.
#[derive(Debug, Serialize, ToSchema)]
pub struct CashFlowForecast {
    pub days: u32,
    pub wallets: Vec<WalletForecastView>,
}

/// Each of my wallets' expected balance for the coming days: the available balance now,
/// plus my average daily income (top-ups and transfers from others over the last 90
/// days), less my active scheduled payments and the recurring payments found in my
/// expenses on their expected days; with the lowest point and the first day expected
/// below zero.
#[utoipa::path(get, path = "/v1/insights/forecast", tag = "finance", params(ForecastQuery),
    security(("access_token" = [])),
    responses((status = 200, body = CashFlowForecast)))]
async fn cash_flow_forecast(
    user: AuthUser,
    State(state): State<AppState>,
    Query(query): Query<ForecastQuery>,
) -> Result<axum::Json<CashFlowForecast>, ApiError> {
    let days = query.days.unwrap_or(30);
    if days == 0 || days > HORIZON_DAYS_MAX {
        return Err(ApiError::field("/days", format!("1 to {HORIZON_DAYS_MAX}")));
    }
    let wallets = state
        .insights
        .forecast(user.customer_id, days)
        .await?
        .into_iter()
        .map(|wallet| WalletForecastView {
            wallet_id: wallet.start.wallet_id,
            currency: wallet.start.currency,
            balance: wallet.start.balance,
            daily_income: wallet.start.daily_income,
            end_balance: wallet.days.last().map_or(wallet.start.balance, |(_, balance)| *balance),
            lowest_balance: wallet.lowest.1,
            lowest_on: wallet.lowest.0.to_string(),
            below_zero_on: wallet.below_zero_on.map(|on| on.to_string()),
            expected: wallet
                .flows
                .into_iter()
                .map(|flow| ExpectedFlowView {
                    date: flow.on.to_string(),
                    amount: flow.amount,
                    source: flow.source,
                    description: flow.label,
                })
                .collect(),
            daily: wallet
                .days
                .into_iter()
                .map(|(on, balance)| DailyBalanceView { date: on.to_string(), balance })
                .collect(),
        })
        .collect();
    Ok(axum::Json(CashFlowForecast { days, wallets }))
}
