//! A table as a grid (search, sort, paging) and the link picker's matches.

use super::form::label;
use super::{shown, synced_tables};
use crate::api::records::{ListParams, parse_query};
use crate::app::App;
use crate::web::{Page, Signed, WebError, WebResult, percent, render, work};
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use crmsync_domain::{FieldType, RecordQuery, RecordStatus, Table, Value};

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
pub(super) struct GridParams {
    q: Option<String>,
    status: Option<String>,
    sort: Option<String>,
    after: Option<i64>,
    notice: Option<String>,
}

pub(super) async fn grid(
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

#[derive(serde::Deserialize, Default)]
pub(super) struct PickParams {
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

pub(super) async fn pick(
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
