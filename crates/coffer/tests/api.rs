//! Black-box tests of the ledger API over real HTTP, on SQLite and (when configured)
//! PostgreSQL: the README walk-through, every kind of bad input, idempotency, paging,
//! a hot account hammered concurrently, and graceful shutdown.

mod common;

use common::{Backend, assert_problem, backends, new_id, spawn_app};
use serde_json::{Value, json};

const USD: u32 = 840;

async fn create_accounts(app: &common::TestApp, accounts: &Value) -> Vec<String> {
    let (status, body) = app.post("/v1/ledger/accounts", accounts).await;
    assert_eq!(status, 200, "{body}");
    results(&body)
}

fn results(body: &Value) -> Vec<String> {
    body["results"].as_array().unwrap().iter().map(|r| r["result"].as_str().unwrap().to_owned()).collect()
}

async fn balance(app: &common::TestApp, id: &str) -> Value {
    let (status, body) = app.get(&format!("/v1/ledger/accounts/{id}")).await;
    assert_eq!(status, 200, "{body}");
    body
}

#[tokio::test]
async fn walkthrough_moves_money_and_reads_it_back() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let (alice, bob) = (new_id(), new_id());
        let created = create_accounts(
            &app,
            &json!([
                {"id": alice, "ledger": USD, "code": 1},
                {"id": bob, "ledger": USD, "code": 1, "flags": ["debits_must_not_exceed_credits", "history"]},
            ]),
        )
        .await;
        assert_eq!(created, ["ok", "ok"], "{backend:?}");

        let transfer = new_id();
        let (status, body) = app
            .post(
                "/v1/ledger/transfers",
                &json!([{"id": transfer, "debit_account_id": alice, "credit_account_id": bob, "amount": 1250, "ledger": USD, "code": 1}]),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["results"][0], json!({"index": 0, "id": transfer, "result": "ok"}));

        // Bob may not spend more than he holds.
        let (_, body) = app
            .post(
                "/v1/ledger/transfers",
                &json!([{"id": new_id(), "debit_account_id": bob, "credit_account_id": alice, "amount": 1251, "ledger": USD, "code": 1}]),
            )
            .await;
        assert_eq!(results(&body), ["exceeds_credits"]);

        let bob_view = balance(&app, &bob).await;
        assert_eq!(bob_view["credits_posted"], 1250);
        assert_eq!(bob_view["debits_posted"], 0);
        assert_eq!(bob_view["flags"], json!(["debits_must_not_exceed_credits", "history"]));
        assert_eq!(balance(&app, &alice).await["debits_posted"], 1250);

        let (status, stored) = app.get(&format!("/v1/ledger/transfers/{transfer}")).await;
        assert_eq!(status, 200);
        assert_eq!(stored["amount"], 1250);
        assert_eq!(stored["debit_account_id"], alice);
        assert!(stored["timestamp"].as_u64().unwrap() > 0);

        let (status, page) = app.get(&format!("/v1/ledger/accounts/{bob}/transfers")).await;
        assert_eq!(status, 200, "{page}");
        assert_eq!(page["data"].as_array().unwrap().len(), 1);
        assert_eq!(page["has_more"], false);
        assert_eq!(page["next_cursor"], Value::Null);

        let (status, history) = app.get(&format!("/v1/ledger/accounts/{bob}/balances")).await;
        assert_eq!(status, 200, "{history}");
        assert_eq!(history["data"][0]["credits_posted"], 1250);
        let (status, body) = app.get(&format!("/v1/ledger/accounts/{alice}/balances")).await;
        assert_problem(status, &body, 422, "validation_failed");
        app.stop().await;
    }
}

#[tokio::test]
async fn two_phase_transfer_posts_part_and_releases_the_rest() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let (source, wallet) = (new_id(), new_id());
        create_accounts(
            &app,
            &json!([
                {"id": source, "ledger": USD, "code": 1},
                {"id": wallet, "ledger": USD, "code": 1, "flags": ["debits_must_not_exceed_credits"]},
            ]),
        )
        .await;
        let fund = json!([{"id": new_id(), "debit_account_id": source, "credit_account_id": wallet, "amount": 1000, "ledger": USD, "code": 1}]);
        assert_eq!(results(&app.post("/v1/ledger/transfers", &fund).await.1), ["ok"]);

        let hold = new_id();
        let pending = json!([{"id": hold, "debit_account_id": wallet, "credit_account_id": source, "amount": 700, "ledger": USD, "code": 2, "flags": ["pending"], "timeout": 3600}]);
        assert_eq!(results(&app.post("/v1/ledger/transfers", &pending).await.1), ["ok"]);
        let view = balance(&app, &wallet).await;
        assert_eq!(
            (view["debits_pending"].as_u64(), view["credits_posted"].as_u64()),
            (Some(700), Some(1000))
        );

        // The hold blocks spending it twice.
        let spend = json!([{"id": new_id(), "debit_account_id": wallet, "credit_account_id": source, "amount": 301, "ledger": USD, "code": 1}]);
        assert_eq!(results(&app.post("/v1/ledger/transfers", &spend).await.1), ["exceeds_credits"]);

        let post =
            json!([{"id": new_id(), "pending_id": hold, "amount": 500, "flags": ["post_pending_transfer"]}]);
        assert_eq!(results(&app.post("/v1/ledger/transfers", &post).await.1), ["ok"]);
        let again = json!([{"id": new_id(), "pending_id": hold, "flags": ["void_pending_transfer"]}]);
        assert_eq!(
            results(&app.post("/v1/ledger/transfers", &again).await.1),
            ["pending_transfer_already_posted"]
        );
        let view = balance(&app, &wallet).await;
        assert_eq!((view["debits_pending"].as_u64(), view["debits_posted"].as_u64()), (Some(0), Some(500)));
        app.stop().await;
    }
}

#[tokio::test]
async fn linked_chain_is_all_or_nothing() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let (a, b) = (new_id(), new_id());
        create_accounts(
            &app,
            &json!([
                {"id": a, "ledger": USD, "code": 1, "flags": ["debits_must_not_exceed_credits"]},
                {"id": b, "ledger": USD, "code": 1},
            ]),
        )
        .await;
        let first = new_id();
        let chain = json!([
            {"id": new_id(), "debit_account_id": b, "credit_account_id": a, "amount": 10, "ledger": USD, "code": 1},
            {"id": first, "debit_account_id": a, "credit_account_id": b, "amount": 10, "ledger": USD, "code": 1, "flags": ["linked"]},
            {"id": new_id(), "debit_account_id": a, "credit_account_id": b, "amount": 1, "ledger": USD, "code": 1},
        ]);
        let (_, body) = app.post("/v1/ledger/transfers", &chain).await;
        assert_eq!(results(&body), ["ok", "linked_event_failed", "exceeds_credits"]);
        let (status, body) = app.get(&format!("/v1/ledger/transfers/{first}")).await;
        assert_problem(status, &body, 404, "transfer_not_found");
        assert_eq!(balance(&app, &a).await["credits_posted"], 10);
        assert_eq!(balance(&app, &a).await["debits_posted"], 0);
        app.stop().await;
    }
}

#[tokio::test]
async fn retries_are_idempotent_by_id() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let (a, b) = (new_id(), new_id());
        let accounts = json!([{"id": a, "ledger": USD, "code": 1}, {"id": b, "ledger": USD, "code": 1}]);
        assert_eq!(create_accounts(&app, &accounts).await, ["ok", "ok"]);
        assert_eq!(create_accounts(&app, &accounts).await, ["exists", "exists"]);
        let changed = json!([{"id": a, "ledger": USD, "code": 2}]);
        assert_eq!(create_accounts(&app, &changed).await, ["exists_with_different_code"]);

        let id = new_id();
        let transfer = json!([{"id": id, "debit_account_id": a, "credit_account_id": b, "amount": 5, "ledger": USD, "code": 1}]);
        assert_eq!(results(&app.post("/v1/ledger/transfers", &transfer).await.1), ["ok"]);
        assert_eq!(results(&app.post("/v1/ledger/transfers", &transfer).await.1), ["exists"]);
        let different = json!([{"id": id, "debit_account_id": a, "credit_account_id": b, "amount": 6, "ledger": USD, "code": 1}]);
        assert_eq!(
            results(&app.post("/v1/ledger/transfers", &different).await.1),
            ["exists_with_different_amount"]
        );
        assert_eq!(balance(&app, &b).await["credits_posted"], 5, "money moved once");
        app.stop().await;
    }
}

#[tokio::test]
async fn bad_input_gets_a_problem_and_changes_nothing() {
    let app = spawn_app(&Backend::Sqlite).await;
    let untouched = new_id();
    let url = app.url("/v1/ledger/accounts");
    let key = app.admin_key.clone();

    // Credentials are checked first.
    let response = app.client.post(&url).json(&json!([])).send().await.unwrap();
    assert_eq!(response.headers()["www-authenticate"], "Bearer");
    let (status, body) = common::read(response).await;
    assert_problem(status, &body, 401, "unauthorized");
    let response =
        app.client.post(&url).bearer_auth("wrong-key-wrong-key").json(&json!([])).send().await.unwrap();
    let (status, body) = common::read(response).await;
    assert_problem(status, &body, 401, "unauthorized");

    let raw = |body: &'static str, content_type: &'static str| {
        app.client.post(&url).bearer_auth(&key).header("content-type", content_type).body(body).send()
    };
    let (status, body) = common::read(raw("[{\"id\": ", "application/json").await.unwrap()).await;
    assert_problem(status, &body, 400, "malformed_json");
    let (status, body) = common::read(raw("[]", "text/plain").await.unwrap()).await;
    assert_problem(status, &body, 415, "unsupported_media_type");

    let cases = [
        (json!([{"id": untouched, "ledger": "usd", "code": 1}]), "/0/ledger"),
        (json!([{"id": untouched, "ledger": USD, "code": 70000}]), "/0/code"),
        (json!([{"id": untouched, "ledger": USD, "code": 1, "owner": "me"}]), "/0/owner"),
        (
            json!([{"id": untouched, "ledger": USD, "code": 1, "credits_posted": 1000000}]),
            "/0/credits_posted",
        ),
        (json!([{"id": untouched, "ledger": USD, "code": 1, "timestamp": 5}]), "/0/timestamp"),
        (json!([{"id": untouched, "ledger": USD, "code": 1, "flags": ["rich"]}]), "/0/flags/0"),
        (json!([{"id": "not-a-uuid", "ledger": USD, "code": 1}]), "/0/id"),
        (json!([{"ledger": USD, "code": 1}]), "/0"),
        (json!({"id": untouched}), ""),
        (json!([]), ""),
    ];
    for (request, field) in cases {
        let (status, body) = app.post("/v1/ledger/accounts", &request).await;
        assert_problem(status, &body, 422, "validation_failed");
        assert_eq!(body["errors"][0]["field"], field, "{request} → {body}");
    }
    let (status, body) =
        app.post("/v1/ledger/transfers", &json!([{"id": new_id(), "amount": 9223372036854775808u64}])).await;
    assert_problem(status, &body, 422, "validation_failed");
    assert_eq!(body["errors"][0]["field"], "/0/amount");

    // A batch one over the limit, and a body over the byte limit.
    let oversize: Vec<Value> = (0..8191).map(|_| json!({"id": new_id(), "ledger": USD, "code": 1})).collect();
    let (status, body) = app.post("/v1/ledger/accounts", &Value::Array(oversize)).await;
    assert_problem(status, &body, 422, "validation_failed");
    assert!(body["detail"].as_str().unwrap().contains("8190"), "{body}");
    let huge = format!("[{}]", "0,".repeat(5 * 1024 * 1024));
    let response = app
        .client
        .post(&url)
        .bearer_auth(&key)
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .unwrap();
    let (status, body) = common::read(response).await;
    assert_problem(status, &body, 413, "payload_too_large");

    // Paths, queries and routes.
    let (status, body) = app.get("/v1/ledger/accounts/not-a-uuid").await;
    assert_problem(status, &body, 400, "invalid_parameter");
    let (status, body) = app.get(&format!("/v1/ledger/accounts/{untouched}")).await;
    assert_problem(status, &body, 404, "account_not_found");
    let (status, body) = app.get(&format!("/v1/ledger/accounts/{untouched}/transfers?limit=101")).await;
    assert_problem(status, &body, 422, "validation_failed");
    let (status, body) = app.get(&format!("/v1/ledger/accounts/{untouched}/transfers?cursor=bogus")).await;
    assert_problem(status, &body, 400, "invalid_parameter");
    let (status, body) = app.get(&format!("/v1/ledger/accounts/{untouched}/transfers?colour=red")).await;
    assert_problem(status, &body, 400, "invalid_parameter");
    let (status, body) = app.get("/v1/nothing-here").await;
    assert_problem(status, &body, 404, "route_not_found");
    let response = app.client.delete(app.url("/v1/ledger/accounts")).bearer_auth(&key).send().await.unwrap();
    let (status, body) = common::read(response).await;
    assert_problem(status, &body, 405, "method_not_allowed");

    // None of it wrote anything.
    let (status, _) = app.get(&format!("/v1/ledger/accounts/{untouched}")).await;
    assert_eq!(status, 404);
    app.stop().await;
}

#[tokio::test]
async fn request_id_is_echoed_in_header_and_problem() {
    let app = spawn_app(&Backend::Sqlite).await;
    let response = app
        .client
        .get(app.url("/v1/ledger/accounts/x"))
        .header("x-request-id", "trace-me-42")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "trace-me-42");
    assert_eq!(response.headers()["content-type"], "application/problem+json");
    let (_, body) = common::read(response).await;
    assert_eq!(body["request_id"], "trace-me-42");
    app.stop().await;
}

#[tokio::test]
async fn account_history_pages_without_gaps_or_repeats() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let (a, b) = (new_id(), new_id());
        create_accounts(
            &app,
            &json!([{"id": a, "ledger": USD, "code": 1}, {"id": b, "ledger": USD, "code": 1}]),
        )
        .await;
        let transfers: Vec<Value> = (1..=25)
            .map(|amount| json!({"id": new_id(), "debit_account_id": a, "credit_account_id": b, "amount": amount, "ledger": USD, "code": 1}))
            .collect();
        let (_, body) = app.post("/v1/ledger/transfers", &Value::Array(transfers)).await;
        assert!(results(&body).iter().all(|r| r == "ok"));
        for order in ["desc", "asc"] {
            let mut seen = Vec::new();
            let mut cursor: Option<String> = None;
            loop {
                let mut path = format!("/v1/ledger/accounts/{b}/transfers?limit=10&order={order}");
                if let Some(cursor) = &cursor {
                    path.push_str(&format!("&cursor={cursor}"));
                }
                let (status, page) = app.get(&path).await;
                assert_eq!(status, 200, "{page}");
                seen.extend(page["data"].as_array().unwrap().iter().map(|t| t["amount"].as_u64().unwrap()));
                match page["next_cursor"].as_str() {
                    Some(next) => cursor = Some(next.to_owned()),
                    None => break,
                }
            }
            let mut expected: Vec<u64> = (1..=25).collect();
            if order == "desc" {
                expected.reverse();
            }
            assert_eq!(seen, expected, "{order}");
        }
        let (_, debits) = app.get(&format!("/v1/ledger/accounts/{b}/transfers?side=debits")).await;
        assert_eq!(debits["data"].as_array().unwrap().len(), 0);
        app.stop().await;
    }
}

/// Many clients move money into and out of one hot account at once, one transfer per
/// request. Money is conserved, the wallet never goes negative, every acknowledged
/// transfer is stored exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hot_account_under_concurrent_requests_keeps_the_books_straight() {
    for backend in backends() {
        let app = std::sync::Arc::new(spawn_app(&backend).await);
        let hot = new_id();
        let sources: Vec<String> = (0..8).map(|_| new_id()).collect();
        let mut accounts =
            vec![json!({"id": hot, "ledger": USD, "code": 1, "flags": ["debits_must_not_exceed_credits"]})];
        accounts.extend(sources.iter().map(|id| json!({"id": id, "ledger": USD, "code": 1})));
        create_accounts(&app, &Value::Array(accounts)).await;

        const CLIENTS: usize = 32;
        const REQUESTS: usize = 25;
        let mut tasks = Vec::new();
        for client in 0..CLIENTS {
            let app = app.clone();
            let (hot, source) = (hot.clone(), sources[client % sources.len()].clone());
            tasks.push(tokio::spawn(async move {
                let mut acknowledged = Vec::new();
                for request in 0..REQUESTS {
                    // Even requests pay in; odd ones try to take out more than may be there.
                    let (debit, credit, amount) =
                        if request % 2 == 0 { (&source, &hot, 10) } else { (&hot, &source, 15) };
                    let id = new_id();
                    let body = json!([{"id": id, "debit_account_id": debit, "credit_account_id": credit, "amount": amount, "ledger": USD, "code": 1}]);
                    let (status, response) = app.post("/v1/ledger/transfers", &body).await;
                    assert_eq!(status, 200, "{response}");
                    match response["results"][0]["result"].as_str().unwrap() {
                        "ok" => acknowledged.push((id, amount, debit == &hot)),
                        "exceeds_credits" => {}
                        other => panic!("unexpected result {other}"),
                    }
                }
                acknowledged
            }));
        }
        let mut acknowledged = Vec::new();
        for task in tasks {
            acknowledged.extend(task.await.unwrap());
        }
        let paid_in: u64 = acknowledged.iter().filter(|(_, _, out)| !out).map(|(_, amount, _)| amount).sum();
        let paid_out: u64 = acknowledged.iter().filter(|(_, _, out)| *out).map(|(_, amount, _)| amount).sum();
        let view = balance(&app, &hot).await;
        assert_eq!(view["credits_posted"].as_u64().unwrap(), paid_in);
        assert_eq!(view["debits_posted"].as_u64().unwrap(), paid_out);
        assert!(paid_in >= paid_out, "the wallet went negative");

        let mut total_debits = 0;
        let mut total_credits = 0;
        for id in sources.iter().chain([&hot]) {
            let view = balance(&app, id).await;
            total_debits += view["debits_posted"].as_u64().unwrap();
            total_credits += view["credits_posted"].as_u64().unwrap();
        }
        assert_eq!(total_debits, total_credits, "money was created or destroyed");

        for (id, amount, _) in &acknowledged {
            let (status, stored) = app.get(&format!("/v1/ledger/transfers/{id}")).await;
            assert_eq!(status, 200, "acknowledged transfer {id} is missing");
            assert_eq!(stored["amount"].as_u64(), Some(*amount));
        }
        let mut listed = 0;
        let mut cursor: Option<String> = None;
        loop {
            let mut path = format!("/v1/ledger/accounts/{hot}/transfers?limit=100");
            if let Some(cursor) = &cursor {
                path.push_str(&format!("&cursor={cursor}"));
            }
            let (_, page) = app.get(&path).await;
            listed += page["data"].as_array().unwrap().len();
            match page["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_owned()),
                None => break,
            }
        }
        assert_eq!(listed, acknowledged.len(), "stored transfers differ from acknowledged ones");
        std::sync::Arc::into_inner(app).expect("all clients finished").stop().await;
    }
}

#[tokio::test]
async fn probes_and_docs_are_served() {
    let app = spawn_app(&Backend::Sqlite).await;
    for path in ["/health/live", "/health/ready"] {
        let (status, body) = common::read(app.client.get(app.url(path)).send().await.unwrap()).await;
        assert_eq!((status, body), (200, json!({"status": "ok"})), "{path}");
    }
    let (status, doc) = common::read(app.client.get(app.url("/openapi.json")).send().await.unwrap()).await;
    assert_eq!(status, 200);
    assert!(doc["paths"]["/v1/ledger/transfers"]["post"].is_object());
    let response = app.client.get(app.url("/docs/")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.text().await.unwrap().contains("swagger"), "the docs page is Swagger UI");
    app.stop().await;
}

/// A transfer acknowledged before shutdown is there after a restart on the same data.
#[tokio::test]
async fn acknowledged_writes_survive_a_restart() {
    for backend in backends() {
        let mut app = spawn_app(&backend).await;
        let (a, b) = (new_id(), new_id());
        create_accounts(
            &app,
            &json!([{"id": a, "ledger": USD, "code": 1}, {"id": b, "ledger": USD, "code": 1}]),
        )
        .await;
        let transfer = json!([{"id": new_id(), "debit_account_id": a, "credit_account_id": b, "amount": 42, "ledger": USD, "code": 1}]);
        assert_eq!(results(&app.post("/v1/ledger/transfers", &transfer).await.1), ["ok"]);
        app.restart().await;
        assert_eq!(balance(&app, &b).await["credits_posted"], 42);
        assert_eq!(results(&app.post("/v1/ledger/transfers", &transfer).await.1), ["exists"]);
        app.stop().await;
    }
}
