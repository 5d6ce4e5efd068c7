-- Folder transports: the sync channel's pairing and keys (JSON; see crmsync_sync::channel).
-- The database file is private to the instance's user (0600).
ALTER TABLE sync_state ADD COLUMN channel TEXT;
