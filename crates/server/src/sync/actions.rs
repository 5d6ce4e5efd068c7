//! What a person can ask of a sync, shared by the REST API and the web UI: its status as
//! shown, starting an initial sync, sending one record again, and the same record on the
//! active side.

use crate::app::App;
use crate::jobs::JobStatus;
use crmsync_domain::sync::{Direction, Mode, SyncConfig, SyncField, SyncState};
use crmsync_domain::{DomainError, Store};
use crmsync_sync::protocol::ResendRequest;

/// A sync's health as the status page shows it.
pub struct StatusView {
    pub state: SyncState,
    pub connected: bool,
    pub reason: Option<String>,
    pub pending_out: i64,
    /// This instance's last change-log entry: with the sync's cursors (`state.sent_seq`,
    /// `state.received_seq`), where things stand, so a reader can tell when all is still.
    pub last_change_seq: i64,
    /// Held changes: quarantined values, and deletes awaiting approval.
    pub held_quarantine: usize,
    pub held_mass_delete: usize,
    /// Link values waiting for the record they point to, which has not arrived yet.
    pub waiting_links: usize,
    /// How far the peer's clock is from ours, as last seen (B-19).
    pub peer_clock_offset_ms: Option<i64>,
    pub clock_warning: Option<String>,
    /// The two sides match users differently (S-21).
    pub user_match_warning: Option<String>,
    /// Fields drawing numbers through this sync (B-06): numbers held here and why the last
    /// request failed, if it did.
    pub numbering: Vec<NumberingView>,
    /// Beside a green check: what is fine but worth knowing ("no fields yet").
    pub notice: Option<String>,
    /// Packet files from the other side this side refused since it started (folders).
    pub rejected_packets: u64,
    /// The sync password is short: safe against captured traffic, but each online pairing
    /// attempt is one guess.
    pub weak_password: bool,
}

pub struct NumberingView {
    pub field_no: i64,
    pub numbers_left: i64,
    pub last_error: Option<String>,
}

impl StatusView {
    /// For someone who may see the sync's status but not its settings: every text that
    /// could name its address, FTP host, login or folders has them as "…".
    pub fn hide_settings(&mut self, sync: &SyncConfig) {
        let hide = |text: &mut Option<String>| {
            if let Some(t) = text {
                *t = sync.without_settings(t);
            }
        };
        hide(&mut self.reason);
        hide(&mut self.notice);
        hide(&mut self.state.last_error);
        for numbering in &mut self.numbering {
            hide(&mut numbering.last_error);
        }
    }
}

/// Blocking: reads the store.
pub fn status(app: &App, sync: &SyncConfig) -> Result<StatusView, DomainError> {
    let state = app.core.sync_state(sync.id)?;
    let (connected, reason) = state.as_seen(sync, app.core.now_ms());
    let pending_out = crmsync_sync::pending_out(&app.core, sync)?;
    let held = app.core.store().read(|tx| tx.held(sync.id))?;
    let user_match_warning = sync.user_match.mismatch(state.peer_user_match.as_deref());
    let notice = app.core.sync_fields(sync.id)?.is_empty().then(|| {
        "no fields yet: choose the fields this sync carries (each side its own)".to_string()
    });
    let count = |kind: &str| held.iter().filter(|h| h.kind == kind).count();
    let mut numbering = Vec::new();
    for field in app.core.tables()?.into_iter().flat_map(|t| t.fields) {
        if field.options.numbering.and_then(|n| n.from_sync) == Some(sync.id) {
            numbering.push(NumberingView {
                field_no: field.no,
                numbers_left: app.core.numbers_left(field.no)?,
                last_error: app.numbering_failures.get(field.no),
            });
        }
    }
    Ok(StatusView {
        state,
        connected,
        reason,
        pending_out,
        last_change_seq: app.core.store().read(|tx| tx.last_change_seq())?,
        held_quarantine: count(crmsync_domain::sync::HELD_QUARANTINE),
        held_mass_delete: count(crmsync_domain::sync::HELD_MASS_DELETE),
        waiting_links: app.core.store().read(|tx| tx.pending_links(sync.id))?.len(),
        peer_clock_offset_ms: app.peer_clocks.offset(sync.id),
        clock_warning: app
            .peer_clocks
            .offset(sync.id)
            .and_then(super::clocks::warning),
        numbering,
        notice,
        weak_password: crmsync_sync::channel::weak_password_notice(&sync.password.0).is_some(),
        user_match_warning,
        rejected_packets: app.rejections.count(sync.id),
    })
}

/// Starts an initial sync of the whole sync (S-17) or of one configured field (S-22) as a
/// job; returns the job.
pub async fn start_initial(
    app: &App,
    sync_id: i64,
    field_id: Option<i64>,
) -> Result<JobStatus, DomainError> {
    let app2 = app.clone();
    let (sync, request) = tokio::task::spawn_blocking(move || {
        let sync = app2.core.sync(sync_id)?;
        let wire = match field_id {
            None => None,
            Some(id) => {
                let field = app2.core.sync_field(sync_id, id)?;
                Some(match sync.mode {
                    Mode::Active => field.field_no,
                    Mode::Passive => field.remote_field_no.ok_or_else(|| {
                        DomainError::invalid(
                            "map this field to the active side's field number first",
                        )
                    })?,
                })
            }
        };
        Ok::<_, DomainError>((sync, ResendRequest { field: wire }))
    })
    .await
    .map_err(|e| DomainError::Store(e.to_string()))??;
    let job = app.jobs.start();
    tokio::spawn(super::initial::run(app.clone(), sync, request, job.id));
    Ok(job)
}

/// After a sync field's direction changed: a direction that now lets values flow where
/// they did not (`off` turned back on, `upload` made `both`…) means what changed
/// meanwhile was skipped by the cursors, on this side or the other. An initial sync of
/// that one field sends it again, both ways as the directions allow; merging by stamps
/// keeps it harmless where nothing changed. The change itself is saved whatever happens
/// here: a catch-up that cannot start is logged on the sync (e.g. a passive field with
/// no number of the active side yet), and an initial sync of the field does it later.
pub async fn catch_up_reopened(app: &App, before: &SyncField, after: &SyncField) {
    let opens = |flows: fn(Direction) -> bool| flows(after.direction) && !flows(before.direction);
    if !opens(Direction::sends) && !opens(Direction::receives) {
        return;
    }
    if let Err(e) = start_initial(app, after.sync_id, Some(after.id)).await {
        let (core, sync_id, field_no) = (app.core.clone(), after.sync_id, after.field_no);
        let _ = tokio::task::spawn_blocking(move || {
            let sync = core.sync(sync_id)?;
            core.log_sync(
                &sync,
                "error",
                format!(
                    "field {field_no} turned back on: what changed while it was off could not be sent again ({e}); run an initial sync of the field"
                ),
                None,
            )
        })
        .await;
    }
}

/// The per-record "Sync" action (S-24): queues the record again on every sync that sends
/// its table; returns those syncs (id, name). Blocking.
pub fn sync_record(app: &App, table_id: i64, id: i64) -> Result<Vec<(i64, String)>, DomainError> {
    app.core.record(table_id, id)?;
    let mut queued = Vec::new();
    for sync in app.core.syncs()? {
        let mapping = super::initial::mapping_for(app, &sync)?;
        let sends = mapping
            .routes
            .iter()
            .any(|r| r.local.table_id == table_id && r.direction.sends());
        if sends {
            app.core.resend(sync.id, table_id, &[id], &[])?;
            queued.push((sync.id, sync.name));
        }
    }
    if queued.is_empty() {
        return Err(DomainError::Conflict(format!(
            "no sync sends table {table_id}; configure a field of it with direction both or upload"
        )));
    }
    Ok(queued)
}

/// Where the same record lives on an active side (S-23): for each passive sync with remote
/// access and the active side's address that carries this table, that address and the
/// active side's table id, and the record's uid there (its own, unless paired by a key).
/// Blocking.
pub fn remote_copies(
    app: &App,
    table_id: i64,
    uid: uuid::Uuid,
) -> Result<Vec<(i64, String, i64, uuid::Uuid)>, DomainError> {
    let mut copies = Vec::new();
    for sync in app.core.syncs()? {
        let (Mode::Passive, true, Some(base)) =
            (sync.mode, sync.remote_access, sync.remote_url.as_deref())
        else {
            continue;
        };
        let mapping = super::passive::passive_mapping(app, &sync)?;
        if let Some(wire_table) = mapping.wire_table(table_id) {
            copies.push((
                sync.id,
                base.trim_end_matches('/').to_string(),
                wire_table,
                mapping.uids.to_peer(uid),
            ));
        }
    }
    Ok(copies)
}
