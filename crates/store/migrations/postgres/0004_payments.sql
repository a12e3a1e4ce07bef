-- Coffer payments schema, PostgreSQL. Mirrors ../sqlite/0004_payments.sql; never edit once
-- landed. Times are nanoseconds since the Unix epoch.

-- Card top-ups: pending until the gateway's answer is known and the ledger posted.
-- The payment-method token is not stored: it is the gateway's secret, and the charge
-- is found again by its idempotency key (the top-up id).
CREATE TABLE top_ups (
    id           UUID    NOT NULL PRIMARY KEY,
    customer_id  UUID    NOT NULL,
    wallet_id    UUID    NOT NULL REFERENCES wallets (id),
    amount       BIGINT  NOT NULL CHECK (amount > 0),
    currency     TEXT    NOT NULL,
    status       TEXT    NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed')),
    failure_code TEXT,
    provider_id  TEXT,
    created_at   BIGINT  NOT NULL,
    updated_at   BIGINT  NOT NULL
);

-- The recovery worker's question: which top-ups are still pending?
CREATE INDEX top_ups_pending ON top_ups (created_at) WHERE status = 'pending';

-- Withdrawals (payouts): a hold on the wallet, then posted or voided.
CREATE TABLE withdrawals (
    id           UUID    NOT NULL PRIMARY KEY,
    customer_id  UUID    NOT NULL,
    wallet_id    UUID    NOT NULL REFERENCES wallets (id),
    amount       BIGINT  NOT NULL CHECK (amount > 0),
    currency     TEXT    NOT NULL,
    status       TEXT    NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed')),
    failure_code TEXT,
    provider_id  TEXT,
    created_at   BIGINT  NOT NULL,
    updated_at   BIGINT  NOT NULL
);

CREATE INDEX withdrawals_pending ON withdrawals (created_at) WHERE status = 'pending';
