//! CRM tables and fields as SQL tables and columns.

use crate::SqliteTx;
use crate::sql_error;
use crmsync_domain::store::{SchemaStore, StoreResult};
use crmsync_domain::{DomainError, Field, FieldOptions, FieldType, Table};
use rusqlite::params;

pub use crmsync_domain::store::stored_row::table_name;

fn column_affinity(field_type: FieldType) -> &'static str {
    match field_type {
        FieldType::Number => "REAL",
        FieldType::Money | FieldType::User | FieldType::Link => "INTEGER",
        _ => "TEXT",
    }
}

fn options_json(options: &FieldOptions) -> StoreResult<String> {
    serde_json::to_string(options).map_err(|e| DomainError::Store(e.to_string()))
}

impl SchemaStore for SqliteTx<'_> {
    fn tables(&mut self) -> StoreResult<Vec<Table>> {
        let tx = &self.tx;
        let mut stmt = tx
            .prepare_cached("SELECT id, name FROM crm_tables ORDER BY id")
            .map_err(sql_error)?;
        let mut tables: Vec<Table> = stmt
            .query_map([], |r| {
                Ok(Table {
                    id: r.get(0)?,
                    name: r.get(1)?,
                    fields: Vec::new(),
                })
            })
            .map_err(sql_error)?
            .collect::<Result<_, _>>()
            .map_err(sql_error)?;
        let mut stmt = tx
            .prepare_cached("SELECT no, table_id, name, type, options FROM crm_fields ORDER BY no")
            .map_err(sql_error)?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                ))
            })
            .map_err(sql_error)?;
        for row in rows {
            let (no, table_id, name, type_name, options) = row.map_err(sql_error)?;
            let field = Field {
                no,
                table_id,
                name,
                field_type: FieldType::parse(&type_name)?,
                options: serde_json::from_str(&options)
                    .map_err(|e| DomainError::Store(format!("field {no} options: {e}")))?,
            };
            if let Some(table) = tables.iter_mut().find(|t| t.id == table_id) {
                table.fields.push(field);
            }
        }
        Ok(tables)
    }

    fn create_table(&mut self, name: &str) -> StoreResult<i64> {
        let tx = &self.tx;
        tx.execute("INSERT INTO crm_tables (name) VALUES (?1)", [name])
            .map_err(sql_error)?;
        let id = tx.last_insert_rowid();
        tx.execute_batch(&format!(
            "CREATE TABLE {t} (
                id          INTEGER PRIMARY KEY,
                uid         BLOB NOT NULL UNIQUE,
                created_at  INTEGER NOT NULL,
                updated_at  INTEGER,
                status      INTEGER NOT NULL DEFAULT 0,
                status_hlc  INTEGER,
                status_node INTEGER,
                base_hlc    INTEGER NOT NULL,
                base_node   INTEGER NOT NULL DEFAULT 1,
                last_seq    INTEGER NOT NULL
            )",
            t = table_name(id)
        ))
        .map_err(sql_error)?;
        tx.execute(
            "INSERT INTO record_counts (table_id, active, deleted) VALUES (?1, 0, 0)",
            [id],
        )
        .map_err(sql_error)?;
        Ok(id)
    }

    fn rename_table(&mut self, id: i64, name: &str) -> StoreResult<()> {
        let tx = &self.tx;
        tx.execute(
            "UPDATE crm_tables SET name = ?1 WHERE id = ?2",
            params![name, id],
        )
        .map_err(sql_error)?;
        Ok(())
    }

    fn drop_table(&mut self, id: i64) -> StoreResult<()> {
        let tx = &self.tx;
        tx.execute_batch(&format!("DROP TABLE IF EXISTS {}", table_name(id)))
            .map_err(sql_error)?;
        tx.execute("DELETE FROM crm_fields WHERE table_id = ?1", [id])
            .map_err(sql_error)?;
        tx.execute("DELETE FROM crm_tables WHERE id = ?1", [id])
            .map_err(sql_error)?;
        // Its id may be given to a new table.
        tx.execute("DELETE FROM record_counts WHERE table_id = ?1", [id])
            .map_err(sql_error)?;
        // A table that is gone is no longer whole in any sync.
        tx.execute("DELETE FROM sync_tables WHERE table_id = ?1", [id])
            .map_err(sql_error)?;
        Ok(())
    }

    fn create_field(
        &mut self,
        table_id: i64,
        name: &str,
        field_type: FieldType,
        options: &FieldOptions,
    ) -> StoreResult<i64> {
        let tx = &self.tx;
        tx.execute(
            "INSERT INTO crm_fields (table_id, name, type, options) VALUES (?1, ?2, ?3, ?4)",
            params![table_id, name, field_type.as_str(), options_json(options)?],
        )
        .map_err(sql_error)?;
        let no = tx.last_insert_rowid();
        let t = table_name(table_id);
        tx.execute_batch(&format!(
            "ALTER TABLE {t} ADD COLUMN f{no} {affinity};
             ALTER TABLE {t} ADD COLUMN h{no} INTEGER;
             ALTER TABLE {t} ADD COLUMN n{no} INTEGER;",
            affinity = column_affinity(field_type)
        ))
        .map_err(sql_error)?;
        Ok(no)
    }

    fn update_field(&mut self, no: i64, name: &str, options: &FieldOptions) -> StoreResult<()> {
        let tx = &self.tx;
        tx.execute(
            "UPDATE crm_fields SET name = ?1, options = ?2 WHERE no = ?3",
            params![name, options_json(options)?, no],
        )
        .map_err(sql_error)?;
        Ok(())
    }

    fn drop_field(&mut self, table_id: i64, no: i64) -> StoreResult<()> {
        let tx = &self.tx;
        let t = table_name(table_id);
        tx.execute_batch(&format!(
            "ALTER TABLE {t} DROP COLUMN f{no};
             ALTER TABLE {t} DROP COLUMN h{no};
             ALTER TABLE {t} DROP COLUMN n{no};"
        ))
        .map_err(sql_error)?;
        tx.execute("DELETE FROM crm_fields WHERE no = ?1", [no])
            .map_err(sql_error)?;
        Ok(())
    }
}
