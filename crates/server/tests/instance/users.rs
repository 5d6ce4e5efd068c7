use crate::common::{Server, cli, eventually};
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test]
async fn the_first_start_prints_a_generated_admin_password_once() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start_with(&data, &[], &[]);
    let line = server
        .banner
        .iter()
        .find(|l| l.starts_with("created user admin with password "))
        .expect("the generated password is printed");
    let password = line
        .trim_start_matches("created user admin with password ")
        .to_string();
    let (status, me) = server.as_user("admin", &password).get("/me").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["role"], "admin");
    let data = server.kill();
    let again = Server::start_with(&data, &[], &[]);
    assert!(
        !again.banner.iter().any(|l| l.contains("password")),
        "{:?}",
        again.banner
    );
    let (status, _) = again.as_user("admin", &password).get("/me").await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn the_admin_password_can_come_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(
        &dir.path().join("data"),
        &[],
        &[("CRMSYNC_ADMIN_PASSWORD", "from-env-123")],
    );
    assert!(!server.banner.iter().any(|l| l.contains("password")));
    let (status, _) = server.as_user("admin", "from-env-123").get("/me").await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn users_roles_and_passwords() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let admin = server.admin();
    let (status, olga) = admin
        .post(
            "/users",
            json!({ "login": "olga", "full_name": "Ольга Петрова", "password": "olga-pass-1" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(olga["role"], "user");
    assert!(
        olga.get("password").is_none() && olga.get("password_hash").is_none(),
        "{olga}"
    );
    let olga_id = olga["id"].as_i64().unwrap();

    let (status, _) = admin
        .post(
            "/users",
            json!({ "login": "OLGA", "full_name": "x", "password": "12345678" }),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, body) = admin
        .post(
            "/users",
            json!({ "login": "short", "full_name": "x", "password": "123" }),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");

    let user = server.as_user("olga", "olga-pass-1");
    let (status, body) = user.post("/tables", json!({ "name": "Mine" })).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let table = admin.create_table("Tasks").await;
    let owner = admin.create_field(table, "Owner", "user", json!({})).await;
    let (status, _) = user
        .post(
            &format!("/tables/{table}/records"),
            json!({ "values": { owner.to_string(): olga_id } }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "a user may write records");

    // A user changes their own password; not their role.
    let (status, _) = user
        .patch(&format!("/users/{olga_id}"), json!({ "role": "admin" }))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = user
        .patch(
            &format!("/users/{olga_id}"),
            json!({ "password": "olga-pass-2" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = server.as_user("olga", "olga-pass-1").get("/me").await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "the old password stops working at once"
    );
    let user = server.as_user("olga", "olga-pass-2");
    assert_eq!(user.get("/me").await.0, StatusCode::OK);

    let (status, _) = admin.delete("/users/1").await;
    assert_eq!(status, StatusCode::CONFLICT, "no removing yourself");
    admin
        .ok(Method::DELETE, &format!("/users/{olga_id}"), None)
        .await;
    assert_eq!(user.get("/me").await.0, StatusCode::UNAUTHORIZED);
    let users = admin.ok(Method::GET, "/users", None).await;
    assert_eq!(users["users"].as_array().unwrap().len(), 1);
    // A removed user's record keeps its value, and history still names them.
    let (status, body) = admin
        .post(
            &format!("/tables/{table}/records"),
            json!({ "values": { owner.to_string(): olga_id } }),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "no new references to a removed user: {body}"
    );
    let history = admin
        .ok(
            Method::GET,
            &format!("/tables/{table}/records/1/history"),
            None,
        )
        .await;
    assert_eq!(history["history"][0]["user"]["login"], "olga");
}

#[tokio::test]
async fn cli_status_describes_the_instance() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data);
    let api = server.admin();
    let table = api.create_table("Clients").await;
    let name = api.create_field(table, "Name", "text", json!({})).await;
    api.create_record(table, json!({ name.to_string(): "A" }))
        .await;
    let b = api
        .create_record(table, json!({ name.to_string(): "B" }))
        .await["id"]
        .as_i64()
        .unwrap();
    api.delete(&format!("/tables/{table}/records/{b}")).await;
    let (ok, out, err) = cli(&["status", "--data", data.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(
        out.contains("table 1 \"Clients\": 1 fields, 1 records (1 deleted)"),
        "{out}"
    );
    assert!(out.contains("changes  3 in the change log"), "{out}");
    let (ok, _, err) = cli(&[
        "status",
        "--data",
        dir.path().join("nothing").to_str().unwrap(),
    ]);
    assert!(!ok);
    assert!(err.contains("there is no crmsync instance"), "{err}");
    let (ok, out, _) = cli(&["--help"]);
    assert!(
        ok && out.contains("serve")
            && out.contains("import")
            && out.contains("export")
            && out.contains("status")
    );
}

#[tokio::test]
async fn repeated_wrong_passwords_are_refused_for_a_while() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let guesser = server.as_user("admin", "guess-123");
    for _ in 0..5 {
        assert_eq!(guesser.get("/me").await.0, StatusCode::UNAUTHORIZED);
    }
    let (status, body) = guesser.get("/me").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(body["error"], "too_many_attempts");
    // Even the right password waits: the pause is for this login from this address.
    let response = server.admin().raw(Method::GET, "/me").send().await.unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=3).contains(&retry_after), "{retry_after}");
    // Another login from the same address is not affected.
    let other = server.as_user("olga", "olga-pass-1");
    assert_eq!(
        other.get("/me").await.0,
        StatusCode::UNAUTHORIZED,
        "checked, not paused"
    );
    // After the pause the right password works again.
    eventually(10, "the pause to end", || async {
        let (status, _) = server.admin().get("/me").await;
        if status != StatusCode::OK {
            assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        }
        (status == StatusCode::OK).then_some(())
    })
    .await;
}

#[tokio::test]
async fn cli_status_names_a_syncs_side_in_words_and_stops_quietly_when_its_reader_does() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data);
    let (status, body) = server
        .admin()
        .post(
            "/syncs",
            json!({ "name": "branch", "mode": "passive", "password": "123456" }),
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::CREATED, "{body}");
    let (ok, out, err) = cli(&["status", "--data", data.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(
        out.contains("sync 1 \"branch\" (passive side, over HTTP)"),
        "{out}"
    );
    // The data folder from the environment, as a service unit would give it.
    let by_env = std::process::Command::new(env!("CARGO_BIN_EXE_crmsync"))
        .arg("status")
        .env("CRMSYNC_DATA", &data)
        .env_remove("CRMSYNC_DATABASE")
        .envs(crate::common::database_for(&data).map(|d| ("CRMSYNC_DATABASE", d)))
        .output()
        .unwrap();
    assert!(by_env.status.success(), "{by_env:?}");
    assert_eq!(String::from_utf8_lossy(&by_env.stdout), out);

    // `crmsync status | head -0`: the reader is gone before the first line.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_crmsync"))
        .args(["status", "--data", data.to_str().unwrap()])
        .env_remove("CRMSYNC_DATABASE")
        .envs(crate::common::database_for(&data).map(|d| ("CRMSYNC_DATABASE", d)))
        .stdout(writer)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{:?} {stderr}", output.status);
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[tokio::test]
async fn a_port_in_use_is_found_before_anything_is_created_or_printed() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let data = dir.path().join("data");
    let (ok, out, err) = cli(&[
        "serve",
        "--data",
        data.to_str().unwrap(),
        "--listen",
        &address,
    ]);
    assert!(!ok, "{out}");
    assert!(
        err.contains(&format!("cannot listen on {address}")),
        "{err}"
    );
    assert!(!out.contains("password"), "no admin made: {out}");
    assert!(!data.exists(), "nothing written");
}
