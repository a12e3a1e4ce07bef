//! The workload every scenario shares: one unconstrained funding account and N wallets
//! (accounts with `debits_must_not_exceed_credits`) on one ledger, each wallet funded
//! once before the clock starts, then transfers of one minor unit between wallets chosen
//! by the shape. Amounts of one make "transfers stored" readable from the balances: the
//! wallets' credits minus their funding is the number of transfers applied.

use clap::ValueEnum;

/// The ledger (currency) every benchmark account lives on: 840 is USD's ISO 4217 number.
pub const LEDGER: u32 = 840;
/// The account and transfer code: the benchmark has one kind of each.
pub const CODE: u16 = 1;
/// Minor units each wallet is funded with before a scenario. Far more than a wallet can
/// spend at [`TRANSFER_AMOUNT`] per transfer in any run (so transfers never fail for want
/// of funds), and 100,000 wallets of it stay far below the 2^63 balance limit.
pub const FUNDING_AMOUNT: u64 = 1_000_000_000;
/// Minor units each benchmark transfer moves.
pub const TRANSFER_AMOUNT: u64 = 1;
/// Fewest wallets a run may use: a transfer needs two different accounts.
pub const WALLETS_MIN: usize = 2;
/// Most wallets a run may use: setting up and reading back more takes longer than the
/// runs themselves on the 2-core machine.
pub const WALLETS_MAX: usize = 1_000_000;

/// Which wallets the transfers move money between.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Shape {
    /// Random pairs of different wallets.
    Uniform,
    /// Every transfer credits the same wallet (the first); the debit side is random.
    Hot,
}

impl Shape {
    /// Both shapes, in table order.
    pub const ALL: [Shape; 2] = [Shape::Uniform, Shape::Hot];

    /// The name printed in the table.
    pub fn name(self) -> &'static str {
        match self {
            Shape::Uniform => "uniform",
            Shape::Hot => "hot",
        }
    }

    /// A (debit, credit) pair of different wallet indexes below `wallets`.
    pub fn pick(self, random: &mut Random, wallets: usize) -> (usize, usize) {
        debug_assert!(wallets >= WALLETS_MIN);
        let wallets = wallets as u64;
        match self {
            Shape::Uniform => {
                let debit = random.below(wallets);
                let credit = (debit + 1 + random.below(wallets - 1)) % wallets;
                (debit as usize, credit as usize)
            }
            Shape::Hot => (1 + random.below(wallets - 1) as usize, 0),
        }
    }
}

/// xorshift64*: cheap enough that choosing pairs never shows up next to the work being
/// measured, and seedable per worker so workers do not share a lock.
#[derive(Clone, Debug)]
pub struct Random(u64);

impl Random {
    /// A generator from `seed` (zero is replaced: xorshift would stay at zero).
    pub fn new(seed: u64) -> Self {
        Self(if seed == 0 { 0x9e37_79b9_7f4a_7c15 } else { seed })
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number below `bound` (the modulo bias is negligible for bounds this small).
    pub fn below(&mut self, bound: u64) -> u64 {
        self.next_u64() % bound
    }
}

/// The ids of one scenario's accounts and transfers. A random 64-bit prefix keeps runs
/// apart when they share a server (`--url`): each run sees only its own accounts, which
/// all start at zero, so the conservation check needs no snapshot of anything else.
#[derive(Clone, Debug)]
pub struct Layout {
    account_prefix: u128,
    transfer_prefix: u128,
    /// Wallets the transfers move money between.
    pub wallets: usize,
}

/// Bits of a transfer id below the worker number: 2^40 transfers per worker per run.
const TRANSFER_SEQUENCE_BITS: u32 = 40;
/// Bits of a transfer id for the worker number: the prefix takes the top 64 bits.
const TRANSFER_WORKER_BITS: u32 = 64 - TRANSFER_SEQUENCE_BITS;
/// The worker number of the funding transfers, which no load worker uses.
pub const FUNDING_WORKER: usize = (1 << TRANSFER_WORKER_BITS) - 1;

impl Layout {
    /// A fresh layout of `wallets` wallets with random id prefixes.
    pub fn new(wallets: usize) -> Self {
        assert!((WALLETS_MIN..=WALLETS_MAX).contains(&wallets), "wallets out of range");
        // The top bit is cleared and one is added so no prefix is zero or all ones (ids
        // zero and u128::MAX are refused by the ledger).
        let prefix = || (u128::from(rand::random::<u64>() >> 1) + 1) << 64;
        Self { account_prefix: prefix(), transfer_prefix: prefix(), wallets }
    }

    /// The same accounts, with transfer ids of their own (for a second phase of one run).
    pub fn with_fresh_transfers(&self) -> Self {
        let mut layout = Self::new(self.wallets);
        layout.account_prefix = self.account_prefix;
        layout
    }

    /// The funding account: no flags, so it may go as negative as the funding needs.
    pub fn funding_id(&self) -> u128 {
        self.account_prefix
    }

    /// The id of wallet `index` (below `wallets`).
    pub fn wallet_id(&self, index: usize) -> u128 {
        debug_assert!(index < self.wallets);
        self.account_prefix | (index as u128 + 1)
    }

    /// The id of transfer `sequence` of `worker`: unique per run without coordination.
    pub fn transfer_id(&self, worker: usize, sequence: u64) -> u128 {
        debug_assert!(sequence < (1 << TRANSFER_SEQUENCE_BITS) - 1);
        debug_assert!(worker < 1 << TRANSFER_WORKER_BITS);
        self.transfer_prefix | ((worker as u128) << TRANSFER_SEQUENCE_BITS) | (u128::from(sequence) + 1)
    }

    /// The total the funding account pays out before a scenario.
    pub fn funding_total(&self) -> u64 {
        FUNDING_AMOUNT * self.wallets as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_pick_two_different_wallets_in_range() {
        let mut random = Random::new(7);
        for shape in Shape::ALL {
            for wallets in [2, 3, 10_000] {
                for _ in 0..10_000 {
                    let (debit, credit) = shape.pick(&mut random, wallets);
                    assert_ne!(debit, credit);
                    assert!(debit < wallets && credit < wallets);
                    if shape == Shape::Hot {
                        assert_eq!(credit, 0);
                    }
                }
            }
        }
    }

    #[test]
    fn ids_are_unique_and_never_zero() {
        let layout = Layout::new(3);
        let mut ids = vec![layout.funding_id(), layout.wallet_id(0), layout.wallet_id(2)];
        ids.extend([layout.transfer_id(0, 0), layout.transfer_id(1, 0), layout.transfer_id(0, 1)]);
        let mut unique = ids.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), ids.len());
        assert!(ids.iter().all(|id| *id != 0 && *id != u128::MAX));
    }
}
