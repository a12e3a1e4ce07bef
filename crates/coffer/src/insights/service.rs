//! The insights service: a customer's expenses of the last 400 days (at most
//! `store::SPENDS_MAX`), income left out, read through the detectors of `detect`. Nothing
//! is kept but what the customer has been told (`insight_notices`), so the insights are
//! always those of the expenses as they stand — an edited or deleted expense changes them
//! at the next read, and there is nothing to rebuild.
//!
//! The notifications consumer calls [`Insights::news`] when expenses arrive: a recurring
//! payment not seen before, a subscription's price rising, an alert on a just-arrived
//! expense of the last 30 days (older ones, from an import or a bank's history, are in
//! the list but not worth a message). Each is told once.

use std::collections::{HashMap, HashSet};

use store::{Store, StoreError};
use uuid::Uuid;

use super::detect::{self, Alert, AnomalySettings, Recurring, Spend};
use crate::finance::reports;

/// Days of expenses the insights read.
pub const WINDOW_DAYS: i64 = 400;
/// Days an arrived expense may be old and still be told about.
const TOLD_DAYS: i64 = 30;
const DAY_NS: i64 = 86_400 * 1_000_000_000;

/// Something to tell a customer about their spending.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notice {
    /// Told once per key (`insight_notices`).
    pub key: String,
    /// The inbox kind: `subscription_detected`, `price_increase` or `spending_alert`.
    pub kind: &'static str,
    pub title: String,
    pub body: String,
}

/// The insights service. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Insights {
    store: Store,
}

impl Insights {
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    /// The customer's spends in the window, and their categories' names.
    async fn spends(
        &self,
        customer_id: Uuid,
        now: i64,
    ) -> Result<(Vec<Spend>, HashMap<Uuid, String>), StoreError> {
        let categories = self.store.categories(customer_id).await?;
        let income: HashSet<Uuid> = reports::income_ids(&categories).into_iter().collect();
        let names = categories.into_iter().map(|category| (category.id, category.name)).collect();
        let rows =
            self.store.expenses_since(customer_id, now - WINDOW_DAYS * DAY_NS, store::SPENDS_MAX).await?;
        let spends = rows
            .into_iter()
            .filter(|row| !income.contains(&row.category_id))
            .map(|row| Spend {
                id: row.id,
                merchant: row.merchant.or(row.description).unwrap_or_default(),
                category_id: row.category_id,
                amount: row.amount,
                currency: row.currency,
                at: row.occurred_at.div_euclid(1_000_000_000),
            })
            .collect();
        Ok((spends, names))
    }

    /// The customer's recurring payments, the next expected first.
    pub async fn recurring(&self, customer_id: Uuid) -> Result<Vec<Recurring>, StoreError> {
        let now = now_ns();
        let (spends, _) = self.spends(customer_id, now).await?;
        Ok(detect::recurring(&spends, now / 1_000_000_000))
    }

    /// The alerts on the customer's spends, newest first.
    pub async fn alerts(&self, customer_id: Uuid) -> Result<Vec<Alert>, StoreError> {
        let (spends, names) = self.spends(customer_id, now_ns()).await?;
        let mut alerts = alerts(&spends, &names);
        alerts.reverse();
        Ok(alerts)
    }

    /// What the customer is to be told now that the expenses `arrived` came in, and was
    /// not told before.
    pub async fn news(&self, customer_id: Uuid, arrived: &HashSet<Uuid>) -> Result<Vec<Notice>, StoreError> {
        let now = now_ns();
        let (spends, names) = self.spends(customer_id, now).await?;
        let told = self.store.insight_notices(customer_id).await?;
        let mut news = Vec::new();
        for item in detect::recurring(&spends, now / 1_000_000_000) {
            let name = format!("{}:{}", item.key, item.currency);
            let what = match item.kind {
                detect::RecurringKind::Subscription => "subscription",
                detect::RecurringKind::Bill => "bill",
            };
            let cadence = match item.cadence {
                detect::Cadence::Weekly => "weekly",
                detect::Cadence::Monthly => "monthly",
                detect::Cadence::Yearly => "yearly",
            };
            let money = |amount| detect::money(amount, &item.currency);
            news.push(Notice {
                key: format!("recurring:{name}"),
                kind: "subscription_detected",
                title: format!("A {cadence} {what}: {}", item.merchant),
                body: format!(
                    "{} has charged you {} times, about {} each. The next charge is expected around {}.",
                    item.merchant,
                    item.occurrences,
                    money(item.next_amount),
                    time::OffsetDateTime::from_unix_timestamp(item.next_at)
                        .map_or_else(|_| "its date".to_owned(), |at| at.date().to_string())
                ),
            });
            if let Some(change) = item.price_change.filter(|change| change.to > change.from) {
                news.push(Notice {
                    key: format!("price:{name}:{}", change.to),
                    kind: "price_increase",
                    title: format!("{} raised its price", item.merchant),
                    body: format!(
                        "{} now charges {} instead of {} ({:+.1} %).",
                        item.merchant,
                        money(change.to),
                        money(change.from),
                        (change.to - change.from) as f64 * 100.0 / change.from as f64
                    ),
                });
            }
        }
        for alert in alerts(&spends, &names) {
            if arrived.contains(&alert.expense_id) && now / 1_000_000_000 - alert.at <= TOLD_DAYS * 86_400 {
                news.push(Notice {
                    key: format!("alert:{}", alert.expense_id),
                    kind: "spending_alert",
                    title: match alert.kind {
                        detect::AlertKind::DuplicateCharge => {
                            format!("Possible duplicate charge: {}", alert.merchant)
                        }
                        detect::AlertKind::NewMerchant => format!("A large first charge: {}", alert.merchant),
                        detect::AlertKind::UnusualAmount => format!("Unusual spend: {}", alert.merchant),
                    },
                    body: alert.reason,
                });
            }
        }
        news.retain(|notice| !told.contains(&notice.key));
        Ok(news)
    }
}

fn alerts(spends: &[Spend], names: &HashMap<Uuid, String>) -> Vec<Alert> {
    let category = |id: Uuid| names.get(&id).cloned().unwrap_or_else(|| "this category".to_owned());
    detect::anomalies(spends, &category, &AnomalySettings::default())
}

fn now_ns() -> i64 {
    i64::try_from(store::now_ns()).unwrap_or(i64::MAX)
}
