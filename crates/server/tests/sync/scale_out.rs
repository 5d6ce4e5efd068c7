//! Several processes, one database (issue 16): two `crmsync serve` processes on one
//! PostgreSQL database serve one instance, each with a data folder of its own (the records
//! are in the database; only the server log and stored files are per process). A third
//! instance, on SQLite, syncs with it both ways at once: over sync A the PostgreSQL
//! instance is active (its loop runs in the one process holding the sync's lease), over
//! sync B it is passive behind a load balancer that hands each connection to either
//! process. Records are written through both processes and the third instance all along;
//! the process running sync A is killed mid-sync and the other takes the sync over.

use crate::common::{Client, Server, eventually};
use crate::folders::local_sync;
use crate::http::{add_field, pair};
use crate::postgres::on_postgres;
use crmsync_store_conformance::postgres_cluster::TestCluster;
use reqwest::StatusCode;
use serde_json::json;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A load balancer on loopback: each new connection goes to the next backend in turn, or
/// to the other one when that one does not accept (it died).
async fn balancer(backends: Vec<String>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut turn = 0usize;
        loop {
            let Ok((mut incoming, _)) = listener.accept().await else {
                return;
            };
            turn += 1;
            let backends = backends.clone();
            tokio::spawn(async move {
                for i in 0..backends.len() {
                    let backend = &backends[(turn + i) % backends.len()];
                    if let Ok(mut outgoing) = tokio::net::TcpStream::connect(backend).await {
                        let _ = tokio::io::copy_bidirectional(&mut incoming, &mut outgoing).await;
                        return;
                    }
                }
            });
        }
    });
    format!("127.0.0.1:{}", address.port())
}

/// Every record of `table` (deleted ones too): its uid and the text of `field`.
async fn records(api: &Client, table: i64, field: i64) -> Vec<(String, String)> {
    let mut found = Vec::new();
    let mut after = String::new();
    loop {
        let page = api
            .ok(
                reqwest::Method::GET,
                &format!("/tables/{table}/records?status=all&limit=1000{after}"),
                None,
            )
            .await;
        found.extend(page["records"].as_array().unwrap().iter().map(|r| {
            let name = r["values"][field.to_string()].as_str().unwrap_or_default();
            (r["uid"].as_str().unwrap().to_string(), name.to_string())
        }));
        match page["next_after"].as_i64() {
            Some(next) => after = format!("&after={next}"),
            None => return found,
        }
    }
}

/// Writes a record into each of `tables` (table, field) in turn until stopped or the
/// server stops answering; every record it was told was created is in `written`.
fn keep_writing(
    api: Client,
    prefix: &'static str,
    tables: [(i64, i64); 3],
    stop: Arc<std::sync::atomic::AtomicBool>,
    written: Arc<Mutex<Vec<String>>>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut i = 0;
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            let (table, field) = tables[i % tables.len()];
            let name = format!("{prefix}-{table}-{i}");
            let sent = api
                .raw(reqwest::Method::POST, &format!("/tables/{table}/records"))
                .json(&json!({ "values": { field.to_string(): name } }))
                .send()
                .await;
            if sent.map_or(true, |response| response.status() != StatusCode::CREATED) {
                // Its server was killed: whatever it committed last is still counted
                // from the database, not from here.
                return;
            }
            written.lock().unwrap().push(name);
            i += 1;
            tokio::time::sleep(Duration::from_millis(40)).await;
        }
    })
}

fn server_log(server: &Server) -> String {
    std::fs::read_to_string(server.data.with_extension("log")).unwrap_or_default()
}

/// Whether the server's log says it runs sync `sync` now (it took the lease last, and
/// has not let it go since).
fn runs(server: &Server, sync: i64) -> bool {
    let (runs, stopped) = (
        format!("sync {sync} runs in this process"),
        format!("sync {sync} no longer runs in this process"),
    );
    server_log(server)
        .lines()
        .rev()
        .find(|line| line.contains(&runs) || line.contains(&stopped))
        .is_some_and(|line| line.contains(&runs))
}

/// Both sides of a synced table hold the same records, each once.
async fn same_records(pg: &Client, pg_table: (i64, i64), branch: &Client, b_table: (i64, i64)) {
    let here = records(pg, pg_table.0, pg_table.1).await;
    let there = records(branch, b_table.0, b_table.1).await;
    for (side, list) in [("PostgreSQL", &here), ("SQLite", &there)] {
        let uids: HashSet<&String> = list.iter().map(|(uid, _)| uid).collect();
        let names: HashSet<&String> = list.iter().map(|(_, name)| name).collect();
        assert_eq!(uids.len(), list.len(), "a uid twice on the {side} side");
        assert_eq!(
            names.len(),
            list.len(),
            "a record doubled on the {side} side"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn two_processes_on_one_database_run_each_sync_once_and_take_over_when_one_dies() {
    let database = TestCluster::shared().create_database();
    let dir = tempfile::tempdir().unwrap();
    let pg1 = on_postgres(&dir.path().join("pg1"), &database);
    let pg2 = on_postgres(&dir.path().join("pg2"), &database);
    let branch = Server::start(&dir.path().join("branch"));
    let (pg_api, branch_api) = (pg1.admin(), branch.admin());

    // Sync A: the PostgreSQL instance active, the branch passive.
    let (pg_out, [pg_out_field]) = table(&pg_api, "Outgoing").await;
    let (b_out, [b_out_field]) = table(&branch_api, "Outgoing").await;
    let (sync_a, branch_a) = pair(&pg_api, &branch_api, "123456").await;
    add_field(&pg_api, sync_a, pg_out_field, "both", None).await;
    add_field(
        &branch_api,
        branch_a,
        b_out_field,
        "both",
        Some(pg_out_field),
    )
    .await;

    // Sync B: the branch active, the PostgreSQL instance passive behind the balancer.
    let (pg_in, [pg_in_field]) = table(&pg_api, "Incoming").await;
    let (b_in, [b_in_field]) = table(&branch_api, "Incoming").await;
    let (branch_b, sync_b) = pair(&branch_api, &pg_api, "123456").await;
    let (_, passive) = pg_api.get(&format!("/syncs/{sync_b}")).await;
    let endpoint = passive["endpoint_url"].as_str().unwrap();
    assert!(endpoint.contains(&pg1.address()), "{endpoint}");
    let balanced = endpoint.replace(
        &pg1.address(),
        &balancer(vec![pg1.address(), pg2.address()]).await,
    );
    let (status, body) = branch_api
        .patch(
            &format!("/syncs/{branch_b}"),
            json!({ "remote_url": balanced }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    add_field(&branch_api, branch_b, b_in_field, "both", None).await;
    add_field(&pg_api, sync_b, pg_in_field, "both", Some(b_in_field)).await;

    // Sync C: over local folders, where both sides write and read; the PostgreSQL side's
    // rounds run in the process holding its lease.
    let (pg_folder, [pg_folder_field]) = table(&pg_api, "Folders").await;
    let (b_folder, [b_folder_field]) = table(&branch_api, "Folders").await;
    let (to_branch, to_pg) = (dir.path().join("to-branch"), dir.path().join("to-pg"));
    let sync_c = local_sync(&pg_api, "active", &to_branch, &to_pg).await;
    let branch_c = local_sync(&branch_api, "passive", &to_pg, &to_branch).await;
    add_field(&pg_api, sync_c, pg_folder_field, "both", None).await;
    add_field(
        &branch_api,
        branch_c,
        b_folder_field,
        "both",
        Some(pg_folder_field),
    )
    .await;

    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let written = Arc::new(Mutex::new(Vec::new()));
    let pg_tables = [
        (pg_out, pg_out_field),
        (pg_in, pg_in_field),
        (pg_folder, pg_folder_field),
    ];
    let writers = [
        keep_writing(pg1.admin(), "pg1", pg_tables, stop.clone(), written.clone()),
        keep_writing(pg2.admin(), "pg2", pg_tables, stop.clone(), written.clone()),
        keep_writing(
            branch.admin(),
            "branch",
            [
                (b_out, b_out_field),
                (b_in, b_in_field),
                (b_folder, b_folder_field),
            ],
            stop.clone(),
            written.clone(),
        ),
    ];

    // Mid-sync: records from both processes have reached the branch over both syncs.
    eventually(60, "records of both processes on the branch", || async {
        let out = records(&branch_api, b_out, b_out_field).await;
        let inc = records(&branch_api, b_in, b_in_field).await;
        let from = |list: &[(String, String)], prefix: &str| {
            list.iter().filter(|(_, n)| n.starts_with(prefix)).count()
        };
        (from(&out, "pg1") >= 5 && from(&out, "pg2") >= 5 && from(&inc, "pg2") >= 5).then_some(())
    })
    .await;
    let (holder, survivor) = match (runs(&pg1, sync_a), runs(&pg2, sync_a)) {
        (true, false) => (pg1, pg2),
        (false, true) => (pg2, pg1),
        both => panic!("sync A must run in exactly one process, not {both:?}"),
    };
    holder.kill();
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for writer in writers {
        writer.await.unwrap();
    }
    let survivor_api = survivor.admin();
    assert!(
        runs(&survivor, sync_a),
        "the surviving process took sync A over:\n{}",
        server_log(&survivor)
    );

    // Nothing lost: every record any side was told it created, and every record the
    // database holds, is on both sides; nothing doubled.
    let written = written.lock().unwrap().clone();
    eventually(90, "both sides hold the same records", || async {
        let mut all_here = Vec::new();
        for ((pg_table, pg_field), (b_table, b_field)) in [
            ((pg_folder, pg_folder_field), (b_folder, b_folder_field)),
            ((pg_out, pg_out_field), (b_out, b_out_field)),
            ((pg_in, pg_in_field), (b_in, b_in_field)),
        ] {
            let mut here = records(&survivor_api, pg_table, pg_field).await;
            let mut there = records(&branch_api, b_table, b_field).await;
            here.sort();
            there.sort();
            if here != there {
                return None;
            }
            all_here.extend(here.into_iter().map(|(_, name)| name));
        }
        let all: HashSet<&String> = all_here.iter().collect();
        written.iter().all(|name| all.contains(name)).then_some(())
    })
    .await;
    same_records(
        &survivor_api,
        (pg_out, pg_out_field),
        &branch_api,
        (b_out, b_out_field),
    )
    .await;
    same_records(
        &survivor_api,
        (pg_folder, pg_folder_field),
        &branch_api,
        (b_folder, b_folder_field),
    )
    .await;
    same_records(
        &survivor_api,
        (pg_in, pg_in_field),
        &branch_api,
        (b_in, b_in_field),
    )
    .await;

    // Stamps stay monotonic across the two writers: in change-log order, every write made
    // through an API is stamped later than the one before, and the log has no gaps.
    let name = database.rsplit('/').next().unwrap();
    let out = TestCluster::shared()
        .client("psql")
        .args(["-d", name, "-At", "-F", " ", "-c"])
        .arg("SELECT seq, hlc, origin FROM changes ORDER BY seq")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<(i64, i64, String)> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|line| {
            let mut parts = line.split(' ');
            let mut number = || parts.next().unwrap().parse::<i64>().unwrap();
            let (seq, hlc) = (number(), number());
            (seq, hlc, parts.next().unwrap().to_string())
        })
        .collect();
    let seqs: Vec<i64> = rows.iter().map(|r| r.0).collect();
    assert_eq!(seqs, (1..=rows.len() as i64).collect::<Vec<_>>(), "no gaps");
    let api_stamps: Vec<i64> = rows.iter().filter(|r| r.2 == "api").map(|r| r.1).collect();
    assert!(api_stamps.len() >= 20, "{} writes", api_stamps.len());
    assert!(
        api_stamps.windows(2).all(|w| w[0] < w[1]),
        "stamps go back: {api_stamps:?}"
    );
}

async fn table(api: &Client, name: &str) -> (i64, [i64; 1]) {
    let table = api.create_table(name).await;
    (
        table,
        [api.create_field(table, "Name", "text", json!({})).await],
    )
}
