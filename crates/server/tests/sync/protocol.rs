//! The sync protocol spoken by hand, as another implementation would (docs/protocol.md):
//! pairing, sealed requests, a packet delivered twice, a replayed, forged or stale request,
//! an older value.

use crate::common::{Client, Server, eventually};
use crmsync_sync::channel::{
    self, Expect, Head, Header, Key, ReplayWindow, Role, confirmation, confirms, pake_key,
    pake_message, random_bytes,
};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// A peer written by hand from docs/protocol.md: pairs with SPAKE2, then seals every
/// request and opens every answer.
pub struct Peer {
    url: String,
    instance: String,
    key: Option<Key>,
    last_seq: std::sync::Mutex<u64>,
}

impl Peer {
    pub fn new(url: &str, instance: &str) -> Peer {
        Peer {
            url: url.to_string(),
            instance: instance.to_string(),
            key: None,
            last_seq: Default::default(),
        }
    }

    /// Pairs with `password`: the status and body of the confirmation's answer, and
    /// whether the passive side proved it knows the same password. The key is kept.
    pub async fn pair(&mut self, password: &str) -> (StatusCode, Value, bool) {
        let seed = random_bytes();
        let offer = json!({ "v": 3, "from": self.instance,
                            "pake": hex::encode(pake_message(password, Role::Active, &seed)) });
        let http = reqwest::Client::new();
        let response = http
            .post(format!("{}/pake", self.url))
            .json(&offer)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let answer: Value = response.json().await.unwrap();
        if status != StatusCode::OK {
            return (status, answer, false);
        }
        let message = hex::decode(answer["pake"].as_str().unwrap()).unwrap();
        let passive = answer["from"].as_str().unwrap();
        let key = pake_key(
            password,
            Role::Active,
            &seed,
            &message,
            &self.instance,
            passive,
        )
        .unwrap();
        let proved = confirms(&key, Role::Passive, answer["confirm"].as_str().unwrap());
        let confirmed = json!({ "pairing": answer["pairing"],
                                "confirm": confirmation(&key, Role::Active) });
        let response = http
            .post(format!("{}/pake/confirm", self.url))
            .json(&confirmed)
            .send()
            .await
            .unwrap();
        let status = response.status();
        self.key = Some(key);
        (status, response.json().await.unwrap_or(Value::Null), proved)
    }

    /// A request sealed with the paired key, claiming the time `ts`: its `seq` and bytes.
    pub fn seal_at(&self, endpoint: &str, body: &[u8], ts: i64) -> (u64, Vec<u8>) {
        let seq = channel::next_seq(&mut self.last_seq.lock().unwrap(), now_ms());
        let header = Header {
            v: 2,
            key: String::new(),
            role: Role::Active,
            kind: endpoint.to_string(),
            seq,
            ts,
            reply: None,
            raw: false,
        };
        let key = self.key.as_ref().expect("paired first");
        (seq, channel::seal(key, &header, body))
    }

    /// Sends sealed bytes; opens a sealed answer (checking that it answers `seq`), or
    /// returns a refusal given before any key was checked as it is.
    pub async fn post_sealed(
        &self,
        method: Method,
        endpoint: &str,
        seq: u64,
        sealed: Vec<u8>,
    ) -> (StatusCode, Vec<u8>) {
        // The request's head (key, number, time, length) is proven on its own, before the
        // body is read.
        let sealed_header = channel::peek(&sealed).unwrap();
        let head = Head {
            key: sealed_header.key,
            seq: sealed_header.seq,
            ts: sealed_header.ts,
            len: sealed.len() as u64,
        }
        .encode(self.key.as_ref().unwrap(), endpoint);
        let response = reqwest::Client::new()
            .request(method, format!("{}/{endpoint}", self.url))
            .header(channel::HEAD_HEADER, head)
            .body(sealed)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let bytes = response.bytes().await.unwrap().to_vec();
        if !bytes.starts_with(channel::MAGIC) {
            return (status, bytes);
        }
        let expect = Expect {
            from: &[Role::Passive],
            kind: Some(endpoint),
            reply_to: Some(seq),
            now_ms: Some(now_ms()),
        };
        let (_, body) = channel::open_checked(
            self.key.as_ref().unwrap(),
            &bytes,
            &expect,
            &mut ReplayWindow::default(),
            1 << 30,
        )
        .expect("the passive side's answer opens and answers this request");
        (status, body)
    }

    pub async fn send_bytes(
        &self,
        method: Method,
        endpoint: &str,
        body: Vec<u8>,
    ) -> (StatusCode, Vec<u8>) {
        let (seq, sealed) = self.seal_at(endpoint, &body, now_ms());
        self.post_sealed(method, endpoint, seq, sealed).await
    }

    pub async fn send(&self, endpoint: &str, body: &Value) -> (StatusCode, Value) {
        let (status, bytes) = self
            .send_bytes(Method::POST, endpoint, serde_json::to_vec(body).unwrap())
            .await;
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }
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

    let mut peer = Peer::new(&url, "018f0000-0000-7000-8000-000000000001");
    let (status, reply, proved) = peer.pair("123456").await;
    assert_eq!((status, proved), (StatusCode::OK, true), "{reply}");
    let catalog = json!([{ "no": 101, "name": "Name", "type": "text", "table_id": 7, "table_name": "Clients" }]);
    let hello = json!({ "version": 3, "instance_id": "018f0000-0000-7000-8000-000000000001", "catalog": catalog });
    let (status, reply) = peer.send("hello", &hello).await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert_eq!(reply["problems"], json!([]));
    let (status, reply) = peer
        .send(
            "hello",
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
    // A packet whose range runs backwards is no stretch of a log: refused, nothing taken.
    let mut backwards = packet(10, "Web order", hlc);
    backwards["after"] = json!(20);
    let (status, reply) = peer.send("push", &backwards).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{reply}");
    assert!(names(&api, table).await.is_empty());

    let (status, reply) = peer.send("push", &packet(10, "Web order", hlc)).await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert_eq!(reply["applied"], 10);
    assert_eq!(
        names(&api, table).await,
        vec![json!({ name.to_string(): "Web order" })]
    );

    // Delivered twice: nothing changes.
    let (status, reply) = peer.send("push", &packet(10, "Web order", hlc)).await;
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

    // Replayed byte for byte, forged, stale, malformed: refused, nothing written.
    let (seq, sealed) = peer.seal_at(
        "push",
        &serde_json::to_vec(&packet(11, "Once", hlc + 5)).unwrap(),
        now_ms(),
    );
    let (status, _) = peer
        .post_sealed(Method::POST, "push", seq, sealed.clone())
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, reply) = peer.post_sealed(Method::POST, "push", seq, sealed).await;
    let reply: Value = serde_json::from_slice(&reply).unwrap();
    assert_eq!(
        (status, reply["error"].clone()),
        (StatusCode::UNAUTHORIZED, json!("replay")),
        "{reply}"
    );
    // Sealed for one endpoint, sent to another.
    let (seq, sealed) = peer.seal_at(
        "pull",
        &serde_json::to_vec(&json!({ "ack": 0, "wait_ms": 0 })).unwrap(),
        now_ms(),
    );
    let (status, _) = peer.post_sealed(Method::POST, "resend", seq, sealed).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let mut stranger = Peer::new(&url, "018f0000-0000-7000-8000-00000000dead");
    let (status, reply, proved) = stranger.pair("654321").await;
    assert_eq!(
        (status, reply["error"].clone(), proved),
        (StatusCode::UNAUTHORIZED, json!("wrong_password"), false),
        "{reply}"
    );
    let (status, reply) = stranger.send("push", &packet(12, "Forged", hlc + 5)).await;
    assert_eq!(
        (status, reply["error"].clone()),
        (StatusCode::UNAUTHORIZED, json!("unknown_key")),
        "{reply}"
    );
    let (seq, sealed) = peer.seal_at(
        "push",
        &serde_json::to_vec(&packet(12, "Replayed", hlc + 5)).unwrap(),
        now_ms() - 3_600_000,
    );
    let (status, reply) = peer.post_sealed(Method::POST, "push", seq, sealed).await;
    let reply: Value = serde_json::from_slice(&reply).unwrap();
    assert_eq!(
        (status, reply["error"].clone()),
        (StatusCode::UNAUTHORIZED, json!("stale_request"))
    );
    let (status, _) = peer.send("push", &json!({ "items": "nope" })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        names(&api, table).await,
        vec![json!({ name.to_string(): "Once" })]
    );
    let (_, log) = api.get(&format!("/syncs/{sync_id}/log?limit=100")).await;
    let refusals: Vec<&str> = log["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "auth")
        .map(|e| e["message"].as_str().unwrap())
        .collect();
    for expected in ["a replay", "used another password", "5 minutes off"] {
        assert!(
            refusals.iter().any(|m| m.contains(expected)),
            "{expected}: {refusals:?}"
        );
    }

    // Repeated pairing attempts with wrong passwords are slowed down: each is one guess.
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(stranger.pair("wrong-guess").await.0);
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
        let sent = peer.send("push", &packet(13, "Stale edit", hlc + 1)).await;
        (sent.0 != StatusCode::TOO_MANY_REQUESTS).then_some(sent)
    })
    .await;
    assert_eq!(
        (status, reply["applied"].clone()),
        (StatusCode::OK, json!(13))
    );
    assert_eq!(
        names(&api, table).await,
        vec![json!({ name.to_string(): "Edited here" })]
    );
    let newer = ((now_ms() as u64) + 60_000) << 16;
    peer.send("push", &packet(14, "Newer edit", newer)).await;
    assert_eq!(
        names(&api, table).await,
        vec![json!({ name.to_string(): "Newer edit" })]
    );

    // Pull: this side's edit makes the record travel, with the field's current value and
    // stamp (by now the peer's newer one: harmless, the peer keeps it). The peer's own
    // changes alone would not travel back.
    let (status, packet) = peer.send("pull", &json!({ "ack": 0, "wait_ms": 0 })).await;
    assert_eq!(status, StatusCode::OK, "{packet}");
    let items = packet["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{packet}");
    assert_eq!(items[0]["uid"], uid);
    assert_eq!(items[0]["table"], 7);
    assert_eq!(items[0]["fields"]["101"]["value"], "Newer edit");
    // A field stamped like its record leaves its stamp out (protocol 3): the record's is it.
    let field = &items[0]["fields"]["101"];
    let stamp = match field.get("stamp") {
        Some(own) => own,
        None => &items[0]["status_stamp"],
    };
    assert_eq!(stamp["hlc"], newer, "{packet}");

    // Two pushes on their way at once: the second, arriving before the packet it follows,
    // waits for it to be applied, so no stretch of the log is passed over.
    let item = |uid: &str, value: &str| {
        json!({ "uid": uid, "table": 7, "status": "active",
                "status_stamp": { "hlc": newer + 10, "node": node },
                "fields": { "101": { "value": value } } })
    };
    let first = json!({ "after": 14, "upto": 20, "remaining": 10,
                        "items": [item("018f0000-0000-7000-8000-0000000000c1", "First")] });
    let second = json!({ "after": 20, "upto": 30, "remaining": 0, "follows": 20,
                         "items": [item("018f0000-0000-7000-8000-0000000000c2", "Second")] });
    let (second, first) = tokio::join!(peer.send("push", &second), async {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        peer.send("push", &first).await
    });
    assert_eq!(
        (first.0, first.1["applied"].clone()),
        (StatusCode::OK, json!(20))
    );
    assert_eq!(
        (second.0, second.1["applied"].clone()),
        (StatusCode::OK, json!(30))
    );
    let names = names(&api, table).await;
    for value in ["First", "Second"] {
        assert!(
            names.contains(&json!({ name.to_string(): value })),
            "{value}: {names:?}"
        );
    }
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
    let mut peer = Peer::new(&url, "018f0000-0000-7000-8000-000000000001");
    assert!(peer.pair("123456").await.2);
    let catalog = json!([{ "no": 102, "name": "Scan", "type": "file", "table_id": 7, "table_name": "Contracts" }]);
    let hello = json!({ "version": 3, "instance_id": "018f0000-0000-7000-8000-000000000001", "catalog": catalog });
    let (status, reply) = peer.send("hello", &hello).await;
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
    let (status, reply) = peer.send("push", &packet).await;
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
    let (status, body) = peer
        .send_bytes(Method::POST, &format!("content/{sha}"), offer.clone())
        .await;
    assert_eq!((status, received(body)), (StatusCode::OK, 0));
    // Out of order: the answer says where to continue.
    let (status, body) = peer.send_bytes(Method::PUT, &at(1), second.to_vec()).await;
    assert_eq!((status, received(body)), (StatusCode::OK, 0));
    // Another password, a cut-short chunk, a path for a checksum: refused.
    let mut stranger = Peer::new(&url, "018f0000-0000-7000-8000-00000000dead");
    stranger.pair("654321").await;
    // (A short body: refused before its body is read, an 8 MiB one may meet a closed
    // connection on a busy machine instead of the answer.)
    let (status, _) = stranger
        .send_bytes(Method::PUT, &at(0), first[..1000].to_vec())
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = peer
        .send_bytes(Method::PUT, &at(0), first[..1000].to_vec())
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _) = peer
        .send_bytes(Method::POST, "content/not-a-checksum", offer.clone())
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // The first chunk, then a corrupted last one: the whole file is discarded.
    let (status, body) = peer.send_bytes(Method::PUT, &at(0), first.to_vec()).await;
    assert_eq!((status, received(body)), (StatusCode::OK, chunk as u64));
    let mut corrupted = second.to_vec();
    corrupted[0] ^= 1;
    let (status, body) = peer.send_bytes(Method::PUT, &at(1), corrupted).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(String::from_utf8_lossy(&body).contains("checksum"));
    let (_, body) = peer
        .send_bytes(Method::POST, &format!("content/{sha}"), offer.clone())
        .await;
    assert_eq!(
        received(body),
        0,
        "nothing kept of a file that did not match"
    );

    // Sent whole and in order: the packet applies and the record holds the file.
    for (index, part) in [first, second].into_iter().enumerate() {
        let (status, _) = peer
            .send_bytes(Method::PUT, &at(index as u64), part.to_vec())
            .await;
        assert_eq!(status, StatusCode::OK);
    }
    let (status, reply) = peer.send("push", &packet).await;
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
    let (status, body) = peer
        .send_bytes(Method::GET, &format!("content/{sha}/1"), Vec::new())
        .await;
    assert_eq!((status, body.as_slice()), (StatusCode::OK, second));
}

#[tokio::test]
async fn nothing_of_a_field_this_side_does_not_send_leaves_it_whatever_is_asked() {
    let dir = tempfile::tempdir().unwrap();
    let aux = Server::start(&dir.path().join("aux"));
    let api = aux.admin();
    let table = api.create_table("Clients").await;
    let name = api.create_field(table, "Name", "text", json!({})).await;
    let limit = api
        .create_field(table, "Credit limit", "text", json!({}))
        .await;
    let notes = api.create_field(table, "Notes", "text", json!({})).await;
    let (_, sync) = api
        .post(
            "/syncs",
            json!({ "name": "main", "mode": "passive", "password": "123456" }),
        )
        .await;
    let sync_id = sync["id"].as_i64().unwrap();
    let url = sync["endpoint_url"].as_str().unwrap().to_string();
    // Name flows both ways; the credit limit only comes down here; notes are not synced.
    for (field, direction, remote) in [(name, "both", 101), (limit, "download", 102)] {
        api.post(
            &format!("/syncs/{sync_id}/fields"),
            json!({ "field_no": field, "direction": direction, "remote_field_no": remote }),
        )
        .await;
    }
    api.create_record(
        table,
        json!({ name.to_string(): "Romashka", limit.to_string(): "LIMIT-SECRET",
                notes.to_string(): "NOTES-SECRET" }),
    )
    .await;
    let mut peer = Peer::new(&url, "018f0000-0000-7000-8000-000000000001");
    assert!(peer.pair("123456").await.2);
    let catalog = json!([
        { "no": 101, "name": "Name", "type": "text", "table_id": 7, "table_name": "Clients" },
        { "no": 102, "name": "Credit limit", "type": "text", "table_id": 7, "table_name": "Clients" },
        { "no": 103, "name": "Notes", "type": "text", "table_id": 7, "table_name": "Clients" }]);
    let hello = json!({ "version": 3, "instance_id": "018f0000-0000-7000-8000-000000000001", "catalog": catalog });
    assert_eq!(peer.send("hello", &hello).await.0, StatusCode::OK);

    // The active side's records of the table, for a match by a key field.
    let (status, reply) = peer.send("records", &json!({ "table": 7 })).await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert_eq!(reply["items"][0]["fields"]["101"]["value"], "Romashka");
    let text = reply.to_string();
    assert!(
        !text.contains("SECRET") && !text.contains("\"102\""),
        "{text}"
    );
    // Digests, claiming every field flows both ways.
    let both = json!({ "101": "both", "102": "both", "103": "both" });
    let (status, reply) = peer
        .send(
            "digests",
            &json!({ "fields": [101, 102, 103], "directions": both }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert_eq!(reply["fields"], json!([101]), "{reply}");
    let to_active = reply["to_active"].as_array().cloned().unwrap_or_default();
    assert!(!to_active.contains(&json!(102)), "{reply}");
    assert!(!reply.to_string().contains("103"), "{reply}");
    // Pulled changes carry only what flows up.
    let (_, packet) = peer.send("pull", &json!({ "ack": 0, "wait_ms": 0 })).await;
    assert!(!packet.to_string().contains("SECRET"), "{packet}");
}
