use crate::common::{Server, content, peak_rss_kib};
use reqwest::{Method, StatusCode};
use serde_json::json;
use sha2::{Digest, Sha256};

#[tokio::test]
async fn a_50_mb_file_streams_in_and_out_with_its_checksum() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let api = server.admin();
    let table = api.create_table("Contracts").await;
    let doc = api.create_field(table, "Scan", "file", json!({})).await;
    let id = api.create_record(table, json!({})).await["id"]
        .as_i64()
        .unwrap();
    let path = format!("/tables/{table}/records/{id}/files/{doc}");

    let baseline_kib = peak_rss_kib(server.pid());
    let body = content(50 << 20, 42);
    let sha = hex::encode(Sha256::digest(&body));
    let response = api
        .raw(Method::PUT, &format!("{path}?name=../../скан договора.pdf"))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let record: serde_json::Value = response.json().await.unwrap();
    assert_eq!(
        record["values"][doc.to_string()],
        json!({ "name": "скан договора.pdf", "size": 50 << 20, "sha256": sha })
    );

    let response = api.raw(Method::GET, &path).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["content-length"],
        (50u64 << 20).to_string().as_str()
    );
    assert_eq!(response.headers()["x-checksum-sha256"], sha.as_str());
    let mut hasher = Sha256::new();
    let mut received = 0usize;
    let mut response = response;
    while let Some(chunk) = response.chunk().await.unwrap() {
        received += chunk.len();
        hasher.update(&chunk);
    }
    assert_eq!(received, 50 << 20);
    assert_eq!(hex::encode(hasher.finalize()), sha);

    // Streamed, never whole in memory: the server's peak grew by far less than the file.
    let grown_kib = peak_rss_kib(server.pid()).saturating_sub(baseline_kib);
    assert!(
        grown_kib < 25 * 1024,
        "server peak RSS grew by {grown_kib} KiB for a 50 MiB file"
    );

    // Replacing the content replaces the value; history keeps both descriptions.
    let response = api
        .raw(Method::PUT, &format!("{path}?name=v2.pdf"))
        .body(b"second version".to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let downloaded = api
        .raw(Method::GET, &path)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(&downloaded[..], b"second version");
    let history = api
        .ok(
            Method::GET,
            &format!("/tables/{table}/records/{id}/history"),
            None,
        )
        .await;
    let last = &history["history"][2]["fields"][0];
    assert_eq!(last["old"]["sha256"], sha.as_str());
    assert_eq!(last["new"]["name"], "v2.pdf");
}

#[tokio::test]
async fn uploads_to_the_wrong_place_are_refused_and_store_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data);
    let api = server.admin();
    let table = api.create_table("Contracts").await;
    let name = api.create_field(table, "Name", "text", json!({})).await;
    let doc = api.create_field(table, "Scan", "file", json!({})).await;
    let id = api.create_record(table, json!({})).await["id"]
        .as_i64()
        .unwrap();
    let put = |path: String| api.raw(Method::PUT, &path).body(b"payload".to_vec()).send();
    let r = put(format!("/tables/{table}/records/{id}/files/{name}"))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let r = put(format!("/tables/{table}/records/999/files/{doc}"))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = api
        .raw(
            Method::GET,
            &format!("/tables/{table}/records/{id}/files/{doc}"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND, "no file yet");
    let stored: Vec<_> = walk(&data.join("files"));
    assert!(stored.is_empty(), "nothing stored: {stored:?}");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}
