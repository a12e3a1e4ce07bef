//! Signing in and out, registering, and the account page: the password change and the
//! list of live sessions, each of which can be ended.

use askama::Template;
use axum::{
    extract::State,
    http::header,
    response::{IntoResponse, Redirect, Response},
};
use serde::Deserialize;
use uuid::Uuid;

use super::{
    Chrome, PageError, Problems, page,
    session::{self, Posted, SESSION_COOKIE, SESSION_LIFETIME, Signed, Visitor},
};
use crate::{
    http::{
        AppState, caller::ClientAddress, dates::rfc3339, error::ApiError, extract::Path,
        routes::auth::registration,
    },
    identity::{IdentityError, password::NewPassword},
};

#[derive(Template)]
#[template(path = "console/sign_in.html")]
struct SignInPage {
    chrome: Chrome,
    csrf: String,
    email: String,
    problems: Problems,
}

#[derive(Deserialize)]
pub struct SignInForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
}

/// `GET /app/sign-in`.
pub async fn sign_in_page(State(state): State<AppState>, visitor: Visitor) -> Response {
    let body = page(&SignInPage {
        chrome: Chrome::new("Sign in", "sign-in", None),
        csrf: visitor.csrf(),
        email: String::new(),
        problems: Problems::default(),
    });
    with_cookie(body, visitor.set_cookie(state.secure_cookies))
}

/// `POST /app/sign-in`: a new session (any session this browser had is ended first).
pub async fn sign_in(
    State(state): State<AppState>,
    visitor: Visitor,
    ClientAddress(address): ClientAddress,
    headers: axum::http::HeaderMap,
    posted: Posted<SignInForm>,
) -> Result<Response, PageError> {
    visitor.check(posted.csrf.as_deref())?;
    let SignInForm { email, password } = posted.form;
    match state.identity.sign_in(&email, password, address, SESSION_LIFETIME).await {
        Ok(token) => {
            if let Some(old) = session::cookie(&headers, SESSION_COOKIE) {
                state.identity.logout(old).await.map_err(ApiError::from)?;
            }
            let cookie =
                session::set_cookie(SESSION_COOKIE, &token, Some(SESSION_LIFETIME), state.secure_cookies);
            Ok(with_cookie(Redirect::to("/app").into_response(), Some(cookie)))
        }
        Err(IdentityError::InvalidCredentials) => Ok(page(&SignInPage {
            chrome: Chrome::new("Sign in", "sign-in", None),
            csrf: visitor.csrf(),
            email,
            problems: Problems::general("That email and password do not match an account."),
        })),
        Err(IdentityError::Throttled { retry_after_seconds }) => Ok(page(&SignInPage {
            chrome: Chrome::new("Sign in", "sign-in", None),
            csrf: visitor.csrf(),
            email,
            problems: Problems::general(format!(
                "Too many sign-in attempts. Try again in {retry_after_seconds} seconds."
            )),
        })),
        Err(error) => Err(ApiError::from(error).into()),
    }
}

#[derive(Template)]
#[template(path = "console/register.html")]
struct RegisterPage {
    chrome: Chrome,
    csrf: String,
    email: String,
    name: String,
    problems: Problems,
}

#[derive(Deserialize)]
pub struct RegisterForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    password: String,
}

/// `GET /app/register`.
pub async fn register_page(State(state): State<AppState>, visitor: Visitor) -> Response {
    let body = page(&RegisterPage {
        chrome: Chrome::new("Create an account", "register", None),
        csrf: visitor.csrf(),
        email: String::new(),
        name: String::new(),
        problems: Problems::default(),
    });
    with_cookie(body, visitor.set_cookie(state.secure_cookies))
}

/// `POST /app/register`: the API's registration, then signed in.
pub async fn register(
    State(state): State<AppState>,
    visitor: Visitor,
    ClientAddress(address): ClientAddress,
    posted: Posted<RegisterForm>,
) -> Result<Response, PageError> {
    visitor.check(posted.csrf.as_deref())?;
    let RegisterForm { email, name, password } = posted.form;
    let registered = match registration(&email, password.clone(), &name) {
        Ok((parsed_email, new_password, parsed_name)) => {
            state.identity.register(parsed_email, new_password, parsed_name).await.map_err(ApiError::from)
        }
        Err(error) => Err(error),
    };
    let customer = match registered {
        Ok(customer) => customer,
        Err(error) if error.status().is_client_error() => {
            return Ok(page(&RegisterPage {
                chrome: Chrome::new("Create an account", "register", None),
                csrf: visitor.csrf(),
                email,
                name,
                problems: Problems::of(&error),
            }));
        }
        Err(error) => return Err(error.into()),
    };
    let token = state
        .identity
        .sign_in(&customer.email, password, address, SESSION_LIFETIME)
        .await
        .map_err(ApiError::from)?;
    let cookie = session::set_cookie(SESSION_COOKIE, &token, Some(SESSION_LIFETIME), state.secure_cookies);
    Ok(with_cookie(Redirect::to("/app").into_response(), Some(cookie)))
}

/// `POST /app/sign-out`: ends this session, here and on the server.
pub async fn sign_out(
    State(state): State<AppState>,
    signed: Signed,
    headers: axum::http::HeaderMap,
    posted: Posted<super::Empty>,
) -> Result<Response, PageError> {
    signed.check(posted.csrf.as_deref())?;
    if let Some(token) = session::cookie(&headers, SESSION_COOKIE) {
        state.identity.logout(token).await.map_err(ApiError::from)?;
    }
    let cleared = session::clear_session(state.secure_cookies);
    Ok(with_cookie(Redirect::to("/app/sign-in").into_response(), Some(cleared)))
}

/// A live session as the account page lists it.
struct SessionLine {
    id: Uuid,
    started_at: String,
    expires_at: String,
    this_one: bool,
}

#[derive(Template)]
#[template(path = "console/account.html")]
struct AccountPage {
    chrome: Chrome,
    csrf: String,
    name: String,
    email: String,
    sessions: Vec<SessionLine>,
    problems: Problems,
    done: Option<&'static str>,
}

#[derive(Deserialize, Default)]
pub struct AccountQuery {
    done: Option<String>,
}

/// `GET /app/account`: the password form and the session list.
pub async fn account(
    State(state): State<AppState>,
    signed: Signed,
    axum::extract::Query(query): axum::extract::Query<AccountQuery>,
) -> Result<Response, PageError> {
    let done = match query.done.as_deref() {
        Some("password") => Some("Your password is changed. Every other session has been signed out."),
        Some("session") => Some("That session is signed out."),
        _ => None,
    };
    account_page(&state, &signed, Problems::default(), done).await
}

async fn account_page(
    state: &AppState,
    signed: &Signed,
    problems: Problems,
    done: Option<&'static str>,
) -> Result<Response, PageError> {
    let customer = state.identity.customer(signed.customer_id).await.map_err(ApiError::from)?;
    let sessions = state.identity.sessions(signed.customer_id).await.map_err(ApiError::from)?;
    let sessions = sessions
        .into_iter()
        .map(|row| SessionLine {
            id: row.family_id,
            started_at: when(row.started_at),
            expires_at: when(row.expires_at),
            this_one: row.family_id == signed.family_id,
        })
        .collect();
    Ok(page(&AccountPage {
        chrome: Chrome::new("Account", "account", Some(signed.csrf())),
        csrf: signed.csrf().to_owned(),
        name: customer.name,
        email: customer.email,
        sessions,
        problems,
        done,
    }))
}

fn when(time: time::OffsetDateTime) -> String {
    let nanos = u64::try_from(time.unix_timestamp_nanos()).unwrap_or(0);
    rfc3339(nanos).replace('T', " ").chars().take(16).collect::<String>() + " UTC"
}

#[derive(Deserialize)]
pub struct PasswordForm {
    #[serde(default)]
    current: String,
    #[serde(default)]
    new: String,
}

/// `POST /app/account/password`: the current password, then the new one; every other
/// session ends.
pub async fn change_password(
    State(state): State<AppState>,
    signed: Signed,
    posted: Posted<PasswordForm>,
) -> Result<Response, PageError> {
    signed.check(posted.csrf.as_deref())?;
    let PasswordForm { current, new } = posted.form;
    let new = match NewPassword::parse(new) {
        Ok(new) => new,
        Err(error) => {
            return account_page(&state, &signed, Problems::field("/new", error.to_string()), None).await;
        }
    };
    match state.identity.change_password(signed.customer_id, current, new, Some(signed.family_id)).await {
        Ok(()) => Ok(Redirect::to("/app/account?done=password").into_response()),
        Err(IdentityError::InvalidCredentials) => {
            account_page(
                &state,
                &signed,
                Problems::field("/current", "That is not your current password."),
                None,
            )
            .await
        }
        Err(IdentityError::Throttled { retry_after_seconds }) => {
            let message = format!("Too many attempts. Try again in {retry_after_seconds} seconds.");
            account_page(&state, &signed, Problems::field("/current", message), None).await
        }
        Err(error) => Err(ApiError::from(error).into()),
    }
}

/// `POST /app/account/sessions/{id}/end`: signs one session out (this one too, if asked:
/// then to the sign-in page).
pub async fn end_session(
    State(state): State<AppState>,
    signed: Signed,
    Path(id): Path<Uuid>,
    posted: Posted<super::Empty>,
) -> Result<Response, PageError> {
    signed.check(posted.csrf.as_deref())?;
    state.identity.end_session(signed.customer_id, id).await.map_err(ApiError::from)?;
    if id == signed.family_id {
        let cleared = session::clear_session(state.secure_cookies);
        return Ok(with_cookie(Redirect::to("/app/sign-in").into_response(), Some(cleared)));
    }
    Ok(Redirect::to("/app/account?done=session").into_response())
}

/// `response` with a `Set-Cookie`, when there is one to set.
fn with_cookie(mut response: Response, cookie: Option<axum::http::HeaderValue>) -> Response {
    if let Some(cookie) = cookie {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    response
}
