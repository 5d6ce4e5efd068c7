//! Runs an initial sync as a job: this side queues its rows for sending again and asks the
//! peer to do the same (an active HTTP side calls the passive's `/resend`; otherwise the
//! request travels with the next pull or packet file); progress is how far the cursors
//! have passed the queued entries.

use super::active::{active_mapping, call_peer};
use super::passive::passive_mapping;
use crate::app::App;
use crmsync_domain::DomainError;
use crmsync_domain::sync::{Mode, SyncConfig, Transport};
use crmsync_sync::initial::resend_all;
use crmsync_sync::protocol::{ResendRequest, ResendSummary};
use std::time::Duration;

/// The longest an initial sync may take before its job is reported failed.
const DEADLINE: Duration = Duration::from_secs(3600);

pub fn mapping_for(app: &App, sync: &SyncConfig) -> Result<crmsync_sync::Mapping, DomainError> {
    match sync.mode {
        Mode::Active => active_mapping(app, sync),
        Mode::Passive => passive_mapping(app, sync),
    }
}

/// Queues this side's rows; returns what was queued.
pub fn queue_own(
    app: &App,
    sync: &SyncConfig,
    request: ResendRequest,
) -> Result<ResendSummary, DomainError> {
    let mapping = mapping_for(app, sync)?;
    let summary = resend_all(&app.core, sync, &mapping, request)?;
    app.core.log_sync(
        sync,
        "exchange",
        format!("initial sync: {} record(s) queued to send", summary.count),
        None,
    )?;
    Ok(summary)
}

pub async fn run(app: App, sync: SyncConfig, request: ResendRequest, job: u64) {
    let result = run_inner(&app, &sync, request, job).await;
    match result {
        Ok(()) => app.jobs.update(job, |j| j.state = "done"),
        Err(error) => {
            let core = app.core.clone();
            let message = format!("initial sync failed: {error}");
            let logged = message.clone();
            let sync2 = sync.clone();
            let _ =
                tokio::task::spawn_blocking(move || core.log_sync(&sync2, "error", logged, None))
                    .await;
            app.jobs.update(job, |j| {
                j.state = "failed";
                j.error = Some(message);
            });
        }
    }
}

/// A passive side can map its fields only once the active side has described them (its
/// first contact, or first packet file); queueing before that would queue nothing.
async fn wait_for_mapping(app: &App, sync: &SyncConfig) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + MAPPING_PATIENCE;
    loop {
        let (app2, sync2) = (app.clone(), sync.clone());
        let mapping = tokio::task::spawn_blocking(move || mapping_for(&app2, &sync2))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        if !mapping.routes.is_empty() {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            return Err(format!(
                "no configured field can travel yet: {}",
                mapping.problems.join("; ")
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// How long an initial sync waits for the peer to describe its fields.
const MAPPING_PATIENCE: Duration = Duration::from_secs(60);

async fn run_inner(
    app: &App,
    sync: &SyncConfig,
    request: ResendRequest,
    job: u64,
) -> Result<(), String> {
    wait_for_mapping(app, sync).await?;
    let (app2, sync2) = (app.clone(), sync.clone());
    let own = tokio::task::spawn_blocking(move || queue_own(&app2, &sync2, request))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    let asks_over_http = sync.mode == Mode::Active && sync.transport == Transport::Http;
    let peer = match asks_over_http {
        true => Some(
            call_peer::<_, ResendSummary>(app, sync, "resend", &request)
                .await
                .map_err(|f| f.0)?,
        ),
        // Otherwise the request travels with the next packet (a pull, or a packet file).
        false => {
            let core = app.core.clone();
            let id = sync.id;
            let text = serde_json::to_string(&request).unwrap_or_default();
            tokio::task::spawn_blocking(move || {
                core.update_sync_state(id, |s| s.resend_request = Some(text))
            })
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
            app.syncs.committed();
            None
        }
    };
    let total = own.count + peer.map_or(0, |p| p.count);
    app.jobs.update(job, |j| j.total = total);
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let core = app.core.clone();
        let id = sync.id;
        let state = tokio::task::spawn_blocking(move || core.sync_state(id))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        let done =
            own.delivered(state.sent_seq) + peer.map_or(0, |p| p.delivered(state.received_seq));
        app.jobs.update(job, |j| j.done = done);
        let handed_over = asks_over_http || state.resend_request.is_none();
        if done >= total && handed_over {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            return Err(format!(
                "not finished after {} s ({done} of {total})",
                DEADLINE.as_secs()
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
