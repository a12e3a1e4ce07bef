//! Reconciliation end to end, on both backends: real top-ups and withdrawals through the
//! mock provider, its own settlement files exported over HTTP, edited the way real files
//! go wrong (a line missing, a line the ledger lacks, an amount that differs), uploaded,
//! and the reports, marks, CSV export and overdue event checked.

mod common;

use common::{Raw, Session, TestApp, assert_problem, backends, customer, register_and_login, spawn_app};
use serde_json::{Value, json};
use uuid::Uuid;

/// Today (UTC), `YYYY-MM-DD`: the mock settles at the time of each call.
fn today() -> String {
    time::OffsetDateTime::now_utc().date().to_string()
}

fn days_ago(days: i64) -> String {
    (time::OffsetDateTime::now_utc().date() - time::Duration::days(days)).to_string()
}

/// The mock provider's settlement file (admin).
async fn settlement(app: &TestApp, account: &str, netted: bool) -> String {
    let day = today();
    let path = format!(
        "/v1/admin/mock-provider/settlement?account={account}&currency=USD&from={day}&to={day}&netted={netted}"
    );
    let response = app.client.get(app.url(&path)).bearer_auth(&app.admin_key).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/csv"));
    response.text().await.unwrap()
}

async fn reconcile(app: &TestApp, body: Value) -> Value {
    let (status, report) = app.post("/v1/reconciliations", &body).await;
    assert_eq!(status, 201, "{report}");
    report
}

fn statuses(report: &Value) -> Vec<(String, String)> {
    report["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|line| {
            (line["reference"].as_str().unwrap_or("").to_owned(), line["status"].as_str().unwrap().to_owned())
        })
        .collect()
}

async fn withdraw(app: &TestApp, session: &Session, wallet: &str, amount: u64) -> Value {
    let body = json!({"amount": amount, "destination": "ba_ok"});
    let (status, body) =
        customer::keyed_post(app, session, &format!("/v1/wallets/{wallet}/withdrawals"), &body).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["status"], "succeeded", "{body}");
    body
}

async fn overdue_events(raw: &Raw) -> i64 {
    raw.number("SELECT COUNT(*) FROM outbox WHERE type = 'coffer.reconciliation.unmatched'").await
}

#[tokio::test]
async fn settlement_files_reconcile_against_the_ledger() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let raw = Raw::new(&app);
        let session = register_and_login(&app, "settle@example.com").await;
        let wallet = customer::open_wallet(&app, &session, "USD").await;
        for amount in [1_000, 2_500, 4_000] {
            customer::top_up(&app, &session, &wallet, amount).await;
        }

        // The processor's file as it comes: one line per charge, its reference the
        // provider's charge id (the top-ups' amounts tell the lines apart).
        let file = settlement(&app, "card_settlement", false).await;
        let lines: Vec<&str> = file.lines().collect();
        assert_eq!(lines[0], "date,reference,amount,currency");
        assert_eq!(lines.len(), 4, "{file}");
        let references: Vec<String> = ["10.00", "25.00", "40.00"]
            .iter()
            .map(|amount| {
                let line = lines
                    .iter()
                    .find(|line| line.ends_with(&format!(",{amount},USD")))
                    .expect("a line per charge");
                assert!(line.starts_with(&today()), "{line}");
                line.split(',').nth(1).unwrap().to_owned()
            })
            .collect();
        assert!(references.iter().all(|reference| reference.starts_with("ch_")), "{references:?}");
        let reference = |index: usize| references[index].clone();

        // Gone wrong three ways: the second charge's line missing, the third's amount
        // differing, and a charge the ledger never saw.
        let edited = format!(
            "{}\n{}\n{},{},40.50,USD\n{},ch_ghost,9.99,USD\n",
            lines[0],
            lines.iter().find(|line| line.contains(&reference(0))).unwrap(),
            today(),
            reference(2),
            today(),
        );
        let report =
            reconcile(&app, json!({"account": "card_settlement", "currency": "USD", "csv": edited})).await;
        assert_eq!(
            statuses(&report),
            [
                (reference(0), "matched".to_owned()),
                (reference(2), "mismatched".to_owned()),
                ("ch_ghost".to_owned(), "unmatched".to_owned()),
            ],
            "{report:#}"
        );
        assert_eq!(report["lines"][0]["rule"], "reference");
        assert_eq!(report["lines"][1]["difference"], 50, "40.50 settled against 40.00 posted");
        let summary = &report["summary"];
        assert_eq!((summary["matched"].as_u64(), summary["mismatched"].as_u64()), (Some(1), Some(1)));
        assert_eq!(
            (summary["unmatched_lines"].as_u64(), summary["unmatched_transfers"].as_u64()),
            (Some(1), Some(1))
        );
        assert_eq!(summary["unmatched_lines_amount"], 999);
        assert_eq!(report["unmatched_transfers"][0]["reference"], reference(1));
        assert_eq!(report["unmatched_transfers"][0]["amount"], 2_500);
        assert_eq!(summary["overdue"], 0, "today's gaps may still settle");
        assert_eq!(overdue_events(&raw).await, 0);
        assert_eq!(
            raw.number("SELECT COUNT(*) FROM reconciled_transfers").await,
            1,
            "only the match is marked"
        );

        // Stored as answered; listed; exported.
        let id = report["id"].as_str().unwrap();
        let (status, stored) = app.get(&format!("/v1/reconciliations/{id}")).await;
        assert_eq!((status, &stored), (200, &report));
        let (status, list) = app.get("/v1/reconciliations").await;
        assert_eq!(status, 200);
        assert_eq!(list[0]["id"], id);
        assert_eq!(list[0]["mismatched"], 1);
        let response = app
            .client
            .get(app.url(&format!("/v1/reconciliations/{id}/report.csv")))
            .bearer_auth(&app.admin_key);
        let csv = response.send().await.unwrap().text().await.unwrap();
        let rows: Vec<&str> = csv.lines().collect();
        assert_eq!(rows[0], "side,line,date,reference,amount,status,rule,transfer_ids,difference");
        assert_eq!(rows.len(), 1 + 3 + 1, "{csv}");
        assert!(
            rows[2].starts_with("settlement,3,")
                && rows[2].contains(",mismatched,reference,")
                && rows[2].ends_with(",50"),
            "{csv}"
        );
        assert!(rows[4].starts_with("ledger,,") && rows[4].contains(&reference(1)), "{csv}");

        // The whole file again: what was matched says so, the rest matches now.
        let report =
            reconcile(&app, json!({"account": "card_settlement", "currency": "USD", "csv": file})).await;
        let mut outcome = statuses(&report);
        outcome.sort();
        let mut expected = vec![
            (reference(0), "already_reconciled".to_owned()),
            (reference(1), "matched".to_owned()),
            (reference(2), "matched".to_owned()),
        ];
        expected.sort();
        assert_eq!(outcome, expected, "{report:#}");
        assert_eq!(report["summary"]["unmatched_transfers"], 0);
        assert_eq!(raw.number("SELECT COUNT(*) FROM reconciled_transfers").await, 3);

        // No reference column: amount and date find the transfer.
        customer::top_up(&app, &session, &wallet, 777).await;
        let bare = format!("date,amount\n{},7.77\n", today());
        let report = reconcile(
            &app,
            json!({"account": "card_settlement", "currency": "USD", "csv": bare,
                   "columns": {"date": "date", "amount": "amount"}}),
        )
        .await;
        assert_eq!(report["lines"][0]["status"], "matched", "{report:#}");
        assert_eq!(report["lines"][0]["rule"], "amount_date");

        // Payouts, netted by the bank into one line for the day.
        withdraw(&app, &session, &wallet, 500).await;
        withdraw(&app, &session, &wallet, 700).await;
        let netted = settlement(&app, "payouts", true).await;
        assert_eq!(netted.lines().count(), 2, "{netted}");
        assert!(netted.contains(",12.00,USD"), "{netted}");
        let report = reconcile(&app, json!({"account": "payouts", "currency": "USD", "csv": netted})).await;
        assert_eq!(report["lines"][0]["status"], "matched", "{report:#}");
        assert_eq!(report["lines"][0]["rule"], "netted");
        assert_eq!(report["lines"][0]["transfer_ids"].as_array().unwrap().len(), 2);
        assert_eq!(report["summary"]["unmatched_transfers"], 0);

        // A line ten days old that nothing matches: overdue, and operators are told — the
        // event, and every admin's inbox.
        let ops = register_and_login(&app, "ops@example.com").await;
        let (status, _) = app
            .call(
                reqwest::Method::PUT,
                &format!("/v1/customers/{}/role", ops.customer_id),
                Some(&app.admin_key),
                Some(&json!({"role": "admin"})),
            )
            .await;
        assert_eq!(status, 200);
        let old = format!("date,reference,amount,currency\n{},ch_lost,1.00,USD\n", days_ago(10));
        let report =
            reconcile(&app, json!({"account": "card_settlement", "currency": "USD", "csv": old})).await;
        assert_eq!(report["summary"]["overdue"], 1, "{report:#}");
        assert_eq!(overdue_events(&raw).await, 1);
        let payload = raw
            .number("SELECT COUNT(*) FROM outbox WHERE type = 'coffer.reconciliation.unmatched' AND customer_id IS NULL")
            .await;
        assert_eq!(payload, 1, "an operators' event");
        common::relayed(&app.store().await).await;
        let (status, inbox) = customer::get(&app, &ops, "/v1/notifications").await;
        assert_eq!(status, 200, "{inbox}");
        let told: Vec<&Value> = inbox["data"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|entry| entry["kind"] == "reconciliation_unmatched")
            .collect();
        assert_eq!(told.len(), 1, "{inbox}");
        assert!(told[0]["body"].as_str().unwrap().contains(report["id"].as_str().unwrap()), "{inbox}");
        let (_, theirs) = customer::get(&app, &session, "/v1/notifications").await;
        assert!(
            theirs["data"]
                .as_array()
                .unwrap()
                .iter()
                .all(|entry| entry["kind"] != "reconciliation_unmatched"),
            "customers are not told: {theirs}"
        );
        app.stop().await;
    }
}

#[tokio::test]
async fn bad_files_and_callers_are_refused_and_change_nothing() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let raw = Raw::new(&app);
        let session = register_and_login(&app, "nosy@example.com").await;
        let good = json!({"account": "card_settlement", "currency": "USD", "csv": "date,reference,amount,currency\n2026-01-02,ch_x,1.00,USD\n"});
        let (status, body) = customer::post(&app, &session, "/v1/reconciliations", &good).await;
        assert_problem(status, &body, 403, "forbidden");
        let (status, body) = customer::get(
            &app,
            &session,
            "/v1/admin/mock-provider/settlement?account=payouts&currency=USD&from=2026-01-01&to=2026-01-02",
        )
        .await;
        assert_problem(status, &body, 403, "forbidden");
        for (change, code, field) in [
            (json!({"csv": "when,amount\n2026-01-02,1\n"}), "settlement_unreadable", None),
            (json!({"csv": "date,reference,amount,currency\n"}), "settlement_unreadable", None),
            (json!({"currency": "XXX"}), "validation_failed", Some("/currency")),
            (json!({"window_days": 99}), "validation_failed", Some("/window_days")),
            (json!({"rules": ["reference", "reference"]}), "validation_failed", Some("/rules")),
            (json!({"rules": []}), "validation_failed", Some("/rules")),
            (json!({"decimal": ",", "delimiter": ","}), "validation_failed", Some("/delimiter")),
        ] {
            let mut body = good.clone();
            for (key, value) in change.as_object().unwrap() {
                body[key] = value.clone();
            }
            let (status, problem) = app.post("/v1/reconciliations", &body).await;
            assert_problem(status, &problem, 422, code);
            if let Some(field) = field {
                assert_eq!(problem["errors"][0]["field"], field, "{problem}");
            }
        }
        let (status, problem) =
            app.post("/v1/reconciliations", &json!({"account": "bank", "currency": "USD", "csv": ""})).await;
        assert_eq!(status, 422, "{problem}");
        let (status, problem) = app.get(&format!("/v1/reconciliations/{}", Uuid::now_v7())).await;
        assert_problem(status, &problem, 404, "reconciliation_not_found");
        let (status, problem) =
            app.get("/v1/admin/mock-provider/settlement?account=payouts&currency=USD&from=2026-01-02&to=2026-01-01").await;
        assert_problem(status, &problem, 422, "validation_failed");
        assert_eq!(raw.number("SELECT COUNT(*) FROM reconciliations").await, 0);
        // A file whose lines are all rejected is refused; one with some is not.
        let mixed = json!({"account": "card_settlement", "currency": "USD",
                           "csv": "date,reference,amount,currency\n2026-01-02,ch_x,1.00,EUR\n2026-01-02,ch_y,2.00,USD\n"});
        let report = reconcile(&app, mixed).await;
        assert_eq!(report["rejected"][0]["line"], 2, "{report:#}");
        assert_eq!(report["summary"]["lines"], 1);
        app.stop().await;
    }
}
