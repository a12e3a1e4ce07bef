//! Crash durability and idempotency across crashes: the real `coffer` binary under load,
//! killed with `kill -9` at random points, restarted on the same data — on SQLite and on
//! PostgreSQL; on SQLite also with the **power cut** under it (its data directory on a
//! `powercut` disk, which keeps only what was fsynced); and, in the long run only,
//! PostgreSQL itself restarted under load.
//!
//! Customers open wallets, top them up and pay each other, each request with its own
//! Idempotency-Key, while an operator sends batches of transfers to the ledger API (the
//! transfer ids are the keys there). A request the crash left unanswered is retried after
//! the restart with the same key and body, exactly as a client would. Then, after every
//! restart:
//!
//! - every acknowledged transfer, top-up and ledger transfer is there (read back through
//!   the API), and every pending top-up is recovered;
//! - every wallet's and ledger account's balance is exactly what the acknowledged
//!   requests imply, so money moved exactly once for every retried key, and never for a
//!   request that got no answer and was not acknowledged on retry;
//! - nothing is half-written (read straight from the database): every account's posted
//!   balances equal the sum of its transfers, debits equal credits on every ledger, every
//!   transfer has its note, every wallet account has its wallet row and back, no wallet
//!   is below zero, every change has exactly its events in the outbox;
//! - `coffer verify` finds nothing (the whole audit, hash chain included).
//!
//! A `kill -9` leaves what the process wrote in the kernel's page cache, so it cannot catch
//! a missing fsync; the power cut can. Short run: three kills per backend and
//! [`POWER_CUTS`] cuts; `COFFER_PROOF_LONG=1` runs 25 kills and [`POWER_CUTS_LONG`] cuts,
//! plus the PostgreSQL restart (run that with `--test-threads=1`: it breaks every
//! connection to the shared server).

mod common;

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use common::{
    Backend, TEST_PASSWORD,
    process::{CHILD_ADMIN_KEY, ChildConfig, ChildDatabase, ChildServer},
};
use rand::{Rng, SeedableRng, rngs::StdRng};
use serde_json::{Value, json};
use sqlx::{Connection, Row};

const CUSTOMERS: usize = 4;
const OPENING_TOP_UP: i64 = 50_000;
/// The request timeout given to the child servers: an Idempotency-Key held by a request
/// that died in a crash is free again one second after it.
const REQUEST_TIMEOUT_MS: &str = "2000";
/// Attempts at a retried request while its key is still held by the crashed request (or
/// the server is busy), 100 ms apart: well past the lease above.
const RETRY_ATTEMPTS_MAX: u32 = 100;

/// Longest a round waits for the clients' answers before the test fails.
const LOAD_WAIT: Duration = Duration::from_secs(120);

fn long() -> bool {
    std::env::var("COFFER_PROOF_LONG").is_ok_and(|value| value == "1")
}

fn crashes() -> usize {
    if long() { 25 } else { 3 }
}

/// Power cuts per run (the floor is 20), and in the long run.
const POWER_CUTS: usize = 20;
const POWER_CUTS_LONG: usize = 100;

/// The operator's ledger for the batch load, apart from the wallets' ledgers.
const BATCH_LEDGER: u32 = 7_001;
/// Accounts on it; batches move money between them (no balance limits, so every transfer
/// of a batch is accepted and the books can follow each one).
const BATCH_ACCOUNTS: usize = 4;
/// The account and transfer code of the operator's ledger: none of the wallet layer's.
const BATCH_CODE: u16 = 900;
const BATCH_SIZE_MAX: usize = 16;

/// One request, as sent (so it can be sent again, byte for byte).
#[derive(Clone, Debug)]
struct Sent {
    customer: usize,
    path: String,
    key: String,
    body: Value,
    /// Sent before without an answer: a ledger `exists` then means "applied by an
    /// earlier attempt".
    retried: bool,
}

/// What the clients know, across crashes.
#[derive(Debug, Default)]
struct Books {
    /// Each customer's wallets.
    wallets: Vec<Vec<String>>,
    /// Acknowledged transfers: id → (from wallet, to wallet, amount).
    transfers: HashMap<String, (String, String, i64)>,
    /// Acknowledged top-ups: id → (wallet, amount, status).
    top_ups: HashMap<String, (String, i64, String)>,
    /// The operator's ledger accounts.
    ledger_accounts: Vec<String>,
    /// Acknowledged ledger transfers: id → (debit account, credit account, amount).
    ledger_transfers: HashMap<String, (String, String, i64)>,
    /// Requests the crash left unanswered.
    unanswered: Vec<Sent>,
}

/// Figures for the report.
#[derive(Debug, Default)]
struct Figures {
    requests: AtomicU64,
    answered: AtomicU64,
    unanswered_retried: AtomicU64,
    acknowledged_only_on_retry: AtomicU64,
    crashes: AtomicU64,
}

#[derive(Clone, Debug)]
struct Cluster {
    client: reqwest::Client,
    tokens: Arc<Vec<String>>,
}

/// The answer to one request: status and body, or `None` when there was none.
async fn send(cluster: &Cluster, base_url: &str, sent: &Sent) -> Option<(u16, Value)> {
    let bearer =
        if sent.path.starts_with("/v1/ledger/") { CHILD_ADMIN_KEY } else { &cluster.tokens[sent.customer] };
    let response = cluster
        .client
        .post(format!("{base_url}{}", sent.path))
        .bearer_auth(bearer)
        .header("idempotency-key", &sent.key)
        .json(&sent.body)
        .send()
        .await
        .ok()?;
    let status = response.status().as_u16();
    let body = response.json().await.ok()?;
    Some((status, body))
}

/// Records a definite answer in the books; returns false if there was none (or a 503).
fn record(books: &mut Books, sent: &Sent, answer: Option<&(u16, Value)>, figures: &Figures) -> bool {
    let Some((status, body)) = answer else { return false };
    match (*status, sent.path.as_str()) {
        (503, _) => return false,
        (201, "/v1/transfers") => {
            let id = body["id"].as_str().unwrap().to_owned();
            let entry = (
                body["from_wallet_id"].as_str().unwrap().to_owned(),
                body["to_wallet_id"].as_str().unwrap().to_owned(),
                body["amount"].as_i64().unwrap(),
            );
            if let Some(before) = books.transfers.insert(id.clone(), entry.clone()) {
                assert_eq!(before, entry, "transfer {id} acknowledged twice, differently");
            }
        }
        (422, "/v1/transfers") => assert_eq!(body["code"], "insufficient_funds", "{body}"),
        // A retry whose first attempt was refused by the ledger (and remembered there) but
        // crashed before its answer was stored: refused again, with the generic code.
        (409, "/v1/transfers") if body["code"] == "transfer_failed_before" => {}
        (201 | 202, path) if path.ends_with("/top-ups") => {
            let id = body["id"].as_str().unwrap().to_owned();
            let wallet = body["wallet_id"].as_str().unwrap().to_owned();
            let status = body["status"].as_str().unwrap().to_owned();
            assert_top_up_status(&status, body);
            books.top_ups.insert(id, (wallet, body["amount"].as_i64().unwrap(), status));
        }
        (201, "/v1/wallets") => {
            let id = body["id"].as_str().unwrap().to_owned();
            let wallets = &mut books.wallets[sent.customer];
            if !wallets.contains(&id) {
                wallets.push(id);
            }
        }
        (200, "/v1/ledger/transfers") => {
            let events = sent.body.as_array().unwrap();
            let results = body["results"].as_array().unwrap();
            assert_eq!(results.len(), events.len(), "{body}");
            for (event, result) in events.iter().zip(results) {
                match result["result"].as_str().unwrap() {
                    "ok" => {}
                    "exists" if sent.retried => {}
                    other => panic!("ledger transfer {event} answered {other}"),
                }
                let entry = (
                    event["debit_account_id"].as_str().unwrap().to_owned(),
                    event["credit_account_id"].as_str().unwrap().to_owned(),
                    event["amount"].as_i64().unwrap(),
                );
                let id = event["id"].as_str().unwrap().to_owned();
                assert!(books.ledger_transfers.insert(id, entry).is_none(), "{event} acknowledged twice");
            }
        }
        (status, path) => panic!("{path} answered {status}: {body}"),
    }
    figures.answered.fetch_add(1, Ordering::Relaxed);
    true
}

/// Top-ups all use a card that succeeds. One can still fail: the mock provider keeps its
/// charges in memory, so after a `kill -9` it has forgotten a charge made just before, and
/// recovery (rightly, for a provider that says "no such charge") fails the top-up. No
/// money moves for it, which the balance checks verify.
#[track_caller]
fn assert_top_up_status(status: &str, body: &Value) {
    match status {
        "succeeded" | "pending" => {}
        "failed" => assert_eq!(body["failure_code"], "charge_not_found", "{body}"),
        other => panic!("top-up status {other}: {body}"),
    }
}

/// A random request from one customer.
fn next_request(rng: &mut impl Rng, books: &Books, customer: usize) -> Sent {
    let key = uuid::Uuid::now_v7().to_string();
    let mine = &books.wallets[customer];
    let choice = rng.random_range(0..100);
    let (path, body) = if choice < 10 {
        let accounts = &books.ledger_accounts;
        let events: Vec<Value> = (0..rng.random_range(1..=BATCH_SIZE_MAX))
            .map(|_| {
                let debit = rng.random_range(0..accounts.len());
                let credit = (debit + rng.random_range(1..accounts.len())) % accounts.len();
                json!({"id": uuid::Uuid::now_v7(), "debit_account_id": accounts[debit],
                       "credit_account_id": accounts[credit], "amount": rng.random_range(1..=1_000),
                       "ledger": BATCH_LEDGER, "code": BATCH_CODE})
            })
            .collect();
        ("/v1/ledger/transfers".to_owned(), Value::Array(events))
    } else if choice < 80 {
        let other = (customer + rng.random_range(1..CUSTOMERS)) % CUSTOMERS;
        let theirs = &books.wallets[other];
        let body = json!({
            "from_wallet_id": mine[rng.random_range(0..mine.len())],
            "to_wallet_id": theirs[rng.random_range(0..theirs.len())],
            "amount": rng.random_range(1..=2_000),
            "description": "crash test",
        });
        ("/v1/transfers".to_owned(), body)
    } else if choice < 95 || mine.len() >= 8 {
        let wallet = &mine[rng.random_range(0..mine.len())];
        (
            format!("/v1/wallets/{wallet}/top-ups"),
            json!({"amount": rng.random_range(1..=500), "payment_method": "tok_visa"}),
        )
    } else {
        ("/v1/wallets".to_owned(), json!({"currency": "USD"}))
    };
    Sent { customer, path, key, body, retried: false }
}

/// One round of load: where to send it, when to stop, and where to count.
#[derive(Clone, Debug)]
struct Round {
    base_url: String,
    stop: Arc<AtomicBool>,
    /// Answers so far in this round (the killer waits on it).
    answered: Arc<tokio::sync::watch::Sender<u64>>,
    figures: Arc<Figures>,
}

impl Round {
    fn new(base_url: &str, figures: &Arc<Figures>) -> (Self, tokio::sync::watch::Receiver<u64>) {
        let (answered, watch) = tokio::sync::watch::channel(0u64);
        let round = Self {
            base_url: base_url.to_owned(),
            stop: Arc::new(AtomicBool::new(false)),
            answered: Arc::new(answered),
            figures: figures.clone(),
        };
        (round, watch)
    }

    /// Two clients per customer.
    fn spawn_clients(
        &self,
        cluster: &Cluster,
        books: &Arc<Mutex<Books>>,
        rng: &mut impl Rng,
    ) -> Vec<tokio::task::JoinHandle<()>> {
        (0..CUSTOMERS * 2)
            .map(|index| {
                tokio::spawn(client(
                    cluster.clone(),
                    books.clone(),
                    index % CUSTOMERS,
                    self.clone(),
                    rng.random(),
                ))
            })
            .collect()
    }
}

/// Customers send requests until the round stops; a request without an answer goes to the
/// books' unanswered list.
async fn client(cluster: Cluster, books: Arc<Mutex<Books>>, customer: usize, round: Round, seed: u64) {
    let Round { base_url, stop, answered, figures } = round;
    let mut rng = StdRng::seed_from_u64(seed);
    while !stop.load(Ordering::Relaxed) {
        let sent = next_request(&mut rng, &books.lock().unwrap(), customer);
        figures.requests.fetch_add(1, Ordering::Relaxed);
        let answer = send(&cluster, &base_url, &sent).await;
        let recorded = {
            let mut books = books.lock().unwrap();
            let recorded = record(&mut books, &sent, answer.as_ref(), &figures);
            if !recorded {
                books.unanswered.push(sent);
            }
            recorded
        };
        if recorded {
            answered.send_modify(|count| *count += 1);
        } else {
            // The server is down or busy: back off rather than spin.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Sends every unanswered request again with its key until it has an answer.
async fn retry_unanswered(cluster: &Cluster, base_url: &str, books: &Arc<Mutex<Books>>, figures: &Figures) {
    let unanswered = std::mem::take(&mut books.lock().unwrap().unanswered);
    for mut sent in unanswered {
        sent.retried = true;
        figures.unanswered_retried.fetch_add(1, Ordering::Relaxed);
        let mut answered = false;
        for _ in 0..RETRY_ATTEMPTS_MAX {
            let answer = send(cluster, base_url, &sent).await;
            // The crashed request may still hold the key: 409 until its lease ends.
            let held = matches!(&answer, Some((409, body)) if body["code"] == "idempotency_key_in_use");
            if !held {
                let mut books = books.lock().unwrap();
                let before = books.acknowledged();
                if record(&mut books, &sent, answer.as_ref(), figures) {
                    if books.acknowledged() > before {
                        figures.acknowledged_only_on_retry.fetch_add(1, Ordering::Relaxed);
                    }
                    answered = true;
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(answered, "{} {} got no answer after the restart", sent.path, sent.key);
    }
}

async fn register(client: &reqwest::Client, base_url: &str, email: &str) -> String {
    let body = json!({"email": email, "password": TEST_PASSWORD, "name": "Crash Test"});
    let response = client.post(format!("{base_url}/v1/auth/register")).json(&body).send().await.unwrap();
    let (status, customer) = common::read(response).await;
    assert_eq!(status, 201, "{customer}");
    login(client, base_url, email).await
}

/// A fresh access token for `email`.
async fn login(client: &reqwest::Client, base_url: &str, email: &str) -> String {
    let body = json!({"email": email, "password": TEST_PASSWORD});
    let response = client.post(format!("{base_url}/v1/auth/login")).json(&body).send().await.unwrap();
    let (status, tokens) = common::read(response).await;
    assert_eq!(status, 200, "{tokens}");
    tokens["access_token"].as_str().unwrap().to_owned()
}

fn email(customer: usize) -> String {
    format!("crash{customer}@example.com")
}

/// New access tokens for every customer: a long run outlasts a token's 15 minutes.
async fn log_in_again(cluster: &mut Cluster, base_url: &str) {
    let mut tokens = Vec::new();
    for customer in 0..CUSTOMERS {
        tokens.push(login(&cluster.client, base_url, &email(customer)).await);
    }
    cluster.tokens = Arc::new(tokens);
}

/// A GET as customer `customer`, or as the operator (admin key) for `None`.
async fn get(cluster: &Cluster, base_url: &str, customer: Option<usize>, path: &str) -> Value {
    let bearer = customer.map_or(CHILD_ADMIN_KEY, |customer| &cluster.tokens[customer]);
    let response = cluster.client.get(format!("{base_url}{path}")).bearer_auth(bearer).send().await.unwrap();
    let (status, body) = common::read(response).await;
    assert_eq!(status, 200, "GET {path}: {body}");
    body
}

/// Waits (bounded) for the recovery worker to finish every pending top-up.
async fn settle_top_ups(cluster: &Cluster, base_url: &str, books: &Arc<Mutex<Books>>) {
    let pending: Vec<String> = books
        .lock()
        .unwrap()
        .top_ups
        .iter()
        .filter(|(_, (_, _, status))| status == "pending")
        .map(|(id, _)| id.clone())
        .collect();
    for id in pending {
        let owner = {
            let books = books.lock().unwrap();
            let wallet = &books.top_ups[&id].0;
            books.wallets.iter().position(|wallets| wallets.contains(wallet)).unwrap()
        };
        let mut status = String::new();
        for _ in 0..200 {
            let view = get(cluster, base_url, Some(owner), &format!("/v1/top-ups/{id}")).await;
            status = view["status"].as_str().unwrap().to_owned();
            if status != "pending" {
                assert_top_up_status(&status, &view);
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_ne!(status, "pending", "top-up {id} was not recovered");
        books.lock().unwrap().top_ups.get_mut(&id).unwrap().2 = status;
    }
}

/// Every check after a restart: through the API, then straight from the database.
async fn check(cluster: &Cluster, base_url: &str, books: &Arc<Mutex<Books>>, database: &Database) {
    settle_top_ups(cluster, base_url, books).await;
    let books = books.lock().unwrap().clone_view();
    let mut expected: HashMap<&str, i64> = HashMap::new();
    for (wallet, amount, status) in books.top_ups.values() {
        if status == "succeeded" {
            *expected.entry(wallet).or_default() += amount;
        }
    }
    for (from, to, amount) in books.transfers.values() {
        *expected.entry(from).or_default() -= amount;
        *expected.entry(to).or_default() += amount;
    }
    for (customer, wallets) in books.wallets.iter().enumerate() {
        for wallet in wallets {
            let view = get(cluster, base_url, Some(customer), &format!("/v1/wallets/{wallet}")).await;
            let posted = view["balance"]["posted"].as_i64().unwrap();
            assert_eq!(posted, expected.get(wallet.as_str()).copied().unwrap_or(0), "wallet {wallet}");
        }
    }
    // A sample of acknowledged transfers read back one by one (all of them in the long run).
    let sample = if long() { books.transfers.len() } else { 50 };
    for (id, (from, _, amount)) in books.transfers.iter().take(sample) {
        let owner = books.wallets.iter().position(|wallets| wallets.contains(from)).unwrap();
        let view = get(cluster, base_url, Some(owner), &format!("/v1/transfers/{id}")).await;
        assert_eq!((view["status"].as_str(), view["amount"].as_i64()), (Some("posted"), Some(*amount)));
    }
    // The operator's ledger: each account's posted sides are exactly the acknowledged
    // transfers, and a sample of them reads back.
    let mut sides: HashMap<&str, (i64, i64)> = HashMap::new();
    for (debit, credit, amount) in books.ledger_transfers.values() {
        sides.entry(debit).or_default().0 += amount;
        sides.entry(credit).or_default().1 += amount;
    }
    for account in &books.ledger_accounts {
        let view = get(cluster, base_url, None, &format!("/v1/ledger/accounts/{account}")).await;
        let posted = (view["debits_posted"].as_i64().unwrap(), view["credits_posted"].as_i64().unwrap());
        assert_eq!(
            posted,
            sides.get(account.as_str()).copied().unwrap_or_default(),
            "ledger account {account}"
        );
    }
    for (id, (debit, credit, amount)) in books.ledger_transfers.iter().take(sample) {
        let view = get(cluster, base_url, None, &format!("/v1/ledger/transfers/{id}")).await;
        let read =
            (view["debit_account_id"].as_str(), view["credit_account_id"].as_str(), view["amount"].as_i64());
        assert_eq!(
            read,
            (Some(debit.as_str()), Some(credit.as_str()), Some(*amount)),
            "ledger transfer {id}"
        );
    }
    database.check_integrity().await;
    database.check_outbox().await;
    database.check_mail().await;
    database.verify().await;
}

impl Books {
    fn clone_view(&self) -> Books {
        Books {
            wallets: self.wallets.clone(),
            transfers: self.transfers.clone(),
            top_ups: self.top_ups.clone(),
            ledger_accounts: self.ledger_accounts.clone(),
            ledger_transfers: self.ledger_transfers.clone(),
            unanswered: Vec::new(),
        }
    }

    /// Acknowledged money movements of every kind.
    fn acknowledged(&self) -> usize {
        self.transfers.len() + self.top_ups.len() + self.ledger_transfers.len()
    }
}

/// The database behind the child servers, opened directly for the integrity checks.
#[derive(Debug)]
struct Database {
    url: String,
    config: ChildConfig,
}

impl Database {
    fn new(config: &ChildConfig) -> Self {
        let url = match &config.database_url {
            Some(url) => url.clone(),
            None => format!("sqlite:{}?mode=ro", config.data_dir.join("coffer.db").display()),
        };
        Self { url, config: config.clone() }
    }

    fn postgres(&self) -> bool {
        self.config.database_url.is_some()
    }

    /// `coffer verify --json`, as an operator runs it beside the server: no findings.
    async fn verify(&self) {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_coffer"));
        command.args(["verify", "--json", "--data-dir"]).arg(&self.config.data_dir).env("COFFER_LOG", "warn");
        match &self.config.database_url {
            Some(url) => command.env("DATABASE_URL", url),
            None => command.env_remove("DATABASE_URL"),
        };
        let output = command.output().await.unwrap();
        let report = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "coffer verify: {report}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let report: Value = serde_json::from_str(&report).unwrap();
        assert_eq!(report["findings"], json!([]), "{report}");
    }

    /// Runs a query; every column read as text (or NULL). The connection is closed, not
    /// dropped: a dropped SQLite connection closes in its own time, and the power-cut run
    /// unmounts the data directory right after the checks.
    async fn rows(&self, sql: &str) -> Vec<Vec<Option<String>>> {
        let sql = sqlx::AssertSqlSafe(sql.to_owned());
        if self.postgres() {
            let mut connection = sqlx::PgConnection::connect(&self.url).await.unwrap();
            let rows = sqlx::query(sql).fetch_all(&mut connection).await.unwrap();
            connection.close().await.unwrap();
            text_columns(&rows)
        } else {
            let mut connection = sqlx::SqliteConnection::connect(&self.url).await.unwrap();
            let rows = sqlx::query(sql).fetch_all(&mut connection).await.unwrap();
            connection.close().await.unwrap();
            text_columns(&rows)
        }
    }

    /// Runs a query whose columns are integers as text (so that SUMs fit both backends'
    /// types); NULL reads as 0.
    async fn numbers(&self, sql: &str) -> Vec<Vec<i128>> {
        let parse = |text: Option<String>| text.map_or(0, |text| text.parse::<i128>().unwrap());
        self.rows(sql).await.into_iter().map(|row| row.into_iter().map(parse).collect()).collect()
    }

    /// Runs a query whose columns are text.
    async fn texts(&self, sql: &str) -> Vec<Vec<String>> {
        let rows = self.rows(sql).await;
        rows.into_iter().map(|row| row.into_iter().map(|text| text.expect("not NULL")).collect()).collect()
    }

    /// An id column as text both backends agree on (parsed back into a UUID).
    fn id_text(&self, column: &str) -> String {
        if self.postgres() { format!("{column}::text") } else { format!("lower(hex({column}))") }
    }

    /// Every committed change has exactly one set of events, and no event describes a
    /// change that is absent: two `transfer.posted` (one per wallet) and two
    /// `balance.updated` per P2P transfer, one `transfer.posted` per top-up credit, one
    /// `wallet.created` per wallet, one `top_up.succeeded` per succeeded top-up.
    async fn check_outbox(&self) {
        use std::collections::HashMap;
        let uuid = |text: &str| text.parse::<uuid::Uuid>().unwrap();
        let notes: HashMap<uuid::Uuid, String> = self
            .texts(&format!("SELECT {}, kind FROM transfer_notes", self.id_text("transfer_id")))
            .await
            .into_iter()
            .map(|row| (uuid(&row[0]), row[1].clone()))
            .collect();
        let wallets: Vec<uuid::Uuid> = self
            .texts(&format!("SELECT {} FROM wallets", self.id_text("id")))
            .await
            .iter()
            .map(|row| uuid(&row[0]))
            .collect();
        let succeeded: Vec<uuid::Uuid> = self
            .texts(&format!("SELECT {} FROM top_ups WHERE status = 'succeeded'", self.id_text("id")))
            .await
            .iter()
            .map(|row| uuid(&row[0]))
            .collect();
        let mut per: HashMap<(String, uuid::Uuid), usize> = HashMap::new();
        for row in self.texts("SELECT type, payload FROM outbox").await {
            let event: Value = serde_json::from_str(&row[1]).unwrap();
            let data = &event["data"];
            let key = match row[0].as_str() {
                "coffer.transfer.posted" | "coffer.balance.updated" => data["transfer_id"].as_str(),
                "coffer.wallet.created" => data["wallet_id"].as_str(),
                "coffer.top_up.succeeded" => data["top_up_id"].as_str(),
                _ => None,
            };
            if let Some(key) = key {
                *per.entry((row[0].clone(), uuid(key))).or_default() += 1;
            }
        }
        for (id, kind) in &notes {
            let legs = match kind.as_str() {
                "transfer" => 2,
                "top_up" => 1,
                _ => continue,
            };
            for kind in ["coffer.transfer.posted", "coffer.balance.updated"] {
                assert_eq!(per.remove(&(kind.to_owned(), *id)), Some(legs), "{kind} events of transfer {id}");
            }
        }
        for id in &wallets {
            assert_eq!(
                per.remove(&("coffer.wallet.created".to_owned(), *id)),
                Some(1),
                "wallet.created of {id}"
            );
        }
        for id in &succeeded {
            assert_eq!(
                per.remove(&("coffer.top_up.succeeded".to_owned(), *id)),
                Some(1),
                "top_up.succeeded of {id}"
            );
        }
        assert!(per.is_empty(), "events of changes that are absent: {per:?}");
    }

    /// Every email marked sent is in the file outbox (the children have no SMTP server):
    /// it must be on disk before it is marked. Returns how many there are.
    async fn check_mail(&self) -> usize {
        let sent = self
            .texts(&format!("SELECT template, {} FROM emails WHERE status = 'sent'", self.id_text("id")))
            .await;
        for row in &sent {
            let id: uuid::Uuid = row[1].parse().unwrap();
            let path = self.config.data_dir.join("mail").join(format!("{}-{id}.eml", row[0]));
            let size = std::fs::metadata(&path).map(|metadata| metadata.len());
            assert!(
                size.as_ref().is_ok_and(|size| *size > 0),
                "email {id} is marked sent but {} is {size:?}",
                path.display()
            );
        }
        sent.len()
    }

    async fn count(&self, what: &str, sql: &str) {
        let rows = self.numbers(&format!("SELECT CAST(COUNT(*) AS TEXT) FROM {sql}")).await;
        assert_eq!(rows[0][0], 0, "{what}");
    }

    async fn check_integrity(&self) {
        let sums = self
            .numbers(
                "SELECT CAST(ledger AS TEXT), CAST(SUM(debits_posted) AS TEXT), CAST(SUM(credits_posted) AS TEXT), \
                 CAST(SUM(debits_pending) AS TEXT), CAST(SUM(credits_pending) AS TEXT) FROM accounts GROUP BY ledger",
            )
            .await;
        assert!(!sums.is_empty(), "the workload wrote to some ledger");
        for row in sums {
            assert_eq!((row[1], row[3]), (row[2], row[4]), "ledger {}: debits and credits differ", row[0]);
        }
        let not_posting =
            ledger::TransferFlags::PENDING.bits() | ledger::TransferFlags::VOID_PENDING_TRANSFER.bits();
        for (side, column) in [("debits", "debit_account_id"), ("credits", "credit_account_id")] {
            self.count(
                &format!("an account's posted {side} differ from its transfers"),
                &format!(
                    "accounts a WHERE a.{side}_posted <> (SELECT COALESCE(SUM(t.amount), 0) FROM transfers t \
                     WHERE t.{column} = a.id AND (t.flags & {not_posting}) = 0)"
                ),
            )
            .await;
        }
        // The wallet layer's transfers; the operator's batches are raw ledger transfers.
        self.count(
            "a transfer without its note",
            &format!(
                "transfers t WHERE t.ledger <> {BATCH_LEDGER} \
                 AND NOT EXISTS (SELECT 1 FROM transfer_notes n WHERE n.transfer_id = t.id)"
            ),
        )
        .await;
        let wallet_codes = coffer::wallets::money::account_code::WALLET_BASE;
        self.count(
            "a wallet account without its wallet row",
            &format!(
                "accounts a WHERE a.code BETWEEN {wallet_codes} AND {} AND NOT EXISTS (SELECT 1 FROM wallets w WHERE w.id = a.id)",
                wallet_codes + 5
            ),
        )
        .await;
        self.count(
            "a wallet row without its account",
            "wallets w WHERE NOT EXISTS (SELECT 1 FROM accounts a WHERE a.id = w.id)",
        )
        .await;
        self.count(
            "a wallet below zero",
            "accounts a JOIN wallets w ON w.id = a.id WHERE a.debits_posted + a.debits_pending > a.credits_posted",
        )
        .await;
        // What foreign keys would say, asked directly: the embedded ledger writer leaves
        // them unchecked (the ledger core enforces them), so these must hold by its rules.
        for (what, rows) in [
            (
                "a transfer whose account is absent",
                "transfers t WHERE NOT EXISTS (SELECT 1 FROM accounts a WHERE a.id = t.debit_account_id) \
                 OR NOT EXISTS (SELECT 1 FROM accounts a WHERE a.id = t.credit_account_id)",
            ),
            (
                "a note without its transfer",
                "transfer_notes n WHERE NOT EXISTS (SELECT 1 FROM transfers t WHERE t.id = n.transfer_id)",
            ),
            (
                "a pending status without its transfer",
                "pending_transfers p WHERE NOT EXISTS (SELECT 1 FROM transfers t WHERE t.id = p.id)",
            ),
            (
                "a balance row without its account",
                "account_balances b WHERE NOT EXISTS (SELECT 1 FROM accounts a WHERE a.id = b.account_id)",
            ),
            (
                "a top-up without its wallet",
                "top_ups p WHERE NOT EXISTS (SELECT 1 FROM wallets w WHERE w.id = p.wallet_id)",
            ),
        ] {
            self.count(what, rows).await;
        }
        if !self.postgres() {
            self.count("a row SQLite's foreign_key_check reports", "pragma_foreign_key_check").await;
            let verdict = self.texts("PRAGMA integrity_check").await;
            assert_eq!(verdict, [["ok"]], "SQLite's integrity_check");
        }
    }
}

/// Every column of every row as text (or NULL), on either backend.
fn text_columns<R>(rows: &[R]) -> Vec<Vec<Option<String>>>
where
    R: Row,
    usize: sqlx::ColumnIndex<R>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    rows.iter().map(|row| (0..row.len()).map(|i| row.get::<Option<String>, _>(i)).collect()).collect()
}

fn child_config(config: ChildConfig) -> ChildConfig {
    config
        .with_env("COFFER_REQUEST_TIMEOUT_MS", REQUEST_TIMEOUT_MS)
        .with_env("COFFER_RECOVERY_INTERVAL_MS", "200")
        .with_env("COFFER_RECOVERY_GRACE_MS", "3000")
}

/// Sets up customers and wallets on a fresh server; returns the server and the books.
async fn open_bank(config: &ChildConfig) -> (ChildServer, Cluster, Arc<Mutex<Books>>) {
    let server = ChildServer::start(config).await;
    let client = coffer::notifications::http_client().timeout(Duration::from_secs(30)).build().unwrap();
    let mut tokens = Vec::new();
    for index in 0..CUSTOMERS {
        tokens.push(register(&client, &server.base_url, &email(index)).await);
    }
    let cluster = Cluster { client, tokens: Arc::new(tokens) };
    let books = Arc::new(Mutex::new(Books { wallets: vec![Vec::new(); CUSTOMERS], ..Default::default() }));
    let figures = Figures::default();
    for customer in 0..CUSTOMERS {
        let key = uuid::Uuid::now_v7().to_string();
        let open = Sent {
            customer,
            path: "/v1/wallets".into(),
            key,
            body: json!({"currency": "USD"}),
            retried: false,
        };
        let answer = send(&cluster, &server.base_url, &open).await;
        assert!(record(&mut books.lock().unwrap(), &open, answer.as_ref(), &figures));
        let wallet = books.lock().unwrap().wallets[customer][0].clone();
        let top_up = Sent {
            customer,
            path: format!("/v1/wallets/{wallet}/top-ups"),
            key: uuid::Uuid::now_v7().to_string(),
            body: json!({"amount": OPENING_TOP_UP, "payment_method": "tok_visa"}),
            retried: false,
        };
        let answer = send(&cluster, &server.base_url, &top_up).await;
        assert!(record(&mut books.lock().unwrap(), &top_up, answer.as_ref(), &figures));
    }
    let accounts: Vec<String> = (0..BATCH_ACCOUNTS).map(|_| uuid::Uuid::now_v7().to_string()).collect();
    let creates: Vec<Value> =
        accounts.iter().map(|id| json!({"id": id, "ledger": BATCH_LEDGER, "code": BATCH_CODE})).collect();
    let response = cluster
        .client
        .post(format!("{}/v1/ledger/accounts", server.base_url))
        .bearer_auth(CHILD_ADMIN_KEY)
        .json(&creates)
        .send()
        .await
        .unwrap();
    let (status, body) = common::read(response).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["results"].as_array().unwrap().iter().all(|result| result["result"] == "ok"), "{body}");
    books.lock().unwrap().ledger_accounts = accounts;
    (server, cluster, books)
}

/// How the server goes down.
#[derive(Debug)]
enum Fault {
    /// `kill -9`: what the process wrote stays in the kernel's page cache.
    KillNine,
    /// `kill -9`, then the power: the data directory is on a `powercut` disk, which is
    /// unmounted and cut (every other cut losing everything unsynced, the others a random
    /// half of the unsynced pages), then mounted again for the restart.
    PowerCut(PowerDisk),
}

#[derive(Debug)]
struct PowerDisk {
    disk: powercut::Disk,
    mount: Option<powercut::Mount>,
    at: tempfile::TempDir,
}

impl PowerDisk {
    async fn cut(&mut self, loss: powercut::Loss) -> powercut::Stats {
        let mount = self.mount.take().expect("mounted");
        // Unmounting waits for the kernel: not on a runtime thread.
        let stats = tokio::task::spawn_blocking(move || mount.cut(loss)).await.unwrap();
        let stats = stats.expect("the disk unmounts (nothing may hold a file open on it)");
        self.mount = Some(self.disk.mount(self.at.path()).expect("the disk mounts again"));
        stats
    }
}

/// Load, take the server down (`fault`) once the clients have had a random number of
/// answers, restart, retry what went unanswered, check; `rounds` times.
async fn crash_and_recover(backend: &Backend, mut fault: Fault, rounds: usize) {
    let database = ChildDatabase::new(backend).await;
    let config = match &fault {
        Fault::KillNine => child_config(database.config()),
        Fault::PowerCut(disk) => child_config(ChildConfig::new(disk.at.path(), None)),
    };
    let direct = Database::new(&config);
    let (mut server, mut cluster, books) = open_bank(&config).await;
    let figures = Arc::new(Figures::default());
    let seed: u64 = rand::rng().random();
    eprintln!("crash test seed {seed}");
    let mut rng = StdRng::seed_from_u64(seed);
    for round_index in 0..rounds {
        let (round, mut watch) = Round::new(&server.base_url, &figures);
        let clients = round.spawn_clients(&cluster, &books, &mut rng);
        // A random point: after 20 to 200 answers, with requests in flight.
        let kill_after = rng.random_range(20..200u64);
        let reached = tokio::time::timeout(LOAD_WAIT, watch.wait_for(|count| *count >= kill_after))
            .await
            .is_ok_and(|seen| seen.is_ok());
        assert!(reached, "the clients did not get {kill_after} answers within {LOAD_WAIT:?}");
        round.stop.store(true, Ordering::Relaxed);
        server.kill().await;
        if let Fault::PowerCut(disk) = &mut fault {
            let loss = if round_index % 2 == 0 {
                powercut::Loss::Unsynced
            } else {
                powercut::Loss::Torn { seed: rng.random() }
            };
            disk.cut(loss).await;
        }
        figures.crashes.fetch_add(1, Ordering::Relaxed);
        for client in clients {
            client.await.unwrap();
        }
        server = ChildServer::start(&config).await;
        log_in_again(&mut cluster, &server.base_url).await;
        retry_unanswered(&cluster, &server.base_url, &books, &figures).await;
        check(&cluster, &server.base_url, &books, &direct).await;
        if long() {
            let acknowledged = books.lock().unwrap().acknowledged();
            eprintln!("round {}: {figures:?}, acknowledged {acknowledged}", round_index + 1);
        }
    }
    let logs = server.stop().await;
    assert!(logs.iter().any(|line| line.contains("shut down")), "the last server shut down cleanly");
    let acknowledged = books.lock().unwrap().acknowledged();
    let emails = direct.check_mail().await;
    eprintln!("crash test on {backend:?}: {figures:?}, acknowledged {acknowledged}, emails sent {emails}");
    if let Fault::PowerCut(disk) = &fault {
        eprintln!("power cuts: {:?}", disk.disk.stats());
    }
    assert!(figures.answered.load(Ordering::Relaxed) > 50, "{figures:?}");
    database.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_nine_on_sqlite_loses_nothing() {
    crash_and_recover(&Backend::Sqlite, Fault::KillNine, crashes()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_nine_on_postgres_loses_nothing() {
    let Some(backend) = common::backends().into_iter().find(|b| matches!(b, Backend::Postgres(_))) else {
        return;
    };
    crash_and_recover(&backend, Fault::KillNine, crashes()).await;
}

/// The embedded default with its data directory on a disk that loses what was not
/// fsynced: the durability claims of the SQLite adapter (a reply means "synced"), the
/// secret files and the WAL recovery, tested against a real power cut's rules.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn power_loss_on_sqlite_loses_nothing_acknowledged() {
    let Some((disk, mount, at)) = powercut::mount_for_test() else { return };
    let fault = Fault::PowerCut(PowerDisk { disk, mount: Some(mount), at });
    crash_and_recover(&Backend::Sqlite, fault, if long() { POWER_CUTS_LONG } else { POWER_CUTS }).await;
}

/// Long run only: PostgreSQL itself restarts under load. Requests during the outage get
/// 503 (and are retried afterwards with their keys); the server must serve again on its
/// own once the database is back, and nothing may be lost or half-written.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_restart_under_load_recovers_on_its_own() {
    if !long() {
        return;
    }
    let Some(backend) = common::backends().into_iter().find(|b| matches!(b, Backend::Postgres(_))) else {
        return;
    };
    let database = ChildDatabase::new(&backend).await;
    let config = child_config(database.config());
    let direct = Database::new(&config);
    let (server, cluster, books) = open_bank(&config).await;
    let figures = Arc::new(Figures::default());
    let mut rng = StdRng::seed_from_u64(rand::rng().random());
    let restarts = 3;
    for _ in 0..restarts {
        let (round, mut watch) = Round::new(&server.base_url, &figures);
        let clients = round.spawn_clients(&cluster, &books, &mut rng);
        let reached = tokio::time::timeout(LOAD_WAIT, watch.wait_for(|count| *count >= 100))
            .await
            .is_ok_and(|seen| seen.is_ok());
        assert!(reached, "the clients did not get 100 answers within {LOAD_WAIT:?}");
        let version = std::fs::read_dir("/etc/postgresql")
            .expect("a Debian-style PostgreSQL install")
            .next()
            .unwrap()
            .unwrap()
            .file_name();
        let restarted = tokio::process::Command::new("pg_ctlcluster")
            .args(["--skip-systemctl-redirect", &version.to_string_lossy(), "main", "restart"])
            .status()
            .await
            .unwrap();
        assert!(restarted.success(), "pg_ctlcluster restart: {restarted}");
        // Served again without any action on the server: more answers arrive.
        let after_restart = *watch.borrow();
        // Reduced to a bool at once: the watch's read guard must not outlive this line, or
        // the clients' counters block on it.
        let recovered = tokio::time::timeout(
            Duration::from_secs(60),
            watch.wait_for(|count| *count >= after_restart + 100),
        )
        .await
        .is_ok_and(|seen| seen.is_ok());
        assert!(recovered, "the server did not serve again within 60 s of PostgreSQL restarting");
        round.stop.store(true, Ordering::Relaxed);
        for client in clients {
            client.await.unwrap();
        }
        retry_unanswered(&cluster, &server.base_url, &books, &figures).await;
        check(&cluster, &server.base_url, &books, &direct).await;
    }
    server.stop().await;
    eprintln!("postgres restarts ({restarts}): {figures:?}");
    database.drop().await;
}
