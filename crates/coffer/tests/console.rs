//! The web console over real HTTP, on every backend: what a browser does (forms, cookies,
//! redirects) done by hand with a client that keeps cookies and follows nothing, so every
//! answer can be checked. The same flows run in real Chromium in `tests/browser/`.

mod common;

use std::collections::HashMap;

use common::{Backend, TestApp, backends, spawn_app};
use futures::StreamExt as _;
use reqwest::{StatusCode, header};

/// A browser without a script engine: its own cookies, no redirects followed.
struct Browser<'a> {
    app: &'a TestApp,
    client: reqwest::Client,
    cookies: HashMap<String, String>,
}

/// A page as the browser got it.
struct Page {
    status: StatusCode,
    headers: header::HeaderMap,
    body: String,
}

impl Page {
    /// The value of the first hidden input named `name` after the form posting to `action`
    /// (or anywhere, with `action` empty).
    fn field(&self, action: &str, name: &str) -> String {
        let start = if action.is_empty() {
            0
        } else {
            self.body
                .find(&format!("action=\"{action}\""))
                .unwrap_or_else(|| panic!("no form to {action}:\n{}", self.body))
        };
        let marker = format!("name=\"{name}\" value=\"");
        let at =
            self.body[start..].find(&marker).unwrap_or_else(|| panic!("no {name} in the form to {action}"))
                + start;
        let value = &self.body[at + marker.len()..];
        value[..value.find('"').unwrap()].to_owned()
    }

    fn location(&self) -> &str {
        self.headers.get(header::LOCATION).and_then(|v| v.to_str().ok()).unwrap_or("")
    }
}

impl<'a> Browser<'a> {
    fn new(app: &'a TestApp) -> Self {
        let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        Self { app, client, cookies: HashMap::new() }
    }

    fn cookie_header(&self) -> String {
        self.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ")
    }

    async fn keep(&mut self, response: reqwest::Response) -> Page {
        for value in response.headers().get_all(header::SET_COOKIE) {
            let text = value.to_str().unwrap();
            let (pair, _) = text.split_once(';').unwrap_or((text, ""));
            let (name, value) = pair.split_once('=').unwrap();
            if text.contains("Max-Age=0") {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
        }
        let status = response.status();
        let headers = response.headers().clone();
        Page { status, headers, body: response.text().await.unwrap() }
    }

    async fn get(&mut self, path: &str) -> Page {
        let response = self
            .client
            .get(self.app.url(path))
            .header(header::ACCEPT, "text/html")
            .header(header::COOKIE, self.cookie_header())
            .send()
            .await
            .unwrap();
        self.keep(response).await
    }

    /// Posts a form as a page of this origin does.
    async fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Page {
        let origin = format!("http://{}", self.app.address);
        self.post_from(path, fields, &origin).await
    }

    async fn post_from(&mut self, path: &str, fields: &[(&str, &str)], origin: &str) -> Page {
        let body: String =
            fields.iter().map(|(k, v)| format!("{k}={}", encode(v))).collect::<Vec<_>>().join("&");
        let response = self
            .client
            .post(self.app.url(path))
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::ORIGIN, origin)
            .header(header::COOKIE, self.cookie_header())
            .body(body)
            .send()
            .await
            .unwrap();
        self.keep(response).await
    }

    /// Registers through the form and is signed in.
    async fn register(&mut self, email: &str, name: &str) {
        let form = self.get("/app/register").await;
        assert_eq!(form.status, 200);
        let csrf = form.field("/app/register", "csrf");
        let done = self
            .post(
                "/app/register",
                &[("csrf", &csrf), ("email", email), ("name", name), ("password", common::TEST_PASSWORD)],
            )
            .await;
        assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
        assert_eq!(done.location(), "/app");
        assert!(self.cookies.contains_key("coffer_session"));
    }

    /// Opens a wallet from the home page; returns its id.
    async fn open_wallet(&mut self, currency: &str, name: &str) -> String {
        let home = self.get("/app").await;
        let (csrf, key) = (home.field("/app/wallets", "csrf"), home.field("/app/wallets", "key"));
        let done = self
            .post("/app/wallets", &[("csrf", &csrf), ("key", &key), ("currency", currency), ("name", name)])
            .await;
        assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
        let id = done.location().trim_start_matches("/app/wallets/").split('?').next().unwrap().to_owned();
        assert_eq!(id.len(), 36, "{}", done.location());
        id
    }

    /// Fills a money form of a wallet's page (`send`, `top-up`, `withdraw`) and submits it.
    async fn money(&mut self, wallet: &str, form: &str, fields: &[(&str, &str)]) -> Page {
        let action = format!("/app/wallets/{wallet}/{form}");
        let page = self.get(&format!("/app/wallets/{wallet}")).await;
        assert_eq!(page.status, 200, "{}", page.body);
        let (csrf, key) = (page.field(&action, "csrf"), page.field(&action, "key"));
        let mut all = vec![("csrf", csrf.as_str()), ("key", key.as_str())];
        all.extend_from_slice(fields);
        self.post(&action, &all).await
    }
}

fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn email(tag: &str) -> String {
    format!("{tag}-{}@example.com", uuid::Uuid::now_v7().simple())
}

/// The available balance the home page shows for `wallet`.
async fn available(browser: &mut Browser<'_>, wallet: &str) -> String {
    let home = browser.get("/app").await;
    let row = home.body.find(&format!("data-wallet=\"{wallet}\"")).expect("the wallet's row");
    let cell = &home.body[row..];
    let at = cell.find("class=\"num available\">").unwrap() + "class=\"num available\">".len();
    cell[at..at + cell[at..].find('<').unwrap()].to_owned()
}

async fn each_backend<F>(test: F)
where
    F: AsyncFn(&TestApp),
{
    for backend in backends() {
        let app = spawn_app(&backend).await;
        test(&app).await;
        if let Backend::Postgres(_) = backend {
            eprintln!("ran on PostgreSQL too");
        }
        app.stop().await;
    }
}

#[tokio::test]
async fn pages_carry_strict_security_headers_and_no_inline_code() {
    each_backend(async |app| {
        let mut browser = Browser::new(app);
        let page = browser.get("/app/sign-in").await;
        assert_eq!(page.status, 200);
        let csp = page.headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
        for directive in [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "frame-ancestors 'none'",
            "form-action 'self'",
        ] {
            assert!(csp.contains(directive), "{csp}");
        }
        assert!(!csp.contains("unsafe"), "{csp}");
        assert_eq!(page.headers[header::X_FRAME_OPTIONS], "DENY");
        assert_eq!(page.headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert_eq!(page.headers[header::CACHE_CONTROL], "no-store");
        let cookie = page.headers[header::SET_COOKIE].to_str().unwrap();
        assert!(
            cookie.starts_with("coffer_form=")
                && cookie.contains("HttpOnly")
                && cookie.contains("SameSite=Strict")
        );
        // No inline script or style: every script has a src, no element has a style.
        assert_eq!(
            page.body.matches("<script").count(),
            page.body.matches("<script src=\"/app/assets/").count()
        );
        assert!(!page.body.contains(" style=") && !page.body.contains("<style"));
        // The assets it names are served, cacheable for good.
        let css =
            page.body.split("href=\"/app/assets/").nth(1).unwrap().split('"').next().unwrap().to_owned();
        let asset = browser.get(&format!("/app/assets/{css}")).await;
        assert_eq!(asset.status, 200);
        assert!(asset.headers[header::CACHE_CONTROL].to_str().unwrap().contains("immutable"));
        assert_eq!(browser.get("/app/assets/console.000000000000.css").await.status, 404);
        // Signed out, a page sends to sign-in; a browser at / goes to the console.
        let home = browser.get("/app").await;
        assert_eq!((home.status, home.location()), (StatusCode::SEE_OTHER, "/app/sign-in"));
        let root = browser.get("/").await;
        assert_eq!((root.status, root.location()), (StatusCode::SEE_OTHER, "/app"));
        let (status, body) = app.call(reqwest::Method::GET, "/", None, None).await;
        common::assert_problem(status, &body, 404, "route_not_found");
    })
    .await;
}

#[tokio::test]
async fn customers_top_up_send_and_see_both_sides_in_history() {
    each_backend(async |app| {
        let (ada_email, bob_email) = (email("ada"), email("bob"));
        let mut ada = Browser::new(app);
        ada.register(&ada_email, "Ada").await;
        let ada_wallet = ada.open_wallet("USD", "Everyday").await;
        let mut bob = Browser::new(app);
        bob.register(&bob_email, "Bob").await;
        let bob_wallet = bob.open_wallet("USD", "").await;

        let topped = ada.money(&ada_wallet, "top-up", &[("amount", "50.00"), ("token", "tok_visa")]).await;
        assert_eq!(
            (topped.status, topped.location()),
            (StatusCode::SEE_OTHER, &*format!("/app/wallets/{ada_wallet}?done=top-up"))
        );
        assert_eq!(available(&mut ada, &ada_wallet).await, "50.00 USD");

        let sent = ada
            .money(&ada_wallet, "send", &[("to", &bob_email), ("amount", "12.5"), ("description", "lunch")])
            .await;
        assert_eq!(sent.status, StatusCode::SEE_OTHER, "{}", sent.body);
        assert_eq!(available(&mut ada, &ada_wallet).await, "37.50 USD");
        assert_eq!(available(&mut bob, &bob_wallet).await, "12.50 USD");

        // To a wallet id works as well.
        let by_id = bob.money(&bob_wallet, "send", &[("to", &ada_wallet), ("amount", "2.50")]).await;
        assert_eq!(by_id.status, StatusCode::SEE_OTHER, "{}", by_id.body);

        let history = ada.get("/app/history").await;
        for expected in ["sent", "received", "top-up", "lunch", "-12.50 USD", "2.50 USD"] {
            assert!(history.body.contains(expected), "{expected} in {}", history.body);
        }
        let received = bob.get(&format!("/app/history?wallet={bob_wallet}&type=transfer_in")).await;
        assert!(
            received.body.contains("12.50 USD") && !received.body.contains("-2.50 USD"),
            "{}",
            received.body
        );
        let csv = ada.get("/app/history.csv").await;
        assert_eq!(csv.status, 200);
        assert!(csv.headers[header::CONTENT_TYPE].to_str().unwrap().starts_with("text/csv"));
        assert_eq!(csv.body.lines().count(), 4, "a header and three operations:\n{}", csv.body);

        // Refusals come back next to the form, and move nothing.
        let too_much = ada.money(&ada_wallet, "send", &[("to", &bob_email), ("amount", "1000")]).await;
        assert_eq!(too_much.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", too_much.body);
        assert!(too_much.body.contains("class=\"problem\""), "{}", too_much.body);
        let bad_amount = ada.money(&ada_wallet, "send", &[("to", &bob_email), ("amount", "1.234")]).await;
        assert_eq!(bad_amount.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(bad_amount.body.contains("id=\"send-amount-problem\""), "{}", bad_amount.body);
        let nobody = ada.money(&ada_wallet, "send", &[("to", "nobody@example.com"), ("amount", "1")]).await;
        assert_eq!(nobody.status, StatusCode::NOT_FOUND);
        assert!(nobody.body.contains("Send money"), "the form is shown again");
        let declined =
            ada.money(&ada_wallet, "top-up", &[("amount", "5"), ("token", "tok_chargeDeclined")]).await;
        assert!(declined.status.is_client_error() || declined.status == StatusCode::SEE_OTHER);
        assert_eq!(available(&mut ada, &ada_wallet).await, "40.00 USD");

        let filtered = ada.get("/app/history?from=2026-13-01").await;
        assert_eq!(filtered.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(filtered.body.contains("f-from-problem"));
    })
    .await;
}

#[tokio::test]
async fn a_form_sent_twice_moves_money_once() {
    each_backend(async |app| {
        let mut ada = Browser::new(app);
        ada.register(&email("twice"), "Ada").await;
        let wallet = ada.open_wallet("EUR", "").await;
        let action = format!("/app/wallets/{wallet}/top-up");
        let page = ada.get(&format!("/app/wallets/{wallet}")).await;
        let (csrf, key) = (page.field(&action, "csrf"), page.field(&action, "key"));
        let fields =
            [("csrf", csrf.as_str()), ("key", key.as_str()), ("amount", "10"), ("token", "tok_visa")];
        // A double click: both at once; then the back button and submit again.
        let origin = format!("http://{}", app.address);
        let cookies = ada.cookie_header();
        let body: String = fields.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&");
        let submit = || {
            reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap()
                .post(app.url(&action))
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .header(header::ORIGIN, origin.clone())
                .header(header::COOKIE, cookies.clone())
                .body(body.clone())
                .send()
        };
        let (first, second) = tokio::join!(submit(), submit());
        assert_eq!(first.unwrap().status(), StatusCode::SEE_OTHER);
        assert_eq!(second.unwrap().status(), StatusCode::SEE_OTHER);
        let again = ada.post(&action, &fields).await;
        assert_eq!(again.status, StatusCode::SEE_OTHER);
        assert_eq!(available(&mut ada, &wallet).await, "10.00 EUR");
        let history = ada.get(&format!("/app/history?wallet={wallet}")).await;
        assert_eq!(
            history.body.matches("top-up").count(),
            2,
            "one row (and the filter's option):\n{}",
            history.body
        );
    })
    .await;
}

#[tokio::test]
async fn forms_without_the_token_or_from_another_site_are_refused() {
    each_backend(async |app| {
        let mut ada = Browser::new(app);
        // Signing in needs the form's token too (no login CSRF).
        let refused = ada.post("/app/sign-in", &[("email", "a@example.com"), ("password", "x")]).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN);
        ada.register(&email("csrf"), "Ada").await;
        let wallet = ada.open_wallet("USD", "").await;
        let home = ada.get("/app").await;
        let (csrf, key) = (home.field("/app/wallets", "csrf"), home.field("/app/wallets", "key"));
        let top_up = format!("/app/wallets/{wallet}/top-up");
        let page = ada.get(&format!("/app/wallets/{wallet}")).await;
        let top_up_key = page.field(&top_up, "key");

        let without =
            ada.post(&top_up, &[("key", &top_up_key), ("amount", "5"), ("token", "tok_visa")]).await;
        assert_eq!(without.status, StatusCode::FORBIDDEN);
        assert!(without.headers[header::CONTENT_TYPE].to_str().unwrap().starts_with("text/html"));
        let wrong = ada
            .post(
                &top_up,
                &[
                    ("csrf", "0123456789abcdef0123456789abcdef"),
                    ("key", &top_up_key),
                    ("amount", "5"),
                    ("token", "tok_visa"),
                ],
            )
            .await;
        assert_eq!(wrong.status, StatusCode::FORBIDDEN);
        let cross = ada
            .post_from(
                &top_up,
                &[("csrf", &csrf), ("key", &top_up_key), ("amount", "5"), ("token", "tok_visa")],
                "http://evil.example",
            )
            .await;
        assert_eq!(cross.status, StatusCode::FORBIDDEN);
        let no_key = ada.post("/app/wallets", &[("csrf", &csrf), ("currency", "USD")]).await;
        assert_eq!(no_key.status, StatusCode::FORBIDDEN);
        let not_a_form =
            ada.post("/app/wallets", &[("csrf", &csrf), ("key", &key), ("currency", "XXX")]).await;
        assert_eq!(not_a_form.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", not_a_form.body);
        assert_eq!(available(&mut ada, &wallet).await, "0.00 USD", "nothing moved");
        // Another session's token does not fit this one.
        let mut eve = Browser::new(app);
        eve.register(&email("eve"), "Eve").await;
        let eve_csrf = eve.get("/app").await.field("/app/wallets", "csrf");
        let swapped = ada
            .post(
                &top_up,
                &[("csrf", &eve_csrf), ("key", &top_up_key), ("amount", "5"), ("token", "tok_visa")],
            )
            .await;
        assert_eq!(swapped.status, StatusCode::FORBIDDEN);
    })
    .await;
}

#[tokio::test]
async fn someone_elses_wallet_is_a_404_page() {
    each_backend(async |app| {
        let mut ada = Browser::new(app);
        ada.register(&email("owner"), "Ada").await;
        let wallet = ada.open_wallet("USD", "").await;
        ada.money(&wallet, "top-up", &[("amount", "20"), ("token", "tok_visa")]).await;
        let mut eve = Browser::new(app);
        eve.register(&email("thief"), "Eve").await;
        let eve_wallet = eve.open_wallet("USD", "").await;
        let page = eve.get(&format!("/app/wallets/{wallet}")).await;
        assert_eq!(page.status, StatusCode::NOT_FOUND);
        assert!(page.body.contains("Not found"));
        let csrf = eve.get("/app").await.field("/app/wallets", "csrf");
        let key = uuid::Uuid::new_v4().to_string();
        let stolen = eve
            .post(
                &format!("/app/wallets/{wallet}/send"),
                &[("csrf", &csrf), ("key", &key), ("to", &eve_wallet), ("amount", "20")],
            )
            .await;
        assert_eq!(stolen.status, StatusCode::NOT_FOUND);
        let filtered = eve.get(&format!("/app/history?wallet={wallet}")).await;
        assert_eq!(filtered.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(eve.get("/app/wallets/not-a-uuid").await.status, StatusCode::NOT_FOUND);
        assert_eq!(available(&mut ada, &wallet).await, "20.00 USD");
    })
    .await;
}

#[tokio::test]
async fn free_text_is_shown_as_text() {
    each_backend(async |app| {
        let script = "<script>alert(1)</script>";
        let mut ada = Browser::new(app);
        ada.register(&email("xss"), script).await;
        let wallet = ada.open_wallet("USD", script).await;
        ada.money(&wallet, "top-up", &[("amount", "5"), ("token", "tok_visa")]).await;
        let mut bob = Browser::new(app);
        let bob_email = email("bob");
        bob.register(&bob_email, "Bob").await;
        bob.open_wallet("USD", "").await;
        let sent =
            ada.money(&wallet, "send", &[("to", &bob_email), ("amount", "1"), ("description", script)]).await;
        assert_eq!(sent.status, StatusCode::SEE_OTHER, "{}", sent.body);
        let refused =
            ada.money(&wallet, "send", &[("to", script), ("amount", "1"), ("description", script)]).await;
        for page in [
            ada.get("/app").await,
            ada.get(&format!("/app/wallets/{wallet}")).await,
            ada.get("/app/history").await,
            ada.get("/app/account").await,
            refused,
        ] {
            assert!(!page.body.contains(script), "{}", page.body);
        }
        let home = ada.get("/app").await.body;
        assert!(
            home.contains("&#60;script&#62;alert(1)&#60;/script&#62;"),
            "escaped, so shown as text: {home}"
        );
    })
    .await;
}

#[tokio::test]
async fn sessions_are_listed_and_ended_and_a_password_change_ends_the_others() {
    each_backend(async |app| {
        let address = email("sessions");
        let mut laptop = Browser::new(app);
        laptop.register(&address, "Ada").await;
        let mut phone = Browser::new(app);
        let form = phone.get("/app/sign-in").await;
        let csrf = form.field("/app/sign-in", "csrf");
        let wrong = phone
            .post("/app/sign-in", &[("csrf", &csrf), ("email", &address), ("password", "not it at all")])
            .await;
        assert_eq!(wrong.status, 200);
        assert!(wrong.body.contains("do not match"));
        let signed = phone
            .post(
                "/app/sign-in",
                &[("csrf", &csrf), ("email", &address), ("password", common::TEST_PASSWORD)],
            )
            .await;
        assert_eq!((signed.status, signed.location()), (StatusCode::SEE_OTHER, "/app"));
        let cookie = signed.headers[header::SET_COOKIE].to_str().unwrap().to_owned();
        assert!(
            cookie.contains("HttpOnly")
                && cookie.contains("SameSite=Strict")
                && cookie.contains("Max-Age=43200")
        );

        let account = laptop.get("/app/account").await;
        assert_eq!(account.body.matches("/end\"").count(), 2, "{}", account.body);
        assert!(account.body.contains("(this browser)"));
        // The laptop ends the phone's session (the one that is not "this browser").
        let this = account.body.find("(this browser)").unwrap();
        let forms: Vec<usize> =
            account.body.match_indices("action=\"/app/account/sessions/").map(|(at, _)| at).collect();
        let other = forms.iter().copied().find(|at| *at < this || *at > this + 200).unwrap();
        let action = &account.body[other + "action=\"".len()..];
        let action = action[..action.find('"').unwrap()].to_owned();
        let csrf = account.field("", "csrf");
        let ended = laptop.post(&action, &[("csrf", &csrf)]).await;
        assert_eq!((ended.status, ended.location()), (StatusCode::SEE_OTHER, "/app/account?done=session"));
        assert_eq!(phone.get("/app").await.location(), "/app/sign-in", "the phone is signed out");

        // Sign in on the phone again; a password change on the laptop signs it out.
        let csrf = phone.get("/app/sign-in").await.field("/app/sign-in", "csrf");
        phone
            .post(
                "/app/sign-in",
                &[("csrf", &csrf), ("email", &address), ("password", common::TEST_PASSWORD)],
            )
            .await;
        assert_eq!(phone.get("/app").await.status, 200);
        let csrf = laptop.get("/app/account").await.field("/app/account/password", "csrf");
        let bad = laptop
            .post(
                "/app/account/password",
                &[("csrf", &csrf), ("current", "wrong password"), ("new", "a brand new passphrase")],
            )
            .await;
        assert!(bad.body.contains("current-problem"), "{}", bad.body);
        let changed = laptop
            .post(
                "/app/account/password",
                &[("csrf", &csrf), ("current", common::TEST_PASSWORD), ("new", "a brand new passphrase")],
            )
            .await;
        assert_eq!(changed.location(), "/app/account?done=password", "{}", changed.body);
        assert_eq!(laptop.get("/app").await.status, 200, "the laptop stays signed in");
        assert_eq!(phone.get("/app").await.location(), "/app/sign-in");
        let (status, _) = app
            .call(
                reqwest::Method::POST,
                "/v1/auth/login",
                None,
                Some(&serde_json::json!({"email": address, "password": common::TEST_PASSWORD})),
            )
            .await;
        assert_eq!(status, 401, "the old password no longer works");

        // Signing out ends the session on the server, not only in this browser.
        let token = laptop.cookies["coffer_session"].clone();
        let csrf = laptop.get("/app").await.field("/app/sign-out", "csrf");
        let out = laptop.post("/app/sign-out", &[("csrf", &csrf)]).await;
        assert_eq!(out.location(), "/app/sign-in");
        let mut replay = Browser::new(app);
        replay.cookies.insert("coffer_session".into(), token);
        assert_eq!(replay.get("/app").await.location(), "/app/sign-in");
    })
    .await;
}

#[tokio::test]
async fn the_live_stream_follows_the_session_and_this_origin_only() {
    each_backend(async |app| {
        let bob_email = email("live");
        let mut bob = Browser::new(app);
        bob.register(&bob_email, "Bob").await;
        bob.open_wallet("USD", "").await;
        let mut ada = Browser::new(app);
        ada.register(&email("sender"), "Ada").await;
        let wallet = ada.open_wallet("USD", "").await;
        ada.money(&wallet, "top-up", &[("amount", "5"), ("token", "tok_visa")]).await;

        let url = format!("ws://{}/app/live", app.address);
        let request = |origin: &str| {
            let mut request =
                tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(url.as_str())
                    .unwrap();
            request.headers_mut().insert("cookie", bob.cookie_header().parse().unwrap());
            request.headers_mut().insert("origin", origin.parse().unwrap());
            request
        };
        let refused = tokio_tungstenite::connect_async(request("http://evil.example")).await;
        assert!(refused.is_err(), "another origin is refused");
        let (mut socket, _) =
            tokio_tungstenite::connect_async(request(&format!("http://{}", app.address))).await.unwrap();
        let sent = ada.money(&wallet, "send", &[("to", &bob_email), ("amount", "1")]).await;
        assert_eq!(sent.status, StatusCode::SEE_OTHER);
        let event = tokio::time::timeout(std::time::Duration::from_secs(10), async {
            loop {
                match socket.next().await.expect("the stream stays open").unwrap() {
                    tokio_tungstenite::tungstenite::Message::Text(text) => return text,
                    _ => continue,
                }
            }
        })
        .await
        .expect("an event within 10 s");
        assert!(event.contains("\"type\""), "{event}");
        let overview = bob.get("/app/overview").await;
        assert!(
            overview.body.contains("1.00 USD") && overview.body.starts_with("<div id=\"overview\""),
            "{}",
            overview.body
        );
    })
    .await;
}

#[tokio::test]
async fn expenses_budgets_and_charts_on_the_money_page() {
    each_backend(async |app| {
        let mut ada = Browser::new(app);
        ada.register(&email("money"), "Ada").await;
        let page = ada.get("/app/money").await;
        assert_eq!(page.status, 200, "{}", page.body);
        let csrf = page.field("/app/money/expenses", "csrf");
        let month = page.field("/app/money/budgets", "month");
        // A budget for Groceries: its option's value from the form's list.
        let groceries = {
            let at = page.body.find(" Groceries</option>").expect("a Groceries category");
            let before = &page.body[..at];
            let value = before.rfind("value=\"").unwrap() + "value=\"".len();
            before[value..value + 36].to_owned()
        };
        let budget = ada
            .post(
                "/app/money/budgets",
                &[
                    ("csrf", &csrf),
                    ("month", &month),
                    ("category", &groceries),
                    ("currency", "USD"),
                    ("amount", "100"),
                ],
            )
            .await;
        assert_eq!(budget.status, StatusCode::SEE_OTHER, "{}", budget.body);
        for (merchant, amount) in [("Whole Foods", "45.00"), ("Trader Joe's", "40.00"), ("Uber", "12.00")] {
            let added = ada
                .post(
                    "/app/money/expenses",
                    &[
                        ("csrf", &csrf),
                        ("amount", amount),
                        ("currency", "USD"),
                        ("merchant", merchant),
                        ("category", ""),
                    ],
                )
                .await;
            assert_eq!(added.status, StatusCode::SEE_OTHER, "{}", added.body);
        }
        let page = ada.get(&format!("/app/money?month={month}")).await;
        assert!(page.body.contains("spent 97.00 USD"), "{}", page.body);
        assert!(page.body.contains("Warning: 85 % used"), "the budget is at 85 %: {}", page.body);
        assert!(page.body.contains("by its merchant") && page.body.contains("% sure"), "{}", page.body);
        let chart = ada.get(&format!("/app/money/categories.svg?month={month}&currency=USD")).await;
        assert_eq!(chart.status, 200);
        assert_eq!(chart.headers[header::CONTENT_TYPE], "image/svg+xml");
        assert!(
            chart.body.starts_with("<svg") && chart.body.contains("Dining"),
            "top-level categories: {}",
            chart.body
        );
        let trend = ada.get(&format!("/app/money/trend.svg?month={month}&currency=USD")).await;
        assert!(trend.body.contains("Spending"));
        assert_eq!(
            ada.get("/app/money/trend.svg?currency=XXX").await.status,
            StatusCode::UNPROCESSABLE_ENTITY
        );

        // Moving the ride to Groceries by hand is a correction the service learns from.
        let row = page.body.find("Uber").expect("the Uber expense");
        let action = &page.body[page.body[..row].len()..];
        let action = &action[action.find("action=\"").unwrap() + "action=\"".len()..];
        let action = action[..action.find('"').unwrap()].to_owned();
        let moved = ada.post(&action, &[("csrf", &csrf), ("month", &month), ("category", &groceries)]).await;
        assert!(
            moved.location().contains("done=learned") || moved.location().contains("done=moved"),
            "{}",
            moved.location()
        );
        let page = ada.get(&format!("/app/money?month={month}")).await;
        assert!(page.body.contains("Warning: 97 % used"), "97.00 of 100 after the move: {}", page.body);
        assert!(page.body.contains("by you, 100 % sure"), "{}", page.body);

        // Refusals: a bad amount is shown next to the field; another customer's expense is 404.
        let bad =
            ada.post("/app/money/expenses", &[("csrf", &csrf), ("amount", "-3"), ("currency", "USD")]).await;
        assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(bad.body.contains("expense-amount-problem"));
        let mut eve = Browser::new(app);
        eve.register(&email("eve"), "Eve").await;
        let eve_csrf = eve.get("/app").await.field("/app/sign-out", "csrf");
        let stolen =
            eve.post(&action, &[("csrf", &eve_csrf), ("month", &month), ("category", &groceries)]).await;
        assert_eq!(stolen.status, StatusCode::NOT_FOUND, "{}", stolen.body);
    })
    .await;
}

/// A customer made an operator with the admin key, signed in to the console.
async fn operator(app: &TestApp) -> Browser<'_> {
    let address = email("ops");
    let ops = common::register_and_login(app, &address).await;
    let path = format!("/v1/customers/{}/role", ops.customer_id);
    let (status, body) = app
        .call(reqwest::Method::PUT, &path, Some(&app.admin_key), Some(&serde_json::json!({"role": "admin"})))
        .await;
    assert_eq!(status, 200, "{body}");
    let mut browser = Browser::new(app);
    let csrf = browser.get("/app/sign-in").await.field("/app/sign-in", "csrf");
    browser
        .post("/app/sign-in", &[("csrf", &csrf), ("email", &address), ("password", common::TEST_PASSWORD)])
        .await;
    browser
}

/// The first `/admin/ledger?id=…` link on a page after `after`.
fn ledger_link(body: &str, after: &str) -> String {
    let start = body.find(after).unwrap_or(0);
    let at = body[start..].find("href=\"/admin/ledger?id=").expect("a ledger link") + start + "href=\"".len();
    body[at..at + body[at..].find('"').unwrap()].to_owned()
}

#[tokio::test]
async fn operators_explore_customers_and_the_ledger_and_customers_cannot() {
    each_backend(async |app| {
        let (ada_email, bob_email) = (email("ada"), email("bob"));
        let mut ada = Browser::new(app);
        ada.register(&ada_email, "Ada").await;
        let wallet = ada.open_wallet("USD", "Main").await;
        ada.money(&wallet, "top-up", &[("amount", "30"), ("token", "tok_visa")]).await;
        let mut bob = Browser::new(app);
        bob.register(&bob_email, "Bob").await;
        bob.open_wallet("USD", "").await;
        ada.money(&wallet, "send", &[("to", &bob_email), ("amount", "7")]).await;

        // Customers, signed in or not, do not see the operator console.
        assert_eq!(ada.get("/admin").await.status, StatusCode::NOT_FOUND);
        assert_eq!(Browser::new(app).get("/admin/customers").await.status, StatusCode::NOT_FOUND);
        assert_eq!(ada.get("/admin/volume.svg").await.status, StatusCode::NOT_FOUND);

        let mut operator = operator(app).await;

        let overview = operator.get("/admin").await;
        assert_eq!(overview.status, 200, "{}", overview.body);
        assert!(overview.body.contains("Waiting to publish") && overview.body.contains("id=\"backlog\""));
        let chart = operator.get("/admin/volume.svg").await;
        assert_eq!(
            (chart.status, chart.headers[header::CONTENT_TYPE].to_str().unwrap()),
            (StatusCode::OK, "image/svg+xml")
        );

        let found = operator.get(&format!("/admin/customers?q={}", encode(&ada_email))).await;
        let at = found.body.find("href=\"/admin/customers/").expect("Ada is found") + "href=\"".len();
        let ada_page = &found.body[at..at + found.body[at..].find('"').unwrap()];
        assert!(
            operator
                .get("/admin/customers?q=nobody%40example.com")
                .await
                .body
                .contains("No customer has that email")
        );
        let customer = operator.get(ada_page).await;
        assert!(customer.body.contains("23.00 USD") && customer.body.contains("sent"), "{}", customer.body);

        // Her wallet's ledger account, its transfers, and one transfer.
        let account = operator.get(&ledger_link(&customer.body, "Wallets")).await;
        assert!(account.body.contains(&format!("Account {wallet}")), "{}", account.body);
        assert!(account.body.contains("Balance history"), "wallet accounts keep their history");
        let transfer = operator.get(&ledger_link(&account.body, "Latest transfers")).await;
        assert!(transfer.body.contains("<h2 id=\"transfer-heading\">Transfer "), "{}", transfer.body);
        assert!(
            transfer.body.contains("7.00 USD") || transfer.body.contains("30.00 USD"),
            "{}",
            transfer.body
        );
        assert!(
            operator
                .get("/admin/ledger?id=00000000-0000-0000-0000-000000000001")
                .await
                .body
                .contains("No transfer or account")
        );

        // Changing a role needs the form's token.
        let role = format!("{ada_page}/role");
        assert_eq!(operator.post(&role, &[("role", "admin")]).await.status, StatusCode::FORBIDDEN);
        let csrf = customer.field(&role, "csrf");
        let changed = operator.post(&role, &[("csrf", &csrf), ("role", "admin")]).await;
        assert_eq!(changed.status, StatusCode::SEE_OTHER);
        assert_eq!(ada.get("/admin").await.status, 200, "Ada is an operator now");
    })
    .await;
}

/// A `multipart/form-data` body of text `fields` and one `file`, with its content type.
fn multipart(fields: &[(&str, &str)], file: &str) -> (String, String) {
    let boundary = "coffer-test-boundary-7d1f";
    let mut body = String::new();
    for (name, value) in fields {
        body.push_str(&format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
        ));
    }
    body.push_str(&format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"statement.csv\"\r\nContent-Type: text/csv\r\n\r\n{file}\r\n--{boundary}--\r\n"
    ));
    (format!("multipart/form-data; boundary={boundary}"), body)
}

#[tokio::test]
async fn statements_are_imported_with_a_report_and_banks_link_and_sync() {
    each_backend(async |app| {
        let mut ada = Browser::new(app);
        ada.register(&email("import"), "Ada").await;
        let page = ada.get("/app/money/statements").await;
        assert_eq!(page.status, 200, "{}", page.body);
        let csrf = page.field("/app/money/banks", "csrf");
        let csv = "date,amount,description\n2026-11-02,-12.50,TESCO STORES 123\n2026-11-03,not money,COFFEE\n2026-11-04,-3.20,PRET A MANGER\n";
        let fields = [
            ("csrf", csrf.as_str()),
            ("currency", "GBP"),
            ("date_column", "date"),
            ("date_format", "iso"),
            ("amount_column", "amount"),
            ("description_column", "description"),
            ("decimal", "."),
            ("delimiter", ","),
            ("credits_as_income", "on"),
        ];
        let (client, cookies) = (ada.client.clone(), ada.cookie_header());
        let upload = |fields: &[(&str, &str)], csv: &str| {
            let (content_type, body) = multipart(fields, csv);
            client
                .post(app.url("/app/money/import"))
                .header(header::CONTENT_TYPE, content_type)
                .header(header::ORIGIN, format!("http://{}", app.address))
                .header(header::COOKIE, cookies.clone())
                .body(body)
                .send()
        };
        let report = upload(&fields, csv).await.unwrap();
        assert_eq!(report.status(), 200);
        let body = report.text().await.unwrap();
        assert!(body.contains("2 imported, 0 already here, 0 skipped, 1 rejected."), "{body}");
        assert!(body.contains("<td class=\"num\">3</td>"), "line 3 is rejected, with why: {body}");
        let again = upload(&fields, csv).await.unwrap().text().await.unwrap();
        assert!(again.contains("0 imported, 2 already here"), "{again}");
        let money = ada.get("/app/money?month=2026-11").await;
        assert!(money.body.contains("spent 15.70 GBP"), "{}", money.body);
        // Without the token, or as another site, nothing is imported.
        let mut forged = fields.to_vec();
        forged[0] = ("csrf", "0123456789abcdef0123456789abcdef");
        assert_eq!(upload(&forged, csv).await.unwrap().status(), StatusCode::FORBIDDEN);
        let bad_columns = [("csrf", csrf.as_str()), ("currency", "GBP"), ("date_column", "when"), ("amount_column", "amount")];
        let refused = upload(&bad_columns, csv).await.unwrap();
        assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);

        // A sandbox bank, linked and synced now.
        let linked = ada.post("/app/money/banks", &[("csrf", &csrf), ("institution", "sandbox"), ("username", "ada"), ("password", "pass_good")]).await;
        assert_eq!(linked.status, 200, "{}", linked.body);
        assert!(linked.body.contains("Linked sandbox"), "{}", linked.body);
        let at = linked.body.find("action=\"/app/money/banks/").unwrap() + "action=\"".len();
        let sync = linked.body[at..at + linked.body[at..].find('"').unwrap()].to_owned();
        // The first sync starts at once in the workers; "sync now" waits its turn.
        let mut synced = ada.post(&sync, &[("csrf", &csrf)]).await;
        for _ in 0..50 {
            if synced.body.contains("Synced: ") {
                break;
            }
            assert!(synced.body.contains("a sync of this connection is running"), "{}", synced.body);
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            synced = ada.post(&sync, &[("csrf", &csrf)]).await;
        }
        assert!(synced.body.contains("Synced: "), "{}", synced.body);
        let wrong = ada.post("/app/money/banks", &[("csrf", &csrf), ("institution", "sandbox"), ("username", "ada"), ("password", "wrong")]).await;
        assert_eq!(wrong.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", wrong.body);
        let mut eve = Browser::new(app);
        eve.register(&email("eve"), "Eve").await;
        let eve_csrf = eve.get("/app/money/statements").await.field("/app/money/banks", "csrf");
        assert_eq!(eve.post(&sync, &[("csrf", &eve_csrf)]).await.status, StatusCode::NOT_FOUND);
    })
    .await;
}

#[tokio::test]
async fn notifications_are_marked_read_from_home() {
    each_backend(async |app| {
        let mut ada = Browser::new(app);
        ada.register(&email("inbox"), "Ada").await;
        // The welcome notification arrives once its event is relayed.
        let mut home = ada.get("/app").await;
        for _ in 0..50 {
            if home.body.contains("/read\"") {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            home = ada.get("/app").await;
        }
        let at = home.body.find("action=\"/app/notifications/").expect("an unread notification")
            + "action=\"".len();
        let action = home.body[at..at + home.body[at..].find('"').unwrap()].to_owned();
        let csrf = home.field(&action, "csrf");
        let read = ada.post(&action, &[("csrf", &csrf)]).await;
        assert_eq!((read.status, read.location()), (StatusCode::SEE_OTHER, "/app"));
        assert!(!ada.get("/app").await.body.contains(&action));
        let mut eve = Browser::new(app);
        eve.register(&email("eve"), "Eve").await;
        let eve_csrf = eve.get("/app").await.field("/app/sign-out", "csrf");
        assert_eq!(eve.post(&action, &[("csrf", &eve_csrf)]).await.status, StatusCode::NOT_FOUND);
    })
    .await;
}

#[tokio::test]
async fn operators_see_failing_webhooks_and_emails_and_queue_them_again() {
    for backend in backends() {
        // Nothing listens on port 1: every email and webhook delivery fails and is retried.
        let options = common::Options {
            configure: |args| {
                args.smtp_url = Some("smtp://127.0.0.1:1".into());
                args.webhook_allow_private = true;
            },
            ..common::Options::default()
        };
        let app = common::spawn_app_with(&backend, options).await;
        let (status, body) = app
            .post(
                "/v1/webhooks",
                &serde_json::json!({"url": "http://127.0.0.1:1/hook", "event_types": ["*"]}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        let mut operator = operator(&app).await;

        // Wait for a first failed attempt of each.
        let mut page = operator.get("/admin/outbound?status=pending").await;
        for _ in 0..100 {
            if page.body.contains("/admin/emails/")
                && page.body.contains("/admin/deliveries/")
                && page.body.contains("<td class=\"num\">1</td>")
            {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            page = operator.get("/admin/outbound?status=pending").await;
        }
        assert!(page.body.contains("<td>ops-"), "the operator's welcome email is listed: {}", page.body);
        assert!(page.body.contains("customer.registered"), "{}", page.body);
        let action = |prefix: &str| {
            let at = page.body.find(&format!("action=\"{prefix}")).unwrap() + "action=\"".len();
            page.body[at..at + page.body[at..].find('"').unwrap()].to_owned()
        };
        let (email_retry, delivery_retry) = (action("/admin/emails/"), action("/admin/deliveries/"));
        let csrf = page.field("", "csrf");
        let queued = operator.post(&email_retry, &[("csrf", &csrf)]).await;
        assert_eq!((queued.status, queued.location()), (StatusCode::SEE_OTHER, "/admin/outbound?done=email"));
        let queued = operator.post(&delivery_retry, &[("csrf", &csrf)]).await;
        assert_eq!(
            (queued.status, queued.location()),
            (StatusCode::SEE_OTHER, "/admin/outbound?done=delivery")
        );
        assert_eq!(operator.post(&email_retry, &[]).await.status, StatusCode::FORBIDDEN);
        let mut customer = Browser::new(&app);
        customer.register(&email("nosy"), "Nosy").await;
        assert_eq!(customer.get("/admin/outbound").await.status, StatusCode::NOT_FOUND);
        let customer_csrf = customer.get("/app").await.field("/app/sign-out", "csrf");
        assert_eq!(
            customer.post(&email_retry, &[("csrf", &customer_csrf)]).await.status,
            StatusCode::NOT_FOUND
        );
        let missing =
            operator.post(&format!("/admin/emails/{}/retry", uuid::Uuid::now_v7()), &[("csrf", &csrf)]).await;
        assert_eq!(missing.status, StatusCode::NOT_FOUND);
        app.stop().await;
    }
}

#[tokio::test]
async fn scheduled_payments_are_made_paused_resumed_and_cancelled() {
    each_backend(async |app| {
        let bob_email = email("payee");
        let mut bob = Browser::new(app);
        bob.register(&bob_email, "Bob").await;
        bob.open_wallet("USD", "").await;
        let mut ada = Browser::new(app);
        ada.register(&email("payer"), "Ada").await;
        let wallet = ada.open_wallet("USD", "Bills").await;
        ada.money(&wallet, "top-up", &[("amount", "100"), ("token", "tok_visa")]).await;
        let page = ada.get("/app/scheduled").await;
        assert_eq!(page.status, 200, "{}", page.body);
        let csrf = page.field("/app/scheduled", "csrf");
        let tomorrow = (time::OffsetDateTime::now_utc() + time::Duration::days(1)).date().to_string();
        let fields = |to: &str, amount: &str| {
            vec![
                ("csrf", csrf.clone()),
                ("from", wallet.clone()),
                ("to", to.to_owned()),
                ("amount", amount.to_owned()),
                ("frequency", "weekly".to_owned()),
                ("start", tomorrow.clone()),
                ("description", "rent".to_owned()),
            ]
        };
        let ok = fields(&bob_email, "25");
        let ok: Vec<(&str, &str)> = ok.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let created = ada.post("/app/scheduled", &ok).await;
        assert_eq!(
            (created.status, created.location()),
            (StatusCode::SEE_OTHER, "/app/scheduled?done=created"),
            "{}",
            created.body
        );
        let listed = ada.get("/app/scheduled").await;
        assert!(
            listed.body.contains("25.00 USD")
                && listed.body.contains("weekly")
                && listed.body.contains("active"),
            "{}",
            listed.body
        );

        let bad = fields("nobody@example.com", "25");
        let bad: Vec<(&str, &str)> = bad.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let refused = ada.post("/app/scheduled", &bad).await;
        assert!(refused.status.is_client_error(), "{}", refused.status);
        assert!(
            refused.body.contains("class=\"problem\"") || refused.body.contains("field-problem"),
            "{}",
            refused.body
        );
        let zero = fields(&bob_email, "0");
        let zero: Vec<(&str, &str)> = zero.iter().map(|(k, v)| (*k, v.as_str())).collect();
        assert!(ada.post("/app/scheduled", &zero).await.body.contains("schedule-amount-problem"));

        let at = listed.body.find("action=\"/app/scheduled/").unwrap() + "action=\"".len();
        let action = listed.body[at..at + listed.body[at..].find('"').unwrap()].to_owned();
        for (step, state) in [("pause", "paused"), ("resume", "active"), ("cancel", "cancelled")] {
            let done = ada.post(&action, &[("csrf", &csrf), ("action", step)]).await;
            assert_eq!(done.status, StatusCode::SEE_OTHER, "{step}: {}", done.body);
            assert!(ada.get("/app/scheduled").await.body.contains(&format!("<td>{state}</td>")), "{step}");
        }
        let bob_csrf = bob.get("/app/scheduled").await.field("/app/scheduled", "csrf");
        assert_eq!(
            bob.post(&action, &[("csrf", &bob_csrf), ("action", "pause")]).await.status,
            StatusCode::NOT_FOUND
        );
    })
    .await;
}

/// Every console route and its methods, read from the router's source, so that a new
/// route is checked below without being listed here.
fn console_routes() -> Vec<(String, &'static str)> {
    let source = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/src/console/mod.rs")).unwrap();
    let mut routes = Vec::new();
    for piece in source.split(".route(").skip(1) {
        let path = piece.split('"').nth(1).unwrap().to_owned();
        let handlers = piece.split(".route(").next().unwrap();
        let handlers = &handlers[..handlers.find("\n        .").unwrap_or(handlers.len())];
        for (method, call) in [("GET", "get("), ("POST", "post(")] {
            if handlers.contains(call) {
                routes.push((path.clone(), method));
            }
        }
    }
    assert!(routes.len() > 30, "the router's routes are read: {routes:?}");
    routes
}

#[tokio::test]
async fn every_console_route_needs_a_session_and_every_form_its_token() {
    let app = spawn_app(&Backend::Sqlite).await;
    let public = ["/", "/app/sign-in", "/app/register", "/app/assets/{name}"];
    let mut signed_out = Browser::new(&app);
    let mut customer = Browser::new(&app);
    customer.register(&email("matrix"), "Ada").await;
    let some_id = uuid::Uuid::now_v7().to_string();
    for (route, method) in console_routes() {
        let path = route.replace("{id}", &some_id).replace("{endpoint}", &some_id).replace("{name}", "x");
        let admin = route.starts_with("/admin");
        if method == "GET" {
            if public.contains(&route.as_str()) {
                continue;
            }
            let page = signed_out.get(&path).await;
            let expected =
                if admin { (StatusCode::NOT_FOUND, "") } else { (StatusCode::SEE_OTHER, "/app/sign-in") };
            assert_eq!((page.status, page.location()), expected, "GET {route} signed out");
            if admin {
                assert_eq!(
                    customer.get(&path).await.status,
                    StatusCode::NOT_FOUND,
                    "GET {route} as a customer"
                );
            }
        } else {
            let page = signed_out.post(&path, &[("x", "1")]).await;
            let expected = match route.as_str() {
                _ if admin => StatusCode::NOT_FOUND,
                "/app/sign-in" | "/app/register" => StatusCode::FORBIDDEN,
                _ => StatusCode::SEE_OTHER,
            };
            assert_eq!(page.status, expected, "POST {route} signed out: {}", page.body);
            // Signed in, without the form's token: refused (multipart included), nothing done.
            let refused = customer.post(&path, &[("x", "1")]).await;
            let expected = if admin { StatusCode::NOT_FOUND } else { StatusCode::FORBIDDEN };
            let multipart_route = route == "/app/money/import";
            assert!(
                refused.status == expected || (multipart_route && refused.status == StatusCode::BAD_REQUEST),
                "POST {route} without a token: {} {}",
                refused.status,
                refused.body
            );
        }
    }
    app.stop().await;
}

#[tokio::test]
async fn categories_and_rules_are_managed_and_rules_categorise() {
    each_backend(async |app| {
        let mut ada = Browser::new(app);
        ada.register(&email("rules"), "Ada").await;
        let page = ada.get("/app/money/categories").await;
        assert_eq!(page.status, 200, "{}", page.body);
        let csrf = page.field("/app/money/categories", "csrf");
        let added =
            ada.post("/app/money/categories", &[("csrf", &csrf), ("name", "Pets"), ("parent", "")]).await;
        assert_eq!(added.location(), "/app/money/categories?done=category", "{}", added.body);
        let page = ada.get("/app/money/categories").await;
        let at = page.body.find("New name for Pets").expect("Pets is listed");
        let before = &page.body[..at];
        let action_at = before.rfind("action=\"/app/money/categories/").unwrap() + "action=\"".len();
        let action = before[action_at..action_at + before[action_at..].find('"').unwrap()].to_owned();
        let id = action.rsplit('/').next().unwrap().to_owned();
        let renamed = ada.post(&action, &[("csrf", &csrf), ("name", "Animals")]).await;
        assert_eq!(renamed.status, StatusCode::SEE_OTHER);
        let taken =
            ada.post("/app/money/categories", &[("csrf", &csrf), ("name", "Animals"), ("parent", "")]).await;
        assert_eq!(taken.status, StatusCode::UNPROCESSABLE_ENTITY, "a name in use is refused on the page");
        let rule = ada
            .post(
                "/app/money/rules",
                &[("csrf", &csrf), ("name", "Pet shop"), ("merchant", "PETCO"), ("category", &id)],
            )
            .await;
        assert_eq!(rule.location(), "/app/money/categories?done=rule", "{}", rule.body);
        let page = ada.get("/app/money/categories").await;
        assert!(
            page.body.contains("merchant contains “PETCO”") && page.body.contains("<td>Animals</td>"),
            "{}",
            page.body
        );

        let money_csrf = ada.get("/app/money").await.field("/app/money/expenses", "csrf");
        ada.post(
            "/app/money/expenses",
            &[
                ("csrf", &money_csrf),
                ("amount", "9.99"),
                ("currency", "USD"),
                ("merchant", "PETCO #12"),
                ("category", ""),
            ],
        )
        .await;
        let money = ada.get("/app/money").await;
        assert!(money.body.contains("Animals <span class=\"hint\">(by one of your rules"), "{}", money.body);

        let at = page.body.find("action=\"/app/money/rules/").unwrap() + "action=\"".len();
        let delete_rule = page.body[at..at + page.body[at..].find('"').unwrap()].to_owned();
        let mut eve = Browser::new(app);
        eve.register(&email("eve"), "Eve").await;
        let eve_csrf = eve.get("/app/money/categories").await.field("/app/money/categories", "csrf");
        assert_eq!(eve.post(&delete_rule, &[("csrf", &eve_csrf)]).await.status, StatusCode::NOT_FOUND);
        assert_eq!(
            eve.post(&action, &[("csrf", &eve_csrf), ("delete", "1")]).await.status,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            ada.post(&delete_rule, &[("csrf", &csrf)]).await.location(),
            "/app/money/categories?done=deleted"
        );
        assert!(!ada.get("/app/money/categories").await.body.contains("PETCO"));
    })
    .await;
}

#[tokio::test]
async fn an_expense_is_edited_and_deleted() {
    each_backend(async |app| {
        let mut ada = Browser::new(app);
        ada.register(&email("edit"), "Ada").await;
        let csrf = ada.get("/app/money").await.field("/app/money/expenses", "csrf");
        ada.post(
            "/app/money/expenses",
            &[
                ("csrf", &csrf),
                ("amount", "20"),
                ("currency", "EUR"),
                ("merchant", "Bakery"),
                ("date", "2026-10-05"),
                ("category", ""),
            ],
        )
        .await;
        let month = ada.get("/app/money?month=2026-10").await;
        let at = month.body.find("href=\"/app/money/expenses/").expect("the expense links to its page")
            + "href=\"".len();
        let path = month.body[at..at + month.body[at..].find('"').unwrap()].to_owned();
        let page = ada.get(&path).await;
        assert_eq!(page.status, 200);
        assert!(
            page.body.contains("value=\"20.00\"") && page.body.contains("value=\"2026-10-05\""),
            "{}",
            page.body
        );
        let fields = |amount: &'static str| {
            [
                ("csrf", csrf.clone()),
                ("amount", amount.to_owned()),
                ("merchant", "Corner bakery".into()),
                ("description", "<b>bread</b>".into()),
                ("date", "2026-10-06".into()),
                ("notes", "".into()),
            ]
        };
        let bad = fields("zero");
        let bad: Vec<(&str, &str)> = bad.iter().map(|(k, v)| (*k, v.as_str())).collect();
        assert!(ada.post(&path, &bad).await.body.contains("edit-amount-problem"));
        let good = fields("21.50");
        let good: Vec<(&str, &str)> = good.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let saved = ada.post(&path, &good).await;
        assert_eq!(saved.location(), "/app/money?month=2026-10&done=changed");
        let month = ada.get("/app/money?month=2026-10").await;
        assert!(
            month.body.contains("21.50 EUR") && month.body.contains("Corner bakery · &#60;b&#62;bread"),
            "{}",
            month.body
        );
        let mut eve = Browser::new(app);
        eve.register(&email("eve"), "Eve").await;
        assert_eq!(eve.get(&path).await.status, StatusCode::NOT_FOUND);
        let deleted = ada.post(&path, &[("csrf", &csrf), ("delete", "1")]).await;
        assert_eq!(deleted.location(), "/app/money?month=2026-10&done=deleted");
        assert_eq!(ada.get(&path).await.status, StatusCode::NOT_FOUND);
    })
    .await;
}

#[tokio::test]
async fn the_ledger_explorer_gathers_a_linked_chain() {
    each_backend(async |app| {
        let (a, b) = (common::new_id(), common::new_id());
        let accounts = serde_json::json!([{"id": a, "ledger": 840, "code": 1}, {"id": b, "ledger": 840, "code": 1}]);
        let (status, body) = app.post("/v1/ledger/accounts", &accounts).await;
        assert_eq!(status, 200, "{body}");
        let ids: Vec<String> = (0..5).map(|_| common::new_id()).collect();
        let transfer = |id: &str, amount: u64, flags: &[&str]| {
            serde_json::json!({"id": id, "debit_account_id": a, "credit_account_id": b, "amount": amount, "ledger": 840, "code": 1, "flags": flags})
        };
        // One alone, a chain of three, one alone: in one batch, so their timestamps touch.
        let batch = serde_json::json!([
            transfer(&ids[0], 1, &[]),
            transfer(&ids[1], 2, &["linked"]),
            transfer(&ids[2], 3, &["linked"]),
            transfer(&ids[3], 4, &[]),
            transfer(&ids[4], 5, &[]),
        ]);
        let (status, body) = app.post("/v1/ledger/transfers", &batch).await;
        assert_eq!(status, 200, "{body}");
        let mut operator = operator(app).await;
        for middle in [&ids[1], &ids[2], &ids[3]] {
            let page = operator.get(&format!("/admin/ledger?id={middle}")).await;
            assert!(page.body.contains("Its linked chain (3 transfers"), "{}", page.body);
            for member in &ids[1..4] {
                assert!(page.body.contains(member.as_str()), "{member} is in the chain");
            }
            assert!(!page.body.contains(ids[0].as_str()) && !page.body.contains(ids[4].as_str()));
        }
        for alone in [&ids[0], &ids[4]] {
            let page = operator.get(&format!("/admin/ledger?id={alone}")).await;
            assert!(page.body.contains("transfer-heading") && !page.body.contains("linked chain"), "{}", page.body);
        }
    })
    .await;
}
