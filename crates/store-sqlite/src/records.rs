//! Record rows, their stamps and the change log.

use crate::change_log::append_change;
use crate::schema::table_name;
use crate::{SqliteTx, sql_error};
use crmsync_domain::clock::{Hlc, Stamp};
use crmsync_domain::record::{NewRow, RowUpdate, SortKey, StatusFilter, StoredRecord};
use crmsync_domain::store::{RecordStore, StoreResult, TableCounts};
use crmsync_domain::{
    Change, DomainError, Field, FieldType, FileRef, Record, RecordQuery, RecordStatus, Table, Value,
};
use rusqlite::functions::FunctionFlags;
use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, OptionalExtension, Transaction};
use std::collections::BTreeMap;
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

fn status_from(code: i64) -> RecordStatus {
    if code == 0 {
        RecordStatus::Active
    } else {
        RecordStatus::Deleted
    }
}

fn status_code(status: RecordStatus) -> i64 {
    match status {
        RecordStatus::Active => 0,
        RecordStatus::Deleted => 1,
    }
}

pub(crate) fn uid_from(bytes: &[u8]) -> StoreResult<Uuid> {
    Uuid::from_slice(bytes).map_err(|e| DomainError::Store(e.to_string()))
}

/// `updated_at` and the status stamp are NULL until they differ from the creation values.
const SYSTEM_COLUMNS: &str = "id, uid, created_at, COALESCE(updated_at, created_at), status";

fn select_columns(table: &Table) -> String {
    let mut sql = String::from(SYSTEM_COLUMNS);
    for f in &table.fields {
        let _ = write!(sql, ", f{}", f.no);
    }
    sql
}

fn record_from_row(table: &Table, row: &rusqlite::Row<'_>) -> StoreResult<Record> {
    let mut values = BTreeMap::new();
    for (i, field) in table.fields.iter().enumerate() {
        let raw = row.get_ref(5 + i).map_err(sql_error)?;
        let value = decode(field, raw)?;
        if !value.is_null() {
            values.insert(field.no, value);
        }
    }
    Ok(Record {
        id: row.get(0).map_err(sql_error)?,
        uid: uid_from(&row.get::<_, Vec<u8>>(1).map_err(sql_error)?)?,
        created_at_ms: row.get(2).map_err(sql_error)?,
        updated_at_ms: row.get(3).map_err(sql_error)?,
        status: status_from(row.get(4).map_err(sql_error)?),
        values,
    })
}

/// Uids or ids per lookup statement (SQLite allows 32,766 parameters).
const UIDS_PER_LOOKUP: usize = 500;

/// `?,?,…` for an `IN` list of `n` values.
fn placeholders(n: usize) -> String {
    vec!["?"; n].join(",")
}

/// The SELECT of whole stored records (values, status, stamps) of `table` by `condition`.
fn stored_select(table: &Table, condition: &str) -> String {
    let mut sql = select_columns(table);
    sql.push_str(
        ", COALESCE(status_hlc, base_hlc), COALESCE(status_node, base_node), base_hlc, base_node",
    );
    for f in &table.fields {
        let _ = write!(sql, ", h{n}, n{n}", n = f.no);
    }
    format!(
        "SELECT {sql} FROM {} WHERE {condition}",
        table_name(table.id)
    )
}

/// A stored record as read, its nodes still local numbers: (record, status stamp, field
/// stamps as (no, hlc, node)).
type RawStored = (Record, (i64, i64), Vec<(i64, i64, i64)>);

fn raw_stored(table: &Table, row: &rusqlite::Row<'_>) -> StoreResult<RawStored> {
    let record = record_from_row(table, row)?;
    let base = 5 + table.fields.len();
    let status = (
        row.get(base).map_err(sql_error)?,
        row.get(base + 1).map_err(sql_error)?,
    );
    let base_hlc: i64 = row.get(base + 2).map_err(sql_error)?;
    let base_node: i64 = row.get(base + 3).map_err(sql_error)?;
    // A field written with the record's creation stamp stores no stamp of its own (h and
    // n are NULL): a value without its own stamp carries the base stamp.
    let mut stamps = Vec::new();
    for (i, f) in table.fields.iter().enumerate() {
        let hlc: Option<i64> = row.get(base + 4 + 2 * i).map_err(sql_error)?;
        let node: Option<i64> = row.get(base + 5 + 2 * i).map_err(sql_error)?;
        match (hlc, node) {
            (Some(hlc), Some(node)) => stamps.push((f.no, hlc, node)),
            _ if record.values.contains_key(&f.no) => stamps.push((f.no, base_hlc, base_node)),
            _ => {}
        }
    }
    Ok((record, status, stamps))
}

fn stored_from_raw(tx: &mut SqliteTx<'_>, raw: RawStored) -> StoreResult<StoredRecord> {
    let (record, (status_hlc, status_node), raw_stamps) = raw;
    let mut stamps = BTreeMap::new();
    for (no, hlc, node) in raw_stamps {
        stamps.insert(
            no,
            Stamp {
                hlc: Hlc(hlc as u64),
                node: tx.node_uid(node)?,
            },
        );
    }
    let status_stamp = Stamp {
        hlc: Hlc(status_hlc as u64),
        node: tx.node_uid(status_node)?,
    };
    Ok(StoredRecord {
        record,
        stamps,
        status_stamp,
    })
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
            Some(row) => Some(raw_stored(table, row)?),
        }
    };
    raw.map(|raw| stored_from_raw(tx, raw)).transpose()
}

/// What an INSERT's columns depend on besides the table: (local node?, deleted?), then per
/// given field whether it carries a stamp of its own.
pub(crate) type InsertShape = Vec<(i64, bool)>;

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

/// Notes a record entering a status (`+1`) or leaving it (`-1`), for `flush_counts`.
fn count_change(tx: &mut SqliteTx<'_>, table_id: i64, status: RecordStatus, by: i64) {
    let counts = tx.count_changes.entry(table_id).or_default();
    match status {
        RecordStatus::Active => counts.0 += by,
        RecordStatus::Deleted => counts.1 += by,
    }
}

/// Writes the transaction's count changes into `record_counts`; a table without a row
/// there (a database from before the counts) is counted whole once, its new rows included.
pub(crate) fn flush_counts(tx: &mut SqliteTx<'_>) -> StoreResult<()> {
    for (table_id, (active, deleted)) in std::mem::take(&mut tx.count_changes) {
        if (active, deleted) == (0, 0) {
            continue;
        }
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
                    raws.push(raw_stored(table, row)?);
                }
                raws
            };
            for raw in raws {
                stored.push(stored_from_raw(tx, raw)?);
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
        let base = row.status_stamp;
        let base_node = tx.node_id(base.node)?;
        // Only the given values, and a stamp of their own only where it is not the base stamp:
        // a fresh record's row is barely wider than the plain data.
        let mut cells: Vec<(Param<'_>, Option<(i64, i64)>)> = Vec::with_capacity(row.values.len());
        let mut shape: Vec<(i64, bool)> = Vec::with_capacity(row.values.len() + 1);
        // Columns left out take their defaults: node 1 (this instance) and status active.
        let local = base_node == 1;
        let deleted = row.status == RecordStatus::Deleted;
        shape.push((i64::from(local), deleted));
        for (no, value, stamp) in &row.values {
            // An empty value keeps its stamp explicitly: stamps are only inferred for values.
            let own = if *stamp == base && !value.is_null() {
                None
            } else {
                Some((stamp.hlc.0 as i64, tx.node_id(stamp.node)?))
            };
            shape.push((*no, own.is_some()));
            cells.push((Param(value), own));
        }
        let cached = tx
            .insert_sql
            .get(&table.id)
            .and_then(|shapes| shapes.iter().find(|(s, _)| *s == shape))
            .map(|(_, sql)| sql.clone());
        let sql = match cached {
            Some(sql) => sql,
            None => {
                let mut columns = String::from("uid, created_at, base_hlc, last_seq");
                let mut placeholders = String::from("?, ?, ?, ?");
                if !local {
                    columns.push_str(", base_node");
                    placeholders.push_str(", ?");
                }
                if deleted {
                    columns.push_str(", status");
                    placeholders.push_str(", 1");
                }
                for (no, own) in &shape[1..] {
                    let _ = write!(columns, ", f{no}");
                    placeholders.push_str(", ?");
                    if *own {
                        let _ = write!(columns, ", h{no}, n{no}");
                        placeholders.push_str(", ?, ?");
                    }
                }
                let sql: std::rc::Rc<str> = format!(
                    "INSERT INTO {} ({columns}) VALUES ({placeholders})",
                    table_name(table.id)
                )
                .into();
                tx.insert_sql
                    .entry(table.id)
                    .or_default()
                    .push((shape, sql.clone()));
                sql
            }
        };
        let uid = row.uid.as_bytes().as_slice();
        let base_hlc = base.hlc.0 as i64;
        let seq = tx.next_seq()?;
        let mut sql_params: Vec<&dyn rusqlite::ToSql> = Vec::with_capacity(5 + 3 * cells.len());
        sql_params.extend([
            &uid as &dyn rusqlite::ToSql,
            &row.created_at_ms,
            &base_hlc,
            &seq,
        ]);
        if !local {
            sql_params.push(&base_node);
        }
        for (value, own) in &cells {
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
        count_change(tx, table.id, row.status, 1);
        append_change(tx, change, id, seq, None)?;
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
        let status = match update.status {
            Some((status, stamp)) => Some((
                status_code(status),
                stamp.hlc.0 as i64,
                tx.node_id(stamp.node)?,
            )),
            None => None,
        };
        let mut nodes = Vec::with_capacity(update.values.len());
        for (_, _, stamp) in &update.values {
            nodes.push(tx.node_id(stamp.node)?);
        }
        let mut sets = String::from("updated_at = ?, last_seq = ?");
        if status.is_some() {
            sets.push_str(", status = ?, status_hlc = ?, status_node = ?");
        }
        for (no, _, _) in &update.values {
            let _ = write!(sets, ", f{no} = ?, h{no} = ?, n{no} = ?");
        }
        let sql = format!("UPDATE {} SET {sets} WHERE id = ?", table_name(table.id));
        let hlcs: Vec<i64> = update
            .values
            .iter()
            .map(|(_, _, s)| s.hlc.0 as i64)
            .collect();
        let values: Vec<Param<'_>> = update.values.iter().map(|(_, v, _)| Param(v)).collect();
        let mut sql_params: Vec<&dyn rusqlite::ToSql> = vec![&update.updated_at_ms, &seq];
        if let Some((code, hlc, node)) = &status {
            sql_params.extend([code as &dyn rusqlite::ToSql, hlc, node]);
        }
        for i in 0..update.values.len() {
            sql_params.push(&values[i]);
            sql_params.push(&hlcs[i]);
            sql_params.push(&nodes[i]);
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
                count_change(tx, table.id, before, -1);
                count_change(tx, table.id, status, 1);
            }
        }
        append_change(tx, change, update.id, seq, Some(prev_seq))
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
            records.push(record_from_row(table, row)?);
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
