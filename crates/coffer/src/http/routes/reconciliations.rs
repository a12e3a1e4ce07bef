//! Reconciliation over HTTP (admin): `POST /v1/reconciliations` matches a settlement file
//! against a system account and answers with the report; `GET /v1/reconciliations` lists
//! the latest, `GET /v1/reconciliations/{id}` has one with its report and
//! `GET /v1/reconciliations/{id}/report.csv` the same as CSV. The built-in mock provider's
//! own settlement file is `GET /v1/admin/mock-provider/settlement`. The rules are
//! `crate::payments::reconciliation`'s.

use axum::{
    Extension, Router,
    extract::{DefaultBodyLimit, State},
    http::StatusCode,
    response::Response,
    routing::{get, post},
};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::finance::import::DateFormat;
use crate::http::caller::AdminUser;
use crate::http::{
    AppState,
    dates::day,
    error::ApiError,
    export::{csv_response, push_csv_line},
    extract::{BodyLimit, Json, Path, Query},
    validate,
};
use crate::payments::matching::{DAY_NS, MatchRule};
use crate::payments::reconciliation::{
    ReconcileError, ReconciliationReport, ReconciliationSummary, SettlementAccount, SettlementColumns,
    Upload, WINDOW_DAYS_DEFAULT, WINDOW_DAYS_MAX, settlement_csv,
};
use crate::wallets::Currency;

/// Bytes a settlement upload may carry at most (10,000 lines fit easily).
const UPLOAD_BYTES_MAX: usize = 2 * 1024 * 1024;
/// Days one mock settlement export may span at most.
const EXPORT_DAYS_MAX: i64 = 366;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/v1/reconciliations",
            get(list_reconciliations).merge(
                post(create_reconciliation)
                    .layer((DefaultBodyLimit::max(UPLOAD_BYTES_MAX), Extension(BodyLimit(UPLOAD_BYTES_MAX)))),
            ),
        )
        .route("/v1/reconciliations/{id}", get(get_reconciliation))
        .route("/v1/reconciliations/{id}/report.csv", get(export_reconciliation))
        .route("/v1/admin/mock-provider/settlement", get(mock_settlement))
}

/// A settlement file to reconcile.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SettlementUpload {
    /// The system account the file concerns: `card_settlement` (the card processor's
    /// file, against top-ups) or `payouts` (the bank's, against withdrawals).
    pub account: SettlementAccount,
    /// The account's currency (ISO 4217); lines in another are rejected.
    pub currency: String,
    /// The CSV file's text, with a header line. Amounts in major units, positive.
    pub csv: String,
    /// Which columns hold what; default `date`, `amount`, `reference`, `currency` (the mock
    /// provider's export).
    #[serde(default)]
    pub columns: Option<SettlementColumns>,
    #[serde(default = "super::finance::default_date_format")]
    pub date_format: DateFormat,
    /// `.` (default) or `,`.
    #[serde(default = "super::finance::default_decimal")]
    pub decimal: String,
    /// `,` (default) or `;`.
    #[serde(default = "super::finance::default_delimiter")]
    pub delimiter: String,
    /// The rules, in order (each once); default `reference`, `amount_date`, `netted`.
    #[serde(default)]
    pub rules: Option<Vec<MatchRule>>,
    /// Days either side of a line's date that the date rules accept, 0 to 31; default 2.
    #[serde(default)]
    pub window_days: Option<u32>,
}

impl From<ReconcileError> for ApiError {
    fn from(error: ReconcileError) -> Self {
        match error {
            ReconcileError::File(reason) => {
                ApiError::rejected(StatusCode::UNPROCESSABLE_ENTITY, "settlement_unreadable", reason)
            }
            ReconcileError::TooManyTransfers => ApiError::rejected(
                StatusCode::UNPROCESSABLE_ENTITY,
                "settlement_period_too_long",
                error.to_string(),
            ),
            ReconcileError::Conflict => {
                ApiError::rejected(StatusCode::CONFLICT, "reconciliation_conflict", error.to_string())
            }
            ReconcileError::Store(error) => error.into(),
            ReconcileError::Ledger(reason) => ApiError::Internal(anyhow::anyhow!(reason)),
        }
    }
}

/// Reconciles a settlement file (admin): each line matched to ledger transfers on the
/// account by the rules in order (exact reference; amount and date within the window;
/// several transfers of one day netted into one line). Matched transfers are marked (once
/// ever); the report has every line's outcome, the period's unmatched transfers, amount
/// differences and rejected lines. Unmatched items older than
/// `COFFER_RECONCILIATION_OVERDUE_DAYS` emit `reconciliation.unmatched`.
#[utoipa::path(post, path = "/v1/reconciliations", tag = "operations", request_body = SettlementUpload,
    security(("admin_api_key" = []), ("access_token" = [])),
    responses(
        (status = 201, body = ReconciliationReport),
        (status = 403, description = "Not an admin", body = crate::http::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "reconciliation_conflict: another reconciliation marked the same transfers meanwhile", body = crate::http::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "settlement_unreadable, settlement_period_too_long, or a field", body = crate::http::error::Problem, content_type = "application/problem+json"),
    ))]
async fn create_reconciliation(
    _admin: AdminUser,
    State(state): State<AppState>,
    Json(request): Json<SettlementUpload>,
) -> Result<(StatusCode, axum::Json<ReconciliationReport>), ApiError> {
    let currency = Currency::parse(&request.currency)
        .ok_or_else(|| ApiError::field("/currency", "not a supported currency"))?;
    let (decimal, delimiter) = validate::csv_marks(&request.decimal, &request.delimiter)?;
    let rules = request.rules.unwrap_or_else(|| MatchRule::ALL.to_vec());
    if rules.is_empty() {
        return Err(ApiError::field("/rules", "at least one rule"));
    }
    if rules.iter().enumerate().any(|(index, rule)| rules[..index].contains(rule)) {
        return Err(ApiError::field("/rules", "each rule at most once"));
    }
    let window_days = request.window_days.unwrap_or(WINDOW_DAYS_DEFAULT);
    if window_days > WINDOW_DAYS_MAX {
        return Err(ApiError::field("/window_days", format!("at most {WINDOW_DAYS_MAX}")));
    }
    let upload = Upload {
        account: request.account,
        currency,
        csv: request.csv,
        columns: request.columns.unwrap_or_default(),
        date_format: request.date_format,
        decimal,
        delimiter,
        rules,
        window_days,
    };
    let report = state.reconciliations.reconcile(&upload).await?;
    Ok((StatusCode::CREATED, axum::Json(report)))
}

/// How many reconciliations to list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ReconciliationsQuery {
    /// 1 to 100; default 20.
    pub limit: Option<u32>,
}

/// The latest reconciliations, newest first, with their counts (admin).
#[utoipa::path(get, path = "/v1/reconciliations", tag = "operations", params(ReconciliationsQuery),
    security(("admin_api_key" = []), ("access_token" = [])),
    responses(
        (status = 200, body = Vec<ReconciliationSummary>),
        (status = 403, description = "Not an admin", body = crate::http::error::Problem, content_type = "application/problem+json"),
    ))]
async fn list_reconciliations(
    _admin: AdminUser,
    State(state): State<AppState>,
    Query(query): Query<ReconciliationsQuery>,
) -> Result<axum::Json<Vec<ReconciliationSummary>>, ApiError> {
    let limit = crate::http::paging::limit(query.limit)?;
    Ok(axum::Json(state.reconciliations.latest(limit).await?))
}

async fn report(state: &AppState, id: Uuid) -> Result<ReconciliationReport, ApiError> {
    state.reconciliations.get(id).await?.ok_or_else(|| ApiError::NotFound {
        code: "reconciliation_not_found",
        detail: format!("no reconciliation {id}"),
    })
}

/// One reconciliation with its report (admin).
#[utoipa::path(get, path = "/v1/reconciliations/{id}", tag = "operations", params(("id" = Uuid, Path)),
    security(("admin_api_key" = []), ("access_token" = [])),
    responses(
        (status = 200, body = ReconciliationReport),
        (status = 403, description = "Not an admin", body = crate::http::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "reconciliation_not_found", body = crate::http::error::Problem, content_type = "application/problem+json"),
    ))]
async fn get_reconciliation(
    _admin: AdminUser,
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> Result<axum::Json<ReconciliationReport>, ApiError> {
    Ok(axum::Json(report(&state, id).await?))
}

/// The report as CSV (admin): one row per line of the file (`side` = `settlement`) and
/// one per unmatched transfer (`side` = `ledger`); amounts in minor units.
#[utoipa::path(get, path = "/v1/reconciliations/{id}/report.csv", tag = "operations", params(("id" = Uuid, Path)),
    security(("admin_api_key" = []), ("access_token" = [])),
    responses(
        (status = 200, description = "CSV", content_type = "text/csv", body = String),
        (status = 403, description = "Not an admin", body = crate::http::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "reconciliation_not_found", body = crate::http::error::Problem, content_type = "application/problem+json"),
    ))]
async fn export_reconciliation(
    _admin: AdminUser,
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> Result<Response, ApiError> {
    let report = report(&state, id).await?;
    let mut out = String::from("side,line,date,reference,amount,status,rule,transfer_ids,difference\n");
    for line in &report.lines {
        let ids: Vec<String> = line.transfer_ids.iter().map(Uuid::to_string).collect();
        push_csv_line(
            &mut out,
            &[
                "settlement".into(),
                line.line.to_string(),
                line.date.clone(),
                line.reference.clone().unwrap_or_default(),
                line.amount.to_string(),
                word(line.status),
                line.rule.map(word).unwrap_or_default(),
                ids.join(" "),
                line.difference.map(|difference| difference.to_string()).unwrap_or_default(),
            ],
        );
    }
    for transfer in &report.unmatched_transfers {
        push_csv_line(
            &mut out,
            &[
                "ledger".into(),
                String::new(),
                transfer.timestamp.clone(),
                transfer.reference.clone().unwrap_or_default(),
                transfer.amount.to_string(),
                "unmatched".into(),
                String::new(),
                transfer.transfer_id.to_string(),
                String::new(),
            ],
        );
    }
    Ok(csv_response(&format!("reconciliation-{id}.csv"), out))
}

/// A unit enum's name as the JSON report spells it (`already_reconciled`, `amount_date`).
fn word(value: impl serde::Serialize) -> String {
    serde_json::to_value(value).ok().and_then(|value| value.as_str().map(str::to_owned)).unwrap_or_default()
}

/// Which settlement file of the mock provider.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SettlementQuery {
    /// `card_settlement` (its charges) or `payouts`.
    pub account: SettlementAccount,
    /// ISO 4217.
    pub currency: String,
    /// First day, `YYYY-MM-DD` (UTC).
    pub from: String,
    /// Last day, included.
    pub to: String,
    /// One line per day (reference `batch_YYYYMMDD`) instead of one per charge or payout.
    #[serde(default)]
    pub netted: bool,
}

/// The built-in mock provider's settlement file (admin): what it charged or paid out for
/// Coffer on the days asked, as CSV (`date,reference,amount,currency`, amounts in major
/// units) — the file a real processor or bank would send, to try reconciliation with.
/// The mock keeps what it did in memory: a restart forgets it.
#[utoipa::path(get, path = "/v1/admin/mock-provider/settlement", tag = "operations", params(SettlementQuery),
    security(("admin_api_key" = []), ("access_token" = [])),
    responses(
        (status = 200, description = "CSV", content_type = "text/csv", body = String),
        (status = 403, description = "Not an admin", body = crate::http::error::Problem, content_type = "application/problem+json"),
    ))]
async fn mock_settlement(
    _admin: AdminUser,
    State(state): State<AppState>,
    Query(query): Query<SettlementQuery>,
) -> Result<Response, ApiError> {
    let currency = Currency::parse(&query.currency)
        .ok_or_else(|| ApiError::field("currency", "not a supported currency"))?;
    let nanos = |field: &str, text: &str| -> Result<i64, ApiError> {
        let date = day(field, text)?;
        let seconds = date.midnight().assume_utc().unix_timestamp();
        Ok(seconds.max(0) * 1_000_000_000)
    };
    let (from, to) = (nanos("from", &query.from)?, nanos("to", &query.to)? + DAY_NS);
    if to <= from {
        return Err(ApiError::field("to", "must not be before from"));
    }
    if (to - from) / DAY_NS > EXPORT_DAYS_MAX {
        return Err(ApiError::field("to", format!("at most {EXPORT_DAYS_MAX} days from from")));
    }
    let settled = state.mock_provider.settlement(query.account, currency.code(), from as u64, to as u64);
    let name = format!("{}-{}-{}-{}.csv", query.account.as_str(), currency.code(), query.from, query.to);
    Ok(csv_response(&name, settlement_csv(&settled, currency, query.netted)))
}
