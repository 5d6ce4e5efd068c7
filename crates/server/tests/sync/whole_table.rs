//! A whole table in a sync (S-02): added in one step, its fields travel with the table's
//! direction, and a field added to the table later joins the sync by itself.

use super::http::{clients, pair, record_values};
use crate::common::{Client, Server, eventually};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

async fn add_table(api: &Client, sync: i64, body: Value) -> Value {
    let (status, entry) = api.post(&format!("/syncs/{sync}/tables"), body).await;
    assert_eq!(status, StatusCode::CREATED, "{entry}");
    entry
}

/// (field number, direction) of a sync's field entries.
async fn sync_fields(api: &Client, sync: i64) -> Vec<(i64, String)> {
    let fields = api
        .ok(Method::GET, &format!("/syncs/{sync}/fields"), None)
        .await;
    fields["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["field_no"].as_i64().unwrap(),
                f["direction"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_whole_table_travels_and_a_field_added_later_joins_the_sync_with_its_direction() {
    let dir = tempfile::tempdir().unwrap();
    let main = Server::start(&dir.path().join("main"));
    let aux = Server::start(&dir.path().join("aux"));
    let (main_api, aux_api) = (main.admin(), aux.admin());
    let (main_table, m) = clients(&main_api, &["Name", "Phone"]).await;
    // aux names its fields alike, in another order, and has one main lacks.
    let (aux_table, a) = clients(&aux_api, &["Phone", "Fax", "Name"]).await;
    let (active, passive) = pair(&main_api, &aux_api, "123456").await;

    let entry = add_table(
        &main_api,
        active,
        json!({ "table_id": main_table, "direction": "both" }),
    )
    .await;
    assert_eq!(entry["table_id"], main_table);
    assert_eq!(entry["direction"], "both");
    assert_eq!(
        sync_fields(&main_api, active).await,
        vec![(m[0], "both".to_string()), (m[1], "both".to_string())]
    );
    // The passive side pairs by name with the active side's catalogue, once it has it.
    eventually(20, "the active side's catalogue on aux", || async {
        let catalog = aux_api
            .ok(Method::GET, &format!("/syncs/{passive}/catalog"), None)
            .await;
        catalog["peer_fields"].is_array().then_some(())
    })
    .await;
    let (status, bad) = aux_api
        .post(
            &format!("/syncs/{passive}/tables"),
            json!({ "table_id": aux_table, "direction": "both", "remote_table_id": 999 }),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
    assert!(
        bad["detail"].as_str().unwrap().contains("no table 999"),
        "{bad}"
    );
    let entry = add_table(
        &aux_api,
        passive,
        json!({ "table_id": aux_table, "direction": "both", "remote_table_id": main_table }),
    )
    .await;
    assert_eq!(entry["remote_table_id"], main_table);
    let problems = entry["problems"].as_array().unwrap();
    assert!(
        problems.len() == 1 && problems[0].as_str().unwrap().contains("\"Fax\""),
        "a field without a same-named counterpart is reported: {entry}"
    );
    let listed = aux_api
        .ok(Method::GET, &format!("/syncs/{passive}/tables"), None)
        .await;
    assert_eq!(listed["tables"].as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed["tables"][0]["table_id"], aux_table);
    let page = aux.web_page(&format!("/syncs/{passive}"), "en").await;
    assert!(
        page.contains(&format!("{} · Clients · Name", m[0])),
        "the sync's page shows the field each one is paired with by name"
    );

    main_api
        .create_record(
            main_table,
            json!({ m[0].to_string(): "ООО Ромашка", m[1].to_string(): "+7 900" }),
        )
        .await;
    aux_api
        .create_record(
            aux_table,
            json!({ a[2].to_string(): "ИП Васильев", a[0].to_string(): "+7 901" }),
        )
        .await;
    eventually(30, "records with all fields on both sides", || async {
        let on_aux = record_values(&aux_api, aux_table).await;
        let on_main = record_values(&main_api, main_table).await;
        let has = |values: &[Value], name: i64, phone: i64, n: &str, p: &str| {
            values
                .iter()
                .any(|v| v[name.to_string()] == n && v[phone.to_string()] == p)
        };
        (has(&on_aux, a[2], a[0], "ООО Ромашка", "+7 900")
            && has(&on_main, m[0], m[1], "ИП Васильев", "+7 901"))
        .then_some(())
    })
    .await;

    // A new field on both sides joins the sync with the table's direction, no setup.
    let main_email = main_api
        .create_field(main_table, "Email", "text", json!({}))
        .await;
    let aux_email = aux_api
        .create_field(aux_table, "Email", "text", json!({}))
        .await;
    assert!(
        sync_fields(&main_api, active)
            .await
            .contains(&(main_email, "both".to_string()))
    );
    assert!(
        sync_fields(&aux_api, passive)
            .await
            .contains(&(aux_email, "both".to_string()))
    );
    let on_main = main_api
        .ok(
            Method::GET,
            &format!("/tables/{main_table}/records?limit=10"),
            None,
        )
        .await;
    for record in on_main["records"].as_array().unwrap() {
        let name = record["values"][m[0].to_string()].as_str().unwrap();
        main_api
            .ok(
                Method::PATCH,
                &format!("/tables/{main_table}/records/{}", record["id"]),
                Some(json!({ "values": { main_email.to_string(): format!("{name}@main") } })),
            )
            .await;
    }
    eventually(30, "Email values on aux", || async {
        let on_aux = record_values(&aux_api, aux_table).await;
        let mut emails: Vec<String> = on_aux
            .iter()
            .filter_map(|v| v[aux_email.to_string()].as_str().map(str::to_string))
            .collect();
        emails.sort();
        (emails == ["ИП Васильев@main", "ООО Ромашка@main"]).then_some(())
    })
    .await;
}

#[tokio::test]
async fn the_web_ui_adds_a_whole_table_and_removing_it_takes_its_fields_out() {
    let dir = tempfile::tempdir().unwrap();
    let main = Server::start(&dir.path().join("main"));
    let api = main.admin();
    let (table, fields) = clients(&api, &["Name", "Phone", "City"]).await;
    let other = api.create_table("Orders").await;
    let order_no = api.create_field(other, "Number", "text", json!({})).await;
    let (status, sync) = api
        .post(
            "/syncs",
            json!({ "name": "branch", "mode": "active", "remote_access": true,
                    "remote_url": "http://127.0.0.1:9", "password": "123456" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{sync}");
    let id = sync["id"].as_i64().unwrap();
    let page = main.web_page(&format!("/syncs/{id}"), "en").await;
    assert!(page.contains("id=\"add-table\""), "an add-whole-table form");

    let table_text = table.to_string();
    let (status, location) = main
        .web_form(
            &format!("/syncs/{id}"),
            &format!("/syncs/{id}/tables"),
            &[("table_id", &table_text), ("direction", "upload")],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{location}");
    assert_eq!(
        sync_fields(&api, id).await,
        fields
            .iter()
            .map(|f| (*f, "upload".to_string()))
            .collect::<Vec<_>>()
    );
    let page = main.web_page(&format!("/syncs/{id}"), "en").await;
    assert!(
        page.contains("data-whole-table=\"") && page.contains("Clients"),
        "the page lists the whole table"
    );
    // A single field of another table stays when the whole table leaves.
    let (status, _) = api
        .post(
            &format!("/syncs/{id}/fields"),
            json!({ "field_no": order_no, "direction": "both" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);

    let (status, again) = api
        .post(
            &format!("/syncs/{id}/tables"),
            json!({ "table_id": table, "direction": "both" }),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{again}");
    let (status, bad) = api
        .post(
            &format!("/syncs/{id}/tables"),
            json!({ "table_id": 999, "direction": "both" }),
        )
        .await;
    assert!(
        status.is_client_error() && bad["error"].is_string(),
        "{bad}"
    );
    let (status, bad) = api
        .post(
            &format!("/syncs/{id}/tables"),
            json!({ "table_id": other, "direction": "both", "remote_table_id": 1 }),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");

    let listed = api
        .ok(Method::GET, &format!("/syncs/{id}/tables"), None)
        .await;
    let entry = listed["tables"][0]["id"].as_i64().unwrap();
    let (status, location) = main
        .web_form(
            &format!("/syncs/{id}"),
            &format!("/syncs/{id}/tables/{entry}/delete"),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{location}");
    assert_eq!(
        sync_fields(&api, id).await,
        vec![(order_no, "both".to_string())]
    );
    let listed = api
        .ok(Method::GET, &format!("/syncs/{id}/tables"), None)
        .await;
    assert_eq!(listed["tables"], json!([]));
    // No longer whole: a new field of the table stays out.
    let later = api.create_field(table, "Email", "text", json!({})).await;
    assert!(!sync_fields(&api, id).await.iter().any(|(f, _)| *f == later));
}
