//! Black-box tests of balance monitors over real HTTP, on SQLite and (when configured)
//! PostgreSQL: who may set which monitor, the limits and checks, and that wallet
//! operations fire each condition once per crossing — as `monitor.triggered` events in
//! the outbox and `balance_alert` entries in the inbox — for the customer's monitors and,
//! without telling the customer, for an operator's.

mod common;

use std::collections::HashMap;

use common::customer::{get, open_wallet, post, send, top_up, transfer};
use common::{Session, TestApp, assert_problem, backends, register_and_login, spawn_app};
use reqwest::Method;
use serde_json::{Value, json};
use store::Store;

/// Every `monitor.triggered` event's data, oldest first.
async fn triggered(store: &Store) -> Vec<Value> {
    common::relayed(store).await;
    let mut found = Vec::new();
    let mut after = 0;
    loop {
        let page = store.events_after(after, 1_000).await.unwrap();
        let Some(last) = page.last() else { return found };
        after = last.seq;
        for event in page.iter().filter(|event| event.event_type == "coffer.monitor.triggered") {
            let envelope: Value = serde_json::from_str(&event.payload).unwrap();
            found.push(envelope["data"].clone());
        }
    }
}

/// How many times each monitor fired.
fn counts(triggered: &[Value]) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for data in triggered {
        *counts.entry(data["monitor_id"].as_str().unwrap().to_owned()).or_default() += 1;
    }
    counts
}

async fn set(app: &TestApp, session: &Session, wallet: &str, condition: &str, amount: i64) -> String {
    let path = format!("/v1/wallets/{wallet}/monitors");
    let (status, body) = post(app, session, &path, &json!({"condition": condition, "amount": amount})).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!((body["condition"].as_str(), body["amount"].as_i64()), (Some(condition), Some(amount)));
    body["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn monitors_fire_once_per_crossing_for_their_setter() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let store = app.store().await;
        let alice = register_and_login(&app, "alice@example.com").await;
        let bob = register_and_login(&app, "bob@example.com").await;
        let (alices, bobs) = (open_wallet(&app, &alice, "USD").await, open_wallet(&app, &bob, "USD").await);

        let below = set(&app, &alice, &alices, "available_below", 5_000).await;
        let above = set(&app, &alice, &alices, "available_above", 20_000).await;
        let debit = set(&app, &alice, &alices, "debit_above", 3_000).await;
        let operators = json!({"condition": "available_below", "amount": 1_000});
        let (status, body) = app.post(&format!("/v1/admin/wallets/{alices}/monitors"), &operators).await;
        assert_eq!(status, 201, "{body}");
        let operator = body["id"].as_str().unwrap().to_owned();

        // Each setter sees only their own.
        let (_, mine) = get(&app, &alice, &format!("/v1/wallets/{alices}/monitors")).await;
        let ids: Vec<&str> =
            mine["items"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap()).collect();
        assert_eq!(ids, [below.as_str(), above.as_str(), debit.as_str()], "oldest first: {mine}");
        let (_, theirs) = app.get(&format!("/v1/admin/wallets/{alices}/monitors")).await;
        assert_eq!(theirs["items"].as_array().unwrap().len(), 1, "{theirs}");

        top_up(&app, &alice, &alices, 10_000).await; // 0 → 10,000: nothing crossed
        transfer(&app, &alice, &alices, &bobs, 6_000).await; // → 4,000: below; a large debit
        transfer(&app, &alice, &alices, &bobs, 500).await; // → 3,500: still below, quiet
        top_up(&app, &alice, &alices, 20_000).await; // → 23,500: above
        transfer(&app, &alice, &alices, &bobs, 22_000).await; // → 1,500: below again; a large debit
        transfer(&app, &alice, &alices, &bobs, 1_000).await; // → 500: the operator's

        let fired = triggered(&store).await;
        let expected: HashMap<String, usize> =
            [(below.clone(), 2), (above.clone(), 1), (debit.clone(), 2), (operator.clone(), 1)].into();
        assert_eq!(counts(&fired), expected, "{fired:#?}");
        for data in &fired {
            let customer = data["customer_id"].as_str();
            let by_operator = data["monitor_id"] == operator.as_str();
            assert_eq!(customer, (!by_operator).then_some(alice.customer_id.as_str()), "{data}");
            assert_eq!(
                (data["wallet_id"].as_str(), data["currency"].as_str()),
                (Some(alices.as_str()), Some("USD"))
            );
        }
        let values: Vec<(&str, i64)> = fired
            .iter()
            .map(|data| (data["condition"].as_str().unwrap(), data["value"].as_i64().unwrap()))
            .collect();
        for expected in [("available_below", 4_000), ("debit_above", 6_000), ("available_above", 23_500)] {
            assert!(values.contains(&expected), "{expected:?} in {values:?}");
        }
        assert!(values.contains(&("available_below", 500)), "the operator's, at 500: {values:?}");

        // The customer's crossings reach their inbox; the operator's does not.
        let (_, inbox) = get(&app, &alice, "/v1/notifications?limit=100").await;
        let alerts =
            inbox["data"].as_array().unwrap().iter().filter(|n| n["kind"] == "balance_alert").count();
        assert_eq!(alerts, 5, "{inbox}");

        // A removed monitor fires no more; removing it twice is 404.
        let path = format!("/v1/wallets/{alices}/monitors/{below}");
        assert_eq!(send(&app, &alice, Method::DELETE, &path, None).await.0, 204);
        let (status, body) = send(&app, &alice, Method::DELETE, &path, None).await;
        assert_problem(status, &body, 404, "monitor_not_found");
        top_up(&app, &alice, &alices, 10_000).await; // → 10,500
        transfer(&app, &alice, &alices, &bobs, 6_000).await; // → 4,500: would have crossed
        let after = counts(&triggered(&store).await);
        assert_eq!(after.get(&below), Some(&2), "no new crossing of the removed monitor");
        assert_eq!(after.get(&debit), Some(&3), "the others still fire");
        app.stop().await;
    }
}

#[tokio::test]
async fn monitors_are_checked_bounded_and_private() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let alice = register_and_login(&app, "alice@example.com").await;
        let mallory = register_and_login(&app, "mallory@example.com").await;
        let alices = open_wallet(&app, &alice, "USD").await;
        let path = format!("/v1/wallets/{alices}/monitors");

        for (body, pointer) in [
            (json!({"condition": "available_below", "amount": -1}), "/amount"),
            (json!({"condition": "available_below", "amount": 10_000_000_000_000_000_000_u64}), ""),
            (json!({"condition": "sideways", "amount": 1}), "/condition"),
            (json!({"condition": "debit_above", "amount": 1, "customer_id": alice.customer_id}), ""),
            (json!({"amount": 1}), ""),
        ] {
            let (status, problem) = post(&app, &alice, &path, &body).await;
            assert_eq!(status, 422, "{body} → {problem}");
            if !pointer.is_empty() {
                assert_eq!(problem["errors"][0]["field"], pointer, "{problem}");
            }
        }
        // Someone else's wallet, or one that does not exist, is "not found"; the operators'
        // routes are for admins.
        let (status, body) =
            post(&app, &mallory, &path, &json!({"condition": "debit_above", "amount": 1})).await;
        assert_problem(status, &body, 404, "wallet_not_found");
        let (status, body) = get(&app, &mallory, &path).await;
        assert_problem(status, &body, 404, "wallet_not_found");
        let nobody = format!("/v1/admin/wallets/{}/monitors", uuid::Uuid::now_v7());
        let (status, body) = app.post(&nobody, &json!({"condition": "debit_above", "amount": 1})).await;
        assert_problem(status, &body, 404, "wallet_not_found");
        let admins = format!("/v1/admin/wallets/{alices}/monitors");
        let (status, _) =
            post(&app, &alice, &admins, &json!({"condition": "debit_above", "amount": 1})).await;
        assert_eq!(status, 403);

        let mut ids = Vec::new();
        for amount in 0..store::MONITORS_PER_WALLET_MAX as i64 {
            ids.push(set(&app, &alice, &alices, "debit_above", amount).await);
        }
        let (status, body) =
            post(&app, &alice, &path, &json!({"condition": "debit_above", "amount": 99})).await;
        assert_problem(status, &body, 409, "too_many_monitors");
        // Operators have their own allowance on the same wallet.
        let (status, body) = app.post(&admins, &json!({"condition": "available_below", "amount": 0})).await;
        assert_eq!(status, 201, "{body}");
        // Mallory cannot remove Alice's monitor, nor an operator's through the customer route.
        let (status, _) = send(&app, &mallory, Method::DELETE, &format!("{path}/{}", ids[0]), None).await;
        assert_eq!(status, 404);
        let (status, body) =
            send(&app, &alice, Method::DELETE, &format!("{path}/{}", body["id"].as_str().unwrap()), None)
                .await;
        assert_problem(status, &body, 404, "monitor_not_found");
        assert_eq!(get(&app, &alice, &path).await.1["items"].as_array().unwrap().len(), ids.len());
        app.stop().await;
    }
}
