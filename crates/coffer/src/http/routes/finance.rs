//! Personal finance over HTTP: categories, expenses (with automatic categorisation),
//! rules, and payments from a wallet to a merchant, which record their expense.
//!
//! Every route is the caller's own (someone else's ids answer 404). Amounts are minor
//! units of the expense's currency; times are RFC 3339.

use axum::{
    Extension, Router,
    extract::{DefaultBodyLimit, State},
    http::StatusCode,
    response::Response,
    routing::{get, patch, post},
};
use serde::{Deserialize, Deserializer, Serialize};
use store::{CategoryRow, ExpenseFilter, ExpenseRow, RuleRow};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::finance::categorize::{Actions, Trigger};
use crate::finance::import::{self, Columns, DateFormat, Format as ImportFormat};
use crate::finance::{ExpensePatch, FinanceError, NewExpense, RuleSpec};
use crate::http::caller::AuthUser;
use crate::http::{
    AppState,
    dates::{instant, nanos},
    error::ApiError,
    extract::{BodyLimit, Json, Path, Query, RawJson},
    idempotency::{self, IdempotencyKeyHeader},
    paging::{self, Page},
    validate,
};
use crate::wallets::{Currency, derive_id};

/// Characters of a name, merchant or tag at most; of a description or notes.
pub(crate) const NAME_LEN_MAX: usize = 100;
pub(crate) const TEXT_LEN_MAX: usize = 500;
/// Tags per expense at most.
const TAGS_MAX: usize = 20;
/// Expenses a rule is applied to at most per call.
const APPLY_MAX: usize = 10_000;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/categories", get(list_categories).post(create_category))
        .route("/v1/categories/{id}", patch(update_category).delete(delete_category))
        .route("/v1/expenses", get(list_expenses).post(create_expense))
        .route("/v1/expenses/{id}", get(get_expense).patch(update_expense).delete(delete_expense))
        .route("/v1/rules", get(list_rules).post(create_rule))
        .route("/v1/rules/{id}", get(get_rule).patch(update_rule).delete(delete_rule))
        .route("/v1/rules/{id}/apply", post(apply_rule))
        .route("/v1/wallets/{id}/payments", post(pay_merchant))
        .route(
            "/v1/imports",
            post(import_statement)
                .layer((DefaultBodyLimit::max(IMPORT_BYTES_MAX), Extension(BodyLimit(IMPORT_BYTES_MAX)))),
        )
}

/// Bytes an import request may carry at most.
pub(crate) const IMPORT_BYTES_MAX: usize = 2 * 1024 * 1024;

/// A bank statement to import.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportBody {
    /// The CSV file's text, with a header line.
    pub csv: String,
    /// The lines' currency (unless a currency column is mapped).
    pub currency: String,
    pub columns: Columns,
    #[serde(default = "default_date_format")]
    pub date_format: DateFormat,
    /// `.` (default) or `,`.
    #[serde(default = "default_decimal")]
    pub decimal: String,
    /// `,` (default) or `;`.
    #[serde(default = "default_delimiter")]
    pub delimiter: String,
    /// Money in becomes income (default); false skips it.
    #[serde(default = "default_true")]
    pub credits_as_income: bool,
}

pub(super) fn default_date_format() -> DateFormat {
    DateFormat::Iso
}
pub(super) fn default_decimal() -> String {
    ".".into()
}
pub(super) fn default_delimiter() -> String {
    ",".into()
}
fn default_true() -> bool {
    true
}

/// A line that was not imported, and why.
#[derive(Debug, Serialize, ToSchema)]
pub struct RejectedLine {
    /// 1-based, the header being line 1.
    pub line: usize,
    pub reason: String,
}

/// What an import did.
#[derive(Debug, Serialize, ToSchema)]
pub struct ImportReport {
    pub imported: usize,
    /// Lines imported before (the same statement, or an overlapping one).
    pub duplicates: usize,
    /// Money-in lines skipped (`credits_as_income: false`).
    pub skipped: usize,
    pub rejected: Vec<RejectedLine>,
}

/// Imports a CSV bank statement: categorised expenses, duplicates detected by a hash of
/// each line, so re-importing the same file adds nothing.
#[utoipa::path(post, path = "/v1/imports", tag = "finance", request_body = ImportBody, security(("access_token" = [])),
    responses((status = 200, body = ImportReport)))]
async fn import_statement(
    user: AuthUser,
    State(state): State<AppState>,
    Json(request): Json<ImportBody>,
) -> Result<axum::Json<ImportReport>, ApiError> {
    Ok(axum::Json(import(&state, user.customer_id, request).await?))
}

/// Parses a statement and records its lines (the API's import and the web console's).
pub(crate) async fn import(
    state: &AppState,
    customer_id: Uuid,
    request: ImportBody,
) -> Result<ImportReport, ApiError> {
    let currency = Currency::parse(&request.currency)
        .ok_or_else(|| ApiError::field("/currency", "not a supported currency"))?;
    let (decimal, delimiter) = validate::csv_marks(&request.decimal, &request.delimiter)?;
    let format = ImportFormat {
        columns: request.columns,
        date_format: request.date_format,
        decimal,
        delimiter,
        currency,
    };
    let (lines, rejected) = import::parse(&request.csv, &format).map_err(|reason| {
        ApiError::rejected(StatusCode::UNPROCESSABLE_ENTITY, "import_unreadable", reason)
    })?;
    let (imported, duplicates, skipped) =
        state.finance.record_lines(customer_id, "import", &lines, request.credits_as_income).await?;
    Ok(ImportReport {
        imported,
        duplicates,
        skipped,
        rejected: rejected.into_iter().map(|r| RejectedLine { line: r.line, reason: r.reason }).collect(),
    })
}

impl From<FinanceError> for ApiError {
    fn from(error: FinanceError) -> Self {
        match error {
            FinanceError::NotFound(what) => {
                let code = match what {
                    "expense" => "expense_not_found",
                    "rule" => "rule_not_found",
                    "budget" => "budget_not_found",
                    _ => "category_not_found",
                };
                ApiError::NotFound { code, detail: format!("no such {what}") }
            }
            FinanceError::NameTaken => ApiError::rejected(
                StatusCode::CONFLICT,
                "category_name_taken",
                "you have a category with this name",
            ),
            FinanceError::BudgetExists => {
                ApiError::rejected(StatusCode::CONFLICT, "budget_exists", error.to_string())
            }
            FinanceError::Invalid(detail) => {
                ApiError::rejected(StatusCode::UNPROCESSABLE_ENTITY, "invalid_category", detail)
            }
            FinanceError::TooMany(what) => {
                ApiError::rejected(StatusCode::UNPROCESSABLE_ENTITY, "too_many", format!("too many {what}"))
            }
            FinanceError::Store(error) => error.into(),
        }
    }
}

/// A field that may be absent (unchanged) or a value, but not null.
fn present<'de, D>(deserializer: D) -> Result<Option<String>, D::Error>
where
    D: Deserializer<'de>,
{
    String::deserialize(deserializer).map(Some)
}

/// A field that may be absent (unchanged), null (cleared) or a value.
fn nullable<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

fn tags(field: &str, tags: Vec<String>) -> Result<Vec<String>, ApiError> {
    if tags.len() > TAGS_MAX {
        return Err(ApiError::field(field, format!("at most {TAGS_MAX} tags")));
    }
    let mut out: Vec<String> = Vec::new();
    for (index, tag) in tags.into_iter().enumerate() {
        let tag = validate::name(&format!("{field}/{index}"), &tag, NAME_LEN_MAX)?;
        if tag.contains(',') {
            return Err(ApiError::field(format!("{field}/{index}"), "no commas"));
        }
        if !out.contains(&tag) {
            out.push(tag);
        }
    }
    Ok(out)
}

// A page of expenses is what the store reads at most.
const _: () = assert!(paging::PAGE_LIMIT_MAX <= store::EXPENSES_PAGE_MAX);

/// A category.
#[derive(Debug, Serialize, ToSchema)]
pub struct Category {
    pub id: Uuid,
    pub name: String,
    pub parent_id: Option<Uuid>,
    /// Uncategorised: cannot be renamed or deleted.
    pub system: bool,
}

fn category_view(row: &CategoryRow) -> Category {
    Category { id: row.id, name: row.name.clone(), parent_id: row.parent_id, system: row.system }
}

/// My categories (the default tree on first use), parents before children.
#[utoipa::path(get, path = "/v1/categories", tag = "finance", security(("access_token" = [])),
    responses((status = 200, body = Vec<Category>)))]
async fn list_categories(
    user: AuthUser,
    State(state): State<AppState>,
) -> Result<axum::Json<Vec<Category>>, ApiError> {
    let rows = state.finance.categories(user.customer_id).await?;
    Ok(axum::Json(rows.iter().map(category_view).collect()))
}

/// A new category.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCategory {
    pub name: String,
    /// A top-level category to nest under (two levels at most).
    pub parent_id: Option<Uuid>,
}

/// Creates a category (names are unique per customer).
#[utoipa::path(post, path = "/v1/categories", tag = "finance", request_body = NewCategory, security(("access_token" = [])),
    responses(
        (status = 201, body = Category),
        (status = 404, description = "category_not_found: no such parent", body = crate::http::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "category_name_taken", body = crate::http::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "too_many categories, or invalid fields", body = crate::http::error::Problem, content_type = "application/problem+json"),
    ))]
async fn create_category(
    user: AuthUser,
    State(state): State<AppState>,
    Json(request): Json<NewCategory>,
) -> Result<(StatusCode, axum::Json<Category>), ApiError> {
    let name = validate::name("/name", &request.name, NAME_LEN_MAX)?;
    let row = state.finance.create_category(user.customer_id, name, request.parent_id).await?;
    Ok((StatusCode::CREATED, axum::Json(category_view(&row))))
}

/// Changes to a category.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CategoryPatch {
    /// A new name (absent: unchanged; null is refused).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = String)]
    pub name: Option<String>,
    /// null moves it to the top level.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<Uuid>)]
    pub parent_id: Option<Option<Uuid>>,
}

/// Renames or moves a category.
#[utoipa::path(patch, path = "/v1/categories/{id}", tag = "finance", params(("id" = Uuid, Path)),
    request_body = CategoryPatch, security(("access_token" = [])),
    responses(
        (status = 200, body = Category),
        (status = 409, description = "category_name_taken", body = crate::http::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "invalid_category: Uncategorised cannot be changed; or invalid fields", body = crate::http::error::Problem, content_type = "application/problem+json"),
    ))]
async fn update_category(
    user: AuthUser,
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    Json(request): Json<CategoryPatch>,
) -> Result<axum::Json<Category>, ApiError> {
    let name = request.name.map(|value| validate::name("/name", &value, NAME_LEN_MAX)).transpose()?;
    let row = state.finance.update_category(user.customer_id, id, name, request.parent_id).await?;
    Ok(axum::Json(category_view(&row)))
}

/// Deletes a category and its children; their expenses move to Uncategorised.
#[utoipa::path(delete, path = "/v1/categories/{id}", tag = "finance", params(("id" = Uuid, Path)),
    security(("access_token" = [])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 422, description = "invalid_category: Uncategorised cannot be deleted", body = crate::http::error::Problem, content_type = "application/problem+json"),
    ))]
async fn delete_category(
    user: AuthUser,
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> Result<StatusCode, ApiError> {
    state.finance.delete_category(user.customer_id, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// An expense.
#[derive(Debug, Serialize, ToSchema)]
pub struct Expense {
    pub id: Uuid,
    /// Minor units.
    pub amount: i64,
    pub currency: String,
    pub description: Option<String>,
    pub merchant: Option<String>,
    pub mcc: Option<String>,
    pub occurred_at: String,
    pub category_id: Uuid,
    /// `rule:<id>`, `merchant`, `mcc`, `manual` or `none`.
    pub categorized_by: String,
    /// 0 to 1.
    pub confidence: f64,
    pub tags: Vec<String>,
    pub notes: Option<String>,
    pub wallet_id: Option<Uuid>,
    /// `manual`, `import`, `wallet` or `bank_sync`.
    pub source: String,
    pub created_at: String,
    pub updated_at: String,
}

fn expense_view(row: &ExpenseRow) -> Expense {
    Expense {
        id: row.id,
        amount: row.amount,
        currency: row.currency.clone(),
        description: row.description.clone(),
        merchant: row.merchant.clone(),
        mcc: row.mcc.clone(),
        occurred_at: nanos(row.occurred_at),
        category_id: row.category_id,
        categorized_by: row.categorized_by.clone(),
        confidence: row.confidence,
        tags: row.tags.split(',').filter(|tag| !tag.is_empty()).map(str::to_owned).collect(),
        notes: row.notes.clone(),
        wallet_id: row.wallet_id,
        source: row.source.clone(),
        created_at: nanos(row.created_at),
        updated_at: nanos(row.updated_at),
    }
}

/// A new expense.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewExpenseBody {
    /// Minor units, at least 1.
    pub amount: i64,
    /// ISO 4217 code of a supported currency.
    pub currency: String,
    pub description: Option<String>,
    pub merchant: Option<String>,
    /// ISO 18245 merchant category code, 4 digits.
    pub mcc: Option<String>,
    /// RFC 3339; default now.
    pub occurred_at: Option<String>,
    /// Chosen by hand; absent: categorised automatically.
    pub category_id: Option<Uuid>,
    #[serde(default)]
    pub tags: Vec<String>,
    pub notes: Option<String>,
    /// One of my wallets it was paid from.
    pub wallet_id: Option<Uuid>,
}

/// Records an expense, categorised automatically unless `category_id` is given. With an
/// `Idempotency-Key`, a retry gets the first answer and records nothing more.
#[utoipa::path(post, path = "/v1/expenses", tag = "finance", request_body = NewExpenseBody, security(("access_token" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "Retries reuse it; the same key with another body is 409")),
    responses(
        (status = 201, body = Expense),
        (status = 404, description = "category_not_found or wallet_not_found", body = crate::http::error::Problem, content_type = "application/problem+json"),
    ))]
async fn create_expense(
    user: AuthUser,
    key: Option<IdempotencyKeyHeader>,
    State(state): State<AppState>,
    body: RawJson<NewExpenseBody>,
) -> Result<Response, ApiError> {
    let RawJson { value: request, bytes } = body;
    idempotency::once_if_keyed(
        &state,
        user.customer_id,
        key.as_ref(),
        "POST /v1/expenses",
        &bytes,
        || async {
            let expense = record_expense(&state, user.customer_id, request).await?;
            let body = serde_json::to_value(expense).map_err(|error| ApiError::Unavailable(error.into()))?;
            Ok((StatusCode::CREATED, body))
        },
    )
    .await
}

/// Validates and records a manual expense (the API's and the web console's).
pub(crate) async fn record_expense(
    state: &AppState,
    customer_id: Uuid,
    request: NewExpenseBody,
) -> Result<Expense, ApiError> {
    let currency = Currency::parse(&request.currency)
        .ok_or_else(|| ApiError::field("/currency", "not a supported currency"))?;
    if let Some(wallet) = request.wallet_id {
        state.wallets.owned(customer_id, wallet).await?;
    }
    let expense = NewExpense {
        amount: validate::amount("/amount", request.amount, crate::finance::EXPENSE_AMOUNT_MAX)?,
        currency: currency.code().to_owned(),
        description: validate::text("/description", request.description.as_deref(), TEXT_LEN_MAX)?,
        merchant: validate::text("/merchant", request.merchant.as_deref(), NAME_LEN_MAX)?,
        mcc: validate::mcc("/mcc", request.mcc)?,
        occurred_at: match &request.occurred_at {
            Some(at) => instant("/occurred_at", at)?,
            None => store::now_ns() as i64,
        },
        category_id: request.category_id,
        tags: tags("/tags", request.tags)?,
        notes: validate::text("/notes", request.notes.as_deref(), TEXT_LEN_MAX)?,
        wallet_id: request.wallet_id,
    };
    let (row, _) = state.finance.add_expense(customer_id, Uuid::now_v7(), expense, "manual", None).await?;
    Ok(expense_view(&row))
}

/// Paging and filters of my expenses.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ExpenseQuery {
    /// 1 to 100 (default 20).
    pub limit: Option<u32>,
    pub cursor: Option<String>,
    /// Occurred at or after (RFC 3339).
    pub from: Option<String>,
    /// Occurred before (RFC 3339).
    pub to: Option<String>,
    /// This category or, for a top-level category, any of its children.
    pub category_id: Option<Uuid>,
    /// Exactly this merchant (case-insensitive).
    pub merchant: Option<String>,
    pub amount_min: Option<u64>,
    pub amount_max: Option<u64>,
    pub tag: Option<String>,
    /// Text in the description or the merchant (case-insensitive).
    pub q: Option<String>,
}

/// My expenses, newest first.
#[utoipa::path(get, path = "/v1/expenses", tag = "finance", params(ExpenseQuery), security(("access_token" = [])),
    responses(
        (status = 200, body = Page<Expense>),
        (status = 404, description = "category_not_found", body = crate::http::error::Problem, content_type = "application/problem+json"),
    ))]
async fn list_expenses(
    user: AuthUser,
    State(state): State<AppState>,
    Query(query): Query<ExpenseQuery>,
) -> Result<axum::Json<Page<Expense>>, ApiError> {
    let limit = paging::limit(query.limit)?;
    let before = paging::after("e1", query.cursor.as_deref())?;
    let category_ids = match query.category_id {
        None => Vec::new(),
        Some(id) => {
            let all = state.finance.categories(user.customer_id).await?;
            all.iter().filter(|c| c.id == id || c.parent_id == Some(id)).map(|c| c.id).collect()
        }
    };
    if query.category_id.is_some() && category_ids.is_empty() {
        return Err(FinanceError::NotFound("category").into());
    }
    let filter = ExpenseFilter {
        customer_id: user.customer_id,
        before,
        from: query.from.as_deref().map(|at| instant("from", at)).transpose()?,
        to: query.to.as_deref().map(|at| instant("to", at)).transpose()?,
        category_ids,
        merchant: validate::text("merchant", query.merchant.as_deref(), NAME_LEN_MAX)?,
        amount_min: query.amount_min.map(|amount| i64::try_from(amount).unwrap_or(i64::MAX)),
        amount_max: query.amount_max.map(|amount| i64::try_from(amount).unwrap_or(i64::MAX)),
        tag: validate::text("tag", query.tag.as_deref(), NAME_LEN_MAX)?,
        text: validate::text("q", query.q.as_deref(), NAME_LEN_MAX)?,
        limit: limit + 1,
    };
    let rows = state.finance.expenses(&filter).await?;
    Ok(axum::Json(Page::of(
        rows,
        limit,
        |row| paging::cursor("e1", &(row.occurred_at, row.id)),
        |row| expense_view(&row),
    )))
}

/// One of my expenses.
#[utoipa::path(get, path = "/v1/expenses/{id}", tag = "finance", params(("id" = Uuid, Path)), security(("access_token" = [])),
    responses((status = 200, body = Expense)))]
async fn get_expense(
    user: AuthUser,
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> Result<axum::Json<Expense>, ApiError> {
    Ok(axum::Json(expense_view(&state.finance.expense(user.customer_id, id).await?)))
}

/// Changes to an expense; absent fields stay, null clears.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExpensePatchBody {
    pub amount: Option<i64>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub description: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub merchant: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub mcc: Option<Option<String>>,
    pub occurred_at: Option<String>,
    /// Recategorises by hand (and teaches a rule for the merchant).
    pub category_id: Option<Uuid>,
    pub tags: Option<Vec<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub notes: Option<Option<String>>,
}

/// An updated expense, and the rule learned from a recategorisation.
#[derive(Debug, Serialize, ToSchema)]
pub struct UpdatedExpense {
    #[serde(flatten)]
    pub expense: Expense,
    /// A rule created so that the merchant's next expense lands in the same category.
    pub learned_rule_id: Option<Uuid>,
}

/// Edits one of my expenses.
#[utoipa::path(patch, path = "/v1/expenses/{id}", tag = "finance", params(("id" = Uuid, Path)),
    request_body = ExpensePatchBody, security(("access_token" = [])),
    responses((status = 200, body = UpdatedExpense)))]
async fn update_expense(
    user: AuthUser,
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    Json(request): Json<ExpensePatchBody>,
) -> Result<axum::Json<UpdatedExpense>, ApiError> {
    let optional_text =
        |field: &str, value: Option<Option<String>>, max| -> Result<Option<Option<String>>, ApiError> {
            value.map(|inner| validate::text(field, inner.as_deref(), max)).transpose()
        };
    let patch = ExpensePatch {
        amount: request
            .amount
            .map(|value| validate::amount("/amount", value, crate::finance::EXPENSE_AMOUNT_MAX))
            .transpose()?,
        description: optional_text("/description", request.description, TEXT_LEN_MAX)?,
        merchant: optional_text("/merchant", request.merchant, NAME_LEN_MAX)?,
        mcc: request.mcc.map(|value| validate::mcc("/mcc", value)).transpose()?,
        occurred_at: request.occurred_at.as_deref().map(|at| instant("/occurred_at", at)).transpose()?,
        category_id: request.category_id,
        tags: request.tags.map(|value| tags("/tags", value)).transpose()?,
        notes: optional_text("/notes", request.notes, TEXT_LEN_MAX)?,
    };
    let (row, learned) = state.finance.update_expense(user.customer_id, id, patch).await?;
    Ok(axum::Json(UpdatedExpense { expense: expense_view(&row), learned_rule_id: learned }))
}

/// Deletes one of my expenses.
#[utoipa::path(delete, path = "/v1/expenses/{id}", tag = "finance", params(("id" = Uuid, Path)), security(("access_token" = [])),
    responses((status = 204, description = "Deleted")))]
async fn delete_expense(
    user: AuthUser,
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> Result<StatusCode, ApiError> {
    state.finance.delete_expense(user.customer_id, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A categorisation rule.
#[derive(Debug, Serialize, ToSchema)]
pub struct RuleView {
    pub id: Uuid,
    pub name: String,
    /// Rules are tried in ascending position; the first that matches decides.
    pub position: i64,
    /// All triggers must hold (else any).
    pub strict: bool,
    pub triggers: Vec<Trigger>,
    pub actions: Actions,
}

pub(crate) fn rule_view(row: &RuleRow) -> RuleView {
    RuleView {
        id: row.id,
        name: row.name.clone(),
        position: row.position,
        strict: row.strict,
        triggers: serde_json::from_str(&row.triggers).unwrap_or_default(),
        actions: serde_json::from_str(&row.actions)
            .unwrap_or(Actions { category_id: Uuid::nil(), tags: Vec::new() }),
    }
}

/// A rule to create or replace.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RuleBody {
    pub name: String,
    #[serde(default)]
    pub position: i64,
    #[serde(default)]
    pub strict: bool,
    /// 1 to 10 conditions.
    pub triggers: Vec<Trigger>,
    pub actions: Actions,
}

pub(crate) fn rule_spec(body: RuleBody) -> Result<RuleSpec, ApiError> {
    if body.triggers.is_empty() || body.triggers.len() > 10 {
        return Err(ApiError::field("/triggers", "give 1 to 10 triggers"));
    }
    for (index, trigger) in body.triggers.iter().enumerate() {
        let field = format!("/triggers/{index}");
        match trigger {
            Trigger::DescriptionContains { value }
            | Trigger::MerchantContains { value }
            | Trigger::MerchantIs { value } => {
                validate::name(&format!("{field}/value"), value, NAME_LEN_MAX)?;
            }
            Trigger::MccIs { value } => {
                validate::mcc(&format!("{field}/value"), Some(value.clone()))?;
            }
            Trigger::AmountBetween { min, max } => {
                if min.is_none() && max.is_none() || min.zip(*max).is_some_and(|(low, high)| low > high) {
                    return Err(ApiError::field(field, "give min and/or max, with min ≤ max"));
                }
            }
        }
    }
    Ok(RuleSpec {
        name: validate::name("/name", &body.name, NAME_LEN_MAX)?,
        position: body.position,
        strict: body.strict,
        triggers: body.triggers,
        actions: Actions {
            category_id: body.actions.category_id,
            tags: tags("/actions/tags", body.actions.tags)?,
        },
    })
}

/// My rules, in the order they are tried.
#[utoipa::path(get, path = "/v1/rules", tag = "finance", security(("access_token" = [])),
    responses((status = 200, body = Vec<RuleView>)))]
async fn list_rules(
    user: AuthUser,
    State(state): State<AppState>,
) -> Result<axum::Json<Vec<RuleView>>, ApiError> {
    Ok(axum::Json(state.finance.rules(user.customer_id).await?.iter().map(rule_view).collect()))
}

/// Creates a rule.
#[utoipa::path(post, path = "/v1/rules", tag = "finance", request_body = RuleBody, security(("access_token" = [])),
    responses(
        (status = 201, body = RuleView),
        (status = 404, description = "category_not_found", body = crate::http::error::Problem, content_type = "application/problem+json"),
    ))]
async fn create_rule(
    user: AuthUser,
    State(state): State<AppState>,
    Json(request): Json<RuleBody>,
) -> Result<(StatusCode, axum::Json<RuleView>), ApiError> {
    let row = state.finance.save_rule(user.customer_id, Uuid::now_v7(), rule_spec(request)?).await?;
    Ok((StatusCode::CREATED, axum::Json(rule_view(&row))))
}

/// One of my rules.
#[utoipa::path(get, path = "/v1/rules/{id}", tag = "finance", params(("id" = Uuid, Path)), security(("access_token" = [])),
    responses((status = 200, body = RuleView)))]
async fn get_rule(
    user: AuthUser,
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> Result<axum::Json<RuleView>, ApiError> {
    Ok(axum::Json(rule_view(&state.finance.rule(user.customer_id, id).await?)))
}

/// Replaces one of my rules.
#[utoipa::path(patch, path = "/v1/rules/{id}", tag = "finance", params(("id" = Uuid, Path)), request_body = RuleBody,
    security(("access_token" = [])),
    responses((status = 200, body = RuleView)))]
async fn update_rule(
    user: AuthUser,
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    Json(request): Json<RuleBody>,
) -> Result<axum::Json<RuleView>, ApiError> {
    state.finance.rule(user.customer_id, id).await?;
    let row = state.finance.save_rule(user.customer_id, id, rule_spec(request)?).await?;
    Ok(axum::Json(rule_view(&row)))
}

/// Deletes one of my rules.
#[utoipa::path(delete, path = "/v1/rules/{id}", tag = "finance", params(("id" = Uuid, Path)), security(("access_token" = [])),
    responses((status = 204, description = "Deleted")))]
async fn delete_rule(
    user: AuthUser,
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> Result<StatusCode, ApiError> {
    state.finance.delete_rule(user.customer_id, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// How many expenses a rule changed.
#[derive(Debug, Serialize, ToSchema)]
pub struct Applied {
    pub updated: usize,
}

/// Applies a rule to my existing expenses (not to those categorised by hand).
#[utoipa::path(post, path = "/v1/rules/{id}/apply", tag = "finance", params(("id" = Uuid, Path)), security(("access_token" = [])),
    responses((status = 200, body = Applied)))]
async fn apply_rule(
    user: AuthUser,
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> Result<axum::Json<Applied>, ApiError> {
    let updated = state.finance.apply_rule(user.customer_id, id, APPLY_MAX).await?;
    Ok(axum::Json(Applied { updated }))
}

/// A payment to a merchant from one of my wallets.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PaymentBody {
    pub merchant: String,
    /// ISO 18245 merchant category code, 4 digits.
    pub mcc: Option<String>,
    /// Minor units of the wallet's currency.
    pub amount: u64,
    pub description: Option<String>,
}

/// A payment and the expense it recorded.
#[derive(Debug, Serialize, ToSchema)]
pub struct Payment {
    /// The ledger transfer.
    pub id: Uuid,
    pub wallet_id: Uuid,
    pub amount: u64,
    pub currency: String,
    pub merchant: String,
    pub expense: Expense,
}

/// Pays a merchant from one of my wallets (wallet → merchant settlement, through the
/// ledger) and records the expense, categorised automatically.
#[utoipa::path(post, path = "/v1/wallets/{id}/payments", tag = "finance", params(("id" = Uuid, Path),
        ("Idempotency-Key" = String, Header, description = "Unique per payment; retries reuse it")),
    request_body = PaymentBody, security(("access_token" = [])),
    responses(
        (status = 201, body = Payment),
        (status = 422, description = "insufficient_funds or invalid fields", body = crate::http::error::Problem, content_type = "application/problem+json"),
    ))]
async fn pay_merchant(
    user: AuthUser,
    key: IdempotencyKeyHeader,
    State(state): State<AppState>,
    Path(wallet_id): Path<Uuid>,
    body: RawJson<PaymentBody>,
) -> Result<Response, ApiError> {
    let app = state.clone();
    let id = derive_id(user.customer_id, "payment", &key.0);
    state.limits.money.check(user.customer_id).await?;
    let RawJson { value: request, bytes } = body;
    let route = format!("POST /v1/wallets/{wallet_id}/payments");
    idempotency::once(&state, user.customer_id, &key, &route, &bytes, || async move {
        let max = crate::finance::EXPENSE_AMOUNT_MAX.unsigned_abs();
        if request.amount == 0 || request.amount > max {
            return Err(ApiError::field("/amount", format!("must be 1 to {max}")));
        }
        let merchant = validate::name("/merchant", &request.merchant, NAME_LEN_MAX)?;
        let mcc = validate::mcc("/mcc", request.mcc)?;
        let description = validate::text("/description", request.description.as_deref(), TEXT_LEN_MAX)?;
        let note = description.clone().unwrap_or_else(|| merchant.clone());
        let (wallet, timestamp) =
            app.wallets.pay_merchant(user.customer_id, id, wallet_id, request.amount, &note).await?;
        let expense = NewExpense {
            amount: i64::try_from(request.amount).unwrap_or(i64::MAX),
            currency: wallet.currency.clone(),
            description,
            merchant: Some(merchant.clone()),
            mcc,
            occurred_at: i64::try_from(timestamp).unwrap_or(i64::MAX),
            wallet_id: Some(wallet.id),
            ..NewExpense::default()
        };
        // The expense's id is the transfer's: a retry after a crash records it once.
        let (row, _) =
            app.finance.add_expense(user.customer_id, Uuid::from_u128(id), expense, "wallet", None).await?;
        let payment = Payment {
            id: Uuid::from_u128(id),
            wallet_id: wallet.id,
            amount: request.amount,
            currency: wallet.currency,
            merchant,
            expense: expense_view(&row),
        };
        Ok((StatusCode::CREATED, serde_json::to_value(payment).expect("serialisable")))
    })
    .await
}
