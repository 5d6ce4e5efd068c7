-- How the other side of a sync matches users (S-21), as it last said: two sides that
-- match differently are shown in the status.
ALTER TABLE sync_state ADD COLUMN peer_user_match TEXT;
