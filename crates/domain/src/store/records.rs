use super::StoreResult;
use crate::record::{Change, NewRow, Record, RecordQuery, RecordStatus, RowUpdate, StoredRecord};
use crate::schema::Table;
use crate::{RecordId, TableId};
use uuid::Uuid;

/// Counts for `crmsync status`.
#[derive(Debug, Clone, Default)]
pub struct TableCounts {
    pub active: u64,
    pub deleted: u64,
}

/// Records: read any way, written only with their change-log entry.
pub trait RecordStore {
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
    fn table_counts(&mut self, table: &Table) -> StoreResult<TableCounts>;
    /// Ids of a table's records after `after`, at most `limit`, all statuses.
    fn record_ids(
        &mut self,
        table: &Table,
        after: RecordId,
        limit: usize,
    ) -> StoreResult<Vec<RecordId>>;
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
}
