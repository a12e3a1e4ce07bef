//! Personal finance over real HTTP: categories, expenses with automatic categorisation
//! (the STARBUCKS case), filters and paging, rules and rule learning, and payments from a
//! wallet to a merchant that record their expense — on SQLite and, when configured,
//! PostgreSQL.

mod common;

use common::customer::{get, patch, post, send};
use common::{Session, TestApp, backends, register_and_login, spawn_app};
use serde_json::{Value, json};
use uuid::Uuid;

/// The id of the caller's category named `name`.
async fn category(app: &TestApp, session: &Session, name: &str) -> String {
    let (status, all) = get(app, session, "/v1/categories").await;
    assert_eq!(status, 200, "{all}");
    all.as_array().unwrap().iter().find(|c| c["name"] == name).unwrap_or_else(|| panic!("no {name}: {all}"))["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn expense(app: &TestApp, session: &Session, body: Value) -> Value {
    let (status, created) = post(app, session, "/v1/expenses", &body).await;
    assert_eq!(status, 201, "{created}");
    created
}

#[tokio::test]
async fn starbucks_is_a_coffee_shop_with_high_confidence() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let ada = register_and_login(&app, "ada@example.com").await;
        let created = expense(
            &app,
            &ada,
            json!({"merchant": "STARBUCKS", "amount": 550, "mcc": "5814", "currency": "USD"}),
        )
        .await;
        assert_eq!(created["category_id"], category(&app, &ada, "Coffee Shops").await);
        assert_eq!(created["categorized_by"], "merchant");
        assert!(created["confidence"].as_f64().unwrap() > 0.9, "{created}");
        assert_eq!(created["source"], "manual");
        // The MCC alone, and nothing at all.
        let diner = expense(
            &app,
            &ada,
            json!({"merchant": "Chez Nous", "amount": 2_000, "mcc": "5812", "currency": "EUR"}),
        )
        .await;
        assert_eq!(
            (diner["categorized_by"].as_str(), diner["confidence"].as_f64()),
            (Some("mcc"), Some(0.9))
        );
        assert_eq!(diner["category_id"], category(&app, &ada, "Restaurants").await);
        let unknown =
            expense(&app, &ada, json!({"merchant": "Zyx Qwv", "amount": 1, "currency": "USD"})).await;
        assert_eq!(unknown["category_id"], category(&app, &ada, "Uncategorised").await);
        assert_eq!(
            (unknown["categorized_by"].as_str(), unknown["confidence"].as_f64()),
            (Some("none"), Some(0.0))
        );
        app.stop().await;
    }
}

#[tokio::test]
async fn categories_tree_names_and_deletion() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let ada = register_and_login(&app, "ada@example.com").await;
        let bob = register_and_login(&app, "bob@example.com").await;
        let (_, all) = get(&app, &ada, "/v1/categories").await;
        let all = all.as_array().unwrap().clone();
        let food = all.iter().find(|c| c["name"] == "Food & Dining").unwrap();
        assert!(food["parent_id"].is_null());
        let coffee = all.iter().find(|c| c["name"] == "Coffee Shops").unwrap();
        assert_eq!(coffee["parent_id"], food["id"]);
        assert!(all.iter().any(|c| c["name"] == "Uncategorised" && c["system"] == true));
        for top in [
            "Transportation",
            "Shopping",
            "Bills & Utilities",
            "Housing",
            "Health",
            "Entertainment",
            "Travel",
            "Education",
            "Income",
            "Transfers",
            "Fees",
        ] {
            assert!(all.iter().any(|c| c["name"] == top && c["parent_id"].is_null()), "{top}");
        }

        let (status, pets) = post(&app, &ada, "/v1/categories", &json!({"name": "Pets"})).await;
        assert_eq!(status, 201, "{pets}");
        let pets_id = pets["id"].as_str().unwrap().to_owned();
        let (status, vet) =
            post(&app, &ada, "/v1/categories", &json!({"name": "Vet", "parent_id": pets_id})).await;
        assert_eq!(status, 201, "{vet}");
        let (status, body) = post(&app, &ada, "/v1/categories", &json!({"name": "Pets"})).await;
        common::assert_problem(status, &body, 409, "category_name_taken");
        let (status, body) =
            post(&app, &ada, "/v1/categories", &json!({"name": "Deep", "parent_id": vet["id"]})).await;
        common::assert_problem(status, &body, 422, "invalid_category");
        let (status, body) = post(&app, &ada, "/v1/categories", &json!({"name": "  "})).await;
        assert_eq!(status, 422, "{body}");
        // Bob has his own tree; Ada's ids mean nothing to him.
        let (status, _) = post(&app, &bob, "/v1/categories", &json!({"name": "Pets"})).await;
        assert_eq!(status, 201, "names are unique per customer");
        let (status, _) =
            patch(&app, &bob, &format!("/v1/categories/{pets_id}"), &json!({"name": "Mine"})).await;
        assert_eq!(status, 404);

        let (status, renamed) =
            patch(&app, &ada, &format!("/v1/categories/{pets_id}"), &json!({"name": "Animals"})).await;
        assert_eq!((status, renamed["name"].as_str()), (200, Some("Animals")), "{renamed}");
        // The document says `name` is a string: null is refused, not read as "unchanged".
        let (status, refused) =
            patch(&app, &ada, &format!("/v1/categories/{pets_id}"), &json!({"name": null})).await;
        assert_eq!((status, refused["code"].as_str()), (422, Some("validation_failed")), "{refused}");
        let spent =
            expense(&app, &ada, json!({"amount": 4_000, "currency": "USD", "category_id": vet["id"]})).await;
        assert_eq!(spent["categorized_by"], "manual");
        let (status, _) =
            send(&app, &ada, reqwest::Method::DELETE, &format!("/v1/categories/{pets_id}"), None).await;
        assert_eq!(status, 204);
        let (_, moved) = get(&app, &ada, &format!("/v1/expenses/{}", spent["id"].as_str().unwrap())).await;
        assert_eq!(
            moved["category_id"],
            category(&app, &ada, "Uncategorised").await,
            "moved to Uncategorised"
        );
        let uncategorised = category(&app, &ada, "Uncategorised").await;
        let (status, body) =
            send(&app, &ada, reqwest::Method::DELETE, &format!("/v1/categories/{uncategorised}"), None).await;
        common::assert_problem(status, &body, 422, "invalid_category");
        app.stop().await;
    }
}

#[tokio::test]
async fn expenses_filter_page_edit_and_stay_private() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let ada = register_and_login(&app, "ada@example.com").await;
        let bob = register_and_login(&app, "bob@example.com").await;
        let days = ["2026-01-05", "2026-01-10", "2026-01-20", "2026-02-02", "2026-02-15"];
        let merchants = ["Tesco", "Starbucks", "Uber", "Tesco", "Netflix"];
        let mut ids = Vec::new();
        for (index, (day, merchant)) in days.iter().zip(merchants).enumerate() {
            let created = expense(
                &app,
                &ada,
                json!({"amount": (index as i64 + 1) * 1_000, "currency": "GBP", "merchant": merchant,
                       "description": format!("{merchant} purchase"), "occurred_at": format!("{day}T12:00:00Z"),
                       "tags": if index % 2 == 0 { json!(["family"]) } else { json!([]) }}),
            )
            .await;
            ids.push(created["id"].as_str().unwrap().to_owned());
        }
        let count = |page: &Value| page["data"].as_array().unwrap().len();
        let (_, january) =
            get(&app, &ada, "/v1/expenses?from=2026-01-01T00:00:00Z&to=2026-02-01T00:00:00Z").await;
        assert_eq!(count(&january), 3, "{january}");
        assert_eq!(january["data"][0]["merchant"], "Uber", "newest first");
        let food = category(&app, &ada, "Food & Dining").await;
        let (_, in_food) = get(&app, &ada, &format!("/v1/expenses?category_id={food}")).await;
        assert_eq!(count(&in_food), 3, "a parent includes its children (groceries, coffee): {in_food}");
        let (_, tesco) = get(&app, &ada, "/v1/expenses?merchant=tesco").await;
        assert_eq!(count(&tesco), 2);
        let (_, mid) = get(&app, &ada, "/v1/expenses?amount_min=2000&amount_max=4000").await;
        assert_eq!(count(&mid), 3);
        let (_, family) = get(&app, &ada, "/v1/expenses?tag=family").await;
        assert_eq!(count(&family), 3);
        let (_, search) = get(&app, &ada, "/v1/expenses?q=NETFLIX%20pur").await;
        assert_eq!(count(&search), 1);
        let (_, wild) = get(&app, &ada, "/v1/expenses?q=%25").await;
        assert_eq!(count(&wild), 0, "LIKE wildcards are literal");
        // Paging: two by two, no gap, no repeat.
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let path = match &cursor {
                Some(cursor) => format!("/v1/expenses?limit=2&cursor={cursor}"),
                None => "/v1/expenses?limit=2".to_owned(),
            };
            let (status, page) = get(&app, &ada, &path).await;
            assert_eq!(status, 200, "{page}");
            seen.extend(
                page["data"].as_array().unwrap().iter().map(|e| e["id"].as_str().unwrap().to_owned()),
            );
            match page["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_owned()),
                None => break,
            }
        }
        let mut expected = ids.clone();
        expected.reverse();
        assert_eq!(seen, expected);

        let (status, edited) = patch(
            &app,
            &ada,
            &format!("/v1/expenses/{}", ids[0]),
            &json!({"amount": 1234, "notes": "weekly shop", "tags": ["food", "family"]}),
        )
        .await;
        assert_eq!((status, edited["amount"].as_i64()), (200, Some(1234)), "{edited}");
        assert_eq!(edited["tags"], json!(["food", "family"]));
        let (status, cleared) =
            patch(&app, &ada, &format!("/v1/expenses/{}", ids[0]), &json!({"notes": null})).await;
        assert_eq!((status, cleared["notes"].is_null()), (200, true), "{cleared}");
        // Bob sees none of it.
        let (_, bobs) = get(&app, &bob, "/v1/expenses").await;
        assert_eq!(count(&bobs), 0);
        for (method, body) in [
            (reqwest::Method::GET, None),
            (reqwest::Method::PATCH, Some(json!({"amount": 1}))),
            (reqwest::Method::DELETE, None),
        ] {
            let (status, _) =
                send(&app, &bob, method, &format!("/v1/expenses/{}", ids[0]), body.as_ref()).await;
            assert_eq!(status, 404);
        }
        // Bad input: clear 4xx, nothing stored.
        for bad in [
            json!({"amount": 0, "currency": "USD"}),
            json!({"amount": 10, "currency": "XXX"}),
            json!({"amount": 10, "currency": "USD", "mcc": "58"}),
            json!({"amount": 10, "currency": "USD", "occurred_at": "yesterday"}),
            json!({"amount": 10, "currency": "USD", "tags": ["a,b"]}),
            json!({"amount": 10, "currency": "USD", "category_id": Uuid::now_v7()}),
            json!({"amount": 10, "currency": "USD", "balance": 5}),
        ] {
            let (status, body) = post(&app, &ada, "/v1/expenses", &bad).await;
            assert!(status == 422 || status == 404, "{bad} → {status} {body}");
        }
        let (_, all) = get(&app, &ada, "/v1/expenses").await;
        assert_eq!(count(&all), 5);
        let (status, _) =
            send(&app, &ada, reqwest::Method::DELETE, &format!("/v1/expenses/{}", ids[4]), None).await;
        assert_eq!(status, 204);
        let (status, _) = get(&app, &ada, &format!("/v1/expenses/{}", ids[4])).await;
        assert_eq!(status, 404);
        app.stop().await;
    }
}

#[tokio::test]
async fn rules_apply_and_are_learned_from_corrections() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let ada = register_and_login(&app, "ada@example.com").await;
        // A correction teaches a rule for the merchant.
        let first =
            expense(&app, &ada, json!({"merchant": "Corner Deli", "amount": 800, "currency": "USD"})).await;
        assert_eq!(first["categorized_by"], "none");
        let restaurants = category(&app, &ada, "Restaurants").await;
        let (status, fixed) = patch(
            &app,
            &ada,
            &format!("/v1/expenses/{}", first["id"].as_str().unwrap()),
            &json!({"category_id": restaurants}),
        )
        .await;
        assert_eq!(status, 200, "{fixed}");
        assert_eq!(
            (fixed["categorized_by"].as_str(), fixed["confidence"].as_f64()),
            (Some("manual"), Some(1.0))
        );
        let learned = fixed["learned_rule_id"].as_str().expect("a rule was learned").to_owned();
        let next =
            expense(&app, &ada, json!({"merchant": "CORNER DELI", "amount": 950, "currency": "USD"})).await;
        assert_eq!(next["category_id"], restaurants);
        assert_eq!(next["categorized_by"], format!("rule:{learned}"));
        assert_eq!(next["confidence"], 1.0);
        // Corrected again: the same rule now points to the new category.
        let fast_food = category(&app, &ada, "Fast Food").await;
        let path = format!("/v1/expenses/{}", next["id"].as_str().unwrap());
        let (_, again) = patch(&app, &ada, &path, &json!({"category_id": fast_food})).await;
        assert_eq!(again["learned_rule_id"], learned, "one rule per merchant: {again}");
        let third =
            expense(&app, &ada, json!({"merchant": "corner deli", "amount": 100, "currency": "USD"})).await;
        assert_eq!(third["category_id"], fast_food);

        // A rule of one's own, strict, applied to what exists.
        let fitness = category(&app, &ada, "Fitness").await;
        let gym = expense(
            &app,
            &ada,
            json!({"description": "Monthly climbing membership", "amount": 3_000, "currency": "USD"}),
        )
        .await;
        let small =
            expense(&app, &ada, json!({"description": "climbing chalk", "amount": 500, "currency": "USD"}))
                .await;
        assert_ne!(gym["category_id"], fitness);
        let rule = json!({"name": "Gym", "strict": true, "triggers": [
            {"type": "description_contains", "value": "CLIMBING"}, {"type": "amount_between", "min": 1000}
        ], "actions": {"category_id": fitness, "tags": ["health"]}});
        let (status, created) = post(&app, &ada, "/v1/rules", &rule).await;
        assert_eq!(status, 201, "{created}");
        let rule_id = created["id"].as_str().unwrap();
        let (status, applied) = post(&app, &ada, &format!("/v1/rules/{rule_id}/apply"), &json!({})).await;
        assert_eq!((status, applied["updated"].as_u64()), (200, Some(1)), "{applied}");
        let (_, gym) = get(&app, &ada, &format!("/v1/expenses/{}", gym["id"].as_str().unwrap())).await;
        assert_eq!(
            (gym["category_id"].as_str(), gym["tags"].clone()),
            (Some(fitness.as_str()), json!(["health"]))
        );
        let (_, small) = get(&app, &ada, &format!("/v1/expenses/{}", small["id"].as_str().unwrap())).await;
        assert_ne!(small["category_id"], fitness, "strict: the amount trigger failed");
        let (_, rules) = get(&app, &ada, "/v1/rules").await;
        assert_eq!(rules.as_array().unwrap().len(), 2);
        let (status, body) = post(
            &app,
            &ada,
            "/v1/rules",
            &json!({"name": "x", "triggers": [], "actions": {"category_id": fitness}}),
        )
        .await;
        assert_eq!(status, 422, "{body}");
        let (status, body) = post(&app, &ada, "/v1/rules", &json!({"name": "x", "triggers": [{"type": "mcc_is", "value": "5814"}], "actions": {"category_id": Uuid::now_v7()}})).await;
        assert_eq!(status, 404, "{body}");
        let (status, _) =
            send(&app, &ada, reqwest::Method::DELETE, &format!("/v1/rules/{rule_id}"), None).await;
        assert_eq!(status, 204);
        app.stop().await;
    }
}

#[tokio::test]
async fn wallet_payments_to_merchants_record_their_expense_once() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let ada = register_and_login(&app, "ada@example.com").await;
        let client = &app.client;
        let post_keyed = |path: String, key: &'static str, body: Value| {
            let request = client
                .post(app.url(&path))
                .bearer_auth(&ada.access_token)
                .header("idempotency-key", key)
                .json(&body);
            async move { common::read(request.send().await.unwrap()).await }
        };
        let (status, wallet) = post_keyed("/v1/wallets".into(), "w1", json!({"currency": "USD"})).await;
        assert_eq!(status, 201, "{wallet}");
        let wallet = wallet["id"].as_str().unwrap().to_owned();
        let (status, _) = post_keyed(
            format!("/v1/wallets/{wallet}/top-ups"),
            "t1",
            json!({"amount": 1_000, "payment_method": "tok_visa"}),
        )
        .await;
        assert_eq!(status, 201);
        let pay = json!({"merchant": "Starbucks", "mcc": "5814", "amount": 450});
        let (status, paid) = post_keyed(format!("/v1/wallets/{wallet}/payments"), "p1", pay.clone()).await;
        assert_eq!(status, 201, "{paid}");
        assert_eq!(paid["expense"]["source"], "wallet");
        assert_eq!(paid["expense"]["wallet_id"], wallet);
        assert_eq!(paid["expense"]["category_id"], category(&app, &ada, "Coffee Shops").await);
        let (status, replay) = post_keyed(format!("/v1/wallets/{wallet}/payments"), "p1", pay).await;
        assert_eq!((status, &replay), (201, &paid), "a retry replays");
        let (status, body) = post_keyed(
            format!("/v1/wallets/{wallet}/payments"),
            "p2",
            json!({"merchant": "Apple Store", "amount": 10_000}),
        )
        .await;
        common::assert_problem(status, &body, 422, "insufficient_funds");
        let (_, expenses) = get(&app, &ada, "/v1/expenses").await;
        assert_eq!(expenses["data"].as_array().unwrap().len(), 1, "one expense: {expenses}");
        let (_, balance) = get(&app, &ada, &format!("/v1/wallets/{wallet}")).await;
        assert_eq!(balance["balance"]["available"], 550);
        let (_, history) = get(&app, &ada, &format!("/v1/wallets/{wallet}/operations?type=payment")).await;
        assert_eq!(history["data"][0]["type"], "payment", "{history}");
        assert_eq!(history["data"][0]["amount"], -450);
        let csv = app
            .client
            .get(app.url("/v1/exports/operations.csv"))
            .bearer_auth(&ada.access_token)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines.len(), 3, "a header, the payment and the top-up: {csv}");
        assert!(lines[1].contains(",payment,-450,USD,posted,"), "{csv}");
        assert!(lines[2].contains(",top_up,1000,USD,posted,card_settlement,"), "{csv}");
        app.stop().await;
    }
}

/// A fixed data set whose figures were computed by hand.
#[tokio::test]
async fn reports_and_budgets_match_hand_computed_figures() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let ada = register_and_login(&app, "ada@example.com").await;
        let data = [
            ("2026-02-10T09:00:00Z", "Tesco", 3_000, "USD"),
            ("2026-02-15T09:00:00Z", "ACME PAYROLL", 500_000, "USD"),
            ("2026-03-01T00:00:00Z", "Tesco", 4_000, "USD"),
            ("2026-03-02T08:00:00Z", "Starbucks", 550, "USD"),
            ("2026-03-03T08:00:00Z", "Starbucks", 450, "USD"),
            ("2026-03-05T18:00:00Z", "Uber", 1_200, "USD"),
            ("2026-03-07T12:00:00Z", "Tesco", 2_500, "EUR"),
            ("2026-03-10T09:00:00Z", "ACME PAYROLL", 500_000, "USD"),
            ("2026-03-31T23:59:59Z", "=Netflix", 1_599, "USD"),
            ("2026-04-01T00:00:00Z", "Tesco", 9_999, "USD"),
        ];
        for (at, merchant, amount, currency) in data {
            expense(
                &app,
                &ada,
                json!({"occurred_at": at, "merchant": merchant, "amount": amount, "currency": currency}),
            )
            .await;
        }
        let (status, report) = get(&app, &ada, "/v1/reports/monthly/2026/3").await;
        assert_eq!(status, 200, "{report}");
        let currencies = report["currencies"].as_array().unwrap();
        assert_eq!(currencies.len(), 2, "never mixed: {report}");
        let eur = &currencies[0];
        assert_eq!(
            (eur["currency"].as_str(), eur["spending"].as_i64(), eur["income"].as_i64()),
            (Some("EUR"), Some(2_500), Some(0))
        );
        let usd = &currencies[1];
        assert_eq!(usd["currency"], "USD");
        assert_eq!(
            (usd["income"].as_i64(), usd["spending"].as_i64(), usd["net"].as_i64()),
            (Some(500_000), Some(7_799), Some(492_201))
        );
        assert_eq!(usd["count"], 6);
        let by_category: Vec<(String, i64, i64)> = usd["by_category"]
            .as_array()
            .unwrap()
            .iter()
            .map(|line| {
                (
                    line["name"].as_str().unwrap().to_owned(),
                    line["total"].as_i64().unwrap(),
                    line["percent"].as_i64().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            by_category,
            [
                ("Food & Dining".into(), 5_000, 64),
                ("Bills & Utilities".into(), 1_599, 20),
                ("Transportation".into(), 1_200, 15)
            ]
        );
        let merchants: Vec<(&str, i64)> = usd["top_merchants"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| (m["merchant"].as_str().unwrap(), m["total"].as_i64().unwrap()))
            .collect();
        assert_eq!(merchants, [("Tesco", 4_000), ("=Netflix", 1_599), ("Uber", 1_200), ("Starbucks", 1_000)]);
        assert_eq!(
            (usd["previous_month"]["spending"].as_i64(), usd["previous_month"]["income"].as_i64()),
            (Some(3_000), Some(500_000))
        );
        assert_eq!(usd["spending_change_percent"], 159);

        let (_, by_leaf) = get(&app, &ada, "/v1/reports/categories/2026/3").await;
        let usd_lines: Vec<(&str, i64)> = by_leaf[1]["categories"]
            .as_array()
            .unwrap()
            .iter()
            .map(|line| (line["name"].as_str().unwrap(), line["total"].as_i64().unwrap()))
            .collect();
        assert_eq!(
            usd_lines,
            [
                ("Groceries", 4_000),
                ("Subscriptions", 1_599),
                ("Taxi & Rideshare", 1_200),
                ("Coffee Shops", 1_000)
            ]
        );

        // A budget on a parent counts its children; rollover adds what February left.
        let food = category(&app, &ada, "Food & Dining").await;
        let (status, budget) = post(
            &app,
            &ada,
            "/v1/budgets",
            &json!({"category_id": food, "currency": "USD", "amount": 6_000}),
        )
        .await;
        assert_eq!(status, 201, "{budget}");
        let id = budget["id"].as_str().unwrap().to_owned();
        let (_, march) = get(&app, &ada, &format!("/v1/budgets/{id}/status?year=2026&month=3")).await;
        assert_eq!(
            (
                march["spent"].as_i64(),
                march["available"].as_i64(),
                march["remaining"].as_i64(),
                march["percent_used"].as_i64()
            ),
            (Some(5_000), Some(6_000), Some(1_000), Some(83)),
            "{march}"
        );
        assert_eq!((march["state"].as_str(), march["forecast"].as_i64()), (Some("warning"), Some(5_000)));
        let (status, _) = patch(&app, &ada, &format!("/v1/budgets/{id}"), &json!({"rollover": true})).await;
        assert_eq!(status, 200);
        let (_, rolled) = get(&app, &ada, &format!("/v1/budgets/{id}/status?year=2026&month=3")).await;
        assert_eq!(
            (rolled["rolled_over"].as_i64(), rolled["available"].as_i64(), rolled["state"].as_str()),
            (Some(3_000), Some(9_000), Some("ok"))
        );
        let (status, body) =
            post(&app, &ada, "/v1/budgets", &json!({"category_id": food, "currency": "USD", "amount": 1}))
                .await;
        common::assert_problem(status, &body, 409, "budget_exists");

        let (_, summary) = get(&app, &ada, "/v1/reports/summary").await;
        let usd_all =
            summary["all_time"].as_array().unwrap().iter().find(|t| t["currency"] == "USD").unwrap().clone();
        assert_eq!(
            (usd_all["income"].as_i64(), usd_all["spending"].as_i64(), usd_all["count"].as_i64()),
            (Some(1_000_000), Some(20_798), Some(9))
        );
        let (status, trends) = get(&app, &ada, "/v1/reports/trends?months=36").await;
        assert_eq!(status, 200, "{trends}");
        let march_trend =
            trends.as_array().unwrap().iter().find(|m| m["year"] == 2026 && m["month"] == 3).unwrap().clone();
        let usd_march = march_trend["currencies"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["currency"] == "USD")
            .unwrap()
            .clone();
        assert_eq!(usd_march["spending"], 7_799);
        let (status, _) = get(&app, &ada, "/v1/reports/trends?months=0").await;
        assert_eq!(status, 422);
        let (status, _) = get(&app, &ada, "/v1/reports/monthly/2026/13").await;
        assert_eq!(status, 400);

        let response = app
            .client
            .get(app.url("/v1/exports/expenses.csv"))
            .bearer_auth(&ada.access_token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/csv"));
        let csv = response.text().await.unwrap();
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines.len(), 11, "a header and 10 rows: {csv}");
        assert!(lines[0].starts_with("id,occurred_at,amount,currency,merchant"));
        assert!(lines.iter().any(|line| line.contains(",'=Netflix,")), "formulas are defused: {csv}");
        app.stop().await;
    }
}

#[tokio::test]
async fn statement_import_categorises_and_a_reimport_adds_nothing() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let ada = register_and_login(&app, "ada@example.com").await;
        let mut csv = String::from("Datum;Betrag;Empfänger;Verwendungszweck\n");
        csv.push_str("31.03.2026;-4,50;STARBUCKS 123;Kaffee\n");
        csv.push_str("31.03.2026;-4,50;STARBUCKS 123;Kaffee\n");
        csv.push_str("01.04.2026;-1.234,56;IKEA Berlin;Regal\n");
        csv.push_str("02.04.2026;2.500,00;ACME GmbH PAYROLL;Gehalt\n");
        csv.push_str("03.04.2026;abc;Nobody;Kaputt\n");
        csv.push_str("32.04.2026;-1,00;Nobody;Kein Datum\n");
        // Enough filler to need more than the default 64 KiB body limit.
        for day in 0..2_000 {
            csv.push_str(&format!(
                "{:02}.05.2026;-0,{:02};Corner Shop;Kleinkram {day}\n",
                day % 28 + 1,
                day % 90 + 10
            ));
        }
        let body = json!({
            "csv": csv, "currency": "EUR", "date_format": "day_month_year_dots", "decimal": ",", "delimiter": ";",
            "columns": {"date": "Datum", "amount": "Betrag", "merchant": "Empfänger", "description": "Verwendungszweck"}
        });
        assert!(body.to_string().len() > 64 * 1024);
        let (status, report) = post(&app, &ada, "/v1/imports", &body).await;
        assert_eq!(status, 200, "{report}");
        assert_eq!(
            (report["imported"].as_u64(), report["duplicates"].as_u64()),
            (Some(2_004), Some(0)),
            "{report}"
        );
        let rejected: Vec<u64> =
            report["rejected"].as_array().unwrap().iter().map(|r| r["line"].as_u64().unwrap()).collect();
        assert_eq!(rejected, [6, 7], "{report}");
        let (status, again) = post(&app, &ada, "/v1/imports", &body).await;
        assert_eq!(status, 200, "{again}");
        assert_eq!(
            (again["imported"].as_u64(), again["duplicates"].as_u64()),
            (Some(0), Some(2_004)),
            "{again}"
        );

        let (_, coffee) = get(&app, &ada, "/v1/expenses?q=starbucks").await;
        let coffee = coffee["data"].as_array().unwrap().clone();
        assert_eq!(coffee.len(), 2, "two identical lines are two expenses");
        assert!(
            coffee.iter().all(|e| e["amount"] == 450 && e["source"] == "import" && e["currency"] == "EUR")
        );
        assert_eq!(coffee[0]["category_id"], category(&app, &ada, "Coffee Shops").await);
        let (_, ikea) = get(&app, &ada, "/v1/expenses?merchant=IKEA%20Berlin").await;
        assert_eq!(ikea["data"][0]["amount"], 123_456);
        let (_, salary) = get(&app, &ada, "/v1/expenses?q=gehalt").await;
        assert_eq!(salary["data"][0]["category_id"], category(&app, &ada, "Salary").await);
        let (_, april) = get(&app, &ada, "/v1/reports/monthly/2026/4").await;
        let eur = &april["currencies"][0];
        assert_eq!(
            (eur["income"].as_i64(), eur["spending"].as_i64()),
            (Some(250_000), Some(123_456)),
            "{april}"
        );

        let bad =
            json!({"csv": "A,B\n1,2\n", "currency": "EUR", "columns": {"date": "Datum", "amount": "B"}});
        let (status, body) = post(&app, &ada, "/v1/imports", &bad).await;
        common::assert_problem(status, &body, 422, "import_unreadable");
        let bad =
            json!({"csv": "A\n", "currency": "EUR", "decimal": ",", "columns": {"date": "A", "amount": "A"}});
        let (status, _) = post(&app, &ada, "/v1/imports", &bad).await;
        assert_eq!(status, 422, "a decimal comma needs ';'");
        app.stop().await;
    }
}

/// Scheduled payments: an occurrence is paid once even when workers of three processes
/// (the server's own and two more on the same database) race for it; pause, resume and
/// cancel take effect.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_payments_are_paid_once_by_racing_workers() {
    use coffer::commit::{CommitPipeline, PipelineConfig};
    use coffer::finance::schedules::Scheduler;
    use coffer::wallets::Wallets;
    use std::sync::Arc;
    use std::time::Duration;

    for backend in backends() {
        let app = spawn_app(&backend).await;
        let ada = register_and_login(&app, "ada@example.com").await;
        let bob = register_and_login(&app, "bob@example.com").await;
        let keyed = |path: String, session: &Session, body: Value| {
            let request = app
                .client
                .post(app.url(&path))
                .bearer_auth(&session.access_token)
                .header("idempotency-key", Uuid::now_v7().to_string())
                .json(&body);
            async move { common::read(request.send().await.unwrap()).await }
        };
        let (_, from) = keyed("/v1/wallets".into(), &ada, json!({"currency": "USD"})).await;
        let from = from["id"].as_str().unwrap().to_owned();
        let (_, to) = keyed("/v1/wallets".into(), &bob, json!({"currency": "USD"})).await;
        let to = to["id"].as_str().unwrap().to_owned();
        let (status, _) = keyed(
            format!("/v1/wallets/{from}/top-ups"),
            &ada,
            json!({"amount": 100_000, "payment_method": "tok_visa"}),
        )
        .await;
        assert_eq!(status, 201);

        // Two more workers, as other processes would run them: their own pipelines.
        let store = app.store().await;
        let mut tasks = Vec::new();
        let mut workers: Vec<Scheduler> = Vec::new();
        for _ in 0..2 {
            let (pipeline, task) =
                CommitPipeline::start(store.clone(), PipelineConfig { queue_requests_max: 64 });
            tasks.push(task);
            workers.push(Scheduler::new(
                store.clone(),
                Arc::new(Wallets::new(store.clone(), pipeline)),
                Duration::from_millis(20),
            ));
        }
        let start = time::OffsetDateTime::now_utc() + time::Duration::milliseconds(300);
        let start = start.format(&time::format_description::well_known::Rfc3339).unwrap();
        let mut ids = Vec::new();
        for index in 0..12 {
            let body = json!({"from_wallet_id": from, "to_wallet_id": to, "amount": 100 + index, "frequency": "monthly",
                "start_at": start, "description": format!("rent {index}")});
            let (status, created) = post(&app, &ada, "/v1/scheduled-payments", &body).await;
            assert_eq!(status, 201, "{created}");
            ids.push(created["id"].as_str().unwrap().to_owned());
        }
        let racing = workers.iter().map(|worker| async move {
            for _ in 0..60 {
                worker.step().await.unwrap();
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        });
        futures::future::join_all(racing).await;
        let expected: i64 = (0..12).map(|index| 100 + index).sum();
        let (_, bobs) = get(&app, &bob, &format!("/v1/wallets/{to}")).await;
        assert_eq!(bobs["balance"]["posted"], expected, "each occurrence paid once: {bobs}");
        for id in &ids {
            let (_, runs) = get(&app, &ada, &format!("/v1/scheduled-payments/{id}/runs")).await;
            let runs = runs.as_array().unwrap();
            assert_eq!(runs.len(), 1, "{runs:?}");
            assert_eq!(runs[0]["status"], "succeeded");
            let (_, schedule) = get(&app, &ada, &format!("/v1/scheduled-payments/{id}")).await;
            assert_eq!(schedule["status"], "active", "monthly: next month is next");
            assert!(schedule["next_run_at"].as_str().unwrap() > start.as_str());
        }

        // Pause, resume, cancel.
        let body = json!({"from_wallet_id": from, "to_wallet_id": to, "amount": 5, "frequency": "weekly",
            "start_at": "2099-01-01T00:00:00Z"});
        let (_, later) = post(&app, &ada, "/v1/scheduled-payments", &body).await;
        let path = format!("/v1/scheduled-payments/{}", later["id"].as_str().unwrap());
        let (status, paused) = patch(&app, &ada, &path, &json!({"status": "paused"})).await;
        assert_eq!((status, paused["status"].as_str()), (200, Some("paused")), "{paused}");
        let (status, resumed) = patch(&app, &ada, &path, &json!({"status": "active", "amount": 7})).await;
        assert_eq!(
            (status, resumed["status"].as_str(), resumed["amount"].as_i64()),
            (200, Some("active"), Some(7))
        );
        let (status, _) = send(&app, &ada, reqwest::Method::DELETE, &path, None).await;
        assert_eq!(status, 204);
        let (_, cancelled) = get(&app, &ada, &path).await;
        assert_eq!(cancelled["status"], "cancelled");
        let (status, body) = patch(&app, &ada, &path, &json!({"status": "active"})).await;
        common::assert_problem(status, &body, 422, "schedule_finished");
        let (status, _) = get(&app, &bob, &path).await;
        assert_eq!(status, 404, "someone else's schedule");
        let bad = json!({"from_wallet_id": from, "amount": 5, "frequency": "once", "start_at": "2099-01-01T00:00:00Z"});
        let (status, _) = post(&app, &ada, "/v1/scheduled-payments", &bad).await;
        assert_eq!(status, 422, "a recipient is required");
        for task in tasks {
            task.shutdown().await;
        }
        store.close().await;
        app.stop().await;
    }
}

#[tokio::test]
async fn an_edit_that_takes_a_budget_over_its_line_announces_it() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let store = app.store().await;
        let ada = register_and_login(&app, "ada@example.com").await;
        let coffee = category(&app, &ada, "Coffee Shops").await;
        let (status, body) = post(
            &app,
            &ada,
            "/v1/budgets",
            &json!({"category_id": coffee, "currency": "USD", "amount": 1_000}),
        )
        .await;
        assert_eq!(status, 201, "{body}");
        let cup = expense(&app, &ada, json!({"amount": 500, "currency": "USD", "category_id": coffee})).await;
        let path = format!("/v1/expenses/{}", cup["id"].as_str().unwrap());
        let budget_events = || async {
            let events = store.events_after(0, store::OUTBOX_BATCH_MAX).await.unwrap();
            events
                .into_iter()
                .filter(|event| event.event_type.starts_with("coffer.budget."))
                .map(|event| {
                    let data = serde_json::from_str::<Value>(&event.payload).unwrap()["data"].clone();
                    (event.event_type, data["spent"].as_i64().unwrap())
                })
                .collect::<Vec<_>>()
        };
        assert!(budget_events().await.is_empty(), "50 % is fine");
        // The edit replaces the expense's 500 in the month's spending, it does not add to it.
        let (status, body) = patch(&app, &ada, &path, &json!({"amount": 900})).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(budget_events().await, vec![("coffer.budget.warning".to_owned(), 900)]);
        let (status, body) = patch(&app, &ada, &path, &json!({"notes": "still 900"})).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(budget_events().await.len(), 1, "no second warning for the same state");
        let (status, body) = patch(&app, &ada, &path, &json!({"amount": 1_200})).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            budget_events().await,
            vec![("coffer.budget.warning".to_owned(), 900), ("coffer.budget.exceeded".to_owned(), 1_200)]
        );
        app.stop().await;
    }
}

#[tokio::test]
async fn a_keyed_retry_creates_one_expense_and_one_schedule() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let ada = register_and_login(&app, "ada@example.com").await;
        let keyed = |path: &'static str, key: &'static str, body: Value| {
            let request = app
                .client
                .post(app.url(path))
                .bearer_auth(&ada.access_token)
                .header("idempotency-key", key)
                .json(&body);
            async move { common::read(request.send().await.unwrap()).await }
        };
        let lunch = json!({"amount": 1_200, "currency": "USD", "description": "lunch"});
        let (status, first) = keyed("/v1/expenses", "e1", lunch.clone()).await;
        assert_eq!(status, 201, "{first}");
        let (status, again) = keyed("/v1/expenses", "e1", lunch).await;
        assert_eq!((status, &again), (201, &first), "the retry replays the first answer");
        let (status, body) = keyed("/v1/expenses", "e1", json!({"amount": 1, "currency": "USD"})).await;
        common::assert_problem(status, &body, 409, "idempotency_key_reused");
        let (_, listed) = get(&app, &ada, "/v1/expenses").await;
        assert_eq!(listed["data"].as_array().unwrap().len(), 1, "{listed}");

        let (status, wallet) = keyed("/v1/wallets", "w1", json!({"currency": "USD"})).await;
        assert_eq!(status, 201, "{wallet}");
        let rent = json!({"from_wallet_id": wallet["id"], "biller": {"name": "Landlord"}, "amount": 90_000,
            "frequency": "monthly", "start_at": "2030-01-01T00:00:00Z"});
        let (status, first) = keyed("/v1/scheduled-payments", "s1", rent.clone()).await;
        assert_eq!(status, 201, "{first}");
        let (status, again) = keyed("/v1/scheduled-payments", "s1", rent).await;
        assert_eq!((status, &again), (201, &first));
        let (_, schedules) = get(&app, &ada, "/v1/scheduled-payments").await;
        assert_eq!(schedules.as_array().unwrap().len(), 1, "one schedule: {schedules}");
        app.stop().await;
    }
}
