//! The conversion service: rates from the provider (cached, refused when stale), quotes
//! offered and stored, a quote executed once as one linked chain, and the operators'
//! report of the house's positions.
//!
//! Execution writes, all or nothing (`docs/fx.md` has the picture):
//! sell wallet → the house's FX account in the sold currency (the sale, linked),
//! sell wallet → the fees account in the sold currency (the fee, linked, when there is one),
//! the house's FX account in the bought currency → buy wallet (the purchase).
//! The three transfer ids are derived from the quote's id, so a quote executes at most
//! once whoever asks and however often.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ledger::{CreateTransferResult, Transfer, TransferFlags};
use store::{Command, FxCurrencyTotals, FxQuoteRow, NoteKind, Outcome, Store, StoreError, TransferNote};
use uuid::Uuid;

use super::convert::{AmountError, Amounts, Fixed, Rate, amounts};
use super::rates::{RateError, RateProvider, Rates, age_s};
use crate::commit::{CommitError, CommitPipeline};
use crate::events::{self, EventType, FxConvertedData};
use crate::wallets::money::{account_code, transfer_code};
use crate::wallets::service::chain_outcome;
use crate::wallets::{Currency, WalletError, WalletFacts, Wallets, derive_id};

/// How long fetched rates are used before the provider is asked again.
const RATES_REFRESH: Duration = Duration::from_secs(60);

/// The conversion settings (`COFFER_FX_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FxSettings {
    /// Taken off the mid rate, in basis points.
    pub spread_bps: u32,
    /// Charged on the amount sold, in basis points, rounded down.
    pub fee_bps: u32,
    /// How long a quote may be executed.
    pub quote_ttl: Duration,
    /// Rates older than this are refused.
    pub max_age_s: u64,
}

impl Default for FxSettings {
    fn default() -> Self {
        Self { spread_bps: 50, fee_bps: 0, quote_ttl: Duration::from_secs(30), max_age_s: 4 * 24 * 3_600 }
    }
}

/// Why a conversion or a quote did not happen. Each maps to one stable API error code.
#[derive(Debug, thiserror::Error)]
pub enum FxError {
    #[error("no such wallet")]
    WalletNotFound,
    #[error("no such quote")]
    QuoteNotFound,
    #[error("you have no wallet in {0}")]
    NoWalletInCurrency(Currency),
    #[error("a conversion needs two different wallets")]
    SameWallet,
    #[error("both wallets hold {0}; a conversion is between currencies")]
    SameCurrency(Currency),
    #[error("the rate source has no rate for {0} → {1}")]
    PairNotQuoted(Currency, Currency),
    #[error("the rates are {age_s} s old, past the limit of {max_age_s} s; try again later")]
    RatesStale { age_s: u64, max_age_s: u64 },
    #[error("no rates could be had: {0}")]
    RatesUnavailable(String),
    #[error(transparent)]
    Amount(#[from] AmountError),
    #[error("the quote expired; ask for a new one")]
    QuoteExpired,
    #[error("the wallet does not hold enough money for the sale and its fee")]
    InsufficientFunds,
    #[error("the commit pipeline refused the write")]
    Commit(#[from] CommitError),
    #[error("the store failed")]
    Store(#[from] StoreError),
    #[error("the ledger answered {0} unexpectedly")]
    Ledger(String),
}

impl From<WalletError> for FxError {
    fn from(error: WalletError) -> Self {
        match error {
            WalletError::WalletNotFound => Self::WalletNotFound,
            WalletError::InsufficientFunds => Self::InsufficientFunds,
            WalletError::Commit(error) => Self::Commit(error),
            WalletError::Store(error) => Self::Store(error),
            other => Self::Ledger(other.to_string()),
        }
    }
}

/// Where the bought money goes.
#[derive(Clone, Copy, Debug)]
pub enum Target {
    Wallet(Uuid),
    /// The customer's default wallet in this currency.
    Currency(Currency),
}

/// A quote as asked for.
#[derive(Clone, Copy, Debug)]
pub struct QuoteRequest {
    pub from_wallet_id: Uuid,
    pub to: Target,
    pub fixed: Fixed,
}

/// The rates in force, as a customer may see them.
#[derive(Clone, Debug)]
pub struct RatesView {
    pub rates: Rates,
    pub age_s: u64,
}

/// One currency in the operators' report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Position {
    pub totals: FxCurrencyTotals,
    /// The FX account's balance in the ledger: credits − debits (positive: the house holds
    /// more of the currency than before its conversions).
    pub position: i128,
}

/// The conversion service. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct Fx {
    store: Store,
    pipeline: CommitPipeline,
    wallets: Arc<Wallets>,
    provider: Arc<dyn RateProvider>,
    settings: FxSettings,
    /// The last rates fetched, and when.
    cached: std::sync::Mutex<Option<(Instant, Rates)>>,
    /// Held while the provider is asked, so one fetch runs at a time.
    fetching: tokio::sync::Mutex<()>,
}

impl Fx {
    pub fn new(
        store: Store,
        pipeline: CommitPipeline,
        wallets: Arc<Wallets>,
        provider: Arc<dyn RateProvider>,
        settings: FxSettings,
    ) -> Self {
        assert!(settings.spread_bps < 10_000 && settings.fee_bps <= 10_000);
        Self {
            store,
            pipeline,
            wallets,
            provider,
            settings,
            cached: std::sync::Mutex::new(None),
            fetching: tokio::sync::Mutex::new(()),
        }
    }

    pub fn settings(&self) -> FxSettings {
        self.settings
    }

    /// The rates in force: fetched at most every minute (the last good set is kept when a
    /// fetch fails), refused when older than the limit.
    pub async fn rates(&self) -> Result<RatesView, FxError> {
        let cached = self.cached.lock().expect("not poisoned").clone();
        let rates = match cached {
            Some((at, rates)) if at.elapsed() < RATES_REFRESH => rates,
            stale => self.refresh(stale.map(|(_, rates)| rates)).await?,
        };
        let age_s = age_s(&rates, store::now_ns());
        if age_s > self.settings.max_age_s {
            return Err(FxError::RatesStale { age_s, max_age_s: self.settings.max_age_s });
        }
        Ok(RatesView { rates, age_s })
    }

    /// Asks the provider for rates, one fetch at a time and with no lock held while it
    /// runs (it may take seconds): a caller arriving meanwhile answers from the `stale`
    /// rates it has, or waits for the fetch when there are none. A failed fetch keeps
    /// `stale`.
    async fn refresh(&self, stale: Option<Rates>) -> Result<Rates, FxError> {
        let _fetching = match (self.fetching.try_lock(), &stale) {
            (Ok(fetching), _) => fetching,
            (Err(_), Some(rates)) => return Ok(rates.clone()),
            (Err(_), None) => self.fetching.lock().await,
        };
        let cached = self.cached.lock().expect("not poisoned").clone();
        if let Some((_, rates)) = cached.filter(|(at, _)| at.elapsed() < RATES_REFRESH) {
            return Ok(rates); // fetched while this caller waited
        }
        match self.provider.fetch().await {
            Ok(days) if !days.is_empty() => {
                if let Err(error) = self.store.record_fx_rates(&by_day(&days)).await {
                    tracing::warn!(%error, "recording the exchange rates of the day failed");
                }
                let rates = days.into_iter().next().expect("not empty");
                *self.cached.lock().expect("not poisoned") = Some((Instant::now(), rates.clone()));
                Ok(rates)
            }
            Ok(_) => Err(FxError::RatesUnavailable("the rate source published no rates".into())),
            Err(error) => {
                tracing::warn!(%error, "fetching exchange rates failed; keeping the last ones");
                stale.ok_or_else(|| {
                    FxError::RatesUnavailable(match error {
                        RateError::Unreachable(reason) | RateError::Unreadable(reason) => reason,
                    })
                })
            }
        }
    }

    /// Offers a quote for converting from one of the customer's wallets to another of
    /// theirs, valid for the configured time. Nothing moves until it is executed.
    #[tracing::instrument(name = "fx.quote", skip_all)]
    pub async fn quote(&self, customer_id: Uuid, request: QuoteRequest) -> Result<FxQuoteRow, FxError> {
        let from = self.wallets.owned_facts(customer_id, request.from_wallet_id).await?;
        let to = match request.to {
            Target::Wallet(id) => self.wallets.owned_facts(customer_id, id).await?,
            Target::Currency(currency) => WalletFacts::from(
                &self
                    .store
                    .default_wallet(customer_id, currency.code())
                    .await?
                    .ok_or(FxError::NoWalletInCurrency(currency))?,
            ),
        };
        let sell = currency(&from)?;
        let buy = currency(&to)?;
        if from.id == to.id {
            return Err(FxError::SameWallet);
        }
        if sell == buy {
            return Err(FxError::SameCurrency(sell));
        }
        let RatesView { rates, .. } = self.rates().await?;
        let (Some(sell_rate), Some(buy_rate)) = (rates.of(sell), rates.of(buy)) else {
            return Err(FxError::PairNotQuoted(sell, buy));
        };
        let rate = Rate::cross(sell, sell_rate, buy, buy_rate);
        let Amounts { sell: sell_amount, buy: buy_amount, fee, spread } =
            amounts(&rate, request.fixed, self.settings.spread_bps, self.settings.fee_bps)?;
        let id = Uuid::now_v7();
        let now = store::now_ns();
        let ttl = u64::try_from(self.settings.quote_ttl.as_nanos()).unwrap_or(u64::MAX);
        let quote = FxQuoteRow {
            id,
            customer_id,
            sell_wallet_id: from.id,
            buy_wallet_id: to.id,
            sell_currency: sell.code().into(),
            buy_currency: buy.code().into(),
            fixed: match request.fixed {
                Fixed::Sell(_) => "sell".into(),
                Fixed::Buy(_) => "buy".into(),
            },
            sell_amount,
            buy_amount,
            fee,
            spread,
            spread_bps: self.settings.spread_bps,
            mid_rate: rate.text(),
            rate: rate.text_after(self.settings.spread_bps),
            rate_source: rates.source,
            rate_as_of: rates.as_of,
            sell_transfer_id: Uuid::from_u128(leg_id(id, "sell")),
            buy_transfer_id: Uuid::from_u128(leg_id(id, "buy")),
            created_at: now,
            expires_at: now.saturating_add(ttl),
            executed_at: None,
        };
        self.store.insert_fx_quote(&quote).await?;
        Ok(quote)
    }

    /// The customer's quote `id` (someone else's is not found), executed or not.
    pub async fn get(&self, customer_id: Uuid, id: Uuid) -> Result<FxQuoteRow, FxError> {
        match self.store.fx_quote(id).await? {
            Some(quote) if quote.customer_id == customer_id => Ok(quote),
            _ => Err(FxError::QuoteNotFound),
        }
    }

    /// Executes the customer's quote `id` before it expires: the conversion, and whether
    /// this call made it (false: it had been executed before, and nothing moved now).
    #[tracing::instrument(name = "fx.execute", skip_all)]
    pub async fn execute(&self, customer_id: Uuid, id: Uuid) -> Result<(FxQuoteRow, bool), FxError> {
        let quote = self.get(customer_id, id).await?;
        if quote.executed_at.is_some() {
            return Ok((quote, false));
        }
        if store::now_ns() > quote.expires_at {
            return Err(FxError::QuoteExpired);
        }
        let from = self.wallets.facts(quote.sell_wallet_id).await?.ok_or(FxError::WalletNotFound)?;
        let to = self.wallets.facts(quote.buy_wallet_id).await?.ok_or(FxError::WalletNotFound)?;
        let (sell, buy) = (currency(&from)?, currency(&to)?);
        let house_sell = self.wallets.system_account(sell, account_code::FX_LIQUIDITY).await?;
        let house_buy = self.wallets.system_account(buy, account_code::FX_LIQUIDITY).await?;
        let leg =
            |id: u128, debit: Uuid, credit: u128, amount: u64, currency: Currency, code: u16| Transfer {
                id,
                debit_account_id: debit.as_u128(),
                credit_account_id: credit,
                amount,
                ledger: currency.ledger(),
                code,
                flags: TransferFlags::LINKED,
                user_data_128: quote.id.as_u128(),
                ..Default::default()
            };
        let sale = leg(
            quote.sell_transfer_id.as_u128(),
            from.id,
            house_sell,
            quote.sell_amount,
            sell,
            transfer_code::CONVERSION,
        );
        let description = format!(
            "{} {} → {} {}",
            sell.code(),
            sell.major(i128::from(quote.sell_amount)),
            buy.code(),
            buy.major(i128::from(quote.buy_amount))
        );
        let note = |transfer_id: u128, kind: NoteKind| TransferNote {
            transfer_id,
            kind,
            description: (kind == NoteKind::Conversion).then(|| description.clone()),
        };
        let mut transfers = vec![sale];
        let mut notes = vec![note(sale.id, NoteKind::Conversion)];
        if quote.fee > 0 {
            let fees = self.wallets.system_account(sell, account_code::FEES).await?;
            let fee = leg(leg_id(quote.id, "fee"), from.id, fees, quote.fee, sell, transfer_code::FEE);
            notes.push(note(fee.id, NoteKind::Fee));
            transfers.push(fee);
        }
        let purchase = Transfer {
            id: quote.buy_transfer_id.as_u128(),
            debit_account_id: house_buy,
            credit_account_id: to.id.as_u128(),
            amount: quote.buy_amount,
            ledger: buy.ledger(),
            code: transfer_code::CONVERSION,
            user_data_128: quote.id.as_u128(),
            ..Default::default()
        };
        notes.push(note(purchase.id, NoteKind::Conversion));
        transfers.push(purchase);
        let data = FxConvertedData {
            customer_id,
            quote_id: quote.id,
            sell_wallet_id: from.id,
            sell_currency: sell.code().into(),
            sell_amount: quote.sell_amount,
            fee: quote.fee,
            buy_wallet_id: to.id,
            buy_currency: buy.code().into(),
            buy_amount: quote.buy_amount,
            rate: quote.rate.as_str().into(),
        };
        let now = store::now_ns();
        let time = crate::rfc3339(now);
        let subject = format!("fx/quotes/{}", quote.id);
        let drafts = vec![
            events::riding(sale.id, EventType::FxConverted, Some(customer_id), &subject, &data),
            events::balance_draft(sale.id, &from, now, time.clone()),
            events::balance_draft(purchase.id, &to, now, time),
        ];
        let count = transfers.len();
        let command = Command::CreateTransfersWithNotes {
            transfers,
            notes,
            events: drafts,
            response: None,
            payments: None,
        };
        let noted = match self.pipeline.submit(command).await? {
            Outcome::Noted(noted) if noted.results.len() == count => noted,
            other => return Err(FxError::Ledger(format!("unexpected outcome {other:?}"))),
        };
        chain_outcome(&noted.results)?;
        let made = noted.results[0] == CreateTransferResult::Ok;
        let executed_at = noted.timestamps.first().copied().filter(|timestamp| *timestamp > 0);
        let executed_at =
            executed_at.ok_or_else(|| FxError::Ledger("an executed conversion has no timestamp".into()))?;
        Ok((FxQuoteRow { executed_at: Some(executed_at), ..quote }, made))
    }

    /// The operators' report: per currency, the FX account's position in the ledger and
    /// what the conversions sold, bought and earned in it.
    pub async fn positions(&self) -> Result<Vec<Position>, FxError> {
        let totals = self.store.fx_totals().await?;
        let mut positions = Vec::with_capacity(totals.len());
        for totals in totals {
            let currency = Currency::parse(&totals.currency)
                .ok_or_else(|| FxError::Ledger(format!("a quote in {}", totals.currency)))?;
            let id = self.wallets.system_account(currency, account_code::FX_LIQUIDITY).await?;
            let account = self.store.accounts(&[id]).await?.into_iter().next();
            let position = account
                .map_or(0, |account| i128::from(account.credits_posted) - i128::from(account.debits_posted));
            positions.push(Position { totals, position });
        }
        Ok(positions)
    }

    /// Forgets quotes never executed a day after they expired.
    pub async fn purge(&self, limit: u32) -> Result<u64, FxError> {
        let day = 24 * 3_600 * 1_000_000_000;
        Ok(self.store.purge_fx_quotes(store::now_ns().saturating_sub(day), limit).await?)
    }
}

/// The ledger id of a quote's leg (`sell`, `buy`, `fee`).
fn leg_id(quote: Uuid, leg: &str) -> u128 {
    derive_id(quote, "fx", leg)
}

fn currency(wallet: &WalletFacts) -> Result<Currency, FxError> {
    Currency::parse(&wallet.currency)
        .ok_or_else(|| FxError::Ledger(format!("a wallet in {}", wallet.currency)))
}

/// Rows for `fx_rates`: each set's rates under the day (UTC) they were valid on.
fn by_day(days: &[Rates]) -> Vec<store::FxRateRow> {
    let mut rows = Vec::new();
    for rates in days {
        let day = i64::try_from(rates.as_of / (86_400 * 1_000_000_000)).unwrap_or(i64::MAX);
        let as_of = i64::try_from(rates.as_of).unwrap_or(i64::MAX);
        let mut currencies: Vec<_> = rates.rates.iter().collect();
        currencies.sort_by_key(|(currency, _)| currency.code());
        for (currency, rate) in currencies {
            rows.push(store::FxRateRow {
                day,
                currency: currency.code().to_owned(),
                base: rates.base.code().to_owned(),
                rate: i64::try_from(rate.value()).unwrap_or(i64::MAX),
                source: rates.source.clone(),
                as_of,
            });
        }
    }
    rows
}
