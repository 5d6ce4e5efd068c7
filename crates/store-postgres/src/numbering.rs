//! Shared numbering (B-06): sequences this instance owns, and blocks drawn from others.

use crate::schema::table_name;
use crate::{PgTx, get};
use crmsync_domain::store::{NumberingStore, StoreResult};
use crmsync_domain::{DomainError, FieldNo, Table};
use postgres::types::Type;

impl PgTx<'_> {
    /// The largest number field `field_no` of `table` holds. MAX keeps the column's type:
    /// a number column (DOUBLE PRECISION, or BIGINT) may hold numbers, a TEXT one holds
    /// none (as in SQLite, where TEXT affinity stores every number as text).
    fn largest_number(&mut self, table: &Table, field_no: FieldNo) -> StoreResult<Option<f64>> {
        let row = self.query_one(
            &format!("SELECT MAX(f{field_no}) FROM {}", table_name(table.id)),
            &[],
        )?;
        let column_type = row.columns()[0].type_().clone();
        Ok(if column_type == Type::FLOAT8 {
            // SQLite stores no NaN (it reads as NULL), and PostgreSQL sorts it above all.
            get::<Option<f64>>(&row, 0)?.filter(|n| !n.is_nan())
        } else if column_type == Type::INT8 {
            get::<Option<i64>>(&row, 0)?.map(|n| n as f64)
        } else {
            None
        })
    }
}

impl NumberingStore for PgTx<'_> {
    fn allocate_numbers(
        &mut self,
        table: &Table,
        field_no: FieldNo,
        count: i64,
        start: i64,
    ) -> StoreResult<(i64, i64)> {
        let stored: Option<i64> = self
            .query_opt(
                "SELECT next FROM number_sequences WHERE field_no = $1",
                &[&field_no],
            )?
            .map(|r| get(&r, 0))
            .transpose()?;
        let first = match stored {
            Some(next) => next,
            None => {
                // A sequence set on a field that already holds numbers starts past them.
                let largest = self.largest_number(table, field_no)?;
                crmsync_domain::numbering::sequence_start(largest, start)
            }
        };
        let last = first + count - 1;
        if last >= crmsync_domain::schema::MAX_SEQUENCE_NUMBER {
            return Err(DomainError::Conflict(format!(
                "the numbering of field {field_no} has run out of numbers"
            )));
        }
        self.execute(
            "INSERT INTO number_sequences (field_no, next) VALUES ($1, $2)
             ON CONFLICT (field_no) DO UPDATE SET next = excluded.next",
            &[&field_no, &(last + 1)],
        )?;
        Ok((first, last))
    }

    fn add_number_block(&mut self, field_no: FieldNo, first: i64, last: i64) -> StoreResult<()> {
        self.execute(
            "INSERT INTO number_blocks (field_no, next, last) VALUES ($1, $2, $3)",
            &[&field_no, &first, &last],
        )?;
        Ok(())
    }

    fn take_block_number(&mut self, field_no: FieldNo) -> StoreResult<Option<i64>> {
        let Some(row) = self.query_opt(
            "SELECT id, next, last FROM number_blocks WHERE field_no = $1 ORDER BY next LIMIT 1",
            &[&field_no],
        )?
        else {
            return Ok(None);
        };
        let (id, next, last): (i64, i64, i64) = (get(&row, 0)?, get(&row, 1)?, get(&row, 2)?);
        if next >= last {
            self.execute("DELETE FROM number_blocks WHERE id = $1", &[&id])?;
        } else {
            self.execute(
                "UPDATE number_blocks SET next = next + 1 WHERE id = $1",
                &[&id],
            )?;
        }
        Ok(Some(next))
    }

    fn block_numbers_left(&mut self, field_no: FieldNo) -> StoreResult<i64> {
        // SUM of BIGINT is NUMERIC in PostgreSQL: back to BIGINT.
        let row = self.query_one(
            "SELECT COALESCE(SUM(last - next + 1), 0)::BIGINT FROM number_blocks WHERE field_no = $1",
            &[&field_no],
        )?;
        get(&row, 0)
    }
}
