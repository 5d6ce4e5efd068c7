//! Tables and fields.

use super::{ApiError, ApiJson, ApiPath, blocking};
use crate::app::App;
use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use crmsync_domain::instance::FieldPatch;
use crmsync_domain::{Actor, Field, FieldOptions, Table};
use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableBody {
    name: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewField {
    name: String,
    #[serde(rename = "type")]
    field_type: String,
    #[serde(default)]
    options: FieldOptions,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldChange {
    name: Option<String>,
    #[serde(rename = "type")]
    field_type: Option<String>,
    options: Option<FieldOptions>,
}

pub async fn list(State(app): State<App>) -> Result<Json<Value>, ApiError> {
    let tables = blocking(move || app.core.tables()).await?;
    Ok(Json(json!({ "tables": tables })))
}

pub async fn create(
    State(app): State<App>,
    Extension(actor): Extension<Actor>,
    ApiJson(body): ApiJson<TableBody>,
) -> Result<(StatusCode, Json<Table>), ApiError> {
    let table = blocking(move || app.core.create_table(&actor, &body.name)).await?;
    Ok((StatusCode::CREATED, Json(table)))
}

pub async fn get(
    State(app): State<App>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<Table>, ApiError> {
    Ok(Json(blocking(move || app.core.table(id)).await?))
}

pub async fn rename(
    State(app): State<App>,
    Extension(actor): Extension<Actor>,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<TableBody>,
) -> Result<Json<Table>, ApiError> {
    Ok(Json(
        blocking(move || app.core.rename_table(&actor, id, &body.name)).await?,
    ))
}

pub async fn delete(
    State(app): State<App>,
    Extension(actor): Extension<Actor>,
    ApiPath(id): ApiPath<i64>,
) -> Result<StatusCode, ApiError> {
    blocking(move || app.core.delete_table(&actor, id)).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn list_fields(
    State(app): State<App>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<Value>, ApiError> {
    let table = blocking(move || app.core.table(id)).await?;
    Ok(Json(json!({ "fields": table.fields })))
}

pub async fn create_field(
    State(app): State<App>,
    Extension(actor): Extension<Actor>,
    ApiPath(table_id): ApiPath<i64>,
    ApiJson(body): ApiJson<NewField>,
) -> Result<(StatusCode, Json<Field>), ApiError> {
    let core = app.core.clone();
    let field = blocking(move || {
        core.create_field(&actor, table_id, &body.name, &body.field_type, body.options)
    })
    .await?;
    // Syncs introduce the new catalogue, and a whole table's new field joins its sync.
    app.syncs.changed();
    Ok((StatusCode::CREATED, Json(field)))
}

pub async fn get_field(
    State(app): State<App>,
    ApiPath(no): ApiPath<i64>,
) -> Result<Json<Field>, ApiError> {
    Ok(Json(blocking(move || app.core.field(no)).await?))
}

pub async fn update_field(
    State(app): State<App>,
    Extension(actor): Extension<Actor>,
    ApiPath(no): ApiPath<i64>,
    ApiJson(body): ApiJson<FieldChange>,
) -> Result<Json<Field>, ApiError> {
    let patch = FieldPatch {
        name: body.name,
        field_type: body.field_type,
        options: body.options,
    };
    Ok(Json(
        blocking(move || app.core.update_field(&actor, no, patch)).await?,
    ))
}

pub async fn delete_field(
    State(app): State<App>,
    Extension(actor): Extension<Actor>,
    ApiPath(no): ApiPath<i64>,
) -> Result<StatusCode, ApiError> {
    blocking(move || app.core.delete_field(&actor, no)).await?;
    Ok(StatusCode::NO_CONTENT)
}
