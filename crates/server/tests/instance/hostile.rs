//! Password guessing tried as an attacker would (issue 14, item 2): every attempt is charged
//! before its password is hashed, case variants and other logins share allowances, and an
//! unknown login costs what a known one does.

use crate::common::{Server, peak_rss_kib};
use reqwest::StatusCode;
use std::time::Instant;

/// Creates a user account (role `user`); returns it as the API shows it.
async fn create_user(
    admin: &crate::common::Client,
    login: &str,
    password: &str,
) -> serde_json::Value {
    let (status, user) = admin
        .post(
            "/users",
            serde_json::json!({ "login": login, "full_name": login, "password": password, "role": "user" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{user}");
    user
}

#[tokio::test]
async fn a_hundred_guesses_at_once_are_mostly_refused_unhashed_in_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    assert_eq!(server.admin().get("/me").await.0, StatusCode::OK);
    let before = peak_rss_kib(server.pid());
    // One after another, for logins that do not exist: each is hashed, none piles up.
    for n in 0..12 {
        let guesser = server.as_user(&format!("nobody{n}"), &format!("guess-{n}"));
        assert_ne!(guesser.get("/me").await.0, StatusCode::OK);
    }
    let started = std::time::Instant::now();
    let mut guesses = Vec::new();
    for n in 0..100 {
        let guesser = server.as_user("admin", &format!("guess-{n}"));
        guesses.push(tokio::spawn(async move { guesser.get("/me").await.0 }));
    }
    let mut statuses = Vec::new();
    for guess in guesses {
        statuses.push(guess.await.unwrap());
    }
    let checked = statuses
        .iter()
        .filter(|s| **s == StatusCode::UNAUTHORIZED)
        .count();
    let refused = statuses
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    // Five guesses of one login from one address are free; then it waits 2 s, 4 s, 8 s…
    // between guesses. A burst slowed past a pause (a loaded machine) lets one more through
    // for each pause it outlasted — still a handful of the hundred.
    let took = started.elapsed();
    let (mut outlasted, mut pause, mut waited) = (0, 2, 2);
    while waited <= took.as_secs() {
        outlasted += 1;
        pause *= 2;
        waited += pause;
    }
    assert!(
        checked <= 5 + outlasted && checked + refused == 100,
        "{checked} hashed in {took:?}: {statuses:?}"
    );
    let grew = peak_rss_kib(server.pid()).saturating_sub(before) >> 10;
    assert!(grew < 50, "peak memory grew by {grew} MiB");
    // A case variant of the login is the same login.
    let (status, _) = server.as_user("ADMIN", "guess-x").get("/me").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn spraying_one_password_over_many_logins_is_slowed_and_logins_cannot_be_told_apart() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let admin = server.admin();
    create_user(&admin, "olga", "olga-pass-1").await;
    // The time of a wrong answer for a login that exists and for one that does not.
    let timed = |login: &'static str| {
        let client = server.as_user(login, "Winter2026!");
        async move {
            let started = Instant::now();
            let (status, _) = client.get("/me").await;
            assert_eq!(status, StatusCode::UNAUTHORIZED);
            started.elapsed()
        }
    };
    let known = timed("olga").await;
    let unknown = timed("nobody-here").await;
    assert!(
        unknown * 3 >= known,
        "an unknown login answers in {unknown:?}, a known one in {known:?}"
    );
    // One password tried over many logins from one address: slowed after twenty.
    let mut statuses = Vec::new();
    for n in 0..30 {
        let (status, _) = server
            .as_user(&format!("user{n}"), "Winter2026!")
            .get("/me")
            .await;
        statuses.push(status);
    }
    assert!(
        statuses.contains(&StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );
}

#[tokio::test]
async fn pages_cannot_be_framed_sign_in_leads_only_within_the_site_and_exports_run_no_formulas() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let api = server.admin();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    for path in ["/login", "/api/v1/health"] {
        let response = http
            .get(format!("{}{path}", server.url))
            .send()
            .await
            .unwrap();
        let headers = response.headers();
        assert_eq!(headers["x-frame-options"], "DENY", "{path}");
        assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(headers["referrer-policy"], "same-origin", "{path}");
        let policy = headers["content-security-policy"].to_str().unwrap();
        assert!(policy.contains("frame-ancestors 'none'"), "{policy}");
    }
    // After signing in, a crafted `next` never leads off the site.
    for next in ["/\t/evil.example", "//evil.example", "/\\evil.example"] {
        let response = crate::common::web_sign_in(
            &http,
            &server.url,
            "admin",
            crate::common::ADMIN_PASSWORD,
            next,
        )
        .await;
        assert_eq!(response.headers()["location"], "/tables", "{next:?}");
    }
    // A typed formula is exported as text unless asked to keep it.
    let table = api.create_table("Leads").await;
    let name = api
        .create_field(table, "Name", "text", serde_json::json!({}))
        .await;
    let amount = api
        .create_field(table, "Amount", "money", serde_json::json!({}))
        .await;
    let formula = r#"=HYPERLINK("http://evil.example","Click")"#;
    api.create_record(
        table,
        serde_json::json!({ name.to_string(): formula, amount.to_string(): "-15.50" }),
    )
    .await;
    let export = |query: &'static str| {
        let api = api.clone();
        async move {
            api.raw(
                reqwest::Method::GET,
                &format!("/tables/{table}/export{query}"),
            )
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
        }
    };
    let safe = export("").await;
    assert!(safe.contains(r#""'=HYPERLINK"#), "{safe}");
    assert!(safe.contains(",-15.50"), "numbers stay numbers: {safe}");
    let kept = export("?formulas=keep").await;
    assert!(kept.contains(r#""=HYPERLINK"#), "{kept}");
}

#[tokio::test]
async fn a_user_account_sees_a_syncs_status_but_not_its_settings_and_starts_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let admin = server.admin();
    create_user(&admin, "olga", "olga-pass-1").await;
    let (_, sync) = admin
        .post(
            "/syncs",
            serde_json::json!({ "name": "hosting", "mode": "active", "transport": "ftp",
                "password": "123456", "ftp": { "host": "ftp.example.com", "login": "shop",
                "password": "ftp-secret", "upload_dir": "/up", "download_dir": "/down" } }),
        )
        .await;
    let id = sync["id"].as_i64().unwrap();
    let olga = server.as_user("olga", "olga-pass-1");
    let (status, seen) = olga.get(&format!("/syncs/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(seen["name"], "hosting");
    let text = seen.to_string();
    assert!(
        !text.contains("ftp.example.com") && !text.contains("shop"),
        "{text}"
    );
    let (_, listed) = olga.get("/syncs").await;
    assert!(!listed.to_string().contains("ftp.example.com"), "{listed}");
    assert_eq!(
        olga.get(&format!("/syncs/{id}/status")).await.0,
        StatusCode::OK
    );
    for (method, path, body) in [
        (
            "POST",
            format!("/syncs/{id}/initial"),
            serde_json::json!({}),
        ),
        ("GET", format!("/syncs/{id}/drift"), serde_json::Value::Null),
        (
            "POST",
            format!("/syncs/{id}/match"),
            serde_json::json!({ "field_no": 1 }),
        ),
        (
            "GET",
            format!("/syncs/{id}/writer-keys"),
            serde_json::Value::Null,
        ),
    ] {
        let status = match method {
            "GET" => olga.get(&path).await.0,
            _ => olga.post(&path, body).await.0,
        };
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path}");
    }
    // The same in the web UI: the sync's page shows its status, no host, login or folder,
    // and no button that starts anything; its admin pages and actions are refused.
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let signed_in =
        crate::common::web_sign_in(&http, &server.url, "olga", "olga-pass-1", "/").await;
    let session = crate::common::session_cookie(&signed_in).expect("signed in");
    let page = |path: String| {
        let (http, url, session) = (http.clone(), server.url.clone(), session.clone());
        async move {
            let response = http
                .get(format!("{url}{path}"))
                .header("cookie", session)
                .send()
                .await
                .unwrap();
            (response.status(), response.text().await.unwrap())
        }
    };
    let (status, html) = page(format!("/syncs/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("id=\"sync-status\""), "{html}");
    for secret in [
        "ftp.example.com",
        "shop",
        "/up",
        "/down",
        "/edit",
        "initial-sync",
        "/drift",
        "/match",
    ] {
        assert!(!html.contains(secret), "{secret} shown to a user: {html}");
    }
    // Its reason says why it is red without naming the host (the admin's does).
    assert!(html.contains("cannot reach the FTP server"), "{html}");
    let (_, status) = olga.get(&format!("/syncs/{id}/status")).await;
    let (_, status_for_admin) = admin.get(&format!("/syncs/{id}/status")).await;
    assert!(!status.to_string().contains("ftp.example.com"), "{status}");
    assert!(
        status_for_admin["reason"]
            .to_string()
            .contains("ftp.example.com"),
        "{status_for_admin}"
    );
    let token = {
        let marker = r#"name="_csrf" value=""#;
        let at = html.find(marker).expect("the sign-out form's token") + marker.len();
        html[at..at + 64].to_string()
    };
    for path in ["edit", "drift", "match"] {
        let (status, _) = page(format!("/syncs/{id}/{path}")).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}");
    }
    for path in ["initial", "delete", "drift/repair"] {
        let response = http
            .post(format!("{}/syncs/{id}/{path}", server.url))
            .header("cookie", &session)
            .form(&[("_csrf", token.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{path}");
    }
    assert_eq!(admin.get(&format!("/syncs/{id}")).await.0, StatusCode::OK);
}

#[tokio::test]
async fn temporary_files_of_an_upload_cut_short_are_removed_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data);
    let data = server.kill();
    // What a kill -9 in the middle of an upload leaves.
    let leftover = data.join("files").join("tmp").join(".tmpA1b2C3");
    std::fs::write(&leftover, vec![7u8; 1 << 20]).unwrap();
    let server = Server::start(&data);
    assert_eq!(server.admin().get("/me").await.0, StatusCode::OK);
    assert!(!leftover.exists(), "the leftover is removed");
}

#[tokio::test]
async fn idle_connections_are_closed_and_the_api_answers_meanwhile() {
    use tokio::io::AsyncReadExt;
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let address = server.url.trim_start_matches("http://").to_string();
    // Hundreds of connections that send nothing.
    let mut idle = Vec::new();
    for _ in 0..300 {
        idle.push(tokio::net::TcpStream::connect(&address).await.unwrap());
    }
    let started = Instant::now();
    assert_eq!(server.admin().get("/me").await.0, StatusCode::OK);
    assert!(started.elapsed().as_secs() < 5, "the API kept answering");
    // Each is closed by the server once the time for a request's head is up.
    let mut first = idle.pop().unwrap();
    let mut byte = [0u8; 1];
    let read = tokio::time::timeout(std::time::Duration::from_secs(30), first.read(&mut byte))
        .await
        .expect("the server closes an idle connection");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
}

#[tokio::test]
async fn a_web_session_outlives_a_restart_and_ends_when_its_password_or_role_changes_or_its_user_is_removed()
 {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data);
    let admin = server.admin();
    let olga = create_user(&admin, "olga", "olga-pass-1").await;
    let ivan = create_user(&admin, "ivan", "ivan-pass-1").await;
    let petr = create_user(&admin, "petr", "petr-pass-1").await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let sign_in = |url: String, login: &'static str, password: &'static str| {
        let http = http.clone();
        async move {
            let response = crate::common::web_sign_in(&http, &url, login, password, "/").await;
            crate::common::session_cookie(&response).expect("signed in")
        }
    };
    let page = |url: String, cookie: String| {
        let http = http.clone();
        async move {
            http.get(format!("{url}/tables"))
                .header("cookie", cookie)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    // A sign-in form that did not come from the sign-in page (no token, or another
    // browser's) signs nobody in and checks no password.
    let forged = http
        .post(format!("{}/login", server.url))
        .form(&[("login", "olga"), ("password", "olga-pass-1")])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    assert_eq!(crate::common::session_cookie(&forged), None);
    let foreign = http
        .post(format!("{}/login", server.url))
        .header("cookie", format!("crmsync_sign_in={}", "a".repeat(64)))
        .form(&[
            ("_csrf", "b".repeat(64).as_str()),
            ("login", "olga"),
            ("password", "olga-pass-1"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(foreign.status(), StatusCode::FORBIDDEN);
    assert_eq!(crate::common::session_cookie(&foreign), None);

    let olga_session = sign_in(server.url.clone(), "olga", "olga-pass-1").await;
    let ivan_session = sign_in(server.url.clone(), "ivan", "ivan-pass-1").await;
    let petr_session = sign_in(server.url.clone(), "petr", "petr-pass-1").await;
    for session in [&olga_session, &ivan_session, &petr_session] {
        assert_eq!(
            page(server.url.clone(), session.clone()).await,
            StatusCode::OK
        );
    }
    // A restart signs nobody out; the database holds no usable token.
    drop(admin);
    server.kill();
    let mut database = std::fs::read(data.join("crmsync.db")).unwrap();
    database.extend(std::fs::read(data.join("crmsync.db-wal")).unwrap_or_default());
    let token = olga_session.split_once('=').unwrap().1;
    assert!(
        !database.windows(token.len()).any(|w| w == token.as_bytes()),
        "a session token is stored as it is"
    );
    let server = Server::start(&data);
    let admin = server.admin();
    let url = server.url.clone();
    for session in [&olga_session, &ivan_session, &petr_session] {
        assert_eq!(page(url.clone(), session.clone()).await, StatusCode::OK);
    }
    // A new password: the old sign-in ends.
    let (status, _) = admin
        .patch(
            &format!("/users/{}", olga["id"]),
            serde_json::json!({ "password": "olga-pass-2" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page(url.clone(), olga_session).await, StatusCode::SEE_OTHER);
    let olga_again = sign_in(url.clone(), "olga", "olga-pass-2").await;
    assert_eq!(page(url.clone(), olga_again).await, StatusCode::OK);
    // Another role: signed out, to sign in again with it.
    let (status, _) = admin
        .patch(
            &format!("/users/{}", petr["id"]),
            serde_json::json!({ "role": "admin" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page(url.clone(), petr_session).await, StatusCode::SEE_OTHER);
    // Removed: signed out.
    let (status, _) = admin.delete(&format!("/users/{}", ivan["id"])).await;
    assert!(status.is_success(), "{status}");
    assert_eq!(page(url.clone(), ivan_session).await, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn the_server_log_holds_no_escape_codes_and_a_login_cannot_forge_a_line() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let (status, _) = server
        .as_user("evil\nFORGED admin signed in", "guess-1")
        .get("/me")
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let log = crate::common::eventually(10, "the refusal in the server log", || async {
        let log = std::fs::read_to_string(server.data.with_extension("log")).unwrap_or_default();
        log.contains("wrong password").then_some(log)
    })
    .await;
    assert!(!log.contains('\u{1b}'), "{log:?}");
    assert!(!log.lines().any(|line| line.starts_with("FORGED")), "{log}");
    // One access line per request answered: method, path, address, status.
    assert!(
        log.lines().any(|line| line.contains("method=GET")
            && line.contains("path=/api/v1/me")
            && line.contains("peer=127.0.0.1")
            && line.contains("status=401")),
        "{log}"
    );
}

#[tokio::test]
async fn with_log_format_json_every_line_of_the_server_log_is_a_json_object() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(
        &dir.path().join("data"),
        &[
            "--admin-password",
            crate::common::ADMIN_PASSWORD,
            "--log-format",
            "json",
        ],
        &[],
    );
    let (status, _) = server
        .as_user("evil\nFORGED", "guess-1")
        .get("/tables?search=secret")
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(server.admin().get("/me").await.0, StatusCode::OK);
    let lines: Vec<serde_json::Value> =
        crate::common::eventually(10, "both requests in the access log", || async {
            let log =
                std::fs::read_to_string(server.data.with_extension("log")).unwrap_or_default();
            let lines: Vec<serde_json::Value> = log
                .lines()
                .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line:?}")))
                .collect();
            let answered = lines
                .iter()
                .filter(|l| l["fields"]["message"] == "answered")
                .count();
            (answered >= 2).then_some(lines)
        })
        .await;
    let access: Vec<(&str, u64)> = lines
        .iter()
        .filter(|l| l["fields"]["message"] == "answered")
        .map(|l| {
            (
                l["span"]["path"].as_str().unwrap(),
                l["fields"]["status"].as_u64().unwrap(),
            )
        })
        .collect();
    assert!(access.contains(&("/api/v1/tables", 401)), "{access:?}");
    assert!(access.contains(&("/api/v1/me", 200)), "{access:?}");
    let text = serde_json::to_string(&lines).unwrap();
    assert!(!text.contains("secret"), "a query in the log: {text}");
}

#[tokio::test]
async fn a_csv_import_reads_in_bounded_memory_whatever_the_file_holds() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let api = server.admin();
    let table = api.create_table("Leads").await;
    api.create_field(table, "Name", "text", serde_json::json!({}))
        .await;
    api.create_field(table, "Notes", "longtext", serde_json::json!({}))
        .await;
    let import = |body: Vec<u8>| {
        let api = api.clone();
        async move {
            let response = api
                .raw(reqwest::Method::POST, &format!("/tables/{table}/import"))
                .header("content-type", "text/csv")
                .body(body)
                .send()
                .await
                .unwrap();
            (
                response.status(),
                response.json::<serde_json::Value>().await.unwrap(),
            )
        }
    };
    // Many rows, one with a cell over several lines: imported, each once.
    let rows = 20_000;
    let mut many = String::from("Name;Notes\n");
    for n in 0..rows {
        match n {
            7 => many.push_str("Lead 7;\"first line\nsecond line\"\n"),
            _ => many.push_str(&format!("Lead {n};note {n}\n")),
        }
    }
    let (status, report) = import(many.into_bytes()).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["imported"], rows, "{report}");
    assert_eq!(report["delimiter"], ";", "{report}");
    let before = peak_rss_kib(server.pid());

    // 200 MiB in one cell whose quote never closes: refused at the row, nothing written,
    // and the server never holds the file.
    let mut endless = b"Name;Notes\nLead;\"".to_vec();
    endless.resize(200 << 20, b'x');
    let (status, report) = import(endless).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{report}");
    assert!(
        report.to_string().contains("a row is longer than 8 MiB"),
        "{report}"
    );
    // 200 MiB of rows, every one with a cell too many: each is read and refused in turn
    // (the first thousand reported, with their lines), none held.
    let mut long = String::from("Name,Notes\n");
    while long.len() < (200 << 20) {
        long.push_str("Lead,a note of some length to fill the file with rows,one too many\n");
    }
    let (status, report) = import(long.into_bytes()).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{report}");
    let errors = report["rows"].as_array().expect("the rows refused");
    assert_eq!(errors.len(), 1000, "{report}");
    assert_eq!(errors[1]["line"], 3, "{report}");
    let grew = peak_rss_kib(server.pid()).saturating_sub(before) >> 10;
    assert!(grew < 50, "peak memory grew by {grew} MiB");
    // Nothing of the refused files was written: the records are the first file's.
    let (_, past) = api
        .get(&format!("/tables/{table}/records?after={rows}&limit=5"))
        .await;
    assert_eq!(past["records"].as_array().unwrap().len(), 0, "{past}");
}
