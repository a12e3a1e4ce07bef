//! The customers API (`/v1/customers/*`): a customer's own profile (read and change the
//! allow-listed fields), and the admin views (list, one customer, set a role).

use axum::{
    Router,
    extract::State,
    routing::{get, put},
};
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::http::caller::{AdminUser, AuthUser};
use crate::http::{
    AppState,
    error::ApiError,
    extract::{Json, Path, Query},
    paging::{self, Page, PageQuery},
    routes::auth::{CustomerView, FieldErrors},
};
use crate::identity::{
    ProfileUpdate, Role,
    profile::{Country, CustomerName, Phone, Preferences},
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/customers/me", get(get_me).patch(update_me))
        .route("/v1/customers", get(list_customers))
        .route("/v1/customers/{id}", get(get_customer))
        .route("/v1/customers/{id}/role", put(set_role))
}

/// Tells "absent" (leave alone) from `null` (clear) for nullable fields.
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    deserializer: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(deserializer).map(Some)
}

/// Changes to the caller's own profile. Only these fields exist: a body naming any other
/// (`email`, `role`, `kyc_status`, …) is refused with 422 and changes nothing.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProfileUpdateRequest {
    pub name: Option<String>,
    /// E.164 (`+442071838750`); `null` removes it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub phone: Option<Option<String>>,
    /// ISO 3166-1 alpha-2 (`GB`); `null` removes it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub country: Option<Option<String>>,
    /// Replaces the preferences object (at most 4 KiB of JSON).
    #[schema(value_type = Option<Object>)]
    pub preferences: Option<Map<String, Value>>,
}

/// The caller's own profile.
#[utoipa::path(get, path = "/v1/customers/me", tag = "customers", security(("access_token" = [])), responses((status = 200, body = CustomerView)))]
async fn get_me(user: AuthUser, State(state): State<AppState>) -> Result<axum::Json<CustomerView>, ApiError> {
    let customer = state.identity.customer(user.customer_id).await?;
    Ok(axum::Json(CustomerView::from_customer(customer)?))
}

/// Changes the caller's name, phone, country or preferences.
#[utoipa::path(patch, path = "/v1/customers/me", tag = "customers", security(("access_token" = [])),
    request_body = ProfileUpdateRequest, responses(
    (status = 200, body = CustomerView),
    (status = 422, description = "An invalid value, or a field that cannot be changed here", body = crate::http::error::Problem, content_type = "application/problem+json"),
    ))]
async fn update_me(
    user: AuthUser,
    State(state): State<AppState>,
    Json(request): Json<ProfileUpdateRequest>,
) -> Result<axum::Json<CustomerView>, ApiError> {
    let mut errors = FieldErrors::default();
    let update = ProfileUpdate {
        name: request.name.and_then(|name| errors.check("/name", CustomerName::parse(&name))),
        phone: request
            .phone
            .map(|phone| phone.and_then(|phone| errors.check("/phone", Phone::parse(&phone)))),
        country: request
            .country
            .map(|country| country.and_then(|country| errors.check("/country", Country::parse(&country)))),
        preferences: request
            .preferences
            .and_then(|preferences| errors.check("/preferences", Preferences::parse(&preferences))),
    };
    errors.finish()?;
    let customer = state.identity.update_profile(user.customer_id, update).await?;
    Ok(axum::Json(CustomerView::from_customer(customer)?))
}

/// Every customer, oldest first (admin).
#[utoipa::path(get, path = "/v1/customers", tag = "customers", params(PageQuery),
    security(("access_token" = []), ("admin_api_key" = [])), responses(
    (status = 200, body = Page<CustomerView>),
    (status = 400, description = "Malformed cursor", body = crate::http::error::Problem, content_type = "application/problem+json"),
    (status = 403, description = "A customer's token", body = crate::http::error::Problem, content_type = "application/problem+json"),
    (status = 422, description = "limit out of range", body = crate::http::error::Problem, content_type = "application/problem+json"),
    ))]
async fn list_customers(
    _admin: AdminUser,
    State(state): State<AppState>,
    Query(query): Query<PageQuery>,
) -> Result<axum::Json<Page<CustomerView>>, ApiError> {
    let limit = paging::limit(query.limit)?;
    let after = paging::after("c1", query.cursor.as_deref())?;
    let (customers, has_more) = state.identity.list_customers(after, limit).await?;
    let next_cursor =
        if has_more { customers.last().map(|customer| paging::cursor("c1", &customer.id)) } else { None };
    let data = customers.into_iter().map(CustomerView::from_customer).collect::<Result<_, _>>()?;
    Ok(axum::Json(Page { data, has_more, next_cursor }))
}

/// One customer (admin).
#[utoipa::path(get, path = "/v1/customers/{id}", tag = "customers", params(("id" = Uuid, Path, description = "Customer id")),
    security(("access_token" = []), ("admin_api_key" = [])), responses(
    (status = 200, body = CustomerView),
    (status = 403, description = "A customer's token", body = crate::http::error::Problem, content_type = "application/problem+json"),
    (status = 404, description = "No such customer", body = crate::http::error::Problem, content_type = "application/problem+json"),
    ))]
async fn get_customer(
    _admin: AdminUser,
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> Result<axum::Json<CustomerView>, ApiError> {
    Ok(axum::Json(CustomerView::from_customer(state.identity.customer(id).await?)?))
}

/// A role to give a customer.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleRequest {
    pub role: Role,
}

/// Makes a customer an admin, or a customer again (admin). Takes effect with their next
/// access token (within 15 minutes).
#[utoipa::path(put, path = "/v1/customers/{id}/role", tag = "customers", params(("id" = Uuid, Path, description = "Customer id")),
    request_body = RoleRequest, security(("access_token" = []), ("admin_api_key" = [])), responses(
    (status = 200, body = CustomerView),
    (status = 403, description = "A customer's token", body = crate::http::error::Problem, content_type = "application/problem+json"),
    (status = 404, description = "No such customer", body = crate::http::error::Problem, content_type = "application/problem+json"),
    ))]
async fn set_role(
    admin: AdminUser,
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    Json(request): Json<RoleRequest>,
) -> Result<axum::Json<CustomerView>, ApiError> {
    tracing::info!(by = ?admin.customer_id, customer_id = %id, "role change requested");
    Ok(axum::Json(CustomerView::from_customer(state.identity.set_role(id, request.role).await?)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absent_and_null_differ() {
        let absent: ProfileUpdateRequest = serde_json::from_str("{}").unwrap();
        assert_eq!(absent.phone, None);
        let null: ProfileUpdateRequest = serde_json::from_str(r#"{"phone": null}"#).unwrap();
        assert_eq!(null.phone, Some(None));
        assert!(serde_json::from_str::<ProfileUpdateRequest>(r#"{"role": "admin"}"#).is_err());
    }
}
