//! The limits that keep one client from taking more than its share: failed logins
//! ([`login`]), money-moving requests per customer ([`money`]), and open event streams
//! per customer with their tickets ([`streams`]).
//!
//! Each is counted in this process by default. With several API nodes behind a load
//! balancer that would give a client each node's allowance, so when `COFFER_REDIS_URL`
//! is set they are counted in Redis ([`shared`]) and hold at the configured total across
//! all nodes. When Redis cannot be reached, each limit falls back the way that is safe
//! for it — logins are refused (fail closed), money requests and streams are counted on
//! the node alone (fail open to one node's allowance) — and nothing answers 5xx because
//! of it. docs/scaling.md has the table.

pub mod login;
pub mod money;
pub mod shared;
pub mod streams;

use std::sync::Arc;

/// A request refused by a limit: wait this long before the next one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limited {
    pub retry_after_seconds: u64,
}

/// The limits of one API node.
#[derive(Debug)]
pub struct Limits {
    pub money: money::MoneyRateLimit,
    pub streams: streams::StreamLimits,
}

impl Limits {
    /// `redis`: count in it instead of this process.
    pub fn new(
        money_per_minute: std::num::NonZeroU32,
        streams_per_customer_max: u32,
        redis: Option<Arc<shared::Shared>>,
    ) -> Self {
        let money = money::MoneyRateLimit::per_minute(money_per_minute);
        let streams = streams::StreamLimits::new(streams_per_customer_max);
        match redis {
            Some(redis) => Self { money: money.shared(redis.clone()), streams: streams.shared(redis) },
            None => Self { money, streams },
        }
    }
}
