//! Records: stamps that round-trip exactly (the creation stamp and stamps of their own,
//! from other nodes), tombstones, rollback, counts, reads of many at once.

use crate::Backend;
use crate::fixtures::{change, clients_with_a_name, named_row};
use crmsync_domain::clock::{Hlc, Stamp};
use crmsync_domain::record::{NewRow, RowUpdate, StatusFilter};
use crmsync_domain::{
    ChangeOp, DomainError, FieldChange, FieldOptions, FieldType, RecordQuery, RecordStatus, Store,
    Value,
};
use uuid::Uuid;

pub fn stamps_round_trip_for_local_and_remote_writers<B: Backend>() {
    let place = B::new();
    let store = place.open();
    let remote = Uuid::now_v7();
    let (table, local) = store
        .write(|tx| {
            let id = tx.create_table("Clients")?;
            tx.create_field(id, "Name", FieldType::Text, &FieldOptions::default())?;
            tx.create_field(id, "Phone", FieldType::Text, &FieldOptions::default())?;
            let table = tx.tables()?.remove(0);
            Ok((table, tx.instance_id()?))
        })
        .unwrap();
    let base = Stamp {
        hlc: Hlc(1000),
        node: remote,
    };
    let own = Stamp {
        hlc: Hlc(2000),
        node: local,
    };
    let uid = Uuid::now_v7();
    let row = NewRow {
        uid,
        created_at_ms: 5,
        status: RecordStatus::Deleted,
        status_stamp: base,
        values: vec![
            (1, Value::Text("Anna".into()), base),
            (2, Value::Text("+7".into()), own),
        ],
    };
    let id = store
        .write(|tx| {
            tx.insert_record(
                &table,
                &row,
                &change(ChangeOp::Create, base.hlc, vec![1, 2], vec![]),
            )
        })
        .unwrap();
    let stored = store.read(|tx| tx.record(&table, id)).unwrap().unwrap();
    assert_eq!(stored.record.uid, uid);
    assert_eq!(stored.record.status, RecordStatus::Deleted);
    assert_eq!(stored.status_stamp, base);
    assert_eq!(
        stored.stamps[&1], base,
        "a value written with the creation stamp carries it"
    );
    assert_eq!(stored.stamps[&2], own);
    assert_eq!(stored.record.updated_at_ms, 5);

    let later = Stamp {
        hlc: Hlc(3000),
        node: remote,
    };
    let update = RowUpdate {
        id,
        updated_at_ms: 9,
        status: Some((RecordStatus::Active, later)),
        values: vec![(1, Value::Null, later)],
    };
    let fields = vec![FieldChange {
        field_no: 1,
        old: Some("Anna".into()),
        new: serde_json::Value::Null,
        ..Default::default()
    }];
    store
        .write(|tx| {
            tx.update_record(
                &table,
                &update,
                &change(ChangeOp::Update, later.hlc, vec![], fields.clone()),
            )
        })
        .unwrap();
    let stored = store.read(|tx| tx.record(&table, id)).unwrap().unwrap();
    assert_eq!(stored.record.status, RecordStatus::Active);
    assert_eq!(stored.status_stamp, later);
    assert_eq!(
        stored.stamps[&1], later,
        "a cleared value keeps the stamp of its clearing"
    );
    assert!(!stored.record.values.contains_key(&1));
    assert_eq!(stored.record.updated_at_ms, 9);

    let history = store.read(|tx| tx.history(&table, id)).unwrap();
    assert_eq!(
        history.iter().map(|c| c.op).collect::<Vec<_>>(),
        [ChangeOp::Create, ChangeOp::Update]
    );
    assert_eq!(history[0].created_fields, [1, 2]);
    assert_eq!(history[1].fields, fields);
    assert!(
        history
            .iter()
            .all(|c| c.record_uid == uid && c.origin == crmsync_domain::Origin::Sync(1))
    );
}

pub fn a_failed_transaction_leaves_nothing<B: Backend>() {
    let place = B::new();
    let store = place.open();
    let (table, node) = clients_with_a_name(&store);
    let stamp = Stamp { hlc: Hlc(1), node };
    let result: Result<(), DomainError> = store.write(|tx| {
        for i in 0..300 {
            let row = NewRow {
                uid: Uuid::now_v7(),
                created_at_ms: i,
                status: RecordStatus::Active,
                status_stamp: stamp,
                values: vec![(1, Value::Text(format!("r{i}")), stamp)],
            };
            tx.insert_record(
                &table,
                &row,
                &change(ChangeOp::Create, stamp.hlc, vec![1], vec![]),
            )?;
        }
        Err(DomainError::invalid("row 300 was bad"))
    });
    assert!(result.is_err());
    assert_eq!(
        store.read(|tx| tx.change_count()).unwrap(),
        0,
        "no change-log entry survives"
    );
    let counts = store.read(|tx| tx.table_counts(&table)).unwrap();
    assert_eq!((counts.active, counts.deleted), (0, 0));
}

/// A write whose closure goes on after a failed store call (here a duplicate uid) and
/// returns Ok reports what was kept: either success with its other writes there (SQLite
/// undoes only the failed statement) or an error with nothing kept (PostgreSQL aborts the
/// whole transaction) — never success for writes that are gone. The store works on after.
pub fn a_write_that_goes_on_after_a_failed_statement_reports_what_was_kept<B: Backend>() {
    let place = B::new();
    let store = place.open();
    let (table, node) = clients_with_a_name(&store);
    let stamp = Stamp { hlc: Hlc(1), node };
    let create = || change(ChangeOp::Create, stamp.hlc, vec![1], vec![]);
    let first = named_row("Anna", stamp);
    store
        .write(|tx| tx.insert_record(&table, &first, &create()))
        .unwrap();
    let second = named_row("Boris", stamp);
    let result = store.write(|tx| {
        tx.insert_record(&table, &second, &create())?;
        // Reads of its own writes: nothing is left waiting to be written at commit.
        tx.table_counts(&table)?;
        tx.change_count()?;
        let again = tx.insert_record(&table, &first, &create());
        assert!(again.is_err(), "a second record with one uid is refused");
        Ok(())
    });
    let kept = store
        .read(|tx| tx.record_by_uid(&table, second.uid))
        .unwrap();
    match result {
        Ok(()) => assert!(kept.is_some(), "reported committed, so its record is there"),
        Err(_) => assert!(kept.is_none(), "reported failed, so nothing of it is kept"),
    }
    let third = named_row("Vera", stamp);
    store
        .write(|tx| tx.insert_record(&table, &third, &create()))
        .expect("the next write goes through");
    assert!(
        store
            .read(|tx| tx.record_by_uid(&table, third.uid))
            .unwrap()
            .is_some()
    );
}

/// A packet's uids are looked up, and its records read, together: several statements'
/// worth at once, each record as it reads alone.
pub fn the_uids_present_are_found_and_records_read_among_many<B: Backend>() {
    let place = B::new();
    let store = place.open();
    let (table, node) = clients_with_a_name(&store);
    let stamp = Stamp { hlc: Hlc(1), node };
    let stored: Vec<Uuid> = (0..1_200).map(|_| Uuid::now_v7()).collect();
    store
        .write(|tx| {
            for uid in &stored {
                let row = NewRow {
                    uid: *uid,
                    created_at_ms: 1,
                    status: RecordStatus::Active,
                    status_stamp: stamp,
                    values: vec![],
                };
                tx.insert_record(
                    &table,
                    &row,
                    &change(ChangeOp::Create, stamp.hlc, vec![], vec![]),
                )?;
            }
            Ok(())
        })
        .unwrap();
    let mut asked: Vec<Uuid> = (0..100).map(|_| Uuid::now_v7()).collect();
    asked.extend(stored.iter().rev());
    let present = store.read(|tx| tx.uids_present(&table, &asked)).unwrap();
    assert_eq!(present.len(), stored.len());
    assert!(stored.iter().all(|uid| present.contains(uid)));
    assert!(
        store
            .read(|tx| tx.uids_present(&table, &[]))
            .unwrap()
            .is_empty()
    );

    let mut ids: Vec<i64> = (1..=1_200).rev().collect();
    ids.extend([5_000, 6_000]);
    let (mut together, alone) = store
        .read(|tx| {
            let together = tx.records_by_ids(&table, &ids)?;
            let mut alone = Vec::new();
            for id in 1..=1_200 {
                alone.extend(tx.record(&table, id)?);
            }
            Ok((together, alone))
        })
        .unwrap();
    together.sort_by_key(|r| r.record.id);
    assert_eq!(together.len(), 1_200, "ids without a record are left out");
    assert_eq!(together, alone);
}

/// The counts kept beside a table against the records listed by status, after creates
/// (active and as tombstones), deletes, restores and rolled-back transactions.
pub fn kept_record_counts_match_the_records_through_every_kind_of_write<B: Backend>() {
    let place = B::new();
    let store = place.open();
    let (table, node) = clients_with_a_name(&store);
    let stamp = |hlc| Stamp {
        hlc: Hlc(hlc),
        node,
    };
    let listed = || {
        let count = |status| {
            let query = RecordQuery {
                status,
                limit: 1_000_000,
                ..RecordQuery::default()
            };
            store
                .read(|tx| tx.list_records(&table, &query))
                .unwrap()
                .len() as u64
        };
        (count(StatusFilter::Active), count(StatusFilter::Deleted))
    };
    let kept = || {
        let counts = store.read(|tx| tx.table_counts(&table)).unwrap();
        (counts.active, counts.deleted)
    };
    let mut ids = Vec::new();
    let mut state = 7u64;
    let mut next = |n: u64| {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 33) % n
    };
    for round in 0..40u64 {
        let fail = round % 9 == 4;
        let result: Result<(), DomainError> = store.write(|tx| {
            for i in 0..next(20) {
                let hlc = 10 + round * 100 + i;
                if ids.is_empty() || next(3) == 0 {
                    let mut row = named_row(&format!("r{hlc}"), stamp(hlc));
                    if next(4) == 0 {
                        row.status = RecordStatus::Deleted;
                    }
                    let id = tx.insert_record(
                        &table,
                        &row,
                        &change(ChangeOp::Create, stamp(hlc).hlc, vec![1], vec![]),
                    )?;
                    if !fail {
                        ids.push(id);
                    }
                } else {
                    let id = ids[next(ids.len() as u64) as usize];
                    let status = match next(3) {
                        0 => None,
                        1 => Some((RecordStatus::Deleted, stamp(hlc))),
                        _ => Some((RecordStatus::Active, stamp(hlc))),
                    };
                    let op = match status {
                        Some((RecordStatus::Deleted, _)) => ChangeOp::Delete,
                        Some((RecordStatus::Active, _)) => ChangeOp::Restore,
                        None => ChangeOp::Update,
                    };
                    let update = RowUpdate {
                        id,
                        updated_at_ms: 2,
                        status,
                        values: vec![(1, Value::Text(format!("u{hlc}")), stamp(hlc))],
                    };
                    tx.update_record(&table, &update, &change(op, stamp(hlc).hlc, vec![], vec![]))?;
                }
            }
            match fail {
                true => Err(DomainError::invalid("rolled back")),
                false => Ok(()),
            }
        });
        assert_eq!(result.is_err(), fail);
        assert_eq!(kept(), listed(), "after round {round}");
    }
    assert!(
        listed().0 > 0 && listed().1 > 0,
        "both statuses were counted"
    );
}

/// A deleted record is a tombstone: it keeps its values and uid, reads with its status and
/// the stamp that deleted it, is listed only among the deleted, and comes back restored.
pub fn a_deleted_record_stays_as_a_tombstone_and_is_listed_by_status<B: Backend>() {
    let place = B::new();
    let store = place.open();
    let (table, node) = clients_with_a_name(&store);
    let stamp = |hlc| Stamp {
        hlc: Hlc(hlc),
        node,
    };
    let row = named_row("Anna", stamp(10));
    let id = store
        .write(|tx| {
            tx.insert_record(
                &table,
                &row,
                &change(ChangeOp::Create, Hlc(10), vec![1], vec![]),
            )
        })
        .unwrap();
    let set_status = |status, hlc| {
        let update = RowUpdate {
            id,
            updated_at_ms: hlc as i64,
            status: Some((status, stamp(hlc))),
            values: vec![],
        };
        let op = match status {
            RecordStatus::Deleted => ChangeOp::Delete,
            RecordStatus::Active => ChangeOp::Restore,
        };
        store
            .write(|tx| tx.update_record(&table, &update, &change(op, Hlc(hlc), vec![], vec![])))
            .unwrap();
    };
    let listed = |status| {
        let query = RecordQuery {
            status,
            ..RecordQuery::default()
        };
        let records = store.read(|tx| tx.list_records(&table, &query)).unwrap();
        records.iter().map(|r| r.id).collect::<Vec<_>>()
    };
    set_status(RecordStatus::Deleted, 20);
    let stored = store.read(|tx| tx.record(&table, id)).unwrap().unwrap();
    assert_eq!(stored.record.status, RecordStatus::Deleted);
    assert_eq!(stored.status_stamp, stamp(20));
    assert_eq!(stored.record.uid, row.uid);
    assert_eq!(stored.record.values[&1], Value::Text("Anna".into()));
    assert_eq!(
        store.read(|tx| tx.record_status(table.id, id)).unwrap(),
        Some(RecordStatus::Deleted)
    );
    assert_eq!(listed(StatusFilter::Active), Vec::<i64>::new());
    assert_eq!(listed(StatusFilter::Deleted), vec![id]);
    assert_eq!(listed(StatusFilter::All), vec![id]);
    assert_eq!(
        store
            .read(|tx| tx.record_by_uid(&table, row.uid))
            .unwrap()
            .map(|r| r.record.id),
        Some(id),
        "a tombstone is found by its uid"
    );
    set_status(RecordStatus::Active, 30);
    assert_eq!(listed(StatusFilter::Active), vec![id]);
    assert_eq!(
        store.read(|tx| tx.record_uid(table.id, id)).unwrap(),
        Some(row.uid)
    );
    assert_eq!(
        store.read(|tx| tx.record_status(table.id, 999)).unwrap(),
        None
    );
}
