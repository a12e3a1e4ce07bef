//! The OpenAPI 3.1 document, generated from the handlers' annotations, served at
//! `/openapi.json`, with Swagger UI at `/docs` (assets compiled into the binary, so it
//! works offline).

use axum::Router;
use utoipa::{
    Modify, OpenApi,
    openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
};
use utoipa_swagger_ui::SwaggerUi;

use super::{
    AppState, error,
    routes::{
        analytics, auth, banks, credit, customers, finance, fx, health, insights, ledger, monitors,
        notifications, payments, reconciliations, reports, schedules, stream, verify, wallets,
    },
};

#[derive(Debug, OpenApi)]
#[openapi(
    info(title = "Coffer", description = "Wallet, ledger and personal-finance backend. Errors are RFC 9457 problem+json with a stable `code`."),
    paths(
        ledger::create_accounts,
        ledger::create_transfers,
        ledger::get_account,
        ledger::get_transfer,
        ledger::list_account_transfers,
        ledger::list_account_balances,
        ledger::chain_head,
        auth::register,
        auth::login,
        auth::refresh,
        auth::logout,
        auth::me,
        customers::get_me,
        customers::update_me,
        customers::list_customers,
        customers::get_customer,
        customers::set_role,
        wallets::create_wallet,
        wallets::list_wallets,
        wallets::get_wallet,
        wallets::wallet_operations,
        wallets::all_operations,
        wallets::create_transfer,
        wallets::get_transfer,
        wallets::reverse_transfer,
        payments::create_top_up,
        payments::create_withdrawal,
        payments::get_top_up,
        payments::get_withdrawal,
        finance::list_categories,
        finance::create_category,
        finance::update_category,
        finance::delete_category,
        finance::create_expense,
        finance::list_expenses,
        finance::get_expense,
        finance::update_expense,
        finance::delete_expense,
        finance::list_rules,
        finance::create_rule,
        finance::get_rule,
        finance::update_rule,
        finance::delete_rule,
        finance::apply_rule,
        finance::pay_merchant,
        finance::import_statement,
        reports::list_budgets,
        reports::create_budget,
        reports::get_budget,
        reports::update_budget,
        reports::delete_budget,
        reports::budget_status,
        reports::monthly,
        reports::monthly_summary,
        reports::categories,
        reports::summary,
        reports::trends,
        reports::export_expenses,
        wallets::export_operations,
        analytics::daily,
        analytics::customer,
        verify::start_verify_run,
        verify::list_verify_runs,
        verify::get_verify_run,
        reconciliations::create_reconciliation,
        reconciliations::list_reconciliations,
        reconciliations::get_reconciliation,
        reconciliations::export_reconciliation,
        reconciliations::mock_settlement,
        fx::get_rates,
        fx::create_quote,
        fx::get_quote,
        fx::execute_quote,
        fx::fx_report,
        insights::recurring_payments,
        insights::spending_alerts,
        insights::cash_flow_forecast,
        credit::give_consent,
        credit::withdraw_consent,
        credit::get_consent,
        credit::get_report,
        monitors::create_monitor,
        monitors::list_monitors,
        monitors::delete_monitor,
        monitors::create_operator_monitor,
        monitors::list_operator_monitors,
        monitors::delete_operator_monitor,
        schedules::create_schedule,
        schedules::list_schedules,
        schedules::get_schedule,
        schedules::update_schedule,
        schedules::cancel_schedule,
        schedules::list_runs,
        banks::list_institutions,
        banks::create_connection,
        banks::list_connections,
        banks::get_connection,
        banks::delete_connection,
        banks::sync_connection,
        stream::stream,
        stream::create_ticket,
        notifications::list_notifications,
        notifications::read_notification,
        notifications::create_webhook,
        notifications::list_webhooks,
        notifications::get_webhook,
        notifications::delete_webhook,
        notifications::list_deliveries,
        notifications::redeliver,
        health::live,
        health::ready,
    ),
    components(schemas(error::Problem, error::FieldError, ledger::Order, ledger::Side)),
    modifiers(&AdminKeyScheme, &SharedResponses),
    tags(
        (name = "ledger", description = "Double-entry ledger in TigerBeetle's model (admin API key)"),
        (name = "auth", description = "Register, login, token refresh and logout"),
        (name = "customers", description = "Customer profiles; listing and roles for admins"),
        (name = "wallets", description = "Wallets, transfers between them and their history"),
        (name = "payments", description = "Card top-ups and withdrawals through payment providers"),
        (name = "finance", description = "Personal finance: categories, expenses, categorisation rules, merchant payments, statement imports, scheduled payments, bank connections"),
        (name = "reports", description = "Monthly, category, summary and trend reports per currency; CSV exports"),
        (name = "analytics", description = "Platform analytics for admins: daily figures and customer snapshots"),
        (name = "fx", description = "Currency conversion between a customer's wallets: rates, quotes, execution"),
        (name = "operations", description = "Operating Coffer (admins): the books' check, operators' balance monitors, reconciliation, the conversion report"),
        (name = "events", description = "The WebSocket stream of a customer's events"),
        (name = "notifications", description = "The in-app inbox"),
        (name = "webhooks", description = "Signed HTTP deliveries of events"),
        (name = "health", description = "Probes"),
    ),
)]
pub struct ApiDoc;

struct AdminKeyScheme;

impl Modify for AdminKeyScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "admin_api_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("The admin API key: COFFER_ADMIN_API_KEY, or the one generated into DATA_DIR/admin-api-key"))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "access_token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "An access token from /v1/auth/login or /v1/auth/refresh (HS256, 15 minutes)",
                    ))
                    .build(),
            ),
        );
    }
}

/// What every route shares, added to each operation so that the document lists every
/// status a client can get, not only the ones a handler returns itself: the middleware
/// and extractors answer 400 (malformed path, query, header or body), 401 (a secured route
/// without a valid credential), 404 (a path id that names nothing of the caller's), 413
/// and 415 (body too large, not JSON), 409 (an Idempotency-Key reused or in use), 422
/// (invalid fields or query values), 429 (rate
/// limits on logins and money-moving requests) and 503 (overloaded, timed out, database
/// unavailable). It also states the header and paging constraints the extractors enforce
/// (found missing by Schemathesis, tools/fuzz). A handler's annotation lists only what is
/// its own: its success, the statuses this cannot infer (403 on admin routes, a 404 or
/// 409 a path does not imply) and, where it helps, the problem `code`s behind a status;
/// its description wins over the shared one.
struct SharedResponses;

impl SharedResponses {
    fn problem(description: &str) -> utoipa::openapi::RefOr<utoipa::openapi::Response> {
        use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/problem+json",
                ContentBuilder::new().schema(Some(Ref::from_schema_name("Problem"))).build(),
            )
            .build()
            .into()
    }

    fn operation(path: &str, operation: &mut utoipa::openapi::path::Operation) {
        use utoipa::openapi::{RefOr, Schema, path::ParameterIn};
        let secured = operation.security.as_ref().is_some_and(|security| !security.is_empty());
        let has_body = operation.request_body.is_some();
        let parameters = operation.parameters.get_or_insert_with(Vec::new);
        let has_query = parameters.iter().any(|parameter| parameter.parameter_in == ParameterIn::Query);
        let has_key = parameters
            .iter()
            .any(|parameter| parameter.name == super::idempotency::IDEMPOTENCY_KEY_HEADER_NAME);
        for parameter in parameters.iter_mut() {
            let Some(RefOr::T(Schema::Object(schema))) = parameter.schema.as_mut() else { continue };
            // Required where the route's annotation says so (money-moving POSTs); optional
            // on the few routes that only use it when it is sent.
            if parameter.name == super::idempotency::IDEMPOTENCY_KEY_HEADER_NAME {
                schema.min_length = Some(1);
                schema.max_length = Some(super::idempotency::KEY_LEN_MAX);
                // Visible ASCII only (the extractor refuses anything else).
                schema.pattern = Some("^[!-~]+$".into());
            }
            if parameter.parameter_in == ParameterIn::Query && parameter.name == "limit" {
                schema.minimum = Some(utoipa::Number::UInt(1));
                schema.maximum = Some(utoipa::Number::UInt(super::paging::PAGE_LIMIT_MAX as usize));
            }
            if parameter.parameter_in == ParameterIn::Query && QUERY_U64.contains(&parameter.name.as_str()) {
                set_range(schema, 0, u64::MAX);
            }
            if parameter.parameter_in == ParameterIn::Query
                && (parameter.name == "from" || parameter.name == "to")
                && schema.format.is_none()
            {
                schema.format =
                    Some(utoipa::openapi::SchemaFormat::KnownFormat(utoipa::openapi::KnownFormat::DateTime));
            }
        }
        // A ledger batch holds 1 to 8,190 events.
        if let Some(body) = operation.request_body.as_mut()
            && let Some(content) = body.content.get_mut("application/json")
            && let Some(RefOr::T(Schema::Array(array))) = content.schema.as_mut()
        {
            array.min_items = Some(1);
            array.max_items = Some(::ledger::BATCH_EVENTS_MAX);
        }
        let mut shared = vec![
            ("400", "Malformed request (path, query, header or body)"),
            (
                "503",
                "Overloaded, timed out or the database is unavailable; retry (with the same Idempotency-Key)",
            ),
        ];
        if secured {
            shared.push(("401", "No valid credential"));
        }
        if path.contains('{') {
            shared.push(("404", "Nothing of yours by that id"));
        }
        if has_body {
            shared.push(("413", "Body too large"));
            shared.push(("415", "Not application/json"));
            shared.push(("422", "Invalid fields"));
        }
        if has_query {
            shared.push(("422", "Invalid query values"));
        }
        if has_key {
            // Found by Schemathesis on the reversal route, which did not list it.
            shared.push(("409", "Idempotency-Key reused with another request, or still in use"));
        }
        if has_key || path == "/v1/auth/login" {
            shared.push(("429", "Rate limited; see Retry-After"));
        }
        for (status, description) in shared {
            operation
                .responses
                .responses
                .entry(status.to_owned())
                .or_insert_with(|| Self::problem(description));
        }
    }
}

/// Integer ranges of the Rust types behind request fields. utoipa renders every unsigned
/// integer as `int32`/`int64` with `minimum: 0`, which is wrong both ways: a `u16` looks
/// like it takes 70,000 and a `u64` looks like it stops at 2^63 - 1. Each field here gets
/// the range its type (or its validation) really accepts.
const REQUEST_RANGES: &[(&str, &str, u64, u64)] = &[
    ("NewAccount", "ledger", 0, u32::MAX as u64),
    ("NewAccount", "code", 0, u16::MAX as u64),
    ("NewAccount", "user_data_32", 0, u32::MAX as u64),
    ("NewAccount", "user_data_64", 0, u64::MAX),
    ("NewTransfer", "amount", 0, ::ledger::AMOUNT_MAX),
    ("NewTransfer", "ledger", 0, u32::MAX as u64),
    ("NewTransfer", "code", 0, u16::MAX as u64),
    ("NewTransfer", "timeout", 0, u32::MAX as u64),
    ("NewTransfer", "user_data_32", 0, u32::MAX as u64),
    ("NewTransfer", "user_data_64", 0, u64::MAX),
    ("NewTransferBody", "amount", 1, ::ledger::AMOUNT_MAX),
    ("NewTopUp", "amount", 1, ::ledger::AMOUNT_MAX),
    ("NewWithdrawal", "amount", 1, ::ledger::AMOUNT_MAX),
    ("NewWalletBody", "credit_limit", 0, crate::wallets::service::CREDIT_LIMIT_MAX),
    ("NewQuote", "sell_amount", 1, crate::fx::convert::AMOUNT_MAX),
    ("NewQuote", "buy_amount", 1, crate::fx::convert::AMOUNT_MAX),
];

/// Query parameters holding `u64`s (same problem as [`REQUEST_RANGES`]).
const QUERY_U64: &[&str] = &["timestamp_min", "timestamp_max", "amount_min", "amount_max"];

fn set_range(schema: &mut utoipa::openapi::schema::Object, minimum: u64, maximum: u64) {
    // The bounds say it all; `int64` would claim a signed 64-bit range.
    schema.format = None;
    schema.minimum = Some(utoipa::Number::UInt(minimum as usize));
    schema.maximum = Some(utoipa::Number::UInt(maximum as usize));
}

impl SharedResponses {
    fn components(openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{RefOr, Schema};
        let Some(components) = openapi.components.as_mut() else { return };
        for (name, field, minimum, maximum) in REQUEST_RANGES {
            if let Some(RefOr::T(Schema::Object(object))) = components.schemas.get_mut(*name)
                && let Some(RefOr::T(Schema::Object(property))) = object.properties.get_mut(*field)
            {
                set_range(property, *minimum, *maximum);
            }
        }
        if let Some(RefOr::T(Schema::Object(object))) = components.schemas.get_mut("NewWalletBody")
            && let Some(RefOr::T(Schema::Object(currency))) = object.properties.get_mut("currency")
        {
            currency.enum_values =
                Some(crate::wallets::money::CURRENCIES.iter().map(|c| serde_json::json!(c.code())).collect());
        }
        for (name, field) in [("NewTopUp", "payment_method"), ("NewWithdrawal", "destination")] {
            if let Some(RefOr::T(Schema::Object(object))) = components.schemas.get_mut(name)
                && let Some(RefOr::T(Schema::Object(token))) = object.properties.get_mut(field)
            {
                token.pattern = Some("^[A-Za-z0-9_]{1,100}$".into());
            }
        }
        // A webhook URL is ASCII, so its byte limit is its length limit.
        if let Some(RefOr::T(Schema::Object(object))) = components.schemas.get_mut("NewWebhook")
            && let Some(RefOr::T(Schema::Object(url))) = object.properties.get_mut("url")
        {
            url.max_length = Some(crate::notifications::endpoints::URL_BYTES_MAX);
        }
        // A subscription names known events (or `*`), one to all of them.
        if let Some(RefOr::T(Schema::Object(object))) = components.schemas.get_mut("NewWebhook")
            && let Some(RefOr::T(Schema::Array(types))) = object.properties.get_mut("event_types")
        {
            types.min_items = Some(1);
            types.max_items = Some(crate::events::EventType::ALL.len());
            if let utoipa::openapi::schema::ArrayItems::RefOrSchema(items) = &mut types.items
                && let RefOr::T(Schema::Object(name)) = items.as_mut()
            {
                let mut names: Vec<serde_json::Value> =
                    crate::events::EventType::ALL.iter().map(|kind| serde_json::json!(kind.name())).collect();
                names.push(serde_json::json!("*"));
                name.enum_values = Some(names);
            }
        }
        if let Some(RefOr::T(Schema::Object(object))) = components.schemas.get_mut("RegisterRequest")
            && let Some(RefOr::T(Schema::Object(password))) = object.properties.get_mut("password")
        {
            password.min_length = Some(crate::identity::password::PASSWORD_CHARS_MIN);
            password.max_length = Some(crate::identity::password::PASSWORD_CHARS_MAX);
        }
    }
}

impl Modify for SharedResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        Self::components(openapi);
        for (path, item) in openapi.paths.paths.iter_mut() {
            let operations =
                [&mut item.get, &mut item.put, &mut item.post, &mut item.delete, &mut item.patch];
            for operation in operations.into_iter().flatten() {
                Self::operation(path, operation);
            }
        }
    }
}

pub fn router() -> Router<AppState> {
    Router::new().merge(SwaggerUi::new("/docs").url("/openapi.json", ApiDoc::openapi()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn document_lists_every_ledger_route() {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
        assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
        for path in [
            "/v1/ledger/accounts",
            "/v1/ledger/transfers",
            "/v1/ledger/accounts/{id}",
            "/v1/ledger/transfers/{id}",
            "/v1/ledger/accounts/{id}/transfers",
            "/v1/ledger/accounts/{id}/balances",
            "/health/live",
            "/health/ready",
            "/v1/auth/register",
            "/v1/auth/login",
            "/v1/auth/refresh",
            "/v1/auth/logout",
            "/v1/auth/me",
            "/v1/customers/me",
            "/v1/customers",
            "/v1/customers/{id}",
            "/v1/customers/{id}/role",
        ] {
            assert!(doc["paths"][path].is_object(), "{path} missing from the OpenAPI document");
        }
        assert!(doc["components"]["securitySchemes"]["admin_api_key"].is_object());
        assert!(doc["components"]["securitySchemes"]["access_token"].is_object());
        assert!(doc["paths"]["/v1/customers/me"]["patch"].is_object());
    }
}
