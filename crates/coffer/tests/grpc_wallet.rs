//! Black-box tests of `coffer.v1.WalletService`, on SQLite and (when configured)
//! PostgreSQL, over a real HTTP/2 connection with the generated tonic client: money moves
//! as over REST (and REST sees it); idempotency keys replay and conflict across calls;
//! the auth matrix (no, bad, expired token; the admin key; someone else's objects are
//! NOT_FOUND); invalid fields with REST's paths; the money rate limit; deadlines; request
//! ids and the gRPC metrics.

mod common;

use coffer::grpc::proto::{self, wallet_service_client::WalletServiceClient};
use common::{
    Options, TEST_JWT_SECRET, TestApp, backends,
    customer::{get, open_wallet},
    register_and_login, spawn_app, spawn_app_with,
};
use serde_json::json;
use tonic::{Code, Request, Status, transport::Channel};
use tonic_types::StatusExt;
use uuid::Uuid;

async fn client(app: &TestApp) -> WalletServiceClient<Channel> {
    let address = app.grpc_address.expect("the test server serves gRPC");
    let channel =
        Channel::from_shared(format!("http://{address}")).unwrap().connect().await.expect("gRPC connects");
    WalletServiceClient::new(channel)
}

/// `message` with the customer's token, and an idempotency key when given.
fn call<T>(message: T, token: &str, key: Option<&str>) -> Request<T> {
    let mut request = Request::new(message);
    request.metadata_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
    if let Some(key) = key {
        request.metadata_mut().insert("idempotency-key", key.parse().unwrap());
    }
    request
}

fn bytes(id: &str) -> Vec<u8> {
    Uuid::parse_str(id).unwrap().as_bytes().to_vec()
}

fn uuid(bytes: &[u8]) -> Uuid {
    Uuid::from_slice(bytes).unwrap()
}

fn reason(status: &Status) -> String {
    status.get_details_error_info().expect("an ErrorInfo").reason
}

fn violations(status: &Status) -> Vec<String> {
    let bad_request = status.get_details_bad_request().expect("a BadRequest");
    bad_request.field_violations.into_iter().map(|violation| violation.field).collect()
}

fn replayed<T>(response: &tonic::Response<T>) -> bool {
    response.metadata().get("idempotent-replayed").is_some_and(|value| value == "true")
}

fn send(from: &str, to: proto::transfer_money_request::To, amount: u64) -> proto::TransferMoneyRequest {
    proto::TransferMoneyRequest {
        from_wallet_id: bytes(from),
        to: Some(to),
        amount,
        description: "rent".into(),
    }
}

fn to_wallet(id: &str) -> proto::transfer_money_request::To {
    proto::transfer_money_request::To::ToWalletId(bytes(id))
}

fn deposit(wallet: &str, amount: u64, card: &str) -> proto::DepositMoneyRequest {
    proto::DepositMoneyRequest { wallet_id: bytes(wallet), amount, payment_method: card.into() }
}

async fn available(grpc: &mut WalletServiceClient<Channel>, token: &str, wallet: &str) -> i64 {
    let request = proto::GetBalanceRequest { wallet_id: bytes(wallet) };
    grpc.get_balance(call(request, token, None)).await.unwrap().into_inner().balance.unwrap().available
}

#[tokio::test]
async fn money_moves_over_grpc_as_over_rest() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let ada = register_and_login(&app, "ada@example.com").await;
        let bob = register_and_login(&app, "bob@example.com").await;
        let ada_wallet = open_wallet(&app, &ada, "USD").await;
        let bob_wallet = open_wallet(&app, &bob, "USD").await;
        let mut grpc = client(&app).await;
        let token = ada.access_token.as_str();

        let topped =
            grpc.deposit_money(call(deposit(&ada_wallet, 10_000, "tok_visa"), token, Some("d1"))).await;
        let topped = topped.unwrap().into_inner();
        assert_eq!(topped.status(), proto::PaymentStatus::Succeeded);
        assert_eq!((topped.amount, topped.currency.as_str()), (10_000, "USD"));
        let declined = grpc
            .deposit_money(call(deposit(&ada_wallet, 500, "tok_chargeDeclined"), token, Some("d2")))
            .await;
        let declined = declined.unwrap().into_inner();
        assert_eq!(
            (declined.status(), declined.failure_code.as_str()),
            (proto::PaymentStatus::Failed, "card_declined")
        );

        let sent =
            grpc.transfer_money(call(send(&ada_wallet, to_wallet(&bob_wallet), 2_500), token, Some("t1")));
        let sent = sent.await.unwrap().into_inner();
        assert_eq!(sent.status(), proto::WalletTransferStatus::Posted);
        assert_eq!(
            (uuid(&sent.from_wallet_id), uuid(&sent.to_wallet_id)),
            (bytes_id(&ada_wallet), bytes_id(&bob_wallet))
        );
        let by_email = proto::transfer_money_request::To::ToEmail("bob@example.com".into());
        let by_email = grpc.transfer_money(call(send(&ada_wallet, by_email, 500), token, Some("t2"))).await;
        assert_eq!(uuid(&by_email.unwrap().into_inner().to_wallet_id), bytes_id(&bob_wallet));

        // REST shows the same transfer, with the same time.
        let (status, rest) = get(&app, &ada, &format!("/v1/transfers/{}", uuid(&sent.id))).await;
        assert_eq!(status, 200, "{rest}");
        assert_eq!((rest["amount"].as_u64(), rest["description"].as_str()), (Some(2_500), Some("rent")));
        let rest_time = time::OffsetDateTime::parse(
            rest["created_at"].as_str().unwrap(),
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap();
        assert_eq!(rest_time.unix_timestamp_nanos(), i128::from(sent.created_at));
        let fetched = grpc.get_transfer(call(
            proto::GetTransferRequest { transfer_id: sent.id.clone() },
            &bob.access_token,
            None,
        ));
        assert_eq!(fetched.await.unwrap().into_inner(), sent, "the recipient sees it too");

        let withdrawn = proto::WithdrawRequest {
            wallet_id: bytes(&ada_wallet),
            amount: 1_000,
            destination: "ba_checking".into(),
        };
        let withdrawn = grpc.withdraw(call(withdrawn, token, Some("w1"))).await.unwrap().into_inner();
        assert_eq!(withdrawn.status(), proto::PaymentStatus::Succeeded);

        assert_eq!(available(&mut grpc, token, &ada_wallet).await, 10_000 - 2_500 - 500 - 1_000);
        assert_eq!(available(&mut grpc, &bob.access_token, &bob_wallet).await, 3_000);
        let (_, rest_wallet) = get(&app, &ada, &format!("/v1/wallets/{ada_wallet}")).await;
        assert_eq!(rest_wallet["balance"]["available"], 6_000);

        // The history, a page at a time, newest first, as REST lists it.
        let mut seen = Vec::new();
        let mut page_token = String::new();
        loop {
            let request = proto::ListOperationsRequest {
                wallet_id: bytes(&ada_wallet),
                page_size: 1,
                page_token: page_token.clone(),
                ..Default::default()
            };
            let page = grpc.list_operations(call(request, token, None)).await.unwrap().into_inner();
            assert!(page.operations.len() <= 1);
            seen.extend(page.operations.into_iter().map(|operation| (operation.r#type(), operation.amount)));
            if page.next_page_token.is_empty() {
                break;
            }
            page_token = page.next_page_token;
        }
        use proto::OperationType as T;
        assert_eq!(
            seen,
            [(T::Withdrawal, -1_000), (T::TransferOut, -500), (T::TransferOut, -2_500), (T::TopUp, 10_000)]
        );
        let (_, rest_page) = get(&app, &ada, &format!("/v1/wallets/{ada_wallet}/operations")).await;
        let rest_amounts: Vec<i64> =
            rest_page["data"].as_array().unwrap().iter().map(|op| op["amount"].as_i64().unwrap()).collect();
        assert_eq!(rest_amounts, seen.iter().map(|(_, amount)| *amount).collect::<Vec<_>>());
        let request = proto::ListOperationsRequest { r#type: T::TransferIn.into(), ..Default::default() };
        let incoming =
            grpc.list_operations(call(request, &bob.access_token, None)).await.unwrap().into_inner();
        assert_eq!(incoming.operations.iter().map(|op| op.amount).collect::<Vec<_>>(), [500, 2_500]);
        assert!(
            incoming.operations.iter().all(|op| uuid(&op.counterparty_wallet_id) == bytes_id(&ada_wallet))
        );
        app.stop().await;
    }
}

fn bytes_id(id: &str) -> Uuid {
    Uuid::parse_str(id).unwrap()
}

#[tokio::test]
async fn idempotency_keys_replay_and_conflict() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let ada = register_and_login(&app, "ada@example.com").await;
        let bob = register_and_login(&app, "bob@example.com").await;
        let ada_wallet = open_wallet(&app, &ada, "USD").await;
        let bob_wallet = open_wallet(&app, &bob, "USD").await;
        let mut grpc = client(&app).await;
        let token = ada.access_token.as_str();

        // A refusal is remembered: once funded, the same key still answers it.
        let broke =
            grpc.transfer_money(call(send(&ada_wallet, to_wallet(&bob_wallet), 700), token, Some("k0")));
        let broke = broke.await.unwrap_err();
        assert_eq!((broke.code(), reason(&broke).as_str()), (Code::FailedPrecondition, "insufficient_funds"));
        assert!(broke.metadata().get("idempotent-replayed").is_none());
        grpc.deposit_money(call(deposit(&ada_wallet, 1_000, "tok_visa"), token, Some("fund"))).await.unwrap();
        let again =
            grpc.transfer_money(call(send(&ada_wallet, to_wallet(&bob_wallet), 700), token, Some("k0")));
        let again = again.await.unwrap_err();
        assert_eq!((again.code(), reason(&again).as_str()), (Code::FailedPrecondition, "insufficient_funds"));
        assert_eq!(again.metadata().get("idempotent-replayed").unwrap(), "true");

        // A success replays as the same transfer, and moves money once.
        let first =
            grpc.transfer_money(call(send(&ada_wallet, to_wallet(&bob_wallet), 300), token, Some("k1")));
        let first = first.await.unwrap();
        assert!(!replayed(&first));
        let second =
            grpc.transfer_money(call(send(&ada_wallet, to_wallet(&bob_wallet), 300), token, Some("k1")));
        let second = second.await.unwrap();
        assert!(replayed(&second));
        assert_eq!(first.into_inner(), second.into_inner());
        assert_eq!(available(&mut grpc, token, &ada_wallet).await, 700);

        // The same key with another request, or for another operation, is a conflict.
        let other =
            grpc.transfer_money(call(send(&ada_wallet, to_wallet(&bob_wallet), 301), token, Some("k1")));
        let other = other.await.unwrap_err();
        assert_eq!((other.code(), reason(&other).as_str()), (Code::Aborted, "idempotency_key_reused"));
        let other = grpc.deposit_money(call(deposit(&ada_wallet, 300, "tok_visa"), token, Some("k1"))).await;
        assert_eq!(reason(&other.unwrap_err()), "idempotency_key_reused");
        // REST shares the keys: the gRPC request is another request.
        let body = json!({"from_wallet_id": ada_wallet, "to_wallet_id": bob_wallet, "amount": 300});
        let response = app
            .client
            .post(app.url("/v1/transfers"))
            .bearer_auth(token)
            .header("Idempotency-Key", "k1")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 409);

        // Another customer's key of the same name is theirs.
        grpc.deposit_money(call(deposit(&bob_wallet, 50, "tok_visa"), &bob.access_token, Some("k1")))
            .await
            .unwrap();

        // Without a key, or with a malformed one, nothing runs.
        let missing = grpc.transfer_money(call(send(&ada_wallet, to_wallet(&bob_wallet), 1), token, None));
        let missing = missing.await.unwrap_err();
        assert_eq!(
            (missing.code(), reason(&missing).as_str()),
            (Code::InvalidArgument, "idempotency_key_required")
        );
        let long = "k".repeat(256);
        let invalid = grpc.withdraw(call(
            proto::WithdrawRequest {
                wallet_id: bytes(&ada_wallet),
                amount: 1,
                destination: "ba_checking".into(),
            },
            token,
            Some(&long),
        ));
        assert_eq!(reason(&invalid.await.unwrap_err()), "invalid_idempotency_key");
        assert_eq!(available(&mut grpc, token, &ada_wallet).await, 700);
        app.stop().await;
    }
}

fn expired_token(customer_id: &str) -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let claims = json!({
        "iss": "coffer", "aud": "coffer-api", "exp": now - 3600, "nbf": now - 4500, "iat": now - 4500,
        "sub": customer_id, "jti": Uuid::now_v7().to_string(), "role": "customer",
    });
    let key = jsonwebtoken::EncodingKey::from_secret(TEST_JWT_SECRET.as_bytes());
    jsonwebtoken::encode(&jsonwebtoken::Header::default(), &claims, &key).unwrap()
}

#[tokio::test]
async fn credentials_and_ownership_are_checked_like_rest() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let ada = register_and_login(&app, "ada@example.com").await;
        let eve = register_and_login(&app, "eve@example.com").await;
        let ada_wallet = open_wallet(&app, &ada, "USD").await;
        let eve_wallet = open_wallet(&app, &eve, "USD").await;
        let mut grpc = client(&app).await;
        let balance = || proto::GetBalanceRequest { wallet_id: bytes(&ada_wallet) };

        let denied = grpc.get_balance(Request::new(balance())).await.unwrap_err();
        assert_eq!((denied.code(), reason(&denied).as_str()), (Code::Unauthenticated, "unauthorized"));
        for token in ["not-a-token", expired_token(&ada.customer_id).as_str()] {
            let denied = grpc.get_balance(call(balance(), token, None)).await.unwrap_err();
            assert_eq!(
                (denied.code(), reason(&denied).as_str()),
                (Code::Unauthenticated, "unauthorized"),
                "{token}"
            );
        }
        let denied = grpc.get_balance(call(balance(), &app.admin_key, None)).await.unwrap_err();
        assert_eq!((denied.code(), reason(&denied).as_str()), (Code::PermissionDenied, "forbidden"));
        grpc.get_balance(call(balance(), &ada.access_token, None)).await.unwrap();

        // Eve sees none of Ada's objects: each is NOT_FOUND, as if it did not exist.
        let eve_token = eve.access_token.as_str();
        let hidden = grpc.get_balance(call(balance(), eve_token, None)).await.unwrap_err();
        assert_eq!((hidden.code(), reason(&hidden).as_str()), (Code::NotFound, "wallet_not_found"));
        let from_ada =
            grpc.transfer_money(call(send(&ada_wallet, to_wallet(&eve_wallet), 1), eve_token, Some("x")));
        assert_eq!(reason(&from_ada.await.unwrap_err()), "wallet_not_found");
        let list = proto::ListOperationsRequest { wallet_id: bytes(&ada_wallet), ..Default::default() };
        assert_eq!(
            reason(&grpc.list_operations(call(list, eve_token, None)).await.unwrap_err()),
            "wallet_not_found"
        );
        let top_up = grpc.deposit_money(call(deposit(&ada_wallet, 100, "tok_visa"), eve_token, Some("y")));
        assert_eq!(reason(&top_up.await.unwrap_err()), "wallet_not_found");
        grpc.deposit_money(call(deposit(&ada_wallet, 100, "tok_visa"), &ada.access_token, Some("y")))
            .await
            .unwrap();
        let own = grpc.transfer_money(call(
            send(&ada_wallet, to_wallet(&ada_wallet), 1),
            &ada.access_token,
            Some("z"),
        ));
        assert_eq!(reason(&own.await.unwrap_err()), "same_wallet");
        let sent = grpc.transfer_money(call(
            send(&ada_wallet, proto::transfer_money_request::To::ToEmail("ada@example.com".into()), 1),
            &ada.access_token,
            Some("self"),
        ));
        let sent = sent.await;
        assert_eq!(reason(&sent.unwrap_err()), "same_wallet");
        let paid = grpc.transfer_money(call(
            send(&ada_wallet, to_wallet(&eve_wallet), 10),
            &ada.access_token,
            Some("p"),
        ));
        let paid = paid.await.unwrap().into_inner();
        let stranger = register_and_login(&app, "mallory@example.com").await;
        let peek = proto::GetTransferRequest { transfer_id: paid.id.clone() };
        let hidden = grpc.get_transfer(call(peek.clone(), &stranger.access_token, None)).await.unwrap_err();
        assert_eq!((hidden.code(), reason(&hidden).as_str()), (Code::NotFound, "transfer_not_found"));
        grpc.get_transfer(call(peek, eve_token, None)).await.unwrap();
        app.stop().await;
    }
}

#[tokio::test]
async fn invalid_fields_are_refused_with_rest_paths() {
    let app = spawn_app(&common::Backend::Sqlite).await;
    let ada = register_and_login(&app, "ada@example.com").await;
    let wallet = open_wallet(&app, &ada, "USD").await;
    let token = ada.access_token.as_str();
    let mut grpc = client(&app).await;
    let other = Uuid::now_v7().to_string();
    let cases: Vec<(proto::TransferMoneyRequest, &str)> = vec![
        (send(&wallet, to_wallet(&other), 0), "/amount"),
        (send(&wallet, to_wallet(&other), u64::MAX), "/amount"),
        (send(&wallet, proto::transfer_money_request::To::ToEmail("not an email".into()), 1), "/to_email"),
        (proto::TransferMoneyRequest { to: None, ..send(&wallet, to_wallet(&other), 1) }, "/to_wallet_id"),
        (
            proto::TransferMoneyRequest {
                from_wallet_id: vec![1, 2, 3],
                ..send(&wallet, to_wallet(&other), 1)
            },
            "/from_wallet_id",
        ),
        (
            proto::TransferMoneyRequest {
                description: "d".repeat(201),
                ..send(&wallet, to_wallet(&other), 1)
            },
            "/description",
        ),
    ];
    for (index, (request, field)) in cases.into_iter().enumerate() {
        let refused =
            grpc.transfer_money(call(request, token, Some(&format!("bad-{index}")))).await.unwrap_err();
        assert_eq!(refused.code(), Code::InvalidArgument, "{field}: {refused:?}");
        assert_eq!(violations(&refused), [field], "{refused:?}");
    }
    let refused = grpc
        .deposit_money(call(deposit(&wallet, 5, "tok visa!"), token, Some("bad-card")))
        .await
        .unwrap_err();
    assert_eq!(violations(&refused), ["/payment_method"]);
    let refused = grpc.withdraw(call(
        proto::WithdrawRequest { wallet_id: bytes(&wallet), amount: 5, destination: String::new() },
        token,
        Some("bad-destination"),
    ));
    assert_eq!(violations(&refused.await.unwrap_err()), ["/destination"]);
    let adjustments = proto::ListOperationsRequest {
        r#type: proto::OperationType::Adjustment.into(),
        ..Default::default()
    };
    assert_eq!(
        violations(&grpc.list_operations(call(adjustments, token, None)).await.unwrap_err()),
        ["type"]
    );
    let unknown = proto::ListOperationsRequest { status: 99, ..Default::default() };
    assert_eq!(violations(&grpc.list_operations(call(unknown, token, None)).await.unwrap_err()), ["status"]);
    let too_big = proto::ListOperationsRequest { page_size: 101, ..Default::default() };
    assert_eq!(violations(&grpc.list_operations(call(too_big, token, None)).await.unwrap_err()), ["limit"]);
    let forged = proto::ListOperationsRequest { page_token: "bm90LWEtY3Vyc29y".into(), ..Default::default() };
    let refused = grpc.list_operations(call(forged, token, None)).await.unwrap_err();
    assert_eq!((refused.code(), reason(&refused).as_str()), (Code::InvalidArgument, "invalid_parameter"));
    // A message over REST's body cap is refused before anything reads it.
    let huge = proto::TransferMoneyRequest {
        description: "d".repeat(70 * 1024),
        ..send(&wallet, to_wallet(&other), 1)
    };
    let refused = grpc.transfer_money(call(huge, token, Some("huge"))).await.unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert_eq!(available(&mut grpc, token, &wallet).await, 0, "nothing moved");
    app.stop().await;
}

#[tokio::test]
async fn the_money_rate_limit_holds_over_grpc_too() {
    let options = Options { money_requests_per_minute: 2, ..Options::default() };
    let app = spawn_app_with(&common::Backend::Sqlite, options).await;
    let ada = register_and_login(&app, "ada@example.com").await;
    let wallet = open_wallet(&app, &ada, "USD").await;
    let mut grpc = client(&app).await;
    // Opening the wallet took one of the two; one more top-up passes.
    let token = ada.access_token.as_str();
    grpc.deposit_money(call(deposit(&wallet, 100, "tok_visa"), token, Some("a"))).await.unwrap();
    let limited =
        grpc.deposit_money(call(deposit(&wallet, 100, "tok_visa"), token, Some("b"))).await.unwrap_err();
    assert_eq!((limited.code(), reason(&limited).as_str()), (Code::ResourceExhausted, "too_many_requests"));
    assert_eq!(available(&mut grpc, token, &wallet).await, 100);
    app.stop().await;
}

#[tokio::test]
async fn a_deadline_ends_the_call_and_a_retry_moves_money_once() {
    for backend in backends() {
        // The server's own limit on a call, shorter than the card gateway takes. (A
        // caller's `grpc-timeout` takes the same path, but a test cannot stop its own
        // client's timer racing the server's answer.)
        let options = Options {
            configure: |args| {
                args.mock_provider_latency_ms = 1_500;
                args.request_timeout_ms = 500;
            },
            ..Options::default()
        };
        let app = spawn_app_with(&backend, options).await;
        let ada = register_and_login(&app, "ada@example.com").await;
        let wallet = open_wallet(&app, &ada, "USD").await;
        let token = ada.access_token.as_str();
        let mut grpc = client(&app).await;
        let started = std::time::Instant::now();
        let late = grpc.deposit_money(call(deposit(&wallet, 2_000, "tok_visa"), token, Some("slow"))).await;
        let late = late.unwrap_err();
        assert_eq!(late.code(), Code::DeadlineExceeded, "{late:?}");
        assert!(started.elapsed() < std::time::Duration::from_millis(1_500), "answered at the deadline");
        // The retry under the same key finds or makes the one top-up; it may be cut
        // short too while the gateway is slow, and is then retried again.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let payment = loop {
            match grpc.deposit_money(call(deposit(&wallet, 2_000, "tok_visa"), token, Some("slow"))).await {
                Ok(payment) => break payment.into_inner(),
                Err(late) => assert_eq!(late.code(), Code::DeadlineExceeded, "{late:?}"),
            }
            assert!(std::time::Instant::now() < deadline, "the retries never got an answer");
        };
        // Where the abandoned call had got to decides the outcome: the charge made (the
        // top-up succeeds, once) or not yet (the recovery worker finds no charge and the
        // top-up fails). Either way the wallet holds what the top-up's status says.
        let settled = loop {
            let (_, found) = get(&app, &ada, &format!("/v1/top-ups/{}", uuid(&payment.id))).await;
            if found["status"] != "pending" {
                break found;
            }
            assert!(std::time::Instant::now() < deadline, "the top-up never settled: {found}");
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        };
        let expected = match settled["status"].as_str() {
            Some("succeeded") => 2_000,
            Some("failed") => {
                assert_eq!(settled["failure_code"], "charge_not_found", "{settled}");
                0
            }
            _ => panic!("{settled}"),
        };
        assert_eq!(available(&mut grpc, token, &wallet).await, expected, "once, or not at all: {settled}");
        app.stop().await;
    }
}

#[tokio::test]
async fn calls_carry_request_ids_and_are_counted() {
    let app = spawn_app(&common::Backend::Sqlite).await;
    let ada = register_and_login(&app, "ada@example.com").await;
    let wallet = open_wallet(&app, &ada, "USD").await;
    let mut grpc = client(&app).await;
    let mut request = call(proto::GetBalanceRequest { wallet_id: bytes(&wallet) }, &ada.access_token, None);
    request.metadata_mut().insert("x-request-id", "trace-me-42".parse().unwrap());
    let answered = grpc.get_balance(request).await.unwrap();
    assert_eq!(answered.metadata().get("x-request-id").unwrap(), "trace-me-42");
    let fresh = grpc.get_balance(call(
        proto::GetBalanceRequest { wallet_id: bytes(&wallet) },
        &ada.access_token,
        None,
    ));
    let fresh = fresh.await.unwrap();
    let id = fresh.metadata().get("x-request-id").expect("a request id is made").to_str().unwrap();
    assert!(Uuid::parse_str(id).is_ok(), "{id}");
    // A refusal carries one too.
    let refused = grpc.get_balance(Request::new(proto::GetBalanceRequest::default())).await.unwrap_err();
    assert!(refused.metadata().get("x-request-id").is_some());

    let metrics = app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    let counted = |method: &str, code: &str| {
        metrics.lines().find(|line| {
            line.starts_with("coffer_grpc_requests_total{")
                && line.contains(&format!("method=\"{method}\""))
                && line.contains(&format!("code=\"{code}\""))
        })
    };
    let ok = counted("/coffer.v1.WalletService/GetBalance", "OK").expect("the successful calls are counted");
    let count: f64 = ok.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(count >= 2.0, "{ok}");
    counted("/coffer.v1.WalletService/GetBalance", "UNAUTHENTICATED").expect("the refusal is counted");
    assert!(
        metrics.lines().any(|line| line.starts_with("coffer_grpc_request_duration_seconds_bucket{")
            && line.contains("method=\"/coffer.v1.WalletService/GetBalance\"")),
        "latency is recorded"
    );
    app.stop().await;
}

/// REST and gRPC moving money at once, over both the wallet API and the ledger: every
/// transfer acknowledged on either transport is stored once, none that was refused is,
/// and money is conserved.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rest_and_grpc_at_once_keep_the_books() {
    use coffer::grpc::proto::ledger_service_client::LedgerServiceClient;
    use common::customer::{keyed_post, top_up};
    const PER_TASK: usize = 30;
    const FUNDS: i64 = 3_000;
    for backend in backends() {
        let app = std::sync::Arc::new(spawn_app(&backend).await);
        let mut sessions = Vec::new();
        let mut wallets = Vec::new();
        for name in ["ada", "bob", "cy"] {
            let session = register_and_login(&app, &format!("{name}@example.com")).await;
            let wallet = open_wallet(&app, &session, "USD").await;
            top_up(&app, &session, &wallet, FUNDS as u64).await;
            sessions.push(session);
            wallets.push(wallet);
        }
        // Ledger accounts for the ledger half: a source and a sink.
        let (source, sink) = (Uuid::now_v7(), Uuid::now_v7());
        let accounts =
            json!([{"id": source, "ledger": 840, "code": 1}, {"id": sink, "ledger": 840, "code": 1}]);
        assert_eq!(app.post("/v1/ledger/accounts", &accounts).await.0, 200);

        let mut tasks = tokio::task::JoinSet::new();
        for task in 0..6 {
            let (app, sessions, wallets) = (app.clone(), sessions.clone(), wallets.clone());
            tasks.spawn(async move {
                // Each task sends from one customer to the next, on its transport; some
                // run out of money and are refused, which is part of the test.
                let (from, to) = (task % 3, (task + 1) % 3);
                let grpc_transport = task >= 3;
                let mut grpc = client(&app).await;
                let mut acknowledged = Vec::new();
                for n in 0..PER_TASK {
                    let amount = 1 + ((task * 31 + n * 17) % 250) as u64;
                    let key = format!("mixed-{task}-{n}");
                    if grpc_transport {
                        let request = send(&wallets[from], to_wallet(&wallets[to]), amount);
                        match grpc.transfer_money(call(request, &sessions[from].access_token, Some(&key))).await {
                            Ok(sent) => acknowledged.push((uuid(&sent.into_inner().id), amount)),
                            Err(refused) => assert_eq!(reason(&refused), "insufficient_funds"),
                        }
                    } else {
                        let body = json!({"from_wallet_id": wallets[from], "to_wallet_id": wallets[to], "amount": amount});
                        let (status, body) = keyed_post(&app, &sessions[from], "/v1/transfers", &body).await;
                        match status {
                            201 => acknowledged.push((body["id"].as_str().unwrap().parse().unwrap(), amount)),
                            _ => assert_eq!(body["code"], "insufficient_funds", "{body}"),
                        }
                    }
                }
                acknowledged
            });
        }
        // The ledger half: a gRPC stream and REST batches between the same two accounts.
        let ledger_grpc = {
            let app = app.clone();
            tokio::spawn(async move {
                let address = app.grpc_address.unwrap();
                let channel =
                    Channel::from_shared(format!("http://{address}")).unwrap().connect().await.unwrap();
                let mut ledger = LedgerServiceClient::new(channel);
                let batches: Vec<_> = (0..20)
                    .map(|batch_id| proto::CreateTransfersStreamRequest {
                        batch_id,
                        transfers: (0..25)
                            .map(|_| proto::NewTransfer {
                                id: Uuid::now_v7().as_bytes().to_vec(),
                                debit_account_id: source.as_bytes().to_vec(),
                                credit_account_id: sink.as_bytes().to_vec(),
                                amount: 3,
                                ledger: 840,
                                code: 1,
                                ..Default::default()
                            })
                            .collect(),
                    })
                    .collect();
                let mut request = Request::new(tokio_stream::iter(batches));
                request
                    .metadata_mut()
                    .insert("authorization", format!("Bearer {}", app.admin_key).parse().unwrap());
                let mut responses = ledger.create_transfers_stream(request).await.unwrap().into_inner();
                let mut ok = 0u64;
                while let Some(response) = responses.message().await.unwrap() {
                    ok += response
                        .results
                        .iter()
                        .filter(|r| r.result == proto::CreateTransferResult::Ok as i32)
                        .count() as u64;
                }
                ok * 3
            })
        };
        let ledger_rest = {
            let app = app.clone();
            tokio::spawn(async move {
                let mut moved = 0;
                for _ in 0..20 {
                    let batch: Vec<_> = (0..25)
                        .map(|_| json!({"id": Uuid::now_v7(), "debit_account_id": source, "credit_account_id": sink, "amount": 7, "ledger": 840, "code": 1}))
                        .collect();
                    let (status, body) =
                        app.post("/v1/ledger/transfers", &serde_json::Value::Array(batch)).await;
                    assert_eq!(status, 200, "{body}");
                    moved += 7 * body["results"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .filter(|r| r["result"] == "ok")
                        .count() as u64;
                }
                moved
            })
        };
        let mut acknowledged = Vec::new();
        while let Some(task) = tasks.join_next().await {
            acknowledged.extend(task.unwrap());
        }
        let ledger_moved = ledger_grpc.await.unwrap() + ledger_rest.await.unwrap();
        assert_eq!(ledger_moved, 20 * 25 * 3 + 20 * 25 * 7, "every ledger transfer acknowledged ok");

        // Conservation: the three wallets hold what was topped up.
        let mut grpc = client(&app).await;
        let mut total = 0;
        for (session, wallet) in sessions.iter().zip(&wallets) {
            let balance = available(&mut grpc, &session.access_token, wallet).await;
            assert!(balance >= 0);
            total += balance;
        }
        assert_eq!(total, 3 * FUNDS);
        // Stored == acknowledged: each acknowledged transfer is there, with its amount,
        // and the histories hold exactly as many transfers out as were acknowledged.
        assert!(!acknowledged.is_empty());
        for (id, amount) in &acknowledged {
            let peek = proto::GetTransferRequest { transfer_id: id.as_bytes().to_vec() };
            let stored = grpc.get_transfer(call(peek, &sessions[0].access_token, None)).await;
            let stored = match stored {
                Ok(stored) => stored.into_inner(),
                // Ada sent or received all but Bob's transfers to Cy, which Bob sees.
                Err(_) => {
                    let peek = proto::GetTransferRequest { transfer_id: id.as_bytes().to_vec() };
                    grpc.get_transfer(call(peek, &sessions[1].access_token, None)).await.unwrap().into_inner()
                }
            };
            assert_eq!(stored.amount, *amount);
        }
        let mut transfers_out = 0;
        for session in &sessions {
            let mut page_token = String::new();
            loop {
                let request = proto::ListOperationsRequest {
                    r#type: proto::OperationType::TransferOut.into(),
                    page_size: 100,
                    page_token: page_token.clone(),
                    ..Default::default()
                };
                let page = grpc
                    .list_operations(call(request, &session.access_token, None))
                    .await
                    .unwrap()
                    .into_inner();
                transfers_out += page.operations.len();
                if page.next_page_token.is_empty() {
                    break;
                }
                page_token = page.next_page_token;
            }
        }
        assert_eq!(transfers_out, acknowledged.len());
        let (_, sink_account) = app.get(&format!("/v1/ledger/accounts/{sink}")).await;
        assert_eq!(sink_account["credits_posted"].as_u64(), Some(ledger_moved));
        std::sync::Arc::into_inner(app).expect("every task is done").stop().await;
    }
}
