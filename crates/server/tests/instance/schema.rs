use crate::common::Server;
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test]
async fn field_numbers_are_unique_across_the_instance_and_never_reused() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let api = server.admin();
    let a = api.create_table("Clients").await;
    let b = api.create_table("Invoices").await;
    let f1 = api.create_field(a, "Name", "text", json!({})).await;
    let f2 = api.create_field(b, "Name", "text", json!({})).await;
    let f3 = api.create_field(a, "Phone", "text", json!({})).await;
    assert!(f1 < f2 && f2 < f3, "{f1} {f2} {f3}");
    api.ok(Method::DELETE, &format!("/fields/{f3}"), None).await;
    let f4 = api.create_field(a, "Phone", "text", json!({})).await;
    assert!(f4 > f3, "a removed field's number is not reused");
    let field = api.ok(Method::GET, &format!("/fields/{f2}"), None).await;
    assert_eq!(
        field,
        json!({ "id": f2, "table_id": b, "name": "Name", "type": "text", "options": {} })
    );

    let (status, body) = api
        .post(
            &format!("/tables/{a}/fields"),
            json!({ "name": "name", "type": "text" }),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let (status, body) = api
        .post(
            &format!("/tables/{a}/fields"),
            json!({ "name": "X", "type": "currency" }),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body["detail"].as_str().unwrap().contains("money"), "{body}");
    let (status, _) = api
        .post(
            &format!("/tables/{a}/fields"),
            json!({ "name": "S", "type": "select" }),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "a select needs choices"
    );
    let (status, _) = api
        .post(
            &format!("/tables/{a}/fields"),
            json!({ "name": "L", "type": "link", "options": { "table_id": 99 } }),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "a link needs an existing table"
    );
    let (status, body) = api
        .patch(&format!("/fields/{f1}"), json!({ "type": "number" }))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let renamed = api
        .ok(
            Method::PATCH,
            &format!("/fields/{f1}"),
            Some(json!({ "name": "Full name" })),
        )
        .await;
    assert_eq!(renamed["name"], "Full name");
}

#[tokio::test]
async fn fields_and_tables_change_on_a_populated_table_without_losing_data() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let api = server.admin();
    let clients = api.create_table("Clients").await;
    let name = api.create_field(clients, "Name", "text", json!({})).await;
    let note = api.create_field(clients, "Note", "text", json!({})).await;
    for i in 0..50 {
        api.create_record(
            clients,
            json!({ name.to_string(): format!("Client {i}"), note.to_string(): "n" }),
        )
        .await;
    }
    let phone = api.create_field(clients, "Phone", "text", json!({})).await;
    api.patch(
        &format!("/tables/{clients}/records/7"),
        json!({ "values": { phone.to_string(): "+7 1" } }),
    )
    .await;
    api.ok(Method::DELETE, &format!("/fields/{note}"), None)
        .await;

    let page = api
        .ok(
            Method::GET,
            &format!("/tables/{clients}/records?limit=100"),
            None,
        )
        .await;
    let records = page["records"].as_array().unwrap();
    assert_eq!(records.len(), 50);
    assert_eq!(
        records[6]["values"],
        json!({ name.to_string(): "Client 6", phone.to_string(): "+7 1" })
    );
    assert_eq!(
        records[0]["values"],
        json!({ name.to_string(): "Client 0", phone.to_string(): null })
    );

    // A table others link to cannot go; the linking field can, then the table can.
    let invoices = api.create_table("Invoices").await;
    let client_link = api
        .create_field(invoices, "Client", "link", json!({ "table_id": clients }))
        .await;
    api.create_record(invoices, json!({ client_link.to_string(): 7 }))
        .await;
    let (status, body) = api.delete(&format!("/tables/{clients}")).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(
        body["detail"].as_str().unwrap().contains("Client"),
        "{body}"
    );
    let temp = api.create_table("Scratch").await;
    api.create_field(temp, "X", "text", json!({})).await;
    api.ok(Method::DELETE, &format!("/tables/{temp}"), None)
        .await;
    let (status, _) = api.get(&format!("/tables/{temp}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let tables = api.ok(Method::GET, "/tables", None).await;
    let names: Vec<&str> = tables["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Clients", "Invoices"]);
    assert_eq!(api.all_ids(clients, "all").await.len(), 50);
}

#[tokio::test]
async fn a_restart_keeps_every_table_field_record_user_and_file() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data);
    let api = server.admin();
    let table = api.create_table("Clients").await;
    let name = api.create_field(table, "Name", "text", json!({})).await;
    let doc = api.create_field(table, "Contract", "file", json!({})).await;
    let id = api
        .create_record(table, json!({ name.to_string(): "Kept" }))
        .await["id"]
        .as_i64()
        .unwrap();
    api.post(
        "/users",
        json!({ "login": "olga", "full_name": "Ольга", "password": "olga-pass-1" }),
    )
    .await;
    let upload = api
        .raw(
            Method::PUT,
            &format!("/tables/{table}/records/{id}/files/{doc}?name=contract.pdf"),
        )
        .body(vec![7u8; 4096])
        .send()
        .await
        .unwrap();
    assert_eq!(upload.status(), StatusCode::OK);
    let before = api.ok(Method::GET, &format!("/tables/{table}"), None).await;
    let record_before = api
        .ok(Method::GET, &format!("/tables/{table}/records/{id}"), None)
        .await;
    let instance_before = reqwest::get(format!("{}/api/v1/health", server.url))
        .await
        .unwrap()
        .json::<serde_json::Value>()
        .await
        .unwrap();

    let data = server.kill();
    let server = Server::start(&data);
    let api = server.admin();
    assert!(
        !server.banner.iter().any(|l| l.contains("password")),
        "no new admin on restart"
    );
    assert_eq!(
        api.ok(Method::GET, &format!("/tables/{table}"), None).await,
        before
    );
    assert_eq!(
        api.ok(Method::GET, &format!("/tables/{table}/records/{id}"), None)
            .await,
        record_before
    );
    let instance_after = reqwest::get(format!("{}/api/v1/health", server.url))
        .await
        .unwrap()
        .json::<serde_json::Value>()
        .await
        .unwrap();
    assert_eq!(
        instance_before["instance_id"],
        instance_after["instance_id"]
    );
    let (status, _) = server.as_user("olga", "olga-pass-1").get("/tables").await;
    assert_eq!(status, StatusCode::OK);
    let content = api
        .raw(
            Method::GET,
            &format!("/tables/{table}/records/{id}/files/{doc}"),
        )
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(content.to_vec(), vec![7u8; 4096]);
}

#[tokio::test]
async fn a_backup_taken_while_running_starts_as_the_same_instance() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data);
    let api = server.admin();
    let table = api.create_table("Clients").await;
    let name = api.create_field(table, "Name", "text", json!({})).await;
    let doc = api.create_field(table, "Doc", "file", json!({})).await;
    for i in 0..20 {
        api.create_record(table, json!({ name.to_string(): format!("C{i}") }))
            .await;
    }
    let r = api
        .raw(
            Method::PUT,
            &format!("/tables/{table}/records/3/files/{doc}?name=a.bin"),
        )
        .body(vec![1u8; 1000])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let copy = dir.path().join("copy");
    let (ok, out, err) = crate::common::cli(&[
        "backup",
        "--data",
        data.to_str().unwrap(),
        "--out",
        copy.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("(1 stored files)"), "{out}");
    let (ok, _, err) = crate::common::cli(&[
        "backup",
        "--data",
        data.to_str().unwrap(),
        "--out",
        copy.to_str().unwrap(),
    ]);
    assert!(!ok && err.contains("exists already"), "{err}");

    let restored = Server::start(&copy);
    let copy_api = restored.admin();
    let original = api
        .ok(
            Method::GET,
            &format!("/tables/{table}/records?limit=100"),
            None,
        )
        .await;
    let restored_page = copy_api
        .ok(
            Method::GET,
            &format!("/tables/{table}/records?limit=100"),
            None,
        )
        .await;
    assert_eq!(original, restored_page);
    let content = copy_api
        .raw(
            Method::GET,
            &format!("/tables/{table}/records/3/files/{doc}"),
        )
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(content.len(), 1000);
}
