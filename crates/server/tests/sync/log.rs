//! The sync log (S-31): with the log on, each record sent and received is listed, one entry
//! a packet; conflicts, holds and failures (wrong passwords, an unreachable peer, rejected
//! packet files) are logged with the log off too; old entries go after the instance's
//! retention.

use super::http::{add_field, clients, pair, quiet, set_remote, synced_pair};
use crate::common::{ADMIN_PASSWORD, Client, Server, clock_moves_on, eventually};
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn entries(api: &Client, sync: i64) -> Vec<Value> {
    let (_, log) = api.get(&format!("/syncs/{sync}/log?limit=1000")).await;
    log["entries"].as_array().unwrap().clone()
}

#[tokio::test]
async fn with_the_log_on_each_record_sent_and_received_is_listed() {
    let dir = tempfile::tempdir().unwrap();
    let pair = synced_pair(dir.path(), &["Name"]).await;
    let (main, aux) = (pair.main.admin(), pair.aux.admin());
    let (_, m) = (&pair.main_table, &pair.m);
    let mut uids = Vec::new();
    // Sent in one go: the line is down while they are created.
    let endpoint = format!("{}/sync/v1/{}", pair.aux.url, pair.passive);
    set_remote(&main, pair.active, "http://127.0.0.1:9/sync/v1/1").await;
    for name in ["Ромашка", "Лютик", "Василёк"] {
        let record = main
            .create_record(pair.main_table, json!({ m[0].to_string(): name }))
            .await;
        uids.push(record["uid"].as_str().unwrap().to_string());
    }
    set_remote(&main, pair.active, &endpoint).await;
    quiet(&main, pair.active, &aux, pair.passive).await;

    let listed = |entries: &[Value], kind: &str| -> Vec<String> {
        entries
            .iter()
            .filter(|e| e["kind"] == kind)
            .flat_map(|e| {
                e["detail"]["records"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
            })
            .map(|r| r["uid"].as_str().unwrap().to_string())
            .collect()
    };
    let sent = entries(&main, pair.active).await;
    let mut sent_uids = listed(&sent, "sent");
    sent_uids.sort();
    let mut wanted = uids.clone();
    wanted.sort();
    assert_eq!(sent_uids, wanted, "{sent:?}");
    assert_eq!(
        sent.iter().filter(|e| e["kind"] == "sent").count(),
        1,
        "one entry for the packet: {sent:?}"
    );
    let received = entries(&aux, pair.passive).await;
    let mut received_uids = listed(&received, "received");
    received_uids.sort();
    assert_eq!(received_uids, wanted, "{received:?}");
    let record = received
        .iter()
        .find(|e| e["kind"] == "received")
        .map(|e| e["detail"]["records"][0].clone())
        .unwrap();
    assert_eq!(record["created"], true, "{record}");
    // The log page lists them, each a link to the record here.
    let html = pair
        .aux
        .web_page(&format!("/syncs/{}/log", pair.passive), "en")
        .await;
    let link = format!(
        "/tables/{}/records/{}",
        pair.aux_table,
        record["record_id"].as_i64().unwrap()
    );
    assert!(html.contains(&link), "{html}");
}

#[tokio::test]
async fn with_the_log_off_conflicts_and_holds_are_still_logged() {
    let dir = tempfile::tempdir().unwrap();
    let main = Server::start(&dir.path().join("main"));
    let aux = Server::start(&dir.path().join("aux"));
    let (main_api, aux_api) = (main.admin(), aux.admin());
    let (main_table, m) = clients(&main_api, &["Name"]).await;
    let (aux_table, a) = clients(&aux_api, &["Name"]).await;
    let m_stage = main_api
        .create_field(main_table, "Stage", "text", json!({}))
        .await;
    let a_stage = aux_api
        .create_field(aux_table, "Stage", "select", json!({ "choices": ["new"] }))
        .await;
    let (active, passive) = pair(&main_api, &aux_api, "123456").await;
    for (api, sync) in [(&main_api, active), (&aux_api, passive)] {
        let (code, body) = api
            .patch(&format!("/syncs/{sync}"), json!({ "log": false }))
            .await;
        assert_eq!(code, StatusCode::OK, "{body}");
    }
    add_field(&main_api, active, m[0], "both", None).await;
    add_field(&main_api, active, m_stage, "both", None).await;
    add_field(&aux_api, passive, a[0], "both", Some(m[0])).await;
    add_field(&aux_api, passive, a_stage, "both", Some(m_stage)).await;
    let record = main_api
        .create_record(
            main_table,
            json!({ m[0].to_string(): "Ромашка", m_stage.to_string(): "shipped" }),
        )
        .await;
    // The value aux's select does not offer is held, and the hold is in the log.
    eventually(30, "the hold logged", || async {
        entries(&aux_api, passive)
            .await
            .iter()
            .any(|e| e["kind"] == "held")
            .then_some(())
    })
    .await;

    // Both offices edit the name while the line is down: a conflict, logged.
    let aux_id = aux_api.all_ids(aux_table, "active").await[0];
    let endpoint = format!("{}/sync/v1/{passive}", aux.url);
    set_remote(&main_api, active, "http://127.0.0.1:9/sync/v1/1").await;
    main_api
        .patch(
            &format!("/tables/{main_table}/records/{}", record["id"]),
            json!({ "values": { m[0].to_string(): "Ромашка (main)" } }),
        )
        .await;
    // Aux's edit later on the clock: the two edits are told apart by their stamps.
    clock_moves_on().await;
    aux_api
        .patch(
            &format!("/tables/{aux_table}/records/{aux_id}"),
            json!({ "values": { a[0].to_string(): "Ромашка (aux)" } }),
        )
        .await;
    set_remote(&main_api, active, &endpoint).await;
    eventually(30, "the conflict logged", || async {
        entries(&aux_api, passive)
            .await
            .iter()
            .any(|e| e["kind"] == "conflict")
            .then_some(())
    })
    .await;
    let logged = entries(&aux_api, passive).await;
    assert!(
        !logged
            .iter()
            .any(|e| e["kind"] == "received" || e["kind"] == "sent"),
        "with the log off, ordinary traffic is not listed: {logged:?}"
    );
}

#[tokio::test]
async fn entries_older_than_the_retention_are_removed() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("main");
    let main = Server::start(&data);
    let (code, body) = main
        .admin()
        .post(
            "/syncs",
            json!({ "name": "branch", "mode": "passive", "password": "123456", "log": true }),
        )
        .await;
    assert_eq!(code, StatusCode::CREATED, "{body}");
    let sync = body["id"].as_i64().unwrap();
    let data = main.kill();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    for (at, message) in [(now - 3 * 86_400_000, "three days old"), (now, "fresh")] {
        let sql = format!(
            "INSERT INTO sync_log (sync_id, at, kind, message) VALUES ({sync}, {at}, 'error', '{message}')"
        );
        assert_eq!(crate::common::edit_database(&data, &sql), 1);
    }
    let main = Server::start_with(
        &data,
        &["--admin-password", ADMIN_PASSWORD, "--log-keep-days", "2"],
        &[],
    );
    let api = main.admin();
    let left = eventually(30, "the old entry removed", || async {
        let left = entries(&api, sync).await;
        (!left.iter().any(|e| e["message"] == "three days old")).then_some(left)
    })
    .await;
    assert!(left.iter().any(|e| e["message"] == "fresh"), "{left:?}");
    // A retention of 0 days is refused at start.
    let (ok, _, err) = crate::common::cli(&[
        "serve",
        "--data",
        data.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
        "--log-keep-days",
        "0",
    ]);
    assert!(!ok && err.contains("log-keep-days"), "{err}");
}

async fn log_off(api: &Client, sync: i64) {
    let (code, body) = api
        .patch(&format!("/syncs/{sync}"), json!({ "log": false }))
        .await;
    assert_eq!(code, StatusCode::OK, "{body}");
}

/// Waits for an entry of `kind` whose message mentions `words`.
async fn logged(api: &Client, sync: i64, kind: &str, words: &str) -> Value {
    eventually(30, &format!("a {kind} entry with \"{words}\""), || async {
        entries(api, sync)
            .await
            .into_iter()
            .find(|e| e["kind"] == kind && e["message"].as_str().is_some_and(|m| m.contains(words)))
    })
    .await
}

#[tokio::test]
async fn with_the_log_off_a_wrong_password_and_an_unreachable_peer_are_still_logged() {
    let dir = tempfile::tempdir().unwrap();
    let pair = synced_pair(dir.path(), &["Name"]).await;
    let (main, aux) = (pair.main.admin(), pair.aux.admin());
    log_off(&main, pair.active).await;
    log_off(&aux, pair.passive).await;

    // A wrong password: refused, and logged on both sides.
    let (code, body) = main
        .patch(
            &format!("/syncs/{}", pair.active),
            json!({ "password": "654321" }),
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{body}");
    logged(&main, pair.active, "auth", "wrong password").await;
    logged(&aux, pair.passive, "auth", "used another password").await;

    // An unreachable peer: logged on the side that cannot reach it.
    set_remote(&main, pair.active, "http://127.0.0.1:9/sync/v1/1").await;
    logged(&main, pair.active, "error", "cannot reach the passive side").await;
}

#[tokio::test]
async fn with_the_log_off_a_rejected_packet_file_is_still_logged() {
    let dir = tempfile::tempdir().unwrap();
    let (up, down) = (dir.path().join("up"), dir.path().join("down"));
    let server = Server::start(&dir.path().join("aux"));
    let api = server.admin();
    let (_, fields) = clients(&api, &["Name"]).await;
    let sync = super::folders::local_sync(&api, "passive", &up, &down).await;
    log_off(&api, sync).await;
    add_field(&api, sync, fields[0], "both", Some(fields[0])).await;
    std::fs::create_dir_all(&down).unwrap();
    std::fs::write(
        down.join("00000000000000000000-00000000000000000005-0000000000001.cspk"),
        b"not a packet at all",
    )
    .unwrap();
    logged(&api, sync, "error", "cspk").await;
}
