//! The sync channel tried as an attacker would (issue 13): a man in the middle that alters
//! the passive side's answers, an impostor at the passive side's address that does not know
//! the password, two ends set up with different passwords, and every packet file of an
//! exchange delivered a second time. Each shows nothing applied, nothing lost, and a red
//! status with the reason.

use super::faults::Relay;
use super::folders::{link_by_folders, local_sync};
use super::http::{add_field, clients, pair, record_values, set_remote};
use super::numbering::{invoices, set_numbering};
use crate::common::{Client, Server, eventually};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

async fn status(api: &Client, sync: i64) -> Value {
    api.get(&format!("/syncs/{sync}/status")).await.1
}

/// Waits until the sync's status is red with a reason containing `words`.
async fn red_with(api: &Client, sync: i64, words: &str) -> Value {
    eventually(30, &format!("a red status saying '{words}'"), || async {
        let s = status(api, sync).await;
        (s["connected"] == false && s["reason"].as_str().is_some_and(|r| r.contains(words)))
            .then_some(s)
    })
    .await
}

#[tokio::test]
async fn a_man_in_the_middle_who_alters_answers_gets_nothing_applied_and_nothing_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let main = Server::start(&dir.path().join("main"));
    let aux = Server::start(&dir.path().join("aux"));
    let (main_api, aux_api) = (main.admin(), aux.admin());
    let (main_table, m) = clients(&main_api, &["Name"]).await;
    let (aux_table, a) = clients(&aux_api, &["Name"]).await;
    let (active, passive) = pair(&main_api, &aux_api, "123456").await;
    add_field(&main_api, active, m[0], "both", None).await;
    add_field(&aux_api, passive, a[0], "both", Some(m[0])).await;
    let relay = Relay::start(&aux.address()).await;
    set_remote(&main_api, active, &relay.endpoint(&aux, passive)).await;
    aux_api
        .create_record(aux_table, json!({ a[0].to_string(): "Before the attack" }))
        .await;
    eventually(20, "the first record through the relay", || async {
        (record_values(&main_api, main_table).await.len() == 1).then_some(())
    })
    .await;

    // Every answer altered on its way: the active side takes none of them.
    relay.tamper_with_answers(true);
    aux_api
        .create_record(aux_table, json!({ a[0].to_string(): "During the attack" }))
        .await;
    main_api
        .create_record(
            main_table,
            json!({ m[0].to_string(): "Sent during the attack" }),
        )
        .await;
    let red = red_with(&main_api, active, "does not authenticate").await;
    assert!(
        red["reason"]
            .as_str()
            .unwrap()
            .contains("nothing in it was used"),
        "{red}"
    );
    // Answers kept coming, all refused: nothing of them is applied.
    eventually(20, "several altered answers", || async {
        (relay.tampered() >= 3).then_some(())
    })
    .await;
    assert_eq!(record_values(&main_api, main_table).await.len(), 2);

    // The attacker gone, everything arrives once, both ways.
    relay.tamper_with_answers(false);
    eventually(30, "everything once on both sides", || async {
        let (on_main, on_aux) = (
            record_values(&main_api, main_table).await,
            record_values(&aux_api, aux_table).await,
        );
        (on_main.len() == 3 && on_aux.len() == 3).then_some(())
    })
    .await;
    let names: BTreeSet<String> = record_values(&main_api, main_table)
        .await
        .iter()
        .map(|v| v[m[0].to_string()].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        names,
        BTreeSet::from(
            [
                "Before the attack",
                "During the attack",
                "Sent during the attack"
            ]
            .map(String::from)
        )
    );
    eventually(20, "green again", || async {
        (status(&main_api, active).await["connected"] == true).then_some(())
    })
    .await;
}

#[tokio::test]
async fn an_impostor_at_the_passive_address_without_the_password_gets_nothing_and_gives_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let main = Server::start(&dir.path().join("main"));
    let aux = Server::start(&dir.path().join("aux"));
    let impostor = Server::start(&dir.path().join("impostor"));
    let (main_api, aux_api, impostor_api) = (main.admin(), aux.admin(), impostor.admin());
    let (main_table, m) = clients(&main_api, &["Name"]).await;
    let (aux_table, a) = clients(&aux_api, &["Name"]).await;
    let (impostor_table, i) = clients(&impostor_api, &["Name"]).await;
    let (active, passive) = pair(&main_api, &aux_api, "123456").await;
    add_field(&main_api, active, m[0], "both", None).await;
    add_field(&aux_api, passive, a[0], "both", Some(m[0])).await;
    main_api
        .create_record(main_table, json!({ m[0].to_string(): "Real client" }))
        .await;
    eventually(20, "the real peer gets it", || async {
        (record_values(&aux_api, aux_table).await.len() == 1).then_some(())
    })
    .await;

    // The impostor: a crmsync whose passive sync has the same fields but not the password
    // (it guesses), reached at the address the active side uses (DNS or router hijacked).
    let (_, fake) = impostor_api
        .post(
            "/syncs",
            json!({ "name": "fake", "mode": "passive", "password": "111111" }),
        )
        .await;
    let fake_id = fake["id"].as_i64().unwrap();
    add_field(&impostor_api, fake_id, i[0], "both", Some(m[0])).await;
    impostor_api
        .create_record(
            impostor_table,
            json!({ i[0].to_string(): "Planted by the impostor" }),
        )
        .await;
    set_remote(&main_api, active, fake["endpoint_url"].as_str().unwrap()).await;
    main_api
        .create_record(main_table, json!({ m[0].to_string(): "Must not leak" }))
        .await;
    red_with(&main_api, active, "could not prove it knows").await;
    // The impostor's own status shows the attempt too.
    red_with(&impostor_api, fake_id, "another password").await;
    assert_eq!(
        record_values(&impostor_api, impostor_table).await,
        vec![json!({ i[0].to_string(): "Planted by the impostor" })],
        "nothing reached the impostor"
    );
    let on_main = record_values(&main_api, main_table).await;
    assert_eq!(on_main.len(), 2, "nothing planted here: {on_main:?}");

    // A bare server that answers every request with made-up JSON fares no better.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let fake_address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut request = [0u8; 65536];
            let _ = socket.read(&mut request).await;
            let body = r#"{"v":3,"from":"x","pake":"41","confirm":"00","pairing":"p","applied":999999,"first":1,"last":1000}"#;
            let answer = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = socket.write_all(answer.as_bytes()).await;
        }
    });
    set_remote(
        &main_api,
        active,
        &format!("http://{fake_address}/sync/v1/1"),
    )
    .await;
    red_with(&main_api, active, "malformed pairing message").await;
    let s = status(&main_api, active).await;
    assert_eq!(s["sent_seq"], status(&main_api, active).await["sent_seq"]);

    // Back to the real peer: what waited goes, once.
    set_remote(&main_api, active, &super::faults::endpoint(&aux, passive)).await;
    eventually(30, "the real peer gets what waited", || async {
        (record_values(&aux_api, aux_table).await.len() == 2).then_some(())
    })
    .await;
}

#[tokio::test]
async fn two_ends_with_different_passwords_are_red_on_both_sides_over_http_and_folders() {
    let dir = tempfile::tempdir().unwrap();
    let main = Server::start(&dir.path().join("main"));
    let aux = Server::start(&dir.path().join("aux"));
    let (main_api, aux_api) = (main.admin(), aux.admin());
    let (main_table, m) = clients(&main_api, &["Name"]).await;
    let (aux_table, a) = clients(&aux_api, &["Name"]).await;
    // HTTP.
    let (active, passive) = pair(&main_api, &aux_api, "123457").await;
    add_field(&main_api, active, m[0], "both", None).await;
    add_field(&aux_api, passive, a[0], "both", Some(m[0])).await;
    // Folders.
    let (to_aux, to_main) = (dir.path().join("to-aux"), dir.path().join("to-main"));
    let folder_active = local_sync(&main_api, "active", &to_aux, &to_main).await;
    let folder_passive = local_sync(&aux_api, "passive", &to_main, &to_aux).await;
    main_api
        .patch(
            &format!("/syncs/{folder_active}"),
            json!({ "password": "654321" }),
        )
        .await;
    add_field(&main_api, folder_active, m[0], "both", None).await;
    add_field(&aux_api, folder_passive, a[0], "both", Some(m[0])).await;
    main_api
        .create_record(main_table, json!({ m[0].to_string(): "Secret" }))
        .await;
    aux_api
        .create_record(aux_table, json!({ a[0].to_string(): "Also secret" }))
        .await;

    red_with(&main_api, active, "wrong password").await;
    red_with(&aux_api, passive, "wrong password").await;
    red_with(&main_api, folder_active, "wrong password").await;
    red_with(&aux_api, folder_passive, "wrong password").await;
    assert_eq!(record_values(&main_api, main_table).await.len(), 1);
    assert_eq!(record_values(&aux_api, aux_table).await.len(), 1);
    // Nothing readable was written into the shared folders either.
    for dir in [&to_aux, &to_main] {
        for entry in std::fs::read_dir(dir).unwrap() {
            let bytes = std::fs::read(entry.unwrap().path()).unwrap();
            let text = String::from_utf8_lossy(&bytes);
            assert!(
                !text.contains("Secret") && !text.contains("secret"),
                "{text}"
            );
        }
    }

    // The same password on both: they pair, and everything arrives once.
    for (sync, api) in [(active, &main_api), (folder_active, &main_api)] {
        api.patch(&format!("/syncs/{sync}"), json!({ "password": "123456" }))
            .await;
    }
    eventually(60, "both records on both sides", || async {
        let (on_main, on_aux) = (
            record_values(&main_api, main_table).await,
            record_values(&aux_api, aux_table).await,
        );
        (on_main.len() == 2 && on_aux.len() == 2).then_some(())
    })
    .await;
    for (api, sync) in [
        (&main_api, active),
        (&main_api, folder_active),
        (&aux_api, passive),
        (&aux_api, folder_passive),
    ] {
        eventually(30, "green on every side", || async {
            (status(api, sync).await["connected"] == true).then_some(())
        })
        .await;
    }
}

/// Copies every file that appears in `dir` into `into`, as someone with access to a shared
/// folder could, until dropped.
struct Wiretap {
    running: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Wiretap {
    fn start(dir: &Path, into: &Path) -> Wiretap {
        std::fs::create_dir_all(into).unwrap();
        let running = Arc::new(AtomicBool::new(true));
        let (dir, into, on) = (dir.to_path_buf(), into.to_path_buf(), running.clone());
        let thread = std::thread::spawn(move || {
            while on.load(Ordering::Relaxed) {
                for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                    let name = entry.file_name().to_string_lossy().to_string();
                    let copy = into.join(&name);
                    if name.ends_with(".cspk") && !copy.exists() {
                        // Written under a temporary name and renamed: complete when seen.
                        let _ = std::fs::copy(entry.path(), copy);
                    }
                }
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
        });
        Wiretap {
            running,
            thread: Some(thread),
        }
    }
}

impl Drop for Wiretap {
    fn drop(&mut self) {
        self.running.store(false, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
}

#[tokio::test]
async fn every_packet_file_delivered_again_is_set_aside_records_pairing_and_number_blocks_alike() {
    let dir = tempfile::tempdir().unwrap();
    let owner = Server::start(&dir.path().join("owner"));
    let branch = Server::start(&dir.path().join("branch"));
    let (owner_api, branch_api) = (owner.admin(), branch.admin());
    let (table, no, client) = invoices(&owner_api).await;
    assert_eq!(invoices(&branch_api).await, (table, no, client));
    set_numbering(&owner_api, no, json!({ "start": 9000 })).await;
    // link_by_folders links through DIR/up (to the branch) and DIR/down (to the owner).
    let (to_branch, to_owner) = (dir.path().join("up"), dir.path().join("down"));
    let (tap_to_branch, tap_to_owner) = (dir.path().join("tap-b"), dir.path().join("tap-o"));
    let taps = (
        Wiretap::start(&to_branch, &tap_to_branch),
        Wiretap::start(&to_owner, &tap_to_owner),
    );
    let fields = [(no, no), (client, client)];
    let (_, passive) = link_by_folders(dir.path(), &owner_api, &branch_api, &fields).await;
    set_numbering(&branch_api, no, json!({ "from_sync": passive, "block": 3 })).await;
    // Invoices on both sides: records travel both ways, the branch asks for numbers.
    let mut numbers = BTreeSet::new();
    for n in 0..4 {
        for (api, name) in [(&branch_api, "branch"), (&owner_api, "owner")] {
            let made = api
                .create_record(table, json!({ client.to_string(): format!("{name} {n}") }))
                .await;
            assert!(numbers.insert(made["values"][no.to_string()].as_i64().unwrap()));
        }
    }
    eventually(60, "eight invoices on both sides", || async {
        let (a, b) = (
            record_values(&owner_api, table).await,
            record_values(&branch_api, table).await,
        );
        (a.len() == 8 && b.len() == 8).then_some(())
    })
    .await;
    drop(taps);
    let captured = [(&tap_to_branch, &to_branch), (&tap_to_owner, &to_owner)];
    let is_sealed = |file: &PathBuf| std::fs::read(file).unwrap().starts_with(b"CRMSCH02");
    let sealed: usize = captured
        .iter()
        .map(|(tap, _)| files_in(tap).iter().filter(|f| is_sealed(f)).count())
        .sum();
    assert!(
        sealed >= 4,
        "the exchange was captured: {sealed} packet files"
    );

    // Every captured file delivered again: packets (records, number requests and blocks,
    // acknowledgements) are set aside as replays; pairing files are refused or change
    // nothing; no record and no number arrives twice.
    let mut replayed = Vec::new();
    for (tap, folder) in captured {
        for file in files_in(tap) {
            let name = file.file_name().unwrap().to_owned();
            std::fs::copy(&file, folder.join(&name)).unwrap();
            replayed.push(folder.join(name));
        }
    }
    eventually(30, "every replayed file handled", || async {
        replayed.iter().all(|f| !f.exists()).then_some(())
    })
    .await;
    let set_aside = [&to_branch, &to_owner]
        .iter()
        .flat_map(|d| files_in(d))
        .filter(|f| f.to_string_lossy().ends_with(".rejected"))
        .count();
    assert!(
        set_aside >= sealed,
        "{set_aside} set aside of {sealed} replayed packets"
    );
    assert_eq!(record_values(&owner_api, table).await.len(), 8);
    assert_eq!(record_values(&branch_api, table).await.len(), 8);
    let (_, log) = branch_api
        .get(&format!("/syncs/{passive}/log?limit=1000"))
        .await;
    assert!(log.to_string().contains("a replay"), "{log}");
    // Numbers handed out once: the branch's next invoices take new numbers only.
    for n in 0..4 {
        let made = branch_api
            .create_record(table, json!({ client.to_string(): format!("after {n}") }))
            .await;
        let number = made["values"][no.to_string()].as_i64().unwrap();
        assert!(
            numbers.insert(number),
            "{number} handed out twice: {numbers:?}"
        );
    }
    eventually(30, "green again once new packets flow", || async {
        (status(&branch_api, passive).await["connected"] == true).then_some(())
    })
    .await;
}
