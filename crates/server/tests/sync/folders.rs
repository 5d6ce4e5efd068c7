//! The local-folder transport between two real processes: two shared folders, each side's
//! upload folder the other's download folder (S-27).

use super::http::{add_field, clients, quiet, record_values};
use crate::common::{Client, Server, cli, eventually};
use reqwest::StatusCode;
use serde_json::json;
use std::path::Path;

pub async fn local_sync(api: &Client, mode: &str, upload: &Path, download: &Path) -> i64 {
    let (status, body) = api
        .post(
            "/syncs",
            json!({ "name": format!("{mode} folders"), "mode": mode, "transport": "local", "password": "123456",
                    "period_seconds": 1, "local": { "upload_dir": upload, "download_dir": download } }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(
        body["endpoint_url"],
        serde_json::Value::Null,
        "only passive HTTP syncs have an address"
    );
    body["id"].as_i64().unwrap()
}

/// Links `active` and `passive` through two folders under `dir` (active → passive), each
/// pair of fields (active side's, passive side's) both ways; returns (active, passive).
pub async fn link_by_folders(
    dir: &Path,
    active: &Client,
    passive: &Client,
    fields: &[(i64, i64)],
) -> (i64, i64) {
    let (up, down) = (dir.join("up"), dir.join("down"));
    let active_sync = local_sync(active, "active", &up, &down).await;
    let passive_sync = local_sync(passive, "passive", &down, &up).await;
    for (mine, theirs) in fields {
        super::http::add_field(active, active_sync, *mine, "both", None).await;
        super::http::add_field(passive, passive_sync, *theirs, "both", Some(*mine)).await;
    }
    (active_sync, passive_sync)
}

/// Issues a writer key for a program writing into `sync`'s download folder (a web shop).
pub async fn issue_writer_key(api: &Client, sync: i64) -> String {
    let (status, issued) = api
        .post(
            &format!("/syncs/{sync}/writer-keys"),
            json!({ "label": "web shop" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{issued}");
    issued["key"].as_str().unwrap().to_string()
}

/// A packet file sealed by someone who paired two channels of their own with `password`:
/// well-formed, but under a key no instance holds.
pub fn sealed_by_a_stranger(packet: &crmsync_sync::Packet, password: &str) -> Vec<u8> {
    use crmsync_sync::channel::Role;
    use crmsync_sync::folder_channel::{FolderChannel, PairingStep};
    let (mut active, mut passive) = (
        FolderChannel::load(None, password),
        FolderChannel::load(None, password),
    );
    let PairingStep::Write(offer) = active.active_step(password, "A", 1) else {
        unreachable!("a fresh channel offers")
    };
    let Ok(PairingStep::Write(answer)) = passive.take(Role::Passive, password, "P", &offer, 1)
    else {
        unreachable!("an offer is answered")
    };
    active
        .take(Role::Active, password, "A", &answer, 1)
        .unwrap();
    crmsync_sync::folder::encode(packet, &mut active, Role::Active, 1).unwrap()
}

fn rejected_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".rejected"))
        .collect()
}

#[tokio::test]
async fn two_instances_sync_through_two_local_folders_and_refuse_bad_packets() {
    let dir = tempfile::tempdir().unwrap();
    let (to_aux, to_main) = (dir.path().join("to-aux"), dir.path().join("to-main"));
    let main = Server::start(&dir.path().join("main"));
    let aux = Server::start(&dir.path().join("aux"));
    let (main_api, aux_api) = (main.admin(), aux.admin());
    let (main_table, m) = clients(&main_api, &["Name", "Phone"]).await;
    let (aux_table, a) = clients(&aux_api, &["Name", "Phone"]).await;
    let active = local_sync(&main_api, "active", &to_aux, &to_main).await;
    let passive = local_sync(&aux_api, "passive", &to_main, &to_aux).await;
    add_field(&main_api, active, m[0], "both", None).await;
    add_field(&main_api, active, m[1], "upload", None).await;
    add_field(&aux_api, passive, a[0], "both", Some(m[0])).await;
    add_field(&aux_api, passive, a[1], "download", Some(m[1])).await;

    let record = main_api
        .create_record(
            main_table,
            json!({ m[0].to_string(): "Folder client", m[1].to_string(): "+7 1" }),
        )
        .await;
    eventually(20, "the record through the folders", || async {
        let values = record_values(&aux_api, aux_table).await;
        (values == vec![json!({ a[0].to_string(): "Folder client", a[1].to_string(): "+7 1" })])
            .then_some(())
    })
    .await;
    let aux_record = aux_api
        .ok(
            reqwest::Method::GET,
            &format!("/tables/{aux_table}/records"),
            None,
        )
        .await["records"][0]
        .clone();
    assert_eq!(aux_record["uid"], record["uid"]);
    aux_api
        .patch(
            &format!("/tables/{aux_table}/records/{}", aux_record["id"]),
            json!({ "values": { a[0].to_string(): "Renamed on aux" } }),
        )
        .await;
    eventually(20, "the edit back through the other folder", || async {
        let values = record_values(&main_api, main_table).await;
        (values[0][m[0].to_string()] == "Renamed on aux").then_some(())
    })
    .await;

    // Bad packets dropped into aux's download folder: garbage, a file of the older
    // protocol, a packet sealed by someone who paired with a guessed password, and half of
    // it.
    let packet = crmsync_sync::Packet {
        after: 0,
        upto: 1,
        items: vec![crmsync_sync::protocol::Item {
            uid: uuid::Uuid::now_v7(),
            table: main_table,
            status: "active".into(),
            status_stamp: crmsync_sync::protocol::WireStamp {
                hlc: u64::MAX >> 1,
                node: uuid::Uuid::now_v7(),
            },
            fields: [(
                m[0],
                crmsync_sync::protocol::WireField {
                    value: json!("Intruder"),
                    stamp: crmsync_sync::protocol::WireStamp {
                        hlc: u64::MAX >> 1,
                        node: uuid::Uuid::now_v7(),
                    },
                },
            )]
            .into(),
            created_at_ms: None,
        }],
        ..Default::default()
    };
    let forged = sealed_by_a_stranger(&packet, "123457");
    let files: [(&str, &[u8]); 4] = [
        ("0000000000001", b"not a packet at all, just some bytes"),
        (
            "0000000000002",
            b"CRMSPK01 an older protocol's packet file, signed only",
        ),
        ("0000000000003", &forged),
        ("0000000000004", &forged[..forged.len() / 2]),
    ];
    for (ms, bytes) in files {
        std::fs::write(
            to_aux.join(format!(
                "00000000000000000000-00000000000000000005-{ms}.cspk"
            )),
            bytes,
        )
        .unwrap();
    }
    eventually(20, "four packets set aside", || async {
        (rejected_files(&to_aux).len() == 4).then_some(())
    })
    .await;
    let values = record_values(&aux_api, aux_table).await;
    assert_eq!(values.len(), 1, "nothing applied: {values:?}");
    assert_eq!(values[0][a[0].to_string()], "Renamed on aux");
    let (_, log) = aux_api
        .get(&format!("/syncs/{passive}/log?limit=1000"))
        .await;
    let messages: Vec<&str> = log["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "error")
        .map(|e| e["message"].as_str().unwrap())
        .collect();
    for expected in [
        "not a sealed crmsync message",
        "older crmsync (sync protocol 1)",
        "a key this side does not hold",
    ] {
        assert!(
            messages.iter().any(|m| m.contains(expected)),
            "{expected}: {messages:?}"
        );
    }
    // Still in sync both ways afterwards.
    main_api
        .patch(
            &format!("/tables/{main_table}/records/{}", record["id"]),
            json!({ "values": { m[0].to_string(): "After the attack" } }),
        )
        .await;
    eventually(20, "a change after the attack", || async {
        let values = record_values(&aux_api, aux_table).await;
        (values[0][a[0].to_string()] == "After the attack").then_some(())
    })
    .await;

    // S-30: a second sync on the same folder is refused, naming the first.
    let (status, body) = main_api
        .post("/syncs", json!({ "name": "again", "mode": "active", "transport": "local", "password": "123456",
                                "local": { "upload_dir": format!("{}/", to_aux.display()), "download_dir": dir.path().join("other") } }))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("\"active folders\""),
        "{body}"
    );
    let (status, body) = main_api
        .post(
            "/syncs",
            json!({ "name": "x", "mode": "active", "transport": "local", "password": "1" }),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
}

#[tokio::test]
async fn a_web_shop_script_drops_orders_the_instance_applies_and_a_gap_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let (outgoing, orders) = (dir.path().join("to-shop"), dir.path().join("orders"));
    std::fs::create_dir_all(&orders).unwrap();
    let crm = Server::start(&dir.path().join("crm"));
    let api = crm.admin();
    let table = api.create_table("Orders").await;
    let title = api.create_field(table, "Title", "text", json!({})).await;
    let sum = api.create_field(table, "Sum", "money", json!({})).await;
    let sync = local_sync(&api, "active", &outgoing, &orders).await;
    add_field(&api, sync, title, "download", None).await;
    add_field(&api, sync, sum, "download", None).await;
    // The shop writes with a key the instance issues for it, shown once.
    let key = issue_writer_key(&api, sync).await;
    let (_, listed) = api.get(&format!("/syncs/{sync}/writer-keys")).await;
    let id = listed["keys"][0]["id"].as_str().unwrap().to_string();
    assert_eq!(listed["keys"][0]["label"], "web shop");
    assert!(
        !listed.to_string().contains(&key),
        "never shown again: {listed}"
    );

    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/web_shop_order.py"
    );
    let drop_order = |seq: u32, text: &str| {
        let output = std::process::Command::new("python3")
            .arg(script)
            .args([
                "--folder",
                orders.to_str().unwrap(),
                "--key",
                &key,
                "--seq",
                &seq.to_string(),
            ])
            .args(["--table", &table.to_string()])
            .arg(format!("--field={title}={text}"))
            .arg(format!("--field={sum}=1500.50"))
            .output()
            .expect("python3 runs the example");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    };
    drop_order(1, "Order 1042");
    eventually(20, "the shop's order", || async {
        let values = record_values(&api, table).await;
        (values == vec![json!({ title.to_string(): "Order 1042", sum.to_string(): "1500.50" })])
            .then_some(())
    })
    .await;

    // Packet 3 before packet 2: waited for, reported, then both applied in order.
    drop_order(3, "Order 1044");
    let status = eventually(30, "the gap in the status", || async {
        let (_, s) = api.get(&format!("/syncs/{sync}/status")).await;
        s["reason"]
            .as_str()
            .is_some_and(|r| r.contains("missing"))
            .then_some(s)
    })
    .await;
    assert_eq!(status["connected"], false, "{status}");
    assert_eq!(
        record_values(&api, table).await.len(),
        1,
        "nothing out of order"
    );
    drop_order(2, "Order 1043");
    eventually(20, "both orders, the gap closed", || async {
        let (_, s) = api.get(&format!("/syncs/{sync}/status")).await;
        (record_values(&api, table).await.len() == 3 && s["connected"] == true).then_some(())
    })
    .await;

    // Revoked: its next packet is set aside unread, with the reason.
    let (status, _) = api.delete(&format!("/syncs/{sync}/writer-keys/{id}")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    drop_order(4, "Order 1045");
    eventually(20, "the revoked key's packet set aside", || async {
        (rejected_files(&orders).len() == 1).then_some(())
    })
    .await;
    assert_eq!(record_values(&api, table).await.len(), 3);
    let (_, s) = api.get(&format!("/syncs/{sync}/status")).await;
    assert!(
        s["reason"]
            .as_str()
            .is_some_and(|r| r.contains("a key this side does not hold")),
        "{s}"
    );
}

#[tokio::test]
async fn initial_sync_over_folders_from_either_side() {
    let dir = tempfile::tempdir().unwrap();
    let (to_aux, to_main) = (dir.path().join("to-aux"), dir.path().join("to-main"));
    let main = Server::start(&dir.path().join("main"));
    let aux = Server::start(&dir.path().join("aux"));
    let (main_api, aux_api) = (main.admin(), aux.admin());
    let (main_table, m) = clients(&main_api, &["Name"]).await;
    let (aux_table, a) = clients(&aux_api, &["Name"]).await;
    for i in 0..20 {
        main_api
            .create_record(main_table, json!({ m[0].to_string(): format!("main {i}") }))
            .await;
    }
    for i in 0..5 {
        aux_api
            .create_record(aux_table, json!({ a[0].to_string(): format!("aux {i}") }))
            .await;
    }
    let active = local_sync(&main_api, "active", &to_aux, &to_main).await;
    let passive = local_sync(&aux_api, "passive", &to_main, &to_aux).await;
    add_field(&main_api, active, m[0], "both", None).await;
    add_field(&aux_api, passive, a[0], "both", Some(m[0])).await;
    super::initial::run_job(&aux_api, &format!("/syncs/{passive}/initial")).await;
    eventually(30, "both sides complete", || async {
        let (mv, av) = (
            record_values(&main_api, main_table).await,
            record_values(&aux_api, aux_table).await,
        );
        (mv.len() == 25 && av.len() == 25).then_some(())
    })
    .await;
    super::initial::run_job(&main_api, &format!("/syncs/{active}/initial")).await;
    quiet(&main_api, active, &aux_api, passive).await;
    assert_eq!(
        record_values(&main_api, main_table).await.len(),
        25,
        "no duplicates"
    );
    assert_eq!(
        record_values(&aux_api, aux_table).await.len(),
        25,
        "no duplicates"
    );
}

/// A restarted active side writes a hello packet first, covering change-log entries with
/// nothing for the sync (here: the record that came from the other side). The reader must
/// move its cursor past it, or the next packet looks like one after a missing packet.
#[tokio::test]
async fn changes_after_the_active_side_restarts_still_arrive() {
    let dir = tempfile::tempdir().unwrap();
    let (to_aux, to_main) = (dir.path().join("to-aux"), dir.path().join("to-main"));
    let main = Server::start(&dir.path().join("main"));
    let aux = Server::start(&dir.path().join("aux"));
    let (main_api, aux_api) = (main.admin(), aux.admin());
    let (main_table, m) = clients(&main_api, &["Name"]).await;
    let (aux_table, a) = clients(&aux_api, &["Name"]).await;
    let active = local_sync(&main_api, "active", &to_aux, &to_main).await;
    let passive = local_sync(&aux_api, "passive", &to_main, &to_aux).await;
    add_field(&main_api, active, m[0], "both", None).await;
    add_field(&aux_api, passive, a[0], "both", Some(m[0])).await;
    main_api
        .create_record(main_table, json!({ m[0].to_string(): "from main" }))
        .await;
    eventually(20, "main's record on aux", || async {
        (record_values(&aux_api, aux_table).await.len() == 1).then_some(())
    })
    .await;
    aux_api
        .create_record(aux_table, json!({ a[0].to_string(): "from aux" }))
        .await;
    eventually(20, "aux's record on main", || async {
        (record_values(&main_api, main_table).await.len() == 2).then_some(())
    })
    .await;
    eventually(
        20,
        "main's runner past the entry that record made there",
        || async {
            let (_, s) = main_api.get(&format!("/syncs/{active}/status")).await;
            (s["sent_seq"] == s["last_change_seq"]).then_some(())
        },
    )
    .await;

    // Folders carry no address: the restarted instance may listen anywhere.
    let data = main.kill();
    let main = Server::start(&data);
    let main_api = main.admin();
    main_api
        .create_record(main_table, json!({ m[0].to_string(): "after the restart" }))
        .await;
    eventually(20, "main's new record on aux", || async {
        let values = record_values(&aux_api, aux_table).await;
        values
            .iter()
            .any(|v| v[a[0].to_string()] == "after the restart")
            .then_some(())
    })
    .await;
    let (_, status) = aux_api.get(&format!("/syncs/{passive}/status")).await;
    assert_eq!(status["reason"], serde_json::Value::Null, "{status}");
}

#[tokio::test]
async fn sync_now_runs_one_folder_round_and_a_passive_http_sync_says_who_starts() {
    let dir = tempfile::tempdir().unwrap();
    let main = Server::start(&dir.path().join("main"));
    let aux = Server::start(&dir.path().join("aux"));
    let (main_api, aux_api) = (main.admin(), aux.admin());
    let (_, m) = clients(&main_api, &["Name"]).await;
    let (aux_table, a) = clients(&aux_api, &["Name"]).await;
    let (active, _) = link_by_folders(dir.path(), &main_api, &aux_api, &[(m[0], a[0])]).await;
    // Paired before main stops (sync-now below runs one round; it cannot wait for an answer).
    eventually(20, "main's sync paired", || async {
        let (_, s) = main_api.get(&format!("/syncs/{active}/status")).await;
        (s["connected"] == true && s["reason"].is_null()).then_some(())
    })
    .await;

    // Main is stopped: a record imported offline travels only when sync-now runs.
    let main_data = main.kill();
    let main_dir = main_data.to_str().unwrap();
    let file = dir.path().join("clients.csv");
    std::fs::write(&file, "Name\nOffline client\n").unwrap();
    let (ok, out, err) = cli(&[
        "import",
        "--data",
        main_dir,
        "--table",
        "Clients",
        file.to_str().unwrap(),
    ]);
    assert!(ok, "{out}{err}");
    let (ok, out, err) = cli(&["sync-now", "--data", main_dir, "active folders"]);
    assert!(ok, "{out}{err}");
    assert!(
        out.contains("sync 1 \"active folders\": wrote 1 record(s)"),
        "{out}"
    );
    eventually(20, "the record on aux", || async {
        let values = record_values(&aux_api, aux_table).await;
        (values == vec![json!({ a[0].to_string(): "Offline client" })]).then_some(())
    })
    .await;

    // While aux's server runs its own rounds, sync-now takes its turn beside them.
    let aux_dir = dir.path().join("aux");
    let (ok, out, err) = cli(&[
        "sync-now",
        "--data",
        aux_dir.to_str().unwrap(),
        "passive folders",
    ]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("sync 1 \"passive folders\": wrote "), "{out}");

    // The passive side of an HTTP sync only answers: it says so (a notice, as before).
    let (status, body) = aux_api
        .post(
            "/syncs",
            json!({ "name": "answers only", "mode": "passive", "password": "123456" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (ok, out, err) = cli(&[
        "sync-now",
        "--data",
        aux_dir.to_str().unwrap(),
        "answers only",
    ]);
    assert!(ok, "{out}{err}");
    assert!(
        out.contains("passive side of an HTTP sync") && out.contains("active side"),
        "{out}"
    );
}

#[tokio::test]
async fn folders_are_compared_as_canonical_paths_so_each_sync_has_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let api = server.admin();
    let folders = dir.path().join("folders");
    let down = folders.join("down");
    std::fs::create_dir_all(&down).unwrap();
    let canonical_folders = std::fs::canonicalize(&folders).unwrap();
    let first = local_sync(&api, "active", &folders.join("up/"), &down).await;
    let create = |name: &str, upload: String, download: String| {
        let api = api.clone();
        let body = json!({ "name": name, "mode": "passive", "transport": "local", "password": "123456",
                           "local": { "upload_dir": upload, "download_dir": download } });
        async move { api.post("/syncs", body).await }
    };
    let spelled = |path: &Path| path.to_str().unwrap().to_string();
    let elsewhere = spelled(&dir.path().join("elsewhere"));

    // Another sync on the first one's upload folder, spelled with `/./`.
    let (status, body) = create(
        "dot",
        format!("{}/./up", spelled(&folders)),
        elsewhere.clone(),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let detail = body["detail"].as_str().unwrap();
    assert!(
        detail.contains(&format!(
            "is already used by sync {first} \"active folders\""
        )) && detail.contains(&spelled(&canonical_folders.join("up"))),
        "{body}"
    );

    // A symlink to the first one's download folder.
    let link = dir.path().join("link-to-down");
    std::os::unix::fs::symlink(&down, &link).unwrap();
    let (status, body) = create("link", elsewhere.clone(), spelled(&link)).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains(&format!("sync {first} \"active folders\"")),
        "{body}"
    );
    // The first one's own folders changed to a symlinked spelling of themselves are fine.
    let (status, body) = api
        .patch(
            &format!("/syncs/{first}"),
            json!({ "local": { "upload_dir": format!("{}/../folders/up", spelled(&folders)), "download_dir": spelled(&link) } }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // One sync's upload and download folders: the same folder spelled three ways.
    for (upload, download) in [
        (format!("{elsewhere}/./in"), format!("{elsewhere}/in/")),
        ("up".to_string(), "up/../up".to_string()),
        (spelled(&down), format!("{}//", spelled(&link))),
    ] {
        let (status, body) = create("same", upload.clone(), download.clone()).await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{upload} {download}: {body}"
        );
        let detail = body["detail"].as_str().unwrap();
        assert!(
            detail.contains("must be two different folders") && detail.contains(&upload),
            "{body}"
        );
    }
    // FTP folders: `.`, `..`, doubled and trailing slashes.
    let (status, body) = api
        .post("/syncs", json!({ "name": "ftp", "mode": "active", "transport": "ftp", "password": "123456",
            "ftp": { "host": "example.ru", "login": "u", "password": "p", "upload_dir": "/cb//up/", "download_dir": "/cb/x/../up/." } }))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("ftp.upload_dir and ftp.download_dir must be two different folders"),
        "{body}"
    );
    assert!(!Path::new("up").exists(), "a refused sync makes no folder");
}

/// S-23 over folders (issue 11, item 17): the REST API takes remote access and the active
/// side's address for a passive local-folder sync, and a copy that came through the folders
/// then names the same record on the active side.
#[tokio::test]
async fn a_passive_folder_sync_with_the_active_sides_address_names_each_original() {
    let dir = tempfile::tempdir().unwrap();
    let main = Server::start(&dir.path().join("main"));
    let aux = Server::start(&dir.path().join("aux"));
    let (main_api, aux_api) = (main.admin(), aux.admin());
    let (main_table, m) = clients(&main_api, &["Name"]).await;
    let (aux_table, a) = clients(&aux_api, &["Name"]).await;
    let (_, passive) = link_by_folders(dir.path(), &main_api, &aux_api, &[(m[0], a[0])]).await;
    let (status, settings) = aux_api
        .patch(
            &format!("/syncs/{passive}"),
            json!({ "remote_access": true, "remote_url": main.url }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{settings}");
    assert_eq!(settings["transport"], "local");
    assert_eq!(settings["remote_access"], true);

    let created = main_api
        .create_record(main_table, json!({ m[0].to_string(): "Folder client" }))
        .await;
    let copy = eventually(20, "the record through the folders", || async {
        let page = aux_api
            .ok(
                reqwest::Method::GET,
                &format!("/tables/{aux_table}/records"),
                None,
            )
            .await;
        page["records"][0]["id"].as_i64()
    })
    .await;
    let copy = aux_api
        .ok(
            reqwest::Method::GET,
            &format!("/tables/{aux_table}/records/{copy}"),
            None,
        )
        .await;
    let link = copy["remote"][0]["url"]
        .as_str()
        .unwrap_or_else(|| panic!("a link to the active side's record: {copy}"))
        .to_string();
    let original = main_api
        .ok(
            reqwest::Method::GET,
            link.trim_start_matches(&format!("{}/api/v1", main.url)),
            None,
        )
        .await;
    assert_eq!(original["id"], created["id"]);
}

/// A packet-looking name in the folder this side reads that is no regular file, or is far
/// too large, is set aside unread with the reason (issue 13, item 5): a link is never
/// followed (it could lead to the database or `/dev/zero`), a pipe never blocks the round,
/// and the sync goes on.
#[tokio::test]
async fn links_pipes_devices_and_huge_files_in_a_folder_are_set_aside_unread() {
    let dir = tempfile::tempdir().unwrap();
    let main = Server::start(&dir.path().join("main"));
    let aux = Server::start(&dir.path().join("aux"));
    let (main_api, aux_api) = (main.admin(), aux.admin());
    let (main_table, m) = clients(&main_api, &["Name"]).await;
    let (aux_table, a) = clients(&aux_api, &["Name"]).await;
    // aux reads `up` (what main writes); plant the traps there before anything runs.
    let up = dir.path().join("up");
    std::fs::create_dir_all(&up).unwrap();
    let name = |seq: u64| {
        format!(
            "{seq:020}-{seq:020}-{:013}.cspk",
            1_700_000_000_000u64 + seq
        )
    };
    let fifo = up.join(name(1));
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success(), "mkfifo");
    let secret = dir.path().join("secret.txt");
    std::fs::write(&secret, "not for the sync").unwrap();
    std::os::unix::fs::symlink(&secret, up.join(name(2))).unwrap();
    std::os::unix::fs::symlink("/dev/zero", up.join(name(3))).unwrap();
    let huge = std::fs::File::create(up.join(name(4))).unwrap();
    huge.set_len(200 << 20).unwrap(); // sparse: no disk, but 200 MiB to a reader
    drop(huge);

    let (active, passive) = link_by_folders(dir.path(), &main_api, &aux_api, &[(m[0], a[0])]).await;
    main_api
        .create_record(main_table, json!({ m[0].to_string(): "after the traps" }))
        .await;
    eventually(60, "the record through the folders", || async {
        (record_values(&aux_api, aux_table).await
            == vec![json!({ a[0].to_string(): "after the traps" })])
        .then_some(())
    })
    .await;
    quiet(&main_api, active, &aux_api, passive).await;

    let mut set_aside = rejected_files(&up);
    set_aside.sort();
    let expected: Vec<String> = (1..=4).map(|i| format!("{}.rejected", name(i))).collect();
    assert_eq!(set_aside, expected);
    assert_eq!(
        std::fs::read_to_string(&secret).unwrap(),
        "not for the sync"
    );
    let (_, status) = aux_api.get(&format!("/syncs/{passive}/status")).await;
    assert_eq!(status["rejected_packets"], 4, "{status}");
    let (_, log) = aux_api
        .get(&format!("/syncs/{passive}/log?limit=100"))
        .await;
    let messages: Vec<&str> = log["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "error")
        .filter_map(|e| e["message"].as_str())
        .collect();
    for (seq, why) in [
        (1, "not a regular file"),
        (2, "a link, not a file"),
        (3, "a link, not a file"),
        (4, "larger than 128 MiB"),
    ] {
        assert!(
            messages
                .iter()
                .any(|m| m.contains(&name(seq)) && m.contains(why)),
            "{} set aside as {why}: {messages:?}",
            name(seq)
        );
    }
    let peak = crate::common::peak_rss_kib(aux.pid());
    assert!(peak < 150 * 1024, "aux read nothing large: peak {peak} KiB");
}

#[tokio::test]
async fn a_passive_side_paired_before_the_field_list_came_keeps_its_changes_for_it() {
    use crmsync_sync::channel::Role;
    use crmsync_sync::folder_channel::{FolderChannel, PairingFile, PairingStep};
    let dir = tempfile::tempdir().unwrap();
    let (to_aux, to_main) = (dir.path().join("to-aux"), dir.path().join("to-main"));
    std::fs::create_dir_all(&to_aux).unwrap();
    let aux = Server::start(&dir.path().join("aux"));
    let aux_api = aux.admin();
    let (aux_table, a) = clients(&aux_api, &["Name"]).await;
    let passive = local_sync(&aux_api, "passive", &to_main, &to_aux).await;
    add_field(&aux_api, passive, a[0], "both", Some(101)).await;
    let files_in = |dir: &Path| -> Vec<(String, Vec<u8>)> {
        let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| {
                let name = e.file_name().into_string().unwrap();
                (name, std::fs::read(e.path()).unwrap_or_default())
            })
            .filter(|(name, _)| name.ends_with(".cspk"))
            .collect();
        files.sort();
        files
    };
    // The active side, by hand: it offers a pairing…
    let mut main = FolderChannel::load(None, "123456");
    let PairingStep::Write(offer) = main.active_step("123456", "main", 1) else {
        unreachable!("a fresh channel offers")
    };
    let name = |ms: u64| format!("00000000000000000000-00000000000000000000-{ms:013}.cspk");
    std::fs::write(to_aux.join(name(1)), offer.encode()).unwrap();
    let answer = eventually(20, "aux's pairing answer", || async {
        files_in(&to_main)
            .into_iter()
            .find_map(|(_, bytes)| PairingFile::decode(&bytes).filter(|f| f.pake.is_some()))
    })
    .await;
    // …aux makes a record before the pairing is confirmed and before it knows the active
    // side's fields…
    aux_api
        .create_record(
            aux_table,
            json!({ a[0].to_string(): "Made before the field list" }),
        )
        .await;
    let Ok(PairingStep::Write(confirmation)) =
        main.take(Role::Active, "123456", "main", &answer, 2)
    else {
        panic!("aux's answer proves the password")
    };
    std::fs::write(to_aux.join(name(2)), confirmation.encode()).unwrap();
    eventually(20, "the confirmation taken", || async {
        (!to_aux.join(name(2)).exists()).then_some(())
    })
    .await;
    // …and only then sends its field list.
    let catalog = crmsync_sync::Packet {
        catalog: Some(vec![crmsync_sync::protocol::CatalogField {
            no: 101,
            name: "Name".into(),
            field_type: "text".into(),
            table_id: 7,
            table_name: "Clients".into(),
        }]),
        ack: Some(0),
        ..Default::default()
    };
    let sealed = crmsync_sync::folder::encode(&catalog, &mut main, Role::Active, 3).unwrap();
    std::fs::write(to_aux.join(name(3)), sealed).unwrap();
    // The record still goes.
    let main = &main;
    eventually(20, "aux's record in a packet", || async {
        let mut reader = main.clone();
        files_in(&to_main).into_iter().find_map(|(_, bytes)| {
            let packet =
                crmsync_sync::folder::decode(&bytes, &mut reader, &[Role::Passive], false).ok()?;
            packet
                .items
                .iter()
                .any(|item| {
                    item.fields
                        .get(&101)
                        .is_some_and(|f| f.value == "Made before the field list")
                })
                .then_some(())
        })
    })
    .await;
}

#[tokio::test]
async fn a_sync_keeps_only_its_own_transports_settings() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let api = server.admin();
    let (up, down) = (dir.path().join("up"), dir.path().join("down"));
    let sync = local_sync(&api, "active", &up, &down).await;
    let ftp = json!({ "host": "files.example.ru", "login": "crm", "password": "secret",
                      "upload_dir": "/up", "download_dir": "/down" });

    // FTP settings for a local sync are refused, not kept unused.
    let (status, body) = api
        .patch(&format!("/syncs/{sync}"), json!({ "ftp": ftp }))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(
        body["detail"].as_str().unwrap().contains("transport"),
        "{body}"
    );
    // Another transport needs its own settings…
    let (status, body) = api
        .patch(&format!("/syncs/{sync}"), json!({ "transport": "ftp" }))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(
        body["detail"].as_str().unwrap().contains("ftp.host"),
        "{body}"
    );
    // …and the local folders go with the local transport.
    let (status, body) = api
        .patch(
            &format!("/syncs/{sync}"),
            json!({ "transport": "ftp", "ftp": ftp }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, shown) = api.get(&format!("/syncs/{sync}")).await;
    assert_eq!(shown["transport"], "ftp", "{shown}");
    assert_eq!(shown["local"], serde_json::Value::Null, "{shown}");
    assert_eq!(shown["ftp"]["host"], "files.example.ru", "{shown}");
    assert_eq!(shown["ftp"].get("password"), None, "{shown}");
    let (status, body) = api
        .patch(
            &format!("/syncs/{sync}"),
            json!({ "transport": "http", "remote_access": true,
                    "remote_url": "http://127.0.0.1:1/sync/v1/1" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, shown) = api.get(&format!("/syncs/{sync}")).await;
    assert_eq!(shown["ftp"], serde_json::Value::Null, "{shown}");
}
