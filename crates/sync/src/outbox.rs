//! Packets from the change log: what this side has changed since the peer's cursor, in
//! configured fields that leave in this direction, with their current values and stamps.

use crate::mapping::Mapping;
use crate::protocol::{Item, Packet, WireField, WireStamp};
use crmsync_domain::clock::Stamp;
use crmsync_domain::record::ChangeOp;
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

/// The origin recorded for changes this sync applied: never sent back over it.
pub fn origin_of(sync: &SyncConfig) -> String {
    format!("sync:{}", sync.id)
}

/// Change-log entries after `after` (at most `limit`), as one packet for this sync.
pub fn build_packet<S: Store>(
    core: &Instance<S>,
    sync: &SyncConfig,
    mapping: &Mapping,
    after: i64,
    limit: usize,
) -> Result<Packet, DomainError> {
    let echo = origin_of(sync);
    let resend_for_us = format!("resend:{}", sync.id);
    core.store().read(|tx| {
        let changes = tx.changes_after(after, limit)?;
        let upto = changes.last().map_or(after, |c| c.seq);
        let sending_tables: Vec<TableId> = mapping
            .routes
            .iter()
            .filter(|r| r.direction.sends())
            .map(|r| r.local.table_id)
            .collect();
        // Per record: the configured fields to send, and whether its status may have changed.
        let mut order: Vec<(TableId, RecordId)> = Vec::new();
        let mut groups: HashMap<(TableId, RecordId), (BTreeSet<FieldNo>, bool)> = HashMap::new();
        for change in &changes {
            if change.origin == echo || !sending_tables.contains(&change.table_id) {
                continue;
            }
            let resend = change.op == ChangeOp::Resend;
            if resend && change.origin != resend_for_us {
                continue;
            }
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
        let tables = tx.tables()?;
        let mut users: Option<Vec<User>> = None;
        let mut items = Vec::new();
        for key in order {
            let (fields, status) = &groups[&key];
            if fields.is_empty() && !status {
                continue;
            }
            let Some(table) = tables.iter().find(|t| t.id == key.0) else {
                continue;
            };
            let Some(stored) = tx.record(table, key.1)? else {
                continue;
            };
            let mut wire_fields = std::collections::BTreeMap::new();
            for no in fields {
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
    let echo = origin_of(sync);
    let resend_for_us = format!("resend:{}", sync.id);
    core.store().read(|tx| {
        let mut after = state.sent_seq;
        let mut pending = 0i64;
        loop {
            let page = tx.changes_after(after, 10_000)?;
            let Some(last) = page.last() else { break };
            after = last.seq;
            pending += page
                .iter()
                .filter(|c| {
                    c.origin != echo && (c.op != ChangeOp::Resend || c.origin == resend_for_us)
                })
                .count() as i64;
        }
        Ok(pending)
    })
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
