//! The wallet service: create and read wallets, move money between them, read history.
//! It knows the ledger and the store, not HTTP. Its events (`wallet.created`, and the
//! transfer and balance events built by `events::transfer_drafts`) carry the payload
//! types of `events::payloads`.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex},
};

use ledger::{Account, AccountFlags, CreateAccountResult, CreateTransferResult, Transfer};
use store::{
    Command, EventDraft, IdempotencyKey, KeyedResponse, NewWallet, NoteKind, Noted, Outcome, ResponseDraft,
    Store, StoreError, StoredResponse, TransferNote, WalletRow, WalletType,
};
use uuid::Uuid;

use super::money::{Currency, account_code, transfer_code};
use crate::commit::{CommitError, CommitPipeline};
use crate::events::{self, Direction, EventType, Leg, TransferFacts, TransferOperation};
use crate::identity::profile::Email;

/// Largest credit limit of a credit-card wallet, in minor units: a sanity bound far
/// above any real card (10^12 cents is ten billion dollars).
pub const CREDIT_LIMIT_MAX: u64 = 1_000_000_000_000;

/// Why a wallet operation did not happen. Each maps to one stable API error code.
#[derive(Debug, thiserror::Error)]
pub enum WalletError {
    #[error("no such wallet")]
    WalletNotFound,
    #[error("no such transfer")]
    TransferNotFound,
    #[error("no customer with that email has a wallet in this currency")]
    RecipientNotFound,
    #[error("unsupported currency")]
    CurrencyNotSupported,
    #[error("the wallets hold different currencies")]
    CurrencyMismatch,
    #[error("a transfer needs two different wallets")]
    SameWallet,
    #[error("the wallet does not hold enough money")]
    InsufficientFunds,
    #[error("a customer holds at most {0} wallets")]
    TooManyWallets(usize),
    #[error("a wallet has at most {0} monitors from its owner, and {0} from operators")]
    TooManyMonitors(u32),
    #[error("no such monitor")]
    MonitorNotFound,
    #[error("a credit limit is for credit-card wallets only")]
    CreditLimitNotAllowed,
    #[error("this transfer failed before and will not be retried (ledger result {0})")]
    FailedBefore(CreateTransferResult),
    /// The derived ledger id exists with other fields: the same idempotency key was used
    /// for a different request after its record expired.
    #[error("this Idempotency-Key was used before for a different request")]
    KeyReused,
    #[error("the commit pipeline refused the write")]
    Commit(#[from] CommitError),
    #[error("the store failed")]
    Store(#[from] StoreError),
    #[error("the ledger answered {0} unexpectedly")]
    Ledger(String),
}

/// A wallet's balances as the customer sees them, in minor units. For a credit-card
/// wallet the credit line is not the customer's money: `posted` goes below zero as it is
/// used, while `available` includes what is left of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Balance {
    /// Settled money: credits − debits − credit limit.
    pub posted: i64,
    /// Money reserved or incoming but not settled: pending credits − pending debits.
    pub pending: i64,
    /// What may be spent now: credits − debits − pending debits.
    pub available: i64,
}

impl Balance {
    pub fn of(wallet: &WalletRow) -> Self {
        Self::from_totals(
            [wallet.debits_pending, wallet.debits_posted, wallet.credits_pending, wallet.credits_posted],
            wallet.credit_limit,
        )
    }

    /// The balance of a wallet's ledger account (`credit_limit` from its wallet row).
    pub fn of_account(account: &ledger::Account, credit_limit: u64) -> Self {
        Self::from_totals(
            [account.debits_pending, account.debits_posted, account.credits_pending, account.credits_posted],
            credit_limit,
        )
    }

    fn from_totals(
        [debits_pending, debits_posted, credits_pending, credits_posted]: [u64; 4],
        credit_limit: u64,
    ) -> Self {
        let signed = |value: u64| i64::try_from(value).unwrap_or(i64::MAX);
        let net = signed(credits_posted) - signed(debits_posted);
        Self {
            posted: net - signed(credit_limit),
            pending: signed(credits_pending) - signed(debits_pending),
            available: net - signed(debits_pending),
        }
    }
}

/// Where a transfer goes.
#[derive(Clone, Debug)]
pub enum Recipient {
    Wallet(Uuid),
    /// The customer's default wallet in the transfer's currency.
    Customer(Uuid),
}

/// A P2P transfer, as the service takes it.
#[derive(Clone, Debug)]
pub struct TransferRequest {
    pub from_wallet_id: Uuid,
    pub to: Recipient,
    pub amount: u64,
    pub description: Option<String>,
}

/// What never changes about a wallet once it is created: served from memory on the
/// request path (wallets are never edited or deleted), balances are not among them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WalletFacts {
    pub id: Uuid,
    pub customer_id: Uuid,
    pub currency: String,
    pub wallet_type: WalletType,
    pub credit_limit: u64,
}

impl From<&WalletRow> for WalletFacts {
    fn from(wallet: &WalletRow) -> Self {
        Self {
            id: wallet.id,
            customer_id: wallet.customer_id,
            currency: wallet.currency.clone(),
            wallet_type: wallet.wallet_type,
            credit_limit: wallet.credit_limit,
        }
    }
}

/// Wallets whose facts are kept in memory at most: about 100 bytes each, so the cache stays
/// under ~7 MB; when full it starts over (a miss is one indexed read).
const WALLET_FACTS_CACHED_MAX: usize = 65_536;

/// Renders a keyed request's answer from what its operation came to, inside the batch
/// that commits it; `None` for an outcome not to remember (a failure of ours). Supplied by
/// the HTTP layer, which alone knows how an answer looks.
pub type RenderAnswer =
    Arc<dyn Fn(Result<TransferView, WalletError>) -> Option<StoredResponse> + Send + Sync>;

/// A keyed request whose answer is remembered in the batch that moves its money.
#[derive(Clone)]
pub struct Answer {
    pub key: IdempotencyKey,
    pub render: RenderAnswer,
}

impl std::fmt::Debug for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Answer").field("key", &self.key).finish_non_exhaustive()
    }
}

/// A transfer as the API shows it.
#[derive(Clone, Debug)]
pub struct TransferView {
    pub id: Uuid,
    pub status: &'static str,
    pub amount: u64,
    pub currency: Currency,
    pub from_wallet_id: Uuid,
    pub to_wallet_id: Uuid,
    pub description: Option<String>,
    /// Ledger timestamp (nanoseconds since the epoch).
    pub created_at: u64,
}

/// Fees per operation type, in basis points (1/100 of a percent) of the amount, rounded
/// down; zero by default. A fee is a transfer from the paying wallet to the currency's
/// fees account, linked to the operation: both happen or neither does.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Fees {
    pub transfer_bps: u32,
    pub top_up_bps: u32,
    pub withdrawal_bps: u32,
}

/// The largest fee rate: the whole amount.
pub const FEE_BPS_MAX: u32 = 10_000;

impl Fees {
    /// The fee on `amount` at `bps`.
    pub fn of(amount: u64, bps: u32) -> u64 {
        assert!(bps <= FEE_BPS_MAX);
        // Fits: amount < 2^63 and bps ≤ 10^4, so the product is below 2^77 in u128.
        (u128::from(amount) * u128::from(bps) / u128::from(FEE_BPS_MAX)) as u64
    }
}

/// What a chain's results mean for the operation at its head. A chain commits whole or
/// not at all, so the head's result speaks for the chain: `ok`, or `exists` (a retry of a
/// chain that committed before — the ledger reports the rest as `linked_event_failed`).
/// Otherwise the first real failure in the chain explains it.
pub fn chain_outcome(results: &[CreateTransferResult]) -> Result<(), WalletError> {
    use CreateTransferResult as R;
    match results.first() {
        Some(R::Ok | R::Exists) => return Ok(()),
        None => return Err(WalletError::Ledger("no results".into())),
        Some(_) => {}
    }
    let cause = results
        .iter()
        .copied()
        .find(|result| *result != R::LinkedEventFailed)
        .unwrap_or(R::LinkedEventFailed);
    Err(match cause {
        R::ExceedsCredits => WalletError::InsufficientFunds,
        other if other.as_str().starts_with("exists_with_different_") => WalletError::KeyReused,
        R::IdAlreadyFailed => WalletError::FailedBefore(cause),
        other => WalletError::Ledger(other.to_string()),
    })
}

/// `view` as the ledger posted it, or why it did not: the head of the chain names the
/// operation, and its timestamp is the transfer's (a retry finds the first one's).
fn posted_view(
    view: &TransferView,
    results: &[CreateTransferResult],
    timestamps: &[u64],
) -> Result<TransferView, WalletError> {
    chain_outcome(results)?;
    let created_at = timestamps.first().copied().filter(|timestamp| *timestamp > 0);
    let created_at =
        created_at.ok_or_else(|| WalletError::Ledger("a posted transfer has no timestamp".into()))?;
    Ok(TransferView { created_at, ..view.clone() })
}

/// The answer of a keyed request for the transfer `view` describes, rendered in its batch.
fn keyed(view: &TransferView, answer: Option<Answer>) -> Option<KeyedResponse> {
    let answer = answer?;
    let view = view.clone();
    let render = answer.render;
    Some(KeyedResponse {
        key: answer.key,
        created_at: store::now_ns(),
        draft: ResponseDraft::AfterBatch(Arc::new(move |results, timestamps| {
            render(posted_view(&view, results, timestamps))
        })),
    })
}

/// The answer the batch remembered; an error when it rendered none (a failure of ours).
fn remembered(view: &TransferView, noted: Noted) -> Result<StoredResponse, WalletError> {
    match noted.response {
        Some(response) => Ok(response),
        None => Err(posted_view(view, &noted.results, &noted.timestamps)
            .err()
            .unwrap_or_else(|| WalletError::Ledger("the batch rendered no answer".into()))),
    }
}

/// The wallet service. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct Wallets {
    pub(super) store: Store,
    pipeline: CommitPipeline,
    fees: Fees,
    /// System accounts known to exist, so each is created once per process.
    system_accounts: Mutex<HashSet<u128>>,
    /// Wallet facts by id (bounded by [`WALLET_FACTS_CACHED_MAX`]).
    facts: Mutex<HashMap<Uuid, WalletFacts>>,
}

/// The ledger account of a wallet: what creating the wallet writes, and what `coffer
/// verify` expects to find. No wallet may spend more than it holds (a credit card holds
/// its credit line); every wallet keeps its balance history.
pub fn wallet_account(id: u128, customer_id: Uuid, currency: Currency, wallet_type: WalletType) -> Account {
    let type_index = WalletType::ALL.iter().position(|t| *t == wallet_type).expect("listed") as u16;
    Account {
        id,
        ledger: currency.ledger(),
        code: account_code::WALLET_BASE + type_index,
        flags: AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS.union(AccountFlags::HISTORY),
        user_data_128: customer_id.as_u128(),
        ..Default::default()
    }
}

impl Wallets {
    pub fn new(store: Store, pipeline: CommitPipeline) -> Self {
        Self::with_fees(store, pipeline, Fees::default())
    }

    pub fn with_fees(store: Store, pipeline: CommitPipeline, fees: Fees) -> Self {
        assert!(
            [fees.transfer_bps, fees.top_up_bps, fees.withdrawal_bps].iter().all(|bps| *bps <= FEE_BPS_MAX)
        );
        Self {
            store,
            pipeline,
            fees,
            system_accounts: Mutex::new(HashSet::new()),
            facts: Mutex::new(HashMap::new()),
        }
    }

    pub fn fees(&self) -> Fees {
        self.fees
    }

    /// Appends the fee on `main` (paid by `payer`) to a chain, linking `main` to it. A
    /// pending `main` gets a pending fee, posted or voided with it. Returns whether a fee
    /// was added.
    pub async fn add_fee(
        &self,
        transfers: &mut Vec<Transfer>,
        notes: &mut Vec<TransferNote>,
        payer: u128,
        currency: Currency,
        bps: u32,
    ) -> Result<bool, WalletError> {
        let main = *transfers.last().expect("a chain has its operation first");
        let amount = Fees::of(main.amount, bps);
        if amount == 0 {
            return Ok(false);
        }
        let fees = self.system_account(currency, account_code::FEES).await?;
        transfers.last_mut().expect("checked").flags = main.flags.union(ledger::TransferFlags::LINKED);
        let fee = Transfer {
            id: super::derive_id(Uuid::from_u128(main.id), "fee", ""),
            debit_account_id: payer,
            credit_account_id: fees,
            amount,
            ledger: currency.ledger(),
            code: transfer_code::FEE,
            flags: if main.flags.contains(ledger::TransferFlags::PENDING) {
                ledger::TransferFlags::PENDING
            } else {
                ledger::TransferFlags::empty()
            },
            user_data_128: main.user_data_128,
            ..Default::default()
        };
        notes.push(TransferNote { transfer_id: fee.id, kind: NoteKind::Fee, description: None });
        transfers.push(fee);
        Ok(true)
    }

    async fn submit(&self, command: Command) -> Result<Outcome, WalletError> {
        Ok(self.pipeline.submit(command).await?)
    }

    async fn create_accounts(&self, accounts: Vec<Account>) -> Result<Vec<CreateAccountResult>, WalletError> {
        match self.submit(Command::CreateAccounts(accounts)).await? {
            Outcome::Accounts(results) => Ok(results),
            other => Err(WalletError::Ledger(format!("unexpected outcome {other:?}"))),
        }
    }

    async fn create_transfers(
        &self,
        transfers: Vec<Transfer>,
        notes: Vec<TransferNote>,
        events: Vec<EventDraft>,
        response: Option<KeyedResponse>,
    ) -> Result<Noted, WalletError> {
        let count = transfers.len();
        match self
            .submit(Command::CreateTransfersWithNotes { transfers, notes, events, response, payments: None })
            .await?
        {
            Outcome::Noted(noted) if noted.results.len() == count => Ok(noted),
            other => Err(WalletError::Ledger(format!("unexpected outcome {other:?}"))),
        }
    }

    /// The facts of wallet `id`, from memory after the first read.
    pub async fn facts(&self, id: Uuid) -> Result<Option<WalletFacts>, WalletError> {
        if let Some(facts) = self.facts.lock().expect("not poisoned").get(&id) {
            return Ok(Some(facts.clone()));
        }
        let Some(wallet) = self.store.wallet(id).await? else { return Ok(None) };
        let facts = WalletFacts::from(&wallet);
        let mut cache = self.facts.lock().expect("not poisoned");
        if cache.len() >= WALLET_FACTS_CACHED_MAX {
            cache.clear();
        }
        cache.insert(id, facts.clone());
        Ok(Some(facts))
    }

    /// The wallet's facts, if `customer_id` owns it (someone else's wallet is "not found").
    pub async fn owned_facts(&self, customer_id: Uuid, wallet_id: Uuid) -> Result<WalletFacts, WalletError> {
        match self.facts(wallet_id).await? {
            Some(wallet) if wallet.customer_id == customer_id => Ok(wallet),
            _ => Err(WalletError::WalletNotFound),
        }
    }

    /// The id of a per-currency system account, created on first use. Its id is derived
    /// from the currency and its kind, so every node finds the same account.
    pub async fn system_account(&self, currency: Currency, code: u16) -> Result<u128, WalletError> {
        let id = super::derive_id(Uuid::nil(), "system-account", &format!("{}:{code}", currency.code()));
        if self.system_accounts.lock().expect("not poisoned").contains(&id) {
            return Ok(id);
        }
        let account = Account { id, ledger: currency.ledger(), code, ..Default::default() };
        match self.create_accounts(vec![account]).await?[..] {
            [CreateAccountResult::Ok | CreateAccountResult::Exists] => {
                self.system_accounts.lock().expect("not poisoned").insert(id);
                Ok(id)
            }
            [other] => Err(WalletError::Ledger(format!("system account: {other}"))),
            _ => Err(WalletError::Ledger("one result per account".into())),
        }
    }

    /// Creates a wallet with the id `id` (derived by the caller from the request's
    /// idempotency key, so a retry finds the wallet it made before).
    pub async fn create(
        &self,
        customer_id: Uuid,
        id: u128,
        currency: Currency,
        wallet_type: WalletType,
        name: Option<String>,
        credit_limit: u64,
    ) -> Result<WalletRow, WalletError> {
        if credit_limit > 0 && wallet_type != WalletType::CreditCard {
            return Err(WalletError::CreditLimitNotAllowed);
        }
        let wallet_id = Uuid::from_u128(id);
        if let Some(existing) = self.store.wallet(wallet_id).await? {
            return if existing.customer_id == customer_id {
                Ok(existing)
            } else {
                Err(WalletError::WalletNotFound)
            };
        }
        let held = self.store.wallet_count(customer_id).await?;
        if held >= store::WALLETS_PER_CUSTOMER_MAX as u64 {
            return Err(WalletError::TooManyWallets(store::WALLETS_PER_CUSTOMER_MAX));
        }
        let account = wallet_account(id, customer_id, currency, wallet_type);
        match self.create_accounts(vec![account]).await?[..] {
            [CreateAccountResult::Ok | CreateAccountResult::Exists] => {}
            [other] => return Err(WalletError::Ledger(format!("wallet account: {other}"))),
            _ => return Err(WalletError::Ledger("one result per account".into())),
        }
        if credit_limit > 0 {
            let lines = self.system_account(currency, account_code::CREDIT_LINES).await?;
            let grant = Transfer {
                id: super::derive_id(wallet_id, "credit-line", ""),
                debit_account_id: lines,
                credit_account_id: id,
                amount: credit_limit,
                ledger: currency.ledger(),
                code: transfer_code::CREDIT_LINE,
                ..Default::default()
            };
            let note = TransferNote { transfer_id: grant.id, kind: NoteKind::CreditLine, description: None };
            match self.create_transfers(vec![grant], vec![note], Vec::new(), None).await?.results[..] {
                [CreateTransferResult::Ok | CreateTransferResult::Exists] => {}
                [other] => return Err(WalletError::Ledger(format!("credit line: {other}"))),
                _ => return Err(WalletError::Ledger("one result per transfer".into())),
            }
        }
        let created = events::event(
            EventType::WalletCreated,
            Some(customer_id),
            &format!("wallets/{wallet_id}"),
            &events::WalletCreatedData {
                customer_id,
                wallet_id,
                currency: currency.code().into(),
                wallet_type: wallet_type.into(),
                name: name.as_deref().map(Into::into),
                credit_limit,
            },
        );
        self.store
            .insert_wallet(
                &NewWallet {
                    id: wallet_id,
                    customer_id,
                    currency: currency.code().to_owned(),
                    wallet_type,
                    name,
                    credit_limit,
                    created_at: store::now_ns(),
                },
                &[created],
            )
            .await?;
        self.store.wallet(wallet_id).await?.ok_or(WalletError::WalletNotFound)
    }

    /// The wallet a transfer from `from` to `to` lands in: another wallet, in `from`'s
    /// currency (a customer receives in their default wallet of that currency).
    pub async fn destination(&self, from: &WalletFacts, to: Recipient) -> Result<WalletFacts, WalletError> {
        let to = match to {
            Recipient::Wallet(wallet_id) => {
                self.facts(wallet_id).await?.ok_or(WalletError::WalletNotFound)?
            }
            Recipient::Customer(recipient) => WalletFacts::from(
                &self
                    .store
                    .default_wallet(recipient, &from.currency)
                    .await?
                    .ok_or(WalletError::RecipientNotFound)?,
            ),
        };
        if to.id == from.id {
            return Err(WalletError::SameWallet);
        }
        if to.currency != from.currency {
            return Err(WalletError::CurrencyMismatch);
        }
        Ok(to)
    }

    /// The customer registered under `email`, to receive a transfer.
    pub async fn recipient_by_email(&self, email: &Email) -> Result<Uuid, WalletError> {
        let customer = self.store.customer_by_email(email.as_str()).await?;
        customer.map(|customer| customer.id).ok_or(WalletError::RecipientNotFound)
    }

    /// The wallet, if `customer_id` owns it (someone else's wallet is "not found").
    pub async fn owned(&self, customer_id: Uuid, wallet_id: Uuid) -> Result<WalletRow, WalletError> {
        match self.store.wallet(wallet_id).await? {
            Some(wallet) if wallet.customer_id == customer_id => Ok(wallet),
            _ => Err(WalletError::WalletNotFound),
        }
    }

    /// One page of the customer's wallets, oldest first.
    pub async fn list(
        &self,
        customer_id: Uuid,
        after: Option<(u64, Uuid)>,
        limit: u32,
    ) -> Result<Vec<WalletRow>, WalletError> {
        Ok(self.store.customer_wallets(customer_id, after, limit).await?)
    }

    /// Moves money from one of the customer's wallets. `id` is the ledger transfer id,
    /// derived by the caller from the idempotency key.
    pub async fn transfer(
        &self,
        customer_id: Uuid,
        id: u128,
        request: TransferRequest,
    ) -> Result<TransferView, WalletError> {
        let (view, noted) = self.submit_transfer(customer_id, id, request, None).await?;
        posted_view(&view, &noted.results, &noted.timestamps)
    }

    /// [`Wallets::transfer`] for a keyed request: its answer, whatever the ledger decided
    /// (the transfer, or a refusal such as insufficient funds), is rendered and remembered
    /// under its key in the batch that decides it, and returned. An error here is one
    /// decided before the batch (an unknown wallet), or a failure of ours.
    #[tracing::instrument(name = "wallets.transfer", skip_all)]
    pub async fn transfer_answered(
        &self,
        customer_id: Uuid,
        id: u128,
        request: TransferRequest,
        answer: Answer,
    ) -> Result<StoredResponse, WalletError> {
        let (view, noted) = self.submit_transfer(customer_id, id, request, Some(answer)).await?;
        remembered(&view, noted)
    }

    /// Builds and commits a P2P transfer; the view holds everything but the timestamp.
    async fn submit_transfer(
        &self,
        customer_id: Uuid,
        id: u128,
        request: TransferRequest,
        answer: Option<Answer>,
    ) -> Result<(TransferView, Noted), WalletError> {
        let from = self.owned_facts(customer_id, request.from_wallet_id).await?;
        let currency = Currency::parse(&from.currency).ok_or(WalletError::CurrencyNotSupported)?;
        let to = self.destination(&from, request.to).await?;
        let transfer = Transfer {
            id,
            debit_account_id: from.id.as_u128(),
            credit_account_id: to.id.as_u128(),
            amount: request.amount,
            ledger: currency.ledger(),
            code: transfer_code::TRANSFER,
            user_data_128: customer_id.as_u128(),
            ..Default::default()
        };
        let mut transfers = vec![transfer];
        let mut notes = vec![TransferNote {
            transfer_id: id,
            kind: NoteKind::Transfer,
            description: request.description.clone(),
        }];
        self.add_fee(&mut transfers, &mut notes, from.id.as_u128(), currency, self.fees.transfer_bps).await?;
        let facts = TransferFacts {
            transfer_id: id,
            kind: EventType::TransferPosted,
            operation: TransferOperation::Transfer,
            amount: request.amount,
            currency,
            description: request.description.as_deref(),
        };
        let drafts = events::transfer_drafts(
            &facts,
            &[
                Leg { wallet: &from, direction: Direction::Out, counterparty: Some(to.id) },
                Leg { wallet: &to, direction: Direction::In, counterparty: Some(from.id) },
            ],
        );
        // Everything but the ledger's timestamp is known now.
        let view = TransferView {
            id: Uuid::from_u128(id),
            status: "posted",
            amount: request.amount,
            currency,
            from_wallet_id: from.id,
            to_wallet_id: to.id,
            description: request.description,
            created_at: 0,
        };
        let noted = self.create_transfers(transfers, notes, drafts, keyed(&view, answer)).await?;
        Ok((view, noted))
    }

    /// Pays a merchant from one of the customer's wallets: wallet → the currency's
    /// merchant-settlement account, with the transfer fee if one is set. `id` is the ledger
    /// transfer id, derived by the caller from the idempotency key.
    #[tracing::instrument(name = "wallets.pay_merchant", skip_all)]
    pub async fn pay_merchant(
        &self,
        customer_id: Uuid,
        id: u128,
        wallet_id: Uuid,
        amount: u64,
        description: &str,
    ) -> Result<(WalletRow, u64), WalletError> {
        let from = self.owned(customer_id, wallet_id).await?;
        let currency = Currency::parse(&from.currency).ok_or(WalletError::CurrencyNotSupported)?;
        let merchants = self.system_account(currency, account_code::MERCHANT_SETTLEMENT).await?;
        let payment = Transfer {
            id,
            debit_account_id: from.id.as_u128(),
            credit_account_id: merchants,
            amount,
            ledger: currency.ledger(),
            code: transfer_code::PAYMENT,
            user_data_128: customer_id.as_u128(),
            ..Default::default()
        };
        let mut transfers = vec![payment];
        let mut notes = vec![TransferNote {
            transfer_id: id,
            kind: NoteKind::Payment,
            description: Some(description.to_owned()),
        }];
        self.add_fee(&mut transfers, &mut notes, from.id.as_u128(), currency, self.fees.transfer_bps).await?;
        let facts = TransferFacts {
            transfer_id: id,
            kind: EventType::TransferPosted,
            operation: TransferOperation::Payment,
            amount,
            currency,
            description: Some(description),
        };
        let drafts = events::transfer_drafts(
            &facts,
            &[Leg { wallet: &WalletFacts::from(&from), direction: Direction::Out, counterparty: None }],
        );
        let noted = self.create_transfers(transfers, notes, drafts, None).await?;
        chain_outcome(&noted.results)?;
        Ok((from, noted.timestamps[0]))
    }

    /// Reverses a P2P transfer (an admin's decision: a dispute, a mistake): a new transfer
    /// of the same amount from the recipient's wallet back to the sender's, never an edit
    /// of the original. A transfer is reversed at most once: the reversal's ledger id is
    /// derived from the original's, so a second request finds the first reversal.
    pub async fn reverse(&self, original: Uuid) -> Result<TransferView, WalletError> {
        let (view, noted) = self.submit_reversal(original, None).await?;
        posted_view(&view, &noted.results, &noted.timestamps)
    }

    /// [`Wallets::reverse`] for a keyed request, its answer remembered in the batch that
    /// decides it (see [`Wallets::transfer_answered`]).
    #[tracing::instrument(name = "wallets.reverse", skip_all)]
    pub async fn reverse_answered(
        &self,
        original: Uuid,
        answer: Answer,
    ) -> Result<StoredResponse, WalletError> {
        let (view, noted) = self.submit_reversal(original, Some(answer)).await?;
        remembered(&view, noted)
    }

    async fn submit_reversal(
        &self,
        original: Uuid,
        answer: Option<Answer>,
    ) -> Result<(TransferView, Noted), WalletError> {
        let Some(transfer) = self.store.transfer(original.as_u128()).await? else {
            return Err(WalletError::TransferNotFound);
        };
        if transfer.code != transfer_code::TRANSFER {
            return Err(WalletError::TransferNotFound);
        }
        let currency = Currency::from_ledger(transfer.ledger).ok_or(WalletError::CurrencyNotSupported)?;
        // One reversal per transfer, whoever asks and with whatever key: its ledger id is
        // derived from the original alone.
        let reversal_id = super::derive_id(original, "reversal", "");
        let reversal = Transfer {
            id: reversal_id,
            debit_account_id: transfer.credit_account_id,
            credit_account_id: transfer.debit_account_id,
            amount: transfer.amount,
            ledger: transfer.ledger,
            code: transfer_code::REVERSAL,
            user_data_128: original.as_u128(),
            ..Default::default()
        };
        let note = TransferNote {
            transfer_id: reversal_id,
            kind: NoteKind::Reversal,
            description: Some(format!("reversal of {original}")),
        };
        let (payer, payee) = (
            self.facts(Uuid::from_u128(reversal.debit_account_id)).await?,
            self.facts(Uuid::from_u128(reversal.credit_account_id)).await?,
        );
        let description = format!("reversal of {original}");
        let facts = TransferFacts {
            transfer_id: reversal_id,
            kind: EventType::TransferPosted,
            operation: TransferOperation::Reversal,
            amount: reversal.amount,
            currency,
            description: Some(&description),
        };
        let mut legs = Vec::new();
        if let Some(payer) = &payer {
            legs.push(Leg {
                wallet: payer,
                direction: Direction::Out,
                counterparty: payee.as_ref().map(|w| w.id),
            });
        }
        if let Some(payee) = &payee {
            legs.push(Leg {
                wallet: payee,
                direction: Direction::In,
                counterparty: payer.as_ref().map(|w| w.id),
            });
        }
        let drafts = events::transfer_drafts(&facts, &legs);
        let view = TransferView {
            id: Uuid::from_u128(reversal_id),
            status: "posted",
            amount: reversal.amount,
            currency,
            from_wallet_id: Uuid::from_u128(reversal.debit_account_id),
            to_wallet_id: Uuid::from_u128(reversal.credit_account_id),
            description: Some(description),
            created_at: 0,
        };
        let noted = self.create_transfers(vec![reversal], vec![note], drafts, keyed(&view, answer)).await?;
        Ok((view, noted))
    }

    /// A P2P transfer the customer sent or received; `None` for anything else.
    pub async fn transfer_view(
        &self,
        customer_id: Uuid,
        id: Uuid,
    ) -> Result<Option<TransferView>, WalletError> {
        let Some(transfer) = self.store.transfer(id.as_u128()).await? else { return Ok(None) };
        if transfer.code != transfer_code::TRANSFER {
            return Ok(None);
        }
        let from = self.store.wallet(Uuid::from_u128(transfer.debit_account_id)).await?;
        let to = self.store.wallet(Uuid::from_u128(transfer.credit_account_id)).await?;
        let (Some(from), Some(to)) = (from, to) else { return Ok(None) };
        if from.customer_id != customer_id && to.customer_id != customer_id {
            return Ok(None);
        }
        let description = self.store.transfer_note(transfer.id).await?.and_then(|note| note.description);
        Ok(Some(TransferView {
            id,
            status: "posted",
            amount: transfer.amount,
            currency: Currency::from_ledger(transfer.ledger).ok_or(WalletError::CurrencyNotSupported)?,
            from_wallet_id: from.id,
            to_wallet_id: to.id,
            description,
            created_at: transfer.timestamp,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fees_round_down_and_never_exceed_the_amount() {
        assert_eq!(Fees::of(10_000, 150), 150);
        assert_eq!(Fees::of(99, 150), 1);
        assert_eq!(Fees::of(66, 150), 0);
        assert_eq!(Fees::of(ledger::AMOUNT_MAX, FEE_BPS_MAX), ledger::AMOUNT_MAX);
    }

    #[test]
    fn a_chain_speaks_through_its_head() {
        use CreateTransferResult as R;
        assert!(chain_outcome(&[R::Ok, R::Ok]).is_ok());
        assert!(chain_outcome(&[R::Exists, R::LinkedEventFailed]).is_ok(), "a retried chain");
        assert!(matches!(
            chain_outcome(&[R::LinkedEventFailed, R::ExceedsCredits]),
            Err(WalletError::InsufficientFunds)
        ));
        assert!(matches!(chain_outcome(&[R::ExceedsCredits]), Err(WalletError::InsufficientFunds)));
        assert!(matches!(chain_outcome(&[R::IdAlreadyFailed]), Err(WalletError::FailedBefore(_))));
        assert!(matches!(chain_outcome(&[R::ExistsWithDifferentAmount]), Err(WalletError::KeyReused)));
    }

    #[test]
    fn credit_card_balance_shows_the_debt_and_the_room_left() {
        let wallet = WalletRow {
            id: Uuid::nil(),
            customer_id: Uuid::nil(),
            currency: "USD".into(),
            wallet_type: WalletType::CreditCard,
            name: None,
            credit_limit: 1_000,
            created_at: 0,
            debits_pending: 50,
            debits_posted: 300,
            credits_pending: 0,
            credits_posted: 1_000,
        };
        assert_eq!(Balance::of(&wallet), Balance { posted: -300, pending: -50, available: 650 });
    }
}
