//! Drift check and repair (B-16), run from the active side of a sync: both sides digest
//! what the sync carries, the active side compares, and a repair rewrites this side's
//! values of the records that differ with fresh stamps (they travel and win there) and
//! asks the other side to send everything again if it has records this side lacks. Both
//! questions go through the sync's `Peer`; the check waits for the digests.

use super::active::{Failure, blocking};
use super::peer::Peer;
use crate::app::App;
use crmsync_domain::sync::Mode;
use crmsync_domain::{Actor, DomainError, Origin};
use crmsync_domain::{FieldType, Record, Table, Value};
use crmsync_sync::drift::{self, Digests, Drift};
use crmsync_sync::protocol::ResendRequest;
use serde::Serialize;

/// Compares both sides; returns this side's digests with the drift.
pub(crate) async fn check(app: &App, sync_id: i64) -> Result<(Drift, Digests), Failure> {
    let app2 = app.clone();
    let (sync, request) = blocking(move || {
        let sync = app2.core.sync(sync_id)?;
        if sync.mode != Mode::Active {
            return Err(DomainError::Conflict(
                "a drift check runs from the active side of a sync".into(),
            ));
        }
        let mapping = super::active::active_mapping(&app2, &sync)?;
        Ok((sync, drift::request(&mapping)))
    })
    .await?;
    let theirs = Peer::new(app, &sync).ask(request).await?;
    let app2 = app.clone();
    let agreed = theirs.fields.clone();
    let one_way = [theirs.to_passive.clone(), theirs.to_active.clone()];
    let ours = blocking(move || {
        let mapping = super::active::active_mapping(&app2, &sync)?;
        drift::digests(&app2.core, &sync, &mapping, &agreed, &one_way)
    })
    .await?;
    Ok((drift::compare(&ours, &theirs), ours))
}

/// A drift check as a person reads it: what differs, with the records named.
pub(crate) async fn check_named(app: &App, sync_id: i64) -> Result<Found, Failure> {
    let (found, ours) = check(app, sync_id).await?;
    let app2 = app.clone();
    blocking(move || name_records(&app2, &found, &ours)).await
}

/// The most records a drift answer names by label (the uid lists stay whole).
const NAMED_AT_MOST: usize = 1000;

/// A record of a drift answer as a person knows it. Records only the other side has are
/// named by their uid, with no table or id here.
#[derive(Debug, Clone, Serialize)]
pub struct NamedRecord {
    pub uid: uuid::Uuid,
    pub label: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub table_id: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record_id: Option<i64>,
}

/// A drift check's answer: the uid lists, and the records they name with their labels.
#[derive(Debug, Serialize)]
pub struct Found {
    #[serde(flatten)]
    pub drift: Drift,
    pub records: Vec<NamedRecord>,
}

/// How a person knows a record: its table's first text field, else its uid.
pub fn record_label(table: &Table, record: &Record) -> String {
    table
        .fields
        .iter()
        .find(|f| f.field_type == FieldType::Text)
        .and_then(|f| match record.values.get(&f.no) {
            Some(Value::Text(text)) if !text.trim().is_empty() => Some(text.clone()),
            _ => None,
        })
        .unwrap_or_else(|| record.uid.to_string())
}

/// Names the records a drift check found (differ, only here, only there), at most
/// `NAMED_AT_MOST` of them. Blocking.
pub fn name_records(app: &App, drift: &Drift, ours: &Digests) -> Result<Found, DomainError> {
    let tables = app.core.tables()?;
    let mut records = Vec::new();
    let listed = drift
        .differ
        .iter()
        .chain(&drift.only_here)
        .chain(&drift.only_there);
    for uid in listed.take(NAMED_AT_MOST) {
        let here = ours.tables.get(uid).zip(ours.ids.get(uid));
        let named = match here {
            Some((table_id, id)) => {
                let table = tables.iter().find(|t| t.id == *table_id);
                let label = match (table, app.core.record(*table_id, *id)) {
                    (Some(table), Ok(record)) => record_label(table, &record),
                    _ => uid.to_string(),
                };
                NamedRecord {
                    uid: *uid,
                    label,
                    table_id: Some(*table_id),
                    record_id: Some(*id),
                }
            }
            None => NamedRecord {
                uid: *uid,
                label: uid.to_string(),
                table_id: None,
                record_id: None,
            },
        };
        records.push(named);
    }
    Ok(Found {
        drift: drift.clone(),
        records,
    })
}

#[derive(Debug, Serialize)]
pub struct Repaired {
    pub restamped: usize,
    /// The other side was asked to send everything again (it has records this side lacks).
    pub requested_from_peer: bool,
    pub found: Drift,
}

/// Repairs drift: this side's values win for records that differ or that only it has.
pub(crate) async fn repair(app: &App, sync_id: i64, actor: Actor) -> Result<Repaired, Failure> {
    let (found, ours) = check(app, sync_id).await?;
    let app2 = app.clone();
    let (restamp, sync) = (
        found.clone(),
        app.core.sync(sync_id).map_err(Failure::from)?,
    );
    let sync2 = sync.clone();
    let restamped = blocking(move || {
        let mapping = super::active::active_mapping(&app2, &sync2)?;
        let repairer = Actor {
            origin: Origin::Repair,
            ..actor
        };
        let mut by_table: std::collections::BTreeMap<i64, Vec<uuid::Uuid>> = Default::default();
        for uid in restamp.differ.iter().chain(&restamp.only_here) {
            if let Some(table) = ours.tables.get(uid) {
                by_table.entry(*table).or_default().push(*uid);
            }
        }
        let mut count = 0;
        for (table, uids) in by_table {
            // Only what this side sends is this side's to repair.
            let fields: Vec<i64> = mapping
                .routes
                .iter()
                .filter(|r| {
                    r.local.table_id == table
                        && r.direction.sends()
                        && (ours.fields.contains(&r.wire_no)
                            || ours.to_passive.contains(&r.wire_no))
                })
                .map(|r| r.local.no)
                .collect();
            count += app2.core.restamp(&repairer, table, &uids, &fields)?;
        }
        app2.core.log_sync(
            &sync2,
            "exchange",
            format!("drift repair: {count} record(s) rewritten with fresh stamps"),
            None,
        )?;
        Ok(count)
    })
    .await?;
    let requested_from_peer = !found.only_there.is_empty();
    if requested_from_peer {
        // Over folders the request travels with the next packet, as an initial sync's.
        Peer::new(app, &sync)
            .request_resend(ResendRequest { field: None })
            .await?;
    }
    Ok(Repaired {
        restamped,
        requested_from_peer,
        found,
    })
}
