//! Idempotency records written inside a ledger batch.
//!
//! A money-moving request's answer is remembered under its `Idempotency-Key` in the same
//! transaction as the transfers it made, so the money and the memory of the answer commit
//! together or not at all, and the request path makes no write transaction of its own.
//! The answer usually depends on what the ledger decided (the transfer's timestamp, or a
//! refusal), so it is rendered inside the batch from the command's results
//! ([`ResponseDraft::AfterBatch`]), the way an event's balance is rendered from the account.
//!
//! Writing is an upsert that only fills a key nobody answered yet: a key answered before
//! (by another node, or by an earlier batch) keeps its first answer.

use std::sync::Arc;

use ledger::CreateTransferResult;

use crate::{Begin, IdempotencyKey, Result, Store, StoreError, codec::saturating as signed, with_pool};

/// A response as remembered for replays: its HTTP status and JSON body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredResponse {
    pub status: u16,
    pub body: String,
}

/// Renders a command's response from its per-event results and, per event, the timestamp
/// of the transfer it names (zero where the event created nothing and found nothing).
/// `None` means "nothing to remember" (a failure of ours, which a retry may run again).
pub type RenderResponseFn =
    Arc<dyn Fn(&[CreateTransferResult], &[u64]) -> Option<StoredResponse> + Send + Sync>;

/// The response of a keyed request, known before the batch or rendered in it.
#[derive(Clone)]
pub enum ResponseDraft {
    /// Known before the batch runs (a refusal decided before any ledger work).
    Known(StoredResponse),
    /// Rendered from the command's results inside the batch.
    AfterBatch(RenderResponseFn),
}

impl std::fmt::Debug for ResponseDraft {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Known(response) => f.debug_tuple("Known").field(response).finish(),
            Self::AfterBatch(_) => f.write_str("AfterBatch"),
        }
    }
}

/// A request's answer to remember under its key, in the batch's transaction.
#[derive(Clone, Debug)]
pub struct KeyedResponse {
    pub key: IdempotencyKey,
    /// Nanoseconds since the Unix epoch (the purge of old keys goes by it).
    pub created_at: u64,
    pub draft: ResponseDraft,
}

impl KeyedResponse {
    /// The row to write, given the command's results (none for a refusal made before the
    /// ledger ran); `None` when the answer is not to be remembered.
    pub(crate) fn row(&self, results: &[CreateTransferResult], timestamps: &[u64]) -> Option<ResponseRow> {
        let response = match &self.draft {
            ResponseDraft::Known(response) => response.clone(),
            ResponseDraft::AfterBatch(render) => render(results, timestamps)?,
        };
        Some(ResponseRow { key: self.key.clone(), created_at: self.created_at, response })
    }
}

/// One row for the idempotency table, rendered.
#[derive(Clone, Debug)]
pub(crate) struct ResponseRow {
    pub key: IdempotencyKey,
    pub created_at: u64,
    pub response: StoredResponse,
}

/// The upsert of one answered key, with `$n` placeholders (the embedded writer runs it per
/// row; PostgreSQL runs the same upsert over arrays in one statement). It fills
/// a key only while it is unanswered and was claimed for the same request: a first answer
/// is never replaced.
pub(crate) const UPSERT_RESPONSE: &str = "INSERT INTO idempotency_keys \
     (owner_id, key, request_hash, response_status, response_body, locked_until, created_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $6) \
     ON CONFLICT (owner_id, key) DO UPDATE SET response_status = excluded.response_status, \
     response_body = excluded.response_body \
     WHERE idempotency_keys.response_status IS NULL \
     AND idempotency_keys.request_hash = excluded.request_hash";

/// The stored state of one key ([`KeyRecord`]), with `$n` placeholders.
pub(crate) const SELECT_KEY: &str = "SELECT request_hash, response_status, response_body, locked_until \
     FROM idempotency_keys WHERE owner_id = $1 AND key = $2";

/// A row of [`SELECT_KEY`] as the database returns it.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct KeyRecord {
    pub request_hash: Vec<u8>,
    pub response_status: Option<i32>,
    pub response_body: Option<String>,
    pub locked_until: i64,
}

impl Store {
    /// What became of `key` before, without claiming it: `None` when the key is free (never
    /// used, or held by a request whose lease ran out at `now`). A read: the claim of a
    /// batched request is its node's in-memory lease, and its record is written with its
    /// transfers.
    pub async fn idempotency_lookup(&self, key: &IdempotencyKey, now: u64) -> Result<Option<Begin>> {
        with_pool!(self, read, |pool, sql| {
            let stored: Option<KeyRecord> = sqlx::query_as(sql(SELECT_KEY))
                .bind(key.owner_id)
                .bind(&key.key)
                .fetch_optional(pool)
                .await?;
            let Some(stored) = stored else { return Ok(None) };
            judge(key, stored, now).map(|begin| match begin {
                Begin::Started => None,
                other => Some(other),
            })
        })
    }
}

/// What a stored key means for a request with `key` at `now`: `Started` when the key may be
/// taken (its holder's lease ran out).
pub(crate) fn judge(key: &IdempotencyKey, stored: KeyRecord, now: u64) -> Result<Begin> {
    if stored.request_hash != key.request_hash {
        return Ok(Begin::Mismatch);
    }
    if let Some(status) = stored.response_status {
        let status = u16::try_from(status).map_err(|_| StoreError::Corrupt("response status".into()))?;
        return Ok(Begin::Replay { status, body: stored.response_body.unwrap_or_default() });
    }
    Ok(if stored.locked_until > signed(now) { Begin::InFlight } else { Begin::Started })
}
