//! The `core` scenario: the ledger core alone, in memory, on one thread.
//!
//! Each batch runs the way the store runs it (as `crates/ledger/examples/core_bench.rs`
//! does): a fresh `State` holding only the accounts the batch names, then
//! `create_transfers` and `take_changes`. The figure is transfers applied per second of
//! `create_transfers` + `take_changes`; generating the events and loading the state are
//! left out because in production they are the client's and the store's work.

use std::time::{Duration, Instant};

use anyhow::ensure;
use ledger::{
    Account, AccountFlags, CreateTransferResult, State, Transfer, create_accounts, create_transfers, prefetch,
};

use crate::{
    latency::Latencies,
    workload::{CODE, FUNDING_AMOUNT, FUNDING_WORKER, LEDGER, Layout, Random, Shape, TRANSFER_AMOUNT},
};

/// What one core run measured.
#[derive(Debug)]
pub struct CoreOutcome {
    /// Transfers applied while measuring.
    pub transfers: u64,
    /// Time spent in `create_transfers` + `take_changes` while measuring.
    pub busy: Duration,
    /// Per-batch latency of `create_transfers` + `take_changes`.
    pub latencies: Latencies,
    /// Events that were not `ok`.
    pub errors: u64,
    /// Check failures (empty when money was conserved and every count adds up).
    pub failures: Vec<String>,
}

/// Runs the core for `warmup` then `duration` with batches of `batch_size` transfers
/// among `wallets` wallets. Blocking: call it from a blocking thread.
pub fn run(
    shape: Shape,
    wallets: usize,
    batch_size: usize,
    warmup: Duration,
    duration: Duration,
) -> anyhow::Result<CoreOutcome> {
    ensure!((1..=ledger::BATCH_EVENTS_MAX).contains(&batch_size), "batch size out of range");
    let layout = Layout::new(wallets);
    let funding = layout.funding_id();
    // `all` is the database: the latest version of every account, indexed by wallet
    // index, with the funding account last.
    let mut all: Vec<Account> = Vec::with_capacity(wallets + 1);
    let mut genesis = State::new(1);
    let mut accounts: Vec<Account> = (0..wallets)
        .map(|index| Account {
            id: layout.wallet_id(index),
            ledger: LEDGER,
            code: CODE,
            flags: AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS,
            ..Account::default()
        })
        .collect();
    accounts.push(Account { id: funding, ledger: LEDGER, code: CODE, ..Account::default() });
    ensure!(create_accounts(&mut genesis, 1, &accounts).iter().all(|result| result.is_success()));
    let fundings: Vec<Transfer> = (0..wallets)
        .map(|index| Transfer {
            id: layout.transfer_id(FUNDING_WORKER, index as u64),
            debit_account_id: funding,
            credit_account_id: layout.wallet_id(index),
            amount: FUNDING_AMOUNT,
            ledger: LEDGER,
            code: CODE,
            ..Transfer::default()
        })
        .collect();
    let mut now = genesis.last_timestamp() + 1;
    ensure!(
        create_transfers(&mut genesis, now, &fundings)
            .iter()
            .all(|result| *result == CreateTransferResult::Ok)
    );
    now = genesis.last_timestamp() + 1;
    let mut by_id: std::collections::HashMap<u128, Account> =
        genesis.accounts().map(|account| (account.id, *account)).collect();
    for index in 0..wallets {
        all.push(by_id.remove(&layout.wallet_id(index)).expect("created"));
    }
    all.push(by_id.remove(&funding).expect("created"));
    // Wallet ids are the funding id plus one plus their index (see `Layout`).
    let position = |id: u128| if id == funding { wallets } else { (id - funding) as usize - 1 };

    let mut random = Random::new(rand::random());
    let mut events = Vec::with_capacity(batch_size);
    let mut latencies = Latencies::new();
    let (mut busy, mut transfers, mut applied_total, mut errors, mut sequence) =
        (Duration::ZERO, 0u64, 0u64, 0u64, 0u64);
    let started = Instant::now();
    let measure_from = started + warmup;
    let end = measure_from + duration;
    while Instant::now() < end {
        events.clear();
        for _ in 0..batch_size {
            let (debit, credit) = shape.pick(&mut random, wallets);
            events.push(Transfer {
                id: layout.transfer_id(0, sequence),
                debit_account_id: layout.wallet_id(debit),
                credit_account_id: layout.wallet_id(credit),
                amount: TRANSFER_AMOUNT,
                ledger: LEDGER,
                code: CODE,
                ..Transfer::default()
            });
            sequence += 1;
        }
        let wanted = prefetch(&events);
        let mut state = State::new(now);
        state.reserve(wanted.account_ids.len(), events.len());
        for id in &wanted.account_ids {
            state.insert_account(all[position(*id)]);
        }

        let applying = Instant::now();
        let results = create_transfers(&mut state, now, &events);
        let changes = state.take_changes();
        let elapsed = applying.elapsed();

        let applied = results.iter().filter(|result| **result == CreateTransferResult::Ok).count() as u64;
        ensure!(changes.transfers_created.len() as u64 == applied, "transfers written != results ok");
        for account in changes.accounts_updated {
            all[position(account.id)] = account;
        }
        now = state.last_timestamp() + 1;
        applied_total += applied;
        if applying >= measure_from {
            busy += elapsed;
            latencies.record(elapsed);
            transfers += applied;
            errors += events.len() as u64 - applied;
        }
    }

    let mut failures = Vec::new();
    let debits: u128 = all.iter().map(|account| u128::from(account.debits_posted)).sum();
    let credits: u128 = all.iter().map(|account| u128::from(account.credits_posted)).sum();
    if debits != credits {
        failures.push(format!("core: money not conserved: debits {debits} != credits {credits}"));
    }
    if let Some(account) =
        all[..wallets].iter().find(|account| account.debits_posted > account.credits_posted)
    {
        failures.push(format!("core: wallet {:x} went negative", account.id));
    }
    let moved = credits - u128::from(layout.funding_total());
    if moved != u128::from(applied_total) * u128::from(TRANSFER_AMOUNT) {
        failures.push(format!("core: {applied_total} transfers ok but {moved} units moved"));
    }
    Ok(CoreOutcome { transfers, busy, latencies, errors, failures })
}
