//! Checking the books (`coffer verify`): reads the whole database in one snapshot, page by
//! page, and reports everything that does not add up.
//!
//! The ledger checks are `ledger::audit`'s: every transfer replayed in commit order onto
//! empty accounts, compared with the stored balances, snapshots, limits, pending statuses
//! and per-ledger totals, and every batch's link of the hash chain (`ledger::chain`)
//! recomputed. On top of them, the wallet layer's own: every wallet has its
//! ledger account, with the flags, code and ledger that creating it writes
//! ([`crate::wallets::service::wallet_account`]), and every transfer note names a transfer
//! that exists.

use std::collections::BTreeMap;

use ledger::AccountFlags;
use ledger::audit::{Audit, Check, FINDINGS_KEPT_MAX};
use serde::{Deserialize, Serialize};
use store::{Scanned, Store, StoreError};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::wallets::{Currency, service::wallet_account};

/// Rows read per page.
const PAGE: u32 = store::AUDIT_PAGE_MAX;

/// The checks beyond the ledger's, by name.
pub const WALLET_ACCOUNTS: &str = "wallet_accounts";
pub const NOTE_TRANSFERS: &str = "note_transfers";

/// Every check's name, in report order.
pub fn check_names() -> impl Iterator<Item = &'static str> {
    Check::ALL.into_iter().map(Check::name).chain([WALLET_ACCOUNTS, NOTE_TRANSFERS])
}

/// What a run found.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct Verification {
    pub accounts: u64,
    pub transfers: u64,
    /// Links of the hash chain checked (one per batch that created transfers).
    pub links: u64,
    /// Transfers stored before the hash chain existed (in no link).
    pub unchained: u64,
    pub wallets: u64,
    /// Findings per check; every check is listed, clean ones with 0.
    pub checks: BTreeMap<String, u64>,
    /// The first findings (at most 1,000), in the order found.
    pub findings: Vec<Finding>,
}

impl Verification {
    pub fn is_clean(&self) -> bool {
        self.checks.values().all(|count| *count == 0)
    }

    fn push(&mut self, check: &str, id: Uuid, detail: String) {
        *self.checks.entry(check.to_owned()).or_default() += 1;
        if self.findings.len() < FINDINGS_KEPT_MAX {
            self.findings.push(Finding { check: check.to_owned(), id, detail });
        }
    }
}

/// One thing found wrong.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct Finding {
    pub check: String,
    /// The account, transfer, wallet or note it is about; for `ledger_balanced`, the
    /// ledger's number.
    pub id: Uuid,
    pub detail: String,
}

/// How far a run has got, for a progress display.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Progress {
    /// Rows the run will read (accounts and transfers).
    Total(u64),
    /// Rows read so far.
    Read(u64),
}

/// Runs every check over `store`.
pub async fn verify(
    store: &Store,
    mut progress: impl FnMut(Progress) + Send,
) -> Result<Verification, StoreError> {
    let mut audit = Audit::new();
    let mut report = Verification {
        accounts: 0,
        transfers: 0,
        links: 0,
        unchained: 0,
        wallets: 0,
        checks: check_names().map(|name| (name.to_owned(), 0)).collect(),
        findings: Vec::new(),
    };
    let mut read = 0u64;
    let mut wallet_findings = Vec::new();
    let mut orphans = Vec::new();
    store
        .audit_scan(PAGE, |scanned| match scanned {
            Scanned::Totals { accounts, transfers } => progress(Progress::Total(accounts + transfers)),
            Scanned::Accounts(page) => {
                page.iter().for_each(|account| audit.account(account));
                read += page.len() as u64;
                progress(Progress::Read(read));
            }
            Scanned::Links(page) => {
                page.iter().for_each(|link| audit.link(link));
            }
            Scanned::Transfers(page) => {
                page.iter().for_each(|transfer| audit.transfer(transfer));
                read += page.len() as u64;
                progress(Progress::Read(read));
            }
            Scanned::Wallets(page) => {
                report.wallets += page.len() as u64;
                wallet_findings.extend(page.iter().filter_map(check_wallet));
            }
            Scanned::OrphanNotes(page) => orphans.extend_from_slice(page),
        })
        .await?;
    let ledger = audit.finish();
    report.accounts = ledger.accounts;
    report.transfers = ledger.transfers;
    report.links = ledger.links;
    report.unchained = ledger.unchained;
    for (check, count) in &ledger.counts {
        *report.checks.entry(check.name().to_owned()).or_default() += count;
    }
    report.findings.extend(ledger.findings.into_iter().map(|finding| Finding {
        check: finding.check.name().to_owned(),
        id: Uuid::from_u128(finding.subject),
        detail: finding.detail,
    }));
    for (id, detail) in wallet_findings {
        report.push(WALLET_ACCOUNTS, id, detail);
    }
    for id in orphans {
        report.push(NOTE_TRANSFERS, id, "a transfer note names no transfer".into());
    }
    Ok(report)
}

/// A wallet's ledger account against what creating the wallet writes.
fn check_wallet(wallet: &store::WalletAccount) -> Option<(Uuid, String)> {
    let id = wallet.wallet_id;
    let Some((flags, code, ledger)) = wallet.account else {
        return Some((id, "the wallet has no ledger account".into()));
    };
    let Some(currency) = Currency::parse(&wallet.currency) else {
        return Some((id, format!("the wallet's currency {} is not one Coffer knows", wallet.currency)));
    };
    let expected = wallet_account(id.as_u128(), Uuid::nil(), currency, wallet.wallet_type);
    // An account may be closed later; every other flag is set once, at creation.
    let flags = flags & !AccountFlags::CLOSED.bits();
    (flags != expected.flags.bits() || code != expected.code || ledger != expected.ledger).then(|| {
        (
            id,
            format!(
                "its account has flags {flags:#06b}, code {code}, ledger {ledger}; a {} wallet in {} has \
                 flags {:#06b}, code {}, ledger {}",
                wallet.wallet_type.as_str(),
                wallet.currency,
                expected.flags.bits(),
                expected.code,
                expected.ledger
            ),
        )
    })
}

/// A run still `running` this long after it started is reported as failed: the process
/// that ran it stopped before recording a result.
pub const RUN_STALE: std::time::Duration = std::time::Duration::from_secs(6 * 3_600);

/// Who started a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// `POST /v1/admin/verify`.
    Api,
    /// The `workers` role's schedule (COFFER_VERIFY_INTERVAL_S).
    Schedule,
}

impl Origin {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Api => "api",
            Self::Schedule => "schedule",
        }
    }
}

/// Where a run stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Running,
    /// Nothing found.
    Clean,
    /// The report lists what was found.
    Findings,
    /// The run could not finish (`error` says why).
    Failed,
}

impl RunStatus {
    pub const ALL: [Self; 4] = [Self::Running, Self::Clean, Self::Findings, Self::Failed];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Clean => "clean",
            Self::Findings => "findings",
            Self::Failed => "failed",
        }
    }
}

/// A run as recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Run {
    pub id: Uuid,
    pub origin: Origin,
    pub status: RunStatus,
    /// Nanoseconds since the Unix epoch.
    pub started_at: u64,
    pub finished_at: Option<u64>,
    pub report: Option<Verification>,
    pub error: Option<String>,
}

impl Run {
    fn of(row: store::VerifyRunRow, now: u64) -> Result<Self, StoreError> {
        let corrupt = |what: &str| StoreError::Corrupt(format!("verify run {}: {what}", row.id));
        let origin = [Origin::Api, Origin::Schedule]
            .into_iter()
            .find(|origin| origin.as_str() == row.origin)
            .ok_or_else(|| corrupt("unknown origin"))?;
        let mut status = RunStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == row.status)
            .ok_or_else(|| corrupt("unknown status"))?;
        let started_at = u64::try_from(row.started_at).map_err(|_| corrupt("negative start"))?;
        let mut error = row.error;
        if status == RunStatus::Running && now.saturating_sub(started_at) > RUN_STALE.as_nanos() as u64 {
            status = RunStatus::Failed;
            error = Some("interrupted: the process running it stopped before recording a result".into());
        }
        let report = match row.report {
            Some(text) => Some(serde_json::from_str(&text).map_err(|_| corrupt("unreadable report"))?),
            None => None,
        };
        Ok(Self {
            id: row.id,
            origin,
            status,
            started_at,
            finished_at: row.finished_at.and_then(|at| u64::try_from(at).ok()),
            report,
            error,
        })
    }
}

/// Why a run could not start.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// One run at a time per process.
    #[error("a verification is already running here: {0}")]
    Running(Uuid),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Runs of the books' check, recorded in the database (so any node answers for any
/// run), announced by a `verify.findings` event and the `coffer_verify_*` metrics.
#[derive(Clone, Debug)]
pub struct Verifier {
    store: Store,
    /// The run in progress in this process.
    running: std::sync::Arc<std::sync::Mutex<Option<Uuid>>>,
}

impl Verifier {
    pub fn new(store: Store) -> Self {
        Self { store, running: Default::default() }
    }

    /// Starts a run in the background and returns it, `running`.
    pub async fn start(&self, origin: Origin) -> Result<Run, VerifyError> {
        let (id, started_at) = self.begin(origin).await?;
        let verifier = self.clone();
        tokio::spawn(async move { verifier.complete(id).await });
        Ok(Run {
            id,
            origin,
            status: RunStatus::Running,
            started_at,
            finished_at: None,
            report: None,
            error: None,
        })
    }

    /// Runs to the end and returns the recorded run.
    pub async fn run(&self, origin: Origin) -> Result<Run, VerifyError> {
        let (id, _) = self.begin(origin).await?;
        self.complete(id).await;
        Ok(self.get(id).await?.expect("a run just recorded"))
    }

    pub async fn get(&self, id: Uuid) -> Result<Option<Run>, StoreError> {
        let now = store::now_ns();
        self.store.verify_run(id).await?.map(|row| Run::of(row, now)).transpose()
    }

    /// The latest runs, newest first.
    pub async fn latest(&self, limit: u32) -> Result<Vec<Run>, StoreError> {
        let now = store::now_ns();
        self.store.verify_runs(limit).await?.into_iter().map(|row| Run::of(row, now)).collect()
    }

    /// Runs every `interval` until `shutdown` (the first run one interval after start).
    pub async fn run_every(
        self,
        interval: std::time::Duration,
        shutdown: tokio_util::sync::CancellationToken,
    ) {
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(interval) => {}
            }
            if let Err(error) = self.run(Origin::Schedule).await {
                tracing::warn!(%error, "scheduled verification did not run");
            }
        }
    }

    /// Takes this process's slot and records the run as started.
    async fn begin(&self, origin: Origin) -> Result<(Uuid, u64), VerifyError> {
        let id = self.claim()?;
        let started_at = store::now_ns();
        if let Err(error) = self.store.insert_verify_run(id, origin.as_str(), started_at).await {
            self.release();
            return Err(error.into());
        }
        Ok((id, started_at))
    }

    fn claim(&self) -> Result<Uuid, VerifyError> {
        let mut running = self.running.lock().expect("not poisoned");
        if let Some(id) = *running {
            return Err(VerifyError::Running(id));
        }
        let id = Uuid::now_v7();
        *running = Some(id);
        Ok(id)
    }

    fn release(&self) {
        *self.running.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = None;
    }

    /// Verifies and records the result of run `id`.
    async fn complete(&self, id: Uuid) {
        /// Frees the slot however the run ends (a panic included).
        struct Release<'a>(&'a Verifier);
        impl Drop for Release<'_> {
            fn drop(&mut self) {
                self.0.release();
            }
        }
        let _release = Release(self);
        let started = std::time::Instant::now();
        let outcome = verify(&self.store, |_| {}).await;
        let finished_at = store::now_ns();
        let recorded = match &outcome {
            Ok(report) => {
                let status = if report.is_clean() { RunStatus::Clean } else { RunStatus::Findings };
                for (check, count) in &report.checks {
                    metrics::gauge!("coffer_verify_findings", "check" => check.clone()).set(*count as f64);
                }
                let events = if report.is_clean() {
                    Vec::new()
                } else {
                    let data = crate::events::VerifyFindingsData {
                        run_id: id,
                        findings: report.checks.values().sum(),
                        checks: report
                            .checks
                            .iter()
                            .filter(|(_, n)| **n > 0)
                            .map(|(c, _)| c.clone())
                            .collect(),
                    };
                    tracing::error!(run = %id, findings = data.findings, checks = ?data.checks, "verification found something");
                    vec![crate::events::event(
                        crate::events::EventType::VerifyFindings,
                        None,
                        &format!("verify/{id}"),
                        &data,
                    )]
                };
                let text = serde_json::to_string(report).expect("a report serialises");
                self.store
                    .finish_verify_run(id, status.as_str(), finished_at, Some(&text), None, &events)
                    .await
            }
            Err(error) => {
                tracing::warn!(run = %id, %error, "verification failed");
                let error = error.to_string();
                let status = RunStatus::Failed.as_str();
                self.store.finish_verify_run(id, status, finished_at, None, Some(&error), &[]).await
            }
        };
        let result = match (&outcome, &recorded) {
            (_, Err(_)) | (Err(_), _) => RunStatus::Failed,
            (Ok(report), Ok(())) if report.is_clean() => RunStatus::Clean,
            (Ok(_), Ok(())) => RunStatus::Findings,
        };
        metrics::counter!("coffer_verify_runs_total", "result" => result.as_str()).increment(1);
        metrics::histogram!("coffer_verify_seconds").record(started.elapsed().as_secs_f64());
        if let Err(error) = recorded {
            tracing::warn!(run = %id, %error, "could not record the verification's result");
        }
    }
}
