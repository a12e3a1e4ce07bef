-- Coffer payments schema, SQLite. Mirrors ../postgres/0004_payments.sql; never edit once
-- landed. Times are nanoseconds since the Unix epoch.

-- Card top-ups: pending until the gateway's answer is known and the ledger posted.
-- The payment-method token is not stored: it is the gateway's secret, and the charge
-- is found again by its idempotency key (the top-up id).
CREATE TABLE top_ups (
    id           BLOB    NOT NULL PRIMARY KEY CHECK (length(id) = 16),
    customer_id  BLOB    NOT NULL,
    wallet_id    BLOB    NOT NULL REFERENCES wallets (id),
    amount       INTEGER NOT NULL CHECK (amount > 0),
    currency     TEXT    NOT NULL,
    status       TEXT    NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed')),
    failure_code TEXT,
    provider_id  TEXT,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
) WITHOUT ROWID;

-- The recovery worker's question: which top-ups are still pending?
CREATE INDEX top_ups_pending ON top_ups (created_at) WHERE status = 'pending';

-- Withdrawals (payouts): a hold on the wallet, then posted or voided.
CREATE TABLE withdrawals (
    id           BLOB    NOT NULL PRIMARY KEY CHECK (length(id) = 16),
    customer_id  BLOB    NOT NULL,
    wallet_id    BLOB    NOT NULL REFERENCES wallets (id),
    amount       INTEGER NOT NULL CHECK (amount > 0),
    currency     TEXT    NOT NULL,
    status       TEXT    NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed')),
    failure_code TEXT,
    provider_id  TEXT,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
) WITHOUT ROWID;

CREATE INDEX withdrawals_pending ON withdrawals (created_at) WHERE status = 'pending';
