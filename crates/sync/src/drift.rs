//! Drift (B-16): whether two sides still hold the same values for what a sync carries.
//! Each side digests every record of its mapped tables — the status and each agreed
//! field's value as it travels (users by the sync's rule, links by uid) — and the active
//! side compares the two lists. Stamps are left out on purpose: a value edited in the
//! database file behind the instance's back keeps its stamp, and is exactly what this
//! must find.

use crate::mapping::Mapping;
use crate::outbox::{each_record_page, to_wire};
use crmsync_domain::record::StatusFilter;
use crmsync_domain::{DomainError, Instance, Store, User, Value};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use uuid::Uuid;

/// A side's digests: the wire field numbers it covered, and per record uid a digest.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Digests {
    pub fields: Vec<i64>,
    pub records: BTreeMap<Uuid, String>,
    /// This side's table of each record (not sent).
    #[serde(skip)]
    pub tables: BTreeMap<Uuid, i64>,
}

/// What differs between the two sides.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Drift {
    pub differ: Vec<Uuid>,
    pub only_here: Vec<Uuid>,
    pub only_there: Vec<Uuid>,
}

impl Drift {
    pub fn is_empty(&self) -> bool {
        self.differ.is_empty() && self.only_here.is_empty() && self.only_there.is_empty()
    }
}

/// The wire numbers this side would digest: every mapped field not switched off.
pub fn fields(mapping: &Mapping) -> Vec<i64> {
    let mut fields: Vec<i64> = mapping
        .routes
        .iter()
        .filter(|r| r.direction != crmsync_domain::sync::Direction::Off)
        .map(|r| r.wire_no)
        .collect();
    fields.sort_unstable();
    fields.dedup();
    fields
}

/// The passive side's answer to a drift check asking for `requested` fields: its digests
/// over those of them it carries too (the asking side then digests the same ones).
pub fn answer<S: Store>(
    core: &Instance<S>,
    sync: &crmsync_domain::sync::SyncConfig,
    mapping: &Mapping,
    requested: &[i64],
) -> Result<Digests, DomainError> {
    let ours = fields(mapping);
    let agreed: Vec<i64> = requested
        .iter()
        .copied()
        .filter(|f| ours.contains(f))
        .collect();
    digests(core, sync, mapping, &agreed)
}

/// Digests every record (deleted ones too) of the tables carrying `wanted` fields.
pub fn digests<S: Store>(
    core: &Instance<S>,
    sync: &crmsync_domain::sync::SyncConfig,
    mapping: &Mapping,
    wanted: &[i64],
) -> Result<Digests, DomainError> {
    let routes: Vec<_> = mapping
        .routes
        .iter()
        .filter(|r| wanted.contains(&r.wire_no))
        .collect();
    let mut tables: Vec<i64> = routes.iter().map(|r| r.local.table_id).collect();
    tables.sort_unstable();
    tables.dedup();
    let mut records = BTreeMap::new();
    let mut users: Option<Vec<User>> = None;
    let table_ids = tables;
    let mut tables = BTreeMap::new();
    for table_id in table_ids {
        each_record_page(core, table_id, StatusFilter::All, |tx, page| {
            for record in page {
                let mut hasher = Sha256::new();
                hasher.update(record.status.as_str().as_bytes());
                for route in routes.iter().filter(|r| r.local.table_id == table_id) {
                    let value = record.values.get(&route.local.no).unwrap_or(&Value::Null);
                    let wire = to_wire(tx, sync, mapping, &route.local, value, &mut users)?;
                    hasher.update(format!("\n{}={wire}", route.wire_no).as_bytes());
                }
                let uid = mapping.uids.to_peer(record.uid);
                records.insert(uid, hex::encode(&hasher.finalize()[..12]));
                tables.insert(uid, table_id);
            }
            Ok(())
        })?;
    }
    Ok(Digests {
        fields: wanted.to_vec(),
        records,
        tables,
    })
}

/// Compares this side's digests with the other side's (over the same fields).
pub fn compare(here: &Digests, there: &Digests) -> Drift {
    let mut drift = Drift::default();
    for (uid, digest) in &here.records {
        match there.records.get(uid) {
            None => drift.only_here.push(*uid),
            Some(theirs) if theirs != digest => drift.differ.push(*uid),
            Some(_) => {}
        }
    }
    drift.only_there = there
        .records
        .keys()
        .filter(|uid| !here.records.contains_key(uid))
        .copied()
        .collect();
    drift
}
