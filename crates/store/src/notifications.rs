//! What the event consumers keep: the events each has applied, the in-app inbox, the
//! emails to send, and webhook endpoints with their deliveries.
//!
//! A consumer applies an event with [`Store::apply_event`]: the event id is recorded in
//! the same transaction as the consumer's effects, so an event delivered twice (a relay
//! restarted mid-batch, a broker redelivery) takes effect once.

use crate::BeginWrite as _;
use uuid::Uuid;

use crate::{
    ROWS_PER_STATEMENT, Result, Store,
    codec::{saturating as signed, unsigned},
    numbered, with_pool,
};

/// Rows per page or per worker batch, at most.
pub const NOTIFICATIONS_PAGE_MAX: u32 = 100;

/// A message for a customer's in-app inbox.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewNotification {
    pub id: Uuid,
    pub customer_id: Uuid,
    pub kind: String,
    pub title: String,
    pub body: String,
}

/// An inbox entry.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct NotificationRow {
    pub id: Uuid,
    pub customer_id: Uuid,
    pub event_id: Uuid,
    pub kind: String,
    pub title: String,
    pub body: String,
    pub created_at: i64,
    pub read_at: Option<i64>,
}

/// An email to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewEmail {
    pub id: Uuid,
    pub customer_id: Option<Uuid>,
    pub recipient: String,
    pub template: String,
    pub subject: String,
    pub body: String,
}

/// An email waiting to be sent.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct EmailRow {
    pub id: Uuid,
    pub recipient: String,
    pub template: String,
    pub subject: String,
    pub body: String,
    pub attempts: i64,
}

/// An email as operators see it: where it stands, without its body.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct EmailStatusRow {
    pub id: Uuid,
    pub recipient: String,
    pub template: String,
    pub subject: String,
    /// `pending`, `sent` or `failed` (attempts exhausted).
    pub status: String,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub sent_at: Option<i64>,
}

/// A webhook endpoint. `customer_id` None: an admin's endpoint, which sees every event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookEndpoint {
    pub id: Uuid,
    pub customer_id: Option<Uuid>,
    pub url: String,
    pub event_types: Vec<String>,
    pub secret: String,
    pub created_at: u64,
}

#[derive(sqlx::FromRow)]
struct EndpointRow {
    id: Uuid,
    customer_id: Option<Uuid>,
    url: String,
    event_types: String,
    secret: String,
    created_at: i64,
}

impl TryFrom<EndpointRow> for WebhookEndpoint {
    type Error = crate::StoreError;

    fn try_from(row: EndpointRow) -> Result<Self> {
        Ok(Self {
            id: row.id,
            customer_id: row.customer_id,
            url: row.url,
            event_types: row.event_types.split(',').filter(|t| !t.is_empty()).map(str::to_owned).collect(),
            secret: row.secret,
            created_at: unsigned(row.created_at, "created_at")?,
        })
    }
}

/// One delivery of one event to one endpoint, and how it went so far.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct DeliveryRow {
    pub id: Uuid,
    pub endpoint_id: Uuid,
    pub event_id: Uuid,
    pub event_type: String,
    pub payload: String,
    /// `pending`, `succeeded` or `failed` (attempts exhausted).
    pub status: String,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub last_status_code: Option<i64>,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub delivered_at: Option<i64>,
}

/// What a consumer does with one event, all in one transaction with the record that it did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Effects {
    pub notifications: Vec<NewNotification>,
    pub emails: Vec<NewEmail>,
    /// Deliveries to create: (delivery id, endpoint id).
    pub deliveries: Vec<(Uuid, Uuid)>,
    /// Events the event causes (a balance monitor's crossing), written to the outbox.
    pub events: Vec<crate::NewEvent>,
    /// What a customer is now told about their spending: (customer, notice key), recorded
    /// in `insight_notices` so that it is told once.
    pub notices: Vec<(Uuid, String)>,
}

/// The event being applied, as a consumer received it.
#[derive(Clone, Copy, Debug)]
pub struct AppliedEvent<'a> {
    pub id: Uuid,
    pub event_type: &'a str,
    pub payload: &'a str,
}

/// How a delivery attempt went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Attempt {
    Succeeded {
        status_code: u16,
    },
    /// Failed; retry at `retry_at`, or give up when None.
    Failed {
        status_code: Option<u16>,
        error: String,
        retry_at: Option<u64>,
    },
}

const DELIVERY_COLUMNS: &str = "id, endpoint_id, event_id, event_type, payload, status, attempts, next_attempt_at, \
     last_status_code, last_error, created_at, delivered_at";

/// Records `ids` as applied by `consumer` in the open transaction `connection`, in
/// statements of [`crate::ROWS_PER_STATEMENT`]; evaluates to the set of those it had not
/// applied before (the others are left alone). A macro for the same reason as
/// `insert_events!`.
macro_rules! first_applications {
    ($connection:expr, $sql:expr, $consumer:expr, $ids:expr, $now:expr) => {{
        let mut fresh = std::collections::HashSet::new();
        for chunk in $ids.chunks(crate::ROWS_PER_STATEMENT) {
            let text = format!(
                "INSERT INTO consumed_events (consumer, event_id, applied_at) VALUES {} \
                 ON CONFLICT DO NOTHING RETURNING event_id",
                crate::numbered("($, $, $)", chunk.len())
            );
            let mut query = sqlx::query_scalar::<_, Uuid>(($sql)(&text));
            for id in chunk {
                query = query.bind($consumer).bind(*id).bind($now);
            }
            fresh.extend(query.fetch_all(&mut *$connection).await?);
        }
        fresh
    }};
}
pub(crate) use first_applications;

impl Store {
    /// Applies `event` for `consumer` with `effects`, unless that consumer applied it
    /// before. Returns whether this call applied it.
    pub async fn apply_event(
        &self,
        consumer: &str,
        event: AppliedEvent<'_>,
        effects: &Effects,
        now: u64,
    ) -> Result<bool> {
        Ok(self.apply_events(consumer, &[(event, effects)], now).await? == 1)
    }

    /// Applies each event with its effects in one transaction, skipping those `consumer`
    /// applied before. Returns how many this call applied.
    pub async fn apply_events(
        &self,
        consumer: &str,
        events: &[(AppliedEvent<'_>, &Effects)],
        now: u64,
    ) -> Result<usize> {
        let now = signed(now);
        let ids: Vec<Uuid> = events.iter().map(|(event, _)| event.id).collect();
        with_pool!(self, write, |pool, sql| {
            let mut tx = pool.begin_write().await?;
            let mut fresh = first_applications!(tx, sql, consumer, &ids, now);
            // Each event once, even if the batch names it twice.
            let applied: Vec<&(AppliedEvent<'_>, &Effects)> =
                events.iter().filter(|(event, _)| fresh.remove(&event.id)).collect();
            let notes: Vec<(Uuid, &NewNotification)> = applied
                .iter()
                .flat_map(|(event, effects)| effects.notifications.iter().map(|note| (event.id, note)))
                .collect();
            for chunk in notes.chunks(ROWS_PER_STATEMENT) {
                let text = format!(
                    "INSERT INTO notifications (id, customer_id, event_id, kind, title, body, created_at) VALUES {}",
                    numbered("($, $, $, $, $, $, $)", chunk.len())
                );
                let mut query = sqlx::query(sql(&text));
                for (event_id, note) in chunk {
                    query = query
                        .bind(note.id)
                        .bind(note.customer_id)
                        .bind(*event_id)
                        .bind(&note.kind)
                        .bind(&note.title)
                        .bind(&note.body)
                        .bind(now);
                }
                query.execute(&mut *tx).await?;
            }
            let emails: Vec<&NewEmail> = applied.iter().flat_map(|(_, effects)| &effects.emails).collect();
            for chunk in emails.chunks(ROWS_PER_STATEMENT) {
                let text = format!(
                    "INSERT INTO emails (id, customer_id, recipient, template, subject, body, status, attempts, \
                     next_attempt_at, created_at) VALUES {}",
                    numbered("($, $, $, $, $, $, 'pending', 0, $, $)", chunk.len())
                );
                let mut query = sqlx::query(sql(&text));
                for email in chunk {
                    query = query
                        .bind(email.id)
                        .bind(email.customer_id)
                        .bind(&email.recipient)
                        .bind(&email.template)
                        .bind(&email.subject)
                        .bind(&email.body)
                        .bind(now)
                        .bind(now);
                }
                query.execute(&mut *tx).await?;
            }
            let deliveries: Vec<(&AppliedEvent<'_>, Uuid, Uuid)> = applied
                .iter()
                .flat_map(|(event, effects)| {
                    effects.deliveries.iter().map(move |(id, endpoint)| (event, *id, *endpoint))
                })
                .collect();
            for chunk in deliveries.chunks(ROWS_PER_STATEMENT) {
                let text = format!(
                    "INSERT INTO webhook_deliveries (id, endpoint_id, event_id, event_type, payload, status, \
                     attempts, next_attempt_at, created_at) VALUES {} ON CONFLICT DO NOTHING",
                    numbered("($, $, $, $, $, 'pending', 0, $, $)", chunk.len())
                );
                let mut query = sqlx::query(sql(&text));
                for (event, id, endpoint_id) in chunk {
                    query = query
                        .bind(*id)
                        .bind(*endpoint_id)
                        .bind(event.id)
                        .bind(event.event_type)
                        .bind(event.payload)
                        .bind(now)
                        .bind(now);
                }
                query.execute(&mut *tx).await?;
            }
            crate::outbox::insert_events!(tx, sql, applied.iter().flat_map(|(_, effects)| &effects.events));
            let notices: Vec<&(Uuid, String)> =
                applied.iter().flat_map(|(_, effects)| &effects.notices).collect();
            for chunk in notices.chunks(ROWS_PER_STATEMENT) {
                let text = format!(
                    "INSERT INTO insight_notices (customer_id, key, created_at) VALUES {} \
                     ON CONFLICT (customer_id, key) DO NOTHING",
                    numbered("($, $, $)", chunk.len())
                );
                let mut query = sqlx::query(sql(&text));
                for (customer_id, key) in chunk {
                    query = query.bind(*customer_id).bind(key).bind(now);
                }
                query.execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok(applied.len())
        })
    }

    /// Which of `ids` `consumer` applied already (remembered ones: see
    /// [`Store::purge_consumed_events`]).
    pub async fn consumed(&self, consumer: &str, ids: &[Uuid]) -> Result<std::collections::HashSet<Uuid>> {
        let mut consumed = std::collections::HashSet::new();
        for chunk in ids.chunks(ROWS_PER_STATEMENT) {
            let text = format!(
                "SELECT event_id FROM consumed_events WHERE consumer = $1 AND event_id IN ({})",
                (0..chunk.len()).map(|i| format!("${}", i + 2)).collect::<Vec<_>>().join(", ")
            );
            let found: Vec<Uuid> = with_pool!(self, read, |pool, sql| {
                let mut query = sqlx::query_scalar(sql(&text)).bind(consumer);
                for id in chunk {
                    query = query.bind(*id);
                }
                query.fetch_all(pool).await?
            });
            consumed.extend(found);
        }
        Ok(consumed)
    }

    /// Forgets which events consumers applied before `applied_before` (bounded per call).
    /// Only events the relay can no longer redeliver may be forgotten.
    pub async fn purge_consumed_events(&self, applied_before: u64) -> Result<u64> {
        let deleted = with_pool!(self, write, |pool, sql| {
            sqlx::query(sql("DELETE FROM consumed_events WHERE applied_at < $1"))
                .bind(signed(applied_before))
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(deleted)
    }

    /// A page of the customer's inbox, newest first, before `before` (a notification id).
    pub async fn notifications(
        &self,
        customer_id: Uuid,
        before: Option<Uuid>,
        unread_only: bool,
        limit: u32,
    ) -> Result<Vec<NotificationRow>> {
        let limit = i64::from(limit.min(NOTIFICATIONS_PAGE_MAX));
        let text = format!(
            "SELECT id, customer_id, event_id, kind, title, body, created_at, read_at FROM notifications \
             WHERE customer_id = $1 AND ($2 IS NULL OR id < $2){} ORDER BY id DESC LIMIT $3",
            if unread_only { " AND read_at IS NULL" } else { "" }
        );
        with_pool!(self, read, |pool, sql| {
            Ok(sqlx::query_as(sql(&text)).bind(customer_id).bind(before).bind(limit).fetch_all(pool).await?)
        })
    }

    /// Marks the customer's notification `id` read (once). False: no such notification.
    pub async fn mark_notification_read(&self, customer_id: Uuid, id: Uuid, now: u64) -> Result<bool> {
        with_pool!(self, write, |pool, sql| {
            let found: Option<i64> = sqlx::query_scalar(sql(
                "UPDATE notifications SET read_at = COALESCE(read_at, $3) WHERE id = $1 AND customer_id = $2 \
                 RETURNING created_at",
            ))
            .bind(id)
            .bind(customer_id)
            .bind(signed(now))
            .fetch_optional(pool)
            .await?;
            Ok(found.is_some())
        })
    }

    /// Emails due for an attempt at `now`, oldest first.
    pub async fn due_emails(&self, now: u64, limit: u32) -> Result<Vec<EmailRow>> {
        let limit = i64::from(limit.min(NOTIFICATIONS_PAGE_MAX));
        with_pool!(self, read, |pool, sql| {
            Ok(sqlx::query_as(sql("SELECT id, recipient, template, subject, body, attempts FROM emails \
                 WHERE status = 'pending' AND next_attempt_at <= $1 ORDER BY next_attempt_at LIMIT $2"))
            .bind(signed(now))
            .bind(limit)
            .fetch_all(pool)
            .await?)
        })
    }

    /// Records an attempt to send email `id`: sent, or failed and retried at `retry_at`
    /// (None: given up).
    pub async fn email_attempted(
        &self,
        id: Uuid,
        error: Option<&str>,
        retry_at: Option<u64>,
        now: u64,
    ) -> Result<()> {
        let status = match (error, retry_at) {
            (None, _) => "sent",
            (Some(_), Some(_)) => "pending",
            (Some(_), None) => "failed",
        };
        with_pool!(self, write, |pool, sql| {
            sqlx::query(sql(
                "UPDATE emails SET status = $2, attempts = attempts + 1, last_error = $3, \
                 next_attempt_at = COALESCE($4, next_attempt_at), sent_at = CASE WHEN $2 = 'sent' THEN $5 END \
                 WHERE id = $1 AND status = 'pending'",
            ))
            .bind(id)
            .bind(status)
            .bind(error)
            .bind(retry_at.map(signed))
            .bind(signed(now))
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// Records a webhook endpoint.
    pub async fn insert_webhook(&self, endpoint: &WebhookEndpoint) -> Result<()> {
        with_pool!(self, write, |pool, sql| {
            sqlx::query(sql(
                "INSERT INTO webhook_endpoints (id, customer_id, url, event_types, secret, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            ))
            .bind(endpoint.id)
            .bind(endpoint.customer_id)
            .bind(&endpoint.url)
            .bind(endpoint.event_types.join(","))
            .bind(&endpoint.secret)
            .bind(signed(endpoint.created_at))
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// The webhook endpoint `id`.
    pub async fn webhook(&self, id: Uuid) -> Result<Option<WebhookEndpoint>> {
        let row: Option<EndpointRow> = with_pool!(self, read, |pool, sql| {
            sqlx::query_as(sql(
                "SELECT id, customer_id, url, event_types, secret, created_at FROM webhook_endpoints WHERE id = $1",
            ))
            .bind(id)
            .fetch_optional(pool)
            .await?
        });
        row.map(WebhookEndpoint::try_from).transpose()
    }

    /// A page of the endpoints owned by `customer_id` (None: the admins' endpoints), oldest
    /// first, after endpoint id `after`.
    pub async fn webhooks(
        &self,
        customer_id: Option<Uuid>,
        after: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<WebhookEndpoint>> {
        let limit = i64::from(limit.min(NOTIFICATIONS_PAGE_MAX));
        let rows: Vec<EndpointRow> = with_pool!(self, read, |pool, sql| {
            sqlx::query_as(sql(
                "SELECT id, customer_id, url, event_types, secret, created_at FROM webhook_endpoints \
                 WHERE (customer_id = $1 OR ($1 IS NULL AND customer_id IS NULL)) AND ($2 IS NULL OR id > $2) \
                 ORDER BY id LIMIT $3",
            ))
            .bind(customer_id)
            .bind(after)
            .bind(limit)
            .fetch_all(pool)
            .await?
        });
        rows.into_iter().map(WebhookEndpoint::try_from).collect()
    }

    /// The endpoints owned by each of `customers` (the admins' are [`Store::webhooks`] of
    /// `None`), in one read per [`ROWS_PER_STATEMENT`] customers. Bounded: the first
    /// [`NOTIFICATIONS_PAGE_MAX`] of each owner, oldest first.
    pub async fn webhooks_of(&self, customers: &[Uuid]) -> Result<Vec<WebhookEndpoint>> {
        let mut endpoints = Vec::new();
        for chunk in customers.chunks(ROWS_PER_STATEMENT) {
            let text = format!(
                "SELECT id, customer_id, url, event_types, secret, created_at FROM ( \
                 SELECT *, ROW_NUMBER() OVER (PARTITION BY customer_id ORDER BY id) AS n \
                 FROM webhook_endpoints WHERE customer_id IN ({})) AS owned \
                 WHERE n <= {NOTIFICATIONS_PAGE_MAX} ORDER BY customer_id, id",
                numbered("$", chunk.len())
            );
            let rows: Vec<EndpointRow> = with_pool!(self, read, |pool, sql| {
                let mut query = sqlx::query_as(sql(&text));
                for customer in chunk {
                    query = query.bind(*customer);
                }
                query.fetch_all(pool).await?
            });
            for row in rows {
                endpoints.push(WebhookEndpoint::try_from(row)?);
            }
        }
        Ok(endpoints)
    }

    /// Deletes endpoint `id` and its deliveries. False: there was none.
    pub async fn delete_webhook(&self, id: Uuid) -> Result<bool> {
        let deleted = with_pool!(self, write, |pool, sql| {
            sqlx::query(sql("DELETE FROM webhook_endpoints WHERE id = $1"))
                .bind(id)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(deleted == 1)
    }

    /// Deliveries due for an attempt at `now`, soonest first.
    pub async fn due_deliveries(&self, now: u64, limit: u32) -> Result<Vec<DeliveryRow>> {
        let limit = i64::from(limit.min(NOTIFICATIONS_PAGE_MAX));
        let text = format!(
            "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE status = 'pending' AND next_attempt_at <= $1 \
             ORDER BY next_attempt_at LIMIT $2"
        );
        with_pool!(self, read, |pool, sql| {
            Ok(sqlx::query_as(sql(&text)).bind(signed(now)).bind(limit).fetch_all(pool).await?)
        })
    }

    /// Records how an attempt of delivery `id` went.
    pub async fn delivery_attempted(&self, id: Uuid, attempt: &Attempt, now: u64) -> Result<()> {
        let (status, code, error, next) = match attempt {
            Attempt::Succeeded { status_code } => ("succeeded", Some(*status_code), None, None),
            Attempt::Failed { status_code, error, retry_at: Some(at) } => {
                ("pending", *status_code, Some(error.as_str()), Some(signed(*at)))
            }
            Attempt::Failed { status_code, error, retry_at: None } => {
                ("failed", *status_code, Some(error.as_str()), None)
            }
        };
        with_pool!(self, write, |pool, sql| {
            sqlx::query(sql(
                "UPDATE webhook_deliveries SET status = $2, attempts = attempts + 1, last_status_code = $3, \
                 last_error = $4, next_attempt_at = COALESCE($5, next_attempt_at), \
                 delivered_at = CASE WHEN $2 = 'succeeded' THEN $6 ELSE delivered_at END \
                 WHERE id = $1 AND status = 'pending'",
            ))
            .bind(id)
            .bind(status)
            .bind(code.map(i64::from))
            .bind(error)
            .bind(next)
            .bind(signed(now))
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// A page of endpoint `endpoint_id`'s deliveries, newest first, before delivery `before`.
    pub async fn deliveries(
        &self,
        endpoint_id: Uuid,
        before: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<DeliveryRow>> {
        let limit = i64::from(limit.min(NOTIFICATIONS_PAGE_MAX));
        let text = format!(
            "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE endpoint_id = $1 AND ($2 IS NULL OR id < $2) \
             ORDER BY id DESC LIMIT $3"
        );
        with_pool!(self, read, |pool, sql| {
            Ok(sqlx::query_as(sql(&text)).bind(endpoint_id).bind(before).bind(limit).fetch_all(pool).await?)
        })
    }

    /// The newest webhook deliveries of every endpoint (all, or those with `status`),
    /// before delivery `before`, at most [`NOTIFICATIONS_PAGE_MAX`].
    pub async fn recent_deliveries(
        &self,
        status: Option<&str>,
        before: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<DeliveryRow>> {
        let limit = i64::from(limit.min(NOTIFICATIONS_PAGE_MAX));
        let text = format!(
            "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE ($1 IS NULL OR status = $1) \
             AND ($2 IS NULL OR id < $2) ORDER BY id DESC LIMIT $3"
        );
        with_pool!(self, read, |pool, sql| {
            Ok(sqlx::query_as(sql(&text)).bind(status).bind(before).bind(limit).fetch_all(pool).await?)
        })
    }

    /// The newest emails (all, or those with `status`), before email `before`, at most
    /// [`NOTIFICATIONS_PAGE_MAX`].
    pub async fn recent_emails(
        &self,
        status: Option<&str>,
        before: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<EmailStatusRow>> {
        let limit = i64::from(limit.min(NOTIFICATIONS_PAGE_MAX));
        with_pool!(self, read, |pool, sql| {
            Ok(sqlx::query_as(sql(
                "SELECT id, recipient, template, subject, status, attempts, last_error, created_at, sent_at \
                 FROM emails WHERE ($1 IS NULL OR status = $1) AND ($2 IS NULL OR id < $2) ORDER BY id DESC LIMIT $3",
            ))
            .bind(status)
            .bind(before)
            .bind(limit)
            .fetch_all(pool)
            .await?)
        })
    }

    /// Queues an unsent email `id` again, at once, with a fresh budget of attempts. False:
    /// no such email, or it was sent.
    pub async fn resend_email(&self, id: Uuid, now: u64) -> Result<bool> {
        let updated = with_pool!(self, write, |pool, sql| {
            sqlx::query(sql("UPDATE emails SET status = 'pending', attempts = 0, next_attempt_at = $2 \
                 WHERE id = $1 AND status <> 'sent'"))
            .bind(id)
            .bind(signed(now))
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(updated == 1)
    }

    /// Queues delivery `id` of endpoint `endpoint_id` again, at once, with a fresh budget of
    /// attempts. False: no such delivery.
    pub async fn redeliver(&self, endpoint_id: Uuid, id: Uuid, now: u64) -> Result<bool> {
        let updated = with_pool!(self, write, |pool, sql| {
            sqlx::query(sql(
                "UPDATE webhook_deliveries SET status = 'pending', attempts = 0, next_attempt_at = $3 \
                 WHERE id = $1 AND endpoint_id = $2",
            ))
            .bind(id)
            .bind(endpoint_id)
            .bind(signed(now))
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(updated == 1)
    }
}
