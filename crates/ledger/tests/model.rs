//! Property tests against a reference model: random sequences of account and transfer
//! batches (pending, post, void, linked chains, balancing, closing, duplicates, bad
//! ids) and expiry at an advancing clock, compared step by step with a slow model.
//!
//! The model is written differently from the implementation on purpose: it collects
//! *every* applicable failure of an event and returns the smallest one in the enum's
//! declared order of precedence, and it rolls a failed chain back by restoring a clone
//! of itself.

use std::collections::{BTreeMap, BTreeSet};

use ledger::{
    AMOUNT_MAX, Account, AccountFlags as AF, Changes, CreateAccountResult as A, CreateTransferResult as T,
    NANOS_PER_SECOND, PendingStatus, State, Transfer, TransferFlags as F, create_accounts, create_transfers,
    expire_pending_transfers,
};
use proptest::prelude::*;

#[derive(Clone, Debug, Default)]
struct Model {
    accounts: BTreeMap<u128, Account>,
    transfers: BTreeMap<u128, Transfer>,
    statuses: BTreeMap<u128, PendingStatus>,
    failed: BTreeMap<u128, T>,
    last_timestamp: u64,
}

fn fits(value: u128) -> bool {
    value <= u128::from(AMOUNT_MAX)
}

impl Model {
    fn first_timestamp(&mut self, now: u64, count: usize) -> u64 {
        let first = now.max(self.last_timestamp + 1);
        if count > 0 {
            self.last_timestamp = first + count as u64 - 1;
        }
        first
    }

    /// Runs a batch with linked chains; `apply` returns the event's result and applies it.
    #[allow(clippy::too_many_arguments)] // A test helper: each closure is one rule.
    fn batch<E, R: Copy + PartialEq>(
        &mut self,
        events: &[E],
        first: u64,
        linked: impl Fn(&E) -> bool,
        ok: R,
        (failed_code, open_code): (R, R),
        apply: impl Fn(&mut Model, &E, u64) -> R,
        on_failure: impl Fn(&mut Model, &E, R),
    ) -> Vec<R> {
        let mut results = Vec::new();
        let mut index = 0;
        while index < events.len() {
            // The chain: up to and including the first event without `linked`.
            let mut end = index;
            while end < events.len() - 1 && linked(&events[end]) {
                end += 1;
            }
            let saved = self.clone();
            let mut chain_results = Vec::new();
            let mut failed_at = None;
            for i in index..=end {
                let result = if linked(&events[i]) && i == events.len() - 1 {
                    open_code
                } else {
                    apply(self, &events[i], first + i as u64)
                };
                chain_results.push(result);
                if result != ok {
                    failed_at = Some(i);
                    break;
                }
            }
            if let Some(failed) = failed_at {
                let code = chain_results[failed - index];
                if end > index || linked(&events[index]) {
                    *self = saved;
                }
                on_failure(self, &events[failed], code);
                chain_results = (index..=end).map(|i| if i == failed { code } else { failed_code }).collect();
            }
            results.extend(chain_results);
            index = end + 1;
        }
        results
    }

    fn create_accounts(&mut self, now: u64, events: &[Account]) -> Vec<A> {
        let first = self.first_timestamp(now, events.len());
        self.batch(
            events,
            first,
            |a| a.flags.contains(AF::LINKED),
            A::Ok,
            (A::LinkedEventFailed, A::LinkedEventChainOpen),
            Model::create_account,
            |_, _, _| {},
        )
    }

    fn create_account(&mut self, a: &Account, timestamp: u64) -> A {
        let mut codes = vec![];
        if a.timestamp != 0 {
            codes.push(A::TimestampMustBeZero);
        }
        if a.id == 0 {
            codes.push(A::IdMustNotBeZero);
        }
        if a.id == u128::MAX {
            codes.push(A::IdMustNotBeIntMax);
        }
        if let Some(e) = self.accounts.get(&a.id) {
            let checks = [
                (
                    a.flags.difference(AF::CLOSED) != e.flags.difference(AF::CLOSED),
                    A::ExistsWithDifferentFlags,
                ),
                (a.user_data_128 != e.user_data_128, A::ExistsWithDifferentUserData128),
                (a.user_data_64 != e.user_data_64, A::ExistsWithDifferentUserData64),
                (a.user_data_32 != e.user_data_32, A::ExistsWithDifferentUserData32),
                (a.ledger != e.ledger, A::ExistsWithDifferentLedger),
                (a.code != e.code, A::ExistsWithDifferentCode),
                (true, A::Exists),
            ];
            codes.push(checks.iter().find(|(differs, _)| *differs).unwrap().1);
        }
        if a.flags.contains(AF::DEBITS_MUST_NOT_EXCEED_CREDITS)
            && a.flags.contains(AF::CREDITS_MUST_NOT_EXCEED_DEBITS)
        {
            codes.push(A::FlagsAreMutuallyExclusive);
        }
        for (value, code) in [
            (a.debits_pending, A::DebitsPendingMustBeZero),
            (a.debits_posted, A::DebitsPostedMustBeZero),
            (a.credits_pending, A::CreditsPendingMustBeZero),
            (a.credits_posted, A::CreditsPostedMustBeZero),
        ] {
            if value != 0 {
                codes.push(code);
            }
        }
        if a.ledger == 0 {
            codes.push(A::LedgerMustNotBeZero);
        }
        if a.code == 0 {
            codes.push(A::CodeMustNotBeZero);
        }
        if let Some(code) = codes.into_iter().min() {
            return code;
        }
        self.accounts.insert(a.id, Account { timestamp, ..*a });
        A::Ok
    }

    fn create_transfers(&mut self, now: u64, events: &[Transfer]) -> Vec<T> {
        let first = self.first_timestamp(now, events.len());
        self.batch(
            events,
            first,
            |t| t.flags.contains(F::LINKED),
            T::Ok,
            (T::LinkedEventFailed, T::LinkedEventChainOpen),
            Model::create_transfer,
            |model, t, code| {
                let transient = matches!(
                    code,
                    T::DebitAccountNotFound
                        | T::CreditAccountNotFound
                        | T::PendingTransferNotFound
                        | T::DebitAccountAlreadyClosed
                        | T::CreditAccountAlreadyClosed
                        | T::OverflowsDebitsPending
                        | T::OverflowsCreditsPending
                        | T::OverflowsDebitsPosted
                        | T::OverflowsCreditsPosted
                        | T::OverflowsDebits
                        | T::OverflowsCredits
                        | T::OverflowsTimeout
                        | T::ExceedsCredits
                        | T::ExceedsDebits
                );
                if transient {
                    model.failed.insert(t.id, code);
                }
            },
        )
    }

    fn create_transfer(&mut self, t: &Transfer, ts: u64) -> T {
        let f = t.flags;
        let pending = f.contains(F::PENDING);
        let post = f.contains(F::POST_PENDING_TRANSFER);
        let void = f.contains(F::VOID_PENDING_TRANSFER);
        let resolve = post || void;
        let bal_debit = f.contains(F::BALANCING_DEBIT);
        let bal_credit = f.contains(F::BALANCING_CREDIT);
        let closing = f.contains(F::CLOSING_DEBIT) || f.contains(F::CLOSING_CREDIT);
        let mut codes = vec![];
        let mut push = |cond: bool, code: T| {
            if cond {
                codes.push(code)
            }
        };
        push(t.timestamp != 0, T::TimestampMustBeZero);
        push(t.id == 0, T::IdMustNotBeZero);
        push(t.id == u128::MAX, T::IdMustNotBeIntMax);
        if let Some(e) = self.transfers.get(&t.id) {
            let given = |v: u128, stored: u128| v != stored && !(resolve && v == 0);
            let amount_differs = if bal_debit || bal_credit {
                t.amount < e.amount
            } else if post {
                t.amount != AMOUNT_MAX && t.amount != e.amount
            } else if void {
                ![0, AMOUNT_MAX, e.amount].contains(&t.amount)
            } else {
                t.amount != e.amount
            };
            let checks = [
                (t.flags != e.flags, T::ExistsWithDifferentFlags),
                (t.pending_id != e.pending_id, T::ExistsWithDifferentPendingId),
                (t.timeout != e.timeout, T::ExistsWithDifferentTimeout),
                (given(t.debit_account_id, e.debit_account_id), T::ExistsWithDifferentDebitAccountId),
                (given(t.credit_account_id, e.credit_account_id), T::ExistsWithDifferentCreditAccountId),
                (amount_differs, T::ExistsWithDifferentAmount),
                (given(t.user_data_128, e.user_data_128), T::ExistsWithDifferentUserData128),
                (given(t.user_data_64.into(), e.user_data_64.into()), T::ExistsWithDifferentUserData64),
                (given(t.user_data_32.into(), e.user_data_32.into()), T::ExistsWithDifferentUserData32),
                (given(t.ledger.into(), e.ledger.into()), T::ExistsWithDifferentLedger),
                (given(t.code.into(), e.code.into()), T::ExistsWithDifferentCode),
                (true, T::Exists),
            ];
            push(true, checks.iter().find(|(differs, _)| *differs).unwrap().1);
        }
        push(self.failed.contains_key(&t.id), T::IdAlreadyFailed);
        push(
            (pending && resolve) || (post && void) || (resolve && (bal_debit || bal_credit || closing)),
            T::FlagsAreMutuallyExclusive,
        );
        push(!resolve && t.debit_account_id == 0, T::DebitAccountIdMustNotBeZero);
        push(t.debit_account_id == u128::MAX, T::DebitAccountIdMustNotBeIntMax);
        push(!resolve && t.credit_account_id == 0, T::CreditAccountIdMustNotBeZero);
        push(t.credit_account_id == u128::MAX, T::CreditAccountIdMustNotBeIntMax);
        push(
            t.debit_account_id == t.credit_account_id && t.debit_account_id != 0,
            T::AccountsMustBeDifferent,
        );
        push(!resolve && t.pending_id != 0, T::PendingIdMustBeZero);
        push(resolve && t.pending_id == 0, T::PendingIdMustNotBeZero);
        push(resolve && t.pending_id == u128::MAX, T::PendingIdMustNotBeIntMax);
        push(resolve && t.pending_id == t.id, T::PendingIdMustBeDifferent);
        push(!pending && t.timeout != 0, T::TimeoutReservedForPendingTransfer);
        push(closing && !pending, T::ClosingTransferMustBePending);
        let exempt_from_zero = resolve || bal_debit || bal_credit || closing;
        push(!exempt_from_zero && t.amount == 0, T::AmountMustNotBeZero);
        let mut apply: Option<(Transfer, Option<(u128, PendingStatus)>)> = None;
        if !resolve {
            push(t.ledger == 0, T::LedgerMustNotBeZero);
            push(t.code == 0, T::CodeMustNotBeZero);
            let dr = self.accounts.get(&t.debit_account_id).copied();
            let cr = self.accounts.get(&t.credit_account_id).copied();
            push(dr.is_none(), T::DebitAccountNotFound);
            push(cr.is_none(), T::CreditAccountNotFound);
            if let (Some(dr), Some(cr)) = (dr, cr) {
                push(dr.ledger != cr.ledger, T::AccountsMustHaveTheSameLedger);
                push(t.ledger != dr.ledger, T::TransferMustHaveTheSameLedgerAsAccounts);
                push(dr.flags.contains(AF::CLOSED), T::DebitAccountAlreadyClosed);
                push(cr.flags.contains(AF::CLOSED), T::CreditAccountAlreadyClosed);
                let debits = u128::from(dr.debits_pending) + u128::from(dr.debits_posted);
                let credits = u128::from(cr.credits_pending) + u128::from(cr.credits_posted);
                let mut amount = u128::from(t.amount);
                if bal_debit {
                    amount = amount.min(u128::from(dr.credits_posted).saturating_sub(debits));
                }
                if bal_credit {
                    amount = amount.min(u128::from(cr.debits_posted).saturating_sub(credits));
                }
                push(pending && !fits(u128::from(dr.debits_pending) + amount), T::OverflowsDebitsPending);
                push(pending && !fits(u128::from(cr.credits_pending) + amount), T::OverflowsCreditsPending);
                push(!pending && !fits(u128::from(dr.debits_posted) + amount), T::OverflowsDebitsPosted);
                push(!pending && !fits(u128::from(cr.credits_posted) + amount), T::OverflowsCreditsPosted);
                push(!fits(debits + amount), T::OverflowsDebits);
                push(!fits(credits + amount), T::OverflowsCredits);
                let expiry = u128::from(ts) + u128::from(t.timeout) * u128::from(NANOS_PER_SECOND);
                push(t.timeout != 0 && expiry > i64::MAX as u128, T::OverflowsTimeout);
                let dr_limited = bal_debit || dr.flags.contains(AF::DEBITS_MUST_NOT_EXCEED_CREDITS);
                push(
                    dr_limited
                        && (debits + amount > dr.credits_posted.into()
                            || (bal_debit && debits >= dr.credits_posted.into())),
                    T::ExceedsCredits,
                );
                let cr_limited = bal_credit || cr.flags.contains(AF::CREDITS_MUST_NOT_EXCEED_DEBITS);
                push(
                    cr_limited
                        && (credits + amount > cr.debits_posted.into()
                            || (bal_credit && credits >= cr.debits_posted.into())),
                    T::ExceedsDebits,
                );
                let amount = u64::try_from(amount).unwrap_or(0);
                apply = Some((
                    Transfer { amount, timestamp: ts, ..*t },
                    pending.then_some((t.id, PendingStatus::Pending)),
                ));
            }
        } else if let Some(p) = self.transfers.get(&t.pending_id).copied() {
            if !p.flags.contains(F::PENDING) {
                push(true, T::PendingTransferNotPending);
            } else {
                push(
                    t.debit_account_id != 0 && t.debit_account_id != p.debit_account_id,
                    T::PendingTransferHasDifferentDebitAccountId,
                );
                push(
                    t.credit_account_id != 0 && t.credit_account_id != p.credit_account_id,
                    T::PendingTransferHasDifferentCreditAccountId,
                );
                push(t.ledger != 0 && t.ledger != p.ledger, T::PendingTransferHasDifferentLedger);
                push(t.code != 0 && t.code != p.code, T::PendingTransferHasDifferentCode);
                push(post && t.amount != AMOUNT_MAX && t.amount > p.amount, T::ExceedsPendingTransferAmount);
                push(
                    void && ![0, AMOUNT_MAX, p.amount].contains(&t.amount),
                    T::PendingTransferHasDifferentAmount,
                );
                let status = self.statuses[&p.id];
                push(status == PendingStatus::Posted, T::PendingTransferAlreadyPosted);
                push(status == PendingStatus::Voided, T::PendingTransferAlreadyVoided);
                let due = p.timeout != 0 && p.timestamp + u64::from(p.timeout) * NANOS_PER_SECOND <= ts;
                push(status == PendingStatus::Expired || due, T::PendingTransferExpired);
                let dr = self.accounts[&p.debit_account_id];
                let cr = self.accounts[&p.credit_account_id];
                push(
                    post && dr.flags.contains(AF::CLOSED) && !p.flags.contains(F::CLOSING_DEBIT),
                    T::DebitAccountAlreadyClosed,
                );
                push(
                    post && cr.flags.contains(AF::CLOSED) && !p.flags.contains(F::CLOSING_CREDIT),
                    T::CreditAccountAlreadyClosed,
                );
                let amount = if void || t.amount == AMOUNT_MAX { p.amount } else { t.amount.min(p.amount) };
                push(
                    post && !fits(u128::from(dr.debits_posted) + u128::from(amount)),
                    T::OverflowsDebitsPosted,
                );
                push(
                    post && !fits(u128::from(cr.credits_posted) + u128::from(amount)),
                    T::OverflowsCreditsPosted,
                );
                let or = |given: u128, from: u128| if given == 0 { from } else { given };
                let stored = Transfer {
                    id: t.id,
                    debit_account_id: p.debit_account_id,
                    credit_account_id: p.credit_account_id,
                    amount,
                    pending_id: p.id,
                    user_data_128: or(t.user_data_128, p.user_data_128),
                    user_data_64: or(t.user_data_64.into(), p.user_data_64.into()) as u64,
                    user_data_32: or(t.user_data_32.into(), p.user_data_32.into()) as u32,
                    timeout: 0,
                    ledger: p.ledger,
                    code: p.code,
                    flags: t.flags,
                    timestamp: ts,
                };
                let status = if post { PendingStatus::Posted } else { PendingStatus::Voided };
                apply = Some((stored, Some((p.id, status))));
            }
        } else {
            push(t.pending_id != 0 && t.pending_id != u128::MAX, T::PendingTransferNotFound);
        }
        if let Some(code) = codes.into_iter().min() {
            return code;
        }
        let (stored, status) = apply.expect("a valid event has an effect");
        self.apply(&stored, status);
        T::Ok
    }

    /// Moves the money of a valid transfer (or a resolution of a pending one).
    fn apply(&mut self, stored: &Transfer, status: Option<(u128, PendingStatus)>) {
        let mut dr = self.accounts[&stored.debit_account_id];
        let mut cr = self.accounts[&stored.credit_account_id];
        match status {
            Some((_, PendingStatus::Pending)) => {
                dr.debits_pending += stored.amount;
                cr.credits_pending += stored.amount;
                if stored.flags.contains(F::CLOSING_DEBIT) {
                    dr.flags = dr.flags.union(AF::CLOSED);
                }
                if stored.flags.contains(F::CLOSING_CREDIT) {
                    cr.flags = cr.flags.union(AF::CLOSED);
                }
            }
            Some((pending_id, resolution)) => {
                let p = self.transfers[&pending_id];
                dr.debits_pending -= p.amount;
                cr.credits_pending -= p.amount;
                if resolution == PendingStatus::Posted {
                    dr.debits_posted += stored.amount;
                    cr.credits_posted += stored.amount;
                } else {
                    if p.flags.contains(F::CLOSING_DEBIT) {
                        dr.flags = dr.flags.difference(AF::CLOSED);
                    }
                    if p.flags.contains(F::CLOSING_CREDIT) {
                        cr.flags = cr.flags.difference(AF::CLOSED);
                    }
                }
            }
            None => {
                dr.debits_posted += stored.amount;
                cr.credits_posted += stored.amount;
            }
        }
        self.accounts.insert(dr.id, dr);
        self.accounts.insert(cr.id, cr);
        self.transfers.insert(stored.id, *stored);
        if let Some((id, status)) = status {
            self.statuses.insert(id, status);
        }
    }

    fn expire(&mut self, now: u64, ids: &[u128]) -> usize {
        let mut count = 0;
        for id in ids {
            let Some(PendingStatus::Pending) = self.statuses.get(id).copied() else { continue };
            let p = self.transfers[id];
            if p.timeout == 0 || p.timestamp + u64::from(p.timeout) * NANOS_PER_SECOND > now {
                continue;
            }
            self.first_timestamp(now, 1);
            self.apply(&Transfer { id: 0, ..p }, Some((*id, PendingStatus::Voided)));
            self.transfers.remove(&0);
            self.statuses.insert(*id, PendingStatus::Expired);
            count += 1;
        }
        count
    }
}

#[derive(Clone, Debug)]
enum Step {
    Accounts(Vec<Account>),
    Transfers(Vec<Transfer>),
    Expire(Vec<u128>),
    /// Hand the changes so far to the "store".
    TakeChanges,
}

fn id_strategy(max: u128) -> impl Strategy<Value = u128> {
    prop_oneof![20 => 1..=max, 1 => Just(0), 1 => Just(u128::MAX)]
}

fn account_strategy() -> impl Strategy<Value = Account> {
    (id_strategy(6), prop_oneof![4 => Just(1u32), 1 => Just(2)], 0u16..=2, 0u16..16, 0u8..20, any::<bool>())
        .prop_map(|(id, ledger, code, flags, odd, linked)| {
            let mut flags = AF::from_bits(flags & 0b1110).unwrap();
            if linked && odd < 4 {
                flags = flags.union(AF::LINKED);
            }
            Account {
                id,
                ledger,
                code: if odd == 0 { 0 } else { code.max(1) },
                flags,
                user_data_64: u64::from(odd == 1),
                debits_posted: u64::from(odd == 2),
                ..Account::default()
            }
        })
}

fn amount_strategy() -> impl Strategy<Value = u64> {
    prop_oneof![10 => 1u64..200, 3 => Just(0), 2 => Just(AMOUNT_MAX), 1 => Just(AMOUNT_MAX - 100), 1 => Just(AMOUNT_MAX / 2 + 1)]
}

fn transfer_strategy() -> impl Strategy<Value = Transfer> {
    let kind =
        prop_oneof![6 => Just(0u8), 4 => Just(1), 3 => Just(2), 2 => Just(3), 1 => Just(4), 1 => Just(5)];
    (
        id_strategy(12),
        id_strategy(5),
        id_strategy(5),
        amount_strategy(),
        kind,
        0u32..3,
        1u128..=12,
        0u16..64,
        0u8..12,
    )
        .prop_map(|(id, debit, credit, amount, kind, timeout, pending_id, extra, odd)| {
            let mut flags = match kind {
                0 => F::empty(),
                1 => F::PENDING,
                2 => F::POST_PENDING_TRANSFER,
                3 => F::VOID_PENDING_TRANSFER,
                4 => F::BALANCING_DEBIT,
                _ => F::PENDING.union(F::CLOSING_DEBIT),
            };
            // Now and then an extra flag, valid or not.
            if odd < 3 {
                flags = flags.union(F::from_bits(extra << 2 & 0xfc).unwrap());
            }
            if odd == 3 || odd == 4 {
                flags = flags.union(F::LINKED);
            }
            let resolve = kind == 2 || kind == 3;
            Transfer {
                id,
                debit_account_id: if resolve && odd != 5 { 0 } else { debit },
                credit_account_id: if resolve && odd != 6 { 0 } else { credit },
                amount,
                pending_id: if resolve || odd == 7 { pending_id } else { 0 },
                timeout: if flags.contains(F::PENDING) || odd == 8 { timeout } else { 0 },
                ledger: if resolve && odd != 9 {
                    0
                } else if odd == 10 {
                    2
                } else {
                    1
                },
                code: if resolve { 0 } else { 1 },
                user_data_32: u32::from(odd == 11),
                flags,
                ..Transfer::default()
            }
        })
}

fn step_strategy() -> impl Strategy<Value = (u64, Step)> {
    let step = prop_oneof![
        2 => prop::collection::vec(account_strategy(), 1..6).prop_map(Step::Accounts),
        6 => prop::collection::vec(transfer_strategy(), 1..10).prop_map(Step::Transfers),
        1 => prop::collection::vec(1u128..=12, 1..6).prop_map(Step::Expire),
        3 => Just(Step::TakeChanges),
    ];
    (prop_oneof![Just(0u64), Just(NANOS_PER_SECOND / 2), Just(NANOS_PER_SECOND)], step)
}

/// What a store would hold after writing every `Changes` it was handed.
#[derive(Default)]
struct Store {
    accounts: BTreeMap<u128, Account>,
    transfers: BTreeMap<u128, Transfer>,
    statuses: BTreeMap<u128, PendingStatus>,
    failed: BTreeMap<u128, T>,
}

impl Store {
    fn write(&mut self, changes: Changes) {
        let mut seen = BTreeSet::new();
        for account in &changes.accounts_created {
            assert!(
                self.accounts.insert(account.id, *account).is_none(),
                "account {} created twice",
                account.id
            );
            assert!(seen.insert(account.id));
        }
        for account in &changes.accounts_updated {
            assert!(
                self.accounts.insert(account.id, *account).is_some(),
                "updated account {} is new",
                account.id
            );
            assert!(seen.insert(account.id), "account {} listed twice", account.id);
        }
        let mut last = 0;
        for transfer in &changes.transfers_created {
            assert!(transfer.timestamp > last);
            last = transfer.timestamp;
            assert!(
                self.transfers.insert(transfer.id, *transfer).is_none(),
                "transfer {} created twice",
                transfer.id
            );
        }
        let mut statuses = BTreeSet::new();
        for (id, status) in &changes.pending_statuses {
            assert!(statuses.insert(*id), "status of {id} listed twice");
            self.statuses.insert(*id, *status);
        }
        for (id, code) in &changes.failed_transfers {
            assert!(self.failed.insert(*id, *code).is_none());
        }
    }

    /// A fresh state loaded from the store, as the store would load it.
    fn load(&self, last_timestamp: u64) -> State {
        let mut state = State::new(last_timestamp);
        for account in self.accounts.values() {
            state.insert_account(*account);
        }
        for transfer in self.transfers.values() {
            state.insert_transfer(*transfer, self.statuses.get(&transfer.id).copied());
        }
        for (id, code) in &self.failed {
            state.insert_failed_transfer(*id, *code);
        }
        state
    }
}

fn sorted<V: Clone>(items: impl Iterator<Item = V>, key: impl Fn(&V) -> u128) -> Vec<V> {
    let mut items: Vec<V> = items.collect();
    items.sort_by_key(|item| key(item));
    items
}

fn assert_same(state: &State, model: &Model) {
    assert_eq!(
        sorted(state.accounts().copied(), |a| a.id),
        model.accounts.values().copied().collect::<Vec<_>>()
    );
    assert_eq!(
        sorted(state.transfers().copied(), |t| t.id),
        model.transfers.values().copied().collect::<Vec<_>>()
    );
    for (id, status) in &model.statuses {
        assert_eq!(state.pending_status(*id), Some(*status), "status of {id}");
    }
    for (id, code) in &model.failed {
        assert_eq!(state.failed_transfer(*id), Some(*code), "failure of {id}");
    }
    assert_eq!(state.last_timestamp(), model.last_timestamp);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 160, ..ProptestConfig::default() })]

    #[test]
    fn matches_the_model(steps in prop::collection::vec(step_strategy(), 1..40)) {
        let mut state = State::new(1_000);
        let mut model = Model { last_timestamp: 1_000, ..Model::default() };
        let mut store = Store::default();
        let mut written: BTreeMap<u128, Transfer> = BTreeMap::new();
        let mut now = 1_000;
        // Start with usable accounts so that most transfers can succeed; the random
        // account batches add duplicates, limits, history and invalid ones.
        let genesis: Vec<Account> = (1..=4)
            .map(|id| Account { id, ledger: 1, code: 1, flags: if id == 4 { AF::HISTORY } else { AF::empty() }, ..Account::default() })
            .collect();
        prop_assert_eq!(create_accounts(&mut state, now, &genesis), model.create_accounts(now, &genesis));
        for (advance, step) in steps {
            now += advance;
            match step {
                Step::Accounts(events) => {
                    prop_assert_eq!(create_accounts(&mut state, now, &events), model.create_accounts(now, &events));
                }
                Step::Transfers(events) => {
                    let results = create_transfers(&mut state, now, &events);
                    prop_assert_eq!(results.len(), events.len());
                    prop_assert_eq!(results, model.create_transfers(now, &events));
                }
                Step::Expire(ids) => {
                    prop_assert_eq!(expire_pending_transfers(&mut state, now, &ids), model.expire(now, &ids));
                }
                Step::TakeChanges => store.write(state.take_changes()),
            }
            assert_same(&state, &model);
            if let Err(violation) = state.check_invariants() {
                prop_assert!(false, "{}", violation);
            }
            // Transfers never change once written.
            for transfer in state.transfers() {
                let first = *written.entry(transfer.id).or_insert(*transfer);
                prop_assert_eq!(first, *transfer);
            }
        }
        // Changes is a faithful record: a state rebuilt from everything written holds the
        // same ledger, and carries on exactly like the original.
        store.write(state.take_changes());
        let mut rebuilt = store.load(state.last_timestamp());
        assert_same(&rebuilt, &model);
        rebuilt.check_invariants().unwrap();
        let probe: Vec<Transfer> = (1..=24).map(|id| Transfer { id, debit_account_id: 1, credit_account_id: 2, amount: 1, ledger: 1, code: 1, ..Transfer::default() }).collect();
        prop_assert_eq!(create_transfers(&mut rebuilt, now, &probe), create_transfers(&mut state, now, &probe));
        prop_assert_eq!(rebuilt.take_changes(), state.take_changes());
    }
}
