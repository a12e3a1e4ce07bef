-- Coffer relay lease, SQLite. Mirrors ../postgres/0017_relay_lease.sql; never
-- edit once landed.

-- Which relay publishes the outbox: one row, held by one process (`holder`, a random id
-- it makes at start) until `expires_at` (nanoseconds since the epoch). The holder renews
-- it while it runs and deletes it when it stops; another relay takes it only once it is
-- free or expired, so one relay publishes at a time and a dead one is replaced.
CREATE TABLE relay_lease (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    holder     TEXT    NOT NULL,
    expires_at BIGINT  NOT NULL
);
