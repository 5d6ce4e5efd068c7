//! The records a sync log entry lists (S-31): one line per record, written as a packet is
//! sent or applied without building a JSON tree (a packet lists up to 5,000 of them), and
//! shown as JSON only when someone reads the log.

use serde_json::{Value, json};
use std::fmt::Write;
use uuid::Uuid;

/// Records sent (uid, table on the wire, status, wire field numbers) or received (uid,
/// local table and record, created, status changed, fields taken), one line each.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LoggedRecords(String);

impl LoggedRecords {
    /// As stored.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn from_stored(text: String) -> LoggedRecords {
        LoggedRecords(text)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// A record as it went out.
    pub fn sent(&mut self, uid: Uuid, table: i64, status: &str, fields: impl Iterator<Item = i64>) {
        // A status is a word; anything else a peer sent is kept readable on one line.
        let status: String = status
            .chars()
            .map(|c| if c.is_whitespace() { '_' } else { c })
            .collect();
        let _ = write!(self.0, "S {uid} {table} {status} ");
        self.fields(fields);
    }

    /// A record as it was taken here.
    pub fn received(
        &mut self,
        uid: Uuid,
        table_id: i64,
        record_id: i64,
        created: bool,
        status_changed: bool,
        fields: impl Iterator<Item = i64>,
    ) {
        let _ = write!(
            self.0,
            "R {uid} {table_id} {record_id} {} {} ",
            u8::from(created),
            u8::from(status_changed)
        );
        self.fields(fields);
    }

    fn fields(&mut self, fields: impl Iterator<Item = i64>) {
        for (i, no) in fields.enumerate() {
            let _ = write!(self.0, "{}{no}", if i == 0 { "" } else { "," });
        }
        self.0.push('\n');
    }

    /// The entry's detail as the log shows it: `{"records": [...]}`, each record with the
    /// keys it was always shown with.
    pub fn to_json(&self) -> Value {
        let records: Vec<Value> = self.0.lines().filter_map(line_json).collect();
        json!({ "records": records })
    }
}

fn line_json(line: &str) -> Option<Value> {
    let parts: Vec<&str> = line.split(' ').collect();
    let number = |s: &str| s.parse::<i64>().ok();
    let fields = |s: &str| -> Vec<i64> { s.split(',').filter_map(number).collect() };
    match parts.as_slice() {
        ["S", uid, table, status, list] => Some(json!({
            "uid": uid,
            "table": number(table)?,
            "status": status,
            "fields": fields(list),
        })),
        ["R", uid, table, record, created, status_changed, list] => Some(json!({
            "uid": uid,
            "table_id": number(table)?,
            "record_id": number(record)?,
            "created": *created == "1",
            "status_changed": *status_changed == "1",
            "fields": fields(list),
        })),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_read_back_as_the_log_always_showed_them() {
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let mut sent = LoggedRecords::default();
        sent.sent(a, 3, "active", [101, 102].into_iter());
        sent.sent(b, 3, "deleted", std::iter::empty());
        assert_eq!(
            sent.to_json(),
            json!({ "records": [
                { "uid": a.to_string(), "table": 3, "status": "active", "fields": [101, 102] },
                { "uid": b.to_string(), "table": 3, "status": "deleted", "fields": [] },
            ] })
        );
        let mut received = LoggedRecords::default();
        received.received(a, 1, 42, true, false, [5].into_iter());
        let stored = LoggedRecords::from_stored(received.as_str().to_string());
        assert_eq!(
            stored.to_json(),
            json!({ "records": [{ "uid": a.to_string(), "table_id": 1, "record_id": 42,
                "created": true, "status_changed": false, "fields": [5] }] })
        );
        let mut odd = LoggedRecords::default();
        odd.sent(a, 1, "a status\nwith lines", std::iter::empty());
        assert_eq!(odd.to_json()["records"][0]["status"], "a_status_with_lines");
    }
}
