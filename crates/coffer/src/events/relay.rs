//! The relay: reads the outbox in order, in bounded batches, hands each batch to a
//! [`Publish`] and marks rows sent only once the publisher has them. Without a broker the
//! destination is [`InProcess`]: the process's consumers (any [`super::Consumer`]s, which
//! the relay does not name), then the bus.
//!
//! Delivery is at least once: a relay stopped between publishing and marking publishes
//! the same events again when it restarts, and the broker (NATS deduplicates by
//! `Nats-Msg-Id`) and every consumer (they remember applied event ids) make that harmless.
//! While the publisher fails, the relay backs off exponentially and says so in the log
//! and in the `coffer_outbox_backlog` gauge.
//!
//! Several relays may run (a spare beside the active one): only the holder of the relay
//! lease in the database publishes. It renews the lease every third of
//! [`RelayOptions::lease`] and gives it up when it stops; the others ask for it at the same
//! pace and take it once it is free or expired — so a relay killed mid-stream is replaced
//! within one lease, resuming from the outbox where the dead one's marks stopped (events it
//! published but had not marked are published again and deduplicated as above).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use store::{Store, StoredEvent};
use tokio_util::sync::CancellationToken;

use super::AnyConsumer;
use super::bus::{Bus, Delivered};

/// The pause after the first failed step; it doubles per failure up to `backoff_max`.
const RETRY_FIRST: Duration = Duration::from_millis(100);

/// Where relayed events go.
pub trait Publish: Send + Sync + 'static {
    /// Publishes `events` in order; returns how many of them (a prefix) the destination
    /// acknowledged. An error means none is known to have arrived.
    fn publish(&self, events: &[StoredEvent]) -> impl Future<Output = anyhow::Result<usize>> + Send;
}

/// Two destinations, `first` then `then`: `then` gets the prefix `first` acknowledged,
/// and the relay marks sent what both took. Used for Kafka beside NATS or the in-process
/// bus: while Kafka is away no event is marked, so the others wait with it (one outbox
/// position for all; consumers of either skip the re-published ids).
#[derive(Debug)]
pub struct Both<A, B> {
    pub first: A,
    pub then: B,
}

impl<A: Publish, B: Publish> Publish for Both<A, B> {
    async fn publish(&self, events: &[StoredEvent]) -> anyhow::Result<usize> {
        let taken = self.first.publish(events).await?.min(events.len());
        self.then.publish(&events[..taken]).await
    }
}

/// An optional destination: none takes everything.
impl<P: Publish> Publish for Option<P> {
    async fn publish(&self, events: &[StoredEvent]) -> anyhow::Result<usize> {
        match self {
            Some(publisher) => publisher.publish(events).await,
            None => Ok(events.len()),
        }
    }
}

impl<P: Publish> Publish for Arc<P> {
    async fn publish(&self, events: &[StoredEvent]) -> anyhow::Result<usize> {
        P::publish(self, events).await
    }
}

/// The embedded destination: the consumers of this process, in order, then the
/// in-process bus.
#[derive(Clone, Debug)]
pub struct InProcess {
    pub bus: Bus,
    pub consumers: Vec<Arc<dyn AnyConsumer>>,
}

impl Publish for InProcess {
    async fn publish(&self, events: &[StoredEvent]) -> anyhow::Result<usize> {
        let delivered: Vec<Delivered> = events.iter().map(Delivered::from).collect();
        // The consumers first, each in one transaction: if one fails, nothing is sent
        // (and the retried batch finds what the others applied already applied).
        for consumer in &self.consumers {
            consumer.apply_all(&delivered).await?;
        }
        for event in delivered {
            self.bus.publish(event);
        }
        Ok(events.len())
    }
}

/// Where the relay stands: events waiting, how long the oldest has waited, and the
/// newest event's outbox position (for operators; the relay keeps the same figures in
/// `coffer_outbox_backlog` and `coffer_relay_lag_seconds`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OutboxStatus {
    pub backlog: u64,
    pub lag_seconds: f64,
    pub head: u64,
}

/// The outbox's status now.
pub async fn outbox_status(store: &Store) -> Result<OutboxStatus, store::StoreError> {
    let (backlog, oldest) = store.outbox_backlog().await?;
    let lag_seconds = oldest.map_or(0.0, |at| store::now_ns().saturating_sub(at) as f64 / 1e9);
    Ok(OutboxStatus { backlog, lag_seconds, head: store.outbox_head().await? })
}

/// Relay settings.
#[derive(Clone, Copy, Debug)]
pub struct RelayOptions {
    /// Events per batch at most.
    pub batch_max: u32,
    /// How often an idle relay looks at the outbox.
    pub idle_interval: Duration,
    /// Longest pause between attempts while the destination fails.
    pub backoff_max: Duration,
    /// How long the relay lease lasts without a renewal: how soon a spare relay takes over
    /// from a dead one.
    pub lease: Duration,
}

impl Default for RelayOptions {
    fn default() -> Self {
        Self {
            batch_max: 256,
            idle_interval: Duration::from_millis(200),
            backoff_max: Duration::from_secs(30),
            lease: Duration::from_secs(10),
        }
    }
}

/// One relay over one store.
#[derive(Debug)]
pub struct Relay<P> {
    store: Store,
    publisher: P,
    options: RelayOptions,
    /// This relay's name in the lease (random, made at start).
    holder: String,
}

impl<P: Publish> Relay<P> {
    pub fn new(store: Store, publisher: P, options: RelayOptions) -> Self {
        Self { store, publisher, options, holder: uuid::Uuid::new_v4().simple().to_string() }
    }

    /// Takes or renews the lease; `None` when the database could not be asked.
    async fn claim_lease(&self) -> Option<bool> {
        let now = store::now_ns();
        let until = now.saturating_add(u64::try_from(self.options.lease.as_nanos()).unwrap_or(u64::MAX));
        match self.store.claim_relay_lease(&self.holder, now, until).await {
            Ok(held) => Some(held),
            Err(error) => {
                tracing::warn!(%error, "relay: cannot renew the relay lease");
                None
            }
        }
    }

    /// Relays one batch; returns how many events it marked sent.
    pub async fn step(&self) -> anyhow::Result<usize> {
        let events = self.store.unsent_events(self.options.batch_max).await?;
        if events.is_empty() {
            return Ok(0);
        }
        let published = self.publisher.publish(&events).await?.min(events.len());
        let seqs: Vec<u64> = events[..published].iter().map(|event| event.seq).collect();
        self.store.mark_events_sent(&seqs, store::now_ns()).await?;
        for event in &events[..published] {
            metrics::counter!("coffer_events_relayed_total", "type" => event.event_type.clone()).increment(1);
        }
        if published < events.len() {
            anyhow::bail!("the destination took {published} of {} events", events.len());
        }
        Ok(published)
    }

    /// Relays until `shutdown` while it holds the relay lease (standing by while another
    /// relay does), then gives the lease up and returns.
    pub async fn run(self, shutdown: CancellationToken) {
        // Failed steps in a row: the pause after each grows with crate::support::backoff.
        let mut failures = 0u32;
        let mut failing_since: Option<std::time::Instant> = None;
        let renew_every = self.options.lease / 3;
        // When the lease was last claimed, and whether it was ours.
        let mut lease: Option<(std::time::Instant, bool)> = None;
        loop {
            if lease.is_none_or(|(at, _)| at.elapsed() >= renew_every) {
                let held = self.claim_lease().await.unwrap_or(false);
                let was = lease.is_some_and(|(_, held)| held);
                // Set at every claim, not only on a change: a recorder installed later sees it.
                metrics::gauge!("coffer_relay_leader").set(if held { 1.0 } else { 0.0 });
                if held != was {
                    if held {
                        tracing::info!(holder = %self.holder, "relay: holds the relay lease; publishing");
                    } else {
                        tracing::info!(holder = %self.holder, "relay: another relay holds the lease; standing by");
                    }
                }
                lease = Some((std::time::Instant::now(), held));
            }
            if lease.is_some_and(|(_, held)| !held) {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(renew_every) => {}
                }
                continue;
            }
            let pause = match self.step().await {
                Ok(0) => {
                    self.record_backlog().await;
                    failing_since = None;
                    failures = 0;
                    self.options.idle_interval
                }
                // A full batch: more may be waiting.
                Ok(_) => {
                    failing_since = None;
                    failures = 0;
                    Duration::ZERO
                }
                Err(error) => {
                    failures = failures.saturating_add(1);
                    let backoff = crate::support::backoff(RETRY_FIRST, failures, self.options.backoff_max);
                    let since = *failing_since.get_or_insert_with(std::time::Instant::now);
                    let backlog = self.record_backlog().await;
                    tracing::warn!(
                        %error,
                        backlog,
                        failing_for_s = since.elapsed().as_secs(),
                        retry_in_ms = backoff.as_millis() as u64,
                        "relay: cannot publish events; retrying with backoff"
                    );
                    backoff
                }
            };
            if pause.is_zero() && !shutdown.is_cancelled() {
                continue;
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(pause) => {}
            }
        }
        // Hands over at once instead of after the lease runs out.
        if let Err(error) = self.store.release_relay_lease(&self.holder).await {
            tracing::warn!(%error, "relay: cannot give up the relay lease; another takes it when it expires");
        }
        metrics::gauge!("coffer_relay_leader").set(0.0);
    }

    /// Updates the backlog gauges; returns the backlog.
    async fn record_backlog(&self) -> u64 {
        match self.store.outbox_backlog().await {
            Ok((count, oldest)) => {
                metrics::gauge!("coffer_outbox_backlog").set(count as f64);
                let lag_s = oldest.map_or(0.0, |at| store::now_ns().saturating_sub(at) as f64 / 1e9);
                metrics::gauge!("coffer_relay_lag_seconds").set(lag_s);
                count
            }
            Err(error) => {
                tracing::warn!(%error, "relay: cannot read the outbox backlog");
                0
            }
        }
    }
}
