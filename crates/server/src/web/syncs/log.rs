//! The sync log with filters, and decisions on held changes.

use super::*;

pub(super) struct LogRow {
    at: String,
    kind: String,
    message: String,
    /// The records a packet's entry lists (S-31): (text, link to the record here or "").
    records: Vec<(String, String)>,
}

/// The records an entry's detail lists: received ones link to the record here.
pub(super) fn listed_records(detail: Option<&serde_json::Value>) -> Vec<(String, String)> {
    let Some(records) = detail.and_then(|d| d["records"].as_array()) else {
        return Vec::new();
    };
    records
        .iter()
        .map(
            |r| match (r["table_id"].as_i64(), r["record_id"].as_i64()) {
                (Some(table), Some(id)) => (
                    format!("#{id} ({})", r["uid"].as_str().unwrap_or_default()),
                    format!("/tables/{table}/records/{id}"),
                ),
                _ => (
                    r["uid"].as_str().unwrap_or_default().to_string(),
                    String::new(),
                ),
            },
        )
        .collect()
}

#[derive(Template)]
#[template(path = "log.html")]
pub(super) struct LogPage {
    page: Page,
    sync: SyncConfig,
    kind: String,
    entries: Vec<LogRow>,
}

#[derive(serde::Deserialize, Default)]
pub(super) struct LogParams {
    kind: Option<String>,
}

/// The most recent entries shown on the log page.
pub(super) const LOG_SHOWN: usize = 300;

pub(super) async fn log(
    State(app): State<App>,
    signed: Signed,
    Path(sync_id): Path<i64>,
    Query(params): Query<LogParams>,
) -> WebResult<Response> {
    let page = signed.page.in_section("syncs");
    let kind = params.kind.unwrap_or_else(|| "all".into());
    let wanted = kind.clone();
    let (sync, entries) = work(page.lang, move || {
        let sync = app.core.sync(sync_id)?;
        let mut kept: Vec<SyncLogEntry> = Vec::new();
        let mut after = 0;
        loop {
            let batch = app.core.sync_log(sync_id, after, 1000)?;
            let Some(last) = batch.last() else { break };
            after = last.id;
            kept.extend(batch.into_iter().filter(|e| match wanted.as_str() {
                "errors" => e.kind == "error" || e.kind == "auth",
                "conflicts" => e.kind == "conflict",
                _ => true,
            }));
            if kept.len() > LOG_SHOWN {
                kept.drain(..kept.len() - LOG_SHOWN);
            }
        }
        kept.reverse();
        Ok((sync, kept))
    })
    .await?;
    let admin = page.is_admin();
    let entries = entries
        .into_iter()
        .map(|e| {
            let message = match &e.detail {
                Some(detail) if e.kind == "conflict" => format!("{} — {detail}", e.message),
                _ => e.message,
            };
            LogRow {
                at: format_ms(e.at_ms),
                records: listed_records(e.detail.as_ref()),
                message: match admin {
                    true => message,
                    false => sync.without_settings(&message),
                },
                kind: e.kind,
            }
        })
        .collect();
    Ok(render(&LogPage {
        page,
        sync,
        kind,
        entries,
    }))
}

pub(super) async fn decide_held(
    app: App,
    signed: Signed,
    sync_id: i64,
    held_id: i64,
    form: Vec<(String, String)>,
    approve: bool,
) -> WebResult<Response> {
    check_csrf(&signed.page, &Submitted(form))?;
    let actor = signed.actor;
    work(signed.page.lang, move || {
        actor.require_admin()?;
        if approve {
            crate::sync::held::approve(&app, sync_id, held_id).map(|_| ())
        } else {
            crate::sync::held::discard(&app, sync_id, held_id)
        }
    })
    .await?;
    Ok(Redirect::to(&format!("/syncs/{sync_id}")).into_response())
}

pub(super) async fn approve_held(
    State(app): State<App>,
    Admin(signed): Admin,
    Path((sync_id, held_id)): Path<(i64, i64)>,
    Form(form): Form<Vec<(String, String)>>,
) -> WebResult<Response> {
    decide_held(app, signed, sync_id, held_id, form, true).await
}

pub(super) async fn discard_held(
    State(app): State<App>,
    Admin(signed): Admin,
    Path((sync_id, held_id)): Path<(i64, i64)>,
    Form(form): Form<Vec<(String, String)>>,
) -> WebResult<Response> {
    decide_held(app, signed, sync_id, held_id, form, false).await
}
