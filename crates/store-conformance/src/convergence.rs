//! Merging converges on the truth: two replicas that receive the same stamped writes in
//! different orders (and some twice) both end, for every record written, with the newest
//! write of each field and of the status, compared as (hlc, node) — the property that
//! makes every instance agree (B-01, B-02). A property test on two real stores: a
//! failure prints its (shrunk) case; `PROPTEST_CASES` sets how many run.

use crate::Backend;
use crmsync_domain::clock::{Hlc, Stamp};
use crmsync_domain::merge::MergeItem;
use crmsync_domain::{
    Actor, FieldOptions, Instance, Origin, RecordStatus, Role, Store, SystemClock, User, Value,
};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use uuid::Uuid;

/// A replica: an instance with one table of three text fields, and the actor a sync merges
/// as.
fn replica<S: crmsync_domain::Store>(store: S) -> (Instance<S>, Actor, i64, Vec<i64>) {
    let core = Instance::new(store, Arc::new(SystemClock));
    core.ensure_admin(Some("password-1")).unwrap();
    let admin = Actor {
        user: core.users().unwrap().remove(0),
        origin: Origin::Api,
    };
    let table = core.create_table(&admin, "T").unwrap().id;
    let fields = (0..3)
        .map(|i| {
            core.create_field(
                &admin,
                table,
                &format!("F{i}"),
                "text",
                FieldOptions::default(),
            )
            .unwrap()
            .no
        })
        .collect();
    let sync = Actor {
        user: User {
            id: 0,
            login: "sync".into(),
            full_name: "sync".into(),
            role: Role::User,
            active: true,
        },
        origin: Origin::Sync(1),
    };
    (core, sync, table, fields)
}

/// One stamped write as a peer sends it: (record, deleted, stamp, field, value). Records
/// and fields are indexes; values repeat on purpose (the same value written independently
/// on two nodes).
type Write = (usize, bool, Stamp, usize, Option<u8>);

const RECORDS: usize = 4;
const FIELDS: usize = 3;

/// Writes from three nodes, each stamp one write's (a node never issues a time twice);
/// times collide across nodes, so the node decides ties.
fn writes() -> impl Strategy<Value = Vec<Write>> {
    prop::collection::vec(
        (
            0..RECORDS,
            prop::bool::weighted(0.2),
            1..40u64,
            1..4u128,
            0..FIELDS,
            prop::option::weighted(0.75, 0..3u8),
        ),
        1..60,
    )
    .prop_map(|raw| {
        let mut stamps = BTreeSet::new();
        raw.into_iter()
            .filter_map(|(record, deleted, hlc, node, field, value)| {
                let stamp = Stamp {
                    hlc: Hlc(hlc),
                    node: Uuid::from_u128(node),
                };
                stamps
                    .insert(stamp)
                    .then_some((record, deleted, stamp, field, value))
            })
            .collect()
    })
}

/// An order of delivery: every write at least once, shuffled, some again anywhere.
fn delivery(n: usize) -> impl Strategy<Value = Vec<usize>> {
    (
        Just((0..n).collect::<Vec<_>>()).prop_shuffle(),
        prop::collection::vec((0..n, 0..=n), 0..n / 2 + 1),
    )
        .prop_map(|(mut order, again)| {
            for (write, at) in again {
                order.insert(at.min(order.len()), write);
            }
            order
        })
}

/// Per record written: the status and status stamp of its newest write, and per field
/// the value and stamp of the newest write of that field.
struct Expected {
    status: RecordStatus,
    status_stamp: Stamp,
    fields: BTreeMap<usize, (Option<u8>, Stamp)>,
}

fn expected(writes: &[Write]) -> BTreeMap<usize, Expected> {
    let mut records: BTreeMap<usize, Expected> = BTreeMap::new();
    for &(record, deleted, stamp, field, value) in writes {
        let status = if deleted {
            RecordStatus::Deleted
        } else {
            RecordStatus::Active
        };
        let truth = records.entry(record).or_insert(Expected {
            status,
            status_stamp: stamp,
            fields: BTreeMap::new(),
        });
        if stamp > truth.status_stamp {
            (truth.status, truth.status_stamp) = (status, stamp);
        }
        if truth.fields.get(&field).is_none_or(|&(_, s)| stamp > s) {
            truth.fields.insert(field, (value, stamp));
        }
    }
    records
}

fn text(value: Option<u8>) -> Value {
    value.map_or(Value::Null, |n| Value::Text(format!("v{n}")))
}

pub fn replicas_converge_on_the_newest_write_whatever_the_order_of_delivery<B: Backend>() {
    let places = (B::new(), B::new());
    let replicas = [replica(places.0.open()), replica(places.1.open())];
    let cases = writes().prop_flat_map(|writes| {
        let n = writes.len();
        (Just(writes), delivery(n), delivery(n))
    });
    // Each case writes records of its own, so the replicas are set up once.
    let mut runner = TestRunner::new(Config::default());
    let result = runner.run(&cases, |(writes, order_a, order_b)| {
        let uids: Vec<Uuid> = (0..RECORDS).map(|_| Uuid::now_v7()).collect();
        // Replica A merges one write at a time; B three at once, as a packet does (the same
        // record may come twice in one merge).
        for (((core, actor, table, fields), order), at_once) in
            replicas.iter().zip([&order_a, &order_b]).zip([1, 3])
        {
            for batch in order.chunks(at_once) {
                let items = batch.iter().map(|&w| {
                    let (record, deleted, stamp, field, value) = writes[w];
                    MergeItem {
                        uid: uids[record],
                        status: if deleted {
                            RecordStatus::Deleted
                        } else {
                            RecordStatus::Active
                        },
                        status_stamp: stamp,
                        values: vec![(fields[field], text(value), stamp)],
                        created_at_ms: None,
                    }
                });
                core.merge(actor, *table, items.collect()).unwrap();
            }
        }
        for (record, truth) in expected(&writes) {
            let uid = uids[record];
            for (side, (core, _, table, fields)) in ["A", "B"].iter().zip(&replicas) {
                let table = core.table(*table).unwrap();
                let stored = core
                    .store()
                    .read(|tx| tx.record_by_uid(&table, uid))
                    .unwrap();
                let Some(stored) = stored else {
                    return Err(TestCaseError::fail(format!(
                        "record {record} is missing on replica {side}"
                    )));
                };
                prop_assert_eq!(
                    stored.record.status,
                    truth.status,
                    "status of record {} on {}",
                    record,
                    side
                );
                prop_assert_eq!(
                    stored.status_stamp,
                    truth.status_stamp,
                    "status stamp of record {} on {}",
                    record,
                    side
                );
                for (i, no) in fields.iter().enumerate() {
                    let value = stored.record.values.get(no).cloned().unwrap_or(Value::Null);
                    let (want, want_stamp) = match truth.fields.get(&i) {
                        Some(&(v, s)) => (text(v), Some(s)),
                        None => (Value::Null, None),
                    };
                    prop_assert_eq!(value, want, "field {} of record {} on {}", i, record, side);
                    prop_assert_eq!(
                        stored.stamps.get(no).copied(),
                        want_stamp,
                        "stamp of field {} of record {} on {}",
                        i,
                        record,
                        side
                    );
                }
            }
        }
        Ok(())
    });
    if let Err(failure) = result {
        panic!("{failure}");
    }
}
