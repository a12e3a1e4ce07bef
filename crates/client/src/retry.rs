//! How often, and after how long, a call is tried again when the server answers
//! `UNAVAILABLE` (down, restarting, its commit queue full, shutting down): a bounded
//! number of attempts, with exponential backoff capped at a maximum and jittered so that
//! many clients refused at the same moment do not come back at the same moment.
//!
//! A retry sends the same request with the same ids. Ids are the ledger's idempotency
//! keys, so a transfer that an earlier attempt committed (its answer lost) answers
//! `exists` instead of being applied twice; see docs/client.md.

use std::time::Duration;

/// Most attempts a policy may allow: past this, a caller is better served by an error it
/// can act on than by a call that keeps it waiting.
pub const ATTEMPTS_LIMIT: u32 = 32;

/// The longest backoff a policy may set between two attempts.
pub const BACKOFF_LIMIT: Duration = Duration::from_secs(60);

/// Attempts and backoff for calls refused with `UNAVAILABLE`. Other codes are never
/// retried: the same request would get the same answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (1: no retry). At most [`ATTEMPTS_LIMIT`].
    pub attempts_max: u32,
    /// The backoff before the first retry; it doubles for each retry after it.
    pub backoff_initial: Duration,
    /// The most the backoff grows to. At most [`BACKOFF_LIMIT`].
    pub backoff_max: Duration,
}

impl Default for RetryPolicy {
    /// Six attempts, 25 ms doubling to at most 1 s: about 0.4 to 0.8 s of waiting in all,
    /// which rides out a full commit queue or a restart of a local server without making
    /// a caller wait seconds for an answer it could act on.
    fn default() -> Self {
        Self {
            attempts_max: 6,
            backoff_initial: Duration::from_millis(25),
            backoff_max: Duration::from_secs(1),
        }
    }
}

impl RetryPolicy {
    /// One attempt, no retry.
    pub fn none() -> Self {
        Self { attempts_max: 1, ..Self::default() }
    }

    /// Checks the limits; the client refuses a policy outside them.
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=ATTEMPTS_LIMIT).contains(&self.attempts_max) {
            return Err(format!("attempts_max must be 1 to {ATTEMPTS_LIMIT}, not {}", self.attempts_max));
        }
        if self.backoff_max > BACKOFF_LIMIT || self.backoff_initial > self.backoff_max {
            return Err(format!(
                "backoff must satisfy initial ({:?}) <= max ({:?}) <= {BACKOFF_LIMIT:?}",
                self.backoff_initial, self.backoff_max
            ));
        }
        Ok(())
    }

    /// The wait before retry number `retry` (0 for the first): the exponential step
    /// `initial × 2^retry`, capped at `backoff_max`, then jittered into its upper half
    /// ("equal jitter": never less than half the step, so a refusal is never retried
    /// at once, yet two clients refused together spread out).
    pub fn backoff(&self, retry: u32) -> Duration {
        let step = self.backoff_initial.saturating_mul(1 << retry.min(20)).min(self.backoff_max);
        let half = step / 2;
        half + half.mul_f64(rand::random::<f64>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_the_cap_and_stays_in_the_upper_half() {
        let policy = RetryPolicy {
            attempts_max: 10,
            backoff_initial: Duration::from_millis(10),
            backoff_max: Duration::from_millis(100),
        };
        for (retry, step_ms) in [(0, 10), (1, 20), (2, 40), (3, 80), (4, 100), (9, 100), (1_000, 100)] {
            for _ in 0..200 {
                let wait = policy.backoff(retry);
                let step = Duration::from_millis(step_ms);
                assert!(
                    wait >= step / 2 && wait <= step,
                    "retry {retry}: {wait:?} outside [{:?}, {step:?}]",
                    step / 2
                );
            }
        }
        let waits: std::collections::HashSet<Duration> = (0..50).map(|_| policy.backoff(3)).collect();
        assert!(waits.len() > 1, "jittered, not fixed");
    }

    #[test]
    fn policies_outside_the_limits_are_refused() {
        assert!(RetryPolicy::default().validate().is_ok());
        assert!(RetryPolicy::none().validate().is_ok());
        assert!(RetryPolicy { attempts_max: 0, ..RetryPolicy::default() }.validate().is_err());
        assert!(
            RetryPolicy { attempts_max: ATTEMPTS_LIMIT + 1, ..RetryPolicy::default() }.validate().is_err()
        );
        let backwards = RetryPolicy {
            backoff_initial: Duration::from_secs(2),
            backoff_max: Duration::from_secs(1),
            ..RetryPolicy::default()
        };
        assert!(backwards.validate().is_err());
    }
}
