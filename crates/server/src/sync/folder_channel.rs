//! A folder sync's channel during a round: its keys and pairing (`crmsync_sync::folder_channel`),
//! loaded from the sync's state and saved back; pairing files written and read.

use super::folder::{Tally, set_aside};
use super::folders::Folders;
use crate::app::App;
use crmsync_domain::DomainError;
use crmsync_domain::sync::{Mode, SyncConfig};
use crmsync_sync::Packet;
use crmsync_sync::channel::{Refusal, Role};
use crmsync_sync::folder::{self, Rejection};
use crmsync_sync::folder_channel::{FolderChannel, PairingFile, PairingStep};

pub struct Channel {
    pub state: FolderChannel,
    pub role: Role,
    /// This instance's id (bound into the key).
    pub own: String,
    upload: String,
    saved: String,
}

impl Channel {
    pub fn load(app: &App, sync: &SyncConfig, upload: &str) -> Result<Channel, DomainError> {
        let stored = app.core.sync_state(sync.id)?.channel;
        let state = FolderChannel::load(stored.as_deref(), &sync.password.0);
        Ok(Channel {
            saved: stored.unwrap_or_default(),
            state,
            role: match sync.mode {
                Mode::Active => Role::Active,
                Mode::Passive => Role::Passive,
            },
            own: app.instance_id.to_string(),
            upload: upload.to_string(),
        })
    }

    /// The roles whose files this side takes (an issued writer's too, by its key).
    pub fn accepts(&self) -> &'static [Role] {
        match self.role {
            Role::Active => &[Role::Passive],
            _ => &[Role::Active],
        }
    }

    /// Stores the state when it changed.
    pub fn save(&mut self, app: &App, sync: &SyncConfig) -> Result<(), DomainError> {
        let json = self.state.to_json();
        if json != self.saved {
            let stored = json.clone();
            app.core
                .update_sync_state(sync.id, |s| s.channel = Some(stored))?;
            self.saved = json;
        }
        Ok(())
    }

    pub fn write_pairing(
        &mut self,
        app: &App,
        sync: &SyncConfig,
        folders: &mut dyn Folders,
        step: PairingStep,
    ) -> Result<(), DomainError> {
        let PairingStep::Write(file) = step else {
            return Ok(());
        };
        // Saved first: an answer may come before this round ends, and must meet the seed.
        self.save(app, sync)?;
        let now = app.core.now_ms();
        let written_at = app.mailboxes.with(sync.id, |c| {
            c.last_name_ms = now.max(c.last_name_ms + 1);
            c.last_name_ms
        });
        // Named like a packet covering nothing from the start: read before every packet.
        let name = folder::file_name(&Packet::default(), written_at);
        folders
            .write(&self.upload, &name, &file.encode())
            .map_err(|e| {
                DomainError::Unavailable(format!(
                    "cannot write to {}: {e}",
                    folders.describe(&self.upload)
                ))
            })?;
        let what = match (file.pake.is_some(), file.confirm.is_some(), file.again) {
            (_, _, true) => "asked the other side to pair again",
            (true, false, _) => "offered the other side a pairing",
            (true, true, _) => "answered the other side's pairing offer",
            _ => "confirmed the pairing",
        };
        app.core
            .log_sync(sync, "auth", format!("{what} ({name})"), None)
    }

    /// A pairing file from the download folder: taken (and removed), or set aside with
    /// the reason.
    #[allow(clippy::too_many_arguments)]
    pub fn take_pairing(
        &mut self,
        app: &App,
        sync: &SyncConfig,
        folders: &mut dyn Folders,
        download: &str,
        name: &str,
        file: &PairingFile,
        tally: &mut Tally,
    ) -> Result<(), DomainError> {
        let was_paired = self.state.paired();
        let key_before = self.state.sealing_key();
        let taken = self.state.take(
            self.role,
            &sync.password.0,
            &self.own,
            file,
            app.core.now_ms(),
        );
        match taken {
            Ok(step) => {
                if self.role == Role::Active && file.pake.is_some() {
                    let peer = file.from.clone();
                    app.core
                        .update_sync_state(sync.id, |s| s.peer_instance = Some(peer))?;
                }
                self.write_pairing(app, sync, folders, step)?;
                if let Some(failure) = &self.state.failure {
                    set_aside(app, sync, folders, download, name, failure, tally)?;
                    return self.save(app, sync);
                }
                self.save(app, sync)?;
                let key_after = self.state.sealing_key();
                if key_after.is_some() && key_after != key_before {
                    // A new key: whatever the other side has not acknowledged goes again
                    // under it (it may have been restored from a backup, or have set aside
                    // files under a key it lost).
                    app.core.update_sync_state(sync.id, |s| {
                        s.sent_seq = s.sent_seq.min(s.peer_acked_seq);
                        s.written_seq = s.written_seq.min(s.peer_acked_seq);
                    })?;
                    let message = match was_paired {
                        false => "the other side proved the sync password: a fresh key is agreed",
                        true => "the other side proved the sync password: the key is renewed",
                    };
                    app.core.log_sync(sync, "auth", message, None)?;
                }
                folders.remove(download, name).map_err(|e| {
                    DomainError::Unavailable(format!(
                        "cannot remove a pairing file from {}: {e}",
                        folders.describe(download)
                    ))
                })
            }
            Err(why) => {
                self.save(app, sync)?;
                set_aside(app, sync, folders, download, name, &why, tally)
            }
        }
    }

    /// A file under a key this side does not hold: the two sides pair again.
    pub fn unknown_key(
        &mut self,
        app: &App,
        sync: &SyncConfig,
        folders: &mut dyn Folders,
        rejection: &Rejection,
    ) -> Result<(), DomainError> {
        if !matches!(rejection, Rejection::Refused(Refusal::UnknownKey(_))) {
            return Ok(());
        }
        let now = app.core.now_ms();
        let step = match self.role {
            Role::Active => self.state.offer_again(&sync.password.0, &self.own, now),
            _ => self.state.ask_again(&self.own, now),
        };
        self.write_pairing(app, sync, folders, step)
    }
}

/// Changes a folder sync's channel between rounds (an issued writer key), in turn with
/// them, also across processes on this data directory.
pub fn change<T>(
    app: &App,
    sync_id: i64,
    change: impl FnOnce(&mut FolderChannel, i64) -> T,
) -> Result<T, DomainError> {
    let sync = app.core.sync(sync_id)?;
    if sync.transport.kind() == crmsync_domain::sync::Transport::Http {
        return Err(DomainError::invalid(
            "writer keys are for folder syncs (local or FTP), where a program can drop packets",
        ));
    }
    let turn = app.exchange_turns.of(sync_id);
    let _turn = turn.lock().unwrap_or_else(|e| e.into_inner());
    let _across_processes = super::folder::round_lock(app, sync_id)?;
    let stored = app.core.sync_state(sync_id)?.channel;
    let mut state = FolderChannel::load(stored.as_deref(), &sync.password.0);
    let outcome = change(&mut state, app.core.now_ms());
    let json = state.to_json();
    app.core
        .update_sync_state(sync_id, |s| s.channel = Some(json))?;
    Ok(outcome)
}

/// The keys issued to writers: id, label, when.
pub fn writer_keys(app: &App, sync_id: i64) -> Result<Vec<serde_json::Value>, DomainError> {
    let sync = app.core.sync(sync_id)?;
    let stored = app.core.sync_state(sync_id)?.channel;
    let state = FolderChannel::load(stored.as_deref(), &sync.password.0);
    Ok(state
        .writers
        .iter()
        .map(|k| {
            serde_json::json!({
                "id": k.id(),
                "label": k.label,
                "created_ms": k.made_ms(),
            })
        })
        .collect())
}
