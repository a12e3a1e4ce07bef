-- Coffer identity schema, PostgreSQL: customers and their refresh tokens.
-- Mirrors ../sqlite/0002_identity.sql; never edit once landed.
--
-- Ids are UUIDs (v7, so their order is creation order and the id is the paging cursor).
-- Times are BIGINT microseconds since the Unix epoch, UTC, as in the SQLite tree, so
-- both backends share one codec.

CREATE TABLE customers (
    id            UUID    NOT NULL PRIMARY KEY,
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
    created_at    BIGINT  NOT NULL,
    updated_at    BIGINT  NOT NULL
);

-- One row per refresh token ever issued. A login starts a family; each rotation marks
-- the old row rotated (replaced_by the new one) and inserts the new one in the family.
-- Presenting a rotated token again is reuse: the whole family is revoked.
CREATE TABLE refresh_tokens (
    id          UUID    NOT NULL PRIMARY KEY,
    customer_id UUID    NOT NULL REFERENCES customers (id),
    family_id   UUID    NOT NULL,
    -- SHA-256 of the token; the token itself is never stored.
    token_hash  BYTEA   NOT NULL UNIQUE CHECK (length(token_hash) = 32),
    -- Absolute: rotation hands the family's expiry on, never extends it.
    expires_at  BIGINT  NOT NULL,
    rotated_at  BIGINT,
    replaced_by UUID,
    revoked_at  BIGINT,
    created_at  BIGINT  NOT NULL
);

CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_customer ON refresh_tokens (customer_id);
