//! Liveness and readiness probes. Liveness says the process serves requests; readiness
//! also checks the database (and the broker, when one is configured), so a load balancer
//! stops sending writes to a node that cannot commit them.

use axum::{Router, extract::State, routing::get};
use serde::Serialize;
use utoipa::ToSchema;

use crate::http::{AppState, error::ApiError};

pub fn router() -> Router<AppState> {
    Router::new().route("/health/live", get(live)).route("/health/ready", get(ready))
}

/// A probe's answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    #[schema(example = "ok")]
    pub status: &'static str,
}

/// The process is up and serving.
#[utoipa::path(get, path = "/health/live", tag = "health", responses((status = 200, body = Health)))]
async fn live() -> axum::Json<Health> {
    axum::Json(Health { status: "ok" })
}

/// The process can reach its database and broker.
#[utoipa::path(get, path = "/health/ready", tag = "health", responses(
    (status = 200, body = Health),
    (status = 503, description = "Database or broker unreachable", body = crate::http::error::Problem, content_type = "application/problem+json"),
    ))]
async fn ready(State(state): State<AppState>) -> Result<axum::Json<Health>, ApiError> {
    state.store.ping().await?;
    if let Some(nats) = &state.nats
        && !nats.is_connected()
    {
        return Err(ApiError::Unavailable(anyhow::anyhow!("the NATS broker is unreachable")));
    }
    Ok(axum::Json(Health { status: "ok" }))
}
