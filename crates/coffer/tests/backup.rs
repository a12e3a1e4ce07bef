//! Backups of the embedded database, through the commands an operator runs: `coffer
//! backup` while the server takes transfers, `coffer restore` into an empty directory,
//! `coffer verify` on the result. Every transfer acknowledged before the backup began is
//! in the restored books, and they are right. A restore refuses a directory that holds a
//! database, a backup with a newer schema, and a truncated file.

mod common;

use std::io::{Read as _, Write as _};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::customer::keyed_post as post;
use common::{Backend, register_and_login, spawn_app};
use serde_json::{Value, json};
use uuid::Uuid;

/// Runs `coffer <args>` to the end; its exit status, standard output and error.
async fn coffer(args: &[&str]) -> (Option<i32>, String, String) {
    let args: Vec<String> = args.iter().map(|arg| (*arg).to_owned()).collect();
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_coffer"))
            .args(&args)
            .env("COFFER_LOG", "warn")
            .env_remove("DATABASE_URL")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn text(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[tokio::test]
async fn a_backup_under_load_restores_with_every_acknowledged_transfer() {
    let app = spawn_app(&Backend::Sqlite).await;
    let alice = register_and_login(&app, "alice@example.com").await;
    let bob = register_and_login(&app, "bob@example.com").await;
    let (_, a) = post(&app, &alice, "/v1/wallets", &json!({"currency": "USD"})).await;
    let (_, b) = post(&app, &bob, "/v1/wallets", &json!({"currency": "USD"})).await;
    let (a, b) = (a["id"].as_str().unwrap().to_owned(), b["id"].as_str().unwrap().to_owned());
    let (status, _) = post(
        &app,
        &alice,
        &format!("/v1/wallets/{a}/top-ups"),
        &json!({"amount": 1_000_000, "payment_method": "tok_visa"}),
    )
    .await;
    assert_eq!(status, 201);

    // Four writers send transfers until told to stop, noting when each was acknowledged.
    let app = Arc::new(app);
    let alice = Arc::new(alice);
    let acknowledged: Arc<Mutex<Vec<(Instant, Uuid)>>> = Arc::default();
    let stop = tokio_util::sync::CancellationToken::new();
    let mut writers = Vec::new();
    for _ in 0..4 {
        let (app, alice, acknowledged, stop) =
            (app.clone(), alice.clone(), acknowledged.clone(), stop.clone());
        let body = json!({"from_wallet_id": a, "to_wallet_id": b, "amount": 1});
        writers.push(tokio::spawn(async move {
            while !stop.is_cancelled() {
                let (status, transfer) = post(&app, &alice, "/v1/transfers", &body).await;
                assert_eq!(status, 201, "{transfer}");
                let id: Uuid = transfer["id"].as_str().unwrap().parse().unwrap();
                acknowledged.lock().unwrap().push((Instant::now(), id));
            }
        }));
    }
    // Bounded waits for the load to be well under way, and (below) to go on past the backup.
    let until = |count: usize, after: Option<Instant>| {
        let acknowledged = acknowledged.clone();
        async move {
            for _ in 0..6_000 {
                let seen = acknowledged
                    .lock()
                    .unwrap()
                    .iter()
                    .filter(|(at, _)| after.is_none_or(|t| *at > t))
                    .count();
                if seen >= count {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            panic!("the writers did not get {count} transfers acknowledged in 60 s");
        }
    };
    until(50, None).await;

    let scratch = tempfile::tempdir().unwrap();
    let file = scratch.path().join("coffer.backup");
    let began = Instant::now();
    let (status, out, err) =
        coffer(&["backup", "--data-dir", text(app.data_dir.path()), "--to", text(&file)]).await;
    assert_eq!(status, Some(0), "{out}{err}");
    assert!(out.starts_with("backed up "), "{out}");
    let ended = Instant::now();
    until(10, Some(ended)).await;
    stop.cancel();
    for writer in writers {
        writer.await.unwrap();
    }
    let before: Vec<Uuid> =
        acknowledged.lock().unwrap().iter().filter(|(at, _)| *at < began).map(|(_, id)| *id).collect();
    let during = acknowledged.lock().unwrap().iter().filter(|(at, _)| (began..ended).contains(at)).count();
    // The writers ran before, through and after the backup: it copied a database being
    // written (how many landed while it ran depends on the machine; it is printed below).
    assert!(before.len() >= 50, "{} before the backup", before.len());
    let manifest = coffer::backup::manifest(&file).unwrap();
    eprintln!(
        "backup under load: {} transfers acknowledged before it began, {during} while it ran, {} in it ({} ms)",
        before.len(),
        manifest.transfers,
        (ended - began).as_millis()
    );
    assert!(manifest.transfers as usize > before.len() && manifest.wallets == 2, "{manifest:?}");

    // Restored into an empty directory, the books are right and hold every transfer
    // acknowledged before the backup began.
    let restored = scratch.path().join("restored");
    let (status, out, err) = coffer(&["restore", "--from", text(&file), "--data-dir", text(&restored)]).await;
    assert_eq!(status, Some(0), "{out}{err}");
    let (status, out, err) = coffer(&["verify", "--json", "--data-dir", text(&restored)]).await;
    assert_eq!(status, Some(0), "{out}{err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["transfers"], manifest.transfers);
    assert_eq!(report["links"], manifest.chain_seq);
    assert_eq!(report["findings"], json!([]));
    let url = format!("sqlite:{}", restored.join("coffer.db").display());
    let store = store::Store::open(&url, store::StoreOptions { max_connections: 2 }).await.unwrap();
    for id in &before {
        assert!(
            store.transfer(id.as_u128()).await.unwrap().is_some(),
            "acknowledged transfer {id} is missing"
        );
    }
    store.close().await;

    // Never over a database.
    let (status, _, err) = coffer(&["restore", "--from", text(&file), "--data-dir", text(&restored)]).await;
    assert_eq!(status, Some(1));
    assert!(err.contains("restore only into an empty data directory"), "{err}");

    // A backup from a newer Coffer (its schema is ahead of this build's).
    let mut unpacked = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(&file).unwrap()).read_to_end(&mut unpacked).unwrap();
    let newline = unpacked.iter().position(|b| *b == b'\n').unwrap();
    let end = newline + 1 + unpacked[newline + 1..].iter().position(|b| *b == b'\n').unwrap();
    let mut newer = manifest.clone();
    newer.schema_version += 1_000;
    let future = scratch.path().join("future.backup");
    let mut out =
        flate2::write::GzEncoder::new(std::fs::File::create(&future).unwrap(), flate2::Compression::fast());
    out.write_all(&unpacked[..=newline]).unwrap();
    writeln!(out, "{}", serde_json::to_string(&newer).unwrap()).unwrap();
    out.write_all(&unpacked[end + 1..]).unwrap();
    out.finish().unwrap();
    let elsewhere = scratch.path().join("elsewhere");
    let (status, _, err) =
        coffer(&["restore", "--from", text(&future), "--data-dir", text(&elsewhere)]).await;
    assert_eq!(status, Some(1));
    assert!(err.contains("newer than this build's"), "{err}");

    // A truncated file leaves nothing behind.
    let packed = std::fs::read(&file).unwrap();
    let cut = scratch.path().join("cut.backup");
    std::fs::write(&cut, &packed[..packed.len() / 2]).unwrap();
    let (status, _, err) = coffer(&["restore", "--from", text(&cut), "--data-dir", text(&elsewhere)]).await;
    assert_eq!(status, Some(1), "{err}");
    assert!(!elsewhere.join("coffer.db").exists() && !elsewhere.join("coffer.db.restoring").exists());

    // A backup never replaces a file.
    let (status, _, err) =
        coffer(&["backup", "--data-dir", text(app.data_dir.path()), "--to", text(&file)]).await;
    assert_eq!(status, Some(1));
    assert!(err.contains("exists already"), "{err}");
    Arc::into_inner(app).unwrap().stop().await;
}
