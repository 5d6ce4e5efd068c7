//! Initial sync that matches instead of duplicating (B-05): two offices that kept the same
//! clients apart are joined by the phone number. A preview says what would be created,
//! paired, overwritten or left as a conflict and writes nothing; keys held by several
//! records stop the real run; the real run pairs, and the pairs keep travelling.

use super::http::{add_field, clients, pair, quiet_all, record_values};
use crate::common::{Client, Server, clock_moves_on, eventually};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

fn sorted_names(values: &[Value], name: i64) -> Vec<String> {
    let mut names: Vec<String> = values
        .iter()
        .map(|v| v[name.to_string()].as_str().unwrap_or_default().to_string())
        .collect();
    names.sort();
    names
}

/// Each side (api, table, name field) ends with exactly these clients — none doubled —
/// and still holds them once the sync between them is quiet.
async fn each_side_holds(
    sides: [(&Client, i64, i64); 2],
    syncs: [(&Client, i64); 2],
    names: &[&str],
) {
    let mut wanted: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    wanted.sort();
    for (api, table, name) in sides {
        eventually(
            30,
            "the same clients on each side, none doubled",
            || async {
                (sorted_names(&record_values(api, table).await, name) == wanted).then_some(())
            },
        )
        .await;
    }
    quiet_all(&syncs).await;
    for (api, table, name) in sides {
        assert_eq!(sorted_names(&record_values(api, table).await, name), wanted);
    }
}

async fn add(api: &Client, table: i64, f: &[i64], name: &str, phone: &str) -> Value {
    api.create_record(
        table,
        json!({ f[0].to_string(): name, f[1].to_string(): phone }),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_offices_clients_are_paired_by_phone_not_doubled() {
    let dir = tempfile::tempdir().unwrap();
    let main = Server::start(&dir.path().join("main"));
    let aux = Server::start(&dir.path().join("aux"));
    let (main_api, aux_api) = (main.admin(), aux.admin());
    let (mt, m) = clients(&main_api, &["Name", "Phone"]).await;
    let (at, a) = clients(&aux_api, &["Name", "Phone"]).await;

    // The same clients typed in each office, phones written differently.
    let romashka = add(&main_api, mt, &m, "Ромашка", "+7 (900) 111-22-33").await;
    let ivanov = add(&main_api, mt, &m, "ИП Иванов", "+7 900 222 33 44").await;
    add(&main_api, mt, &m, "Only in main", "+7 900 555").await;
    add(&main_api, mt, &m, "Сидоров", "+7 900 999").await;
    // The branch types its clients later.
    clock_moves_on().await;
    let aux_romashka = add(&aux_api, at, &a, "ООО Ромашка", "7 900 111 22 33").await;
    let aux_ivanov = add(&aux_api, at, &a, "ИП Иванов", "+7 900 222 33 44").await;
    add(&aux_api, at, &a, "Only in aux", "+7 900 777").await;
    // Typed twice by mistake: the key is ambiguous on this side.
    add(&aux_api, at, &a, "Сидоров", "+7 900 999").await;
    let twice = add(&aux_api, at, &a, "Сидоров (2)", "+7-900-999").await;

    let (active, passive) = pair(&main_api, &aux_api, "123456").await;
    for (mine, theirs) in m.iter().zip(&a) {
        add_field(&main_api, active, *mine, "both", None).await;
        add_field(&aux_api, passive, *theirs, "both", Some(*mine)).await;
    }
    eventually(
        20,
        "the passive side knows the active side's fields",
        || async {
            let (_, s) = main_api.get(&format!("/syncs/{active}/status")).await;
            (s["connected"] == true).then_some(())
        },
    )
    .await;

    // The preview: what would happen, and nothing written.
    let before = (
        record_values(&main_api, mt).await,
        record_values(&aux_api, at).await,
    );
    let (status, preview) = main_api
        .post(
            &format!("/syncs/{active}/match"),
            json!({ "field_no": m[1] }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{preview}");
    let plan = &preview["plan"];
    assert_eq!(preview["dry_run"], true);
    assert_eq!(plan["paired"], 2, "{plan}");
    assert_eq!(
        plan["unchanged"], 1,
        "Иванов is the same on both sides: {plan}"
    );
    assert_eq!(plan["create_there"]["first"], json!(["7900555"]), "{plan}");
    assert_eq!(plan["create_here"]["first"], json!(["7900777"]), "{plan}");
    // The branch typed the name later: its name wins, here.
    assert_eq!(plan["overwrite_here"]["count"], 1, "{plan}");
    assert_eq!(
        plan["overwrite_here"]["first"][0]["fields"],
        json!([
            { "field_no": m[0], "here": "Ромашка", "there": "ООО Ромашка" },
            { "field_no": m[1], "here": "+7 (900) 111-22-33", "there": "7 900 111 22 33" },
        ])
    );
    assert_eq!(plan["ambiguous_keys"], 1, "{plan}");
    assert!(
        plan["conflicts"]["first"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("1 record(s) here and 2 there"),
        "{plan}"
    );
    assert_eq!(
        (
            record_values(&main_api, mt).await,
            record_values(&aux_api, at).await
        ),
        before,
        "a preview writes nothing"
    );

    // The same preview in the web UI, its run button held back by the duplicate.
    let page = main
        .web_page(&format!("/syncs/{active}/match?field={}", m[1]), "en")
        .await;
    assert!(page.contains(r#"data-paired="2""#), "{page}");
    assert!(
        page.contains("1 record(s) here and 2 there have this key"),
        "{page}"
    );
    assert!(page.contains(r#"id="match-run" disabled"#), "{page}");
    assert!(page.contains("merge those duplicates or choose another key field first"));

    // Ambiguous keys stop the real run, with nothing changed.
    let (status, body) = main_api
        .post(
            &format!("/syncs/{active}/match"),
            json!({ "field_no": m[1], "dry_run": false }),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("merge those duplicates"),
        "{body}"
    );
    let (_, aux_log) = aux_api.get(&format!("/syncs/{passive}/log")).await;
    assert!(
        !aux_log.to_string().contains("paired"),
        "nothing paired yet: {aux_log}"
    );

    // The branch merges its duplicate; the real run pairs and syncs.
    let twice_id = twice["id"].as_i64().unwrap();
    let (status, _) = aux_api
        .delete(&format!("/tables/{at}/records/{twice_id}"))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, run) = main_api
        .post(
            &format!("/syncs/{active}/match"),
            json!({ "field_no": m[1], "dry_run": false }),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{run}");
    assert_eq!(run["plan"]["paired"], 3, "{run}");
    let job = run["job"]["id"].as_i64().unwrap();
    eventually(60, "the initial sync to finish", || async {
        let job = main_api
            .ok(Method::GET, &format!("/jobs/{job}"), None)
            .await;
        assert_ne!(job["state"], "failed", "{job}");
        (job["state"] == "done").then_some(())
    })
    .await;
    let five = [
        "ИП Иванов",
        "Only in aux",
        "Only in main",
        "ООО Ромашка",
        "Сидоров",
    ];
    let sides = [(&main_api, mt, m[0]), (&aux_api, at, a[0])];
    let syncs = [(&main_api, active), (&aux_api, passive)];
    each_side_holds(sides, syncs, &five).await;

    // Paired records stay paired: an edit on either side reaches the other's own record.
    let aux_ivanov_id = aux_ivanov["id"].as_i64().unwrap();
    aux_api
        .patch(
            &format!("/tables/{at}/records/{aux_ivanov_id}"),
            json!({ "values": { a[1].to_string(): "+7 900 222 00 00" } }),
        )
        .await;
    let main_romashka_id = romashka["id"].as_i64().unwrap();
    main_api
        .patch(
            &format!("/tables/{mt}/records/{main_romashka_id}"),
            json!({ "values": { m[1].to_string(): "+7 900 111 00 00" } }),
        )
        .await;
    let ivanov_id = ivanov["id"].as_i64().unwrap();
    eventually(20, "the branch's edit on main's own record", || async {
        let (_, r) = main_api
            .get(&format!("/tables/{mt}/records/{ivanov_id}"))
            .await;
        (r["values"][m[1].to_string()] == "+7 900 222 00 00").then_some(())
    })
    .await;
    let aux_romashka_id = aux_romashka["id"].as_i64().unwrap();
    eventually(20, "main's edit on the branch's own record", || async {
        let (_, r) = aux_api
            .get(&format!("/tables/{at}/records/{aux_romashka_id}"))
            .await;
        (r["values"][a[1].to_string()] == "+7 900 111 00 00").then_some(())
    })
    .await;
    each_side_holds(sides, syncs, &five).await;

    // A second preview finds them all one already.
    let (_, again) = main_api
        .post(
            &format!("/syncs/{active}/match"),
            json!({ "field_no": m[1] }),
        )
        .await;
    assert_eq!(again["plan"]["already_same"], 5, "{again}");
    assert_eq!(again["plan"]["create_there"]["count"], 0, "{again}");
    assert_eq!(again["plan"]["create_here"]["count"], 0, "{again}");
}

/// Over local folders the records and the pairs travel in packet files; the initial sync
/// starts only once the other side has recorded the pairs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offices_linked_by_folders_are_paired_too() {
    use super::folders::link_by_folders;
    let dir = tempfile::tempdir().unwrap();
    let main = Server::start(&dir.path().join("main"));
    let aux = Server::start(&dir.path().join("aux"));
    let (main_api, aux_api) = (main.admin(), aux.admin());
    let (mt, m) = clients(&main_api, &["Name", "Email"]).await;
    let (at, a) = clients(&aux_api, &["Name", "Email"]).await;
    add(&main_api, mt, &m, "Ромашка", "info@romashka.ru").await;
    add(&main_api, mt, &m, "Лютик", "lutik@mail.ru").await;
    add(&aux_api, at, &a, "Ромашка", " INFO@Romashka.ru").await;
    add(&aux_api, at, &a, "Василёк", "vasilek@mail.ru").await;
    let pairs: Vec<(i64, i64)> = m.iter().copied().zip(a.iter().copied()).collect();
    let (active, passive) = link_by_folders(dir.path(), &main_api, &aux_api, &pairs).await;
    let preview = eventually(30, "a preview through the folders", || async {
        let (status, body) = main_api
            .post(
                &format!("/syncs/{active}/match"),
                json!({ "field_no": m[1] }),
            )
            .await;
        (status == StatusCode::OK).then_some(body)
    })
    .await;
    let plan = &preview["plan"];
    assert_eq!(plan["paired"], 1, "{plan}");
    assert_eq!(
        plan["create_there"]["first"],
        json!(["lutik@mail.ru"]),
        "{plan}"
    );
    assert_eq!(
        plan["create_here"]["first"],
        json!(["vasilek@mail.ru"]),
        "{plan}"
    );

    let (status, run) = main_api
        .post(
            &format!("/syncs/{active}/match"),
            json!({ "field_no": m[1], "dry_run": false }),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{run}");
    let sides = [(&main_api, mt, m[0]), (&aux_api, at, a[0])];
    let syncs = [(&main_api, active), (&aux_api, passive)];
    each_side_holds(sides, syncs, &["Ромашка", "Лютик", "Василёк"]).await;
}
