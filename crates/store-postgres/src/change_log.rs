//! The change log in PostgreSQL. A write transaction buffers its entries (the domain's
//! `ChangeBuffer`) and writes them in batches, one INSERT of column arrays each; the log is
//! read only through a `FlushedLog`, which exists only once that buffer is written — so
//! every read of the log sees its own transaction's writes.

use crate::schema::table_name;
use crate::{PgTx, get};
use crmsync_domain::clock::Hlc;
use crmsync_domain::record::{LoggedChange, SyncLogFilter};
use crmsync_domain::store::change_buffer::{BufferedChangeLog, ChangeBuffer, PendingChange};
use crmsync_domain::store::{ChangeLog, StoreResult, decode_change_fields};
use crmsync_domain::sync::SyncId;
use crmsync_domain::{Change, ChangeOp, DomainError, Origin, Table};
use postgres::Row;

/// The change log as this transaction sees it, with every buffered entry written.
pub(crate) struct FlushedLog<'a, 'c> {
    tx: &'a mut PgTx<'c>,
}

impl<'c> PgTx<'c> {
    /// Writes the buffered entries: the one way to read the log.
    pub(crate) fn flushed_log(&mut self) -> StoreResult<FlushedLog<'_, 'c>> {
        self.flush_changes()?;
        Ok(FlushedLog { tx: self })
    }
}

impl BufferedChangeLog for PgTx<'_> {
    fn change_buffer(&mut self) -> &mut ChangeBuffer {
        &mut self.log
    }

    fn first_free_seq(&mut self) -> StoreResult<i64> {
        get(
            &self.query_one("SELECT COALESCE(MAX(seq), 0) + 1 FROM changes", &[])?,
            0,
        )
    }

    /// One INSERT of column arrays: one prepared statement for any number of rows.
    fn insert_changes(&mut self, rows: &[PendingChange]) -> StoreResult<()> {
        let column = |f: fn(&PendingChange) -> i64| rows.iter().map(f).collect::<Vec<i64>>();
        let (seqs, table_ids, record_ids, hlcs, ats) = (
            column(|c| c.seq),
            column(|c| c.table_id),
            column(|c| c.record_id),
            column(|c| c.hlc),
            column(|c| c.at),
        );
        let prev_seqs: Vec<Option<i64>> = rows.iter().map(|c| c.prev_seq).collect();
        let user_ids: Vec<Option<i64>> = rows.iter().map(|c| c.user_id).collect();
        let ops: Vec<&str> = rows.iter().map(|c| c.op.as_str()).collect();
        let origins: Vec<&str> = rows.iter().map(|c| c.origin.as_str()).collect();
        let fields: Vec<&str> = rows.iter().map(|c| c.fields.as_str()).collect();
        self.execute(
            "INSERT INTO changes (seq, prev_seq, table_id, record_id, op, hlc, origin, user_id, at, fields)
             SELECT * FROM UNNEST($1::BIGINT[], $2::BIGINT[], $3::BIGINT[], $4::BIGINT[], $5::TEXT[],
                                  $6::BIGINT[], $7::TEXT[], $8::BIGINT[], $9::BIGINT[], $10::TEXT[])",
            &[
                &seqs, &prev_seqs, &table_ids, &record_ids, &ops, &hlcs, &origins, &user_ids,
                &ats, &fields,
            ],
        )?;
        Ok(())
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
        self.append_resend_entries(table_id, record_ids, fields, sync_id, at_ms)
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
