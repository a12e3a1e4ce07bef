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

use crate::{Result, Store, with_pool};

/// Schedules one customer may have at most.
pub const SCHEDULES_PER_CUSTOMER_MAX: u32 = 100;

/// A schedule.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
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
    /// `once`, `weekly` or `monthly`.
    pub frequency: String,
    pub start_at: i64,
    pub end_at: Option<i64>,
    /// The due time of the next occurrence.
    pub next_run_at: i64,
    /// `active`, `paused`, `cancelled`, `completed` or `failed`.
    pub status: String,
    /// Failed attempts of the current occurrence.
    pub attempts: i64,
    /// When the current occurrence is tried again after a failure.
    pub retry_at: Option<i64>,
    pub claimed_until: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

const SCHEDULE_COLUMNS: &str = "id, customer_id, from_wallet_id, to_wallet_id, to_customer_id, biller, biller_mcc, \
     amount, currency, description, frequency, start_at, end_at, next_run_at, status, attempts, retry_at, \
     claimed_until, created_at, updated_at";

/// One occurrence's record.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct RunRow {
    pub id: Uuid,
    pub payment_id: Uuid,
    pub occurrence_at: i64,
    /// `succeeded`, `retrying` or `failed`.
    pub status: String,
    pub attempts: i64,
    pub transfer_id: Option<Uuid>,
    pub error: Option<String>,
    pub updated_at: i64,
}

/// What becomes of a schedule after an attempt at its occurrence `occurrence_at`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    pub occurrence_at: i64,
    pub run: RunRow,
    /// The schedule's new next_run_at, status, attempts and retry_at.
    pub next_run_at: i64,
    pub status: String,
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
                .bind(&row.frequency)
                .bind(row.start_at)
                .bind(row.end_at)
                .bind(row.next_run_at)
                .bind(&row.status)
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
            Ok(sqlx::query_as(sql(&text)).bind(id).bind(customer_id).fetch_optional(pool).await?)
        })
    }

    /// The customer's schedules, oldest first.
    pub async fn schedules(&self, customer_id: Uuid) -> Result<Vec<ScheduleRow>> {
        let text = format!(
            "SELECT {SCHEDULE_COLUMNS} FROM scheduled_payments WHERE customer_id = $1 ORDER BY created_at, id LIMIT $2"
        );
        with_pool!(self, read, |pool, sql| {
            Ok(sqlx::query_as(sql(&text))
                .bind(customer_id)
                .bind(i64::from(SCHEDULES_PER_CUSTOMER_MAX))
                .fetch_all(pool)
                .await?)
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
            .bind(&row.status)
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
            Ok(sqlx::query_as(sql(&text)).bind(now).bind(i64::from(limit)).fetch_all(pool).await?)
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
            .bind(&step.status)
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
            .bind(&run.status)
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
            Ok(sqlx::query_as(sql(
                "SELECT id, payment_id, occurrence_at, status, attempts, transfer_id, error, updated_at \
                 FROM scheduled_runs WHERE payment_id = $1 ORDER BY occurrence_at DESC LIMIT $2",
            ))
            .bind(payment_id)
            .bind(i64::from(limit.min(100)))
            .fetch_all(pool)
            .await?)
        })
    }
}
