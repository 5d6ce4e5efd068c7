//! A record's page: shown with its form and history, found by uid (S-23), deleted,
//! restored, and sent again over a sync (S-24).

use super::form::{Input, form_context, inputs};
use super::history::{HistoryEntry, Instances, history};
use crate::app::App;
use crate::web::{Page, Signed, Submitted, WebResult, check_csrf, render, work};
use askama::Template;
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use crmsync_domain::{Record, RecordStatus, Table};

#[derive(Template)]
#[template(path = "record.html")]
pub(super) struct RecordPage {
    pub(super) page: Page,
    pub(super) table: Table,
    pub(super) record: Option<Record>,
    pub(super) inputs: Vec<Input>,
    pub(super) history: Vec<HistoryEntry>,
    pub(super) error: Option<String>,
    pub(super) notice: Option<String>,
    pub(super) synced: bool,
    pub(super) remote: Vec<String>,
    pub(super) deleted: bool,
}

#[derive(serde::Deserialize, Default)]
pub(super) struct NoticeParam {
    notice: Option<String>,
}

pub(super) async fn record(
    State(app): State<App>,
    signed: Signed,
    Path((table_id, id)): Path<(i64, i64)>,
    Query(params): Query<NoticeParam>,
) -> WebResult<Response> {
    let page = signed.page.in_section("tables");
    let lang = page.lang;
    let (ctx, record, inputs, changes, syncs, remote, instances) = work(lang, move || {
        let ctx = form_context(&app, table_id)?;
        let record = app.core.record(table_id, id)?;
        let inputs = inputs(&app, &ctx, Some(&record), None)?;
        let changes = app.core.history(table_id, id)?;
        let all = app.core.syncs()?;
        let mut peers = Vec::new();
        for sync in &all {
            if let Some(peer) = app
                .core
                .sync_state(sync.id)?
                .peer_instance
                .and_then(|p| uuid::Uuid::parse_str(&p).ok())
            {
                peers.push((peer, sync.name.clone()));
            }
        }
        let instances = Instances {
            here: app.instance_id,
            peers,
        };
        let syncs: Vec<(i64, String)> = all.into_iter().map(|s| (s.id, s.name)).collect();
        let remote = crate::sync::actions::remote_copies(&app, table_id, record.uid)?
            .into_iter()
            .map(|(_, base, wire, uid)| format!("{base}/tables/{wire}/uid/{uid}"))
            .collect();
        Ok((ctx, record, inputs, changes, syncs, remote, instances))
    })
    .await?;
    let notice = match params.notice.as_deref() {
        Some("saved") => Some(lang.t("saved")),
        Some(other) if other.starts_with("queued:") => other[7..]
            .parse::<i64>()
            .ok()
            .map(|n| lang.n("sync-record-done", "count", n)),
        _ => None,
    };
    Ok(render(&RecordPage {
        inputs,
        history: history(lang, &ctx.table, &changes, &ctx.users, &syncs, &instances),
        deleted: record.status == RecordStatus::Deleted,
        synced: ctx.synced,
        table: ctx.table,
        record: Some(record),
        error: None,
        notice,
        remote,
        page,
    }))
}

/// The record with this uid: where another instance's "open on the active side" lands.
pub(super) async fn by_uid(
    State(app): State<App>,
    signed: Signed,
    Path((table_id, uid)): Path<(i64, uuid::Uuid)>,
) -> WebResult<Response> {
    let record = work(signed.page.lang, move || {
        app.core.record_by_uid(table_id, uid)
    })
    .await?;
    Ok(Redirect::to(&format!("/tables/{table_id}/{}", record.id)).into_response())
}

async fn set_status(
    app: App,
    signed: Signed,
    table_id: i64,
    id: i64,
    form: Vec<(String, String)>,
    status: RecordStatus,
) -> WebResult<Response> {
    check_csrf(&signed.page, &Submitted(form))?;
    let actor = signed.actor;
    work(signed.page.lang, move || {
        app.core.set_status(&actor, table_id, id, status)
    })
    .await?;
    Ok(Redirect::to(&format!("/tables/{table_id}/{id}")).into_response())
}

pub(super) async fn delete_record(
    State(app): State<App>,
    signed: Signed,
    Path((table_id, id)): Path<(i64, i64)>,
    Form(form): Form<Vec<(String, String)>>,
) -> WebResult<Response> {
    set_status(app, signed, table_id, id, form, RecordStatus::Deleted).await
}

pub(super) async fn restore_record(
    State(app): State<App>,
    signed: Signed,
    Path((table_id, id)): Path<(i64, i64)>,
    Form(form): Form<Vec<(String, String)>>,
) -> WebResult<Response> {
    set_status(app, signed, table_id, id, form, RecordStatus::Active).await
}

pub(super) async fn sync_record(
    State(app): State<App>,
    signed: Signed,
    Path((table_id, id)): Path<(i64, i64)>,
    Form(form): Form<Vec<(String, String)>>,
) -> WebResult<Response> {
    let form = Submitted(form);
    check_csrf(&signed.page, &form)?;
    let queued = work(signed.page.lang, move || {
        crate::sync::actions::sync_record(&app, table_id, id)
    })
    .await?;
    let back = match form.get("back") {
        Some("grid") => format!("/tables/{table_id}?notice=queued:{}", queued.len()),
        _ => format!("/tables/{table_id}/{id}?notice=queued:{}", queued.len()),
    };
    Ok(Redirect::to(&back).into_response())
}
