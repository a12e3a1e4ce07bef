//! Balance monitors over HTTP: a customer's on their own wallets
//! (`/v1/wallets/{id}/monitors`), an operator's on any wallet
//! (`/v1/admin/wallets/{id}/monitors`, apart from the customer's and told only to
//! operators). The rules and the evaluation are `crate::wallets::monitors`'.

use axum::{
    Router,
    extract::State,
    http::StatusCode,
    routing::{delete, get},
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::http::caller::{AdminUser, AuthUser};
use crate::http::{
    AppState,
    dates::rfc3339,
    error::ApiError,
    extract::{Json, Path},
};
use crate::wallets::monitors::{Condition, Monitor, Setter};

/// The largest threshold, minor units: the ledger's largest amount.
const MONITOR_AMOUNT_MAX: i64 = ledger::AMOUNT_MAX as i64;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/wallets/{id}/monitors", get(list_monitors).post(create_monitor))
        .route("/v1/wallets/{id}/monitors/{monitor_id}", delete(delete_monitor))
        .route("/v1/admin/wallets/{id}/monitors", get(list_operator_monitors).post(create_operator_monitor))
        .route("/v1/admin/wallets/{id}/monitors/{monitor_id}", delete(delete_operator_monitor))
}

/// A new monitor.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewMonitor {
    pub condition: Condition,
    /// The threshold, minor units of the wallet's currency (0 to the ledger's largest
    /// amount): `available_below` fires when the available balance falls below it,
    /// `available_above` when it rises above it (each once per crossing), `debit_above`
    /// for every debit larger than it.
    pub amount: i64,
}

/// A balance monitor.
#[derive(Debug, Serialize, ToSchema)]
pub struct MonitorView {
    pub id: Uuid,
    pub wallet_id: Uuid,
    pub condition: Condition,
    pub amount: i64,
    pub created_at: String,
}

/// A wallet's monitors.
#[derive(Debug, Serialize, ToSchema)]
pub struct MonitorList {
    pub items: Vec<MonitorView>,
}

fn view(monitor: Monitor) -> MonitorView {
    MonitorView {
        id: monitor.id,
        wallet_id: monitor.wallet_id,
        condition: monitor.condition,
        amount: monitor.amount,
        created_at: rfc3339(monitor.created_at),
    }
}

async fn create(
    state: &AppState,
    setter: Setter,
    wallet_id: Uuid,
    request: NewMonitor,
) -> Result<(StatusCode, axum::Json<MonitorView>), ApiError> {
    if !(0..=MONITOR_AMOUNT_MAX).contains(&request.amount) {
        return Err(ApiError::field("/amount", format!("must be 0 to {MONITOR_AMOUNT_MAX}")));
    }
    let monitor = state.wallets.create_monitor(setter, wallet_id, request.condition, request.amount).await?;
    tracing::info!(monitor_id = %monitor.id, %wallet_id, condition = monitor.condition.as_str(), "monitor set");
    Ok((StatusCode::CREATED, axum::Json(view(monitor))))
}

async fn list(
    state: &AppState,
    setter: Setter,
    wallet_id: Uuid,
) -> Result<axum::Json<MonitorList>, ApiError> {
    let monitors = state.wallets.monitors(setter, wallet_id).await?;
    Ok(axum::Json(MonitorList { items: monitors.into_iter().map(view).collect() }))
}

/// Sets a monitor on one of my wallets: crossing it sends a `monitor.triggered` event, an
/// inbox entry and an email (per my notification preferences), once per crossing.
#[utoipa::path(post, path = "/v1/wallets/{id}/monitors", tag = "wallets", request_body = NewMonitor,
    params(("id" = Uuid, Path)), security(("access_token" = [])),
    responses(
        (status = 201, body = MonitorView),
        (status = 404, description = "wallet_not_found", body = crate::http::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "too_many_monitors", body = crate::http::error::Problem, content_type = "application/problem+json"),
    ))]
async fn create_monitor(
    user: AuthUser,
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    Json(request): Json<NewMonitor>,
) -> Result<(StatusCode, axum::Json<MonitorView>), ApiError> {
    create(&state, Setter::Customer(user.customer_id), id, request).await
}

/// The monitors I set on one of my wallets, oldest first (16 at most).
#[utoipa::path(get, path = "/v1/wallets/{id}/monitors", tag = "wallets",
    params(("id" = Uuid, Path)), security(("access_token" = [])),
    responses((status = 200, body = MonitorList)))]
async fn list_monitors(
    user: AuthUser,
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> Result<axum::Json<MonitorList>, ApiError> {
    list(&state, Setter::Customer(user.customer_id), id).await
}

/// Removes one of my monitors.
#[utoipa::path(delete, path = "/v1/wallets/{id}/monitors/{monitor_id}", tag = "wallets",
    params(("id" = Uuid, Path), ("monitor_id" = Uuid, Path)), security(("access_token" = [])),
    responses(
        (status = 204, description = "Removed"),
        (status = 404, description = "wallet_not_found or monitor_not_found", body = crate::http::error::Problem, content_type = "application/problem+json"),
    ))]
async fn delete_monitor(
    user: AuthUser,
    State(state): State<AppState>,
    Path((id, monitor_id)): Path<(Uuid, Uuid)>,
) -> Result<StatusCode, ApiError> {
    state.wallets.delete_monitor(Setter::Customer(user.customer_id), id, monitor_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Sets an operators' monitor on any wallet (admin): crossing it sends a
/// `monitor.triggered` event with no customer (the broker and admins' webhooks); the
/// wallet's owner is not told.
#[utoipa::path(post, path = "/v1/admin/wallets/{id}/monitors", tag = "operations", request_body = NewMonitor,
    params(("id" = Uuid, Path)), security(("admin_api_key" = []), ("access_token" = [])),
    responses(
        (status = 201, body = MonitorView),
        (status = 403, description = "Not an admin", body = crate::http::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "wallet_not_found", body = crate::http::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "too_many_monitors", body = crate::http::error::Problem, content_type = "application/problem+json"),
    ))]
async fn create_operator_monitor(
    _admin: AdminUser,
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    Json(request): Json<NewMonitor>,
) -> Result<(StatusCode, axum::Json<MonitorView>), ApiError> {
    create(&state, Setter::Operator, id, request).await
}

/// The operators' monitors on a wallet (admin), oldest first (16 at most).
#[utoipa::path(get, path = "/v1/admin/wallets/{id}/monitors", tag = "operations",
    params(("id" = Uuid, Path)), security(("admin_api_key" = []), ("access_token" = [])),
    responses(
        (status = 200, body = MonitorList),
        (status = 403, description = "Not an admin", body = crate::http::error::Problem, content_type = "application/problem+json"),
    ))]
async fn list_operator_monitors(
    _admin: AdminUser,
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> Result<axum::Json<MonitorList>, ApiError> {
    list(&state, Setter::Operator, id).await
}

/// Removes an operators' monitor (admin).
#[utoipa::path(delete, path = "/v1/admin/wallets/{id}/monitors/{monitor_id}", tag = "operations",
    params(("id" = Uuid, Path), ("monitor_id" = Uuid, Path)), security(("admin_api_key" = []), ("access_token" = [])),
    responses(
        (status = 204, description = "Removed"),
        (status = 403, description = "Not an admin", body = crate::http::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "wallet_not_found or monitor_not_found", body = crate::http::error::Problem, content_type = "application/problem+json"),
    ))]
async fn delete_operator_monitor(
    _admin: AdminUser,
    State(state): State<AppState>,
    Path((id, monitor_id)): Path<(Uuid, Uuid)>,
) -> Result<StatusCode, ApiError> {
    state.wallets.delete_monitor(Setter::Operator, id, monitor_id).await?;
    Ok(StatusCode::NO_CONTENT)
}
