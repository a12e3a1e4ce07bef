//! Test harness: a real `coffer` server on port 0 with a fresh database per test —
//! SQLite in a temporary directory, or a new PostgreSQL database when
//! `COFFER_TEST_DATABASE_URL` is set. No sleeping: `spawn_app` returns once the listener
//! is bound, so requests can be sent at once.

#![allow(dead_code)]

pub mod nats;
pub mod process;
pub mod proxy;

use std::net::SocketAddr;

use coffer::{
    config::{DatabaseArgs, ServeArgs},
    server::Server,
};
use serde_json::Value;
use sqlx::{Connection, Executor};

/// The backends to run a black-box test against: SQLite always, PostgreSQL when
/// `COFFER_TEST_DATABASE_URL` is set.
pub fn backends() -> Vec<Backend> {
    let mut backends = vec![Backend::Sqlite];
    match std::env::var("COFFER_TEST_DATABASE_URL") {
        Ok(url) if !url.is_empty() => backends.push(Backend::Postgres(url)),
        _ if std::env::var("CI").is_ok_and(|ci| ci == "true") => {
            panic!("CI=true but COFFER_TEST_DATABASE_URL is not set: the PostgreSQL suite must run in CI")
        }
        _ => {}
    }
    backends
}

#[derive(Clone, Debug)]
pub enum Backend {
    Sqlite,
    /// The server URL; each app gets its own database on that server.
    Postgres(String),
}

pub struct TestApp {
    pub address: SocketAddr,
    /// Where gRPC listens (port 0, so parallel tests never clash); `None` when a test
    /// turned it off.
    pub grpc_address: Option<SocketAddr>,
    pub admin_key: String,
    pub client: reqwest::Client,
    pub data_dir: tempfile::TempDir,
    args: ServeArgs,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    database: Option<(String, String)>,
}

pub struct Options {
    pub commit_queue_max: u32,
    pub money_requests_per_minute: u32,
    /// Any other setting, changed from the test defaults.
    pub configure: fn(&mut ServeArgs),
    /// On PostgreSQL: a streaming replica of the server (its URL) to read from.
    pub read_replica: Option<String>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            commit_queue_max: 4096,
            money_requests_per_minute: 100_000,
            configure: |_| {},
            read_replica: None,
        }
    }
}

/// Every setting at its default, as `coffer serve` with no flags would have it, except
/// that gRPC listens on port 0: tests run in parallel and must never share a fixed port.
pub fn default_args() -> ServeArgs {
    #[derive(clap::Parser)]
    struct Defaults {
        #[command(flatten)]
        args: ServeArgs,
    }
    let mut args = <Defaults as clap::Parser>::try_parse_from(["coffer"]).expect("the defaults parse").args;
    args.grpc_listen = coffer::config::GrpcListen(Some("127.0.0.1:0".parse().unwrap()));
    args
}

/// The access-token secret of every test server, so tests can forge tokens with it.
pub const TEST_JWT_SECRET: &str = "test-jwt-secret-0123456789abcdef-0123456789";

/// Argon2id memory for tests, in KiB: far below production's 19,456 so that a suite that
/// registers and logs in dozens of customers stays fast in debug builds.
pub const TEST_ARGON2_MEMORY_KIB: u32 = 1024;

/// The password `register_and_login` gives every customer.
pub const TEST_PASSWORD: &str = "correct horse battery staple";

/// A registered, logged-in customer.
#[derive(Clone, Debug)]
pub struct Session {
    pub customer_id: String,
    pub access_token: String,
    pub refresh_token: String,
}

/// Registers a customer with `email` (password [`TEST_PASSWORD`]) and logs them in.
pub async fn register_and_login(app: &TestApp, email: &str) -> Session {
    let register = serde_json::json!({"email": email, "password": TEST_PASSWORD, "name": "Test Customer"});
    let response = app.client.post(app.url("/v1/auth/register")).json(&register).send().await.unwrap();
    let (status, customer) = read(response).await;
    assert_eq!(status, 201, "register {email}: {customer}");
    let login = serde_json::json!({"email": email, "password": TEST_PASSWORD});
    let response = app.client.post(app.url("/v1/auth/login")).json(&login).send().await.unwrap();
    let (status, tokens) = read(response).await;
    assert_eq!(status, 200, "login {email}: {tokens}");
    Session {
        customer_id: customer["id"].as_str().unwrap().to_owned(),
        access_token: tokens["access_token"].as_str().unwrap().to_owned(),
        refresh_token: tokens["refresh_token"].as_str().unwrap().to_owned(),
    }
}

pub async fn spawn_app(backend: &Backend) -> TestApp {
    spawn_app_with(backend, Options::default()).await
}

pub async fn spawn_app_with(backend: &Backend, options: Options) -> TestApp {
    let data_dir = tempfile::tempdir().unwrap();
    let (database_url, database) = match backend {
        Backend::Sqlite => (None, None),
        Backend::Postgres(server_url) => {
            let (url, name) = create_database(server_url).await;
            (Some(url), Some((server_url.clone(), name)))
        }
    };
    let mut args = ServeArgs {
        database: DatabaseArgs {
            data_dir: data_dir.path().to_path_buf(),
            database_url,
            database_max_connections: 8,
        },
        listen: "127.0.0.1:0".parse().unwrap(),
        admin_api_key: Some("test-admin-key-0123456789".parse().unwrap()),
        admin_api_key_previous: None,
        commit_queue_max: options.commit_queue_max,
        requests_in_flight_max: 4096,
        idempotency_retention_hours: 24,
        money_requests_per_minute: options.money_requests_per_minute,
        fee_transfer_bps: 0,
        fee_top_up_bps: 0,
        fee_withdrawal_bps: 0,
        mock_provider_latency_ms: 0,
        mock_provider_failure_rate: 0.0,
        recovery_interval_ms: 200,
        recovery_grace_ms: 1_000,
        request_timeout_ms: 30_000,
        jwt_secret: Some(coffer::identity::token::parse_secret(TEST_JWT_SECRET).unwrap()),
        jwt_secret_previous: None,
        argon2_memory_kib: TEST_ARGON2_MEMORY_KIB,
        login_failures_per_account_max: 5,
        login_failures_per_ip_max: 50,
        // Quick relay and workers, so tests see events at once.
        relay_interval_ms: 20,
        schedule_retry_base_ms: 20,
        nats_url: None,
        smtp_url: None,
        ..default_args()
    };
    if let (Some(replica), Some((_, name))) = (&options.read_replica, &database) {
        args.read_database_url = Some(replace_database(replica, name));
    }
    (options.configure)(&mut args);
    let mut app = TestApp {
        address: "127.0.0.1:0".parse().unwrap(),
        grpc_address: None,
        admin_key: String::new(),
        client: coffer::notifications::http_client().build().unwrap(),
        data_dir,
        args,
        shutdown: None,
        server: None,
        database,
    };
    app.start().await;
    app
}

/// Creates an empty database on the server at `server_url`; returns its URL and name.
pub async fn create_database(server_url: &str) -> (String, String) {
    let name = format!("coffer_test_{}", uuid::Uuid::new_v4().simple());
    let mut connection = sqlx::PgConnection::connect(server_url)
        .await
        .unwrap_or_else(|error| panic!("COFFER_TEST_DATABASE_URL is set but unreachable: {error}"));
    let statement = format!("CREATE DATABASE {name}");
    connection.execute(sqlx::AssertSqlSafe(statement)).await.unwrap();
    connection.close().await.unwrap();
    (replace_database(server_url, &name), name)
}

/// Waits (10 s at most) until the relay has handed every event to the consumers: the
/// in-process relay marks a batch sent only after they applied it, so what they wrote
/// (inbox entries, projections, the events they cause) is in the database by then.
pub async fn relayed(store: &store::Store) {
    for _ in 0..1_000 {
        if store.outbox_backlog().await.unwrap().0 == 0 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("the relay did not drain the outbox");
}

/// Drops a database made by [`create_database`].
pub async fn drop_database(server_url: &str, name: &str) {
    let mut connection = sqlx::PgConnection::connect(server_url).await.unwrap();
    let statement = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
    connection.execute(sqlx::AssertSqlSafe(statement)).await.unwrap();
}

/// `server_url` with its database name replaced by `name`.
pub fn replace_database(server_url: &str, name: &str) -> String {
    let (base, query) = match server_url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (server_url, None),
    };
    let scheme_end = base.find("://").map_or(0, |at| at + 3);
    let base = match base[scheme_end..].find('/') {
        Some(slash) => &base[..scheme_end + slash],
        None => base,
    };
    match query {
        Some(query) => format!("{base}/{name}?{query}"),
        None => format!("{base}/{name}"),
    }
}

impl TestApp {
    /// Binds and runs the server on this app's data; returns once it is listening.
    async fn start(&mut self) {
        let server = Server::bind(self.args.clone()).await.expect("server starts");
        self.address = server.local_addr().unwrap();
        self.grpc_address = server.grpc_local_addr();
        self.admin_key = server.admin_api_key().expose().to_owned();
        let (shutdown, stopped) = tokio::sync::oneshot::channel::<()>();
        self.shutdown = Some(shutdown);
        self.server = Some(tokio::spawn(server.run(async move {
            let _ = stopped.await;
        })));
    }

    /// Stops the server gracefully and waits until it has shut down (the database stays).
    pub async fn stop_server(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.unwrap().unwrap();
        }
    }

    /// Stops the server and starts a new one on the same database.
    pub async fn restart(&mut self) {
        self.stop_server().await;
        self.start().await;
    }

    /// This app's database, as the `coffer` CLI takes it (DATABASE_URL).
    pub fn database_url(&self) -> String {
        self.args.database.url()
    }

    /// A store on this app's database (for checks the API does not offer).
    pub async fn store(&self) -> store::Store {
        store::Store::open(&self.args.database.url(), store::StoreOptions { max_connections: 2 })
            .await
            .unwrap()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.address, path)
    }

    /// POSTs JSON with the admin key; returns status and body.
    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let response =
            self.client.post(self.url(path)).bearer_auth(&self.admin_key).json(body).send().await.unwrap();
        read(response).await
    }

    /// GETs with the admin key; returns status and body.
    pub async fn get(&self, path: &str) -> (u16, Value) {
        let response = self.client.get(self.url(path)).bearer_auth(&self.admin_key).send().await.unwrap();
        read(response).await
    }

    /// Sends `method path` with an optional bearer credential and JSON body; returns
    /// status and body.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        bearer: Option<&str>,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let mut request = self.client.request(method, self.url(path));
        if let Some(bearer) = bearer {
            request = request.bearer_auth(bearer);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        read(request.send().await.unwrap()).await
    }

    /// Stops the server gracefully, waits for it, and drops its PostgreSQL database.
    pub async fn stop(mut self) {
        self.stop_server().await;
        if let Some((server_url, name)) = self.database.take() {
            drop_database(&server_url, &name).await;
        }
    }
}

/// Status and JSON body (Null when the body is empty or not JSON).
pub async fn read(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let bytes = response.bytes().await.unwrap();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

/// A fresh random id, as the UUID string the API takes.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// Asserts a problem+json body with the given status and code.
#[track_caller]
pub fn assert_problem(status: u16, body: &Value, expected_status: u16, code: &str) {
    assert_eq!(status, expected_status, "body: {body}");
    assert_eq!(body["code"], code, "body: {body}");
    assert_eq!(body["status"], expected_status, "body: {body}");
    assert!(body["type"].as_str().is_some_and(|t| t.ends_with(code)), "body: {body}");
    assert!(body["detail"].as_str().is_some_and(|d| !d.is_empty()), "body: {body}");
    assert!(body["request_id"].as_str().is_some_and(|id| !id.is_empty()), "body: {body}");
}

#[test]
fn database_name_is_replaced() {
    assert_eq!(replace_database("postgres://u@h:5432/postgres", "x"), "postgres://u@h:5432/x");
    assert_eq!(replace_database("postgres://u@h:5432", "x"), "postgres://u@h:5432/x");
    assert_eq!(
        replace_database("postgres://u@h/db?sslmode=disable", "x"),
        "postgres://u@h/x?sslmode=disable"
    );
}

/// Requests as a logged-in customer: status and JSON body.
pub mod customer {
    use serde_json::Value;

    use super::{Session, TestApp};

    pub async fn send(
        app: &TestApp,
        session: &Session,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> (u16, Value) {
        app.call(method, path, Some(&session.access_token), body).await
    }

    pub async fn post(app: &TestApp, session: &Session, path: &str, body: &Value) -> (u16, Value) {
        send(app, session, reqwest::Method::POST, path, Some(body)).await
    }

    pub async fn get(app: &TestApp, session: &Session, path: &str) -> (u16, Value) {
        send(app, session, reqwest::Method::GET, path, None).await
    }

    /// POSTs with a fresh Idempotency-Key, as the money-moving routes want.
    pub async fn keyed_post(app: &TestApp, session: &Session, path: &str, body: &Value) -> (u16, Value) {
        let response = app
            .client
            .post(app.url(path))
            .bearer_auth(&session.access_token)
            .header("idempotency-key", super::new_id())
            .json(body)
            .send()
            .await
            .unwrap();
        super::read(response).await
    }

    /// Opens a wallet in `currency`; its id.
    pub async fn open_wallet(app: &TestApp, session: &Session, currency: &str) -> String {
        let (status, body) =
            keyed_post(app, session, "/v1/wallets", &serde_json::json!({"currency": currency})).await;
        assert_eq!(status, 201, "{body}");
        body["id"].as_str().unwrap().to_owned()
    }

    /// A card top-up with the test card `method`, accepted (201) whatever its outcome; the top-up.
    pub async fn card_top_up(
        app: &TestApp,
        session: &Session,
        wallet: &str,
        amount: u64,
        method: &str,
    ) -> Value {
        let path = format!("/v1/wallets/{wallet}/top-ups");
        let body = serde_json::json!({"amount": amount, "payment_method": method});
        let (status, body) = keyed_post(app, session, &path, &body).await;
        assert_eq!(status, 201, "{body}");
        body
    }

    /// A top-up that succeeds.
    pub async fn top_up(app: &TestApp, session: &Session, wallet: &str, amount: u64) {
        let body = card_top_up(app, session, wallet, amount, "tok_visa").await;
        assert_eq!(body["status"], "succeeded", "{body}");
    }

    /// A transfer between two wallets that succeeds; the transfer.
    pub async fn transfer(app: &TestApp, session: &Session, from: &str, to: &str, amount: u64) -> Value {
        let body = serde_json::json!({"from_wallet_id": from, "to_wallet_id": to, "amount": amount});
        let (status, body) = keyed_post(app, session, "/v1/transfers", &body).await;
        assert_eq!(status, 201, "{body}");
        body
    }

    pub async fn patch(app: &TestApp, session: &Session, path: &str, body: &Value) -> (u16, Value) {
        send(app, session, reqwest::Method::PATCH, path, Some(body)).await
    }

    /// The caller's expenses with source `bank_sync`, all pages.
    pub async fn synced_expenses(app: &TestApp, session: &Session) -> Vec<Value> {
        let (mut all, mut cursor) = (Vec::new(), None::<String>);
        loop {
            let path = match &cursor {
                Some(cursor) => format!("/v1/expenses?limit=100&cursor={cursor}"),
                None => "/v1/expenses?limit=100".to_owned(),
            };
            let (status, page) = get(app, session, &path).await;
            assert_eq!(status, 200, "{page}");
            all.extend(
                page["data"].as_array().unwrap().iter().filter(|e| e["source"] == "bank_sync").cloned(),
            );
            match page["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_owned()),
                None => return all,
            }
        }
    }
}

/// Raw SQL on the app's database, for breaking things by hand.
pub struct Raw {
    url: String,
    postgres: bool,
}

impl Raw {
    pub fn new(app: &TestApp) -> Self {
        let url = app.database_url();
        Self { postgres: url.starts_with("postgres"), url }
    }

    /// Whether the database is PostgreSQL (else SQLite).
    pub fn postgres(&self) -> bool {
        self.postgres
    }

    /// An id as a literal of this backend.
    pub fn id(&self, id: uuid::Uuid) -> String {
        if self.postgres { format!("'{id}'::uuid") } else { format!("X'{}'", id.simple()) }
    }

    /// The one integer a query answers.
    pub async fn number(&self, sql: &str) -> i64 {
        if self.postgres {
            let mut connection = sqlx::PgConnection::connect(&self.url).await.unwrap();
            sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned())).fetch_one(&mut connection).await.unwrap()
        } else {
            let mut connection = sqlx::SqliteConnection::connect(&self.url).await.unwrap();
            sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned())).fetch_one(&mut connection).await.unwrap()
        }
    }

    /// Runs statements with foreign keys not enforced (to write what the schema forbids).
    pub async fn run(&self, sql: &str) {
        if self.postgres {
            let mut connection = sqlx::PgConnection::connect(&self.url).await.unwrap();
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!("SET session_replication_role = replica; {sql}")))
                .execute(&mut connection)
                .await
                .unwrap();
        } else {
            let mut connection = sqlx::SqliteConnection::connect(&self.url).await.unwrap();
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!("PRAGMA foreign_keys = OFF; {sql}")))
                .execute(&mut connection)
                .await
                .unwrap();
        }
    }
}
