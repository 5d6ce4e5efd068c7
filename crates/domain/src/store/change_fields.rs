//! How a change-log entry's field list is written as text, the same in every store: a
//! create's field numbers `[1,2]`; else per field `{"<no>": new}`, `{"<no>": [old, new]}`,
//! or `[old, new, {"w": written, "r": replaced, "k": rule}]` for a value a peer's write
//! decided (no value type is a JSON array, so the forms cannot be mistaken).

use super::StoreResult;
use crate::DomainError;
use crate::record::{Change, ChangeOp, FieldChange};
use std::fmt::Write as _;

/// The change log's field list: a create's field numbers `[1,2]`, else `{"<no>": new}`
/// for a value without a previous one and `{"<no>": [old, new]}` otherwise (no value type
/// is a JSON array).
pub fn encode_change_fields(change: &Change) -> StoreResult<String> {
    if change.op == ChangeOp::Create {
        let mut out = String::with_capacity(4 * change.created_fields.len() + 2);
        out.push('[');
        for (i, no) in change.created_fields.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let _ = write!(out, "{no}");
        }
        out.push(']');
        return Ok(out);
    }
    let fields = &change.fields;
    let mut out = Vec::with_capacity(32 * fields.len() + 2);
    out.push(b'{');
    for (i, f) in fields.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let _ = write!(&mut out as &mut dyn std::io::Write, "\"{}\":", f.field_no);
        // A value taken from a peer also keeps the stamps that decided it (B-15).
        let result = match (&f.old, &f.written) {
            (None, None) => serde_json::to_writer(&mut out, &f.new),
            (Some(old), None) => serde_json::to_writer(&mut out, &(old, &f.new)),
            (old, Some(written)) => serde_json::to_writer(
                &mut out,
                &(
                    old,
                    &f.new,
                    match &f.rule {
                        None => serde_json::json!({ "w": written, "r": f.replaced }),
                        Some(rule) => {
                            serde_json::json!({ "w": written, "r": f.replaced, "k": rule })
                        }
                    },
                ),
            ),
        };
        result.map_err(|e| DomainError::Store(e.to_string()))?;
    }
    out.push(b'}');
    String::from_utf8(out).map_err(|e| DomainError::Store(e.to_string()))
}

/// Returns (created fields, changed fields).
pub fn decode_change_fields(text: &str) -> StoreResult<(Vec<i64>, Vec<FieldChange>)> {
    if text.starts_with('[') {
        let created = serde_json::from_str(text).map_err(|e| DomainError::Store(e.to_string()))?;
        return Ok((created, Vec::new()));
    }
    let map: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(text).map_err(|e| DomainError::Store(e.to_string()))?;
    let mut fields = Vec::with_capacity(map.len());
    for (key, value) in map {
        let field_no = key
            .parse()
            .map_err(|_| DomainError::Store(format!("change log field key {key}")))?;
        fields.push(match value {
            serde_json::Value::Array(mut pair) if pair.len() == 2 => {
                let new = pair.pop().unwrap_or_default();
                FieldChange {
                    field_no,
                    old: pair.pop(),
                    new,
                    ..Default::default()
                }
            }
            serde_json::Value::Array(mut triple) if triple.len() == 3 => {
                let why = triple.pop().unwrap_or_default();
                let new = triple.pop().unwrap_or_default();
                let stamp = |key: &str| serde_json::from_value(why[key].clone()).ok();
                FieldChange {
                    field_no,
                    old: triple.pop(),
                    new,
                    written: stamp("w"),
                    replaced: stamp("r"),
                    rule: why["k"].as_str().map(str::to_string),
                }
            }
            new => FieldChange {
                field_no,
                old: None,
                new,
                ..Default::default()
            },
        });
    }
    fields.sort_by_key(|f| f.field_no);
    Ok((Vec::new(), fields))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Hlc, Stamp};
    use serde_json::json;
    use uuid::Uuid;

    #[test]
    fn the_change_log_encoding_round_trips() {
        let mut change = Change {
            seq: 0,
            table_id: 1,
            record_id: 1,
            record_uid: Uuid::nil(),
            op: ChangeOp::Update,
            hlc: Hlc(1),
            origin: crate::Origin::Api,
            user_id: None,
            at_ms: 0,
            created_fields: Vec::new(),
            fields: vec![
                FieldChange {
                    field_no: 2,
                    old: None,
                    new: json!("Иван"),
                    ..Default::default()
                },
                FieldChange {
                    field_no: 10,
                    old: Some(json!(null)),
                    new: json!("1.50"),
                    ..Default::default()
                },
                FieldChange {
                    field_no: 11,
                    old: Some(json!({"name": "a", "size": 1, "sha256": "x"})),
                    new: json!(null),
                    ..Default::default()
                },
            ],
        };
        let text = encode_change_fields(&change).unwrap();
        assert_eq!(
            text,
            r#"{"2":"Иван","10":[null,"1.50"],"11":[{"name":"a","sha256":"x","size":1},null]}"#
        );
        assert_eq!(
            decode_change_fields(&text).unwrap(),
            (vec![], change.fields.clone())
        );
        change.op = ChangeOp::Create;
        change.created_fields = vec![3, 12];
        assert_eq!(encode_change_fields(&change).unwrap(), "[3,12]");
        assert_eq!(
            decode_change_fields("[3,12]").unwrap(),
            (vec![3, 12], vec![])
        );
    }

    #[test]
    fn a_value_from_a_peer_keeps_the_stamps_that_decided_it() {
        let written = Stamp {
            hlc: Hlc(7 << 16),
            node: Uuid::from_u128(0xA),
        };
        let replaced = Stamp {
            hlc: Hlc(5 << 16),
            node: Uuid::from_u128(0xB),
        };
        let change = Change {
            seq: 0,
            table_id: 1,
            record_id: 1,
            record_uid: Uuid::nil(),
            op: ChangeOp::Update,
            hlc: Hlc(7 << 16),
            origin: crate::Origin::Sync(1),
            user_id: None,
            at_ms: 0,
            created_fields: Vec::new(),
            fields: vec![
                FieldChange {
                    field_no: 3,
                    old: Some(json!("old")),
                    new: json!("new"),
                    written: Some(written),
                    replaced: Some(replaced),
                    rule: None,
                },
                // Decided by a sync's conflict rule (B-02).
                FieldChange {
                    field_no: 4,
                    old: Some(json!("theirs")),
                    new: json!("ours"),
                    written: Some(written),
                    replaced: Some(replaced),
                    rule: Some("here".into()),
                },
            ],
        };
        let (_, decoded) = decode_change_fields(&encode_change_fields(&change).unwrap()).unwrap();
        assert_eq!(decoded, change.fields);
    }
}
