//! A field turned `off` is paused, its mapping kept: what changed meanwhile, on either
//! side, travels once it is turned back on.

use super::http::{clients, quiet, synced_pair};
use crate::common::{Client, Server, eventually};
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn entry_of(api: &Client, sync: i64, field_no: i64) -> i64 {
    let (_, list) = api.get(&format!("/syncs/{sync}/fields")).await;
    list["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["field_no"] == field_no)
        .and_then(|f| f["id"].as_i64())
        .expect("the field's entry")
}

async fn set_direction(api: &Client, sync: i64, entry: i64, direction: &str) {
    let (code, body) = api
        .patch(
            &format!("/syncs/{sync}/fields/{entry}"),
            json!({ "direction": direction }),
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{body}");
}

async fn phone_of(api: &Client, table: i64, name: &str, name_no: i64, phone_no: i64) -> Value {
    let (_, page) = api.get(&format!("/tables/{table}/records?limit=100")).await;
    page["records"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["values"][name_no.to_string()] == name)
        .map(|r| r["values"][phone_no.to_string()].clone())
        .unwrap_or(Value::Null)
}

#[tokio::test]
async fn edits_made_while_a_field_was_off_travel_both_ways_once_it_is_back_on() {
    let dir = tempfile::tempdir().unwrap();
    let pair = synced_pair(dir.path(), &["Name", "Phone"]).await;
    let (main_api, aux_api) = (pair.main.admin(), pair.aux.admin());
    let (main_table, aux_table) = (pair.main_table, pair.aux_table);
    let (m, a) = (&pair.m, &pair.a);
    let (active, passive) = (pair.active, pair.passive);
    let first = main_api
        .create_record(
            main_table,
            json!({ m[0].to_string(): "Ромашка", m[1].to_string(): "100" }),
        )
        .await;
    main_api
        .create_record(
            main_table,
            json!({ m[0].to_string(): "Лютик", m[1].to_string(): "200" }),
        )
        .await;
    eventually(30, "both clients on aux", || async {
        (aux_api.all_ids(aux_table, "active").await.len() == 2).then_some(())
    })
    .await;

    // Main pauses Phone; both offices edit it meanwhile.
    let entry = entry_of(&main_api, active, m[1]).await;
    set_direction(&main_api, active, entry, "off").await;
    main_api
        .patch(
            &format!("/tables/{main_table}/records/{}", first["id"]),
            json!({ "values": { m[1].to_string(): "111" } }),
        )
        .await;
    let aux_second = {
        let (_, page) = aux_api
            .get(&format!("/tables/{aux_table}/records?q=Лютик"))
            .await;
        page["records"][0]["id"].as_i64().unwrap()
    };
    aux_api
        .patch(
            &format!("/tables/{aux_table}/records/{aux_second}"),
            json!({ "values": { a[1].to_string(): "222" } }),
        )
        .await;
    quiet(&main_api, active, &aux_api, passive).await;
    assert_eq!(
        phone_of(&aux_api, aux_table, "Ромашка", a[0], a[1]).await,
        "100",
        "paused: main's edit stays on main"
    );
    assert_eq!(
        phone_of(&main_api, main_table, "Лютик", m[0], m[1]).await,
        "200",
        "paused: aux's edit is not taken on main"
    );

    // Back on: both edits made meanwhile travel.
    set_direction(&main_api, active, entry, "both").await;
    eventually(30, "main's paused edit on aux", || async {
        (phone_of(&aux_api, aux_table, "Ромашка", a[0], a[1]).await == "111").then_some(())
    })
    .await;
    eventually(30, "aux's paused edit on main", || async {
        (phone_of(&main_api, main_table, "Лютик", m[0], m[1]).await == "222").then_some(())
    })
    .await;
}

#[tokio::test]
async fn over_folders_two_fields_turned_back_on_at_once_both_catch_up() {
    let dir = tempfile::tempdir().unwrap();
    let main = Server::start(&dir.path().join("main"));
    let aux = Server::start(&dir.path().join("aux"));
    let (main_api, aux_api) = (main.admin(), aux.admin());
    let (main_table, m) = clients(&main_api, &["Name", "Phone", "City"]).await;
    let (aux_table, a) = clients(&aux_api, &["Name", "Phone", "City"]).await;
    let pairs: Vec<(i64, i64)> = m.iter().copied().zip(a.iter().copied()).collect();
    let (active, passive) =
        super::folders::link_by_folders(dir.path(), &main_api, &aux_api, &pairs).await;
    main_api
        .create_record(main_table, json!({ m[0].to_string(): "Ромашка" }))
        .await;
    eventually(30, "the client on aux", || async {
        (aux_api.all_ids(aux_table, "active").await.len() == 1).then_some(())
    })
    .await;
    let entries = [
        entry_of(&main_api, active, m[1]).await,
        entry_of(&main_api, active, m[2]).await,
    ];
    for entry in entries {
        set_direction(&main_api, active, entry, "off").await;
    }
    let aux_id = aux_api.all_ids(aux_table, "active").await[0];
    aux_api
        .patch(
            &format!("/tables/{aux_table}/records/{aux_id}"),
            json!({ "values": { a[1].to_string(): "+7 222", a[2].to_string(): "Самара" } }),
        )
        .await;
    eventually(30, "aux's edit written", || async {
        let (_, s) = aux_api.get(&format!("/syncs/{passive}/status")).await;
        (s["pending_out"] == 0).then_some(())
    })
    .await;
    // Both back on at once: two catch-ups over one folder link.
    for entry in entries {
        set_direction(&main_api, active, entry, "both").await;
    }
    eventually(60, "both paused edits on main", || async {
        let v = phone_of(&main_api, main_table, "Ромашка", m[0], m[1]).await;
        let city = {
            let (_, page) = main_api.get(&format!("/tables/{main_table}/records")).await;
            page["records"][0]["values"][m[2].to_string()].clone()
        };
        (v == "+7 222" && city == "Самара").then_some(())
    })
    .await;
}
