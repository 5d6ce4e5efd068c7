use crate::common::{Client, Server, clock_moves_on, eventually};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// A Clients table with the given fields; returns (table, field numbers in order).
pub async fn clients(api: &Client, fields: &[&str]) -> (i64, Vec<i64>) {
    let table = api.create_table("Clients").await;
    let mut numbers = Vec::new();
    for name in fields {
        numbers.push(api.create_field(table, name, "text", json!({})).await);
    }
    (table, numbers)
}

/// The passive side first (S-11), then the active side pointing at its endpoint_url.
pub async fn pair(active: &Client, passive: &Client, password_on_active: &str) -> (i64, i64) {
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

pub async fn add_field(
    api: &Client,
    sync: i64,
    field_no: i64,
    direction: &str,
    remote: Option<i64>,
) {
    let (status, body) = api
        .post(
            &format!("/syncs/{sync}/fields"),
            json!({ "field_no": field_no, "direction": direction, "remote_field_no": remote }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

/// Points an active sync at another address (an unreachable one holds its changes back).
pub async fn set_remote(api: &Client, sync: i64, url: &str) {
    let (status, body) = api
        .patch(&format!("/syncs/{sync}"), json!({ "remote_url": url }))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

pub async fn record_values(api: &Client, table: i64) -> Vec<Value> {
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

    // With the active side's address set, the copy links to the original (S-23).
    aux_api
        .patch(
            &format!("/syncs/{passive}"),
            json!({ "remote_access": true, "remote_url": main.url }),
        )
        .await;
    let copy_json = aux_api
        .ok(
            Method::GET,
            &format!("/tables/{aux_table}/records/{}", copy["id"]),
            None,
        )
        .await;
    let link = copy_json["remote"][0]["url"]
        .as_str()
        .expect("a link to the active side's record")
        .to_string();
    let original = main_api
        .ok(
            Method::GET,
            link.trim_start_matches(&format!("{}/api/v1", main.url)),
            None,
        )
        .await;
    assert_eq!(original["id"], created["id"]);

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
    // Retried and refused again and again, the failure is in the server log once.
    eventually(30, "three refused attempts", || async {
        let (_, log) = aux_api.get(&format!("/syncs/{passive}/log")).await;
        let refusals = log["entries"]
            .as_array()?
            .iter()
            .filter(|e| e["kind"] == "auth")
            .count();
        (refusals >= 3).then_some(())
    })
    .await;
    let server_log = || std::fs::read_to_string(main.data.with_extension("log")).unwrap();
    // The wrong password's own line (the passive side's pause after several, which may
    // follow on a slow run, is another state with its own line).
    let turned_red = |log: &str| {
        log.lines()
            .filter(|l| l.contains("sync not connected") && l.contains("reason=\"wrong password:"))
            .count()
    };
    assert_eq!(turned_red(&server_log()), 1, "{}", server_log());

    // Setting the right password makes it connect and deliver.
    main_api
        .patch(&format!("/syncs/{active}"), json!({ "password": "123456" }))
        .await;
    eventually(30, "delivery after the password is fixed", || async {
        (record_values(&aux_api, aux_table).await.len() == 1).then_some(())
    })
    .await;
    let log = server_log();
    assert!(log.contains("sync connected"), "{log}");
    assert_eq!(turned_red(&log), 1, "{log}");
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

/// Waits until both sides of a sync are quiet (see `quiet_all`).
pub async fn quiet(active_api: &Client, active: i64, passive_api: &Client, passive: i64) {
    quiet_all(&[(active_api, active), (passive_api, passive)]).await;
}

/// Quiescence: every sync connected with nothing to send or to receive, and nothing moving
/// — each sync's cursors (`sent_seq`, `received_seq`), its held changes and its instance's
/// change log (`last_change_seq`) the same at every poll for longer than a sync period
/// (the tests' syncs run every second), so an exchange under way or a packet file waiting
/// in a folder shows as a move before it is taken for quiet.
pub async fn quiet_all(syncs: &[(&Client, i64)]) {
    let period = std::time::Duration::from_millis(1500);
    let still_since = std::cell::RefCell::new(None::<(std::time::Instant, Vec<Value>)>);
    eventually(60, "every sync quiet", || async {
        let mut positions = Vec::new();
        for (api, sync) in syncs {
            let (_, s) = api.get(&format!("/syncs/{sync}/status")).await;
            if s["connected"] != true || s["pending_out"] != 0 || s["pending_in"] != 0 {
                *still_since.borrow_mut() = None;
                return None;
            }
            positions.push(json!([
                s["sent_seq"],
                s["received_seq"],
                s["last_change_seq"],
                s["held"]
            ]));
        }
        let mut still = still_since.borrow_mut();
        match &*still {
            Some((since, before)) if *before == positions => {
                (since.elapsed() > period).then_some(())
            }
            _ => {
                *still = Some((std::time::Instant::now(), positions));
                None
            }
        }
    })
    .await;
}

#[tokio::test]
async fn seed_case_two_payments_flow_down_and_order_status_flows_up_in_one_table() {
    let dir = tempfile::tempdir().unwrap();
    let main = Server::start(&dir.path().join("main"));
    let aux = Server::start(&dir.path().join("aux"));
    let (main_api, aux_api) = (main.admin(), aux.admin());
    let (main_table, m) = clients(&main_api, &["Order", "Paid", "Status"]).await;
    let (aux_table, a) = clients(&aux_api, &["Order", "Paid", "Status"]).await;
    let (active, passive) = pair(&main_api, &aux_api, "123456").await;
    // Main: order number and payment go out, status comes in. Aux: the other way round.
    add_field(&main_api, active, m[0], "both", None).await;
    add_field(&main_api, active, m[1], "upload", None).await;
    add_field(&main_api, active, m[2], "download", None).await;
    add_field(&aux_api, passive, a[0], "both", Some(m[0])).await;
    add_field(&aux_api, passive, a[1], "download", Some(m[1])).await;
    add_field(&aux_api, passive, a[2], "upload", Some(m[2])).await;

    let order = main_api
        .create_record(
            main_table,
            json!({ m[0].to_string(): "A-1", m[1].to_string(): "paid 100" }),
        )
        .await;
    let copy = eventually(20, "the order on the auxiliary side", || async {
        let page = aux_api
            .ok(Method::GET, &format!("/tables/{aux_table}/records"), None)
            .await;
        page["records"]
            .as_array()
            .unwrap()
            .first()
            .filter(|r| r["values"][a[1].to_string()] == "paid 100")
            .cloned()
    })
    .await;
    aux_api
        .patch(
            &format!("/tables/{aux_table}/records/{}", copy["id"]),
            json!({ "values": { a[2].to_string(): "shipped", a[1].to_string(): "tampered" } }),
        )
        .await;
    eventually(20, "the status on the main side", || async {
        let r = main_api
            .ok(
                Method::GET,
                &format!("/tables/{main_table}/records/{}", order["id"]),
                None,
            )
            .await;
        (r["values"][m[2].to_string()] == "shipped").then_some(())
    })
    .await;
    quiet(&main_api, active, &aux_api, passive).await;
    let r = main_api
        .ok(
            Method::GET,
            &format!("/tables/{main_table}/records/{}", order["id"]),
            None,
        )
        .await;
    assert_eq!(
        r["values"][m[1].to_string()],
        "paid 100",
        "payments only flow down"
    );
}

#[tokio::test]
async fn the_direction_matrix() {
    let dir = tempfile::tempdir().unwrap();
    let main = Server::start(&dir.path().join("main"));
    let aux = Server::start(&dir.path().join("aux"));
    let (main_api, aux_api) = (main.admin(), aux.admin());
    let directions = ["both", "upload", "download", "off"];
    let names: Vec<String> = (0..16)
        .map(|i| format!("F{i}"))
        .chain(["Marker".to_string()])
        .collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let (main_table, m) = clients(&main_api, &names).await;
    let (aux_table, a) = clients(&aux_api, &names).await;
    let (active, passive) = pair(&main_api, &aux_api, "123456").await;
    for i in 0..16 {
        add_field(&main_api, active, m[i], directions[i / 4], None).await;
        add_field(&aux_api, passive, a[i], directions[i % 4], Some(m[i])).await;
    }
    add_field(&main_api, active, m[16], "both", None).await;
    add_field(&aux_api, passive, a[16], "both", Some(m[16])).await;
    let sends = |d: &str| d == "both" || d == "upload";
    let takes = |d: &str| d == "both" || d == "download";

    let mut values = serde_json::Map::new();
    for no in &m[..16] {
        values.insert(no.to_string(), json!("from main"));
    }
    values.insert(m[16].to_string(), json!("m1"));
    let record = main_api
        .create_record(main_table, Value::Object(values))
        .await;
    let copy = eventually(20, "the record with marker m1", || async {
        let page = aux_api
            .ok(Method::GET, &format!("/tables/{aux_table}/records"), None)
            .await;
        page["records"]
            .as_array()
            .unwrap()
            .first()
            .filter(|r| r["values"][a[16].to_string()] == "m1")
            .cloned()
    })
    .await;
    for i in 0..16 {
        let flows = sends(directions[i / 4]) && takes(directions[i % 4]);
        let expected = if flows {
            json!("from main")
        } else {
            Value::Null
        };
        assert_eq!(
            copy["values"][a[i].to_string()],
            expected,
            "main {} → aux {}",
            directions[i / 4],
            directions[i % 4]
        );
    }

    let mut values = serde_json::Map::new();
    for no in &a[..16] {
        values.insert(no.to_string(), json!("from aux"));
    }
    values.insert(a[16].to_string(), json!("m2"));
    aux_api
        .patch(
            &format!("/tables/{aux_table}/records/{}", copy["id"]),
            json!({ "values": values }),
        )
        .await;
    let back = eventually(20, "marker m2 on the main side", || async {
        let r = main_api
            .ok(
                Method::GET,
                &format!("/tables/{main_table}/records/{}", record["id"]),
                None,
            )
            .await;
        (r["values"][m[16].to_string()] == "m2").then_some(r)
    })
    .await;
    for i in 0..16 {
        let flows = sends(directions[i % 4]) && takes(directions[i / 4]);
        let expected = if flows { "from aux" } else { "from main" };
        assert_eq!(
            back["values"][m[i].to_string()],
            expected,
            "aux {} → main {}",
            directions[i % 4],
            directions[i / 4]
        );
    }
}

#[tokio::test]
async fn deletes_and_restores_travel_and_conflicts_resolve_the_same_way_on_both_sides() {
    let dir = tempfile::tempdir().unwrap();
    let main = Server::start(&dir.path().join("main"));
    let aux = Server::start(&dir.path().join("aux"));
    let (main_api, aux_api) = (main.admin(), aux.admin());
    let (main_table, m) = clients(&main_api, &["Name", "Phone", "City"]).await;
    let (aux_table, a) = clients(&aux_api, &["Name", "Phone", "City"]).await;
    let (active, passive) = pair(&main_api, &aux_api, "123456").await;
    for i in 0..3 {
        add_field(&main_api, active, m[i], "both", None).await;
        add_field(&aux_api, passive, a[i], "both", Some(m[i])).await;
    }
    let record = main_api
        .create_record(
            main_table,
            json!({ m[0].to_string(): "Anna", m[1].to_string(): "1", m[2].to_string(): "Omsk" }),
        )
        .await;
    let main_id = record["id"].as_i64().unwrap();
    let aux_id = eventually(20, "the record on aux", || async {
        let page = aux_api
            .ok(Method::GET, &format!("/tables/{aux_table}/records"), None)
            .await;
        page["records"]
            .as_array()
            .unwrap()
            .first()
            .map(|r| r["id"].as_i64().unwrap())
    })
    .await;

    aux_api
        .delete(&format!("/tables/{aux_table}/records/{aux_id}"))
        .await;
    eventually(20, "the delete on main", || async {
        let r = main_api
            .ok(
                Method::GET,
                &format!("/tables/{main_table}/records/{main_id}"),
                None,
            )
            .await;
        (r["status"] == "deleted").then_some(())
    })
    .await;
    main_api
        .post(
            &format!("/tables/{main_table}/records/{main_id}/restore"),
            json!({}),
        )
        .await;
    eventually(20, "the restore on aux", || async {
        let r = aux_api
            .ok(
                Method::GET,
                &format!("/tables/{aux_table}/records/{aux_id}"),
                None,
            )
            .await;
        (r["status"] == "active").then_some(())
    })
    .await;
    quiet(&main_api, active, &aux_api, passive).await;

    // Cut the link, edit both sides, reconnect: a conflict on Name, different fields apart.
    let endpoint = main_api
        .ok(Method::GET, &format!("/syncs/{active}"), None)
        .await["remote_url"]
        .clone();
    main_api
        .patch(
            &format!("/syncs/{active}"),
            json!({ "remote_url": "http://127.0.0.1:9" }),
        )
        .await;
    eventually(20, "the active side notices", || async {
        let (_, s) = main_api.get(&format!("/syncs/{active}/status")).await;
        (s["connected"] == false).then_some(())
    })
    .await;
    main_api
        .patch(
            &format!("/tables/{main_table}/records/{main_id}"),
            json!({ "values": { m[0].to_string(): "Anna (main)", m[1].to_string(): "2" } }),
        )
        .await;
    // Later on the clock, so the expected winner does not hang on a counter tie.
    clock_moves_on().await;
    aux_api
        .patch(
            &format!("/tables/{aux_table}/records/{aux_id}"),
            json!({ "values": { a[0].to_string(): "Anna (aux)", a[2].to_string(): "Perm" } }),
        )
        .await;
    main_api
        .patch(
            &format!("/syncs/{active}"),
            json!({ "remote_url": endpoint }),
        )
        .await;
    quiet(&main_api, active, &aux_api, passive).await;
    eventually(20, "both sides agree", || async {
        let r1 = main_api
            .ok(
                Method::GET,
                &format!("/tables/{main_table}/records/{main_id}"),
                None,
            )
            .await;
        let r2 = aux_api
            .ok(
                Method::GET,
                &format!("/tables/{aux_table}/records/{aux_id}"),
                None,
            )
            .await;
        let same = r1["values"][m[0].to_string()] == r2["values"][a[0].to_string()]
            && r1["values"][m[1].to_string()] == r2["values"][a[1].to_string()]
            && r1["values"][m[2].to_string()] == r2["values"][a[2].to_string()];
        same.then_some((r1, r2))
    })
    .await;
    let r = main_api
        .ok(
            Method::GET,
            &format!("/tables/{main_table}/records/{main_id}"),
            None,
        )
        .await;
    assert_eq!(
        r["values"][m[0].to_string()],
        "Anna (aux)",
        "the later edit wins everywhere"
    );
    assert_eq!(
        r["values"][m[1].to_string()],
        "2",
        "different fields both survive"
    );
    assert_eq!(r["values"][m[2].to_string()], "Perm");
    let (_, log) = aux_api
        .get(&format!("/syncs/{passive}/log?limit=1000"))
        .await;
    let conflict = log["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "conflict")
        .unwrap_or_else(|| panic!("the losing value is in the log: {log}"));
    assert_eq!(conflict["detail"]["discarded"], "Anna (main)");
    assert_eq!(conflict["detail"]["kept"], "Anna (aux)");
}

#[tokio::test]
async fn the_cli_runs_an_exchange_and_reports_sync_status() {
    let dir = tempfile::tempdir().unwrap();
    let main = Server::start(&dir.path().join("main"));
    let aux = Server::start(&dir.path().join("aux"));
    let (main_api, aux_api) = (main.admin(), aux.admin());
    let (_, m) = clients(&main_api, &["Name"]).await;
    let (aux_table, a) = clients(&aux_api, &["Name"]).await;
    let (active, passive) = pair(&main_api, &aux_api, "123456").await;
    add_field(&main_api, active, m[0], "upload", None).await;
    add_field(&aux_api, passive, a[0], "download", Some(m[0])).await;
    quiet(&main_api, active, &aux_api, passive).await;

    // The main instance is stopped; rows are imported into its data directory and the
    // CLI delivers them.
    let main_data = main.kill();
    let csv = dir.path().join("rows.csv");
    std::fs::write(&csv, "Name\nAlpha\nBeta\n").unwrap();
    let data = main_data.to_str().unwrap();
    let (ok, _, err) = crate::common::cli(&[
        "import",
        "--data",
        data,
        "--table",
        "Clients",
        csv.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    let (ok, out, err) = crate::common::cli(&["sync-now", "--data", data]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("exchanged"), "{out}");
    assert_eq!(record_values(&aux_api, aux_table).await.len(), 2);
    let (ok, out, _) = crate::common::cli(&["status", "--data", data]);
    assert!(ok);
    assert!(
        out.contains("\"branch\" (active side, over HTTP): connected; 0 change(s) to send"),
        "{out}"
    );

    let aux_data = aux.kill();
    let (ok, _, err) = crate::common::cli(&["sync-now", "--data", data]);
    assert!(!ok);
    assert!(err.contains("cannot reach the passive side"), "{err}");
    let (_, out, _) = crate::common::cli(&["status", "--data", data]);
    assert!(out.contains("not connected: cannot reach"), "{out}");
    drop(aux_data);
}

#[tokio::test]
async fn the_passive_side_sees_the_active_catalogue_and_mapping_problems_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let main = Server::start(&dir.path().join("main"));
    let aux = Server::start(&dir.path().join("aux"));
    let (main_api, aux_api) = (main.admin(), aux.admin());
    let (_, m) = clients(&main_api, &["Name", "Phone"]).await;
    let aux_table = aux_api.create_table("Clients").await;
    let a_name = aux_api
        .create_field(aux_table, "Name", "text", json!({}))
        .await;
    let a_count = aux_api
        .create_field(aux_table, "Count", "number", json!({}))
        .await;
    let (active, passive) = pair(&main_api, &aux_api, "123456").await;
    add_field(&main_api, active, m[0], "both", None).await;
    add_field(&aux_api, passive, a_name, "both", Some(999)).await;
    add_field(&aux_api, passive, a_count, "both", Some(m[1])).await;
    let status = eventually(20, "the problems in the active side's status", || async {
        let (_, s) = main_api.get(&format!("/syncs/{active}/status")).await;
        s["reason"]
            .as_str()
            .is_some_and(|r| r.contains("no field 999") && r.contains("cannot take"))
            .then_some(s)
    })
    .await;
    assert_eq!(status["connected"], true);
    assert!(
        status["reason"].as_str().unwrap().contains("cannot take"),
        "{status}"
    );
    let catalog = aux_api
        .ok(Method::GET, &format!("/syncs/{passive}/catalog"), None)
        .await;
    let fields = catalog["peer_fields"].as_array().unwrap();
    assert!(
        fields
            .iter()
            .any(|f| f["no"] == m[0] && f["name"] == "Name" && f["type"] == "text"),
        "{catalog}"
    );
    assert_eq!(
        catalog["problems"].as_array().unwrap().len(),
        2,
        "{catalog}"
    );
}

/// Two instances with a Clients table of `fields`, every field synced both ways over HTTP
/// (main active, aux passive), quiet.
pub struct SyncedPair {
    pub main: Server,
    pub aux: Server,
    pub main_table: i64,
    pub aux_table: i64,
    /// main's fields, in the order given.
    pub m: Vec<i64>,
    /// aux's fields, in the order given.
    pub a: Vec<i64>,
    pub active: i64,
    pub passive: i64,
}

pub async fn synced_pair(dir: &std::path::Path, fields: &[&str]) -> SyncedPair {
    let main = Server::start(&dir.join("main"));
    let aux = Server::start(&dir.join("aux"));
    let (main_api, aux_api) = (main.admin(), aux.admin());
    let (main_table, m) = clients(&main_api, fields).await;
    let (aux_table, a) = clients(&aux_api, fields).await;
    let (active, passive) = pair(&main_api, &aux_api, "123456").await;
    for (mine, theirs) in m.iter().zip(&a) {
        add_field(&main_api, active, *mine, "both", None).await;
        add_field(&aux_api, passive, *theirs, "both", Some(*mine)).await;
    }
    quiet(&main_api, active, &aux_api, passive).await;
    SyncedPair {
        main,
        aux,
        main_table,
        aux_table,
        m,
        a,
        active,
        passive,
    }
}
