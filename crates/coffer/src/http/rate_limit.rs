//! A per-customer rate limit on requests that move money or create things: past it,
//! 429 with `Retry-After`. It keeps one runaway client (or a stolen token) from flooding
//! the commit pipeline that every customer shares.
//!
//! Per process, like the login throttle: with several API nodes a customer gets each
//! node's allowance (a shared store such as Redis is the multi-node option).

use std::num::NonZeroU32;

use governor::{
    DefaultKeyedRateLimiter, Quota,
    clock::{Clock, DefaultClock},
};
use uuid::Uuid;

use super::error::ApiError;

/// The limiter: a token bucket per customer, refilled at the configured rate per minute,
/// holding at most a minute's worth.
#[derive(Debug)]
pub struct MoneyRateLimit {
    limiter: DefaultKeyedRateLimiter<Uuid>,
    clock: DefaultClock,
}

impl MoneyRateLimit {
    pub fn per_minute(requests: NonZeroU32) -> Self {
        Self {
            limiter: DefaultKeyedRateLimiter::keyed(Quota::per_minute(requests)),
            clock: DefaultClock::default(),
        }
    }

    /// Takes one request from the customer's allowance, or says how long to wait.
    pub fn check(&self, customer_id: Uuid) -> Result<(), ApiError> {
        self.limiter.check_key(&customer_id).map_err(|not_until| {
            let wait = not_until.wait_time_from(self.clock.now());
            ApiError::TooManyRequests { retry_after_seconds: wait.as_secs().max(1) }
        })
    }

    /// Forgets customers whose allowance is full again, so memory follows the number of
    /// recently active customers, not of all customers ever seen.
    pub fn forget_idle(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_customer_past_the_limit_waits_and_others_do_not() {
        let limit = MoneyRateLimit::per_minute(NonZeroU32::new(3).unwrap());
        let (busy, calm) = (Uuid::from_u128(1), Uuid::from_u128(2));
        for _ in 0..3 {
            limit.check(busy).unwrap();
        }
        let refused = limit.check(busy).unwrap_err();
        assert!(
            matches!(refused, ApiError::TooManyRequests { retry_after_seconds } if (1..=60).contains(&retry_after_seconds))
        );
        limit.check(calm).unwrap();
    }
}
