//! Conflict rules per sync and per field (B-02): when both sides changed one field between
//! exchanges, the rule chosen on the active side decides, both ends apply it alike, the
//! decision is logged with both values and explained in the record's history, and edits of
//! different fields all survive.

use super::http::{quiet, set_remote, synced_pair};
use crate::common::{Client, clock_moves_on, eventually};
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn values_of(api: &Client, table: i64, uid: &str) -> Value {
    api.get(&format!("/tables/{table}/records/uid/{uid}"))
        .await
        .1["values"]
        .clone()
}

/// The sync's field entry for `field_no`.
async fn field_entry(api: &Client, sync: i64, field_no: i64) -> i64 {
    let (_, fields) = api.get(&format!("/syncs/{sync}/fields")).await;
    fields["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["field_no"] == field_no)
        .unwrap()["id"]
        .as_i64()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_active_sides_rule_decides_a_field_changed_on_both_sides() {
    let dir = tempfile::tempdir().unwrap();
    let pair = synced_pair(dir.path(), &["Name", "Phone", "Notes", "City"]).await;
    let (main, aux) = (pair.main.admin(), pair.aux.admin());
    let (m, a) = (&pair.m, &pair.a);
    let key = |fields: &Vec<i64>, i: usize| fields[i].to_string();

    // The main office wins by default; the phone is the branch's (its field's own rule);
    // notes keep the newer edit.
    let (status, body) = main
        .patch(
            &format!("/syncs/{}", pair.active),
            json!({ "conflict_policy": "this_side" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["conflict_policy"], "this_side");
    let notes = field_entry(&main, pair.active, m[2]).await;
    let (status, body) = main
        .patch(
            &format!("/syncs/{}/fields/{notes}", pair.active),
            json!({ "conflict_policy": "newer" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // The phone's rule set in the web UI, on the sync's page.
    let phone = field_entry(&main, pair.active, m[1]).await;
    let sync_page = format!("/syncs/{}", pair.active);
    let (status, _) = pair
        .main
        .web_form(
            &sync_page,
            &format!("{sync_page}/fields/{phone}/conflict"),
            &[("conflict_policy", "other_side")],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (_, fields) = main.get(&format!("/syncs/{}/fields", pair.active)).await;
    assert_eq!(
        fields["fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["conflict_policy"].clone())
            .collect::<Vec<_>>(),
        [
            json!(null),
            json!("other_side"),
            json!("newer"),
            json!(null)
        ]
    );
    // The passive side follows; it cannot choose a rule of its own.
    let (status, body) = aux
        .patch(
            &format!("/syncs/{}", pair.passive),
            json!({ "conflict_policy": "this_side" }),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("chosen on the active side")
    );

    let record = main
        .create_record(
            pair.main_table,
            json!({ key(m, 0): "ООО Ромашка", key(m, 1): "+7 100", key(m, 2): "-", key(m, 3): "Казань" }),
        )
        .await;
    let uid = record["uid"].as_str().unwrap().to_string();
    eventually(20, "the record on aux", || async {
        let v = values_of(&aux, pair.aux_table, &uid).await;
        (v[key(a, 0)] == "ООО Ромашка").then_some(())
    })
    .await;
    quiet(&main, pair.active, &aux, pair.passive).await;
    let aux_id = aux
        .get(&format!("/tables/{}/records/uid/{uid}", pair.aux_table))
        .await
        .1["id"]
        .as_i64()
        .unwrap();
    let main_id = record["id"].as_i64().unwrap();

    // The line goes down; both offices edit.
    let endpoint = format!("{}/sync/v1/{}", pair.aux.url, pair.passive);
    set_remote(&main, pair.active, "http://127.0.0.1:9/sync/v1/1").await;
    eventually(20, "the main office sees the line down", || async {
        let (_, s) = main.get(&format!("/syncs/{}/status", pair.active)).await;
        (s["connected"] == false).then_some(())
    })
    .await;
    let edit = |api: &Client, table: i64, id: i64, values: Value| {
        let api = api.clone();
        async move {
            let (status, body) = api
                .patch(
                    &format!("/tables/{table}/records/{id}"),
                    json!({ "values": values }),
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{body}");
            // The next edit is later on the clock.
            clock_moves_on().await;
        }
    };
    // Name: main first, the branch later — main's stays by the sync's rule.
    edit(
        &main,
        pair.main_table,
        main_id,
        json!({ key(m, 0): "ООО Ромашка (main)" }),
    )
    .await;
    edit(
        &aux,
        pair.aux_table,
        aux_id,
        json!({ key(a, 0): "ООО Ромашка (branch)" }),
    )
    .await;
    // Phone: the branch first, main later — the branch's stays by the field's rule.
    edit(
        &aux,
        pair.aux_table,
        aux_id,
        json!({ key(a, 1): "+7 222 (branch)" }),
    )
    .await;
    edit(
        &main,
        pair.main_table,
        main_id,
        json!({ key(m, 1): "+7 111 (main)" }),
    )
    .await;
    // Notes: main first, the branch later — the newer edit stays.
    edit(
        &main,
        pair.main_table,
        main_id,
        json!({ key(m, 2): "main's note" }),
    )
    .await;
    edit(
        &aux,
        pair.aux_table,
        aux_id,
        json!({ key(a, 2): "branch's note" }),
    )
    .await;
    // City: changed on one side only — no conflict, it simply travels.
    edit(&aux, pair.aux_table, aux_id, json!({ key(a, 3): "Самара" })).await;

    set_remote(&main, pair.active, &endpoint).await;
    let wanted = [
        "ООО Ромашка (main)",
        "+7 222 (branch)",
        "branch's note",
        "Самара",
    ];
    for (api, table, fields) in [(&main, pair.main_table, m), (&aux, pair.aux_table, a)] {
        eventually(30, "both offices agree", || async {
            let v = values_of(api, table, &uid).await;
            (0..4).all(|i| v[key(fields, i)] == wanted[i]).then_some(())
        })
        .await;
    }
    // Settled: nothing moves any more, and nothing has flipped back.
    quiet(&main, pair.active, &aux, pair.passive).await;
    for (api, table, fields) in [(&main, pair.main_table, m), (&aux, pair.aux_table, a)] {
        let v = values_of(api, table, &uid).await;
        let now: Vec<&str> = (0..4)
            .map(|i| v[key(fields, i)].as_str().unwrap())
            .collect();
        assert_eq!(now, wanted, "settled, nothing flips back");
    }

    // Every decided conflict is in a log with both values.
    let mut decided = Vec::new();
    for (api, sync) in [(&main, pair.active), (&aux, pair.passive)] {
        let (_, log) = api.get(&format!("/syncs/{sync}/log?limit=1000")).await;
        for e in log["entries"].as_array().unwrap() {
            if e["kind"] == "conflict" {
                decided.push((
                    e["detail"]["kept"].clone(),
                    e["detail"]["discarded"].clone(),
                ));
            }
        }
    }
    for (kept, lost) in [
        ("ООО Ромашка (main)", "ООО Ромашка (branch)"),
        ("+7 222 (branch)", "+7 111 (main)"),
        ("branch's note", "main's note"),
    ] {
        assert!(
            decided.contains(&(json!(kept), json!(lost))),
            "a logged conflict keeping {kept:?} over {lost:?}: {decided:?}"
        );
    }

    // The history says which rule decided the name — on the side that decided it (which
    // side that is depends on which message crossed the line first).
    let mut rules = Vec::new();
    let mut pages = String::new();
    for (server, table, id, field) in [
        (&pair.main, pair.main_table, main_id, m[0]),
        (&pair.aux, pair.aux_table, aux_id, a[0]),
    ] {
        let (_, history) = server
            .admin()
            .get(&format!("/tables/{table}/records/{id}/history"))
            .await;
        rules.extend(
            history["history"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|c| c["fields"].as_array().cloned().unwrap_or_default())
                .filter(|f| f["field_no"] == field && f["new"] == "ООО Ромашка (main)")
                .filter_map(|f| f["provenance"]["rule"].as_str().map(str::to_string)),
        );
        pages.push_str(
            &server
                .web_page(&format!("/tables/{table}/{id}"), "en")
                .await,
        );
    }
    assert!(
        rules
            .iter()
            .any(|r| r.starts_with("conflict rule of the sync")),
        "a history names the rule: {rules:?}"
    );
    assert!(
        pages.contains("conflict rule"),
        "the record page says it in words"
    );
}

/// (status, first field's value) of the record `uid` on one side.
async fn status_and_name(api: &Client, table: i64, field: i64, uid: &str) -> (Value, Value) {
    let (_, record) = api.get(&format!("/tables/{table}/records/uid/{uid}")).await;
    (
        record["status"].clone(),
        record["values"][field.to_string()].clone(),
    )
}

/// Deleting and restoring stay newer-wins whatever the rule: the rules decide field values
/// only; a delete on one side and an edit on the other both survive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletes_and_restores_stay_newer_wins_under_the_conflict_rules() {
    let dir = tempfile::tempdir().unwrap();
    let pair = synced_pair(dir.path(), &["Name"]).await;
    let (main, aux) = (pair.main.admin(), pair.aux.admin());
    let (m, a) = (pair.m[0], pair.a[0]);
    let mut records = Vec::new();
    for name in ["A", "B", "C"] {
        let record = main
            .create_record(pair.main_table, json!({ m.to_string(): name }))
            .await;
        records.push((
            record["id"].as_i64().unwrap(),
            record["uid"].as_str().unwrap().to_string(),
        ));
    }
    let mut aux_ids = Vec::new();
    for (_, uid) in &records {
        aux_ids.push(
            eventually(20, "the record on aux", || async {
                let (_, r) = aux
                    .get(&format!("/tables/{}/records/uid/{uid}", pair.aux_table))
                    .await;
                r["id"].as_i64()
            })
            .await,
        );
    }
    quiet(&main, pair.active, &aux, pair.passive).await;
    let endpoint = format!("{}/sync/v1/{}", pair.aux.url, pair.passive);
    let line_down = || async {
        set_remote(&main, pair.active, "http://127.0.0.1:9/sync/v1/1").await;
        eventually(20, "the main office sees the line down", || async {
            let (_, s) = main.get(&format!("/syncs/{}/status", pair.active)).await;
            (s["connected"] == false).then_some(())
        })
        .await;
    };
    let act = |api: &Client, table: i64, id: i64, what: &'static str| {
        let api = api.clone();
        async move {
            let path = format!("/tables/{table}/records/{id}");
            let (status, body) = match what {
                "delete" => api.delete(&path).await,
                "restore" => api.post(&format!("{path}/restore"), json!({})).await,
                name => {
                    api.patch(&path, json!({ "values": { m.to_string(): name } }))
                        .await
                }
            };
            assert_eq!(status, StatusCode::OK, "{what}: {body}");
            // The next write is later on the clock: "newer" is decided by these stamps.
            clock_moves_on().await;
        }
    };
    let rule = |policy: &'static str| {
        let main = main.clone();
        async move {
            let (status, body) = main
                .patch(
                    &format!("/syncs/{}", pair.active),
                    json!({ "conflict_policy": policy }),
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{body}");
        }
    };
    let agree = |wanted: [(&'static str, &'static str); 3]| {
        let (main, aux, records) = (main.clone(), aux.clone(), records.clone());
        async move {
            for (api, table, field) in [(&main, pair.main_table, m), (&aux, pair.aux_table, a)] {
                for ((_, uid), (status, name)) in records.iter().zip(wanted) {
                    eventually(30, &format!("{uid}: {status}, {name}"), || async {
                        (status_and_name(api, table, field, uid).await
                            == (json!(status), json!(name)))
                            .then_some(())
                    })
                    .await;
                }
            }
        }
    };

    // The main office's rule (`this_side`): main deletes A first, the branch deletes and
    // restores it later — the newer restore wins. C: main renames it, the branch deletes
    // it later — deleted, with main's name, on both ends.
    rule("this_side").await;
    line_down().await;
    act(&main, pair.main_table, records[0].0, "delete").await;
    act(&main, pair.main_table, records[2].0, "C (main)").await;
    act(&aux, pair.aux_table, aux_ids[0], "delete").await;
    act(&aux, pair.aux_table, aux_ids[0], "restore").await;
    act(&aux, pair.aux_table, aux_ids[2], "delete").await;
    set_remote(&main, pair.active, &endpoint).await;
    agree([("active", "A"), ("active", "B"), ("deleted", "C (main)")]).await;
    quiet(&main, pair.active, &aux, pair.passive).await;

    // The branch's rule (`other_side`): the branch deletes B first, main deletes and
    // restores it later — the newer restore wins again.
    rule("other_side").await;
    line_down().await;
    act(&aux, pair.aux_table, aux_ids[1], "delete").await;
    act(&main, pair.main_table, records[1].0, "delete").await;
    act(&main, pair.main_table, records[1].0, "restore").await;
    set_remote(&main, pair.active, &endpoint).await;
    agree([("active", "A"), ("active", "B"), ("deleted", "C (main)")]).await;
    quiet(&main, pair.active, &aux, pair.passive).await;
    agree([("active", "A"), ("active", "B"), ("deleted", "C (main)")]).await;
}
