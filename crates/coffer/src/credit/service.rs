//! The credit service: consent recorded and withdrawn, reports pulled at consent and then
//! every refresh period by the workers (one node per pull, by a claim), a score that
//! changes told by `credit.score_changed`, and the reports of a withdrawn consent deleted
//! after the retention period (the maintenance worker).

use std::sync::Arc;
use std::time::Duration;

use store::{CreditConsentRow, CreditReportRow, Store, StoreError};
use uuid::Uuid;

use super::bureau::{BureauReport, CreditBureau, Subject};
use crate::events::{self, CreditScoreChangedData, EventType};

/// Consents one worker step pulls at most.
const BATCH: u32 = 20;
/// How long a node holds a pull it claimed.
const LEASE_NS: i64 = 60 * 1_000_000_000;
/// A failed pull is tried again after this.
const RETRY_NS: i64 = 3_600 * 1_000_000_000;

/// The credit settings (`COFFER_CREDIT_*`).
#[derive(Clone, Copy, Debug)]
pub struct CreditSettings {
    /// Time between pulls of a consent in force.
    pub refresh: Duration,
    /// How long reports are kept after the consent is withdrawn.
    pub retention: Duration,
}

/// Why a credit request did not happen.
#[derive(Debug, thiserror::Error)]
pub enum CreditError {
    #[error("no consent in force; POST /v1/credit/consent gives it")]
    NoConsent,
    #[error("no credit report yet")]
    NoReport,
    #[error("the store failed")]
    Store(#[from] StoreError),
}

/// A pulled report, as the service gives it.
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    pub id: Uuid,
    pub pulled_at: i64,
    pub report: BureauReport,
}

/// The credit service. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct Credit {
    store: Store,
    bureau: Arc<dyn CreditBureau>,
    settings: CreditSettings,
}

fn nanos(duration: Duration) -> i64 {
    i64::try_from(duration.as_nanos()).unwrap_or(i64::MAX)
}

fn now() -> i64 {
    i64::try_from(store::now_ns()).unwrap_or(i64::MAX)
}

fn read(row: &CreditReportRow) -> Result<Report, CreditError> {
    let report = serde_json::from_str(&row.report)
        .map_err(|error| StoreError::Corrupt(format!("credit report {}: {error}", row.id)))?;
    Ok(Report { id: row.id, pulled_at: row.pulled_at, report })
}

impl Credit {
    pub fn new(store: Store, bureau: Arc<dyn CreditBureau>, settings: CreditSettings) -> Self {
        Self { store, bureau, settings }
    }

    pub fn settings(&self) -> CreditSettings {
        self.settings
    }

    /// Records the customer's consent and pulls a report at once; the consent as it
    /// stands after the pull (its `last_error` says why a pull failed: it is retried). A
    /// consent already in force is answered as it is, with no pull: asking again never
    /// costs another inquiry at the bureau.
    #[tracing::instrument(name = "credit.consent", skip_all)]
    pub async fn consent(&self, customer_id: Uuid) -> Result<CreditConsentRow, CreditError> {
        // The first pull is this request's (claimed with the grant, so no worker races it).
        if self.store.grant_credit_consent(customer_id, now(), now() + LEASE_NS).await?.is_some() {
            self.pull(customer_id).await?;
        }
        self.store.credit_consent(customer_id).await?.ok_or(CreditError::NoConsent)
    }

    /// Withdraws the customer's consent: no more pulls; the reports are deleted after the
    /// retention period.
    pub async fn withdraw(&self, customer_id: Uuid) -> Result<CreditConsentRow, CreditError> {
        self.store.withdraw_credit_consent(customer_id, now()).await?.ok_or(CreditError::NoConsent)
    }

    /// The customer's consent, if they ever gave one.
    pub async fn consent_of(&self, customer_id: Uuid) -> Result<Option<CreditConsentRow>, CreditError> {
        Ok(self.store.credit_consent(customer_id).await?)
    }

    /// The customer's latest report, and the reports before it (newest first).
    pub async fn reports(&self, customer_id: Uuid) -> Result<Vec<Report>, CreditError> {
        let rows = self.store.credit_reports(customer_id, store::CREDIT_HISTORY_MAX).await?;
        if rows.is_empty() {
            return Err(CreditError::NoReport);
        }
        rows.iter().map(read).collect()
    }

    /// Pulls the report of `customer_id`, whose pull this node claimed, and records it
    /// (or the failure) with the next pull's time.
    async fn pull(&self, customer_id: Uuid) -> Result<(), CreditError> {
        let Some(customer) = self.store.customer_by_id(customer_id).await? else { return Ok(()) };
        let latest = self.store.credit_reports(customer_id, 1).await?;
        let previous = latest.first().map(read).transpose()?;
        let subject = Subject { customer_id, email: customer.email };
        let pulled = self.bureau.pull(&subject, previous.as_ref().and_then(|p| p.report.score)).await;
        let at = now();
        match pulled {
            Ok(report) => {
                let row = CreditReportRow {
                    id: Uuid::now_v7(),
                    customer_id,
                    pulled_at: at,
                    score: report.score,
                    band: report.band.as_str().into(),
                    report: serde_json::to_string(&report).expect("reports serialise"),
                };
                let mut events = Vec::new();
                if let Some(previous) = &previous
                    && previous.report.score != report.score
                {
                    events.push(events::event(
                        EventType::CreditScoreChanged,
                        Some(customer_id),
                        &format!("credit/reports/{}", row.id),
                        &CreditScoreChangedData {
                            customer_id,
                            report_id: row.id,
                            previous_score: previous.report.score,
                            score: report.score,
                            band: report.band,
                        },
                    ));
                }
                let next = at.saturating_add(nanos(self.settings.refresh));
                self.store.record_credit_pull(customer_id, Some(&row), next, None, &events).await?;
            }
            Err(error) => {
                tracing::warn!(%customer_id, %error, "credit pull failed; retrying later");
                let next = at + RETRY_NS.min(nanos(self.settings.refresh));
                self.store.record_credit_pull(customer_id, None, next, Some(&error.to_string()), &[]).await?;
            }
        }
        Ok(())
    }

    /// One worker pass: the due pulls (a batch); whether it was a full batch.
    pub async fn step(&self) -> anyhow::Result<bool> {
        let due = self.store.due_credit_consents(now(), BATCH).await?;
        for consent in &due {
            let seen = consent.next_pull_at.expect("due consents have a time");
            if self.store.claim_credit_pull(consent.customer_id, seen, now() + LEASE_NS).await? {
                self.pull(consent.customer_id).await?;
            }
        }
        Ok(due.len() == BATCH as usize)
    }

    /// Runs until `shutdown`, looking for due pulls every `poll`.
    pub async fn run_until(self: Arc<Self>, poll: Duration, shutdown: tokio_util::sync::CancellationToken) {
        crate::support::repeat("credit-refresh", poll, shutdown, || self.step()).await;
    }

    /// Deletes at most `limit` reports of consents withdrawn longer ago than the retention.
    pub async fn purge(&self, limit: u32) -> Result<u64, CreditError> {
        Ok(self
            .store
            .purge_credit_reports(now().saturating_sub(nanos(self.settings.retention)), limit)
            .await?)
    }
}
