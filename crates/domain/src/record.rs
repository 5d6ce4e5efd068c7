//! Records, the change log entries every write appends, and record queries.

use crate::clock::{Hlc, Stamp};
use crate::origin::Origin;
use crate::value::Value;
use crate::{FieldNo, RecordId, TableId, UserId};
use serde::Serialize;
use std::collections::BTreeMap;
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RecordStatus {
    Active,
    Deleted,
}

impl RecordStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RecordStatus::Active => "active",
            RecordStatus::Deleted => "deleted",
        }
    }
}

/// A record as the API shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub id: RecordId,
    pub uid: Uuid,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    pub status: RecordStatus,
    pub values: BTreeMap<FieldNo, Value>,
}

/// A record with the stamp of each field's current value, as the write path needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredRecord {
    pub record: Record,
    pub stamps: BTreeMap<FieldNo, Stamp>,
    pub status_stamp: Stamp,
}

/// A new row: every value carries the stamp of this write.
#[derive(Debug, Clone)]
pub struct NewRow {
    pub uid: Uuid,
    pub created_at_ms: i64,
    pub status: RecordStatus,
    pub status_stamp: Stamp,
    pub values: Vec<(FieldNo, Value, Stamp)>,
}

/// Changed columns of an existing row.
#[derive(Debug, Clone)]
pub struct RowUpdate {
    pub id: RecordId,
    pub updated_at_ms: i64,
    pub status: Option<(RecordStatus, Stamp)>,
    pub values: Vec<(FieldNo, Value, Stamp)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeOp {
    Create,
    Update,
    Delete,
    Restore,
    /// Not a change: asks one sync to send the record's current values again (initial sync,
    /// the per-record "Sync" action). Kept out of the record's history.
    Resend,
}

impl ChangeOp {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeOp::Create => "create",
            ChangeOp::Update => "update",
            ChangeOp::Delete => "delete",
            ChangeOp::Restore => "restore",
            ChangeOp::Resend => "resend",
        }
    }

    pub fn parse(s: &str) -> Option<ChangeOp> {
        [
            ChangeOp::Create,
            ChangeOp::Update,
            ChangeOp::Delete,
            ChangeOp::Restore,
            ChangeOp::Resend,
        ]
        .into_iter()
        .find(|op| op.as_str() == s)
    }
}

/// One changed field: values in the API's JSON shape, so the log stays readable even
/// after the field is removed.
#[derive(Debug, Clone, PartialEq, Default, Serialize, serde::Deserialize)]
pub struct FieldChange {
    pub field_no: FieldNo,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub old: Option<serde_json::Value>,
    pub new: serde_json::Value,
    /// Provenance of a value taken from a peer (B-15): the stamp of the write it carries —
    /// which instance wrote it and when — and of the value it replaced here; the newer
    /// stamp won.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub written: Option<crate::clock::Stamp>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub replaced: Option<crate::clock::Stamp>,
    /// Set when a conflict rule of a sync decided the value rather than the newer write
    /// (B-02): `here` (this side's value kept) or `there` (the other side's taken).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub rule: Option<String>,
}

/// An entry of the change log (the outbox): what changed in one record, when, by whom and
/// from where. Appended in the same transaction as the change itself.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// Assigned by the store when appended.
    pub seq: i64,
    pub table_id: TableId,
    /// Assigned by the store for a create.
    pub record_id: RecordId,
    pub record_uid: Uuid,
    pub op: ChangeOp,
    pub hlc: Hlc,
    pub origin: Origin,
    pub user_id: Option<UserId>,
    pub at_ms: i64,
    /// For a create: the fields it set (their values are in the row, not repeated here).
    pub created_fields: Vec<FieldNo>,
    /// For an update: each changed field with its old and new value. For a create, filled
    /// in by `Instance::history` when read.
    pub fields: Vec<FieldChange>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StatusFilter {
    #[default]
    Active,
    Deleted,
    All,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKey {
    Id,
    CreatedAt,
    UpdatedAt,
    Field(FieldNo),
}

#[derive(Debug, Clone, PartialEq)]
pub struct RecordQuery {
    pub q: Option<String>,
    pub status: StatusFilter,
    pub limit: usize,
    /// Keyset paging: the id of the last record of the previous page.
    pub after: Option<RecordId>,
    pub sort: SortKey,
    pub descending: bool,
}

pub const DEFAULT_PAGE: usize = 50;
pub const MAX_PAGE: usize = 1000;

impl Default for RecordQuery {
    fn default() -> Self {
        RecordQuery {
            q: None,
            status: StatusFilter::Active,
            limit: DEFAULT_PAGE,
            after: None,
            sort: SortKey::Id,
            descending: false,
        }
    }
}

/// The change-log entries one sync sends: none it applied itself (origin `sync:<id>`: no
/// echo), and of the resend requests only its own (`resend:<id>`). Stores apply the same
/// rule where they read the log, so a stretch of echoes is skipped in one read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncLogFilter {
    pub own_origin: Origin,
    pub own_resend: Origin,
}

impl SyncLogFilter {
    pub fn for_sync(sync_id: i64) -> SyncLogFilter {
        SyncLogFilter {
            own_origin: Origin::Sync(sync_id),
            own_resend: Origin::Resend(sync_id),
        }
    }

    pub fn takes(&self, change: &LoggedChange) -> bool {
        change.origin != self.own_origin
            && (change.op != ChangeOp::Resend || change.origin == self.own_resend)
    }
}

/// A change-log entry as a sync reads it: which record changed, which fields, from where.
#[derive(Debug, Clone, PartialEq)]
pub struct LoggedChange {
    pub seq: i64,
    pub table_id: TableId,
    pub record_id: RecordId,
    pub op: ChangeOp,
    pub origin: Origin,
    /// Fields set or changed (none for a delete or restore).
    pub field_nos: Vec<FieldNo>,
}
