//! Currency conversion between a customer's wallets: exchange rates from a provider
//! (`rates`), the exact arithmetic of a conversion (`convert`), and the service that
//! offers quotes and executes them as one linked ledger chain through the house's
//! per-currency FX accounts (`service`). `docs/fx.md` explains the model and the rounding.

pub mod convert;
pub mod rates;
pub mod service;

pub use service::{Fx, FxError, FxSettings, QuoteRequest, Target};
