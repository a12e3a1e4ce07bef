//! Reports and budgets in a customer's home currency, end to end on both backends: a month
//! of spending in five currencies valued in euros at the rate of each expense's day (the
//! sample history file has two days, one of them without GBP), the rates and their source
//! shown, a currency the file does not publish listed apart, budgets that count every
//! currency and announce a crossing made in another one — and none of it before the
//! customer chooses a home currency.

mod common;

use common::{
    Options, Raw, Session, TestApp, assert_problem, backends, customer, register_and_login, spawn_app_with,
};
use serde_json::{Value, json};

const HISTORY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/examples/eurofxref-hist.xml");

fn options() -> Options {
    Options { configure: |args| args.fx_rates_url = Some(HISTORY.into()), ..Options::default() }
}

async fn category(app: &TestApp, session: &Session, name: &str) -> String {
    let (status, all) = customer::get(app, session, "/v1/categories").await;
    assert_eq!(status, 200, "{all}");
    all.as_array().unwrap().iter().find(|c| c["name"] == name).unwrap()["id"].as_str().unwrap().to_owned()
}

async fn spend(app: &TestApp, session: &Session, category_id: &str, amount: i64, currency: &str, on: &str) {
    let body = json!({"amount": amount, "currency": currency, "merchant": "Market", "category_id": category_id,
        "occurred_at": format!("{on}T12:00:00Z")});
    let (status, created) = customer::post(app, session, "/v1/expenses", &body).await;
    assert_eq!(status, 201, "{created}");
}

/// The rates a home figure lists, as (currency, day, source).
fn rates(home: &Value) -> Vec<(String, String, String)> {
    home["rates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|rate| {
            let text = |key: &str| rate[key].as_str().unwrap().to_owned();
            (text("currency"), text("rate_date"), text("source"))
        })
        .collect()
}

#[tokio::test]
async fn a_month_in_five_currencies_reads_in_euros_at_the_rate_of_each_day() {
    for backend in backends() {
        let app = spawn_app_with(&backend, options()).await;
        let ada = register_and_login(&app, "ada@example.com").await;
        // The file's days are months old: too old to quote, but each is recorded to value
        // the spending of its days.
        let (status, body) = customer::get(&app, &ada, "/v1/fx/rates").await;
        assert_problem(status, &body, 503, "fx_rates_stale");
        let groceries = category(&app, &ada, "Groceries").await;
        spend(&app, &ada, &groceries, 12_500, "USD", "2026-05-20").await; // before the first day: 05-29's
        spend(&app, &ada, &groceries, 500, "EUR", "2026-06-01").await;
        spend(&app, &ada, &groceries, 10_000, "USD", "2026-06-10").await; // 05-29: 1.25 per euro → 80.00
        spend(&app, &ada, &groceries, 10_000, "USD", "2026-06-20").await; // 06-15: 1.00 → 100.00
        spend(&app, &ada, &groceries, 800, "GBP", "2026-06-20").await; // no GBP on 06-15: 05-29's 0.80 → 10.00
        spend(&app, &ada, &groceries, 1_500, "JPY", "2026-06-16").await; // 06-15: 150 → 10.00
        spend(&app, &ada, &groceries, 100_000, "KES", "2026-06-21").await; // not published
        let (status, budget) = customer::post(
            &app,
            &ada,
            "/v1/budgets",
            &json!({"category_id": groceries, "currency": "EUR", "amount": 20_000}),
        )
        .await;
        assert_eq!(status, 201, "{budget}");
        let status_path = format!("/v1/budgets/{}/status?year=2026&month=6", budget["id"].as_str().unwrap());

        // No home currency yet: per currency only; the budget counts its own currency.
        let (status, report) = customer::get(&app, &ada, "/v1/reports/monthly/2026/6").await;
        assert_eq!(status, 200, "{report}");
        assert_eq!(report["home"], Value::Null);
        assert_eq!(report["currencies"].as_array().unwrap().len(), 5, "{report}");
        let (status, before) = customer::get(&app, &ada, &status_path).await;
        assert_eq!(status, 200, "{before}");
        assert_eq!(
            (before["spent"].as_i64(), before["rates"].as_array().map(Vec::len)),
            (Some(500), Some(0))
        );

        let (status, body) = customer::patch(
            &app,
            &ada,
            "/v1/customers/me",
            &json!({"preferences": {"home_currency": "XYZ"}}),
        )
        .await;
        assert_problem(status, &body, 422, "validation_failed");
        let (status, body) = customer::patch(
            &app,
            &ada,
            "/v1/customers/me",
            &json!({"preferences": {"home_currency": "EUR"}}),
        )
        .await;
        assert_eq!(status, 200, "{body}");

        let (status, report) = customer::get(&app, &ada, "/v1/reports/monthly/2026/6").await;
        assert_eq!(status, 200, "{report}");
        let home = &report["home"];
        assert_eq!(home["currency"], "EUR", "{report}");
        assert_eq!(home["spending"], 500 + 8_000 + 10_000 + 1_000 + 1_000, "{home}");
        assert_eq!(home["count"], 5, "the KES expense is not counted: {home}");
        assert_eq!(home["previous_month"]["spending"], 10_000, "{home}");
        assert_eq!(home["spending_change_percent"], 105);
        assert_eq!(
            (&home["by_category"][0]["name"], &home["by_category"][0]["total"]),
            (&json!("Food & Dining"), &json!(20_500))
        );
        assert_eq!(home["unvalued"], json!([{"currency": "KES", "total": 100_000, "count": 1}]));
        assert_eq!(home["top_merchants"], json!([{"merchant": "Market", "total": 20_500, "count": 5}]));
        let source = format!("ecb:{HISTORY}");
        let expected: Vec<(String, String, String)> =
            [("GBP", "2026-05-29"), ("JPY", "2026-06-15"), ("USD", "2026-05-29"), ("USD", "2026-06-15")]
                .iter()
                .map(|(currency, day)| ((*currency).to_owned(), (*day).to_owned(), source.clone()))
                .collect();
        assert_eq!(rates(home), expected, "each rate once, with its day and source: {home}");
        let usd_may = home["rates"]
            .as_array()
            .unwrap()
            .iter()
            .find(|rate| rate["rate_date"] == "2026-05-29" && rate["currency"] == "USD")
            .unwrap();
        assert_eq!(usd_may["rate"].as_str().unwrap().parse::<f64>().unwrap(), 0.8, "euros per dollar");
        assert_eq!(report["currencies"].as_array().unwrap().len(), 5, "the per-currency figures stay");

        let (status, summary) = customer::get(&app, &ada, "/v1/reports/monthly/2026/6/summary").await;
        assert_eq!(status, 200, "{summary}");
        assert_eq!(summary["home"]["currency"], "EUR");
        assert_eq!(summary["home"]["spending_change"], 10_500, "{summary}");
        assert_eq!(summary["home"]["moved_most"][0]["name"], "Food & Dining");
        assert_eq!(
            summary["budgets_at_risk"].as_array().unwrap().len(),
            1,
            "the euro budget is over: {summary}"
        );

        let (status, after) = customer::get(&app, &ada, &status_path).await;
        assert_eq!(status, 200, "{after}");
        assert_eq!(after["spent"], 20_500, "{after}");
        assert_eq!(after["state"], "exceeded");
        assert_eq!(rates(&after), expected, "{after}");
        assert_eq!(after["unvalued"][0]["currency"], "KES");

        let (status, trends) = customer::get(&app, &ada, "/v1/reports/trends?months=1").await;
        assert_eq!(status, 200, "{trends}");
        assert_eq!(trends[0]["home"]["currency"], "EUR", "{trends}");

        // A crossing made in another currency is announced: a euro budget of 50.00 this
        // month, then a dollar expense worth 60.00 at the newest recorded rate.
        let dining = category(&app, &ada, "Restaurants").await;
        let (status, small) = customer::post(
            &app,
            &ada,
            "/v1/budgets",
            &json!({"category_id": dining, "currency": "EUR", "amount": 5_000}),
        )
        .await;
        assert_eq!(status, 201, "{small}");
        let body = json!({"amount": 6_000, "currency": "USD", "merchant": "Bistro", "category_id": dining});
        let (status, created) = customer::post(&app, &ada, "/v1/expenses", &body).await;
        assert_eq!(status, 201, "{created}");
        let raw = Raw::new(&app);
        assert_eq!(raw.number("SELECT COUNT(*) FROM outbox WHERE type = 'coffer.budget.exceeded'").await, 1);
        app.stop().await;
    }
}
