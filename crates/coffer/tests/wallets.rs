//! Black-box tests of the wallet product over real HTTP: wallets, P2P transfers, card
//! top-ups and withdrawals through the mock provider, idempotency keys, history, and
//! every customer's objects hidden from every other customer — on SQLite and, when
//! configured, PostgreSQL.

mod common;

use std::{collections::HashSet, sync::Arc};

use common::customer::{open_wallet, top_up};
use common::{Session, TestApp, backends, register_and_login, spawn_app};
use serde_json::{Value, json};

/// POSTs `body` as the session's customer with an Idempotency-Key; returns status,
/// replay header and body.
async fn post(app: &TestApp, session: &Session, path: &str, key: &str, body: &Value) -> (u16, bool, Value) {
    let response = app
        .client
        .post(app.url(path))
        .bearer_auth(&session.access_token)
        .header("idempotency-key", key)
        .json(body)
        .send()
        .await
        .unwrap();
    let replayed = response.headers().get("idempotent-replayed").is_some_and(|v| v == "true");
    let (status, body) = common::read(response).await;
    (status, replayed, body)
}

async fn get(app: &TestApp, session: &Session, path: &str) -> (u16, Value) {
    let response = app.client.get(app.url(path)).bearer_auth(&session.access_token).send().await.unwrap();
    common::read(response).await
}

fn key() -> String {
    uuid::Uuid::now_v7().to_string()
}

async fn posted(app: &TestApp, session: &Session, wallet: &str) -> i64 {
    let (status, body) = get(app, session, &format!("/v1/wallets/{wallet}")).await;
    assert_eq!(status, 200, "{body}");
    body["balance"]["posted"].as_i64().unwrap()
}

#[tokio::test]
async fn walkthrough_register_wallet_top_up_transfer_history() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let alice = register_and_login(&app, "alice@example.com").await;
        let bob = register_and_login(&app, "bob@example.com").await;
        let alice_usd = open_wallet(&app, &alice, "USD").await;
        let bob_usd = open_wallet(&app, &bob, "USD").await;

        top_up(&app, &alice, &alice_usd, 10_000).await;
        let (status, _, sent) = post(
            &app,
            &alice,
            "/v1/transfers",
            &key(),
            &json!({"from_wallet_id": alice_usd, "to_wallet_id": bob_usd, "amount": 2_500, "description": "dinner"}),
        )
        .await;
        assert_eq!(status, 201, "{sent}");
        assert_eq!(
            (sent["status"].as_str(), sent["amount"].as_u64(), sent["currency"].as_str()),
            (Some("posted"), Some(2_500), Some("USD"))
        );
        assert_eq!(sent["to_wallet_id"], bob_usd);
        let (status, _, by_email) = post(
            &app,
            &alice,
            "/v1/transfers",
            &key(),
            &json!({"from_wallet_id": alice_usd, "to_email": "bob@example.com", "amount": 500}),
        )
        .await;
        assert_eq!(status, 201, "{by_email}");
        assert_eq!(by_email["to_wallet_id"], bob_usd, "the email finds Bob's default USD wallet");

        assert_eq!(posted(&app, &alice, &alice_usd).await, 7_000);
        assert_eq!(posted(&app, &bob, &bob_usd).await, 3_000);
        let (status, transfer) =
            get(&app, &bob, &format!("/v1/transfers/{}", sent["id"].as_str().unwrap())).await;
        assert_eq!(
            (status, transfer["description"].as_str()),
            (200, Some("dinner")),
            "the recipient sees it too"
        );

        let (status, history) = get(&app, &alice, &format!("/v1/wallets/{alice_usd}/operations")).await;
        assert_eq!(status, 200, "{history}");
        let rows = history["data"].as_array().unwrap();
        let kinds: Vec<&str> = rows.iter().map(|row| row["type"].as_str().unwrap()).collect();
        assert_eq!(kinds, ["transfer_out", "transfer_out", "top_up"], "newest first");
        assert_eq!(rows[0]["amount"], -500);
        assert_eq!(rows[0]["balance_after"], 7_000);
        assert_eq!(rows[1]["description"], "dinner");
        assert_eq!(rows[1]["counterparty"]["wallet_id"], bob_usd);
        assert_eq!(rows[2]["counterparty"]["type"], "card_settlement");
        let (_, only_in) = get(&app, &bob, "/v1/operations?type=transfer_in").await;
        assert_eq!(only_in["data"].as_array().unwrap().len(), 2);
        let (_, big) = get(&app, &alice, "/v1/operations?amount_min=1000").await;
        assert_eq!(big["data"].as_array().unwrap().len(), 2);
        let (_, paged) = get(&app, &alice, "/v1/operations?limit=2").await;
        assert_eq!(paged["has_more"], true);
        let cursor = paged["next_cursor"].as_str().unwrap();
        let (_, rest) = get(&app, &alice, &format!("/v1/operations?limit=2&cursor={cursor}")).await;
        assert_eq!(rest["data"][0]["type"], "top_up");
        assert_eq!(rest["has_more"], false);

        let (status, list) = get(&app, &alice, "/v1/wallets").await;
        assert_eq!((status, list["data"].as_array().unwrap().len()), (200, 1));
        app.stop().await;
    }
}

#[tokio::test]
async fn refusals_have_clear_codes_and_move_nothing() {
    let app = spawn_app(&common::Backend::Sqlite).await;
    let alice = register_and_login(&app, "alice@example.com").await;
    let bob = register_and_login(&app, "bob@example.com").await;
    let usd = open_wallet(&app, &alice, "USD").await;
    let eur = open_wallet(&app, &alice, "EUR").await;
    let bob_usd = open_wallet(&app, &bob, "USD").await;
    top_up(&app, &alice, &usd, 1_000).await;

    let transfer = |to: Value, amount: u64| {
        let mut body = json!({"from_wallet_id": usd, "amount": amount});
        body.as_object_mut().unwrap().extend(to.as_object().unwrap().clone());
        body
    };
    let cases = [
        (transfer(json!({"to_wallet_id": bob_usd}), 1_001), 422, "insufficient_funds"),
        (transfer(json!({"to_wallet_id": usd}), 1), 422, "same_wallet"),
        (transfer(json!({"to_wallet_id": eur}), 1), 422, "currency_mismatch"),
        (transfer(json!({"to_wallet_id": uuid::Uuid::now_v7()}), 1), 404, "wallet_not_found"),
        (transfer(json!({"to_email": "nobody@example.com"}), 1), 404, "recipient_not_found"),
        (transfer(json!({"to_wallet_id": bob_usd}), 0), 422, "validation_failed"),
        (
            transfer(json!({"to_wallet_id": bob_usd, "to_email": "bob@example.com"}), 1),
            422,
            "validation_failed",
        ),
        (transfer(json!({"to_wallet_id": bob_usd, "status": "posted"}), 1), 422, "validation_failed"),
    ];
    for (body, status, code) in cases {
        let (got, _, problem) = post(&app, &alice, "/v1/transfers", &key(), &body).await;
        common::assert_problem(got, &problem, status, code);
    }
    let (status, _, problem) = post(&app, &alice, "/v1/wallets", &key(), &json!({"currency": "XYZ"})).await;
    common::assert_problem(status, &problem, 422, "currency_not_supported");
    let (status, _, problem) =
        post(&app, &alice, "/v1/wallets", &key(), &json!({"currency": "USD", "credit_limit": 5})).await;
    common::assert_problem(status, &problem, 422, "validation_failed");
    let (status, _, problem) =
        post(&app, &alice, "/v1/wallets", &key(), &json!({"currency": "USD", "balance": 1000000})).await;
    common::assert_problem(status, &problem, 422, "validation_failed");

    // A money-moving POST without a key.
    let response = app
        .client
        .post(app.url("/v1/transfers"))
        .bearer_auth(&alice.access_token)
        .json(&transfer(json!({"to_wallet_id": bob_usd}), 1))
        .send()
        .await
        .unwrap();
    let (status, problem) = common::read(response).await;
    common::assert_problem(status, &problem, 400, "idempotency_key_required");

    assert_eq!(posted(&app, &alice, &usd).await, 1_000);
    assert_eq!(posted(&app, &bob, &bob_usd).await, 0);
    app.stop().await;
}

#[tokio::test]
async fn idempotency_keys_replay_refuse_reuse_and_remember_failures() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let alice = register_and_login(&app, "alice@example.com").await;
        let bob = register_and_login(&app, "bob@example.com").await;
        let usd = open_wallet(&app, &alice, "USD").await;
        let bob_usd = open_wallet(&app, &bob, "USD").await;
        top_up(&app, &alice, &usd, 1_000).await;

        let body = json!({"from_wallet_id": usd, "to_wallet_id": bob_usd, "amount": 300});
        let k = key();
        let (first_status, first_replayed, first) = post(&app, &alice, "/v1/transfers", &k, &body).await;
        let (again_status, again_replayed, again) = post(&app, &alice, "/v1/transfers", &k, &body).await;
        assert_eq!((first_status, first_replayed), (201, false));
        assert_eq!((again_status, again_replayed), (201, true));
        assert_eq!(first, again);
        assert_eq!(posted(&app, &bob, &bob_usd).await, 300, "moved once");

        let changed = json!({"from_wallet_id": usd, "to_wallet_id": bob_usd, "amount": 301});
        let (status, _, problem) = post(&app, &alice, "/v1/transfers", &k, &changed).await;
        common::assert_problem(status, &problem, 409, "idempotency_key_reused");
        // The same key is someone else's own key for Bob.
        let (status, _, _) = post(
            &app,
            &bob,
            "/v1/transfers",
            &k,
            &json!({"from_wallet_id": bob_usd, "to_wallet_id": usd, "amount": 1}),
        )
        .await;
        assert_eq!(status, 201, "keys are per customer");

        // A refusal is remembered: funding the wallet later does not make the retry succeed.
        let broke = key();
        let too_much = json!({"from_wallet_id": usd, "to_wallet_id": bob_usd, "amount": 5_000});
        let (status, _, problem) = post(&app, &alice, "/v1/transfers", &broke, &too_much).await;
        common::assert_problem(status, &problem, 422, "insufficient_funds");
        top_up(&app, &alice, &usd, 10_000).await;
        let (status, replayed, problem) = post(&app, &alice, "/v1/transfers", &broke, &too_much).await;
        assert!(replayed);
        common::assert_problem(status, &problem, 422, "insufficient_funds");
        app.stop().await;
    }
}

/// The same transfer sent twenty times at once: it moves money once; every answer is
/// the transfer or "still in flight".
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_duplicates_move_money_once() {
    for backend in backends() {
        let app = Arc::new(spawn_app(&backend).await);
        let alice = Arc::new(register_and_login(&app, "alice@example.com").await);
        let bob = register_and_login(&app, "bob@example.com").await;
        let usd = open_wallet(&app, &alice, "USD").await;
        let bob_usd = open_wallet(&app, &bob, "USD").await;
        top_up(&app, &alice, &usd, 1_000).await;
        let k = key();
        let body = json!({"from_wallet_id": usd, "to_wallet_id": bob_usd, "amount": 100});
        let tasks: Vec<_> = (0..20)
            .map(|_| {
                let (app, alice, k, body) = (app.clone(), alice.clone(), k.clone(), body.clone());
                tokio::spawn(async move { post(&app, &alice, "/v1/transfers", &k, &body).await })
            })
            .collect();
        for task in tasks {
            let (status, _, body) = task.await.unwrap();
            assert!(
                status == 201 || (status == 409 && body["code"] == "idempotency_key_in_use"),
                "{status} {body}"
            );
        }
        assert_eq!(posted(&app, &bob, &bob_usd).await, 100);
        Arc::into_inner(app).unwrap().stop().await;
    }
}

/// Fifty identical top-ups at once: one charge, one credit.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_identical_top_ups_credit_once() {
    for backend in backends() {
        let app = Arc::new(spawn_app(&backend).await);
        let alice = Arc::new(register_and_login(&app, "alice@example.com").await);
        let usd = open_wallet(&app, &alice, "USD").await;
        let k = key();
        let path = format!("/v1/wallets/{usd}/top-ups");
        let tasks: Vec<_> = (0..50)
            .map(|_| {
                let (app, alice, k, path) = (app.clone(), alice.clone(), k.clone(), path.clone());
                tokio::spawn(async move {
                    post(&app, &alice, &path, &k, &json!({"amount": 700, "payment_method": "tok_visa"})).await
                })
            })
            .collect();
        for task in tasks {
            let (status, _, body) = task.await.unwrap();
            assert!(
                status == 201 || (status == 409 && body["code"] == "idempotency_key_in_use"),
                "{status} {body}"
            );
        }
        assert_eq!(posted(&app, &alice, &usd).await, 700);
        Arc::into_inner(app).unwrap().stop().await;
    }
}

#[tokio::test]
async fn top_ups_and_withdrawals_in_every_outcome() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let alice = register_and_login(&app, "alice@example.com").await;
        let usd = open_wallet(&app, &alice, "USD").await;
        let top_ups = format!("/v1/wallets/{usd}/top-ups");
        let (status, _, declined) = post(
            &app,
            &alice,
            &top_ups,
            &key(),
            &json!({"amount": 100, "payment_method": "tok_chargeDeclined"}),
        )
        .await;
        assert_eq!(
            (status, declined["status"].as_str(), declined["failure_code"].as_str()),
            (201, Some("failed"), Some("card_declined"))
        );

        let (status, _, pending) =
            post(&app, &alice, &top_ups, &key(), &json!({"amount": 900, "payment_method": "tok_timeout"}))
                .await;
        assert_eq!((status, pending["status"].as_str()), (202, Some("pending")), "{pending}");
        // The recovery worker (every 200 ms, after 1 s in tests) finds the charge.
        let path = format!("/v1/top-ups/{}", pending["id"].as_str().unwrap());
        let mut finished = Value::Null;
        for _ in 0..100 {
            let (_, body) = get(&app, &alice, &path).await;
            if body["status"] != "pending" {
                finished = body;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert_eq!(finished["status"], "succeeded", "recovery finished the top-up");
        assert_eq!(posted(&app, &alice, &usd).await, 900);

        let withdrawals = format!("/v1/wallets/{usd}/withdrawals");
        let (status, _, paid) =
            post(&app, &alice, &withdrawals, &key(), &json!({"amount": 400, "destination": "ba_checking"}))
                .await;
        assert_eq!((status, paid["status"].as_str()), (201, Some("succeeded")), "{paid}");
        let (status, _, refused) =
            post(&app, &alice, &withdrawals, &key(), &json!({"amount": 100, "destination": "ba_fail"})).await;
        assert_eq!((status, refused["status"].as_str()), (201, Some("failed")));
        let (status, _, problem) = post(
            &app,
            &alice,
            &withdrawals,
            &key(),
            &json!({"amount": 10_000, "destination": "ba_checking"}),
        )
        .await;
        common::assert_problem(status, &problem, 422, "insufficient_funds");
        assert_eq!(posted(&app, &alice, &usd).await, 500);
        let (status, wallet) = get(&app, &alice, &format!("/v1/wallets/{usd}")).await;
        assert_eq!((status, wallet["balance"]["pending"].as_i64()), (200, Some(0)), "no hold left behind");
        let (_, history) = get(&app, &alice, "/v1/operations?type=withdrawal").await;
        let statuses: Vec<&str> =
            history["data"].as_array().unwrap().iter().map(|r| r["status"].as_str().unwrap()).collect();
        assert_eq!(statuses, ["voided", "posted"]);
        app.stop().await;
    }
}

/// Every object of one customer, probed by another: 404 every time, nothing changes.
#[tokio::test]
async fn customers_never_see_each_others_objects() {
    let app = spawn_app(&common::Backend::Sqlite).await;
    let alice = register_and_login(&app, "alice@example.com").await;
    let mallory = register_and_login(&app, "mallory@example.com").await;
    let usd = open_wallet(&app, &alice, "USD").await;
    let mallory_usd = open_wallet(&app, &mallory, "USD").await;
    let (_, _, topped) = post(
        &app,
        &alice,
        &format!("/v1/wallets/{usd}/top-ups"),
        &key(),
        &json!({"amount": 1_000, "payment_method": "tok_visa"}),
    )
    .await;
    let (_, _, withdrawn) = post(
        &app,
        &alice,
        &format!("/v1/wallets/{usd}/withdrawals"),
        &key(),
        &json!({"amount": 10, "destination": "ba_x"}),
    )
    .await;
    // A transfer between Alice and Bob: Mallory is party to neither side.
    let bob = register_and_login(&app, "bob@example.com").await;
    open_wallet(&app, &bob, "USD").await;
    let (status, _, sent) = post(
        &app,
        &alice,
        "/v1/transfers",
        &key(),
        &json!({"from_wallet_id": usd, "to_email": "bob@example.com", "amount": 1}),
    )
    .await;
    assert_eq!(status, 201, "{sent}");
    let paths = [
        format!("/v1/transfers/{}", sent["id"].as_str().unwrap()),
        format!("/v1/wallets/{usd}"),
        format!("/v1/wallets/{usd}/operations"),
        format!("/v1/top-ups/{}", topped["id"].as_str().unwrap()),
        format!("/v1/withdrawals/{}", withdrawn["id"].as_str().unwrap()),
    ];
    for path in &paths {
        let (status, body) = get(&app, &mallory, path).await;
        assert_eq!(status, 404, "{path}: {body}");
    }
    let steal = json!({"from_wallet_id": usd, "to_wallet_id": mallory_usd, "amount": 500});
    let (status, _, body) = post(&app, &mallory, "/v1/transfers", &key(), &steal).await;
    common::assert_problem(status, &body, 404, "wallet_not_found");
    let (status, _, body) = post(
        &app,
        &mallory,
        &format!("/v1/wallets/{usd}/withdrawals"),
        &key(),
        &json!({"amount": 5, "destination": "ba_x"}),
    )
    .await;
    common::assert_problem(status, &body, 404, "wallet_not_found");
    let (_, mine) = get(&app, &mallory, "/v1/operations").await;
    assert_eq!(mine["data"].as_array().unwrap().len(), 0);
    assert_eq!(posted(&app, &alice, &usd).await, 989);
    app.stop().await;
}

/// Many customers paying each other at once: money is conserved, no wallet goes below
/// zero, and every acknowledged transfer is in the history exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_customers_transferring_keep_the_books_straight() {
    for backend in backends() {
        let app = Arc::new(spawn_app(&backend).await);
        const CUSTOMERS: usize = 6;
        const TRANSFERS_EACH: usize = 15;
        let mut people = Vec::new();
        for index in 0..CUSTOMERS {
            let session = register_and_login(&app, &format!("c{index}@example.com")).await;
            let wallet = open_wallet(&app, &session, "USD").await;
            top_up(&app, &session, &wallet, 1_000).await;
            people.push((Arc::new(session), wallet));
        }
        let people = Arc::new(people);
        let tasks: Vec<_> = (0..CUSTOMERS)
            .map(|me| {
                let (app, people) = (app.clone(), people.clone());
                tokio::spawn(async move {
                    let mut acknowledged = Vec::new();
                    for round in 0..TRANSFERS_EACH {
                        let to = (me + 1 + round % (CUSTOMERS - 1)) % CUSTOMERS;
                        let body = json!({"from_wallet_id": people[me].1, "to_wallet_id": people[to].1, "amount": 90 + round});
                        let (status, _, response) = post(&app, &people[me].0, "/v1/transfers", &key(), &body).await;
                        match status {
                            201 => acknowledged.push(response["id"].as_str().unwrap().to_owned()),
                            422 => assert_eq!(response["code"], "insufficient_funds"),
                            other => panic!("unexpected {other}: {response}"),
                        }
                    }
                    acknowledged
                })
            })
            .collect();
        let mut acknowledged = HashSet::new();
        for task in tasks {
            for id in task.await.unwrap() {
                assert!(acknowledged.insert(id), "an id was acknowledged twice");
            }
        }
        let mut total = 0;
        let mut seen = HashSet::new();
        for (session, wallet) in people.iter() {
            let balance = posted(&app, session, wallet).await;
            assert!(balance >= 0, "a wallet went negative");
            total += balance;
            let mut cursor: Option<String> = None;
            loop {
                let mut path = format!("/v1/wallets/{wallet}/operations?type=transfer_out&limit=100");
                if let Some(cursor) = &cursor {
                    path.push_str(&format!("&cursor={cursor}"));
                }
                let (_, page) = get(&app, session, &path).await;
                for row in page["data"].as_array().unwrap() {
                    assert!(
                        seen.insert(row["id"].as_str().unwrap().to_owned()),
                        "a transfer is listed twice"
                    );
                }
                match page["next_cursor"].as_str() {
                    Some(next) => cursor = Some(next.to_owned()),
                    None => break,
                }
            }
        }
        assert_eq!(total, (CUSTOMERS * 1_000) as i64, "money was created or destroyed");
        assert_eq!(seen, acknowledged, "history and acknowledgements differ");
        Arc::into_inner(app).unwrap().stop().await;
    }
}

/// Past the per-customer limit, money-moving requests get 429 with Retry-After, and
/// other customers are not affected.
#[tokio::test]
async fn money_moving_requests_are_rate_limited_per_customer() {
    let options = common::Options { money_requests_per_minute: 3, ..Default::default() };
    let app = common::spawn_app_with(&common::Backend::Sqlite, options).await;
    let alice = register_and_login(&app, "alice@example.com").await;
    let bob = register_and_login(&app, "bob@example.com").await;
    let usd = open_wallet(&app, &alice, "USD").await; // 1 of Alice's 3
    top_up(&app, &alice, &usd, 100).await; // 2
    let bob_usd = open_wallet(&app, &bob, "USD").await;
    let body = json!({"from_wallet_id": usd, "to_wallet_id": bob_usd, "amount": 1});
    let (status, _, _) = post(&app, &alice, "/v1/transfers", &key(), &body).await; // 3
    assert_eq!(status, 201);
    let response = app
        .client
        .post(app.url("/v1/transfers"))
        .bearer_auth(&alice.access_token)
        .header("idempotency-key", key())
        .json(&body)
        .send()
        .await
        .unwrap();
    let retry_after: u64 = response.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry_after));
    let (status, problem) = common::read(response).await;
    common::assert_problem(status, &problem, 429, "too_many_requests");
    assert_eq!(posted(&app, &bob, &bob_usd).await, 1, "the refused transfer moved nothing");
    top_up(&app, &bob, &bob_usd, 100).await; // Bob has his own allowance.
    app.stop().await;
}

/// A credit-card wallet spends below zero down to its limit, and no further.
#[tokio::test]
async fn credit_card_wallet_goes_negative_to_its_limit() {
    let app = spawn_app(&common::Backend::Sqlite).await;
    let alice = register_and_login(&app, "alice@example.com").await;
    let bob = register_and_login(&app, "bob@example.com").await;
    let (status, _, card) = post(
        &app,
        &alice,
        "/v1/wallets",
        &key(),
        &json!({"currency": "USD", "type": "credit_card", "credit_limit": 5_000, "name": "Card"}),
    )
    .await;
    assert_eq!(status, 201, "{card}");
    assert_eq!(card["balance"], json!({"posted": 0, "pending": 0, "available": 5_000}));
    let card = card["id"].as_str().unwrap().to_owned();
    let bob_usd = open_wallet(&app, &bob, "USD").await;
    let pay = |amount: u64| json!({"from_wallet_id": card, "to_wallet_id": bob_usd, "amount": amount});
    let (status, _, _) = post(&app, &alice, "/v1/transfers", &key(), &pay(4_000)).await;
    assert_eq!(status, 201);
    let (_, view) = get(&app, &alice, &format!("/v1/wallets/{card}")).await;
    assert_eq!(view["balance"], json!({"posted": -4_000, "pending": 0, "available": 1_000}));
    let (status, _, problem) = post(&app, &alice, "/v1/transfers", &key(), &pay(1_001)).await;
    common::assert_problem(status, &problem, 422, "insufficient_funds");
    let (_, history) = get(&app, &alice, &format!("/v1/wallets/{card}/operations")).await;
    let kinds: Vec<&str> =
        history["data"].as_array().unwrap().iter().map(|r| r["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["transfer_out", "credit_line"]);
    assert_eq!(history["data"][0]["balance_after"], -4_000);
    app.stop().await;
}

/// An admin reverses a transfer once; customers may not; the reversal is a new transfer
/// in both histories.
#[tokio::test]
async fn admins_reverse_a_transfer_once() {
    let app = spawn_app(&common::Backend::Sqlite).await;
    let alice = register_and_login(&app, "alice@example.com").await;
    let bob = register_and_login(&app, "bob@example.com").await;
    let usd = open_wallet(&app, &alice, "USD").await;
    let bob_usd = open_wallet(&app, &bob, "USD").await;
    top_up(&app, &alice, &usd, 1_000).await;
    let (_, _, sent) = post(
        &app,
        &alice,
        "/v1/transfers",
        &key(),
        &json!({"from_wallet_id": usd, "to_wallet_id": bob_usd, "amount": 400}),
    )
    .await;
    let path = format!("/v1/transfers/{}/reversals", sent["id"].as_str().unwrap());
    let (status, _, problem) = post(&app, &alice, &path, &key(), &json!({})).await;
    common::assert_problem(status, &problem, 403, "forbidden");

    let reverse = |key: String| {
        app.client.post(app.url(&path)).bearer_auth(&app.admin_key).header("idempotency-key", key).send()
    };
    let first_key = key();
    let (status, reversal) = common::read(reverse(first_key.clone()).await.unwrap()).await;
    assert_eq!(status, 201, "{reversal}");
    // The same key replays the answer the reversal's batch remembered.
    let replayed = reverse(first_key).await.unwrap();
    assert_eq!(replayed.headers().get("idempotent-replayed").map(|v| v.to_str().unwrap()), Some("true"));
    let (status, replay) = common::read(replayed).await;
    assert_eq!((status, &replay), (201, &reversal));
    assert_eq!(
        (reversal["from_wallet_id"].as_str(), reversal["amount"].as_u64()),
        (Some(bob_usd.as_str()), Some(400))
    );
    // A second reversal, even with another key, finds the first: money moves back once.
    let (status, again) = common::read(reverse(key()).await.unwrap()).await;
    assert_eq!((status, &again["id"]), (201, &reversal["id"]));
    assert_eq!((posted(&app, &alice, &usd).await, posted(&app, &bob, &bob_usd).await), (1_000, 0));
    let (_, history) = get(&app, &bob, "/v1/operations?type=reversal").await;
    assert_eq!(history["data"][0]["amount"], -400);
    let missing = format!("/v1/transfers/{}/reversals", uuid::Uuid::now_v7());
    let missing_key = key();
    let reverse_missing = || {
        app.client
            .post(app.url(&missing))
            .bearer_auth(&app.admin_key)
            .header("idempotency-key", &missing_key)
            .send()
    };
    let (status, problem) = common::read(reverse_missing().await.unwrap()).await;
    common::assert_problem(status, &problem, 404, "transfer_not_found");
    // A refusal is remembered under its key too.
    let response = reverse_missing().await.unwrap();
    assert_eq!(response.headers().get("idempotent-replayed").map(|v| v.to_str().unwrap()), Some("true"));
    let (status, problem) = common::read(response).await;
    common::assert_problem(status, &problem, 404, "transfer_not_found");
    app.stop().await;
}
