//! Scheduled and recurring payments: the rules for making, changing and cancelling a
//! schedule ([`Schedules`], called by the HTTP handlers), and the `workers` role's
//! [`Scheduler`], which pays each occurrence when it falls due (`worker`).

mod worker;

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use store::{RunRow, ScheduleFrequency, ScheduleRow, Store, StoreError};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::identity::profile::Email;
use crate::wallets::{Recipient, WalletError, Wallets};

pub use store::ScheduleStatus;
pub use worker::{Scheduler, next_occurrence};

/// How often a schedule pays, as a request names it (stored as
/// [`store::ScheduleFrequency`]).
#[derive(Clone, Copy, Debug, Deserialize, Serialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Frequency {
    Once,
    Weekly,
    /// On the start's day of the month (the last day in shorter months).
    Monthly,
}

impl From<Frequency> for ScheduleFrequency {
    fn from(frequency: Frequency) -> Self {
        match frequency {
            Frequency::Once => Self::Once,
            Frequency::Weekly => Self::Weekly,
            Frequency::Monthly => Self::Monthly,
        }
    }
}

/// Who a schedule pays.
#[derive(Clone, Debug)]
pub enum Payee {
    Wallet(Uuid),
    /// The customer registered under this email (their wallet in the currency).
    Customer(Email),
    /// A merchant, recorded as an expense on each payment.
    Biller {
        name: String,
        mcc: Option<String>,
    },
}

/// A new schedule, its fields checked by the caller.
#[derive(Clone, Debug)]
pub struct NewSchedule {
    pub from_wallet_id: Uuid,
    pub to: Payee,
    pub amount: u64,
    pub description: Option<String>,
    pub frequency: Frequency,
    /// The first occurrence (ns); a time in the past means now.
    pub start_at: i64,
    pub end_at: Option<i64>,
}

/// A change to a schedule; `None` leaves a field as it is.
#[derive(Clone, Debug, Default)]
pub struct ScheduleChange {
    /// Pause (`false`) or resume (`true`).
    pub active: Option<bool>,
    pub amount: Option<u64>,
    /// `Some(None)` clears the description.
    pub description: Option<Option<String>>,
    pub end_at: Option<i64>,
}

/// Why a schedule was not made or changed.
#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    #[error("no such scheduled payment")]
    NotFound,
    #[error("the schedule is {}", .0.as_str())]
    Finished(ScheduleStatus),
    #[error("must not be before start_at")]
    EndsBeforeStart,
    #[error("too many scheduled payments")]
    TooMany,
    #[error(transparent)]
    Wallet(#[from] WalletError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The schedules service.
#[derive(Debug, Clone)]
pub struct Schedules {
    store: Store,
    wallets: Arc<Wallets>,
}

impl Schedules {
    pub fn new(store: Store, wallets: Arc<Wallets>) -> Self {
        Self { store, wallets }
    }

    /// Records a new schedule from one of `customer_id`'s wallets, after the checks a
    /// transfer would make (the recipient exists, is another wallet, in the currency).
    pub async fn create(&self, customer_id: Uuid, new: NewSchedule) -> Result<ScheduleRow, ScheduleError> {
        let from = self.wallets.owned_facts(customer_id, new.from_wallet_id).await?;
        let (mut to_wallet_id, mut to_customer_id, mut biller, mut biller_mcc) = (None, None, None, None);
        match new.to {
            Payee::Wallet(wallet_id) => {
                self.wallets.destination(&from, Recipient::Wallet(wallet_id)).await?;
                to_wallet_id = Some(wallet_id);
            }
            Payee::Customer(email) => to_customer_id = Some(self.wallets.recipient_by_email(&email).await?),
            Payee::Biller { name, mcc } => (biller, biller_mcc) = (Some(name), mcc),
        }
        let now = store::now_ns() as i64;
        let start_at = new.start_at.max(now);
        if new.end_at.is_some_and(|end| end < start_at) {
            return Err(ScheduleError::EndsBeforeStart);
        }
        if self.store.schedules(customer_id).await?.len() >= store::SCHEDULES_PER_CUSTOMER_MAX as usize {
            return Err(ScheduleError::TooMany);
        }
        let row = ScheduleRow {
            id: Uuid::now_v7(),
            customer_id,
            from_wallet_id: from.id,
            to_wallet_id,
            to_customer_id,
            biller,
            biller_mcc,
            amount: i64::try_from(new.amount).unwrap_or(i64::MAX),
            currency: from.currency.clone(),
            description: new.description,
            frequency: new.frequency.into(),
            start_at,
            end_at: new.end_at,
            next_run_at: start_at,
            status: ScheduleStatus::Active,
            attempts: 0,
            retry_at: None,
            claimed_until: None,
            created_at: now,
            updated_at: now,
        };
        self.store.insert_schedule(&row).await?;
        Ok(row)
    }

    /// `customer_id`'s schedules.
    pub async fn list(&self, customer_id: Uuid) -> Result<Vec<ScheduleRow>, ScheduleError> {
        Ok(self.store.schedules(customer_id).await?)
    }

    /// One of `customer_id`'s schedules.
    pub async fn get(&self, customer_id: Uuid, id: Uuid) -> Result<ScheduleRow, ScheduleError> {
        self.store.schedule(customer_id, id).await?.ok_or(ScheduleError::NotFound)
    }

    /// Pauses, resumes or edits one of `customer_id`'s schedules that is still running.
    /// Resuming skips the occurrences that fell due while it was paused.
    pub async fn change(
        &self,
        customer_id: Uuid,
        id: Uuid,
        change: ScheduleChange,
    ) -> Result<ScheduleRow, ScheduleError> {
        let mut row = self.get(customer_id, id).await?;
        let status = row.status;
        if !matches!(status, ScheduleStatus::Active | ScheduleStatus::Paused) {
            return Err(ScheduleError::Finished(status));
        }
        match change.active {
            None => {}
            Some(false) => row.status = ScheduleStatus::Paused,
            Some(true) => {
                let now = store::now_ns() as i64;
                while row.next_run_at < now {
                    match next_occurrence(row.frequency, row.start_at, row.next_run_at, row.end_at) {
                        Some(next) => row.next_run_at = next,
                        None => break,
                    }
                }
                row.status = ScheduleStatus::Active;
            }
        }
        if let Some(amount) = change.amount {
            row.amount = i64::try_from(amount).unwrap_or(i64::MAX);
        }
        if let Some(description) = change.description {
            row.description = description;
        }
        if let Some(end_at) = change.end_at {
            row.end_at = Some(end_at);
        }
        row.updated_at = store::now_ns() as i64;
        self.store.update_schedule(&row).await?;
        Ok(row)
    }

    /// Cancels one of `customer_id`'s schedules (occurrences already paid stay paid).
    pub async fn cancel(&self, customer_id: Uuid, id: Uuid) -> Result<(), ScheduleError> {
        let mut row = self.get(customer_id, id).await?;
        row.status = ScheduleStatus::Cancelled;
        row.updated_at = store::now_ns() as i64;
        self.store.update_schedule(&row).await?;
        Ok(())
    }

    /// The latest `limit` occurrences of one of `customer_id`'s schedules, newest first.
    pub async fn runs(&self, customer_id: Uuid, id: Uuid, limit: u32) -> Result<Vec<RunRow>, ScheduleError> {
        self.get(customer_id, id).await?;
        Ok(self.store.schedule_runs(id, limit).await?)
    }
}
