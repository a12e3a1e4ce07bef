//! Currency conversion end to end, on both backends: every pair of the seven currencies
//! converted and checked to the minor unit against figures worked out here from the
//! published rates (with each currency's ISO exponent written out independently), quotes
//! that expire, fifty concurrent retries that convert once, a conversion the wallet cannot
//! pay that moves nothing, the house's positions, history, events and the inbox, and the
//! ECB reference file (its pairs, its staleness, its absence).

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::{
    Options, Session, TestApp, assert_problem, backends, customer, register_and_login, spawn_app_with,
};
use serde_json::{Value, json};

/// Every supported currency with its ISO 4217 exponent.
const CURRENCIES: [(&str, u32); 7] =
    [("USD", 2), ("EUR", 2), ("GBP", 2), ("JPY", 0), ("KES", 2), ("RWF", 0), ("NGN", 2)];
const SPREAD_BPS: u128 = 50;
const FEE_BPS: u64 = 30;

fn exponent(code: &str) -> u32 {
    CURRENCIES.iter().find(|(c, _)| *c == code).unwrap().1
}

fn options() -> Options {
    Options {
        configure: |args| {
            args.fx_spread_bps = 50;
            args.fx_fee_bps = 30;
        },
        ..Options::default()
    }
}

/// A decimal text as (digits, 10^places).
fn decimal(text: &str) -> (u128, u128) {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let digits: u128 = format!("{whole}{fraction}").parse().unwrap();
    (digits, 10u128.pow(fraction.len() as u32))
}

/// The published rates: units of each currency per unit of the base (the base is 1).
async fn rates(app: &TestApp, session: &Session) -> HashMap<String, (u128, u128)> {
    let (status, body) = customer::get(app, session, "/v1/fx/rates").await;
    assert_eq!(status, 200, "{body}");
    let mut rates: HashMap<String, (u128, u128)> = body["rates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|rate| (rate["currency"].as_str().unwrap().to_owned(), decimal(rate["rate"].as_str().unwrap())))
        .collect();
    rates.insert(body["base"].as_str().unwrap().to_owned(), (1, 1));
    rates
}

/// What `sell` minor units of `from` buy in minor units of `to` after the spread, rounded
/// down: sell / 10^e(from) × (to_rate / from_rate) × (1 − spread) × 10^e(to).
fn expected_buy(rates: &HashMap<String, (u128, u128)>, from: &str, to: &str, sell: u64) -> u64 {
    let ((a, a_scale), (b, b_scale)) = (rates[from], rates[to]);
    let above = u128::from(sell) * b * a_scale * (10_000 - SPREAD_BPS) * 10u128.pow(exponent(to));
    let below = 10u128.pow(exponent(from)) * a * b_scale * 10_000;
    u64::try_from(above / below).unwrap()
}

/// What buys `buy` minor units of `to`, rounded up.
fn expected_sell(rates: &HashMap<String, (u128, u128)>, from: &str, to: &str, buy: u64) -> u64 {
    let ((a, a_scale), (b, b_scale)) = (rates[from], rates[to]);
    let above = u128::from(buy) * 10u128.pow(exponent(from)) * a * b_scale * 10_000;
    let below = b * a_scale * (10_000 - SPREAD_BPS) * 10u128.pow(exponent(to));
    u64::try_from(above.div_ceil(below)).unwrap()
}

async fn posted(app: &TestApp, session: &Session, wallet: &str) -> i64 {
    let (status, body) = customer::get(app, session, &format!("/v1/wallets/{wallet}")).await;
    assert_eq!(status, 200, "{body}");
    body["balance"]["posted"].as_i64().unwrap()
}

async fn quote(app: &TestApp, session: &Session, body: Value) -> Value {
    let (status, quote) = customer::post(app, session, "/v1/fx/quotes", &body).await;
    assert_eq!(status, 201, "{quote}");
    assert_eq!(quote["status"], "open");
    quote
}

async fn execute_with(app: &TestApp, session: &Session, quote: &str, key: &str) -> (u16, Value) {
    let response = app
        .client
        .post(app.url(&format!("/v1/fx/quotes/{quote}/execute")))
        .bearer_auth(&session.access_token)
        .header("idempotency-key", key)
        .send()
        .await
        .unwrap();
    common::read(response).await
}

async fn execute(app: &TestApp, session: &Session, quote: &str) -> Value {
    let (status, body) = execute_with(app, session, quote, &common::new_id()).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["status"], "executed");
    body
}

async fn report(app: &TestApp) -> HashMap<String, Value> {
    let (status, report) = app.get("/v1/admin/fx/report").await;
    assert_eq!(status, 200, "{report}");
    report["currencies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| (entry["currency"].as_str().unwrap().to_owned(), entry.clone()))
        .collect()
}

async fn verified_clean(app: &TestApp) {
    let (status, run) = app.post("/v1/admin/verify", &json!(null)).await;
    assert_eq!(status, 202, "{run}");
    let path = format!("/v1/admin/verify/{}", run["id"].as_str().unwrap());
    for _ in 0..1_000 {
        let (_, run) = app.get(&path).await;
        if run["status"] != "running" {
            assert_eq!(run["status"], "clean", "{run}");
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the books' check did not finish");
}

#[tokio::test]
async fn every_pair_converts_exactly_to_the_minor_unit() {
    for backend in backends() {
        let app = spawn_app_with(&backend, options()).await;
        let session = register_and_login(&app, "fx@example.com").await;
        let rates = rates(&app, &session).await;
        let mut wallets = HashMap::new();
        let mut expected: HashMap<&str, i64> = HashMap::new();
        for (code, _) in CURRENCIES {
            let wallet = customer::open_wallet(&app, &session, code).await;
            customer::top_up(&app, &session, &wallet, 1_000_000).await;
            wallets.insert(code, wallet);
            expected.insert(code, 1_000_000);
        }
        // The house's books as this test keeps them: sold, bought, fees per currency.
        let mut house: HashMap<&str, (u64, u64, u64)> = HashMap::new();
        for (from, _) in CURRENCIES {
            for (to, _) in CURRENCIES.iter().filter(|(to, _)| *to != from) {
                let sell = 123_456;
                let offered = quote(
                    &app,
                    &session,
                    json!({"from_wallet_id": wallets[from], "to_wallet_id": wallets[to], "sell_amount": sell}),
                )
                .await;
                let buy = expected_buy(&rates, from, to, sell);
                let fee = sell * FEE_BPS / 10_000;
                assert_eq!(offered["sell_amount"], sell, "{from}→{to}: {offered}");
                assert_eq!(offered["buy_amount"], buy, "{from}→{to}: {offered}");
                assert_eq!(offered["fee"], fee, "{from}→{to}");
                assert_eq!(offered["total_debit"], sell + fee, "{from}→{to}");
                assert_eq!(offered["spread_bps"], 50);
                assert_eq!(offered["rate_source"], "sandbox");
                let executed = execute(&app, &session, offered["id"].as_str().unwrap()).await;
                assert_eq!(executed["buy_amount"], buy);
                *expected.get_mut(from).unwrap() -= i64::try_from(sell + fee).unwrap();
                *expected.get_mut(*to).unwrap() += i64::try_from(buy).unwrap();
                let entry = house.entry(from).or_default();
                entry.0 += sell;
                entry.2 += fee;
                house.entry(*to).or_default().1 += buy;
            }
        }
        for (code, _) in CURRENCIES {
            assert_eq!(posted(&app, &session, &wallets[code]).await, expected[code], "{code} wallet");
        }

        // A fixed purchase costs the rounded-up sale, and a unit less would not buy it.
        for (from, to, buy) in
            [("USD", "JPY", 10_000), ("JPY", "GBP", 777), ("NGN", "RWF", 1), ("RWF", "KES", 99)]
        {
            let offered = quote(
                &app,
                &session,
                json!({"from_wallet_id": wallets[from], "to_currency": to, "buy_amount": buy}),
            )
            .await;
            let sell = expected_sell(&rates, from, to, buy);
            assert_eq!(offered["sell_amount"], sell, "{from}→{to}: {offered}");
            assert_eq!(offered["buy_amount"], buy);
            assert_eq!(offered["fixed"], "buy");
            assert!(expected_buy(&rates, from, to, sell) >= buy);
            assert!(expected_buy(&rates, from, to, sell - 1) < buy, "{from}→{to}: not the least sale");
        }

        // The house's FX accounts hold exactly what the conversions left there.
        let report = report(&app).await;
        for (code, (sold, bought, fees)) in &house {
            let entry = &report[*code];
            let position = i64::try_from(*sold).unwrap() - i64::try_from(*bought).unwrap();
            assert_eq!(entry["position"], position, "{code}: {entry}");
            assert_eq!(entry["expected_position"], position, "{code}");
            assert_eq!(entry["balanced"], true, "{code}");
            assert_eq!(entry["sold_count"], 6);
            assert_eq!(entry["bought_count"], 6);
            assert_eq!(entry["fees"], *fees, "{code}");
            assert!(entry["spread"].as_u64().unwrap() > 0, "{code}: the spread earns");
        }
        verified_clean(&app).await;
        app.stop().await;
    }
}

#[tokio::test]
async fn a_conversion_is_one_operation_with_both_legs_an_event_and_a_message() {
    for backend in backends() {
        let app = spawn_app_with(&backend, options()).await;
        let session = register_and_login(&app, "legs@example.com").await;
        let usd = customer::open_wallet(&app, &session, "USD").await;
        let eur = customer::open_wallet(&app, &session, "EUR").await;
        customer::top_up(&app, &session, &usd, 50_000).await;
        let offered = quote(
            &app,
            &session,
            json!({"from_wallet_id": usd, "to_currency": "EUR", "sell_amount": 10_000}),
        )
        .await;
        let id = offered["id"].as_str().unwrap();
        let executed = execute(&app, &session, id).await;
        let (status, again) = customer::get(&app, &session, &format!("/v1/fx/quotes/{id}")).await;
        assert_eq!(status, 200);
        assert_eq!(again["status"], "executed");
        assert_eq!(again["executed_at"], executed["executed_at"]);

        // Each wallet's history has its leg, and each leg names both.
        let legs = json!({
            "quote_id": id,
            "sold": {"wallet_id": usd, "amount": 10_000, "currency": "USD"},
            "bought": {"wallet_id": eur, "amount": offered["buy_amount"], "currency": "EUR"},
            "fee": 30,
            "rate": offered["rate"],
        });
        for (wallet, amount) in [(&usd, -10_000), (&eur, offered["buy_amount"].as_i64().unwrap())] {
            let (status, page) =
                customer::get(&app, &session, &format!("/v1/wallets/{wallet}/operations?type=conversion"))
                    .await;
            assert_eq!(status, 200, "{page}");
            let lines = page["data"].as_array().unwrap();
            assert_eq!(lines.len(), 1, "{page}");
            assert_eq!(lines[0]["type"], "conversion");
            assert_eq!(lines[0]["amount"], amount);
            assert_eq!(lines[0]["counterparty"]["type"], "fx");
            assert_eq!(lines[0]["conversion"], legs);
        }
        let (_, page) =
            customer::get(&app, &session, &format!("/v1/wallets/{usd}/operations?type=fee")).await;
        assert_eq!(page["data"][0]["amount"], -30, "the fee is its own line: {page}");

        // fx.converted, once, with the conversion's facts; and a message in the inbox.
        let store = app.store().await;
        common::relayed(&store).await;
        let raw = common::Raw::new(&app);
        assert_eq!(raw.number("SELECT COUNT(*) FROM outbox WHERE type = 'coffer.fx.converted'").await, 1);
        let mut told = false;
        for _ in 0..500 {
            let (_, inbox) = customer::get(&app, &session, "/v1/notifications").await;
            if let Some(message) =
                inbox["data"].as_array().unwrap().iter().find(|n| n["kind"] == "fx_converted")
            {
                let bought = offered["buy_amount"].as_u64().unwrap();
                let bought = format!("{}.{:02}", bought / 100, bought % 100);
                assert_eq!(message["title"], format!("You converted 100.00 USD to {bought} EUR"));
                told = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(told, "the conversion reached the inbox");
        app.stop().await;
    }
}

#[tokio::test]
async fn fifty_concurrent_retries_convert_once() {
    for backend in backends() {
        let app = spawn_app_with(&backend, options()).await;
        let session = register_and_login(&app, "retry@example.com").await;
        let gbp = customer::open_wallet(&app, &session, "GBP").await;
        let jpy = customer::open_wallet(&app, &session, "JPY").await;
        customer::top_up(&app, &session, &gbp, 100_000).await;
        let offered =
            quote(&app, &session, json!({"from_wallet_id": gbp, "to_wallet_id": jpy, "sell_amount": 40_000}))
                .await;
        let id = offered["id"].as_str().unwrap().to_owned();

        // One key, fifty times at once: one conversion; the others replay it or wait.
        let key = common::new_id();
        let answers =
            futures::future::join_all((0..50).map(|_| execute_with(&app, &session, &id, &key))).await;
        let mut executed_at = None;
        for (status, body) in &answers {
            match status {
                201 => {
                    let at = body["executed_at"].clone();
                    assert_eq!(*executed_at.get_or_insert(at.clone()), at, "every replay is the same answer");
                }
                409 => assert_eq!(body["code"], "idempotency_key_in_use", "{body}"),
                other => panic!("{other}: {body}"),
            }
        }
        assert!(executed_at.is_some(), "one of them converted");
        // Fifty other keys at once: the quote converts once, ever; they see it done.
        let keys: Vec<String> = (0..50).map(|_| common::new_id()).collect();
        let answers =
            futures::future::join_all(keys.iter().map(|key| execute_with(&app, &session, &id, key))).await;
        for (status, body) in &answers {
            assert_eq!(*status, 200, "{body}");
            assert_eq!(Some(&body["executed_at"]), executed_at.as_ref());
        }
        let fee = 40_000 * FEE_BPS / 10_000;
        assert_eq!(posted(&app, &session, &gbp).await, 100_000 - 40_000 - i64::try_from(fee).unwrap());
        assert_eq!(posted(&app, &session, &jpy).await, offered["buy_amount"].as_i64().unwrap());
        let raw = common::Raw::new(&app);
        assert_eq!(
            raw.number("SELECT COUNT(*) FROM transfers WHERE code = 8").await,
            2,
            "one sale, one purchase"
        );
        assert_eq!(raw.number("SELECT COUNT(*) FROM transfers WHERE code = 4").await, 1, "one fee");
        app.stop().await;
    }
}

#[tokio::test]
async fn a_conversion_the_wallet_cannot_pay_or_too_late_moves_nothing() {
    for backend in backends() {
        let mut options = options();
        options.configure = |args| {
            args.fx_fee_bps = 30;
            args.fx_quote_ttl_s = 1;
        };
        let app = spawn_app_with(&backend, options).await;
        let session = register_and_login(&app, "short@example.com").await;
        let usd = customer::open_wallet(&app, &session, "USD").await;
        let kes = customer::open_wallet(&app, &session, "KES").await;
        customer::top_up(&app, &session, &usd, 10_000).await;

        // The sale fits, the fee does not: the chain fails whole.
        let offered =
            quote(&app, &session, json!({"from_wallet_id": usd, "to_wallet_id": kes, "sell_amount": 10_000}))
                .await;
        let (status, body) =
            execute_with(&app, &session, offered["id"].as_str().unwrap(), &common::new_id()).await;
        assert_problem(status, &body, 422, "insufficient_funds");
        assert_eq!(posted(&app, &session, &usd).await, 10_000);
        assert_eq!(posted(&app, &session, &kes).await, 0);
        let raw = common::Raw::new(&app);
        assert_eq!(raw.number("SELECT COUNT(*) FROM transfers WHERE code IN (4, 8)").await, 0);
        assert!(report(&app).await.is_empty(), "no conversion, no position");

        // A quote executed after it expired is refused, and says so when read.
        let offered =
            quote(&app, &session, json!({"from_wallet_id": usd, "to_wallet_id": kes, "sell_amount": 1_000}))
                .await;
        let id = offered["id"].as_str().unwrap();
        tokio::time::sleep(Duration::from_millis(1_100)).await;
        let (status, body) = execute_with(&app, &session, id, &common::new_id()).await;
        assert_problem(status, &body, 409, "fx_quote_expired");
        let (_, read) = customer::get(&app, &session, &format!("/v1/fx/quotes/{id}")).await;
        assert_eq!(read["status"], "expired");
        assert_eq!(read["executed_at"], Value::Null);
        assert_eq!(posted(&app, &session, &usd).await, 10_000);
        app.stop().await;
    }
}

#[tokio::test]
async fn quotes_refuse_what_is_not_a_conversion_of_mine() {
    for backend in backends() {
        let app = spawn_app_with(&backend, options()).await;
        let alice = register_and_login(&app, "alice.fx@example.com").await;
        let bob = register_and_login(&app, "bob.fx@example.com").await;
        let usd = customer::open_wallet(&app, &alice, "USD").await;
        let usd_savings = {
            let body = json!({"currency": "USD", "type": "savings"});
            let (status, wallet) = customer::keyed_post(&app, &alice, "/v1/wallets", &body).await;
            assert_eq!(status, 201, "{wallet}");
            wallet["id"].as_str().unwrap().to_owned()
        };
        let bobs_eur = customer::open_wallet(&app, &bob, "EUR").await;
        let cases = [
            (
                json!({"from_wallet_id": usd, "to_wallet_id": bobs_eur, "sell_amount": 100}),
                404,
                "wallet_not_found",
            ),
            (
                json!({"from_wallet_id": bobs_eur, "to_currency": "USD", "sell_amount": 100}),
                404,
                "wallet_not_found",
            ),
            (json!({"from_wallet_id": usd, "to_wallet_id": usd, "sell_amount": 100}), 422, "same_wallet"),
            (
                json!({"from_wallet_id": usd, "to_wallet_id": usd_savings, "sell_amount": 100}),
                422,
                "fx_same_currency",
            ),
            (
                json!({"from_wallet_id": usd, "to_currency": "GBP", "sell_amount": 100}),
                422,
                "validation_failed",
            ),
            (
                json!({"from_wallet_id": usd, "to_currency": "XXX", "sell_amount": 100}),
                422,
                "validation_failed",
            ),
            (json!({"from_wallet_id": usd, "to_currency": "EUR"}), 422, "validation_failed"),
            (
                json!({"from_wallet_id": usd, "to_currency": "EUR", "sell_amount": 1, "buy_amount": 1}),
                422,
                "validation_failed",
            ),
            (
                json!({"from_wallet_id": usd, "to_currency": "EUR", "to_wallet_id": usd_savings, "sell_amount": 1}),
                422,
                "validation_failed",
            ),
            (
                json!({"from_wallet_id": usd, "to_currency": "EUR", "sell_amount": 0}),
                422,
                "validation_failed",
            ),
        ];
        let _alices_eur = customer::open_wallet(&app, &alice, "EUR").await;
        let alices_jpy = customer::open_wallet(&app, &alice, "JPY").await;
        for (body, status, code) in cases {
            let (got, problem) = customer::post(&app, &alice, "/v1/fx/quotes", &body).await;
            assert_problem(got, &problem, status, code);
        }
        // Dust: one yen is less than a cent.
        let (got, problem) = customer::post(
            &app,
            &alice,
            "/v1/fx/quotes",
            &json!({"from_wallet_id": alices_jpy, "to_currency": "USD", "sell_amount": 1}),
        )
        .await;
        assert_problem(got, &problem, 422, "fx_amount_too_small");
        // Someone else's quote is not found, to read or to execute.
        let offered =
            quote(&app, &alice, json!({"from_wallet_id": usd, "to_currency": "EUR", "sell_amount": 100}))
                .await;
        let id = offered["id"].as_str().unwrap();
        let (got, problem) = customer::get(&app, &bob, &format!("/v1/fx/quotes/{id}")).await;
        assert_problem(got, &problem, 404, "fx_quote_not_found");
        let (got, problem) = execute_with(&app, &bob, id, &common::new_id()).await;
        assert_problem(got, &problem, 404, "fx_quote_not_found");
        app.stop().await;
    }
}

/// The sample reference file (the ECB's daily layout), dated 2026-11-30.
const SAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/examples/eurofxref-daily.xml");

#[tokio::test]
async fn the_ecb_reference_file_quotes_its_pairs_and_goes_stale() {
    let fresh = Options {
        configure: |args| {
            args.fx_rates_url = Some(SAMPLE.into());
            args.fx_max_age_s = 31_536_000;
            args.fx_spread_bps = 0;
        },
        ..Options::default()
    };
    let backend = &backends()[0];
    let app = spawn_app_with(backend, fresh).await;
    let session = register_and_login(&app, "ecb@example.com").await;
    let (status, body) = customer::get(&app, &session, "/v1/fx/rates").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["base"], "EUR");
    assert_eq!(body["source"], format!("ecb:{SAMPLE}"));
    assert_eq!(body["as_of"], "2026-11-30T00:00:00Z");
    let codes: Vec<&str> =
        body["rates"].as_array().unwrap().iter().map(|r| r["currency"].as_str().unwrap()).collect();
    assert_eq!(codes, ["GBP", "JPY", "USD"], "only the supported currencies the file has");
    let usd = customer::open_wallet(&app, &session, "USD").await;
    let _eur = customer::open_wallet(&app, &session, "EUR").await;
    let _kes = customer::open_wallet(&app, &session, "KES").await;
    // 100.00 EUR at 1.0612 USD each, no spread: 94.23 EUR for 100.00 USD (94.2329…).
    let offered =
        quote(&app, &session, json!({"from_wallet_id": usd, "to_currency": "EUR", "sell_amount": 10_000}))
            .await;
    assert_eq!(offered["buy_amount"], 9_423);
    assert_eq!(offered["rate_as_of"], "2026-11-30T00:00:00Z");
    let (status, problem) = customer::post(
        &app,
        &session,
        "/v1/fx/quotes",
        &json!({"from_wallet_id": usd, "to_currency": "KES", "sell_amount": 10_000}),
    )
    .await;
    assert_problem(status, &problem, 422, "fx_pair_not_quoted");
    app.stop().await;

    // The same file under a limit of a day is too old to quote from.
    let stale = Options {
        configure: |args| {
            args.fx_rates_url = Some(SAMPLE.into());
            args.fx_max_age_s = 86_400;
        },
        ..Options::default()
    };
    let app = spawn_app_with(backend, stale).await;
    let session = register_and_login(&app, "stale@example.com").await;
    let (status, problem) = customer::get(&app, &session, "/v1/fx/rates").await;
    assert_problem(status, &problem, 503, "fx_rates_stale");
    app.stop().await;

    // A file that is not there: no rates at all, and nothing to quote from.
    let missing = Options {
        configure: |args| args.fx_rates_url = Some("/nonexistent/eurofxref-daily.xml".into()),
        ..Options::default()
    };
    let app = spawn_app_with(backend, missing).await;
    let session = register_and_login(&app, "missing@example.com").await;
    let usd = customer::open_wallet(&app, &session, "USD").await;
    let _eur = customer::open_wallet(&app, &session, "EUR").await;
    let (status, problem) = customer::post(
        &app,
        &session,
        "/v1/fx/quotes",
        &json!({"from_wallet_id": usd, "to_currency": "EUR", "sell_amount": 10_000}),
    )
    .await;
    assert_problem(status, &problem, 503, "fx_rates_unavailable");
    app.stop().await;
}

#[tokio::test]
async fn quotes_never_executed_are_forgotten_and_conversions_stay() {
    for backend in backends() {
        let app = spawn_app_with(&backend, options()).await;
        let session = register_and_login(&app, "forget@example.com").await;
        let usd = customer::open_wallet(&app, &session, "USD").await;
        let _eur = customer::open_wallet(&app, &session, "EUR").await;
        customer::top_up(&app, &session, &usd, 10_000).await;
        let body = json!({"from_wallet_id": usd, "to_currency": "EUR", "sell_amount": 1_000});
        let executed = quote(&app, &session, body.clone()).await;
        let executed = executed["id"].as_str().unwrap().to_owned();
        execute(&app, &session, &executed).await;
        let idle = quote(&app, &session, body).await;
        let idle = idle["id"].as_str().unwrap().to_owned();
        // Both expired long ago: the maintenance worker's next pass forgets the one never
        // executed.
        common::Raw::new(&app).run("UPDATE fx_quotes SET expires_at = 0").await;
        let mut forgotten = false;
        for _ in 0..500 {
            let (status, _) = customer::get(&app, &session, &format!("/v1/fx/quotes/{idle}")).await;
            if status == 404 {
                forgotten = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(forgotten, "the idle quote was purged");
        let (status, kept) = customer::get(&app, &session, &format!("/v1/fx/quotes/{executed}")).await;
        assert_eq!((status, kept["status"].as_str()), (200, Some("executed")), "{kept}");
        let (_, page) =
            customer::get(&app, &session, &format!("/v1/wallets/{usd}/operations?type=conversion")).await;
        assert_eq!(page["data"][0]["conversion"]["quote_id"], executed.as_str());
        app.stop().await;
    }
}
