//! The single write path: every change to a record — create, update, status, file —
//! goes through `write_ops` (or `in_write` for the merge), which validates the values,
//! stamps each changed field and appends the change-log entry in one transaction.

use super::{Actor, Instance, WriteCtx, field_of, find_table, load};
use crate::clock::{Hlc, Stamp};
use crate::error::{DomainError, RowError};
use crate::record::{Change, ChangeOp, FieldChange, NewRow, Record, RecordStatus, RowUpdate};
use crate::schema::{FieldType, Table};
use crate::store::{Store, StoreTx};
use crate::value::{FileRef, Value};
use crate::{FieldNo, RecordId, TableId};
use serde_json::{Map, Value as Json};

/// A change to one record, as the write path takes it.
#[derive(Debug, Clone)]
pub enum WriteOp {
    Create(Vec<(FieldNo, Value)>),
    Update {
        id: RecordId,
        values: Vec<(FieldNo, Value)>,
    },
    SetStatus {
        id: RecordId,
        status: RecordStatus,
    },
}

/// The most row errors one batch reports; the rest are counted.
pub const MAX_REPORTED_ROW_ERRORS: usize = 1000;

impl<S: Store> Instance<S> {
    pub fn create_record(
        &self,
        actor: &Actor,
        table_id: TableId,
        values: &Map<String, Json>,
    ) -> Result<Record, DomainError> {
        let table = self.table(table_id)?;
        let values = parse_json_values(&table, values)?;
        self.write_one(actor, table_id, WriteOp::Create(values))
    }

    pub fn update_record(
        &self,
        actor: &Actor,
        table_id: TableId,
        id: RecordId,
        values: &Map<String, Json>,
    ) -> Result<Record, DomainError> {
        let table = self.table(table_id)?;
        let values = parse_json_values(&table, values)?;
        self.write_one(actor, table_id, WriteOp::Update { id, values })
    }

    pub fn set_status(
        &self,
        actor: &Actor,
        table_id: TableId,
        id: RecordId,
        status: RecordStatus,
    ) -> Result<Record, DomainError> {
        self.write_one(actor, table_id, WriteOp::SetStatus { id, status })
    }

    /// Points a file field at stored content (already written by the file store).
    pub fn set_file(
        &self,
        actor: &Actor,
        table_id: TableId,
        id: RecordId,
        field_no: FieldNo,
        file: FileRef,
    ) -> Result<Record, DomainError> {
        let table = self.table(table_id)?;
        let field = table.field(field_no).ok_or_else(|| {
            DomainError::not_found(format!("table {table_id} has no field {field_no}"))
        })?;
        if field.field_type != FieldType::File {
            return Err(DomainError::invalid_field(
                field_no,
                format!("field {field_no} \"{}\" is not a file field", field.name),
            ));
        }
        self.write_one(
            actor,
            table_id,
            WriteOp::Update {
                id,
                values: vec![(field_no, Value::File(file))],
            },
        )
    }

    fn write_one(
        &self,
        actor: &Actor,
        table_id: TableId,
        op: WriteOp,
    ) -> Result<Record, DomainError> {
        let id = self.in_write(actor, table_id, |ctx, tx, table| {
            self.apply(tx, ctx, table, op)
        })?;
        self.record(table_id, id)
    }

    /// The single write path. Applies `ops` to one table in one transaction; each op that
    /// changes something stamps its fields and appends a change-log entry, and an op that
    /// changes nothing writes nothing. If any op fails, nothing is written and every
    /// failure is reported with its position (1-based) as `DomainError::Rows`.
    pub fn write_ops(
        &self,
        actor: &Actor,
        table_id: TableId,
        ops: &mut dyn Iterator<Item = Result<WriteOp, RowError>>,
    ) -> Result<Vec<RecordId>, DomainError> {
        let mut ids = Vec::new();
        self.write_ops_each(actor, table_id, ops, &mut |id| ids.push(id))?;
        Ok(ids)
    }

    /// `write_ops` for a batch too long to keep its ids (an import of millions of rows):
    /// each id goes to `written` as its op is applied; they count only if this succeeds.
    pub fn write_ops_each(
        &self,
        actor: &Actor,
        table_id: TableId,
        ops: &mut dyn Iterator<Item = Result<WriteOp, RowError>>,
        written: &mut dyn FnMut(RecordId),
    ) -> Result<(), DomainError> {
        self.in_write(actor, table_id, |ctx, tx, table| {
            let mut errors = Vec::new();
            for (index, op) in ops.enumerate() {
                let row = index + 1;
                let result = op.and_then(|op| {
                    self.apply(tx, ctx, table, op).map_err(|e| match e {
                        DomainError::Invalid { field, message } => RowError {
                            row,
                            field,
                            message,
                            ..RowError::default()
                        },
                        other => RowError {
                            row,
                            message: other.to_string(),
                            ..RowError::default()
                        },
                    })
                });
                match result {
                    Ok(id) => written(id),
                    Err(error) if errors.len() < MAX_REPORTED_ROW_ERRORS => errors.push(error),
                    Err(_) => {}
                }
            }
            if errors.is_empty() {
                Ok(())
            } else {
                Err(DomainError::Rows(errors))
            }
        })
    }

    /// Runs `body` in one write transaction with the clock state of this write; records
    /// the newest clock time issued before committing.
    pub(crate) fn in_write<T>(
        &self,
        actor: &Actor,
        table_id: TableId,
        body: impl FnOnce(&mut WriteCtx<'_>, &mut dyn StoreTx, &Table) -> Result<T, DomainError>,
    ) -> Result<T, DomainError> {
        let result = self.store.write(|tx| {
            let tables = tx.tables()?;
            let table = find_table(&tables, table_id)?;
            let mut ctx = WriteCtx {
                actor,
                node: tx.instance_id()?,
                floor: tx.last_hlc()?,
                last: Hlc(0),
                now_ms: self.clock.now_ms(),
                tables: &tables,
                active_users: None,
            };
            let value = body(&mut ctx, tx, table)?;
            if ctx.last > ctx.floor {
                tx.set_last_hlc(ctx.last)?;
            }
            Ok(value)
        });
        if result.is_ok() {
            self.notify_commit();
        }
        result
    }

    fn apply(
        &self,
        tx: &mut dyn StoreTx,
        ctx: &mut WriteCtx<'_>,
        table: &Table,
        op: WriteOp,
    ) -> Result<RecordId, DomainError> {
        match op {
            WriteOp::Create(mut values) => {
                check_references(tx, ctx, table, &values)?;
                crate::numbering::assign(tx, table, &mut values)?;
                let stamp = self.stamp(ctx);
                let uid = self.clock.new_uid();
                let values: Vec<(FieldNo, Value, Stamp)> = values
                    .into_iter()
                    .filter(|(_, v)| !v.is_null())
                    .map(|(no, v)| (no, v, stamp))
                    .collect();
                let change = Change {
                    seq: 0,
                    table_id: table.id,
                    record_id: 0,
                    record_uid: uid,
                    op: ChangeOp::Create,
                    hlc: stamp.hlc,
                    origin: ctx.actor.origin.clone(),
                    user_id: Some(ctx.actor.user.id),
                    at_ms: ctx.now_ms,
                    // The values themselves are in the row; history derives them.
                    created_fields: values.iter().map(|(no, _, _)| *no).collect(),
                    fields: Vec::new(),
                };
                let row = NewRow {
                    uid,
                    created_at_ms: ctx.now_ms,
                    status: RecordStatus::Active,
                    status_stamp: stamp,
                    values,
                };
                tx.insert_record(table, &row, &change)
            }
            WriteOp::Update { id, values } => {
                let current = load(tx, table, id)?;
                if current.record.status == RecordStatus::Deleted {
                    return Err(DomainError::Conflict(format!(
                        "record {id} is deleted; restore it before editing"
                    )));
                }
                let changed: Vec<(FieldNo, Value)> = values
                    .into_iter()
                    .filter(|(no, v)| current.record.values.get(no).unwrap_or(&Value::Null) != v)
                    .collect();
                if changed.is_empty() {
                    return Ok(id);
                }
                crate::numbering::refuse_edit(table, &changed)?;
                check_references(tx, ctx, table, &changed)?;
                let stamp = self.stamp(ctx);
                let fields = changed
                    .iter()
                    .map(|(no, v)| {
                        let field = field_of(table, *no);
                        FieldChange {
                            field_no: *no,
                            old: Some(
                                current
                                    .record
                                    .values
                                    .get(no)
                                    .unwrap_or(&Value::Null)
                                    .to_json(field),
                            ),
                            new: v.to_json(field),
                            ..Default::default()
                        }
                    })
                    .collect();
                let change =
                    self.change(ctx, table, &current.record, ChangeOp::Update, stamp, fields);
                let update = RowUpdate {
                    id,
                    updated_at_ms: ctx.now_ms,
                    status: None,
                    values: changed.into_iter().map(|(no, v)| (no, v, stamp)).collect(),
                };
                tx.update_record(table, &update, &change)?;
                Ok(id)
            }
            WriteOp::SetStatus { id, status } => {
                let current = load(tx, table, id)?;
                if current.record.status == status {
                    return Ok(id);
                }
                let stamp = self.stamp(ctx);
                let op = match status {
                    RecordStatus::Deleted => ChangeOp::Delete,
                    RecordStatus::Active => ChangeOp::Restore,
                };
                let change = self.change(ctx, table, &current.record, op, stamp, Vec::new());
                let update = RowUpdate {
                    id,
                    updated_at_ms: ctx.now_ms,
                    status: Some((status, stamp)),
                    values: Vec::new(),
                };
                tx.update_record(table, &update, &change)?;
                Ok(id)
            }
        }
    }

    pub(crate) fn stamp(&self, ctx: &mut WriteCtx<'_>) -> Stamp {
        let hlc = self.hlc.next(ctx.now_ms, ctx.floor.max(ctx.last));
        ctx.last = hlc;
        Stamp {
            hlc,
            node: ctx.node,
        }
    }

    fn change(
        &self,
        ctx: &WriteCtx<'_>,
        table: &Table,
        record: &Record,
        op: ChangeOp,
        stamp: Stamp,
        fields: Vec<FieldChange>,
    ) -> Change {
        Change {
            seq: 0,
            table_id: table.id,
            record_id: record.id,
            record_uid: record.uid,
            op,
            hlc: stamp.hlc,
            origin: ctx.actor.origin.clone(),
            user_id: Some(ctx.actor.user.id),
            at_ms: ctx.now_ms,
            created_fields: Vec::new(),
            fields,
        }
    }
}

/// Parses `{"<field_no>": value}` against the table's fields.
pub fn parse_json_values(
    table: &Table,
    values: &Map<String, Json>,
) -> Result<Vec<(FieldNo, Value)>, DomainError> {
    values
        .iter()
        .map(|(key, json)| {
            let field = key
                .trim()
                .parse::<FieldNo>()
                .ok()
                .and_then(|no| table.field(no))
                .ok_or_else(|| {
                    DomainError::invalid(format!(
                        "table {} \"{}\" has no field \"{key}\" (values are keyed by field number)",
                        table.id, table.name
                    ))
                })?;
            Ok((field.no, Value::from_json(field, json)?))
        })
        .collect()
}

/// User values must name an active user; link values an active record of the target table.
pub(crate) fn check_references(
    tx: &mut dyn StoreTx,
    ctx: &mut WriteCtx<'_>,
    table: &Table,
    values: &[(FieldNo, Value)],
) -> Result<(), DomainError> {
    for (no, value) in values {
        let field = field_of(table, *no);
        match value {
            Value::User(id) => {
                if ctx.active_users.is_none() {
                    ctx.active_users = Some(
                        tx.users()?
                            .into_iter()
                            .filter(|u| u.active)
                            .map(|u| u.id)
                            .collect(),
                    );
                }
                if !ctx
                    .active_users
                    .as_ref()
                    .is_some_and(|users| users.contains(id))
                {
                    return Err(DomainError::invalid_field(
                        *no,
                        format!("field {no} \"{}\": there is no user {id}", field.name),
                    ));
                }
            }
            Value::Link(id) => {
                let target = field.options.table_id.unwrap_or_default();
                debug_assert!(ctx.tables.iter().any(|t| t.id == target));
                if tx.record_status(target, *id)? != Some(RecordStatus::Active) {
                    return Err(DomainError::invalid_field(
                        *no,
                        format!(
                            "field {no} \"{}\": table {target} has no record {id}",
                            field.name
                        ),
                    ));
                }
            }
            _ => {}
        }
    }
    Ok(())
}
