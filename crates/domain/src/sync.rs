//! Sync settings as the instance stores them: a sync's configuration, its fields with
//! their directions, its progress and its log. Plain data and validation; the exchange
//! itself lives in the `crmsync-sync` crate.

use crate::folder_path::{ftp_folder_key, local_folder_key};
use crate::{DomainError, FieldNo};
use serde::{Deserialize, Serialize};

pub type SyncId = i64;

/// The smallest period between two exchanges (S-04).
pub const MIN_PERIOD_SECONDS: u32 = 1;
pub const DEFAULT_PERIOD_SECONDS: u32 = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Starts every exchange.
    Active,
    /// Only answers.
    Passive,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    Http,
    Local,
    Ftp,
}

/// Per field: what travels (S-03).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Both,
    Upload,
    Download,
    Off,
}

impl Direction {
    /// Our changes of this field leave.
    pub fn sends(self) -> bool {
        matches!(self, Direction::Both | Direction::Upload)
    }

    /// The peer's changes of this field are taken.
    pub fn receives(self) -> bool {
        matches!(self, Direction::Both | Direction::Download)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Both => "both",
            Direction::Upload => "upload",
            Direction::Download => "download",
            Direction::Off => "off",
        }
    }
}

/// Who wins when both sides changed the same field between exchanges (B-02). Chosen on the
/// active side; the passive side follows the active side's choice (it arrives with every
/// packet), so both ends decide alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConflictPolicy {
    /// The later write (hybrid logical clock, ties by instance id).
    #[default]
    Newer,
    ThisSide,
    OtherSide,
}

impl ConflictPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            ConflictPolicy::Newer => "newer",
            ConflictPolicy::ThisSide => "this_side",
            ConflictPolicy::OtherSide => "other_side",
        }
    }
}

/// How user fields are matched between instances (S-21).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UserMatch {
    Login,
    FullName,
    Id,
}

impl UserMatch {
    pub fn as_str(self) -> &'static str {
        match self {
            UserMatch::Login => "login",
            UserMatch::FullName => "full_name",
            UserMatch::Id => "id",
        }
    }

    /// The status's warning when the peer matches users another way: its user values would
    /// find the wrong people, or none (then they are held).
    pub fn mismatch(self, peer: Option<&str>) -> Option<String> {
        let peer = peer.filter(|p| *p != self.as_str())?;
        Some(format!(
            "the two sides match users differently: this side by {}, the other side by {peer}; set user_match the same on both sides",
            self.as_str()
        ))
    }
}

/// A secret that never appears in logs.
#[derive(Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl Transport {
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Http => "http",
            Transport::Local => "local",
            Transport::Ftp => "ftp",
        }
    }
}

/// A sync's transport with the settings only it has (S-25..S-28, B-09).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransportSettings {
    Http,
    Local(LocalSettings),
    Ftp(FtpSettings),
}

impl TransportSettings {
    pub fn kind(&self) -> Transport {
        match self {
            TransportSettings::Http => Transport::Http,
            TransportSettings::Local(_) => Transport::Local,
            TransportSettings::Ftp(_) => Transport::Ftp,
        }
    }

    pub fn local(&self) -> Option<&LocalSettings> {
        match self {
            TransportSettings::Local(local) => Some(local),
            _ => None,
        }
    }

    pub fn ftp(&self) -> Option<&FtpSettings> {
        match self {
            TransportSettings::Ftp(ftp) => Some(ftp),
            _ => None,
        }
    }

    /// `kind` with the settings given for it; a clear error when they are missing.
    pub fn of(
        kind: Transport,
        local: Option<LocalSettings>,
        ftp: Option<FtpSettings>,
    ) -> Result<TransportSettings, DomainError> {
        match (kind, local, ftp) {
            (Transport::Http, None, None) => Ok(TransportSettings::Http),
            (Transport::Local, Some(local), None) => Ok(TransportSettings::Local(local)),
            (Transport::Ftp, None, Some(ftp)) => Ok(TransportSettings::Ftp(ftp)),
            (Transport::Local, None, _) => Err(DomainError::invalid(
                "a local sync needs local.upload_dir and local.download_dir",
            )),
            (Transport::Ftp, _, None) => Err(DomainError::invalid(
                "an FTP sync needs ftp.host, ftp.login, ftp.password, ftp.upload_dir and ftp.download_dir",
            )),
            (kind, _, _) => Err(DomainError::invalid(format!(
                "transport: a sync over {} has no {} settings",
                kind.as_str(),
                match kind {
                    Transport::Local => "ftp",
                    Transport::Ftp => "local",
                    Transport::Http => "local or ftp",
                }
            ))),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct LocalSettings {
    pub upload_dir: String,
    pub download_dir: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct FtpSettings {
    pub host: String,
    /// 21 when not given.
    #[serde(default = "default_ftp_port")]
    pub port: u16,
    pub login: String,
    pub password: Secret,
    pub upload_dir: String,
    pub download_dir: String,
    /// Explicit FTPS (B-09).
    #[serde(default)]
    pub tls: bool,
}

fn default_ftp_port() -> u16 {
    21
}

#[derive(Debug, Clone, PartialEq)]
pub struct SyncConfig {
    pub id: SyncId,
    pub name: String,
    pub mode: Mode,
    /// How it reaches the other side, with that transport's settings.
    pub transport: TransportSettings,
    pub remote_access: bool,
    pub remote_url: Option<String>,
    pub password: Secret,
    pub log: bool,
    pub period_seconds: u32,
    pub user_match: UserMatch,
    /// An exchange deleting more than this share (percent) of a table holds its deletes
    /// for approval (B-18); 100 turns the guard off.
    pub mass_delete_percent: u32,
    /// The conflict rule for this sync's fields without one of their own (B-02).
    pub conflict_policy: ConflictPolicy,
}

pub const PASSIVE_FOLLOWS_RULES: &str = "conflict_policy: conflict rules are chosen on the active side of a sync; the passive side follows them, so both ends decide alike";

/// The mass-delete guard's default share (B-18).
pub const DEFAULT_MASS_DELETE_PERCENT: u32 = 20;

impl SyncConfig {
    /// `text` (a status reason, an error) for someone who may not see this sync's settings:
    /// its address, FTP host and login, and folders read "…".
    pub fn without_settings(&self, text: &str) -> String {
        let mut settings: Vec<&str> = Vec::new();
        settings.extend(self.remote_url.as_deref());
        if let Some(local) = self.transport.local() {
            settings.extend([local.upload_dir.as_str(), local.download_dir.as_str()]);
        }
        if let Some(ftp) = self.transport.ftp() {
            let dirs = [ftp.upload_dir.as_str(), ftp.download_dir.as_str()];
            settings.extend(
                [ftp.host.as_str(), ftp.login.as_str()]
                    .into_iter()
                    .chain(dirs),
            );
        }
        // Longest first: a folder inside another is hidden whole.
        settings.retain(|s| !s.trim().is_empty() && *s != "/");
        settings.sort_by_key(|s| std::cmp::Reverse(s.len()));
        settings
            .into_iter()
            .fold(text.to_string(), |text, setting| text.replace(setting, "…"))
    }

    /// Checks the settings a person entered, with messages that say what to fix.
    pub fn validate(&self) -> Result<(), DomainError> {
        crate::schema::validate_name("sync", &self.name)?;
        if self.period_seconds < MIN_PERIOD_SECONDS {
            return Err(DomainError::invalid(format!(
                "period_seconds: the shortest period is {MIN_PERIOD_SECONDS} second"
            )));
        }
        if !(1..=100).contains(&self.mass_delete_percent) {
            return Err(DomainError::invalid(
                "mass_delete_percent: a share from 1 to 100 (100 turns the guard off)",
            ));
        }
        if self.mode == Mode::Passive && self.conflict_policy != ConflictPolicy::Newer {
            return Err(DomainError::invalid(PASSIVE_FOLLOWS_RULES));
        }
        if self.password.0.is_empty() {
            return Err(DomainError::invalid(
                "password: set the sync password (the passive side's password, entered on both sides)",
            ));
        }
        match &self.transport {
            TransportSettings::Http => {}
            TransportSettings::Local(local) => {
                for (name, dir) in [
                    ("local.upload_dir", &local.upload_dir),
                    ("local.download_dir", &local.download_dir),
                ] {
                    if dir.trim().is_empty() {
                        return Err(DomainError::invalid(format!("{name}: enter a folder")));
                    }
                }
                let same = local_folder_key(&local.upload_dir);
                if same == local_folder_key(&local.download_dir) {
                    return Err(DomainError::invalid(format!(
                        "local.upload_dir and local.download_dir must be two different folders: \"{}\" and \"{}\" are both {same}",
                        local.upload_dir.trim(),
                        local.download_dir.trim()
                    )));
                }
            }
            TransportSettings::Ftp(ftp) => {
                let host = ftp.host.trim();
                if host.is_empty() || host.contains("://") || host.contains('/') {
                    return Err(DomainError::invalid(
                        "ftp.host: the server name only, without ftp:// or folders (e.g. mycompany.ru)",
                    ));
                }
                for (name, dir) in [
                    ("ftp.upload_dir", &ftp.upload_dir),
                    ("ftp.download_dir", &ftp.download_dir),
                ] {
                    if !dir.starts_with('/') {
                        return Err(DomainError::invalid(format!(
                            "{name}: a folder on the server, starting with / (e.g. /cb/upload)"
                        )));
                    }
                }
                let same = ftp_folder_key(&ftp.upload_dir);
                if same == ftp_folder_key(&ftp.download_dir) {
                    return Err(DomainError::invalid(format!(
                        "ftp.upload_dir and ftp.download_dir must be two different folders: \"{}\" and \"{}\" are both {same}",
                        ftp.upload_dir.trim(),
                        ftp.download_dir.trim()
                    )));
                }
            }
        }
        if let Some(url) = &self.remote_url {
            let ok = (url.starts_with("http://") || url.starts_with("https://"))
                && url.len() > "http://".len();
            if !ok {
                return Err(DomainError::invalid(format!(
                    "remote_url: \"{url}\" is not an http:// or https:// address"
                )));
            }
        }
        if self.mode == Mode::Active
            && self.transport.kind() == Transport::Http
            && (!self.remote_access || self.remote_url.is_none())
        {
            return Err(DomainError::invalid(
                "an active HTTP sync needs remote_access on and remote_url set to the passive side's endpoint_url",
            ));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SyncField {
    pub id: i64,
    #[serde(skip)]
    pub sync_id: SyncId,
    pub field_no: FieldNo,
    pub direction: Direction,
    /// On the passive side: the number of the matching field on the active side.
    pub remote_field_no: Option<FieldNo>,
    /// This field's own conflict rule (active side), instead of the sync's.
    pub conflict_policy: Option<ConflictPolicy>,
}

/// A whole table in a sync (S-02): every field of it is a sync field with the table's
/// direction, and a field added to the table later joins the sync with that direction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SyncTable {
    pub id: i64,
    #[serde(skip)]
    pub sync_id: SyncId,
    pub table_id: crate::TableId,
    pub direction: Direction,
    /// On the passive side: the active side's table; this table's fields without a number
    /// of their own pair with its fields of the same name.
    pub remote_table_id: Option<crate::TableId>,
}

/// Where a sync stands. Cursors are change-log sequence numbers.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SyncState {
    /// Our last change the peer has acknowledged.
    pub sent_seq: i64,
    /// The peer's last change we have applied.
    pub received_seq: i64,
    /// Folder transports: where the last packet file written ends (the next one starts
    /// there, so the reader can tell a missing file from a stretch with nothing to send).
    pub written_seq: i64,
    /// Folder transports: our last change the peer said (its packets' `ack`) it applied.
    pub peer_acked_seq: i64,
    /// Folder transports: the sync channel's pairing and keys (JSON).
    pub channel: Option<String>,
    pub peer_instance: Option<String>,
    /// The peer's field catalogue as it last described it (JSON).
    pub peer_catalog: Option<String>,
    pub connected: bool,
    pub reason: Option<String>,
    pub last_run_ms: Option<i64>,
    pub last_success_ms: Option<i64>,
    pub last_error: Option<String>,
    /// Changes the peer said it still had for us at the last exchange.
    pub pending_in: i64,
    /// On a passive side: an initial sync's request for the active side's rows (JSON),
    /// handed over with the next pull.
    pub resend_request: Option<String>,
    /// How the peer matches users (S-21), as it last said (`login`, `full_name`, `id`).
    pub peer_user_match: Option<String>,
}

impl SyncState {
    /// Our last change the peer has confirmed it applied: over HTTP our cursor moves only
    /// when it confirms; over folders it moves when a file is written, so the peer's
    /// packets tell. Changes after it are not yet known there (a conflict rule's test).
    pub fn confirmed_by_peer(&self, transport: Transport) -> i64 {
        match transport {
            Transport::Http => self.sent_seq,
            Transport::Local | Transport::Ftp => self.peer_acked_seq,
        }
    }
}

/// How long a passive HTTP side may go without hearing from its active side before its
/// status stops showing it as connected (a healthy active side calls at least every ~20 s).
pub const PASSIVE_SILENCE_MS: i64 = 60_000;

impl SyncState {
    /// The status as a person should see it now: a passive HTTP side only knows its active
    /// side is there while it keeps calling.
    pub fn as_seen(&self, sync: &SyncConfig, now_ms: i64) -> (bool, Option<String>) {
        let listens = sync.mode == Mode::Passive && sync.transport.kind() == Transport::Http;
        if listens && self.connected {
            match self.last_success_ms {
                Some(last) if now_ms - last > PASSIVE_SILENCE_MS => {
                    return (
                        false,
                        Some(format!(
                            "the active side has not called for {} s",
                            (now_ms - last) / 1000
                        )),
                    );
                }
                _ => {}
            }
        }
        (self.connected, self.reason.clone())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SyncLogEntry {
    pub id: i64,
    #[serde(skip)]
    pub sync_id: SyncId,
    #[serde(skip)]
    pub at_ms: i64,
    /// exchange, sent, received, conflict, error, auth.
    pub kind: String,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<serde_json::Value>,
    /// The records a packet's entry lists, as stored; read back as `detail`.
    #[serde(skip)]
    pub records: Option<crate::logged_records::LoggedRecords>,
}

/// A link value that arrived before its target record (B-04): kept, with its stamp, and
/// applied once the target arrives.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingLink {
    pub sync_id: SyncId,
    pub table_id: crate::TableId,
    pub record_uid: uuid::Uuid,
    pub field_no: FieldNo,
    pub target_uid: uuid::Uuid,
    pub stamp: crate::clock::Stamp,
}

/// A received change held back (issue 6): `quarantine` — it cannot be applied here yet (a
/// value this side's field refuses; B-17), retried until the cause is fixed;
/// `mass_delete` — a delete from an exchange that would delete too much of a table
/// (B-18), applied once a person approves.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HeldChange {
    pub id: i64,
    #[serde(skip)]
    pub sync_id: SyncId,
    pub kind: String,
    pub table_id: crate::TableId,
    pub record_uid: uuid::Uuid,
    /// A field's wire number, or "status".
    pub part: String,
    /// The travelling item (one record, only the held part), as the wire has it.
    pub item: serde_json::Value,
    pub reason: String,
    #[serde(skip)]
    pub at_ms: i64,
}

pub const HELD_QUARANTINE: &str = "quarantine";
pub const HELD_MASS_DELETE: &str = "mass_delete";

#[cfg(test)]
mod tests {
    use super::*;

    fn sync(mode: Mode) -> SyncConfig {
        SyncConfig {
            id: 1,
            name: "s".into(),
            mode,
            transport: TransportSettings::Http,
            remote_access: false,
            remote_url: Some("http://x".into()),
            password: Secret("p".into()),
            log: true,
            period_seconds: 5,
            user_match: UserMatch::Login,
            mass_delete_percent: DEFAULT_MASS_DELETE_PERCENT,
            conflict_policy: ConflictPolicy::Newer,
        }
    }

    #[test]
    fn a_passive_side_stops_showing_connected_when_the_active_side_goes_quiet() {
        let state = SyncState {
            connected: true,
            last_success_ms: Some(1_000),
            ..SyncState::default()
        };
        assert_eq!(state.as_seen(&sync(Mode::Passive), 30_000), (true, None));
        let (connected, reason) =
            state.as_seen(&sync(Mode::Passive), 1_000 + PASSIVE_SILENCE_MS + 1_000);
        assert!(!connected);
        assert_eq!(
            reason.as_deref(),
            Some("the active side has not called for 61 s")
        );
        assert_eq!(
            state.as_seen(&sync(Mode::Active), 10_000_000),
            (true, None),
            "the active side reports its own failures"
        );
    }
}
