//! What travels between two instances (protocol version 1; see docs/protocol.md).

use crmsync_domain::sync::UserMatch;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use uuid::Uuid;

pub const PROTOCOL_VERSION: u32 = 1;

/// One field as an instance describes it to its peer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CatalogField {
    pub no: i64,
    pub name: String,
    #[serde(rename = "type")]
    pub field_type: String,
    pub table_id: i64,
    pub table_name: String,
}

pub type Catalog = Vec<CatalogField>;

/// The active side introduces itself.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Hello {
    pub version: u32,
    pub instance_id: String,
    pub catalog: Catalog,
    /// How the active side matches users (S-21); both sides must say the same.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_match: Option<UserMatch>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HelloReply {
    pub version: u32,
    pub instance_id: String,
    /// Mapping problems the passive side sees (a number the active lacks, a type mismatch).
    pub problems: Vec<String>,
    /// The passive side's clock when it answered (Unix ms), for clock sanity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub now_ms: Option<i64>,
    /// How the passive side matches users (S-21).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_match: Option<UserMatch>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct WireStamp {
    pub hlc: u64,
    pub node: Uuid,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WireField {
    pub value: serde_json::Value,
    pub stamp: WireStamp,
}

/// One record's changed, configured fields with their stamps, under the active side's
/// numbering (`table` is the active side's table id).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Item {
    pub uid: Uuid,
    pub table: i64,
    pub status: String,
    pub status_stamp: WireStamp,
    pub fields: BTreeMap<i64, WireField>,
    /// When the record was first created (ms since the epoch): a copy keeps it. Absent in
    /// packets of older versions; the receiver then uses its own time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at_ms: Option<i64>,
}

/// A batch of changes: the sender's change-log entries after `after` up to `upto`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Packet {
    pub after: i64,
    pub upto: i64,
    pub items: Vec<Item>,
    /// Change-log entries the sender still has after `upto`.
    pub remaining: i64,
    /// From a passive side: its initial sync wants the active side's rows too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resend: Option<ResendRequest>,
    /// From a passive side: what keeps its configured fields from travelling now.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
    /// Over folders, where there is no hello: the active side's field catalogue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catalog: Option<Catalog>,
    /// Over folders: how the writing side matches users (S-21), in every packet file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_match: Option<UserMatch>,
    /// From the active side: its conflict rules (B-02), which the passive side follows;
    /// absent = the newer write wins everywhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rules: Option<WireRules>,
    /// Over folders, from the active side: a drift check asks for the peer's digests of
    /// these fields (B-16).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest_request: Option<Vec<i64>>,
    /// With it: the active side's direction of each of those fields.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest_directions: Option<BTreeMap<i64, crmsync_domain::sync::Direction>>,
    /// Over folders, from the passive side: its digests, answering a drift check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digests: Option<crate::drift::Digests>,
    /// Over folders: blocks of a shared numbering this side asks the owner for (B-06).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub number_requests: Vec<NumberBlockRequest>,
    /// Over folders: the owner's answers to those requests.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub number_blocks: Vec<GrantedBlock>,
    /// Over folders, from the active side: a match by a key field (B-05) asks for the
    /// passive side's records of this table (the active side's table id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub records_request: Option<i64>,
    /// Over folders, from the passive side: those records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub records: Option<Vec<Item>>,
    /// Over folders, from the active side: the pairs to record before the initial sync.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pairs: Option<PairRequest>,
    /// Over folders, from the passive side: the pairs recorded, or why not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paired: Option<PairOutcome>,
    /// Over folders, from either side: the highest `upto` of the other side's packets this
    /// side has applied (written files say nothing of being read; this does).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ack: Option<i64>,
    /// Over folders: what this side queued in answer to the other side's `resend`, so the
    /// other side's initial sync knows what to wait for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resent: Option<ResendSummary>,
}

/// The passive side's answer to pairs sent through folders.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairOutcome {
    pub paired: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused: Option<String>,
}

/// An owner's answer to a request for numbers over folders: the block, or why not.
/// `field_no` is the field as it travels (the active side's number).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GrantedBlock {
    pub field_no: i64,
    #[serde(default)]
    pub first: i64,
    #[serde(default)]
    pub last: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused: Option<String>,
}

/// Who wins a conflict, named by role so both ends read it alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Winner {
    Newer,
    Active,
    Passive,
}

/// The active side's conflict rules: a default and exceptions by its field numbers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WireRules {
    pub default: Winner,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub fields: BTreeMap<i64, Winner>,
}

/// Asks the peer to send its rows again (initial sync): every configured field, or one
/// field (the active side's number).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ResendRequest {
    pub field: Option<i64>,
}

/// What a side queued for sending again: `count` records, change-log seqs first..=last.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ResendSummary {
    pub count: i64,
    pub first: i64,
    pub last: i64,
}

impl ResendSummary {
    /// How many of the queued records a cursor at `cursor` has delivered.
    pub fn delivered(&self, cursor: i64) -> i64 {
        if self.count == 0 || cursor < self.first {
            0
        } else if cursor >= self.last {
            self.count
        } else {
            (cursor - self.first + 1).min(self.count)
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PushReply {
    /// The highest `upto` the receiver has applied.
    pub applied: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PullRequest {
    /// The highest `upto` of the peer's packets we have applied: its outgoing cursor.
    pub ack: i64,
    /// How long the peer may hold the request while it has nothing to send.
    pub wait_ms: u64,
    /// The mapping problems the active side last heard of; the passive side answers at
    /// once when its own differ.
    #[serde(default)]
    pub problems: Vec<String>,
    /// How the active side last heard the passive side matches users; the passive side
    /// answers at once when it has changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_match: Option<UserMatch>,
    /// What the active side queued in answer to the passive side's `resend`, so the
    /// passive side's initial sync knows what to wait for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resent: Option<ResendSummary>,
}

/// The active side asks the owner of a shared numbering (B-06) for a block of numbers.
/// `field_no` is the active side's field; `hops` counts forwards along a chain, so a
/// numbering configured in a circle is refused instead of asked round forever.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NumberBlockRequest {
    pub field_no: i64,
    pub count: u32,
    #[serde(default)]
    pub hops: u32,
}

/// Numbers `first..=last`, handed out once, to this requester only.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NumberBlock {
    pub first: i64,
    pub last: i64,
}

/// Before an initial sync matched by a key (B-05): the active side asks for the passive
/// side's active records of one table (the active side's table id).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RecordsRequest {
    pub table: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RecordsReply {
    pub items: Vec<Item>,
}

/// Records the passive side pairs with the active side's: (passive uid, active uid).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairRequest {
    pub table: i64,
    pub pairs: Vec<(Uuid, Uuid)>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PairReply {
    pub paired: usize,
}

impl Packet {
    /// The records this packet carries, for the sync log (S-31): one entry a packet lists
    /// them all, by uid, with the table and the fields each one carries (wire numbers).
    pub fn logged_records(&self) -> serde_json::Value {
        let records: Vec<serde_json::Value> = self
            .items
            .iter()
            .map(|i| {
                serde_json::json!({
                    "uid": i.uid.to_string(),
                    "table": i.table,
                    "status": i.status,
                    "fields": i.fields.keys().collect::<Vec<_>>(),
                })
            })
            .collect();
        serde_json::json!({ "records": records })
    }
}
