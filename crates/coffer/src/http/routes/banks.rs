//! Bank connections over HTTP: `GET /v1/bank-institutions`, `GET/POST
//! /v1/bank-connections`, `GET/DELETE /v1/bank-connections/{id}` and `POST
//! /v1/bank-connections/{id}/sync` ("sync now", answering what it did). The `workers`
//! role syncs every connection on a schedule (see `crate::finance::banks`); synced
//! transactions are expenses with source `bank_sync`. Sandbox institutions link with
//! optional credentials; `simplefin` links with the customer's SimpleFIN setup token
//! (`crate::finance::banks::simplefin`).

use axum::{Router, extract::State, http::StatusCode, routing::get, routing::post};
use serde::{Deserialize, Serialize};
use store::{BankAccountRow, BankConnectionRow};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::finance::banks::{
    AggregatorError, Credentials, LinkMethod, SetupToken, simplefin,
    sync::{AccountReport, BankError},
};
use crate::http::caller::AuthUser;
use crate::http::{
    AppState,
    dates::nanos,
    error::ApiError,
    extract::{Json, Path, Query},
    paging::{self, Page, PageQuery},
};

/// Characters of an institution id, a username and a password at most.
const INSTITUTION_CHARS_MAX: usize = 100;
const USERNAME_CHARS_MAX: usize = 100;
const PASSWORD_CHARS_MAX: usize = 200;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/bank-institutions", get(list_institutions))
        .route("/v1/bank-connections", get(list_connections).post(create_connection))
        .route("/v1/bank-connections/{id}", get(get_connection).delete(delete_connection))
        .route("/v1/bank-connections/{id}/sync", post(sync_connection))
}

impl From<BankError> for ApiError {
    fn from(error: BankError) -> Self {
        let unprocessable = StatusCode::UNPROCESSABLE_ENTITY;
        match error {
            BankError::NotFound => ApiError::NotFound {
                code: "bank_connection_not_found",
                detail: "no such bank connection".into(),
            },
            BankError::AlreadyLinked => ApiError::rejected(
                StatusCode::CONFLICT,
                "bank_connection_exists",
                "you have linked this institution with these credentials already",
            ),
            BankError::TooMany => ApiError::rejected(
                unprocessable,
                "too_many",
                format!("at most {} bank connections", store::BANK_CONNECTIONS_PER_CUSTOMER_MAX),
            ),
            BankError::SyncInProgress => ApiError::rejected(
                StatusCode::CONFLICT,
                "bank_sync_in_progress",
                "a sync of this connection is running; its results will show on the connection",
            ),
            BankError::Aggregator(error) => {
                let status = match error {
                    AggregatorError::UnknownInstitution
                    | AggregatorError::InvalidCredentials
                    | AggregatorError::LoginRequired
                    | AggregatorError::InvalidSetupToken(_)
                    | AggregatorError::HostNotAllowed
                    | AggregatorError::SetupTokenRejected
                    | AggregatorError::AccessRevoked => unprocessable,
                    AggregatorError::InvalidToken | AggregatorError::Unavailable(_) => {
                        StatusCode::SERVICE_UNAVAILABLE
                    }
                };
                ApiError::rejected(status, error.code(), error.to_string())
            }
            BankError::Finance(error) => error.into(),
            BankError::Store(error) => error.into(),
        }
    }
}

/// An institution I can link.
#[derive(Debug, Serialize, ToSchema)]
pub struct BankInstitution {
    pub id: String,
    pub name: String,
    /// What linking it does (each sandbox institution behaves in one way).
    pub behaviour: String,
    /// What to give to link it: `credentials` (optional, the sandbox) or `setup_token`.
    pub link_method: String,
}

/// The institutions I can link: the sandbox aggregator's, and `simplefin` (a real bank
/// through a SimpleFIN server, linked with a setup token).
#[utoipa::path(get, path = "/v1/bank-institutions", tag = "finance", security(("access_token" = [])),
    responses((status = 200, body = Vec<BankInstitution>)))]
async fn list_institutions(
    _user: AuthUser,
    State(state): State<AppState>,
) -> axum::Json<Vec<BankInstitution>> {
    let institutions = state.banks.institutions().into_iter().map(|institution| BankInstitution {
        id: institution.id.to_owned(),
        name: institution.name.to_owned(),
        behaviour: institution.behaviour.to_owned(),
        link_method: institution.link_method.as_str().to_owned(),
    });
    axum::Json(institutions.collect())
}

/// A bank login. Used once to link, never stored or logged.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BankLogin {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for BankLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BankLogin(***)")
    }
}

/// A new bank connection.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewBankConnection {
    /// From `GET /v1/bank-institutions`: `sandbox`, `sandbox_flaky`,
    /// `sandbox_login_required`, `simplefin`.
    pub institution_id: String,
    /// Sandbox institutions only. The sandbox takes any username with the password
    /// `pass_good`; without credentials it links as `user_good`.
    pub credentials: Option<BankLogin>,
    /// `simplefin` only, and required there: the setup token made at your SimpleFIN server
    /// (the base64 of a one-time claim URL; at most 2048 characters). Coffer claims it once;
    /// a token claimed before is refused (`bank_setup_token_rejected`).
    #[schema(max_length = 2048)]
    pub setup_token: Option<String>,
}

impl std::fmt::Debug for NewBankConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewBankConnection")
            .field("institution_id", &self.institution_id)
            .finish_non_exhaustive()
    }
}

/// An account reached through a connection.
#[derive(Debug, Serialize, ToSchema)]
pub struct BankAccount {
    pub id: Uuid,
    pub name: String,
    /// The last digits of the account number.
    pub mask: Option<String>,
    pub currency: String,
    /// `checking`, `savings`, `credit_card`, or `other` when the aggregator does not say
    /// (SimpleFIN does not).
    #[serde(rename = "type")]
    pub account_type: String,
    /// When its transactions were last fetched.
    pub last_synced_at: Option<String>,
}

/// A bank connection.
#[derive(Debug, Serialize, ToSchema)]
pub struct BankConnection {
    pub id: Uuid,
    pub institution_id: String,
    /// The aggregator behind it (`sandbox`, `simplefin`).
    pub provider: String,
    /// `active`, or `error` when the last sync failed (`last_error` says why; it is retried
    /// with backoff).
    pub status: String,
    pub last_synced_at: Option<String>,
    /// A stable code: `bank_unavailable` (passing; retried), `bank_login_required` (log in
    /// again at the bank or SimpleFIN server), `bank_access_revoked` (the SimpleFIN access
    /// was revoked: unlink and link again with a new setup token), `bank_host_not_allowed`
    /// (the operator no longer allows its SimpleFIN server), `bank_token_invalid`.
    pub last_error: Option<String>,
    /// When the workers sync it next.
    pub next_sync_at: String,
    pub accounts: Vec<BankAccount>,
    pub created_at: String,
}

fn view(connection: &BankConnectionRow, accounts: &[BankAccountRow]) -> BankConnection {
    BankConnection {
        id: connection.id,
        institution_id: connection.institution_id.clone(),
        provider: connection.provider.clone(),
        status: connection.status.clone(),
        last_synced_at: connection.last_synced_at.map(nanos),
        last_error: connection.last_error.clone(),
        next_sync_at: nanos(connection.next_sync_at),
        accounts: accounts
            .iter()
            .map(|account| BankAccount {
                id: account.id,
                name: account.name.clone(),
                mask: account.mask.clone(),
                currency: account.currency.clone(),
                account_type: account.account_type.clone(),
                last_synced_at: account.last_synced_at.map(nanos),
            })
            .collect(),
        created_at: nanos(connection.created_at),
    }
}

fn checked(field: &str, text: &str, max: usize) -> Result<(), ApiError> {
    if text.is_empty() || text.chars().count() > max || text.chars().any(char::is_control) {
        return Err(ApiError::field(field, format!("1 to {max} characters, no control characters")));
    }
    Ok(())
}

/// Links a bank: the connection and its accounts. The workers sync it at once, then every
/// `COFFER_BANK_SYNC_INTERVAL_S`. Institution `simplefin` takes a `setup_token` (and no
/// credentials); the others take optional `credentials` (and no setup token).
#[utoipa::path(post, path = "/v1/bank-connections", tag = "finance", request_body = NewBankConnection,
    security(("access_token" = [])),
    responses(
        (status = 201, body = BankConnection),
        (status = 409, description = "bank_connection_exists", body = crate::http::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "bank_institution_unknown, bank_credentials_invalid, bank_login_required, \
            bank_setup_token_invalid (not the base64 of a claim URL), bank_host_not_allowed (a SimpleFIN server \
            this service may not contact: it was not contacted), bank_setup_token_rejected (claimed already), \
            bank_access_revoked, too_many or invalid fields",
            body = crate::http::error::Problem, content_type = "application/problem+json"),
        (status = 503, description = "bank_unavailable: retry later", body = crate::http::error::Problem, content_type = "application/problem+json"),
    ))]
async fn create_connection(
    user: AuthUser,
    State(state): State<AppState>,
    Json(request): Json<NewBankConnection>,
) -> Result<(StatusCode, axum::Json<BankConnection>), ApiError> {
    let (connection, accounts) = link(&state, user.customer_id, request).await?;
    Ok((StatusCode::CREATED, axum::Json(view(&connection, &accounts))))
}

/// Checks a new connection's fields against its institution and links it (the API's and
/// the web console's).
pub(crate) async fn link(
    state: &AppState,
    customer_id: Uuid,
    request: NewBankConnection,
) -> Result<(BankConnectionRow, Vec<BankAccountRow>), ApiError> {
    checked("/institution_id", &request.institution_id, INSTITUTION_CHARS_MAX)?;
    let credentials = match request.credentials {
        Some(login) => {
            checked("/credentials/username", &login.username, USERNAME_CHARS_MAX)?;
            checked("/credentials/password", &login.password, PASSWORD_CHARS_MAX)?;
            Some(Credentials { username: login.username, password: login.password })
        }
        None => None,
    };
    let setup_token = match request.setup_token {
        Some(token) => {
            checked("/setup_token", &token, simplefin::SETUP_TOKEN_CHARS_MAX)?;
            Some(SetupToken(token))
        }
        None => None,
    };
    // Which of the two an institution takes; an unknown one is the aggregator's answer.
    match state.banks.institution(&request.institution_id).map(|institution| institution.link_method) {
        Some(LinkMethod::SetupToken) if setup_token.is_none() => {
            return Err(ApiError::field("/setup_token", "this institution links with a setup token"));
        }
        Some(LinkMethod::SetupToken) if credentials.is_some() => {
            return Err(ApiError::field("/credentials", "this institution links with a setup token only"));
        }
        Some(LinkMethod::Credentials) if setup_token.is_some() => {
            return Err(ApiError::field(
                "/setup_token",
                "this institution links with credentials, not a setup token",
            ));
        }
        _ => {}
    }
    Ok(state.banks.link(customer_id, request.institution_id, credentials, setup_token).await?)
}

/// My bank connections, oldest first.
#[utoipa::path(get, path = "/v1/bank-connections", tag = "finance", params(PageQuery), security(("access_token" = [])),
    responses(
        (status = 200, body = Page<BankConnection>),
        (status = 400, description = "Malformed cursor", body = crate::http::error::Problem, content_type = "application/problem+json"),
    ))]
async fn list_connections(
    user: AuthUser,
    State(state): State<AppState>,
    Query(query): Query<PageQuery>,
) -> Result<axum::Json<Page<BankConnection>>, ApiError> {
    let limit = paging::limit(query.limit)?;
    let after = paging::after("bc1", query.cursor.as_deref())?;
    let views = state.banks.connections(user.customer_id, after, limit + 1).await?;
    Ok(axum::Json(Page::of(
        views,
        limit,
        |(row, _)| paging::cursor("bc1", &row.id),
        |(row, accounts)| view(&row, &accounts),
    )))
}

/// One of my bank connections: its status, last sync, last error and accounts.
#[utoipa::path(get, path = "/v1/bank-connections/{id}", tag = "finance", params(("id" = Uuid, Path)), security(("access_token" = [])),
    responses((status = 200, body = BankConnection)))]
async fn get_connection(
    user: AuthUser,
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> Result<axum::Json<BankConnection>, ApiError> {
    let (connection, accounts) = state.banks.connection(user.customer_id, id).await?;
    Ok(axum::Json(view(&connection, &accounts)))
}

/// Unlinks one of my bank connections. The expenses it synced stay (they are history).
#[utoipa::path(delete, path = "/v1/bank-connections/{id}", tag = "finance", params(("id" = Uuid, Path)), security(("access_token" = [])),
    responses((status = 204, description = "Unlinked")))]
async fn delete_connection(
    user: AuthUser,
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> Result<StatusCode, ApiError> {
    state.banks.delete(user.customer_id, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// What a sync did.
#[derive(Debug, Serialize, ToSchema)]
pub struct SyncReportView {
    pub added: usize,
    pub duplicates: usize,
    pub skipped: usize,
    pub has_more: bool,
    pub accounts: Vec<AccountReport>,
    /// The connection afterwards (`status`, `last_error`, `next_sync_at`).
    pub connection: BankConnection,
}

/// Syncs one of my bank connections now. A bank that fails is not an error of the
/// request: the report (and the connection) say which accounts failed and why, and the
/// workers retry with backoff.
#[utoipa::path(post, path = "/v1/bank-connections/{id}/sync", tag = "finance", params(("id" = Uuid, Path)), security(("access_token" = [])),
    responses(
        (status = 200, body = SyncReportView),
        (status = 409, description = "bank_sync_in_progress", body = crate::http::error::Problem, content_type = "application/problem+json"),
    ))]
async fn sync_connection(
    user: AuthUser,
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> Result<axum::Json<SyncReportView>, ApiError> {
    let report = state.banks.sync_now(user.customer_id, id).await?;
    let (_, accounts) = state.banks.connection(user.customer_id, id).await?;
    let sum = |field: fn(&AccountReport) -> usize| report.accounts.iter().map(field).sum();
    Ok(axum::Json(SyncReportView {
        added: sum(|account| account.added),
        duplicates: sum(|account| account.duplicates),
        skipped: sum(|account| account.skipped),
        has_more: report.accounts.iter().any(|account| account.has_more),
        accounts: report.accounts,
        connection: view(&report.connection, &accounts),
    }))
}
