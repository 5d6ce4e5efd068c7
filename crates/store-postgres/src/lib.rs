//! The PostgreSQL store: the same model as the SQLite store (see store-sqlite) in a
//! PostgreSQL database — a CRM table `T` is the table `t<T>`, each field `N` three columns
//! (`f<N>` the value, `h<N>` its HLC time, `n<N>` the writing node).
//!
//! Writers take one transaction-level advisory lock first, so the change log is numbered
//! without gaps by one writer at a time — also across several crmsync processes on one
//! database. Readers see a consistent snapshot (REPEATABLE READ, read only).

mod change_log;
mod channel_requests;
mod lease;
mod listen;
mod migrations;
mod numbering;
mod pool;
mod records;
mod schema;
mod syncs;
mod users;

pub use lease::SyncLease;
pub use listen::{Announcement, Announcer, Listening};

use crmsync_domain::store::change_buffer::ChangeBuffer;
use crmsync_domain::store::stored_row::{CountChanges, InsertShapes};
use crmsync_domain::store::{MetaTable, StoreResult};
use crmsync_domain::{DomainError, Store, StoreTx};
use hashlink::LruCache;
use pool::{Connection, Pool};
use postgres::types::{FromSql, ToSql};
use postgres::{IsolationLevel, Row, Statement};
use std::collections::HashMap;
use uuid::Uuid;

pub use pool::{PoolLimits, STATEMENT_CACHE_CAPACITY};

/// The advisory lock every write transaction holds (any number both processes agree on).
const WRITER_LOCK: i64 = 0x0063_726d_7379_6e63; // "crmsync"

pub struct PgStore {
    pool: Pool,
}

impl PgStore {
    /// Connects to `url` (`postgres://USER@HOST:PORT/DB`, with the driver's parameters
    /// and crmsync's `pool_max_connections`, `pool_timeout`) and applies pending migrations.
    pub fn open(url: &str) -> Result<PgStore, DomainError> {
        let (config, limits) = pool::parse_url(url)?;
        let store = PgStore {
            pool: Pool::new(config, limits),
        };
        let mut conn = store.pool.get()?;
        migrations::apply(&mut conn.client)?;
        drop(conn);
        Ok(store)
    }

    /// Whether an instance was ever started in the database at `url` (nothing is created).
    pub fn has_instance(url: &str) -> Result<bool, DomainError> {
        let (config, limits) = pool::parse_url(url)?;
        let pool = Pool::new(config, limits);
        let mut conn = pool.get()?;
        let row = conn
            .client
            .query_one("SELECT to_regclass('schema_migrations') IS NOT NULL", &[])
            .map_err(pg_error)?;
        get(&row, 0)
    }

    /// The most prepared statements an idle connection keeps (for tests of the bound).
    #[doc(hidden)]
    pub fn most_cached_statements(&self) -> usize {
        self.pool.most_cached_statements()
    }
}

pub(crate) fn pg_error(e: postgres::Error) -> DomainError {
    match e.as_db_error() {
        Some(db) => {
            let code = db.code();
            let why = if *code == postgres::error::SqlState::LOCK_NOT_AVAILABLE {
                " (waited longer than lock_timeout for another transaction)"
            } else if *code == postgres::error::SqlState::QUERY_CANCELED {
                " (ran longer than statement_timeout)"
            } else {
                ""
            };
            DomainError::Store(format!("{}: {}{why}", code.code(), db.message()))
        }
        None => DomainError::Store(e.to_string()),
    }
}

impl Store for PgStore {
    fn read<T>(&self, f: impl FnOnce(&mut dyn StoreTx) -> StoreResult<T>) -> StoreResult<T> {
        let mut conn = self.pool.get()?;
        let Connection { client, statements } = &mut *conn;
        let tx = client
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .map_err(pg_error)?;
        let mut store_tx = PgTx::new(tx, statements);
        // A read transaction has nothing to keep; dropping it rolls back.
        f(&mut store_tx)
    }

    fn write<T>(&self, f: impl FnOnce(&mut dyn StoreTx) -> StoreResult<T>) -> StoreResult<T> {
        let mut conn = self.pool.get()?;
        let Connection { client, statements } = &mut *conn;
        let tx = client.transaction().map_err(pg_error)?;
        let mut store_tx = PgTx::new(tx, statements);
        store_tx.execute("SELECT pg_advisory_xact_lock($1)", &[&WRITER_LOCK])?;
        let value = f(&mut store_tx)?;
        store_tx.commit()?;
        Ok(value)
    }
}

/// One transaction; implements the domain's `StoreTx`.
pub struct PgTx<'c> {
    tx: postgres::Transaction<'c>,
    statements: &'c mut LruCache<String, Statement>,
    /// The first statement that failed: PostgreSQL has aborted the transaction, so a
    /// COMMIT would roll it back while reporting success.
    failed: Option<String>,
    /// Node uuid ↔ local number, loaded on first use within this transaction.
    nodes: Option<HashMap<Uuid, i64>>,
    node_uids: HashMap<i64, Uuid>,
    /// Change-log entries not written yet (see `change_log`).
    log: ChangeBuffer,
    insert_sql: InsertShapes,
    count_changes: CountChanges,
}

type Params<'p> = &'p [&'p (dyn ToSql + Sync)];

impl<'c> PgTx<'c> {
    fn new(tx: postgres::Transaction<'c>, statements: &'c mut LruCache<String, Statement>) -> Self {
        PgTx {
            tx,
            statements,
            failed: None,
            nodes: None,
            node_uids: HashMap::new(),
            log: ChangeBuffer::default(),
            insert_sql: InsertShapes::default(),
            count_changes: CountChanges::default(),
        }
    }

    /// Commits with what the transaction keeps back until then: its change-log entries
    /// and its tables' record counts.
    /// Refuses (and rolls back) a transaction in which a statement failed, even if the
    /// caller went on after the error.
    fn commit(mut self) -> StoreResult<()> {
        if let Some(failed) = self.failed.take() {
            return Err(DomainError::Store(format!(
                "not committed: a statement failed in this transaction ({failed}), so \
                 PostgreSQL rolled all of it back"
            )));
        }
        self.flushed_log()?;
        records::flush_counts(&mut self)?;
        self.tx.commit().map_err(pg_error)
    }

    /// `result` as the store's result, remembering a failure for `commit`.
    fn checked<T>(&mut self, result: Result<T, postgres::Error>) -> StoreResult<T> {
        result.map_err(|e| {
            // Only the server's errors abort the transaction (not a row count the client
            // did not expect).
            let aborted = e.as_db_error().is_some() || e.is_closed();
            let error = pg_error(e);
            if aborted && self.failed.is_none() {
                self.failed = Some(error.to_string());
            }
            error
        })
    }

    /// `sql` prepared once per connection (while among its most recently used).
    pub(crate) fn statement(&mut self, sql: &str) -> StoreResult<Statement> {
        if let Some(statement) = self.statements.get(sql) {
            return Ok(statement.clone());
        }
        let prepared = self.tx.prepare(sql);
        let statement = self.checked(prepared)?;
        self.statements.insert(sql.to_string(), statement.clone());
        Ok(statement)
    }

    pub(crate) fn query(&mut self, sql: &str, params: Params<'_>) -> StoreResult<Vec<Row>> {
        let statement = self.statement(sql)?;
        let result = self.tx.query(&statement, params);
        self.checked(result)
    }

    pub(crate) fn query_opt(&mut self, sql: &str, params: Params<'_>) -> StoreResult<Option<Row>> {
        let statement = self.statement(sql)?;
        let result = self.tx.query_opt(&statement, params);
        self.checked(result)
    }

    pub(crate) fn query_one(&mut self, sql: &str, params: Params<'_>) -> StoreResult<Row> {
        let statement = self.statement(sql)?;
        let result = self.tx.query_one(&statement, params);
        self.checked(result)
    }

    pub(crate) fn execute(&mut self, sql: &str, params: Params<'_>) -> StoreResult<u64> {
        let statement = self.statement(sql)?;
        let result = self.tx.execute(&statement, params);
        self.checked(result)
    }

    /// Statements without parameters, unprepared (schema changes).
    pub(crate) fn batch(&mut self, sql: &str) -> StoreResult<()> {
        let result = self.tx.batch_execute(sql);
        self.checked(result)
    }

    fn load_nodes(&mut self) -> StoreResult<()> {
        if self.nodes.is_some() {
            return Ok(());
        }
        let mut nodes = HashMap::new();
        for row in self.query("SELECT id, uid FROM nodes", &[])? {
            let (id, uid): (i64, Uuid) = (get(&row, 0)?, get(&row, 1)?);
            nodes.insert(uid, id);
            self.node_uids.insert(id, uid);
        }
        self.nodes = Some(nodes);
        Ok(())
    }

    /// The local number of a node, registering it on first sight.
    pub(crate) fn node_id(&mut self, uid: Uuid) -> StoreResult<i64> {
        self.load_nodes()?;
        if let Some(id) = self.nodes.as_ref().and_then(|n| n.get(&uid)) {
            return Ok(*id);
        }
        let row = self.query_one("INSERT INTO nodes (uid) VALUES ($1) RETURNING id", &[&uid])?;
        let id: i64 = get(&row, 0)?;
        self.nodes.get_or_insert_default().insert(uid, id);
        self.node_uids.insert(id, uid);
        Ok(id)
    }

    pub(crate) fn node_uid(&mut self, id: i64) -> StoreResult<Uuid> {
        self.load_nodes()?;
        self.node_uids
            .get(&id)
            .copied()
            .ok_or_else(|| DomainError::Store(format!("unknown node {id}")))
    }
}

/// Column `idx` of `row`, as `T`.
pub(crate) fn get<'r, T: FromSql<'r>>(row: &'r Row, idx: usize) -> StoreResult<T> {
    row.try_get(idx).map_err(pg_error)
}

impl MetaTable for PgTx<'_> {
    fn meta(&mut self, key: &str) -> StoreResult<Option<String>> {
        self.query_opt("SELECT value FROM meta WHERE key = $1", &[&key])?
            .map(|row| get(&row, 0))
            .transpose()
    }

    fn set_meta(&mut self, key: &str, value: &str) -> StoreResult<()> {
        self.execute(
            "INSERT INTO meta (key, value) VALUES ($1, $2)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            &[&key, &value],
        )?;
        Ok(())
    }
}
