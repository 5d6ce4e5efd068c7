//! The merge's plan for one record (`plan_existing`), the pure decision the write path
//! applies: which of a peer's values are taken, kept out, or decided by a rule, and the
//! status — checked as properties over any record, item, rules and unacknowledged fields.

use crmsync_domain::clock::{Hlc, Stamp};
use crmsync_domain::merge::{MergeItem, RecordPlan, plan_existing};
use crmsync_domain::record::{Record, StoredRecord};
use crmsync_domain::sync::ConflictPolicy;
use crmsync_domain::{Field, FieldOptions, FieldType, RecordStatus, Table, Value};
use proptest::prelude::*;
use std::collections::{BTreeMap, HashMap};
use uuid::Uuid;

const FIELDS: [i64; 3] = [1, 2, 3];

fn table() -> Table {
    Table {
        id: 1,
        name: "Clients".into(),
        fields: FIELDS
            .iter()
            .map(|&no| Field {
                no,
                table_id: 1,
                name: format!("F{no}"),
                field_type: FieldType::Text,
                options: FieldOptions::default(),
            })
            .collect(),
    }
}

fn stamp() -> impl Strategy<Value = Stamp> {
    (1u64..6, 1u128..3).prop_map(|(hlc, node)| Stamp {
        hlc: Hlc(hlc),
        node: Uuid::from_u128(node),
    })
}

/// A field's value: empty or one of two texts, so values often agree.
fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        Just(Value::Text("a".into())),
        Just(Value::Text("b".into()))
    ]
}

fn status() -> impl Strategy<Value = RecordStatus> {
    prop_oneof![Just(RecordStatus::Active), Just(RecordStatus::Deleted)]
}

fn prefer() -> impl Strategy<Value = ConflictPolicy> {
    prop_oneof![
        Just(ConflictPolicy::Newer),
        Just(ConflictPolicy::ThisSide),
        Just(ConflictPolicy::OtherSide)
    ]
}

/// Some of the fields, each once, with a value and its stamp.
fn written() -> impl Strategy<Value = BTreeMap<i64, (Value, Stamp)>> {
    proptest::collection::btree_map(
        proptest::sample::select(FIELDS.to_vec()),
        (value(), stamp()),
        0..=3,
    )
}

/// The record here: some fields written (value and stamp), a status and its stamp.
fn current() -> impl Strategy<Value = StoredRecord> {
    (written(), status(), stamp()).prop_map(|(fields, status, status_stamp)| StoredRecord {
        record: Record {
            id: 7,
            uid: Uuid::from_u128(99),
            created_at_ms: 1,
            updated_at_ms: 1,
            status,
            values: fields
                .iter()
                .filter(|(_, (v, _))| !v.is_null())
                .map(|(no, (v, _))| (*no, v.clone()))
                .collect(),
        },
        stamps: fields.iter().map(|(no, (_, s))| (*no, *s)).collect(),
        status_stamp,
    })
}

/// What the peer sends: each field at most once.
fn item() -> impl Strategy<Value = MergeItem> {
    (written(), status(), stamp()).prop_map(|(fields, status, status_stamp)| MergeItem {
        uid: Uuid::from_u128(99),
        status,
        status_stamp,
        values: fields.into_iter().map(|(no, (v, s))| (no, v, s)).collect(),
        created_at_ms: None,
    })
}

fn plan(
    current: &StoredRecord,
    item: &MergeItem,
    rules: &HashMap<i64, ConflictPolicy>,
    unacked: &[i64],
) -> RecordPlan {
    plan_existing(&table(), current, item.clone(), rules, || {
        Ok(unacked.to_vec())
    })
    .unwrap()
}

fn local(current: &StoredRecord, no: i64) -> Value {
    current
        .record
        .values
        .get(&no)
        .cloned()
        .unwrap_or(Value::Null)
}

/// The record after the plan's writes (a rule's value gets a stamp newer than both).
fn applied(current: &StoredRecord, plan: &RecordPlan) -> StoredRecord {
    let mut after = current.clone();
    let fresh = Stamp {
        hlc: Hlc(100),
        node: Uuid::from_u128(1),
    };
    let writes = plan
        .winners
        .iter()
        .map(|(no, v, s)| (*no, v.clone(), *s))
        .chain(plan.ruled.iter().map(|(no, v, _)| (*no, v.clone(), fresh)));
    for (no, value, stamp) in writes {
        match value.is_null() {
            true => after.record.values.remove(&no),
            false => after.record.values.insert(no, value),
        };
        after.stamps.insert(no, stamp);
    }
    if let Some((status, stamp)) = plan.status {
        after.record.status = status;
        after.status_stamp = stamp;
    }
    after
}

proptest! {
    /// Without rules the newer write wins, field by field and for the status; only the
    /// fields whose value changes are reported taken, and a newer local value that differs
    /// is reported kept.
    #[test]
    fn without_rules_the_newer_write_wins_each_field_and_the_status(
        current in current(), item in item(),
    ) {
        let plan = plan(&current, &item, &HashMap::new(), &[]);
        prop_assert!(plan.ruled.is_empty() && plan.decided.is_empty());
        for (no, value, stamp) in &item.values {
            let newer = current.stamps.get(no).is_none_or(|l| stamp > l);
            let taken = plan.winners.iter().any(|(n, v, s)| n == no && v == value && s == stamp);
            prop_assert_eq!(taken, newer, "field {}", no);
            let changes = *value != local(&current, *no);
            prop_assert_eq!(plan.taken.contains(no), newer && changes);
            prop_assert_eq!(plan.kept.iter().any(|k| k.field_no == *no), !newer && changes);
        }
        prop_assert_eq!(plan.logged.len(), plan.winners.len());
        prop_assert_eq!(
            plan.status.is_some(),
            item.status_stamp > current.status_stamp
        );
    }

    /// Every field sent ends in one place: taken, decided by a rule, or left as it is; a
    /// rule's value is one of the two sides', never a third; a field no rule names and no
    /// unacknowledged change touches is decided as without rules.
    #[test]
    fn with_rules_each_field_is_decided_once_for_one_of_the_two_values(
        current in current(),
        item in item(),
        rules in proptest::collection::hash_map(proptest::sample::select(FIELDS.to_vec()), prefer(), 0..=3),
        unacked in proptest::collection::vec(proptest::sample::select(FIELDS.to_vec()), 0..=3),
    ) {
        let plan = plan(&current, &item, &rules, &unacked);
        let without = plan_existing(&table(), &current, item.clone(), &HashMap::new(), || Ok(vec![])).unwrap();
        for (no, value, _) in &item.values {
            let won = plan.winners.iter().filter(|(n, ..)| n == no).count();
            let ruled: Vec<&Value> = plan.ruled.iter().filter(|(n, ..)| n == no).map(|(_, v, _)| v).collect();
            prop_assert!(won + ruled.len() <= 1, "field {} written twice", no);
            for v in ruled {
                prop_assert!(v == value || *v == local(&current, *no), "field {}: a third value", no);
            }
            let conflict = rules.get(no).is_some_and(|p| *p != ConflictPolicy::Newer)
                && unacked.contains(no)
                && *value != local(&current, *no);
            if !conflict {
                prop_assert_eq!(won, without.winners.iter().filter(|(n, ..)| n == no).count());
            }
        }
        prop_assert_eq!(plan.status, without.status);
    }

    /// A plan applied, the same item again changes nothing: nothing taken, no rule's write,
    /// no status — a change cannot bounce back and forth.
    #[test]
    fn the_same_item_merged_twice_writes_nothing_the_second_time(
        current in current(),
        item in item(),
        rules in proptest::collection::hash_map(proptest::sample::select(FIELDS.to_vec()), prefer(), 0..=3),
        unacked in proptest::collection::vec(proptest::sample::select(FIELDS.to_vec()), 0..=3),
    ) {
        let first = plan(&current, &item, &rules, &unacked);
        let after = applied(&current, &first);
        let again = plan(&after, &item, &rules, &unacked);
        prop_assert!(again.winners.is_empty(), "{:?}", again.winners);
        prop_assert!(again.status.is_none());
        prop_assert!(again.taken.is_empty());
        // A rule's value keeps its fresh stamp: asked again, the rule holds it.
        for (no, value, _) in &again.ruled {
            prop_assert_eq!(value, &local(&after, *no));
        }
    }
}

/// The change log is read only when a rule could apply, and then once for the record.
#[test]
fn the_unacknowledged_fields_are_read_once_and_only_when_a_rule_could_apply() {
    let older = Stamp {
        hlc: Hlc(1),
        node: Uuid::from_u128(1),
    };
    let newer = Stamp {
        hlc: Hlc(2),
        node: Uuid::from_u128(2),
    };
    let current = StoredRecord {
        record: Record {
            id: 7,
            uid: Uuid::from_u128(99),
            created_at_ms: 1,
            updated_at_ms: 1,
            status: RecordStatus::Active,
            values: BTreeMap::from([(1, Value::Text("a".into())), (2, Value::Text("a".into()))]),
        },
        stamps: BTreeMap::from([(1, older), (2, older)]),
        status_stamp: older,
    };
    let item = MergeItem {
        uid: current.record.uid,
        status: RecordStatus::Active,
        status_stamp: older,
        values: vec![
            (1, Value::Text("b".into()), newer),
            (2, Value::Text("b".into()), newer),
        ],
        created_at_ms: None,
    };
    let reads = std::cell::Cell::new(0);
    let read = || {
        reads.set(reads.get() + 1);
        Ok(vec![1, 2])
    };
    let rules = HashMap::from([(1, ConflictPolicy::ThisSide), (2, ConflictPolicy::ThisSide)]);
    let plan = plan_existing(&table(), &current, item.clone(), &rules, read).unwrap();
    assert_eq!(reads.get(), 1);
    assert_eq!(
        plan.ruled.len(),
        2,
        "this side's older values restamped: {plan:?}"
    );
    let read_again = || -> Result<Vec<i64>, crmsync_domain::DomainError> {
        panic!("no rule applies: the log is not read")
    };
    plan_existing(&table(), &current, item, &HashMap::new(), read_again).unwrap();
}
