//! Bank connections through SimpleFIN, over real HTTP, against a local server that speaks
//! the protocol: setup tokens that can be claimed once (then 403), `/accounts` that checks
//! basic auth and honours `start-date`, `end-date`, `account`, `balances-only` and
//! `pending`, answers a partial `errors` list for accounts it cannot reach, and can be
//! revoked (403). Coffer is driven only through its API: link with a setup token and sync
//! (exact minor units, USD and JPY; custom currencies and malformed amounts left out), a
//! token claimed twice, hosts outside `COFFER_SIMPLEFIN_HOSTS` never contacted, a revoked
//! access URL, a partial error list, paging by date over 90 days and pages within a window
//! (each transaction once; re-syncs add nothing), and pending transactions recorded only
//! once posted — on SQLite and, when configured, PostgreSQL.

mod common;

use std::{
    cell::RefCell,
    collections::{HashMap, HashSet},
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use axum::{
    Json, Router,
    body::Bytes,
    extract::{Path, Query, State},
    http::{HeaderMap, StatusCode, header::AUTHORIZATION},
    response::{IntoResponse, Response},
    routing::{get, post as post_route},
};
use base64::{Engine as _, engine::general_purpose::STANDARD};
use coffer::config::ProcessRole;
use common::customer::{get as get_json, post, send, synced_expenses};
use common::{Options, Session, TestApp, backends, register_and_login, spawn_app_with};
use serde_json::{Value, json};

/// The credentials inside the access URL the simulated server hands out.
const USER: &str = "sfin-user-7731";
const PASSWORD: &str = "sfin-pass-a9f3c2";
const DAY: i64 = 86_400;

fn now_s() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

#[derive(Clone)]
struct SimTransaction {
    id: String,
    posted: i64,
    amount: String,
    description: String,
    payee: Option<String>,
    pending: bool,
}

fn posted(id: &str, posted: i64, amount: &str, description: &str) -> SimTransaction {
    SimTransaction {
        id: id.into(),
        posted,
        amount: amount.into(),
        description: description.into(),
        payee: None,
        pending: false,
    }
}

struct SimAccount {
    id: String,
    name: String,
    currency: String,
    transactions: Vec<SimTransaction>,
}

fn account(id: &str, name: &str, currency: &str, transactions: Vec<SimTransaction>) -> SimAccount {
    SimAccount { id: id.into(), name: name.into(), currency: currency.into(), transactions }
}

/// A request the server saw.
#[derive(Clone, Debug)]
struct Seen {
    path: String,
    query: HashMap<String, String>,
}

impl Seen {
    fn number(&self, key: &str) -> i64 {
        self.query[key].parse().unwrap()
    }
}

/// The simulated SimpleFIN server's state.
struct BridgeState {
    address: SocketAddr,
    /// Setup-token codes not claimed yet.
    unclaimed: HashSet<String>,
    /// What a claim hands out instead of this server's own access URL.
    access_url: Option<String>,
    revoked: bool,
    accounts: Vec<SimAccount>,
    /// Accounts the server cannot reach: left out, with an error string.
    failing: HashSet<String>,
    /// Like servers that send pending transactions whether asked or not.
    pending_regardless: bool,
    requests: Vec<Seen>,
}

#[derive(Clone)]
struct Bridge {
    address: SocketAddr,
    state: Arc<Mutex<BridgeState>>,
}

impl Bridge {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(BridgeState {
            address,
            unclaimed: HashSet::new(),
            access_url: None,
            revoked: false,
            accounts: Vec::new(),
            failing: HashSet::new(),
            pending_regardless: false,
            requests: Vec::new(),
        }));
        let app = Router::new()
            .route("/simplefin/claim/{code}", post_route(claim))
            .route("/simplefin/accounts", get(accounts))
            .fallback(elsewhere)
            .with_state(state.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { address, state }
    }

    /// Its entry for `COFFER_SIMPLEFIN_HOSTS`.
    fn host(&self) -> String {
        format!("http://{}", self.address)
    }

    fn access_url(&self) -> String {
        format!("http://{USER}:{PASSWORD}@{}/simplefin", self.address)
    }

    /// A new setup token: the base64 of a claim URL that works once.
    fn setup_token(&self) -> String {
        let code = uuid::Uuid::new_v4().simple().to_string();
        self.with(|state| state.unclaimed.insert(code.clone()));
        STANDARD.encode(format!("http://{}/simplefin/claim/{code}", self.address))
    }

    fn with<T>(&self, change: impl FnOnce(&mut BridgeState) -> T) -> T {
        change(&mut self.state.lock().unwrap())
    }

    fn requests(&self) -> Vec<Seen> {
        self.with(|state| state.requests.clone())
    }

    /// The transaction requests for `account` (not the balance-only listings).
    fn windows(&self, account: &str) -> Vec<Seen> {
        self.requests()
            .into_iter()
            .filter(|seen| {
                seen.path.ends_with("/accounts") && seen.query.get("account").is_some_and(|a| a == account)
            })
            .collect()
    }
}

async fn claim(
    State(state): State<Arc<Mutex<BridgeState>>>,
    Path(code): Path<String>,
    body: Bytes,
) -> Response {
    let mut state = state.lock().unwrap();
    state.requests.push(Seen { path: format!("/simplefin/claim/{code}"), query: HashMap::new() });
    if !body.is_empty() {
        return (StatusCode::BAD_REQUEST, "a claim has an empty body").into_response();
    }
    if !state.unclaimed.remove(&code) {
        return (StatusCode::FORBIDDEN, "claimed already or never issued").into_response();
    }
    let access = state
        .access_url
        .clone()
        .unwrap_or_else(|| format!("http://{USER}:{PASSWORD}@{}/simplefin", state.address));
    access.into_response()
}

async fn accounts(
    State(state): State<Arc<Mutex<BridgeState>>>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let mut state = state.lock().unwrap();
    state.requests.push(Seen { path: "/simplefin/accounts".into(), query: query.clone() });
    let expected = format!("Basic {}", STANDARD.encode(format!("{USER}:{PASSWORD}")));
    let authorised =
        headers.get(AUTHORIZATION).and_then(|value| value.to_str().ok()) == Some(expected.as_str());
    if state.revoked || !authorised {
        return (StatusCode::FORBIDDEN, "access revoked or wrong credentials").into_response();
    }
    let number = |key: &str| query.get(key).map(|value| value.parse::<i64>().unwrap());
    let (start, end) = (number("start-date"), number("end-date"));
    let balances_only = query.get("balances-only").is_some_and(|value| value == "1");
    let with_pending = query.get("pending").is_some_and(|value| value == "1") || state.pending_regardless;
    let (mut errors, mut listed) = (Vec::new(), Vec::new());
    for account in &state.accounts {
        if query.get("account").is_some_and(|id| *id != account.id) {
            continue;
        }
        if state.failing.contains(&account.id) {
            errors.push(format!("Connection to {} failed. Try again later.", account.name));
            continue;
        }
        let mut entry = json!({
            "org": {"name": "First Example Bank", "domain": "first.example", "sfin-url": format!("http://{}/simplefin", state.address)},
            "id": account.id, "name": account.name, "currency": account.currency,
            "balance": "1234.56", "balance-date": now_s(),
        });
        if !balances_only {
            let mut transactions: Vec<&SimTransaction> = account
                .transactions
                .iter()
                .filter(|t| {
                    if t.pending {
                        with_pending
                    } else {
                        start.is_none_or(|start| t.posted >= start) && end.is_none_or(|end| t.posted < end)
                    }
                })
                .collect();
            transactions.sort_by_key(|t| t.posted);
            entry["transactions"] = transactions
                .iter()
                .map(|t| {
                    let mut wire = json!({"id": t.id, "posted": if t.pending { 0 } else { t.posted },
                                          "amount": t.amount, "description": t.description});
                    if let Some(payee) = &t.payee {
                        wire["payee"] = json!(payee);
                    }
                    if t.pending {
                        wire["pending"] = json!(true);
                    }
                    wire
                })
                .collect();
        }
        listed.push(entry);
    }
    Json(json!({"errors": errors, "accounts": listed})).into_response()
}

async fn elsewhere(State(state): State<Arc<Mutex<BridgeState>>>, uri: axum::http::Uri) -> StatusCode {
    state.lock().unwrap().requests.push(Seen { path: uri.path().to_owned(), query: HashMap::new() });
    StatusCode::NOT_FOUND
}

thread_local! {
    /// The hosts the next app allows. `Options::configure` is a plain function, and a
    /// `#[tokio::test]` runs on its own thread, so a thread-local reaches it without races.
    static ALLOWED: RefCell<String> = const { RefCell::new(String::new()) };
}

/// Requests only (no workers: syncs happen when asked, so counts are exact), SimpleFIN
/// allowed to `hosts` (comma-separated).
fn allowing(hosts: &str) -> Options {
    ALLOWED.with(|allowed| *allowed.borrow_mut() = hosts.to_owned());
    Options {
        configure: |args| {
            args.roles = vec![ProcessRole::Api, ProcessRole::Relay];
            args.simplefin_hosts = ALLOWED
                .with(|allowed| allowed.borrow().split(',').map(|host| host.parse().unwrap()).collect());
        },
        ..Options::default()
    }
}

async fn link(app: &TestApp, session: &Session, setup_token: &str) -> (u16, Value) {
    post(
        app,
        session,
        "/v1/bank-connections",
        &json!({"institution_id": "simplefin", "setup_token": setup_token}),
    )
    .await
}

async fn sync(app: &TestApp, session: &Session, id: &str) -> Value {
    let (status, report) =
        send(app, session, reqwest::Method::POST, &format!("/v1/bank-connections/{id}/sync"), None).await;
    assert_eq!(status, 200, "{report}");
    report
}

fn described<'a>(expenses: &'a [Value], description: &str) -> Vec<&'a Value> {
    expenses.iter().filter(|e| e["description"] == description).collect()
}

#[tokio::test]
async fn a_setup_token_links_a_bank_once_and_syncs_exact_amounts() {
    for backend in backends() {
        let bridge = Bridge::start().await;
        let now = now_s();
        let mut coffee = posted("T-coffee", now - 3 * DAY, "-33.29", "BLUE BOTTLE COFFEE #12");
        coffee.payee = Some("Blue Bottle".into());
        bridge.with(|state| {
            state.accounts = vec![
                account(
                    "ACT-CHK",
                    "Everyday Checking",
                    "USD",
                    vec![
                        coffee,
                        posted("T-salary", now - 10 * DAY, "2500.00", "ACME CORP PAYROLL"),
                        posted("T-rent", now - 40 * DAY, "-1850.5", "RENT MAPLE STREET"),
                        posted("T-subcent", now - 5 * DAY, "-1.005", "NOT WHOLE CENTS"),
                        posted("T-garbage", now - 6 * DAY, "twelve", "NOT AN AMOUNT"),
                        posted("T-ancient", now - 200 * DAY, "-9.99", "BEFORE THE HISTORY"),
                    ],
                ),
                account(
                    "ACT-YEN",
                    "Tokyo Savings",
                    "JPY",
                    vec![posted("T-yen", now - 2 * DAY, "-1200", "KONBINI")],
                ),
                account(
                    "ACT-MILES",
                    "Air Miles",
                    "https://airline.example/miles",
                    vec![posted("T-miles", now - DAY, "-500", "FLIGHT")],
                ),
            ];
        });
        let app = spawn_app_with(&backend, allowing(&bridge.host())).await;
        let ada = register_and_login(&app, "ada@example.com").await;

        let (status, institutions) = get_json(&app, &ada, "/v1/bank-institutions").await;
        assert_eq!(status, 200);
        let simplefin = institutions.as_array().unwrap().iter().find(|i| i["id"] == "simplefin").unwrap();
        assert_eq!(simplefin["link_method"], "setup_token", "{simplefin}");

        let token = bridge.setup_token();
        let (status, connection) = link(&app, &ada, &token).await;
        assert_eq!(status, 201, "{connection}");
        let id = connection["id"].as_str().unwrap().to_owned();
        assert_eq!(
            (connection["provider"].as_str(), connection["status"].as_str()),
            (Some("simplefin"), Some("active"))
        );
        let accounts: Vec<(&str, &str, &str)> = connection["accounts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| {
                (a["name"].as_str().unwrap(), a["currency"].as_str().unwrap(), a["type"].as_str().unwrap())
            })
            .collect();
        assert_eq!(
            accounts,
            [("Everyday Checking", "USD", "other"), ("Tokyo Savings", "JPY", "other")],
            "a custom currency cannot be recorded, so it is not linked"
        );
        let shown = connection.to_string();
        assert!(!shown.contains(PASSWORD) && !shown.contains(USER), "the access URL stays inside: {shown}");
        let seen = bridge.requests();
        assert_eq!(seen.len(), 2, "{seen:?}");
        assert!(seen[0].path.starts_with("/simplefin/claim/"));
        assert_eq!(seen[1].query.get("balances-only").map(String::as_str), Some("1"), "{seen:?}");

        let report = sync(&app, &ada, &id).await;
        assert_eq!((report["added"].as_u64(), report["duplicates"].as_u64()), (Some(4), Some(0)), "{report}");
        assert_eq!(report["has_more"], false, "{report}");
        assert!(report["accounts"].as_array().unwrap().iter().all(|a| a["error"].is_null()), "{report}");
        assert_eq!(report["connection"]["status"], "active");

        let synced = synced_expenses(&app, &ada).await;
        assert_eq!(synced.len(), 4, "{synced:?}");
        let coffee = described(&synced, "BLUE BOTTLE COFFEE #12");
        assert_eq!(coffee.len(), 1);
        assert_eq!((coffee[0]["amount"].as_i64(), coffee[0]["currency"].as_str()), (Some(3329), Some("USD")));
        assert_eq!(coffee[0]["merchant"], "Blue Bottle", "the payee is the merchant");
        assert_eq!(described(&synced, "RENT MAPLE STREET")[0]["amount"], 185_050);
        let yen = described(&synced, "KONBINI");
        assert_eq!((yen[0]["amount"].as_i64(), yen[0]["currency"].as_str()), (Some(1200), Some("JPY")));
        let salary = described(&synced, "ACME CORP PAYROLL");
        assert_eq!(salary[0]["amount"], 250_000);
        let (_, categories) = get_json(&app, &ada, "/v1/categories").await;
        let income_names: Vec<&str> = categories
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["id"] == salary[0]["category_id"])
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert!(
            income_names == ["Salary"] || income_names == ["Income"],
            "money in is income: {income_names:?}"
        );
        for left_out in ["NOT WHOLE CENTS", "NOT AN AMOUNT", "BEFORE THE HISTORY", "FLIGHT"] {
            assert!(described(&synced, left_out).is_empty(), "{left_out}");
        }
        // Every transactions call asked for one account and a window of the history.
        for seen in bridge.requests().iter().filter(|seen| seen.query.contains_key("account")) {
            let (start, end) = (seen.number("start-date"), seen.number("end-date"));
            assert!(start < end && end - start <= 30 * DAY && start >= now - 90 * DAY - 60, "{seen:?}");
        }

        let again = sync(&app, &ada, &id).await;
        assert_eq!(again["added"], 0, "{again}");
        assert_eq!(synced_expenses(&app, &ada).await.len(), 4);

        // The same token again: the server refuses it, and the customer hears what to do.
        let (status, body) = link(&app, &ada, &token).await;
        common::assert_problem(status, &body, 422, "bank_setup_token_rejected");
        assert!(body["detail"].as_str().unwrap().contains("disable"), "{body}");

        // Requests that make no sense.
        let cases = [
            json!({"institution_id": "simplefin"}),
            json!({"institution_id": "simplefin", "setup_token": ""}),
            json!({"institution_id": "simplefin", "setup_token": "A".repeat(2049)}),
            json!({"institution_id": "simplefin", "setup_token": bridge.setup_token(),
                   "credentials": {"username": "ada", "password": "pass_good"}}),
            json!({"institution_id": "sandbox", "setup_token": bridge.setup_token()}),
        ];
        for case in cases {
            let (status, body) = post(&app, &ada, "/v1/bank-connections", &case).await;
            common::assert_problem(status, &body, 422, "validation_failed");
        }
        for garbage in
            ["not base64 at all!", &STANDARD.encode("no url here"), &STANDARD.encode("file:///etc/passwd")]
        {
            let (status, body) = link(&app, &ada, garbage).await;
            common::assert_problem(status, &body, 422, "bank_setup_token_invalid");
        }
        let (_, list) = get_json(&app, &ada, "/v1/bank-connections").await;
        assert_eq!(list["data"].as_array().unwrap().len(), 1, "{list}");
        app.stop().await;
    }
}

#[tokio::test]
async fn hosts_that_are_not_allowed_are_never_contacted() {
    for backend in backends() {
        let allowed = Bridge::start().await;
        let stranger = Bridge::start().await;
        allowed.with(|state| state.accounts = vec![account("ACT-1", "Checking", "USD", Vec::new())]);
        let app = spawn_app_with(&backend, allowing(&allowed.host())).await;
        let ada = register_and_login(&app, "ada@example.com").await;

        // A claim URL on a host the operator did not allow.
        let (status, body) = link(&app, &ada, &stranger.setup_token()).await;
        common::assert_problem(status, &body, 422, "bank_host_not_allowed");
        // The allowed host and port, but https where the entry says http.
        let https = STANDARD.encode(format!("https://{}/simplefin/claim/x", allowed.address));
        let (status, body) = link(&app, &ada, &https).await;
        common::assert_problem(status, &body, 422, "bank_host_not_allowed");
        assert!(allowed.requests().is_empty(), "{:?}", allowed.requests());

        // An allowed server whose claim hands out an access URL on another host: claimed
        // (the token is spent), but the other host is not contacted.
        allowed.with(|state| state.access_url = Some(stranger.access_url()));
        let (status, body) = link(&app, &ada, &allowed.setup_token()).await;
        common::assert_problem(status, &body, 422, "bank_host_not_allowed");
        assert_eq!(allowed.requests().len(), 1, "only the claim");
        assert!(stranger.requests().is_empty(), "{:?}", stranger.requests());
        let (_, list) = get_json(&app, &ada, "/v1/bank-connections").await;
        assert_eq!(list["data"].as_array().unwrap().len(), 0, "{list}");
        app.stop().await;
    }
}

#[tokio::test]
async fn a_partial_error_list_and_a_revoked_access_url() {
    for backend in backends() {
        let bridge = Bridge::start().await;
        let now = now_s();
        bridge.with(|state| {
            state.accounts = vec![
                account(
                    "ACT-CHK",
                    "Checking",
                    "USD",
                    (0..3)
                        .map(|n| {
                            posted(&format!("C{n}"), now - (n + 1) * DAY, "-10.00", &format!("CHECKING {n}"))
                        })
                        .collect(),
                ),
                account(
                    "ACT-CARD",
                    "Rewards Card",
                    "USD",
                    (0..2)
                        .map(|n| {
                            posted(&format!("R{n}"), now - (n + 1) * DAY, "-20.00", &format!("CARD {n}"))
                        })
                        .collect(),
                ),
            ];
        });
        let app = spawn_app_with(&backend, allowing(&bridge.host())).await;
        let ada = register_and_login(&app, "ada@example.com").await;
        let (status, connection) = link(&app, &ada, &bridge.setup_token()).await;
        assert_eq!(status, 201, "{connection}");
        let id = connection["id"].as_str().unwrap().to_owned();
        let card_id = connection["accounts"][1]["id"].clone();

        // The card's bank fails: the server leaves it out and says so; the checking syncs.
        bridge.with(|state| state.failing.insert("ACT-CARD".into()));
        let report = sync(&app, &ada, &id).await;
        let accounts = report["accounts"].as_array().unwrap();
        assert_eq!(
            (accounts[0]["added"].as_u64(), &accounts[0]["error"]),
            (Some(3), &Value::Null),
            "{report}"
        );
        assert_eq!(
            (&accounts[1]["account_id"], accounts[1]["error"].as_str()),
            (&card_id, Some("bank_unavailable"))
        );
        assert_eq!(
            (report["connection"]["status"].as_str(), report["connection"]["last_error"].as_str()),
            (Some("error"), Some("bank_unavailable")),
            "{report}"
        );
        assert_eq!(synced_expenses(&app, &ada).await.len(), 3);

        // It comes back: the card's history arrives, the checking's is not repeated.
        bridge.with(|state| state.failing.clear());
        let report = sync(&app, &ada, &id).await;
        assert_eq!(report["added"], 2, "{report}");
        assert_eq!(
            (report["connection"]["status"].as_str(), report["connection"]["last_error"].as_str()),
            (Some("active"), None)
        );
        assert_eq!(synced_expenses(&app, &ada).await.len(), 5);

        // The customer revokes Coffer's access at the server: the connection says to link again.
        bridge.with(|state| state.revoked = true);
        let report = sync(&app, &ada, &id).await;
        assert!(
            report["accounts"].as_array().unwrap().iter().all(|a| a["error"] == "bank_access_revoked"),
            "{report}"
        );
        let (_, connection) = get_json(&app, &ada, &format!("/v1/bank-connections/{id}")).await;
        assert_eq!(
            (connection["status"].as_str(), connection["last_error"].as_str()),
            (Some("error"), Some("bank_access_revoked")),
            "{connection}"
        );
        assert!(!connection.to_string().contains(PASSWORD));
        assert_eq!(synced_expenses(&app, &ada).await.len(), 5, "what was synced stays");
        app.stop().await;
    }
}

#[tokio::test]
async fn paging_by_date_hands_out_every_transaction_once_and_pending_ones_once_posted() {
    for backend in backends() {
        let bridge = Bridge::start().await;
        let now = now_s();
        let hour = 3_600;
        // 250 transactions over 88 days: 60 in the first 30-day window, 160 in the second
        // (more than a page of 100; five of them in one second, where the first page ends),
        // 30 in the last.
        let mut transactions = Vec::new();
        let mut add = |at: i64| {
            let n = transactions.len();
            let cents = 100 + n as i64;
            transactions.push(posted(
                &format!("T{n:03}"),
                at,
                &format!("-{}.{:02}", cents / 100, cents % 100),
                &format!("TXN {n:03}"),
            ));
        };
        (0..60).for_each(|n| add(now - 89 * DAY + n * 11 * hour));
        (0..155).for_each(|n| add(now - 59 * DAY + n * 4 * hour));
        (0..5).for_each(|_| add(now - 59 * DAY + 98 * 4 * hour + hour));
        (0..30).for_each(|n| add(now - 29 * DAY + n * 22 * hour));
        let expected_total: i64 = (0..250).map(|n| 100 + n).sum();
        let mut pending = posted("T-pending", 0, "-45.00", "PENDING AT THE PUMP");
        pending.pending = true;
        transactions.push(pending);
        bridge.with(|state| {
            state.accounts = vec![account("ACT-BUSY", "Busy Checking", "USD", transactions)];
            state.pending_regardless = true;
        });
        let app = spawn_app_with(&backend, allowing(&bridge.host())).await;
        let ada = register_and_login(&app, "ada@example.com").await;
        let (status, connection) = link(&app, &ada, &bridge.setup_token()).await;
        assert_eq!(status, 201, "{connection}");
        let id = connection["id"].as_str().unwrap().to_owned();

        let report = sync(&app, &ada, &id).await;
        assert_eq!(
            (report["added"].as_u64(), report["duplicates"].as_u64()),
            (Some(250), Some(0)),
            "{report}"
        );
        assert_eq!(report["has_more"], false);
        let synced = synced_expenses(&app, &ada).await;
        let mut descriptions: Vec<&str> = synced.iter().map(|e| e["description"].as_str().unwrap()).collect();
        descriptions.sort_unstable();
        let expected: Vec<String> = (0..250).map(|n| format!("TXN {n:03}")).collect();
        assert_eq!(descriptions, expected, "every transaction once, the pending one not yet");
        assert_eq!(synced.iter().map(|e| e["amount"].as_i64().unwrap()).sum::<i64>(), expected_total);

        // Windows of at most 30 days from 90 days back up to now, contiguous, and the busy
        // window asked twice (a page of 100, then the rest from the last one handed out).
        let windows = bridge.windows("ACT-BUSY");
        assert!(windows.len() >= 4, "{windows:?}");
        assert!((windows[0].number("start-date") - (now - 90 * DAY)).abs() < 60, "{windows:?}");
        for pair in windows.windows(2) {
            let (previous, next) = (&pair[0], &pair[1]);
            assert!(next.number("end-date") - next.number("start-date") <= 30 * DAY, "{next:?}");
            assert!(next.number("start-date") >= previous.number("start-date"), "forward: {windows:?}");
            assert!(next.number("start-date") <= previous.number("end-date"), "no gap: {windows:?}");
        }
        assert!((windows.last().unwrap().number("end-date") - now).abs() < 60, "up to now: {windows:?}");
        assert!(windows.iter().all(|w| !w.query.contains_key("pending")), "pending ones are not asked for");

        // Again: nothing new; the re-sync reaches back two weeks for late postings.
        let before = bridge.windows("ACT-BUSY").len();
        let again = sync(&app, &ada, &id).await;
        assert_eq!(again["added"], 0, "{again}");
        let resync = &bridge.windows("ACT-BUSY")[before];
        assert!((resync.number("start-date") - (now - 14 * DAY)).abs() < 60, "{resync:?}");

        // The pending transaction posts (two days back), and a late one turns up five days
        // back: both are found, once.
        bridge.with(|state| {
            let transactions = &mut state.accounts[0].transactions;
            let pending = transactions.iter_mut().find(|t| t.id == "T-pending").unwrap();
            (pending.pending, pending.posted) = (false, now - 2 * DAY);
            transactions.push(posted("T-late", now - 5 * DAY, "-7.77", "LATE POSTING"));
        });
        let report = sync(&app, &ada, &id).await;
        assert_eq!(report["added"], 2, "{report}");
        let synced = synced_expenses(&app, &ada).await;
        assert_eq!(described(&synced, "PENDING AT THE PUMP")[0]["amount"], 4_500);
        assert_eq!(described(&synced, "LATE POSTING")[0]["amount"], 777);
        assert_eq!(sync(&app, &ada, &id).await["added"], 0);
        assert_eq!(synced_expenses(&app, &ada).await.len(), 252);
        app.stop().await;
    }
}
