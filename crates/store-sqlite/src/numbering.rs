//! Shared numbering (B-06): sequences this instance owns, and blocks drawn from others.

use crate::SqliteTx;
use crate::schema::table_name;
use crate::sql_error;
use crmsync_domain::store::{NumberingStore, StoreResult};
use crmsync_domain::{DomainError, FieldNo, Table};
use rusqlite::{OptionalExtension, params};

impl NumberingStore for SqliteTx<'_> {
    fn allocate_numbers(
        &mut self,
        table: &Table,
        field_no: FieldNo,
        count: i64,
        start: i64,
    ) -> StoreResult<(i64, i64)> {
        let tx = &self.tx;
        let stored: Option<i64> = tx
            .query_row(
                "SELECT next FROM number_sequences WHERE field_no = ?1",
                [field_no],
                |r| r.get(0),
            )
            .optional()
            .map_err(sql_error)?;
        let first = match stored {
            Some(next) => next,
            None => {
                // A sequence set on a field that already holds numbers starts past them.
                let largest: Option<f64> = tx
                    .query_row(
                        &format!(
                            "SELECT MAX(f{field_no}) FROM {} WHERE typeof(f{field_no}) IN ('integer', 'real')",
                            table_name(table.id)
                        ),
                        [],
                        |r| r.get(0),
                    )
                    .map_err(sql_error)?;
                crmsync_domain::numbering::sequence_start(largest, start)
            }
        };
        let last = first + count - 1;
        if last >= crmsync_domain::schema::MAX_SEQUENCE_NUMBER {
            return Err(DomainError::Conflict(format!(
                "the numbering of field {field_no} has run out of numbers"
            )));
        }
        tx.execute(
            "INSERT INTO number_sequences (field_no, next) VALUES (?1, ?2)
             ON CONFLICT (field_no) DO UPDATE SET next = excluded.next",
            params![field_no, last + 1],
        )
        .map_err(sql_error)?;
        Ok((first, last))
    }

    fn add_number_block(&mut self, field_no: FieldNo, first: i64, last: i64) -> StoreResult<()> {
        let tx = &self.tx;
        tx.execute(
            "INSERT INTO number_blocks (field_no, next, last) VALUES (?1, ?2, ?3)",
            params![field_no, first, last],
        )
        .map_err(sql_error)?;
        Ok(())
    }

    fn take_block_number(&mut self, field_no: FieldNo) -> StoreResult<Option<i64>> {
        let tx = &self.tx;
        let block: Option<(i64, i64, i64)> = tx
            .query_row(
                "SELECT id, next, last FROM number_blocks WHERE field_no = ?1 ORDER BY next LIMIT 1",
                [field_no],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()
            .map_err(sql_error)?;
        let Some((id, next, last)) = block else {
            return Ok(None);
        };
        if next >= last {
            tx.execute("DELETE FROM number_blocks WHERE id = ?1", [id])
        } else {
            tx.execute(
                "UPDATE number_blocks SET next = next + 1 WHERE id = ?1",
                [id],
            )
        }
        .map_err(sql_error)?;
        Ok(Some(next))
    }

    fn block_numbers_left(&mut self, field_no: FieldNo) -> StoreResult<i64> {
        let tx = &self.tx;
        tx.query_row(
            "SELECT COALESCE(SUM(last - next + 1), 0) FROM number_blocks WHERE field_no = ?1",
            [field_no],
            |r| r.get(0),
        )
        .map_err(sql_error)
    }
}
