//! The store conformance suite (`crmsync-store-conformance`) on PostgreSQL: each behaviour
//! on a fresh database of its own, in one throw-away server the test binary starts
//! ([`TestCluster::shared`]) and that goes, with its databases, when the binary exits.

use crmsync_store_conformance::Backend;
use crmsync_store_conformance::postgres_cluster::TestCluster;
use crmsync_store_postgres::PgStore;

struct Postgres {
    url: String,
}

impl Backend for Postgres {
    type Store = PgStore;

    fn new() -> Self {
        Postgres {
            url: TestCluster::shared().create_database(),
        }
    }

    fn open(&self) -> PgStore {
        PgStore::open(&self.url).unwrap()
    }
}

crmsync_store_conformance::conformance_suite!(Postgres);
