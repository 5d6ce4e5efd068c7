//! What travels between two instances (protocol version 1; see docs/protocol.md).

use crmsync_domain::sync::{ConflictPolicy, Mode, UserMatch};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use uuid::Uuid;

pub const PROTOCOL_VERSION: u32 = 3;

/// One field as an instance describes it to its peer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CatalogField {
    pub no: i64,
    pub name: String,
    #[serde(rename = "type")]
    pub field_type: String,
    pub table_id: i64,
    pub table_name: String,
}

pub type Catalog = Vec<CatalogField>;

/// The active side introduces itself.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Hello {
    pub version: u32,
    pub instance_id: String,
    pub catalog: Catalog,
    /// How the active side matches users (S-21); both sides must say the same.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_match: Option<UserMatch>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HelloReply {
    pub version: u32,
    pub instance_id: String,
    /// Mapping problems the passive side sees (a number the active lacks, a type mismatch).
    pub problems: Vec<String>,
    /// The passive side's clock when it answered (Unix ms), for clock sanity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub now_ms: Option<i64>,
    /// How the passive side matches users (S-21).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_match: Option<UserMatch>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct WireStamp {
    pub hlc: u64,
    pub node: Uuid,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WireField {
    pub value: serde_json::Value,
    pub stamp: WireStamp,
}

/// One record's changed, configured fields with their stamps, under the active side's
/// numbering (`table` is the active side's table id). On the wire a field whose stamp is
/// the record's status stamp leaves it out (a record never edited since it was created
/// has one stamp for all): most of a packet's bytes were stamps.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(from = "ItemOnWire")]
pub struct Item {
    pub uid: Uuid,
    pub table: i64,
    pub status: String,
    pub status_stamp: WireStamp,
    pub fields: BTreeMap<i64, WireField>,
    /// When the record was first created (ms since the epoch): a copy keeps it. Absent in
    /// packets of older versions; the receiver then uses its own time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at_ms: Option<i64>,
}

impl Serialize for Item {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeMap, SerializeStruct};
        struct Fields<'a>(&'a Item);
        impl Serialize for Fields<'_> {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let mut map = serializer.serialize_map(Some(self.0.fields.len()))?;
                for (no, field) in &self.0.fields {
                    let stamp = (field.stamp != self.0.status_stamp).then_some(&field.stamp);
                    map.serialize_entry(
                        no,
                        &FieldOnWire {
                            value: &field.value,
                            stamp,
                        },
                    )?;
                }
                map.end()
            }
        }
        let mut item = serializer.serialize_struct("Item", 6)?;
        item.serialize_field("uid", &self.uid)?;
        item.serialize_field("table", &self.table)?;
        item.serialize_field("status", &self.status)?;
        item.serialize_field("status_stamp", &self.status_stamp)?;
        item.serialize_field("fields", &Fields(self))?;
        match self.created_at_ms {
            Some(at) => item.serialize_field("created_at_ms", &at)?,
            None => item.skip_field("created_at_ms")?,
        }
        item.end()
    }
}

#[derive(Serialize)]
struct FieldOnWire<'a> {
    value: &'a serde_json::Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    stamp: Option<&'a WireStamp>,
}

/// An item as it is read: a field without a stamp has the record's status stamp.
#[derive(Deserialize)]
struct ItemOnWire {
    uid: Uuid,
    table: i64,
    status: String,
    status_stamp: WireStamp,
    fields: BTreeMap<i64, FieldRead>,
    #[serde(default)]
    created_at_ms: Option<i64>,
}

#[derive(Deserialize)]
struct FieldRead {
    value: serde_json::Value,
    #[serde(default)]
    stamp: Option<WireStamp>,
}

impl From<ItemOnWire> for Item {
    fn from(wire: ItemOnWire) -> Item {
        let base = wire.status_stamp;
        Item {
            uid: wire.uid,
            table: wire.table,
            status: wire.status,
            status_stamp: base,
            fields: wire
                .fields
                .into_iter()
                .map(|(no, field)| {
                    let stamp = field.stamp.unwrap_or(base);
                    (
                        no,
                        WireField {
                            value: field.value,
                            stamp,
                        },
                    )
                })
                .collect(),
            created_at_ms: wire.created_at_ms,
        }
    }
}

/// A batch of changes: the sender's change-log entries after `after` up to `upto`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Packet {
    pub after: i64,
    pub upto: i64,
    pub items: Vec<Item>,
    /// Change-log entries the sender still has after `upto`.
    pub remaining: i64,
    /// From a passive side: its initial sync wants the active side's rows too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resend: Option<ResendRequest>,
    /// From a passive side: what keeps its configured fields from travelling now.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
    /// Over folders, where there is no hello: the active side's field catalogue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catalog: Option<Catalog>,
    /// Over folders: how the writing side matches users (S-21), in every packet file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_match: Option<UserMatch>,
    /// From the active side: its conflict rules (B-02), which the passive side follows;
    /// absent = the newer write wins everywhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rules: Option<WireRules>,
    /// Over folders, from the active side: a drift check asks for the peer's digests of
    /// these fields (B-16).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest_request: Option<Vec<i64>>,
    /// With it: the active side's direction of each of those fields.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest_directions: Option<BTreeMap<i64, crmsync_domain::sync::Direction>>,
    /// Over folders, from the passive side: its digests, answering a drift check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digests: Option<crate::drift::Digests>,
    /// Over folders: blocks of a shared numbering this side asks the owner for (B-06).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub number_requests: Vec<NumberBlockRequest>,
    /// Over folders: the owner's answers to those requests.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub number_blocks: Vec<GrantedBlock>,
    /// Over folders, from the active side: a match by a key field (B-05) asks for the
    /// passive side's records of this table (the active side's table id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub records_request: Option<i64>,
    /// Over folders, from the passive side: those records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub records: Option<Vec<Item>>,
    /// Over folders, from the active side: the pairs to record before the initial sync.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pairs: Option<PairRequest>,
    /// Over folders, from the passive side: the pairs recorded, or why not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paired: Option<PairOutcome>,
    /// Over folders, from either side: the highest `upto` of the other side's packets this
    /// side has applied (written files say nothing of being read; this does).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ack: Option<i64>,
    /// Over folders: what this side queued in answer to the other side's `resend`, so the
    /// other side's initial sync knows what to wait for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resent: Option<ResendSummary>,
    /// Over HTTP, from the active side: pushed while its packet ending at this seq may
    /// still be on its way or being applied. The passive side applies it only once it has
    /// applied that far, and refuses it if that does not happen soon.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub follows: Option<i64>,
}

/// The passive side's answer to pairs sent through folders.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairOutcome {
    pub paired: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused: Option<String>,
}

/// An owner's answer to a request for numbers over folders: the block, or why not.
/// `field_no` is the field as it travels (the active side's number).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GrantedBlock {
    pub field_no: i64,
    #[serde(default)]
    pub first: i64,
    #[serde(default)]
    pub last: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused: Option<String>,
}

/// Who wins a conflict, named by role so both ends read it alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Winner {
    Newer,
    Active,
    Passive,
}

/// The one place a conflict rule turns between the wire's roles and a side's own view
/// (`ConflictPolicy`: this side / the other side).
impl Winner {
    /// The rule as the active side, which chooses it, sends it.
    pub fn from_active(policy: ConflictPolicy) -> Winner {
        match policy {
            ConflictPolicy::Newer => Winner::Newer,
            ConflictPolicy::ThisSide => Winner::Active,
            ConflictPolicy::OtherSide => Winner::Passive,
        }
    }

    /// The rule as the side in `mode` reads it.
    pub fn seen_from(self, mode: Mode) -> ConflictPolicy {
        match (self, mode) {
            (Winner::Newer, _) => ConflictPolicy::Newer,
            (Winner::Active, Mode::Active) | (Winner::Passive, Mode::Passive) => {
                ConflictPolicy::ThisSide
            }
            (Winner::Active, Mode::Passive) | (Winner::Passive, Mode::Active) => {
                ConflictPolicy::OtherSide
            }
        }
    }
}

/// The active side's conflict rules: a default and exceptions by its field numbers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WireRules {
    pub default: Winner,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub fields: BTreeMap<i64, Winner>,
}

/// Asks the peer to send its rows again (initial sync): every configured field, or one
/// field (the active side's number).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ResendRequest {
    pub field: Option<i64>,
}

/// What a side queued for sending again: `count` records, change-log seqs first..=last.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ResendSummary {
    pub count: i64,
    pub first: i64,
    pub last: i64,
}

impl ResendSummary {
    /// How many of the queued records a cursor at `cursor` has delivered.
    pub fn delivered(&self, cursor: i64) -> i64 {
        if self.count == 0 || cursor < self.first {
            0
        } else if cursor >= self.last {
            self.count
        } else {
            (cursor - self.first + 1).min(self.count)
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PushReply {
    /// The highest `upto` the receiver has applied.
    pub applied: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PullRequest {
    /// The highest `upto` of the peer's packets we have applied: its outgoing cursor.
    pub ack: i64,
    /// How long the peer may hold the request while it has nothing to send.
    pub wait_ms: u64,
    /// The mapping problems the active side last heard of; the passive side answers at
    /// once when its own differ.
    #[serde(default)]
    pub problems: Vec<String>,
    /// How the active side last heard the passive side matches users; the passive side
    /// answers at once when it has changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_match: Option<UserMatch>,
    /// What the active side queued in answer to the passive side's `resend`, so the
    /// passive side's initial sync knows what to wait for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resent: Option<ResendSummary>,
}

/// The active side asks the owner of a shared numbering (B-06) for a block of numbers.
/// `field_no` is the active side's field; `hops` counts forwards along a chain, so a
/// numbering configured in a circle is refused instead of asked round forever.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NumberBlockRequest {
    pub field_no: i64,
    pub count: u32,
    #[serde(default)]
    pub hops: u32,
}

/// Numbers `first..=last`, handed out once, to this requester only.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NumberBlock {
    pub first: i64,
    pub last: i64,
}

/// Before an initial sync matched by a key (B-05): the active side asks for the passive
/// side's active records of one table (the active side's table id).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RecordsRequest {
    pub table: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RecordsReply {
    pub items: Vec<Item>,
}

/// Records the passive side pairs with the active side's: (passive uid, active uid).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairRequest {
    pub table: i64,
    pub pairs: Vec<(Uuid, Uuid)>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PairReply {
    pub paired: usize,
}

impl Packet {
    /// Why the stretch of the sender's log this packet claims cannot be one (a range that
    /// runs backwards or before the start), if so: taken, it would move the receiver's
    /// cursor where no packet ends.
    pub fn range_problem(&self) -> Option<String> {
        (self.after < 0 || self.upto < self.after).then(|| {
            format!(
                "its change-log range {}..{} is no range of a log",
                self.after, self.upto
            )
        })
    }

    /// The records this packet carries, for the sync log (S-31): one entry a packet lists
    /// them all, by uid, with the table and the fields each one carries (wire numbers).
    pub fn logged_records(&self) -> crmsync_domain::logged_records::LoggedRecords {
        let mut records = crmsync_domain::logged_records::LoggedRecords::default();
        for item in &self.items {
            records.sent(
                item.uid,
                item.table,
                &item.status,
                item.fields.keys().copied(),
            );
        }
        records
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing;
    use proptest::collection::vec;
    use proptest::option::of;
    use proptest::prelude::*;
    use proptest::sample::Index;
    use serde::de::DeserializeOwned;

    /// A rule the active side chooses reads the same on both sides: its "this side" is the
    /// passive side's "other side", and the active side reads back its own choice.
    #[test]
    fn a_conflict_rule_names_the_same_winner_on_both_sides() {
        let mirrored = |p| match p {
            ConflictPolicy::ThisSide => ConflictPolicy::OtherSide,
            ConflictPolicy::OtherSide => ConflictPolicy::ThisSide,
            ConflictPolicy::Newer => ConflictPolicy::Newer,
        };
        for policy in [
            ConflictPolicy::Newer,
            ConflictPolicy::ThisSide,
            ConflictPolicy::OtherSide,
        ] {
            let sent = Winner::from_active(policy);
            assert_eq!(sent.seen_from(Mode::Active), policy);
            assert_eq!(sent.seen_from(Mode::Passive), mirrored(policy));
        }
    }

    /// What travels over HTTP is JSON: each message read back equals what was sent.
    fn round_trip<T: Serialize + DeserializeOwned>(message: &T) -> T {
        serde_json::from_slice(&serde_json::to_vec(message).unwrap()).unwrap()
    }

    fn user_match() -> impl Strategy<Value = Option<UserMatch>> {
        of(prop_oneof![
            Just(UserMatch::Login),
            Just(UserMatch::FullName),
            Just(UserMatch::Id)
        ])
    }

    proptest! {
        #[test]
        fn any_packet_round_trips_as_json(packet in testing::packet()) {
            prop_assert_eq!(round_trip(&packet), packet);
        }

        /// A body cut short (a dropped connection) is never read as a smaller packet.
        #[test]
        fn a_cut_packet_is_not_read(packet in testing::packet(), cut in any::<Index>()) {
            let json = serde_json::to_vec(&packet).unwrap();
            let cut = cut.index(json.len());
            prop_assert!(serde_json::from_slice::<Packet>(&json[..cut]).is_err());
        }

        #[test]
        fn hellos_round_trip(
            version in any::<u32>(),
            instance_id in testing::text(),
            catalog in vec((any::<i64>(), testing::text(), any::<i64>()), 0..4),
            user_match in user_match(),
            problems in vec(testing::text(), 0..3),
            now_ms in of(any::<i64>()),
        ) {
            let catalog: Catalog = catalog
                .into_iter()
                .map(|(no, name, table_id)| CatalogField {
                    no,
                    name: name.clone(),
                    field_type: "text".into(),
                    table_id,
                    table_name: name,
                })
                .collect();
            let hello = Hello { version, instance_id: instance_id.clone(), catalog, user_match };
            let back = round_trip(&hello);
            prop_assert_eq!(
                (back.version, back.instance_id, back.catalog, back.user_match),
                (hello.version, hello.instance_id, hello.catalog, hello.user_match)
            );
            let reply = HelloReply { version, instance_id, problems, now_ms, user_match };
            let back = round_trip(&reply);
            prop_assert_eq!(
                (back.version, back.instance_id, back.problems, back.now_ms, back.user_match),
                (reply.version, reply.instance_id, reply.problems, reply.now_ms, reply.user_match)
            );
        }

        #[test]
        fn pull_requests_round_trip(
            ack in any::<i64>(),
            wait_ms in any::<u64>(),
            problems in vec(testing::text(), 0..3),
            user_match in user_match(),
            resent in of((any::<i64>(), any::<i64>(), any::<i64>())),
        ) {
            let resent = resent.map(|(count, first, last)| ResendSummary { count, first, last });
            let request = PullRequest { ack, wait_ms, problems, user_match, resent };
            let back = round_trip(&request);
            prop_assert_eq!(
                (back.ack, back.wait_ms, back.problems, back.user_match, back.resent),
                (request.ack, request.wait_ms, request.problems, request.user_match, request.resent)
            );
        }

        #[test]
        fn record_exchanges_round_trip(
            items in vec(testing::item(), 0..4),
            table in any::<i64>(),
            pairs in vec((testing::uid(), testing::uid()), 0..4),
        ) {
            prop_assert_eq!(round_trip(&RecordsReply { items: items.clone() }).items, items);
            prop_assert_eq!(round_trip(&RecordsRequest { table }).table, table);
            let request = PairRequest { table, pairs };
            prop_assert_eq!(round_trip(&request), request);
        }

        /// What a cursor has delivered of a resend never falls as the cursor moves on, and
        /// stays within what was queued.
        #[test]
        fn delivered_grows_with_the_cursor_up_to_the_count(
            count in 0i64..1_000,
            first in -1_000i64..1_000,
            span in 0i64..1_000,
            cursor in -3_000i64..3_000,
        ) {
            let summary = ResendSummary { count, first, last: first + span };
            let now = summary.delivered(cursor);
            prop_assert!((0..=count).contains(&now));
            prop_assert!(summary.delivered(cursor + 1) >= now);
            prop_assert_eq!(summary.delivered(first - 1), 0);
            prop_assert_eq!(summary.delivered(first + span), count);
        }
    }

    /// A field stamped like its record travels without its stamp and reads back with it; a
    /// field with a stamp of its own keeps it on the wire.
    #[test]
    fn a_field_stamped_as_its_record_travels_without_its_stamp() {
        let node = Uuid::from_u128(2);
        let base = WireStamp { hlc: 5, node };
        let own = WireStamp { hlc: 9, node };
        let item = Item {
            uid: Uuid::from_u128(1),
            table: 3,
            status: "active".into(),
            status_stamp: base,
            fields: BTreeMap::from([
                (
                    4,
                    WireField {
                        value: "x".into(),
                        stamp: base,
                    },
                ),
                (
                    5,
                    WireField {
                        value: "y".into(),
                        stamp: own,
                    },
                ),
            ]),
            created_at_ms: Some(7),
        };
        let wire = serde_json::to_value(&item).unwrap();
        assert_eq!(wire["fields"]["4"], serde_json::json!({ "value": "x" }));
        assert_eq!(wire["fields"]["5"]["stamp"]["hlc"], 9);
        assert_eq!(round_trip(&item), item);
    }

    #[test]
    fn a_packet_of_an_older_version_is_read() {
        // Protocol version 1 as first written: none of the parts added since.
        let packet: Packet = serde_json::from_str(
            r#"{"after":1,"upto":2,"remaining":0,"items":[{"uid":"00000000-0000-0000-0000-000000000001","table":3,"status":"active","status_stamp":{"hlc":5,"node":"00000000-0000-0000-0000-000000000002"},"fields":{"4":{"value":"x","stamp":{"hlc":5,"node":"00000000-0000-0000-0000-000000000002"}}}}]}"#,
        )
        .unwrap();
        assert_eq!((packet.after, packet.upto), (1, 2));
        assert_eq!(packet.items[0].created_at_ms, None);
        assert_eq!(packet.items[0].fields[&4].value, "x");
        assert_eq!(packet.rules, None, "no rules: the newer write wins");
        let request: PullRequest = serde_json::from_str(r#"{"ack":7,"wait_ms":0}"#).unwrap();
        assert!(request.problems.is_empty() && request.user_match.is_none());
    }

    #[test]
    fn parts_left_empty_are_not_sent() {
        let json = serde_json::to_value(Packet::default()).unwrap();
        let keys: Vec<&str> = json
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys, ["after", "items", "remaining", "upto"]);
    }

    #[test]
    fn a_resend_delivered_counts_what_the_cursor_passed() {
        let summary = ResendSummary {
            count: 3,
            first: 10,
            last: 12,
        };
        assert_eq!(summary.delivered(9), 0);
        assert_eq!(summary.delivered(10), 1);
        assert_eq!(summary.delivered(11), 2);
        assert_eq!(summary.delivered(12), 3);
        assert_eq!(summary.delivered(100), 3);
        assert_eq!(ResendSummary::default().delivered(100), 0, "nothing queued");
        // Seqs of other changes in between: never more than were queued.
        let sparse = ResendSummary {
            count: 2,
            first: 10,
            last: 20,
        };
        assert_eq!(sparse.delivered(15), 2);
    }

    #[test]
    fn the_log_lists_each_record_with_its_fields() {
        let stamp = WireStamp {
            hlc: 1,
            node: Uuid::nil(),
        };
        let field = WireField {
            value: "v".into(),
            stamp,
        };
        let packet = Packet {
            items: vec![Item {
                uid: Uuid::from_u128(7),
                table: 2,
                status: "deleted".into(),
                status_stamp: stamp,
                fields: BTreeMap::from([(5, field.clone()), (3, field)]),
                created_at_ms: None,
            }],
            ..Packet::default()
        };
        assert_eq!(
            packet.logged_records().to_json(),
            serde_json::json!({"records": [{
                "uid": Uuid::from_u128(7).to_string(),
                "table": 2,
                "status": "deleted",
                "fields": [3, 5],
            }]})
        );
    }
}
