//! Received changes held back (issue 6): quarantined values (B-17), tried again whenever
//! this instance's tables or users change (the cause may be fixed), and deletes from an
//! exchange that would delete too much (B-18), applied once a person approves.

use crate::app::App;
use crmsync_domain::sync::HeldChange;
use crmsync_domain::{DomainError, Store};
use crmsync_sync::apply::{Guard, release, retry_quarantined};

/// Tries every sync's quarantined values again whenever something commits or the
/// settings change (a choice added, a user created, a field mapped, a linked record
/// restored), at most once a second, and once at start. A held change whose cause is still
/// there is only looked at (reads), so a long list costs little. One loop per instance,
/// off the exchange paths.
pub async fn retry_loop(app: App) {
    let mut commits = app.syncs.commits();
    loop {
        let app2 = app.clone();
        let _ = tokio::task::spawn_blocking(move || {
            for sync in app2.core.syncs()? {
                // One sync's trouble does not keep the others' held changes waiting.
                let Ok(mapping) = super::initial::mapping_for(&app2, &sync) else {
                    continue;
                };
                let Ok(applied) = retry_quarantined(&app2.core, &sync, &mapping) else {
                    continue;
                };
                if applied > 0 {
                    app2.core.log_sync(
                        &sync,
                        "received",
                        format!("{applied} quarantined value(s) applied now"),
                        None,
                    )?;
                }
            }
            Ok::<(), DomainError>(())
        })
        .await;
        tokio::time::sleep(RETRY_AT_MOST_EVERY).await;
        tokio::select! {
            _ = commits.changed() => {}
            _ = tokio::time::sleep(super::SAMPLE_EVERY) => {}
        }
    }
}

/// Bounds the cost of retries under a stream of commits.
const RETRY_AT_MOST_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

pub fn list(app: &App, sync_id: i64) -> Result<Vec<HeldChange>, DomainError> {
    app.core.sync(sync_id)?;
    app.core.store().read(|tx| tx.held(sync_id))
}

fn find(app: &App, sync_id: i64, id: i64) -> Result<HeldChange, DomainError> {
    list(app, sync_id)?
        .into_iter()
        .find(|h| h.id == id)
        .ok_or_else(|| DomainError::not_found(format!("sync {sync_id} holds no change {id}")))
}

/// Applies a held change (approval); returns whether it is held again (still not
/// applicable here).
pub fn approve(app: &App, sync_id: i64, id: i64) -> Result<bool, DomainError> {
    let sync = app.core.sync(sync_id)?;
    let change = find(app, sync_id, id)?;
    let mapping = super::initial::mapping_for(app, &sync)?;
    let again = release(&app.core, &sync, &mapping, &change, Guard::Off)?;
    // Logged as a hold's outcome: kept whether the sync's log is on or off.
    app.core.log_sync(
        &sync,
        "held",
        format!(
            "held change {id} ({}) of record {} approved{}",
            change.kind,
            change.record_uid,
            if again {
                ", but it is still not applicable"
            } else {
                " and applied"
            }
        ),
        None,
    )?;
    Ok(again)
}

/// Drops a held change without applying it.
pub fn discard(app: &App, sync_id: i64, id: i64) -> Result<(), DomainError> {
    let sync = app.core.sync(sync_id)?;
    let change = find(app, sync_id, id)?;
    app.core.store().write(|tx| tx.release_held(sync_id, id))?;
    app.core.log_sync(
        &sync,
        "held",
        format!(
            "held change {id} ({}) of record {} discarded",
            change.kind, change.record_uid
        ),
        None,
    )
}

/// How a person knows a held change's record: its label here, or — for a record this side
/// does not hold yet — the held item's value of its table's first text field, else its uid.
pub fn held_label(
    app: &App,
    tables: &[crmsync_domain::Table],
    mapping: &crmsync_sync::Mapping,
    held: &HeldChange,
) -> String {
    let Some(table) = tables.iter().find(|t| t.id == held.table_id) else {
        return held.record_uid.to_string();
    };
    let here = app
        .core
        .record_by_uid(table.id, held.record_uid)
        .or_else(|_| {
            app.core
                .record_by_uid(table.id, mapping.uids.to_local(held.record_uid))
        });
    if let Ok(record) = here {
        return super::drift::record_label(table, &record);
    }
    let first_text = table
        .fields
        .iter()
        .find(|f| f.field_type == crmsync_domain::FieldType::Text)
        .and_then(|f| mapping.by_local(f.no));
    first_text
        .and_then(|route| held.item["fields"][route.wire_no.to_string()]["value"].as_str())
        .filter(|text| !text.trim().is_empty())
        .map(str::to_string)
        .unwrap_or_else(|| held.record_uid.to_string())
}
