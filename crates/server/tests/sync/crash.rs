//! kill -9 in the middle of a large exchange, on either side: the kill lands while the
//! receiving side is short of the rows (a relay holds a later packet), and after a
//! restart the exchange resumes with the rows still missing — nothing lost, nothing
//! doubled, nothing sent again.

use super::faults::{Action, Fault, Relay, endpoint, last_log_id, log_after, records_listed};
use super::http::{SyncedPair, quiet, set_remote, synced_pair};
use crate::common::{Client, Server, eventually};
use reqwest::{Method, StatusCode};
use std::collections::HashSet;

/// Three packets' worth (5,000 rows a packet).
pub const ROWS: usize = 12_000;

pub async fn import_rows(api: &Client, table: i64, prefix: &str) {
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
pub async fn census(api: &Client, table: i64) -> (usize, usize, usize) {
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

/// Points the active side at the passive side through a relay that holds the request
/// matching `request` that comes after `skip` others, once the runners that knew the old
/// address are gone (the new ones greet through the relay).
async fn through_a_relay_holding(
    main_api: &Client,
    active: i64,
    passive_side: &Server,
    passive: i64,
    request: &str,
    skip: usize,
) -> Relay {
    let relay = Relay::start(&passive_side.address()).await;
    relay.arm(Fault {
        skip,
        ..Fault::new(request, Action::Hold)
    });
    set_remote(main_api, active, &relay.endpoint(passive_side, passive)).await;
    eventually(30, "the active side greeting through the relay", || async {
        (!relay.requests().is_empty()).then_some(())
    })
    .await;
    relay
}

#[tokio::test]
async fn killing_either_side_mid_exchange_resumes_with_only_the_missing_rows() {
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

    // 1. The passive side dies while the active side pushes: a packet applied, a later
    //    one held in the relay. Two pushes are on their way at once and either may arrive
    //    first (the one that follows waits for the other): the third to arrive is held.
    let relay = through_a_relay_holding(&main_api, active, &aux, passive, "/push ", 2).await;
    import_rows(&main_api, m_table, "main").await;
    eventually(60, "the second pushed packet held", || async {
        (relay.held() == 1).then_some(())
    })
    .await;
    let on_aux = census(&aux_api, a_table).await.0;
    assert!(
        0 < on_aux && on_aux < ROWS,
        "killed mid-exchange: {on_aux} of {ROWS} rows on aux"
    );
    let logged = last_log_id(&main_api, active).await;
    let aux_data = aux.kill();
    drop(relay);
    // On a new port: the old one may be taken meanwhile.
    let aux = Server::start(&aux_data);
    let aux_api = aux.admin();
    set_remote(&main_api, active, &endpoint(&aux, passive)).await;
    eventually(120, "every main row on aux", || async {
        (census(&aux_api, a_table).await.0 >= ROWS).then_some(())
    })
    .await;
    quiet(&main_api, active, &aux_api, passive).await;
    assert_eq!(
        records_listed(&log_after(&main_api, active, logged).await, "sent"),
        ROWS - on_aux,
        "after the restart main sent only the rows aux lacked"
    );

    // 2. The active side dies while it pulls: the first packet applied, the request for
    //    the second (carrying the first's acknowledgement) held in the relay.
    set_remote(&main_api, active, "http://127.0.0.1:9/sync/v1/1").await;
    eventually(30, "main failing to reach the old address", || async {
        let (_, status) = main_api.get(&format!("/syncs/{active}/status")).await;
        status["reason"]
            .as_str()?
            .contains("127.0.0.1:9")
            .then_some(())
    })
    .await;
    import_rows(&aux_api, a_table, "aux").await;
    let relay = through_a_relay_holding(&main_api, active, &aux, passive, "/pull ", 1).await;
    eventually(60, "the second pull held", || async {
        (relay.held() == 1).then_some(())
    })
    .await;
    let on_main = census(&main_api, m_table).await.0;
    assert!(
        ROWS < on_main && on_main < 2 * ROWS,
        "killed mid-exchange: {} of {ROWS} aux rows on main",
        on_main.saturating_sub(ROWS)
    );
    let logged = last_log_id(&aux_api, passive).await;
    let main_data = main.kill();
    drop(relay);
    let main = Server::start(&main_data);
    let main_api = main.admin();
    set_remote(&main_api, active, &endpoint(&aux, passive)).await;
    eventually(120, "every row on both sides", || async {
        let (mc, ac) = (
            census(&main_api, m_table).await.0,
            census(&aux_api, a_table).await.0,
        );
        (mc >= 2 * ROWS && ac >= 2 * ROWS).then_some(())
    })
    .await;
    quiet(&main_api, active, &aux_api, passive).await;
    assert_eq!(
        records_listed(&log_after(&aux_api, passive, logged).await, "sent"),
        2 * ROWS - on_main,
        "after the restart aux sent only the rows main lacked"
    );
    for (side, api, table) in [("main", &main_api, m_table), ("aux", &aux_api, a_table)] {
        let (count, uids, names) = census(api, table).await;
        assert_eq!(
            (count, uids, names),
            (2 * ROWS, 2 * ROWS, 2 * ROWS),
            "{side}: nothing lost, nothing doubled"
        );
    }
}
