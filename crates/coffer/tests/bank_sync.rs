//! Bank connections over real HTTP, with the built-in sandbox aggregator: link → accounts
//! → sync makes categorised expenses with source `bank_sync`; re-syncing (and re-linking
//! the same bank) adds nothing; the workers sync on their own; racing syncs (requests and
//! the workers of three processes) record each transaction once; a bank that wants a login
//! is a 4xx problem; a flaky bank is retried with `last_error` visible meanwhile; someone
//! else's connection is a 404 — on SQLite and, when configured, PostgreSQL.
//!
//! (`bank.rs` is the ledger's bank-workload proof, unrelated.)

mod common;

use std::time::Duration;

use coffer::config::ProcessRole;
use common::customer::{get, post, send, synced_expenses};
use common::{Options, Session, TestApp, backends, register_and_login, spawn_app_with};
use serde_json::{Value, json};

async fn sync(app: &TestApp, session: &Session, id: &str) -> Value {
    let (status, report) =
        send(app, session, reqwest::Method::POST, &format!("/v1/bank-connections/{id}/sync"), None).await;
    assert_eq!(status, 200, "{report}");
    report
}

async fn link(app: &TestApp, session: &Session, institution: &str) -> Value {
    let (status, connection) =
        post(app, session, "/v1/bank-connections", &json!({"institution_id": institution})).await;
    assert_eq!(status, 201, "{connection}");
    connection
}

/// Without the workers role: only requests sync, so counts are exact.
fn api_only() -> Options {
    Options {
        configure: |args| args.roles = vec![ProcessRole::Api, ProcessRole::Relay],
        ..Options::default()
    }
}

/// With the workers, syncing every second (retries from a sixteenth of that).
fn with_workers() -> Options {
    Options { configure: |args| args.bank_sync_interval_s = 1, ..Options::default() }
}

async fn category(app: &TestApp, session: &Session, name: &str) -> Value {
    let (_, all) = get(app, session, "/v1/categories").await;
    all.as_array().unwrap().iter().find(|c| c["name"] == name).unwrap()["id"].clone()
}

/// Polls connection `id` until `done` holds for it (at most ~30 s).
async fn wait_for(app: &TestApp, session: &Session, id: &str, done: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..3_000 {
        let (status, connection) = get(app, session, &format!("/v1/bank-connections/{id}")).await;
        assert_eq!(status, 200, "{connection}");
        if done(&connection) {
            return connection;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("connection {id} never got there");
}

#[tokio::test]
async fn link_sync_categorise_and_a_resync_adds_nothing() {
    for backend in backends() {
        let app = spawn_app_with(&backend, api_only()).await;
        let ada = register_and_login(&app, "ada@example.com").await;
        let eve = register_and_login(&app, "eve@example.com").await;

        let (status, institutions) = get(&app, &ada, "/v1/bank-institutions").await;
        assert_eq!(status, 200);
        let ids: Vec<&str> =
            institutions.as_array().unwrap().iter().map(|i| i["id"].as_str().unwrap()).collect();
        assert_eq!(ids, ["sandbox", "sandbox_login_required", "sandbox_flaky", "simplefin"]);

        let connection = link(&app, &ada, "sandbox").await;
        let id = connection["id"].as_str().unwrap().to_owned();
        assert_eq!(
            (connection["status"].as_str(), connection["provider"].as_str()),
            (Some("active"), Some("sandbox"))
        );
        assert!(connection["last_synced_at"].is_null() && connection["last_error"].is_null());
        let types: Vec<&str> =
            connection["accounts"].as_array().unwrap().iter().map(|a| a["type"].as_str().unwrap()).collect();
        assert_eq!(types, ["checking", "credit_card", "savings"], "{connection}");
        assert!(connection["accounts"][0]["mask"].as_str().is_some_and(|mask| mask.len() == 4));
        assert!(!connection.to_string().contains("access-sandbox"), "the aggregator's token stays inside");

        let report = sync(&app, &ada, &id).await;
        let added = report["added"].as_u64().unwrap();
        assert!(added > 100, "90 days of history: {report}");
        assert_eq!(
            (report["duplicates"].as_u64(), report["has_more"].as_bool()),
            (Some(0), Some(false)),
            "{report}"
        );
        assert!(report["accounts"].as_array().unwrap().iter().all(|a| a["error"].is_null()), "{report}");
        assert_eq!(report["connection"]["status"], "active");
        assert!(report["connection"]["last_synced_at"].is_string(), "{report}");
        assert!(
            report["connection"]["accounts"]
                .as_array()
                .unwrap()
                .iter()
                .all(|a| a["last_synced_at"].is_string())
        );

        let synced = synced_expenses(&app, &ada).await;
        assert_eq!(synced.len() as u64, added, "one expense per transaction");
        assert_eq!(synced.len(), history(&ada).await, "every transaction of the history");
        let coffee = category(&app, &ada, "Coffee Shops").await;
        let starbucks: Vec<&Value> = synced.iter().filter(|e| e["merchant"] == "Starbucks").collect();
        assert!(!starbucks.is_empty(), "a Monday coffee every week");
        for expense in &starbucks {
            assert_eq!(expense["category_id"], coffee, "{expense}");
            assert_eq!(expense["categorized_by"], "merchant", "{expense}");
            assert!(expense["amount"].as_i64().unwrap() > 0, "stored as a positive expense: {expense}");
            assert_eq!(expense["mcc"], "5814");
        }
        let salary = category(&app, &ada, "Salary").await;
        assert!(
            synced.iter().any(|e| e["merchant"] == "ACME Corp Payroll" && e["category_id"] == salary),
            "salary credits are income"
        );
        let uncategorised = category(&app, &ada, "Uncategorised").await;
        // Local shops the dictionary does not know, without an MCC (one of them turns up
        // in 90 days of any seed with overwhelming likelihood).
        let unknown: Vec<&Value> = synced
            .iter()
            .filter(|e| e["merchant"] == "Blue Ridge Artisan Co" || e["merchant"] == "Corner Deli")
            .collect();
        assert!(!unknown.is_empty());
        for expense in unknown {
            assert_eq!(expense["category_id"], uncategorised, "{expense}");
        }

        // Again: nothing new (new transactions are booked at midnight UTC).
        let again = sync(&app, &ada, &id).await;
        assert_eq!((again["added"].as_u64(), again["duplicates"].as_u64()), (Some(0), Some(0)), "{again}");
        assert_eq!(synced_expenses(&app, &ada).await.len() as u64, added);

        // The same bank linked twice: refused. Unlinked and linked again: the new link starts
        // from the beginning of the history, and every transaction is a duplicate.
        let (status, body) =
            post(&app, &ada, "/v1/bank-connections", &json!({"institution_id": "sandbox"})).await;
        common::assert_problem(status, &body, 409, "bank_connection_exists");
        let (status, _) =
            send(&app, &ada, reqwest::Method::DELETE, &format!("/v1/bank-connections/{id}"), None).await;
        assert_eq!(status, 204);
        let (status, _) = get(&app, &ada, &format!("/v1/bank-connections/{id}")).await;
        assert_eq!(status, 404);
        assert_eq!(synced_expenses(&app, &ada).await.len() as u64, added, "unlinking keeps the history");
        let relinked = link(&app, &ada, "sandbox").await;
        let relinked_id = relinked["id"].as_str().unwrap().to_owned();
        let replay = sync(&app, &ada, &relinked_id).await;
        assert_eq!(
            (replay["added"].as_u64(), replay["duplicates"].as_u64()),
            (Some(0), Some(added)),
            "{replay}"
        );

        // Someone else's connection does not exist for Eve; her list is empty.
        for method in [reqwest::Method::GET, reqwest::Method::DELETE] {
            let (status, body) =
                send(&app, &eve, method, &format!("/v1/bank-connections/{relinked_id}"), None).await;
            common::assert_problem(status, &body, 404, "bank_connection_not_found");
        }
        let (status, body) = send(
            &app,
            &eve,
            reqwest::Method::POST,
            &format!("/v1/bank-connections/{relinked_id}/sync"),
            None,
        )
        .await;
        common::assert_problem(status, &body, 404, "bank_connection_not_found");
        let (_, list) = get(&app, &eve, "/v1/bank-connections").await;
        assert_eq!(list["data"].as_array().unwrap().len(), 0, "{list}");
        let (_, list) = get(&app, &ada, "/v1/bank-connections?limit=1").await;
        assert_eq!(
            (list["data"][0]["id"].as_str(), list["has_more"].as_bool()),
            (Some(relinked_id.as_str()), Some(false))
        );

        // Banks that say no, and requests that make no sense.
        let (status, body) =
            post(&app, &ada, "/v1/bank-connections", &json!({"institution_id": "sandbox_login_required"}))
                .await;
        common::assert_problem(status, &body, 422, "bank_login_required");
        let (status, body) =
            post(&app, &ada, "/v1/bank-connections", &json!({"institution_id": "first_national"})).await;
        common::assert_problem(status, &body, 422, "bank_institution_unknown");
        let wrong =
            json!({"institution_id": "sandbox", "credentials": {"username": "ada", "password": "hunter2"}});
        let (status, body) = post(&app, &ada, "/v1/bank-connections", &wrong).await;
        common::assert_problem(status, &body, 422, "bank_credentials_invalid");
        let extra = json!({"institution_id": "sandbox", "customer_id": eve.customer_id});
        let (status, body) = post(&app, &ada, "/v1/bank-connections", &extra).await;
        common::assert_problem(status, &body, 422, "validation_failed");
        let (status, body) = post(&app, &ada, "/v1/bank-connections", &json!({"institution_id": ""})).await;
        common::assert_problem(status, &body, 422, "validation_failed");
        let (status, body) = get(&app, &ada, "/v1/bank-connections?cursor=nonsense").await;
        common::assert_problem(status, &body, 400, "invalid_parameter");
        // Another login to the same bank is another link; up to the limit.
        let mut statuses = Vec::new();
        for index in 0..10 {
            let body = json!({"institution_id": "sandbox", "credentials": {"username": format!("user{index}"), "password": "pass_good"}});
            statuses.push(post(&app, &ada, "/v1/bank-connections", &body).await.0);
        }
        assert_eq!(statuses, [201, 201, 201, 201, 201, 201, 201, 201, 201, 422], "ten connections at most");
        app.stop().await;
    }
}

#[tokio::test]
async fn a_flaky_bank_is_retried_until_it_works() {
    for backend in backends() {
        // By hand: the first two calls per account fail, the third works.
        let app = spawn_app_with(&backend, api_only()).await;
        let ada = register_and_login(&app, "ada@example.com").await;
        let id = link(&app, &ada, "sandbox_flaky").await["id"].as_str().unwrap().to_owned();
        for attempt in 1..=2 {
            let report = sync(&app, &ada, &id).await;
            assert_eq!(report["added"], 0, "{report}");
            assert!(
                report["accounts"].as_array().unwrap().iter().all(|a| a["error"] == "bank_unavailable"),
                "{report}"
            );
            let (_, connection) = get(&app, &ada, &format!("/v1/bank-connections/{id}")).await;
            assert_eq!(
                (connection["status"].as_str(), connection["last_error"].as_str()),
                (Some("error"), Some("bank_unavailable")),
                "attempt {attempt}: {connection}"
            );
            assert!(connection["last_synced_at"].is_null());
        }
        let report = sync(&app, &ada, &id).await;
        assert!(report["added"].as_u64().unwrap() > 100, "{report}");
        assert_eq!(
            (report["connection"]["status"].as_str(), report["connection"]["last_error"].as_str()),
            (Some("active"), None),
            "{report}"
        );
        app.stop().await;

        // By the workers, with backoff: the error shows, then the sync goes through.
        let app = spawn_app_with(&backend, with_workers()).await;
        let ada = register_and_login(&app, "ada@example.com").await;
        let id = link(&app, &ada, "sandbox_flaky").await["id"].as_str().unwrap().to_owned();
        let failing = wait_for(&app, &ada, &id, |c| c["last_error"] == "bank_unavailable").await;
        assert_eq!(failing["status"], "error", "{failing}");
        let synced = wait_for(&app, &ada, &id, |c| c["last_synced_at"].is_string()).await;
        assert!(synced_expenses(&app, &ada).await.len() > 100, "{synced}");
        app.stop().await;
    }
}

/// How many transactions the sandbox holds for `session`'s default link, asked directly.
async fn history(session: &Session) -> usize {
    use coffer::finance::banks::{Aggregator, LinkRequest, sandbox::Sandbox};
    let sandbox = Sandbox::default();
    let customer_id = session.customer_id.parse().unwrap();
    let request =
        LinkRequest { institution_id: "sandbox".into(), credentials: None, setup_token: None, customer_id };
    let link = sandbox.link(request).await.unwrap();
    let mut count = 0;
    for account in sandbox.accounts(&link.access_token).await.unwrap() {
        let mut cursor = None;
        loop {
            let page =
                sandbox.transactions(&link.access_token, &account.id, cursor.as_deref(), 500).await.unwrap();
            count += page.added.len();
            cursor = Some(page.next_cursor);
            if !page.has_more {
                break;
            }
        }
    }
    count
}

/// The server's workers sync a new link on their own; then syncs race — requests, the
/// server's worker and the workers of two more "processes" on the same database — and
/// each transaction is still recorded once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_workers_sync_on_their_own_and_racing_syncs_record_each_transaction_once() {
    use coffer::finance::banks::{sandbox::Sandbox, sync::Banks};
    use std::sync::Arc;

    for backend in backends() {
        let app = spawn_app_with(&backend, with_workers()).await;
        let ada = register_and_login(&app, "ada@example.com").await;
        let id = link(&app, &ada, "sandbox").await["id"].as_str().unwrap().to_owned();
        let synced = wait_for(&app, &ada, &id, |c| c["last_synced_at"].is_string()).await;
        assert_eq!(synced["status"], "active");
        let count = synced_expenses(&app, &ada).await.len();
        assert!(count > 100, "the worker synced the history: {count}");

        let bob = register_and_login(&app, "bob@example.com").await;
        let id = link(&app, &bob, "sandbox").await["id"].as_str().unwrap().to_owned();
        let store = app.store().await;
        let workers: Vec<Banks> = (0..2)
            .map(|_| Banks::new(store.clone(), Arc::new(Sandbox::default()), Duration::from_secs(1)))
            .collect();
        let requests = (0..4).map(|_| {
            let request = app
                .client
                .post(app.url(&format!("/v1/bank-connections/{id}/sync")))
                .bearer_auth(&bob.access_token);
            async move { common::read(request.send().await.unwrap()).await }
        });
        let racing = workers.iter().map(|worker| async move {
            for _ in 0..20 {
                worker.step().await.unwrap();
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        });
        let (answers, _) =
            futures::future::join(futures::future::join_all(requests), futures::future::join_all(racing))
                .await;
        for (status, body) in &answers {
            assert!(*status == 200 || *status == 409, "{status} {body}");
            if *status == 409 {
                common::assert_problem(*status, body, 409, "bank_sync_in_progress");
            }
        }
        wait_for(&app, &bob, &id, |c| c["last_synced_at"].is_string()).await;
        let recorded = synced_expenses(&app, &bob).await.len();
        assert_eq!(recorded, history(&bob).await, "each transaction recorded once, none lost");
        store.close().await;
        app.stop().await;
    }
}
