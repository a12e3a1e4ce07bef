//! A raw fuzz target for the ledger core, run by proptest on stable (and replayed from
//! the corpus in `tests/corpus/`): arbitrary bytes decoded into a sequence of batches of
//! accounts and transfers with hostile fields — ids 0 and `u128::MAX`, ids shared between
//! accounts and transfers, any flag bits, amounts past `AMOUNT_MAX` and `u64::MAX`,
//! timeouts that overflow the clock, balances and timestamps set by the client — and
//! expiry at a clock that jumps.
//!
//! Unlike `model.rs` it has no reference model: it asserts what must hold whatever the
//! input. No panic; one result per event; the invariants (`State::check_invariants`:
//! debits equal credits per ledger, no account past its flags or `AMOUNT_MAX`) after every
//! step; the transfers created by a batch are exactly its `ok` events; a linked chain is
//! all or nothing; a transfer, once written, never changes; the clock never goes back.
//!
//! `COFFER_PROOF_LONG=1` runs 50 times as many cases.

use std::collections::{BTreeMap, BTreeSet};

use ledger::{
    AMOUNT_MAX, Account, AccountFlags, CreateAccountResult, CreateTransferResult, NANOS_PER_SECOND, State,
    Transfer, TransferFlags, create_accounts, create_transfers, expire_pending_transfers,
};
use proptest::prelude::*;

/// Reads the input a byte at a time; past the end it reads zeros, so every input decodes.
struct Bytes<'a> {
    data: &'a [u8],
    at: usize,
}

impl Bytes<'_> {
    fn byte(&mut self) -> u8 {
        let byte = self.data.get(self.at).copied().unwrap_or(0);
        self.at += 1;
        byte
    }

    fn done(&self) -> bool {
        self.at >= self.data.len()
    }

    fn u64(&mut self) -> u64 {
        (0..8).fold(0, |value, _| value << 8 | u64::from(self.byte()))
    }

    fn pick<T: Copy>(&mut self, choices: &[T]) -> T {
        choices[usize::from(self.byte()) % choices.len()]
    }

    /// A small pool, so that ids collide: between accounts, between transfers, and
    /// between the two; plus the ids the ledger must refuse.
    fn id(&mut self) -> u128 {
        match self.byte() % 32 {
            0 => 0,
            1 => u128::MAX,
            n => u128::from(2 + (n - 2) % 6),
        }
    }

    /// Mostly small amounts (so that transfers succeed often enough to build state), and
    /// the edges: zero, `AMOUNT_MAX`, just past it, `u64::MAX`, half of it plus one.
    fn amount(&mut self) -> u64 {
        match self.byte() % 10 {
            0 => 0,
            1 => AMOUNT_MAX,
            2 => AMOUNT_MAX + 1,
            3 => u64::MAX,
            4 => AMOUNT_MAX / 2 + 1,
            _ => u64::from(self.byte()) * 10 + 1,
        }
    }

    /// No flag, one named flag, or any combination of the known bits.
    fn flag_bits(&mut self, named: &[u16]) -> u16 {
        match self.byte() % 4 {
            0 => {
                let known = named.iter().fold(0, |all, bits| all | bits);
                (u16::from(self.byte()) | u16::from(self.byte()) << 8) & known
            }
            1 => named[usize::from(self.byte()) % named.len()],
            _ => 0,
        }
    }

    fn account_flags(&mut self) -> AccountFlags {
        let named: Vec<u16> = AccountFlags::NAMED.iter().map(|(_, flag)| flag.bits()).collect();
        AccountFlags::from_bits(self.flag_bits(&named)).expect("known bits")
    }

    fn transfer_flags(&mut self) -> TransferFlags {
        let named: Vec<u16> = TransferFlags::NAMED.iter().map(|(_, flag)| flag.bits()).collect();
        TransferFlags::from_bits(self.flag_bits(&named)).expect("known bits")
    }

    /// A byte whose low bits say which client-owned-by-the-ledger fields to set; zero
    /// (the usual case) sets none.
    fn hostile(&mut self) -> u8 {
        let byte = self.byte();
        if byte >= 0xe0 { byte } else { 0 }
    }

    fn account(&mut self) -> Account {
        let hostile = self.hostile();
        Account {
            id: self.id(),
            ledger: self.pick(&[1, 1, 1, 1, 1, 1, 0, 2, u32::MAX]),
            code: self.pick(&[1, 1, 1, 1, 0, u16::MAX]),
            flags: self.account_flags(),
            user_data_128: self.id(),
            user_data_64: self.u64(),
            user_data_32: self.pick(&[0, 1, u32::MAX]),
            // Balances and timestamps belong to the ledger; a client that sets them is refused.
            debits_pending: if hostile & 1 != 0 { self.amount() } else { 0 },
            debits_posted: if hostile & 2 != 0 { self.amount() } else { 0 },
            credits_pending: if hostile & 4 != 0 { self.amount() } else { 0 },
            credits_posted: if hostile & 8 != 0 { self.amount() } else { 0 },
            timestamp: if hostile & 16 != 0 { self.u64() } else { 0 },
        }
    }

    fn transfer(&mut self) -> Transfer {
        let hostile = self.hostile();
        Transfer {
            id: self.id(),
            debit_account_id: self.id(),
            credit_account_id: self.id(),
            amount: self.amount(),
            pending_id: self.pick(&[0, 0, 0, 1]) * self.id(),
            user_data_128: 0,
            user_data_64: 0,
            user_data_32: 0,
            timeout: self.pick(&[0, 0, 0, 1, 60, u32::MAX]),
            ledger: self.pick(&[1, 1, 1, 1, 1, 1, 0, 2, u32::MAX]),
            code: self.pick(&[1, 1, 1, 1, 0, u16::MAX]),
            flags: self.transfer_flags(),
            timestamp: if hostile & 2 != 0 { self.u64() } else { 0 },
        }
    }
}

/// The latest clock the harness moves to.
const NOW_MAX: u64 = i64::MAX as u64;

/// What a run did, summed over cases for the report.
#[derive(Debug, Default)]
struct Counts {
    events: u64,
    ok: u64,
    transfers_ok: u64,
}

/// Decodes and applies `input`, asserting everything that must hold for any input.
fn run(input: &[u8], counts: &mut Counts) {
    let mut bytes = Bytes { data: input, at: 0 };
    let mut state = State::new(0);
    let mut now: u64 = 1_700_000_000 * NANOS_PER_SECOND;
    let mut written: BTreeMap<u128, Transfer> = BTreeMap::new();
    let mut last_timestamp = state.last_timestamp();
    while !bytes.done() {
        match bytes.byte() % 5 {
            0 => {
                let events: Vec<Account> = (0..1 + bytes.byte() % 4).map(|_| bytes.account()).collect();
                let before: BTreeSet<u128> = state.accounts().map(|account| account.id).collect();
                let results = create_accounts(&mut state, now, &events);
                assert_eq!(results.len(), events.len(), "one result per account");
                counts.events += events.len() as u64;
                let created: BTreeSet<u128> =
                    state.accounts().map(|account| account.id).filter(|id| !before.contains(id)).collect();
                let ok: BTreeSet<u128> = events
                    .iter()
                    .zip(&results)
                    .filter(|(_, result)| **result == CreateAccountResult::Ok)
                    .map(|(event, _)| event.id)
                    .collect();
                counts.ok += ok.len() as u64;
                assert_eq!(created, ok, "accounts created are exactly the ok events: {events:?} {results:?}");
            }
            1 | 2 => {
                let events: Vec<Transfer> = (0..1 + bytes.byte() % 8).map(|_| bytes.transfer()).collect();
                let results = create_transfers(&mut state, now, &events);
                assert_eq!(results.len(), events.len(), "one result per transfer");
                counts.events += events.len() as u64;
                let mut created = BTreeSet::new();
                for transfer in state.transfers() {
                    match written.get(&transfer.id) {
                        Some(before) => assert_eq!(before, transfer, "a written transfer changed"),
                        None => {
                            created.insert(transfer.id);
                        }
                    }
                }
                let ok: BTreeSet<u128> = events
                    .iter()
                    .zip(&results)
                    .filter(|(_, result)| **result == CreateTransferResult::Ok)
                    .map(|(event, _)| event.id)
                    .collect();
                counts.ok += ok.len() as u64;
                counts.transfers_ok += ok.len() as u64;
                assert_eq!(
                    created, ok,
                    "transfers created are exactly the ok events: {events:?} {results:?}"
                );
                // A linked chain (events up to and including the first without `linked`)
                // is all ok or all refused.
                let mut start = 0;
                for (index, event) in events.iter().enumerate() {
                    let last = !event.flags.contains(TransferFlags::LINKED) || index + 1 == events.len();
                    if last {
                        let chain = &results[start..=index];
                        let oks = chain.iter().filter(|result| **result == CreateTransferResult::Ok).count();
                        assert!(
                            oks == 0 || oks == chain.len(),
                            "a chain half-applied: {events:?} {results:?}"
                        );
                        start = index + 1;
                    }
                }
                for transfer in state.transfers() {
                    written.entry(transfer.id).or_insert(*transfer);
                }
            }
            3 => {
                // Every transfer id as a candidate, as a store that over-fetches would pass:
                // the ledger must ignore the ones that are not pending or not due.
                let candidates: Vec<u128> = written.keys().copied().chain([0, u128::MAX, 99]).collect();
                let expired = expire_pending_transfers(&mut state, now, &candidates);
                assert!(expired <= written.len());
            }
            _ => {
                // The clock jumps ahead: seconds, days, or far past any timeout.
                let seconds = match bytes.byte() % 4 {
                    0 => 1,
                    1 => 61,
                    2 => 86_400,
                    _ => u64::from(u32::MAX) + 1,
                };
                // Capped far in the future (year 2262): a clock past u64 nanoseconds is a
                // programmer error the ledger asserts on, not an input.
                now = now.saturating_add(seconds * NANOS_PER_SECOND).min(NOW_MAX);
            }
        }
        if let Err(broken) = state.check_invariants() {
            panic!("invariant broken: {broken}");
        }
        assert!(state.last_timestamp() >= last_timestamp, "the clock went back");
        last_timestamp = state.last_timestamp();
        state.take_changes();
    }
}

fn cases() -> u32 {
    if std::env::var("COFFER_PROOF_LONG").is_ok_and(|value| value == "1") { 25_000 } else { 500 }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_break_the_ledger(input in prop::collection::vec(any::<u8>(), 0..1_500)) {
        run(&input, &mut Counts::default());
    }
}

/// Replays every input in `tests/corpus/` (hex, one input per file, `#` comments): the
/// interesting inputs found so far, kept so that they are tried on every run.
#[test]
fn corpus_replays() {
    let directory = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/corpus");
    let mut counts = Counts::default();
    let mut files = 0;
    for entry in std::fs::read_dir(directory).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|extension| extension == "hex") {
            let text = std::fs::read_to_string(&path).unwrap();
            let hex: String = text
                .lines()
                .filter(|line| !line.trim_start().starts_with('#'))
                .flat_map(|line| line.chars().filter(|c| !c.is_whitespace()))
                .collect();
            let input: Vec<u8> = (0..hex.len())
                .step_by(2)
                .map(|at| {
                    u8::from_str_radix(&hex[at..at + 2], 16).unwrap_or_else(|_| panic!("{path:?}: not hex"))
                })
                .collect();
            run(&input, &mut counts);
            files += 1;
        }
    }
    assert!(files >= 3, "the corpus is there ({files} files)");
    assert!(counts.transfers_ok > 0, "the corpus reaches successful transfers: {counts:?}");
}

/// The decoder is not so strict that random input never gets past validation: over a
/// fixed sample of random inputs, some accounts and transfers succeed.
#[test]
fn random_inputs_reach_successful_transfers() {
    use proptest::{strategy::ValueTree, test_runner::TestRunner};
    let mut runner = TestRunner::deterministic();
    let strategy = prop::collection::vec(any::<u8>(), 0..1_500);
    let mut counts = Counts::default();
    for _ in 0..300 {
        run(&strategy.new_tree(&mut runner).unwrap().current(), &mut counts);
    }
    assert!(counts.transfers_ok > 10, "{counts:?}");
    eprintln!("300 random inputs: {counts:?}");
}
