//! The change log in SQLite. A write transaction buffers its entries (the domain's
//! `ChangeBuffer`) and writes them in multi-row INSERTs; the log is read only through a `FlushedLog`, which exists only once
//! that buffer is written — so every read of the log sees its own transaction's writes.

use crate::records::uid_from;
use crate::schema::table_name;
use crate::{SqliteTx, sql_error};
use crmsync_domain::clock::Hlc;
use crmsync_domain::record::{LoggedChange, SyncLogFilter};
use crmsync_domain::store::change_buffer::{BufferedChangeLog, ChangeBuffer, PendingChange};
use crmsync_domain::store::{ChangeLog, StoreResult, decode_change_fields};
use crmsync_domain::sync::SyncId;
use crmsync_domain::{Change, ChangeOp, DomainError, Origin, Table};
use rusqlite::{OptionalExtension, Transaction};

/// The change log as this transaction sees it, with every buffered entry written.
pub(crate) struct FlushedLog<'a> {
    tx: &'a Transaction<'a>,
}

impl SqliteTx<'_> {
    /// Writes the buffered entries: the one way to read the log.
    pub(crate) fn flushed_log(&mut self) -> StoreResult<FlushedLog<'_>> {
        self.flush_changes()?;
        Ok(FlushedLog { tx: &self.tx })
    }
}

impl BufferedChangeLog for SqliteTx<'_> {
    fn change_buffer(&mut self) -> &mut ChangeBuffer {
        &mut self.log
    }

    fn first_free_seq(&mut self) -> StoreResult<i64> {
        self.tx
            .query_row("SELECT COALESCE(MAX(seq), 0) + 1 FROM changes", [], |r| {
                r.get(0)
            })
            .map_err(sql_error)
    }

    fn insert_changes(&mut self, rows: &[PendingChange]) -> StoreResult<()> {
        // Creates have no previous entry and a known op: fewer parameters to bind.
        let (creates, others): (Vec<&PendingChange>, Vec<&PendingChange>) =
            rows.iter().partition(|c| c.op == ChangeOp::Create);
        if !creates.is_empty() {
            let mut sql_params: Vec<&dyn rusqlite::ToSql> = Vec::with_capacity(8 * creates.len());
            for c in &creates {
                sql_params.extend([
                    &c.seq as &dyn rusqlite::ToSql,
                    &c.table_id,
                    &c.record_id,
                    &c.hlc,
                    &*c.origin,
                    &c.user_id,
                    &c.at,
                    &*c.fields,
                ]);
            }
            insert_change_rows(
                &self.tx,
                "(?,NULL,?,?,'create',?,?,?,?,?)",
                creates.len(),
                &sql_params,
            )?;
        }
        if !others.is_empty() {
            let ops: Vec<&str> = others.iter().map(|c| c.op.as_str()).collect();
            let mut sql_params: Vec<&dyn rusqlite::ToSql> = Vec::with_capacity(10 * others.len());
            for (i, c) in others.iter().enumerate() {
                sql_params.extend([
                    &c.seq as &dyn rusqlite::ToSql,
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
            insert_change_rows(&self.tx, "(?,?,?,?,?,?,?,?,?,?)", others.len(), &sql_params)?;
        }
        Ok(())
    }
}

impl ChangeLog for SqliteTx<'_> {
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

/// `SyncLogFilter::takes` in SQL.
const FOR_SYNC: &str = "origin != :own AND (op != 'resend' OR origin = :resend)";

impl FlushedLog<'_> {
    /// The entries after `after` that `filter` takes, and how far the log was read (see
    /// `ChangeLog::changes_for_sync`): a stretch of echoes is passed over inside SQLite,
    /// without a row of it decoded.
    fn for_sync(
        &self,
        after: i64,
        limit: usize,
        filter: &SyncLogFilter,
    ) -> StoreResult<(Vec<LoggedChange>, i64)> {
        let changes = {
            let mut stmt = self
                .tx
                .prepare_cached(&format!(
                    "SELECT seq, table_id, record_id, op, origin, fields FROM changes
                     WHERE seq > :after AND {FOR_SYNC} ORDER BY seq LIMIT :limit"
                ))
                .map_err(sql_error)?;
            let rows = stmt
                .query(rusqlite::named_params! {
                    ":after": after,
                    ":limit": limit as i64,
                    ":own": filter.own_origin.as_string(),
                    ":resend": filter.own_resend.as_string(),
                })
                .map_err(sql_error)?;
            logged_changes(rows)?
        };
        let upto = match changes.last() {
            Some(last) if changes.len() >= limit => last.seq,
            // Read to the end of the log (this transaction's view of it).
            _ => self.last_seq()?.max(after),
        };
        Ok((changes, upto))
    }

    fn count_for_sync(&self, after: i64, filter: &SyncLogFilter) -> StoreResult<u64> {
        self.tx
            .prepare_cached(&format!(
                "SELECT COUNT(*) FROM changes WHERE seq > :after AND {FOR_SYNC}"
            ))
            .and_then(|mut stmt| {
                stmt.query_row(
                    rusqlite::named_params! {
                        ":after": after,
                        ":own": filter.own_origin.as_string(),
                        ":resend": filter.own_resend.as_string(),
                    },
                    |r| r.get::<_, i64>(0),
                )
            })
            .map(|n| n as u64)
            .map_err(sql_error)
    }

    fn last_seq(&self) -> StoreResult<i64> {
        self.tx
            .query_row("SELECT COALESCE(MAX(seq), 0) FROM changes", [], |r| {
                r.get(0)
            })
            .map_err(sql_error)
    }

    fn count(&self) -> StoreResult<u64> {
        self.tx
            // Entries are numbered without gaps and never removed: the count is the range
            // (two lookups, one query each: SQLite reads the whole log for COUNT(*) or for
            // MIN and MAX in one select).
            .query_row(
                "SELECT COALESCE((SELECT MAX(seq) FROM changes) - (SELECT MIN(seq) FROM changes) + 1, 0)",
                [],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n as u64)
            .map_err(sql_error)
    }

    /// A record's entries, oldest first: the chain from its row's `last_seq`.
    fn history(&self, table: &Table, record_id: i64) -> StoreResult<Vec<Change>> {
        let tx = self.tx;
        let head: Option<(Vec<u8>, i64)> = tx
            .prepare_cached(&format!(
                "SELECT uid, last_seq FROM {} WHERE id = ?1",
                table_name(table.id)
            ))
            .and_then(|mut stmt| {
                stmt.query_row([record_id], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()
            })
            .map_err(sql_error)?;
        let Some((uid, last_seq)) = head else {
            return Ok(Vec::new());
        };
        let record_uid = uid_from(&uid)?;
        let mut stmt = tx
            .prepare_cached(
                "SELECT prev_seq, op, hlc, origin, user_id, at, fields FROM changes WHERE seq = ?1",
            )
            .map_err(sql_error)?;
        let mut changes = Vec::new();
        let mut next = Some(last_seq);
        while let Some(seq) = next {
            let (prev, op, hlc, origin, user_id, at_ms, fields): (
                Option<i64>,
                String,
                i64,
                String,
                Option<i64>,
                i64,
                String,
            ) = stmt
                .query_row([seq], |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                        r.get(6)?,
                    ))
                })
                .map_err(sql_error)?;
            let (created_fields, fields) = decode_change_fields(&fields)?;
            changes.push(Change {
                seq,
                table_id: table.id,
                record_id,
                record_uid,
                op: ChangeOp::parse(&op)
                    .ok_or_else(|| DomainError::Store(format!("unknown op {op}")))?,
                hlc: Hlc(hlc as u64),
                origin: Origin::parse(&origin),
                user_id,
                at_ms,
                created_fields,
                fields,
            });
            next = prev;
        }
        changes.reverse();
        Ok(changes)
    }
}

fn logged_changes(mut rows: rusqlite::Rows<'_>) -> StoreResult<Vec<LoggedChange>> {
    let mut changes = Vec::new();
    while let Some(row) = rows.next().map_err(sql_error)? {
        let op: String = row.get(3).map_err(sql_error)?;
        let fields: String = row.get(5).map_err(sql_error)?;
        let (created, changed) = decode_change_fields(&fields)?;
        let field_nos = if created.is_empty() {
            changed.into_iter().map(|f| f.field_no).collect()
        } else {
            created
        };
        changes.push(LoggedChange {
            seq: row.get(0).map_err(sql_error)?,
            table_id: row.get(1).map_err(sql_error)?,
            record_id: row.get(2).map_err(sql_error)?,
            op: ChangeOp::parse(&op)
                .ok_or_else(|| DomainError::Store(format!("unknown op {op}")))?,
            origin: Origin::parse(&row.get::<_, String>(4).map_err(sql_error)?),
            field_nos,
        });
    }
    Ok(changes)
}

/// One multi-row INSERT of `rows` change-log rows, each written as `row_values`.
fn insert_change_rows(
    tx: &Transaction<'_>,
    row_values: &str,
    rows: usize,
    params: &[&dyn rusqlite::ToSql],
) -> StoreResult<()> {
    let mut sql = String::from(
        "INSERT INTO changes (seq, prev_seq, table_id, record_id, op, hlc, origin, user_id, at, fields) VALUES ",
    );
    for i in 0..rows {
        if i > 0 {
            sql.push(',');
        }
        sql.push_str(row_values);
    }
    tx.prepare_cached(&sql)
        .and_then(|mut stmt| stmt.execute(params))
        .map_err(sql_error)?;
    Ok(())
}
