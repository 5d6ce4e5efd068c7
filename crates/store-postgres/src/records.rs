//! Record rows and their stamps (the SQLite store's `records`, in PostgreSQL).

use crate::change_log::append_change;
use crate::schema::table_name;
use crate::{PgTx, get};
use crmsync_domain::clock::{Hlc, Stamp};
use crmsync_domain::record::{NewRow, RowUpdate, SortKey, StatusFilter, StoredRecord};
use crmsync_domain::store::{RecordStore, StoreResult, TableCounts};
use crmsync_domain::{
    Change, DomainError, Field, FieldType, FileRef, Record, RecordQuery, RecordStatus, Table, Value,
};
use postgres::Row;
use postgres::types::{IsNull, ToSql, Type, to_sql_checked};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::rc::Rc;
use uuid::Uuid;

/// A domain value as a parameter of its field's column (text, double or bigint); empty
/// binds as NULL whatever the column.
#[derive(Debug)]
struct Param<'a>(&'a Value);

impl ToSql for Param<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self.0 {
            Value::Null => Ok(IsNull::Yes),
            Value::Text(s) | Value::Date(s) | Value::Datetime(s) => s.as_str().to_sql(ty, out),
            Value::Number(n) => n.to_sql(ty, out),
            Value::Money(n) | Value::User(n) | Value::Link(n) => n.to_sql(ty, out),
            Value::File(f) => serde_json::to_string(f)?.as_str().to_sql(ty, out),
        }
    }

    fn accepts(ty: &Type) -> bool {
        matches!(*ty, Type::TEXT | Type::VARCHAR | Type::FLOAT8 | Type::INT8)
    }

    to_sql_checked!();
}

fn decode(field: &Field, row: &Row, idx: usize) -> StoreResult<Value> {
    let bad = |e: DomainError| {
        DomainError::Store(format!(
            "field {} holds a value of the wrong kind: {e}",
            field.no
        ))
    };
    let text = || get::<Option<String>>(row, idx).map_err(bad);
    let int = || get::<Option<i64>>(row, idx).map_err(bad);
    Ok(match field.field_type {
        FieldType::Text | FieldType::Longtext | FieldType::Select => {
            text()?.map_or(Value::Null, Value::Text)
        }
        FieldType::Date => text()?.map_or(Value::Null, Value::Date),
        FieldType::Datetime => text()?.map_or(Value::Null, Value::Datetime),
        FieldType::Number => get::<Option<f64>>(row, idx)
            .map_err(bad)?
            .map_or(Value::Null, Value::Number),
        FieldType::Money => int()?.map_or(Value::Null, Value::Money),
        FieldType::User => int()?.map_or(Value::Null, Value::User),
        FieldType::Link => int()?.map_or(Value::Null, Value::Link),
        FieldType::File => match text()? {
            None => Value::Null,
            Some(json) => Value::File(serde_json::from_str::<FileRef>(&json).map_err(|e| {
                DomainError::Store(format!("field {} holds no file: {e}", field.no))
            })?),
        },
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

/// `updated_at` and the status stamp are NULL until they differ from the creation values.
const SYSTEM_COLUMNS: &str = "id, uid, created_at, COALESCE(updated_at, created_at), status";

fn select_columns(table: &Table) -> String {
    let mut sql = String::from(SYSTEM_COLUMNS);
    for f in &table.fields {
        let _ = write!(sql, ", f{}", f.no);
    }
    sql
}

fn record_from_row(table: &Table, row: &Row) -> StoreResult<Record> {
    let mut values = BTreeMap::new();
    for (i, field) in table.fields.iter().enumerate() {
        let value = decode(field, row, 5 + i)?;
        if !value.is_null() {
            values.insert(field.no, value);
        }
    }
    Ok(Record {
        id: get(row, 0)?,
        uid: get(row, 1)?,
        created_at_ms: get(row, 2)?,
        updated_at_ms: get(row, 3)?,
        status: status_from(get(row, 4)?),
        values,
    })
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

fn raw_stored(table: &Table, row: &Row) -> StoreResult<RawStored> {
    let record = record_from_row(table, row)?;
    let base = 5 + table.fields.len();
    let status = (get(row, base)?, get(row, base + 1)?);
    let base_hlc: i64 = get(row, base + 2)?;
    let base_node: i64 = get(row, base + 3)?;
    // A field written with the record's creation stamp stores no stamp of its own (h and
    // n are NULL): a value without its own stamp carries the base stamp.
    let mut stamps = Vec::new();
    for (i, f) in table.fields.iter().enumerate() {
        let hlc: Option<i64> = get(row, base + 4 + 2 * i)?;
        let node: Option<i64> = get(row, base + 5 + 2 * i)?;
        match (hlc, node) {
            (Some(hlc), Some(node)) => stamps.push((f.no, hlc, node)),
            _ if record.values.contains_key(&f.no) => stamps.push((f.no, base_hlc, base_node)),
            _ => {}
        }
    }
    Ok((record, status, stamps))
}

fn stored_from_raw(tx: &mut PgTx<'_>, raw: RawStored) -> StoreResult<StoredRecord> {
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

/// Whole stored records of `table` by `condition` with its one parameter.
fn stored_where(
    tx: &mut PgTx<'_>,
    table: &Table,
    condition: &'static str,
    key: &(dyn ToSql + Sync),
) -> StoreResult<Vec<StoredRecord>> {
    let sql = stored_select(table, condition);
    let raws = tx
        .query(&sql, &[key])?
        .iter()
        .map(|row| raw_stored(table, row))
        .collect::<StoreResult<Vec<_>>>()?;
    raws.into_iter()
        .map(|raw| stored_from_raw(tx, raw))
        .collect()
}

/// What an INSERT's columns depend on besides the table: (local node?, deleted?), then per
/// given field whether it carries a stamp of its own.
pub(crate) type InsertShape = Vec<(i64, bool)>;

fn constraint_error(e: DomainError, table: &Table) -> DomainError {
    match e {
        // SQLSTATE class 23: integrity constraint violation.
        DomainError::Store(message) if message.starts_with("23") => {
            DomainError::Conflict(format!("table {}: {message}", table.id))
        }
        other => other,
    }
}

/// A table's (active, deleted) records, counted row by row.
pub(crate) fn count_rows(tx: &mut PgTx<'_>, table_id: i64) -> StoreResult<(i64, i64)> {
    let sql = format!(
        "SELECT COUNT(*) FILTER (WHERE status = 0), COUNT(*) FILTER (WHERE status = 1) FROM {}",
        table_name(table_id)
    );
    let row = tx.query_one(&sql, &[])?;
    Ok((get(&row, 0)?, get(&row, 1)?))
}

/// Notes a record entering a status (`+1`) or leaving it (`-1`), for `flush_counts`.
fn count_change(tx: &mut PgTx<'_>, table_id: i64, status: RecordStatus, by: i64) {
    let counts = tx.count_changes.entry(table_id).or_default();
    match status {
        RecordStatus::Active => counts.0 += by,
        RecordStatus::Deleted => counts.1 += by,
    }
}

/// Writes the transaction's count changes into `record_counts`; a table without a row
/// there is counted whole once, its new rows included.
pub(crate) fn flush_counts(tx: &mut PgTx<'_>) -> StoreResult<()> {
    for (table_id, (active, deleted)) in std::mem::take(&mut tx.count_changes) {
        if (active, deleted) == (0, 0) {
            continue;
        }
        let updated = tx.execute(
            "UPDATE record_counts SET active = active + $1, deleted = deleted + $2 WHERE table_id = $3",
            &[&active, &deleted, &table_id],
        )?;
        if updated == 0 {
            let (active, deleted) = count_rows(tx, table_id)?;
            tx.execute(
                "INSERT INTO record_counts (table_id, active, deleted) VALUES ($1, $2, $3)",
                &[&table_id, &active, &deleted],
            )?;
        }
    }
    Ok(())
}

fn no_record(table: &Table, id: i64) -> DomainError {
    DomainError::not_found(format!("there is no record {id} in table {}", table.id))
}

impl RecordStore for PgTx<'_> {
    fn record(&mut self, table: &Table, id: i64) -> StoreResult<Option<StoredRecord>> {
        Ok(stored_where(self, table, "id = $1", &id)?.pop())
    }

    fn record_by_uid(&mut self, table: &Table, uid: Uuid) -> StoreResult<Option<StoredRecord>> {
        Ok(stored_where(self, table, "uid = $1", &uid)?.pop())
    }

    fn uids_present(
        &mut self,
        table: &Table,
        uids: &[Uuid],
    ) -> StoreResult<std::collections::HashSet<Uuid>> {
        let sql = format!(
            "SELECT uid FROM {} WHERE uid = ANY($1)",
            table_name(table.id)
        );
        let rows = self.query(&sql, &[&uids])?;
        rows.iter().map(|row| get(row, 0)).collect()
    }

    fn record_uid(&mut self, table_id: i64, id: i64) -> StoreResult<Option<Uuid>> {
        let sql = format!("SELECT uid FROM {} WHERE id = $1", table_name(table_id));
        self.query_opt(&sql, &[&id])?
            .map(|row| get(&row, 0))
            .transpose()
    }

    /// Records of `table` by id, read together; ids without a record are left out.
    fn records_by_ids(&mut self, table: &Table, ids: &[i64]) -> StoreResult<Vec<StoredRecord>> {
        stored_where(self, table, "id = ANY($1)", &ids)
    }

    fn record_status(&mut self, table_id: i64, id: i64) -> StoreResult<Option<RecordStatus>> {
        let sql = format!("SELECT status FROM {} WHERE id = $1", table_name(table_id));
        self.query_opt(&sql, &[&id])?
            .map(|row| get::<i64>(&row, 0).map(status_from))
            .transpose()
    }

    fn record_ids(&mut self, table: &Table, after: i64, limit: usize) -> StoreResult<Vec<i64>> {
        let sql = format!(
            "SELECT id FROM {} WHERE id > $1 ORDER BY id LIMIT $2",
            table_name(table.id)
        );
        let rows = self.query(&sql, &[&after, &(limit as i64)])?;
        rows.iter().map(|row| get(row, 0)).collect()
    }

    fn insert_record(&mut self, table: &Table, row: &NewRow, change: &Change) -> StoreResult<i64> {
        let base = row.status_stamp;
        let base_node = self.node_id(base.node)?;
        // Only the given values, and a stamp of their own only where it is not the base stamp.
        let mut cells: Vec<(Param<'_>, Option<(i64, i64)>)> = Vec::with_capacity(row.values.len());
        let mut shape: InsertShape = Vec::with_capacity(row.values.len() + 1);
        // Columns left out take their defaults: node 1 (this instance) and status active.
        let local = base_node == 1;
        let deleted = row.status == RecordStatus::Deleted;
        shape.push((i64::from(local), deleted));
        for (no, value, stamp) in &row.values {
            // An empty value keeps its stamp explicitly: stamps are only inferred for values.
            let own = if *stamp == base && !value.is_null() {
                None
            } else {
                Some((stamp.hlc.0 as i64, self.node_id(stamp.node)?))
            };
            shape.push((*no, own.is_some()));
            cells.push((Param(value), own));
        }
        let cached = self
            .insert_sql
            .get(&table.id)
            .and_then(|shapes| shapes.iter().find(|(s, _)| *s == shape))
            .map(|(_, sql)| sql.clone());
        let sql = match cached {
            Some(sql) => sql,
            None => {
                let mut columns = String::from("uid, created_at, base_hlc, last_seq");
                let mut placeholders = String::from("$1, $2, $3, $4");
                let mut n = 4;
                let mut next = || {
                    n += 1;
                    format!(", ${n}")
                };
                if !local {
                    columns.push_str(", base_node");
                    placeholders.push_str(&next());
                }
                if deleted {
                    columns.push_str(", status");
                    placeholders.push_str(", 1");
                }
                for (no, own) in &shape[1..] {
                    let _ = write!(columns, ", f{no}");
                    placeholders.push_str(&next());
                    if *own {
                        let _ = write!(columns, ", h{no}, n{no}");
                        placeholders.push_str(&next());
                        placeholders.push_str(&next());
                    }
                }
                let sql: Rc<str> = format!(
                    "INSERT INTO {} ({columns}) VALUES ({placeholders}) RETURNING id",
                    table_name(table.id)
                )
                .into();
                self.insert_sql
                    .entry(table.id)
                    .or_default()
                    .push((shape, sql.clone()));
                sql
            }
        };
        let base_hlc = base.hlc.0 as i64;
        let seq = self.next_seq()?;
        let mut params: Vec<&(dyn ToSql + Sync)> = Vec::with_capacity(5 + 3 * cells.len());
        params.extend([
            &row.uid as &(dyn ToSql + Sync),
            &row.created_at_ms,
            &base_hlc,
            &seq,
        ]);
        if !local {
            params.push(&base_node);
        }
        for (value, own) in &cells {
            params.push(value);
            if let Some((hlc, node)) = own {
                params.push(hlc);
                params.push(node);
            }
        }
        let inserted = self
            .query_one(&sql, &params)
            .map_err(|e| constraint_error(e, table))?;
        let id: i64 = get(&inserted, 0)?;
        count_change(self, table.id, row.status, 1);
        append_change(self, change, id, seq, None)?;
        Ok(id)
    }

    fn update_record(
        &mut self,
        table: &Table,
        update: &RowUpdate,
        change: &Change,
    ) -> StoreResult<()> {
        let current = self.query_opt(
            &format!(
                "SELECT last_seq, status FROM {} WHERE id = $1",
                table_name(table.id)
            ),
            &[&update.id],
        )?;
        let Some(current) = current else {
            return Err(no_record(table, update.id));
        };
        let (prev_seq, prev_status): (i64, i64) = (get(&current, 0)?, get(&current, 1)?);
        let seq = self.next_seq()?;
        let status = match update.status {
            Some((status, stamp)) => Some((
                status_code(status),
                stamp.hlc.0 as i64,
                self.node_id(stamp.node)?,
            )),
            None => None,
        };
        let mut nodes = Vec::with_capacity(update.values.len());
        for (_, _, stamp) in &update.values {
            nodes.push(self.node_id(stamp.node)?);
        }
        let mut n = 2;
        let mut next = || {
            n += 1;
            n
        };
        let mut sets = String::from("updated_at = $1, last_seq = $2");
        if status.is_some() {
            let (a, b, c) = (next(), next(), next());
            let _ = write!(
                sets,
                ", status = ${a}, status_hlc = ${b}, status_node = ${c}"
            );
        }
        for (no, _, _) in &update.values {
            let (a, b, c) = (next(), next(), next());
            let _ = write!(sets, ", f{no} = ${a}, h{no} = ${b}, n{no} = ${c}");
        }
        let sql = format!(
            "UPDATE {} SET {sets} WHERE id = ${}",
            table_name(table.id),
            next()
        );
        let hlcs: Vec<i64> = update
            .values
            .iter()
            .map(|(_, _, s)| s.hlc.0 as i64)
            .collect();
        let values: Vec<Param<'_>> = update.values.iter().map(|(_, v, _)| Param(v)).collect();
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![&update.updated_at_ms, &seq];
        if let Some((code, hlc, node)) = &status {
            params.extend([code as &(dyn ToSql + Sync), hlc, node]);
        }
        for i in 0..update.values.len() {
            params.push(&values[i]);
            params.push(&hlcs[i]);
            params.push(&nodes[i]);
        }
        params.push(&update.id);
        let changed = self
            .execute(&sql, &params)
            .map_err(|e| constraint_error(e, table))?;
        if changed != 1 {
            return Err(no_record(table, update.id));
        }
        if let Some((status, _)) = update.status {
            let before = status_from(prev_status);
            if before != status {
                count_change(self, table.id, before, -1);
                count_change(self, table.id, status, 1);
            }
        }
        append_change(self, change, update.id, seq, Some(prev_seq))
    }

    fn list_records(&mut self, table: &Table, query: &RecordQuery) -> StoreResult<Vec<Record>> {
        let t = table_name(table.id);
        let mut sql = format!("SELECT {} FROM {t}", select_columns(table));
        let mut conditions: Vec<String> = Vec::new();
        // Parameters by number: the lower-cased search text, the `after` id, the limit.
        let mut args: Vec<Box<dyn ToSql + Sync>> = Vec::new();
        match query.status {
            StatusFilter::Active => conditions.push("status = 0".into()),
            StatusFilter::Deleted => conditions.push("status = 1".into()),
            StatusFilter::All => {}
        }
        if let Some(q) = query.q.as_deref().map(str::trim).filter(|q| !q.is_empty()) {
            // Case-insensitive for every alphabet: lower() under the database's UTF-8 locale.
            args.push(Box::new(q.to_lowercase()));
            let n = args.len();
            let searchable: Vec<String> = table
                .fields
                .iter()
                .filter(|f| f.field_type.is_searchable_text())
                .map(|f| format!("strpos(lower(f{}), ${n}) > 0", f.no))
                .collect();
            if searchable.is_empty() {
                conditions.push("FALSE".into());
            } else {
                conditions.push(format!("({})", searchable.join(" OR ")));
            }
        }
        let column = match query.sort {
            SortKey::Id => "id".to_string(),
            SortKey::CreatedAt => "created_at".to_string(),
            SortKey::UpdatedAt => "COALESCE(updated_at, created_at)".to_string(),
            SortKey::Field(no) => format!("f{no}"),
        };
        // NULLs first when ascending, as SQLite sorts them (the paging below relies on it).
        let (order, nulls, cmp) = if query.descending {
            ("DESC", "NULLS LAST", "<")
        } else {
            ("ASC", "NULLS FIRST", ">")
        };
        if let Some(after) = query.after {
            args.push(Box::new(after));
            let a = format!("${}", args.len());
            if query.sort == SortKey::Id {
                conditions.push(format!("id {cmp} {a}"));
            } else {
                // Keyset paging on (column, id).
                let v = format!("(SELECT {column} FROM {t} WHERE id = {a})");
                let condition = if query.descending {
                    format!(
                        "(({v} IS NULL AND {column} IS NULL AND id < {a}) OR ({v} IS NOT NULL AND ({column} < {v} OR {column} IS NULL OR ({column} = {v} AND id < {a}))))"
                    )
                } else {
                    format!(
                        "(({v} IS NULL AND ({column} IS NOT NULL OR id > {a})) OR ({v} IS NOT NULL AND ({column} > {v} OR ({column} = {v} AND id > {a}))))"
                    )
                };
                conditions.push(condition);
            }
        }
        if !conditions.is_empty() {
            let _ = write!(sql, " WHERE {}", conditions.join(" AND "));
        }
        if query.sort == SortKey::Id {
            let _ = write!(sql, " ORDER BY id {order}");
        } else {
            let _ = write!(sql, " ORDER BY {column} {order} {nulls}, id {order}");
        }
        // A parameter, not text: every page size shares one prepared statement.
        args.push(Box::new(query.limit as i64));
        let _ = write!(sql, " LIMIT ${}", args.len());
        let params: Vec<&(dyn ToSql + Sync)> = args.iter().map(|a| a.as_ref()).collect();
        let rows = self.query(&sql, &params)?;
        rows.iter().map(|row| record_from_row(table, row)).collect()
    }

    /// A table's records by status: its row in `record_counts` (with this transaction's own
    /// changes), or a count of the table where it has none yet.
    fn table_counts(&mut self, table: &Table) -> StoreResult<TableCounts> {
        flush_counts(self)?;
        let kept = self.query_opt(
            "SELECT active, deleted FROM record_counts WHERE table_id = $1",
            &[&table.id],
        )?;
        let (active, deleted) = match kept {
            Some(row) => (get(&row, 0)?, get(&row, 1)?),
            None => count_rows(self, table.id)?,
        };
        Ok(TableCounts {
            active: active.max(0) as u64,
            deleted: deleted.max(0) as u64,
        })
    }
}
