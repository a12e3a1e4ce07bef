//! The relay's Kafka output against a real Kafka-protocol broker (tansu, in memory), with
//! the broker taken away under load twice: hung (SIGSTOP: requests time out) and killed
//! (SIGKILL, restarted empty). Runs when `COFFER_TEST_TANSU` names the tansu binary
//! (`.ci/run` installs it); under `CI=true` it must.
//!
//! What the broker holds is checked against the outbox: every event arrives (what the
//! first broker held before it was killed plus what the second received), each record
//! carries its event's id, type and outbox position in headers and its customer as key,
//! sits in the partition Kafka's partitioner gives that key, and a consumer that skips
//! ids it has seen reads each key's events in outbox order.

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use common::{Backend, Options, customer, register_and_login, spawn_app_with};
use rskafka::client::ClientBuilder;
use rskafka::client::partition::{OffsetAt, UnknownTopicHandling};

const TOPIC: &str = "coffer.events";
const PARTITIONS: i32 = 3;

/// The tansu binary: COFFER_TEST_TANSU; under CI=true it must be set.
fn tansu() -> Option<String> {
    match std::env::var("COFFER_TEST_TANSU") {
        Ok(path) if !path.is_empty() => Some(path),
        _ if std::env::var("CI").is_ok_and(|ci| ci == "true") => {
            panic!("CI=true but COFFER_TEST_TANSU is not set: the Kafka suite must run in CI")
        }
        _ => None,
    }
}

/// A tansu broker of the test's own on `port`, keeping everything in memory.
struct Broker {
    binary: String,
    port: u16,
    process: Option<Child>,
}

impl Broker {
    fn start(binary: &str, port: u16) -> Self {
        let mut broker = Self { binary: binary.to_owned(), port, process: None };
        broker.spawn();
        broker
    }

    fn spawn(&mut self) {
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let process = Command::new(&self.binary)
            .args(["broker", "--listener-url", &url, "--advertised-listener-url", &url])
            .args(["--storage-engine", "memory://tansu/"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start {}: {error}", self.binary));
        self.process = Some(process);
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "tansu did not listen on {}", self.port);
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn signal(&self, signal: &str) {
        let pid = self.process.as_ref().expect("running").id().to_string();
        let status = Command::new("kill").args([signal, &pid]).status().unwrap();
        assert!(status.success(), "kill {signal} {pid}");
    }

    fn kill(&mut self) {
        if let Some(mut process) = self.process.take() {
            let _ = process.kill();
            let _ = process.wait();
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if self.process.is_some() {
            self.signal("-CONT");
        }
        self.kill();
    }
}

/// One record as the broker holds it.
#[derive(Debug)]
struct Held {
    partition: i32,
    key: String,
    id: String,
    event_type: String,
    seq: u64,
    payload: serde_json::Value,
}

/// Everything the broker at `port` holds in the topic, partition by partition in offset
/// order.
async fn held(port: u16) -> Vec<Held> {
    let client = ClientBuilder::new(vec![format!("127.0.0.1:{port}")]).build().await.unwrap();
    let topic = client.list_topics().await.unwrap().into_iter().find(|topic| topic.name == TOPIC);
    let Some(topic) = topic else { return Vec::new() };
    assert_eq!(topic.partitions.len(), PARTITIONS as usize, "the relay made the topic with its partitions");
    let mut all = Vec::new();
    for partition in topic.partitions {
        let client = client.partition_client(TOPIC, partition, UnknownTopicHandling::Retry).await.unwrap();
        let end = client.get_offset(OffsetAt::Latest).await.unwrap();
        let mut offset = client.get_offset(OffsetAt::Earliest).await.unwrap();
        while offset < end {
            let (records, _) = client.fetch_records(offset, 1..1_000_000, 1_000).await.unwrap();
            assert!(!records.is_empty(), "partition {partition} has records from {offset} to {end}");
            for record in records {
                offset = record.offset + 1;
                let record = record.record;
                let header = |name: &str| {
                    String::from_utf8(
                        record.headers.get(name).unwrap_or_else(|| panic!("header {name}")).clone(),
                    )
                    .unwrap()
                };
                assert_eq!(header("content-type"), "application/cloudevents+json; charset=utf-8");
                all.push(Held {
                    partition,
                    key: String::from_utf8(record.key.clone().expect("a key")).unwrap(),
                    id: header("ce_id"),
                    event_type: header("ce_type"),
                    seq: header("coffer_seq").parse().unwrap(),
                    payload: serde_json::from_slice(record.value.as_deref().expect("a value")).unwrap(),
                });
            }
        }
    }
    all
}

/// Transfers between the customers' wallets, round and round, until `stop`; returns how
/// many were made.
async fn load(
    app: Arc<common::TestApp>,
    people: Arc<Vec<(common::Session, String)>>,
    stop: Arc<AtomicBool>,
) -> usize {
    let mut made = 0;
    while !stop.load(Ordering::Relaxed) {
        let (from, to) = (&people[made % people.len()], &people[(made + 1) % people.len()]);
        customer::transfer(&app, &from.0, &from.1, &to.1, 1).await;
        made += 1;
    }
    made
}

struct Load {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<usize>,
}

impl Load {
    fn start(app: &Arc<common::TestApp>, people: &Arc<Vec<(common::Session, String)>>) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn(load(app.clone(), people.clone(), stop.clone()));
        Self { stop, task }
    }

    async fn finish(self) -> usize {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.unwrap()
    }
}

async fn backlog(store: &store::Store) -> u64 {
    store.outbox_backlog().await.unwrap().0
}

async fn drained(store: &store::Store, within: Duration) {
    let deadline = Instant::now() + within;
    while backlog(store).await > 0 {
        assert!(
            Instant::now() < deadline,
            "the relay did not drain the outbox: {} left",
            backlog(store).await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

static BROKERS: OnceLock<String> = OnceLock::new();

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_publishes_every_event_to_kafka_across_a_hung_and_a_restarted_broker() {
    let Some(binary) = tansu() else { return };
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut broker = Broker::start(&binary, port);
    BROKERS.set(format!("127.0.0.1:{port}")).unwrap();
    let options = Options {
        configure: |args| {
            args.kafka_brokers = vec![BROKERS.get().unwrap().clone()];
            args.kafka_partitions = PARTITIONS;
            // Short pauses, so the relay retries several times within the test.
            args.relay_interval_ms = 20;
        },
        ..Options::default()
    };
    let app = Arc::new(spawn_app_with(&Backend::Sqlite, options).await);
    let store = app.store().await;
    let mut people = Vec::new();
    for index in 0..5 {
        let session = register_and_login(&app, &format!("kafka{index}@example.com")).await;
        let wallet = customer::open_wallet(&app, &session, "EUR").await;
        customer::top_up(&app, &session, &wallet, 1_000_000).await;
        people.push((session, wallet));
    }
    let people = Arc::new(people);
    let mut made = 0;

    // Hung: the broker stops answering for longer than a produce may wait.
    let running = Load::start(&app, &people);
    tokio::time::sleep(Duration::from_secs(1)).await;
    broker.signal("-STOP");
    tokio::time::sleep(Duration::from_secs(7)).await;
    let waiting = backlog(&store).await;
    assert!(waiting > 0, "nothing is marked sent while the broker hangs");
    broker.signal("-CONT");
    made += running.finish().await;
    drained(&store, Duration::from_secs(60)).await;

    // Killed: read what it holds, kill it under load, start it again empty.
    let before = held(port).await;
    broker.kill();
    let running = Load::start(&app, &people);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let waiting_down = backlog(&store).await;
    assert!(waiting_down > 0, "nothing is marked sent while the broker is down");
    broker.spawn();
    tokio::time::sleep(Duration::from_secs(1)).await;
    made += running.finish().await;
    drained(&store, Duration::from_secs(60)).await;
    let after = held(port).await;

    // Against the outbox.
    let mut events: Vec<store::StoredEvent> = Vec::new();
    loop {
        let page = store.events_after(events.last().map_or(0, |event| event.seq), 1000).await.unwrap();
        if page.is_empty() {
            break;
        }
        events.extend(page);
    }
    let outbox: HashMap<String, &store::StoredEvent> = events.iter().map(|e| (e.id.to_string(), e)).collect();
    let mut arrived = HashSet::new();
    for record in before.iter().chain(&after) {
        let event = outbox.get(&record.id).unwrap_or_else(|| panic!("{} is not in the outbox", record.id));
        assert_eq!(record.seq, event.seq);
        assert_eq!(record.event_type, event.event_type);
        assert_eq!(record.payload["id"], record.id.as_str(), "the value is the event's envelope");
        let key = event.customer_id.map_or_else(|| event.event_type.clone(), |id| id.to_string());
        assert_eq!(record.key, key);
        let expected = coffer::events::kafka::partition_for(key.as_bytes(), PARTITIONS as usize);
        assert_eq!(record.partition as usize, expected, "Kafka's partitioner places key {key}");
        arrived.insert(record.id.clone());
    }
    let missing: Vec<u64> =
        events.iter().filter(|e| !arrived.contains(&e.id.to_string())).map(|e| e.seq).collect();
    assert!(missing.is_empty(), "events never published: {missing:?}");
    // Each broker's life: a consumer skipping seen ids reads each key in outbox order.
    for life in [&before, &after] {
        let mut seen = HashSet::new();
        let mut last: BTreeMap<&str, u64> = BTreeMap::new();
        for record in life.iter() {
            if !seen.insert(&record.id) {
                continue;
            }
            let previous = last.insert(&record.key, record.seq);
            assert!(previous.is_none_or(|previous| previous < record.seq), "key {} out of order", record.key);
        }
    }
    let duplicates = before.len() + after.len() - arrived.len();
    println!(
        "kafka: {} events, {made} transfers under load; {} records before the kill, {} after; \
         {duplicates} published twice; backlog {waiting} while hung, {waiting_down} while down",
        events.len(),
        before.len(),
        after.len(),
    );
    assert!(
        before.len() > 100 && after.len() > 20,
        "both brokers took part: {} / {}",
        before.len(),
        after.len()
    );
}
