//! A write transaction's change-log entries, numbered and kept back to be written together
//! (multi-row inserts), as every store does it. The buffer's fields are private to this
//! module: a store gets entries into it only through [`BufferedChangeLog`]'s methods and
//! out of it only by writing them (`flush_changes` → the store's `insert_changes`), so no
//! entry is dropped or read around. A store's reads of the log go through a value it makes
//! only after `flush_changes` (its `FlushedLog`).

use super::{StoreResult, encode_change_fields};
use crate::sync::SyncId;
use crate::{Change, ChangeOp, Origin};
use std::rc::Rc;

/// Entries a store writes with one statement at the most (and when the buffer writes).
pub const CHANGE_BATCH: usize = 256;

/// A change-log row waiting in its transaction to be written with others.
pub struct PendingChange {
    pub seq: i64,
    /// The record's previous entry: a record's history is a chain from its row's last seq.
    pub prev_seq: Option<i64>,
    pub table_id: i64,
    pub record_id: i64,
    pub op: ChangeOp,
    pub hlc: i64,
    pub origin: Rc<String>,
    pub user_id: Option<i64>,
    pub at: i64,
    /// The entry's field list as text (`encode_change_fields`).
    pub fields: Rc<String>,
}

#[derive(Default)]
pub struct ChangeBuffer {
    /// The next seq; the transaction holds the store's write lock.
    next_seq: Option<i64>,
    pending: Vec<PendingChange>,
    /// A bulk write repeats its origin and, for creates, its field list: shared, not copied.
    last_origin: Option<(Origin, Rc<String>)>,
    last_created_fields: Option<(Vec<i64>, Rc<String>)>,
}

/// A store transaction with a change buffer: what it provides (its buffer, where the log
/// ends, how rows are written) and the buffer's one way in and out.
pub trait BufferedChangeLog {
    fn change_buffer(&mut self) -> &mut ChangeBuffer;
    /// The seq after the log's last entry, as stored.
    fn first_free_seq(&mut self) -> StoreResult<i64>;
    /// Writes `rows` (at most `CHANGE_BATCH`) into the log.
    fn insert_changes(&mut self, rows: &[PendingChange]) -> StoreResult<()>;

    /// The seq for the next entry (numbered without gaps by the one writer).
    fn next_seq(&mut self) -> StoreResult<i64> {
        let seq = match self.change_buffer().next_seq {
            Some(seq) => seq,
            None => self.first_free_seq()?,
        };
        self.change_buffer().next_seq = Some(seq + 1);
        Ok(seq)
    }

    /// Appends `change` as entry `seq` of `record_id`, after its entry `prev_seq`.
    fn append_change(
        &mut self,
        change: &Change,
        record_id: i64,
        seq: i64,
        prev_seq: Option<i64>,
    ) -> StoreResult<()> {
        let log = self.change_buffer();
        // The origin becomes text only here, in the store's row.
        let origin = match &log.last_origin {
            Some((last, text)) if *last == change.origin => text.clone(),
            _ => {
                let text = Rc::new(change.origin.as_string());
                log.last_origin = Some((change.origin.clone(), text.clone()));
                text
            }
        };
        let fields = match &log.last_created_fields {
            Some((nos, text)) if change.op == ChangeOp::Create && *nos == change.created_fields => {
                text.clone()
            }
            _ => {
                let text = Rc::new(encode_change_fields(change)?);
                if change.op == ChangeOp::Create {
                    log.last_created_fields = Some((change.created_fields.clone(), text.clone()));
                }
                text
            }
        };
        log.pending.push(PendingChange {
            seq,
            prev_seq,
            table_id: change.table_id,
            record_id,
            op: change.op,
            hlc: change.hlc.0 as i64,
            origin,
            user_id: change.user_id,
            at: change.at_ms,
            fields,
        });
        self.write_when_full()
    }

    /// Resend requests for `record_ids` (see `ChangeLog::append_resends`): their seq range.
    fn append_resend_entries(
        &mut self,
        table_id: i64,
        record_ids: &[i64],
        fields: &[i64],
        sync_id: SyncId,
        at_ms: i64,
    ) -> StoreResult<Option<(i64, i64)>> {
        let origin = Rc::new(Origin::Resend(sync_id).as_string());
        let listed: Vec<String> = fields.iter().map(i64::to_string).collect();
        let listed = Rc::new(format!("[{}]", listed.join(",")));
        let mut range = None;
        for id in record_ids {
            let seq = self.next_seq()?;
            range = Some((range.map_or(seq, |(first, _)| first), seq));
            self.change_buffer().pending.push(PendingChange {
                seq,
                prev_seq: None,
                table_id,
                record_id: *id,
                op: ChangeOp::Resend,
                hlc: 0,
                origin: origin.clone(),
                user_id: None,
                at: at_ms,
                fields: listed.clone(),
            });
            self.write_when_full()?;
        }
        Ok(range)
    }

    /// Writes every buffered entry; the store's `FlushedLog` is made only after this.
    fn flush_changes(&mut self) -> StoreResult<()> {
        let pending = std::mem::take(&mut self.change_buffer().pending);
        for chunk in pending.chunks(CHANGE_BATCH) {
            self.insert_changes(chunk)?;
        }
        Ok(())
    }

    #[doc(hidden)]
    fn write_when_full(&mut self) -> StoreResult<()> {
        match self.change_buffer().pending.len() >= CHANGE_BATCH {
            true => self.flush_changes(),
            false => Ok(()),
        }
    }
}
