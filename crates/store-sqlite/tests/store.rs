//! What only the SQLite store has: its file opened beside a working server, and tables
//! from a database older than the kept record counts. Everything every store must do is
//! the conformance suite (`tests/conformance.rs`).

use crmsync_domain::clock::{Hlc, Stamp};
use crmsync_domain::record::NewRow;
use crmsync_domain::{Change, ChangeOp, FieldOptions, FieldType, RecordStatus, Store};
use crmsync_store_sqlite::SqliteStore;
use uuid::Uuid;

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

/// A table from a database without kept counts (before migration 11) is counted from its
/// rows, and counted again on its next write.
#[test]
fn a_table_without_kept_counts_is_counted_from_its_rows() {
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
    let create = |status| {
        let stamp = Stamp { hlc: Hlc(1), node };
        let row = NewRow {
            uid: Uuid::now_v7(),
            created_at_ms: 1,
            status,
            status_stamp: stamp,
            values: vec![],
        };
        let change = Change {
            seq: 0,
            table_id: table.id,
            record_id: 0,
            record_uid: row.uid,
            op: ChangeOp::Create,
            hlc: stamp.hlc,
            origin: crmsync_domain::Origin::Api,
            user_id: None,
            at_ms: 1,
            created_fields: vec![],
            fields: vec![],
        };
        store
            .write(|tx| tx.insert_record(&table, &row, &change))
            .unwrap();
    };
    for status in [
        RecordStatus::Active,
        RecordStatus::Active,
        RecordStatus::Deleted,
    ] {
        create(status);
    }
    let kept = || {
        let counts = store.read(|tx| tx.table_counts(&table)).unwrap();
        (counts.active, counts.deleted)
    };
    let conn = rusqlite::Connection::open(store.path()).unwrap();
    conn.execute("DELETE FROM record_counts", []).unwrap();
    assert_eq!(kept(), (2, 1), "counted from its rows");
    create(RecordStatus::Active);
    let rows: i64 = conn
        .query_row("SELECT COUNT(*) FROM record_counts", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, 1, "counted again on its next write");
    assert_eq!(kept(), (3, 1));
}
