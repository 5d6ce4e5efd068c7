//! What a PostgreSQL store's user sees at its limits: prepared statements that stay
//! bounded, a server that does not answer, every connection busy, a lock held too long.

use crmsync_domain::clock::{Hlc, Stamp};
use crmsync_domain::{ChangeOp, RecordQuery, Store};
use crmsync_store_conformance::fixtures::{change, clients_with_a_name, named_row};
use crmsync_store_conformance::postgres_cluster::TestCluster;
use crmsync_store_postgres::{PgStore, STATEMENT_CACHE_CAPACITY};
use std::sync::mpsc;
use std::time::{Duration, Instant};

fn open(parameters: &str) -> PgStore {
    let url = TestCluster::shared().create_database();
    PgStore::open(&format!("{url}{parameters}")).unwrap()
}

#[test]
fn page_sizes_share_one_statement_and_the_cache_stays_bounded() {
    let store = open("");
    let (table, node) = clients_with_a_name(&store);
    let stamp = Stamp { hlc: Hlc(1), node };
    let ids: Vec<i64> = store
        .write(|tx| {
            (0..30)
                .map(|i| {
                    tx.insert_record(
                        &table,
                        &named_row(&format!("r{i}"), stamp),
                        &change(ChangeOp::Create, stamp.hlc, vec![1], vec![]),
                    )
                })
                .collect()
        })
        .unwrap();
    let page = |limit: usize| {
        let query = RecordQuery {
            limit,
            ..RecordQuery::default()
        };
        store.read(|tx| tx.list_records(&table, &query)).unwrap()
    };
    page(1);
    let cached = store.most_cached_statements();
    for limit in 1..=300 {
        let records = page(limit);
        let listed: Vec<i64> = records.iter().map(|r| r.id).collect();
        assert_eq!(listed, ids[..limit.min(ids.len())], "page of {limit}");
    }
    assert_eq!(
        store.most_cached_statements(),
        cached,
        "300 page sizes prepared no statement of their own"
    );

    // More distinct statements than the cache holds (one per table): the least recently
    // used go, and what is read stays right.
    let tables = store
        .write(|tx| {
            for i in 0..STATEMENT_CACHE_CAPACITY + 20 {
                tx.create_table(&format!("T{i}"))?;
            }
            tx.tables()
        })
        .unwrap();
    for table in &tables {
        let ids = store.read(|tx| tx.record_ids(table, 0, 10)).unwrap();
        assert_eq!(ids.is_empty(), table.id != 1);
    }
    let cached = store.most_cached_statements();
    assert!(
        (1..=STATEMENT_CACHE_CAPACITY).contains(&cached),
        "{cached} statements cached, the bound is {STATEMENT_CACHE_CAPACITY}"
    );
}

#[test]
fn a_server_that_does_not_answer_fails_the_open_within_the_connect_timeout() {
    // A listener whose backlog is full: the kernel drops further connection attempts
    // unanswered, as a host behind a firewall that drops packets does.
    let listener =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("a socket");
    listener
        .bind(
            &"127.0.0.1:0"
                .parse::<std::net::SocketAddr>()
                .unwrap()
                .into(),
        )
        .unwrap();
    listener.listen(0).unwrap();
    let address = listener.local_addr().unwrap().as_socket().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..2 {
        if let Ok(stream) =
            std::net::TcpStream::connect_timeout(&address, Duration::from_millis(200))
        {
            fillers.push(stream);
        }
    }
    // No timeout in the URL: the store's default (10 s) applies, not the system's two
    // minutes of retries.
    let started = Instant::now();
    let error = PgStore::open(&format!("postgres://crm@127.0.0.1:{}/crm", address.port()))
        .err()
        .expect("no store without a server");
    let waited = started.elapsed();
    let message = error.to_string();
    assert!(
        waited < Duration::from_secs(15),
        "gave up after {waited:?}: {message}"
    );
    assert!(
        message.contains("cannot connect to PostgreSQL at 127.0.0.1:")
            && message.contains("connect timeout 10 s"),
        "{message}"
    );
}

/// Runs `meanwhile` while another thread holds a transaction of `store` (a write one if
/// `write`) open; the holder lets go when `meanwhile` returns, also when it panics.
fn while_a_transaction_is_open(store: &PgStore, write: bool, meanwhile: impl FnOnce()) {
    let (held_tx, held) = mpsc::channel();
    let (release, released) = mpsc::channel::<()>();
    std::thread::scope(|scope| {
        let holder = scope.spawn(move || {
            let hold = |_: &mut dyn crmsync_domain::StoreTx| {
                held_tx.send(()).unwrap();
                let _ = released.recv();
                Ok(())
            };
            match write {
                true => store.write(hold),
                false => store.read(hold),
            }
        });
        held.recv().unwrap();
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(meanwhile));
        drop(release);
        holder.join().unwrap().unwrap();
        if let Err(panic) = outcome {
            std::panic::resume_unwind(panic);
        }
    });
}

#[test]
fn a_caller_waits_for_a_busy_connection_and_is_told_when_none_comes() {
    let store = open("?pool_max_connections=1&pool_timeout=1");
    while_a_transaction_is_open(&store, false, || {
        let started = Instant::now();
        let error = store
            .read(|tx| tx.instance_id())
            .expect_err("the one connection is busy");
        assert!(started.elapsed() >= Duration::from_millis(900));
        assert!(
            error
                .to_string()
                .contains("all 1 connections to PostgreSQL stayed busy for 1 s"),
            "{error}"
        );
    });
    // A caller that waits while the connection is given back gets it.
    std::thread::scope(|scope| {
        let store = &store;
        let mut waiter = None;
        while_a_transaction_is_open(store, false, || {
            waiter = Some(scope.spawn(move || store.read(|tx| tx.instance_id())));
            std::thread::sleep(Duration::from_millis(200));
        });
        let waiter = waiter.unwrap();
        waiter.join().unwrap().expect("the connection given back");
    });
}

#[test]
fn a_writer_waiting_longer_than_lock_timeout_fails_with_the_reason() {
    let store = open("?options=-c%20lock_timeout%3D300ms");
    while_a_transaction_is_open(&store, true, || {
        let error = store
            .write(|tx| tx.instance_id())
            .expect_err("the writers' lock is held");
        assert!(
            error.to_string().contains("lock_timeout"),
            "the reason is named: {error}"
        );
    });
    store.write(|tx| tx.instance_id()).expect("free again");
}
