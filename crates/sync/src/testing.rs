//! Strategies for the property tests: arbitrary packets, every part of one filled or not.

use crate::drift::Digests;
use crate::mapping::Route;
use crate::protocol::{
    CatalogField, GrantedBlock, Item, NumberBlockRequest, Packet, PairOutcome, PairRequest,
    ResendRequest, ResendSummary, Winner, WireField, WireRules, WireStamp,
};
use crmsync_domain::sync::{Direction, UserMatch};
use proptest::collection::{btree_map, vec};
use proptest::option::of;
use proptest::prelude::*;
use serde_json::Value as Json;
use uuid::Uuid;

/// Text as people type it, Cyrillic, quotes, separators and emoji included.
pub fn text() -> impl Strategy<Value = String> {
    "[a-zA-Zа-яА-ЯёЁ0-9 ;,\"'\\\\\n\t€😀]{0,12}"
}

pub fn uid() -> impl Strategy<Value = Uuid> {
    any::<u128>().prop_map(Uuid::from_u128)
}

/// Any JSON value a field could carry: numbers of every kind, text, and nested shapes (a
/// file's description).
pub fn json() -> impl Strategy<Value = Json> {
    let leaf = prop_oneof![
        Just(Json::Null),
        any::<bool>().prop_map(Json::from),
        any::<i64>().prop_map(Json::from),
        any::<u64>().prop_map(Json::from),
        // Finite only: JSON has no NaN or infinity (a number value is never one).
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Json::from),
        text().prop_map(Json::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..4).prop_map(Json::Array),
            btree_map(text(), inner, 0..4).prop_map(|m| Json::Object(m.into_iter().collect())),
        ]
    })
}

pub fn stamp() -> impl Strategy<Value = WireStamp> {
    (any::<u64>(), uid()).prop_map(|(hlc, node)| WireStamp { hlc, node })
}

pub fn item() -> impl Strategy<Value = Item> {
    (
        uid(),
        any::<i64>(),
        prop_oneof![
            Just("active".to_string()),
            Just("deleted".to_string()),
            text()
        ],
        stamp(),
        btree_map(
            any::<i64>(),
            (json(), stamp()).prop_map(|(value, stamp)| WireField { value, stamp }),
            0..5,
        ),
        of(any::<i64>()),
    )
        .prop_map(
            |(uid, table, status, status_stamp, fields, created_at_ms)| Item {
                uid,
                table,
                status,
                status_stamp,
                fields,
                created_at_ms,
            },
        )
}

fn direction() -> impl Strategy<Value = Direction> {
    prop_oneof![
        Just(Direction::Both),
        Just(Direction::Upload),
        Just(Direction::Download),
        Just(Direction::Off),
    ]
}

fn winner() -> impl Strategy<Value = Winner> {
    prop_oneof![
        Just(Winner::Newer),
        Just(Winner::Active),
        Just(Winner::Passive)
    ]
}

fn user_match() -> impl Strategy<Value = UserMatch> {
    prop_oneof![
        Just(UserMatch::Login),
        Just(UserMatch::FullName),
        Just(UserMatch::Id)
    ]
}

fn catalog_field() -> impl Strategy<Value = CatalogField> {
    (any::<i64>(), text(), text(), any::<i64>(), text()).prop_map(
        |(no, name, field_type, table_id, table_name)| CatalogField {
            no,
            name,
            field_type,
            table_id,
            table_name,
        },
    )
}

/// Digests as they travel (the side's own tables and ids stay home).
fn digests() -> impl Strategy<Value = Digests> {
    (
        vec(any::<i64>(), 0..4),
        btree_map(uid(), "[0-9a-f]{24}", 0..4),
        vec(any::<i64>(), 0..3),
        vec(any::<i64>(), 0..3),
        btree_map(uid(), btree_map(any::<i64>(), "[0-9a-f]{16}", 1..3), 0..3),
    )
        .prop_map(
            |(fields, records, to_passive, to_active, one_way)| Digests {
                fields,
                records,
                to_passive,
                to_active,
                one_way,
                ..Digests::default()
            },
        )
}

fn resent() -> impl Strategy<Value = ResendSummary> {
    (any::<i64>(), any::<i64>(), any::<i64>()).prop_map(|(count, first, last)| ResendSummary {
        count,
        first,
        last,
    })
}

/// The control parts of a packet: requests and answers besides the changes.
#[derive(Debug, Clone)]
struct Control {
    resend: Option<ResendRequest>,
    problems: Vec<String>,
    catalog: Option<Vec<CatalogField>>,
    user_match: Option<UserMatch>,
    rules: Option<WireRules>,
    digest_request: Option<Vec<i64>>,
    digest_directions: Option<std::collections::BTreeMap<i64, Direction>>,
    digests: Option<Digests>,
}

#[derive(Debug, Clone)]
struct Exchange {
    number_requests: Vec<NumberBlockRequest>,
    number_blocks: Vec<GrantedBlock>,
    records_request: Option<i64>,
    records: Option<Vec<Item>>,
    pairs: Option<PairRequest>,
    paired: Option<PairOutcome>,
    ack: Option<i64>,
    resent: Option<ResendSummary>,
}

fn control() -> impl Strategy<Value = Control> {
    (
        of(of(any::<i64>()).prop_map(|field| ResendRequest { field })),
        vec(text(), 0..3),
        of(vec(catalog_field(), 0..3)),
        of(user_match()),
        of((winner(), btree_map(any::<i64>(), winner(), 0..3))
            .prop_map(|(default, fields)| WireRules { default, fields })),
        of(vec(any::<i64>(), 0..4)),
        of(btree_map(any::<i64>(), direction(), 0..4)),
        of(digests()),
    )
        .prop_map(
            |(
                resend,
                problems,
                catalog,
                user_match,
                rules,
                digest_request,
                digest_directions,
                digests,
            )| Control {
                resend,
                problems,
                catalog,
                user_match,
                rules,
                digest_request,
                digest_directions,
                digests,
            },
        )
}

fn exchange() -> impl Strategy<Value = Exchange> {
    (
        vec(
            (any::<i64>(), any::<u32>(), any::<u32>()).prop_map(|(field_no, count, hops)| {
                NumberBlockRequest {
                    field_no,
                    count,
                    hops,
                }
            }),
            0..3,
        ),
        vec(
            (any::<i64>(), any::<i64>(), any::<i64>(), of(text())).prop_map(
                |(field_no, first, last, refused)| GrantedBlock {
                    field_no,
                    first,
                    last,
                    refused,
                },
            ),
            0..3,
        ),
        of(any::<i64>()),
        of(vec(item(), 0..3)),
        of((any::<i64>(), vec((uid(), uid()), 0..3))
            .prop_map(|(table, pairs)| PairRequest { table, pairs })),
        of((any::<usize>(), of(text()))
            .prop_map(|(paired, refused)| PairOutcome { paired, refused })),
        of(any::<i64>()),
        of(resent()),
    )
        .prop_map(
            |(
                number_requests,
                number_blocks,
                records_request,
                records,
                pairs,
                paired,
                ack,
                resent,
            )| Exchange {
                number_requests,
                number_blocks,
                records_request,
                records,
                pairs,
                paired,
                ack,
                resent,
            },
        )
}

/// Any packet: sequence numbers anywhere in `i64`, any items, any control parts.
pub fn packet() -> impl Strategy<Value = Packet> {
    (
        0..=i64::MAX,
        0..=i64::MAX,
        any::<i64>(),
        vec(item(), 0..4),
        control(),
        exchange(),
        proptest::option::of(0..=i64::MAX),
    )
        .prop_map(|(a, b, remaining, items, c, x, follows)| Packet {
            // A range of a log: it starts at 0 or after and never runs backwards.
            after: a.min(b),
            upto: a.max(b),
            items,
            remaining,
            resend: c.resend,
            problems: c.problems,
            catalog: c.catalog,
            user_match: c.user_match,
            rules: c.rules,
            digest_request: c.digest_request,
            digest_directions: c.digest_directions,
            digests: c.digests,
            number_requests: x.number_requests,
            number_blocks: x.number_blocks,
            records_request: x.records_request,
            records: x.records,
            pairs: x.pairs,
            paired: x.paired,
            ack: x.ack,
            resent: x.resent,
            follows,
        })
}

/// A route of a mapping: local field `local_no` of table `table`, travelling as `wire_no`
/// of the active side's table `wire_table`.
pub fn route(
    local_no: i64,
    table: i64,
    wire_no: i64,
    wire_table: i64,
    direction: Direction,
) -> Route {
    Route {
        local: crmsync_domain::Field {
            no: local_no,
            table_id: table,
            name: format!("F{local_no}"),
            field_type: crmsync_domain::FieldType::Text,
            options: crmsync_domain::FieldOptions::default(),
        },
        wire_no,
        wire_table,
        direction,
        conflict_policy: None,
    }
}

/// Sync 1, newer write wins, users matched by login.
pub fn sync_config(mode: crmsync_domain::sync::Mode) -> crmsync_domain::sync::SyncConfig {
    use crmsync_domain::sync::{ConflictPolicy, Secret, SyncConfig, TransportSettings};
    SyncConfig {
        id: 1,
        name: "s".into(),
        mode,
        transport: TransportSettings::Http,
        remote_access: false,
        remote_url: None,
        password: Secret("p".into()),
        log: true,
        period_seconds: 1,
        user_match: UserMatch::Login,
        mass_delete_percent: 20,
        conflict_policy: ConflictPolicy::Newer,
    }
}
