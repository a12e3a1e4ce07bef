//! The security matrix, black-box, against the real `coffer` binary (so that everything it
//! logs can be read back):
//!
//! - every route the router declares (read from the source under `src/http/`, so a new route that is
//!   not classified here fails the test) is probed with no credential, an expired token,
//!   a token signed with another key, `alg: none`, a wrong audience, a wrong issuer,
//!   garbage and a wrong admin key: 401 for every route that is not public;
//! - every customer route naming an object is probed by another customer with the first
//!   customer's ids: 404;
//! - admin routes with a customer's token: 403 (admin role routes) or 401 (admin-key-only
//!   routes);
//! - mass-assignment fields (`balance`, `owner_id`, `customer_id`, `status`, `role`, …)
//!   are refused with 422, and nothing changes;
//! - bodies over the limit get 413 on every route that takes one; page sizes over 100 get
//!   422 on every list;
//! - login brute force gets 429, a refresh token used twice revokes its family;
//! - and the server's logs (at `debug`) never contain a password, an access or refresh
//!   token, a card token, a bank account, the admin key or the JWT secret.
//!
//! Forgery details of tokens on `/v1/auth/me` and the throttling windows are covered in
//! `identity.rs`; here every route gets the same probes.

mod common;

use std::{
    collections::BTreeSet,
    time::{SystemTime, UNIX_EPOCH},
};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use common::{
    TEST_JWT_SECRET, TEST_PASSWORD,
    process::{CHILD_ADMIN_KEY, ChildDatabase, ChildServer},
};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::Method;
use serde_json::{Value, json};

/// Who may call a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Access {
    Public,
    /// Any logged-in customer, on their own objects.
    Customer,
    /// The admin role or the admin API key.
    Admin,
    /// The admin API key only (the ledger API).
    AdminKey,
}

/// Every route, classified. The test fails if the router has a route missing here.
const ROUTES: &[(&str, &str, Access)] = &[
    ("POST", "/v1/auth/register", Access::Public),
    ("POST", "/v1/auth/login", Access::Public),
    ("POST", "/v1/auth/refresh", Access::Public),
    ("POST", "/v1/auth/logout", Access::Public),
    ("GET", "/v1/auth/me", Access::Customer),
    ("GET", "/v1/customers/me", Access::Customer),
    ("PATCH", "/v1/customers/me", Access::Customer),
    ("GET", "/v1/customers", Access::Admin),
    ("GET", "/v1/customers/{id}", Access::Admin),
    ("PUT", "/v1/customers/{id}/role", Access::Admin),
    ("GET", "/health/live", Access::Public),
    ("GET", "/health/ready", Access::Public),
    ("POST", "/v1/ledger/accounts", Access::AdminKey),
    ("POST", "/v1/ledger/transfers", Access::AdminKey),
    ("GET", "/v1/ledger/accounts/{id}", Access::AdminKey),
    ("GET", "/v1/ledger/accounts/{id}/transfers", Access::AdminKey),
    ("GET", "/v1/ledger/accounts/{id}/balances", Access::AdminKey),
    ("GET", "/v1/ledger/transfers/{id}", Access::AdminKey),
    ("GET", "/v1/ledger/chain/head", Access::AdminKey),
    ("POST", "/v1/wallets/{id}/top-ups", Access::Customer),
    ("POST", "/v1/wallets/{id}/withdrawals", Access::Customer),
    ("GET", "/v1/top-ups/{id}", Access::Customer),
    ("GET", "/v1/withdrawals/{id}", Access::Customer),
    ("POST", "/v1/wallets", Access::Customer),
    ("GET", "/v1/wallets", Access::Customer),
    ("GET", "/v1/wallets/{id}", Access::Customer),
    ("GET", "/v1/wallets/{id}/operations", Access::Customer),
    ("POST", "/v1/transfers", Access::Customer),
    ("GET", "/v1/transfers/{id}", Access::Customer),
    ("POST", "/v1/transfers/{id}/reversals", Access::Admin),
    ("GET", "/v1/operations", Access::Customer),
    ("GET", "/metrics", Access::Public),
    ("GET", "/v1/stream", Access::Customer),
    ("POST", "/v1/stream/tickets", Access::Customer),
    ("GET", "/v1/notifications", Access::Customer),
    ("POST", "/v1/notifications/{id}/read", Access::Customer),
    // Webhooks: a customer's own endpoints, or (admin key or admin token) the admins'.
    ("POST", "/v1/webhooks", Access::Customer),
    ("GET", "/v1/webhooks", Access::Customer),
    ("GET", "/v1/webhooks/{id}", Access::Customer),
    ("DELETE", "/v1/webhooks/{id}", Access::Customer),
    ("GET", "/v1/webhooks/{id}/deliveries", Access::Customer),
    ("POST", "/v1/webhooks/{id}/deliveries/{delivery_id}/redeliver", Access::Customer),
    ("GET", "/v1/categories", Access::Customer),
    ("POST", "/v1/categories", Access::Customer),
    ("PATCH", "/v1/categories/{id}", Access::Customer),
    ("DELETE", "/v1/categories/{id}", Access::Customer),
    ("GET", "/v1/expenses", Access::Customer),
    ("POST", "/v1/expenses", Access::Customer),
    ("GET", "/v1/expenses/{id}", Access::Customer),
    ("PATCH", "/v1/expenses/{id}", Access::Customer),
    ("DELETE", "/v1/expenses/{id}", Access::Customer),
    ("GET", "/v1/rules", Access::Customer),
    ("POST", "/v1/rules", Access::Customer),
    ("GET", "/v1/rules/{id}", Access::Customer),
    ("PATCH", "/v1/rules/{id}", Access::Customer),
    ("DELETE", "/v1/rules/{id}", Access::Customer),
    ("POST", "/v1/rules/{id}/apply", Access::Customer),
    ("POST", "/v1/wallets/{id}/payments", Access::Customer),
    ("POST", "/v1/imports", Access::Customer),
    ("GET", "/v1/budgets", Access::Customer),
    ("POST", "/v1/budgets", Access::Customer),
    ("GET", "/v1/budgets/{id}", Access::Customer),
    ("PATCH", "/v1/budgets/{id}", Access::Customer),
    ("DELETE", "/v1/budgets/{id}", Access::Customer),
    ("GET", "/v1/budgets/{id}/status", Access::Customer),
    ("GET", "/v1/reports/monthly/{year}/{month}", Access::Customer),
    ("GET", "/v1/reports/categories/{year}/{month}", Access::Customer),
    ("GET", "/v1/reports/summary", Access::Customer),
    ("GET", "/v1/reports/monthly/{year}/{month}/summary", Access::Customer),
    ("GET", "/v1/reports/trends", Access::Customer),
    ("GET", "/v1/exports/expenses.csv", Access::Customer),
    ("GET", "/v1/exports/operations.csv", Access::Customer),
    ("GET", "/v1/scheduled-payments", Access::Customer),
    ("POST", "/v1/scheduled-payments", Access::Customer),
    ("GET", "/v1/scheduled-payments/{id}", Access::Customer),
    ("PATCH", "/v1/scheduled-payments/{id}", Access::Customer),
    ("DELETE", "/v1/scheduled-payments/{id}", Access::Customer),
    ("GET", "/v1/scheduled-payments/{id}/runs", Access::Customer),
    ("GET", "/v1/analytics/daily", Access::Admin),
    ("GET", "/v1/analytics/customers/{id}", Access::Admin),
    ("POST", "/v1/admin/verify", Access::Admin),
    ("GET", "/v1/admin/verify", Access::Admin),
    ("GET", "/v1/admin/verify/{id}", Access::Admin),
    ("POST", "/v1/reconciliations", Access::Admin),
    ("GET", "/v1/reconciliations", Access::Admin),
    ("GET", "/v1/reconciliations/{id}", Access::Admin),
    ("GET", "/v1/reconciliations/{id}/report.csv", Access::Admin),
    ("GET", "/v1/admin/mock-provider/settlement", Access::Admin),
    ("GET", "/v1/insights/recurring", Access::Customer),
    ("GET", "/v1/credit/consent", Access::Customer),
    ("POST", "/v1/credit/consent", Access::Customer),
    ("DELETE", "/v1/credit/consent", Access::Customer),
    ("GET", "/v1/credit/report", Access::Customer),
    ("GET", "/v1/insights/alerts", Access::Customer),
    ("GET", "/v1/insights/forecast", Access::Customer),
    ("GET", "/v1/fx/rates", Access::Customer),
    ("POST", "/v1/fx/quotes", Access::Customer),
    ("GET", "/v1/fx/quotes/{id}", Access::Customer),
    ("POST", "/v1/fx/quotes/{id}/execute", Access::Customer),
    ("GET", "/v1/admin/fx/report", Access::Admin),
    ("POST", "/v1/wallets/{id}/monitors", Access::Customer),
    ("GET", "/v1/wallets/{id}/monitors", Access::Customer),
    ("DELETE", "/v1/wallets/{id}/monitors/{monitor_id}", Access::Customer),
    ("POST", "/v1/admin/wallets/{id}/monitors", Access::Admin),
    ("GET", "/v1/admin/wallets/{id}/monitors", Access::Admin),
    ("DELETE", "/v1/admin/wallets/{id}/monitors/{monitor_id}", Access::Admin),
    ("GET", "/v1/bank-institutions", Access::Customer),
    ("GET", "/v1/bank-connections", Access::Customer),
    ("POST", "/v1/bank-connections", Access::Customer),
    ("GET", "/v1/bank-connections/{id}", Access::Customer),
    ("DELETE", "/v1/bank-connections/{id}", Access::Customer),
    ("POST", "/v1/bank-connections/{id}/sync", Access::Customer),
];

/// POST routes that read no body.
const TAKES_NO_BODY: &[&str] = &[
    "/v1/transfers/{id}/reversals",
    "/v1/stream/tickets",
    "/v1/notifications/{id}/read",
    "/v1/rules/{id}/apply",
    "/v1/webhooks/{id}/deliveries/{delivery_id}/redeliver",
    "/v1/bank-connections/{id}/sync",
    "/v1/admin/verify",
    "/v1/fx/quotes/{id}/execute",
    "/v1/credit/consent",
];

/// The routes the router declares: every `.route("PATH", method(…).method(…))` in the
/// HTTP layer's source, also when rustfmt spreads one over several lines.
fn declared_routes() -> BTreeSet<(String, String)> {
    let mut directories = vec![std::path::PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/src/http"))];
    let mut files = Vec::new();
    while let Some(directory) = directories.pop() {
        for entry in std::fs::read_dir(directory).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() { directories.push(path) } else { files.push(path) }
        }
    }
    let mut routes = BTreeSet::new();
    assert!(files.len() > 10, "the HTTP layer's source files");
    for file in files {
        let source = std::fs::read_to_string(file).unwrap();
        for call in source.split(".route(").skip(1) {
            let Some(rest) = call.trim_start().strip_prefix('"') else { continue };
            let (path, rest) = rest.split_once('"').unwrap();
            // The handlers: up to the parenthesis that closes `.route(`.
            let mut depth = 1;
            let end = rest
                .char_indices()
                .find(|(_, c)| {
                    match c {
                        '(' => depth += 1,
                        ')' => depth -= 1,
                        _ => {}
                    }
                    depth == 0
                })
                .map_or(rest.len(), |(at, _)| at);
            let handlers = &rest[..end];
            for method in ["get", "post", "put", "patch", "delete"] {
                let called = handlers.match_indices(&format!("{method}(")).any(|(at, _)| {
                    at == 0 || matches!(handlers.as_bytes()[at - 1], b' ' | b'.' | b',' | b'(' | b'\n')
                });
                if called {
                    routes.insert((method.to_uppercase(), path.to_owned()));
                }
            }
        }
    }
    routes
}

#[test]
fn every_declared_route_is_in_the_matrix() {
    let declared = declared_routes();
    assert!(declared.len() >= 25, "the source scan found the routes: {declared:?}");
    let classified: BTreeSet<(String, String)> =
        ROUTES.iter().map(|(method, path, _)| ((*method).to_owned(), (*path).to_owned())).collect();
    assert_eq!(declared, classified, "classify every route in ROUTES");
}

/// Secrets this test sends; none may appear in the logs.
const CARD_TOKEN: &str = "tok_SecretCard4242Zq";
const BANK_ACCOUNT: &str = "ba_SecretAccount9876Zq";
const WRONG_PASSWORD: &str = "Wrong-Password-Zq-4711";
const WRONG_ADMIN_KEY: &str = "not-the-admin-key-0123456789Zq";
const BANK_PASSWORD: &str = "Bank-Password-Zq-2468";

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

fn token(sub: &str, overrides: Value, secret: &str) -> String {
    let now = now();
    let mut claims = json!({
        "iss": "coffer", "aud": "coffer-api", "exp": now + 600, "nbf": now, "iat": now,
        "sub": sub, "jti": uuid::Uuid::now_v7().to_string(), "role": "customer",
    });
    for (key, value) in overrides.as_object().unwrap() {
        claims[key] = value.clone();
    }
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

/// A customer's session on the child server.
#[derive(Clone, Debug)]
struct Session {
    id: String,
    access: String,
    refresh: String,
}

struct Probe<'a> {
    server: &'a ChildServer,
    client: reqwest::Client,
}

impl Probe<'_> {
    async fn call(
        &self,
        method: &str,
        path: &str,
        bearer: Option<&str>,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        let mut request = self
            .client
            .request(method, self.server.url(path))
            .header("idempotency-key", uuid::Uuid::now_v7().to_string());
        if let Some(bearer) = bearer {
            request = request.bearer_auth(bearer);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        common::read(request.send().await.unwrap()).await
    }

    async fn raw(&self, method: &str, path: &str, bearer: &str, body: Vec<u8>) -> (u16, Value) {
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        let request = self
            .client
            .request(method, self.server.url(path))
            .bearer_auth(bearer)
            .header("idempotency-key", uuid::Uuid::now_v7().to_string())
            .header("content-type", "application/json")
            .body(body);
        common::read(request.send().await.unwrap()).await
    }

    async fn register(&self, email: &str) -> Session {
        let (status, customer) = self
            .call(
                "POST",
                "/v1/auth/register",
                None,
                Some(&json!({"email": email, "password": TEST_PASSWORD, "name": "Sec"})),
            )
            .await;
        assert_eq!(status, 201, "{customer}");
        let (status, tokens) = self
            .call("POST", "/v1/auth/login", None, Some(&json!({"email": email, "password": TEST_PASSWORD})))
            .await;
        assert_eq!(status, 200, "{tokens}");
        Session {
            id: customer["id"].as_str().unwrap().to_owned(),
            access: tokens["access_token"].as_str().unwrap().to_owned(),
            refresh: tokens["refresh_token"].as_str().unwrap().to_owned(),
        }
    }

    async fn created(&self, method: &str, path: &str, session: &Session, body: Value) -> Value {
        let (status, created) = self.call(method, path, Some(&session.access), Some(&body)).await;
        assert!(status == 201 || status == 200, "{path}: {status} {created}");
        created
    }

    async fn posted(&self, session: &Session, wallet: &str) -> (i64, i64) {
        let (status, view) =
            self.call("GET", &format!("/v1/wallets/{wallet}"), Some(&session.access), None).await;
        assert_eq!(status, 200, "{view}");
        (view["balance"]["posted"].as_i64().unwrap(), view["balance"]["pending"].as_i64().unwrap())
    }
}

/// A valid body for each route that takes one, so that a refusal is about access, not
/// about the body.
fn valid_body(method: &str, path: &str, alice_wallet: &str, bob_wallet: &str) -> Option<Value> {
    let new_id = uuid::Uuid::now_v7().to_string();
    match (method, path) {
        ("POST", "/v1/wallets") => Some(json!({"currency": "EUR"})),
        ("POST", "/v1/transfers") => {
            Some(json!({"from_wallet_id": alice_wallet, "to_wallet_id": bob_wallet, "amount": 1}))
        }
        ("POST", "/v1/wallets/{id}/top-ups") => Some(json!({"amount": 1, "payment_method": CARD_TOKEN})),
        ("POST", "/v1/wallets/{id}/withdrawals") => Some(json!({"amount": 1, "destination": BANK_ACCOUNT})),
        ("PATCH", "/v1/customers/me") => Some(json!({"name": "Changed"})),
        ("POST", "/v1/webhooks") => Some(json!({"url": "http://127.0.0.1:9/hook", "event_types": ["*"]})),
        ("POST", "/v1/categories") => Some(json!({"name": format!("C {new_id}")})),
        ("PATCH", "/v1/categories/{id}") => Some(json!({"name": format!("C {new_id}")})),
        ("POST", "/v1/expenses") => Some(json!({"amount": 1, "currency": "USD"})),
        ("PATCH", "/v1/expenses/{id}" | "/v1/budgets/{id}") => Some(json!({"amount": 1})),
        ("POST", "/v1/rules") | ("PATCH", "/v1/rules/{id}") => Some(json!({"name": "r",
            "triggers": [{"type": "mcc_is", "value": "5814"}], "actions": {"category_id": new_id}})),
        ("POST", "/v1/wallets/{id}/payments") => Some(json!({"merchant": "Shop", "amount": 1})),
        ("POST", "/v1/wallets/{id}/monitors" | "/v1/admin/wallets/{id}/monitors") => {
            Some(json!({"condition": "debit_above", "amount": 1}))
        }
        ("POST", "/v1/imports") => Some(json!({"csv": "Date,Amount\n2026-01-01,-1.00\n", "currency": "USD",
            "columns": {"date": "Date", "amount": "Amount"}})),
        ("POST", "/v1/reconciliations") => Some(json!({"account": "card_settlement", "currency": "USD",
            "csv": "date,reference,amount,currency\n2026-01-01,ch_x,1.00,USD\n"})),
        ("POST", "/v1/fx/quotes") => {
            Some(json!({"from_wallet_id": alice_wallet, "to_currency": "EUR", "sell_amount": 1_000}))
        }
        ("POST", "/v1/budgets") => Some(json!({"category_id": new_id, "currency": "USD", "amount": 1})),
        ("POST", "/v1/scheduled-payments") => {
            Some(json!({"from_wallet_id": alice_wallet, "to_wallet_id": bob_wallet,
            "amount": 1, "frequency": "monthly", "start_at": "2099-01-01T00:00:00Z"}))
        }
        ("PATCH", "/v1/scheduled-payments/{id}") => Some(json!({"status": "paused"})),
        ("POST", "/v1/bank-connections") => Some(json!({"institution_id": "sandbox",
            "credentials": {"username": "user_good", "password": "pass_good"}})),
        ("PUT", "/v1/customers/{id}/role") => Some(json!({"role": "admin"})),
        ("POST", "/v1/ledger/accounts") => Some(json!([{"id": new_id, "ledger": 840, "code": 1}])),
        ("POST", "/v1/ledger/transfers") => Some(
            json!([{"id": new_id, "debit_account_id": alice_wallet, "credit_account_id": bob_wallet, "amount": 1, "ledger": 840, "code": 1}]),
        ),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_matrix_and_log_scan() {
    let database = ChildDatabase::new(&common::Backend::Sqlite).await;
    let mut config = database.config();
    config.log = "debug".into();
    let config = config
        .with_env("COFFER_LOGIN_FAILURES_PER_ACCOUNT_MAX", "3")
        .with_env("COFFER_WEBHOOK_ALLOW_PRIVATE", "true");
    let server = ChildServer::start(&config).await;
    let probe = Probe { server: &server, client: coffer::notifications::http_client().build().unwrap() };

    let alice = probe.register("alice@example.com").await;
    let bob = probe.register("bob@example.com").await;
    let mallory = probe.register("mallory@example.com").await;
    let alice_wallet = probe.created("POST", "/v1/wallets", &alice, json!({"currency": "USD"})).await;
    let alice_wallet = alice_wallet["id"].as_str().unwrap().to_owned();
    let bob_wallet = probe.created("POST", "/v1/wallets", &bob, json!({"currency": "USD"})).await;
    let bob_wallet = bob_wallet["id"].as_str().unwrap().to_owned();
    probe.created("POST", "/v1/wallets", &mallory, json!({"currency": "USD"})).await;
    let top_up = probe
        .created(
            "POST",
            &format!("/v1/wallets/{alice_wallet}/top-ups"),
            &alice,
            json!({"amount": 10_000, "payment_method": CARD_TOKEN}),
        )
        .await;
    assert_eq!(top_up["status"], "succeeded", "{top_up}");
    let withdrawal = probe
        .created(
            "POST",
            &format!("/v1/wallets/{alice_wallet}/withdrawals"),
            &alice,
            json!({"amount": 100, "destination": BANK_ACCOUNT}),
        )
        .await;
    let transfer = probe
        .created(
            "POST",
            "/v1/transfers",
            &alice,
            json!({"from_wallet_id": alice_wallet, "to_wallet_id": bob_wallet, "amount": 900}),
        )
        .await;
    let transfer_id = transfer["id"].as_str().unwrap().to_owned();
    let before = (probe.posted(&alice, &alice_wallet).await, probe.posted(&bob, &bob_wallet).await);
    assert_eq!(before, ((9_000, 0), (900, 0)));

    // Alice's objects of the finance and notification areas.
    let webhook = probe
        .created(
            "POST",
            "/v1/webhooks",
            &alice,
            json!({"url": "http://127.0.0.1:9/hook", "event_types": ["*"]}),
        )
        .await;
    let webhook_id = webhook["id"].as_str().unwrap().to_owned();
    let category = probe.created("POST", "/v1/categories", &alice, json!({"name": "Alice's own"})).await;
    let category_id = category["id"].as_str().unwrap().to_owned();
    let expense =
        probe.created("POST", "/v1/expenses", &alice, json!({"amount": 5, "currency": "USD"})).await;
    let expense_id = expense["id"].as_str().unwrap().to_owned();
    let rule_body = json!({"name": "r", "triggers": [{"type": "mcc_is", "value": "5814"}],
        "actions": {"category_id": category_id}});
    let rule = probe.created("POST", "/v1/rules", &alice, rule_body).await;
    let rule_id = rule["id"].as_str().unwrap().to_owned();
    let budget = probe
        .created(
            "POST",
            "/v1/budgets",
            &alice,
            json!({"category_id": category_id, "currency": "USD", "amount": 100}),
        )
        .await;
    let budget_id = budget["id"].as_str().unwrap().to_owned();
    let schedule_body = json!({"from_wallet_id": alice_wallet, "to_wallet_id": bob_wallet, "amount": 1,
        "frequency": "monthly", "start_at": "2099-01-01T00:00:00Z"});
    let schedule = probe.created("POST", "/v1/scheduled-payments", &alice, schedule_body).await;
    let schedule_id = schedule["id"].as_str().unwrap().to_owned();
    let bank =
        probe.created("POST", "/v1/bank-connections", &alice, json!({"institution_id": "sandbox"})).await;
    let bank_connection_id = bank["id"].as_str().unwrap().to_owned();
    let login =
        json!({"institution_id": "sandbox", "credentials": {"username": "alice", "password": BANK_PASSWORD}});
    let (status, problem) =
        probe.call("POST", "/v1/bank-connections", Some(&alice.access), Some(&login)).await;
    common::assert_problem(status, &problem, 422, "bank_credentials_invalid");
    // A quote between two of Alice's wallets (her second wallet, in EUR).
    probe.created("POST", "/v1/wallets", &alice, json!({"currency": "EUR"})).await;
    let quote_body = json!({"from_wallet_id": alice_wallet, "to_currency": "EUR", "sell_amount": 1_000});
    let quote = probe.created("POST", "/v1/fx/quotes", &alice, quote_body).await;
    let quote_id = quote["id"].as_str().unwrap().to_owned();
    let mut notification_id = String::new();
    for _ in 0..200 {
        let (_, inbox) = probe.call("GET", "/v1/notifications", Some(&alice.access), None).await;
        if let Some(id) = inbox["data"][0]["id"].as_str() {
            notification_id = id.to_owned();
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert!(!notification_id.is_empty(), "alice has a notification");

    let fill = |path: &str| {
        let path = path
            .replace("{delivery_id}", &uuid::Uuid::now_v7().to_string())
            .replace("{monitor_id}", &uuid::Uuid::now_v7().to_string())
            .replace("{year}/{month}", "2026/3");
        let id = if path.starts_with("/v1/webhooks/") {
            webhook_id.as_str()
        } else if path.starts_with("/v1/categories/") {
            category_id.as_str()
        } else if path.starts_with("/v1/expenses/") {
            expense_id.as_str()
        } else if path.starts_with("/v1/rules/") {
            rule_id.as_str()
        } else if path.starts_with("/v1/scheduled-payments/") {
            schedule_id.as_str()
        } else if path.starts_with("/v1/bank-connections/") {
            bank_connection_id.as_str()
        } else if path.starts_with("/v1/budgets/") {
            budget_id.as_str()
        } else if path.starts_with("/v1/notifications/") {
            notification_id.as_str()
        } else if path.starts_with("/v1/wallets/") || path.starts_with("/v1/ledger/accounts/") {
            alice_wallet.as_str()
        } else if path.starts_with("/v1/transfers/") || path.starts_with("/v1/ledger/transfers/") {
            transfer_id.as_str()
        } else if path.starts_with("/v1/top-ups/") {
            top_up["id"].as_str().unwrap()
        } else if path.starts_with("/v1/fx/quotes/") {
            quote_id.as_str()
        } else if path.starts_with("/v1/withdrawals/") {
            withdrawal["id"].as_str().unwrap()
        } else {
            alice.id.as_str()
        };
        path.replace("{id}", id)
    };

    // 1. Bad credentials: 401 on every route that is not public.
    let expired = token(
        &alice.id,
        json!({"exp": now() - 3_600, "iat": now() - 4_500, "nbf": now() - 4_500}),
        TEST_JWT_SECRET,
    );
    let other_key = token(&alice.id, json!({}), "another-secret-that-is-long-enough-0123456789");
    let alg_none = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#),
        URL_SAFE_NO_PAD.encode(json!({"sub": alice.id, "iss": "coffer", "aud": "coffer-api", "exp": now() + 600, "role": "admin"}).to_string())
    );
    let wrong_aud = token(&alice.id, json!({"aud": "someone-else"}), TEST_JWT_SECRET);
    let wrong_iss = token(&alice.id, json!({"iss": "evil"}), TEST_JWT_SECRET);
    let bad_credentials: [(&str, Option<&str>); 8] = [
        ("none", None),
        ("expired", Some(&expired)),
        ("other key", Some(&other_key)),
        ("alg none", Some(&alg_none)),
        ("wrong aud", Some(&wrong_aud)),
        ("wrong iss", Some(&wrong_iss)),
        ("garbage", Some("garbage")),
        ("wrong admin key", Some(WRONG_ADMIN_KEY)),
    ];
    let mut probes = 0;
    for (method, template, access) in ROUTES {
        if *access == Access::Public {
            continue;
        }
        let path = fill(template);
        let body = valid_body(method, template, &alice_wallet, &bob_wallet);
        for (case, credential) in &bad_credentials {
            let (status, problem) = probe.call(method, &path, *credential, body.as_ref()).await;
            assert_eq!(status, 401, "{method} {path} with {case}: {problem}");
            common::assert_problem(status, &problem, 401, "unauthorized");
            probes += 1;
        }
        // 2. Another customer's ids: 404. Admin routes as a customer: 403, or 401 for the
        // admin-key-only ledger API.
        let (status, problem) = probe.call(method, &path, Some(&mallory.access), body.as_ref()).await;
        let expected = match access {
            Access::Customer
                if template.contains("{id}") || matches!(*template, "/v1/transfers" | "/v1/fx/quotes") =>
            {
                404
            }
            Access::Customer => status,
            Access::Admin => 403,
            Access::AdminKey => 401,
            Access::Public => unreachable!(),
        };
        assert_eq!(status, expected, "{method} {path} as another customer: {problem}");
        assert!(status < 500, "{method} {path}: {problem}");
        probes += 1;
    }
    // The other customer's own lists show none of Alice's objects.
    for path in ["/v1/wallets", "/v1/operations"] {
        let (status, page) = probe.call("GET", path, Some(&mallory.access), None).await;
        assert_eq!(status, 200);
        assert!(!page.to_string().contains(&alice_wallet), "{path} leaks Alice's wallet: {page}");
    }

    // 3. Mass assignment: refused, nothing changes.
    let attempts = [
        (
            "POST",
            "/v1/auth/register".to_owned(),
            None,
            json!({"email": "eve@example.com", "password": TEST_PASSWORD, "role": "admin"}),
        ),
        (
            "POST",
            "/v1/wallets".to_owned(),
            Some(alice.access.as_str()),
            json!({"currency": "GBP", "balance": 1_000_000}),
        ),
        (
            "POST",
            "/v1/wallets".to_owned(),
            Some(alice.access.as_str()),
            json!({"currency": "GBP", "owner_id": mallory.id}),
        ),
        (
            "POST",
            "/v1/wallets".to_owned(),
            Some(alice.access.as_str()),
            json!({"currency": "GBP", "customer_id": mallory.id}),
        ),
        (
            "POST",
            "/v1/wallets".to_owned(),
            Some(alice.access.as_str()),
            json!({"currency": "GBP", "status": "frozen"}),
        ),
        (
            "POST",
            "/v1/transfers".to_owned(),
            Some(alice.access.as_str()),
            json!({"from_wallet_id": alice_wallet, "to_wallet_id": bob_wallet, "amount": 1, "status": "voided"}),
        ),
        (
            "POST",
            format!("/v1/wallets/{alice_wallet}/top-ups"),
            Some(alice.access.as_str()),
            json!({"amount": 1, "payment_method": CARD_TOKEN, "status": "succeeded"}),
        ),
        (
            "POST",
            format!("/v1/wallets/{alice_wallet}/withdrawals"),
            Some(alice.access.as_str()),
            json!({"amount": 1, "destination": BANK_ACCOUNT, "owner_id": mallory.id}),
        ),
        ("PATCH", "/v1/customers/me".to_owned(), Some(alice.access.as_str()), json!({"role": "admin"})),
        ("PATCH", "/v1/customers/me".to_owned(), Some(alice.access.as_str()), json!({"balance": 5})),
        (
            "POST",
            "/v1/ledger/accounts".to_owned(),
            Some(CHILD_ADMIN_KEY),
            json!([{"id": uuid::Uuid::now_v7(), "ledger": 840, "code": 1, "credits_posted": 1_000_000}]),
        ),
    ];
    for (method, path, bearer, body) in &attempts {
        let (status, problem) = probe.call(method, path, *bearer, Some(body)).await;
        common::assert_problem(status, &problem, 422, "validation_failed");
        probes += 1;
    }
    let (_, me) = probe.call("GET", "/v1/customers/me", Some(&alice.access), None).await;
    assert_eq!((&me["role"], &me["name"]), (&json!("customer"), &json!("Sec")), "{me}");
    let (_, wallets) = probe.call("GET", "/v1/wallets", Some(&alice.access), None).await;
    assert_eq!(wallets["data"].as_array().unwrap().len(), 2, "no wallet was created (USD, EUR): {wallets}");
    let (status, _) = probe
        .call(
            "POST",
            "/v1/auth/login",
            None,
            Some(&json!({"email": "eve@example.com", "password": TEST_PASSWORD})),
        )
        .await;
    assert_eq!(status, 401, "the refused registration created nobody");

    // 4. Oversize bodies: 413 on every route that takes a body.
    for (method, template, access) in ROUTES {
        // Routes that take no body (nothing would read it, and the request would act).
        if matches!(*method, "GET" | "DELETE") || TAKES_NO_BODY.contains(template) {
            continue;
        }
        let bearer = match access {
            Access::AdminKey | Access::Admin => CHILD_ADMIN_KEY,
            _ => alice.access.as_str(),
        };
        let limit = if template.starts_with("/v1/ledger/") {
            8 * 1024 * 1024
        } else if matches!(*template, "/v1/imports" | "/v1/reconciliations") {
            2 * 1024 * 1024
        } else {
            64 * 1024
        };
        let oversize = format!("{{\"name\": \"{}\"}}", "x".repeat(limit)).into_bytes();
        let (status, problem) = probe.raw(method, &fill(template), bearer, oversize).await;
        assert_eq!(status, 413, "{method} {template}: {problem}");
        probes += 1;
    }

    // 5. Page sizes: at most 100 on every list.
    let lists: [(String, &str); 13] = [
        ("/v1/insights/alerts".into(), alice.access.as_str()),
        ("/v1/bank-connections".into(), alice.access.as_str()),
        ("/v1/notifications".into(), alice.access.as_str()),
        ("/v1/webhooks".into(), alice.access.as_str()),
        ("/v1/webhooks".into(), CHILD_ADMIN_KEY),
        (format!("/v1/webhooks/{webhook_id}/deliveries"), alice.access.as_str()),
        ("/v1/expenses".into(), alice.access.as_str()),
        ("/v1/wallets".into(), alice.access.as_str()),
        (format!("/v1/wallets/{alice_wallet}/operations"), alice.access.as_str()),
        ("/v1/operations".into(), alice.access.as_str()),
        ("/v1/customers".into(), CHILD_ADMIN_KEY),
        (format!("/v1/ledger/accounts/{alice_wallet}/transfers"), CHILD_ADMIN_KEY),
        (format!("/v1/ledger/accounts/{alice_wallet}/balances"), CHILD_ADMIN_KEY),
    ];
    for (path, bearer) in &lists {
        for (limit, expected) in [(0, 422), (101, 422), (1_000_000, 422), (100, 200)] {
            let (status, body) =
                probe.call("GET", &format!("{path}?limit={limit}"), Some(bearer), None).await;
            assert_eq!(status, expected, "{path}?limit={limit}: {body}");
            probes += 1;
        }
    }

    // 6. Brute force and refresh-token reuse, so their paths are in the logs scanned below.
    for _ in 0..3 {
        let (status, _) = probe
            .call(
                "POST",
                "/v1/auth/login",
                None,
                Some(&json!({"email": "bob@example.com", "password": WRONG_PASSWORD})),
            )
            .await;
        assert_eq!(status, 401);
    }
    let (status, problem) = probe
        .call(
            "POST",
            "/v1/auth/login",
            None,
            Some(&json!({"email": "bob@example.com", "password": TEST_PASSWORD})),
        )
        .await;
    common::assert_problem(status, &problem, 429, "too_many_requests");
    let (status, rotated) =
        probe.call("POST", "/v1/auth/refresh", None, Some(&json!({"refresh_token": mallory.refresh}))).await;
    assert_eq!(status, 200, "{rotated}");
    let (status, _) =
        probe.call("POST", "/v1/auth/refresh", None, Some(&json!({"refresh_token": mallory.refresh}))).await;
    assert_eq!(status, 401, "a spent refresh token is refused");
    let rotated_refresh = rotated["refresh_token"].as_str().unwrap().to_owned();
    let (status, _) =
        probe.call("POST", "/v1/auth/refresh", None, Some(&json!({"refresh_token": rotated_refresh}))).await;
    assert_eq!(status, 401, "reuse revoked the whole family");

    // Nothing moved through all of that.
    let after = (probe.posted(&alice, &alice_wallet).await, probe.posted(&bob, &bob_wallet).await);
    assert_eq!(after, before, "a refused request moved money");

    // 7. The logs: plenty of them, and no secret in any.
    let access_token = rotated["access_token"].as_str().unwrap().to_owned();
    let logs = server.stop().await;
    assert!(logs.len() > probes, "debug logs cover the requests ({} lines, {probes} probes)", logs.len());
    let mentions = |text: &str| logs.iter().filter(|line| line.contains(text)).count();
    assert!(
        mentions("/v1/auth/login") > 0 && mentions("/v1/wallets") > 0 && mentions("\"status\":401") > 0,
        "the logs record the requests and their refusals, so the scan below looks at something"
    );
    let secrets = [
        ("a password", TEST_PASSWORD.to_owned()),
        ("a wrong password", WRONG_PASSWORD.to_owned()),
        ("a card token", CARD_TOKEN.to_owned()),
        ("a bank account", BANK_ACCOUNT.to_owned()),
        ("a bank password", BANK_PASSWORD.to_owned()),
        ("the admin key", CHILD_ADMIN_KEY.to_owned()),
        ("a wrong admin key", WRONG_ADMIN_KEY.to_owned()),
        ("the JWT secret", TEST_JWT_SECRET.to_owned()),
        ("an access token", alice.access.clone()),
        ("an access token", bob.access.clone()),
        ("an access token", mallory.access.clone()),
        ("an access token", access_token),
        ("a forged token", other_key),
        ("a refresh token", alice.refresh.clone()),
        ("a refresh token", mallory.refresh.clone()),
        ("a refresh token", rotated_refresh),
    ];
    for line in &logs {
        for (what, secret) in &secrets {
            // Tokens also checked by their signature part, in case only part is logged.
            let tail = &secret[secret.len().saturating_sub(20)..];
            assert!(!line.contains(secret.as_str()) && !line.contains(tail), "the log holds {what}: {line}");
        }
    }
    eprintln!("security matrix: {probes} probes, {} log lines scanned", logs.len());
    database.drop().await;
}
