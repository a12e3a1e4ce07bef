//! A fast hasher for the ledger's u128-keyed maps.
//!
//! The std `HashMap` defaults to SipHash-1-3, which is built to resist flooding but costs
//! more than the rest of a transfer's bookkeeping put together. Ids are client-chosen, so
//! a fixed, public hash would let a client craft colliding ids; this hasher mixes each
//! key with a per-map random seed (taken once from std's `RandomState`) through two
//! folded 64×64→128-bit multiplies. That is not a cryptographic guarantee, but a client
//! that cannot observe the seed cannot aim collisions, and a batch is bounded anyway
//! (`BATCH_EVENTS_MAX`).

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};

/// A map keyed by account or transfer id.
pub type IdMap<V> = HashMap<u128, V, IdBuildHasher>;

/// Odd 64-bit constants (from the fractional digits of pi) for the multiplies.
const MULTIPLIER_1: u64 = 0x243f_6a88_85a3_08d3;
const MULTIPLIER_2: u64 = 0x1319_8a2e_0370_7345;

/// Multiplies into 128 bits and folds the halves, so every input bit reaches the high
/// output bits that hashbrown uses for its control bytes.
#[inline(always)]
fn folded_multiply(a: u64, b: u64) -> u64 {
    let product = u128::from(a) * u128::from(b);
    (product as u64) ^ ((product >> 64) as u64)
}

/// Builds [`IdHasher`]s that share one random seed.
#[derive(Clone, Copy, Debug)]
pub struct IdBuildHasher {
    seed: u64,
}

impl Default for IdBuildHasher {
    fn default() -> Self {
        // RandomState draws its keys from the OS once per thread and then increments
        // them, so this is cheap; only the seed's unpredictability matters here.
        let seed = std::collections::hash_map::RandomState::new().hash_one(0x5eed_u64);
        Self { seed }
    }
}

impl BuildHasher for IdBuildHasher {
    type Hasher = IdHasher;

    #[inline(always)]
    fn build_hasher(&self) -> IdHasher {
        IdHasher { state: self.seed }
    }
}

/// The hasher: `write_u128` is the fast path; `write` handles anything else correctly,
/// if more slowly, so the type is safe to use with other key types.
#[derive(Clone, Copy, Debug)]
pub struct IdHasher {
    state: u64,
}

impl Hasher for IdHasher {
    #[inline(always)]
    fn write_u128(&mut self, value: u128) {
        let low = value as u64;
        let high = (value >> 64) as u64;
        let mixed = folded_multiply(low ^ self.state, MULTIPLIER_1 ^ high);
        self.state = folded_multiply(mixed ^ high, MULTIPLIER_2);
    }

    #[inline(always)]
    fn write_u64(&mut self, value: u64) {
        self.state = folded_multiply(self.state ^ value, MULTIPLIER_1);
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }

    #[inline(always)]
    fn finish(&self) -> u64 {
        self.state
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequential_ids_spread_over_buckets() {
        // Sequential ids are the common case (counters, UUIDv7 tails); their hashes must
        // not collide in the low bits that pick a bucket.
        let build = IdBuildHasher { seed: 42 };
        let mut buckets = [0u32; 256];
        for id in 0u128..65_536 {
            buckets[(build.hash_one(id) & 255) as usize] += 1;
        }
        let (min, max) = (buckets.iter().min().unwrap(), buckets.iter().max().unwrap());
        assert!(*min > 150 && *max < 370, "poorly spread: min {min}, max {max}");
        // And the high seven bits (hashbrown's tag) must vary too.
        let mut tags = [false; 128];
        for id in 0u128..4096 {
            tags[(build.hash_one(id) >> 57) as usize] = true;
        }
        assert!(tags.iter().all(|seen| *seen));
    }

    #[test]
    fn high_half_matters() {
        let build = IdBuildHasher { seed: 7 };
        assert_ne!(build.hash_one(1u128), build.hash_one(1u128 | (1 << 64)));
    }
}
