-- The sealed HTTP channel's requests taken by any process serving this database: a request
-- number is taken once, by one process, so a captured request replayed to another process
-- is refused as it is by the first (issue 16, several processes on one database).
CREATE TABLE channel_requests (
    sync_id BIGINT NOT NULL,
    key_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    seen_ms BIGINT NOT NULL,
    PRIMARY KEY (sync_id, key_id, seq)
);
CREATE INDEX channel_requests_seen ON channel_requests (seen_ms);
