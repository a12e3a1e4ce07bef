//! Bank connections: a customer's links to banks through an aggregator, the accounts each
//! link reaches, and where each account's transaction sync stands.
//!
//! Safety between workers (several processes on PostgreSQL): a connection is synced only
//! by whoever claimed it — a compare-and-set of `claimed_until` that succeeds only when no
//! live claim exists — and the sync is finished with another compare-and-set on that same
//! claim, so a worker whose lease lapsed cannot overwrite a newer sync's outcome. An
//! account's cursor moves by compare-and-set too (from the cursor the page was read at),
//! and the expenses a sync writes are unique per customer by their import hash, so even a
//! lapsed lease cannot record a transaction twice.

use crate::BeginWrite as _;
use uuid::Uuid;

use crate::{Result, Store, with_pool};

/// Bank connections one customer may have at most.
pub const BANK_CONNECTIONS_PER_CUSTOMER_MAX: u32 = 10;
/// Accounts one connection may reach at most (more are not synced).
pub const BANK_ACCOUNTS_PER_CONNECTION_MAX: u32 = 20;
/// Connections per page at most.
const BANK_CONNECTIONS_PAGE_MAX: u32 = 100;

/// A bank connection.
#[derive(Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct BankConnectionRow {
    pub id: Uuid,
    pub customer_id: Uuid,
    /// Which aggregator: `sandbox` (built in).
    pub provider: String,
    pub institution_id: String,
    /// The aggregator's id of the link (Plaid's item id, GoCardless's requisition).
    pub provider_connection_id: String,
    /// The aggregator's credential for the link; never shown, never logged.
    pub access_token: String,
    /// `active`, or `error` when the last sync failed (it is retried with backoff).
    pub status: String,
    pub next_sync_at: i64,
    /// Failed syncs since the last one that worked.
    pub attempts: i64,
    pub claimed_until: Option<i64>,
    pub last_synced_at: Option<i64>,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl std::fmt::Debug for BankConnectionRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BankConnectionRow")
            .field("id", &self.id)
            .field("customer_id", &self.customer_id)
            .field("provider", &self.provider)
            .field("institution_id", &self.institution_id)
            .field("status", &self.status)
            .field("next_sync_at", &self.next_sync_at)
            .field("attempts", &self.attempts)
            .finish_non_exhaustive()
    }
}

const CONNECTION_COLUMNS: &str = "id, customer_id, provider, institution_id, provider_connection_id, access_token, \
     status, next_sync_at, attempts, claimed_until, last_synced_at, last_error, created_at, updated_at";

/// An account reached through a connection.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct BankAccountRow {
    pub id: Uuid,
    pub connection_id: Uuid,
    pub provider_account_id: String,
    pub name: String,
    /// The last digits of the account number.
    pub mask: Option<String>,
    pub currency: String,
    /// `checking`, `savings` or `credit_card`.
    pub account_type: String,
    /// Where the next transactions call resumes; `None` before the first.
    pub sync_cursor: Option<String>,
    pub last_synced_at: Option<i64>,
    pub created_at: i64,
}

const ACCOUNT_COLUMNS: &str = "id, connection_id, provider_account_id, name, mask, currency, account_type, \
     sync_cursor, last_synced_at, created_at";

/// How a sync ended, for [`Store::finish_bank_sync`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncOutcome {
    pub status: String,
    pub attempts: i64,
    pub next_sync_at: i64,
    /// Set when the sync worked.
    pub last_synced_at: Option<i64>,
    pub last_error: Option<String>,
    pub updated_at: i64,
}

impl Store {
    /// Records a connection with its accounts in one transaction. False: the customer has
    /// this link already (same provider and provider connection id), and nothing was written.
    pub async fn insert_bank_connection(
        &self,
        connection: &BankConnectionRow,
        accounts: &[BankAccountRow],
    ) -> Result<bool> {
        let text = format!(
            "INSERT INTO bank_connections ({CONNECTION_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, \
             $10, $11, $12, $13, $14) ON CONFLICT DO NOTHING"
        );
        let accounts_text = format!(
            "INSERT INTO bank_accounts ({ACCOUNT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
        );
        with_pool!(self, write, |pool, sql| {
            let mut tx = pool.begin_write().await?;
            let inserted = sqlx::query(sql(&text))
                .bind(connection.id)
                .bind(connection.customer_id)
                .bind(&connection.provider)
                .bind(&connection.institution_id)
                .bind(&connection.provider_connection_id)
                .bind(&connection.access_token)
                .bind(&connection.status)
                .bind(connection.next_sync_at)
                .bind(connection.attempts)
                .bind(connection.claimed_until)
                .bind(connection.last_synced_at)
                .bind(&connection.last_error)
                .bind(connection.created_at)
                .bind(connection.updated_at)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                == 1;
            if !inserted {
                return Ok(false);
            }
            for account in accounts {
                sqlx::query(sql(&accounts_text))
                    .bind(account.id)
                    .bind(account.connection_id)
                    .bind(&account.provider_account_id)
                    .bind(&account.name)
                    .bind(&account.mask)
                    .bind(&account.currency)
                    .bind(&account.account_type)
                    .bind(&account.sync_cursor)
                    .bind(account.last_synced_at)
                    .bind(account.created_at)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok(true)
        })
    }

    /// The customer's connection `id`.
    pub async fn bank_connection(&self, customer_id: Uuid, id: Uuid) -> Result<Option<BankConnectionRow>> {
        let text =
            format!("SELECT {CONNECTION_COLUMNS} FROM bank_connections WHERE id = $1 AND customer_id = $2");
        with_pool!(self, read, |pool, sql| {
            Ok(sqlx::query_as(sql(&text)).bind(id).bind(customer_id).fetch_optional(pool).await?)
        })
    }

    /// The customer's connections after `after` (by id), at most `limit`.
    pub async fn bank_connections(
        &self,
        customer_id: Uuid,
        after: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<BankConnectionRow>> {
        let text = format!(
            "SELECT {CONNECTION_COLUMNS} FROM bank_connections WHERE customer_id = $1 \
             AND ($2 IS NULL OR id > $2) ORDER BY id LIMIT $3"
        );
        let limit = i64::from(limit.min(BANK_CONNECTIONS_PAGE_MAX + 1));
        with_pool!(self, read, |pool, sql| {
            Ok(sqlx::query_as(sql(&text)).bind(customer_id).bind(after).bind(limit).fetch_all(pool).await?)
        })
    }

    /// How many connections the customer has.
    pub async fn bank_connections_count(&self, customer_id: Uuid) -> Result<u32> {
        let count: i64 = with_pool!(self, read, |pool, sql| {
            sqlx::query_scalar(sql("SELECT COUNT(*) FROM bank_connections WHERE customer_id = $1"))
                .bind(customer_id)
                .fetch_one(pool)
                .await?
        });
        Ok(u32::try_from(count).unwrap_or(u32::MAX))
    }

    /// The accounts of connection `connection_id`, in the aggregator's order.
    pub async fn bank_accounts(&self, connection_id: Uuid) -> Result<Vec<BankAccountRow>> {
        let text = format!(
            "SELECT {ACCOUNT_COLUMNS} FROM bank_accounts WHERE connection_id = $1 ORDER BY created_at, id LIMIT $2"
        );
        with_pool!(self, read, |pool, sql| {
            Ok(sqlx::query_as(sql(&text))
                .bind(connection_id)
                .bind(i64::from(BANK_ACCOUNTS_PER_CONNECTION_MAX))
                .fetch_all(pool)
                .await?)
        })
    }

    /// Deletes the customer's connection `id` and its accounts (the expenses it synced
    /// stay: they are the customer's history). False: there was none.
    pub async fn delete_bank_connection(&self, customer_id: Uuid, id: Uuid) -> Result<bool> {
        let deleted = with_pool!(self, write, |pool, sql| {
            sqlx::query(sql("DELETE FROM bank_connections WHERE id = $1 AND customer_id = $2"))
                .bind(id)
                .bind(customer_id)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(deleted == 1)
    }

    /// Connections due for a sync at `now` and unclaimed, the longest-waiting first.
    pub async fn due_bank_connections(&self, now: i64, limit: u32) -> Result<Vec<BankConnectionRow>> {
        let text = format!(
            "SELECT {CONNECTION_COLUMNS} FROM bank_connections WHERE next_sync_at <= $1 \
             AND (claimed_until IS NULL OR claimed_until < $1) ORDER BY next_sync_at LIMIT $2"
        );
        with_pool!(self, read, |pool, sql| {
            Ok(sqlx::query_as(sql(&text)).bind(now).bind(i64::from(limit)).fetch_all(pool).await?)
        })
    }

    /// Claims connection `id` until `until` (a value unique to this claim); false when
    /// someone else holds a live claim or the connection is gone — or, with `only_if_due`,
    /// when it is not due at `now` (another worker synced it since it was listed).
    pub async fn claim_bank_connection(
        &self,
        id: Uuid,
        now: i64,
        until: i64,
        only_if_due: bool,
    ) -> Result<bool> {
        let claimed = with_pool!(self, write, |pool, sql| {
            sqlx::query(sql("UPDATE bank_connections SET claimed_until = $3 WHERE id = $1 \
                 AND (claimed_until IS NULL OR claimed_until < $2) AND (NOT $4 OR next_sync_at <= $2)"))
            .bind(id)
            .bind(now)
            .bind(until)
            .bind(only_if_due)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(claimed == 1)
    }

    /// Moves account `id`'s cursor from `from` to `to` (after the transactions before `to`
    /// were written). False: the cursor moved meanwhile (another sync got there).
    pub async fn advance_bank_cursor(
        &self,
        id: Uuid,
        from: Option<&str>,
        to: &str,
        now: i64,
    ) -> Result<bool> {
        let moved = with_pool!(self, write, |pool, sql| {
            sqlx::query(sql("UPDATE bank_accounts SET sync_cursor = $3, last_synced_at = $4 WHERE id = $1 \
                 AND (sync_cursor = $2 OR (sync_cursor IS NULL AND $2 IS NULL))"))
            .bind(id)
            .bind(from)
            .bind(to)
            .bind(now)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(moved == 1)
    }

    /// Records how the sync under claim `claimed_until` ended and releases the claim.
    /// False: the claim lapsed and someone else claimed the connection (their outcome
    /// stands), or it was deleted.
    pub async fn finish_bank_sync(
        &self,
        id: Uuid,
        claimed_until: i64,
        outcome: &SyncOutcome,
    ) -> Result<bool> {
        let finished = with_pool!(self, write, |pool, sql| {
            sqlx::query(sql("UPDATE bank_connections SET status = $3, attempts = $4, next_sync_at = $5, \
                 last_synced_at = COALESCE($6, last_synced_at), last_error = $7, updated_at = $8, \
                 claimed_until = NULL WHERE id = $1 AND claimed_until = $2"))
            .bind(id)
            .bind(claimed_until)
            .bind(&outcome.status)
            .bind(outcome.attempts)
            .bind(outcome.next_sync_at)
            .bind(outcome.last_synced_at)
            .bind(&outcome.last_error)
            .bind(outcome.updated_at)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(finished == 1)
    }
}
