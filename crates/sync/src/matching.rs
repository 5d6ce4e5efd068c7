//! Initial sync that matches instead of duplicating (B-05). Two databases that grew apart
//! hold the same clients under different uids; pairing them by a key field (phone, email,
//! INN) before the initial sync makes the resent rows meet instead of doubling. The plan
//! is computed from both sides' rows as they travel, so its preview says exactly what the
//! initial sync will then do: create, pair, overwrite (the newer write of each field), or
//! leave alone as a conflict.

use crate::mapping::Mapping;
use crate::outbox::{each_record_page, to_wire, wire_stamp};
use crate::protocol::{Item, WireField};
use crmsync_domain::record::StatusFilter;
use crmsync_domain::sync::SyncConfig;
use crmsync_domain::{DomainError, FieldNo, Instance, RecordStatus, Store, TableId, User, Value};
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use std::collections::{BTreeMap, HashMap, HashSet};
use uuid::Uuid;

/// How many entries of each list a preview shows (the counts are complete).
pub const PREVIEW_LIST: usize = 100;

/// This side's active records of the table the peer calls `wire_table`, every mapped field
/// as it travels, under the uids the peer knows them by.
pub fn table_items<S: Store>(
    core: &Instance<S>,
    sync: &SyncConfig,
    mapping: &Mapping,
    wire_table: TableId,
) -> Result<Vec<Item>, DomainError> {
    let Some(table_id) = mapping.local_table(wire_table) else {
        return Ok(Vec::new());
    };
    let table = core.table(table_id)?;
    // Only what this side sends: a field that is download-only here never leaves it,
    // whatever the request.
    let routes: Vec<_> = mapping
        .routes
        .iter()
        .filter(|r| r.local.table_id == table_id && r.direction.sends())
        .collect();
    let mut items = Vec::new();
    let mut users: Option<Vec<User>> = None;
    each_record_page(core, table_id, StatusFilter::Active, |tx, page| {
        for record in page {
            let Some(stored) = tx.record_by_uid(&table, record.uid)? else {
                continue;
            };
            let mut fields = BTreeMap::new();
            for route in &routes {
                let Some(stamp) = stored.stamps.get(&route.local.no) else {
                    continue;
                };
                let value = record.values.get(&route.local.no).unwrap_or(&Value::Null);
                let json = to_wire(tx, sync, mapping, &route.local, value, &mut users)?;
                fields.insert(
                    route.wire_no,
                    WireField {
                        value: json,
                        stamp: wire_stamp(*stamp),
                    },
                );
            }
            items.push(Item {
                uid: mapping.uids.to_peer(record.uid),
                table: wire_table,
                status: RecordStatus::Active.as_str().to_string(),
                status_stamp: wire_stamp(stored.status_stamp),
                fields,
                created_at_ms: Some(record.created_at_ms),
            });
        }
        Ok(())
    })?;
    Ok(items)
}

/// A key as it is compared: trimmed, lower case, inner spaces as one; a phone-like value
/// (digits with + - ( ) . and spaces) by its digits alone. Empty: no key.
pub fn normalize_key(value: &Json) -> Option<String> {
    let text = match value {
        Json::Null => return None,
        Json::String(s) => s.clone(),
        other => other.to_string(),
    };
    let words: Vec<&str> = text.split_whitespace().collect();
    let text = words.join(" ").to_lowercase();
    let phone_like = text.chars().any(|c| c.is_ascii_digit())
        && text
            .chars()
            .all(|c| c.is_ascii_digit() || "+-(). ".contains(c));
    let key = if phone_like {
        text.chars().filter(char::is_ascii_digit).collect()
    } else {
        text
    };
    (!key.is_empty()).then_some(key)
}

/// At most `PREVIEW_LIST` entries, and how many there are in all.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Listed<T> {
    pub count: usize,
    pub first: Vec<T>,
}

impl<T> Default for Listed<T> {
    fn default() -> Self {
        Listed {
            count: 0,
            first: Vec::new(),
        }
    }
}

impl<T> Listed<T> {
    fn push(&mut self, entry: T) {
        self.count += 1;
        if self.first.len() < PREVIEW_LIST {
            self.first.push(entry);
        }
    }
}

/// A field of a paired record whose two values differ: `here` is this side's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldDiff {
    pub field_no: FieldNo,
    pub here: Json,
    pub there: Json,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Overwrite {
    pub key: String,
    pub fields: Vec<FieldDiff>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MatchConflict {
    pub key: String,
    pub reason: String,
}

/// What an initial sync matched by `key_field` will do, seen from this side.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct MatchPlan {
    /// The key field (this side's number, which is also the wire number on the active side).
    pub key_field: FieldNo,
    /// Records found on both sides by their key.
    pub paired: usize,
    /// Of those, already one record (paired before, or one came from the other).
    pub already_same: usize,
    /// Of the pairs, those whose values already agree.
    pub unchanged: usize,
    /// Records only this side has (by key or without one): created on the other side.
    pub create_there: Listed<String>,
    pub create_here: Listed<String>,
    /// Pairs whose values differ: the newer write of each field goes to the other side.
    pub overwrite_there: Listed<Overwrite>,
    pub overwrite_here: Listed<Overwrite>,
    /// Keys held by several records on a side (not paired), and fields that will stay
    /// different because the newer value cannot travel that way.
    pub conflicts: Listed<MatchConflict>,
    /// Keys held by several records: an initial sync would double those records.
    pub ambiguous_keys: usize,
}

/// Matches this side's `ours` with the peer's `theirs` by the key field; returns the plan
/// and the pairs to record on the peer, as (the peer's uid, this side's uid).
pub fn plan(
    ours: &[Item],
    theirs: &[Item],
    key_field: FieldNo,
    mapping: &Mapping,
) -> (MatchPlan, Vec<(Uuid, Uuid)>) {
    let key = |item: &Item| {
        item.fields
            .get(&key_field)
            .and_then(|f| normalize_key(&f.value))
    };
    let label = |item: &Item| key(item).unwrap_or_else(|| format!("(no key) {}", item.uid));
    let sends = mapping.routes.iter().any(|r| r.direction.sends());
    let receives = mapping.routes.iter().any(|r| r.direction.receives());
    let mut plan = MatchPlan {
        key_field,
        ..MatchPlan::default()
    };
    // Records that are one already (they travelled before, or were paired before) pair by
    // uid; the rest by key.
    let their_by_uid: HashMap<Uuid, &Item> = theirs.iter().map(|t| (t.uid, t)).collect();
    let our_uids: HashSet<Uuid> = ours.iter().map(|o| o.uid).collect();
    let mut our_keys: BTreeMap<String, Vec<&Item>> = BTreeMap::new();
    for item in ours {
        if let Some(same) = their_by_uid.get(&item.uid) {
            plan.paired += 1;
            plan.already_same += 1;
            compare(&mut plan, mapping, &label(item), item, same);
        } else if let Some(k) = key(item) {
            our_keys.entry(k).or_default().push(item);
        } else if sends {
            plan.create_there.push(label(item));
        }
    }
    let mut their_keys: BTreeMap<String, Vec<&Item>> = BTreeMap::new();
    for item in theirs.iter().filter(|t| !our_uids.contains(&t.uid)) {
        match key(item) {
            Some(k) => their_keys.entry(k).or_default().push(item),
            None if receives => plan.create_here.push(label(item)),
            None => {}
        }
    }
    let mut pairs = Vec::new();
    for (k, here) in &our_keys {
        let there = their_keys.remove(k).unwrap_or_default();
        match (here.as_slice(), there.as_slice()) {
            ([mine], [other]) => {
                plan.paired += 1;
                pairs.push((other.uid, mine.uid));
                compare(&mut plan, mapping, k, mine, other);
            }
            ([_], []) if sends => plan.create_there.push(k.clone()),
            ([_], []) => {}
            _ => {
                plan.ambiguous_keys += 1;
                plan.conflicts.push(MatchConflict {
                    key: k.clone(),
                    reason: format!(
                        "{} record(s) here and {} there have this key; not paired",
                        here.len(),
                        there.len()
                    ),
                });
            }
        }
    }
    for (k, there) in their_keys {
        if there.len() > 1 {
            plan.ambiguous_keys += 1;
            plan.conflicts.push(MatchConflict {
                key: k,
                reason: format!("{} records there have this key; not paired", there.len()),
            });
        } else if receives {
            plan.create_here.push(k);
        }
    }
    (plan, pairs)
}

/// Per field of a pair: equal, or which side's newer value will travel to the other, or
/// a conflict when the newer value cannot travel that way.
fn compare(plan: &mut MatchPlan, mapping: &Mapping, key: &str, ours: &Item, theirs: &Item) {
    let mut to_there = Vec::new();
    let mut to_here = Vec::new();
    for route in &mapping.routes {
        let no = route.wire_no;
        let (mine, other) = (ours.fields.get(&no), theirs.fields.get(&no));
        let value = |f: Option<&WireField>| f.map_or(Json::Null, |f| f.value.clone());
        if value(mine) == value(other) {
            continue;
        }
        let diff = FieldDiff {
            field_no: no,
            here: value(mine),
            there: value(other),
        };
        let ours_newer = match (mine, other) {
            (Some(m), Some(o)) => m.stamp > o.stamp,
            (Some(_), None) => true,
            _ => false,
        };
        match (ours_newer, route.direction.sends(), route.direction.receives()) {
            (true, true, _) => to_there.push(diff),
            (false, _, true) => to_here.push(diff),
            _ => plan.conflicts.push(MatchConflict {
                key: key.to_string(),
                reason: format!(
                    "field {no}: the newer value ({}) cannot travel to the side that holds {} (the field goes one way); it stays different",
                    if ours_newer { &diff.here } else { &diff.there },
                    if ours_newer { &diff.there } else { &diff.here },
                ),
            }),
        }
    }
    if to_there.is_empty() && to_here.is_empty() {
        plan.unchanged += 1;
    }
    if !to_there.is_empty() {
        plan.overwrite_there.push(Overwrite {
            key: key.to_string(),
            fields: to_there,
        });
    }
    if !to_here.is_empty() {
        plan.overwrite_here.push(Overwrite {
            key: key.to_string(),
            fields: to_here,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keys_compare_as_a_person_would() {
        assert_eq!(
            normalize_key(&json!("+7 (900) 111-22-33")),
            Some("79001112233".into())
        );
        assert_eq!(
            normalize_key(&json!("7 900 111 22 33")),
            Some("79001112233".into())
        );
        assert_eq!(
            normalize_key(&json!("  Info@Romashka.RU ")),
            Some("info@romashka.ru".into())
        );
        assert_eq!(
            normalize_key(&json!("ООО  Ромашка")),
            Some("ооо ромашка".into())
        );
        assert_eq!(
            normalize_key(&json!(7707083893_i64)),
            Some("7707083893".into())
        );
        assert_eq!(normalize_key(&json!("   ")), None);
        assert_eq!(normalize_key(&json!(null)), None);
        assert_eq!(
            normalize_key(&json!("-")),
            Some("-".into()),
            "no digits: not a phone"
        );
    }
}
