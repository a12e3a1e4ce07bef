//! The bank workload on several nodes (`tools/cluster/up.sh`): PostgreSQL with a streaming
//! replica, a three-server NATS JetStream cluster (stream R3), Redis, three `api` nodes
//! behind haproxy, two `relay` nodes and two `workers` nodes, all real processes on
//! loopback. Customers top up and pay each other through the balancer — half of the
//! clients over REST, half over gRPC (`WalletService.TransferMoney`, through haproxy's
//! HTTP/2 frontend) — while nodes are killed with SIGKILL and brought back: a NATS server,
//! the relay that holds the lease, and an `api` node. Afterwards:
//!
//! - money: the books verify (`coffer verify`), every wallet is non-negative, the wallets
//!   hold exactly what was topped up, and every transfer acknowledged (201, or OK over
//!   gRPC) is stored with its amount — no more, no fewer (each request is retried with its key until it
//!   has a definite answer, so nothing is left half-known);
//! - events: every event in the outbox was published, and the NATS stream holds each once;
//!   the killed NATS server is back in the cluster.
//!
//! Opt-in, as it takes a while: `COFFER_TEST_CLUSTER=smoke` (about a minute; `.ci/run`
//! sets it) or `COFFER_TEST_CLUSTER=long` (a few minutes, more customers). Unset: skipped.

mod common;

use std::{
    collections::{HashMap, HashSet},
    path::{Path, PathBuf},
    process::Command,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use coffer::{
    events::nats::{Nats, STREAM},
    grpc::proto::{self, wallet_service_client::WalletServiceClient},
};
use serde_json::{Value, json};
use tonic::{Code, transport::Channel};

/// How big a run is.
struct Size {
    customers: usize,
    clients: usize,
    run: Duration,
}

fn size() -> Option<Size> {
    match std::env::var("COFFER_TEST_CLUSTER").as_deref() {
        Ok("smoke") => Some(Size { customers: 12, clients: 4, run: Duration::from_secs(20) }),
        Ok("long") => Some(Size { customers: 60, clients: 8, run: Duration::from_secs(120) }),
        _ => None,
    }
}

fn tools() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tools/cluster")
}

/// The cluster; `down.sh` when dropped.
struct Cluster {
    dir: tempfile::TempDir,
    env: HashMap<String, String>,
}

impl Cluster {
    fn up() -> Self {
        let dir = tempfile::tempdir().unwrap();
        // Its output to a file: the servers it starts must not hold a pipe of ours open.
        let log = dir.path().join("up.log");
        let status = Command::new(tools().join("up.sh"))
            .arg(dir.path().join("cluster"))
            .env("COFFER_BIN", env!("CARGO_BIN_EXE_coffer"))
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::options().append(true).open(&log).unwrap())
            .status()
            .unwrap();
        assert!(status.success(), "up.sh failed:\n{}", std::fs::read_to_string(&log).unwrap_or_default());
        let text = std::fs::read_to_string(dir.path().join("cluster/env")).unwrap();
        let env =
            text.lines().filter_map(|line| line.split_once('=')).map(|(k, v)| (k.into(), v.into())).collect();
        Self { dir, env }
    }

    fn var(&self, name: &str) -> &str {
        &self.env[name]
    }

    fn node(&self, name: &str, action: &str) {
        let status = Command::new(tools().join("node.sh"))
            .arg(self.dir.path().join("cluster"))
            .args([name, action])
            .status()
            .unwrap();
        assert!(status.success(), "node.sh {name} {action}");
    }

    /// The relay node that holds the lease now: the holder in the database, found in the
    /// relay's log line that took it. Waits (10 s at most) for a holder that has logged it;
    /// fails the test with what it saw otherwise.
    async fn leading_relay(&self) -> &'static str {
        let mut seen = String::new();
        for _ in 0..50 {
            let output = Command::new("psql")
                .arg(self.var("DATABASE_URL"))
                .args(["-Atc", "SELECT holder FROM relay_lease"])
                .output()
                .unwrap();
            let holder = String::from_utf8_lossy(&output.stdout).trim().to_owned();
            seen = format!("psql {}: {holder:?} {}", output.status, String::from_utf8_lossy(&output.stderr));
            let logged = ["relay1", "relay2"].into_iter().find(|name| {
                let log = self.dir.path().join(format!("cluster/logs/{name}.log"));
                !holder.is_empty() && std::fs::read_to_string(log).unwrap_or_default().contains(&holder)
            });
            if let Some(name) = logged {
                return name;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let lease_lines: Vec<String> = ["relay1", "relay2"]
            .iter()
            .flat_map(|name| {
                let log = self.dir.path().join(format!("cluster/logs/{name}.log"));
                let text = std::fs::read_to_string(log).unwrap_or_default();
                text.lines()
                    .filter(|line| line.contains("lease"))
                    .map(|line| format!("{name}: {line}"))
                    .collect::<Vec<_>>()
            })
            .collect();
        panic!("no relay holds the lease: {seen}\n{}", lease_lines.join("\n"));
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new(tools().join("down.sh")).arg(self.dir.path().join("cluster")).status();
    }
}

/// A customer of the run.
#[derive(Clone)]
struct Customer {
    token: String,
    wallet: String,
}

/// Sends one request with `key` until it has a definite answer (not a 5xx, not a broken
/// connection): a node may be down, the balancer moves the retry to another. Bounded.
async fn until_answered(
    client: &reqwest::Client,
    url: &str,
    token: Option<&str>,
    key: Option<&str>,
    body: &Value,
) -> (u16, Value) {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let mut request = client.post(url).json(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        let last = match request.send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                let body = response.json().await.unwrap_or(Value::Null);
                // 409 idempotency_key_in_use: the first attempt with this key still runs.
                let in_flight = status == 409 && body["code"] == "idempotency_key_in_use";
                if status < 500 && status != 429 && !in_flight {
                    return (status, body);
                }
                format!("{status} {body}")
            }
            Err(error) => error.to_string(),
        };
        assert!(Instant::now() < deadline, "no definite answer from {url} in 90 s; the last: {last}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A transfer over gRPC with `key`, sent until it has a definite answer, as
/// [`until_answered`] does over REST: a node down (UNAVAILABLE, or what the balancer makes
/// of a dropped connection), the key's first attempt still running (ABORTED) or the rate
/// limit (RESOURCE_EXHAUSTED) are tried again. `Ok(id)`, or the refusal's code.
async fn transfer_over_grpc(
    grpc: &mut WalletServiceClient<Channel>,
    token: &str,
    key: &str,
    message: proto::TransferMoneyRequest,
) -> Result<String, Code> {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let mut request = tonic::Request::new(message.clone());
        request.metadata_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
        request.metadata_mut().insert("idempotency-key", key.parse().unwrap());
        request.set_timeout(Duration::from_secs(30));
        let last = match grpc.transfer_money(request).await {
            Ok(answer) => return Ok(uuid::Uuid::from_slice(&answer.into_inner().id).unwrap().to_string()),
            Err(status) => match status.code() {
                Code::Unavailable
                | Code::Unknown
                | Code::Internal
                | Code::Cancelled
                | Code::DeadlineExceeded
                | Code::Aborted
                | Code::ResourceExhausted => format!("{status:?}"),
                refused => return Err(refused),
            },
        };
        assert!(Instant::now() < deadline, "no definite gRPC answer in 90 s; the last: {last}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn the_bank_workload_holds_while_nodes_die() {
    let Some(size) = size() else { return };
    let cluster = Cluster::up();
    let balancer = cluster.var("COFFER_BALANCER").to_owned();
    let grpc = WalletServiceClient::new(
        Channel::from_shared(cluster.var("COFFER_BALANCER_GRPC").to_owned()).unwrap().connect_lazy(),
    );
    let client = coffer::notifications::http_client().timeout(Duration::from_secs(30)).build().unwrap();

    // Customers, each with a USD wallet topped up by 10,000.
    let mut customers = Vec::new();
    for index in 0..size.customers {
        let email = format!("c{index}@example.com");
        let password = "correct horse battery staple";
        let register = json!({"email": email, "password": password, "name": "Cluster"});
        let (status, body) =
            until_answered(&client, &format!("{balancer}/v1/auth/register"), None, None, &register).await;
        // 409: an attempt whose answer was lost had registered them.
        assert!(status == 201 || (status == 409 && body["code"] == "email_taken"), "{body}");
        let login = json!({"email": email, "password": password});
        let (status, tokens) =
            until_answered(&client, &format!("{balancer}/v1/auth/login"), None, None, &login).await;
        assert_eq!(status, 200, "{tokens}");
        let token = tokens["access_token"].as_str().unwrap().to_owned();
        let key = uuid::Uuid::now_v7().to_string();
        let (status, wallet) = until_answered(
            &client,
            &format!("{balancer}/v1/wallets"),
            Some(&token),
            Some(&key),
            &json!({"currency": "USD"}),
        )
        .await;
        assert_eq!(status, 201, "{wallet}");
        let wallet = wallet["id"].as_str().unwrap().to_owned();
        let key = uuid::Uuid::now_v7().to_string();
        let top_up = json!({"amount": 10_000, "payment_method": "tok_visa"});
        let (status, body) = until_answered(
            &client,
            &format!("{balancer}/v1/wallets/{wallet}/top-ups"),
            Some(&token),
            Some(&key),
            &top_up,
        )
        .await;
        assert_eq!(status, 201, "{body}");
        assert_eq!(body["status"], "succeeded", "{body}");
        customers.push(Customer { token, wallet });
    }
    let topped_up = 10_000 * size.customers as i64;

    // Transfers from several clients at once, until the run's end.
    // (transfer id, amount, the payer's token).
    let acknowledged = Arc::new(Mutex::new(Vec::<(String, i64, String)>::new()));
    let refused = Arc::new(Mutex::new(0usize));
    let over_grpc = Arc::new(Mutex::new(0usize));
    let started = Instant::now();
    let mut clients = Vec::new();
    for worker in 0..size.clients {
        let (client, balancer, customers) = (client.clone(), balancer.clone(), customers.clone());
        let (acknowledged, refused, run) = (acknowledged.clone(), refused.clone(), size.run);
        let (mut grpc, over_grpc) = (grpc.clone(), over_grpc.clone());
        clients.push(tokio::spawn(async move {
            let mut turn = worker;
            while started.elapsed() < run {
                turn += 7;
                let from = &customers[turn % customers.len()];
                let to = &customers[(turn * 5 + 3) % customers.len()];
                if from.wallet == to.wallet {
                    continue;
                }
                let amount = 1 + (turn % 400) as i64;
                let key = uuid::Uuid::now_v7().to_string();
                // Odd clients over gRPC, even ones over REST.
                if worker % 2 == 1 {
                    let message = proto::TransferMoneyRequest {
                        from_wallet_id: uuid::Uuid::parse_str(&from.wallet).unwrap().as_bytes().to_vec(),
                        to: Some(proto::transfer_money_request::To::ToWalletId(
                            uuid::Uuid::parse_str(&to.wallet).unwrap().as_bytes().to_vec(),
                        )),
                        amount: amount as u64,
                        description: String::new(),
                    };
                    match transfer_over_grpc(&mut grpc, &from.token, &key, message).await {
                        Ok(id) => {
                            acknowledged.lock().unwrap().push((id, amount, from.token.clone()));
                            *over_grpc.lock().unwrap() += 1;
                        }
                        Err(Code::FailedPrecondition) => *refused.lock().unwrap() += 1,
                        Err(other) => panic!("gRPC transfer answered {other:?}"),
                    }
                    continue;
                }
                let body =
                    json!({"from_wallet_id": from.wallet, "to_wallet_id": to.wallet, "amount": amount});
                let (status, answer) = until_answered(
                    &client,
                    &format!("{balancer}/v1/transfers"),
                    Some(&from.token),
                    Some(&key),
                    &body,
                )
                .await;
                match status {
                    201 => {
                        let id = answer["id"].as_str().unwrap().to_owned();
                        acknowledged.lock().unwrap().push((id, amount, from.token.clone()));
                    }
                    422 => *refused.lock().unwrap() += 1,
                    other => panic!("transfer answered {other}: {answer}"),
                }
            }
        }));
    }

    // Meanwhile: a NATS server, the publishing relay and an api node die and come back.
    let at = |fraction: f64| size.run.mul_f64(fraction);
    let wait_until = |moment: Duration| async move {
        if let Some(left) = moment.checked_sub(started.elapsed()) {
            tokio::time::sleep(left).await;
        }
    };
    wait_until(at(0.15)).await;
    cluster.node("nats-n1", "kill");
    wait_until(at(0.35)).await;
    cluster.node("nats-n1", "start");
    wait_until(at(0.45)).await;
    let leader = cluster.leading_relay().await;
    cluster.node(leader, "kill");
    wait_until(at(0.55)).await;
    cluster.node("api2", "kill");
    wait_until(at(0.75)).await;
    cluster.node("api2", "start");
    cluster.node(leader, "start");
    for client in clients {
        client.await.unwrap();
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(!acknowledged.is_empty(), "transfers went through");

    // Money.
    let mut total = 0;
    for customer in &customers {
        let response = client
            .get(format!("{balancer}/v1/wallets/{}", customer.wallet))
            .bearer_auth(&customer.token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let wallet: Value = response.json().await.unwrap();
        let available = wallet["balance"]["available"].as_i64().unwrap();
        assert!(available >= 0, "no wallet below zero: {wallet}");
        total += wallet["balance"]["posted"].as_i64().unwrap();
    }
    assert_eq!(total, topped_up, "the wallets hold what was topped up");
    for (id, amount, token) in &acknowledged {
        let response =
            client.get(format!("{balancer}/v1/transfers/{id}")).bearer_auth(token).send().await.unwrap();
        assert_eq!(response.status(), 200, "acknowledged transfer {id} is stored");
        let stored: Value = response.json().await.unwrap();
        assert_eq!(stored["amount"].as_i64(), Some(*amount), "{stored}");
    }
    let database = cluster.var("DATABASE_URL");
    let psql = |sql: &str| {
        let output = Command::new("psql").arg(database).args(["-Atc", sql]).output().unwrap();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8(output.stdout).unwrap().trim().to_owned()
    };
    let stored: usize = psql("SELECT count(*) FROM transfer_notes WHERE kind = 'transfer'").parse().unwrap();
    assert_eq!(stored, acknowledged.len(), "stored == acknowledged: no duplicate, none lost");
    let verify = Command::new(env!("CARGO_BIN_EXE_coffer"))
        .args(["verify", "--database-url", database])
        .output()
        .unwrap();
    assert!(verify.status.success(), "the books verify: {}", String::from_utf8_lossy(&verify.stdout));

    // Events: all relayed, each once in the stream.
    let deadline = Instant::now() + Duration::from_secs(60);
    while psql("SELECT count(*) FROM outbox WHERE sent_at IS NULL") != "0" {
        assert!(Instant::now() < deadline, "the relays did not drain the outbox");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let outbox: HashSet<String> = psql("SELECT id FROM outbox").lines().map(str::to_owned).collect();
    let nats = Nats::connect(cluster.var("COFFER_NATS_URL")).await.unwrap();
    let published = common::nats::stream_ids(&nats, 1).await;
    let unique: HashSet<&String> = published.iter().collect();
    assert_eq!(unique.len(), published.len(), "no event twice in the stream");
    let missing: Vec<&String> = outbox.iter().filter(|id| !unique.contains(id)).collect();
    assert!(missing.is_empty(), "{} of {} events never reached the stream", missing.len(), outbox.len());
    let mut stream = nats.jetstream().get_stream(STREAM).await.unwrap();
    let info = stream.info().await.unwrap();
    let cluster_info = info.cluster.as_ref().expect("a clustered stream");
    assert_eq!(cluster_info.replicas.len(), 2, "a leader and two replicas: {cluster_info:?}");
    assert!(
        cluster_info.replicas.iter().all(|peer| peer.current),
        "the killed server caught up: {cluster_info:?}"
    );
    let over_grpc = *over_grpc.lock().unwrap();
    assert!(over_grpc > 0, "transfers went through over gRPC too");
    eprintln!(
        "cluster run: {} customers, {} transfers acknowledged ({over_grpc} over gRPC), {} refused \
         (insufficient funds), {} events published once each; killed: NATS n1, {leader}, api2",
        size.customers,
        acknowledged.len(),
        refused.lock().unwrap(),
        outbox.len()
    );
}
