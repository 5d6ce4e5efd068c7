-- How many active and deleted records each table holds, kept by the write path in the
-- transaction that changes them: status pages and the mass-delete guard read one row
-- instead of scanning the table. Filled for existing tables as it is applied; a table
-- found without a row is counted whole on its next write.
CREATE TABLE record_counts (
    table_id INTEGER PRIMARY KEY,
    active   INTEGER NOT NULL,
    deleted  INTEGER NOT NULL
);
