//! Hostile clients at a passive side's sync endpoints (issue 14): whatever arrives without
//! the key costs the process no memory.

use super::http::{add_field, clients, pair, record_values};
use crate::common::{Server, eventually, peak_rss_kib};
use serde_json::json;

#[tokio::test]
async fn unauthenticated_60_mib_bodies_to_sync_endpoints_are_refused_unread() {
    let dir = tempfile::tempdir().unwrap();
    let main = Server::start(&dir.path().join("main"));
    let aux = Server::start(&dir.path().join("aux"));
    let (main_api, aux_api) = (main.admin(), aux.admin());
    let (main_table, m) = clients(&main_api, &["Name"]).await;
    let (aux_table, a) = clients(&aux_api, &["Name"]).await;
    let (active, passive) = pair(&main_api, &aux_api, "123456").await;
    add_field(&main_api, active, m[0], "both", None).await;
    add_field(&aux_api, passive, a[0], "both", Some(m[0])).await;
    main_api
        .create_record(main_table, json!({ m[0].to_string(): "Before" }))
        .await;
    eventually(20, "the sync working", || async {
        (record_values(&aux_api, aux_table).await.len() == 1).then_some(())
    })
    .await;
    let before = peak_rss_kib(aux.pid());

    // Eighteen at once, each claiming 60 MiB: without a head, with a made-up one, with the
    // right key id but no key, to a sync that does not exist, and to the routes read before
    // anyone is known (pairing, sign-in).
    let body = axum::body::Bytes::from(vec![b'x'; 60 << 20]);
    let endpoint = super::faults::endpoint(&aux, passive);
    let heads = [
        None,
        Some("key=0011223344556677,seq=1,ts=1,len=62914560,mac=00".to_string()),
        Some(format!(
            "key=0011223344556677,seq={},ts={},len=62914560,mac={}",
            u64::MAX,
            i64::MAX,
            "ab".repeat(32)
        )),
    ];
    let mut sent = Vec::new();
    for n in 0..18 {
        let url = match n % 6 {
            3 => format!("{}/sync/v1/999/push", aux.url),
            4 => format!("{endpoint}/{}", ["pake", "pake/confirm"][n % 2]),
            5 => format!("{}/login", aux.url),
            _ => format!("{endpoint}/push"),
        };
        let mut request = reqwest::Client::new().post(url).body(body.clone());
        if n % 6 == 5 {
            request = request.header("content-type", "application/x-www-form-urlencoded");
        }
        if let Some(head) = &heads[n % 3] {
            request = request.header("x-crmsync-head", head.clone());
        }
        sent.push(tokio::spawn(async move {
            // A refusal may arrive before the body is sent, and the connection close.
            request
                .send()
                .await
                .map(|r| r.status().as_u16())
                .unwrap_or(0)
        }));
    }
    for answer in sent {
        let status = answer.await.unwrap();
        assert!(
            matches!(status, 0 | 400 | 401 | 403 | 404 | 413),
            "an unauthenticated body was taken: {status}"
        );
    }
    let grew = peak_rss_kib(aux.pid()).saturating_sub(before) >> 10;
    assert!(grew < 50, "peak memory grew by {grew} MiB");

    // The real peer is not held up.
    main_api
        .create_record(main_table, json!({ m[0].to_string(): "After" }))
        .await;
    eventually(20, "the sync still working", || async {
        (record_values(&aux_api, aux_table).await.len() == 2).then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_flood_of_bad_files_is_counted_and_the_sync_log_takes_a_bounded_share_of_it() {
    let dir = tempfile::tempdir().unwrap();
    let (inbox, outbox) = (dir.path().join("in"), dir.path().join("out"));
    let aux = Server::start(&dir.path().join("aux"));
    let api = aux.admin();
    let passive = super::folders::local_sync(&api, "passive", &outbox, &inbox).await;
    let (_, fields) = clients(&api, &["Name"]).await;
    add_field(&api, passive, fields[0], "both", Some(1)).await;
    // Anyone who can write to the shared folder can drop files; each is set aside.
    let flood = 100;
    for n in 0..flood {
        std::fs::write(
            inbox.join(format!(
                "00000000000000000000-00000000000000000005-{n:013}.cspk"
            )),
            b"not a packet at all",
        )
        .unwrap();
    }
    eventually(30, "every bad file set aside and counted", || async {
        let (_, status) = api.get(&format!("/syncs/{passive}/status")).await;
        (status["rejected_packets"] == flood).then_some(())
    })
    .await;
    let (_, log) = api.get(&format!("/syncs/{passive}/log?limit=1000")).await;
    let errors: Vec<&str> = log["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "error")
        .map(|e| e["message"].as_str().unwrap())
        .collect();
    assert!(
        (10..=30).contains(&errors.len()),
        "{} log entries for {flood} bad files: {errors:?}",
        errors.len()
    );
    assert!(
        errors.iter().any(|m| m.contains("counted, not written")),
        "the log says it stopped writing: {errors:?}"
    );
    // The server log too takes a bounded share.
    let server_log = std::fs::read_to_string(aux.data.with_extension("log")).unwrap();
    let red = server_log
        .lines()
        .filter(|l| l.contains("sync not connected"))
        .count();
    assert!((1..=30).contains(&red), "{red} lines: {server_log}");
}
