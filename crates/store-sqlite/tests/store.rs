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

/// A table "Clients" with one text field "Name", and this instance's node id.
fn clients_with_a_name(store: &SqliteStore) -> (crmsync_domain::Table, Uuid) {
    let table = store
        .write(|tx| {
            let id = tx.create_table("Clients")?;
            tx.create_field(id, "Name", FieldType::Text, &FieldOptions::default())?;
            Ok(tx.tables()?.remove(0))
        })
        .unwrap();
    (table, store.read(|tx| tx.instance_id()).unwrap())
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

/// The counts kept beside a table against a count of its rows, after creates (active and
/// as tombstones), deletes, restores and a rolled-back transaction; and a table from a
/// database without kept counts (before migration 11) counted on its next write.
#[test]
fn kept_record_counts_match_the_rows_through_every_kind_of_write() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    let (table, node) = clients_with_a_name(&store);
    let stamp = |hlc| Stamp {
        hlc: Hlc(hlc),
        node,
    };
    let scanned = || {
        let conn = rusqlite::Connection::open(store.path()).unwrap();
        conn.query_row(
            &format!(
                "SELECT COALESCE(SUM(status = 0), 0), COALESCE(SUM(status = 1), 0) FROM t{}",
                table.id
            ),
            [],
            |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64)),
        )
        .unwrap()
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
                    let status = if next(4) == 0 {
                        RecordStatus::Deleted
                    } else {
                        RecordStatus::Active
                    };
                    let row = NewRow {
                        uid: Uuid::now_v7(),
                        created_at_ms: 1,
                        status,
                        status_stamp: stamp(hlc),
                        values: vec![(1, Value::Text(format!("r{hlc}")), stamp(hlc))],
                    };
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
        assert_eq!(kept(), scanned(), "after round {round}");
    }
    assert!(
        scanned().0 > 0 && scanned().1 > 0,
        "both statuses were counted"
    );

    // A database from before the kept counts: counted from its rows, then kept again.
    let conn = rusqlite::Connection::open(store.path()).unwrap();
    conn.execute("DELETE FROM record_counts", []).unwrap();
    assert_eq!(kept(), scanned());
    store
        .write(|tx| {
            let row = NewRow {
                uid: Uuid::now_v7(),
                created_at_ms: 1,
                status: RecordStatus::Active,
                status_stamp: stamp(9_999),
                values: vec![],
            };
            tx.insert_record(
                &table,
                &row,
                &change(ChangeOp::Create, Hlc(9_999), vec![], vec![]),
            )
        })
        .unwrap();
    let rows: i64 = conn
        .query_row("SELECT COUNT(*) FROM record_counts", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, 1, "counted again on its next write");
    assert_eq!(kept(), scanned());
}

/// `crmsync status` (and any script polling it) opens the database beside a working
/// server: an up-to-date database is opened without the write lock, so it neither waits
/// for the server's writes nor holds them up.
#[test]
fn an_up_to_date_database_opens_while_another_connection_writes() {
    let dir = tempfile::tempdir().unwrap();
    let path = SqliteStore::open(dir.path()).unwrap().path().to_path_buf();
    let writer = rusqlite::Connection::open(&path).unwrap();
    writer.execute_batch("BEGIN IMMEDIATE").unwrap();
    let opened = SqliteStore::open(dir.path());
    assert!(opened.is_ok(), "{:?}", opened.err());
    assert!(opened.unwrap().read(|tx| tx.instance_id()).is_ok());
    writer.execute_batch("COMMIT").unwrap();
}

/// What a sync reads of the log: its own echoes and other syncs' resend requests are
/// passed over inside the store, and the cursor moves past them — to the last entry
/// returned when the page is full, else to the end of the log.
#[test]
fn a_sync_reads_the_log_without_its_echoes_and_to_its_end() {
    use crmsync_domain::record::SyncLogFilter;
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    let (table, node) = clients_with_a_name(&store);
    let create = |tx: &mut dyn crmsync_domain::StoreTx, origin: &str| {
        let stamp = Stamp { hlc: Hlc(1), node };
        let row = NewRow {
            uid: Uuid::now_v7(),
            created_at_ms: 1,
            status: RecordStatus::Active,
            status_stamp: stamp,
            values: vec![(1, Value::Text("x".into()), stamp)],
        };
        let mut change = change(ChangeOp::Create, stamp.hlc, vec![1], vec![]);
        change.origin = origin.into();
        tx.insert_record(&table, &row, &change)
    };
    // seq 1 api, 2-4 echoes of sync 1, 5 a resend for sync 2, 6 one for sync 1, 7-8 echoes.
    store
        .write(|tx| {
            let first = create(tx, "api")?;
            for _ in 0..3 {
                create(tx, "sync:1")?;
            }
            tx.append_resends(table.id, &[first], &[], "resend:2", 1)?;
            tx.append_resends(table.id, &[first], &[], "resend:1", 1)?;
            create(tx, "sync:1")?;
            create(tx, "sync:1")?;
            Ok(())
        })
        .unwrap();
    let filter = SyncLogFilter::for_sync(1);
    let read = |after, limit| {
        store
            .read(|tx| tx.changes_for_sync(after, limit, &filter))
            .map(|(changes, upto)| (changes.iter().map(|c| c.seq).collect::<Vec<_>>(), upto))
            .unwrap()
    };
    assert_eq!(read(0, 100), (vec![1, 6], 8), "to the end of the log");
    assert_eq!(
        read(0, 1),
        (vec![1], 1),
        "a full page stops at its last entry"
    );
    assert_eq!(read(1, 1), (vec![6], 6));
    assert_eq!(
        read(6, 100),
        (vec![], 8),
        "only echoes: past them in one read"
    );
    assert_eq!(read(8, 100), (vec![], 8), "nothing new");
    let count = |after| {
        store
            .read(|tx| tx.count_changes_for_sync(after, &filter))
            .unwrap()
    };
    assert_eq!((count(0), count(1), count(6)), (2, 1, 0));
    // Another sync sends what sync 1 brought in, and its own resend.
    let other = SyncLogFilter::for_sync(2);
    let seqs = store
        .read(|tx| tx.changes_for_sync(0, 100, &other))
        .unwrap()
        .0
        .iter()
        .map(|c| c.seq)
        .collect::<Vec<_>>();
    assert_eq!(seqs, vec![1, 2, 3, 4, 5, 7, 8]);
}

/// A packet's uids are looked up, and its records read, together: several statements'
/// worth at once, each record as it reads alone.
#[test]
fn the_uids_present_are_found_and_records_read_among_many() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
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

/// What a sync's mapping is built from moves the config version; records, the log and a
/// sync's progress do not (a busy sync keeps its mapping).
#[test]
fn the_config_version_grows_with_what_a_mapping_is_built_from_only() {
    use crmsync_domain::sync::{
        ConflictPolicy, Direction, Mode, Secret, SyncConfig, SyncField, SyncState, SyncTable,
        Transport, UserMatch,
    };
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    let version = || store.read(|tx| tx.config_version()).unwrap();
    let mut seen = version();
    let mut moves = |what: &str, write: &dyn Fn(&mut dyn crmsync_domain::StoreTx)| {
        store
            .write(|tx| {
                write(tx);
                Ok(())
            })
            .unwrap();
        let now = version();
        assert!(now > seen, "{what} left the config version at {seen}");
        seen = now;
    };
    let (table, node) = clients_with_a_name(&store);
    moves("a new field", &|tx| {
        tx.create_field(table.id, "Phone", FieldType::Text, &FieldOptions::default())
            .unwrap();
    });
    let mut sync = SyncConfig {
        id: 0,
        name: "branch".into(),
        mode: Mode::Passive,
        transport: Transport::Http,
        remote_access: false,
        remote_url: None,
        password: Secret::default(),
        log: true,
        period_seconds: 5,
        user_match: UserMatch::Login,
        local: None,
        ftp: None,
        mass_delete_percent: 20,
        conflict_policy: ConflictPolicy::Newer,
    };
    let id = std::cell::Cell::new(0);
    moves("a new sync", &|tx| id.set(tx.insert_sync(&sync).unwrap()));
    let id = id.get();
    sync.id = id;
    sync.name = "branch 2".into();
    moves("a renamed sync", &|tx| tx.update_sync(&sync).unwrap());
    let field = SyncField {
        id: 0,
        sync_id: id,
        field_no: 1,
        direction: Direction::Both,
        remote_field_no: Some(1),
        conflict_policy: None,
    };
    moves("a sync field", &|tx| {
        tx.insert_sync_field(&field).unwrap();
    });
    let whole = SyncTable {
        id: 0,
        sync_id: id,
        table_id: table.id,
        direction: Direction::Both,
        remote_table_id: None,
    };
    moves("a whole table", &|tx| {
        tx.insert_sync_table(&whole).unwrap();
    });
    moves("matched uids", &|tx| {
        tx.save_uid_pairs(id, table.id, &[(Uuid::now_v7(), Uuid::now_v7())])
            .unwrap()
    });
    let described = SyncState {
        peer_catalog: Some("[]".into()),
        ..SyncState::default()
    };
    moves("the peer's catalogue", &|tx| {
        tx.save_sync_state(id, &described).unwrap()
    });

    let stays = version();
    let moved_on = SyncState {
        sent_seq: 7,
        received_seq: 9,
        connected: true,
        ..described.clone()
    };
    store
        .write(|tx| {
            tx.save_sync_state(id, &moved_on)?;
            let stamp = Stamp { hlc: Hlc(1), node };
            let row = NewRow {
                uid: Uuid::now_v7(),
                created_at_ms: 1,
                status: RecordStatus::Active,
                status_stamp: stamp,
                values: vec![(1, Value::Text("x".into()), stamp)],
            };
            tx.insert_record(
                &table,
                &row,
                &change(ChangeOp::Create, stamp.hlc, vec![1], vec![]),
            )?;
            Ok(())
        })
        .unwrap();
    assert_eq!(version(), stays, "progress and records keep the mapping");
    let described_again = SyncState {
        peer_catalog: Some("[{}]".into()),
        ..moved_on
    };
    store
        .write(|tx| tx.save_sync_state(id, &described_again))
        .unwrap();
    assert!(version() > stays, "the peer's catalogue, changed");
}
