//! Credit reports from a bureau, with the customer's consent: `bureau` (the interface and
//! the deterministic sandbox, whose scenarios a test picks by an email tag) and `service`
//! (consent, pulls at consent and on a schedule, score changes told, reports deleted after
//! the retention period once consent is withdrawn). `docs/credit.md` has the rules.

pub mod bureau;
pub mod service;

pub use service::{Credit, CreditError, CreditSettings};
