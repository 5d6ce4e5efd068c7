-- crmsync's own tables. User-defined CRM tables are created at run time as t<id>, with
-- one value column f<no> per field plus its clock stamp h<no> (HLC) and n<no> (writer node).
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- Instances whose writes this one has stored; stamps refer to them by local number.
CREATE TABLE nodes (
    id  INTEGER PRIMARY KEY,
    uid BLOB NOT NULL UNIQUE
);

CREATE TABLE crm_tables (
    id   INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL
);

-- AUTOINCREMENT: a field number is never reused, since syncs map fields by number.
CREATE TABLE crm_fields (
    no       INTEGER PRIMARY KEY AUTOINCREMENT,
    table_id INTEGER NOT NULL REFERENCES crm_tables(id),
    name     TEXT NOT NULL,
    type     TEXT NOT NULL,
    options  TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX crm_fields_by_table ON crm_fields(table_id);

CREATE TABLE users (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    login         TEXT NOT NULL UNIQUE COLLATE NOCASE,
    full_name     TEXT NOT NULL,
    role          TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    active        INTEGER NOT NULL DEFAULT 1
);

-- The change log (outbox): one row per write that changed a record. `seq` is the rowid
-- (no AUTOINCREMENT: it costs a write per row); it only grows because the newest entry
-- is never deleted. `fields` is a create's list of field numbers (its values are in the
-- row) or an update's {"<no>": [old, new]}.
-- A record's entries form a chain: its row's last_seq, then each entry's prev_seq.
CREATE TABLE changes (
    seq        INTEGER PRIMARY KEY,
    prev_seq   INTEGER,
    table_id   INTEGER NOT NULL,
    record_id  INTEGER NOT NULL,
    op         TEXT NOT NULL,
    hlc        INTEGER NOT NULL,
    origin     TEXT NOT NULL,
    user_id    INTEGER,
    at         INTEGER NOT NULL,
    fields     TEXT NOT NULL
);
