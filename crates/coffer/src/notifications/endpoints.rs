//! What a customer (or an admin) manages through the API: their inbox (read it, mark an
//! entry read) and their webhook endpoints (register one, with its signing secret and
//! after checking its target; list, delete; read the delivery log, redeliver).
//!
//! An endpoint belongs to a customer (their events) or, with no customer, to the admins
//! (everyone's events); someone else's endpoint is "not found".

use rand::RngCore as _;
use store::{DeliveryRow, NotificationRow, Store, StoreError, WebhookEndpoint};
use uuid::Uuid;

use super::webhooks::{TargetError, check_target};
use crate::events::EventType;

/// Endpoints per owner at most.
pub const WEBHOOKS_PER_OWNER_MAX: usize = 20;
/// Length of a webhook URL at most.
pub const URL_BYTES_MAX: usize = 2048;

/// Who owns an endpoint: a customer, or the admins (`None`).
pub type Owner = Option<Uuid>;

/// A new endpoint: where to deliver, and which events (`*` for all).
#[derive(Clone, Debug)]
pub struct NewWebhook {
    pub url: String,
    /// Event names, each known and listed once; or `*`.
    pub event_types: Vec<String>,
}

/// Why an inbox or webhook request was refused.
#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    #[error("no such notification")]
    NotificationNotFound,
    #[error("no such webhook")]
    WebhookNotFound,
    #[error("no such delivery")]
    DeliveryNotFound,
    #[error("no such unsent email")]
    EmailNotFound,
    #[error("`url` {0}")]
    Target(TargetError),
    #[error("at most {WEBHOOKS_PER_OWNER_MAX} endpoints")]
    TooMany,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The names a subscription may list: every event type's, and `*`.
pub fn is_event_name(name: &str) -> bool {
    name == "*" || EventType::ALL.iter().any(|kind| kind.name() == name)
}

/// The inbox and webhook endpoints service.
#[derive(Clone, Debug)]
pub struct Endpoints {
    store: Store,
    /// Whether endpoints may be on loopback or private addresses (tests, development).
    allow_private: bool,
}

impl Endpoints {
    pub fn new(store: Store, allow_private: bool) -> Self {
        Self { store, allow_private }
    }

    /// A page of `customer_id`'s inbox, newest first, after `before`.
    pub async fn inbox(
        &self,
        customer_id: Uuid,
        before: Option<Uuid>,
        unread_only: bool,
        limit: u32,
    ) -> Result<Vec<NotificationRow>, EndpointError> {
        Ok(self.store.notifications(customer_id, before, unread_only, limit).await?)
    }

    /// Marks one of `customer_id`'s notifications read.
    pub async fn mark_read(&self, customer_id: Uuid, id: Uuid) -> Result<(), EndpointError> {
        if self.store.mark_notification_read(customer_id, id, store::now_ns()).await? {
            Ok(())
        } else {
            Err(EndpointError::NotificationNotFound)
        }
    }

    /// Registers an endpoint for `owner` with a fresh signing secret, once its target
    /// resolves to an address deliveries may go to.
    pub async fn create_webhook(
        &self,
        owner: Owner,
        new: NewWebhook,
    ) -> Result<WebhookEndpoint, EndpointError> {
        check_target(&new.url, self.allow_private).await.map_err(EndpointError::Target)?;
        if self.store.webhooks(owner, None, WEBHOOKS_PER_OWNER_MAX as u32).await?.len()
            >= WEBHOOKS_PER_OWNER_MAX
        {
            return Err(EndpointError::TooMany);
        }
        let mut secret = [0u8; 24];
        rand::rng().fill_bytes(&mut secret);
        let endpoint = WebhookEndpoint {
            id: Uuid::now_v7(),
            customer_id: owner,
            url: new.url,
            event_types: new.event_types,
            secret: format!("whsec_{}", hex::encode(secret)),
            created_at: store::now_ns(),
        };
        self.store.insert_webhook(&endpoint).await?;
        Ok(endpoint)
    }

    /// A page of `owner`'s endpoints, oldest first, after `after`.
    pub async fn webhooks(
        &self,
        owner: Owner,
        after: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<WebhookEndpoint>, EndpointError> {
        Ok(self.store.webhooks(owner, after, limit).await?)
    }

    /// One of `owner`'s endpoints.
    pub async fn webhook(&self, owner: Owner, id: Uuid) -> Result<WebhookEndpoint, EndpointError> {
        match self.store.webhook(id).await? {
            Some(endpoint) if endpoint.customer_id == owner => Ok(endpoint),
            _ => Err(EndpointError::WebhookNotFound),
        }
    }

    /// Deletes one of `owner`'s endpoints and its delivery log.
    pub async fn delete_webhook(&self, owner: Owner, id: Uuid) -> Result<(), EndpointError> {
        self.webhook(owner, id).await?;
        self.store.delete_webhook(id).await?;
        Ok(())
    }

    /// A page of the delivery log of one of `owner`'s endpoints, newest first.
    pub async fn deliveries(
        &self,
        owner: Owner,
        id: Uuid,
        before: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<DeliveryRow>, EndpointError> {
        self.webhook(owner, id).await?;
        Ok(self.store.deliveries(id, before, limit).await?)
    }

    /// Queues a delivery of one of `owner`'s endpoints again, at once, with a fresh budget
    /// of attempts.
    pub async fn redeliver(&self, owner: Owner, id: Uuid, delivery_id: Uuid) -> Result<(), EndpointError> {
        self.webhook(owner, id).await?;
        self.retry_delivery(id, delivery_id).await
    }

    /// The operator's view: the newest deliveries of every endpoint, or those with
    /// `status` (`pending`, `succeeded`, `failed`).
    pub async fn recent_deliveries(
        &self,
        status: Option<&str>,
        limit: u32,
    ) -> Result<Vec<DeliveryRow>, EndpointError> {
        Ok(self.store.recent_deliveries(status, None, limit).await?)
    }

    /// Queues delivery `delivery_id` of endpoint `id` again with a fresh budget of
    /// attempts, whoever owns the endpoint (operators; owners go through [`Self::redeliver`]).
    pub async fn retry_delivery(&self, id: Uuid, delivery_id: Uuid) -> Result<(), EndpointError> {
        if self.store.redeliver(id, delivery_id, store::now_ns()).await? {
            Ok(())
        } else {
            Err(EndpointError::DeliveryNotFound)
        }
    }

    /// The operator's view of emails: the newest, or those with `status` (`pending`,
    /// `sent`, `failed`).
    pub async fn recent_emails(
        &self,
        status: Option<&str>,
        limit: u32,
    ) -> Result<Vec<store::EmailStatusRow>, EndpointError> {
        Ok(self.store.recent_emails(status, None, limit).await?)
    }

    /// Queues an unsent email again with a fresh budget of attempts.
    pub async fn resend_email(&self, id: Uuid) -> Result<(), EndpointError> {
        if self.store.resend_email(id, store::now_ns()).await? {
            Ok(())
        } else {
            Err(EndpointError::EmailNotFound)
        }
    }
}
