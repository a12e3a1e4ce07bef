//! The web console: Coffer in a browser, served by the same binary. Customers use it at
//! `/app` (`customer`: wallets and history; `money`: expenses, budgets and reports with
//! their `charts`; `scheduled`: scheduled payments; `statements`: CSV imports and bank connections; `categories`: categories and rules; `account`: signing in and the session list), operators at `/admin`
//! (`admin`).
//!
//! Pages are HTML rendered on the server from askama templates compiled into the binary
//! (`crates/coffer/templates/console/`), readable and usable without JavaScript; htmx
//! and one script of ours (`assets`) only refresh the balances live. Handlers call the
//! same operations the API does (`wallet_api`, `identity`, `wallets`, the REST routes'
//! shared functions): no rule lives in a template or a script, and the API's limits, its
//! `Idempotency-Key` and its ownership checks (someone else's wallet is a 404 page) hold
//! here too.
//!
//! Every console response carries a strict Content-Security-Policy (scripts and styles
//! from this origin only, nothing inline), `X-Frame-Options: DENY`, `nosniff`, no
//! referrer to other sites and `no-store`; sessions and CSRF are in [`session`].

mod account;
mod admin;
pub mod assets;
mod categories;
mod charts;
mod customer;
mod money;
mod scheduled;
pub mod session;
mod statements;

use askama::Template;
use axum::{
    Router,
    extract::Request,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    middleware::{self, Next},
    response::{Html, IntoResponse, Redirect, Response},
    routing::{get, post},
};

use crate::http::{AppState, error::ApiError};
use assets::Assets;

/// The console's routes, with its security headers.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(root))
        .route("/app", get(customer::home))
        .route("/app/overview", get(customer::overview))
        .route("/app/live", get(customer::live))
        .route("/app/wallets", post(customer::open_wallet))
        .route("/app/wallets/{id}", get(customer::wallet))
        .route("/app/wallets/{id}/send", post(customer::send))
        .route("/app/wallets/{id}/top-up", post(customer::top_up))
        .route("/app/wallets/{id}/withdraw", post(customer::withdraw))
        .route("/app/notifications/{id}/read", post(customer::read_notification))
        .route("/app/history", get(customer::history))
        .route("/app/history.csv", get(customer::history_csv))
        .route("/app/money", get(money::money))
        .route("/app/money/expenses", post(money::add_expense))
        .route("/app/money/expenses/{id}", get(money::expense).post(money::edit_expense))
        .route("/app/money/expenses/{id}/category", post(money::recategorise))
        .route("/app/money/budgets", post(money::add_budget))
        .route("/app/money/categories", get(categories::categories).post(categories::create_category))
        .route("/app/money/categories/{id}", post(categories::change_category))
        .route("/app/money/rules", post(categories::create_rule))
        .route("/app/money/rules/{id}/delete", post(categories::delete_rule))
        .route("/app/money/statements", get(statements::statements))
        .route(
            "/app/money/import",
            post(statements::import_csv)
                .layer(axum::extract::DefaultBodyLimit::max(statements::UPLOAD_BYTES_MAX)),
        )
        .route("/app/money/banks", post(statements::link_bank))
        .route("/app/money/banks/{id}/sync", post(statements::sync_bank))
        .route("/app/money/categories.svg", get(money::categories_chart))
        .route("/app/money/trend.svg", get(money::trend_chart))
        .route("/app/scheduled", get(scheduled::scheduled).post(scheduled::create))
        .route("/app/scheduled/{id}", post(scheduled::change))
        .route("/app/sign-in", get(account::sign_in_page).post(account::sign_in))
        .route("/app/register", get(account::register_page).post(account::register))
        .route("/app/sign-out", post(account::sign_out))
        .route("/app/account", get(account::account))
        .route("/app/account/password", post(account::change_password))
        .route("/app/account/sessions/{id}/end", post(account::end_session))
        .route("/app/assets/{name}", get(assets::serve))
        .route("/admin", get(admin::overview))
        .route("/admin/volume.svg", get(admin::volume_chart))
        .route("/admin/customers", get(admin::customers))
        .route("/admin/customers/{id}", get(admin::customer))
        .route("/admin/customers/{id}/role", post(admin::set_role))
        .route("/admin/ledger", get(admin::ledger))
        .route("/admin/outbound", get(admin::outbound))
        .route("/admin/deliveries/{endpoint}/{id}/retry", post(admin::retry_delivery))
        .route("/admin/emails/{id}/retry", post(admin::retry_email))
        .layer(middleware::from_fn(security_headers))
}

/// `/`: browsers go to the console; API clients get the API's 404.
async fn root(headers: HeaderMap) -> Response {
    let wants_html = headers
        .get(header::ACCEPT)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"));
    if wants_html {
        Redirect::to("/app").into_response()
    } else {
        ApiError::NotFound { code: "route_not_found", detail: "no such route".into() }.into_response()
    }
}

const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Middleware: the console's security headers on every answer (pages, fragments, assets).
async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    // `same-origin`: other sites learn nothing; this one still gets a real `Origin` on
    // form posts (with `no-referrer` browsers send `Origin: null`).
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// What every page's frame needs: its title, the assets' hashed paths, the navigation
/// and, signed in, the CSRF token of the sign-out form.
#[derive(Debug)]
pub struct Chrome {
    pub title: String,
    pub css: String,
    pub script: String,
    pub htmx: String,
    pub icon: String,
    /// The CSRF token for the navigation's sign-out form; `None` before sign-in.
    pub csrf: Option<String>,
    /// Which navigation entry is this page's.
    pub section: &'static str,
    /// An operator page: the operator console's navigation.
    pub admin: bool,
}

impl Chrome {
    pub fn new(title: impl Into<String>, section: &'static str, csrf: Option<&str>) -> Self {
        let assets = Assets::get();
        Self {
            title: title.into(),
            css: assets.css.path(),
            script: assets.script.path(),
            htmx: assets.htmx.path(),
            icon: assets.icon.path(),
            csrf: csrf.map(str::to_owned),
            section,
            admin: false,
        }
    }

    /// An operator console page's frame.
    pub fn admin(title: impl Into<String>, section: &'static str, csrf: &str) -> Self {
        Self { admin: true, ..Self::new(title, section, Some(csrf)) }
    }
}

/// A page, rendered.
pub fn page(template: &impl Template) -> Response {
    match template.render() {
        Ok(html) => Html(html).into_response(),
        Err(error) => PageError::Api(ApiError::Internal(error.into())).into_response(),
    }
}

/// A page that may show a form's problems: 422 when it does, so a refused form is not a
/// 200 to clients and tests.
pub fn form_page(template: &impl Template, problems: &Problems) -> Response {
    let mut response = page(template);
    if response.status() == StatusCode::OK && !problems.is_empty() {
        *response.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
    }
    response
}

/// Why a console request did not get its page.
#[derive(Debug)]
pub enum PageError {
    /// No live session: to the sign-in page.
    SignIn,
    /// A form without this session's CSRF token, or from another site: 403.
    Forged,
    /// A form body that does not parse: 400.
    BadForm(String),
    /// What the API would have answered (404 for someone else's wallet, …).
    Api(ApiError),
}

impl From<ApiError> for PageError {
    fn from(error: ApiError) -> Self {
        Self::Api(error)
    }
}

#[derive(Template)]
#[template(path = "console/error.html")]
struct ErrorPage {
    chrome: Chrome,
    status: u16,
    heading: String,
    detail: String,
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let (status, heading, detail) = match self {
            Self::SignIn => return Redirect::to("/app/sign-in").into_response(),
            Self::Forged => (
                StatusCode::FORBIDDEN,
                "This form cannot be accepted".to_owned(),
                "It did not come from this page, or it has expired. Go back, reload the page and try again."
                    .to_owned(),
            ),
            Self::BadForm(detail) => {
                (StatusCode::BAD_REQUEST, "This form could not be read".to_owned(), detail)
            }
            Self::Api(error) => {
                let problem = error.problem();
                if error.status().is_server_error() {
                    tracing::error!(error = %error, "console page failed");
                }
                let status = error.status();
                let heading = match status {
                    StatusCode::NOT_FOUND => "Not found".to_owned(),
                    _ => problem.title,
                };
                (status, heading, problem.detail)
            }
        };
        let page =
            ErrorPage { chrome: Chrome::new(&heading, "", None), status: status.as_u16(), heading, detail };
        let mut response = page.render().map_or_else(
            |_| (StatusCode::INTERNAL_SERVER_ERROR, "the error page failed").into_response(),
            |html| Html(html).into_response(),
        );
        *response.status_mut() = status;
        response
    }
}

/// A form with no fields but its CSRF token.
#[derive(Debug, serde::Deserialize)]
pub struct Empty {}

/// What a form's answer says was wrong: messages next to the fields they name (by the
/// API's field paths, `/amount`), and one for the whole form.
#[derive(Clone, Debug, Default)]
pub struct Problems {
    pub general: Option<String>,
    fields: Vec<(String, String)>,
}

impl Problems {
    pub fn general(message: impl Into<String>) -> Self {
        Self { general: Some(message.into()), fields: Vec::new() }
    }

    pub fn field(field: &str, message: impl Into<String>) -> Self {
        Self { general: None, fields: vec![(field.to_owned(), message.into())] }
    }

    /// The problems of an API refusal.
    pub fn of(error: &ApiError) -> Self {
        Self::of_problem(error.problem())
    }

    pub fn of_problem(problem: crate::http::error::Problem) -> Self {
        if problem.errors.is_empty() {
            Self::general(problem.detail)
        } else {
            Self { general: None, fields: problem.errors.into_iter().map(|e| (e.field, e.message)).collect() }
        }
    }

    /// The message for `field`, if it has one.
    pub fn on(&self, field: &str) -> Option<&str> {
        self.fields.iter().find(|(name, _)| name == field).map(|(_, message)| message.as_str())
    }

    pub fn is_empty(&self) -> bool {
        self.general.is_none() && self.fields.is_empty()
    }
}

/// An id in the path; one that is not a UUID is the 404 page.
#[derive(Debug)]
pub struct IdPath(pub uuid::Uuid);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for IdPath {
    type Rejection = PageError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, PageError> {
        match axum::extract::Path::<uuid::Uuid>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(id)) => Ok(Self(id)),
            Err(_) => Err(PageError::Api(ApiError::NotFound {
                code: "route_not_found",
                detail: "no such page".into(),
            })),
        }
    }
}
