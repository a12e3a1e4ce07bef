//! Event streams (`GET /v1/stream`, the console's live updates): how many one customer
//! may hold open at once, and the single-use tickets browsers open them with.
//!
//! Both live in this process, or in Redis when `COFFER_REDIS_URL` is set:
//! - Open streams are a sorted set per customer whose members are leases (renewed every
//!   [`LEASE`] / 3 while the stream is open, removed when it closes), so a node that
//!   dies without closing its streams frees their places within [`LEASE`].
//! - A ticket issued by one node can be redeemed on any other (behind a load balancer
//!   the two requests rarely meet the same node).
//!
//! Redis unreachable: fail open to this node's own cap and tickets (a ticket issued
//! meanwhile is good on this node only), as for money requests.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use rand::RngCore as _;
use redis::Script;
use uuid::Uuid;

use super::shared::Shared;

/// How long a ticket is valid.
pub const TICKET_TTL: Duration = Duration::from_secs(30);
/// Tickets outstanding at most in this process.
const TICKETS_MAX: usize = 10_000;
/// How long a stream's place lasts in Redis without a renewal.
pub const LEASE: Duration = Duration::from_secs(60);

/// KEYS[1]: the customer's open streams; ARGV: member, limit, lease ms. Returns 1 and
/// adds the member, or 0 when the customer has the limit open already.
const OPEN: &str = r"
local now = redis.call('TIME')
now = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
";

/// KEYS[1]: the customer's open streams; ARGV: member, lease ms. Renews the member's lease.
const RENEW: &str = r"
local now = redis.call('TIME')
now = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
redis.call('ZADD', KEYS[1], 'XX', now + tonumber(ARGV[2]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 0
";

/// KEYS[1]: the customer's open streams; ARGV[1]: member.
const CLOSE: &str = "redis.call('ZREM', KEYS[1], ARGV[1]) return 0";

/// KEYS[1]: the ticket; ARGV: customer id, ttl ms.
const ISSUE: &str = "redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 0";

/// KEYS[1]: the ticket. Returns its customer id and deletes it, or false.
const REDEEM: &str = r"
local customer = redis.call('GET', KEYS[1])
if customer then redis.call('DEL', KEYS[1]) end
return customer
";

/// The stream limits and tickets.
#[derive(Debug)]
pub struct StreamLimits {
    per_customer_max: u32,
    open_here: Arc<Mutex<HashMap<Uuid, u32>>>,
    tickets: Mutex<HashMap<String, (Uuid, Instant)>>,
    shared: Option<Arc<SharedStreams>>,
}

#[derive(Debug)]
struct SharedStreams {
    redis: Arc<Shared>,
    open: Script,
    renew: Script,
    close: Script,
    issue: Script,
    redeem: Script,
}

/// A stream's place; the place is given back when this is dropped.
#[derive(Debug)]
pub struct StreamPlace {
    customer_id: Uuid,
    held: Held,
}

#[derive(Debug)]
enum Held {
    Here(Arc<Mutex<HashMap<Uuid, u32>>>),
    Shared { streams: Arc<SharedStreams>, member: String, renewal: tokio::task::JoinHandle<()> },
}

impl Drop for StreamPlace {
    fn drop(&mut self) {
        match &self.held {
            Held::Here(open) => {
                let mut open = open.lock().expect("not poisoned");
                if let Some(count) = open.get_mut(&self.customer_id) {
                    *count -= 1;
                    if *count == 0 {
                        open.remove(&self.customer_id);
                    }
                }
            }
            Held::Shared { streams, member, renewal } => {
                renewal.abort();
                let (streams, member, customer_id) = (streams.clone(), member.clone(), self.customer_id);
                // Unreachable: the lease runs out by itself.
                tokio::spawn(async move {
                    let key = streams.key(customer_id);
                    let _ = streams.redis.eval::<u64>(&streams.close, &[key], &[member]).await;
                });
            }
        }
    }
}

impl StreamLimits {
    pub fn new(per_customer_max: u32) -> Self {
        Self { per_customer_max, open_here: Arc::default(), tickets: Mutex::default(), shared: None }
    }

    /// Keeps places and tickets in `redis`, and here only while it cannot be reached.
    pub fn shared(mut self, redis: Arc<Shared>) -> Self {
        self.shared = Some(Arc::new(SharedStreams {
            redis,
            open: Script::new(OPEN),
            renew: Script::new(RENEW),
            close: Script::new(CLOSE),
            issue: Script::new(ISSUE),
            redeem: Script::new(REDEEM),
        }));
        self
    }

    /// A place for one more of the customer's streams, or `None` when they have
    /// `per_customer_max` open already.
    pub async fn open(&self, customer_id: Uuid) -> Option<StreamPlace> {
        if let Some(streams) = &self.shared {
            let member = Uuid::new_v4().simple().to_string();
            let lease_ms = LEASE.as_millis().to_string();
            let args = [member.clone(), self.per_customer_max.to_string(), lease_ms.clone()];
            match streams.redis.eval::<u64>(&streams.open, &[streams.key(customer_id)], &args).await {
                Ok(0) => return None,
                Ok(_) => {
                    let renewal = tokio::spawn({
                        let (streams, member) = (streams.clone(), member.clone());
                        async move {
                            let mut ticks = tokio::time::interval(LEASE / 3);
                            ticks.tick().await;
                            loop {
                                ticks.tick().await;
                                let args = [member.clone(), lease_ms.clone()];
                                let key = streams.key(customer_id);
                                let _ = streams.redis.eval::<u64>(&streams.renew, &[key], &args).await;
                            }
                        }
                    });
                    let held = Held::Shared { streams: streams.clone(), member, renewal };
                    return Some(StreamPlace { customer_id, held });
                }
                Err(_) => {}
            }
        }
        let mut open = self.open_here.lock().expect("not poisoned");
        let count = open.entry(customer_id).or_insert(0);
        if *count >= self.per_customer_max {
            return None;
        }
        *count += 1;
        Some(StreamPlace { customer_id, held: Held::Here(self.open_here.clone()) })
    }

    /// A new single-use ticket for the customer's stream; `None` when this process holds
    /// too many outstanding ones (only while they are kept here).
    pub async fn issue_ticket(&self, customer_id: Uuid) -> Option<String> {
        let mut bytes = [0u8; 24];
        rand::rng().fill_bytes(&mut bytes);
        let ticket = hex::encode(bytes);
        if let Some(streams) = &self.shared {
            let args = [customer_id.to_string(), TICKET_TTL.as_millis().to_string()];
            let key = streams.ticket_key(&ticket);
            if streams.redis.eval::<u64>(&streams.issue, &[key], &args).await.is_ok() {
                return Some(ticket);
            }
        }
        let mut tickets = self.tickets.lock().expect("not poisoned");
        if tickets.len() >= TICKETS_MAX {
            tickets.retain(|_, (_, issued)| issued.elapsed() < TICKET_TTL);
            if tickets.len() >= TICKETS_MAX {
                return None;
            }
        }
        tickets.insert(ticket.clone(), (customer_id, Instant::now()));
        Some(ticket)
    }

    /// The customer a live ticket was issued to; the ticket is spent.
    pub async fn redeem_ticket(&self, ticket: &str) -> Option<Uuid> {
        if let Some(streams) = &self.shared
            && let Ok(Some(customer)) = streams
                .redis
                .eval::<Option<String>>(&streams.redeem, &[streams.ticket_key(ticket)], &[])
                .await
        {
            return customer.parse().ok();
        }
        let (customer_id, issued) = self.tickets.lock().expect("not poisoned").remove(ticket)?;
        (issued.elapsed() < TICKET_TTL).then_some(customer_id)
    }
}

impl SharedStreams {
    fn key(&self, customer_id: Uuid) -> String {
        self.redis.key(&["streams", &customer_id.simple().to_string()])
    }

    fn ticket_key(&self, ticket: &str) -> String {
        // Only hex reaches Redis: a ticket from a query string is checked first.
        let ticket = if ticket.bytes().all(|byte| byte.is_ascii_hexdigit()) && ticket.len() <= 64 {
            ticket
        } else {
            "invalid"
        };
        self.redis.key(&["ticket", ticket])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_customer_holds_at_most_the_cap_and_a_closed_stream_frees_its_place() {
        let limits = StreamLimits::new(2);
        let (busy, calm) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let first = limits.open(busy).await.expect("first");
        let _second = limits.open(busy).await.expect("second");
        assert!(limits.open(busy).await.is_none(), "a third is refused");
        assert!(limits.open(calm).await.is_some(), "others are not");
        drop(first);
        assert!(limits.open(busy).await.is_some(), "a closed stream's place is free again");
    }

    #[tokio::test]
    async fn a_ticket_is_good_once() {
        let limits = StreamLimits::new(2);
        let customer = Uuid::from_u128(7);
        let ticket = limits.issue_ticket(customer).await.unwrap();
        assert_eq!(ticket.len(), 48);
        assert_eq!(limits.redeem_ticket(&ticket).await, Some(customer));
        assert_eq!(limits.redeem_ticket(&ticket).await, None);
        assert_eq!(limits.redeem_ticket("not-a-ticket").await, None);
    }
}
