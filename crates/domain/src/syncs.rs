//! The instance's sync settings: creating, changing and removing syncs and their fields,
//! and keeping each sync's progress and log. Only administrators change settings.

use crate::instance::{Actor, Instance};
use crate::log_limit::{Admit, FAILURES_PER_MINUTE};
use crate::logged_records::LoggedRecords;
use crate::store::{Store, StoreTx};
use crate::sync::{
    ConflictPolicy, DEFAULT_PERIOD_SECONDS, Direction, FtpSettings, LocalSettings, Mode, Secret,
    SyncConfig, SyncField, SyncId, SyncLogEntry, SyncState, SyncTable, Transport,
    TransportSettings, UserMatch,
};
use crate::{DomainError, FieldNo};
use serde::Deserialize;

/// A sync as a person enters it; unset settings take their defaults.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncInput {
    pub name: Option<String>,
    pub mode: Option<Mode>,
    pub transport: Option<Transport>,
    pub remote_access: Option<bool>,
    pub remote_url: Option<String>,
    pub password: Option<Secret>,
    pub log: Option<bool>,
    pub period_seconds: Option<u32>,
    pub user_match: Option<UserMatch>,
    pub local: Option<LocalSettings>,
    pub ftp: Option<FtpSettings>,
    pub mass_delete_percent: Option<u32>,
    pub conflict_policy: Option<ConflictPolicy>,
}

/// A change to one field entry of a sync; unset parts stay.
#[derive(Debug, Clone, Default)]
pub struct SyncFieldPatch {
    pub direction: Option<Direction>,
    pub remote_field_no: Option<Option<FieldNo>>,
    pub conflict_policy: Option<Option<ConflictPolicy>>,
}

/// Log kinds recorded even when a sync's log is off: a person must always see failures.
const ALWAYS_LOGGED: [&str; 4] = ["error", "auth", "conflict", "held"];

impl<S: Store> Instance<S> {
    pub fn syncs(&self) -> Result<Vec<SyncConfig>, DomainError> {
        self.store().read(|tx| tx.syncs())
    }

    pub fn sync(&self, id: SyncId) -> Result<SyncConfig, DomainError> {
        self.syncs()?
            .into_iter()
            .find(|s| s.id == id)
            .ok_or_else(|| DomainError::not_found(format!("there is no sync {id}")))
    }

    pub fn create_sync(&self, actor: &Actor, input: SyncInput) -> Result<SyncConfig, DomainError> {
        actor.require_admin()?;
        let mut sync = SyncConfig {
            id: 0,
            name: input.name.clone().unwrap_or_default(),
            mode: input
                .mode
                .ok_or_else(|| DomainError::invalid("mode: choose active or passive"))?,
            transport: TransportSettings::Http,
            remote_access: false,
            remote_url: None,
            password: Secret::default(),
            log: true,
            period_seconds: DEFAULT_PERIOD_SECONDS,
            user_match: UserMatch::Login,
            mass_delete_percent: crate::sync::DEFAULT_MASS_DELETE_PERCENT,
            conflict_policy: ConflictPolicy::Newer,
        };
        apply_input(&mut sync, input)?;
        sync.validate()?;
        let id = self.store().write(|tx| {
            ensure_own_folders(&sync, &tx.syncs()?)?;
            let id = tx.insert_sync(&sync)?;
            // Only changes from now on travel; existing rows come with an initial sync.
            let start = tx.last_change_seq()?;
            let state = SyncState {
                sent_seq: start,
                written_seq: start,
                peer_acked_seq: start,
                ..SyncState::default()
            };
            tx.save_sync_state(id, &state)?;
            Ok(id)
        })?;
        self.sync(id)
    }

    pub fn update_sync(
        &self,
        actor: &Actor,
        id: SyncId,
        input: SyncInput,
    ) -> Result<SyncConfig, DomainError> {
        actor.require_admin()?;
        let mut sync = self.sync(id)?;
        if let Some(mode) = input.mode {
            sync.mode = mode;
        }
        apply_input(&mut sync, input)?;
        sync.validate()?;
        self.store().write(|tx| {
            ensure_own_folders(&sync, &tx.syncs()?)?;
            tx.update_sync(&sync)
        })?;
        self.sync(id)
    }

    pub fn delete_sync(&self, actor: &Actor, id: SyncId) -> Result<(), DomainError> {
        actor.require_admin()?;
        self.sync(id)?;
        self.store().write(|tx| tx.delete_sync(id))
    }

    pub fn sync_fields(&self, sync_id: SyncId) -> Result<Vec<SyncField>, DomainError> {
        self.sync(sync_id)?;
        self.store().read(|tx| tx.sync_fields(sync_id))
    }

    pub fn add_sync_field(
        &self,
        actor: &Actor,
        sync_id: SyncId,
        field_no: FieldNo,
        direction: Direction,
        remote_field_no: Option<FieldNo>,
        conflict_policy: Option<ConflictPolicy>,
    ) -> Result<SyncField, DomainError> {
        actor.require_admin()?;
        let sync = self.sync(sync_id)?;
        self.field(field_no).map_err(|_| {
            DomainError::invalid(format!(
                "field_no: there is no field {field_no} in this instance"
            ))
        })?;
        let id = self.store().write(|tx| {
            let fields = tx.sync_fields(sync_id)?;
            if fields.iter().any(|f| f.field_no == field_no) {
                return Err(DomainError::Conflict(format!(
                    "field {field_no} is already configured in this sync; change its direction instead"
                )));
            }
            let field = SyncField {
                id: 0,
                sync_id,
                field_no,
                direction,
                remote_field_no,
                conflict_policy,
            };
            check_mapping(&sync, &field, &fields)?;
            tx.insert_sync_field(&field)
        })?;
        self.sync_field(sync_id, id)
    }

    pub fn sync_field(&self, sync_id: SyncId, id: i64) -> Result<SyncField, DomainError> {
        self.sync_fields(sync_id)?
            .into_iter()
            .find(|f| f.id == id)
            .ok_or_else(|| {
                DomainError::not_found(format!("sync {sync_id} has no field entry {id}"))
            })
    }

    pub fn update_sync_field(
        &self,
        actor: &Actor,
        sync_id: SyncId,
        id: i64,
        patch: SyncFieldPatch,
    ) -> Result<SyncField, DomainError> {
        actor.require_admin()?;
        let sync = self.sync(sync_id)?;
        let mut field = self.sync_field(sync_id, id)?;
        if let Some(direction) = patch.direction {
            field.direction = direction;
        }
        if let Some(remote) = patch.remote_field_no {
            field.remote_field_no = remote;
        }
        if let Some(policy) = patch.conflict_policy {
            field.conflict_policy = policy;
        }
        self.store().write(|tx| {
            let others: Vec<SyncField> = tx
                .sync_fields(sync_id)?
                .into_iter()
                .filter(|f| f.id != id)
                .collect();
            check_mapping(&sync, &field, &others)?;
            tx.update_sync_field(&field)
        })?;
        self.sync_field(sync_id, id)
    }

    pub fn delete_sync_field(
        &self,
        actor: &Actor,
        sync_id: SyncId,
        id: i64,
    ) -> Result<(), DomainError> {
        actor.require_admin()?;
        self.sync_field(sync_id, id)?;
        self.store().write(|tx| tx.delete_sync_field(id))
    }

    /// The tables this sync holds whole (S-02).
    pub fn sync_tables(&self, sync_id: SyncId) -> Result<Vec<SyncTable>, DomainError> {
        self.sync(sync_id)?;
        let all = self.store().read(|tx| tx.sync_tables())?;
        Ok(all.into_iter().filter(|t| t.sync_id == sync_id).collect())
    }

    /// Adds a whole table to a sync (S-02): each of its fields not yet in the sync becomes a
    /// sync field with `direction` (a field already there keeps its own entry), and a field
    /// created in the table later joins with `direction`. On the passive side
    /// `remote_table_id` names the active side's table whose fields pair with these by name.
    /// Returns the entry and the table's sync fields.
    pub fn add_sync_table(
        &self,
        actor: &Actor,
        sync_id: SyncId,
        table_id: crate::TableId,
        direction: Direction,
        remote_table_id: Option<crate::TableId>,
    ) -> Result<(SyncTable, Vec<SyncField>), DomainError> {
        actor.require_admin()?;
        let sync = self.sync(sync_id)?;
        let table = self.table(table_id).map_err(|_| {
            DomainError::invalid(format!(
                "table_id: there is no table {table_id} in this instance"
            ))
        })?;
        match (sync.mode, remote_table_id) {
            (Mode::Active, Some(_)) => {
                return Err(DomainError::invalid(
                    "remote_table_id: only the passive side names the active side's table",
                ));
            }
            (Mode::Passive, None) => {
                return Err(DomainError::invalid(
                    "remote_table_id: enter the number of the matching table on the active side (its fields pair with this table's by name)",
                ));
            }
            _ => {}
        }
        let id = self.store().write(|tx| {
            if tx
                .sync_tables()?
                .iter()
                .any(|t| t.sync_id == sync_id && t.table_id == table_id)
            {
                return Err(DomainError::Conflict(format!(
                    "table {table_id} is already whole in this sync; remove it first to add it again"
                )));
            }
            let entry = SyncTable {
                id: 0,
                sync_id,
                table_id,
                direction,
                remote_table_id,
            };
            let id = tx.insert_sync_table(&entry)?;
            for field in &table.fields {
                join_sync(tx, &entry, field.no)?;
            }
            Ok(id)
        })?;
        let entry = self
            .sync_tables(sync_id)?
            .into_iter()
            .find(|t| t.id == id)
            .ok_or_else(|| {
                DomainError::not_found(format!("sync {sync_id} has no table entry {id}"))
            })?;
        let fields = self
            .sync_fields(sync_id)?
            .into_iter()
            .filter(|f| table.field(f.field_no).is_some())
            .collect();
        Ok((entry, fields))
    }

    /// Takes a whole table out of a sync, with all its fields: what was added in one step
    /// goes in one step (fields of other tables stay).
    pub fn delete_sync_table(
        &self,
        actor: &Actor,
        sync_id: SyncId,
        id: i64,
    ) -> Result<(), DomainError> {
        actor.require_admin()?;
        let entry = self
            .sync_tables(sync_id)?
            .into_iter()
            .find(|t| t.id == id)
            .ok_or_else(|| {
                DomainError::not_found(format!("sync {sync_id} has no table entry {id}"))
            })?;
        let table = self.table(entry.table_id)?;
        self.store().write(|tx| {
            for field in tx.sync_fields(sync_id)? {
                if table.field(field.field_no).is_some() {
                    tx.delete_sync_field(field.id)?;
                }
            }
            tx.delete_sync_table(id)
        })
    }

    /// Pairs records of `table_id` with the peer's records they match (B-05): from now on
    /// this side's record `local` travels on this sync as the peer's `peer`. All or none.
    pub fn pair_records(
        &self,
        sync_id: SyncId,
        table_id: crate::TableId,
        pairs: &[(uuid::Uuid, uuid::Uuid)],
    ) -> Result<usize, DomainError> {
        self.sync(sync_id)?;
        let table = self.table(table_id)?;
        let pairs: Vec<(uuid::Uuid, uuid::Uuid)> =
            pairs.iter().copied().filter(|(l, p)| l != p).collect();
        self.store().write(|tx| {
            for (local, peer) in &pairs {
                if tx.record_by_uid(&table, *local)?.is_none() {
                    return Err(DomainError::invalid(format!(
                        "there is no record {local} in table {table_id} to pair"
                    )));
                }
                if tx.record_by_uid(&table, *peer)?.is_some() {
                    return Err(DomainError::Conflict(format!(
                        "the other side's record {peer} already exists here as a record of its own"
                    )));
                }
            }
            tx.save_uid_pairs(sync_id, table_id, &pairs)
        })?;
        Ok(pairs.len())
    }

    /// (this side's uid, the peer's uid) of the records paired on this sync.
    pub fn uid_pairs(&self, sync_id: SyncId) -> Result<Vec<(uuid::Uuid, uuid::Uuid)>, DomainError> {
        self.store().read(|tx| tx.uid_pairs(sync_id))
    }

    /// See [`crate::store::StoreTx::config_version`].
    pub fn config_version(&self) -> Result<i64, DomainError> {
        self.store().read(|tx| tx.config_version())
    }

    pub fn sync_state(&self, sync_id: SyncId) -> Result<SyncState, DomainError> {
        self.store().read(|tx| tx.sync_state(sync_id))
    }

    /// Changes a sync's progress in one transaction.
    pub fn update_sync_state(
        &self,
        sync_id: SyncId,
        change: impl FnOnce(&mut SyncState),
    ) -> Result<SyncState, DomainError> {
        self.write_sync_state(sync_id, None, change)
    }

    /// Updates a sync's state and appends `records` to its log (as `log_sync_records`
    /// does) in one transaction: a packet sent or applied moves a cursor and is logged
    /// with one commit.
    pub fn update_sync_state_logging(
        &self,
        sync: &SyncConfig,
        kind: &str,
        message: impl Into<String>,
        records: LoggedRecords,
        change: impl FnOnce(&mut SyncState),
    ) -> Result<SyncState, DomainError> {
        let records = (!records.is_empty()).then_some(records);
        let entry = self.log_entry(sync, kind, message.into(), None, records);
        self.write_sync_state(sync.id, entry, change)
    }

    fn write_sync_state(
        &self,
        sync_id: SyncId,
        entry: Option<SyncLogEntry>,
        change: impl FnOnce(&mut SyncState),
    ) -> Result<SyncState, DomainError> {
        let (before, after) = self.store().write(|tx| {
            if let Some(entry) = &entry {
                tx.append_sync_log(entry)?;
            }
            let mut state = tx.sync_state(sync_id)?;
            let before = (state.connected, state.reason.clone());
            change(&mut state);
            tx.save_sync_state(sync_id, &state)?;
            Ok((before, state))
        })?;
        // The server log hears of every change of a sync's state once, not of every retry.
        if before != (after.connected, after.reason.clone()) {
            let reason = after.reason.as_deref().unwrap_or_default();
            if after.connected {
                tracing::info!(sync = sync_id, reason, "sync connected");
            } else {
                // Within the allowance a stranger's bad files or requests have.
                let (skipped, last) = match self.log_limit().admit(sync_id, "state", self.now_ms())
                {
                    Admit::Count => return Ok(after),
                    Admit::WriteLast => (0, true),
                    Admit::Write { skipped } => (skipped, false),
                };
                tracing::warn!(
                    sync = sync_id,
                    reason,
                    not_logged_before = skipped,
                    allowance_used_up = last,
                    "sync not connected"
                );
            }
        }
        Ok(after)
    }

    /// Appends to a sync's log when its log is on (failures always).
    pub fn log_sync(
        &self,
        sync: &SyncConfig,
        kind: &str,
        message: impl Into<String>,
        detail: Option<serde_json::Value>,
    ) -> Result<(), DomainError> {
        self.append_log(sync, kind, message.into(), detail, None)
    }

    /// Appends an entry listing the records of a packet sent or applied (S-31).
    pub fn log_sync_records(
        &self,
        sync: &SyncConfig,
        kind: &str,
        message: impl Into<String>,
        records: LoggedRecords,
    ) -> Result<(), DomainError> {
        let records = (!records.is_empty()).then_some(records);
        self.append_log(sync, kind, message.into(), None, records)
    }

    fn append_log(
        &self,
        sync: &SyncConfig,
        kind: &str,
        message: String,
        detail: Option<serde_json::Value>,
        records: Option<LoggedRecords>,
    ) -> Result<(), DomainError> {
        match self.log_entry(sync, kind, message, detail, records) {
            Some(entry) => self.store().write(|tx| tx.append_sync_log(&entry)),
            None => Ok(()),
        }
    }

    /// The log entry to write, if the sync's log takes it (on, or a kind always logged)
    /// and its allowance for the kind is not used up.
    fn log_entry(
        &self,
        sync: &SyncConfig,
        kind: &str,
        mut message: String,
        detail: Option<serde_json::Value>,
        records: Option<LoggedRecords>,
    ) -> Option<SyncLogEntry> {
        if !sync.log && !ALWAYS_LOGGED.contains(&kind) {
            return None;
        }
        let now_ms = self.now_ms();
        match self.log_limit().admit(sync.id, kind, now_ms) {
            Admit::Count => return None,
            Admit::WriteLast => message.push_str(&format!(
                " (more than {FAILURES_PER_MINUTE} {kind} entries this minute: the next ones are counted, not written)"
            )),
            Admit::Write { skipped: 0 } => {}
            Admit::Write { skipped } => message.push_str(&format!(
                " ({skipped} more {kind} entries before this one were counted, not written)"
            )),
        }
        let entry = SyncLogEntry {
            id: 0,
            sync_id: sync.id,
            at_ms: now_ms,
            kind: kind.to_string(),
            message,
            detail,
            records,
        };
        Some(entry)
    }

    /// Asks `sync` to send these records again (all its fields when `fields` is empty).
    /// Returns the (first, last) change-log seq of the requests.
    pub fn resend(
        &self,
        sync_id: SyncId,
        table_id: crate::TableId,
        record_ids: &[crate::RecordId],
        fields: &[FieldNo],
    ) -> Result<Option<(i64, i64)>, DomainError> {
        let now = self.now_ms();
        let range = self
            .store()
            .write(|tx| tx.append_resends(table_id, record_ids, fields, sync_id, now))?;
        self.notify_commit();
        Ok(range)
    }

    /// Record ids of a table after `after`, for paging through it.
    pub fn record_ids(
        &self,
        table_id: crate::TableId,
        after: crate::RecordId,
        limit: usize,
    ) -> Result<Vec<crate::RecordId>, DomainError> {
        let table = self.table(table_id)?;
        self.store().read(|tx| tx.record_ids(&table, after, limit))
    }

    /// Drops log entries older than `keep_days` (S-31: the log does not grow forever);
    /// returns how many.
    pub fn prune_sync_logs(&self, keep_days: u32) -> Result<usize, DomainError> {
        let before = self.now_ms() - i64::from(keep_days) * 86_400_000;
        self.store().write(|tx| tx.prune_sync_log(before))
    }

    pub fn sync_log(
        &self,
        sync_id: SyncId,
        after: i64,
        limit: usize,
    ) -> Result<Vec<SyncLogEntry>, DomainError> {
        self.sync(sync_id)?;
        let mut entries = self
            .store()
            .read(|tx| tx.sync_log(sync_id, after, limit.clamp(1, 1000)))?;
        for entry in &mut entries {
            if let Some(records) = entry.records.take() {
                entry.detail.get_or_insert_with(|| records.to_json());
            }
        }
        Ok(entries)
    }
}

/// A field of a whole table joins that table's sync with its direction (unless it is in
/// it already).
fn join_sync(
    tx: &mut dyn StoreTx,
    entry: &SyncTable,
    field_no: FieldNo,
) -> Result<(), DomainError> {
    if tx
        .sync_fields(entry.sync_id)?
        .iter()
        .any(|f| f.field_no == field_no)
    {
        return Ok(());
    }
    tx.insert_sync_field(&SyncField {
        id: 0,
        sync_id: entry.sync_id,
        field_no,
        direction: entry.direction,
        remote_field_no: None,
        conflict_policy: None,
    })?;
    Ok(())
}

/// A field just created in `table_id` joins every sync that holds the table whole, in the
/// transaction that creates it (whatever path created it: API, web UI, demo).
pub(crate) fn join_whole_tables(
    tx: &mut dyn StoreTx,
    table_id: crate::TableId,
    field_no: FieldNo,
) -> Result<(), DomainError> {
    for entry in tx.sync_tables()? {
        if entry.table_id == table_id {
            join_sync(tx, &entry, field_no)?;
        }
    }
    Ok(())
}

/// S-30: every sync needs folders of its own, however they are spelled.
fn ensure_own_folders(sync: &SyncConfig, all: &[SyncConfig]) -> Result<(), DomainError> {
    use crate::folder_path::{ftp_folder_key, local_folder_key};
    // (one spelling, which folder, as typed)
    let folders = |s: &SyncConfig| -> Vec<(String, &'static str, String)> {
        match &s.transport {
            TransportSettings::Local(l) => {
                [("upload", &l.upload_dir), ("download", &l.download_dir)]
                    .into_iter()
                    .map(|(role, dir)| (local_folder_key(dir), role, dir.trim().to_string()))
                    .collect()
            }
            TransportSettings::Ftp(f) => {
                let server = format!("ftp://{}:{}", f.host.trim().to_lowercase(), f.port);
                [("upload", &f.upload_dir), ("download", &f.download_dir)]
                    .into_iter()
                    .map(|(role, dir)| {
                        (
                            format!("{server}{}", ftp_folder_key(dir)),
                            role,
                            dir.trim().to_string(),
                        )
                    })
                    .collect()
            }
            _ => Vec::new(),
        }
    };
    let mine = folders(sync);
    for other in all.iter().filter(|o| o.id != sync.id) {
        for (key, role, typed) in folders(other) {
            if let Some((_, my_role, my_typed)) = mine.iter().find(|(k, _, _)| *k == key) {
                return Err(DomainError::Conflict(format!(
                    "the {my_role} folder \"{my_typed}\" is {key}, which is already used by sync {} \"{}\" (its {role} folder \"{typed}\"); each sync needs folders of its own",
                    other.id, other.name
                )));
            }
        }
    }
    Ok(())
}

fn apply_input(sync: &mut SyncConfig, input: SyncInput) -> Result<(), DomainError> {
    if let Some(name) = input.name {
        sync.name = name.trim().to_string();
    }
    if let Some(v) = input.remote_access {
        sync.remote_access = v;
    }
    if let Some(url) = input.remote_url {
        let url = url.trim().trim_end_matches('/').to_string();
        sync.remote_url = (!url.is_empty()).then_some(url);
    }
    if let Some(password) = input.password {
        sync.password = password;
    }
    if let Some(v) = input.log {
        sync.log = v;
    }
    if let Some(v) = input.period_seconds {
        sync.period_seconds = v;
    }
    if let Some(v) = input.user_match {
        sync.user_match = v;
    }
    if let Some(v) = input.mass_delete_percent {
        sync.mass_delete_percent = v;
    }
    if let Some(v) = input.conflict_policy {
        sync.conflict_policy = v;
    }
    // A transport's settings stay while it stays; another transport needs its own.
    let kind = input.transport.unwrap_or(sync.transport.kind());
    let stays = |of: Transport| kind == of && sync.transport.kind() == of;
    let local = input.local.or_else(|| {
        stays(Transport::Local)
            .then(|| sync.transport.local().cloned())
            .flatten()
    });
    let ftp = input.ftp.or_else(|| {
        stays(Transport::Ftp)
            .then(|| sync.transport.ftp().cloned())
            .flatten()
    });
    sync.transport = TransportSettings::of(kind, local, ftp)?;
    Ok(())
}

/// The passive side maps each field to the active's number; the active side does not.
fn check_mapping(
    sync: &SyncConfig,
    field: &SyncField,
    others: &[SyncField],
) -> Result<(), DomainError> {
    if sync.mode == Mode::Passive
        && field
            .conflict_policy
            .is_some_and(|p| p != ConflictPolicy::Newer)
    {
        return Err(DomainError::invalid(crate::sync::PASSIVE_FOLLOWS_RULES));
    }
    match (sync.mode, field.remote_field_no) {
        (Mode::Active, Some(_)) => Err(DomainError::invalid(
            "remote_field_no: only the passive side maps its fields to the active side's numbers",
        )),
        (Mode::Passive, Some(remote)) => {
            if let Some(other) = others.iter().find(|f| f.remote_field_no == Some(remote)) {
                return Err(DomainError::Conflict(format!(
                    "active field {remote} is already mapped to field {} in this sync",
                    other.field_no
                )));
            }
            Ok(())
        }
        _ => Ok(()),
    }
}
