//! NATS JetStream: the relay's destination when `COFFER_NATS_URL` is set, and the source
//! of events for this process's consumers and WebSocket streams.
//!
//! Every event goes to stream `COFFER` on the subject of its type (e.g.
//! `coffer.transfer.posted`) with `Nats-Msg-Id` = the event id, so a re-publish inside the
//! stream's duplicate window is dropped by the broker. A row is marked sent only after
//! JetStream acknowledged it. Each consumer reads through its own durable pull consumer
//! (`coffer-notifications`, `coffer-analytics`; acknowledged after applying); WebSocket fan-out reads a plain
//! subscription (live only: a stream that missed events resumes from the outbox).

use std::sync::Arc;
use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::{self, consumer, stream};
use futures::StreamExt as _;
use store::StoredEvent;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::Consumer;
use super::bus::{Bus, Delivered};
use super::relay::Publish;

/// The stream that holds every Coffer event.
pub const STREAM: &str = "COFFER";
/// The subjects of that stream.
pub const SUBJECTS: &str = "coffer.>";
/// How long the broker remembers message ids for deduplication.
pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(10 * 60);
/// How long the stream keeps events.
const MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);
/// Header with the event's outbox position.
pub const SEQ_HEADER: &str = "Coffer-Seq";
/// How long a publish may wait for its acknowledgement.
const ACK_TIMEOUT: Duration = Duration::from_secs(5);

/// A connection to NATS with JetStream.
#[derive(Clone, Debug)]
pub struct Nats {
    client: async_nats::Client,
    jetstream: jetstream::Context,
    /// Whether stream `COFFER` is known to exist (a broker that restarted empty has none).
    stream_ready: Arc<std::sync::atomic::AtomicBool>,
    /// Copies of the stream a JetStream cluster keeps (1 on a single server).
    replicas: usize,
}

impl Nats {
    /// Connects to `url` (or any server of a comma-separated list, failing over between
    /// them). A broker that is down at startup is retried in the background:
    /// the relay keeps events in the outbox meanwhile.
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        let client = async_nats::ConnectOptions::new()
            .name("coffer")
            .retry_on_initial_connect()
            .connection_timeout(Duration::from_secs(5))
            .connect(url.split(',').map(str::trim).collect::<Vec<_>>())
            .await?;
        let mut jetstream = jetstream::new(client.clone());
        jetstream.set_timeout(ACK_TIMEOUT);
        Ok(Self { client, jetstream, stream_ready: Arc::default(), replicas: 1 })
    }

    /// Creates the stream with `replicas` copies (a JetStream cluster of at least as many
    /// servers): it survives the loss of a minority of them.
    pub fn with_replicas(mut self, replicas: usize) -> Self {
        self.replicas = replicas;
        self
    }

    /// Creates stream `COFFER` if it does not exist (an existing one keeps its settings).
    pub async fn ensure_stream(&self) -> anyhow::Result<()> {
        self.jetstream
            .get_or_create_stream(stream::Config {
                name: STREAM.to_owned(),
                subjects: vec![SUBJECTS.to_owned()],
                duplicate_window: DUPLICATE_WINDOW,
                max_age: MAX_AGE,
                storage: stream::StorageType::File,
                num_replicas: self.replicas,
                ..Default::default()
            })
            .await?;
        self.stream_ready.store(true, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    /// Whether the connection is up (for `/health/ready`).
    pub fn is_connected(&self) -> bool {
        self.client.connection_state() == async_nats::connection::State::Connected
    }

    pub fn jetstream(&self) -> &jetstream::Context {
        &self.jetstream
    }

    pub fn client(&self) -> &async_nats::Client {
        &self.client
    }

    /// Feeds live events from the broker to `bus` until `shutdown`.
    pub async fn fan_out(&self, bus: Bus, shutdown: CancellationToken) {
        loop {
            let mut subscription = match self.client.subscribe(SUBJECTS).await {
                Ok(subscription) => subscription,
                Err(error) => {
                    tracing::warn!(%error, "nats: cannot subscribe for the WebSocket fan-out; retrying");
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                    }
                }
            };
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    message = subscription.next() => match message {
                        Some(message) => {
                            if let Some(event) = delivered(&message.subject, message.headers.as_ref(), &message.payload) {
                                bus.publish(event);
                            }
                        }
                        None => break,
                    }
                }
            }
        }
    }

    /// Applies every event of the stream with `consumer` through its durable consumer,
    /// acknowledging each after it is applied, until `shutdown`.
    pub async fn consume<C: Consumer>(&self, consumer: Arc<C>, shutdown: CancellationToken) {
        let mut backoff = Duration::from_millis(100);
        while !shutdown.is_cancelled() {
            if let Err(error) = self.consume_once(&*consumer, &shutdown).await {
                tracing::warn!(%error, consumer = C::DURABLE, retry_in_ms = backoff.as_millis() as u64, "nats: consumer stopped; restarting");
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
        }
    }

    async fn consume_once<C: Consumer>(
        &self,
        applier: &C,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<()> {
        self.ensure_stream().await?;
        let stream = self.jetstream.get_stream(STREAM).await?;
        let consumer: consumer::PullConsumer = stream
            .get_or_create_consumer(
                C::DURABLE,
                consumer::pull::Config {
                    durable_name: Some(C::DURABLE.to_owned()),
                    ack_policy: consumer::AckPolicy::Explicit,
                    ack_wait: Duration::from_secs(30),
                    max_ack_pending: 1024,
                    ..Default::default()
                },
            )
            .await?;
        let mut messages = consumer.messages().await?;
        loop {
            let message = tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                message = messages.next() => match message {
                    Some(message) => message.map_err(|error| anyhow::anyhow!(error))?,
                    None => return Ok(()),
                },
            };
            if let Some(event) = delivered(&message.subject, message.headers.as_ref(), &message.payload) {
                // Not acknowledged on failure: the broker redelivers after ack_wait.
                applier.apply_all(std::slice::from_ref(&event)).await?;
            }
            message.ack().await.map_err(|error| anyhow::anyhow!(error))?;
        }
    }
}

/// An event as received from the broker; None when it is not one of ours.
fn delivered(subject: &str, headers: Option<&HeaderMap>, payload: &[u8]) -> Option<Delivered> {
    let headers = headers?;
    let id: Uuid = headers.get("Nats-Msg-Id")?.as_str().parse().ok()?;
    let seq: u64 = headers.get(SEQ_HEADER)?.as_str().parse().ok()?;
    let customer_id = headers.get("Coffer-Customer").and_then(|value| value.as_str().parse().ok());
    let payload = std::str::from_utf8(payload).ok()?;
    Some(Delivered { seq, id, event_type: subject.to_owned(), customer_id, payload: Arc::from(payload) })
}

impl Publish for Nats {
    async fn publish(&self, events: &[StoredEvent]) -> anyhow::Result<usize> {
        if !self.stream_ready.load(std::sync::atomic::Ordering::Relaxed) {
            self.ensure_stream().await?;
        }
        let published = self.publish_all(events).await;
        if !matches!(published, Ok(count) if count == events.len()) {
            // Perhaps the stream is gone (a broker restarted without its data): check it
            // again before the next attempt.
            self.stream_ready.store(false, std::sync::atomic::Ordering::Relaxed);
        }
        published
    }
}

impl Nats {
    async fn publish_all(&self, events: &[StoredEvent]) -> anyhow::Result<usize> {
        // Send them all, then collect the acknowledgements in order.
        let mut acks = Vec::with_capacity(events.len());
        for event in events {
            let mut headers = HeaderMap::new();
            headers.insert("Nats-Msg-Id", event.id.to_string().as_str());
            headers.insert(SEQ_HEADER, event.seq.to_string().as_str());
            if let Some(customer_id) = event.customer_id {
                headers.insert("Coffer-Customer", customer_id.to_string().as_str());
            }
            match self
                .jetstream
                .publish_with_headers(event.event_type.clone(), headers, event.payload.clone().into())
                .await
            {
                Ok(ack) => acks.push(ack),
                Err(error) if acks.is_empty() => return Err(error.into()),
                Err(_) => break,
            }
        }
        let mut acknowledged = 0;
        for ack in acks {
            match ack.await {
                Ok(_) => acknowledged += 1,
                Err(error) if acknowledged == 0 => return Err(error.into()),
                Err(_) => break,
            }
        }
        Ok(acknowledged)
    }
}
