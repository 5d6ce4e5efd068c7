//! Reading records: pages of a table, one record, its history and the tables' counts.

use super::{Instance, find_table, load};
use crate::error::DomainError;
use crate::record::{Change, ChangeOp, FieldChange, MAX_PAGE, Record, RecordQuery, SortKey};
use crate::schema::Table;
use crate::store::{Store, TableCounts};
use crate::value::Value;
use crate::{FieldNo, RecordId, TableId};
use serde_json::Value as Json;
use std::collections::HashMap;
use uuid::Uuid;

/// A page of records and where the next one starts.
#[derive(Debug, Clone)]
pub struct RecordPage {
    pub records: Vec<Record>,
    pub next_after: Option<RecordId>,
}

impl<S: Store> Instance<S> {
    pub fn list_records(
        &self,
        table_id: TableId,
        query: &RecordQuery,
    ) -> Result<RecordPage, DomainError> {
        let mut query = query.clone();
        query.limit = query.limit.clamp(1, MAX_PAGE);
        let limit = query.limit;
        self.store.read(|tx| {
            let tables = tx.tables()?;
            let table = find_table(&tables, table_id)?;
            if let SortKey::Field(no) = query.sort
                && table.field(no).is_none()
            {
                return Err(DomainError::invalid(format!(
                    "sort: table {table_id} has no field {no}"
                )));
            }
            // One extra row tells whether another page follows.
            query.limit = limit + 1;
            let mut records = tx.list_records(table, &query)?;
            let next_after = if records.len() > limit {
                records.truncate(limit);
                records.last().map(|r| r.id)
            } else {
                None
            };
            Ok(RecordPage {
                records,
                next_after,
            })
        })
    }

    pub fn record(&self, table_id: TableId, id: RecordId) -> Result<Record, DomainError> {
        self.store.read(|tx| {
            let tables = tx.tables()?;
            let table = find_table(&tables, table_id)?;
            Ok(load(tx, table, id)?.record)
        })
    }

    pub fn record_by_uid(&self, table_id: TableId, uid: Uuid) -> Result<Record, DomainError> {
        self.store.read(|tx| {
            let tables = tx.tables()?;
            let table = find_table(&tables, table_id)?;
            tx.record_by_uid(table, uid)?
                .map(|r| r.record)
                .ok_or_else(|| {
                    DomainError::not_found(format!("there is no record {uid} in table {table_id}"))
                })
        })
    }

    pub fn history(&self, table_id: TableId, id: RecordId) -> Result<Vec<Change>, DomainError> {
        self.store.read(|tx| {
            let tables = tx.tables()?;
            let table = find_table(&tables, table_id)?;
            let current = load(tx, table, id)?.record;
            let mut changes = tx.history(table, id)?;
            fill_created_values(table, &current, &mut changes);
            Ok(changes)
        })
    }

    pub fn table_counts(&self) -> Result<Vec<(Table, TableCounts)>, DomainError> {
        self.store.read(|tx| {
            let tables = tx.tables()?;
            tables
                .into_iter()
                .map(|t| {
                    let counts = tx.table_counts(&t)?;
                    Ok((t, counts))
                })
                .collect()
        })
    }

    pub fn change_count(&self) -> Result<u64, DomainError> {
        self.store.read(|tx| tx.change_count())
    }
}

/// A create's log entry names its fields but not their values (those are in the row):
/// walking back from the current values, undoing each update with its `old` values,
/// gives the values the record was created with.
fn fill_created_values(table: &Table, current: &Record, changes: &mut [Change]) {
    let mut values: HashMap<FieldNo, Json> = table
        .fields
        .iter()
        .map(|f| {
            (
                f.no,
                current.values.get(&f.no).unwrap_or(&Value::Null).to_json(f),
            )
        })
        .collect();
    for change in changes.iter_mut().rev() {
        if change.op == ChangeOp::Create {
            change.fields = change
                .created_fields
                .iter()
                .map(|no| FieldChange {
                    field_no: *no,
                    old: None,
                    new: values.get(no).cloned().unwrap_or(Json::Null),
                    ..Default::default()
                })
                .collect();
        } else {
            for f in &change.fields {
                values.insert(f.field_no, f.old.clone().unwrap_or(Json::Null));
            }
        }
    }
}
