-- The records a packet's log entry lists, one compact line each (see
-- crmsync_domain::logged_records); shown as JSON only when the log is read.
ALTER TABLE sync_log ADD COLUMN records TEXT;
