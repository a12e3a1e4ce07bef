//! Checking the books (`coffer verify`): reads the whole database in one snapshot, page by
//! page, and reports everything that does not add up.
//!
//! The ledger checks are `ledger::audit`'s: every transfer replayed in commit order onto
//! empty accounts, compared with the stored balances, snapshots, limits, pending statuses
//! and per-ledger totals. On top of them, the wallet layer's own: every wallet has its
//! ledger account, with the flags, code and ledger that creating it writes
//! ([`crate::wallets::service::wallet_account`]), and every transfer note names a transfer
//! that exists.

use std::collections::BTreeMap;

use ledger::AccountFlags;
use ledger::audit::{Audit, Check, FINDINGS_KEPT_MAX};
use serde::Serialize;
use store::{Scanned, Store, StoreError};
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
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Verification {
    pub accounts: u64,
    pub transfers: u64,
    pub wallets: u64,
    /// Findings per check; every check is listed, clean ones with 0.
    pub checks: BTreeMap<&'static str, u64>,
    /// The first findings (at most 1,000), in the order found.
    pub findings: Vec<Finding>,
}

impl Verification {
    pub fn is_clean(&self) -> bool {
        self.checks.values().all(|count| *count == 0)
    }

    fn push(&mut self, check: &'static str, id: Uuid, detail: String) {
        *self.checks.entry(check).or_default() += 1;
        if self.findings.len() < FINDINGS_KEPT_MAX {
            self.findings.push(Finding { check, id, detail });
        }
    }
}

/// One thing found wrong.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Finding {
    pub check: &'static str,
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
    let mut audit = Some(Audit::new());
    let mut report = Verification {
        accounts: 0,
        transfers: 0,
        wallets: 0,
        checks: check_names().map(|name| (name, 0)).collect(),
        findings: Vec::new(),
    };
    let mut read = 0u64;
    let mut wallet_findings = Vec::new();
    let mut orphans = Vec::new();
    store
        .audit_scan(PAGE, |scanned| match scanned {
            Scanned::Totals { accounts, transfers } => progress(Progress::Total(accounts + transfers)),
            Scanned::Accounts(page) => {
                let audit = audit.as_mut().expect("the audit runs until the scan ends");
                page.iter().for_each(|account| audit.account(account));
                read += page.len() as u64;
                progress(Progress::Read(read));
            }
            Scanned::Transfers(page) => {
                let audit = audit.as_mut().expect("the audit runs until the scan ends");
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
    let ledger = audit.take().expect("finished once").finish();
    report.accounts = ledger.accounts;
    report.transfers = ledger.transfers;
    for (check, count) in &ledger.counts {
        *report.checks.entry(check.name()).or_default() += count;
    }
    report.findings.extend(ledger.findings.into_iter().map(|finding| Finding {
        check: finding.check.name(),
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
