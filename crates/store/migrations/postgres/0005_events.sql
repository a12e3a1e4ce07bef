-- Coffer events and notifications schema, PostgreSQL. Mirrors ../sqlite/0005_events.sql;
-- never edit once landed. Times are nanoseconds since the Unix epoch.

-- The transactional outbox: each committed change writes its events (CloudEvents JSON)
-- in its own transaction; the relay publishes unsent rows in seq order and marks them
-- sent only once the bus has them. Sent rows are kept for a while so a WebSocket client
-- can resume from its last event id.
CREATE TABLE outbox (
    seq         BIGSERIAL PRIMARY KEY,
    id          UUID    NOT NULL UNIQUE,
    type        TEXT    NOT NULL,
    customer_id UUID,
    payload     TEXT    NOT NULL,
    created_at  BIGINT NOT NULL,
    sent_at     BIGINT
);
CREATE INDEX outbox_unsent ON outbox (seq) WHERE sent_at IS NULL;
CREATE INDEX outbox_customer ON outbox (customer_id, seq);

-- The events each consumer has applied: written in the same transaction as the
-- consumer's effects, so an event delivered twice takes effect once.
CREATE TABLE consumed_events (
    consumer   TEXT    NOT NULL,
    event_id   UUID    NOT NULL,
    applied_at BIGINT NOT NULL,
    PRIMARY KEY (consumer, event_id)
);

-- The in-app inbox.
CREATE TABLE notifications (
    id          UUID    NOT NULL PRIMARY KEY,
    customer_id UUID    NOT NULL,
    event_id    UUID    NOT NULL,
    kind        TEXT    NOT NULL,
    title       TEXT    NOT NULL,
    body        TEXT    NOT NULL,
    created_at  BIGINT NOT NULL,
    read_at     BIGINT
);
CREATE INDEX notifications_customer ON notifications (customer_id, id);

-- Emails to send (SMTP, or the file outbox when no SMTP server is configured).
CREATE TABLE emails (
    id              UUID    NOT NULL PRIMARY KEY,
    customer_id     UUID,
    recipient       TEXT    NOT NULL,
    template        TEXT    NOT NULL,
    subject         TEXT    NOT NULL,
    body            TEXT    NOT NULL,
    status          TEXT    NOT NULL CHECK (status IN ('pending', 'sent', 'failed')),
    attempts        BIGINT NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    last_error      TEXT,
    created_at      BIGINT NOT NULL,
    sent_at         BIGINT
);
CREATE INDEX emails_due ON emails (next_attempt_at) WHERE status = 'pending';

-- Webhook endpoints: a customer's (customer_id set: that customer's events only) or an
-- admin's (customer_id NULL: everyone's). event_types is a comma-separated list.
CREATE TABLE webhook_endpoints (
    id          UUID    NOT NULL PRIMARY KEY,
    customer_id UUID,
    url         TEXT    NOT NULL,
    event_types TEXT    NOT NULL,
    secret      TEXT    NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE INDEX webhook_endpoints_customer ON webhook_endpoints (customer_id);

-- One delivery per endpoint and event, retried with backoff until it succeeds or its
-- attempts run out; the endpoint's delivery log.
CREATE TABLE webhook_deliveries (
    id               UUID    NOT NULL PRIMARY KEY,
    endpoint_id      UUID    NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    event_id         UUID    NOT NULL,
    event_type       TEXT    NOT NULL,
    payload          TEXT    NOT NULL,
    status           TEXT    NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed')),
    attempts         BIGINT NOT NULL,
    next_attempt_at  BIGINT NOT NULL,
    last_status_code BIGINT,
    last_error       TEXT,
    created_at       BIGINT NOT NULL,
    delivered_at     BIGINT,
    UNIQUE (endpoint_id, event_id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id, id);
