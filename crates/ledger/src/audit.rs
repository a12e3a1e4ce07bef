//! Checking a stored ledger against its own history (what `coffer verify` runs): every
//! transfer is replayed in commit order onto accounts that start empty, and the result is
//! compared with what the store holds.
//!
//! Streaming and pure: the caller feeds every account ([`Audit::account`]), then every
//! transfer in timestamp order ([`Audit::transfer`]), then calls [`Audit::finish`]. Memory
//! grows with the number of accounts and of pending transfers still open, never with the
//! length of the history.
//!
//! One thing the store does not record is when a pending transfer actually expired (the
//! expiry worker stamps it some time after it was due). The replay releases an expired
//! reservation at its due time, which is never later than the real expiry; so the limit
//! check between the two instants sees smaller reservations than the ledger did and
//! cannot report a false breach, and the snapshots are compared on their posted amounts
//! only (which expiries never change).

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, VecDeque};

use crate::chain::{Chainer, GENESIS, Link};
use crate::{Account, AccountFlags, IdMap, NANOS_PER_SECOND, PendingStatus, Transfer, TransferFlags};

/// Findings kept in a report at most; the rest are only counted.
pub const FINDINGS_KEPT_MAX: usize = 1000;

/// What a finding is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Check {
    /// Per ledger, the stored debits equal the stored credits (posted, and pending).
    LedgerBalanced,
    /// Every account's stored balances equal the sum of its transfers.
    AccountBalances,
    /// `debits_must_not_exceed_credits` / `credits_must_not_exceed_debits` held after
    /// every transfer.
    AccountLimits,
    /// Every balance snapshot (history accounts) matches the replay at its instant.
    BalanceHistory,
    /// Every pending transfer is resolved at most once, by a transfer on its accounts for
    /// no more than it reserved, and its stored status says how.
    PendingResolution,
    /// Every transfer's accounts exist and are on its ledger.
    TransferAccounts,
    /// Every batch's link (`crate::chain`) matches its transfers and the link before it,
    /// and every transfer since the chain began is in a link.
    HashChain,
}

impl Check {
    pub const ALL: [Self; 7] = [
        Self::LedgerBalanced,
        Self::AccountBalances,
        Self::AccountLimits,
        Self::BalanceHistory,
        Self::PendingResolution,
        Self::TransferAccounts,
        Self::HashChain,
    ];

    /// A stable name, for reports and metrics.
    pub const fn name(self) -> &'static str {
        match self {
            Self::LedgerBalanced => "ledger_balanced",
            Self::AccountBalances => "account_balances",
            Self::AccountLimits => "account_limits",
            Self::BalanceHistory => "balance_history",
            Self::PendingResolution => "pending_resolution",
            Self::TransferAccounts => "transfer_accounts",
            Self::HashChain => "hash_chain",
        }
    }
}

/// One thing found wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    pub check: Check,
    /// The account or transfer it is about (the ledger's number for
    /// [`Check::LedgerBalanced`]).
    pub subject: u128,
    pub detail: String,
}

/// A transfer as the store holds it, with what the replay compares it against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoredTransfer {
    pub transfer: Transfer,
    /// A pending transfer's stored status.
    pub status: Option<PendingStatus>,
    /// The debit account's snapshot at this transfer's timestamp, when it keeps history:
    /// (debits_posted, credits_posted).
    pub debit_posted_after: Option<(u64, u64)>,
    /// The same for the credit account.
    pub credit_posted_after: Option<(u64, u64)>,
}

/// The outcome of an audit.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    pub accounts: u64,
    pub transfers: u64,
    /// Links of the hash chain checked.
    pub links: u64,
    /// Transfers older than the chain's first link (stored before the chain existed).
    pub unchained: u64,
    /// Findings per check, all of them counted.
    pub counts: BTreeMap<Check, u64>,
    /// The first [`FINDINGS_KEPT_MAX`] findings, in the order found.
    pub findings: Vec<Finding>,
}

impl Report {
    pub fn is_clean(&self) -> bool {
        self.counts.is_empty()
    }

    /// Records a finding (kept while there is room, always counted).
    pub fn push(&mut self, check: Check, subject: u128, detail: String) {
        *self.counts.entry(check).or_default() += 1;
        if self.findings.len() < FINDINGS_KEPT_MAX {
            self.findings.push(Finding { check, subject, detail });
        }
    }
}

/// An account as stored, and as replayed so far.
#[derive(Clone, Copy, Debug)]
struct Replayed {
    stored: Account,
    debits_pending: u128,
    debits_posted: u128,
    credits_pending: u128,
    credits_posted: u128,
}

/// A pending transfer not resolved (yet) in the replay.
#[derive(Clone, Copy, Debug)]
struct Open {
    transfer: Transfer,
    status: Option<PendingStatus>,
}

/// A replay in progress.
#[derive(Debug, Default)]
pub struct Audit {
    accounts: IdMap<Replayed>,
    open: IdMap<Open>,
    /// Expired pending transfers by due time, released when the replay reaches it.
    expiries: BinaryHeap<Reverse<(u64, u128)>>,
    last_timestamp: u64,
    report: Report,
    chain: Chain,
}

/// The hash chain's side of a replay.
#[derive(Debug, Default)]
struct Chain {
    /// Links fed and not yet complete, in order.
    links: VecDeque<Link>,
    /// The link being recomputed (the front of `links`).
    current: Option<Chainer>,
    /// The last complete link, as stored.
    previous: Option<Link>,
}

impl Audit {
    pub fn new() -> Self {
        Self::default()
    }

    /// An account as stored. Every account comes before the first transfer.
    pub fn account(&mut self, account: &Account) {
        assert_eq!(self.report.transfers, 0, "accounts are fed before transfers");
        self.report.accounts += 1;
        let replayed = Replayed {
            stored: *account,
            debits_pending: 0,
            debits_posted: 0,
            credits_pending: 0,
            credits_posted: 0,
        };
        self.accounts.insert(account.id, replayed);
    }

    /// The next link of the hash chain, in order; fed before the first transfer it covers.
    pub fn link(&mut self, link: &Link) {
        if let Some(last) = self.chain.links.back().or(self.chain.previous.as_ref()) {
            assert!(link.seq > last.seq, "links are fed in order");
        }
        self.chain.links.push_back(*link);
    }

    /// The next transfer in timestamp order.
    pub fn transfer(&mut self, stored: &StoredTransfer) {
        let t = &stored.transfer;
        assert!(t.timestamp > self.last_timestamp, "transfers are fed in timestamp order");
        self.last_timestamp = t.timestamp;
        self.report.transfers += 1;
        self.expire_until(t.timestamp);
        self.chain_transfer(t);
        let (Some(debit), Some(credit)) =
            (self.accounts.get(&t.debit_account_id), self.accounts.get(&t.credit_account_id))
        else {
            self.report.push(
                Check::TransferAccounts,
                t.id,
                "an account of the transfer does not exist".into(),
            );
            return;
        };
        if debit.stored.ledger != t.ledger || credit.stored.ledger != t.ledger {
            self.report.push(
                Check::TransferAccounts,
                t.id,
                format!("an account is not on ledger {}", t.ledger),
            );
            // Replayed all the same: the money moved between these accounts.
        }
        let amount = u128::from(t.amount);
        if t.flags.contains(TransferFlags::PENDING) {
            self.reserve(t, amount, true);
            self.open(stored);
        } else if t
            .flags
            .intersects(TransferFlags::POST_PENDING_TRANSFER.union(TransferFlags::VOID_PENDING_TRANSFER))
        {
            self.resolve(t);
        } else {
            self.post(t, amount);
        }
        for (id, snapshot) in [
            (t.debit_account_id, stored.debit_posted_after),
            (t.credit_account_id, stored.credit_posted_after),
        ] {
            self.check_limits(id, t.id);
            if let Some((debits_posted, credits_posted)) = snapshot {
                let replayed = &self.accounts[&id];
                if (u128::from(debits_posted), u128::from(credits_posted))
                    != (replayed.debits_posted, replayed.credits_posted)
                {
                    self.report.push(
                        Check::BalanceHistory,
                        id,
                        format!(
                            "snapshot at transfer {} holds posted debits/credits {debits_posted}/{credits_posted}, \
                             its transfers sum to {}/{}",
                            t.id, replayed.debits_posted, replayed.credits_posted
                        ),
                    );
                }
            }
        }
    }

    /// Compares the end of the replay with the stored accounts and ledger totals.
    pub fn finish(mut self) -> Report {
        self.expire_until(u64::MAX);
        if self.chain.current.is_some() {
            self.close_link();
        }
        // Links left over cover no stored transfer.
        while !self.chain.links.is_empty() {
            self.close_link();
        }
        let mut open: Vec<&Open> = self.open.values().collect();
        open.sort_by_key(|o| o.transfer.timestamp);
        for o in open {
            match o.status {
                Some(PendingStatus::Pending) => {}
                Some(status) => self.report.push(
                    Check::PendingResolution,
                    o.transfer.id,
                    format!("stored as {} but no transfer resolves it", status.as_str()),
                ),
                None => {}
            }
        }
        #[derive(Default)]
        struct Sums([u128; 4]);
        let mut ledgers: BTreeMap<u32, Sums> = BTreeMap::new();
        let mut accounts: Vec<&Replayed> = self.accounts.values().collect();
        accounts.sort_by_key(|a| a.stored.id);
        for replayed in accounts {
            let a = &replayed.stored;
            let stored =
                [a.debits_pending, a.debits_posted, a.credits_pending, a.credits_posted].map(u128::from);
            let summed = [
                replayed.debits_pending,
                replayed.debits_posted,
                replayed.credits_pending,
                replayed.credits_posted,
            ];
            if stored != summed {
                self.report.push(
                    Check::AccountBalances,
                    a.id,
                    format!(
                        "stored debits pending/posted, credits pending/posted {stored:?}; its transfers sum to {summed:?}"
                    ),
                );
            }
            let sums = ledgers.entry(a.ledger).or_default();
            for (sum, value) in sums.0.iter_mut().zip(stored) {
                *sum += value;
            }
        }
        for (ledger, Sums([debits_pending, debits_posted, credits_pending, credits_posted])) in ledgers {
            if debits_posted != credits_posted || debits_pending != credits_pending {
                self.report.push(
                    Check::LedgerBalanced,
                    u128::from(ledger),
                    format!(
                        "ledger {ledger}: debits posted {debits_posted} vs credits posted {credits_posted}, \
                         debits pending {debits_pending} vs credits pending {credits_pending}"
                    ),
                );
            }
        }
        self.report
    }

    fn reserve(&mut self, t: &Transfer, amount: u128, add: bool) {
        for (id, debit) in [(t.debit_account_id, true), (t.credit_account_id, false)] {
            let a = self.accounts.get_mut(&id).expect("checked by the caller");
            let field = if debit { &mut a.debits_pending } else { &mut a.credits_pending };
            *field = if add { *field + amount } else { field.saturating_sub(amount) };
        }
    }

    fn post(&mut self, t: &Transfer, amount: u128) {
        self.accounts.get_mut(&t.debit_account_id).expect("checked by the caller").debits_posted += amount;
        self.accounts.get_mut(&t.credit_account_id).expect("checked by the caller").credits_posted += amount;
    }

    fn open(&mut self, stored: &StoredTransfer) {
        let t = stored.transfer;
        match stored.status {
            None => {
                self.report.push(Check::PendingResolution, t.id, "pending transfer without a status".into())
            }
            Some(PendingStatus::Expired) => {
                if t.timeout == 0 {
                    self.report.push(
                        Check::PendingResolution,
                        t.id,
                        "stored as expired but it has no timeout".into(),
                    );
                }
                let due = t.timestamp.saturating_add(u64::from(t.timeout).saturating_mul(NANOS_PER_SECOND));
                self.expiries.push(Reverse((due, t.id)));
            }
            Some(_) => {}
        }
        self.open.insert(t.id, Open { transfer: t, status: stored.status });
    }

    fn resolve(&mut self, t: &Transfer) {
        let post = t.flags.contains(TransferFlags::POST_PENDING_TRANSFER);
        let Some(pending) = self.open.remove(&t.pending_id) else {
            self.report.push(
                Check::PendingResolution,
                t.pending_id,
                format!(
                    "transfer {} resolves it, but it is not open: never pending, expired or resolved before",
                    t.id
                ),
            );
            // Whatever it posted moved money all the same.
            if post
                && self.accounts.contains_key(&t.debit_account_id)
                && self.accounts.contains_key(&t.credit_account_id)
            {
                self.post(t, u128::from(t.amount));
            }
            return;
        };
        let p = pending.transfer;
        let expected = if post { PendingStatus::Posted } else { PendingStatus::Voided };
        if pending.status != Some(expected) {
            self.report.push(
                Check::PendingResolution,
                p.id,
                format!(
                    "transfer {} {} it, but its stored status is {}",
                    t.id,
                    expected.as_str(),
                    pending.status.map_or("none", PendingStatus::as_str)
                ),
            );
        }
        if (t.debit_account_id, t.credit_account_id) != (p.debit_account_id, p.credit_account_id)
            || (post && t.amount > p.amount)
        {
            self.report.push(
                Check::PendingResolution,
                p.id,
                format!("transfer {} resolves it on other accounts or for more than it reserved", t.id),
            );
        }
        // Release what the pending transfer reserved (on its own accounts), then post.
        self.reserve(&p, u128::from(p.amount), false);
        if post
            && self.accounts.contains_key(&t.debit_account_id)
            && self.accounts.contains_key(&t.credit_account_id)
        {
            self.post(t, u128::from(t.amount));
        }
    }

    /// Adds a transfer to its link, closing the links it has gone past.
    fn chain_transfer(&mut self, t: &Transfer) {
        loop {
            let front = self.chain.links.front().copied();
            let Some(front) = front.filter(|front| t.timestamp >= front.first_timestamp) else {
                // Before any link: stored before the chain began, or missing from it.
                if self.chain.previous.is_none() && self.chain.current.is_none() {
                    self.report.unchained += 1;
                } else {
                    self.report.push(
                        Check::HashChain,
                        t.id,
                        format!("transfer stamped {} is in no link", t.timestamp),
                    );
                }
                return;
            };
            if t.timestamp <= front.last_timestamp {
                let previous = self.chain.previous.map_or(GENESIS, |link| link.hash);
                self.chain.current.get_or_insert_with(|| Chainer::after(&previous)).push(t);
                return;
            }
            // Past the front link: it is complete.
            self.close_link();
        }
    }

    /// Compares the front link with what its transfers hash to.
    fn close_link(&mut self) {
        let link = self.chain.links.pop_front().expect("a link to close");
        let computed = self.chain.current.take().map(|chainer| (chainer.transfers(), chainer.finish()));
        let expected_seq = self.chain.previous.map_or(1, |previous| previous.seq + 1);
        self.report.links += 1;
        let broken = match computed {
            _ if link.seq != expected_seq => {
                Some(format!("link {} follows link {}", link.seq, expected_seq - 1))
            }
            None => Some("none of its transfers is stored".to_owned()),
            Some((count, _)) if count != link.transfers => {
                Some(format!("it holds {} transfers, {count} are stored", link.transfers))
            }
            Some((_, hash)) if hash != link.hash => Some("its transfers do not hash to it".to_owned()),
            Some(_) => None,
        };
        if let Some(why) = broken {
            self.report.push(
                Check::HashChain,
                u128::from(link.seq),
                format!(
                    "link {} (transfers stamped {}..={}): {why}",
                    link.seq, link.first_timestamp, link.last_timestamp
                ),
            );
        }
        self.chain.previous = Some(link);
    }

    /// Releases the expired reservations due at or before `now`.
    fn expire_until(&mut self, now: u64) {
        while let Some(Reverse((due, id))) = self.expiries.peek().copied() {
            if due > now {
                break;
            }
            self.expiries.pop();
            if let Some(open) = self.open.remove(&id) {
                self.reserve(&open.transfer, u128::from(open.transfer.amount), false);
            }
        }
    }

    fn check_limits(&mut self, id: u128, transfer_id: u128) {
        let a = &self.accounts[&id];
        let flags = a.stored.flags;
        let debits = a.debits_pending + a.debits_posted;
        let credits = a.credits_pending + a.credits_posted;
        let broken = if flags.contains(AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS)
            && debits > a.credits_posted
        {
            Some(format!(
                "debits {debits} exceed credits posted {} after transfer {transfer_id}",
                a.credits_posted
            ))
        } else if flags.contains(AccountFlags::CREDITS_MUST_NOT_EXCEED_DEBITS) && credits > a.debits_posted {
            Some(format!(
                "credits {credits} exceed debits posted {} after transfer {transfer_id}",
                a.debits_posted
            ))
        } else {
            None
        };
        if let Some(detail) = broken {
            self.report.push(Check::AccountLimits, id, detail);
        }
    }
}
