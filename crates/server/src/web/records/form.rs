//! A record's form fitted to each field type: the inputs, a new record and a saved one.

use super::record::RecordPage;
use super::synced_tables;
use crate::app::App;
use crate::web::{Page, Signed, Submitted, WebError, WebResult, check_csrf, render, work};
use axum::Form;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use crmsync_domain::instance::WriteOp;
use crmsync_domain::{DomainError, FieldType, Record, RecordStatus, Table, User, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

/// One input of a record's form.
pub(super) struct Input {
    pub(super) no: i64,
    pub(super) name: String,
    /// text, longtext, number, money, date, datetime, select, user, link or file; or
    /// numbered (assigned by the instance, shown read-only).
    pub(super) kind: &'static str,
    pub(super) value: String,
    /// The value as the form was first shown: sent back beside the input, so a save
    /// writes only the fields the person changed.
    pub(super) was: String,
    /// For a link: the label of the record it points at (what the picker shows).
    pub(super) label: String,
    /// For a link: the table whose records the picker searches.
    pub(super) target: i64,
    /// For select and user: (value, label, selected); the current value is always one.
    pub(super) options: Vec<(String, String, bool)>,
    /// For a file: its name and size, if it has one.
    pub(super) file: Option<(String, u64)>,
}

/// Everything a record form needs besides the record: users and the tables links point at.
pub(super) struct FormContext {
    pub(super) table: Table,
    pub(super) users: Vec<User>,
    /// For each link field: the table it points at.
    pub(super) targets: BTreeMap<i64, Table>,
    pub(super) synced: bool,
}

pub(super) fn form_context(app: &App, table_id: i64) -> Result<FormContext, DomainError> {
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
pub(super) fn label(table: &Table, record: &Record) -> String {
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
pub(super) fn inputs(
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

pub(super) async fn new_record(
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

pub(super) async fn create_record(
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

pub(super) async fn save_record(
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
    let core = app.core.clone();
    let outcome = match (typed_values(&ctx, &form), id) {
        (Err(invalid), _) => Err(invalid),
        // A new record may need a number drawn from another instance first (B-06).
        (Ok(values), None) => crate::records::create_many(&app, actor, table_id, vec![values])
            .await
            .map(|ids| ids.first().copied().unwrap_or_default()),
        (Ok(values), Some(id)) => {
            work(lang, move || {
                let op = WriteOp::Update { id, values };
                Ok(core
                    .write_ops(&actor, table_id, &mut std::iter::once(Ok(op)))
                    .map(|ids| ids.first().copied().unwrap_or_default()))
            })
            .await?
        }
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
