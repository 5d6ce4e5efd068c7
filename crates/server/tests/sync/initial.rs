use super::http::{add_field, clients, pair, quiet, record_values, set_remote};
use crate::common::{Client, Server, eventually};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

pub async fn run_job(api: &Client, path: &str) -> Value {
    let (status, job) = api.post(path, json!({})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{job}");
    let id = job["id"].as_i64().unwrap();
    eventually(60, "the initial sync job to finish", || async {
        let job = api.ok(Method::GET, &format!("/jobs/{id}"), None).await;
        assert_ne!(job["state"], "failed", "{job}");
        (job["state"] == "done").then_some(job)
    })
    .await
}

fn names(values: &[Value], field: i64) -> Vec<String> {
    let mut names: Vec<String> = values
        .iter()
        .filter_map(|v| v[field.to_string()].as_str().map(str::to_string))
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn initial_sync_brings_existing_rows_both_ways_once() {
    let dir = tempfile::tempdir().unwrap();
    let main = Server::start(&dir.path().join("main"));
    let aux = Server::start(&dir.path().join("aux"));
    let (main_api, aux_api) = (main.admin(), aux.admin());
    let (main_table, m) = clients(&main_api, &["Name", "Phone", "City"]).await;
    let (aux_table, a) = clients(&aux_api, &["Name", "Phone", "City"]).await;
    for i in 0..30 {
        main_api.create_record(main_table, json!({ m[0].to_string(): format!("main {i:02}"), m[1].to_string(): format!("+7 {i}"), m[2].to_string(): "Omsk" })).await;
    }
    for i in 0..10 {
        aux_api
            .create_record(
                aux_table,
                json!({ a[0].to_string(): format!("aux {i:02}") }),
            )
            .await;
    }
    let (active, passive) = pair(&main_api, &aux_api, "123456").await;
    add_field(&main_api, active, m[0], "both", None).await;
    add_field(&main_api, active, m[1], "upload", None).await;
    add_field(&aux_api, passive, a[0], "both", Some(m[0])).await;
    add_field(&aux_api, passive, a[1], "download", Some(m[1])).await;
    quiet(&main_api, active, &aux_api, passive).await;
    assert_eq!(
        record_values(&aux_api, aux_table).await.len(),
        10,
        "existing rows wait for the initial sync"
    );

    let job = run_job(&main_api, &format!("/syncs/{active}/initial")).await;
    // 30 + 10 queued, each once (none of them back to where it came from).
    assert_eq!(job["total"], 40, "{job}");
    assert_eq!(job["done"], job["total"], "{job}");
    let aux_values = record_values(&aux_api, aux_table).await;
    let main_values = record_values(&main_api, main_table).await;
    assert_eq!(aux_values.len(), 40);
    assert_eq!(main_values.len(), 40);
    assert_eq!(names(&aux_values, a[0]), names(&main_values, m[0]));
    assert!(
        aux_values
            .iter()
            .filter(|v| v[a[1].to_string()] != Value::Null)
            .count()
            == 30,
        "phones came down"
    );
    assert!(
        aux_values
            .iter()
            .all(|v| v[a[2].to_string()] == Value::Null),
        "City is not configured"
    );

    // Again: nothing doubles.
    run_job(&main_api, &format!("/syncs/{active}/initial")).await;
    quiet(&main_api, active, &aux_api, passive).await;
    assert_eq!(record_values(&aux_api, aux_table).await.len(), 40);
    assert_eq!(record_values(&main_api, main_table).await.len(), 40);

    // One field (S-22): City is added later and brought across alone.
    let (_, city) = main_api
        .post(
            &format!("/syncs/{active}/fields"),
            json!({ "field_no": m[2], "direction": "upload" }),
        )
        .await;
    add_field(&aux_api, passive, a[2], "download", Some(m[2])).await;
    run_job(
        &main_api,
        &format!("/syncs/{active}/fields/{}/initial", city["id"]),
    )
    .await;
    let aux_values = record_values(&aux_api, aux_table).await;
    assert_eq!(
        aux_values
            .iter()
            .filter(|v| v[a[2].to_string()] == "Omsk")
            .count(),
        30
    );
    assert_eq!(aux_values.len(), 40);
}

#[tokio::test]
async fn the_passive_side_can_start_the_initial_sync_and_sync_one_record() {
    let dir = tempfile::tempdir().unwrap();
    let main = Server::start(&dir.path().join("main"));
    let aux = Server::start(&dir.path().join("aux"));
    let (main_api, aux_api) = (main.admin(), aux.admin());
    let (main_table, m) = clients(&main_api, &["Name"]).await;
    let (aux_table, a) = clients(&aux_api, &["Name"]).await;
    for i in 0..5 {
        main_api
            .create_record(main_table, json!({ m[0].to_string(): format!("main {i}") }))
            .await;
        aux_api
            .create_record(aux_table, json!({ a[0].to_string(): format!("aux {i}") }))
            .await;
    }
    let (active, passive) = pair(&main_api, &aux_api, "123456").await;
    add_field(&main_api, active, m[0], "both", None).await;
    add_field(&aux_api, passive, a[0], "both", Some(m[0])).await;
    quiet(&main_api, active, &aux_api, passive).await;

    // The per-record action first: one aux record goes across now.
    let (status, body) = aux_api
        .post(&format!("/tables/{aux_table}/records/1/sync"), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["queued"][0]["sync_id"], passive);
    eventually(20, "the one record on main", || async {
        let values = record_values(&main_api, main_table).await;
        names(&values, m[0])
            .contains(&"aux 0".to_string())
            .then_some(())
    })
    .await;
    assert_eq!(record_values(&main_api, main_table).await.len(), 6);

    run_job(&aux_api, &format!("/syncs/{passive}/initial")).await;
    eventually(30, "both sides complete", || async {
        let (mv, av) = (
            record_values(&main_api, main_table).await,
            record_values(&aux_api, aux_table).await,
        );
        (mv.len() == 10 && av.len() == 10).then_some(())
    })
    .await;
    quiet(&main_api, active, &aux_api, passive).await;
    assert_eq!(
        record_values(&main_api, main_table).await.len(),
        10,
        "no duplicates"
    );

    let (status, body) = main_api.post("/tables/99/records/1/sync", json!({})).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
}

/// Polls the job until it says done, checking at that very moment that `on_peer` already
/// holds every record; before that the job must be running, never failed.
async fn done_only_once_applied(api: &Client, job: i64, peer: &Client, table: i64, count: usize) {
    eventually(
        60,
        "the job done once the peer applied everything",
        || async {
            let status = api.ok(Method::GET, &format!("/jobs/{job}"), None).await;
            assert_ne!(status["state"], "failed", "{status}");
            if status["state"] != "done" {
                return None;
            }
            let there = peer.all_ids(table, "active").await.len();
            assert_eq!(
                there, count,
                "done while the peer holds {there} of {count}: {status}"
            );
            assert_eq!(status["done"], status["total"], "{status}");
            Some(())
        },
    )
    .await;
}

/// Starts the initial sync and waits until the job shows what it waits for (the other side
/// stopped): it must still be running, nothing counted as applied.
async fn start_while_peer_stopped(api: &Client, path: &str) -> i64 {
    let (status, job) = api.post(path, json!({})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{job}");
    let id = job["id"].as_i64().unwrap();
    let job = eventually(30, "the job to say what it waits for", || async {
        let job = api.ok(Method::GET, &format!("/jobs/{id}"), None).await;
        (job["state"] != "running" || job["waiting"].is_string()).then_some(job)
    })
    .await;
    assert_eq!(job["state"], "running", "{job}");
    assert_eq!(job["done"], 0, "{job}");
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_http_the_job_is_done_only_once_the_stopped_peer_has_applied_everything() {
    let dir = tempfile::tempdir().unwrap();
    let main = Server::start(&dir.path().join("main"));
    let aux = Server::start(&dir.path().join("aux"));
    let (main_api, aux_api) = (main.admin(), aux.admin());
    let (main_table, m) = clients(&main_api, &["Name"]).await;
    let (aux_table, a) = clients(&aux_api, &["Name"]).await;
    for i in 0..25 {
        main_api
            .create_record(main_table, json!({ m[0].to_string(): format!("main {i}") }))
            .await;
    }
    let (active, passive) = pair(&main_api, &aux_api, "123456").await;
    add_field(&main_api, active, m[0], "upload", None).await;
    add_field(&aux_api, passive, a[0], "download", Some(m[0])).await;
    quiet(&main_api, active, &aux_api, passive).await;

    let aux_data = aux.kill();
    let job = start_while_peer_stopped(&main_api, &format!("/syncs/{active}/initial")).await;

    // Back on a port of its own: the active side is pointed at it.
    let aux = Server::start(&aux_data);
    let aux_api = aux.admin();
    set_remote(&main_api, active, &format!("{}/sync/v1/{passive}", aux.url)).await;
    done_only_once_applied(&main_api, job, &aux_api, aux_table, 25).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_folders_the_job_is_done_only_once_the_peer_has_read_and_applied_everything() {
    use super::folders::local_sync;
    let dir = tempfile::tempdir().unwrap();
    let (to_aux, to_main) = (dir.path().join("to-aux"), dir.path().join("to-main"));
    let main = Server::start(&dir.path().join("main"));
    let aux = Server::start(&dir.path().join("aux"));
    let (main_api, aux_api) = (main.admin(), aux.admin());
    let (main_table, m) = clients(&main_api, &["Name"]).await;
    let (aux_table, a) = clients(&aux_api, &["Name"]).await;
    for i in 0..25 {
        main_api
            .create_record(main_table, json!({ m[0].to_string(): format!("main {i}") }))
            .await;
    }
    let active = local_sync(&main_api, "active", &to_aux, &to_main).await;
    let passive = local_sync(&aux_api, "passive", &to_main, &to_aux).await;
    add_field(&main_api, active, m[0], "upload", None).await;
    add_field(&aux_api, passive, a[0], "download", Some(m[0])).await;
    eventually(30, "aux has read main's field catalogue", || async {
        let (_, status) = aux_api.get(&format!("/syncs/{passive}/status")).await;
        (status["connected"] == true && std::fs::read_dir(&to_aux).unwrap().count() == 0)
            .then_some(())
    })
    .await;

    // Aux stops reading its download folder: main's packets wait there, unapplied.
    let aux_data = aux.kill();
    let job = start_while_peer_stopped(&main_api, &format!("/syncs/{active}/initial")).await;
    eventually(30, "main's packets written for aux", || async {
        (std::fs::read_dir(&to_aux).unwrap().count() > 0).then_some(())
    })
    .await;
    let status = main_api
        .ok(Method::GET, &format!("/jobs/{job}"), None)
        .await;
    assert_eq!(status["state"], "running", "{status}");

    let aux = Server::start(&aux_data);
    let aux_api = aux.admin();
    done_only_once_applied(&main_api, job, &aux_api, aux_table, 25).await;
}

/// The rows the other side sends in answer count too: started on the side that has none,
/// the job is done only once the other side's rows are all here.
async fn the_other_sides_rows_count(over_folders: bool) {
    use super::folders::local_sync;
    let dir = tempfile::tempdir().unwrap();
    let main = Server::start(&dir.path().join("main"));
    let aux = Server::start(&dir.path().join("aux"));
    let (main_api, aux_api) = (main.admin(), aux.admin());
    let (main_table, m) = clients(&main_api, &["Name"]).await;
    let (aux_table, a) = clients(&aux_api, &["Name"]).await;
    for i in 0..300 {
        main_api
            .create_record(main_table, json!({ m[0].to_string(): format!("main {i}") }))
            .await;
    }
    let (active, passive) = match over_folders {
        false => pair(&main_api, &aux_api, "123456").await,
        true => {
            let (up, down) = (dir.path().join("up"), dir.path().join("down"));
            (
                local_sync(&main_api, "active", &up, &down).await,
                local_sync(&aux_api, "passive", &down, &up).await,
            )
        }
    };
    add_field(&main_api, active, m[0], "upload", None).await;
    add_field(&aux_api, passive, a[0], "download", Some(m[0])).await;
    let (status, job) = aux_api
        .post(&format!("/syncs/{passive}/initial"), json!({}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{job}");
    let job = job["id"].as_i64().unwrap();
    done_only_once_applied(&aux_api, job, &aux_api, aux_table, 300).await;
    let status = aux_api.ok(Method::GET, &format!("/jobs/{job}"), None).await;
    assert_eq!(status["total"], 300, "{status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn started_on_the_passive_side_the_job_waits_for_the_active_sides_rows() {
    the_other_sides_rows_count(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_folders_the_job_waits_for_the_other_sides_rows() {
    the_other_sides_rows_count(true).await;
}

#[tokio::test]
async fn sync_now_on_a_stopped_active_side_answers_the_passive_sides_initial_sync() {
    let dir = tempfile::tempdir().unwrap();
    let main = Server::start(&dir.path().join("main"));
    let aux = Server::start(&dir.path().join("aux"));
    let (main_api, aux_api) = (main.admin(), aux.admin());
    let (main_table, m) = clients(&main_api, &["Name"]).await;
    let (aux_table, a) = clients(&aux_api, &["Name"]).await;
    // Rows from before the sync: they travel only with an initial sync.
    for i in 0..3 {
        main_api
            .create_record(main_table, json!({ m[0].to_string(): format!("main {i}") }))
            .await;
    }
    let (active, passive) = pair(&main_api, &aux_api, "123456").await;
    add_field(&main_api, active, m[0], "both", None).await;
    add_field(&aux_api, passive, a[0], "both", Some(m[0])).await;
    quiet(&main_api, active, &aux_api, passive).await;
    assert!(record_values(&aux_api, aux_table).await.is_empty());
    let main_dir = main.kill();

    // The branch starts an initial sync; the main office's server is down and someone
    // runs one exchange from the command line there.
    let (status, job) = aux_api
        .post(&format!("/syncs/{passive}/initial"), json!({}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{job}");
    let id = job["id"].as_i64().unwrap();
    eventually(30, "the request waiting to be handed over", || async {
        let job = aux_api.ok(Method::GET, &format!("/jobs/{id}"), None).await;
        job["waiting"]
            .as_str()
            .is_some_and(|w| w.contains("hand the request"))
            .then_some(())
    })
    .await;
    let (ok, out, err) = crate::common::cli(&["sync-now", "--data", main_dir.to_str().unwrap()]);
    assert!(ok, "{out}{err}");
    assert_eq!(
        names(&record_values(&aux_api, aux_table).await, a[0]),
        ["main 0", "main 1", "main 2"],
        "the main office's rows came with that one exchange"
    );
    eventually(30, "the branch's job done", || async {
        let job = aux_api.ok(Method::GET, &format!("/jobs/{id}"), None).await;
        (job["state"] == "done").then_some(())
    })
    .await;
}

#[tokio::test]
async fn two_field_initial_syncs_started_at_once_over_folders_both_bring_the_other_sides_rows() {
    let dir = tempfile::tempdir().unwrap();
    let main = Server::start(&dir.path().join("main"));
    let aux = Server::start(&dir.path().join("aux"));
    let (main_api, aux_api) = (main.admin(), aux.admin());
    let (main_table, m) = clients(&main_api, &["Phone", "City"]).await;
    let (_, a) = clients(&aux_api, &["Phone", "City"]).await;
    // The branch's rows from before the sync.
    let (_, tables) = aux_api.get("/tables").await;
    let aux_table = tables["tables"][0]["id"].as_i64().unwrap();
    for i in 0..3 {
        aux_api
            .create_record(
                aux_table,
                json!({ a[0].to_string(): format!("+7 {i}"), a[1].to_string(): format!("city {i}") }),
            )
            .await;
    }
    let pairs: Vec<(i64, i64)> = m.iter().copied().zip(a.iter().copied()).collect();
    let (active, _) =
        super::folders::link_by_folders(dir.path(), &main_api, &aux_api, &pairs).await;
    let (_, fields) = main_api.get(&format!("/syncs/{active}/fields")).await;
    let entries: Vec<i64> = fields["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_i64().unwrap())
        .collect();
    // Both started at once.
    let (phone, city) = (
        format!("/syncs/{active}/fields/{}/initial", entries[0]),
        format!("/syncs/{active}/fields/{}/initial", entries[1]),
    );
    let (started_phone, started_city) = tokio::join!(
        main_api.post(&phone, json!({})),
        main_api.post(&city, json!({})),
    );
    for (status, job) in [&started_phone, &started_city] {
        assert_eq!(*status, StatusCode::ACCEPTED, "{job}");
    }
    eventually(60, "both fields of the branch's rows on main", || async {
        let values = record_values(&main_api, main_table).await;
        let complete = values.len() == 3
            && values
                .iter()
                .all(|v| v[m[0].to_string()].is_string() && v[m[1].to_string()].is_string());
        complete.then_some(())
    })
    .await;
}

/// The records received in every "received" entry of a sync's log.
async fn received_in_log(api: &Client, sync: i64) -> i64 {
    let (_, log) = api.get(&format!("/syncs/{sync}/log?limit=1000")).await;
    log["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "received")
        .map(|e| {
            let message = e["message"].as_str().unwrap();
            let count = message.strip_prefix("received ").unwrap();
            count.split(' ').next().unwrap().parse::<i64>().unwrap()
        })
        .sum()
}

/// Two synced instances, 30 rows on main and 10 on aux that have not travelled yet.
struct RowsOnBothSides {
    _dir: tempfile::TempDir,
    /// Kept running while the test runs.
    _main: Server,
    aux: Server,
    main_api: Client,
    aux_api: Client,
    tables: (i64, i64),
    active: i64,
    passive: i64,
}

async fn rows_on_both_sides() -> RowsOnBothSides {
    let dir = tempfile::tempdir().unwrap();
    let main = Server::start(&dir.path().join("main"));
    let aux = Server::start(&dir.path().join("aux"));
    let (main_api, aux_api) = (main.admin(), aux.admin());
    let (main_table, m) = clients(&main_api, &["Name"]).await;
    let (aux_table, a) = clients(&aux_api, &["Name"]).await;
    for i in 0..30 {
        main_api
            .create_record(
                main_table,
                json!({ m[0].to_string(): format!("main {i:02}") }),
            )
            .await;
    }
    for i in 0..10 {
        aux_api
            .create_record(
                aux_table,
                json!({ a[0].to_string(): format!("aux {i:02}") }),
            )
            .await;
    }
    let (active, passive) = pair(&main_api, &aux_api, "123456").await;
    add_field(&main_api, active, m[0], "both", None).await;
    add_field(&aux_api, passive, a[0], "both", Some(m[0])).await;
    quiet(&main_api, active, &aux_api, passive).await;
    RowsOnBothSides {
        _dir: dir,
        _main: main,
        aux,
        main_api,
        aux_api,
        tables: (main_table, aux_table),
        active,
        passive,
    }
}

/// The job queued each side's rows once, and each row travelled once.
async fn each_row_travelled_once(pair: &RowsOnBothSides, job: &Value) {
    let (main_api, aux_api) = (&pair.main_api, &pair.aux_api);
    assert_eq!(job["total"], 40, "each side's rows queued once: {job}");
    quiet(main_api, pair.active, aux_api, pair.passive).await;
    assert_eq!(record_values(aux_api, pair.tables.1).await.len(), 40);
    assert_eq!(record_values(main_api, pair.tables.0).await.len(), 40);
    assert_eq!(
        received_in_log(aux_api, pair.passive).await,
        30,
        "main's rows came back to it"
    );
    assert_eq!(
        received_in_log(main_api, pair.active).await,
        10,
        "aux's rows came back to it"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_initial_sync_sends_back_nothing_the_other_side_has_just_sent() {
    use super::faults::{Action, Fault, Relay};
    let pair = rows_on_both_sides().await;
    // The first request for the passive side's rows is cut: asked again a period later,
    // after anything this side queued has had all the time to arrive there.
    let relay = Relay::start(&pair.aux.address()).await;
    relay.arm(Fault::new("resend", Action::CutRequest));
    set_remote(
        &pair.main_api,
        pair.active,
        &relay.endpoint(&pair.aux, pair.passive),
    )
    .await;

    let job = run_job(&pair.main_api, &format!("/syncs/{}/initial", pair.active)).await;
    assert_eq!(relay.cuts(), 1, "{:?}", relay.requests());
    each_row_travelled_once(&pair, &job).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn started_on_the_passive_side_an_initial_sync_sends_back_nothing_either() {
    let pair = rows_on_both_sides().await;
    let job = run_job(&pair.aux_api, &format!("/syncs/{}/initial", pair.passive)).await;
    each_row_travelled_once(&pair, &job).await;
}
