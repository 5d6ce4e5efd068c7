//! Which local field travels under which wire number, in which direction.

use crate::protocol::{Catalog, CatalogField, Winner, WireRules};
use crmsync_domain::sync::{ConflictPolicy, Direction, Mode, SyncConfig, SyncField, SyncTable};
use crmsync_domain::{Field, FieldNo, FieldType, Table, TableId};
use std::collections::HashMap;

#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    pub local: Field,
    /// The active side's field number.
    pub wire_no: FieldNo,
    /// The active side's table id.
    pub wire_table: TableId,
    pub direction: Direction,
    /// The field's own conflict rule (active side).
    pub conflict_policy: Option<ConflictPolicy>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Mapping {
    pub routes: Vec<Route>,
    /// What prevents some fields from travelling, in words a person can act on.
    pub problems: Vec<String>,
    /// Records paired by a key field, travelling under the peer's uid.
    pub uids: UidPairs,
}

/// Records of this side that travel under the peer's uid (paired by a key field at an
/// initial sync, B-05); every other record travels under its own.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UidPairs {
    to_peer: HashMap<uuid::Uuid, uuid::Uuid>,
    to_local: HashMap<uuid::Uuid, uuid::Uuid>,
}

impl UidPairs {
    /// From (this side's uid, the peer's uid) pairs.
    pub fn new(pairs: &[(uuid::Uuid, uuid::Uuid)]) -> UidPairs {
        UidPairs {
            to_peer: pairs.iter().copied().collect(),
            to_local: pairs.iter().map(|(l, p)| (*p, *l)).collect(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.to_peer.is_empty()
    }

    /// The uid a record of this side travels under.
    pub fn to_peer(&self, local: uuid::Uuid) -> uuid::Uuid {
        self.to_peer.get(&local).copied().unwrap_or(local)
    }

    /// This side's record for a travelling uid.
    pub fn to_local(&self, wire: uuid::Uuid) -> uuid::Uuid {
        self.to_local.get(&wire).copied().unwrap_or(wire)
    }
}

/// This instance's fields as its peer sees them.
pub fn catalog(tables: &[Table]) -> Catalog {
    tables
        .iter()
        .flat_map(|t| {
            t.fields.iter().map(move |f| CatalogField {
                no: f.no,
                name: f.name.clone(),
                field_type: f.field_type.as_str().to_string(),
                table_id: t.id,
                table_name: t.name.clone(),
            })
        })
        .collect()
}

/// Whole tables on the passive side (S-02): a field of such a table without a number of its
/// own pairs with the field of the same name (case aside) in the active side's table.
/// Returns the fields ready for [`Mapping::build`] and, in words a person can act on, why a
/// field could not be paired (it is left out rather than reported twice).
pub fn pair_by_name(
    fields: Vec<SyncField>,
    whole: &[SyncTable],
    tables: &[Table],
    peer_catalog: Option<&Catalog>,
) -> (Vec<SyncField>, Vec<String>) {
    let mut problems = Vec::new();
    let taken: Vec<FieldNo> = fields.iter().filter_map(|f| f.remote_field_no).collect();
    let mut paired = Vec::with_capacity(fields.len());
    for mut configured in fields {
        let found = tables
            .iter()
            .find_map(|t| t.field(configured.field_no).map(|f| (t, f)));
        let entry = found.and_then(|(t, _)| whole.iter().find(|w| w.table_id == t.id));
        let (Some((table, local)), Some(entry), None) = (found, entry, configured.remote_field_no)
        else {
            paired.push(configured);
            continue;
        };
        let Some(remote_table) = entry.remote_table_id else {
            paired.push(configured);
            continue;
        };
        let Some(catalog) = peer_catalog else {
            let waiting = format!(
                "table {} \"{}\": waiting for the active side to describe its fields",
                table.id, table.name
            );
            if !problems.contains(&waiting) {
                problems.push(waiting);
            }
            continue;
        };
        let name = local.name.trim().to_lowercase();
        match catalog
            .iter()
            .find(|c| c.table_id == remote_table && c.name.trim().to_lowercase() == name)
        {
            None => problems.push(format!(
                "field {} \"{}\": the active side's table {remote_table} has no field named \"{}\"; add it there or enter its number",
                local.no, local.name, local.name
            )),
            Some(peer) if taken.contains(&peer.no) => problems.push(format!(
                "field {} \"{}\": the active side's field {} \"{}\" is already mapped to another field here",
                local.no, local.name, peer.no, peer.name
            )),
            Some(peer) => {
                configured.remote_field_no = Some(peer.no);
                paired.push(configured);
            }
        }
    }
    (paired, problems)
}

/// Types whose values travel as the same JSON shape.
fn compatible(a: FieldType, b: &str) -> bool {
    let family = |t: &str| match t {
        "text" | "longtext" | "select" => "text",
        other => match other {
            "number" => "number",
            "money" => "money",
            "date" => "date",
            "datetime" => "datetime",
            "user" => "user",
            "link" => "link",
            _ => "file",
        },
    };
    family(a.as_str()) == family(b)
}

impl Mapping {
    /// `peer_catalog` is the active side's catalogue, needed on the passive side.
    pub fn build(
        sync: &SyncConfig,
        fields: &[SyncField],
        tables: &[Table],
        peer_catalog: Option<&Catalog>,
    ) -> Mapping {
        let mut mapping = Mapping::default();
        for configured in fields {
            let Some((table, local)) = tables
                .iter()
                .find_map(|t| t.field(configured.field_no).map(|f| (t, f)))
            else {
                mapping
                    .problems
                    .push(format!("field {} no longer exists", configured.field_no));
                continue;
            };
            let (wire_no, wire_table) = match sync.mode {
                Mode::Active => (local.no, table.id),
                Mode::Passive => {
                    let Some(remote) = configured.remote_field_no else {
                        mapping.problems.push(format!(
                            "field {} \"{}\": enter the number of the matching field on the active side",
                            local.no, local.name
                        ));
                        continue;
                    };
                    let Some(catalog) = peer_catalog else {
                        mapping
                            .problems
                            .push("waiting for the active side to describe its fields".into());
                        continue;
                    };
                    let Some(peer) = catalog.iter().find(|c| c.no == remote) else {
                        mapping.problems.push(format!(
                            "field {} \"{}\": the active side has no field {remote}",
                            local.no, local.name
                        ));
                        continue;
                    };
                    if !compatible(local.field_type, &peer.field_type) {
                        mapping.problems.push(format!(
                            "field {} \"{}\" ({}) cannot take the active side's field {remote} \"{}\" ({})",
                            local.no,
                            local.name,
                            local.field_type.as_str(),
                            peer.name,
                            peer.field_type
                        ));
                        continue;
                    }
                    (remote, peer.table_id)
                }
            };
            mapping.routes.push(Route {
                local: local.clone(),
                wire_no,
                wire_table,
                direction: configured.direction,
                conflict_policy: configured.conflict_policy,
            });
        }
        // One wire table must land in one local table.
        let mut seen: Vec<(TableId, TableId)> = Vec::new();
        let mut conflicting = Vec::new();
        for r in &mapping.routes {
            match seen.iter().find(|(w, _)| *w == r.wire_table) {
                Some((_, local)) if *local != r.local.table_id => conflicting.push(r.wire_table),
                Some(_) => {}
                None => seen.push((r.wire_table, r.local.table_id)),
            }
        }
        for wire_table in conflicting {
            mapping.problems.push(format!(
                "the active side's table {wire_table} is mapped to fields of different tables here"
            ));
            mapping.routes.retain(|r| r.wire_table != wire_table);
        }
        mapping
    }

    /// The active side's conflict rules as they travel to the passive side.
    pub fn wire_rules(&self, sync: &SyncConfig) -> Option<WireRules> {
        if sync.mode != Mode::Active {
            return None;
        }
        let rules = WireRules {
            default: Winner::from_active(sync.conflict_policy),
            fields: self
                .routes
                .iter()
                .filter_map(|r| {
                    r.conflict_policy
                        .map(|p| (r.wire_no, Winner::from_active(p)))
                })
                .collect(),
        };
        let all_newer =
            rules.default == Winner::Newer && rules.fields.values().all(|w| *w == Winner::Newer);
        (!all_newer).then_some(rules)
    }

    /// Which side wins a conflict of each local field, seen from here: the active side's
    /// own settings, or on the passive side the rules the active side sent with `packet`.
    pub fn prefer(
        &self,
        sync: &SyncConfig,
        from_active: Option<&WireRules>,
    ) -> HashMap<FieldNo, ConflictPolicy> {
        self.routes
            .iter()
            .filter_map(|r| {
                let prefer = match sync.mode {
                    Mode::Active => r.conflict_policy.unwrap_or(sync.conflict_policy),
                    Mode::Passive => {
                        let rules = from_active?;
                        rules
                            .fields
                            .get(&r.wire_no)
                            .unwrap_or(&rules.default)
                            .seen_from(Mode::Passive)
                    }
                };
                (prefer != ConflictPolicy::Newer).then_some((r.local.no, prefer))
            })
            .collect()
    }

    pub fn by_local(&self, no: FieldNo) -> Option<&Route> {
        self.routes.iter().find(|r| r.local.no == no)
    }

    pub fn by_wire(&self, no: FieldNo) -> Option<&Route> {
        self.routes.iter().find(|r| r.wire_no == no)
    }

    pub fn wire_table(&self, local_table: TableId) -> Option<TableId> {
        self.routes
            .iter()
            .find(|r| r.local.table_id == local_table)
            .map(|r| r.wire_table)
    }

    pub fn local_table(&self, wire_table: TableId) -> Option<TableId> {
        self.routes
            .iter()
            .find(|r| r.wire_table == wire_table)
            .map(|r| r.local.table_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crmsync_domain::FieldOptions;

    use crate::testing::sync_config as sync;

    fn table(id: i64, fields: &[(i64, FieldType)]) -> Table {
        Table {
            id,
            name: format!("T{id}"),
            fields: fields
                .iter()
                .map(|(no, t)| Field {
                    no: *no,
                    table_id: id,
                    name: format!("F{no}"),
                    field_type: *t,
                    options: FieldOptions::default(),
                })
                .collect(),
        }
    }

    fn configured(field_no: i64, direction: Direction, remote: Option<i64>) -> SyncField {
        SyncField {
            id: field_no,
            sync_id: 1,
            field_no,
            direction,
            remote_field_no: remote,
            conflict_policy: None,
        }
    }

    #[test]
    fn both_ends_read_the_active_sides_conflict_rule_alike() {
        let tables = [table(1, &[(3, FieldType::Text), (4, FieldType::Text)])];
        let mut active = sync(Mode::Active);
        active.conflict_policy = ConflictPolicy::ThisSide;
        let fields = [
            configured(3, Direction::Both, None),
            SyncField {
                conflict_policy: Some(ConflictPolicy::OtherSide),
                ..configured(4, Direction::Both, None)
            },
        ];
        let on_active = Mapping::build(&active, &fields, &tables, None);
        let rules = on_active.wire_rules(&active).expect("rules travel");
        assert_eq!(rules.default, Winner::Active);
        assert_eq!(rules.fields.get(&4), Some(&Winner::Passive));
        let here = on_active.prefer(&active, None);
        assert_eq!(here.get(&3), Some(&ConflictPolicy::ThisSide));
        assert_eq!(here.get(&4), Some(&ConflictPolicy::OtherSide));

        // The passive side's own field numbers differ; the rule follows the mapping.
        let passive_tables = [table(7, &[(30, FieldType::Text), (40, FieldType::Text)])];
        let catalog = catalog(&tables);
        let passive_fields = [
            configured(30, Direction::Both, Some(3)),
            configured(40, Direction::Both, Some(4)),
        ];
        let passive = sync(Mode::Passive);
        let on_passive = Mapping::build(&passive, &passive_fields, &passive_tables, Some(&catalog));
        let there = on_passive.prefer(&passive, Some(&rules));
        assert_eq!(
            there.get(&30),
            Some(&ConflictPolicy::OtherSide),
            "the active side wins field 3"
        );
        assert_eq!(
            there.get(&40),
            Some(&ConflictPolicy::ThisSide),
            "the passive side wins field 4"
        );
        assert!(
            on_passive.prefer(&passive, None).is_empty(),
            "no rules: newer wins"
        );
        assert_eq!(
            on_passive.wire_rules(&passive),
            None,
            "the passive side sends none"
        );
    }

    #[test]
    fn the_passive_side_maps_to_the_active_numbers_and_reports_problems() {
        let active_tables = [table(
            1,
            &[
                (1, FieldType::Text),
                (2, FieldType::Money),
                (3, FieldType::Text),
            ],
        )];
        let catalog = catalog(&active_tables);
        let local = [table(
            5,
            &[
                (10, FieldType::Longtext),
                (11, FieldType::Money),
                (12, FieldType::Number),
                (13, FieldType::Text),
            ],
        )];
        let fields = [
            configured(10, Direction::Both, Some(1)),
            configured(11, Direction::Download, Some(2)),
            configured(12, Direction::Both, Some(3)),
            configured(13, Direction::Both, Some(99)),
        ];
        let mapping = Mapping::build(&sync(Mode::Passive), &fields, &local, Some(&catalog));
        assert_eq!(mapping.routes.len(), 2);
        assert_eq!(mapping.by_wire(1).unwrap().local.no, 10);
        assert_eq!(mapping.by_local(11).unwrap().wire_no, 2);
        assert_eq!(mapping.local_table(1), Some(5));
        assert_eq!(mapping.wire_table(5), Some(1));
        assert_eq!(mapping.problems.len(), 2, "{:?}", mapping.problems);
        assert!(mapping.problems[0].contains("cannot take"));
        assert!(mapping.problems[1].contains("no field 99"));
    }

    #[test]
    fn the_active_side_uses_its_own_numbers() {
        let local = [table(1, &[(1, FieldType::Text)])];
        let mapping = Mapping::build(
            &sync(Mode::Active),
            &[configured(1, Direction::Upload, None)],
            &local,
            None,
        );
        assert_eq!(mapping.routes[0].wire_no, 1);
        assert!(mapping.problems.is_empty());
        let without_catalog = Mapping::build(
            &sync(Mode::Passive),
            &[configured(1, Direction::Both, Some(1))],
            &local,
            None,
        );
        assert!(without_catalog.routes.is_empty());
        assert!(without_catalog.problems[0].contains("waiting"));
    }
}
