//! One shared numbering (B-06): invoices created on every instance of a star get unique
//! numbers from the hub's sequence, the same on every instance; a spoke cut off from the
//! hub uses the numbers it holds and then refuses clearly, never inventing one.

use super::http::{add_field, pair, record_values, set_remote};
use crate::common::{Client, Server, eventually};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::collections::BTreeSet;

/// An Invoices table: No (number), Client (text).
pub async fn invoices(api: &Client) -> (i64, i64, i64) {
    let table = api.create_table("Invoices").await;
    let no = api.create_field(table, "No", "number", json!({})).await;
    let client = api.create_field(table, "Client", "text", json!({})).await;
    (table, no, client)
}

pub async fn set_numbering(api: &Client, field: i64, numbering: Value) {
    let (status, body) = api
        .patch(
            &format!("/fields/{field}"),
            json!({ "options": { "numbering": numbering } }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

async fn numbers_left(api: &Client, sync: i64) -> i64 {
    let (_, status) = api.get(&format!("/syncs/{sync}/status")).await;
    status["numbering"][0]["numbers_left"].as_i64().unwrap()
}

/// The numbers of every invoice, sorted by client; panics on a record without one.
async fn numbers_by_client(api: &Client, table: i64, no: i64, client: i64) -> Vec<(String, i64)> {
    let mut pairs: Vec<(String, i64)> = record_values(api, table)
        .await
        .iter()
        .map(|v| {
            (
                v[client.to_string()].as_str().unwrap().to_string(),
                v[no.to_string()]
                    .as_i64()
                    .expect("every invoice has a number"),
            )
        })
        .collect();
    pairs.sort();
    pairs
}

/// The hub's invoices without the one from before the syncs (an initial sync would send
/// that one; this test does not run one).
fn created_since(on_hub: &[(String, i64)]) -> Vec<(String, i64)> {
    on_hub.iter().filter(|(c, _)| c != "old").cloned().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invoices_made_anywhere_in_a_star_share_one_numbering() {
    let dir = tempfile::tempdir().unwrap();
    let hub = Server::start(&dir.path().join("hub"));
    let spokes: Vec<Server> = (1..=3)
        .map(|i| Server::start(&dir.path().join(format!("spoke{i}"))))
        .collect();
    let hub_api = hub.admin();
    let spoke_apis: Vec<Client> = spokes.iter().map(|s| s.admin()).collect();
    let (table, no, client) = invoices(&hub_api).await;
    // An invoice from before the numbering: the sequence starts past it.
    hub_api
        .create_record(
            table,
            json!({ no.to_string(): 1000, client.to_string(): "old" }),
        )
        .await;
    set_numbering(&hub_api, no, json!({})).await;

    let (mut spoke_syncs, mut hub_syncs) = (Vec::new(), Vec::new());
    for api in &spoke_apis {
        assert_eq!(invoices(api).await, (table, no, client));
        let (a, p) = pair(api, &hub_api, "123456").await;
        for field in [no, client] {
            add_field(api, a, field, "both", None).await;
            add_field(&hub_api, p, field, "both", Some(field)).await;
        }
        // Small blocks, so the test crosses several of them.
        set_numbering(api, no, json!({ "from_sync": a, "block": 4 })).await;
        spoke_syncs.push(a);
        hub_syncs.push(p);
    }

    // Ten invoices on each of the four instances, all at once.
    let mut creations = Vec::new();
    for (i, api) in std::iter::once(&hub_api).chain(&spoke_apis).enumerate() {
        for n in 0..10 {
            let api = api.clone();
            let values = json!({ client.to_string(): format!("client {i}-{n:02}") });
            creations.push(tokio::spawn(async move {
                let (status, body) = api
                    .post(
                        &format!("/tables/{table}/records"),
                        json!({ "values": values }),
                    )
                    .await;
                assert_eq!(status, StatusCode::CREATED, "{body}");
                body["values"][no.to_string()]
                    .as_i64()
                    .expect("a number was assigned")
            }));
        }
    }
    let mut numbers = BTreeSet::new();
    for creation in creations {
        assert!(
            numbers.insert(creation.await.unwrap()),
            "a number was given twice"
        );
    }
    assert_eq!(numbers.len(), 40);
    assert!(*numbers.first().unwrap() > 1000, "{numbers:?}");

    // The same number for the same invoice on every instance.
    let expected = eventually(60, "41 invoices everywhere", || async {
        let hub_view = numbers_by_client(&hub_api, table, no, client).await;
        (hub_view.len() == 41).then_some(hub_view)
    })
    .await;
    for api in &spoke_apis {
        eventually(60, "the spoke agrees", || async {
            (numbers_by_client(api, table, no, client).await == created_since(&expected))
                .then_some(())
        })
        .await;
    }

    // A number is the invoice's identity: neither typed on create nor edited.
    let (status, body) = spoke_apis[0]
        .post(
            &format!("/tables/{table}/records"),
            json!({ "values": { no.to_string(): 5, client.to_string(): "typed" } }),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("numbered automatically"),
        "{body}"
    );
    let some_id = spoke_apis[0].all_ids(table, "active").await[0];
    let (status, body) = spoke_apis[0]
        .patch(
            &format!("/tables/{table}/records/{some_id}"),
            json!({ "values": { no.to_string(): 7 } }),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");

    // A CSV import of 30 invoices on a spoke holding blocks of 4: numbers for every row are
    // fetched first, all in one go.
    let csv: String = std::iter::once("Client\n".to_string())
        .chain((0..30).map(|i| format!("imported {i:02}\n")))
        .collect();
    let response = spoke_apis[1]
        .raw(reqwest::Method::POST, &format!("/tables/{table}/import"))
        .body(csv)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let report: Value = response.json().await.unwrap();
    assert_eq!(report["imported"], 30, "{report}");
    let imported: Vec<i64> = numbers_by_client(&spoke_apis[1], table, no, client)
        .await
        .into_iter()
        .filter(|(c, _)| c.starts_with("imported"))
        .map(|(_, n)| n)
        .collect();
    assert_eq!(imported.len(), 30);
    for n in imported {
        assert!(numbers.insert(n), "number {n} given twice");
    }

    // The hub goes away: a spoke uses the numbers it holds, then says why it cannot go on.
    let spoke = &spoke_apis[0];
    eventually(20, "the spoke's block topped up", || async {
        (numbers_left(spoke, spoke_syncs[0]).await >= 2).then_some(())
    })
    .await;
    let hub_data = hub.kill();
    let held = numbers_left(spoke, spoke_syncs[0]).await;
    for n in 0..held {
        let made = spoke
            .create_record(table, json!({ client.to_string(): format!("offline {n}") }))
            .await;
        assert!(numbers.insert(made["values"][no.to_string()].as_i64().unwrap()));
    }
    let before = spoke.all_ids(table, "all").await.len();
    let (status, body) = spoke
        .post(
            &format!("/tables/{table}/records"),
            json!({ "values": { client.to_string(): "one too many" } }),
        )
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let detail = body["detail"].as_str().unwrap();
    assert!(
        detail.contains("no number left") && detail.contains("was not created"),
        "{detail}"
    );
    assert_eq!(
        spoke.all_ids(table, "all").await.len(),
        before,
        "nothing written"
    );
    let (_, status) = spoke
        .get(&format!("/syncs/{}/status", spoke_syncs[0]))
        .await;
    assert!(status["numbering"][0]["last_error"].is_string(), "{status}");

    // The hub is back: numbering goes on, still unique, and everything meets again.
    // Back on a port of its own: every spoke is pointed at it.
    let hub = Server::start(&hub_data);
    let hub_api = hub.admin();
    for ((api, spoke_sync), hub_sync) in spoke_apis.iter().zip(&spoke_syncs).zip(&hub_syncs) {
        set_remote(api, *spoke_sync, &format!("{}/sync/v1/{hub_sync}", hub.url)).await;
    }
    let made = eventually(30, "a number again", || async {
        let (status, body) = spoke
            .post(
                &format!("/tables/{table}/records"),
                json!({ "values": { client.to_string(): "after the outage" } }),
            )
            .await;
        (status == StatusCode::CREATED).then_some(body)
    })
    .await;
    assert!(numbers.insert(made["values"][no.to_string()].as_i64().unwrap()));
    let total = 41 + 30 + held as usize + 1;
    let expected = eventually(60, "every invoice on the hub", || async {
        let view = numbers_by_client(&hub_api, table, no, client).await;
        (view.len() == total).then_some(view)
    })
    .await;
    let distinct: BTreeSet<i64> = expected.iter().map(|(_, n)| *n).collect();
    assert_eq!(distinct.len(), total, "no number twice");
    for api in &spoke_apis {
        eventually(60, "every spoke agrees", || async {
            (numbers_by_client(api, table, no, client).await == created_since(&expected))
                .then_some(())
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chain_passes_number_requests_on_to_the_owner() {
    let dir = tempfile::tempdir().unwrap();
    let [a, b, c] = ["a", "b", "c"].map(|n| Server::start(&dir.path().join(n)));
    let [a_api, b_api, c_api] = [&a, &b, &c].map(|s| s.admin());
    let (table, no, client) = invoices(&a_api).await;
    assert_eq!(invoices(&b_api).await, (table, no, client));
    assert_eq!(invoices(&c_api).await, (table, no, client));
    set_numbering(&a_api, no, json!({ "start": 1 })).await;
    // A ← B ← C: B draws from A, C from B (which asks A).
    let mut links = Vec::new();
    for (active, passive) in [(&b_api, &a_api), (&c_api, &b_api)] {
        let (s, p) = pair(active, passive, "123456").await;
        for field in [no, client] {
            add_field(active, s, field, "both", None).await;
            add_field(passive, p, field, "both", Some(field)).await;
        }
        set_numbering(active, no, json!({ "from_sync": s, "block": 3 })).await;
        links.push((s, p));
    }
    let mut numbers = BTreeSet::new();
    for (name, api) in [("a", &a_api), ("b", &b_api), ("c", &c_api)] {
        for n in 0..4 {
            let made = api
                .create_record(table, json!({ client.to_string(): format!("{name}{n}") }))
                .await;
            assert!(numbers.insert(made["values"][no.to_string()].as_i64().unwrap()));
        }
    }
    let expected = eventually(60, "twelve invoices on A", || async {
        let view = numbers_by_client(&a_api, table, no, client).await;
        (view.len() == 12).then_some(view)
    })
    .await;
    for api in [&b_api, &c_api] {
        eventually(60, "the same numbers along the chain", || async {
            (numbers_by_client(api, table, no, client).await == expected).then_some(())
        })
        .await;
    }

    // Numbers are asked for by the side that starts the sync: B cannot draw through the
    // sync C starts.
    let (status, body) = b_api
        .patch(
            &format!("/fields/{no}"),
            json!({ "options": { "numbering": { "from_sync": links[1].1 } } }),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("a sync this instance starts (active side)"),
        "{body}"
    );
}

/// Over local folders the requests for numbers and the blocks travel in packet files, so
/// the side drawing numbers may be either side; here it is the passive one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn numbers_travel_through_folders_too() {
    use super::folders::link_by_folders;
    let dir = tempfile::tempdir().unwrap();
    let owner = Server::start(&dir.path().join("owner"));
    let branch = Server::start(&dir.path().join("branch"));
    let (owner_api, branch_api) = (owner.admin(), branch.admin());
    let (table, no, client) = invoices(&owner_api).await;
    assert_eq!(invoices(&branch_api).await, (table, no, client));
    set_numbering(&owner_api, no, json!({ "start": 9000 })).await;
    let fields = [(no, no), (client, client)];
    let (_, passive) = link_by_folders(dir.path(), &owner_api, &branch_api, &fields).await;
    set_numbering(&branch_api, no, json!({ "from_sync": passive, "block": 3 })).await;

    let mut numbers = BTreeSet::new();
    for n in 0..5 {
        for (api, name) in [(&branch_api, "branch"), (&owner_api, "owner")] {
            let made = api
                .create_record(table, json!({ client.to_string(): format!("{name} {n}") }))
                .await;
            assert!(numbers.insert(made["values"][no.to_string()].as_i64().unwrap()));
        }
    }
    assert!(numbers.iter().all(|n| *n >= 9000), "{numbers:?}");
    let expected = eventually(60, "ten invoices with the owner", || async {
        let view = numbers_by_client(&owner_api, table, no, client).await;
        (view.len() == 10).then_some(view)
    })
    .await;
    eventually(60, "the branch agrees", || async {
        (numbers_by_client(&branch_api, table, no, client).await == expected).then_some(())
    })
    .await;

    // The owner stops: the branch uses what it holds, then refuses with the reason.
    eventually(20, "the branch's block topped up", || async {
        (numbers_left(&branch_api, passive).await >= 2).then_some(())
    })
    .await;
    drop(owner);
    let held = numbers_left(&branch_api, passive).await;
    for n in 0..held {
        branch_api
            .create_record(table, json!({ client.to_string(): format!("offline {n}") }))
            .await;
    }
    let (status, body) = branch_api
        .post(
            &format!("/tables/{table}/records"),
            json!({ "values": { client.to_string(): "one too many" } }),
        )
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(
        body["detail"].as_str().unwrap().contains("no answer yet"),
        "{body}"
    );
}

/// Every adapter creates records through one server function that draws shared numbers
/// first (`crmsync::records`): a CSV import from the CLI of more rows than the branch
/// holds numbers for gets them from the owner (without the draw the domain refuses the
/// whole import: no number left), and so does a record typed into the web form just after,
/// when the branch holds none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cli_import_and_the_web_form_draw_numbers_from_the_owner_too() {
    use crate::common::cli;
    let dir = tempfile::tempdir().unwrap();
    let owner = Server::start(&dir.path().join("owner"));
    let branch_data = dir.path().join("branch");
    let branch = Server::start(&branch_data);
    let (owner_api, branch_api) = (owner.admin(), branch.admin());
    let (table, no, client) = invoices(&owner_api).await;
    assert_eq!(invoices(&branch_api).await, (table, no, client));
    set_numbering(&owner_api, no, json!({ "start": 500 })).await;
    let (active, passive) = pair(&branch_api, &owner_api, "123456").await;
    for field in [no, client] {
        add_field(&branch_api, active, field, "both", None).await;
        add_field(&owner_api, passive, field, "both", Some(field)).await;
    }
    // Blocks of 2: the branch never holds numbers for 25 rows by itself.
    set_numbering(&branch_api, no, json!({ "from_sync": active, "block": 2 })).await;
    // The server's own top-up done first: the import then draws exactly what it uses, and
    // leaves the branch holding none for the web form (the server tops up again only on its
    // own commits or every 10 s).
    eventually(20, "the branch's block topped up", || async {
        (numbers_left(&branch_api, active).await >= 1).then_some(())
    })
    .await;

    let file = dir.path().join("invoices.csv");
    let csv: String = std::iter::once("Client\n".to_string())
        .chain((0..25).map(|i| format!("cli {i:02}\n")))
        .collect();
    std::fs::write(&file, csv).unwrap();
    let (ok, out, err) = cli(&[
        "import",
        "--data",
        branch_data.to_str().unwrap(),
        "--table",
        "Invoices",
        file.to_str().unwrap(),
    ]);
    assert!(ok, "{out}\n{err}");

    let path = format!("/tables/{table}/new");
    let (status, to) = branch
        .web_form(&path, &path, &[(&format!("f{client}"), "web 1")])
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{to}");
    assert!(to.contains("notice=saved"), "{to}");

    let made = numbers_by_client(&branch_api, table, no, client).await;
    assert_eq!(made.len(), 26, "{made:?}");
    let numbers: BTreeSet<i64> = made.iter().map(|(_, n)| *n).collect();
    assert_eq!(numbers.len(), 26, "each its own number: {made:?}");
    assert!(numbers.iter().all(|n| *n >= 500), "{made:?}");
}
