//! Changes held back instead of stalling or losing anything (issue 6): a value this side
//! cannot take is quarantined and applied once the cause is fixed (B-17); an exchange
//! that would delete most of a table holds its deletes until a person approves (B-18).

use super::http::{add_field, clients, pair, set_remote};
use crate::common::{Client, Server, eventually};
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn status(api: &Client, sync: i64) -> Value {
    api.get(&format!("/syncs/{sync}/status")).await.1
}

#[tokio::test]
async fn a_value_this_side_refuses_is_quarantined_and_applied_once_the_cause_is_fixed() {
    let dir = tempfile::tempdir().unwrap();
    let main = Server::start(&dir.path().join("main"));
    let aux = Server::start(&dir.path().join("aux"));
    let (main_api, aux_api) = (main.admin(), aux.admin());
    let (main_table, m) = clients(&main_api, &["Name", "Stage"]).await;
    let aux_table = aux_api.create_table("Clients").await;
    let a_name = aux_api
        .create_field(aux_table, "Name", "text", json!({}))
        .await;
    let a_stage = aux_api
        .create_field(
            aux_table,
            "Stage",
            "select",
            json!({ "choices": ["new", "paid"] }),
        )
        .await;
    let (active, passive) = pair(&main_api, &aux_api, "123456").await;
    add_field(&main_api, active, m[0], "both", None).await;
    add_field(&main_api, active, m[1], "both", None).await;
    add_field(&aux_api, passive, a_name, "both", Some(m[0])).await;
    add_field(&aux_api, passive, a_stage, "both", Some(m[1])).await;

    main_api
        .create_record(
            main_table,
            json!({ m[0].to_string(): "ООО Ромашка", m[1].to_string(): "shipped" }),
        )
        .await;
    // The record arrives; the value aux's select does not offer is held, not emptied.
    let held = eventually(30, "the value in quarantine", || async {
        let s = status(&aux_api, passive).await;
        (s["held"]["quarantine"] == 1).then_some(s)
    })
    .await;
    assert_eq!(held["held"]["mass_delete"], 0);
    let (_, page) = aux_api.get(&format!("/tables/{aux_table}/records")).await;
    assert_eq!(
        page["records"][0]["values"],
        json!({ a_name.to_string(): "ООО Ромашка", a_stage.to_string(): null })
    );
    let (_, list) = aux_api.get(&format!("/syncs/{passive}/held")).await;
    let entry = &list["held"][0];
    assert_eq!(entry["kind"], "quarantine");
    assert!(
        entry["reason"].as_str().unwrap().contains("shipped"),
        "{entry}"
    );
    // Everything else keeps flowing meanwhile.
    main_api
        .create_record(
            main_table,
            json!({ m[0].to_string(): "ИП Петров", m[1].to_string(): "new" }),
        )
        .await;
    eventually(30, "the next record", || async {
        let (_, page) = aux_api
            .get(&format!("/tables/{aux_table}/records?q=Петров"))
            .await;
        (page["records"][0]["values"][a_stage.to_string()] == "new").then_some(())
    })
    .await;

    // The cause is fixed on aux: the held value lands by itself.
    let (status_code, body) = aux_api
        .patch(
            &format!("/fields/{a_stage}"),
            json!({ "options": { "choices": ["new", "paid", "shipped"] } }),
        )
        .await;
    assert_eq!(status_code, StatusCode::OK, "{body}");
    eventually(45, "the quarantined value applied", || async {
        let (_, page) = aux_api
            .get(&format!("/tables/{aux_table}/records?q=Ромашка"))
            .await;
        (page["records"][0]["values"][a_stage.to_string()] == "shipped").then_some(())
    })
    .await;
    assert_eq!(status(&aux_api, passive).await["held"]["quarantine"], 0);
}

#[tokio::test]
async fn an_exchange_deleting_most_of_a_table_waits_for_approval() {
    let dir = tempfile::tempdir().unwrap();
    let main = Server::start(&dir.path().join("main"));
    let aux = Server::start(&dir.path().join("aux"));
    let (main_api, aux_api) = (main.admin(), aux.admin());
    let (main_table, m) = clients(&main_api, &["Name"]).await;
    let (aux_table, a) = clients(&aux_api, &["Name"]).await;
    let (active, passive) = pair(&main_api, &aux_api, "123456").await;
    add_field(&main_api, active, m[0], "both", None).await;
    add_field(&aux_api, passive, a[0], "both", Some(m[0])).await;
    let mut ids = Vec::new();
    for i in 0..20 {
        let record = main_api
            .create_record(
                main_table,
                json!({ m[0].to_string(): format!("client {i}") }),
            )
            .await;
        ids.push(record["id"].as_i64().unwrap());
    }
    eventually(30, "20 clients on aux", || async {
        (aux_api.all_ids(aux_table, "active").await.len() == 20).then_some(())
    })
    .await;

    // Ten deletes (half the table) go out in one exchange.
    let (_, shown) = main_api.get(&format!("/syncs/{active}")).await;
    let endpoint = shown["remote_url"].as_str().unwrap().to_string();
    set_remote(&main_api, active, "http://127.0.0.1:9").await;
    for id in &ids[..10] {
        main_api
            .delete(&format!("/tables/{main_table}/records/{id}"))
            .await;
    }
    set_remote(&main_api, active, &endpoint).await;
    let held = eventually(30, "the deletes held", || async {
        let s = status(&aux_api, passive).await;
        (s["held"]["mass_delete"] == 10).then_some(s)
    })
    .await;
    assert_eq!(held["pending_out"], 0, "{held}");
    assert_eq!(
        aux_api.all_ids(aux_table, "active").await.len(),
        20,
        "nothing deleted yet"
    );
    let (_, list) = aux_api.get(&format!("/syncs/{passive}/held")).await;
    let entries = list["held"].as_array().unwrap().clone();
    assert!(
        entries[0]["reason"]
            .as_str()
            .unwrap()
            .contains("10 of the 20"),
        "{list}"
    );

    // The sync's page lists them, in the browser's language, with the buttons.
    let html = aux.web_page(&format!("/syncs/{passive}"), "en").await;
    assert_eq!(
        html.matches("delete awaiting approval").count(),
        10,
        "{html}"
    );
    assert!(html.contains("/approve") && html.contains("/discard"));
    assert!(
        (0..10).all(|i| html.contains(&format!(">client {i}<"))),
        "each held delete is named by its record's label: {html}"
    );

    // A user may not approve; an admin approves nine and discards one.
    let (status_code, _) = aux_api
        .post("/users", json!({ "login": "clerk", "full_name": "Clerk", "password": "clerk-secret-1", "role": "user" }))
        .await;
    assert_eq!(status_code, StatusCode::CREATED);
    let clerk = aux.as_user("clerk", "clerk-secret-1");
    let first = entries[0]["id"].as_i64().unwrap();
    let (status_code, _) = clerk
        .post(&format!("/syncs/{passive}/held/{first}"), json!({}))
        .await;
    assert_eq!(status_code, StatusCode::FORBIDDEN);
    for entry in &entries[..9] {
        let (status_code, body) = aux_api
            .post(&format!("/syncs/{passive}/held/{}", entry["id"]), json!({}))
            .await;
        assert_eq!(
            (status_code, body["applied"].clone()),
            (StatusCode::OK, json!(true))
        );
    }
    let (status_code, _) = aux_api
        .delete(&format!("/syncs/{passive}/held/{}", entries[9]["id"]))
        .await;
    assert_eq!(status_code, StatusCode::NO_CONTENT);
    assert_eq!(aux_api.all_ids(aux_table, "active").await.len(), 11);
    let s = status(&aux_api, passive).await;
    assert_eq!(
        (
            s["held"]["mass_delete"].clone(),
            s["held"]["quarantine"].clone()
        ),
        (json!(0), json!(0))
    );

    // A single delete later is ordinary: applied at once.
    main_api
        .delete(&format!("/tables/{main_table}/records/{}", ids[15]))
        .await;
    eventually(30, "an ordinary delete applied", || async {
        (aux_api.all_ids(aux_table, "active").await.len() == 10).then_some(())
    })
    .await;

    // The share is the sync's setting; 100 turns the guard off, 0 is refused.
    let (status_code, _) = aux_api
        .patch(
            &format!("/syncs/{passive}"),
            json!({ "mass_delete_percent": 0 }),
        )
        .await;
    assert_eq!(status_code, StatusCode::UNPROCESSABLE_ENTITY);
    let (status_code, body) = aux_api
        .patch(
            &format!("/syncs/{passive}"),
            json!({ "mass_delete_percent": 100 }),
        )
        .await;
    assert_eq!(
        (status_code, body["mass_delete_percent"].clone()),
        (StatusCode::OK, json!(100))
    );
    set_remote(&main_api, active, "http://127.0.0.1:9").await;
    // Five of the ten left: held under the default share, not now.
    for id in &ids[10..15] {
        main_api
            .delete(&format!("/tables/{main_table}/records/{id}"))
            .await;
    }
    set_remote(&main_api, active, &endpoint).await;
    eventually(30, "five of ten deleted at once, unguarded", || async {
        (aux_api.all_ids(aux_table, "active").await.len() == 5).then_some(())
    })
    .await;
    assert_eq!(status(&aux_api, passive).await["held"]["mass_delete"], 0);
}
