use super::StoreResult;
use crate::TableId;
use crate::sync::{
    HeldChange, PendingLink, SyncConfig, SyncField, SyncId, SyncLogEntry, SyncState, SyncTable,
};
use uuid::Uuid;

/// Syncs: settings, progress, log, what waits (links, held changes) and matched records.
pub trait SyncStore {
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
    fn sync_log(
        &mut self,
        sync_id: SyncId,
        after: i64,
        limit: usize,
    ) -> StoreResult<Vec<SyncLogEntry>>;
    /// Keeps (or replaces) a link value waiting for its target.
    fn save_pending_link(&mut self, link: &PendingLink) -> StoreResult<()>;
    fn pending_links(&mut self, sync_id: SyncId) -> StoreResult<Vec<PendingLink>>;
    fn remove_pending_link(&mut self, link: &PendingLink) -> StoreResult<()>;
    /// Holds a received change back, replacing the same part held before.
    fn hold(&mut self, held: &HeldChange) -> StoreResult<()>;
    fn held(&mut self, sync_id: SyncId) -> StoreResult<Vec<HeldChange>>;
    fn release_held(&mut self, sync_id: SyncId, id: i64) -> StoreResult<()>;
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
}
