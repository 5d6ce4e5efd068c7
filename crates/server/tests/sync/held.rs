//! Changes held back instead of stalling or losing anything (issue 6): a value this side
//! cannot take is quarantined and applied once the cause is fixed (B-17); an exchange
//! that would delete most of a table holds its deletes until a person approves (B-18).
//! Every hold, approval and discard is logged, whatever the sync's log setting.

use super::http::{SyncedPair, add_field, clients, pair, set_remote, synced_pair};
use crate::common::{Client, Server, eventually};
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn status(api: &Client, sync: i64) -> Value {
    api.get(&format!("/syncs/{sync}/status")).await.1
}

/// `count` clients made on main, each arrived on aux: their records on main (id, uid…).
async fn clients_on_both(p: &SyncedPair, count: usize) -> Vec<Value> {
    let (main_api, aux_api) = (p.main.admin(), p.aux.admin());
    let mut records = Vec::new();
    for i in 0..count {
        let values = json!({ p.m[0].to_string(): format!("client {i}") });
        records.push(main_api.create_record(p.main_table, values).await);
    }
    eventually(30, &format!("{count} clients on aux"), || async {
        (aux_api.all_ids(p.aux_table, "active").await.len() == count).then_some(())
    })
    .await;
    records
}

/// Deletes these records on main while its link is cut, so they travel in one exchange.
async fn delete_in_one_exchange(p: &SyncedPair, records: &[Value]) {
    let main_api = p.main.admin();
    let (_, shown) = main_api.get(&format!("/syncs/{}", p.active)).await;
    let endpoint = shown["remote_url"].as_str().unwrap().to_string();
    set_remote(&main_api, p.active, "http://127.0.0.1:9").await;
    for record in records {
        let path = format!("/tables/{}/records/{}", p.main_table, record["id"]);
        assert_eq!(main_api.delete(&path).await.0, StatusCode::OK);
    }
    set_remote(&main_api, p.active, &endpoint).await;
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
    let p = synced_pair(dir.path(), &["Name"]).await;
    let (main_api, aux_api) = (p.main.admin(), p.aux.admin());
    let (main_table, aux_table, passive) = (p.main_table, p.aux_table, p.passive);
    let aux = &p.aux;
    let records = clients_on_both(&p, 20).await;
    let ids: Vec<i64> = records.iter().map(|r| r["id"].as_i64().unwrap()).collect();

    // Ten deletes (half the table) go out in one exchange.
    delete_in_one_exchange(&p, &records[..10]).await;
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
    // Five of the ten left: held under the default share, not now.
    delete_in_one_exchange(&p, &records[10..15]).await;
    eventually(30, "five of ten deleted at once, unguarded", || async {
        (aux_api.all_ids(aux_table, "active").await.len() == 5).then_some(())
    })
    .await;
    assert_eq!(status(&aux_api, passive).await["held"]["mass_delete"], 0);
}

/// Companies and Invoices, one way main → aux; returns (main's tables, aux's tables, the
/// fields: name, title, company link on each side, and the sync ids).
struct Invoicing {
    main_companies: i64,
    main_invoices: i64,
    aux_companies: i64,
    aux_invoices: i64,
    /// Name, Title, Company on main; the same on aux.
    m: [i64; 3],
    a: [i64; 3],
    passive: i64,
}

async fn invoicing(main_api: &Client, aux_api: &Client) -> Invoicing {
    let mut tables = Vec::new();
    let mut fields = Vec::new();
    for api in [main_api, aux_api] {
        let companies = api.create_table("Companies").await;
        let invoices = api.create_table("Invoices").await;
        let name = api.create_field(companies, "Name", "text", json!({})).await;
        let title = api.create_field(invoices, "Title", "text", json!({})).await;
        let company = api
            .create_field(
                invoices,
                "Company",
                "link",
                json!({ "table_id": companies }),
            )
            .await;
        tables.push((companies, invoices));
        fields.push([name, title, company]);
    }
    let (active, passive) = pair(main_api, aux_api, "123456").await;
    for no in fields[0] {
        add_field(main_api, active, no, "upload", None).await;
    }
    for (no, remote) in fields[1].iter().zip(fields[0]) {
        add_field(aux_api, passive, *no, "download", Some(remote)).await;
    }
    Invoicing {
        main_companies: tables[0].0,
        main_invoices: tables[0].1,
        aux_companies: tables[1].0,
        aux_invoices: tables[1].1,
        m: fields[0],
        a: fields[1],
        passive,
    }
}

#[tokio::test]
async fn a_link_to_a_record_deleted_here_is_held_and_applied_once_it_is_restored() {
    let dir = tempfile::tempdir().unwrap();
    let main = Server::start(&dir.path().join("main"));
    let aux = Server::start(&dir.path().join("aux"));
    let (main_api, aux_api) = (main.admin(), aux.admin());
    let s = invoicing(&main_api, &aux_api).await;
    let company = main_api
        .create_record(
            s.main_companies,
            json!({ s.m[0].to_string(): "ООО Ромашка" }),
        )
        .await;
    let aux_company = eventually(30, "the company on aux", || async {
        let ids = aux_api.all_ids(s.aux_companies, "active").await;
        ids.first().copied()
    })
    .await;
    aux_api
        .delete(&format!(
            "/tables/{}/records/{aux_company}",
            s.aux_companies
        ))
        .await;
    main_api
        .create_record(
            s.main_invoices,
            json!({ s.m[1].to_string(): "Счёт 1", s.m[2].to_string(): company["id"] }),
        )
        .await;

    // The invoice arrives; its link to the company aux deleted is held, not dropped.
    let held = eventually(30, "the link held", || async {
        let st = status(&aux_api, s.passive).await;
        (st["held"]["quarantine"] == 1).then_some(st)
    })
    .await;
    assert_eq!(held["connected"], true, "{held}");
    let (_, page) = aux_api
        .get(&format!("/tables/{}/records", s.aux_invoices))
        .await;
    assert_eq!(
        page["records"][0]["values"],
        json!({ s.a[1].to_string(): "Счёт 1", s.a[2].to_string(): null }),
        "the invoice is there, its link waits"
    );
    let (_, list) = aux_api.get(&format!("/syncs/{}/held", s.passive)).await;
    let reason = list["held"][0]["reason"].as_str().unwrap().to_string();
    assert!(reason.contains("deleted"), "{reason}");
    assert_eq!(
        list["held"][0]["label"], "Счёт 1",
        "named by its label: {list}"
    );
    let html = aux.web_page(&format!("/syncs/{}", s.passive), "en").await;
    assert!(html.contains("deleted"), "the sync's page lists it: {html}");

    // A later edit of the invoice travels; the link still waits, it is not emptied.
    let (_, invoices) = main_api
        .get(&format!("/tables/{}/records", s.main_invoices))
        .await;
    let main_invoice = invoices["records"][0]["id"].as_i64().unwrap();
    main_api
        .patch(
            &format!("/tables/{}/records/{main_invoice}", s.main_invoices),
            json!({ "values": { s.m[1].to_string(): "Счёт 1 (исправлен)" } }),
        )
        .await;
    eventually(30, "the edit on aux", || async {
        let (_, page) = aux_api
            .get(&format!("/tables/{}/records", s.aux_invoices))
            .await;
        (page["records"][0]["values"][s.a[1].to_string()] == "Счёт 1 (исправлен)").then_some(())
    })
    .await;
    assert_eq!(status(&aux_api, s.passive).await["held"]["quarantine"], 1);

    // The company is restored on aux: the held link lands by itself.
    let (code, body) = aux_api
        .post(
            &format!("/tables/{}/records/{aux_company}/restore", s.aux_companies),
            json!({}),
        )
        .await;
    assert!(code.is_success(), "{body}");
    eventually(45, "the held link applied", || async {
        let (_, page) = aux_api
            .get(&format!("/tables/{}/records", s.aux_invoices))
            .await;
        (page["records"][0]["values"][s.a[2].to_string()] == aux_company).then_some(())
    })
    .await;
    assert_eq!(status(&aux_api, s.passive).await["held"]["quarantine"], 0);
}

#[tokio::test]
async fn a_value_for_a_field_this_side_does_not_map_yet_is_held_until_it_is_mapped() {
    let dir = tempfile::tempdir().unwrap();
    let main = Server::start(&dir.path().join("main"));
    let aux = Server::start(&dir.path().join("aux"));
    let (main_api, aux_api) = (main.admin(), aux.admin());
    let (main_table, m) = clients(&main_api, &["Name", "Phone"]).await;
    let (aux_table, a) = clients(&aux_api, &["Name", "Phone"]).await;
    let (active, passive) = pair(&main_api, &aux_api, "123456").await;
    add_field(&main_api, active, m[0], "both", None).await;
    add_field(&main_api, active, m[1], "both", None).await;
    // Aux maps Name only, for now.
    add_field(&aux_api, passive, a[0], "both", Some(m[0])).await;
    main_api
        .create_record(
            main_table,
            json!({ m[0].to_string(): "ООО Ромашка", m[1].to_string(): "+7 900 111-22-33" }),
        )
        .await;
    let held = eventually(30, "the phone held", || async {
        let st = status(&aux_api, passive).await;
        (st["held"]["quarantine"] == 1).then_some(st)
    })
    .await;
    let (_, list) = aux_api.get(&format!("/syncs/{passive}/held")).await;
    let reason = list["held"][0]["reason"].as_str().unwrap();
    assert!(reason.contains("not mapped"), "{reason} {held}");
    let (_, page) = aux_api.get(&format!("/tables/{aux_table}/records")).await;
    assert_eq!(
        page["records"][0]["values"][a[0].to_string()],
        "ООО Ромашка"
    );

    // The second mapping request: the held phone lands.
    add_field(&aux_api, passive, a[1], "both", Some(m[1])).await;
    eventually(45, "the held phone applied", || async {
        let (_, page) = aux_api.get(&format!("/tables/{aux_table}/records")).await;
        (page["records"][0]["values"][a[1].to_string()] == "+7 900 111-22-33").then_some(())
    })
    .await;
    assert_eq!(status(&aux_api, passive).await["held"]["quarantine"], 0);
}

#[tokio::test]
async fn records_of_a_table_this_side_maps_no_field_of_yet_keep_every_value_until_it_does() {
    let dir = tempfile::tempdir().unwrap();
    let main = Server::start(&dir.path().join("main"));
    let aux = Server::start(&dir.path().join("aux"));
    let (main_api, aux_api) = (main.admin(), aux.admin());
    let (main_table, m) = clients(&main_api, &["Name", "Phone"]).await;
    let (aux_table, a) = clients(&aux_api, &["Name", "Phone"]).await;
    let (active, passive) = pair(&main_api, &aux_api, "123456").await;
    add_field(&main_api, active, m[0], "both", None).await;
    add_field(&main_api, active, m[1], "both", None).await;
    // Aux maps nothing of Clients yet; a client arrives whole, then an edit of one field.
    let record = main_api
        .create_record(
            main_table,
            json!({ m[0].to_string(): "ООО Ромашка", m[1].to_string(): "+7 900" }),
        )
        .await;
    eventually(30, "both values held", || async {
        (status(&aux_api, passive).await["held"]["quarantine"] == 2).then_some(())
    })
    .await;
    main_api
        .patch(
            &format!("/tables/{main_table}/records/{}", record["id"]),
            json!({ "values": { m[1].to_string(): "+7 911" } }),
        )
        .await;
    eventually(
        30,
        "the later phone held in place of the earlier",
        || async {
            let (_, list) = aux_api.get(&format!("/syncs/{passive}/held")).await;
            list["held"]
                .as_array()?
                .iter()
                .any(|h| h["item"].to_string().contains("+7 911"))
                .then_some(())
        },
    )
    .await;
    assert_eq!(status(&aux_api, passive).await["held"]["quarantine"], 2);
    add_field(&aux_api, passive, a[0], "both", Some(m[0])).await;
    add_field(&aux_api, passive, a[1], "both", Some(m[1])).await;
    eventually(45, "the client whole on aux", || async {
        let (_, page) = aux_api.get(&format!("/tables/{aux_table}/records")).await;
        (page["records"][0]["values"]
            == json!({ a[0].to_string(): "ООО Ромашка", a[1].to_string(): "+7 911" }))
        .then_some(())
    })
    .await;
    assert_eq!(status(&aux_api, passive).await["held"]["quarantine"], 0);
}

#[tokio::test]
async fn a_link_waiting_for_its_record_is_held_when_that_record_arrives_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let main = Server::start(&dir.path().join("main"));
    let aux = Server::start(&dir.path().join("aux"));
    let (main_api, aux_api) = (main.admin(), aux.admin());
    let s = invoicing(&main_api, &aux_api).await;
    // Companies paused on main: the invoice arrives before its company.
    let (_, fields) = main_api.get("/syncs/1/fields").await;
    let name_entry = fields["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["field_no"] == s.m[0])
        .unwrap()["id"]
        .clone();
    let (code, body) = main_api
        .patch(
            &format!("/syncs/1/fields/{name_entry}"),
            json!({ "direction": "off" }),
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{body}");
    let company = main_api
        .create_record(
            s.main_companies,
            json!({ s.m[0].to_string(): "ООО Ромашка" }),
        )
        .await;
    main_api
        .create_record(
            s.main_invoices,
            json!({ s.m[1].to_string(): "Счёт 1", s.m[2].to_string(): company["id"] }),
        )
        .await;
    eventually(30, "the invoice waiting for its company", || async {
        (status(&aux_api, s.passive).await["held"]["waiting_links"] == 1).then_some(())
    })
    .await;
    // The company is deleted on main, then companies travel again: it arrives deleted.
    main_api
        .delete(&format!(
            "/tables/{}/records/{}",
            s.main_companies, company["id"]
        ))
        .await;
    let (code, body) = main_api
        .patch(
            &format!("/syncs/1/fields/{name_entry}"),
            json!({ "direction": "upload" }),
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{body}");
    let held = eventually(30, "the link held, not dropped", || async {
        let st = status(&aux_api, s.passive).await;
        (st["held"]["quarantine"] == 1 && st["held"]["waiting_links"] == 0).then_some(st)
    })
    .await;
    let (_, list) = aux_api.get(&format!("/syncs/{}/held", s.passive)).await;
    let reason = list["held"][0]["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("deleted here"), "{reason} {held}");
    // Restored on aux: the link lands.
    let aux_company = aux_api.all_ids(s.aux_companies, "deleted").await[0];
    aux_api
        .post(
            &format!("/tables/{}/records/{aux_company}/restore", s.aux_companies),
            json!({}),
        )
        .await;
    eventually(45, "the held link applied", || async {
        let (_, page) = aux_api
            .get(&format!("/tables/{}/records", s.aux_invoices))
            .await;
        (page["records"][0]["values"][s.a[2].to_string()] == aux_company).then_some(())
    })
    .await;
}

/// Log entries whose message mentions `words`.
async fn logged(api: &Client, sync: i64, words: &str) -> Vec<Value> {
    let (_, log) = api.get(&format!("/syncs/{sync}/log?limit=1000")).await;
    log["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["message"].as_str().is_some_and(|m| m.contains(words)))
        .cloned()
        .collect()
}

#[tokio::test]
async fn every_hold_approval_and_discard_is_logged_with_the_log_off_and_the_list_shows_a_badge() {
    let dir = tempfile::tempdir().unwrap();
    let p = synced_pair(dir.path(), &["Name"]).await;
    let (main_api, aux_api) = (p.main.admin(), p.aux.admin());
    let (aux, passive) = (&p.aux, p.passive);
    for (api, sync) in [(&main_api, p.active), (&aux_api, passive)] {
        let (code, body) = api
            .patch(&format!("/syncs/{sync}"), json!({ "log": false }))
            .await;
        assert_eq!(code, StatusCode::OK, "{body}");
    }
    let records = clients_on_both(&p, 10).await;

    let badge = r#"<div class="held-badge">⚠ "#;
    let list_page = aux.web_page("/syncs", "en").await;
    assert!(!list_page.contains(badge), "nothing held yet: {list_page}");

    // Half the table deleted in one exchange: held, each hold logged by its record.
    delete_in_one_exchange(&p, &records[..5]).await;
    eventually(30, "the deletes held", || async {
        (status(&aux_api, passive).await["held"]["mass_delete"] == 5).then_some(())
    })
    .await;
    for record in &records[..5] {
        let uid = record["uid"].as_str().unwrap();
        let holds = logged(&aux_api, passive, uid).await;
        assert!(
            holds.iter().any(|e| e["kind"] == "held"),
            "the hold of {uid} logged: {holds:?}"
        );
    }

    // The sync list shows the badge with the count.
    let list_page = aux.web_page("/syncs", "en").await;
    assert!(
        list_page.contains(&format!("{badge}5 held changes</div>")),
        "{list_page}"
    );

    // A person approves one and discards another: both in the log.
    let (_, list) = aux_api.get(&format!("/syncs/{passive}/held")).await;
    let held = list["held"].as_array().unwrap();
    let (approved, discarded) = (
        held[0]["id"].as_i64().unwrap(),
        held[1]["id"].as_i64().unwrap(),
    );
    let (code, body) = aux_api
        .post(&format!("/syncs/{passive}/held/{approved}"), json!({}))
        .await;
    assert_eq!(code, StatusCode::OK, "{body}");
    let (code, _) = aux_api
        .delete(&format!("/syncs/{passive}/held/{discarded}"))
        .await;
    assert_eq!(code, StatusCode::NO_CONTENT);
    for (id, what) in [(approved, "approved"), (discarded, "discarded")] {
        let entries = logged(&aux_api, passive, &format!("held change {id} ")).await;
        assert!(
            entries
                .iter()
                .any(|e| e["message"].as_str().unwrap().contains(what)),
            "held change {id} {what}, in the log: {entries:?}"
        );
    }
}

#[tokio::test]
async fn fewer_than_five_deletes_in_one_exchange_are_never_held() {
    let dir = tempfile::tempdir().unwrap();
    let p = synced_pair(dir.path(), &["Name"]).await;
    let (aux_api, aux_table, passive) = (p.aux.admin(), p.aux_table, p.passive);
    let records = clients_on_both(&p, 10).await;

    // Four of ten (40%, over the 20% share) in one exchange: fewer than five, applied.
    delete_in_one_exchange(&p, &records[..4]).await;
    eventually(30, "four deletes applied at once", || async {
        (aux_api.all_ids(aux_table, "active").await.len() == 6).then_some(())
    })
    .await;
    assert_eq!(status(&aux_api, passive).await["held"]["mass_delete"], 0);
}
