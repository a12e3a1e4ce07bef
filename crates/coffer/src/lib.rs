//! Coffer, the service: configuration, the commit pipeline, the HTTP API and the server
//! that ties them together. The binary (`main.rs`) only parses the command line.
//!
//! Areas live in their own modules: `commit` (the commit pipeline over the ledger core),
//! `http` (errors, extractors, paging, OpenAPI; the resources' handlers in `http::routes`), `identity` (customers, passwords,
//! tokens and the auth extractors), `wallets` and `payments` (the wallet product),
//! `finance` (categories, expenses, categorisation, budgets, reports, schedules),
//! `analytics` (the platform analytics projection),
//! `events` (outbox, relay, bus, NATS), `notifications` (inbox, email, webhooks),
//! `server` (startup, roles and shutdown), `support` (backoff, the worker loop, secret files),
//! `grpc` (the gRPC services), `console` (the web console: HTML pages over the same
//! operations), and `ledger_api` / `wallet_api` (the operations REST and gRPC both serve,
//! written once).

pub mod analytics;
pub mod backup;
pub mod commit;
pub mod config;
pub mod console;
pub mod credit;
pub mod events;
pub mod finance;
pub mod fx;
pub mod grpc;
pub mod http;
pub mod identity;
pub mod insights;
pub mod ledger_api;
pub mod limits;
pub mod notifications;
pub mod payments;
pub mod progress;
pub mod server;
pub mod support;
pub mod telemetry;
pub mod tls;
pub mod verify;
pub mod wallet_api;
pub mod wallets;

/// Nanoseconds since the Unix epoch (the unit of every stored time) as RFC 3339, the one
/// time format of the API and of events; empty when out of range.
pub fn rfc3339(nanos: u64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(nanos))
        .ok()
        .and_then(|time| time.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_default()
}
