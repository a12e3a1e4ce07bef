-- Coffer ledger hash chain, SQLite. Mirrors ../postgres/0010_chain.sql; never edit once
-- landed. Times are the ledger's nanosecond timestamps.

-- One link per committed batch that created transfers, written in the batch's own
-- transaction: the SHA-256 over the previous link's hash and the batch's transfers (see
-- crates/ledger/src/chain.rs). Its transfers are those stamped first_timestamp to
-- last_timestamp. `coffer verify` recomputes every link; GET /v1/ledger/chain/head gives
-- the latest, to keep somewhere else. Transfers stored before this table existed are in
-- no link.
CREATE TABLE ledger_chain (
    seq             INTEGER NOT NULL PRIMARY KEY,
    first_timestamp INTEGER NOT NULL,
    last_timestamp  INTEGER NOT NULL UNIQUE,
    transfers       INTEGER NOT NULL CHECK (transfers > 0),
    hash            BLOB    NOT NULL CHECK (length(hash) = 32)
);
