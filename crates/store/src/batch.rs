//! The commit of one batch, shared by both backends, and the retry of failed attempts.
//!
//! A backend provides a [`LedgerTx`]: the handful of reads and writes of one open
//! transaction, in its own SQL. [`run`] does everything else the same way on both:
//! read the clock, load what the commands can refer to, apply them with the pure ledger
//! core, check invariants, write the changes and advance the clock. [`retrying`] re-runs a
//! whole attempt (a fresh transaction, fresh reads) when the database reports a transient
//! failure; writes are never replayed on their own.

use std::future::Future;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ledger::chain::Link;
use ledger::{
    Account, AccountFlags, Changes, CreateTransferResult, PendingStatus, State, Transfer, TransferFlags,
};

use crate::codec::{self, PendingRow};
use crate::idempotency::ResponseRow;
use crate::memory::{Learned, Memory};
use crate::outbox::NewEvent;
use crate::{Command, Noted, Outcome, PaymentChange, Result, StoreError, TransferNote};

/// How many pending transfers a `commit` expires on the side, at most. Bounded so that a
/// backlog of due transfers cannot make a client's batch slow; the expiry worker
/// (`expire_pending`) drains the rest.
pub(crate) const COMMIT_EXPIRIES_MAX: usize = 1024;

/// Attempts of one batch before its transient error is returned. Conflicts between
/// writers are resolved by the clock lock (PostgreSQL) or the single writer (SQLite), so
/// retries are for rare events (deadlock with a foreign writer, a dropped connection,
/// another process holding the SQLite file); ten attempts with the backoff below span
/// about a second, long enough to ride out a failover of a pooled connection.
pub(crate) const COMMIT_ATTEMPTS_MAX: u32 = 10;

/// First pause between attempts: long enough for a conflicting transaction to finish.
pub(crate) const RETRY_BACKOFF_MIN_MS: u64 = 2;

/// Longest pause between attempts: a batch's caller is waiting on it.
pub(crate) const RETRY_BACKOFF_MAX_MS: u64 = 250;

/// The reads and writes of one open ledger transaction, in a backend's SQL.
///
/// Every method runs inside the transaction the backend opened before calling [`run`].
pub(crate) trait LedgerTx: Send {
    /// Reads the ledger clock; on PostgreSQL it also locks the clock row until commit,
    /// which serialises ledger writers across processes.
    fn lock_clock(&mut self) -> impl Future<Output = Result<u64>> + Send;

    /// Ids of up to `limit` pending transfers due at `now`, soonest first.
    fn due_pending(&mut self, now: u64, limit: usize) -> impl Future<Output = Result<Vec<u128>>> + Send;

    /// The transfers among `ids` (sorted, unique) with their pending status.
    fn load_transfers(
        &mut self,
        ids: &[u128],
    ) -> impl Future<Output = Result<Vec<(Transfer, Option<PendingStatus>)>>> + Send;

    /// The failed transfer ids among `ids` (sorted, unique).
    fn load_failed(
        &mut self,
        ids: &[u128],
    ) -> impl Future<Output = Result<Vec<(u128, CreateTransferResult)>>> + Send;

    /// The accounts among `ids` (sorted, unique), locked in id order where the backend
    /// locks rows.
    fn lock_accounts(&mut self, ids: &[u128]) -> impl Future<Output = Result<Vec<Account>>> + Send;

    /// Writes the notes of transfers this batch created.
    fn write_notes(&mut self, notes: &[TransferNote]) -> impl Future<Output = Result<()>> + Send;

    /// Writes the events of transfers this batch created (see [`crate::outbox`]).
    fn write_events(&mut self, events: &[NewEvent]) -> impl Future<Output = Result<()>> + Send;

    /// Writes the answers of keyed requests (see [`crate::idempotency`]).
    fn write_responses(&mut self, rows: &[ResponseRow]) -> impl Future<Output = Result<()>> + Send;

    /// Records and finishes payments, in order (see [`crate::payments`]); a finish writes
    /// its event only when it moved the payment out of `pending`.
    fn write_payments(&mut self, changes: &[PaymentChange]) -> impl Future<Output = Result<()>> + Send;

    /// The latest link of the hash chain, if there is one.
    fn chain_head(&mut self) -> impl Future<Output = Result<Option<Link>>> + Send;

    /// Appends a link to the hash chain.
    fn write_link(&mut self, link: &Link) -> impl Future<Output = Result<()>> + Send;

    /// Writes a batch's changes and sets the clock to `last_timestamp`.
    fn write(
        &mut self,
        changes: &Changes,
        pending: &[PendingRow],
        last_timestamp: u64,
    ) -> impl Future<Output = Result<()>> + Send;
}

/// What one batch did.
#[derive(Debug)]
pub(crate) struct BatchOutput {
    pub outcomes: Vec<Outcome>,
    /// Pending transfers expired in this batch.
    pub expired: usize,
}

/// Nanoseconds since the Unix epoch, the ledger's notion of now (also the unit of every
/// stored time outside the ledger).
pub fn now_ns() -> u64 {
    let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    u64::try_from(since_epoch.as_nanos()).unwrap_or(u64::MAX)
}

fn sort_unique(ids: &mut Vec<u128>) {
    ids.sort_unstable();
    ids.dedup();
}

/// Runs `commands` (and up to `expire_limit` due expiries) inside `tx`, at wall-clock `now`,
/// reading from the database only what `memory` does not hold; what the batch learned is
/// staged in `memory` for the backend to settle once it has committed.
pub(crate) async fn run<T: LedgerTx>(
    tx: &mut T,
    memory: &mut Memory,
    commands: &[Command],
    expire_limit: usize,
    now: u64,
) -> Result<BatchOutput> {
    let clock = tx.lock_clock().await?;
    memory.open(clock);

    let mut transfer_ids = Vec::new();
    let mut account_ids = Vec::new();
    for command in commands {
        match command {
            Command::CreateAccounts(events) => account_ids.extend(events.iter().map(|account| account.id)),
            Command::CreateTransfers(events)
            | Command::CreateTransfersWithNotes { transfers: events, .. } => {
                let prefetch = ledger::prefetch(events);
                transfer_ids.extend(prefetch.transfer_ids);
                account_ids.extend(prefetch.account_ids);
            }
            Command::RecordResponse(_) => {}
        }
    }
    let due = if expire_limit > 0 { tx.due_pending(now, expire_limit).await? } else { Vec::new() };
    transfer_ids.extend_from_slice(&due);
    sort_unique(&mut transfer_ids);

    // Transfers and failed ids: remembered, or read. An id is a transfer or a failure,
    // never both, so one remembered as either needs no read.
    let mut transfers = Vec::new();
    let mut failed = Vec::new();
    let mut unknown = Vec::new();
    for &id in &transfer_ids {
        if let Some(&result) = memory.failed.get(id) {
            failed.push((id, result));
        } else if let Some(&remembered) = memory.transfers.get(id) {
            transfers.push(remembered);
        } else {
            unknown.push(id);
        }
    }
    if !unknown.is_empty() {
        failed.extend(tx.load_failed(&unknown).await?);
        transfers.extend(tx.load_transfers(&unknown).await?);
    }
    // A post or void (and an expiry) changes the balances of the pending transfer's
    // accounts, which the events themselves need not name.
    for (transfer, _) in &transfers {
        if transfer.flags.contains(TransferFlags::PENDING) {
            account_ids.push(transfer.debit_account_id);
            account_ids.push(transfer.credit_account_id);
        }
    }
    sort_unique(&mut account_ids);
    let mut accounts = Vec::with_capacity(account_ids.len());
    let mut unread = Vec::new();
    for &id in &account_ids {
        match memory.accounts.get(id) {
            Some(&account) => accounts.push(account),
            None => unread.push(id),
        }
    }
    if !unread.is_empty() {
        accounts.extend(tx.lock_accounts(&unread).await?);
    }
    let loaded: Vec<u128> = transfers.iter().map(|(transfer, _)| transfer.id).collect();

    let mut state = State::new(clock);
    for account in accounts {
        assert_account_read(&account, clock);
        state.insert_account(account);
    }
    for (transfer, status) in transfers {
        assert_transfer_read(&transfer, status, clock);
        state.insert_transfer(transfer, status);
    }
    for &(id, result) in &failed {
        assert!(!result.is_success(), "transfer {id:#x} is stored as failed with {result}");
        state.insert_failed_transfer(id, result);
    }
    for id in &due {
        assert_eq!(
            state.pending_status(*id),
            Some(PendingStatus::Pending),
            "due transfer {id:#x} is not pending"
        );
    }

    let expired = if due.is_empty() { 0 } else { ledger::expire_pending_transfers(&mut state, now, &due) };
    assert!(expired <= due.len());
    let mut notes = Vec::new();
    let mut events = Vec::new();
    let mut responses = Vec::new();
    let mut payments = Vec::new();
    let outcomes: Vec<Outcome> = commands
        .iter()
        .map(|command| match command {
            Command::CreateAccounts(events) => {
                let results = ledger::create_accounts(&mut state, now, events);
                assert_eq!(results.len(), events.len());
                Outcome::Accounts(results)
            }
            Command::CreateTransfers(events) => {
                let results = ledger::create_transfers(&mut state, now, events);
                assert_eq!(results.len(), events.len());
                Outcome::Transfers(results)
            }
            Command::CreateTransfersWithNotes {
                transfers,
                notes: given,
                events: drafts,
                response,
                payments: payment_draft,
            } => {
                // The accounts the events render, as they stand before this command.
                let before: Vec<Account> = drafts
                    .iter()
                    .filter_map(|draft| draft.account_id())
                    .filter_map(|id| state.account(id))
                    .copied()
                    .collect();
                let results = ledger::create_transfers(&mut state, now, transfers);
                assert_eq!(results.len(), transfers.len());
                let created: std::collections::HashSet<u128> = transfers
                    .iter()
                    .zip(&results)
                    .filter(|(_, result)| **result == CreateTransferResult::Ok)
                    .map(|(transfer, _)| transfer.id)
                    .collect();
                // A note is kept only with a transfer this batch created, and once.
                let mut unnoted = created.clone();
                notes.extend(given.iter().filter(|note| unnoted.remove(&note.transfer_id)).cloned());
                // Events likewise, rendered from the accounts as this command leaves them.
                events.extend(drafts.iter().filter(|draft| created.contains(&draft.transfer_id)).map(
                    |draft| {
                        draft.finish(
                            |id| before.iter().find(|account| account.id == id),
                            |id| state.account(id),
                        )
                    },
                ));
                let timestamps: Vec<u64> = transfers
                    .iter()
                    .zip(&results)
                    .map(|(transfer, result)| match result {
                        CreateTransferResult::Ok | CreateTransferResult::Exists => {
                            state.transfer(transfer.id).map_or(0, |stored| stored.timestamp)
                        }
                        _ => 0,
                    })
                    .collect();
                if let Some(draft) = payment_draft {
                    payments.extend((draft.0)(&results, &timestamps));
                }
                let row = response.as_ref().and_then(|keyed| keyed.row(&results, &timestamps));
                let response = row.as_ref().map(|row| row.response.clone());
                responses.extend(row);
                Outcome::Noted(Noted { results, timestamps, response })
            }
            Command::RecordResponse(keyed) => {
                responses.extend(keyed.row(&[], &[]));
                Outcome::Recorded
            }
        })
        .collect();

    let changes = state.take_changes();
    let last_timestamp = state.last_timestamp();
    assert!(last_timestamp >= clock, "the ledger clock went backwards: {clock} -> {last_timestamp}");
    memory.stage(learned(
        &state,
        &changes,
        &loaded,
        failed,
        if changes.is_empty() { clock } else { last_timestamp },
    ));
    if !changes.is_empty() {
        assert_changes(&changes, clock, last_timestamp);
        let pending: Vec<PendingRow> = changes
            .pending_statuses
            .iter()
            .map(|&(id, status)| {
                let transfer = state.transfer(id).expect("a pending status names a transfer in the state");
                assert!(transfer.flags.contains(TransferFlags::PENDING));
                PendingRow { id, status, expires_at: codec::expires_at(transfer) }
            })
            .collect();
        tx.write(&changes, &pending, last_timestamp).await?;
        // Tamper evidence: the batch's transfers, chained to the batch before.
        if !changes.transfers_created.is_empty() {
            let head = tx.chain_head().await?;
            tx.write_link(&ledger::chain::link(head.as_ref(), &changes.transfers_created)).await?;
        }
    }
    if !notes.is_empty() {
        tx.write_notes(&notes).await?;
    }
    if !events.is_empty() {
        tx.write_events(&events).await?;
    }
    if !payments.is_empty() {
        tx.write_payments(&payments).await?;
    }
    if !responses.is_empty() {
        // One answer per key and batch (the first): a key's requests are serialised by
        // its node's lease, so this only guards the upsert's one-row-per-key rule.
        let mut keys = std::collections::HashSet::new();
        responses.retain(|row: &ResponseRow| keys.insert((row.key.owner_id, row.key.key.clone())));
        tx.write_responses(&responses).await?;
    }
    Ok(BatchOutput { outcomes, expired })
}

/// What a batch leaves to remember: every account it held, the transfers it loaded and
/// the pending ones it created (with their statuses as it left them), and failed ids.
fn learned(
    state: &State,
    changes: &Changes,
    loaded: &[u128],
    mut failed: Vec<(u128, CreateTransferResult)>,
    clock: u64,
) -> Learned {
    let with_status = |transfer: &Transfer| (*transfer, state.pending_status(transfer.id));
    let transfers = loaded
        .iter()
        .filter_map(|&id| state.transfer(id))
        .chain(
            changes
                .transfers_created
                .iter()
                .filter(|transfer| transfer.flags.contains(TransferFlags::PENDING)),
        )
        .map(with_status)
        .collect();
    failed.extend_from_slice(&changes.failed_transfers);
    Learned { accounts: state.accounts().copied().collect(), transfers, failed, clock }
}

/// Invariants of an account as read, before the ledger relies on them.
fn assert_account_read(account: &Account, clock: u64) {
    assert!(
        account.timestamp > 0 && account.timestamp <= clock,
        "account {:#x} is from the future",
        account.id
    );
    let flags = account.flags;
    assert!(
        !(flags.contains(AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS)
            && flags.contains(AccountFlags::CREDITS_MUST_NOT_EXCEED_DEBITS)),
        "account {:#x} has mutually exclusive flags",
        account.id
    );
    if flags.contains(AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS) {
        assert!(
            u128::from(account.debits_pending) + u128::from(account.debits_posted)
                <= u128::from(account.credits_posted),
            "account {:#x} has debits exceeding credits",
            account.id
        );
    }
    if flags.contains(AccountFlags::CREDITS_MUST_NOT_EXCEED_DEBITS) {
        assert!(
            u128::from(account.credits_pending) + u128::from(account.credits_posted)
                <= u128::from(account.debits_posted),
            "account {:#x} has credits exceeding debits",
            account.id
        );
    }
}

/// Invariants of a transfer as read.
fn assert_transfer_read(transfer: &Transfer, status: Option<PendingStatus>, clock: u64) {
    assert!(
        transfer.timestamp > 0 && transfer.timestamp <= clock,
        "transfer {:#x} is from the future",
        transfer.id
    );
    assert_ne!(transfer.debit_account_id, transfer.credit_account_id);
    assert_eq!(
        transfer.flags.contains(TransferFlags::PENDING),
        status.is_some(),
        "transfer {:#x}: a pending status belongs to exactly the pending transfers",
        transfer.id
    );
}

/// Invariants of what a batch is about to write: new objects are stamped after the clock
/// as read and no later than the clock to be written.
fn assert_changes(changes: &Changes, clock: u64, last_timestamp: u64) {
    let fresh = |timestamp: u64| timestamp > clock && timestamp <= last_timestamp;
    for account in &changes.accounts_created {
        assert!(fresh(account.timestamp), "created account {:#x} has a stale timestamp", account.id);
    }
    for transfer in &changes.transfers_created {
        assert!(fresh(transfer.timestamp), "created transfer {:#x} has a stale timestamp", transfer.id);
    }
    for balance in &changes.balances {
        assert!(fresh(balance.timestamp), "balance of {:#x} has a stale timestamp", balance.account_id);
    }
    for (id, result) in &changes.failed_transfers {
        assert!(!result.is_success(), "transfer {id:#x} recorded as failed with {result}");
    }
}

/// Whether `error` is worth a fresh attempt of the whole transaction, by backend.
pub(crate) type TransientCheck = fn(&sqlx::Error) -> bool;

/// Runs `attempt` until it succeeds, fails for good, or [`COMMIT_ATTEMPTS_MAX`] is reached,
/// backing off exponentially between attempts. Each attempt must be a whole transaction.
pub(crate) async fn retrying<T, F, Fut>(is_transient: TransientCheck, mut attempt: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let mut backoff_ms = RETRY_BACKOFF_MIN_MS;
    let mut attempts = 1;
    loop {
        match attempt().await {
            Err(StoreError::Database(error)) if attempts < COMMIT_ATTEMPTS_MAX && is_transient(&error) => {
                tracing::warn!(attempt = attempts, error = %error, "ledger transaction failed transiently; retrying");
                // Jitter keeps writers that collided from colliding again in lockstep.
                let jitter_ms = now_ns() % (backoff_ms / 2 + 1);
                tokio::time::sleep(Duration::from_millis(backoff_ms + jitter_ms)).await;
                backoff_ms = (backoff_ms * 2).min(RETRY_BACKOFF_MAX_MS);
                attempts += 1;
            }
            result => return result,
        }
    }
}
