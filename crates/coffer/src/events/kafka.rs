//! Kafka: a second destination of the relay when `COFFER_KAFKA_BROKERS` is set, for teams
//! whose other systems read Kafka. It gets the same CloudEvents as NATS or the in-process
//! bus, from the same outbox, before them (see [`super::relay::Both`]).
//!
//! Every event goes to one topic (`COFFER_KAFKA_TOPIC`, made with
//! `COFFER_KAFKA_PARTITIONS` partitions if it does not exist), keyed by the customer it
//! concerns (the event type for platform events), in the partition Kafka's own default
//! partitioner picks for that key (murmur2), so one customer's events — and so each of
//! their accounts' — keep their outbox order, and a Java producer with the same key agrees
//! on the partition. The value is the CloudEvents JSON envelope (structured mode,
//! `content-type: application/cloudevents+json`); headers carry the event id (`ce_id`,
//! what consumers deduplicate by), its type (`ce_type`), and its outbox position
//! (`coffer_seq`).
//!
//! Delivery is at least once, as with NATS: a batch is acknowledged up to the first event
//! whose partition did not take it; the relay publishes the rest again after a backoff, so a
//! consumer may see an event twice (never out of order within a key, once it skips ids it
//! has seen). Kafka has no deduplication window like NATS's; the id header is the contract.
//! A broker that is down or slow fails the batch within [`ACK_TIMEOUT`]; the connection is
//! made again at the next attempt.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use rskafka::client::partition::{Compression, PartitionClient, UnknownTopicHandling};
use rskafka::client::{Client, ClientBuilder};
use rskafka::record::Record;
use store::StoredEvent;

use super::relay::Publish;

/// How long connecting, making the topic, or one partition's produce may take.
pub const ACK_TIMEOUT: Duration = Duration::from_secs(5);
/// The value's content type: a whole CloudEvent in JSON (structured mode).
const CONTENT_TYPE: &[u8] = b"application/cloudevents+json; charset=utf-8";

/// Where and how to publish.
#[derive(Clone, Debug)]
pub struct KafkaSettings {
    /// Bootstrap brokers, `host:port`.
    pub brokers: Vec<String>,
    pub topic: String,
    /// Partitions of the topic when Coffer makes it (an existing topic keeps its own).
    pub partitions: i32,
    /// Copies of each partition when Coffer makes the topic.
    pub replication: i16,
}

/// The relay's Kafka producer.
#[derive(Debug)]
pub struct Kafka {
    settings: KafkaSettings,
    /// The connection and one client per partition of the topic; `None` until the first
    /// publish and after a failure (made again at the next).
    connected: tokio::sync::Mutex<Option<Connected>>,
}

#[derive(Debug)]
struct Connected {
    _client: Client,
    partitions: Vec<Arc<PartitionClient>>,
}

impl Kafka {
    pub fn new(settings: KafkaSettings) -> Self {
        Self { settings, connected: tokio::sync::Mutex::new(None) }
    }

    /// Connects, makes the topic if it is missing, and opens its partitions.
    async fn connect(&self) -> anyhow::Result<Connected> {
        let settings = &self.settings;
        // rskafka retries forever by default; the relay has its own backoff.
        let backoff = rskafka::BackoffConfig { deadline: Some(ACK_TIMEOUT), ..Default::default() };
        let client = ClientBuilder::new(settings.brokers.clone())
            .client_id("coffer-relay")
            .backoff_config(backoff)
            .build()
            .await?;
        let mut count = partition_count(&client, &settings.topic).await?;
        if count == 0 {
            let controller = client.controller_client()?;
            let made = controller
                .create_topic(
                    settings.topic.clone(),
                    settings.partitions,
                    settings.replication,
                    ACK_TIMEOUT.as_millis() as i32,
                )
                .await;
            // Another relay may have made it meanwhile: then it is there.
            if let Err(error) = made {
                tracing::info!(%error, topic = %settings.topic, "kafka: could not make the topic; looking for it");
            } else {
                tracing::info!(topic = %settings.topic, partitions = settings.partitions, "kafka: made the topic");
            }
            count = partition_count(&client, &settings.topic).await?;
            anyhow::ensure!(
                count > 0,
                "kafka: topic {} does not exist and could not be made",
                settings.topic
            );
        }
        let mut partitions = Vec::with_capacity(count as usize);
        for partition in 0..count {
            let client = client
                .partition_client(settings.topic.clone(), partition, UnknownTopicHandling::Retry)
                .await?;
            partitions.push(Arc::new(client));
        }
        Ok(Connected { _client: client, partitions })
    }
}

/// How many partitions `topic` has (0: none, it does not exist).
async fn partition_count(client: &Client, topic: &str) -> anyhow::Result<i32> {
    let topics = client.list_topics().await?;
    Ok(topics.iter().find(|found| found.name == topic).map_or(0, |found| found.partitions.len() as i32))
}

impl Publish for Kafka {
    async fn publish(&self, events: &[StoredEvent]) -> anyhow::Result<usize> {
        let mut connected = self.connected.lock().await;
        if connected.is_none() {
            *connected = Some(tokio::time::timeout(ACK_TIMEOUT * 2, self.connect()).await??);
        }
        let partitions = connected.as_ref().map(|c| c.partitions.clone()).unwrap_or_default();
        let published = produce(&partitions, events).await;
        if !matches!(published, Ok(count) if count == events.len()) {
            // Connect again next time: the broker may have restarted, moved a leader, or
            // lost the topic.
            *connected = None;
        }
        published
    }
}

/// Produces `events` to their partitions, one request per partition, all at once; returns
/// the prefix of `events` every partition took.
async fn produce(partitions: &[Arc<PartitionClient>], events: &[StoredEvent]) -> anyhow::Result<usize> {
    anyhow::ensure!(!partitions.is_empty(), "kafka: the topic has no partitions");
    // Per partition: the records in outbox order, and the index in `events` of each.
    let mut batches: BTreeMap<usize, (Vec<Record>, Vec<usize>)> = BTreeMap::new();
    for (index, event) in events.iter().enumerate() {
        let key = key(event);
        let partition = partition_for(key.as_bytes(), partitions.len());
        let batch = batches.entry(partition).or_default();
        batch.0.push(record(event, key));
        batch.1.push(index);
    }
    let sends = batches.into_iter().map(|(partition, (records, indexes))| {
        let client = partitions[partition].clone();
        async move {
            let sent =
                tokio::time::timeout(ACK_TIMEOUT, client.produce(records, Compression::NoCompression)).await;
            let result = match sent {
                Ok(Ok(_offsets)) => Ok(()),
                Ok(Err(error)) => Err(anyhow::Error::from(error)),
                Err(_) => Err(anyhow::anyhow!("kafka: no acknowledgement within {ACK_TIMEOUT:?}")),
            };
            (indexes[0], result)
        }
    });
    // The first event of each failed partition bounds the acknowledged prefix.
    let mut acknowledged = events.len();
    let mut first_error = None;
    for (first_index, result) in futures::future::join_all(sends).await {
        if let Err(error) = result
            && first_index < acknowledged
        {
            acknowledged = first_index;
            first_error = Some(error);
        }
    }
    match first_error {
        Some(error) if acknowledged == 0 => Err(error),
        _ => Ok(acknowledged),
    }
}

/// The record key: the customer the event concerns, or its type.
fn key(event: &StoredEvent) -> String {
    match event.customer_id {
        Some(customer) => customer.to_string(),
        None => event.event_type.clone(),
    }
}

fn record(event: &StoredEvent, key: String) -> Record {
    let headers = BTreeMap::from([
        ("content-type".to_owned(), CONTENT_TYPE.to_vec()),
        ("ce_id".to_owned(), event.id.to_string().into_bytes()),
        ("ce_type".to_owned(), event.event_type.clone().into_bytes()),
        ("coffer_seq".to_owned(), event.seq.to_string().into_bytes()),
    ]);
    let created = i64::try_from(event.created_at).unwrap_or(i64::MAX);
    Record {
        key: Some(key.into_bytes()),
        value: Some(event.payload.clone().into_bytes()),
        headers,
        timestamp: chrono::DateTime::from_timestamp_nanos(created),
    }
}

/// The partition Kafka's default partitioner gives `key`: murmur2, made positive,
/// modulo the partition count.
pub fn partition_for(key: &[u8], partitions: usize) -> usize {
    (murmur2(key) & 0x7fff_ffff) as usize % partitions.max(1)
}

/// Kafka's murmur2 (seed 0x9747b28c), as its Java client computes it for keys.
pub fn murmur2(data: &[u8]) -> i32 {
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let mut h: u32 = 0x9747_b28c ^ data.len() as u32;
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M) ^ k;
    }
    let tail = chunks.remainder();
    if tail.len() >= 3 {
        h ^= u32::from(tail[2]) << 16;
    }
    if tail.len() >= 2 {
        h ^= u32::from(tail[1]) << 8;
    }
    if !tail.is_empty() {
        h ^= u32::from(tail[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The values Kafka's own tests give for its murmur2.
    #[test]
    fn murmur2_matches_kafka() {
        let cases: [(&[u8], i32); 6] = [
            (b"21", -973_932_308),
            (b"foobar", -790_332_482),
            (b"a-little-bit-long-string", -985_981_536),
            (b"a-little-bit-longer-string", -1_486_304_829),
            (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58_897_971),
            (b"abc", 479_470_107),
        ];
        for (data, expected) in cases {
            assert_eq!(murmur2(data), expected, "{}", String::from_utf8_lossy(data));
        }
    }

    #[test]
    fn a_key_always_lands_in_one_partition_within_range() {
        for key in ["a", "customer", "0190d3c2-0000-7000-8000-000000000000"] {
            let partition = partition_for(key.as_bytes(), 6);
            assert!(partition < 6);
            assert_eq!(partition, partition_for(key.as_bytes(), 6));
        }
    }
}
