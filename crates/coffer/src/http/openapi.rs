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
    AppState, auth, customers, error, finance, health, ledger, notifications, payments, reports, stream,
    wallets,
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
        reports::categories,
        reports::summary,
        reports::trends,
        reports::export_expenses,
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
    components(schemas(error::Problem, error::FieldError)),
    modifiers(&AdminKeyScheme),
    tags(
        (name = "ledger", description = "Double-entry ledger in TigerBeetle's model (admin API key)"),
        (name = "auth", description = "Register, login, token refresh and logout"),
        (name = "customers", description = "Customer profiles; listing and roles for admins"),
        (name = "wallets", description = "Wallets, transfers between them and their history"),
        (name = "payments", description = "Card top-ups and withdrawals through payment providers"),
        (name = "finance", description = "Personal finance: categories, expenses, categorisation rules, merchant payments"),
        (name = "reports", description = "Monthly, category, summary and trend reports per currency; CSV exports"),
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
