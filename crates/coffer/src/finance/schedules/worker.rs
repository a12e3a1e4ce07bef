//! The scheduled-payments worker, run by the `workers` role: pays each occurrence of a
//! schedule when it falls due.
//!
//! Each occurrence of a schedule is paid with a ledger transfer whose id is derived from
//! (schedule, occurrence time), so a worker that crashed mid-payment, or two workers that
//! raced for the same occurrence, pay it once: the second attempt finds the transfer
//! (`exists`). Workers claim an occurrence with a compare-and-set and a lease (see
//! `store::scheduled`). Insufficient funds are retried with exponential backoff; after the
//! last attempt the occurrence fails, `scheduled_payment.failed` is emitted (payload
//! `events::ScheduledPaymentFailedData`; it becomes a notification), and a recurring
//! schedule moves on to its next occurrence.

use std::sync::Arc;
use std::time::Duration;

use store::{RunRow, RunStatus, ScheduleFrequency, ScheduleRow, ScheduleStatus, Step, Store};
use time::{Date, OffsetDateTime};
use uuid::Uuid;

use crate::events::{self, EventType, ScheduledPaymentFailedData, ScheduledPaymentFailure};
use crate::finance::{Finance, NewExpense};
use crate::wallets::{Recipient, TransferRequest, WalletError, Wallets, derive_id};

/// How long a worker holds an occurrence it claimed.
const LEASE: Duration = Duration::from_secs(60);
/// Schedules a worker step takes at most.
const BATCH: u32 = 50;
const DAY_NS: i64 = 24 * 3600 * 1_000_000_000;

/// The occurrence after `occurrence` of a schedule, if any.
pub fn next_occurrence(
    frequency: ScheduleFrequency,
    start_at: i64,
    occurrence: i64,
    end_at: Option<i64>,
) -> Option<i64> {
    let next = match frequency {
        ScheduleFrequency::Once => return None,
        ScheduleFrequency::Weekly => occurrence.checked_add(7 * DAY_NS)?,
        ScheduleFrequency::Monthly => {
            // Same day of month as the start (clamped to the month's length), same time.
            let start = OffsetDateTime::from_unix_timestamp_nanos(i128::from(start_at)).ok()?;
            let current = OffsetDateTime::from_unix_timestamp_nanos(i128::from(occurrence)).ok()?;
            let (year, month) = if current.month() == time::Month::December {
                (current.year() + 1, time::Month::January)
            } else {
                (current.year(), current.month().next())
            };
            let day = start.day().min(time::util::days_in_month(month, year));
            let date = Date::from_calendar_date(year, month, day).ok()?;
            i64::try_from(date.with_time(start.time()).assume_utc().unix_timestamp_nanos()).ok()?
        }
    };
    end_at.is_none_or(|end| next <= end).then_some(next)
}

/// The scheduled-payments worker.
#[derive(Debug, Clone)]
pub struct Scheduler {
    store: Store,
    wallets: Arc<Wallets>,
    finance: Finance,
    /// Delay before the first retry after insufficient funds; doubles per attempt.
    pub retry_base: Duration,
    /// Attempts per occurrence.
    pub attempts_max: i64,
}

impl Scheduler {
    pub fn new(store: Store, wallets: Arc<Wallets>, retry_base: Duration) -> Self {
        let finance = Finance::new(store.clone());
        Self { store, wallets, finance, retry_base, attempts_max: 3 }
    }

    /// Runs the occurrences that are due; true when a full batch was found.
    pub async fn step(&self) -> anyhow::Result<bool> {
        let now = store::now_ns() as i64;
        let due = self.store.due_schedules(now, BATCH).await?;
        for row in &due {
            let lease = now + LEASE.as_nanos() as i64;
            if self.store.claim_schedule(row.id, row.next_run_at, now, lease).await? {
                self.run(row).await?;
            }
        }
        Ok(due.len() == BATCH as usize)
    }

    /// Pays occurrence `row.next_run_at` of `row` and moves the schedule on.
    async fn run(&self, row: &ScheduleRow) -> anyhow::Result<()> {
        let occurrence = row.next_run_at;
        // Per occurrence and attempt: the ledger remembers a failed transfer id for good,
        // so a retry after insufficient funds needs its own; a re-run of the same attempt
        // (a crash, a racing worker) names the same transfer and finds it.
        let transfer_id = derive_id(row.id, "scheduled-payment", &format!("{occurrence}:{}", row.attempts));
        let description = row
            .description
            .clone()
            .or_else(|| row.biller.clone())
            .unwrap_or_else(|| "Scheduled payment".into());
        let amount = u64::try_from(row.amount).unwrap_or(0);
        let outcome = match &row.biller {
            Some(biller) => match self
                .wallets
                .pay_merchant(row.customer_id, transfer_id, row.from_wallet_id, amount, &description)
                .await
            {
                Ok((wallet, timestamp)) => {
                    let expense = NewExpense {
                        amount: row.amount,
                        currency: wallet.currency.clone(),
                        description: row.description.clone(),
                        merchant: Some(biller.clone()),
                        mcc: row.biller_mcc.clone(),
                        occurred_at: i64::try_from(timestamp).unwrap_or(i64::MAX),
                        wallet_id: Some(wallet.id),
                        ..NewExpense::default()
                    };
                    let id = Uuid::from_u128(transfer_id);
                    self.finance.add_expense(row.customer_id, id, expense, "wallet", None).await?;
                    Ok(())
                }
                Err(error) => Err(error),
            },
            None => {
                let to = match (row.to_wallet_id, row.to_customer_id) {
                    (Some(wallet), _) => Recipient::Wallet(wallet),
                    (None, Some(customer)) => Recipient::Customer(customer),
                    (None, None) => return Err(anyhow::anyhow!("schedule {} has no recipient", row.id)),
                };
                let request = TransferRequest {
                    from_wallet_id: row.from_wallet_id,
                    to,
                    amount,
                    description: Some(description),
                };
                self.wallets.transfer(row.customer_id, transfer_id, request).await.map(|_| ())
            }
        };
        let now = store::now_ns() as i64;
        let attempts = row.attempts + 1;
        let next = next_occurrence(row.frequency, row.start_at, occurrence, row.end_at);
        let (run_status, failure, status, next_run_at, schedule_attempts, retry_at) = match outcome {
            Ok(()) => {
                let status = if next.is_some() { ScheduleStatus::Active } else { ScheduleStatus::Completed };
                (RunStatus::Succeeded, None, status, next.unwrap_or(occurrence), 0, None)
            }
            Err(WalletError::InsufficientFunds) if attempts < self.attempts_max => {
                let attempt = attempts.clamp(1, 20) as u32;
                let delay =
                    crate::support::backoff(self.retry_base, attempt, Duration::MAX).as_nanos() as i64;
                (
                    RunStatus::Retrying,
                    Some(ScheduledPaymentFailure::InsufficientFunds),
                    ScheduleStatus::Active,
                    occurrence,
                    attempts,
                    Some(now + delay),
                )
            }
            Err(
                error @ (WalletError::InsufficientFunds
                | WalletError::WalletNotFound
                | WalletError::RecipientNotFound
                | WalletError::SameWallet
                | WalletError::CurrencyMismatch
                | WalletError::CurrencyNotSupported),
            ) => {
                let failure = match error {
                    WalletError::InsufficientFunds => ScheduledPaymentFailure::InsufficientFunds,
                    WalletError::CurrencyMismatch => ScheduledPaymentFailure::CurrencyMismatch,
                    WalletError::SameWallet => ScheduledPaymentFailure::SameWallet,
                    _ => ScheduledPaymentFailure::RecipientOrWalletNotFound,
                };
                // Funds may come later: a recurring schedule goes on; anything else stops it.
                let keeps_going = next.is_some() && failure == ScheduledPaymentFailure::InsufficientFunds;
                let status = if keeps_going { ScheduleStatus::Active } else { ScheduleStatus::Failed };
                (RunStatus::Failed, Some(failure), status, next.unwrap_or(occurrence), 0, None)
            }
            // The store or the pipeline failed: leave the claim to lapse and try again.
            Err(error) => return Err(error.into()),
        };
        let run = RunRow {
            id: Uuid::now_v7(),
            payment_id: row.id,
            occurrence_at: occurrence,
            status: run_status,
            attempts,
            transfer_id: (run_status == RunStatus::Succeeded).then(|| Uuid::from_u128(transfer_id)),
            error: failure.map(|failure| failure.as_str().to_owned()),
            updated_at: now,
        };
        let events: Vec<store::NewEvent> = if run_status == RunStatus::Failed {
            vec![events::event(
                EventType::ScheduledPaymentFailed,
                Some(row.customer_id),
                &format!("scheduled-payments/{}", row.id),
                &ScheduledPaymentFailedData {
                    customer_id: row.customer_id,
                    wallet_id: row.from_wallet_id,
                    scheduled_payment_id: row.id,
                    // Occurrences are after 1970; an earlier one reads as the epoch.
                    occurrence_at: OffsetDateTime::from_unix_timestamp_nanos(i128::from(occurrence.max(0)))
                        .unwrap_or(OffsetDateTime::UNIX_EPOCH),
                    amount: row.amount,
                    currency: row.currency.as_str().into(),
                    failure_code: failure,
                    attempts,
                },
            )]
        } else {
            Vec::new()
        };
        let step = Step {
            occurrence_at: occurrence,
            run,
            next_run_at,
            status,
            attempts: schedule_attempts,
            retry_at,
        };
        self.store.finish_occurrence(row.id, &step, &events).await?;
        Ok(())
    }

    /// Runs until `shutdown`, looking for due occurrences every `interval`.
    pub async fn run_until(self, interval: Duration, shutdown: tokio_util::sync::CancellationToken) {
        crate::support::repeat("scheduled-payments", interval, shutdown, || self.step()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> i64 {
        let time = OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).unwrap();
        i64::try_from(time.unix_timestamp_nanos()).unwrap()
    }

    #[test]
    fn occurrences_follow_the_frequency_and_stop_at_the_end() {
        let start = at("2026-01-31T09:00:00Z");
        assert_eq!(next_occurrence(ScheduleFrequency::Once, start, start, None), None);
        assert_eq!(
            next_occurrence(ScheduleFrequency::Weekly, start, start, None),
            Some(at("2026-02-07T09:00:00Z"))
        );
        let february = next_occurrence(ScheduleFrequency::Monthly, start, start, None).unwrap();
        assert_eq!(february, at("2026-02-28T09:00:00Z"), "clamped to the month's length");
        assert_eq!(
            next_occurrence(ScheduleFrequency::Monthly, start, february, None),
            Some(at("2026-03-31T09:00:00Z")),
            "back to day 31"
        );
        assert_eq!(
            next_occurrence(ScheduleFrequency::Monthly, start, at("2026-12-31T09:00:00Z"), None),
            Some(at("2027-01-31T09:00:00Z"))
        );
        assert_eq!(
            next_occurrence(ScheduleFrequency::Weekly, start, start, Some(at("2026-02-01T00:00:00Z"))),
            None,
            "past the end"
        );
    }
}
