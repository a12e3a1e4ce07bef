//! Trace export over OTLP/HTTP, end to end: the real binary with `COFFER_OTLP_ENDPOINT`
//! pointing at a receiver this test runs (an HTTP server that decodes the protobuf export
//! requests). One wallet transfer must arrive as `request` → `wallets.transfer` in one
//! trace, and a `commit.batch` span (a root of its own) linked to that trace, with its
//! `store.commit` child; and the server's log lines of that request carry the trace id. On
//! SQLite and (when configured) PostgreSQL.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::{Router, body::Bytes, extract::State, http::header, routing::post};
use common::process::{ChildDatabase, ChildServer};
use common::{Backend, TEST_PASSWORD};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message as _;
use serde_json::{Value, json};

/// A received span, as the test looks at it.
#[derive(Clone, Debug)]
struct Received {
    name: String,
    trace_id: String,
    span_id: String,
    parent_span_id: String,
    /// (trace id, span id) of each link.
    links: Vec<(String, String)>,
    attributes: Vec<(String, String)>,
}

impl Received {
    fn attribute(&self, key: &str) -> Option<&str> {
        self.attributes.iter().find(|(name, _)| name == key).map(|(_, value)| value.as_str())
    }
}

type Spans = Arc<Mutex<Vec<Received>>>;

async fn receive(
    State(spans): State<Spans>,
    body: Bytes,
) -> ([(header::HeaderName, &'static str); 1], Vec<u8>) {
    let request = ExportTraceServiceRequest::decode(body).expect("an OTLP protobuf export request");
    let mut received = spans.lock().unwrap();
    for span in request.resource_spans.iter().flat_map(|r| &r.scope_spans).flat_map(|s| &s.spans) {
        let attributes = span
            .attributes
            .iter()
            .map(|attribute| {
                let value = attribute.value.as_ref().and_then(|value| value.value.as_ref());
                let text = match value {
                    Some(opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(text)) => {
                        text.clone()
                    }
                    other => format!("{other:?}"),
                };
                (attribute.key.clone(), text)
            })
            .collect();
        received.push(Received {
            name: span.name.clone(),
            trace_id: hex::encode(&span.trace_id),
            span_id: hex::encode(&span.span_id),
            parent_span_id: hex::encode(&span.parent_span_id),
            links: span
                .links
                .iter()
                .map(|link| (hex::encode(&link.trace_id), hex::encode(&link.span_id)))
                .collect(),
            attributes,
        });
    }
    // An empty ExportTraceServiceResponse: full success.
    ([(header::CONTENT_TYPE, "application/x-protobuf")], Vec::new())
}

async fn call(
    client: &reqwest::Client,
    server: &ChildServer,
    path: &str,
    bearer: Option<&str>,
    body: &Value,
    request_id: &str,
) -> (u16, Value) {
    let mut request = client
        .post(server.url(path))
        .header("x-request-id", request_id)
        .header("idempotency-key", uuid::Uuid::now_v7().to_string())
        .json(body);
    if let Some(bearer) = bearer {
        request = request.bearer_auth(bearer);
    }
    common::read(request.send().await.unwrap()).await
}

#[tokio::test]
async fn a_transfer_is_traced_from_the_request_to_the_store() {
    for backend in common::backends() {
        traced_transfer(&backend).await;
    }
}

async fn traced_transfer(backend: &Backend) {
    let spans: Spans = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let collector = format!("http://{}", listener.local_addr().unwrap());
    let app = Router::new().route("/v1/traces", post(receive)).with_state(spans.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let database = ChildDatabase::new(backend).await;
    let config = database
        .config()
        .with_env("COFFER_OTLP_ENDPOINT", &collector)
        // The SDK's batch processor: export every 100 ms instead of every 5 s.
        .with_env("OTEL_BSP_SCHEDULE_DELAY", "100");
    let server = ChildServer::start(&config).await;
    let client = coffer::notifications::http_client().build().unwrap();
    let mut tokens = Vec::new();
    for email in ["ada@example.com", "bob@example.com"] {
        let body = json!({"email": email, "password": TEST_PASSWORD, "name": "Traced"});
        assert_eq!(call(&client, &server, "/v1/auth/register", None, &body, "register").await.0, 201);
        let body = json!({"email": email, "password": TEST_PASSWORD});
        let (status, login) = call(&client, &server, "/v1/auth/login", None, &body, "login").await;
        assert_eq!(status, 200, "{login}");
        tokens.push(login["access_token"].as_str().unwrap().to_owned());
    }
    let mut wallets = Vec::new();
    for token in &tokens {
        let (status, wallet) =
            call(&client, &server, "/v1/wallets", Some(token), &json!({"currency": "USD"}), "wallet").await;
        assert_eq!(status, 201, "{wallet}");
        wallets.push(wallet["id"].as_str().unwrap().to_owned());
    }
    let top_up = json!({"amount": 1_000, "payment_method": "tok_visa"});
    let path = format!("/v1/wallets/{}/top-ups", wallets[0]);
    assert_eq!(call(&client, &server, &path, Some(&tokens[0]), &top_up, "top-up").await.0, 201);
    let request_id = "traced-transfer-0001";
    let transfer = json!({"from_wallet_id": wallets[0], "to_wallet_id": wallets[1], "amount": 250});
    let (status, body) =
        call(&client, &server, "/v1/transfers", Some(&tokens[0]), &transfer, request_id).await;
    assert_eq!(status, 201, "{body}");

    // Wait (bounded) for the request's trace and the batch linked to it.
    let deadline = Instant::now() + Duration::from_secs(20);
    let (request, service, batch, store) = loop {
        let received = spans.lock().unwrap().clone();
        let request = received
            .iter()
            .find(|span| span.name == "request" && span.attribute("request_id") == Some(request_id));
        if let Some(request) = request {
            let service = received
                .iter()
                .find(|span| span.name == "wallets.transfer" && span.trace_id == request.trace_id);
            let batch = received.iter().find(|span| {
                span.name == "commit.batch" && span.links.iter().any(|(trace, _)| *trace == request.trace_id)
            });
            let store = batch.and_then(|batch| {
                received
                    .iter()
                    .find(|span| span.name == "store.commit" && span.parent_span_id == batch.span_id)
            });
            if let (Some(service), Some(batch), Some(store)) = (service, batch, store) {
                break (request.clone(), service.clone(), batch.clone(), store.clone());
            }
        }
        assert!(Instant::now() < deadline, "the trace did not arrive; received {received:#?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(request.attribute("path"), Some("/v1/transfers"));
    assert_eq!(
        request.attribute("trace_id"),
        Some(request.trace_id.as_str()),
        "the request span names its trace"
    );
    assert_eq!(service.parent_span_id, request.span_id, "the service's span is the request's child");
    assert_ne!(batch.trace_id, request.trace_id, "a batch is a root span of its own");
    assert!(batch.parent_span_id.is_empty(), "{batch:?}");
    let (_, linked) = batch.links.iter().find(|(trace, _)| *trace == request.trace_id).unwrap();
    assert_eq!(*linked, service.span_id, "the batch links to the span that submitted the transfer");
    assert_eq!(store.trace_id, batch.trace_id);

    let logs = server.stop().await;
    let answered: Vec<&String> =
        logs.iter().filter(|line| line.contains("transfer answered") && line.contains(request_id)).collect();
    assert!(!answered.is_empty(), "the request's log line: {logs:#?}");
    assert!(
        answered.iter().all(|line| line.contains(&request.trace_id)),
        "it carries the trace id: {answered:?}"
    );
    database.drop().await;
}
