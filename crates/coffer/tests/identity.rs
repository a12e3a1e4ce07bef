//! Black-box tests of identity over real HTTP, on SQLite and (when configured)
//! PostgreSQL: register/login/me, password policy, equal failures, refresh rotation and
//! reuse detection, logout, forged and expired access tokens, admin access, login
//! throttling (also behind a trusted proxy), mass assignment, and the operator commands `coffer admin create` and
//! `coffer keys rotate`.

mod common;

use std::time::{SystemTime, UNIX_EPOCH};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use common::{TEST_JWT_SECRET, TEST_PASSWORD, assert_problem, backends, register_and_login, spawn_app};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::Method;
use serde_json::{Value, json};

async fn post(app: &common::TestApp, path: &str, body: Value) -> (u16, Value) {
    app.call(Method::POST, path, None, Some(&body)).await
}

async fn get_as(app: &common::TestApp, path: &str, bearer: &str) -> (u16, Value) {
    app.call(Method::GET, path, Some(bearer), None).await
}

#[tokio::test]
async fn register_login_and_me() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let (status, customer) = post(
            &app,
            "/v1/auth/register",
            json!({"email": "  Ada@Example.COM ", "password": TEST_PASSWORD, "name": "Ada Lovelace"}),
        )
        .await;
        assert_eq!(status, 201, "{backend:?}: {customer}");
        assert_eq!(customer["email"], "ada@example.com", "stored normalised");
        assert_eq!(customer["role"], "customer");
        assert_eq!(customer["kyc_status"], "unverified");
        assert_eq!(customer["preferences"], json!({}));
        assert!(customer.get("password_hash").is_none() && customer.get("password").is_none());
        assert!(customer["created_at"].as_str().unwrap().ends_with('Z'));

        let (status, tokens) =
            post(&app, "/v1/auth/login", json!({"email": "ADA@example.com", "password": TEST_PASSWORD}))
                .await;
        assert_eq!(status, 200, "{tokens}");
        assert_eq!(tokens["token_type"], "Bearer");
        assert_eq!(tokens["expires_in"], 900);
        assert!(tokens["refresh_token"].as_str().unwrap().len() >= 22, "at least 128 bits");
        let access = tokens["access_token"].as_str().unwrap();

        let (status, me) = get_as(&app, "/v1/auth/me", access).await;
        assert_eq!(status, 200, "{me}");
        assert_eq!(me["id"], customer["id"]);
        let (status, profile) = get_as(&app, "/v1/customers/me", access).await;
        assert_eq!((status, &profile["email"]), (200, &json!("ada@example.com")));

        let (status, body) = app.call(Method::GET, "/v1/auth/me", None, None).await;
        assert_problem(status, &body, 401, "unauthorized");
        app.stop().await;
    }
}

#[tokio::test]
async fn duplicate_email_is_a_conflict_whatever_its_case() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        register_and_login(&app, "ada@example.com").await;
        let (status, body) = post(
            &app,
            "/v1/auth/register",
            json!({"email": "ADA@example.com", "password": "another long password", "name": "A"}),
        )
        .await;
        assert_problem(status, &body, 409, "email_taken");
        app.stop().await;
    }
}

#[tokio::test]
async fn weak_passwords_and_bad_fields_are_refused() {
    let app = spawn_app(&common::Backend::Sqlite).await;
    let cases = [
        (json!({"email": "a@example.com", "password": "short1!", "name": "A"}), "/password", "at least 8"),
        (json!({"email": "a@example.com", "password": "password1", "name": "A"}), "/password", "too common"),
        (json!({"email": "a@example.com", "password": "Qwertyuiop", "name": "A"}), "/password", "too common"),
        (
            json!({"email": "a@example.com", "password": "x".repeat(129), "name": "A"}),
            "/password",
            "at most 128",
        ),
        (json!({"email": "not-an-email", "password": TEST_PASSWORD, "name": "A"}), "/email", "email address"),
        (json!({"email": "a@example.com", "password": TEST_PASSWORD, "name": "  "}), "/name", "empty"),
    ];
    for (body, field, message) in cases {
        let (status, problem) = post(&app, "/v1/auth/register", body.clone()).await;
        assert_problem(status, &problem, 422, "validation_failed");
        assert_eq!(problem["errors"][0]["field"], field, "{body}: {problem}");
        assert!(problem["errors"][0]["message"].as_str().unwrap().contains(message), "{problem}");
    }
    let (status, problem) = post(
        &app,
        "/v1/auth/register",
        json!({"email": "a@example.com", "password": TEST_PASSWORD, "name": "A", "role": "admin"}),
    )
    .await;
    assert_problem(status, &problem, 422, "validation_failed");
    // Nothing was created by any of these.
    let (status, _) =
        post(&app, "/v1/auth/login", json!({"email": "a@example.com", "password": TEST_PASSWORD})).await;
    assert_eq!(status, 401);
    app.stop().await;
}

/// The body of a problem without its request id, to compare two failures.
fn without_request_id(mut body: Value) -> Value {
    body.as_object_mut().unwrap().remove("request_id");
    body
}

#[tokio::test]
async fn wrong_password_and_unknown_email_look_the_same() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        register_and_login(&app, "ada@example.com").await;
        let (wrong_status, wrong) =
            post(&app, "/v1/auth/login", json!({"email": "ada@example.com", "password": "not the password"}))
                .await;
        let (unknown_status, unknown) = post(
            &app,
            "/v1/auth/login",
            json!({"email": "nobody@example.com", "password": "not the password"}),
        )
        .await;
        let (malformed_status, malformed) =
            post(&app, "/v1/auth/login", json!({"email": "nobody", "password": "not the password"})).await;
        assert_problem(wrong_status, &wrong, 401, "unauthorized");
        assert_eq!(
            (wrong_status, without_request_id(wrong.clone())),
            (unknown_status, without_request_id(unknown))
        );
        assert_eq!(
            (wrong_status, without_request_id(wrong)),
            (malformed_status, without_request_id(malformed))
        );
        app.stop().await;
    }
}

#[tokio::test]
async fn refresh_rotates_and_reuse_revokes_the_family() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let session = register_and_login(&app, "ada@example.com").await;

        let (status, rotated) =
            post(&app, "/v1/auth/refresh", json!({"refresh_token": session.refresh_token})).await;
        assert_eq!(status, 200, "{backend:?}: {rotated}");
        let newest = rotated["refresh_token"].as_str().unwrap().to_owned();
        assert_ne!(newest, session.refresh_token);
        assert_eq!(get_as(&app, "/v1/auth/me", rotated["access_token"].as_str().unwrap()).await.0, 200);

        // An attacker replays the spent token: refused, and the family dies with it.
        let (status, body) =
            post(&app, "/v1/auth/refresh", json!({"refresh_token": session.refresh_token})).await;
        assert_problem(status, &body, 401, "unauthorized");
        let (status, body) = post(&app, "/v1/auth/refresh", json!({"refresh_token": newest})).await;
        assert_problem(status, &body, 401, "unauthorized");

        // A new login starts a new, working family.
        let again = register_and_login_existing(&app, "ada@example.com").await;
        assert_eq!(post(&app, "/v1/auth/refresh", json!({"refresh_token": again})).await.0, 200);

        let (status, body) = post(&app, "/v1/auth/refresh", json!({"refresh_token": "made-up"})).await;
        assert_problem(status, &body, 401, "unauthorized");
        app.stop().await;
    }
}

/// Logs an existing customer in again; returns the refresh token.
async fn register_and_login_existing(app: &common::TestApp, email: &str) -> String {
    let (status, tokens) =
        post(app, "/v1/auth/login", json!({"email": email, "password": TEST_PASSWORD})).await;
    assert_eq!(status, 200, "{tokens}");
    tokens["refresh_token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn logout_revokes_the_refresh_token_family() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let session = register_and_login(&app, "ada@example.com").await;
        let (status, rotated) =
            post(&app, "/v1/auth/refresh", json!({"refresh_token": session.refresh_token})).await;
        assert_eq!(status, 200);
        let current = rotated["refresh_token"].as_str().unwrap();
        let (status, body) = post(&app, "/v1/auth/logout", json!({"refresh_token": current})).await;
        assert_eq!((status, body), (204, Value::Null));
        let (status, body) = post(&app, "/v1/auth/refresh", json!({"refresh_token": current})).await;
        assert_problem(status, &body, 401, "unauthorized");
        // Logging out again (or with an unknown token) is harmless.
        assert_eq!(post(&app, "/v1/auth/logout", json!({"refresh_token": current})).await.0, 204);
        app.stop().await;
    }
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

fn claims(sub: &str, overrides: Value) -> Value {
    let now = now();
    let mut claims = json!({
        "iss": "coffer", "aud": "coffer-api", "exp": now + 600, "nbf": now, "iat": now,
        "sub": sub, "jti": uuid::Uuid::now_v7().to_string(), "role": "customer",
    });
    for (key, value) in overrides.as_object().unwrap() {
        claims[key] = value.clone();
    }
    claims
}

fn sign(claims: &Value, secret: &str, algorithm: Algorithm) -> String {
    jsonwebtoken::encode(&Header::new(algorithm), claims, &EncodingKey::from_secret(secret.as_bytes()))
        .unwrap()
}

#[tokio::test]
async fn forged_expired_and_misaddressed_access_tokens_are_refused() {
    let app = spawn_app(&common::Backend::Sqlite).await;
    let session = register_and_login(&app, "ada@example.com").await;
    let id = session.customer_id.as_str();
    // The harness's own forgery works, so the refusals below are about what each changes.
    let good = sign(&claims(id, json!({})), TEST_JWT_SECRET, Algorithm::HS256);
    assert_eq!(get_as(&app, "/v1/auth/me", &good).await.0, 200);

    let tampered = {
        let parts: Vec<&str> = session.access_token.split('.').collect();
        let payload = URL_SAFE_NO_PAD.encode(claims(id, json!({"role": "admin"})).to_string());
        format!("{}.{payload}.{}", parts[0], parts[2])
    };
    let alg_none = {
        let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#);
        let payload = URL_SAFE_NO_PAD.encode(claims(id, json!({})).to_string());
        format!("{header}.{payload}.")
    };
    let refused = [
        (
            "expired",
            sign(
                &claims(id, json!({"exp": now() - 3600, "iat": now() - 4500, "nbf": now() - 4500})),
                TEST_JWT_SECRET,
                Algorithm::HS256,
            ),
        ),
        ("not yet valid", sign(&claims(id, json!({"nbf": now() + 3600})), TEST_JWT_SECRET, Algorithm::HS256)),
        ("tampered", tampered),
        (
            "wrong key",
            sign(&claims(id, json!({})), "another-secret-that-is-long-enough-0123", Algorithm::HS256),
        ),
        ("alg none", alg_none),
        ("HS512", sign(&claims(id, json!({})), TEST_JWT_SECRET, Algorithm::HS512)),
        ("wrong aud", sign(&claims(id, json!({"aud": "someone-else"})), TEST_JWT_SECRET, Algorithm::HS256)),
        ("wrong iss", sign(&claims(id, json!({"iss": "evil"})), TEST_JWT_SECRET, Algorithm::HS256)),
        ("no exp", sign(&claims(id, json!({"exp": null})), TEST_JWT_SECRET, Algorithm::HS256)),
        ("garbage", "not.a.jwt".to_owned()),
        ("refresh token as access token", session.refresh_token.clone()),
    ];
    for (case, token) in refused {
        let (status, body) = get_as(&app, "/v1/auth/me", &token).await;
        assert_eq!(status, 401, "{case}: {body}");
        assert_problem(status, &body, 401, "unauthorized");
    }
    app.stop().await;
}

#[tokio::test]
async fn admin_endpoints_need_an_admin() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let ada = register_and_login(&app, "ada@example.com").await;
        let bob = register_and_login(&app, "bob@example.com").await;
        let carol = register_and_login(&app, "carol@example.com").await;

        for path in ["/v1/customers".to_owned(), format!("/v1/customers/{}", bob.customer_id)] {
            let (status, body) = get_as(&app, &path, &ada.access_token).await;
            assert_problem(status, &body, 403, "forbidden");
            let (status, body) = app.call(Method::GET, &path, None, None).await;
            assert_problem(status, &body, 401, "unauthorized");
        }
        let (status, body) = app
            .call(
                Method::PUT,
                &format!("/v1/customers/{}/role", ada.customer_id),
                Some(&ada.access_token),
                Some(&json!({"role": "admin"})),
            )
            .await;
        assert_problem(status, &body, 403, "forbidden");

        // The admin API key pages through everyone, oldest first.
        let (status, page) = app.get("/v1/customers?limit=2").await;
        assert_eq!(status, 200, "{page}");
        let ids: Vec<&Value> = page["data"].as_array().unwrap().iter().map(|c| &c["id"]).collect();
        assert_eq!(ids, [&json!(ada.customer_id), &json!(bob.customer_id)]);
        assert_eq!(page["has_more"], true);
        let cursor = page["next_cursor"].as_str().unwrap();
        let (status, page) = app.get(&format!("/v1/customers?limit=2&cursor={cursor}")).await;
        assert_eq!(status, 200);
        assert_eq!(page["data"][0]["id"], json!(carol.customer_id));
        assert_eq!((&page["has_more"], &page["next_cursor"]), (&json!(false), &Value::Null));
        let (status, body) = app.get("/v1/customers?limit=101").await;
        assert_problem(status, &body, 422, "validation_failed");
        let (status, body) = app.get("/v1/customers?cursor=nonsense").await;
        assert_problem(status, &body, 400, "invalid_parameter");
        let (status, body) = app.get(&format!("/v1/customers/{}", uuid::Uuid::now_v7())).await;
        assert_problem(status, &body, 404, "customer_not_found");

        // Made an admin (by the key), Ada's next access token opens the admin endpoints.
        let (status, body) = app
            .call(
                Method::PUT,
                &format!("/v1/customers/{}/role", ada.customer_id),
                Some(&app.admin_key),
                Some(&json!({"role": "admin"})),
            )
            .await;
        assert_eq!((status, &body["role"]), (200, &json!("admin")), "{body}");
        let admin_token = register_and_login_existing_access(&app, "ada@example.com").await;
        let (status, body) = get_as(&app, &format!("/v1/customers/{}", bob.customer_id), &admin_token).await;
        assert_eq!((status, &body["email"]), (200, &json!("bob@example.com")), "{body}");
        app.stop().await;
    }
}

async fn register_and_login_existing_access(app: &common::TestApp, email: &str) -> String {
    let (status, tokens) =
        post(app, "/v1/auth/login", json!({"email": email, "password": TEST_PASSWORD})).await;
    assert_eq!(status, 200, "{tokens}");
    tokens["access_token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn repeated_failed_logins_are_throttled() {
    let app = spawn_app(&common::Backend::Sqlite).await;
    register_and_login(&app, "ada@example.com").await;
    for attempt in 0..5 {
        let (status, body) =
            post(&app, "/v1/auth/login", json!({"email": "ada@example.com", "password": "wrong guess"}))
                .await;
        assert_eq!(status, 401, "attempt {attempt}: {body}");
    }
    // Even the right password waits now: the attacker must not learn it was right.
    let response = app
        .client
        .post(app.url("/v1/auth/login"))
        .json(&json!({"email": "ada@example.com", "password": TEST_PASSWORD}))
        .send()
        .await
        .unwrap();
    let retry_after: u64 = response.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    let (status, body) = common::read(response).await;
    assert_problem(status, &body, 429, "too_many_requests");
    assert!(retry_after > 0 && retry_after <= 900, "{retry_after}");
    // Other accounts are unaffected (the address limit is higher).
    register_and_login(&app, "bob@example.com").await;
    app.stop().await;
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_address_limit_counts_the_forwarded_client() {
    let options = common::Options {
        configure: |args| {
            args.login_failures_per_ip_max = 2;
            args.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
        },
        ..common::Options::default()
    };
    let app = common::spawn_app_with(&common::Backend::Sqlite, options).await;
    let login = async |email: &str, forwarded: &str| {
        let body = json!({"email": email, "password": "wrong guess"});
        let request = app.client.post(app.url("/v1/auth/login")).header("x-forwarded-for", forwarded);
        common::read(request.json(&body).send().await.unwrap()).await.0
    };
    // Two failures from one client behind the balancer (on two accounts) use up its
    // address's two; a third from it is refused, while another client goes on.
    assert_eq!(login("a@example.com", "203.0.113.1").await, 401);
    assert_eq!(login("b@example.com", "203.0.113.1").await, 401);
    assert_eq!(login("c@example.com", "203.0.113.1").await, 429);
    assert_eq!(login("c@example.com", "203.0.113.2").await, 401);
    // A client cannot pick its address by writing one first: the nearest hop counts.
    assert_eq!(login("d@example.com", "198.51.100.9, 203.0.113.1").await, 429);
    app.stop().await;
}

#[tokio::test]
async fn profile_changes_only_allow_listed_fields() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let ada = register_and_login(&app, "ada@example.com").await;
        let patch = |body: Value| {
            let token = ada.access_token.clone();
            let app = &app;
            async move { app.call(Method::PATCH, "/v1/customers/me", Some(&token), Some(&body)).await }
        };
        for forbidden in [
            json!({"role": "admin"}),
            json!({"kyc_status": "verified"}),
            json!({"email": "eve@example.com"}),
            json!({"name": "Eve", "id": "x"}),
        ] {
            let (status, body) = patch(forbidden.clone()).await;
            assert_problem(status, &body, 422, "validation_failed");
        }
        let (_, me) = get_as(&app, "/v1/customers/me", &ada.access_token).await;
        assert_eq!(
            (&me["role"], &me["kyc_status"], &me["email"], &me["name"]),
            (&json!("customer"), &json!("unverified"), &json!("ada@example.com"), &json!("Test Customer")),
            "nothing changed"
        );

        let (status, me) = patch(json!({"name": "Ada King", "phone": "+44 20 7183 8750", "country": "gb", "preferences": {"theme": "dark"}})).await;
        assert_eq!(status, 200, "{me}");
        assert_eq!(
            (&me["name"], &me["phone"], &me["country"]),
            (&json!("Ada King"), &json!("+442071838750"), &json!("GB"))
        );
        assert_eq!(me["preferences"], json!({"theme": "dark"}));
        let (status, me) = patch(json!({"phone": null})).await;
        assert_eq!((status, &me["phone"], &me["country"]), (200, &Value::Null, &json!("GB")));

        let (status, body) = patch(json!({"country": "UK", "phone": "12"})).await;
        assert_problem(status, &body, 422, "validation_failed");
        assert_eq!(body["errors"].as_array().unwrap().len(), 2, "{body}");
        app.stop().await;
    }
}

/// `coffer admin create`, as an operator runs it beside the server: exit status and output.
async fn admin_create(
    app: &common::TestApp,
    email: &str,
    password: Option<&str>,
    stdin: &str,
) -> (Option<i32>, String) {
    use std::io::Write as _;
    let (url, email, password, stdin) =
        (app.database_url(), email.to_owned(), password.map(str::to_owned), stdin.to_owned());
    tokio::task::spawn_blocking(move || {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_coffer"));
        command
            .args(["admin", "create", "--email", &email, "--name", "Grace Hopper"])
            .env("DATABASE_URL", url)
            .env("COFFER_LOG", "warn")
            .env_remove("COFFER_ADMIN_PASSWORD")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        if let Some(password) = password {
            command.env("COFFER_ADMIN_PASSWORD", password);
        }
        let mut child = command.spawn().unwrap();
        child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
        let output = child.wait_with_output().unwrap();
        let text =
            String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr);
        (output.status.code(), text)
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn the_first_admin_is_created_from_the_command_line() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let created = admin_create(&app, "grace@example.com", Some(TEST_PASSWORD), "").await;
        assert_eq!(created.0, Some(0), "{backend:?}: {}", created.1);
        assert!(created.1.starts_with("created admin "), "{}", created.1);
        // The password from standard input, when the environment has none.
        let piped = admin_create(&app, "ada@example.com", None, &format!("{TEST_PASSWORD}\n")).await;
        assert_eq!(piped.0, Some(0), "{}", piped.1);

        for email in ["grace@example.com", "ada@example.com"] {
            let (status, tokens) =
                post(&app, "/v1/auth/login", json!({"email": email, "password": TEST_PASSWORD})).await;
            assert_eq!(status, 200, "{tokens}");
            let token = tokens["access_token"].as_str().unwrap();
            let (status, me) = get_as(&app, "/v1/auth/me", token).await;
            assert_eq!((status, me["role"].as_str()), (200, Some("admin")), "{me}");
            let (status, customers) = get_as(&app, "/v1/customers", token).await;
            assert_eq!(status, 200, "an admin lists customers: {customers}");
        }

        // The same rules as a registration: a taken email, a weak password, a bad email.
        let taken = admin_create(&app, "grace@example.com", Some(TEST_PASSWORD), "").await;
        assert_eq!(taken.0, Some(1));
        assert!(taken.1.contains("already registered"), "{}", taken.1);
        let weak = admin_create(&app, "weak@example.com", Some("password"), "").await;
        assert_eq!(weak.0, Some(1));
        assert!(weak.1.contains("password"), "{}", weak.1);
        let bad = admin_create(&app, "not-an-email", Some(TEST_PASSWORD), "").await;
        assert_eq!(bad.0, Some(1));
        let (status, _) =
            post(&app, "/v1/auth/login", json!({"email": "weak@example.com", "password": "password"})).await;
        assert_eq!(status, 401, "nothing was created");
        app.stop().await;
    }
}

/// `coffer keys rotate SECRET`, as an operator runs it beside the server: exit status,
/// standard output, standard error.
async fn keys_rotate(
    app: &common::TestApp,
    args: &[&str],
    env: &[(&str, &str)],
) -> (Option<i32>, String, String) {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_coffer"));
    command
        .args(["keys", "rotate"])
        .args(args)
        .env("COFFER_DATA_DIR", app.data_dir.path())
        .env("COFFER_LOG", "warn")
        .env_remove("COFFER_ADMIN_API_KEY")
        .env_remove("COFFER_JWT_SECRET")
        .envs(env.iter().copied());
    let output = tokio::task::spawn_blocking(move || command.output().unwrap()).await.unwrap();
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    (output.status.code(), text(&output.stdout), text(&output.stderr))
}

/// Asks until `ready` holds, for at most ten seconds (servers re-read keys every two).
async fn eventually<F: AsyncFnMut() -> bool>(what: &str, mut ready: F) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !ready().await {
        assert!(std::time::Instant::now() < deadline, "not within 10 s: {what}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

fn key_id(token: &str) -> Option<String> {
    jsonwebtoken::decode_header(token).unwrap().kid
}

/// The keys live in the data directory whatever the database, so SQLite alone.
#[tokio::test]
async fn keys_rotate_beside_a_running_server_without_a_restart() {
    let app = common::spawn_app_with(
        &common::Backend::Sqlite,
        common::Options {
            configure: |args| {
                args.admin_api_key = None;
                args.jwt_secret = None;
            },
            ..Default::default()
        },
    )
    .await;
    let old_key = app.admin_key.clone();
    assert!(app.data_dir.path().join("admin-api-key").is_file(), "kept in the data directory");
    let before = register_and_login(&app, "rotate@example.com").await.access_token;

    // The admin key, with no grace (a leaked key): the old one is refused within seconds.
    let (code, stdout, stderr) = keys_rotate(&app, &["admin-key", "--grace-s", "0"], &[]).await;
    assert_eq!(code, Some(0), "{stderr}");
    let new_key = stdout.trim().to_owned();
    assert!(new_key.starts_with("coffer_admin_") && new_key != old_key, "{stdout}");
    eventually("the new admin key is accepted and the old one refused", async || {
        get_as(&app, "/v1/customers", &new_key).await.0 == 200
            && get_as(&app, "/v1/customers", &old_key).await.0 == 401
    })
    .await;

    // With a grace, the replaced key keeps working beside the new one.
    let (code, stdout, stderr) = keys_rotate(&app, &["admin-key"], &[]).await;
    assert_eq!(code, Some(0), "{stderr}");
    let newest = stdout.trim().to_owned();
    eventually("the newest admin key is accepted", async || {
        get_as(&app, "/v1/customers", &newest).await.0 == 200
    })
    .await;
    assert_eq!(get_as(&app, "/v1/customers", &new_key).await.0, 200, "still in its hour of grace");

    // The signing secret: tokens signed before stay valid until they expire; new ones
    // are signed with the new secret.
    let (code, _, stderr) = keys_rotate(&app, &["jwt-secret"], &[]).await;
    assert_eq!(code, Some(0), "{stderr}");
    let mut after = String::new();
    eventually("logins sign with the new secret", async || {
        let (_, tokens) =
            post(&app, "/v1/auth/login", json!({"email": "rotate@example.com", "password": TEST_PASSWORD}))
                .await;
        after = tokens["access_token"].as_str().unwrap().to_owned();
        key_id(&after) != key_id(&before)
    })
    .await;
    for token in [&before, &after] {
        let (status, me) = get_as(&app, "/v1/auth/me", token).await;
        assert_eq!(status, 200, "{me}");
    }

    // A configured secret is rotated through the configuration, not here.
    let secret = "x".repeat(40);
    let (code, _, stderr) = keys_rotate(&app, &["jwt-secret"], &[("COFFER_JWT_SECRET", &secret)]).await;
    assert_eq!(code, Some(1));
    assert!(stderr.contains("COFFER_JWT_SECRET_PREVIOUS"), "{stderr}");
    app.stop().await;
}
