//! The `wallet` scenario: P2P transfers through the full wallet API — a customer's access
//! token, an `Idempotency-Key` per request, ownership checks, the idempotency record and
//! the history note written with each transfer — one transfer per request.
//!
//! Setup registers the customers, opens a USD wallet for each and tops it up from a card
//! (the built-in mock gateway). The check afterwards reads every wallet's ledger account
//! through the admin API: money conserved, no wallet below zero, and exactly as many
//! transfers stored as were acknowledged (each moves one minor unit).

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context, ensure};
use serde_json::{Value, json};
use tokio::task::JoinSet;
use uuid::Uuid;

use crate::{
    http::Clock,
    latency::Latencies,
    workload::{Random, Shape},
};

/// Customers (one wallet each) the scenario moves money between. Registration is the
/// slow part of setup (a password hash each), so fewer than the ledger scenarios' wallets.
pub const CUSTOMERS: usize = 64;
/// What each wallet is topped up with, in minor units: far more than a run can spend at
/// one unit per transfer, so refusals for lack of funds do not blur the figure.
const FUNDS: u64 = 1_000_000_000;
/// Pause after a failed request, so a failing server is not hammered in a tight loop.
const ERROR_BACKOFF_MS: u64 = 10;

/// A customer ready to pay.
#[derive(Clone, Debug)]
pub struct Customer {
    pub token: String,
    pub wallet_id: Uuid,
}

/// What the workers saw.
#[derive(Debug, Default)]
pub struct Outcome {
    pub measured_ok: u64,
    pub acknowledged_ok: u64,
    /// Requests whose outcome is unknown (a transport error): each may or may not have moved money.
    pub unknown: u64,
    pub errors: u64,
    pub latencies: Latencies,
    pub first_error: Option<String>,
    pub measured: Duration,
}

async fn send(request: reqwest::RequestBuilder) -> anyhow::Result<(u16, Value)> {
    let response = request.send().await?;
    let status = response.status().as_u16();
    let body = response.bytes().await?;
    Ok((status, serde_json::from_slice(&body).unwrap_or(Value::Null)))
}

/// Registers `CUSTOMERS` customers, opens and funds a wallet for each.
pub async fn setup(client: &reqwest::Client, base_url: &str) -> anyhow::Result<Vec<Customer>> {
    let mut customers = Vec::with_capacity(CUSTOMERS);
    let run = Uuid::now_v7().simple().to_string();
    for index in 0..CUSTOMERS {
        let email = format!("bench{index}-{run}@loadgen.example");
        let password = format!("loadgen passphrase {run}");
        let register = json!({"email": email, "password": password, "name": format!("Bench {index}")});
        let (status, body) =
            send(client.post(format!("{base_url}/v1/auth/register")).json(&register)).await?;
        ensure!(status == 201, "register: {status} {body}");
        let login = json!({"email": email, "password": password});
        let (status, body) = send(client.post(format!("{base_url}/v1/auth/login")).json(&login)).await?;
        ensure!(status == 200, "login: {status} {body}");
        let token = body["access_token"].as_str().context("an access token")?.to_owned();
        let (status, body) = send(
            client
                .post(format!("{base_url}/v1/wallets"))
                .bearer_auth(&token)
                .header("idempotency-key", format!("wallet-{index}"))
                .json(&json!({"currency": "USD"})),
        )
        .await?;
        ensure!(status == 201, "open wallet: {status} {body}");
        let wallet_id: Uuid = body["id"].as_str().context("a wallet id")?.parse()?;
        let (status, body) = send(
            client
                .post(format!("{base_url}/v1/wallets/{wallet_id}/top-ups"))
                .bearer_auth(&token)
                .header("idempotency-key", format!("top-up-{index}"))
                .json(&json!({"amount": FUNDS, "payment_method": "tok_visa"})),
        )
        .await?;
        ensure!(status == 201 && body["status"] == "succeeded", "top up: {status} {body}");
        customers.push(Customer { token, wallet_id });
    }
    Ok(customers)
}

/// `connections` workers, each sending one transfer per request until the clock's end.
pub async fn run(
    client: &reqwest::Client,
    base_url: &str,
    customers: Arc<Vec<Customer>>,
    shape: Shape,
    connections: usize,
    clock: Clock,
) -> anyhow::Result<Outcome> {
    let mut workers = JoinSet::new();
    for _ in 0..connections {
        let (client, base_url, customers) = (client.clone(), base_url.to_owned(), customers.clone());
        workers.spawn(async move {
            let mut outcome = Outcome::default();
            let mut random = Random::new(rand::random());
            while Instant::now() < clock.end {
                let (from, to) = shape.pick(&mut random, customers.len());
                let body = json!({"from_wallet_id": customers[from].wallet_id, "to_wallet_id": customers[to].wallet_id, "amount": 1});
                let request = client
                    .post(format!("{base_url}/v1/transfers"))
                    .bearer_auth(&customers[from].token)
                    .header("idempotency-key", Uuid::now_v7().to_string())
                    .json(&body);
                let sent = Instant::now();
                let result = send(request).await;
                let measured = sent >= clock.measure_from;
                if measured {
                    outcome.latencies.record(sent.elapsed());
                }
                match result {
                    Ok((201, _)) => {
                        outcome.acknowledged_ok += 1;
                        outcome.measured_ok += u64::from(measured);
                    }
                    Ok((status, body)) => {
                        outcome.errors += u64::from(measured);
                        outcome.first_error.get_or_insert_with(|| format!("{status} {body}"));
                    }
                    Err(error) => {
                        outcome.unknown += 1;
                        outcome.errors += u64::from(measured);
                        outcome.first_error.get_or_insert_with(|| format!("{error:#}"));
                        tokio::time::sleep(Duration::from_millis(ERROR_BACKOFF_MS)).await;
                    }
                }
            }
            outcome
        });
    }
    let mut total = Outcome::default();
    while let Some(outcome) = workers.join_next().await {
        let outcome = outcome?;
        total.measured_ok += outcome.measured_ok;
        total.acknowledged_ok += outcome.acknowledged_ok;
        total.unknown += outcome.unknown;
        total.errors += outcome.errors;
        total.latencies.merge(&outcome.latencies);
        total.first_error = total.first_error.or(outcome.first_error);
    }
    total.measured = clock.measured();
    Ok(total)
}

/// Reads every wallet's ledger account with the admin key and checks the books.
pub async fn check(
    client: &reqwest::Client,
    base_url: &str,
    admin_key: &str,
    customers: &[Customer],
    outcome: &Outcome,
) -> anyhow::Result<Vec<String>> {
    let (mut debits, mut credits) = (0u64, 0u64);
    let mut failures = Vec::new();
    for customer in customers {
        let (status, account) = send(
            client
                .get(format!("{base_url}/v1/ledger/accounts/{}", customer.wallet_id))
                .bearer_auth(admin_key),
        )
        .await?;
        ensure!(status == 200, "read wallet account: {status} {account}");
        let (debited, credited) = (
            account["debits_posted"].as_u64().context("debits_posted")?,
            account["credits_posted"].as_u64().context("credits_posted")?,
        );
        if debited > credited {
            failures.push(format!("wallet {} went below zero: {credited} - {debited}", customer.wallet_id));
        }
        debits += debited;
        credits += credited;
    }
    let funded = FUNDS * customers.len() as u64;
    // Every transfer moves one unit from one wallet to another: wallets' debits count
    // transfers, and their credits are the top-ups plus the same count.
    let stored = debits;
    if credits != funded + stored {
        failures
            .push(format!("money not conserved: credits {credits} != top-ups {funded} + transfers {stored}"));
    }
    let (low, high) = (outcome.acknowledged_ok, outcome.acknowledged_ok + outcome.unknown);
    if !(low..=high).contains(&stored) {
        failures.push(format!(
            "{stored} transfers stored, but {low} acknowledged (and {} unknown)",
            outcome.unknown
        ));
    }
    Ok(failures)
}
