-- Coffer currency conversion, SQLite. Mirrors ../postgres/0013_fx.sql; never edit once
-- landed. Times are nanoseconds since the Unix epoch; amounts are minor units.

-- A quote: the rate and amounts offered to a customer for converting from one of their
-- wallets to another, until expires_at. It is executed when its sell transfer exists in
-- the ledger (the transfer ids are derived from the quote's id, so it executes once).
CREATE TABLE fx_quotes (
    id               BLOB    NOT NULL PRIMARY KEY CHECK (length(id) = 16),
    customer_id      BLOB    NOT NULL CHECK (length(customer_id) = 16),
    sell_wallet_id   BLOB    NOT NULL CHECK (length(sell_wallet_id) = 16),
    buy_wallet_id    BLOB    NOT NULL CHECK (length(buy_wallet_id) = 16),
    sell_currency    TEXT    NOT NULL,
    buy_currency     TEXT    NOT NULL,
    -- Which amount the customer fixed: 'sell' or 'buy'.
    fixed            TEXT    NOT NULL CHECK (fixed IN ('sell', 'buy')),
    sell_amount      INTEGER NOT NULL CHECK (sell_amount > 0),
    buy_amount       INTEGER NOT NULL CHECK (buy_amount > 0),
    fee              INTEGER NOT NULL CHECK (fee >= 0),
    -- What the spread earned, in the buy currency.
    spread           INTEGER NOT NULL CHECK (spread >= 0),
    spread_bps       INTEGER NOT NULL,
    mid_rate         TEXT    NOT NULL,
    rate             TEXT    NOT NULL,
    rate_source      TEXT    NOT NULL,
    rate_as_of       INTEGER NOT NULL,
    sell_transfer_id BLOB    NOT NULL UNIQUE CHECK (length(sell_transfer_id) = 16),
    buy_transfer_id  BLOB    NOT NULL UNIQUE CHECK (length(buy_transfer_id) = 16),
    created_at       INTEGER NOT NULL,
    expires_at       INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX fx_quotes_expiry ON fx_quotes (expires_at);
