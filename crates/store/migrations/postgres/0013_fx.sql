-- Coffer currency conversion, PostgreSQL. Mirrors ../sqlite/0013_fx.sql; never edit once
-- landed. Times are nanoseconds since the Unix epoch; amounts are minor units.

-- A quote: the rate and amounts offered to a customer for converting from one of their
-- wallets to another, until expires_at. It is executed when its sell transfer exists in
-- the ledger (the transfer ids are derived from the quote's id, so it executes once).
CREATE TABLE fx_quotes (
    id               UUID    NOT NULL PRIMARY KEY,
    customer_id      UUID    NOT NULL,
    sell_wallet_id   UUID    NOT NULL,
    buy_wallet_id    UUID    NOT NULL,
    sell_currency    TEXT    NOT NULL,
    buy_currency     TEXT    NOT NULL,
    -- Which amount the customer fixed: 'sell' or 'buy'.
    fixed            TEXT    NOT NULL CHECK (fixed IN ('sell', 'buy')),
    sell_amount      BIGINT  NOT NULL CHECK (sell_amount > 0),
    buy_amount       BIGINT  NOT NULL CHECK (buy_amount > 0),
    fee              BIGINT  NOT NULL CHECK (fee >= 0),
    -- What the spread earned, in the buy currency.
    spread           BIGINT  NOT NULL CHECK (spread >= 0),
    spread_bps       BIGINT  NOT NULL,
    mid_rate         TEXT    NOT NULL,
    rate             TEXT    NOT NULL,
    rate_source      TEXT    NOT NULL,
    rate_as_of       BIGINT  NOT NULL,
    sell_transfer_id UUID    NOT NULL UNIQUE,
    buy_transfer_id  UUID    NOT NULL UNIQUE,
    created_at       BIGINT  NOT NULL,
    expires_at       BIGINT  NOT NULL
);
CREATE INDEX fx_quotes_expiry ON fx_quotes (expires_at);
