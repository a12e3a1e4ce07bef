//! The wallet product's tables: wallets (ledger accounts owned by customers),
//! idempotency keys of POST requests, and the operation history, read from the ledger's
//! transfers with their notes, pending statuses and balance snapshots.
//!
//! SQL is written once with `$n` placeholders and run on either backend through
//! [`crate::with_pool`]. Writes outside ledger batches go to the SQLite writer (or the
//! PostgreSQL pool); reads to the read pool.

use crate::BeginWrite as _;
use uuid::Uuid;

use crate::{
    NoteKind, Result, Store, StoreError,
    codec::{saturating as signed, unsigned},
    with_pool,
};

/// Wallets one customer may hold at most: bounds listings and the history query's
/// `IN` list.
pub const WALLETS_PER_CUSTOMER_MAX: usize = 50;

/// What a wallet is for; it decides the ledger account's flags and the API's rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WalletType {
    Wallet,
    Savings,
    Business,
    Tax,
    Escrow,
    /// May go below zero down to its credit limit.
    CreditCard,
}

impl WalletType {
    pub const ALL: [Self; 6] =
        [Self::Wallet, Self::Savings, Self::Business, Self::Tax, Self::Escrow, Self::CreditCard];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Wallet => "wallet",
            Self::Savings => "savings",
            Self::Business => "business",
            Self::Tax => "tax",
            Self::Escrow => "escrow",
            Self::CreditCard => "credit_card",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == name)
    }
}

/// A wallet to record (its ledger account must exist first).
#[derive(Clone, Debug)]
pub struct NewWallet {
    pub id: Uuid,
    pub customer_id: Uuid,
    pub currency: String,
    pub wallet_type: WalletType,
    pub name: Option<String>,
    pub credit_limit: u64,
    /// Nanoseconds since the Unix epoch.
    pub created_at: u64,
}

/// A wallet with its ledger account's balances.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WalletRow {
    pub id: Uuid,
    pub customer_id: Uuid,
    pub currency: String,
    pub wallet_type: WalletType,
    pub name: Option<String>,
    pub credit_limit: u64,
    pub created_at: u64,
    pub debits_pending: u64,
    pub debits_posted: u64,
    pub credits_pending: u64,
    pub credits_posted: u64,
}

/// An idempotency key as its owner sent it, with the hash of the request it came with.
#[derive(Clone, Debug)]
pub struct IdempotencyKey {
    pub owner_id: Uuid,
    pub key: String,
    pub request_hash: Vec<u8>,
}

/// What `idempotency_begin` found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Begin {
    /// The caller holds the key now and must finish it.
    Started,
    /// The request was done before: replay this response.
    Replay { status: u16, body: String },
    /// The key was used with a different request.
    Mismatch,
    /// Another request with this key is still running.
    InFlight,
}

/// Which operations to list: one page of the history of some wallets.
#[derive(Clone, Debug)]
pub struct OperationFilter {
    /// The wallets whose history to read (at most [`WALLETS_PER_CUSTOMER_MAX`]).
    pub wallet_ids: Vec<Uuid>,
    /// Which sides to include: debits (money out) and credits (money in).
    pub debits: bool,
    pub credits: bool,
    /// Only operations whose note has this kind (`transfer`, `top_up`, …).
    pub kind: Option<NoteKind>,
    /// Only operations in this status.
    pub status: Option<ledger::PendingStatus>,
    /// Inclusive bounds on the ledger timestamp.
    pub timestamp_min: u64,
    pub timestamp_max: u64,
    /// Inclusive bounds on the amount.
    pub amount_min: u64,
    pub amount_max: u64,
    /// Newest first when true.
    pub reversed: bool,
    /// Resume after this row (its `position`).
    pub after: Option<(u64, bool)>,
    pub limit: u32,
}

/// One side of one ledger transfer, as seen from one of the wallets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OperationRow {
    pub transfer_id: Uuid,
    pub wallet_id: Uuid,
    /// True when money came in (the wallet is the credit side).
    pub credit: bool,
    pub counterparty_account_id: Uuid,
    /// The transfer's note kind; `None` for a ledger transfer made outside the wallet API.
    pub kind: Option<NoteKind>,
    pub description: Option<String>,
    pub amount: u64,
    pub timestamp: u64,
    /// `Posted`, or the pending transfer's status.
    pub status: ledger::PendingStatus,
    /// The wallet's balances right after this transfer, when its account keeps history.
    pub balance_after: Option<[u64; 4]>,
}

impl OperationRow {
    /// The row's place in the history's order: (timestamp, credit side after debit side).
    pub fn position(&self) -> (u64, bool) {
        (self.timestamp, self.credit)
    }
}

const WALLET_SELECT: &str = "SELECT w.id, w.customer_id, w.currency, w.type, w.name, w.credit_limit, w.created_at, \
     a.debits_pending, a.debits_posted, a.credits_pending, a.credits_posted \
     FROM wallets w JOIN accounts a ON a.id = w.id";

/// A row of [`WALLET_SELECT`] as the database returns it.
#[derive(Debug, sqlx::FromRow)]
struct WalletRecord {
    id: Uuid,
    customer_id: Uuid,
    currency: String,
    #[sqlx(rename = "type")]
    kind: String,
    name: Option<String>,
    credit_limit: i64,
    created_at: i64,
    debits_pending: i64,
    debits_posted: i64,
    credits_pending: i64,
    credits_posted: i64,
}

impl TryFrom<WalletRecord> for WalletRow {
    type Error = StoreError;

    fn try_from(row: WalletRecord) -> Result<Self> {
        Ok(Self {
            id: row.id,
            customer_id: row.customer_id,
            currency: row.currency,
            wallet_type: WalletType::from_name(&row.kind)
                .ok_or_else(|| StoreError::Corrupt(format!("unknown wallet type {}", row.kind)))?,
            name: row.name,
            credit_limit: unsigned(row.credit_limit, "credit limit")?,
            created_at: unsigned(row.created_at, "time")?,
            debits_pending: unsigned(row.debits_pending, "balance")?,
            debits_posted: unsigned(row.debits_posted, "balance")?,
            credits_pending: unsigned(row.credits_pending, "balance")?,
            credits_posted: unsigned(row.credits_posted, "balance")?,
        })
    }
}

/// A row of the [`Store::operations`] query as the database returns it. The balance
/// columns come from a `LEFT JOIN`: all null when the account keeps no history.
#[derive(Debug, sqlx::FromRow)]
struct OperationRecord {
    transfer_id: Uuid,
    wallet_id: Uuid,
    /// 1 on the credit side, 0 on the debit side.
    credit: i32,
    counterparty_id: Uuid,
    kind: Option<String>,
    description: Option<String>,
    amount: i64,
    timestamp: i64,
    status: String,
    debits_pending: Option<i64>,
    debits_posted: Option<i64>,
    credits_pending: Option<i64>,
    credits_posted: Option<i64>,
}

impl TryFrom<OperationRecord> for OperationRow {
    type Error = StoreError;

    fn try_from(row: OperationRecord) -> Result<Self> {
        let balance_after = match row.debits_pending {
            None => None,
            Some(debits_pending) => {
                let [Some(debits_posted), Some(credits_pending), Some(credits_posted)] =
                    [row.debits_posted, row.credits_pending, row.credits_posted]
                else {
                    return Err(StoreError::Corrupt("a balance snapshot is partly null".into()));
                };
                Some([
                    unsigned(debits_pending, "balance")?,
                    unsigned(debits_posted, "balance")?,
                    unsigned(credits_pending, "balance")?,
                    unsigned(credits_posted, "balance")?,
                ])
            }
        };
        Ok(Self {
            transfer_id: row.transfer_id,
            wallet_id: row.wallet_id,
            credit: row.credit == 1,
            counterparty_account_id: row.counterparty_id,
            kind: row.kind.as_deref().map(NoteKind::decode).transpose()?,
            description: row.description,
            amount: unsigned(row.amount, "amount")?,
            timestamp: unsigned(row.timestamp, "timestamp")?,
            status: ledger::PendingStatus::from_name(&row.status)
                .ok_or_else(|| StoreError::Corrupt(format!("unknown transfer status {}", row.status)))?,
            balance_after,
        })
    }
}

impl Store {
    /// Records a wallet whose ledger account exists. Returns false when a wallet with this
    /// id was recorded before (a retried creation), true when this call recorded it.
    /// `events` are written with it, only if this call records it.
    pub async fn insert_wallet(&self, wallet: &NewWallet, events: &[crate::NewEvent]) -> Result<bool> {
        let inserted = with_pool!(self, write, |pool, sql| {
            let mut tx = pool.begin_write().await?;
            let inserted = sqlx::query(sql(
                "INSERT INTO wallets (id, customer_id, currency, type, name, credit_limit, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (id) DO NOTHING",
            ))
            .bind(wallet.id)
            .bind(wallet.customer_id)
            .bind(&wallet.currency)
            .bind(wallet.wallet_type.as_str())
            .bind(&wallet.name)
            .bind(signed(wallet.credit_limit))
            .bind(signed(wallet.created_at))
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if inserted == 1 {
                crate::outbox::insert_events!(tx, sql, events);
            }
            tx.commit().await?;
            inserted
        });
        Ok(inserted == 1)
    }

    /// The wallet `id`, with balances.
    pub async fn wallet(&self, id: Uuid) -> Result<Option<WalletRow>> {
        with_pool!(self, read, |pool, sql| {
            let row: Option<WalletRecord> = sqlx::query_as(sql(&format!("{WALLET_SELECT} WHERE w.id = $1")))
                .bind(id)
                .fetch_optional(pool)
                .await?;
            row.map(WalletRow::try_from).transpose()
        })
    }

    /// A customer's wallets in creation order, after the wallet `after` (created_at, id).
    pub async fn customer_wallets(
        &self,
        customer_id: Uuid,
        after: Option<(u64, Uuid)>,
        limit: u32,
    ) -> Result<Vec<WalletRow>> {
        let (after_time, after_id) = after.map_or((-1, Uuid::nil()), |(time, id)| (signed(time), id));
        with_pool!(self, read, |pool, sql| {
            let rows: Vec<WalletRecord> = sqlx::query_as(sql(&format!(
                "{WALLET_SELECT} WHERE w.customer_id = $1 \
                 AND (w.created_at > $2 OR (w.created_at = $2 AND w.id > $3)) \
                 ORDER BY w.created_at, w.id LIMIT $4"
            )))
            .bind(customer_id)
            .bind(after_time)
            .bind(after_id)
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await?;
            rows.into_iter().map(WalletRow::try_from).collect()
        })
    }

    /// The customer's default wallet in `currency`: their oldest plain `wallet`.
    pub async fn default_wallet(&self, customer_id: Uuid, currency: &str) -> Result<Option<WalletRow>> {
        with_pool!(self, read, |pool, sql| {
            let row: Option<WalletRecord> = sqlx::query_as(sql(&format!(
                "{WALLET_SELECT} WHERE w.customer_id = $1 AND w.currency = $2 AND w.type = 'wallet' \
                 ORDER BY w.created_at, w.id LIMIT 1"
            )))
            .bind(customer_id)
            .bind(currency)
            .fetch_optional(pool)
            .await?;
            row.map(WalletRow::try_from).transpose()
        })
    }

    /// The note written with transfer `id`, if it has one.
    pub async fn transfer_note(&self, id: u128) -> Result<Option<crate::TransferNote>> {
        with_pool!(self, read, |pool, sql| {
            let row: Option<(String, Option<String>)> =
                sqlx::query_as(sql("SELECT kind, description FROM transfer_notes WHERE transfer_id = $1"))
                    .bind(Uuid::from_u128(id))
                    .fetch_optional(pool)
                    .await?;
            row.map(|(kind, description)| {
                Ok(crate::TransferNote { transfer_id: id, kind: NoteKind::decode(&kind)?, description })
            })
            .transpose()
        })
    }

    /// How many wallets the customer has.
    pub async fn wallet_count(&self, customer_id: Uuid) -> Result<u64> {
        with_pool!(self, read, |pool, sql| {
            let count: i64 = sqlx::query_scalar(sql("SELECT count(*) FROM wallets WHERE customer_id = $1"))
                .bind(customer_id)
                .fetch_one(pool)
                .await?;
            unsigned(count, "count")
        })
    }

    /// Claims an idempotency key for a request, or says what became of it before.
    ///
    /// A claim lasts until `now + lease_ns`; a request that died holding it (a crash, a
    /// timeout) releases the key when the lease runs out, and a retry may then claim it
    /// again. Safe to re-run because what the request does is itself idempotent (its
    /// ledger ids derive from the key).
    pub async fn idempotency_begin(&self, key: &IdempotencyKey, now: u64, lease_ns: u64) -> Result<Begin> {
        let locked_until = signed(now.saturating_add(lease_ns));
        with_pool!(self, write, |pool, sql| {
            let inserted = sqlx::query(sql(
                "INSERT INTO idempotency_keys (owner_id, key, request_hash, locked_until, created_at) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (owner_id, key) DO NOTHING",
            ))
            .bind(key.owner_id)
            .bind(&key.key)
            .bind(&key.request_hash)
            .bind(locked_until)
            .bind(signed(now))
            .execute(pool)
            .await?
            .rows_affected();
            if inserted == 1 {
                return Ok(Begin::Started);
            }
            let stored: crate::idempotency::KeyRecord = sqlx::query_as(sql(crate::idempotency::SELECT_KEY))
                .bind(key.owner_id)
                .bind(&key.key)
                .fetch_one(pool)
                .await?;
            let held_until = stored.locked_until;
            let found = crate::idempotency::judge(key, stored, now)?;
            if found != Begin::Started {
                return Ok(found);
            }
            // The holder's lease ran out: take the key over, unless another retry just did.
            let taken = sqlx::query(sql("UPDATE idempotency_keys SET locked_until = $3 \
                 WHERE owner_id = $1 AND key = $2 AND response_status IS NULL AND locked_until = $4"))
            .bind(key.owner_id)
            .bind(&key.key)
            .bind(locked_until)
            .bind(held_until)
            .execute(pool)
            .await?
            .rows_affected();
            Ok(if taken == 1 { Begin::Started } else { Begin::InFlight })
        })
    }

    /// Stores the response of a request that holds its key, for replays.
    pub async fn idempotency_finish(&self, owner_id: Uuid, key: &str, status: u16, body: &str) -> Result<()> {
        with_pool!(self, write, |pool, sql| {
            sqlx::query(sql("UPDATE idempotency_keys SET response_status = $3, response_body = $4 \
                 WHERE owner_id = $1 AND key = $2"))
            .bind(owner_id)
            .bind(key)
            .bind(i32::from(status))
            .bind(body)
            .execute(pool)
            .await?;
            Ok(())
        })
    }

    /// Releases a key whose request did nothing (it failed before any effect), so the
    /// client may use it again at once.
    pub async fn idempotency_release(&self, owner_id: Uuid, key: &str) -> Result<()> {
        with_pool!(self, write, |pool, sql| {
            sqlx::query(sql(
                "DELETE FROM idempotency_keys WHERE owner_id = $1 AND key = $2 AND response_status IS NULL",
            ))
            .bind(owner_id)
            .bind(key)
            .execute(pool)
            .await?;
            Ok(())
        })
    }

    /// Deletes up to `limit` keys created before `created_before`; returns how many.
    pub async fn idempotency_purge(&self, created_before: u64, limit: u32) -> Result<u64> {
        with_pool!(self, write, |pool, sql| {
            Ok(sqlx::query(sql(
                "DELETE FROM idempotency_keys WHERE (owner_id, key) IN \
                 (SELECT owner_id, key FROM idempotency_keys WHERE created_at < $1 ORDER BY created_at LIMIT $2)",
            ))
            .bind(signed(created_before))
            .bind(i64::from(limit))
            .execute(pool)
            .await?
            .rows_affected())
        })
    }

    /// One page of the operation history of some wallets, in timestamp order. Posts and
    /// voids of pending transfers are not rows of their own: the pending transfer's row
    /// carries its status.
    pub async fn operations(&self, filter: &OperationFilter) -> Result<Vec<OperationRow>> {
        assert!(filter.wallet_ids.len() <= WALLETS_PER_CUSTOMER_MAX);
        if filter.wallet_ids.is_empty() || !(filter.debits || filter.credits) || filter.limit == 0 {
            return Ok(Vec::new());
        }
        let order = if filter.reversed { "DESC" } else { "ASC" };
        // Bounds per side, so that the cursor (timestamp, side) resumes exactly.
        let bounds = |credit: bool| -> Option<(u64, u64)> {
            let (mut low, mut high) = (filter.timestamp_min, filter.timestamp_max);
            if let Some((timestamp, after_credit)) = filter.after {
                if filter.reversed {
                    // Newest first, credit before debit within one timestamp.
                    let same_allowed = !credit && after_credit;
                    high = high.min(if same_allowed { timestamp } else { timestamp.checked_sub(1)? });
                } else {
                    let same_allowed = credit && !after_credit;
                    low = low.max(if same_allowed { timestamp } else { timestamp.checked_add(1)? });
                }
            }
            (low <= high).then_some((low, high))
        };
        // $1–$4 side bounds, $5 the nil id, $6–$7 amount bounds, $8 kind, $9 status,
        // $10 limit, then the wallet ids.
        let ids = (0..filter.wallet_ids.len()).map(|i| format!("${}", i + 11)).collect::<Vec<_>>().join(", ");
        let side = |credit: bool| -> Option<String> {
            bounds(credit)?;
            let (column, other, bit, low, high) = if credit {
                ("credit_account_id", "debit_account_id", 1, "$3", "$4")
            } else {
                ("debit_account_id", "credit_account_id", 0, "$1", "$2")
            };
            Some(format!(
                "SELECT * FROM (SELECT t.id AS transfer_id, t.{column} AS wallet_id, {bit} AS credit, \
                 t.{other} AS counterparty_id, n.kind, n.description, t.amount, t.timestamp, \
                 COALESCE(p.status, 'posted') AS status, b.debits_pending, b.debits_posted, \
                 b.credits_pending, b.credits_posted \
                 FROM transfers t \
                 LEFT JOIN transfer_notes n ON n.transfer_id = t.id \
                 LEFT JOIN pending_transfers p ON p.id = t.id \
                 LEFT JOIN account_balances b ON b.account_id = t.{column} AND b.timestamp = t.timestamp \
                 WHERE t.{column} IN ({ids}) AND t.pending_id = $5 \
                 AND t.timestamp >= {low} AND t.timestamp <= {high} \
                 AND t.amount >= $6 AND t.amount <= $7 \
                 AND ($8 = '' OR n.kind = $8) AND ($9 = '' OR COALESCE(p.status, 'posted') = $9) \
                 ORDER BY t.timestamp {order} LIMIT $10) AS side{bit}"
            ))
        };
        let mut parts = Vec::new();
        if filter.debits {
            parts.extend(side(false));
        }
        if filter.credits {
            parts.extend(side(true));
        }
        if parts.is_empty() {
            return Ok(Vec::new());
        }
        let text = format!(
            "SELECT * FROM ({}) AS operations ORDER BY timestamp {order}, credit {order} LIMIT $10",
            parts.join(" UNION ALL ")
        );
        let (debit_low, debit_high) = bounds(false).unwrap_or((1, 0));
        let (credit_low, credit_high) = bounds(true).unwrap_or((1, 0));
        with_pool!(self, replica, |pool, sql| {
            let mut query = sqlx::query_as(sql(&text))
                .bind(signed(debit_low))
                .bind(signed(debit_high))
                .bind(signed(credit_low))
                .bind(signed(credit_high))
                .bind(Uuid::nil())
                .bind(signed(filter.amount_min))
                .bind(signed(filter.amount_max))
                .bind(filter.kind.map_or("", NoteKind::as_str))
                .bind(filter.status.map_or("", ledger::PendingStatus::as_str))
                .bind(i64::from(filter.limit));
            for id in &filter.wallet_ids {
                query = query.bind(*id);
            }
            let rows: Vec<OperationRecord> = query.fetch_all(pool).await?;
            rows.into_iter().map(OperationRow::try_from).collect()
        })
    }
}
