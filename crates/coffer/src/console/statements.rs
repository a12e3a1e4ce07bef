//! Bringing statements in (`/app/money/statements`): a CSV file imported with its columns
//! named, answered with the per-line report (imported, already there, skipped, and each
//! rejected line with why), and bank connections — linked through the aggregator (the
//! sandbox's institutions, or SimpleFIN with a setup token), listed with their status and
//! accounts, and synced now on request.
//!
//! The import and the link are the API's (`routes::finance::import`,
//! `routes::banks::link`); the upload is `multipart/form-data`, so its CSRF token and
//! origin are checked here rather than by `Posted`.

use askama::Template;
use axum::{
    extract::{Multipart, State},
    http::{HeaderMap, StatusCode},
    response::Response,
};
use serde::Deserialize;
use uuid::Uuid;

use super::{
    Chrome, IdPath, PageError, Problems, form_page, session::Posted, session::Signed, session::cross_site,
};
use crate::{
    finance::import::{Columns, DateFormat},
    http::{
        AppState,
        dates::nanos,
        error::ApiError,
        routes::{
            banks::{BankLogin, NewBankConnection, link},
            finance::{IMPORT_BYTES_MAX, ImportBody, ImportReport, import},
        },
    },
    wallets::money::CURRENCIES,
};

/// A connection as the page lists it.
pub struct ConnectionLine {
    pub id: Uuid,
    pub institution: String,
    pub status: String,
    pub last_synced: String,
    pub last_error: String,
    pub accounts: Vec<String>,
}

/// An institution that can be linked.
pub struct InstitutionLine {
    pub id: String,
    pub name: String,
    pub behaviour: String,
}

#[derive(Template)]
#[template(path = "console/statements.html")]
struct StatementsPage {
    chrome: Chrome,
    csrf: String,
    currency_codes: Vec<&'static str>,
    report: Option<ImportReport>,
    synced: Option<String>,
    connections: Vec<ConnectionLine>,
    institutions: Vec<InstitutionLine>,
    problems: Problems,
    failed: &'static str,
}

/// `GET /app/money/statements`.
pub async fn statements(State(state): State<AppState>, signed: Signed) -> Result<Response, PageError> {
    statements_page(&state, &signed, None, None, Problems::default(), "").await
}

async fn statements_page(
    state: &AppState,
    signed: &Signed,
    report: Option<ImportReport>,
    synced: Option<String>,
    problems: Problems,
    failed: &'static str,
) -> Result<Response, PageError> {
    let connections = state
        .banks
        .connections(signed.customer_id, None, store::BANK_CONNECTIONS_PER_CUSTOMER_MAX)
        .await
        .map_err(ApiError::from)?
        .into_iter()
        .map(|(connection, accounts)| ConnectionLine {
            id: connection.id,
            institution: connection.institution_id,
            status: connection.status,
            last_synced: connection.last_synced_at.map(nanos).unwrap_or_else(|| "never".into()),
            last_error: connection.last_error.unwrap_or_default(),
            accounts: accounts.into_iter().map(|a| format!("{} ({})", a.name, a.currency)).collect(),
        })
        .collect();
    let institutions = state
        .banks
        .institutions()
        .into_iter()
        .map(|i| InstitutionLine {
            id: i.id.to_owned(),
            name: i.name.to_owned(),
            behaviour: i.behaviour.to_owned(),
        })
        .collect();
    let view = StatementsPage {
        chrome: Chrome::new("Statements", "money", Some(signed.csrf())),
        csrf: signed.csrf().to_owned(),
        currency_codes: CURRENCIES.iter().map(|c| c.code()).collect(),
        report,
        synced,
        connections,
        institutions,
        problems,
        failed,
    };
    Ok(form_page(&view, &view.problems))
}

/// `POST /app/money/import` (multipart): a CSV statement and how to read it.
pub async fn import_csv(
    State(state): State<AppState>,
    signed: Signed,
    headers: HeaderMap,
    mut multipart: Multipart,
) -> Result<Response, PageError> {
    if cross_site(&headers) {
        return Err(PageError::Forged);
    }
    let mut fields = std::collections::HashMap::new();
    let mut csv = None;
    while let Some(field) =
        multipart.next_field().await.map_err(|error| PageError::BadForm(error.body_text()))?
    {
        let name = field.name().unwrap_or_default().to_owned();
        let bytes = field.bytes().await.map_err(|error| PageError::BadForm(error.body_text()))?;
        if name == "file" {
            csv = Some(bytes);
        } else if bytes.len() <= 200 {
            fields.insert(name, String::from_utf8_lossy(&bytes).into_owned());
        }
    }
    signed.check(fields.get("csrf").map(String::as_str))?;
    let field = |name: &str| fields.get(name).map(|v| v.trim().to_owned()).unwrap_or_default();
    let optional = |name: &str| Some(field(name)).filter(|v| !v.is_empty());
    let refuse = |problems: Problems| statements_page(&state, &signed, None, None, problems, "import");
    let Some(csv) = csv.filter(|bytes| !bytes.is_empty()) else {
        return refuse(Problems::field("/csv", "choose a CSV file")).await;
    };
    let Ok(csv) = String::from_utf8(csv.to_vec()) else {
        return refuse(Problems::field("/csv", "the file is not UTF-8 text")).await;
    };
    let date_format = match field("date_format").as_str() {
        "day_month_year" => DateFormat::DayMonthYear,
        "month_day_year" => DateFormat::MonthDayYear,
        "day_month_year_dots" => DateFormat::DayMonthYearDots,
        _ => DateFormat::Iso,
    };
    let request = ImportBody {
        csv,
        currency: field("currency"),
        columns: Columns {
            date: field("date_column"),
            amount: field("amount_column"),
            description: optional("description_column"),
            merchant: optional("merchant_column"),
            currency: None,
        },
        date_format,
        decimal: optional("decimal").unwrap_or_else(|| ".".into()),
        delimiter: optional("delimiter").unwrap_or_else(|| ",".into()),
        credits_as_income: field("credits_as_income") == "on",
    };
    match import(&state, signed.customer_id, request).await {
        Ok(report) => statements_page(&state, &signed, Some(report), None, Problems::default(), "").await,
        Err(error) if error.status().is_client_error() => refuse(Problems::of(&error)).await,
        Err(error) => Err(error.into()),
    }
}

/// The most an upload may carry: the API's import limit and room for the form's fields.
pub const UPLOAD_BYTES_MAX: usize = IMPORT_BYTES_MAX + 16 * 1024;

#[derive(Deserialize)]
pub struct LinkForm {
    #[serde(default)]
    institution: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    setup_token: String,
}

/// `POST /app/money/banks`: links an institution.
pub async fn link_bank(
    State(state): State<AppState>,
    signed: Signed,
    posted: Posted<LinkForm>,
) -> Result<Response, PageError> {
    signed.check(posted.csrf.as_deref())?;
    let form = posted.form;
    let credentials = (!form.username.is_empty() || !form.password.is_empty())
        .then_some(BankLogin { username: form.username, password: form.password });
    let setup_token = Some(form.setup_token.trim().to_owned()).filter(|token| !token.is_empty());
    let request = NewBankConnection { institution_id: form.institution, credentials, setup_token };
    match link(&state, signed.customer_id, request).await {
        Ok((connection, _)) => {
            let synced =
                format!("Linked {}: its transactions arrive with the first sync.", connection.institution_id);
            statements_page(&state, &signed, None, Some(synced), Problems::default(), "").await
        }
        Err(error) if error.status().is_client_error() => {
            statements_page(&state, &signed, None, None, Problems::of(&error), "link").await
        }
        Err(error) => Err(error.into()),
    }
}

/// `POST /app/money/banks/{id}/sync`: syncs one connection now.
pub async fn sync_bank(
    State(state): State<AppState>,
    signed: Signed,
    IdPath(id): IdPath,
    posted: Posted<super::Empty>,
) -> Result<Response, PageError> {
    signed.check(posted.csrf.as_deref())?;
    match state.banks.sync_now(signed.customer_id, id).await.map_err(ApiError::from) {
        Ok(report) => {
            let added: usize = report.accounts.iter().map(|a| a.added).sum();
            let duplicates: usize = report.accounts.iter().map(|a| a.duplicates).sum();
            let synced = format!("Synced: {added} new transactions, {duplicates} already here.");
            statements_page(&state, &signed, None, Some(synced), Problems::default(), "").await
        }
        Err(error) if error.status().is_client_error() && error.status() != StatusCode::NOT_FOUND => {
            statements_page(&state, &signed, None, None, Problems::of(&error), "sync").await
        }
        Err(error) => Err(error.into()),
    }
}
