-- Coffer bank connections, PostgreSQL. Mirrors ../sqlite/0008_bank.sql; never edit once
-- landed. Times are nanoseconds since the Unix epoch.

-- A customer's link to a bank through an aggregator (the built-in sandbox, or a real one
-- behind the same interface). access_token is the aggregator's credential for the link and
-- is never shown to clients. A worker (or a "sync now" request) claims a connection by
-- setting claimed_until with a compare-and-set, so two never sync one connection at once;
-- next_sync_at is when it is due; attempts counts the failed syncs since the last one that
-- worked (the backoff).
CREATE TABLE bank_connections (
    id                     UUID    NOT NULL PRIMARY KEY,
    customer_id            UUID    NOT NULL,
    provider               TEXT    NOT NULL,
    institution_id         TEXT    NOT NULL,
    provider_connection_id TEXT    NOT NULL,
    access_token           TEXT    NOT NULL,
    status                 TEXT    NOT NULL CHECK (status IN ('active', 'error')),
    next_sync_at           BIGINT  NOT NULL,
    attempts               BIGINT  NOT NULL,
    claimed_until          BIGINT,
    last_synced_at         BIGINT,
    last_error             TEXT,
    created_at             BIGINT  NOT NULL,
    updated_at             BIGINT  NOT NULL,
    UNIQUE (customer_id, provider, provider_connection_id)
);
CREATE INDEX bank_connections_due ON bank_connections (next_sync_at);
CREATE INDEX bank_connections_customer ON bank_connections (customer_id, id);

-- The accounts of a connection, as the aggregator lists them. sync_cursor is where the
-- next transactions call resumes; it is written only after the transactions before it.
CREATE TABLE bank_accounts (
    id                  UUID    NOT NULL PRIMARY KEY,
    connection_id       UUID    NOT NULL REFERENCES bank_connections (id) ON DELETE CASCADE,
    provider_account_id TEXT    NOT NULL,
    name                TEXT    NOT NULL,
    mask                TEXT,
    currency            TEXT    NOT NULL,
    account_type        TEXT    NOT NULL,
    sync_cursor         TEXT,
    last_synced_at      BIGINT,
    created_at          BIGINT  NOT NULL,
    UNIQUE (connection_id, provider_account_id)
);
