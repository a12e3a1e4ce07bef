-- Coffer verification runs, SQLite. Mirrors ../postgres/0009_verify.sql; never edit once
-- landed. Times are nanoseconds since the Unix epoch.

-- Runs of the books' check (`coffer verify`) asked for by an admin (POST /v1/admin/verify)
-- or made by the workers' schedule. A run is `running` until its process records the
-- result: `clean`, `findings` (report holds the JSON report) or `failed` (error says why).
CREATE TABLE verify_runs (
    id          BLOB    NOT NULL PRIMARY KEY,
    origin      TEXT    NOT NULL CHECK (origin IN ('api', 'schedule')),
    status      TEXT    NOT NULL CHECK (status IN ('running', 'clean', 'findings', 'failed')),
    started_at  INTEGER NOT NULL,
    finished_at INTEGER,
    report      TEXT,
    error       TEXT
) WITHOUT ROWID;
-- Listing, newest first.
CREATE INDEX verify_runs_started ON verify_runs (started_at);
