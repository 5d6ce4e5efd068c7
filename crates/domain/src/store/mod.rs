//! The storage seam. A backend (SQLite now, PostgreSQL next) implements one trait per
//! aggregate — the instance's own facts, schema, users, records, the change log, syncs,
//! numbering — and the domain never sees SQL. `StoreTx` is all of them together: what one
//! transaction offers.
//!
//! Record rows can only be written together with their change-log entry
//! (`RecordStore::insert_record`, `update_record` take the `Change`), so no caller can
//! change a record without recording it.

pub mod change_buffer;
mod change_fields;
mod change_log;
mod instance_meta;
mod numbering;
mod records;
mod schema;
pub mod stored_row;
pub mod sync_text;
mod syncs;
mod users;

pub use change_fields::{decode_change_fields, encode_change_fields};
pub use change_log::ChangeLog;
pub use instance_meta::{InstanceMeta, MetaTable};
pub use numbering::NumberingStore;
pub use records::{RecordStore, TableCounts};
pub use schema::SchemaStore;
pub use syncs::SyncStore;
pub use users::{NewUser, UserStore, UserUpdate};

use crate::DomainError;

pub type StoreResult<T> = Result<T, DomainError>;

pub trait Store: Send + Sync + 'static {
    /// Runs `f` in a read transaction (a consistent snapshot).
    fn read<T>(&self, f: impl FnOnce(&mut dyn StoreTx) -> StoreResult<T>) -> StoreResult<T>;
    /// Runs `f` in a write transaction: committed if `f` returns Ok, rolled back otherwise.
    fn write<T>(&self, f: impl FnOnce(&mut dyn StoreTx) -> StoreResult<T>) -> StoreResult<T>;
}

/// One transaction of a store: every aggregate's operations.
pub trait StoreTx:
    InstanceMeta + SchemaStore + UserStore + RecordStore + ChangeLog + SyncStore + NumberingStore
{
}

impl<T> StoreTx for T where
    T: InstanceMeta
        + SchemaStore
        + UserStore
        + RecordStore
        + ChangeLog
        + SyncStore
        + NumberingStore
{
}

/// The traits a caller of a transaction's methods needs in scope.
pub mod prelude {
    pub use super::{
        ChangeLog, InstanceMeta, NumberingStore, RecordStore, SchemaStore, Store, StoreTx,
        SyncStore, UserStore,
    };
}
