//! The folder transports, local and FTP (S-09, S-10, S-25..S-28): each side writes its packets into its
//! upload folder and reads its peer's from its download folder — the peer's upload folder.
//! Both sides run this loop, on every commit and every period. Files are written under a
//! temporary name and renamed when complete; a file is read in sequence, applied, and
//! removed only after the apply has committed. A forged, truncated, corrupted or replayed
//! file is moved aside (`NAME.rejected`), logged, and changes nothing.

use super::content::{self, FolderContent};
use super::folder_channel::Channel;
use super::folders::{Folders, FtpFolders, LocalFolders};
use super::initial::mapping_for;
use super::passive::{PACKET_LIMIT, receive};
use crate::app::App;
use crmsync_domain::DomainError;
use crmsync_domain::sync::{Mode, SyncConfig, Transport, TransportSettings};
use crmsync_sync::build_packet;
use crmsync_sync::channel::Role;
use crmsync_sync::content::{chunk_packet, files_in};
use crmsync_sync::folder::{self, Sequence};
use crmsync_sync::folder_channel::{PairingFile, PairingStep};
use crmsync_sync::mapping::catalog;
use std::time::{Duration, Instant};

/// How many periods a missing packet is waited for before the gap is reported.
const GAP_PATIENCE_PERIODS: u32 = 3;
/// How often a local download folder is looked at.
const LOCAL_LOOK: Duration = Duration::from_millis(200);

pub async fn run(app: App, sync_id: i64) {
    let mut commits = app.syncs.commits();
    let mut catalog_written = false;
    let mut first_round = true;
    let mut gap_since: Option<Instant> = None;
    loop {
        // After a failure (folder or server unreachable) the round is retried this soon.
        let (app2, retry) = (app.clone(), Duration::from_secs(5));
        let catalog_due = !catalog_written;
        let outcome =
            tokio::task::spawn_blocking(move || exchange(&app2, sync_id, catalog_due, first_round))
                .await;
        let period = match outcome {
            Ok(Ok(round)) => {
                first_round = false;
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
    tally: Tally,
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

/// What one round did, as `crmsync sync-now` reports it.
#[derive(Debug, Default)]
pub struct Tally {
    pub packets_written: usize,
    pub records_written: usize,
    pub packets_read: usize,
    pub records_read: usize,
    /// Packets moved aside as `NAME.rejected`.
    pub packets_rejected: usize,
    /// What the download folder is waiting for, if something is missing.
    pub waiting: Option<String>,
}

impl Tally {
    /// The round as a person reads it (`crmsync sync-now`): "wrote 1 record(s) in 1
    /// packet(s), read 0 packet(s) with 0 record(s)", and what else the round met.
    pub fn describe(&self) -> String {
        let mut text = format!(
            "wrote {} record(s) in {} packet(s), read {} packet(s) with {} record(s)",
            self.records_written, self.packets_written, self.packets_read, self.records_read
        );
        if self.packets_rejected > 0 {
            text += &format!(
                ", moved {} rejected packet(s) aside (see the sync's log)",
                self.packets_rejected
            );
        }
        if let Some(waiting) = &self.waiting {
            text += &format!("; {waiting}");
        }
        text
    }
}

/// The place `sync` leaves its packets, with its upload and download folders there: the
/// one spot that knows which folder transports exist.
fn folders_for(
    app: &App,
    sync: &SyncConfig,
) -> Result<(Box<dyn Folders>, String, String), DomainError> {
    Ok(match &sync.transport {
        TransportSettings::Local(local) => {
            let (upload, download) = LocalFolders::dirs(local);
            (Box::new(LocalFolders), upload, download)
        }
        TransportSettings::Ftp(ftp) => {
            let session = FtpFolders::connect(ftp, &app.tls_client)
                .map_err(|e| DomainError::Unavailable(e.to_string()))?;
            (
                Box::new(session),
                ftp.upload_dir.clone(),
                ftp.download_dir.clone(),
            )
        }
        TransportSettings::Http => {
            return Err(DomainError::invalid("no folders configured for this sync"));
        }
    })
}

/// One round now, outside the loop (`crmsync sync-now`), in this process: write what is
/// pending, read what has arrived, then write the answers what was read asks for (this
/// process keeps nothing queued once it ends). A failure is recorded in the status.
pub async fn exchange_now(app: &App, sync_id: i64) -> Result<Tally, String> {
    let app2 = app.clone();
    let outcome = tokio::task::spawn_blocking(move || {
        let mut round = exchange(&app2, sync_id, true, true)?;
        if app2.mailboxes.waiting(sync_id) {
            let answers = exchange(&app2, sync_id, false, false)?;
            let (first, then) = (&mut round.tally, answers.tally);
            first.packets_written += then.packets_written;
            first.records_written += then.records_written;
            first.packets_read += then.packets_read;
            first.records_read += then.records_read;
            first.packets_rejected += then.packets_rejected;
            round.gap = answers.gap;
        }
        Ok::<_, DomainError>(round)
    })
    .await;
    let error = match outcome {
        Ok(Ok(round)) => {
            let mut tally = round.tally;
            tally.waiting = round.gap.map(|Waiting(reason)| reason);
            return Ok(tally);
        }
        Ok(Err(error)) => error.to_string(),
        Err(join) => join.to_string(),
    };
    fail(app, sync_id, error.clone()).await;
    Err(error)
}

/// Taken for a round: one round at a time per sync, also between processes on this data
/// directory (`crmsync sync-now` beside the running server), which `exchange_turns` (one
/// process's) cannot see. The lock goes with the file when it is closed.
pub(crate) fn round_lock(app: &App, sync_id: i64) -> Result<std::fs::File, DomainError> {
    let dir = app.data_dir.join("locks");
    let lock_error = |e: std::io::Error| {
        DomainError::Store(format!("cannot take the lock in {}: {e}", dir.display()))
    };
    std::fs::create_dir_all(&dir).map_err(lock_error)?;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(format!("sync-{sync_id}.lock")))
        .map_err(lock_error)?;
    file.lock().map_err(lock_error)?;
    Ok(file)
}

/// One round: write what is pending, read what has arrived.
/// `first_round`: the first round since the runner started (after a settings change).
fn exchange(
    app: &App,
    sync_id: i64,
    catalog_due: bool,
    first_round: bool,
) -> Result<Round, DomainError> {
    let turn = app.exchange_turns.of(sync_id);
    let _turn = turn.lock().unwrap_or_else(|e| e.into_inner());
    let _across_processes = round_lock(app, sync_id)?;
    let sync = app.core.sync(sync_id)?;
    let period = Duration::from_secs(u64::from(sync.period_seconds));
    // With no fields yet the folders are still checked and the active side's hello goes
    // out; the peer's packets wait in the folder until this side has fields to take them.
    let has_fields = !app.core.sync_fields(sync_id)?.is_empty();
    let (mut folders, upload, download) = folders_for(app, &sync)?;
    for dir in [&upload, &download] {
        folders
            .prepare(dir)
            .map_err(|e| folder_error("create", &folders.describe(dir), e))?;
    }
    let mut tally = Tally::default();
    let mut channel = Channel::load(app, &sync, &upload)?;
    let now = app.core.now_ms();
    let step = match channel.role {
        Role::Active => channel
            .state
            .active_step(&sync.password.0, &channel.own, now),
        // Without a key (new, restored, password changed) the passive side asks for one.
        _ if !channel.state.paired() => channel.state.ask_again(&channel.own, now),
        _ => PairingStep::Nothing,
    };
    channel.write_pairing(app, &sync, folders.as_mut(), step)?;
    // Only once the two sides hold a key: nothing goes out unsealed.
    let write = |folders: &mut dyn Folders, channel: &mut Channel, tally: &mut Tally| match channel
        .state
        .paired()
    {
        true => write_outgoing(app, &sync, folders, &upload, catalog_due, channel, tally),
        false => Ok(false),
    };
    let mut catalog_written = write(folders.as_mut(), &mut channel, &mut tally)?;
    if first_round && has_fields {
        // Once per start, i.e. after every settings change: a password set right now
        // brings back what was refused with the wrong one.
        readmit_rejected(app, &sync, folders.as_mut(), &download, &mut channel)?;
    }
    let was_paired = channel.state.paired();
    let mut gap = read_incoming(
        app,
        &sync,
        folders.as_mut(),
        &download,
        has_fields,
        &mut channel,
        &mut tally,
    )?;
    if !was_paired && channel.state.paired() {
        // Paired in this round: what waited goes now.
        catalog_written = write(folders.as_mut(), &mut channel, &mut tally)?;
    }
    channel.save(app, &sync)?;
    // A sync only a third-party writer writes into (issued keys) has no peer to pair with.
    if gap.is_none() && !channel.state.paired() && channel.state.writers.is_empty() {
        gap = Some(Waiting(match channel.role {
            Role::Active => "pairing: waiting for the other side to answer this side's pairing \
                             offer (is it running, with the same password, reading its folder?)"
                .to_string(),
            _ => "pairing: waiting for the active side's pairing offer (is it running, with the \
                  same password, reading its folder?)"
                .to_string(),
        }));
    }
    let now = app.core.now_ms();
    let state = app.core.sync_state(sync_id)?;
    if let Some(failure) = channel.state.failure.clone() {
        app.rejections.rejected(sync_id, &failure);
    }
    if let Some(refused) = app.rejections.standing(sync_id) {
        // Red until a packet from the other side is taken again.
        if state.reason.as_deref() != Some(refused.as_str()) {
            app.core.update_sync_state(sync_id, |s| {
                s.connected = false;
                s.reason = Some(refused.clone());
                s.last_error = Some(refused.clone());
                s.last_run_ms = Some(now);
            })?;
        }
    } else {
        // Frequent looks at a quiet folder write nothing: the status is renewed once a
        // period.
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
                    s.last_error = None;
                }
            })?;
        }
    }
    let next_look = match sync.transport.kind() {
        Transport::Local => period.min(LOCAL_LOOK),
        _ => period,
    };
    Ok(Round {
        period,
        tally,
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
    channel: &mut Channel,
    tally: &mut Tally,
) -> Result<bool, DomainError> {
    let active = sync.mode == Mode::Active;
    if !active && app.core.sync_state(sync.id)?.peer_catalog.is_none() {
        // Until the active side's field list has come, the passive side maps nothing: a
        // packet built now would carry none of its changes and still move its cursor past
        // them.
        return Ok(false);
    }
    let mapping = mapping_for(app, sync)?;
    let mut hello_due = catalog_due && active;
    loop {
        let state = app.core.sync_state(sync.id)?;
        let after = state.sent_seq;
        let mut packet = build_packet(&app.core, sync, &mapping, after, PACKET_LIMIT)?;
        let resend_waiting = state.resend_request.is_some();
        let control_waiting = app.mailboxes.waiting(sync.id);
        // The other side learns what we applied only from a packet of ours.
        let applied = state.received_seq;
        let ack_due = app.mailboxes.with(sync.id, |c| applied > c.ack_written);
        if packet.upto == packet.after
            && !hello_due
            && !resend_waiting
            && !control_waiting
            && !ack_due
        {
            return Ok(active);
        }
        if packet.items.is_empty() && packet.remaining > 0 && packet.upto > after {
            // Nothing for this sync in this stretch, and more of the log to look at: a
            // packet without changes waits for the end, so the count of changes still to
            // come it tells the other side is not one of changes that will never come.
            app.core
                .update_sync_state(sync.id, |s| s.sent_seq = s.sent_seq.max(packet.upto))?;
            continue;
        }
        packet.ack = Some(applied);
        if active {
            packet.catalog = Some(catalog(&app.core.tables()?));
        }
        packet.user_match = Some(sync.user_match);
        // An initial sync started here asks the peer for its rows, once.
        let mut request = None;
        app.core
            .update_sync_state(sync.id, |s| request = s.resend_request.take())?;
        packet.resend = request.and_then(|r| serde_json::from_str(&r).ok());
        // Requests and answers waiting to go (drift checks, numbers, matches), once.
        let control = app.mailboxes.fill(sync.id, &mut packet);
        let written =
            !packet.items.is_empty() || hello_due || packet.resend.is_some() || control || ack_due;
        // What this round built up to: the build cursor moves past it either way.
        let built = packet.upto;
        if written {
            // A file with changes covers the stretch since the last such file: what was
            // skipped had nothing for this sync. One without (a hello, an ack, a request)
            // covers nothing, so it can never leave a gap however late it is read.
            packet.after = app.core.sync_state(sync.id)?.written_seq;
            if packet.items.is_empty() {
                packet.upto = packet.after;
            }
            let now = app.core.now_ms();
            let written_at = app.mailboxes.with(sync.id, |c| {
                c.last_name_ms = now.max(c.last_name_ms + 1);
                c.last_name_ms
            });
            let name = folder::file_name(&packet, written_at);
            // The files it names go first: the peer applies it only with them.
            let files = files_in(&mapping, &packet, false);
            content::write_chunks(app, folders, upload, packet.after, &files, channel)?;
            let sealed = folder::encode(&packet, &mut channel.state, channel.role, now)
                .ok_or_else(|| DomainError::Unavailable("not paired with the other side".into()))?;
            folders
                .write(upload, &name, &sealed)
                .map_err(|e| folder_error("write to", &folders.describe(upload), e))?;
            tally.packets_written += 1;
            tally.records_written += packet.items.len();
            app.mailboxes
                .with(sync.id, |c| c.ack_written = c.ack_written.max(applied));
            if !packet.items.is_empty() {
                app.metrics
                    .sent(sync.id, app.core.now_ms(), packet.items.len());
                let listed = match sync.log {
                    true => packet.logged_records(),
                    false => Default::default(),
                };
                app.core.log_sync_records(
                    sync,
                    "sent",
                    format!("sent {} record(s) in {name}", packet.items.len()),
                    listed,
                )?;
            }
        }
        hello_due = false;
        let covered = packet.upto;
        app.core.update_sync_state(sync.id, |s| {
            s.sent_seq = s.sent_seq.max(built);
            if written {
                s.written_seq = s.written_seq.max(covered);
            }
        })?;
        if built == after {
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
    has_fields: bool,
    channel: &mut Channel,
    tally: &mut Tally,
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
        let bytes = match folders.read(download, name) {
            Ok(bytes) => bytes,
            Err(e) if super::folders::is_refused(&e) => {
                set_aside(app, sync, folders, download, name, &e, tally)?;
                continue;
            }
            // Gone or unreadable this time (taken meanwhile): the next round sees.
            Err(_) => continue,
        };
        if let Some(pairing) = PairingFile::decode(&bytes) {
            channel.take_pairing(app, sync, folders, download, name, &pairing, tally)?;
            continue;
        }
        if !has_fields {
            // The peer's packets wait in the folder until this side has fields to take them.
            continue;
        }
        let accepts = channel.accepts();
        let decoded = folder::decode(&bytes, &mut channel.state, accepts, false);
        let packet = match decoded {
            Ok(packet) => Ok(packet),
            Err(rejection) => {
                channel.unknown_key(app, sync, folders, &rejection)?;
                Err(format!("it {rejection}"))
            }
        };
        let packet = match packet {
            Ok(packet) => {
                // Only a clock ahead shows in a name: behind looks like a late pickup.
                if let Some(written) = folder::written_at(name) {
                    app.peer_clocks
                        .observe(sync.id, (written - app.core.now_ms()).max(0));
                }
                packet
            }
            Err(why) => {
                set_aside(app, sync, folders, download, name, &why, tally)?;
                continue;
            }
        };
        if let Some(ack) = packet.ack {
            let state = app.core.sync_state(sync.id)?;
            if ack > state.peer_acked_seq {
                app.core
                    .update_sync_state(sync.id, |s| s.peer_acked_seq = s.peer_acked_seq.max(ack))?;
            }
        }
        if let Some(peer_catalog) = &packet.catalog {
            let text = serde_json::to_string(peer_catalog).unwrap_or_default();
            app.core
                .update_sync_state(sync.id, |s| s.peer_catalog = Some(text))?;
        }
        if let Some(theirs) = packet.user_match.map(|m| m.as_str().to_string()) {
            let state = app.core.sync_state(sync.id)?;
            if state.peer_user_match.as_deref() != Some(theirs.as_str()) {
                app.core
                    .update_sync_state(sync.id, |s| s.peer_user_match = Some(theirs))?;
            }
        }
        let received = app.core.sync_state(sync.id)?.received_seq;
        let control_only = packet.items.is_empty()
            && (packet.catalog.is_some()
                || packet.resend.is_some()
                || packet.ack.is_some()
                || super::mailbox::carries_control(&packet));
        let mut sequence = folder::sequence(&packet, received);
        if received == 0 {
            let start = app.mailboxes.with(sync.id, |c| {
                if packet.items.is_empty() && packet.upto == packet.after {
                    c.peer_start = Some(c.peer_start.map_or(packet.after, |s| s.min(packet.after)));
                }
                c.peer_start
            });
            if !packet.items.is_empty() && start.is_some_and(|s| packet.after > s) {
                // The other side's first packet with changes starts earlier: it is missing.
                sequence = Sequence::Gap;
            }
        }
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
                    &"a replay of changes applied before",
                    tally,
                )?;
                continue;
            }
            _ => {}
        }
        if !packet.items.is_empty() {
            let files = content::missing(app, &*mapping_for(app, sync)?, &packet);
            match content::read_chunks(app, folders, download, packet.after, &files, channel)? {
                FolderContent::Complete => {}
                FolderContent::Missing(chunk) => {
                    return Ok(Some(Waiting(format!(
                        "waiting for {chunk}, a part of a file the packet {name} names"
                    ))));
                }
                FolderContent::Rejected(problem) => {
                    set_aside(app, sync, folders, download, name, &problem, tally)?;
                    remove_chunks(folders, download, &listed, packet.after);
                    continue;
                }
            }
        }
        // Only a packet with changes moves the cursor: one without covers no stretch of
        // the writer's log, and read early (before a late packet with changes) it must
        // not make that packet look like a replay.
        // Taken before: refused. Its number is used up only once its apply has committed
        // (below), so a round that fails midway reads it again.
        if !channel.state.is_new(&bytes) {
            set_aside(app, sync, folders, download, name, &"a replay", tally)?;
            continue;
        }
        super::control::before_apply(app, sync, &packet)?;
        // (An older writer's packet without changes still covers a stretch: taken as before.)
        if sequence == Sequence::Apply && (!packet.items.is_empty() || packet.upto > packet.after) {
            receive(app, sync, &packet)?;
        } else if packet.items.is_empty() {
            let remaining = packet.remaining;
            app.core
                .update_sync_state(sync.id, |s| s.pending_in = remaining)?;
        }
        super::control::after_apply(app, sync, &packet)?;
        if let Some(request) = packet.resend {
            let resent = super::initial::queue_own(app, sync, request)?;
            app.mailboxes
                .with(sync.id, |c| c.send_resent = Some(resent));
        }
        channel.state.use_up(&bytes);
        channel.save(app, sync)?;
        app.rejections.accepted(sync.id);
        // Removed only now that the apply has committed.
        folders
            .remove(download, name)
            .map_err(|e| folder_error("remove a packet from", &folders.describe(download), e))?;
        tally.packets_read += 1;
        tally.records_read += packet.items.len();
        if !packet.items.is_empty() {
            // Only a packet with changes has chunk files; one without shares its `after`
            // with the next packet, whose chunks must stay.
            remove_chunks(folders, download, &listed, packet.after);
        }
    }
    Ok(None)
}

/// Puts back the packet files set aside (`NAME.rejected`) that now verify and still carry
/// changes this side has not applied — the ones refused while the two passwords differed —
/// so they are read in sequence like any other. A forged file still fails; a replay is
/// left where it is.
fn readmit_rejected(
    app: &App,
    sync: &SyncConfig,
    folders: &mut dyn Folders,
    download: &str,
    channel: &mut Channel,
) -> Result<(), DomainError> {
    let listed = folders
        .list(download)
        .map_err(|e| folder_error("read", &folders.describe(download), e))?;
    let received = app.core.sync_state(sync.id)?.received_seq;
    for name in &listed {
        let Some(original) = name.strip_suffix(".rejected") else {
            continue;
        };
        if !folder::is_packet_name(original) || listed.iter().any(|n| n == original) {
            continue;
        }
        // The name says how far the file reaches: one applied already is not read at all.
        let upto = original
            .split('-')
            .nth(1)
            .and_then(|n| n.parse::<i64>().ok());
        if received > 0 && upto.is_none_or(|upto| upto <= received) {
            continue;
        }
        let Ok(bytes) = folders.read(download, name) else {
            continue;
        };
        let accepts = channel.accepts();
        let Ok(packet) = folder::decode(&bytes, &mut channel.state, accepts, false) else {
            continue;
        };
        if packet.items.is_empty() || folder::sequence(&packet, received) == Sequence::Replay {
            continue;
        }
        if let Err(e) = folders.rename(download, name, original) {
            // Left set aside; the round goes on.
            app.core.log_sync(
                sync,
                "error",
                format!(
                    "cannot put {name} back in {}: {e}",
                    folders.describe(download)
                ),
                None,
            )?;
            continue;
        }
        app.core.log_sync(
            sync,
            "exchange",
            format!("{original}: set aside before, it verifies now and is read again"),
            None,
        )?;
    }
    Ok(())
}

/// Removes the chunk files written for the packet that follows `after`.
fn remove_chunks(folders: &mut dyn Folders, dir: &str, listed: &[String], after: i64) {
    for chunk in listed.iter().filter(|n| chunk_packet(n) == Some(after)) {
        // One left behind is removed with the next look or harmlessly stays.
        let _ = folders.remove(dir, chunk);
    }
}

/// Moves a packet file aside as `NAME.rejected`, with the reason in the status and log.
pub(crate) fn set_aside(
    app: &App,
    sync: &SyncConfig,
    folders: &mut dyn Folders,
    dir: &str,
    name: &str,
    why: &dyn std::fmt::Display,
    tally: &mut Tally,
) -> Result<(), DomainError> {
    folders
        .rename(dir, name, &format!("{name}.rejected"))
        .map_err(|e| folder_error("move a packet aside in", &folders.describe(dir), e))?;
    let message = format!("rejected {name}: {why}");
    app.rejections.rejected(sync.id, &message);
    tally.packets_rejected += 1;
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
