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
use std::sync::Arc;
use tokio::sync::watch;

/// Wakes sync runners: when settings change (restart them) and when records change (push).
#[derive(Clone)]
pub struct SyncSignals {
    settings: Arc<watch::Sender<u64>>,
    commits: Arc<watch::Sender<u64>>,
    received: Arc<watch::Sender<u64>>,
}

impl Default for SyncSignals {
    fn default() -> Self {
        SyncSignals {
            settings: Arc::new(watch::channel(0).0),
            commits: Arc::new(watch::channel(0).0),
            received: Arc::new(watch::channel(0).0),
        }
    }
}

impl SyncSignals {
    /// Sync settings changed: runners restart with the new ones.
    pub fn changed(&self) {
        self.settings.send_modify(|v| *v += 1);
        // Held pulls re-check too: a changed mapping may change what they report.
        self.committed();
    }

    /// A record write committed.
    pub fn committed(&self) {
        self.commits.send_modify(|v| *v += 1);
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
                runners.extend(peer::start(&app, &sync));
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
