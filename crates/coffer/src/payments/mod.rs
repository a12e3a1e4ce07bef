//! Money in and out through outside providers: card top-ups through a payment gateway,
//! withdrawals through a payout provider, and the recovery worker that finishes any
//! payment left pending by a timeout or a crash; and reconciliation, which matches the
//! providers' settlement files against the ledger (`reconciliation`, rules in `matching`).
//!
//! The rule that keeps money right: every step is idempotent by an id derived from the
//! payment's id. The provider charges (or pays out) at most once per key; the ledger
//! posts at most once per transfer id; a payment leaves `pending` once. So a retry, a
//! crash anywhere, or the recovery worker and a request racing can repeat steps but
//! never their effects.

pub mod gateway;
pub mod matching;
pub mod reconciliation;
pub mod service;

pub use gateway::{MockProvider, MockSettings, PaymentGateway, PayoutProvider};
pub use reconciliation::{Reconciliations, SettlementAccount};
pub use service::{PaymentAnswer, PaymentError, PaymentRequest, Payments};
