use super::StoreResult;
use crate::record::{Change, LoggedChange, SyncLogFilter};
use crate::schema::Table;
use crate::sync::SyncId;
use crate::{FieldNo, RecordId, TableId};

/// The change log: every write's entry, numbered without gaps and never removed. A read of
/// it sees every write of its own transaction.
pub trait ChangeLog {
    fn history(&mut self, table: &Table, record_id: RecordId) -> StoreResult<Vec<Change>>;
    fn change_count(&mut self) -> StoreResult<u64>;
    fn last_change_seq(&mut self) -> StoreResult<i64>;
    /// Appends a resend entry per record (origin `Origin::Resend(sync_id)`: only that sync
    /// sends it) asking for `fields` (all configured ones when empty) to be sent again. Returns (first, last)
    /// seq, or None when there were no records.
    fn append_resends(
        &mut self,
        table_id: TableId,
        record_ids: &[RecordId],
        fields: &[FieldNo],
        sync_id: SyncId,
        at_ms: i64,
    ) -> StoreResult<Option<(i64, i64)>>;
    /// The entries after `after` that `filter` takes, oldest first, at most `limit`; and
    /// how far the log was read: the last entry returned when `limit` were, else the end
    /// of the log (everything between was the sync's own or another's resend).
    fn changes_for_sync(
        &mut self,
        after: i64,
        limit: usize,
        filter: &SyncLogFilter,
    ) -> StoreResult<(Vec<LoggedChange>, i64)>;
    /// How many entries after `after` `filter` takes.
    fn count_changes_for_sync(&mut self, after: i64, filter: &SyncLogFilter) -> StoreResult<u64>;
}
