//! The change log in PostgreSQL. A write transaction buffers its entries and writes them
//! in multi-row INSERTs; the log is read only through a `FlushedLog`, which exists only
//! once that buffer is written — so every read of the log sees its own transaction's writes.

use crate::schema::table_name;
use crate::{PgTx, get};
use crmsync_domain::clock::Hlc;
use crmsync_domain::record::{LoggedChange, SyncLogFilter};
use crmsync_domain::store::{ChangeLog, StoreResult, decode_change_fields, encode_change_fields};
use crmsync_domain::sync::SyncId;
use crmsync_domain::{Change, ChangeOp, DomainError, Origin, Table};
use postgres::Row;
use postgres::types::ToSql;
use std::fmt::Write as _;
use std::rc::Rc;

/// The change log as this transaction sees it, with every buffered entry written.
pub(crate) struct FlushedLog<'a, 'c> {
    tx: &'a mut PgTx<'c>,
}

/// A write transaction's entries waiting to be written together; only this module sees
/// them, so nothing else can read the log around them.
#[derive(Default)]
pub(crate) struct ChangeBuffer {
    /// The next seq; the transaction holds the writers' lock.
    next_seq: Option<i64>,
    pending: Vec<PendingChange>,
    /// The last origin written and its stored text, shared by the entries that repeat it.
    last_origin: Option<(Origin, Rc<String>)>,
    last_created_fields: Option<(Vec<i64>, Rc<String>)>,
}

impl<'c> PgTx<'c> {
    pub(crate) fn next_seq(&mut self) -> StoreResult<i64> {
        let seq = match self.log.next_seq {
            Some(seq) => seq,
            None => get(
                &self.query_one("SELECT COALESCE(MAX(seq), 0) + 1 FROM changes", &[])?,
                0,
            )?,
        };
        self.log.next_seq = Some(seq + 1);
        Ok(seq)
    }

    /// Writes the buffered entries: the one way to read the log.
    pub(crate) fn flushed_log(&mut self) -> StoreResult<FlushedLog<'_, 'c>> {
        flush_changes(self)?;
        Ok(FlushedLog { tx: self })
    }
}

impl ChangeLog for PgTx<'_> {
    fn history(&mut self, table: &Table, record_id: i64) -> StoreResult<Vec<Change>> {
        self.flushed_log()?.history(table, record_id)
    }

    fn change_count(&mut self) -> StoreResult<u64> {
        self.flushed_log()?.count()
    }

    fn last_change_seq(&mut self) -> StoreResult<i64> {
        self.flushed_log()?.last_seq()
    }

    fn append_resends(
        &mut self,
        table_id: i64,
        record_ids: &[i64],
        fields: &[i64],
        sync_id: SyncId,
        at_ms: i64,
    ) -> StoreResult<Option<(i64, i64)>> {
        let origin = Rc::new(Origin::Resend(sync_id).as_string());
        let listed = Rc::new(format!(
            "[{}]",
            fields
                .iter()
                .map(i64::to_string)
                .collect::<Vec<_>>()
                .join(",")
        ));
        let mut range = None;
        for id in record_ids {
            let seq = self.next_seq()?;
            range = Some((range.map_or(seq, |(first, _)| first), seq));
            self.log.pending.push(PendingChange {
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
            if self.log.pending.len() >= CHANGE_BATCH {
                flush_changes(self)?;
            }
        }
        Ok(range)
    }

    fn changes_for_sync(
        &mut self,
        after: i64,
        limit: usize,
        filter: &SyncLogFilter,
    ) -> StoreResult<(Vec<LoggedChange>, i64)> {
        self.flushed_log()?.for_sync(after, limit, filter)
    }

    fn count_changes_for_sync(&mut self, after: i64, filter: &SyncLogFilter) -> StoreResult<u64> {
        self.flushed_log()?.count_for_sync(after, filter)
    }
}

/// `SyncLogFilter::takes` in SQL: $2 the sync's own origin, $3 its own resends.
const FOR_SYNC: &str = "origin <> $2 AND (op <> 'resend' OR origin = $3)";

impl FlushedLog<'_, '_> {
    /// The entries after `after` that `filter` takes, and how far the log was read (see
    /// `ChangeLog::changes_for_sync`): a stretch of echoes is passed over inside the
    /// database, without a row of it decoded.
    fn for_sync(
        &mut self,
        after: i64,
        limit: usize,
        filter: &SyncLogFilter,
    ) -> StoreResult<(Vec<LoggedChange>, i64)> {
        let rows = self.tx.query(
            &format!(
                "SELECT seq, table_id, record_id, op, origin, fields FROM changes
                 WHERE seq > $1 AND {FOR_SYNC} ORDER BY seq LIMIT $4"
            ),
            &[
                &after,
                &filter.own_origin.as_string(),
                &filter.own_resend.as_string(),
                &(limit as i64),
            ],
        )?;
        let changes = rows
            .iter()
            .map(logged_change)
            .collect::<StoreResult<Vec<_>>>()?;
        let upto = match changes.last() {
            Some(last) if changes.len() >= limit => last.seq,
            // Read to the end of the log (this transaction's view of it).
            _ => self.last_seq()?.max(after),
        };
        Ok((changes, upto))
    }

    fn count_for_sync(&mut self, after: i64, filter: &SyncLogFilter) -> StoreResult<u64> {
        let row = self.tx.query_one(
            &format!("SELECT COUNT(*) FROM changes WHERE seq > $1 AND {FOR_SYNC}"),
            &[
                &after,
                &filter.own_origin.as_string(),
                &filter.own_resend.as_string(),
            ],
        )?;
        Ok(get::<i64>(&row, 0)? as u64)
    }

    fn last_seq(&mut self) -> StoreResult<i64> {
        get(
            &self
                .tx
                .query_one("SELECT COALESCE(MAX(seq), 0) FROM changes", &[])?,
            0,
        )
    }

    fn count(&mut self) -> StoreResult<u64> {
        // Entries are numbered without gaps and never removed: the count is the range.
        let row = self.tx.query_one(
            "SELECT COALESCE(MAX(seq) - MIN(seq) + 1, 0) FROM changes",
            &[],
        )?;
        Ok(get::<i64>(&row, 0)? as u64)
    }

    /// A record's entries, oldest first: the chain from its row's `last_seq`.
    fn history(&mut self, table: &Table, record_id: i64) -> StoreResult<Vec<Change>> {
        let head = self.tx.query_opt(
            &format!(
                "SELECT uid, last_seq FROM {} WHERE id = $1",
                table_name(table.id)
            ),
            &[&record_id],
        )?;
        let Some(head) = head else {
            return Ok(Vec::new());
        };
        let record_uid = get(&head, 0)?;
        let mut changes = Vec::new();
        let mut next: Option<i64> = Some(get(&head, 1)?);
        while let Some(seq) = next {
            let row = self.tx.query_one(
                "SELECT prev_seq, op, hlc, origin, user_id, at, fields FROM changes WHERE seq = $1",
                &[&seq],
            )?;
            let op: String = get(&row, 1)?;
            let fields: String = get(&row, 6)?;
            let (created_fields, fields) = decode_change_fields(&fields)?;
            changes.push(Change {
                seq,
                table_id: table.id,
                record_id,
                record_uid,
                op: ChangeOp::parse(&op)
                    .ok_or_else(|| DomainError::Store(format!("unknown op {op}")))?,
                hlc: Hlc(get::<i64>(&row, 2)? as u64),
                origin: Origin::parse(&get::<String>(&row, 3)?),
                user_id: get(&row, 4)?,
                at_ms: get(&row, 5)?,
                created_fields,
                fields,
            });
            next = get(&row, 0)?;
        }
        changes.reverse();
        Ok(changes)
    }
}

fn logged_change(row: &Row) -> StoreResult<LoggedChange> {
    let op: String = get(row, 3)?;
    let fields: String = get(row, 5)?;
    let (created, changed) = decode_change_fields(&fields)?;
    let field_nos = if created.is_empty() {
        changed.into_iter().map(|f| f.field_no).collect()
    } else {
        created
    };
    Ok(LoggedChange {
        seq: get(row, 0)?,
        table_id: get(row, 1)?,
        record_id: get(row, 2)?,
        op: ChangeOp::parse(&op).ok_or_else(|| DomainError::Store(format!("unknown op {op}")))?,
        origin: Origin::parse(&get::<String>(row, 4)?),
        field_nos,
    })
}

/// A change-log row waiting in its transaction to be written with others.
struct PendingChange {
    seq: i64,
    prev_seq: Option<i64>,
    table_id: i64,
    record_id: i64,
    op: ChangeOp,
    hlc: i64,
    origin: Rc<String>,
    user_id: Option<i64>,
    at: i64,
    fields: Rc<String>,
}

/// Rows per multi-row INSERT into the change log (10 parameters each, of PostgreSQL's
/// 65,535 a statement).
const CHANGE_BATCH: usize = 256;

/// Appends `change` as entry `seq`; `prev_seq` is the record's previous entry, so a
/// record's history is a chain walked from its row's `last_seq`. Rows are buffered and
/// written in multi-row INSERTs within the same transaction.
pub(crate) fn append_change(
    tx: &mut PgTx<'_>,
    change: &Change,
    record_id: i64,
    seq: i64,
    prev_seq: Option<i64>,
) -> StoreResult<()> {
    // A bulk write repeats its origin and, for creates, its field list: share them.
    let origin = match &tx.log.last_origin {
        Some((last, text)) if *last == change.origin => text.clone(),
        _ => {
            let text = Rc::new(change.origin.as_string());
            tx.log.last_origin = Some((change.origin.clone(), text.clone()));
            text
        }
    };
    let fields = match &tx.log.last_created_fields {
        Some((nos, text)) if change.op == ChangeOp::Create && *nos == change.created_fields => {
            text.clone()
        }
        _ => {
            let text = Rc::new(encode_change_fields(change)?);
            if change.op == ChangeOp::Create {
                tx.log.last_created_fields = Some((change.created_fields.clone(), text.clone()));
            }
            text
        }
    };
    tx.log.pending.push(PendingChange {
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
    if tx.log.pending.len() >= CHANGE_BATCH {
        flush_changes(tx)?;
    }
    Ok(())
}

fn flush_changes(tx: &mut PgTx<'_>) -> StoreResult<()> {
    let pending = std::mem::take(&mut tx.log.pending);
    for chunk in pending.chunks(CHANGE_BATCH) {
        let mut sql = String::from(
            "INSERT INTO changes (seq, prev_seq, table_id, record_id, op, hlc, origin, user_id, at, fields) VALUES ",
        );
        let ops: Vec<&str> = chunk.iter().map(|c| c.op.as_str()).collect();
        let mut params: Vec<&(dyn ToSql + Sync)> = Vec::with_capacity(10 * chunk.len());
        for (i, c) in chunk.iter().enumerate() {
            if i > 0 {
                sql.push(',');
            }
            let n = 10 * i;
            let _ = write!(
                sql,
                "(${},${},${},${},${},${},${},${},${},${})",
                n + 1,
                n + 2,
                n + 3,
                n + 4,
                n + 5,
                n + 6,
                n + 7,
                n + 8,
                n + 9,
                n + 10
            );
            params.extend([
                &c.seq as &(dyn ToSql + Sync),
                &c.prev_seq,
                &c.table_id,
                &c.record_id,
                &ops[i],
                &c.hlc,
                &*c.origin,
                &c.user_id,
                &c.at,
                &*c.fields,
            ]);
        }
        tx.execute(&sql, &params)?;
    }
    Ok(())
}
