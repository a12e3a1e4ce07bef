//! Platform analytics: a read-side projection of the event stream, and the admin views
//! over it (`GET /v1/analytics/daily`, `GET /v1/analytics/customers/{id}`).
//!
//! [`project`] reads an event's `data` as its type's payload (`events::EventData`, the
//! structs of `events::payloads`; other shapes change nothing) and says what it changes —
//! posted volume per day, currency and
//! operation; active and new customers per day; each wallet's latest balance; each
//! expense's amount, month and category — and the store applies those changes once per
//! event (the consumer `analytics` remembers applied ids in the same transaction). The
//! live consumer runs with the other consumers (in-process after the relay, or the
//! durable NATS consumer `coffer-analytics`); [`rebuild`] empties the projection and
//! replays the outbox through the same [`project`], so a rebuild gives what the live
//! projection holds. Facts that replace earlier ones (a balance, an expense's category)
//! carry the event's outbox position, so a late, older event never wins.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use store::{ProjectedEvent, Projection, Store};
use time::{Date, OffsetDateTime, format_description::well_known::Rfc3339};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::events::{Consumer, Direction, EventData, EventType, ExpenseSource, bus::Delivered};
use crate::finance::reports;

/// The consumer name: its applied events are remembered under it.
pub const CONSUMER: &str = "analytics";
/// Days one daily query covers at most.
pub const DAYS_MAX: i64 = 366;
/// Months of spending in a customer snapshot (this month and the 11 before).
pub const SNAPSHOT_MONTHS: u32 = 12;
/// Categories in a snapshot's top list, per currency.
pub const TOP_CATEGORIES: usize = 5;
/// Events replayed per transaction by a rebuild.
const REBUILD_BATCH: u32 = 1_000;

/// The live consumer.
#[derive(Clone, Debug)]
pub struct Analytics {
    store: Store,
}

impl Consumer for Analytics {
    const DURABLE: &'static str = "coffer-analytics";
    async fn apply_all(&self, events: &[Delivered]) -> anyhow::Result<()> {
        Analytics::apply_all(self, events).await
    }
}

/// What one event changes in the projection. Events it does not know, and events whose
/// data does not have its type's shape, change nothing.
pub fn project(seq: u64, id: Uuid, event_type: &str, payload: &str) -> ProjectedEvent {
    let changes = EventType::parse(event_type).and_then(|kind| changes(kind, payload)).unwrap_or_default();
    ProjectedEvent { id, seq, changes }
}

/// The parts of an envelope the projection reads.
#[derive(Deserialize)]
struct Envelope {
    time: String,
    data: Value,
}

fn changes(kind: EventType, payload: &str) -> Option<Vec<Projection>> {
    let envelope: Envelope = serde_json::from_str(payload).ok()?;
    let day = utc(&envelope.time)?.date().to_string();
    let data = EventData::parse(kind, envelope.data).ok()?;
    // The operators' events concern no customer and project nothing.
    let Some(customer_id) = data.customer_id() else { return Some(Vec::new()) };
    let active = |registered| Projection::Active { day: day.clone(), customer_id, registered };
    let expense_facts = |expense_id, occurred: OffsetDateTime, currency: &str, amount| {
        let occurred = occurred.to_offset(time::UtcOffset::UTC);
        Projection::ExpenseFacts {
            expense_id,
            customer_id,
            month: format!("{:04}-{:02}", occurred.year(), u8::from(occurred.month())),
            currency: currency.to_owned(),
            amount,
        }
    };
    let expense_category =
        |expense_id, category_id| Projection::ExpenseCategory { expense_id, customer_id, category_id };
    let changes = match data {
        EventData::CustomerRegistered(_) => vec![active(true)],
        EventData::CustomerLoggedIn(_) => vec![active(false)],
        EventData::WalletCreated(wallet) => vec![
            active(false),
            Projection::Balance {
                wallet_id: wallet.wallet_id,
                customer_id,
                currency: wallet.currency.into_owned(),
                posted: 0,
                pending: 0,
                // A credit wallet starts with its limit available.
                available: i64::try_from(wallet.credit_limit).unwrap_or(0),
            },
        ],
        EventData::TransferPosted(transfer) | EventData::TransferPending(transfer) => {
            let posted = kind == EventType::TransferPosted;
            // Each transfer once: a P2P transfer has an event per wallet, counted on the
            // paying side; a top-up or payout has only the customer's side.
            let out = transfer.direction == Direction::Out;
            let paying = out || transfer.counterparty_wallet_id.is_none();
            let initiated = out || transfer.operation == crate::events::TransferOperation::TopUp;
            let mut changes = Vec::new();
            if initiated {
                changes.push(active(false));
            }
            if paying && posted {
                changes.push(Projection::Volume {
                    day: day.clone(),
                    currency: transfer.currency.into_owned(),
                    operation: transfer.operation.as_str().to_owned(),
                    amount: i64::try_from(transfer.amount).ok()?,
                });
            }
            changes
        }
        EventData::BalanceUpdated(updated) => vec![Projection::Balance {
            wallet_id: updated.wallet_id,
            customer_id,
            currency: updated.currency.into_owned(),
            posted: updated.balance.posted,
            pending: updated.balance.pending,
            available: updated.balance.available,
        }],
        EventData::ExpenseAdded(expense) => {
            // Statement imports and bank syncs record history, mostly without the customer.
            let by_hand = !matches!(expense.source, ExpenseSource::Import | ExpenseSource::BankSync);
            let mut changes = vec![expense_facts(
                expense.expense_id,
                expense.occurred_at,
                &expense.currency,
                expense.amount,
            )];
            if by_hand {
                changes.push(active(false));
            }
            changes
        }
        EventData::ExpenseCategorized(categorized) => {
            vec![expense_category(categorized.expense_id, categorized.category_id)]
        }
        EventData::ExpenseUpdated(expense) => vec![
            active(false),
            expense_facts(expense.expense_id, expense.occurred_at, &expense.currency, expense.amount),
            expense_category(expense.expense_id, expense.category_id),
        ],
        EventData::ExpenseDeleted(deleted) => {
            vec![active(false), Projection::ExpenseDeleted { expense_id: deleted.expense_id, customer_id }]
        }
        EventData::CategoryDeleted(deleted) => vec![
            active(false),
            Projection::CategoriesMoved {
                customer_id,
                from: deleted.deleted_category_ids,
                to: deleted.moved_to,
            },
        ],
        // A conversion counts once, in the currency sold.
        EventData::FxConverted(converted) => vec![
            active(false),
            Projection::Volume {
                day: day.clone(),
                currency: converted.sell_currency.into_owned(),
                operation: store::NoteKind::Conversion.as_str().into(),
                amount: i64::try_from(converted.sell_amount).ok()?,
            },
        ],
        EventData::TransferVoided(_)
        | EventData::TopUpSucceeded(_)
        | EventData::TopUpFailed(_)
        | EventData::WithdrawalSucceeded(_)
        | EventData::WithdrawalFailed(_)
        | EventData::BudgetWarning(_)
        | EventData::BudgetExceeded(_)
        | EventData::ScheduledPaymentFailed(_)
        | EventData::VerifyFindings(_)
        | EventData::MonitorTriggered(_)
        | EventData::ReconciliationUnmatched(_)
        | EventData::CreditScoreChanged(_) => Vec::new(),
    };
    Some(changes)
}

fn utc(text: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(text, &Rfc3339).ok().map(|time| time.to_offset(time::UtcOffset::UTC))
}

/// How a rebuild went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rebuilt {
    /// Events read from the outbox.
    pub events: u64,
    /// Events that changed the projection.
    pub projected: u64,
}

/// Empties the projection and replays every event of the outbox into it, oldest first,
/// in transactions of [`REBUILD_BATCH`] events, telling `progress` the outbox position
/// reached and the head's after each.
pub async fn rebuild(store: &Store, mut progress: impl FnMut(u64, u64)) -> anyhow::Result<Rebuilt> {
    store.reset_projection(CONSUMER).await?;
    let (mut after, mut rebuilt) = (0, Rebuilt { events: 0, projected: 0 });
    // Events written during the rebuild are replayed too; the bar counts to the head at its start.
    let head = store.outbox_head().await?;
    loop {
        let events = store.events_after(after, REBUILD_BATCH).await?;
        let Some(last) = events.last() else { break };
        after = last.seq;
        let projected: Vec<ProjectedEvent> = events
            .iter()
            .map(|event| project(event.seq, event.id, &event.event_type, &event.payload))
            .collect();
        rebuilt.events += events.len() as u64;
        rebuilt.projected += projected.iter().filter(|event| !event.changes.is_empty()).count() as u64;
        store.apply_projection(CONSUMER, &projected, store::now_ns()).await?;
        progress(after.min(head), head);
    }
    Ok(rebuilt)
}

/// Money moved by one kind of operation in one currency.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct VolumeLine {
    pub currency: String,
    /// `top_up`, `transfer`, `payment`, `withdrawal`, `reversal`, …
    pub operation: String,
    /// Minor units.
    pub amount: i64,
    pub count: i64,
}

/// One day of platform figures.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct Day {
    /// `YYYY-MM-DD`, UTC.
    pub date: String,
    /// Customers who did something: registered, logged in, created a wallet, sent or
    /// topped up money (scheduled payments included), added an expense by hand or from a
    /// wallet payment, changed an expense or a category. Receiving money, imports and
    /// bank syncs do not count.
    pub active_customers: i64,
    pub new_customers: i64,
    /// Posted money movement (each transfer once).
    pub volume: Vec<VolumeLine>,
}

/// A wallet's balance in a snapshot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct SnapshotBalance {
    pub wallet_id: Uuid,
    pub currency: String,
    pub posted: i64,
    pub pending: i64,
    pub available: i64,
}

/// Spending in one month and currency.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct MonthSpend {
    /// `YYYY-MM`.
    pub month: String,
    pub currency: String,
    pub amount: i64,
    pub count: i64,
}

/// Spending in one top-level category and currency.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct CategorySpend {
    pub category_id: Uuid,
    pub name: String,
    pub currency: String,
    pub amount: i64,
    pub count: i64,
}

/// A customer as the projection sees them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct CustomerSnapshot {
    pub customer_id: Uuid,
    pub registered_on: Option<String>,
    pub last_active_on: Option<String>,
    pub balances: Vec<SnapshotBalance>,
    /// Spending (not income) per month and currency, this month and the 11 before; months
    /// without any are left out.
    pub monthly_spend: Vec<MonthSpend>,
    /// The largest top-level spending categories over those months, per currency.
    pub top_categories: Vec<CategorySpend>,
}

impl Analytics {
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    /// Applies `events` in order, each once.
    pub async fn apply_all(&self, events: &[Delivered]) -> anyhow::Result<()> {
        let projected: Vec<ProjectedEvent> = events
            .iter()
            .map(|event| project(event.seq, event.id, &event.event_type, &event.payload))
            .collect();
        self.store.apply_projection(CONSUMER, &projected, store::now_ns()).await?;
        Ok(())
    }

    /// Every day of `[from, to]` (at most [`DAYS_MAX`]), oldest first.
    pub async fn daily(&self, from: Date, to: Date) -> anyhow::Result<Vec<Day>> {
        let (from_text, to_text) = (from.to_string(), to.to_string());
        let mut volume: HashMap<String, Vec<VolumeLine>> = HashMap::new();
        for row in self.store.daily_volume(&from_text, &to_text).await? {
            let line = VolumeLine {
                currency: row.currency,
                operation: row.operation,
                amount: row.volume,
                count: row.count,
            };
            volume.entry(row.day).or_default().push(line);
        }
        let customers: HashMap<String, (i64, i64)> = self
            .store
            .daily_customers(&from_text, &to_text)
            .await?
            .into_iter()
            .map(|row| (row.day, (row.active, row.registered)))
            .collect();
        let mut days = Vec::new();
        let mut date = Some(from);
        while let Some(day) = date.filter(|day| *day <= to) {
            let text = day.to_string();
            let (active_customers, new_customers) = customers.get(&text).copied().unwrap_or_default();
            days.push(Day {
                active_customers,
                new_customers,
                volume: volume.remove(&text).unwrap_or_default(),
                date: text,
            });
            date = day.next_day();
        }
        Ok(days)
    }

    /// The customer's snapshot as of `now` (nanoseconds).
    pub async fn customer(&self, customer_id: Uuid, now: u64) -> anyhow::Result<CustomerSnapshot> {
        let (registered_on, last_active_on) = self.store.customer_days(customer_id).await?;
        let balances = self
            .store
            .projected_balances(customer_id)
            .await?
            .into_iter()
            .map(|row| SnapshotBalance {
                wallet_id: row.wallet_id,
                currency: row.currency,
                posted: row.posted,
                pending: row.pending,
                available: row.available,
            })
            .collect();
        let (mut year, mut month) = reports::month_of(i64::try_from(now).unwrap_or(i64::MAX));
        for _ in 1..SNAPSHOT_MONTHS {
            (year, month) = reports::previous(year, month);
        }
        let spend = self.store.projected_spend(customer_id, &format!("{year:04}-{month:02}")).await?;
        // Names and the income tree are read from the customer's categories as they are now.
        let categories = self.store.categories(customer_id).await?;
        let income = reports::income_ids(&categories);
        let mut monthly_spend: Vec<MonthSpend> = Vec::new();
        let mut by_category: Vec<CategorySpend> = Vec::new();
        for row in spend.iter().filter(|row| !row.category_id.is_some_and(|id| income.contains(&id))) {
            match monthly_spend
                .iter_mut()
                .find(|line| line.month == row.month && line.currency == row.currency)
            {
                Some(line) => {
                    line.amount = line.amount.saturating_add(row.total);
                    line.count += row.count;
                }
                None => monthly_spend.push(MonthSpend {
                    month: row.month.clone(),
                    currency: row.currency.clone(),
                    amount: row.total,
                    count: row.count,
                }),
            }
            let top = row.category_id.map(|id| reports::top(&categories, id));
            let category = top.and_then(|id| categories.iter().find(|c| c.id == id));
            let (category_id, name) = match category {
                Some(category) => (category.id, category.name.clone()),
                // Not among the customer's categories (none yet, or deleted): Uncategorised.
                None => match categories.iter().find(|c| c.system) {
                    Some(system) => (system.id, system.name.clone()),
                    None => (Uuid::nil(), crate::finance::categories::UNCATEGORISED.to_owned()),
                },
            };
            match by_category
                .iter_mut()
                .find(|line| line.category_id == category_id && line.currency == row.currency)
            {
                Some(line) => {
                    line.amount = line.amount.saturating_add(row.total);
                    line.count += row.count;
                }
                None => by_category.push(CategorySpend {
                    category_id,
                    name,
                    currency: row.currency.clone(),
                    amount: row.total,
                    count: row.count,
                }),
            }
        }
        monthly_spend.sort_by(|a, b| (&a.month, &a.currency).cmp(&(&b.month, &b.currency)));
        by_category.sort_by(|a, b| {
            (&a.currency, std::cmp::Reverse(a.amount), &a.name).cmp(&(
                &b.currency,
                std::cmp::Reverse(b.amount),
                &b.name,
            ))
        });
        let mut top_categories = Vec::new();
        for line in by_category {
            if top_categories.iter().filter(|kept: &&CategorySpend| kept.currency == line.currency).count()
                < TOP_CATEGORIES
            {
                top_categories.push(line);
            }
        }
        Ok(CustomerSnapshot {
            customer_id,
            registered_on,
            last_active_on,
            balances,
            monthly_spend,
            top_categories,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn envelope(kind: &str, time: &str, data: impl Serialize) -> String {
        json!({"type": format!("coffer.{kind}"), "time": time, "data": data}).to_string()
    }

    #[test]
    fn a_p2p_transfer_counts_once_and_a_top_up_counts() {
        let (alice, bob) = (Uuid::now_v7(), Uuid::now_v7());
        let leg = |customer: Uuid,
                   direction,
                   counterparty: Option<Uuid>,
                   operation: crate::events::TransferOperation| {
            let payload = envelope(
                "transfer.posted",
                "2026-03-01T23:59:59.5+00:00",
                crate::events::TransferData {
                    customer_id: customer,
                    wallet_id: Uuid::now_v7(),
                    transfer_id: Uuid::now_v7(),
                    operation,
                    direction,
                    amount: 250,
                    currency: "EUR".into(),
                    counterparty_wallet_id: counterparty,
                    description: None,
                },
            );
            project(1, Uuid::now_v7(), "coffer.transfer.posted", &payload).changes
        };
        let volume = |changes: &[Projection]| changes.iter().any(|c| matches!(c, Projection::Volume { .. }));
        let out =
            leg(alice, Direction::Out, Some(Uuid::now_v7()), crate::events::TransferOperation::Transfer);
        assert!(volume(&out));
        assert!(out.contains(&Projection::Volume {
            day: "2026-03-01".into(),
            currency: "EUR".into(),
            operation: "transfer".into(),
            amount: 250
        }));
        let incoming =
            leg(bob, Direction::In, Some(Uuid::now_v7()), crate::events::TransferOperation::Transfer);
        assert!(incoming.is_empty(), "receiving is neither volume (counted once) nor activity: {incoming:?}");
        assert!(volume(&leg(bob, Direction::In, None, crate::events::TransferOperation::TopUp)));
    }

    #[test]
    fn days_are_utc_and_expense_months_come_from_when_it_happened() {
        let customer = Uuid::now_v7();
        let expense = Uuid::now_v7();
        let added = |source| {
            envelope(
                "expense.added",
                "2026-04-01T01:00:00+02:00",
                crate::events::ExpenseAddedData {
                    customer_id: customer,
                    wallet_id: None,
                    expense_id: expense,
                    amount: 5,
                    currency: "USD".into(),
                    merchant: None,
                    source,
                    occurred_at: OffsetDateTime::parse("2026-02-28T23:30:00-01:00", &Rfc3339).unwrap(),
                },
            )
        };
        let changes =
            project(7, Uuid::now_v7(), "coffer.expense.added", &added(ExpenseSource::Manual)).changes;
        let facts = Projection::ExpenseFacts {
            expense_id: expense,
            customer_id: customer,
            month: "2026-03".into(),
            currency: "USD".into(),
            amount: 5,
        };
        assert_eq!(
            changes,
            vec![
                facts.clone(),
                Projection::Active { day: "2026-03-31".into(), customer_id: customer, registered: false },
            ]
        );
        // A bank sync's expense is history, not something the customer did that day.
        let synced = added(ExpenseSource::BankSync);
        assert_eq!(project(8, Uuid::now_v7(), "coffer.expense.added", &synced).changes, vec![facts]);
    }

    #[test]
    fn unknown_or_malformed_events_change_nothing() {
        assert!(project(1, Uuid::now_v7(), "coffer.nope", "{}").changes.is_empty());
        assert!(project(1, Uuid::now_v7(), "coffer.expense.added", "not json").changes.is_empty());
        let missing =
            envelope("balance.updated", "2026-01-01T00:00:00Z", json!({"customer_id": Uuid::now_v7()}));
        assert!(project(1, Uuid::now_v7(), "coffer.balance.updated", &missing).changes.is_empty());
    }
}
