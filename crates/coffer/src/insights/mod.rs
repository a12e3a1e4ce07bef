//! Insights a customer acts on, from their own expenses: recurring payments (subscriptions
//! and bills, with the next charge expected) and alerts on spends worth a second look
//! (duplicates, new merchants, unusual amounts). `detect` holds the rules (pure);
//! `docs/insights.md` has them with the precision and recall measured on a generated year.

pub mod detect;
pub mod service;

pub use service::Insights;
