//! The rules for one `create_accounts` event, in TigerBeetle's order of precedence.

use crate::{Account, AccountFlags, CreateAccountResult as R, State};

/// Validates one account and creates it, returning its result.
pub(super) fn create_account(state: &mut State, event: &Account, timestamp: u64) -> R {
    if event.timestamp != 0 {
        return R::TimestampMustBeZero;
    }
    // `reserved_flag` cannot happen: `AccountFlags` holds only known bits.
    if event.id == 0 {
        return R::IdMustNotBeZero;
    }
    if event.id == u128::MAX {
        return R::IdMustNotBeIntMax;
    }
    if let Some(existing) = state.account(event.id) {
        return exists(event, existing);
    }
    let limits =
        AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS.union(AccountFlags::CREDITS_MUST_NOT_EXCEED_DEBITS);
    if event.flags.contains(limits) {
        return R::FlagsAreMutuallyExclusive;
    }
    if event.debits_pending != 0 {
        return R::DebitsPendingMustBeZero;
    }
    if event.debits_posted != 0 {
        return R::DebitsPostedMustBeZero;
    }
    if event.credits_pending != 0 {
        return R::CreditsPendingMustBeZero;
    }
    if event.credits_posted != 0 {
        return R::CreditsPostedMustBeZero;
    }
    if event.ledger == 0 {
        return R::LedgerMustNotBeZero;
    }
    if event.code == 0 {
        return R::CodeMustNotBeZero;
    }
    state.create_account(Account { timestamp, ..*event });
    R::Ok
}

/// The result for an id that already exists: the first field that differs, else
/// `exists`.
///
/// The `closed` flag is left out of the comparison: it is the one flag the ledger
/// changes after creation (through closing transfers), and a client retrying the
/// creation of an account that has since been closed is still retrying the same event.
fn exists(event: &Account, existing: &Account) -> R {
    let creation_flags = |flags: AccountFlags| flags.difference(AccountFlags::CLOSED);
    if creation_flags(event.flags) != creation_flags(existing.flags) {
        return R::ExistsWithDifferentFlags;
    }
    if event.user_data_128 != existing.user_data_128 {
        return R::ExistsWithDifferentUserData128;
    }
    if event.user_data_64 != existing.user_data_64 {
        return R::ExistsWithDifferentUserData64;
    }
    if event.user_data_32 != existing.user_data_32 {
        return R::ExistsWithDifferentUserData32;
    }
    if event.ledger != existing.ledger {
        return R::ExistsWithDifferentLedger;
    }
    if event.code != existing.code {
        return R::ExistsWithDifferentCode;
    }
    R::Exists
}
