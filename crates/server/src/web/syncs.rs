//! Settings → Sync (S-12..S-15, S-17, S-22, S-31): the list of syncs with a green check
//! or a red mark and its reason, adding a sync with the fields the help page lists (the
//! transport's own appearing for that type), a sync's fields with direction icons,
//! numbers and the passive side's mapping, initial sync with a live progress bar, and the
//! log with filters.

use super::{Admin, Lang, Page, Signed, Submitted, WebError, WebResult, check_csrf, render, work};
use crate::app::App;
use askama::Template;
use axum::Form;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use crmsync_domain::sync::{
    ConflictPolicy, Direction, FtpSettings, LocalSettings, Mode, Secret, SyncConfig, SyncLogEntry,
    Transport, UserMatch,
};
use crmsync_domain::syncs::{SyncFieldPatch, SyncInput};
use crmsync_domain::value::format_ms;
use crmsync_domain::{DomainError, Table};
use crmsync_sync::Catalog;

pub fn router() -> Router<App> {
    Router::new()
        .route("/syncs", get(list).post(create))
        .route("/syncs/new", get(new))
        .route("/syncs/{sync}", get(detail))
        .route("/syncs/{sync}/edit", get(edit_form).post(save))
        .route("/syncs/{sync}/delete", post(delete))
        .route("/syncs/{sync}/fields", post(add_field))
        .route(
            "/syncs/{sync}/fields/{entry}/direction",
            post(turn_direction),
        )
        .route(
            "/syncs/{sync}/fields/{entry}/conflict",
            post(set_field_conflict_policy),
        )
        .route("/syncs/{sync}/fields/{entry}/delete", post(delete_field))
        .route("/syncs/{sync}/tables", post(add_table))
        .route("/syncs/{sync}/tables/{entry}/delete", post(delete_table))
        .route("/syncs/{sync}/initial", post(initial))
        .route("/syncs/{sync}/fields/{entry}/initial", post(initial_field))
        .route("/syncs/{sync}/log", get(log))
        .route("/syncs/{sync}/match", get(match_preview).post(match_run))
        .route("/syncs/{sync}/drift", get(drift))
        .route("/syncs/{sync}/drift/repair", post(repair_drift))
        .route("/syncs/{sync}/held/{held}/approve", post(approve_held))
        .route("/syncs/{sync}/held/{held}/discard", post(discard_held))
        .route("/jobs/{job}/progress", get(progress))
}

struct SyncRow {
    id: i64,
    name: String,
    mode: String,
    transport: String,
    connected: bool,
    reason: String,
    /// Beside the green check ("no fields yet").
    notice: String,
    /// The sync password is short (a notice, with the way to a generated one).
    weak_password: bool,
    last_run: String,
    pending_out: i64,
    pending_in: i64,
    /// "3 held changes", when there are any.
    held: String,
    clock_warning: String,
    user_match_warning: String,
    waiting_links: usize,
}

#[derive(Template)]
#[template(path = "syncs.html")]
struct SyncsPage {
    page: Page,
    syncs: Vec<SyncRow>,
}

fn mode_key(mode: Mode) -> &'static str {
    match mode {
        Mode::Active => "mode-active",
        Mode::Passive => "mode-passive",
    }
}

fn transport_key(transport: Transport) -> &'static str {
    match transport {
        Transport::Http => "transport-http",
        Transport::Local => "transport-local",
        Transport::Ftp => "transport-ftp",
    }
}

fn row(page: &Page, app: &App, sync: &SyncConfig) -> Result<SyncRow, DomainError> {
    let mut view = crate::sync::actions::status(app, sync)?;
    if !page.is_admin() {
        view.hide_settings(sync);
    }
    Ok(SyncRow {
        id: sync.id,
        name: sync.name.clone(),
        mode: page.t(mode_key(sync.mode)),
        transport: page.t(transport_key(sync.transport.kind())),
        connected: view.connected,
        reason: view.reason.unwrap_or_default(),
        notice: view.notice.clone().unwrap_or_default(),
        weak_password: view.weak_password,
        last_run: view
            .state
            .last_run_ms
            .map(format_ms)
            .unwrap_or_else(|| page.t("never")),
        pending_out: view.pending_out,
        pending_in: view.state.pending_in,
        clock_warning: view.clock_warning.clone().unwrap_or_default(),
        user_match_warning: view.user_match_warning.clone().unwrap_or_default(),
        waiting_links: view.waiting_links,
        held: match (view.held_quarantine + view.held_mass_delete) as i64 {
            0 => String::new(),
            n => page.lang.n("held-count", "count", n),
        },
    })
}

async fn list(State(app): State<App>, signed: Signed) -> WebResult<Response> {
    let page = signed.page.in_section("syncs");
    let page2 = page.clone();
    let syncs = work(page.lang, move || {
        app.core
            .syncs()?
            .iter()
            .map(|s| row(&page2, &app, s))
            .collect()
    })
    .await?;
    Ok(render(&SyncsPage { page, syncs }))
}

/// The add-sync form, with what was typed when it comes back with an error.
#[derive(Template)]
#[template(path = "sync_new.html")]
struct NewSyncPage {
    page: Page,
    form: Submitted,
    error: Option<String>,
    /// The sync being edited; none when adding one.
    editing: Option<i64>,
}

async fn new(Admin(signed): Admin) -> Response {
    render(&NewSyncPage {
        page: signed.page.in_section("syncs"),
        form: Submitted(vec![
            ("mode".into(), "active".into()),
            ("transport".into(), "http".into()),
            ("log".into(), "on".into()),
            ("period_seconds".into(), "5".into()),
            ("mass_delete_percent".into(), "20".into()),
            ("conflict_policy".into(), "newer".into()),
            ("ftp_port".into(), "21".into()),
        ]),
        error: None,
        editing: None,
    })
}

/// A sync's settings as the form shows them; passwords are never shown.
fn form_of(sync: &SyncConfig) -> Submitted {
    let mut fields: Vec<(String, String)> = vec![
        ("name".into(), sync.name.clone()),
        (
            "mode".into(),
            match sync.mode {
                Mode::Active => "active",
                Mode::Passive => "passive",
            }
            .into(),
        ),
        (
            "transport".into(),
            match sync.transport.kind() {
                Transport::Http => "http",
                Transport::Local => "local",
                Transport::Ftp => "ftp",
            }
            .into(),
        ),
        (
            "remote_url".into(),
            sync.remote_url.clone().unwrap_or_default(),
        ),
        ("period_seconds".into(), sync.period_seconds.to_string()),
        (
            "mass_delete_percent".into(),
            sync.mass_delete_percent.to_string(),
        ),
        (
            "conflict_policy".into(),
            sync.conflict_policy.as_str().into(),
        ),
        (
            "user_match".into(),
            match sync.user_match {
                UserMatch::Login => "login",
                UserMatch::FullName => "full_name",
                UserMatch::Id => "id",
            }
            .into(),
        ),
        ("ftp_port".into(), "21".into()),
    ];
    if sync.remote_access {
        fields.push(("remote_access".into(), "on".into()));
    }
    if sync.log {
        fields.push(("log".into(), "on".into()));
    }
    if let Some(local) = sync.transport.local() {
        fields.push(("local_upload_dir".into(), local.upload_dir.clone()));
        fields.push(("local_download_dir".into(), local.download_dir.clone()));
    }
    if let Some(ftp) = sync.transport.ftp() {
        fields.retain(|(k, _)| k != "ftp_port");
        fields.extend([
            ("ftp_host".into(), ftp.host.clone()),
            ("ftp_port".into(), ftp.port.to_string()),
            ("ftp_login".into(), ftp.login.clone()),
            ("ftp_upload_dir".into(), ftp.upload_dir.clone()),
            ("ftp_download_dir".into(), ftp.download_dir.clone()),
        ]);
        if ftp.tls {
            fields.push(("ftp_tls".into(), "on".into()));
        }
    }
    Submitted(fields)
}

async fn edit_form(
    State(app): State<App>,
    Admin(signed): Admin,
    Path(sync_id): Path<i64>,
) -> WebResult<Response> {
    let page = signed.page.in_section("syncs");
    let sync = work(page.lang, move || app.core.sync(sync_id)).await?;
    Ok(render(&NewSyncPage {
        page,
        form: form_of(&sync),
        error: None,
        editing: Some(sync_id),
    }))
}

/// Saves edited settings; a password left empty stays as it was.
async fn save(
    State(app): State<App>,
    Admin(signed): Admin,
    Path(sync_id): Path<i64>,
    Form(form): Form<Vec<(String, String)>>,
) -> WebResult<Response> {
    let form = Submitted(form);
    let page = signed.page.in_section("syncs");
    check_csrf(&page, &form)?;
    let actor = signed.actor;
    let app2 = app.clone();
    let outcome = tokio::task::spawn_blocking(move || {
        let saved = app2.core.sync(sync_id).and_then(|old| {
            let mut input = input_of(&form)?;
            if form.text("password").is_empty() {
                input.password = None;
            }
            if let (Some(ftp), Some(old_ftp)) = (input.ftp.as_mut(), old.transport.ftp())
                && ftp.password.0.is_empty()
            {
                ftp.password = old_ftp.password.clone();
            }
            app2.core.update_sync(&actor, sync_id, input)
        });
        (saved, form)
    })
    .await
    .map_err(|e| WebError::new(page.lang, StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    match outcome {
        (Ok(_), _) => {
            app.syncs.changed();
            Ok(Redirect::to(&format!("/syncs/{sync_id}")).into_response())
        }
        (Err(e @ (DomainError::Invalid { .. } | DomainError::Conflict(_))), mut form) => {
            form.0
                .retain(|(k, _)| k != "password" && k != "ftp_password");
            Ok((
                StatusCode::UNPROCESSABLE_ENTITY,
                render(&NewSyncPage {
                    page,
                    form,
                    error: Some(e.to_string()),
                    editing: Some(sync_id),
                }),
            )
                .into_response())
        }
        (Err(e), _) => Err(WebError::domain(page.lang, e)),
    }
}

fn input_of(form: &Submitted) -> Result<SyncInput, DomainError> {
    let mode = match form.text("mode").as_str() {
        "passive" => Mode::Passive,
        _ => Mode::Active,
    };
    let transport = match form.text("transport").as_str() {
        "local" => Transport::Local,
        "ftp" => Transport::Ftp,
        _ => Transport::Http,
    };
    let user_match = match form.text("user_match").as_str() {
        "full_name" => UserMatch::FullName,
        "id" => UserMatch::Id,
        _ => UserMatch::Login,
    };
    let period = form.text("period_seconds");
    let period_seconds = period.parse().map_err(|_| {
        DomainError::invalid(format!("period: \"{period}\" is not a number of seconds"))
    })?;
    let remote_url = form.text("remote_url");
    let share = form.text("mass_delete_percent");
    let mass_delete_percent =
        if share.is_empty() {
            None
        } else {
            Some(share.parse().map_err(|_| {
                DomainError::invalid(format!("\"{share}\" is not a share in percent"))
            })?)
        };
    let conflict_policy = match form.text("conflict_policy").as_str() {
        "this_side" => ConflictPolicy::ThisSide,
        "other_side" => ConflictPolicy::OtherSide,
        _ => ConflictPolicy::Newer,
    };
    Ok(SyncInput {
        mass_delete_percent,
        conflict_policy: Some(conflict_policy),
        name: Some(form.text("name")),
        mode: Some(mode),
        transport: Some(transport),
        remote_access: Some(form.checked("remote_access")),
        remote_url: (!remote_url.is_empty()).then_some(remote_url),
        password: Some(Secret(form.get("password").unwrap_or_default().to_string())),
        log: Some(form.checked("log")),
        period_seconds: Some(period_seconds),
        user_match: Some(user_match),
        local: (transport == Transport::Local).then(|| LocalSettings {
            upload_dir: form.text("local_upload_dir"),
            download_dir: form.text("local_download_dir"),
        }),
        ftp: (transport == Transport::Ftp)
            .then(|| {
                let port = form.text("ftp_port");
                let port = if port.is_empty() {
                    Ok(21)
                } else {
                    port.parse()
                };
                port.map(|port| FtpSettings {
                    host: form.text("ftp_host"),
                    port,
                    login: form.text("ftp_login"),
                    password: Secret(form.get("ftp_password").unwrap_or_default().to_string()),
                    upload_dir: form.text("ftp_upload_dir"),
                    download_dir: form.text("ftp_download_dir"),
                    tls: form.checked("ftp_tls"),
                })
            })
            .transpose()
            .map_err(|_| DomainError::invalid("ftp.port: a port is a number from 1 to 65535"))?,
    })
}

async fn create(
    State(app): State<App>,
    Admin(signed): Admin,
    Form(form): Form<Vec<(String, String)>>,
) -> WebResult<Response> {
    let form = Submitted(form);
    let page = signed.page.in_section("syncs");
    check_csrf(&page, &form)?;
    let actor = signed.actor;
    let app2 = app.clone();
    let outcome = tokio::task::spawn_blocking(move || {
        let created = input_of(&form).and_then(|input| app2.core.create_sync(&actor, input));
        (created, form)
    })
    .await
    .map_err(|e| WebError::new(page.lang, StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    match outcome {
        (Ok(sync), _) => {
            app.syncs.changed();
            Ok(Redirect::to(&format!("/syncs/{}", sync.id)).into_response())
        }
        (Err(e @ (DomainError::Invalid { .. } | DomainError::Conflict(_))), mut form) => {
            // Passwords are not sent back into the page.
            form.0
                .retain(|(k, _)| k != "password" && k != "ftp_password");
            Ok((
                StatusCode::UNPROCESSABLE_ENTITY,
                render(&NewSyncPage {
                    page,
                    form,
                    error: Some(e.to_string()),
                    editing: None,
                }),
            )
                .into_response())
        }
        (Err(e), _) => Err(WebError::domain(page.lang, e)),
    }
}

struct HeldRow {
    id: i64,
    kind: String,
    record: String,
    reason: String,
    at: String,
}

struct FieldRow {
    id: i64,
    table: String,
    name: String,
    no: i64,
    direction: &'static str,
    direction_label: String,
    remote: String,
    /// The field's own conflict rule, or "" for the sync's.
    conflict_policy: &'static str,
}

/// A table held whole by the sync (S-02).
struct WholeTableRow {
    id: i64,
    table: String,
    direction: &'static str,
    direction_label: String,
    /// On the passive side: the active side's table it pairs with.
    remote: String,
}

/// A field that can be added: (number, "Table · Name", table id).
struct Choice {
    no: i64,
    label: String,
    table_id: i64,
}

#[derive(Template)]
#[template(path = "sync.html")]
struct SyncPage {
    page: Page,
    sync: SyncConfig,
    status: SyncRow,
    endpoint_url: Option<String>,
    fields: Vec<FieldRow>,
    whole_tables: Vec<WholeTableRow>,
    tables: Vec<Table>,
    choices: Vec<Choice>,
    peer_fields: Vec<Choice>,
    /// The peer's tables (id, name), from its catalogue.
    peer_tables: Vec<(i64, String)>,
    problems: Vec<String>,
    job: Option<u64>,
    passive: bool,
    chart: String,
    sent_total: u64,
    received_total: u64,
    held: Vec<HeldRow>,
    /// Drift checks run from the active side.
    drift_check: bool,
    /// An initial sync matched by a key runs from the active side.
    match_by_key: bool,
}

#[derive(serde::Deserialize, Default)]
struct JobParam {
    job: Option<u64>,
}

fn arrow(direction: Direction) -> &'static str {
    match direction {
        Direction::Both => "⇄",
        Direction::Upload => "→",
        Direction::Download => "←",
        Direction::Off => "⏸",
    }
}

async fn detail(
    State(app): State<App>,
    signed: Signed,
    headers: HeaderMap,
    Path(sync_id): Path<i64>,
    Query(params): Query<JobParam>,
) -> WebResult<Response> {
    let page = signed.page.in_section("syncs");
    let page2 = page.clone();
    let base = crate::api::syncs::base_url(&app, &headers);
    let metrics = app.metrics.clone();
    let now_ms = app.core.now_ms();
    let view = work(page.lang, move || {
        let sync = app.core.sync(sync_id)?;
        let status = row(&page2, &app, &sync)?;
        let tables = app.core.tables()?;
        let configured = app.core.sync_fields(sync_id)?;
        let state = app.core.sync_state(sync_id)?;
        let catalog: Catalog = state
            .peer_catalog
            .as_deref()
            .and_then(|c| serde_json::from_str(c).ok())
            .unwrap_or_default();
        let mapping = crate::sync::initial::mapping_for(&app, &sync)?;
        let fields = configured
            .iter()
            .map(|f| {
                let (table, name) = tables
                    .iter()
                    .find_map(|t| {
                        t.field(f.field_no)
                            .map(|field| (t.name.clone(), field.name.clone()))
                    })
                    .unwrap_or_default();
                // A whole table's field without a number of its own: the one paired by name.
                let remote = f
                    .remote_field_no
                    .or_else(|| mapping.by_local(f.field_no).map(|r| r.wire_no))
                    .map(|no| {
                        catalog
                            .iter()
                            .find(|c| c.no == no)
                            .map(|c| format!("{no} · {} · {}", c.table_name, c.name))
                            .unwrap_or_else(|| no.to_string())
                    })
                    .unwrap_or_default();
                FieldRow {
                    id: f.id,
                    table,
                    name,
                    no: f.field_no,
                    direction: arrow(f.direction),
                    direction_label: page2.t(&format!("direction-{}", f.direction.as_str())),
                    remote,
                    conflict_policy: f.conflict_policy.map_or("", ConflictPolicy::as_str),
                }
            })
            .collect();
        let choices = tables
            .iter()
            .flat_map(|t| {
                t.fields.iter().map(move |f| Choice {
                    no: f.no,
                    label: format!("{} · {} ({})", t.name, f.name, f.no),
                    table_id: t.id,
                })
            })
            .collect();
        let peer_fields = catalog
            .iter()
            .map(|c| Choice {
                no: c.no,
                label: format!("{} · {} ({}, {})", c.table_name, c.name, c.no, c.field_type),
                table_id: c.table_id,
            })
            .collect();
        let mut peer_tables: Vec<(i64, String)> = catalog
            .iter()
            .map(|c| (c.table_id, c.table_name.clone()))
            .collect();
        peer_tables.dedup();
        let whole_tables = app
            .core
            .sync_tables(sync_id)?
            .into_iter()
            .map(|w| WholeTableRow {
                id: w.id,
                table: tables
                    .iter()
                    .find(|t| t.id == w.table_id)
                    .map(|t| t.name.clone())
                    .unwrap_or_default(),
                direction: arrow(w.direction),
                direction_label: page2.t(&format!("direction-{}", w.direction.as_str())),
                remote: w
                    .remote_table_id
                    .map(|no| match peer_tables.iter().find(|(id, _)| *id == no) {
                        Some((_, name)) => format!("{no} · {name}"),
                        None => no.to_string(),
                    })
                    .unwrap_or_default(),
            })
            .collect::<Vec<_>>();
        let held = crate::sync::held::list(&app, sync_id)?
            .into_iter()
            .map(|h| HeldRow {
                id: h.id,
                kind: page2.t(if h.kind == crmsync_domain::sync::HELD_MASS_DELETE {
                    "held-mass-delete"
                } else {
                    "held-quarantine"
                }),
                record: crate::sync::held::held_label(&app, &tables, &mapping, &h),
                reason: h.reason,
                at: format_ms(h.at_ms),
            })
            .collect::<Vec<_>>();
        Ok((
            sync,
            status,
            (fields, whole_tables),
            tables,
            choices,
            (peer_fields, peer_tables),
            mapping.problems.clone(),
            held,
        ))
    })
    .await?;
    let (sync, status, fields, tables, choices, peer_fields, problems, held) = view;
    let ((fields, whole_tables), (peer_fields, peer_tables)) = (fields, peer_fields);
    let passive = sync.mode == Mode::Passive;
    let hour = metrics.last_hour(sync.id, now_ms);
    let chart =
        crate::sync::metrics::chart(&hour, &page.t("changes-sent"), &page.t("changes-received"));
    let endpoint_url = (passive && sync.transport.kind() == Transport::Http)
        .then(|| format!("{base}/sync/v1/{}", sync.id));
    Ok(render(&SyncPage {
        page,
        status,
        endpoint_url,
        fields,
        whole_tables,
        tables,
        choices,
        peer_fields,
        peer_tables,
        problems,
        job: params.job,
        passive,
        sent_total: hour.iter().map(|m| m.sent).sum(),
        received_total: hour.iter().map(|m| m.received).sum(),
        chart,
        held,
        drift_check: !passive,
        match_by_key: !passive,
        sync,
    }))
}

async fn delete(
    State(app): State<App>,
    Admin(signed): Admin,
    Path(sync_id): Path<i64>,
    Form(form): Form<Vec<(String, String)>>,
) -> WebResult<Response> {
    check_csrf(&signed.page, &Submitted(form))?;
    let (core, actor) = (app.core.clone(), signed.actor);
    work(signed.page.lang, move || core.delete_sync(&actor, sync_id)).await?;
    app.syncs.changed();
    Ok(Redirect::to("/syncs").into_response())
}

async fn add_field(
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

/// A number typed or picked in a form ("" → none).
fn optional_number(lang: Lang, text: &str, what: &str) -> Result<Option<i64>, WebError> {
    if text.is_empty() {
        return Ok(None);
    }
    text.parse().map(Some).map_err(|_| {
        WebError::new(
            lang,
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("\"{text}\" is not a {what} number"),
        )
    })
}

/// Adds a whole table to the sync (S-02).
async fn add_table(
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

async fn delete_table(
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
async fn remove_entry(
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

fn parse_direction(text: &str) -> Direction {
    match text {
        "upload" => Direction::Upload,
        "download" => Direction::Download,
        "off" => Direction::Off,
        _ => Direction::Both,
    }
}

/// The direction icon, clicked: both → upload → download → off → both.
async fn turn_direction(
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
async fn patch_field(
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
async fn set_field_conflict_policy(
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

async fn delete_field(
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

async fn start(
    app: App,
    signed: Signed,
    sync_id: i64,
    entry: Option<i64>,
    form: Vec<(String, String)>,
) -> WebResult<Response> {
    check_csrf(&signed.page, &Submitted(form))?;
    let job = crate::sync::actions::start_initial(&app, sync_id, entry)
        .await
        .map_err(|e| WebError::domain(signed.page.lang, e))?;
    Ok(Redirect::to(&format!("/syncs/{sync_id}?job={}", job.id)).into_response())
}

async fn initial(
    State(app): State<App>,
    Admin(signed): Admin,
    Path(sync_id): Path<i64>,
    Form(form): Form<Vec<(String, String)>>,
) -> WebResult<Response> {
    start(app, signed, sync_id, None, form).await
}

async fn initial_field(
    State(app): State<App>,
    Admin(signed): Admin,
    Path((sync_id, entry)): Path<(i64, i64)>,
    Form(form): Form<Vec<(String, String)>>,
) -> WebResult<Response> {
    start(app, signed, sync_id, Some(entry), form).await
}

#[derive(Template)]
#[template(path = "progress.html")]
struct ProgressPart {
    job: u64,
    state: &'static str,
    percent: i64,
    text: String,
}

/// The progress bar of a job, polled by htmx until the job ends.
async fn progress(
    State(app): State<App>,
    signed: Signed,
    Path(job): Path<u64>,
) -> WebResult<Response> {
    let lang = signed.page.lang;
    let status = app.jobs.get(job).ok_or_else(|| {
        WebError::new(
            lang,
            StatusCode::NOT_FOUND,
            format!("there is no job {job}"),
        )
    })?;
    let (done, total) = (status.done.to_string(), status.total.to_string());
    let text = match status.state {
        "failed" => lang.with(
            "job-failed",
            &[("error", status.error.as_deref().unwrap_or_default())],
        ),
        "done" => lang.with("job-done", &[("done", &done), ("total", &total)]),
        _ => {
            let running = lang.with("job-running", &[("done", &done), ("total", &total)]);
            // What it waits for: the other side to apply the rest, or why it cannot.
            match &status.waiting {
                Some(waiting) => format!("{running} · {waiting}"),
                None => running,
            }
        }
    };
    let percent = if status.total > 0 {
        (status.done * 100 / status.total).clamp(0, 100)
    } else if status.state == "done" {
        100
    } else {
        0
    };
    Ok(render(&ProgressPart {
        job,
        state: status.state,
        percent,
        text,
    }))
}

struct LogRow {
    at: String,
    kind: String,
    message: String,
    /// The records a packet's entry lists (S-31): (text, link to the record here or "").
    records: Vec<(String, String)>,
}

/// The records an entry's detail lists: received ones link to the record here.
fn listed_records(detail: Option<&serde_json::Value>) -> Vec<(String, String)> {
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
struct LogPage {
    page: Page,
    sync: SyncConfig,
    kind: String,
    entries: Vec<LogRow>,
}

#[derive(serde::Deserialize, Default)]
struct LogParams {
    kind: Option<String>,
}

/// The most recent entries shown on the log page.
const LOG_SHOWN: usize = 300;

async fn log(
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

async fn decide_held(
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

async fn approve_held(
    State(app): State<App>,
    Admin(signed): Admin,
    Path((sync_id, held_id)): Path<(i64, i64)>,
    Form(form): Form<Vec<(String, String)>>,
) -> WebResult<Response> {
    decide_held(app, signed, sync_id, held_id, form, true).await
}

async fn discard_held(
    State(app): State<App>,
    Admin(signed): Admin,
    Path((sync_id, held_id)): Path<(i64, i64)>,
    Form(form): Form<Vec<(String, String)>>,
) -> WebResult<Response> {
    decide_held(app, signed, sync_id, held_id, form, false).await
}

#[derive(Template)]
#[template(path = "drift.html")]
struct DriftPage {
    page: Page,
    sync: SyncConfig,
    found: crate::sync::drift::Found,
    notice: Option<String>,
}

#[derive(serde::Deserialize, Default)]
struct RepairedParam {
    repaired: Option<i64>,
}

/// Drift check (B-16), from the active side of a sync.
async fn drift(
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

async fn repair_drift(
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

#[derive(Template)]
#[template(path = "match.html")]
struct MatchPage {
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
struct OverwriteRow {
    key: String,
    field_no: i64,
    here: String,
    there: String,
}

/// A travelling value as a person reads it: text without quotes, empty for none.
fn plain(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    }
}

#[derive(serde::Deserialize, Default)]
struct KeyParam {
    field: Option<i64>,
}

/// Initial sync matched by a key field (B-05): the preview.
async fn match_preview(
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
async fn match_run(
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
