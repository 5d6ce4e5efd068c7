//! One shared numbering (B-06) on a real store: what a user relies on is that no number is
//! ever given to two records — neither by the owner of a sequence, nor in the blocks it
//! hands out, nor from the blocks another instance draws — that a number cannot be typed
//! or edited, and that an instance without numbers left refuses the record instead of
//! making one up.

use crate::Backend;
use crmsync_domain::instance::{FieldPatch, WriteOp};
use crmsync_domain::schema::{MAX_NUMBER_BLOCK, MAX_SEQUENCE_NUMBER, Numbering};
use crmsync_domain::{
    Actor, DomainError, FieldOptions, Instance, Origin, RecordQuery, SystemClock, Value,
};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{Map, Value as Json, json};
use std::cell::RefCell;
use std::collections::BTreeSet;
use std::sync::Arc;

struct Fixture<B: Backend> {
    core: Instance<B::Store>,
    admin: Actor,
    table: i64,
    /// Where a folder sync's folders would be.
    folders: tempfile::TempDir,
    _place: B,
}

impl<B: Backend> Fixture<B> {
    fn new() -> Self {
        let place = B::new();
        let core = Instance::new(place.open(), Arc::new(SystemClock));
        core.ensure_admin(Some("password-1")).unwrap();
        let admin = Actor {
            user: core.users().unwrap().remove(0),
            origin: Origin::Api,
        };
        let table = core.create_table(&admin, "Invoices").unwrap().id;
        Fixture {
            core,
            admin,
            table,
            folders: tempfile::tempdir().unwrap(),
            _place: place,
        }
    }

    fn number_field(&self, name: &str, numbering: Option<Numbering>) -> i64 {
        let options = FieldOptions {
            numbering,
            ..FieldOptions::default()
        };
        self.core
            .create_field(&self.admin, self.table, name, "number", options)
            .unwrap()
            .no
    }

    fn create(&self, values: Json) -> Result<crmsync_domain::Record, DomainError> {
        let values: Map<String, Json> = serde_json::from_value(values).unwrap();
        self.core.create_record(&self.admin, self.table, &values)
    }

    /// The number a new record was given.
    fn create_numbered(&self, field: i64) -> Result<i64, DomainError> {
        let record = self.create(json!({}))?;
        Ok(number_of(&record, field))
    }

    fn record_count(&self) -> usize {
        let query = RecordQuery::default();
        self.core
            .list_records(self.table, &query)
            .unwrap()
            .records
            .len()
    }

    /// A sync whose other end owns the numbering (a folder sync: blocks travel either way).
    fn sync_to_owner(&self) -> i64 {
        let dirs = (
            self.folders.path().join("up"),
            self.folders.path().join("down"),
        );
        let input = serde_json::from_value(json!({
            "name": "owner",
            "mode": "active",
            "transport": "local",
            "password": "sync-password",
            "local": { "upload_dir": dirs.0, "download_dir": dirs.1 },
        }))
        .unwrap();
        self.core.create_sync(&self.admin, input).unwrap().id
    }
}

fn number_of(record: &crmsync_domain::Record, field: i64) -> i64 {
    match record.values.get(&field) {
        Some(Value::Number(n)) => *n as i64,
        other => panic!("record {} has no number: {other:?}", record.id),
    }
}

pub fn the_owner_numbers_records_one_by_one_from_the_start<B: Backend>() {
    let f = Fixture::<B>::new();
    let default = f.number_field("No", Some(Numbering::default()));
    let from_9000 = f.number_field(
        "Ref",
        Some(Numbering {
            start: Some(9000),
            ..Numbering::default()
        }),
    );
    let records: Vec<_> = (0..3).map(|_| f.create(json!({})).unwrap()).collect();
    let numbers = |field| {
        records
            .iter()
            .map(|r| number_of(r, field))
            .collect::<Vec<_>>()
    };
    assert_eq!(numbers(default), [1, 2, 3]);
    assert_eq!(numbers(from_9000), [9000, 9001, 9002]);
}

pub fn a_numbering_set_on_a_field_that_holds_numbers_starts_past_the_largest<B: Backend>() {
    let f = Fixture::<B>::new();
    let no = f.number_field("No", None);
    for typed in [5, 42, 7] {
        f.create(json!({ no.to_string(): typed })).unwrap();
    }
    let field = f.core.field(no).unwrap();
    let options = FieldOptions {
        numbering: Some(Numbering::default()),
        ..field.options
    };
    let patch = FieldPatch {
        options: Some(options),
        ..FieldPatch::default()
    };
    f.core.update_field(&f.admin, no, patch).unwrap();
    assert_eq!(f.create_numbered(no).unwrap(), 43);
    assert_eq!(f.create_numbered(no).unwrap(), 44);
}

pub fn a_number_is_never_typed_nor_edited<B: Backend>() {
    let f = Fixture::<B>::new();
    let no = f.number_field("No", Some(Numbering::default()));
    let err = f.create(json!({ no.to_string(): 7 })).unwrap_err();
    assert!(
        matches!(err, DomainError::Invalid { field: Some(n), .. } if n == no),
        "{err}"
    );
    assert!(err.to_string().contains("numbered automatically"), "{err}");
    // Empty is what a form sends for it: the number is assigned all the same.
    let record = f.create(json!({ no.to_string(): null })).unwrap();
    assert_eq!(number_of(&record, no), 1);
    let values: Map<String, Json> = serde_json::from_value(json!({ no.to_string(): 2 })).unwrap();
    let err = f
        .core
        .update_record(&f.admin, f.table, record.id, &values)
        .unwrap_err();
    assert!(err.to_string().contains("numbered automatically"), "{err}");
    assert_eq!(
        number_of(&f.core.record(f.table, record.id).unwrap(), no),
        1
    );
    assert_eq!(f.record_count(), 1, "the refused create made nothing");
}

pub fn a_failed_write_gives_its_number_to_no_record<B: Backend>() {
    let f = Fixture::<B>::new();
    let no = f.number_field("No", Some(Numbering::default()));
    let link = f
        .core
        .create_field(
            &f.admin,
            f.table,
            "Parent",
            "link",
            FieldOptions {
                table_id: Some(f.table),
                ..FieldOptions::default()
            },
        )
        .unwrap()
        .no;
    assert_eq!(f.create_numbered(no).unwrap(), 1);
    // Two creates in one transaction; the second links to no record, so neither is made.
    let mut ops = [
        WriteOp::Create(Vec::new()),
        WriteOp::Create(vec![(link, Value::Link(999_999))]),
    ]
    .into_iter()
    .map(Ok);
    assert!(f.core.write_ops(&f.admin, f.table, &mut ops).is_err());
    assert_eq!(f.record_count(), 1);
    let next = f.create_numbered(no).unwrap();
    let stored: BTreeSet<i64> = f
        .core
        .list_records(f.table, &RecordQuery::default())
        .unwrap()
        .records
        .iter()
        .map(|r| number_of(r, no))
        .collect();
    assert_eq!(stored.len(), 2, "no number twice: {stored:?}");
    assert!(next > 1, "{next}");
}

pub fn blocks_handed_out_and_numbers_used_here_never_overlap<B: Backend>() {
    let f = Fixture::<B>::new();
    let no = f.number_field(
        "No",
        Some(Numbering {
            start: Some(100),
            ..Numbering::default()
        }),
    );
    // Each step: a record created here (None) or a block of that many handed out.
    let steps = prop::collection::vec(prop::option::of(1..40u32), 1..30);
    let mut runner = TestRunner::new(Config::default());
    // Across all cases: the sequence goes on from one case to the next.
    let given: RefCell<BTreeSet<i64>> = RefCell::default();
    let result = runner.run(&steps, |steps| {
        for step in steps {
            let numbers: Vec<i64> = match step {
                None => vec![f.create_numbered(no).unwrap()],
                Some(count) => {
                    let (first, last) = f.core.allocate_number_block(no, count).unwrap();
                    prop_assert_eq!(
                        last - first + 1,
                        i64::from(count),
                        "block {}–{}",
                        first,
                        last
                    );
                    (first..=last).collect()
                }
            };
            for n in numbers {
                prop_assert!(n >= 100, "{} is before the start", n);
                prop_assert!(given.borrow_mut().insert(n), "{} given twice", n);
            }
        }
        Ok(())
    });
    if let Err(failure) = result {
        panic!("{failure}");
    }
}

pub fn a_block_is_from_one_to_the_largest_block_and_only_from_the_owner<B: Backend>() {
    let f = Fixture::<B>::new();
    let owned = f.number_field("No", Some(Numbering::default()));
    let plain = f.number_field("Amount", None);
    let sync = f.sync_to_owner();
    let drawn = f.number_field(
        "Ref",
        Some(Numbering {
            from_sync: Some(sync),
            ..Numbering::default()
        }),
    );
    for count in [0, MAX_NUMBER_BLOCK + 1] {
        let err = f.core.allocate_number_block(owned, count).unwrap_err();
        assert!(matches!(err, DomainError::Invalid { .. }), "{count}: {err}");
    }
    assert_eq!(
        f.core
            .allocate_number_block(owned, MAX_NUMBER_BLOCK)
            .unwrap(),
        (1, i64::from(MAX_NUMBER_BLOCK))
    );
    for field in [plain, drawn] {
        let err = f.core.allocate_number_block(field, 1).unwrap_err();
        assert!(matches!(err, DomainError::Conflict(_)), "{field}: {err}");
    }
}

pub fn an_instance_drawing_numbers_uses_its_blocks_in_order_and_refuses_records_without_one<
    B: Backend,
>() {
    let f = Fixture::<B>::new();
    let sync = f.sync_to_owner();
    let no = f.number_field(
        "No",
        Some(Numbering {
            from_sync: Some(sync),
            block: Some(3),
            ..Numbering::default()
        }),
    );
    let err = f.create_numbered(no).unwrap_err();
    assert!(matches!(err, DomainError::Unavailable(_)), "{err}");
    assert_eq!(f.record_count(), 0, "no record without a number");

    for (first, last) in [(-1, 3), (5, 4), (1, MAX_SEQUENCE_NUMBER)] {
        let err = f.core.add_number_block(no, first, last).unwrap_err();
        assert!(
            matches!(err, DomainError::Invalid { .. }),
            "{first}–{last}: {err}"
        );
    }
    f.core.add_number_block(no, 20, 21).unwrap();
    f.core.add_number_block(no, 10, 12).unwrap();
    assert_eq!(f.core.numbers_left(no).unwrap(), 5);
    let numbers: Vec<i64> = (0..5).map(|_| f.create_numbered(no).unwrap()).collect();
    assert_eq!(numbers, [10, 11, 12, 20, 21]);
    assert_eq!(f.core.numbers_left(no).unwrap(), 0);
    assert!(matches!(
        f.create_numbered(no).unwrap_err(),
        DomainError::Unavailable(_)
    ));
    assert_eq!(f.record_count(), 5);
}
