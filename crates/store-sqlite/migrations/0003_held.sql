-- Received changes held back (issue 6): `quarantine` — a value that cannot be applied here
-- yet (B-17), retried once the cause is fixed; `mass_delete` — deletes from an exchange
-- that would delete too much of a table (B-18), applied once a person approves.
CREATE TABLE sync_held (
    id         INTEGER PRIMARY KEY,
    sync_id    INTEGER NOT NULL,
    kind       TEXT NOT NULL,
    table_id   INTEGER NOT NULL,
    record_uid BLOB NOT NULL,
    -- What of the record is held: a field's wire number, or "status".
    part       TEXT NOT NULL,
    -- The travelling item (one record, only the held part), as JSON.
    item       TEXT NOT NULL,
    reason     TEXT NOT NULL,
    at_ms      INTEGER NOT NULL,
    UNIQUE (sync_id, kind, table_id, record_uid, part)
);
