//! Initial sync matched by a key field (B-05): the preview, then the run.

use super::*;

#[derive(Template)]
#[template(path = "match.html")]
pub(super) struct MatchPage {
    page: Page,
    sync: SyncConfig,
    /// The sync's fields that can be a key: (number, "Table · Name").
    keys: Vec<(i64, String)>,
    key: i64,
    plan: Option<crmsync_sync::matching::MatchPlan>,
    /// The plan's overwrites each way, under their headings.
    overwrites: Vec<(String, Vec<OverwriteRow>)>,
}

/// One field of a paired record that the match overwrites, as the preview shows it.
pub(super) struct OverwriteRow {
    key: String,
    field_no: i64,
    here: String,
    there: String,
}

/// A travelling value as a person reads it: text without quotes, empty for none.
pub(super) fn plain(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    }
}

#[derive(serde::Deserialize, Default)]
pub(super) struct KeyParam {
    field: Option<i64>,
}

/// Initial sync matched by a key field (B-05): the preview.
pub(super) async fn match_preview(
    State(app): State<App>,
    Admin(signed): Admin,
    Path(sync_id): Path<i64>,
    Query(params): Query<KeyParam>,
) -> WebResult<Response> {
    let page = signed.page.in_section("syncs");
    let lang = page.lang;
    let app2 = app.clone();
    let (sync, keys) = work(lang, move || {
        let sync = app2.core.sync(sync_id)?;
        let tables = app2.core.tables()?;
        let keys = app2
            .core
            .sync_fields(sync_id)?
            .iter()
            .filter_map(|f| {
                tables.iter().find_map(|t| {
                    t.field(f.field_no)
                        .map(|field| (field.no, format!("{} · {}", t.name, field.name)))
                })
            })
            .collect::<Vec<_>>();
        Ok((sync, keys))
    })
    .await?;
    let plan = match params.field {
        Some(field) => Some(
            crate::sync::matching::match_by_key(&app, sync_id, field, true)
                .await
                .map_err(|e| WebError::domain(lang, e))?
                .0,
        ),
        None => None,
    };
    let rows = |list: &[crmsync_sync::matching::Overwrite]| {
        list.iter()
            .flat_map(|o| {
                o.fields.iter().map(|f| OverwriteRow {
                    key: o.key.clone(),
                    field_no: f.field_no,
                    here: plain(&f.here),
                    there: plain(&f.there),
                })
            })
            .collect::<Vec<_>>()
    };
    let overwrites = plan
        .as_ref()
        .map(|p| {
            vec![
                (
                    lang.t("match-overwrite-there"),
                    rows(&p.overwrite_there.first),
                ),
                (
                    lang.t("match-overwrite-here"),
                    rows(&p.overwrite_here.first),
                ),
            ]
        })
        .unwrap_or_default();
    Ok(render(&MatchPage {
        overwrites,
        key: params.field.unwrap_or_default(),
        page,
        sync,
        keys,
        plan,
    }))
}

/// Pairs the records and starts the initial sync; its progress shows on the sync's page.
pub(super) async fn match_run(
    State(app): State<App>,
    Admin(signed): Admin,
    Path(sync_id): Path<i64>,
    Form(form): Form<Vec<(String, String)>>,
) -> WebResult<Response> {
    let form = Submitted(form);
    check_csrf(&signed.page, &form)?;
    let lang = signed.page.lang;
    signed
        .actor
        .require_admin()
        .map_err(|e| WebError::domain(lang, e))?;
    let field = form.text("field").parse().unwrap_or_default();
    let (_, job) = crate::sync::matching::match_by_key(&app, sync_id, field, false)
        .await
        .map_err(|e| WebError::domain(lang, e))?;
    let job = job.map(|j| j.id).unwrap_or_default();
    Ok(Redirect::to(&format!("/syncs/{sync_id}?job={job}")).into_response())
}
