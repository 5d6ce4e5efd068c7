//! Tables and fields: created, renamed, changed and removed by an administrator.

use super::{Actor, Instance, find_table};
use crate::error::DomainError;
use crate::schema::{Field, FieldOptions, FieldType, Table, validate_name};
use crate::store::Store;
use crate::{FieldNo, TableId};

/// Field changes accepted by `update_field`.
#[derive(Debug, Clone, Default)]
pub struct FieldPatch {
    pub name: Option<String>,
    pub field_type: Option<String>,
    pub options: Option<FieldOptions>,
}

impl<S: Store> Instance<S> {
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
