//! The payment-gateway and payout-provider adapters: traits that real providers
//! implement, and the built-in mock provider.
//!
//! Cards are tokenised by the gateway on the client side, so Coffer only ever sees a
//! payment-method token such as `tok_visa`, never a card number — and never logs it.
//! Every call carries an idempotency key (the top-up's or withdrawal's id): the provider
//! does the work once per key, and can be asked later what became of it.

use std::{
    collections::{HashMap, VecDeque},
    sync::Mutex,
    time::Duration,
};

use futures::future::BoxFuture;

use super::reconciliation::SettlementAccount;

/// What the provider says about a charge or payout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProviderOutcome {
    /// Done: the provider's id for it.
    Succeeded { provider_id: String },
    /// Refused for good, with the provider's code (`card_declined`, `insufficient_funds`).
    Declined { code: String },
}

/// Why a call did not return an outcome. The work may or may not have happened: ask
/// again with the same key (`status`) to find out.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    #[error("the provider did not answer in time")]
    Timeout,
    #[error("the provider is unavailable")]
    Unavailable,
}

/// A charge to make on a tokenised payment method.
#[derive(Clone, Debug)]
pub struct ChargeRequest {
    /// The top-up id: the provider charges at most once per key.
    pub idempotency_key: String,
    pub amount: u64,
    pub currency: String,
    /// The gateway's token for the card. Secret: never logged or stored.
    pub payment_method: String,
}

/// A payout to a tokenised bank account.
#[derive(Clone, Debug)]
pub struct PayoutRequest {
    pub idempotency_key: String,
    pub amount: u64,
    pub currency: String,
    pub destination: String,
}

/// A card payment gateway.
pub trait PaymentGateway: Send + Sync + std::fmt::Debug {
    fn charge(&self, request: ChargeRequest) -> BoxFuture<'_, Result<ProviderOutcome, ProviderError>>;
    /// What became of the charge with this key; `None` when the provider never made it.
    fn charge_status(
        &self,
        idempotency_key: &str,
    ) -> BoxFuture<'_, Result<Option<ProviderOutcome>, ProviderError>>;
}

/// A payout provider (bank transfers out).
pub trait PayoutProvider: Send + Sync + std::fmt::Debug {
    fn payout(&self, request: PayoutRequest) -> BoxFuture<'_, Result<ProviderOutcome, ProviderError>>;
    fn payout_status(
        &self,
        idempotency_key: &str,
    ) -> BoxFuture<'_, Result<Option<ProviderOutcome>, ProviderError>>;
}

/// Keys the mock remembers at most, oldest forgotten first (real providers keep keys
/// for a day or so; the bound keeps a long-running test server's memory flat).
const MOCK_KEYS_MAX: usize = 100_000;

/// Settings of the mock provider.
#[derive(Clone, Copy, Debug)]
pub struct MockSettings {
    /// Delay of every call.
    pub latency: Duration,
    /// Share of calls, 0.0 to 1.0, that fail as `Unavailable` before doing anything.
    pub failure_rate: f64,
}

/// The built-in provider: a real component with the failure modes of a real one.
///
/// Card tokens (Stripe-like): `tok_visa` and any other `tok_…` succeed;
/// `tok_chargeDeclined` declines with `card_declined`; `tok_insufficientFunds` declines
/// with `insufficient_funds`; `tok_timeout` charges the card but the call times out, so
/// only a later `charge_status` reveals that it succeeded. A token not starting with
/// `tok_` declines with `invalid_payment_method`. Payout destinations: `ba_fail` is
/// refused with `account_closed`, `ba_timeout` pays out but the call times out, anything
/// else succeeds.
#[derive(Debug)]
pub struct MockProvider {
    settings: MockSettings,
    done: Mutex<Remembered>,
}

/// One line of the mock's settlement file: money it moved for us.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settled {
    pub account: SettlementAccount,
    /// Its id for the charge or payout (`ch_…`, `po_…`).
    pub reference: String,
    pub amount: u64,
    pub currency: String,
    /// When it happened, nanoseconds since the epoch.
    pub at: u64,
}

#[derive(Debug, Default)]
struct Remembered {
    outcomes: HashMap<String, ProviderOutcome>,
    order: VecDeque<String>,
    /// What succeeded, oldest first (bounded like the keys).
    settled: VecDeque<Settled>,
}

impl Remembered {
    /// The outcome for `key`: the one remembered, or `outcome` (then remembered, and
    /// settled if it succeeded).
    fn insert(&mut self, key: String, outcome: ProviderOutcome, settles: Settles) -> ProviderOutcome {
        if let Some(existing) = self.outcomes.get(&key) {
            return existing.clone();
        }
        if self.order.len() >= MOCK_KEYS_MAX
            && let Some(oldest) = self.order.pop_front()
        {
            self.outcomes.remove(&oldest);
        }
        if let ProviderOutcome::Succeeded { provider_id } = &outcome {
            if self.settled.len() >= MOCK_KEYS_MAX {
                self.settled.pop_front();
            }
            let (account, amount, currency) = settles;
            self.settled.push_back(Settled {
                account,
                reference: provider_id.clone(),
                amount,
                currency,
                at: store::now_ns(),
            });
        }
        self.order.push_back(key.clone());
        self.outcomes.insert(key, outcome.clone());
        outcome
    }
}

/// What a successful call settles: on which account, how much, in what.
type Settles = (SettlementAccount, u64, String);

impl MockProvider {
    pub fn new(settings: MockSettings) -> Self {
        Self { settings, done: Mutex::new(Remembered::default()) }
    }

    /// What it settled on `account` in `currency` from `from` to `to` (nanoseconds,
    /// `to` excluded), oldest first: its settlement file, before formatting.
    pub fn settlement(&self, account: SettlementAccount, currency: &str, from: u64, to: u64) -> Vec<Settled> {
        let done = self.done.lock().expect("not poisoned");
        done.settled
            .iter()
            .filter(|settled| {
                settled.account == account && settled.currency == currency && (from..to).contains(&settled.at)
            })
            .cloned()
            .collect()
    }

    async fn call(
        &self,
        key: String,
        settles: Settles,
        decide: impl FnOnce() -> (ProviderOutcome, bool),
    ) -> Result<ProviderOutcome, ProviderError> {
        tokio::time::sleep(self.settings.latency).await;
        if self.settings.failure_rate > 0.0 && rand::random::<f64>() < self.settings.failure_rate {
            return Err(ProviderError::Unavailable);
        }
        let (outcome, times_out) = decide();
        let outcome = self.done.lock().expect("not poisoned").insert(key, outcome, settles);
        if times_out { Err(ProviderError::Timeout) } else { Ok(outcome) }
    }

    fn status(&self, key: &str) -> Option<ProviderOutcome> {
        self.done.lock().expect("not poisoned").outcomes.get(key).cloned()
    }
}

fn provider_id(prefix: &str, key: &str) -> String {
    format!("{prefix}_{}", key.replace('-', ""))
}

impl PaymentGateway for MockProvider {
    fn charge(&self, request: ChargeRequest) -> BoxFuture<'_, Result<ProviderOutcome, ProviderError>> {
        Box::pin(async move {
            let key = request.idempotency_key.clone();
            let settles = (SettlementAccount::CardSettlement, request.amount, request.currency.clone());
            self.call(key.clone(), settles, || {
                let declined = |code: &str| ProviderOutcome::Declined { code: code.to_owned() };
                match request.payment_method.as_str() {
                    "tok_chargeDeclined" => (declined("card_declined"), false),
                    "tok_insufficientFunds" => (declined("insufficient_funds"), false),
                    "tok_timeout" => {
                        (ProviderOutcome::Succeeded { provider_id: provider_id("ch", &key) }, true)
                    }
                    token if token.starts_with("tok_") => {
                        (ProviderOutcome::Succeeded { provider_id: provider_id("ch", &key) }, false)
                    }
                    _ => (declined("invalid_payment_method"), false),
                }
            })
            .await
        })
    }

    fn charge_status(
        &self,
        idempotency_key: &str,
    ) -> BoxFuture<'_, Result<Option<ProviderOutcome>, ProviderError>> {
        let outcome = self.status(idempotency_key);
        Box::pin(async move {
            tokio::time::sleep(self.settings.latency).await;
            Ok(outcome)
        })
    }
}

impl PayoutProvider for MockProvider {
    fn payout(&self, request: PayoutRequest) -> BoxFuture<'_, Result<ProviderOutcome, ProviderError>> {
        Box::pin(async move {
            let key = format!("payout:{}", request.idempotency_key);
            let id = provider_id("po", &request.idempotency_key);
            let settles = (SettlementAccount::Payouts, request.amount, request.currency.clone());
            self.call(key, settles, || match request.destination.as_str() {
                "ba_fail" => (ProviderOutcome::Declined { code: "account_closed".into() }, false),
                "ba_timeout" => (ProviderOutcome::Succeeded { provider_id: id }, true),
                _ => (ProviderOutcome::Succeeded { provider_id: id }, false),
            })
            .await
        })
    }

    fn payout_status(
        &self,
        idempotency_key: &str,
    ) -> BoxFuture<'_, Result<Option<ProviderOutcome>, ProviderError>> {
        let outcome = self.status(&format!("payout:{idempotency_key}"));
        Box::pin(async move {
            tokio::time::sleep(self.settings.latency).await;
            Ok(outcome)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mock() -> MockProvider {
        MockProvider::new(MockSettings { latency: Duration::ZERO, failure_rate: 0.0 })
    }

    fn charge(key: &str, token: &str) -> ChargeRequest {
        ChargeRequest {
            idempotency_key: key.into(),
            amount: 100,
            currency: "USD".into(),
            payment_method: token.into(),
        }
    }

    #[tokio::test]
    async fn tokens_behave_like_the_test_cards() {
        let gateway = mock();
        assert!(matches!(
            gateway.charge(charge("a", "tok_visa")).await,
            Ok(ProviderOutcome::Succeeded { .. })
        ));
        assert_eq!(
            gateway.charge(charge("b", "tok_chargeDeclined")).await,
            Ok(ProviderOutcome::Declined { code: "card_declined".into() })
        );
        assert_eq!(
            gateway.charge(charge("c", "tok_insufficientFunds")).await,
            Ok(ProviderOutcome::Declined { code: "insufficient_funds".into() })
        );
        // The timeout hides a charge that happened.
        assert_eq!(gateway.charge(charge("d", "tok_timeout")).await, Err(ProviderError::Timeout));
        assert!(matches!(gateway.charge_status("d").await, Ok(Some(ProviderOutcome::Succeeded { .. }))));
        assert_eq!(gateway.charge_status("never").await, Ok(None));
    }

    #[tokio::test]
    async fn one_charge_per_key() {
        let gateway = mock();
        let first = gateway.charge(charge("k", "tok_visa")).await.unwrap();
        // The same key with another card gets the first outcome back.
        assert_eq!(gateway.charge(charge("k", "tok_chargeDeclined")).await.unwrap(), first);
    }

    #[tokio::test]
    async fn failures_happen_at_the_configured_rate_and_charge_nothing() {
        let gateway = MockProvider::new(MockSettings { latency: Duration::ZERO, failure_rate: 1.0 });
        assert_eq!(gateway.charge(charge("x", "tok_visa")).await, Err(ProviderError::Unavailable));
        assert_eq!(gateway.charge_status("x").await, Ok(None));
    }
}
