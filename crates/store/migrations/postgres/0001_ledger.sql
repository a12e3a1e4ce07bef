-- Coffer ledger schema, PostgreSQL. Mirrors ../sqlite/0001_ledger.sql; never edit once landed.
--
-- Ids (u128) are UUIDs (uuid::Uuid::from_u128), whose ordering is numeric order. Amounts,
-- balances and timestamps (nanoseconds) are BIGINT: the ledger keeps them within i64
-- (ledger::AMOUNT_MAX). user_data_64 is the u64 bit-cast to BIGINT; u32 fields are BIGINT
-- and u16 fields INTEGER so that every value fits without a sign trick.

CREATE TABLE accounts (
    id              UUID    NOT NULL PRIMARY KEY,
    debits_pending  BIGINT  NOT NULL CHECK (debits_pending >= 0),
    debits_posted   BIGINT  NOT NULL CHECK (debits_posted >= 0),
    credits_pending BIGINT  NOT NULL CHECK (credits_pending >= 0),
    credits_posted  BIGINT  NOT NULL CHECK (credits_posted >= 0),
    user_data_128   UUID    NOT NULL,
    user_data_64    BIGINT  NOT NULL,
    user_data_32    BIGINT  NOT NULL,
    ledger          BIGINT  NOT NULL,
    code            INTEGER NOT NULL,
    flags           INTEGER NOT NULL,
    timestamp       BIGINT  NOT NULL
);

-- Immutable: rows are inserted, never updated or deleted.
CREATE TABLE transfers (
    id                UUID    NOT NULL PRIMARY KEY,
    debit_account_id  UUID    NOT NULL REFERENCES accounts (id),
    credit_account_id UUID    NOT NULL REFERENCES accounts (id),
    amount            BIGINT  NOT NULL CHECK (amount >= 0),
    pending_id        UUID    NOT NULL,
    user_data_128     UUID    NOT NULL,
    user_data_64      BIGINT  NOT NULL,
    user_data_32      BIGINT  NOT NULL,
    timeout           BIGINT  NOT NULL,
    ledger            BIGINT  NOT NULL,
    code              INTEGER NOT NULL,
    flags             INTEGER NOT NULL,
    timestamp         BIGINT  NOT NULL
);

-- An account's transfers, in time order, on either side (account_transfers).
CREATE INDEX transfers_debit_account ON transfers (debit_account_id, timestamp);
CREATE INDEX transfers_credit_account ON transfers (credit_account_id, timestamp);

-- Where each pending transfer stands; the transfer row itself never changes.
-- expires_at (nanoseconds) is NULL for pending transfers without a timeout.
CREATE TABLE pending_transfers (
    id         UUID   NOT NULL PRIMARY KEY REFERENCES transfers (id),
    status     TEXT   NOT NULL CHECK (status IN ('pending', 'posted', 'voided', 'expired')),
    expires_at BIGINT
);

-- The expiry worker's question: which pending transfers are due?
CREATE INDEX pending_transfers_due ON pending_transfers (expires_at)
    WHERE status = 'pending' AND expires_at IS NOT NULL;

-- Transfer ids whose creation failed for good, so that a retry answers id_already_failed.
CREATE TABLE transfer_failures (
    id     UUID NOT NULL PRIMARY KEY,
    result TEXT NOT NULL
);

-- Balances of `history` accounts just after each transfer (or expiry) touching them.
CREATE TABLE account_balances (
    account_id      UUID   NOT NULL REFERENCES accounts (id),
    timestamp       BIGINT NOT NULL,
    debits_pending  BIGINT NOT NULL,
    debits_posted   BIGINT NOT NULL,
    credits_pending BIGINT NOT NULL,
    credits_posted  BIGINT NOT NULL,
    PRIMARY KEY (account_id, timestamp)
);

-- The ledger's clock: the last timestamp it assigned. One row; every ledger writer locks
-- it first (SELECT … FOR UPDATE), which serialises writers across coffer processes and
-- keeps timestamps strictly increasing.
CREATE TABLE ledger_clock (
    id             INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    last_timestamp BIGINT  NOT NULL CHECK (last_timestamp >= 0)
);
INSERT INTO ledger_clock (id, last_timestamp) VALUES (1, 0);
