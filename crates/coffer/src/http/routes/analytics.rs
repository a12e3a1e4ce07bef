//! Platform analytics over HTTP (admin): `GET /v1/analytics/daily?from&to` — posted
//! volume and count per currency and operation, active and new customers, per UTC day —
//! and `GET /v1/analytics/customers/{id}`, a customer's snapshot (balances, monthly
//! spending, top categories). Both read the analytics projection (`crate::analytics`),
//! which trails the event relay by a moment.

use axum::{Router, extract::State, routing::get};
use serde::{Deserialize, Serialize};
use time::{Date, Duration, OffsetDateTime};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::analytics::{CustomerSnapshot, DAYS_MAX, Day};
use crate::http::caller::AdminUser;
use crate::http::{
    AppState, dates,
    error::ApiError,
    extract::{Path, Query},
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/analytics/daily", get(daily))
        .route("/v1/analytics/customers/{id}", get(customer))
}

/// A range of days, both ends included.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DailyQuery {
    /// First day, `YYYY-MM-DD` (UTC). Default: 29 days before `to`.
    #[param(format = Date)]
    pub from: Option<String>,
    /// Last day, `YYYY-MM-DD` (UTC). Default: today.
    #[param(format = Date)]
    pub to: Option<String>,
}

/// Days of platform figures.
#[derive(Debug, Serialize, ToSchema)]
pub struct DailyAnalytics {
    pub from: String,
    pub to: String,
    /// Every day of the range, oldest first (days without activity included).
    pub days: Vec<Day>,
}

fn unavailable(error: anyhow::Error) -> ApiError {
    ApiError::Unavailable(error)
}

/// Platform figures per day (admin).
#[utoipa::path(get, path = "/v1/analytics/daily", tag = "analytics", params(DailyQuery),
    security(("access_token" = []), ("admin_api_key" = [])), responses(
    (status = 200, body = DailyAnalytics),
    (status = 403, description = "A customer's token", body = crate::http::error::Problem, content_type = "application/problem+json"),
    (status = 422, description = "Not a date, `from` after `to`, or more than 366 days", body = crate::http::error::Problem, content_type = "application/problem+json"),
    ))]
async fn daily(
    _admin: AdminUser,
    State(state): State<AppState>,
    Query(query): Query<DailyQuery>,
) -> Result<axum::Json<DailyAnalytics>, ApiError> {
    let to = match &query.to {
        Some(text) => dates::day("to", text)?,
        None => OffsetDateTime::now_utc().date(),
    };
    let from = match &query.from {
        Some(text) => dates::day("from", text)?,
        None => to.checked_sub(Duration::days(29)).unwrap_or(Date::MIN),
    };
    if from > to {
        return Err(ApiError::field("from", "must not be after `to`"));
    }
    if (to - from).whole_days() >= DAYS_MAX {
        return Err(ApiError::field("to", format!("the range covers {DAYS_MAX} days at most")));
    }
    let days = state.analytics.daily(from, to).await.map_err(unavailable)?;
    Ok(axum::Json(DailyAnalytics { from: from.to_string(), to: to.to_string(), days }))
}

/// One customer's snapshot (admin): wallet balances, spending per month over the last 12
/// months, and the top spending categories over them, per currency.
#[utoipa::path(get, path = "/v1/analytics/customers/{id}", tag = "analytics",
    params(("id" = Uuid, Path, description = "Customer id")),
    security(("access_token" = []), ("admin_api_key" = [])), responses(
    (status = 200, body = CustomerSnapshot),
    (status = 403, description = "A customer's token", body = crate::http::error::Problem, content_type = "application/problem+json"),
    (status = 404, description = "No such customer", body = crate::http::error::Problem, content_type = "application/problem+json"),
    ))]
async fn customer(
    _admin: AdminUser,
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> Result<axum::Json<CustomerSnapshot>, ApiError> {
    state.identity.customer(id).await?;
    let snapshot = state.analytics.customer(id, store::now_ns()).await.map_err(unavailable)?;
    Ok(axum::Json(snapshot))
}
