-- Coffer reconciliation, PostgreSQL. Mirrors ../sqlite/0012_reconciliation.sql; never edit
-- once landed. Times are nanoseconds since the Unix epoch.

-- One settlement file matched against a system account: the counts for lists, and the
-- whole report (every line's outcome, the unmatched transfers) as JSON.
CREATE TABLE reconciliations (
    id                  UUID    NOT NULL PRIMARY KEY,
    account             TEXT    NOT NULL CHECK (account IN ('card_settlement', 'payouts')),
    currency            TEXT    NOT NULL,
    lines               BIGINT  NOT NULL,
    matched             BIGINT  NOT NULL,
    mismatched          BIGINT  NOT NULL,
    unmatched_lines     BIGINT  NOT NULL,
    unmatched_transfers BIGINT  NOT NULL,
    report              TEXT    NOT NULL,
    created_at          BIGINT  NOT NULL
);
CREATE INDEX reconciliations_latest ON reconciliations (created_at);

-- Transfers a reconciliation matched: each at most once, ever.
CREATE TABLE reconciled_transfers (
    transfer_id       UUID    NOT NULL PRIMARY KEY,
    reconciliation_id UUID    NOT NULL REFERENCES reconciliations (id),
    line              BIGINT  NOT NULL
);
