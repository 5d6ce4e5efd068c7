-- Issue 6, continued.
--
-- One shared numbering (B-06). `number_sequences`: the next number of each sequence this
-- instance owns. `number_blocks`: numbers drawn in blocks from another instance's
-- sequence, used from the lowest; a block's row goes once it is used up.
CREATE TABLE number_sequences (
    field_no INTEGER PRIMARY KEY,
    next     INTEGER NOT NULL
);
CREATE TABLE number_blocks (
    id       INTEGER PRIMARY KEY,
    field_no INTEGER NOT NULL,
    next     INTEGER NOT NULL,
    last     INTEGER NOT NULL
);
CREATE INDEX number_blocks_by_field ON number_blocks(field_no, next);

-- A field's own conflict rule (B-02): newer, this_side, other_side; NULL = the sync's.
ALTER TABLE sync_fields ADD COLUMN conflict_policy TEXT;

-- Records paired by a key field at an initial sync (B-05): on this sync, this side's record
-- `local_uid` is the peer's record `peer_uid`; uids are translated both ways as they travel.
CREATE TABLE sync_uid_pairs (
    sync_id   INTEGER NOT NULL,
    table_id  INTEGER NOT NULL,
    local_uid BLOB NOT NULL,
    peer_uid  BLOB NOT NULL,
    PRIMARY KEY (sync_id, local_uid),
    UNIQUE (sync_id, peer_uid)
);
