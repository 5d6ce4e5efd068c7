//! Instances on PostgreSQL (`--database postgres://…`, issue 16): one on its own keeps
//! everything across restarts, and a sync between SQLite and PostgreSQL moves records both
//! ways. Each database is new, on a throw-away cluster this test binary starts.

use crate::common::{Server, cli, eventually};
use crate::http::{add_field, clients, pair, record_values};
use crmsync_store_conformance::postgres_cluster::TestCluster;
use serde_json::json;

pub(crate) fn on_postgres(data: &std::path::Path, database: &str) -> Server {
    Server::start_with(
        data,
        &[
            "--admin-password",
            crate::common::ADMIN_PASSWORD,
            "--database",
            database,
        ],
        &[],
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn an_instance_on_postgresql_keeps_its_records_across_restarts() {
    let database = TestCluster::shared().create_database();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("main");
    let server = on_postgres(&data, &database);
    let api = server.admin();
    let (table, fields) = clients(&api, &["Name", "Город"]).await;
    let created = api
        .create_record(
            table,
            json!({ fields[0].to_string(): "ООО Ромашка", fields[1].to_string(): "Казань" }),
        )
        .await;
    // A NUL character no PostgreSQL text keeps is refused as a bad value, as on SQLite.
    let (status, body) = api
        .post(
            &format!("/tables/{table}/records"),
            json!({ "values": { fields[0].to_string(): "a\u{0}b" } }),
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body.to_string().contains("NUL"), "{body}");
    drop(server);

    let again = on_postgres(&data, &database);
    let api = again.admin();
    let page = api
        .ok(
            reqwest::Method::GET,
            &format!("/tables/{table}/records?q=ромашка"),
            None,
        )
        .await;
    assert_eq!(page["records"][0]["uid"], created["uid"], "{page}");
    assert_eq!(
        page["records"][0]["values"][fields[1].to_string()],
        "Казань"
    );
    drop(again);

    let data_arg = data.to_str().unwrap();
    let (ok, out, err) = cli(&["status", "--data", data_arg, "--database", &database]);
    assert!(ok, "{err}");
    assert!(
        out.contains("records (0 deleted)") && out.contains("1 records"),
        "{out}"
    );
    assert!(out.contains(&format!("database {database}")), "{out}");
    // Not in the SQLite file of the data folder: there is none.
    let (ok, _, err) = cli(&["status", "--data", data_arg, "--database", "sqlite"]);
    assert!(!ok && err.contains("there is no crmsync instance"), "{err}");

    // A database where no instance ever started is not made one by a look at it.
    let empty = TestCluster::shared().create_database();
    let (ok, _, err) = cli(&["status", "--data", data_arg, "--database", &empty]);
    assert!(
        !ok && err.contains("there is no crmsync instance in postgres://"),
        "{err}"
    );
    let (ok, _, err) = cli(&["status", "--data", data_arg, "--database", &empty]);
    assert!(!ok, "still none after a look: {err}");

    let out_dir = dir.path().join("copy");
    let (ok, _, err) = cli(&[
        "backup",
        "--data",
        data_arg,
        "--database",
        &database,
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    assert!(!ok && err.contains("pg_dump"), "{err}");
    assert!(!out_dir.exists(), "nothing half-written");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sync_between_sqlite_and_postgresql_moves_records_both_ways() {
    let dir = tempfile::tempdir().unwrap();
    let main = Server::start(&dir.path().join("main"));
    let aux = on_postgres(
        &dir.path().join("aux"),
        &TestCluster::shared().create_database(),
    );
    let (main_api, aux_api) = (main.admin(), aux.admin());
    let (main_table, m) = clients(&main_api, &["Name", "Phone"]).await;
    let (aux_table, a) = clients(&aux_api, &["Имя", "Телефон"]).await;
    let (active, passive) = pair(&main_api, &aux_api, "123456").await;
    for i in 0..2 {
        add_field(&main_api, active, m[i], "both", None).await;
        add_field(&aux_api, passive, a[i], "both", Some(m[i])).await;
    }
    main_api
        .create_record(
            main_table,
            json!({ m[0].to_string(): "Анна", m[1].to_string(): "+7 900" }),
        )
        .await;
    aux_api
        .create_record(
            aux_table,
            json!({ a[0].to_string(): "Борис", a[1].to_string(): "+7 901" }),
        )
        .await;
    let names = |values: Vec<serde_json::Value>, field: i64| {
        let mut names: Vec<String> = values
            .iter()
            .filter_map(|v| v[field.to_string()].as_str().map(str::to_string))
            .collect();
        names.sort();
        names
    };
    eventually(30, "both records on both sides", || async {
        let here = names(record_values(&main_api, main_table).await, m[0]);
        let there = names(record_values(&aux_api, aux_table).await, a[0]);
        (here == ["Анна", "Борис"] && there == ["Анна", "Борис"]).then_some(())
    })
    .await;
}

/// Stopped as a service manager stops it, an instance on PostgreSQL exits cleanly after
/// syncing — its idle connections closed without a panic — and starts again.
#[tokio::test(flavor = "multi_thread")]
async fn an_instance_on_postgresql_stops_cleanly_on_sigterm() {
    let database = TestCluster::shared().create_database();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("main");
    let server = on_postgres(&data, &database);
    let api = server.admin();
    let (table, fields) = clients(&api, &["Name"]).await;
    // Several requests at once: several pooled connections to close at the end.
    let writes = (0..6).map(|i| {
        let api = api.clone();
        let field = fields[0].to_string();
        async move {
            api.create_record(table, json!({ field: format!("r{i}") }))
                .await
        }
    });
    futures_util::future::join_all(writes).await;
    let status = server.stop();
    let log = std::fs::read_to_string(data.with_extension("log")).unwrap();
    assert!(status.success(), "exit {status:?}; log:\n{log}");
    assert!(!log.contains("panicked"), "{log}");
    let again = on_postgres(&data, &database);
    assert_eq!(record_values(&again.admin(), table).await.len(), 6);
}

#[tokio::test(flavor = "multi_thread")]
async fn sync_now_leaves_a_sync_to_the_server_running_it_on_the_same_database() {
    let database = TestCluster::shared().create_database();
    let dir = tempfile::tempdir().unwrap();
    let server = on_postgres(&dir.path().join("main"), &database);
    let api = server.admin();
    let (up, down) = (dir.path().join("up"), dir.path().join("down"));
    let sync = crate::folders::local_sync(&api, "active", &up, &down).await;
    // The server takes the sync's lease and runs it.
    eventually(20, "the sync running in the server", || async {
        let (_, s) = api.get(&format!("/syncs/{sync}/status")).await;
        s["last_run"].is_string().then_some(())
    })
    .await;

    let other = dir.path().join("beside");
    let sync_now = || {
        let (ok, out, err) = cli(&[
            "sync-now",
            "--data",
            other.to_str().unwrap(),
            "--database",
            &database,
            "active folders",
        ]);
        assert!(ok, "{out}{err}");
        out
    };
    let out = sync_now();
    assert!(
        out.contains("runs in a crmsync server on this database"),
        "{out}"
    );

    // Once the server stops, sync-now runs the round itself.
    server.stop();
    let out = sync_now();
    assert!(out.contains("sync 1 \"active folders\": wrote "), "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_question_through_folders_asked_of_the_process_not_running_the_sync_says_where_it_runs() {
    let database = TestCluster::shared().create_database();
    let dir = tempfile::tempdir().unwrap();
    let first = on_postgres(&dir.path().join("first"), &database);
    let second = on_postgres(&dir.path().join("second"), &database);
    let (first_api, second_api) = (first.admin(), second.admin());
    let (_, fields) = clients(&first_api, &["Name"]).await;
    let (up, down) = (dir.path().join("up"), dir.path().join("down"));
    let sync = crate::folders::local_sync(&first_api, "active", &up, &down).await;
    add_field(&first_api, sync, fields[0], "both", None).await;
    eventually(20, "the sync running in one of the two", || async {
        let (_, s) = first_api.get(&format!("/syncs/{sync}/status")).await;
        s["last_run"].is_string().then_some(())
    })
    .await;

    // A drift check's question travels in the packets of the process running the sync:
    // the other one says so at once instead of waiting for an answer that cannot come.
    let drift = format!("/syncs/{sync}/drift");
    let (a, b) = tokio::join!(first_api.get(&drift), second_api.get(&drift));
    let elsewhere = [&a, &b]
        .iter()
        .filter(|(_, body)| body.to_string().contains("runs in another crmsync process"))
        .count();
    assert_eq!(elsewhere, 1, "{a:?} {b:?}");
}
