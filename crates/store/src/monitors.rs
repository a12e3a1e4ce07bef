//! Balance monitors: conditions on wallets (available balance below or above an amount, a
//! single debit above an amount) that the notifications consumer checks against the
//! balance and transfer events of every wallet operation (`coffer::wallets::monitors`).
//! Only the definitions live here; a crossing is decided from the event itself (the
//! balance before and after its operation), so nothing else needs storing.

use crate::BeginWrite as _;
use uuid::Uuid;

use crate::{Result, Store, StoreError, numbered, with_pool};

/// Monitors one wallet may have at most from each setter (its owner; operators).
pub const MONITORS_PER_WALLET_MAX: u32 = 16;

/// What a monitor watches for, stored as its name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MonitorCondition {
    /// The available balance falls below the amount.
    AvailableBelow,
    /// The available balance rises above the amount.
    AvailableAbove,
    /// One debit is larger than the amount.
    DebitAbove,
}

impl MonitorCondition {
    pub const ALL: [Self; 3] = [Self::AvailableBelow, Self::AvailableAbove, Self::DebitAbove];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::AvailableBelow => "available_below",
            Self::AvailableAbove => "available_above",
            Self::DebitAbove => "debit_above",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|condition| condition.as_str() == name)
    }
}

/// A monitor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MonitorRow {
    pub id: Uuid,
    pub wallet_id: Uuid,
    /// Whom a crossing is told to: the wallet's owner for their own monitors; `None` for
    /// an operator's (admins' webhooks and the broker only).
    pub customer_id: Option<Uuid>,
    pub condition: MonitorCondition,
    /// Minor units of the wallet's currency.
    pub amount: i64,
    pub created_at: i64,
}

/// A row of `balance_monitors` as the database returns it.
#[derive(sqlx::FromRow)]
struct MonitorRecord {
    id: Uuid,
    wallet_id: Uuid,
    customer_id: Option<Uuid>,
    condition: String,
    amount: i64,
    created_at: i64,
}

impl TryFrom<MonitorRecord> for MonitorRow {
    type Error = StoreError;

    fn try_from(row: MonitorRecord) -> Result<Self> {
        Ok(Self {
            id: row.id,
            wallet_id: row.wallet_id,
            customer_id: row.customer_id,
            condition: MonitorCondition::from_name(&row.condition)
                .ok_or_else(|| StoreError::Corrupt(format!("unknown monitor condition {}", row.condition)))?,
            amount: row.amount,
            created_at: row.created_at,
        })
    }
}

const MONITOR_COLUMNS: &str = "id, wallet_id, customer_id, condition, amount, created_at";

impl Store {
    /// Records `monitor` unless its setter has [`MONITORS_PER_WALLET_MAX`] on its wallet
    /// already (then false). Counting and inserting share one transaction, so two racing
    /// requests cannot pass the limit together.
    pub async fn create_monitor(&self, monitor: &MonitorRow) -> Result<bool> {
        let insert = format!(
            "INSERT INTO balance_monitors ({MONITOR_COLUMNS}) SELECT $1, $2, $3, $4, $5, $6 \
             WHERE (SELECT COUNT(*) FROM balance_monitors WHERE wallet_id = $2 \
             AND customer_id IS NOT DISTINCT FROM $3) < $7"
        );
        // SQLite has one writer; on PostgreSQL the wallet's row lock serialises creations.
        let postgres = self.backend() == crate::Backend::Postgres;
        with_pool!(self, write, |pool, sql| {
            let mut tx = pool.begin_write().await?;
            if postgres {
                sqlx::query(sql("SELECT id FROM wallets WHERE id = $1 FOR UPDATE"))
                    .bind(monitor.wallet_id)
                    .execute(&mut *tx)
                    .await?;
            }
            let inserted = sqlx::query(sql(&insert))
                .bind(monitor.id)
                .bind(monitor.wallet_id)
                .bind(monitor.customer_id)
                .bind(monitor.condition.as_str())
                .bind(monitor.amount)
                .bind(monitor.created_at)
                .bind(i64::from(MONITORS_PER_WALLET_MAX))
                .execute(&mut *tx)
                .await?
                .rows_affected();
            tx.commit().await?;
            Ok(inserted == 1)
        })
    }

    /// The monitors of wallet `wallet_id` set by `customer_id` (`None`: by operators),
    /// oldest first.
    pub async fn wallet_monitors(
        &self,
        wallet_id: Uuid,
        customer_id: Option<Uuid>,
    ) -> Result<Vec<MonitorRow>> {
        let text = format!(
            "SELECT {MONITOR_COLUMNS} FROM balance_monitors WHERE wallet_id = $1 \
             AND customer_id IS NOT DISTINCT FROM $2 ORDER BY created_at, id LIMIT $3"
        );
        let rows: Vec<MonitorRecord> = with_pool!(self, read, |pool, sql| {
            sqlx::query_as(sql(&text))
                .bind(wallet_id)
                .bind(customer_id)
                .bind(i64::from(MONITORS_PER_WALLET_MAX))
                .fetch_all(pool)
                .await?
        });
        rows.into_iter().map(MonitorRow::try_from).collect()
    }

    /// Deletes monitor `id` of wallet `wallet_id` set by `customer_id` (`None`: by
    /// operators); false when there is no such monitor.
    pub async fn delete_monitor(&self, wallet_id: Uuid, customer_id: Option<Uuid>, id: Uuid) -> Result<bool> {
        let deleted = with_pool!(self, write, |pool, sql| {
            sqlx::query(sql("DELETE FROM balance_monitors WHERE id = $1 AND wallet_id = $2 \
                 AND customer_id IS NOT DISTINCT FROM $3"))
            .bind(id)
            .bind(wallet_id)
            .bind(customer_id)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(deleted == 1)
    }

    /// Every monitor of the wallets `wallet_ids` (whoever set it), in statements of
    /// [`crate::ROWS_PER_STATEMENT`] ids.
    pub async fn monitors_of_wallets(&self, wallet_ids: &[Uuid]) -> Result<Vec<MonitorRow>> {
        let mut monitors = Vec::new();
        for chunk in wallet_ids.chunks(crate::ROWS_PER_STATEMENT) {
            let text = format!(
                "SELECT {MONITOR_COLUMNS} FROM balance_monitors WHERE wallet_id IN ({}) ORDER BY created_at, id",
                numbered("$", chunk.len())
            );
            let rows: Vec<MonitorRecord> = with_pool!(self, read, |pool, sql| {
                let mut query = sqlx::query_as(sql(&text));
                for id in chunk {
                    query = query.bind(*id);
                }
                query.fetch_all(pool).await?
            });
            for row in rows {
                monitors.push(MonitorRow::try_from(row)?);
            }
        }
        Ok(monitors)
    }
}
