-- Issue 11: whole tables in a sync (S-02). Every field of `table_id` is a sync field with
-- `direction`, and a field created in the table later joins the sync with it. On the
-- passive side `remote_table_id` is the active side's table whose fields pair by name.
CREATE TABLE sync_tables (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    sync_id         INTEGER NOT NULL,
    table_id        INTEGER NOT NULL,
    direction       TEXT NOT NULL,
    remote_table_id INTEGER,
    UNIQUE (sync_id, table_id)
);
