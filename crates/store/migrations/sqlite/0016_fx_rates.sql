-- Coffer exchange rates by day, SQLite. Mirrors ../postgres/0016_fx_rates.sql; never edit
-- once landed.

-- The reference rates in force on each day, as the rate provider published them: units of
-- `currency` per unit of `base`, scaled by 10^6. Written whenever rates are fetched (a
-- provider's file may hold several days); read to value spending in another currency at
-- the rate of its day (a customer's home currency). `day` counts days since 1970-01-01
-- (UTC); `as_of` is when the rates were valid, nanoseconds since the epoch.
CREATE TABLE fx_rates (
    day      INTEGER NOT NULL,
    currency TEXT    NOT NULL,
    base     TEXT    NOT NULL,
    rate     INTEGER NOT NULL CHECK (rate > 0),
    source   TEXT    NOT NULL,
    as_of    INTEGER NOT NULL,
    PRIMARY KEY (day, currency)
) WITHOUT ROWID;
