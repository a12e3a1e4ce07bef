-- Coffer events and notifications schema, SQLite. Mirrors ../postgres/0005_events.sql;
-- never edit once landed. Times are nanoseconds since the Unix epoch.

-- The transactional outbox: each committed change writes its events (CloudEvents JSON)
-- in its own transaction; the relay publishes unsent rows in seq order and marks them
-- sent only once the bus has them. Sent rows are kept for a while so a WebSocket client
-- can resume from its last event id.
CREATE TABLE outbox (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    id          BLOB    NOT NULL UNIQUE,
    type        TEXT    NOT NULL,
    customer_id BLOB,
    payload     TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    sent_at     INTEGER
);
CREATE INDEX outbox_unsent ON outbox (seq) WHERE sent_at IS NULL;
CREATE INDEX outbox_customer ON outbox (customer_id, seq);

-- The events each consumer has applied: written in the same transaction as the
-- consumer's effects, so an event delivered twice takes effect once.
CREATE TABLE consumed_events (
    consumer   TEXT    NOT NULL,
    event_id   BLOB    NOT NULL,
    applied_at INTEGER NOT NULL,
    PRIMARY KEY (consumer, event_id)
) WITHOUT ROWID;

-- The in-app inbox.
CREATE TABLE notifications (
    id          BLOB    NOT NULL PRIMARY KEY,
    customer_id BLOB    NOT NULL,
    event_id    BLOB    NOT NULL,
    kind        TEXT    NOT NULL,
    title       TEXT    NOT NULL,
    body        TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    read_at     INTEGER
);
CREATE INDEX notifications_customer ON notifications (customer_id, id);

-- Emails to send (SMTP, or the file outbox when no SMTP server is configured).
CREATE TABLE emails (
    id              BLOB    NOT NULL PRIMARY KEY,
    customer_id     BLOB,
    recipient       TEXT    NOT NULL,
    template        TEXT    NOT NULL,
    subject         TEXT    NOT NULL,
    body            TEXT    NOT NULL,
    status          TEXT    NOT NULL CHECK (status IN ('pending', 'sent', 'failed')),
    attempts        INTEGER NOT NULL,
    next_attempt_at INTEGER NOT NULL,
    last_error      TEXT,
    created_at      INTEGER NOT NULL,
    sent_at         INTEGER
);
CREATE INDEX emails_due ON emails (next_attempt_at) WHERE status = 'pending';

-- Webhook endpoints: a customer's (customer_id set: that customer's events only) or an
-- admin's (customer_id NULL: everyone's). event_types is a comma-separated list.
CREATE TABLE webhook_endpoints (
    id          BLOB    NOT NULL PRIMARY KEY,
    customer_id BLOB,
    url         TEXT    NOT NULL,
    event_types TEXT    NOT NULL,
    secret      TEXT    NOT NULL,
    created_at  INTEGER NOT NULL
);
CREATE INDEX webhook_endpoints_customer ON webhook_endpoints (customer_id);

-- One delivery per endpoint and event, retried with backoff until it succeeds or its
-- attempts run out; the endpoint's delivery log.
CREATE TABLE webhook_deliveries (
    id               BLOB    NOT NULL PRIMARY KEY,
    endpoint_id      BLOB    NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    event_id         BLOB    NOT NULL,
    event_type       TEXT    NOT NULL,
    payload          TEXT    NOT NULL,
    status           TEXT    NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed')),
    attempts         INTEGER NOT NULL,
    next_attempt_at  INTEGER NOT NULL,
    last_status_code INTEGER,
    last_error       TEXT,
    created_at       INTEGER NOT NULL,
    delivered_at     INTEGER,
    UNIQUE (endpoint_id, event_id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id, id);
