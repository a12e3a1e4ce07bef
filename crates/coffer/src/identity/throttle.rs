//! Login throttling: failed logins counted per account and per client IP in fixed
//! windows; past the limit, logins get 429 with `Retry-After` until the window ends.
//!
//! A small bounded map rather than `governor`: what is counted is *failures* (a success
//! clears the account's count), which a token bucket checked before the attempt cannot
//! express without a second limiter, and a plain map makes the memory bound explicit.
//! Accounts are keyed by a keyed hash of the normalised email, so the map holds no
//! addresses and unknown emails are throttled exactly like known ones (no enumeration).
//!
//! The limits are per process: with several API nodes an attacker gets each node's
//! allowance (a shared store such as Redis is the multi-node option).

use std::{
    collections::HashMap,
    hash::{BuildHasher, Hash, RandomState},
    net::IpAddr,
    sync::Mutex,
    time::{Duration, Instant},
};

/// How long failures are remembered, and so the longest a client waits (15 minutes).
pub const LOGIN_WINDOW_SECONDS: u64 = 15 * 60;
/// Keys (accounts, IPs) tracked at most per map: about 40 bytes each, so a few MB even
/// when an attacker rotates through many addresses. Past it, expired windows are
/// dropped, then the oldest window.
const TRACKED_KEYS_MAX: usize = 100_000;

/// Failure counts per account and per IP.
#[derive(Debug)]
pub struct LoginThrottle {
    accounts: Mutex<Windows<u64>>,
    addresses: Mutex<Windows<IpAddr>>,
    account_failures_max: u32,
    address_failures_max: u32,
    window: Duration,
    hasher: RandomState,
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
        }
    }

    fn account_key(&self, email: &str) -> u64 {
        self.hasher.hash_one(email)
    }

    /// Whole seconds to wait before this login may be tried, or `None` if it may go on.
    pub fn check(&self, email: &str, address: Option<IpAddr>) -> Option<u64> {
        let now = Instant::now();
        let account = self.accounts.lock().expect("throttle lock").blocked_for(
            &self.account_key(email),
            self.account_failures_max,
            self.window,
            now,
        );
        let address = address.and_then(|address| {
            self.addresses.lock().expect("throttle lock").blocked_for(
                &address,
                self.address_failures_max,
                self.window,
                now,
            )
        });
        // Round up: retrying a fraction of a second early would be refused again.
        account.max(address).map(|wait| wait.as_secs() + u64::from(wait.subsec_nanos() > 0))
    }

    /// Counts a failed login against the account and the address.
    pub fn record_failure(&self, email: &str, address: Option<IpAddr>) {
        let now = Instant::now();
        self.accounts.lock().expect("throttle lock").record(self.account_key(email), self.window, now);
        if let Some(address) = address {
            self.addresses.lock().expect("throttle lock").record(address, self.window, now);
        }
    }

    /// A successful login clears the account's failures (not the address's: one right
    /// password must not reset a credential-stuffing source).
    pub fn record_success(&self, email: &str) {
        self.accounts.lock().expect("throttle lock").map.remove(&self.account_key(email));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOME: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST));

    #[test]
    fn blocks_an_account_after_its_failures_until_the_window_ends() {
        let throttle = LoginThrottle::new(3, 100);
        for _ in 0..3 {
            assert_eq!(throttle.check("ada@example.com", HOME), None);
            throttle.record_failure("ada@example.com", HOME);
        }
        let wait = throttle.check("ada@example.com", HOME).expect("blocked");
        assert!(wait > LOGIN_WINDOW_SECONDS - 5 && wait <= LOGIN_WINDOW_SECONDS, "{wait}");
        assert_eq!(throttle.check("bob@example.com", HOME), None, "other accounts are not blocked");
    }

    #[test]
    fn blocks_an_address_across_accounts_and_success_clears_only_the_account() {
        let throttle = LoginThrottle::new(100, 2);
        throttle.record_failure("a@example.com", HOME);
        throttle.record_failure("b@example.com", HOME);
        assert!(throttle.check("c@example.com", HOME).is_some());
        assert_eq!(throttle.check("c@example.com", None), None);

        let throttle = LoginThrottle::new(1, 100);
        throttle.record_failure("a@example.com", HOME);
        assert!(throttle.check("a@example.com", HOME).is_some());
        throttle.record_success("a@example.com");
        assert_eq!(throttle.check("a@example.com", HOME), None);
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
