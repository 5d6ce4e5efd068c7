//! Drift check and repair (B-16), run from the active side of a sync: both sides digest
//! what the sync carries, the active side compares, and a repair rewrites this side's
//! values of the records that differ with fresh stamps (they travel and win there) and
//! asks the other side to send everything again if it has records this side lacks. Over
//! HTTP the digests are asked for directly; over folders the request and the answer
//! travel in packets (`control`), and the check waits for the answer.

use super::active::{Failure, blocking, call_peer};
use crate::app::App;
use crmsync_domain::sync::{Mode, SyncConfig, Transport};
use crmsync_domain::{Actor, DomainError, Origin};
use crmsync_sync::drift::{self, Digests, Drift};
use crmsync_sync::protocol::{ResendRequest, ResendSummary};
use serde::{Deserialize, Serialize};

/// The other side's digests over folders: asked with the next packet, answered in one.
async fn folder_digests(
    app: &App,
    sync: &SyncConfig,
    fields: Vec<i64>,
) -> Result<Digests, Failure> {
    app.folder_control
        .ask(
            app,
            sync,
            |c| {
                c.send_digest_request = Some(fields);
                c.got_digests = None;
            },
            |c| c.got_digests.take(),
        )
        .await
        .map_err(Failure)
}

#[derive(Serialize, Deserialize)]
pub struct DigestRequest {
    pub fields: Vec<i64>,
}

/// Compares both sides; returns this side's digests with the drift.
pub(crate) async fn check(app: &App, sync_id: i64) -> Result<(Drift, Digests), Failure> {
    let app2 = app.clone();
    let (sync, fields) = blocking(move || {
        let sync = app2.core.sync(sync_id)?;
        if sync.mode != Mode::Active {
            return Err(DomainError::Conflict(
                "a drift check runs from the active side of a sync".into(),
            ));
        }
        let mapping = super::active::active_mapping(&app2, &sync)?;
        Ok((sync, drift::fields(&mapping)))
    })
    .await?;
    let theirs: Digests = match sync.transport {
        Transport::Http => call_peer(app, &sync, "digests", &DigestRequest { fields }).await?,
        Transport::Local | Transport::Ftp => folder_digests(app, &sync, fields).await?,
    };
    let app2 = app.clone();
    let agreed = theirs.fields.clone();
    let ours = blocking(move || {
        let mapping = super::active::active_mapping(&app2, &sync)?;
        drift::digests(&app2.core, &sync, &mapping, &agreed)
    })
    .await?;
    Ok((drift::compare(&ours, &theirs), ours))
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
                        && ours.fields.contains(&r.wire_no)
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
        let request = ResendRequest { field: None };
        match sync.transport {
            Transport::Http => {
                let _: ResendSummary = call_peer(app, &sync, "resend", &request).await?;
            }
            // Over folders the request travels with the next packet, as an initial sync's.
            Transport::Local | Transport::Ftp => {
                let core = app.core.clone();
                let text = serde_json::to_string(&request).unwrap_or_default();
                blocking(move || {
                    core.update_sync_state(sync_id, |s| s.resend_request = Some(text))
                })
                .await?;
                app.syncs.committed();
            }
        }
    }
    Ok(Repaired {
        restamped,
        requested_from_peer,
        found,
    })
}
