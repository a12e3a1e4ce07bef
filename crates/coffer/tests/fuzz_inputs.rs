//! Fuzz targets on stable, with proptest: hostile input at every parser the outside world
//! reaches. Short case counts here; `COFFER_PROOF_LONG=1` runs 20 times as many.
//!
//! - Request bodies: arbitrary bytes, arbitrary JSON and valid bodies with one field
//!   replaced by arbitrary JSON, POSTed (with valid credentials) to every route that takes
//!   a body, and arbitrary query strings on every list: never a 5xx (a panic would be a
//!   500 from the catch-panic layer), never a non-problem error body, and bytes that are
//!   not JSON always a 4xx.
//! - Domain parsers (currency, email, phone, country, name): never panic; what they
//!   accept, they accept again unchanged.
//! - Access tokens: arbitrary strings, arbitrary header/claims/signature triples and
//!   valid tokens with one character changed are never accepted; the untouched valid
//!   token is.
//!
//! Inputs worth keeping are in `tests/corpus/` and replayed by `corpus_replays`.

mod common;

use std::{
    sync::{Arc, OnceLock},
    time::{SystemTime, UNIX_EPOCH},
};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use coffer::{
    config::Secret,
    identity::{
        Role,
        profile::{Country, CustomerName, Email, Phone},
        token::AccessTokens,
    },
    wallets::Currency,
};
use proptest::{prelude::*, test_runner::TestRunner};
use serde_json::{Value, json};

fn cases(short: u32) -> u32 {
    if std::env::var("COFFER_PROOF_LONG").is_ok_and(|value| value == "1") { short * 20 } else { short }
}

/// Any JSON value, a few levels deep.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(|f| json!(f)),
        ".{0,40}".prop_map(Value::String),
        Just(json!("USD")),
        Just(json!(-1)),
        Just(json!(u64::MAX)),
        Just(json!("00000000-0000-0000-0000-000000000000")),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{1,16}", inner, 0..6)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

/// The app every body case is sent to, with a customer who has a wallet.
struct Target {
    runtime: tokio::runtime::Runtime,
    app: common::TestApp,
    customer: common::Session,
    wallet: String,
}

fn target() -> &'static Target {
    static TARGET: OnceLock<Target> = OnceLock::new();
    TARGET.get_or_init(|| {
        let runtime =
            tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let (app, customer, wallet) = runtime.block_on(async {
            let app = common::spawn_app(&common::Backend::Sqlite).await;
            let customer = common::register_and_login(&app, "fuzz@example.com").await;
            let response = app
                .client
                .post(app.url("/v1/wallets"))
                .bearer_auth(&customer.access_token)
                .header("idempotency-key", "fuzz-wallet")
                .json(&json!({"currency": "USD"}))
                .send()
                .await
                .unwrap();
            let (status, wallet) = common::read(response).await;
            assert_eq!(status, 201, "{wallet}");
            (app, customer, wallet["id"].as_str().unwrap().to_owned())
        });
        Target { runtime, app, customer, wallet }
    })
}

/// Routes that take a body: method, path, whether the admin key (else the customer),
/// and a valid body to mutate.
fn body_routes(target: &Target) -> Vec<(&'static str, String, bool, Value)> {
    let wallet = &target.wallet;
    let id = || uuid::Uuid::now_v7().to_string();
    vec![
        (
            "POST",
            "/v1/auth/register".into(),
            false,
            json!({"email": "x@example.com", "password": "long enough pass phrase", "name": "X"}),
        ),
        (
            "POST",
            "/v1/auth/login".into(),
            false,
            json!({"email": "fuzz@example.com", "password": "wrong password here"}),
        ),
        ("POST", "/v1/auth/refresh".into(), false, json!({"refresh_token": "x"})),
        ("POST", "/v1/auth/logout".into(), false, json!({"refresh_token": "x"})),
        (
            "PATCH",
            "/v1/customers/me".into(),
            false,
            json!({"name": "Fuzz", "phone": "+442071838750", "country": "GB", "preferences": {}}),
        ),
        (
            "PUT",
            format!("/v1/customers/{}/role", target.customer.customer_id),
            true,
            json!({"role": "customer"}),
        ),
        (
            "POST",
            "/v1/wallets".into(),
            false,
            json!({"currency": "EUR", "type": "credit_card", "credit_limit": 100, "name": "n"}),
        ),
        (
            "POST",
            "/v1/transfers".into(),
            false,
            json!({"from_wallet_id": wallet, "to_email": "fuzz@example.com", "amount": 1, "description": "d"}),
        ),
        (
            "POST",
            format!("/v1/wallets/{wallet}/top-ups"),
            false,
            json!({"amount": 5, "payment_method": "tok_visa"}),
        ),
        (
            "POST",
            format!("/v1/wallets/{wallet}/withdrawals"),
            false,
            json!({"amount": 1, "destination": "ba_x"}),
        ),
        (
            "POST",
            "/v1/ledger/accounts".into(),
            true,
            json!([{"id": id(), "ledger": 840, "code": 1, "flags": ["history"]}]),
        ),
        (
            "POST",
            "/v1/ledger/transfers".into(),
            true,
            json!([{"id": id(), "debit_account_id": wallet, "credit_account_id": id(), "amount": 1, "ledger": 840, "code": 1, "flags": ["pending"], "timeout": 1}]),
        ),
        (
            "POST",
            "/v1/bank-connections".into(),
            false,
            json!({"institution_id": "sandbox", "credentials": {"username": "fuzz", "password": "pass_good"}}),
        ),
    ]
}

/// Lists that take a query string.
fn list_routes(target: &Target) -> Vec<(String, bool)> {
    let wallet = &target.wallet;
    vec![
        ("/v1/wallets".into(), false),
        (format!("/v1/wallets/{wallet}/operations"), false),
        ("/v1/operations".into(), false),
        ("/v1/customers".into(), true),
        (format!("/v1/ledger/accounts/{wallet}/transfers"), true),
        (format!("/v1/ledger/accounts/{wallet}/balances"), true),
        ("/v1/bank-connections".into(), false),
    ]
}

#[derive(Clone, Debug)]
enum Body {
    Bytes(Vec<u8>),
    Json(Value),
    /// A valid body with one top-level field (or array item's field) set to `value`.
    Mutated {
        field: String,
        value: Value,
    },
}

fn any_body() -> impl Strategy<Value = Body> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..300).prop_map(Body::Bytes),
        any_json().prop_map(Body::Json),
        (
            prop_oneof![
                Just("amount".to_owned()),
                Just("currency".to_owned()),
                Just("id".to_owned()),
                Just("flags".to_owned()),
                "[a-z_]{1,12}"
            ],
            any_json()
        )
            .prop_map(|(field, value)| Body::Mutated { field, value }),
    ]
}

/// Sends one case; checks the answer. Returns the status.
async fn send(target: &Target, method: &str, path: &str, admin: bool, bytes: Vec<u8>) -> u16 {
    let bearer = if admin { target.app.admin_key.clone() } else { target.customer.access_token.clone() };
    let response = target
        .app
        .client
        .request(reqwest::Method::from_bytes(method.as_bytes()).unwrap(), target.app.url(path))
        .bearer_auth(bearer)
        .header("idempotency-key", uuid::Uuid::now_v7().to_string())
        .header("content-type", "application/json")
        .body(bytes)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let content_type = response.headers().get("content-type").map(|v| v.to_str().unwrap_or("").to_owned());
    let (_, body) = common::read(response).await;
    assert!(status < 500, "{method} {path}: {status} {body}");
    if status >= 400 {
        assert_eq!(
            content_type.as_deref(),
            Some("application/problem+json"),
            "{method} {path}: {status} {body}"
        );
        assert!(body["code"].is_string(), "{method} {path}: {status} {body}");
    }
    status
}

fn encode(body: &Body, valid: &Value) -> Vec<u8> {
    match body {
        Body::Bytes(bytes) => bytes.clone(),
        Body::Json(value) => serde_json::to_vec(value).unwrap(),
        Body::Mutated { field, value } => {
            let mut mutated = valid.clone();
            match &mut mutated {
                Value::Object(map) => {
                    map.insert(field.clone(), value.clone());
                }
                Value::Array(items) => {
                    if let Some(Value::Object(map)) = items.first_mut() {
                        map.insert(field.clone(), value.clone());
                    }
                }
                _ => {}
            }
            serde_json::to_vec(&mutated).unwrap()
        }
    }
}

#[test]
fn hostile_bodies_and_queries_never_cause_a_server_error() {
    let target = target();
    let routes = Arc::new(body_routes(target));
    let lists = list_routes(target);
    let mut runner = TestRunner::new(ProptestConfig { cases: cases(400), ..ProptestConfig::default() });
    let strategy = (0..routes.len(), any_body());
    runner
        .run(&strategy, |(route, body)| {
            let (method, path, admin, valid) = &routes[route];
            let bytes = encode(&body, valid);
            let not_json = serde_json::from_slice::<Value>(&bytes).is_err();
            let status = target.runtime.block_on(send(target, method, path, *admin, bytes));
            if not_json {
                prop_assert!((400..500).contains(&status), "{method} {path}: {status} for non-JSON");
            }
            Ok(())
        })
        .unwrap();
    let mut runner = TestRunner::new(ProptestConfig { cases: cases(200), ..ProptestConfig::default() });
    let query = prop_oneof![
        "[ -~]{0,80}",
        "(limit|cursor|order|side|type|status|from|to|amount_min|amount_max|timestamp_min|timestamp_max)=[ -~]{0,30}",
    ];
    runner
        .run(&(0..lists.len(), query), |(route, query)| {
            let (path, admin) = &lists[route];
            let bearer =
                if *admin { target.app.admin_key.clone() } else { target.customer.access_token.clone() };
            let url = format!("{}?{}", target.app.url(path), query);
            target.runtime.block_on(async {
                // reqwest refuses some of these as URLs; those never reach a server.
                let Ok(request) = target.app.client.get(&url).bearer_auth(bearer).build() else { return };
                let response = target.app.client.execute(request).await.unwrap();
                let status = response.status().as_u16();
                let (_, body) = common::read(response).await;
                assert!(status < 500, "GET {url}: {status} {body}");
            });
            Ok(())
        })
        .unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(2_000), ..ProptestConfig::default() })]

    #[test]
    fn domain_parsers_never_panic_and_are_stable(text in prop_oneof![".{0,80}", "[A-Za-z]{3}", "\\+[0-9 ()-]{0,20}", "[a-z.]{1,10}@[a-z.]{1,10}"]) {
        if let Some(currency) = Currency::parse(&text) {
            prop_assert_eq!(Currency::parse(currency.code()).map(|c| c.code()), Some(currency.code()));
        }
        if let Ok(email) = Email::parse(&text) {
            prop_assert_eq!(Email::parse(email.as_str()).map(|e| e.as_str().to_owned()).ok(), Some(email.as_str().to_owned()));
        }
        if let Ok(phone) = Phone::parse(&text) {
            let normal = phone.into_inner();
            prop_assert_eq!(Phone::parse(&normal).map(Phone::into_inner).ok(), Some(normal));
        }
        if let Ok(country) = Country::parse(&text) {
            let normal = country.into_inner();
            prop_assert_eq!(Country::parse(&normal).map(Country::into_inner).ok(), Some(normal));
        }
        if let Ok(name) = CustomerName::parse(&text) {
            let normal = name.into_inner();
            prop_assert_eq!(CustomerName::parse(&normal).map(CustomerName::into_inner).ok(), Some(normal));
        }
    }
}

fn tokens() -> (AccessTokens, String) {
    let tokens = AccessTokens::new(&Secret::new(common::TEST_JWT_SECRET.to_owned()), None);
    let valid = tokens.issue(uuid::Uuid::now_v7(), Role::Customer, SystemTime::now()).unwrap();
    (tokens, valid)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(1_000), ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_tokens_are_never_accepted(text in prop_oneof![".{0,200}", "[A-Za-z0-9_-]{0,60}\\.[A-Za-z0-9_-]{0,60}\\.[A-Za-z0-9_-]{0,60}"]) {
        let (tokens, _) = tokens();
        prop_assert!(tokens.verify(&text, std::time::SystemTime::now()).is_none(), "{text}");
    }

    #[test]
    fn forged_structures_are_never_accepted(header in any_json(), claims in any_json(), signature in prop::collection::vec(any::<u8>(), 0..64), admin in any::<bool>()) {
        let (tokens, _) = tokens();
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
        // Half the time, claims that would be valid if only the signature were right.
        let claims = if admin {
            json!({"iss": "coffer", "aud": "coffer-api", "exp": now + 600, "nbf": now, "iat": now,
                   "sub": uuid::Uuid::now_v7(), "jti": uuid::Uuid::now_v7(), "role": "admin"})
        } else {
            claims
        };
        for header in [header, json!({"alg": "HS256", "typ": "JWT"}), json!({"alg": "none"})] {
            let token = format!(
                "{}.{}.{}",
                URL_SAFE_NO_PAD.encode(header.to_string()),
                URL_SAFE_NO_PAD.encode(claims.to_string()),
                URL_SAFE_NO_PAD.encode(&signature)
            );
            prop_assert!(tokens.verify(&token, std::time::SystemTime::now()).is_none(), "{token}");
        }
    }

    #[test]
    fn a_valid_token_with_one_character_changed_is_refused(at in any::<prop::sample::Index>(), replacement in "[A-Za-z0-9_.-]") {
        let (tokens, valid) = tokens();
        prop_assert!(tokens.verify(&valid, std::time::SystemTime::now()).is_some(), "the untouched token verifies");
        let at = at.index(valid.len());
        let original = &valid[at..at + 1];
        prop_assume!(original != replacement);
        let changed = format!("{}{replacement}{}", &valid[..at], &valid[at + 1..]);
        // base64url's last character can carry padding bits that decode the same; a
        // change there that yields the same bytes is not a different token.
        let same = changed.split('.').map(|part| URL_SAFE_NO_PAD.decode(part).ok()).collect::<Vec<_>>()
            == valid.split('.').map(|part| URL_SAFE_NO_PAD.decode(part).ok()).collect::<Vec<_>>();
        prop_assume!(!same);
        prop_assert!(tokens.verify(&changed, std::time::SystemTime::now()).is_none(), "{changed}");
    }
}

/// Replays the kept inputs in `tests/corpus/`: `*.body` files are `METHOD PATH` on the
/// first line (`admin ` first for the admin key) and the body after it; `*.token` files
/// hold one token per line. Bodies must get a 4xx (never a 5xx); tokens must be refused.
#[test]
fn corpus_replays() {
    let target = target();
    let (tokens, _) = tokens();
    let directory = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/corpus");
    let (mut bodies, mut token_count) = (0, 0);
    for entry in std::fs::read_dir(directory).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        match path.extension().and_then(|extension| extension.to_str()) {
            Some("body") => {
                let (first, body) = text.split_once('\n').unwrap_or((&text, ""));
                let (admin, first) = match first.strip_prefix("admin ") {
                    Some(rest) => (true, rest),
                    None => (false, first),
                };
                let (method, route) = first.split_once(' ').unwrap();
                let route = route.replace("{wallet}", &target.wallet);
                let status =
                    target.runtime.block_on(send(target, method, &route, admin, body.as_bytes().to_vec()));
                assert!((400..500).contains(&status), "{path:?}: {status}");
                bodies += 1;
            }
            Some("token") => {
                for line in text.lines().filter(|line| !line.is_empty()) {
                    assert!(tokens.verify(line, std::time::SystemTime::now()).is_none(), "{path:?}: {line}");
                    token_count += 1;
                }
            }
            _ => {}
        }
    }
    assert!(bodies >= 5 && token_count >= 3, "the corpus is there: {bodies} bodies, {token_count} tokens");
}
