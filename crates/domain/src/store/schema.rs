use super::StoreResult;
use crate::schema::{FieldOptions, FieldType, Table};
use crate::{FieldNo, TableId};

/// The user's tables and their fields.
pub trait SchemaStore {
    fn tables(&mut self) -> StoreResult<Vec<Table>>;
    fn create_table(&mut self, name: &str) -> StoreResult<TableId>;
    fn rename_table(&mut self, id: TableId, name: &str) -> StoreResult<()>;
    fn drop_table(&mut self, id: TableId) -> StoreResult<()>;
    fn create_field(
        &mut self,
        table_id: TableId,
        name: &str,
        field_type: FieldType,
        options: &FieldOptions,
    ) -> StoreResult<FieldNo>;
    fn update_field(&mut self, no: FieldNo, name: &str, options: &FieldOptions) -> StoreResult<()>;
    fn drop_field(&mut self, table_id: TableId, no: FieldNo) -> StoreResult<()>;
}
