use super::StoreResult;
use crate::FieldNo;
use crate::schema::Table;

/// One shared numbering (B-06): the sequences this instance owns and the blocks it drew.
pub trait NumberingStore {
    /// Hands out the next `count` numbers (first, last) of the sequence this instance owns
    /// for `field_no`; a new sequence starts at `start` or past the largest number the
    /// field already holds.
    fn allocate_numbers(
        &mut self,
        table: &Table,
        field_no: FieldNo,
        count: i64,
        start: i64,
    ) -> StoreResult<(i64, i64)>;
    /// Keeps a block of numbers drawn from the sequence's owner.
    fn add_number_block(&mut self, field_no: FieldNo, first: i64, last: i64) -> StoreResult<()>;
    /// Uses the lowest number held in blocks for `field_no`.
    fn take_block_number(&mut self, field_no: FieldNo) -> StoreResult<Option<i64>>;
    fn block_numbers_left(&mut self, field_no: FieldNo) -> StoreResult<i64>;
}
