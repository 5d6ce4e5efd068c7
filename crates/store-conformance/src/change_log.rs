//! The change log: what a sync reads of it, a record's history, and reads that see the
//! writes of their own transaction.

use crate::Backend;
use crate::fixtures::{change, clients_with_a_name, named_row};
use crmsync_domain::clock::{Hlc, Stamp};
use crmsync_domain::record::{NewRow, RowUpdate, SyncLogFilter};
use crmsync_domain::{ChangeOp, FieldChange, Origin, RecordStatus, Store, Value};
use uuid::Uuid;

/// What a sync reads of the log: its own echoes and other syncs' resend requests are
/// passed over inside the store, and the cursor moves past them — to the last entry
/// returned when the page is full, else to the end of the log.
pub fn a_sync_reads_the_log_without_its_echoes_and_to_its_end<B: Backend>() {
    use crmsync_domain::record::SyncLogFilter;
    let place = B::new();
    let store = place.open();
    let (table, node) = clients_with_a_name(&store);
    let create = |tx: &mut dyn crmsync_domain::StoreTx, origin: Origin| {
        let stamp = Stamp { hlc: Hlc(1), node };
        let row = NewRow {
            uid: Uuid::now_v7(),
            created_at_ms: 1,
            status: RecordStatus::Active,
            status_stamp: stamp,
            values: vec![(1, Value::Text("x".into()), stamp)],
        };
        let mut change = change(ChangeOp::Create, stamp.hlc, vec![1], vec![]);
        change.origin = origin;
        tx.insert_record(&table, &row, &change)
    };
    // seq 1 api, 2-4 echoes of sync 1, 5 a resend for sync 2, 6 one for sync 1, 7-8 echoes.
    store
        .write(|tx| {
            let first = create(tx, Origin::Api)?;
            for _ in 0..3 {
                create(tx, Origin::Sync(1))?;
            }
            tx.append_resends(table.id, &[first], &[], 2, 1)?;
            tx.append_resends(table.id, &[first], &[], 1, 1)?;
            create(tx, Origin::Sync(1))?;
            create(tx, Origin::Sync(1))?;
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

/// An origin's text the domain does not know (written by another version, or by hand) is
/// read back as it was — in a record's history and in what a sync reads — not refused.
pub fn an_origin_the_domain_does_not_know_reads_back_as_it_was_written<B: Backend>() {
    let place = B::new();
    let store = place.open();
    let (table, node) = clients_with_a_name(&store);
    let unknown = Origin::Other("cli".into());
    let id = store
        .write(|tx| {
            let mut created = change(ChangeOp::Create, Hlc(10), vec![1], vec![]);
            created.origin = unknown.clone();
            tx.insert_record(
                &table,
                &named_row("Anna", Stamp { hlc: Hlc(10), node }),
                &created,
            )
        })
        .unwrap();
    let history = store.read(|tx| tx.history(&table, id)).unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].origin, unknown);
    let (sent, _) = store
        .read(|tx| tx.changes_for_sync(0, 10, &SyncLogFilter::for_sync(1)))
        .unwrap();
    assert_eq!(
        sent.iter().map(|c| &c.origin).collect::<Vec<_>>(),
        [&unknown],
        "no sync's echo: sent"
    );
}

/// A record's history is each of its writes, oldest first, with what changed and who wrote
/// it; the log numbers every entry without gaps.
pub fn a_record_s_history_is_every_write_in_order_with_its_origin<B: Backend>() {
    let place = B::new();
    let store = place.open();
    let (table, node) = clients_with_a_name(&store);
    let stamp = |hlc| Stamp {
        hlc: Hlc(hlc),
        node,
    };
    let row = named_row("Anna", stamp(10));
    let (id, other) = store
        .write(|tx| {
            let mut created = change(ChangeOp::Create, Hlc(10), vec![1], vec![]);
            created.origin = Origin::Api;
            created.user_id = Some(1);
            let id = tx.insert_record(&table, &row, &created)?;
            // Another record's entry between: a history follows its own record only.
            let other = tx.insert_record(&table, &named_row("Boris", stamp(11)), &created)?;
            Ok((id, other))
        })
        .unwrap();
    let renamed = vec![FieldChange {
        field_no: 1,
        old: Some("Anna".into()),
        new: "Anya".into(),
        ..Default::default()
    }];
    let write = |status: Option<RecordStatus>, hlc: u64, op, fields: Vec<FieldChange>| {
        let update = RowUpdate {
            id,
            updated_at_ms: hlc as i64,
            status: status.map(|s| (s, stamp(hlc))),
            values: match fields.is_empty() {
                true => vec![],
                false => vec![(1, Value::Text("Anya".into()), stamp(hlc))],
            },
        };
        store
            .write(|tx| {
                tx.update_record(
                    &table,
                    &update,
                    &change(op, Hlc(hlc), vec![], fields.clone()),
                )
            })
            .unwrap();
    };
    write(None, 20, ChangeOp::Update, renamed.clone());
    write(Some(RecordStatus::Deleted), 30, ChangeOp::Delete, vec![]);
    write(Some(RecordStatus::Active), 40, ChangeOp::Restore, vec![]);

    let history = store.read(|tx| tx.history(&table, id)).unwrap();
    let ops: Vec<ChangeOp> = history.iter().map(|c| c.op).collect();
    assert_eq!(
        ops,
        [
            ChangeOp::Create,
            ChangeOp::Update,
            ChangeOp::Delete,
            ChangeOp::Restore
        ]
    );
    assert_eq!(
        history.iter().map(|c| c.seq).collect::<Vec<_>>(),
        [1, 3, 4, 5]
    );
    assert_eq!(
        history.iter().map(|c| c.hlc.0).collect::<Vec<_>>(),
        [10, 20, 30, 40]
    );
    assert_eq!(
        (&history[0].origin, history[0].user_id),
        (&Origin::Api, Some(1))
    );
    assert_eq!(history[0].created_fields, [1]);
    assert_eq!(history[1].fields, renamed);
    assert!(history[1..].iter().all(|c| c.origin == Origin::Sync(1)));
    assert!(
        history
            .iter()
            .all(|c| c.record_uid == row.uid && c.record_id == id)
    );
    let other_history = store.read(|tx| tx.history(&table, other)).unwrap();
    assert_eq!(other_history.iter().map(|c| c.seq).collect::<Vec<_>>(), [2]);
    assert_eq!(store.read(|tx| tx.last_change_seq()).unwrap(), 5);
    assert_eq!(store.read(|tx| tx.change_count()).unwrap(), 5);
    assert!(store.read(|tx| tx.history(&table, 999)).unwrap().is_empty());
}

/// Inside one write transaction, every read of the log sees the writes made before it —
/// however many are waiting to be written together — and a rollback takes them all back.
pub fn a_write_and_its_log_entry_are_seen_by_reads_in_the_same_transaction<B: Backend>() {
    let place = B::new();
    let store = place.open();
    let (table, node) = clients_with_a_name(&store);
    let stamp = Stamp { hlc: Hlc(1), node };
    let filter = SyncLogFilter::for_sync(2);
    let seen = store
        .write(|tx| {
            let mut ids = Vec::new();
            for i in 0..3 {
                let row = named_row(&format!("r{i}"), stamp);
                ids.push(tx.insert_record(
                    &table,
                    &row,
                    &change(ChangeOp::Create, Hlc(1), vec![1], vec![]),
                )?);
            }
            let first = (
                tx.last_change_seq()?,
                tx.change_count()?,
                tx.changes_for_sync(0, 100, &filter)?.0.len(),
                tx.count_changes_for_sync(0, &filter)?,
                tx.history(&table, ids[2])?.len(),
            );
            // More than a batch of entries, then a resend of them all, then reads again.
            for i in 0..600 {
                let row = named_row(&format!("s{i}"), stamp);
                ids.push(tx.insert_record(
                    &table,
                    &row,
                    &change(ChangeOp::Create, Hlc(1), vec![1], vec![]),
                )?);
            }
            let resent = tx.append_resends(table.id, &ids, &[], 2, 5)?;
            let (changes, upto) = tx.changes_for_sync(600, 10_000, &filter)?;
            Ok((first, resent, changes.len(), upto, tx.change_count()?))
        })
        .unwrap();
    assert_eq!(seen.0, (3, 3, 3, 3, 1));
    assert_eq!(
        seen.1,
        Some((604, 1206)),
        "one resend entry per record, numbered on"
    );
    assert_eq!((seen.2, seen.3, seen.4), (606, 1206, 1206));
    let after: Result<(), crmsync_domain::DomainError> = store.write(|tx| {
        tx.insert_record(
            &table,
            &named_row("gone", stamp),
            &change(ChangeOp::Create, Hlc(1), vec![1], vec![]),
        )?;
        assert_eq!(tx.last_change_seq()?, 1207);
        Err(crmsync_domain::DomainError::invalid("rolled back"))
    });
    assert!(after.is_err());
    assert_eq!(store.read(|tx| tx.last_change_seq()).unwrap(), 1206);
    assert_eq!(
        store
            .read(|tx| tx.changes_for_sync(1206, 10, &filter))
            .unwrap(),
        (vec![], 1206)
    );
}
