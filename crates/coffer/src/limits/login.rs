//! Login throttling: failed logins counted per account and per client IP in fixed
//! windows; past the limit, logins get 429 with `Retry-After` until the window ends.
//!
//! An attempt takes its place in both windows *before* the password is checked
//! ([`LoginThrottle::begin`]), and gives it back when the password was right
//! ([`LoginThrottle::succeeded`]): so parallel guesses cannot all pass a check made
//! before any of them failed, and the limit holds exactly however many arrive at once.
//! A success clears the account's count (not the address's: one right password must not
//! reset a credential-stuffing source).
//!
//! Counted in this process, or in Redis when `COFFER_REDIS_URL` is set, so that the limit
//! is the configured total across every API node rather than per node. Redis unreachable:
//! logins are refused (429, retry in a few seconds) — fail closed, because a guesser who
//! can make Redis unreachable must not get every node's allowance afresh.
//!
//! A small bounded map rather than `governor`: what is counted is *failures*, which a
//! token bucket checked before the attempt cannot express, and a plain map makes the
//! memory bound explicit. Accounts are keyed by a keyed hash of the normalised email
//! (in Redis: HMAC-SHA-256 under a key made from the token signing secret), so neither
//! holds addresses and unknown emails are throttled exactly like known ones.

use std::{
    collections::HashMap,
    hash::{BuildHasher, Hash, RandomState},
    net::IpAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use hmac::{Hmac, KeyInit as _, Mac as _};
use redis::Script;
use sha2::Sha256;

use super::shared::Shared;

/// How long failures are remembered, and so the longest a client waits (15 minutes).
pub const LOGIN_WINDOW_SECONDS: u64 = 15 * 60;
/// Keys (accounts, IPs) tracked at most per map: about 40 bytes each, so a few MB even
/// when an attacker rotates through many addresses. Past it, expired windows are
/// dropped, then the oldest window.
const TRACKED_KEYS_MAX: usize = 100_000;
/// The wait a login is told while Redis cannot count it.
pub const UNCOUNTED_RETRY_SECONDS: u64 = 5;

/// KEYS: the windows (account, then address); ARGV[1]: window in ms, ARGV[1 + i]: the
/// limit of KEYS[i]. Returns 0 and counts the attempt in every window, or the longest
/// wait in ms when a window is full (then counts nothing).
const BEGIN: &str = r"
local wait = 0
for i, key in ipairs(KEYS) do
  if tonumber(redis.call('GET', key) or '0') >= tonumber(ARGV[i + 1]) then
    local left = redis.call('PTTL', key)
    if left < 1 then left = tonumber(ARGV[1]) end
    if left > wait then wait = left end
  end
end
if wait > 0 then return wait end
for _, key in ipairs(KEYS) do
  if redis.call('INCR', key) == 1 then redis.call('PEXPIRE', key, ARGV[1]) end
end
return 0
";

/// KEYS: the account's window, then the address's (optional). Clears the account's
/// count and gives the attempt back to the address.
const SUCCEEDED: &str = r"
redis.call('DEL', KEYS[1])
if KEYS[2] and redis.call('EXISTS', KEYS[2]) == 1 then
  if redis.call('DECR', KEYS[2]) <= 0 then redis.call('DEL', KEYS[2]) end
end
return 0
";

/// Login attempts per account and per IP.
#[derive(Debug)]
pub struct LoginThrottle {
    accounts: Mutex<Windows<u64>>,
    addresses: Mutex<Windows<IpAddr>>,
    account_failures_max: u32,
    address_failures_max: u32,
    window: Duration,
    hasher: RandomState,
    shared: Option<SharedLogins>,
}

/// The throttle's windows in Redis.
#[derive(Debug)]
struct SharedLogins {
    redis: Arc<Shared>,
    /// Keys the email hashes (from the token signing secret, the same on every node).
    account_key: [u8; 32],
    begin: Script,
    succeeded: Script,
}

#[derive(Debug)]
struct Windows<K> {
    map: HashMap<K, Window>,
}

#[derive(Clone, Copy, Debug)]
struct Window {
    started: Instant,
    failures: u32,
}

impl<K: Hash + Eq + Copy> Windows<K> {
    fn new() -> Self {
        Self { map: HashMap::new() }
    }

    /// Time left to wait when `key` has `max` failures in a live window.
    fn blocked_for(&self, key: &K, max: u32, window: Duration, now: Instant) -> Option<Duration> {
        let entry = self.map.get(key)?;
        let ends = entry.started + window;
        (entry.failures >= max && ends > now).then(|| ends - now)
    }

    fn record(&mut self, key: K, window: Duration, now: Instant) {
        if !self.map.contains_key(&key) && self.map.len() >= TRACKED_KEYS_MAX {
            self.map.retain(|_, entry| entry.started + window > now);
            if self.map.len() >= TRACKED_KEYS_MAX
                && let Some(oldest) =
                    self.map.iter().min_by_key(|(_, entry)| entry.started).map(|(key, _)| *key)
            {
                self.map.remove(&oldest);
            }
        }
        let entry = self.map.entry(key).or_insert(Window { started: now, failures: 0 });
        if entry.started + window <= now {
            *entry = Window { started: now, failures: 0 };
        }
        entry.failures = entry.failures.saturating_add(1);
    }

    /// Gives back one attempt counted by [`Self::record`].
    fn release(&mut self, key: &K) {
        if let Some(entry) = self.map.get_mut(key) {
            entry.failures = entry.failures.saturating_sub(1);
        }
    }
}

impl LoginThrottle {
    pub fn new(account_failures_max: u32, address_failures_max: u32) -> Self {
        Self {
            accounts: Mutex::new(Windows::new()),
            addresses: Mutex::new(Windows::new()),
            account_failures_max,
            address_failures_max,
            window: Duration::from_secs(LOGIN_WINDOW_SECONDS),
            hasher: RandomState::new(),
            shared: None,
        }
    }

    /// Counts in `redis` instead of this process; `account_key` keys the email hashes
    /// and must be the same on every node.
    pub fn shared(mut self, redis: Arc<Shared>, account_key: [u8; 32]) -> Self {
        self.shared = Some(SharedLogins {
            redis,
            account_key,
            begin: Script::new(BEGIN),
            succeeded: Script::new(SUCCEEDED),
        });
        self
    }

    /// Counts a login attempt, or says how many whole seconds to wait before trying one.
    /// Call [`Self::succeeded`] when the password was right.
    pub async fn begin(&self, email: &str, address: Option<IpAddr>) -> Result<(), u64> {
        match &self.shared {
            Some(shared) => {
                let keys = shared.keys(email, address);
                let mut args =
                    vec![self.window.as_millis().to_string(), self.account_failures_max.to_string()];
                if address.is_some() {
                    args.push(self.address_failures_max.to_string());
                }
                match shared.redis.eval::<u64>(&shared.begin, &keys, &args).await {
                    Ok(0) => Ok(()),
                    Ok(wait_ms) => Err(wait_ms.div_ceil(1000)),
                    Err(_) => Err(UNCOUNTED_RETRY_SECONDS),
                }
            }
            None => self.begin_here(email, address),
        }
    }

    fn begin_here(&self, email: &str, address: Option<IpAddr>) -> Result<(), u64> {
        let now = Instant::now();
        let account = self.account_key(email);
        let mut accounts = self.accounts.lock().expect("throttle lock");
        let mut addresses = self.addresses.lock().expect("throttle lock");
        let account_wait = accounts.blocked_for(&account, self.account_failures_max, self.window, now);
        let address_wait = address
            .and_then(|address| addresses.blocked_for(&address, self.address_failures_max, self.window, now));
        if let Some(wait) = account_wait.max(address_wait) {
            // Round up: retrying a fraction of a second early would be refused again.
            return Err(wait.as_secs() + u64::from(wait.subsec_nanos() > 0));
        }
        accounts.record(account, self.window, now);
        if let Some(address) = address {
            addresses.record(address, self.window, now);
        }
        Ok(())
    }

    /// The attempt [`Self::begin`] counted had the right password: clears the account's
    /// count and gives the attempt back to the address.
    pub async fn succeeded(&self, email: &str, address: Option<IpAddr>) {
        match &self.shared {
            Some(shared) => {
                // Unreachable: the count stays, as if the login had failed.
                let _ = shared.redis.eval::<u64>(&shared.succeeded, &shared.keys(email, address), &[]).await;
            }
            None => {
                self.accounts.lock().expect("throttle lock").map.remove(&self.account_key(email));
                if let Some(address) = address {
                    self.addresses.lock().expect("throttle lock").release(&address);
                }
            }
        }
    }

    fn account_key(&self, email: &str) -> u64 {
        self.hasher.hash_one(email)
    }
}

impl SharedLogins {
    fn keys(&self, email: &str, address: Option<IpAddr>) -> Vec<String> {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.account_key).expect("HMAC takes keys of any length");
        mac.update(email.as_bytes());
        let account = hex::encode(&mac.finalize().into_bytes()[..16]);
        let mut keys = vec![self.redis.key(&["login", "account", &account])];
        if let Some(address) = address {
            keys.push(self.redis.key(&["login", "address", &address.to_string()]));
        }
        keys
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOME: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST));

    #[tokio::test]
    async fn blocks_an_account_after_its_attempts_until_the_window_ends() {
        let throttle = LoginThrottle::new(3, 100);
        for _ in 0..3 {
            assert_eq!(throttle.begin("ada@example.com", HOME).await, Ok(()));
        }
        let wait = throttle.begin("ada@example.com", HOME).await.expect_err("blocked");
        assert!(wait > LOGIN_WINDOW_SECONDS - 5 && wait <= LOGIN_WINDOW_SECONDS, "{wait}");
        assert_eq!(throttle.begin("bob@example.com", HOME).await, Ok(()), "other accounts are not blocked");
    }

    #[tokio::test]
    async fn blocks_an_address_across_accounts_and_success_clears_only_the_account() {
        let throttle = LoginThrottle::new(100, 2);
        throttle.begin("a@example.com", HOME).await.unwrap();
        throttle.begin("b@example.com", HOME).await.unwrap();
        assert!(throttle.begin("c@example.com", HOME).await.is_err());
        assert_eq!(throttle.begin("c@example.com", None).await, Ok(()));
        // A right password gives the address its attempt back.
        throttle.succeeded("b@example.com", HOME).await;
        assert_eq!(throttle.begin("c@example.com", HOME).await, Ok(()));

        let throttle = LoginThrottle::new(1, 100);
        throttle.begin("a@example.com", HOME).await.unwrap();
        assert!(throttle.begin("a@example.com", HOME).await.is_err());
        throttle.succeeded("a@example.com", HOME).await;
        assert_eq!(throttle.begin("a@example.com", HOME).await, Ok(()));
    }

    #[test]
    fn memory_stays_bounded() {
        let mut windows = Windows::new();
        let now = Instant::now();
        for key in 0..(TRACKED_KEYS_MAX as u64 + 10) {
            windows.record(key, Duration::from_secs(60), now);
        }
        assert_eq!(windows.map.len(), TRACKED_KEYS_MAX);
    }
}
