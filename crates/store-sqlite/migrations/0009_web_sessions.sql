-- Web UI sign-ins, so a restart signs nobody out. Only the SHA-256 of a session's cookie
-- token is kept: reading this table gives nothing a browser could present.
CREATE TABLE web_sessions (
    token_hash BLOB PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users(id),
    csrf TEXT NOT NULL,
    credentials BLOB,
    role TEXT NOT NULL,
    last_seen_ms INTEGER NOT NULL
) WITHOUT ROWID;
