//! Record rows, their stamps and the change log.

use crate::{SqliteTx, sql_error};
use crmsync_domain::record::{NewRow, RowUpdate, SortKey, StatusFilter, StoredRecord};
use crmsync_domain::store::change_buffer::BufferedChangeLog;
use crmsync_domain::store::stored_row::{
    InsertPlan, Placeholders, RawStored, RowColumns, UpdatePlan, insert_sql, record_from_row,
    select_columns, status_from, stored_select, table_name, update_sql,
};
use crmsync_domain::store::{RecordStore, StoreResult, TableCounts};
use crmsync_domain::{
    Change, DomainError, Field, FieldType, FileRef, Record, RecordQuery, RecordStatus, Table, Value,
};
use rusqlite::functions::FunctionFlags;
use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, OptionalExtension, Transaction};
use std::fmt::Write as _;
use std::rc::Rc;
use uuid::Uuid;

/// `crm_contains(haystack, needle)`: case-insensitive for every alphabet (SQLite's LIKE
/// folds ASCII only, and our users write Cyrillic). `needle` arrives lower-cased.
pub fn register_functions(conn: &Connection) -> Result<(), DomainError> {
    conn.create_scalar_function(
        "crm_contains",
        2,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        |ctx| {
            let haystack = match ctx.get_raw(0) {
                ValueRef::Text(t) => String::from_utf8_lossy(t).to_lowercase(),
                _ => return Ok(false),
            };
            let needle: String = ctx.get(1)?;
            Ok(haystack.contains(&needle))
        },
    )
    .map_err(sql_error)
}

/// A borrowed SQL parameter for a domain value.
struct Param<'a>(&'a Value);

impl rusqlite::ToSql for Param<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self.0 {
            Value::Null => ToSqlOutput::Borrowed(ValueRef::Null),
            Value::Text(s) | Value::Date(s) | Value::Datetime(s) => {
                ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes()))
            }
            Value::Number(n) => ToSqlOutput::Borrowed(ValueRef::Real(*n)),
            Value::Money(n) | Value::User(n) | Value::Link(n) => {
                ToSqlOutput::Borrowed(ValueRef::Integer(*n))
            }
            Value::File(f) => ToSqlOutput::Owned(rusqlite::types::Value::Text(
                serde_json::to_string(f).unwrap_or_default(),
            )),
        })
    }
}

fn decode(field: &Field, raw: ValueRef<'_>) -> StoreResult<Value> {
    let bad = || {
        DomainError::Store(format!(
            "field {} holds a value of the wrong kind",
            field.no
        ))
    };
    if let ValueRef::Null = raw {
        return Ok(Value::Null);
    }
    let text = || -> StoreResult<String> {
        match raw {
            ValueRef::Text(t) => Ok(String::from_utf8_lossy(t).into_owned()),
            _ => Err(bad()),
        }
    };
    let int = || -> StoreResult<i64> {
        match raw {
            ValueRef::Integer(i) => Ok(i),
            _ => Err(bad()),
        }
    };
    Ok(match field.field_type {
        FieldType::Text | FieldType::Longtext | FieldType::Select => Value::Text(text()?),
        FieldType::Date => Value::Date(text()?),
        FieldType::Datetime => Value::Datetime(text()?),
        FieldType::Number => match raw {
            ValueRef::Real(r) => Value::Number(r),
            ValueRef::Integer(i) => Value::Number(i as f64),
            _ => return Err(bad()),
        },
        FieldType::Money => Value::Money(int()?),
        FieldType::User => Value::User(int()?),
        FieldType::Link => Value::Link(int()?),
        FieldType::File => {
            Value::File(serde_json::from_str::<FileRef>(&text()?).map_err(|_| bad())?)
        }
    })
}

pub(crate) fn uid_from(bytes: &[u8]) -> StoreResult<Uuid> {
    Uuid::from_slice(bytes).map_err(|e| DomainError::Store(e.to_string()))
}

/// A row as the shared readers of `stored_row` take it.
struct Columns<'a, 'r>(&'a rusqlite::Row<'r>);

impl RowColumns for Columns<'_, '_> {
    fn int(&self, idx: usize) -> StoreResult<i64> {
        self.0.get(idx).map_err(sql_error)
    }

    fn int_or_null(&self, idx: usize) -> StoreResult<Option<i64>> {
        self.0.get(idx).map_err(sql_error)
    }

    fn uid(&self, idx: usize) -> StoreResult<Uuid> {
        let bytes = self.0.get_ref(idx).and_then(|v| Ok(v.as_blob()?));
        uid_from(bytes.map_err(sql_error)?)
    }

    fn value(&self, field: &Field, idx: usize) -> StoreResult<Value> {
        decode(field, self.0.get_ref(idx).map_err(sql_error)?)
    }
}

/// Uids or ids per lookup statement (SQLite allows 32,766 parameters).
const UIDS_PER_LOOKUP: usize = 500;

/// `?,?,…` for an `IN` list of `n` values.
fn placeholders(n: usize) -> String {
    vec!["?"; n].join(",")
}

fn record_where(
    tx: &mut SqliteTx<'_>,
    table: &Table,
    condition: &'static str,
    key: &dyn rusqlite::ToSql,
) -> StoreResult<Option<StoredRecord>> {
    // Built once per table and condition in a transaction: a packet looks up thousands.
    let sql = match tx.select_sql.get(&(table.id, condition)) {
        Some(sql) => sql.clone(),
        None => {
            let sql: Rc<str> = stored_select(table, condition).into();
            tx.select_sql.insert((table.id, condition), sql.clone());
            sql
        }
    };
    let raw = {
        let mut stmt = tx.tx.prepare_cached(&sql).map_err(sql_error)?;
        let mut rows = stmt.query([key]).map_err(sql_error)?;
        match rows.next().map_err(sql_error)? {
            None => None,
            Some(row) => Some(RawStored::read(table, &Columns(row))?),
        }
    };
    raw.map(|raw| raw.resolve(|node| tx.node_uid(node)))
        .transpose()
}

fn constraint_error(e: rusqlite::Error, table: &Table) -> DomainError {
    if let rusqlite::Error::SqliteFailure(err, _) = &e
        && err.code == rusqlite::ErrorCode::ConstraintViolation
    {
        return DomainError::Conflict(format!("table {}: {e}", table.id));
    }
    sql_error(e)
}

/// A table's (active, deleted) records, counted row by row.
pub(crate) fn count_rows(tx: &Transaction<'_>, table_id: i64) -> StoreResult<(i64, i64)> {
    let sql = format!(
        "SELECT COALESCE(SUM(status = 0), 0), COALESCE(SUM(status = 1), 0) FROM {}",
        table_name(table_id)
    );
    tx.query_row(&sql, [], |r| Ok((r.get(0)?, r.get(1)?)))
        .map_err(sql_error)
}

/// Writes the transaction's count changes into `record_counts`; a table without a row
/// there (a database from before the counts) is counted whole once, its new rows included.
pub(crate) fn flush_counts(tx: &mut SqliteTx<'_>) -> StoreResult<()> {
    let changes: Vec<_> = tx.count_changes.take().collect();
    for (table_id, (active, deleted)) in changes {
        let updated = tx
            .tx
            .prepare_cached(
                "UPDATE record_counts SET active = active + ?1, deleted = deleted + ?2 WHERE table_id = ?3",
            )
            .and_then(|mut stmt| stmt.execute(rusqlite::params![active, deleted, table_id]))
            .map_err(sql_error)?;
        if updated == 0 {
            let (active, deleted) = count_rows(&tx.tx, table_id)?;
            tx.tx
                .execute(
                    "INSERT INTO record_counts (table_id, active, deleted) VALUES (?1, ?2, ?3)",
                    rusqlite::params![table_id, active, deleted],
                )
                .map_err(sql_error)?;
        }
    }
    Ok(())
}

impl RecordStore for SqliteTx<'_> {
    fn record(&mut self, table: &Table, id: i64) -> StoreResult<Option<StoredRecord>> {
        let tx = self;
        record_where(tx, table, "id = ?1", &id)
    }

    fn record_by_uid(&mut self, table: &Table, uid: Uuid) -> StoreResult<Option<StoredRecord>> {
        let tx = self;
        record_where(tx, table, "uid = ?1", &uid.as_bytes().as_slice())
    }

    fn uids_present(
        &mut self,
        table: &Table,
        uids: &[Uuid],
    ) -> StoreResult<std::collections::HashSet<Uuid>> {
        let tx = &self.tx;
        let mut present = std::collections::HashSet::new();
        for chunk in uids.chunks(UIDS_PER_LOOKUP) {
            let sql = format!(
                "SELECT uid FROM {} WHERE uid IN ({})",
                table_name(table.id),
                placeholders(chunk.len())
            );
            let mut stmt = tx.prepare_cached(&sql).map_err(sql_error)?;
            let keys = chunk.iter().map(|uid| uid.as_bytes().as_slice());
            let mut rows = stmt
                .query(rusqlite::params_from_iter(keys))
                .map_err(sql_error)?;
            while let Some(row) = rows.next().map_err(sql_error)? {
                let bytes = row.get_ref(0).and_then(|v| Ok(v.as_blob()?));
                present.insert(uid_from(bytes.map_err(sql_error)?)?);
            }
        }
        Ok(present)
    }

    fn record_uid(&mut self, table_id: i64, id: i64) -> StoreResult<Option<Uuid>> {
        let tx = &self.tx;
        let sql = format!("SELECT uid FROM {} WHERE id = ?1", table_name(table_id));
        let bytes: Option<Vec<u8>> = tx
            .prepare_cached(&sql)
            .and_then(|mut stmt| stmt.query_row([id], |r| r.get(0)).optional())
            .map_err(sql_error)?;
        bytes.map(|b| uid_from(&b)).transpose()
    }

    /// Records of `table` by id, read together (statements of `UIDS_PER_LOOKUP` ids); ids
    /// without a record are left out.
    fn records_by_ids(&mut self, table: &Table, ids: &[i64]) -> StoreResult<Vec<StoredRecord>> {
        let tx = self;
        let mut stored = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(UIDS_PER_LOOKUP) {
            let condition = format!("id IN ({})", placeholders(chunk.len()));
            let raws = {
                let mut stmt = tx
                    .tx
                    .prepare_cached(&stored_select(table, &condition))
                    .map_err(sql_error)?;
                let mut rows = stmt
                    .query(rusqlite::params_from_iter(chunk))
                    .map_err(sql_error)?;
                let mut raws = Vec::with_capacity(chunk.len());
                while let Some(row) = rows.next().map_err(sql_error)? {
                    raws.push(RawStored::read(table, &Columns(row))?);
                }
                raws
            };
            for raw in raws {
                stored.push(raw.resolve(|node| tx.node_uid(node))?);
            }
        }
        Ok(stored)
    }

    fn record_status(&mut self, table_id: i64, id: i64) -> StoreResult<Option<RecordStatus>> {
        let tx = &self.tx;
        let sql = format!("SELECT status FROM {} WHERE id = ?1", table_name(table_id));
        let mut stmt = tx.prepare_cached(&sql).map_err(sql_error)?;
        stmt.query_row([id], |r| r.get::<_, i64>(0))
            .optional()
            .map(|s| s.map(status_from))
            .map_err(sql_error)
    }

    fn record_ids(&mut self, table: &Table, after: i64, limit: usize) -> StoreResult<Vec<i64>> {
        let tx = &self.tx;
        let sql = format!(
            "SELECT id FROM {} WHERE id > ?1 ORDER BY id LIMIT ?2",
            table_name(table.id)
        );
        let mut stmt = tx.prepare_cached(&sql).map_err(sql_error)?;
        let ids = stmt
            .query_map(rusqlite::params![after, limit as i64], |r| r.get(0))
            .map_err(sql_error)?
            .collect::<Result<Vec<i64>, _>>()
            .map_err(sql_error)?;
        Ok(ids)
    }

    fn insert_record(&mut self, table: &Table, row: &NewRow, change: &Change) -> StoreResult<i64> {
        let tx = self;
        let plan = InsertPlan::new(row, |node| tx.node_id(node))?;
        let sql = tx.insert_sql.get_or_build(table.id, plan.shape, |shape| {
            insert_sql(table.id, shape, Placeholders::Anonymous, "")
        });
        let uid = row.uid.as_bytes().as_slice();
        let base_hlc = row.status_stamp.hlc.0 as i64;
        let seq = tx.next_seq()?;
        let values: Vec<Param<'_>> = plan.cells.iter().map(|(value, _)| Param(value)).collect();
        let mut sql_params: Vec<&dyn rusqlite::ToSql> = Vec::with_capacity(5 + 3 * values.len());
        sql_params.extend([
            &uid as &dyn rusqlite::ToSql,
            &row.created_at_ms,
            &base_hlc,
            &seq,
        ]);
        if let Some(base_node) = &plan.base_node {
            sql_params.push(base_node);
        }
        for (value, (_, own)) in values.iter().zip(&plan.cells) {
            sql_params.push(value);
            if let Some((hlc, node)) = own {
                sql_params.push(hlc);
                sql_params.push(node);
            }
        }
        tx.tx
            .prepare_cached(&sql)
            .and_then(|mut stmt| stmt.execute(sql_params.as_slice()))
            .map_err(|e| constraint_error(e, table))?;
        let id = tx.tx.last_insert_rowid();
        tx.count_changes.note(table.id, row.status, 1);
        tx.append_change(change, id, seq, None)?;
        Ok(id)
    }

    fn update_record(
        &mut self,
        table: &Table,
        update: &RowUpdate,
        change: &Change,
    ) -> StoreResult<()> {
        let tx = self;
        let (prev_seq, prev_status): (i64, i64) = tx
            .tx
            .prepare_cached(&format!(
                "SELECT last_seq, status FROM {} WHERE id = ?1",
                table_name(table.id)
            ))
            .and_then(|mut stmt| {
                stmt.query_row([update.id], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()
            })
            .map_err(sql_error)?
            .ok_or_else(|| {
                DomainError::not_found(format!(
                    "there is no record {} in table {}",
                    update.id, table.id
                ))
            })?;
        let seq = tx.next_seq()?;
        let plan = UpdatePlan::new(update, |node| tx.node_id(node))?;
        let sql = update_sql(table.id, update, Placeholders::Anonymous);
        let values: Vec<Param<'_>> = plan.cells.iter().map(|(v, _, _)| Param(v)).collect();
        let mut sql_params: Vec<&dyn rusqlite::ToSql> = vec![&update.updated_at_ms, &seq];
        if let Some((code, hlc, node)) = &plan.status {
            sql_params.extend([code as &dyn rusqlite::ToSql, hlc, node]);
        }
        for (value, (_, hlc, node)) in values.iter().zip(&plan.cells) {
            sql_params.push(value);
            sql_params.push(hlc);
            sql_params.push(node);
        }
        sql_params.push(&update.id);
        let changed = tx
            .tx
            .prepare_cached(&sql)
            .and_then(|mut stmt| stmt.execute(sql_params.as_slice()))
            .map_err(|e| constraint_error(e, table))?;
        if changed != 1 {
            return Err(DomainError::not_found(format!(
                "there is no record {} in table {}",
                update.id, table.id
            )));
        }
        if let Some((status, _)) = update.status {
            let before = status_from(prev_status);
            if before != status {
                tx.count_changes.note(table.id, before, -1);
                tx.count_changes.note(table.id, status, 1);
            }
        }
        tx.append_change(change, update.id, seq, Some(prev_seq))
    }

    fn list_records(&mut self, table: &Table, query: &RecordQuery) -> StoreResult<Vec<Record>> {
        let tx = &self.tx;
        let t = table_name(table.id);
        let mut sql = format!("SELECT {} FROM {t}", select_columns(table));
        let mut conditions: Vec<String> = Vec::new();
        let mut args: Vec<rusqlite::types::Value> = Vec::new();
        match query.status {
            StatusFilter::Active => conditions.push("status = 0".into()),
            StatusFilter::Deleted => conditions.push("status = 1".into()),
            StatusFilter::All => {}
        }
        if let Some(q) = query.q.as_deref().map(str::trim).filter(|q| !q.is_empty()) {
            let searchable: Vec<String> = table
                .fields
                .iter()
                .filter(|f| f.field_type.is_searchable_text())
                .map(|f| format!("crm_contains(f{}, ?)", f.no))
                .collect();
            if searchable.is_empty() {
                conditions.push("0".into());
            } else {
                for _ in &searchable {
                    args.push(rusqlite::types::Value::Text(q.to_lowercase()));
                }
                conditions.push(format!("({})", searchable.join(" OR ")));
            }
        }
        let column = match query.sort {
            SortKey::Id => "id".to_string(),
            SortKey::CreatedAt => "created_at".to_string(),
            SortKey::UpdatedAt => "COALESCE(updated_at, created_at)".to_string(),
            SortKey::Field(no) => format!("f{no}"),
        };
        let (order, cmp) = if query.descending {
            ("DESC", "<")
        } else {
            ("ASC", ">")
        };
        if let Some(after) = query.after {
            if query.sort == SortKey::Id {
                conditions.push(format!("id {cmp} ?"));
                args.push(after.into());
            } else {
                // Keyset paging on (column, id); SQLite puts NULLs first when ascending.
                let v = format!("(SELECT {column} FROM {t} WHERE id = ?)");
                let condition = if query.descending {
                    format!(
                        "(({v} IS NULL AND {column} IS NULL AND id < ?) OR ({v} IS NOT NULL AND ({column} < {v} OR {column} IS NULL OR ({column} = {v} AND id < ?))))"
                    )
                } else {
                    format!(
                        "(({v} IS NULL AND ({column} IS NOT NULL OR id > ?)) OR ({v} IS NOT NULL AND ({column} > {v} OR ({column} = {v} AND id > ?))))"
                    )
                };
                // Six placeholders, all the `after` id.
                for _ in 0..6 {
                    args.push(after.into());
                }
                conditions.push(condition);
            }
        }
        if !conditions.is_empty() {
            let _ = write!(sql, " WHERE {}", conditions.join(" AND "));
        }
        if query.sort == SortKey::Id {
            let _ = write!(sql, " ORDER BY id {order}");
        } else {
            let _ = write!(sql, " ORDER BY {column} {order}, id {order}");
        }
        let _ = write!(sql, " LIMIT {}", query.limit);
        let mut stmt = tx.prepare_cached(&sql).map_err(sql_error)?;
        let mut rows = stmt
            .query(rusqlite::params_from_iter(args.iter()))
            .map_err(sql_error)?;
        let mut records = Vec::new();
        while let Some(row) = rows.next().map_err(sql_error)? {
            records.push(record_from_row(table, &Columns(row))?);
        }
        Ok(records)
    }

    /// A table's records by status: its row in `record_counts` (with this transaction's own
    /// changes), or a count of the table where it has none yet.
    fn table_counts(&mut self, table: &Table) -> StoreResult<TableCounts> {
        let tx = self;
        flush_counts(tx)?;
        let kept: Option<(i64, i64)> = tx
            .tx
            .prepare_cached("SELECT active, deleted FROM record_counts WHERE table_id = ?1")
            .and_then(|mut stmt| {
                stmt.query_row([table.id], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()
            })
            .map_err(sql_error)?;
        let (active, deleted) = match kept {
            Some(kept) => kept,
            None => count_rows(&tx.tx, table.id)?,
        };
        Ok(TableCounts {
            active: active.max(0) as u64,
            deleted: deleted.max(0) as u64,
        })
    }
}
