//! crmsync's domain: tables and fields defined by the user, records, users, and the single
//! write path through which every change to a record passes (see `Instance`).
//!
//! This crate knows nothing of HTTP, SQL or transports: adapters depend on it, never the
//! other way round. Storage is reached through the [`store::Store`] trait.

pub mod clock;
pub mod error;
pub mod folder_path;
pub mod instance;
mod log_limit;
pub mod logged_records;
pub mod merge;
pub mod numbering;
pub mod origin;
pub mod record;
pub mod schema;
pub mod store;
pub mod sync;
pub mod syncs;
pub mod user;
pub mod value;
pub mod web_session;

pub use clock::{Clock, Hlc, OffsetClock, Stamp, SystemClock};
pub use error::{DomainError, RowError};
pub use instance::{Actor, Instance};
pub use origin::Origin;
pub use record::{Change, ChangeOp, FieldChange, Record, RecordQuery, RecordStatus, SortKey};
pub use schema::{Field, FieldOptions, FieldType, Table};
pub use store::{Store, StoreTx};
pub use user::{Role, User};
pub use value::{FileRef, Value};

pub type TableId = i64;
pub type FieldNo = i64;
pub type RecordId = i64;
pub type UserId = i64;
