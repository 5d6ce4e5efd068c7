//! Tables and records in the browser: the list of tables, a table as a grid (search, sort,
//! paging), a record's form fitted to each field type, delete/restore, files, history with
//! where each change came from, the per-record Sync action (S-24) and, on a passive side,
//! the same record on the active side (S-23). Admins add tables and fields here.
//!
//! Here: the routes and what the pages share. `tables` (the list, tables and fields),
//! `grid` (a table's grid and the link picker), `form` (a record's inputs, new and saved
//! records), `record` (a record's page and its actions), `history`, `files`.

use crate::app::App;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use crmsync_domain::{DomainError, Field, User, Value};

mod files;
mod form;
mod grid;
mod history;
mod record;
mod tables;

use files::{download_file, upload_file};
use form::{create_record, new_record, save_record};
use grid::{grid, pick};
use record::{by_uid, delete_record, record, restore_record, sync_record};
use tables::{
    create_field, create_table, delete_field, delete_table, edit_field, fields, rename_table,
    tables,
};

pub fn router() -> Router<App> {
    Router::new()
        .route("/tables", get(tables).post(create_table))
        .route("/tables/{table}", get(grid))
        .route("/tables/{table}/fields", get(fields).post(create_field))
        .route("/tables/{table}/rename", post(rename_table))
        .route("/tables/{table}/delete", post(delete_table))
        .route("/tables/{table}/fields/{field}/delete", post(delete_field))
        .route("/tables/{table}/fields/{field}/edit", post(edit_field))
        .route("/tables/{table}/new", get(new_record).post(create_record))
        .route("/tables/{table}/pick", get(pick))
        .route("/tables/{table}/uid/{uid}", get(by_uid))
        .route("/tables/{table}/{id}", get(record).post(save_record))
        .route("/tables/{table}/{id}/delete", post(delete_record))
        .route("/tables/{table}/{id}/restore", post(restore_record))
        .route("/tables/{table}/{id}/sync", post(sync_record))
        .route(
            "/tables/{table}/{id}/files/{field}",
            post(upload_file)
                .get(download_file)
                .layer(DefaultBodyLimit::disable()),
        )
}

/// A value as a person reads it in a grid or a history.
pub(super) fn shown(field: &Field, value: &Value, users: &[User]) -> String {
    value.to_text(field, &|id| {
        users
            .iter()
            .find(|u| u.id == id)
            .map(|u| u.full_name.clone())
    })
}

/// Tables some sync sends (they get the per-record Sync action).
pub(super) fn synced_tables(app: &App) -> Result<Vec<i64>, DomainError> {
    let mut tables = Vec::new();
    for sync in app.core.syncs()? {
        let mapping = crate::sync::initial::mapping_for(app, &sync)?;
        tables.extend(
            mapping
                .routes
                .iter()
                .filter(|r| r.direction.sends())
                .map(|r| r.local.table_id),
        );
    }
    Ok(tables)
}
