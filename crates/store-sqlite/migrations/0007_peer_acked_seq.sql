-- Folder transports: our last change the other side said (in its packets' `ack`) it has
-- applied. Kept across restarts: a conflict rule decides fields changed after it.
ALTER TABLE sync_state ADD COLUMN peer_acked_seq INTEGER NOT NULL DEFAULT 0;
UPDATE sync_state SET peer_acked_seq = sent_seq;
