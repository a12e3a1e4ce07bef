//! What a NATS JetStream stream holds, for the tests that check what the relay published.

use std::time::Duration;

use coffer::events::nats::{Nats, STREAM};
use futures::StreamExt as _;

/// The `Nats-Msg-Id`s of the event stream's messages from sequence `start` on (1: all).
pub async fn stream_ids(nats: &Nats, start: u64) -> Vec<String> {
    use async_nats::jetstream::consumer::{DeliverPolicy, pull};
    let stream = nats.jetstream().get_stream(STREAM).await.unwrap();
    let last = stream.cached_info().state.last_sequence;
    if last < start {
        return Vec::new();
    }
    let consumer = stream
        .create_consumer(pull::OrderedConfig {
            deliver_policy: DeliverPolicy::ByStartSequence { start_sequence: start },
            ..Default::default()
        })
        .await
        .unwrap();
    let mut messages = consumer.messages().await.unwrap();
    let mut ids = Vec::new();
    while let Ok(Some(message)) = tokio::time::timeout(Duration::from_secs(5), messages.next()).await {
        let message = message.unwrap();
        let id = message.headers.as_ref().and_then(|h| h.get("Nats-Msg-Id")).map(|v| v.to_string());
        ids.push(id.unwrap_or_default());
        if message.info().unwrap().stream_sequence >= last {
            break;
        }
    }
    ids
}
