//! The in-process bus: relayed events fanned out to live subscribers in this process
//! (the WebSocket streams). A bounded broadcast: a subscriber that falls more than
//! `capacity` events behind is told it lagged and must catch up from the outbox.

use std::sync::Arc;

use store::StoredEvent;
use tokio::sync::broadcast;
use uuid::Uuid;

/// An event as live subscribers see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivered {
    /// The outbox position (resume point of a WebSocket stream).
    pub seq: u64,
    pub id: Uuid,
    pub event_type: String,
    pub customer_id: Option<Uuid>,
    /// The CloudEvents JSON envelope.
    pub payload: Arc<str>,
}

impl From<&StoredEvent> for Delivered {
    fn from(event: &StoredEvent) -> Self {
        Self {
            seq: event.seq,
            id: event.id,
            event_type: event.event_type.clone(),
            customer_id: event.customer_id,
            payload: Arc::from(event.payload.as_str()),
        }
    }
}

/// Cheap to clone; clones share the channel.
#[derive(Clone, Debug)]
pub struct Bus {
    sender: broadcast::Sender<Arc<Delivered>>,
}

impl Bus {
    /// A bus that keeps the last `capacity` events for slow subscribers.
    pub fn new(capacity: usize) -> Self {
        let (sender, _) = broadcast::channel(capacity.max(1));
        Self { sender }
    }

    /// Hands `event` to every current subscriber (none is fine).
    pub fn publish(&self, event: Delivered) {
        let _ = self.sender.send(Arc::new(event));
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Delivered>> {
        self.sender.subscribe()
    }
}
