//! The rules for one `create_transfers` event, in TigerBeetle's order of precedence:
//! single-phase and pending transfers, posting and voiding pending transfers, balancing
//! and closing transfers.

use crate::{
    AMOUNT_MAX, Account, AccountFlags, CreateTransferResult as R, NANOS_PER_SECOND, PendingStatus, State,
    Transfer, TransferFlags as F,
};

/// The latest expiry a pending transfer may have: timestamps are kept within 63 bits so
/// the stores can hold them as signed 64-bit integers.
const EXPIRES_AT_MAX: u64 = i64::MAX as u64;

/// When a pending transfer created at `timestamp` with `timeout` seconds expires; `None`
/// when it never does or the expiry would pass [`EXPIRES_AT_MAX`].
pub(crate) fn expires_at(timestamp: u64, timeout: u32) -> Option<u64> {
    if timeout == 0 {
        return None;
    }
    let at = timestamp.checked_add(u64::from(timeout) * NANOS_PER_SECOND)?;
    (at <= EXPIRES_AT_MAX).then_some(at)
}

/// `a + b`, when it stays within [`AMOUNT_MAX`].
#[inline(always)]
fn add(a: u64, b: u64) -> Option<u64> {
    a.checked_add(b).filter(|sum| *sum <= AMOUNT_MAX)
}

/// Validates one transfer and applies it, returning its result.
pub(super) fn create_transfer(state: &mut State, event: &Transfer, timestamp: u64) -> R {
    if event.timestamp != 0 {
        return R::TimestampMustBeZero;
    }
    // `reserved_flag` cannot happen: `TransferFlags` holds only known bits.
    if event.id == 0 {
        return R::IdMustNotBeZero;
    }
    if event.id == u128::MAX {
        return R::IdMustNotBeIntMax;
    }
    if let Some(existing) = state.transfers.get(&event.id) {
        return exists(event, existing);
    }
    if !state.failed.is_empty() && state.failed.contains_key(&event.id) {
        return R::IdAlreadyFailed;
    }

    let flags = event.flags;
    let pending = flags.contains(F::PENDING);
    let post = flags.contains(F::POST_PENDING_TRANSFER);
    let void = flags.contains(F::VOID_PENDING_TRANSFER);
    let resolve = post || void;
    let balancing = flags.intersects(F::BALANCING_DEBIT.union(F::BALANCING_CREDIT));
    let closing = flags.intersects(F::CLOSING_DEBIT.union(F::CLOSING_CREDIT));
    // Posting or voiding is its own kind of transfer: it cannot also reserve, balance or
    // close (a closing transfer is closed for good by posting it, reopened by voiding).
    if (pending && resolve) || (post && void) || (resolve && (balancing || closing)) {
        return R::FlagsAreMutuallyExclusive;
    }
    // A post or void may leave the account ids zero (they come from the pending
    // transfer); a reserved value is wrong everywhere.
    if !resolve && event.debit_account_id == 0 {
        return R::DebitAccountIdMustNotBeZero;
    }
    if event.debit_account_id == u128::MAX {
        return R::DebitAccountIdMustNotBeIntMax;
    }
    if !resolve && event.credit_account_id == 0 {
        return R::CreditAccountIdMustNotBeZero;
    }
    if event.credit_account_id == u128::MAX {
        return R::CreditAccountIdMustNotBeIntMax;
    }
    if event.debit_account_id == event.credit_account_id && event.debit_account_id != 0 {
        return R::AccountsMustBeDifferent;
    }
    if resolve {
        if event.pending_id == 0 {
            return R::PendingIdMustNotBeZero;
        }
        if event.pending_id == u128::MAX {
            return R::PendingIdMustNotBeIntMax;
        }
        if event.pending_id == event.id {
            return R::PendingIdMustBeDifferent;
        }
    } else if event.pending_id != 0 {
        return R::PendingIdMustBeZero;
    }
    if !pending && event.timeout != 0 {
        return R::TimeoutReservedForPendingTransfer;
    }
    if closing && !pending {
        return R::ClosingTransferMustBePending;
    }
    if !resolve && !balancing && !closing && event.amount == 0 {
        return R::AmountMustNotBeZero;
    }
    if resolve {
        return post_or_void(state, event, timestamp, post);
    }
    if event.ledger == 0 {
        return R::LedgerMustNotBeZero;
    }
    if event.code == 0 {
        return R::CodeMustNotBeZero;
    }
    create_single_or_pending(state, event, timestamp)
}

/// A single-phase or pending transfer whose fields are valid on their own.
fn create_single_or_pending(state: &mut State, event: &Transfer, timestamp: u64) -> R {
    let Some(debit) = state.accounts.get(&event.debit_account_id) else {
        return R::DebitAccountNotFound;
    };
    let Some(credit) = state.accounts.get(&event.credit_account_id) else {
        return R::CreditAccountNotFound;
    };
    let (mut debit, mut credit) = (debit.account, credit.account);
    if debit.ledger != credit.ledger {
        return R::AccountsMustHaveTheSameLedger;
    }
    if event.ledger != debit.ledger {
        return R::TransferMustHaveTheSameLedgerAsAccounts;
    }
    if debit.flags.contains(AccountFlags::CLOSED) {
        return R::DebitAccountAlreadyClosed;
    }
    if credit.flags.contains(AccountFlags::CLOSED) {
        return R::CreditAccountAlreadyClosed;
    }

    let flags = event.flags;
    let pending = flags.contains(F::PENDING);
    // Balances are each at most AMOUNT_MAX (63 bits), so these sums fit in u64.
    let debits = debit.debits_pending + debit.debits_posted;
    let credits = credit.credits_pending + credit.credits_posted;
    let mut amount = event.amount;
    if flags.contains(F::BALANCING_DEBIT) {
        amount = amount.min(debit.credits_posted.saturating_sub(debits));
    }
    if flags.contains(F::BALANCING_CREDIT) {
        amount = amount.min(credit.debits_posted.saturating_sub(credits));
    }

    if pending {
        if add(debit.debits_pending, amount).is_none() {
            return R::OverflowsDebitsPending;
        }
        if add(credit.credits_pending, amount).is_none() {
            return R::OverflowsCreditsPending;
        }
    } else {
        if add(debit.debits_posted, amount).is_none() {
            return R::OverflowsDebitsPosted;
        }
        if add(credit.credits_posted, amount).is_none() {
            return R::OverflowsCreditsPosted;
        }
    }
    if add(debits, amount).is_none() {
        return R::OverflowsDebits;
    }
    if add(credits, amount).is_none() {
        return R::OverflowsCredits;
    }
    if event.timeout != 0 && expires_at(timestamp, event.timeout).is_none() {
        return R::OverflowsTimeout;
    }
    // A balancing transfer that finds no room at all fails rather than moving nothing, as
    // TigerBeetle's `exceeds_*` documentation says ("+ 1 would exceed").
    let debit_limited = flags.contains(F::BALANCING_DEBIT)
        || debit.flags.contains(AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS);
    if debit_limited
        && (debits + amount > debit.credits_posted
            || (flags.contains(F::BALANCING_DEBIT) && debits >= debit.credits_posted))
    {
        return R::ExceedsCredits;
    }
    let credit_limited = flags.contains(F::BALANCING_CREDIT)
        || credit.flags.contains(AccountFlags::CREDITS_MUST_NOT_EXCEED_DEBITS);
    if credit_limited
        && (credits + amount > credit.debits_posted
            || (flags.contains(F::BALANCING_CREDIT) && credits >= credit.debits_posted))
    {
        return R::ExceedsDebits;
    }

    if pending {
        debit.debits_pending += amount;
        credit.credits_pending += amount;
        if flags.contains(F::CLOSING_DEBIT) {
            debit.flags = debit.flags.union(AccountFlags::CLOSED);
        }
        if flags.contains(F::CLOSING_CREDIT) {
            credit.flags = credit.flags.union(AccountFlags::CLOSED);
        }
        state.set_pending_status(event.id, PendingStatus::Pending);
    } else {
        debit.debits_posted += amount;
        credit.credits_posted += amount;
    }
    state.create_transfer(Transfer { amount, timestamp, ..*event });
    finish(state, debit, credit, timestamp);
    R::Ok
}

/// Posts or voids the pending transfer named by `event.pending_id`.
fn post_or_void(state: &mut State, event: &Transfer, timestamp: u64, post: bool) -> R {
    let Some(pending) = state.transfers.get(&event.pending_id) else {
        return R::PendingTransferNotFound;
    };
    let pending = *pending;
    if !pending.flags.contains(F::PENDING) {
        return R::PendingTransferNotPending;
    }
    if event.debit_account_id != 0 && event.debit_account_id != pending.debit_account_id {
        return R::PendingTransferHasDifferentDebitAccountId;
    }
    if event.credit_account_id != 0 && event.credit_account_id != pending.credit_account_id {
        return R::PendingTransferHasDifferentCreditAccountId;
    }
    if event.ledger != 0 && event.ledger != pending.ledger {
        return R::PendingTransferHasDifferentLedger;
    }
    if event.code != 0 && event.code != pending.code {
        return R::PendingTransferHasDifferentCode;
    }
    // Posting AMOUNT_MAX means "all of it" (TigerBeetle 0.16); voiding takes 0 or
    // AMOUNT_MAX for "all of it", or the pending amount itself.
    if post && event.amount != AMOUNT_MAX && event.amount > pending.amount {
        return R::ExceedsPendingTransferAmount;
    }
    if !post && event.amount != 0 && event.amount != AMOUNT_MAX && event.amount != pending.amount {
        return R::PendingTransferHasDifferentAmount;
    }
    let status = state.pending_status(pending.id).expect("a loaded pending transfer comes with its status");
    match status {
        PendingStatus::Posted => return R::PendingTransferAlreadyPosted,
        PendingStatus::Voided => return R::PendingTransferAlreadyVoided,
        PendingStatus::Expired => return R::PendingTransferExpired,
        PendingStatus::Pending => {}
    }
    // Due but not yet swept by `expire_pending_transfers`: it is expired all the same.
    if pending.timeout != 0 {
        let at = expires_at(pending.timestamp, pending.timeout).expect("a stored expiry fits");
        if at <= timestamp {
            return R::PendingTransferExpired;
        }
    }
    let mut debit =
        state.account(pending.debit_account_id).copied().expect("prefetch loads the pending's accounts");
    let mut credit =
        state.account(pending.credit_account_id).copied().expect("prefetch loads the pending's accounts");
    // A closed account takes no new postings, except that posting the closing transfer
    // itself makes its closure final. Voids are always allowed: they only release a
    // reservation, and voiding the closing transfer is how an account is reopened.
    if post {
        if debit.flags.contains(AccountFlags::CLOSED) && !pending.flags.contains(F::CLOSING_DEBIT) {
            return R::DebitAccountAlreadyClosed;
        }
        if credit.flags.contains(AccountFlags::CLOSED) && !pending.flags.contains(F::CLOSING_CREDIT) {
            return R::CreditAccountAlreadyClosed;
        }
    }
    let amount = if !post || event.amount == AMOUNT_MAX { pending.amount } else { event.amount };
    if post {
        if add(debit.debits_posted, amount).is_none() {
            return R::OverflowsDebitsPosted;
        }
        if add(credit.credits_posted, amount).is_none() {
            return R::OverflowsCreditsPosted;
        }
    }
    // The reservation is released whole; a partial post gives the rest back.
    debit.debits_pending =
        debit.debits_pending.checked_sub(pending.amount).expect("pending amount was reserved");
    credit.credits_pending =
        credit.credits_pending.checked_sub(pending.amount).expect("pending amount was reserved");
    if post {
        debit.debits_posted += amount;
        credit.credits_posted += amount;
        state.set_pending_status(pending.id, PendingStatus::Posted);
    } else {
        reopen_if_closing(&pending, &mut debit, &mut credit);
        state.set_pending_status(pending.id, PendingStatus::Voided);
    }
    // Posting a part never breaks a limit: the whole amount was checked when reserved.
    debug_assert!(
        !debit.flags.contains(AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS)
            || debit.debits_pending + debit.debits_posted <= debit.credits_posted
    );
    let inherit = |value: u128, from: u128| if value == 0 { from } else { value };
    state.create_transfer(Transfer {
        id: event.id,
        debit_account_id: pending.debit_account_id,
        credit_account_id: pending.credit_account_id,
        amount,
        pending_id: pending.id,
        user_data_128: inherit(event.user_data_128, pending.user_data_128),
        user_data_64: if event.user_data_64 == 0 { pending.user_data_64 } else { event.user_data_64 },
        user_data_32: if event.user_data_32 == 0 { pending.user_data_32 } else { event.user_data_32 },
        timeout: 0,
        ledger: pending.ledger,
        code: pending.code,
        flags: event.flags,
        timestamp,
    });
    finish(state, debit, credit, timestamp);
    R::Ok
}

/// Voiding or expiring a closing transfer reopens the account it closed.
pub(crate) fn reopen_if_closing(pending: &Transfer, debit: &mut Account, credit: &mut Account) {
    if pending.flags.contains(F::CLOSING_DEBIT) {
        debit.flags = debit.flags.difference(AccountFlags::CLOSED);
    }
    if pending.flags.contains(F::CLOSING_CREDIT) {
        credit.flags = credit.flags.difference(AccountFlags::CLOSED);
    }
}

/// Writes both accounts back and their history rows.
pub(crate) fn finish(state: &mut State, debit: Account, credit: Account, timestamp: u64) {
    state.write_account(debit);
    state.write_account(credit);
    state.push_balance(&debit, timestamp);
    state.push_balance(&credit, timestamp);
}

/// The result for an id that already exists: the first field that differs, else
/// `exists`. A field the event leaves to be filled in (zero on a post or void, the "all
/// of it" amounts) matches whatever was filled in; a balancing transfer matches when
/// its amount would have allowed what was actually transferred.
fn exists(event: &Transfer, existing: &Transfer) -> R {
    if event.flags != existing.flags {
        return R::ExistsWithDifferentFlags;
    }
    if event.pending_id != existing.pending_id {
        return R::ExistsWithDifferentPendingId;
    }
    if event.timeout != existing.timeout {
        return R::ExistsWithDifferentTimeout;
    }
    let flags = event.flags;
    let post = flags.contains(F::POST_PENDING_TRANSFER);
    let void = flags.contains(F::VOID_PENDING_TRANSFER);
    let resolve = post || void;
    let differs = |given: u128, stored: u128| given != stored && !(resolve && given == 0);
    if differs(event.debit_account_id, existing.debit_account_id) {
        return R::ExistsWithDifferentDebitAccountId;
    }
    if differs(event.credit_account_id, existing.credit_account_id) {
        return R::ExistsWithDifferentCreditAccountId;
    }
    let amount_differs = if flags.intersects(F::BALANCING_DEBIT.union(F::BALANCING_CREDIT)) {
        event.amount < existing.amount
    } else if post {
        event.amount != AMOUNT_MAX && event.amount != existing.amount
    } else if void {
        event.amount != 0 && event.amount != AMOUNT_MAX && event.amount != existing.amount
    } else {
        event.amount != existing.amount
    };
    if amount_differs {
        return R::ExistsWithDifferentAmount;
    }
    if differs(event.user_data_128, existing.user_data_128) {
        return R::ExistsWithDifferentUserData128;
    }
    if differs(u128::from(event.user_data_64), u128::from(existing.user_data_64)) {
        return R::ExistsWithDifferentUserData64;
    }
    if differs(u128::from(event.user_data_32), u128::from(existing.user_data_32)) {
        return R::ExistsWithDifferentUserData32;
    }
    if differs(u128::from(event.ledger), u128::from(existing.ledger)) {
        return R::ExistsWithDifferentLedger;
    }
    if differs(u128::from(event.code), u128::from(existing.code)) {
        return R::ExistsWithDifferentCode;
    }
    R::Exists
}
