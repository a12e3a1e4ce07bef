//! The built-in sandbox aggregator: a pretend bank with realistic, deterministic data.
//!
//! A link's seed is a hash of (institution, customer, username), so linking the same way
//! gives the same accounts and the same transactions — every time, on every node. Each
//! link reaches a checking account (salary on the 25th, rent on the 1st, monthly bills, a
//! Monday coffee at Starbucks and a few purchases a day), a credit card (purchases) and a
//! savings account (interest at the end of the month). Merchants are a mix of ones the
//! merchant dictionary knows and local ones it does not (some with an MCC, some without).
//!
//! Time passes as it does at a bank: a day's transactions are booked overnight, so the
//! history holds the [`HISTORY_DAYS`] days before today, and each new day a sync finds the
//! previous day's. The cursor is the position after the last transaction handed out.
//!
//! Institutions choose the behaviour, like common sandboxes: `sandbox` always works,
//! `sandbox_login_required` refuses the link (the bank wants an interactive login), and
//! `sandbox_flaky` fails the first two of every five transactions calls per account with
//! "unavailable" — deterministically, so retries and backoff are exercised. With
//! credentials, the password must be `pass_good`.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use futures::future::BoxFuture;
use sha2::{Digest, Sha256};
use time::{Date, Weekday};

use super::{
    Account, AccountType, Aggregator, AggregatorError, Institution, Link, LinkMethod, LinkRequest,
    Transaction, TransactionsPage,
};

/// Days of history a new link reveals.
pub const HISTORY_DAYS: i64 = 90;
/// Transactions per call at most, whatever the caller asks for.
pub const PAGE_MAX: u32 = 500;
/// Accounts whose flaky call counts are remembered; past it the counts start afresh (a
/// bound on memory; the failure pattern simply restarts).
const FLAKY_ACCOUNTS_MAX: usize = 10_000;
/// The password the sandbox accepts, as in Plaid's sandbox.
pub const PASSWORD: &str = "pass_good";

const DAY_NS: i64 = 86_400 * 1_000_000_000;
/// The Julian day of 1970-01-01.
const UNIX_EPOCH_JULIAN_DAY: i64 = 2_440_588;

const INSTITUTIONS: [Institution; 3] = [
    Institution {
        id: "sandbox",
        name: "Sandbox Bank",
        behaviour: "always works",
        link_method: LinkMethod::Credentials,
    },
    Institution {
        id: "sandbox_login_required",
        name: "Sandbox Bank (login required)",
        behaviour: "linking fails: the bank asks for an interactive login",
        link_method: LinkMethod::Credentials,
    },
    Institution {
        id: "sandbox_flaky",
        name: "Sandbox Bank (flaky)",
        behaviour: "the first two of every five transaction calls per account fail as unavailable",
        link_method: LinkMethod::Credentials,
    },
];

/// Where time comes from, in nanoseconds since the epoch (replaceable in tests).
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// The sandbox aggregator.
pub struct Sandbox {
    clock: Clock,
    /// Transactions calls per account of `sandbox_flaky` links.
    calls: Mutex<HashMap<String, u64>>,
}

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sandbox").finish_non_exhaustive()
    }
}

impl Default for Sandbox {
    fn default() -> Self {
        Self::with_clock(Arc::new(|| i64::try_from(store::now_ns()).unwrap_or(i64::MAX)))
    }
}

/// A purchase the sandbox can make up: merchant name, statement text, MCC, amount range
/// in cents.
type Purchase = (Option<&'static str>, &'static str, Option<&'static str>, i64, i64);

/// Everyday purchases from the checking account.
const CHECKING_PURCHASES: &[Purchase] = &[
    (Some("Whole Foods"), "WHOLE FOODS MARKET #10234 AUSTIN TX", Some("5411"), 1_500, 12_000),
    (Some("Walmart"), "WALMART SUPERCENTER #2281", Some("5411"), 800, 15_000),
    (Some("Shell"), "SHELL OIL 57442180 AUSTIN TX", Some("5541"), 2_500, 7_000),
    (Some("Uber"), "UBER *TRIP HELP.UBER.COM", Some("4121"), 900, 4_500),
    (Some("McDonald's"), "MCDONALD'S F3391", Some("5814"), 500, 1_500),
    (Some("CVS Pharmacy"), "CVS/PHARMACY #04120", Some("5912"), 600, 4_000),
    (Some("Touchstone Climbing"), "TOUCHSTONE CLIMBING GYM", Some("7997"), 2_000, 9_000),
    (Some("Corner Deli"), "CORNER DELI 5TH AVE", None, 700, 2_200),
    (None, "ATM WITHDRAWAL 0042 MAIN ST", Some("6011"), 2_000, 20_000),
];

/// Purchases on the credit card.
const CARD_PURCHASES: &[Purchase] = &[
    (Some("Amazon"), "AMZN MKTP US*2K4QZ81", Some("5999"), 1_200, 15_000),
    (Some("Chipotle"), "CHIPOTLE 1187", Some("5814"), 900, 1_800),
    (Some("Target"), "TARGET T-1456", Some("5310"), 1_500, 9_000),
    (Some("DoorDash"), "DOORDASH*THAI PALACE", Some("5812"), 1_800, 5_500),
    (Some("Lyft"), "LYFT *RIDE TUE 8PM", Some("4121"), 700, 3_800),
    (Some("Madison Bicycle Shop"), "MADISON BICYCLE SHOP", Some("5940"), 2_500, 30_000),
    (Some("Blue Ridge Artisan Co"), "BLUE RIDGE ARTISAN CO", None, 1_200, 8_000),
];

/// A small deterministic generator (splitmix64): the same seed gives the same numbers on
/// every platform and release, which `rand`'s generators do not promise.
struct Numbers(u64);

impl Numbers {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `low..=high`.
    fn between(&mut self, low: i64, high: i64) -> i64 {
        let span = u64::try_from(high - low + 1).unwrap_or(1);
        low + i64::try_from(self.next() % span).unwrap_or(0)
    }
}

fn mix(seed: u64, salt: u64) -> Numbers {
    let mut numbers = Numbers(seed ^ salt.wrapping_mul(0xD6E8_FEB8_6659_FD93));
    numbers.next();
    numbers
}

/// A link's token: `access-sandbox-<institution>-<seed>`.
fn parse_token(token: &str) -> Result<(&str, u64), AggregatorError> {
    let rest = token.strip_prefix("access-sandbox-").ok_or(AggregatorError::InvalidToken)?;
    let (institution, seed) = rest.rsplit_once('-').ok_or(AggregatorError::InvalidToken)?;
    let seed = u64::from_str_radix(seed, 16).map_err(|_| AggregatorError::InvalidToken)?;
    Ok((institution, seed))
}

fn account_id(seed: u64, kind: AccountType) -> String {
    let suffix = match kind {
        AccountType::Checking => "chk",
        AccountType::Savings => "sav",
        AccountType::CreditCard => "cc",
    };
    format!("sbx-{seed:016x}-{suffix}")
}

const KINDS: [AccountType; 3] = [AccountType::Checking, AccountType::CreditCard, AccountType::Savings];

fn accounts_of(seed: u64) -> Vec<Account> {
    KINDS
        .iter()
        .enumerate()
        .map(|(index, kind)| Account {
            id: account_id(seed, *kind),
            name: match kind {
                AccountType::Checking => "Everyday Checking",
                AccountType::Savings => "High-Yield Savings",
                AccountType::CreditCard => "Rewards Credit Card",
            }
            .to_owned(),
            mask: Some(format!("{:04}", mix(seed, 100 + index as u64).next() % 10_000)),
            currency: "USD".to_owned(),
            kind: Some(*kind),
        })
        .collect()
}

/// The transactions booked on `day` (days since the epoch) in account `kind` of link `seed`.
fn booked(seed: u64, kind: AccountType, day: i64) -> Vec<Transaction> {
    let Some(date) =
        i32::try_from(day + UNIX_EPOCH_JULIAN_DAY).ok().and_then(|julian| Date::from_julian_day(julian).ok())
    else {
        return Vec::new();
    };
    let account = account_id(seed, kind);
    let mut numbers = mix(seed, ((day as u64) << 2) | kind as u64);
    let mut out: Vec<Transaction> = Vec::new();
    let mut add = |amount: i64, description: String, merchant: Option<&str>, mcc: Option<&str>| {
        out.push(Transaction {
            id: format!("{account}-{day}-{}", out.len()),
            booked_on: date,
            amount,
            currency: "USD".to_owned(),
            description,
            merchant: merchant.map(str::to_owned),
            mcc: mcc.map(str::to_owned),
        });
    };
    // Amounts that stay the same month after month: a few per link.
    let fixed = |salt: u64, low: i64, high: i64| mix(seed, salt).between(low, high) / 100 * 100;
    match kind {
        AccountType::Checking => {
            if date.day() == 1 {
                add(
                    -fixed(1, 120_000, 270_000),
                    "RENT PAYMENT LANDLORD PROPERTIES".into(),
                    Some("Landlord Properties"),
                    None,
                );
            }
            if date.day() == 5 {
                add(-7_999, "COMCAST CABLE COMM 800-COMCAST".into(), Some("Comcast"), Some("4899"));
            }
            if date.day() == 12 {
                add(-1_549, "NETFLIX.COM".into(), Some("Netflix"), Some("4899"));
            }
            if date.day() == 25 {
                add(
                    fixed(2, 300_000, 700_000),
                    "ACME CORP PAYROLL DIRECT DEP".into(),
                    Some("ACME Corp Payroll"),
                    None,
                );
            }
            if date.weekday() == Weekday::Monday {
                let store = numbers.between(1_000, 9_999);
                let amount = -numbers.between(350, 750);
                add(amount, format!("STARBUCKS STORE #{store} SEATTLE WA"), Some("Starbucks"), Some("5814"));
            }
            for _ in 0..numbers.between(0, 2) {
                let (merchant, text, mcc, low, high) =
                    CHECKING_PURCHASES[numbers.next() as usize % CHECKING_PURCHASES.len()];
                let amount = -numbers.between(low, high);
                add(amount, text.to_owned(), merchant, mcc);
            }
        }
        AccountType::CreditCard => {
            for _ in 0..numbers.between(0, 2) {
                let (merchant, text, mcc, low, high) =
                    CARD_PURCHASES[numbers.next() as usize % CARD_PURCHASES.len()];
                let amount = -numbers.between(low, high);
                add(amount, text.to_owned(), merchant, mcc);
            }
        }
        AccountType::Savings => {
            if date.next_day().is_some_and(|next| next.day() == 1) {
                add(fixed(3, 500, 4_000), "INTEREST PAID".into(), None, None);
            }
        }
    }
    out
}

/// A cursor: the position (day, index within the day) of the next transaction.
fn parse_cursor(cursor: &str) -> Result<(i64, usize), AggregatorError> {
    let (day, index) = cursor.split_once('.').ok_or(AggregatorError::InvalidToken)?;
    match (day.parse(), index.parse()) {
        (Ok(day), Ok(index)) => Ok((day, index)),
        _ => Err(AggregatorError::InvalidToken),
    }
}

impl Sandbox {
    /// A sandbox whose "now" is `clock`.
    pub fn with_clock(clock: Clock) -> Self {
        Self { clock, calls: Mutex::new(HashMap::new()) }
    }

    fn link_now(&self, request: &LinkRequest) -> Result<Link, AggregatorError> {
        let institution = INSTITUTIONS
            .iter()
            .find(|known| known.id == request.institution_id)
            .ok_or(AggregatorError::UnknownInstitution)?;
        let username = match &request.credentials {
            Some(credentials) if credentials.password != PASSWORD || credentials.username.is_empty() => {
                return Err(AggregatorError::InvalidCredentials);
            }
            Some(credentials) => credentials.username.as_str(),
            None => "user_good",
        };
        if institution.id == "sandbox_login_required" {
            return Err(AggregatorError::LoginRequired);
        }
        let digest =
            Sha256::digest(format!("{}\u{1f}{}\u{1f}{username}", institution.id, request.customer_id));
        let seed = u64::from_be_bytes(digest[..8].try_into().expect("eight bytes"));
        Ok(Link {
            connection_id: format!("sbx-item-{seed:016x}"),
            access_token: format!("access-sandbox-{}-{seed:016x}", institution.id),
        })
    }

    /// Fails the first two of every five calls for an account of a flaky link.
    fn flaky(&self, account_id: &str) -> Result<(), AggregatorError> {
        let mut calls = self.calls.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if calls.len() >= FLAKY_ACCOUNTS_MAX && !calls.contains_key(account_id) {
            calls.clear();
        }
        let count = calls.entry(account_id.to_owned()).or_default();
        *count += 1;
        if matches!(*count % 5, 1 | 2) {
            return Err(AggregatorError::Unavailable(format!(
                "the sandbox bank did not answer (call {count})"
            )));
        }
        Ok(())
    }

    fn transactions_now(
        &self,
        token: &str,
        account_id: &str,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<TransactionsPage, AggregatorError> {
        let (institution, seed) = parse_token(token)?;
        let kind = KINDS
            .into_iter()
            .find(|kind| self::account_id(seed, *kind) == account_id)
            .ok_or(AggregatorError::InvalidToken)?;
        if institution == "sandbox_flaky" {
            self.flaky(account_id)?;
        }
        // Booked overnight: days before today.
        let today = (self.clock)().div_euclid(DAY_NS);
        let (mut day, mut index) = match cursor {
            Some(cursor) => parse_cursor(cursor)?,
            None => (today - HISTORY_DAYS, 0),
        };
        let limit = limit.clamp(1, PAGE_MAX) as usize;
        let mut added = Vec::new();
        while day < today {
            let on_day = booked(seed, kind, day);
            while index < on_day.len() {
                if added.len() == limit {
                    return Ok(TransactionsPage {
                        added,
                        next_cursor: format!("{day}.{index}"),
                        has_more: true,
                    });
                }
                added.push(on_day[index].clone());
                index += 1;
            }
            (day, index) = (day + 1, 0);
        }
        Ok(TransactionsPage { added, next_cursor: format!("{day}.{index}"), has_more: false })
    }
}

impl Aggregator for Sandbox {
    fn name(&self) -> &'static str {
        "sandbox"
    }

    fn institutions(&self) -> Vec<Institution> {
        INSTITUTIONS.to_vec()
    }

    fn link(&self, request: LinkRequest) -> BoxFuture<'_, Result<Link, AggregatorError>> {
        Box::pin(async move { self.link_now(&request) })
    }

    fn accounts<'a>(&'a self, access_token: &'a str) -> BoxFuture<'a, Result<Vec<Account>, AggregatorError>> {
        Box::pin(async move { Ok(accounts_of(parse_token(access_token)?.1)) })
    }

    fn transactions<'a>(
        &'a self,
        access_token: &'a str,
        account_id: &'a str,
        cursor: Option<&'a str>,
        limit: u32,
    ) -> BoxFuture<'a, Result<TransactionsPage, AggregatorError>> {
        Box::pin(async move { self.transactions_now(access_token, account_id, cursor, limit) })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicI64, Ordering};

    use uuid::Uuid;

    use super::*;
    use crate::finance::banks::Credentials;

    /// 2026-03-18T12:00:00Z, a Wednesday.
    const NOON: i64 = 1_773_835_200 * 1_000_000_000;

    fn sandbox_at(now: Arc<AtomicI64>) -> Sandbox {
        Sandbox::with_clock(Arc::new(move || now.load(Ordering::Relaxed)))
    }

    fn request(institution: &str, customer_id: Uuid) -> LinkRequest {
        LinkRequest { institution_id: institution.into(), credentials: None, setup_token: None, customer_id }
    }

    async fn everything(
        sandbox: &Sandbox,
        token: &str,
        account: &str,
        limit: u32,
    ) -> (Vec<Transaction>, String) {
        let (mut all, mut cursor) = (Vec::new(), None::<String>);
        for _ in 0..1_000 {
            let page = sandbox.transactions(token, account, cursor.as_deref(), limit).await.unwrap();
            assert!(page.added.len() <= limit as usize);
            all.extend(page.added);
            cursor = Some(page.next_cursor);
            if !page.has_more {
                break;
            }
        }
        (all, cursor.unwrap())
    }

    #[tokio::test]
    async fn the_same_link_gives_the_same_accounts_and_transactions() {
        let customer = Uuid::now_v7();
        let one = sandbox_at(Arc::new(AtomicI64::new(NOON)));
        let two = sandbox_at(Arc::new(AtomicI64::new(NOON)));
        let link = one.link(request("sandbox", customer)).await.unwrap();
        let again = two.link(request("sandbox", customer)).await.unwrap();
        assert_eq!((&link.connection_id, &link.access_token), (&again.connection_id, &again.access_token));
        let accounts = one.accounts(&link.access_token).await.unwrap();
        assert_eq!(accounts, two.accounts(&again.access_token).await.unwrap());
        assert_eq!(accounts.len(), 3);
        for account in &accounts {
            let (first, _) = everything(&one, &link.access_token, &account.id, 100).await;
            let (second, _) = everything(&two, &again.access_token, &account.id, 100).await;
            assert_eq!(first, second, "{}", account.name);
        }
        let other = one.link(request("sandbox", Uuid::now_v7())).await.unwrap();
        assert_ne!(other.connection_id, link.connection_id, "another customer's bank is another bank");
    }

    #[tokio::test]
    async fn paging_with_any_limit_hands_out_the_same_history_once() {
        let sandbox = sandbox_at(Arc::new(AtomicI64::new(NOON)));
        let link = sandbox.link(request("sandbox", Uuid::now_v7())).await.unwrap();
        let checking = account_id(parse_token(&link.access_token).unwrap().1, AccountType::Checking);
        let (whole, end) = everything(&sandbox, &link.access_token, &checking, PAGE_MAX).await;
        assert!(whole.len() > 90, "a few a day for 90 days: {}", whole.len());
        for limit in [1, 7, 100] {
            let (paged, paged_end) = everything(&sandbox, &link.access_token, &checking, limit).await;
            assert_eq!(paged, whole, "limit {limit}");
            assert_eq!(paged_end, end);
        }
        let mut ids: Vec<&str> = whole.iter().map(|t| t.id.as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), whole.len(), "ids are unique");
        let today = Date::from_calendar_date(2026, time::Month::March, 18).unwrap();
        assert!(whole.iter().all(|t| t.booked_on < today && t.booked_on >= today - time::Duration::days(90)));
        assert!(whole.windows(2).all(|pair| pair[0].booked_on <= pair[1].booked_on), "oldest first");
        assert!(whole.iter().any(|t| t.merchant.as_deref() == Some("Starbucks") && t.amount < 0));
        assert!(whole.iter().any(|t| t.description.contains("PAYROLL") && t.amount > 0), "salary");
        assert!(whole.iter().any(|t| t.merchant.is_none() || t.mcc.is_none()), "some unknowns");
        let nothing_new = sandbox.transactions(&link.access_token, &checking, Some(&end), 100).await.unwrap();
        assert_eq!((nothing_new.added.len(), nothing_new.has_more), (0, false));
        assert_eq!(nothing_new.next_cursor, end);
    }

    #[tokio::test]
    async fn new_transactions_appear_as_days_pass() {
        let now = Arc::new(AtomicI64::new(NOON));
        let sandbox = sandbox_at(now.clone());
        let link = sandbox.link(request("sandbox", Uuid::now_v7())).await.unwrap();
        let checking = account_id(parse_token(&link.access_token).unwrap().1, AccountType::Checking);
        let (before, end) = everything(&sandbox, &link.access_token, &checking, 100).await;
        now.fetch_add(7 * DAY_NS, Ordering::Relaxed);
        let (week, _) = everything(&sandbox, &link.access_token, &checking, 100).await;
        let page = sandbox.transactions(&link.access_token, &checking, Some(&end), 100).await.unwrap();
        assert!(page.added.iter().any(|t| t.merchant.as_deref() == Some("Starbucks")), "a Monday went by");
        assert!(page.added.iter().all(|t| !before.contains(t)), "only new ones");
        assert_eq!(&week[week.len() - page.added.len()..], &page.added[..], "the same as a fresh look sees");
    }

    #[tokio::test]
    async fn institutions_fail_honestly() {
        let sandbox = sandbox_at(Arc::new(AtomicI64::new(NOON)));
        let customer = Uuid::now_v7();
        let refused = sandbox.link(request("sandbox_login_required", customer)).await;
        assert_eq!(refused.err(), Some(AggregatorError::LoginRequired));
        let unknown = sandbox.link(request("chase", customer)).await;
        assert_eq!(unknown.err(), Some(AggregatorError::UnknownInstitution));
        let mut wrong = request("sandbox", customer);
        wrong.credentials = Some(Credentials { username: "user_good".into(), password: "nope".into() });
        assert_eq!(sandbox.link(wrong).await.err(), Some(AggregatorError::InvalidCredentials));

        let flaky = sandbox.link(request("sandbox_flaky", customer)).await.unwrap();
        let account = sandbox.accounts(&flaky.access_token).await.unwrap().remove(0);
        let outcomes: Vec<bool> = futures::future::join_all(
            (0..10).map(|_| sandbox.transactions(&flaky.access_token, &account.id, None, 10)),
        )
        .await
        .iter()
        .map(Result::is_ok)
        .collect();
        assert_eq!(outcomes, [false, false, true, true, true, false, false, true, true, true]);
        let forged = sandbox.transactions("access-sandbox-sandbox-00", &account.id, None, 10).await;
        assert_eq!(forged.err(), Some(AggregatorError::InvalidToken), "another link's account");
    }
}
