//! Data at rest is the instance's alone (issue 13, item 7): the data folder is 0700 and
//! everything crmsync writes — the database, stored files, backups, packet files — 0600, so
//! other local users read nothing (the sync and FTP passwords live in the database). A
//! data folder made readable by an older version is closed on the next start.

use crate::common::{Server, cli, eventually};
use serde_json::json;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

/// Every file and folder below `root` with a mode other users could read or enter.
fn open_to_others(root: &Path) -> Vec<String> {
    let mut open = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(path) = stack.pop() {
        let meta = std::fs::symlink_metadata(&path).unwrap();
        if meta.permissions().mode() & 0o077 != 0 {
            open.push(format!(
                "{} {:o}",
                path.display(),
                meta.permissions().mode() & 0o777
            ));
        }
        if meta.is_dir() {
            stack.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
        }
    }
    open
}

#[tokio::test]
async fn the_data_folder_its_database_files_and_backups_are_private() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data);
    let api = server.admin();
    let table = api.create_table("Clients").await;
    let doc = api.create_field(table, "Doc", "file", json!({})).await;
    let record = api.create_record(table, json!({})).await;
    let id = record["id"].as_i64().unwrap();
    api.upload_file(table, id, doc, "passport.pdf", vec![7u8; 5000])
        .await;
    // A sync with a password stored in the database.
    let (status, body) = api
        .post(
            "/syncs",
            json!({ "name": "branch", "mode": "passive", "password": "123456" }),
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::CREATED, "{body}");

    // A sync through folders outside the data folder: its packet files are private too.
    let (upload, download) = (dir.path().join("up"), dir.path().join("down"));
    let (status, body) = api
        .post(
            "/syncs",
            json!({ "name": "office share", "mode": "active", "transport": "local",
                    "password": "123456", "period_seconds": 1,
                    "local": { "upload_dir": upload, "download_dir": download } }),
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::CREATED, "{body}");
    let packets = eventually(30, "a packet file written", || async {
        let files: Vec<_> = std::fs::read_dir(&upload)
            .ok()?
            .map(|e| e.unwrap().path())
            .collect();
        (!files.is_empty()).then_some(files)
    })
    .await;
    for packet in packets {
        assert_eq!(mode(&packet), 0o600, "{}", packet.display());
    }

    assert_eq!(mode(&data), 0o700, "the data folder");
    assert_eq!(mode(&data.join("crmsync.db")), 0o600, "the database");
    assert_eq!(open_to_others(&data), Vec::<String>::new());

    let copy = dir.path().join("copy");
    let (ok, _, err) = cli(&[
        "backup",
        "--data",
        data.to_str().unwrap(),
        "--out",
        copy.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    assert_eq!(open_to_others(&copy), Vec::<String>::new(), "the backup");
    let (_, records) = api.get(&format!("/tables/{table}/records")).await;
    assert_eq!(records["records"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_data_folder_left_readable_is_closed_on_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let first = Server::start(&data);
    first.admin().create_table("Clients").await;
    drop(first);
    // As an older version (or a careless copy) left it.
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(
        data.join("crmsync.db"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let _again = Server::start(&data);
    assert_eq!(mode(&data), 0o700, "the data folder");
    assert_eq!(mode(&data.join("crmsync.db")), 0o600, "the database");
}
