//! Applying batches of events to a [`State`]. (Being written: see the ledger issue.)

use crate::{Account, CreateAccountResult, CreateTransferResult, State, Transfer};

/// The ids a batch of transfers can refer to, which the store must load into the
/// [`State`] before applying it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Prefetch {
    /// Transfer ids to load (with pending status) and to look up among failed ids: the
    /// events' own ids and their `pending_id`s.
    pub transfer_ids: Vec<u128>,
    /// Account ids to load: the events' debit and credit accounts. The accounts of the
    /// pending transfers loaded for `transfer_ids` must be loaded too.
    pub account_ids: Vec<u128>,
}

/// What the store must load before `create_transfers(events)`.
pub fn prefetch(events: &[Transfer]) -> Prefetch {
    let _ = events;
    unimplemented!("ledger core apply is being written")
}

/// Creates accounts, one result per event, in order.
pub fn create_accounts(state: &mut State, now: u64, events: &[Account]) -> Vec<CreateAccountResult> {
    let _ = (state, now, events);
    unimplemented!("ledger core apply is being written")
}

/// Creates transfers, one result per event, in order.
pub fn create_transfers(state: &mut State, now: u64, events: &[Transfer]) -> Vec<CreateTransferResult> {
    let _ = (state, now, events);
    unimplemented!("ledger core apply is being written")
}

/// Expires the given pending transfers that are due at `now`, releasing their amounts.
/// Returns how many expired.
pub fn expire_pending_transfers(state: &mut State, now: u64, ids: &[u128]) -> usize {
    let _ = (state, now, ids);
    unimplemented!("ledger core apply is being written")
}
