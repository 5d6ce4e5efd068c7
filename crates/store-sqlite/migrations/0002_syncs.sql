-- Syncs between instances: their settings, configured fields, progress and log.
CREATE TABLE syncs (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    name           TEXT NOT NULL,
    mode           TEXT NOT NULL,
    transport      TEXT NOT NULL,
    remote_access  INTEGER NOT NULL DEFAULT 0,
    remote_url     TEXT,
    password       TEXT NOT NULL,
    log            INTEGER NOT NULL DEFAULT 1,
    period_seconds INTEGER NOT NULL,
    user_match     TEXT NOT NULL,
    settings       TEXT NOT NULL DEFAULT '{}'
);

CREATE TABLE sync_fields (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    sync_id         INTEGER NOT NULL,
    field_no        INTEGER NOT NULL,
    direction       TEXT NOT NULL,
    remote_field_no INTEGER,
    UNIQUE (sync_id, field_no)
);

-- Progress of each sync: how far each direction has got, and its health.
--   sent_seq:     our change-log seq the peer has acknowledged (outgoing cursor)
--   received_seq: the peer's change-log seq we have applied (incoming cursor)
CREATE TABLE sync_state (
    sync_id       INTEGER PRIMARY KEY,
    sent_seq      INTEGER NOT NULL DEFAULT 0,
    received_seq  INTEGER NOT NULL DEFAULT 0,
    -- Folder transports: the `upto` of the last packet file written.
    written_seq   INTEGER NOT NULL DEFAULT 0,
    peer_instance TEXT,
    peer_catalog  TEXT,
    connected     INTEGER NOT NULL DEFAULT 0,
    reason        TEXT,
    last_run      INTEGER,
    last_success  INTEGER,
    last_error    TEXT,
    pending_in    INTEGER NOT NULL DEFAULT 0,
    -- A passive side's request that the active side send its rows again (JSON).
    resend_request TEXT
);

CREATE TABLE sync_log (
    id      INTEGER PRIMARY KEY,
    sync_id INTEGER NOT NULL,
    at      INTEGER NOT NULL,
    kind    TEXT NOT NULL,
    message TEXT NOT NULL,
    detail  TEXT
);
CREATE INDEX sync_log_by_sync ON sync_log(sync_id, id);

-- Link values that arrived before the record they point at; applied when it arrives.
CREATE TABLE sync_pending_links (
    sync_id    INTEGER NOT NULL,
    table_id   INTEGER NOT NULL,
    record_uid BLOB NOT NULL,
    field_no   INTEGER NOT NULL,
    target_uid BLOB NOT NULL,
    hlc        INTEGER NOT NULL,
    node       BLOB NOT NULL,
    PRIMARY KEY (sync_id, table_id, record_uid, field_no)
);
