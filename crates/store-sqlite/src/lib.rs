//! The embedded SQLite store (WAL mode): one writer connection, a small pool of readers.
//!
//! A CRM table `T` is the SQL table `t<T>`; each field `N` is three columns: the value
//! `f<N>`, its HLC time `h<N>` and the writing node `n<N>` (a local number from `nodes`).
//! A value written with the record's creation stamp (`base_hlc`, `base_node`) stores no
//! stamp of its own.

mod migrations;
mod numbering;
mod records;
mod schema;
mod syncs;

use crmsync_domain::clock::Hlc;
use crmsync_domain::store::{NewUser, StoreResult, UserUpdate};
use crmsync_domain::web_session::WebSession;
use crmsync_domain::{DomainError, Role, Store, StoreTx, User, UserId};
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
        records::flush_changes(&mut store_tx)?;
        records::flush_counts(&mut store_tx)?;
        store_tx.tx.commit().map_err(sql_error)?;
        Ok(value)
    }
}

/// One transaction; implements the domain's `StoreTx`.
pub struct SqliteTx<'c> {
    tx: Transaction<'c>,
    /// Node uuid ↔ local number, loaded on first use within this transaction.
    nodes: Option<HashMap<Uuid, i64>>,
    node_uids: HashMap<i64, Uuid>,
    /// INSERT statements by table and shape: built once per transaction, not once per row.
    insert_sql: HashMap<i64, Vec<(records::InsertShape, std::rc::Rc<str>)>>,
    /// A record's SELECT by table and condition, likewise.
    select_sql: HashMap<(i64, &'static str), std::rc::Rc<str>>,
    /// The next change-log seq; this transaction holds the only write lock.
    next_seq: Option<i64>,
    pending_changes: Vec<records::PendingChange>,
    last_origin: Option<std::rc::Rc<String>>,
    last_created_fields: Option<(Vec<i64>, std::rc::Rc<String>)>,
    /// Changes of each table's (active, deleted) counts, written before commit.
    count_changes: HashMap<i64, (i64, i64)>,
}

impl<'c> SqliteTx<'c> {
    fn new(tx: Transaction<'c>) -> Self {
        SqliteTx {
            tx,
            nodes: None,
            node_uids: HashMap::new(),
            insert_sql: HashMap::new(),
            select_sql: HashMap::new(),
            next_seq: None,
            pending_changes: Vec::new(),
            last_origin: None,
            last_created_fields: None,
            count_changes: HashMap::new(),
        }
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

    pub(crate) fn next_seq(&mut self) -> StoreResult<i64> {
        let seq = match self.next_seq {
            Some(seq) => seq,
            None => self
                .tx
                .query_row("SELECT COALESCE(MAX(seq), 0) + 1 FROM changes", [], |r| {
                    r.get(0)
                })
                .map_err(sql_error)?,
        };
        self.next_seq = Some(seq + 1);
        Ok(seq)
    }

    fn meta(&self, key: &str) -> StoreResult<Option<String>> {
        self.tx
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()
            .map_err(sql_error)
    }

    fn set_meta(&self, key: &str, value: &str) -> StoreResult<()> {
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

fn user_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<User> {
    let role: String = row.get(3)?;
    Ok(User {
        id: row.get(0)?,
        login: row.get(1)?,
        full_name: row.get(2)?,
        role: Role::parse(&role).unwrap_or(Role::User),
        active: row.get(4)?,
    })
}

const USER_COLUMNS: &str = "id, login, full_name, role, active";

impl StoreTx for SqliteTx<'_> {
    fn instance_id(&mut self) -> StoreResult<Uuid> {
        let text = self
            .meta("instance_id")?
            .ok_or_else(|| DomainError::Store("instance id missing".into()))?;
        Uuid::parse_str(&text).map_err(|e| DomainError::Store(e.to_string()))
    }

    fn last_hlc(&mut self) -> StoreResult<Hlc> {
        Ok(Hlc(self
            .meta("last_hlc")?
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)))
    }

    fn set_last_hlc(&mut self, hlc: Hlc) -> StoreResult<()> {
        self.set_meta("last_hlc", &hlc.0.to_string())
    }

    fn tables(&mut self) -> StoreResult<Vec<crmsync_domain::Table>> {
        schema::tables(&self.tx)
    }

    fn create_table(&mut self, name: &str) -> StoreResult<i64> {
        schema::create_table(&self.tx, name)
    }

    fn rename_table(&mut self, id: i64, name: &str) -> StoreResult<()> {
        schema::rename_table(&self.tx, id, name)
    }

    fn drop_table(&mut self, id: i64) -> StoreResult<()> {
        schema::drop_table(&self.tx, id)
    }

    fn create_field(
        &mut self,
        table_id: i64,
        name: &str,
        field_type: crmsync_domain::FieldType,
        options: &crmsync_domain::FieldOptions,
    ) -> StoreResult<i64> {
        schema::create_field(&self.tx, table_id, name, field_type, options)
    }

    fn update_field(
        &mut self,
        no: i64,
        name: &str,
        options: &crmsync_domain::FieldOptions,
    ) -> StoreResult<()> {
        schema::update_field(&self.tx, no, name, options)
    }

    fn drop_field(&mut self, table_id: i64, no: i64) -> StoreResult<()> {
        schema::drop_field(&self.tx, table_id, no)
    }

    fn users(&mut self) -> StoreResult<Vec<User>> {
        let mut stmt = self
            .tx
            .prepare_cached(&format!("SELECT {USER_COLUMNS} FROM users ORDER BY id"))
            .map_err(sql_error)?;
        let users = stmt
            .query_map([], user_from_row)
            .map_err(sql_error)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(sql_error)?;
        Ok(users)
    }

    fn user_credentials(&mut self, login: &str) -> StoreResult<Option<(User, String)>> {
        self.tx
            .query_row(
                &format!("SELECT {USER_COLUMNS}, password_hash FROM users WHERE login = ?1"),
                [login],
                |row| Ok((user_from_row(row)?, row.get(5)?)),
            )
            .optional()
            .map_err(sql_error)
    }

    fn insert_user(&mut self, user: &NewUser<'_>) -> StoreResult<UserId> {
        self.tx
            .execute(
                "INSERT INTO users (login, full_name, role, password_hash) VALUES (?1, ?2, ?3, ?4)",
                params![
                    user.login,
                    user.full_name,
                    user.role.as_str(),
                    user.password_hash
                ],
            )
            .map_err(sql_error)?;
        Ok(self.tx.last_insert_rowid())
    }

    fn update_user(&mut self, id: UserId, update: &UserUpdate) -> StoreResult<()> {
        let tx = &self.tx;
        let set = |column: &str, value: &dyn rusqlite::ToSql| {
            tx.execute(
                &format!("UPDATE users SET {column} = ?1 WHERE id = ?2"),
                params![value, id],
            )
            .map(|_| ())
            .map_err(sql_error)
        };
        if let Some(v) = &update.full_name {
            set("full_name", v)?;
        }
        if let Some(v) = update.role {
            set("role", &v.as_str())?;
        }
        if let Some(v) = &update.password_hash {
            set("password_hash", v)?;
        }
        if let Some(v) = update.active {
            set("active", &v)?;
        }
        Ok(())
    }

    fn save_web_session(&mut self, token_hash: &[u8; 32], session: &WebSession) -> StoreResult<()> {
        self.tx
            .execute(
                "INSERT OR REPLACE INTO web_sessions (token_hash, user_id, csrf, credentials, role, last_seen_ms) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    &token_hash[..],
                    session.user_id,
                    session.csrf,
                    session.credentials.as_ref().map(|c| &c[..]),
                    session.role.as_str(),
                    session.last_seen_ms
                ],
            )
            .map(|_| ())
            .map_err(sql_error)
    }

    fn web_session(&mut self, token_hash: &[u8; 32]) -> StoreResult<Option<WebSession>> {
        self.tx
            .query_row(
                "SELECT user_id, csrf, credentials, role, last_seen_ms FROM web_sessions WHERE token_hash = ?1",
                [&token_hash[..]],
                |row| {
                    let credentials: Option<Vec<u8>> = row.get(2)?;
                    let role: String = row.get(3)?;
                    Ok(WebSession {
                        user_id: row.get(0)?,
                        csrf: row.get(1)?,
                        // A stamp of another length than written is no stamp: the session
                        // then ends at the comparison.
                        credentials: credentials.and_then(|c| c.try_into().ok()),
                        role: Role::parse(&role).unwrap_or(Role::User),
                        last_seen_ms: row.get(4)?,
                    })
                },
            )
            .optional()
            .map_err(sql_error)
    }

    fn delete_web_session(&mut self, token_hash: &[u8; 32]) -> StoreResult<()> {
        self.tx
            .execute(
                "DELETE FROM web_sessions WHERE token_hash = ?1",
                [&token_hash[..]],
            )
            .map(|_| ())
            .map_err(sql_error)
    }

    fn expire_web_sessions(&mut self, before_ms: i64) -> StoreResult<usize> {
        self.tx
            .execute(
                "DELETE FROM web_sessions WHERE last_seen_ms < ?1",
                [before_ms],
            )
            .map_err(sql_error)
    }

    fn record(
        &mut self,
        table: &crmsync_domain::Table,
        id: i64,
    ) -> StoreResult<Option<crmsync_domain::record::StoredRecord>> {
        records::record(self, table, id)
    }

    fn record_status(
        &mut self,
        table_id: i64,
        id: i64,
    ) -> StoreResult<Option<crmsync_domain::RecordStatus>> {
        records::record_status(&self.tx, table_id, id)
    }

    fn insert_record(
        &mut self,
        table: &crmsync_domain::Table,
        row: &crmsync_domain::record::NewRow,
        change: &crmsync_domain::Change,
    ) -> StoreResult<i64> {
        records::insert(self, table, row, change)
    }

    fn update_record(
        &mut self,
        table: &crmsync_domain::Table,
        update: &crmsync_domain::record::RowUpdate,
        change: &crmsync_domain::Change,
    ) -> StoreResult<()> {
        records::update(self, table, update, change)
    }

    fn list_records(
        &mut self,
        table: &crmsync_domain::Table,
        query: &crmsync_domain::RecordQuery,
    ) -> StoreResult<Vec<crmsync_domain::Record>> {
        records::list(&self.tx, table, query)
    }

    fn history(
        &mut self,
        table: &crmsync_domain::Table,
        record_id: i64,
    ) -> StoreResult<Vec<crmsync_domain::Change>> {
        records::flush_changes(self)?;
        records::history(&self.tx, table, record_id)
    }

    fn table_counts(
        &mut self,
        table: &crmsync_domain::Table,
    ) -> StoreResult<crmsync_domain::store::TableCounts> {
        records::counts(self, table)
    }

    fn last_change_seq(&mut self) -> StoreResult<i64> {
        records::flush_changes(self)?;
        records::last_seq(&self.tx)
    }

    fn changes_for_sync(
        &mut self,
        after: i64,
        limit: usize,
        filter: &crmsync_domain::record::SyncLogFilter,
    ) -> StoreResult<(Vec<crmsync_domain::record::LoggedChange>, i64)> {
        records::changes_for_sync(self, after, limit, filter)
    }

    fn count_changes_for_sync(
        &mut self,
        after: i64,
        filter: &crmsync_domain::record::SyncLogFilter,
    ) -> StoreResult<u64> {
        records::count_changes_for_sync(self, after, filter)
    }

    fn record_by_uid(
        &mut self,
        table: &crmsync_domain::Table,
        uid: Uuid,
    ) -> StoreResult<Option<crmsync_domain::record::StoredRecord>> {
        records::record_by_uid(self, table, uid)
    }

    fn records_by_ids(
        &mut self,
        table: &crmsync_domain::Table,
        ids: &[i64],
    ) -> StoreResult<Vec<crmsync_domain::record::StoredRecord>> {
        records::records_by_ids(self, table, ids)
    }

    fn uids_present(
        &mut self,
        table: &crmsync_domain::Table,
        uids: &[Uuid],
    ) -> StoreResult<std::collections::HashSet<Uuid>> {
        records::uids_present(&self.tx, table, uids)
    }

    fn record_uid(&mut self, table_id: i64, id: i64) -> StoreResult<Option<Uuid>> {
        records::record_uid(&self.tx, table_id, id)
    }

    fn syncs(&mut self) -> StoreResult<Vec<crmsync_domain::sync::SyncConfig>> {
        syncs::syncs(&self.tx)
    }

    fn insert_sync(&mut self, sync: &crmsync_domain::sync::SyncConfig) -> StoreResult<i64> {
        syncs::insert_sync(&self.tx, sync)
    }

    fn update_sync(&mut self, sync: &crmsync_domain::sync::SyncConfig) -> StoreResult<()> {
        syncs::update_sync(&self.tx, sync)
    }

    fn delete_sync(&mut self, id: i64) -> StoreResult<()> {
        syncs::delete_sync(&self.tx, id)
    }

    fn sync_fields(&mut self, sync_id: i64) -> StoreResult<Vec<crmsync_domain::sync::SyncField>> {
        syncs::sync_fields(&self.tx, sync_id)
    }

    fn insert_sync_field(&mut self, field: &crmsync_domain::sync::SyncField) -> StoreResult<i64> {
        syncs::insert_sync_field(&self.tx, field)
    }

    fn update_sync_field(&mut self, field: &crmsync_domain::sync::SyncField) -> StoreResult<()> {
        syncs::update_sync_field(&self.tx, field)
    }

    fn delete_sync_field(&mut self, id: i64) -> StoreResult<()> {
        syncs::delete_sync_field(&self.tx, id)
    }

    fn sync_tables(&mut self) -> StoreResult<Vec<crmsync_domain::sync::SyncTable>> {
        syncs::sync_tables(&self.tx)
    }

    fn insert_sync_table(&mut self, table: &crmsync_domain::sync::SyncTable) -> StoreResult<i64> {
        syncs::insert_sync_table(&self.tx, table)
    }

    fn delete_sync_table(&mut self, id: i64) -> StoreResult<()> {
        syncs::delete_sync_table(&self.tx, id)
    }

    fn sync_state(&mut self, sync_id: i64) -> StoreResult<crmsync_domain::sync::SyncState> {
        syncs::sync_state(&self.tx, sync_id)
    }

    fn save_sync_state(
        &mut self,
        sync_id: i64,
        state: &crmsync_domain::sync::SyncState,
    ) -> StoreResult<()> {
        syncs::save_sync_state(&self.tx, sync_id, state)
    }

    fn append_sync_log(&mut self, entry: &crmsync_domain::sync::SyncLogEntry) -> StoreResult<()> {
        syncs::append_sync_log(&self.tx, entry)
    }

    fn prune_sync_log(&mut self, before_ms: i64) -> StoreResult<usize> {
        syncs::prune_sync_log(&self.tx, before_ms)
    }

    fn save_pending_link(&mut self, link: &crmsync_domain::sync::PendingLink) -> StoreResult<()> {
        syncs::save_pending_link(&self.tx, link)
    }

    fn pending_links(
        &mut self,
        sync_id: i64,
    ) -> StoreResult<Vec<crmsync_domain::sync::PendingLink>> {
        syncs::pending_links(&self.tx, sync_id)
    }

    fn remove_pending_link(&mut self, link: &crmsync_domain::sync::PendingLink) -> StoreResult<()> {
        syncs::remove_pending_link(&self.tx, link)
    }

    fn hold(&mut self, held: &crmsync_domain::sync::HeldChange) -> StoreResult<()> {
        syncs::hold(&self.tx, held)
    }

    fn held(&mut self, sync_id: i64) -> StoreResult<Vec<crmsync_domain::sync::HeldChange>> {
        syncs::held(&self.tx, sync_id)
    }

    fn release_held(&mut self, sync_id: i64, id: i64) -> StoreResult<()> {
        syncs::release_held(&self.tx, sync_id, id)
    }

    fn sync_log(
        &mut self,
        sync_id: i64,
        after: i64,
        limit: usize,
    ) -> StoreResult<Vec<crmsync_domain::sync::SyncLogEntry>> {
        syncs::sync_log(&self.tx, sync_id, after, limit)
    }

    fn save_uid_pairs(
        &mut self,
        sync_id: i64,
        table_id: i64,
        pairs: &[(Uuid, Uuid)],
    ) -> StoreResult<()> {
        syncs::save_uid_pairs(&self.tx, sync_id, table_id, pairs)
    }

    fn uid_pairs(&mut self, sync_id: i64) -> StoreResult<Vec<(Uuid, Uuid)>> {
        syncs::uid_pairs(&self.tx, sync_id)
    }

    fn config_version(&mut self) -> StoreResult<i64> {
        syncs::config_version(&self.tx)
    }

    fn allocate_numbers(
        &mut self,
        table: &crmsync_domain::Table,
        field_no: i64,
        count: i64,
        start: i64,
    ) -> StoreResult<(i64, i64)> {
        numbering::allocate_numbers(&self.tx, table, field_no, count, start)
    }

    fn add_number_block(&mut self, field_no: i64, first: i64, last: i64) -> StoreResult<()> {
        numbering::add_number_block(&self.tx, field_no, first, last)
    }

    fn take_block_number(&mut self, field_no: i64) -> StoreResult<Option<i64>> {
        numbering::take_block_number(&self.tx, field_no)
    }

    fn block_numbers_left(&mut self, field_no: i64) -> StoreResult<i64> {
        numbering::block_numbers_left(&self.tx, field_no)
    }

    fn append_resends(
        &mut self,
        table_id: i64,
        record_ids: &[i64],
        fields: &[i64],
        origin: &str,
        at_ms: i64,
    ) -> StoreResult<Option<(i64, i64)>> {
        records::append_resends(self, table_id, record_ids, fields, origin, at_ms)
    }

    fn record_ids(
        &mut self,
        table: &crmsync_domain::Table,
        after: i64,
        limit: usize,
    ) -> StoreResult<Vec<i64>> {
        records::record_ids(&self.tx, table, after, limit)
    }

    fn change_count(&mut self) -> StoreResult<u64> {
        records::flush_changes(self)?;
        self.tx
            // Entries are numbered without gaps and never removed: the count is the range
            // (two lookups, one query each: SQLite reads the whole log for COUNT(*) or for
            // MIN and MAX in one select).
            .query_row(
                "SELECT COALESCE((SELECT MAX(seq) FROM changes) - (SELECT MIN(seq) FROM changes) + 1, 0)",
                [],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n as u64)
            .map_err(sql_error)
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
