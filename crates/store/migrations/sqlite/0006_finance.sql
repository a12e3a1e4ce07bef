-- Coffer personal-finance schema, SQLite. Mirrors ../postgres/0006_finance.sql; never edit
-- once landed. Times are nanoseconds since the Unix epoch; amounts are minor units.

-- A customer's categories: a two-level tree (parent_id NULL at the top). Names are
-- unique per customer.
CREATE TABLE categories (
    id          BLOB    NOT NULL PRIMARY KEY,
    customer_id BLOB    NOT NULL,
    parent_id   BLOB    REFERENCES categories (id),
    name        TEXT    NOT NULL,
    system      INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,
    UNIQUE (customer_id, name)
);

-- Expenses (and income: a negative direction is not used; income is a category).
-- categorized_by: 'rule:<id>', 'merchant', 'mcc' or 'manual'. import_hash makes a
-- re-imported statement line a duplicate.
CREATE TABLE expenses (
    id             BLOB    NOT NULL PRIMARY KEY,
    customer_id    BLOB    NOT NULL,
    amount         INTEGER NOT NULL CHECK (amount > 0),
    currency       TEXT    NOT NULL,
    description    TEXT,
    merchant       TEXT,
    mcc            TEXT,
    occurred_at    INTEGER NOT NULL,
    category_id    BLOB    NOT NULL REFERENCES categories (id),
    categorized_by TEXT    NOT NULL,
    confidence     REAL    NOT NULL,
    tags           TEXT    NOT NULL,
    notes          TEXT,
    wallet_id      BLOB,
    source         TEXT    NOT NULL CHECK (source IN ('manual', 'import', 'wallet', 'bank_sync')),
    import_hash    TEXT,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL,
    UNIQUE (customer_id, import_hash)
);
CREATE INDEX expenses_customer_time ON expenses (customer_id, occurred_at, id);
CREATE INDEX expenses_category ON expenses (category_id);

-- Per-customer categorisation rules, applied in position order; the first that matches
-- decides. triggers and actions are JSON.
CREATE TABLE rules (
    id          BLOB    NOT NULL PRIMARY KEY,
    customer_id BLOB    NOT NULL,
    position    INTEGER NOT NULL,
    name        TEXT    NOT NULL,
    strict      INTEGER NOT NULL,
    triggers    TEXT    NOT NULL,
    actions     TEXT    NOT NULL,
    created_at  INTEGER NOT NULL
);
CREATE INDEX rules_customer ON rules (customer_id, position);

-- Monthly budgets: an amount per category (its children included) and currency.
-- rollover: what was left last month is added to this month's amount.
CREATE TABLE budgets (
    id          BLOB    NOT NULL PRIMARY KEY,
    customer_id BLOB    NOT NULL,
    category_id BLOB    NOT NULL REFERENCES categories (id) ON DELETE CASCADE,
    currency    TEXT    NOT NULL,
    amount      INTEGER NOT NULL CHECK (amount > 0),
    rollover    INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,
    UNIQUE (customer_id, category_id, currency)
);

-- Scheduled and recurring payments from a wallet: to a wallet (to_wallet_id), to a
-- customer's default wallet (to_customer_id) or to a biller (biller, a merchant).
-- next_run_at is the due time of the next occurrence; a worker claims an occurrence by
-- setting claimed_until, and its ledger transfer id is derived from (id, occurrence), so
-- two workers, or a worker that crashed, never pay one occurrence twice.
CREATE TABLE scheduled_payments (
    id             BLOB    NOT NULL PRIMARY KEY,
    customer_id    BLOB    NOT NULL,
    from_wallet_id BLOB    NOT NULL,
    to_wallet_id   BLOB,
    to_customer_id BLOB,
    biller         TEXT,
    biller_mcc     TEXT,
    amount         INTEGER NOT NULL CHECK (amount > 0),
    currency       TEXT    NOT NULL,
    description    TEXT,
    frequency      TEXT    NOT NULL CHECK (frequency IN ('once', 'weekly', 'monthly')),
    start_at       INTEGER NOT NULL,
    end_at         INTEGER,
    next_run_at    INTEGER NOT NULL,
    status         TEXT    NOT NULL CHECK (status IN ('active', 'paused', 'cancelled', 'completed', 'failed')),
    attempts       INTEGER NOT NULL,
    retry_at       INTEGER,
    claimed_until  INTEGER,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL
);
CREATE INDEX scheduled_payments_due ON scheduled_payments (next_run_at) WHERE status = 'active';
CREATE INDEX scheduled_payments_customer ON scheduled_payments (customer_id, created_at);

-- One row per occurrence: how it went.
CREATE TABLE scheduled_runs (
    id            BLOB    NOT NULL PRIMARY KEY,
    payment_id    BLOB    NOT NULL REFERENCES scheduled_payments (id),
    occurrence_at INTEGER NOT NULL,
    status        TEXT    NOT NULL CHECK (status IN ('succeeded', 'retrying', 'failed')),
    attempts      INTEGER NOT NULL,
    transfer_id   BLOB,
    error         TEXT,
    updated_at    INTEGER NOT NULL,
    UNIQUE (payment_id, occurrence_at)
);
