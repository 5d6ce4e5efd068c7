//! Proof that no write path skips the change log: every kind of write is made, through
//! every adapter, and then the database file itself is read to check that every stored
//! value carries a clock stamp that matches a change-log entry for that very field.

use crate::common::{Server, cli};
use reqwest::Method;
use rusqlite::Connection;
use serde_json::{Value, json};
use std::collections::HashMap;

#[tokio::test]
async fn every_write_is_stamped_and_logged_in_the_same_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data);
    let api = server.admin();
    let table = api.create_table("Clients").await;
    let name = api.create_field(table, "Name", "text", json!({})).await;
    let sum = api.create_field(table, "Sum", "money", json!({})).await;
    let doc = api.create_field(table, "Doc", "file", json!({})).await;

    // API: create, update, no-op update, delete, restore.
    let a = api
        .create_record(
            table,
            json!({ name.to_string(): "A", sum.to_string(): "1" }),
        )
        .await["id"]
        .as_i64()
        .unwrap();
    api.patch(
        &format!("/tables/{table}/records/{a}"),
        json!({ "values": { sum.to_string(): "2" } }),
    )
    .await;
    api.patch(
        &format!("/tables/{table}/records/{a}"),
        json!({ "values": { sum.to_string(): "2" } }),
    )
    .await;
    api.delete(&format!("/tables/{table}/records/{a}")).await;
    api.post(&format!("/tables/{table}/records/{a}/restore"), json!({}))
        .await;
    // File upload.
    let r = api
        .raw(
            Method::PUT,
            &format!("/tables/{table}/records/{a}/files/{doc}?name=a.txt"),
        )
        .body("content")
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    // CSV over the API, and the CLI writing into the same database from another process.
    let r = api
        .raw(Method::POST, &format!("/tables/{table}/import"))
        .body("Name,Sum\nB,3\nC,4\n")
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let file = dir.path().join("more.csv");
    std::fs::write(&file, "Name\nD\n").unwrap();
    let (ok, _, err) = cli(&[
        "import",
        "--data",
        data.to_str().unwrap(),
        "--table",
        "Clients",
        file.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    // And the API again after the CLI: the clock must have moved past the CLI's writes.
    api.patch(
        &format!("/tables/{table}/records/{a}"),
        json!({ "values": { name.to_string(): "A2" } }),
    )
    .await;

    let db = Connection::open(data.join("crmsync.db")).unwrap();
    let changes: Vec<(i64, i64, String, i64, String)> = db
        .prepare("SELECT seq, record_id, op, hlc, fields FROM changes ORDER BY seq")
        .unwrap()
        .query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let ops: Vec<&str> = changes.iter().map(|c| c.2.as_str()).collect();
    // create, update, (no-op: nothing), delete, restore, file, import ×2, cli import, update
    assert_eq!(
        ops,
        [
            "create", "update", "delete", "restore", "update", "create", "create", "create",
            "update"
        ]
    );
    let hlcs: Vec<i64> = changes.iter().map(|c| c.3).collect();
    assert!(
        hlcs.windows(2).all(|w| w[0] < w[1]),
        "clock times rise across processes: {hlcs:?}"
    );
    let last_hlc: i64 = db
        .query_row("SELECT value FROM meta WHERE key = 'last_hlc'", [], |r| {
            r.get::<_, String>(0)
        })
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(last_hlc, *hlcs.last().unwrap());

    // Every stored value's stamp is the time of the change-log entry that wrote that field.
    let mut logged: HashMap<(i64, i64), i64> = HashMap::new();
    for (_, record, _, hlc, fields) in &changes {
        // A create lists its field numbers; an update maps each field to [old, new].
        let nos: Vec<i64> = match serde_json::from_str::<Value>(fields).unwrap() {
            Value::Array(created) => created.iter().map(|n| n.as_i64().unwrap()).collect(),
            Value::Object(updated) => updated.keys().map(|k| k.parse().unwrap()).collect(),
            other => panic!("unexpected change fields {other}"),
        };
        for no in nos {
            logged.insert((*record, no), *hlc);
        }
    }
    let mut checked = 0;
    // A value without a stamp of its own carries the record's creation stamp.
    let sql = format!(
        "SELECT id, f{name}, COALESCE(h{name}, base_hlc), f{sum}, COALESCE(h{sum}, base_hlc), f{doc}, COALESCE(h{doc}, base_hlc) FROM t{table}"
    );
    let mut stmt = db.prepare(&sql).unwrap();
    let mut rows = stmt.query([]).unwrap();
    while let Some(row) = rows.next().unwrap() {
        let id: i64 = row.get(0).unwrap();
        for (i, field) in [name, sum, doc].into_iter().enumerate() {
            let value: rusqlite::types::Value = row.get(1 + 2 * i).unwrap();
            let stamp: Option<i64> = row.get(2 + 2 * i).unwrap();
            if value != rusqlite::types::Value::Null {
                assert_eq!(
                    stamp,
                    logged.get(&(id, field)).copied(),
                    "record {id} field {field}"
                );
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 8, "A: name, sum, doc; B, C: name, sum; D: name");
}
