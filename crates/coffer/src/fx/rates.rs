//! Where exchange rates come from: a [`RateProvider`] answers a set of reference rates
//! against one base currency, with its source and the time they are valid for.
//!
//! Two providers: [`Sandbox`], a fixed table (the default; its figures are round numbers
//! of the right size, not market data), and [`ReferenceFile`], the European Central
//! Bank's daily reference rates in either of the formats it publishes them in
//! (`eurofxref-daily.xml`, or the CSV inside `eurofxref.zip`), read from a path or an
//! http(s) URL the operator configures. The ECB publishes about thirty currencies against
//! the euro; KES, RWF and NGN are not among them, so with that file those pairs have no
//! rate.

use std::collections::HashMap;
use std::time::Duration;

use futures::future::BoxFuture;
use time::{Date, Month};

use super::convert::ReferenceRate;
use crate::wallets::{Currency, money::CURRENCIES};

/// A set of reference rates: units of each currency per unit of `base`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rates {
    pub base: Currency,
    /// Each currency's rate against `base` (`base` itself is one).
    pub rates: HashMap<Currency, ReferenceRate>,
    /// Who published them: `sandbox`, or `ecb:` and the file's path or URL.
    pub source: String,
    /// When they were valid, nanoseconds since the Unix epoch: the sandbox's are always
    /// current; a reference file's are its date at midnight UTC.
    pub as_of: u64,
}

impl Rates {
    /// The reference rate of `currency`, if the set has one.
    pub fn of(&self, currency: Currency) -> Option<ReferenceRate> {
        if currency == self.base { Some(ReferenceRate::ONE) } else { self.rates.get(&currency).copied() }
    }
}

/// Why no rates could be had.
#[derive(Debug, thiserror::Error)]
pub enum RateError {
    #[error("the rate source could not be read: {0}")]
    Unreachable(String),
    #[error("the rate source is not a reference-rate file: {0}")]
    Unreadable(String),
}

/// A source of reference rates.
pub trait RateProvider: Send + Sync + std::fmt::Debug {
    /// The rates it publishes, newest first, never none: the current set, and the earlier
    /// days' too when the source holds them (the ECB's 90-day file).
    fn fetch(&self) -> BoxFuture<'_, Result<Vec<Rates>, RateError>>;
}

/// The sandbox's rates per euro: every supported currency, fixed, so every quote and test
/// is repeatable. Not market data.
const SANDBOX_PER_EUR: [(&str, u128); 6] = [
    ("USD", 1_080_000),
    ("GBP", 850_000),
    ("JPY", 160_000_000),
    ("KES", 140_000_000),
    ("RWF", 1_450_000_000),
    ("NGN", 1_700_000_000),
];

/// The deterministic sandbox provider (the default).
#[derive(Debug, Default)]
pub struct Sandbox;

impl RateProvider for Sandbox {
    fn fetch(&self) -> BoxFuture<'_, Result<Vec<Rates>, RateError>> {
        let euro = Currency::parse("EUR").expect("supported");
        let rates = SANDBOX_PER_EUR
            .iter()
            .map(|(code, rate)| (Currency::parse(code).expect("supported"), ReferenceRate::scaled(*rate)))
            .collect();
        let rates = Rates { base: euro, rates, source: "sandbox".into(), as_of: store::now_ns() };
        Box::pin(async move { Ok(vec![rates]) })
    }
}

/// Bytes of a reference file read at most (the daily files are ~2 KB, the 90-day history
/// ~50 KB; the full history since 1999 is kept out by this bound).
const FILE_BYTES_MAX: usize = 1024 * 1024;
/// Longest a fetch of a reference file over HTTP may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// The ECB's reference rates from a file path or an http(s) URL.
#[derive(Debug)]
pub struct ReferenceFile {
    location: String,
    client: reqwest::Client,
}

impl ReferenceFile {
    pub fn new(location: impl Into<String>) -> anyhow::Result<Self> {
        let client = crate::notifications::http_client().timeout(FETCH_TIMEOUT).build()?;
        Ok(Self { location: location.into(), client })
    }

    async fn text(&self) -> Result<String, RateError> {
        let unreachable =
            |error: &dyn std::fmt::Display| RateError::Unreachable(format!("{}: {error}", self.location));
        let bytes = if self.location.starts_with("http://") || self.location.starts_with("https://") {
            let mut response = self.client.get(&self.location).send().await.map_err(|e| unreachable(&e))?;
            if !response.status().is_success() {
                return Err(unreachable(&response.status()));
            }
            let mut bytes = Vec::new();
            while let Some(chunk) = response.chunk().await.map_err(|e| unreachable(&e))? {
                bytes.extend_from_slice(&chunk);
                if bytes.len() > FILE_BYTES_MAX {
                    return Err(RateError::Unreadable(format!(
                        "{} is over {FILE_BYTES_MAX} bytes",
                        self.location
                    )));
                }
            }
            bytes
        } else {
            let bytes = tokio::fs::read(&self.location).await.map_err(|e| unreachable(&e))?;
            if bytes.len() > FILE_BYTES_MAX {
                return Err(RateError::Unreadable(format!(
                    "{} is over {FILE_BYTES_MAX} bytes",
                    self.location
                )));
            }
            bytes
        };
        String::from_utf8(bytes).map_err(|_| RateError::Unreadable("not UTF-8".into()))
    }
}

impl RateProvider for ReferenceFile {
    fn fetch(&self) -> BoxFuture<'_, Result<Vec<Rates>, RateError>> {
        Box::pin(async move {
            let text = self.text().await?;
            let euro = Currency::parse("EUR").expect("supported");
            let mut days = Vec::new();
            for (date, published) in parse_reference(&text).map_err(RateError::Unreadable)? {
                let rates = published
                    .into_iter()
                    .filter_map(|(code, rate)| Some((Currency::parse(&code)?, rate)))
                    .filter(|(currency, _)| *currency != euro)
                    .collect();
                let as_of = date.midnight().assume_utc().unix_timestamp_nanos();
                let as_of =
                    u64::try_from(as_of).map_err(|_| RateError::Unreadable("a date before 1970".into()))?;
                days.push(Rates { base: euro, rates, source: format!("ecb:{}", self.location), as_of });
            }
            Ok(days)
        })
    }
}

/// One day's published rates.
pub type Day = (Date, Vec<(String, ReferenceRate)>);

/// The days of an ECB reference file, newest first: XML (`<Cube time='…'>` with
/// `<Cube currency='USD' rate='1.0823'/>` inside, once in the daily file, once per day in
/// the history files) or CSV (a header `Date, USD, JPY, …` and a line of values per day;
/// `N/A` where a currency has no rate that day). Days without a rate are left out; a file
/// with none is refused.
pub fn parse_reference(text: &str) -> Result<Vec<Day>, String> {
    let text = text.trim_start_matches('\u{feff}').trim_start();
    let mut days = if text.starts_with('<') { parse_xml(text)? } else { parse_csv(text)? };
    days.retain(|(_, rates)| !rates.is_empty());
    if days.is_empty() {
        return Err("no rates in the file".into());
    }
    days.sort_by_key(|(date, _)| std::cmp::Reverse(*date));
    days.dedup_by_key(|(date, _)| *date);
    Ok(days)
}

fn parse_csv(text: &str) -> Result<Vec<Day>, String> {
    let mut lines = text.lines().filter(|line| !line.trim().is_empty());
    let header = lines.next().ok_or("an empty file")?;
    let header: Vec<&str> = header.split(',').map(str::trim).collect();
    if header.first().map(|name| name.eq_ignore_ascii_case("date")) != Some(true) {
        return Err("the first column is not Date".into());
    }
    let mut days = Vec::new();
    for line in lines {
        let values: Vec<&str> = line.split(',').map(str::trim).collect();
        let date = parse_date(values.first().copied().unwrap_or(""))?;
        let mut rates = Vec::new();
        for (code, value) in header.iter().zip(&values).skip(1) {
            if code.is_empty() || value.is_empty() || value.eq_ignore_ascii_case("N/A") {
                continue;
            }
            let rate = ReferenceRate::parse(value).ok_or_else(|| format!("{code}: not a rate: {value:?}"))?;
            rates.push(((*code).to_owned(), rate));
        }
        days.push((date, rates));
    }
    if days.is_empty() {
        return Err("a header without rates".into());
    }
    Ok(days)
}

fn parse_xml(text: &str) -> Result<Vec<Day>, String> {
    let mut days: Vec<Day> = Vec::new();
    let mut uncommented = String::with_capacity(text.len());
    let mut rest = text;
    while let Some((before, comment)) = rest.split_once("<!--") {
        uncommented.push_str(before);
        rest = comment.split_once("-->").map_or("", |(_, after)| after);
    }
    uncommented.push_str(rest);
    for element in uncommented.split('<').skip(1) {
        let element = element.split('>').next().unwrap_or("");
        if !element.starts_with("Cube") {
            continue;
        }
        if let Some(time) = attribute(element, "time") {
            days.push((parse_date(time)?, Vec::new()));
        }
        if let (Some(code), Some(rate)) = (attribute(element, "currency"), attribute(element, "rate")) {
            let rate = ReferenceRate::parse(rate).ok_or_else(|| format!("{code}: not a rate: {rate:?}"))?;
            let (_, rates) = days.last_mut().ok_or("no <Cube time='…'> before a rate")?;
            rates.push((code.to_owned(), rate));
        }
    }
    if days.is_empty() {
        return Err("no <Cube time='…'> in the file".into());
    }
    Ok(days)
}

/// The value of `name='…'` (or `name="…"`) in an element's text.
fn attribute<'a>(element: &'a str, name: &str) -> Option<&'a str> {
    for quote in ['\'', '"'] {
        let start = format!(" {name}={quote}");
        if let Some(at) = element.find(&start) {
            let rest = &element[at + start.len()..];
            return rest.split(quote).next();
        }
    }
    None
}

/// `2026-12-02` or `02 December 2026`.
fn parse_date(text: &str) -> Result<Date, String> {
    let bad = || format!("not a date: {text:?}");
    let parts: Vec<&str> = text.split(['-', ' ']).filter(|part| !part.is_empty()).collect();
    let [first, second, third] = parts[..] else { return Err(bad()) };
    let (year, month, day) = match first.len() {
        4 => (first, second.parse::<u8>().ok().and_then(|m| Month::try_from(m).ok()), third),
        _ => (third, month_named(second), first),
    };
    let year: i32 = year.parse().map_err(|_| bad())?;
    let day: u8 = day.parse().map_err(|_| bad())?;
    Date::from_calendar_date(year, month.ok_or_else(bad)?, day).map_err(|_| bad())
}

fn month_named(name: &str) -> Option<Month> {
    const MONTHS: [Month; 12] = [
        Month::January,
        Month::February,
        Month::March,
        Month::April,
        Month::May,
        Month::June,
        Month::July,
        Month::August,
        Month::September,
        Month::October,
        Month::November,
        Month::December,
    ];
    MONTHS.into_iter().find(|month| month.to_string().eq_ignore_ascii_case(name))
}

/// Every supported currency other than `base` (what a full set of rates covers).
pub fn quoted_against(base: Currency) -> impl Iterator<Item = Currency> {
    CURRENCIES.into_iter().filter(move |currency| *currency != base)
}

/// Seconds since the rates were valid, at `now` (nanoseconds).
pub fn age_s(rates: &Rates, now: u64) -> u64 {
    now.saturating_sub(rates.as_of) / 1_000_000_000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_daily_xml_reads() {
        let text = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<gesmes:Envelope><gesmes:subject>Reference rates</gesmes:subject>\
            <Cube><Cube time='2026-12-02'><Cube currency='USD' rate='1.0537'/><Cube currency='JPY' rate='157.98'/>\
            <Cube currency=\"GBP\" rate=\"0.8312\"/></Cube></Cube></gesmes:Envelope>";
        let [(date, rates)] = &parse_reference(text).unwrap()[..] else { panic!("one day") };
        assert_eq!(*date, Date::from_calendar_date(2026, Month::December, 2).unwrap());
        let codes: Vec<&str> = rates.iter().map(|(code, _)| code.as_str()).collect();
        assert_eq!(codes, ["USD", "JPY", "GBP"]);
        assert_eq!(rates[1].1, ReferenceRate::parse("157.98").unwrap());
    }

    #[test]
    fn the_csv_reads_with_its_spaces_trailing_comma_and_gaps() {
        let text = "Date, USD, JPY, BGN, GBP, \n02 December 2026, 1.0537, 157.98, N/A, 0.8312, \n";
        let [(date, rates)] = &parse_reference(text).unwrap()[..] else { panic!("one day") };
        assert_eq!(*date, Date::from_calendar_date(2026, Month::December, 2).unwrap());
        assert_eq!(rates.len(), 3, "N/A is skipped");
        let history =
            "Date,USD,JPY\n2026-11-30,1.0498,158.0\n2026-12-02,1.0537,157.98\n2026-12-01,1.0501,158.2\n";
        let days = parse_reference(history).unwrap();
        let dates: Vec<String> = days.iter().map(|(date, _)| date.to_string()).collect();
        assert_eq!(dates, ["2026-12-02", "2026-12-01", "2026-11-30"], "newest first");
        assert_eq!(days[0].1[0].1, ReferenceRate::parse("1.0537").unwrap());
    }

    #[test]
    fn the_history_xml_reads_every_day() {
        let text = "<Cube><Cube time='2026-12-02'><Cube currency='USD' rate='1.0537'/></Cube>\
            <Cube time='2026-12-01'><Cube currency='USD' rate='1.0501'/><Cube currency='GBP' rate='0.83'/></Cube>\
            <Cube time='2026-11-30'></Cube></Cube>";
        let days = parse_reference(text).unwrap();
        assert_eq!(days.len(), 2, "a day without rates is left out");
        let commented = format!("<!-- not <Cube time='2026-01-01'> --><Cube>{}", &text[6..]);
        assert_eq!(parse_reference(&commented).unwrap(), days, "comments are not read");
        assert_eq!(days[1].0, Date::from_calendar_date(2026, Month::December, 1).unwrap());
        assert_eq!(days[1].1.len(), 2);
        assert_eq!(days[1].1[0].1, ReferenceRate::parse("1.0501").unwrap());
    }

    #[test]
    fn broken_files_are_refused_with_a_reason() {
        for (text, reason) in [
            ("", "an empty file"),
            ("Date, USD\n", "a header without rates"),
            ("Day, USD\n02 December 2026, 1.05\n", "the first column is not Date"),
            ("Date, USD\nyesterday, 1.05\n", "not a date"),
            ("Date, USD\n02 December 2026, -1.05\n", "not a rate"),
            ("Date, USD\n02 December 2026, N/A\n", "no rates"),
            ("<Cube><Cube currency='USD' rate='1.05'/></Cube>", "no <Cube time"),
        ] {
            let error = parse_reference(text).unwrap_err();
            assert!(error.contains(reason), "{text:?}: {error}");
        }
    }

    #[tokio::test]
    async fn a_reference_file_reads_over_http_within_its_bounds() {
        let sample = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/examples/eurofxref-daily.xml");
        let body = std::fs::read_to_string(sample).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let huge = "x".repeat(FILE_BYTES_MAX + 1);
        let router = axum::Router::new()
            .route("/daily.xml", axum::routing::get(move || async move { body }))
            .route("/huge.xml", axum::routing::get(move || async move { huge }));
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        let url = format!("http://{address}/daily.xml");
        let rates = ReferenceFile::new(url.clone()).unwrap().fetch().await.unwrap().remove(0);
        assert_eq!(rates.source, format!("ecb:{url}"));
        assert_eq!(rates.of(Currency::parse("USD").unwrap()), ReferenceRate::parse("1.0612"));
        let missing = ReferenceFile::new(format!("http://{address}/gone.xml")).unwrap().fetch().await;
        assert!(matches!(missing, Err(RateError::Unreachable(reason)) if reason.contains("404")));
        let huge = ReferenceFile::new(format!("http://{address}/huge.xml")).unwrap().fetch().await;
        assert!(matches!(huge, Err(RateError::Unreadable(reason)) if reason.contains("bytes")));
    }

    #[tokio::test]
    async fn the_sample_file_and_the_sandbox_cover_what_they_claim() {
        let sample = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/examples/eurofxref-daily.xml");
        let rates = ReferenceFile::new(sample).unwrap().fetch().await.unwrap().remove(0);
        for code in ["USD", "GBP", "JPY"] {
            assert!(rates.of(Currency::parse(code).unwrap()).is_some(), "{code}");
        }
        assert!(rates.of(Currency::parse("KES").unwrap()).is_none(), "the ECB does not publish KES");
        assert!(rates.as_of < store::now_ns());
        let sandbox = Sandbox.fetch().await.unwrap().remove(0);
        assert!(quoted_against(sandbox.base).all(|currency| sandbox.of(currency).is_some()));
        assert!(age_s(&sandbox, store::now_ns()) < 5);
    }
}
