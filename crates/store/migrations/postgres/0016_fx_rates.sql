-- Coffer exchange rates by day, PostgreSQL. Mirrors ../sqlite/0016_fx_rates.sql; never
-- edit once landed.

-- The reference rates in force on each day, as the rate provider published them: units of
-- `currency` per unit of `base`, scaled by 10^6. Written whenever rates are fetched (a
-- provider's file may hold several days); read to value spending in another currency at
-- the rate of its day (a customer's home currency). `day` counts days since 1970-01-01
-- (UTC); `as_of` is when the rates were valid, nanoseconds since the epoch.
CREATE TABLE fx_rates (
    day      BIGINT NOT NULL,
    currency TEXT   NOT NULL,
    base     TEXT   NOT NULL,
    rate     BIGINT NOT NULL CHECK (rate > 0),
    source   TEXT   NOT NULL,
    as_of    BIGINT NOT NULL,
    PRIMARY KEY (day, currency)
);
