//! Platform analytics: the read-side projection tables (`analytics_*`, migration
//! 0007_analytics) and the queries over them. What an event means for the projection is
//! the service's business (`coffer::analytics` turns events into [`Projection`] changes);
//! the store applies each event's changes once per consumer, in one transaction with the
//! consumer's memory of applied events, and can wipe the projection for a rebuild.

use crate::BeginWrite as _;
use uuid::Uuid;

use std::collections::HashMap;

use crate::{ROWS_PER_STATEMENT, Result, Store, codec::saturating as signed, numbered, with_pool};

/// One change an event makes to the projection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Projection {
    /// Posted money movement: adds to the day's volume and count.
    Volume {
        day: String,
        currency: String,
        operation: String,
        amount: i64,
    },
    /// The customer was active on `day` (and registered then, when `registered`).
    Active {
        day: String,
        customer_id: Uuid,
        registered: bool,
    },
    /// A wallet's balance as of this event.
    Balance {
        wallet_id: Uuid,
        customer_id: Uuid,
        currency: String,
        posted: i64,
        pending: i64,
        available: i64,
    },
    /// An expense's amount, currency and month.
    ExpenseFacts {
        expense_id: Uuid,
        customer_id: Uuid,
        month: String,
        currency: String,
        amount: i64,
    },
    /// An expense's category.
    ExpenseCategory {
        expense_id: Uuid,
        customer_id: Uuid,
        category_id: Uuid,
    },
    ExpenseDeleted {
        expense_id: Uuid,
        customer_id: Uuid,
    },
    /// Categories were deleted; their expenses moved to `to`.
    CategoriesMoved {
        customer_id: Uuid,
        from: Vec<Uuid>,
        to: Uuid,
    },
}

/// An event's changes, with its id (applied once per consumer) and outbox position
/// (a fact from an older event never overwrites one from a newer).
#[derive(Clone, Debug)]
pub struct ProjectedEvent {
    pub id: Uuid,
    pub seq: u64,
    pub changes: Vec<Projection>,
}

/// Money moved on one day in one currency by one kind of operation.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct DailyVolume {
    pub day: String,
    pub currency: String,
    pub operation: String,
    pub volume: i64,
    pub count: i64,
}

/// Customers active and registered on one day.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct DailyCustomers {
    pub day: String,
    pub active: i64,
    pub registered: i64,
}

/// A wallet's balance as the projection last saw it.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct ProjectedBalance {
    pub wallet_id: Uuid,
    pub currency: String,
    pub posted: i64,
    pub pending: i64,
    pub available: i64,
}

/// A customer's expenses of one month, currency and category.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct ProjectedSpend {
    pub month: String,
    pub currency: String,
    pub category_id: Option<Uuid>,
    pub total: i64,
    pub count: i64,
}

/// Rows one analytics query returns at most (a year of days × currencies × operations
/// fits many times over); a query that would return more fails rather than answer short.
const ANALYTICS_ROWS_MAX: i64 = 100_000;

/// PostgreSQL advisory lock taken by every projection write and by the reset, so a reset
/// never interleaves with a live apply: otherwise the reset could miss rows a concurrent
/// apply had not committed yet while deleting the applied-event ids it had, and the
/// rebuild would count those events twice. (SQLite has a single writer anyway.)
const PROJECTION_LOCK: i64 = 0x0063_6f66_6665_7201;

fn bounded<T>(rows: Vec<T>) -> Result<Vec<T>> {
    if rows.len() as i64 >= ANALYTICS_ROWS_MAX {
        return Err(crate::StoreError::LimitReached("an analytics query reached its row limit"));
    }
    Ok(rows)
}

/// Takes [`PROJECTION_LOCK`] for the transaction, on PostgreSQL.
macro_rules! projection_lock {
    ($store:expr, $tx:ident, $sql:ident) => {
        if $store.backend() == crate::Backend::Postgres {
            sqlx::query($sql("SELECT pg_advisory_xact_lock($1)"))
                .bind(PROJECTION_LOCK)
                .execute(&mut *$tx)
                .await?;
        }
    };
}

/// (day, currency, operation): one row of `analytics_daily_volume`.
type VolumeKey<'a> = (&'a str, &'a str, &'a str);

/// The changes of a batch of events to money movement, activity and balances, one row
/// per key (a multi-row upsert may not touch one row twice on PostgreSQL): volumes summed,
/// activity merged, and each wallet's latest balance.
#[derive(Debug, Default)]
struct Summed<'a> {
    /// (day, currency, operation) -> (volume, count).
    volume: Vec<(VolumeKey<'a>, (i64, i64))>,
    /// (day, customer) -> registered.
    active: Vec<((&'a str, Uuid), bool)>,
    /// The latest balance of each wallet, with its event's seq.
    balances: Vec<(i64, &'a Projection)>,
}

impl<'a> Summed<'a> {
    fn of(events: &[&'a ProjectedEvent]) -> Self {
        let mut volume: HashMap<VolumeKey<'_>, (i64, i64)> = HashMap::new();
        let mut active: HashMap<(&str, Uuid), bool> = HashMap::new();
        let mut balances: HashMap<Uuid, (i64, &Projection)> = HashMap::new();
        for event in events {
            let seq = signed(event.seq);
            for change in &event.changes {
                match change {
                    Projection::Volume { day, currency, operation, amount } => {
                        let entry = volume.entry((day, currency, operation)).or_default();
                        *entry = (entry.0.saturating_add(*amount), entry.1 + 1);
                    }
                    Projection::Active { day, customer_id, registered } => {
                        *active.entry((day, *customer_id)).or_default() |= *registered;
                    }
                    Projection::Balance { wallet_id, .. } => {
                        let entry = balances.entry(*wallet_id).or_insert((seq, change));
                        if entry.0 <= seq {
                            *entry = (seq, change);
                        }
                    }
                    _ => {}
                }
            }
        }
        Self {
            volume: volume.into_iter().collect(),
            active: active.into_iter().collect(),
            balances: balances.into_values().collect(),
        }
    }
}

impl Store {
    /// Applies each event's changes in one transaction, skipping the events `consumer`
    /// applied before. Returns how many this call applied.
    pub async fn apply_projection(
        &self,
        consumer: &str,
        events: &[ProjectedEvent],
        now: u64,
    ) -> Result<usize> {
        let ids: Vec<Uuid> = events.iter().map(|event| event.id).collect();
        let now = signed(now);
        with_pool!(self, write, |pool, sql| {
            let mut tx = pool.begin_write().await?;
            projection_lock!(self, tx, sql);
            let mut fresh = crate::notifications::first_applications!(tx, sql, consumer, &ids, now);
            // Each event once, even if the batch names it twice.
            let applied: Vec<&ProjectedEvent> =
                events.iter().filter(|event| fresh.remove(&event.id)).collect();
            let summed = Summed::of(&applied);
            for chunk in summed.volume.chunks(ROWS_PER_STATEMENT) {
                let text = format!(
                    "INSERT INTO analytics_daily_volume (day, currency, operation, volume, count) VALUES {} \
                     ON CONFLICT (day, currency, operation) DO UPDATE SET \
                     volume = CASE WHEN analytics_daily_volume.volume > 9223372036854775807 - excluded.volume \
                     THEN 9223372036854775807 ELSE analytics_daily_volume.volume + excluded.volume END, \
                     count = analytics_daily_volume.count + excluded.count",
                    numbered("($, $, $, $, $)", chunk.len())
                );
                let mut query = sqlx::query(sql(&text));
                for ((day, currency, operation), (volume, count)) in chunk {
                    query = query.bind(*day).bind(*currency).bind(*operation).bind(*volume).bind(*count);
                }
                query.execute(&mut *tx).await?;
            }
            for chunk in summed.active.chunks(ROWS_PER_STATEMENT) {
                // Registered stays registered: a later activity that day does not undo it.
                let text = format!(
                    "INSERT INTO analytics_daily_customers (day, customer_id, registered) VALUES {} \
                     ON CONFLICT (day, customer_id) DO UPDATE \
                     SET registered = analytics_daily_customers.registered OR excluded.registered",
                    numbered("($, $, $)", chunk.len())
                );
                let mut query = sqlx::query(sql(&text));
                for ((day, customer_id), registered) in chunk {
                    query = query.bind(*day).bind(*customer_id).bind(*registered);
                }
                query.execute(&mut *tx).await?;
            }
            for chunk in summed.balances.chunks(ROWS_PER_STATEMENT) {
                let text = format!(
                    "INSERT INTO analytics_balances (wallet_id, customer_id, currency, posted, pending, \
                     available, seq) VALUES {} ON CONFLICT (wallet_id) DO UPDATE \
                     SET posted = excluded.posted, pending = excluded.pending, available = excluded.available, \
                     seq = excluded.seq WHERE analytics_balances.seq < excluded.seq",
                    numbered("($, $, $, $, $, $, $)", chunk.len())
                );
                let mut query = sqlx::query(sql(&text));
                for (seq, change) in chunk {
                    let Projection::Balance { wallet_id, customer_id, currency, posted, pending, available } =
                        change
                    else {
                        unreachable!("only balances are summed as balances")
                    };
                    query = query
                        .bind(wallet_id)
                        .bind(customer_id)
                        .bind(currency)
                        .bind(posted)
                        .bind(pending)
                        .bind(available)
                        .bind(*seq);
                }
                query.execute(&mut *tx).await?;
            }
            // Expenses are rare next to money movement, and their changes depend on their
            // order: one statement each, in order.
            for event in &applied {
                let seq = signed(event.seq);
                for change in &event.changes {
                    match change {
                        Projection::Volume { .. }
                        | Projection::Active { .. }
                        | Projection::Balance { .. } => {}
                        Projection::ExpenseFacts { expense_id, customer_id, month, currency, amount } => {
                            sqlx::query(sql(
                            "INSERT INTO analytics_expenses (expense_id, customer_id, month, currency, amount, \
                             facts_seq, category_id, category_seq, deleted) VALUES ($1, $2, $3, $4, $5, $6, NULL, 0, $7) \
                             ON CONFLICT (expense_id) DO UPDATE SET month = excluded.month, currency = excluded.currency, \
                             amount = excluded.amount, facts_seq = excluded.facts_seq \
                             WHERE analytics_expenses.facts_seq < excluded.facts_seq",
                        ))
                        .bind(expense_id)
                        .bind(customer_id)
                        .bind(month)
                        .bind(currency)
                        .bind(amount)
                        .bind(seq)
                        .bind(false)
                        .execute(&mut *tx)
                        .await?;
                        }
                        Projection::ExpenseCategory { expense_id, customer_id, category_id } => {
                            sqlx::query(sql(
                            "INSERT INTO analytics_expenses (expense_id, customer_id, month, currency, amount, \
                             facts_seq, category_id, category_seq, deleted) VALUES ($1, $2, NULL, NULL, NULL, 0, $3, $4, $5) \
                             ON CONFLICT (expense_id) DO UPDATE SET category_id = excluded.category_id, \
                             category_seq = excluded.category_seq WHERE analytics_expenses.category_seq < excluded.category_seq",
                        ))
                        .bind(expense_id)
                        .bind(customer_id)
                        .bind(category_id)
                        .bind(seq)
                        .bind(false)
                        .execute(&mut *tx)
                        .await?;
                        }
                        Projection::ExpenseDeleted { expense_id, customer_id } => {
                            sqlx::query(sql(
                            "INSERT INTO analytics_expenses (expense_id, customer_id, month, currency, amount, \
                             facts_seq, category_id, category_seq, deleted) VALUES ($1, $2, NULL, NULL, NULL, 0, NULL, 0, $3) \
                             ON CONFLICT (expense_id) DO UPDATE SET deleted = excluded.deleted",
                        ))
                        .bind(expense_id)
                        .bind(customer_id)
                        .bind(true)
                        .execute(&mut *tx)
                        .await?;
                        }
                        Projection::CategoriesMoved { customer_id, from, to } => {
                            if from.is_empty() {
                                continue;
                            }
                            let ids = (0..from.len()).map(|i| format!("${}", i + 4)).collect::<Vec<_>>();
                            let text = format!(
                                "UPDATE analytics_expenses SET category_id = $2, category_seq = $3 \
                             WHERE customer_id = $1 AND category_seq < $3 AND category_id IN ({})",
                                ids.join(", ")
                            );
                            let mut query = sqlx::query(sql(&text)).bind(customer_id).bind(to).bind(seq);
                            for id in from {
                                query = query.bind(id);
                            }
                            query.execute(&mut *tx).await?;
                        }
                    }
                }
            }
            tx.commit().await?;
            Ok(applied.len())
        })
    }

    /// Empties the projection and forgets which events `consumer` applied, in one
    /// transaction: the start of a rebuild.
    pub async fn reset_projection(&self, consumer: &str) -> Result<()> {
        with_pool!(self, write, |pool, sql| {
            let mut tx = pool.begin_write().await?;
            projection_lock!(self, tx, sql);
            for table in [
                "analytics_daily_volume",
                "analytics_daily_customers",
                "analytics_balances",
                "analytics_expenses",
            ] {
                sqlx::query(sql(&format!("DELETE FROM {table}"))).execute(&mut *tx).await?;
            }
            sqlx::query(sql("DELETE FROM consumed_events WHERE consumer = $1"))
                .bind(consumer)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// Money moved per day, currency and operation, for days in `[from, to]`.
    pub async fn daily_volume(&self, from: &str, to: &str) -> Result<Vec<DailyVolume>> {
        with_pool!(self, replica, |pool, sql| {
            bounded(
                sqlx::query_as(sql(
                    "SELECT day, currency, operation, volume, count FROM analytics_daily_volume \
                 WHERE day >= $1 AND day <= $2 ORDER BY day, currency, operation LIMIT $3",
                ))
                .bind(from)
                .bind(to)
                .bind(ANALYTICS_ROWS_MAX)
                .fetch_all(pool)
                .await?,
            )
        })
    }

    /// Customers active and registered per day, for days in `[from, to]` that had any.
    pub async fn daily_customers(&self, from: &str, to: &str) -> Result<Vec<DailyCustomers>> {
        with_pool!(self, replica, |pool, sql| {
            bounded(sqlx::query_as(sql(
                "SELECT day, COUNT(*) AS active, CAST(SUM(CASE WHEN registered THEN 1 ELSE 0 END) AS BIGINT) AS registered \
                 FROM analytics_daily_customers WHERE day >= $1 AND day <= $2 GROUP BY day ORDER BY day LIMIT $3",
            ))
            .bind(from)
            .bind(to)
            .bind(ANALYTICS_ROWS_MAX)
            .fetch_all(pool)
            .await?)
        })
    }

    /// The day the customer registered and the last day they were active, as projected.
    pub async fn customer_days(&self, customer_id: Uuid) -> Result<(Option<String>, Option<String>)> {
        with_pool!(self, replica, |pool, sql| {
            Ok(sqlx::query_as(sql(
                "SELECT MIN(CASE WHEN registered THEN day END), MAX(day) FROM analytics_daily_customers \
                 WHERE customer_id = $1",
            ))
            .bind(customer_id)
            .fetch_one(pool)
            .await?)
        })
    }

    /// The customer's wallet balances, as projected.
    pub async fn projected_balances(&self, customer_id: Uuid) -> Result<Vec<ProjectedBalance>> {
        with_pool!(self, replica, |pool, sql| {
            bounded(
                sqlx::query_as(sql(
                    "SELECT wallet_id, currency, posted, pending, available FROM analytics_balances \
                 WHERE customer_id = $1 ORDER BY currency, wallet_id LIMIT $2",
                ))
                .bind(customer_id)
                .bind(ANALYTICS_ROWS_MAX)
                .fetch_all(pool)
                .await?,
            )
        })
    }

    /// The customer's expenses per month, currency and category from `from_month` on,
    /// as projected.
    pub async fn projected_spend(&self, customer_id: Uuid, from_month: &str) -> Result<Vec<ProjectedSpend>> {
        with_pool!(self, replica, |pool, sql| {
            bounded(sqlx::query_as(sql(
                "SELECT month, currency, category_id, CAST(SUM(amount) AS BIGINT) AS total, COUNT(*) AS count \
                 FROM analytics_expenses WHERE customer_id = $1 AND month >= $2 AND NOT deleted \
                 AND amount IS NOT NULL GROUP BY month, currency, category_id ORDER BY month, currency, total DESC LIMIT $3",
            ))
            .bind(customer_id)
            .bind(from_month)
            .bind(ANALYTICS_ROWS_MAX)
            .fetch_all(pool)
            .await?)
        })
    }
}
