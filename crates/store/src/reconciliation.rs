//! Reconciliations: a settlement file matched against a system account
//! (`coffer::payments::reconciliation`). A reconciliation is written once, with its report
//! (JSON), the transfers it matched and its events, in one transaction; a transfer is
//! matched by at most one reconciliation ever (`reconciled_transfers`' key).

use std::collections::HashMap;

use uuid::Uuid;

use crate::BeginWrite as _;
use crate::codec::{saturating, unsigned};
use crate::{NewEvent, ROWS_PER_STATEMENT, Result, Store, numbered, with_pool};

/// A reconciliation: its counts, and its report once read by id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReconciliationRow {
    pub id: Uuid,
    /// `card_settlement` or `payouts`.
    pub account: String,
    pub currency: String,
    pub lines: u64,
    pub matched: u64,
    pub mismatched: u64,
    pub unmatched_lines: u64,
    pub unmatched_transfers: u64,
    /// The report (JSON); `None` in lists.
    pub report: Option<String>,
    /// Nanoseconds since the Unix epoch.
    pub created_at: u64,
}

#[derive(sqlx::FromRow)]
struct ReconciliationRecord {
    id: Uuid,
    account: String,
    currency: String,
    lines: i64,
    matched: i64,
    mismatched: i64,
    unmatched_lines: i64,
    unmatched_transfers: i64,
    report: Option<String>,
    created_at: i64,
}

impl TryFrom<ReconciliationRecord> for ReconciliationRow {
    type Error = crate::StoreError;

    fn try_from(row: ReconciliationRecord) -> Result<Self> {
        Ok(Self {
            id: row.id,
            account: row.account,
            currency: row.currency,
            lines: unsigned(row.lines, "lines")?,
            matched: unsigned(row.matched, "matched")?,
            mismatched: unsigned(row.mismatched, "mismatched")?,
            unmatched_lines: unsigned(row.unmatched_lines, "unmatched_lines")?,
            unmatched_transfers: unsigned(row.unmatched_transfers, "unmatched_transfers")?,
            report: row.report,
            created_at: unsigned(row.created_at, "created_at")?,
        })
    }
}

const COUNT_COLUMNS: &str =
    "id, account, currency, lines, matched, mismatched, unmatched_lines, unmatched_transfers";

/// Reconciliations a list returns at most.
pub const RECONCILIATIONS_PAGE_MAX: u32 = 100;

impl Store {
    /// Records `reconciliation` (its report set) with the transfers it matched (`marks`:
    /// transfer id and the line that matched it) and its `events`, all or nothing. False,
    /// and nothing written, when another reconciliation has matched one of those transfers
    /// since they were read.
    pub async fn insert_reconciliation(
        &self,
        reconciliation: &ReconciliationRow,
        marks: &[(Uuid, u64)],
        events: &[NewEvent],
    ) -> Result<bool> {
        let report = reconciliation.report.as_deref().unwrap_or("{}");
        with_pool!(self, write, |pool, sql| {
            let mut tx = pool.begin_write().await?;
            sqlx::query(sql(&format!(
                "INSERT INTO reconciliations ({COUNT_COLUMNS}, report, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
            )))
            .bind(reconciliation.id)
            .bind(&reconciliation.account)
            .bind(&reconciliation.currency)
            .bind(saturating(reconciliation.lines))
            .bind(saturating(reconciliation.matched))
            .bind(saturating(reconciliation.mismatched))
            .bind(saturating(reconciliation.unmatched_lines))
            .bind(saturating(reconciliation.unmatched_transfers))
            .bind(report)
            .bind(saturating(reconciliation.created_at))
            .execute(&mut *tx)
            .await?;
            let mut marked = 0;
            for chunk in marks.chunks(ROWS_PER_STATEMENT) {
                let text = format!(
                    "INSERT INTO reconciled_transfers (transfer_id, reconciliation_id, line) VALUES {} \
                     ON CONFLICT (transfer_id) DO NOTHING",
                    numbered("($, $, $)", chunk.len())
                );
                let mut query = sqlx::query(sql(&text));
                for (transfer, line) in chunk {
                    query = query.bind(*transfer).bind(reconciliation.id).bind(saturating(*line));
                }
                marked += query.execute(&mut *tx).await?.rows_affected();
            }
            if marked != marks.len() as u64 {
                // Dropped without commit: rolled back.
                return Ok(false);
            }
            crate::outbox::insert_events!(tx, sql, events);
            tx.commit().await?;
            Ok(true)
        })
    }

    /// Reconciliation `id`, with its report.
    pub async fn reconciliation(&self, id: Uuid) -> Result<Option<ReconciliationRow>> {
        let text = format!("SELECT {COUNT_COLUMNS}, report, created_at FROM reconciliations WHERE id = $1");
        let row: Option<ReconciliationRecord> = with_pool!(self, read, |pool, sql| {
            sqlx::query_as(sql(&text)).bind(id).fetch_optional(pool).await?
        });
        row.map(ReconciliationRow::try_from).transpose()
    }

    /// The latest reconciliations, newest first, without their reports (`limit` at most
    /// [`RECONCILIATIONS_PAGE_MAX`]).
    pub async fn reconciliations(&self, limit: u32) -> Result<Vec<ReconciliationRow>> {
        let text = format!(
            "SELECT {COUNT_COLUMNS}, CAST(NULL AS TEXT) AS report, created_at FROM reconciliations \
             ORDER BY created_at DESC, id DESC LIMIT $1"
        );
        let rows: Vec<ReconciliationRecord> = with_pool!(self, read, |pool, sql| {
            sqlx::query_as(sql(&text))
                .bind(i64::from(limit.min(RECONCILIATIONS_PAGE_MAX)))
                .fetch_all(pool)
                .await?
        });
        rows.into_iter().map(ReconciliationRow::try_from).collect()
    }

    /// Which of `transfer_ids` a reconciliation has matched, and which one.
    pub async fn reconciled_by(&self, transfer_ids: &[Uuid]) -> Result<HashMap<Uuid, Uuid>> {
        let mut found = HashMap::new();
        for chunk in transfer_ids.chunks(ROWS_PER_STATEMENT) {
            let text = format!(
                "SELECT transfer_id, reconciliation_id FROM reconciled_transfers WHERE transfer_id IN ({})",
                numbered("$", chunk.len())
            );
            let rows: Vec<(Uuid, Uuid)> = with_pool!(self, read, |pool, sql| {
                let mut query = sqlx::query_as(sql(&text));
                for id in chunk {
                    query = query.bind(*id);
                }
                query.fetch_all(pool).await?
            });
            found.extend(rows);
        }
        Ok(found)
    }
}
