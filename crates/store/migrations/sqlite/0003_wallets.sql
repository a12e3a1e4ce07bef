-- Coffer wallet product schema, SQLite. Mirrors ../postgres/0003_wallets.sql; never edit
-- once landed. Times are nanoseconds since the Unix epoch (INTEGER), as in the ledger.

-- A wallet is a ledger account (same id) owned by a customer, in one currency.
CREATE TABLE wallets (
    id           BLOB    NOT NULL PRIMARY KEY REFERENCES accounts (id),
    customer_id  BLOB    NOT NULL,
    currency     TEXT    NOT NULL,
    type         TEXT    NOT NULL CHECK (type IN ('wallet', 'savings', 'business', 'tax', 'escrow', 'credit_card')),
    name         TEXT,
    credit_limit INTEGER NOT NULL CHECK (credit_limit >= 0),
    created_at   INTEGER NOT NULL
) WITHOUT ROWID;

-- A customer's wallets in creation order (listing, and the default wallet per currency).
CREATE INDEX wallets_customer ON wallets (customer_id, created_at);

-- What the wallet layer says about a ledger transfer; written in the transfer's own
-- transaction (see store::Command::CreateTransfersWithNotes).
CREATE TABLE transfer_notes (
    transfer_id BLOB NOT NULL PRIMARY KEY REFERENCES transfers (id),
    kind        TEXT NOT NULL,
    description TEXT
) WITHOUT ROWID;

-- Idempotency keys of POST requests: the request's hash and, once it is done, the
-- response to replay. locked_until bounds how long an interrupted request blocks its key.
CREATE TABLE idempotency_keys (
    owner_id        BLOB    NOT NULL,
    key             TEXT    NOT NULL,
    request_hash    BLOB    NOT NULL,
    response_status INTEGER,
    response_body   TEXT,
    locked_until    INTEGER NOT NULL,
    created_at      INTEGER NOT NULL,
    PRIMARY KEY (owner_id, key)
) WITHOUT ROWID;

-- Expiry of old keys.
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);
