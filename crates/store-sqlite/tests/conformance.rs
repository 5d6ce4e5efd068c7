//! The store conformance suite (`crmsync-store-conformance`) on SQLite: each behaviour on
//! a database in a fresh temporary folder.

use crmsync_store_conformance::Backend;
use crmsync_store_sqlite::SqliteStore;

struct Sqlite(tempfile::TempDir);

impl Backend for Sqlite {
    type Store = SqliteStore;

    fn new() -> Self {
        Sqlite(tempfile::tempdir().unwrap())
    }

    fn open(&self) -> SqliteStore {
        SqliteStore::open(self.0.path()).unwrap()
    }
}

crmsync_store_conformance::conformance_suite!(Sqlite);
