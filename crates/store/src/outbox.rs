//! The transactional outbox: every change writes the events that describe it in its own
//! transaction (so an event exists if and only if its change committed), and the relay
//! reads the unsent ones in order, publishes them and marks them sent.
//!
//! The store does not know what an event says: a payload is the service's JSON text. For
//! events about ledger transfers the payload may be rendered from an account as the batch
//! leaves it ([`Payload::AfterBatch`]), which is how `balance.updated` carries the balance
//! that the transfer produced without a second read.

use crate::BeginWrite as _;
use std::sync::Arc;

use ledger::Account;
use uuid::Uuid;

use crate::{
    Result, Store, StoreError,
    codec::{saturating as signed, unsigned},
    with_pool,
};

/// Rows per relay read, per mark-as-sent call, per purge, at most.
pub const OUTBOX_BATCH_MAX: u32 = 1000;

/// An event to write with the change it describes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewEvent {
    /// The event id (UUIDv7): the broker's deduplication key and every consumer's.
    pub id: Uuid,
    /// The CloudEvents type, e.g. `coffer.transfer.posted`.
    pub event_type: String,
    /// Whose event it is (the WebSocket stream and the inbox filter on it).
    pub customer_id: Option<Uuid>,
    /// The whole CloudEvents JSON envelope.
    pub payload: String,
    pub created_at: u64,
}

/// An event as the outbox holds it; `seq` orders events in commit order per writer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredEvent {
    pub seq: u64,
    pub id: Uuid,
    pub event_type: String,
    pub customer_id: Option<Uuid>,
    pub payload: String,
    pub created_at: u64,
}

/// Renders an event's payload from an account as it stood before the command that
/// created its transfer (`None` if it did not exist) and as the command leaves it.
pub type RenderFn = Arc<dyn Fn(Option<&Account>, &Account) -> String + Send + Sync>;

/// The payload of an [`EventDraft`].
#[derive(Clone)]
pub enum Payload {
    /// Known before the batch runs.
    Json(String),
    /// Rendered from `account_id` after the batch applied (a balance after the transfer).
    AfterBatch { account_id: u128, render: RenderFn },
}

impl std::fmt::Debug for Payload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Json(text) => f.debug_tuple("Json").field(text).finish(),
            Self::AfterBatch { account_id, .. } => {
                f.debug_struct("AfterBatch").field("account_id", &format_args!("{account_id:#x}")).finish()
            }
        }
    }
}

/// An event that belongs to one ledger transfer: written in the batch's transaction if
/// and only if that transfer is created by it (a replayed or failed transfer writes none).
#[derive(Clone, Debug)]
pub struct EventDraft {
    pub transfer_id: u128,
    pub id: Uuid,
    pub event_type: String,
    pub customer_id: Option<Uuid>,
    pub created_at: u64,
    pub payload: Payload,
}

impl EventDraft {
    /// The account the payload is rendered from, if it is rendered in the batch.
    pub(crate) fn account_id(&self) -> Option<u128> {
        match &self.payload {
            Payload::Json(_) => None,
            Payload::AfterBatch { account_id, .. } => Some(*account_id),
        }
    }

    /// The event to write, given the accounts before the command and as it leaves them.
    pub(crate) fn finish<'a, 'b>(
        &self,
        before: impl Fn(u128) -> Option<&'a Account>,
        after: impl Fn(u128) -> Option<&'b Account>,
    ) -> NewEvent {
        let payload = match &self.payload {
            Payload::Json(text) => text.clone(),
            Payload::AfterBatch { account_id, render } => {
                let account = after(*account_id).unwrap_or_else(|| {
                    panic!("event {}: account {account_id:#x} is not in the batch", self.id)
                });
                render(before(*account_id), account)
            }
        };
        NewEvent {
            id: self.id,
            event_type: self.event_type.clone(),
            customer_id: self.customer_id,
            payload,
            created_at: self.created_at,
        }
    }
}

/// The insert of one outbox row, with `$n` placeholders (adapted per backend).
pub(crate) const INSERT_EVENT: &str =
    "INSERT INTO outbox (id, type, customer_id, payload, created_at) VALUES ($1, $2, $3, $4, $5)";

/// Writes `$events` (`&[NewEvent]`) on `$connection` (an open transaction), with `$sql`
/// the backend's placeholder adapter. A macro because the connection types differ per
/// backend while the code is the same.
macro_rules! insert_events {
    ($connection:expr, $sql:expr, $events:expr) => {
        for event in $events {
            sqlx::query(($sql)($crate::outbox::INSERT_EVENT))
                .bind(event.id)
                .bind(&event.event_type)
                .bind(event.customer_id)
                .bind(&event.payload)
                .bind($crate::codec::saturating(event.created_at))
                .execute(&mut *$connection)
                .await?;
        }
    };
}
pub(crate) use insert_events;

const EVENT_COLUMNS: &str = "seq, id, type, customer_id, payload, created_at";

/// A row of `outbox` ([`EVENT_COLUMNS`]) as the database returns it.
#[derive(Debug, sqlx::FromRow)]
struct EventRecord {
    seq: i64,
    id: Uuid,
    #[sqlx(rename = "type")]
    event_type: String,
    customer_id: Option<Uuid>,
    payload: String,
    created_at: i64,
}

impl TryFrom<EventRecord> for StoredEvent {
    type Error = StoreError;

    fn try_from(row: EventRecord) -> Result<Self> {
        Ok(Self {
            seq: unsigned(row.seq, "seq")?,
            id: row.id,
            event_type: row.event_type,
            customer_id: row.customer_id,
            payload: row.payload,
            created_at: unsigned(row.created_at, "created_at")?,
        })
    }
}

impl Store {
    /// Writes events that describe no other write (in their own transaction).
    pub async fn record_events(&self, events: &[NewEvent]) -> Result<()> {
        with_pool!(self, write, |pool, sql| {
            let mut tx = pool.begin_write().await?;
            insert_events!(tx, sql, events);
            tx.commit().await?;
        });
        Ok(())
    }

    /// Up to `limit` (≤ [`OUTBOX_BATCH_MAX`]) unsent events, oldest first.
    pub async fn unsent_events(&self, limit: u32) -> Result<Vec<StoredEvent>> {
        let limit = i64::from(limit.min(OUTBOX_BATCH_MAX));
        let text = format!("SELECT {EVENT_COLUMNS} FROM outbox WHERE sent_at IS NULL ORDER BY seq LIMIT $1");
        with_pool!(self, read, |pool, sql| {
            let rows: Vec<EventRecord> = sqlx::query_as(sql(&text)).bind(limit).fetch_all(pool).await?;
            rows.into_iter().map(StoredEvent::try_from).collect()
        })
    }

    /// Marks the events `seqs` (at most [`OUTBOX_BATCH_MAX`]) as sent at `now`.
    pub async fn mark_events_sent(&self, seqs: &[u64], now: u64) -> Result<()> {
        assert!(seqs.len() <= OUTBOX_BATCH_MAX as usize, "mark at most {OUTBOX_BATCH_MAX} events at once");
        if seqs.is_empty() {
            return Ok(());
        }
        let text = format!(
            "UPDATE outbox SET sent_at = ${} WHERE sent_at IS NULL AND seq IN ({})",
            seqs.len() + 1,
            crate::numbered("$", seqs.len())
        );
        with_pool!(self, write, |pool, sql| {
            let mut query = sqlx::query(sql(&text));
            for seq in seqs {
                query = query.bind(signed(*seq));
            }
            query = query.bind(signed(now));
            query.execute(pool).await?;
        });
        Ok(())
    }

    /// Takes or renews the relay lease for `holder` until `until` (ns): true when `holder`
    /// holds it now — it was free, expired at `now`, or `holder`'s already — and false
    /// while another relay's lease runs.
    pub async fn claim_relay_lease(&self, holder: &str, now: u64, until: u64) -> Result<bool> {
        with_pool!(self, write, |pool, sql| {
            Ok(sqlx::query(sql("INSERT INTO relay_lease (id, holder, expires_at) VALUES (1, $1, $2) \
                 ON CONFLICT (id) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at \
                 WHERE relay_lease.holder = excluded.holder OR relay_lease.expires_at <= $3"))
            .bind(holder)
            .bind(signed(until))
            .bind(signed(now))
            .execute(pool)
            .await?
            .rows_affected()
                == 1)
        })
    }

    /// Gives up `holder`'s relay lease (a relay stopping), so another takes over at once.
    pub async fn release_relay_lease(&self, holder: &str) -> Result<()> {
        with_pool!(self, write, |pool, sql| {
            sqlx::query(sql("DELETE FROM relay_lease WHERE holder = $1")).bind(holder).execute(pool).await?;
        });
        Ok(())
    }

    /// How many events wait for the relay, and when the oldest of them was written.
    pub async fn outbox_backlog(&self) -> Result<(u64, Option<u64>)> {
        with_pool!(self, read, |pool, sql| {
            let (count, oldest): (i64, Option<i64>) = sqlx::query_as(sql(
                "SELECT COUNT(*) AS n, MIN(created_at) AS oldest FROM outbox WHERE sent_at IS NULL",
            ))
            .fetch_one(pool)
            .await?;
            Ok((unsigned(count, "count")?, oldest.map(|value| unsigned(value, "created_at")).transpose()?))
        })
    }

    /// The newest event's outbox position (0: none was ever written, or all were purged).
    pub async fn outbox_head(&self) -> Result<u64> {
        with_pool!(self, read, |pool, sql| {
            let seq: Option<i64> =
                sqlx::query_scalar(sql("SELECT MAX(seq) FROM outbox")).fetch_one(pool).await?;
            unsigned(seq.unwrap_or(0), "seq")
        })
    }

    /// The outbox position of event `id`, if the outbox still holds it.
    pub async fn event_seq(&self, id: Uuid) -> Result<Option<u64>> {
        with_pool!(self, read, |pool, sql| {
            let seq: Option<i64> = sqlx::query_scalar(sql("SELECT seq FROM outbox WHERE id = $1"))
                .bind(id)
                .fetch_optional(pool)
                .await?;
            seq.map(|seq| unsigned(seq, "seq")).transpose()
        })
    }

    /// The customer's sent events after position `after_seq`, oldest first, `limit` at most.
    pub async fn customer_events(
        &self,
        customer_id: Uuid,
        after_seq: u64,
        limit: u32,
    ) -> Result<Vec<StoredEvent>> {
        let limit = i64::from(limit.min(OUTBOX_BATCH_MAX));
        let text = format!(
            "SELECT {EVENT_COLUMNS} FROM outbox WHERE customer_id = $1 AND seq > $2 AND sent_at IS NOT NULL \
             ORDER BY seq LIMIT $3"
        );
        with_pool!(self, read, |pool, sql| {
            let rows: Vec<EventRecord> = sqlx::query_as(sql(&text))
                .bind(customer_id)
                .bind(signed(after_seq))
                .bind(limit)
                .fetch_all(pool)
                .await?;
            rows.into_iter().map(StoredEvent::try_from).collect()
        })
    }

    /// All events of the outbox, oldest first (tests and audits; `limit` at most).
    pub async fn events_after(&self, after_seq: u64, limit: u32) -> Result<Vec<StoredEvent>> {
        let limit = i64::from(limit.min(OUTBOX_BATCH_MAX));
        let text = format!("SELECT {EVENT_COLUMNS} FROM outbox WHERE seq > $1 ORDER BY seq LIMIT $2");
        with_pool!(self, read, |pool, sql| {
            let rows: Vec<EventRecord> =
                sqlx::query_as(sql(&text)).bind(signed(after_seq)).bind(limit).fetch_all(pool).await?;
            rows.into_iter().map(StoredEvent::try_from).collect()
        })
    }

    /// Deletes up to [`OUTBOX_BATCH_MAX`] events sent before `sent_before`; returns how
    /// many. Records the newest seq it deleted (see [`Store::outbox_purged_through`]).
    pub async fn purge_events(&self, sent_before: u64, now: u64) -> Result<u64> {
        with_pool!(self, write, |pool, sql| {
            let mut tx = pool.begin_write().await?;
            let deleted: Vec<i64> = sqlx::query_scalar(sql(
                "DELETE FROM outbox WHERE seq IN (SELECT seq FROM outbox WHERE sent_at IS NOT NULL \
                 AND sent_at < $1 ORDER BY seq LIMIT $2) RETURNING seq",
            ))
            .bind(signed(sent_before))
            .bind(i64::from(OUTBOX_BATCH_MAX))
            .fetch_all(&mut *tx)
            .await?;
            if let Some(newest) = deleted.iter().max() {
                sqlx::query(sql(
                    "INSERT INTO outbox_purged (id, through_seq, purged_at) VALUES (1, $1, $2) ON CONFLICT (id) \
                     DO UPDATE SET through_seq = excluded.through_seq, purged_at = excluded.purged_at \
                     WHERE outbox_purged.through_seq < excluded.through_seq",
                ))
                .bind(newest)
                .bind(signed(now))
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok(deleted.len() as u64)
        })
    }

    /// The newest event seq ever purged from the outbox, if any was: a rebuild from the
    /// outbox sees the whole history only while this is None.
    pub async fn outbox_purged_through(&self) -> Result<Option<u64>> {
        let seq: Option<i64> = with_pool!(self, read, |pool, sql| {
            sqlx::query_scalar(sql("SELECT through_seq FROM outbox_purged WHERE id = 1"))
                .fetch_optional(pool)
                .await?
        });
        Ok(seq.map(|seq| seq.max(0) as u64))
    }
}
