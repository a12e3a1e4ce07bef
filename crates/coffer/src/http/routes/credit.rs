//! Credit reports over HTTP: `POST /v1/credit/consent` (consent, and a report at once),
//! `DELETE /v1/credit/consent` (withdraw), `GET /v1/credit/consent` and
//! `GET /v1/credit/report` (the latest report, with the scores before it). The rules are
//! `crate::credit`'s.

use axum::{Router, extract::State, http::StatusCode, routing::get};
use serde::Serialize;
use store::CreditConsentRow;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::credit::CreditError;
use crate::credit::bureau::{AccountsSummary, Band, Factor};
use crate::http::{AppState, caller::AuthUser, error::ApiError};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/credit/consent", get(get_consent).post(give_consent).delete(withdraw_consent))
        .route("/v1/credit/report", get(get_report))
}

impl From<CreditError> for ApiError {
    fn from(error: CreditError) -> Self {
        let detail = error.to_string();
        match error {
            CreditError::NoConsent => ApiError::NotFound { code: "credit_consent_not_found", detail },
            CreditError::NoReport => ApiError::NotFound { code: "credit_report_not_found", detail },
            CreditError::Store(error) => error.into(),
        }
    }
}

fn at(nanos: i64) -> String {
    crate::rfc3339(u64::try_from(nanos).unwrap_or(0))
}

/// My consent to pull my credit report.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreditConsentView {
    /// `active` or `withdrawn`.
    pub status: String,
    pub granted_at: String,
    #[schema(required = true)]
    pub withdrawn_at: Option<String>,
    /// When the next report is pulled; `null` once withdrawn.
    #[schema(required = true)]
    pub next_pull_at: Option<String>,
    /// Why the last pull failed (it is retried); `null` after a good one.
    #[schema(required = true)]
    pub last_error: Option<String>,
    /// When my reports are deleted, once withdrawn.
    #[schema(required = true)]
    pub reports_deleted_after: Option<String>,
}

fn consent_view(consent: CreditConsentRow, retention: std::time::Duration) -> CreditConsentView {
    let retention = i64::try_from(retention.as_nanos()).unwrap_or(i64::MAX);
    CreditConsentView {
        status: if consent.withdrawn_at.is_some() { "withdrawn" } else { "active" }.into(),
        granted_at: at(consent.granted_at),
        withdrawn_at: consent.withdrawn_at.map(at),
        next_pull_at: consent.next_pull_at.map(at),
        last_error: consent.last_error,
        reports_deleted_after: consent.withdrawn_at.map(|withdrawn| at(withdrawn.saturating_add(retention))),
    }
}

/// Consent to Coffer pulling my credit report from the bureau, now and every refresh
/// period (`COFFER_CREDIT_REFRESH_S`). A report is pulled at once; when the bureau cannot
/// answer, `last_error` says so and the pull is retried.
#[utoipa::path(post, path = "/v1/credit/consent", tag = "finance", security(("access_token" = [])),
    responses((status = 201, body = CreditConsentView)))]
async fn give_consent(
    user: AuthUser,
    State(state): State<AppState>,
) -> Result<(StatusCode, axum::Json<CreditConsentView>), ApiError> {
    let consent = state.credit.consent(user.customer_id).await?;
    Ok((StatusCode::CREATED, axum::Json(consent_view(consent, state.credit.settings().retention))))
}

/// Withdraw my consent: no more pulls; my stored reports are deleted after the retention
/// period (`COFFER_CREDIT_RETENTION_DAYS`).
#[utoipa::path(delete, path = "/v1/credit/consent", tag = "finance", security(("access_token" = [])),
    responses(
        (status = 200, body = CreditConsentView),
        (status = 404, description = "credit_consent_not_found: no consent in force", body = crate::http::error::Problem, content_type = "application/problem+json"),
    ))]
async fn withdraw_consent(
    user: AuthUser,
    State(state): State<AppState>,
) -> Result<axum::Json<CreditConsentView>, ApiError> {
    let consent = state.credit.withdraw(user.customer_id).await?;
    Ok(axum::Json(consent_view(consent, state.credit.settings().retention)))
}

/// My consent, as it stands.
#[utoipa::path(get, path = "/v1/credit/consent", tag = "finance", security(("access_token" = [])),
    responses(
        (status = 200, body = CreditConsentView),
        (status = 404, description = "credit_consent_not_found: never given", body = crate::http::error::Problem, content_type = "application/problem+json"),
    ))]
async fn get_consent(
    user: AuthUser,
    State(state): State<AppState>,
) -> Result<axum::Json<CreditConsentView>, ApiError> {
    let consent = state.credit.consent_of(user.customer_id).await?.ok_or(CreditError::NoConsent)?;
    Ok(axum::Json(consent_view(consent, state.credit.settings().retention)))
}

/// An earlier report's score.
#[derive(Debug, Serialize, ToSchema)]
pub struct ScoreHistoryView {
    pub pulled_at: String,
    #[schema(required = true)]
    pub score: Option<u16>,
}

/// My latest credit report.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreditReportView {
    pub id: Uuid,
    pub bureau: String,
    pub pulled_at: String,
    /// 300–850; `null` when the bureau could not score me (a thin file).
    #[schema(required = true)]
    pub score: Option<u16>,
    pub band: Band,
    pub factors: Vec<Factor>,
    pub accounts: AccountsSummary,
    /// The reports before this one, newest first (at most 23).
    pub history: Vec<ScoreHistoryView>,
}

/// My latest credit report: score, band, the factors behind it and the accounts the bureau
/// knows, with the scores of the reports before it.
#[utoipa::path(get, path = "/v1/credit/report", tag = "finance", security(("access_token" = [])),
    responses(
        (status = 200, body = CreditReportView),
        (status = 404, description = "credit_report_not_found: none pulled (yet), or deleted after consent was withdrawn", body = crate::http::error::Problem, content_type = "application/problem+json"),
    ))]
async fn get_report(
    user: AuthUser,
    State(state): State<AppState>,
) -> Result<axum::Json<CreditReportView>, ApiError> {
    let mut reports = state.credit.reports(user.customer_id).await?.into_iter();
    let latest = reports.next().ok_or(CreditError::NoReport)?;
    let history = reports
        .map(|report| ScoreHistoryView { pulled_at: at(report.pulled_at), score: report.report.score })
        .collect();
    Ok(axum::Json(CreditReportView {
        id: latest.id,
        bureau: latest.report.bureau,
        pulled_at: at(latest.pulled_at),
        score: latest.report.score,
        band: latest.report.band,
        factors: latest.report.factors,
        accounts: latest.report.accounts,
        history,
    }))
}
