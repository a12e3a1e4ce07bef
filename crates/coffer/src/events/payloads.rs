//! The `data` of every event, one type per payload schema of `docs/asyncapi.yaml` (and
//! named like it): producers build one and hand it to [`super::event`] or the transfer
//! drafts, consumers read one with [`EventData::parse`].
//!
//! The JSON of each type is the wire format that stored outbox rows, NATS subscribers and
//! webhooks already have: fields in this order, every field always present (an absent
//! value is `null`, never a missing key). A test below pins the bytes, and
//! `tests/events.rs` checks each type's schema (its [`ToSchema`]) against the document.
//!
//! Text borrows where it can (`Cow`), so producers serialise without copying; what a
//! consumer parses owns its text (`'static`).

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;
use utoipa::ToSchema;
use utoipa::openapi::{RefOr, Schema};
use uuid::Uuid;

use super::EventType;
use crate::wallets::WalletKind;

/// Which way money moved for a wallet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    In,
    Out,
}

/// What a wallet's transfer event is part of: a wallet-to-wallet transfer, a card top-up,
/// a withdrawal, an admin's reversal or a payment to a merchant. Written in the transfer
/// note as its [`store::NoteKind`] (which also names ledger legs no event tells of: fees,
/// credit lines, conversions).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TransferOperation {
    Transfer,
    TopUp,
    Withdrawal,
    Reversal,
    Payment,
}

impl TransferOperation {
    /// The transfer note's kind for it.
    pub const fn note_kind(self) -> store::NoteKind {
        match self {
            Self::Transfer => store::NoteKind::Transfer,
            Self::TopUp => store::NoteKind::TopUp,
            Self::Withdrawal => store::NoteKind::Withdrawal,
            Self::Reversal => store::NoteKind::Reversal,
            Self::Payment => store::NoteKind::Payment,
        }
    }

    /// Its name, as serialised (the note kind's stored name).
    pub const fn as_str(self) -> &'static str {
        self.note_kind().as_str()
    }
}

/// Where an expense came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ExpenseSource {
    Manual,
    Import,
    Wallet,
    BankSync,
}

impl ExpenseSource {
    /// The source stored in an expense row. The store allows only these four (a CHECK
    /// constraint); anything else reads as `manual`.
    pub fn of(stored: &str) -> Self {
        match stored {
            "import" => Self::Import,
            "wallet" => Self::Wallet,
            "bank_sync" => Self::BankSync,
            _ => Self::Manual,
        }
    }
}

/// Why a scheduled payment's occurrence failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ScheduledPaymentFailure {
    InsufficientFunds,
    CurrencyMismatch,
    SameWallet,
    RecipientOrWalletNotFound,
}

impl ScheduledPaymentFailure {
    /// As written in the run's `error` and the event.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::InsufficientFunds => "insufficient_funds",
            Self::CurrencyMismatch => "currency_mismatch",
            Self::SameWallet => "same_wallet",
            Self::RecipientOrWalletNotFound => "recipient_or_wallet_not_found",
        }
    }
}

/// `customer.registered`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CustomerRegisteredData<'a> {
    pub customer_id: Uuid,
    #[schema(value_type = String)]
    pub name: Cow<'a, str>,
}

/// `customer.logged_in`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CustomerLoggedInData {
    pub customer_id: Uuid,
}

/// `wallet.created`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct WalletCreatedData<'a> {
    pub customer_id: Uuid,
    pub wallet_id: Uuid,
    /// ISO 4217 code.
    #[schema(value_type = String)]
    pub currency: Cow<'a, str>,
    #[serde(rename = "type")]
    #[schema(inline)]
    pub wallet_type: WalletKind,
    #[schema(value_type = Option<String>, required = true)]
    pub name: Option<Cow<'a, str>>,
    /// Minor units.
    pub credit_limit: u64,
}

/// `transfer.posted`, `transfer.pending` and `transfer.voided`: one wallet's side of a
/// ledger transfer, for that wallet's owner.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TransferData<'a> {
    /// The owner of `wallet_id` (who receives this event).
    pub customer_id: Uuid,
    pub wallet_id: Uuid,
    pub transfer_id: Uuid,
    #[schema(inline)]
    pub operation: TransferOperation,
    #[schema(inline)]
    pub direction: Direction,
    /// Minor units.
    pub amount: u64,
    #[schema(value_type = String)]
    pub currency: Cow<'a, str>,
    #[schema(required = true)]
    pub counterparty_wallet_id: Option<Uuid>,
    #[schema(value_type = Option<String>, required = true)]
    pub description: Option<Cow<'a, str>>,
}

/// A wallet's balance in minor units (see `wallets::Balance`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BalanceData {
    pub posted: i64,
    pub pending: i64,
    pub available: i64,
}

impl From<crate::wallets::Balance> for BalanceData {
    fn from(balance: crate::wallets::Balance) -> Self {
        Self { posted: balance.posted, pending: balance.pending, available: balance.available }
    }
}

/// `balance.updated`: the balance as a transfer left it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct BalanceUpdatedData<'a> {
    pub customer_id: Uuid,
    pub wallet_id: Uuid,
    /// The transfer that changed it.
    pub transfer_id: Uuid,
    #[schema(value_type = String)]
    pub currency: Cow<'a, str>,
    #[schema(inline)]
    pub balance: BalanceData,
    /// The available balance as it stood just before the transfer.
    pub previous_available: i64,
}

/// `top_up.succeeded` and `top_up.failed`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TopUpData<'a> {
    pub customer_id: Uuid,
    pub wallet_id: Uuid,
    pub amount: u64,
    #[schema(value_type = String)]
    pub currency: Cow<'a, str>,
    /// The decline code of a failed top-up.
    #[schema(value_type = Option<String>, required = true)]
    pub failure_code: Option<Cow<'a, str>>,
    pub top_up_id: Uuid,
}

/// `withdrawal.succeeded` and `withdrawal.failed`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct WithdrawalData<'a> {
    pub customer_id: Uuid,
    pub wallet_id: Uuid,
    pub amount: u64,
    #[schema(value_type = String)]
    pub currency: Cow<'a, str>,
    #[schema(value_type = Option<String>, required = true)]
    pub failure_code: Option<Cow<'a, str>>,
    pub withdrawal_id: Uuid,
}

/// `expense.added`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ExpenseAddedData<'a> {
    pub customer_id: Uuid,
    /// The wallet it was paid from, when known.
    #[schema(required = true)]
    pub wallet_id: Option<Uuid>,
    pub expense_id: Uuid,
    /// Minor units.
    pub amount: i64,
    #[schema(value_type = String)]
    pub currency: Cow<'a, str>,
    #[schema(value_type = Option<String>, required = true)]
    pub merchant: Option<Cow<'a, str>>,
    #[schema(inline)]
    pub source: ExpenseSource,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub occurred_at: OffsetDateTime,
}

/// `expense.categorized`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ExpenseCategorizedData<'a> {
    pub customer_id: Uuid,
    #[schema(required = true)]
    pub wallet_id: Option<Uuid>,
    pub expense_id: Uuid,
    pub category_id: Uuid,
    /// The category's name.
    #[schema(value_type = Option<String>, required = true)]
    pub category: Option<Cow<'a, str>>,
    /// `rule:<id>`, `merchant`, `mcc`, `manual` or `none`.
    #[schema(value_type = String)]
    pub categorized_by: Cow<'a, str>,
    /// 0 to 1.
    pub confidence: f64,
}

/// `expense.updated`: the expense's facts and category as the edit left them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ExpenseUpdatedData<'a> {
    pub customer_id: Uuid,
    #[schema(required = true)]
    pub wallet_id: Option<Uuid>,
    pub expense_id: Uuid,
    /// Minor units.
    pub amount: i64,
    #[schema(value_type = String)]
    pub currency: Cow<'a, str>,
    #[schema(value_type = Option<String>, required = true)]
    pub merchant: Option<Cow<'a, str>>,
    #[schema(inline)]
    pub source: ExpenseSource,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub occurred_at: OffsetDateTime,
    pub category_id: Uuid,
    /// The category's name.
    #[schema(value_type = Option<String>, required = true)]
    pub category: Option<Cow<'a, str>>,
}

/// `expense.deleted`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ExpenseDeletedData {
    pub customer_id: Uuid,
    #[schema(required = true)]
    pub wallet_id: Option<Uuid>,
    pub expense_id: Uuid,
}

/// `category.deleted`: a category and its children; their expenses moved to `moved_to`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CategoryDeletedData {
    pub customer_id: Uuid,
    /// Always `null`: categories belong to no wallet.
    #[schema(schema_with = null, required = true)]
    pub wallet_id: (),
    pub category_id: Uuid,
    /// The category and its children.
    pub deleted_category_ids: Vec<Uuid>,
    /// Uncategorised, where their expenses went.
    pub moved_to: Uuid,
}

/// `budget.warning` and `budget.exceeded`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct BudgetData<'a> {
    pub customer_id: Uuid,
    /// The wallet of the expense that crossed the line.
    #[schema(required = true)]
    pub wallet_id: Option<Uuid>,
    pub budget_id: Uuid,
    pub category_id: Uuid,
    #[schema(value_type = Option<String>, required = true)]
    pub category: Option<Cow<'a, str>>,
    #[schema(value_type = String)]
    pub currency: Cow<'a, str>,
    pub year: i32,
    pub month: u8,
    /// The month's amount plus what rolled over.
    pub available: i64,
    /// Spent this month with the expense.
    pub spent: i64,
    pub percent_used: i64,
    pub expense_id: Uuid,
}

/// `scheduled_payment.failed`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ScheduledPaymentFailedData<'a> {
    pub customer_id: Uuid,
    /// The paying wallet.
    pub wallet_id: Uuid,
    pub scheduled_payment_id: Uuid,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub occurrence_at: OffsetDateTime,
    pub amount: i64,
    #[schema(value_type = String)]
    pub currency: Cow<'a, str>,
    #[schema(inline, required = true)]
    pub failure_code: Option<ScheduledPaymentFailure>,
    pub attempts: i64,
}

/// `verify.findings`: a run of the books' check (`coffer verify`, `POST /v1/admin/verify`
/// or the workers' schedule) found something. The run's report has the findings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct VerifyFindingsData {
    pub run_id: Uuid,
    /// Findings in all.
    pub findings: u64,
    /// The checks that found something, by name.
    pub checks: Vec<String>,
}

/// `reconciliation.unmatched`: a settlement file was reconciled and some of what it or the
/// ledger holds is still unmatched after the configured number of days
/// (`COFFER_RECONCILIATION_OVERDUE_DAYS`): money the processor or bank says moved that the
/// ledger lacks, or the other way round. The reconciliation's report has the details.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ReconciliationUnmatchedData {
    pub reconciliation_id: Uuid,
    /// `card_settlement` or `payouts`.
    pub account: String,
    pub currency: String,
    /// Lines of the file without a transfer, older than the limit.
    pub overdue_lines: u64,
    /// Transfers without a line, older than the limit.
    pub overdue_transfers: u64,
    /// The day (`YYYY-MM-DD`) of the oldest of them.
    pub oldest: String,
}

/// `monitor.triggered`: a wallet operation crossed a balance monitor's condition — the
/// available balance fell below or rose above the threshold (once per crossing: not again
/// until it has gone back), or one debit was larger than it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MonitorTriggeredData<'a> {
    /// Who set the monitor and is told; `null` for an operator's monitor.
    #[schema(required = true)]
    pub customer_id: Option<Uuid>,
    pub monitor_id: Uuid,
    pub wallet_id: Uuid,
    /// The transfer whose operation crossed it.
    pub transfer_id: Uuid,
    #[schema(inline)]
    pub condition: crate::wallets::monitors::Condition,
    /// The monitor's amount, minor units.
    pub threshold: i64,
    /// The available balance after the operation (`available_*`) or the debit
    /// (`debit_above`), minor units.
    pub value: i64,
    #[schema(value_type = String)]
    pub currency: Cow<'a, str>,
}

/// `fx.converted`: money was converted between two of the customer's wallets at a quote's
/// rate, in one linked chain (the sale into the house's account in the sold currency, the
/// fee, the purchase out of its account in the bought currency). Amounts in minor units of
/// their currency.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct FxConvertedData<'a> {
    pub customer_id: Uuid,
    pub quote_id: Uuid,
    pub sell_wallet_id: Uuid,
    #[schema(value_type = String)]
    pub sell_currency: Cow<'a, str>,
    pub sell_amount: u64,
    /// Taken from the sell wallet besides `sell_amount`, in its currency.
    pub fee: u64,
    pub buy_wallet_id: Uuid,
    #[schema(value_type = String)]
    pub buy_currency: Cow<'a, str>,
    pub buy_amount: u64,
    /// Units of the bought currency per unit of the sold one (major units), as a decimal.
    #[schema(value_type = String)]
    pub rate: Cow<'a, str>,
}

/// `credit.score_changed`: a report pulled from the credit bureau (with the customer's
/// consent) scored them differently from the one before.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CreditScoreChangedData {
    pub customer_id: Uuid,
    /// The new report (`GET /v1/credit/report`).
    pub report_id: Uuid,
    /// `null` when the bureau could not score the customer.
    #[schema(required = true)]
    pub previous_score: Option<u16>,
    #[schema(required = true)]
    pub score: Option<u16>,
    #[schema(inline)]
    pub band: crate::credit::bureau::Band,
}

/// The schema of a field that is always `null`.
fn null() -> utoipa::openapi::schema::Object {
    utoipa::openapi::schema::Object::with_type(utoipa::openapi::schema::Type::Null)
}

/// The typed `data` of an event, as a consumer reads it.
#[derive(Clone, Debug, PartialEq)]
pub enum EventData {
    CustomerRegistered(CustomerRegisteredData<'static>),
    CustomerLoggedIn(CustomerLoggedInData),
    WalletCreated(WalletCreatedData<'static>),
    TransferPosted(TransferData<'static>),
    TransferPending(TransferData<'static>),
    TransferVoided(TransferData<'static>),
    TopUpSucceeded(TopUpData<'static>),
    TopUpFailed(TopUpData<'static>),
    WithdrawalSucceeded(WithdrawalData<'static>),
    WithdrawalFailed(WithdrawalData<'static>),
    BalanceUpdated(BalanceUpdatedData<'static>),
    ExpenseAdded(ExpenseAddedData<'static>),
    ExpenseCategorized(ExpenseCategorizedData<'static>),
    ExpenseUpdated(ExpenseUpdatedData<'static>),
    ExpenseDeleted(ExpenseDeletedData),
    CategoryDeleted(CategoryDeletedData),
    BudgetWarning(BudgetData<'static>),
    BudgetExceeded(BudgetData<'static>),
    ScheduledPaymentFailed(ScheduledPaymentFailedData<'static>),
    VerifyFindings(VerifyFindingsData),
    MonitorTriggered(MonitorTriggeredData<'static>),
    ReconciliationUnmatched(ReconciliationUnmatchedData),
    FxConverted(FxConvertedData<'static>),
    CreditScoreChanged(CreditScoreChangedData),
}

impl EventData {
    /// The `data` of an event of `kind`; an error when it does not have that type's shape
    /// (unknown fields are ignored, so a newer producer's additions are harmless).
    pub fn parse(kind: EventType, data: Value) -> serde_json::Result<Self> {
        use serde_json::from_value as read;
        Ok(match kind {
            EventType::CustomerRegistered => Self::CustomerRegistered(read(data)?),
            EventType::CustomerLoggedIn => Self::CustomerLoggedIn(read(data)?),
            EventType::WalletCreated => Self::WalletCreated(read(data)?),
            EventType::TransferPosted => Self::TransferPosted(read(data)?),
            EventType::TransferPending => Self::TransferPending(read(data)?),
            EventType::TransferVoided => Self::TransferVoided(read(data)?),
            EventType::TopUpSucceeded => Self::TopUpSucceeded(read(data)?),
            EventType::TopUpFailed => Self::TopUpFailed(read(data)?),
            EventType::WithdrawalSucceeded => Self::WithdrawalSucceeded(read(data)?),
            EventType::WithdrawalFailed => Self::WithdrawalFailed(read(data)?),
            EventType::BalanceUpdated => Self::BalanceUpdated(read(data)?),
            EventType::ExpenseAdded => Self::ExpenseAdded(read(data)?),
            EventType::ExpenseCategorized => Self::ExpenseCategorized(read(data)?),
            EventType::ExpenseUpdated => Self::ExpenseUpdated(read(data)?),
            EventType::ExpenseDeleted => Self::ExpenseDeleted(read(data)?),
            EventType::CategoryDeleted => Self::CategoryDeleted(read(data)?),
            EventType::BudgetWarning => Self::BudgetWarning(read(data)?),
            EventType::BudgetExceeded => Self::BudgetExceeded(read(data)?),
            EventType::ScheduledPaymentFailed => Self::ScheduledPaymentFailed(read(data)?),
            EventType::VerifyFindings => Self::VerifyFindings(read(data)?),
            EventType::MonitorTriggered => Self::MonitorTriggered(read(data)?),
            EventType::ReconciliationUnmatched => Self::ReconciliationUnmatched(read(data)?),
            EventType::FxConverted => Self::FxConverted(read(data)?),
            EventType::CreditScoreChanged => Self::CreditScoreChanged(read(data)?),
        })
    }

    /// Whether this operators' event (one naming no customer) is told to every admin:
    /// the books' check's findings and overdue reconciliation gaps. An operator's balance
    /// monitor goes to operators' webhooks and the broker only.
    pub fn tells_operators(&self) -> bool {
        matches!(self, Self::VerifyFindings(_) | Self::ReconciliationUnmatched(_))
    }

    /// The customer the event belongs to; `None` for the operators' events.
    pub fn customer_id(&self) -> Option<Uuid> {
        Some(match self {
            Self::CustomerRegistered(data) => data.customer_id,
            Self::CustomerLoggedIn(data) => data.customer_id,
            Self::WalletCreated(data) => data.customer_id,
            Self::TransferPosted(data) | Self::TransferPending(data) | Self::TransferVoided(data) => {
                data.customer_id
            }
            Self::TopUpSucceeded(data) | Self::TopUpFailed(data) => data.customer_id,
            Self::WithdrawalSucceeded(data) | Self::WithdrawalFailed(data) => data.customer_id,
            Self::BalanceUpdated(data) => data.customer_id,
            Self::ExpenseAdded(data) => data.customer_id,
            Self::ExpenseCategorized(data) => data.customer_id,
            Self::ExpenseUpdated(data) => data.customer_id,
            Self::ExpenseDeleted(data) => data.customer_id,
            Self::CategoryDeleted(data) => data.customer_id,
            Self::BudgetWarning(data) | Self::BudgetExceeded(data) => data.customer_id,
            Self::ScheduledPaymentFailed(data) => data.customer_id,
            Self::FxConverted(data) => data.customer_id,
            Self::CreditScoreChanged(data) => data.customer_id,
            Self::VerifyFindings(_) | Self::ReconciliationUnmatched(_) => return None,
            Self::MonitorTriggered(data) => return data.customer_id,
        })
    }
}

impl EventType {
    /// The name and JSON schema of this type's `data` (the name is the schema's name in
    /// `docs/asyncapi.yaml`).
    pub fn data_schema(self) -> (String, RefOr<Schema>) {
        fn of<T: ToSchema>() -> (String, RefOr<Schema>) {
            (T::name().into_owned(), T::schema())
        }
        match self {
            Self::CustomerRegistered => of::<CustomerRegisteredData<'_>>(),
            Self::CustomerLoggedIn => of::<CustomerLoggedInData>(),
            Self::WalletCreated => of::<WalletCreatedData<'_>>(),
            Self::TransferPosted | Self::TransferPending | Self::TransferVoided => of::<TransferData<'_>>(),
            Self::TopUpSucceeded | Self::TopUpFailed => of::<TopUpData<'_>>(),
            Self::WithdrawalSucceeded | Self::WithdrawalFailed => of::<WithdrawalData<'_>>(),
            Self::BalanceUpdated => of::<BalanceUpdatedData<'_>>(),
            Self::ExpenseAdded => of::<ExpenseAddedData<'_>>(),
            Self::ExpenseCategorized => of::<ExpenseCategorizedData<'_>>(),
            Self::ExpenseUpdated => of::<ExpenseUpdatedData<'_>>(),
            Self::ExpenseDeleted => of::<ExpenseDeletedData>(),
            Self::CategoryDeleted => of::<CategoryDeletedData>(),
            Self::BudgetWarning | Self::BudgetExceeded => of::<BudgetData<'_>>(),
            Self::ScheduledPaymentFailed => of::<ScheduledPaymentFailedData<'_>>(),
            Self::VerifyFindings => of::<VerifyFindingsData>(),
            Self::MonitorTriggered => of::<MonitorTriggeredData<'_>>(),
            Self::ReconciliationUnmatched => of::<ReconciliationUnmatchedData>(),
            Self::FxConverted => of::<FxConvertedData<'_>>(),
            Self::CreditScoreChanged => of::<CreditScoreChangedData>(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Serialises `typed` and checks it against the JSON the producers wrote before the
    /// payloads had types (`json!` keeps key order): the same bytes, so stored rows,
    /// subscribers and webhooks see no change. Then reads it back as its event type.
    fn same_bytes<T: Serialize>(kind: EventType, typed: &T, before: &Value) {
        let text = serde_json::to_string(typed).unwrap();
        assert_eq!(text, before.to_string(), "{}", kind.name());
        EventData::parse(kind, serde_json::from_str(&text).unwrap())
            .unwrap_or_else(|error| panic!("{} reads back: {error}", kind.name()));
    }

    #[test]
    fn payloads_serialise_as_before_they_had_types() {
        let [customer, wallet, other, transfer, item, category] = [(); 6].map(|()| Uuid::now_v7());
        let nanos: u64 = 1_767_225_600_123_456_789;
        let at = OffsetDateTime::from_unix_timestamp_nanos(i128::from(nanos)).unwrap();
        let rfc3339 = crate::rfc3339(nanos);

        same_bytes(
            EventType::CustomerRegistered,
            &CustomerRegisteredData { customer_id: customer, name: "Ada \"L\"".into() },
            &json!({"customer_id": customer, "name": "Ada \"L\""}),
        );
        same_bytes(
            EventType::CustomerLoggedIn,
            &CustomerLoggedInData { customer_id: customer },
            &json!({"customer_id": customer}),
        );
        for (name, credit_limit) in [(None, 0), (Some("Card"), 50_000)] {
            same_bytes(
                EventType::WalletCreated,
                &WalletCreatedData {
                    customer_id: customer,
                    wallet_id: wallet,
                    currency: "USD".into(),
                    wallet_type: store::WalletType::CreditCard.into(),
                    name: name.map(Into::into),
                    credit_limit,
                },
                &json!({
                    "customer_id": customer,
                    "wallet_id": wallet,
                    "currency": "USD",
                    "type": store::WalletType::CreditCard.as_str(),
                    "name": name,
                    "credit_limit": credit_limit,
                }),
            );
        }
        for (direction, counterparty, description) in
            [(Direction::Out, Some(other), Some("rent")), (Direction::In, None, None)]
        {
            same_bytes(
                EventType::TransferPosted,
                &TransferData {
                    customer_id: customer,
                    wallet_id: wallet,
                    transfer_id: transfer,
                    operation: TransferOperation::Transfer,
                    direction,
                    amount: u64::MAX,
                    currency: "EUR".into(),
                    counterparty_wallet_id: counterparty,
                    description: description.map(Into::into),
                },
                &json!({
                    "customer_id": customer,
                    "wallet_id": wallet,
                    "transfer_id": transfer,
                    "operation": "transfer",
                    "direction": if direction == Direction::In { "in" } else { "out" },
                    "amount": u64::MAX,
                    "currency": "EUR",
                    "counterparty_wallet_id": counterparty,
                    "description": description,
                }),
            );
        }
        same_bytes(
            EventType::BalanceUpdated,
            &BalanceUpdatedData {
                customer_id: customer,
                wallet_id: wallet,
                transfer_id: transfer,
                currency: "USD".into(),
                balance: BalanceData { posted: -5, pending: 7, available: i64::MIN },
                previous_available: 12,
            },
            &json!({
                "customer_id": customer,
                "wallet_id": wallet,
                "transfer_id": transfer,
                "currency": "USD",
                "balance": {"posted": -5, "pending": 7, "available": i64::MIN},
                "previous_available": 12,
            }),
        );
        for failure_code in [None, Some("card_declined")] {
            // The id came last: it was added to the object after the rest.
            let mut before = json!({
                "customer_id": customer,
                "wallet_id": wallet,
                "amount": 100,
                "currency": "USD",
                "failure_code": failure_code,
            });
            before["top_up_id"] = Value::from(item.to_string());
            same_bytes(
                EventType::TopUpFailed,
                &TopUpData {
                    customer_id: customer,
                    wallet_id: wallet,
                    amount: 100,
                    currency: "USD".into(),
                    failure_code: failure_code.map(Into::into),
                    top_up_id: item,
                },
                &before,
            );
            let mut before = json!({
                "customer_id": customer,
                "wallet_id": wallet,
                "amount": 100,
                "currency": "USD",
                "failure_code": failure_code,
            });
            before["withdrawal_id"] = Value::from(item.to_string());
            same_bytes(
                EventType::WithdrawalSucceeded,
                &WithdrawalData {
                    customer_id: customer,
                    wallet_id: wallet,
                    amount: 100,
                    currency: "USD".into(),
                    failure_code: failure_code.map(Into::into),
                    withdrawal_id: item,
                },
                &before,
            );
        }
        for (wallet_id, merchant, source) in
            [(Some(wallet), Some("STARBUCKS"), "bank_sync"), (None, None, "manual")]
        {
            same_bytes(
                EventType::ExpenseAdded,
                &ExpenseAddedData {
                    customer_id: customer,
                    wallet_id,
                    expense_id: item,
                    amount: 550,
                    currency: "USD".into(),
                    merchant: merchant.map(Into::into),
                    source: ExpenseSource::of(source),
                    occurred_at: at,
                },
                &json!({
                    "customer_id": customer,
                    "wallet_id": wallet_id,
                    "expense_id": item,
                    "amount": 550,
                    "currency": "USD",
                    "merchant": merchant,
                    "source": source,
                    "occurred_at": rfc3339,
                }),
            );
            same_bytes(
                EventType::ExpenseUpdated,
                &ExpenseUpdatedData {
                    customer_id: customer,
                    wallet_id,
                    expense_id: item,
                    amount: 550,
                    currency: "USD".into(),
                    merchant: merchant.map(Into::into),
                    source: ExpenseSource::of(source),
                    occurred_at: at,
                    category_id: category,
                    category: merchant.map(|_| "Coffee".into()),
                },
                &json!({
                    "customer_id": customer,
                    "wallet_id": wallet_id,
                    "expense_id": item,
                    "amount": 550,
                    "currency": "USD",
                    "merchant": merchant,
                    "source": source,
                    "occurred_at": rfc3339,
                    "category_id": category,
                    "category": merchant.map(|_| "Coffee"),
                }),
            );
            same_bytes(
                EventType::ExpenseDeleted,
                &ExpenseDeletedData { customer_id: customer, wallet_id, expense_id: item },
                &json!({"customer_id": customer, "wallet_id": wallet_id, "expense_id": item}),
            );
        }
        for confidence in [0.85, 1.0, 0.0] {
            same_bytes(
                EventType::ExpenseCategorized,
                &ExpenseCategorizedData {
                    customer_id: customer,
                    wallet_id: None,
                    expense_id: item,
                    category_id: category,
                    category: Some("Coffee".into()),
                    categorized_by: "rule:1".into(),
                    confidence,
                },
                &json!({
                    "customer_id": customer,
                    "wallet_id": null,
                    "expense_id": item,
                    "category_id": category,
                    "category": "Coffee",
                    "categorized_by": "rule:1",
                    "confidence": confidence,
                }),
            );
        }
        same_bytes(
            EventType::CategoryDeleted,
            &CategoryDeletedData {
                customer_id: customer,
                wallet_id: (),
                category_id: category,
                deleted_category_ids: vec![category, other],
                moved_to: item,
            },
            &json!({
                "customer_id": customer,
                "wallet_id": null,
                "category_id": category,
                "deleted_category_ids": [category, other],
                "moved_to": item,
            }),
        );
        same_bytes(
            EventType::BudgetExceeded,
            &BudgetData {
                customer_id: customer,
                wallet_id: Some(wallet),
                budget_id: other,
                category_id: category,
                category: None,
                currency: "USD".into(),
                year: 2026,
                month: 3,
                available: 500,
                spent: 550,
                percent_used: 110,
                expense_id: item,
            },
            &json!({
                "customer_id": customer,
                "wallet_id": wallet,
                "budget_id": other,
                "category_id": category,
                "category": null,
                "currency": "USD",
                "year": 2026,
                "month": 3,
                "available": 500,
                "spent": 550,
                "percent_used": 110,
                "expense_id": item,
            }),
        );
        for failure in [
            ScheduledPaymentFailure::InsufficientFunds,
            ScheduledPaymentFailure::CurrencyMismatch,
            ScheduledPaymentFailure::SameWallet,
            ScheduledPaymentFailure::RecipientOrWalletNotFound,
        ] {
            same_bytes(
                EventType::ScheduledPaymentFailed,
                &ScheduledPaymentFailedData {
                    customer_id: customer,
                    wallet_id: wallet,
                    scheduled_payment_id: other,
                    occurrence_at: OffsetDateTime::UNIX_EPOCH,
                    amount: 1_000_000,
                    currency: "USD".into(),
                    failure_code: Some(failure),
                    attempts: 3,
                },
                &json!({
                    "customer_id": customer,
                    "wallet_id": wallet,
                    "scheduled_payment_id": other,
                    "occurrence_at": crate::rfc3339(0),
                    "amount": 1_000_000,
                    "currency": "USD",
                    "failure_code": Some(failure.as_str().to_owned()),
                    "attempts": 3,
                }),
            );
        }
    }
}
