//! Bank connections through an aggregator, shaped like the common ones (Plaid, GoCardless,
//! TrueLayer): a customer links an institution, the link reaches accounts, and each
//! account's transactions are synced with a cursor the aggregator hands back.
//!
//! [`Aggregator`] is the interface a provider implements. Two are built in:
//! [`sandbox::Sandbox`], a deterministic pretend bank, and [`simplefin::SimpleFin`], which
//! speaks the public SimpleFIN protocol to a SimpleFIN server (the SimpleFIN Bridge reaches
//! real banks). Each institution belongs to one aggregator; a connection stores the name of
//! the aggregator that linked it, and that one syncs it. [`sync::Banks`] is the service:
//! linking, listing, "sync now", and the worker that syncs every linked connection on a
//! schedule. Synced transactions go through
//! the same path as CSV statement imports (`Finance::record_lines`): categorised expenses
//! with source `bank_sync` (money in becomes income), each with an import hash derived from
//! the provider's account and transaction ids, so re-syncing adds nothing.

pub mod sandbox;
pub mod simplefin;
pub mod sync;

use futures::future::BoxFuture;
use time::Date;
use uuid::Uuid;

/// What the customer gave to link an institution.
#[derive(Clone)]
pub struct LinkRequest {
    pub institution_id: String,
    /// For aggregators that take them (the sandbox's `user_good` / `pass_good`); real
    /// ones use a hosted login and hand back a public token instead.
    pub credentials: Option<Credentials>,
    /// For aggregators that link with a token the customer brings (SimpleFIN's setup
    /// token).
    pub setup_token: Option<SetupToken>,
    /// Who links: aggregators scope their users (Plaid's `client_user_id`).
    pub customer_id: Uuid,
}

/// A bank login. Secret: never stored, never logged.
#[derive(Clone)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Credentials(***)")
    }
}

/// A SimpleFIN setup token: the base64 of a one-time claim URL. Secret until claimed (whoever
/// claims it first reads the customer's bank data), so never stored or logged.
#[derive(Clone)]
pub struct SetupToken(pub String);

impl std::fmt::Debug for SetupToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SetupToken(***)")
    }
}

impl std::fmt::Debug for LinkRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkRequest")
            .field("institution_id", &self.institution_id)
            .field("customer_id", &self.customer_id)
            .finish_non_exhaustive()
    }
}

/// A link the aggregator made.
#[derive(Clone)]
pub struct Link {
    /// The aggregator's id of the link (Plaid's item id).
    pub connection_id: String,
    /// The aggregator's credential for later calls. Secret: stored, never shown or logged.
    pub access_token: String,
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link").field("connection_id", &self.connection_id).finish_non_exhaustive()
    }
}

/// An institution a customer can link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Institution {
    pub id: &'static str,
    pub name: &'static str,
    /// What linking it does (the sandbox's institutions each behave in one way).
    pub behaviour: &'static str,
    /// What the customer gives to link it.
    pub link_method: LinkMethod,
}

/// What a customer gives to link an institution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkMethod {
    /// Optional bank credentials (the sandbox).
    Credentials,
    /// A setup token from the customer's SimpleFIN server.
    SetupToken,
}

impl LinkMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Credentials => "credentials",
            Self::SetupToken => "setup_token",
        }
    }
}

/// The kind of an account.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccountType {
    Checking,
    Savings,
    CreditCard,
}

impl AccountType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Checking => "checking",
            Self::Savings => "savings",
            Self::CreditCard => "credit_card",
        }
    }
}

/// An account as the aggregator lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Account {
    pub id: String,
    pub name: String,
    /// The last digits of the account number.
    pub mask: Option<String>,
    pub currency: String,
    /// `None` when the aggregator does not say (SimpleFIN does not): shown as `other`.
    pub kind: Option<AccountType>,
}

/// A booked transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transaction {
    /// The aggregator's id: stable, unique per account.
    pub id: String,
    pub booked_on: Date,
    /// Minor units; negative = money out.
    pub amount: i64,
    pub currency: String,
    pub description: String,
    pub merchant: Option<String>,
    /// ISO 18245 merchant category code.
    pub mcc: Option<String>,
}

/// One page of an account's transactions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransactionsPage {
    /// New since the cursor the page was asked for, oldest first.
    pub added: Vec<Transaction>,
    /// Where the next call resumes (store it once `added` is recorded).
    pub next_cursor: String,
    /// More are waiting now; without it, ask again later for new ones.
    pub has_more: bool,
}

/// Why an aggregator call failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AggregatorError {
    #[error("no such institution")]
    UnknownInstitution,
    #[error("the bank refused the credentials")]
    InvalidCredentials,
    #[error("the bank needs the customer to log in (multi-factor or a changed password)")]
    LoginRequired,
    #[error("the access token or cursor is not one this aggregator issued")]
    InvalidToken,
    /// The customer's setup token is not one: not base64, or not the base64 of an http(s)
    /// URL (or missing where the institution links with one).
    #[error("the setup token is not valid: {0}")]
    InvalidSetupToken(&'static str),
    /// A URL the customer's input led to (a claim URL, the access URL a claim answered) is
    /// on a host the operator did not allow (`COFFER_SIMPLEFIN_HOSTS`): it was not contacted.
    #[error("that SimpleFIN server is not one this service may contact")]
    HostNotAllowed,
    /// The SimpleFIN server refused the claim: the setup token was claimed already (by
    /// this link or by someone else) or never existed.
    #[error(
        "the SimpleFIN server refused the setup token: it was used already or does not exist. \
         If you did not use it yourself, disable it at your SimpleFIN server, since someone else may have"
    )]
    SetupTokenRejected,
    /// The aggregator no longer accepts the link's credential (SimpleFIN answers 403: the
    /// customer revoked the access, or it expired). Retrying cannot help; linking again can.
    #[error("the access to this bank was revoked; link it again with a new setup token")]
    AccessRevoked,
    /// Passing: retry later.
    #[error("the aggregator or the bank is unavailable: {0}")]
    Unavailable(String),
}

impl AggregatorError {
    /// The stable code clients see (in problems, and as a connection's `last_error`).
    pub fn code(&self) -> &'static str {
        match self {
            Self::UnknownInstitution => "bank_institution_unknown",
            Self::InvalidCredentials => "bank_credentials_invalid",
            Self::LoginRequired => "bank_login_required",
            Self::InvalidToken => "bank_token_invalid",
            Self::InvalidSetupToken(_) => "bank_setup_token_invalid",
            Self::HostNotAllowed => "bank_host_not_allowed",
            Self::SetupTokenRejected => "bank_setup_token_rejected",
            Self::AccessRevoked => "bank_access_revoked",
            Self::Unavailable(_) => "bank_unavailable",
        }
    }
}

/// A bank-data aggregator.
pub trait Aggregator: Send + Sync + std::fmt::Debug {
    /// Its name, stored with each connection (`sandbox`, `simplefin`).
    fn name(&self) -> &'static str;

    /// The institutions a customer can link.
    fn institutions(&self) -> Vec<Institution>;

    /// Links an institution for a customer.
    fn link(&self, request: LinkRequest) -> BoxFuture<'_, Result<Link, AggregatorError>>;

    /// The accounts a link reaches.
    fn accounts<'a>(&'a self, access_token: &'a str) -> BoxFuture<'a, Result<Vec<Account>, AggregatorError>>;

    /// Transactions of `account_id` after `cursor` (from the start of the available
    /// history when `None`), at most `limit`.
    fn transactions<'a>(
        &'a self,
        access_token: &'a str,
        account_id: &'a str,
        cursor: Option<&'a str>,
        limit: u32,
    ) -> BoxFuture<'a, Result<TransactionsPage, AggregatorError>>;
}
