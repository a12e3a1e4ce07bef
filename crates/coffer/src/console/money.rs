//! Money management, one page a month (`/app/money?month=2026-12`): the monthly report
//! with its charts (spending by category, income against spending over six months),
//! budgets with how much of each is used, the month's expenses — each with how it was
//! categorised and how sure that was, and a way to move it to another category (a
//! correction can teach a rule) — and forms to add an expense or a budget.
//!
//! Everything is the finance service's: the report, the trends, budget states,
//! categorisation and rule learning; this module only parses forms and lays out.

use std::collections::HashMap;

use askama::Template;
use axum::{
    extract::{Query, State},
    http::{HeaderValue, header},
    response::{IntoResponse, Redirect, Response},
};
use serde::Deserialize;
use store::{CategoryRow, ExpenseFilter};
use uuid::Uuid;

use super::{Chrome, IdPath, PageError, Problems, charts, form_page, session::Posted, session::Signed};
use crate::{
    finance::{ExpensePatch, reports},
    http::{
        AppState,
        dates::nanos,
        error::ApiError,
        routes::{
            finance::{NAME_LEN_MAX, NewExpenseBody, TEXT_LEN_MAX, record_expense},
            reports::{NewBudget, new_budget},
        },
        validate,
    },
    wallets::{
        Currency,
        money::{CURRENCIES, shown},
    },
};

/// Expenses listed for a month at most.
const EXPENSES_SHOWN: u32 = 100;
/// Months in the trend chart.
const TREND_MONTHS: u32 = 6;

/// Which month a page is about: `?month=YYYY-MM`, this month by default.
#[derive(Deserialize, Default)]
pub struct MonthQuery {
    month: Option<String>,
    currency: Option<String>,
    done: Option<String>,
}

fn month(query: &MonthQuery) -> Result<(i32, u8), ApiError> {
    let Some(text) = query.month.as_deref().filter(|text| !text.is_empty()) else {
        return Ok(reports::month_of(store::now_ns() as i64));
    };
    let parsed =
        text.split_once('-').and_then(|(year, month)| Some((year.parse().ok()?, month.parse().ok()?)));
    match parsed {
        Some((year, month)) if (1970..=2200).contains(&year) && (1..=12).contains(&month) => {
            Ok((year, month))
        }
        _ => Err(ApiError::field("/month", "a month, YYYY-MM")),
    }
}

fn month_text((year, month): (i32, u8)) -> String {
    format!("{year:04}-{month:02}")
}

fn next((year, month): (i32, u8)) -> (i32, u8) {
    if month == 12 { (year + 1, 1) } else { (year, month + 1) }
}

/// Category names for people: a child as "Parent › Child".
fn names(categories: &[CategoryRow]) -> HashMap<Uuid, String> {
    let by_id: HashMap<Uuid, &CategoryRow> = categories.iter().map(|c| (c.id, c)).collect();
    categories
        .iter()
        .map(|c| {
            let name = match c.parent_id.and_then(|parent| by_id.get(&parent)) {
                Some(parent) => format!("{} › {}", parent.name, c.name),
                None => c.name.clone(),
            };
            (c.id, name)
        })
        .collect()
}

/// A choice in a list.
pub struct Choice {
    pub value: String,
    pub label: String,
}

/// One currency's month.
pub struct CurrencyMonth {
    pub currency: String,
    pub income: String,
    pub spending: String,
    pub net: String,
    pub categories: Vec<(String, String, i64)>,
}

pub struct BudgetLine {
    pub id: Uuid,
    pub category: String,
    pub spent: String,
    pub available: String,
    pub percent: i64,
    pub state: &'static str,
}

pub struct ExpenseLine {
    pub id: Uuid,
    pub when: String,
    pub what: String,
    pub amount: String,
    pub category_id: Uuid,
    pub category: String,
    pub by: String,
    pub confidence: i64,
}

#[derive(Template)]
#[template(path = "console/money.html")]
struct MoneyPage {
    chrome: Chrome,
    csrf: String,
    month: String,
    previous: String,
    following: String,
    currencies: Vec<CurrencyMonth>,
    trend_currency: Option<String>,
    trend: Vec<(String, String, String)>,
    budgets: Vec<BudgetLine>,
    expenses: Vec<ExpenseLine>,
    categories: Vec<Choice>,
    currency_codes: Vec<&'static str>,
    problems: Problems,
    failed: &'static str,
    done: Option<String>,
}

/// `GET /app/money`.
pub async fn money(
    State(state): State<AppState>,
    signed: Signed,
    Query(query): Query<MonthQuery>,
) -> Result<Response, PageError> {
    let month = month(&query)?;
    let done = match query.done.as_deref() {
        Some("added") => Some("Expense added.".to_owned()),
        Some("moved") => Some("Expense moved.".to_owned()),
        Some("learned") => Some(
            "Expense moved, and Coffer learned a rule: expenses like it will go there from now on."
                .to_owned(),
        ),
        Some("budget") => Some("Budget saved.".to_owned()),
        Some("changed") => Some("Expense changed.".to_owned()),
        Some("deleted") => Some("Expense deleted.".to_owned()),
        _ => None,
    };
    money_page(&state, &signed, month, Problems::default(), "", done).await
}

async fn money_page(
    state: &AppState,
    signed: &Signed,
    (year, month_number): (i32, u8),
    problems: Problems,
    failed: &'static str,
    done: Option<String>,
) -> Result<Response, PageError> {
    let customer_id = signed.customer_id;
    let finance = &state.finance;
    let categories = finance.categories(customer_id).await.map_err(ApiError::from)?;
    let names = names(&categories);
    let report = finance.monthly_report(customer_id, year, month_number).await.map_err(ApiError::from)?;
    let currencies: Vec<CurrencyMonth> = report
        .currencies
        .iter()
        .map(|line| CurrencyMonth {
            currency: line.totals.currency.clone(),
            income: shown(line.totals.income, &line.totals.currency),
            spending: shown(line.totals.spending, &line.totals.currency),
            net: shown(line.totals.net, &line.totals.currency),
            categories: line
                .by_category
                .iter()
                .map(|c| (c.name.clone(), shown(c.total, &line.totals.currency), c.percent))
                .collect(),
        })
        .collect();
    let trend_currency = currencies.first().map(|c| c.currency.clone());
    let trends =
        finance.trends(customer_id, (year, month_number), TREND_MONTHS).await.map_err(ApiError::from)?;
    let trend = match &trend_currency {
        Some(code) => trends
            .iter()
            .map(|m| {
                let totals = m.currencies.iter().find(|t| &t.currency == code);
                (
                    month_text((m.year, m.month)),
                    shown(totals.map_or(0, |t| t.income), code),
                    shown(totals.map_or(0, |t| t.spending), code),
                )
            })
            .collect(),
        None => Vec::new(),
    };
    let mut budgets = Vec::new();
    for row in finance.budgets(customer_id).await.map_err(ApiError::from)? {
        let status = finance.budget_status(&row, year, month_number).await.map_err(ApiError::from)?;
        budgets.push(BudgetLine {
            id: row.id,
            category: names.get(&row.category_id).cloned().unwrap_or_default(),
            spent: shown(status.spent, &row.currency),
            available: shown(status.available, &row.currency),
            percent: status.percent_used.clamp(0, 100),
            state: status.state,
        });
    }
    let (from, to) =
        reports::month_range(year, month_number).ok_or_else(|| ApiError::field("/month", "no such month"))?;
    let filter = ExpenseFilter {
        customer_id,
        before: None,
        from: Some(from),
        to: Some(to),
        category_ids: Vec::new(),
        merchant: None,
        amount_min: None,
        amount_max: None,
        tag: None,
        text: None,
        limit: EXPENSES_SHOWN,
    };
    let expenses = finance
        .expenses(&filter)
        .await
        .map_err(ApiError::from)?
        .into_iter()
        .map(|row| ExpenseLine {
            id: row.id,
            when: nanos(row.occurred_at).chars().take(10).collect(),
            what: [row.merchant.as_deref(), row.description.as_deref()]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(" · "),
            amount: shown(row.amount, &row.currency),
            category_id: row.category_id,
            category: names.get(&row.category_id).cloned().unwrap_or_default(),
            by: categorised_by(&row.categorized_by),
            confidence: (row.confidence * 100.0).round() as i64,
        })
        .collect();
    let mut choices: Vec<Choice> =
        categories.iter().map(|c| Choice { value: c.id.to_string(), label: names[&c.id].clone() }).collect();
    choices.sort_by(|a, b| a.label.cmp(&b.label));
    let view = MoneyPage {
        chrome: Chrome::new("Money", "money", Some(signed.csrf())),
        csrf: signed.csrf().to_owned(),
        month: month_text((year, month_number)),
        previous: month_text(reports::previous(year, month_number)),
        following: month_text(next((year, month_number))),
        currencies,
        trend_currency,
        trend,
        budgets,
        expenses,
        categories: choices,
        currency_codes: CURRENCIES.iter().map(|c| c.code()).collect(),
        problems,
        failed,
        done,
    };
    Ok(form_page(&view, &view.problems))
}

/// How an expense got its category, for people.
fn categorised_by(by: &str) -> String {
    match by {
        "manual" => "by you".to_owned(),
        "merchant" => "by its merchant".to_owned(),
        "mcc" => "by its merchant code".to_owned(),
        "none" => "not recognised".to_owned(),
        rule if rule.starts_with("rule:") => "by one of your rules".to_owned(),
        other => other.to_owned(),
    }
}

#[derive(Deserialize)]
pub struct ExpenseForm {
    #[serde(default)]
    amount: String,
    #[serde(default)]
    currency: String,
    #[serde(default)]
    merchant: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    date: String,
    #[serde(default)]
    category: String,
}

fn optional(text: &str) -> Option<String> {
    Some(text.trim().to_owned()).filter(|text| !text.is_empty())
}

/// `POST /app/money/expenses`: the API's manual expense.
pub async fn add_expense(
    State(state): State<AppState>,
    signed: Signed,
    posted: Posted<ExpenseForm>,
) -> Result<Response, PageError> {
    signed.check(posted.csrf.as_deref())?;
    let form = posted.form;
    let month_of_date = |date: &str| {
        month(&MonthQuery { month: date.get(..7).map(str::to_owned), ..MonthQuery::default() }).ok()
    };
    let shown_month = month_of_date(&form.date).unwrap_or_else(|| reports::month_of(store::now_ns() as i64));
    let amount = positive_amount(&form.currency, &form.amount);
    let Some(amount) = amount else {
        let problems = Problems::field("/amount", "an amount above zero, like 12.50");
        return money_page(&state, &signed, shown_month, problems, "expense", None).await;
    };
    let category_id = match optional(&form.category) {
        None => None,
        Some(text) => {
            Some(Uuid::parse_str(&text).map_err(|_| ApiError::field("/category_id", "no such category"))?)
        }
    };
    let request = NewExpenseBody {
        amount,
        currency: form.currency.clone(),
        description: optional(&form.description),
        merchant: optional(&form.merchant),
        mcc: None,
        occurred_at: optional(&form.date).map(|date| format!("{date}T12:00:00Z")),
        category_id,
        tags: Vec::new(),
        notes: None,
        wallet_id: None,
    };
    match record_expense(&state, signed.customer_id, request).await {
        Ok(_) => {
            Ok(Redirect::to(&format!("/app/money?month={}&done=added", month_text(shown_month)))
                .into_response())
        }
        Err(error) if error.status().is_client_error() => {
            let problems = Problems::of(&error);
            money_page(&state, &signed, shown_month, problems, "expense", None).await
        }
        Err(error) => Err(error.into()),
    }
}

#[derive(Deserialize)]
pub struct CategoryForm {
    #[serde(default)]
    category: String,
    #[serde(default)]
    month: String,
}

/// `POST /app/money/expenses/{id}/category`: moves an expense to another category; the
/// finance service may learn a rule from the correction.
pub async fn recategorise(
    State(state): State<AppState>,
    signed: Signed,
    IdPath(id): IdPath,
    posted: Posted<CategoryForm>,
) -> Result<Response, PageError> {
    signed.check(posted.csrf.as_deref())?;
    let form = posted.form;
    let category_id = Uuid::parse_str(form.category.trim())
        .map_err(|_| ApiError::field("/category_id", "no such category"))?;
    let patch = ExpensePatch { category_id: Some(category_id), ..ExpensePatch::default() };
    let (_, learned) =
        state.finance.update_expense(signed.customer_id, id, patch).await.map_err(ApiError::from)?;
    let month = month(&MonthQuery { month: Some(form.month), ..MonthQuery::default() })?;
    let done = if learned.is_some() { "learned" } else { "moved" };
    Ok(Redirect::to(&format!("/app/money?month={}&done={done}", month_text(month))).into_response())
}

#[derive(Deserialize)]
pub struct BudgetForm {
    #[serde(default)]
    category: String,
    #[serde(default)]
    currency: String,
    #[serde(default)]
    amount: String,
    #[serde(default)]
    month: String,
}

/// `POST /app/money/budgets`: a monthly budget for a category.
pub async fn add_budget(
    State(state): State<AppState>,
    signed: Signed,
    posted: Posted<BudgetForm>,
) -> Result<Response, PageError> {
    signed.check(posted.csrf.as_deref())?;
    let form = posted.form;
    let shown_month = month(&MonthQuery { month: Some(form.month.clone()), ..MonthQuery::default() })?;
    let amount = positive_amount(&form.currency, &form.amount);
    let Some(amount) = amount else {
        let problems = Problems::field("/amount", "an amount above zero, like 300");
        return money_page(&state, &signed, shown_month, problems, "budget", None).await;
    };
    let created = match Uuid::parse_str(form.category.trim()) {
        Err(_) => Err(ApiError::field("/category_id", "choose a category")),
        Ok(category_id) => {
            match new_budget(NewBudget { category_id, currency: form.currency, amount, rollover: false }) {
                Ok(new) => state.finance.create_budget(signed.customer_id, new).await.map_err(ApiError::from),
                Err(error) => Err(error),
            }
        }
    };
    match created {
        Ok(_) => Ok(Redirect::to(&format!("/app/money?month={}&done=budget", month_text(shown_month)))
            .into_response()),
        Err(error) if error.status().is_client_error() => {
            money_page(&state, &signed, shown_month, Problems::of(&error), "budget", None).await
        }
        Err(error) => Err(error.into()),
    }
}

/// `GET /app/money/categories.svg?month=&currency=`: the month's spending by category.
pub async fn categories_chart(
    State(state): State<AppState>,
    signed: Signed,
    Query(query): Query<MonthQuery>,
) -> Result<Response, PageError> {
    let (year, month_number) = month(&query)?;
    let report =
        state.finance.monthly_report(signed.customer_id, year, month_number).await.map_err(ApiError::from)?;
    let code = query.currency.unwrap_or_default();
    let currency =
        Currency::parse(&code).ok_or_else(|| ApiError::field("/currency", "not a supported currency"))?;
    let line = report.currencies.iter().find(|line| line.totals.currency == code);
    let (labels, values): (Vec<String>, Vec<f64>) = line
        .map(|line| line.by_category.iter().map(|c| (c.name.clone(), major(currency, c.total))).unzip())
        .unwrap_or_default();
    svg(charts::bars(&labels, &values, code.as_str()))
}

/// `GET /app/money/trend.svg?month=&currency=`: income and spending over six months.
pub async fn trend_chart(
    State(state): State<AppState>,
    signed: Signed,
    Query(query): Query<MonthQuery>,
) -> Result<Response, PageError> {
    let last = month(&query)?;
    let code = query.currency.unwrap_or_default();
    let currency =
        Currency::parse(&code).ok_or_else(|| ApiError::field("/currency", "not a supported currency"))?;
    let trends =
        state.finance.trends(signed.customer_id, last, TREND_MONTHS).await.map_err(ApiError::from)?;
    let mut months = Vec::new();
    let (mut income, mut spending) = (Vec::new(), Vec::new());
    for m in &trends {
        months.push(month_text((m.year, m.month)));
        let totals = m.currencies.iter().find(|t| t.currency == code);
        income.push(major(currency, totals.map_or(0, |t| t.income)));
        spending.push(major(currency, totals.map_or(0, |t| t.spending)));
    }
    let series = [("Income", charts::INCOME, income), ("Spending", charts::SPENDING, spending)];
    svg(charts::lines(&months, &series, code.as_str()))
}

/// A positive amount typed in major units of `currency`, as the minor units the finance
/// service keeps; `None` for anything else.
fn positive_amount(currency: &str, text: &str) -> Option<i64> {
    Currency::parse(currency)?
        .parse_major(text)
        .and_then(|amount| i64::try_from(amount).ok())
        .filter(|amount| *amount > 0)
}

fn major(currency: Currency, minor: i64) -> f64 {
    minor as f64 / 10f64.powi(i32::from(currency.exponent()))
}

pub(super) fn svg<E: std::fmt::Display>(drawn: Result<String, E>) -> Result<Response, PageError> {
    let svg = drawn.map_err(|error| ApiError::Internal(anyhow::anyhow!("chart: {error}")))?;
    let mut response = svg.into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("image/svg+xml"));
    Ok(response)
}

#[derive(Template)]
#[template(path = "console/expense.html")]
struct ExpensePage {
    chrome: Chrome,
    csrf: String,
    id: Uuid,
    amount: String,
    currency: String,
    merchant: String,
    description: String,
    date: String,
    notes: String,
    month: String,
    problems: Problems,
}

/// `GET /app/money/expenses/{id}`: an expense's fields, to change or delete it.
pub async fn expense(
    State(state): State<AppState>,
    signed: Signed,
    IdPath(id): IdPath,
) -> Result<Response, PageError> {
    expense_page(&state, &signed, id, Problems::default()).await
}

async fn expense_page(
    state: &AppState,
    signed: &Signed,
    id: Uuid,
    problems: Problems,
) -> Result<Response, PageError> {
    let row = state.finance.expense(signed.customer_id, id).await.map_err(ApiError::from)?;
    let date: String = nanos(row.occurred_at).chars().take(10).collect();
    let amount = Currency::parse(&row.currency)
        .map_or_else(|| row.amount.to_string(), |c| c.major(i128::from(row.amount)));
    let view = ExpensePage {
        chrome: Chrome::new("Expense", "money", Some(signed.csrf())),
        csrf: signed.csrf().to_owned(),
        id,
        amount,
        currency: row.currency,
        merchant: row.merchant.unwrap_or_default(),
        description: row.description.unwrap_or_default(),
        month: date[..7].to_owned(),
        date,
        notes: row.notes.unwrap_or_default(),
        problems,
    };
    Ok(form_page(&view, &view.problems))
}

#[derive(Deserialize)]
pub struct ExpenseEditForm {
    #[serde(default)]
    amount: String,
    #[serde(default)]
    merchant: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    date: String,
    #[serde(default)]
    notes: String,
    delete: Option<String>,
}

/// `POST /app/money/expenses/{id}`: the expense changed (the finance service's
/// `update_expense`, so budgets and categorisation follow), or deleted (`delete`).
pub async fn edit_expense(
    State(state): State<AppState>,
    signed: Signed,
    IdPath(id): IdPath,
    posted: Posted<ExpenseEditForm>,
) -> Result<Response, PageError> {
    signed.check(posted.csrf.as_deref())?;
    let form = posted.form;
    let row = state.finance.expense(signed.customer_id, id).await.map_err(ApiError::from)?;
    let month: String = nanos(row.occurred_at).chars().take(7).collect();
    if form.delete.is_some() {
        state.finance.delete_expense(signed.customer_id, id).await.map_err(ApiError::from)?;
        return Ok(Redirect::to(&format!("/app/money?month={month}&done=deleted")).into_response());
    }
    let amount = positive_amount(&row.currency, &form.amount);
    let Some(amount) = amount else {
        return expense_page(
            &state,
            &signed,
            id,
            Problems::field("/amount", "an amount above zero, like 12.50"),
        )
        .await;
    };
    let occurred_at = match optional(&form.date) {
        None => None,
        Some(date) => {
            match crate::http::dates::instant::<i64>("/occurred_at", &format!("{date}T12:00:00Z")) {
                Ok(at) => Some(at),
                Err(error) => return expense_page(&state, &signed, id, Problems::of(&error)).await,
            }
        }
    };
    let text = |field: &str, value: &str, max| validate::text(field, optional(value).as_deref(), max);
    let checked = (|| {
        Ok::<_, ApiError>(ExpensePatch {
            amount: Some(amount),
            merchant: Some(text("/merchant", &form.merchant, NAME_LEN_MAX)?),
            description: Some(text("/description", &form.description, TEXT_LEN_MAX)?),
            notes: Some(text("/notes", &form.notes, TEXT_LEN_MAX)?),
            occurred_at,
            ..ExpensePatch::default()
        })
    })();
    let patch = match checked {
        Ok(patch) => patch,
        Err(error) => return expense_page(&state, &signed, id, Problems::of(&error)).await,
    };
    state.finance.update_expense(signed.customer_id, id, patch).await.map_err(ApiError::from)?;
    let month: String = occurred_at.map_or(month, |at| nanos(at).chars().take(7).collect());
    Ok(Redirect::to(&format!("/app/money?month={month}&done=changed")).into_response())
}
