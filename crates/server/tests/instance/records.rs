use crate::common::{Client, Server};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// A table with one field of every type, plus a linked table; returns (table, fields by type, linked table).
pub async fn every_type_table(
    api: &Client,
) -> (i64, std::collections::HashMap<&'static str, i64>, i64) {
    let companies = api.create_table("Companies").await;
    let company_name = api.create_field(companies, "Name", "text", json!({})).await;
    api.create_record(
        companies,
        json!({ company_name.to_string(): "ООО Ромашка" }),
    )
    .await;
    let table = api.create_table("Invoices").await;
    let mut fields = std::collections::HashMap::new();
    for (ty, options) in [
        ("text", json!({})),
        ("longtext", json!({})),
        ("number", json!({})),
        ("money", json!({})),
        ("date", json!({})),
        ("datetime", json!({})),
        ("select", json!({ "choices": ["new", "paid"] })),
        ("user", json!({})),
        ("link", json!({ "table_id": companies })),
        ("file", json!({})),
    ] {
        let no = api
            .create_field(table, &format!("F {ty}"), ty, options)
            .await;
        fields.insert(ty, no);
    }
    (table, fields, companies)
}

#[tokio::test]
async fn health_is_open_and_everything_else_needs_a_password() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let health: Value = reqwest::get(format!("{}/api/v1/health", server.url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["ok"], true);
    assert!(health["instance_id"].as_str().unwrap().len() == 36);

    let anonymous = reqwest::get(format!("{}/api/v1/tables", server.url))
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    assert!(anonymous.headers().contains_key("www-authenticate"));
    let body: Value = anonymous.json().await.unwrap();
    assert_eq!(body["error"], "unauthorized");

    let (status, body) = server
        .as_user("admin", "wrong-password")
        .get("/tables")
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["detail"], "wrong login or password");
    let (status, _) = server.as_user("nobody", "whatever1").get("/tables").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = server.admin().get("/tables").await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn every_field_type_round_trips_in_its_contract_shape() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let api = server.admin();
    let (table, f, _) = every_type_table(&api).await;
    let values = json!({
        f["text"].to_string(): "Счёт №1",
        f["longtext"].to_string(): "line one\nline two",
        f["number"].to_string(): 12.5,
        f["money"].to_string(): "1500.50",
        f["date"].to_string(): "2024-02-29",
        f["datetime"].to_string(): "2024-05-01T13:00:00+03:00",
        f["select"].to_string(): "paid",
        f["user"].to_string(): 1,
        f["link"].to_string(): 1,
    });
    let created = api.create_record(table, values).await;
    let id = created["id"].as_i64().unwrap();
    let read = api
        .ok(
            reqwest::Method::GET,
            &format!("/tables/{table}/records/{id}"),
            None,
        )
        .await;
    assert_eq!(read, created);
    let v = &read["values"];
    assert_eq!(v[f["text"].to_string()], "Счёт №1");
    assert_eq!(v[f["number"].to_string()], 12.5);
    assert_eq!(v[f["money"].to_string()], "1500.50");
    assert_eq!(v[f["date"].to_string()], "2024-02-29");
    assert_eq!(v[f["datetime"].to_string()], "2024-05-01T10:00:00Z");
    assert_eq!(v[f["select"].to_string()], "paid");
    assert_eq!(v[f["user"].to_string()], 1);
    assert_eq!(v[f["link"].to_string()], 1);
    assert_eq!(v[f["file"].to_string()], Value::Null);
    assert_eq!(read["status"], "active");
    let uid = read["uid"].as_str().unwrap();
    assert_eq!(uid.len(), 36);
    assert_eq!(&uid[14..15], "7", "uid is a UUIDv7: {uid}");
    assert!(read["created_at"].as_str().unwrap().ends_with('Z'));

    // Money stays exact through arithmetic-hostile values.
    let (_, r) = api
        .patch(
            &format!("/tables/{table}/records/{id}"),
            json!({ "values": { f["money"].to_string(): "0.10" } }),
        )
        .await;
    assert_eq!(r["values"][f["money"].to_string()], "0.10");
    // Null clears a value.
    let (_, r) = api
        .patch(
            &format!("/tables/{table}/records/{id}"),
            json!({ "values": { f["text"].to_string(): null } }),
        )
        .await;
    assert_eq!(r["values"][f["text"].to_string()], Value::Null);
}

#[tokio::test]
async fn bad_values_are_refused_naming_the_field_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let api = server.admin();
    let (table, f, _) = every_type_table(&api).await;
    let cases: Vec<(&str, Value)> = vec![
        ("text", json!(5)),
        ("longtext", json!(["a"])),
        ("number", json!("12")),
        ("money", json!(1.5)),
        ("money", json!("1.005")),
        ("money", json!("12 рублей")),
        ("date", json!("2023-02-29")),
        ("date", json!("29.02.2024")),
        ("datetime", json!("yesterday")),
        ("select", json!("lost")),
        ("user", json!(999)),
        ("user", json!("admin")),
        ("link", json!(999)),
        ("file", json!({ "name": "x", "size": 1, "sha256": "00" })),
    ];
    for (ty, bad) in cases {
        let no = f[ty];
        let (status, body) = api
            .post(
                &format!("/tables/{table}/records"),
                json!({ "values": { no.to_string(): bad.clone() } }),
            )
            .await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{ty} {bad}: {body}"
        );
        assert_eq!(body["error"], "invalid_value", "{ty} {bad}: {body}");
        assert_eq!(body["field"], no, "{ty} {bad}: {body}");
        assert!(
            body["detail"]
                .as_str()
                .unwrap()
                .contains(&format!("F {ty}")),
            "{body}"
        );
    }
    // A good value beside a bad one: the whole record is refused.
    let (status, _) = api
        .post(
            &format!("/tables/{table}/records"),
            json!({ "values": { f["text"].to_string(): "fine", f["number"].to_string(): "bad" } }),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        api.all_ids(table, "all").await.is_empty(),
        "nothing was written"
    );
}

#[tokio::test]
async fn malformed_requests_get_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let api = server.admin();
    let table = api.create_table("Clients").await;
    let name = api.create_field(table, "Name", "text", json!({})).await;

    let (status, body) = api
        .post(
            &format!("/tables/{table}/records"),
            json!({ "values": { "9999": "x" } }),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("no field \"9999\""),
        "{body}"
    );

    let (status, body) = api
        .post("/tables/4242/records", json!({ "values": {} }))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"], "not_found");

    let (status, body) = api
        .post(&format!("/tables/{table}/records"), json!({ "valuez": {} }))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        body["detail"].as_str().unwrap().contains("valuez"),
        "{body}"
    );

    let raw = |body: &'static str| {
        api.raw(Method::POST, &format!("/tables/{table}/records"))
            .header("content-type", "application/json")
            .body(body)
    };
    let response = raw("{\"values\": {").send().await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "malformed_json");

    let huge = format!(
        "{{\"values\": {{\"{name}\": \"{}\"}}}}",
        "x".repeat(5 << 20)
    );
    // A fresh connection: the server closes this one after refusing the body.
    let response = reqwest::Client::new()
        .post(format!("{}/api/v1/tables/{table}/records", api.url))
        .basic_auth("admin", Some(crate::common::ADMIN_PASSWORD))
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "payload_too_large");

    let (status, body) = api.get(&format!("/tables/{table}/records/abc")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "bad_request");
    let (status, body) = api
        .get(&format!("/tables/{table}/records?status=gone"))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, _) = api.get("/no/such/route").await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    assert!(
        api.all_ids(table, "all").await.is_empty(),
        "nothing was written"
    );
}

#[tokio::test]
async fn delete_hides_a_record_and_restore_brings_it_back() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let api = server.admin();
    let table = api.create_table("Clients").await;
    let name = api.create_field(table, "Name", "text", json!({})).await;
    let a = api
        .create_record(table, json!({ name.to_string(): "A" }))
        .await["id"]
        .as_i64()
        .unwrap();
    let b = api
        .create_record(table, json!({ name.to_string(): "B" }))
        .await["id"]
        .as_i64()
        .unwrap();

    let (status, deleted) = api.delete(&format!("/tables/{table}/records/{a}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(deleted["status"], "deleted");
    assert_eq!(api.all_ids(table, "active").await, vec![b]);
    assert_eq!(api.all_ids(table, "deleted").await, vec![a]);
    assert_eq!(api.all_ids(table, "all").await, vec![a, b]);

    let (status, body) = api
        .patch(
            &format!("/tables/{table}/records/{a}"),
            json!({ "values": { name.to_string(): "A2" } }),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");

    let (status, restored) = api
        .post(&format!("/tables/{table}/records/{a}/restore"), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(restored["status"], "active");
    assert_eq!(restored["values"][name.to_string()], "A");
    assert_eq!(api.all_ids(table, "active").await, vec![a, b]);

    let (status, _) = api.delete(&format!("/tables/{table}/records/777")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn search_sort_and_paging() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let api = server.admin();
    let table = api.create_table("Clients").await;
    let name = api.create_field(table, "Name", "text", json!({})).await;
    let rank = api.create_field(table, "Rank", "number", json!({})).await;
    for i in 0..25 {
        let label = if i % 5 == 0 {
            format!("Иванов {i}")
        } else {
            format!("Client {i}")
        };
        // Ranks repeat and some are empty, so paging must break ties and place nulls.
        let rank_value = if i % 7 == 0 {
            Value::Null
        } else {
            json!(i % 4)
        };
        api.create_record(
            table,
            json!({ name.to_string(): label, rank.to_string(): rank_value }),
        )
        .await;
    }
    // Case-insensitive in Cyrillic too.
    let (_, found) = api.get(&format!("/tables/{table}/records?q=иВАНОВ")).await;
    assert_eq!(found["records"].as_array().unwrap().len(), 5);

    // Pages of 10 by id: 10, 10, 5, no overlap.
    let mut seen = Vec::new();
    let mut after = String::new();
    let mut pages = 0;
    loop {
        let (_, page) = api
            .get(&format!("/tables/{table}/records?limit=10{after}"))
            .await;
        pages += 1;
        seen.extend(
            page["records"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["id"].as_i64().unwrap()),
        );
        match page["next_after"].as_i64() {
            Some(n) => after = format!("&after={n}"),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, (1..=25).collect::<Vec<_>>());

    for (sort, descending) in [(rank.to_string(), false), (format!("-{rank}"), true)] {
        let mut ordered = Vec::new();
        let mut after = String::new();
        loop {
            let (status, page) = api
                .get(&format!(
                    "/tables/{table}/records?limit=4&sort={sort}{after}"
                ))
                .await;
            assert_eq!(status, StatusCode::OK, "{page}");
            for r in page["records"].as_array().unwrap() {
                ordered.push((
                    r["values"][rank.to_string()].as_f64(),
                    r["id"].as_i64().unwrap(),
                ));
            }
            match page["next_after"].as_i64() {
                Some(n) => after = format!("&after={n}"),
                None => break,
            }
        }
        assert_eq!(ordered.len(), 25, "sort {sort}: every record exactly once");
        let mut expected = ordered.clone();
        // SQLite's order: NULL first ascending, last descending; ties by id.
        expected.sort_by(|a, b| {
            let key = |x: &(Option<f64>, i64)| (x.0.map(|v| v as i64), x.1);
            if descending {
                key(b).cmp(&key(a))
            } else {
                key(a).cmp(&key(b))
            }
        });
        assert_eq!(ordered, expected, "sort {sort}");
    }
    let (status, body) = api.get(&format!("/tables/{table}/records?sort=nope")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}

#[tokio::test]
async fn history_says_who_changed_what_and_from_where() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let api = server.admin();
    let table = api.create_table("Clients").await;
    let name = api.create_field(table, "Name", "text", json!({})).await;
    let phone = api.create_field(table, "Phone", "text", json!({})).await;
    let id = api
        .create_record(table, json!({ name.to_string(): "Anna" }))
        .await["id"]
        .as_i64()
        .unwrap();
    api.patch(
        &format!("/tables/{table}/records/{id}"),
        json!({ "values": { phone.to_string(): "+7 900", name.to_string(): "Anna" } }),
    )
    .await;
    api.delete(&format!("/tables/{table}/records/{id}")).await;
    api.post(&format!("/tables/{table}/records/{id}/restore"), json!({}))
        .await;

    let (_, history) = api
        .get(&format!("/tables/{table}/records/{id}/history"))
        .await;
    let entries = history["history"].as_array().unwrap();
    let ops: Vec<&str> = entries.iter().map(|e| e["op"].as_str().unwrap()).collect();
    assert_eq!(ops, ["create", "update", "delete", "restore"]);
    for e in entries {
        assert_eq!(e["user"]["login"], "admin");
        assert_eq!(e["origin"], "api");
    }
    // The update lists only what changed: the phone, not the unchanged name.
    let update = &entries[1]["fields"];
    assert_eq!(update.as_array().unwrap().len(), 1, "{update}");
    assert_eq!(update[0]["field_name"], "Phone");
    assert_eq!(update[0]["old"], Value::Null);
    assert_eq!(update[0]["new"], "+7 900");
}

#[tokio::test]
async fn a_page_larger_than_the_maximum_is_refused_not_cut_short() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let api = server.admin();
    let table = api.create_table("Clients").await;
    for limit in ["5000", "0"] {
        let (status, body) = api
            .get(&format!("/tables/{table}/records?limit={limit}"))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert!(
            body["detail"].as_str().unwrap().contains("from 1 to 1000"),
            "{body}"
        );
    }
    let (status, body) = api
        .get(&format!("/tables/{table}/records?limit=1000"))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}
