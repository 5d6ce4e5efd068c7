//! The merge's decisions, driven on replicas modelled as pure state (per record: each
//! field's value and stamp, the status and its stamp), prove that replicas agree: any
//! delivery order and any duplication of the same writes end in the same state, the
//! newest write of each field and status; and a sync's conflict rule ends both sides of a
//! conflict with the rule's side's value, restamped when that is the older write (B-01,
//! B-02). Only `decide_field` and `take_status` decide here, as in `merge_with_rules`.

use crmsync_domain::clock::{Hlc, Stamp};
use crmsync_domain::merge::{FieldDecision, decide_field, take_status};
use crmsync_domain::sync::ConflictPolicy;
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use uuid::Uuid;

/// A field's value; None is empty. Few values, so independent writes often agree.
type Val = Option<u8>;
type Uid = u8;
type FieldNo = u8;
/// One stamped write as a peer delivers it: (uid, deleted, stamp, field, value).
type Write = (Uid, bool, Stamp, FieldNo, Val);

#[derive(Debug, Clone, PartialEq)]
struct Rec {
    deleted: bool,
    status_stamp: Stamp,
    fields: BTreeMap<FieldNo, (Val, Stamp)>,
}

/// What a peer sends for one record: its status and some fields, stamps kept.
#[derive(Debug, Clone)]
struct Item {
    uid: Uid,
    deleted: bool,
    status_stamp: Stamp,
    values: Vec<(FieldNo, Val, Stamp)>,
}

#[derive(Debug, Clone)]
struct Replica {
    node: Uuid,
    /// The newest HLC time seen or issued here.
    last: u64,
    records: BTreeMap<Uid, Rec>,
    /// Fields this side changed that the peer has not acknowledged (acknowledgements are
    /// not modelled: a change stays unacknowledged, the harder case for a rule).
    unacked: BTreeSet<(Uid, FieldNo)>,
    /// Conflict rules by field, seen from here.
    prefer: BTreeMap<FieldNo, ConflictPolicy>,
}

impl Replica {
    fn new(node: u128) -> Replica {
        Replica {
            node: Uuid::from_u128(node),
            last: 0,
            records: BTreeMap::new(),
            unacked: BTreeSet::new(),
            prefer: BTreeMap::new(),
        }
    }

    fn fresh_stamp(&mut self, wall: u64) -> Stamp {
        self.last = (self.last + 1).max(wall);
        Stamp {
            hlc: Hlc(self.last),
            node: self.node,
        }
    }

    /// A user's write here; returns the item that carries it to the peer.
    fn write(&mut self, uid: Uid, field: FieldNo, value: Val, wall: u64) -> Item {
        let stamp = self.fresh_stamp(wall);
        let rec = self.records.get_mut(&uid).expect("written records exist");
        rec.fields.insert(field, (value, stamp));
        self.unacked.insert((uid, field));
        Item {
            uid,
            deleted: rec.deleted,
            status_stamp: rec.status_stamp,
            values: vec![(field, value, stamp)],
        }
    }

    /// Merges a peer's item as `merge_with_rules` does; returns what a rule restamped
    /// here, which travels back to the peer.
    fn merge(&mut self, item: &Item) -> Option<Item> {
        for stamp in std::iter::once(&item.status_stamp).chain(item.values.iter().map(|v| &v.2)) {
            self.last = self.last.max(stamp.hlc.0);
        }
        let Some(rec) = self.records.get(&item.uid).cloned() else {
            let fields = item.values.iter().map(|&(f, v, s)| (f, (v, s))).collect();
            self.records.insert(
                item.uid,
                Rec {
                    deleted: item.deleted,
                    status_stamp: item.status_stamp,
                    fields,
                },
            );
            return None;
        };
        let mut rec = rec;
        let mut ruled = Vec::new();
        for &(field, value, stamp) in &item.values {
            let (local, local_stamp) = match rec.fields.get(&field) {
                Some(&(v, s)) => (v, Some(s)),
                None => (None, None),
            };
            let prefer = self.prefer.get(&field).copied().unwrap_or_default();
            let unacked = self.unacked.contains(&(item.uid, field));
            match decide_field(&local, local_stamp, &value, stamp, prefer, unacked) {
                FieldDecision::Take { .. } => {
                    rec.fields.insert(field, (value, stamp));
                }
                FieldDecision::Keep | FieldDecision::KeepByRule => {}
                FieldDecision::Restamp { prefer } => {
                    let (winner, _) = prefer.pick(&local, &value);
                    ruled.push((field, *winner));
                }
            }
        }
        if take_status(rec.status_stamp, item.status_stamp) {
            rec.deleted = item.deleted;
            rec.status_stamp = item.status_stamp;
        }
        // One fresh stamp for everything the rule decided, after the seen stamps.
        let restamped = (!ruled.is_empty()).then(|| {
            let stamp = self.fresh_stamp(0);
            for &(field, winner) in &ruled {
                rec.fields.insert(field, (winner, stamp));
                self.unacked.insert((item.uid, field));
            }
            Item {
                uid: item.uid,
                deleted: rec.deleted,
                status_stamp: rec.status_stamp,
                values: ruled.iter().map(|&(f, v)| (f, v, stamp)).collect(),
            }
        });
        self.records.insert(item.uid, rec);
        restamped
    }
}

/// Stamped writes from several nodes: (uid, deleted, stamp, field, value). Each stamp is
/// one write's, as on a real node whose clock never repeats a time; times collide across
/// nodes, so the node decides ties.
fn writes() -> impl Strategy<Value = Vec<Write>> {
    prop::collection::vec(
        (
            0..4u8,
            prop::bool::weighted(0.2),
            1..25u64,
            0..3u128,
            0..3u8,
            prop::option::weighted(0.8, 0..3u8),
        ),
        1..40,
    )
    .prop_map(|raw| {
        let mut seen = BTreeSet::new();
        raw.into_iter()
            .filter_map(|(uid, deleted, hlc, node, field, value)| {
                let stamp = Stamp {
                    hlc: Hlc(hlc),
                    node: Uuid::from_u128(node + 1),
                };
                seen.insert(stamp)
                    .then_some((uid, deleted, stamp, field, value))
            })
            .collect()
    })
}

/// Writes, and for each of two replicas a delivery order: every write at least once, in
/// any order, some twice or more.
fn deliveries() -> impl Strategy<Value = (Vec<Write>, [Vec<usize>; 2])> {
    writes().prop_flat_map(|writes| {
        let n = writes.len();
        let order = move || {
            (
                Just((0..n).collect::<Vec<_>>()).prop_shuffle(),
                prop::collection::vec((0..n, 0..=n), 0..n),
            )
                .prop_map(|(mut order, again)| {
                    for (write, at) in again {
                        order.insert(at.min(order.len()), write);
                    }
                    order
                })
        };
        (Just(writes), [order(), order()])
    })
}

proptest! {
    #[test]
    fn any_order_and_duplication_end_with_the_newest_write_of_everything(
        (writes, orders) in deliveries()
    ) {
        let item = |&(uid, deleted, stamp, field, value): &Write| Item {
            uid,
            deleted,
            status_stamp: stamp,
            values: vec![(field, value, stamp)],
        };
        // The truth, from the writes alone: the highest (hlc, node) wins.
        let mut expected: BTreeMap<Uid, Rec> = BTreeMap::new();
        for &(uid, deleted, stamp, field, value) in &writes {
            let rec = expected.entry(uid).or_insert(Rec {
                deleted,
                status_stamp: stamp,
                fields: BTreeMap::new(),
            });
            if stamp >= rec.status_stamp {
                rec.deleted = deleted;
                rec.status_stamp = stamp;
            }
            if rec.fields.get(&field).is_none_or(|&(_, s)| stamp > s) {
                rec.fields.insert(field, (value, stamp));
            }
        }
        for (i, order) in orders.iter().enumerate() {
            let mut replica = Replica::new(100 + i as u128);
            for &w in order {
                prop_assert!(replica.merge(&item(&writes[w])).is_none(), "no rule, no restamp");
            }
            prop_assert_eq!(&replica.records, &expected, "replica {} after {:?}", i, order);
        }
    }
}

/// Delivers an item from end `from` to the other end; what a rule restamps there goes back.
fn deliver(
    ends: &mut [Replica; 2],
    queues: &mut [VecDeque<Item>; 2],
    delivered: &mut Vec<(usize, Item)>,
    from: usize,
    item: Item,
) {
    if let Some(back) = ends[1 - from].merge(&item) {
        queues[1 - from].push_back(back);
    }
    delivered.push((from, item));
}

/// A field's rule on end A; end B has the mirror (a sync's `this_side` is Here on the end
/// where it is set and There on the other).
fn mirror(prefer: ConflictPolicy) -> ConflictPolicy {
    match prefer {
        ConflictPolicy::ThisSide => ConflictPolicy::OtherSide,
        ConflictPolicy::OtherSide => ConflictPolicy::ThisSide,
        ConflictPolicy::Newer => ConflictPolicy::Newer,
    }
}

const FIELDS: u8 = 3;

proptest! {
    #[test]
    fn a_rule_ends_both_sides_of_a_conflict_with_its_sides_value(
        rules in prop::collection::vec(
            prop_oneof![Just(ConflictPolicy::Newer), Just(ConflictPolicy::ThisSide), Just(ConflictPolicy::OtherSide)],
            FIELDS as usize,
        ),
        // (on B, field, value, wall clock): each end's clock is its own, so either end's
        // write can be the older one.
        local_writes in prop::collection::vec(
            (any::<bool>(), 0..FIELDS, prop::option::weighted(0.9, 1..4u8), 2..40u64),
            1..8,
        ),
        // Which direction delivers next; some steps deliver an earlier item again.
        schedule in prop::collection::vec((0..3u8, any::<prop::sample::Index>()), 0..30),
    ) {
        let base = Stamp { hlc: Hlc(1), node: Uuid::from_u128(1) };
        let mut ends = [Replica::new(1), Replica::new(2)];
        for (side, end) in ends.iter_mut().enumerate() {
            end.last = 1;
            end.records.insert(0, Rec {
                deleted: false,
                status_stamp: base,
                fields: (0..FIELDS).map(|f| (f, (Some(0), base))).collect(),
            });
            for (f, &rule) in rules.iter().enumerate() {
                end.prefer.insert(f as u8, if side == 0 { rule } else { mirror(rule) });
            }
        }
        // Each end's writes between two exchanges, in its own order: queue[i] carries end
        // i's items to the other end, in the order they were made.
        let mut queues: [VecDeque<Item>; 2] = Default::default();
        let mut written: BTreeMap<(usize, FieldNo), Vec<(Val, Stamp)>> = BTreeMap::new();
        for &(on_b, field, value, wall) in &local_writes {
            let side = usize::from(on_b);
            let item = ends[side].write(0, field, value, wall);
            written.entry((side, field)).or_default().push((value, item.values[0].2));
            queues[side].push_back(item);
        }
        let mut delivered: Vec<(usize, Item)> = Vec::new();
        for (step, index) in &schedule {
            match step {
                0 | 1 => {
                    let from = usize::from(*step);
                    if let Some(item) = queues[from].pop_front() {
                        deliver(&mut ends, &mut queues, &mut delivered, from, item);
                    }
                }
                _ if !delivered.is_empty() => {
                    let (from, item) = delivered[index.index(delivered.len())].clone();
                    deliver(&mut ends, &mut queues, &mut delivered, from, item);
                }
                _ => {}
            }
        }
        let mut steps = 0;
        while let Some(from) = (0..2).find(|&i| !queues[i].is_empty()) {
            let item = queues[from].pop_front().expect("not empty");
            deliver(&mut ends, &mut queues, &mut delivered, from, item);
            steps += 1;
            prop_assert!(steps < 1000, "the ends never stop restamping");
        }
        let (a, b) = (&ends[0].records[&0], &ends[1].records[&0]);
        prop_assert_eq!(a, b, "both ends hold the same values and stamps");
        for f in 0..FIELDS {
            let (value, stamp) = a.fields[&f];
            let last = |side: usize| written.get(&(side, f)).and_then(|w| w.last().copied());
            let all_stamps = || written.iter().filter(|((_, g), _)| *g == f).flat_map(|(_, w)| w.iter().map(|&(_, s)| s));
            let expected = match (last(0), last(1)) {
                (None, None) => Some(0),
                (Some((v, _)), None) | (None, Some((v, _))) => v,
                (Some((va, sa)), Some((vb, sb))) => match rules[f as usize] {
                    ConflictPolicy::ThisSide => va,
                    ConflictPolicy::OtherSide => vb,
                    ConflictPolicy::Newer => if sa > sb { va } else { vb },
                },
            };
            prop_assert_eq!(value, expected, "field {} under rule {:?}", f, rules[f as usize]);
            // The winner travels with a stamp no older than any write of the field: when
            // the rule's side wrote first, that is a fresh stamp newer than both.
            prop_assert!(all_stamps().all(|s| stamp >= s), "field {} kept an older stamp", f);
        }
    }
}
