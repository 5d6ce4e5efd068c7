//! Changing what a sync carries from its page: fields, whole tables, directions, rules.

use super::*;

pub(super) async fn add_field(
    State(app): State<App>,
    Admin(signed): Admin,
    Path(sync_id): Path<i64>,
    Form(form): Form<Vec<(String, String)>>,
) -> WebResult<Response> {
    let form = Submitted(form);
    let lang = signed.page.lang;
    check_csrf(&signed.page, &form)?;
    let field_no: i64 = form
        .text("field_no")
        .parse()
        .map_err(|_| WebError::new(lang, StatusCode::UNPROCESSABLE_ENTITY, "choose a field"))?;
    let direction = parse_direction(&form.text("direction"));
    // Typed wins over picked: a number the catalogue does not show yet.
    let typed = form.text("remote_typed");
    let remote = if typed.is_empty() {
        form.text("remote_field_no")
    } else {
        typed
    };
    let remote_field_no = if remote.is_empty() {
        None
    } else {
        Some(remote.parse().map_err(|_| {
            WebError::new(
                lang,
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("\"{remote}\" is not a field number"),
            )
        })?)
    };
    let (core, actor) = (app.core.clone(), signed.actor);
    work(lang, move || {
        core.add_sync_field(&actor, sync_id, field_no, direction, remote_field_no, None)
    })
    .await?;
    app.syncs.changed();
    Ok(Redirect::to(&format!("/syncs/{sync_id}")).into_response())
}

/// Adds a whole table to the sync (S-02).
pub(super) async fn add_table(
    State(app): State<App>,
    Admin(signed): Admin,
    Path(sync_id): Path<i64>,
    Form(form): Form<Vec<(String, String)>>,
) -> WebResult<Response> {
    let form = Submitted(form);
    let lang = signed.page.lang;
    check_csrf(&signed.page, &form)?;
    let table_id = optional_number(lang, &form.text("table_id"), "table")?
        .ok_or_else(|| WebError::new(lang, StatusCode::UNPROCESSABLE_ENTITY, "choose a table"))?;
    let direction = parse_direction(&form.text("direction"));
    // Typed wins over picked: a number the catalogue does not show yet.
    let typed = form.text("remote_table_typed");
    let remote = if typed.is_empty() {
        form.text("remote_table_id")
    } else {
        typed
    };
    let remote_table_id = optional_number(lang, &remote, "table")?;
    let (app2, actor) = (app.clone(), signed.actor);
    work(lang, move || {
        crate::sync::passive::check_remote_table(&app2, sync_id, remote_table_id)?;
        app2.core
            .add_sync_table(&actor, sync_id, table_id, direction, remote_table_id)
    })
    .await?;
    app.syncs.changed();
    Ok(Redirect::to(&format!("/syncs/{sync_id}")).into_response())
}

pub(super) async fn delete_table(
    State(app): State<App>,
    Admin(signed): Admin,
    Path((sync_id, entry)): Path<(i64, i64)>,
    Form(form): Form<Vec<(String, String)>>,
) -> WebResult<Response> {
    remove_entry(app, signed, sync_id, form, move |core, actor| {
        core.delete_sync_table(actor, sync_id, entry)
    })
    .await
}

/// Removes a field or a whole table from a sync from a form on its page, and goes back.
pub(super) async fn remove_entry(
    app: App,
    signed: Signed,
    sync_id: i64,
    form: Vec<(String, String)>,
    remove: impl FnOnce(&crate::app::Core, &crmsync_domain::Actor) -> Result<(), DomainError>
    + Send
    + 'static,
) -> WebResult<Response> {
    check_csrf(&signed.page, &Submitted(form))?;
    let (core, actor) = (app.core.clone(), signed.actor);
    work(signed.page.lang, move || remove(&core, &actor)).await?;
    app.syncs.changed();
    Ok(Redirect::to(&format!("/syncs/{sync_id}")).into_response())
}

/// The direction icon, clicked: both → upload → download → off → both.
pub(super) async fn turn_direction(
    State(app): State<App>,
    Admin(signed): Admin,
    Path((sync_id, entry)): Path<(i64, i64)>,
    Form(form): Form<Vec<(String, String)>>,
) -> WebResult<Response> {
    patch_field(app, signed, sync_id, entry, Submitted(form), |field, _| {
        let next = match field.direction {
            Direction::Both => Direction::Upload,
            Direction::Upload => Direction::Download,
            Direction::Download => Direction::Off,
            Direction::Off => Direction::Both,
        };
        SyncFieldPatch {
            direction: Some(next),
            ..Default::default()
        }
    })
    .await
}

/// Changes one field entry of a sync from a form on the sync's page, and goes back there.
pub(super) async fn patch_field(
    app: App,
    signed: Signed,
    sync_id: i64,
    entry: i64,
    form: Submitted,
    patch: impl FnOnce(&crmsync_domain::sync::SyncField, &Submitted) -> SyncFieldPatch + Send + 'static,
) -> WebResult<Response> {
    check_csrf(&signed.page, &form)?;
    let (core, actor) = (app.core.clone(), signed.actor);
    let (before, after) = work(signed.page.lang, move || {
        let before = core.sync_field(sync_id, entry)?;
        let after = core.update_sync_field(&actor, sync_id, entry, patch(&before, &form))?;
        Ok((before, after))
    })
    .await?;
    app.syncs.changed();
    crate::sync::actions::catch_up_reopened(&app, &before, &after).await;
    Ok(Redirect::to(&format!("/syncs/{sync_id}")).into_response())
}

/// A field's own conflict rule (B-02), on the active side; "" goes back to the sync's.
pub(super) async fn set_field_conflict_policy(
    State(app): State<App>,
    Admin(signed): Admin,
    Path((sync_id, entry)): Path<(i64, i64)>,
    Form(form): Form<Vec<(String, String)>>,
) -> WebResult<Response> {
    patch_field(app, signed, sync_id, entry, Submitted(form), |_, form| {
        let policy = match form.text("conflict_policy").as_str() {
            "newer" => Some(ConflictPolicy::Newer),
            "this_side" => Some(ConflictPolicy::ThisSide),
            "other_side" => Some(ConflictPolicy::OtherSide),
            _ => None,
        };
        SyncFieldPatch {
            conflict_policy: Some(policy),
            ..Default::default()
        }
    })
    .await
}

pub(super) async fn delete_field(
    State(app): State<App>,
    Admin(signed): Admin,
    Path((sync_id, entry)): Path<(i64, i64)>,
    Form(form): Form<Vec<(String, String)>>,
) -> WebResult<Response> {
    remove_entry(app, signed, sync_id, form, move |core, actor| {
        core.delete_sync_field(actor, sync_id, entry)
    })
    .await
}
