//! Initial sync matched by a key field (B-05), run from the active side of a sync: it
//! fetches the passive side's records of the key's table, plans the match (a preview
//! when asked for a dry run), and otherwise has the passive side record the pairs — its
//! records then travel under this side's uids — and starts the ordinary initial sync, in
//! which paired records meet instead of doubling. The questions go through the sync's
//! `Peer`.

use super::active::{Failure, active_mapping};
use super::peer::Peer;
use crate::app::App;
use crate::jobs::JobStatus;
use crmsync_domain::sync::{Mode, SyncConfig};
use crmsync_domain::{DomainError, FieldNo};
use crmsync_sync::Mapping;
use crmsync_sync::matching::{MatchPlan, plan, table_items};
use crmsync_sync::protocol::{PairRequest, RecordsRequest};

fn unavailable(failure: Failure) -> DomainError {
    DomainError::Unavailable(failure.0)
}

/// Plans the match by `key_field` (this side's field); unless `dry_run`, pairs the records
/// and starts the initial sync, returning its job.
pub async fn match_by_key(
    app: &App,
    sync_id: i64,
    key_field: FieldNo,
    dry_run: bool,
) -> Result<(MatchPlan, Option<JobStatus>), DomainError> {
    let app2 = app.clone();
    let (sync, mapping) = tokio::task::spawn_blocking(move || {
        let sync = app2.core.sync(sync_id)?;
        if sync.mode != Mode::Active {
            return Err(DomainError::invalid(
                "matching records by a key field runs on the active side of a sync",
            ));
        }
        let mapping = active_mapping(&app2, &sync)?;
        Ok((sync, mapping))
    })
    .await
    .map_err(|e| DomainError::Store(e.to_string()))??;
    let route = mapping.by_local(key_field).ok_or_else(|| {
        DomainError::invalid(format!(
            "field_no: field {key_field} is not configured in this sync; a key field must travel"
        ))
    })?;
    let table = route.wire_table;
    let peer = Peer::new(app, &sync);
    let theirs = peer
        .ask(RecordsRequest { table })
        .await
        .map_err(unavailable)?;
    let (app2, sync2, mapping2) = (app.clone(), sync.clone(), mapping.clone());
    let ours =
        tokio::task::spawn_blocking(move || table_items(&app2.core, &sync2, &mapping2, table))
            .await
            .map_err(|e| DomainError::Store(e.to_string()))??;
    let (plan, pairs) = plan(&ours, &theirs, key_field, &mapping);
    if dry_run {
        return Ok((plan, None));
    }
    if plan.ambiguous_keys > 0 {
        return Err(DomainError::Conflict(format!(
            "{} key value(s) belong to several records (see the preview's conflicts); merge those duplicates or choose another key field. Nothing was changed",
            plan.ambiguous_keys
        )));
    }
    if !pairs.is_empty() {
        // The initial sync starts only once the other side has recorded the pairs.
        let outcome = peer
            .ask(PairRequest { table, pairs })
            .await
            .map_err(unavailable)?;
        if let Some(refused) = outcome.refused {
            return Err(DomainError::Conflict(format!(
                "the other side did not record the pairs: {refused}"
            )));
        }
    }
    let (core, sync2) = (app.core.clone(), sync.clone());
    let message = format!(
        "initial sync matched by field {key_field}: {} paired, {} to create there, {} to create here, {} conflict(s)",
        plan.paired, plan.create_there.count, plan.create_here.count, plan.conflicts.count
    );
    tokio::task::spawn_blocking(move || core.log_sync(&sync2, "exchange", message, None))
        .await
        .map_err(|e| DomainError::Store(e.to_string()))??;
    let job = super::actions::start_initial(app, sync_id, None).await?;
    Ok((plan, Some(job)))
}

/// The passive side records the pairs the active side matched (blocking).
pub fn record_pairs(
    app: &App,
    sync: &SyncConfig,
    mapping: &Mapping,
    request: &PairRequest,
) -> Result<usize, DomainError> {
    let table_id = mapping.local_table(request.table).ok_or_else(|| {
        DomainError::invalid(format!(
            "the active side's table {} is not mapped here",
            request.table
        ))
    })?;
    let paired = app.core.pair_records(sync.id, table_id, &request.pairs)?;
    app.core.log_sync(
        sync,
        "exchange",
        format!("{paired} record(s) paired with the active side's by a key field"),
        None,
    )?;
    Ok(paired)
}
