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
        let options = Options { configure: |args| args.mock_provider_latency_ms = 400, ..Options::default() };
        let app = spawn_app_with(&backend, options).await;
        let ada = register_and_login(&app, "ada@example.com").await;
        let wallet = open_wallet(&app, &ada, "USD").await;
        let token = ada.access_token.as_str();
        let mut grpc = client(&app).await;
        // The deadline as it travels (`grpc-timeout`), without the client's own timer
        // (which would race the server's answer): this is the server's side of it.
        let mut hurried = call(deposit(&wallet, 2_000, "tok_visa"), token, Some("slow"));
        hurried.metadata_mut().insert("grpc-timeout", "50m".parse().unwrap());
        let started = std::time::Instant::now();
        let late = grpc.deposit_money(hurried).await.unwrap_err();
        assert_eq!(late.code(), Code::DeadlineExceeded, "{late:?}");
        assert!(started.elapsed() < std::time::Duration::from_millis(400), "answered at the deadline");
        // The retry under the same key finds or makes the one top-up.
        let retried =
            grpc.deposit_money(call(deposit(&wallet, 2_000, "tok_visa"), token, Some("slow"))).await;
        let retried = retried.unwrap().into_inner();
        assert_ne!(retried.status(), proto::PaymentStatus::Failed);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let (_, payment) = get(&app, &ada, &format!("/v1/top-ups/{}", uuid(&retried.id))).await;
            if payment["status"] == "succeeded" {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "the top-up never settled: {payment}");
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert_eq!(available(&mut grpc, token, &wallet).await, 2_000, "once, not twice");
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
