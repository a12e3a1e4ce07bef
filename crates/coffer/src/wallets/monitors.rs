//! Balance monitors: a customer (on their own wallets) or an operator (on any wallet) sets
//! a condition — available balance below or above an amount, a single debit above an
//! amount — and hears once when an operation crosses it.
//!
//! How it is evaluated: every wallet operation's commit batch renders a `balance.updated`
//! event with the available balance just before and just after that operation, and a
//! `transfer.posted` / `transfer.pending` event with the amount (`events`). The
//! notifications consumer reads the monitors of the wallets a delivery names (one query per
//! delivery) and calls [`crossings`]: a balance condition fires when the operation moved
//! the balance from one side of the threshold to the other, so it fires once per crossing
//! and stays quiet while the balance stays past it; a debit condition fires per debit.
//! The crossing becomes a `monitor.triggered` event written in the same transaction that
//! records the delivery as applied, so a redelivery never fires twice. Nothing polls
//! balances, and the commit path does no extra work: a monitor costs only its row and the
//! consumer's one indexed read per delivery.
//!
//! Not seen: transfers made through the raw ledger API (`/v1/ledger/...`) on a wallet's
//! account, and pending transfers that expire, since neither is a wallet operation with
//! events.

use serde::{Deserialize, Serialize};
use store::MonitorRow;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{WalletError, Wallets};
use crate::events::{Direction, EventData, MonitorTriggeredData};

/// What a monitor watches for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Condition {
    /// The available balance falls below the amount.
    AvailableBelow,
    /// The available balance rises above the amount.
    AvailableAbove,
    /// One debit (posted or pending) is larger than the amount.
    DebitAbove,
}

impl Condition {
    /// Its name (also its JSON name).
    pub fn as_str(self) -> &'static str {
        store::MonitorCondition::from(self).as_str()
    }
}

impl From<Condition> for store::MonitorCondition {
    fn from(condition: Condition) -> Self {
        match condition {
            Condition::AvailableBelow => Self::AvailableBelow,
            Condition::AvailableAbove => Self::AvailableAbove,
            Condition::DebitAbove => Self::DebitAbove,
        }
    }
}

impl From<store::MonitorCondition> for Condition {
    fn from(condition: store::MonitorCondition) -> Self {
        match condition {
            store::MonitorCondition::AvailableBelow => Self::AvailableBelow,
            store::MonitorCondition::AvailableAbove => Self::AvailableAbove,
            store::MonitorCondition::DebitAbove => Self::DebitAbove,
        }
    }
}

/// Who sets, lists and deletes monitors: a customer on their own wallets, or an operator
/// on any (operators' monitors are apart from the customer's and tell only operators).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Setter {
    Customer(Uuid),
    Operator,
}

impl Setter {
    fn customer_id(self) -> Option<Uuid> {
        match self {
            Self::Customer(id) => Some(id),
            Self::Operator => None,
        }
    }
}

/// A monitor as the service hands it out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Monitor {
    pub id: Uuid,
    pub wallet_id: Uuid,
    pub condition: Condition,
    pub amount: i64,
    /// Nanoseconds since the epoch.
    pub created_at: u64,
}

impl From<MonitorRow> for Monitor {
    fn from(row: MonitorRow) -> Self {
        Self {
            id: row.id,
            wallet_id: row.wallet_id,
            condition: row.condition.into(),
            amount: row.amount,
            created_at: row.created_at.max(0) as u64,
        }
    }
}

impl Wallets {
    /// The wallet `setter` may watch: a customer's own (another's is "not found"), any for
    /// an operator.
    async fn watchable(&self, setter: Setter, wallet_id: Uuid) -> Result<(), WalletError> {
        match setter {
            Setter::Customer(customer_id) => self.owned_facts(customer_id, wallet_id).await.map(drop),
            Setter::Operator => self.facts(wallet_id).await?.map(drop).ok_or(WalletError::WalletNotFound),
        }
    }

    /// Sets a monitor on `wallet_id`; at most `store::MONITORS_PER_WALLET_MAX` per wallet.
    pub async fn create_monitor(
        &self,
        setter: Setter,
        wallet_id: Uuid,
        condition: Condition,
        amount: i64,
    ) -> Result<Monitor, WalletError> {
        self.watchable(setter, wallet_id).await?;
        let row = MonitorRow {
            id: Uuid::now_v7(),
            wallet_id,
            customer_id: setter.customer_id(),
            condition: condition.into(),
            amount,
            created_at: store::now_ns() as i64,
        };
        if !self.store.create_monitor(&row).await? {
            return Err(WalletError::TooManyMonitors(store::MONITORS_PER_WALLET_MAX));
        }
        Ok(row.into())
    }

    /// The monitors `setter` set on `wallet_id`, oldest first.
    pub async fn monitors(&self, setter: Setter, wallet_id: Uuid) -> Result<Vec<Monitor>, WalletError> {
        self.watchable(setter, wallet_id).await?;
        let rows = self.store.wallet_monitors(wallet_id, setter.customer_id()).await?;
        Ok(rows.into_iter().map(Monitor::from).collect())
    }

    /// Deletes one of the monitors `setter` set on `wallet_id`.
    pub async fn delete_monitor(&self, setter: Setter, wallet_id: Uuid, id: Uuid) -> Result<(), WalletError> {
        self.watchable(setter, wallet_id).await?;
        if self.store.delete_monitor(wallet_id, setter.customer_id(), id).await? {
            Ok(())
        } else {
            Err(WalletError::MonitorNotFound)
        }
    }
}

/// The wallet an event may cross a monitor of: the wallet of a balance update, or the
/// debited wallet of a transfer.
pub fn watched_wallet(data: &EventData) -> Option<Uuid> {
    match data {
        EventData::BalanceUpdated(balance) => Some(balance.wallet_id),
        EventData::TransferPosted(transfer) | EventData::TransferPending(transfer)
            if transfer.direction == Direction::Out =>
        {
            Some(transfer.wallet_id)
        }
        _ => None,
    }
}

/// The monitors among `monitors` (any wallet's) that the operation `data` describes
/// crossed, as the data of their `monitor.triggered` events.
pub fn crossings(monitors: &[MonitorRow], data: &EventData) -> Vec<MonitorTriggeredData<'static>> {
    let Some(wallet_id) = watched_wallet(data) else { return Vec::new() };
    monitors
        .iter()
        .filter(|monitor| monitor.wallet_id == wallet_id)
        .filter_map(|monitor| {
            let condition = Condition::from(monitor.condition);
            let threshold = monitor.amount;
            let (transfer_id, value, currency) = match (condition, data) {
                (
                    Condition::AvailableBelow | Condition::AvailableAbove,
                    EventData::BalanceUpdated(balance),
                ) => {
                    let (before, after) = (balance.previous_available, balance.balance.available);
                    let crossed = match condition {
                        Condition::AvailableBelow => before >= threshold && after < threshold,
                        _ => before <= threshold && after > threshold,
                    };
                    crossed.then(|| (balance.transfer_id, after, balance.currency.clone()))?
                }
                (
                    Condition::DebitAbove,
                    EventData::TransferPosted(transfer) | EventData::TransferPending(transfer),
                ) => {
                    let amount = i64::try_from(transfer.amount).unwrap_or(i64::MAX);
                    (amount > threshold).then(|| (transfer.transfer_id, amount, transfer.currency.clone()))?
                }
                _ => return None,
            };
            Some(MonitorTriggeredData {
                customer_id: monitor.customer_id,
                monitor_id: monitor.id,
                wallet_id,
                transfer_id,
                condition,
                threshold,
                value,
                currency,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use super::*;
    use crate::events::{BalanceData, BalanceUpdatedData, TransferData};

    fn monitor(wallet_id: Uuid, condition: Condition, amount: i64) -> MonitorRow {
        MonitorRow {
            id: Uuid::now_v7(),
            wallet_id,
            customer_id: Some(Uuid::now_v7()),
            condition: condition.into(),
            amount,
            created_at: 1,
        }
    }

    fn balance(wallet_id: Uuid, before: i64, after: i64) -> EventData {
        EventData::BalanceUpdated(BalanceUpdatedData {
            customer_id: Uuid::now_v7(),
            wallet_id,
            transfer_id: Uuid::now_v7(),
            currency: Cow::Borrowed("USD"),
            balance: BalanceData { posted: after, pending: 0, available: after },
            previous_available: before,
        })
    }

    fn debit(wallet_id: Uuid, amount: u64, direction: Direction) -> EventData {
        EventData::TransferPosted(TransferData {
            customer_id: Uuid::now_v7(),
            wallet_id,
            transfer_id: Uuid::now_v7(),
            operation: crate::events::TransferOperation::Transfer,
            direction,
            amount,
            currency: Cow::Borrowed("USD"),
            counterparty_wallet_id: None,
            description: None,
        })
    }

    #[test]
    fn a_balance_condition_fires_once_per_crossing() {
        let wallet = Uuid::now_v7();
        let below = [monitor(wallet, Condition::AvailableBelow, 1_000)];
        let fired = |before, after| crossings(&below, &balance(wallet, before, after)).len();
        assert_eq!(fired(5_000, 999), 1, "crossing down");
        assert_eq!(fired(999, 500), 0, "still below: quiet");
        assert_eq!(fired(500, 1_000), 0, "back to the threshold is not below");
        assert_eq!(fired(1_000, 999), 1, "and down again");
        assert_eq!(fired(5_000, 4_000), 0, "above all along");
        let above = [monitor(wallet, Condition::AvailableAbove, 1_000)];
        let fired = |before, after| crossings(&above, &balance(wallet, before, after)).len();
        assert_eq!(
            (fired(1_000, 1_001), fired(1_001, 9_000), fired(9_000, 10), fired(10, 2_000)),
            (1, 0, 0, 1)
        );
    }

    #[test]
    fn a_debit_condition_fires_per_large_debit_only() {
        let wallet = Uuid::now_v7();
        let monitors = [monitor(wallet, Condition::DebitAbove, 10_000)];
        assert_eq!(crossings(&monitors, &debit(wallet, 10_001, Direction::Out)).len(), 1);
        assert_eq!(crossings(&monitors, &debit(wallet, 10_000, Direction::Out)).len(), 0);
        assert_eq!(crossings(&monitors, &debit(wallet, 50_000, Direction::In)).len(), 0, "a credit");
        let triggered = &crossings(&monitors, &debit(wallet, 20_000, Direction::Out))[0];
        assert_eq!(
            (triggered.value, triggered.threshold, triggered.condition),
            (20_000, 10_000, Condition::DebitAbove)
        );
    }

    #[test]
    fn only_the_operations_wallet_and_matching_kinds_count() {
        let (wallet, other) = (Uuid::now_v7(), Uuid::now_v7());
        let monitors = [
            monitor(other, Condition::AvailableBelow, 1_000),
            monitor(wallet, Condition::DebitAbove, 1),
            monitor(wallet, Condition::AvailableBelow, 1_000),
        ];
        let triggered = crossings(&monitors, &balance(wallet, 2_000, 0));
        assert_eq!(
            triggered.len(),
            1,
            "the debit monitor ignores balance events; the other wallet's is not ours"
        );
        assert_eq!((triggered[0].monitor_id, triggered[0].value), (monitors[2].id, 0));
        assert_eq!(triggered[0].customer_id, monitors[2].customer_id);
    }
}
