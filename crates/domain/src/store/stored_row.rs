//! A record's row as both SQL stores lay it out — table `t<T>`; system columns; per field
//! `f<N>` the value, `h<N>` its HLC time and `n<N>` the writing node (a local number),
//! NULL while the value carries the record's creation stamp (`base_hlc`, `base_node`) —
//! and what is dialect-free about reading and writing it: the columns to select, turning
//! a row's raw stamps into a `StoredRecord`, the shapes of INSERT and UPDATE (placeholders
//! in the store's style), and the per-transaction caches and counts. Each store keeps its
//! own SQL execution, value encoding and errors.

use super::StoreResult;
use crate::clock::{Hlc, Stamp};
use crate::record::{NewRow, RowUpdate, StoredRecord};
use crate::{Field, Record, RecordStatus, Table, Value};
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::rc::Rc;
use uuid::Uuid;

pub fn table_name(id: i64) -> String {
    format!("t{id}")
}

pub fn status_from(code: i64) -> RecordStatus {
    if code == 0 {
        RecordStatus::Active
    } else {
        RecordStatus::Deleted
    }
}

pub fn status_code(status: RecordStatus) -> i64 {
    match status {
        RecordStatus::Active => 0,
        RecordStatus::Deleted => 1,
    }
}

/// `updated_at` and the status stamp are NULL until they differ from the creation values.
const SYSTEM_COLUMNS: &str = "id, uid, created_at, COALESCE(updated_at, created_at), status";

/// The columns of a `Record`: system columns, then each field's value.
pub fn select_columns(table: &Table) -> String {
    let mut sql = String::from(SYSTEM_COLUMNS);
    for f in &table.fields {
        let _ = write!(sql, ", f{}", f.no);
    }
    sql
}

/// The SELECT of whole stored records (values, status, stamps) of `table` by `condition`.
pub fn stored_select(table: &Table, condition: &str) -> String {
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

/// A row of `select_columns` or `stored_select` as a store's driver reads it.
pub trait RowColumns {
    fn int(&self, idx: usize) -> StoreResult<i64>;
    fn int_or_null(&self, idx: usize) -> StoreResult<Option<i64>>;
    fn uid(&self, idx: usize) -> StoreResult<Uuid>;
    /// The value of `field` in column `idx` (`Value::Null` when NULL).
    fn value(&self, field: &Field, idx: usize) -> StoreResult<Value>;
}

/// The `Record` of a row of `select_columns`.
pub fn record_from_row(table: &Table, row: &impl RowColumns) -> StoreResult<Record> {
    let mut values = BTreeMap::new();
    for (i, field) in table.fields.iter().enumerate() {
        let value = row.value(field, 5 + i)?;
        if !value.is_null() {
            values.insert(field.no, value);
        }
    }
    Ok(Record {
        id: row.int(0)?,
        uid: row.uid(1)?,
        created_at_ms: row.int(2)?,
        updated_at_ms: row.int(3)?,
        status: status_from(row.int(4)?),
        values,
    })
}

/// A stored record as read, its nodes still local numbers (resolved by `resolve`, which
/// needs the transaction the row was read in).
pub struct RawStored {
    record: Record,
    /// (hlc, node)
    status: (i64, i64),
    /// (field no, hlc, node)
    stamps: Vec<(i64, i64, i64)>,
}

impl RawStored {
    /// A row of `stored_select`.
    pub fn read(table: &Table, row: &impl RowColumns) -> StoreResult<RawStored> {
        let record = record_from_row(table, row)?;
        let base = 5 + table.fields.len();
        let status = (row.int(base)?, row.int(base + 1)?);
        let (base_hlc, base_node) = (row.int(base + 2)?, row.int(base + 3)?);
        // A value without a stamp of its own carries the base stamp; an empty value keeps
        // its stamp explicitly.
        let mut stamps = Vec::new();
        for (i, f) in table.fields.iter().enumerate() {
            let hlc = row.int_or_null(base + 4 + 2 * i)?;
            let node = row.int_or_null(base + 5 + 2 * i)?;
            match (hlc, node) {
                (Some(hlc), Some(node)) => stamps.push((f.no, hlc, node)),
                _ if record.values.contains_key(&f.no) => stamps.push((f.no, base_hlc, base_node)),
                _ => {}
            }
        }
        Ok(RawStored {
            record,
            status,
            stamps,
        })
    }

    /// The stored record, its nodes' local numbers turned into their uids by `node_uid`.
    pub fn resolve(
        self,
        mut node_uid: impl FnMut(i64) -> StoreResult<Uuid>,
    ) -> StoreResult<StoredRecord> {
        let mut stamps = BTreeMap::new();
        for (no, hlc, node) in self.stamps {
            let stamp = Stamp {
                hlc: Hlc(hlc as u64),
                node: node_uid(node)?,
            };
            stamps.insert(no, stamp);
        }
        let status_stamp = Stamp {
            hlc: Hlc(self.status.0 as u64),
            node: node_uid(self.status.1)?,
        };
        Ok(StoredRecord {
            record: self.record,
            stamps,
            status_stamp,
        })
    }
}

/// How a store's SQL numbers its parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placeholders {
    /// `?` each (SQLite).
    Anonymous,
    /// `$1`, `$2`… (PostgreSQL).
    Numbered,
}

impl Placeholders {
    /// The placeholder of parameter `n` (from 1).
    fn nth(self, n: usize) -> String {
        match self {
            Placeholders::Anonymous => "?".into(),
            Placeholders::Numbered => format!("${n}"),
        }
    }
}

/// What an INSERT's columns depend on besides the table: (local node?, deleted?), then per
/// given field whether it carries a stamp of its own.
pub type InsertShape = Vec<(i64, bool)>;

/// A new row's INSERT: its shape and its parameters past the four every insert binds
/// (uid, created_at, base_hlc, last_seq), in order.
pub struct InsertPlan<'r> {
    pub shape: InsertShape,
    /// The base node, bound only when it is not this instance (node 1, the default).
    pub base_node: Option<i64>,
    /// Each given value with its own stamp (hlc, node) where it has one.
    pub cells: Vec<(&'r Value, Option<(i64, i64)>)>,
}

impl<'r> InsertPlan<'r> {
    /// Only the given values, and a stamp of their own only where it is not the base
    /// stamp: a fresh record's row is barely wider than the plain data. `node_id` gives a
    /// node's local number.
    pub fn new(
        row: &'r NewRow,
        mut node_id: impl FnMut(Uuid) -> StoreResult<i64>,
    ) -> StoreResult<InsertPlan<'r>> {
        let base = row.status_stamp;
        let base_node = node_id(base.node)?;
        let local = base_node == 1;
        let deleted = row.status == RecordStatus::Deleted;
        let mut shape = Vec::with_capacity(row.values.len() + 1);
        shape.push((i64::from(local), deleted));
        let mut cells = Vec::with_capacity(row.values.len());
        for (no, value, stamp) in &row.values {
            // An empty value keeps its stamp explicitly: stamps are only inferred for values.
            let own = if *stamp == base && !value.is_null() {
                None
            } else {
                Some((stamp.hlc.0 as i64, node_id(stamp.node)?))
            };
            shape.push((*no, own.is_some()));
            cells.push((value, own));
        }
        Ok(InsertPlan {
            shape,
            base_node: (!local).then_some(base_node),
            cells,
        })
    }
}

/// The INSERT of `shape` into `table_id` (columns left out take their defaults: node 1
/// and status active), followed by `suffix` (e.g. `RETURNING id`).
pub fn insert_sql(table_id: i64, shape: &InsertShape, style: Placeholders, suffix: &str) -> String {
    let mut columns = String::from("uid, created_at, base_hlc, last_seq");
    let mut n = 0;
    let mut next = || {
        n += 1;
        style.nth(n)
    };
    let mut values: Vec<String> = (0..4).map(|_| next()).collect();
    let (local, deleted) = shape[0];
    if local == 0 {
        columns.push_str(", base_node");
        values.push(next());
    }
    if deleted {
        columns.push_str(", status");
        values.push("1".into());
    }
    for (no, own) in &shape[1..] {
        let _ = write!(columns, ", f{no}");
        values.push(next());
        if *own {
            let _ = write!(columns, ", h{no}, n{no}");
            values.push(next());
            values.push(next());
        }
    }
    format!(
        "INSERT INTO {} ({columns}) VALUES ({}){suffix}",
        table_name(table_id),
        values.join(", ")
    )
}

/// The UPDATE of `update`'s columns, its parameters in order: updated_at, last_seq, then
/// status with its stamp (if given), each value with its stamp, and last the id.
pub fn update_sql(table_id: i64, update: &RowUpdate, style: Placeholders) -> String {
    let mut n = 0;
    let mut next = || {
        n += 1;
        style.nth(n)
    };
    let mut sets = format!("updated_at = {}, last_seq = {}", next(), next());
    if update.status.is_some() {
        let (a, b, c) = (next(), next(), next());
        let _ = write!(sets, ", status = {a}, status_hlc = {b}, status_node = {c}");
    }
    for (no, _, _) in &update.values {
        let (a, b, c) = (next(), next(), next());
        let _ = write!(sets, ", f{no} = {a}, h{no} = {b}, n{no} = {c}");
    }
    format!(
        "UPDATE {} SET {sets} WHERE id = {}",
        table_name(table_id),
        next()
    )
}

/// An UPDATE's parameters besides updated_at, last_seq and the id, in `update_sql`'s order.
pub struct UpdatePlan<'r> {
    /// (status code, hlc, node) when the status is written.
    pub status: Option<(i64, i64, i64)>,
    /// Each written value with its stamp's (hlc, node).
    pub cells: Vec<(&'r Value, i64, i64)>,
}

impl<'r> UpdatePlan<'r> {
    /// `node_id` gives a node's local number.
    pub fn new(
        update: &'r RowUpdate,
        mut node_id: impl FnMut(Uuid) -> StoreResult<i64>,
    ) -> StoreResult<UpdatePlan<'r>> {
        let status = match update.status {
            Some((status, stamp)) => Some((
                status_code(status),
                stamp.hlc.0 as i64,
                node_id(stamp.node)?,
            )),
            None => None,
        };
        let mut cells = Vec::with_capacity(update.values.len());
        for (_, value, stamp) in &update.values {
            cells.push((value, stamp.hlc.0 as i64, node_id(stamp.node)?));
        }
        Ok(UpdatePlan { status, cells })
    }
}

/// INSERT statements by table and shape: built once per transaction, not once per row.
#[derive(Default)]
pub struct InsertShapes(HashMap<i64, Vec<(InsertShape, Rc<str>)>>);

impl InsertShapes {
    /// The statement for `shape` in `table_id`, built by `build` the first time.
    pub fn get_or_build(
        &mut self,
        table_id: i64,
        shape: InsertShape,
        build: impl FnOnce(&InsertShape) -> String,
    ) -> Rc<str> {
        let shapes = self.0.entry(table_id).or_default();
        if let Some((_, sql)) = shapes.iter().find(|(s, _)| *s == shape) {
            return sql.clone();
        }
        let sql: Rc<str> = build(&shape).into();
        shapes.push((shape, sql.clone()));
        sql
    }
}

/// Changes of each table's (active, deleted) record counts in a transaction, written into
/// the store's kept counts before commit or a read of them.
#[derive(Default)]
pub struct CountChanges(HashMap<i64, (i64, i64)>);

impl CountChanges {
    /// Notes a record entering a status (`by` 1) or leaving it (`by` -1).
    pub fn note(&mut self, table_id: i64, status: RecordStatus, by: i64) {
        let counts = self.0.entry(table_id).or_default();
        match status {
            RecordStatus::Active => counts.0 += by,
            RecordStatus::Deleted => counts.1 += by,
        }
    }

    /// The tables whose counts changed, with (active, deleted) changes; none are kept.
    pub fn take(&mut self) -> impl Iterator<Item = (i64, (i64, i64))> {
        std::mem::take(&mut self.0)
            .into_iter()
            .filter(|(_, change)| *change != (0, 0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_and_update_shapes_number_their_parameters_in_each_style() {
        let shape = vec![(0, true), (1, false), (2, true)];
        assert_eq!(
            insert_sql(3, &shape, Placeholders::Numbered, " RETURNING id"),
            "INSERT INTO t3 (uid, created_at, base_hlc, last_seq, base_node, status, f1, f2, h2, n2) \
             VALUES ($1, $2, $3, $4, $5, 1, $6, $7, $8, $9) RETURNING id"
        );
        assert_eq!(
            insert_sql(3, &vec![(1, false)], Placeholders::Anonymous, ""),
            "INSERT INTO t3 (uid, created_at, base_hlc, last_seq) VALUES (?, ?, ?, ?)"
        );
        let stamp = Stamp {
            hlc: Hlc(1),
            node: Uuid::nil(),
        };
        let update = RowUpdate {
            id: 7,
            updated_at_ms: 1,
            status: Some((RecordStatus::Active, stamp)),
            values: vec![(4, Value::Null, stamp)],
        };
        assert_eq!(
            update_sql(2, &update, Placeholders::Numbered),
            "UPDATE t2 SET updated_at = $1, last_seq = $2, status = $3, status_hlc = $4, \
             status_node = $5, f4 = $6, h4 = $7, n4 = $8 WHERE id = $9"
        );
    }
}
