//! The folder transports, local and FTP (S-09, S-10, S-25..S-28): each side writes its packets into its
//! upload folder and reads its peer's from its download folder — the peer's upload folder.
//! Both sides run this loop, on every commit and every period. Files are written under a
//! temporary name and renamed when complete; a file is read in sequence, applied, and
//! removed only after the apply has committed. A forged, truncated, corrupted or replayed
//! file is moved aside (`NAME.rejected`), logged, and changes nothing.

use super::content::{self, FolderContent};
use super::folders::{Folders, FtpFolders, LocalFolders};
use super::initial::mapping_for;
use super::passive::{PACKET_LIMIT, receive};
use crate::app::App;
use crmsync_domain::DomainError;
use crmsync_domain::sync::{Mode, SyncConfig, Transport};
use crmsync_sync::build_packet;
use crmsync_sync::content::{chunk_packet, files_in};
use crmsync_sync::folder::{self, Sequence};
use crmsync_sync::mapping::catalog;
use std::time::{Duration, Instant};

/// How many periods a missing packet is waited for before the gap is reported.
const GAP_PATIENCE_PERIODS: u32 = 3;
/// How often a local download folder is looked at.
const LOCAL_LOOK: Duration = Duration::from_millis(200);

pub async fn run(app: App, sync_id: i64) {
    let mut commits = app.syncs.commits();
    let mut catalog_written = false;
    let mut gap_since: Option<Instant> = None;
    loop {
        // After a failure (folder or server unreachable) the round is retried this soon.
        let (app2, retry) = (app.clone(), Duration::from_secs(5));
        let catalog_due = !catalog_written;
        let outcome =
            tokio::task::spawn_blocking(move || exchange(&app2, sync_id, catalog_due)).await;
        let period = match outcome {
            Ok(Ok(round)) => {
                catalog_written |= round.catalog_written;
                report(
                    &app,
                    sync_id,
                    round.gap,
                    round.period * GAP_PATIENCE_PERIODS,
                    &mut gap_since,
                )
                .await;
                round.next_look
            }
            Ok(Err(error)) => {
                catalog_written = false;
                fail(&app, sync_id, error.to_string()).await;
                retry
            }
            Err(join) => {
                fail(&app, sync_id, join.to_string()).await;
                retry
            }
        };
        tokio::select! {
            _ = commits.changed() => {}
            _ = tokio::time::sleep(period) => {}
        }
    }
}

struct Round {
    period: Duration,
    /// When to look again without a commit here: a local folder is cheap to look at, so
    /// it is looked at often and a peer's packet is taken within a fraction of a second;
    /// an FTP server is asked once per period.
    next_look: Duration,
    catalog_written: bool,
    /// What the folder is waiting for (a packet or a chunk file that is missing).
    gap: Option<Waiting>,
}

fn folder_error(action: &str, place: &str, e: std::io::Error) -> DomainError {
    DomainError::Unavailable(format!("cannot {action} {place}: {e}"))
}

/// One round: write what is pending, read what has arrived.
fn exchange(app: &App, sync_id: i64, catalog_due: bool) -> Result<Round, DomainError> {
    let turn = app.exchange_turns.of(sync_id);
    let _turn = turn.lock().unwrap_or_else(|e| e.into_inner());
    let sync = app.core.sync(sync_id)?;
    let period = Duration::from_secs(u64::from(sync.period_seconds));
    if app.core.sync_fields(sync_id)?.is_empty() {
        return Err(DomainError::invalid(
            "no fields configured for this sync yet",
        ));
    }
    let (mut folders, upload, download): (Box<dyn Folders>, String, String) =
        match (sync.transport, &sync.local, &sync.ftp) {
            (Transport::Local, Some(local), _) => {
                let (upload, download) = LocalFolders::dirs(local);
                (Box::new(LocalFolders), upload, download)
            }
            (Transport::Ftp, _, Some(ftp)) => {
                let session = FtpFolders::connect(ftp, &app.tls_client)
                    .map_err(|e| DomainError::Unavailable(e.to_string()))?;
                (
                    Box::new(session),
                    ftp.upload_dir.clone(),
                    ftp.download_dir.clone(),
                )
            }
            _ => return Err(DomainError::invalid("no folders configured for this sync")),
        };
    for dir in [&upload, &download] {
        folders
            .prepare(dir)
            .map_err(|e| folder_error("create", &folders.describe(dir), e))?;
    }
    let catalog_written = write_outgoing(app, &sync, folders.as_mut(), &upload, catalog_due)?;
    let gap = read_incoming(app, &sync, folders.as_mut(), &download)?;
    let now = app.core.now_ms();
    // Frequent looks at a quiet folder write nothing: the status is renewed once a period.
    let state = app.core.sync_state(sync_id)?;
    let stale = state
        .last_success_ms
        .is_none_or(|t| now - t >= period.as_millis() as i64);
    if stale || !state.connected || (gap.is_none() && state.reason.is_some()) {
        app.core.update_sync_state(sync_id, |s| {
            s.connected = true;
            s.last_run_ms = Some(now);
            s.last_success_ms = Some(now);
            if gap.is_none() {
                s.reason = None;
            }
        })?;
    }
    let next_look = match sync.transport {
        Transport::Local => period.min(LOCAL_LOOK),
        _ => period,
    };
    Ok(Round {
        period,
        next_look,
        catalog_written,
        gap,
    })
}

/// Writes packets for everything after the cursor. The active side's packets carry its
/// field catalogue, so the passive side can map them; once per start it writes one even
/// with nothing to send.
fn write_outgoing(
    app: &App,
    sync: &SyncConfig,
    folders: &mut dyn Folders,
    upload: &str,
    catalog_due: bool,
) -> Result<bool, DomainError> {
    let mapping = mapping_for(app, sync)?;
    let active = sync.mode == Mode::Active;
    let mut hello_due = catalog_due && active;
    loop {
        let state = app.core.sync_state(sync.id)?;
        let after = state.sent_seq;
        let mut packet = build_packet(&app.core, sync, &mapping, after, PACKET_LIMIT)?;
        let resend_waiting = state.resend_request.is_some();
        let control_waiting = app.folder_control.waiting(sync.id);
        // The other side learns what we applied only from a packet of ours.
        let applied = state.received_seq;
        let ack_due = app
            .folder_control
            .with(sync.id, |c| applied > c.ack_written);
        if packet.upto == packet.after
            && !hello_due
            && !resend_waiting
            && !control_waiting
            && !ack_due
        {
            return Ok(active);
        }
        packet.ack = Some(applied);
        if active {
            packet.catalog = Some(catalog(&app.core.tables()?));
        }
        // An initial sync started here asks the peer for its rows, once.
        let mut request = None;
        app.core
            .update_sync_state(sync.id, |s| request = s.resend_request.take())?;
        packet.resend = request.and_then(|r| serde_json::from_str(&r).ok());
        // Requests and answers waiting to go (drift checks, numbers, matches), once.
        let control = app.folder_control.fill(sync.id, &mut packet);
        let written =
            !packet.items.is_empty() || hello_due || packet.resend.is_some() || control || ack_due;
        if written {
            // The file covers the stretch since the last file: what was skipped had
            // nothing for this sync.
            packet.after = app.core.sync_state(sync.id)?.written_seq;
            let name = folder::file_name(&packet, app.core.now_ms());
            // The files it names go first: the peer applies it only with them.
            let files = files_in(&mapping, &packet, false);
            content::write_chunks(app, folders, upload, packet.after, &files)?;
            folders
                .write(upload, &name, &folder::encode(&packet, &sync.password.0))
                .map_err(|e| folder_error("write to", &folders.describe(upload), e))?;
            app.folder_control
                .with(sync.id, |c| c.ack_written = c.ack_written.max(applied));
            if !packet.items.is_empty() {
                app.metrics
                    .sent(sync.id, app.core.now_ms(), packet.items.len());
                app.core.log_sync(
                    sync,
                    "exchange",
                    format!("wrote {} record(s) to {name}", packet.items.len()),
                    None,
                )?;
            }
        }
        hello_due = false;
        let upto = packet.upto;
        app.core.update_sync_state(sync.id, |s| {
            s.sent_seq = s.sent_seq.max(upto);
            if written {
                s.written_seq = s.written_seq.max(upto);
            }
        })?;
        if upto == after {
            return Ok(true);
        }
    }
}

/// What a folder is waiting for, in words for the status once it has waited too long.
struct Waiting(String);

/// Reads the peer's packets in sequence; returns what is missing, if something is.
fn read_incoming(
    app: &App,
    sync: &SyncConfig,
    folders: &mut dyn Folders,
    download: &str,
) -> Result<Option<Waiting>, DomainError> {
    let listed = folders
        .list(download)
        .map_err(|e| folder_error("read", &folders.describe(download), e))?;
    let mut names: Vec<&String> = listed
        .iter()
        .filter(|name| folder::is_packet_name(name))
        .collect();
    names.sort();
    for name in names {
        let Ok(bytes) = folders.read(download, name) else {
            continue;
        };
        let packet = match folder::decode(&bytes, &sync.password.0) {
            Ok(packet) => {
                // Only a clock ahead shows in a name: behind looks like a late pickup.
                if let Some(written) = folder::written_at(name) {
                    app.peer_clocks
                        .observe(sync.id, (written - app.core.now_ms()).max(0));
                }
                packet
            }
            Err(rejection) => {
                set_aside(
                    app,
                    sync,
                    folders,
                    download,
                    name,
                    &format!("rejected {name}: {rejection}"),
                )?;
                continue;
            }
        };
        if let Some(ack) = packet.ack {
            app.folder_control
                .with(sync.id, |c| c.peer_applied = c.peer_applied.max(ack));
        }
        if let Some(peer_catalog) = &packet.catalog {
            let text = serde_json::to_string(peer_catalog).unwrap_or_default();
            app.core
                .update_sync_state(sync.id, |s| s.peer_catalog = Some(text))?;
        }
        let received = app.core.sync_state(sync.id)?.received_seq;
        let control_only = packet.items.is_empty()
            && (packet.catalog.is_some()
                || packet.resend.is_some()
                || packet.ack.is_some()
                || super::control::carries_control(&packet));
        let sequence = folder::sequence(&packet, received);
        match sequence {
            Sequence::Gap if !control_only => {
                return Ok(Some(Waiting(format!(
                    "waiting for the packet that follows change {received}: a packet is missing from the download folder"
                ))));
            }
            Sequence::Replay if !control_only => {
                set_aside(
                    app,
                    sync,
                    folders,
                    download,
                    name,
                    &format!("rejected {name}: a replay of changes applied before"),
                )?;
                continue;
            }
            _ => {}
        }
        if !packet.items.is_empty() {
            let files = content::missing(app, &mapping_for(app, sync)?, &packet);
            match content::read_chunks(app, folders, download, packet.after, &files)? {
                FolderContent::Complete => {}
                FolderContent::Missing(chunk) => {
                    return Ok(Some(Waiting(format!(
                        "waiting for {chunk}, a part of a file the packet {name} names"
                    ))));
                }
                FolderContent::Rejected(problem) => {
                    set_aside(
                        app,
                        sync,
                        folders,
                        download,
                        name,
                        &format!("rejected {name}: {problem}"),
                    )?;
                    remove_chunks(folders, download, &listed, packet.after);
                    continue;
                }
            }
        }
        // In sequence, even a packet with nothing to apply moves the cursor: the writer's
        // next packet starts where it ended (a hello written at start can cover log
        // entries with nothing for this sync).
        super::control::before_apply(app, sync, &packet)?;
        if sequence == Sequence::Apply {
            receive(app, sync, &packet)?;
        }
        super::control::after_apply(app, sync, &packet)?;
        if let Some(request) = packet.resend {
            let resent = super::initial::queue_own(app, sync, request)?;
            app.folder_control
                .with(sync.id, |c| c.send_resent = Some(resent));
        }
        // Removed only now that the apply has committed.
        folders
            .remove(download, name)
            .map_err(|e| folder_error("remove a packet from", &folders.describe(download), e))?;
        if !packet.items.is_empty() {
            // Only a packet with changes has chunk files; one without shares its `after`
            // with the next packet, whose chunks must stay.
            remove_chunks(folders, download, &listed, packet.after);
        }
    }
    Ok(None)
}

/// Removes the chunk files written for the packet that follows `after`.
fn remove_chunks(folders: &mut dyn Folders, dir: &str, listed: &[String], after: i64) {
    for chunk in listed.iter().filter(|n| chunk_packet(n) == Some(after)) {
        // One left behind is removed with the next look or harmlessly stays.
        let _ = folders.remove(dir, chunk);
    }
}

fn set_aside(
    app: &App,
    sync: &SyncConfig,
    folders: &mut dyn Folders,
    dir: &str,
    name: &str,
    message: &str,
) -> Result<(), DomainError> {
    folders
        .rename(dir, name, &format!("{name}.rejected"))
        .map_err(|e| folder_error("move a packet aside in", &folders.describe(dir), e))?;
    app.core.log_sync(sync, "error", message, None)
}

async fn report(
    app: &App,
    sync_id: i64,
    gap: Option<Waiting>,
    patience: Duration,
    since: &mut Option<Instant>,
) {
    let Some(Waiting(reason)) = gap else {
        *since = None;
        return;
    };
    let started = *since.get_or_insert_with(Instant::now);
    if started.elapsed() < patience {
        return;
    }
    fail(app, sync_id, reason).await;
}

async fn fail(app: &App, sync_id: i64, reason: String) {
    let core = app.core.clone();
    let _ = tokio::task::spawn_blocking(move || {
        let previous = core.sync_state(sync_id)?.reason;
        let now = core.now_ms();
        core.update_sync_state(sync_id, |s| {
            s.connected = false;
            s.reason = Some(reason.clone());
            s.last_error = Some(reason.clone());
            s.last_run_ms = Some(now);
        })?;
        if previous.as_deref() != Some(reason.as_str()) {
            let sync = core.sync(sync_id)?;
            core.log_sync(&sync, "error", reason, None)?;
        }
        Ok::<(), DomainError>(())
    })
    .await;
}
