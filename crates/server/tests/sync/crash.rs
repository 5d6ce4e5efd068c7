//! kill -9 in the middle of a large exchange, on either side: after a restart the two
//! instances converge with nothing lost and nothing doubled.

use super::http::{SyncedPair, quiet, set_remote, synced_pair};
use crate::common::{Client, Server, eventually};
use reqwest::{Method, StatusCode};
use std::collections::HashSet;

const ROWS: usize = 6000;

async fn import_rows(api: &Client, table: i64, prefix: &str) {
    let mut csv = String::from("Name\n");
    for i in 0..ROWS {
        csv.push_str(&format!("{prefix} {i}\n"));
    }
    let response = api
        .raw(Method::POST, &format!("/tables/{table}/import"))
        .body(csv)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

/// (record count, distinct uids, distinct names) of a table.
async fn census(api: &Client, table: i64) -> (usize, usize, usize) {
    let (mut uids, mut names, mut count) = (HashSet::new(), HashSet::new(), 0);
    let mut after = String::new();
    loop {
        let (status, page) = api
            .get(&format!("/tables/{table}/records?limit=1000{after}"))
            .await;
        if status != StatusCode::OK {
            return (0, 0, 0);
        }
        for r in page["records"].as_array().unwrap() {
            count += 1;
            uids.insert(r["uid"].as_str().unwrap().to_string());
            names.insert(
                r["values"]
                    .as_object()
                    .unwrap()
                    .values()
                    .next()
                    .unwrap()
                    .to_string(),
            );
        }
        match page["next_after"].as_i64() {
            Some(n) => after = format!("&after={n}"),
            None => return (count, uids.len(), names.len()),
        }
    }
}

#[tokio::test]
async fn killing_either_side_mid_exchange_loses_and_doubles_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let SyncedPair {
        main,
        aux,
        main_table: m_table,
        aux_table: a_table,
        active,
        passive,
        ..
    } = synced_pair(dir.path(), &["Name"]).await;
    let (main_api, aux_api) = (main.admin(), aux.admin());
    let endpoint = main_api
        .ok(Method::GET, &format!("/syncs/{active}"), None)
        .await["remote_url"]
        .as_str()
        .unwrap()
        .to_string();

    // 1. The passive side dies while the active side pushes.
    set_remote(&main_api, active, "http://127.0.0.1:9").await;
    import_rows(&main_api, m_table, "main").await;
    set_remote(&main_api, active, &endpoint).await;
    eventually(60, "part of the rows on aux", || async {
        let (count, _, _) = census(&aux_api, a_table).await;
        (count > 0).then_some(())
    })
    .await;
    let aux_address = aux.address();
    let aux_data = aux.kill();
    let aux = Server::start_at(&aux_data, &aux_address);
    let aux_api = aux.admin();
    eventually(120, "every main row on aux", || async {
        (census(&aux_api, a_table).await.0 >= ROWS).then_some(())
    })
    .await;

    // 2. The active side dies while it pulls the passive side's rows.
    set_remote(&main_api, active, "http://127.0.0.1:9").await;
    import_rows(&aux_api, a_table, "aux").await;
    set_remote(&main_api, active, &endpoint).await;
    eventually(60, "part of the aux rows on main", || async {
        let (count, _, _) = census(&main_api, m_table).await;
        (count > ROWS).then_some(())
    })
    .await;
    let main_data = main.kill();
    let main = Server::start(&main_data);
    let main_api = main.admin();
    eventually(120, "every row on both sides", || async {
        let (mc, ac) = (
            census(&main_api, m_table).await.0,
            census(&aux_api, a_table).await.0,
        );
        (mc >= 2 * ROWS && ac >= 2 * ROWS).then_some(())
    })
    .await;
    quiet(&main_api, active, &aux_api, passive).await;
    for (side, api, table) in [("main", &main_api, m_table), ("aux", &aux_api, a_table)] {
        let (count, uids, names) = census(api, table).await;
        assert_eq!(
            (count, uids, names),
            (2 * ROWS, 2 * ROWS, 2 * ROWS),
            "{side}: nothing lost, nothing doubled"
        );
    }
}
