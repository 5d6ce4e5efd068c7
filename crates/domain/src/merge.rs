//! Applying a peer's changes: the write path's merge. For each field the newer stamp wins
//! — compared as (HLC time, node id), so every instance picks the same winner — and only
//! winners are written, through the same transaction, stamps and change log as any write,
//! with the peer's stamps kept. An item that changes nothing writes nothing, so a change
//! can never bounce back and forth.
//!
//! A sync's conflict rule (B-02) can overrule the newer write for a field both sides
//! changed between exchanges — this side changed it and the peer has not yet
//! acknowledged that change. The rule's decision is written with a fresh stamp, newer
//! than both, under origin `rule:<sync>`: it travels everywhere, the peer included, and
//! wins there by the ordinary rule, so every instance ends with the same value.

use crate::clock::Stamp;
use crate::instance::{Actor, Instance, check_references, field_of};
use crate::origin::Origin;
use crate::record::{Change, ChangeOp, FieldChange, NewRow, RecordStatus, RowUpdate};
use crate::store::Store;
use crate::sync::ConflictPolicy;
use crate::value::Value;
use crate::{DomainError, FieldNo, RecordId, TableId};
use serde_json::Value as Json;
use uuid::Uuid;

/// One record as a peer sends it.
#[derive(Debug, Clone)]
pub struct MergeItem {
    pub uid: Uuid,
    pub status: RecordStatus,
    pub status_stamp: Stamp,
    pub values: Vec<(FieldNo, Value, Stamp)>,
    /// The original's created time: a record created here by this item keeps it (a record
    /// that exists already keeps its own). None: now.
    pub created_at_ms: Option<i64>,
}

/// A conflict rule (`ConflictPolicy`) as the merge reads it: seen from this instance,
/// `ThisSide` is the value here and `OtherSide` the peer's.
impl ConflictPolicy {
    /// The value a rule keeps and the one it discards, of this side's and the peer's (a
    /// rule decides only between the two).
    pub fn pick<'a, V>(self, here: &'a V, there: &'a V) -> (&'a V, &'a V) {
        match self {
            ConflictPolicy::ThisSide => (here, there),
            _ => (there, here),
        }
    }

    /// How the change log names the rule that decided a value (`FieldChange::rule`):
    /// `here`/`there`, as entries already stored name it and history reads it.
    fn logged_rule(self) -> &'static str {
        match self {
            ConflictPolicy::Newer => "newer",
            ConflictPolicy::ThisSide => "here",
            ConflictPolicy::OtherSide => "there",
        }
    }
}

/// The conflict rules of one sync for one merge.
#[derive(Debug, Clone, Default)]
pub struct ConflictRules {
    pub sync_id: crate::sync::SyncId,
    /// By local field number; absent = newer wins.
    pub prefer: std::collections::HashMap<FieldNo, ConflictPolicy>,
    /// This side's change-log entries after this seq are not yet acknowledged by the peer:
    /// a field they touch, changed by the peer too, is a conflict.
    pub unacked_after: i64,
}

/// A conflict a rule decided (both values, for the log).
#[derive(Debug, Clone, PartialEq)]
pub struct Decided {
    pub field_no: FieldNo,
    pub prefer: ConflictPolicy,
    pub kept: Json,
    pub discarded: Json,
}

/// A field where the local value was newer and stayed: the peer's value lost.
#[derive(Debug, Clone, PartialEq)]
pub struct KeptLocal {
    pub field_no: FieldNo,
    pub local: Json,
    pub incoming: Json,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct MergeOutcome {
    pub record_id: Option<RecordId>,
    pub created: bool,
    /// Fields written with the peer's value (their values are in the record's history).
    pub taken: Vec<FieldNo>,
    pub kept: Vec<KeptLocal>,
    pub status_changed: bool,
    /// Conflicts a sync's rule decided.
    pub decided: Vec<Decided>,
    /// Why the item could not be applied (it wrote nothing).
    pub rejected: Option<String>,
}

/// What the merge does with one field of an existing record that a peer sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldDecision {
    /// Write the peer's value with the peer's stamp. `rule`: a conflict rule decided for
    /// it (the peer's value, which is also the newer write).
    Take { rule: Option<ConflictPolicy> },
    /// The local write is newer (or the same): it stays.
    Keep,
    /// A conflict rule decided for this side's value, which is already the newer write: it
    /// stays and travels as it is.
    KeepByRule,
    /// A conflict rule decided for the older write (this side's value for `ThisSide`, the
    /// peer's for `OtherSide`): it is written with a fresh stamp, newer than both, or the
    /// ordinary rule would undo it elsewhere.
    Restamp { prefer: ConflictPolicy },
}

impl FieldDecision {
    /// The rule that decided a conflict, if one did.
    pub fn ruled(self) -> Option<ConflictPolicy> {
        match self {
            FieldDecision::Take { rule } => rule,
            FieldDecision::Keep => None,
            FieldDecision::KeepByRule => Some(ConflictPolicy::ThisSide),
            FieldDecision::Restamp { prefer } => Some(prefer),
        }
    }
}

/// Decides one field: the newer stamp wins, compared as (HLC time, node id), so every
/// instance picks the same winner. A conflict rule (`prefer` other than `Newer`) overrules
/// that only for a conflict: the values differ and this side's change of the field is not
/// yet acknowledged by the peer (`unacked`). No local stamp: the field was never written
/// here, and any write is newer.
///
/// The same value with a newer stamp is taken too: the stamp must travel on, or a later
/// write stamped between the two would be kept here and dropped elsewhere.
pub fn decide_field<V: PartialEq>(
    local: &V,
    local_stamp: Option<Stamp>,
    incoming: &V,
    incoming_stamp: Stamp,
    prefer: ConflictPolicy,
    unacked: bool,
) -> FieldDecision {
    let newer = local_stamp.is_none_or(|l| incoming_stamp > l);
    let conflict = prefer != ConflictPolicy::Newer && local != incoming && unacked;
    if conflict {
        let winner_is_older = match prefer {
            ConflictPolicy::ThisSide => newer,
            _ => !newer,
        };
        if winner_is_older {
            return FieldDecision::Restamp { prefer };
        }
        if prefer == ConflictPolicy::ThisSide {
            return FieldDecision::KeepByRule;
        }
        return FieldDecision::Take { rule: Some(prefer) };
    }
    if newer {
        FieldDecision::Take { rule: None }
    } else {
        FieldDecision::Keep
    }
}

/// Whether a peer's status replaces this side's: a newer stamp wins, even for the same
/// status, for the same reason as a field's value.
pub fn take_status(local_stamp: Stamp, incoming_stamp: Stamp) -> bool {
    incoming_stamp > local_stamp
}

/// What merging a peer's item into a record that exists here comes to, decided field by
/// field before anything is written: the pure part of the merge (the applier checks links
/// and writes it).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RecordPlan {
    /// The peer's values taken with the peer's stamps, and their change-log entries.
    pub winners: Vec<(FieldNo, Value, Stamp)>,
    pub logged: Vec<FieldChange>,
    /// Values a conflict rule decided, written after with a fresh stamp.
    pub ruled: Vec<(FieldNo, Value, FieldChange)>,
    /// The peer's status and its stamp, when it is the newer write.
    pub status: Option<(RecordStatus, Stamp)>,
    /// Fields whose value the peer's changed here (for the report and the log).
    pub taken: Vec<FieldNo>,
    /// Fields where this side's newer, different value stayed.
    pub kept: Vec<KeptLocal>,
    /// Conflicts a rule decided.
    pub decided: Vec<Decided>,
}

/// Decides how `item` merges into `current` (see [`decide_field`] for each field and
/// [`take_status`] for the status). `unacked` lists the fields this side changed that the
/// peer has not acknowledged; it reads the change log, so it is asked at most once and
/// only when a rule could apply.
pub fn plan_existing(
    table: &crate::schema::Table,
    current: &crate::record::StoredRecord,
    item: MergeItem,
    prefer: &std::collections::HashMap<FieldNo, ConflictPolicy>,
    unacked: impl FnOnce() -> Result<Vec<FieldNo>, DomainError>,
) -> Result<RecordPlan, DomainError> {
    let mut plan = RecordPlan::default();
    let mut unacked = Some(unacked);
    let mut unacked_fields: Option<Vec<FieldNo>> = None;
    for (no, value, stamp) in item.values {
        let field = field_of(table, no);
        let local = current.record.values.get(&no).unwrap_or(&Value::Null);
        let local_stamp = current.stamps.get(&no).copied();
        let prefer = prefer.get(&no).copied().unwrap_or_default();
        let is_unacked = if prefer != ConflictPolicy::Newer && *local != value {
            let fields = match (&mut unacked_fields, unacked.take()) {
                (Some(fields), _) => fields,
                (None, Some(read)) => unacked_fields.insert(read()?),
                (None, None) => unreachable!("the unacknowledged fields are read once"),
            };
            fields.contains(&no)
        } else {
            false
        };
        let decision = decide_field(local, local_stamp, &value, stamp, prefer, is_unacked);
        if let Some(prefer) = decision.ruled() {
            let (kept, discarded) = prefer.pick(local, &value);
            plan.decided.push(Decided {
                field_no: no,
                prefer,
                kept: kept.to_json(field),
                discarded: discarded.to_json(field),
            });
        }
        match decision {
            FieldDecision::Restamp { prefer } => {
                let (winner, _) = prefer.pick(local, &value);
                let change = FieldChange {
                    field_no: no,
                    old: Some(local.to_json(field)),
                    new: winner.to_json(field),
                    written: None,
                    replaced: local_stamp,
                    rule: Some(prefer.logged_rule().to_string()),
                };
                if prefer == ConflictPolicy::OtherSide {
                    plan.taken.push(no);
                }
                plan.ruled.push((no, winner.clone(), change));
            }
            FieldDecision::KeepByRule => {}
            FieldDecision::Take { rule } => {
                let change = FieldChange {
                    field_no: no,
                    old: Some(local.to_json(field)),
                    new: value.to_json(field),
                    // Why this value: its write is newer than the one here.
                    written: Some(stamp),
                    replaced: local_stamp,
                    rule: rule.map(|p| p.logged_rule().to_string()),
                };
                // The same value with a newer stamp is taken too (see `decide_field`), but
                // is no change to report.
                if *local != value {
                    plan.taken.push(no);
                }
                plan.logged.push(change);
                plan.winners.push((no, value, stamp));
            }
            FieldDecision::Keep => {
                if *local != value {
                    plan.kept.push(KeptLocal {
                        field_no: no,
                        local: local.to_json(field),
                        incoming: value.to_json(field),
                    });
                }
            }
        }
    }
    plan.status = take_status(current.status_stamp, item.status_stamp)
        .then_some((item.status, item.status_stamp));
    Ok(plan)
}

impl<S: Store> Instance<S> {
    /// Merges a peer's records into one table, in one transaction; the newer write wins.
    pub fn merge(
        &self,
        actor: &Actor,
        table_id: TableId,
        items: Vec<MergeItem>,
    ) -> Result<Vec<MergeOutcome>, DomainError> {
        self.merge_with_rules(actor, table_id, items, &ConflictRules::default())
    }

    /// Merges with a sync's conflict rules (B-02).
    pub fn merge_with_rules(
        &self,
        actor: &Actor,
        table_id: TableId,
        items: Vec<MergeItem>,
        rules: &ConflictRules,
    ) -> Result<Vec<MergeOutcome>, DomainError> {
        let origin = actor.origin.clone();
        self.in_write(actor, table_id, |ctx, tx, table| {
            let mut outcomes = Vec::with_capacity(items.len());
            // Which records are new here, asked once for all the items: an initial sync's
            // are, and a lookup each cost about as much as inserting them. (A uid is taken
            // off as its record is created, so the same uid twice is looked up.)
            let mut new_here: std::collections::HashSet<uuid::Uuid> = {
                let uids: Vec<uuid::Uuid> = items.iter().map(|i| i.uid).collect();
                let present = tx.uids_present(table, &uids)?;
                uids.into_iter().filter(|u| !present.contains(u)).collect()
            };
            for item in items {
                // Times seen from the peer move our clock past them.
                for stamp in
                    std::iter::once(&item.status_stamp).chain(item.values.iter().map(|(_, _, s)| s))
                {
                    ctx.last = ctx.last.max(stamp.hlc);
                }
                let mut outcome = MergeOutcome::default();
                let existing = match new_here.remove(&item.uid) {
                    true => None,
                    false => tx.record_by_uid(table, item.uid)?,
                };
                match existing {
                    None => {
                        // Empty values are kept with their stamps: a peer's older value for that
                        // field must lose here as it does there.
                        let values: Vec<(FieldNo, Value, Stamp)> = item.values;
                        let plain: Vec<(FieldNo, Value)> =
                            values.iter().map(|(n, v, _)| (*n, v.clone())).collect();
                        if let Err(e) = check_references(tx, ctx, table, &plain) {
                            outcome.rejected = Some(e.to_string());
                            outcomes.push(outcome);
                            continue;
                        }
                        let hlc = values
                            .iter()
                            .map(|(_, _, s)| s.hlc)
                            .chain([item.status_stamp.hlc])
                            .max()
                            .unwrap_or_default();
                        let change = Change {
                            seq: 0,
                            table_id: table.id,
                            record_id: 0,
                            record_uid: item.uid,
                            op: ChangeOp::Create,
                            hlc,
                            origin: ctx.actor.origin.clone(),
                            user_id: None,
                            at_ms: ctx.now_ms,
                            created_fields: values.iter().map(|(n, _, _)| *n).collect(),
                            fields: Vec::new(),
                        };
                        outcome.taken = values.iter().map(|(no, _, _)| *no).collect();
                        let row = NewRow {
                            uid: item.uid,
                            created_at_ms: item.created_at_ms.unwrap_or(ctx.now_ms),
                            status: item.status,
                            status_stamp: item.status_stamp,
                            values,
                        };
                        outcome.record_id = Some(tx.insert_record(table, &row, &change)?);
                        outcome.created = true;
                    }
                    Some(current) => {
                        let record_id = current.record.id;
                        let plan = plan_existing(table, &current, item, &rules.prefer, || {
                            unacked_fields(tx, table, record_id, rules.unacked_after, &origin)
                        })?;
                        let RecordPlan {
                            winners,
                            logged,
                            ruled,
                            status,
                            taken,
                            kept,
                            decided,
                        } = plan;
                        outcome.taken = taken;
                        outcome.kept = kept;
                        outcome.decided = decided;
                        outcome.record_id = Some(current.record.id);
                        if winners.is_empty() && status.is_none() && ruled.is_empty() {
                            outcomes.push(outcome);
                            continue;
                        }
                        let plain: Vec<(FieldNo, Value)> = winners
                            .iter()
                            .map(|(n, v, _)| (*n, v.clone()))
                            .chain(ruled.iter().map(|(n, v, _)| (*n, v.clone())))
                            .collect();
                        if let Err(e) = check_references(tx, ctx, table, &plain) {
                            outcome.taken.clear();
                            outcome.rejected = Some(e.to_string());
                            outcomes.push(outcome);
                            continue;
                        }
                        outcome.status_changed =
                            status.is_some_and(|(st, _)| st != current.record.status);
                        let op = match status {
                            Some((RecordStatus::Deleted, _)) => ChangeOp::Delete,
                            Some((RecordStatus::Active, _)) => ChangeOp::Restore,
                            None => ChangeOp::Update,
                        };
                        let hlc = winners
                            .iter()
                            .map(|(_, _, s)| s.hlc)
                            .chain(status.map(|(_, s)| s.hlc))
                            .max()
                            .unwrap_or_default();
                        let change = Change {
                            seq: 0,
                            table_id: table.id,
                            record_id: current.record.id,
                            record_uid: current.record.uid,
                            op,
                            hlc,
                            origin: ctx.actor.origin.clone(),
                            user_id: None,
                            at_ms: ctx.now_ms,
                            created_fields: Vec::new(),
                            fields: logged,
                        };
                        if !winners.is_empty() || status.is_some() {
                            let update = RowUpdate {
                                id: current.record.id,
                                updated_at_ms: ctx.now_ms,
                                status,
                                values: winners,
                            };
                            tx.update_record(table, &update, &change)?;
                        }
                        if !ruled.is_empty() {
                            self.write_ruled(ctx, tx, table, &current.record, rules, ruled)?;
                        }
                    }
                }
                outcomes.push(outcome);
            }
            Ok(outcomes)
        })
    }
}

impl<S: Store> Instance<S> {
    /// Writes the values a conflict rule decided, with one fresh stamp, as their own
    /// change-log entry under origin `rule:<sync>` (sent to every peer, this sync's too).
    fn write_ruled(
        &self,
        ctx: &mut crate::instance::WriteCtx<'_>,
        tx: &mut dyn crate::store::StoreTx,
        table: &crate::schema::Table,
        record: &crate::record::Record,
        rules: &ConflictRules,
        ruled: Vec<(FieldNo, Value, FieldChange)>,
    ) -> Result<(), DomainError> {
        let stamp = self.stamp(ctx);
        let fields: Vec<FieldChange> = ruled
            .iter()
            .map(|(_, _, change)| FieldChange {
                written: Some(stamp),
                ..change.clone()
            })
            .collect();
        let change = Change {
            seq: 0,
            table_id: table.id,
            record_id: record.id,
            record_uid: record.uid,
            op: ChangeOp::Update,
            hlc: stamp.hlc,
            origin: Origin::Rule(rules.sync_id),
            user_id: None,
            at_ms: ctx.now_ms,
            created_fields: Vec::new(),
            fields,
        };
        let update = RowUpdate {
            id: record.id,
            updated_at_ms: ctx.now_ms,
            status: None,
            values: ruled.into_iter().map(|(no, v, _)| (no, v, stamp)).collect(),
        };
        tx.update_record(table, &update, &change)
    }

    /// Writes these records' current values of `fields` again with fresh stamps — newer
    /// than anything they hold — so they travel and win on every peer: the repair for
    /// values that drifted apart without a write (B-16). Logged as ordinary updates (old
    /// and new alike), with the actor's origin. Returns how many records were restamped.
    pub fn restamp(
        &self,
        actor: &Actor,
        table_id: TableId,
        uids: &[Uuid],
        fields: &[FieldNo],
    ) -> Result<usize, DomainError> {
        let table = self.table(table_id)?;
        let node = self.instance_id()?;
        let now = crate::clock::Hlc::from_ms(self.now_ms());
        let fields: Vec<FieldNo> = fields
            .iter()
            .copied()
            .filter(|no| table.field(*no).is_some())
            .collect();
        let mut items = Vec::new();
        self.store().read(|tx| {
            for uid in uids {
                let Some(stored) = tx.record_by_uid(&table, *uid)? else {
                    continue;
                };
                let newest = stored
                    .stamps
                    .values()
                    .map(|s| s.hlc)
                    .chain([stored.status_stamp.hlc, now])
                    .max()
                    .unwrap_or_default();
                let stamp = Stamp {
                    hlc: crate::clock::Hlc(newest.0 + 1),
                    node,
                };
                items.push(MergeItem {
                    uid: *uid,
                    status: stored.record.status,
                    // The status keeps its stamp: only values are repaired.
                    status_stamp: stored.status_stamp,
                    values: fields
                        .iter()
                        .map(|no| {
                            let value =
                                stored.record.values.get(no).cloned().unwrap_or(Value::Null);
                            (*no, value, stamp)
                        })
                        .collect(),
                    created_at_ms: None,
                });
            }
            Ok(())
        })?;
        let count = items.len();
        self.merge(actor, table_id, items)?;
        Ok(count)
    }
}

/// Fields of a record that this side changed after `after` (not yet acknowledged by the
/// peer), except by changes that came from that peer.
fn unacked_fields(
    tx: &mut dyn crate::store::StoreTx,
    table: &crate::schema::Table,
    record_id: RecordId,
    after: i64,
    peer_origin: &Origin,
) -> Result<Vec<FieldNo>, DomainError> {
    let mut fields = Vec::new();
    for change in tx.history(table, record_id)? {
        if change.seq <= after || change.origin == *peer_origin {
            continue;
        }
        match change.op {
            ChangeOp::Create => fields.extend(&change.created_fields),
            ChangeOp::Update => fields.extend(change.fields.iter().map(|f| f.field_no)),
            _ => {}
        }
    }
    Ok(fields)
}
