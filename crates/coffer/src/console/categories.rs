//! Categories and rules (`/app/money/categories`): the category tree with rename and
//! delete, a new category (top level or under one), the rules that categorise expenses
//! (those learned from corrections too) with delete, and a new rule "merchant contains …
//! → category". The checks and effects are the finance service's, through the API's
//! parsing (`routes::finance`).

use std::collections::HashMap;

use askama::Template;
use axum::{
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Redirect, Response},
};
use serde::Deserialize;
use uuid::Uuid;

use super::{Chrome, IdPath, PageError, Problems, form_page, session::Posted, session::Signed};
use crate::{
    finance::categorize::{Actions, Trigger},
    http::{
        AppState,
        error::ApiError,
        routes::finance::{NAME_LEN_MAX, RuleBody, rule_spec, rule_view},
        validate,
    },
    wallets::money::shown,
};

/// A category as the page lists it.
pub struct CategoryLine {
    pub id: Uuid,
    pub name: String,
    pub child: bool,
    pub system: bool,
}

/// A rule as the page lists it.
pub struct RuleLine {
    pub id: Uuid,
    pub name: String,
    pub when: String,
    pub category: String,
}

#[derive(Template)]
#[template(path = "console/categories.html")]
struct CategoriesPage {
    chrome: Chrome,
    csrf: String,
    categories: Vec<CategoryLine>,
    parents: Vec<CategoryLine>,
    rules: Vec<RuleLine>,
    problems: Problems,
    done: Option<&'static str>,
}

#[derive(Deserialize, Default)]
pub struct DoneQuery {
    done: Option<String>,
}

/// `GET /app/money/categories`.
pub async fn categories(
    State(state): State<AppState>,
    signed: Signed,
    axum::extract::Query(query): axum::extract::Query<DoneQuery>,
) -> Result<Response, PageError> {
    let done = match query.done.as_deref() {
        Some("category") => Some("Category saved."),
        Some("deleted") => Some("Deleted."),
        Some("rule") => Some("Rule saved: new expenses that match it get its category."),
        _ => None,
    };
    categories_page(&state, &signed, Problems::default(), done).await
}

async fn categories_page(
    state: &AppState,
    signed: &Signed,
    problems: Problems,
    done: Option<&'static str>,
) -> Result<Response, PageError> {
    let rows = state.finance.categories(signed.customer_id).await.map_err(ApiError::from)?;
    let names: HashMap<Uuid, &str> = rows.iter().map(|c| (c.id, c.name.as_str())).collect();
    // Parents first, each followed by its children.
    let mut categories = Vec::new();
    for parent in rows.iter().filter(|c| c.parent_id.is_none()) {
        categories.push(CategoryLine {
            id: parent.id,
            name: parent.name.clone(),
            child: false,
            system: parent.system,
        });
        for child in rows.iter().filter(|c| c.parent_id == Some(parent.id)) {
            categories.push(CategoryLine {
                id: child.id,
                name: child.name.clone(),
                child: true,
                system: child.system,
            });
        }
    }
    let parents = rows
        .iter()
        .filter(|c| c.parent_id.is_none() && !c.system)
        .map(|c| CategoryLine { id: c.id, name: c.name.clone(), child: false, system: false })
        .collect();
    let rules = state
        .finance
        .rules(signed.customer_id)
        .await
        .map_err(ApiError::from)?
        .iter()
        .map(rule_view)
        .map(|rule| RuleLine {
            id: rule.id,
            when: rule.triggers.iter().map(describe).collect::<Vec<_>>().join(if rule.strict {
                " and "
            } else {
                " or "
            }),
            category: names.get(&rule.actions.category_id).copied().unwrap_or("?").to_owned(),
            name: rule.name,
        })
        .collect();
    let view = CategoriesPage {
        chrome: Chrome::new("Categories and rules", "money", Some(signed.csrf())),
        csrf: signed.csrf().to_owned(),
        categories,
        parents,
        rules,
        problems,
        done,
    };
    Ok(form_page(&view, &view.problems))
}

/// A trigger in words.
fn describe(trigger: &Trigger) -> String {
    match trigger {
        Trigger::DescriptionContains { value } => format!("description contains “{value}”"),
        Trigger::MerchantContains { value } => format!("merchant contains “{value}”"),
        Trigger::MerchantIs { value } => format!("merchant is “{value}”"),
        Trigger::MccIs { value } => format!("merchant code is {value}"),
        Trigger::AmountBetween { min, max } => {
            let bound = |value: &Option<i64>| value.map_or("any".to_owned(), |v| shown(v, ""));
            format!("amount between {} and {} (minor units)", bound(min), bound(max))
        }
    }
}

#[derive(Deserialize)]
pub struct CategoryForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    parent: String,
}

/// `POST /app/money/categories`: a new category.
pub async fn create_category(
    State(state): State<AppState>,
    signed: Signed,
    posted: Posted<CategoryForm>,
) -> Result<Response, PageError> {
    signed.check(posted.csrf.as_deref())?;
    let form = posted.form;
    let parent = Uuid::parse_str(form.parent.trim()).ok();
    let created = match validate::name("/name", &form.name, NAME_LEN_MAX) {
        Ok(name) => {
            state.finance.create_category(signed.customer_id, name, parent).await.map_err(ApiError::from)
        }
        Err(error) => Err(error),
    };
    settle(&state, &signed, created.map(|_| "category")).await
}

/// `POST /app/money/categories/{id}`: renamed (`name`), or deleted (`delete`).
pub async fn change_category(
    State(state): State<AppState>,
    signed: Signed,
    IdPath(id): IdPath,
    posted: Posted<CategoryChangeForm>,
) -> Result<Response, PageError> {
    signed.check(posted.csrf.as_deref())?;
    let form = posted.form;
    let outcome = if form.delete.is_some() {
        state
            .finance
            .delete_category(signed.customer_id, id)
            .await
            .map(|()| "deleted")
            .map_err(ApiError::from)
    } else {
        match validate::name("/name", &form.name, NAME_LEN_MAX) {
            Ok(name) => state
                .finance
                .update_category(signed.customer_id, id, Some(name), None)
                .await
                .map(|_| "category")
                .map_err(ApiError::from),
            Err(error) => Err(error),
        }
    };
    settle(&state, &signed, outcome).await
}

#[derive(Deserialize)]
pub struct CategoryChangeForm {
    #[serde(default)]
    name: String,
    delete: Option<String>,
}

#[derive(Deserialize)]
pub struct RuleForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    merchant: String,
    #[serde(default)]
    category: String,
}

/// `POST /app/money/rules`: "merchant contains … → category".
pub async fn create_rule(
    State(state): State<AppState>,
    signed: Signed,
    posted: Posted<RuleForm>,
) -> Result<Response, PageError> {
    signed.check(posted.csrf.as_deref())?;
    let form = posted.form;
    let Ok(category_id) = Uuid::parse_str(form.category.trim()) else {
        return settle(&state, &signed, Err(ApiError::field("/actions/category_id", "choose a category")))
            .await;
    };
    let body = RuleBody {
        name: form.name,
        position: 0,
        strict: false,
        triggers: vec![Trigger::MerchantContains { value: form.merchant.trim().to_owned() }],
        actions: Actions { category_id, tags: Vec::new() },
    };
    let saved = match rule_spec(body) {
        Ok(spec) => {
            state.finance.save_rule(signed.customer_id, Uuid::now_v7(), spec).await.map_err(ApiError::from)
        }
        Err(error) => Err(error),
    };
    settle(&state, &signed, saved.map(|_| "rule")).await
}

/// `POST /app/money/rules/{id}/delete`.
pub async fn delete_rule(
    State(state): State<AppState>,
    signed: Signed,
    IdPath(id): IdPath,
    posted: Posted<super::Empty>,
) -> Result<Response, PageError> {
    signed.check(posted.csrf.as_deref())?;
    let deleted = state.finance.delete_rule(signed.customer_id, id).await.map_err(ApiError::from);
    settle(&state, &signed, deleted.map(|()| "deleted")).await
}

/// Back to the page: with what was done, or with why not (someone else's or no such
/// category or rule is the 404 page).
async fn settle(
    state: &AppState,
    signed: &Signed,
    outcome: Result<&str, ApiError>,
) -> Result<Response, PageError> {
    match outcome {
        Ok(done) => Ok(Redirect::to(&format!("/app/money/categories?done={done}")).into_response()),
        Err(error) if error.status().is_client_error() && error.status() != StatusCode::NOT_FOUND => {
            categories_page(state, signed, Problems::of(&error), None).await
        }
        Err(error) => Err(error.into()),
    }
}
