//! What a ledger writer remembers between batches, so that a batch reads only what it
//! has never seen: accounts, transfers a batch may name again (pending ones, and those
//! loaded once), and failed transfer ids, each in a bounded map; and the ledger clock as
//! the writer last wrote it.
//!
//! The clock is the fence. Every batch reads (on PostgreSQL: locks) the clock row first,
//! and every batch that changes the ledger writes it with a strictly larger value. So if
//! the clock read equals the clock this writer last committed, nobody else has changed
//! the ledger since, and everything remembered is what the database holds; if it differs
//! (another process wrote, or a commit of ours ended in doubt), everything is forgotten
//! and read again. Memory is only a cache of the database: a restart, or a second process
//! on the same PostgreSQL, just starts from an empty one.
//!
//! What a batch learned is staged and becomes memory only once the batch has committed
//! ([`Memory::settle`]); a failed attempt's stage is dropped ([`Memory::forget`]).

use std::collections::VecDeque;

use ledger::{Account, CreateTransferResult, IdMap, PendingStatus, Transfer};

/// Accounts remembered at most (~150 bytes each with the map's overhead: ~20 MB).
pub(crate) const ACCOUNTS_MAX: usize = 131_072;

/// Transfers remembered at most: pending ones until well after they resolve, and those a
/// batch loaded (~170 bytes each: ~11 MB).
pub(crate) const TRANSFERS_MAX: usize = 65_536;

/// Failed transfer ids remembered at most.
pub(crate) const FAILED_MAX: usize = 65_536;

/// A map of at most `max` entries that forgets the oldest insertion first.
#[derive(Debug)]
pub(crate) struct Bounded<V> {
    entries: IdMap<V>,
    order: VecDeque<u128>,
    max: usize,
}

impl<V> Bounded<V> {
    pub(crate) fn new(max: usize) -> Self {
        Self { entries: IdMap::default(), order: VecDeque::new(), max }
    }

    pub(crate) fn get(&self, id: u128) -> Option<&V> {
        self.entries.get(&id)
    }

    /// Sets `id`'s value; a new id may push out the oldest.
    pub(crate) fn insert(&mut self, id: u128, value: V) {
        if self.entries.insert(id, value).is_none() {
            self.order.push_back(id);
            if self.order.len() > self.max {
                let oldest = self.order.pop_front().expect("more than max entries");
                self.entries.remove(&oldest);
            }
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    fn clear(&mut self) {
        self.entries.clear();
        self.order.clear();
    }

    /// Every entry, in no particular order.
    #[cfg(test)]
    pub(crate) fn iter(&self) -> impl Iterator<Item = (u128, &V)> {
        self.entries.iter().map(|(id, value)| (*id, value))
    }
}

/// What one batch learned, to remember once it has committed.
#[derive(Debug, Default)]
pub(crate) struct Learned {
    /// Every account the batch held, as the batch left it.
    pub accounts: Vec<Account>,
    /// Transfers to remember, with their pending status as the batch left it.
    pub transfers: Vec<(Transfer, Option<PendingStatus>)>,
    pub failed: Vec<(u128, CreateTransferResult)>,
    /// The clock as the batch wrote it (or read it, when it wrote nothing).
    pub clock: u64,
}

/// A writer's memory of the ledger; see the module's comment.
#[derive(Debug)]
pub(crate) struct Memory {
    /// The clock as this writer last committed it; `None` until it has.
    clock: Option<u64>,
    pub(crate) accounts: Bounded<Account>,
    pub(crate) transfers: Bounded<(Transfer, Option<PendingStatus>)>,
    pub(crate) failed: Bounded<CreateTransferResult>,
    staged: Option<Learned>,
}

impl Default for Memory {
    fn default() -> Self {
        Self {
            clock: None,
            accounts: Bounded::new(ACCOUNTS_MAX),
            transfers: Bounded::new(TRANSFERS_MAX),
            failed: Bounded::new(FAILED_MAX),
            staged: None,
        }
    }
}

impl Memory {
    /// Starts a batch that read `clock`: forgets everything unless it is this writer's.
    pub(crate) fn open(&mut self, clock: u64) {
        self.staged = None;
        if self.clock != Some(clock) {
            if self.clock.is_some() {
                tracing::debug!(remembered = ?self.clock, read = clock, "the ledger changed elsewhere; forgetting");
            }
            self.accounts.clear();
            self.transfers.clear();
            self.failed.clear();
            self.clock = None;
        }
    }

    /// Keeps what the open batch learned until [`Memory::settle`] or [`Memory::forget`].
    pub(crate) fn stage(&mut self, learned: Learned) {
        self.staged = Some(learned);
    }

    /// The open batch committed: what it learned is now what the database holds.
    pub(crate) fn settle(&mut self) {
        let Some(learned) = self.staged.take() else { return };
        for account in learned.accounts {
            self.accounts.insert(account.id, account);
        }
        for (transfer, status) in learned.transfers {
            self.transfers.insert(transfer.id, (transfer, status));
        }
        for (id, result) in learned.failed {
            self.failed.insert(id, result);
        }
        self.clock = Some(learned.clock);
    }

    /// The open batch did not commit (or may not have): drop what it learned, and trust
    /// nothing until the clock is read again.
    pub(crate) fn forget(&mut self) {
        self.staged = None;
        self.clock = None;
    }
}
