//! Requests and answers that travel in folder packets (over HTTP each is a call of its
//! own): a drift check's digests (B-16), blocks of a shared numbering (B-06), and a match
//! by a key field's records and pairs (B-05). Per sync, in memory, this keeps what waits to
//! be written with the next packet and what came back for someone waiting on it; a packet
//! read is answered here. A request lost with a restart is simply asked again.

use crate::app::App;
use crmsync_domain::DomainError;
use crmsync_domain::sync::{Mode, SyncConfig, Transport};
use crmsync_sync::Packet;
use crmsync_sync::drift::{DigestRequest, Digests};
use crmsync_sync::protocol::{
    GrantedBlock, Item, NumberBlockRequest, PairOutcome, PairRequest, ResendSummary,
};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Clone, Default)]
pub struct FolderControl(Arc<Mutex<HashMap<i64, Control>>>);

/// One sync's requests and answers. `send_*`: waits to be written; `got_*`: read, for
/// whoever waits on it.
#[derive(Default)]
pub struct Control {
    pub send_digest_request: Option<DigestRequest>,
    pub send_digests: Option<Digests>,
    pub got_digests: Option<Digests>,
    pub send_number_requests: Vec<NumberBlockRequest>,
    pub send_number_blocks: Vec<GrantedBlock>,
    /// Numbers asked for, by wire field number: since when, and the refusal if one came.
    pub numbers_asked: HashMap<i64, (Instant, Option<String>)>,
    pub send_records_request: Option<i64>,
    pub send_records: Option<Vec<Item>>,
    pub got_records: Option<Vec<Item>>,
    pub send_pairs: Option<PairRequest>,
    pub send_paired: Option<PairOutcome>,
    pub got_paired: Option<PairOutcome>,
    /// The `ack` our last packet carried: a packet goes when we have applied more since.
    pub ack_written: i64,
    /// What we queued in answer to the other side's `resend` (over HTTP it rides on the
    /// active side's next pull)…
    pub send_resent: Option<ResendSummary>,
    /// …and what the other side queued in answer to ours (over HTTP on a passive side too).
    pub got_resent: Option<ResendSummary>,
    /// Before any packet with changes was applied: where the other side's packets with
    /// changes start (the `after` of a packet without changes is the writer's position),
    /// so a first packet that never came shows as missing rather than being skipped.
    pub peer_start: Option<i64>,
    /// The time in the name of the last packet file written: names never repeat.
    pub last_name_ms: i64,
    /// Requests written and not answered yet: an answer is taken only for one of these,
    /// once.
    pub awaiting_digests: bool,
    pub awaiting_records: bool,
    pub awaiting_paired: bool,
}

impl FolderControl {
    pub fn with<T>(&self, sync_id: i64, f: impl FnOnce(&mut Control) -> T) -> T {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        f(map.entry(sync_id).or_default())
    }

    /// Whether something waits to be written (a packet goes even with no changes).
    pub fn waiting(&self, sync_id: i64) -> bool {
        self.with(sync_id, |c| {
            c.send_digest_request.is_some()
                || c.send_digests.is_some()
                || !c.send_number_requests.is_empty()
                || !c.send_number_blocks.is_empty()
                || c.send_records_request.is_some()
                || c.send_records.is_some()
                || c.send_pairs.is_some()
                || c.send_paired.is_some()
                || c.send_resent.is_some()
        })
    }

    /// Moves what waits into `packet`; returns whether there was anything.
    pub fn fill(&self, sync_id: i64, packet: &mut Packet) -> bool {
        self.with(sync_id, |c| {
            if let Some(request) = c.send_digest_request.take() {
                packet.digest_request = Some(request.fields);
                packet.digest_directions = Some(request.directions);
                c.awaiting_digests = true;
            }
            packet.digests = c.send_digests.take();
            packet.number_requests = std::mem::take(&mut c.send_number_requests);
            packet.number_blocks = std::mem::take(&mut c.send_number_blocks);
            packet.records_request = c.send_records_request.take();
            c.awaiting_records |= packet.records_request.is_some();
            packet.records = c.send_records.take();
            packet.pairs = c.send_pairs.take();
            c.awaiting_paired |= packet.pairs.is_some();
            packet.paired = c.send_paired.take();
            packet.resent = c.send_resent.take();
        });
        carries_control(packet)
    }

    /// Asks through the next packet and waits for the answer `answer` picks out.
    pub async fn ask<T>(
        &self,
        app: &App,
        sync: &SyncConfig,
        ask: impl FnOnce(&mut Control),
        mut answer: impl FnMut(&mut Control) -> Option<T>,
    ) -> Result<T, String> {
        self.with(sync.id, ask);
        app.syncs.committed();
        let patience = patience(sync);
        let started = Instant::now();
        loop {
            if let Some(found) = self.with(sync.id, &mut answer) {
                return Ok(found);
            }
            if started.elapsed() > patience {
                return Err(format!(
                    "asked through the sync's folders {} s ago and no answer yet; is the other side running and reading its folder?",
                    patience.as_secs()
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Whether a packet carries requests or answers (read whatever its place in sequence).
pub fn carries_control(packet: &Packet) -> bool {
    packet.digest_request.is_some()
        || packet.digests.is_some()
        || !packet.number_requests.is_empty()
        || !packet.number_blocks.is_empty()
        || packet.records_request.is_some()
        || packet.records.is_some()
        || packet.pairs.is_some()
        || packet.paired.is_some()
        || packet.resent.is_some()
}

/// How long a request through folders waits for its answer: the request and the answer
/// each wait for a look at a folder (local: every 200 ms; FTP: once a period).
pub fn patience(sync: &SyncConfig) -> Duration {
    match sync.transport {
        Transport::Local | Transport::Http => Duration::from_secs(10),
        Transport::Ftp => Duration::from_secs(u64::from(sync.period_seconds) * 4 + 10),
    }
}

/// Before a packet's changes apply: pairs come first, so the records they name meet.
pub fn before_apply(app: &App, sync: &SyncConfig, packet: &Packet) -> Result<(), DomainError> {
    let Some(pairs) = packet.pairs.as_ref().filter(|_| sync.mode == Mode::Passive) else {
        return Ok(());
    };
    let outcome = super::matching::record_pairs(app, sync, pairs);
    let reply = match outcome {
        Ok(paired) => PairOutcome {
            paired,
            refused: None,
        },
        Err(e) => PairOutcome {
            paired: 0,
            refused: Some(e.to_string()),
        },
    };
    app.folder_control
        .with(sync.id, |c| c.send_paired = Some(reply));
    app.syncs.committed();
    Ok(())
}

/// After a packet's changes applied: answers its requests, keeps its answers.
pub fn after_apply(app: &App, sync: &SyncConfig, packet: &Packet) -> Result<(), DomainError> {
    if !carries_control(packet) {
        return Ok(());
    }
    let mapping = super::initial::mapping_for(app, sync)?;
    let control = &app.folder_control;
    if let Some(resent) = packet.resent {
        control.with(sync.id, |c| c.got_resent = Some(resent));
    }
    match sync.mode {
        Mode::Passive => {
            if let Some(fields) = &packet.digest_request {
                let request = DigestRequest {
                    fields: fields.clone(),
                    directions: packet.digest_directions.clone().unwrap_or_default(),
                };
                let digests = crmsync_sync::drift::answer(&app.core, sync, &mapping, &request)?;
                control.with(sync.id, |c| c.send_digests = Some(digests));
            }
            if let Some(table) = packet.records_request {
                let items = crmsync_sync::matching::table_items(&app.core, sync, &mapping, table)?;
                control.with(sync.id, |c| c.send_records = Some(items));
            }
        }
        Mode::Active => {
            let mut unasked = Vec::new();
            control.with(sync.id, |c| {
                if let Some(digests) = &packet.digests {
                    match std::mem::take(&mut c.awaiting_digests) {
                        true => c.got_digests = Some(digests.clone()),
                        false => unasked.push("digests"),
                    }
                }
                if let Some(records) = &packet.records {
                    match std::mem::take(&mut c.awaiting_records) {
                        true => c.got_records = Some(records.clone()),
                        false => unasked.push("records"),
                    }
                }
                if let Some(paired) = &packet.paired {
                    match std::mem::take(&mut c.awaiting_paired) {
                        true => c.got_paired = Some(paired.clone()),
                        false => unasked.push("pairs recorded"),
                    }
                }
            });
            for what in unasked {
                // Not silently: an answer to nothing asked is left out, with the reason.
                app.core.log_sync(
                    sync,
                    "error",
                    format!("ignored {what} this side did not ask for (asked before a restart, or a replay)"),
                    None,
                )?;
            }
        }
    }
    // Numbers go either way.
    super::numbering::grant_from_folder(app, sync, &mapping, &packet.number_requests)?;
    super::numbering::receive_from_folder(app, sync, &mapping, &packet.number_blocks)?;
    app.syncs.committed();
    Ok(())
}
