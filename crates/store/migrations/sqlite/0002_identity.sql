-- Coffer identity schema, SQLite: customers and their refresh tokens.
-- Mirrors ../postgres/0002_identity.sql; never edit once landed.
--
-- Ids are 16-byte UUID BLOBs (v7, so byte order is creation order and the id is the
-- paging cursor). Times are INTEGER microseconds since the Unix epoch, UTC.

CREATE TABLE customers (
    id            BLOB    NOT NULL PRIMARY KEY CHECK (length(id) = 16),
    -- Stored normalised (trimmed, lowercase), so UNIQUE is case-insensitive.
    email         TEXT    NOT NULL UNIQUE CHECK (email = lower(email)),
    name          TEXT    NOT NULL,
    phone         TEXT,
    country       TEXT    CHECK (country IS NULL OR length(country) = 2),
    -- A JSON object, as text (the service validates it).
    preferences   TEXT    NOT NULL DEFAULT '{}',
    kyc_status    TEXT    NOT NULL DEFAULT 'unverified'
                  CHECK (kyc_status IN ('unverified', 'pending', 'verified', 'rejected')),
    role          TEXT    NOT NULL DEFAULT 'customer' CHECK (role IN ('customer', 'admin')),
    -- An Argon2id PHC string; never the password.
    password_hash TEXT    NOT NULL,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
) WITHOUT ROWID;

-- One row per refresh token ever issued. A login starts a family; each rotation marks
-- the old row rotated (replaced_by the new one) and inserts the new one in the family.
-- Presenting a rotated token again is reuse: the whole family is revoked.
CREATE TABLE refresh_tokens (
    id          BLOB    NOT NULL PRIMARY KEY CHECK (length(id) = 16),
    customer_id BLOB    NOT NULL REFERENCES customers (id),
    family_id   BLOB    NOT NULL CHECK (length(family_id) = 16),
    -- SHA-256 of the token; the token itself is never stored.
    token_hash  BLOB    NOT NULL UNIQUE CHECK (length(token_hash) = 32),
    -- Absolute: rotation hands the family's expiry on, never extends it.
    expires_at  INTEGER NOT NULL,
    rotated_at  INTEGER,
    replaced_by BLOB,
    revoked_at  INTEGER,
    created_at  INTEGER NOT NULL
) WITHOUT ROWID;

CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_customer ON refresh_tokens (customer_id);
