//! Budgets, reports and exports over HTTP: `GET/POST /v1/budgets`, `GET/PATCH/DELETE
//! /v1/budgets/{id}` (with this month's status), `GET /v1/budgets/{id}/status`,
//! `GET /v1/reports/monthly/{year}/{month}`, `/v1/reports/categories/{year}/{month}`,
//! `/v1/reports/summary`, `/v1/reports/trends?months=N`, and `GET /v1/exports/expenses.csv`.
//! Every figure is per currency.

use axum::{Router, extract::State, http::StatusCode, response::Response, routing::get};
use serde::{Deserialize, Serialize};
use store::{BudgetRow, ExpenseFilter};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::finance::budgets::{self, BudgetChange};
use crate::finance::reports::{self, BudgetStatus, CategoryLine, MonthlyReport, Totals, TrendMonth};
use crate::http::caller::AuthUser;
use crate::http::{
    AppState,
    dates::nanos,
    error::ApiError,
    export,
    extract::{Json, Path, Query},
    validate,
};
use crate::wallets::Currency;

/// The largest monthly budget: the largest ledger amount.
const BUDGET_AMOUNT_MAX: i64 = ledger::AMOUNT_MAX as i64;
/// Months a trend covers at most.
const TRENDS_MONTHS_MAX: u32 = 36;
/// Expenses one CSV export holds at most.
const EXPORT_ROWS_MAX: usize = 100_000;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/budgets", get(list_budgets).post(create_budget))
        .route("/v1/budgets/{id}", get(get_budget).patch(update_budget).delete(delete_budget))
        .route("/v1/budgets/{id}/status", get(budget_status))
        .route("/v1/reports/monthly/{year}/{month}", get(monthly))
        .route("/v1/reports/monthly/{year}/{month}/summary", get(monthly_summary))
        .route("/v1/reports/categories/{year}/{month}", get(categories))
        .route("/v1/reports/summary", get(summary))
        .route("/v1/reports/trends", get(trends))
        .route("/v1/exports/expenses.csv", get(export_expenses))
}

fn month(year: i32, month: u8) -> Result<(), ApiError> {
    if !(1970..=2200).contains(&year) || !(1..=12).contains(&month) {
        return Err(ApiError::InvalidParameter {
            detail: "year must be 1970 to 2200 and month 1 to 12".into(),
        });
    }
    Ok(())
}

/// A budget with where it stands this month.
#[derive(Debug, Serialize, ToSchema)]
pub struct Budget {
    pub id: Uuid,
    pub category_id: Uuid,
    pub currency: String,
    /// Per month, minor units.
    pub amount: i64,
    pub rollover: bool,
    pub created_at: String,
    pub current: BudgetStatus,
}

async fn budget_view(state: &AppState, row: &BudgetRow) -> Result<Budget, ApiError> {
    let (year, month) = reports::month_of(store::now_ns() as i64);
    Ok(Budget {
        id: row.id,
        category_id: row.category_id,
        currency: row.currency.clone(),
        amount: row.amount,
        rollover: row.rollover,
        created_at: nanos(row.created_at),
        current: state.finance.budget_status(row, year, month).await?,
    })
}

/// My budgets, with this month's status.
#[utoipa::path(get, path = "/v1/budgets", tag = "finance", security(("access_token" = [])),
    responses((status = 200, body = Vec<Budget>)))]
async fn list_budgets(
    user: AuthUser,
    State(state): State<AppState>,
) -> Result<axum::Json<Vec<Budget>>, ApiError> {
    let mut out = Vec::new();
    for row in state.finance.budgets(user.customer_id).await? {
        out.push(budget_view(&state, &row).await?);
    }
    Ok(axum::Json(out))
}

/// A new budget.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewBudget {
    /// Its children count too.
    pub category_id: Uuid,
    pub currency: String,
    /// Per month, minor units, at least 1.
    pub amount: i64,
    /// Add what was left last month to this month.
    #[serde(default)]
    pub rollover: bool,
}

/// A new budget's fields, checked (the API's and the web console's).
pub(crate) fn new_budget(request: NewBudget) -> Result<budgets::NewBudget, ApiError> {
    Ok(budgets::NewBudget {
        category_id: request.category_id,
        currency: Currency::parse(&request.currency)
            .ok_or_else(|| ApiError::field("/currency", "not a supported currency"))?,
        amount: validate::amount("/amount", request.amount, BUDGET_AMOUNT_MAX)?,
        rollover: request.rollover,
    })
}

/// Creates a monthly budget for a category in a currency (one per pair).
#[utoipa::path(post, path = "/v1/budgets", tag = "finance", request_body = NewBudget, security(("access_token" = [])),
    responses(
        (status = 201, body = Budget),
        (status = 404, description = "category_not_found", body = crate::http::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "budget_exists", body = crate::http::error::Problem, content_type = "application/problem+json"),
    ))]
async fn create_budget(
    user: AuthUser,
    State(state): State<AppState>,
    Json(request): Json<NewBudget>,
) -> Result<(StatusCode, axum::Json<Budget>), ApiError> {
    let row = state.finance.create_budget(user.customer_id, new_budget(request)?).await?;
    Ok((StatusCode::CREATED, axum::Json(budget_view(&state, &row).await?)))
}

/// One of my budgets, with this month's status.
#[utoipa::path(get, path = "/v1/budgets/{id}", tag = "finance", params(("id" = Uuid, Path)), security(("access_token" = [])),
    responses((status = 200, body = Budget)))]
async fn get_budget(
    user: AuthUser,
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> Result<axum::Json<Budget>, ApiError> {
    let row = state.finance.budget(user.customer_id, id).await?;
    Ok(axum::Json(budget_view(&state, &row).await?))
}

/// Changes to a budget.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BudgetPatch {
    pub amount: Option<i64>,
    pub rollover: Option<bool>,
}

/// Changes one of my budgets' amount or rollover.
#[utoipa::path(patch, path = "/v1/budgets/{id}", tag = "finance", params(("id" = Uuid, Path)), request_body = BudgetPatch,
    security(("access_token" = [])),
    responses((status = 200, body = Budget)))]
async fn update_budget(
    user: AuthUser,
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    Json(request): Json<BudgetPatch>,
) -> Result<axum::Json<Budget>, ApiError> {
    let change = BudgetChange {
        amount: request
            .amount
            .map(|amount| validate::amount("/amount", amount, BUDGET_AMOUNT_MAX))
            .transpose()?,
        rollover: request.rollover,
    };
    let row = state.finance.change_budget(user.customer_id, id, change).await?;
    Ok(axum::Json(budget_view(&state, &row).await?))
}

/// Deletes one of my budgets.
#[utoipa::path(delete, path = "/v1/budgets/{id}", tag = "finance", params(("id" = Uuid, Path)), security(("access_token" = [])),
    responses((status = 204, description = "Deleted")))]
async fn delete_budget(
    user: AuthUser,
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> Result<StatusCode, ApiError> {
    state.finance.delete_budget(user.customer_id, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Which month.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct MonthQuery {
    /// Default: the current month (UTC).
    pub year: Option<i32>,
    /// 1 to 12.
    pub month: Option<u8>,
}

/// Where one of my budgets stands in a month: spent, remaining, forecast.
#[utoipa::path(get, path = "/v1/budgets/{id}/status", tag = "finance", params(("id" = Uuid, Path), MonthQuery),
    security(("access_token" = [])),
    responses((status = 200, body = BudgetStatus)))]
async fn budget_status(
    user: AuthUser,
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    Query(query): Query<MonthQuery>,
) -> Result<axum::Json<BudgetStatus>, ApiError> {
    let row = state.finance.budget(user.customer_id, id).await?;
    let (this_year, this_month) = reports::month_of(store::now_ns() as i64);
    let (year, month_number) = (query.year.unwrap_or(this_year), query.month.unwrap_or(this_month));
    month(year, month_number)?;
    Ok(axum::Json(state.finance.budget_status(&row, year, month_number).await?))
}

/// My monthly report: income, spending and net per currency, spending by category, top
/// merchants, and the previous month for comparison.
#[utoipa::path(get, path = "/v1/reports/monthly/{year}/{month}", tag = "reports",
    params(("year" = i32, Path), ("month" = u8, Path)), security(("access_token" = [])),
    responses((status = 200, body = MonthlyReport)))]
async fn monthly(
    user: AuthUser,
    State(state): State<AppState>,
    Path((year, month_number)): Path<(i32, u8)>,
) -> Result<axum::Json<MonthlyReport>, ApiError> {
    month(year, month_number)?;
    Ok(axum::Json(state.finance.monthly_report(user.customer_id, year, month_number).await?))
}

/// My month in a few figures: per currency, spending and income against the month
/// before and the three categories whose spending moved most; and my budgets at risk
/// (exceeded, at 80 % or more, or forecast past what they allow at the month's pace).
#[utoipa::path(get, path = "/v1/reports/monthly/{year}/{month}/summary", tag = "reports",
    params(("year" = i32, Path), ("month" = u8, Path)), security(("access_token" = [])),
    responses((status = 200, body = crate::finance::reports::MonthlySummary)))]
async fn monthly_summary(
    user: AuthUser,
    State(state): State<AppState>,
    Path((year, month_number)): Path<(i32, u8)>,
) -> Result<axum::Json<crate::finance::reports::MonthlySummary>, ApiError> {
    month(year, month_number)?;
    Ok(axum::Json(state.finance.monthly_summary(user.customer_id, year, month_number).await?))
}

/// One currency's spending per category.
#[derive(Debug, Serialize, ToSchema)]
pub struct CurrencyCategories {
    pub currency: String,
    pub categories: Vec<CategoryLine>,
}

/// My spending per category (not rolled up) in a month, per currency.
#[utoipa::path(get, path = "/v1/reports/categories/{year}/{month}", tag = "reports",
    params(("year" = i32, Path), ("month" = u8, Path)), security(("access_token" = [])),
    responses((status = 200, body = Vec<CurrencyCategories>)))]
async fn categories(
    user: AuthUser,
    State(state): State<AppState>,
    Path((year, month_number)): Path<(i32, u8)>,
) -> Result<axum::Json<Vec<CurrencyCategories>>, ApiError> {
    month(year, month_number)?;
    let report = state.finance.category_report(user.customer_id, year, month_number).await?;
    Ok(axum::Json(
        report
            .into_iter()
            .map(|(currency, categories)| CurrencyCategories { currency, categories })
            .collect(),
    ))
}

/// All time and the last 12 months.
#[derive(Debug, Serialize, ToSchema)]
pub struct Summary {
    pub all_time: Vec<Totals>,
    /// The current month and the 11 before it.
    pub last_12_months: Vec<Totals>,
}

/// My totals per currency: all time and the last 12 months.
#[utoipa::path(get, path = "/v1/reports/summary", tag = "reports", security(("access_token" = [])),
    responses((status = 200, body = Summary)))]
async fn summary(user: AuthUser, State(state): State<AppState>) -> Result<axum::Json<Summary>, ApiError> {
    let (mut year, mut month_number) = reports::month_of(store::now_ns() as i64);
    let end = reports::month_range(year, month_number).map_or(i64::MAX, |(_, end)| end);
    for _ in 0..11 {
        (year, month_number) = reports::previous(year, month_number);
    }
    let start = reports::month_range(year, month_number).map_or(0, |(start, _)| start);
    Ok(axum::Json(Summary {
        all_time: state.finance.totals(user.customer_id, 0, i64::MAX).await?,
        last_12_months: state.finance.totals(user.customer_id, start, end).await?,
    }))
}

/// How many months.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TrendsQuery {
    /// 1 to 36 (default 6), ending with the current month.
    pub months: Option<u32>,
}

/// My income and spending per month, oldest first.
#[utoipa::path(get, path = "/v1/reports/trends", tag = "reports", params(TrendsQuery), security(("access_token" = [])),
    responses((status = 200, body = Vec<TrendMonth>)))]
async fn trends(
    user: AuthUser,
    State(state): State<AppState>,
    Query(query): Query<TrendsQuery>,
) -> Result<axum::Json<Vec<TrendMonth>>, ApiError> {
    let months = query.months.unwrap_or(6);
    if !(1..=TRENDS_MONTHS_MAX).contains(&months) {
        return Err(ApiError::field("months", format!("must be 1 to {TRENDS_MONTHS_MAX}")));
    }
    let now = reports::month_of(store::now_ns() as i64);
    Ok(axum::Json(state.finance.trends(user.customer_id, now, months).await?))
}

/// All my expenses as CSV (newest first; amounts in minor units).
#[utoipa::path(get, path = "/v1/exports/expenses.csv", tag = "reports", security(("access_token" = [])),
    responses((status = 200, description = "CSV", content_type = "text/csv", body = String)))]
async fn export_expenses(user: AuthUser, State(state): State<AppState>) -> Result<Response, ApiError> {
    let categories = state.finance.categories(user.customer_id).await?;
    let mut out = String::from(
        "id,occurred_at,amount,currency,merchant,description,category,categorized_by,tags,source\n",
    );
    let mut before = None;
    let mut rows = 0;
    while rows < EXPORT_ROWS_MAX {
        let filter = ExpenseFilter {
            customer_id: user.customer_id,
            before,
            limit: store::EXPENSES_PAGE_MAX,
            ..Default::default()
        };
        let page = state.finance.expenses(&filter).await?;
        if page.is_empty() {
            break;
        }
        rows += page.len();
        before = page.last().map(|row| (row.occurred_at, row.id));
        for row in &page {
            let category =
                categories.iter().find(|c| c.id == row.category_id).map_or("", |c| c.name.as_str());
            let fields = [
                row.id.to_string(),
                nanos(row.occurred_at),
                row.amount.to_string(),
                row.currency.clone(),
                row.merchant.clone().unwrap_or_default(),
                row.description.clone().unwrap_or_default(),
                category.to_owned(),
                row.categorized_by.clone(),
                row.tags.replace(',', ";"),
                row.source.clone(),
            ];
            export::push_csv_line(&mut out, &fields);
        }
    }
    Ok(export::csv_response("expenses.csv", out))
}
