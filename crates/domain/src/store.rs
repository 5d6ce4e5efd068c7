//! The storage seam. A backend (SQLite now, PostgreSQL later) implements these traits;
//! the domain never sees SQL.
//!
//! Record rows can only be written together with their change-log entry
//! (`insert_record`, `update_record` take the `Change`), so no caller can change a record
//! without recording it.

use crate::clock::Hlc;
use crate::record::{
    Change, LoggedChange, NewRow, Record, RecordQuery, RecordStatus, RowUpdate, StoredRecord,
};
use crate::schema::{FieldOptions, FieldType, Table};
use crate::sync::{
    HeldChange, PendingLink, SyncConfig, SyncField, SyncId, SyncLogEntry, SyncState, SyncTable,
};
use crate::user::{Role, User};
use crate::web_session::WebSession;
use crate::{DomainError, FieldNo, RecordId, TableId, UserId};
use uuid::Uuid;

pub type StoreResult<T> = Result<T, DomainError>;

pub trait Store: Send + Sync + 'static {
    /// Runs `f` in a read transaction (a consistent snapshot).
    fn read<T>(&self, f: impl FnOnce(&mut dyn StoreTx) -> StoreResult<T>) -> StoreResult<T>;
    /// Runs `f` in a write transaction: committed if `f` returns Ok, rolled back otherwise.
    fn write<T>(&self, f: impl FnOnce(&mut dyn StoreTx) -> StoreResult<T>) -> StoreResult<T>;
}

pub struct NewUser<'a> {
    pub login: &'a str,
    pub full_name: &'a str,
    pub role: Role,
    pub password_hash: &'a str,
}

#[derive(Default)]
pub struct UserUpdate {
    pub full_name: Option<String>,
    pub role: Option<Role>,
    pub password_hash: Option<String>,
    pub active: Option<bool>,
}

/// Counts for `crmsync status`.
#[derive(Debug, Clone, Default)]
pub struct TableCounts {
    pub active: u64,
    pub deleted: u64,
}

pub trait StoreTx {
    fn instance_id(&mut self) -> StoreResult<Uuid>;
    /// The newest HLC time this instance has issued or seen.
    fn last_hlc(&mut self) -> StoreResult<Hlc>;
    fn set_last_hlc(&mut self, hlc: Hlc) -> StoreResult<()>;

    fn tables(&mut self) -> StoreResult<Vec<Table>>;
    fn create_table(&mut self, name: &str) -> StoreResult<TableId>;
    fn rename_table(&mut self, id: TableId, name: &str) -> StoreResult<()>;
    fn drop_table(&mut self, id: TableId) -> StoreResult<()>;
    fn create_field(
        &mut self,
        table_id: TableId,
        name: &str,
        field_type: FieldType,
        options: &FieldOptions,
    ) -> StoreResult<FieldNo>;
    fn update_field(&mut self, no: FieldNo, name: &str, options: &FieldOptions) -> StoreResult<()>;
    fn drop_field(&mut self, table_id: TableId, no: FieldNo) -> StoreResult<()>;

    fn users(&mut self) -> StoreResult<Vec<User>>;
    /// The user and their password hash.
    fn user_credentials(&mut self, login: &str) -> StoreResult<Option<(User, String)>>;
    fn insert_user(&mut self, user: &NewUser<'_>) -> StoreResult<UserId>;
    fn update_user(&mut self, id: UserId, update: &UserUpdate) -> StoreResult<()>;

    /// Web sessions, keyed by the SHA-256 of their token (insert or replace).
    fn save_web_session(&mut self, token_hash: &[u8; 32], session: &WebSession) -> StoreResult<()>;
    fn web_session(&mut self, token_hash: &[u8; 32]) -> StoreResult<Option<WebSession>>;
    fn delete_web_session(&mut self, token_hash: &[u8; 32]) -> StoreResult<()>;
    /// Removes sessions last used before `before_ms`.
    fn expire_web_sessions(&mut self, before_ms: i64) -> StoreResult<usize>;

    fn record(&mut self, table: &Table, id: RecordId) -> StoreResult<Option<StoredRecord>>;
    fn record_status(
        &mut self,
        table_id: TableId,
        id: RecordId,
    ) -> StoreResult<Option<RecordStatus>>;
    /// Inserts the row and appends `change` (with the new id) to the change log.
    fn insert_record(
        &mut self,
        table: &Table,
        row: &NewRow,
        change: &Change,
    ) -> StoreResult<RecordId>;
    /// Updates the row and appends `change` to the change log.
    fn update_record(
        &mut self,
        table: &Table,
        update: &RowUpdate,
        change: &Change,
    ) -> StoreResult<()>;
    fn list_records(&mut self, table: &Table, query: &RecordQuery) -> StoreResult<Vec<Record>>;
    fn history(&mut self, table: &Table, record_id: RecordId) -> StoreResult<Vec<Change>>;
    fn table_counts(&mut self, table: &Table) -> StoreResult<TableCounts>;
    fn change_count(&mut self) -> StoreResult<u64>;
    /// Appends a resend entry per record (`origin` names the sync it is for) asking for
    /// `fields` (all configured ones when empty) to be sent again. Returns (first, last)
    /// seq, or None when there were no records.
    fn append_resends(
        &mut self,
        table_id: TableId,
        record_ids: &[RecordId],
        fields: &[FieldNo],
        origin: &str,
        at_ms: i64,
    ) -> StoreResult<Option<(i64, i64)>>;
    /// Ids of a table's records after `after`, at most `limit`, all statuses.
    fn record_ids(
        &mut self,
        table: &Table,
        after: RecordId,
        limit: usize,
    ) -> StoreResult<Vec<RecordId>>;

    // ---- what syncs read ----
    /// The entries after `after` that `filter` takes, oldest first, at most `limit`; and
    /// how far the log was read: the last entry returned when `limit` were, else the end
    /// of the log (everything between was the sync's own or another's resend).
    fn changes_for_sync(
        &mut self,
        after: i64,
        limit: usize,
        filter: &crate::record::SyncLogFilter,
    ) -> StoreResult<(Vec<LoggedChange>, i64)>;
    /// How many entries after `after` `filter` takes.
    fn count_changes_for_sync(
        &mut self,
        after: i64,
        filter: &crate::record::SyncLogFilter,
    ) -> StoreResult<u64>;
    fn last_change_seq(&mut self) -> StoreResult<i64>;
    fn record_by_uid(&mut self, table: &Table, uid: Uuid) -> StoreResult<Option<StoredRecord>>;
    /// Records of `table` by id, read together (a packet's); ids without one left out.
    fn records_by_ids(&mut self, table: &Table, ids: &[RecordId])
    -> StoreResult<Vec<StoredRecord>>;
    /// Which of `uids` name a record of `table` here (asked for a whole packet at once).
    fn uids_present(
        &mut self,
        table: &Table,
        uids: &[Uuid],
    ) -> StoreResult<std::collections::HashSet<Uuid>>;
    fn record_uid(&mut self, table_id: TableId, id: RecordId) -> StoreResult<Option<Uuid>>;

    // ---- sync settings, progress and log ----
    fn syncs(&mut self) -> StoreResult<Vec<SyncConfig>>;
    fn insert_sync(&mut self, sync: &SyncConfig) -> StoreResult<SyncId>;
    fn update_sync(&mut self, sync: &SyncConfig) -> StoreResult<()>;
    /// Removes the sync with its fields, progress and log.
    fn delete_sync(&mut self, id: SyncId) -> StoreResult<()>;
    fn sync_fields(&mut self, sync_id: SyncId) -> StoreResult<Vec<SyncField>>;
    fn insert_sync_field(&mut self, field: &SyncField) -> StoreResult<i64>;
    fn update_sync_field(&mut self, field: &SyncField) -> StoreResult<()>;
    fn delete_sync_field(&mut self, id: i64) -> StoreResult<()>;
    /// Whole tables of every sync (S-02).
    fn sync_tables(&mut self) -> StoreResult<Vec<SyncTable>>;
    fn insert_sync_table(&mut self, table: &SyncTable) -> StoreResult<i64>;
    fn delete_sync_table(&mut self, id: i64) -> StoreResult<()>;
    fn sync_state(&mut self, sync_id: SyncId) -> StoreResult<SyncState>;
    fn save_sync_state(&mut self, sync_id: SyncId, state: &SyncState) -> StoreResult<()>;
    fn append_sync_log(&mut self, entry: &SyncLogEntry) -> StoreResult<()>;
    /// Removes every sync's log entries written before `before_ms`; returns how many.
    fn prune_sync_log(&mut self, before_ms: i64) -> StoreResult<usize>;
    /// Keeps (or replaces) a link value waiting for its target.
    fn save_pending_link(&mut self, link: &PendingLink) -> StoreResult<()>;
    fn pending_links(&mut self, sync_id: SyncId) -> StoreResult<Vec<PendingLink>>;
    fn remove_pending_link(&mut self, link: &PendingLink) -> StoreResult<()>;
    /// Holds a received change back, replacing the same part held before.
    fn hold(&mut self, held: &HeldChange) -> StoreResult<()>;
    fn held(&mut self, sync_id: SyncId) -> StoreResult<Vec<HeldChange>>;
    fn release_held(&mut self, sync_id: SyncId, id: i64) -> StoreResult<()>;
    fn sync_log(
        &mut self,
        sync_id: SyncId,
        after: i64,
        limit: usize,
    ) -> StoreResult<Vec<SyncLogEntry>>;

    /// Records paired by a key field at an initial sync (B-05): (this side's uid, the
    /// peer's uid) on `sync_id`.
    fn save_uid_pairs(
        &mut self,
        sync_id: SyncId,
        table_id: TableId,
        pairs: &[(Uuid, Uuid)],
    ) -> StoreResult<()>;
    fn uid_pairs(&mut self, sync_id: SyncId) -> StoreResult<Vec<(Uuid, Uuid)>>;
    /// A number that grows with every change to what a sync's field mapping is built from:
    /// tables, fields, syncs, their fields, whole tables and matched uids, and the peer's
    /// catalogue. A mapping built at one number holds while the number stays.
    fn config_version(&mut self) -> StoreResult<i64>;

    // ---- one shared numbering (B-06) ----
    /// Hands out the next `count` numbers (first, last) of the sequence this instance owns
    /// for `field_no`; a new sequence starts at `start` or past the largest number the
    /// field already holds.
    fn allocate_numbers(
        &mut self,
        table: &Table,
        field_no: FieldNo,
        count: i64,
        start: i64,
    ) -> StoreResult<(i64, i64)>;
    /// Keeps a block of numbers drawn from the sequence's owner.
    fn add_number_block(&mut self, field_no: FieldNo, first: i64, last: i64) -> StoreResult<()>;
    /// Uses the lowest number held in blocks for `field_no`.
    fn take_block_number(&mut self, field_no: FieldNo) -> StoreResult<Option<i64>>;
    fn block_numbers_left(&mut self, field_no: FieldNo) -> StoreResult<i64>;
}
