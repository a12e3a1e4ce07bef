-- Coffer balance monitors, PostgreSQL. Mirrors ../sqlite/0011_monitors.sql; never edit once
-- landed. Times are nanoseconds since the Unix epoch.

-- A condition on a wallet: its available balance falling below or rising above `amount`,
-- or a single debit larger than `amount` (minor units). `customer_id` is whom a crossing
-- is told to: the wallet's owner for their own monitors; NULL for an operator's.
CREATE TABLE balance_monitors (
    id          UUID    NOT NULL PRIMARY KEY,
    wallet_id   UUID    NOT NULL REFERENCES wallets (id),
    customer_id UUID,
    condition   TEXT    NOT NULL CHECK (condition IN ('available_below', 'available_above', 'debit_above')),
    amount      BIGINT  NOT NULL CHECK (amount >= 0),
    created_at  BIGINT  NOT NULL
);
-- The monitors of the wallets a batch of events names, and a wallet's list.
CREATE INDEX balance_monitors_wallet ON balance_monitors (wallet_id, created_at);
