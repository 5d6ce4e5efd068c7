//! Sync settings, fields, status and log (the `/api/v1/syncs` routes).

use super::{ApiError, ApiJson, ApiPath, ApiQuery, blocking};
use crate::app::App;
use crate::jobs::JobStatus;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::{Extension, Json};
use crmsync_domain::sync::{ConflictPolicy, Direction, Mode, SyncConfig, SyncField, Transport};
use crmsync_domain::syncs::{SyncFieldPatch, SyncInput};
use crmsync_domain::value::format_ms;
use crmsync_domain::{Actor, FieldNo};
use serde::Deserialize;
use serde_json::{Value, json};

/// The contract's sync shape: passwords are never returned; a passive HTTP sync shows the
/// address to paste into the active side.
fn render(sync: &SyncConfig, base_url: &str) -> Value {
    let endpoint_url = (sync.mode == Mode::Passive && sync.transport.kind() == Transport::Http)
        .then(|| format!("{base_url}/sync/v1/{}", sync.id));
    let mut ftp = sync
        .transport
        .ftp()
        .map(|f| serde_json::to_value(f).unwrap_or_default());
    if let Some(Value::Object(map)) = ftp.as_mut() {
        map.remove("password");
    }
    json!({
        "id": sync.id,
        "name": sync.name,
        "mode": sync.mode,
        "transport": sync.transport.kind(),
        "remote_access": sync.remote_access,
        "remote_url": sync.remote_url,
        "log": sync.log,
        "period_seconds": sync.period_seconds,
        "user_match": sync.user_match,
        "mass_delete_percent": sync.mass_delete_percent,
        "conflict_policy": sync.conflict_policy,
        "local": sync.transport.local(),
        "ftp": ftp,
        "endpoint_url": endpoint_url,
    })
}

/// This instance's address as the caller reached it (or as configured).
pub fn base_url(app: &App, headers: &HeaderMap) -> String {
    if let Some(url) = &app.public_url {
        return url.clone();
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    let scheme = if app.serves_https { "https" } else { "http" };
    format!("{scheme}://{host}")
}

pub async fn list(
    State(app): State<App>,
    headers: HeaderMap,
    Extension(actor): Extension<Actor>,
) -> Result<Json<Value>, ApiError> {
    let base = base_url(&app, &headers);
    let syncs = blocking(move || app.core.syncs()).await?;
    let syncs: Vec<Value> = syncs.iter().map(|s| render_for(&actor, s, &base)).collect();
    Ok(Json(json!({ "syncs": syncs })))
}

/// A sync as `actor` may see it: its settings (folders, FTP server and login, addresses)
/// only for an administrator; a user sees what it is and its status.
fn render_for(actor: &Actor, sync: &SyncConfig, base: &str) -> Value {
    match actor.require_admin() {
        Ok(()) => render(sync, base),
        Err(_) => json!({
            "id": sync.id,
            "name": sync.name,
            "mode": sync.mode,
            "transport": sync.transport.kind(),
        }),
    }
}

pub async fn create(
    State(app): State<App>,
    headers: HeaderMap,
    Extension(actor): Extension<Actor>,
    ApiJson(input): ApiJson<SyncInput>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let base = base_url(&app, &headers);
    let core = app.core.clone();
    let sync = blocking(move || core.create_sync(&actor, input)).await?;
    app.syncs.changed();
    Ok((StatusCode::CREATED, Json(render(&sync, &base))))
}

pub async fn get(
    State(app): State<App>,
    headers: HeaderMap,
    Extension(actor): Extension<Actor>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<Value>, ApiError> {
    let base = base_url(&app, &headers);
    let sync = blocking(move || app.core.sync(id)).await?;
    Ok(Json(render_for(&actor, &sync, &base)))
}

pub async fn update(
    State(app): State<App>,
    headers: HeaderMap,
    Extension(actor): Extension<Actor>,
    ApiPath(id): ApiPath<i64>,
    ApiJson(input): ApiJson<SyncInput>,
) -> Result<Json<Value>, ApiError> {
    let base = base_url(&app, &headers);
    let core = app.core.clone();
    let sync = blocking(move || core.update_sync(&actor, id, input)).await?;
    app.syncs.changed();
    Ok(Json(render(&sync, &base)))
}

pub async fn delete(
    State(app): State<App>,
    Extension(actor): Extension<Actor>,
    ApiPath(id): ApiPath<i64>,
) -> Result<StatusCode, ApiError> {
    let core = app.core.clone();
    blocking(move || core.delete_sync(&actor, id)).await?;
    app.syncs.changed();
    Ok(StatusCode::NO_CONTENT)
}

pub async fn status(
    State(app): State<App>,
    Extension(actor): Extension<Actor>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<Value>, ApiError> {
    let (view, sync_password) = blocking(move || {
        let sync = app.core.sync(id)?;
        let mut view = crate::sync::actions::status(&app, &sync)?;
        if actor.require_admin().is_err() {
            view.hide_settings(&sync);
        }
        Ok((view, sync.password.0))
    })
    .await?;
    Ok(Json(json!({
        "connected": view.connected,
        "reason": view.reason,
        "notice": view.notice,
        "password_notice": crmsync_sync::channel::weak_password_notice(&sync_password),
        "rejected_packets": view.rejected_packets,
        "last_run": view.state.last_run_ms.map(format_ms),
        "last_success": view.state.last_success_ms.map(format_ms),
        "pending_out": view.pending_out,
        "pending_in": view.state.pending_in,
        "sent_seq": view.state.sent_seq,
        "received_seq": view.state.received_seq,
        "last_change_seq": view.last_change_seq,
        "last_error": view.state.last_error,
        "peer_instance": view.state.peer_instance,
        "held": { "quarantine": view.held_quarantine, "mass_delete": view.held_mass_delete,
                  "waiting_links": view.waiting_links },
        "peer_clock_offset_ms": view.peer_clock_offset_ms,
        "clock_warning": view.clock_warning,
        "user_match_warning": view.user_match_warning,
        "numbering": view.numbering.iter().map(|n| json!({
            "field_no": n.field_no,
            "numbers_left": n.numbers_left,
            "last_error": n.last_error,
        })).collect::<Vec<_>>(),
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewSyncField {
    field_no: FieldNo,
    #[serde(default = "default_direction")]
    direction: Direction,
    remote_field_no: Option<FieldNo>,
    /// This field's own conflict rule (B-02); absent = the sync's.
    conflict_policy: Option<ConflictPolicy>,
}

fn default_direction() -> Direction {
    Direction::Both
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncFieldChange {
    direction: Option<Direction>,
    /// `null` removes the mapping; absent keeps it.
    #[serde(default, deserialize_with = "present")]
    remote_field_no: Option<Option<FieldNo>>,
    /// `null` goes back to the sync's rule; absent keeps it.
    #[serde(default, deserialize_with = "present")]
    conflict_policy: Option<Option<ConflictPolicy>>,
}

fn present<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

pub async fn list_fields(
    State(app): State<App>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<Value>, ApiError> {
    let fields = blocking(move || app.core.sync_fields(id)).await?;
    Ok(Json(json!({ "fields": fields })))
}

pub async fn add_field(
    State(app): State<App>,
    Extension(actor): Extension<Actor>,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<NewSyncField>,
) -> Result<(StatusCode, Json<SyncField>), ApiError> {
    let core = app.core.clone();
    let field = blocking(move || {
        core.add_sync_field(
            &actor,
            id,
            body.field_no,
            body.direction,
            body.remote_field_no,
            body.conflict_policy,
        )
    })
    .await?;
    app.syncs.changed();
    Ok((StatusCode::CREATED, Json(field)))
}

pub async fn update_field(
    State(app): State<App>,
    Extension(actor): Extension<Actor>,
    ApiPath((id, field_id)): ApiPath<(i64, i64)>,
    ApiJson(body): ApiJson<SyncFieldChange>,
) -> Result<Json<SyncField>, ApiError> {
    let core = app.core.clone();
    let (before, field) = blocking(move || {
        let patch = SyncFieldPatch {
            direction: body.direction,
            remote_field_no: body.remote_field_no,
            conflict_policy: body.conflict_policy,
        };
        let before = core.sync_field(id, field_id)?;
        Ok((before, core.update_sync_field(&actor, id, field_id, patch)?))
    })
    .await?;
    app.syncs.changed();
    crate::sync::actions::catch_up_reopened(&app, &before, &field).await;
    Ok(Json(field))
}

pub async fn delete_field(
    State(app): State<App>,
    Extension(actor): Extension<Actor>,
    ApiPath((id, field_id)): ApiPath<(i64, i64)>,
) -> Result<StatusCode, ApiError> {
    let core = app.core.clone();
    blocking(move || core.delete_sync_field(&actor, id, field_id)).await?;
    app.syncs.changed();
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewSyncTable {
    table_id: crmsync_domain::TableId,
    #[serde(default = "default_direction")]
    direction: Direction,
    /// On the passive side: the active side's table, whose fields pair by name.
    remote_table_id: Option<crmsync_domain::TableId>,
}

/// The whole tables of a sync (S-02).
pub async fn list_tables(
    State(app): State<App>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<Value>, ApiError> {
    let tables = blocking(move || app.core.sync_tables(id)).await?;
    Ok(Json(json!({ "tables": tables })))
}

/// Adds a whole table: answers the entry with the table's sync fields and, on the passive
/// side, why any of them could not be paired by name with the active side's table.
pub async fn add_table(
    State(app): State<App>,
    Extension(actor): Extension<Actor>,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<NewSyncTable>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let app2 = app.clone();
    let (entry, fields, problems) = blocking(move || {
        crate::sync::passive::check_remote_table(&app2, id, body.remote_table_id)?;
        let (entry, fields) = app2.core.add_sync_table(
            &actor,
            id,
            body.table_id,
            body.direction,
            body.remote_table_id,
        )?;
        let (_, problems) = crmsync_sync::mapping::pair_by_name(
            fields.clone(),
            std::slice::from_ref(&entry),
            &app2.core.tables()?,
            crate::sync::passive::peer_catalog(&app2, id)?.as_ref(),
        );
        Ok((entry, fields, problems))
    })
    .await?;
    app.syncs.changed();
    let mut body = serde_json::to_value(&entry).unwrap_or_default();
    body["fields"] = json!(fields);
    body["problems"] = json!(problems);
    Ok((StatusCode::CREATED, Json(body)))
}

/// Takes a whole table out of the sync, with its fields.
pub async fn delete_table(
    State(app): State<App>,
    Extension(actor): Extension<Actor>,
    ApiPath((id, entry_id)): ApiPath<(i64, i64)>,
) -> Result<StatusCode, ApiError> {
    let core = app.core.clone();
    blocking(move || core.delete_sync_table(&actor, id, entry_id)).await?;
    app.syncs.changed();
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogParams {
    after: Option<i64>,
    limit: Option<usize>,
}

pub async fn log(
    State(app): State<App>,
    Extension(actor): Extension<Actor>,
    ApiPath(id): ApiPath<i64>,
    ApiQuery(params): ApiQuery<LogParams>,
) -> Result<Json<Value>, ApiError> {
    let (sync, entries) = blocking(move || {
        let entries =
            app.core
                .sync_log(id, params.after.unwrap_or(0), params.limit.unwrap_or(100))?;
        Ok((app.core.sync(id)?, entries))
    })
    .await?;
    let admin = actor.require_admin().is_ok();
    let entries: Vec<Value> = entries
        .iter()
        .map(|e| {
            let mut v = serde_json::to_value(e).unwrap_or_default();
            v["at"] = json!(format_ms(e.at_ms));
            if !admin {
                v["message"] = json!(sync.without_settings(&e.message));
            }
            v
        })
        .collect();
    Ok(Json(json!({ "entries": entries })))
}

/// Starts an initial sync of the whole sync (S-17).
pub async fn initial(
    State(app): State<App>,
    Extension(actor): Extension<Actor>,
    ApiPath(id): ApiPath<i64>,
) -> Result<(StatusCode, Json<JobStatus>), ApiError> {
    actor.require_admin()?;
    start_initial(app, id, None).await
}

/// Starts an initial sync of one configured field (S-22).
pub async fn initial_field(
    State(app): State<App>,
    Extension(actor): Extension<Actor>,
    ApiPath((id, field_id)): ApiPath<(i64, i64)>,
) -> Result<(StatusCode, Json<JobStatus>), ApiError> {
    actor.require_admin()?;
    start_initial(app, id, Some(field_id)).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatchRequest {
    /// The key field: this (active) side's field number, configured in the sync.
    field_no: FieldNo,
    /// Only preview (the default); `false` pairs the records and starts the initial sync.
    #[serde(default = "preview_only")]
    dry_run: bool,
}

fn preview_only() -> bool {
    true
}

/// An initial sync that pairs records by a key field (B-05): a preview, or the real run.
pub async fn match_by_key(
    State(app): State<App>,
    Extension(actor): Extension<Actor>,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<MatchRequest>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    // Even a preview reads the other side's records.
    actor.require_admin()?;
    let (plan, job) =
        crate::sync::matching::match_by_key(&app, id, body.field_no, body.dry_run).await?;
    let status = match job {
        Some(_) => StatusCode::ACCEPTED,
        None => StatusCode::OK,
    };
    Ok((
        status,
        Json(json!({ "dry_run": body.dry_run, "plan": plan, "job": job })),
    ))
}

async fn start_initial(
    app: App,
    sync_id: i64,
    field_id: Option<i64>,
) -> Result<(StatusCode, Json<JobStatus>), ApiError> {
    let job = crate::sync::actions::start_initial(&app, sync_id, field_id).await?;
    Ok((StatusCode::ACCEPTED, Json(job)))
}

pub async fn job(
    State(app): State<App>,
    ApiPath(id): ApiPath<u64>,
) -> Result<Json<JobStatus>, ApiError> {
    app.jobs.get(id).map(Json).ok_or_else(|| {
        ApiError::not_found(format!(
            "there is no job {id} (jobs are forgotten on restart)"
        ))
    })
}

/// The per-record "Sync" action (S-24): sends the record again over every sync that
/// sends its table.
pub async fn sync_record(
    State(app): State<App>,
    ApiPath((table_id, id)): ApiPath<(i64, i64)>,
) -> Result<Json<Value>, ApiError> {
    let queued = blocking(move || crate::sync::actions::sync_record(&app, table_id, id)).await?;
    let queued: Vec<Value> = queued
        .into_iter()
        .map(|(sync_id, name)| json!({ "sync_id": sync_id, "name": name }))
        .collect();
    Ok(Json(json!({ "queued": queued })))
}

/// The peer's fields as it described them (on a passive side: the active side's catalogue,
/// to pick a field by name and number), with what keeps configured fields from travelling.
pub async fn catalog(
    State(app): State<App>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<Value>, ApiError> {
    let (catalog, problems) = blocking(move || {
        let sync = app.core.sync(id)?;
        let state = app.core.sync_state(id)?;
        let catalog: Value = state
            .peer_catalog
            .as_deref()
            .and_then(|c| serde_json::from_str(c).ok())
            .unwrap_or(Value::Null);
        let mapping = crate::sync::initial::mapping_for(&app, &sync)?;
        Ok((catalog, mapping.problems.clone()))
    })
    .await?;
    Ok(Json(
        json!({ "peer_fields": catalog, "problems": problems }),
    ))
}

/// Changes held back on this side: quarantined values and deletes awaiting approval.
pub async fn held(
    State(app): State<App>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<Value>, ApiError> {
    let held = blocking(move || {
        let held = crate::sync::held::list(&app, id)?;
        let sync = app.core.sync(id)?;
        let (tables, mapping) = (
            app.core.tables()?,
            crate::sync::initial::mapping_for(&app, &sync)?,
        );
        Ok(held
            .iter()
            .map(|h| {
                let mut v = serde_json::to_value(h).unwrap_or_default();
                v["at"] = json!(format_ms(h.at_ms));
                // How a person knows the record (its first text field), not only its uid.
                v["label"] = json!(crate::sync::held::held_label(&app, &tables, &mapping, h));
                v
            })
            .collect::<Vec<Value>>())
    })
    .await?;
    Ok(Json(json!({ "held": held })))
}

/// Applies a held change: a person approves held deletes, or retries a quarantined value.
pub async fn approve_held(
    State(app): State<App>,
    Extension(actor): Extension<Actor>,
    ApiPath((id, held_id)): ApiPath<(i64, i64)>,
) -> Result<Json<Value>, ApiError> {
    blocking(move || {
        actor.require_admin()?;
        let again = crate::sync::held::approve(&app, id, held_id)?;
        Ok(Json(json!({ "applied": !again })))
    })
    .await
}

pub async fn discard_held(
    State(app): State<App>,
    Extension(actor): Extension<Actor>,
    ApiPath((id, held_id)): ApiPath<(i64, i64)>,
) -> Result<StatusCode, ApiError> {
    blocking(move || {
        actor.require_admin()?;
        crate::sync::held::discard(&app, id, held_id)
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Drift check (B-16): what differs between this (active) side and its peer.
pub async fn drift(
    State(app): State<App>,
    Extension(actor): Extension<Actor>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<Value>, ApiError> {
    actor.require_admin()?;
    let found = crate::sync::drift::check_named(&app, id)
        .await
        .map_err(drift_error)?;
    Ok(Json(json!(found)))
}

/// Drift repair (B-16): this side's values win for records that differ.
pub async fn repair_drift(
    State(app): State<App>,
    Extension(actor): Extension<Actor>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<Value>, ApiError> {
    actor.require_admin()?;
    let repaired = crate::sync::drift::repair(&app, id, actor)
        .await
        .map_err(drift_error)?;
    Ok(Json(json!(repaired)))
}

fn drift_error(failure: crate::sync::active::Failure) -> ApiError {
    ApiError::new(StatusCode::CONFLICT, "drift_check_failed", failure.0)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewWriterKey {
    label: String,
}

/// Issues a key for a program that writes packets into a folder sync's download folder (a
/// web shop): shown this once, kept only to open its files, revocable.
pub async fn issue_writer_key(
    State(app): State<App>,
    Extension(actor): Extension<Actor>,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<NewWriterKey>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    actor.require_admin()?;
    let label = body.label.trim().to_string();
    if label.is_empty() {
        return Err(ApiError::bad_request("label: say what the key is for"));
    }
    let app2 = app.clone();
    let key = blocking(move || {
        let logged = label.clone();
        let key = crate::sync::folder_channel::change(&app2, id, |channel, now| {
            channel.issue_writer_key(&label, now)
        })?;
        let sync = app2.core.sync(id)?;
        app2.core.log_sync(
            &sync,
            "auth",
            format!("issued writer key {} for \"{logged}\"", key.id()),
            None,
        )?;
        Ok(key)
    })
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "id": key.id(),
            "key": key.to_hex(),
            "notice": "shown this once: give it to the writing program now",
        })),
    ))
}

pub async fn writer_keys(
    State(app): State<App>,
    Extension(actor): Extension<Actor>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<Value>, ApiError> {
    actor.require_admin()?;
    let keys = blocking(move || crate::sync::folder_channel::writer_keys(&app, id)).await?;
    Ok(Json(json!({ "keys": keys })))
}

pub async fn revoke_writer_key(
    State(app): State<App>,
    Extension(actor): Extension<Actor>,
    ApiPath((id, key_id)): ApiPath<(i64, String)>,
) -> Result<StatusCode, ApiError> {
    actor.require_admin()?;
    blocking(move || {
        let wanted = key_id.clone();
        let revoked = crate::sync::folder_channel::change(&app, id, |channel, _| {
            channel.revoke_writer_key(&wanted)
        })?;
        if !revoked {
            return Err(crmsync_domain::DomainError::not_found(format!(
                "no writer key {key_id} in sync {id}"
            )));
        }
        let sync = app.core.sync(id)?;
        app.core
            .log_sync(&sync, "auth", format!("revoked writer key {key_id}"), None)
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
