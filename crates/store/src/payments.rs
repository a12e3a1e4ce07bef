//! Card top-ups and withdrawals: the record of each payment with an outside provider,
//! `pending` until the provider's answer is known and the ledger reflects it, then
//! `succeeded` or `failed` — once. The two have the same shape, in two tables.
//!
//! A payment is written by ledger batches ([`PaymentChange`], carried by
//! `Command::CreateTransfersWithNotes`): recorded (pending) before the provider is called,
//! and finished in the transaction that moves its money (or, for a decline, in a batch of
//! its own), together with its event and the request's remembered answer.

use std::sync::Arc;

use ledger::CreateTransferResult;
use uuid::Uuid;

use crate::{
    Result, Store, StoreError,
    codec::{saturating as signed, unsigned},
    with_pool,
};

/// Which kind of payment (and so which table).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PaymentKind {
    TopUp,
    Withdrawal,
}

impl PaymentKind {
    fn table(self) -> &'static str {
        match self {
            Self::TopUp => "top_ups",
            Self::Withdrawal => "withdrawals",
        }
    }
}

/// Where a payment stands. It leaves `Pending` at most once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PaymentStatus {
    Pending,
    Succeeded,
    Failed,
}

impl PaymentStatus {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        [Self::Pending, Self::Succeeded, Self::Failed].into_iter().find(|status| status.as_str() == name)
    }
}

/// How a payment finished.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finish {
    pub status: PaymentStatus,
    /// Why it failed (the provider's decline code, or ours).
    pub failure_code: Option<String>,
    /// The provider's id for the charge or payout.
    pub provider_id: Option<String>,
}

/// A write to a payment, made inside a ledger batch.
#[derive(Clone, Debug)]
pub enum PaymentChange {
    /// Records a new payment; nothing when one with its id is recorded already (a retried
    /// request).
    Record(PaymentKind, PaymentRow),
    /// Moves a pending payment to its final status at `at` and writes `event` with it;
    /// nothing at all when it is no longer pending (another worker finished it first), so
    /// a payment's event is written once.
    Finish { kind: PaymentKind, id: Uuid, finish: Finish, at: u64, event: crate::NewEvent },
}

/// Renders a command's payment writes from its per-event results and timestamps (as
/// [`crate::RenderResponseFn`] renders its answer), so that they commit only as the
/// ledger decided.
#[derive(Clone)]
pub struct PaymentsDraft(pub RenderPaymentsFn);

/// The function inside a [`PaymentsDraft`].
pub type RenderPaymentsFn = Arc<dyn Fn(&[CreateTransferResult], &[u64]) -> Vec<PaymentChange> + Send + Sync>;

impl std::fmt::Debug for PaymentsDraft {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PaymentsDraft")
    }
}

/// The insert of a new payment into `kind`'s table, with `$n` placeholders.
pub(crate) fn insert_text(kind: PaymentKind) -> String {
    format!(
        "INSERT INTO {} ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (id) DO NOTHING",
        kind.table()
    )
}

/// The update finishing a pending payment of `kind`, with `$n` placeholders: id, status,
/// failure code, provider id, time.
pub(crate) fn finish_text(kind: PaymentKind) -> String {
    format!(
        "UPDATE {} SET status = $2, failure_code = $3, provider_id = COALESCE($4, provider_id), updated_at = $5 \
         WHERE id = $1 AND status = 'pending'",
        kind.table()
    )
}

/// A top-up or withdrawal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PaymentRow {
    pub id: Uuid,
    pub customer_id: Uuid,
    pub wallet_id: Uuid,
    pub amount: u64,
    pub currency: String,
    pub status: PaymentStatus,
    /// Why it failed (the provider's decline code, or ours).
    pub failure_code: Option<String>,
    /// The provider's id for the charge or payout.
    pub provider_id: Option<String>,
    /// Nanoseconds since the Unix epoch.
    pub created_at: u64,
    pub updated_at: u64,
}

const COLUMNS: &str =
    "id, customer_id, wallet_id, amount, currency, status, failure_code, provider_id, created_at, updated_at";

/// A row of a payment table ([`COLUMNS`]) as the database returns it.
#[derive(Debug, sqlx::FromRow)]
struct PaymentRecord {
    id: Uuid,
    customer_id: Uuid,
    wallet_id: Uuid,
    amount: i64,
    currency: String,
    status: String,
    failure_code: Option<String>,
    provider_id: Option<String>,
    created_at: i64,
    updated_at: i64,
}

impl TryFrom<PaymentRecord> for PaymentRow {
    type Error = StoreError;

    fn try_from(row: PaymentRecord) -> Result<Self> {
        Ok(Self {
            id: row.id,
            customer_id: row.customer_id,
            wallet_id: row.wallet_id,
            amount: unsigned(row.amount, "amount")?,
            currency: row.currency,
            status: PaymentStatus::from_name(&row.status)
                .ok_or_else(|| StoreError::Corrupt(format!("unknown payment status {}", row.status)))?,
            failure_code: row.failure_code,
            provider_id: row.provider_id,
            created_at: unsigned(row.created_at, "created_at")?,
            updated_at: unsigned(row.updated_at, "updated_at")?,
        })
    }
}

impl Store {
    /// The payment `id`.
    pub async fn payment(&self, kind: PaymentKind, id: Uuid) -> Result<Option<PaymentRow>> {
        let text = format!("SELECT {COLUMNS} FROM {} WHERE id = $1", kind.table());
        with_pool!(self, read, |pool, sql| {
            let row: Option<PaymentRecord> = sqlx::query_as(sql(&text)).bind(id).fetch_optional(pool).await?;
            row.map(PaymentRow::try_from).transpose()
        })
    }

    /// Up to `limit` succeeded payments in `currency` last updated (that is, finished) in
    /// `from..to` (nanoseconds), oldest first: the provider references of the transfers a
    /// reconciliation looks at.
    pub async fn succeeded_payments_between(
        &self,
        kind: PaymentKind,
        currency: &str,
        from: u64,
        to: u64,
        limit: u32,
    ) -> Result<Vec<PaymentRow>> {
        let text = format!(
            "SELECT {COLUMNS} FROM {} WHERE status = 'succeeded' AND currency = $1 \
             AND updated_at >= $2 AND updated_at < $3 ORDER BY updated_at, id LIMIT $4",
            kind.table()
        );
        with_pool!(self, read, |pool, sql| {
            let rows: Vec<PaymentRecord> = sqlx::query_as(sql(&text))
                .bind(currency)
                .bind(signed(from))
                .bind(signed(to))
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await?;
            rows.into_iter().map(PaymentRow::try_from).collect()
        })
    }

    /// Up to `limit` payments still pending that were created before `created_before`,
    /// oldest first: the recovery worker's queue.
    pub async fn pending_payments(
        &self,
        kind: PaymentKind,
        created_before: u64,
        limit: u32,
    ) -> Result<Vec<PaymentRow>> {
        let text = format!(
            "SELECT {COLUMNS} FROM {} WHERE status = 'pending' AND created_at < $1 ORDER BY created_at LIMIT $2",
            kind.table()
        );
        with_pool!(self, read, |pool, sql| {
            let rows: Vec<PaymentRecord> = sqlx::query_as(sql(&text))
                .bind(signed(created_before))
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await?;
            rows.into_iter().map(PaymentRow::try_from).collect()
        })
    }
}
