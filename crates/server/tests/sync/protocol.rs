//! The sync protocol spoken by hand, as another implementation would (docs/protocol.md):
//! signed requests, a packet delivered twice, a forged or stale request, an older value.

use crate::common::{Client, Server, eventually};
use hmac::{Hmac, Mac};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn signature(password: &str, ts: i64, endpoint: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(password.as_bytes()).unwrap();
    mac.update(format!("crmsync-sync-v1\n{ts}\n{endpoint}\n").as_bytes());
    mac.update(hex::encode(Sha256::digest(body)).as_bytes());
    format!("ts={ts},sig={}", hex::encode(mac.finalize().into_bytes()))
}

async fn send(
    endpoint_url: &str,
    endpoint: &str,
    password: &str,
    ts: i64,
    body: &Value,
) -> (StatusCode, Value) {
    let bytes = serde_json::to_vec(body).unwrap();
    let response = reqwest::Client::new()
        .post(format!("{endpoint_url}/{endpoint}"))
        .header(
            "x-crmsync-signature",
            signature(password, ts, endpoint, &bytes),
        )
        .header("content-type", "application/json")
        .body(bytes)
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn names(api: &Client, table: i64) -> Vec<Value> {
    let page = api
        .ok(
            Method::GET,
            &format!("/tables/{table}/records?status=all"),
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
async fn a_hand_written_peer_is_heard_once_and_forgeries_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let aux = Server::start(&dir.path().join("aux"));
    let api = aux.admin();
    let table = api.create_table("Clients").await;
    let name = api.create_field(table, "Name", "text", json!({})).await;
    let (_, sync) = api
        .post(
            "/syncs",
            json!({ "name": "shop", "mode": "passive", "password": "123456" }),
        )
        .await;
    let sync_id = sync["id"].as_i64().unwrap();
    let url = sync["endpoint_url"].as_str().unwrap().to_string();
    api.post(
        &format!("/syncs/{sync_id}/fields"),
        json!({ "field_no": name, "direction": "both", "remote_field_no": 101 }),
    )
    .await;

    let catalog = json!([{ "no": 101, "name": "Name", "type": "text", "table_id": 7, "table_name": "Clients" }]);
    let hello = json!({ "version": 1, "instance_id": "018f0000-0000-7000-8000-000000000001", "catalog": catalog });
    let (status, reply) = send(&url, "hello", "123456", now_ms(), &hello).await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert_eq!(reply["problems"], json!([]));
    let (status, reply) = send(
        &url,
        "hello",
        "123456",
        now_ms(),
        &json!({ "version": 99, "instance_id": "x", "catalog": [] }),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(reply["error"], "protocol_version");

    let node = "018f0000-0000-7000-8000-0000000000aa";
    let hlc = (now_ms() as u64) << 16;
    let uid = "018f0000-0000-7000-8000-0000000000bb";
    let packet = |upto: i64, value: &str, hlc: u64| {
        json!({ "after": 0, "upto": upto, "remaining": 0, "items": [{
            "uid": uid, "table": 7, "status": "active", "status_stamp": { "hlc": hlc, "node": node },
            "fields": { "101": { "value": value, "stamp": { "hlc": hlc, "node": node } } } }] })
    };
    let (status, reply) = send(
        &url,
        "push",
        "123456",
        now_ms(),
        &packet(10, "Web order", hlc),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert_eq!(reply["applied"], 10);
    assert_eq!(
        names(&api, table).await,
        vec![json!({ name.to_string(): "Web order" })]
    );

    // Delivered twice: nothing changes.
    let (status, reply) = send(
        &url,
        "push",
        "123456",
        now_ms(),
        &packet(10, "Web order", hlc),
    )
    .await;
    assert_eq!(
        (status, reply["applied"].clone()),
        (StatusCode::OK, json!(10))
    );
    assert_eq!(names(&api, table).await.len(), 1);
    let history = api
        .ok(
            Method::GET,
            &format!("/tables/{table}/records/1/history"),
            None,
        )
        .await;
    assert_eq!(history["history"].as_array().unwrap().len(), 1);
    // Heard once: a duplicate is not applied again (its records would be listed again).
    let log = api
        .ok(
            Method::GET,
            &format!("/syncs/{sync_id}/log?limit=100"),
            None,
        )
        .await;
    let received = log["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "received")
        .count();
    assert_eq!(received, 1, "one packet applied once: {log}");

    // Forged, stale, malformed: refused, nothing written.
    let (status, reply) = send(
        &url,
        "push",
        "654321",
        now_ms(),
        &packet(11, "Forged", hlc + 5),
    )
    .await;
    assert_eq!(
        (status, reply["error"].clone()),
        (StatusCode::UNAUTHORIZED, json!("wrong_password"))
    );
    let (status, reply) = send(
        &url,
        "push",
        "123456",
        now_ms() - 3_600_000,
        &packet(11, "Replayed", hlc + 5),
    )
    .await;
    assert_eq!(
        (status, reply["error"].clone()),
        (StatusCode::UNAUTHORIZED, json!("stale_request"))
    );
    let (status, _) = send(
        &url,
        "push",
        "123456",
        now_ms(),
        &json!({ "items": "nope" }),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        names(&api, table).await,
        vec![json!({ name.to_string(): "Web order" })]
    );
    let (_, log) = api.get(&format!("/syncs/{sync_id}/log?limit=100")).await;
    assert_eq!(
        log["entries"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["kind"] == "auth")
            .count(),
        2,
        "{log}"
    );

    // Repeated wrong passwords are slowed down.
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(
            send(
                &url,
                "pull",
                "wrong-guess",
                now_ms(),
                &json!({ "ack": 0, "wait_ms": 0 }),
            )
            .await
            .0,
        );
    }
    assert_eq!(
        statuses.last(),
        Some(&StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );

    // An older value loses and is logged as a conflict; a newer one wins.
    api.patch(
        &format!("/tables/{table}/records/1"),
        json!({ "values": { name.to_string(): "Edited here" } }),
    )
    .await;
    let (status, reply) = eventually(10, "the pause after wrong passwords to end", || async {
        let sent = send(
            &url,
            "push",
            "123456",
            now_ms(),
            &packet(12, "Stale edit", hlc + 1),
        )
        .await;
        (sent.0 != StatusCode::TOO_MANY_REQUESTS).then_some(sent)
    })
    .await;
    assert_eq!(
        (status, reply["applied"].clone()),
        (StatusCode::OK, json!(12))
    );
    assert_eq!(
        names(&api, table).await,
        vec![json!({ name.to_string(): "Edited here" })]
    );
    let newer = ((now_ms() as u64) + 60_000) << 16;
    send(
        &url,
        "push",
        "123456",
        now_ms(),
        &packet(13, "Newer edit", newer),
    )
    .await;
    assert_eq!(
        names(&api, table).await,
        vec![json!({ name.to_string(): "Newer edit" })]
    );

    // Pull: this side's edit makes the record travel, with the field's current value and
    // stamp (by now the peer's newer one: harmless, the peer keeps it). The peer's own
    // changes alone would not travel back.
    let (status, packet) = send(
        &url,
        "pull",
        "123456",
        now_ms(),
        &json!({ "ack": 0, "wait_ms": 0 }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{packet}");
    let items = packet["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{packet}");
    assert_eq!(items[0]["uid"], uid);
    assert_eq!(items[0]["table"], 7);
    assert_eq!(items[0]["fields"]["101"]["value"], "Newer edit");
    assert_eq!(items[0]["fields"]["101"]["stamp"]["hlc"], newer);
}

/// A signed request with a raw body: `endpoint` is the address after the sync's own.
async fn send_bytes(
    method: Method,
    endpoint_url: &str,
    endpoint: &str,
    password: &str,
    body: Vec<u8>,
) -> (StatusCode, Vec<u8>) {
    let response = reqwest::Client::new()
        .request(method, format!("{endpoint_url}/{endpoint}"))
        .header(
            "x-crmsync-signature",
            signature(password, now_ms(), endpoint, &body),
        )
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.bytes().await.unwrap().to_vec())
}

#[tokio::test]
async fn file_content_is_taken_in_order_checked_and_required_before_its_packet() {
    let dir = tempfile::tempdir().unwrap();
    let aux = Server::start(&dir.path().join("aux"));
    let api = aux.admin();
    let table = api.create_table("Contracts").await;
    let scan = api.create_field(table, "Scan", "file", json!({})).await;
    let (_, sync) = api
        .post(
            "/syncs",
            json!({ "name": "shop", "mode": "passive", "password": "123456" }),
        )
        .await;
    let sync_id = sync["id"].as_i64().unwrap();
    let url = sync["endpoint_url"].as_str().unwrap().to_string();
    api.post(
        &format!("/syncs/{sync_id}/fields"),
        json!({ "field_no": scan, "direction": "both", "remote_field_no": 102 }),
    )
    .await;
    let catalog = json!([{ "no": 102, "name": "Scan", "type": "file", "table_id": 7, "table_name": "Contracts" }]);
    let hello = json!({ "version": 1, "instance_id": "018f0000-0000-7000-8000-000000000001", "catalog": catalog });
    let (status, reply) = send(&url, "hello", "123456", now_ms(), &hello).await;
    assert_eq!(
        (status, reply["problems"].clone()),
        (StatusCode::OK, json!([]))
    );

    // Two chunks: 8 MiB and 1 KiB.
    let chunk = 8 << 20;
    let content = crate::common::content(chunk + 1024, 5);
    let sha = hex::encode(Sha256::digest(&content));
    let size = content.len();
    let (first, second) = content.split_at(chunk);
    let node = "018f0000-0000-7000-8000-0000000000aa";
    let hlc = (now_ms() as u64) << 16;
    let packet = json!({ "after": 0, "upto": 3, "remaining": 0, "items": [{
        "uid": "018f0000-0000-7000-8000-0000000000bb", "table": 7, "status": "active",
        "status_stamp": { "hlc": hlc, "node": node },
        "fields": { "102": { "value": { "name": "scan.pdf", "size": size, "sha256": sha },
                             "stamp": { "hlc": hlc, "node": node } } } }] });
    let received = |body: Vec<u8>| -> u64 {
        serde_json::from_slice::<Value>(&body).unwrap()["received"]
            .as_u64()
            .unwrap()
    };

    // A packet naming content that has not arrived is refused; nothing is written.
    let (status, reply) = send(&url, "push", "123456", now_ms(), &packet).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{reply}");
    assert!(
        reply["detail"]
            .as_str()
            .unwrap()
            .contains("has not arrived"),
        "{reply}"
    );
    let (_, page) = api.get(&format!("/tables/{table}/records")).await;
    assert_eq!(page["records"], json!([]));

    let offer = serde_json::to_vec(&json!({ "size": size })).unwrap();
    let at = |index: u64| format!("content/{sha}/{index}?size={size}");
    let (status, body) = send_bytes(
        Method::POST,
        &url,
        &format!("content/{sha}"),
        "123456",
        offer.clone(),
    )
    .await;
    assert_eq!((status, received(body)), (StatusCode::OK, 0));
    // Out of order: the answer says where to continue.
    let (status, body) = send_bytes(Method::PUT, &url, &at(1), "123456", second.to_vec()).await;
    assert_eq!((status, received(body)), (StatusCode::OK, 0));
    // Another password, a cut-short chunk, a path for a checksum: refused.
    let (status, _) = send_bytes(Method::PUT, &url, &at(0), "654321", first.to_vec()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = send_bytes(Method::PUT, &url, &at(0), "123456", first[..1000].to_vec()).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _) = send_bytes(
        Method::POST,
        &url,
        "content/not-a-checksum",
        "123456",
        offer.clone(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // The first chunk, then a corrupted last one: the whole file is discarded.
    let (status, body) = send_bytes(Method::PUT, &url, &at(0), "123456", first.to_vec()).await;
    assert_eq!((status, received(body)), (StatusCode::OK, chunk as u64));
    let mut corrupted = second.to_vec();
    corrupted[0] ^= 1;
    let (status, body) = send_bytes(Method::PUT, &url, &at(1), "123456", corrupted).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(String::from_utf8_lossy(&body).contains("checksum"));
    let (_, body) = send_bytes(
        Method::POST,
        &url,
        &format!("content/{sha}"),
        "123456",
        offer.clone(),
    )
    .await;
    assert_eq!(
        received(body),
        0,
        "nothing kept of a file that did not match"
    );

    // Sent whole and in order: the packet applies and the record holds the file.
    for (index, part) in [first, second].into_iter().enumerate() {
        let (status, _) = send_bytes(
            Method::PUT,
            &url,
            &at(index as u64),
            "123456",
            part.to_vec(),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
    }
    let (status, reply) = send(&url, "push", "123456", now_ms(), &packet).await;
    assert_eq!(
        (status, reply["applied"].clone()),
        (StatusCode::OK, json!(3))
    );
    let (_, page) = api.get(&format!("/tables/{table}/records")).await;
    let id = page["records"][0]["id"].as_i64().unwrap();
    assert_eq!(
        api.file_checksum(table, id, scan).await,
        (size as u64, sha.clone())
    );
    // And the active side may fetch it back, chunk by chunk.
    let (status, body) = send_bytes(
        Method::GET,
        &url,
        &format!("content/{sha}/1"),
        "123456",
        Vec::new(),
    )
    .await;
    assert_eq!((status, body.as_slice()), (StatusCode::OK, second));
}
