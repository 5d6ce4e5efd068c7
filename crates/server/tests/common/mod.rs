//! Test fixtures: real `crmsync` processes on ephemeral loopback ports with temporary data
//! directories. Dropping a fixture stops its process; the data directory goes with the
//! `TempDir` that owns it.

#![allow(dead_code)]

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub const ADMIN_PASSWORD: &str = "admin-secret-1";

pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_crmsync")
}

/// The database of the instance whose data folder is `data`, as `--database` takes it:
/// `CRMSYNC_TEST_STORE=postgres` runs every instance on PostgreSQL (a new database on the
/// test binary's own cluster, the same one each time that folder is started), `mixed`
/// runs some on each (by the folder's name, so `main` and `aux` differ), and anything
/// else keeps the embedded SQLite default.
pub fn database_for(data: &Path) -> Option<String> {
    use crmsync_store_conformance::postgres_cluster::TestCluster;
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    let on_postgres = match std::env::var("CRMSYNC_TEST_STORE").as_deref() {
        Ok("postgres") => true,
        Ok("mixed") => {
            let name = data.file_name().map(|n| n.as_encoded_bytes().to_vec());
            name.unwrap_or_default()
                .iter()
                .map(|b| u32::from(*b))
                .sum::<u32>()
                % 2
                == 1
        }
        _ => false,
    };
    if !on_postgres {
        return None;
    }
    static DATABASES: OnceLock<Mutex<HashMap<PathBuf, String>>> = OnceLock::new();
    let mut databases = DATABASES.get_or_init(Default::default).lock().unwrap();
    let url = databases
        .entry(data.to_path_buf())
        .or_insert_with(|| TestCluster::shared().create_database());
    Some(url.clone())
}

pub struct Server {
    child: Child,
    pub url: String,
    pub data: PathBuf,
    /// Lines the server printed to stdout before it listened.
    pub banner: Vec<String>,
    client: reqwest::Client,
    login: String,
    password: String,
}

impl Server {
    /// Starts an instance on `data` (created if missing) with the test admin password.
    pub fn start(data: &Path) -> Server {
        Server::start_with(data, &["--admin-password", ADMIN_PASSWORD], &[])
    }

    pub fn start_with(data: &Path, args: &[&str], env: &[(&str, &str)]) -> Server {
        Server::start_listening(data, "127.0.0.1:0", args, env)
    }

    /// Starts serving HTTPS with `cert`/`key`; the fixture's client trusts `cert`.
    pub fn start_https(data: &Path, cert: &Path, key: &Path, args: &[&str]) -> Server {
        let mut all = vec![
            "--admin-password",
            ADMIN_PASSWORD,
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ];
        all.extend_from_slice(args);
        let mut server = Server::start_with(data, &all, &[]);
        let pem = std::fs::read(cert).expect("certificate");
        server.client = http_client()
            .add_root_certificate(reqwest::Certificate::from_pem(&pem).expect("PEM"))
            .build()
            .unwrap();
        server
    }

    /// Starts as if this machine's clock were `offset_ms` off (ahead when positive).
    pub fn start_with_clock_offset(data: &Path, offset_ms: i64) -> Server {
        let offset = offset_ms.to_string();
        Server::start_with(
            data,
            &[
                "--admin-password",
                ADMIN_PASSWORD,
                "--clock-offset-ms",
                &offset,
            ],
            &[],
        )
    }

    fn start_listening(data: &Path, listen: &str, args: &[&str], env: &[(&str, &str)]) -> Server {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(data.with_extension("log"))
            .expect("server log file");
        let mut command = Command::new(binary());
        command
            .args(["serve", "--data"])
            .arg(data)
            .args(["--listen", listen])
            .args(args)
            .env_remove("CRMSYNC_ADMIN_PASSWORD")
            .env_remove("CRMSYNC_DATABASE")
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log));
        if let Some(database) = database_for(data).filter(|_| !args.contains(&"--database")) {
            command.env("CRMSYNC_DATABASE", database);
        }
        for (k, v) in env {
            command.env(k, v);
        }
        let mut child = command.spawn().expect("start crmsync");
        let stdout = child.stdout.take().expect("stdout");
        let (sender, receiver) = mpsc::channel();
        std::thread::spawn(move || {
            let mut banner = Vec::new();
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(url) = line.strip_prefix("listening on ") {
                    let _ = sender.send((url.to_string(), banner.clone()));
                }
                banner.push(line);
            }
        });
        let (url, banner) = match receiver.recv_timeout(Duration::from_secs(60)) {
            Ok(found) => found,
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "crmsync did not start; its log:\n{}",
                    std::fs::read_to_string(data.with_extension("log")).unwrap_or_default()
                );
            }
        };
        Server {
            child,
            url,
            data: data.to_path_buf(),
            banner,
            client: http_client().build().unwrap(),
            login: "admin".into(),
            password: ADMIN_PASSWORD.into(),
        }
    }

    /// A browser signed in to the web UI as the admin: the client and its session cookie.
    async fn web_session(&self) -> (reqwest::Client, String) {
        let http = http_client()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let signed_in = web_sign_in(&http, &self.url, "admin", ADMIN_PASSWORD, "/tables").await;
        let session = session_cookie(&signed_in).expect("signed in");
        (http, session)
    }

    /// Sends a form of the web UI as the admin would from `page`: with that page's token.
    /// Returns the status and where it leads.
    pub async fn web_form(
        &self,
        page: &str,
        action: &str,
        fields: &[(&str, &str)],
    ) -> (reqwest::StatusCode, String) {
        let (http, session) = self.web_session().await;
        let html = http
            .get(format!("{}{page}", self.url))
            .header("cookie", &session)
            .send()
            .await
            .expect("page requested")
            .text()
            .await
            .expect("page body");
        let marker = r#"name="_csrf" value=""#;
        let start = html.find(marker).expect("a form token") + marker.len();
        let token = &html[start..start + html[start..].find('"').unwrap()];
        let mut form = vec![("_csrf", token)];
        form.extend_from_slice(fields);
        let response = http
            .post(format!("{}{action}", self.url))
            .header("cookie", &session)
            .form(&form)
            .send()
            .await
            .expect("form sent");
        let location = response
            .headers()
            .get("location")
            .map(|l| l.to_str().unwrap().to_string())
            .unwrap_or_default();
        (response.status(), location)
    }

    /// A page of the web UI as the admin sees it in a browser asking for `language`.
    pub async fn web_page(&self, path: &str, language: &str) -> String {
        let (http, session) = self.web_session().await;
        http.get(format!("{}{path}", self.url))
            .header("cookie", session)
            .header("accept-language", language)
            .send()
            .await
            .expect("page requested")
            .text()
            .await
            .expect("page body")
    }

    /// The same server, acting as another user.
    pub fn as_user(&self, login: &str, password: &str) -> Client {
        Client {
            http: self.client.clone(),
            url: self.url.clone(),
            login: login.into(),
            password: password.into(),
        }
    }

    pub fn admin(&self) -> Client {
        self.as_user(&self.login, &self.password)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// HOST:PORT this server listens on.
    pub fn address(&self) -> String {
        self.url.trim_start_matches("http://").to_string()
    }

    /// Stops the process (SIGKILL: nothing may depend on a clean shutdown).
    /// Stops the process as a service manager does (SIGTERM) and returns its exit status.
    pub fn stop(mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no exit after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn kill(mut self) -> PathBuf {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.data.clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A client that drops a kept-alive connection before the server does (it closes one idle
/// for `HEADER_READ_TIMEOUT`, 10 s): an upload sent on a connection the server has just
/// closed fails with a broken pipe, and a PUT is not retried (seen on a loaded machine).
pub fn http_client() -> reqwest::ClientBuilder {
    reqwest::Client::builder().pool_idle_timeout(std::time::Duration::from_secs(4))
}

/// An authenticated API client.
#[derive(Clone)]
pub struct Client {
    pub http: reqwest::Client,
    pub url: String,
    login: String,
    password: String,
}

impl Client {
    /// A request to `/api/v1{path}` signed in as this client, for raw bodies and streams.
    pub fn raw(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}/api/v1{path}", self.url))
            .basic_auth(&self.login, Some(&self.password))
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self
            .http
            .request(method, format!("{}/api/v1{path}", self.url))
            .basic_auth(&self.login, Some(&self.password));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request sent");
        let status = response.status();
        let text = response.text().await.expect("response body");
        let json = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"))
        };
        (status, json)
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, Some(body)).await
    }

    pub async fn patch(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::PATCH, path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> (StatusCode, Value) {
        self.call(Method::DELETE, path, None).await
    }

    /// Uploads `bytes` as a file field's content; returns the record.
    pub async fn upload_file(
        &self,
        table: i64,
        id: i64,
        field: i64,
        name: &str,
        bytes: Vec<u8>,
    ) -> Value {
        let response = self
            .raw(
                Method::PUT,
                &format!("/tables/{table}/records/{id}/files/{field}?name={name}"),
            )
            .body(bytes)
            .send()
            .await
            .expect("upload sent");
        let status = response.status();
        let body: Value = response.json().await.expect("JSON answer");
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    /// Downloads a file field's content, streaming; returns its length and SHA-256.
    pub async fn file_checksum(&self, table: i64, id: i64, field: i64) -> (u64, String) {
        use sha2::Digest;
        let mut response = self
            .raw(
                Method::GET,
                &format!("/tables/{table}/records/{id}/files/{field}"),
            )
            .send()
            .await
            .expect("download sent");
        assert_eq!(response.status(), StatusCode::OK);
        let mut hasher = sha2::Sha256::new();
        let mut length = 0u64;
        while let Some(chunk) = response.chunk().await.expect("download body") {
            length += chunk.len() as u64;
            hasher.update(&chunk);
        }
        (length, hex::encode(hasher.finalize()))
    }

    /// Asserts success and returns the body.
    pub async fn ok(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        let (status, json) = self.call(method.clone(), path, body).await;
        assert!(status.is_success(), "{method} {path} -> {status}: {json}");
        json
    }

    pub async fn create_table(&self, name: &str) -> i64 {
        self.ok(Method::POST, "/tables", Some(json!({ "name": name })))
            .await["id"]
            .as_i64()
            .unwrap()
    }

    pub async fn create_field(
        &self,
        table: i64,
        name: &str,
        field_type: &str,
        options: Value,
    ) -> i64 {
        self.ok(
            Method::POST,
            &format!("/tables/{table}/fields"),
            Some(json!({ "name": name, "type": field_type, "options": options })),
        )
        .await["id"]
            .as_i64()
            .unwrap()
    }

    pub async fn create_record(&self, table: i64, values: Value) -> Value {
        self.ok(
            Method::POST,
            &format!("/tables/{table}/records"),
            Some(json!({ "values": values })),
        )
        .await
    }

    /// Every record id of a table with the given status filter, following pages.
    pub async fn all_ids(&self, table: i64, status: &str) -> Vec<i64> {
        let mut ids = Vec::new();
        let mut after = String::new();
        loop {
            let page = self
                .ok(
                    Method::GET,
                    &format!("/tables/{table}/records?status={status}&limit=1000{after}"),
                    None,
                )
                .await;
            ids.extend(
                page["records"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|r| r["id"].as_i64().unwrap()),
            );
            match page["next_after"].as_i64() {
                Some(next) => after = format!("&after={next}"),
                None => return ids,
            }
        }
    }
}

/// Behind the instance's back: one SQL statement (no parameters; SQL both stores read
/// alike) run straight on the database of the instance in `data`, as someone with a
/// database tool would. Returns the rows it changed.
pub fn edit_database(data: &Path, sql: &str) -> u64 {
    match database_for(data) {
        None => {
            let conn = rusqlite::Connection::open(data.join("crmsync.db")).unwrap();
            conn.busy_timeout(Duration::from_secs(5)).unwrap();
            conn.execute(sql, []).unwrap() as u64
        }
        Some(url) => {
            let output = crmsync_store_conformance::postgres_cluster::TestCluster::shared()
                .client("psql")
                .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", &url, "-c"])
                .arg(format!(
                    "WITH done AS ({sql} RETURNING 1) SELECT count(*) FROM done"
                ))
                .args(["-t", "-A"])
                .output()
                .expect("run psql");
            let out = String::from_utf8_lossy(&output.stdout);
            assert!(
                output.status.success(),
                "{sql}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
            out.trim().parse().expect("a row count")
        }
    }
}

/// Runs the CLI and returns (success, stdout, stderr).
pub fn cli(args: &[&str]) -> (bool, String, String) {
    let mut command = Command::new(binary());
    command
        .args(args)
        .env_remove("CRMSYNC_ADMIN_PASSWORD")
        .env_remove("CRMSYNC_DATABASE");
    // The instance's database, as it was started (see `database_for`).
    let data = args
        .iter()
        .position(|a| *a == "--data")
        .and_then(|i| args.get(i + 1));
    if let Some(database) = data.and_then(|d| database_for(Path::new(d))) {
        command.env("CRMSYNC_DATABASE", database);
    }
    let output = command.output().expect("run crmsync");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// A self-signed certificate for 127.0.0.1 and localhost, made with openssl (installed
/// by scripts/test-prerequisites.sh): (certificate, key) PEM files in `dir`.
pub fn self_signed_certificate(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    self_signed_certificate_for(dir, name, "IP:127.0.0.1,DNS:localhost")
}

/// The same, valid only for `alt_names` (openssl's subjectAltName list).
pub fn self_signed_certificate_for(dir: &Path, name: &str, alt_names: &str) -> (PathBuf, PathBuf) {
    let (cert, key) = (
        dir.join(format!("{name}.crt")),
        dir.join(format!("{name}.key")),
    );
    let output = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ])
        .args(["-nodes", "-days", "2", "-subj", &format!("/CN={name}")])
        .args(["-addext", &format!("subjectAltName={alt_names}")])
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl runs (scripts/test-prerequisites.sh installs it)");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    (cert, key)
}

/// Deterministic, incompressible-looking content of `len` bytes.
pub fn content(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Peak resident memory of a process in KiB (VmHWM), from /proc.
pub fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM line")
}

/// Polls `check` until it returns Some, or panics after `seconds` with `what`.
pub async fn eventually<T, F, Fut>(seconds: u64, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = std::time::Instant::now() + Duration::from_secs(seconds);
    loop {
        if let Some(found) = check().await {
            return found;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until this machine's clock shows a later millisecond than now: a write made after
/// this returns carries a later stamp than every write made before it (newer write wins),
/// whichever instance on this machine makes it.
pub async fn clock_moves_on() {
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis()
    };
    let start = now();
    eventually(5, "the clock to move on", || async {
        (now() > start).then_some(())
    })
    .await;
}

/// Clients (Name, `count` of them imported from CSV as "Client 0001"…, then "Zebra
/// Trading") and Orders (Status, a choice; Client, a link) with one order linked to the
/// last imported client: a link far beyond any first page of clients.
pub struct Orders {
    pub clients: i64,
    pub orders: i64,
    pub status: i64,
    pub client: i64,
    pub order: i64,
    pub far_client: i64,
    pub zebra: i64,
}

pub async fn orders_of_many_clients(api: &Client, count: usize) -> Orders {
    let clients = api.create_table("Clients").await;
    let name = api.create_field(clients, "Name", "text", json!({})).await;
    let mut csv = String::from("Name\n");
    for i in 1..=count {
        csv.push_str(&format!("Client {i:04}\n"));
    }
    let imported: Value = api
        .raw(Method::POST, &format!("/tables/{clients}/import"))
        .body(csv)
        .send()
        .await
        .expect("import sent")
        .json()
        .await
        .expect("import answer");
    assert_eq!(imported["imported"], count, "{imported}");
    let id_of = |page: Value| page["records"][0]["id"].as_i64().expect("a client");
    let far_client = id_of(
        api.ok(
            Method::GET,
            &format!("/tables/{clients}/records?q=Client%20{count:04}"),
            None,
        )
        .await,
    );
    let zebra = api
        .create_record(clients, json!({ name.to_string(): "Zebra Trading" }))
        .await["id"]
        .as_i64()
        .unwrap();
    let orders = api.create_table("Orders").await;
    let status = api
        .create_field(
            orders,
            "Status",
            "select",
            json!({ "choices": ["New", "Paid", "Shipped"] }),
        )
        .await;
    let client = api
        .create_field(orders, "Client", "link", json!({ "table_id": clients }))
        .await;
    let order = api
        .create_record(
            orders,
            json!({ status.to_string(): "New", client.to_string(): far_client }),
        )
        .await["id"]
        .as_i64()
        .unwrap();
    Orders {
        clients,
        orders,
        status,
        client,
        order,
        far_client,
        zebra,
    }
}

/// Signs in through the web UI's form as a browser does: the form's page first (its token
/// and cookie), then the form. Returns the answer to the form.
pub async fn web_sign_in(
    http: &reqwest::Client,
    url: &str,
    login: &str,
    password: &str,
    next: &str,
) -> reqwest::Response {
    let form_page = http
        .get(format!("{url}/login"))
        .send()
        .await
        .expect("sign-in page requested");
    let cookie = form_page.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let html = form_page.text().await.expect("sign-in page");
    let marker = r#"name="_csrf" value=""#;
    let start = html.find(marker).expect("a form token") + marker.len();
    let token = &html[start..start + html[start..].find('"').unwrap()];
    http.post(format!("{url}/login"))
        .header("cookie", cookie)
        .form(&[
            ("_csrf", token),
            ("login", login),
            ("password", password),
            ("next", next),
        ])
        .send()
        .await
        .expect("sign-in sent")
}

/// The session cookie ("name=value") a sign-in set, if it set one.
pub fn session_cookie(response: &reqwest::Response) -> Option<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|c| c.to_str().ok())
        .find(|c| c.starts_with("crmsync_session=") && !c.contains("Max-Age=0"))
        .map(|c| c.split(';').next().unwrap().to_string())
}
