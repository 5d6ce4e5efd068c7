//! The store an instance runs on, chosen at start (`--database`): the embedded SQLite file
//! in its data folder (the default, nothing to install) or a PostgreSQL database. One enum,
//! so nothing above it is generic over the store.

use crmsync_domain::store::StoreResult;
use crmsync_domain::{DomainError, Store, StoreTx};
use crmsync_store_postgres::PgStore;
use crmsync_store_sqlite::SqliteStore;
use std::path::{Path, PathBuf};

/// Where an instance's database is. (Its `Debug` is `shown`: no password in a log.)
#[derive(Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    /// The folder holding `crmsync.db`.
    Sqlite(PathBuf),
    /// `postgres://USER[:PASSWORD]@HOST[:PORT]/DB`.
    Postgres(String),
}

impl DatabaseUrl {
    /// `sqlite` (the file in `data_dir`), `sqlite:DIR`, or a `postgres://` / `postgresql://`
    /// URL.
    pub fn parse(text: &str, data_dir: &Path) -> Result<DatabaseUrl, DomainError> {
        let text = text.trim();
        if text == "sqlite" || text.is_empty() {
            return Ok(DatabaseUrl::Sqlite(data_dir.to_path_buf()));
        }
        if let Some(dir) = text.strip_prefix("sqlite:") {
            return match dir.is_empty() {
                true => Ok(DatabaseUrl::Sqlite(data_dir.to_path_buf())),
                false => Ok(DatabaseUrl::Sqlite(PathBuf::from(dir))),
            };
        }
        if text.starts_with("postgres://") || text.starts_with("postgresql://") {
            return Ok(DatabaseUrl::Postgres(text.to_string()));
        }
        // Not echoed: a mistyped URL may hold a password.
        Err(DomainError::invalid(
            "--database is not a database: give `sqlite`, `sqlite:DIR` or \
             `postgres://USER@HOST:PORT/DB`",
        ))
    }

    /// How to name it to a person: the URL without its password.
    pub fn shown(&self) -> String {
        match self {
            DatabaseUrl::Sqlite(dir) => {
                format!(
                    "sqlite:{}",
                    dir.join(crmsync_store_sqlite::DATABASE_FILE).display()
                )
            }
            DatabaseUrl::Postgres(url) => {
                let (address, query) = match url.split_once('?') {
                    Some((address, query)) => (address, Some(query)),
                    None => (url.as_str(), None),
                };
                let mut shown = match (address.find("://"), address.rfind('@')) {
                    (Some(scheme), Some(at)) if address[scheme + 3..at].contains(':') => {
                        let user_end = scheme + 3 + address[scheme + 3..at].find(':').unwrap_or(0);
                        format!("{}:***{}", &address[..user_end], &address[at..])
                    }
                    _ => address.to_string(),
                };
                if let Some(query) = query {
                    let parameters: Vec<String> = query
                        .split('&')
                        .map(|p| match p.split_once('=') {
                            Some((key, _)) if key.eq_ignore_ascii_case("password") => {
                                format!("{key}=***")
                            }
                            _ => p.to_string(),
                        })
                        .collect();
                    shown = format!("{shown}?{}", parameters.join("&"));
                }
                shown
            }
        }
    }
}

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.shown())
    }
}

pub enum Database {
    Sqlite(SqliteStore),
    Postgres(PgStore),
}

impl Database {
    /// Opens (creating or migrating) the database at `url`.
    pub fn open(url: &DatabaseUrl) -> Result<Database, DomainError> {
        match url {
            DatabaseUrl::Sqlite(dir) => SqliteStore::open(dir).map(Database::Sqlite),
            DatabaseUrl::Postgres(url) => {
                outside_async(|| PgStore::open(url)).map(Database::Postgres)
            }
        }
    }

    /// Whether an instance was ever started there (offline commands need one).
    pub fn exists(url: &DatabaseUrl) -> Result<bool, DomainError> {
        match url {
            DatabaseUrl::Sqlite(dir) => Ok(dir.join(crmsync_store_sqlite::DATABASE_FILE).is_file()),
            DatabaseUrl::Postgres(url) => outside_async(|| PgStore::has_instance(url)),
        }
    }

    /// A consistent copy of the database into the folder `out` (created already).
    pub fn backup_to(&self, out: &Path) -> Result<(), DomainError> {
        match self {
            Database::Sqlite(store) => {
                store.backup_to(&out.join(crmsync_store_sqlite::DATABASE_FILE))
            }
            Database::Postgres(_) => Err(DomainError::invalid(
                "this instance's database is PostgreSQL: back it up with `pg_dump -Fc` (and \
                 restore with `pg_restore`); `crmsync backup` copies an embedded SQLite \
                 database only",
            )),
        }
    }
}

impl Database {
    /// Whether other crmsync processes may serve this database too (PostgreSQL): then a
    /// sync runs where its lease is held, and state that answers for the sync lives in
    /// the database, not in one process's memory. An embedded SQLite file has one server.
    pub fn is_shared(&self) -> bool {
        matches!(self, Database::Postgres(_))
    }

    /// The lease under which this process may run sync `sync_id` (see `SyncLease`).
    pub fn sync_lease(&self, sync_id: i64) -> Result<SyncLease, DomainError> {
        match self {
            Database::Sqlite(_) => Ok(SyncLease::Alone),
            Database::Postgres(store) => store
                .sync_lease(sync_id)
                .map(|lease| SyncLease::Shared(Box::new(lease))),
        }
    }

    /// Takes request number `seq` of the sealed HTTP channel of sync `sync_id` (key
    /// `key_id`) for good, for every process serving the database: false if it was taken
    /// before (a replay). Only a shared database keeps them; one process keeps its own.
    pub fn take_request_seq(
        &self,
        sync_id: i64,
        key_id: &str,
        seq: u64,
        now_ms: i64,
    ) -> Result<bool, DomainError> {
        match self {
            Database::Sqlite(_) => Err(DomainError::Store(
                "request numbers are kept in memory by the one process on this database".into(),
            )),
            Database::Postgres(store) => {
                outside_async(|| store.take_request_seq(sync_id, key_id, seq, now_ms))
            }
        }
    }

    /// Starts telling the other processes on this database what this one commits, and
    /// handing what they tell to `heard`; nothing to do on SQLite (no other process).
    pub fn neighbours(&self, heard: impl Fn(Announcement) + Send + 'static) -> Option<Neighbours> {
        match self {
            Database::Sqlite(_) => None,
            Database::Postgres(store) => Some(Neighbours {
                announcer: store.announcer(),
                _listening: store.listen(heard),
            }),
        }
    }
}

pub use crmsync_store_postgres::Announcement;

/// The other processes serving this database: told of this one's commits and settings
/// changes, heard for theirs (until dropped).
pub struct Neighbours {
    announcer: crmsync_store_postgres::Announcer,
    _listening: crmsync_store_postgres::Listening,
}

impl Neighbours {
    /// Never waits: sent from a thread of its own.
    pub fn announce(&self, what: Announcement) {
        self.announcer.announce(what);
    }
}

/// Which process runs a sync (its active loop, its folder rounds): the one holding this.
/// On SQLite one server owns the data folder, so it always holds it; on PostgreSQL it is
/// an advisory lock that other processes on the database wait for.
pub enum SyncLease {
    Alone,
    Shared(Box<crmsync_store_postgres::SyncLease>),
}

impl SyncLease {
    /// Takes the lease if no process holds it; true while held.
    pub fn try_take(&mut self) -> Result<bool, DomainError> {
        match self {
            SyncLease::Alone => Ok(true),
            SyncLease::Shared(lease) => outside_async(|| lease.try_take()),
        }
    }

    /// Whether it is still held (a lost database connection loses it).
    pub fn is_held(&mut self) -> bool {
        match self {
            SyncLease::Alone => true,
            SyncLease::Shared(lease) => outside_async(|| lease.is_held()),
        }
    }

    /// Whether it can be lost at all (only a shared database's lease can).
    pub fn can_be_lost(&self) -> bool {
        matches!(self, SyncLease::Shared(_))
    }
}

/// The PostgreSQL client blocks on a runtime of its own, which must not start on a thread
/// that is driving async tasks: there, the call is moved off the worker first (as any
/// blocking call should be). Blocking threads and plain threads call straight through.
fn outside_async<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

impl Store for Database {
    fn read<T>(&self, f: impl FnOnce(&mut dyn StoreTx) -> StoreResult<T>) -> StoreResult<T> {
        match self {
            Database::Sqlite(store) => store.read(f),
            Database::Postgres(store) => outside_async(|| store.read(f)),
        }
    }

    fn write<T>(&self, f: impl FnOnce(&mut dyn StoreTx) -> StoreResult<T>) -> StoreResult<T> {
        match self {
            Database::Sqlite(store) => store.write(f),
            Database::Postgres(store) => outside_async(|| store.write(f)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_is_named_by_kind_and_place_and_shown_without_its_password() {
        let data = Path::new("/srv/crm");
        let parse = |text| DatabaseUrl::parse(text, data);
        assert_eq!(parse("sqlite").unwrap(), DatabaseUrl::Sqlite(data.into()));
        assert_eq!(parse("sqlite:").unwrap(), DatabaseUrl::Sqlite(data.into()));
        assert_eq!(
            parse("sqlite:/var/db").unwrap(),
            DatabaseUrl::Sqlite("/var/db".into())
        );
        let url = "postgres://crm:s3cret@db.local:5433/crm";
        assert_eq!(parse(url).unwrap(), DatabaseUrl::Postgres(url.into()));
        assert_eq!(
            parse(url).unwrap().shown(),
            "postgres://crm:***@db.local:5433/crm"
        );
        let bare = "postgresql://crm@db.local/crm";
        assert_eq!(parse(bare).unwrap().shown(), bare);
        let query = "postgres://crm@db.local/crm?sslmode=disable&password=s3cret";
        let shown = parse(query).unwrap().shown();
        assert_eq!(
            shown,
            "postgres://crm@db.local/crm?sslmode=disable&password=***"
        );
        assert!(!format!("{:?}", parse(url).unwrap()).contains("s3cret"));
        for bad in [
            "mysql://x",
            "postgres",
            "/srv/crm/crmsync.db",
            "postgre://u:s3cret@h/d",
        ] {
            let error = parse(bad).unwrap_err().to_string();
            assert!(
                error.contains("postgres://USER@HOST:PORT/DB"),
                "{bad}: {error}"
            );
            assert!(!error.contains("s3cret"), "{error}");
        }
    }
}
