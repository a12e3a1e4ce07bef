//! `coffer verify` on real databases (SQLite, and PostgreSQL when configured): books made
//! through the API are clean, and each check finds exactly the thing broken by hand in
//! them (then the edit is undone and the books are clean again). The binary is run too:
//! its JSON, and its exit status.

mod common;

use coffer::verify::{self, Verification};
use common::{Raw, Session, TestApp, backends, new_id, register_and_login, spawn_app};
use serde_json::{Value, json};
use uuid::Uuid;

/// POSTs as the customer with a fresh Idempotency-Key; returns the body of a 201.
async fn post(app: &TestApp, session: &Session, path: &str, body: &Value) -> Value {
    let (status, body) = common::customer::keyed_post(app, session, path, body).await;
    assert_eq!(status, 201, "{path}: {body}");
    body
}

async fn ledger_post(app: &TestApp, path: &str, body: &Value) {
    let (status, body) = app.post(path, body).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["results"].as_array().unwrap().iter().all(|r| r["result"] == "ok"), "{body}");
}

/// Books with every kind of money movement: wallets (one a credit card), top-ups, P2P
/// transfers, a merchant payment, a withdrawal, and on the ledger API a posted and a
/// still-open pending transfer. Returns Alice's wallet, Bob's, and the open pending one.
async fn books(app: &TestApp) -> (Uuid, Uuid, Uuid) {
    let alice = register_and_login(app, &format!("alice-{}@example.com", new_id())).await;
    let bob = register_and_login(app, &format!("bob-{}@example.com", new_id())).await;
    let a = post(app, &alice, "/v1/wallets", &json!({"currency": "USD"})).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let b =
        post(app, &bob, "/v1/wallets", &json!({"currency": "USD"})).await["id"].as_str().unwrap().to_owned();
    post(app, &bob, "/v1/wallets", &json!({"currency": "USD", "type": "credit_card", "credit_limit": 5_000}))
        .await;
    post(
        app,
        &alice,
        &format!("/v1/wallets/{a}/top-ups"),
        &json!({"amount": 10_000, "payment_method": "tok_visa"}),
    )
    .await;
    for amount in [1_000, 250] {
        post(
            app,
            &alice,
            "/v1/transfers",
            &json!({"from_wallet_id": a, "to_wallet_id": b, "amount": amount}),
        )
        .await;
    }
    post(
        app,
        &alice,
        &format!("/v1/wallets/{a}/payments"),
        &json!({"amount": 300, "merchant": "Corner Shop", "mcc": "5411"}),
    )
    .await;
    post(
        app,
        &bob,
        &format!("/v1/wallets/{b}/withdrawals"),
        &json!({"amount": 200, "destination": "ba_checking"}),
    )
    .await;
    let (x, y, open) = (new_id(), new_id(), new_id());
    ledger_post(
        app,
        "/v1/ledger/accounts",
        &json!([{"id": x, "ledger": 9, "code": 1}, {"id": y, "ledger": 9, "code": 1, "flags": ["history"]}]),
    )
    .await;
    let posted = new_id();
    ledger_post(
        app,
        "/v1/ledger/transfers",
        &json!([
            {"id": posted, "debit_account_id": x, "credit_account_id": y, "amount": 70, "ledger": 9, "code": 1, "flags": ["pending"]},
            {"id": new_id(), "pending_id": posted, "amount": 50, "flags": ["post_pending_transfer"]},
            {"id": open, "debit_account_id": x, "credit_account_id": y, "amount": 30, "ledger": 9, "code": 1, "flags": ["pending"]},
        ]),
    )
    .await;
    (a.parse().unwrap(), b.parse().unwrap(), open.parse().unwrap())
}

async fn run(app: &TestApp) -> Verification {
    let store = app.store().await;
    let verification = verify::verify(&store, |_| {}).await.unwrap();
    store.close().await;
    verification
}

/// The checks with findings, by name.
fn found(verification: &Verification) -> Vec<&str> {
    verification.checks.iter().filter(|(_, count)| **count > 0).map(|(check, _)| check.as_str()).collect()
}

#[tokio::test]
async fn books_made_through_the_api_are_clean_and_each_check_finds_what_was_broken() {
    for backend in backends() {
        let mut app = spawn_app(&backend).await;
        let (alice, bob, open) = books(&app).await;
        // Beside a running server: one snapshot.
        let clean = run(&app).await;
        assert!(clean.is_clean(), "{backend:?}: {:?}", clean.findings);
        assert_eq!(clean.wallets, 3);
        assert!(clean.transfers >= 9 && clean.accounts >= 8, "{clean:?}");
        assert_eq!(clean.checks.len(), verify::check_names().count());

        // Break one thing at a time with the server stopped, verify, undo, verify again.
        app.stop_server().await;
        let raw = Raw::new(&app);
        let (a, b, o) = (raw.id(alice), raw.id(bob), raw.id(open));
        let first_snapshot = format!("(SELECT MIN(timestamp) FROM account_balances WHERE account_id = {a})");
        let last = "(SELECT MAX(timestamp) FROM transfers)";
        let some_transfer = format!("(SELECT MIN(timestamp) FROM transfers WHERE debit_account_id = {b})");
        let cases: Vec<(Vec<&str>, String, String, Uuid)> = vec![
            (
                // Debits and credits moved together: the ledger balances, the account does not.
                vec!["account_balances"],
                format!(
                    "UPDATE accounts SET debits_posted = debits_posted + 5, credits_posted = credits_posted + 5 WHERE id = {a}"
                ),
                format!(
                    "UPDATE accounts SET debits_posted = debits_posted - 5, credits_posted = credits_posted - 5 WHERE id = {a}"
                ),
                alice,
            ),
            (
                vec!["ledger_balanced", "account_balances"],
                format!("UPDATE accounts SET credits_posted = credits_posted + 1 WHERE id = {a}"),
                format!("UPDATE accounts SET credits_posted = credits_posted - 1 WHERE id = {a}"),
                alice,
            ),
            (
                vec!["balance_history"],
                format!(
                    "UPDATE account_balances SET credits_posted = credits_posted + 1 WHERE account_id = {a} AND timestamp = {first_snapshot}"
                ),
                format!(
                    "UPDATE account_balances SET credits_posted = credits_posted - 1 WHERE account_id = {a} AND timestamp = {first_snapshot}"
                ),
                alice,
            ),
            (
                // An overdraft of Bob's wallet written after everything, balances made to agree:
                // the transfer is in no link of the hash chain either.
                vec!["account_limits", "hash_chain"],
                format!(
                    "INSERT INTO transfers (timestamp, id, debit_account_id, credit_account_id, amount, pending_id, \
                     user_data_128, user_data_64, user_data_32, timeout, ledger, code, flags) \
                     SELECT MAX(timestamp) + 1, {x}, {b}, {a}, 1000000, {nil}, {nil}, 0, 0, 0, 840, 1, 0 FROM transfers; \
                     UPDATE accounts SET debits_posted = debits_posted + 1000000 WHERE id = {b}; \
                     UPDATE accounts SET credits_posted = credits_posted + 1000000 WHERE id = {a}",
                    x = raw.id(Uuid::from_u128(0xbad)),
                    nil = raw.id(Uuid::nil()),
                ),
                format!(
                    "DELETE FROM transfers WHERE timestamp = {last}; \
                     UPDATE accounts SET debits_posted = debits_posted - 1000000 WHERE id = {b}; \
                     UPDATE accounts SET credits_posted = credits_posted - 1000000 WHERE id = {a}"
                ),
                bob,
            ),
            (
                vec!["pending_resolution"],
                format!("UPDATE pending_transfers SET status = 'voided' WHERE id = {o}"),
                format!("UPDATE pending_transfers SET status = 'pending' WHERE id = {o}"),
                open,
            ),
            (
                // An edited transfer no longer hashes to its link either.
                vec!["transfer_accounts", "hash_chain"],
                format!("UPDATE transfers SET ledger = 7 WHERE timestamp = {some_transfer}"),
                "UPDATE transfers SET ledger = 840 WHERE ledger = 7".to_owned(),
                Uuid::nil(),
            ),
            (
                vec!["wallet_accounts"],
                // debits_must_not_exceed_credits (2) without history (8).
                format!("UPDATE accounts SET flags = 2 WHERE id = {a}"),
                format!("UPDATE accounts SET flags = 10 WHERE id = {a}"),
                alice,
            ),
            (
                vec!["note_transfers"],
                format!(
                    "INSERT INTO transfer_notes (transfer_id, kind, description) VALUES ({}, 'transfer', NULL)",
                    raw.id(Uuid::from_u128(0xfeed))
                ),
                format!("DELETE FROM transfer_notes WHERE transfer_id = {}", raw.id(Uuid::from_u128(0xfeed))),
                Uuid::from_u128(0xfeed),
            ),
        ];
        for (mut expected, break_it, undo, subject) in cases {
            expected.sort_unstable();
            raw.run(&break_it).await;
            let broken = run(&app).await;
            assert_eq!(found(&broken), expected, "{backend:?}: {break_it}\n{:#?}", broken.findings);
            if subject != Uuid::nil() {
                assert!(
                    broken.findings.iter().any(|finding| finding.id == subject),
                    "{backend:?}: {break_it}: no finding names {subject}: {:#?}",
                    broken.findings
                );
            }
            raw.run(&undo).await;
            let mended = run(&app).await;
            assert!(mended.is_clean(), "{backend:?}: after {undo}: {:?}", mended.findings);
        }

        // Tamper evidence: one amount edited names the batch it was committed in, and a
        // forged link is found too.
        let top_up =
            raw.number(&format!("SELECT MIN(timestamp) FROM transfers WHERE credit_account_id = {a}")).await;
        let seq = raw
            .number(&format!("SELECT seq FROM ledger_chain WHERE first_timestamp <= {top_up} AND last_timestamp >= {top_up}"))
            .await;
        raw.run(&format!("UPDATE transfers SET amount = amount + 1 WHERE timestamp = {top_up}")).await;
        let broken = run(&app).await;
        let chained: Vec<&verify::Finding> =
            broken.findings.iter().filter(|f| f.check == "hash_chain").collect();
        assert_eq!(chained.len(), 1, "{backend:?}: {:#?}", broken.findings);
        assert_eq!(chained[0].id, Uuid::from_u128(seq as u128), "{}", chained[0].detail);
        raw.run(&format!("UPDATE transfers SET amount = amount - 1 WHERE timestamp = {top_up}")).await;
        assert!(run(&app).await.is_clean());
        let last = raw.number("SELECT MAX(seq) FROM ledger_chain").await;
        assert!(
            last >= 6 && clean.links == last as u64 && clean.unchained == 0,
            "{backend:?}: {last} {clean:?}"
        );
        raw.run(&format!(
            "UPDATE ledger_chain SET hash = {} WHERE seq = {last}",
            if raw.postgres() {
                "decode(repeat('ab', 32), 'hex')".to_owned()
            } else {
                "randomblob(32)".to_owned()
            }
        ))
        .await;
        let forged = run(&app).await;
        assert_eq!(found(&forged), ["hash_chain"], "{backend:?}: {:#?}", forged.findings);
        assert_eq!(forged.findings[0].id, Uuid::from_u128(last as u128));
        app.stop().await;
    }
}

#[tokio::test]
async fn the_command_prints_json_and_exits_non_zero_on_a_finding() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let (alice, _, _) = books(&app).await;
        let command = |json: bool| {
            let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_coffer"));
            command.arg("verify").env("DATABASE_URL", app.database_url()).env("COFFER_LOG", "warn");
            if json {
                command.arg("--json");
            }
            command.output().unwrap()
        };
        let output = command(true);
        assert!(output.status.success(), "{backend:?}: {}", String::from_utf8_lossy(&output.stderr));
        let report: Value = serde_json::from_slice(&output.stdout).unwrap();
        assert_eq!(report["wallets"], 3);
        assert_eq!(report["findings"], json!([]));
        assert!(report["checks"].as_object().unwrap().values().all(|count| count == 0), "{report}");

        let raw = Raw::new(&app);
        raw.run(&format!("UPDATE accounts SET debits_posted = debits_posted + 1, credits_posted = credits_posted + 1 WHERE id = {}", raw.id(alice)))
            .await;
        let output = command(true);
        assert_eq!(output.status.code(), Some(1), "{backend:?}");
        let report: Value = serde_json::from_slice(&output.stdout).unwrap();
        assert_eq!(report["checks"]["account_balances"], 1, "{report}");
        assert_eq!(report["findings"][0]["id"], alice.to_string());
        let output = command(false);
        assert_eq!(output.status.code(), Some(1));
        let text = String::from_utf8(output.stdout).unwrap();
        assert!(text.contains("FINDINGS") && text.contains(&format!("account_balances {alice}")), "{text}");
        // No database is no pass.
        let empty = tempfile::tempdir().unwrap();
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_coffer"))
            .args(["verify", "--data-dir", empty.path().to_str().unwrap()])
            .env_remove("DATABASE_URL")
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&output.stderr).contains("no embedded database"));
        assert!(!empty.path().join("coffer.db").exists());
        app.stop().await;
    }
}

/// Starts a run over the API and waits (bounded) until it has a result.
async fn run_over_http(app: &TestApp) -> Value {
    let (status, run) = app.post("/v1/admin/verify", &json!(null)).await;
    assert_eq!((status, run["status"].as_str()), (202, Some("running")), "{run}");
    assert_eq!(run["origin"], "api");
    let path = format!("/v1/admin/verify/{}", run["id"].as_str().unwrap());
    for _ in 0..400 {
        let (status, run) = app.get(&path).await;
        assert_eq!(status, 200, "{run}");
        if run["status"] != "running" {
            return run;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("the run at {path} did not finish in 10 s");
}

#[tokio::test]
async fn admins_run_it_over_the_api_and_a_finding_is_announced() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let (alice, _, _) = books(&app).await;
        let clean = run_over_http(&app).await;
        assert_eq!(clean["status"], "clean", "{clean}");
        assert!(clean["finished_at"].is_string() && clean["error"].is_null(), "{clean}");
        assert_eq!(clean["report"]["wallets"], 3);
        assert_eq!(clean["report"]["findings"], json!([]));

        let raw = Raw::new(&app);
        let a = raw.id(alice);
        raw.run(&format!("UPDATE accounts SET debits_posted = debits_posted + 3, credits_posted = credits_posted + 3 WHERE id = {a}"))
            .await;
        let found = run_over_http(&app).await;
        assert_eq!(found["status"], "findings", "{found}");
        assert_eq!(found["report"]["checks"]["account_balances"], 1);
        assert_eq!(found["report"]["findings"][0]["id"], alice.to_string());

        // Newest first, both there.
        let (status, runs) = app.get("/v1/admin/verify?limit=5").await;
        assert_eq!(status, 200);
        let ids: Vec<&Value> = runs.as_array().unwrap().iter().map(|run| &run["id"]).collect();
        assert_eq!(ids, [&found["id"], &clean["id"]]);
        let (status, problem) = app.get(&format!("/v1/admin/verify/{}", new_id())).await;
        common::assert_problem(status, &problem, 404, "verify_run_not_found");
        let (status, problem) = app.get("/v1/admin/verify?limit=0").await;
        common::assert_problem(status, &problem, 422, "validation_failed");

        // The finding is an event in the outbox (for the relay, NATS and admins' webhooks).
        let store = app.store().await;
        let events = store.events_after(0, 1_000).await.unwrap();
        let announced: Vec<&store::StoredEvent> =
            events.iter().filter(|event| event.event_type == "coffer.verify.findings").collect();
        assert_eq!(announced.len(), 1, "{backend:?}");
        let payload: Value = serde_json::from_str(&announced[0].payload).unwrap();
        assert_eq!(
            payload["data"],
            json!({"run_id": found["id"], "findings": 1, "checks": ["account_balances"]})
        );
        assert_eq!(announced[0].customer_id, None);
        store.close().await;

        let metrics = app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
        assert!(metrics.contains("coffer_verify_runs_total{result=\"findings\"}"), "{metrics}");
        assert!(metrics.contains("coffer_verify_findings{check=\"account_balances\"} 1"), "{metrics}");
        app.stop().await;
    }
}

#[tokio::test]
async fn the_chain_head_moves_with_every_batch_and_matches_what_verify_checked() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let (status, empty) = app.get("/v1/ledger/chain/head").await;
        assert_eq!(status, 200, "{empty}");
        assert_eq!(
            empty,
            json!({"seq": 0, "hash": "0".repeat(64), "first_timestamp": 0, "last_timestamp": 0, "transfers": 0})
        );
        books(&app).await;
        let (_, head) = app.get("/v1/ledger/chain/head").await;
        let verified = run(&app).await;
        assert_eq!(head["seq"], verified.links, "{head}");
        let hash = head["hash"].as_str().unwrap();
        assert!(hash.len() == 64 && hash.chars().all(|c| c.is_ascii_hexdigit()) && hash != "0".repeat(64));
        // One more batch: the next link, another hash, its transfers counted.
        let (x, y) = (new_id(), new_id());
        ledger_post(
            &app,
            "/v1/ledger/accounts",
            &json!([{"id": x, "ledger": 5, "code": 1}, {"id": y, "ledger": 5, "code": 1}]),
        )
        .await;
        ledger_post(
            &app,
            "/v1/ledger/transfers",
            &json!([
                {"id": new_id(), "debit_account_id": x, "credit_account_id": y, "amount": 1, "ledger": 5, "code": 1},
                {"id": new_id(), "debit_account_id": y, "credit_account_id": x, "amount": 1, "ledger": 5, "code": 1},
            ]),
        )
        .await;
        let (_, next) = app.get("/v1/ledger/chain/head").await;
        assert_eq!(next["seq"], head["seq"].as_u64().unwrap() + 1);
        assert_eq!(next["transfers"], 2);
        assert_ne!(next["hash"], head["hash"]);
        assert!(next["first_timestamp"].as_u64() > head["last_timestamp"].as_u64());
        assert!(run(&app).await.is_clean());
        app.stop().await;
    }
}
