//! The list of tables, and what admins change there: tables and their fields (with a
//! numbered field's source of numbers).

use crate::app::App;
use crate::web::{Page, Signed, Submitted, WebError, WebResult, check_csrf, render, work};
use askama::Template;
use axum::Form;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use crmsync_domain::schema::Numbering;
use crmsync_domain::{DomainError, FieldOptions, FieldType, Table};

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

pub(super) async fn tables(State(app): State<App>, signed: Signed) -> WebResult<Response> {
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

pub(super) async fn create_table(
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

pub(super) async fn rename_table(
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

pub(super) async fn delete_table(
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

pub(super) async fn delete_field(
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
pub(super) async fn edit_field(
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

pub(super) async fn fields(
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

pub(super) async fn create_field(
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
