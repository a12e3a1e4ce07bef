//! Scheduled and recurring payments over HTTP: `GET/POST /v1/scheduled-payments`,
//! `GET/PATCH/DELETE /v1/scheduled-payments/{id}` (PATCH pauses, resumes or edits; DELETE
//! cancels) and `GET /v1/scheduled-payments/{id}/runs`. The `workers` role pays them
//! (see `crate::finance::schedule`).

use axum::{Router, extract::State, http::StatusCode, response::Response, routing::get};
use serde::{Deserialize, Serialize};
use store::{RunRow, ScheduleRow};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::http::{
    AppState,
    error::ApiError,
    extract::{Json, Path, Query, RawJson},
    idempotency::{self, IdempotencyKeyHeader},
    routes::finance::{nanos, time},
};
use crate::identity::AuthUser;
use crate::wallets::WalletError;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/scheduled-payments", get(list_schedules).post(create_schedule))
        .route(
            "/v1/scheduled-payments/{id}",
            get(get_schedule).patch(update_schedule).delete(cancel_schedule),
        )
        .route("/v1/scheduled-payments/{id}/runs", get(list_runs))
}

/// How often.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Frequency {
    Once,
    Weekly,
    /// On the start's day of the month (the last day in shorter months).
    Monthly,
}

impl Frequency {
    fn as_str(self) -> &'static str {
        match self {
            Self::Once => "once",
            Self::Weekly => "weekly",
            Self::Monthly => "monthly",
        }
    }
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
        frequency: row.frequency.clone(),
        start_at: nanos(row.start_at),
        end_at: row.end_at.map(nanos),
        next_run_at: nanos(row.next_run_at),
        status: row.status.clone(),
        created_at: nanos(row.created_at),
    }
}

/// Schedules a payment from one of my wallets. With an `Idempotency-Key`, a retry gets
/// the first answer and schedules nothing more (send one: a schedule moves money).
#[utoipa::path(post, path = "/v1/scheduled-payments", tag = "finance", request_body = NewSchedule, security(("access_token" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "Retries reuse it; the same key with another body is 409")),
    responses(
        (status = 201, body = Schedule),
        (status = 400, body = crate::http::error::Problem, content_type = "application/problem+json"),
        (status = 401, body = crate::http::error::Problem, content_type = "application/problem+json"),
        (status = 404, body = crate::http::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "The key was used with another request, or is in flight", body = crate::http::error::Problem, content_type = "application/problem+json"),
        (status = 422, body = crate::http::error::Problem, content_type = "application/problem+json"),
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
        let schedule = schedule(&state, user.customer_id, request).await?;
        let body = serde_json::to_value(schedule).map_err(|error| ApiError::Unavailable(error.into()))?;
        Ok((StatusCode::CREATED, body))
    })
    .await
}

/// Validates and records a new schedule.
async fn schedule(state: &AppState, customer_id: Uuid, request: NewSchedule) -> Result<Schedule, ApiError> {
    let max = ledger::AMOUNT_MAX;
    if request.amount == 0 || request.amount > max {
        return Err(ApiError::field("/amount", format!("must be 1 to {max}")));
    }
    let from = state.wallets.owned(customer_id, request.from_wallet_id).await?;
    let given = [request.to_wallet_id.is_some(), request.to_email.is_some(), request.biller.is_some()];
    if given.iter().filter(|given| **given).count() != 1 {
        return Err(ApiError::field(
            "/to_wallet_id",
            "give exactly one of `to_wallet_id`, `to_email` and `biller`",
        ));
    }
    let mut to_customer_id = None;
    if let Some(email) = &request.to_email {
        let email = crate::identity::profile::Email::parse(email)
            .map_err(|invalid| ApiError::field("/to_email", invalid.0))?;
        let customer =
            state.store.customer_by_email(email.as_str()).await?.ok_or(WalletError::RecipientNotFound)?;
        to_customer_id = Some(customer.id);
    }
    if let Some(wallet) = request.to_wallet_id {
        let to = state.store.wallet(wallet).await?.ok_or(WalletError::WalletNotFound)?;
        if to.id == from.id {
            return Err(WalletError::SameWallet.into());
        }
        if to.currency != from.currency {
            return Err(WalletError::CurrencyMismatch.into());
        }
    }
    let (biller, biller_mcc) = match request.biller {
        Some(biller) => {
            let name = biller.name.trim().to_owned();
            if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
                return Err(ApiError::field("/biller/name", "1 to 100 characters, no control characters"));
            }
            if biller
                .mcc
                .as_ref()
                .is_some_and(|mcc| mcc.len() != 4 || !mcc.bytes().all(|b| b.is_ascii_digit()))
            {
                return Err(ApiError::field("/biller/mcc", "must be 4 digits (ISO 18245)"));
            }
            (Some(name), biller.mcc)
        }
        None => (None, None),
    };
    let description = request.description.map(|text| text.trim().to_owned()).filter(|text| !text.is_empty());
    if description
        .as_ref()
        .is_some_and(|text| text.chars().count() > 500 || text.chars().any(char::is_control))
    {
        return Err(ApiError::field("/description", "at most 500 characters, no control characters"));
    }
    let now = store::now_ns() as i64;
    let start_at = time("/start_at", &request.start_at)?.max(now);
    let end_at = request.end_at.as_deref().map(|at| time("/end_at", at)).transpose()?;
    if end_at.is_some_and(|end| end < start_at) {
        return Err(ApiError::field("/end_at", "must not be before start_at"));
    }
    if state.store.schedules(customer_id).await?.len() >= store::SCHEDULES_PER_CUSTOMER_MAX as usize {
        return Err(ApiError::rejected(
            StatusCode::UNPROCESSABLE_ENTITY,
            "too_many",
            "too many scheduled payments",
        ));
    }
    let row = ScheduleRow {
        id: Uuid::now_v7(),
        customer_id,
        from_wallet_id: from.id,
        to_wallet_id: request.to_wallet_id,
        to_customer_id,
        biller,
        biller_mcc,
        amount: i64::try_from(request.amount).unwrap_or(i64::MAX),
        currency: from.currency.clone(),
        description,
        frequency: request.frequency.as_str().to_owned(),
        start_at,
        end_at,
        next_run_at: start_at,
        status: "active".into(),
        attempts: 0,
        retry_at: None,
        claimed_until: None,
        created_at: now,
        updated_at: now,
    };
    state.store.insert_schedule(&row).await?;
    Ok(view(&row))
}

/// My scheduled payments.
#[utoipa::path(get, path = "/v1/scheduled-payments", tag = "finance", security(("access_token" = [])),
    responses((status = 200, body = Vec<Schedule>), (status = 401, body = crate::http::error::Problem, content_type = "application/problem+json")))]
async fn list_schedules(
    user: AuthUser,
    State(state): State<AppState>,
) -> Result<axum::Json<Vec<Schedule>>, ApiError> {
    Ok(axum::Json(state.store.schedules(user.customer_id).await?.iter().map(view).collect()))
}

async fn owned(state: &AppState, customer_id: Uuid, id: Uuid) -> Result<ScheduleRow, ApiError> {
    state.store.schedule(customer_id, id).await?.ok_or_else(|| ApiError::NotFound {
        code: "scheduled_payment_not_found",
        detail: "no such scheduled payment".into(),
    })
}

/// One of my scheduled payments.
#[utoipa::path(get, path = "/v1/scheduled-payments/{id}", tag = "finance", params(("id" = Uuid, Path)), security(("access_token" = [])),
    responses(
        (status = 200, body = Schedule),
        (status = 400, body = crate::http::error::Problem, content_type = "application/problem+json"),
        (status = 401, body = crate::http::error::Problem, content_type = "application/problem+json"),
        (status = 404, body = crate::http::error::Problem, content_type = "application/problem+json"),
    ))]
async fn get_schedule(
    user: AuthUser,
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> Result<axum::Json<Schedule>, ApiError> {
    Ok(axum::Json(view(&owned(&state, user.customer_id, id).await?)))
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
    responses(
        (status = 200, body = Schedule),
        (status = 400, body = crate::http::error::Problem, content_type = "application/problem+json"),
        (status = 401, body = crate::http::error::Problem, content_type = "application/problem+json"),
        (status = 404, body = crate::http::error::Problem, content_type = "application/problem+json"),
        (status = 422, body = crate::http::error::Problem, content_type = "application/problem+json"),
    ))]
async fn update_schedule(
    user: AuthUser,
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    Json(request): Json<SchedulePatch>,
) -> Result<axum::Json<Schedule>, ApiError> {
    let mut row = owned(&state, user.customer_id, id).await?;
    if !matches!(row.status.as_str(), "active" | "paused") {
        return Err(ApiError::rejected(
            StatusCode::UNPROCESSABLE_ENTITY,
            "schedule_finished",
            format!("the schedule is {}", row.status),
        ));
    }
    match request.status.as_deref() {
        None => {}
        Some("paused") => row.status = "paused".into(),
        Some("active") => {
            // Resuming skips what fell due while paused.
            let now = store::now_ns() as i64;
            while row.next_run_at < now {
                match crate::finance::schedule::next_occurrence(
                    &row.frequency,
                    row.start_at,
                    row.next_run_at,
                    row.end_at,
                ) {
                    Some(next) => row.next_run_at = next,
                    None => break,
                }
            }
            row.status = "active".into();
        }
        Some(_) => return Err(ApiError::field("/status", "must be `paused` or `active`")),
    }
    if let Some(amount) = request.amount {
        if amount == 0 || amount > ledger::AMOUNT_MAX {
            return Err(ApiError::field("/amount", format!("must be 1 to {}", ledger::AMOUNT_MAX)));
        }
        row.amount = i64::try_from(amount).unwrap_or(i64::MAX);
    }
    if let Some(description) = request.description {
        row.description = Some(description.trim().to_owned()).filter(|text| !text.is_empty());
    }
    if let Some(end_at) = request.end_at {
        row.end_at = Some(time("/end_at", &end_at)?);
    }
    row.updated_at = store::now_ns() as i64;
    state.store.update_schedule(&row).await?;
    Ok(axum::Json(view(&row)))
}

/// Cancels one of my scheduled payments (occurrences already paid stay paid).
#[utoipa::path(delete, path = "/v1/scheduled-payments/{id}", tag = "finance", params(("id" = Uuid, Path)), security(("access_token" = [])),
    responses(
        (status = 204, description = "Cancelled"),
        (status = 400, body = crate::http::error::Problem, content_type = "application/problem+json"),
        (status = 401, body = crate::http::error::Problem, content_type = "application/problem+json"),
        (status = 404, body = crate::http::error::Problem, content_type = "application/problem+json"),
    ))]
async fn cancel_schedule(
    user: AuthUser,
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> Result<StatusCode, ApiError> {
    let mut row = owned(&state, user.customer_id, id).await?;
    row.status = "cancelled".into();
    row.updated_at = store::now_ns() as i64;
    state.store.update_schedule(&row).await?;
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
        status: row.status.clone(),
        attempts: row.attempts,
        transfer_id: row.transfer_id,
        error: row.error.clone(),
        updated_at: nanos(row.updated_at),
    }
}

/// The occurrences of one of my scheduled payments, newest first.
#[utoipa::path(get, path = "/v1/scheduled-payments/{id}/runs", tag = "finance", params(("id" = Uuid, Path), RunsQuery),
    security(("access_token" = [])),
    responses(
        (status = 200, body = Vec<Run>),
        (status = 400, body = crate::http::error::Problem, content_type = "application/problem+json"),
        (status = 401, body = crate::http::error::Problem, content_type = "application/problem+json"),
        (status = 404, body = crate::http::error::Problem, content_type = "application/problem+json"),
        (status = 422, body = crate::http::error::Problem, content_type = "application/problem+json"),
    ))]
async fn list_runs(
    user: AuthUser,
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    Query(query): Query<RunsQuery>,
) -> Result<axum::Json<Vec<Run>>, ApiError> {
    let limit = query.limit.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::field("limit", "must be 1 to 100"));
    }
    owned(&state, user.customer_id, id).await?;
    Ok(axum::Json(state.store.schedule_runs(id, limit).await?.iter().map(run_view).collect()))
}
