-- Coffer credit reports (sandbox bureau), SQLite. Mirrors ../postgres/0015_credit.sql;
-- never edit once landed. Times are nanoseconds since the Unix epoch.

-- A customer's consent to pull their credit report: granted, and withdrawn (NULL while
-- in force). The next pull is due at next_pull_at (NULL once withdrawn).
CREATE TABLE credit_consents (
    customer_id  BLOB    NOT NULL PRIMARY KEY CHECK (length(customer_id) = 16),
    granted_at   INTEGER NOT NULL,
    withdrawn_at INTEGER,
    next_pull_at INTEGER,
    last_error   TEXT
) WITHOUT ROWID;
CREATE INDEX credit_consents_due ON credit_consents (next_pull_at);

-- Every report pulled, kept until the retention period after the consent is withdrawn.
CREATE TABLE credit_reports (
    id          BLOB    NOT NULL PRIMARY KEY CHECK (length(id) = 16),
    customer_id BLOB    NOT NULL CHECK (length(customer_id) = 16),
    pulled_at   INTEGER NOT NULL,
    -- NULL: the bureau could not score the customer (a thin file).
    score       INTEGER,
    band        TEXT    NOT NULL,
    report      TEXT    NOT NULL
) WITHOUT ROWID;
CREATE INDEX credit_reports_latest ON credit_reports (customer_id, pulled_at);
