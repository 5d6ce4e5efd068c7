//! Packets from the change log: what this side has changed since the peer's cursor, in
//! configured fields that leave in this direction, with their current values and stamps.

use crate::mapping::Mapping;
use crate::protocol::{Item, Packet, WireField, WireStamp};
use crmsync_domain::clock::Stamp;
use crmsync_domain::record::{ChangeOp, LoggedChange, StoredRecord, SyncLogFilter};
use crmsync_domain::store::StoreTx;
use crmsync_domain::sync::{SyncConfig, UserMatch};
use crmsync_domain::{
    DomainError, Field, FieldNo, Instance, RecordId, Store, TableId, User, Value,
};
use serde_json::Value as Json;
use std::collections::{BTreeSet, HashMap};

pub fn wire_stamp(stamp: Stamp) -> WireStamp {
    WireStamp {
        hlc: stamp.hlc.0,
        node: stamp.node,
    }
}

/// Change-log entries after `after` (at most `limit`), as one packet for this sync.
pub fn build_packet<S: Store>(
    core: &Instance<S>,
    sync: &SyncConfig,
    mapping: &Mapping,
    after: i64,
    limit: usize,
) -> Result<Packet, DomainError> {
    core.store().read(|tx| {
        let (changes, upto) =
            tx.changes_for_sync(after, limit, &SyncLogFilter::for_sync(sync.id))?;
        let outgoing = outgoing(&changes, sync, mapping);
        let tables = tx.tables()?;
        // The packet's records, read a table at a time rather than one by one.
        let mut stored_records: HashMap<(TableId, RecordId), StoredRecord> = HashMap::new();
        for table in &tables {
            let ids: Vec<RecordId> = outgoing
                .iter()
                .filter(|o| o.table_id == table.id)
                .map(|o| o.record_id)
                .collect();
            if ids.is_empty() {
                continue;
            }
            for stored in tx.records_by_ids(table, &ids)? {
                stored_records.insert((table.id, stored.record.id), stored);
            }
        }
        let mut users: Option<Vec<User>> = None;
        let mut items = Vec::new();
        for record in outgoing {
            let Some(table) = tables.iter().find(|t| t.id == record.table_id) else {
                continue;
            };
            let Some(stored) = stored_records.remove(&(record.table_id, record.record_id)) else {
                continue;
            };
            let mut wire_fields = std::collections::BTreeMap::new();
            for no in &record.fields {
                let (Some(route), Some(stamp)) = (mapping.by_local(*no), stored.stamps.get(no))
                else {
                    continue;
                };
                let value = stored.record.values.get(no).unwrap_or(&Value::Null);
                let json = to_wire(tx, sync, mapping, &route.local, value, &mut users)?;
                wire_fields.insert(
                    route.wire_no,
                    WireField {
                        value: json,
                        stamp: wire_stamp(*stamp),
                    },
                );
            }
            items.push(Item {
                uid: mapping.uids.to_peer(stored.record.uid),
                table: mapping.wire_table(table.id).unwrap_or_default(),
                status: stored.record.status.as_str().to_string(),
                status_stamp: wire_stamp(stored.status_stamp),
                fields: wire_fields,
                created_at_ms: Some(stored.record.created_at_ms),
            });
        }
        let remaining = (tx.last_change_seq()? - upto).max(0);
        Ok(Packet {
            after,
            upto,
            items,
            remaining,
            rules: mapping.wire_rules(sync),
            ..Packet::default()
        })
    })
}

/// A record a packet carries: the configured fields to send, and whether its status may
/// have changed (it is sent then even with no field).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Outgoing {
    pub table_id: TableId,
    pub record_id: RecordId,
    pub fields: BTreeSet<FieldNo>,
    pub status: bool,
}

/// What of `changes` this sync sends, a record once, in the order of its first change: not
/// what it applied itself (its own origin), nor fields it does not send, nor resend
/// requests meant for another sync.
pub(crate) fn outgoing(
    changes: &[LoggedChange],
    sync: &SyncConfig,
    mapping: &Mapping,
) -> Vec<Outgoing> {
    let for_us = SyncLogFilter::for_sync(sync.id);
    let sending_tables: Vec<TableId> = mapping
        .routes
        .iter()
        .filter(|r| r.direction.sends())
        .map(|r| r.local.table_id)
        .collect();
    let mut order: Vec<(TableId, RecordId)> = Vec::new();
    let mut groups: HashMap<(TableId, RecordId), (BTreeSet<FieldNo>, bool)> = HashMap::new();
    for change in changes {
        if !for_us.takes(change) || !sending_tables.contains(&change.table_id) {
            continue;
        }
        let resend = change.op == ChangeOp::Resend;
        let key = (change.table_id, change.record_id);
        let entry = groups.entry(key).or_insert_with(|| {
            order.push(key);
            (BTreeSet::new(), false)
        });
        if resend && change.field_nos.is_empty() {
            // Everything this sync sends of the record.
            let table = change.table_id;
            for route in mapping
                .routes
                .iter()
                .filter(|r| r.local.table_id == table && r.direction.sends())
            {
                entry.0.insert(route.local.no);
            }
        }
        for no in &change.field_nos {
            if mapping.by_local(*no).is_some_and(|r| r.direction.sends()) {
                entry.0.insert(*no);
            }
        }
        entry.1 |= matches!(
            change.op,
            ChangeOp::Create | ChangeOp::Delete | ChangeOp::Restore | ChangeOp::Resend
        );
    }
    order
        .into_iter()
        .filter_map(|key| {
            let (fields, status) = groups.remove(&key)?;
            (!fields.is_empty() || status).then_some(Outgoing {
                table_id: key.0,
                record_id: key.1,
                fields,
                status,
            })
        })
        .collect()
}

/// A value as it travels: users by the sync's matching rule, links by the target's uid.
pub(crate) fn to_wire(
    tx: &mut dyn StoreTx,
    sync: &SyncConfig,
    mapping: &Mapping,
    field: &Field,
    value: &Value,
    users: &mut Option<Vec<User>>,
) -> Result<Json, DomainError> {
    Ok(match value {
        Value::User(id) => {
            if users.is_none() {
                *users = Some(tx.users()?);
            }
            let user = users.as_ref().and_then(|u| u.iter().find(|u| u.id == *id));
            match (sync.user_match, user) {
                (UserMatch::Id, _) => Json::from(*id),
                (UserMatch::Login, Some(u)) => Json::from(u.login.clone()),
                (UserMatch::FullName, Some(u)) => Json::from(u.full_name.clone()),
                (_, None) => Json::Null,
            }
        }
        Value::Link(id) => {
            let target = field.options.table_id.unwrap_or_default();
            tx.record_uid(target, *id)?
                .map(|uid| Json::from(mapping.uids.to_peer(uid).to_string()))
                .unwrap_or(Json::Null)
        }
        other => other.to_json(field),
    })
}

/// Change-log entries this sync still has to send (not what it received itself, nor
/// resend requests meant for other syncs).
pub fn pending_out<S: Store>(core: &Instance<S>, sync: &SyncConfig) -> Result<i64, DomainError> {
    let state = core.sync_state(sync.id)?;
    let filter = SyncLogFilter::for_sync(sync.id);
    core.store()
        .read(|tx| tx.count_changes_for_sync(state.sent_seq, &filter))
        .map(|n| n as i64)
}

/// Walks a table's records of `status` a page at a time, handing each page to `visit`
/// inside one read transaction (what a drift check and a match read whole tables with).
pub(crate) fn each_record_page<S: Store>(
    core: &Instance<S>,
    table_id: TableId,
    status: crmsync_domain::record::StatusFilter,
    mut visit: impl FnMut(&mut dyn StoreTx, &[crmsync_domain::Record]) -> Result<(), DomainError>,
) -> Result<(), DomainError> {
    let mut after = None;
    loop {
        let page = core.list_records(
            table_id,
            &crmsync_domain::RecordQuery {
                status,
                limit: crmsync_domain::record::MAX_PAGE,
                after,
                ..crmsync_domain::RecordQuery::default()
            },
        )?;
        core.store().read(|tx| visit(tx, &page.records))?;
        match page.next_after {
            Some(next) => after = Some(next),
            None => return Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{route, sync_config};
    use crmsync_domain::Origin;
    use crmsync_domain::sync::{Direction, Mode};
    use proptest::collection::vec;
    use proptest::prelude::*;

    /// Table 1: fields 1 (both) and 2 (upload) leave, 3 only arrives; table 2: field 4
    /// leaves, 5 is off; table 3 is not synced.
    fn mapping() -> Mapping {
        Mapping {
            routes: vec![
                route(1, 1, 1, 1, Direction::Both),
                route(2, 1, 2, 1, Direction::Upload),
                route(3, 1, 3, 1, Direction::Download),
                route(4, 2, 4, 2, Direction::Both),
                route(5, 2, 5, 2, Direction::Off),
            ],
            ..Mapping::default()
        }
    }

    fn change(
        seq: i64,
        op: ChangeOp,
        record: (i64, i64),
        origin: &str,
        fields: &[i64],
    ) -> LoggedChange {
        LoggedChange {
            seq,
            table_id: record.0,
            record_id: record.1,
            op,
            origin: Origin::parse(origin),
            field_nos: fields.to_vec(),
        }
    }

    /// (How far such a read moves the cursor is the store's: its tests.)
    #[test]
    fn echoes_and_other_syncs_resends_are_not_sent() {
        let echoes = [
            change(4, ChangeOp::Update, (1, 100), "sync:1", &[1]),
            change(9, ChangeOp::Resend, (1, 100), "resend:2", &[]),
        ];
        let sync = sync_config(Mode::Active);
        assert!(outgoing(&echoes, &sync, &mapping()).is_empty());
    }

    fn sent(outgoing: &[Outgoing]) -> Vec<(i64, Vec<i64>, bool)> {
        outgoing
            .iter()
            .map(|o| (o.record_id, o.fields.iter().copied().collect(), o.status))
            .collect()
    }

    #[test]
    fn a_packet_carries_each_record_once_with_the_fields_that_leave() {
        use ChangeOp::{Create, Delete, Resend, Update};
        let changes = [
            change(1, Create, (1, 100), "api", &[1, 2, 3]),
            change(2, Update, (1, 101), "api", &[3]),
            change(3, Update, (1, 100), "sync:1", &[3]),
            change(4, Update, (1, 102), "sync:1", &[1]),
            change(5, Resend, (1, 103), "resend:1", &[]),
            change(6, Resend, (1, 104), "resend:2", &[]),
            change(7, Update, (3, 300), "api", &[9]),
            change(8, Delete, (1, 101), "api", &[]),
            change(9, Update, (1, 105), "sync:2", &[2]),
            change(10, Update, (2, 200), "api", &[5]),
            change(11, Resend, (2, 201), "resend:1", &[4]),
        ];
        let outgoing = outgoing(&changes, &sync_config(Mode::Active), &mapping());
        assert_eq!(
            sent(&outgoing),
            [
                (100, vec![1, 2], true),
                // Placed by its first change, sent for its delete.
                (101, vec![], true),
                // A resend without fields: everything the sync sends of the record.
                (103, vec![1, 2], true),
                // What another sync brought in goes on.
                (105, vec![2], false),
                (201, vec![4], true),
            ]
        );
    }

    fn changes() -> impl Strategy<Value = Vec<LoggedChange>> {
        let op = prop_oneof![
            Just(ChangeOp::Create),
            Just(ChangeOp::Update),
            Just(ChangeOp::Delete),
            Just(ChangeOp::Restore),
            Just(ChangeOp::Resend),
        ];
        let origin = prop_oneof![
            Just("api"),
            Just("sync:1"),
            Just("sync:2"),
            Just("resend:1"),
            Just("resend:2")
        ];
        vec((op, 1i64..4, 1i64..5, origin, vec(0i64..3, 0..3)), 0..30).prop_map(|entries| {
            entries
                .into_iter()
                .enumerate()
                .map(|(i, (op, table, record, origin, fields))| {
                    // A change names fields of its own table: 1..=3, 4..=5, 6.
                    let table_fields: &[i64] = match table {
                        1 => &[1, 2, 3],
                        2 => &[4, 5],
                        _ => &[6],
                    };
                    let fields: Vec<i64> = fields
                        .iter()
                        .map(|f| table_fields[*f as usize % table_fields.len()])
                        .collect();
                    change(i as i64 + 1, op, (table, record), origin, &fields)
                })
                .collect()
        })
    }

    proptest! {
        #[test]
        fn what_leaves_is_what_this_sync_sends_once_in_order(changes in changes()) {
            let sync = sync_config(Mode::Active);
            let mapping = mapping();
            let outgoing = outgoing(&changes, &sync, &mapping);
            let for_us = SyncLogFilter::for_sync(sync.id);
            let counted = |c: &&LoggedChange| for_us.takes(c) && [1, 2].contains(&c.table_id);
            let mut seen = Vec::new();
            for record in &outgoing {
                let key = (record.table_id, record.record_id);
                prop_assert!(!seen.contains(&key), "{:?} twice", key);
                seen.push(key);
                let its: Vec<&LoggedChange> = changes
                    .iter()
                    .filter(counted)
                    .filter(|c| (c.table_id, c.record_id) == key)
                    .collect();
                prop_assert!(!its.is_empty(), "{:?} sent without a change of its own", key);
                for no in &record.fields {
                    let route = mapping.by_local(*no).unwrap();
                    prop_assert!(route.direction.sends() && route.local.table_id == key.0);
                }
                let named = its.iter().flat_map(|c| &c.field_nos).filter(|no| {
                    mapping.by_local(**no).is_some_and(|r| r.direction.sends())
                });
                for no in named {
                    prop_assert!(record.fields.contains(no), "field {} of {:?} left out", no, key);
                }
                let status = its.iter().any(|c| c.op != ChangeOp::Update);
                prop_assert_eq!(record.status, status);
            }
            // In the order of each record's first change.
            let firsts: Vec<i64> = seen
                .iter()
                .map(|key| changes.iter().filter(counted).find(|c| (c.table_id, c.record_id) == *key).unwrap().seq)
                .collect();
            prop_assert!(firsts.windows(2).all(|w| w[0] < w[1]));
            // Its own echoes and other syncs' resends change nothing.
            let kept: Vec<LoggedChange> = changes.iter().filter(|c| for_us.takes(c)).cloned().collect();
            prop_assert_eq!(super::outgoing(&kept, &sync, &mapping), outgoing);
        }
    }
}
