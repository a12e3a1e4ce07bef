//! Expiring pending transfers whose timeout has passed.

use super::transfers::{expires_at, finish, reopen_if_closing};
use crate::{PendingStatus, State};

/// Expires the given pending transfers that are due at `now`, releasing their amounts.
/// Returns how many expired.
///
/// Ids that are unknown, not pending, already resolved or not yet due are ignored, so
/// the store can pass every candidate from its expiry index. Each expiry takes a
/// timestamp of its own (after `state.last_timestamp`, no earlier than `now`), which
/// stamps the history rows of the accounts it touches.
pub fn expire_pending_transfers(state: &mut State, now: u64, ids: &[u128]) -> usize {
    assert!(state.chain.is_none());
    let mut expired = 0;
    for id in ids {
        let Some(PendingStatus::Pending) = state.pending_status(*id) else { continue };
        let pending = *state.transfer(*id).expect("a pending status comes with its transfer");
        let Some(at) = expires_at(pending.timestamp, pending.timeout) else { continue };
        if at > now {
            continue;
        }
        let timestamp = state.reserve_timestamps(now, 1);
        let mut debit =
            state.account(pending.debit_account_id).copied().expect("the store loads the accounts");
        let mut credit =
            state.account(pending.credit_account_id).copied().expect("the store loads the accounts");
        debit.debits_pending = debit.debits_pending.checked_sub(pending.amount).expect("amount was reserved");
        credit.credits_pending =
            credit.credits_pending.checked_sub(pending.amount).expect("amount was reserved");
        reopen_if_closing(&pending, &mut debit, &mut credit);
        state.set_pending_status(*id, PendingStatus::Expired);
        finish(state, debit, credit, timestamp);
        expired += 1;
    }
    expired
}
