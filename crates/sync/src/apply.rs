//! Applying a peer's packet: items are mapped to local tables and fields (only fields this
//! side takes), values translated (users by the sync's rule, links by uid), and merged
//! through the domain's write path with origin `sync:<id>`.

use crate::mapping::{Mapping, Route};
use crate::protocol::{Item, Packet, WireField, WireStamp};
use crmsync_domain::clock::{Hlc, Stamp};
use crmsync_domain::logged_records::LoggedRecords;
use crmsync_domain::merge::{ConflictRules, MergeItem};
use crmsync_domain::sync::{
    ConflictPolicy, HELD_MASS_DELETE, HELD_QUARANTINE, HeldChange, PendingLink, SyncConfig,
    UserMatch,
};
use crmsync_domain::{
    Actor, DomainError, Field, FieldNo, FieldType, FileRef, Instance, Origin, RecordStatus, Role,
    Store, Table, TableId, User, Value,
};
use serde_json::{Value as Json, json};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ApplyReport {
    pub items: usize,
    pub created: usize,
    pub changed: usize,
    pub conflicts: usize,
    pub problems: usize,
    /// Held back: quarantined values and deletes awaiting approval.
    pub held: usize,
    /// The records taken, for the sync log's one entry per packet (S-31).
    pub received: LoggedRecords,
}

/// An exchange deleting more than the sync's share of a table's records has its deletes
/// held for approval (B-18) when it deletes at least this many (one delete of a
/// three-record table is ordinary).
pub const MASS_DELETE_MIN: u64 = 5;

/// Whether the mass-delete guard looks at this apply (a person's approval skips it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Guard {
    On,
    Off,
}

fn stamp(wire: WireStamp) -> Stamp {
    Stamp {
        hlc: Hlc(wire.hlc),
        node: wire.node,
    }
}

/// Who sync writes are recorded as: no user, origin `sync:<id>`.
fn sync_actor(sync: &SyncConfig) -> Actor {
    Actor {
        user: User {
            id: 0,
            login: Origin::Sync(sync.id).as_string(),
            full_name: sync.name.clone(),
            role: Role::User,
            active: true,
        },
        origin: Origin::Sync(sync.id),
    }
}

pub fn apply_packet<S: Store>(
    core: &Instance<S>,
    sync: &SyncConfig,
    mapping: &Mapping,
    packet: &Packet,
) -> Result<ApplyReport, DomainError> {
    apply_items(core, sync, mapping, packet, Guard::On)
}

/// Holds a received change back, with its reason in the log.
fn hold<S: Store>(
    core: &Instance<S>,
    sync: &SyncConfig,
    kind: &str,
    table_id: TableId,
    item: &Item,
    part: String,
    reason: String,
) -> Result<(), DomainError> {
    let mut held = HeldChange {
        id: 0,
        sync_id: sync.id,
        kind: kind.to_string(),
        table_id,
        record_uid: item.uid,
        part,
        item: Json::Null,
        reason: reason.clone(),
        at_ms: core.now_ms(),
    };
    core.store().write(|tx| {
        // A whole record held again (a later change of it) joins what is held already:
        // a change carries only the fields that changed, so replacing would lose the rest.
        let mut item = item.clone();
        if held.part == WHOLE_RECORD {
            let earlier = tx.held(sync.id)?.into_iter().find(|h| {
                h.kind == held.kind
                    && h.table_id == held.table_id
                    && h.record_uid == held.record_uid
                    && h.part == held.part
            });
            if let Some(earlier) = earlier.and_then(|h| serde_json::from_value(h.item).ok()) {
                item = joined(earlier, item);
            }
        }
        held.item = serde_json::to_value(&item).map_err(|e| DomainError::Store(e.to_string()))?;
        tx.hold(&held)
    })?;
    core.log_sync(
        sync,
        "held",
        format!("record {}: held ({kind}): {reason}", item.uid),
        Some(json!({ "uid": item.uid.to_string(), "kind": kind })),
    )
}

/// The part of a held change that is a whole record (a record the merge refused).
const WHOLE_RECORD: &str = "record";

/// Two changes of one record as one: each field and the status from the newer write.
fn joined(earlier: Item, later: Item) -> Item {
    let mut fields = earlier.fields;
    for (no, field) in later.fields {
        match fields.get(&no) {
            Some(kept) if kept.stamp >= field.stamp => {}
            _ => {
                fields.insert(no, field);
            }
        }
    }
    let (status, status_stamp) = if later.status_stamp >= earlier.status_stamp {
        (later.status, later.status_stamp)
    } else {
        (earlier.status, earlier.status_stamp)
    };
    Item {
        fields,
        status,
        status_stamp,
        created_at_ms: earlier.created_at_ms.or(later.created_at_ms),
        ..later
    }
}

/// A change held whole until its table is mapped, in parts: each field apart (a later value
/// of it replaces the earlier), the status when it carries no field.
fn held_parts(item: &Item) -> Vec<(String, Item)> {
    if item.fields.is_empty() {
        return vec![("status".to_string(), item.clone())];
    }
    item.fields
        .iter()
        .map(|(no, field)| {
            let alone = Item {
                fields: BTreeMap::from([(*no, field.clone())]),
                ..item.clone()
            };
            (no.to_string(), alone)
        })
        .collect()
}

/// Holds the deletes of an exchange that would delete too much of a table (B-18); returns
/// the items to apply now.
fn guard_mass_delete<'a, S: Store>(
    core: &Instance<S>,
    sync: &SyncConfig,
    table_id: TableId,
    items: Vec<&'a Item>,
    report: &mut ApplyReport,
) -> Result<Vec<&'a Item>, DomainError> {
    let share = u64::from(sync.mass_delete_percent);
    let deletes = items.iter().filter(|i| i.status == "deleted").count() as u64;
    // Most packets delete nothing: they skip the reads (counting a large table is slow).
    if share >= 100 || deletes < MASS_DELETE_MIN {
        return Ok(items);
    }
    let table = core.table(table_id)?;
    let (deleting, active) = core.store().read(|tx| {
        let mut deleting = Vec::new();
        for item in &items {
            if item.status != "deleted" {
                continue;
            }
            if let Some(local) = tx.record_by_uid(&table, item.uid)?
                && local.record.status == RecordStatus::Active
            {
                deleting.push(item.uid);
            }
        }
        // Counted only when the deletes could be a mass delete.
        let active = if deleting.len() as u64 >= MASS_DELETE_MIN {
            tx.table_counts(&table)?.active
        } else {
            0
        };
        Ok((deleting, active))
    })?;
    let count = deleting.len() as u64;
    if !is_mass_delete(count, active, share) {
        return Ok(items);
    }
    let reason = format!(
        "this exchange would delete {count} of the {active} records of table \"{}\" (more than {share}%); approve to apply",
        table.name
    );
    let mut kept = Vec::new();
    for item in items {
        if deleting.contains(&item.uid) {
            hold(
                core,
                sync,
                HELD_MASS_DELETE,
                table_id,
                item,
                "status".into(),
                reason.clone(),
            )?;
            report.held += 1;
        } else {
            kept.push(item);
        }
    }
    Ok(kept)
}

/// Whether deleting `count` of a table's `active` records is more than the sync's share
/// (`share` percent) lets one exchange delete without a person's approval (B-18).
fn is_mass_delete(count: u64, active: u64, share: u64) -> bool {
    share < 100 && count >= MASS_DELETE_MIN && count * 100 > share * active
}

/// Tries the quarantined values again whose cause is gone (a choice added, a field mapped,
/// a linked record restored); whatever still fails stays held. Returns how many were
/// applied.
pub fn retry_quarantined<S: Store>(
    core: &Instance<S>,
    sync: &SyncConfig,
    mapping: &Mapping,
) -> Result<usize, DomainError> {
    let held = core.store().read(|tx| tx.held(sync.id))?;
    if held.is_empty() {
        return Ok(0);
    }
    let users = matchable_users(core)?;
    let mut applied = 0;
    for change in held.into_iter().filter(|h| h.kind == HELD_QUARANTINE) {
        let Ok(item) = serde_json::from_value::<Item>(change.item.clone()) else {
            continue;
        };
        // Looked at cheaply first: most held changes wait for a cause still there.
        if still_blocked(core, sync, mapping, &users, &item) {
            continue;
        }
        match release(core, sync, mapping, &change, Guard::On) {
            Ok(still) => applied += usize::from(!still),
            // Held again as it was; the others are still tried.
            Err(e) => core.log_sync(
                sync,
                "error",
                format!("held change {} could not be applied now: {e}", change.id),
                None,
            )?,
        }
    }
    Ok(applied)
}

/// Applies a held change now (a person approved it, or its cause was fixed) and drops it
/// from the held list; returns whether it was held again (still not applicable).
pub fn release<S: Store>(
    core: &Instance<S>,
    sync: &SyncConfig,
    mapping: &Mapping,
    change: &HeldChange,
    guard: Guard,
) -> Result<bool, DomainError> {
    let item: Item = serde_json::from_value(change.item.clone())
        .map_err(|e| DomainError::Store(format!("a held change is unreadable: {e}")))?;
    core.store()
        .write(|tx| tx.release_held(sync.id, change.id))?;
    let packet = Packet {
        items: vec![item],
        ..Packet::default()
    };
    match apply_items(core, sync, mapping, &packet, guard) {
        Ok(report) => Ok(report.held > 0),
        Err(e) => {
            // Not lost to a failed apply (a busy database): held again as it was.
            core.store().write(|tx| tx.hold(change))?;
            Err(e)
        }
    }
}

fn apply_items<S: Store>(
    core: &Instance<S>,
    sync: &SyncConfig,
    mapping: &Mapping,
    packet: &Packet,
    guard: Guard,
) -> Result<ApplyReport, DomainError> {
    let mut report = ApplyReport {
        items: packet.items.len(),
        ..Default::default()
    };
    let users = matchable_users(core)?;
    // Records paired by a key travel under the peer's uid: from here on, this side's.
    let translated: Vec<Item>;
    let items: &[Item] = if mapping.uids.is_empty() {
        &packet.items
    } else {
        translated = packet
            .items
            .iter()
            .map(|i| Item {
                uid: mapping.uids.to_local(i.uid),
                ..i.clone()
            })
            .collect();
        &translated
    };
    let mut by_table: BTreeMap<TableId, Vec<&Item>> = BTreeMap::new();
    for item in items {
        let Some(table_id) = mapping.local_table(item.table) else {
            // Held, not dropped: applied once this side maps a field of that table.
            for (part, alone) in held_parts(item) {
                report.problems += 1;
                report.held += 1;
                let reason = unmapped_table(item.table);
                hold(core, sync, HELD_QUARANTINE, 0, &alone, part, reason)?;
            }
            continue;
        };
        let receiving = mapping
            .routes
            .iter()
            .any(|r| r.local.table_id == table_id && r.direction.receives());
        if !receiving {
            continue;
        }
        by_table.entry(table_id).or_default().push(item);
    }
    let actor = sync_actor(sync);
    let rules = ConflictRules {
        sync_id: sync.id,
        prefer: mapping.prefer(sync, packet.rules.as_ref()),
        unacked_after: core
            .sync_state(sync.id)?
            .confirmed_by_peer(sync.transport.kind()),
    };
    for table_id in link_order(&core.tables()?, by_table.keys().copied().collect()) {
        let arrived = by_table[&table_id].clone();
        let arrived = match guard {
            Guard::On => guard_mass_delete(core, sync, table_id, arrived, &mut report)?,
            Guard::Off => arrived,
        };
        // Translated only now: links find the records of tables merged before this one.
        let mut items = Vec::new();
        // Which of each item's fields go into its merge (to hold them if it is refused).
        let mut merged = Vec::with_capacity(arrived.len());
        for item in arrived {
            let (translated, taken) =
                translate(core, sync, mapping, item, table_id, &users, &mut report)?;
            items.push(translated);
            merged.push((item, taken));
        }
        let uids: Vec<uuid::Uuid> = items.iter().map(|i| i.uid).collect();
        let outcomes = core.merge_with_rules(&actor, table_id, items, &rules)?;
        for ((outcome, uid), (item, taken)) in outcomes.iter().zip(uids).zip(&merged) {
            if let Some(reason) = &outcome.rejected {
                // Held whole, with the reason, and tried again: never only a log line.
                report.problems += 1;
                report.held += 1;
                let wire = Item {
                    fields: item
                        .fields
                        .iter()
                        .filter(|(no, _)| taken.contains(no))
                        .map(|(no, f)| (*no, f.clone()))
                        .collect(),
                    ..(*item).clone()
                };
                hold(
                    core,
                    sync,
                    HELD_QUARANTINE,
                    table_id,
                    &wire,
                    WHOLE_RECORD.into(),
                    reason.clone(),
                )?;
                continue;
            }
            if outcome.created {
                report.created += 1;
            } else if !outcome.taken.is_empty() || outcome.status_changed {
                report.changed += 1;
            }
            if sync.log
                && (!outcome.taken.is_empty() || outcome.status_changed)
                && let Some(record_id) = outcome.record_id
            {
                // The values themselves are in the record's history, with their provenance.
                report.received.received(
                    uid,
                    table_id,
                    record_id,
                    outcome.created,
                    outcome.status_changed,
                    outcome.taken.iter().copied(),
                );
            }
            for decided in &outcome.decided {
                report.conflicts += 1;
                let rule = match decided.prefer {
                    ConflictPolicy::ThisSide => "this side's value kept",
                    _ => "the other side's value taken",
                };
                core.log_sync(
                    sync,
                    "conflict",
                    format!(
                        "record {uid} field {}: changed on both sides; {rule} by the sync's conflict rule",
                        decided.field_no
                    ),
                    Some(json!({ "uid": uid, "field_no": decided.field_no, "kept": decided.kept, "discarded": decided.discarded, "rule": rule })),
                )?;
            }
            for kept in &outcome.kept {
                report.conflicts += 1;
                core.log_sync(
                    sync,
                    "conflict",
                    format!("record {uid} field {}: kept the newer local value", kept.field_no),
                    Some(json!({ "uid": uid, "field_no": kept.field_no, "kept": kept.local, "discarded": kept.incoming })),
                )?;
            }
        }
    }
    resolve_pending_links(core, sync, mapping, &actor, &mut report)?;
    Ok(report)
}

/// Applies link values that were waiting for records which have now arrived.
fn resolve_pending_links<S: Store>(
    core: &Instance<S>,
    sync: &SyncConfig,
    mapping: &Mapping,
    actor: &Actor,
    report: &mut ApplyReport,
) -> Result<(), DomainError> {
    let pending = core.store().read(|tx| tx.pending_links(sync.id))?;
    for link in pending {
        let (Ok(table), Ok(field)) = (core.table(link.table_id), core.field(link.field_no)) else {
            core.store().write(|tx| tx.remove_pending_link(&link))?;
            continue;
        };
        let Ok(target_table) = core.table(field.options.table_id.unwrap_or_default()) else {
            continue;
        };
        let resolved = core.store().read(|tx| {
            let target = tx.record_by_uid(&target_table, link.target_uid)?;
            let record = tx.record_by_uid(&table, link.record_uid)?;
            Ok(target.zip(record))
        })?;
        let Some((target, record)) = resolved else {
            continue;
        };
        if target.record.status == RecordStatus::Deleted {
            // The record it waited for arrived deleted: held with the reason, as a link
            // to a record deleted here is, and applied once it is restored.
            if let Some(route) = mapping.by_local(link.field_no) {
                let stamp = WireStamp {
                    hlc: link.stamp.hlc.0,
                    node: link.stamp.node,
                };
                let item = Item {
                    uid: link.record_uid,
                    table: route.wire_table,
                    status: match record.record.status {
                        RecordStatus::Deleted => "deleted".into(),
                        RecordStatus::Active => "active".into(),
                    },
                    status_stamp: WireStamp {
                        hlc: record.status_stamp.hlc.0,
                        node: record.status_stamp.node,
                    },
                    fields: BTreeMap::from([(
                        route.wire_no,
                        WireField {
                            value: Json::from(mapping.uids.to_peer(link.target_uid).to_string()),
                            stamp,
                        },
                    )]),
                    created_at_ms: None,
                };
                report.held += 1;
                hold(
                    core,
                    sync,
                    HELD_QUARANTINE,
                    link.table_id,
                    &item,
                    route.wire_no.to_string(),
                    format!(
                        "field {} \"{}\": {}",
                        field.no,
                        field.name,
                        links_to_deleted(target.record.id, &target_table.name)
                    ),
                )?;
            } else {
                core.log_sync(
                    sync,
                    "error",
                    format!(
                        "record {} field {}: the record it waited for arrived deleted, and this sync no longer carries the field; the link was not set",
                        link.record_uid, link.field_no
                    ),
                    None,
                )?;
            }
            core.store().write(|tx| tx.remove_pending_link(&link))?;
            continue;
        }
        let item = MergeItem {
            uid: link.record_uid,
            status: record.record.status,
            status_stamp: record.status_stamp,
            values: vec![(link.field_no, Value::Link(target.record.id), link.stamp)],
            created_at_ms: None,
        };
        core.merge(actor, link.table_id, vec![item])?;
        core.store().write(|tx| tx.remove_pending_link(&link))?;
    }
    Ok(())
}

/// Tables in an order where a table comes after the tables its link fields point to, so a
/// record and the record it links to can arrive in one packet.
fn link_order(tables: &[Table], mut pending: Vec<TableId>) -> Vec<TableId> {
    let targets = |id: TableId| -> Vec<TableId> {
        tables
            .iter()
            .find(|t| t.id == id)
            .map(|t| {
                t.fields
                    .iter()
                    .filter_map(|f| {
                        (f.field_type == FieldType::Link)
                            .then_some(f.options.table_id)
                            .flatten()
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    // The pending tables a table links to, itself aside.
    let waits_for = |t: TableId, pending: &[TableId]| -> Vec<TableId> {
        targets(t)
            .into_iter()
            .filter(|target| *target != t && pending.contains(target))
            .collect()
    };
    let on_a_cycle = |t: TableId, pending: &[TableId]| {
        let mut reached = waits_for(t, pending);
        let mut i = 0;
        while i < reached.len() {
            for next in waits_for(reached[i], pending) {
                if !reached.contains(&next) {
                    reached.push(next);
                }
            }
            i += 1;
        }
        reached.contains(&t)
    };
    let mut ordered = Vec::with_capacity(pending.len());
    while !pending.is_empty() {
        let ready = pending
            .iter()
            .position(|t| waits_for(*t, &pending).is_empty())
            // A cycle of links: a table on it first (not one merely linking into it); its
            // links wait for their records until the end of the apply.
            .or_else(|| pending.iter().position(|t| on_a_cycle(*t, &pending)))
            .unwrap_or(0);
        ordered.push(pending.remove(ready));
    }
    ordered
}

fn translate<S: Store>(
    core: &Instance<S>,
    sync: &SyncConfig,
    mapping: &Mapping,
    item: &Item,
    table_id: TableId,
    users: &[User],
    report: &mut ApplyReport,
) -> Result<(MergeItem, Vec<FieldNo>), DomainError> {
    let mut values = Vec::new();
    let mut taken = Vec::new();
    for (wire_no, field) in &item.fields {
        // Quarantined, not lost: this value alone, tried again until this side can take it
        // (B-17).
        let mut quarantine = |reason: String| {
            report.problems += 1;
            report.held += 1;
            let alone = Item {
                fields: BTreeMap::from([(*wire_no, field.clone())]),
                ..item.clone()
            };
            hold(
                core,
                sync,
                HELD_QUARANTINE,
                table_id,
                &alone,
                wire_no.to_string(),
                reason,
            )
        };
        let route = match destination(mapping, table_id, *wire_no) {
            Destination::Field(route) => route,
            Destination::Unmapped => {
                // Applied once this side maps the field.
                quarantine(unmapped_field(*wire_no))?;
                continue;
            }
            Destination::OtherTable | Destination::NotTaken => continue,
        };
        match from_wire(core, sync, mapping, &route.local, &field.value, users) {
            Ok(value) => {
                values.push((route.local.no, value, stamp(field.stamp)));
                taken.push(*wire_no);
            }
            Err(Unusable::WaitingFor(target_uid)) => {
                // Not merged now: merged with its own stamp once the target arrives.
                let link = PendingLink {
                    sync_id: sync.id,
                    table_id,
                    record_uid: item.uid,
                    field_no: route.local.no,
                    target_uid,
                    stamp: stamp(field.stamp),
                };
                core.store().write(|tx| tx.save_pending_link(&link))?;
                core.log_sync(
                    sync,
                    "received",
                    format!(
                        "record {} field {}: waiting for the linked record {target_uid}",
                        item.uid, route.local.no
                    ),
                    None,
                )?;
            }
            Err(Unusable::Invalid(message)) => {
                quarantine(format!(
                    "field {} \"{}\": {message}",
                    route.local.no, route.local.name
                ))?;
            }
        }
    }
    let status = if item.status == "deleted" {
        RecordStatus::Deleted
    } else {
        RecordStatus::Active
    };
    Ok((
        MergeItem {
            uid: item.uid,
            status,
            status_stamp: stamp(item.status_stamp),
            values,
            created_at_ms: item.created_at_ms,
        },
        taken,
    ))
}

fn links_to_deleted(record_id: crmsync_domain::RecordId, table_name: &str) -> String {
    format!(
        "it links to record {record_id} of table \"{table_name}\", which is deleted here; restore it and the link applies"
    )
}

fn unmapped_field(wire_no: FieldNo) -> String {
    format!(
        "the other side's field {wire_no} is not mapped to a field here; map it (or discard this) and it applies"
    )
}

fn unmapped_table(wire_table: TableId) -> String {
    format!(
        "no field of the other side's table {wire_table} is mapped to a field here; map its fields (or discard this) and it applies"
    )
}

/// Whether a held change still cannot be applied: the same checks as an apply, reading
/// only, so a quarantine can be looked at on every commit and released only once its
/// cause is gone. (Its reason stays the one it was held with.)
fn still_blocked<S: Store>(
    core: &Instance<S>,
    sync: &SyncConfig,
    mapping: &Mapping,
    users: &[User],
    item: &Item,
) -> bool {
    let Some(table_id) = mapping.local_table(item.table) else {
        return true;
    };
    item.fields.iter().any(|(wire_no, field)| {
        match destination(mapping, table_id, *wire_no) {
            Destination::Unmapped => true,
            Destination::OtherTable => false,
            // Released now it would be dropped: it waits (or is discarded by a person).
            Destination::NotTaken => true,
            Destination::Field(route) => matches!(
                from_wire(core, sync, mapping, &route.local, &field.value, users),
                Err(Unusable::Invalid(_))
            ),
        }
    })
}

/// Where a travelling field of a record of local table `table_id` goes here.
#[derive(Debug, PartialEq)]
enum Destination<'a> {
    /// No field here travels under its number.
    Unmapped,
    /// Its field here belongs to another table than the record's.
    OtherTable,
    /// This side does not take the peer's changes of it.
    NotTaken,
    Field(&'a Route),
}

fn destination(mapping: &Mapping, table_id: TableId, wire_no: FieldNo) -> Destination<'_> {
    match mapping.by_wire(wire_no) {
        None => Destination::Unmapped,
        Some(route) if route.local.table_id != table_id => Destination::OtherTable,
        Some(route) if !route.direction.receives() => Destination::NotTaken,
        Some(route) => Destination::Field(route),
    }
}

/// Why a travelling value cannot be used yet.
enum Unusable {
    /// A link to a record that has not arrived: kept and applied when it does.
    WaitingFor(uuid::Uuid),
    Invalid(String),
}

impl From<String> for Unusable {
    fn from(message: String) -> Self {
        Unusable::Invalid(message)
    }
}

/// Every account here, deactivated ones too: a value naming a deactivated account is held
/// with that reason rather than as matching nobody. Active ones first, so a full name that
/// an active and a deactivated account share matches the active one.
fn matchable_users<S: Store>(core: &Instance<S>) -> Result<Vec<User>, DomainError> {
    let mut users = core.store().read(|tx| tx.users())?;
    users.sort_by_key(|u| !u.active);
    Ok(users)
}

/// A travelling user as this side's, matched by the sync's rule (S-21) among `users`
/// (active ones first): a deactivated account's value is held with that reason.
fn match_user(rule: UserMatch, json: &Json, users: &[User]) -> Result<Value, Unusable> {
    let found = match rule {
        UserMatch::Login => json
            .as_str()
            .and_then(|l| users.iter().find(|u| u.login.eq_ignore_ascii_case(l))),
        UserMatch::FullName => json
            .as_str()
            .and_then(|n| users.iter().find(|u| u.full_name == n)),
        UserMatch::Id => json
            .as_i64()
            .and_then(|id| users.iter().find(|u| u.id == id)),
    };
    match found {
        Some(user) if user.active => Ok(Value::User(user.id)),
        Some(user) => Err(Unusable::Invalid(format!(
            "the user {json} matches, \"{}\", is deactivated here",
            user.login
        ))),
        None => Err(Unusable::Invalid(format!("no user matches {json}"))),
    }
}

/// A travelling value as a local one: users matched by the sync's rule, links by uid.
fn from_wire<S: Store>(
    core: &Instance<S>,
    sync: &SyncConfig,
    mapping: &Mapping,
    field: &Field,
    json: &Json,
    users: &[User],
) -> Result<Value, Unusable> {
    if json.is_null() {
        return Ok(Value::Null);
    }
    match field.field_type {
        FieldType::User => match_user(sync.user_match, json, users),
        FieldType::Link => {
            let uid = json
                .as_str()
                .and_then(|s| uuid::Uuid::parse_str(s).ok())
                .ok_or_else(|| format!("{json} is not a record identity"))?;
            let uid = mapping.uids.to_local(uid);
            let target = field.options.table_id.unwrap_or_default();
            let table = core.table(target).map_err(|e| e.to_string())?;
            match core
                .store()
                .read(|tx| tx.record_by_uid(&table, uid))
                .map_err(|e| e.to_string())?
            {
                None => Err(Unusable::WaitingFor(uid)),
                Some(r) if r.record.status == RecordStatus::Deleted => Err(Unusable::Invalid(
                    links_to_deleted(r.record.id, &table.name),
                )),
                Some(r) => Ok(Value::Link(r.record.id)),
            }
        }
        // The content arrived before the packet was applied (see `content`).
        FieldType::File => FileRef::from_peer(json)
            .map(Value::File)
            .map_err(Unusable::Invalid),
        _ => Value::from_json(field, json).map_err(|e| Unusable::Invalid(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{self, route};
    use crmsync_domain::FieldOptions;
    use crmsync_domain::sync::Direction;
    use proptest::prelude::*;
    use uuid::Uuid;

    fn stamped(hlc: u64) -> WireStamp {
        WireStamp {
            hlc,
            node: Uuid::nil(),
        }
    }

    fn field(value: &str, hlc: u64) -> WireField {
        WireField {
            value: value.into(),
            stamp: stamped(hlc),
        }
    }

    fn item(status: (&str, u64), fields: &[(i64, &str, u64)]) -> Item {
        Item {
            uid: Uuid::from_u128(1),
            table: 1,
            status: status.0.into(),
            status_stamp: stamped(status.1),
            fields: fields
                .iter()
                .map(|(no, v, hlc)| (*no, field(v, *hlc)))
                .collect(),
            created_at_ms: None,
        }
    }

    #[test]
    fn a_record_held_again_keeps_the_newer_write_of_each_part() {
        let earlier = Item {
            created_at_ms: Some(5),
            ..item(
                ("deleted", 9),
                &[(1, "old", 3), (2, "kept", 8), (3, "only earlier", 1)],
            )
        };
        let later = Item {
            created_at_ms: Some(7),
            ..item(
                ("active", 4),
                &[(1, "new", 6), (2, "stale", 2), (4, "only later", 1)],
            )
        };
        let joined = joined(earlier, later);
        assert_eq!(
            joined.fields,
            BTreeMap::from([
                (1, field("new", 6)),
                (2, field("kept", 8)),
                (3, field("only earlier", 1)),
                (4, field("only later", 1)),
            ])
        );
        assert_eq!(
            (joined.status.as_str(), joined.status_stamp),
            ("deleted", stamped(9))
        );
        assert_eq!(joined.created_at_ms, Some(5), "the first creation time");
    }

    #[test]
    fn a_mass_delete_is_more_than_the_share_and_at_least_the_minimum() {
        // 20% of 100 records: 20 may go in one exchange, 21 are held.
        assert!(!is_mass_delete(20, 100, 20));
        assert!(is_mass_delete(21, 100, 20));
        // Below the minimum nothing is held, whatever the share.
        assert!(!is_mass_delete(MASS_DELETE_MIN - 1, MASS_DELETE_MIN, 20));
        assert!(is_mass_delete(MASS_DELETE_MIN, MASS_DELETE_MIN, 20));
        // 100% switches the guard off; 0% holds any delete from the minimum on.
        assert!(!is_mass_delete(1_000, 1_000, 100));
        assert!(is_mass_delete(MASS_DELETE_MIN, 1_000_000, 0));
    }

    #[test]
    fn a_change_of_an_unmapped_table_is_held_field_by_field() {
        let change = item(("active", 1), &[(3, "a", 1), (4, "b", 2)]);
        let parts = held_parts(&change);
        let named: Vec<(&str, Vec<i64>)> = parts
            .iter()
            .map(|(part, i)| (part.as_str(), i.fields.keys().copied().collect()))
            .collect();
        assert_eq!(named, [("3", vec![3]), ("4", vec![4])]);
        assert!(
            parts
                .iter()
                .all(|(_, i)| i.uid == change.uid && i.status == "active")
        );
        let delete = item(("deleted", 2), &[]);
        assert_eq!(held_parts(&delete), [("status".to_string(), delete)]);
    }

    fn table(id: TableId, links_to: &[TableId]) -> Table {
        Table {
            id,
            name: format!("T{id}"),
            fields: links_to
                .iter()
                .enumerate()
                .map(|(i, target)| Field {
                    no: id * 10 + i as i64,
                    table_id: id,
                    name: format!("link {i}"),
                    field_type: FieldType::Link,
                    options: FieldOptions {
                        table_id: Some(*target),
                        ..FieldOptions::default()
                    },
                })
                .collect(),
        }
    }

    #[test]
    fn a_table_is_merged_after_the_tables_it_links_to() {
        // Deals link to companies and people; people link to companies and themselves.
        let tables = [table(1, &[2, 3]), table(2, &[3, 2]), table(3, &[])];
        assert_eq!(link_order(&tables, vec![1, 2, 3]), [3, 2, 1]);
        assert_eq!(link_order(&tables, vec![1, 3]), [3, 1]);
        // A cycle: every table still comes once.
        let cycle = [table(1, &[2]), table(2, &[1])];
        assert_eq!(link_order(&cycle, vec![2, 1]), [2, 1]);
        // Deals link into a cycle of companies and people: merged after the companies
        // they link to, not first.
        let into_cycle = [table(1, &[2]), table(2, &[3]), table(3, &[2])];
        assert_eq!(link_order(&into_cycle, vec![1, 2, 3]), [2, 1, 3]);
    }

    proptest! {
        #[test]
        fn every_table_is_merged_once_and_after_its_targets_unless_on_a_cycle(
            links in proptest::collection::vec(proptest::collection::vec(1i64..7, 0..3), 6),
            pending in proptest::sample::subsequence((1i64..7).collect::<Vec<_>>(), 0..=6),
        ) {
            let tables: Vec<Table> = links
                .iter()
                .enumerate()
                .map(|(i, targets)| table(i as i64 + 1, targets))
                .collect();
            let ordered = link_order(&tables, pending.clone());
            let mut sorted = ordered.clone();
            sorted.sort_unstable();
            prop_assert_eq!(&sorted, &pending, "each table once");
            // A table on no cycle of links among the pending tables (a table linking to
            // itself aside) is merged after every table it links to.
            let targets = |t: i64| -> Vec<i64> {
                links[t as usize - 1]
                    .iter()
                    .copied()
                    .filter(|target| *target != t && pending.contains(target))
                    .collect()
            };
            let reaches_itself = |from: i64| {
                let mut seen = targets(from);
                let mut i = 0;
                while i < seen.len() {
                    let next: Vec<i64> = targets(seen[i]).into_iter().filter(|n| !seen.contains(n)).collect();
                    seen.extend(next);
                    i += 1;
                }
                seen.contains(&from)
            };
            for (at, t) in ordered.iter().enumerate() {
                if reaches_itself(*t) {
                    continue;
                }
                for target in targets(*t) {
                    prop_assert!(ordered[..at].contains(&target), "{} before its target {}", t, target);
                }
            }
        }
    }

    #[test]
    fn a_travelling_field_lands_only_where_this_side_takes_it() {
        let mapping = Mapping {
            routes: vec![
                route(10, 5, 1, 1, Direction::Both),
                route(11, 5, 2, 1, Direction::Download),
                route(12, 5, 3, 1, Direction::Upload),
                route(13, 5, 4, 1, Direction::Off),
                route(20, 6, 5, 2, Direction::Both),
            ],
            ..Mapping::default()
        };
        let lands = |wire_no| match destination(&mapping, 5, wire_no) {
            Destination::Field(route) => Some(route.local.no),
            _ => None,
        };
        assert_eq!(lands(1), Some(10));
        assert_eq!(lands(2), Some(11));
        assert_eq!(destination(&mapping, 5, 3), Destination::NotTaken);
        assert_eq!(destination(&mapping, 5, 4), Destination::NotTaken);
        assert_eq!(destination(&mapping, 5, 5), Destination::OtherTable);
        assert_eq!(destination(&mapping, 5, 9), Destination::Unmapped);
    }

    fn user(id: i64, login: &str, full_name: &str, active: bool) -> User {
        User {
            id,
            login: login.into(),
            full_name: full_name.into(),
            role: Role::User,
            active,
        }
    }

    #[test]
    fn users_are_matched_by_the_syncs_rule_and_only_active_ones() {
        let users = [
            user(1, "olga", "Ольга Петрова", true),
            user(2, "ivan", "Иван Сидоров", false),
        ];
        let matched = |rule, json: Json| match match_user(rule, &json, &users) {
            Ok(Value::User(id)) => Ok(id),
            Ok(other) => panic!("not a user: {other:?}"),
            Err(Unusable::Invalid(message)) => Err(message),
            Err(Unusable::WaitingFor(_)) => panic!("users are never waited for"),
        };
        assert_eq!(
            matched(UserMatch::Login, "OLGA".into()),
            Ok(1),
            "logins case aside"
        );
        assert_eq!(matched(UserMatch::FullName, "Ольга Петрова".into()), Ok(1));
        assert_eq!(matched(UserMatch::Id, 1.into()), Ok(1));
        assert!(
            matched(UserMatch::FullName, "ольга петрова".into()).is_err(),
            "a full name exactly"
        );
        assert!(
            matched(UserMatch::Login, 1.into()).is_err(),
            "an id is no login"
        );
        assert!(matched(UserMatch::Id, "1".into()).is_err());
        let deactivated = matched(UserMatch::Login, "ivan".into()).unwrap_err();
        assert!(deactivated.contains("deactivated"), "{deactivated}");
        let unknown = matched(UserMatch::Login, "petr".into()).unwrap_err();
        assert!(unknown.contains("no user matches \"petr\""), "{unknown}");
    }

    #[test]
    fn a_sync_writes_as_no_user_under_its_origin() {
        let sync = testing::sync_config(crmsync_domain::sync::Mode::Active);
        let actor = sync_actor(&sync);
        assert_eq!(actor.user.id, 0);
        assert_eq!(actor.origin, Origin::Sync(1));
        assert_eq!(actor.user.login, "sync:1");
    }
}
