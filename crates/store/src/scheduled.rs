//! Scheduled and recurring payments: the schedule rows, claims of due occurrences by
//! workers, and the record of each occurrence.
//!
//! Safety between workers (several processes on PostgreSQL): a worker claims an
//! occurrence with a compare-and-set on (id, next_run_at) and a lease; finishing it is
//! another compare-and-set on the same occurrence, so only one worker advances a
//! schedule. The payment itself is idempotent by its derived ledger id, so even a worker
//! whose lease lapsed mid-payment cannot pay an occurrence twice.

use crate::BeginWrite as _;
use uuid::Uuid;

use crate::{Result, Store, StoreError, with_pool};

/// Schedules one customer may have at most.
pub const SCHEDULES_PER_CUSTOMER_MAX: u32 = 100;

/// How often a schedule pays, stored as its name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ScheduleFrequency {
    Once,
    Weekly,
    /// On the start's day of the month (the last day in shorter months).
    Monthly,
}

impl ScheduleFrequency {
    pub const ALL: [Self; 3] = [Self::Once, Self::Weekly, Self::Monthly];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Once => "once",
            Self::Weekly => "weekly",
            Self::Monthly => "monthly",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|frequency| frequency.as_str() == name)
    }
}

/// Where a schedule stands, stored as its name. Only `Active` schedules pay; `Paused`
/// ones can be resumed; the other three are final.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ScheduleStatus {
    Active,
    Paused,
    Cancelled,
    Completed,
    Failed,
}

impl ScheduleStatus {
    pub const ALL: [Self; 5] = [Self::Active, Self::Paused, Self::Cancelled, Self::Completed, Self::Failed];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Paused => "paused",
            Self::Cancelled => "cancelled",
            Self::Completed => "completed",
            Self::Failed => "failed",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == name)
    }
}

/// How an attempt at one occurrence ended, stored as its name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RunStatus {
    Succeeded,
    /// Refused for insufficient funds; tried again after a backoff.
    Retrying,
    Failed,
}

impl RunStatus {
    pub const ALL: [Self; 3] = [Self::Succeeded, Self::Retrying, Self::Failed];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Succeeded => "succeeded",
            Self::Retrying => "retrying",
            Self::Failed => "failed",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == name)
    }
}

/// `name`, read back as the word it names, or the row is corrupt.
fn named<T>(name: &str, what: &str, from_name: fn(&str) -> Option<T>) -> Result<T> {
    from_name(name).ok_or_else(|| StoreError::Corrupt(format!("unknown {what} {name}")))
}

/// A schedule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScheduleRow {
    pub id: Uuid,
    pub customer_id: Uuid,
    pub from_wallet_id: Uuid,
    pub to_wallet_id: Option<Uuid>,
    pub to_customer_id: Option<Uuid>,
    pub biller: Option<String>,
    pub biller_mcc: Option<String>,
    pub amount: i64,
    pub currency: String,
    pub description: Option<String>,
    pub frequency: ScheduleFrequency,
    pub start_at: i64,
    pub end_at: Option<i64>,
    /// The due time of the next occurrence.
    pub next_run_at: i64,
    pub status: ScheduleStatus,
    /// Failed attempts of the current occurrence.
    pub attempts: i64,
    /// When the current occurrence is tried again after a failure.
    pub retry_at: Option<i64>,
    pub claimed_until: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A row of `scheduled_payments` as the database returns it.
#[derive(sqlx::FromRow)]
struct ScheduleRecord {
    id: Uuid,
    customer_id: Uuid,
    from_wallet_id: Uuid,
    to_wallet_id: Option<Uuid>,
    to_customer_id: Option<Uuid>,
    biller: Option<String>,
    biller_mcc: Option<String>,
    amount: i64,
    currency: String,
    description: Option<String>,
    frequency: String,
    start_at: i64,
    end_at: Option<i64>,
    next_run_at: i64,
    status: String,
    attempts: i64,
    retry_at: Option<i64>,
    claimed_until: Option<i64>,
    created_at: i64,
    updated_at: i64,
}

impl TryFrom<ScheduleRecord> for ScheduleRow {
    type Error = StoreError;

    fn try_from(row: ScheduleRecord) -> Result<Self> {
        Ok(Self {
            id: row.id,
            customer_id: row.customer_id,
            from_wallet_id: row.from_wallet_id,
            to_wallet_id: row.to_wallet_id,
            to_customer_id: row.to_customer_id,
            biller: row.biller,
            biller_mcc: row.biller_mcc,
            amount: row.amount,
            currency: row.currency,
            description: row.description,
            frequency: named(&row.frequency, "schedule frequency", ScheduleFrequency::from_name)?,
            start_at: row.start_at,
            end_at: row.end_at,
            next_run_at: row.next_run_at,
            status: named(&row.status, "schedule status", ScheduleStatus::from_name)?,
            attempts: row.attempts,
            retry_at: row.retry_at,
            claimed_until: row.claimed_until,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

const SCHEDULE_COLUMNS: &str = "id, customer_id, from_wallet_id, to_wallet_id, to_customer_id, biller, biller_mcc, \
     amount, currency, description, frequency, start_at, end_at, next_run_at, status, attempts, retry_at, \
     claimed_until, created_at, updated_at";

/// One occurrence's record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunRow {
    pub id: Uuid,
    pub payment_id: Uuid,
    pub occurrence_at: i64,
    pub status: RunStatus,
    pub attempts: i64,
    pub transfer_id: Option<Uuid>,
    pub error: Option<String>,
    pub updated_at: i64,
}

/// A row of `scheduled_runs` as the database returns it.
#[derive(sqlx::FromRow)]
struct RunRecord {
    id: Uuid,
    payment_id: Uuid,
    occurrence_at: i64,
    status: String,
    attempts: i64,
    transfer_id: Option<Uuid>,
    error: Option<String>,
    updated_at: i64,
}

impl TryFrom<RunRecord> for RunRow {
    type Error = StoreError;

    fn try_from(row: RunRecord) -> Result<Self> {
        Ok(Self {
            id: row.id,
            payment_id: row.payment_id,
            occurrence_at: row.occurrence_at,
            status: named(&row.status, "scheduled run status", RunStatus::from_name)?,
            attempts: row.attempts,
            transfer_id: row.transfer_id,
            error: row.error,
            updated_at: row.updated_at,
        })
    }
}

/// What becomes of a schedule after an attempt at its occurrence `occurrence_at`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    pub occurrence_at: i64,
    pub run: RunRow,
    /// The schedule's new next_run_at, status, attempts and retry_at.
    pub next_run_at: i64,
    pub status: ScheduleStatus,
    pub attempts: i64,
    pub retry_at: Option<i64>,
}

impl Store {
    /// Records a schedule.
    pub async fn insert_schedule(&self, row: &ScheduleRow) -> Result<()> {
        let text = format!(
            "INSERT INTO scheduled_payments ({SCHEDULE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, \
             $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)"
        );
        with_pool!(self, write, |pool, sql| {
            sqlx::query(sql(&text))
                .bind(row.id)
                .bind(row.customer_id)
                .bind(row.from_wallet_id)
                .bind(row.to_wallet_id)
                .bind(row.to_customer_id)
                .bind(&row.biller)
                .bind(&row.biller_mcc)
                .bind(row.amount)
                .bind(&row.currency)
                .bind(&row.description)
                .bind(row.frequency.as_str())
                .bind(row.start_at)
                .bind(row.end_at)
                .bind(row.next_run_at)
                .bind(row.status.as_str())
                .bind(row.attempts)
                .bind(row.retry_at)
                .bind(row.claimed_until)
                .bind(row.created_at)
                .bind(row.updated_at)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// The customer's schedule `id`.
    pub async fn schedule(&self, customer_id: Uuid, id: Uuid) -> Result<Option<ScheduleRow>> {
        let text =
            format!("SELECT {SCHEDULE_COLUMNS} FROM scheduled_payments WHERE id = $1 AND customer_id = $2");
        with_pool!(self, read, |pool, sql| {
            let row: Option<ScheduleRecord> =
                sqlx::query_as(sql(&text)).bind(id).bind(customer_id).fetch_optional(pool).await?;
            row.map(ScheduleRow::try_from).transpose()
        })
    }

    /// The customer's schedules, oldest first.
    pub async fn schedules(&self, customer_id: Uuid) -> Result<Vec<ScheduleRow>> {
        let text = format!(
            "SELECT {SCHEDULE_COLUMNS} FROM scheduled_payments WHERE customer_id = $1 ORDER BY created_at, id LIMIT $2"
        );
        with_pool!(self, read, |pool, sql| {
            let rows: Vec<ScheduleRecord> = sqlx::query_as(sql(&text))
                .bind(customer_id)
                .bind(i64::from(SCHEDULES_PER_CUSTOMER_MAX))
                .fetch_all(pool)
                .await?;
            rows.into_iter().map(ScheduleRow::try_from).collect()
        })
    }

    /// Changes what a customer may change: status, amount, description, end.
    pub async fn update_schedule(&self, row: &ScheduleRow) -> Result<bool> {
        let updated = with_pool!(self, write, |pool, sql| {
            sqlx::query(sql(
                "UPDATE scheduled_payments SET status = $3, amount = $4, description = $5, end_at = $6, \
                 next_run_at = $7, updated_at = $8 WHERE id = $1 AND customer_id = $2",
            ))
            .bind(row.id)
            .bind(row.customer_id)
            .bind(row.status.as_str())
            .bind(row.amount)
            .bind(&row.description)
            .bind(row.end_at)
            .bind(row.next_run_at)
            .bind(row.updated_at)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(updated == 1)
    }

    /// Active schedules whose occurrence (or retry) is due at `now` and unclaimed.
    pub async fn due_schedules(&self, now: i64, limit: u32) -> Result<Vec<ScheduleRow>> {
        let text = format!(
            "SELECT {SCHEDULE_COLUMNS} FROM scheduled_payments WHERE status = 'active' AND next_run_at <= $1 \
             AND (retry_at IS NULL OR retry_at <= $1) AND (claimed_until IS NULL OR claimed_until < $1) \
             ORDER BY next_run_at LIMIT $2"
        );
        with_pool!(self, read, |pool, sql| {
            let rows: Vec<ScheduleRecord> =
                sqlx::query_as(sql(&text)).bind(now).bind(i64::from(limit)).fetch_all(pool).await?;
            rows.into_iter().map(ScheduleRow::try_from).collect()
        })
    }

    /// Claims occurrence `occurrence_at` of schedule `id` until `until`; false when another
    /// worker holds it or it moved on.
    pub async fn claim_schedule(&self, id: Uuid, occurrence_at: i64, now: i64, until: i64) -> Result<bool> {
        let claimed = with_pool!(self, write, |pool, sql| {
            sqlx::query(sql(
                "UPDATE scheduled_payments SET claimed_until = $4 WHERE id = $1 AND next_run_at = $2 \
                 AND status = 'active' AND (claimed_until IS NULL OR claimed_until < $3)",
            ))
            .bind(id)
            .bind(occurrence_at)
            .bind(now)
            .bind(until)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(claimed == 1)
    }

    /// Records an attempt at an occurrence and moves the schedule on, with `events`, in
    /// one transaction — only if the schedule still stands at that occurrence (a second
    /// worker's finish changes nothing). Returns whether it did.
    pub async fn finish_occurrence(&self, id: Uuid, step: &Step, events: &[crate::NewEvent]) -> Result<bool> {
        let run = &step.run;
        with_pool!(self, write, |pool, sql| {
            let mut tx = pool.begin_write().await?;
            let moved = sqlx::query(sql(
                "UPDATE scheduled_payments SET next_run_at = $3, status = $4, attempts = $5, retry_at = $6, \
                 claimed_until = NULL, updated_at = $7 WHERE id = $1 AND next_run_at = $2 AND status = 'active'",
            ))
            .bind(id)
            .bind(step.occurrence_at)
            .bind(step.next_run_at)
            .bind(step.status.as_str())
            .bind(step.attempts)
            .bind(step.retry_at)
            .bind(run.updated_at)
            .execute(&mut *tx)
            .await?
            .rows_affected()
                == 1;
            if !moved {
                return Ok(false);
            }
            sqlx::query(sql(
                "INSERT INTO scheduled_runs (id, payment_id, occurrence_at, status, attempts, transfer_id, error, \
                 updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (payment_id, occurrence_at) \
                 DO UPDATE SET status = $4, attempts = $5, transfer_id = $6, error = $7, updated_at = $8",
            ))
            .bind(run.id)
            .bind(run.payment_id)
            .bind(run.occurrence_at)
            .bind(run.status.as_str())
            .bind(run.attempts)
            .bind(run.transfer_id)
            .bind(&run.error)
            .bind(run.updated_at)
            .execute(&mut *tx)
            .await?;
            crate::outbox::insert_events!(tx, sql, events);
            tx.commit().await?;
            Ok(true)
        })
    }

    /// The occurrences of schedule `payment_id`, newest first.
    pub async fn schedule_runs(&self, payment_id: Uuid, limit: u32) -> Result<Vec<RunRow>> {
        with_pool!(self, read, |pool, sql| {
            let rows: Vec<RunRecord> = sqlx::query_as(sql(
                "SELECT id, payment_id, occurrence_at, status, attempts, transfer_id, error, updated_at \
                 FROM scheduled_runs WHERE payment_id = $1 ORDER BY occurrence_at DESC LIMIT $2",
            ))
            .bind(payment_id)
            .bind(i64::from(limit.min(100)))
            .fetch_all(pool)
            .await?;
            rows.into_iter().map(RunRow::try_from).collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::{RunStatus, ScheduleFrequency, ScheduleStatus, named};

    #[test]
    fn every_schedule_word_reads_back_and_nothing_else_does() {
        for frequency in ScheduleFrequency::ALL {
            assert_eq!(
                named(frequency.as_str(), "frequency", ScheduleFrequency::from_name).unwrap(),
                frequency
            );
        }
        for status in ScheduleStatus::ALL {
            assert_eq!(named(status.as_str(), "status", ScheduleStatus::from_name).unwrap(), status);
        }
        for status in RunStatus::ALL {
            assert_eq!(named(status.as_str(), "status", RunStatus::from_name).unwrap(), status);
        }
        assert!(matches!(
            named("daily", "schedule frequency", ScheduleFrequency::from_name),
            Err(crate::StoreError::Corrupt(message)) if message == "unknown schedule frequency daily"
        ));
        assert_eq!(ScheduleStatus::from_name("Active"), None);
        assert_eq!(RunStatus::from_name(""), None);
    }
}
