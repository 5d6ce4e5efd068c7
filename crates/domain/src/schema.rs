//! User-defined tables and fields. Field numbers are unique across the whole instance and
//! never reused, because syncs map fields by number.

use crate::{DomainError, FieldNo, TableId};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FieldType {
    Text,
    Longtext,
    Number,
    Money,
    Date,
    Datetime,
    Select,
    User,
    Link,
    File,
}

impl FieldType {
    pub const ALL: [FieldType; 10] = [
        FieldType::Text,
        FieldType::Longtext,
        FieldType::Number,
        FieldType::Money,
        FieldType::Date,
        FieldType::Datetime,
        FieldType::Select,
        FieldType::User,
        FieldType::Link,
        FieldType::File,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FieldType::Text => "text",
            FieldType::Longtext => "longtext",
            FieldType::Number => "number",
            FieldType::Money => "money",
            FieldType::Date => "date",
            FieldType::Datetime => "datetime",
            FieldType::Select => "select",
            FieldType::User => "user",
            FieldType::Link => "link",
            FieldType::File => "file",
        }
    }

    pub fn parse(name: &str) -> Result<FieldType, DomainError> {
        FieldType::ALL
            .into_iter()
            .find(|t| t.as_str() == name)
            .ok_or_else(|| {
                let all: Vec<&str> = FieldType::ALL.iter().map(|t| t.as_str()).collect();
                DomainError::invalid(format!(
                    "unknown field type \"{name}\"; expected one of: {}",
                    all.join(", ")
                ))
            })
    }

    /// Types whose values `q` searches.
    pub fn is_searchable_text(self) -> bool {
        matches!(
            self,
            FieldType::Text | FieldType::Longtext | FieldType::Select
        )
    }
}

/// Per-type settings: `choices` for select, `table_id` for link, `scale` (decimal places,
/// default 2) for money.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldOptions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub choices: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table_id: Option<TableId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale: Option<u32>,
    /// A number field whose values this instance assigns from one shared sequence (B-06).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub numbering: Option<Numbering>,
}

/// Where a numbered field's numbers come from. Without `from_sync` this instance owns the
/// sequence and hands out numbers from `start` (default 1, or past the largest number
/// already stored); with it, numbers come in blocks of `block` from the instance at the
/// other end of that sync, kept here until used, so creating a record needs no round trip.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Numbering {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_sync: Option<crate::sync::SyncId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block: Option<u32>,
}

pub const DEFAULT_NUMBER_BLOCK: u32 = 100;
pub const MAX_NUMBER_BLOCK: u32 = 100_000;
/// Numbers stay below 2^53 so they are exact in JSON and in the f64 a number value is.
pub const MAX_SEQUENCE_NUMBER: i64 = 1 << 53;

impl Numbering {
    pub fn block_size(&self) -> u32 {
        self.block.unwrap_or(DEFAULT_NUMBER_BLOCK)
    }

    pub fn first_number(&self) -> i64 {
        self.start.unwrap_or(1)
    }
}

pub const DEFAULT_MONEY_SCALE: u32 = 2;
pub const MAX_MONEY_SCALE: u32 = 6;
pub const MAX_NAME_CHARS: usize = 200;

impl FieldOptions {
    /// Checks the options fit the type; `table_exists` answers for link targets.
    pub fn validate(
        &self,
        field_type: FieldType,
        table_exists: impl Fn(TableId) -> bool,
    ) -> Result<(), DomainError> {
        let only = |allowed: &[&str]| -> Result<(), DomainError> {
            let given = [
                ("choices", self.choices.is_some()),
                ("table_id", self.table_id.is_some()),
                ("scale", self.scale.is_some()),
                ("numbering", self.numbering.is_some()),
            ];
            for (name, present) in given {
                if present && !allowed.contains(&name) {
                    return Err(DomainError::invalid(format!(
                        "option \"{name}\" does not apply to a {} field",
                        field_type.as_str()
                    )));
                }
            }
            Ok(())
        };
        match field_type {
            FieldType::Select => {
                only(&["choices"])?;
                let choices = self.choices.as_deref().unwrap_or_default();
                if choices.is_empty() {
                    return Err(DomainError::invalid(
                        "a select field needs options.choices: a non-empty list of strings",
                    ));
                }
                let mut seen = std::collections::HashSet::new();
                for choice in choices {
                    if choice.trim().is_empty() {
                        return Err(DomainError::invalid("select choices must not be empty"));
                    }
                    if !seen.insert(choice) {
                        return Err(DomainError::invalid(format!(
                            "select choice \"{choice}\" is listed twice"
                        )));
                    }
                }
            }
            FieldType::Link => {
                only(&["table_id"])?;
                let target = self.table_id.ok_or_else(|| {
                    DomainError::invalid("a link field needs options.table_id: the linked table")
                })?;
                if !table_exists(target) {
                    return Err(DomainError::invalid(format!(
                        "options.table_id: there is no table {target}"
                    )));
                }
            }
            FieldType::Money => {
                only(&["scale"])?;
                if self.scale.is_some_and(|s| s > MAX_MONEY_SCALE) {
                    return Err(DomainError::invalid(format!(
                        "options.scale: at most {MAX_MONEY_SCALE} decimal places"
                    )));
                }
            }
            FieldType::Number => {
                only(&["numbering"])?;
                if let Some(numbering) = &self.numbering {
                    if !(1..=MAX_NUMBER_BLOCK).contains(&numbering.block_size()) {
                        return Err(DomainError::invalid(format!(
                            "options.numbering.block: from 1 to {MAX_NUMBER_BLOCK} numbers"
                        )));
                    }
                    if !(0..MAX_SEQUENCE_NUMBER).contains(&numbering.first_number()) {
                        return Err(DomainError::invalid(
                            "options.numbering.start: a whole number from 0 to 2^53",
                        ));
                    }
                    if numbering.from_sync.is_some() && numbering.start.is_some() {
                        return Err(DomainError::invalid(
                            "options.numbering.start applies to the instance that owns the sequence, not to one drawing from a sync",
                        ));
                    }
                }
            }
            _ => only(&[])?,
        }
        Ok(())
    }

    pub fn money_scale(&self) -> u32 {
        self.scale.unwrap_or(DEFAULT_MONEY_SCALE)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Field {
    /// The field number: unique in the whole instance.
    #[serde(rename = "id")]
    pub no: FieldNo,
    pub table_id: TableId,
    pub name: String,
    #[serde(rename = "type")]
    pub field_type: FieldType,
    pub options: FieldOptions,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Table {
    pub id: TableId,
    pub name: String,
    pub fields: Vec<Field>,
}

impl Table {
    pub fn field(&self, no: FieldNo) -> Option<&Field> {
        self.fields.iter().find(|f| f.no == no)
    }

    pub fn field_by_name(&self, name: &str) -> Option<&Field> {
        let wanted = name.trim();
        self.fields.iter().find(|f| {
            f.name.eq_ignore_ascii_case(wanted) || f.name.to_lowercase() == wanted.to_lowercase()
        })
    }
}

/// Checks a table or field name: non-empty, bounded, one line.
pub fn validate_name(what: &str, name: &str) -> Result<String, DomainError> {
    let name = name.trim();
    if name.is_empty() {
        return Err(DomainError::invalid(format!(
            "{what} name must not be empty"
        )));
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(DomainError::invalid(format!(
            "{what} name is longer than {MAX_NAME_CHARS} characters"
        )));
    }
    if name.chars().any(char::is_control) {
        return Err(DomainError::invalid(format!(
            "{what} name must not contain control characters"
        )));
    }
    Ok(name.to_string())
}
