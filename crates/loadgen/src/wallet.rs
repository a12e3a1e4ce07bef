//! The `wallet` scenario: P2P transfers through the full wallet API — a customer's access
//! token, an `Idempotency-Key` per request, ownership checks, the idempotency record and
//! the history note written with each transfer — one transfer per request.
//!
//! The workers drive the light client (`wire`) unless [`Client::Reqwest`] is asked for:
//! one template per paying customer (its token and wallet fixed), copied per request
//! and patched in two UUID slots, the `Idempotency-Key` and the recipient's wallet.
//!
//! Setup registers the customers, opens a USD wallet for each and tops it up from a card
//! (the built-in mock gateway), with reqwest. The check afterwards reads every wallet's ledger account
//! through the admin API: money conserved, no wallet below zero, and exactly as many
//! transfers stored as were acknowledged (each moves one minor unit).

use std::{
    future::Future,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context, ensure};
use serde_json::{Value, json};
use tokio::task::JoinSet;
use uuid::Uuid;

use crate::{
    api::REQUEST_TIMEOUT_MS,
    http::Clock,
    latency::Latencies,
    run::Client,
    wire::{self, Connection, Endpoint, Part, Request},
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
    /// Connections the light client opened again after the first.
    pub reconnects: u64,
}

impl Outcome {
    /// Counts one request: `Ok(None)` is a 201, `Ok(Some(answer))` any other answer,
    /// `Err` no answer (the transfer may or may not have happened). Returns whether the
    /// worker should back off.
    fn count(&mut self, result: anyhow::Result<Option<String>>, measured: bool) -> bool {
        match result {
            Ok(None) => {
                self.acknowledged_ok += 1;
                self.measured_ok += u64::from(measured);
                false
            }
            Ok(Some(answer)) => {
                self.errors += u64::from(measured);
                self.first_error.get_or_insert(answer);
                false
            }
            Err(error) => {
                self.unknown += 1;
                self.errors += u64::from(measured);
                self.first_error.get_or_insert_with(|| format!("{error:#}"));
                true
            }
        }
    }
}

async fn send(request: reqwest::RequestBuilder) -> anyhow::Result<(u16, Value)> {
    let response = request.send().await?;
    let status = response.status().as_u16();
    let body = response.bytes().await?;
    Ok((status, serde_json::from_slice(&body).unwrap_or(Value::Null)))
}

/// Monitors `setup` may set on each wallet: none of them is crossed by one-unit transfers.
const MONITORS: [(&str, u64); 3] =
    [("available_below", 1), ("available_above", 2 * FUNDS), ("debit_above", 1_000)];

/// Registers `CUSTOMERS` customers, opens and funds a wallet for each, and sets the first
/// `monitors` of [`MONITORS`] on it.
pub async fn setup(client: &reqwest::Client, base_url: &str, monitors: u8) -> anyhow::Result<Vec<Customer>> {
    let mut customers = Vec::with_capacity(CUSTOMERS);
    let run = Uuid::now_v7().simple().to_string();
    let mut meter = coffer::progress::Meter::new("wallet setup", "customers");
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
        for (condition, amount) in MONITORS.iter().take(usize::from(monitors)) {
            let (status, body) = send(
                client
                    .post(format!("{base_url}/v1/wallets/{wallet_id}/monitors"))
                    .bearer_auth(&token)
                    .json(&json!({"condition": condition, "amount": amount})),
            )
            .await?;
            ensure!(status == 201, "set a monitor: {status} {body}");
        }
        customers.push(Customer { token, wallet_id });
        meter.at(customers.len() as u64, CUSTOMERS as u64);
    }
    Ok(customers)
}

/// `connections` workers, each sending one transfer per request until the clock's end,
/// on the light client unless `client` is reqwest.
pub async fn run(
    client: &reqwest::Client,
    base_url: &str,
    customers: Arc<Vec<Customer>>,
    shape: Shape,
    connections: usize,
    clock: Clock,
    driver: Client,
) -> anyhow::Result<Outcome> {
    let mut total = match driver {
        Client::Light => {
            let endpoint = Arc::new(Endpoint::resolve(base_url).await?);
            let templates: Arc<Vec<Request>> =
                Arc::new(customers.iter().map(|customer| transfer_request(&endpoint, customer)).collect());
            let workers: Vec<_> = (0..connections)
                .map(|_| light_worker(endpoint.clone(), templates.clone(), customers.clone(), shape, clock))
                .collect();
            wire::on_own_thread(move || collect(workers)).await?
        }
        Client::Reqwest => {
            let workers = (0..connections).map(|_| {
                let (client, base_url, customers) = (client.clone(), base_url.to_owned(), customers.clone());
                async move {
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
                        let result = result.map(|(status, body)| (status != 201).then(|| format!("{status} {body}")));
                        if outcome.count(result, measured) {
                            tokio::time::sleep(Duration::from_millis(ERROR_BACKOFF_MS)).await;
                        }
                    }
                    outcome
                }
            });
            collect(workers).await?
        }
    };
    total.measured = clock.measured();
    Ok(total)
}

/// Runs the workers as tasks of the current runtime and adds up their outcomes.
async fn collect<W>(workers: impl IntoIterator<Item = W>) -> anyhow::Result<Outcome>
where
    W: Future<Output = Outcome> + Send + 'static,
{
    let mut running = JoinSet::new();
    for worker in workers {
        running.spawn(worker);
    }
    let mut total = Outcome::default();
    while let Some(outcome) = running.join_next().await {
        let outcome = outcome?;
        total.measured_ok += outcome.measured_ok;
        total.acknowledged_ok += outcome.acknowledged_ok;
        total.unknown += outcome.unknown;
        total.errors += outcome.errors;
        total.latencies.merge(&outcome.latencies);
        total.first_error = total.first_error.or(outcome.first_error);
        total.reconnects += outcome.reconnects;
    }
    Ok(total)
}

/// `POST /v1/transfers` of one unit from `customer`'s wallet, with its token: the
/// `Idempotency-Key` in slot 0 and the recipient's wallet id in slot 1. The body is the
/// one the reqwest path sends (`json!` keeps the keys in this order).
fn transfer_request(endpoint: &Endpoint, customer: &Customer) -> Request {
    let authorization = format!("Bearer {}", customer.token);
    let from = customer.wallet_id.hyphenated().to_string();
    let body = [
        Part::Text(r#"{"from_wallet_id":""#),
        Part::Text(&from),
        Part::Text(r#"","to_wallet_id":""#),
        Part::Uuid,
        Part::Text(r#"","amount":1}"#),
    ];
    Request::new(
        endpoint,
        "POST",
        &[Part::Text("/v1/transfers")],
        &[("Authorization", &[Part::Text(&authorization)]), ("Idempotency-Key", &[Part::Uuid])],
        Some(&body),
    )
}

/// A `wallet` worker on the light client: one connection; per transfer the payer's
/// template is copied into the worker's buffer and its two slots patched. Keys are this
/// worker's random 64 bits and a sequence number: unique without a clock or a lock.
async fn light_worker(
    endpoint: Arc<Endpoint>,
    templates: Arc<Vec<Request>>,
    customers: Arc<Vec<Customer>>,
    shape: Shape,
    clock: Clock,
) -> Outcome {
    let mut outcome = Outcome::default();
    let mut random = Random::new(rand::random());
    let mut connection = Connection::new(&endpoint, Duration::from_millis(REQUEST_TIMEOUT_MS));
    let mut request = Request::default();
    let key_prefix = u128::from(rand::random::<u64>()) << 64;
    let mut sequence = 0u64;
    while Instant::now() < clock.end {
        let (from, to) = shape.pick(&mut random, customers.len());
        request.copy_from(&templates[from]);
        sequence += 1;
        request.set_uuid(0, key_prefix | u128::from(sequence));
        request.set_uuid(1, customers[to].wallet_id.as_u128());
        let sent = Instant::now();
        let result = connection
            .send(request.as_bytes())
            .await
            .map(|response| (response.status != 201).then(|| response.describe()));
        let measured = sent >= clock.measure_from;
        if measured {
            outcome.latencies.record(sent.elapsed());
        }
        if outcome.count(result, measured) {
            tokio::time::sleep(Duration::from_millis(ERROR_BACKOFF_MS)).await;
        }
    }
    outcome.reconnects = connection.reconnects;
    outcome
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_light_transfer_request_carries_the_body_and_headers_reqwest_sends() {
        let endpoint = Endpoint::resolve("http://127.0.0.1:9").await.unwrap();
        let (from, to) = (Uuid::from_u128(7), Uuid::from_u128(8));
        let customer = Customer { token: "token".into(), wallet_id: from };
        let mut request = transfer_request(&endpoint, &customer);
        request.set_uuid(0, 42);
        request.set_uuid(1, to.as_u128());
        let text = String::from_utf8(request.as_bytes().to_vec()).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        let expected = json!({"from_wallet_id": from, "to_wallet_id": to, "amount": 1}).to_string();
        assert_eq!(body, expected);
        assert!(head.starts_with("POST /v1/transfers HTTP/1.1\r\n"), "{head}");
        assert!(head.contains("\r\nAuthorization: Bearer token\r\n"), "{head}");
        assert!(head.contains(&format!("\r\nIdempotency-Key: {}\r\n", Uuid::from_u128(42))), "{head}");
    }
}
