-- Coffer reconciliation, SQLite. Mirrors ../postgres/0012_reconciliation.sql; never edit
-- once landed. Times are nanoseconds since the Unix epoch.

-- One settlement file matched against a system account: the counts for lists, and the
-- whole report (every line's outcome, the unmatched transfers) as JSON.
CREATE TABLE reconciliations (
    id                  BLOB    NOT NULL PRIMARY KEY CHECK (length(id) = 16),
    account             TEXT    NOT NULL CHECK (account IN ('card_settlement', 'payouts')),
    currency            TEXT    NOT NULL,
    lines               INTEGER NOT NULL,
    matched             INTEGER NOT NULL,
    mismatched          INTEGER NOT NULL,
    unmatched_lines     INTEGER NOT NULL,
    unmatched_transfers INTEGER NOT NULL,
    report              TEXT    NOT NULL,
    created_at          INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX reconciliations_latest ON reconciliations (created_at);

-- Transfers a reconciliation matched: each at most once, ever.
CREATE TABLE reconciled_transfers (
    transfer_id       BLOB    NOT NULL PRIMARY KEY CHECK (length(transfer_id) = 16),
    reconciliation_id BLOB    NOT NULL REFERENCES reconciliations (id),
    line              INTEGER NOT NULL
) WITHOUT ROWID;
