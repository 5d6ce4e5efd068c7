//! File contents travel with their records on every transport (B-03): a 100 MB file each
//! way, a replaced file replacing the other side's, chunk files cleaned up, a shop's file
//! arriving from a script, a corrupted chunk refused, and a transfer killed mid-file
//! resuming at the first missing chunk in flat memory.

use super::faults::{Action, Fault, Relay};
use super::folders::local_sync;
use super::ftp::{ftp_server, ftp_sync_as};
use super::http::{add_field, pair, set_remote};
use crate::common::{Client, Server, content, eventually, peak_rss_kib};
use crmsync_sync::content::{CHUNK_BYTES, chunk_count};
use reqwest::Method;
use serde_json::json;
use sha2::{Digest, Sha256};
use std::path::Path;

const BIG: usize = 100 << 20;

/// A Contracts table with a Name (text) and a Scan (file) field: (table, name, scan).
async fn contracts(api: &Client) -> (i64, i64, i64) {
    let table = api.create_table("Contracts").await;
    let name = api.create_field(table, "Name", "text", json!({})).await;
    let scan = api.create_field(table, "Scan", "file", json!({})).await;
    (table, name, scan)
}

/// Waits until a record of `table` shows the file with checksum `sha`; returns its id.
async fn arrived(api: &Client, table: i64, scan: i64, sha: &str) -> i64 {
    eventually(120, &format!("the file {sha}"), || async {
        let page = api
            .ok(
                Method::GET,
                &format!("/tables/{table}/records?limit=10"),
                None,
            )
            .await;
        page["records"]
            .as_array()?
            .iter()
            .find(|r| r["values"][scan.to_string()]["sha256"] == sha)
            .and_then(|r| r["id"].as_i64())
    })
    .await
}

/// Two instances whose Contracts sync both ways: a 100 MB file made on the first arrives
/// whole on the second; replaced there by another, it replaces the first's.
async fn a_big_file_both_ways(
    first: &Client,
    (first_table, first_name, first_scan): (i64, i64, i64),
    second: &Client,
    (second_table, _, second_scan): (i64, i64, i64),
) {
    let record = first
        .create_record(first_table, json!({ first_name.to_string(): "Contract 7" }))
        .await;
    let id = record["id"].as_i64().unwrap();
    let scan = content(BIG, 7);
    let sha = hex::encode(Sha256::digest(&scan));
    first
        .upload_file(first_table, id, first_scan, "скан.pdf", scan)
        .await;
    let copy = arrived(second, second_table, second_scan, &sha).await;
    assert_eq!(
        second.file_checksum(second_table, copy, second_scan).await,
        (BIG as u64, sha.clone()),
        "the same content on the other side"
    );
    let (_, record) = second
        .get(&format!("/tables/{second_table}/records/{copy}"))
        .await;
    assert_eq!(
        record["values"][second_scan.to_string()]["name"],
        "скан.pdf"
    );

    let replacement = content(BIG, 8);
    let replaced = hex::encode(Sha256::digest(&replacement));
    second
        .upload_file(second_table, copy, second_scan, "v2.pdf", replacement)
        .await;
    arrived(first, first_table, first_scan, &replaced).await;
    assert_eq!(
        first.file_checksum(first_table, id, first_scan).await,
        (BIG as u64, replaced),
        "the replaced file replaced the first side's"
    );
}

fn chunk_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|n| n.contains(".chunk"))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn a_100_mb_file_travels_both_ways_over_http() {
    let dir = tempfile::tempdir().unwrap();
    let main = Server::start(&dir.path().join("main"));
    let aux = Server::start(&dir.path().join("aux"));
    let (main_api, aux_api) = (main.admin(), aux.admin());
    let m = contracts(&main_api).await;
    let a = contracts(&aux_api).await;
    let (active, passive) = pair(&main_api, &aux_api, "123456").await;
    add_field(&main_api, active, m.1, "both", None).await;
    add_field(&main_api, active, m.2, "both", None).await;
    add_field(&aux_api, passive, a.1, "both", Some(m.1)).await;
    add_field(&aux_api, passive, a.2, "both", Some(m.2)).await;
    a_big_file_both_ways(&main_api, m, &aux_api, a).await;
}

#[tokio::test]
async fn a_100_mb_file_travels_both_ways_through_local_folders_and_its_chunks_are_removed() {
    let dir = tempfile::tempdir().unwrap();
    let (to_aux, to_main) = (dir.path().join("to-aux"), dir.path().join("to-main"));
    let main = Server::start(&dir.path().join("main"));
    let aux = Server::start(&dir.path().join("aux"));
    let (main_api, aux_api) = (main.admin(), aux.admin());
    let m = contracts(&main_api).await;
    let a = contracts(&aux_api).await;
    let active = local_sync(&main_api, "active", &to_aux, &to_main).await;
    let passive = local_sync(&aux_api, "passive", &to_main, &to_aux).await;
    add_field(&main_api, active, m.1, "both", None).await;
    add_field(&main_api, active, m.2, "both", None).await;
    add_field(&aux_api, passive, a.1, "both", Some(m.1)).await;
    add_field(&aux_api, passive, a.2, "both", Some(m.2)).await;
    a_big_file_both_ways(&main_api, m, &aux_api, a).await;
    eventually(20, "no chunk files left in either folder", || async {
        (chunk_files(&to_aux).is_empty() && chunk_files(&to_main).is_empty()).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_100_mb_file_travels_both_ways_between_ftp_and_local_folders() {
    let dir = tempfile::tempdir().unwrap();
    let ftp_root = dir.path().join("ftp-root");
    std::fs::create_dir_all(&ftp_root).unwrap();
    let port = ftp_server(&ftp_root).await;
    let main = Server::start(&dir.path().join("main"));
    let shop = Server::start(&dir.path().join("shop"));
    let (main_api, shop_api) = (main.admin(), shop.admin());
    let m = contracts(&main_api).await;
    let s = contracts(&shop_api).await;
    // Main reaches the FTP server; the shop runs where its folders are (S-28).
    let active = ftp_sync_as(&main_api, "active", port, "shop", "/shop/in", "/shop/out").await;
    let passive = local_sync(
        &shop_api,
        "passive",
        &ftp_root.join("shop/out"),
        &ftp_root.join("shop/in"),
    )
    .await;
    add_field(&main_api, active, m.1, "both", None).await;
    add_field(&main_api, active, m.2, "both", None).await;
    add_field(&shop_api, passive, s.1, "both", Some(m.1)).await;
    add_field(&shop_api, passive, s.2, "both", Some(m.2)).await;
    a_big_file_both_ways(&main_api, m, &shop_api, s).await;
    eventually(20, "no chunk files left on the FTP server", || async {
        (chunk_files(&ftp_root.join("shop/in")).is_empty()
            && chunk_files(&ftp_root.join("shop/out")).is_empty())
        .then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_shops_file_arrives_from_a_script_and_a_corrupted_chunk_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (outgoing, orders, staging) = (
        dir.path().join("to-shop"),
        dir.path().join("orders"),
        dir.path().join("staging"),
    );
    std::fs::create_dir_all(&orders).unwrap();
    std::fs::create_dir_all(&staging).unwrap();
    let crm = Server::start(&dir.path().join("crm"));
    let api = crm.admin();
    let (table, title, invoice) = contracts(&api).await;
    let sync = local_sync(&api, "active", &outgoing, &orders).await;
    add_field(&api, sync, title, "download", None).await;
    add_field(&api, sync, invoice, "download", None).await;
    let key = super::folders::issue_writer_key(&api, sync).await;
    // Two chunks: 8 MiB and the rest.
    let pdf = dir.path().join("invoice 1042.pdf");
    let bytes = content(9 << 20, 3);
    std::fs::write(&pdf, &bytes).unwrap();
    let sha = hex::encode(Sha256::digest(&bytes));
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/web_shop_order.py"
    );
    let drop_order = |folder: &Path| {
        let output = std::process::Command::new("python3")
            .arg(script)
            .args(["--folder", folder.to_str().unwrap(), "--key", &key])
            .args(["--seq", "1", "--table", &table.to_string()])
            .arg(format!("--field={title}=Order 1042"))
            .arg(format!("--file={invoice}={}", pdf.display()))
            .output()
            .expect("python3 runs the example");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    };

    // Written aside, one byte of the second chunk changed, then moved in (chunks first).
    drop_order(&staging);
    let mut names = chunk_files(&staging);
    names.sort();
    assert_eq!(names.len(), 2, "{names:?}");
    let second = staging.join(&names[1]);
    let mut chunk = std::fs::read(&second).unwrap();
    let at = chunk.len() - 100;
    chunk[at] ^= 1;
    std::fs::write(&second, chunk).unwrap();
    for name in &names {
        std::fs::rename(staging.join(name), orders.join(name)).unwrap();
    }
    let packet = std::fs::read_dir(&staging)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .find(|n| n.ends_with(".cspk"))
        .unwrap();
    std::fs::rename(staging.join(&packet), orders.join(&packet)).unwrap();
    eventually(20, "the refusal in the log", || async {
        let (_, log) = api.get(&format!("/syncs/{sync}/log")).await;
        log["entries"]
            .as_array()?
            .iter()
            .any(|e| {
                e["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("does not authenticate"))
            })
            .then_some(())
    })
    .await;
    // Moved aside, then its content removed, just after the refusal is logged.
    eventually(
        10,
        "the refused packet moved aside and its content removed",
        || async {
            (orders.join(format!("{packet}.rejected")).exists() && chunk_files(&orders).is_empty())
                .then_some(())
        },
    )
    .await;
    let (_, page) = api.get(&format!("/tables/{table}/records")).await;
    assert_eq!(page["records"], json!([]), "nothing applied");

    // The shop sends it again, intact: the order arrives with its invoice.
    drop_order(&orders);
    let id = arrived(&api, table, invoice, &sha).await;
    assert_eq!(api.file_checksum(table, id, invoice).await, (9 << 20, sha));
    let (_, record) = api.get(&format!("/tables/{table}/records/{id}")).await;
    assert_eq!(record["values"][title.to_string()], "Order 1042");
    assert_eq!(
        record["values"][invoice.to_string()]["name"],
        "invoice 1042.pdf"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_100_mb_file_travels_both_ways_ftp_to_ftp() {
    let dir = tempfile::tempdir().unwrap();
    let ftp_root = dir.path().join("ftp-root");
    std::fs::create_dir_all(&ftp_root).unwrap();
    let port = ftp_server(&ftp_root).await;
    let main = Server::start(&dir.path().join("main"));
    let aux = Server::start(&dir.path().join("aux"));
    let (main_api, aux_api) = (main.admin(), aux.admin());
    let m = contracts(&main_api).await;
    let a = contracts(&aux_api).await;
    let active = ftp_sync_as(
        &main_api,
        "active",
        port,
        "main",
        "/cb/upload",
        "/cb/download",
    )
    .await;
    let passive = ftp_sync_as(
        &aux_api,
        "passive",
        port,
        "aux",
        "/cb/download",
        "/cb/upload",
    )
    .await;
    add_field(&main_api, active, m.1, "both", None).await;
    add_field(&main_api, active, m.2, "both", None).await;
    add_field(&aux_api, passive, a.1, "both", Some(m.1)).await;
    add_field(&aux_api, passive, a.2, "both", Some(m.2)).await;
    a_big_file_both_ways(&main_api, m, &aux_api, a).await;
}

/// Contracts on main and aux syncing both ways, the sync held off (pointed nowhere) until
/// a test points it at aux: (main's and aux's Contracts, the active and passive sync).
async fn contracts_held_off(
    main: &Client,
    aux: &Client,
) -> ((i64, i64, i64), (i64, i64, i64), i64, i64) {
    let m = contracts(main).await;
    let a = contracts(aux).await;
    let (active, passive) = pair(main, aux, "123456").await;
    add_field(main, active, m.1, "both", None).await;
    add_field(main, active, m.2, "both", None).await;
    add_field(aux, passive, a.1, "both", Some(m.1)).await;
    add_field(aux, passive, a.2, "both", Some(m.2)).await;
    set_remote(main, active, "http://127.0.0.1:9/sync/v1/1").await;
    (m, a, active, passive)
}

/// A 100 MiB file stored on one side: its SHA-256.
async fn a_big_file(api: &Client, (table, name, scan): (i64, i64, i64)) -> String {
    let id = api
        .create_record(table, json!({ name.to_string(): "Contract 9" }))
        .await["id"]
        .as_i64()
        .unwrap();
    let bytes = content(BIG, 9);
    let sha = hex::encode(Sha256::digest(&bytes));
    api.upload_file(table, id, scan, "scan.pdf", bytes).await;
    sha
}

/// How much of the file `sha` a killed instance held in `data`: asserts it was killed
/// mid-file (at least a chunk there, not the whole file).
fn held_mid_file(data: &Path, sha: &str) -> u64 {
    let part = data.join(format!("files/incoming/{sha}.part"));
    let whole = data.join(format!("files/{}/{sha}", &sha[..2]));
    let held = std::fs::metadata(&part).map_or(0, |m| m.len());
    assert!(
        (CHUNK_BYTES..BIG as u64).contains(&held) && !whole.exists(),
        "killed mid-file: {held} of {BIG} bytes there"
    );
    held
}

/// The chunks of `sha` requested through `relay` with `method` ("PUT" to send, "GET" to
/// fetch), in order.
fn chunks_requested(relay: &Relay, method: &str, sha: &str) -> Vec<u64> {
    relay
        .requests()
        .iter()
        .filter(|line| line.starts_with(&format!("{method} ")))
        .filter_map(|line| {
            let (_, after) = line.split_once(&format!("/content/{sha}/"))?;
            after.split(['?', ' ']).next()?.parse().ok()
        })
        .collect()
}

/// Asserts that neither process's peak memory grew with the file.
fn flat_memory(sender: (&Server, u64), receiver: (&Server, u64)) {
    let grew =
        |(server, before): (&Server, u64)| peak_rss_kib(server.pid()).saturating_sub(before) >> 10;
    let (sent, received) = (grew(sender), grew(receiver));
    // One 8 MiB chunk at a time measured +24 to +64 MiB (freed chunks the allocator keeps
    // per thread); the whole file in memory adds its 100 MiB on top of that.
    assert!(
        sent < 88 && received < 88,
        "peak RSS grew by {sent} MiB sending and {received} MiB receiving a {} MiB file",
        BIG >> 20
    );
}

/// kill -9 of the receiving passive side while a 100 MB file is pushed to it (a relay
/// holds chunk 3 on its way): after a restart the sender goes on from the first chunk
/// missing there, the file arrives whole, and neither process's peak memory grew with it.
#[tokio::test]
async fn a_passive_side_killed_mid_file_resumes_at_the_first_missing_chunk_in_flat_memory() {
    let dir = tempfile::tempdir().unwrap();
    let main = Server::start(&dir.path().join("main"));
    let aux = Server::start(&dir.path().join("aux"));
    let (main_api, aux_api) = (main.admin(), aux.admin());
    let (m, a, active, passive) = contracts_held_off(&main_api, &aux_api).await;
    let sha = a_big_file(&main_api, m).await;
    // Stored while the sync cannot reach aux: main's peak from here on is the transfer's.
    let main_before = peak_rss_kib(main.pid());

    let relay = Relay::start(&aux.address()).await;
    relay.arm(Fault::new(
        &format!("PUT /sync/v1/{passive}/content/{sha}/3?"),
        Action::Hold,
    ));
    set_remote(&main_api, active, &relay.endpoint(&aux, passive)).await;
    eventually(120, "chunk 3 held on its way", || async {
        (relay.held() == 1).then_some(())
    })
    .await;
    let aux_data = aux.kill();
    drop(relay);
    let held = held_mid_file(&aux_data, &sha);

    let aux = Server::start(&aux_data);
    let aux_api = aux.admin();
    let aux_before = peak_rss_kib(aux.pid());
    let relay = Relay::start(&aux.address()).await;
    set_remote(&main_api, active, &relay.endpoint(&aux, passive)).await;
    let copy = arrived(&aux_api, a.0, a.2, &sha).await;
    assert_eq!(
        aux_api.file_checksum(a.0, copy, a.2).await,
        (BIG as u64, sha.clone()),
        "the file arrived intact"
    );
    assert_eq!(
        chunks_requested(&relay, "PUT", &sha),
        (held / CHUNK_BYTES..chunk_count(BIG as u64)).collect::<Vec<_>>(),
        "after the restart main sent each chunk aux lacked once, from the first missing"
    );
    flat_memory((&main, main_before), (&aux, aux_before));
}

/// kill -9 of the receiving active side while it fetches a 100 MB file from the passive
/// side (a relay holds its request for chunk 3): after a restart it asks for the chunks
/// it lacks only, the file arrives whole, in flat memory.
#[tokio::test]
async fn an_active_side_killed_mid_file_resumes_at_the_first_missing_chunk_in_flat_memory() {
    let dir = tempfile::tempdir().unwrap();
    let main = Server::start(&dir.path().join("main"));
    let aux = Server::start(&dir.path().join("aux"));
    let (main_api, aux_api) = (main.admin(), aux.admin());
    let (m, a, active, passive) = contracts_held_off(&main_api, &aux_api).await;
    let sha = a_big_file(&aux_api, a).await;
    let aux_before = peak_rss_kib(aux.pid());

    let relay = Relay::start(&aux.address()).await;
    relay.arm(Fault::new(
        &format!("POST /sync/v1/{passive}/content/{sha}/3 "),
        Action::Hold,
    ));
    set_remote(&main_api, active, &relay.endpoint(&aux, passive)).await;
    eventually(120, "the request for chunk 3 held", || async {
        (relay.held() == 1).then_some(())
    })
    .await;
    let main_data = main.kill();
    drop(relay);
    let held = held_mid_file(&main_data, &sha);

    let main = Server::start(&main_data);
    let main_api = main.admin();
    let main_before = peak_rss_kib(main.pid());
    let relay = Relay::start(&aux.address()).await;
    set_remote(&main_api, active, &relay.endpoint(&aux, passive)).await;
    let copy = arrived(&main_api, m.0, m.2, &sha).await;
    assert_eq!(
        main_api.file_checksum(m.0, copy, m.2).await,
        (BIG as u64, sha.clone()),
        "the file arrived intact"
    );
    assert_eq!(
        chunks_requested(&relay, "POST", &sha),
        (held / CHUNK_BYTES..chunk_count(BIG as u64)).collect::<Vec<_>>(),
        "after the restart main fetched each chunk it lacked once, from the first missing"
    );
    flat_memory((&aux, aux_before), (&main, main_before));
}

/// A file that arrived whole but was never stored under its checksum (the receiving side
/// stopped between the last chunk and the renaming, or a power cut left the last chunks
/// wrong): checked when it is next offered, and sent again when the check fails — before,
/// its full length counted as arrived, nothing was sent, and the packet naming it waited
/// for its content forever.
#[tokio::test]
async fn a_whole_file_left_unstored_is_checked_when_offered_again() {
    let dir = tempfile::tempdir().unwrap();
    let main = Server::start(&dir.path().join("main"));
    let aux = Server::start(&dir.path().join("aux"));
    let (main_api, aux_api) = (main.admin(), aux.admin());
    let (m, a, active, passive) = contracts_held_off(&main_api, &aux_api).await;
    drop(aux_api);
    let id = main_api
        .create_record(m.0, json!({ m.1.to_string(): "Contract 3" }))
        .await["id"]
        .as_i64()
        .unwrap();
    let bytes = content(3 << 20, 3);
    let sha = hex::encode(Sha256::digest(&bytes));
    main_api
        .upload_file(m.0, id, m.2, "scan.pdf", bytes.clone())
        .await;

    let aux_data = aux.kill();
    let incoming = aux_data.join("files/incoming");
    std::fs::create_dir_all(&incoming).unwrap();
    // Its full length, the end of it zeros.
    let mut left = bytes.clone();
    left[2 << 20..].fill(0);
    std::fs::write(incoming.join(format!("{sha}.part")), &left).unwrap();

    let aux = Server::start(&aux_data);
    let aux_api = aux.admin();
    set_remote(&main_api, active, &format!("{}/sync/v1/{passive}", aux.url)).await;
    let copy = arrived(&aux_api, a.0, a.2, &sha).await;
    assert_eq!(
        aux_api.file_checksum(a.0, copy, a.2).await,
        (bytes.len() as u64, sha.clone()),
        "the file arrived intact"
    );
    assert!(!incoming.join(format!("{sha}.part")).exists());
}
