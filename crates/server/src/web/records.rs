//! Tables and records in the browser: the list of tables, a table as a grid (search, sort,
//! paging), a record's form fitted to each field type, delete/restore, files, history with
//! where each change came from, the per-record Sync action (S-24) and, on a passive side,
//! the same record on the active side (S-23). Admins add tables and fields here.

use super::{
    Lang, Page, Signed, Submitted, WebError, WebResult, check_csrf, percent, render, work,
};
use crate::api::records::{ListParams, parse_query};
use crate::app::App;
use askama::Template;
use axum::Router;
use axum::extract::{Multipart, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, extract::DefaultBodyLimit};
use crmsync_domain::instance::WriteOp;
use crmsync_domain::schema::Numbering;
use crmsync_domain::value::format_ms;
use crmsync_domain::{
    Change, ChangeOp, DomainError, Field, FieldOptions, FieldType, Origin, Record, RecordQuery,
    RecordStatus, Table, User, Value,
};
use std::collections::BTreeMap;
use std::sync::Arc;

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

struct TableRow {
    id: i64,
    name: String,
    fields: String,
    records: String,
}

#[derive(Template)]
#[template(path = "tables.html")]
struct TablesPage {
    page: Page,
    tables: Vec<TableRow>,
}

async fn tables(State(app): State<App>, signed: Signed) -> WebResult<Response> {
    let page = signed.page.in_section("tables");
    let lang = page.lang;
    let rows = work(lang, move || {
        Ok(app
            .core
            .table_counts()?
            .into_iter()
            .map(|(table, counts)| TableRow {
                id: table.id,
                name: table.name.clone(),
                fields: lang.n("fields-count", "count", table.fields.len() as i64),
                records: lang.n("records-count", "count", counts.active as i64),
            })
            .collect())
    })
    .await?;
    Ok(render(&TablesPage { page, tables: rows }))
}

async fn create_table(
    State(app): State<App>,
    signed: Signed,
    Form(form): Form<Vec<(String, String)>>,
) -> WebResult<Response> {
    let form = Submitted(form);
    check_csrf(&signed.page, &form)?;
    let name = form.text("name");
    let actor = signed.actor;
    let table = work(signed.page.lang, move || {
        app.core.create_table(&actor, &name)
    })
    .await?;
    Ok(Redirect::to(&format!("/tables/{}/fields", table.id)).into_response())
}

async fn rename_table(
    State(app): State<App>,
    signed: Signed,
    Path(table_id): Path<i64>,
    Form(form): Form<Vec<(String, String)>>,
) -> WebResult<Response> {
    let form = Submitted(form);
    check_csrf(&signed.page, &form)?;
    let (name, actor) = (form.text("name"), signed.actor);
    work(signed.page.lang, move || {
        app.core.rename_table(&actor, table_id, &name)
    })
    .await?;
    Ok(Redirect::to(&format!("/tables/{table_id}/fields")).into_response())
}

async fn delete_table(
    State(app): State<App>,
    signed: Signed,
    Path(table_id): Path<i64>,
    Form(form): Form<Vec<(String, String)>>,
) -> WebResult<Response> {
    check_csrf(&signed.page, &Submitted(form))?;
    let actor = signed.actor;
    work(signed.page.lang, move || {
        app.core.delete_table(&actor, table_id)
    })
    .await?;
    Ok(Redirect::to("/tables").into_response())
}

async fn delete_field(
    State(app): State<App>,
    signed: Signed,
    Path((table_id, field_no)): Path<(i64, i64)>,
    Form(form): Form<Vec<(String, String)>>,
) -> WebResult<Response> {
    check_csrf(&signed.page, &Submitted(form))?;
    let actor = signed.actor;
    work(signed.page.lang, move || {
        let field = app.core.field(field_no)?;
        if field.table_id != table_id {
            return Err(DomainError::not_found(format!(
                "table {table_id} has no field {field_no}"
            )));
        }
        app.core.delete_field(&actor, field_no)
    })
    .await?;
    Ok(Redirect::to(&format!("/tables/{table_id}/fields")).into_response())
}

/// Renames a field and, for a select, sets its choices (one per line).
async fn edit_field(
    State(app): State<App>,
    signed: Signed,
    Path((table_id, field_no)): Path<(i64, i64)>,
    Form(form): Form<Vec<(String, String)>>,
) -> WebResult<Response> {
    let form = Submitted(form);
    check_csrf(&signed.page, &form)?;
    let actor = signed.actor;
    work(signed.page.lang, move || {
        let field = app.core.field(field_no)?;
        if field.table_id != table_id {
            return Err(DomainError::not_found(format!(
                "table {table_id} has no field {field_no}"
            )));
        }
        let options = match field.field_type {
            FieldType::Select => Some(FieldOptions {
                choices: Some(
                    form.text("choices")
                        .lines()
                        .map(|c| c.trim().to_string())
                        .filter(|c| !c.is_empty())
                        .collect(),
                ),
                ..field.options.clone()
            }),
            FieldType::Number => Some(FieldOptions {
                numbering: numbering_of(&form)?,
                ..field.options.clone()
            }),
            _ => None,
        };
        let patch = crmsync_domain::instance::FieldPatch {
            name: Some(form.text("name")),
            field_type: None,
            options,
        };
        app.core.update_field(&actor, field_no, patch)
    })
    .await?;
    Ok(Redirect::to(&format!("/tables/{table_id}/fields")).into_response())
}

/// The numbering a field form chose (B-06): none, owned here, or drawn through a sync.
fn numbering_of(form: &Submitted) -> Result<Option<Numbering>, DomainError> {
    let number = |name: &str| -> Result<Option<u32>, DomainError> {
        let text = form.text(name);
        if text.trim().is_empty() {
            return Ok(None);
        }
        text.trim()
            .parse()
            .map(Some)
            .map_err(|_| DomainError::invalid(format!("\"{text}\" is not a whole number")))
    };
    let source = form.text("numbering");
    Ok(match source.as_str() {
        "" => None,
        "here" => Some(Numbering {
            start: number("numbering_start")?.map(i64::from),
            ..Numbering::default()
        }),
        other => Some(Numbering {
            from_sync: Some(other.trim_start_matches("sync:").parse().map_err(|_| {
                DomainError::invalid(format!("\"{other}\" is not a sync to draw numbers from"))
            })?),
            block: number("numbering_block")?,
            start: None,
        }),
    })
}

/// A value as a person reads it in a grid or a history.
fn shown(field: &Field, value: &Value, users: &[User]) -> String {
    value.to_text(field, &|id| {
        users
            .iter()
            .find(|u| u.id == id)
            .map(|u| u.full_name.clone())
    })
}

struct GridRow {
    id: i64,
    deleted: bool,
    cells: Vec<String>,
}

struct Column {
    no: i64,
    name: String,
    sort: String,
    arrow: &'static str,
}

#[derive(Template)]
#[template(path = "grid.html")]
struct GridPage {
    page: Page,
    table: Table,
    columns: Vec<Column>,
    rows: Vec<GridRow>,
    q: String,
    status: String,
    sort: String,
    next: Option<String>,
    first: Option<String>,
    synced: bool,
    notice: Option<String>,
}

#[derive(serde::Deserialize, Default)]
struct GridParams {
    q: Option<String>,
    status: Option<String>,
    sort: Option<String>,
    after: Option<i64>,
    notice: Option<String>,
}

async fn grid(
    State(app): State<App>,
    signed: Signed,
    Path(table_id): Path<i64>,
    Query(params): Query<GridParams>,
) -> WebResult<Response> {
    let page = signed.page.in_section("tables");
    let lang = page.lang;
    let q = params.q.clone().unwrap_or_default();
    let status = params.status.clone().unwrap_or_else(|| "active".into());
    let sort = params.sort.clone().unwrap_or_else(|| "id".into());
    let query = parse_query(ListParams {
        q: (!q.trim().is_empty()).then(|| q.clone()),
        status: Some(status.clone()),
        limit: Some(50),
        after: params.after,
        sort: Some(sort.clone()),
    })
    .map_err(|e| WebError::new(lang, StatusCode::BAD_REQUEST, e.detail))?;
    let app2 = app.clone();
    let (table, records, users, synced) = work(lang, move || {
        let table = app2.core.table(table_id)?;
        let records = app2.core.list_records(table_id, &query)?;
        let synced = synced_tables(&app2)?.contains(&table_id);
        Ok((table, records, app2.core.users()?, synced))
    })
    .await?;
    let link = |after: Option<i64>, sort: &str| {
        let mut url = format!(
            "/tables/{table_id}?q={}&status={}&sort={}",
            percent(&q),
            percent(&status),
            percent(sort)
        );
        if let Some(after) = after {
            url.push_str(&format!("&after={after}"));
        }
        url
    };
    let columns = table
        .fields
        .iter()
        .map(|f| {
            let key = f.no.to_string();
            let (next_sort, arrow) = if sort == key {
                (format!("-{key}"), "▲")
            } else if sort == format!("-{key}") {
                (key.clone(), "▼")
            } else {
                (key.clone(), "")
            };
            Column {
                no: f.no,
                name: f.name.clone(),
                sort: link(None, &next_sort),
                arrow,
            }
        })
        .collect();
    let rows = records
        .records
        .iter()
        .map(|r| GridRow {
            id: r.id,
            deleted: r.status == RecordStatus::Deleted,
            cells: table
                .fields
                .iter()
                .map(|f| shown(f, r.values.get(&f.no).unwrap_or(&Value::Null), &users))
                .collect(),
        })
        .collect();
    Ok(render(&GridPage {
        next: records.next_after.map(|after| link(Some(after), &sort)),
        first: params.after.map(|_| link(None, &sort)),
        columns,
        rows,
        q,
        status,
        sort,
        synced,
        notice: params.notice,
        table,
        page,
    }))
}

/// Tables some sync sends (they get the per-record Sync action).
fn synced_tables(app: &App) -> Result<Vec<i64>, DomainError> {
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

#[derive(Template)]
#[template(path = "fields.html")]
struct FieldsPage {
    page: Page,
    table: Table,
    tables: Vec<Table>,
    types: Vec<&'static str>,
    error: Option<String>,
    /// Syncs a number field can draw its numbers through: (id, name).
    number_sources: Vec<(i64, String)>,
}

/// The syncs a numbered field can draw numbers through: any whose side here can ask (not the
/// passive side of an HTTP sync, which only answers).
fn number_sources(app: &App) -> Result<Vec<(i64, String)>, DomainError> {
    Ok(app
        .core
        .syncs()?
        .into_iter()
        .filter(|s| crate::sync::peer::exchange(s) != crate::sync::peer::Exchange::IsCalled)
        .map(|s| (s.id, s.name))
        .collect())
}

async fn fields(
    State(app): State<App>,
    signed: Signed,
    Path(table_id): Path<i64>,
) -> WebResult<Response> {
    let page = signed.page.in_section("tables");
    Ok(render(&fields_page(app, page, table_id, None).await?))
}

/// A table's fields page, with an error from the form just sent if there was one.
async fn fields_page(
    app: App,
    page: Page,
    table_id: i64,
    error: Option<String>,
) -> WebResult<FieldsPage> {
    let (table, tables, number_sources) = work(page.lang, move || {
        Ok((
            app.core.table(table_id)?,
            app.core.tables()?,
            number_sources(&app)?,
        ))
    })
    .await?;
    Ok(FieldsPage {
        page,
        table,
        tables,
        types: FieldType::ALL.iter().map(|t| t.as_str()).collect(),
        error,
        number_sources,
    })
}

async fn create_field(
    State(app): State<App>,
    signed: Signed,
    Path(table_id): Path<i64>,
    Form(form): Form<Vec<(String, String)>>,
) -> WebResult<Response> {
    let form = Submitted(form);
    let page = signed.page.in_section("tables");
    check_csrf(&page, &form)?;
    let choices: Vec<String> = form
        .text("choices")
        .lines()
        .map(|c| c.trim().to_string())
        .filter(|c| !c.is_empty())
        .collect();
    let options = FieldOptions {
        choices: (!choices.is_empty()).then_some(choices),
        table_id: form.text("target_table").parse().ok(),
        scale: form.text("scale").parse().ok(),
        ..FieldOptions::default()
    };
    let (name, kind, actor) = (form.text("name"), form.text("type"), signed.actor);
    let app2 = app.clone();
    let created = tokio::task::spawn_blocking(move || {
        app2.core
            .create_field(&actor, table_id, &name, &kind, options)
    })
    .await
    .map_err(|e| WebError::new(page.lang, StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    match created {
        Ok(_) => {
            // Syncs introduce the new catalogue, and a whole table's new field joins its sync.
            app.syncs.changed();
            Ok(Redirect::to(&format!("/tables/{table_id}/fields")).into_response())
        }
        Err(e @ DomainError::Invalid { .. }) => Ok((
            StatusCode::UNPROCESSABLE_ENTITY,
            render(&fields_page(app, page, table_id, Some(e.to_string())).await?),
        )
            .into_response()),
        Err(e) => Err(WebError::domain(page.lang, e)),
    }
}

/// One input of a record's form.
struct Input {
    no: i64,
    name: String,
    /// text, longtext, number, money, date, datetime, select, user, link or file; or
    /// numbered (assigned by the instance, shown read-only).
    kind: &'static str,
    value: String,
    /// The value as the form was first shown: sent back beside the input, so a save
    /// writes only the fields the person changed.
    was: String,
    /// For a link: the label of the record it points at (what the picker shows).
    label: String,
    /// For a link: the table whose records the picker searches.
    target: i64,
    /// For select and user: (value, label, selected); the current value is always one.
    options: Vec<(String, String, bool)>,
    /// For a file: its name and size, if it has one.
    file: Option<(String, u64)>,
}

struct HistoryEntry {
    at: String,
    what: String,
    source: String,
    /// (field, old, new, why: where a value from a peer was written and what it beat).
    fields: Vec<(String, String, String, String)>,
}

/// Names the instance that wrote a value: this one, a sync's other side, or its id.
struct Instances {
    here: uuid::Uuid,
    peers: Vec<(uuid::Uuid, String)>,
}

impl Instances {
    fn name(&self, lang: Lang, node: uuid::Uuid) -> String {
        if node == self.here {
            return lang.t("instance-here");
        }
        match self.peers.iter().find(|(id, _)| *id == node) {
            Some((_, sync)) => lang.with("instance-peer", &[("sync", sync)]),
            None => lang.with("instance-other", &[("id", &node.to_string()[..8])]),
        }
    }

    fn why(&self, lang: Lang, change: &crmsync_domain::FieldChange) -> String {
        let Some(written) = change.written else {
            return String::new();
        };
        let at = |s: &crmsync_domain::Stamp| format_ms(s.hlc.ms());
        let rule = match change.rule.as_deref() {
            None => "provenance",
            Some("here") => "provenance-rule-here",
            Some(_) => "provenance-rule-there",
        };
        let mut text = lang.with(
            rule,
            &[
                ("at", &at(&written)),
                ("instance", &self.name(lang, written.node)),
            ],
        );
        if let Some(replaced) = change.replaced {
            text.push_str("; ");
            text.push_str(&lang.with(
                "provenance-replaced",
                &[
                    ("at", &at(&replaced)),
                    ("instance", &self.name(lang, replaced.node)),
                ],
            ));
        }
        text
    }
}

#[derive(Template)]
#[template(path = "record.html")]
struct RecordPage {
    page: Page,
    table: Table,
    record: Option<Record>,
    inputs: Vec<Input>,
    history: Vec<HistoryEntry>,
    error: Option<String>,
    notice: Option<String>,
    synced: bool,
    remote: Vec<String>,
    deleted: bool,
}

/// Everything a record form needs besides the record: users and the tables links point at.
struct FormContext {
    table: Table,
    users: Vec<User>,
    /// For each link field: the table it points at.
    targets: BTreeMap<i64, Table>,
    synced: bool,
}

fn form_context(app: &App, table_id: i64) -> Result<FormContext, DomainError> {
    let table = app.core.table(table_id)?;
    let mut targets = BTreeMap::new();
    for field in &table.fields {
        if let Some(target) = field
            .options
            .table_id
            .filter(|_| field.field_type == FieldType::Link)
        {
            targets.insert(field.no, app.core.table(target)?);
        }
    }
    Ok(FormContext {
        synced: synced_tables(app)?.contains(&table_id),
        users: app.core.users()?,
        targets,
        table,
    })
}

/// How a person reads a record where it is picked: its first text field, with its number.
fn label(table: &Table, record: &Record) -> String {
    let text = table
        .fields
        .iter()
        .find(|f| f.field_type == FieldType::Text)
        .and_then(|f| match record.values.get(&f.no) {
            Some(Value::Text(t)) if !t.trim().is_empty() => Some(t.clone()),
            _ => None,
        });
    match text {
        Some(text) => format!("{text} (#{})", record.id),
        None => format!("#{}", record.id),
    }
}

/// The label of record `id` of `table` as a link picker shows it ("#id" if it is gone).
fn label_of(app: &App, table: &Table, id: &str) -> Result<String, DomainError> {
    let Ok(id) = id.parse::<i64>() else {
        return Ok(String::new());
    };
    match app.core.record(table.id, id) {
        Ok(record) => Ok(label(table, &record)),
        Err(DomainError::NotFound(_)) => Ok(format!("#{id}")),
        Err(e) => Err(e),
    }
}

/// The inputs for a record (or a new one), showing `typed` where a form came back.
/// Blocking: a link's label is read from the table it points at.
fn inputs(
    app: &App,
    ctx: &FormContext,
    record: Option<&Record>,
    typed: Option<&Submitted>,
) -> Result<Vec<Input>, DomainError> {
    let mut inputs = Vec::new();
    for field in &ctx.table.fields {
        let stored = record
            .and_then(|r| r.values.get(&field.no))
            .unwrap_or(&Value::Null);
        let mut value = match (field.field_type, stored) {
            (FieldType::User | FieldType::Link, Value::User(id) | Value::Link(id)) => {
                id.to_string()
            }
            // datetime-local takes "YYYY-MM-DDTHH:MM:SS" without a zone; ours are UTC.
            (FieldType::Datetime, Value::Datetime(s)) => {
                s.trim_end_matches('Z').chars().take(19).collect()
            }
            _ => stored.to_text(field, &|_| None),
        };
        let mut was = value.clone();
        if let Some(typed) = typed {
            if let Some(text) = typed.get(&format!("f{}", field.no)) {
                value = text.to_string();
            }
            if let Some(text) = typed.get(&format!("o{}", field.no)) {
                was = text.to_string();
            }
        }
        // The current value is always one of the choices, even one this side does not
        // list (a choice removed, a user unknown here): a save must not clear it unseen.
        let current = |options: &mut Vec<(String, String, bool)>| {
            if !value.is_empty() && !options.iter().any(|(v, _, _)| *v == value) {
                options.insert(0, (value.clone(), value.clone(), true));
            }
        };
        let mut options: Vec<(String, String, bool)> = match field.field_type {
            FieldType::Select => field
                .options
                .choices
                .iter()
                .flatten()
                .map(|c| (c.clone(), c.clone(), *c == value))
                .collect(),
            FieldType::User => ctx
                .users
                .iter()
                .map(|u| {
                    let id = u.id.to_string();
                    let selected = id == value;
                    (id, format!("{} ({})", u.full_name, u.login), selected)
                })
                .collect(),
            _ => Vec::new(),
        };
        if matches!(field.field_type, FieldType::Select | FieldType::User) {
            current(&mut options);
        }
        let target = ctx.targets.get(&field.no);
        let label = match target {
            Some(target) if !value.is_empty() => label_of(app, target, &value)?,
            _ => String::new(),
        };
        inputs.push(Input {
            no: field.no,
            name: field.name.clone(),
            kind: match field.options.numbering {
                Some(_) => "numbered",
                None => field.field_type.as_str(),
            },
            value,
            was,
            label,
            target: target.map(|t| t.id).unwrap_or_default(),
            options,
            file: match stored {
                Value::File(f) => Some((f.name.clone(), f.size)),
                _ => None,
            },
        });
    }
    Ok(inputs)
}

#[derive(serde::Deserialize, Default)]
struct PickParams {
    q: Option<String>,
    limit: Option<usize>,
}

/// A link picker's matches as the person types: records of the table whose text (or
/// number, typed as "#12" or "12") matches, by label, a page at a time.
#[derive(Template)]
#[template(
    source = r#"{% for (id, label) in found %}<li><button type="button" class="pick" data-id="{{ id }}" data-label="{{ label }}">{{ label }}</button></li>{% endfor %}{% if found.is_empty() %}<li class="none">{{ page.t("pick-none") }}</li>{% endif %}{% if more %}<li class="more">{{ page.t("pick-more") }}</li>{% endif %}"#,
    ext = "html"
)]
struct PickList {
    page: Page,
    found: Vec<(i64, String)>,
    more: bool,
}

const PICK_PAGE: usize = 20;

async fn pick(
    State(app): State<App>,
    signed: Signed,
    Path(table_id): Path<i64>,
    Query(params): Query<PickParams>,
) -> WebResult<Response> {
    let page = signed.page;
    let q = params.q.unwrap_or_default().trim().to_string();
    let limit = params.limit.unwrap_or(PICK_PAGE).clamp(1, 100);
    let (found, more) = work(page.lang, move || {
        let table = app.core.table(table_id)?;
        let mut found = Vec::new();
        // A number typed as such finds that record first.
        if let Ok(id) = q.trim_start_matches('#').parse::<i64>()
            && let Ok(record) = app.core.record(table_id, id)
            && record.status == RecordStatus::Active
        {
            found.push((record.id, label(&table, &record)));
        }
        let by_label = table
            .fields
            .iter()
            .find(|f| f.field_type == FieldType::Text)
            .map(|f| crmsync_domain::record::SortKey::Field(f.no))
            .unwrap_or(crmsync_domain::record::SortKey::Id);
        let matches = app.core.list_records(
            table_id,
            &RecordQuery {
                q: (!q.is_empty()).then_some(q),
                limit,
                sort: by_label,
                ..RecordQuery::default()
            },
        )?;
        for record in &matches.records {
            if found.len() < limit && !found.iter().any(|(id, _)| *id == record.id) {
                found.push((record.id, label(&table, record)));
            }
        }
        Ok((found, matches.next_after.is_some()))
    })
    .await?;
    Ok(render(&PickList { page, found, more }))
}

fn history(
    lang: Lang,
    table: &Table,
    changes: &[Change],
    users: &[User],
    syncs: &[(i64, String)],
    instances: &Instances,
) -> Vec<HistoryEntry> {
    changes
        .iter()
        .rev()
        .map(|change| {
            let user = change
                .user_id
                .and_then(|id| users.iter().find(|u| u.id == id))
                .map(|u| u.full_name.clone())
                .unwrap_or_default();
            let sync_name = |id: i64| {
                syncs
                    .iter()
                    .find(|(sid, _)| *sid == id)
                    .map(|(_, n)| format!("\"{n}\""))
                    .unwrap_or_else(|| id.to_string())
            };
            let source = match &change.origin {
                Origin::Sync(id) => lang.with("history-from-sync", &[("sync", &sync_name(*id))]),
                Origin::Rule(id) => lang.with("history-from-rule", &[("sync", &sync_name(*id))]),
                other => {
                    let key = match other {
                        Origin::Web => "history-from-web",
                        Origin::Import => "history-from-import",
                        Origin::Api => "history-from-api",
                        Origin::Repair => "history-from-repair",
                        Origin::Sync(_)
                        | Origin::Rule(_)
                        | Origin::Resend(_)
                        | Origin::Other(_) => "history-from-user",
                    };
                    lang.with(key, &[("user", &user)])
                }
            };
            let what = lang.t(match change.op {
                ChangeOp::Create => "op-create",
                ChangeOp::Update => "op-update",
                ChangeOp::Delete => "op-delete",
                ChangeOp::Restore => "op-restore",
                ChangeOp::Resend => "sync-record",
            });
            let text = |json: &Option<serde_json::Value>, field: Option<&Field>| match (json, field)
            {
                (Some(json), Some(field)) => Value::from_json(field, json)
                    .map(|v| shown(field, &v, users))
                    .unwrap_or_else(|_| json.to_string()),
                (Some(json), None) => json.to_string(),
                (None, _) => String::new(),
            };
            HistoryEntry {
                at: format_ms(change.at_ms),
                what,
                source,
                fields: change
                    .fields
                    .iter()
                    .map(|f| {
                        let field = table.field(f.field_no);
                        let name = field
                            .map(|f| f.name.clone())
                            .unwrap_or_else(|| f.field_no.to_string());
                        (
                            name,
                            text(&f.old, field),
                            text(&Some(f.new.clone()), field),
                            instances.why(lang, f),
                        )
                    })
                    .collect(),
            }
        })
        .collect()
}

async fn new_record(
    State(app): State<App>,
    signed: Signed,
    Path(table_id): Path<i64>,
) -> WebResult<Response> {
    let page = signed.page.in_section("tables");
    let (ctx, inputs) = work(page.lang, move || {
        let ctx = form_context(&app, table_id)?;
        let inputs = inputs(&app, &ctx, None, None)?;
        Ok((ctx, inputs))
    })
    .await?;
    Ok(render(&RecordPage {
        inputs,
        table: ctx.table,
        record: None,
        history: Vec::new(),
        error: None,
        notice: None,
        synced: false,
        remote: Vec::new(),
        deleted: false,
        page,
    }))
}

/// The form's values, parsed for the table's fields (files are uploaded separately). A
/// field the form sends back as it was shown (`o<no>` beside `f<no>`) was not touched and
/// is left out: saving one field never rewrites the others with what the page showed.
fn typed_values(ctx: &FormContext, form: &Submitted) -> Result<Vec<(i64, Value)>, DomainError> {
    let mut values = Vec::new();
    for field in &ctx.table.fields {
        if field.field_type == FieldType::File {
            continue;
        }
        let Some(text) = form.get(&format!("f{}", field.no)) else {
            continue;
        };
        if form.get(&format!("o{}", field.no)) == Some(text) {
            continue;
        }
        let text = match field.field_type {
            // From datetime-local: a time without a zone, taken as UTC.
            FieldType::Datetime if !text.trim().is_empty() && !text.ends_with('Z') => {
                let t = text.trim();
                if t.len() == 16 {
                    format!("{t}:00Z")
                } else {
                    format!("{t}Z")
                }
            }
            _ => text.to_string(),
        };
        let value = Value::from_text(field, &text, &|s| {
            ctx.users
                .iter()
                .find(|u| u.id.to_string() == s)
                .map(|u| u.id)
        })?;
        values.push((field.no, value));
    }
    Ok(values)
}

async fn create_record(
    State(app): State<App>,
    signed: Signed,
    Path(table_id): Path<i64>,
    Form(form): Form<Vec<(String, String)>>,
) -> WebResult<Response> {
    let form = Submitted(form);
    let page = signed.page.in_section("tables");
    check_csrf(&page, &form)?;
    write_form(app, signed.actor, page, table_id, None, form).await
}

async fn save_record(
    State(app): State<App>,
    signed: Signed,
    Path((table_id, id)): Path<(i64, i64)>,
    Form(form): Form<Vec<(String, String)>>,
) -> WebResult<Response> {
    let form = Submitted(form);
    let page = signed.page.in_section("tables");
    check_csrf(&page, &form)?;
    write_form(app, signed.actor, page, table_id, Some(id), form).await
}

/// Writes a record form through the write path; a bad value shows the form again with
/// what was typed and nothing written.
async fn write_form(
    app: App,
    actor: crmsync_domain::Actor,
    page: Page,
    table_id: i64,
    id: Option<i64>,
    form: Submitted,
) -> WebResult<Response> {
    let lang = page.lang;
    let app2 = app.clone();
    let ctx = Arc::new(work(lang, move || form_context(&app2, table_id)).await?);
    let (core, ctx2, typed) = (app.core.clone(), ctx.clone(), form.clone());
    let write = move || {
        let values = typed_values(&ctx2, &typed)?;
        let op = match id {
            Some(id) => WriteOp::Update { id, values },
            None => WriteOp::Create(values),
        };
        core.write_ops(&actor, table_id, &mut std::iter::once(Ok(op)))
            .map(|ids| ids.first().copied().unwrap_or_default())
    };
    // A new record may need a number drawn from another instance first (B-06).
    let outcome = match id {
        None => crate::sync::numbering::creating(&app, table_id, 1, write).await,
        Some(_) => work(lang, move || Ok(write())).await?,
    }
    .map_err(|e| (e, form));
    match outcome {
        Ok(saved) => {
            Ok(Redirect::to(&format!("/tables/{table_id}/{saved}?notice=saved")).into_response())
        }
        Err((e, form)) => {
            let message = e.to_string();
            if !matches!(e, DomainError::Invalid { .. } | DomainError::Rows(_)) {
                return Err(WebError::domain(lang, e));
            }
            let shown = ctx.clone();
            let (record, inputs) = work(lang, move || {
                let record = id.map(|id| app.core.record(table_id, id)).transpose()?;
                let inputs = inputs(&app, &shown, record.as_ref(), Some(&form))?;
                Ok((record, inputs))
            })
            .await?;
            Ok((
                StatusCode::UNPROCESSABLE_ENTITY,
                render(&RecordPage {
                    inputs,
                    deleted: record
                        .as_ref()
                        .is_some_and(|r| r.status == RecordStatus::Deleted),
                    table: ctx.table.clone(),
                    record,
                    history: Vec::new(),
                    error: Some(message),
                    notice: None,
                    synced: false,
                    remote: Vec::new(),
                    page,
                }),
            )
                .into_response())
        }
    }
}

#[derive(serde::Deserialize, Default)]
struct NoticeParam {
    notice: Option<String>,
}

async fn record(
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
async fn by_uid(
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

async fn delete_record(
    State(app): State<App>,
    signed: Signed,
    Path((table_id, id)): Path<(i64, i64)>,
    Form(form): Form<Vec<(String, String)>>,
) -> WebResult<Response> {
    set_status(app, signed, table_id, id, form, RecordStatus::Deleted).await
}

async fn restore_record(
    State(app): State<App>,
    signed: Signed,
    Path((table_id, id)): Path<(i64, i64)>,
    Form(form): Form<Vec<(String, String)>>,
) -> WebResult<Response> {
    set_status(app, signed, table_id, id, form, RecordStatus::Active).await
}

async fn sync_record(
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

/// A file chosen in the record form: streamed into the file store, then set through the
/// write path. The CSRF token comes first in the multipart body.
async fn upload_file(
    State(app): State<App>,
    signed: Signed,
    Path((table_id, id, field_no)): Path<(i64, i64, i64)>,
    mut multipart: Multipart,
) -> WebResult<Response> {
    let lang = signed.page.lang;
    let bad = |m: String| WebError::new(lang, StatusCode::BAD_REQUEST, m);
    let mut token_ok = false;
    while let Some(part) = multipart
        .next_field()
        .await
        .map_err(|e| bad(e.to_string()))?
    {
        match part.name() {
            Some("_csrf") => {
                let token = part.text().await.map_err(|e| bad(e.to_string()))?;
                token_ok = super::session::same_token(&token, &signed.page.csrf);
            }
            Some("file") if token_ok => {
                let name = part.file_name().unwrap_or("file").to_string();
                let (file, is_new) = app
                    .files
                    .store(&name, part)
                    .await
                    .map_err(|e| bad(format!("the upload did not complete: {e}")))?;
                let (app2, actor, sha) = (app.clone(), signed.actor.clone(), file.sha256.clone());
                let result = work(lang, move || {
                    app2.core.set_file(&actor, table_id, id, field_no, file)
                })
                .await;
                if result.is_err() && is_new {
                    app.files.remove(&sha).await;
                }
                result?;
                return Ok(
                    Redirect::to(&format!("/tables/{table_id}/{id}?notice=saved")).into_response(),
                );
            }
            _ => {}
        }
    }
    Err(if token_ok {
        bad("choose a file to upload".into())
    } else {
        WebError::new(
            lang,
            StatusCode::FORBIDDEN,
            "this form has expired; reload the page and try again",
        )
    })
}

async fn download_file(
    State(app): State<App>,
    _signed: Signed,
    Path((table_id, id, field_no)): Path<(i64, i64, i64)>,
) -> Response {
    crate::api::files::download(State(app), crate::api::ApiPath((table_id, id, field_no)))
        .await
        .into_response()
}
