//! A real aggregator: the public SimpleFIN protocol (<https://www.simplefin.org/protocol.html>),
//! spoken to a SimpleFIN server — a bank's own, or the SimpleFIN Bridge, which reaches most US
//! banks — so customers can sync a real bank without Coffer holding a commercial aggregator
//! account.
//!
//! **Linking.** The customer creates a *setup token* at their SimpleFIN server and gives it
//! to Coffer (`POST /v1/bank-connections` with institution `simplefin`). The token is the
//! base64 of a one-time *claim URL*; Coffer POSTs to it (empty body) and receives the
//! *access URL*, `https://user:pass@host/path`. The access URL is the credential for every
//! later call: it is stored as the connection's access token and never logged or shown
//! ([`AccessUrl`]'s `Debug` hides it; calls send its userinfo as HTTP basic auth, never in
//! the URL). A claim the server refuses (403: claimed already, or no such token) is
//! [`AggregatorError::SetupTokenRejected`]: the customer should disable that token, since
//! someone else may hold its access URL.
//!
//! **Only allowed hosts.** The claim URL comes from customer input, so this is an obvious
//! SSRF path: a claim URL, and the access URL a claim answers, are contacted only when
//! their scheme, host and port match an entry of `COFFER_SIMPLEFIN_HOSTS` ([`AllowedHost`];
//! https unless an entry says `http://` explicitly). Redirects are never followed, every
//! call has a timeout, and answers are read up to a bound.
//!
//! **Reading.** `GET {access URL}/accounts` answers an *Account Set*: accounts, each with
//! its transactions, plus a *partial* error list — `errors` (strings) or the newer `errlist`
//! (objects that may name an account or connection). An account that is listed worked; one
//! missing from the answer, or named by an `errlist` entry, failed this time and is retried
//! (`con.auth` means the bank wants the customer to log in again at the SimpleFIN server:
//! [`AggregatorError::LoginRequired`]). A 403 means the access was revoked:
//! [`AggregatorError::AccessRevoked`], and the customer links again with a new token.
//! Accounts in a custom currency (a URL) or a currency Coffer does not keep are left out;
//! amounts are decimal strings parsed exactly into minor units ([`parse_amount`]); a
//! transaction that does not parse is skipped, one that is pending (or not yet posted) is
//! not recorded until it posts.
//!
//! **Paging by date.** SimpleFIN has no cursor: it answers every transaction posted in
//! `[start-date, end-date)`. The cursor Coffer stores is a date position ([`Position`]):
//! the start of the next request and, when a window held more than a page, the id of the
//! last transaction handed out at that second (transactions are ordered by posted time,
//! then id). The first sync starts [`HISTORY_DAYS`] back and asks in windows of
//! [`WINDOW_DAYS`]. Once a pass reaches now, the next one starts [`OVERLAP_DAYS`] back, so
//! transactions the bank posts late (pending ones that post, back-dated corrections) are
//! found; the overlap's repeats are duplicates by import hash and change nothing.

use std::{fmt, str::FromStr, time::Duration};

use base64::Engine as _;
use futures::future::BoxFuture;
use reqwest::{StatusCode, Url};
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::{
    Account, Aggregator, AggregatorError, Institution, Link, LinkMethod, LinkRequest, Transaction,
    TransactionsPage, sandbox::Clock,
};
use crate::wallets::Currency;

/// The institution id customers link SimpleFIN with.
pub const INSTITUTION_ID: &str = "simplefin";
/// The SimpleFIN Bridge's hosts (the production bridge and its beta): the default of
/// `COFFER_SIMPLEFIN_HOSTS`.
pub const DEFAULT_HOSTS: &str = "bridge.simplefin.org,beta-bridge.simplefin.org";
/// Days of history the first sync asks for (as the sandbox reveals).
pub const HISTORY_DAYS: i64 = 90;
/// Days one request asks for. SimpleFIN answers a whole date range at once, so the window
/// bounds what one answer holds (a month of even a busy account is a few hundred
/// transactions, far below the body bound) while keeping a first sync to three requests
/// per account: the SimpleFIN Bridge allows an access URL about 24 requests a day.
pub const WINDOW_DAYS: i64 = 30;
/// Days every sync after the first reaches back: card transactions stay pending for up to
/// about ten days and banks back-date some postings; a transaction posted later than this
/// into the past is missed.
pub const OVERLAP_DAYS: i64 = 14;
/// Transactions per page at most, whatever the caller asks for.
pub const PAGE_MAX: u32 = 500;
/// Characters of a setup token at most: the base64 of a URL of [`URL_CHARS_MAX`].
pub const SETUP_TOKEN_CHARS_MAX: usize = 2_048;
/// Characters of a claim or access URL at most (the bridge's are under 200).
const URL_CHARS_MAX: usize = 1_500;
/// Bytes of a claim's answer at most: one access URL.
const CLAIM_BODY_BYTES_MAX: usize = 4 * 1024;
/// Bytes of an Account Set at most: a window of one account is far smaller; an answer
/// past this is refused rather than held in memory.
const ACCOUNTS_BODY_BYTES_MAX: usize = 4 * 1024 * 1024;
/// Longest a call to a SimpleFIN server may take, and may spend connecting. The sync
/// service bounds each aggregator call to 10 s as well; this one also frees the socket.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Bytes of an account or transaction id at most; longer ones are skipped (they would
/// bloat cursors and hashes, and no server needs them).
const ID_BYTES_MAX: usize = 200;
/// Characters of an amount at most (an `i64` of minor units has 19 digits).
const AMOUNT_CHARS_MAX: usize = 40;
/// Errors of an Account Set looked at, at most.
const ERRORS_MAX: usize = 100;
/// Characters of a server's error message kept (it is outside input, shown sanitised).
const MESSAGE_CHARS_MAX: usize = 200;

const DAY_S: i64 = 86_400;

/// A host the operator allows SimpleFIN calls to: scheme, host and port, all three
/// matched exactly. Written `host`, `host:port` or `https://host[:port]` for https, and
/// `http://host:port` for plain http (local test servers only: SimpleFIN requires TLS).
#[derive(Clone, PartialEq, Eq)]
pub struct AllowedHost {
    https: bool,
    host: String,
    port: u16,
}

impl FromStr for AllowedHost {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        let url =
            if text.contains("://") { Url::parse(text) } else { Url::parse(&format!("https://{text}")) }
                .map_err(|_| format!("`{text}` is not a host, host:port or http(s)://host[:port]"))?;
        let https = match url.scheme() {
            "https" => true,
            "http" => false,
            _ => return Err(format!("`{text}`: only https:// or http:// hosts")),
        };
        let host = url
            .host_str()
            .filter(|host| !host.is_empty())
            .ok_or_else(|| format!("`{text}` names no host"))?;
        if !url.username().is_empty()
            || url.password().is_some()
            || !matches!(url.path(), "" | "/")
            || url.query().is_some()
            || url.fragment().is_some()
        {
            return Err(format!("`{text}`: a host only, without credentials, path or query"));
        }
        let port = url.port_or_known_default().ok_or_else(|| format!("`{text}` has no port"))?;
        Ok(Self { https, host: host.to_owned(), port })
    }
}

impl fmt::Debug for AllowedHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.https { "https" } else { "http" };
        write!(f, "{scheme}://{}:{}", self.host, self.port)
    }
}

impl AllowedHost {
    fn allows(&self, url: &Url) -> bool {
        url.scheme() == if self.https { "https" } else { "http" }
            && url.host_str() == Some(self.host.as_str())
            && url.port_or_known_default() == Some(self.port)
    }
}

/// The claim URL inside a setup token: base64 (standard or URL-safe, padded or not) of an
/// http(s) URL without credentials. Whether its host may be contacted is checked apart.
pub fn claim_url(setup_token: &str) -> Result<Url, AggregatorError> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    let token = setup_token.trim();
    if token.is_empty() || token.len() > SETUP_TOKEN_CHARS_MAX {
        return Err(AggregatorError::InvalidSetupToken("it is empty or too long"));
    }
    let bytes = [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
        .iter()
        .find_map(|engine| engine.decode(token).ok())
        .ok_or(AggregatorError::InvalidSetupToken("it is not base64"))?;
    let not_a_url = AggregatorError::InvalidSetupToken("it is not the base64 of an http(s) URL");
    let text = String::from_utf8(bytes).map_err(|_| not_a_url.clone())?;
    let text = text.trim();
    if text.len() > URL_CHARS_MAX || text.chars().any(char::is_control) {
        return Err(not_a_url);
    }
    let url = Url::parse(text).map_err(|_| not_a_url.clone())?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
        return Err(not_a_url);
    }
    if !url.username().is_empty() || url.password().is_some() || url.fragment().is_some() {
        return Err(AggregatorError::InvalidSetupToken("its URL carries credentials or a fragment"));
    }
    Ok(url)
}

/// A parsed access URL: where to call, and the basic-auth credentials its userinfo held.
/// Secret: `Debug` shows neither the credentials nor the URL.
struct AccessUrl {
    /// The URL without userinfo: the root the resources (`/accounts`) are under.
    root: Url,
    username: String,
    password: String,
}

impl fmt::Debug for AccessUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AccessUrl(***)")
    }
}

impl AccessUrl {
    /// `None` unless `text` is an http(s) URL with a username and password and no query or
    /// fragment.
    fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        if text.len() > URL_CHARS_MAX {
            return None;
        }
        let mut url = Url::parse(text).ok()?;
        if !matches!(url.scheme(), "http" | "https")
            || url.host_str().is_none_or(str::is_empty)
            || url.query().is_some()
            || url.fragment().is_some()
        {
            return None;
        }
        let username = percent_decode(url.username())?;
        let password = percent_decode(url.password()?)?;
        if username.is_empty() || password.is_empty() {
            return None;
        }
        url.set_username("").ok()?;
        url.set_password(None).ok()?;
        Some(Self { root: url, username, password })
    }

    fn accounts(&self) -> Url {
        let mut url = self.root.clone();
        let path = format!("{}/accounts", self.root.path().trim_end_matches('/'));
        url.set_path(&path);
        url
    }
}

/// `text` with its `%XX` escapes decoded (the userinfo of a URL); `None` if malformed.
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'%' {
            let hex = std::str::from_utf8(bytes.get(index + 1..index + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            index += 3;
        } else {
            out.push(bytes[index]);
            index += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// A SimpleFIN amount — a decimal string such as `-33.29` — exactly, in minor units of a
/// currency with `exponent` decimals. `None` for anything else: a sign other than one
/// leading `-` or `+`, no digits before the point, digits past the currency's precision
/// that are not zeros (`1.005` dollars is no number of cents), exponents, or overflow.
pub fn parse_amount(text: &str, exponent: u8) -> Option<i64> {
    if text.is_empty() || text.len() > AMOUNT_CHARS_MAX {
        return None;
    }
    let (negative, unsigned) = match text.as_bytes()[0] {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let (whole, fraction) = match unsigned.split_once('.') {
        Some((_, "")) => return None,
        Some((whole, fraction)) => (whole, fraction),
        None => (unsigned, ""),
    };
    if whole.is_empty()
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !fraction.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let exponent = usize::from(exponent);
    let (kept, beyond) = fraction.split_at(fraction.len().min(exponent));
    if beyond.bytes().any(|b| b != b'0') {
        return None;
    }
    let padding = std::iter::repeat_n(b'0', exponent - kept.len());
    let mut minor: i64 = 0;
    for digit in whole.bytes().chain(kept.bytes()).chain(padding) {
        minor = minor.checked_mul(10)?.checked_add(i64::from(digit - b'0'))?;
    }
    Some(if negative { -minor } else { minor })
}

/// Where the next transactions call resumes: requests start at `from` (Unix seconds,
/// inclusive); of the transactions posted exactly at `from`, those with an id up to
/// `after_id` were handed out already. Written `sf1.<from>` or `sf1.<from>.<hex of id>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Position {
    pub from: i64,
    pub after_id: Option<String>,
}

impl Position {
    pub fn encode(&self) -> String {
        match &self.after_id {
            Some(id) => format!("sf1.{}.{}", self.from, hex::encode(id)),
            None => format!("sf1.{}", self.from),
        }
    }

    pub fn decode(cursor: &str) -> Result<Self, AggregatorError> {
        let mut parts = cursor.strip_prefix("sf1.").ok_or(AggregatorError::InvalidToken)?.split('.');
        let from = parts.next().and_then(|from| from.parse().ok()).ok_or(AggregatorError::InvalidToken)?;
        let after_id = match parts.next() {
            Some(id) => Some(
                hex::decode(id)
                    .ok()
                    .and_then(|bytes| String::from_utf8(bytes).ok())
                    .ok_or(AggregatorError::InvalidToken)?,
            ),
            None => None,
        };
        if parts.next().is_some() {
            return Err(AggregatorError::InvalidToken);
        }
        Ok(Self { from, after_id })
    }
}

/// An Account Set as sent. Every part is taken leniently (`Value`s converted one by one),
/// so one malformed account or transaction is skipped instead of failing the answer.
#[derive(Deserialize)]
struct WireAccountSet {
    #[serde(default)]
    errors: Option<Vec<Value>>,
    #[serde(default)]
    errlist: Option<Vec<Value>>,
    accounts: Vec<Value>,
}

#[derive(Deserialize)]
struct WireAccount {
    id: String,
    name: String,
    currency: String,
    /// SimpleFIN 2's connection id, which `errlist` entries may name.
    #[serde(default)]
    conn_id: Option<String>,
    #[serde(default)]
    transactions: Option<Vec<Value>>,
}

#[derive(Deserialize)]
struct WireTransaction {
    id: String,
    #[serde(default)]
    posted: Option<i64>,
    amount: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    payee: Option<String>,
    #[serde(default)]
    pending: Option<bool>,
    #[serde(default)]
    mcc: Option<String>,
}

/// One entry of an Account Set's error list.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct ServerError {
    /// SimpleFIN 2's code (`con.auth`, `act.failed`, …); none for a plain string.
    code: Option<String>,
    message: String,
    account_id: Option<String>,
    conn_id: Option<String>,
}

impl ServerError {
    fn from_value(value: &Value) -> Option<Self> {
        let text = |key: &str| value.get(key).and_then(Value::as_str).map(str::to_owned);
        let message = match value {
            Value::String(message) => message.clone(),
            Value::Object(_) => text("msg").or_else(|| text("message")).unwrap_or_default(),
            _ => return None,
        };
        Some(Self {
            code: text("code"),
            message: sanitised(&message),
            account_id: text("account_id"),
            conn_id: text("conn_id"),
        })
    }

    /// What a failure with this error is to Coffer.
    fn into_aggregator_error(self) -> AggregatorError {
        match self.code.as_deref() {
            Some("con.auth") => AggregatorError::LoginRequired,
            _ if self.message.is_empty() => {
                AggregatorError::Unavailable("the SimpleFIN server could not reach this account".into())
            }
            _ => AggregatorError::Unavailable(format!("the SimpleFIN server says: {}", self.message)),
        }
    }
}

/// A server's message as Coffer may show it: no control characters, bounded.
fn sanitised(message: &str) -> String {
    let kept: String = message.chars().filter(|c| !c.is_control()).take(MESSAGE_CHARS_MAX).collect();
    kept.trim().to_owned()
}

/// An Account Set as Coffer reads it.
struct AccountSet {
    accounts: Vec<WireAccount>,
    errors: Vec<ServerError>,
}

fn account_set(body: &[u8]) -> Result<AccountSet, AggregatorError> {
    let wire: WireAccountSet = serde_json::from_slice(body).map_err(|_| {
        AggregatorError::Unavailable("the SimpleFIN server's answer is not an account set".into())
    })?;
    let errors = wire
        .errlist
        .into_iter()
        .flatten()
        .chain(wire.errors.into_iter().flatten())
        .take(ERRORS_MAX)
        .filter_map(|value| ServerError::from_value(&value))
        .collect();
    let accounts = wire
        .accounts
        .iter()
        .filter_map(|value| WireAccount::deserialize(value).ok())
        .filter(|account| !account.id.is_empty() && account.id.len() <= ID_BYTES_MAX)
        .collect();
    Ok(AccountSet { accounts, errors })
}

/// A listed account as Coffer keeps it; `None` for a custom currency (a URL) or one Coffer
/// does not keep: its transactions could not be recorded.
fn account(wire: &WireAccount) -> Option<Account> {
    let currency = Currency::parse(&wire.currency)?;
    Some(Account {
        id: wire.id.clone(),
        name: wire.name.clone(),
        mask: None,
        currency: currency.code().to_owned(),
        kind: None,
    })
}

/// A posted transaction and its posted time; `None` for a pending one (not recorded until
/// it posts) or one that does not parse.
fn transaction(value: &Value, currency: Currency) -> Option<(i64, Transaction)> {
    let wire = WireTransaction::deserialize(value).ok()?;
    let posted = wire.posted.filter(|posted| *posted > 0)?;
    if wire.pending == Some(true) || wire.id.is_empty() || wire.id.len() > ID_BYTES_MAX {
        return None;
    }
    let amount = parse_amount(&wire.amount, currency.exponent())?;
    let booked_on = time::OffsetDateTime::from_unix_timestamp(posted).ok()?.date();
    Some((
        posted,
        Transaction {
            id: wire.id,
            booked_on,
            amount,
            currency: currency.code().to_owned(),
            description: wire.description.unwrap_or_default(),
            merchant: wire.payee,
            mcc: wire.mcc,
        },
    ))
}

/// The page of `transactions` (posted time, transaction; any order) that follows
/// `position` in the window `[position.from, end)` that `now` bounds, at most `limit`.
fn page_of(
    mut transactions: Vec<(i64, Transaction)>,
    position: &Position,
    end: i64,
    now: i64,
    limit: usize,
) -> TransactionsPage {
    transactions.retain(|(posted, transaction)| {
        *posted >= position.from
            && *posted < end
            && !(*posted == position.from
                && position.after_id.as_deref().is_some_and(|after| transaction.id.as_str() <= after))
    });
    transactions.sort_by(|(a_posted, a), (b_posted, b)| (a_posted, &a.id).cmp(&(b_posted, &b.id)));
    transactions.dedup_by(|(_, a), (_, b)| a.id == b.id);
    if transactions.len() > limit {
        transactions.truncate(limit);
        let (posted, last) = transactions.last().expect("limit is at least one");
        let next = Position { from: *posted, after_id: Some(last.id.clone()) };
        let added = transactions.into_iter().map(|(_, transaction)| transaction).collect();
        return TransactionsPage { added, next_cursor: next.encode(), has_more: true };
    }
    let added = transactions.into_iter().map(|(_, transaction)| transaction).collect();
    if end < now {
        let next = Position { from: end, after_id: None };
        return TransactionsPage { added, next_cursor: next.encode(), has_more: true };
    }
    // Up to now: the next sync reaches back for what banks post late.
    let next = Position { from: now - OVERLAP_DAYS * DAY_S, after_id: None };
    TransactionsPage { added, next_cursor: next.encode(), has_more: false }
}

/// The SimpleFIN aggregator.
pub struct SimpleFin {
    hosts: Vec<AllowedHost>,
    client: reqwest::Client,
    clock: Clock,
}

impl fmt::Debug for SimpleFin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimpleFin").field("hosts", &self.hosts).finish_non_exhaustive()
    }
}

/// A failed request as an aggregator error, without the URL (reqwest's messages carry it).
fn unreachable_server(error: reqwest::Error) -> AggregatorError {
    AggregatorError::Unavailable(format!("the SimpleFIN server did not answer: {}", error.without_url()))
}

/// A response's body, refused past `max` bytes.
async fn body_of(mut response: reqwest::Response, max: usize) -> Result<Vec<u8>, AggregatorError> {
    let too_large = || AggregatorError::Unavailable("the SimpleFIN server's answer is too large".into());
    if response.content_length().is_some_and(|length| length > max as u64) {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(unreachable_server)? {
        if body.len() + chunk.len() > max {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

impl SimpleFin {
    /// A SimpleFIN aggregator that may contact `hosts` only.
    pub fn new(hosts: Vec<AllowedHost>) -> anyhow::Result<Self> {
        Self::with_clock(hosts, std::sync::Arc::new(|| i64::try_from(store::now_ns()).unwrap_or(i64::MAX)))
    }

    /// One whose "now" is `clock` (nanoseconds since the epoch).
    pub fn with_clock(hosts: Vec<AllowedHost>, clock: Clock) -> anyhow::Result<Self> {
        let client = crate::notifications::http_client()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(CONNECT_TIMEOUT)
            .user_agent(concat!("Coffer/", env!("CARGO_PKG_VERSION"), " SimpleFIN"))
            .build()?;
        Ok(Self { hosts, client, clock })
    }

    fn now_s(&self) -> i64 {
        (self.clock)().div_euclid(1_000_000_000)
    }

    fn allowed(&self, url: &Url) -> Result<(), AggregatorError> {
        if self.hosts.iter().any(|host| host.allows(url)) {
            Ok(())
        } else {
            Err(AggregatorError::HostNotAllowed)
        }
    }

    /// The stored access token as an access URL that may still be contacted.
    fn access(&self, access_token: &str) -> Result<AccessUrl, AggregatorError> {
        let access = AccessUrl::parse(access_token).ok_or(AggregatorError::InvalidToken)?;
        self.allowed(&access.root)?;
        Ok(access)
    }

    async fn claim(&self, setup_token: &str) -> Result<Link, AggregatorError> {
        let claim = claim_url(setup_token)?;
        self.allowed(&claim)?;
        let response = self
            .client
            .post(claim)
            .header(reqwest::header::CONTENT_LENGTH, "0")
            .send()
            .await
            .map_err(unreachable_server)?;
        match response.status() {
            StatusCode::FORBIDDEN => return Err(AggregatorError::SetupTokenRejected),
            status if !status.is_success() => {
                return Err(AggregatorError::Unavailable(format!(
                    "the SimpleFIN server answered the claim {status}"
                )));
            }
            _ => {}
        }
        let body = body_of(response, CLAIM_BODY_BYTES_MAX).await?;
        let text = String::from_utf8(body).unwrap_or_default();
        let access = AccessUrl::parse(&text).ok_or_else(|| {
            AggregatorError::Unavailable(
                "the SimpleFIN server's answer to the claim is not an access URL".into(),
            )
        })?;
        // Claimed, so the token is spent; still, a server that hands out an access URL on
        // another host must not lead Coffer there.
        self.allowed(&access.root)?;
        let digest = Sha256::digest(text.trim().as_bytes());
        Ok(Link {
            connection_id: format!("sfin-{}", hex::encode(&digest[..16])),
            access_token: text.trim().to_owned(),
        })
    }

    /// `GET {access URL}/accounts` with `query`.
    async fn fetch(
        &self,
        access: &AccessUrl,
        query: &[(&str, String)],
    ) -> Result<AccountSet, AggregatorError> {
        let mut url = access.accounts();
        url.query_pairs_mut().extend_pairs(query);
        let response = self
            .client
            .get(url)
            .basic_auth(&access.username, Some(&access.password))
            .send()
            .await
            .map_err(unreachable_server)?;
        match response.status() {
            StatusCode::FORBIDDEN | StatusCode::UNAUTHORIZED => return Err(AggregatorError::AccessRevoked),
            StatusCode::PAYMENT_REQUIRED => {
                return Err(AggregatorError::Unavailable(
                    "the SimpleFIN server wants the customer's subscription renewed (402)".into(),
                ));
            }
            status if !status.is_success() => {
                return Err(AggregatorError::Unavailable(format!("the SimpleFIN server answered {status}")));
            }
            _ => {}
        }
        account_set(&body_of(response, ACCOUNTS_BODY_BYTES_MAX).await?)
    }

    async fn accounts_now(&self, access_token: &str) -> Result<Vec<Account>, AggregatorError> {
        let access = self.access(access_token)?;
        let set = self.fetch(&access, &[("balances-only", "1".to_owned())]).await?;
        if set.accounts.is_empty()
            && let Some(error) = set.errors.into_iter().next()
        {
            return Err(error.into_aggregator_error());
        }
        Ok(set.accounts.iter().filter_map(account).collect())
    }

    async fn transactions_now(
        &self,
        access_token: &str,
        account_id: &str,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<TransactionsPage, AggregatorError> {
        let access = self.access(access_token)?;
        let now = self.now_s();
        let position = match cursor {
            Some(cursor) => Position::decode(cursor)?,
            None => Position { from: now - HISTORY_DAYS * DAY_S, after_id: None },
        };
        // A position past now (the clock went back) waits for now to catch up.
        let position = Position { from: position.from.min(now), ..position };
        let end = (position.from + WINDOW_DAYS * DAY_S).min(now);
        let query = [
            ("account", account_id.to_owned()),
            ("start-date", position.from.to_string()),
            ("end-date", end.to_string()),
        ];
        let mut set = self.fetch(&access, &query).await?;
        let listed = set.accounts.iter().position(|account| account.id == account_id);
        let conn_id = listed.and_then(|index| set.accounts[index].conn_id.clone());
        // Errors that name this account or its connection; a plain string names nothing.
        let named = set.errors.iter().position(|error| {
            error.account_id.as_deref() == Some(account_id)
                || (error.account_id.is_none() && error.conn_id.is_some() && error.conn_id == conn_id)
        });
        let wire = match (listed, named) {
            (Some(index), None) => set.accounts.swap_remove(index),
            (_, Some(error)) => return Err(set.errors.swap_remove(error).into_aggregator_error()),
            // Not listed: it failed this time, and the (partial) error list says why, if at all.
            (None, None) => {
                return Err(set.errors.into_iter().next().unwrap_or_default().into_aggregator_error());
            }
        };
        // An account whose currency Coffer cannot keep has nothing to record (it is not
        // linked in the first place; this covers a server that changed it since).
        let Some(currency) = Currency::parse(&wire.currency) else {
            let next = Position { from: now - OVERLAP_DAYS * DAY_S, after_id: None };
            return Ok(TransactionsPage { added: Vec::new(), next_cursor: next.encode(), has_more: false });
        };
        let transactions =
            wire.transactions.iter().flatten().filter_map(|value| transaction(value, currency)).collect();
        Ok(page_of(transactions, &position, end, now, limit.clamp(1, PAGE_MAX) as usize))
    }
}

impl Aggregator for SimpleFin {
    fn name(&self) -> &'static str {
        "simplefin"
    }

    fn institutions(&self) -> Vec<Institution> {
        vec![Institution {
            id: INSTITUTION_ID,
            name: "SimpleFIN (your bank, through a SimpleFIN server such as the SimpleFIN Bridge)",
            behaviour: "links with a setup token from your SimpleFIN server; syncs your bank's posted transactions",
            link_method: LinkMethod::SetupToken,
        }]
    }

    fn link(&self, request: LinkRequest) -> BoxFuture<'_, Result<Link, AggregatorError>> {
        Box::pin(async move {
            if request.institution_id != INSTITUTION_ID {
                return Err(AggregatorError::UnknownInstitution);
            }
            let token = request
                .setup_token
                .ok_or(AggregatorError::InvalidSetupToken("linking SimpleFIN takes a setup token"))?;
            self.claim(&token.0).await
        })
    }

    fn accounts<'a>(&'a self, access_token: &'a str) -> BoxFuture<'a, Result<Vec<Account>, AggregatorError>> {
        Box::pin(self.accounts_now(access_token))
    }

    fn transactions<'a>(
        &'a self,
        access_token: &'a str,
        account_id: &'a str,
        cursor: Option<&'a str>,
        limit: u32,
    ) -> BoxFuture<'a, Result<TransactionsPage, AggregatorError>> {
        Box::pin(self.transactions_now(access_token, account_id, cursor, limit))
    }
}

#[cfg(test)]
mod tests {
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
    use serde_json::json;

    use super::*;

    #[test]
    fn amounts_parse_exactly_into_minor_units() {
        let cases = [
            ("-33.29", 2, Some(-3329)),
            ("33.29", 2, Some(3329)),
            ("+2500.00", 2, Some(250_000)),
            ("2500", 2, Some(250_000)),
            ("0.5", 2, Some(50)),
            ("-0.05", 2, Some(-5)),
            ("12.340", 2, Some(1234)),
            ("-1200", 0, Some(-1200)),
            ("1200.00", 0, Some(1200)),
            ("0", 2, Some(0)),
            ("92233720368547758.07", 2, Some(i64::MAX)),
        ];
        for (text, exponent, expected) in cases {
            assert_eq!(parse_amount(text, exponent), expected, "{text}");
        }
        for text in [
            "",
            "-",
            "+",
            ".5",
            "5.",
            "1.005",
            "12.3.4",
            "1,000.00",
            " 12.00",
            "12.00 ",
            "1e3",
            "--1",
            "-+1",
            "0x10",
            "١٢",
            "NaN",
            "92233720368547758.08",
            "99999999999999999999999",
        ] {
            assert_eq!(parse_amount(text, 2), None, "{text:?} is not an amount");
        }
        assert_eq!(parse_amount(&"1".repeat(41), 0), None, "bounded");
        assert_eq!(parse_amount("1.5", 0), None, "no half yen");
    }

    #[test]
    fn setup_tokens_decode_to_claim_urls() {
        let url = "https://bridge.simplefin.org/simplefin/claim/demo";
        for token in
            [STANDARD.encode(url), URL_SAFE_NO_PAD.encode(url), format!("  {}\n", STANDARD.encode(url))]
        {
            assert_eq!(claim_url(&token).unwrap().as_str(), url, "{token}");
        }
        // The demo token the protocol's documentation shows.
        let demo = claim_url("aHR0cHM6Ly9icmlkZ2Uuc2ltcGxlZmluLm9yZy9zaW1wbGVmaW4vY2xhaW0vZGVtbw==").unwrap();
        assert_eq!(demo.as_str(), url);
        let invalid = |token: &str| matches!(claim_url(token), Err(AggregatorError::InvalidSetupToken(_)));
        assert!(invalid(""));
        assert!(invalid("not base64!"));
        assert!(invalid(&STANDARD.encode("just words")));
        assert!(invalid(&STANDARD.encode("ftp://bridge.simplefin.org/claim/x")));
        assert!(invalid(&STANDARD.encode("file:///etc/passwd")));
        assert!(invalid(&STANDARD.encode("https://user:pass@bridge.simplefin.org/claim/x")));
        assert!(invalid(&STANDARD.encode([0xff, 0xfe, 0x00])));
        assert!(invalid(&"A".repeat(SETUP_TOKEN_CHARS_MAX + 4)));
    }

    #[test]
    fn allowed_hosts_match_scheme_host_and_port() {
        let bridge: AllowedHost = "bridge.simplefin.org".parse().unwrap();
        let local: AllowedHost = "http://127.0.0.1:8123".parse().unwrap();
        let url = |text: &str| Url::parse(text).unwrap();
        assert!(bridge.allows(&url("https://bridge.simplefin.org/simplefin/claim/x")));
        assert!(bridge.allows(&url("https://BRIDGE.simplefin.org:443/simplefin")));
        assert!(!bridge.allows(&url("http://bridge.simplefin.org/simplefin/claim/x")), "https required");
        assert!(!bridge.allows(&url("https://bridge.simplefin.org:8443/x")), "another port");
        assert!(!bridge.allows(&url("https://bridge.simplefin.org.evil.example/x")));
        assert!(!bridge.allows(&url("https://evil.example/bridge.simplefin.org")));
        assert!(local.allows(&url("http://127.0.0.1:8123/simplefin/claim/x")));
        assert!(!local.allows(&url("http://127.0.0.1:8124/x")));
        assert!(!local.allows(&url("https://127.0.0.1:8123/x")), "the entry says http");
        assert_eq!(format!("{bridge:?}"), "https://bridge.simplefin.org:443");
        for wrong in
            ["", "ftp://x.example", "https://u:p@x.example", "https://x.example/path", "x.example?q=1"]
        {
            assert!(wrong.parse::<AllowedHost>().is_err(), "{wrong:?}");
        }
        let defaults: Vec<AllowedHost> = DEFAULT_HOSTS.split(',').map(|host| host.parse().unwrap()).collect();
        assert_eq!(defaults.len(), 2);
    }

    #[test]
    fn access_urls_keep_their_credentials_out_of_the_url_and_out_of_debug() {
        let access = AccessUrl::parse("https://user123:p%40ss456@bridge.simplefin.org/simplefin").unwrap();
        assert_eq!((access.username.as_str(), access.password.as_str()), ("user123", "p@ss456"));
        assert_eq!(access.accounts().as_str(), "https://bridge.simplefin.org/simplefin/accounts");
        assert_eq!(format!("{access:?}"), "AccessUrl(***)");
        let trailing = AccessUrl::parse("https://u:p@bridge.simplefin.org/simplefin/").unwrap();
        assert_eq!(trailing.accounts().path(), "/simplefin/accounts");
        for wrong in [
            "https://bridge.simplefin.org/simplefin",
            "https://user@bridge.simplefin.org/simplefin",
            "https://u:p@bridge.simplefin.org/simplefin?x=1",
            "ftp://u:p@bridge.simplefin.org/",
            "https://u:p%zz@bridge.simplefin.org/",
            "<html>nope</html>",
        ] {
            assert!(AccessUrl::parse(wrong).is_none(), "{wrong}");
        }
    }

    #[test]
    fn cursors_round_trip_and_refuse_anything_else() {
        for position in [
            Position { from: 1_700_000_000, after_id: None },
            Position { from: 1_700_000_000, after_id: Some("TRN-1.2 ü".into()) },
            Position { from: -5, after_id: None },
        ] {
            assert_eq!(Position::decode(&position.encode()).unwrap(), position);
        }
        for wrong in ["", "1700000000", "sf1.", "sf1.x", "sf1.1.zz", "sf1.1.41.41", "sf2.1", "17.0"] {
            assert_eq!(Position::decode(wrong), Err(AggregatorError::InvalidToken), "{wrong}");
        }
    }

    fn posted(id: &str, at: i64) -> (i64, Transaction) {
        let value = json!({"id": id, "posted": at, "amount": "-1.00", "description": id});
        transaction(&value, Currency::parse("USD").unwrap()).unwrap()
    }

    #[test]
    fn pages_follow_posted_time_then_id_and_windows_run_up_to_now() {
        let now = 100 * DAY_S;
        let start = Position { from: now - 90 * DAY_S, after_id: None };
        let end = start.from + WINDOW_DAYS * DAY_S;
        let at = start.from + 5;
        let window =
            vec![posted("c", at), posted("a", at), posted("b", at), posted("z", at + 1), posted("late", end)];
        let ids = |page: &TransactionsPage| page.added.iter().map(|t| t.id.clone()).collect::<Vec<_>>();
        let first = page_of(window.clone(), &start, end, now, 2);
        assert_eq!((ids(&first), first.has_more), (vec!["a".to_owned(), "b".to_owned()], true));
        let resume = Position::decode(&first.next_cursor).unwrap();
        assert_eq!(resume, Position { from: at, after_id: Some("b".into()) });
        let second = page_of(window.clone(), &resume, end, now, 2);
        assert_eq!(ids(&second), ["c", "z"], "the end of the window is not part of it");
        assert!(second.has_more, "later windows remain");
        assert_eq!(Position::decode(&second.next_cursor).unwrap(), Position { from: end, after_id: None });
        let last = page_of(vec![posted("late", end)], &Position { from: end, after_id: None }, now, now, 10);
        assert_eq!((ids(&last), last.has_more), (vec!["late".to_owned()], false));
        let overlap = Position::decode(&last.next_cursor).unwrap();
        assert_eq!(overlap, Position { from: now - OVERLAP_DAYS * DAY_S, after_id: None }, "reaches back");
    }

    #[test]
    fn pending_and_malformed_transactions_are_not_recorded() {
        let usd = Currency::parse("USD").unwrap();
        let jpy = Currency::parse("JPY").unwrap();
        let (at, coffee) = transaction(
            &json!({"id": "t1", "posted": 1_700_000_000, "amount": "-33.29", "description": "BLUE BOTTLE",
                    "payee": "Blue Bottle", "transacted_at": 1_699_990_000, "extra": {"category": "food"}}),
            usd,
        )
        .unwrap();
        assert_eq!(
            (at, coffee.amount, coffee.merchant.as_deref()),
            (1_700_000_000, -3329, Some("Blue Bottle"))
        );
        assert_eq!(coffee.booked_on.to_string(), "2023-11-14");
        let yen = transaction(
            &json!({"id": "t2", "posted": 1_700_000_000, "amount": "-1200", "description": "x"}),
            jpy,
        );
        assert_eq!(yen.unwrap().1.amount, -1200);
        for skipped in [
            json!({"id": "p", "posted": 0, "amount": "-1.00", "description": "pending", "pending": true}),
            json!({"id": "p", "posted": 1_700_000_000, "amount": "-1.00", "description": "pending", "pending": true}),
            json!({"id": "p", "posted": 0, "amount": "-1.00", "description": "not posted"}),
            json!({"id": "m", "posted": 1_700_000_000, "amount": "-1.005", "description": "sub-cent"}),
            json!({"id": "m", "posted": 1_700_000_000, "amount": -1.5, "description": "a number"}),
            json!({"id": "m", "posted": "yesterday", "amount": "-1.00", "description": "x"}),
            json!({"posted": 1_700_000_000, "amount": "-1.00", "description": "no id"}),
            json!({"id": "x".repeat(ID_BYTES_MAX + 1), "posted": 1_700_000_000, "amount": "-1.00"}),
            json!("not an object"),
        ] {
            assert!(transaction(&skipped, usd).is_none(), "{skipped}");
        }
    }

    #[test]
    fn account_sets_keep_what_parses_and_read_both_error_lists() {
        let body = json!({
            "errors": ["Connection to Flaky Credit Union failed"],
            "errlist": [{"code": "act.failed", "msg": "Try again\u{7} later", "account_id": "A2"},
                        {"code": "con.auth", "msg": "Log in again", "conn_id": "CON-1"}, 42],
            "accounts": [
                {"id": "A1", "name": "Checking", "currency": "USD", "balance": "10.00", "balance-date": 1,
                 "org": {"name": "First Bank", "domain": "first.example"}, "conn_id": "CON-1"},
                {"id": "A3", "name": "Miles", "currency": "https://airline.example/miles", "balance": "5"},
                {"id": 7, "name": "broken"},
                {"id": "A4", "name": "Shillings", "currency": "KES", "balance": "5"}
            ]
        });
        let set = account_set(body.to_string().as_bytes()).unwrap();
        assert_eq!(set.accounts.iter().map(|a| a.id.as_str()).collect::<Vec<_>>(), ["A1", "A3", "A4"]);
        let kept: Vec<Account> = set.accounts.iter().filter_map(account).collect();
        assert_eq!(
            kept.iter().map(|a| a.id.as_str()).collect::<Vec<_>>(),
            ["A1", "A4"],
            "no custom currency"
        );
        assert_eq!(set.errors.len(), 3, "{:?}", set.errors);
        assert_eq!(set.errors[0].message, "Try again later", "sanitised");
        assert_eq!(set.errors[0].account_id.as_deref(), Some("A2"));
        assert_eq!(set.errors[1].clone().into_aggregator_error(), AggregatorError::LoginRequired);
        assert_eq!(
            set.errors[2].clone().into_aggregator_error(),
            AggregatorError::Unavailable(
                "the SimpleFIN server says: Connection to Flaky Credit Union failed".into()
            )
        );
        assert!(account_set(b"<html>").is_err());
        assert!(account_set(br#"{"errors": []}"#).is_err(), "accounts are required");
    }
}
