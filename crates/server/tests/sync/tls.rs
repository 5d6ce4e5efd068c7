//! TLS (B-09): HTTPS between two instances and explicit FTPS, with a self-signed
//! certificate the other side is told to trust; an untrusted one, or one made for another
//! name, is refused and named; an HTTPS instance answers no plain HTTP.

use super::ftp::ftps_server;
use super::http::{add_field, clients, pair, record_values, set_remote};
use crate::common::{
    ADMIN_PASSWORD, Client, Server, content, eventually, self_signed_certificate,
    self_signed_certificate_for,
};
use reqwest::StatusCode;
use serde_json::json;
use sha2::{Digest, Sha256};
use std::path::Path;

fn trusting(data: &Path, cert: &Path) -> Server {
    Server::start_with(
        data,
        &[
            "--admin-password",
            ADMIN_PASSWORD,
            "--trust-cert",
            cert.to_str().unwrap(),
        ],
        &[],
    )
}

async fn reason_mentions(api: &Client, sync: i64, words: &str) -> serde_json::Value {
    eventually(30, &format!("\"{words}\" in the status"), || async {
        let (_, status) = api.get(&format!("/syncs/{sync}/status")).await;
        (status["connected"] == false
            && status["reason"].as_str().is_some_and(|r| r.contains(words)))
        .then_some(status)
    })
    .await
}

#[tokio::test]
async fn two_instances_sync_over_https_and_an_untrusted_certificate_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed_certificate(dir.path(), "aux");
    let (stranger, _) = self_signed_certificate(dir.path(), "stranger");
    let aux = Server::start_https(&dir.path().join("aux"), &cert, &key, &[]);
    assert!(aux.url.starts_with("https://"), "{}", aux.url);
    let main = trusting(&dir.path().join("main"), &cert);
    let (main_api, aux_api) = (main.admin(), aux.admin());
    let (main_table, m) = clients(&main_api, &["Name"]).await;
    let (aux_table, a) = clients(&aux_api, &["Name"]).await;
    let (active, passive) = pair(&main_api, &aux_api, "123456").await;
    let (_, shown) = aux_api.get(&format!("/syncs/{passive}")).await;
    assert!(
        shown["endpoint_url"]
            .as_str()
            .unwrap()
            .starts_with("https://"),
        "{shown}"
    );
    add_field(&main_api, active, m[0], "both", None).await;
    add_field(&aux_api, passive, a[0], "both", Some(m[0])).await;
    main_api
        .create_record(main_table, json!({ m[0].to_string(): "over HTTPS" }))
        .await;
    eventually(20, "the record over HTTPS", || async {
        (record_values(&aux_api, aux_table).await
            == vec![json!({ a[0].to_string(): "over HTTPS" })])
        .then_some(())
    })
    .await;
    let copy = aux_api.all_ids(aux_table, "active").await[0];
    aux_api
        .patch(
            &format!("/tables/{aux_table}/records/{copy}"),
            json!({ "values": { a[0].to_string(): "back over HTTPS" } }),
        )
        .await;
    eventually(20, "the edit back over HTTPS", || async {
        (record_values(&main_api, main_table).await[0][m[0].to_string()] == "back over HTTPS")
            .then_some(())
    })
    .await;

    // An instance that trusts another certificate does not talk to this one.
    let doubter = trusting(&dir.path().join("doubter"), &stranger);
    let doubter_api = doubter.admin();
    let (_, d) = clients(&doubter_api, &["Name"]).await;
    let (status, created) = doubter_api
        .post(
            "/syncs",
            json!({ "name": "doubtful", "mode": "active", "remote_access": true,
            "remote_url": shown["endpoint_url"], "password": "123456", "period_seconds": 1 }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let doubtful = created["id"].as_i64().unwrap();
    add_field(&doubter_api, doubtful, d[0], "both", None).await;
    reason_mentions(&doubter_api, doubtful, "certificate").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ftps_carries_records_and_files_and_an_untrusted_server_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("ftps-root");
    std::fs::create_dir_all(&root).unwrap();
    let (cert, key) = self_signed_certificate(dir.path(), "ftp");
    let port = ftps_server(&root, &cert, &key).await;
    let main = trusting(&dir.path().join("main"), &cert);
    let aux = trusting(&dir.path().join("aux"), &cert);
    let (main_api, aux_api) = (main.admin(), aux.admin());
    let mut tables = Vec::new();
    for api in [&main_api, &aux_api] {
        let table = api.create_table("Contracts").await;
        let name = api.create_field(table, "Name", "text", json!({})).await;
        let scan = api.create_field(table, "Scan", "file", json!({})).await;
        tables.push((table, name, scan));
    }
    let [(mt, mn, ms), (at, an, asc)] = tables[..] else {
        unreachable!()
    };
    let ftps = |upload: &str, download: &str, tls: bool| {
        json!({ "host": "127.0.0.1", "port": port, "login": "shop", "password": "ftp-secret",
                "upload_dir": upload, "download_dir": download, "tls": tls })
    };
    let create = |api: &Client, mode: &str, ftp: serde_json::Value| {
        let api = api.clone();
        let mode = mode.to_string();
        async move {
            let (status, body) = api
                .post(
                    "/syncs",
                    json!({ "name": format!("{mode} FTPS"), "mode": mode, "transport": "ftp",
                    "password": "123456", "period_seconds": 1, "ftp": ftp }),
                )
                .await;
            assert_eq!(status, StatusCode::CREATED, "{body}");
            body["id"].as_i64().unwrap()
        }
    };
    let active = create(&main_api, "active", ftps("/cb/up", "/cb/down", true)).await;
    let passive = create(&aux_api, "passive", ftps("/cb/down", "/cb/up", true)).await;
    for (api, sync, fields) in [
        (&main_api, active, [(mn, None), (ms, None)]),
        (&aux_api, passive, [(an, Some(mn)), (asc, Some(ms))]),
    ] {
        for (field, remote) in fields {
            add_field(api, sync, field, "both", remote).await;
        }
    }
    let id = main_api
        .create_record(mt, json!({ mn.to_string(): "over FTPS" }))
        .await["id"]
        .as_i64()
        .unwrap();
    let scan = content(9 << 20, 21);
    let sha = hex::encode(Sha256::digest(&scan));
    main_api.upload_file(mt, id, ms, "scan.pdf", scan).await;
    let copy = eventually(60, "the record and its file over FTPS", || async {
        let (_, page) = aux_api.get(&format!("/tables/{at}/records")).await;
        page["records"].as_array()?.iter().find_map(|r| {
            (r["values"][an.to_string()] == "over FTPS"
                && r["values"][asc.to_string()]["sha256"] == sha.as_str())
            .then(|| r["id"].as_i64())
            .flatten()
        })
    })
    .await;
    assert_eq!(aux_api.file_checksum(at, copy, asc).await, (9 << 20, sha));

    // Without TLS this server refuses the login; not trusting its certificate, we refuse it.
    let plain = create(&main_api, "active", ftps("/plain/up", "/plain/down", false)).await;
    add_field(&main_api, plain, mn, "both", None).await;
    reason_mentions(&main_api, plain, "refused the login").await;
    let stranger = Server::start(&dir.path().join("stranger"));
    let stranger_api = stranger.admin();
    let (_, s) = clients(&stranger_api, &["Name"]).await;
    let doubtful = create(&stranger_api, "active", ftps("/s/up", "/s/down", true)).await;
    add_field(&stranger_api, doubtful, s[0], "both", None).await;
    reason_mentions(&stranger_api, doubtful, "certificate").await;
}

#[tokio::test]
async fn a_certificate_made_for_another_name_is_refused_and_the_status_names_the_cause() {
    let dir = tempfile::tempdir().unwrap();
    // Trusted, but made for "localhost" only: reached as 127.0.0.1 it is for another name.
    let (cert, key) = self_signed_certificate_for(dir.path(), "aux", "DNS:localhost");
    let mut aux = Server::start_https(&dir.path().join("aux"), &cert, &key, &[]);
    aux.url = aux.url.replace("127.0.0.1", "localhost");
    let main = trusting(&dir.path().join("main"), &cert);
    let (main_api, aux_api) = (main.admin(), aux.admin());
    let (_, m) = clients(&main_api, &["Name"]).await;
    let (_, a) = clients(&aux_api, &["Name"]).await;
    let (active, passive) = pair(&main_api, &aux_api, "123456").await;
    add_field(&main_api, active, m[0], "both", None).await;
    add_field(&aux_api, passive, a[0], "both", Some(m[0])).await;
    let by_name = format!("{}/sync/v1/{passive}", aux.url);
    let by_address = by_name.replace("localhost", "127.0.0.1");
    set_remote(&main_api, active, &by_address).await;
    let status = reason_mentions(&main_api, active, "invalid peer certificate").await;
    let reason = status["reason"].as_str().unwrap();
    assert!(
        reason.contains(r#"not valid for name "127.0.0.1""#),
        "the status names the cause: {reason}"
    );
    assert!(
        !reason.contains("--trust-cert"),
        "trusting it again would not help: {reason}"
    );

    // The same certificate under the name it was made for is accepted.
    set_remote(&main_api, active, &by_name).await;
    eventually(30, "connected under the certificate's name", || async {
        let (_, s) = main_api.get(&format!("/syncs/{active}/status")).await;
        (s["connected"] == true).then_some(())
    })
    .await;
}

#[tokio::test]
async fn an_https_instance_serves_nothing_over_plain_http_and_its_session_cookie_is_secure() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed_certificate(dir.path(), "aux");
    let aux = Server::start_https(&dir.path().join("aux"), &cert, &key, &[]);
    let main = Server::start(&dir.path().join("main"));
    let (main_api, aux_api) = (main.admin(), aux.admin());
    let (_, m) = clients(&main_api, &["Name"]).await;
    let (_, a) = clients(&aux_api, &["Name"]).await;
    let (active, passive) = pair(&main_api, &aux_api, "123456").await;
    add_field(&main_api, active, m[0], "both", None).await;
    add_field(&aux_api, passive, a[0], "both", Some(m[0])).await;
    let plain = aux.url.replace("https://", "http://");

    // Neither the REST API nor the sync endpoint answers plain HTTP.
    let http = reqwest::Client::new();
    for path in ["/api/v1/tables", &format!("/sync/v1/{passive}/hello")] {
        let answer = http
            .get(format!("{plain}{path}"))
            .basic_auth("admin", Some(ADMIN_PASSWORD))
            .send()
            .await;
        assert!(answer.is_err(), "{path} over plain HTTP: {answer:?}");
    }
    set_remote(&main_api, active, &format!("{plain}/sync/v1/{passive}")).await;
    reason_mentions(&main_api, active, "cannot reach the passive side").await;

    // Over HTTPS the session cookie is Secure; over plain HTTP it cannot be.
    let pem = std::fs::read(&cert).unwrap();
    let https = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let plain_browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    for (browser, server, secure) in [(&https, &aux, true), (&plain_browser, &main, false)] {
        let signed_in = browser
            .post(format!("{}/login", server.url))
            .form(&[("login", "admin"), ("password", ADMIN_PASSWORD)])
            .send()
            .await
            .unwrap();
        let cookie = signed_in.headers()["set-cookie"].to_str().unwrap();
        assert_eq!(
            cookie.split(';').any(|part| part.trim() == "Secure"),
            secure,
            "{}: {cookie}",
            server.url
        );
    }
}

#[tokio::test]
async fn tls_settings_come_from_the_environment_too_and_several_certificates_are_trusted() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed_certificate(dir.path(), "aux");
    let (stranger, stranger_key) = self_signed_certificate(dir.path(), "stranger");
    // CRMSYNC_TLS_CERT / CRMSYNC_TLS_KEY instead of the options.
    let by_env = Server::start_with(
        &dir.path().join("by-env"),
        &["--admin-password", ADMIN_PASSWORD],
        &[
            ("CRMSYNC_TLS_CERT", stranger.to_str().unwrap()),
            ("CRMSYNC_TLS_KEY", stranger_key.to_str().unwrap()),
        ],
    );
    assert!(by_env.url.starts_with("https://"), "{}", by_env.url);

    // CRMSYNC_TRUST_CERTS lists several; the peer's is the second.
    let aux = Server::start_https(&dir.path().join("aux"), &cert, &key, &[]);
    let trusted = format!("{},{}", stranger.display(), cert.display());
    let main = Server::start_with(
        &dir.path().join("main"),
        &["--admin-password", ADMIN_PASSWORD],
        &[("CRMSYNC_TRUST_CERTS", &trusted)],
    );
    let (main_api, aux_api) = (main.admin(), aux.admin());
    let (main_table, m) = clients(&main_api, &["Name"]).await;
    let (aux_table, a) = clients(&aux_api, &["Name"]).await;
    let (active, passive) = pair(&main_api, &aux_api, "123456").await;
    add_field(&main_api, active, m[0], "both", None).await;
    add_field(&aux_api, passive, a[0], "both", Some(m[0])).await;
    main_api
        .create_record(main_table, json!({ m[0].to_string(): "trusted by env" }))
        .await;
    eventually(30, "the record over HTTPS", || async {
        (record_values(&aux_api, aux_table).await
            == vec![json!({ a[0].to_string(): "trusted by env" })])
        .then_some(())
    })
    .await;
}
