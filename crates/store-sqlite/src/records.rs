//! Record rows, their stamps and the change log.

use crate::schema::table_name;
use crate::{SqliteTx, sql_error};
use crmsync_domain::clock::{Hlc, Stamp};
use crmsync_domain::record::{
    LoggedChange, NewRow, RowUpdate, SortKey, StatusFilter, StoredRecord, SyncLogFilter,
};
use crmsync_domain::store::{StoreResult, TableCounts};
use crmsync_domain::{
    Change, ChangeOp, DomainError, Field, FieldChange, FieldType, FileRef, Record, RecordQuery,
    RecordStatus, Table, Value,
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

fn uid_from(bytes: &[u8]) -> StoreResult<Uuid> {
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

pub fn record(tx: &mut SqliteTx<'_>, table: &Table, id: i64) -> StoreResult<Option<StoredRecord>> {
    record_where(tx, table, "id = ?1", &id)
}

pub fn record_by_uid(
    tx: &mut SqliteTx<'_>,
    table: &Table,
    uid: Uuid,
) -> StoreResult<Option<StoredRecord>> {
    record_where(tx, table, "uid = ?1", &uid.as_bytes().as_slice())
}

/// Uids or ids per lookup statement (SQLite allows 32,766 parameters).
const UIDS_PER_LOOKUP: usize = 500;

/// `?,?,…` for an `IN` list of `n` values.
fn placeholders(n: usize) -> String {
    vec!["?"; n].join(",")
}

pub fn uids_present(
    tx: &Transaction<'_>,
    table: &Table,
    uids: &[Uuid],
) -> StoreResult<std::collections::HashSet<Uuid>> {
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

pub fn record_uid(tx: &Transaction<'_>, table_id: i64, id: i64) -> StoreResult<Option<Uuid>> {
    let sql = format!("SELECT uid FROM {} WHERE id = ?1", table_name(table_id));
    let bytes: Option<Vec<u8>> = tx
        .prepare_cached(&sql)
        .and_then(|mut stmt| stmt.query_row([id], |r| r.get(0)).optional())
        .map_err(sql_error)?;
    bytes.map(|b| uid_from(&b)).transpose()
}

/// `SyncLogFilter::takes` in SQL.
const FOR_SYNC: &str = "origin != :own AND (op != 'resend' OR origin = :resend)";

/// The entries after `after` that `filter` takes, and how far the log was read (see
/// `StoreTx::changes_for_sync`): a stretch of echoes is passed over inside SQLite, without
/// a row of it decoded.
pub fn changes_for_sync(
    tx: &mut SqliteTx<'_>,
    after: i64,
    limit: usize,
    filter: &SyncLogFilter,
) -> StoreResult<(Vec<LoggedChange>, i64)> {
    flush_changes(tx)?;
    let changes = {
        let mut stmt = tx
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
                ":own": filter.own_origin,
                ":resend": filter.own_resend,
            })
            .map_err(sql_error)?;
        logged_changes(rows)?
    };
    let upto = match changes.last() {
        Some(last) if changes.len() >= limit => last.seq,
        // Read to the end of the log (this transaction's view of it).
        _ => last_seq(&tx.tx)?.max(after),
    };
    Ok((changes, upto))
}

pub fn count_changes_for_sync(
    tx: &mut SqliteTx<'_>,
    after: i64,
    filter: &SyncLogFilter,
) -> StoreResult<u64> {
    flush_changes(tx)?;
    tx.tx
        .prepare_cached(&format!(
            "SELECT COUNT(*) FROM changes WHERE seq > :after AND {FOR_SYNC}"
        ))
        .and_then(|mut stmt| {
            stmt.query_row(
                rusqlite::named_params! {
                    ":after": after,
                    ":own": filter.own_origin,
                    ":resend": filter.own_resend,
                },
                |r| r.get::<_, i64>(0),
            )
        })
        .map(|n| n as u64)
        .map_err(sql_error)
}

pub fn last_seq(tx: &Transaction<'_>) -> StoreResult<i64> {
    tx.query_row("SELECT COALESCE(MAX(seq), 0) FROM changes", [], |r| {
        r.get(0)
    })
    .map_err(sql_error)
}

fn logged_changes(mut rows: rusqlite::Rows<'_>) -> StoreResult<Vec<LoggedChange>> {
    let mut changes = Vec::new();
    while let Some(row) = rows.next().map_err(sql_error)? {
        let op: String = row.get(3).map_err(sql_error)?;
        let fields: String = row.get(5).map_err(sql_error)?;
        let (created, changed) = decode_fields(&fields)?;
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
            origin: row.get(4).map_err(sql_error)?,
            field_nos,
        });
    }
    Ok(changes)
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

/// Records of `table` by id, read together (statements of `UIDS_PER_LOOKUP` ids); ids
/// without a record are left out.
pub fn records_by_ids(
    tx: &mut SqliteTx<'_>,
    table: &Table,
    ids: &[i64],
) -> StoreResult<Vec<StoredRecord>> {
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

pub fn record_status(
    tx: &Transaction<'_>,
    table_id: i64,
    id: i64,
) -> StoreResult<Option<RecordStatus>> {
    let sql = format!("SELECT status FROM {} WHERE id = ?1", table_name(table_id));
    let mut stmt = tx.prepare_cached(&sql).map_err(sql_error)?;
    stmt.query_row([id], |r| r.get::<_, i64>(0))
        .optional()
        .map(|s| s.map(status_from))
        .map_err(sql_error)
}

/// The change log's field list: a create's field numbers `[1,2]`, else `{"<no>": new}`
/// for a value without a previous one and `{"<no>": [old, new]}` otherwise (no value type
/// is a JSON array).
fn encode_fields(change: &Change) -> StoreResult<String> {
    if change.op == ChangeOp::Create {
        let mut out = String::with_capacity(4 * change.created_fields.len() + 2);
        out.push('[');
        for (i, no) in change.created_fields.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let _ = write!(out, "{no}");
        }
        out.push(']');
        return Ok(out);
    }
    let fields = &change.fields;
    let mut out = Vec::with_capacity(32 * fields.len() + 2);
    out.push(b'{');
    for (i, f) in fields.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let _ = write!(&mut out as &mut dyn std::io::Write, "\"{}\":", f.field_no);
        // A value taken from a peer also keeps the stamps that decided it (B-15).
        let result = match (&f.old, &f.written) {
            (None, None) => serde_json::to_writer(&mut out, &f.new),
            (Some(old), None) => serde_json::to_writer(&mut out, &(old, &f.new)),
            (old, Some(written)) => serde_json::to_writer(
                &mut out,
                &(
                    old,
                    &f.new,
                    match &f.rule {
                        None => serde_json::json!({ "w": written, "r": f.replaced }),
                        Some(rule) => {
                            serde_json::json!({ "w": written, "r": f.replaced, "k": rule })
                        }
                    },
                ),
            ),
        };
        result.map_err(|e| DomainError::Store(e.to_string()))?;
    }
    out.push(b'}');
    String::from_utf8(out).map_err(|e| DomainError::Store(e.to_string()))
}

/// Returns (created fields, changed fields).
fn decode_fields(text: &str) -> StoreResult<(Vec<i64>, Vec<FieldChange>)> {
    if text.starts_with('[') {
        let created = serde_json::from_str(text).map_err(|e| DomainError::Store(e.to_string()))?;
        return Ok((created, Vec::new()));
    }
    let map: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(text).map_err(|e| DomainError::Store(e.to_string()))?;
    let mut fields = Vec::with_capacity(map.len());
    for (key, value) in map {
        let field_no = key
            .parse()
            .map_err(|_| DomainError::Store(format!("change log field key {key}")))?;
        fields.push(match value {
            serde_json::Value::Array(mut pair) if pair.len() == 2 => {
                let new = pair.pop().unwrap_or_default();
                FieldChange {
                    field_no,
                    old: pair.pop(),
                    new,
                    ..Default::default()
                }
            }
            serde_json::Value::Array(mut triple) if triple.len() == 3 => {
                let why = triple.pop().unwrap_or_default();
                let new = triple.pop().unwrap_or_default();
                let stamp = |key: &str| serde_json::from_value(why[key].clone()).ok();
                FieldChange {
                    field_no,
                    old: triple.pop(),
                    new,
                    written: stamp("w"),
                    replaced: stamp("r"),
                    rule: why["k"].as_str().map(str::to_string),
                }
            }
            new => FieldChange {
                field_no,
                old: None,
                new,
                ..Default::default()
            },
        });
    }
    fields.sort_by_key(|f| f.field_no);
    Ok((Vec::new(), fields))
}

/// What an INSERT's columns depend on besides the table: (local node?, deleted?), then per
/// given field whether it carries a stamp of its own.
pub(crate) type InsertShape = Vec<(i64, bool)>;

/// A change-log row waiting in its transaction to be written with others.
pub(crate) struct PendingChange {
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

/// Rows per multi-row INSERT into the change log.
const CHANGE_BATCH: usize = 256;

/// Appends `change` as entry `seq`; `prev_seq` is the record's previous entry, so a
/// record's history is a chain walked from its row's `last_seq` (cheaper to keep than an
/// index over the whole log). Rows are buffered and written in multi-row INSERTs within
/// the same transaction; `flush_changes` runs before commit and before any read of the log.
fn append_change(
    tx: &mut SqliteTx<'_>,
    change: &Change,
    record_id: i64,
    seq: i64,
    prev_seq: Option<i64>,
) -> StoreResult<()> {
    // A bulk write repeats its origin and, for creates, its field list: share them.
    let origin = match &tx.last_origin {
        Some(last) if **last == change.origin => last.clone(),
        _ => {
            let origin = Rc::new(change.origin.clone());
            tx.last_origin = Some(origin.clone());
            origin
        }
    };
    let fields = match &tx.last_created_fields {
        Some((nos, text)) if change.op == ChangeOp::Create && *nos == change.created_fields => {
            text.clone()
        }
        _ => {
            let text = Rc::new(encode_fields(change)?);
            if change.op == ChangeOp::Create {
                tx.last_created_fields = Some((change.created_fields.clone(), text.clone()));
            }
            text
        }
    };
    tx.pending_changes.push(PendingChange {
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
    if tx.pending_changes.len() >= CHANGE_BATCH {
        flush_changes(tx)?;
    }
    Ok(())
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

pub fn append_resends(
    tx: &mut SqliteTx<'_>,
    table_id: i64,
    record_ids: &[i64],
    fields: &[i64],
    origin: &str,
    at_ms: i64,
) -> StoreResult<Option<(i64, i64)>> {
    let origin = Rc::new(origin.to_string());
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
        let seq = tx.next_seq()?;
        range = Some((range.map_or(seq, |(first, _)| first), seq));
        tx.pending_changes.push(PendingChange {
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
        if tx.pending_changes.len() >= CHANGE_BATCH {
            flush_changes(tx)?;
        }
    }
    Ok(range)
}

pub fn record_ids(
    tx: &Transaction<'_>,
    table: &Table,
    after: i64,
    limit: usize,
) -> StoreResult<Vec<i64>> {
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

pub(crate) fn flush_changes(tx: &mut SqliteTx<'_>) -> StoreResult<()> {
    let pending = std::mem::take(&mut tx.pending_changes);
    // Creates have no previous entry and a known op: fewer parameters to bind.
    let (creates, others): (Vec<&PendingChange>, Vec<&PendingChange>) =
        pending.iter().partition(|c| c.op == ChangeOp::Create);
    for chunk in creates.chunks(CHANGE_BATCH) {
        let mut sql_params: Vec<&dyn rusqlite::ToSql> = Vec::with_capacity(8 * chunk.len());
        for c in chunk {
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
            &tx.tx,
            "(?,NULL,?,?,'create',?,?,?,?,?)",
            chunk.len(),
            &sql_params,
        )?;
    }
    for chunk in others.chunks(CHANGE_BATCH) {
        let ops: Vec<&str> = chunk.iter().map(|c| c.op.as_str()).collect();
        let mut sql_params: Vec<&dyn rusqlite::ToSql> = Vec::with_capacity(10 * chunk.len());
        for (i, c) in chunk.iter().enumerate() {
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
        insert_change_rows(&tx.tx, "(?,?,?,?,?,?,?,?,?,?)", chunk.len(), &sql_params)?;
    }
    Ok(())
}

pub fn insert(
    tx: &mut SqliteTx<'_>,
    table: &Table,
    row: &NewRow,
    change: &Change,
) -> StoreResult<i64> {
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

fn constraint_error(e: rusqlite::Error, table: &Table) -> DomainError {
    if let rusqlite::Error::SqliteFailure(err, _) = &e
        && err.code == rusqlite::ErrorCode::ConstraintViolation
    {
        return DomainError::Conflict(format!("table {}: {e}", table.id));
    }
    sql_error(e)
}

pub fn update(
    tx: &mut SqliteTx<'_>,
    table: &Table,
    update: &RowUpdate,
    change: &Change,
) -> StoreResult<()> {
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

pub fn list(tx: &Transaction<'_>, table: &Table, query: &RecordQuery) -> StoreResult<Vec<Record>> {
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

pub fn history(tx: &Transaction<'_>, table: &Table, record_id: i64) -> StoreResult<Vec<Change>> {
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
        let (created_fields, fields) = decode_fields(&fields)?;
        changes.push(Change {
            seq,
            table_id: table.id,
            record_id,
            record_uid,
            op: ChangeOp::parse(&op)
                .ok_or_else(|| DomainError::Store(format!("unknown op {op}")))?,
            hlc: Hlc(hlc as u64),
            origin,
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

/// A table's records by status: its row in `record_counts` (with this transaction's own
/// changes), or a count of the table where it has none yet.
pub fn counts(tx: &mut SqliteTx<'_>, table: &Table) -> StoreResult<TableCounts> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_change_log_encoding_round_trips() {
        let mut change = Change {
            seq: 0,
            table_id: 1,
            record_id: 1,
            record_uid: Uuid::nil(),
            op: ChangeOp::Update,
            hlc: Hlc(1),
            origin: "api".into(),
            user_id: None,
            at_ms: 0,
            created_fields: Vec::new(),
            fields: vec![
                FieldChange {
                    field_no: 2,
                    old: None,
                    new: json!("Иван"),
                    ..Default::default()
                },
                FieldChange {
                    field_no: 10,
                    old: Some(json!(null)),
                    new: json!("1.50"),
                    ..Default::default()
                },
                FieldChange {
                    field_no: 11,
                    old: Some(json!({"name": "a", "size": 1, "sha256": "x"})),
                    new: json!(null),
                    ..Default::default()
                },
            ],
        };
        let text = encode_fields(&change).unwrap();
        assert_eq!(
            text,
            r#"{"2":"Иван","10":[null,"1.50"],"11":[{"name":"a","sha256":"x","size":1},null]}"#
        );
        assert_eq!(
            decode_fields(&text).unwrap(),
            (vec![], change.fields.clone())
        );
        change.op = ChangeOp::Create;
        change.created_fields = vec![3, 12];
        assert_eq!(encode_fields(&change).unwrap(), "[3,12]");
        assert_eq!(decode_fields("[3,12]").unwrap(), (vec![3, 12], vec![]));
    }

    #[test]
    fn a_value_from_a_peer_keeps_the_stamps_that_decided_it() {
        let written = crmsync_domain::Stamp {
            hlc: Hlc(7 << 16),
            node: Uuid::from_u128(0xA),
        };
        let replaced = crmsync_domain::Stamp {
            hlc: Hlc(5 << 16),
            node: Uuid::from_u128(0xB),
        };
        let change = Change {
            seq: 0,
            table_id: 1,
            record_id: 1,
            record_uid: Uuid::nil(),
            op: ChangeOp::Update,
            hlc: Hlc(7 << 16),
            origin: "sync:1".into(),
            user_id: None,
            at_ms: 0,
            created_fields: Vec::new(),
            fields: vec![
                FieldChange {
                    field_no: 3,
                    old: Some(json!("old")),
                    new: json!("new"),
                    written: Some(written),
                    replaced: Some(replaced),
                    rule: None,
                },
                // Decided by a sync's conflict rule (B-02).
                FieldChange {
                    field_no: 4,
                    old: Some(json!("theirs")),
                    new: json!("ours"),
                    written: Some(written),
                    replaced: Some(replaced),
                    rule: Some("here".into()),
                },
            ],
        };
        let (_, decoded) = decode_fields(&encode_fields(&change).unwrap()).unwrap();
        assert_eq!(decoded, change.fields);
    }
}
