//! The payment flows: top-up (charge, then credit the wallet), withdrawal (hold, pay out,
//! then post or void) and recovery of the ones left pending.

use std::sync::Arc;

use ledger::{CreateTransferResult, Transfer, TransferFlags};
use store::{
    Command, EventDraft, Outcome, PaymentKind, PaymentRow, PaymentStatus, Store, StoreError, TransferNote,
};
use uuid::Uuid;

use super::gateway::{
    ChargeRequest, PaymentGateway, PayoutProvider, PayoutRequest, ProviderError, ProviderOutcome,
};
use crate::{
    events::{self, Direction, EventType, Leg, TransferFacts},
    ledger::CommitPipeline,
    wallets::{
        Currency, WalletError, Wallets, derive_id,
        money::{account_code, transfer_code},
        service::chain_outcome,
    },
};

/// Payments the recovery worker looks at per pass: bounded so one pass is short.
pub const RECOVERY_BATCH_MAX: u32 = 100;

/// Why a payment was refused or could not be read.
#[derive(Debug, thiserror::Error)]
pub enum PaymentError {
    #[error(transparent)]
    Wallet(#[from] WalletError),
    #[error("no such payment")]
    NotFound,
    #[error("the store failed")]
    Store(#[from] StoreError),
}

/// The payment service.
#[derive(Debug)]
pub struct Payments {
    store: Store,
    pipeline: CommitPipeline,
    wallets: Arc<Wallets>,
    gateway: Arc<dyn PaymentGateway>,
    payouts: Arc<dyn PayoutProvider>,
}

impl Payments {
    pub fn new(
        store: Store,
        pipeline: CommitPipeline,
        wallets: Arc<Wallets>,
        gateway: Arc<dyn PaymentGateway>,
        payouts: Arc<dyn PayoutProvider>,
    ) -> Self {
        Self { store, pipeline, wallets, gateway, payouts }
    }

    /// The payment, if `customer_id` owns it.
    pub async fn get(
        &self,
        kind: PaymentKind,
        customer_id: Uuid,
        id: Uuid,
    ) -> Result<PaymentRow, PaymentError> {
        match self.store.payment(kind, id).await? {
            Some(payment) if payment.customer_id == customer_id => Ok(payment),
            _ => Err(PaymentError::NotFound),
        }
    }

    /// Records a payment (or finds the one recorded by an earlier try of this request).
    async fn record(
        &self,
        kind: PaymentKind,
        customer_id: Uuid,
        wallet_id: Uuid,
        id: Uuid,
        amount: u64,
    ) -> Result<(PaymentRow, Currency), PaymentError> {
        let wallet = self.wallets.owned(customer_id, wallet_id).await?;
        let currency = Currency::parse(&wallet.currency).ok_or(WalletError::CurrencyNotSupported)?;
        let now = store::now_ns();
        let row = PaymentRow {
            id,
            customer_id,
            wallet_id,
            amount,
            currency: currency.code().to_owned(),
            status: PaymentStatus::Pending,
            failure_code: None,
            provider_id: None,
            created_at: now,
            updated_at: now,
        };
        self.store.insert_payment(kind, &row).await?;
        let stored = self.get(kind, customer_id, id).await?;
        Ok((stored, currency))
    }

    async fn chain(
        &self,
        transfers: Vec<Transfer>,
        notes: Vec<TransferNote>,
        events: Vec<EventDraft>,
    ) -> Result<Vec<CreateTransferResult>, PaymentError> {
        let count = transfers.len();
        let command = Command::CreateTransfersWithNotes { transfers, notes, events, response: None };
        match self.pipeline.submit(command).await.map_err(WalletError::from)? {
            Outcome::Noted(noted) if noted.results.len() == count => Ok(noted.results),
            other => Err(WalletError::Ledger(format!("unexpected outcome {other:?}")).into()),
        }
    }

    /// The events of `row` moving to `status`, and of its ledger transfer `transfer_id`
    /// (`kind`) for the wallet.
    async fn transfer_events(
        &self,
        row: &PaymentRow,
        transfer_id: u128,
        kind: EventType,
        operation: &str,
        direction: Direction,
    ) -> Result<Vec<EventDraft>, PaymentError> {
        let Some(wallet) = self.store.wallet(row.wallet_id).await? else { return Ok(Vec::new()) };
        let currency = Currency::parse(&wallet.currency).ok_or(WalletError::CurrencyNotSupported)?;
        let facts =
            TransferFacts { transfer_id, kind, operation, amount: row.amount, currency, description: None };
        let wallet = crate::wallets::WalletFacts::from(&wallet);
        Ok(events::transfer_drafts(&facts, &[Leg { wallet: &wallet, direction, counterparty: None }]))
    }

    /// Charges `payment_method` and credits the wallet. The answer is `succeeded`,
    /// `failed` (declined, with the gateway's code) or, when the gateway's answer is not
    /// known yet, `pending` (the recovery worker finishes it).
    pub async fn top_up(
        &self,
        customer_id: Uuid,
        wallet_id: Uuid,
        id: Uuid,
        amount: u64,
        payment_method: String,
    ) -> Result<PaymentRow, PaymentError> {
        let (row, currency) = self.record(PaymentKind::TopUp, customer_id, wallet_id, id, amount).await?;
        if row.status != PaymentStatus::Pending {
            return Ok(row);
        }
        let request = ChargeRequest {
            idempotency_key: id.to_string(),
            amount: row.amount,
            currency: currency.code().to_owned(),
            payment_method,
        };
        let outcome = self.gateway.charge(request).await;
        if let Err(error) = &outcome {
            tracing::warn!(top_up_id = %id, %error, "charge outcome unknown; recovery will finish the top-up");
        }
        self.settle_top_up(&row, currency, outcome.ok()).await
    }

    /// Applies a known gateway outcome to a pending top-up; `None` leaves it pending.
    async fn settle_top_up(
        &self,
        row: &PaymentRow,
        currency: Currency,
        outcome: Option<ProviderOutcome>,
    ) -> Result<PaymentRow, PaymentError> {
        match outcome {
            Some(ProviderOutcome::Succeeded { provider_id }) => {
                let settlement = self.wallets.system_account(currency, account_code::CARD_SETTLEMENT).await?;
                let credit = Transfer {
                    id: derive_id(row.id, "top-up", ""),
                    debit_account_id: settlement,
                    credit_account_id: row.wallet_id.as_u128(),
                    amount: row.amount,
                    ledger: currency.ledger(),
                    code: transfer_code::TOP_UP,
                    user_data_128: row.id.as_u128(),
                    ..Default::default()
                };
                let mut transfers = vec![credit];
                let mut notes =
                    vec![TransferNote { transfer_id: credit.id, kind: "top_up".into(), description: None }];
                let fee_bps = self.wallets.fees().top_up_bps;
                self.wallets
                    .add_fee(&mut transfers, &mut notes, credit.credit_account_id, currency, fee_bps)
                    .await?;
                let drafts = self
                    .transfer_events(row, credit.id, EventType::TransferPosted, "top_up", Direction::In)
                    .await?;
                chain_outcome(&self.chain(transfers, notes, drafts).await?)?;
                let now = store::now_ns();
                self.store
                    .finish_payment(
                        PaymentKind::TopUp,
                        row.id,
                        store::Finish {
                            status: PaymentStatus::Succeeded,
                            failure_code: None,
                            // Empty when recovery found the credit but not the provider's record.
                            provider_id: Some(provider_id.as_str()).filter(|id| !id.is_empty()),
                        },
                        now,
                        &[payment_event(row, EventType::TopUpSucceeded, None)],
                    )
                    .await?;
                tracing::info!(top_up_id = %row.id, amount = row.amount, "top-up succeeded");
            }
            Some(ProviderOutcome::Declined { code }) => {
                self.store
                    .finish_payment(
                        PaymentKind::TopUp,
                        row.id,
                        store::Finish {
                            status: PaymentStatus::Failed,
                            failure_code: Some(&code),
                            provider_id: None,
                        },
                        store::now_ns(),
                        &[payment_event(row, EventType::TopUpFailed, Some(&code))],
                    )
                    .await?;
                tracing::info!(top_up_id = %row.id, decline = %code, "top-up declined");
            }
            None => {}
        }
        self.get(PaymentKind::TopUp, row.customer_id, row.id).await
    }

    /// Places a hold on the wallet, pays out, then posts or voids the hold.
    pub async fn withdraw(
        &self,
        customer_id: Uuid,
        wallet_id: Uuid,
        id: Uuid,
        amount: u64,
        destination: String,
    ) -> Result<PaymentRow, PaymentError> {
        let (row, currency) =
            self.record(PaymentKind::Withdrawal, customer_id, wallet_id, id, amount).await?;
        if row.status != PaymentStatus::Pending {
            return Ok(row);
        }
        let payouts = self.wallets.system_account(currency, account_code::PAYOUTS).await?;
        let hold = Transfer {
            id: derive_id(row.id, "withdrawal-hold", ""),
            debit_account_id: row.wallet_id.as_u128(),
            credit_account_id: payouts,
            amount: row.amount,
            ledger: currency.ledger(),
            code: transfer_code::WITHDRAWAL,
            flags: TransferFlags::PENDING,
            user_data_128: row.id.as_u128(),
            ..Default::default()
        };
        let mut transfers = vec![hold];
        let mut notes =
            vec![TransferNote { transfer_id: hold.id, kind: "withdrawal".into(), description: None }];
        let fee_bps = self.wallets.fees().withdrawal_bps;
        self.wallets.add_fee(&mut transfers, &mut notes, hold.debit_account_id, currency, fee_bps).await?;
        let drafts = self
            .transfer_events(&row, hold.id, EventType::TransferPending, "withdrawal", Direction::Out)
            .await?;
        let results = self.chain(transfers, notes, drafts).await?;
        match chain_outcome(&results) {
            Ok(()) => {}
            Err(WalletError::InsufficientFunds | WalletError::FailedBefore(_)) => {
                self.store
                    .finish_payment(
                        PaymentKind::Withdrawal,
                        row.id,
                        store::Finish {
                            status: PaymentStatus::Failed,
                            failure_code: Some("insufficient_funds"),
                            provider_id: None,
                        },
                        store::now_ns(),
                        &[payment_event(&row, EventType::WithdrawalFailed, Some("insufficient_funds"))],
                    )
                    .await?;
                return Err(WalletError::InsufficientFunds.into());
            }
            Err(other) => return Err(other.into()),
        }
        let request = PayoutRequest {
            idempotency_key: id.to_string(),
            amount: row.amount,
            currency: currency.code().to_owned(),
            destination,
        };
        let outcome = self.payouts.payout(request).await;
        if let Err(error) = &outcome {
            tracing::warn!(withdrawal_id = %id, %error, "payout outcome unknown; recovery will finish the withdrawal");
        }
        self.settle_withdrawal(&row, outcome.ok()).await
    }

    /// Posts (paid out) or voids (refused) the hold of a pending withdrawal.
    async fn settle_withdrawal(
        &self,
        row: &PaymentRow,
        outcome: Option<ProviderOutcome>,
    ) -> Result<PaymentRow, PaymentError> {
        let hold_id = derive_id(row.id, "withdrawal-hold", "");
        let (flag, status, failure, provider_id) = match &outcome {
            Some(ProviderOutcome::Succeeded { provider_id }) => (
                TransferFlags::POST_PENDING_TRANSFER,
                PaymentStatus::Succeeded,
                None,
                Some(provider_id.as_str()),
            ),
            Some(ProviderOutcome::Declined { code }) => {
                (TransferFlags::VOID_PENDING_TRANSFER, PaymentStatus::Failed, Some(code.as_str()), None)
            }
            None => return self.get(PaymentKind::Withdrawal, row.customer_id, row.id).await,
        };
        let resolve = |pending_id: u128, purpose: &str| Transfer {
            id: derive_id(row.id, purpose, ""),
            pending_id,
            amount: if flag == TransferFlags::POST_PENDING_TRANSFER { ledger::AMOUNT_MAX } else { 0 },
            flags: flag,
            ..Default::default()
        };
        let mut transfers = vec![resolve(hold_id, "withdrawal-resolve")];
        let mut notes =
            vec![TransferNote { transfer_id: transfers[0].id, kind: "withdrawal".into(), description: None }];
        // The fee held with the withdrawal (if one was) is posted or voided with it.
        let fee_hold_id = derive_id(Uuid::from_u128(hold_id), "fee", "");
        if self.store.transfer(fee_hold_id).await?.is_some() {
            transfers[0].flags = flag.union(TransferFlags::LINKED);
            let fee = resolve(fee_hold_id, "withdrawal-fee-resolve");
            notes.push(TransferNote { transfer_id: fee.id, kind: "fee".into(), description: None });
            transfers.push(fee);
        }
        let (kind, paid) = if flag == TransferFlags::POST_PENDING_TRANSFER {
            (EventType::TransferPosted, EventType::WithdrawalSucceeded)
        } else {
            (EventType::TransferVoided, EventType::WithdrawalFailed)
        };
        let drafts = self.transfer_events(row, transfers[0].id, kind, "withdrawal", Direction::Out).await?;
        let results = self.chain(transfers, notes, drafts).await?;
        match results[0] {
            CreateTransferResult::Ok | CreateTransferResult::Exists => {}
            // The process stopped before the hold was placed: there is nothing to void.
            CreateTransferResult::PendingTransferNotFound | CreateTransferResult::IdAlreadyFailed
                if status == PaymentStatus::Failed => {}
            other => return Err(WalletError::Ledger(format!("withdrawal resolution: {other}")).into()),
        }
        self.store
            .finish_payment(
                PaymentKind::Withdrawal,
                row.id,
                store::Finish { status, failure_code: failure, provider_id },
                store::now_ns(),
                &[payment_event(row, paid, failure)],
            )
            .await?;
        tracing::info!(withdrawal_id = %row.id, status = status.as_str(), "withdrawal finished");
        self.get(PaymentKind::Withdrawal, row.customer_id, row.id).await
    }

    /// Finishes payments pending for longer than `grace_ns` by asking the provider what
    /// became of them. A payment the provider never saw has failed. Returns how many
    /// were finished.
    pub async fn recover(&self, grace_ns: u64) -> Result<usize, PaymentError> {
        let before = store::now_ns().saturating_sub(grace_ns);
        let mut finished = 0;
        for row in self.store.pending_payments(PaymentKind::TopUp, before, RECOVERY_BATCH_MAX).await? {
            let Some(currency) = Currency::parse(&row.currency) else { continue };
            let status = self.gateway.charge_status(&row.id.to_string()).await;
            // The wallet is credited only after the provider said the charge succeeded, so
            // a credit in the ledger settles the question: a crash between the credit and
            // the status update leaves the top-up pending, and a provider that has lost the
            // charge since (the built-in mock forgets everything on restart) must not turn
            // money already credited into a "failed" top-up.
            let credited = self.store.transfer(derive_id(row.id, "top-up", "")).await?.is_some();
            let outcome = match status {
                Ok(Some(outcome @ ProviderOutcome::Succeeded { .. })) => outcome,
                _ if credited => {
                    tracing::warn!(top_up_id = %row.id, "the provider does not confirm a charge the ledger already credited; recorded as succeeded");
                    ProviderOutcome::Succeeded { provider_id: String::new() }
                }
                Ok(Some(outcome)) => outcome,
                Ok(None) => ProviderOutcome::Declined { code: "charge_not_found".into() },
                Err(ProviderError::Timeout | ProviderError::Unavailable) => continue,
            };
            match self.settle_top_up(&row, currency, Some(outcome)).await {
                Ok(settled) if settled.status != PaymentStatus::Pending => finished += 1,
                Ok(_) => {}
                Err(error) => {
                    tracing::warn!(top_up_id = %row.id, %error, "recovery could not finish a top-up")
                }
            }
        }
        for row in self.store.pending_payments(PaymentKind::Withdrawal, before, RECOVERY_BATCH_MAX).await? {
            let outcome = match self.payouts.payout_status(&row.id.to_string()).await {
                Ok(Some(outcome)) => outcome,
                Ok(None) => ProviderOutcome::Declined { code: "payout_not_found".into() },
                Err(ProviderError::Timeout | ProviderError::Unavailable) => continue,
            };
            // A withdrawal whose hold was never placed (insufficient funds) is already
            // failed; one whose hold exists is posted or voided here.
            match self.settle_withdrawal(&row, Some(outcome)).await {
                Ok(settled) if settled.status != PaymentStatus::Pending => finished += 1,
                Ok(_) => {}
                Err(error) => {
                    tracing::warn!(withdrawal_id = %row.id, %error, "recovery could not finish a withdrawal")
                }
            }
        }
        Ok(finished)
    }
}

/// `top_up.*` or `withdrawal.*` for `row` finishing as `kind`.
fn payment_event(row: &PaymentRow, kind: EventType, failure_code: Option<&str>) -> store::NewEvent {
    let (resource, id_key) = match kind {
        EventType::TopUpSucceeded | EventType::TopUpFailed => ("top-ups", "top_up_id"),
        _ => ("withdrawals", "withdrawal_id"),
    };
    let mut data = serde_json::json!({
        "customer_id": row.customer_id,
        "wallet_id": row.wallet_id,
        "amount": row.amount,
        "currency": row.currency,
        "failure_code": failure_code,
    });
    data[id_key] = serde_json::Value::from(row.id.to_string());
    events::event(kind, Some(row.customer_id), &format!("{resource}/{}", row.id), data)
}
