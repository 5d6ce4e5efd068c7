//! One shared numbering (B-06). A numbered field's value is assigned by the instance when
//! a record is created here, never typed: the owner of the sequence takes the next
//! number, every other instance uses numbers from blocks it drew from the owner earlier.
//! Either way the number is taken in the same transaction as the record it goes to, so a
//! number is used once or not at all (a failed write leaves a gap, never a duplicate).

use crate::schema::{Field, FieldType, Numbering, Table};
use crate::store::{Store, StoreTx};
use crate::sync::{Mode, Transport};
use crate::value::Value;
use crate::{DomainError, FieldNo, Instance};

/// Where a new sequence starts: at `start`, or past the largest number the field already
/// holds. A number too large for the sequence gives a first number past its end (the
/// store then says the numbering has run out), never a wrapped one that would hand out
/// numbers again.
pub fn sequence_start(largest: Option<f64>, start: i64) -> i64 {
    largest.map_or(start, |n| start.max((n.floor() as i64).saturating_add(1)))
}

/// Fills this table's numbered fields of a new record; refuses a number typed by hand.
pub(crate) fn assign(
    tx: &mut dyn StoreTx,
    table: &Table,
    values: &mut Vec<(FieldNo, Value)>,
) -> Result<(), DomainError> {
    for field in numbered(table) {
        let numbering = field.options.numbering.as_ref().expect("numbered");
        let given = values.iter().position(|(no, _)| *no == field.no);
        if let Some(i) = given {
            if !values[i].1.is_null() {
                return Err(typed_by_hand(field));
            }
            values.remove(i);
        }
        let number = match numbering.from_sync {
            None => {
                tx.allocate_numbers(table, field.no, 1, numbering.first_number())?
                    .0
            }
            Some(sync_id) => tx
                .take_block_number(field.no)?
                .ok_or_else(|| no_numbers_left(field, sync_id))?,
        };
        values.push((field.no, Value::Number(number as f64)));
    }
    Ok(())
}

/// Refuses an edit of a numbered field: its number is the record's identity everywhere.
pub(crate) fn refuse_edit(table: &Table, values: &[(FieldNo, Value)]) -> Result<(), DomainError> {
    match numbered(table).find(|f| values.iter().any(|(no, _)| *no == f.no)) {
        Some(field) => Err(typed_by_hand(field)),
        None => Ok(()),
    }
}

fn numbered(table: &Table) -> impl Iterator<Item = &Field> {
    table
        .fields
        .iter()
        .filter(|f| f.options.numbering.is_some())
}

fn typed_by_hand(field: &Field) -> DomainError {
    DomainError::invalid_field(
        field.no,
        format!(
            "field {} \"{}\" is numbered automatically; leave it empty (the number is assigned when the record is created and cannot be changed)",
            field.no, field.name
        ),
    )
}

fn no_numbers_left(field: &Field, sync_id: i64) -> DomainError {
    DomainError::Unavailable(format!(
        "no number left for field {} \"{}\": its numbers come in blocks from the instance at the other end of sync {sync_id}, and this instance holds none now; the record was not created",
        field.no, field.name
    ))
}

/// Checks that a field drawing numbers from a sync names one that can ask for them: an
/// HTTP sync this instance starts (the owner answers as its passive side), or a folder
/// sync (requests and blocks travel in packet files either way).
pub(crate) fn check_source(
    tx: &mut dyn StoreTx,
    field_type: FieldType,
    numbering: Option<&Numbering>,
) -> Result<(), DomainError> {
    let Some(sync_id) = numbering.and_then(|n| n.from_sync) else {
        return Ok(());
    };
    debug_assert_eq!(field_type, FieldType::Number);
    let sync = tx
        .syncs()?
        .into_iter()
        .find(|s| s.id == sync_id)
        .ok_or_else(|| {
            DomainError::invalid(format!(
                "options.numbering.from_sync: there is no sync {sync_id}"
            ))
        })?;
    if sync.mode == Mode::Passive && sync.transport.kind() == Transport::Http {
        return Err(DomainError::invalid(format!(
            "options.numbering.from_sync: over HTTP numbers are drawn through a sync this instance starts (active side); sync {sync_id} \"{}\" only answers",
            sync.name
        )));
    }
    Ok(())
}

impl<S: Store> Instance<S> {
    /// Hands out `count` numbers of a sequence this instance owns, for another instance to
    /// use (first, last).
    pub fn allocate_number_block(
        &self,
        field_no: FieldNo,
        count: u32,
    ) -> Result<(i64, i64), DomainError> {
        let (table, field) = self.numbered_field(field_no)?;
        let numbering = field.options.numbering.clone().unwrap_or_default();
        if let Some(sync_id) = numbering.from_sync {
            return Err(DomainError::Conflict(format!(
                "field {field_no} does not own its numbering here (it draws from sync {sync_id})"
            )));
        }
        if count == 0 || count > crate::schema::MAX_NUMBER_BLOCK {
            return Err(DomainError::invalid(format!(
                "a block is from 1 to {} numbers",
                crate::schema::MAX_NUMBER_BLOCK
            )));
        }
        self.store().write(|tx| {
            tx.allocate_numbers(&table, field_no, count as i64, numbering.first_number())
        })
    }

    /// Keeps a block drawn from the owner for the records created here later.
    pub fn add_number_block(
        &self,
        field_no: FieldNo,
        first: i64,
        last: i64,
    ) -> Result<(), DomainError> {
        self.numbered_field(field_no)?;
        if first > last || first < 0 || last >= crate::schema::MAX_SEQUENCE_NUMBER {
            return Err(DomainError::invalid(format!(
                "the owner sent an impossible block of numbers: {first}–{last}"
            )));
        }
        self.store()
            .write(|tx| tx.add_number_block(field_no, first, last))
    }

    /// How many numbers drawn from the owner are still unused here.
    pub fn numbers_left(&self, field_no: FieldNo) -> Result<i64, DomainError> {
        self.store().read(|tx| tx.block_numbers_left(field_no))
    }

    fn numbered_field(&self, field_no: FieldNo) -> Result<(Table, Field), DomainError> {
        let field = self.field(field_no)?;
        if field.options.numbering.is_none() {
            return Err(DomainError::Conflict(format!(
                "field {field_no} \"{}\" is not numbered here (set options.numbering on it)",
                field.name
            )));
        }
        Ok((self.table(field.table_id)?, field))
    }
}

#[cfg(test)]
mod tests {
    use super::sequence_start;
    use crate::schema::MAX_SEQUENCE_NUMBER;

    #[test]
    fn a_sequence_starts_past_the_largest_number_and_never_wraps() {
        assert_eq!(sequence_start(None, 1), 1);
        assert_eq!(sequence_start(Some(41.5), 1), 42);
        assert_eq!(sequence_start(Some(-3.0), 100), 100);
        for huge in [1e19, f64::MAX, 9.3e18, MAX_SEQUENCE_NUMBER as f64] {
            assert!(
                sequence_start(Some(huge), 1) >= MAX_SEQUENCE_NUMBER,
                "{huge}"
            );
        }
    }
}
