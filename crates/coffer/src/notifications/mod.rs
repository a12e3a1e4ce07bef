//! Notifications: what Coffer tells people about events — the in-app inbox, emails and
//! webhooks.
//!
//! [`Notifier`] is the event consumer: for each event it reads the `data` as its type's
//! payload (`events::EventData`, the structs of `events::payloads`; data of another shape
//! notifies nobody but still goes to webhooks), decides the inbox entries,
//! emails and webhook deliveries, and records them together with the event id in one
//! transaction (`Store::apply_event`), so an event delivered twice notifies once. Sending
//! is separate and retried: `mail` sends queued emails (SMTP, or a file outbox in the data
//! dir when no SMTP server is configured), `webhooks` delivers signed webhook requests.
//!
//! Each customer chooses channels and thresholds in their preferences
//! (`PATCH /v1/customers/me`, key `notifications`, see [`Preferences`]).

pub mod digest;
pub mod endpoints;
pub mod mail;
pub mod webhooks;

use std::collections::HashMap;

use serde_json::Value;
use store::{AppliedEvent, Customer, Effects, NewEmail, NewNotification, Store};
use uuid::Uuid;

use crate::events::bus::Delivered;
use crate::events::{self, Consumer, Direction, EventData, EventType, ScheduledPaymentFailure};
use crate::wallets::money::shown as money;
use crate::wallets::monitors;

/// The consumer name under which applied events are remembered.
pub const CONSUMER: &str = "notifications";

/// Defaults for customers who did not choose.
#[derive(Clone, Copy, Debug)]
pub struct NotificationDefaults {
    /// A transfer of at least this many minor units is "high value" (0: never).
    pub high_value_threshold: u64,
    /// An available balance that falls below this many minor units is "low" (0: never).
    pub low_balance_threshold: u64,
}

impl Default for NotificationDefaults {
    fn default() -> Self {
        Self { high_value_threshold: 100_000, low_balance_threshold: 0 }
    }
}

/// A customer's notification preferences: `{"notifications": {"email": bool, "in_app":
/// bool, "high_value_threshold": n, "low_balance_threshold": n, "monthly_digest": bool}}`
/// in their preferences; anything missing takes the default (the digest is off unless
/// asked for, see [`digest`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Preferences {
    pub email: bool,
    pub in_app: bool,
    pub high_value_threshold: u64,
    pub low_balance_threshold: u64,
    pub monthly_digest: bool,
}

impl Preferences {
    pub fn of(preferences_json: &str, defaults: NotificationDefaults) -> Self {
        let value: Value = serde_json::from_str(preferences_json).unwrap_or(Value::Null);
        let section = &value["notifications"];
        let flag = |name: &str| section[name].as_bool().unwrap_or(true);
        let amount = |name: &str, default: u64| section[name].as_u64().unwrap_or(default);
        Self {
            email: flag("email"),
            in_app: flag("in_app"),
            high_value_threshold: amount("high_value_threshold", defaults.high_value_threshold),
            low_balance_threshold: amount("low_balance_threshold", defaults.low_balance_threshold),
            monthly_digest: section["monthly_digest"].as_bool().unwrap_or(false),
        }
    }

    /// Checks a `notifications` preferences section; the message says what is wrong.
    pub fn validate(section: &Value) -> Result<(), &'static str> {
        let Some(map) = section.as_object() else { return Err("must be an object") };
        for (key, value) in map {
            let ok = match key.as_str() {
                "email" | "in_app" | "monthly_digest" => value.is_boolean(),
                "high_value_threshold" | "low_balance_threshold" => value.is_u64(),
                _ => {
                    return Err(
                        "allows only email, in_app, high_value_threshold, low_balance_threshold, monthly_digest",
                    );
                }
            };
            if !ok {
                return Err(
                    "email, in_app and monthly_digest are booleans; thresholds are non-negative integers",
                );
            }
        }
        Ok(())
    }
}

/// The notification consumer.
#[derive(Debug)]
pub struct Notifier {
    store: Store,
    defaults: NotificationDefaults,
    /// What arriving expenses tell a customer about their spending.
    insights: crate::insights::Insights,
}

impl Consumer for Notifier {
    const DURABLE: &'static str = "coffer-notifications";
    async fn apply_all(&self, events: &[Delivered]) -> anyhow::Result<()> {
        Notifier::apply_all(self, events).await
    }
}

impl Notifier {
    pub fn new(store: Store, defaults: NotificationDefaults) -> Self {
        Self { insights: crate::insights::Insights::new(store.clone()), store, defaults }
    }

    /// Applies `event` once: repeated deliveries of the same event id do nothing.
    pub async fn apply(&self, event: &Delivered) -> anyhow::Result<()> {
        self.apply_all(std::slice::from_ref(event)).await
    }

    /// Applies `events` (each once) in one transaction.
    pub async fn apply_all(&self, events: &[Delivered]) -> anyhow::Result<()> {
        // Everything the events' effects depend on, in a few reads for the whole batch.
        let mut ids: Vec<Uuid> = events.iter().filter_map(|event| event.customer_id).collect();
        ids.sort_unstable();
        ids.dedup();
        let customers: HashMap<Uuid, Customer> = self
            .store
            .customers_by_ids(&ids)
            .await?
            .into_iter()
            .map(|customer| (customer.id, customer))
            .collect();
        let admins = self.store.webhooks(None, None, store::NOTIFICATIONS_PAGE_MAX).await?;
        let mut endpoints: HashMap<Uuid, Vec<store::WebhookEndpoint>> = HashMap::new();
        for endpoint in self.store.webhooks_of(&ids).await? {
            if let Some(owner) = endpoint.customer_id {
                endpoints.entry(owner).or_default().push(endpoint);
            }
        }
        let data: Vec<Option<EventData>> = events.iter().map(read_data).collect();
        // The operators' events worth a message go to every admin's inbox (and email).
        let for_operators = |event: &Delivered, data: &Option<EventData>| {
            event.customer_id.is_none() && data.as_ref().is_some_and(EventData::tells_operators)
        };
        let operators = if events.iter().zip(&data).any(|(event, data)| for_operators(event, data)) {
            self.store.admins(OPERATORS_TOLD_MAX).await?
        } else {
            Vec::new()
        };
        // The balance monitors of the wallets these events may cross (`wallets::monitors`).
        let mut watched: Vec<Uuid> = data.iter().flatten().filter_map(monitors::watched_wallet).collect();
        watched.sort_unstable();
        watched.dedup();
        let monitors =
            if watched.is_empty() { Vec::new() } else { self.store.monitors_of_wallets(&watched).await? };
        // Expenses that arrived, per customer: the insights they may call for (one read per
        // customer, told with the customer's first such event of the batch that was not
        // applied before — a redelivered one is skipped when the batch is written, and what
        // it carried with it).
        let added: Vec<Uuid> = events
            .iter()
            .zip(&data)
            .filter(|(_, data)| matches!(data, Some(EventData::ExpenseAdded(_))))
            .map(|(event, _)| event.id)
            .collect();
        let applied_before =
            if added.is_empty() { Default::default() } else { self.store.consumed(CONSUMER, &added).await? };
        let mut arrived: HashMap<Uuid, (usize, std::collections::HashSet<Uuid>)> = HashMap::new();
        for (index, (event, data)) in events.iter().zip(&data).enumerate() {
            if applied_before.contains(&event.id) {
                continue;
            }
            if let Some(EventData::ExpenseAdded(expense)) = data {
                arrived
                    .entry(expense.customer_id)
                    .or_insert((index, Default::default()))
                    .1
                    .insert(expense.expense_id);
            }
        }
        let mut news: HashMap<usize, (Uuid, Vec<crate::insights::service::Notice>)> = HashMap::new();
        for (customer_id, (index, expenses)) in &arrived {
            news.insert(*index, (*customer_id, self.insights.news(*customer_id, expenses).await?));
        }
        let mut planned = Vec::with_capacity(events.len());
        for (index, (event, data)) in events.iter().zip(&data).enumerate() {
            let recipients: Vec<&Customer> = match event.customer_id {
                Some(id) => customers.get(&id).into_iter().collect(),
                None if for_operators(event, data) => operators.iter().collect(),
                None => Vec::new(),
            };
            // The admins' endpoints, then the customer's own.
            let own = event.customer_id.and_then(|id| endpoints.get(&id)).map_or(&[][..], Vec::as_slice);
            let mut effects = self.effects(event, data.as_ref(), &recipients, admins.iter().chain(own));
            for crossing in data.iter().flat_map(|data| monitors::crossings(&monitors, data)) {
                let subject = format!("wallets/{}/monitors/{}", crossing.wallet_id, crossing.monitor_id);
                effects.events.push(events::event(
                    EventType::MonitorTriggered,
                    crossing.customer_id,
                    &subject,
                    &crossing,
                ));
            }
            if let Some((customer_id, notices)) = news.remove(&index) {
                let in_app = customers
                    .get(&customer_id)
                    .is_some_and(|customer| Preferences::of(&customer.preferences, self.defaults).in_app);
                for notice in notices {
                    if in_app {
                        effects.notifications.push(NewNotification {
                            id: Uuid::now_v7(),
                            customer_id,
                            kind: notice.kind.to_owned(),
                            title: notice.title,
                            body: notice.body,
                        });
                    }
                    effects.notices.push((customer_id, notice.key));
                }
            }
            planned.push(effects);
        }
        let items: Vec<(AppliedEvent<'_>, &Effects)> = events
            .iter()
            .zip(&planned)
            .map(|(event, effects)| {
                (
                    AppliedEvent { id: event.id, event_type: &event.event_type, payload: &event.payload },
                    effects,
                )
            })
            .collect();
        self.store.apply_events(CONSUMER, &items, store::now_ns()).await?;
        let notifications: usize = planned.iter().map(|effects| effects.notifications.len()).sum();
        metrics::counter!("coffer_notifications_total").increment(notifications as u64);
        Ok(())
    }

    /// What `event` (its `data` read as its type's payload, if it could be) calls for: the
    /// messages for each of `recipients` (its customer, or the admins for an operators'
    /// event), per their preferences, and the deliveries to `endpoints` that want it.
    fn effects<'a>(
        &self,
        event: &Delivered,
        data: Option<&EventData>,
        recipients: &[&Customer],
        endpoints: impl Iterator<Item = &'a store::WebhookEndpoint>,
    ) -> Effects {
        let kind = EventType::parse(&event.event_type);
        let mut effects = Effects::default();
        if let Some(data) = data {
            for customer in recipients {
                let preferences = Preferences::of(&customer.preferences, self.defaults);
                for message in messages(data, &preferences) {
                    if preferences.in_app {
                        effects.notifications.push(NewNotification {
                            id: Uuid::now_v7(),
                            customer_id: customer.id,
                            kind: message.kind.to_owned(),
                            title: message.title.clone(),
                            body: message.body.clone(),
                        });
                    }
                    if preferences.email && message.email {
                        effects.emails.push(email(customer, &message));
                    }
                }
            }
        }
        let name: &str = match kind {
            Some(kind) => kind.name(),
            None => &event.event_type,
        };
        for endpoint in endpoints {
            if endpoint.event_types.iter().any(|wanted| wanted == "*" || wanted == name) {
                effects.deliveries.push((Uuid::now_v7(), endpoint.id));
            }
        }
        effects
    }
}

/// The `data` of a delivered event as its type's payload; `None` for an unknown type or
/// data not of its type's shape (such an event tells nobody anything; its webhooks still go).
fn read_data(event: &Delivered) -> Option<EventData> {
    let kind = EventType::parse(&event.event_type)?;
    let mut envelope: Value = serde_json::from_str(&event.payload)
        .inspect_err(|error| tracing::warn!(event_id = %event.id, %error, "notifications: unreadable event"))
        .ok()?;
    let data = envelope.get_mut("data").map(Value::take).unwrap_or_default();
    EventData::parse(kind, data)
        .inspect_err(|error| {
            tracing::warn!(event_id = %event.id, kind = kind.name(), %error, "notifications: unreadable event data");
        })
        .ok()
}

/// One thing to tell a customer.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Message {
    /// The inbox kind and the email template.
    kind: &'static str,
    title: String,
    body: String,
    /// Whether it is worth an email too.
    email: bool,
}

/// What an event means for its customer, given their preferences.
fn messages(data: &EventData, preferences: &Preferences) -> Vec<Message> {
    let message = |kind, title: String, body: String, email| Message { kind, title, body, email };
    let mut out = Vec::new();
    match data {
        EventData::CustomerRegistered(_) => out.push(message(
            "welcome",
            "Welcome to Coffer".into(),
            "Your account is ready. Create a wallet, top it up and send money to anyone with an email address."
                .into(),
            true,
        )),
        EventData::TransferPosted(transfer) | EventData::TransferPending(transfer) => {
            let high_value =
                preferences.high_value_threshold > 0 && transfer.amount >= preferences.high_value_threshold;
            let incoming = transfer.direction == Direction::In;
            let operation = transfer.operation.as_str();
            let amount = money(transfer.amount, &transfer.currency);
            if incoming && transfer.operation == crate::events::TransferOperation::Transfer {
                out.push(message(
                    "transfer_received",
                    format!("You received {amount}"),
                    format!("{amount} arrived in your wallet."),
                    false,
                ));
            }
            if high_value {
                out.push(message(
                    "high_value_transaction",
                    format!("High-value transaction: {amount}"),
                    format!(
                        "A {operation} of {amount} {} your wallet {}. If this was not you, contact support.",
                        if incoming { "reached" } else { "left" },
                        transfer.wallet_id
                    ),
                    true,
                ));
            }
        }
        EventData::BalanceUpdated(balance) => {
            let threshold = preferences.low_balance_threshold as i64;
            let available = balance.balance.available;
            if threshold > 0 && available < threshold && balance.previous_available >= threshold {
                out.push(message(
                    "low_balance",
                    format!("Low balance: {} available", money(available, &balance.currency)),
                    format!("Your wallet {} is below your alert threshold.", balance.wallet_id),
                    true,
                ));
            }
        }
        EventData::TopUpSucceeded(top_up) => out.push(message(
            "top_up_succeeded",
            format!("Top-up of {} succeeded", money(top_up.amount, &top_up.currency)),
            "The money is in your wallet.".into(),
            false,
        )),
        EventData::TopUpFailed(top_up) => out.push(message(
            "top_up_failed",
            format!("Top-up of {} failed", money(top_up.amount, &top_up.currency)),
            format!(
                "Your card was not charged ({}). Try another card or contact your bank.",
                top_up.failure_code.as_deref().unwrap_or("declined")
            ),
            true,
        )),
        EventData::WithdrawalSucceeded(withdrawal) => out.push(message(
            "withdrawal_succeeded",
            format!("Withdrawal of {} paid out", money(withdrawal.amount, &withdrawal.currency)),
            "The money is on its way to your bank account.".into(),
            false,
        )),
        EventData::WithdrawalFailed(withdrawal) => out.push(message(
            "withdrawal_failed",
            format!("Withdrawal of {} failed", money(withdrawal.amount, &withdrawal.currency)),
            format!(
                "The payout was refused ({}); the money is back in your wallet.",
                withdrawal.failure_code.as_deref().unwrap_or("refused")
            ),
            false,
        )),
        EventData::BudgetWarning(budget) | EventData::BudgetExceeded(budget) => {
            let exceeded = matches!(data, EventData::BudgetExceeded(_));
            let category = budget.category.as_deref().unwrap_or("a category");
            out.push(message(
                if exceeded { "budget_exceeded" } else { "budget_warning" },
                if exceeded {
                    format!("Budget exceeded: {category}")
                } else {
                    format!("Budget at {}%: {category}", budget.percent_used)
                },
                format!(
                    "You have spent {} of {} budgeted for {category} this month.",
                    money(budget.spent, &budget.currency),
                    money(budget.available, &budget.currency)
                ),
                exceeded,
            ));
        }
        EventData::ScheduledPaymentFailed(failed) => out.push(message(
            "scheduled_payment_failed",
            format!("Scheduled payment of {} failed", money(failed.amount, &failed.currency)),
            format!(
                "The payment could not be made ({}) after {} attempts.",
                failed.failure_code.map_or("failed", ScheduledPaymentFailure::as_str),
                failed.attempts
            ),
            true,
        )),
        EventData::MonitorTriggered(triggered) => {
            let threshold = money(triggered.threshold, &triggered.currency);
            let value = money(triggered.value, &triggered.currency);
            let (title, body) = match triggered.condition {
                monitors::Condition::AvailableBelow => (
                    format!("Balance below {threshold}"),
                    format!("Your wallet {} has {value} available, below your alert at {threshold}.", triggered.wallet_id),
                ),
                monitors::Condition::AvailableAbove => (
                    format!("Balance above {threshold}"),
                    format!("Your wallet {} has {value} available, above your alert at {threshold}.", triggered.wallet_id),
                ),
                monitors::Condition::DebitAbove => (
                    format!("Debit of {value}"),
                    format!(
                        "{value} left your wallet {}, more than your alert at {threshold}. If this was not you, \
                         contact support.",
                        triggered.wallet_id
                    ),
                ),
            };
            out.push(message("balance_alert", title, body, true));
        }
        // The operators' own (told to every admin).
        EventData::VerifyFindings(found) => out.push(message(
            "verify_findings",
            format!("The books' check found {} problem(s)", found.findings),
            format!(
                "Run {} of the books' check found something ({}). GET /v1/admin/verify/{} has the report.",
                found.run_id,
                found.checks.join(", "),
                found.run_id
            ),
            true,
        )),
        EventData::FxConverted(converted) => {
            let sold = money(converted.sell_amount, &converted.sell_currency);
            let bought = money(converted.buy_amount, &converted.buy_currency);
            let fee = if converted.fee > 0 {
                format!(" A fee of {} was taken too.", money(converted.fee, &converted.sell_currency))
            } else {
                String::new()
            };
            out.push(message(
                "fx_converted",
                format!("You converted {sold} to {bought}"),
                format!(
                    "{sold} left wallet {} and {bought} arrived in wallet {}, at {} {} per {}.{fee}",
                    converted.sell_wallet_id,
                    converted.buy_wallet_id,
                    converted.rate,
                    converted.buy_currency,
                    converted.sell_currency
                ),
                false,
            ));
        }
        EventData::CreditScoreChanged(changed) => {
            let score = |score: Option<u16>| score.map_or_else(|| "no score".to_owned(), |score| score.to_string());
            out.push(message(
                "credit_score_changed",
                format!("Your credit score changed: {}", score(changed.score)),
                format!(
                    "Your latest credit report scores {} ({}), from {} before. GET /v1/credit/report has the factors.",
                    score(changed.score),
                    changed.band.as_str().replace('_', " "),
                    score(changed.previous_score)
                ),
                true,
            ));
        }
        EventData::ReconciliationUnmatched(unmatched) => out.push(message(
            "reconciliation_unmatched",
            format!("Reconciliation: {} item(s) unmatched since {}", unmatched.overdue_lines + unmatched.overdue_transfers, unmatched.oldest),
            format!(
                "Reconciling the {} {} settlement left {} line(s) without a transfer and {} transfer(s) without a \
                 line, the oldest from {}. GET /v1/reconciliations/{} has the report.",
                unmatched.currency,
                unmatched.account,
                unmatched.overdue_lines,
                unmatched.overdue_transfers,
                unmatched.oldest,
                unmatched.reconciliation_id
            ),
            true,
        )),
        EventData::CustomerLoggedIn(_)
        | EventData::WalletCreated(_)
        | EventData::TransferVoided(_)
        | EventData::ExpenseAdded(_)
        | EventData::ExpenseCategorized(_)
        | EventData::ExpenseUpdated(_)
        | EventData::ExpenseDeleted(_)
        | EventData::CategoryDeleted(_) => {}
    }
    out
}

/// Admins an operators' event is told to at most (the first by id).
const OPERATORS_TOLD_MAX: u32 = 100;

/// A builder for outgoing HTTP clients (webhooks), with rustls on the ring provider.
pub fn http_client() -> reqwest::ClientBuilder {
    crate::support::install_crypto_provider();
    reqwest::Client::builder()
}

fn email(customer: &Customer, message: &Message) -> NewEmail {
    let greeting = format!("Hello {},", customer.name);
    NewEmail {
        id: Uuid::now_v7(),
        customer_id: Some(customer.id),
        recipient: customer.email.clone(),
        template: message.kind.to_owned(),
        subject: message.title.clone(),
        body: format!(
            "{greeting}\n\n{}\n\n— Coffer\n\nYou receive this email because of your notification preferences; \
             turn emails off with {{\"notifications\": {{\"email\": false}}}} in your preferences.\n",
            message.body
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn preferences_default_and_validate() {
        let defaults = NotificationDefaults { high_value_threshold: 10, low_balance_threshold: 0 };
        let chosen =
            Preferences::of(r#"{"notifications":{"email":false,"high_value_threshold":5}}"#, defaults);
        assert_eq!(
            chosen,
            Preferences {
                email: false,
                in_app: true,
                high_value_threshold: 5,
                low_balance_threshold: 0,
                monthly_digest: false,
            }
        );
        assert!(Preferences::validate(&json!({"email": true, "low_balance_threshold": 100})).is_ok());
        assert!(Preferences::validate(&json!({"monthly_digest": true})).is_ok());
        assert!(Preferences::validate(&json!({"monthly_digest": "monthly"})).is_err());
        assert!(Preferences::of(r#"{"notifications":{"monthly_digest":true}}"#, defaults).monthly_digest);
        assert!(!Preferences::of("{}", defaults).monthly_digest, "off unless asked for");
        assert!(Preferences::validate(&json!({"email": "yes"})).is_err());
        assert!(Preferences::validate(&json!({"sms": true})).is_err());
        assert!(Preferences::validate(&json!({"high_value_threshold": -1})).is_err());
    }

    #[test]
    fn low_balance_alerts_only_when_crossing() {
        let preferences = Preferences {
            email: true,
            in_app: true,
            high_value_threshold: 0,
            low_balance_threshold: 1000,
            monthly_digest: false,
        };
        let data = |before: i64, after: i64| {
            EventData::BalanceUpdated(crate::events::BalanceUpdatedData {
                customer_id: Uuid::now_v7(),
                wallet_id: Uuid::now_v7(),
                transfer_id: Uuid::now_v7(),
                currency: "USD".into(),
                balance: crate::events::BalanceData { posted: after, pending: 0, available: after },
                previous_available: before,
            })
        };
        let alerts = messages(&data(1500, 900), &preferences);
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].title, "Low balance: 9.00 USD available");
        assert!(messages(&data(900, 800), &preferences).is_empty());
        assert!(messages(&data(1500, 1200), &preferences).is_empty());
    }
}
