//! `/metrics` in the Prometheus text format, and the middleware that measures every
//! request: `coffer_http_requests_total{method,route,status}` and
//! `coffer_http_request_duration_seconds{method,route}` (route = the matched route
//! template, so ids never explode the label space).
//!
//! Other areas record their own figures with the `metrics` macros: the commit pipeline
//! (`coffer_commit_*`), the relay (`coffer_outbox_backlog`, `coffer_relay_lag_seconds`,
//! `coffer_events_relayed_total{type}`, which doubles as the business counters of
//! registrations, transfers and top-ups), WebSocket streams, emails and webhooks.

use std::collections::HashMap;
use std::sync::{OnceLock, RwLock};
use std::time::Instant;

use axum::{
    Router,
    extract::{MatchedPath, Request},
    http::{Method, header},
    middleware::Next,
    response::{IntoResponse, Response},
    routing::get,
};
use metrics::{Counter, Histogram};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use super::AppState;

/// Latency buckets, in seconds.
const BUCKETS: &[f64] =
    &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// The process-wide recorder (installed on first use; every server in the process shares it).
pub fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        PrometheusBuilder::new()
            .set_buckets(BUCKETS)
            .expect("the bucket list is not empty")
            .install_recorder()
            .expect("no other metrics recorder is installed")
    })
}

pub fn router() -> Router<AppState> {
    Router::new().route("/metrics", get(render))
}

async fn render() -> Response {
    let handle = handle();
    handle.run_upkeep();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], handle.render()).into_response()
}

/// Counts and times each request under its route template.
pub async fn record(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let route = request.extensions().get::<MatchedPath>().cloned();
    let response = next.run(request).await;
    let route = route.as_ref().map_or("unmatched", MatchedPath::as_str);
    let (requests, duration) = handles(&method, route, response.status().as_u16());
    requests.increment(1);
    duration.record(started.elapsed().as_secs_f64());
    response
}

/// The metric handles of one route, registered on its first request: a request then
/// finds its counter and histogram with one map lookup, with no labels built.
#[derive(Default)]
struct RouteHandles {
    requests: Vec<(Method, u16, Counter)>,
    durations: Vec<(Method, Histogram)>,
}

/// Routes' handles by route template. Bounded by the routes (and methods and statuses)
/// the server has, since unmatched requests share one entry.
fn routes() -> &'static RwLock<HashMap<Box<str>, RouteHandles>> {
    static ROUTES: OnceLock<RwLock<HashMap<Box<str>, RouteHandles>>> = OnceLock::new();
    ROUTES.get_or_init(|| {
        // Handles made before the recorder is installed would count nothing, for good.
        handle();
        RwLock::default()
    })
}

/// The request counter of (`method`, `route`, `status`) and the duration histogram of
/// (`method`, `route`).
fn handles(method: &Method, route: &str, status: u16) -> (Counter, Histogram) {
    let found = |handles: &RouteHandles| {
        let requests = handles.requests.iter().find(|(m, s, _)| m == method && *s == status);
        let duration = handles.durations.iter().find(|(m, _)| m == method);
        Some((requests?.2.clone(), duration?.1.clone()))
    };
    if let Some(found) = routes().read().expect("not poisoned").get(route).and_then(found) {
        return found;
    }
    let mut routes = routes().write().expect("not poisoned");
    let handles = routes.entry(route.into()).or_default();
    if !handles.requests.iter().any(|(m, s, _)| m == method && *s == status) {
        let labels =
            [("method", method.to_string()), ("route", route.to_owned()), ("status", status.to_string())];
        handles.requests.push((
            method.clone(),
            status,
            metrics::counter!("coffer_http_requests_total", &labels),
        ));
    }
    if !handles.durations.iter().any(|(m, _)| m == method) {
        let labels = [("method", method.to_string()), ("route", route.to_owned())];
        let histogram = metrics::histogram!("coffer_http_request_duration_seconds", &labels);
        handles.durations.push((method.clone(), histogram));
    }
    found(handles).expect("registered above")
}
