//! The in-memory state that `apply` reads and changes, and the record of what changed.
//!
//! A [`State`] holds only what one batch needs. The store loads into it every account,
//! transfer, pending status and failed id that the batch's events can refer to (see
//! [`crate::prefetch`]), runs the batch, then writes [`State::take_changes`] back in the
//! same database transaction. Anything absent from the state is, by contract, absent
//! from the ledger. The in-memory reference ledger and the tests use the same type with
//! everything loaded.
//!
//! The change record is kept as "which ids are dirty" rather than as copies, and
//! materialised in [`State::take_changes`]: that way an object changed many times (in one
//! call or across several calls on the same state) appears once, with its final value,
//! and applying an event costs no more than a couple of `Vec::push`es.

use std::collections::BTreeMap;

use crate::hash::IdMap;
use crate::{
    AMOUNT_MAX, Account, AccountBalance, AccountFlags, CreateTransferResult, NANOS_PER_SECOND, PendingStatus,
    Transfer, TransferFlags,
};

/// How an account stands in the change record since the last `take_changes`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Record {
    /// Unchanged since loaded (or since the last `take_changes`).
    Clean,
    /// Created since; listed in `State::accounts_created`.
    Created,
    /// Loaded, then changed; listed in `State::accounts_updated`.
    Updated,
}

/// An account with its place in the change record.
#[derive(Clone, Copy, Debug)]
pub(crate) struct AccountSlot {
    pub(crate) account: Account,
    pub(crate) record: Record,
}

/// A pending transfer's status with its place in the change record.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PendingSlot {
    pub(crate) status: PendingStatus,
    /// Whether the status was set since the last `take_changes` (and is listed in
    /// `State::pending_changed`).
    pub(crate) dirty: bool,
}

/// One step to take back when a linked chain fails.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Undo {
    /// An existing account's value before the chain changed it.
    Account(AccountSlot),
    /// An account the chain created.
    AccountCreated(u128),
    /// A transfer the chain created.
    TransferCreated(u128),
    /// A pending status before the chain set it (`None`: the chain created it).
    Pending(u128, Option<PendingSlot>),
}

/// Lengths of the append-only change lists when a chain began, to truncate back to.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct ChainMark {
    accounts_created: usize,
    accounts_updated: usize,
    transfers_created: usize,
    pending_changed: usize,
    failed_transfers: usize,
    balances: usize,
}

/// The accounts, transfers, pending statuses and failed ids visible to a batch.
#[derive(Clone, Debug, Default)]
pub struct State {
    pub(crate) accounts: IdMap<AccountSlot>,
    pub(crate) transfers: IdMap<Transfer>,
    pub(crate) pending: IdMap<PendingSlot>,
    pub(crate) failed: IdMap<CreateTransferResult>,
    pub(crate) last_timestamp: u64,
    /// Ids of accounts created since the last `take_changes`, in timestamp order.
    pub(crate) accounts_created: Vec<u128>,
    /// Ids of loaded accounts changed since the last `take_changes`, first change first.
    pub(crate) accounts_updated: Vec<u128>,
    /// Ids of pending transfers whose status was set since the last `take_changes`.
    pub(crate) pending_changed: Vec<u128>,
    /// The parts of the record that are final when written: transfers, failed ids and
    /// balance rows. The account lists and statuses are filled in by `take_changes`.
    pub(crate) changes: Changes,
    /// The undo log of the linked chain being applied, if `chain` is set.
    pub(crate) undo: Vec<Undo>,
    pub(crate) chain: Option<ChainMark>,
}

/// Everything a batch changed, to be written back by the store.
///
/// Each list holds the final value of each object it names, once: an account created and
/// then debited in the same batch appears only in `accounts_created`, with its final
/// balances.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Changes {
    /// New accounts, in timestamp order.
    pub accounts_created: Vec<Account>,
    /// Accounts that existed before the batch and whose balances or flags changed.
    pub accounts_updated: Vec<Account>,
    /// New transfers, in timestamp order.
    pub transfers_created: Vec<Transfer>,
    /// The final status of every pending transfer the batch created or resolved.
    pub pending_statuses: Vec<(u128, PendingStatus)>,
    /// Transfer ids that failed in a way a retry must not be allowed to undo.
    pub failed_transfers: Vec<(u128, CreateTransferResult)>,
    /// Balance snapshots for accounts with the `history` flag, in timestamp order.
    pub balances: Vec<AccountBalance>,
}

impl Changes {
    /// Whether the batch changed nothing.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

impl State {
    /// An empty state whose clock last ticked at `last_timestamp` (nanoseconds).
    pub fn new(last_timestamp: u64) -> Self {
        Self { last_timestamp, ..Self::default() }
    }

    /// Makes room for `accounts` more accounts and `transfers` more transfers, so that
    /// loading and applying a batch does not rehash on the way.
    pub fn reserve(&mut self, accounts: usize, transfers: usize) {
        self.accounts.reserve(accounts);
        self.transfers.reserve(transfers);
    }

    /// Loads a stored account.
    pub fn insert_account(&mut self, account: Account) {
        self.accounts.insert(account.id, AccountSlot { account, record: Record::Clean });
    }

    /// Loads a stored transfer, with its status when it is a pending transfer.
    pub fn insert_transfer(&mut self, transfer: Transfer, pending: Option<PendingStatus>) {
        if let Some(status) = pending {
            self.pending.insert(transfer.id, PendingSlot { status, dirty: false });
        }
        self.transfers.insert(transfer.id, transfer);
    }

    /// Loads a transfer id whose creation failed earlier.
    pub fn insert_failed_transfer(&mut self, id: u128, result: CreateTransferResult) {
        self.failed.insert(id, result);
    }

    /// A loaded or created account.
    pub fn account(&self, id: u128) -> Option<&Account> {
        self.accounts.get(&id).map(|slot| &slot.account)
    }

    /// A loaded or created transfer.
    pub fn transfer(&self, id: u128) -> Option<&Transfer> {
        self.transfers.get(&id)
    }

    /// The status of a pending transfer (`None` for other transfers and unknown ids).
    pub fn pending_status(&self, id: u128) -> Option<PendingStatus> {
        self.pending.get(&id).map(|slot| slot.status)
    }

    /// The remembered failure of a transfer id, if any.
    pub fn failed_transfer(&self, id: u128) -> Option<CreateTransferResult> {
        self.failed.get(&id).copied()
    }

    /// The timestamp of the last event applied (or loaded as the clock's reading).
    pub fn last_timestamp(&self) -> u64 {
        self.last_timestamp
    }

    /// All accounts, in no particular order (for tests and the reference ledger).
    pub fn accounts(&self) -> impl Iterator<Item = &Account> {
        self.accounts.values().map(|slot| &slot.account)
    }

    /// All transfers, in no particular order.
    pub fn transfers(&self) -> impl Iterator<Item = &Transfer> {
        self.transfers.values()
    }

    /// Hands over what changed since the last call, leaving the record empty.
    pub fn take_changes(&mut self) -> Changes {
        assert!(self.chain.is_none(), "take_changes inside a linked chain");
        let mut changes = std::mem::take(&mut self.changes);
        changes.accounts_created.reserve_exact(self.accounts_created.len());
        for id in self.accounts_created.drain(..) {
            let slot = self.accounts.get_mut(&id).expect("a created account stays in the state");
            assert_eq!(slot.record, Record::Created);
            slot.record = Record::Clean;
            changes.accounts_created.push(slot.account);
        }
        changes.accounts_updated.reserve_exact(self.accounts_updated.len());
        for id in self.accounts_updated.drain(..) {
            let slot = self.accounts.get_mut(&id).expect("an updated account stays in the state");
            assert_eq!(slot.record, Record::Updated);
            slot.record = Record::Clean;
            changes.accounts_updated.push(slot.account);
        }
        changes.pending_statuses.reserve_exact(self.pending_changed.len());
        for id in self.pending_changed.drain(..) {
            let slot = self.pending.get_mut(&id).expect("a changed status stays in the state");
            assert!(slot.dirty);
            slot.dirty = false;
            changes.pending_statuses.push((id, slot.status));
        }
        changes
    }

    /// Checks the ledger's invariants over everything in the state, returning the first
    /// violation found.
    ///
    /// The per-ledger sums and the pending-amount check are only meaningful when the
    /// state holds the whole ledger (the tests and the in-memory reference ledger); a
    /// store-loaded state holds a slice of it and only the per-account checks apply.
    pub fn check_invariants(&self) -> Result<(), String> {
        #[derive(Default)]
        struct Sums {
            debits_pending: u128,
            debits_posted: u128,
            credits_pending: u128,
            credits_posted: u128,
        }
        let mut ledgers: BTreeMap<u32, Sums> = BTreeMap::new();
        let mut pending_by_account: BTreeMap<u128, (u128, u128)> = BTreeMap::new();

        for (id, slot) in &self.accounts {
            let a = &slot.account;
            if *id != a.id {
                return Err(format!("account {} stored under id {id}", a.id));
            }
            for (name, value) in [
                ("debits_pending", a.debits_pending),
                ("debits_posted", a.debits_posted),
                ("credits_pending", a.credits_pending),
                ("credits_posted", a.credits_posted),
            ] {
                if value > AMOUNT_MAX {
                    return Err(format!("account {id}: {name} {value} exceeds AMOUNT_MAX"));
                }
            }
            let debits = u128::from(a.debits_pending) + u128::from(a.debits_posted);
            let credits = u128::from(a.credits_pending) + u128::from(a.credits_posted);
            if debits > u128::from(AMOUNT_MAX) || credits > u128::from(AMOUNT_MAX) {
                return Err(format!("account {id}: total debits or credits exceed AMOUNT_MAX"));
            }
            let limits = AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS
                .union(AccountFlags::CREDITS_MUST_NOT_EXCEED_DEBITS);
            if a.flags.contains(limits) {
                return Err(format!("account {id}: mutually exclusive flags {:?}", a.flags));
            }
            if a.flags.contains(AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS)
                && debits > u128::from(a.credits_posted)
            {
                return Err(format!(
                    "account {id}: debits {debits} exceed credits_posted {}",
                    a.credits_posted
                ));
            }
            if a.flags.contains(AccountFlags::CREDITS_MUST_NOT_EXCEED_DEBITS)
                && credits > u128::from(a.debits_posted)
            {
                return Err(format!(
                    "account {id}: credits {credits} exceed debits_posted {}",
                    a.debits_posted
                ));
            }
            let sums = ledgers.entry(a.ledger).or_default();
            sums.debits_pending += u128::from(a.debits_pending);
            sums.debits_posted += u128::from(a.debits_posted);
            sums.credits_pending += u128::from(a.credits_pending);
            sums.credits_posted += u128::from(a.credits_posted);
            pending_by_account.insert(*id, (0, 0));
        }
        for (ledger, sums) in &ledgers {
            if sums.debits_posted != sums.credits_posted {
                return Err(format!(
                    "ledger {ledger}: debits_posted {} != credits_posted {}",
                    sums.debits_posted, sums.credits_posted
                ));
            }
            if sums.debits_pending != sums.credits_pending {
                return Err(format!(
                    "ledger {ledger}: debits_pending {} != credits_pending {}",
                    sums.debits_pending, sums.credits_pending
                ));
            }
        }

        for (id, t) in &self.transfers {
            if *id != t.id {
                return Err(format!("transfer {} stored under id {id}", t.id));
            }
            let status = self.pending.get(id).map(|slot| slot.status);
            match (t.flags.contains(TransferFlags::PENDING), status) {
                (true, None) => return Err(format!("pending transfer {id} has no status")),
                (false, Some(_)) => return Err(format!("transfer {id} is not pending but has a status")),
                (true, Some(PendingStatus::Pending)) => {
                    let Some(debit) = pending_by_account.get_mut(&t.debit_account_id) else {
                        return Err(format!("pending transfer {id}: debit account missing"));
                    };
                    debit.0 += u128::from(t.amount);
                    let Some(credit) = pending_by_account.get_mut(&t.credit_account_id) else {
                        return Err(format!("pending transfer {id}: credit account missing"));
                    };
                    credit.1 += u128::from(t.amount);
                }
                _ => {}
            }
            if t.flags.contains(TransferFlags::PENDING) && t.timeout > 0 {
                let timeout = u64::from(t.timeout) * NANOS_PER_SECOND;
                if t.timestamp.checked_add(timeout).is_none_or(|at| at > i64::MAX as u64) {
                    return Err(format!("pending transfer {id}: expiry overflows"));
                }
            }
            if t.flags
                .intersects(TransferFlags::POST_PENDING_TRANSFER.union(TransferFlags::VOID_PENDING_TRANSFER))
            {
                let resolved = self.pending.get(&t.pending_id).map(|slot| slot.status);
                let expected = if t.flags.contains(TransferFlags::POST_PENDING_TRANSFER) {
                    PendingStatus::Posted
                } else {
                    PendingStatus::Voided
                };
                if resolved.is_some_and(|status| status != expected) {
                    return Err(format!(
                        "transfer {id} resolves {} but its status is {resolved:?}",
                        t.pending_id
                    ));
                }
            }
        }
        for (id, (debits_pending, credits_pending)) in pending_by_account {
            let a = &self.accounts[&id].account;
            if u128::from(a.debits_pending) != debits_pending
                || u128::from(a.credits_pending) != credits_pending
            {
                return Err(format!(
                    "account {id}: pending balances ({}, {}) != pending transfers ({debits_pending}, {credits_pending})",
                    a.debits_pending, a.credits_pending
                ));
            }
        }
        Ok(())
    }

    // ---- Bookkeeping used by `apply` -------------------------------------------------

    /// Starts recording an undo log for a linked chain.
    pub(crate) fn chain_begin(&mut self) {
        assert!(self.chain.is_none());
        debug_assert!(self.undo.is_empty());
        self.chain = Some(ChainMark {
            accounts_created: self.accounts_created.len(),
            accounts_updated: self.accounts_updated.len(),
            transfers_created: self.changes.transfers_created.len(),
            pending_changed: self.pending_changed.len(),
            failed_transfers: self.changes.failed_transfers.len(),
            balances: self.changes.balances.len(),
        });
    }

    /// Keeps the chain's effects.
    pub(crate) fn chain_commit(&mut self) {
        assert!(self.chain.take().is_some());
        self.undo.clear();
    }

    /// Takes back every effect of the chain, newest first.
    pub(crate) fn chain_rollback(&mut self) {
        let mark = self.chain.take().expect("rollback outside a chain");
        while let Some(step) = self.undo.pop() {
            match step {
                Undo::Account(slot) => {
                    self.accounts.insert(slot.account.id, slot);
                }
                Undo::AccountCreated(id) => {
                    assert!(self.accounts.remove(&id).is_some());
                }
                Undo::TransferCreated(id) => {
                    assert!(self.transfers.remove(&id).is_some());
                }
                Undo::Pending(id, Some(slot)) => {
                    self.pending.insert(id, slot);
                }
                Undo::Pending(id, None) => {
                    assert!(self.pending.remove(&id).is_some());
                }
            }
        }
        self.accounts_created.truncate(mark.accounts_created);
        self.accounts_updated.truncate(mark.accounts_updated);
        self.changes.transfers_created.truncate(mark.transfers_created);
        self.pending_changed.truncate(mark.pending_changed);
        self.changes.failed_transfers.truncate(mark.failed_transfers);
        self.changes.balances.truncate(mark.balances);
    }

    /// Reserves `count` timestamps for a batch and returns the first: strictly after the
    /// last one handed out and no earlier than `now`, consecutive within the batch. Every
    /// event takes one, failed or not, so an event's timestamp depends only on its place
    /// in the batch (as in TigerBeetle).
    pub(crate) fn reserve_timestamps(&mut self, now: u64, count: usize) -> u64 {
        if count == 0 {
            return self.last_timestamp.max(now);
        }
        let after_last = self.last_timestamp.checked_add(1).expect("the clock ran out of nanoseconds");
        let first = now.max(after_last);
        let last = first.checked_add(count as u64 - 1).expect("the clock ran out of nanoseconds");
        self.last_timestamp = last;
        first
    }

    /// Creates an account (already validated).
    pub(crate) fn create_account(&mut self, account: Account) {
        let previous = self.accounts.insert(account.id, AccountSlot { account, record: Record::Created });
        assert!(previous.is_none(), "account {} created twice", account.id);
        self.accounts_created.push(account.id);
        if self.chain.is_some() {
            self.undo.push(Undo::AccountCreated(account.id));
        }
    }

    /// Creates a transfer (already validated and applied to its accounts).
    pub(crate) fn create_transfer(&mut self, transfer: Transfer) {
        let previous = self.transfers.insert(transfer.id, transfer);
        assert!(previous.is_none(), "transfer {} created twice", transfer.id);
        self.changes.transfers_created.push(transfer);
        if self.chain.is_some() {
            self.undo.push(Undo::TransferCreated(transfer.id));
        }
    }

    /// Sets a pending transfer's status.
    pub(crate) fn set_pending_status(&mut self, id: u128, status: PendingStatus) {
        let previous = self.pending.insert(id, PendingSlot { status, dirty: true });
        if self.chain.is_some() {
            self.undo.push(Undo::Pending(id, previous));
        }
        if !previous.is_some_and(|slot| slot.dirty) {
            self.pending_changed.push(id);
        }
    }

    /// Writes an account's new value, noting it in the change record (and the undo log).
    pub(crate) fn write_account(&mut self, account: Account) {
        let slot = self.accounts.get_mut(&account.id).expect("writing an account that was not loaded");
        if self.chain.is_some() {
            self.undo.push(Undo::Account(*slot));
        }
        if slot.record == Record::Clean {
            slot.record = Record::Updated;
            self.accounts_updated.push(account.id);
        }
        slot.account = account;
    }

    /// Appends a balance row for an account with the `history` flag.
    pub(crate) fn push_balance(&mut self, account: &Account, timestamp: u64) {
        if account.flags.contains(AccountFlags::HISTORY) {
            self.changes.balances.push(AccountBalance {
                account_id: account.id,
                timestamp,
                debits_pending: account.debits_pending,
                debits_posted: account.debits_posted,
                credits_pending: account.credits_pending,
                credits_posted: account.credits_posted,
            });
        }
    }

    /// Remembers a transfer id whose creation failed transiently.
    pub(crate) fn remember_failure(&mut self, id: u128, result: CreateTransferResult) {
        debug_assert!(result.is_transient());
        let previous = self.failed.insert(id, result);
        assert!(previous.is_none(), "transfer id {id} failed twice");
        self.changes.failed_transfers.push((id, result));
    }
}
