//! Throughput of the ledger core in memory on one core: 10,000 accounts, batches of
//! 8,190 random single-phase transfers, for a few seconds.
//!
//! Each batch runs the way the store runs it: a fresh `State` loaded with only the
//! accounts `prefetch` names, `create_transfers`, then `take_changes`. The figure
//! reported is for `create_transfers` + `take_changes` (the core); loading the state is
//! timed separately because in production it is the store's work.
//!
//! Run: `cargo run --release -p ledger --example core_bench`

use std::time::{Duration, Instant};

use ledger::{
    Account, BATCH_EVENTS_MAX, CreateTransferResult, State, Transfer, create_accounts, create_transfers,
    prefetch,
};

const ACCOUNTS: u128 = 10_000;
const RUN_FOR: Duration = Duration::from_secs(3);

/// xorshift64*: a deterministic, dependency-free source of account pairs.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

fn main() {
    let mut genesis = State::new(1);
    let accounts: Vec<Account> =
        (1..=ACCOUNTS).map(|id| Account { id, ledger: 1, code: 1, ..Account::default() }).collect();
    assert!(create_accounts(&mut genesis, 1, &accounts).iter().all(|r| r.is_success()));
    let accounts: Vec<Account> = genesis.take_changes().accounts_created;
    let mut all: Vec<Account> = accounts.clone();

    let mut random = Random(0x9e37_79b9_7f4a_7c15);
    let mut next_id: u128 = 1 << 64;
    let mut now = 1_000_000_000u64;
    let (mut core, mut load) = (Duration::ZERO, Duration::ZERO);
    let mut transfers = 0u64;
    let started = Instant::now();
    let mut events = Vec::with_capacity(BATCH_EVENTS_MAX);
    while started.elapsed() < RUN_FOR {
        events.clear();
        for _ in 0..BATCH_EVENTS_MAX {
            let debit = u128::from(random.next()) % ACCOUNTS + 1;
            let credit = (debit + u128::from(random.next()) % (ACCOUNTS - 1)) % ACCOUNTS + 1;
            next_id += 1;
            events.push(Transfer {
                id: next_id,
                debit_account_id: debit,
                credit_account_id: credit,
                amount: random.next() % 1000 + 1,
                ledger: 1,
                code: 1,
                ..Transfer::default()
            });
        }

        let loading = Instant::now();
        let wanted = prefetch(&events);
        let mut state = State::new(now);
        state.reserve(wanted.account_ids.len(), events.len());
        for id in &wanted.account_ids {
            state.insert_account(all[(*id - 1) as usize]);
        }
        load += loading.elapsed();

        let applying = Instant::now();
        let results = create_transfers(&mut state, now, &events);
        let changes = state.take_changes();
        core += applying.elapsed();

        assert!(results.iter().all(|r| *r == CreateTransferResult::Ok));
        for account in changes.accounts_updated {
            all[(account.id - 1) as usize] = account;
        }
        transfers += events.len() as u64;
        now = state.last_timestamp() + 1;
    }
    let _ = accounts;
    let per_second = |time: Duration| transfers as f64 / time.as_secs_f64();
    println!("transfers:            {transfers}");
    println!("core (apply + take):  {:>12.0} transfers/s", per_second(core));
    println!("with state loading:   {:>12.0} transfers/s", per_second(core + load));
}
