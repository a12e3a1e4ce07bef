//! Credit reports end to end, on both backends, against the sandbox bureau (its scenarios
//! chosen by email tags): consent pulls a report at once and then on the refresh schedule,
//! a changed score is told in the inbox, a thin file has no score, a bureau that is down
//! leaves the consent recorded with its error and no report, and withdrawing consent stops
//! the pulls — the reports are kept for the retention period, then deleted.

mod common;

use std::time::Duration;

use common::{Options, Session, TestApp, assert_problem, backends, register_and_login, spawn_app_with};
use serde_json::Value;

async fn call(app: &TestApp, session: &Session, method: reqwest::Method, path: &str) -> (u16, Value) {
    app.call(method, path, Some(&session.access_token), None).await
}

/// Polls `GET /v1/credit/report` until `done` holds (or gives up after five seconds).
async fn report_until(app: &TestApp, session: &Session, done: impl Fn(u16, &Value) -> bool) -> (u16, Value) {
    let mut last = (0, Value::Null);
    for _ in 0..500 {
        last = call(app, session, reqwest::Method::GET, "/v1/credit/report").await;
        if done(last.0, &last.1) {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the report never got there: {last:?}");
}

#[tokio::test]
async fn consent_pulls_now_and_on_schedule_and_tells_a_changed_score() {
    for backend in backends() {
        let options = Options { configure: |args| args.credit_refresh_s = 1, ..Options::default() };
        let app = spawn_app_with(&backend, options).await;
        let ada = register_and_login(&app, "ada+score-drop@example.com").await;
        let (status, problem) = call(&app, &ada, reqwest::Method::GET, "/v1/credit/report").await;
        assert_problem(status, &problem, 404, "credit_report_not_found");

        let (status, consent) = call(&app, &ada, reqwest::Method::POST, "/v1/credit/consent").await;
        assert_eq!(status, 201, "{consent}");
        assert_eq!(
            (&consent["status"], &consent["last_error"]),
            (&"active".into(), &Value::Null),
            "{consent}"
        );
        let (status, report) = call(&app, &ada, reqwest::Method::GET, "/v1/credit/report").await;
        assert_eq!(status, 200, "{report}");
        let first = report["score"].as_u64().unwrap();
        assert!((560..=820).contains(&first), "{report}");
        assert_eq!(report["bureau"], "sandbox");
        assert_eq!(report["factors"].as_array().unwrap().len(), 3);
        assert_eq!(report["history"], serde_json::json!([]));

        // The workers pull again after the refresh period: the sandbox drops the score by 40.
        let (_, report) =
            report_until(&app, &ada, |_, report| !report["history"].as_array().unwrap().is_empty()).await;
        assert_eq!(report["score"].as_u64().unwrap(), first - 40, "{report}");
        assert_eq!(report["history"][0]["score"].as_u64().unwrap(), first);
        let mut told = false;
        for _ in 0..500 {
            let (_, inbox) = call(&app, &ada, reqwest::Method::GET, "/v1/notifications").await;
            if let Some(message) =
                inbox["data"].as_array().unwrap().iter().find(|n| n["kind"] == "credit_score_changed")
            {
                assert!(
                    message["body"].as_str().unwrap().contains(&format!("from {first} before")),
                    "{message}"
                );
                told = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(told, "the change reached the inbox");

        // Withdrawn: no more pulls; the reports stay for the retention period (30 days).
        let (status, withdrawn) = call(&app, &ada, reqwest::Method::DELETE, "/v1/credit/consent").await;
        assert_eq!(status, 200, "{withdrawn}");
        assert_eq!((&withdrawn["status"], &withdrawn["next_pull_at"]), (&"withdrawn".into(), &Value::Null));
        assert!(withdrawn["reports_deleted_after"].is_string(), "{withdrawn}");
        let (_, before) = call(&app, &ada, reqwest::Method::GET, "/v1/credit/report").await;
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        let (status, after) = call(&app, &ada, reqwest::Method::GET, "/v1/credit/report").await;
        assert_eq!(status, 200, "kept for the retention period: {after}");
        assert_eq!(before["id"], after["id"], "no pull after withdrawal");
        let (status, problem) = call(&app, &ada, reqwest::Method::DELETE, "/v1/credit/consent").await;
        assert_problem(status, &problem, 404, "credit_consent_not_found");
        app.stop().await;
    }
}

#[tokio::test]
async fn thin_files_bureau_outages_and_deletion_after_retention() {
    for backend in backends() {
        let options = Options { configure: |args| args.credit_retention_days = 0, ..Options::default() };
        let app = spawn_app_with(&backend, options).await;

        let thin = register_and_login(&app, "tom+thin-file@example.com").await;
        let (status, consent) = call(&app, &thin, reqwest::Method::POST, "/v1/credit/consent").await;
        assert_eq!(status, 201);
        let (status, report) = call(&app, &thin, reqwest::Method::GET, "/v1/credit/report").await;
        assert_eq!(status, 200, "{report}");
        // Asking again while consent is in force changes nothing and pulls nothing.
        let (status, again) = call(&app, &thin, reqwest::Method::POST, "/v1/credit/consent").await;
        assert_eq!((status, &again["granted_at"]), (201, &consent["granted_at"]), "{again}");
        let (_, same) = call(&app, &thin, reqwest::Method::GET, "/v1/credit/report").await;
        assert_eq!(same["id"], report["id"], "no second pull");
        assert_eq!((&report["score"], &report["band"]), (&Value::Null, &"no_score".into()), "{report}");
        assert_eq!(report["factors"][0]["code"], "thin_file");

        let down = register_and_login(&app, "bo+bureau-down@example.com").await;
        let (status, consent) = call(&app, &down, reqwest::Method::POST, "/v1/credit/consent").await;
        assert_eq!(status, 201, "the consent is recorded: {consent}");
        assert!(consent["last_error"].as_str().unwrap().contains("unavailable"), "{consent}");
        assert!(consent["next_pull_at"].is_string(), "retried later: {consent}");
        let (status, problem) = call(&app, &down, reqwest::Method::GET, "/v1/credit/report").await;
        assert_problem(status, &problem, 404, "credit_report_not_found");
        let (status, again) = call(&app, &down, reqwest::Method::GET, "/v1/credit/consent").await;
        assert_eq!((status, &again["last_error"]), (200, &consent["last_error"]));

        // With no retention, a withdrawal's reports go at the next maintenance pass.
        let (status, _) = call(&app, &thin, reqwest::Method::DELETE, "/v1/credit/consent").await;
        assert_eq!(status, 200);
        let (status, problem) = report_until(&app, &thin, |status, _| status == 404).await;
        assert_problem(status, &problem, 404, "credit_report_not_found");
        // Consent again: a new report at once.
        let (status, _) = call(&app, &thin, reqwest::Method::POST, "/v1/credit/consent").await;
        assert_eq!(status, 201);
        let (status, report) = call(&app, &thin, reqwest::Method::GET, "/v1/credit/report").await;
        assert_eq!((status, &report["history"]), (200, &serde_json::json!([])), "{report}");
        app.stop().await;
    }
}
