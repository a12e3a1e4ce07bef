//! The in-app inbox and webhook endpoints.
//!
//! `GET /v1/notifications`, `POST /v1/notifications/{id}/read`: the caller's inbox.
//! `POST/GET /v1/webhooks`, `GET/DELETE /v1/webhooks/{id}`, `GET
//! /v1/webhooks/{id}/deliveries`, `POST /v1/webhooks/{id}/deliveries/{delivery_id}/redeliver`:
//! endpoints of the caller (a customer's see that customer's events; an admin's, made with
//! the admin API key or an admin token, see everyone's). The signing secret is shown once,
//! when the endpoint is created.

use axum::{
    Router,
    extract::State,
    http::StatusCode,
    routing::{get, post},
};
use serde::{Deserialize, Serialize};
use store::{DeliveryRow, NotificationRow, WebhookEndpoint};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::events::EventType;
use crate::http::{
    AppState,
    dates::{nanos, rfc3339},
    error::ApiError,
    extract::{Json, Path, Query},
    paging::{self, Page, PageQuery},
};

use crate::http::caller::{AdminUser, AuthUser};
use crate::notifications::endpoints::{self, EndpointError, URL_BYTES_MAX, is_event_name};
use crate::notifications::webhooks::TargetError;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/notifications", get(list_notifications))
        .route("/v1/notifications/{id}/read", post(read_notification))
        .route("/v1/webhooks", post(create_webhook).get(list_webhooks))
        .route("/v1/webhooks/{id}", get(get_webhook).delete(delete_webhook))
        .route("/v1/webhooks/{id}/deliveries", get(list_deliveries))
        .route("/v1/webhooks/{id}/deliveries/{delivery_id}/redeliver", post(redeliver))
}

/// Paging of the inbox.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct InboxQuery {
    /// 1 to 100 (default 20).
    pub limit: Option<u32>,
    pub cursor: Option<String>,
    /// Only notifications not yet read.
    pub unread: Option<bool>,
}

/// An inbox entry.
#[derive(Debug, Serialize, ToSchema)]
pub struct Notification {
    pub id: Uuid,
    /// `welcome`, `transfer_received`, `high_value_transaction`, `low_balance`, `balance_alert`,
    /// `top_up_succeeded`, `top_up_failed`, `withdrawal_succeeded`, `withdrawal_failed`,
    /// `budget_warning`, `budget_exceeded`, `scheduled_payment_failed`, `fx_converted`,
    /// `subscription_detected`, `price_increase`, `spending_alert`, `low_balance_forecast`,
    /// `credit_score_changed`; admins also get
    /// `verify_findings` and `reconciliation_unmatched`.
    pub kind: String,
    pub title: String,
    pub body: String,
    /// The event that caused it.
    pub event_id: Uuid,
    pub created_at: String,
    pub read_at: Option<String>,
}

fn notification_view(row: &NotificationRow) -> Notification {
    Notification {
        id: row.id,
        kind: row.kind.clone(),
        title: row.title.clone(),
        body: row.body.clone(),
        event_id: row.event_id,
        created_at: nanos(row.created_at),
        read_at: row.read_at.map(nanos),
    }
}

/// My inbox, newest first.
#[utoipa::path(get, path = "/v1/notifications", tag = "notifications", params(InboxQuery),
    security(("access_token" = [])),
    responses((status = 200, body = Page<Notification>)))]
async fn list_notifications(
    user: AuthUser,
    State(state): State<AppState>,
    Query(query): Query<InboxQuery>,
) -> Result<axum::Json<Page<Notification>>, ApiError> {
    let limit = paging::limit(query.limit)?;
    let before = paging::after("n1", query.cursor.as_deref())?;
    let rows =
        state.endpoints.inbox(user.customer_id, before, query.unread.unwrap_or(false), limit + 1).await?;
    Ok(axum::Json(Page::of(rows, limit, |row| paging::cursor("n1", &row.id), |row| notification_view(&row))))
}

/// Marks one of my notifications read.
#[utoipa::path(post, path = "/v1/notifications/{id}/read", tag = "notifications",
    params(("id" = Uuid, Path)), security(("access_token" = [])),
    responses((status = 204, description = "Read")))]
async fn read_notification(
    user: AuthUser,
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> Result<StatusCode, ApiError> {
    state.endpoints.mark_read(user.customer_id, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Who is calling a webhook route: a customer (their endpoints) or an admin (the admins').
/// An extractor, so that credentials are checked before the body is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Owner(Option<Uuid>);

impl axum::extract::FromRequestParts<AppState> for Owner {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &AppState,
    ) -> Result<Self, ApiError> {
        match AdminUser::from_request_parts(parts, state).await {
            Ok(_) => Ok(Self(None)),
            Err(ApiError::Forbidden) => {
                Ok(Self(Some(AuthUser::from_request_parts(parts, state).await?.customer_id)))
            }
            Err(error) => Err(error),
        }
    }
}

/// A webhook endpoint (the secret is shown only when it is created).
#[derive(Debug, Serialize, ToSchema)]
pub struct Webhook {
    pub id: Uuid,
    pub url: String,
    /// Event names (e.g. `transfer.posted`), or `*` for all.
    pub event_types: Vec<String>,
    /// `customer` (the owner's events) or `admin` (every customer's events).
    pub scope: &'static str,
    pub created_at: String,
    /// The signing secret: returned once, by the creation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

fn webhook_view(endpoint: &WebhookEndpoint) -> Webhook {
    Webhook {
        id: endpoint.id,
        url: endpoint.url.clone(),
        event_types: endpoint.event_types.clone(),
        scope: if endpoint.customer_id.is_some() { "customer" } else { "admin" },
        created_at: rfc3339(endpoint.created_at),
        secret: None,
    }
}

/// A new webhook endpoint.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewWebhook {
    /// An http(s) URL on a public address.
    #[schema(format = "uri")]
    pub url: String,
    /// Event names such as `transfer.posted`, or `["*"]` for every event.
    pub event_types: Vec<String>,
}

/// Registers a webhook endpoint. Deliveries are POSTs of the CloudEvents JSON, signed in
/// `Coffer-Signature` (see the README), retried with backoff for over 24 hours.
#[utoipa::path(post, path = "/v1/webhooks", tag = "webhooks", request_body = NewWebhook,
    security(("access_token" = []), ("admin_api_key" = [])),
    responses((status = 201, body = Webhook)))]
async fn create_webhook(
    owner: Owner,
    State(state): State<AppState>,
    Json(request): Json<NewWebhook>,
) -> Result<(StatusCode, axum::Json<Webhook>), ApiError> {
    if request.url.len() > URL_BYTES_MAX {
        return Err(ApiError::field("/url", format!("must be at most {URL_BYTES_MAX} bytes")));
    }
    if request.event_types.is_empty() || request.event_types.len() > EventType::ALL.len() {
        return Err(ApiError::field("/event_types", "must name 1 or more event types, or be [\"*\"]"));
    }
    let mut event_types = Vec::new();
    for (index, name) in request.event_types.iter().enumerate() {
        if !is_event_name(name) {
            return Err(ApiError::field(format!("/event_types/{index}"), "is not an event type"));
        }
        if !event_types.contains(name) {
            event_types.push(name.clone());
        }
    }
    let endpoint = state
        .endpoints
        .create_webhook(owner.0, endpoints::NewWebhook { url: request.url, event_types })
        .await?;
    let mut view = webhook_view(&endpoint);
    view.secret = Some(endpoint.secret);
    Ok((StatusCode::CREATED, axum::Json(view)))
}

/// My webhook endpoints (an admin: the admins').
#[utoipa::path(get, path = "/v1/webhooks", tag = "webhooks", params(PageQuery),
    security(("access_token" = []), ("admin_api_key" = [])),
    responses((status = 200, body = Page<Webhook>)))]
async fn list_webhooks(
    owner: Owner,
    State(state): State<AppState>,
    Query(query): Query<PageQuery>,
) -> Result<axum::Json<Page<Webhook>>, ApiError> {
    let limit = paging::limit(query.limit)?;
    let after = paging::after("w1", query.cursor.as_deref())?;
    let rows = state.endpoints.webhooks(owner.0, after, limit + 1).await?;
    Ok(axum::Json(Page::of(rows, limit, |row| paging::cursor("w1", &row.id), |row| webhook_view(&row))))
}

/// One of my webhook endpoints.
#[utoipa::path(get, path = "/v1/webhooks/{id}", tag = "webhooks", params(("id" = Uuid, Path)),
    security(("access_token" = []), ("admin_api_key" = [])),
    responses((status = 200, body = Webhook)))]
async fn get_webhook(
    owner: Owner,
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> Result<axum::Json<Webhook>, ApiError> {
    Ok(axum::Json(webhook_view(&state.endpoints.webhook(owner.0, id).await?)))
}

/// Deletes one of my webhook endpoints and its delivery log.
#[utoipa::path(delete, path = "/v1/webhooks/{id}", tag = "webhooks", params(("id" = Uuid, Path)),
    security(("access_token" = []), ("admin_api_key" = [])),
    responses((status = 204, description = "Deleted")))]
async fn delete_webhook(
    owner: Owner,
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> Result<StatusCode, ApiError> {
    state.endpoints.delete_webhook(owner.0, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// One delivery of one event, and how it went.
#[derive(Debug, Serialize, ToSchema)]
pub struct Delivery {
    pub id: Uuid,
    pub event_id: Uuid,
    pub event_type: String,
    /// `pending` (will be tried again), `succeeded` or `failed` (attempts exhausted).
    pub status: String,
    pub attempts: i64,
    pub next_attempt_at: Option<String>,
    pub last_status_code: Option<i64>,
    pub last_error: Option<String>,
    pub created_at: String,
    pub delivered_at: Option<String>,
}

fn delivery_view(row: &DeliveryRow) -> Delivery {
    Delivery {
        id: row.id,
        event_id: row.event_id,
        event_type: row.event_type.clone(),
        status: row.status.clone(),
        attempts: row.attempts,
        next_attempt_at: (row.status == "pending").then(|| nanos(row.next_attempt_at)),
        last_status_code: row.last_status_code,
        last_error: row.last_error.clone(),
        created_at: nanos(row.created_at),
        delivered_at: row.delivered_at.map(nanos),
    }
}

/// The delivery log of one of my endpoints, newest first.
#[utoipa::path(get, path = "/v1/webhooks/{id}/deliveries", tag = "webhooks",
    params(("id" = Uuid, Path), PageQuery), security(("access_token" = []), ("admin_api_key" = [])),
    responses((status = 200, body = Page<Delivery>)))]
async fn list_deliveries(
    owner: Owner,
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    Query(query): Query<PageQuery>,
) -> Result<axum::Json<Page<Delivery>>, ApiError> {
    let limit = paging::limit(query.limit)?;
    let before = paging::after("d1", query.cursor.as_deref())?;
    let rows = state.endpoints.deliveries(owner.0, id, before, limit + 1).await?;
    Ok(axum::Json(Page::of(rows, limit, |row| paging::cursor("d1", &row.id), |row| delivery_view(&row))))
}

/// Queues a delivery again, at once, with a fresh budget of attempts.
#[utoipa::path(post, path = "/v1/webhooks/{id}/deliveries/{delivery_id}/redeliver", tag = "webhooks",
    params(("id" = Uuid, Path), ("delivery_id" = Uuid, Path)),
    security(("access_token" = []), ("admin_api_key" = [])),
    responses((status = 202, description = "Queued")))]
async fn redeliver(
    owner: Owner,
    State(state): State<AppState>,
    Path((id, delivery_id)): Path<(Uuid, Uuid)>,
) -> Result<StatusCode, ApiError> {
    state.endpoints.redeliver(owner.0, id, delivery_id).await?;
    Ok(StatusCode::ACCEPTED)
}

impl From<EndpointError> for ApiError {
    fn from(error: EndpointError) -> Self {
        let detail = error.to_string();
        match error {
            EndpointError::NotificationNotFound => {
                ApiError::NotFound { code: "notification_not_found", detail }
            }
            EndpointError::WebhookNotFound => ApiError::NotFound { code: "webhook_not_found", detail },
            EndpointError::DeliveryNotFound => ApiError::NotFound { code: "delivery_not_found", detail },
            EndpointError::EmailNotFound => ApiError::NotFound { code: "email_not_found", detail },
            EndpointError::Target(TargetError::NotPublic) => {
                ApiError::rejected(StatusCode::UNPROCESSABLE_ENTITY, "webhook_target_not_allowed", detail)
            }
            EndpointError::Target(_) => {
                ApiError::rejected(StatusCode::UNPROCESSABLE_ENTITY, "webhook_url_invalid", detail)
            }
            EndpointError::TooMany => {
                ApiError::rejected(StatusCode::UNPROCESSABLE_ENTITY, "too_many_webhooks", detail)
            }
            EndpointError::Store(error) => error.into(),
        }
    }
}
