//! Runs an initial sync as a job: this side queues its rows for sending again and asks the
//! peer to do the same (an active HTTP side calls the passive's `/resend`; otherwise the
//! request travels with the next pull or packet file). The job is done only once the other
//! side has applied every row it queued — over HTTP the outgoing cursor moves only when the
//! peer confirms; over folders a written file says nothing, so the peer's packets carry
//! what it applied (`ack`) — and once the rows the peer queued in answer are applied here
//! too (its `/resend` answer says which, or, when the request travelled with a packet, the
//! `resent` it sends back with its next pull or packet file). While the other side
//! is stopped or unreachable the job keeps running and says why; it fails only after an
//! hour without progress.

use super::active::blocking;
use super::peer::{Exchange, Peer};
use crate::app::App;
use crmsync_domain::DomainError;
use crmsync_domain::sync::SyncConfig;
use crmsync_sync::initial::resend_all;
use crmsync_sync::protocol::{ResendRequest, ResendSummary};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// How long an initial sync may go without progress before its job is reported failed.
const PATIENCE: Duration = Duration::from_secs(3600);

/// A sync's mapping as the store holds it now (kept while nothing it is built from changes).
pub fn mapping_for(
    app: &App,
    sync: &SyncConfig,
) -> Result<Arc<crmsync_sync::Mapping>, DomainError> {
    app.mappings.of(app, sync)
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

/// One initial sync of a sync at a time: a request for the other side's rows and its
/// answer have one place per sync, so a second job (two fields turned back on at once)
/// waits for the first rather than overwrite its request. And, per sync, the right to
/// apply what is pulled from the other side: an initial sync takes it while both sides
/// queue their rows, so the rows the other side queued are not applied here before this
/// side queues its own (they would be queued again, and sent back where they came from).
#[derive(Clone, Default)]
pub struct InitialTurns {
    jobs: Arc<std::sync::Mutex<HashMap<i64, Arc<tokio::sync::Mutex<()>>>>>,
    applying: Arc<std::sync::Mutex<HashMap<i64, Arc<tokio::sync::Mutex<()>>>>>,
}

impl InitialTurns {
    fn of(&self, sync_id: i64) -> Arc<tokio::sync::Mutex<()>> {
        turn(&self.jobs, sync_id)
    }

    /// Held while a packet from the other side is applied, and while both sides queue
    /// their rows.
    pub async fn applying(&self, sync_id: i64) -> tokio::sync::OwnedMutexGuard<()> {
        turn(&self.applying, sync_id).lock_owned().await
    }
}

fn turn(
    turns: &std::sync::Mutex<HashMap<i64, Arc<tokio::sync::Mutex<()>>>>,
    sync_id: i64,
) -> Arc<tokio::sync::Mutex<()>> {
    turns
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .entry(sync_id)
        .or_default()
        .clone()
}

pub async fn run(app: App, sync: SyncConfig, request: ResendRequest, job: u64) {
    let turn = app.initial_turns.of(sync.id);
    let _turn = match turn.clone().try_lock_owned() {
        Ok(turn) => turn,
        Err(_) => {
            app.jobs.update(job, |j| {
                j.waiting = Some("waiting for another initial sync of this sync to finish".into())
            });
            turn.lock_owned().await
        }
    };
    let result = run_inner(&app, &sync, request, job).await;
    match result {
        Ok(()) => app.jobs.update(job, |j| {
            j.state = "done";
            j.waiting = None;
        }),
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
                j.waiting = None;
            });
        }
    }
}

/// Asks the passive side to queue its rows, again and again while it cannot be reached,
/// and queues this side's once it has: rows this side queued first would reach the
/// other side before it queues its own, and come back with them. Nothing pulled is
/// applied in between, for the same reason the other way round.
async fn queue_both(
    app: &App,
    sync: &SyncConfig,
    request: ResendRequest,
    job: u64,
) -> Result<(ResendSummary, ResendSummary), String> {
    let started = tokio::time::Instant::now();
    loop {
        // The settings as they are now: the other side's address may have been corrected
        // while this waited.
        let (core, id) = (app.core.clone(), sync.id);
        let current = blocking(move || core.sync(id)).await.map_err(|f| f.0)?;
        let paused = app.initial_turns.applying(sync.id).await;
        match Peer::new(app, &current).request_resend(request).await {
            Ok(answer) => {
                let peer = answer.unwrap_or_default();
                let own = queue_own_off_thread(app, &current, request).await?;
                drop(paused);
                return Ok((own, peer));
            }
            Err(failure) if started.elapsed() > PATIENCE => return Err(failure.0),
            Err(failure) => app.jobs.update(job, |j| j.waiting = Some(failure.0)),
        }
        drop(paused);
        let retry = Duration::from_secs(u64::from(sync.period_seconds).max(1));
        tokio::time::sleep(retry).await;
    }
}

async fn queue_own_off_thread(
    app: &App,
    sync: &SyncConfig,
    request: ResendRequest,
) -> Result<ResendSummary, String> {
    let (app, sync) = (app.clone(), sync.clone());
    tokio::task::spawn_blocking(move || queue_own(&app, &sync, request))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())
}

/// Leaves the request for the other side's rows to travel with the next pull or packet
/// file.
async fn hand_request_over(
    app: &App,
    sync: &SyncConfig,
    request: ResendRequest,
) -> Result<(), String> {
    Peer::new(app, sync)
        .request_resend(request)
        .await
        .map(|_| ())
        .map_err(|failure| failure.0)
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
    let exchange = Peer::new(app, sync).exchange();
    let (own, peer) = match exchange {
        Exchange::Calls => {
            let (own, peer) = queue_both(app, sync, request, job).await?;
            (own, Some(peer))
        }
        // Otherwise the request travels with the next pull or packet, and what the other
        // side queued comes back the same way (`resent`).
        // The side that is called hands the request over first and queues its rows while
        // it applies nothing sent to it: the calling side queues its own before applying
        // anything of ours, so nobody's rows are queued again on the other side.
        Exchange::IsCalled => {
            let _paused = app.initial_turns.applying(sync.id).await;
            hand_request_over(app, sync, request).await?;
            (queue_own_off_thread(app, sync, request).await?, None)
        }
        Exchange::Packets => {
            let own = queue_own_off_thread(app, sync, request).await?;
            hand_request_over(app, sync, request).await?;
            (own, None)
        }
    };
    app.jobs.update(job, |j| j.total = own.count);
    let (mut progress, mut progressed_at) = (-1, tokio::time::Instant::now());
    loop {
        let core = app.core.clone();
        let id = sync.id;
        let state = tokio::task::spawn_blocking(move || core.sync_state(id))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        let peer = peer.or_else(|| app.mailboxes.resent(sync.id));
        let total = own.count + peer.map_or(0, |p| p.count);
        let done = own.delivered(state.confirmed_by_peer(sync.transport.kind()))
            + peer.map_or(0, |p| p.delivered(state.received_seq));
        let handed_over = exchange == Exchange::Calls || state.resend_request.is_none();
        if done >= total && peer.is_some() {
            app.jobs.update(job, |j| (j.done, j.total) = (done, total));
            return Ok(());
        }
        let (connected, reason) = state.as_seen(sync, app.core.now_ms());
        let waiting = match reason.filter(|_| !connected) {
            Some(reason) => reason,
            None if !handed_over => {
                "waiting to hand the request for the other side's rows over".to_string()
            }
            None if peer.is_none() => {
                "waiting for the other side to say which rows it queued".to_string()
            }
            None => {
                let there =
                    own.count - own.delivered(state.confirmed_by_peer(sync.transport.kind()));
                format!(
                    "waiting for {} record(s) to be applied: {there} on the other side, {} here",
                    total - done,
                    total - done - there
                )
            }
        };
        if done > progress {
            (progress, progressed_at) = (done, tokio::time::Instant::now());
        } else if progressed_at.elapsed() > PATIENCE {
            return Err(format!(
                "no progress for {} s ({done} of {total}): {waiting}",
                PATIENCE.as_secs()
            ));
        }
        app.jobs.update(job, |j| {
            (j.done, j.total) = (done, total);
            j.waiting = Some(waiting);
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
