//! Events: facts about committed changes, as CloudEvents 1.0 JSON envelopes.
//!
//! A service builds its events here and hands them to the store with the write they
//! describe (`store::NewEvent` for plain writes, `store::EventDraft` for ledger transfers),
//! so an event exists if and only if its change committed. The `relay` publishes the
//! outbox to the bus (`bus`, in process) or to NATS JetStream (`nats`), and to Kafka
//! (`kafka`) as well when it is configured; consumers
//! ([`Consumer`], implemented beside each of them, e.g. `crate::notifications`) apply each
//! event once, and the WebSocket stream fans them out.
//!
//! Every type is listed in [`EventType::ALL`] and described in `docs/asyncapi.yaml`. Each
//! type's `data` is a struct of [`payloads`] (re-exported here): producers build it and
//! [`event`] / [`transfer_drafts`] serialise it into the envelope, consumers read it back
//! with [`EventData::parse`]. Tests keep the types, the document and the bytes on the wire
//! in step.

pub mod bus;
pub mod feed;
pub mod kafka;
pub mod nats;
pub mod payloads;
pub mod relay;

use std::borrow::Cow;
use std::sync::Arc;

use futures::future::BoxFuture;
use serde::Serialize;
use store::{EventDraft, NewEvent, Payload};
use uuid::Uuid;

use crate::wallets::{Balance, Currency, WalletFacts};

pub use bus::Bus;
pub use payloads::*;

/// A consumer of relayed events: applies events in order, each at most once however often
/// it is handed one. Consumers implement it beside themselves (`crate::notifications`,
/// `crate::analytics`); the relay and the broker know only this trait.
pub trait Consumer: Send + Sync + 'static {
    /// Its durable consumer's name on the broker.
    const DURABLE: &'static str;
    fn apply_all(
        &self,
        events: &[bus::Delivered],
    ) -> impl std::future::Future<Output = anyhow::Result<()>> + Send;
}

/// A [`Consumer`] of any type, for lists of them (the in-process relay's); every
/// consumer is one.
pub trait AnyConsumer: Send + Sync + std::fmt::Debug + 'static {
    /// Its durable consumer's name on the broker.
    fn durable(&self) -> &'static str;
    fn apply_all<'a>(&'a self, events: &'a [bus::Delivered]) -> BoxFuture<'a, anyhow::Result<()>>;
}

impl<C: Consumer + std::fmt::Debug> AnyConsumer for C {
    fn durable(&self) -> &'static str {
        C::DURABLE
    }

    fn apply_all<'a>(&'a self, events: &'a [bus::Delivered]) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(Consumer::apply_all(self, events))
    }
}

pub use relay::{Relay, RelayOptions};

/// The CloudEvents `source` of every event Coffer emits.
pub const SOURCE: &str = "/coffer";

/// The version of every payload schema; bumped (per type) on an incompatible change.
pub const SCHEMA_VERSION: u32 = 1;

/// Every kind of event Coffer emits. The CloudEvents type is `coffer.` + the name, and
/// the NATS subject is the CloudEvents type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventType {
    CustomerRegistered,
    CustomerLoggedIn,
    WalletCreated,
    TransferPosted,
    TransferPending,
    TransferVoided,
    TopUpSucceeded,
    TopUpFailed,
    WithdrawalSucceeded,
    WithdrawalFailed,
    BalanceUpdated,
    ExpenseAdded,
    ExpenseCategorized,
    ExpenseUpdated,
    ExpenseDeleted,
    CategoryDeleted,
    BudgetWarning,
    BudgetExceeded,
    ScheduledPaymentFailed,
    /// A run of the books' check found something (an operators' event: no customer).
    VerifyFindings,
    /// A wallet crossed a balance monitor's condition (an operator's monitor: no customer).
    MonitorTriggered,
    /// A reconciliation left lines or transfers unmatched for too long (operators').
    ReconciliationUnmatched,
    /// Money was converted between two of a customer's wallets (`POST
    /// /v1/fx/quotes/{id}/execute`).
    FxConverted,
    /// A customer's credit score changed between two reports.
    CreditScoreChanged,
}

impl EventType {
    pub const ALL: [Self; 24] = [
        Self::CustomerRegistered,
        Self::CustomerLoggedIn,
        Self::WalletCreated,
        Self::TransferPosted,
        Self::TransferPending,
        Self::TransferVoided,
        Self::TopUpSucceeded,
        Self::TopUpFailed,
        Self::WithdrawalSucceeded,
        Self::WithdrawalFailed,
        Self::BalanceUpdated,
        Self::ExpenseAdded,
        Self::ExpenseCategorized,
        Self::ExpenseUpdated,
        Self::ExpenseDeleted,
        Self::CategoryDeleted,
        Self::BudgetWarning,
        Self::BudgetExceeded,
        Self::ScheduledPaymentFailed,
        Self::VerifyFindings,
        Self::MonitorTriggered,
        Self::ReconciliationUnmatched,
        Self::FxConverted,
        Self::CreditScoreChanged,
    ];

    /// The name without the `coffer.` prefix, e.g. `transfer.posted`.
    pub const fn name(self) -> &'static str {
        match self {
            Self::CustomerRegistered => "customer.registered",
            Self::CustomerLoggedIn => "customer.logged_in",
            Self::WalletCreated => "wallet.created",
            Self::TransferPosted => "transfer.posted",
            Self::TransferPending => "transfer.pending",
            Self::TransferVoided => "transfer.voided",
            Self::TopUpSucceeded => "top_up.succeeded",
            Self::TopUpFailed => "top_up.failed",
            Self::WithdrawalSucceeded => "withdrawal.succeeded",
            Self::WithdrawalFailed => "withdrawal.failed",
            Self::BalanceUpdated => "balance.updated",
            Self::ExpenseAdded => "expense.added",
            Self::ExpenseCategorized => "expense.categorized",
            Self::ExpenseUpdated => "expense.updated",
            Self::ExpenseDeleted => "expense.deleted",
            Self::CategoryDeleted => "category.deleted",
            Self::BudgetWarning => "budget.warning",
            Self::BudgetExceeded => "budget.exceeded",
            Self::ScheduledPaymentFailed => "scheduled_payment.failed",
            Self::VerifyFindings => "verify.findings",
            Self::MonitorTriggered => "monitor.triggered",
            Self::ReconciliationUnmatched => "reconciliation.unmatched",
            Self::FxConverted => "fx.converted",
            Self::CreditScoreChanged => "credit.score_changed",
        }
    }

    /// The CloudEvents type, e.g. `coffer.transfer.posted`.
    pub fn cloud_type(self) -> String {
        format!("coffer.{}", self.name())
    }

    /// The type named by a CloudEvents type or a bare name.
    pub fn parse(text: &str) -> Option<Self> {
        let name = text.strip_prefix("coffer.").unwrap_or(text);
        Self::ALL.into_iter().find(|kind| kind.name() == name)
    }
}

/// The CloudEvents JSON envelope of one event, in the order its keys are written.
#[derive(Serialize)]
struct Envelope<'a, T> {
    specversion: &'static str,
    id: Uuid,
    source: &'static str,
    #[serde(rename = "type", serialize_with = "cloud_type")]
    kind: EventType,
    subject: &'a str,
    time: &'a str,
    datacontenttype: &'static str,
    #[serde(serialize_with = "dataschema")]
    dataschema: EventType,
    data: &'a T,
}

fn cloud_type<S: serde::Serializer>(kind: &EventType, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(&format_args!("coffer.{}", kind.name()))
}

fn dataschema<S: serde::Serializer>(kind: &EventType, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(&format_args!("urn:coffer:events:{}:v{SCHEMA_VERSION}", kind.name()))
}

/// The CloudEvents JSON envelope of one event (`time`: RFC 3339, see [`crate::rfc3339`]).
fn envelope<T: Serialize>(id: Uuid, kind: EventType, subject: &str, time: &str, data: &T) -> String {
    let envelope = Envelope {
        specversion: "1.0",
        id,
        source: SOURCE,
        kind,
        subject,
        time,
        datacontenttype: "application/json",
        dataschema: kind,
        data,
    };
    // Payloads are plain structs of strings and numbers: serialising them cannot fail.
    serde_json::to_string(&envelope).expect("an event payload serialises")
}

/// An event written with a plain (non-ledger) change; `data` is its payload type from
/// [`payloads`].
pub fn event<T: Serialize>(kind: EventType, customer_id: Option<Uuid>, subject: &str, data: &T) -> NewEvent {
    let id = Uuid::now_v7();
    let now = store::now_ns();
    NewEvent {
        id,
        event_type: kind.cloud_type(),
        customer_id,
        payload: envelope(id, kind, subject, &crate::rfc3339(now), data),
        created_at: now,
    }
}

/// An event written with ledger transfer `transfer_id`, only if the batch creates it.
pub fn riding<T: Serialize>(
    transfer_id: u128,
    kind: EventType,
    customer_id: Option<Uuid>,
    subject: &str,
    data: &T,
) -> EventDraft {
    let event = event(kind, customer_id, subject, data);
    EventDraft {
        transfer_id,
        id: event.id,
        event_type: event.event_type,
        customer_id: event.customer_id,
        created_at: event.created_at,
        payload: Payload::Json(event.payload),
    }
}

/// One wallet's side of a ledger transfer: that wallet's owner gets the transfer event
/// and a `balance.updated` with the balance the transfer left.
#[derive(Clone, Copy, Debug)]
pub struct Leg<'a> {
    pub wallet: &'a WalletFacts,
    pub direction: Direction,
    /// The wallet on the other side, when there is one.
    pub counterparty: Option<Uuid>,
}

/// What a wallet-level transfer is, for its events.
#[derive(Clone, Debug)]
pub struct TransferFacts<'a> {
    /// The ledger transfer the events ride with (written only if it is created).
    pub transfer_id: u128,
    /// `transfer.posted`, `transfer.pending` or `transfer.voided`.
    pub kind: EventType,
    /// What the transfer is part of.
    pub operation: TransferOperation,
    pub amount: u64,
    pub currency: Currency,
    pub description: Option<&'a str>,
}

/// The events of a wallet-level transfer: per leg, the transfer event and the balance.
pub fn transfer_drafts(facts: &TransferFacts<'_>, legs: &[Leg<'_>]) -> Vec<EventDraft> {
    let now = store::now_ns();
    let time = crate::rfc3339(now);
    let transfer_id = Uuid::from_u128(facts.transfer_id);
    let subject = format!("transfers/{transfer_id}");
    let mut drafts = Vec::with_capacity(legs.len() * 2);
    for leg in legs {
        let wallet = leg.wallet;
        let id = Uuid::now_v7();
        let data = TransferData {
            customer_id: wallet.customer_id,
            wallet_id: wallet.id,
            transfer_id,
            operation: facts.operation,
            direction: leg.direction,
            amount: facts.amount,
            currency: Cow::Borrowed(facts.currency.code()),
            counterparty_wallet_id: leg.counterparty,
            description: facts.description.map(Cow::Borrowed),
        };
        drafts.push(EventDraft {
            transfer_id: facts.transfer_id,
            id,
            event_type: facts.kind.cloud_type(),
            customer_id: Some(wallet.customer_id),
            created_at: now,
            payload: Payload::Json(envelope(id, facts.kind, &subject, &time, &data)),
        });
        drafts.push(balance_draft(facts.transfer_id, wallet, now, time.clone()));
    }
    drafts
}

/// `balance.updated` for `wallet`, rendered from its ledger account as the batch leaves it.
/// The render runs in the ledger writer for every transfer: what does not depend on the
/// account is prepared here, and it only fills in the payload and serialises it.
pub fn balance_draft(transfer_id: u128, wallet: &WalletFacts, now: u64, time: String) -> EventDraft {
    let id = Uuid::now_v7();
    let (customer_id, wallet_id, credit_limit) = (wallet.customer_id, wallet.id, wallet.credit_limit);
    let currency = wallet.currency.clone();
    let subject = format!("wallets/{wallet_id}");
    let render = Arc::new(move |before: Option<&ledger::Account>, account: &ledger::Account| {
        let balance = Balance::of_account(account, credit_limit);
        // As it stood just before the transfer (alerts fire on crossing a threshold only).
        let previous_available =
            before.map_or(balance.available, |before| Balance::of_account(before, credit_limit).available);
        let data = BalanceUpdatedData {
            customer_id,
            wallet_id,
            transfer_id: Uuid::from_u128(transfer_id),
            currency: Cow::Borrowed(&currency),
            balance: balance.into(),
            previous_available,
        };
        envelope(id, EventType::BalanceUpdated, &subject, &time, &data)
    });
    EventDraft {
        transfer_id,
        id,
        event_type: EventType::BalanceUpdated.cloud_type(),
        customer_id: Some(customer_id),
        created_at: now,
        payload: Payload::AfterBatch { account_id: wallet_id.as_u128(), render },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;
    use time::OffsetDateTime;
    use time::format_description::well_known::Rfc3339;

    #[test]
    fn types_round_trip_and_envelopes_follow_cloudevents() {
        for kind in EventType::ALL {
            assert_eq!(EventType::parse(&kind.cloud_type()), Some(kind));
        }
        let customer = Uuid::now_v7();
        let event = event(
            EventType::CustomerRegistered,
            Some(customer),
            "customers/x",
            &CustomerRegisteredData { customer_id: customer, name: "Ada".into() },
        );
        let value: Value = serde_json::from_str(&event.payload).unwrap();
        assert_eq!(value["specversion"], "1.0");
        assert_eq!(value["id"], event.id.to_string());
        assert_eq!(value["type"], "coffer.customer.registered");
        assert_eq!(value["source"], SOURCE);
        assert_eq!(value["datacontenttype"], "application/json");
        assert!(OffsetDateTime::parse(value["time"].as_str().unwrap(), &Rfc3339).is_ok());
        assert_eq!(value["data"]["customer_id"], customer.to_string());
        assert_eq!(event.id.get_version_num(), 7);
    }

    #[test]
    fn envelopes_serialise_as_before_they_were_typed() {
        let (id, customer) = (Uuid::now_v7(), Uuid::now_v7());
        let time = crate::rfc3339(1_767_225_600_000_000_001);
        let data = CustomerLoggedInData { customer_id: customer };
        let kind = EventType::CustomerLoggedIn;
        // What `envelope` wrote when it built a `serde_json::Value`.
        let before = serde_json::json!({
            "specversion": "1.0",
            "id": id,
            "source": SOURCE,
            "type": kind.cloud_type(),
            "subject": "customers/x",
            "time": time,
            "datacontenttype": "application/json",
            "dataschema": format!("urn:coffer:events:{}:v{SCHEMA_VERSION}", kind.name()),
            "data": serde_json::json!({"customer_id": customer}),
        });
        assert_eq!(envelope(id, kind, "customers/x", &time, &data), before.to_string());
    }
}
