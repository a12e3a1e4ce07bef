//! Black-box tests of gRPC beside REST, on SQLite and (when configured) PostgreSQL, over a
//! real HTTP/2 connection with the generated tonic client: one table of ledger cases
//! driven through both transports must give the same result codes; lookups and paging;
//! the auth matrix; refused batches with their `google.rpc` details; the streaming
//! method (1,000 batches, in order, the books adding up); health and reflection.

mod common;

use coffer::grpc::proto::{self, ledger_service_client::LedgerServiceClient};
use common::{TestApp, backends, register_and_login, spawn_app};
use serde_json::{Value, json};
use tonic::{Code, Request, Status, transport::Channel};
use tonic_types::StatusExt;
use uuid::Uuid;

const USD: u32 = 840;

/// A client of the app's gRPC listener.
async fn client(app: &TestApp) -> LedgerServiceClient<Channel> {
    let address = app.grpc_address.expect("the test server serves gRPC");
    let channel =
        Channel::from_shared(format!("http://{address}")).unwrap().connect().await.expect("gRPC connects");
    LedgerServiceClient::new(channel)
}

/// `message` carrying `authorization: Bearer <credential>`.
fn authorized<T>(message: T, credential: &str) -> Request<T> {
    let mut request = Request::new(message);
    request.metadata_mut().insert("authorization", format!("Bearer {credential}").parse().unwrap());
    request
}

fn bytes(id: Uuid) -> Vec<u8> {
    id.as_bytes().to_vec()
}

/// A transfer of the case table, transport-neutral: flags by their REST names.
#[derive(Clone, Debug)]
struct Event {
    id: Uuid,
    debit: Uuid,
    credit: Uuid,
    amount: u64,
    pending: Option<Uuid>,
    flags: &'static [&'static str],
}

impl Event {
    fn new(debit: Uuid, credit: Uuid, amount: u64, flags: &'static [&'static str]) -> Self {
        Self { id: Uuid::now_v7(), debit, credit, amount, pending: None, flags }
    }

    /// A post or void of `pending`, which leaves the accounts, ledger and code out.
    fn resolve(pending: &Event, amount: u64, flag: &'static [&'static str]) -> Self {
        Self {
            id: Uuid::now_v7(),
            debit: Uuid::nil(),
            credit: Uuid::nil(),
            amount,
            pending: Some(pending.id),
            flags: flag,
        }
    }

    fn json(&self) -> Value {
        let resolves = self.pending.is_some();
        let mut event = json!({"id": self.id, "amount": self.amount, "flags": self.flags});
        if resolves {
            event["pending_id"] = json!(self.pending.unwrap());
        } else {
            event["debit_account_id"] = json!(self.debit);
            event["credit_account_id"] = json!(self.credit);
            event["ledger"] = json!(USD);
            event["code"] = json!(1);
        }
        event
    }

    fn proto(&self) -> proto::NewTransfer {
        let resolves = self.pending.is_some();
        proto::NewTransfer {
            id: bytes(self.id),
            debit_account_id: if resolves { Vec::new() } else { bytes(self.debit) },
            credit_account_id: if resolves { Vec::new() } else { bytes(self.credit) },
            amount: self.amount,
            pending_id: self.pending.map(bytes).unwrap_or_default(),
            ledger: if resolves { 0 } else { USD },
            code: if resolves { 0 } else { 1 },
            flags: self
                .flags
                .iter()
                .map(|name| {
                    proto::TransferFlag::from_str_name(&format!(
                        "TRANSFER_FLAG_{}",
                        name.to_ascii_uppercase()
                    ))
                    .unwrap_or_else(|| panic!("no proto flag for {name}")) as i32
                })
                .collect(),
            ..Default::default()
        }
    }
}

/// The REST name of a gRPC result code: without its prefix, in lower case.
fn rest_name(code: i32) -> String {
    let code = proto::CreateTransferResult::try_from(code).expect("a known result code");
    code.as_str_name().strip_prefix("CREATE_TRANSFER_RESULT_").unwrap().to_ascii_lowercase()
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Transport {
    Rest,
    Grpc,
}

/// Creates a funding account, a customer account that may not go negative, and a
/// merchant, through `transport`; returns their ids.
async fn accounts(app: &TestApp, transport: Transport) -> (Uuid, Uuid, Uuid) {
    let (funding, customer, merchant) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    let limits: [&[&str]; 3] = [&[], &["debits_must_not_exceed_credits", "history"], &[]];
    let ids = [funding, customer, merchant];
    let results: Vec<String> = match transport {
        Transport::Rest => {
            let body: Vec<Value> = ids
                .iter()
                .zip(limits)
                .map(|(id, flags)| json!({"id": id, "ledger": USD, "code": 1, "flags": flags}))
                .collect();
            let (status, body) = app.post("/v1/ledger/accounts", &Value::Array(body)).await;
            assert_eq!(status, 200, "{body}");
            body["results"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["result"].as_str().unwrap().to_owned())
                .collect()
        }
        Transport::Grpc => {
            let accounts = ids
                .iter()
                .zip(limits)
                .map(|(id, flags)| proto::NewAccount {
                    id: bytes(*id),
                    ledger: USD,
                    code: 1,
                    flags: flags
                        .iter()
                        .map(|name| {
                            proto::AccountFlag::from_str_name(&format!(
                                "ACCOUNT_FLAG_{}",
                                name.to_ascii_uppercase()
                            ))
                            .unwrap() as i32
                        })
                        .collect(),
                    ..Default::default()
                })
                .collect();
            let response = client(app)
                .await
                .create_accounts(authorized(proto::CreateAccountsRequest { accounts }, &app.admin_key))
                .await
                .expect("accounts created")
                .into_inner();
            response
                .results
                .iter()
                .map(|r| {
                    let code = proto::CreateAccountResult::try_from(r.result).unwrap();
                    code.as_str_name().strip_prefix("CREATE_ACCOUNT_RESULT_").unwrap().to_ascii_lowercase()
                })
                .collect()
        }
    };
    assert_eq!(results, ["ok", "ok", "ok"]);
    (funding, customer, merchant)
}

/// Sends one batch through `transport`; returns the result names in order.
async fn create_transfers(app: &TestApp, transport: Transport, batch: &[Event]) -> Vec<String> {
    match transport {
        Transport::Rest => {
            let body = Value::Array(batch.iter().map(Event::json).collect());
            let (status, body) = app.post("/v1/ledger/transfers", &body).await;
            assert_eq!(status, 200, "{body}");
            let results = body["results"].as_array().unwrap();
            results.iter().map(|r| r["result"].as_str().unwrap().to_owned()).collect()
        }
        Transport::Grpc => {
            let request =
                proto::CreateTransfersRequest { transfers: batch.iter().map(Event::proto).collect() };
            let response = client(app)
                .await
                .create_transfers(authorized(request, &app.admin_key))
                .await
                .expect("a batch of results")
                .into_inner();
            for (index, result) in response.results.iter().enumerate() {
                assert_eq!(result.index as usize, index);
                assert_eq!(result.id, bytes(batch[index].id));
            }
            response.results.iter().map(|r| rest_name(r.result)).collect()
        }
    }
}

/// A case: batches built from the three accounts, and each batch's expected results.
type Case = (&'static str, fn(Uuid, Uuid, Uuid) -> Vec<Vec<Event>>, &'static [&'static [&'static str]]);

fn cases() -> Vec<Case> {
    vec![
        ("ok", |funding, customer, _| vec![vec![Event::new(funding, customer, 100, &[])]], &[&["ok"]]),
        (
            "exists",
            |funding, customer, _| {
                let transfer = Event::new(funding, customer, 100, &[]);
                vec![vec![transfer.clone()], vec![transfer]]
            },
            &[&["ok"], &["exists"]],
        ),
        (
            "exceeds_credits",
            |_, customer, merchant| vec![vec![Event::new(customer, merchant, 1, &[])]],
            &[&["exceeds_credits"]],
        ),
        (
            "linked chain fails as a whole",
            |funding, customer, merchant| {
                vec![vec![
                    Event::new(funding, customer, 100, &["linked"]),
                    Event::new(customer, merchant, 500, &[]),
                ]]
            },
            &[&["linked_event_failed", "exceeds_credits"]],
        ),
        (
            "pending then post",
            |funding, customer, merchant| {
                let pending = Event::new(customer, merchant, 60, &["pending"]);
                let post = Event::resolve(&pending, 60, &["post_pending_transfer"]);
                vec![vec![Event::new(funding, customer, 100, &[])], vec![pending], vec![post]]
            },
            &[&["ok"], &["ok"], &["ok"]],
        ),
        (
            "pending then void",
            |funding, customer, merchant| {
                let pending = Event::new(customer, merchant, 60, &["pending"]);
                let void = Event::resolve(&pending, 0, &["void_pending_transfer"]);
                let again = Event::resolve(&pending, 0, &["void_pending_transfer"]);
                vec![vec![Event::new(funding, customer, 100, &[])], vec![pending], vec![void], vec![again]]
            },
            &[&["ok"], &["ok"], &["ok"], &["pending_transfer_already_voided"]],
        ),
        (
            "an id reused with different fields",
            |funding, customer, _| {
                let first = Event::new(funding, customer, 100, &[]);
                let changed = Event { amount: 200, ..first.clone() };
                vec![vec![first], vec![changed]]
            },
            &[&["ok"], &["exists_with_different_amount"]],
        ),
    ]
}

#[tokio::test]
async fn both_transports_give_the_same_result_codes() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        for (name, build, expected) in cases() {
            let mut balances = Vec::new();
            for transport in [Transport::Rest, Transport::Grpc] {
                let (funding, customer, merchant) = accounts(&app, transport).await;
                let batches = build(funding, customer, merchant);
                assert_eq!(batches.len(), expected.len());
                for (batch, expected) in batches.iter().zip(expected.iter()) {
                    let results = create_transfers(&app, transport, batch).await;
                    assert_eq!(results, *expected, "{name} over {transport:?}");
                }
                let (status, account) = app.get(&format!("/v1/ledger/accounts/{customer}")).await;
                assert_eq!(status, 200);
                let fields = ["debits_pending", "debits_posted", "credits_pending", "credits_posted"];
                balances.push(fields.map(|field| account[field].as_u64().unwrap()));
            }
            assert_eq!(balances[0], balances[1], "{name}: the same balances over both transports");
        }
        app.stop().await;
    }
}

#[tokio::test]
async fn lookups_and_history_pages_match_rest() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let (funding, customer, _) = accounts(&app, Transport::Grpc).await;
        let batch: Vec<Event> = (1..=5).map(|amount| Event::new(funding, customer, amount, &[])).collect();
        assert_eq!(create_transfers(&app, Transport::Grpc, &batch).await, vec!["ok"; 5]);
        let mut grpc = client(&app).await;

        let unknown = Uuid::now_v7();
        let request =
            proto::LookupAccountsRequest { ids: vec![bytes(customer), bytes(unknown), bytes(funding)] };
        let found =
            grpc.lookup_accounts(authorized(request, &app.admin_key)).await.unwrap().into_inner().accounts;
        assert_eq!(found.iter().map(|a| a.id.clone()).collect::<Vec<_>>(), [bytes(customer), bytes(funding)]);
        let (_, rest) = app.get(&format!("/v1/ledger/accounts/{customer}")).await;
        assert_eq!(found[0].credits_posted, rest["credits_posted"].as_u64().unwrap());
        assert_eq!(found[0].credits_posted, 15);
        assert_eq!(found[0].timestamp, rest["timestamp"].as_u64().unwrap());
        let history = proto::AccountFlag::History as i32;
        assert!(found[0].flags.contains(&history));

        let request = proto::LookupTransfersRequest {
            ids: vec![bytes(batch[4].id), bytes(unknown), bytes(batch[0].id)],
        };
        let found =
            grpc.lookup_transfers(authorized(request, &app.admin_key)).await.unwrap().into_inner().transfers;
        assert_eq!(found.iter().map(|t| t.amount).collect::<Vec<_>>(), [5, 1]);
        let (_, rest) = app.get(&format!("/v1/ledger/transfers/{}", batch[4].id)).await;
        assert_eq!(found[0].timestamp, rest["timestamp"].as_u64().unwrap());

        // Pages of 2, newest first: 5 4 | 3 2 | 1, the same order as REST.
        let mut seen = Vec::new();
        let mut page_token = String::new();
        let mut pages = 0;
        loop {
            let request = proto::GetAccountTransfersRequest {
                account_id: bytes(customer),
                page_size: 2,
                page_token: page_token.clone(),
                ..Default::default()
            };
            let page =
                grpc.get_account_transfers(authorized(request, &app.admin_key)).await.unwrap().into_inner();
            pages += 1;
            assert!(page.transfers.len() <= 2);
            seen.extend(page.transfers.iter().map(|t| t.amount));
            if page.next_page_token.is_empty() {
                break;
            }
            page_token = page.next_page_token;
        }
        assert_eq!((seen, pages), (vec![5, 4, 3, 2, 1], 3));
        let (_, rest) = app.get(&format!("/v1/ledger/accounts/{customer}/transfers")).await;
        let rest: Vec<u64> =
            rest["data"].as_array().unwrap().iter().map(|t| t["amount"].as_u64().unwrap()).collect();
        assert_eq!(rest, [5, 4, 3, 2, 1]);

        let request = proto::GetAccountBalancesRequest {
            account_id: bytes(customer),
            order: proto::HistoryOrder::Ascending as i32,
            ..Default::default()
        };
        let balances =
            grpc.get_account_balances(authorized(request, &app.admin_key)).await.unwrap().into_inner();
        let credited: Vec<u64> = balances.balances.iter().map(|b| b.credits_posted).collect();
        assert_eq!(credited, [1, 3, 6, 10, 15]);

        let request = proto::GetAccountTransfersRequest { account_id: bytes(unknown), ..Default::default() };
        let missing = grpc.get_account_transfers(authorized(request, &app.admin_key)).await.unwrap_err();
        assert_eq!(missing.code(), Code::NotFound);
        assert_eq!(reason(&missing), "account_not_found");
        app.stop().await;
    }
}

fn reason(status: &Status) -> String {
    status.get_details_error_info().expect("an ErrorInfo").reason
}

fn violations(status: &Status) -> Vec<String> {
    let bad_request = status.get_details_bad_request().expect("a BadRequest");
    bad_request.field_violations.into_iter().map(|violation| violation.field).collect()
}

#[tokio::test]
async fn credentials_are_checked_like_rest() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let session = register_and_login(&app, "grpc-customer@example.com").await;
        let mut grpc = client(&app).await;
        let lookup = || proto::LookupAccountsRequest { ids: vec![bytes(Uuid::now_v7())] };
        let denied = grpc.lookup_accounts(Request::new(lookup())).await.unwrap_err();
        assert_eq!((denied.code(), reason(&denied).as_str()), (Code::Unauthenticated, "unauthorized"));
        let denied = grpc.lookup_accounts(authorized(lookup(), "not-the-key")).await.unwrap_err();
        assert_eq!((denied.code(), reason(&denied).as_str()), (Code::Unauthenticated, "unauthorized"));
        let denied = grpc.lookup_accounts(authorized(lookup(), &session.access_token)).await.unwrap_err();
        assert_eq!((denied.code(), reason(&denied).as_str()), (Code::PermissionDenied, "forbidden"));
        // Not even a stream starts without the key.
        let batches = tokio_stream::iter(Vec::<proto::CreateTransfersStreamRequest>::new());
        let denied = grpc.create_transfers_stream(Request::new(batches)).await.unwrap_err();
        assert_eq!(denied.code(), Code::Unauthenticated);
        let found = grpc.lookup_accounts(authorized(lookup(), &app.admin_key)).await.unwrap().into_inner();
        assert!(found.accounts.is_empty());
        app.stop().await;
    }
}

#[tokio::test]
async fn refused_batches_carry_the_rest_code_and_fields() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let (funding, customer, _) = accounts(&app, Transport::Grpc).await;
        let mut grpc = client(&app).await;
        let transfer = |amount| Event::new(funding, customer, amount, &[]).proto();
        for len in [0, ledger::BATCH_EVENTS_MAX + 1] {
            let request =
                proto::CreateTransfersRequest { transfers: (0..len).map(|_| transfer(1)).collect() };
            let refused = grpc.create_transfers(authorized(request, &app.admin_key)).await.unwrap_err();
            assert_eq!(refused.code(), Code::InvalidArgument, "{len} events");
            assert_eq!(reason(&refused), "validation_failed");
            assert_eq!(violations(&refused), [""]);
            assert_eq!(refused.get_details_error_info().unwrap().domain, "coffer");
        }
        let request =
            proto::CreateTransfersRequest { transfers: vec![transfer(ledger::AMOUNT_MAX + 1), transfer(1)] };
        let refused = grpc.create_transfers(authorized(request, &app.admin_key)).await.unwrap_err();
        assert_eq!((refused.code(), reason(&refused).as_str()), (Code::InvalidArgument, "validation_failed"));
        assert_eq!(violations(&refused), ["/0/amount"]);
        // REST names the same field.
        let (status, body) = app
            .post(
                "/v1/ledger/transfers",
                &json!([{"id": Uuid::now_v7(), "amount": ledger::AMOUNT_MAX + 1, "ledger": USD, "code": 1}]),
            )
            .await;
        assert_eq!((status, body["errors"][0]["field"].as_str()), (422, Some("/0/amount")));
        let mut short_id = transfer(1);
        short_id.id.truncate(15);
        let request = proto::CreateTransfersRequest { transfers: vec![transfer(1), short_id] };
        let refused = grpc.create_transfers(authorized(request, &app.admin_key)).await.unwrap_err();
        assert_eq!(violations(&refused), ["/1/id"]);
        // A message over the size cap is refused before it is decoded.
        let mut huge = transfer(1);
        huge.user_data_128 = vec![7; coffer::grpc::MESSAGE_BYTES_MAX];
        let request = proto::CreateTransfersRequest { transfers: vec![huge] };
        let refused = grpc.create_transfers(authorized(request, &app.admin_key)).await.unwrap_err();
        assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
        // Nothing of it was written.
        let (_, account) = app.get(&format!("/v1/ledger/accounts/{customer}")).await;
        assert_eq!(account["credits_posted"], 0);
        app.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_batches_through_one_stream_arrive_in_order() {
    const BATCHES: u64 = 1_000;
    const PER_BATCH: u64 = 5;
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let (funding, customer, merchant) = accounts(&app, Transport::Grpc).await;
        let (sender, receiver) = tokio::sync::mpsc::channel(8);
        let producer = tokio::spawn(async move {
            for batch_id in 0..BATCHES {
                // From the second batch on, each first spends the 5 the batch before it
                // brought in (the customer may not go negative), then brings in 5 more:
                // every batch succeeds only if the one before it committed first.
                let mut transfers = Vec::new();
                if batch_id > 0 {
                    transfers.push(Event::new(customer, merchant, PER_BATCH, &[]).proto());
                }
                transfers.extend((0..PER_BATCH).map(|_| Event::new(funding, customer, 1, &[]).proto()));
                let batch = proto::CreateTransfersStreamRequest { batch_id, transfers };
                if sender.send(batch).await.is_err() {
                    return;
                }
            }
        });
        let mut grpc = client(&app).await;
        let request = authorized(tokio_stream::wrappers::ReceiverStream::new(receiver), &app.admin_key);
        let mut responses = grpc.create_transfers_stream(request).await.unwrap().into_inner();
        let mut next = 0;
        while let Some(response) = responses.message().await.unwrap() {
            assert_eq!(response.batch_id, next, "responses come in the order the batches were sent");
            let expected = if next == 0 { PER_BATCH } else { PER_BATCH + 1 } as usize;
            assert_eq!(response.results.len(), expected);
            assert!(response.results.iter().all(|r| rest_name(r.result) == "ok"), "batch {next}");
            next += 1;
        }
        producer.await.unwrap();
        assert_eq!(next, BATCHES);
        let ids = vec![bytes(funding), bytes(customer), bytes(merchant)];
        let request = proto::LookupAccountsRequest { ids };
        let found =
            grpc.lookup_accounts(authorized(request, &app.admin_key)).await.unwrap().into_inner().accounts;
        let (funding, customer, merchant) = (&found[0], &found[1], &found[2]);
        assert_eq!(funding.debits_posted, BATCHES * PER_BATCH);
        assert_eq!(customer.credits_posted, BATCHES * PER_BATCH);
        assert_eq!(customer.debits_posted, (BATCHES - 1) * PER_BATCH);
        assert_eq!(merchant.credits_posted, (BATCHES - 1) * PER_BATCH);
        let debits: u64 = found.iter().map(|a| a.debits_posted).sum();
        let credits: u64 = found.iter().map(|a| a.credits_posted).sum();
        assert_eq!(debits, credits, "double entry");
        let store = app.store().await;
        assert_eq!(store.transfers_count().await.unwrap(), BATCHES * PER_BATCH + BATCHES - 1);
        store.close().await;
        app.stop().await;
    }
}

#[tokio::test]
async fn a_refused_batch_ends_the_stream_after_the_results_before_it() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let (funding, customer, _) = accounts(&app, Transport::Grpc).await;
        let batch = |batch_id, amount| proto::CreateTransfersStreamRequest {
            batch_id,
            transfers: vec![Event::new(funding, customer, amount, &[]).proto()],
        };
        let batches = vec![batch(7, 10), batch(8, ledger::AMOUNT_MAX + 1), batch(9, 10)];
        let mut grpc = client(&app).await;
        let request = authorized(tokio_stream::iter(batches), &app.admin_key);
        let mut responses = grpc.create_transfers_stream(request).await.unwrap().into_inner();
        let first = responses.message().await.unwrap().expect("the first batch's results");
        assert_eq!(first.batch_id, 7);
        let refused = responses.message().await.unwrap_err();
        assert_eq!(refused.code(), Code::InvalidArgument);
        assert_eq!(violations(&refused), ["/0/amount"]);
        assert_eq!(refused.get_details_error_info().unwrap().metadata["batch_id"], "8");
        let (_, account) = app.get(&format!("/v1/ledger/accounts/{customer}")).await;
        assert_eq!(account["credits_posted"], 10, "only the batch before the refused one");
        // A batch over the message cap ends the stream as a unary call's would:
        // RESOURCE_EXHAUSTED, after the answers before it.
        let mut huge = batch(21, 10);
        huge.transfers[0].user_data_128 = vec![7; coffer::grpc::MESSAGE_BYTES_MAX];
        let request = authorized(tokio_stream::iter(vec![batch(20, 5), huge, batch(22, 5)]), &app.admin_key);
        let mut responses = grpc.create_transfers_stream(request).await.unwrap().into_inner();
        assert_eq!(responses.message().await.unwrap().expect("the first batch's results").batch_id, 20);
        let refused = responses.message().await.unwrap_err();
        assert_eq!(
            (refused.code(), reason(&refused).as_str()),
            (Code::ResourceExhausted, "payload_too_large")
        );
        let (_, account) = app.get(&format!("/v1/ledger/accounts/{customer}")).await;
        assert_eq!(account["credits_posted"], 15);
        app.stop().await;
    }
}

#[tokio::test]
async fn health_and_reflection_are_served() {
    use tonic_health::pb::{
        HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
    };
    use tonic_reflection::pb::v1::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };
    let app = spawn_app(&common::Backend::Sqlite).await;
    let channel = Channel::from_shared(format!("http://{}", app.grpc_address.unwrap()))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = HealthClient::new(channel.clone());
    for service in ["", "coffer.v1.LedgerService", "coffer.v1.WalletService"] {
        let answer =
            health.check(HealthCheckRequest { service: service.to_owned() }).await.unwrap().into_inner();
        assert_eq!(answer.status(), ServingStatus::Serving, "{service:?}");
    }
    let mut reflection = ServerReflectionClient::new(channel.clone());
    let list = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut answers =
        reflection.server_reflection_info(tokio_stream::iter(vec![list])).await.unwrap().into_inner();
    let answer = answers.message().await.unwrap().expect("an answer");
    let Some(MessageResponse::ListServicesResponse(services)) = answer.message_response else {
        panic!("not a list of services: {answer:?}");
    };
    let names: Vec<String> = services.service.into_iter().map(|service| service.name).collect();
    for expected in [
        "coffer.v1.LedgerService",
        "coffer.v1.WalletService",
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
    ] {
        assert!(names.iter().any(|name| name == expected), "{expected} in {names:?}");
    }
    // Older tools ask v1alpha, and get the same services (each version lists itself).
    use tonic_reflection::pb::v1alpha as alpha;
    let list = alpha::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(alpha::server_reflection_request::MessageRequest::ListServices(String::new())),
    };
    let mut reflection = alpha::server_reflection_client::ServerReflectionClient::new(channel);
    let mut answers =
        reflection.server_reflection_info(tokio_stream::iter(vec![list])).await.unwrap().into_inner();
    let answer = answers.message().await.unwrap().expect("an answer");
    let Some(alpha::server_reflection_response::MessageResponse::ListServicesResponse(services)) =
        answer.message_response
    else {
        panic!("not a list of services: {answer:?}");
    };
    let alpha_names: Vec<String> = services.service.into_iter().map(|service| service.name).collect();
    let as_alpha = |name: &String| name.replace("reflection.v1.", "reflection.v1alpha.");
    assert_eq!(alpha_names, names.iter().map(as_alpha).collect::<Vec<_>>());
    app.stop().await;
}

#[tokio::test]
async fn shutdown_ends_an_open_stream_after_answering_what_it_took() {
    let mut app = spawn_app(&common::Backend::Sqlite).await;
    let (funding, customer, _) = accounts(&app, Transport::Grpc).await;
    let (sender, receiver) = tokio::sync::mpsc::channel(1);
    let mut grpc = client(&app).await;
    let request = authorized(tokio_stream::wrappers::ReceiverStream::new(receiver), &app.admin_key);
    let transfers = vec![Event::new(funding, customer, 10, &[]).proto()];
    sender.send(proto::CreateTransfersStreamRequest { batch_id: 1, transfers }).await.unwrap();
    let mut responses = grpc.create_transfers_stream(request).await.unwrap().into_inner();
    assert_eq!(responses.message().await.unwrap().expect("the batch's results").batch_id, 1);
    // The client keeps its side open; shutdown must not wait for it forever.
    tokio::time::timeout(std::time::Duration::from_secs(10), app.stop_server())
        .await
        .expect("shutdown finishes although a stream is open");
    let ended = responses.message().await.unwrap_err();
    assert_eq!((ended.code(), reason(&ended).as_str()), (Code::Unavailable, "shutting_down"));
    drop(sender);
    app.restart().await;
    let (_, account) = app.get(&format!("/v1/ledger/accounts/{customer}")).await;
    assert_eq!(account["credits_posted"], 10, "the answered batch was committed");
    app.stop().await;
}

/// A stream's batch of `size` one-unit transfers from `funding` to `customer`.
fn unit_batch(
    batch_id: u64,
    size: usize,
    funding: Uuid,
    customer: Uuid,
) -> proto::CreateTransfersStreamRequest {
    let transfers = (0..size).map(|_| Event::new(funding, customer, 1, &[]).proto()).collect();
    proto::CreateTransfersStreamRequest { batch_id, transfers }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_client_that_stops_reading_stops_the_stream_taking_batches() {
    const BATCHES: u64 = 100;
    const SIZE: usize = 1_000;
    let app = spawn_app(&common::Backend::Sqlite).await;
    let (funding, customer, _) = accounts(&app, Transport::Grpc).await;
    // Small HTTP/2 windows on the client, so that what the transport itself can hold is
    // small and known.
    let channel = Channel::from_shared(format!("http://{}", app.grpc_address.unwrap()))
        .unwrap()
        .initial_stream_window_size(65_535)
        .initial_connection_window_size(65_535)
        .connect()
        .await
        .unwrap();
    let mut grpc = LedgerServiceClient::new(channel);
    let batches: Vec<_> = (0..BATCHES).map(|id| unit_batch(id, SIZE, funding, customer)).collect();
    let request = authorized(tokio_stream::iter(batches), &app.admin_key);
    let mut responses = grpc.create_transfers_stream(request).await.unwrap().into_inner();
    // Read nothing for a while: the server must stop taking batches once what it has
    // answered fills its buffers. It holds at most 4 batches in the pipeline and 4
    // answers in its buffer; below it, HTTP/2 holds the server's send buffer (400 KiB in
    // hyper) and the client's 64 KiB window — about 18 answers of 1,000 results (~26
    // bytes each). So at most ~27 of the 100 batches can commit while nobody reads.
    tokio::time::sleep(std::time::Duration::from_millis(1_500)).await;
    let store = app.store().await;
    let committed = store.transfers_count().await.unwrap() / SIZE as u64;
    assert!(committed > 0, "the stream started");
    assert!(committed <= 30, "{committed} of {BATCHES} batches committed while the client read nothing");
    // Reading again, every batch arrives, in order, each applied once.
    let mut next = 0;
    while let Some(response) = responses.message().await.unwrap() {
        assert_eq!(response.batch_id, next);
        assert!(response.results.iter().all(|r| rest_name(r.result) == "ok"));
        next += 1;
    }
    assert_eq!(next, BATCHES);
    assert_eq!(store.transfers_count().await.unwrap(), BATCHES * SIZE as u64);
    store.close().await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_client_that_loses_its_stream_resends_and_nothing_is_applied_twice() {
    for backend in backends() {
        const BATCHES: u64 = 40;
        const SIZE: usize = 50;
        let app = spawn_app(&backend).await;
        let (funding, customer, _) = accounts(&app, Transport::Grpc).await;
        let batches: Vec<_> = (0..BATCHES).map(|id| unit_batch(id, SIZE, funding, customer)).collect();
        // The first stream: every batch sent, 10 answers read, then the connection
        // dropped mid-stream (the client goes away with batches unanswered).
        let (sender, receiver) = tokio::sync::mpsc::channel(BATCHES as usize);
        for batch in &batches {
            sender.send(batch.clone()).await.unwrap();
        }
        let mut grpc = client(&app).await;
        let request = authorized(tokio_stream::wrappers::ReceiverStream::new(receiver), &app.admin_key);
        let mut responses = grpc.create_transfers_stream(request).await.unwrap().into_inner();
        let mut acknowledged = 0;
        while acknowledged < 10 {
            let response = responses.message().await.unwrap().expect("an answer");
            assert_eq!(response.batch_id, acknowledged);
            assert!(response.results.iter().all(|r| rest_name(r.result) == "ok"));
            acknowledged += 1;
        }
        drop(responses);
        drop(grpc);
        drop(sender);
        // The retry, on a new connection: every batch without an answer, same ids.
        let mut grpc = client(&app).await;
        let resent = batches[acknowledged as usize..].to_vec();
        let request = authorized(tokio_stream::iter(resent), &app.admin_key);
        let mut responses = grpc.create_transfers_stream(request).await.unwrap().into_inner();
        let (mut ok, mut exists) = (0, 0);
        let mut next = acknowledged;
        while let Some(response) = responses.message().await.unwrap() {
            assert_eq!(response.batch_id, next);
            for result in &response.results {
                match rest_name(result.result).as_str() {
                    "ok" => ok += 1,
                    "exists" => exists += 1,
                    other => panic!("batch {next}: {other}"),
                }
            }
            next += 1;
        }
        assert_eq!(next, BATCHES);
        assert_eq!(ok + exists, (BATCHES - acknowledged) as usize * SIZE);
        // Every transfer applied exactly once, whichever stream committed it.
        let request = proto::LookupAccountsRequest { ids: vec![bytes(customer)] };
        let found = grpc.lookup_accounts(authorized(request, &app.admin_key)).await.unwrap().into_inner();
        assert_eq!(found.accounts[0].credits_posted, BATCHES * SIZE as u64);
        let store = app.store().await;
        assert_eq!(store.transfers_count().await.unwrap(), BATCHES * SIZE as u64);
        store.close().await;
        app.stop().await;
    }
}
