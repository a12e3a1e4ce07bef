//! A per-customer rate limit on requests that move money or create things: past it,
//! 429 with `Retry-After`. It keeps one runaway client (or a stolen token) from flooding
//! the commit pipeline that every customer shares.
//!
//! A token bucket per customer holding at most a minute's worth, refilled at the
//! configured rate: `governor` in this process, or the same rule (GCRA, on Redis's
//! clock) in Redis when `COFFER_REDIS_URL` is set, so that a customer gets the configured
//! rate across all API nodes rather than per node. Redis unreachable: counted in this
//! process — fail open to each node's own allowance, because refusing every payment
//! while Redis is away would be an outage of the product, and each node's limiter still
//! bounds what one customer can push into its pipeline.

use std::{num::NonZeroU32, sync::Arc};

use governor::{
    DefaultKeyedRateLimiter, Quota,
    clock::{Clock, DefaultClock},
};
use redis::Script;
use uuid::Uuid;

use super::{Limited, shared::Shared};

/// KEYS[1]: the customer's theoretical arrival time (µs on Redis's clock); ARGV[1]: µs
/// between requests at the rate, ARGV[2]: the burst (requests). Returns 0 and takes one
/// request, or the wait in ms. (Stored with `%.0f`: Lua's `tostring` keeps 14 digits,
/// and a µs timestamp has 16.)
const TAKE: &str = r"
local now = redis.call('TIME')
now = tonumber(now[1]) * 1000000 + tonumber(now[2])
local interval = tonumber(ARGV[1])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local wait = tat + interval - now - interval * tonumber(ARGV[2])
if wait > 0 then return math.ceil(wait / 1000) end
redis.call('SET', KEYS[1], string.format('%.0f', tat + interval), 'PX', math.ceil((tat + interval - now) / 1000) + 1)
return 0
";

/// The limiter.
#[derive(Debug)]
pub struct MoneyRateLimit {
    limiter: DefaultKeyedRateLimiter<Uuid>,
    clock: DefaultClock,
    per_minute: NonZeroU32,
    shared: Option<(Arc<Shared>, Script)>,
}

impl MoneyRateLimit {
    pub fn per_minute(requests: NonZeroU32) -> Self {
        Self {
            limiter: DefaultKeyedRateLimiter::keyed(Quota::per_minute(requests)),
            clock: DefaultClock::default(),
            per_minute: requests,
            shared: None,
        }
    }

    /// Counts in `redis`, and here only while it cannot be reached.
    pub fn shared(mut self, redis: Arc<Shared>) -> Self {
        self.shared = Some((redis, Script::new(TAKE)));
        self
    }

    /// Takes one request from the customer's allowance, or says how long to wait.
    pub async fn check(&self, customer_id: Uuid) -> Result<(), Limited> {
        if let Some((redis, take)) = &self.shared {
            let interval_us = 60_000_000 / u64::from(self.per_minute.get());
            let key = redis.key(&["money", &customer_id.simple().to_string()]);
            let args = [interval_us.max(1).to_string(), self.per_minute.to_string()];
            match redis.eval::<u64>(take, &[key], &args).await {
                Ok(0) => return Ok(()),
                Ok(wait_ms) => return Err(Limited { retry_after_seconds: wait_ms.div_ceil(1000).max(1) }),
                Err(_) => {}
            }
        }
        self.limiter.check_key(&customer_id).map_err(|not_until| {
            let wait = not_until.wait_time_from(self.clock.now());
            Limited { retry_after_seconds: wait.as_secs().max(1) }
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

    #[tokio::test]
    async fn a_customer_past_the_limit_waits_and_others_do_not() {
        let limit = MoneyRateLimit::per_minute(NonZeroU32::new(3).unwrap());
        let (busy, calm) = (Uuid::from_u128(1), Uuid::from_u128(2));
        for _ in 0..3 {
            limit.check(busy).await.unwrap();
        }
        let refused = limit.check(busy).await.unwrap_err();
        assert!((1..=60).contains(&refused.retry_after_seconds), "{refused:?}");
        limit.check(calm).await.unwrap();
    }
}
