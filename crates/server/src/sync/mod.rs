//! Syncs at run time: the HTTP transport's passive endpoints (`passive`), the active side's
//! exchange loops (`active`), the sealed channel (`channel`), and the supervisor that keeps
//! one runner per active sync in step with the settings.

pub mod actions;
pub mod active;
pub mod channel;
pub mod clocks;
pub mod content;
pub mod control;
pub mod drift;
pub mod folder;
pub mod folder_channel;
pub mod folders;
pub mod held;
pub mod initial;
pub mod mailbox;
pub mod mappings;
pub mod matching;
pub mod metrics;
pub mod numbering;
pub mod passive;
pub mod peer;
pub mod rejections;

use crate::app::App;
use crate::database::{Announcement, Neighbours, SyncLease};
use std::collections::HashSet;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::sync::watch;

/// Wakes sync runners: when settings change (restart them) and when records change (push)
/// — in this process, and through the database in the others serving it (PostgreSQL).
#[derive(Clone)]
pub struct SyncSignals {
    settings: Arc<watch::Sender<u64>>,
    commits: Arc<watch::Sender<u64>>,
    received: Arc<watch::Sender<u64>>,
    /// The other processes on this database, once this one serves.
    neighbours: Arc<OnceLock<Neighbours>>,
    /// On a database other processes serve too: the syncs whose lease this one holds.
    leased_here: Arc<Mutex<HashSet<i64>>>,
}

impl Default for SyncSignals {
    fn default() -> Self {
        SyncSignals {
            settings: Arc::new(watch::channel(0).0),
            commits: Arc::new(watch::channel(0).0),
            received: Arc::new(watch::channel(0).0),
            neighbours: Default::default(),
            leased_here: Default::default(),
        }
    }
}

impl SyncSignals {
    /// Sync settings changed: runners restart with the new ones, here and elsewhere.
    pub fn changed(&self) {
        self.announce(Announcement::SettingsChanged);
        self.settings_changed_here();
    }

    fn settings_changed_here(&self) {
        self.settings.send_modify(|v| *v += 1);
        // Held pulls re-check too: a changed mapping may change what they report.
        self.committed_here();
    }

    /// A record write committed.
    pub fn committed(&self) {
        self.announce(Announcement::Committed);
        self.committed_here();
    }

    fn committed_here(&self) {
        self.commits.send_modify(|v| *v += 1);
    }

    fn announce(&self, what: Announcement) {
        if let Some(neighbours) = self.neighbours.get() {
            neighbours.announce(what);
        }
    }

    /// Starts hearing the other processes serving `database` and telling them what
    /// happens here (once; nothing on a database only this process serves).
    pub fn meet_neighbours(&self, database: &crate::database::Database) {
        if self.neighbours.get().is_some() {
            return;
        }
        // Wakes only this process: what is heard is not told back (nor kept alive by
        // the thread that hears it).
        let here = SyncSignals {
            neighbours: Default::default(),
            ..self.clone()
        };
        let heard = move |what| match what {
            Announcement::Committed => here.committed_here(),
            Announcement::SettingsChanged => here.settings_changed_here(),
        };
        if let Some(neighbours) = database.neighbours(heard) {
            let _ = self.neighbours.set(neighbours);
        }
    }

    /// Whether `sync_id` runs in another process serving this database (this one does not
    /// hold its lease): questions that travel in its packets go through that process.
    pub fn runs_elsewhere(&self, sync_id: i64) -> bool {
        self.neighbours.get().is_some()
            && !self
                .leased_here
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .contains(&sync_id)
    }

    pub fn commits(&self) -> watch::Receiver<u64> {
        self.commits.subscribe()
    }

    /// A peer's packet was applied (and the sync's incoming cursor moved).
    pub fn received(&self) {
        self.received.send_modify(|v| *v += 1);
    }

    pub fn receptions(&self) -> watch::Receiver<u64> {
        self.received.subscribe()
    }
}

/// Keeps one runner per active HTTP sync and per folder sync, restarting them all when
/// settings change.
/// Aborting a runner mid-exchange is safe: cursors only move after a peer confirms.
pub async fn supervise(app: App) {
    tokio::spawn(sample_waiting(app.clone()));
    tokio::spawn(held::retry_loop(app.clone()));
    tokio::spawn(numbering::keep_blocks(app.clone()));
    tokio::spawn(prune_logs(app.clone()));
    let mut settings = app.syncs.settings.subscribe();
    loop {
        let core = app.core.clone();
        let syncs = tokio::task::spawn_blocking(move || core.syncs()).await;
        let mut runners = Vec::new();
        if let Ok(Ok(syncs)) = syncs {
            for sync in syncs {
                if let Some(run) = peer::runner(&sync) {
                    let (app, id) = (app.clone(), sync.id);
                    runners.push(tokio::spawn(leased(app.clone(), id, move || {
                        run(app.clone(), id)
                    })));
                }
            }
        }
        let changed = settings.changed().await;
        for runner in runners {
            runner.abort();
        }
        if changed.is_err() {
            return;
        }
    }
}

/// How often a process that does not hold a sync's lease asks for it again (how soon it
/// takes a sync over from a process that stopped).
const LEASE_RETRY: Duration = Duration::from_millis(500);
/// How often the holder checks that its lease is still its own.
const LEASE_CHECK: Duration = Duration::from_secs(1);

/// Runs sync `sync_id` with `runner` while this process holds the sync's lease: with
/// several processes on one database, in exactly one of them at a time. A process waits
/// for the lease, and takes the sync over when the holder stops or dies.
async fn leased<R: Future<Output = ()>>(app: App, sync_id: i64, runner: impl Fn() -> R) {
    let mut lease = loop {
        match app.core.store().sync_lease(sync_id) {
            Ok(lease) => break lease,
            Err(e) => {
                tracing::warn!("sync {sync_id}: no lease to ask for ({e}); trying again");
                tokio::time::sleep(LEASE_RETRY).await;
            }
        }
    };
    loop {
        while !lease.try_take().unwrap_or(false) {
            tokio::time::sleep(LEASE_RETRY).await;
        }
        let _running = lease
            .can_be_lost()
            .then(|| RunningHere::new(&app.syncs, sync_id));
        tokio::select! {
            () = runner() => return,
            () = lost(&mut lease) => {
                tracing::warn!("sync {sync_id}: this process lost the sync's lease; it stops \
                    running the sync until it holds the lease again");
            }
        }
    }
}

/// Says in the server log which process runs a sync, from when it takes the lease until
/// it stops running it (lost, settings changed, stopping).
struct RunningHere(i64, Arc<Mutex<HashSet<i64>>>);

impl RunningHere {
    fn new(signals: &SyncSignals, sync_id: i64) -> RunningHere {
        tracing::info!("sync {sync_id} runs in this process (it holds the sync's lease)");
        let leased = signals.leased_here.clone();
        leased
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(sync_id);
        RunningHere(sync_id, leased)
    }
}

impl Drop for RunningHere {
    fn drop(&mut self) {
        self.1
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.0);
        tracing::info!("sync {} no longer runs in this process", self.0);
    }
}

/// Completes when `lease` is no longer held (never, for one that cannot be lost).
async fn lost(lease: &mut SyncLease) {
    if !lease.can_be_lost() {
        return std::future::pending().await;
    }
    while lease.is_held() {
        tokio::time::sleep(LEASE_CHECK).await;
    }
}

/// Removes sync log entries past the instance's retention, at start and every hour.
async fn prune_logs(app: App) {
    loop {
        let app2 = app.clone();
        let _ = tokio::task::spawn_blocking(move || {
            let removed = app2.core.prune_sync_logs(app2.log_keep_days)?;
            if removed > 0 {
                tracing::info!(
                    "removed {removed} sync log entries older than {} days",
                    app2.log_keep_days
                );
            }
            Ok::<(), crmsync_domain::DomainError>(())
        })
        .await;
        tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
    }
}

/// How often what is waiting is sampled for the dashboards.
pub(crate) const SAMPLE_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// Samples, for every sync, the changes waiting each way (the lag on its dashboard).
async fn sample_waiting(app: App) {
    loop {
        let app2 = app.clone();
        let _ = tokio::task::spawn_blocking(move || {
            for sync in app2.core.syncs()? {
                let view = actions::status(&app2, &sync)?;
                app2.metrics.waiting(
                    sync.id,
                    app2.core.now_ms(),
                    view.pending_out,
                    view.state.pending_in,
                );
            }
            Ok::<(), crmsync_domain::DomainError>(())
        })
        .await;
        tokio::time::sleep(SAMPLE_EVERY).await;
    }
}

/// One exchange at a time per sync. A runner aborted on a settings change cannot stop the
/// blocking part of an exchange already under way; the new runner's exchange waits for it,
/// or two would write and read the same folders at once and break the packet sequence.
#[derive(Clone, Default)]
pub struct ExchangeTurns {
    turns: Arc<std::sync::Mutex<std::collections::HashMap<i64, Arc<std::sync::Mutex<()>>>>>,
}

impl ExchangeTurns {
    pub fn of(&self, sync_id: i64) -> Arc<std::sync::Mutex<()>> {
        self.turns
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(sync_id)
            .or_default()
            .clone()
    }
}
