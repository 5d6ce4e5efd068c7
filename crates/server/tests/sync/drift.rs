//! Drift check and repair (B-16): a value edited in one instance's database behind its
//! back keeps its stamp, so ordinary merging would never heal it; the active side's drift
//! check finds it and the repair puts the active side's value back on the other side.
//! Records only one side has are listed as such and the repair brings them across.

use super::http::{SyncedPair, synced_pair};
use crate::common::eventually;
use reqwest::StatusCode;
use serde_json::json;

/// Behind the instance's back: one value edited in its database while it runs.
fn tamper(data: &std::path::Path, table: i64, field: i64, record: i64) {
    let sql = format!("UPDATE t{table} SET f{field} = 'tampered' WHERE id = {record}");
    assert_eq!(crate::common::edit_database(data, &sql), 1);
}

#[tokio::test]
async fn a_value_edited_in_the_database_file_is_found_and_repaired() {
    let dir = tempfile::tempdir().unwrap();
    let SyncedPair {
        main,
        aux,
        main_table,
        aux_table,
        m,
        a,
        active,
        passive,
    } = synced_pair(dir.path(), &["Name", "Phone"]).await;
    let (main_api, aux_api) = (main.admin(), aux.admin());
    for i in 0..5 {
        main_api
            .create_record(main_table, json!({ m[0].to_string(): format!("client {i}"), m[1].to_string(): format!("+7 {i}") }))
            .await;
    }
    eventually(30, "five clients on aux", || async {
        (aux_api.all_ids(aux_table, "active").await.len() == 5).then_some(())
    })
    .await;
    let drift = |api: &crate::common::Client| {
        let api = api.clone();
        async move { api.get(&format!("/syncs/{active}/drift")).await }
    };
    let (status, found) = drift(&main_api).await;
    assert_eq!(status, StatusCode::OK, "{found}");
    assert_eq!(
        found,
        json!({ "differ": [], "only_here": [], "only_there": [], "records": [] })
    );

    // Behind aux's back: its database file edited directly while it runs.
    let target = aux_api.all_ids(aux_table, "active").await[2];
    let (_, record) = aux_api
        .get(&format!("/tables/{aux_table}/records/{target}"))
        .await;
    tamper(&dir.path().join("aux"), aux_table, a[1], target);

    let (_, found) = drift(&main_api).await;
    assert_eq!(found["differ"], json!([record["uid"]]), "{found}");
    // Only the active side runs it.
    let (status, _) = aux_api.get(&format!("/syncs/{passive}/drift")).await;
    assert_eq!(status, StatusCode::CONFLICT);

    // The sync's page in the browser shows the same.
    let html = main.web_page(&format!("/syncs/{active}/drift"), "en").await;
    assert!(
        html.contains("Records that differ") && html.contains(record["uid"].as_str().unwrap()),
        "{html}"
    );

    let (status, repaired) = main_api
        .post(&format!("/syncs/{active}/drift/repair"), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{repaired}");
    assert_eq!(repaired["restamped"], 1);
    eventually(30, "aux's value repaired", || async {
        let (_, r) = aux_api
            .get(&format!("/tables/{aux_table}/records/{target}"))
            .await;
        (r["values"][a[1].to_string()] == record["values"][a[1].to_string()]).then_some(())
    })
    .await;
    let (_, found) = drift(&main_api).await;
    assert_eq!(
        found,
        json!({ "differ": [], "only_here": [], "only_there": [], "records": [] })
    );
    // The repair is in main's history as such.
    let (_, main_copy) = main_api
        .get(&format!(
            "/tables/{main_table}/records/uid/{}",
            record["uid"].as_str().unwrap()
        ))
        .await;
    let (_, history) = main_api
        .get(&format!(
            "/tables/{main_table}/records/{}/history",
            main_copy["id"]
        ))
        .await;
    assert!(
        history["history"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h["origin"] == "repair"),
        "{history}"
    );
}

/// Over local folders the drift check's request and answer travel in packets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_folder_sync_finds_and_repairs_drift_too() {
    use super::folders::link_by_folders;
    use super::http::clients;
    use crate::common::Server;
    let dir = tempfile::tempdir().unwrap();
    let main = Server::start(&dir.path().join("main"));
    let aux = Server::start(&dir.path().join("aux"));
    let (main_api, aux_api) = (main.admin(), aux.admin());
    let (main_table, m) = clients(&main_api, &["Name", "Phone"]).await;
    let (aux_table, a) = clients(&aux_api, &["Name", "Phone"]).await;
    let pairs: Vec<(i64, i64)> = m.iter().copied().zip(a.iter().copied()).collect();
    let (active, _) = link_by_folders(dir.path(), &main_api, &aux_api, &pairs).await;
    for i in 0..4 {
        main_api
            .create_record(main_table, json!({ m[0].to_string(): format!("client {i}"), m[1].to_string(): format!("+7 {i}") }))
            .await;
    }
    eventually(30, "four clients on aux", || async {
        (aux_api.all_ids(aux_table, "active").await.len() == 4).then_some(())
    })
    .await;
    let (status, found) = main_api.get(&format!("/syncs/{active}/drift")).await;
    assert_eq!(status, StatusCode::OK, "{found}");
    assert_eq!(
        found,
        json!({ "differ": [], "only_here": [], "only_there": [], "records": [] })
    );

    let target = aux_api.all_ids(aux_table, "active").await[1];
    let (_, record) = aux_api
        .get(&format!("/tables/{aux_table}/records/{target}"))
        .await;
    tamper(&dir.path().join("aux"), aux_table, a[0], target);

    let (status, found) = main_api.get(&format!("/syncs/{active}/drift")).await;
    assert_eq!(status, StatusCode::OK, "{found}");
    assert_eq!(found["differ"], json!([record["uid"]]), "{found}");
    let (status, repaired) = main_api
        .post(&format!("/syncs/{active}/drift/repair"), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{repaired}");
    assert_eq!(repaired["restamped"], 1, "{repaired}");
    eventually(30, "aux's value repaired through the folders", || async {
        let (_, r) = aux_api
            .get(&format!("/tables/{aux_table}/records/{target}"))
            .await;
        (r["values"][a[0].to_string()] == record["values"][a[0].to_string()]
            && r["values"][a[0].to_string()] != "tampered")
            .then_some(())
    })
    .await;
    let (_, found) = main_api.get(&format!("/syncs/{active}/drift")).await;
    assert_eq!(
        found,
        json!({ "differ": [], "only_here": [], "only_there": [], "records": [] })
    );
}

/// Only what the directions say should be equal is compared: a field `off` on one side, a
/// field sent by neither side, and a one-way field its sender never filled are not drift;
/// a tampered value of a field that flows is, named by the record's label.
async fn only_fields_that_flow_are_compared(over_folders: bool) {
    use super::folders::local_sync;
    use super::http::{add_field, clients, pair, quiet};
    use crate::common::Server;
    let dir = tempfile::tempdir().unwrap();
    let main = Server::start(&dir.path().join("main"));
    let aux = Server::start(&dir.path().join("aux"));
    let (main_api, aux_api) = (main.admin(), aux.admin());
    let fields = ["Name", "Phone", "Notes", "City", "Status"];
    let (main_table, m) = clients(&main_api, &fields).await;
    let (aux_table, a) = clients(&aux_api, &fields).await;
    let (active, passive) = match over_folders {
        false => pair(&main_api, &aux_api, "123456").await,
        true => {
            let (up, down) = (dir.path().join("up"), dir.path().join("down"));
            (
                local_sync(&main_api, "active", &up, &down).await,
                local_sync(&aux_api, "passive", &down, &up).await,
            )
        }
    };
    let directions = [
        ("both", "both"),       // Name
        ("upload", "download"), // Phone: aux should equal main
        ("both", "off"),        // Notes: off on aux
        ("upload", "upload"),   // City: flows neither way
        ("download", "upload"), // Status: aux's, which aux never fills
    ];
    for (i, (main_direction, aux_direction)) in directions.iter().enumerate() {
        add_field(&main_api, active, m[i], main_direction, None).await;
        add_field(&aux_api, passive, a[i], aux_direction, Some(m[i])).await;
    }
    for i in 0..4 {
        main_api
            .create_record(
                main_table,
                json!({ m[0].to_string(): format!("client {i}"), m[1].to_string(): format!("+7 {i}"),
                        m[2].to_string(): "main's notes", m[3].to_string(): "Omsk",
                        m[4].to_string(): "new" }),
            )
            .await;
    }
    eventually(30, "four clients on aux", || async {
        (aux_api.all_ids(aux_table, "active").await.len() == 4).then_some(())
    })
    .await;
    // On aux, what does not travel differs by design.
    let first = aux_api.all_ids(aux_table, "active").await[0];
    let (status, body) = aux_api
        .patch(
            &format!("/tables/{aux_table}/records/{first}"),
            json!({ "values": { a[2].to_string(): "aux's notes", a[3].to_string(): "Tomsk" } }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    quiet(&main_api, active, &aux_api, passive).await;

    let (status, found) = main_api.get(&format!("/syncs/{active}/drift")).await;
    assert_eq!(status, StatusCode::OK, "{found}");
    assert_eq!(
        found,
        json!({ "differ": [], "only_here": [], "only_there": [], "records": [] })
    );

    // A value of the flowing field edited behind aux's back is drift, named by its label.
    let target = aux_api.all_ids(aux_table, "active").await[2];
    let (_, record) = aux_api
        .get(&format!("/tables/{aux_table}/records/{target}"))
        .await;
    let uid = record["uid"].as_str().unwrap().to_string();
    let label = record["values"][a[0].to_string()]
        .as_str()
        .unwrap()
        .to_string();
    tamper(&dir.path().join("aux"), aux_table, a[1], target);
    let (_, main_copy) = main_api
        .get(&format!("/tables/{main_table}/records/uid/{uid}"))
        .await;
    let (_, found) = main_api.get(&format!("/syncs/{active}/drift")).await;
    assert_eq!(found["differ"], json!([uid]), "{found}");
    assert_eq!(
        found["records"],
        json!([{ "uid": uid, "label": label, "table_id": main_table, "record_id": main_copy["id"] }]),
        "{found}"
    );
    let html = main.web_page(&format!("/syncs/{active}/drift"), "en").await;
    assert!(
        html.contains("Records that differ") && html.contains(&label),
        "the drift page names the record: {html}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_fields_that_flow_are_compared_and_records_are_named_by_their_label() {
    only_fields_that_flow_are_compared(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_folders_too_only_fields_that_flow_are_compared() {
    only_fields_that_flow_are_compared(true).await;
}

/// Records each side had before the sync was set up never travel by themselves: the drift
/// check lists them as only here and only there, and the repair brings each to the other.
async fn records_on_one_side_only_are_listed_and_repaired(over_folders: bool) {
    use super::folders::link_by_folders;
    use super::http::{add_field, clients, pair, quiet};
    use crate::common::Server;
    let dir = tempfile::tempdir().unwrap();
    let main = Server::start(&dir.path().join("main"));
    let aux = Server::start(&dir.path().join("aux"));
    let (main_api, aux_api) = (main.admin(), aux.admin());
    let (main_table, m) = clients(&main_api, &["Name"]).await;
    let (aux_table, a) = clients(&aux_api, &["Name"]).await;
    let mains = main_api
        .create_record(main_table, json!({ m[0].to_string(): "main's own" }))
        .await;
    let auxs = aux_api
        .create_record(aux_table, json!({ a[0].to_string(): "aux's own" }))
        .await;
    let (active, passive) = match over_folders {
        false => {
            let (active, passive) = pair(&main_api, &aux_api, "123456").await;
            add_field(&main_api, active, m[0], "both", None).await;
            add_field(&aux_api, passive, a[0], "both", Some(m[0])).await;
            (active, passive)
        }
        true => link_by_folders(dir.path(), &main_api, &aux_api, &[(m[0], a[0])]).await,
    };
    // One record both have, for contrast: it is in neither list.
    main_api
        .create_record(main_table, json!({ m[0].to_string(): "shared" }))
        .await;
    eventually(30, "the shared record on aux", || async {
        (aux_api.all_ids(aux_table, "active").await.len() == 2).then_some(())
    })
    .await;
    quiet(&main_api, active, &aux_api, passive).await;

    let (status, found) = main_api.get(&format!("/syncs/{active}/drift")).await;
    assert_eq!(status, StatusCode::OK, "{found}");
    let (main_uid, aux_uid) = (mains["uid"].clone(), auxs["uid"].clone());
    assert_eq!(
        (&found["differ"], &found["only_here"], &found["only_there"]),
        (&json!([]), &json!([main_uid]), &json!([aux_uid])),
        "{found}"
    );
    // This side's by its label; the other side's, which it cannot look at, by its uid.
    let named = found["records"].as_array().unwrap();
    assert!(
        named.contains(&json!({ "uid": main_uid, "label": "main's own", "table_id": main_table, "record_id": mains["id"] })),
        "{found}"
    );
    assert!(
        named
            .iter()
            .any(|r| r["uid"] == aux_uid && r["label"] == aux_uid),
        "{found}"
    );

    // Repairing is for admins.
    let (status, body) = main_api
        .post(
            "/users",
            json!({ "login": "clerk", "full_name": "Clerk", "password": "clerk-secret-1", "role": "user" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, _) = main
        .as_user("clerk", "clerk-secret-1")
        .post(&format!("/syncs/{active}/drift/repair"), json!({}))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, repaired) = main_api
        .post(&format!("/syncs/{active}/drift/repair"), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{repaired}");
    for (api, table, field) in [(&main_api, main_table, m[0]), (&aux_api, aux_table, a[0])] {
        eventually(60, "each side's own record on the other", || async {
            let (_, page) = api.get(&format!("/tables/{table}/records")).await;
            let mut names: Vec<String> = page["records"]
                .as_array()?
                .iter()
                .filter_map(|r| r["values"][field.to_string()].as_str().map(str::to_string))
                .collect();
            names.sort();
            (names == ["aux's own", "main's own", "shared"]).then_some(())
        })
        .await;
    }
    quiet(&main_api, active, &aux_api, passive).await;
    let (_, found) = main_api.get(&format!("/syncs/{active}/drift")).await;
    assert_eq!(
        found,
        json!({ "differ": [], "only_here": [], "only_there": [], "records": [] })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_on_one_side_only_are_listed_as_such_and_repaired() {
    records_on_one_side_only_are_listed_and_repaired(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_folders_records_on_one_side_only_are_listed_and_repaired_too() {
    records_on_one_side_only_are_listed_and_repaired(true).await;
}
