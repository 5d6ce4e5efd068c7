//! Creating records: the one way every adapter — the REST API, the web form, CSV import
//! over the API and from the CLI, the demo — creates them. A field drawing its numbers from
//! another instance (B-06) gets them here before the create (`sync::numbering::creating`),
//! so no adapter can create records and skip that step; nothing else calls it.

use crate::app::App;
use crate::csv_io::{self, ImportOptions, ImportReport};
use crate::sync::numbering::creating;
use crmsync_domain::instance::WriteOp;
use crmsync_domain::{Actor, DomainError, FieldNo, Record, RecordId, TableId, Value};
use serde_json::{Map, Value as Json};
use std::fs::File;
use std::io::{self, BufReader, Seek};

/// Creates one record from values in the API's JSON shape (`{"<field_no>": value}`).
pub async fn create(
    app: &App,
    actor: Actor,
    table_id: TableId,
    values: Map<String, Json>,
) -> Result<Record, DomainError> {
    let core = app.core.clone();
    creating(app, table_id, 1, move || {
        core.create_record(&actor, table_id, &values)
    })
    .await
}

/// Creates records from typed values in one transaction (all or none, errors by row as
/// `DomainError::Rows`); returns their ids in order.
pub async fn create_many(
    app: &App,
    actor: Actor,
    table_id: TableId,
    rows: Vec<Vec<(FieldNo, Value)>>,
) -> Result<Vec<RecordId>, DomainError> {
    let core = app.core.clone();
    creating(app, table_id, rows.len().max(1), move || {
        let mut ops = rows
            .iter()
            .cloned()
            .map(|values| Ok(WriteOp::Create(values)));
        core.write_ops(&actor, table_id, &mut ops)
    })
    .await
}

/// Imports a CSV file into `table_id`: its rows are counted first, so the numbers for all
/// of them are drawn in one go before the import.
pub async fn import_csv(
    app: &App,
    actor: Actor,
    table_id: TableId,
    file: File,
    options: ImportOptions,
) -> Result<ImportReport, DomainError> {
    let store_error = |e: io::Error| DomainError::Store(e.to_string());
    let rows = {
        let mut file = file.try_clone().map_err(store_error)?;
        tokio::task::spawn_blocking(move || {
            file.rewind().map_err(store_error)?;
            csv_io::count_rows(BufReader::new(file), options)
        })
        .await
        .map_err(|e| DomainError::Store(e.to_string()))??
    };
    let core = app.core.clone();
    creating(app, table_id, rows.max(1), move || {
        let mut file = file.try_clone().map_err(store_error)?;
        file.rewind().map_err(store_error)?;
        csv_io::import(&core, &actor, table_id, BufReader::new(file), options)
    })
    .await
}
