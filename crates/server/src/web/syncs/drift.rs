//! Drift check and repair (B-16).

use super::*;

#[derive(Template)]
#[template(path = "drift.html")]
pub(super) struct DriftPage {
    page: Page,
    sync: SyncConfig,
    found: crate::sync::drift::Found,
    notice: Option<String>,
}

#[derive(serde::Deserialize, Default)]
pub(super) struct RepairedParam {
    repaired: Option<i64>,
}

/// Drift check (B-16), from the active side of a sync.
pub(super) async fn drift(
    State(app): State<App>,
    Admin(signed): Admin,
    Path(sync_id): Path<i64>,
    Query(params): Query<RepairedParam>,
) -> WebResult<Response> {
    let page = signed.page.in_section("syncs");
    let lang = page.lang;
    let app2 = app.clone();
    let sync = work(lang, move || app2.core.sync(sync_id)).await?;
    let found = crate::sync::drift::check_named(&app, sync_id)
        .await
        .map_err(|f| WebError::new(lang, StatusCode::CONFLICT, f.0))?;
    Ok(render(&DriftPage {
        notice: params
            .repaired
            .map(|n| lang.n("drift-repaired", "count", n)),
        page,
        sync,
        found,
    }))
}

pub(super) async fn repair_drift(
    State(app): State<App>,
    Admin(signed): Admin,
    Path(sync_id): Path<i64>,
    Form(form): Form<Vec<(String, String)>>,
) -> WebResult<Response> {
    check_csrf(&signed.page, &Submitted(form))?;
    let lang = signed.page.lang;
    signed
        .actor
        .require_admin()
        .map_err(|e| WebError::domain(lang, e))?;
    let repaired = crate::sync::drift::repair(&app, sync_id, signed.actor)
        .await
        .map_err(|f| WebError::new(lang, StatusCode::CONFLICT, f.0))?;
    Ok(Redirect::to(&format!(
        "/syncs/{sync_id}/drift?repaired={}",
        repaired.restamped
    ))
    .into_response())
}
