//! Records: list, read, create, edit, delete, restore, history.

use super::{ApiError, ApiJson, ApiPath, ApiQuery, blocking};
use crate::app::App;
use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use crmsync_domain::record::{MAX_PAGE, StatusFilter};
use crmsync_domain::value::format_ms;
use crmsync_domain::{
    Actor, Change, DomainError, Record, RecordQuery, RecordStatus, SortKey, Table, Value,
};
use serde::Deserialize;
use serde_json::{Map, Value as Json_, json};

/// A list's search, status, paging and sort, as the API and the web grid take them.
#[derive(Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    pub q: Option<String>,
    pub status: Option<String>,
    pub limit: Option<usize>,
    pub after: Option<i64>,
    /// `id`, `created_at`, `updated_at` or a field number; `-` in front for descending.
    pub sort: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordBody {
    #[serde(default)]
    values: Map<String, Json_>,
}

/// The contract's record shape: every field of the table, null when empty.
pub fn render_record(table: &Table, record: &Record) -> Json_ {
    let values: Map<String, Json_> = table
        .fields
        .iter()
        .map(|f| {
            let value = record.values.get(&f.no).unwrap_or(&Value::Null);
            (f.no.to_string(), value.to_json(f))
        })
        .collect();
    json!({
        "id": record.id,
        "uid": record.uid.to_string(),
        "created_at": format_ms(record.created_at_ms),
        "updated_at": format_ms(record.updated_at_ms),
        "status": record.status.as_str(),
        "values": values,
    })
}

/// `active` (the default), `deleted` or `all`.
pub fn parse_status(status: Option<&str>) -> Result<StatusFilter, ApiError> {
    match status {
        None | Some("active") => Ok(StatusFilter::Active),
        Some("deleted") => Ok(StatusFilter::Deleted),
        Some("all") => Ok(StatusFilter::All),
        Some(other) => Err(ApiError::bad_request(format!(
            "status: \"{other}\" is not one of active, deleted, all"
        ))),
    }
}

pub fn parse_query(params: ListParams) -> Result<RecordQuery, ApiError> {
    let mut query = RecordQuery {
        q: params.q,
        ..RecordQuery::default()
    };
    query.status = parse_status(params.status.as_deref())?;
    if let Some(limit) = params.limit {
        // Said, not quietly cut: a client asking for more would take a short page for
        // the whole table.
        if !(1..=MAX_PAGE).contains(&limit) {
            return Err(ApiError::from(DomainError::invalid(format!(
                "limit: from 1 to {MAX_PAGE} records a page (follow next_after for more)"
            ))));
        }
        query.limit = limit;
    }
    query.after = params.after;
    if let Some(sort) = params.sort {
        let (descending, key) = match sort.strip_prefix('-') {
            Some(key) => (true, key),
            None => (false, sort.as_str()),
        };
        query.descending = descending;
        query.sort = match key {
            "id" => SortKey::Id,
            "created_at" => SortKey::CreatedAt,
            "updated_at" => SortKey::UpdatedAt,
            other => SortKey::Field(other.parse().map_err(|_| {
                ApiError::bad_request(format!(
                    "sort: \"{other}\" is not id, created_at, updated_at or a field number"
                ))
            })?),
        };
    }
    Ok(query)
}

pub async fn list(
    State(app): State<App>,
    ApiPath(table_id): ApiPath<i64>,
    ApiQuery(params): ApiQuery<ListParams>,
) -> Result<Json<Json_>, ApiError> {
    let query = parse_query(params)?;
    let (table, page) = blocking(move || {
        let page = app.core.list_records(table_id, &query)?;
        Ok((app.core.table(table_id)?, page))
    })
    .await?;
    let records: Vec<Json_> = page
        .records
        .iter()
        .map(|r| render_record(&table, r))
        .collect();
    Ok(Json(
        json!({ "records": records, "next_after": page.next_after }),
    ))
}

async fn respond(
    app: App,
    table_id: i64,
    write: impl FnOnce(&App) -> Result<Record, crmsync_domain::DomainError> + Send + 'static,
) -> Result<Json<Json_>, ApiError> {
    let (table, record) = blocking(move || {
        let record = write(&app)?;
        Ok((app.core.table(table_id)?, record))
    })
    .await?;
    Ok(Json(render_record(&table, &record)))
}

/// A record, and on a passive side whose sync knows the active side's address, where the
/// same record lives there (S-23).
pub async fn get(
    State(app): State<App>,
    ApiPath((table_id, id)): ApiPath<(i64, i64)>,
) -> Result<Json<Json_>, ApiError> {
    let (table, record, remote) = blocking(move || {
        let record = app.core.record(table_id, id)?;
        let remote: Vec<Json_> = crate::sync::actions::remote_copies(&app, table_id, record.uid)?
            .into_iter()
            .map(|(sync_id, base, wire_table, uid)| {
                json!({
                    "sync_id": sync_id,
                    "url": format!("{base}/api/v1/tables/{wire_table}/records/uid/{uid}"),
                })
            })
            .collect();
        Ok((app.core.table(table_id)?, record, remote))
    })
    .await?;
    let mut json = render_record(&table, &record);
    if !remote.is_empty() {
        json["remote"] = Json_::Array(remote);
    }
    Ok(Json(json))
}

/// A record by its uid — what another instance's link to it (S-23) opens.
pub async fn get_by_uid(
    State(app): State<App>,
    ApiPath((table_id, uid)): ApiPath<(i64, uuid::Uuid)>,
) -> Result<Json<Json_>, ApiError> {
    respond(app, table_id, move |app| {
        app.core.record_by_uid(table_id, uid)
    })
    .await
}

pub async fn create(
    State(app): State<App>,
    Extension(actor): Extension<Actor>,
    ApiPath(table_id): ApiPath<i64>,
    ApiJson(body): ApiJson<RecordBody>,
) -> Result<(StatusCode, Json<Json_>), ApiError> {
    let record = crate::records::create(&app, actor, table_id, body.values).await?;
    let json = respond(app, table_id, move |_| Ok(record)).await?;
    Ok((StatusCode::CREATED, json))
}

pub async fn update(
    State(app): State<App>,
    Extension(actor): Extension<Actor>,
    ApiPath((table_id, id)): ApiPath<(i64, i64)>,
    ApiJson(body): ApiJson<RecordBody>,
) -> Result<Json<Json_>, ApiError> {
    respond(app, table_id, move |app| {
        app.core.update_record(&actor, table_id, id, &body.values)
    })
    .await
}

pub async fn delete(
    State(app): State<App>,
    Extension(actor): Extension<Actor>,
    ApiPath((table_id, id)): ApiPath<(i64, i64)>,
) -> Result<Json<Json_>, ApiError> {
    respond(app, table_id, move |app| {
        app.core
            .set_status(&actor, table_id, id, RecordStatus::Deleted)
    })
    .await
}

pub async fn restore(
    State(app): State<App>,
    Extension(actor): Extension<Actor>,
    ApiPath((table_id, id)): ApiPath<(i64, i64)>,
) -> Result<Json<Json_>, ApiError> {
    respond(app, table_id, move |app| {
        app.core
            .set_status(&actor, table_id, id, RecordStatus::Active)
    })
    .await
}

pub async fn history(
    State(app): State<App>,
    ApiPath((table_id, id)): ApiPath<(i64, i64)>,
) -> Result<Json<Json_>, ApiError> {
    let (table, changes, users) = blocking(move || {
        let changes = app.core.history(table_id, id)?;
        Ok((
            app.core.table(table_id)?,
            changes,
            app.core.users_including_removed()?,
        ))
    })
    .await?;
    let entries: Vec<Json_> = changes
        .iter()
        .map(|c| render_change(&table, c, &users))
        .collect();
    Ok(Json(json!({ "history": entries })))
}

fn render_change(table: &Table, change: &Change, users: &[crmsync_domain::User]) -> Json_ {
    let user = change
        .user_id
        .and_then(|id| users.iter().find(|u| u.id == id))
        .map(|u| json!({ "id": u.id, "login": u.login, "full_name": u.full_name }));
    let fields: Vec<Json_> = change
        .fields
        .iter()
        .map(|f| {
            let name = table.field(f.field_no).map(|field| field.name.clone());
            let mut entry = json!({ "field_no": f.field_no, "field_name": name, "new": f.new });
            if let Some(old) = &f.old {
                entry["old"] = old.clone();
            }
            if let Some(why) = provenance(f) {
                entry["provenance"] = why;
            }
            entry
        })
        .collect();
    json!({
        "seq": change.seq,
        "at": format_ms(change.at_ms),
        "op": change.op.as_str(),
        "origin": change.origin.as_string(),
        "user": user,
        "fields": fields,
    })
}

/// Why a value taken from a peer is the value (B-15): which instance wrote it and when, the
/// value it replaced here, and the rule that decided.
pub fn provenance(change: &crmsync_domain::FieldChange) -> Option<Json_> {
    let stamp = |s: &crmsync_domain::Stamp| json!({ "written_by": s.node.to_string(), "written_at": format_ms(s.hlc.ms()) });
    let written = change.written.as_ref()?;
    let mut why = stamp(written);
    why["rule"] = json!(match change.rule.as_deref() {
        Some("here") => "conflict rule of the sync: this instance's value wins",
        Some(_) => "conflict rule of the sync: the other side's value wins",
        None => "newer write wins",
    });
    why["replaced"] = change.replaced.as_ref().map(stamp).unwrap_or(Json_::Null);
    Some(why)
}
