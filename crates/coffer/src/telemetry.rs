//! Logging and tracing: one `tracing` subscriber that writes text or JSON lines
//! (filtered by `COFFER_LOG`) and, when `COFFER_OTLP_ENDPOINT` is set, exports Coffer's
//! own spans over OTLP/HTTP.
//!
//! The spans of a money-moving request: `request` (the HTTP layer, one per request, with
//! its id) → the service's span (e.g. `wallets.transfer`) → `commit.batch`, the commit
//! pipeline's batch, a root span of its own because one batch carries many requests; it is
//! linked to the span of every request it carries → `store.commit`, the batch's
//! transaction. Inside a traced request every log line carries the `trace_id`. Metrics
//! stay Prometheus (`/metrics`).

use opentelemetry::trace::{TraceContextExt as _, TracerProvider as _};
use opentelemetry_sdk::{Resource, trace::SdkTracerProvider};
use tracing::Level;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::{
    EnvFilter, Layer as _, filter::Targets, fmt, layer::SubscriberExt as _, util::SubscriberInitExt as _,
};

use crate::config::LogFormat;

/// How long one export may take; the exporter runs on its own thread, so a slow
/// collector delays only spans, never requests (the batch queue is bounded and drops
/// spans when full).
const EXPORT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// The crates whose spans are exported (dependencies' spans and events are not).
const TRACED_CRATES: [&str; 3] = ["coffer", "store", "ledger"];

/// Whether spans are exported (set once by [`init`]): linking spans costs nothing then.
static EXPORTING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether an OTLP exporter is installed.
pub fn exporting() -> bool {
    EXPORTING.load(std::sync::atomic::Ordering::Relaxed)
}

/// What [`init`] installed; [`Telemetry::shutdown`] sends the spans still buffered.
#[derive(Debug)]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Flushes and stops the exporter (bounded by its own timeout).
    pub fn shutdown(self) {
        if let Some(provider) = self.provider
            && let Err(error) = provider.shutdown()
        {
            tracing::warn!(%error, "the trace exporter did not shut down cleanly");
        }
    }
}

/// Installs the global subscriber. Call once, first thing in `main`.
pub fn init(filter: &str, format: LogFormat, otlp_endpoint: Option<&str>) -> anyhow::Result<Telemetry> {
    let filter = EnvFilter::try_new(filter)?;
    let logs = match format {
        LogFormat::Text => fmt::layer().with_writer(std::io::stderr).boxed(),
        LogFormat::Json => fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_writer(std::io::stderr)
            .boxed(),
    };
    let (traces, provider) = match otlp_endpoint {
        Some(endpoint) => {
            use opentelemetry_otlp::WithExportConfig as _;
            crate::support::install_crypto_provider();
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_endpoint(format!("{}/v1/traces", endpoint.trim_end_matches('/')))
                .with_timeout(EXPORT_TIMEOUT)
                .build()?;
            let provider = SdkTracerProvider::builder()
                .with_batch_exporter(exporter)
                .with_resource(Resource::builder().with_service_name("coffer").build())
                .build();
            let targets = TRACED_CRATES
                .iter()
                .fold(Targets::new(), |targets, name| targets.with_target(*name, Level::INFO));
            let layer =
                tracing_opentelemetry::layer().with_tracer(provider.tracer("coffer")).with_filter(targets);
            (Some(layer), Some(provider))
        }
        None => (None, None),
    };
    tracing_subscriber::registry()
        .with(logs.with_filter(filter))
        .with(traces)
        .try_init()
        .map_err(|error| anyhow::anyhow!(error))?;
    EXPORTING.store(provider.is_some(), std::sync::atomic::Ordering::Relaxed);
    Ok(Telemetry { provider })
}

/// Parses `COFFER_OTLP_ENDPOINT`: an `http://` or `https://` URL.
pub fn parse_endpoint(value: &str) -> Result<String, String> {
    match value.strip_prefix("http://").or_else(|| value.strip_prefix("https://")) {
        Some(address) if !address.is_empty() => Ok(value.to_owned()),
        _ => Err("must be an http:// or https:// URL, e.g. http://127.0.0.1:4318".into()),
    }
}

/// The trace id of `span` when it is exported, for log lines; `None` without an exporter.
pub fn trace_id(span: &tracing::Span) -> Option<String> {
    exported(span).map(|context| context.trace_id().to_string())
}

/// Links `batch` (a commit batch's span) to the span of a request it carries.
pub fn link(batch: &tracing::Span, request: &tracing::Span) {
    if let Some(context) = exported(request) {
        batch.add_link(context);
    }
}

/// `span`'s OpenTelemetry identity, when it is exported.
fn exported(span: &tracing::Span) -> Option<opentelemetry::trace::SpanContext> {
    if !exporting() {
        return None;
    }
    let context = span.context();
    let span_context = context.span().span_context().clone();
    span_context.is_valid().then_some(span_context)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_http_urls() {
        assert!(parse_endpoint("http://127.0.0.1:4318").is_ok());
        assert!(parse_endpoint("https://collector.example").is_ok());
        for bad in ["127.0.0.1:4318", "ftp://collector", "http://", ""] {
            assert!(parse_endpoint(bad).is_err(), "{bad}");
        }
    }
}
