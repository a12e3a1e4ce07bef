//! The payment flows: top-up (charge, then credit the wallet), withdrawal (hold, pay out,
//! then post or void) and recovery of the ones left pending. The `top_up.*` /
//! `withdrawal.*` events carry `events::TopUpData` / `events::WithdrawalData`, the
//! transfers' events come from `events::transfer_drafts`.

use std::sync::Arc;

use ledger::{CreateTransferResult, Transfer, TransferFlags};
use store::{
    Command, EventDraft, IdempotencyKey, KeyedResponse, NoteKind, Outcome, PaymentChange, PaymentKind,
    PaymentRow, PaymentStatus, PaymentsDraft, ResponseDraft, Store, StoreError, StoredResponse, TransferNote,
};
use uuid::Uuid;

use super::gateway::{
    ChargeRequest, PaymentGateway, PayoutProvider, PayoutRequest, ProviderError, ProviderOutcome,
};
use crate::{
    commit::CommitPipeline,
    events::{self, Direction, EventType, Leg, TransferFacts, TransferOperation},
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

/// A top-up or withdrawal as asked for: whose, which wallet, its id (derived from the
/// request's idempotency key), the amount, and the provider's token for the card or the
/// bank account.
#[derive(Clone, Debug)]
pub struct PaymentRequest {
    pub customer_id: Uuid,
    pub wallet_id: Uuid,
    pub id: Uuid,
    pub amount: u64,
    pub token: String,
}

/// How a keyed payment request's answer looks, given the payment as a batch leaves it or
/// the refusal: `None` for a failure of ours (not remembered).
pub type RenderPaymentAnswer =
    Arc<dyn Fn(Result<&PaymentRow, WalletError>) -> Option<StoredResponse> + Send + Sync>;

/// A keyed top-up or withdrawal: its answer is remembered by the batch that decides it.
#[derive(Clone)]
pub struct PaymentAnswer {
    pub key: IdempotencyKey,
    pub render: RenderPaymentAnswer,
}

impl std::fmt::Debug for PaymentAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PaymentAnswer").field("key", &self.key).finish_non_exhaustive()
    }
}

/// What a batch makes of the request, decided from the ledger's results.
#[derive(Debug)]
enum Verdict {
    /// Answer with the payment as the batch leaves it.
    Answer,
    /// No answer yet: the request goes on (a withdrawal's hold is placed; the payout is next).
    Continue,
    /// The request is refused (or failed, for an error of ours).
    Refuse(WalletError),
}

/// A batch's decision about one payment: where it leaves it, whether it finished it (out of
/// `pending`, with its event), and what the request gets.
#[derive(Debug)]
struct Decision {
    row: PaymentRow,
    finished: bool,
    verdict: Verdict,
}

impl Decision {
    fn unchanged(row: &PaymentRow, verdict: Verdict) -> Self {
        Self { row: row.clone(), finished: false, verdict }
    }

    fn finished(row: &PaymentRow, status: PaymentStatus, failure_code: Option<&str>, at: u64) -> Self {
        let mut row = row.clone();
        row.status = status;
        row.failure_code = failure_code.map(str::to_owned);
        row.updated_at = at;
        let verdict = Verdict::Answer;
        Self { row, finished: true, verdict }
    }
}

/// Decides a batch's outcome from its per-event results and timestamps.
type Decide = Arc<dyn Fn(&[CreateTransferResult], &[u64]) -> Decision + Send + Sync>;

/// What one step of a payment left: the payment, the request's outcome, and the answer the
/// batch remembered (keyed requests).
#[derive(Debug)]
struct Settled {
    row: PaymentRow,
    verdict: Verdict,
    response: Option<StoredResponse>,
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

    /// The payment an earlier try of this request recorded, or a new pending one (`true`:
    /// not recorded yet).
    async fn find_or_draft(
        &self,
        kind: PaymentKind,
        customer_id: Uuid,
        wallet_id: Uuid,
        id: Uuid,
        amount: u64,
    ) -> Result<(PaymentRow, Currency, bool), PaymentError> {
        let wallet = self.wallets.owned_facts(customer_id, wallet_id).await?;
        let currency = Currency::parse(&wallet.currency).ok_or(WalletError::CurrencyNotSupported)?;
        if let Some(row) = self.store.payment(kind, id).await? {
            return Ok((row, currency, false));
        }
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
        Ok((row, currency, true))
    }

    /// Commits one step of payment `row` in one batch: `transfers` (with their notes and
    /// events), the payment recorded (`record`) and finished as `decide` says, and the
    /// answer of a keyed request.
    async fn commit(
        &self,
        kind: PaymentKind,
        row: &PaymentRow,
        (transfers, notes, events): (Vec<Transfer>, Vec<TransferNote>, Vec<EventDraft>),
        record: bool,
        decide: Decide,
        answer: Option<&PaymentAnswer>,
    ) -> Result<Settled, PaymentError> {
        if transfers.is_empty() && !record && answer.is_none() {
            let decision = decide(&[], &[]);
            if !decision.finished {
                return Ok(Settled { row: decision.row, verdict: decision.verdict, response: None });
            }
        }
        let recorded = record.then(|| row.clone());
        let changes = decide.clone();
        let payments = PaymentsDraft(Arc::new(move |results, timestamps| {
            let mut writes: Vec<PaymentChange> =
                recorded.iter().map(|row| PaymentChange::Record(kind, row.clone())).collect();
            let decision = changes(results, timestamps);
            if decision.finished {
                let row = decision.row;
                writes.push(PaymentChange::Finish {
                    kind,
                    id: row.id,
                    finish: store::Finish {
                        status: row.status,
                        failure_code: row.failure_code.clone(),
                        provider_id: row.provider_id.clone(),
                    },
                    at: row.updated_at,
                    event: payment_event(kind, &row),
                });
            }
            writes
        }));
        let response = answer.map(|answer| {
            let render = answer.render.clone();
            let decide = decide.clone();
            KeyedResponse {
                key: answer.key.clone(),
                created_at: store::now_ns(),
                draft: ResponseDraft::AfterBatch(Arc::new(move |results, timestamps| {
                    let decision = decide(results, timestamps);
                    match decision.verdict {
                        Verdict::Answer => render(Ok(&decision.row)),
                        Verdict::Continue => None,
                        Verdict::Refuse(error) => render(Err(error)),
                    }
                })),
            }
        });
        let count = transfers.len();
        let command = Command::CreateTransfersWithNotes {
            transfers,
            notes,
            events,
            response,
            payments: Some(payments),
        };
        let noted = match self.pipeline.submit(command).await.map_err(WalletError::from)? {
            Outcome::Noted(noted) if noted.results.len() == count => noted,
            other => return Err(WalletError::Ledger(format!("unexpected outcome {other:?}")).into()),
        };
        let decision = decide(&noted.results, &noted.timestamps);
        Ok(Settled { row: decision.row, verdict: decision.verdict, response: noted.response })
    }

    /// The events of `row`'s ledger transfer `transfer_id` (`kind`) for the wallet.
    async fn transfer_events(
        &self,
        row: &PaymentRow,
        transfer_id: u128,
        kind: EventType,
        operation: TransferOperation,
        direction: Direction,
    ) -> Result<Vec<EventDraft>, PaymentError> {
        let Some(wallet) = self.wallets.facts(row.wallet_id).await? else { return Ok(Vec::new()) };
        let currency = Currency::parse(&wallet.currency).ok_or(WalletError::CurrencyNotSupported)?;
        let facts =
            TransferFacts { transfer_id, kind, operation, amount: row.amount, currency, description: None };
        Ok(events::transfer_drafts(&facts, &[Leg { wallet: &wallet, direction, counterparty: None }]))
    }

    /// Charges the card (`request.token`) and credits the wallet. The answer is
    /// `succeeded`, `failed` (declined, with the gateway's code) or, when the gateway's
    /// answer is not known yet, `pending` (the recovery worker finishes it).
    pub async fn top_up(&self, request: PaymentRequest) -> Result<PaymentRow, PaymentError> {
        settled_outcome(self.top_up_keyed(request, None).await?)
    }

    /// [`Self::top_up`] for a keyed request: the answer, remembered with the step that
    /// decided it (the credit, the decline, or the payment left pending).
    #[tracing::instrument(name = "payments.top_up", skip_all)]
    pub async fn top_up_answered(
        &self,
        request: PaymentRequest,
        answer: PaymentAnswer,
    ) -> Result<StoredResponse, PaymentError> {
        remembered(self.top_up_keyed(request, Some(&answer)).await?)
    }

    async fn top_up_keyed(
        &self,
        request: PaymentRequest,
        answer: Option<&PaymentAnswer>,
    ) -> Result<Settled, PaymentError> {
        let PaymentRequest { customer_id, wallet_id, id, amount, token: payment_method } = request;
        let kind = PaymentKind::TopUp;
        let (row, currency, fresh) = self.find_or_draft(kind, customer_id, wallet_id, id, amount).await?;
        if row.status != PaymentStatus::Pending {
            return self.as_it_stands(kind, &row, answer).await;
        }
        // Recorded before the card is charged: a crash after the charge leaves a pending
        // top-up for the recovery worker, never a charge nobody knows of.
        if fresh {
            let unchanged: Decide = {
                let row = row.clone();
                Arc::new(move |_, _| Decision::unchanged(&row, Verdict::Continue))
            };
            self.commit(kind, &row, Default::default(), true, unchanged, None).await?;
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
        self.settle_top_up(&row, currency, outcome.ok(), answer).await
    }

    /// Answers with `row` as it stands (a retry found it finished, or its outcome is not
    /// known yet).
    async fn as_it_stands(
        &self,
        kind: PaymentKind,
        row: &PaymentRow,
        answer: Option<&PaymentAnswer>,
    ) -> Result<Settled, PaymentError> {
        let decide: Decide = {
            let row = row.clone();
            Arc::new(move |_, _| Decision::unchanged(&row, Verdict::Answer))
        };
        self.commit(kind, row, Default::default(), false, decide, answer).await
    }

    /// Applies a known gateway outcome to a pending top-up; `None` leaves it pending.
    async fn settle_top_up(
        &self,
        row: &PaymentRow,
        currency: Currency,
        outcome: Option<ProviderOutcome>,
        answer: Option<&PaymentAnswer>,
    ) -> Result<Settled, PaymentError> {
        let kind = PaymentKind::TopUp;
        let settled = match outcome {
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
                    vec![TransferNote { transfer_id: credit.id, kind: NoteKind::TopUp, description: None }];
                let fee_bps = self.wallets.fees().top_up_bps;
                self.wallets
                    .add_fee(&mut transfers, &mut notes, credit.credit_account_id, currency, fee_bps)
                    .await?;
                let drafts = self
                    .transfer_events(
                        row,
                        credit.id,
                        EventType::TransferPosted,
                        TransferOperation::TopUp,
                        Direction::In,
                    )
                    .await?;
                // Empty when recovery found the credit but not the provider's record.
                let provider_id = Some(provider_id).filter(|id| !id.is_empty());
                // The top-up succeeds with its credit, in the same transaction.
                let decide: Decide = {
                    let row = PaymentRow { provider_id, ..row.clone() };
                    Arc::new(move |results, timestamps| match chain_outcome(results) {
                        Ok(()) => {
                            let at = timestamps.first().copied().unwrap_or_default();
                            Decision::finished(&row, PaymentStatus::Succeeded, None, at)
                        }
                        Err(error) => Decision::unchanged(&row, Verdict::Refuse(error)),
                    })
                };
                let settled =
                    self.commit(kind, row, (transfers, notes, drafts), false, decide, answer).await?;
                tracing::info!(top_up_id = %row.id, amount = row.amount, "top-up succeeded");
                settled
            }
            Some(ProviderOutcome::Declined { code }) => {
                let now = store::now_ns();
                let decide: Decide = {
                    let row = row.clone();
                    Arc::new(move |_, _| Decision::finished(&row, PaymentStatus::Failed, Some(&code), now))
                };
                let settled = self.commit(kind, row, Default::default(), false, decide, answer).await?;
                tracing::info!(top_up_id = %row.id, decline = ?settled.row.failure_code, "top-up declined");
                settled
            }
            None => self.as_it_stands(kind, row, answer).await?,
        };
        Ok(settled)
    }

    /// Places a hold on the wallet, pays out to the bank account (`request.token`), then
    /// posts or voids the hold.
    pub async fn withdraw(&self, request: PaymentRequest) -> Result<PaymentRow, PaymentError> {
        settled_outcome(self.withdraw_keyed(request, None).await?)
    }

    /// [`Self::withdraw`] for a keyed request: the answer, remembered with the step that
    /// decided it (the refused hold, the post or void, or the payment left pending).
    #[tracing::instrument(name = "payments.withdraw", skip_all)]
    pub async fn withdraw_answered(
        &self,
        request: PaymentRequest,
        answer: PaymentAnswer,
    ) -> Result<StoredResponse, PaymentError> {
        remembered(self.withdraw_keyed(request, Some(&answer)).await?)
    }

    async fn withdraw_keyed(
        &self,
        request: PaymentRequest,
        answer: Option<&PaymentAnswer>,
    ) -> Result<Settled, PaymentError> {
        let PaymentRequest { customer_id, wallet_id, id, amount, token: destination } = request;
        let kind = PaymentKind::Withdrawal;
        let (row, currency, fresh) = self.find_or_draft(kind, customer_id, wallet_id, id, amount).await?;
        if row.status != PaymentStatus::Pending {
            return self.as_it_stands(kind, &row, answer).await;
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
            vec![TransferNote { transfer_id: hold.id, kind: NoteKind::Withdrawal, description: None }];
        let fee_bps = self.wallets.fees().withdrawal_bps;
        self.wallets.add_fee(&mut transfers, &mut notes, hold.debit_account_id, currency, fee_bps).await?;
        let drafts = self
            .transfer_events(
                &row,
                hold.id,
                EventType::TransferPending,
                TransferOperation::Withdrawal,
                Direction::Out,
            )
            .await?;
        // The withdrawal is recorded with its hold; without the funds it fails there.
        let now = store::now_ns();
        let decide: Decide = {
            let row = row.clone();
            Arc::new(move |results, _| match chain_outcome(results) {
                Ok(()) => Decision::unchanged(&row, Verdict::Continue),
                Err(WalletError::InsufficientFunds | WalletError::FailedBefore(_)) => Decision {
                    verdict: Verdict::Refuse(WalletError::InsufficientFunds),
                    ..Decision::finished(&row, PaymentStatus::Failed, Some("insufficient_funds"), now)
                },
                Err(other) => Decision::unchanged(&row, Verdict::Refuse(other)),
            })
        };
        let held = self.commit(kind, &row, (transfers, notes, drafts), fresh, decide, answer).await?;
        if !matches!(held.verdict, Verdict::Continue) {
            return Ok(held);
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
        self.settle_withdrawal(&row, outcome.ok(), answer).await
    }

    /// Posts (paid out) or voids (refused) the hold of a pending withdrawal.
    async fn settle_withdrawal(
        &self,
        row: &PaymentRow,
        outcome: Option<ProviderOutcome>,
        answer: Option<&PaymentAnswer>,
    ) -> Result<Settled, PaymentError> {
        let kind = PaymentKind::Withdrawal;
        let hold_id = derive_id(row.id, "withdrawal-hold", "");
        let (flag, status, failure, provider_id) = match outcome {
            Some(ProviderOutcome::Succeeded { provider_id }) => {
                (TransferFlags::POST_PENDING_TRANSFER, PaymentStatus::Succeeded, None, Some(provider_id))
            }
            Some(ProviderOutcome::Declined { code }) => {
                (TransferFlags::VOID_PENDING_TRANSFER, PaymentStatus::Failed, Some(code), None)
            }
            None => return self.as_it_stands(kind, row, answer).await,
        };
        let resolve = |pending_id: u128, purpose: &str| Transfer {
            id: derive_id(row.id, purpose, ""),
            pending_id,
            amount: if flag == TransferFlags::POST_PENDING_TRANSFER { ledger::AMOUNT_MAX } else { 0 },
            flags: flag,
            ..Default::default()
        };
        let mut transfers = vec![resolve(hold_id, "withdrawal-resolve")];
        let mut notes = vec![TransferNote {
            transfer_id: transfers[0].id,
            kind: NoteKind::Withdrawal,
            description: None,
        }];
        // The fee held with the withdrawal (if one was) is posted or voided with it.
        let fee_hold_id = derive_id(Uuid::from_u128(hold_id), "fee", "");
        if self.store.transfer(fee_hold_id).await?.is_some() {
            transfers[0].flags = flag.union(TransferFlags::LINKED);
            let fee = resolve(fee_hold_id, "withdrawal-fee-resolve");
            notes.push(TransferNote { transfer_id: fee.id, kind: NoteKind::Fee, description: None });
            transfers.push(fee);
        }
        let transfer_kind = if flag == TransferFlags::POST_PENDING_TRANSFER {
            EventType::TransferPosted
        } else {
            EventType::TransferVoided
        };
        let drafts = self
            .transfer_events(
                row,
                transfers[0].id,
                transfer_kind,
                TransferOperation::Withdrawal,
                Direction::Out,
            )
            .await?;
        let now = store::now_ns();
        let decide: Decide = {
            let row = PaymentRow { provider_id, ..row.clone() };
            Arc::new(move |results, timestamps| {
                let at = timestamps.first().copied().filter(|at| *at > 0).unwrap_or(now);
                match results.first() {
                    Some(CreateTransferResult::Ok | CreateTransferResult::Exists) => {
                        Decision::finished(&row, status, failure.as_deref(), at)
                    }
                    // The process stopped before the hold was placed: there is nothing to void.
                    Some(
                        CreateTransferResult::PendingTransferNotFound | CreateTransferResult::IdAlreadyFailed,
                    ) if status == PaymentStatus::Failed => {
                        Decision::finished(&row, status, failure.as_deref(), at)
                    }
                    other => Decision::unchanged(
                        &row,
                        Verdict::Refuse(WalletError::Ledger(format!("withdrawal resolution: {other:?}"))),
                    ),
                }
            })
        };
        let settled = self.commit(kind, row, (transfers, notes, drafts), false, decide, answer).await?;
        tracing::info!(withdrawal_id = %row.id, status = settled.row.status.as_str(), "withdrawal finished");
        Ok(settled)
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
            match self.settle_top_up(&row, currency, Some(outcome), None).await.and_then(settled_outcome) {
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
            match self.settle_withdrawal(&row, Some(outcome), None).await.and_then(settled_outcome) {
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

/// The payment, or why the request was refused.
fn settled_outcome(settled: Settled) -> Result<PaymentRow, PaymentError> {
    match settled.verdict {
        Verdict::Answer | Verdict::Continue => Ok(settled.row),
        Verdict::Refuse(error) => Err(error.into()),
    }
}

/// The answer the batch remembered; an error when it rendered none (a failure of ours).
fn remembered(settled: Settled) -> Result<StoredResponse, PaymentError> {
    match (settled.response, settled.verdict) {
        (Some(response), _) => Ok(response),
        (None, Verdict::Refuse(error)) => Err(error.into()),
        (None, _) => Err(WalletError::Ledger("the batch rendered no answer".into()).into()),
    }
}

/// `top_up.*` or `withdrawal.*` for `row` of `kind` finishing with its status.
fn payment_event(kind: PaymentKind, row: &PaymentRow) -> store::NewEvent {
    let succeeded = row.status == PaymentStatus::Succeeded;
    let customer = Some(row.customer_id);
    let (currency, failure_code) =
        (row.currency.as_str().into(), row.failure_code.as_deref().map(Into::into));
    match kind {
        PaymentKind::TopUp => {
            let event = if succeeded { EventType::TopUpSucceeded } else { EventType::TopUpFailed };
            let data = events::TopUpData {
                customer_id: row.customer_id,
                wallet_id: row.wallet_id,
                amount: row.amount,
                currency,
                failure_code,
                top_up_id: row.id,
            };
            events::event(event, customer, &format!("top-ups/{}", row.id), &data)
        }
        PaymentKind::Withdrawal => {
            let event = if succeeded { EventType::WithdrawalSucceeded } else { EventType::WithdrawalFailed };
            let data = events::WithdrawalData {
                customer_id: row.customer_id,
                wallet_id: row.wallet_id,
                amount: row.amount,
                currency,
                failure_code,
                withdrawal_id: row.id,
            };
            events::event(event, customer, &format!("withdrawals/{}", row.id), &data)
        }
    }
}
