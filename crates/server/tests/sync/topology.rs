//! Three and four instances (issue 6): a hub with spokes and a chain. A change made
//! anywhere reaches every instance, forwarded by the ones in between, never comes back,
//! and everything goes quiet once it has arrived; concurrent edits of one field on three
//! instances end as one value everywhere.

use super::http::{add_field, clients, pair, quiet_all, record_values};
use crate::common::{Client, Server, eventually};
use serde_json::{Value, json};

/// Both fields both ways between `active` (a spoke, or the upstream end of a link) and
/// `passive`; returns (active sync, passive sync).
async fn link(active: &Client, passive: &Client, fields: &[i64]) -> (i64, i64) {
    let (a, p) = pair(active, passive, "123456").await;
    for field in fields {
        add_field(active, a, *field, "both", None).await;
        // Every instance made its table and fields in the same order: the same numbers.
        add_field(passive, p, *field, "both", Some(*field)).await;
    }
    (a, p)
}

/// Every instance holds exactly `expected` (values of active records, in id order).
async fn everywhere(apis: &[&Client], table: i64, expected: &[Value], what: &str) {
    eventually(60, what, || async {
        for api in apis {
            let mut values = record_values(api, table).await;
            values.sort_by_key(|v| v.to_string());
            let mut wanted = expected.to_vec();
            wanted.sort_by_key(|v| v.to_string());
            if values != wanted {
                return None;
            }
        }
        Some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hub_and_three_spokes_share_one_clients_table() {
    let dir = tempfile::tempdir().unwrap();
    let hub = Server::start(&dir.path().join("hub"));
    let spokes: Vec<Server> = (1..=3)
        .map(|i| Server::start(&dir.path().join(format!("spoke{i}"))))
        .collect();
    let hub_api = hub.admin();
    let spoke_apis: Vec<Client> = spokes.iter().map(|s| s.admin()).collect();
    let (table, f) = clients(&hub_api, &["Name", "Phone"]).await;
    let mut syncs = Vec::new();
    for api in &spoke_apis {
        let (spoke_table, spoke_fields) = clients(api, &["Name", "Phone"]).await;
        assert_eq!((spoke_table, &spoke_fields), (table, &f));
        // Spokes (branches, laptops) are active; the hub answers.
        let (a, p) = link(api, &hub_api, &f).await;
        syncs.push((api, a));
        syncs.push((&hub_api, p));
    }
    let all: Vec<&Client> = std::iter::once(&hub_api).chain(spoke_apis.iter()).collect();
    let (name, phone) = (f[0].to_string(), f[1].to_string());

    // Made on one spoke: on the hub and the other spokes.
    let record = spoke_apis[0]
        .create_record(table, json!({ &name: "ООО Ромашка", &phone: "+7 1" }))
        .await;
    everywhere(
        &all,
        table,
        &[json!({ &name: "ООО Ромашка", &phone: "+7 1" })],
        "spoke 1's record everywhere",
    )
    .await;

    // Edited on another spoke, a different field on the hub: both edits survive everywhere.
    let id_on = |api: &Client| {
        let api = api.clone();
        let uid = record["uid"].as_str().unwrap().to_string();
        async move {
            api.get(&format!("/tables/{table}/records/uid/{uid}"))
                .await
                .1["id"]
                .as_i64()
                .unwrap()
        }
    };
    let on_spoke3 = id_on(&spoke_apis[2]).await;
    let on_hub = id_on(&hub_api).await;
    spoke_apis[2]
        .patch(
            &format!("/tables/{table}/records/{on_spoke3}"),
            json!({ "values": { &name: "ООО Ромашка-Плюс" } }),
        )
        .await;
    hub_api
        .patch(
            &format!("/tables/{table}/records/{on_hub}"),
            json!({ "values": { &phone: "+7 2" } }),
        )
        .await;
    everywhere(
        &all,
        table,
        &[json!({ &name: "ООО Ромашка-Плюс", &phone: "+7 2" })],
        "both edits everywhere",
    )
    .await;

    // The same field edited on three instances at once: one value everywhere.
    let mut writes = Vec::new();
    for (i, api) in [&spoke_apis[0], &spoke_apis[1], &hub_api]
        .into_iter()
        .enumerate()
    {
        let id = id_on(api).await;
        writes.push((api.clone(), id, format!("version {i}")));
    }
    for (api, id, text) in &writes {
        api.patch(
            &format!("/tables/{table}/records/{id}"),
            json!({ "values": { &name: text } }),
        )
        .await;
    }
    let agreed = eventually(60, "one value everywhere", || async {
        let mut seen = Vec::new();
        for api in &all {
            seen.push(record_values(api, table).await);
        }
        (seen.windows(2).all(|w| w[0] == w[1]) && seen[0].len() == 1).then(|| seen[0][0].clone())
    })
    .await;
    assert!(
        agreed[&name].as_str().unwrap().starts_with("version "),
        "{agreed}"
    );

    // Deleted on the hub: deleted everywhere.
    hub_api
        .delete(&format!("/tables/{table}/records/{on_hub}"))
        .await;
    everywhere(&all, table, &[], "the delete everywhere").await;
    // Nothing keeps circulating: every change log stops growing.
    quiet_all(&syncs).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chain_forwards_changes_both_ways_through_the_middle() {
    let dir = tempfile::tempdir().unwrap();
    let [a, b, c] = ["a", "b", "c"].map(|n| Server::start(&dir.path().join(n)));
    let (a_api, b_api, c_api) = (a.admin(), b.admin(), c.admin());
    let (table, f) = clients(&a_api, &["Name", "Phone"]).await;
    clients(&b_api, &["Name", "Phone"]).await;
    clients(&c_api, &["Name", "Phone"]).await;
    // A → B (B answers), B → C (C answers): B is passive for A and active for C.
    let (ab, ba) = link(&a_api, &b_api, &f).await;
    let (bc, cb) = link(&b_api, &c_api, &f).await;
    let (name, phone) = (f[0].to_string(), f[1].to_string());
    let all = [&a_api, &b_api, &c_api];

    a_api
        .create_record(table, json!({ &name: "from A", &phone: "1" }))
        .await;
    c_api
        .create_record(table, json!({ &name: "from C", &phone: "3" }))
        .await;
    everywhere(
        &all,
        table,
        &[
            json!({ &name: "from A", &phone: "1" }),
            json!({ &name: "from C", &phone: "3" }),
        ],
        "both ends' records at all three",
    )
    .await;
    // C's copy of A's record, edited at C, comes back to A through B.
    let page = c_api
        .ok(
            reqwest::Method::GET,
            &format!("/tables/{table}/records?q=from%20A"),
            None,
        )
        .await;
    let at_c = page["records"][0]["id"].as_i64().unwrap();
    c_api
        .patch(
            &format!("/tables/{table}/records/{at_c}"),
            json!({ "values": { &phone: "1-edited-at-C" } }),
        )
        .await;
    everywhere(
        &all,
        table,
        &[
            json!({ &name: "from A", &phone: "1-edited-at-C" }),
            json!({ &name: "from C", &phone: "3" }),
        ],
        "C's edit back at A",
    )
    .await;
    // Nothing keeps circulating: every change log stops growing.
    quiet_all(&[(&a_api, ab), (&b_api, ba), (&b_api, bc), (&c_api, cb)]).await;
}
