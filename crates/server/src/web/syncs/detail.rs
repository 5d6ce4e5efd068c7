//! A sync's page: its fields with direction icons and numbers, whole tables, held changes.

use super::list::{SyncRow, row};
use super::*;

pub(super) struct HeldRow {
    id: i64,
    kind: String,
    record: String,
    reason: String,
    at: String,
}

pub(super) struct FieldRow {
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
pub(super) struct WholeTableRow {
    id: i64,
    table: String,
    direction: &'static str,
    direction_label: String,
    /// On the passive side: the active side's table it pairs with.
    remote: String,
}

/// A field that can be added: (number, "Table · Name", table id).
pub(super) struct Choice {
    no: i64,
    label: String,
    table_id: i64,
}

#[derive(Template)]
#[template(path = "sync.html")]
pub(super) struct SyncPage {
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
pub(super) struct JobParam {
    job: Option<u64>,
}

pub(super) async fn detail(
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
