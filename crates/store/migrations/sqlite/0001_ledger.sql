-- Coffer ledger schema, SQLite. Mirrors ../postgres/0001_ledger.sql; never edit once landed.
--
-- Ids (u128) are 16-byte big-endian BLOBs (uuid::Uuid::from_u128), so byte order is
-- numeric order. Amounts, balances and timestamps (nanoseconds) are INTEGER: the ledger
-- keeps them within i64 (ledger::AMOUNT_MAX). user_data_64 is the u64 bit-cast to i64.
-- Tables keyed by 16-byte ids are WITHOUT ROWID so that the primary key is the row's
-- only B-tree.

CREATE TABLE accounts (
    id              BLOB    NOT NULL PRIMARY KEY CHECK (length(id) = 16),
    debits_pending  INTEGER NOT NULL CHECK (debits_pending >= 0),
    debits_posted   INTEGER NOT NULL CHECK (debits_posted >= 0),
    credits_pending INTEGER NOT NULL CHECK (credits_pending >= 0),
    credits_posted  INTEGER NOT NULL CHECK (credits_posted >= 0),
    user_data_128   BLOB    NOT NULL,
    user_data_64    INTEGER NOT NULL,
    user_data_32    INTEGER NOT NULL,
    ledger          INTEGER NOT NULL,
    code            INTEGER NOT NULL,
    flags           INTEGER NOT NULL,
    timestamp       INTEGER NOT NULL
) WITHOUT ROWID;

-- Immutable: rows are inserted, never updated or deleted. Keyed by the ledger's
-- timestamp (unique and strictly increasing), so inserts append to the table's B-tree
-- instead of landing at random places as client-chosen ids would; ids are a unique index.
CREATE TABLE transfers (
    timestamp         INTEGER NOT NULL PRIMARY KEY,
    id                BLOB    NOT NULL UNIQUE CHECK (length(id) = 16),
    debit_account_id  BLOB    NOT NULL REFERENCES accounts (id),
    credit_account_id BLOB    NOT NULL REFERENCES accounts (id),
    amount            INTEGER NOT NULL CHECK (amount >= 0),
    pending_id        BLOB    NOT NULL,
    user_data_128     BLOB    NOT NULL,
    user_data_64      INTEGER NOT NULL,
    user_data_32      INTEGER NOT NULL,
    timeout           INTEGER NOT NULL,
    ledger            INTEGER NOT NULL,
    code              INTEGER NOT NULL,
    flags             INTEGER NOT NULL
);

-- An account's transfers, in time order, on either side (account_transfers).
CREATE INDEX transfers_debit_account ON transfers (debit_account_id, timestamp);
CREATE INDEX transfers_credit_account ON transfers (credit_account_id, timestamp);

-- Where each pending transfer stands; the transfer row itself never changes.
-- expires_at (nanoseconds) is NULL for pending transfers without a timeout.
CREATE TABLE pending_transfers (
    id         BLOB    NOT NULL PRIMARY KEY REFERENCES transfers (id),
    status     TEXT    NOT NULL CHECK (status IN ('pending', 'posted', 'voided', 'expired')),
    expires_at INTEGER
) WITHOUT ROWID;

-- The expiry worker's question: which pending transfers are due?
CREATE INDEX pending_transfers_due ON pending_transfers (expires_at)
    WHERE status = 'pending' AND expires_at IS NOT NULL;

-- Transfer ids whose creation failed for good, so that a retry answers id_already_failed.
CREATE TABLE transfer_failures (
    id     BLOB NOT NULL PRIMARY KEY CHECK (length(id) = 16),
    result TEXT NOT NULL
) WITHOUT ROWID;

-- Balances of `history` accounts just after each transfer (or expiry) touching them.
CREATE TABLE account_balances (
    account_id      BLOB    NOT NULL REFERENCES accounts (id),
    timestamp       INTEGER NOT NULL,
    debits_pending  INTEGER NOT NULL,
    debits_posted   INTEGER NOT NULL,
    credits_pending INTEGER NOT NULL,
    credits_posted  INTEGER NOT NULL,
    PRIMARY KEY (account_id, timestamp)
) WITHOUT ROWID;

-- The ledger's clock: the last timestamp it assigned. One row; timestamps stay strictly
-- increasing across restarts and wall-clock steps backwards.
CREATE TABLE ledger_clock (
    id             INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    last_timestamp INTEGER NOT NULL CHECK (last_timestamp >= 0)
);
INSERT INTO ledger_clock (id, last_timestamp) VALUES (1, 0);
