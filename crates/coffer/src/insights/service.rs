//! The insights service: a customer's expenses of the last 400 days (at most
//! `store::SPENDS_MAX`), income left out, read through the detectors of `detect`. Nothing
//! is kept but what the customer has been told (`insight_notices`), so the insights are
//! always those of the expenses as they stand — an edited or deleted expense changes them
//! at the next read, and there is nothing to rebuild.
//!
//! The notifications consumer calls [`Insights::news`] when expenses arrive: a recurring
//! payment not seen before, a subscription's price rising, an alert on a just-arrived
//! expense of the last 30 days (older ones, from an import or a bank's history, are in
//! the list but not worth a message), a wallet forecast to go below zero within 30 days.
//! Each is told once.

use std::collections::{HashMap, HashSet};

use store::{Store, StoreError};
use uuid::Uuid;

use super::detect::{self, Alert, AnomalySettings, Recurring, Spend};
use super::forecast::{self, Flow, FlowSource, Start, WalletForecast};
use crate::finance::{reports, schedules::next_occurrence};
use crate::wallets::Balance;

/// Days of wallet income the forecast averages.
const INCOME_DAYS: i64 = 90;
/// Incoming operations the income average reads at most.
const INCOME_ROWS_MAX: u32 = 2_000;
/// Days ahead a forecast below zero is told about.
const FORECAST_TOLD_DAYS: u32 = 30;

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
                wallet_id: row.wallet_id,
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
        let recurring = detect::recurring(&spends, now / 1_000_000_000);
        let mut news = Vec::new();
        for item in &recurring {
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
            let money = |amount| crate::wallets::money::shown(amount, &item.currency);
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
        for wallet in self.forecast_from(customer_id, FORECAST_TOLD_DAYS, now, &recurring).await? {
            let Some(day) = wallet.below_zero_on else { continue };
            let money = |amount| crate::wallets::money::shown(amount, &wallet.start.currency);
            news.push(Notice {
                key: format!("forecast:{}:{day}", wallet.start.wallet_id),
                kind: "low_balance_forecast",
                title: format!("Your {} wallet may go below zero on {day}", wallet.start.currency),
                body: format!(
                    "With the payments expected, wallet {} is forecast to reach {} on {day} (lowest {} on {}). \
                     GET /v1/insights/forecast has the details.",
                    wallet.start.wallet_id,
                    money(wallet.days.iter().find(|(on, _)| *on == day).map_or(0, |(_, balance)| *balance)),
                    money(wallet.lowest.1),
                    wallet.lowest.0
                ),
            });
        }
        news.retain(|notice| !told.contains(&notice.key));
        Ok(news)
    }
}

impl Insights {
    /// Each of the customer's wallets' expected balance for `days` days from today: the
    /// available balance now, plus the wallet's average daily income over the last 90 days
    /// (top-ups and transfers from other customers), less every occurrence of its active
    /// scheduled payments (plus those into it from the customer's other wallets), less the
    /// expected charges of the recurring payments found in the expenses — on the wallet
    /// that paid the last one, or the customer's main wallet in that currency, and not
    /// when a scheduled payment to that biller already counts them.
    pub async fn forecast(&self, customer_id: Uuid, days: u32) -> Result<Vec<WalletForecast>, StoreError> {
        let now = now_ns();
        let (spends, _) = self.spends(customer_id, now).await?;
        self.forecast_from(customer_id, days, now, &detect::recurring(&spends, now / 1_000_000_000)).await
    }

    /// [`Insights::forecast`] with the customer's recurring payments found already.
    async fn forecast_from(
        &self,
        customer_id: Uuid,
        days: u32,
        now: i64,
        recurring: &[Recurring],
    ) -> Result<Vec<WalletForecast>, StoreError> {
        let today = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(now))
            .map_or(time::Date::MIN, |now| now.date());
        let days = days.clamp(1, forecast::HORIZON_DAYS_MAX);
        let until = now + i64::from(days) * DAY_NS;
        let on = |at: i64| {
            time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(at)).map_or(today, |at| at.date())
        };
        let wallets =
            self.store.customer_wallets(customer_id, None, store::WALLETS_PER_CUSTOMER_MAX as u32).await?;
        let ids: HashSet<Uuid> = wallets.iter().map(|wallet| wallet.id).collect();
        // Income: what came in from outside the customer's own wallets.
        let filter = store::OperationFilter {
            wallet_ids: wallets.iter().map(|wallet| wallet.id).collect(),
            debits: false,
            credits: true,
            kind: None,
            status: Some(ledger::PendingStatus::Posted),
            timestamp_min: u64::try_from(now - INCOME_DAYS * DAY_NS).unwrap_or(0),
            timestamp_max: u64::MAX >> 1,
            amount_min: 0,
            amount_max: ledger::AMOUNT_MAX,
            reversed: true,
            after: None,
            limit: INCOME_ROWS_MAX,
        };
        let mut income: HashMap<Uuid, i64> = HashMap::new();
        for row in self.store.operations(&filter).await? {
            let outside = !ids.contains(&row.counterparty_account_id);
            if matches!(row.kind, Some(store::NoteKind::TopUp | store::NoteKind::Transfer)) && outside {
                *income.entry(row.wallet_id).or_default() += i64::try_from(row.amount).unwrap_or(0);
            }
        }
        let starts: Vec<Start> = wallets
            .iter()
            .map(|wallet| Start {
                wallet_id: wallet.id,
                currency: wallet.currency.clone(),
                balance: Balance::of(wallet).available,
                daily_income: income.get(&wallet.id).copied().unwrap_or(0) / INCOME_DAYS,
            })
            .collect();
        let mut flows = Vec::new();
        let mut billers: HashSet<(String, String)> = HashSet::new();
        for schedule in self.store.schedules(customer_id).await? {
            if schedule.status != store::ScheduleStatus::Active {
                continue;
            }
            if let Some(biller) = &schedule.biller {
                billers.insert((detect::merchant_key(biller), schedule.currency.clone()));
            }
            let label = schedule
                .description
                .clone()
                .or_else(|| schedule.biller.clone())
                .unwrap_or_else(|| "scheduled payment".into());
            let mut at = Some(schedule.next_run_at);
            while let Some(occurrence) = at.filter(|at| *at <= until) {
                let flow = |wallet_id, amount| Flow {
                    wallet_id,
                    on: on(occurrence),
                    amount,
                    source: FlowSource::Scheduled,
                    label: label.clone(),
                };
                flows.push(flow(schedule.from_wallet_id, -schedule.amount));
                if let Some(to) = schedule.to_wallet_id.filter(|to| ids.contains(to)) {
                    flows.push(flow(to, schedule.amount));
                }
                at = next_occurrence(schedule.frequency, schedule.start_at, occurrence, schedule.end_at);
            }
        }
        for item in recurring {
            if billers.contains(&(item.key.clone(), item.currency.clone())) {
                continue;
            }
            let main = || {
                wallets
                    .iter()
                    .find(|wallet| {
                        wallet.currency == item.currency && wallet.wallet_type == store::WalletType::Wallet
                    })
                    .map(|wallet| wallet.id)
            };
            let Some(wallet_id) = item.wallet_id.filter(|id| ids.contains(id)).or_else(main) else {
                continue;
            };
            let (period, _) = item.cadence.period_s();
            let mut at = item.next_at;
            while at * 1_000_000_000 <= until {
                if at * 1_000_000_000 >= now - DAY_NS {
                    let on = on(at * 1_000_000_000).max(today);
                    flows.push(Flow {
                        wallet_id,
                        on,
                        amount: -item.next_amount,
                        source: FlowSource::Recurring,
                        label: item.merchant.clone(),
                    });
                }
                at += period;
            }
        }
        Ok(forecast::project(today, days, &starts, &flows))
    }
}

fn alerts(spends: &[Spend], names: &HashMap<Uuid, String>) -> Vec<Alert> {
    let category = |id: Uuid| names.get(&id).cloned().unwrap_or_else(|| "this category".to_owned());
    detect::anomalies(spends, &category, &AnomalySettings::default())
}

fn now_ns() -> i64 {
    i64::try_from(store::now_ns()).unwrap_or(i64::MAX)
}
