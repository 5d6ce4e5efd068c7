//! The embedded SQLite store (WAL mode): one writer connection, a small pool of readers.
//!
//! A CRM table `T` is the SQL table `t<T>`; each field `N` is three columns: the value
//! `f<N>`, its HLC time `h<N>` and the writing node `n<N>` (a local number from `nodes`).
//! A value written with the record's creation stamp (`base_hlc`, `base_node`) stores no
//! stamp of its own.

mod change_log;
mod migrations;
mod numbering;
mod records;
mod schema;
mod syncs;
mod users;

use crmsync_domain::store::change_buffer::ChangeBuffer;
use crmsync_domain::store::stored_row::{CountChanges, InsertShapes};
use crmsync_domain::store::{MetaTable, StoreResult};
use crmsync_domain::{DomainError, Store, StoreTx};
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use uuid::Uuid;

pub const DATABASE_FILE: &str = "crmsync.db";
const MAX_IDLE_READERS: usize = 8;
/// The writer connection's page cache: the pages a sync's packet or an import batch
/// dirties stay in it. Larger bought no speed (writes append at the tables' ends; other
/// pages come from the OS cache) and cost its whole size in memory on a large database:
/// 64 MiB measured 50 MiB more peak memory per process, at the same speed.
pub const WRITER_CACHE_KIB: u32 = 16 * 1024;

pub struct SqliteStore {
    path: PathBuf,
    writer: Mutex<Connection>,
    readers: Mutex<Vec<Connection>>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database in `dir` and applies pending migrations.
    pub fn open(dir: &Path) -> Result<SqliteStore, DomainError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| DomainError::Store(format!("cannot create {}: {e}", dir.display())))?;
        let path = dir.join(DATABASE_FILE);
        keep_private(dir, &path);
        let mut writer = connect(&path)?;
        writer
            .execute_batch(&format!("PRAGMA cache_size = -{WRITER_CACHE_KIB}"))
            .map_err(sql_error)?;
        migrations::apply(&mut writer)?;
        Ok(SqliteStore {
            path,
            writer: Mutex::new(writer),
            readers: Mutex::new(Vec::new()),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes a consistent copy of the database to `target` (which must not exist), while
    /// the instance keeps running.
    pub fn backup_to(&self, target: &Path) -> Result<(), DomainError> {
        if target.exists() {
            return Err(DomainError::Conflict(format!(
                "{} exists already",
                target.display()
            )));
        }
        let target = target
            .to_str()
            .ok_or_else(|| DomainError::invalid("the backup path is not valid UTF-8"))?;
        let conn = connect(&self.path)?;
        conn.execute("VACUUM INTO ?1", [target])
            .map_err(sql_error)?;
        Ok(())
    }
}

fn connect(path: &Path) -> Result<Connection, DomainError> {
    let conn = Connection::open(path).map_err(sql_error)?;
    conn.execute_batch(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = NORMAL;
         PRAGMA busy_timeout = 10000;
         PRAGMA foreign_keys = OFF;",
    )
    .map_err(sql_error)?;
    records::register_functions(&conn)?;
    // A packet's merge alone uses a dozen statements (lookups, insert shapes, the change
    // log's batches): more than rusqlite's default 16 would be prepared again and again.
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

pub(crate) fn sql_error(e: rusqlite::Error) -> DomainError {
    DomainError::Store(e.to_string())
}

impl Store for SqliteStore {
    fn read<T>(&self, f: impl FnOnce(&mut dyn StoreTx) -> StoreResult<T>) -> StoreResult<T> {
        let pooled = self.readers.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let mut conn = match pooled {
            Some(conn) => conn,
            None => connect(&self.path)?,
        };
        let result = {
            let tx = conn.transaction().map_err(sql_error)?;
            let mut store_tx = SqliteTx::new(tx);
            let result = f(&mut store_tx);
            // A read transaction has nothing to keep; dropping it rolls back.
            drop(store_tx);
            result
        };
        let mut readers = self.readers.lock().unwrap_or_else(|p| p.into_inner());
        if readers.len() < MAX_IDLE_READERS {
            readers.push(conn);
        }
        result
    }

    fn write<T>(&self, f: impl FnOnce(&mut dyn StoreTx) -> StoreResult<T>) -> StoreResult<T> {
        let mut conn = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql_error)?;
        let mut store_tx = SqliteTx::new(tx);
        let value = f(&mut store_tx)?;
        store_tx.commit()?;
        Ok(value)
    }
}

/// One transaction; implements the domain's `StoreTx`.
pub struct SqliteTx<'c> {
    tx: Transaction<'c>,
    /// Node uuid ↔ local number, loaded on first use within this transaction.
    nodes: Option<HashMap<Uuid, i64>>,
    node_uids: HashMap<i64, Uuid>,
    insert_sql: InsertShapes,
    /// A record's SELECT by table and condition, likewise.
    select_sql: HashMap<(i64, &'static str), std::rc::Rc<str>>,
    /// Change-log entries not written yet (see `change_log`).
    log: ChangeBuffer,
    count_changes: CountChanges,
}

impl<'c> SqliteTx<'c> {
    fn new(tx: Transaction<'c>) -> Self {
        SqliteTx {
            tx,
            nodes: None,
            node_uids: HashMap::new(),
            insert_sql: InsertShapes::default(),
            select_sql: HashMap::new(),
            log: ChangeBuffer::default(),
            count_changes: CountChanges::default(),
        }
    }

    /// Commits with what the transaction keeps back until then: its change-log entries
    /// and its tables' record counts.
    fn commit(mut self) -> StoreResult<()> {
        self.flushed_log()?;
        records::flush_counts(&mut self)?;
        self.tx.commit().map_err(sql_error)
    }

    fn load_nodes(&mut self) -> StoreResult<()> {
        if self.nodes.is_some() {
            return Ok(());
        }
        let mut stmt = self
            .tx
            .prepare_cached("SELECT id, uid FROM nodes")
            .map_err(sql_error)?;
        let rows = stmt
            .query_map([], |row| {
                Ok((row.get::<_, i64>(0)?, row.get::<_, Vec<u8>>(1)?))
            })
            .map_err(sql_error)?;
        let mut nodes = HashMap::new();
        for row in rows {
            let (id, bytes) = row.map_err(sql_error)?;
            let uid = Uuid::from_slice(&bytes).map_err(|e| DomainError::Store(e.to_string()))?;
            nodes.insert(uid, id);
            self.node_uids.insert(id, uid);
        }
        drop(stmt);
        self.nodes = Some(nodes);
        Ok(())
    }

    /// The local number of a node, registering it on first sight.
    pub(crate) fn node_id(&mut self, uid: Uuid) -> StoreResult<i64> {
        self.load_nodes()?;
        if let Some(id) = self.nodes.as_ref().and_then(|n| n.get(&uid)) {
            return Ok(*id);
        }
        self.tx
            .execute(
                "INSERT INTO nodes (uid) VALUES (?1)",
                params![uid.as_bytes().as_slice()],
            )
            .map_err(sql_error)?;
        let id = self.tx.last_insert_rowid();
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

impl MetaTable for SqliteTx<'_> {
    fn meta(&mut self, key: &str) -> StoreResult<Option<String>> {
        self.tx
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()
            .map_err(sql_error)
    }

    fn set_meta(&mut self, key: &str, value: &str) -> StoreResult<()> {
        self.tx
            .execute(
                "INSERT INTO meta (key, value) VALUES (?1, ?2)
                 ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                params![key, value],
            )
            .map_err(sql_error)?;
        Ok(())
    }
}

/// Closes a data folder (0700) and its database files (0600) that an older version or a
/// copy left readable by other local users. Best effort: a file system without Unix modes
/// keeps what it has.
fn keep_private(dir: &Path, database: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let set = |path: &Path, mode: u32| {
        let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode));
    };
    set(dir, 0o700);
    for suffix in ["", "-wal", "-shm"] {
        let mut name = database.as_os_str().to_owned();
        name.push(suffix);
        let file = Path::new(&name);
        if file.exists() {
            set(file, 0o600);
        }
    }
}
