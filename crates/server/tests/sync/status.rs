//! What a sync's status says (S-13): green as soon as the other side is seen with the right
//! password, fields or not; red with the reason otherwise; rejected packet files turn the
//! rejecting side red; a recovered sync keeps no stale error; one misconfigured sync does
//! not slow down a good one from the same address.

use super::folders::local_sync;
use super::http::{add_field, clients, pair};
use crate::common::{Client, Server, eventually};
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn status(api: &Client, sync: i64) -> Value {
    api.get(&format!("/syncs/{sync}/status")).await.1
}

async fn active_sync(api: &Client, endpoint: &str, password: &str) -> i64 {
    let (code, body) = api
        .post(
            "/syncs",
            json!({ "name": "to main", "mode": "active", "remote_access": true, "remote_url": endpoint,
                    "password": password, "period_seconds": 1 }),
        )
        .await;
    assert_eq!(code, StatusCode::CREATED, "{body}");
    body["id"].as_i64().unwrap()
}

async fn passive_sync(api: &Client) -> String {
    let (code, body) = api
        .post(
            "/syncs",
            json!({ "name": "branch", "mode": "passive", "password": "123456" }),
        )
        .await;
    assert_eq!(code, StatusCode::CREATED, "{body}");
    body["endpoint_url"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn the_green_check_comes_with_the_right_password_before_any_field_is_chosen() {
    let dir = tempfile::tempdir().unwrap();
    let main = Server::start(&dir.path().join("main"));
    let aux = Server::start(&dir.path().join("aux"));
    let (main_api, aux_api) = (main.admin(), aux.admin());
    let endpoint = passive_sync(&aux_api).await;
    let other_endpoint = passive_sync(&aux_api).await;
    let right = active_sync(&main_api, &endpoint, "123456").await;
    let wrong = active_sync(&main_api, &other_endpoint, "654321").await;
    let unreachable = active_sync(&main_api, "http://127.0.0.1:9/sync/v1/1", "123456").await;

    let seen = eventually(30, "the green check", || async {
        let s = status(&main_api, right).await;
        (s["connected"] == true).then_some(s)
    })
    .await;
    assert!(
        seen["notice"]
            .as_str()
            .unwrap_or_default()
            .contains("no fields"),
        "a notice beside the green check: {seen}"
    );
    assert_eq!(seen["reason"], Value::Null, "{seen}");
    let refused = eventually(30, "the wrong password named", || async {
        let s = status(&main_api, wrong).await;
        s["reason"]
            .as_str()
            .is_some_and(|r| r.contains("wrong password"))
            .then_some(s)
    })
    .await;
    assert_eq!(refused["connected"], false, "{refused}");
    let away = eventually(30, "the unreachable peer named", || async {
        let s = status(&main_api, unreachable).await;
        s["reason"]
            .as_str()
            .is_some_and(|r| r.contains("cannot reach"))
            .then_some(s)
    })
    .await;
    assert_eq!(away["connected"], false, "{away}");

    // A stale error goes once the sync recovers.
    assert!(refused["last_error"].is_string(), "{refused}");
    let (code, body) = main_api
        .patch(&format!("/syncs/{wrong}"), json!({ "password": "123456" }))
        .await;
    assert_eq!(code, StatusCode::OK, "{body}");
    let recovered = eventually(30, "the recovered sync green", || async {
        let s = status(&main_api, wrong).await;
        (s["connected"] == true).then_some(s)
    })
    .await;
    assert_eq!(recovered["last_error"], Value::Null, "{recovered}");
    assert_eq!(recovered["reason"], Value::Null, "{recovered}");
}

#[tokio::test]
async fn folder_syncs_set_up_with_another_password_turn_red_and_deliver_once_it_is_fixed() {
    let dir = tempfile::tempdir().unwrap();
    let (up, down) = (dir.path().join("up"), dir.path().join("down"));
    let main = Server::start(&dir.path().join("main"));
    let aux = Server::start(&dir.path().join("aux"));
    let (main_api, aux_api) = (main.admin(), aux.admin());
    let (main_table, m) = clients(&main_api, &["Name"]).await;
    let (aux_table, a) = clients(&aux_api, &["Name"]).await;
    let active = local_sync(&main_api, "active", &up, &down).await;
    let passive = local_sync(&aux_api, "passive", &down, &up).await;
    let (code, body) = aux_api
        .patch(
            &format!("/syncs/{passive}"),
            json!({ "password": "999999" }),
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{body}");
    add_field(&main_api, active, m[0], "both", None).await;
    add_field(&aux_api, passive, a[0], "both", Some(m[0])).await;
    main_api
        .create_record(main_table, json!({ m[0].to_string(): "ООО Ромашка" }))
        .await;
    let red = eventually(30, "the rejecting side red", || async {
        let s = status(&aux_api, passive).await;
        (s["connected"] == false && s["rejected_packets"].as_u64().unwrap_or(0) >= 1).then_some(s)
    })
    .await;
    let reason = red["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("wrong password"), "{red}");
    // Whatever main wrote is sealed: nothing of the client is readable in the folder.
    for entry in std::fs::read_dir(&up).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        assert!(!String::from_utf8_lossy(&bytes).contains("Ромашка"));
    }

    // The passwords made the same: the next packet is taken and the status turns green.
    let (code, body) = aux_api
        .patch(
            &format!("/syncs/{passive}"),
            json!({ "password": "123456" }),
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{body}");
    main_api
        .create_record(main_table, json!({ m[0].to_string(): "ИП Петров" }))
        .await;
    let green = eventually(30, "green again", || async {
        let s = status(&aux_api, passive).await;
        (s["connected"] == true).then_some(s)
    })
    .await;
    assert_eq!(green["reason"], Value::Null, "{green}");
    // What waited for the pairing goes now, so nothing is lost.
    eventually(30, "both clients on aux", || async {
        let (_, page) = aux_api.get(&format!("/tables/{aux_table}/records")).await;
        let names: Vec<String> = page["records"]
            .as_array()?
            .iter()
            .filter_map(|r| r["values"][a[0].to_string()].as_str().map(str::to_string))
            .collect();
        (names.len() == 2 && names.iter().any(|n| n == "ООО Ромашка")).then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_misconfigured_sync_does_not_slow_down_a_good_one_from_the_same_address() {
    let dir = tempfile::tempdir().unwrap();
    let main = Server::start(&dir.path().join("main"));
    let good = Server::start(&dir.path().join("good"));
    let bad = Server::start(&dir.path().join("bad"));
    let (main_api, good_api, bad_api) = (main.admin(), good.admin(), bad.admin());
    let (main_table, m) = clients(&main_api, &["Name"]).await;
    let (good_table, g) = clients(&good_api, &["Name"]).await;
    let (good_sync, passive) = pair(&good_api, &main_api, "123456").await;
    add_field(&good_api, good_sync, g[0], "both", None).await;
    add_field(&main_api, passive, m[0], "both", Some(g[0])).await;
    let (_, shown) = good_api.get(&format!("/syncs/{good_sync}")).await;
    let endpoint = shown["remote_url"].as_str().unwrap().to_string();
    // Another instance on the same address calls the same passive sync with a wrong
    // password, every second.
    let bad_sync = active_sync(&bad_api, &endpoint, "000000").await;
    eventually(60, "the bad sync paused by the throttle", || async {
        let s = status(&bad_api, bad_sync).await;
        s["reason"]
            .as_str()
            .is_some_and(|r| r.contains("pausing"))
            .then_some(())
    })
    .await;
    for i in 0..3 {
        let name = format!("client {i}");
        good_api
            .create_record(good_table, json!({ g[0].to_string(): name }))
            .await;
        eventually(30, "the good sync's record on main", || async {
            let (_, page) = main_api
                .get(&format!("/tables/{main_table}/records?q={name}"))
                .await;
            (page["records"].as_array().is_some_and(|r| r.len() == 1)).then_some(())
        })
        .await;
        let s = status(&good_api, good_sync).await;
        assert_eq!(s["connected"], true, "{s}");
    }
}

#[tokio::test]
async fn a_short_password_is_accepted_with_a_notice_and_the_form_offers_a_generated_one() {
    let dir = tempfile::tempdir().unwrap();
    let main = Server::start(&dir.path().join("main"));
    let api = main.admin();
    let (_, short) = api
        .post(
            "/syncs",
            json!({ "name": "short", "mode": "passive", "password": "123456" }),
        )
        .await;
    let (_, long) = api
        .post(
            "/syncs",
            json!({ "name": "long", "mode": "passive", "password": "k7Qm2xVt9pRw4sZb8nHc" }),
        )
        .await;
    let (short, long) = (short["id"].as_i64().unwrap(), long["id"].as_i64().unwrap());
    let notice = status(&api, short).await["password_notice"].clone();
    assert!(
        notice.as_str().is_some_and(|n| n.contains("one guess")),
        "{notice}"
    );
    assert_eq!(status(&api, long).await["password_notice"], Value::Null);
    let page = main.web_page(&format!("/syncs/{short}"), "en").await;
    assert!(page.contains(r#"id="weak-password""#), "{page}");
    let page = main.web_page(&format!("/syncs/{long}"), "ru").await;
    assert!(!page.contains(r#"id="weak-password""#), "{page}");
    let form = main.web_page("/syncs/new", "ru").await;
    assert!(form.contains(r#"id="generate-password""#), "{form}");
    assert!(form.contains("Создать надёжный пароль"), "{form}");
}

#[tokio::test]
async fn readiness_fails_while_a_sync_that_worked_stays_red_past_the_threshold() {
    let dir = tempfile::tempdir().unwrap();
    let main = Server::start(&dir.path().join("main"));
    let branch = Server::start_with(
        &dir.path().join("branch"),
        &[
            "--admin-password",
            crate::common::ADMIN_PASSWORD,
            "--ready-red-after-seconds",
            "1",
        ],
        &[],
    );
    let (main_api, branch_api) = (main.admin(), branch.admin());
    let (active, _) = pair(&branch_api, &main_api, "123456").await;
    eventually(20, "the sync green", || async {
        (status(&branch_api, active).await["connected"] == true).then_some(())
    })
    .await;
    // Unauthenticated, as a load balancer asks.
    let ready = || async {
        let response = reqwest::get(format!("{}/api/v1/ready", branch.url))
            .await
            .unwrap();
        let code = response.status();
        (code, response.json::<Value>().await.unwrap())
    };
    let (code, body) = ready().await;
    assert_eq!(code, StatusCode::OK, "{body}");
    assert_eq!(body["ready"], true, "{body}");

    // The other side stops: red, and after the threshold not ready — saying how many,
    // not which (the answer is public).
    drop(main);
    let body = eventually(30, "readiness failing", || async {
        let (code, body) = ready().await;
        (code == StatusCode::SERVICE_UNAVAILABLE).then_some(body)
    })
    .await;
    assert_eq!(body["syncs_red"], 1, "{body}");
    assert!(!body.to_string().contains("branch"), "{body}");
}
