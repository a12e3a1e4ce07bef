//! The books' check over HTTP (admin): `POST /v1/admin/verify` starts a run in the
//! background and answers 202 at once; `GET /v1/admin/verify` lists the latest runs and
//! `GET /v1/admin/verify/{id}` has one with its report. The check is `crate::verify`'s,
//! the same as `coffer verify`'s.

use axum::{Router, extract::State, http::StatusCode, routing::get};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::http::caller::AdminUser;
use crate::http::{
    AppState,
    dates::rfc3339,
    error::ApiError,
    extract::{Path, Query},
};
use crate::verify::{Origin, Run, RunStatus, Verification, VerifyError};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/admin/verify", get(list_verify_runs).post(start_verify_run))
        .route("/v1/admin/verify/{id}", get(get_verify_run))
}

/// A run of the books' check.
#[derive(Debug, Serialize, ToSchema)]
pub struct VerifyRun {
    pub id: Uuid,
    pub origin: Origin,
    pub status: RunStatus,
    pub started_at: String,
    pub finished_at: Option<String>,
    /// What it found (every check with its count, the first 1,000 findings), once done.
    pub report: Option<Verification>,
    /// Why a `failed` run failed.
    pub error: Option<String>,
}

fn view(run: Run) -> VerifyRun {
    VerifyRun {
        id: run.id,
        origin: run.origin,
        status: run.status,
        started_at: rfc3339(run.started_at),
        finished_at: run.finished_at.map(rfc3339),
        report: run.report,
        error: run.error,
    }
}

impl From<VerifyError> for ApiError {
    fn from(error: VerifyError) -> Self {
        match error {
            VerifyError::Running(id) => ApiError::rejected(
                StatusCode::CONFLICT,
                "verify_running",
                format!("run {id} is still running on this node; fetch it at /v1/admin/verify/{id}"),
            ),
            VerifyError::Store(error) => error.into(),
        }
    }
}

/// Starts a run of the books' check (admin): every ledger transfer replayed and compared
/// with the stored balances, snapshots, limits, pending statuses and ledger totals; every
/// wallet's account and transfer note checked. Answers at once; fetch the run for its
/// result.
#[utoipa::path(post, path = "/v1/admin/verify", tag = "operations",
    security(("admin_api_key" = []), ("access_token" = [])),
    responses(
        (status = 202, description = "Started", body = VerifyRun),
        (status = 403, description = "A customer's token", body = crate::http::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "verify_running: a run is in progress on this node", body = crate::http::error::Problem, content_type = "application/problem+json"),
    ))]
async fn start_verify_run(
    _admin: AdminUser,
    State(state): State<AppState>,
) -> Result<(StatusCode, axum::Json<VerifyRun>), ApiError> {
    let run = state.verifier.start(Origin::Api).await?;
    Ok((StatusCode::ACCEPTED, axum::Json(view(run))))
}

/// How many runs to list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RunsQuery {
    /// 1 to 100; default 20.
    pub limit: Option<u32>,
}

/// The latest runs, newest first (admin).
#[utoipa::path(get, path = "/v1/admin/verify", tag = "operations", params(RunsQuery),
    security(("admin_api_key" = []), ("access_token" = [])),
    responses(
        (status = 200, body = Vec<VerifyRun>),
        (status = 403, description = "A customer's token", body = crate::http::error::Problem, content_type = "application/problem+json"),
    ))]
async fn list_verify_runs(
    _admin: AdminUser,
    State(state): State<AppState>,
    Query(query): Query<RunsQuery>,
) -> Result<axum::Json<Vec<VerifyRun>>, ApiError> {
    let limit = crate::http::paging::limit(query.limit)?;
    Ok(axum::Json(state.verifier.latest(limit).await?.into_iter().map(view).collect()))
}

/// One run, with its report once it is done (admin).
#[utoipa::path(get, path = "/v1/admin/verify/{id}", tag = "operations", params(("id" = Uuid, Path)),
    security(("admin_api_key" = []), ("access_token" = [])),
    responses(
        (status = 200, body = VerifyRun),
        (status = 403, description = "A customer's token", body = crate::http::error::Problem, content_type = "application/problem+json"),
    ))]
async fn get_verify_run(
    _admin: AdminUser,
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> Result<axum::Json<VerifyRun>, ApiError> {
    let run = state.verifier.get(id).await?.ok_or(ApiError::NotFound {
        code: "verify_run_not_found",
        detail: "no such verification run".into(),
    })?;
    Ok(axum::Json(view(run)))
}
