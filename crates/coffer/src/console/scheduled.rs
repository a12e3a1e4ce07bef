//! Scheduled payments (`/app/scheduled`): the customer's schedules with their next run and
//! status, paused, resumed or cancelled with a button, and a form for a new one (to an
//! email address or a wallet id, once, weekly or monthly, from a day). The checks are the
//! API's (`routes::schedules::planned`) and the schedules service's.

use askama::Template;
use axum::{
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Redirect, Response},
};
use serde::Deserialize;
use uuid::Uuid;

use super::{
    Chrome, IdPath, PageError, Problems, customer::WalletLine, form_page, session::Posted, session::Signed,
};
use crate::{
    finance::schedules::{Frequency, ScheduleChange},
    http::{
        AppState,
        dates::nanos,
        error::ApiError,
        routes::schedules::{NewSchedule, planned},
    },
    wallets::{Currency, money::shown},
};

/// A schedule as the page lists it.
pub struct ScheduleLine {
    pub id: Uuid,
    pub to: String,
    pub amount: String,
    pub frequency: &'static str,
    pub next: String,
    pub status: &'static str,
    pub description: String,
}

#[derive(Template)]
#[template(path = "console/scheduled.html")]
struct ScheduledPage {
    chrome: Chrome,
    csrf: String,
    schedules: Vec<ScheduleLine>,
    wallets: Vec<WalletLine>,
    problems: Problems,
    form: ScheduleForm,
    done: Option<&'static str>,
}

#[derive(Deserialize, Default)]
pub struct ScheduledQuery {
    done: Option<String>,
}

/// `GET /app/scheduled`.
pub async fn scheduled(
    State(state): State<AppState>,
    signed: Signed,
    axum::extract::Query(query): axum::extract::Query<ScheduledQuery>,
) -> Result<Response, PageError> {
    let done = match query.done.as_deref() {
        Some("created") => Some("Scheduled."),
        Some("changed") => Some("Schedule changed."),
        Some("cancelled") => Some("Schedule cancelled."),
        _ => None,
    };
    scheduled_page(&state, &signed, ScheduleForm::default(), Problems::default(), done).await
}

async fn scheduled_page(
    state: &AppState,
    signed: &Signed,
    form: ScheduleForm,
    problems: Problems,
    done: Option<&'static str>,
) -> Result<Response, PageError> {
    let wallets = state
        .wallets
        .list(signed.customer_id, None, store::WALLETS_PER_CUSTOMER_MAX as u32)
        .await
        .map_err(ApiError::from)?;
    let schedules = state
        .schedules
        .list(signed.customer_id)
        .await
        .map_err(ApiError::from)?
        .into_iter()
        .map(|row| ScheduleLine {
            id: row.id,
            to: match (&row.biller, row.to_wallet_id) {
                (Some(biller), _) => biller.clone(),
                (None, Some(wallet)) => format!("wallet {wallet}"),
                (None, None) => "a customer".to_owned(),
            },
            amount: shown(row.amount, &row.currency),
            frequency: row.frequency.as_str(),
            next: nanos(row.next_run_at).chars().take(16).collect::<String>().replace('T', " "),
            status: row.status.as_str(),
            description: row.description.unwrap_or_default(),
        })
        .collect();
    let view = ScheduledPage {
        chrome: Chrome::new("Scheduled payments", "scheduled", Some(signed.csrf())),
        csrf: signed.csrf().to_owned(),
        schedules,
        wallets: wallets.iter().map(WalletLine::of).collect(),
        problems,
        form,
        done,
    };
    Ok(form_page(&view, &view.problems))
}

/// The new-schedule form as typed.
#[derive(Deserialize, Default, Clone)]
pub struct ScheduleForm {
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    amount: String,
    #[serde(default)]
    frequency: String,
    #[serde(default)]
    start: String,
    #[serde(default)]
    description: String,
}

/// `POST /app/scheduled`.
pub async fn create(
    State(state): State<AppState>,
    signed: Signed,
    posted: Posted<ScheduleForm>,
) -> Result<Response, PageError> {
    signed.check(posted.csrf.as_deref())?;
    let form = posted.form;
    let refuse = |problems: Problems| scheduled_page(&state, &signed, form.clone(), problems, None);
    let Ok(from) = Uuid::parse_str(form.from.trim()) else {
        return refuse(Problems::field("/from_wallet_id", "choose a wallet")).await;
    };
    let wallet = match state.wallets.owned(signed.customer_id, from).await {
        Ok(wallet) => wallet,
        Err(error) => return refuse(Problems::of(&ApiError::from(error))).await,
    };
    let amount =
        Currency::parse(&wallet.currency).and_then(|c| c.parse_major(&form.amount)).filter(|a| *a > 0);
    let Some(amount) = amount else {
        return refuse(Problems::field("/amount", format!("an amount in {} above zero", wallet.currency)))
            .await;
    };
    let frequency = match form.frequency.as_str() {
        "weekly" => Frequency::Weekly,
        "monthly" => Frequency::Monthly,
        _ => Frequency::Once,
    };
    let to = form.to.trim();
    let (to_wallet_id, to_email) = match Uuid::parse_str(to) {
        Ok(wallet) => (Some(wallet), None),
        Err(_) => (None, Some(to.to_owned())),
    };
    let start = form.start.trim();
    let start_at =
        if start.is_empty() { crate::rfc3339(store::now_ns()) } else { format!("{start}T09:00:00Z") };
    let request = NewSchedule {
        from_wallet_id: from,
        to_wallet_id,
        to_email,
        biller: None,
        amount,
        description: Some(form.description.trim().to_owned()).filter(|text| !text.is_empty()),
        frequency,
        start_at,
        end_at: None,
    };
    let created = match planned(request) {
        Ok(plan) => state.schedules.create(signed.customer_id, plan).await.map_err(ApiError::from),
        Err(error) => Err(error),
    };
    match created {
        Ok(_) => Ok(Redirect::to("/app/scheduled?done=created").into_response()),
        Err(error) if error.status().is_client_error() => refuse(Problems::of(&error)).await,
        Err(error) => Err(error.into()),
    }
}

#[derive(Deserialize)]
pub struct ChangeForm {
    #[serde(default)]
    action: String,
}

/// `POST /app/scheduled/{id}`: `pause`, `resume` or `cancel`.
pub async fn change(
    State(state): State<AppState>,
    signed: Signed,
    IdPath(id): IdPath,
    posted: Posted<ChangeForm>,
) -> Result<Response, PageError> {
    signed.check(posted.csrf.as_deref())?;
    let schedules = &state.schedules;
    let outcome = match posted.form.action.as_str() {
        "pause" | "resume" => {
            let change =
                ScheduleChange { active: Some(posted.form.action == "resume"), ..ScheduleChange::default() };
            schedules.change(signed.customer_id, id, change).await.map(|_| "changed")
        }
        "cancel" => schedules.cancel(signed.customer_id, id).await.map(|()| "cancelled"),
        _ => return Err(PageError::BadForm("action must be pause, resume or cancel".into())),
    };
    match outcome.map_err(ApiError::from) {
        Ok(done) => Ok(Redirect::to(&format!("/app/scheduled?done={done}")).into_response()),
        Err(error) if error.status().is_client_error() && error.status() != StatusCode::NOT_FOUND => {
            scheduled_page(&state, &signed, ScheduleForm::default(), Problems::of(&error), None).await
        }
        Err(error) => Err(error.into()),
    }
}
