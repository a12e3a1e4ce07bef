//! A wallet's history as its owner sees it: each ledger transfer touching the wallet,
//! named by what it was (the note written with it), signed from the wallet's side, with
//! the counterparty's role and the balance it left.
//!
//! The store reads the rows ([`OperationRow`]); [`Wallets::history`] adds what they need
//! from the ledger accounts and the wallets in one batched read of each.

use std::collections::HashMap;

use ledger::PendingStatus;
use serde::{Deserialize, Serialize};
use store::{NoteKind, OperationFilter, OperationRow};
use utoipa::ToSchema;
use uuid::Uuid;

use super::money::{Currency, account_code};
use super::{WalletError, Wallets};

/// What an operation was, from the wallet's side.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OperationKind {
    TransferIn,
    TransferOut,
    TopUp,
    Withdrawal,
    Fee,
    Reversal,
    /// A payment to a merchant (`POST /v1/wallets/{id}/payments`).
    Payment,
    /// A credit card wallet's line being opened.
    CreditLine,
    /// A currency conversion's leg: out of the wallet that sold, or into the one that
    /// bought (`conversion` has both legs).
    Conversion,
    /// A ledger transfer made outside the wallet API.
    Adjustment,
}

impl OperationKind {
    /// Every kind, in the order lists show them.
    pub const ALL: [Self; 10] = [
        Self::TransferIn,
        Self::TransferOut,
        Self::TopUp,
        Self::Withdrawal,
        Self::Fee,
        Self::Reversal,
        Self::Payment,
        Self::CreditLine,
        Self::Conversion,
        Self::Adjustment,
    ];

    /// Its name on the wire (as serialised).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::TransferIn => "transfer_in",
            Self::TransferOut => "transfer_out",
            Self::TopUp => "top_up",
            Self::Withdrawal => "withdrawal",
            Self::Fee => "fee",
            Self::Reversal => "reversal",
            Self::Payment => "payment",
            Self::CreditLine => "credit_line",
            Self::Conversion => "conversion",
            Self::Adjustment => "adjustment",
        }
    }

    /// The kind of a row: its transfer note's kind, and the side of the wallet.
    fn of(note: Option<NoteKind>, credit: bool) -> Self {
        match (note, credit) {
            (Some(NoteKind::Transfer), true) => Self::TransferIn,
            (Some(NoteKind::Transfer), false) => Self::TransferOut,
            (Some(NoteKind::TopUp), _) => Self::TopUp,
            (Some(NoteKind::Withdrawal), _) => Self::Withdrawal,
            (Some(NoteKind::Fee), _) => Self::Fee,
            (Some(NoteKind::Reversal), _) => Self::Reversal,
            (Some(NoteKind::Payment), _) => Self::Payment,
            (Some(NoteKind::CreditLine), _) => Self::CreditLine,
            (Some(NoteKind::Conversion), _) => Self::Conversion,
            (None, _) => Self::Adjustment,
        }
    }

    /// How to read only this kind: the note kind and which sides (debits, credits);
    /// `None` for the kind that has no note to select by.
    pub fn selection(self) -> Option<(NoteKind, bool, bool)> {
        Some(match self {
            Self::TransferIn => (NoteKind::Transfer, false, true),
            Self::TransferOut => (NoteKind::Transfer, true, false),
            Self::TopUp => (NoteKind::TopUp, false, true),
            Self::Withdrawal => (NoteKind::Withdrawal, true, false),
            Self::Fee => (NoteKind::Fee, true, false),
            Self::Reversal => (NoteKind::Reversal, true, true),
            Self::Payment => (NoteKind::Payment, true, false),
            Self::CreditLine => (NoteKind::CreditLine, true, true),
            Self::Conversion => (NoteKind::Conversion, true, true),
            Self::Adjustment => return None,
        })
    }
}

/// Where an operation stands: `posted`, or its pending transfer's status (the API's
/// word for `ledger::PendingStatus`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OperationStatus {
    Posted,
    Pending,
    Voided,
    Expired,
}

impl OperationStatus {
    /// Every status.
    pub const ALL: [Self; 4] = [Self::Posted, Self::Pending, Self::Voided, Self::Expired];

    /// Its name on the wire (as serialised).
    pub fn as_str(self) -> &'static str {
        PendingStatus::from(self).as_str()
    }
}

impl From<PendingStatus> for OperationStatus {
    fn from(status: PendingStatus) -> Self {
        match status {
            PendingStatus::Posted => Self::Posted,
            PendingStatus::Pending => Self::Pending,
            PendingStatus::Voided => Self::Voided,
            PendingStatus::Expired => Self::Expired,
        }
    }
}

impl From<OperationStatus> for PendingStatus {
    fn from(status: OperationStatus) -> Self {
        match status {
            OperationStatus::Posted => Self::Posted,
            OperationStatus::Pending => Self::Pending,
            OperationStatus::Voided => Self::Voided,
            OperationStatus::Expired => Self::Expired,
        }
    }
}

/// The role of the account on the other side.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CounterpartyKind {
    Wallet,
    CardSettlement,
    Payouts,
    Fees,
    CreditLines,
    /// The house's account in the currency, for a conversion's leg.
    Fx,
    /// Any other ledger account.
    Ledger,
}

impl CounterpartyKind {
    /// Its name on the wire (as serialised).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Wallet => "wallet",
            Self::CardSettlement => "card_settlement",
            Self::Payouts => "payouts",
            Self::Fees => "fees",
            Self::CreditLines => "credit_lines",
            Self::Fx => "fx",
            Self::Ledger => "ledger",
        }
    }

    fn of(code: u16) -> Self {
        match code {
            account_code::CARD_SETTLEMENT => Self::CardSettlement,
            account_code::PAYOUTS => Self::Payouts,
            account_code::FEES => Self::Fees,
            account_code::CREDIT_LINES => Self::CreditLines,
            account_code::FX_LIQUIDITY => Self::Fx,
            code if (account_code::WALLET_BASE..account_code::WALLET_BASE + 6).contains(&code) => {
                Self::Wallet
            }
            _ => Self::Ledger,
        }
    }
}

/// One line of a history.
#[derive(Clone, Debug)]
pub struct Operation {
    pub transfer_id: Uuid,
    pub wallet_id: Uuid,
    pub kind: OperationKind,
    /// Positive: money in; negative: money out. Minor units.
    pub amount: i64,
    /// Empty when the wallet's ledger names no currency Coffer knows.
    pub currency: String,
    pub status: OperationStatus,
    pub counterparty: CounterpartyKind,
    /// The other wallet, when the counterparty is one.
    pub counterparty_wallet_id: Option<Uuid>,
    pub description: Option<String>,
    /// The wallet's balance as its owner sees it right after this operation.
    pub balance_after: Option<i64>,
    /// Both legs of the conversion, when the operation is one.
    pub conversion: Option<Conversion>,
    pub timestamp: u64,
    /// Where the next page resumes (the row's timestamp and side).
    pub position: (u64, bool),
}

/// A currency conversion as its two legs show it: what was sold from which wallet, what
/// was bought into which, the fee and the rate.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct Conversion {
    /// The quote it executed (`GET /v1/fx/quotes/{id}`).
    pub quote_id: Uuid,
    pub sold: ConversionSide,
    pub bought: ConversionSide,
    /// Taken from the selling wallet besides the amount sold, in its currency.
    pub fee: u64,
    /// Units of the bought currency per unit of the sold one, as a decimal.
    pub rate: String,
}

/// One side of a conversion. Minor units.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct ConversionSide {
    pub wallet_id: Uuid,
    pub amount: u64,
    pub currency: String,
}

impl From<&store::FxQuoteRow> for Conversion {
    fn from(quote: &store::FxQuoteRow) -> Self {
        Self {
            quote_id: quote.id,
            sold: ConversionSide {
                wallet_id: quote.sell_wallet_id,
                amount: quote.sell_amount,
                currency: quote.sell_currency.clone(),
            },
            bought: ConversionSide {
                wallet_id: quote.buy_wallet_id,
                amount: quote.buy_amount,
                currency: quote.buy_currency.clone(),
            },
            fee: quote.fee,
            rate: quote.rate.clone(),
        }
    }
}

impl Wallets {
    /// A page of the history of one of `customer_id`'s wallets (or, without `wallet_id`,
    /// of all of them): the rows `filter` selects, as operations.
    pub async fn history(
        &self,
        customer_id: Uuid,
        wallet_id: Option<Uuid>,
        filter: OperationFilter,
    ) -> Result<Vec<Operation>, WalletError> {
        let wallets = match wallet_id {
            Some(wallet_id) => vec![self.owned(customer_id, wallet_id).await?],
            None => {
                self.store.customer_wallets(customer_id, None, store::WALLETS_PER_CUSTOMER_MAX as u32).await?
            }
        };
        let wallet_ids = wallets.iter().map(|wallet| wallet.id).collect();
        let rows = self.store.operations(&OperationFilter { wallet_ids, ..filter }).await?;
        let credit_limits: HashMap<Uuid, u64> =
            wallets.iter().map(|wallet| (wallet.id, wallet.credit_limit)).collect();
        let mut ids: Vec<u128> = rows.iter().map(|row| row.counterparty_account_id.as_u128()).collect();
        ids.extend(wallets.iter().map(|wallet| wallet.id.as_u128()));
        let accounts = self.store.accounts(&ids).await?;
        let account = |id: Uuid| accounts.iter().find(|account| account.id == id.as_u128());
        let legs: Vec<Uuid> = rows
            .iter()
            .filter(|row| row.kind == Some(NoteKind::Conversion))
            .map(|row| row.transfer_id)
            .collect();
        let conversions =
            if legs.is_empty() { Vec::new() } else { self.store.fx_conversions_of(&legs).await? };
        let conversion = |transfer: Uuid| {
            conversions
                .iter()
                .find(|quote| quote.sell_transfer_id == transfer || quote.buy_transfer_id == transfer)
                .map(Conversion::from)
        };
        Ok(rows
            .into_iter()
            .map(|row| {
                let conversion = conversion(row.transfer_id);
                let currency = account(row.wallet_id)
                    .and_then(|account| Currency::from_ledger(account.ledger))
                    .map_or_else(String::new, |currency| currency.code().to_owned());
                let counterparty = CounterpartyKind::of(
                    account(row.counterparty_account_id).map_or(0, |account| account.code),
                );
                let credit_limit = credit_limits.get(&row.wallet_id).copied().unwrap_or(0);
                Operation { conversion, ..operation(row, currency, counterparty, credit_limit) }
            })
            .collect())
    }
}

fn operation(
    row: OperationRow,
    currency: String,
    counterparty: CounterpartyKind,
    credit_limit: u64,
) -> Operation {
    let signed = |value: u64| i64::try_from(value).unwrap_or(i64::MAX);
    let position = row.position();
    Operation {
        transfer_id: row.transfer_id,
        wallet_id: row.wallet_id,
        kind: OperationKind::of(row.kind, row.credit),
        amount: if row.credit { signed(row.amount) } else { -signed(row.amount) },
        currency,
        status: row.status.into(),
        counterparty,
        counterparty_wallet_id: (counterparty == CounterpartyKind::Wallet)
            .then_some(row.counterparty_account_id),
        description: row.description,
        balance_after: row.balance_after.map(|[_, debits_posted, _, credits_posted]| {
            signed(credits_posted) - signed(debits_posted) - signed(credit_limit)
        }),
        conversion: None,
        timestamp: row.timestamp,
        position,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_what_serde_writes() {
        for kind in OperationKind::ALL {
            assert_eq!(serde_json::to_value(kind).unwrap(), kind.as_str());
            if let Some((note, debits, credits)) = kind.selection() {
                for credit in
                    [false, true].into_iter().filter(|credit| if *credit { credits } else { debits })
                {
                    assert_eq!(OperationKind::of(Some(note), credit), kind, "{note:?} read back");
                }
            }
        }
        for code in [
            0,
            account_code::FEES,
            account_code::PAYOUTS,
            account_code::WALLET_BASE,
            account_code::FX_LIQUIDITY,
        ] {
            let kind = CounterpartyKind::of(code);
            assert_eq!(serde_json::to_value(kind).unwrap(), kind.as_str());
        }
        for status in
            [PendingStatus::Posted, PendingStatus::Pending, PendingStatus::Voided, PendingStatus::Expired]
        {
            let status = OperationStatus::from(status);
            assert_eq!(serde_json::to_value(status).unwrap(), status.as_str());
            assert_eq!(OperationStatus::from(PendingStatus::from(status)), status);
        }
    }
}
