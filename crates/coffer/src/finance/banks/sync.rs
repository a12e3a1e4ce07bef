//! The bank-connection service: link, list, delete, "sync now", and the worker (run by
//! the `workers` role) that syncs every linked connection on a schedule.
//!
//! It holds every configured aggregator (the sandbox, SimpleFIN): linking goes to the one
//! that lists the institution, and a connection is synced by the one whose name it stored.
//!
//! A sync needs a claim on the connection (`store::bank`: a compare-and-set with a lease),
//! so a worker and a "sync now" request — or the workers of two processes — never sync
//! one connection at once. Per account it asks the aggregator for the page after the
//! stored cursor, records the page's transactions (`Finance::record_lines`, duplicates by
//! import hash), and only then moves the cursor: a crash in between re-fetches the page
//! and the duplicates change nothing. A pass takes at most [`TRANSACTIONS_PER_PASS_MAX`]
//! transactions; a connection with more waiting is due again at once. A failed account
//! does not stop the others; the connection is then `error` (with `last_error`) and is
//! retried with exponential backoff, a sixteenth of the interval doubling up to the
//! interval, until a sync works.

use std::{sync::Arc, time::Duration};

use sha2::{Digest, Sha256};
use store::{BankAccountRow, BankConnectionRow, Store, SyncOutcome};
use uuid::Uuid;

use super::{
    AccountType, Aggregator, AggregatorError, Credentials, Institution, LinkRequest, SetupToken, Transaction,
};
use crate::finance::{Finance, FinanceError, StatementLine};
use crate::wallets::Currency;

/// How long a sync holds its claim. A pass stops asking the aggregator for more once
/// half of it is gone ([`PASS_TIME_MAX`]; one call takes [`CALL_TIMEOUT`] at most), so a
/// pass ends inside its claim. Were one to outlive it, it would still be harmless to the
/// data: cursors move by compare-and-set and transactions are unique by import hash.
const LEASE: Duration = Duration::from_secs(120);
/// How long a pass keeps starting aggregator calls; what is left waits for the next pass.
const PASS_TIME_MAX: Duration = Duration::from_secs(60);
/// Transactions asked for per aggregator call.
pub const TRANSACTIONS_PAGE: u32 = 100;
/// Transactions one sync pass of a connection takes at most (the rest wait a pass).
pub const TRANSACTIONS_PER_PASS_MAX: usize = 1_000;
/// Longest an aggregator call may take before it counts as unavailable: a hung bank must
/// not hold a request, or a worker's pass, for longer than its lease.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections a worker pass syncs at most.
const BATCH: u32 = 20;
/// Characters of a synced description and merchant kept at most (as the API allows).
const DESCRIPTION_CHARS_MAX: usize = 500;
const MERCHANT_CHARS_MAX: usize = 100;

/// What went wrong, for the HTTP layer to answer.
#[derive(Debug, thiserror::Error)]
pub enum BankError {
    #[error("no such bank connection")]
    NotFound,
    #[error("this institution is linked already")]
    AlreadyLinked,
    #[error("too many bank connections")]
    TooMany,
    #[error("a sync of this connection is running")]
    SyncInProgress,
    #[error(transparent)]
    Aggregator(#[from] AggregatorError),
    #[error(transparent)]
    Finance(#[from] FinanceError),
    #[error(transparent)]
    Store(#[from] store::StoreError),
}

/// What a sync did for one account (the API shows it as it is).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct AccountReport {
    pub account_id: Uuid,
    /// Expenses and income recorded.
    pub added: usize,
    /// Transactions recorded before (a re-fetched page, a racing sync).
    pub duplicates: usize,
    /// Transactions that could not be recorded (zero amounts, unsupported currencies).
    pub skipped: usize,
    /// More transactions are waiting for the next pass.
    pub has_more: bool,
    /// The aggregator's failure code, when this account's sync failed.
    pub error: Option<String>,
}

/// What a sync did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncReport {
    pub accounts: Vec<AccountReport>,
    /// The connection after the sync.
    pub connection: BankConnectionRow,
}

/// The bank-connection service and worker.
#[derive(Debug, Clone)]
pub struct Banks {
    store: Store,
    finance: Finance,
    /// The aggregators, each with its own institutions (a handful: a list is plenty).
    aggregators: Vec<Arc<dyn Aggregator>>,
    /// Time between the syncs of a connection.
    interval: Duration,
}

/// The import hash of a synced transaction: the provider's account and transaction ids
/// identify it for good, so a re-sync — even through a deleted and re-made link to the
/// same account — records it once.
fn line_hash(provider: &str, account: &str, transaction: &str) -> String {
    hex::encode(Sha256::digest(format!("bank\u{1f}{provider}\u{1f}{account}\u{1f}{transaction}")))
}

/// `text` without control characters, trimmed, at most `max` characters; `None` if empty.
fn clean(text: &str, max: usize) -> Option<String> {
    let kept: String = text.chars().filter(|c| !c.is_control()).take(max).collect();
    let kept = kept.trim();
    (!kept.is_empty()).then(|| kept.to_owned())
}

/// A transaction as a statement line; `None` for one Coffer cannot record (a zero amount,
/// an unsupported currency): aggregators are outside input, checked like any other.
fn statement_line(
    provider: &str,
    account: &BankAccountRow,
    transaction: &Transaction,
) -> Option<StatementLine> {
    let currency = Currency::parse(&transaction.currency)?;
    if transaction.amount == 0 {
        return None;
    }
    let midnight = transaction.booked_on.midnight().assume_utc().unix_timestamp_nanos();
    Some(StatementLine {
        occurred_at: i64::try_from(midnight).ok().filter(|at| *at >= 0)?,
        amount: transaction.amount,
        currency: currency.code().to_owned(),
        description: clean(&transaction.description, DESCRIPTION_CHARS_MAX),
        merchant: transaction.merchant.as_deref().and_then(|merchant| clean(merchant, MERCHANT_CHARS_MAX)),
        mcc: transaction.mcc.clone().filter(|mcc| mcc.len() == 4 && mcc.bytes().all(|b| b.is_ascii_digit())),
        hash: line_hash(provider, &account.provider_account_id, &transaction.id),
    })
}

/// An aggregator call, within [`CALL_TIMEOUT`].
async fn bounded<T>(call: impl Future<Output = Result<T, AggregatorError>>) -> Result<T, AggregatorError> {
    tokio::time::timeout(CALL_TIMEOUT, call)
        .await
        .unwrap_or_else(|_| Err(AggregatorError::Unavailable("the aggregator did not answer in time".into())))
}

impl Banks {
    /// The service with one aggregator; [`Banks::with`] adds more.
    pub fn new(store: Store, aggregator: Arc<dyn Aggregator>, interval: Duration) -> Self {
        let finance = Finance::new(store.clone());
        Self { store, finance, aggregators: vec![aggregator], interval }
    }

    /// The service with `aggregator` as well. Institution ids must not repeat across
    /// aggregators (the first one listing an id links it).
    pub fn with(mut self, aggregator: Arc<dyn Aggregator>) -> Self {
        self.aggregators.push(aggregator);
        self
    }

    /// The institutions a customer can link, of every aggregator.
    pub fn institutions(&self) -> Vec<Institution> {
        self.aggregators.iter().flat_map(|aggregator| aggregator.institutions()).collect()
    }

    /// The institution `id`, if an aggregator lists it.
    pub fn institution(&self, id: &str) -> Option<Institution> {
        self.institutions().into_iter().find(|institution| institution.id == id)
    }

    /// The aggregator that links institution `id`.
    fn aggregator_linking(&self, id: &str) -> Result<&Arc<dyn Aggregator>, AggregatorError> {
        self.aggregators
            .iter()
            .find(|aggregator| aggregator.institutions().iter().any(|institution| institution.id == id))
            .ok_or(AggregatorError::UnknownInstitution)
    }

    /// The aggregator a connection stored the name of.
    fn aggregator_named(&self, name: &str) -> Result<&Arc<dyn Aggregator>, AggregatorError> {
        self.aggregators.iter().find(|aggregator| aggregator.name() == name).ok_or_else(|| {
            AggregatorError::Unavailable(format!("the {name} aggregator is not configured on this server"))
        })
    }

    /// Links `institution_id` for the customer: the connection and its accounts, due for
    /// a first sync at once.
    pub async fn link(
        &self,
        customer_id: Uuid,
        institution_id: String,
        credentials: Option<Credentials>,
        setup_token: Option<SetupToken>,
    ) -> Result<(BankConnectionRow, Vec<BankAccountRow>), BankError> {
        if self.store.bank_connections_count(customer_id).await? >= store::BANK_CONNECTIONS_PER_CUSTOMER_MAX {
            return Err(BankError::TooMany);
        }
        let aggregator = self.aggregator_linking(&institution_id)?;
        let request =
            LinkRequest { institution_id: institution_id.clone(), credentials, setup_token, customer_id };
        let link = bounded(aggregator.link(request)).await?;
        let accounts = bounded(aggregator.accounts(&link.access_token)).await?;
        let now = store::now_ns() as i64;
        let connection = BankConnectionRow {
            id: Uuid::now_v7(),
            customer_id,
            provider: aggregator.name().to_owned(),
            institution_id,
            provider_connection_id: link.connection_id,
            access_token: link.access_token,
            status: "active".into(),
            next_sync_at: now,
            attempts: 0,
            claimed_until: None,
            last_synced_at: None,
            last_error: None,
            created_at: now,
            updated_at: now,
        };
        let rows: Vec<BankAccountRow> = accounts
            .iter()
            .take(store::BANK_ACCOUNTS_PER_CONNECTION_MAX as usize)
            .enumerate()
            .map(|(index, account)| BankAccountRow {
                id: Uuid::now_v7(),
                connection_id: connection.id,
                provider_account_id: account.id.clone(),
                name: clean(&account.name, MERCHANT_CHARS_MAX).unwrap_or_else(|| "Account".into()),
                mask: account.mask.as_deref().and_then(|mask| clean(mask, 8)),
                // ISO 4217's "no currency" for one an aggregator leaves blank.
                currency: clean(&account.currency, 8).unwrap_or_else(|| "XXX".into()),
                account_type: account.kind.map_or("other", AccountType::as_str).to_owned(),
                sync_cursor: None,
                last_synced_at: None,
                // Keeps the aggregator's order.
                created_at: now + index as i64,
            })
            .collect();
        if !self.store.insert_bank_connection(&connection, &rows).await? {
            return Err(BankError::AlreadyLinked);
        }
        Ok((connection, rows))
    }

    /// A page of the customer's connections, oldest first, after `after`, each with its
    /// accounts (a customer links a handful of banks).
    pub async fn connections(
        &self,
        customer_id: Uuid,
        after: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<(BankConnectionRow, Vec<BankAccountRow>)>, BankError> {
        let rows = self.store.bank_connections(customer_id, after, limit).await?;
        let mut connections = Vec::with_capacity(rows.len());
        for row in rows {
            let accounts = self.store.bank_accounts(row.id).await?;
            connections.push((row, accounts));
        }
        Ok(connections)
    }

    /// The customer's connection `id` with its accounts.
    pub async fn connection(
        &self,
        customer_id: Uuid,
        id: Uuid,
    ) -> Result<(BankConnectionRow, Vec<BankAccountRow>), BankError> {
        let connection = self.store.bank_connection(customer_id, id).await?.ok_or(BankError::NotFound)?;
        let accounts = self.store.bank_accounts(id).await?;
        Ok((connection, accounts))
    }

    /// Unlinks the customer's connection `id`; what it synced stays.
    pub async fn delete(&self, customer_id: Uuid, id: Uuid) -> Result<(), BankError> {
        if self.store.delete_bank_connection(customer_id, id).await? {
            Ok(())
        } else {
            Err(BankError::NotFound)
        }
    }

    /// Syncs the customer's connection `id` now (whether due or not).
    pub async fn sync_now(&self, customer_id: Uuid, id: Uuid) -> Result<SyncReport, BankError> {
        let connection = self.store.bank_connection(customer_id, id).await?.ok_or(BankError::NotFound)?;
        let now = store::now_ns() as i64;
        let lease = now + LEASE.as_nanos() as i64;
        if !self.store.claim_bank_connection(id, now, lease, false).await? {
            return Err(BankError::SyncInProgress);
        }
        self.sync_claimed(connection, lease).await
    }

    /// Syncs the connections that are due; true when a full batch was found.
    pub async fn step(&self) -> anyhow::Result<bool> {
        let due = self.store.due_bank_connections(store::now_ns() as i64, BATCH).await?;
        for connection in &due {
            // The time of this claim, not of the listing: earlier syncs of the batch took some.
            let now = store::now_ns() as i64;
            let lease = now + LEASE.as_nanos() as i64;
            if self.store.claim_bank_connection(connection.id, now, lease, true).await? {
                let report = self.sync_claimed(connection.clone(), lease).await?;
                let added: usize = report.accounts.iter().map(|account| account.added).sum();
                tracing::debug!(connection = %connection.id, added, status = %report.connection.status, "bank sync");
            }
        }
        Ok(due.len() == BATCH as usize)
    }

    /// Runs until `shutdown`, looking for due connections every `poll`.
    pub async fn run_until(self, poll: Duration, shutdown: tokio_util::sync::CancellationToken) {
        crate::support::repeat("bank-sync", poll, shutdown, || self.step()).await;
    }

    /// The delay before retry `attempts` (1, 2, …) of a failing connection.
    fn backoff(&self, attempts: i64) -> Duration {
        crate::support::backoff(self.interval / 16, attempts.clamp(1, 20) as u32, self.interval)
    }

    /// Syncs `connection`, which the caller claimed until `lease`, and records the outcome
    /// — also when the sync itself failed (the store, say): the claim is given back with
    /// the error, so the next try comes with backoff instead of after the lease.
    async fn sync_claimed(&self, connection: BankConnectionRow, lease: i64) -> Result<SyncReport, BankError> {
        let deadline = std::time::Instant::now() + PASS_TIME_MAX;
        let mut reports = Vec::new();
        let synced: Result<(), BankError> = async {
            let accounts = self.store.bank_accounts(connection.id).await?;
            let mut budget = TRANSACTIONS_PER_PASS_MAX;
            for account in &accounts {
                reports.push(self.sync_account(&connection, account, &mut budget, deadline).await?);
            }
            Ok(())
        }
        .await;
        let now = store::now_ns() as i64;
        let failed = match &synced {
            Err(_) => Some("sync_failed".to_owned()),
            Ok(()) => reports.iter().find_map(|report| report.error.clone()),
        };
        let outcome = match failed {
            Some(code) => {
                let attempts = connection.attempts + 1;
                SyncOutcome {
                    status: "error".into(),
                    attempts,
                    next_sync_at: now + self.backoff(attempts).as_nanos() as i64,
                    last_synced_at: None,
                    last_error: Some(code),
                    updated_at: now,
                }
            }
            None => {
                let more = reports.iter().any(|report| report.has_more);
                SyncOutcome {
                    status: "active".into(),
                    attempts: 0,
                    next_sync_at: if more { now } else { now + self.interval.as_nanos() as i64 },
                    last_synced_at: Some(now),
                    last_error: None,
                    updated_at: now,
                }
            }
        };
        if !self.store.finish_bank_sync(connection.id, lease, &outcome).await? {
            tracing::warn!(connection = %connection.id, "a bank sync outlived its claim; its outcome was not recorded");
        }
        synced?;
        let connection = BankConnectionRow {
            status: outcome.status,
            attempts: outcome.attempts,
            next_sync_at: outcome.next_sync_at,
            last_synced_at: outcome.last_synced_at.or(connection.last_synced_at),
            last_error: outcome.last_error,
            claimed_until: None,
            updated_at: now,
            ..connection
        };
        Ok(SyncReport { accounts: reports, connection })
    }

    /// Pages through one account's new transactions, within `budget`.
    async fn sync_account(
        &self,
        connection: &BankConnectionRow,
        account: &BankAccountRow,
        budget: &mut usize,
        deadline: std::time::Instant,
    ) -> Result<AccountReport, BankError> {
        let mut report = AccountReport { account_id: account.id, ..AccountReport::default() };
        let aggregator = match self.aggregator_named(&connection.provider) {
            Ok(aggregator) => aggregator,
            Err(error) => {
                report.error = Some(error.code().to_owned());
                return Ok(report);
            }
        };
        let mut cursor = account.sync_cursor.clone();
        loop {
            if *budget == 0 || std::time::Instant::now() >= deadline {
                report.has_more = true;
                return Ok(report);
            }
            let limit = TRANSACTIONS_PAGE.min(u32::try_from(*budget).unwrap_or(u32::MAX));
            let page = match bounded(aggregator.transactions(
                &connection.access_token,
                &account.provider_account_id,
                cursor.as_deref(),
                limit,
            ))
            .await
            {
                Ok(page) => page,
                Err(error) => {
                    tracing::info!(connection = %connection.id, account = %account.id, %error, "bank sync failed");
                    report.error = Some(error.code().to_owned());
                    return Ok(report);
                }
            };
            // A page is recorded whole (its cursor covers all of it); an empty page that
            // claims more still spends budget, so a confused aggregator cannot loop a pass.
            *budget = budget.saturating_sub(page.added.len().max(1));
            let lines: Vec<StatementLine> = page
                .added
                .iter()
                .filter_map(|transaction| statement_line(&connection.provider, account, transaction))
                .collect();
            report.skipped += page.added.len() - lines.len();
            let (added, duplicates, skipped) =
                self.finance.record_lines(connection.customer_id, "bank_sync", &lines, true).await?;
            report.added += added;
            report.duplicates += duplicates;
            report.skipped += skipped;
            let now = store::now_ns() as i64;
            if !self.store.advance_bank_cursor(account.id, cursor.as_deref(), &page.next_cursor, now).await? {
                // Another sync moved the cursor (a claim that lapsed): it carries on from there.
                return Ok(report);
            }
            cursor = Some(page.next_cursor);
            if !page.has_more {
                return Ok(report);
            }
        }
    }
}
