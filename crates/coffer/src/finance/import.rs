//! Bank-statement import: a CSV file with a column mapping, common date formats and a
//! decimal comma or point becomes categorised expenses. Each line is identified by a hash
//! of its date, amount, description, merchant and its occurrence among identical lines
//! of the file, so importing the same statement again adds nothing.

use serde::Deserialize;
use sha2::{Digest, Sha256};
use time::{Date, Month, PrimitiveDateTime, Time};
use utoipa::ToSchema;

use crate::wallets::Currency;

/// Lines a statement may have at most.
pub const LINES_MAX: usize = 10_000;

/// How dates are written.
#[derive(Clone, Copy, Debug, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum DateFormat {
    /// 2026-03-31 (an RFC 3339 time is accepted too).
    Iso,
    /// 31/03/2026
    DayMonthYear,
    /// 03/31/2026
    MonthDayYear,
    /// 31.03.2026
    DayMonthYearDots,
}

/// Which columns hold what (header names).
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Columns {
    pub date: String,
    pub amount: String,
    pub description: Option<String>,
    pub merchant: Option<String>,
    /// A currency column; without it, every line is in the import's currency.
    pub currency: Option<String>,
}

/// One statement line, parsed (the same shape as a synced bank transaction).
pub use super::StatementLine as Line;

/// A line that could not be read, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejected {
    pub line: usize,
    pub reason: String,
}

/// Settings of one import.
#[derive(Clone, Debug)]
pub struct Format {
    pub columns: Columns,
    pub date_format: DateFormat,
    /// `.` or `,`.
    pub decimal: char,
    /// `,` or `;`.
    pub delimiter: u8,
    pub currency: Currency,
}

/// `text` as minor units of a currency with `exponent` decimals.
pub fn parse_amount(text: &str, decimal: char, exponent: u8) -> Result<i64, String> {
    let cleaned: String = text.trim().chars().filter(|c| !c.is_whitespace() && *c != '\'').collect();
    let (negative, digits) = match cleaned.strip_prefix('-') {
        Some(rest) => (true, rest.to_owned()),
        None => match cleaned.strip_prefix('(').and_then(|rest| rest.strip_suffix(')')) {
            Some(rest) => (true, rest.to_owned()),
            None => (false, cleaned.strip_prefix('+').unwrap_or(&cleaned).to_owned()),
        },
    };
    let thousands = if decimal == ',' { '.' } else { ',' };
    let digits: String = digits.chars().filter(|c| *c != thousands).collect();
    let (whole, fraction) = match digits.split_once(decimal) {
        Some((whole, fraction)) => (whole.to_owned(), fraction.to_owned()),
        None => (digits.clone(), String::new()),
    };
    if whole.is_empty() && fraction.is_empty()
        || !whole.chars().all(|c| c.is_ascii_digit())
        || !fraction.chars().all(|c| c.is_ascii_digit())
    {
        return Err(format!("`{}` is not an amount", text.trim()));
    }
    if fraction.len() > usize::from(exponent) {
        return Err(format!("`{}` has more than {exponent} decimals", text.trim()));
    }
    let scale = 10i64.pow(u32::from(exponent));
    let whole: i64 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| format!("`{}` is too large", text.trim()))?
    };
    let fraction_value: i64 = if fraction.is_empty() {
        0
    } else {
        fraction.parse::<i64>().map_err(|_| "bad decimals".to_owned())?
            * 10i64.pow(u32::from(exponent) - fraction.len() as u32)
    };
    let minor = whole
        .checked_mul(scale)
        .and_then(|value| value.checked_add(fraction_value))
        .ok_or_else(|| format!("`{}` is too large", text.trim()))?;
    Ok(if negative { -minor } else { minor })
}

/// `text` as nanoseconds since the epoch (midnight UTC for a date).
pub fn parse_date(text: &str, format: DateFormat) -> Result<i64, String> {
    let text = text.trim();
    let bad = || format!("`{text}` is not a date in the {format:?} format");
    if format == DateFormat::Iso
        && let Ok(time) = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
    {
        return i64::try_from(time.unix_timestamp_nanos()).map_err(|_| bad());
    }
    let parts: Vec<&str> = match format {
        DateFormat::Iso => text.split('-').collect(),
        DateFormat::DayMonthYear | DateFormat::MonthDayYear => text.split('/').collect(),
        DateFormat::DayMonthYearDots => text.split('.').collect(),
    };
    let [a, b, c] = parts[..] else { return Err(bad()) };
    let number = |part: &str| part.parse::<u16>().map_err(|_| bad());
    let (year, month, day) = match format {
        DateFormat::Iso => (number(a)?, number(b)?, number(c)?),
        DateFormat::DayMonthYear | DateFormat::DayMonthYearDots => (number(c)?, number(b)?, number(a)?),
        DateFormat::MonthDayYear => (number(c)?, number(a)?, number(b)?),
    };
    let month = Month::try_from(u8::try_from(month).map_err(|_| bad())?).map_err(|_| bad())?;
    let date = Date::from_calendar_date(i32::from(year), month, u8::try_from(day).map_err(|_| bad())?)
        .map_err(|_| bad())?;
    let nanos = PrimitiveDateTime::new(date, Time::MIDNIGHT).assume_utc().unix_timestamp_nanos();
    i64::try_from(nanos).ok().filter(|nanos| *nanos >= 0).ok_or_else(bad)
}

/// Parses a statement: the lines read, and those rejected with why.
pub fn parse(csv_text: &str, format: &Format) -> Result<(Vec<Line>, Vec<Rejected>), String> {
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(format.delimiter)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(csv_text.as_bytes());
    let headers =
        reader.headers().map_err(|error| format!("the header line cannot be read: {error}"))?.clone();
    let column = |name: &str| headers.iter().position(|header| header.eq_ignore_ascii_case(name));
    let find = |name: &Option<String>, what: &str| -> Result<Option<usize>, String> {
        match name {
            None => Ok(None),
            Some(name) => column(name).map(Some).ok_or_else(|| format!("no `{name}` column for the {what}")),
        }
    };
    let date = column(&format.columns.date)
        .ok_or_else(|| format!("no `{}` column for the date", format.columns.date))?;
    let amount = column(&format.columns.amount)
        .ok_or_else(|| format!("no `{}` column for the amount", format.columns.amount))?;
    let description = find(&format.columns.description, "description")?;
    let merchant = find(&format.columns.merchant, "merchant")?;
    let currency = find(&format.columns.currency, "currency")?;

    let mut lines = Vec::new();
    let mut rejected = Vec::new();
    let mut seen: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for (index, record) in reader.records().enumerate() {
        let line = index + 2;
        if lines.len() + rejected.len() >= LINES_MAX {
            return Err(format!("at most {LINES_MAX} lines per import"));
        }
        let record = match record {
            Ok(record) => record,
            Err(error) => {
                rejected.push(Rejected { line, reason: format!("unreadable: {error}") });
                continue;
            }
        };
        let cell = |at: Option<usize>| {
            at.and_then(|at| record.get(at)).map(str::to_owned).filter(|text| !text.is_empty())
        };
        let parsed = (|| {
            let line_currency = match cell(currency) {
                Some(code) => Currency::parse(&code.to_uppercase())
                    .ok_or_else(|| format!("`{code}` is not a supported currency"))?,
                None => format.currency,
            };
            let occurred_at = parse_date(&cell(Some(date)).ok_or("no date")?, format.date_format)?;
            let amount = parse_amount(
                &cell(Some(amount)).ok_or("no amount")?,
                format.decimal,
                line_currency.exponent(),
            )?;
            if amount == 0 {
                return Err("a zero amount".to_owned());
            }
            if amount.unsigned_abs() > super::EXPENSE_AMOUNT_MAX.unsigned_abs() {
                return Err(format!("an amount over {}", super::EXPENSE_AMOUNT_MAX));
            }
            let description = cell(description);
            let merchant = cell(merchant);
            if description.as_deref().or(merchant.as_deref()).is_some_and(|text| text.chars().count() > 500) {
                return Err("description or merchant longer than 500 characters".to_owned());
            }
            Ok((line_currency, occurred_at, amount, description, merchant))
        })();
        match parsed {
            Ok((line_currency, occurred_at, amount, description, merchant)) => {
                let key = format!(
                    "{occurred_at}\u{1f}{amount}\u{1f}{}\u{1f}{}\u{1f}{}",
                    line_currency.code(),
                    description.as_deref().unwrap_or(""),
                    merchant.as_deref().unwrap_or("")
                );
                let occurrence = seen.entry(key.clone()).or_default();
                *occurrence += 1;
                let hash = hex::encode(Sha256::digest(format!("{key}\u{1f}{occurrence}")));
                lines.push(Line {
                    occurred_at,
                    amount,
                    currency: line_currency.code().to_owned(),
                    description,
                    merchant,
                    mcc: None,
                    hash,
                });
            }
            Err(reason) => rejected.push(Rejected { line, reason }),
        }
    }
    Ok((lines, rejected))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_with_either_decimal_mark() {
        assert_eq!(parse_amount("12.50", '.', 2), Ok(1250));
        assert_eq!(parse_amount("-1,234.5", '.', 2), Ok(-123_450));
        assert_eq!(parse_amount("1.234,56", ',', 2), Ok(123_456));
        assert_eq!(parse_amount("(7,00)", ',', 2), Ok(-700));
        assert_eq!(parse_amount("500", '.', 0), Ok(500));
        assert!(parse_amount("1.234", '.', 2).is_err(), "too many decimals");
        assert!(parse_amount("abc", '.', 2).is_err());
        assert!(parse_amount("", '.', 2).is_err());
    }

    #[test]
    fn dates_in_common_formats() {
        let day = parse_date("2026-03-31", DateFormat::Iso).unwrap();
        assert_eq!(parse_date("31/03/2026", DateFormat::DayMonthYear), Ok(day));
        assert_eq!(parse_date("03/31/2026", DateFormat::MonthDayYear), Ok(day));
        assert_eq!(parse_date("31.03.2026", DateFormat::DayMonthYearDots), Ok(day));
        assert!(parse_date("31/03/2026", DateFormat::MonthDayYear).is_err());
        assert!(parse_date("2026-02-30", DateFormat::Iso).is_err());
    }

    #[test]
    fn identical_lines_are_told_apart_by_occurrence_and_hashes_are_stable() {
        let format = Format {
            columns: Columns {
                date: "Date".into(),
                amount: "Amount".into(),
                description: Some("Text".into()),
                merchant: None,
                currency: None,
            },
            date_format: DateFormat::Iso,
            decimal: '.',
            delimiter: b',',
            currency: Currency::parse("USD").unwrap(),
        };
        let csv = "Date,Amount,Text\n2026-03-01,-4.50,Coffee\n2026-03-01,-4.50,Coffee\n2026-03-02,oops,Bad\n";
        let (lines, rejected) = parse(csv, &format).unwrap();
        assert_eq!(lines.len(), 2);
        assert_ne!(lines[0].hash, lines[1].hash);
        assert_eq!(rejected, [Rejected { line: 4, reason: "`oops` is not an amount".into() }]);
        let (again, _) = parse(csv, &format).unwrap();
        assert_eq!(lines, again);
        assert!(parse("Day,Amount\n", &format).is_err(), "the date column must exist");
    }
}
