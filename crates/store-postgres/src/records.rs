//! Record rows and their stamps (the SQLite store's `records`, in PostgreSQL).

use crate::{PgTx, get};
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
use postgres::Row;
use postgres::types::{IsNull, ToSql, Type, to_sql_checked};
use std::fmt::Write as _;
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

/// A row as the shared readers of `stored_row` take it.
struct Columns<'r>(&'r Row);

impl RowColumns for Columns<'_> {
    fn int(&self, idx: usize) -> StoreResult<i64> {
        get(self.0, idx)
    }

    fn int_or_null(&self, idx: usize) -> StoreResult<Option<i64>> {
        get(self.0, idx)
    }

    fn uid(&self, idx: usize) -> StoreResult<Uuid> {
        get(self.0, idx)
    }

    fn value(&self, field: &Field, idx: usize) -> StoreResult<Value> {
        decode(field, self.0, idx)
    }
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
        .map(|row| RawStored::read(table, &Columns(row)))
        .collect::<StoreResult<Vec<_>>>()?;
    raws.into_iter()
        .map(|raw| raw.resolve(|node| tx.node_uid(node)))
        .collect()
}

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

/// Writes the transaction's count changes into `record_counts`; a table without a row
/// there is counted whole once, its new rows included.
pub(crate) fn flush_counts(tx: &mut PgTx<'_>) -> StoreResult<()> {
    let changes: Vec<_> = tx.count_changes.take().collect();
    for (table_id, (active, deleted)) in changes {
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
        let plan = InsertPlan::new(row, |node| self.node_id(node))?;
        let sql = self.insert_sql.get_or_build(table.id, plan.shape, |shape| {
            insert_sql(table.id, shape, Placeholders::Numbered, " RETURNING id")
        });
        let base_hlc = row.status_stamp.hlc.0 as i64;
        let seq = self.next_seq()?;
        let values: Vec<Param<'_>> = plan.cells.iter().map(|(value, _)| Param(value)).collect();
        let mut params: Vec<&(dyn ToSql + Sync)> = Vec::with_capacity(5 + 3 * values.len());
        params.extend([
            &row.uid as &(dyn ToSql + Sync),
            &row.created_at_ms,
            &base_hlc,
            &seq,
        ]);
        if let Some(base_node) = &plan.base_node {
            params.push(base_node);
        }
        for (value, (_, own)) in values.iter().zip(&plan.cells) {
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
        self.count_changes.note(table.id, row.status, 1);
        self.append_change(change, id, seq, None)?;
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
        let plan = UpdatePlan::new(update, |node| self.node_id(node))?;
        let sql = update_sql(table.id, update, Placeholders::Numbered);
        let values: Vec<Param<'_>> = plan.cells.iter().map(|(v, _, _)| Param(v)).collect();
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![&update.updated_at_ms, &seq];
        if let Some((code, hlc, node)) = &plan.status {
            params.extend([code as &(dyn ToSql + Sync), hlc, node]);
        }
        for (value, (_, hlc, node)) in values.iter().zip(&plan.cells) {
            params.push(value);
            params.push(hlc);
            params.push(node);
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
                self.count_changes.note(table.id, before, -1);
                self.count_changes.note(table.id, status, 1);
            }
        }
        self.append_change(change, update.id, seq, Some(prev_seq))
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
        rows.iter()
            .map(|row| record_from_row(table, &Columns(row)))
            .collect()
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
