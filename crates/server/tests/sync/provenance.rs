//! Provenance (B-15): a value that came from a peer says, in the record's history, which
//! instance wrote it and when, the value it replaced (and who wrote that), the sync it
//! arrived through, and the rule that decided.

use super::http::{SyncedPair, synced_pair};
use crate::common::{Client, eventually};
use serde_json::json;

async fn instance_id(api: &Client) -> String {
    api.get("/health").await.1["instance_id"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn the_history_says_where_a_value_came_from_and_why_it_won() {
    let dir = tempfile::tempdir().unwrap();
    let SyncedPair {
        main,
        aux,
        main_table,
        aux_table,
        m,
        a,
        active,
        ..
    } = synced_pair(dir.path(), &["Name"]).await;
    let (main_api, aux_api) = (main.admin(), aux.admin());
    let (main_id, aux_id) = (instance_id(&main_api).await, instance_id(&aux_api).await);

    let record = main_api
        .create_record(main_table, json!({ m[0].to_string(): "ООО Ромашка" }))
        .await;
    let uid = record["uid"].as_str().unwrap().to_string();
    let copy = eventually(30, "the record on aux", || async {
        aux_api
            .get(&format!("/tables/{aux_table}/records/uid/{uid}"))
            .await
            .1["id"]
            .as_i64()
    })
    .await;
    aux_api
        .patch(
            &format!("/tables/{aux_table}/records/{copy}"),
            json!({ "values": { a[0].to_string(): "ООО Ромашка-Плюс" } }),
        )
        .await;
    let entry = eventually(30, "aux's edit in main's history", || async {
        let (_, history) = main_api
            .get(&format!(
                "/tables/{main_table}/records/{}/history",
                record["id"]
            ))
            .await;
        history["history"]
            .as_array()?
            .iter()
            .find(|h| h["fields"][0]["new"] == "ООО Ромашка-Плюс")
            .cloned()
    })
    .await;
    assert_eq!(entry["origin"], format!("sync:{active}"), "{entry}");
    let why = &entry["fields"][0]["provenance"];
    assert_eq!(why["written_by"], aux_id.as_str(), "{entry}");
    assert_eq!(why["rule"], "newer write wins");
    assert_eq!(why["replaced"]["written_by"], main_id.as_str(), "{entry}");
    // Both times are there; the two writes may fall in one millisecond (the clock's
    // logical part orders them), so their printed times are not compared.
    assert!(
        why["written_at"]
            .as_str()
            .is_some_and(|t| t.starts_with("20")),
        "{why}"
    );
    assert!(
        why["replaced"]["written_at"]
            .as_str()
            .is_some_and(|t| t.starts_with("20")),
        "{why}"
    );
    // Values written here carry no such note: the history's user says who.
    let (_, history) = aux_api
        .get(&format!("/tables/{aux_table}/records/{copy}/history"))
        .await;
    let local = history["history"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["origin"] == "api")
        .unwrap();
    assert!(local["fields"][0].get("provenance").is_none(), "{local}");
}
