//! Limits shared by several API nodes through Redis (`COFFER_REDIS_URL`): three real
//! `coffer serve` processes on one PostgreSQL database and one Redis, requests spread
//! over them as a load balancer would. The failed-login throttle, the money rate limit
//! and the per-customer stream cap hold at their configured totals across the three, a
//! stream ticket issued by one node opens a stream on another, and with Redis taken away
//! (a proxy in front of it is cut) logins are refused, money requests and streams go on
//! under each node's own limits, and nothing answers 5xx.
//!
//! Needs `COFFER_TEST_DATABASE_URL` and `COFFER_TEST_REDIS_URL` (`.ci/run` sets both);
//! without them the tests return at once, except under `CI=true`, where they fail.

mod common;

use std::time::Duration;

use common::{
    Backend, TEST_PASSWORD,
    process::{ChildConfig, ChildDatabase, ChildServer},
    proxy::Proxy,
};
use futures::future::join_all;
use serde_json::{Value, json};

/// The Redis to share limits in, or `None` (the test is skipped) outside CI.
fn redis_url() -> Option<String> {
    match std::env::var("COFFER_TEST_REDIS_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var("CI").is_ok_and(|ci| ci == "true") => {
            panic!("CI=true but COFFER_TEST_REDIS_URL is not set: the Redis suite must run in CI")
        }
        _ => None,
    }
}

/// Three nodes behind no balancer (the test spreads the requests): one with every role,
/// two API-only, sharing `redis` under a key prefix of their own.
struct Cluster {
    database: ChildDatabase,
    nodes: Vec<ChildServer>,
    client: reqwest::Client,
}

impl Cluster {
    /// `None` when PostgreSQL or Redis is not configured (outside CI).
    async fn start(redis: Option<&str>, settings: &[(&str, &str)]) -> Option<Self> {
        let backend =
            common::backends().into_iter().find(|backend| matches!(backend, Backend::Postgres(_)))?;
        let redis = match redis {
            Some(redis) => redis.to_owned(),
            None => redis_url()?,
        };
        let database = ChildDatabase::new(&backend).await;
        let prefix = format!("coffer-test-{}", uuid::Uuid::new_v4().simple());
        let config = |roles: &str| {
            let mut config: ChildConfig = database
                .config()
                .with_env("COFFER_ROLES", roles)
                .with_env("COFFER_REDIS_URL", &redis)
                .with_env("COFFER_REDIS_KEY_PREFIX", &prefix);
            for (name, value) in settings {
                config = config.with_env(name, value);
            }
            config
        };
        // The first migrates the database; the others start on it.
        let first = ChildServer::start(&config("api,relay,workers")).await;
        let api = config("api");
        let (second, third) = tokio::join!(ChildServer::start(&api), ChildServer::start(&api));
        let client = coffer::notifications::http_client().build().unwrap();
        Some(Self { database, nodes: vec![first, second, third], client })
    }

    /// Node `n` (taken modulo three, so a loop can round-robin).
    fn node(&self, n: usize) -> &ChildServer {
        &self.nodes[n % self.nodes.len()]
    }

    async fn send(
        &self,
        n: usize,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Value,
    ) -> (u16, Value, Option<String>) {
        let mut request = self.client.request(method, self.node(n).url(path)).json(&body);
        if let Some(token) = token {
            request = request.bearer_auth(token).header("Idempotency-Key", uuid::Uuid::now_v7().to_string());
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let retry_after =
            response.headers().get("retry-after").map(|value| value.to_str().unwrap().to_owned());
        let body = response.json().await.unwrap_or(Value::Null);
        (status, body, retry_after)
    }

    async fn login(&self, n: usize, email: &str, password: &str) -> (u16, Value, Option<String>) {
        self.send(
            n,
            reqwest::Method::POST,
            "/v1/auth/login",
            None,
            json!({"email": email, "password": password}),
        )
        .await
    }

    /// Registers `email` on node 0 and logs in there; returns the access token.
    async fn customer(&self, email: &str) -> String {
        let body = json!({"email": email, "password": TEST_PASSWORD, "name": "Shared Limits"});
        let (status, customer, _) =
            self.send(0, reqwest::Method::POST, "/v1/auth/register", None, body).await;
        assert_eq!(status, 201, "{customer}");
        let (status, tokens, _) = self.login(0, email, TEST_PASSWORD).await;
        assert_eq!(status, 200, "{tokens}");
        tokens["access_token"].as_str().unwrap().to_owned()
    }

    /// A stream ticket from node `n`.
    async fn ticket(&self, n: usize, token: &str) -> String {
        let (status, body, _) =
            self.send(n, reqwest::Method::POST, "/v1/stream/tickets", Some(token), json!({})).await;
        assert_eq!(status, 201, "{body}");
        body["ticket"].as_str().unwrap().to_owned()
    }

    /// Node `n`'s stream, opened with `ticket`.
    fn stream_url(&self, n: usize, ticket: &str) -> String {
        format!("{}/v1/stream?ticket={ticket}", self.node(n).base_url.replacen("http", "ws", 1))
    }

    async fn stop(self) {
        for node in self.nodes {
            node.stop().await;
        }
        self.database.drop().await;
    }
}

/// Tallies statuses: how many of each.
fn tally(statuses: impl IntoIterator<Item = u16>) -> std::collections::BTreeMap<u16, usize> {
    let mut counts = std::collections::BTreeMap::new();
    for status in statuses {
        *counts.entry(status).or_default() += 1;
    }
    counts
}

#[tokio::test]
async fn a_brute_force_across_three_nodes_is_throttled_at_the_configured_total() {
    let settings =
        [("COFFER_LOGIN_FAILURES_PER_ACCOUNT_MAX", "5"), ("COFFER_LOGIN_FAILURES_PER_IP_MAX", "8")];
    let Some(cluster) = Cluster::start(None, &settings).await else { return };
    cluster.customer("victim@example.com").await;

    // Twelve wrong guesses at once, spread over the three nodes: each node alone would
    // allow five (fifteen in all); together they allow exactly five.
    let guesses = (0..12).map(|n| cluster.login(n, "victim@example.com", "wrong password 1234"));
    let outcomes = join_all(guesses).await;
    let counts = tally(outcomes.iter().map(|(status, _, _)| *status));
    assert_eq!(counts, [(401, 5), (429, 7)].into(), "{outcomes:?}");
    for (status, body, retry_after) in &outcomes {
        if *status == 429 {
            assert_eq!(body["code"], "too_many_requests", "{body}");
            let wait: u64 = retry_after.as_deref().expect("Retry-After").parse().unwrap();
            assert!((1..=900).contains(&wait), "{wait}");
        }
    }
    // The right password is refused too now, on every node.
    for n in 0..3 {
        assert_eq!(cluster.login(n, "victim@example.com", TEST_PASSWORD).await.0, 429);
    }

    // The address's count (eight) is shared as well: five failures so far, three more on
    // other accounts, then this address is refused for any account.
    for n in 0..3 {
        let (status, body, _) =
            cluster.login(n, &format!("nobody{n}@example.com"), "wrong password 1234").await;
        assert_eq!(status, 401, "{body}");
    }
    let (status, _, _) = cluster.login(1, "someone-else@example.com", "wrong password 1234").await;
    assert_eq!(status, 429, "the address has used its eight attempts across the nodes");
    cluster.stop().await;
}

#[tokio::test]
async fn money_requests_and_streams_are_limited_across_nodes_and_tickets_open_anywhere() {
    let settings =
        [("COFFER_MONEY_REQUESTS_PER_MINUTE", "6"), ("COFFER_STREAM_CONNECTIONS_PER_CUSTOMER_MAX", "2")];
    let Some(cluster) = Cluster::start(None, &settings).await else { return };
    let token = cluster.customer("busy@example.com").await;

    // Money requests: six a minute in all, however they are spread.
    let opens = (0..12).map(|n| {
        cluster.send(n, reqwest::Method::POST, "/v1/wallets", Some(&token), json!({"currency": "EUR"}))
    });
    let outcomes = join_all(opens).await;
    let limited = outcomes.iter().filter(|(status, _, _)| *status == 429).count();
    assert_eq!(limited, 6, "{outcomes:?}");
    assert!(outcomes.iter().all(|(status, _, _)| *status < 500), "{outcomes:?}");

    // A ticket from node 0 opens a stream on node 1; it is spent there for every node.
    let ticket = |n: usize| cluster.ticket(n, &token);
    let stream_url = |n: usize, ticket: &str| cluster.stream_url(n, ticket);
    let first_ticket = ticket(0).await;
    let (first, _) =
        tokio_tungstenite::connect_async(stream_url(1, &first_ticket)).await.expect("opens on node 1");
    let again = tokio_tungstenite::connect_async(stream_url(2, &first_ticket)).await;
    assert!(again.is_err(), "a spent ticket opens nothing on another node");

    // Streams: two per customer across the nodes; the third is refused wherever it lands.
    let (second, _) =
        tokio_tungstenite::connect_async(stream_url(2, &ticket(2).await)).await.expect("second");
    let third = tokio_tungstenite::connect_async(stream_url(0, &ticket(1).await)).await;
    match third {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => assert_eq!(response.status(), 429),
        other => panic!("a third stream must get 429: {other:?}"),
    }
    // Closing one frees its place (the closing node removes it from Redis).
    drop(first);
    let mut reopened = None;
    for _ in 0..100 {
        if let Ok((socket, _)) = tokio_tungstenite::connect_async(stream_url(0, &ticket(0).await)).await {
            reopened = Some(socket);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(reopened.is_some(), "a closed stream's place is free again on another node");
    drop((second, reopened));
    cluster.stop().await;
}

#[tokio::test]
async fn with_redis_away_logins_are_refused_and_money_goes_on_under_each_nodes_limit() {
    let Some(redis) = redis_url() else { return };
    let upstream = redis.trim_start_matches("redis://").split(['/', '?']).next().unwrap().to_owned();
    let upstream: std::net::SocketAddr = tokio::net::lookup_host(upstream).await.unwrap().next().unwrap();
    let proxy = Proxy::start(upstream).await;
    let through = format!("redis://{}", proxy.address);
    let settings = [("COFFER_MONEY_REQUESTS_PER_MINUTE", "4")];
    let Some(cluster) = Cluster::start(Some(&through), &settings).await else { return };
    let token = cluster.customer("steady@example.com").await;

    proxy.cut().await;
    // Logins: refused (fail closed), with a short Retry-After, on every node; not a 5xx.
    for n in 0..3 {
        let (status, body, retry_after) = cluster.login(n, "steady@example.com", TEST_PASSWORD).await;
        assert_eq!(status, 429, "{body}");
        assert_eq!(retry_after.as_deref(), Some("5"));
    }
    // Money requests: each node counts alone (fail open), so four per node pass.
    let opens = (0..15).map(|n| {
        cluster.send(n, reqwest::Method::POST, "/v1/wallets", Some(&token), json!({"currency": "EUR"}))
    });
    let outcomes = join_all(opens).await;
    let counts = tally(outcomes.iter().map(|(status, _, _)| *status));
    assert_eq!(counts.get(&429).copied().unwrap_or(0), 3, "{outcomes:?}");
    assert!(outcomes.iter().all(|(status, _, _)| *status < 500), "{outcomes:?}");
    // Tickets and streams work on the node that issued the ticket.
    let url = cluster.stream_url(1, &cluster.ticket(1, &token).await);
    let stream = tokio_tungstenite::connect_async(url).await.expect("a stream opens without Redis");
    drop(stream);

    // Redis back: logins are counted and let through again.
    proxy.restore().await;
    let mut status = 0;
    for _ in 0..100 {
        status = cluster.login(2, "steady@example.com", TEST_PASSWORD).await.0;
        if status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status, 200, "logins resume once Redis answers");
    cluster.stop().await;
}
