//! "Время добавления" travels: a synced copy keeps the original's created time, whether it
//! came with an ordinary exchange or with an initial sync of records that existed before.

use super::http::{add_field, clients, pair, quiet};
use super::initial::run_job;
use crate::common::{Client, Server, eventually};
use reqwest::Method;
use serde_json::{Value, json};

/// A table's records by uid: (uid, created_at).
async fn created_times(api: &Client, table: i64) -> Vec<(String, String)> {
    let page = api
        .ok(
            Method::GET,
            &format!("/tables/{table}/records?limit=1000"),
            None,
        )
        .await;
    let mut times: Vec<(String, String)> = page["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["uid"].as_str().unwrap().to_string(),
                r["created_at"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    times.sort();
    times
}

fn created_at(record: &Value) -> String {
    record["created_at"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn a_synced_copy_keeps_the_originals_created_time_both_ways_and_at_an_initial_sync() {
    let dir = tempfile::tempdir().unwrap();
    let main = Server::start(&dir.path().join("main"));
    // The auxiliary machine's clock runs a minute fast: a copy stamped with its own "now"
    // could never carry the original's time by chance.
    let aux = Server::start_with_clock_offset(&dir.path().join("aux"), 60_000);
    let (main_api, aux_api) = (main.admin(), aux.admin());
    let (main_table, m) = clients(&main_api, &["Name"]).await;
    let (aux_table, a) = clients(&aux_api, &["Name"]).await;
    // Records from before the sync existed come with the initial sync.
    let old = main_api
        .create_record(main_table, json!({ m[0].to_string(): "from before" }))
        .await;
    let (active, passive) = pair(&main_api, &aux_api, "123456").await;
    add_field(&main_api, active, m[0], "both", None).await;
    add_field(&aux_api, passive, a[0], "both", Some(m[0])).await;
    quiet(&main_api, active, &aux_api, passive).await;

    let on_main = main_api
        .create_record(main_table, json!({ m[0].to_string(): "made on main" }))
        .await;
    let on_aux = aux_api
        .create_record(aux_table, json!({ a[0].to_string(): "made on aux" }))
        .await;
    let expected = {
        let mut e = vec![
            (
                on_main["uid"].as_str().unwrap().to_string(),
                created_at(&on_main),
            ),
            (
                on_aux["uid"].as_str().unwrap().to_string(),
                created_at(&on_aux),
            ),
        ];
        e.sort();
        e
    };
    eventually(30, "both new records on both sides", || async {
        let on_aux_side = created_times(&aux_api, aux_table).await;
        let on_main_side = created_times(&main_api, main_table).await;
        (on_aux_side.len() == 2 && on_main_side.len() == 3).then_some(())
    })
    .await;
    let main_side = created_times(&main_api, main_table).await;
    let aux_side = created_times(&aux_api, aux_table).await;
    assert_eq!(aux_side, expected, "aux's copy keeps main's created_at");
    for pair in &expected {
        assert!(
            main_side.contains(pair),
            "main's copy keeps aux's created_at: {pair:?} in {main_side:?}"
        );
    }

    run_job(&main_api, &format!("/syncs/{active}/initial")).await;
    let old_uid = old["uid"].as_str().unwrap().to_string();
    let copy = eventually(30, "the older record on aux", || async {
        created_times(&aux_api, aux_table)
            .await
            .into_iter()
            .find(|(uid, _)| *uid == old_uid)
    })
    .await;
    assert_eq!(
        copy.1,
        created_at(&old),
        "an initial sync's copy keeps the original's created_at"
    );
}
