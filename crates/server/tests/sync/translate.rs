use super::http::{SyncedPair, add_field, pair, quiet, synced_pair};
use crate::common::{Server, eventually};
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn users_match_by_login_and_links_point_at_the_same_record() {
    let dir = tempfile::tempdir().unwrap();
    let main = Server::start(&dir.path().join("main"));
    let aux = Server::start(&dir.path().join("aux"));
    let (main_api, aux_api) = (main.admin(), aux.admin());
    // Different user ids on each side for the same login.
    let (_, olga_main) = main_api
        .post(
            "/users",
            json!({ "login": "olga", "full_name": "Ольга", "password": "olga-pass-1" }),
        )
        .await;
    let (_, petr) = main_api
        .post(
            "/users",
            json!({ "login": "petr", "full_name": "Пётр", "password": "petr-pass-1" }),
        )
        .await;
    aux_api
        .post(
            "/users",
            json!({ "login": "ivan", "full_name": "Иван", "password": "ivan-pass-1" }),
        )
        .await;
    let (_, olga_aux) = aux_api
        .post(
            "/users",
            json!({ "login": "olga", "full_name": "Ольга П.", "password": "olga-pass-1" }),
        )
        .await;
    assert_ne!(olga_main["id"], olga_aux["id"]);

    let mut numbers = Vec::new();
    for api in [&main_api, &aux_api] {
        // An unrelated table first, so table and record ids differ between the sides.
        if std::ptr::eq(api, &aux_api) {
            let scratch = api.create_table("Scratch").await;
            let f = api.create_field(scratch, "X", "text", json!({})).await;
            api.create_record(scratch, json!({ f.to_string(): "x" }))
                .await;
        }
        let companies = api.create_table("Companies").await;
        let company_name = api.create_field(companies, "Name", "text", json!({})).await;
        if std::ptr::eq(api, &aux_api) {
            api.create_record(companies, json!({ company_name.to_string(): "local only" }))
                .await;
        }
        let invoices = api.create_table("Invoices").await;
        let number = api
            .create_field(invoices, "Number", "text", json!({}))
            .await;
        let client = api
            .create_field(invoices, "Client", "link", json!({ "table_id": companies }))
            .await;
        let manager = api
            .create_field(invoices, "Manager", "user", json!({}))
            .await;
        numbers.push((companies, invoices, [company_name, number, client, manager]));
    }
    let (active, passive) = pair(&main_api, &aux_api, "123456").await;
    for i in 0..4 {
        add_field(&main_api, active, numbers[0].2[i], "both", None).await;
        add_field(
            &aux_api,
            passive,
            numbers[1].2[i],
            "both",
            Some(numbers[0].2[i]),
        )
        .await;
    }
    let (m_companies, m_invoices, m) = numbers[0];
    let (a_companies, a_invoices, a) = numbers[1];
    quiet(&main_api, active, &aux_api, passive).await;

    let company = main_api
        .create_record(m_companies, json!({ m[0].to_string(): "ООО Ромашка" }))
        .await;
    main_api
        .create_record(m_invoices, json!({ m[1].to_string(): "INV-1", m[2].to_string(): company["id"], m[3].to_string(): olga_main["id"] }))
        .await;
    main_api
        .create_record(m_invoices, json!({ m[1].to_string(): "INV-2", m[2].to_string(): company["id"], m[3].to_string(): petr["id"] }))
        .await;
    let invoices = eventually(20, "both invoices on aux", || async {
        let page = aux_api
            .ok(Method::GET, &format!("/tables/{a_invoices}/records"), None)
            .await;
        let records = page["records"].as_array().unwrap().clone();
        (records.len() == 2).then_some(records)
    })
    .await;
    let aux_company = aux_api
        .ok(Method::GET, &format!("/tables/{a_companies}/records"), None)
        .await["records"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["values"][a[0].to_string()] == "ООО Ромашка")
        .cloned()
        .expect("the company came first");
    assert_ne!(aux_company["id"], company["id"], "local ids differ");
    assert_eq!(
        invoices[0]["values"][a[2].to_string()],
        aux_company["id"],
        "the link points at the same company"
    );
    assert_eq!(
        invoices[0]["values"][a[3].to_string()],
        olga_aux["id"],
        "users match by login"
    );
    assert_eq!(
        invoices[1]["values"][a[3].to_string()],
        serde_json::Value::Null,
        "no user petr here: not set (held)"
    );
    let (_, log) = aux_api
        .get(&format!("/syncs/{passive}/log?limit=1000"))
        .await;
    assert!(
        log["entries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "held"
                && e["message"].as_str().unwrap().contains("no user matches")),
        "{log}"
    );
    // Once petr has an account here too, his invoice gets its manager (B-17).
    let (status, petr_aux) = aux_api
        .post("/users", json!({ "login": "petr", "full_name": "Пётр", "password": "petr-secret-1", "role": "user" }))
        .await;
    assert_eq!(status, reqwest::StatusCode::CREATED, "{petr_aux}");
    let inv2 = invoices[1]["id"].clone();
    eventually(45, "petr's invoice with its manager", || async {
        let (_, record) = aux_api
            .get(&format!("/tables/{a_invoices}/records/{inv2}"))
            .await;
        (record["values"][a[3].to_string()] == petr_aux["id"]).then_some(())
    })
    .await;
}

#[tokio::test]
async fn an_applied_change_is_not_sent_back() {
    let dir = tempfile::tempdir().unwrap();
    let SyncedPair {
        main,
        aux,
        main_table: m_table,
        aux_table: a_table,
        m,
        active,
        passive,
        ..
    } = synced_pair(dir.path(), &["Name"]).await;
    let m = m[0];
    let (main_api, aux_api) = (main.admin(), aux.admin());
    for i in 0..20 {
        main_api
            .create_record(m_table, json!({ m.to_string(): format!("c{i}") }))
            .await;
    }
    eventually(20, "all twenty on aux", || async {
        let page = aux_api
            .ok(
                Method::GET,
                &format!("/tables/{a_table}/records?limit=100"),
                None,
            )
            .await;
        (page["records"].as_array().unwrap().len() == 20).then_some(())
    })
    .await;
    quiet(&main_api, active, &aux_api, passive).await;
    let (_, log) = aux_api
        .get(&format!("/syncs/{passive}/log?limit=1000"))
        .await;
    let sent: Vec<_> = log["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["message"].as_str().unwrap().starts_with("sent"))
        .collect();
    assert!(sent.is_empty(), "aux sent nothing back: {sent:?}");
    let (_, log) = main_api
        .get(&format!("/syncs/{active}/log?limit=1000"))
        .await;
    assert!(
        !log["entries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "received"),
        "main received nothing: {log}"
    );
}

#[tokio::test]
async fn a_link_to_a_record_that_arrives_later_is_resolved_when_it_does() {
    let dir = tempfile::tempdir().unwrap();
    let main = Server::start(&dir.path().join("main"));
    let aux = Server::start(&dir.path().join("aux"));
    let (main_api, aux_api) = (main.admin(), aux.admin());
    let mut numbers = Vec::new();
    for api in [&main_api, &aux_api] {
        let companies = api.create_table("Companies").await;
        let name = api.create_field(companies, "Name", "text", json!({})).await;
        let invoices = api.create_table("Invoices").await;
        let client = api
            .create_field(invoices, "Client", "link", json!({ "table_id": companies }))
            .await;
        numbers.push((companies, invoices, name, client));
    }
    let (m_companies, m_invoices, m_name, m_client) = numbers[0];
    let (a_companies, a_invoices, a_name, a_client) = numbers[1];
    let (active, passive) = pair(&main_api, &aux_api, "123456").await;
    // Companies are paused on the main side for now.
    let (_, name_entry) = main_api
        .post(
            &format!("/syncs/{active}/fields"),
            json!({ "field_no": m_name, "direction": "off" }),
        )
        .await;
    add_field(&main_api, active, m_client, "both", None).await;
    add_field(&aux_api, passive, a_name, "both", Some(m_name)).await;
    add_field(&aux_api, passive, a_client, "both", Some(m_client)).await;
    quiet(&main_api, active, &aux_api, passive).await;

    let company = main_api
        .create_record(m_companies, json!({ m_name.to_string(): "Late Co" }))
        .await;
    let invoice = main_api
        .create_record(m_invoices, json!({ m_client.to_string(): company["id"] }))
        .await;
    let copy = eventually(20, "the invoice on aux", || async {
        let page = aux_api
            .ok(Method::GET, &format!("/tables/{a_invoices}/records"), None)
            .await;
        page["records"].as_array().unwrap().first().cloned()
    })
    .await;
    assert_eq!(copy["uid"], invoice["uid"]);
    assert_eq!(
        copy["values"][a_client.to_string()],
        serde_json::Value::Null,
        "its company is not here yet"
    );
    let status = |api: &crate::common::Client, sync: i64| {
        let api = api.clone();
        async move { api.get(&format!("/syncs/{sync}/status")).await.1 }
    };
    assert_eq!(
        status(&aux_api, passive).await["held"]["waiting_links"],
        1,
        "the waiting link is counted"
    );

    main_api
        .patch(
            &format!("/syncs/{active}/fields/{}", name_entry["id"]),
            json!({ "direction": "both" }),
        )
        .await;
    main_api
        .post(
            &format!("/tables/{m_companies}/records/{}/sync", company["id"]),
            json!({}),
        )
        .await;
    let resolved = eventually(20, "the link resolved", || async {
        let r = aux_api
            .ok(
                Method::GET,
                &format!("/tables/{a_invoices}/records/{}", copy["id"]),
                None,
            )
            .await;
        (!r["values"][a_client.to_string()].is_null()).then_some(r)
    })
    .await;
    let aux_company = aux_api
        .ok(Method::GET, &format!("/tables/{a_companies}/records"), None)
        .await["records"][0]
        .clone();
    assert_eq!(aux_company["values"][a_name.to_string()], "Late Co");
    assert_eq!(resolved["values"][a_client.to_string()], aux_company["id"]);
    assert_eq!(status(&aux_api, passive).await["held"]["waiting_links"], 0);
}
