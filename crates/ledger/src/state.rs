//! The in-memory state that `apply` reads and changes, and the record of what changed.
//!
//! A [`State`] holds only what one batch needs. The store loads into it every account,
//! transfer, pending status and failed id that the batch's events can refer to (see
//! [`crate::prefetch`]), runs the batch, then writes [`State::take_changes`] back in the
//! same database transaction. Anything absent from the state is, by contract, absent
//! from the ledger. The in-memory reference ledger and the tests use the same type with
//! everything loaded.

use std::collections::HashMap;

use crate::{Account, AccountBalance, CreateTransferResult, PendingStatus, Transfer};

/// The accounts, transfers, pending statuses and failed ids visible to a batch.
#[derive(Clone, Debug, Default)]
pub struct State {
    pub(crate) accounts: HashMap<u128, Account>,
    pub(crate) transfers: HashMap<u128, Transfer>,
    pub(crate) pending: HashMap<u128, PendingStatus>,
    pub(crate) failed: HashMap<u128, CreateTransferResult>,
    pub(crate) last_timestamp: u64,
    pub(crate) changes: Changes,
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

    /// Loads a stored account.
    pub fn insert_account(&mut self, account: Account) {
        self.accounts.insert(account.id, account);
    }

    /// Loads a stored transfer, with its status when it is a pending transfer.
    pub fn insert_transfer(&mut self, transfer: Transfer, pending: Option<PendingStatus>) {
        if let Some(status) = pending {
            self.pending.insert(transfer.id, status);
        }
        self.transfers.insert(transfer.id, transfer);
    }

    /// Loads a transfer id whose creation failed earlier.
    pub fn insert_failed_transfer(&mut self, id: u128, result: CreateTransferResult) {
        self.failed.insert(id, result);
    }

    pub fn account(&self, id: u128) -> Option<&Account> {
        self.accounts.get(&id)
    }

    pub fn transfer(&self, id: u128) -> Option<&Transfer> {
        self.transfers.get(&id)
    }

    pub fn pending_status(&self, id: u128) -> Option<PendingStatus> {
        self.pending.get(&id).copied()
    }

    pub fn failed_transfer(&self, id: u128) -> Option<CreateTransferResult> {
        self.failed.get(&id).copied()
    }

    /// The timestamp of the last event applied (or loaded as the clock's reading).
    pub fn last_timestamp(&self) -> u64 {
        self.last_timestamp
    }

    /// All accounts, in no particular order (for tests and the reference ledger).
    pub fn accounts(&self) -> impl Iterator<Item = &Account> {
        self.accounts.values()
    }

    /// All transfers, in no particular order.
    pub fn transfers(&self) -> impl Iterator<Item = &Transfer> {
        self.transfers.values()
    }

    /// Hands over what changed since the last call, leaving the record empty.
    pub fn take_changes(&mut self) -> Changes {
        std::mem::take(&mut self.changes)
    }
}
