-- Coffer insights, SQLite. Mirrors ../postgres/0014_insights.sql; never edit once landed.
-- Times are nanoseconds since the Unix epoch.

-- What a customer has been told about their spending, once each: a recurring payment
-- found (`recurring:<merchant>:<currency>`), its price rising (`price:<merchant>:<currency>:<new
-- price>`), an alert on an expense (`alert:<expense id>`).
CREATE TABLE insight_notices (
    customer_id BLOB    NOT NULL CHECK (length(customer_id) = 16),
    key         TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (customer_id, key)
) WITHOUT ROWID;
