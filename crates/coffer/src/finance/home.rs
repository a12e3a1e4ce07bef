//! Figures in a customer's home currency (the `home_currency` preference): spending and
//! income in another currency are valued at the reference rate of the day they happened —
//! the rates recorded in `fx_rates` whenever rates are fetched (the maintenance worker
//! keeps each day's; a provider's history file fills earlier days) — and rounded half to
//! even at the minor unit, so neither side gains from rounding what is only a report.
//!
//! The rate of a day is the newest recorded on or before it that holds both currencies (a
//! day's file may lack one); a day before the first recorded rates takes the first ones.
//! Every rate used is shown with its day and source.
//! What cannot be valued (a currency the rate source does not publish, or no rates
//! recorded at all) is listed apart, as it is — never guessed, never dropped silently.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::Serialize;
use store::{CategoryTotal, FxRateRow};
use time::Duration;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{Finance, FinanceError};
use crate::fx::convert::{Rate, ReferenceRate};
use crate::wallets::Currency;

/// Nanoseconds in a day.
const DAY_NS: i64 = 86_400 * 1_000_000_000;
/// (merchant, currency, day) sums read at most to rank a period's merchants in the home
/// currency: the largest ones, far more than a month of one person's spending holds.
pub const MERCHANT_DAYS_MAX: u32 = 10_000;

/// A rate a home-currency figure was valued at.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, ToSchema)]
pub struct RateUsed {
    /// The currency valued.
    pub currency: String,
    /// The day the rate was published for (`YYYY-MM-DD`); spending of later days up to the
    /// next published day is valued at it too.
    pub rate_date: String,
    /// Units of the home currency per unit of `currency`, the mid rate (no spread).
    pub rate: String,
    /// Who published it: `sandbox`, or `ecb:` and the reference file.
    pub source: String,
}

/// Spending or income in a currency no recorded rate values.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct Unvalued {
    pub currency: String,
    /// Minor units of `currency`.
    pub total: i64,
    pub count: i64,
}

/// A period's category totals valued in one currency.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Valued {
    /// Per category, in the home currency.
    pub rows: Vec<CategoryTotal>,
    /// The rates used, with the category of what each valued.
    pub rates: Vec<(Uuid, RateUsed)>,
    /// What could not be valued, per category in its own currency.
    pub unvalued: Vec<CategoryTotal>,
}

/// The rates used and what was left unvalued for the categories `keep` accepts, over one
/// or more periods: each rate once, the unvalued summed per currency.
pub fn notes<'a>(
    periods: impl IntoIterator<Item = &'a Valued>,
    keep: impl Fn(Uuid) -> bool,
) -> (Vec<RateUsed>, Vec<Unvalued>) {
    let mut rates = BTreeSet::new();
    let mut unvalued: BTreeMap<&str, Unvalued> = BTreeMap::new();
    for valued in periods {
        rates.extend(valued.rates.iter().filter(|(id, _)| keep(*id)).map(|(_, rate)| rate.clone()));
        for row in valued.unvalued.iter().filter(|row| keep(row.category_id)) {
            let entry = unvalued
                .entry(&row.currency)
                .or_insert_with(|| Unvalued { currency: row.currency.clone(), ..Unvalued::default() });
            (entry.total, entry.count) = (entry.total.saturating_add(row.total), entry.count + row.count);
        }
    }
    (rates.into_iter().collect(), unvalued.into_values().collect())
}

/// One recorded day's rates: per currency, its rate against the base.
struct DayRates {
    base: String,
    rates: HashMap<String, (ReferenceRate, String)>,
}

/// Recorded rates by day, as [`store::Store::fx_rates_between`] reads them.
pub(crate) struct RateBook {
    days: BTreeMap<i64, DayRates>,
}

impl RateBook {
    fn of(rows: Vec<FxRateRow>) -> Self {
        let mut days: BTreeMap<i64, DayRates> = BTreeMap::new();
        for row in rows {
            let Some(rate) =
                u128::try_from(row.rate).ok().filter(|rate| *rate > 0).map(ReferenceRate::scaled)
            else {
                continue;
            };
            let day = days
                .entry(row.day)
                .or_insert_with(|| DayRates { base: row.base.clone(), rates: HashMap::new() });
            if day.base == row.base {
                day.rates.insert(row.currency, (rate, row.source));
            }
        }
        Self { days }
    }

    /// The rate of `day` from `from` to `to`, with the day it was published for and its
    /// source: from the newest recorded day on or before `day` that holds both currencies,
    /// else the first after it; `None` when no recorded day holds both.
    fn rate(&self, day: i64, from: Currency, to: Currency) -> Option<(Rate, i64, String)> {
        let both = |(published, rates): (&i64, &DayRates)| {
            let of = |currency: Currency| {
                if currency.code() == rates.base {
                    Some((ReferenceRate::ONE, None))
                } else {
                    rates.rates.get(currency.code()).map(|(rate, source)| (*rate, Some(source.clone())))
                }
            };
            let ((from_rate, from_source), (to_rate, to_source)) = (of(from)?, of(to)?);
            let source = from_source.or(to_source).unwrap_or_default();
            Some((Rate::cross(from, from_rate, to, to_rate), *published, source))
        };
        self.days.range(..=day).rev().find_map(both).or_else(|| self.days.range(day + 1..).find_map(both))
    }

    /// `amount` of currency `spent` on `day` valued in `to`, with the rate used; `None`
    /// when no recorded rate values it (or the value does not fit).
    fn value(&self, day: i64, spent: &str, to: Currency, amount: i64) -> Option<(i64, RateUsed)> {
        let spent = Currency::parse(spent)?;
        let (rate, published, source) = self.rate(day, spent, to)?;
        let used = RateUsed {
            currency: spent.code().to_owned(),
            rate_date: date_of(published),
            rate: rate.text(),
            source,
        };
        Some((rate.value_of(amount)?, used))
    }
}

/// `YYYY-MM-DD` of a day counted from 1970-01-01.
fn date_of(day: i64) -> String {
    time::OffsetDateTime::UNIX_EPOCH
        .date()
        .checked_add(Duration::days(day))
        .map_or_else(|| day.to_string(), |date| date.to_string())
}

/// The home currency a preferences text names, if any.
pub fn home_currency(preferences: &str) -> Option<Currency> {
    let preferences: serde_json::Value = serde_json::from_str(preferences).ok()?;
    Currency::parse(preferences.get("home_currency")?.as_str()?)
}

impl Finance {
    /// The customer's home currency, when they chose one.
    pub async fn home_currency(&self, customer_id: Uuid) -> Result<Option<Currency>, FinanceError> {
        let customer = self.store.customer_by_id(customer_id).await?;
        Ok(customer.and_then(|customer| home_currency(&customer.preferences)))
    }

    /// The category totals of `[from, to)` valued in `currency`: its own expenses as they
    /// are, the others' at the rate of their day.
    pub async fn valued_in(
        &self,
        customer_id: Uuid,
        currency: Currency,
        from: i64,
        to: i64,
    ) -> Result<Valued, FinanceError> {
        let mut by_category: BTreeMap<Uuid, (i64, i64)> = BTreeMap::new();
        for row in self.store.category_totals(customer_id, from, to).await? {
            if row.currency == currency.code() {
                let entry = by_category.entry(row.category_id).or_default();
                (entry.0, entry.1) = (entry.0 + row.total, entry.1 + row.count);
            }
        }
        let days = self.store.category_day_totals(customer_id, from, to, currency.code()).await?;
        let mut rates = BTreeSet::new();
        let mut unvalued: BTreeMap<(Uuid, String), (i64, i64)> = BTreeMap::new();
        if let (Some(first), Some(last)) = (days.first(), days.last()) {
            let book = RateBook::of(self.store.fx_rates_between(first.day, last.day).await?);
            for row in days {
                let (entry, amount) = match book.value(row.day, &row.currency, currency, row.total) {
                    Some((value, used)) => {
                        rates.insert((row.category_id, used));
                        (by_category.entry(row.category_id).or_default(), value)
                    }
                    None => (unvalued.entry((row.category_id, row.currency)).or_default(), row.total),
                };
                (entry.0, entry.1) = (entry.0.saturating_add(amount), entry.1 + row.count);
            }
        }
        let total = |currency: String, (category_id, (total, count)): (Uuid, (i64, i64))| CategoryTotal {
            currency,
            category_id,
            total,
            count,
        };
        Ok(Valued {
            rows: by_category.into_iter().map(|entry| total(currency.code().to_owned(), entry)).collect(),
            rates: rates.into_iter().collect(),
            unvalued: unvalued
                .into_iter()
                .map(|((category_id, spent), figures)| total(spent, (category_id, figures)))
                .collect(),
        })
    }

    /// The largest merchants of `[from, to)` among the expenses not in `excluded`
    /// categories, valued in `currency` (its own expenses as they are, the others at the
    /// rate of their day), largest first, at most `limit`; with the rates used. Reads the
    /// [`MERCHANT_DAYS_MAX`] largest (merchant, currency, day) sums; what no rate values
    /// is left out (the report's `unvalued` shows it).
    pub async fn valued_merchants(
        &self,
        customer_id: Uuid,
        currency: Currency,
        (from, to): (i64, i64),
        excluded: &[Uuid],
        limit: usize,
    ) -> Result<(Vec<(String, i64, i64)>, Vec<RateUsed>), FinanceError> {
        let rows = self.store.merchant_day_totals(customer_id, from, to, excluded, MERCHANT_DAYS_MAX).await?;
        let days = rows.iter().filter(|row| row.currency != currency.code()).map(|row| row.day);
        let book = match (days.clone().min(), days.max()) {
            (Some(first), Some(last)) => RateBook::of(self.store.fx_rates_between(first, last).await?),
            _ => RateBook::of(Vec::new()),
        };
        let mut rates = BTreeSet::new();
        let mut by_merchant: BTreeMap<String, (i64, i64)> = BTreeMap::new();
        for row in rows {
            let value = if row.currency == currency.code() {
                Some(row.total)
            } else {
                book.value(row.day, &row.currency, currency, row.total).map(|(value, used)| {
                    rates.insert(used);
                    value
                })
            };
            if let Some(value) = value {
                let entry = by_merchant.entry(row.merchant).or_default();
                (entry.0, entry.1) = (entry.0.saturating_add(value), entry.1 + row.count);
            }
        }
        let mut merchants: Vec<(String, i64, i64)> =
            by_merchant.into_iter().map(|(merchant, (total, count))| (merchant, total, count)).collect();
        merchants.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        merchants.truncate(limit);
        Ok((merchants, rates.into_iter().collect()))
    }

    /// `amount` of `spent` on the day of `at` (nanoseconds) valued in `currency`; `None`
    /// when no recorded rate values it.
    pub async fn value_on(
        &self,
        amount: i64,
        spent: &str,
        currency: Currency,
        at: i64,
    ) -> Result<Option<i64>, FinanceError> {
        let day = at.div_euclid(DAY_NS);
        let book = RateBook::of(self.store.fx_rates_between(day, day).await?);
        Ok(book.value(day, spent, currency, amount).map(|(value, _)| value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(day: i64, currency: &str, rate: i64, source: &str) -> FxRateRow {
        FxRateRow {
            day,
            currency: currency.into(),
            base: "EUR".into(),
            rate,
            source: source.into(),
            as_of: 0,
        }
    }

    #[test]
    fn a_day_takes_the_newest_rates_on_or_before_it_and_else_the_first() {
        let book = RateBook::of(vec![
            row(100, "USD", 1_000_000, "a"),
            row(100, "GBP", 800_000, "a"),
            row(103, "USD", 1_250_000, "b"),
        ]);
        let (usd, eur) = (Currency::parse("USD").unwrap(), Currency::parse("EUR").unwrap());
        let value = |day| {
            let (rate, published, source) = book.rate(day, usd, eur).unwrap();
            (rate.value_of(1_000).unwrap(), published, source)
        };
        assert_eq!(value(99), (1_000, 100, "a".into()), "before the first: the first");
        assert_eq!(value(102), (1_000, 100, "a".into()));
        assert_eq!(value(103), (800, 103, "b".into()));
        assert_eq!(value(500), (800, 103, "b".into()));
        let gbp = Currency::parse("GBP").unwrap();
        assert_eq!(book.rate(103, gbp, eur).unwrap().1, 100, "a day without GBP: the last day with it");
        assert!(book.rate(100, Currency::parse("KES").unwrap(), eur).is_none(), "not published");
        assert_eq!(book.rate(100, gbp, usd).unwrap().0.value_of(800).unwrap(), 1_000, "a cross rate");
        assert!(RateBook::of(Vec::new()).rate(1, usd, eur).is_none());
    }

    #[test]
    fn days_read_as_dates() {
        assert_eq!(date_of(0), "1970-01-01");
        assert_eq!(date_of(20_790), "2026-12-03");
    }

    #[test]
    fn the_preference_names_a_supported_currency() {
        assert_eq!(home_currency(r#"{"home_currency":"EUR"}"#), Currency::parse("EUR"));
        assert_eq!(home_currency(r#"{"home_currency":"XYZ"}"#), None);
        assert_eq!(home_currency("{}"), None);
    }
}
