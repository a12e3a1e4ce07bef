-- Coffer credit reports (sandbox bureau), PostgreSQL. Mirrors ../sqlite/0015_credit.sql;
-- never edit once landed. Times are nanoseconds since the Unix epoch.

-- A customer's consent to pull their credit report: granted, and withdrawn (NULL while
-- in force). The next pull is due at next_pull_at (NULL once withdrawn).
CREATE TABLE credit_consents (
    customer_id  UUID    NOT NULL PRIMARY KEY,
    granted_at   BIGINT  NOT NULL,
    withdrawn_at BIGINT,
    next_pull_at BIGINT,
    last_error   TEXT
);
CREATE INDEX credit_consents_due ON credit_consents (next_pull_at);

-- Every report pulled, kept until the retention period after the consent is withdrawn.
CREATE TABLE credit_reports (
    id          UUID    NOT NULL PRIMARY KEY,
    customer_id UUID    NOT NULL,
    pulled_at   BIGINT  NOT NULL,
    -- NULL: the bureau could not score the customer (a thin file).
    score       BIGINT,
    band        TEXT    NOT NULL,
    report      TEXT    NOT NULL
);
CREATE INDEX credit_reports_latest ON credit_reports (customer_id, pulled_at);
