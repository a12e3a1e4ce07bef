//! A customer's event feed, as the WebSocket stream reads it: the events the outbox still
//! holds after a position (the replay), then the live bus from the moment of subscribing.

use std::sync::Arc;

use store::{Store, StoreError, StoredEvent};
use tokio::sync::broadcast;
use uuid::Uuid;

use super::bus::{Bus, Delivered};

/// The outbox and the bus, read together.
#[derive(Clone, Debug)]
pub struct Feed {
    store: Store,
    bus: Bus,
}

impl Feed {
    pub fn new(store: Store, bus: Bus) -> Self {
        Self { store, bus }
    }

    /// The outbox position of event `id`, while the outbox still holds it.
    pub async fn position_of(&self, id: Uuid) -> Result<Option<u64>, StoreError> {
        self.store.event_seq(id).await
    }

    /// Up to `limit` of `customer_id`'s events after outbox position `after`, in order.
    pub async fn after(
        &self,
        customer_id: Uuid,
        after: u64,
        limit: u32,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        self.store.customer_events(customer_id, after, limit).await
    }

    /// Every event relayed from now on (subscribe before replaying, so that nothing falls
    /// between the two).
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Delivered>> {
        self.bus.subscribe()
    }
}
