use crate::common::{Client, Server, eventually};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// A Clients table with the given fields; returns (table, field numbers in order).
async fn clients(api: &Client, fields: &[&str]) -> (i64, Vec<i64>) {
    let table = api.create_table("Clients").await;
    let mut numbers = Vec::new();
    for name in fields {
        numbers.push(api.create_field(table, name, "text", json!({})).await);
    }
    (table, numbers)
}

/// The passive side first (S-11), then the active side pointing at its endpoint_url.
async fn pair(active: &Client, passive: &Client, password_on_active: &str) -> (i64, i64) {
    let (status, p) = passive
        .post(
            "/syncs",
            json!({ "name": "main office", "mode": "passive", "password": "123456", "log": true }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{p}");
    let endpoint = p["endpoint_url"]
        .as_str()
        .expect("a passive HTTP sync shows its address")
        .to_string();
    assert!(p.get("password").is_none(), "passwords are write-only: {p}");
    let (status, a) = active
        .post(
            "/syncs",
            json!({ "name": "branch", "mode": "active", "remote_access": true, "remote_url": endpoint,
                    "password": password_on_active, "log": true, "period_seconds": 1 }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{a}");
    (a["id"].as_i64().unwrap(), p["id"].as_i64().unwrap())
}

async fn add_field(api: &Client, sync: i64, field_no: i64, direction: &str, remote: Option<i64>) {
    let (status, body) = api
        .post(
            &format!("/syncs/{sync}/fields"),
            json!({ "field_no": field_no, "direction": direction, "remote_field_no": remote }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

async fn record_values(api: &Client, table: i64) -> Vec<Value> {
    let page = api
        .ok(
            Method::GET,
            &format!("/tables/{table}/records?limit=1000"),
            None,
        )
        .await;
    page["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["values"].clone())
        .collect()
}

#[tokio::test]
async fn seed_case_one_name_address_phone_flow_one_way() {
    let dir = tempfile::tempdir().unwrap();
    let main = Server::start(&dir.path().join("main"));
    let aux = Server::start(&dir.path().join("aux"));
    let (main_api, aux_api) = (main.admin(), aux.admin());
    // The main instance holds full client data; the auxiliary keeps three fields current.
    let (main_table, m) = clients(&main_api, &["Name", "Address", "Phone", "Notes"]).await;
    let (aux_table, a) = clients(&aux_api, &["Имя", "Адрес", "Телефон"]).await;
    let (active, passive) = pair(&main_api, &aux_api, "123456").await;
    for i in 0..3 {
        add_field(&main_api, active, m[i], "upload", None).await;
        add_field(&aux_api, passive, a[i], "download", Some(m[i])).await;
    }
    eventually(20, "the green check", || async {
        let (_, s) = main_api.get(&format!("/syncs/{active}/status")).await;
        (s["connected"] == true).then_some(())
    })
    .await;

    let created = main_api
        .create_record(main_table, json!({ m[0].to_string(): "ООО Ромашка", m[1].to_string(): "Казань", m[2].to_string(): "+7 900", m[3].to_string(): "private" }))
        .await;
    let expected = json!({ a[0].to_string(): "ООО Ромашка", a[1].to_string(): "Казань", a[2].to_string(): "+7 900" });
    eventually(20, "the record on the auxiliary instance", || async {
        let values = record_values(&aux_api, aux_table).await;
        (values == vec![expected.clone()]).then_some(())
    })
    .await;

    // The same record, matched by uid; its history names the sync.
    let page = aux_api
        .ok(Method::GET, &format!("/tables/{aux_table}/records"), None)
        .await;
    let copy = &page["records"][0];
    assert_eq!(copy["uid"], created["uid"]);
    let history = aux_api
        .ok(
            Method::GET,
            &format!("/tables/{aux_table}/records/{}/history", copy["id"]),
            None,
        )
        .await;
    assert_eq!(history["history"][0]["origin"], format!("sync:{passive}"));

    // An edit on the auxiliary side stays there (its fields only download).
    let id = copy["id"].as_i64().unwrap();
    aux_api
        .patch(
            &format!("/tables/{aux_table}/records/{id}"),
            json!({ "values": { a[2].to_string(): "+7 111" } }),
        )
        .await;
    main_api
        .patch(
            &format!("/tables/{main_table}/records/{}", created["id"]),
            json!({ "values": { m[1].to_string(): "Пермь" } }),
        )
        .await;
    eventually(20, "the address change arrives", || async {
        let values = record_values(&aux_api, aux_table).await;
        (values[0][a[1].to_string()] == "Пермь").then_some(())
    })
    .await;
    let main_values = record_values(&main_api, main_table).await;
    assert_eq!(
        main_values[0][m[2].to_string()],
        "+7 900",
        "download-only fields never flow back"
    );
    assert_eq!(
        record_values(&aux_api, aux_table).await[0][a[2].to_string()],
        "+7 111"
    );

    let (_, log) = aux_api.get(&format!("/syncs/{passive}/log")).await;
    assert!(
        log["entries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "received"),
        "{log}"
    );
}

#[tokio::test]
async fn a_wrong_password_is_refused_logged_on_both_sides_and_applies_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let main = Server::start(&dir.path().join("main"));
    let aux = Server::start(&dir.path().join("aux"));
    let (main_api, aux_api) = (main.admin(), aux.admin());
    let (main_table, m) = clients(&main_api, &["Name"]).await;
    let (aux_table, a) = clients(&aux_api, &["Name"]).await;
    let (active, passive) = pair(&main_api, &aux_api, "not-the-password").await;
    add_field(&main_api, active, m[0], "both", None).await;
    add_field(&aux_api, passive, a[0], "both", Some(m[0])).await;
    main_api
        .create_record(main_table, json!({ m[0].to_string(): "secret client" }))
        .await;

    let status = eventually(20, "the refusal in the active side's status", || async {
        let (_, s) = main_api.get(&format!("/syncs/{active}/status")).await;
        (s["connected"] == false
            && s["reason"]
                .as_str()
                .is_some_and(|r| r.contains("wrong password")))
        .then_some(s)
    })
    .await;
    assert!(
        status["last_error"]
            .as_str()
            .unwrap()
            .contains("wrong password"),
        "{status}"
    );
    let (_, log) = aux_api.get(&format!("/syncs/{passive}/log")).await;
    assert!(
        log["entries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "auth"),
        "{log}"
    );
    let (_, log) = main_api.get(&format!("/syncs/{active}/log")).await;
    assert!(
        log["entries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "auth"),
        "{log}"
    );
    assert!(
        record_values(&aux_api, aux_table).await.is_empty(),
        "nothing applied"
    );

    // Setting the right password makes it connect and deliver.
    main_api
        .patch(&format!("/syncs/{active}"), json!({ "password": "123456" }))
        .await;
    eventually(30, "delivery after the password is fixed", || async {
        (record_values(&aux_api, aux_table).await.len() == 1).then_some(())
    })
    .await;
}

#[tokio::test]
async fn settings_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let api = server.admin();
    let (status, body) = api
        .post(
            "/syncs",
            json!({ "name": "x", "mode": "active", "password": "123456" }),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        body["detail"].as_str().unwrap().contains("remote_url"),
        "{body}"
    );
    let (status, body) = api
        .post(
            "/syncs",
            json!({ "name": "x", "mode": "passive", "password": "123456", "period_seconds": 0 }),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        body["detail"].as_str().unwrap().contains("1 second"),
        "{body}"
    );
    let (status, _) = api
        .post(
            "/syncs",
            json!({ "name": "x", "mode": "sideways", "password": "1" }),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, body) = api
        .post("/syncs", json!({ "name": "x", "mode": "passive" }))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (_, p) = api
        .post(
            "/syncs",
            json!({ "name": "x", "mode": "passive", "password": "123456" }),
        )
        .await;
    let id = p["id"].as_i64().unwrap();
    let (status, body) = api
        .post(
            &format!("/syncs/{id}/fields"),
            json!({ "field_no": 999, "direction": "both" }),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (table, f) = clients(&api, &["Name"]).await;
    let _ = table;
    let (status, _) = api
        .post(
            &format!("/syncs/{id}/fields"),
            json!({ "field_no": f[0], "direction": "sideways" }),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    add_field(&api, id, f[0], "both", Some(5)).await;
    let (status, _) = api
        .post(
            &format!("/syncs/{id}/fields"),
            json!({ "field_no": f[0], "direction": "both" }),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let fields = api
        .ok(Method::GET, &format!("/syncs/{id}/fields"), None)
        .await;
    assert_eq!(fields["fields"][0]["remote_field_no"], 5);
}
