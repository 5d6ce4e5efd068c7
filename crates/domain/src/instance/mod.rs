//! `Instance`: the domain service of one crmsync instance. Every change to a record goes
//! through [`Instance::write_ops`], which — in one store transaction — validates the values,
//! stamps each changed field with a hybrid-logical-clock time and appends the change to the
//! log. The API, CSV import and (later) sync apply all call it.
//!
//! Here: who acts (`Actor`), the service itself and what its parts share. Its parts:
//! `write` (the write path), `records` (reading records and history), `schema` (tables
//! and fields), `users`; the merge of a peer's records is `crate::merge`, syncs'
//! settings `crate::syncs`.

use crate::clock::{Clock, Hlc, HlcClock};
use crate::error::DomainError;
use crate::origin::Origin;
use crate::schema::{Field, Table};
use crate::store::{Store, StoreTx};
use crate::user::{Role, User};
use crate::{FieldNo, RecordId, TableId, UserId};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use uuid::Uuid;

mod records;
mod schema;
mod users;
mod write;

pub use records::RecordPage;
pub use schema::FieldPatch;
pub use users::UserPatch;
pub(crate) use write::check_references;
pub use write::{MAX_REPORTED_ROW_ERRORS, WriteOp, parse_json_values};

/// Who is acting, and through what.
#[derive(Debug, Clone)]
pub struct Actor {
    pub user: User,
    pub origin: Origin,
}

impl Actor {
    pub fn require_admin(&self) -> Result<(), DomainError> {
        if self.user.role == Role::Admin {
            Ok(())
        } else {
            Err(DomainError::Forbidden(
                "only an administrator can change tables, fields, users and syncs".into(),
            ))
        }
    }
}

pub struct Instance<S: Store> {
    store: S,
    clock: Arc<dyn Clock>,
    hlc: HlcClock,
    /// Verified credentials: login → (SHA-256 of the password, user). Spares an argon2
    /// run on every request; cleared whenever a user changes.
    auth_cache: Mutex<HashMap<String, ([u8; 32], User)>>,
    /// Called after every committed record write (syncs wake up on it).
    commit_listener: std::sync::OnceLock<Box<dyn Fn() + Send + Sync>>,
    /// How many failures each sync's log still takes this minute.
    log_limit: Mutex<crate::log_limit::LogLimit>,
}

/// State shared by the operations of one write transaction.
pub(crate) struct WriteCtx<'a> {
    pub(crate) actor: &'a Actor,
    pub(crate) node: Uuid,
    pub(crate) floor: Hlc,
    pub(crate) last: Hlc,
    pub(crate) now_ms: i64,
    pub(crate) tables: &'a [Table],
    pub(crate) active_users: Option<HashSet<UserId>>,
}

impl<S: Store> Instance<S> {
    pub fn new(store: S, clock: Arc<dyn Clock>) -> Self {
        Instance {
            store,
            clock,
            hlc: HlcClock::default(),
            auth_cache: Mutex::new(HashMap::new()),
            commit_listener: std::sync::OnceLock::new(),
            log_limit: Mutex::default(),
        }
    }

    pub(crate) fn log_limit(&self) -> std::sync::MutexGuard<'_, crate::log_limit::LogLimit> {
        self.log_limit.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn store(&self) -> &S {
        &self.store
    }

    /// Registers the one function told about every committed record write.
    pub fn on_commit(&self, listener: impl Fn() + Send + Sync + 'static) {
        let _ = self.commit_listener.set(Box::new(listener));
    }

    pub(crate) fn notify_commit(&self) {
        if let Some(listener) = self.commit_listener.get() {
            listener();
        }
    }

    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    pub fn instance_id(&self) -> Result<Uuid, DomainError> {
        self.store.read(|tx| tx.instance_id())
    }
}

fn find_table(tables: &[Table], id: TableId) -> Result<&Table, DomainError> {
    tables
        .iter()
        .find(|t| t.id == id)
        .ok_or_else(|| DomainError::not_found(format!("there is no table {id}")))
}

pub(crate) fn field_of(table: &Table, no: FieldNo) -> &Field {
    table
        .field(no)
        .expect("values were parsed against this table's fields")
}

fn load(
    tx: &mut dyn StoreTx,
    table: &Table,
    id: RecordId,
) -> Result<crate::record::StoredRecord, DomainError> {
    tx.record(table, id)?.ok_or_else(|| {
        DomainError::not_found(format!("there is no record {id} in table {}", table.id))
    })
}
