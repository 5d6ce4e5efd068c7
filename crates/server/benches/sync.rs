//! Sync between two real `crmsync` processes over loopback HTTP:
//! 1. initial sync of N records × 8 fields (records/s, peak RSS of each process);
//! 2. sustained change throughput (a CSV import of M records on one side, drained);
//! 3. latency from commit on one side to committed on the other, p50/p99, both ways.
//!
//! 4. a big file (CRMSYNC_BENCH_FILE_MB, default 1024) from upload on one side to stored
//!    on the other (MB/s, peak RSS).
//!
//! `cargo bench --bench sync` — CRMSYNC_BENCH_RECORDS (default 1,000,000),
//! CRMSYNC_BENCH_CHANGES (default 100,000), CRMSYNC_BENCH_SAMPLES (default 200);
//! CRMSYNC_BENCH_STORE=postgres puts both instances on PostgreSQL (a database each, on a
//! throw-away cluster this bench starts, as the tests do).

use crmsync::app::App;
use crmsync::database::DatabaseUrl;
use crmsync_domain::instance::WriteOp;
use crmsync_domain::{Actor, Origin, Value};
use crmsync_store_conformance::postgres_cluster::TestCluster;
use serde_json::{Value as Json, json};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const PASSWORD: &str = "bench-admin-1";

struct Process {
    child: Child,
    url: String,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(data: &std::path::Path, database: &DatabaseUrl) -> Process {
    let database = match database {
        DatabaseUrl::Sqlite(_) => "sqlite".to_string(),
        DatabaseUrl::Postgres(url) => url.clone(),
    };
    let mut child = Command::new(env!("CARGO_BIN_EXE_crmsync"))
        .args(["serve", "--data"])
        .arg(data)
        .args(["--listen", "127.0.0.1:0", "--admin-password", PASSWORD])
        .args(["--database", &database])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start crmsync");
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let url = loop {
        let line = lines.next().expect("crmsync printed its address").unwrap();
        if let Some(url) = line.strip_prefix("listening on ") {
            break url.to_string();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    Process { child, url }
}

fn peak_rss_mib(process: &Process) -> f64 {
    let status =
        std::fs::read_to_string(format!("/proc/{}/status", process.child.id())).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

struct Api {
    http: reqwest::Client,
    url: String,
}

impl Api {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Json>) -> Json {
        let mut request = self
            .http
            .request(method, format!("{}/api/v1{path}", self.url))
            .basic_auth("admin", Some(PASSWORD));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request");
        let status = response.status();
        let json: Json = response.json().await.unwrap_or(Json::Null);
        assert!(status.is_success(), "{path}: {status} {json}");
        json
    }
    async fn get(&self, path: &str) -> Json {
        self.call(reqwest::Method::GET, path, None).await
    }
    async fn post(&self, path: &str, body: Json) -> Json {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }
    async fn patch(&self, path: &str, body: Json) -> Json {
        self.call(reqwest::Method::PATCH, path, Some(body)).await
    }
}

const FIELDS: [&str; 8] = [
    "Name", "Address", "Phone", "Email", "City", "Manager", "Comment", "Code",
];

fn value(i: u64, f: usize) -> String {
    match f {
        0 => format!("Client {i}"),
        1 => format!("{} Lenina st., apt {}", i % 500, i % 97),
        2 => format!("+7 900 {:07}", i % 10_000_000),
        3 => format!("client{i}@example.ru"),
        4 => ["Moscow", "Kazan", "Omsk", "Perm"][(i % 4) as usize].to_string(),
        5 => format!("manager {}", i % 20),
        6 => "regular".to_string(),
        _ => format!("C-{i:08}"),
    }
}

/// Fills the main instance's data directory directly (before its server starts).
fn seed(dir: &std::path::Path, database: &DatabaseUrl, records: u64) -> Vec<i64> {
    let app = App::open_with(
        dir,
        database,
        std::sync::Arc::new(crmsync_domain::SystemClock),
    )
    .unwrap();
    app.core.ensure_admin(Some(PASSWORD)).unwrap();
    let admin = app.core.users().unwrap().remove(0);
    let actor = Actor {
        user: admin,
        origin: Origin::Import,
    };
    let table = app.core.create_table(&actor, "Clients").unwrap();
    let fields: Vec<i64> = FIELDS
        .iter()
        .map(|n| {
            app.core
                .create_field(&actor, table.id, n, "text", Default::default())
                .unwrap()
                .no
        })
        .collect();
    let mut ops = (0..records).map(|i| {
        Ok(WriteOp::Create(
            fields
                .iter()
                .enumerate()
                .map(|(f, no)| (*no, Value::Text(value(i, f))))
                .collect(),
        ))
    });
    app.core.write_ops(&actor, table.id, &mut ops).unwrap();
    fields
}

/// Waits until `table` on that side holds `count` records (sync-created ids are dense).
async fn wait_for_records(api: &Api, table: i64, count: u64) {
    loop {
        let page = api
            .get(&format!(
                "/tables/{table}/records?status=all&sort=-id&limit=1"
            ))
            .await;
        if page["records"][0]["id"].as_u64().unwrap_or(0) >= count {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::main]
async fn main() {
    let setting = |name: &str, default: u64| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let records = setting("CRMSYNC_BENCH_RECORDS", 1_000_000);
    let changes = setting("CRMSYNC_BENCH_CHANGES", 100_000);
    let samples = setting("CRMSYNC_BENCH_SAMPLES", 200) as usize;
    let dir = tempfile::tempdir().unwrap();
    let (main_dir, aux_dir) = (dir.path().join("main"), dir.path().join("aux"));
    let (main_db, aux_db) = match std::env::var("CRMSYNC_BENCH_STORE").as_deref() {
        Ok("postgres") => {
            let cluster = TestCluster::shared();
            println!("both instances on PostgreSQL (port {})", cluster.port());
            (
                DatabaseUrl::Postgres(cluster.create_database()),
                DatabaseUrl::Postgres(cluster.create_database()),
            )
        }
        _ => (
            DatabaseUrl::Sqlite(main_dir.clone()),
            DatabaseUrl::Sqlite(aux_dir.clone()),
        ),
    };
    println!("seeding {records} records × 8 fields on the main instance…");
    let m = tokio::task::spawn_blocking({
        let main_dir = main_dir.clone();
        let main_db = main_db.clone();
        move || seed(&main_dir, &main_db, records)
    })
    .await
    .unwrap();
    let (main, aux) = (start(&main_dir, &main_db), start(&aux_dir, &aux_db));
    let http = reqwest::Client::new();
    let main_api = Api {
        http: http.clone(),
        url: main.url.clone(),
    };
    let aux_api = Api {
        http,
        url: aux.url.clone(),
    };
    let aux_table = aux_api.post("/tables", json!({ "name": "Clients" })).await["id"]
        .as_i64()
        .unwrap();
    let mut a = Vec::new();
    for name in FIELDS {
        a.push(
            aux_api
                .post(
                    &format!("/tables/{aux_table}/fields"),
                    json!({ "name": name, "type": "text" }),
                )
                .await["id"]
                .as_i64()
                .unwrap(),
        );
    }
    // CRMSYNC_BENCH_TRANSPORT: http (default), local (two folders) or ftp (an FTP server in
    // this process over a temporary folder).
    let transport = std::env::var("CRMSYNC_BENCH_TRANSPORT").unwrap_or_else(|_| "http".into());
    let folders = dir.path().join("exchange");
    let (passive, active) = match transport.as_str() {
        "local" => {
            let (a, b) = (folders.join("to-aux"), folders.join("to-main"));
            let passive = aux_api
                .post("/syncs", json!({ "name": "main", "mode": "passive", "transport": "local", "password": "bench-sync-1", "log": false, "period_seconds": 1, "local": { "upload_dir": b, "download_dir": a } }))
                .await;
            let active = main_api
                .post("/syncs", json!({ "name": "aux", "mode": "active", "transport": "local", "password": "bench-sync-1", "log": false, "period_seconds": 1, "local": { "upload_dir": a, "download_dir": b } }))
                .await;
            (passive, active)
        }
        "ftp" => {
            std::fs::create_dir_all(&folders).unwrap();
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let root = folders.clone();
            let server = libunftp::ServerBuilder::new(Box::new(move || {
                unftp_sbe_fs::Filesystem::new(root.clone()).unwrap()
            }))
            .passive_ports(52000..=52999)
            .build()
            .unwrap();
            tokio::spawn(async move { server.listen(format!("127.0.0.1:{port}")).await });
            tokio::time::sleep(Duration::from_millis(300)).await;
            let ftp = |upload: &str, download: &str| json!({ "host": "127.0.0.1", "port": port, "login": "bench", "password": "x", "upload_dir": upload, "download_dir": download });
            let passive = aux_api
                .post("/syncs", json!({ "name": "main", "mode": "passive", "transport": "ftp", "password": "bench-sync-1", "log": false, "period_seconds": 1, "ftp": ftp("/down", "/up") }))
                .await;
            let active = main_api
                .post("/syncs", json!({ "name": "aux", "mode": "active", "transport": "ftp", "password": "bench-sync-1", "log": false, "period_seconds": 1, "ftp": ftp("/up", "/down") }))
                .await;
            (passive, active)
        }
        _ => {
            let passive = aux_api
                .post("/syncs", json!({ "name": "main", "mode": "passive", "password": "bench-sync-1", "log": false }))
                .await;
            let active = main_api
                .post("/syncs", json!({ "name": "aux", "mode": "active", "remote_access": true, "remote_url": passive["endpoint_url"], "password": "bench-sync-1", "log": false, "period_seconds": 1 }))
                .await;
            (passive, active)
        }
    };
    println!("transport: {transport}");
    let (active_id, passive_id) = (
        active["id"].as_i64().unwrap(),
        passive["id"].as_i64().unwrap(),
    );
    // A file field on both sides, for part 4.
    let scan_field = |api: &Api, table: i64| {
        let api = Api {
            http: api.http.clone(),
            url: api.url.clone(),
        };
        async move {
            api.post(
                &format!("/tables/{table}/fields"),
                json!({ "name": "Scan", "type": "file" }),
            )
            .await["id"]
                .as_i64()
                .unwrap()
        }
    };
    let (main_scan, aux_scan) = (
        scan_field(&main_api, 1).await,
        scan_field(&aux_api, aux_table).await,
    );
    for i in 0..8 {
        main_api
            .post(
                &format!("/syncs/{active_id}/fields"),
                json!({ "field_no": m[i], "direction": "both" }),
            )
            .await;
        aux_api
            .post(
                &format!("/syncs/{passive_id}/fields"),
                json!({ "field_no": a[i], "direction": "both", "remote_field_no": m[i] }),
            )
            .await;
    }
    loop {
        if main_api.get(&format!("/syncs/{active_id}/status")).await["connected"] == true {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // 1. Initial sync.
    let started = Instant::now();
    let job = main_api
        .post(&format!("/syncs/{active_id}/initial"), json!({}))
        .await;
    let job_id = job["id"].as_i64().unwrap();
    loop {
        let job = main_api.get(&format!("/jobs/{job_id}")).await;
        assert_ne!(job["state"], "failed", "{job}");
        if job["state"] == "done" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    wait_for_records(&aux_api, aux_table, records).await;
    let initial_s = started.elapsed().as_secs_f64();
    println!(
        "initial sync : {records} records in {initial_s:.2} s = {:.0} records/s; peak RSS main {:.0} MiB, aux {:.0} MiB",
        records as f64 / initial_s,
        peak_rss_mib(&main),
        peak_rss_mib(&aux)
    );

    // 2. Sustained changes: a CSV import of `changes` new records on main, drained to aux.
    let mut csv = FIELDS.join(";");
    csv.push('\n');
    for i in 0..changes {
        let row: Vec<String> = (0..8).map(|f| value(records + i, f)).collect();
        csv.push_str(&row.join(";"));
        csv.push('\n');
    }
    let started = Instant::now();
    let response = main_api
        .http
        .post(format!("{}/api/v1/tables/1/import", main.url))
        .basic_auth("admin", Some(PASSWORD))
        .body(csv)
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success());
    let imported = Instant::now();
    wait_for_records(&aux_api, aux_table, records + changes).await;
    let drain_s = imported.elapsed().as_secs_f64();
    println!(
        "throughput   : {changes} changes drained {drain_s:.2} s after their commit ({:.2} s import) = {:.0} changes/s",
        (imported - started).as_secs_f64(),
        changes as f64 / drain_s
    );

    // 3. Latency, both ways: commit time on one side to commit time on the other, from
    // the two records' history (same machine clock).
    for (label, from, to, from_table, to_table, from_field, to_field) in [
        ("main → aux", &main_api, &aux_api, 1, aux_table, m[6], a[6]),
        ("aux → main", &aux_api, &main_api, aux_table, 1, a[6], m[6]),
    ] {
        let mut latencies = Vec::with_capacity(samples);
        for s in 0..samples {
            let from_id = 1 + (s as i64 % 1000);
            let record = from
                .get(&format!("/tables/{from_table}/records/{from_id}"))
                .await;
            let uid = record["uid"].as_str().unwrap().to_string();
            let text = format!("{label} {s}");
            from.patch(
                &format!("/tables/{from_table}/records/{from_id}"),
                json!({ "values": { from_field.to_string(): text } }),
            )
            .await;
            let copy = loop {
                let copy = to
                    .get(&format!("/tables/{to_table}/records/uid/{uid}"))
                    .await;
                if copy["values"][to_field.to_string()] == text.as_str() {
                    break copy;
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            };
            let sent = from
                .get(&format!("/tables/{from_table}/records/{from_id}/history"))
                .await;
            let got = to
                .get(&format!(
                    "/tables/{to_table}/records/{}/history",
                    copy["id"]
                ))
                .await;
            let at = |h: &Json| {
                let last = h["history"].as_array().unwrap().last().unwrap()["at"]
                    .as_str()
                    .unwrap()
                    .to_string();
                time::OffsetDateTime::parse(&last, &time::format_description::well_known::Rfc3339)
                    .unwrap()
                    .unix_timestamp_nanos() as f64
                    / 1e6
            };
            latencies.push(at(&got) - at(&sent));
        }
        latencies.sort_by(f64::total_cmp);
        println!(
            "latency      : {label}: p50 {:.0} ms, p99 {:.0} ms ({samples} changes, one at a time)",
            percentile(&latencies, 0.5),
            percentile(&latencies, 0.99)
        );
    }
    println!(
        "peak RSS     : main {:.0} MiB, aux {:.0} MiB",
        peak_rss_mib(&main),
        peak_rss_mib(&aux)
    );

    // 4. A big file: uploaded to main (streamed from disk), timed until aux stores it. The
    // file field joins the sync only now, so parts 1-3 measure the same 8 fields as before.
    main_api
        .post(
            &format!("/syncs/{active_id}/fields"),
            json!({ "field_no": main_scan, "direction": "both" }),
        )
        .await;
    aux_api
        .post(
            &format!("/syncs/{passive_id}/fields"),
            json!({ "field_no": aux_scan, "direction": "both", "remote_field_no": main_scan }),
        )
        .await;
    // 4. A big file: uploaded to main (streamed from disk), timed until aux stores it.
    let file_mb = setting("CRMSYNC_BENCH_FILE_MB", 1024);
    let path = dir.path().join("big.bin");
    let sha = tokio::task::spawn_blocking({
        let path = path.clone();
        move || write_content(&path, file_mb << 20)
    })
    .await
    .unwrap();
    let body = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::with_capacity(
        tokio::fs::File::open(&path).await.unwrap(),
        1 << 20,
    ));
    let response = main_api
        .http
        .put(format!(
            "{}/api/v1/tables/1/records/1/files/{main_scan}?name=big.bin",
            main.url
        ))
        .basic_auth("admin", Some(PASSWORD))
        .body(body)
        .send()
        .await
        .unwrap();
    assert!(
        response.status().is_success(),
        "{}",
        response.text().await.unwrap()
    );
    let uploaded = Instant::now();
    let uid = main_api.get("/tables/1/records/1").await["uid"]
        .as_str()
        .unwrap()
        .to_string();
    loop {
        let copy = aux_api
            .get(&format!("/tables/{aux_table}/records/uid/{uid}"))
            .await;
        if copy["values"][aux_scan.to_string()]["sha256"] == sha.as_str() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let file_s = uploaded.elapsed().as_secs_f64();
    println!(
        "file         : {file_mb} MiB main → aux in {file_s:.2} s = {:.0} MiB/s; peak RSS main {:.0} MiB, aux {:.0} MiB",
        file_mb as f64 / file_s,
        peak_rss_mib(&main),
        peak_rss_mib(&aux)
    );
}

/// Writes `len` bytes of incompressible-looking content; returns its SHA-256.
fn write_content(path: &std::path::Path, len: u64) -> String {
    use sha2::Digest;
    use std::io::Write;
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut hasher = sha2::Sha256::new();
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut block = vec![0u8; 1 << 20];
    let mut left = len;
    while left > 0 {
        for word in block.chunks_exact_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            word.copy_from_slice(&x.to_le_bytes());
        }
        let n = left.min(block.len() as u64) as usize;
        hasher.update(&block[..n]);
        out.write_all(&block[..n]).unwrap();
        left -= n as u64;
    }
    out.flush().unwrap();
    hex::encode(hasher.finalize())
}
