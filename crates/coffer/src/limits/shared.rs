//! The Redis that several API nodes count their limits in (`COFFER_REDIS_URL`).
//!
//! Every count is one Lua script (atomic in Redis, one round trip) over one multiplexed
//! connection, made when first needed and remade after a failure. A call that fails or
//! takes longer than [`TIMEOUT`] is [`Unreachable`], and so is every call for
//! [`PAUSE_AFTER_FAILURE`] after it: while Redis is away, requests do not each wait for a
//! connection attempt. What a limit does then is its own choice (see the module above).
//!
//! Keys are `PREFIX:limit:...` (`COFFER_REDIS_KEY_PREFIX`), each with an expiry, so Redis
//! never holds more than the live windows, buckets and leases.

use std::{
    sync::Mutex,
    time::{Duration, Instant},
};

use redis::{AsyncConnectionConfig, FromRedisValue, Script, aio::MultiplexedConnection};

/// Longest a connection attempt or a script may take before the call counts as failed.
pub const TIMEOUT: Duration = Duration::from_millis(500);
/// After a failure, how long calls fail at once before a new connection is tried.
pub const PAUSE_AFTER_FAILURE: Duration = Duration::from_secs(1);

/// Redis could not be asked (down, unreachable, too slow, or it refused the script).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Unreachable;

/// The shared counters' connection.
#[derive(Debug)]
pub struct Shared {
    client: redis::Client,
    prefix: String,
    state: tokio::sync::Mutex<Option<MultiplexedConnection>>,
    failed_at: Mutex<Option<Instant>>,
}

impl Shared {
    /// Checks the URL; connects on first use, so a server starts while Redis is away.
    pub fn new(url: &str, prefix: &str) -> anyhow::Result<Self> {
        let client = redis::Client::open(url)
            .map_err(|error| anyhow::anyhow!("COFFER_REDIS_URL is not a Redis URL: {error}"))?;
        Ok(Self {
            client,
            prefix: prefix.to_owned(),
            state: tokio::sync::Mutex::new(None),
            failed_at: Mutex::new(None),
        })
    }

    /// `PREFIX:limit:a:b:...`.
    pub fn key(&self, parts: &[&str]) -> String {
        let mut key = format!("{}:limit", self.prefix);
        for part in parts {
            key.push(':');
            key.push_str(part);
        }
        key
    }

    /// Runs `script` with `keys` and `args`.
    pub async fn eval<T: FromRedisValue>(
        &self,
        script: &Script,
        keys: &[String],
        args: &[String],
    ) -> Result<T, Unreachable> {
        let mut connection = self.connection().await?;
        let mut invocation = script.prepare_invoke();
        for key in keys {
            invocation.key(key);
        }
        for arg in args {
            invocation.arg(arg);
        }
        match tokio::time::timeout(TIMEOUT, invocation.invoke_async(&mut connection)).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => Err(self.failed(&error.to_string()).await),
            Err(_) => Err(self.failed("no answer in time").await),
        }
    }

    async fn connection(&self) -> Result<MultiplexedConnection, Unreachable> {
        let mut state = self.state.lock().await;
        if let Some(connection) = state.as_ref() {
            return Ok(connection.clone());
        }
        if self.failed_at.lock().expect("not poisoned").is_some_and(|at| at.elapsed() < PAUSE_AFTER_FAILURE) {
            return Err(Unreachable);
        }
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(TIMEOUT))
            .set_response_timeout(Some(TIMEOUT));
        match tokio::time::timeout(TIMEOUT, self.client.get_multiplexed_async_connection_with_config(&config))
            .await
        {
            Ok(Ok(connection)) => {
                if self.failed_at.lock().expect("not poisoned").take().is_some() {
                    tracing::info!("Redis reachable again: limits are shared across nodes");
                }
                *state = Some(connection.clone());
                Ok(connection)
            }
            Ok(Err(error)) => {
                drop(state);
                Err(self.failed(&error.to_string()).await)
            }
            Err(_) => {
                drop(state);
                Err(self.failed("no connection in time").await)
            }
        }
    }

    /// Forgets the connection and pauses calls; logs the first failure of a run.
    async fn failed(&self, error: &str) -> Unreachable {
        *self.state.lock().await = None;
        metrics::counter!("coffer_redis_failures_total").increment(1);
        let first = self.failed_at.lock().expect("not poisoned").replace(Instant::now()).is_none();
        if first {
            tracing::warn!(%error, "Redis unreachable: logins are refused, money and stream limits count on this node only");
        }
        Unreachable
    }
}
