//! Applying batches of events to a [`State`]: the batch driver (timestamps, linked
//! chains, one result per event) and [`prefetch`]. The per-event rules live in
//! [`accounts`] and [`transfers`], expiry in [`expiry`].
//!
//! Linked chains follow TigerBeetle: a chain is a run of events each flagged `linked`,
//! closed by the first event without the flag. When any event of a chain returns
//! anything but `ok` (including `exists`, as in TigerBeetle), every effect of the chain
//! is taken back, that event keeps its own result and the chain's other events get
//! `linked_event_failed`. An event flagged `linked` that is last in the batch gets
//! `linked_event_chain_open` and fails its chain.

mod accounts;
mod expiry;
mod transfers;

use crate::{Account, CreateAccountResult, CreateTransferResult, State, Transfer, TransferFlags};

pub use expiry::expire_pending_transfers;

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
///
/// Both lists are sorted ascending and free of duplicates and of the reserved ids 0 and
/// `u128::MAX`: sorted so that a store taking row locks (`SELECT … FOR UPDATE`) takes
/// them in one global order and two batches cannot deadlock on each other.
///
/// The debit and credit accounts of every pending transfer found for `transfer_ids`
/// must be loaded as well (a post or void may leave its account ids zero); a state
/// holding a pending transfer without its accounts breaks the contract and `apply`
/// panics on it.
pub fn prefetch(events: &[Transfer]) -> Prefetch {
    let mut transfer_ids = Vec::with_capacity(events.len() * 2);
    let mut account_ids = Vec::with_capacity(events.len() * 2);
    let resolving = TransferFlags::POST_PENDING_TRANSFER.union(TransferFlags::VOID_PENDING_TRANSFER);
    for event in events {
        transfer_ids.push(event.id);
        if event.flags.intersects(resolving) || event.pending_id != 0 {
            transfer_ids.push(event.pending_id);
        }
        account_ids.push(event.debit_account_id);
        account_ids.push(event.credit_account_id);
    }
    for ids in [&mut transfer_ids, &mut account_ids] {
        ids.retain(|id| *id != 0 && *id != u128::MAX);
        ids.sort_unstable();
        ids.dedup();
    }
    Prefetch { transfer_ids, account_ids }
}

/// Creates accounts, one result per event, in order.
pub fn create_accounts(state: &mut State, now: u64, events: &[Account]) -> Vec<CreateAccountResult> {
    run_batch(
        state,
        now,
        events,
        |event| event.flags.contains(crate::AccountFlags::LINKED),
        accounts::create_account,
        |_, _, _| {},
    )
}

/// Creates transfers, one result per event, in order.
///
/// Unlike TigerBeetle, which returns only the failures, the result list holds one
/// result for every event, `ok` included, so that callers index it directly.
pub fn create_transfers(state: &mut State, now: u64, events: &[Transfer]) -> Vec<CreateTransferResult> {
    state.transfers.reserve(events.len());
    run_batch(
        state,
        now,
        events,
        |event| event.flags.contains(TransferFlags::LINKED),
        transfers::create_transfer,
        |state, event, result| {
            if result.is_transient() {
                state.remember_failure(event.id, result);
            }
        },
    )
}

/// The result codes the batch driver itself produces.
trait BatchResult: Copy + Eq {
    const OK: Self;
    const LINKED_EVENT_FAILED: Self;
    const LINKED_EVENT_CHAIN_OPEN: Self;
}

impl BatchResult for CreateAccountResult {
    const OK: Self = Self::Ok;
    const LINKED_EVENT_FAILED: Self = Self::LinkedEventFailed;
    const LINKED_EVENT_CHAIN_OPEN: Self = Self::LinkedEventChainOpen;
}

impl BatchResult for CreateTransferResult {
    const OK: Self = Self::Ok;
    const LINKED_EVENT_FAILED: Self = Self::LinkedEventFailed;
    const LINKED_EVENT_CHAIN_OPEN: Self = Self::LinkedEventChainOpen;
}

/// Applies `events` in order, handling timestamps and linked chains.
///
/// `failed` runs after a failing event (and after its chain, if any, was rolled back), so
/// what it records survives the rollback.
fn run_batch<E, R: BatchResult>(
    state: &mut State,
    now: u64,
    events: &[E],
    is_linked: impl Fn(&E) -> bool,
    apply: impl Fn(&mut State, &E, u64) -> R,
    failed: impl Fn(&mut State, &E, R),
) -> Vec<R> {
    assert!(state.chain.is_none());
    let first_timestamp = state.reserve_timestamps(now, events.len());
    let mut results = vec![R::OK; events.len()];
    let mut chain_start: Option<usize> = None;
    let mut chain_broken = false;
    for (index, event) in events.iter().enumerate() {
        let timestamp = first_timestamp + index as u64;
        let linked = is_linked(event);
        if linked && chain_start.is_none() {
            chain_start = Some(index);
            state.chain_begin();
        }
        let result = if chain_broken {
            R::LINKED_EVENT_FAILED
        } else if linked && index == events.len() - 1 {
            R::LINKED_EVENT_CHAIN_OPEN
        } else {
            apply(state, event, timestamp)
        };
        results[index] = result;
        if result != R::OK && !chain_broken {
            if let Some(start) = chain_start {
                state.chain_rollback();
                results[start..index].fill(R::LINKED_EVENT_FAILED);
                chain_broken = true;
            }
            failed(state, event, result);
        }
        if !linked && chain_start.take().is_some() {
            if chain_broken {
                chain_broken = false;
            } else {
                state.chain_commit();
            }
        }
    }
    // The last event either closes its chain or fails it as open.
    assert!(state.chain.is_none());
    results
}
