//! The SQLite store through the domain's `Store` trait: what the write path and later the
//! sync rely on — stamps that round-trip exactly (the creation stamp and stamps of their
//! own, from other nodes), records created as tombstones, history chains, rollback.

use crmsync_domain::clock::{Hlc, Stamp};
use crmsync_domain::record::{NewRow, RowUpdate};
use crmsync_domain::{
    Change, ChangeOp, DomainError, FieldChange, FieldOptions, FieldType, RecordStatus, Store, Value,
};
use crmsync_store_sqlite::SqliteStore;
use uuid::Uuid;

fn change(op: ChangeOp, hlc: Hlc, created: Vec<i64>, fields: Vec<FieldChange>) -> Change {
    Change {
        seq: 0,
        table_id: 1,
        record_id: 0,
        record_uid: Uuid::nil(),
        op,
        hlc,
        origin: "sync:1".into(),
        user_id: None,
        at_ms: 1,
        created_fields: created,
        fields,
    }
}

#[test]
fn stamps_round_trip_for_local_and_remote_writers() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
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
            .all(|c| c.record_uid == uid && c.origin == "sync:1")
    );
}

#[test]
fn a_failed_transaction_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    let table = store
        .write(|tx| {
            let id = tx.create_table("Clients")?;
            tx.create_field(id, "Name", FieldType::Text, &FieldOptions::default())?;
            Ok(tx.tables()?.remove(0))
        })
        .unwrap();
    let node = store.read(|tx| tx.instance_id()).unwrap();
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
