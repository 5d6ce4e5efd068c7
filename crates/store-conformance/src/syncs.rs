//! Syncs: what their mapping is built from, their cursors and state, held changes, links
//! waiting for their target, their log.

use crate::Backend;
use crate::fixtures::{change, clients_with_a_name, passive_sync};
use crmsync_domain::clock::{Hlc, Stamp};
use crmsync_domain::record::NewRow;
use crmsync_domain::{ChangeOp, FieldOptions, FieldType, RecordStatus, Store, Value};
use uuid::Uuid;

/// What a sync's mapping is built from moves the config version; records, the log and a
/// sync's progress do not (a busy sync keeps its mapping).
pub fn the_config_version_grows_with_what_a_mapping_is_built_from_only<B: Backend>() {
    use crmsync_domain::sync::{Direction, SyncField, SyncState, SyncTable};
    let place = B::new();
    let store = place.open();
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
    let mut sync = passive_sync("branch");
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

/// A sync's progress — both cursors, the folder transports' positions, the channel, what
/// the peer said — reads back exactly as saved; a sync never saved reads as new.
pub fn a_sync_s_cursors_and_state_are_kept_as_saved<B: Backend>() {
    use crmsync_domain::sync::SyncState;
    let place = B::new();
    let store = place.open();
    let id = store
        .write(|tx| tx.insert_sync(&passive_sync("branch")))
        .unwrap();
    assert_eq!(
        store.read(|tx| tx.sync_state(id)).unwrap(),
        SyncState::default()
    );
    let state = SyncState {
        sent_seq: 7,
        received_seq: 9,
        written_seq: 11,
        peer_acked_seq: 5,
        channel: Some("{\"keys\":1}".into()),
        peer_instance: Some(Uuid::now_v7().to_string()),
        peer_catalog: Some("[]".into()),
        connected: true,
        reason: Some("why".into()),
        last_run_ms: Some(1_000),
        last_success_ms: Some(900),
        last_error: Some("refused".into()),
        pending_in: 3,
        resend_request: Some("{\"tables\":[1]}".into()),
        peer_user_match: Some("full_name".into()),
    };
    store.write(|tx| tx.save_sync_state(id, &state)).unwrap();
    assert_eq!(store.read(|tx| tx.sync_state(id)).unwrap(), state);
    let moved = SyncState {
        sent_seq: 8,
        channel: None,
        connected: false,
        ..state
    };
    store.write(|tx| tx.save_sync_state(id, &moved)).unwrap();
    assert_eq!(store.read(|tx| tx.sync_state(id)).unwrap(), moved);
    let saved = store.read(|tx| tx.syncs()).unwrap();
    assert_eq!(saved.len(), 1);
    assert_eq!((saved[0].id, saved[0].name.as_str()), (id, "branch"));
}

/// A change held back replaces the same part of the same record held before (the newer
/// arrival), is kept apart per sync, and is released by its id alone.
pub fn a_held_change_replaces_the_same_part_and_is_released_alone<B: Backend>() {
    use crmsync_domain::sync::HeldChange;
    let place = B::new();
    let store = place.open();
    let (first, second) = store
        .write(|tx| {
            Ok((
                tx.insert_sync(&passive_sync("a"))?,
                tx.insert_sync(&passive_sync("b"))?,
            ))
        })
        .unwrap();
    let uid = Uuid::now_v7();
    let held = |sync_id, part: &str, reason: &str| HeldChange {
        id: 0,
        sync_id,
        kind: "quarantine".into(),
        table_id: 1,
        record_uid: uid,
        part: part.into(),
        item: serde_json::json!({ "reason": reason }),
        reason: reason.into(),
        at_ms: 5,
    };
    store
        .write(|tx| {
            tx.hold(&held(first, "3", "too long"))?;
            tx.hold(&held(first, "status", "mass delete"))?;
            tx.hold(&held(first, "3", "still too long"))?;
            tx.hold(&held(second, "3", "other sync"))
        })
        .unwrap();
    let mut kept = store.read(|tx| tx.held(first)).unwrap();
    kept.sort_by(|a, b| a.part.cmp(&b.part));
    assert_eq!(
        kept.len(),
        2,
        "the same part held again replaces it: {kept:?}"
    );
    assert_eq!(
        (kept[0].part.as_str(), kept[0].reason.as_str()),
        ("3", "still too long")
    );
    assert_eq!(
        kept[0].item,
        serde_json::json!({ "reason": "still too long" })
    );
    assert_eq!(
        (kept[0].record_uid, kept[0].table_id, kept[0].kind.as_str()),
        (uid, 1, "quarantine")
    );
    assert_eq!(kept[1].part, "status");
    store
        .write(|tx| tx.release_held(first, kept[0].id))
        .unwrap();
    let left = store.read(|tx| tx.held(first)).unwrap();
    assert_eq!(
        left.iter().map(|h| h.part.as_str()).collect::<Vec<_>>(),
        ["status"]
    );
    // Another sync's id does not release it.
    store
        .write(|tx| tx.release_held(second, left[0].id))
        .unwrap();
    assert_eq!(store.read(|tx| tx.held(first)).unwrap().len(), 1);
    assert_eq!(
        store.read(|tx| tx.held(second)).unwrap()[0].reason,
        "other sync"
    );
}

/// A link value waiting for its target is kept once per record and field (the newer
/// replaces it) until removed; the sync log reads in order from a point and loses only
/// entries older than the pruning time.
pub fn pending_links_and_the_sync_log_are_kept_per_sync_and_pruned_by_age<B: Backend>() {
    use crmsync_domain::sync::{PendingLink, SyncLogEntry};
    let place = B::new();
    let store = place.open();
    let (first, second) = store
        .write(|tx| {
            Ok((
                tx.insert_sync(&passive_sync("a"))?,
                tx.insert_sync(&passive_sync("b"))?,
            ))
        })
        .unwrap();
    let node = store.read(|tx| tx.instance_id()).unwrap();
    let link = |sync_id, hlc| PendingLink {
        sync_id,
        table_id: 1,
        record_uid: Uuid::from_u128(1),
        field_no: 4,
        target_uid: Uuid::from_u128(hlc as u128),
        stamp: Stamp {
            hlc: Hlc(hlc),
            node,
        },
    };
    store
        .write(|tx| {
            tx.save_pending_link(&link(first, 10))?;
            tx.save_pending_link(&link(first, 20))?;
            tx.save_pending_link(&link(second, 30))
        })
        .unwrap();
    assert_eq!(
        store.read(|tx| tx.pending_links(first)).unwrap(),
        vec![link(first, 20)]
    );
    store
        .write(|tx| tx.remove_pending_link(&link(first, 20)))
        .unwrap();
    assert!(store.read(|tx| tx.pending_links(first)).unwrap().is_empty());
    assert_eq!(store.read(|tx| tx.pending_links(second)).unwrap().len(), 1);

    let entry = |sync_id, at_ms, message: &str| SyncLogEntry {
        id: 0,
        sync_id,
        at_ms,
        kind: "exchange".into(),
        message: message.into(),
        detail: Some(serde_json::json!({ "n": at_ms })),
        records: None,
    };
    store
        .write(|tx| {
            for (at, message) in [(100, "old"), (200, "middle"), (300, "new")] {
                tx.append_sync_log(&entry(first, at, message))?;
            }
            tx.append_sync_log(&entry(second, 100, "other"))
        })
        .unwrap();
    let messages = |sync_id, after| {
        let entries = store.read(|tx| tx.sync_log(sync_id, after, 10)).unwrap();
        entries
            .into_iter()
            .map(|e| (e.id, e.message, e.detail))
            .collect::<Vec<_>>()
    };
    let all = messages(first, 0);
    assert_eq!(
        all.iter().map(|e| e.1.as_str()).collect::<Vec<_>>(),
        ["old", "middle", "new"]
    );
    assert_eq!(all[0].2, Some(serde_json::json!({ "n": 100 })));
    assert_eq!(messages(first, all[0].0).len(), 2, "read on from an entry");
    assert_eq!(store.write(|tx| tx.prune_sync_log(200)).unwrap(), 2);
    let left = messages(first, 0);
    assert_eq!(
        left.iter().map(|e| e.1.as_str()).collect::<Vec<_>>(),
        ["middle", "new"]
    );
    assert!(messages(second, 0).is_empty());
}

/// Deleting a sync takes its fields, whole tables, progress, log, held changes, waiting
/// links and matched uids with it, and nothing of another sync.
pub fn deleting_a_sync_removes_its_fields_progress_and_log<B: Backend>() {
    use crmsync_domain::sync::{
        Direction, HeldChange, PendingLink, SyncField, SyncLogEntry, SyncState, SyncTable,
    };
    let place = B::new();
    let store = place.open();
    let (table, node) = clients_with_a_name(&store);
    let fill = |sync_id| {
        store
            .write(|tx| {
                tx.insert_sync_field(&SyncField {
                    id: 0,
                    sync_id,
                    field_no: 1,
                    direction: Direction::Both,
                    remote_field_no: Some(1),
                    conflict_policy: None,
                })?;
                tx.insert_sync_table(&SyncTable {
                    id: 0,
                    sync_id,
                    table_id: table.id,
                    direction: Direction::Both,
                    remote_table_id: None,
                })?;
                tx.save_sync_state(
                    sync_id,
                    &SyncState {
                        sent_seq: 3,
                        ..SyncState::default()
                    },
                )?;
                tx.append_sync_log(&SyncLogEntry {
                    id: 0,
                    sync_id,
                    at_ms: 1,
                    kind: "sent".into(),
                    message: "sent".into(),
                    detail: None,
                    records: None,
                })?;
                tx.hold(&HeldChange {
                    id: 0,
                    sync_id,
                    kind: "quarantine".into(),
                    table_id: table.id,
                    record_uid: Uuid::now_v7(),
                    part: "1".into(),
                    item: serde_json::json!({}),
                    reason: "r".into(),
                    at_ms: 1,
                })?;
                tx.save_pending_link(&PendingLink {
                    sync_id,
                    table_id: table.id,
                    record_uid: Uuid::now_v7(),
                    field_no: 1,
                    target_uid: Uuid::now_v7(),
                    stamp: Stamp { hlc: Hlc(1), node },
                })?;
                tx.save_uid_pairs(sync_id, table.id, &[(Uuid::now_v7(), Uuid::now_v7())])
            })
            .unwrap();
    };
    let (gone, stays) = store
        .write(|tx| {
            Ok((
                tx.insert_sync(&passive_sync("gone"))?,
                tx.insert_sync(&passive_sync("stays"))?,
            ))
        })
        .unwrap();
    fill(gone);
    fill(stays);
    store.write(|tx| tx.delete_sync(gone)).unwrap();
    type Left = (usize, usize, i64, usize, usize, usize, usize, bool);
    let left = |sync_id| -> Left {
        store
            .read(|tx| {
                Ok((
                    tx.sync_fields(sync_id)?.len(),
                    tx.sync_tables()?
                        .iter()
                        .filter(|t| t.sync_id == sync_id)
                        .count(),
                    tx.sync_state(sync_id)?.sent_seq,
                    tx.sync_log(sync_id, 0, 10)?.len(),
                    tx.held(sync_id)?.len(),
                    tx.pending_links(sync_id)?.len(),
                    tx.uid_pairs(sync_id)?.len(),
                    tx.syncs()?.iter().any(|s| s.id == sync_id),
                ))
            })
            .unwrap()
    };
    assert_eq!(left(gone), (0, 0, 0, 0, 0, 0, 0, false));
    assert_eq!(left(stays), (1, 1, 3, 1, 1, 1, 1, true));
}
