//! Currencies and the ledger's numbering of them.
//!
//! Each supported currency is one ledger, numbered by its ISO 4217 numeric code, with its
//! ISO exponent (minor units per major unit): USD has 2 (cents), JPY and RWF have 0.
//! Amounts everywhere are integers in minor units.

use std::fmt;

/// A supported currency. Built only through [`Currency::parse`] or the constants.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Currency {
    code: &'static str,
    ledger: u32,
    exponent: u8,
}

/// Every currency Coffer holds money in.
pub const CURRENCIES: [Currency; 7] = [
    Currency { code: "USD", ledger: 840, exponent: 2 },
    Currency { code: "EUR", ledger: 978, exponent: 2 },
    Currency { code: "GBP", ledger: 826, exponent: 2 },
    Currency { code: "JPY", ledger: 392, exponent: 0 },
    Currency { code: "KES", ledger: 404, exponent: 2 },
    Currency { code: "RWF", ledger: 646, exponent: 0 },
    Currency { code: "NGN", ledger: 566, exponent: 2 },
];

impl Currency {
    /// The currency with this ISO 4217 alphabetic code (upper case), if supported.
    pub fn parse(code: &str) -> Option<Self> {
        CURRENCIES.into_iter().find(|currency| currency.code == code)
    }

    /// The currency kept in `ledger`, if it is one of ours.
    pub fn from_ledger(ledger: u32) -> Option<Self> {
        CURRENCIES.into_iter().find(|currency| currency.ledger == ledger)
    }

    pub fn code(self) -> &'static str {
        self.code
    }

    /// The ledger that holds this currency.
    pub fn ledger(self) -> u32 {
        self.ledger
    }

    /// Minor units per major unit, as a power of ten.
    pub fn exponent(self) -> u8 {
        self.exponent
    }

    /// `minor` units as a decimal in major units, without the code: `-1234` cents is
    /// `-12.34`, 5 yen is `5`.
    pub fn major(self, minor: i128) -> String {
        let sign = if minor < 0 { "-" } else { "" };
        let minor = minor.unsigned_abs();
        if self.exponent == 0 {
            return format!("{sign}{minor}");
        }
        let scale = 10u128.pow(u32::from(self.exponent));
        format!("{sign}{}.{:0width$}", minor / scale, minor % scale, width = usize::from(self.exponent))
    }

    /// A positive amount typed in major units (`12.34`, `12.3`, `12`; for JPY only whole
    /// numbers) as minor units; `None` for anything else: a sign, more decimals than the
    /// currency has, separators, or more than `u64` holds.
    pub fn parse_major(self, text: &str) -> Option<u64> {
        let text = text.trim();
        let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
        let digits = |part: &str| part.bytes().all(|byte| byte.is_ascii_digit());
        if whole.is_empty()
            || !digits(whole)
            || !digits(fraction)
            || fraction.len() > usize::from(self.exponent)
        {
            return None;
        }
        if text.ends_with('.') {
            return None;
        }
        let scale = 10u64.checked_pow(u32::from(self.exponent))?;
        let padded = format!("{fraction:0<width$}", width = usize::from(self.exponent));
        let fraction: u64 = if padded.is_empty() { 0 } else { padded.parse().ok()? };
        whole.parse::<u64>().ok()?.checked_mul(scale)?.checked_add(fraction)
    }
}

/// An amount for people to read: `12345` of `USD` is `123.45 USD`; a code Coffer does not
/// hold is shown with the amount in minor units as it is.
pub fn shown(amount: impl Into<i128>, code: &str) -> String {
    let amount = amount.into();
    let text = Currency::parse(code).map_or_else(|| amount.to_string(), |currency| currency.major(amount));
    format!("{text} {code}")
}

impl fmt::Debug for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code)
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code)
    }
}

/// Ledger account codes (the account's type).
pub mod account_code {
    /// Customer wallets: 1 to 6, one per wallet type, in `WalletType::ALL` order.
    pub const WALLET_BASE: u16 = 1;
    /// Money owed by the card network: top-ups are debited from it.
    pub const CARD_SETTLEMENT: u16 = 100;
    /// Money on its way out to banks: withdrawals credit it.
    pub const PAYOUTS: u16 = 101;
    /// Fees Coffer's operator earned.
    pub const FEES: u16 = 102;
    /// Credit extended to credit-card wallets.
    pub const CREDIT_LINES: u16 = 103;
    /// Money owed to merchants for wallet payments.
    pub const MERCHANT_SETTLEMENT: u16 = 104;
    /// The house's position in a currency from conversions: a sale credits it, a purchase
    /// debits it (it may go below zero: the house pays out of its own funds).
    pub const FX_LIQUIDITY: u16 = 105;
}

/// Ledger transfer codes (the kind of movement), mirrored in transfer notes' `kind`.
pub mod transfer_code {
    pub const TRANSFER: u16 = 1;
    pub const TOP_UP: u16 = 2;
    pub const WITHDRAWAL: u16 = 3;
    pub const FEE: u16 = 4;
    pub const REVERSAL: u16 = 5;
    pub const CREDIT_LINE: u16 = 6;
    pub const PAYMENT: u16 = 7;
    /// A leg of a currency conversion.
    pub const CONVERSION: u16 = 8;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_typed_in_major_units_parse_to_minor_units() {
        let usd = Currency::parse("USD").unwrap();
        let jpy = Currency::parse("JPY").unwrap();
        assert_eq!(usd.parse_major("12.34"), Some(1234));
        assert_eq!(usd.parse_major(" 12.3 "), Some(1230));
        assert_eq!(usd.parse_major("12"), Some(1200));
        assert_eq!(usd.parse_major("0.01"), Some(1));
        assert_eq!(jpy.parse_major("500"), Some(500));
        for bad in
            ["", ".5", "12.", "12.345", "-1", "+1", "1,000", "1e3", "abc", "1.2.3", "99999999999999999999"]
        {
            assert_eq!(usd.parse_major(bad), None, "{bad:?}");
        }
        assert_eq!(jpy.parse_major("5.0"), None, "yen has no minor unit");
    }

    #[test]
    fn money_is_shown_in_major_units() {
        assert_eq!(shown(12345, "USD"), "123.45 USD");
        assert_eq!(shown(-5, "EUR"), "-0.05 EUR");
        assert_eq!(shown(500, "JPY"), "500 JPY");
        assert_eq!(shown(u64::MAX, "USD"), "184467440737095516.15 USD", "no overflow");
        assert_eq!(shown(7, "XYZ"), "7 XYZ", "a code Coffer does not hold");
    }

    #[test]
    fn amounts_show_in_major_units() {
        let usd = Currency::parse("USD").unwrap();
        assert_eq!(usd.major(1234), "12.34");
        assert_eq!(usd.major(5), "0.05");
        assert_eq!(usd.major(-1250), "-12.50");
        assert_eq!(usd.major(i128::from(u64::MAX)), "184467440737095516.15");
        assert_eq!(Currency::parse("JPY").unwrap().major(-5), "-5");
    }

    #[test]
    fn currencies_parse_and_map_to_distinct_ledgers() {
        assert_eq!(Currency::parse("JPY").unwrap().exponent(), 0);
        assert_eq!(Currency::parse("USD").unwrap().ledger(), 840);
        assert!(Currency::parse("usd").is_none(), "codes are upper case");
        assert!(Currency::parse("XXX").is_none());
        let mut ledgers: Vec<u32> = CURRENCIES.iter().map(|c| c.ledger()).collect();
        ledgers.sort_unstable();
        ledgers.dedup();
        assert_eq!(ledgers.len(), CURRENCIES.len());
        for currency in CURRENCIES {
            assert_eq!(Currency::from_ledger(currency.ledger()), Some(currency));
        }
    }
}
