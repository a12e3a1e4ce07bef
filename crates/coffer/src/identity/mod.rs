//! Identity: customers, passwords, access and refresh tokens (login throttling is
//! `limits::login`).
//!
//! [`Identity`] is the domain service: it knows the store and the token keys, not HTTP
//! (the extractors that authenticate a request with it are `http::caller`). Handlers in
//! `http::routes::auth` and `http::routes::customers` parse requests into the types of
//! [`profile`] and [`password`], call it, and map its [`IdentityError`]s. Registering and
//! logging in write `customer.registered` / `customer.logged_in` (payloads in
//! `events::payloads`).

pub mod keys;
pub mod password;
pub mod profile;
pub mod token;

use crate::events::{self, EventType};
use std::{net::IpAddr, sync::Arc, time::SystemTime};

use serde::{Deserialize, Serialize};
use store::{
    CreateCustomerError, Customer, CustomerRole, CustomerUpdate, NewCustomer, NewRefreshToken, Rotation,
    Store, StoreError,
};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::limits::{login::LoginThrottle, shared::Shared};
use keys::Keys;
use password::{NewPassword, PasswordHasher};
use profile::{Country, CustomerName, Email, Phone, Preferences};

/// A customer's role, as carried in access tokens and shown by the API. Its storage twin is
/// `store::CustomerRole` (the store knows no serde or OpenAPI); `config::ProcessRole` is
/// the other kind of role: the part of the work a `coffer serve` process takes on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Customer,
    Admin,
}

impl From<CustomerRole> for Role {
    fn from(role: CustomerRole) -> Self {
        match role {
            CustomerRole::Customer => Self::Customer,
            CustomerRole::Admin => Self::Admin,
        }
    }
}

impl From<Role> for CustomerRole {
    fn from(role: Role) -> Self {
        match role {
            Role::Customer => Self::Customer,
            Role::Admin => Self::Admin,
        }
    }
}

/// A successful login or refresh.
#[derive(Clone)]
pub struct TokenPair {
    pub access_token: String,
    pub refresh_token: String,
    /// Seconds until the access token expires.
    pub expires_in: u64,
}

impl std::fmt::Debug for TokenPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenPair(***)")
    }
}

/// A console session: who is signed in, and which family (session) it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Session {
    pub customer_id: Uuid,
    pub role: Role,
    pub family_id: Uuid,
}

/// The changes a customer asks for on their own profile (already parsed). `None` leaves
/// a field alone; `Some(None)` clears phone or country.
#[derive(Clone, Debug, Default)]
pub struct ProfileUpdate {
    pub name: Option<CustomerName>,
    pub phone: Option<Option<Phone>>,
    pub country: Option<Option<Country>>,
    pub preferences: Option<Preferences>,
}

/// What can go wrong in identity operations, independent of HTTP.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("the email address is already registered")]
    EmailTaken,
    /// Wrong password, unknown email, or malformed email: deliberately one error.
    #[error("invalid email or password")]
    InvalidCredentials,
    /// Unknown, expired, revoked or reused refresh token.
    #[error("invalid refresh token")]
    InvalidRefreshToken,
    #[error("too many login attempts; retry in {retry_after_seconds} s")]
    Throttled { retry_after_seconds: u64 },
    #[error("no such customer")]
    CustomerNotFound,
    #[error("no such session")]
    SessionNotFound,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// Settings of the identity service, from the server configuration.
#[derive(Clone, Debug)]
pub struct IdentityConfig {
    /// The admin key and the token signing secrets (shared with the HTTP layer).
    pub keys: Arc<Keys>,
    pub argon2_memory_kib: u32,
    pub login_failures_per_account_max: u32,
    pub login_failures_per_address_max: u32,
    /// Count failed logins here instead of this process (`COFFER_REDIS_URL`).
    pub redis: Option<Arc<Shared>>,
}

/// The identity service.
#[derive(Debug)]
pub struct Identity {
    store: Store,
    hasher: PasswordHasher,
    keys: Arc<Keys>,
    throttle: LoginThrottle,
}

impl Identity {
    /// Builds the service; hashes the dummy password once (off the async threads).
    pub async fn new(store: Store, config: IdentityConfig) -> anyhow::Result<Self> {
        if config.argon2_memory_kib < password::ARGON2_MEMORY_KIB_DEFAULT {
            tracing::warn!(
                memory_kib = config.argon2_memory_kib,
                "Argon2 memory cost is below OWASP's minimum of 19456 KiB; use this only in tests"
            );
        }
        Ok(Self {
            store,
            hasher: PasswordHasher::new(config.argon2_memory_kib).await?,
            keys: config.keys.clone(),
            throttle: {
                let throttle = LoginThrottle::new(
                    config.login_failures_per_account_max,
                    config.login_failures_per_address_max,
                );
                match config.redis {
                    Some(redis) => throttle.shared(redis, config.keys.derive("login throttle")),
                    None => throttle,
                }
            },
        })
    }

    /// The claims of a valid access token (for credentials that do not come in the
    /// `Authorization` header the extractors read).
    pub fn verify_access_token(&self, token: &str) -> Option<token::Claims> {
        self.keys.verify(token)
    }

    /// Creates a customer with role `customer`.
    pub async fn register(
        &self,
        email: Email,
        password: NewPassword,
        name: CustomerName,
    ) -> Result<Customer, IdentityError> {
        let password_hash = self.hasher.hash(password).await?;
        let customer = NewCustomer {
            id: Uuid::now_v7(),
            email: email.as_str().to_owned(),
            name: name.into_inner(),
            password_hash,
            role: CustomerRole::Customer,
            created_at: OffsetDateTime::now_utc(),
        };
        let registered = events::event(
            EventType::CustomerRegistered,
            Some(customer.id),
            &format!("customers/{}", customer.id),
            &events::CustomerRegisteredData { customer_id: customer.id, name: (&customer.name).into() },
        );
        match self.store.create_customer(&customer, &[registered]).await {
            Ok(customer) => {
                tracing::info!(customer_id = %customer.id, "customer registered");
                Ok(customer)
            }
            Err(CreateCustomerError::EmailTaken) => Err(IdentityError::EmailTaken),
            Err(CreateCustomerError::Store(error)) => Err(error.into()),
        }
    }

    /// Checks the credentials and starts a refresh-token family. Unknown and malformed
    /// emails verify against a dummy hash, so every failure looks and takes the same.
    pub async fn login(
        &self,
        email: &str,
        password: String,
        address: Option<IpAddr>,
    ) -> Result<TokenPair, IdentityError> {
        let (customer, refresh_token) =
            self.start_family(email, password, address, token::refresh_token_ttl()).await?;
        self.token_pair(customer.id, customer.role.into(), refresh_token)
    }

    /// Signs in to the web console: the same checks, throttle and event as [`Self::login`],
    /// but the session is a family that lives at most `lifetime` and whose one token is
    /// the session cookie (never rotated, so never seen by scripts or in a URL).
    pub async fn sign_in(
        &self,
        email: &str,
        password: String,
        address: Option<IpAddr>,
        lifetime: std::time::Duration,
    ) -> Result<String, IdentityError> {
        Ok(self.start_family(email, password, address, lifetime).await?.1)
    }

    async fn start_family(
        &self,
        email: &str,
        password: String,
        address: Option<IpAddr>,
        lifetime: std::time::Duration,
    ) -> Result<(Customer, String), IdentityError> {
        let throttle_key = email.trim().to_lowercase();
        if let Err(retry_after_seconds) = self.throttle.begin(&throttle_key, address).await {
            return Err(IdentityError::Throttled { retry_after_seconds });
        }
        let customer = match Email::parse(email) {
            Ok(email) => self.store.customer_by_email(email.as_str()).await?,
            Err(_) => None,
        };
        let stored_hash = customer.as_ref().map(|customer| customer.password_hash.clone());
        let matches = self.hasher.verify(password, stored_hash).await?;
        let Some(customer) = customer.filter(|_| matches) else {
            tracing::info!(address = ?address, "login failed");
            return Err(IdentityError::InvalidCredentials);
        };
        self.throttle.succeeded(&throttle_key, address).await;
        let now = OffsetDateTime::now_utc();
        let (refresh_token, token_hash) = token::new_refresh_token();
        let logged_in = events::event(
            EventType::CustomerLoggedIn,
            Some(customer.id),
            &format!("customers/{}", customer.id),
            &events::CustomerLoggedInData { customer_id: customer.id },
        );
        self.store
            .insert_refresh_token(
                &NewRefreshToken {
                    id: Uuid::now_v7(),
                    customer_id: customer.id,
                    family_id: Uuid::now_v7(),
                    token_hash,
                    expires_at: now + lifetime,
                    created_at: now,
                },
                &[logged_in],
            )
            .await?;
        tracing::info!(customer_id = %customer.id, "logged in");
        Ok((customer, refresh_token))
    }

    /// The live session whose current token is `token` (a console cookie), with the
    /// customer's role as it is now; `None` for an unknown, ended or expired one.
    pub async fn session(&self, token: &str) -> Result<Option<Session>, IdentityError> {
        let presented = token::hash_refresh_token(token);
        let Some(row) = self.store.session(&presented, OffsetDateTime::now_utc()).await? else {
            return Ok(None);
        };
        let Some(customer) = self.store.customer_by_id(row.customer_id).await? else {
            return Ok(None);
        };
        Ok(Some(Session { customer_id: customer.id, role: customer.role.into(), family_id: row.family_id }))
    }

    /// The customer's live sessions (API logins and console sign-ins), newest first.
    pub async fn sessions(&self, customer_id: Uuid) -> Result<Vec<store::SessionRow>, IdentityError> {
        Ok(self.store.sessions(customer_id, OffsetDateTime::now_utc()).await?)
    }

    /// Ends one of the customer's sessions; [`IdentityError::SessionNotFound`] when they
    /// have no such live session.
    pub async fn end_session(&self, customer_id: Uuid, family_id: Uuid) -> Result<(), IdentityError> {
        if self.store.revoke_session(customer_id, family_id, OffsetDateTime::now_utc()).await? {
            tracing::info!(%customer_id, %family_id, "session ended");
            Ok(())
        } else {
            Err(IdentityError::SessionNotFound)
        }
    }

    /// Changes the customer's password after checking the current one, and ends every
    /// other session (`keep` is the session that asked). A wrong current password is
    /// [`IdentityError::InvalidCredentials`] and counts against the login throttle.
    pub async fn change_password(
        &self,
        customer_id: Uuid,
        current: String,
        new: NewPassword,
        keep: Option<Uuid>,
    ) -> Result<(), IdentityError> {
        let customer = self.customer(customer_id).await?;
        let throttle_key = customer.email.clone();
        if let Err(retry_after_seconds) = self.throttle.begin(&throttle_key, None).await {
            return Err(IdentityError::Throttled { retry_after_seconds });
        }
        if !self.hasher.verify(current, Some(customer.password_hash)).await? {
            return Err(IdentityError::InvalidCredentials);
        }
        self.throttle.succeeded(&throttle_key, None).await;
        let hash = self.hasher.hash(new).await?;
        if !self.store.set_password_hash(customer_id, &hash, keep, OffsetDateTime::now_utc()).await? {
            return Err(IdentityError::CustomerNotFound);
        }
        tracing::info!(%customer_id, "password changed; other sessions ended");
        Ok(())
    }

    /// Rotates a refresh token. A token presented after it was rotated is reuse: the
    /// store revokes its whole family and the caller gets the same 401 as for any other
    /// bad token.
    pub async fn refresh(&self, refresh_token: &str) -> Result<TokenPair, IdentityError> {
        let presented = token::hash_refresh_token(refresh_token);
        let (successor, successor_hash) = token::new_refresh_token();
        let rotation = self
            .store
            .rotate_refresh_token(&presented, Uuid::now_v7(), &successor_hash, OffsetDateTime::now_utc())
            .await?;
        match rotation {
            Rotation::Rotated { customer_id, .. } => {
                let customer = self
                    .store
                    .customer_by_id(customer_id)
                    .await?
                    .ok_or(IdentityError::InvalidRefreshToken)?;
                self.token_pair(customer.id, customer.role.into(), successor)
            }
            Rotation::Reused { customer_id, family_id } => {
                tracing::warn!(%customer_id, %family_id, "refresh token reused; its family is revoked");
                Err(IdentityError::InvalidRefreshToken)
            }
            Rotation::Invalid => Err(IdentityError::InvalidRefreshToken),
        }
    }

    /// Revokes the family of `refresh_token`. Unknown tokens are not an error: logging
    /// out twice, or with a token that already expired, leaves the same state.
    pub async fn logout(&self, refresh_token: &str) -> Result<(), IdentityError> {
        let presented = token::hash_refresh_token(refresh_token);
        if let Some(family_id) =
            self.store.revoke_refresh_family(&presented, OffsetDateTime::now_utc()).await?
        {
            tracing::info!(%family_id, "logged out");
        }
        Ok(())
    }

    /// The customer `id`.
    pub async fn customer(&self, id: Uuid) -> Result<Customer, IdentityError> {
        self.store.customer_by_id(id).await?.ok_or(IdentityError::CustomerNotFound)
    }

    /// The customer registered under `email`, if any (operators' search).
    pub async fn customer_by_email(&self, email: &Email) -> Result<Option<Customer>, IdentityError> {
        Ok(self.store.customer_by_email(email.as_str()).await?)
    }

    /// Applies a customer's changes to their own profile.
    pub async fn update_profile(&self, id: Uuid, update: ProfileUpdate) -> Result<Customer, IdentityError> {
        let update = CustomerUpdate {
            name: update.name.map(CustomerName::into_inner),
            phone: update.phone.map(|phone| phone.map(Phone::into_inner)),
            country: update.country.map(|country| country.map(Country::into_inner)),
            preferences: update.preferences.map(Preferences::into_inner),
        };
        self.store
            .update_customer(id, &update, OffsetDateTime::now_utc())
            .await?
            .ok_or(IdentityError::CustomerNotFound)
    }

    /// Sets a customer's role (admins only).
    /// Registers a customer with the admin role (`coffer admin create`): the same checks
    /// and event as a registration, then the role.
    pub async fn register_admin(
        &self,
        email: Email,
        password: NewPassword,
        name: CustomerName,
    ) -> Result<Customer, IdentityError> {
        let customer = self.register(email, password, name).await?;
        self.set_role(customer.id, Role::Admin).await
    }

    pub async fn set_role(&self, id: Uuid, role: Role) -> Result<Customer, IdentityError> {
        let customer = self
            .store
            .set_customer_role(id, role.into(), OffsetDateTime::now_utc())
            .await?
            .ok_or(IdentityError::CustomerNotFound)?;
        tracing::info!(customer_id = %id, role = ?role, "customer role changed");
        Ok(customer)
    }

    /// One page of customers after `after`, and whether there are more.
    pub async fn list_customers(
        &self,
        after: Option<Uuid>,
        limit: u32,
    ) -> Result<(Vec<Customer>, bool), IdentityError> {
        let mut customers = self.store.list_customers(after, limit + 1).await?;
        let has_more = customers.len() > limit as usize;
        customers.truncate(limit as usize);
        Ok((customers, has_more))
    }

    fn token_pair(
        &self,
        customer_id: Uuid,
        role: Role,
        refresh_token: String,
    ) -> Result<TokenPair, IdentityError> {
        Ok(TokenPair {
            access_token: self.keys.issue(customer_id, role, SystemTime::now())?,
            refresh_token,
            expires_in: token::ACCESS_TOKEN_TTL_SECONDS,
        })
    }
}
