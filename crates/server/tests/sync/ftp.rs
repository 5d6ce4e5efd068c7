//! The FTP transport against an FTP server running in the test process (libunftp over a
//! temporary folder): FTP–FTP, and Local–FTP where the local side's folders are the FTP
//! server's own folders on this machine (S-28).

use super::http::{add_field, clients, quiet, record_values};
use crate::common::{Client, Server, eventually};
use reqwest::StatusCode;
use serde_json::json;
use std::os::fd::OwnedFd;
use std::path::Path;

/// Starts an FTP server over `root` on a free loopback port; returns the port.
pub async fn ftp_server(root: &Path) -> u16 {
    serve_ftp(root, None).await
}

/// The same, speaking only FTPS (explicit, AUTH TLS) with this certificate and key.
pub async fn ftps_server(root: &Path, cert: &Path, key: &Path) -> u16 {
    serve_ftp(root, Some((cert, key))).await
}

/// The listener is the test's own from the start (no port left free for another process to
/// take), and each connection it accepts is served by libunftp.
async fn serve_ftp(root: &Path, tls: Option<(&Path, &Path)>) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let passive = passive_ports();
    let root = root.to_path_buf();
    let tls = tls.map(|(cert, key)| (cert.to_path_buf(), key.to_path_buf()));
    let server = move || {
        let root = root.clone();
        let mut builder = libunftp::ServerBuilder::new(Box::new(move || {
            unftp_sbe_fs::Filesystem::new(root.clone()).unwrap()
        }))
        .greeting("crmsync test FTP")
        .passive_ports(passive.clone());
        if let Some((cert, key)) = &tls {
            use libunftp::options::FtpsRequired;
            builder = builder
                .ftps(cert.clone(), key.clone())
                .ftps_required(FtpsRequired::All, FtpsRequired::All);
        }
        builder.build().unwrap()
    };
    tokio::spawn(async move {
        while let Ok((connection, _)) = listener.accept().await {
            tokio::spawn(server().service(connection));
        }
    });
    port
}

/// Passive (data) ports for one FTP server: a block no other server of this process has,
/// below the kernel's ephemeral ports (32768 and up) so no outgoing connection takes one,
/// starting where the process id says so two test processes seldom share blocks, and
/// checked free.
fn passive_ports() -> std::ops::RangeInclusive<u16> {
    const FIRST: u32 = 20_000;
    const BLOCK: u32 = 32;
    const BLOCKS: u32 = 375;
    static HANDED_OUT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let start = std::process::id() % BLOCKS;
    loop {
        let n = HANDED_OUT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        assert!(n < BLOCKS, "no free block of passive ports left");
        let first = FIRST + (start + n) % BLOCKS * BLOCK;
        let ports = first as u16..=(first + BLOCK - 1) as u16;
        if ports
            .clone()
            .all(|p| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok())
        {
            return ports;
        }
    }
}

async fn ftp_sync(api: &Client, mode: &str, port: u16, upload: &str, download: &str) -> i64 {
    ftp_sync_as(api, mode, port, "shop", upload, download).await
}

pub async fn ftp_sync_as(
    api: &Client,
    mode: &str,
    port: u16,
    login: &str,
    upload: &str,
    download: &str,
) -> i64 {
    let (status, body) = api
        .post(
            "/syncs",
            json!({ "name": format!("{mode} over FTP"), "mode": mode, "transport": "ftp", "password": "123456",
                    "period_seconds": 1,
                    "ftp": { "host": "127.0.0.1", "port": port, "login": login, "password": "ftp-secret",
                             "upload_dir": upload, "download_dir": download, "tls": false } }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert!(
        body["ftp"].get("password").is_none(),
        "FTP passwords are write-only: {body}"
    );
    body["id"].as_i64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ftp_to_ftp_and_local_to_ftp() {
    let dir = tempfile::tempdir().unwrap();
    let ftp_root = dir.path().join("ftp-root");
    std::fs::create_dir_all(&ftp_root).unwrap();
    let port = ftp_server(&ftp_root).await;
    let main = Server::start(&dir.path().join("main"));
    let aux = Server::start(&dir.path().join("aux"));
    let shop = Server::start(&dir.path().join("shop"));
    let (main_api, aux_api, shop_api) = (main.admin(), aux.admin(), shop.admin());
    let (main_table, m) = clients(&main_api, &["Name"]).await;
    let (aux_table, a) = clients(&aux_api, &["Name"]).await;
    let (shop_table, s) = clients(&shop_api, &["Name"]).await;

    // FTP–FTP: both instances reach the same server.
    let active = ftp_sync(&main_api, "active", port, "/cb/upload", "/cb/download").await;
    let passive = ftp_sync(&aux_api, "passive", port, "/cb/download", "/cb/upload").await;
    add_field(&main_api, active, m[0], "both", None).await;
    add_field(&aux_api, passive, a[0], "both", Some(m[0])).await;
    main_api
        .create_record(main_table, json!({ m[0].to_string(): "via FTP" }))
        .await;
    eventually(30, "main's record on aux over FTP", || async {
        (record_values(&aux_api, aux_table).await == vec![json!({ a[0].to_string(): "via FTP" })])
            .then_some(())
    })
    .await;
    let copy = aux_api
        .ok(
            reqwest::Method::GET,
            &format!("/tables/{aux_table}/records"),
            None,
        )
        .await["records"][0]
        .clone();
    aux_api
        .patch(
            &format!("/tables/{aux_table}/records/{}", copy["id"]),
            json!({ "values": { a[0].to_string(): "edited on aux" } }),
        )
        .await;
    eventually(30, "aux's edit on main over FTP", || async {
        (record_values(&main_api, main_table).await[0][m[0].to_string()] == "edited on aux")
            .then_some(())
    })
    .await;

    // The same server folders twice are refused (S-30).
    let (status, body) = shop_api
        .post("/syncs", json!({ "name": "clash", "mode": "active", "transport": "ftp", "password": "1",
            "ftp": { "host": "127.0.0.1", "port": port, "login": "x", "password": "y", "upload_dir": "/other", "download_dir": "/cb/upload/" } }))
        .await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "another instance may use them: {body}"
    );
    let (status, body) = main_api
        .post("/syncs", json!({ "name": "clash", "mode": "active", "transport": "ftp", "password": "1",
            "ftp": { "host": "127.0.0.1", "port": port, "login": "x", "password": "y", "upload_dir": "/other", "download_dir": "/cb/upload/" } }))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    shop_api.delete(&format!("/syncs/{}", 1)).await;

    // Local–FTP: the shop instance runs where the FTP server's folders are.
    let shop_sync = {
        let local = json!({ "upload_dir": ftp_root.join("shop/out"), "download_dir": ftp_root.join("shop/in") });
        let (status, body) = shop_api
            .post("/syncs", json!({ "name": "local side", "mode": "passive", "transport": "local", "password": "654321", "period_seconds": 1, "local": local }))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["id"].as_i64().unwrap()
    };
    let (status, body) = main_api
        .post("/syncs", json!({ "name": "to the shop", "mode": "active", "transport": "ftp", "password": "654321", "period_seconds": 1,
            "ftp": { "host": "127.0.0.1", "port": port, "login": "x", "password": "y", "upload_dir": "/shop/in", "download_dir": "/shop/out" } }))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let to_shop = body["id"].as_i64().unwrap();
    add_field(&main_api, to_shop, m[0], "upload", None).await;
    add_field(&shop_api, shop_sync, s[0], "download", Some(m[0])).await;
    main_api
        .create_record(main_table, json!({ m[0].to_string(): "for the shop" }))
        .await;
    eventually(30, "main's new record at the shop", || async {
        let values = record_values(&shop_api, shop_table).await;
        values
            .iter()
            .any(|v| v[s[0].to_string()] == "for the shop")
            .then_some(())
    })
    .await;
    let (_, status) = main_api.get(&format!("/syncs/{to_shop}/status")).await;
    assert_eq!(status["connected"], true, "{status}");
}

#[tokio::test]
async fn ftp_settings_are_checked_and_an_unreachable_server_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let api = server.admin();
    let ftp = |host: &str, upload: &str, tls: bool| {
        json!({ "name": "f", "mode": "active", "transport": "ftp", "password": "123456", "period_seconds": 1,
                "ftp": { "host": host, "login": "u", "password": "p", "upload_dir": upload, "download_dir": "/cb/download", "tls": tls } })
    };
    for (body, needle) in [
        (
            ftp("ftp://example.ru", "/cb/upload", false),
            "without ftp://",
        ),
        (ftp("example.ru", "cb/upload", false), "starting with /"),
        (
            ftp("example.ru", "/cb/download", false),
            "two different folders",
        ),
    ] {
        let (status, reply) = api.post("/syncs", body).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{reply}");
        assert!(
            reply["detail"].as_str().unwrap().contains(needle),
            "{reply}"
        );
    }
    let (status, created) = api
        .post("/syncs", ftp("127.0.0.1", "/cb/upload", false))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["ftp"]["port"], 21, "21 by default");
    let id = created["id"].as_i64().unwrap();
    let (_, f) = clients(&api, &["Name"]).await;
    add_field(&api, id, f[0], "both", None).await;
    api.patch(&format!("/syncs/{id}"), json!({ "ftp": { "host": "127.0.0.1", "port": 9, "login": "u", "password": "p", "upload_dir": "/cb/upload", "download_dir": "/cb/download" } })).await;
    eventually(20, "the unreachable server in the status", || async {
        let (_, s) = api.get(&format!("/syncs/{id}/status")).await;
        s["reason"]
            .as_str()
            .is_some_and(|r| r.contains("cannot reach the FTP server 127.0.0.1:9"))
            .then_some(())
    })
    .await;
}

/// vsftpd from Debian's packages (installed by scripts/test-prerequisites.sh), on a
/// loopback port, anonymous with write access. Run as the launching user it cannot chroot,
/// so FTP paths are this machine's paths: tests use folders under their temporary root.
/// The test holds the listening socket itself and starts vsftpd for each connection on it
/// (inetd mode), so the port is never free for another process to take while it runs.
struct Vsftpd {
    port: u16,
    config: std::path::PathBuf,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    sessions: std::sync::Arc<std::sync::Mutex<Vec<std::process::Child>>>,
    acceptor: Option<std::thread::JoinHandle<()>>,
}

impl Vsftpd {
    /// On `port`, or on any free one with 0.
    fn start(root: &Path, port: u16) -> Vsftpd {
        Vsftpd::start_configured(root, port, "")
    }

    /// Speaking only FTPS, for anonymous logins too, with this certificate and key.
    fn start_tls(root: &Path, port: u16, cert: &Path, key: &Path) -> Vsftpd {
        let tls = format!(
            "ssl_enable=YES\nallow_anon_ssl=YES\nforce_anon_logins_ssl=YES\n\
             force_anon_data_ssl=YES\nrsa_cert_file={}\nrsa_private_key_file={}\n",
            cert.display(),
            key.display()
        );
        Vsftpd::start_configured(root, port, &tls)
    }

    fn start_configured(root: &Path, port: u16, extra: &str) -> Vsftpd {
        assert!(
            Path::new("/usr/sbin/vsftpd").exists(),
            "vsftpd is missing: run scripts/test-prerequisites.sh (make test does)"
        );
        std::fs::create_dir_all("/var/run/vsftpd/empty").ok();
        let listener = std::net::TcpListener::bind(("127.0.0.1", port))
            .unwrap_or_else(|e| panic!("vsftpd's port {port}: {e}"));
        let port = listener.local_addr().unwrap().port();
        let passive = passive_ports();
        let config = root.with_extension("vsftpd.conf");
        std::fs::write(
            &config,
            format!(
                "listen=NO\nlisten_ipv6=NO\n\
                 anonymous_enable=YES\nlocal_enable=NO\nwrite_enable=YES\nanon_upload_enable=YES\n\
                 anon_mkdir_write_enable=YES\nanon_other_write_enable=YES\nanon_root={}\n\
                 anon_umask=022\nno_anon_password=YES\npasv_enable=YES\npasv_min_port={}\n\
                 pasv_max_port={}\nrun_as_launching_user=YES\nseccomp_sandbox=NO\n\
                 secure_chroot_dir=/var/run/vsftpd/empty\nxferlog_enable=NO\n{extra}",
                root.display(),
                passive.start(),
                passive.end()
            ),
        )
        .unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let sessions =
            std::sync::Arc::new(std::sync::Mutex::new(Vec::<std::process::Child>::new()));
        let acceptor = {
            let (stop, sessions, config) = (stop.clone(), sessions.clone(), config.clone());
            std::thread::spawn(move || {
                for connection in listener.incoming() {
                    if stop.load(std::sync::atomic::Ordering::SeqCst) {
                        break;
                    }
                    let Ok(connection) = connection else { continue };
                    // The connection is vsftpd's standard input and output.
                    let session = std::process::Command::new("/usr/sbin/vsftpd")
                        .arg(&config)
                        .stdin(OwnedFd::from(
                            connection.try_clone().expect("the connection twice"),
                        ))
                        .stdout(OwnedFd::from(connection))
                        .stderr(std::process::Stdio::null())
                        .spawn()
                        .expect("start vsftpd");
                    let mut sessions = sessions.lock().unwrap();
                    sessions.retain_mut(|s| s.try_wait().ok().flatten().is_none());
                    sessions.push(session);
                }
            })
        };
        Vsftpd {
            port,
            config,
            stop,
            sessions,
            acceptor: Some(acceptor),
        }
    }
}

impl Drop for Vsftpd {
    /// The server goes away: the port closes and every session ends at once.
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        // Wakes the acceptor, which then returns and closes the listening socket.
        let _ = std::net::TcpStream::connect(("127.0.0.1", self.port));
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
        for mut session in self.sessions.lock().unwrap().drain(..) {
            let _ = session.kill();
            let _ = session.wait();
        }
        let _ = std::fs::remove_file(&self.config);
    }
}

/// Starts vsftpd again on `root`, on a port of its own, and points these FTP syncs at it.
async fn restart_elsewhere(root: &Path, syncs: &[(&Client, i64)]) -> Vsftpd {
    let ftp = Vsftpd::start(root, 0);
    for (api, sync) in syncs {
        let (_, current) = api.get(&format!("/syncs/{sync}")).await;
        let mut settings = current["ftp"].clone();
        settings["port"] = json!(ftp.port);
        settings["password"] = json!("ftp-secret");
        let (status, body) = api
            .patch(&format!("/syncs/{sync}"), json!({ "ftp": settings }))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    ftp
}

/// Until a side of these syncs has found the FTP server gone.
async fn outage_seen(syncs: &[(&Client, i64)]) {
    eventually(30, "the FTP server found gone", || async {
        for (api, sync) in syncs {
            let (_, s) = api.get(&format!("/syncs/{sync}/status")).await;
            if s["connected"] == false {
                return Some(());
            }
        }
        None
    })
    .await;
}

#[tokio::test]
async fn ftp_to_ftp_through_vsftpd_survives_a_server_restart_mid_exchange() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("vsftpd-root");
    std::fs::create_dir_all(&root).unwrap();
    let ftp = Vsftpd::start(&root, 0);
    let main = Server::start(&dir.path().join("main"));
    let aux = Server::start(&dir.path().join("aux"));
    let (main_api, aux_api) = (main.admin(), aux.admin());
    let (main_table, m) = clients(&main_api, &["Name"]).await;
    let (aux_table, a) = clients(&aux_api, &["Name"]).await;
    // vsftpd as set up here takes anonymous logins only.
    let (up, down) = (root.join("cb/upload"), root.join("cb/download"));
    let (up, down) = (up.to_str().unwrap(), down.to_str().unwrap());
    let active = ftp_sync_as(&main_api, "active", ftp.port, "anonymous", up, down).await;
    let passive = ftp_sync_as(&aux_api, "passive", ftp.port, "anonymous", down, up).await;
    add_field(&main_api, active, m[0], "both", None).await;
    add_field(&aux_api, passive, a[0], "both", Some(m[0])).await;

    let rows = 12_000;
    let mut csv = String::from("Name\n");
    for i in 0..rows {
        csv.push_str(&format!("row {i}\n"));
    }
    let response = main_api
        .raw(
            reqwest::Method::POST,
            &format!("/tables/{main_table}/import"),
        )
        .body(csv)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    eventually(60, "the first rows through vsftpd", || async {
        (!record_values(&aux_api, aux_table).await.is_empty()).then_some(())
    })
    .await;
    // The server goes away in the middle and comes back (on another port: nothing can
    // have taken it meanwhile).
    drop(ftp);
    outage_seen(&[(&main_api, active), (&aux_api, passive)]).await;
    // Rows still to come through the restarted server: the restart is mid-exchange.
    let on_aux = aux_api.all_ids(aux_table, "active").await.len();
    assert!(
        on_aux < rows,
        "restarted mid-exchange: {on_aux} of {rows} rows on aux"
    );
    let _ftp = restart_elsewhere(&root, &[(&main_api, active), (&aux_api, passive)]).await;
    eventually(120, "every row, once, after the restart", || async {
        (aux_api.all_ids(aux_table, "active").await.len() == rows).then_some(())
    })
    .await;
    quiet(&main_api, active, &aux_api, passive).await;
    assert_eq!(
        aux_api.all_ids(aux_table, "active").await.len(),
        rows,
        "nothing doubled"
    );
}

#[tokio::test]
async fn a_big_file_through_vsftpd_survives_a_server_restart_mid_upload() {
    use sha2::{Digest, Sha256};
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("vsftpd-root");
    std::fs::create_dir_all(&root).unwrap();
    let ftp = Vsftpd::start(&root, 0);
    let main = Server::start(&dir.path().join("main"));
    let aux = Server::start(&dir.path().join("aux"));
    let (main_api, aux_api) = (main.admin(), aux.admin());
    let mut tables = Vec::new();
    for api in [&main_api, &aux_api] {
        let table = api.create_table("Contracts").await;
        let scan = api.create_field(table, "Scan", "file", json!({})).await;
        tables.push((table, scan));
    }
    let [(main_table, main_scan), (aux_table, aux_scan)] = tables[..] else {
        unreachable!()
    };
    let (up, down) = (root.join("cb/up"), root.join("cb/down"));
    let (up, down) = (up.to_str().unwrap(), down.to_str().unwrap());
    let active = ftp_sync_as(&main_api, "active", ftp.port, "anonymous", up, down).await;
    let passive = ftp_sync_as(&aux_api, "passive", ftp.port, "anonymous", down, up).await;
    add_field(&main_api, active, main_scan, "upload", None).await;
    add_field(&aux_api, passive, aux_scan, "download", Some(main_scan)).await;

    let id = main_api.create_record(main_table, json!({})).await["id"]
        .as_i64()
        .unwrap();
    let size = 200 << 20;
    let scan = crate::common::content(size, 11);
    let sha = hex::encode(Sha256::digest(&scan));
    main_api
        .upload_file(main_table, id, main_scan, "archive.zip", scan)
        .await;
    let upload_dir = root.join("cb/up");
    let chunks_there = || {
        std::fs::read_dir(&upload_dir)
            .map(|d| {
                d.filter_map(|e| e.ok()?.file_name().into_string().ok())
                    .filter(|n| n.ends_with(".chunk"))
                    .count()
            })
            .unwrap_or(0)
    };
    eventually(60, "the first chunks on the FTP server", || async {
        (chunks_there() >= 2).then_some(())
    })
    .await;
    // The server goes away in the middle of the upload and comes back on another port.
    drop(ftp);
    let written_before = chunks_there();
    assert!(
        written_before < 25,
        "stopped mid-upload: {written_before} of 25 chunks"
    );
    outage_seen(&[(&main_api, active), (&aux_api, passive)]).await;
    let file_on_aux = || async {
        let (_, page) = aux_api.get(&format!("/tables/{aux_table}/records")).await;
        page["records"].as_array()?.iter().find_map(|r| {
            (r["values"][aux_scan.to_string()]["sha256"] == sha.as_str())
                .then(|| r["id"].as_i64())
                .flatten()
        })
    };
    // Fewer chunk files could also mean aux took them all: it must not have the file yet.
    assert_eq!(
        file_on_aux().await,
        None,
        "restarted mid-upload: the file is not on aux yet"
    );
    let _ftp = restart_elsewhere(&root, &[(&main_api, active), (&aux_api, passive)]).await;
    let copy = eventually(180, "the whole file on aux after the restart", file_on_aux).await;
    assert_eq!(
        aux_api.file_checksum(aux_table, copy, aux_scan).await,
        (size as u64, sha)
    );
}

#[tokio::test]
async fn ftps_through_vsftpd_carries_a_record_and_its_file() {
    use sha2::{Digest, Sha256};
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("vsftpd-root");
    std::fs::create_dir_all(&root).unwrap();
    let (cert, key) = crate::common::self_signed_certificate(dir.path(), "vsftpd");
    let ftp = Vsftpd::start_tls(&root, 0, &cert, &key);
    let port = ftp.port;
    let trust = [
        "--admin-password",
        crate::common::ADMIN_PASSWORD,
        "--trust-cert",
        cert.to_str().unwrap(),
    ];
    let main = Server::start_with(&dir.path().join("main"), &trust, &[]);
    let aux = Server::start_with(&dir.path().join("aux"), &trust, &[]);
    let (main_api, aux_api) = (main.admin(), aux.admin());
    let mut tables = Vec::new();
    for api in [&main_api, &aux_api] {
        let table = api.create_table("Contracts").await;
        let scan = api.create_field(table, "Scan", "file", json!({})).await;
        tables.push((table, scan));
    }
    let [(main_table, main_scan), (aux_table, aux_scan)] = tables[..] else {
        unreachable!()
    };
    let (up, down) = (root.join("cb/up"), root.join("cb/down"));
    let ftps = |upload: &Path, download: &Path| {
        json!({ "host": "127.0.0.1", "port": port, "login": "anonymous", "password": "x",
                "upload_dir": upload, "download_dir": download, "tls": true })
    };
    let mut syncs = Vec::new();
    for (api, mode, ftp) in [
        (&main_api, "active", ftps(&up, &down)),
        (&aux_api, "passive", ftps(&down, &up)),
    ] {
        let (status, body) = api
            .post(
                "/syncs",
                json!({ "name": "vsftpd over TLS", "mode": mode, "transport": "ftp",
                "password": "123456", "period_seconds": 1, "ftp": ftp }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        syncs.push(body["id"].as_i64().unwrap());
    }
    add_field(&main_api, syncs[0], main_scan, "both", None).await;
    add_field(&aux_api, syncs[1], aux_scan, "both", Some(main_scan)).await;
    let id = main_api.create_record(main_table, json!({})).await["id"]
        .as_i64()
        .unwrap();
    let scan = crate::common::content(9 << 20, 31);
    let sha = hex::encode(Sha256::digest(&scan));
    main_api
        .upload_file(main_table, id, main_scan, "scan.pdf", scan)
        .await;
    let copy = eventually(60, "the file through vsftpd over TLS", || async {
        let (_, page) = aux_api.get(&format!("/tables/{aux_table}/records")).await;
        page["records"].as_array()?.iter().find_map(|r| {
            (r["values"][aux_scan.to_string()]["sha256"] == sha.as_str())
                .then(|| r["id"].as_i64())
                .flatten()
        })
    })
    .await;
    assert_eq!(
        aux_api.file_checksum(aux_table, copy, aux_scan).await,
        (9 << 20, sha)
    );
}
