//! Idempotency under fire, beyond `wallets.rs` (twenty identical transfers, fifty
//! identical top-ups, sequential reuse with a changed body): fifty requests at once under
//! one key, half of them with a *different* body, for every kind of money-moving or
//! creating POST. Exactly one body wins; every success is the same object; every other
//! answer is "in use" or "reused"; the effect happens once; afterwards the winner replays
//! and the loser is refused. Retries after a `kill -9` are in `crash.rs`.

mod common;

use std::sync::Arc;

use common::{Session, TestApp, backends, register_and_login, spawn_app};
use serde_json::{Value, json};

const COPIES: usize = 50;

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

async fn wallet_view(app: &TestApp, session: &Session, wallet: &str) -> Value {
    let (status, view) = app
        .call(reqwest::Method::GET, &format!("/v1/wallets/{wallet}"), Some(&session.access_token), None)
        .await;
    assert_eq!(status, 200, "{view}");
    view
}

/// Fires `COPIES` requests under one key, alternating bodies `a` and `b`; returns the
/// winning body's index (0 for `a`, 1 for `b`) and the winning response.
async fn race(app: &Arc<TestApp>, session: &Arc<Session>, path: &str, a: Value, b: Value) -> (usize, Value) {
    let key = uuid::Uuid::now_v7().to_string();
    let bodies = Arc::new([a, b]);
    let tasks: Vec<_> = (0..COPIES)
        .map(|index| {
            let (app, session, key, path, bodies) =
                (app.clone(), session.clone(), key.clone(), path.to_owned(), bodies.clone());
            tokio::spawn(async move {
                let which = index % 2;
                (which, post(&app, &session, &path, &key, &bodies[which]).await)
            })
        })
        .collect();
    let mut winner: Option<(usize, Value)> = None;
    for task in tasks {
        let (which, (status, _, body)) = task.await.unwrap();
        match status {
            201 => match &winner {
                Some((won, first)) => {
                    assert_eq!(*won, which, "two different bodies both succeeded under one key");
                    assert_eq!(first, &body, "one key, two different answers");
                }
                None => winner = Some((which, body)),
            },
            409 => assert!(
                body["code"] == "idempotency_key_in_use" || body["code"] == "idempotency_key_reused",
                "{body}"
            ),
            other => panic!("{path}: {other} {body}"),
        }
    }
    let (won, response) = winner.expect("one of fifty requests succeeded");
    // Afterwards: the winner's body replays the same answer; the other body is refused.
    let (status, replayed, again) = post(app, session, path, &key, &bodies[won]).await;
    assert_eq!((status, replayed, &again), (201, true, &response));
    let (status, _, problem) = post(app, session, path, &key, &bodies[1 - won]).await;
    common::assert_problem(status, &problem, 409, "idempotency_key_reused");
    (won, response)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_racing_requests_with_two_bodies_under_one_key_take_effect_once() {
    for backend in backends() {
        let app = Arc::new(spawn_app(&backend).await);
        let alice = Arc::new(register_and_login(&app, "alice@example.com").await);
        let bob = register_and_login(&app, "bob@example.com").await;

        // Wallet creation: one wallet, of the winning currency.
        let (won, wallet) = race(
            &app,
            &alice,
            "/v1/wallets",
            json!({"currency": "USD"}),
            json!({"currency": "USD", "name": "Other"}),
        )
        .await;
        let usd = wallet["id"].as_str().unwrap().to_owned();
        assert_eq!(wallet["name"], if won == 0 { Value::Null } else { json!("Other") });
        let (_, list) = app.call(reqwest::Method::GET, "/v1/wallets", Some(&alice.access_token), None).await;
        assert_eq!(list["data"].as_array().unwrap().len(), 1, "one wallet: {list}");

        // Top-up: one credit, of the winning amount.
        let path = format!("/v1/wallets/{usd}/top-ups");
        let (won, _) = race(
            &app,
            &alice,
            &path,
            json!({"amount": 10_000, "payment_method": "tok_visa"}),
            json!({"amount": 20_000, "payment_method": "tok_visa"}),
        )
        .await;
        let funded = [10_000, 20_000][won];
        assert_eq!(wallet_view(&app, &alice, &usd).await["balance"]["posted"], funded);

        // P2P transfer: moved once, the winning amount.
        let (status, _, bob_wallet) =
            post(&app, &bob, "/v1/wallets", "bob-wallet", &json!({"currency": "USD"})).await;
        assert_eq!(status, 201);
        let bob_usd = bob_wallet["id"].as_str().unwrap().to_owned();
        let (won, _) = race(
            &app,
            &alice,
            "/v1/transfers",
            json!({"from_wallet_id": usd, "to_wallet_id": bob_usd, "amount": 300}),
            json!({"from_wallet_id": usd, "to_wallet_id": bob_usd, "amount": 700}),
        )
        .await;
        let sent = [300, 700][won];
        assert_eq!(wallet_view(&app, &bob, &bob_usd).await["balance"]["posted"], sent);

        // Withdrawal: paid out once.
        let path = format!("/v1/wallets/{usd}/withdrawals");
        let (won, withdrawal) = race(
            &app,
            &alice,
            &path,
            json!({"amount": 1_000, "destination": "ba_checking"}),
            json!({"amount": 2_000, "destination": "ba_checking"}),
        )
        .await;
        assert_eq!(withdrawal["status"], "succeeded", "{withdrawal}");
        let paid = [1_000, 2_000][won];
        let view = wallet_view(&app, &alice, &usd).await;
        assert_eq!(view["balance"]["posted"], funded - sent - paid);
        assert_eq!(view["balance"]["pending"], 0, "no hold left behind");
        Arc::into_inner(app).unwrap().stop().await;
    }
}
