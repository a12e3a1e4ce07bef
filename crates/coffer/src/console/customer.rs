//! A customer's pages: home (wallets with live balances, the latest operations, unread
//! notifications, opening a wallet), one wallet (send, top up, withdraw) and the history
//! (filters, paging, CSV).
//!
//! Every money form carries an `Idempotency-Key` made when the page was rendered, so a
//! double click, a resubmit or the back button moves money once: the second request
//! with the key gets the first one's answer (waiting for it while it runs).

use std::time::Duration;

use askama::Template;
use axum::{
    extract::{Query, State, ws::WebSocketUpgrade},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Redirect, Response},
};
use serde::Deserialize;
use store::{PaymentKind, WalletRow};
use time::{Date, Time};
use uuid::Uuid;

use super::{Chrome, IdPath, PageError, Problems, page, session::Posted, session::Signed};
use crate::{
    http::{
        AppState,
        dates::{day, rfc3339},
        error::{ApiError, Problem},
        idempotency::{Answered, IdempotencyKeyHeader},
        routes::wallets::{NewWalletBody, open_wallet as open, opened_wallet_id, operations_csv},
    },
    wallet_api::{self, HistoryQuery, Keyed, Payment, SendMoney, To},
    wallets::{
        Balance, Currency, WalletKind,
        history::{Operation, OperationKind, OperationStatus},
        money::{CURRENCIES, shown},
    },
};

/// Wallets shown on a page at most (a customer holds fewer).
const WALLETS_SHOWN: u32 = store::WALLETS_PER_CUSTOMER_MAX as u32;
/// Operations on the home page and a wallet's page.
const RECENT: u32 = 10;
/// How long a resubmitted form waits for the first submission's answer.
const IN_USE_WAIT: Duration = Duration::from_secs(5);

/// A wallet as a page shows it.
pub struct WalletLine {
    pub id: Uuid,
    pub name: String,
    pub currency: String,
    pub posted: String,
    pub pending: String,
    pub available: String,
}

impl WalletLine {
    pub fn of(wallet: &WalletRow) -> Self {
        let balance = Balance::of(wallet);
        let kind = WalletKind::from(wallet.wallet_type);
        let kind =
            serde_json::to_value(kind).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
        Self {
            id: wallet.id,
            name: wallet
                .name
                .clone()
                .unwrap_or_else(|| format!("{} {}", wallet.currency, kind.replace('_', " "))),
            currency: wallet.currency.clone(),
            posted: shown(balance.posted, &wallet.currency),
            pending: shown(balance.pending, &wallet.currency),
            available: shown(balance.available, &wallet.currency),
        }
    }
}

/// An operation as a page shows it.
pub struct OperationLine {
    pub when: String,
    pub kind: &'static str,
    pub amount: String,
    pub incoming: bool,
    pub status: &'static str,
    pub description: String,
}

impl OperationLine {
    pub fn of(operation: &Operation) -> Self {
        let when = rfc3339(operation.timestamp);
        Self {
            when: when.replace('T', " ").chars().take(19).collect(),
            kind: label(operation.kind),
            amount: shown(operation.amount, &operation.currency),
            incoming: operation.amount > 0,
            status: operation.status.as_str(),
            description: operation.description.clone().unwrap_or_default(),
        }
    }
}

fn label(kind: OperationKind) -> &'static str {
    match kind {
        OperationKind::TransferIn => "received",
        OperationKind::TransferOut => "sent",
        OperationKind::TopUp => "top-up",
        OperationKind::Withdrawal => "withdrawal",
        OperationKind::Fee => "fee",
        OperationKind::Reversal => "reversal",
        OperationKind::Payment => "payment",
        OperationKind::CreditLine => "credit line",
        OperationKind::Conversion => "conversion",
        OperationKind::Adjustment => "adjustment",
    }
}

/// A notification line on the home page.
pub struct NoticeLine {
    pub id: Uuid,
    pub title: String,
    pub body: String,
}

/// The part of the home page that the live stream refreshes.
#[derive(Template)]
#[template(path = "console/overview.html")]
pub struct Overview {
    wallets: Vec<WalletLine>,
    operations: Vec<OperationLine>,
}

#[derive(Template)]
#[template(path = "console/home.html")]
struct HomePage {
    chrome: Chrome,
    name: String,
    overview: Overview,
    notices: Vec<NoticeLine>,
    csrf: String,
    key: String,
    currencies: Vec<&'static str>,
    problems: Problems,
}

/// `GET /app`.
pub async fn home(State(state): State<AppState>, signed: Signed) -> Result<Response, PageError> {
    home_page(&state, &signed, Problems::default()).await.map(|(_, page)| page)
}

async fn home_page(
    state: &AppState,
    signed: &Signed,
    problems: Problems,
) -> Result<(StatusCode, Response), PageError> {
    let customer = state.identity.customer(signed.customer_id).await.map_err(ApiError::from)?;
    let notices = state
        .endpoints
        .inbox(signed.customer_id, None, true, 5)
        .await
        .map_err(ApiError::from)?
        .into_iter()
        .map(|row| NoticeLine { id: row.id, title: row.title, body: row.body })
        .collect();
    let body = page(&HomePage {
        chrome: Chrome::new("Home", "home", Some(signed.csrf())),
        name: customer.name,
        overview: overview_of(state, signed.customer_id).await?,
        notices,
        csrf: signed.csrf().to_owned(),
        key: Uuid::new_v4().to_string(),
        currencies: CURRENCIES.iter().map(|currency| currency.code()).collect(),
        problems,
    });
    Ok((StatusCode::OK, body))
}

async fn overview_of(state: &AppState, customer_id: Uuid) -> Result<Overview, PageError> {
    let wallets = state.wallets.list(customer_id, None, WALLETS_SHOWN).await.map_err(ApiError::from)?;
    let query = HistoryQuery { limit: Some(RECENT), ..HistoryQuery::default() };
    let recent = wallet_api::history(state, customer_id, query).await?;
    Ok(Overview {
        wallets: wallets.iter().map(WalletLine::of).collect(),
        operations: recent.data.iter().map(OperationLine::of).collect(),
    })
}

/// `GET /app/overview`: the wallets and latest operations alone, for the live refresh.
pub async fn overview(State(state): State<AppState>, signed: Signed) -> Result<Response, PageError> {
    Ok(page(&overview_of(&state, signed.customer_id).await?))
}

/// `GET /app/live`: the customer's event stream (the API's `GET /v1/stream`) over the
/// session cookie, for a page on this origin only; the page refreshes what changed.
pub async fn live(
    State(state): State<AppState>,
    signed: Signed,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Result<Response, PageError> {
    let host = headers.get(header::HOST).and_then(|value| value.to_str().ok());
    let origin = headers.get(header::ORIGIN).and_then(|value| value.to_str().ok());
    let same_origin =
        origin.and_then(|origin| origin.split_once("://")).is_some_and(|(_, rest)| Some(rest) == host);
    if !same_origin {
        return Err(PageError::Forged);
    }
    Ok(crate::http::routes::stream::open(&state, signed.customer_id, None, upgrade).await?)
}

#[derive(Deserialize)]
pub struct OpenWalletForm {
    #[serde(default)]
    currency: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    key: String,
}

/// `POST /app/wallets`: opens a wallet (the API's operation, under the form's key).
pub async fn open_wallet(
    State(state): State<AppState>,
    signed: Signed,
    posted: Posted<OpenWalletForm>,
) -> Result<Response, PageError> {
    signed.check(posted.csrf.as_deref())?;
    let OpenWalletForm { currency, name, key } = posted.form;
    let key = form_key(&key)?;
    let name = Some(name.trim().to_owned()).filter(|name| !name.is_empty());
    let body = format!("{currency}\n{}", name.as_deref().unwrap_or(""));
    let keyed = || Keyed {
        customer_id: signed.customer_id,
        key: &key,
        route: "console: open wallet",
        body: body.as_bytes(),
    };
    let request = || NewWalletBody {
        currency: currency.clone(),
        kind: WalletKind::Wallet,
        name: name.clone(),
        credit_limit: 0,
    };
    let outcome = patiently(|| async { open(&state, keyed(), request()).await.map(answered_of) }).await;
    match settle(outcome)? {
        Ok(()) => {
            let id = Uuid::from_u128(opened_wallet_id(signed.customer_id, &key));
            Ok(Redirect::to(&format!("/app/wallets/{id}?done=opened")).into_response())
        }
        Err(problem) => {
            let (status, page) = home_page(&state, &signed, Problems::of_problem(problem.clone())).await?;
            let _ = status;
            Ok(with_status(page, problem_status(&problem)))
        }
    }
}

#[derive(Template)]
#[template(path = "console/wallet.html")]
struct WalletPage {
    chrome: Chrome,
    wallet: WalletLine,
    operations: Vec<OperationLine>,
    csrf: String,
    /// One fresh key per form.
    send_key: String,
    top_up_key: String,
    withdraw_key: String,
    form: MoneyForm,
    /// Which form the problems belong to.
    failed: &'static str,
    problems: Problems,
    done: Option<&'static str>,
}

/// What the money forms were filled in with, to show them again next to their errors.
#[derive(Deserialize, Default, Clone)]
pub struct MoneyForm {
    #[serde(default)]
    to: String,
    #[serde(default)]
    amount: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    token: String,
    #[serde(default)]
    key: String,
}

#[derive(Deserialize, Default)]
pub struct DoneQuery {
    done: Option<String>,
}

/// `GET /app/wallets/{id}`: someone else's wallet, or none, is the 404 page.
pub async fn wallet(
    State(state): State<AppState>,
    signed: Signed,
    IdPath(id): IdPath,
    Query(query): Query<DoneQuery>,
) -> Result<Response, PageError> {
    let done = match query.done.as_deref() {
        Some("opened") => Some("Your wallet is open."),
        Some("sent") => Some("Money sent."),
        Some("top-up") => Some("Top-up done."),
        Some("pending") => {
            Some("Accepted: the provider has not answered yet; the balance shows it as pending.")
        }
        Some("withdrawn") => Some("Withdrawal done."),
        _ => None,
    };
    wallet_page(&state, &signed, id, MoneyForm::default(), "", Problems::default(), done).await
}

async fn wallet_page(
    state: &AppState,
    signed: &Signed,
    id: Uuid,
    form: MoneyForm,
    failed: &'static str,
    problems: Problems,
    done: Option<&'static str>,
) -> Result<Response, PageError> {
    let wallet = state.wallets.owned(signed.customer_id, id).await.map_err(ApiError::from)?;
    let query = HistoryQuery { wallet_id: Some(id), limit: Some(RECENT), ..HistoryQuery::default() };
    let recent = wallet_api::history(state, signed.customer_id, query).await?;
    Ok(page(&WalletPage {
        chrome: Chrome::new(WalletLine::of(&wallet).name, "home", Some(signed.csrf())),
        wallet: WalletLine::of(&wallet),
        operations: recent.data.iter().map(OperationLine::of).collect(),
        csrf: signed.csrf().to_owned(),
        send_key: Uuid::new_v4().to_string(),
        top_up_key: Uuid::new_v4().to_string(),
        withdraw_key: Uuid::new_v4().to_string(),
        form,
        failed,
        problems,
        done,
    }))
}

/// `POST /app/wallets/{id}/send`: to a wallet id or an email address.
pub async fn send(
    State(state): State<AppState>,
    signed: Signed,
    IdPath(id): IdPath,
    posted: Posted<MoneyForm>,
) -> Result<Response, PageError> {
    signed.check(posted.csrf.as_deref())?;
    let form = posted.form;
    let wallet = state.wallets.owned(signed.customer_id, id).await.map_err(ApiError::from)?;
    let key = form_key(&form.key)?;
    let to = form.to.trim();
    let to = match Uuid::parse_str(to) {
        Ok(wallet_id) => To::Wallet(wallet_id),
        Err(_) => To::Email(to.to_owned()),
    };
    let Some(amount) = amount_in(&wallet, &form.amount) else {
        return refused(&state, &signed, id, form, "send", amount_problem(&wallet)).await;
    };
    let description = Some(form.description.trim().to_owned()).filter(|text| !text.is_empty());
    let body = format!("{id}\n{}\n{amount}\n{}", form.to.trim(), description.as_deref().unwrap_or(""));
    let outcome = patiently(|| async {
        let request = SendMoney {
            from_wallet_id: id,
            to: Some(match &to {
                To::Wallet(wallet) => To::Wallet(*wallet),
                To::Email(email) => To::Email(email.clone()),
            }),
            amount,
            description: description.clone(),
        };
        let keyed = Keyed {
            customer_id: signed.customer_id,
            key: &key,
            route: "console: send",
            body: body.as_bytes(),
        };
        wallet_api::transfer(&state, keyed, request).await
    })
    .await;
    match settle(outcome)? {
        Ok(()) => Ok(Redirect::to(&format!("/app/wallets/{id}?done=sent")).into_response()),
        Err(problem) => refused(&state, &signed, id, form, "send", problem).await,
    }
}

/// `POST /app/wallets/{id}/top-up`: from a card token of the payment provider.
pub async fn top_up(
    State(state): State<AppState>,
    signed: Signed,
    IdPath(id): IdPath,
    posted: Posted<MoneyForm>,
) -> Result<Response, PageError> {
    pay(state, signed, id, posted, PaymentKind::TopUp).await
}

/// `POST /app/wallets/{id}/withdraw`: to a bank account token.
pub async fn withdraw(
    State(state): State<AppState>,
    signed: Signed,
    IdPath(id): IdPath,
    posted: Posted<MoneyForm>,
) -> Result<Response, PageError> {
    pay(state, signed, id, posted, PaymentKind::Withdrawal).await
}

async fn pay(
    state: AppState,
    signed: Signed,
    id: Uuid,
    posted: Posted<MoneyForm>,
    kind: PaymentKind,
) -> Result<Response, PageError> {
    signed.check(posted.csrf.as_deref())?;
    let form = posted.form;
    let (which, done) = match kind {
        PaymentKind::TopUp => ("top-up", "top-up"),
        PaymentKind::Withdrawal => ("withdraw", "withdrawn"),
    };
    let wallet = state.wallets.owned(signed.customer_id, id).await.map_err(ApiError::from)?;
    let key = form_key(&form.key)?;
    let Some(amount) = amount_in(&wallet, &form.amount) else {
        return refused(&state, &signed, id, form, which, amount_problem(&wallet)).await;
    };
    let token = form.token.trim().to_owned();
    let body = format!("{id}\n{amount}\n{token}");
    let route = if kind == PaymentKind::TopUp { "console: top-up" } else { "console: withdraw" };
    let mut pending = false;
    let outcome = patiently(|| async {
        let keyed = Keyed { customer_id: signed.customer_id, key: &key, route, body: body.as_bytes() };
        let request = Payment { kind, wallet_id: id, amount, token: token.clone() };
        wallet_api::pay(&state, keyed, request).await
    })
    .await;
    if let Ok(answered) = &outcome {
        pending = answered.status == StatusCode::ACCEPTED.as_u16();
    }
    match settle(outcome)? {
        Ok(()) => {
            let done = if pending { "pending" } else { done };
            Ok(Redirect::to(&format!("/app/wallets/{id}?done={done}")).into_response())
        }
        Err(problem) => refused(&state, &signed, id, form, which, problem).await,
    }
}

/// The wallet page again, with the form as it was sent and why it was refused.
async fn refused(
    state: &AppState,
    signed: &Signed,
    id: Uuid,
    form: MoneyForm,
    which: &'static str,
    problem: Problem,
) -> Result<Response, PageError> {
    let status = problem_status(&problem);
    let page = wallet_page(state, signed, id, form, which, Problems::of_problem(problem), None).await?;
    Ok(with_status(page, status))
}

fn amount_in(wallet: &WalletRow, text: &str) -> Option<u64> {
    Currency::parse(&wallet.currency)?.parse_major(text).filter(|amount| *amount > 0)
}

fn amount_problem(wallet: &WalletRow) -> Problem {
    let example = match Currency::parse(&wallet.currency).map(Currency::exponent) {
        Some(0) => "500",
        _ => "12.50",
    };
    ApiError::field("/amount", format!("enter an amount in {} above zero, like {example}", wallet.currency))
        .problem()
}

/// The form's key as an `Idempotency-Key` (a form without one is not the console's).
fn form_key(key: &str) -> Result<IdempotencyKeyHeader, PageError> {
    IdempotencyKeyHeader::parse(Some(key.as_bytes())).map_err(|_| PageError::Forged)
}

/// Runs a keyed operation; while an earlier submission with the same key is still
/// running (a double click), waits for its answer instead of refusing.
async fn patiently<F, Fut>(mut run: F) -> Result<Answered, ApiError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Answered, ApiError>>,
{
    let deadline = tokio::time::Instant::now() + IN_USE_WAIT;
    loop {
        match run().await {
            Err(error)
                if error.code() == "idempotency_key_in_use" && tokio::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            outcome => return outcome,
        }
    }
}

/// A keyed operation's outcome for a page: done, or the problem to show next to the
/// form (the first refusal and its replays alike). Failures of ours stay errors.
fn settle(outcome: Result<Answered, ApiError>) -> Result<Result<(), Problem>, PageError> {
    match outcome {
        Ok(answered) if answered.status < 400 => Ok(Ok(())),
        Ok(answered) => serde_json::from_str::<Problem>(&answered.body).map(Err).map_err(|error| {
            PageError::Api(ApiError::Internal(anyhow::anyhow!("stored problem unreadable: {error}")))
        }),
        Err(error) if error.status().is_client_error() => Ok(Err(error.problem())),
        Err(error) => Err(error.into()),
    }
}

/// A REST answer (a response with its problem, if refused) as an [`Answered`].
fn answered_of(response: Response) -> Answered {
    let status = response.status().as_u16();
    let body = response
        .extensions()
        .get::<Problem>()
        .and_then(|problem| serde_json::to_string(problem).ok())
        .unwrap_or_default();
    Answered { status, body, replayed: false }
}

fn problem_status(problem: &Problem) -> StatusCode {
    StatusCode::from_u16(problem.status).unwrap_or(StatusCode::UNPROCESSABLE_ENTITY)
}

fn with_status(mut response: Response, status: StatusCode) -> Response {
    if response.status() == StatusCode::OK {
        *response.status_mut() = status;
    }
    response
}

/// The history's filters, as typed into its form.
#[derive(Deserialize, Default, Clone)]
pub struct HistoryForm {
    #[serde(default)]
    wallet: String,
    #[serde(default, rename = "type")]
    kind: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    min: String,
    #[serde(default)]
    max: String,
    #[serde(default)]
    cursor: String,
}

/// A choice in a filter's list.
pub struct Choice {
    pub value: String,
    pub label: String,
    pub selected: bool,
}

#[derive(Template)]
#[template(path = "console/history.html")]
struct HistoryPage {
    chrome: Chrome,
    filters: HistoryForm,
    wallets: Vec<Choice>,
    kinds: Vec<Choice>,
    statuses: Vec<Choice>,
    operations: Vec<OperationLine>,
    /// The query string of the next page, when there is one.
    next: Option<String>,
    problems: Problems,
}

/// `GET /app/history`: filters, newest first, one page at a time.
pub async fn history(
    State(state): State<AppState>,
    signed: Signed,
    Query(filters): Query<HistoryForm>,
) -> Result<Response, PageError> {
    let wallets =
        state.wallets.list(signed.customer_id, None, WALLETS_SHOWN).await.map_err(ApiError::from)?;
    let choices = |values: Vec<(String, String)>, chosen: &str| -> Vec<Choice> {
        values.into_iter().map(|(value, label)| Choice { selected: value == chosen, value, label }).collect()
    };
    let wallet_choices = choices(
        wallets.iter().map(|w| (w.id.to_string(), WalletLine::of(w).name)).collect(),
        &filters.wallet,
    );
    let kinds = choices(
        OperationKind::ALL.iter().map(|k| (k.as_str().to_owned(), label(*k).to_owned())).collect(),
        &filters.kind,
    );
    let statuses = choices(
        OperationStatus::ALL.iter().map(|s| (s.as_str().to_owned(), s.as_str().to_owned())).collect(),
        &filters.status,
    );
    let (operations, next, problems) =
        match history_page(&state, signed.customer_id, &wallets, &filters).await {
            Ok((operations, next)) => (operations, next, Problems::default()),
            Err(PageError::Api(error)) if error.status().is_client_error() => {
                (Vec::new(), None, Problems::of(&error))
            }
            Err(error) => return Err(error),
        };
    let status = if problems.is_empty() { StatusCode::OK } else { StatusCode::UNPROCESSABLE_ENTITY };
    let body = page(&HistoryPage {
        chrome: Chrome::new("History", "history", Some(signed.csrf())),
        filters,
        wallets: wallet_choices,
        kinds,
        statuses,
        operations,
        next,
        problems,
    });
    Ok(with_status(body, status))
}

async fn history_page(
    state: &AppState,
    customer_id: Uuid,
    wallets: &[WalletRow],
    filters: &HistoryForm,
) -> Result<(Vec<OperationLine>, Option<String>), PageError> {
    let blank = |text: &str| text.trim().is_empty();
    let wallet = if blank(&filters.wallet) {
        None
    } else {
        let id = Uuid::parse_str(filters.wallet.trim())
            .map_err(|_| ApiError::field("/wallet", "no such wallet"))?;
        Some(
            wallets
                .iter()
                .find(|w| w.id == id)
                .ok_or_else(|| ApiError::field("/wallet", "no such wallet"))?,
        )
    };
    let kind = OperationKind::ALL.iter().copied().find(|k| k.as_str() == filters.kind);
    let status = OperationStatus::ALL.iter().copied().find(|s| s.as_str() == filters.status);
    let start_of = |field: &str, text: &str, days: i64| -> Result<Option<u64>, ApiError> {
        if blank(text) {
            return Ok(None);
        }
        let date: Date = day(field, text.trim())?;
        let start = date.with_time(Time::MIDNIGHT).assume_utc() + time::Duration::days(days);
        Ok(Some(
            u64::try_from(start.unix_timestamp_nanos()).map_err(|_| ApiError::field(field, "before 1970"))?,
        ))
    };
    let from = start_of("/from", &filters.from, 0)?;
    let to = start_of("/to", &filters.to, 1)?;
    let amount = |field: &str, text: &str| -> Result<Option<u64>, ApiError> {
        if blank(text) {
            return Ok(None);
        }
        let wallet = wallet.ok_or_else(|| ApiError::field(field, "choose a wallet to filter by amount"))?;
        amount_in(wallet, text)
            .map(Some)
            .ok_or_else(|| ApiError::field(field, format!("an amount in {}, like 12.50", wallet.currency)))
    };
    let amount_min = amount("/min", &filters.min)?;
    let amount_max = amount("/max", &filters.max)?;
    let cursor = Some(filters.cursor.as_str()).filter(|cursor| !blank(cursor));
    let query = HistoryQuery {
        wallet_id: wallet.map(|w| w.id),
        kind,
        status,
        from,
        to,
        amount_min,
        amount_max,
        limit: Some(20),
        cursor,
    };
    let page = wallet_api::history(state, customer_id, query).await?;
    let next = page.next_cursor.map(|cursor| {
        let next = HistoryForm { cursor, ..filters.clone() };
        serde_urlencoded_pairs(&next)
    });
    Ok((page.data.iter().map(OperationLine::of).collect(), next))
}

/// The filters as a query string.
fn serde_urlencoded_pairs(form: &HistoryForm) -> String {
    let pairs = [
        ("wallet", &form.wallet),
        ("type", &form.kind),
        ("status", &form.status),
        ("from", &form.from),
        ("to", &form.to),
        ("min", &form.min),
        ("max", &form.max),
        ("cursor", &form.cursor),
    ];
    pairs
        .iter()
        .filter(|(_, value)| !value.is_empty())
        .map(|(name, value)| format!("{name}={}", percent(value)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Percent-encodes everything but unreserved characters.
fn percent(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (byte as char).to_string(),
            _ => format!("%{byte:02X}"),
        })
        .collect()
}

/// `GET /app/history.csv`: the whole history, as the API exports it.
pub async fn history_csv(State(state): State<AppState>, signed: Signed) -> Result<Response, PageError> {
    Ok(operations_csv(&state, signed.customer_id).await?)
}

/// `POST /app/notifications/{id}/read`: one notification read (someone else's is 404).
pub async fn read_notification(
    State(state): State<AppState>,
    signed: Signed,
    IdPath(id): IdPath,
    posted: Posted<super::Empty>,
) -> Result<Response, PageError> {
    signed.check(posted.csrf.as_deref())?;
    state.endpoints.mark_read(signed.customer_id, id).await.map_err(ApiError::from)?;
    Ok(Redirect::to("/app").into_response())
}
