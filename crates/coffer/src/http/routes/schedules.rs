//! Scheduled and recurring payments over HTTP: `GET/POST /v1/scheduled-payments`,
//! `GET/PATCH/DELETE /v1/scheduled-payments/{id}` (PATCH pauses, resumes or edits; DELETE
//! cancels) and `GET /v1/scheduled-payments/{id}/runs`. The rules are
//! `crate::finance::schedules`, whose worker (the `workers` role) pays them.

use axum::{Router, extract::State, http::StatusCode, response::Response, routing::get};
use serde::{Deserialize, Serialize};
use store::{RunRow, ScheduleRow};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::finance::schedules::{Frequency, NewSchedule as Planned, Payee, ScheduleChange, ScheduleError};
use crate::http::caller::AuthUser;
use crate::http::{
    AppState,
    dates::{instant, nanos},
    error::ApiError,
    extract::{Json, Path, Query, RawJson},
    idempotency::{self, IdempotencyKeyHeader},
    paging, validate,
};
use crate::identity::profile::Email;

/// Characters of a description at most.
const DESCRIPTION_CHARS_MAX: usize = 500;
/// Characters of a biller's name at most.
const BILLER_CHARS_MAX: usize = 100;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/scheduled-payments", get(list_schedules).post(create_schedule))
        .route(
            "/v1/scheduled-payments/{id}",
            get(get_schedule).patch(update_schedule).delete(cancel_schedule),
        )
        .route("/v1/scheduled-payments/{id}/runs", get(list_runs))
}

/// A biller: a merchant paid from the wallet (and recorded as an expense).
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Biller {
    pub name: String,
    /// ISO 18245, 4 digits.
    pub mcc: Option<String>,
}

/// A new schedule: from one of my wallets to exactly one of a wallet, a customer (by
/// email) or a biller.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSchedule {
    pub from_wallet_id: Uuid,
    pub to_wallet_id: Option<Uuid>,
    pub to_email: Option<String>,
    pub biller: Option<Biller>,
    /// Minor units of the wallet's currency.
    pub amount: u64,
    pub description: Option<String>,
    pub frequency: Frequency,
    /// The first occurrence (RFC 3339); now or later.
    pub start_at: String,
    /// No occurrence after this time.
    pub end_at: Option<String>,
}

/// A schedule.
#[derive(Debug, Serialize, ToSchema)]
pub struct Schedule {
    pub id: Uuid,
    pub from_wallet_id: Uuid,
    pub to_wallet_id: Option<Uuid>,
    pub to_customer_id: Option<Uuid>,
    pub biller: Option<String>,
    pub amount: i64,
    pub currency: String,
    pub description: Option<String>,
    pub frequency: String,
    pub start_at: String,
    pub end_at: Option<String>,
    /// The next occurrence (for `active` and `paused` schedules).
    pub next_run_at: String,
    /// `active`, `paused`, `cancelled`, `completed` or `failed`.
    pub status: String,
    pub created_at: String,
}

fn view(row: &ScheduleRow) -> Schedule {
    Schedule {
        id: row.id,
        from_wallet_id: row.from_wallet_id,
        to_wallet_id: row.to_wallet_id,
        to_customer_id: row.to_customer_id,
        biller: row.biller.clone(),
        amount: row.amount,
        currency: row.currency.clone(),
        description: row.description.clone(),
        frequency: row.frequency.as_str().to_owned(),
        start_at: nanos(row.start_at),
        end_at: row.end_at.map(nanos),
        next_run_at: nanos(row.next_run_at),
        status: row.status.as_str().to_owned(),
        created_at: nanos(row.created_at),
    }
}

/// Schedules a payment from one of my wallets. With an `Idempotency-Key`, a retry gets
/// the first answer and schedules nothing more (send one: a schedule moves money).
#[utoipa::path(post, path = "/v1/scheduled-payments", tag = "finance", request_body = NewSchedule, security(("access_token" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "Retries reuse it; the same key with another body is 409")),
    responses(
        (status = 201, body = Schedule),
        (status = 404, description = "wallet_not_found or recipient_not_found", body = crate::http::error::Problem, content_type = "application/problem+json"),
    ))]
async fn create_schedule(
    user: AuthUser,
    key: Option<IdempotencyKeyHeader>,
    State(state): State<AppState>,
    body: RawJson<NewSchedule>,
) -> Result<Response, ApiError> {
    let RawJson { value: request, bytes } = body;
    let route = "POST /v1/scheduled-payments";
    idempotency::once_if_keyed(&state, user.customer_id, key.as_ref(), route, &bytes, || async {
        let planned = planned(request)?;
        let row = state.schedules.create(user.customer_id, planned).await?;
        let body = serde_json::to_value(view(&row)).map_err(|error| ApiError::Internal(error.into()))?;
        Ok((StatusCode::CREATED, body))
    })
    .await
}

/// The request, checked field by field, as the service takes it.
pub(crate) fn planned(request: NewSchedule) -> Result<Planned, ApiError> {
    let amount = validate::amount("/amount", request.amount, ledger::AMOUNT_MAX)?;
    let to = match (request.to_wallet_id, request.to_email, request.biller) {
        (Some(wallet_id), None, None) => Payee::Wallet(wallet_id),
        (None, Some(email), None) => {
            Payee::Customer(Email::parse(&email).map_err(|invalid| ApiError::field("/to_email", invalid.0))?)
        }
        (None, None, Some(biller)) => Payee::Biller {
            name: validate::name("/biller/name", &biller.name, BILLER_CHARS_MAX)?,
            mcc: validate::mcc("/biller/mcc", biller.mcc)?,
        },
        _ => {
            return Err(ApiError::field(
                "/to_wallet_id",
                "give exactly one of `to_wallet_id`, `to_email` and `biller`",
            ));
        }
    };
    Ok(Planned {
        from_wallet_id: request.from_wallet_id,
        to,
        amount,
        description: validate::text("/description", request.description.as_deref(), DESCRIPTION_CHARS_MAX)?,
        frequency: request.frequency,
        start_at: instant("/start_at", &request.start_at)?,
        end_at: request.end_at.as_deref().map(|at| instant("/end_at", at)).transpose()?,
    })
}

impl From<ScheduleError> for ApiError {
    fn from(error: ScheduleError) -> Self {
        let detail = error.to_string();
        match error {
            ScheduleError::NotFound => ApiError::NotFound { code: "scheduled_payment_not_found", detail },
            ScheduleError::Finished(_) => {
                ApiError::rejected(StatusCode::UNPROCESSABLE_ENTITY, "schedule_finished", detail)
            }
            ScheduleError::EndsBeforeStart => ApiError::field("/end_at", detail),
            ScheduleError::TooMany => {
                ApiError::rejected(StatusCode::UNPROCESSABLE_ENTITY, "too_many", detail)
            }
            ScheduleError::Wallet(error) => error.into(),
            ScheduleError::Store(error) => error.into(),
        }
    }
}

/// My scheduled payments.
#[utoipa::path(get, path = "/v1/scheduled-payments", tag = "finance", security(("access_token" = [])),
    responses((status = 200, body = Vec<Schedule>)))]
async fn list_schedules(
    user: AuthUser,
    State(state): State<AppState>,
) -> Result<axum::Json<Vec<Schedule>>, ApiError> {
    Ok(axum::Json(state.schedules.list(user.customer_id).await?.iter().map(view).collect()))
}

/// One of my scheduled payments.
#[utoipa::path(get, path = "/v1/scheduled-payments/{id}", tag = "finance", params(("id" = Uuid, Path)), security(("access_token" = [])),
    responses((status = 200, body = Schedule)))]
async fn get_schedule(
    user: AuthUser,
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> Result<axum::Json<Schedule>, ApiError> {
    Ok(axum::Json(view(&state.schedules.get(user.customer_id, id).await?)))
}

/// Changes to a schedule.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SchedulePatch {
    /// `paused` or `active` (resume).
    pub status: Option<String>,
    pub amount: Option<u64>,
    pub description: Option<String>,
    pub end_at: Option<String>,
}

/// Pauses, resumes or edits one of my scheduled payments.
#[utoipa::path(patch, path = "/v1/scheduled-payments/{id}", tag = "finance", params(("id" = Uuid, Path)), request_body = SchedulePatch,
    security(("access_token" = [])),
    responses((status = 200, body = Schedule)))]
async fn update_schedule(
    user: AuthUser,
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    Json(request): Json<SchedulePatch>,
) -> Result<axum::Json<Schedule>, ApiError> {
    let active = match request.status.as_deref() {
        None => None,
        Some("paused") => Some(false),
        Some("active") => Some(true),
        Some(_) => return Err(ApiError::field("/status", "must be `paused` or `active`")),
    };
    let change = ScheduleChange {
        active,
        amount: request
            .amount
            .map(|amount| validate::amount("/amount", amount, ledger::AMOUNT_MAX))
            .transpose()?,
        description: request
            .description
            .map(|text| validate::text("/description", Some(&text), DESCRIPTION_CHARS_MAX))
            .transpose()?,
        end_at: request.end_at.as_deref().map(|at| instant("/end_at", at)).transpose()?,
    };
    Ok(axum::Json(view(&state.schedules.change(user.customer_id, id, change).await?)))
}

/// Cancels one of my scheduled payments (occurrences already paid stay paid).
#[utoipa::path(delete, path = "/v1/scheduled-payments/{id}", tag = "finance", params(("id" = Uuid, Path)), security(("access_token" = [])),
    responses((status = 204, description = "Cancelled")))]
async fn cancel_schedule(
    user: AuthUser,
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> Result<StatusCode, ApiError> {
    state.schedules.cancel(user.customer_id, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// How many runs.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RunsQuery {
    /// 1 to 100 (default 20).
    pub limit: Option<u32>,
}

/// One occurrence and how it went.
#[derive(Debug, Serialize, ToSchema)]
pub struct Run {
    pub occurrence_at: String,
    /// `succeeded`, `retrying` or `failed`.
    pub status: String,
    pub attempts: i64,
    /// The ledger transfer that paid it.
    pub transfer_id: Option<Uuid>,
    pub error: Option<String>,
    pub updated_at: String,
}

fn run_view(row: &RunRow) -> Run {
    Run {
        occurrence_at: nanos(row.occurrence_at),
        status: row.status.as_str().to_owned(),
        attempts: row.attempts,
        transfer_id: row.transfer_id,
        error: row.error.clone(),
        updated_at: nanos(row.updated_at),
    }
}

/// The occurrences of one of my scheduled payments, newest first.
#[utoipa::path(get, path = "/v1/scheduled-payments/{id}/runs", tag = "finance", params(("id" = Uuid, Path), RunsQuery),
    security(("access_token" = [])),
    responses((status = 200, body = Vec<Run>)))]
async fn list_runs(
    user: AuthUser,
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    Query(query): Query<RunsQuery>,
) -> Result<axum::Json<Vec<Run>>, ApiError> {
    let limit = paging::limit(query.limit)?;
    Ok(axum::Json(state.schedules.runs(user.customer_id, id, limit).await?.iter().map(run_view).collect()))
}
