//! Customers and refresh tokens: the identity tables (`migrations/*/0002_identity.sql`).
//!
//! The SQL is written once with `$n` placeholders and run on either backend (SQLite
//! rewrites them to `?n`). Writes on SQLite use the writer connection, reads the reader
//! pool; PostgreSQL uses its one pool for both. Times are stored as microseconds since
//! the Unix epoch in both trees, so one codec serves both.
//!
//! Refresh-token rotation is the one multi-statement write, and it is atomic: a single
//! transaction marks the presented token rotated only if it is still active (the
//! conditional `UPDATE` is what decides a race between two rotations of one token) and
//! inserts its successor; a token that was already rotated is reuse, and the same
//! transaction revokes its whole family.

use crate::BeginWrite as _;
use sqlx::{AssertSqlSafe, Connection as _};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{Inner, Result, Store, StoreError, with_pool};

/// A customer's role. Admins may use the admin endpoints with their access token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CustomerRole {
    Customer,
    Admin,
}

impl CustomerRole {
    /// The stored (and API) spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Customer => "customer",
            Self::Admin => "admin",
        }
    }

    fn parse(text: &str) -> Result<Self> {
        match text {
            "customer" => Ok(Self::Customer),
            "admin" => Ok(Self::Admin),
            other => Err(StoreError::Corrupt(format!("unknown customer role {other:?}"))),
        }
    }
}

/// Where a customer's identity verification stands. Set by admins (or a KYC provider),
/// never by the customer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KycStatus {
    Unverified,
    Pending,
    Verified,
    Rejected,
}

impl KycStatus {
    /// The stored (and API) spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unverified => "unverified",
            Self::Pending => "pending",
            Self::Verified => "verified",
            Self::Rejected => "rejected",
        }
    }

    fn parse(text: &str) -> Result<Self> {
        match text {
            "unverified" => Ok(Self::Unverified),
            "pending" => Ok(Self::Pending),
            "verified" => Ok(Self::Verified),
            "rejected" => Ok(Self::Rejected),
            other => Err(StoreError::Corrupt(format!("unknown kyc status {other:?}"))),
        }
    }
}

/// A customer to insert. The caller has already validated and normalised every field
/// (the email lowercase, the password hashed).
#[derive(Clone)]
pub struct NewCustomer {
    pub id: Uuid,
    /// Normalised: trimmed and lowercase (the table checks the latter).
    pub email: String,
    pub name: String,
    /// An Argon2id PHC string.
    pub password_hash: String,
    pub role: CustomerRole,
    pub created_at: OffsetDateTime,
}

impl std::fmt::Debug for NewCustomer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewCustomer")
            .field("id", &self.id)
            .field("email", &self.email)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

/// A stored customer.
#[derive(Clone, PartialEq, Eq)]
pub struct Customer {
    pub id: Uuid,
    pub email: String,
    pub name: String,
    pub phone: Option<String>,
    /// ISO 3166-1 alpha-2, uppercase.
    pub country: Option<String>,
    /// A JSON object, as text.
    pub preferences: String,
    pub kyc_status: KycStatus,
    pub role: CustomerRole,
    /// An Argon2id PHC string. Kept out of `Debug` so it never reaches a log line.
    pub password_hash: String,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

impl std::fmt::Debug for Customer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Customer")
            .field("id", &self.id)
            .field("email", &self.email)
            .field("role", &self.role)
            .field("kyc_status", &self.kyc_status)
            .finish_non_exhaustive()
    }
}

/// The fields a customer may change about themselves: nothing else can be expressed, so
/// no request can set a role, a KYC status or an email through it. `None` leaves a
/// field as it is; `Some(None)` clears a nullable one.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CustomerUpdate {
    pub name: Option<String>,
    pub phone: Option<Option<String>>,
    pub country: Option<Option<String>>,
    /// A JSON object, as text.
    pub preferences: Option<String>,
}

/// Why a customer could not be created.
#[derive(Debug, thiserror::Error)]
pub enum CreateCustomerError {
    /// Another customer has this email (compared case-insensitively).
    #[error("the email address is already registered")]
    EmailTaken,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A refresh token to store: only its SHA-256, never the token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewRefreshToken {
    pub id: Uuid,
    pub customer_id: Uuid,
    /// The login this token descends from; reuse revokes every token of the family.
    pub family_id: Uuid,
    pub token_hash: [u8; 32],
    pub expires_at: OffsetDateTime,
    pub created_at: OffsetDateTime,
}

/// What presenting a refresh token for rotation did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rotation {
    /// The token was active; it is now rotated and its successor (same family, same
    /// absolute expiry) is stored.
    Rotated { customer_id: Uuid, family_id: Uuid, expires_at: OffsetDateTime },
    /// The token had already been rotated: someone replayed it. The whole family is now
    /// revoked, so the legitimate holder's newest token stops working too.
    Reused { customer_id: Uuid, family_id: Uuid },
    /// No such token, or it expired, or its family was revoked.
    Invalid,
}

const CUSTOMER_COLUMNS: &str = "id, email, name, phone, country, preferences, kyc_status, role, \
     password_hash, created_at, updated_at";

/// A row of `customers` as the database returns it.
#[derive(sqlx::FromRow)]
struct CustomerRow {
    id: Uuid,
    email: String,
    name: String,
    phone: Option<String>,
    country: Option<String>,
    preferences: String,
    kyc_status: String,
    role: String,
    password_hash: String,
    created_at: i64,
    updated_at: i64,
}

impl TryFrom<CustomerRow> for Customer {
    type Error = StoreError;

    fn try_from(row: CustomerRow) -> Result<Self> {
        Ok(Self {
            id: row.id,
            email: row.email,
            name: row.name,
            phone: row.phone,
            country: row.country,
            preferences: row.preferences,
            kyc_status: KycStatus::parse(&row.kyc_status)?,
            role: CustomerRole::parse(&row.role)?,
            password_hash: row.password_hash,
            created_at: from_micros(row.created_at)?,
            updated_at: from_micros(row.updated_at)?,
        })
    }
}

/// The columns of `refresh_tokens` that rotation needs.
#[derive(sqlx::FromRow)]
struct RefreshRow {
    customer_id: Uuid,
    family_id: Uuid,
    expires_at: i64,
    rotated_at: Option<i64>,
    revoked_at: Option<i64>,
}

/// Microseconds since the Unix epoch: the stored form of every identity time.
fn micros(time: OffsetDateTime) -> i64 {
    i64::try_from(time.unix_timestamp_nanos() / 1_000).expect("a time within ±292,000 years")
}

fn from_micros(value: i64) -> Result<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(value) * 1_000)
        .map_err(|_| StoreError::Corrupt(format!("time out of range: {value} µs")))
}

/// Runs `$body` inside a write transaction bound to `$tx` (`BEGIN IMMEDIATE` on SQLite,
/// so the write lock is held before the first read), committing if it returns `Ok`.
macro_rules! in_transaction {
    ($store:expr, |$tx:ident, $sql:ident| $body:expr) => {
        match &*$store.inner {
            Inner::Sqlite(backend) => {
                let _turn = backend.write_turn().await;
                let mut connection = backend.writer.acquire().await?;
                let mut $tx = connection.begin_with("BEGIN IMMEDIATE").await?;
                let $sql = |text: &str| AssertSqlSafe(crate::sqlite::sqlite_placeholders(text));
                let output = $body;
                $tx.commit().await?;
                output
            }
            Inner::Postgres(backend) => {
                let mut $tx = backend.pool.begin().await?;
                let $sql = |text: &str| AssertSqlSafe(text.to_owned());
                let output = $body;
                $tx.commit().await?;
                output
            }
        }
    };
}

impl Store {
    /// Inserts a customer; [`CreateCustomerError::EmailTaken`] when the email is in use.
    pub async fn create_customer(
        &self,
        customer: &NewCustomer,
        events: &[crate::NewEvent],
    ) -> Result<Customer, CreateCustomerError> {
        assert_eq!(customer.email, customer.email.to_lowercase(), "emails are stored normalised");
        let statement = format!(
            "INSERT INTO customers (id, email, name, password_hash, role, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $6) RETURNING {CUSTOMER_COLUMNS}"
        );
        let inserted: std::result::Result<CustomerRow, sqlx::Error> =
            with_pool!(self, write, |write, sql| {
                async {
                    let mut tx = write.begin_write().await?;
                    let row = sqlx::query_as(sql(&statement))
                        .bind(customer.id)
                        .bind(&customer.email)
                        .bind(&customer.name)
                        .bind(&customer.password_hash)
                        .bind(customer.role.as_str())
                        .bind(micros(customer.created_at))
                        .fetch_one(&mut *tx)
                        .await?;
                    crate::outbox::insert_events!(tx, sql, events);
                    tx.commit().await?;
                    Ok(row)
                }
                .await
            });
        match inserted {
            Ok(row) => Ok(Customer::try_from(row)?),
            // The id is a fresh UUIDv7, so the only unique column that can clash is email.
            Err(sqlx::Error::Database(error)) if error.is_unique_violation() => {
                Err(CreateCustomerError::EmailTaken)
            }
            Err(error) => Err(CreateCustomerError::Store(error.into())),
        }
    }

    /// The customer with this normalised (lowercase) email, if any.
    pub async fn customer_by_email(&self, email: &str) -> Result<Option<Customer>> {
        let statement = format!("SELECT {CUSTOMER_COLUMNS} FROM customers WHERE email = $1");
        let row: Option<CustomerRow> = with_pool!(self, read, |read, sql| {
            sqlx::query_as(sql(&statement)).bind(email).fetch_optional(read).await?
        });
        row.map(Customer::try_from).transpose()
    }

    /// The customer `id`, if any.
    pub async fn customer_by_id(&self, id: Uuid) -> Result<Option<Customer>> {
        let statement = format!("SELECT {CUSTOMER_COLUMNS} FROM customers WHERE id = $1");
        let row: Option<CustomerRow> = with_pool!(self, read, |read, sql| {
            sqlx::query_as(sql(&statement)).bind(id).fetch_optional(read).await?
        });
        row.map(Customer::try_from).transpose()
    }

    /// The customers among `ids`, in one read per [`crate::ROWS_PER_STATEMENT`].
    pub async fn customers_by_ids(&self, ids: &[Uuid]) -> Result<Vec<Customer>> {
        let mut customers = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(crate::ROWS_PER_STATEMENT) {
            let statement = format!(
                "SELECT {CUSTOMER_COLUMNS} FROM customers WHERE id IN ({})",
                crate::numbered("$", chunk.len())
            );
            let rows: Vec<CustomerRow> = with_pool!(self, read, |read, sql| {
                let mut query = sqlx::query_as(sql(&statement));
                for id in chunk {
                    query = query.bind(*id);
                }
                query.fetch_all(read).await?
            });
            for row in rows {
                customers.push(Customer::try_from(row)?);
            }
        }
        Ok(customers)
    }

    /// Applies the allow-listed changes in one statement (so two concurrent updates of
    /// different fields both land); `None` when there is no such customer.
    pub async fn update_customer(
        &self,
        id: Uuid,
        update: &CustomerUpdate,
        now: OffsetDateTime,
    ) -> Result<Option<Customer>> {
        // Each field is a (change it?, new value) pair of parameters.
        let statement = format!(
            "UPDATE customers SET \
             name = CASE WHEN $2 THEN $3 ELSE name END, \
             phone = CASE WHEN $4 THEN $5 ELSE phone END, \
             country = CASE WHEN $6 THEN $7 ELSE country END, \
             preferences = CASE WHEN $8 THEN $9 ELSE preferences END, \
             updated_at = $10 \
             WHERE id = $1 RETURNING {CUSTOMER_COLUMNS}"
        );
        let row: Option<CustomerRow> = with_pool!(self, write, |write, sql| {
            sqlx::query_as(sql(&statement))
                .bind(id)
                .bind(update.name.is_some())
                .bind(update.name.clone())
                .bind(update.phone.is_some())
                .bind(update.phone.clone().flatten())
                .bind(update.country.is_some())
                .bind(update.country.clone().flatten())
                .bind(update.preferences.is_some())
                .bind(update.preferences.clone())
                .bind(micros(now))
                .fetch_optional(write)
                .await?
        });
        row.map(Customer::try_from).transpose()
    }

    /// Sets a customer's role (an administrative action); `None` when there is no such
    /// customer.
    pub async fn set_customer_role(
        &self,
        id: Uuid,
        role: CustomerRole,
        now: OffsetDateTime,
    ) -> Result<Option<Customer>> {
        let statement = format!(
            "UPDATE customers SET role = $2, updated_at = $3 WHERE id = $1 RETURNING {CUSTOMER_COLUMNS}"
        );
        let row: Option<CustomerRow> = with_pool!(self, write, |write, sql| {
            sqlx::query_as(sql(&statement))
                .bind(id)
                .bind(role.as_str())
                .bind(micros(now))
                .fetch_optional(write)
                .await?
        });
        row.map(Customer::try_from).transpose()
    }

    /// Up to `limit` customers with the admin role, oldest id first: whom operators' events
    /// are told to.
    pub async fn admins(&self, limit: u32) -> Result<Vec<Customer>> {
        let statement =
            format!("SELECT {CUSTOMER_COLUMNS} FROM customers WHERE role = 'admin' ORDER BY id LIMIT $1");
        let rows: Vec<CustomerRow> = with_pool!(self, read, |read, sql| {
            sqlx::query_as(sql(&statement)).bind(i64::from(limit)).fetch_all(read).await?
        });
        rows.into_iter().map(Customer::try_from).collect()
    }

    /// Up to `limit` customers with ids above `after` (all when `None`), in id order —
    /// which is creation order, ids being UUIDv7. The caller caps `limit`.
    pub async fn list_customers(&self, after: Option<Uuid>, limit: u32) -> Result<Vec<Customer>> {
        let statement = match after {
            Some(_) => format!("SELECT {CUSTOMER_COLUMNS} FROM customers WHERE id > $1 ORDER BY id LIMIT $2"),
            None => format!("SELECT {CUSTOMER_COLUMNS} FROM customers ORDER BY id LIMIT $1"),
        };
        let rows: Vec<CustomerRow> = with_pool!(self, read, |read, sql| {
            let query = sqlx::query_as(sql(&statement));
            let query = match after {
                Some(after) => query.bind(after),
                None => query,
            };
            query.bind(i64::from(limit)).fetch_all(read).await?
        });
        rows.into_iter().map(Customer::try_from).collect()
    }

    /// Stores a new refresh token (the first of a family, at login).
    pub async fn insert_refresh_token(
        &self,
        token: &NewRefreshToken,
        events: &[crate::NewEvent],
    ) -> Result<()> {
        let statement = "INSERT INTO refresh_tokens \
             (id, customer_id, family_id, token_hash, expires_at, created_at) VALUES ($1, $2, $3, $4, $5, $6)";
        with_pool!(self, write, |write, sql| {
            let mut tx = write.begin_write().await?;
            sqlx::query(sql(statement))
                .bind(token.id)
                .bind(token.customer_id)
                .bind(token.family_id)
                .bind(token.token_hash.as_slice())
                .bind(micros(token.expires_at))
                .bind(micros(token.created_at))
                .execute(&mut *tx)
                .await?;
            crate::outbox::insert_events!(tx, sql, events);
            tx.commit().await?;
        });
        Ok(())
    }

    /// Rotates the token whose hash is `presented`: in one transaction, marks it rotated
    /// (only if still active) and stores `successor_hash` under `successor_id` in the same
    /// family with the same absolute expiry. A token that was already rotated is reuse:
    /// the whole family is revoked in the same transaction.
    pub async fn rotate_refresh_token(
        &self,
        presented: &[u8; 32],
        successor_id: Uuid,
        successor_hash: &[u8; 32],
        now: OffsetDateTime,
    ) -> Result<Rotation> {
        let now_micros = micros(now);
        let mark_rotated = "UPDATE refresh_tokens SET rotated_at = $2, replaced_by = $3 \
             WHERE token_hash = $1 AND rotated_at IS NULL AND revoked_at IS NULL AND expires_at > $2 \
             RETURNING customer_id, family_id, expires_at, rotated_at, revoked_at";
        let insert_successor = "INSERT INTO refresh_tokens \
             (id, customer_id, family_id, token_hash, expires_at, created_at) VALUES ($1, $2, $3, $4, $5, $6)";
        let find = "SELECT customer_id, family_id, expires_at, rotated_at, revoked_at \
             FROM refresh_tokens WHERE token_hash = $1";
        let revoke_family =
            "UPDATE refresh_tokens SET revoked_at = $2 WHERE family_id = $1 AND revoked_at IS NULL";
        let rotation = in_transaction!(self, |tx, sql| {
            let rotated: Option<RefreshRow> = sqlx::query_as(sql(mark_rotated))
                .bind(presented.as_slice())
                .bind(now_micros)
                .bind(successor_id)
                .fetch_optional(&mut *tx)
                .await?;
            if let Some(old) = rotated {
                sqlx::query(sql(insert_successor))
                    .bind(successor_id)
                    .bind(old.customer_id)
                    .bind(old.family_id)
                    .bind(successor_hash.as_slice())
                    .bind(old.expires_at)
                    .bind(now_micros)
                    .execute(&mut *tx)
                    .await?;
                Rotation::Rotated {
                    customer_id: old.customer_id,
                    family_id: old.family_id,
                    expires_at: from_micros(old.expires_at)?,
                }
            } else {
                let found: Option<RefreshRow> =
                    sqlx::query_as(sql(find)).bind(presented.as_slice()).fetch_optional(&mut *tx).await?;
                match found {
                    Some(token) if token.rotated_at.is_some() => {
                        sqlx::query(sql(revoke_family))
                            .bind(token.family_id)
                            .bind(now_micros)
                            .execute(&mut *tx)
                            .await?;
                        Rotation::Reused { customer_id: token.customer_id, family_id: token.family_id }
                    }
                    // Unknown, expired, or revoked (by logout or earlier reuse).
                    Some(token) => {
                        debug_assert!(token.revoked_at.is_some() || token.expires_at <= now_micros);
                        Rotation::Invalid
                    }
                    None => Rotation::Invalid,
                }
            }
        });
        Ok(rotation)
    }

    /// Revokes every token of the family that the token hashed as `presented` belongs
    /// to (logout). Returns the family, or `None` when no such token exists.
    pub async fn revoke_refresh_family(
        &self,
        presented: &[u8; 32],
        now: OffsetDateTime,
    ) -> Result<Option<Uuid>> {
        let find = "SELECT customer_id, family_id, expires_at, rotated_at, revoked_at \
             FROM refresh_tokens WHERE token_hash = $1";
        let revoke_family =
            "UPDATE refresh_tokens SET revoked_at = $2 WHERE family_id = $1 AND revoked_at IS NULL";
        let family = in_transaction!(self, |tx, sql| {
            let found: Option<RefreshRow> =
                sqlx::query_as(sql(find)).bind(presented.as_slice()).fetch_optional(&mut *tx).await?;
            match found {
                Some(token) => {
                    sqlx::query(sql(revoke_family))
                        .bind(token.family_id)
                        .bind(micros(now))
                        .execute(&mut *tx)
                        .await?;
                    Some(token.family_id)
                }
                None => None,
            }
        });
        Ok(family)
    }
}

/// A signed-in session: a refresh-token family and its current token, as the web
/// console's cookie and the session list see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionRow {
    pub customer_id: Uuid,
    pub family_id: Uuid,
    /// When the family's first token was issued (the sign-in).
    pub started_at: OffsetDateTime,
    /// The family's absolute end.
    pub expires_at: OffsetDateTime,
}

/// Sessions listed per customer at most (the newest first).
pub const SESSIONS_LISTED_MAX: u32 = 100;

#[derive(sqlx::FromRow)]
struct SessionColumns {
    customer_id: Uuid,
    family_id: Uuid,
    started_at: i64,
    expires_at: i64,
}

impl TryFrom<SessionColumns> for SessionRow {
    type Error = StoreError;

    fn try_from(row: SessionColumns) -> Result<Self> {
        Ok(Self {
            customer_id: row.customer_id,
            family_id: row.family_id,
            started_at: from_micros(row.started_at)?,
            expires_at: from_micros(row.expires_at)?,
        })
    }
}

/// A family's current token: neither rotated nor revoked, and not expired at `$1`-bound
/// time. The session columns read the family's first issue time.
const SESSION_COLUMNS: &str = "t.customer_id, t.family_id, t.expires_at, \
     (SELECT MIN(f.created_at) FROM refresh_tokens f WHERE f.family_id = t.family_id) AS started_at";

impl Store {
    /// The session whose current token hashes to `presented`: `None` when the token is
    /// unknown, rotated, revoked or expired at `now`.
    pub async fn session(&self, presented: &[u8; 32], now: OffsetDateTime) -> Result<Option<SessionRow>> {
        let statement = format!(
            "SELECT {SESSION_COLUMNS} FROM refresh_tokens t WHERE t.token_hash = $1 \
             AND t.rotated_at IS NULL AND t.revoked_at IS NULL AND t.expires_at > $2"
        );
        let row: Option<SessionColumns> = with_pool!(self, read, |read, sql| {
            sqlx::query_as(sql(&statement))
                .bind(presented.as_slice())
                .bind(micros(now))
                .fetch_optional(read)
                .await?
        });
        row.map(SessionRow::try_from).transpose()
    }

    /// The customer's live sessions (API logins and console sign-ins), newest first, at
    /// most [`SESSIONS_LISTED_MAX`].
    pub async fn sessions(&self, customer_id: Uuid, now: OffsetDateTime) -> Result<Vec<SessionRow>> {
        let statement = format!(
            "SELECT {SESSION_COLUMNS} FROM refresh_tokens t WHERE t.customer_id = $1 \
             AND t.rotated_at IS NULL AND t.revoked_at IS NULL AND t.expires_at > $2 \
             ORDER BY started_at DESC, t.family_id LIMIT $3"
        );
        let rows: Vec<SessionColumns> = with_pool!(self, read, |read, sql| {
            sqlx::query_as(sql(&statement))
                .bind(customer_id)
                .bind(micros(now))
                .bind(i64::from(SESSIONS_LISTED_MAX))
                .fetch_all(read)
                .await?
        });
        rows.into_iter().map(SessionRow::try_from).collect()
    }

    /// Ends one of the customer's sessions (every token of the family). `false` when the
    /// customer has no such live family: another customer's family is never touched.
    pub async fn revoke_session(
        &self,
        customer_id: Uuid,
        family_id: Uuid,
        now: OffsetDateTime,
    ) -> Result<bool> {
        let revoke = "UPDATE refresh_tokens SET revoked_at = $3 \
             WHERE customer_id = $1 AND family_id = $2 AND revoked_at IS NULL";
        let revoked = in_transaction!(self, |tx, sql| {
            sqlx::query(sql(revoke))
                .bind(customer_id)
                .bind(family_id)
                .bind(micros(now))
                .execute(&mut *tx)
                .await?
                .rows_affected()
        });
        Ok(revoked > 0)
    }

    /// Replaces the customer's password hash and ends every session but `keep` (the one
    /// that asked for the change); `false` when there is no such customer.
    pub async fn set_password_hash(
        &self,
        customer_id: Uuid,
        password_hash: &str,
        keep: Option<Uuid>,
        now: OffsetDateTime,
    ) -> Result<bool> {
        let update = "UPDATE customers SET password_hash = $2, updated_at = $3 WHERE id = $1";
        let revoke_others = "UPDATE refresh_tokens SET revoked_at = $2 \
             WHERE customer_id = $1 AND revoked_at IS NULL AND family_id <> $3";
        let changed = in_transaction!(self, |tx, sql| {
            let changed = sqlx::query(sql(update))
                .bind(customer_id)
                .bind(password_hash)
                .bind(micros(now))
                .execute(&mut *tx)
                .await?
                .rows_affected();
            sqlx::query(sql(revoke_others))
                .bind(customer_id)
                .bind(micros(now))
                .bind(keep.unwrap_or(Uuid::nil()))
                .execute(&mut *tx)
                .await?;
            changed
        });
        Ok(changed > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip_at_microsecond_precision() {
        let time = OffsetDateTime::from_unix_timestamp_nanos(1_700_000_000_123_456_789).unwrap();
        let back = from_micros(micros(time)).unwrap();
        assert_eq!(back.unix_timestamp_nanos(), 1_700_000_000_123_456_000);
    }

    #[test]
    fn unknown_stored_enums_are_corrupt() {
        assert!(matches!(CustomerRole::parse("root"), Err(StoreError::Corrupt(_))));
        assert!(matches!(KycStatus::parse("maybe"), Err(StoreError::Corrupt(_))));
        assert_eq!(CustomerRole::parse("admin").unwrap(), CustomerRole::Admin);
        assert_eq!(KycStatus::parse("verified").unwrap().as_str(), "verified");
    }
}
