//! `Instance`: the domain service of one crmsync instance. Every change to a record goes
//! through [`Instance::write_ops`], which — in one store transaction — validates the values,
//! stamps each changed field with a hybrid-logical-clock time and appends the change to the
//! log. The API, CSV import and (later) sync apply all call it.

use crate::clock::{Clock, Hlc, HlcClock, Stamp};
use crate::error::{DomainError, RowError};
use crate::origin::Origin;
use crate::record::{
    Change, ChangeOp, FieldChange, MAX_PAGE, NewRow, Record, RecordQuery, RecordStatus, RowUpdate,
    SortKey,
};
use crate::schema::{Field, FieldOptions, FieldType, Table, validate_name};
use crate::store::{NewUser, Store, StoreTx, TableCounts, UserUpdate};
use crate::user::{self, Role, User};
use crate::value::{FileRef, Value};
use crate::{FieldNo, RecordId, TableId, UserId};
use serde_json::{Map, Value as Json};
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use uuid::Uuid;

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

/// A change to one record, as the write path takes it.
#[derive(Debug, Clone)]
pub enum WriteOp {
    Create(Vec<(FieldNo, Value)>),
    Update {
        id: RecordId,
        values: Vec<(FieldNo, Value)>,
    },
    SetStatus {
        id: RecordId,
        status: RecordStatus,
    },
}

/// A page of records and where the next one starts.
#[derive(Debug, Clone)]
pub struct RecordPage {
    pub records: Vec<Record>,
    pub next_after: Option<RecordId>,
}

/// Field changes accepted by `update_field`.
#[derive(Debug, Clone, Default)]
pub struct FieldPatch {
    pub name: Option<String>,
    pub field_type: Option<String>,
    pub options: Option<FieldOptions>,
}

#[derive(Debug, Clone, Default)]
pub struct UserPatch {
    pub full_name: Option<String>,
    pub role: Option<Role>,
    pub password: Option<String>,
}

/// The most row errors one batch reports; the rest are counted.
pub const MAX_REPORTED_ROW_ERRORS: usize = 1000;

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

    // ---- users -------------------------------------------------------------------------

    /// Creates `admin` on the first start. Returns the password when it was generated, so
    /// the caller can show it once.
    pub fn ensure_admin(&self, password: Option<&str>) -> Result<Option<String>, DomainError> {
        if !self.store.read(|tx| tx.users())?.is_empty() {
            return Ok(None);
        }
        let (password, generated) = match password {
            Some(p) => (p.to_string(), false),
            None => (crate::clock::random_token(12), true),
        };
        user::validate_password(&password)?;
        let hash = user::hash_password(&password)?;
        self.store.write(|tx| {
            if tx.users()?.is_empty() {
                tx.insert_user(&NewUser {
                    login: "admin",
                    full_name: "Administrator",
                    role: Role::Admin,
                    password_hash: &hash,
                })?;
            }
            Ok(())
        })?;
        Ok(generated.then_some(password))
    }

    /// The user these credentials were verified for before, without hashing (None: they
    /// must be checked, see `authenticate`).
    pub fn authenticate_cached(&self, login: &str, password: &str) -> Option<User> {
        let digest: [u8; 32] = Sha256::digest(password.as_bytes()).into();
        self.cache()
            .get(login)
            .filter(|(cached, _)| *cached == digest)
            .map(|(_, user)| user.clone())
    }

    /// A digest of a login's current password hash: a sign-in made with an earlier
    /// password no longer matches it.
    pub fn credential_stamp(&self, login: &str) -> Result<Option<[u8; 32]>, DomainError> {
        Ok(self
            .store
            .read(|tx| tx.user_credentials(login))?
            .map(|(_, hash)| user::credential_stamp_of(&hash)))
    }

    pub fn authenticate(&self, login: &str, password: &str) -> Result<User, DomainError> {
        if let Some(user) = self.authenticate_cached(login, password) {
            return Ok(user);
        }
        let digest: [u8; 32] = Sha256::digest(password.as_bytes()).into();
        let Some((user, hash)) = self.store.read(|tx| tx.user_credentials(login))? else {
            // An unknown login costs what a known one does: logins cannot be told apart
            // by the time of the answer.
            user::verify_password(password, user::unknown_login_hash());
            return Err(DomainError::Unauthorized);
        };
        if !user.active || !user::verify_password(password, &hash) {
            return Err(DomainError::Unauthorized);
        }
        self.cache()
            .insert(login.to_string(), (digest, user.clone()));
        Ok(user)
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<String, ([u8; 32], User)>> {
        self.auth_cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn users(&self) -> Result<Vec<User>, DomainError> {
        Ok(self
            .store
            .read(|tx| tx.users())?
            .into_iter()
            .filter(|u| u.active)
            .collect())
    }

    /// Every user ever created, removed ones too: history names them.
    pub fn users_including_removed(&self) -> Result<Vec<User>, DomainError> {
        self.store.read(|tx| tx.users())
    }

    pub fn user(&self, id: UserId) -> Result<User, DomainError> {
        self.users()?
            .into_iter()
            .find(|u| u.id == id)
            .ok_or_else(|| DomainError::not_found(format!("there is no user {id}")))
    }

    pub fn create_user(
        &self,
        actor: &Actor,
        login: &str,
        full_name: &str,
        role: Role,
        password: &str,
    ) -> Result<User, DomainError> {
        actor.require_admin()?;
        let login = user::validate_login(login)?;
        let full_name = validate_name("full", full_name)?;
        user::validate_password(password)?;
        let hash = user::hash_password(password)?;
        let id = self.store.write(|tx| {
            if tx
                .users()?
                .iter()
                .any(|u| u.login.eq_ignore_ascii_case(&login))
            {
                return Err(DomainError::Conflict(format!(
                    "login \"{login}\" is taken (logins of removed users stay reserved)"
                )));
            }
            tx.insert_user(&NewUser {
                login: &login,
                full_name: &full_name,
                role,
                password_hash: &hash,
            })
        })?;
        // Sync runners wake: a value held for want of this user may apply now.
        self.notify_commit();
        self.user(id)
    }

    pub fn update_user(
        &self,
        actor: &Actor,
        id: UserId,
        patch: UserPatch,
    ) -> Result<User, DomainError> {
        let is_self = actor.user.id == id;
        if !is_self || patch.role.is_some() {
            actor.require_admin()?;
        }
        let current = self.user(id)?;
        let mut update = UserUpdate::default();
        if let Some(name) = &patch.full_name {
            update.full_name = Some(validate_name("full", name)?);
        }
        if let Some(role) = patch.role {
            if current.role == Role::Admin && role != Role::Admin {
                self.ensure_another_admin(id)?;
            }
            update.role = Some(role);
        }
        if let Some(password) = &patch.password {
            user::validate_password(password)?;
            update.password_hash = Some(user::hash_password(password)?);
        }
        self.store.write(|tx| tx.update_user(id, &update))?;
        self.cache().clear();
        self.user(id)
    }

    /// Removes a user from sign-in and lists; records that point at them keep the id.
    pub fn delete_user(&self, actor: &Actor, id: UserId) -> Result<(), DomainError> {
        actor.require_admin()?;
        if actor.user.id == id {
            return Err(DomainError::Conflict("you cannot remove yourself".into()));
        }
        let user = self.user(id)?;
        if user.role == Role::Admin {
            self.ensure_another_admin(id)?;
        }
        self.store.write(|tx| {
            tx.update_user(
                id,
                &UserUpdate {
                    active: Some(false),
                    ..Default::default()
                },
            )
        })?;
        self.cache().clear();
        Ok(())
    }

    fn ensure_another_admin(&self, id: UserId) -> Result<(), DomainError> {
        let admins = self
            .users()?
            .into_iter()
            .filter(|u| u.role == Role::Admin && u.id != id)
            .count();
        if admins == 0 {
            return Err(DomainError::Conflict(
                "this is the last administrator; make another user admin first".into(),
            ));
        }
        Ok(())
    }

    // ---- tables and fields -------------------------------------------------------------

    pub fn tables(&self) -> Result<Vec<Table>, DomainError> {
        self.store.read(|tx| tx.tables())
    }

    pub fn table(&self, id: TableId) -> Result<Table, DomainError> {
        self.store.read(|tx| find_table(&tx.tables()?, id).cloned())
    }

    /// A table by id, or by name (case-insensitive) — what the CLI accepts.
    pub fn table_by_name_or_id(&self, key: &str) -> Result<Table, DomainError> {
        let tables = self.tables()?;
        let found = match key.parse::<TableId>() {
            Ok(id) => tables.iter().find(|t| t.id == id),
            Err(_) => None,
        }
        .or_else(|| {
            tables
                .iter()
                .find(|t| t.name.to_lowercase() == key.trim().to_lowercase())
        });
        found
            .cloned()
            .ok_or_else(|| DomainError::not_found(format!("there is no table \"{key}\"")))
    }

    pub fn create_table(&self, actor: &Actor, name: &str) -> Result<Table, DomainError> {
        actor.require_admin()?;
        let name = validate_name("table", name)?;
        let id = self.store.write(|tx| {
            ensure_unique_table_name(&tx.tables()?, &name, None)?;
            tx.create_table(&name)
        })?;
        self.table(id)
    }

    pub fn rename_table(
        &self,
        actor: &Actor,
        id: TableId,
        name: &str,
    ) -> Result<Table, DomainError> {
        actor.require_admin()?;
        let name = validate_name("table", name)?;
        self.store.write(|tx| {
            let tables = tx.tables()?;
            find_table(&tables, id)?;
            ensure_unique_table_name(&tables, &name, Some(id))?;
            tx.rename_table(id, &name)
        })?;
        self.table(id)
    }

    /// Drops a table with its records. Refused while another table links to it.
    pub fn delete_table(&self, actor: &Actor, id: TableId) -> Result<(), DomainError> {
        actor.require_admin()?;
        self.store.write(|tx| {
            let tables = tx.tables()?;
            find_table(&tables, id)?;
            if let Some(link) = tables
                .iter()
                .filter(|t| t.id != id)
                .flat_map(|t| t.fields.iter())
                .find(|f| f.field_type == FieldType::Link && f.options.table_id == Some(id))
            {
                return Err(DomainError::Conflict(format!(
                    "field {} \"{}\" of table {} links to this table; remove that field first",
                    link.no, link.name, link.table_id
                )));
            }
            tx.drop_table(id)
        })
    }

    pub fn field(&self, no: FieldNo) -> Result<Field, DomainError> {
        self.tables()?
            .into_iter()
            .flat_map(|t| t.fields)
            .find(|f| f.no == no)
            .ok_or_else(|| DomainError::not_found(format!("there is no field {no}")))
    }

    pub fn create_field(
        &self,
        actor: &Actor,
        table_id: TableId,
        name: &str,
        field_type: &str,
        options: FieldOptions,
    ) -> Result<Field, DomainError> {
        actor.require_admin()?;
        let name = validate_name("field", name)?;
        let field_type = FieldType::parse(field_type)?;
        let no = self.store.write(|tx| {
            let tables = tx.tables()?;
            let table = find_table(&tables, table_id)?;
            options.validate(field_type, |id| tables.iter().any(|t| t.id == id))?;
            crate::numbering::check_source(tx, field_type, options.numbering.as_ref())?;
            ensure_unique_field_name(table, &name, None)?;
            let no = tx.create_field(table_id, &name, field_type, &options)?;
            crate::syncs::join_whole_tables(tx, table_id, no)?;
            Ok(no)
        })?;
        self.notify_commit();
        self.field(no)
    }

    /// Renames a field or changes its options. The type, a link's target table and a money
    /// field's scale cannot change: stored values would lose their meaning.
    pub fn update_field(
        &self,
        actor: &Actor,
        no: FieldNo,
        patch: FieldPatch,
    ) -> Result<Field, DomainError> {
        actor.require_admin()?;
        self.store.write(|tx| {
            let tables = tx.tables()?;
            let field = tables
                .iter()
                .flat_map(|t| t.fields.iter())
                .find(|f| f.no == no)
                .ok_or_else(|| DomainError::not_found(format!("there is no field {no}")))?;
            if let Some(t) = &patch.field_type
                && FieldType::parse(t)? != field.field_type
            {
                return Err(DomainError::invalid(format!(
                    "the type of field {no} cannot change (it holds {} values); add a new field instead",
                    field.field_type.as_str()
                )));
            }
            let name = match &patch.name {
                Some(n) => validate_name("field", n)?,
                None => field.name.clone(),
            };
            let table = find_table(&tables, field.table_id)?;
            ensure_unique_field_name(table, &name, Some(no))?;
            let options = patch.options.clone().unwrap_or_else(|| field.options.clone());
            options.validate(field.field_type, |id| tables.iter().any(|t| t.id == id))?;
            crate::numbering::check_source(tx, field.field_type, options.numbering.as_ref())?;
            if options.table_id != field.options.table_id {
                return Err(DomainError::invalid(
                    "a link field's target table cannot change; add a new field instead",
                ));
            }
            if options.money_scale() != field.options.money_scale() {
                return Err(DomainError::invalid(
                    "a money field's scale cannot change; add a new field instead",
                ));
            }
            tx.update_field(no, &name, &options)
        })?;
        // Sync runners wake: a value held for want of a choice may apply now.
        self.notify_commit();
        self.field(no)
    }

    pub fn delete_field(&self, actor: &Actor, no: FieldNo) -> Result<(), DomainError> {
        actor.require_admin()?;
        let field = self.field(no)?;
        self.store.write(|tx| tx.drop_field(field.table_id, no))
    }

    // ---- records: reads ----------------------------------------------------------------

    pub fn list_records(
        &self,
        table_id: TableId,
        query: &RecordQuery,
    ) -> Result<RecordPage, DomainError> {
        let mut query = query.clone();
        query.limit = query.limit.clamp(1, MAX_PAGE);
        let limit = query.limit;
        self.store.read(|tx| {
            let tables = tx.tables()?;
            let table = find_table(&tables, table_id)?;
            if let SortKey::Field(no) = query.sort
                && table.field(no).is_none()
            {
                return Err(DomainError::invalid(format!(
                    "sort: table {table_id} has no field {no}"
                )));
            }
            // One extra row tells whether another page follows.
            query.limit = limit + 1;
            let mut records = tx.list_records(table, &query)?;
            let next_after = if records.len() > limit {
                records.truncate(limit);
                records.last().map(|r| r.id)
            } else {
                None
            };
            Ok(RecordPage {
                records,
                next_after,
            })
        })
    }

    pub fn record(&self, table_id: TableId, id: RecordId) -> Result<Record, DomainError> {
        self.store.read(|tx| {
            let tables = tx.tables()?;
            let table = find_table(&tables, table_id)?;
            Ok(load(tx, table, id)?.record)
        })
    }

    pub fn record_by_uid(&self, table_id: TableId, uid: Uuid) -> Result<Record, DomainError> {
        self.store.read(|tx| {
            let tables = tx.tables()?;
            let table = find_table(&tables, table_id)?;
            tx.record_by_uid(table, uid)?
                .map(|r| r.record)
                .ok_or_else(|| {
                    DomainError::not_found(format!("there is no record {uid} in table {table_id}"))
                })
        })
    }

    pub fn history(&self, table_id: TableId, id: RecordId) -> Result<Vec<Change>, DomainError> {
        self.store.read(|tx| {
            let tables = tx.tables()?;
            let table = find_table(&tables, table_id)?;
            let current = load(tx, table, id)?.record;
            let mut changes = tx.history(table, id)?;
            fill_created_values(table, &current, &mut changes);
            Ok(changes)
        })
    }

    pub fn table_counts(&self) -> Result<Vec<(Table, TableCounts)>, DomainError> {
        self.store.read(|tx| {
            let tables = tx.tables()?;
            tables
                .into_iter()
                .map(|t| {
                    let counts = tx.table_counts(&t)?;
                    Ok((t, counts))
                })
                .collect()
        })
    }

    pub fn change_count(&self) -> Result<u64, DomainError> {
        self.store.read(|tx| tx.change_count())
    }

    // ---- records: writes ---------------------------------------------------------------

    pub fn create_record(
        &self,
        actor: &Actor,
        table_id: TableId,
        values: &Map<String, Json>,
    ) -> Result<Record, DomainError> {
        let table = self.table(table_id)?;
        let values = parse_json_values(&table, values)?;
        self.write_one(actor, table_id, WriteOp::Create(values))
    }

    pub fn update_record(
        &self,
        actor: &Actor,
        table_id: TableId,
        id: RecordId,
        values: &Map<String, Json>,
    ) -> Result<Record, DomainError> {
        let table = self.table(table_id)?;
        let values = parse_json_values(&table, values)?;
        self.write_one(actor, table_id, WriteOp::Update { id, values })
    }

    pub fn set_status(
        &self,
        actor: &Actor,
        table_id: TableId,
        id: RecordId,
        status: RecordStatus,
    ) -> Result<Record, DomainError> {
        self.write_one(actor, table_id, WriteOp::SetStatus { id, status })
    }

    /// Points a file field at stored content (already written by the file store).
    pub fn set_file(
        &self,
        actor: &Actor,
        table_id: TableId,
        id: RecordId,
        field_no: FieldNo,
        file: FileRef,
    ) -> Result<Record, DomainError> {
        let table = self.table(table_id)?;
        let field = table.field(field_no).ok_or_else(|| {
            DomainError::not_found(format!("table {table_id} has no field {field_no}"))
        })?;
        if field.field_type != FieldType::File {
            return Err(DomainError::invalid_field(
                field_no,
                format!("field {field_no} \"{}\" is not a file field", field.name),
            ));
        }
        self.write_one(
            actor,
            table_id,
            WriteOp::Update {
                id,
                values: vec![(field_no, Value::File(file))],
            },
        )
    }

    fn write_one(
        &self,
        actor: &Actor,
        table_id: TableId,
        op: WriteOp,
    ) -> Result<Record, DomainError> {
        let id = self.in_write(actor, table_id, |ctx, tx, table| {
            self.apply(tx, ctx, table, op)
        })?;
        self.record(table_id, id)
    }

    /// The single write path. Applies `ops` to one table in one transaction; each op that
    /// changes something stamps its fields and appends a change-log entry, and an op that
    /// changes nothing writes nothing. If any op fails, nothing is written and every
    /// failure is reported with its position (1-based) as `DomainError::Rows`.
    pub fn write_ops(
        &self,
        actor: &Actor,
        table_id: TableId,
        ops: &mut dyn Iterator<Item = Result<WriteOp, RowError>>,
    ) -> Result<Vec<RecordId>, DomainError> {
        let mut ids = Vec::new();
        self.write_ops_each(actor, table_id, ops, &mut |id| ids.push(id))?;
        Ok(ids)
    }

    /// `write_ops` for a batch too long to keep its ids (an import of millions of rows):
    /// each id goes to `written` as its op is applied; they count only if this succeeds.
    pub fn write_ops_each(
        &self,
        actor: &Actor,
        table_id: TableId,
        ops: &mut dyn Iterator<Item = Result<WriteOp, RowError>>,
        written: &mut dyn FnMut(RecordId),
    ) -> Result<(), DomainError> {
        self.in_write(actor, table_id, |ctx, tx, table| {
            let mut errors = Vec::new();
            for (index, op) in ops.enumerate() {
                let row = index + 1;
                let result = op.and_then(|op| {
                    self.apply(tx, ctx, table, op).map_err(|e| match e {
                        DomainError::Invalid { field, message } => RowError {
                            row,
                            field,
                            message,
                            ..RowError::default()
                        },
                        other => RowError {
                            row,
                            message: other.to_string(),
                            ..RowError::default()
                        },
                    })
                });
                match result {
                    Ok(id) => written(id),
                    Err(error) if errors.len() < MAX_REPORTED_ROW_ERRORS => errors.push(error),
                    Err(_) => {}
                }
            }
            if errors.is_empty() {
                Ok(())
            } else {
                Err(DomainError::Rows(errors))
            }
        })
    }

    /// Runs `body` in one write transaction with the clock state of this write; records
    /// the newest clock time issued before committing.
    pub(crate) fn in_write<T>(
        &self,
        actor: &Actor,
        table_id: TableId,
        body: impl FnOnce(&mut WriteCtx<'_>, &mut dyn StoreTx, &Table) -> Result<T, DomainError>,
    ) -> Result<T, DomainError> {
        let result = self.store.write(|tx| {
            let tables = tx.tables()?;
            let table = find_table(&tables, table_id)?;
            let mut ctx = WriteCtx {
                actor,
                node: tx.instance_id()?,
                floor: tx.last_hlc()?,
                last: Hlc(0),
                now_ms: self.clock.now_ms(),
                tables: &tables,
                active_users: None,
            };
            let value = body(&mut ctx, tx, table)?;
            if ctx.last > ctx.floor {
                tx.set_last_hlc(ctx.last)?;
            }
            Ok(value)
        });
        if result.is_ok() {
            self.notify_commit();
        }
        result
    }

    fn apply(
        &self,
        tx: &mut dyn StoreTx,
        ctx: &mut WriteCtx<'_>,
        table: &Table,
        op: WriteOp,
    ) -> Result<RecordId, DomainError> {
        match op {
            WriteOp::Create(mut values) => {
                check_references(tx, ctx, table, &values)?;
                crate::numbering::assign(tx, table, &mut values)?;
                let stamp = self.stamp(ctx);
                let uid = self.clock.new_uid();
                let values: Vec<(FieldNo, Value, Stamp)> = values
                    .into_iter()
                    .filter(|(_, v)| !v.is_null())
                    .map(|(no, v)| (no, v, stamp))
                    .collect();
                let change = Change {
                    seq: 0,
                    table_id: table.id,
                    record_id: 0,
                    record_uid: uid,
                    op: ChangeOp::Create,
                    hlc: stamp.hlc,
                    origin: ctx.actor.origin.clone(),
                    user_id: Some(ctx.actor.user.id),
                    at_ms: ctx.now_ms,
                    // The values themselves are in the row; history derives them.
                    created_fields: values.iter().map(|(no, _, _)| *no).collect(),
                    fields: Vec::new(),
                };
                let row = NewRow {
                    uid,
                    created_at_ms: ctx.now_ms,
                    status: RecordStatus::Active,
                    status_stamp: stamp,
                    values,
                };
                tx.insert_record(table, &row, &change)
            }
            WriteOp::Update { id, values } => {
                let current = load(tx, table, id)?;
                if current.record.status == RecordStatus::Deleted {
                    return Err(DomainError::Conflict(format!(
                        "record {id} is deleted; restore it before editing"
                    )));
                }
                let changed: Vec<(FieldNo, Value)> = values
                    .into_iter()
                    .filter(|(no, v)| current.record.values.get(no).unwrap_or(&Value::Null) != v)
                    .collect();
                if changed.is_empty() {
                    return Ok(id);
                }
                crate::numbering::refuse_edit(table, &changed)?;
                check_references(tx, ctx, table, &changed)?;
                let stamp = self.stamp(ctx);
                let fields = changed
                    .iter()
                    .map(|(no, v)| {
                        let field = field_of(table, *no);
                        FieldChange {
                            field_no: *no,
                            old: Some(
                                current
                                    .record
                                    .values
                                    .get(no)
                                    .unwrap_or(&Value::Null)
                                    .to_json(field),
                            ),
                            new: v.to_json(field),
                            ..Default::default()
                        }
                    })
                    .collect();
                let change =
                    self.change(ctx, table, &current.record, ChangeOp::Update, stamp, fields);
                let update = RowUpdate {
                    id,
                    updated_at_ms: ctx.now_ms,
                    status: None,
                    values: changed.into_iter().map(|(no, v)| (no, v, stamp)).collect(),
                };
                tx.update_record(table, &update, &change)?;
                Ok(id)
            }
            WriteOp::SetStatus { id, status } => {
                let current = load(tx, table, id)?;
                if current.record.status == status {
                    return Ok(id);
                }
                let stamp = self.stamp(ctx);
                let op = match status {
                    RecordStatus::Deleted => ChangeOp::Delete,
                    RecordStatus::Active => ChangeOp::Restore,
                };
                let change = self.change(ctx, table, &current.record, op, stamp, Vec::new());
                let update = RowUpdate {
                    id,
                    updated_at_ms: ctx.now_ms,
                    status: Some((status, stamp)),
                    values: Vec::new(),
                };
                tx.update_record(table, &update, &change)?;
                Ok(id)
            }
        }
    }

    pub(crate) fn stamp(&self, ctx: &mut WriteCtx<'_>) -> Stamp {
        let hlc = self.hlc.next(ctx.now_ms, ctx.floor.max(ctx.last));
        ctx.last = hlc;
        Stamp {
            hlc,
            node: ctx.node,
        }
    }

    fn change(
        &self,
        ctx: &WriteCtx<'_>,
        table: &Table,
        record: &Record,
        op: ChangeOp,
        stamp: Stamp,
        fields: Vec<FieldChange>,
    ) -> Change {
        Change {
            seq: 0,
            table_id: table.id,
            record_id: record.id,
            record_uid: record.uid,
            op,
            hlc: stamp.hlc,
            origin: ctx.actor.origin.clone(),
            user_id: Some(ctx.actor.user.id),
            at_ms: ctx.now_ms,
            created_fields: Vec::new(),
            fields,
        }
    }
}

/// A create's log entry names its fields but not their values (those are in the row):
/// walking back from the current values, undoing each update with its `old` values,
/// gives the values the record was created with.
fn fill_created_values(table: &Table, current: &Record, changes: &mut [Change]) {
    let mut values: HashMap<FieldNo, Json> = table
        .fields
        .iter()
        .map(|f| {
            (
                f.no,
                current.values.get(&f.no).unwrap_or(&Value::Null).to_json(f),
            )
        })
        .collect();
    for change in changes.iter_mut().rev() {
        if change.op == ChangeOp::Create {
            change.fields = change
                .created_fields
                .iter()
                .map(|no| FieldChange {
                    field_no: *no,
                    old: None,
                    new: values.get(no).cloned().unwrap_or(Json::Null),
                    ..Default::default()
                })
                .collect();
        } else {
            for f in &change.fields {
                values.insert(f.field_no, f.old.clone().unwrap_or(Json::Null));
            }
        }
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

fn ensure_unique_table_name(
    tables: &[Table],
    name: &str,
    except: Option<TableId>,
) -> Result<(), DomainError> {
    if tables
        .iter()
        .any(|t| Some(t.id) != except && t.name.to_lowercase() == name.to_lowercase())
    {
        return Err(DomainError::Conflict(format!(
            "a table named \"{name}\" exists"
        )));
    }
    Ok(())
}

fn ensure_unique_field_name(
    table: &Table,
    name: &str,
    except: Option<FieldNo>,
) -> Result<(), DomainError> {
    if let Some(other) = table
        .fields
        .iter()
        .find(|f| Some(f.no) != except && f.name.to_lowercase() == name.to_lowercase())
    {
        return Err(DomainError::Conflict(format!(
            "table {} already has a field named \"{name}\" (field {})",
            table.id, other.no
        )));
    }
    Ok(())
}

/// Parses `{"<field_no>": value}` against the table's fields.
pub fn parse_json_values(
    table: &Table,
    values: &Map<String, Json>,
) -> Result<Vec<(FieldNo, Value)>, DomainError> {
    values
        .iter()
        .map(|(key, json)| {
            let field = key
                .trim()
                .parse::<FieldNo>()
                .ok()
                .and_then(|no| table.field(no))
                .ok_or_else(|| {
                    DomainError::invalid(format!(
                        "table {} \"{}\" has no field \"{key}\" (values are keyed by field number)",
                        table.id, table.name
                    ))
                })?;
            Ok((field.no, Value::from_json(field, json)?))
        })
        .collect()
}

/// User values must name an active user; link values an active record of the target table.
pub(crate) fn check_references(
    tx: &mut dyn StoreTx,
    ctx: &mut WriteCtx<'_>,
    table: &Table,
    values: &[(FieldNo, Value)],
) -> Result<(), DomainError> {
    for (no, value) in values {
        let field = field_of(table, *no);
        match value {
            Value::User(id) => {
                if ctx.active_users.is_none() {
                    ctx.active_users = Some(
                        tx.users()?
                            .into_iter()
                            .filter(|u| u.active)
                            .map(|u| u.id)
                            .collect(),
                    );
                }
                if !ctx
                    .active_users
                    .as_ref()
                    .is_some_and(|users| users.contains(id))
                {
                    return Err(DomainError::invalid_field(
                        *no,
                        format!("field {no} \"{}\": there is no user {id}", field.name),
                    ));
                }
            }
            Value::Link(id) => {
                let target = field.options.table_id.unwrap_or_default();
                debug_assert!(ctx.tables.iter().any(|t| t.id == target));
                if tx.record_status(target, *id)? != Some(RecordStatus::Active) {
                    return Err(DomainError::invalid_field(
                        *no,
                        format!(
                            "field {no} \"{}\": table {target} has no record {id}",
                            field.name
                        ),
                    ));
                }
            }
            _ => {}
        }
    }
    Ok(())
}
