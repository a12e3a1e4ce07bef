//! The resources of the API, one file each: its routes, request and response types,
//! OpenAPI annotations and handlers. A handler parses the request, calls one service
//! function and maps the result; the plumbing every resource shares lives beside this
//! folder in `http/`.

pub mod analytics;
pub mod auth;
pub mod banks;
pub mod credit;
pub mod customers;
pub mod finance;
pub mod fx;
pub mod health;
pub mod insights;
pub mod ledger;
pub mod monitors;
pub mod notifications;
pub mod payments;
pub mod reconciliations;
pub mod reports;
pub mod schedules;
pub mod stream;
pub mod verify;
pub mod wallets;
