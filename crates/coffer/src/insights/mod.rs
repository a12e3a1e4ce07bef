//! Insights a customer acts on, from their own expenses: recurring payments (subscriptions
//! and bills, with the next charge expected), alerts on spends worth a second look
//! (duplicates, new merchants, unusual amounts) and each wallet's cash-flow forecast.
//! `detect` and `forecast` hold the rules (pure), `service` gathers what they read;
//! `docs/insights.md` has them with the precision and recall measured on a generated year.

pub mod detect;
pub mod forecast;
pub mod service;

pub use service::Insights;
