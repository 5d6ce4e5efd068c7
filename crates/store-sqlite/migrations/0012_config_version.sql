-- A number that grows with every change to what a sync's field mapping is built from
-- (tables, fields, syncs and their fields, tables and matched uids, and the catalogue the
-- other side last described): a process keeps a sync's mapping while the number stays,
-- instead of reading it all again for every packet. Kept by triggers, so no writer (nor
-- another process on the same file) can forget it.
CREATE TABLE config_version (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    version INTEGER NOT NULL
);
INSERT INTO config_version (id, version) VALUES (1, 0);

CREATE TRIGGER config_version_crm_tables_insert AFTER INSERT ON crm_tables
BEGIN UPDATE config_version SET version = version + 1; END;
CREATE TRIGGER config_version_crm_tables_update AFTER UPDATE ON crm_tables
BEGIN UPDATE config_version SET version = version + 1; END;
CREATE TRIGGER config_version_crm_tables_delete AFTER DELETE ON crm_tables
BEGIN UPDATE config_version SET version = version + 1; END;
CREATE TRIGGER config_version_crm_fields_insert AFTER INSERT ON crm_fields
BEGIN UPDATE config_version SET version = version + 1; END;
CREATE TRIGGER config_version_crm_fields_update AFTER UPDATE ON crm_fields
BEGIN UPDATE config_version SET version = version + 1; END;
CREATE TRIGGER config_version_crm_fields_delete AFTER DELETE ON crm_fields
BEGIN UPDATE config_version SET version = version + 1; END;
CREATE TRIGGER config_version_syncs_insert AFTER INSERT ON syncs
BEGIN UPDATE config_version SET version = version + 1; END;
CREATE TRIGGER config_version_syncs_update AFTER UPDATE ON syncs
BEGIN UPDATE config_version SET version = version + 1; END;
CREATE TRIGGER config_version_syncs_delete AFTER DELETE ON syncs
BEGIN UPDATE config_version SET version = version + 1; END;
CREATE TRIGGER config_version_sync_fields_insert AFTER INSERT ON sync_fields
BEGIN UPDATE config_version SET version = version + 1; END;
CREATE TRIGGER config_version_sync_fields_update AFTER UPDATE ON sync_fields
BEGIN UPDATE config_version SET version = version + 1; END;
CREATE TRIGGER config_version_sync_fields_delete AFTER DELETE ON sync_fields
BEGIN UPDATE config_version SET version = version + 1; END;
CREATE TRIGGER config_version_sync_tables_insert AFTER INSERT ON sync_tables
BEGIN UPDATE config_version SET version = version + 1; END;
CREATE TRIGGER config_version_sync_tables_update AFTER UPDATE ON sync_tables
BEGIN UPDATE config_version SET version = version + 1; END;
CREATE TRIGGER config_version_sync_tables_delete AFTER DELETE ON sync_tables
BEGIN UPDATE config_version SET version = version + 1; END;
CREATE TRIGGER config_version_sync_uid_pairs_insert AFTER INSERT ON sync_uid_pairs
BEGIN UPDATE config_version SET version = version + 1; END;
CREATE TRIGGER config_version_sync_uid_pairs_update AFTER UPDATE ON sync_uid_pairs
BEGIN UPDATE config_version SET version = version + 1; END;
CREATE TRIGGER config_version_sync_uid_pairs_delete AFTER DELETE ON sync_uid_pairs
BEGIN UPDATE config_version SET version = version + 1; END;
CREATE TRIGGER config_version_peer_catalog AFTER UPDATE OF peer_catalog ON sync_state
WHEN old.peer_catalog IS NOT new.peer_catalog
BEGIN UPDATE config_version SET version = version + 1; END;
CREATE TRIGGER config_version_peer_catalog_insert AFTER INSERT ON sync_state
WHEN new.peer_catalog IS NOT NULL
BEGIN UPDATE config_version SET version = version + 1; END;
