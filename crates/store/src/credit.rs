//! Credit reports from a bureau (`coffer::credit`): a customer's consent, and the reports
//! pulled while it is in force. A pull's report, the consent's next due time and the
//! events it causes are written in one transaction.

use uuid::Uuid;

use crate::BeginWrite as _;
use crate::codec::unsigned;
use crate::{NewEvent, Result, Store, with_pool};

/// A customer's consent. Times are nanoseconds since the Unix epoch.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct CreditConsentRow {
    pub customer_id: Uuid,
    pub granted_at: i64,
    /// Set once withdrawn: no more pulls; the reports go after the retention period.
    pub withdrawn_at: Option<i64>,
    /// When the next pull is due; `None` once withdrawn.
    pub next_pull_at: Option<i64>,
    /// Why the last pull failed, until one succeeds.
    pub last_error: Option<String>,
}

/// A pulled report: its score and band, and the whole report as JSON.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CreditReportRow {
    pub id: Uuid,
    pub customer_id: Uuid,
    pub pulled_at: i64,
    /// `None`: the bureau could not score the customer.
    pub score: Option<u16>,
    pub band: String,
    pub report: String,
}

#[derive(sqlx::FromRow)]
struct CreditReportRecord {
    id: Uuid,
    customer_id: Uuid,
    pulled_at: i64,
    score: Option<i64>,
    band: String,
    report: String,
}

impl TryFrom<CreditReportRecord> for CreditReportRow {
    type Error = crate::StoreError;

    fn try_from(row: CreditReportRecord) -> Result<Self> {
        let score = row
            .score
            .map(|score| {
                u16::try_from(unsigned(score, "score")?)
                    .map_err(|_| crate::StoreError::Corrupt(format!("score {score}")))
            })
            .transpose()?;
        Ok(Self {
            id: row.id,
            customer_id: row.customer_id,
            pulled_at: row.pulled_at,
            score,
            band: row.band,
            report: row.report,
        })
    }
}

const CONSENT_COLUMNS: &str = "customer_id, granted_at, withdrawn_at, next_pull_at, last_error";
const REPORT_COLUMNS: &str = "id, customer_id, pulled_at, score, band, report";

/// Reports a history returns at most.
pub const CREDIT_HISTORY_MAX: u32 = 24;

impl Store {
    /// Records the customer's consent, or records it again if it was withdrawn: the new
    /// consent, its first pull claimed by the caller until `lease` (the workers take it
    /// over only if the caller never records it). `None` when a consent is in force
    /// already (it is left as it is).
    pub async fn grant_credit_consent(
        &self,
        customer_id: Uuid,
        now: i64,
        lease: i64,
    ) -> Result<Option<CreditConsentRow>> {
        let text = format!(
            "INSERT INTO credit_consents ({CONSENT_COLUMNS}) VALUES ($1, $2, NULL, $3, NULL) \
             ON CONFLICT (customer_id) DO UPDATE SET granted_at = $2, withdrawn_at = NULL, next_pull_at = $3, \
             last_error = NULL WHERE credit_consents.withdrawn_at IS NOT NULL RETURNING {CONSENT_COLUMNS}"
        );
        with_pool!(self, write, |pool, sql| {
            Ok(sqlx::query_as(sql(&text))
                .bind(customer_id)
                .bind(now)
                .bind(lease)
                .fetch_optional(pool)
                .await?)
        })
    }

    /// Withdraws the customer's consent in force; `None` when there was none.
    pub async fn withdraw_credit_consent(
        &self,
        customer_id: Uuid,
        now: i64,
    ) -> Result<Option<CreditConsentRow>> {
        let text = format!(
            "UPDATE credit_consents SET withdrawn_at = $2, next_pull_at = NULL \
             WHERE customer_id = $1 AND withdrawn_at IS NULL RETURNING {CONSENT_COLUMNS}"
        );
        with_pool!(self, write, |pool, sql| {
            Ok(sqlx::query_as(sql(&text)).bind(customer_id).bind(now).fetch_optional(pool).await?)
        })
    }

    pub async fn credit_consent(&self, customer_id: Uuid) -> Result<Option<CreditConsentRow>> {
        let text = format!("SELECT {CONSENT_COLUMNS} FROM credit_consents WHERE customer_id = $1");
        with_pool!(self, read, |pool, sql| {
            Ok(sqlx::query_as(sql(&text)).bind(customer_id).fetch_optional(pool).await?)
        })
    }

    /// Consents in force whose pull is due at `now`, the longest due first.
    pub async fn due_credit_consents(&self, now: i64, limit: u32) -> Result<Vec<CreditConsentRow>> {
        let text = format!(
            "SELECT {CONSENT_COLUMNS} FROM credit_consents WHERE withdrawn_at IS NULL AND next_pull_at <= $1 \
             ORDER BY next_pull_at LIMIT $2"
        );
        with_pool!(self, read, |pool, sql| {
            Ok(sqlx::query_as(sql(&text)).bind(now).bind(i64::from(limit)).fetch_all(pool).await?)
        })
    }

    /// Claims a due pull for this node until `lease`: true when the consent was still in
    /// force and due at `seen` (no other node claimed it meanwhile).
    pub async fn claim_credit_pull(&self, customer_id: Uuid, seen: i64, lease: i64) -> Result<bool> {
        with_pool!(self, write, |pool, sql| {
            Ok(sqlx::query(sql("UPDATE credit_consents SET next_pull_at = $3 \
                 WHERE customer_id = $1 AND withdrawn_at IS NULL AND next_pull_at = $2"))
            .bind(customer_id)
            .bind(seen)
            .bind(lease)
            .execute(pool)
            .await?
            .rows_affected()
                == 1)
        })
    }

    /// Records a pull: its report (none when it failed, with `error`), the next pull due
    /// at `next_pull_at`, and its `events` — unless the consent was withdrawn meanwhile,
    /// when nothing is written (false).
    pub async fn record_credit_pull(
        &self,
        customer_id: Uuid,
        report: Option<&CreditReportRow>,
        next_pull_at: i64,
        error: Option<&str>,
        events: &[NewEvent],
    ) -> Result<bool> {
        with_pool!(self, write, |pool, sql| {
            let mut tx = pool.begin_write().await?;
            let updated = sqlx::query(sql("UPDATE credit_consents SET next_pull_at = $2, last_error = $3 \
                 WHERE customer_id = $1 AND withdrawn_at IS NULL"))
            .bind(customer_id)
            .bind(next_pull_at)
            .bind(error)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if updated == 0 {
                return Ok(false);
            }
            if let Some(report) = report {
                sqlx::query(sql(&format!(
                    "INSERT INTO credit_reports ({REPORT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)"
                )))
                .bind(report.id)
                .bind(report.customer_id)
                .bind(report.pulled_at)
                .bind(report.score.map(i64::from))
                .bind(&report.band)
                .bind(&report.report)
                .execute(&mut *tx)
                .await?;
            }
            crate::outbox::insert_events!(tx, sql, events);
            tx.commit().await?;
            Ok(true)
        })
    }

    /// The customer's latest reports, newest first (at most [`CREDIT_HISTORY_MAX`]).
    pub async fn credit_reports(&self, customer_id: Uuid, limit: u32) -> Result<Vec<CreditReportRow>> {
        let text = format!(
            "SELECT {REPORT_COLUMNS} FROM credit_reports WHERE customer_id = $1 \
             ORDER BY pulled_at DESC, id DESC LIMIT $2"
        );
        let rows: Vec<CreditReportRecord> = with_pool!(self, read, |pool, sql| {
            sqlx::query_as(sql(&text))
                .bind(customer_id)
                .bind(i64::from(limit.min(CREDIT_HISTORY_MAX)))
                .fetch_all(pool)
                .await?
        });
        rows.into_iter().map(CreditReportRow::try_from).collect()
    }

    /// Deletes the reports of customers who withdrew their consent before
    /// `withdrawn_before` (at most `limit` reports); how many.
    pub async fn purge_credit_reports(&self, withdrawn_before: i64, limit: u32) -> Result<u64> {
        with_pool!(self, write, |pool, sql| {
            Ok(sqlx::query(sql("DELETE FROM credit_reports WHERE id IN (SELECT r.id FROM credit_reports r \
                 JOIN credit_consents c ON c.customer_id = r.customer_id \
                 WHERE c.withdrawn_at IS NOT NULL AND c.withdrawn_at < $1 LIMIT $2)"))
            .bind(withdrawn_before)
            .bind(i64::from(limit))
            .execute(pool)
            .await?
            .rows_affected())
        })
    }
}
