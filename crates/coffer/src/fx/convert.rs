//! The arithmetic of a conversion, exact in integers: no floating point touches money.
//!
//! A rate is kept as the two currencies' reference rates against one base (units of each
//! per base unit, as the provider publishes them, scaled by [`RATE_SCALE`]); the rate from
//! A to B is their ratio, never rounded. Only the final amounts are rounded, once, and
//! always **in the house's favour**: what the customer buys is rounded down, what they sell
//! for a fixed purchase is rounded up. Each currency's exponent is applied exactly (JPY and
//! RWF have none). The fee follows Coffer's rule for every fee: basis points of what the
//! customer sells, rounded down.

use crate::wallets::{Currency, service::Fees};

/// Decimal places a reference rate may carry: rates are integers scaled by 10^6.
pub const RATE_DECIMALS: u32 = 6;
pub const RATE_SCALE: u128 = 10u128.pow(RATE_DECIMALS);
/// Largest reference rate, in units per base unit (scaled it stays far from overflow).
pub const RATE_MAX: u128 = 10_000_000 * RATE_SCALE;
/// Largest amount a conversion may sell or buy, in minor units (10^15: ten trillion
/// dollars). With [`RATE_MAX`] every product below fits in a u128.
pub const AMOUNT_MAX: u64 = 1_000_000_000_000_000;
/// Basis points in a whole.
const BPS: u128 = 10_000;
/// Decimal places a rate is shown with.
const SHOWN_DECIMALS: u32 = 10;

/// One currency's reference rate: units of it per base unit, times [`RATE_SCALE`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReferenceRate(u128);

impl ReferenceRate {
    /// A published rate such as `1.0823`: positive, at most [`RATE_DECIMALS`] places.
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
        let digits = |part: &str| part.bytes().all(|byte| byte.is_ascii_digit());
        let dangling = text.ends_with('.');
        if dangling
            || whole.is_empty()
            || !digits(whole)
            || !digits(fraction)
            || fraction.len() > RATE_DECIMALS as usize
        {
            return None;
        }
        let places = fraction.len() as u32;
        let whole: u128 = whole.parse().ok()?;
        let fraction: u128 = if fraction.is_empty() { 0 } else { fraction.parse().ok()? };
        let scaled = whole.checked_mul(RATE_SCALE)? + fraction * 10u128.pow(RATE_DECIMALS - places);
        (scaled > 0 && scaled <= RATE_MAX).then_some(Self(scaled))
    }

    /// The base currency itself: one unit per unit.
    pub const ONE: Self = Self(RATE_SCALE);

    /// From a scaled integer (for built-in tables).
    pub const fn scaled(value: u128) -> Self {
        assert!(value > 0 && value <= RATE_MAX);
        Self(value)
    }

    /// The scaled integer (units per base unit × [`RATE_SCALE`]).
    pub const fn value(self) -> u128 {
        self.0
    }

    pub fn text(self) -> String {
        decimal(self.0, RATE_SCALE, RATE_DECIMALS)
    }
}

/// The rate between two currencies: units of `to` per unit of `from` in major units,
/// `to_rate / from_rate`, kept as that exact fraction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    pub from: Currency,
    pub to: Currency,
    numerator: u128,
    denominator: u128,
}

impl Rate {
    pub fn cross(from: Currency, from_rate: ReferenceRate, to: Currency, to_rate: ReferenceRate) -> Self {
        Self { from, to, numerator: to_rate.0, denominator: from_rate.0 }
    }

    /// The rate as a decimal, rounded down to ten places (for people; never used to
    /// compute an amount).
    pub fn text(&self) -> String {
        decimal(self.numerator, self.denominator, SHOWN_DECIMALS)
    }

    /// The rate after a spread of `spread_bps`, as a decimal (see [`Rate::text`]).
    pub fn text_after(&self, spread_bps: u32) -> String {
        let keep = BPS - u128::from(spread_bps);
        decimal(self.numerator * keep, self.denominator * BPS, SHOWN_DECIMALS)
    }

    /// Minor units of `to` for `amount` minor units of `from`, at this rate less
    /// `spread_bps`, rounded down. `None` past [`AMOUNT_MAX`].
    fn buys(&self, amount: u64, spread_bps: u32) -> Option<u64> {
        let (above, below) = self.minor_ratio(spread_bps);
        let value = u128::from(amount).checked_mul(above)? / below;
        u64::try_from(value).ok().filter(|value| *value <= AMOUNT_MAX)
    }

    /// Minor units of `from` that buy at least `amount` minor units of `to` at this rate
    /// less `spread_bps`, rounded up. `None` past [`AMOUNT_MAX`].
    fn costs(&self, amount: u64, spread_bps: u32) -> Option<u64> {
        let (above, below) = self.minor_ratio(spread_bps);
        let value = u128::from(amount).checked_mul(below)?.div_ceil(above);
        u64::try_from(value).ok().filter(|value| *value <= AMOUNT_MAX)
    }

    /// `amount` minor units of `from` valued in minor units of `to` at this rate with no
    /// spread, rounded half to even: a report's figure, where no money moves and rounding
    /// should favour neither side. `None` when it does not fit an i64.
    pub fn value_of(&self, amount: i64) -> Option<i64> {
        let (above, below) = self.minor_ratio(0);
        let magnitude = u128::from(amount.unsigned_abs()).checked_mul(above)?;
        let (whole, rest) = (magnitude / below, magnitude % below);
        let whole = match (rest * 2).cmp(&below) {
            std::cmp::Ordering::Greater => whole + 1,
            std::cmp::Ordering::Equal => whole + (whole % 2),
            std::cmp::Ordering::Less => whole,
        };
        let whole = i64::try_from(whole).ok()?;
        Some(if amount < 0 { -whole } else { whole })
    }

    /// The fraction that turns minor units of `from` into minor units of `to`:
    /// rate × (1 − spread) × 10^exp(to) / 10^exp(from), as (numerator, denominator).
    fn minor_ratio(&self, spread_bps: u32) -> (u128, u128) {
        assert!(u128::from(spread_bps) < BPS, "a spread below the whole");
        let keep = BPS - u128::from(spread_bps);
        let to_scale = 10u128.pow(u32::from(self.to.exponent()));
        let from_scale = 10u128.pow(u32::from(self.from.exponent()));
        (self.numerator * keep * to_scale, self.denominator * BPS * from_scale)
    }
}

/// What the customer fixes: the amount sold or the amount bought (minor units of that
/// side's currency).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fixed {
    Sell(u64),
    Buy(u64),
}

/// The amounts of a conversion, in minor units.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Amounts {
    /// Taken from the sell wallet into the house's account in `from` (the fee apart).
    pub sell: u64,
    /// Paid from the house's account in `to` into the buy wallet.
    pub buy: u64,
    /// Taken from the sell wallet as well, in `from`, to the fees account.
    pub fee: u64,
    /// What the spread earned the house, in `to`: the sold amount at the mid rate (rounded
    /// down) less what the customer bought.
    pub spread: u64,
}

/// Why amounts cannot be worked out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    #[error("the amount converts to nothing in the other currency")]
    TooSmall,
    #[error("the conversion exceeds the largest amount (10^15 minor units)")]
    TooLarge,
}

/// The amounts of converting at `rate` less `spread_bps`, with a fee of `fee_bps` on
/// the amount sold.
pub fn amounts(rate: &Rate, fixed: Fixed, spread_bps: u32, fee_bps: u32) -> Result<Amounts, AmountError> {
    let (sell, buy) = match fixed {
        Fixed::Sell(sell) => (sell, rate.buys(sell, spread_bps).ok_or(AmountError::TooLarge)?),
        Fixed::Buy(buy) => (rate.costs(buy, spread_bps).ok_or(AmountError::TooLarge)?, buy),
    };
    if sell == 0 || buy == 0 {
        return Err(AmountError::TooSmall);
    }
    if sell > AMOUNT_MAX || buy > AMOUNT_MAX {
        return Err(AmountError::TooLarge);
    }
    let fee = Fees::of(sell, fee_bps);
    if sell + fee > AMOUNT_MAX {
        return Err(AmountError::TooLarge);
    }
    let at_mid = rate.buys(sell, 0).ok_or(AmountError::TooLarge)?;
    Ok(Amounts { sell, buy, fee, spread: at_mid.saturating_sub(buy) })
}

/// `numerator / denominator` in decimal, rounded down to `places`, trailing zeros trimmed.
fn decimal(numerator: u128, denominator: u128, places: u32) -> String {
    let scale = 10u128.pow(places);
    let scaled = numerator * scale / denominator;
    let (whole, fraction) = (scaled / scale, scaled % scale);
    let fraction = format!("{fraction:0width$}", width = places as usize);
    let fraction = fraction.trim_end_matches('0');
    if fraction.is_empty() { whole.to_string() } else { format!("{whole}.{fraction}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn currency(code: &str) -> Currency {
        Currency::parse(code).unwrap()
    }

    fn rate(from: &str, from_rate: &str, to: &str, to_rate: &str) -> Rate {
        Rate::cross(
            currency(from),
            ReferenceRate::parse(from_rate).unwrap(),
            currency(to),
            ReferenceRate::parse(to_rate).unwrap(),
        )
    }

    #[test]
    fn reference_rates_parse_exactly() {
        assert_eq!(ReferenceRate::parse("1.0823"), Some(ReferenceRate(1_082_300)));
        assert_eq!(ReferenceRate::parse("160"), Some(ReferenceRate(160_000_000)));
        assert_eq!(ReferenceRate::parse(" 0.85203 "), Some(ReferenceRate(852_030)));
        for bad in ["", ".5", "1.", "-1", "0", "0.0000001", "1e3", "N/A", "1.2.3", "99999999"] {
            assert_eq!(ReferenceRate::parse(bad), None, "{bad:?}");
        }
        assert_eq!(ReferenceRate::parse("1.0823").unwrap().text(), "1.0823");
    }

    #[test]
    fn a_sale_buys_the_rounded_down_amount() {
        // 1 EUR = 1.08 USD = 160 JPY: 100.00 USD is 14,814.81… JPY, at a 0.5% spread
        // 14,740.74… → 14,740 yen (JPY has no minor unit).
        let usd_jpy = rate("USD", "1.08", "JPY", "160");
        assert_eq!(usd_jpy.text(), "148.1481481481");
        let quoted = amounts(&usd_jpy, Fixed::Sell(10_000), 50, 0).unwrap();
        assert_eq!(quoted, Amounts { sell: 10_000, buy: 14_740, fee: 0, spread: 74 });
        // And back: 14,740 yen at 0.00675 USD each, less 0.5%, is 98.9975… → 98.99 USD.
        let jpy_usd = rate("JPY", "160", "USD", "1.08");
        assert_eq!(amounts(&jpy_usd, Fixed::Sell(14_740), 50, 0).unwrap().buy, 9_899);
    }

    #[test]
    fn a_purchase_costs_the_rounded_up_amount_and_never_buys_less() {
        let usd_eur = rate("USD", "1.08", "EUR", "1");
        let quoted = amounts(&usd_eur, Fixed::Buy(10_000), 0, 0).unwrap();
        // 100 EUR at 1.08 USD each is exactly 108.00 USD.
        assert_eq!((quoted.sell, quoted.buy), (10_800, 10_000));
        for buy in [1, 7, 99, 12_345, 1_000_001] {
            let quoted = amounts(&usd_eur, Fixed::Buy(buy), 37, 0).unwrap();
            // What was charged buys at least what was promised, and a unit less would not.
            assert!(usd_eur.buys(quoted.sell, 37).unwrap() >= buy);
            assert!(usd_eur.buys(quoted.sell - 1, 37).unwrap() < buy);
        }
    }

    #[test]
    fn fees_are_basis_points_of_the_sale_rounded_down() {
        let usd_eur = rate("USD", "1.08", "EUR", "1");
        assert_eq!(amounts(&usd_eur, Fixed::Sell(10_099), 0, 100).unwrap().fee, 100);
    }

    #[test]
    fn dust_and_giants_are_refused() {
        let jpy_usd = rate("JPY", "160", "USD", "1.08");
        assert_eq!(amounts(&jpy_usd, Fixed::Sell(1), 0, 0), Err(AmountError::TooSmall));
        assert_eq!(amounts(&jpy_usd, Fixed::Sell(AMOUNT_MAX + 1), 0, 0), Err(AmountError::TooLarge));
        let usd_rwf = rate("USD", "0.000001", "RWF", "10000000");
        assert_eq!(amounts(&usd_rwf, Fixed::Sell(AMOUNT_MAX), 0, 0), Err(AmountError::TooLarge));
        assert_eq!(amounts(&usd_rwf, Fixed::Buy(AMOUNT_MAX), 0, 0).unwrap().sell, 10_000);
    }

    #[test]
    fn a_value_at_the_mid_rate_rounds_half_to_even() {
        // One dollar is half a euro: a cent is half a euro cent.
        let half = rate("USD", "2", "EUR", "1");
        let values: Vec<i64> = [1, 2, 3, 5, -3, 0].map(|cents| half.value_of(cents).unwrap()).into();
        assert_eq!(values, [0, 1, 2, 2, -2, 0]);
        // Exponents apply: 100 yen at 160 per euro and 1.08 dollars per euro is 67.5 cents.
        assert_eq!(rate("JPY", "160", "USD", "1.08").value_of(100), Some(68));
        assert_eq!(rate("USD", "1.08", "JPY", "160").value_of(i64::MAX), None, "too large for an i64");
    }

    #[test]
    fn every_pair_rounds_in_the_house_favour() {
        let table = [("USD", "1.08"), ("EUR", "1"), ("GBP", "0.85"), ("JPY", "160"), ("RWF", "1450")];
        for (from, from_rate) in table {
            for (to, to_rate) in table.iter().filter(|(to, _)| *to != from) {
                let pair = rate(from, from_rate, to, to_rate);
                for sell in [1, 3, 99, 1_000, 123_457] {
                    let Ok(quoted) = amounts(&pair, Fixed::Sell(sell), 25, 0) else { continue };
                    // Exact: buy = floor(sell × to/from × (1 − 0.0025) × 10^e(to) / 10^e(from)).
                    let (f, t) = (pair.from.exponent() as u32, pair.to.exponent() as u32);
                    let exact_above = u128::from(sell) * pair.numerator * 9_975 * 10u128.pow(t);
                    let exact_below = pair.denominator * 10_000 * 10u128.pow(f);
                    assert_eq!(u128::from(quoted.buy), exact_above / exact_below, "{from}→{to} {sell}");
                }
            }
        }
    }
}
