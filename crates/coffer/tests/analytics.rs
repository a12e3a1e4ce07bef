//! Platform analytics over real HTTP, on SQLite and, when configured, PostgreSQL: the
//! projection fed by the event stream gives hand-computed daily figures and customer
//! snapshots; replaying every event again changes nothing (idempotent per event); and
//! `coffer projections rebuild` — the real binary, while the server runs — reproduces
//! exactly the same answers, after which the live projection carries on.

mod common;

use common::{Session, TestApp, assert_problem, backends, register_and_login, spawn_app};
use serde_json::{Value, json};
use uuid::Uuid;

async fn call(
    app: &TestApp,
    session: &Session,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> Value {
    let mut request = app.client.request(method, app.url(path)).bearer_auth(&session.access_token);
    if let Some(body) = body {
        request = request.header("idempotency-key", Uuid::now_v7().to_string()).json(&body);
    }
    let (status, body) = common::read(request.send().await.unwrap()).await;
    assert!((200..300).contains(&status), "{path}: {status} {body}");
    body
}

async fn post(app: &TestApp, session: &Session, path: &str, body: Value) -> Value {
    call(app, session, reqwest::Method::POST, path, Some(body)).await
}

async fn category(app: &TestApp, session: &Session, name: &str) -> String {
    let all = call(app, session, reqwest::Method::GET, "/v1/categories", None).await;
    all.as_array().unwrap().iter().find(|c| c["name"] == name).unwrap()["id"].as_str().unwrap().to_owned()
}

/// The admin views under test: one day range and both customers' snapshots.
async fn views(app: &TestApp, today: &str, customers: &[&str]) -> Vec<Value> {
    let mut views = Vec::new();
    let (status, daily) = app.get(&format!("/v1/analytics/daily?from={today}&to={today}")).await;
    assert_eq!(status, 200, "{daily}");
    views.push(daily);
    for customer in customers {
        let (status, snapshot) = app.get(&format!("/v1/analytics/customers/{customer}")).await;
        assert_eq!(status, 200, "{snapshot}");
        views.push(snapshot);
    }
    views
}

fn rebuild_with_the_cli(app: &TestApp, extra: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_coffer"))
        .args(["projections", "rebuild"])
        .args(extra)
        .env("DATABASE_URL", app.database_url())
        .env("COFFER_DATA_DIR", app.data_dir.path())
        .env("COFFER_LOG", "warn")
        .output()
        .unwrap()
}

fn printed(output: &std::process::Output) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
    stdout
}

#[tokio::test]
async fn projections_match_hand_computed_figures_and_a_rebuild_reproduces_them() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let store = app.store().await;
        let ada = register_and_login(&app, "ada@example.com").await;
        let bob = register_and_login(&app, "bob@example.com").await;
        let ada_id = ada.customer_id.clone();
        let bob_id = bob.customer_id.clone();

        // Money: a top-up of 10,000, a transfer of 2,500 to Bob, a 450 coffee paid from the wallet.
        let wallet = post(&app, &ada, "/v1/wallets", json!({"currency": "USD"})).await["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let bobs = post(&app, &bob, "/v1/wallets", json!({"currency": "USD"})).await["id"]
            .as_str()
            .unwrap()
            .to_owned();
        post(
            &app,
            &ada,
            &format!("/v1/wallets/{wallet}/top-ups"),
            json!({"amount": 10_000, "payment_method": "tok_visa"}),
        )
        .await;
        post(
            &app,
            &ada,
            "/v1/transfers",
            json!({"from_wallet_id": wallet, "to_wallet_id": bobs, "amount": 2_500}),
        )
        .await;
        post(
            &app,
            &ada,
            &format!("/v1/wallets/{wallet}/payments"),
            json!({"merchant": "Starbucks", "mcc": "5814", "amount": 450}),
        )
        .await;

        // Expenses: groceries in EUR, a salary (income, not spending), a cinema ticket whose
        // category is then deleted (→ Uncategorised), a ride edited to 1,500 and moved to
        // Travel, and a mistake deleted.
        let groceries = category(&app, &ada, "Groceries").await;
        post(
            &app,
            &ada,
            "/v1/expenses",
            json!({"amount": 1_000, "currency": "EUR", "merchant": "Lidl", "category_id": groceries}),
        )
        .await;
        let salary = category(&app, &ada, "Salary").await;
        post(
            &app,
            &ada,
            "/v1/expenses",
            json!({"amount": 300_000, "currency": "USD", "description": "Pay", "category_id": salary}),
        )
        .await;
        let entertainment = category(&app, &ada, "Entertainment").await;
        post(
            &app,
            &ada,
            "/v1/expenses",
            json!({"amount": 700, "currency": "USD", "description": "Cinema", "category_id": entertainment}),
        )
        .await;
        let ride =
            post(&app, &ada, "/v1/expenses", json!({"amount": 1_200, "currency": "USD", "merchant": "Uber"}))
                .await;
        let travel = category(&app, &ada, "Travel").await;
        let ride_path = format!("/v1/expenses/{}", ride["id"].as_str().unwrap());
        call(
            &app,
            &ada,
            reqwest::Method::PATCH,
            &ride_path,
            Some(json!({"amount": 1_500, "category_id": travel})),
        )
        .await;
        let mistake = post(&app, &ada, "/v1/expenses", json!({"amount": 999, "currency": "USD"})).await;
        call(
            &app,
            &ada,
            reqwest::Method::DELETE,
            &format!("/v1/expenses/{}", mistake["id"].as_str().unwrap()),
            None,
        )
        .await;
        call(&app, &ada, reqwest::Method::DELETE, &format!("/v1/categories/{entertainment}"), None).await;
        common::relayed(&store).await;

        let today = time::OffsetDateTime::now_utc().date().to_string();
        let before = views(&app, &today, &[&ada_id, &bob_id]).await;
        let day = &before[0]["days"][0];
        assert_eq!(before[0]["days"].as_array().unwrap().len(), 1, "{}", before[0]);
        assert_eq!(day["date"], today.as_str());
        assert_eq!((&day["active_customers"], &day["new_customers"]), (&json!(2), &json!(2)), "{day}");
        assert_eq!(
            day["volume"],
            json!([
                {"currency": "USD", "operation": "payment", "amount": 450, "count": 1},
                {"currency": "USD", "operation": "top_up", "amount": 10_000, "count": 1},
                {"currency": "USD", "operation": "transfer", "amount": 2_500, "count": 1},
            ]),
            "each transfer once"
        );
        let month = &today[..7];
        let snapshot = &before[1];
        assert_eq!(snapshot["registered_on"], today.as_str());
        assert_eq!(snapshot["last_active_on"], today.as_str());
        assert_eq!(
            snapshot["balances"],
            json!([{"wallet_id": wallet, "currency": "USD", "posted": 7_050, "pending": 0, "available": 7_050}])
        );
        assert_eq!(
            snapshot["monthly_spend"],
            json!([
                {"month": month, "currency": "EUR", "amount": 1_000, "count": 1},
                {"month": month, "currency": "USD", "amount": 450 + 700 + 1_500, "count": 3},
            ]),
            "income, the deleted expense and the ride's old amount are not spending"
        );
        let uncategorised = category(&app, &ada, "Uncategorised").await;
        // The deleted category's expense moved in the projection too (category.deleted).
        let spend = store.projected_spend(ada_id.parse().unwrap(), month).await.unwrap();
        let moved = spend.iter().find(|row| row.total == 700).unwrap();
        assert_eq!(moved.category_id, Some(uncategorised.parse().unwrap()), "{spend:?}");
        let food = category(&app, &ada, "Food & Dining").await;
        assert_eq!(
            snapshot["top_categories"],
            json!([
                {"category_id": food, "name": "Food & Dining", "currency": "EUR", "amount": 1_000, "count": 1},
                {"category_id": travel, "name": "Travel", "currency": "USD", "amount": 1_500, "count": 1},
                {"category_id": uncategorised, "name": "Uncategorised", "currency": "USD", "amount": 700, "count": 1},
                {"category_id": food, "name": "Food & Dining", "currency": "USD", "amount": 450, "count": 1},
            ])
        );
        assert_eq!(
            before[2]["balances"],
            json!([{"wallet_id": bobs, "currency": "USD", "posted": 2_500, "pending": 0, "available": 2_500}])
        );

        // Every event handed over again: nothing changes.
        let analytics = coffer::analytics::Analytics::new(store.clone());
        let events = store.events_after(0, store::OUTBOX_BATCH_MAX).await.unwrap();
        assert!(events.len() > 20, "{} events", events.len());
        let delivered: Vec<_> = events.iter().map(coffer::events::bus::Delivered::from).collect();
        analytics.apply_all(&delivered).await.unwrap();
        assert_eq!(views(&app, &today, &[&ada_id, &bob_id]).await, before, "applied twice, counted once");

        // The CLI rebuilds from the outbox while the server runs: the same answers.
        let rebuilt = rebuild_with_the_cli(&app, &[]);
        let output = printed(&rebuilt);
        assert!(output.contains(&format!("from {} events", events.len())), "{output}");
        // Not a terminal: progress comes as plain lines on standard error, the last at the head.
        let progress = String::from_utf8_lossy(&rebuilt.stderr).into_owned();
        let last = progress.lines().filter_map(|line| line.strip_prefix("rebuild: ")).next_back();
        let (done, total) =
            last.and_then(|line| line.strip_suffix(" events")?.split_once(" of ")).expect(&progress);
        assert!(done == total && total.parse::<u64>().unwrap() >= events.last().unwrap().seq, "{progress}");
        assert_eq!(
            views(&app, &today, &[&ada_id, &bob_id]).await,
            before,
            "a rebuild reproduces the projection"
        );

        // The live projection carries on after the rebuild.
        post(
            &app,
            &bob,
            &format!("/v1/wallets/{bobs}/top-ups"),
            json!({"amount": 300, "payment_method": "tok_visa"}),
        )
        .await;
        common::relayed(&store).await;
        let after = views(&app, &today, &[&ada_id, &bob_id]).await;
        assert_eq!(
            after[0]["days"][0]["volume"][1],
            json!({"currency": "USD", "operation": "top_up", "amount": 10_300, "count": 2})
        );
        assert_eq!(after[2]["balances"][0]["available"], 2_800);

        // Once events are purged from the outbox, a rebuild would lose what they said: it
        // refuses unless told to go ahead.
        let purged = store.purge_events(u64::MAX, store::now_ns()).await.unwrap();
        assert!(purged > 0);
        let refused = rebuild_with_the_cli(&app, &[]);
        assert!(!refused.status.success());
        assert!(String::from_utf8_lossy(&refused.stderr).contains("--allow-partial"), "{refused:?}");
        printed(&rebuild_with_the_cli(&app, &["--allow-partial"]));
        app.stop().await;
    }
}

#[tokio::test]
async fn analytics_are_for_admins_and_ranges_are_checked() {
    let backend = backends().remove(0);
    let app = spawn_app(&backend).await;
    let ada = register_and_login(&app, "ada@example.com").await;
    let (status, body) =
        app.call(reqwest::Method::GET, "/v1/analytics/daily", Some(&ada.access_token), None).await;
    assert_problem(status, &body, 403, "forbidden");
    let (status, body) = app.call(reqwest::Method::GET, "/v1/analytics/daily", None, None).await;
    assert_eq!(status, 401, "{body}");
    let (status, body) = app.get("/v1/analytics/daily").await;
    assert_eq!(
        (status, body["days"].as_array().map(Vec::len)),
        (200, Some(30)),
        "the last 30 days by default"
    );
    for (query, field) in [
        ("from=2026-02-30", "from"),
        ("from=yesterday", "from"),
        ("from=2026-03-02&to=2026-03-01", "from"),
        ("from=2024-01-01&to=2026-01-01", "to"),
    ] {
        let (status, body) = app.get(&format!("/v1/analytics/daily?{query}")).await;
        assert_problem(status, &body, 422, "validation_failed");
        assert_eq!(body["errors"][0]["field"], field, "{query}: {body}");
    }
    let (status, body) = app.get("/v1/analytics/daily?form=2026-01-01").await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = app.get(&format!("/v1/analytics/customers/{}", Uuid::now_v7())).await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = app.get(&format!("/v1/analytics/customers/{}", ada.customer_id)).await;
    assert_eq!((status, &body["customer_id"]), (200, &json!(ada.customer_id)), "{body}");
    app.stop().await;
}
