//! Bulk inserts through crmsync's write path (validation, HLC stamps per field, change log
//! — one transaction) against plain inserts of the same rows in one transaction, on the
//! same database engine.
//!
//! `cargo bench --bench write_path` (CRMSYNC_BENCH_RECORDS=N to change the default
//! 1,000,000); `CRMSYNC_BENCH_STORE=postgres` runs both on PostgreSQL (a throw-away cluster
//! this bench starts, as the tests do).

use crmsync::database::{Database, DatabaseUrl};
use crmsync_domain::instance::WriteOp;
use crmsync_domain::store::Store;
use crmsync_domain::{Actor, Clock, Instance, Origin, SystemClock, Value};
use crmsync_store_conformance::postgres_cluster::TestCluster;
use crmsync_store_sqlite::SqliteStore;
use rusqlite::{Connection, params};
use std::sync::Arc;
use std::time::Instant;

const FIELDS: [(&str, &str); 8] = [
    ("Name", "text"),
    ("Address", "text"),
    ("Phone", "text"),
    ("Email", "text"),
    ("City", "text"),
    ("Visits", "number"),
    ("Balance", "money"),
    ("Since", "date"),
];

/// The eight values of row `i`, the same for both runs.
fn row(i: u64) -> [Value; 8] {
    [
        Value::Text(format!("Client {i}")),
        Value::Text(format!("{} Lenina st., apt {}", i % 500, i % 97)),
        Value::Text(format!("+7 900 {:07}", i % 10_000_000)),
        Value::Text(format!("client{i}@example.ru")),
        Value::Text(["Moscow", "Kazan", "Omsk", "Perm"][(i % 4) as usize].to_string()),
        Value::Number((i % 1000) as f64),
        Value::Money((i * 37 % 1_000_000) as i64),
        Value::Date(format!(
            "20{:02}-{:02}-{:02}",
            10 + i % 15,
            1 + i % 12,
            1 + i % 28
        )),
    ]
}

/// Row `i` as the plain inserts bind it.
type PlainRow = (String, String, String, String, String, f64, i64, String);

fn plain_row(i: u64) -> PlainRow {
    let [
        Value::Text(a),
        Value::Text(b),
        Value::Text(c),
        Value::Text(d),
        Value::Text(e),
        Value::Number(f),
        Value::Money(g),
        Value::Date(h),
    ] = row(i)
    else {
        unreachable!("row() makes these eight")
    };
    (a, b, c, d, e, f, g, h)
}

fn write_path<S: Store>(store: S, records: u64) -> f64 {
    let core = Instance::new(store, Arc::new(SystemClock));
    core.ensure_admin(Some("bench-password")).expect("admin");
    let admin = core.users().expect("users").remove(0);
    let actor = Actor {
        user: admin,
        origin: Origin::Import,
    };
    let table = core.create_table(&actor, "Clients").expect("table");
    let mut fields = Vec::new();
    for (name, ty) in FIELDS {
        fields.push(
            core.create_field(&actor, table.id, name, ty, Default::default())
                .expect("field")
                .no,
        );
    }
    let started = Instant::now();
    let mut ops = (0..records).map(|i| {
        Ok(WriteOp::Create(
            fields.iter().copied().zip(row(i)).collect(),
        ))
    });
    let ids = core.write_ops(&actor, table.id, &mut ops).expect("write");
    assert_eq!(ids.len() as u64, records);
    started.elapsed().as_secs_f64()
}

fn plain(dir: &std::path::Path, records: u64) -> f64 {
    std::fs::create_dir_all(dir).unwrap();
    let mut conn = Connection::open(dir.join("plain.db")).unwrap();
    conn.execute_batch(&format!(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA cache_size = -{};
         CREATE TABLE clients (id INTEGER PRIMARY KEY, uid BLOB NOT NULL UNIQUE,
           created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL, status INTEGER NOT NULL,
           f1 TEXT, f2 TEXT, f3 TEXT, f4 TEXT, f5 TEXT, f6 REAL, f7 INTEGER, f8 TEXT);",
        crmsync_store_sqlite::WRITER_CACHE_KIB
    ))
    .unwrap();
    let started = Instant::now();
    let tx = conn.transaction().unwrap();
    {
        let mut stmt = tx
            .prepare("INSERT INTO clients (uid, created_at, updated_at, status, f1, f2, f3, f4, f5, f6, f7, f8) VALUES (?, ?, ?, 0, ?, ?, ?, ?, ?, ?, ?, ?)")
            .unwrap();
        for i in 0..records {
            // The same identity and time source as the write path uses.
            let now = SystemClock.now_ms();
            let uid = SystemClock.new_uid();
            let (a, b, c, d, e, f, g, h) = plain_row(i);
            stmt.execute(params![
                uid.as_bytes().as_slice(),
                now,
                now,
                a,
                b,
                c,
                d,
                e,
                f,
                g,
                h
            ])
            .unwrap();
        }
    }
    tx.commit().unwrap();
    started.elapsed().as_secs_f64()
}

/// The same rows as plain PostgreSQL inserts: one prepared statement, one transaction.
fn plain_postgres(url: &str, records: u64) -> f64 {
    let mut client = postgres::Client::connect(url, postgres::NoTls).unwrap();
    client
        .batch_execute(
            "CREATE TABLE clients (id BIGSERIAL PRIMARY KEY, uid UUID NOT NULL UNIQUE,
               created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL, status SMALLINT NOT NULL,
               f1 TEXT, f2 TEXT, f3 TEXT, f4 TEXT, f5 TEXT, f6 DOUBLE PRECISION, f7 BIGINT,
               f8 TEXT)",
        )
        .unwrap();
    let started = Instant::now();
    let mut tx = client.transaction().unwrap();
    let stmt = tx
        .prepare("INSERT INTO clients (uid, created_at, updated_at, status, f1, f2, f3, f4, f5, f6, f7, f8) VALUES ($1, $2, $3, 0, $4, $5, $6, $7, $8, $9, $10, $11)")
        .unwrap();
    for i in 0..records {
        let now = SystemClock.now_ms();
        let uid = SystemClock.new_uid();
        let (a, b, c, d, e, f, g, h) = plain_row(i);
        tx.execute(&stmt, &[&uid, &now, &now, &a, &b, &c, &d, &e, &f, &g, &h])
            .unwrap();
    }
    tx.commit().unwrap();
    started.elapsed().as_secs_f64()
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
    // `cargo bench` passes flags such as --bench; only the environment configures this run.
    let setting = |name: &str, default: u64| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let records = setting("CRMSYNC_BENCH_RECORDS", 1_000_000);
    let rounds = setting("CRMSYNC_BENCH_ROUNDS", 3).max(1);
    // CRMSYNC_BENCH_ONLY=write skips the plain run (for profiling the write path alone).
    let only_write = std::env::var("CRMSYNC_BENCH_ONLY").is_ok_and(|v| v == "write");
    println!(
        "bulk insert of {records} records × 8 fields, one transaction each way, {rounds} round(s), alternating"
    );
    let on_postgres = std::env::var("CRMSYNC_BENCH_STORE").is_ok_and(|v| v == "postgres");
    let engine = if on_postgres { "PostgreSQL" } else { "SQLite" };
    let (mut plain_times, mut path_times) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        let dir = tempfile::tempdir().unwrap();
        if !only_write {
            let t = match on_postgres {
                true => plain_postgres(&TestCluster::shared().create_database(), records),
                false => plain(&dir.path().join("plain"), records),
            };
            println!("  round {}: plain {engine} {t:6.2} s", round + 1);
            plain_times.push(t);
        }
        let t = match on_postgres {
            true => {
                let url = DatabaseUrl::Postgres(TestCluster::shared().create_database());
                write_path(Database::open(&url).expect("store"), records)
            }
            false => write_path(
                SqliteStore::open(&dir.path().join("crmsync")).expect("store"),
                records,
            ),
        };
        println!("  round {}: write path   {t:6.2} s", round + 1);
        path_times.push(t);
    }
    let path_s = median(path_times);
    let path_rate = records as f64 / path_s;
    if !only_write {
        let plain_s = median(plain_times);
        let plain_rate = records as f64 / plain_s;
        println!("plain {engine} : median {plain_s:6.2} s  {plain_rate:>9.0} records/s");
        println!(
            "write path   : median {path_s:6.2} s  {path_rate:>9.0} records/s (stamps + change log)"
        );
        println!(
            "ratio        : {:.2} of the plain rate (medians)",
            path_rate / plain_rate
        );
    } else {
        println!(
            "write path   : median {path_s:6.2} s  {path_rate:>9.0} records/s (stamps + change log)"
        );
    }
}
