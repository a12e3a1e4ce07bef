//! Hand-written cases: every result code of both enums is produced at least once, plus
//! precedence cases where an event is wrong in more than one way.

use std::collections::BTreeSet;

use ledger::{
    AMOUNT_MAX, Account, AccountFlags, CreateAccountResult as A, CreateTransferResult as T, NANOS_PER_SECOND,
    PendingStatus, State, Transfer, TransferFlags as F, create_accounts, create_transfers,
    expire_pending_transfers,
};

const START: u64 = 1_000;

fn account(id: u128, ledger: u32, flags: AccountFlags) -> Account {
    Account { id, ledger, code: 10, flags, ..Account::default() }
}

fn transfer(id: u128, debit: u128, credit: u128, amount: u64) -> Transfer {
    Transfer {
        id,
        debit_account_id: debit,
        credit_account_id: credit,
        amount,
        ledger: 1,
        code: 1,
        ..Transfer::default()
    }
}

fn with(t: Transfer, change: impl FnOnce(&mut Transfer)) -> Transfer {
    let mut t = t;
    change(&mut t);
    t
}

fn resolve(id: u128, pending_id: u128, flag: F) -> Transfer {
    Transfer { id, pending_id, flags: flag, ..Transfer::default() }
}

/// Accounts 1, 2 (ledger 1), 3 (ledger 2), 4 (wallet), 5 (credits limited), 6 (history),
/// 7 (closed by pending 900), 8 to 11 (near AMOUNT_MAX posted, pending); pending transfers 910 (open),
/// 911 (timeout 1 s), 912 (posted by 913), 914 (voided by 915); transfer 920 failed.
fn base() -> State {
    let mut state = State::new(START);
    let accounts = [
        account(1, 1, AccountFlags::empty()),
        account(2, 1, AccountFlags::empty()),
        account(3, 2, AccountFlags::empty()),
        account(4, 1, AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS),
        account(5, 1, AccountFlags::CREDITS_MUST_NOT_EXCEED_DEBITS),
        account(6, 1, AccountFlags::HISTORY),
        account(7, 1, AccountFlags::empty()),
        account(8, 1, AccountFlags::empty()),
        account(9, 1, AccountFlags::empty()),
        account(10, 1, AccountFlags::empty()),
        account(11, 1, AccountFlags::empty()),
    ];
    assert!(create_accounts(&mut state, START, &accounts).iter().all(|r| *r == A::Ok));
    let near_max = AMOUNT_MAX - 10;
    let setup = [
        with(transfer(900, 7, 1, 0), |t| t.flags = F::PENDING.union(F::CLOSING_DEBIT)),
        transfer(901, 8, 9, near_max),
        with(transfer(902, 10, 11, near_max), |t| t.flags = F::PENDING),
        with(transfer(910, 1, 2, 100), |t| t.flags = F::PENDING),
        with(transfer(911, 1, 2, 100), |t| {
            t.flags = F::PENDING;
            t.timeout = 1;
        }),
        with(transfer(912, 1, 2, 100), |t| t.flags = F::PENDING),
        resolve(913, 912, F::POST_PENDING_TRANSFER),
        with(transfer(914, 1, 2, 100), |t| t.flags = F::PENDING),
        resolve(915, 914, F::VOID_PENDING_TRANSFER),
        transfer(920, 1, 50, 1),
    ];
    let results = create_transfers(&mut state, START, &setup);
    assert_eq!(&results[..9], &[T::Ok; 9]);
    assert_eq!(results[9], T::CreditAccountNotFound);
    assert!(state.account(7).unwrap().flags.contains(AccountFlags::CLOSED));
    state.check_invariants().unwrap();
    state
}

struct Case {
    name: &'static str,
    /// Nanoseconds after the base state's clock.
    later: u64,
    events: Vec<Transfer>,
    expected: Vec<T>,
}

fn case(name: &'static str, event: Transfer, expected: T) -> Case {
    Case { name, later: 0, events: vec![event], expected: vec![expected] }
}

fn transfer_cases() -> Vec<Case> {
    let plain = transfer(1000, 1, 2, 5);
    let existing = transfer(901, 8, 9, AMOUNT_MAX - 10);
    let post = |pending_id| resolve(1000, pending_id, F::POST_PENDING_TRANSFER);
    let linked = with(transfer(1001, 1, 2, 1), |t| t.flags = F::LINKED);
    vec![
        case("plain", plain, T::Ok),
        Case {
            name: "linked chain fails whole",
            later: 0,
            events: vec![linked, with(plain, |t| t.amount = 0)],
            expected: vec![T::LinkedEventFailed, T::AmountMustNotBeZero],
        },
        Case {
            name: "open chain",
            later: 0,
            events: vec![plain, linked],
            expected: vec![T::Ok, T::LinkedEventChainOpen],
        },
        case("timestamp", with(plain, |t| t.timestamp = 1), T::TimestampMustBeZero),
        case("id zero", with(plain, |t| t.id = 0), T::IdMustNotBeZero),
        case("id max", with(plain, |t| t.id = u128::MAX), T::IdMustNotBeIntMax),
        case("exists flags", with(existing, |t| t.flags = F::PENDING), T::ExistsWithDifferentFlags),
        case("exists pending_id", with(existing, |t| t.pending_id = 3), T::ExistsWithDifferentPendingId),
        case("exists timeout", with(existing, |t| t.timeout = 3), T::ExistsWithDifferentTimeout),
        case(
            "exists debit",
            with(existing, |t| t.debit_account_id = 2),
            T::ExistsWithDifferentDebitAccountId,
        ),
        case(
            "exists credit",
            with(existing, |t| t.credit_account_id = 2),
            T::ExistsWithDifferentCreditAccountId,
        ),
        case("exists amount", with(existing, |t| t.amount = 1), T::ExistsWithDifferentAmount),
        case("exists ud128", with(existing, |t| t.user_data_128 = 1), T::ExistsWithDifferentUserData128),
        case("exists ud64", with(existing, |t| t.user_data_64 = 1), T::ExistsWithDifferentUserData64),
        case("exists ud32", with(existing, |t| t.user_data_32 = 1), T::ExistsWithDifferentUserData32),
        case("exists ledger", with(existing, |t| t.ledger = 2), T::ExistsWithDifferentLedger),
        case("exists code", with(existing, |t| t.code = 2), T::ExistsWithDifferentCode),
        case("exists", existing, T::Exists),
        case("post exists with zero fields", resolve(913, 912, F::POST_PENDING_TRANSFER), T::Exists),
        case("id already failed", transfer(920, 1, 50, 1), T::IdAlreadyFailed),
        case(
            "post and pending",
            with(post(910), |t| t.flags = t.flags.union(F::PENDING)),
            T::FlagsAreMutuallyExclusive,
        ),
        case("debit zero", with(plain, |t| t.debit_account_id = 0), T::DebitAccountIdMustNotBeZero),
        case("debit max", with(plain, |t| t.debit_account_id = u128::MAX), T::DebitAccountIdMustNotBeIntMax),
        case("credit zero", with(plain, |t| t.credit_account_id = 0), T::CreditAccountIdMustNotBeZero),
        case(
            "credit max",
            with(plain, |t| t.credit_account_id = u128::MAX),
            T::CreditAccountIdMustNotBeIntMax,
        ),
        case("same accounts", with(plain, |t| t.credit_account_id = 1), T::AccountsMustBeDifferent),
        case("pending_id on plain", with(plain, |t| t.pending_id = 910), T::PendingIdMustBeZero),
        case("post without pending_id", post(0), T::PendingIdMustNotBeZero),
        case("post pending_id max", post(u128::MAX), T::PendingIdMustNotBeIntMax),
        case("post itself", post(1000), T::PendingIdMustBeDifferent),
        case("timeout on plain", with(plain, |t| t.timeout = 1), T::TimeoutReservedForPendingTransfer),
        case(
            "closing not pending",
            with(plain, |t| t.flags = F::CLOSING_DEBIT),
            T::ClosingTransferMustBePending,
        ),
        case("zero amount", with(plain, |t| t.amount = 0), T::AmountMustNotBeZero),
        case("zero ledger", with(plain, |t| t.ledger = 0), T::LedgerMustNotBeZero),
        case("zero code", with(plain, |t| t.code = 0), T::CodeMustNotBeZero),
        case("no debit account", with(plain, |t| t.debit_account_id = 50), T::DebitAccountNotFound),
        case("no credit account", with(plain, |t| t.credit_account_id = 50), T::CreditAccountNotFound),
        case("ledgers differ", with(plain, |t| t.credit_account_id = 3), T::AccountsMustHaveTheSameLedger),
        case(
            "transfer ledger differs",
            with(plain, |t| t.ledger = 2),
            T::TransferMustHaveTheSameLedgerAsAccounts,
        ),
        case("pending not found", post(999), T::PendingTransferNotFound),
        case("pending not pending", post(901), T::PendingTransferNotPending),
        case(
            "post other debit",
            with(post(910), |t| t.debit_account_id = 3),
            T::PendingTransferHasDifferentDebitAccountId,
        ),
        case(
            "post other credit",
            with(post(910), |t| t.credit_account_id = 3),
            T::PendingTransferHasDifferentCreditAccountId,
        ),
        case("post other ledger", with(post(910), |t| t.ledger = 2), T::PendingTransferHasDifferentLedger),
        case("post other code", with(post(910), |t| t.code = 2), T::PendingTransferHasDifferentCode),
        case("post too much", with(post(910), |t| t.amount = 101), T::ExceedsPendingTransferAmount),
        case("post part", with(post(910), |t| t.amount = 40), T::Ok),
        case("post all", with(post(910), |t| t.amount = AMOUNT_MAX), T::Ok),
        case(
            "void part",
            with(resolve(1000, 910, F::VOID_PENDING_TRANSFER), |t| t.amount = 40),
            T::PendingTransferHasDifferentAmount,
        ),
        case("void", resolve(1000, 910, F::VOID_PENDING_TRANSFER), T::Ok),
        case("post posted", post(912), T::PendingTransferAlreadyPosted),
        case("post voided", post(914), T::PendingTransferAlreadyVoided),
        Case {
            name: "post due",
            later: NANOS_PER_SECOND,
            events: vec![post(911)],
            expected: vec![T::PendingTransferExpired],
        },
        Case {
            name: "post before due",
            later: NANOS_PER_SECOND / 2,
            events: vec![post(911)],
            expected: vec![T::Ok],
        },
        case("debit closed", transfer(1000, 7, 1, 1), T::DebitAccountAlreadyClosed),
        case("credit closed", transfer(1000, 1, 7, 1), T::CreditAccountAlreadyClosed),
        case("void closing", resolve(1000, 900, F::VOID_PENDING_TRANSFER), T::Ok),
        case("post closing", resolve(1000, 900, F::POST_PENDING_TRANSFER), T::Ok),
        case(
            "overflows debits pending",
            with(transfer(1000, 10, 1, 20), |t| t.flags = F::PENDING),
            T::OverflowsDebitsPending,
        ),
        case(
            "overflows credits pending",
            with(transfer(1000, 1, 11, 20), |t| t.flags = F::PENDING),
            T::OverflowsCreditsPending,
        ),
        case("overflows debits posted", transfer(1000, 8, 1, 20), T::OverflowsDebitsPosted),
        case("overflows credits posted", transfer(1000, 1, 9, 20), T::OverflowsCreditsPosted),
        case("overflows debits", transfer(1000, 10, 1, 20), T::OverflowsDebits),
        case("overflows credits", transfer(1000, 1, 11, 20), T::OverflowsCredits),
        Case {
            name: "overflows timeout",
            later: 5_000_000_000_000_000_000,
            events: vec![with(transfer(1000, 6, 2, 1), |t| {
                t.flags = F::PENDING;
                t.timeout = u32::MAX;
            })],
            expected: vec![T::OverflowsTimeout],
        },
        case("wallet overdraft", transfer(1000, 4, 1, 1), T::ExceedsCredits),
        case("credit limit", transfer(1000, 1, 5, 1), T::ExceedsDebits),
        case(
            "balancing with no room",
            with(transfer(1000, 4, 1, 5), |t| t.flags = F::BALANCING_DEBIT),
            T::ExceedsCredits,
        ),
        case(
            "balancing credit no room",
            with(transfer(1000, 1, 5, 5), |t| t.flags = F::BALANCING_CREDIT),
            T::ExceedsDebits,
        ),
        Case {
            name: "balancing clamps",
            later: 0,
            events: vec![
                transfer(1000, 1, 4, 3),
                with(transfer(1001, 4, 1, 5), |t| t.flags = F::BALANCING_DEBIT),
            ],
            expected: vec![T::Ok, T::Ok],
        },
        // Precedence: wrong in two ways, the earlier code wins.
        case(
            "timestamp before id",
            with(plain, |t| {
                t.timestamp = 1;
                t.id = 0;
            }),
            T::TimestampMustBeZero,
        ),
        case("exists before validity", with(existing, |t| t.amount = 0), T::ExistsWithDifferentAmount),
        case(
            "exists amount before code",
            with(existing, |t| {
                t.amount = 1;
                t.code = 9;
            }),
            T::ExistsWithDifferentAmount,
        ),
        case(
            "debit zero before credit zero",
            with(plain, |t| {
                t.debit_account_id = 0;
                t.credit_account_id = 0;
            }),
            T::DebitAccountIdMustNotBeZero,
        ),
        case(
            "ledger zero before code zero",
            with(plain, |t| {
                t.ledger = 0;
                t.code = 0;
            }),
            T::LedgerMustNotBeZero,
        ),
        case(
            "not found before ledger mismatch",
            with(plain, |t| {
                t.debit_account_id = 50;
                t.ledger = 2;
            }),
            T::DebitAccountNotFound,
        ),
        case("closed before overflow", transfer(1000, 7, 8, 20), T::DebitAccountAlreadyClosed),
        case("overflow before limit", transfer(1000, 4, 9, AMOUNT_MAX), T::OverflowsCreditsPosted),
        case("already posted before expired", post(912), T::PendingTransferAlreadyPosted),
        case(
            "different code before amount",
            with(post(910), |t| {
                t.code = 2;
                t.amount = 500;
            }),
            T::PendingTransferHasDifferentCode,
        ),
    ]
}

fn account_cases() -> Vec<(&'static str, Vec<Account>, Vec<A>)> {
    let fresh = account(100, 1, AccountFlags::empty());
    let existing = account(1, 1, AccountFlags::empty());
    let changed = |change: fn(&mut Account)| {
        let mut a = existing;
        change(&mut a);
        vec![a]
    };
    let mut linked = fresh;
    linked.flags = AccountFlags::LINKED;
    let mut other = fresh;
    other.id = 101;
    vec![
        ("ok", vec![fresh], vec![A::Ok]),
        (
            "chain fails",
            vec![linked, {
                let mut a = other;
                a.ledger = 0;
                a
            }],
            vec![A::LinkedEventFailed, A::LedgerMustNotBeZero],
        ),
        ("chain open", vec![linked], vec![A::LinkedEventChainOpen]),
        ("timestamp", vec![Account { timestamp: 1, ..fresh }], vec![A::TimestampMustBeZero]),
        ("id zero", vec![Account { id: 0, ..fresh }], vec![A::IdMustNotBeZero]),
        ("id max", vec![Account { id: u128::MAX, ..fresh }], vec![A::IdMustNotBeIntMax]),
        ("exists flags", changed(|a| a.flags = AccountFlags::HISTORY), vec![A::ExistsWithDifferentFlags]),
        ("exists ud128", changed(|a| a.user_data_128 = 1), vec![A::ExistsWithDifferentUserData128]),
        ("exists ud64", changed(|a| a.user_data_64 = 1), vec![A::ExistsWithDifferentUserData64]),
        ("exists ud32", changed(|a| a.user_data_32 = 1), vec![A::ExistsWithDifferentUserData32]),
        ("exists ledger", changed(|a| a.ledger = 2), vec![A::ExistsWithDifferentLedger]),
        ("exists code", changed(|a| a.code = 2), vec![A::ExistsWithDifferentCode]),
        ("exists", vec![existing], vec![A::Exists]),
        ("exists though closed since", vec![account(7, 1, AccountFlags::empty())], vec![A::Exists]),
        (
            "exclusive flags",
            vec![Account {
                flags: AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS
                    .union(AccountFlags::CREDITS_MUST_NOT_EXCEED_DEBITS),
                ..fresh
            }],
            vec![A::FlagsAreMutuallyExclusive],
        ),
        ("debits pending", vec![Account { debits_pending: 1, ..fresh }], vec![A::DebitsPendingMustBeZero]),
        ("debits posted", vec![Account { debits_posted: 1, ..fresh }], vec![A::DebitsPostedMustBeZero]),
        ("credits pending", vec![Account { credits_pending: 1, ..fresh }], vec![A::CreditsPendingMustBeZero]),
        ("credits posted", vec![Account { credits_posted: 1, ..fresh }], vec![A::CreditsPostedMustBeZero]),
        ("ledger", vec![Account { ledger: 0, ..fresh }], vec![A::LedgerMustNotBeZero]),
        ("code", vec![Account { code: 0, ..fresh }], vec![A::CodeMustNotBeZero]),
        (
            "precedence: id before balances",
            vec![Account { id: 0, credits_posted: 1, ..fresh }],
            vec![A::IdMustNotBeZero],
        ),
        (
            "precedence: exists before balances",
            vec![Account { debits_posted: 1, ..existing }],
            vec![A::Exists],
        ),
        (
            "precedence: ledger before code",
            vec![Account { ledger: 0, code: 0, ..fresh }],
            vec![A::LedgerMustNotBeZero],
        ),
    ]
}

/// Codes that no event can produce, with the reason; everything else must be covered.
const UNREACHABLE_TRANSFER: &[T] = &[T::ReservedFlag]; // Flag types hold only known bits.
const UNREACHABLE_ACCOUNT: &[A] = &[A::ReservedFlag];

#[test]
fn every_transfer_result_code_is_produced() {
    let base = base();
    let mut seen = BTreeSet::new();
    for case in transfer_cases() {
        let mut state = base.clone();
        let now = base.last_timestamp() + case.later;
        let results = create_transfers(&mut state, now, &case.events);
        assert_eq!(results, case.expected, "case {:?}", case.name);
        state.check_invariants().unwrap_or_else(|e| panic!("case {:?}: {e}", case.name));
        seen.extend(results);
    }
    let missing: Vec<_> =
        T::ALL.iter().filter(|code| !seen.contains(code) && !UNREACHABLE_TRANSFER.contains(code)).collect();
    assert!(missing.is_empty(), "never produced: {missing:?}");
}

#[test]
fn every_account_result_code_is_produced() {
    let base = base();
    let mut seen = BTreeSet::new();
    for (name, events, expected) in account_cases() {
        let mut state = base.clone();
        let results = create_accounts(&mut state, START, &events);
        assert_eq!(results, expected, "case {name:?}");
        seen.extend(results);
    }
    let missing: Vec<_> =
        A::ALL.iter().filter(|code| !seen.contains(code) && !UNREACHABLE_ACCOUNT.contains(code)).collect();
    assert!(missing.is_empty(), "never produced: {missing:?}");
}

#[test]
fn effects_of_two_phase_balancing_and_closing() {
    let mut state = base();
    // Partial post: 40 posted, the other 60 released.
    let before = *state.account(1).unwrap();
    let post = with(resolve(1000, 910, F::POST_PENDING_TRANSFER), |t| t.amount = 40);
    assert_eq!(create_transfers(&mut state, START, &[post]), vec![T::Ok]);
    let after = *state.account(1).unwrap();
    assert_eq!(after.debits_pending, before.debits_pending - 100);
    assert_eq!(after.debits_posted, before.debits_posted + 40);
    assert_eq!(state.pending_status(910), Some(PendingStatus::Posted));
    let stored = *state.transfer(1000).unwrap();
    assert_eq!(
        (stored.debit_account_id, stored.credit_account_id, stored.amount, stored.ledger),
        (1, 2, 40, 1)
    );
    // Resolving twice fails and changes nothing.
    let again = resolve(1001, 910, F::VOID_PENDING_TRANSFER);
    assert_eq!(create_transfers(&mut state, START, &[again]), vec![T::PendingTransferAlreadyPosted]);
    assert_eq!(*state.account(1).unwrap(), after);

    // Balancing takes only what the wallet holds, and the stored amount says so.
    let fund = transfer(1002, 1, 4, 3);
    let sweep = with(transfer(1003, 4, 1, 5), |t| t.flags = F::BALANCING_DEBIT);
    assert_eq!(create_transfers(&mut state, START, &[fund, sweep]), vec![T::Ok, T::Ok]);
    assert_eq!(state.transfer(1003).unwrap().amount, 3);
    assert_eq!(create_transfers(&mut state, START, &[sweep]), vec![T::Exists]);
    assert_eq!(
        create_transfers(&mut state, START, &[with(sweep, |t| t.amount = 2)]),
        vec![T::ExistsWithDifferentAmount]
    );

    // Voiding the closing transfer reopens account 7.
    let void = resolve(1004, 900, F::VOID_PENDING_TRANSFER);
    assert_eq!(create_transfers(&mut state, START, &[void]), vec![T::Ok]);
    assert!(!state.account(7).unwrap().flags.contains(AccountFlags::CLOSED));
    assert_eq!(create_transfers(&mut state, START, &[transfer(1005, 7, 1, 1)]), vec![T::Ok]);
    state.check_invariants().unwrap();
}

#[test]
fn history_rows_and_expiry() {
    let mut state = base();
    state.take_changes();
    let pending = with(transfer(1000, 6, 1, 7), |t| {
        t.flags = F::PENDING;
        t.timeout = 2;
    });
    assert_eq!(create_transfers(&mut state, START, &[pending]), vec![T::Ok]);
    let created_at = state.transfer(1000).unwrap().timestamp;
    // Not due yet: nothing happens.
    assert_eq!(expire_pending_transfers(&mut state, created_at + NANOS_PER_SECOND, &[1000, 910, 12345]), 0);
    let due = created_at + 2 * NANOS_PER_SECOND;
    assert_eq!(expire_pending_transfers(&mut state, due, &[1000, 1000, 911]), 2);
    assert_eq!(state.pending_status(1000), Some(PendingStatus::Expired));
    assert_eq!(state.pending_status(911), Some(PendingStatus::Expired));
    assert_eq!(state.account(6).unwrap().debits_pending, 0);
    let post = resolve(1001, 1000, F::POST_PENDING_TRANSFER);
    assert_eq!(create_transfers(&mut state, due, &[post]), vec![T::PendingTransferExpired]);
    state.check_invariants().unwrap();

    let changes = state.take_changes();
    let rows: Vec<_> = changes.balances.iter().map(|b| (b.account_id, b.debits_pending)).collect();
    assert_eq!(rows, vec![(6, 7), (6, 0)], "one row per touch of the history account");
    assert!(changes.balances[1].timestamp >= due);
    assert!(changes.pending_statuses.contains(&(1000, PendingStatus::Expired)));
    assert_eq!(changes.failed_transfers, vec![], "pending_transfer_expired is not transient");
}

#[test]
fn transient_failures_are_remembered_and_chains_roll_back_changes() {
    let mut state = base();
    state.take_changes();
    let chain = [
        with(transfer(1000, 1, 2, 5), |t| t.flags = F::LINKED),
        with(transfer(1001, 6, 2, 5), |t| t.flags = F::LINKED),
        transfer(1002, 4, 1, 5), // The wallet is empty: exceeds_credits, transient.
        transfer(1003, 1, 2, 0),
    ];
    let results = create_transfers(&mut state, START, &chain);
    assert_eq!(
        results,
        vec![T::LinkedEventFailed, T::LinkedEventFailed, T::ExceedsCredits, T::AmountMustNotBeZero]
    );
    let changes = state.take_changes();
    assert_eq!(changes.failed_transfers, vec![(1002, T::ExceedsCredits)]);
    assert!(
        changes.accounts_updated.is_empty()
            && changes.transfers_created.is_empty()
            && changes.balances.is_empty()
    );
    assert!(state.transfer(1000).is_none());
    // Retrying the failed id can never succeed now, even with money in the wallet.
    assert_eq!(
        create_transfers(&mut state, START, &[transfer(1004, 1, 4, 5), chain[2]]),
        vec![T::Ok, T::IdAlreadyFailed]
    );
    // The rolled-back ids were not remembered: they can be used again.
    assert_eq!(create_transfers(&mut state, START, &[transfer(1000, 1, 2, 5)]), vec![T::Ok]);
}

#[test]
fn timestamps_are_strictly_increasing_and_not_before_now() {
    let mut state = State::new(500);
    let results = create_accounts(
        &mut state,
        100,
        &[account(1, 1, AccountFlags::empty()), account(2, 1, AccountFlags::empty())],
    );
    assert_eq!(results, vec![A::Ok, A::Ok]);
    assert_eq!((state.account(1).unwrap().timestamp, state.account(2).unwrap().timestamp), (501, 502));
    assert_eq!(create_transfers(&mut state, 10_000, &[transfer(5, 1, 2, 1)]), vec![T::Ok]);
    assert_eq!(state.transfer(5).unwrap().timestamp, 10_000);
    assert_eq!(state.last_timestamp(), 10_000);
}
