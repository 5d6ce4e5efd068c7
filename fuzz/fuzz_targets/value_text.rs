//! A spreadsheet cell or API text for every field type: a value or an error, never a
//! panic; an accepted value reads back the same from its own text.
#![no_main]

use crmsync_domain::{Field, FieldOptions, FieldType, Value};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let Some((selector, rest)) = bytes.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let field_type = FieldType::ALL[*selector as usize % FieldType::ALL.len()];
    let field = Field {
        no: 7,
        table_id: 1,
        name: "F".into(),
        field_type,
        options: FieldOptions {
            scale: (field_type == FieldType::Money).then_some(u32::from(selector >> 4) % 5),
            choices: (field_type == FieldType::Select).then(|| vec!["a".into(), "Б".into()]),
            ..Default::default()
        },
    };
    if let Ok(value) = Value::from_text(&field, text, &|_| None) {
        let again = value.to_text(&field, &|_| None);
        assert_eq!(Value::from_text(&field, &again, &|_| None).ok(), Some(value), "{text:?}");
    }
});
