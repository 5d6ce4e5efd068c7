//! Drift (B-16): whether two sides still hold the same values for what a sync carries.
//! Each side digests every record of its mapped tables — the status and each agreed
//! field's value as it travels (users by the sync's rule, links by uid) — and the active
//! side compares the two lists. Stamps are left out on purpose: a value edited in the
//! database file behind the instance's back keeps its stamp, and is exactly what this
//! must find.
//!
//! Only what the two sides' directions say should be equal is compared: a field whose
//! value flows both ways is in each record's digest; a field that flows one way only is
//! digested on its own, and the receiving side must hold what the sending side holds
//! wherever the sender holds a value (a value the receiver had before and the sender never
//! filled is not drift); a field `off` on either side, or that neither side sends to the
//! other, is not compared.

use crate::mapping::Mapping;
use crate::outbox::{each_record_page, to_wire};
use crmsync_domain::record::StatusFilter;
use crmsync_domain::sync::Direction;
use crmsync_domain::{DomainError, Instance, Store, User, Value};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use uuid::Uuid;

/// The active side asks for the other side's digests of these fields (its wire numbers),
/// telling its own direction of each so the other side can tell which way each flows.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DigestRequest {
    pub fields: Vec<i64>,
    /// A field without one is not compared.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub directions: BTreeMap<i64, Direction>,
}

/// A side's digests: the wire field numbers it covered, and per record uid a digest.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Digests {
    /// The fields that flow both ways: in each record's digest.
    pub fields: Vec<i64>,
    pub records: BTreeMap<Uuid, String>,
    /// Fields that flow one way only, from the active side to the passive one…
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub to_passive: Vec<i64>,
    /// …and from the passive side to the active one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub to_active: Vec<i64>,
    /// Per record, the digest of each one-way field's value where it holds one.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub one_way: BTreeMap<Uuid, BTreeMap<i64, String>>,
    /// This side's table of each record (not sent).
    #[serde(skip)]
    pub tables: BTreeMap<Uuid, i64>,
    /// This side's id of each record (not sent).
    #[serde(skip)]
    pub ids: BTreeMap<Uuid, i64>,
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
        .filter(|r| r.direction != Direction::Off)
        .map(|r| r.wire_no)
        .collect();
    fields.sort_unstable();
    fields.dedup();
    fields
}

/// The active side's request: its fields not switched off, with their directions.
pub fn request(mapping: &Mapping) -> DigestRequest {
    let fields = fields(mapping);
    let directions = fields
        .iter()
        .filter_map(|f| Some((*f, mapping.by_wire(*f)?.direction)))
        .collect();
    DigestRequest { fields, directions }
}

/// The passive side's answer to a drift check: its digests over the requested fields it
/// carries too, each compared as the two directions let it flow (the asking side then
/// digests the same ones alike).
pub fn answer<S: Store>(
    core: &Instance<S>,
    sync: &crmsync_domain::sync::SyncConfig,
    mapping: &Mapping,
    request: &DigestRequest,
) -> Result<Digests, DomainError> {
    let (both, one_way) = agreed(mapping, request);
    digests(core, sync, mapping, &both, &one_way)
}

/// Which of the requested fields the passive side compares, and how: those that flow both
/// ways (in each record's digest), and the one-way ones `[to_passive, to_active]`. A field
/// this side does not carry, or that neither side sends to the other, is left out.
pub fn agreed(mapping: &Mapping, request: &DigestRequest) -> (Vec<i64>, [Vec<i64>; 2]) {
    let ours = fields(mapping);
    let agreed = request.fields.iter().copied().filter(|f| ours.contains(f));
    let (mut both, mut to_passive, mut to_active) = (Vec::new(), Vec::new(), Vec::new());
    for field in agreed {
        // A field without the active side's direction is not compared: nothing of it
        // leaves this side on the strength of a request alone.
        let (Some(active), Some(route)) = (request.directions.get(&field), mapping.by_wire(field))
        else {
            continue;
        };
        let down = active.sends() && route.direction.receives();
        let up = route.direction.sends() && active.receives();
        match (down, up) {
            (true, true) => both.push(field),
            (true, false) => to_passive.push(field),
            (false, true) => to_active.push(field),
            (false, false) => {}
        }
    }
    (both, [to_passive, to_active])
}

/// Digests every record (deleted ones too) of the tables carrying the `both` fields (in
/// each record's digest) or the one-way ones `[to_passive, to_active]` (each on its own).
pub fn digests<S: Store>(
    core: &Instance<S>,
    sync: &crmsync_domain::sync::SyncConfig,
    mapping: &Mapping,
    both: &[i64],
    one_way: &[Vec<i64>; 2],
) -> Result<Digests, DomainError> {
    let is_one_way = |wire_no: i64| one_way.iter().any(|f| f.contains(&wire_no));
    let routes: Vec<_> = mapping
        .routes
        .iter()
        .filter(|r| both.contains(&r.wire_no) || is_one_way(r.wire_no))
        .collect();
    let mut tables: Vec<i64> = routes.iter().map(|r| r.local.table_id).collect();
    tables.sort_unstable();
    tables.dedup();
    let mut found = Digests {
        fields: both.to_vec(),
        to_passive: one_way[0].clone(),
        to_active: one_way[1].clone(),
        ..Digests::default()
    };
    let mut users: Option<Vec<User>> = None;
    for table_id in tables {
        each_record_page(core, table_id, StatusFilter::All, |tx, page| {
            for record in page {
                let uid = mapping.uids.to_peer(record.uid);
                let mut hasher = Sha256::new();
                hasher.update(record.status.as_str().as_bytes());
                for route in routes.iter().filter(|r| r.local.table_id == table_id) {
                    let value = record.values.get(&route.local.no).unwrap_or(&Value::Null);
                    let wire = to_wire(tx, sync, mapping, &route.local, value, &mut users)?;
                    if !is_one_way(route.wire_no) {
                        hasher.update(format!("\n{}={wire}", route.wire_no).as_bytes());
                    } else if !wire.is_null() && wire != "" {
                        let digest = Sha256::digest(wire.to_string().as_bytes());
                        found
                            .one_way
                            .entry(uid)
                            .or_default()
                            .insert(route.wire_no, hex::encode(&digest[..8]));
                    }
                }
                found
                    .records
                    .insert(uid, hex::encode(&hasher.finalize()[..12]));
                found.tables.insert(uid, table_id);
                found.ids.insert(uid, record.id);
            }
            Ok(())
        })?;
    }
    Ok(found)
}

/// Compares this (active) side's digests with the other side's, over the same fields.
pub fn compare(here: &Digests, there: &Digests) -> Drift {
    let none = BTreeMap::new();
    // A one-way field differs where its sender holds a value the receiver does not.
    let one_way_differs = |uid: &Uuid| {
        let (ours, theirs) = (
            here.one_way.get(uid).unwrap_or(&none),
            there.one_way.get(uid).unwrap_or(&none),
        );
        let sent = |fields: &[i64], sender: &BTreeMap<i64, String>, receiver: &BTreeMap<_, _>| {
            fields.iter().any(|f| {
                sender
                    .get(f)
                    .is_some_and(|value| receiver.get(f) != Some(value))
            })
        };
        sent(&there.to_passive, ours, theirs) || sent(&there.to_active, theirs, ours)
    };
    let mut drift = Drift::default();
    for (uid, digest) in &here.records {
        match there.records.get(uid) {
            None => drift.only_here.push(*uid),
            Some(theirs) if theirs != digest || one_way_differs(uid) => drift.differ.push(*uid),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::route;
    use proptest::collection::btree_map;
    use proptest::prelude::*;

    fn uid(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    fn records(entries: &[(u128, &str)]) -> BTreeMap<Uuid, String> {
        entries
            .iter()
            .map(|(u, d)| (uid(*u), d.to_string()))
            .collect()
    }

    fn one_way(entries: &[(u128, i64, &str)]) -> BTreeMap<Uuid, BTreeMap<i64, String>> {
        let mut map: BTreeMap<Uuid, BTreeMap<i64, String>> = BTreeMap::new();
        for (u, field, digest) in entries {
            map.entry(uid(*u))
                .or_default()
                .insert(*field, digest.to_string());
        }
        map
    }

    #[test]
    fn records_on_one_side_only_and_differing_ones_are_told_apart() {
        let here = Digests {
            records: records(&[(1, "a"), (2, "b"), (3, "c")]),
            ..Digests::default()
        };
        let there = Digests {
            records: records(&[(2, "b"), (3, "x"), (4, "d")]),
            ..Digests::default()
        };
        assert_eq!(
            compare(&here, &there),
            Drift {
                differ: vec![uid(3)],
                only_here: vec![uid(1)],
                only_there: vec![uid(4)],
            }
        );
        assert!(compare(&here, &here).is_empty());
        assert!(!compare(&here, &Digests::default()).is_empty());
    }

    /// Field 7 flows from the active side to the passive one, field 8 back.
    fn one_way_sides(
        here: &[(u128, i64, &str)],
        there: &[(u128, i64, &str)],
    ) -> (Digests, Digests) {
        let side = |values| Digests {
            records: records(&[(1, "same")]),
            to_passive: vec![7],
            to_active: vec![8],
            one_way: one_way(values),
            ..Digests::default()
        };
        (side(here), side(there))
    }

    #[test]
    fn a_one_way_field_differs_only_where_its_sender_holds_a_value() {
        let differs = |here, there| {
            let (here, there) = one_way_sides(here, there);
            compare(&here, &there).differ == vec![uid(1)]
        };
        // Sent down: the passive side lacks the active side's value, or holds another.
        assert!(differs(&[(1, 7, "v")], &[]));
        assert!(differs(&[(1, 7, "v")], &[(1, 7, "w")]));
        // A value the passive side had before and the active side never filled: no drift.
        assert!(!differs(&[], &[(1, 7, "w")]));
        assert!(!differs(&[(1, 7, "v")], &[(1, 7, "v")]));
        // Sent up: the same the other way round.
        assert!(differs(&[], &[(1, 8, "v")]));
        assert!(differs(&[(1, 8, "w")], &[(1, 8, "v")]));
        assert!(!differs(&[(1, 8, "w")], &[]));
    }

    #[test]
    fn only_the_fields_flowing_between_the_sides_are_compared() {
        use Direction::{Both, Download, Off, Upload};
        // The passive side's own directions of wire fields 1..=7.
        let passive = Mapping {
            routes: vec![
                route(11, 5, 1, 1, Both),
                route(12, 5, 2, 1, Download),
                route(13, 5, 3, 1, Both),
                route(14, 5, 4, 1, Upload),
                route(15, 5, 5, 1, Upload),
                route(16, 5, 6, 1, Off),
                route(17, 5, 7, 1, Both),
            ],
            ..Mapping::default()
        };
        let request = DigestRequest {
            fields: vec![1, 2, 3, 4, 5, 6, 7, 9],
            directions: BTreeMap::from([
                (1, Both),
                (2, Upload),
                (3, Upload),
                (4, Download),
                (5, Upload),
                (6, Both),
                (7, Off),
                (9, Both),
            ]),
        };
        let (both, [to_passive, to_active]) = agreed(&passive, &request);
        assert_eq!(both, [1]);
        assert_eq!(
            to_passive,
            [2, 3],
            "the active side sends, the passive takes"
        );
        assert_eq!(to_active, [4]);
        // 5: both only send; 6: off here; 7: off on the active side; 9: not
        // carried here.

        let older = DigestRequest {
            fields: vec![1, 2, 6, 9],
            directions: BTreeMap::new(),
        };
        let (both, one_way) = agreed(&passive, &older);
        assert!(
            both.is_empty(),
            "no directions: nothing of them leaves this side"
        );
        assert!(one_way.iter().all(Vec::is_empty));
    }

    #[test]
    fn the_request_names_every_field_not_switched_off_once() {
        use Direction::{Both, Download, Off, Upload};
        let mapping = Mapping {
            routes: vec![
                route(3, 1, 3, 1, Upload),
                route(1, 1, 1, 1, Both),
                route(2, 1, 2, 1, Off),
                route(4, 2, 4, 2, Download),
            ],
            ..Mapping::default()
        };
        assert_eq!(fields(&mapping), [1, 3, 4]);
        let request = request(&mapping);
        assert_eq!(request.fields, [1, 3, 4]);
        assert_eq!(
            request.directions,
            BTreeMap::from([(1, Both), (3, Upload), (4, Download)])
        );
    }

    proptest! {
        /// Every record of either side is in exactly one place: the same, differing, or
        /// on one side only.
        #[test]
        fn every_record_lands_in_exactly_one_place(
            here in btree_map(0u128..20, "[ab]", 0..12),
            there in btree_map(0u128..20, "[ab]", 0..12),
        ) {
            let side = |m: &BTreeMap<u128, String>| Digests {
                records: m.iter().map(|(u, d)| (uid(*u), d.clone())).collect(),
                ..Digests::default()
            };
            let drift = compare(&side(&here), &side(&there));
            for n in here.keys().chain(there.keys()) {
                let u = uid(*n);
                let expected = match (here.get(n), there.get(n)) {
                    (Some(_), None) => [false, true, false],
                    (None, Some(_)) => [false, false, true],
                    (Some(a), Some(b)) => [a != b, false, false],
                    (None, None) => unreachable!(),
                };
                prop_assert_eq!(
                    [drift.differ.contains(&u), drift.only_here.contains(&u), drift.only_there.contains(&u)],
                    expected,
                    "record {}", n
                );
            }
            let listed = drift.differ.len() + drift.only_here.len() + drift.only_there.len();
            prop_assert!(listed <= here.len() + there.len());
            prop_assert!(compare(&side(&here), &side(&here)).is_empty());
        }
    }
}
