-- Coffer platform analytics, PostgreSQL. Mirrors ../sqlite/0007_analytics.sql; never edit
-- once landed. Every analytics_* row is a read-side projection of the event stream
-- (coffer::analytics): written by its consumer, idempotently per event, and rebuilt from
-- the outbox by `coffer projections rebuild`. Days are 'YYYY-MM-DD' and months 'YYYY-MM'
-- (UTC, from the event's time); seq is the event's outbox position, so a late,
-- older event never overwrites a newer fact.

-- Posted money movement per day, currency and operation (top_up, transfer, payment, …).
CREATE TABLE analytics_daily_volume (
    day       TEXT    NOT NULL,
    currency  TEXT    NOT NULL,
    operation TEXT    NOT NULL,
    volume    BIGINT  NOT NULL,
    count     BIGINT  NOT NULL,
    PRIMARY KEY (day, currency, operation)
);

-- The customers active on a day (something they did: see coffer::analytics::Day), and
-- whether they registered then.
CREATE TABLE analytics_daily_customers (
    day         TEXT    NOT NULL,
    customer_id UUID    NOT NULL,
    registered  BOOLEAN NOT NULL,
    PRIMARY KEY (day, customer_id)
);
CREATE INDEX analytics_daily_customers_customer ON analytics_daily_customers (customer_id, day);

-- Each wallet's latest balance.
CREATE TABLE analytics_balances (
    wallet_id   UUID    NOT NULL PRIMARY KEY,
    customer_id UUID    NOT NULL,
    currency    TEXT    NOT NULL,
    posted      BIGINT  NOT NULL,
    pending     BIGINT  NOT NULL,
    available   BIGINT  NOT NULL,
    seq         BIGINT  NOT NULL
);
CREATE INDEX analytics_balances_customer ON analytics_balances (customer_id);

-- Each expense's facts (amount, currency, month) and category, each with the seq of
-- the event that set it; deleted expenses stay as tombstones.
CREATE TABLE analytics_expenses (
    expense_id   UUID    NOT NULL PRIMARY KEY,
    customer_id  UUID    NOT NULL,
    month        TEXT,
    currency     TEXT,
    amount       BIGINT,
    facts_seq    BIGINT  NOT NULL,
    category_id  UUID,
    category_seq BIGINT  NOT NULL,
    deleted      BOOLEAN NOT NULL
);
CREATE INDEX analytics_expenses_customer ON analytics_expenses (customer_id, month);

-- Set when sent events were first purged from the outbox: from then on a rebuild can
-- no longer see the whole history.
CREATE TABLE outbox_purged (
    id          SMALLINT NOT NULL PRIMARY KEY CHECK (id = 1),
    through_seq BIGINT  NOT NULL,
    purged_at   BIGINT  NOT NULL
);

-- Releases before this one purged sent events after a week: a database that lost its
-- first events says so, and a rebuild then refuses unless told to go ahead.
INSERT INTO outbox_purged (id, through_seq, purged_at)
SELECT 1, MIN(seq) - 1, 0 FROM outbox HAVING MIN(seq) > 1;
