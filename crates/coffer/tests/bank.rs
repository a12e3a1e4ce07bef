//! The bank workload, after Jepsen's: a fixed total spread over a few ledger accounts,
//! many concurrent clients moving random amounts between them through the HTTP ledger API
//! (plain, two-phase with racing post and void, linked chains, replays), other clients
//! reading every balance while that runs — on SQLite, on PostgreSQL, and on PostgreSQL
//! with two `coffer` processes sharing the database.
//!
//! What is checked, and how (see docs/testing.md):
//!
//! - **Every read obeys the flags, and posted totals never go backwards.** Readers fetch
//!   all accounts at once (concurrent requests, so *not* one snapshot): each account must
//!   satisfy its `debits_must_not_exceed_credits` flag, and its posted debits and credits
//!   must never decrease between one reader's successive reads (nothing lost, no stale read).
//! - **The total holds at every committed instant.** The API has no single request that
//!   reads many accounts, so the point-in-time read is rebuilt from the accounts' balance
//!   histories (every account has the `history` flag): sweeping every row in timestamp
//!   order gives the balances of *all* accounts just after each transfer, and at each of
//!   those instants the accounts must sum to the total, every flag must hold, and each
//!   transfer must have touched exactly two accounts.
//! - **Every acknowledged transfer is present exactly once, and nothing else.** The final
//!   balances equal those computed from the acknowledged results alone, and each
//!   account's transfer listing equals the acknowledged transfers on that side, without
//!   duplicates.
//! - **Replays are consistent.** Sending an acknowledged transfer again answers `exists`
//!   and moves nothing; with a changed amount it answers `exists_with_different_amount`;
//!   a refused one is never later accepted; a fresh id never answers `exists`.
//! - **A pending transfer resolves once.** Post and void race for each pending transfer:
//!   exactly one wins.
//!
//! Unanswered requests (a connection error, a 503) are retried with the same body, so
//! every transfer ends with a known outcome. `COFFER_PROOF_LONG=1` runs a much longer
//! workload.

mod common;

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use common::{
    Backend,
    process::{CHILD_ADMIN_KEY, ChildDatabase, ChildServer},
};
use rand::{Rng, SeedableRng, rngs::StdRng};
use serde_json::{Value, json};
use uuid::Uuid;

const LEDGER: u32 = 840;
/// What each bank account starts with; the total is this times the number of accounts.
const OPENING_BALANCE: u64 = 1_000;
/// Largest amount a client moves at once: big enough that flagged accounts often refuse.
const AMOUNT_MAX: u64 = 400;
/// Times an unanswered request is retried before the test gives up on the server.
const RETRIES_MAX: u32 = 200;
/// Longest wait between retries, in milliseconds (backoff starts at 5 ms).
const RETRY_BACKOFF_MAX_MS: u64 = 500;

/// How big a run is.
#[derive(Clone, Copy, Debug)]
struct Shape {
    accounts: usize,
    writers: usize,
    operations_per_writer: usize,
    readers: usize,
}

fn long() -> bool {
    std::env::var("COFFER_PROOF_LONG").is_ok_and(|value| value == "1")
}

fn shape() -> Shape {
    if long() {
        Shape { accounts: 16, writers: 16, operations_per_writer: 1_000, readers: 4 }
    } else {
        Shape { accounts: 8, writers: 8, operations_per_writer: 40, readers: 2 }
    }
}

/// One or more API nodes serving one database.
#[derive(Clone, Debug)]
struct Api {
    urls: Arc<Vec<String>>,
    admin_key: String,
    client: reqwest::Client,
}

/// A transfer's final outcome, after retries.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Outcome {
    Ok,
    Refused(String),
}

impl Api {
    fn new(urls: Vec<String>, admin_key: &str) -> Self {
        let client = coffer::notifications::http_client().timeout(Duration::from_secs(30)).build().unwrap();
        Self { urls: Arc::new(urls), admin_key: admin_key.to_owned(), client }
    }

    fn node(&self, rng: &mut impl Rng) -> &str {
        &self.urls[rng.random_range(0..self.urls.len())]
    }

    /// Sends one batch once; `None` when the outcome is unknown (no answer, or 503).
    async fn try_batch(&self, rng: &mut impl Rng, path: &str, events: &Value) -> Option<Vec<String>> {
        let url = format!("{}{path}", self.node(rng));
        let response = self.client.post(url).bearer_auth(&self.admin_key).json(events).send().await.ok()?;
        let status = response.status().as_u16();
        let body: Value = response.json().await.ok()?;
        match status {
            200 => Some(
                body["results"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|result| result["result"].as_str().unwrap().to_owned())
                    .collect(),
            ),
            503 => None,
            other => panic!("{path} answered {other}: {body}"),
        }
    }

    /// Sends a batch until it has an answer, retrying the same body; returns the result
    /// codes and whether any attempt went unanswered (then `exists` may mean "it was us").
    async fn batch(&self, rng: &mut impl Rng, path: &str, events: &Value) -> (Vec<String>, bool) {
        let mut uncertain = false;
        for attempt in 0..RETRIES_MAX {
            if let Some(results) = self.try_batch(rng, path, events).await {
                return (results, uncertain);
            }
            uncertain = true;
            let backoff = (5u64 << attempt.min(7)).min(RETRY_BACKOFF_MAX_MS);
            tokio::time::sleep(Duration::from_millis(backoff)).await;
        }
        panic!("{path}: no answer after {RETRIES_MAX} attempts");
    }

    /// Creates transfers and reduces each result to its outcome, checking that a fresh id
    /// never answers `exists` unless an earlier attempt may have applied it.
    async fn transfers(&self, rng: &mut impl Rng, events: &Value) -> Vec<Outcome> {
        let (results, uncertain) = self.batch(rng, "/v1/ledger/transfers", events).await;
        results
            .into_iter()
            .map(|result| match result.as_str() {
                "ok" => Outcome::Ok,
                "exists" if uncertain => Outcome::Ok,
                "exists" => panic!("a fresh transfer answered exists: {events}"),
                _ => Outcome::Refused(result),
            })
            .collect()
    }

    async fn get(&self, rng: &mut impl Rng, path: &str) -> Value {
        for _ in 0..RETRIES_MAX {
            let url = format!("{}{path}", self.node(rng));
            let Ok(response) = self.client.get(url).bearer_auth(&self.admin_key).send().await else {
                continue;
            };
            let status = response.status().as_u16();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            match status {
                200 => return body,
                503 => tokio::time::sleep(Duration::from_millis(20)).await,
                other => panic!("GET {path}: {other} {body}"),
            }
        }
        panic!("GET {path}: no answer after {RETRIES_MAX} attempts");
    }

    /// Every page of a listing, oldest first.
    async fn all_pages(&self, rng: &mut impl Rng, path: &str) -> Vec<Value> {
        let mut rows = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut page_path =
                format!("{path}{}limit=100&order=asc", if path.contains('?') { '&' } else { '?' });
            if let Some(cursor) = &cursor {
                page_path.push_str(&format!("&cursor={cursor}"));
            }
            let page = self.get(rng, &page_path).await;
            rows.extend(page["data"].as_array().unwrap().iter().cloned());
            match page["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_owned()),
                None => return rows,
            }
        }
    }
}

/// A bank account: its id and whether it may not go below zero.
#[derive(Clone, Copy, Debug)]
struct Account {
    id: Uuid,
    flagged: bool,
}

/// Balances as the ledger reports them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Balance {
    debits_pending: i128,
    debits_posted: i128,
    credits_pending: i128,
    credits_posted: i128,
}

impl Balance {
    fn from_json(value: &Value) -> Self {
        let field =
            |name: &str| i128::from(value[name].as_u64().unwrap_or_else(|| panic!("{name} in {value}")));
        Self {
            debits_pending: field("debits_pending"),
            debits_posted: field("debits_posted"),
            credits_pending: field("credits_pending"),
            credits_posted: field("credits_posted"),
        }
    }

    fn net_posted(&self) -> i128 {
        self.credits_posted - self.debits_posted
    }

    /// `debits_must_not_exceed_credits`, as TigerBeetle defines it: pending debits count.
    fn within_flag(&self) -> bool {
        self.debits_pending + self.debits_posted <= self.credits_posted
    }
}

/// An acknowledged (`ok`) transfer and what it did.
#[derive(Clone, Debug)]
struct Acknowledged {
    id: Uuid,
    debit: Uuid,
    credit: Uuid,
    effect: Effect,
}

#[derive(Clone, Copy, Debug)]
enum Effect {
    Posted(u64),
    Pending(u64),
    /// Posted `posted` of a pending `reserved`.
    Post {
        reserved: u64,
        posted: u64,
    },
    Void(u64),
}

/// What one writer did.
#[derive(Debug, Default)]
struct WriterLog {
    acknowledged: Vec<Acknowledged>,
    operations: u64,
    replays: u64,
    refused: u64,
}

fn transfer(id: Uuid, debit: Uuid, credit: Uuid, amount: u64, flags: &[&str]) -> Value {
    json!({"id": id, "debit_account_id": debit, "credit_account_id": credit, "amount": amount,
           "ledger": LEDGER, "code": 1, "flags": flags})
}

fn two_accounts(rng: &mut impl Rng, accounts: &[Account]) -> (Account, Account) {
    let from = rng.random_range(0..accounts.len());
    let to = (from + rng.random_range(1..accounts.len())) % accounts.len();
    (accounts[from], accounts[to])
}

async fn writer(api: Api, accounts: Arc<Vec<Account>>, operations: usize, seed: u64) -> WriterLog {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut log = WriterLog::default();
    // Sent transfers (body and outcome) this writer may replay.
    let mut sent: Vec<(Value, Outcome)> = Vec::new();
    for _ in 0..operations {
        log.operations += 1;
        let choice = rng.random_range(0..100);
        if choice < 55 || (choice >= 90 && sent.is_empty()) {
            let (from, to) = two_accounts(&mut rng, &accounts);
            let (id, amount) = (Uuid::now_v7(), rng.random_range(1..=AMOUNT_MAX));
            let body = transfer(id, from.id, to.id, amount, &[]);
            let outcome = api.transfers(&mut rng, &json!([body])).await.remove(0);
            if outcome == Outcome::Ok {
                log.acknowledged.push(Acknowledged {
                    id,
                    debit: from.id,
                    credit: to.id,
                    effect: Effect::Posted(amount),
                });
            } else {
                log.refused += 1;
            }
            sent.push((body, outcome));
        } else if choice < 75 {
            // Two-phase: reserve, then race a post against a void; exactly one wins.
            let (from, to) = two_accounts(&mut rng, &accounts);
            let (pending_id, amount) = (Uuid::now_v7(), rng.random_range(1..=AMOUNT_MAX));
            let pending = transfer(pending_id, from.id, to.id, amount, &["pending"]);
            if api.transfers(&mut rng, &json!([pending])).await[0] != Outcome::Ok {
                log.refused += 1;
                continue;
            }
            log.acknowledged.push(Acknowledged {
                id: pending_id,
                debit: from.id,
                credit: to.id,
                effect: Effect::Pending(amount),
            });
            let posted = rng.random_range(1..=amount);
            let (post_id, void_id) = (Uuid::now_v7(), Uuid::now_v7());
            let post = json!([{"id": post_id, "pending_id": pending_id, "amount": posted, "flags": ["post_pending_transfer"]}]);
            let void = json!([{"id": void_id, "pending_id": pending_id, "flags": ["void_pending_transfer"]}]);
            let (mut post_rng, mut void_rng) =
                (StdRng::seed_from_u64(rng.random()), StdRng::seed_from_u64(rng.random()));
            let (post_outcome, void_outcome) =
                tokio::join!(api.transfers(&mut post_rng, &post), api.transfers(&mut void_rng, &void));
            match (&post_outcome[0], &void_outcome[0]) {
                (Outcome::Ok, Outcome::Refused(code)) => {
                    assert_eq!(code, "pending_transfer_already_posted");
                    log.acknowledged.push(Acknowledged {
                        id: post_id,
                        debit: from.id,
                        credit: to.id,
                        effect: Effect::Post { reserved: amount, posted },
                    });
                }
                (Outcome::Refused(code), Outcome::Ok) => {
                    assert_eq!(code, "pending_transfer_already_voided");
                    log.acknowledged.push(Acknowledged {
                        id: void_id,
                        debit: from.id,
                        credit: to.id,
                        effect: Effect::Void(amount),
                    });
                }
                other => panic!("post and void of one pending transfer: {other:?}"),
            }
        } else if choice < 90 {
            // A linked chain a → b → c: all or nothing.
            let (a, b) = two_accounts(&mut rng, &accounts);
            let c = loop {
                let c = accounts[rng.random_range(0..accounts.len())];
                if c.id != b.id {
                    break c;
                }
            };
            let (first, second) = (Uuid::now_v7(), Uuid::now_v7());
            let (x, y) = (rng.random_range(1..=AMOUNT_MAX), rng.random_range(1..=AMOUNT_MAX));
            let chain =
                json!([transfer(first, a.id, b.id, x, &["linked"]), transfer(second, b.id, c.id, y, &[])]);
            let outcomes = api.transfers(&mut rng, &chain).await;
            match (&outcomes[0], &outcomes[1]) {
                (Outcome::Ok, Outcome::Ok) => {
                    log.acknowledged.push(Acknowledged {
                        id: first,
                        debit: a.id,
                        credit: b.id,
                        effect: Effect::Posted(x),
                    });
                    log.acknowledged.push(Acknowledged {
                        id: second,
                        debit: b.id,
                        credit: c.id,
                        effect: Effect::Posted(y),
                    });
                }
                (Outcome::Refused(_), Outcome::Refused(_)) => log.refused += 1,
                other => panic!("a linked chain half-applied: {other:?}"),
            }
        } else {
            // A replay of something sent before, as is or with a changed amount.
            log.replays += 1;
            let (body, outcome) = sent[rng.random_range(0..sent.len())].clone();
            let changed = rng.random_bool(0.3);
            let mut replay = body.clone();
            if changed {
                replay["amount"] = json!(body["amount"].as_u64().unwrap() + 1);
            }
            let (results, _) = api.batch(&mut rng, "/v1/ledger/transfers", &json!([replay])).await;
            match (&outcome, changed) {
                (Outcome::Ok, false) => assert_eq!(results[0], "exists", "replay of {body}"),
                (Outcome::Ok, true) => assert_eq!(results[0], "exists_with_different_amount", "{body}"),
                (Outcome::Refused(_), _) => {
                    assert!(
                        results[0] != "ok" && results[0] != "exists",
                        "a refused transfer was later accepted: {body} {results:?}"
                    )
                }
            }
        }
    }
    log
}

/// Reads every account (all at once, concurrently) until told to stop; checks the flags
/// and that posted totals never go backwards. Returns the number of account reads.
async fn reader(api: Api, accounts: Arc<Vec<Account>>, stop: Arc<AtomicBool>, seed: u64) -> u64 {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut last: HashMap<Uuid, Balance> = HashMap::new();
    let mut reads = 0;
    while !stop.load(Ordering::Relaxed) {
        let requests = accounts.iter().map(|account| {
            let (api, mut rng) = (api.clone(), StdRng::seed_from_u64(rng.random()));
            async move { api.get(&mut rng, &format!("/v1/ledger/accounts/{}", account.id)).await }
        });
        let views = futures::future::join_all(requests).await;
        for (account, view) in accounts.iter().zip(views) {
            let balance = Balance::from_json(&view);
            if account.flagged {
                assert!(
                    balance.within_flag(),
                    "{} broke debits_must_not_exceed_credits: {balance:?}",
                    account.id
                );
            }
            if let Some(before) = last.get(&account.id) {
                assert!(
                    balance.debits_posted >= before.debits_posted
                        && balance.credits_posted >= before.credits_posted,
                    "posted totals of {} went backwards: {before:?} then {balance:?}",
                    account.id
                );
            }
            last.insert(account.id, balance);
            reads += 1;
        }
    }
    reads
}

/// What a run did, for the report.
#[derive(Debug, Default)]
struct Figures {
    operations: u64,
    acknowledged: u64,
    refused: u64,
    replays: u64,
    account_reads: u64,
    instants_checked: u64,
}

/// Runs the workload on `api` and checks everything; returns the figures.
async fn run_bank(api: Api, seed: u64) -> Figures {
    let shape = shape();
    let mut rng = StdRng::seed_from_u64(seed);
    let mint = Uuid::now_v7();
    let accounts: Vec<Account> =
        (0..shape.accounts).map(|index| Account { id: Uuid::now_v7(), flagged: index % 2 == 0 }).collect();
    let mut creates = vec![json!({"id": mint, "ledger": LEDGER, "code": 9})];
    for account in &accounts {
        let flags: &[&str] =
            if account.flagged { &["debits_must_not_exceed_credits", "history"] } else { &["history"] };
        creates.push(json!({"id": account.id, "ledger": LEDGER, "code": 1, "flags": flags}));
    }
    let (results, _) = api.batch(&mut rng, "/v1/ledger/accounts", &Value::Array(creates)).await;
    assert!(results.iter().all(|result| result == "ok"), "{results:?}");
    let seeds: Vec<Value> = accounts
        .iter()
        .map(|account| transfer(Uuid::now_v7(), mint, account.id, OPENING_BALANCE, &[]))
        .collect();
    let outcomes = api.transfers(&mut rng, &Value::Array(seeds)).await;
    assert!(outcomes.iter().all(|outcome| *outcome == Outcome::Ok), "{outcomes:?}");
    let total = i128::from(OPENING_BALANCE) * shape.accounts as i128;

    let accounts = Arc::new(accounts);
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..shape.readers)
        .map(|_| tokio::spawn(reader(api.clone(), accounts.clone(), stop.clone(), rng.random())))
        .collect();
    let writers: Vec<_> = (0..shape.writers)
        .map(|_| {
            tokio::spawn(writer(api.clone(), accounts.clone(), shape.operations_per_writer, rng.random()))
        })
        .collect();
    let mut figures = Figures::default();
    let mut acknowledged = Vec::new();
    for writer in writers {
        let log = writer.await.unwrap();
        figures.operations += log.operations;
        figures.refused += log.refused;
        figures.replays += log.replays;
        acknowledged.extend(log.acknowledged);
    }
    stop.store(true, Ordering::Relaxed);
    for reader in readers {
        figures.account_reads += reader.await.unwrap();
    }
    figures.acknowledged = acknowledged.len() as u64;

    // The final balances are exactly what the acknowledged transfers imply.
    let mut expected: HashMap<Uuid, Balance> = accounts
        .iter()
        .map(|account| (account.id, Balance { credits_posted: OPENING_BALANCE.into(), ..Default::default() }))
        .collect();
    for transfer in &acknowledged {
        let (debit, credit) = (transfer.debit, transfer.credit);
        let apply = |expected: &mut HashMap<Uuid, Balance>, pending: i128, posted: i128| {
            let balance = expected.get_mut(&debit).unwrap();
            balance.debits_pending += pending;
            balance.debits_posted += posted;
            let balance = expected.get_mut(&credit).unwrap();
            balance.credits_pending += pending;
            balance.credits_posted += posted;
        };
        match transfer.effect {
            Effect::Posted(amount) => apply(&mut expected, 0, amount.into()),
            Effect::Pending(amount) => apply(&mut expected, amount.into(), 0),
            Effect::Post { reserved, posted } => apply(&mut expected, -i128::from(reserved), posted.into()),
            Effect::Void(amount) => apply(&mut expected, -i128::from(amount), 0),
        }
    }
    let mut sum = 0;
    let mut last_balances = HashMap::new();
    for account in accounts.iter() {
        let balance =
            Balance::from_json(&api.get(&mut rng, &format!("/v1/ledger/accounts/{}", account.id)).await);
        assert_eq!(
            balance, expected[&account.id],
            "account {} differs from its acknowledged transfers",
            account.id
        );
        assert_eq!(
            (balance.debits_pending, balance.credits_pending),
            (0, 0),
            "every pending transfer resolved"
        );
        sum += balance.net_posted();
        last_balances.insert(account.id, balance);
    }
    assert_eq!(sum, total, "money was created or destroyed");

    // Each account's listing holds exactly the acknowledged transfers on each side.
    for account in accounts.iter() {
        for (side, pick) in [("debits", true), ("credits", false)] {
            let rows = api
                .all_pages(&mut rng, &format!("/v1/ledger/accounts/{}/transfers?side={side}", account.id))
                .await;
            let mut listed = HashSet::new();
            for row in &rows {
                let id: Uuid = row["id"].as_str().unwrap().parse().unwrap();
                assert!(listed.insert(id), "transfer {id} listed twice");
            }
            // The opening transfers came from the mint, outside the workload.
            for row in rows.iter().filter(|row| row["debit_account_id"] == json!(mint)) {
                listed.remove(&row["id"].as_str().unwrap().parse::<Uuid>().unwrap());
            }
            let wanted: HashSet<Uuid> = acknowledged
                .iter()
                .filter(|transfer| (if pick { transfer.debit } else { transfer.credit }) == account.id)
                .map(|transfer| transfer.id)
                .collect();
            assert_eq!(listed, wanted, "{side} of {}: listing and acknowledgements differ", account.id);
        }
    }

    // Point in time: all accounts' balances just after every transfer, from the histories.
    let mut rows_at: BTreeMap<u64, Vec<(Uuid, Balance)>> = BTreeMap::new();
    let mut seeded_until = 0;
    for account in accounts.iter() {
        let rows = api.all_pages(&mut rng, &format!("/v1/ledger/accounts/{}/balances", account.id)).await;
        assert!(!rows.is_empty(), "the opening balance is in the history");
        seeded_until = seeded_until.max(rows[0]["timestamp"].as_u64().unwrap());
        for row in rows {
            rows_at
                .entry(row["timestamp"].as_u64().unwrap())
                .or_default()
                .push((account.id, Balance::from_json(&row)));
        }
    }
    let flagged: HashSet<Uuid> =
        accounts.iter().filter(|account| account.flagged).map(|account| account.id).collect();
    let mut now: HashMap<Uuid, Balance> = HashMap::new();
    let mut instants = 0;
    for (timestamp, rows) in &rows_at {
        for (account, balance) in rows {
            now.insert(*account, *balance);
        }
        if *timestamp <= seeded_until {
            continue;
        }
        assert_eq!(rows.len(), 2, "the transfer at {timestamp} touched {} accounts, not two", rows.len());
        let sum: i128 = now.values().map(Balance::net_posted).sum();
        assert_eq!(sum, total, "at {timestamp} the accounts held {sum}, not {total}");
        let pending: i128 =
            now.values().map(|balance| balance.credits_pending - balance.debits_pending).sum();
        assert_eq!(pending, 0, "at {timestamp} pending debits and credits differ");
        for (account, balance) in &now {
            assert!(
                !flagged.contains(account) || balance.within_flag(),
                "at {timestamp} {account} broke its flag"
            );
        }
        instants += 1;
    }
    assert_eq!(now, last_balances, "the histories end at the current balances");
    figures.instants_checked = instants;
    figures
}

fn seed() -> u64 {
    let seed = rand::rng().random();
    eprintln!("bank workload seed {seed}");
    seed
}

fn report(name: &str, figures: &Figures) {
    eprintln!("bank workload {name}: {figures:?}");
    assert!(
        figures.acknowledged > figures.operations / 4,
        "too little was acknowledged to prove anything: {figures:?}"
    );
    assert!(figures.instants_checked > 0 && figures.account_reads > 0, "{figures:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bank_on_sqlite() {
    let app = common::spawn_app(&Backend::Sqlite).await;
    let api = Api::new(vec![format!("http://{}", app.address)], &app.admin_key);
    let figures = run_bank(api, seed()).await;
    report("sqlite", &figures);
    app.stop().await;
}

fn postgres() -> Option<Backend> {
    common::backends().into_iter().find(|backend| matches!(backend, Backend::Postgres(_)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bank_on_postgres() {
    let Some(backend) = postgres() else { return };
    let app = common::spawn_app(&backend).await;
    let api = Api::new(vec![format!("http://{}", app.address)], &app.admin_key);
    let figures = run_bank(api, seed()).await;
    report("postgres", &figures);
    app.stop().await;
}

/// Two `coffer` processes on one PostgreSQL database, each client request sent to either:
/// the batch row locks must keep them correct together.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bank_on_postgres_with_two_servers() {
    let Some(backend) = postgres() else { return };
    let database = ChildDatabase::new(&backend).await;
    let config = database.config();
    let (first, second) = tokio::join!(ChildServer::start(&config), ChildServer::start(&config));
    let api = Api::new(vec![first.base_url.clone(), second.base_url.clone()], CHILD_ADMIN_KEY);
    let figures = run_bank(api, seed()).await;
    report("postgres, two servers", &figures);
    first.stop().await;
    second.stop().await;
    database.drop().await;
}
