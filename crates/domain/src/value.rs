//! Field values: parsing and validating what a client sends (JSON, or text from a CSV
//! cell), and rendering them back. Money is an exact integer of minor units, never a float.

use crate::schema::{Field, FieldType};
use crate::{DomainError, RecordId, UserId};
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{Date, OffsetDateTime, UtcOffset};

pub const MAX_TEXT_CHARS: usize = 10_000;
pub const MAX_LONGTEXT_BYTES: usize = 1 << 20;

/// A stored file's description; the content lives in the instance's file store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRef {
    pub name: String,
    pub size: u64,
    pub sha256: String,
}

impl FileRef {
    /// A file description that arrived from a peer: the checksum must be one (it names the
    /// stored content), the name is cleaned of any path.
    pub fn from_peer(json: &Json) -> Result<FileRef, String> {
        let file: FileRef = serde_json::from_value(json.clone())
            .map_err(|_| format!("{json} is not a file description"))?;
        if file.sha256.len() != 64 || !file.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!("\"{}\" is not a SHA-256 checksum", file.sha256));
        }
        Ok(FileRef {
            name: clean_file_name(&file.name),
            size: file.size,
            sha256: file.sha256.to_ascii_lowercase(),
        })
    }
}

/// The last path component of a given file name, without control characters: names are
/// shown to people and never become paths.
pub fn clean_file_name(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or_default();
    let cleaned: String = base.chars().filter(|c| !c.is_control()).take(255).collect();
    let cleaned = cleaned.trim();
    if cleaned.is_empty() || cleaned == "." || cleaned == ".." {
        "file".to_string()
    } else {
        cleaned.to_string()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    /// text, longtext and select.
    Text(String),
    Number(f64),
    /// Minor units at the field's scale: 1500.50 at scale 2 is 150050.
    Money(i64),
    /// `YYYY-MM-DD`.
    Date(String),
    /// RFC 3339 in UTC.
    Datetime(String),
    User(UserId),
    Link(RecordId),
    File(FileRef),
}

impl Value {
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// Validates a JSON value sent for `field`. References (user, link) are checked for
    /// existence by the write path, which can see the store.
    pub fn from_json(field: &Field, json: &Json) -> Result<Value, DomainError> {
        if json.is_null() {
            return Ok(Value::Null);
        }
        let wrong = |expected: &str| {
            DomainError::invalid_field(
                field.no,
                format!(
                    "field {} \"{}\" ({}): expected {expected}, got {}",
                    field.no,
                    field.name,
                    field.field_type.as_str(),
                    json_kind(json)
                ),
            )
        };
        match field.field_type {
            FieldType::Text | FieldType::Longtext | FieldType::Select => {
                let s = json.as_str().ok_or_else(|| wrong("a string"))?;
                Value::from_text_checked(field, s)
            }
            FieldType::Number => {
                let n = json.as_f64().ok_or_else(|| wrong("a number"))?;
                Ok(Value::Number(n))
            }
            FieldType::Money => match json {
                Json::String(s) => parse_money(field, s),
                Json::Number(n) if n.is_i64() => {
                    let units = n.as_i64().unwrap_or_default();
                    scale_up(field, units as i128)
                }
                _ => Err(wrong("a decimal string such as \"1500.50\"")),
            },
            FieldType::Date => {
                let s = json
                    .as_str()
                    .ok_or_else(|| wrong("a date \"YYYY-MM-DD\""))?;
                parse_date(field, s)
            }
            FieldType::Datetime => {
                let s = json.as_str().ok_or_else(|| {
                    wrong("an RFC 3339 date-time such as \"2024-05-01T10:00:00Z\"")
                })?;
                parse_datetime(field, s)
            }
            FieldType::User => {
                let id = json.as_i64().ok_or_else(|| wrong("a user id (integer)"))?;
                Ok(Value::User(id))
            }
            FieldType::Link => {
                let id = json
                    .as_i64()
                    .ok_or_else(|| wrong("a record id (integer)"))?;
                Ok(Value::Link(id))
            }
            FieldType::File => Err(DomainError::invalid_field(
                field.no,
                format!(
                    "field {} \"{}\" is a file field: upload its content with PUT .../files/{}, or send null to clear it",
                    field.no, field.name, field.no
                ),
            )),
        }
    }

    /// Parses a spreadsheet cell. An empty cell is null. User cells may hold a login, a
    /// full name or an id: `resolve_user` decides.
    pub fn from_text(
        field: &Field,
        text: &str,
        resolve_user: &dyn Fn(&str) -> Option<UserId>,
    ) -> Result<Value, DomainError> {
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Ok(Value::Null);
        }
        let invalid = |what: &str| {
            DomainError::invalid_field(
                field.no,
                format!(
                    "field {} \"{}\" ({}): {what}: \"{trimmed}\"",
                    field.no,
                    field.name,
                    field.field_type.as_str()
                ),
            )
        };
        match field.field_type {
            FieldType::Text | FieldType::Longtext | FieldType::Select => {
                Value::from_text_checked(field, text)
            }
            FieldType::Number => {
                let cleaned: String = trimmed
                    .chars()
                    .filter(|c| !c.is_whitespace())
                    .map(|c| if c == ',' { '.' } else { c })
                    .collect();
                cleaned
                    .parse::<f64>()
                    .ok()
                    .filter(|n| n.is_finite())
                    .map(Value::Number)
                    .ok_or_else(|| invalid("not a number"))
            }
            FieldType::Money => parse_money(field, trimmed),
            FieldType::Date => parse_date(field, trimmed).or_else(|_| {
                parse_russian_date(trimmed)
                    .ok_or_else(|| invalid("not a date (YYYY-MM-DD or DD.MM.YYYY)"))
            }),
            FieldType::Datetime => parse_datetime(field, trimmed),
            FieldType::User => resolve_user(trimmed)
                .map(Value::User)
                .ok_or_else(|| invalid("no user with this login, full name or id")),
            FieldType::Link => trimmed
                .parse::<i64>()
                .map(Value::Link)
                .map_err(|_| invalid("not a record id")),
            FieldType::File => Err(invalid(
                "file content cannot be imported from a spreadsheet",
            )),
        }
    }

    fn from_text_checked(field: &Field, s: &str) -> Result<Value, DomainError> {
        // PostgreSQL keeps no NUL in text: refused here, the same for every store and for
        // a peer's value (held with its reason) as for a typed one.
        if s.contains('\0') {
            return Err(DomainError::invalid_field(
                field.no,
                format!(
                    "field {} \"{}\": text holds a NUL character (code 0)",
                    field.no, field.name
                ),
            ));
        }
        match field.field_type {
            FieldType::Text if s.chars().count() > MAX_TEXT_CHARS => {
                Err(DomainError::invalid_field(
                    field.no,
                    format!(
                        "field {} \"{}\": text is longer than {MAX_TEXT_CHARS} characters; use a longtext field",
                        field.no, field.name
                    ),
                ))
            }
            FieldType::Longtext if s.len() > MAX_LONGTEXT_BYTES => Err(DomainError::invalid_field(
                field.no,
                format!("field {} \"{}\": longer than 1 MiB", field.no, field.name),
            )),
            FieldType::Select => {
                let choices = field.options.choices.as_deref().unwrap_or_default();
                if choices.iter().any(|c| c == s) {
                    Ok(Value::Text(s.to_string()))
                } else {
                    Err(DomainError::invalid_field(
                        field.no,
                        format!(
                            "field {} \"{}\": \"{s}\" is not one of its choices ({})",
                            field.no,
                            field.name,
                            choices.join(", ")
                        ),
                    ))
                }
            }
            _ => Ok(Value::Text(s.to_string())),
        }
    }

    /// The API's JSON shape of this value.
    pub fn to_json(&self, field: &Field) -> Json {
        match self {
            Value::Null => Json::Null,
            Value::Text(s) | Value::Date(s) | Value::Datetime(s) => Json::String(s.clone()),
            Value::Number(n) => number_json(*n),
            Value::Money(units) => Json::String(format_money(*units, field.options.money_scale())),
            Value::User(id) | Value::Link(id) => Json::from(*id),
            Value::File(f) => serde_json::to_value(f).unwrap_or(Json::Null),
        }
    }

    /// The spreadsheet text of this value; users are written by login via `user_login`.
    pub fn to_text(&self, field: &Field, user_login: &dyn Fn(UserId) -> Option<String>) -> String {
        match self {
            Value::Null => String::new(),
            Value::Text(s) | Value::Date(s) | Value::Datetime(s) => s.clone(),
            Value::Number(n) => number_json(*n).to_string(),
            Value::Money(units) => format_money(*units, field.options.money_scale()),
            Value::User(id) => user_login(*id).unwrap_or_else(|| id.to_string()),
            Value::Link(id) => id.to_string(),
            Value::File(f) => f.name.clone(),
        }
    }
}

fn number_json(n: f64) -> Json {
    if n.fract() == 0.0 && n.abs() < 9.0e15 {
        Json::from(n as i64)
    } else {
        serde_json::Number::from_f64(n)
            .map(Json::Number)
            .unwrap_or(Json::Null)
    }
}

fn json_kind(json: &Json) -> &'static str {
    match json {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "an array",
        Json::Object(_) => "an object",
    }
}

fn scale_up(field: &Field, whole: i128) -> Result<Value, DomainError> {
    let factor = 10i128.pow(field.options.money_scale());
    i64::try_from(whole * factor)
        .map(Value::Money)
        .map_err(|_| {
            DomainError::invalid_field(
                field.no,
                format!("field {} \"{}\": amount is too large", field.no, field.name),
            )
        })
}

/// Parses "1500.50", "-3", "1 500,50" exactly; more decimals than the field's scale is an
/// error, not a rounding.
pub fn parse_money(field: &Field, s: &str) -> Result<Value, DomainError> {
    let scale = field.options.money_scale();
    let invalid = |why: &str| {
        DomainError::invalid_field(
            field.no,
            format!(
                "field {} \"{}\" (money): {why}: \"{s}\"",
                field.no, field.name
            ),
        )
    };
    let cleaned: String = s
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '\u{a0}')
        .collect();
    if cleaned.contains('.') && cleaned.contains(',') {
        return Err(invalid(
            "use one decimal separator and no thousands separators",
        ));
    }
    let cleaned = cleaned.replace(',', ".");
    let (negative, digits) = match cleaned.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, cleaned.strip_prefix('+').unwrap_or(&cleaned)),
    };
    let (whole, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let all_digits = |p: &str| p.chars().all(|c| c.is_ascii_digit());
    if whole.is_empty() && frac.is_empty() || !all_digits(whole) || !all_digits(frac) {
        return Err(invalid("not a decimal amount"));
    }
    if frac.len() > scale as usize {
        return Err(invalid(&format!("more than {scale} decimal places")));
    }
    // Every amount an i64 holds is read, the most negative one included.
    let largest = if negative {
        -i128::from(i64::MIN)
    } else {
        i128::from(i64::MAX)
    };
    let mut units: i128 = 0;
    for c in whole
        .chars()
        .chain(frac.chars())
        .chain(std::iter::repeat_n('0', scale as usize - frac.len()))
    {
        units = units * 10 + i128::from(c as u8 - b'0');
        if units > largest {
            return Err(invalid("amount is too large"));
        }
    }
    let units = if negative { -units } else { units };
    Ok(Value::Money(units as i64))
}

pub fn format_money(units: i64, scale: u32) -> String {
    let sign = if units < 0 { "-" } else { "" };
    let abs = units.unsigned_abs();
    if scale == 0 {
        return format!("{sign}{abs}");
    }
    let factor = 10u64.pow(scale);
    format!(
        "{sign}{}.{:0width$}",
        abs / factor,
        abs % factor,
        width = scale as usize
    )
}

fn parse_date(field: &Field, s: &str) -> Result<Value, DomainError> {
    let format = format_description!("[year]-[month]-[day]");
    Date::parse(s.trim(), &format)
        .map(|d| Value::Date(d.format(&format).unwrap_or_default()))
        .map_err(|_| {
            DomainError::invalid_field(
                field.no,
                format!(
                    "field {} \"{}\" (date): expected a real date as \"YYYY-MM-DD\", got \"{s}\"",
                    field.no, field.name
                ),
            )
        })
}

/// `DD.MM.YYYY`, as Russian spreadsheets write dates.
fn parse_russian_date(s: &str) -> Option<Value> {
    let format = format_description!("[day].[month].[year]");
    let date = Date::parse(s, &format).ok()?;
    Some(Value::Date(
        date.format(format_description!("[year]-[month]-[day]"))
            .ok()?,
    ))
}

fn parse_datetime(field: &Field, s: &str) -> Result<Value, DomainError> {
    OffsetDateTime::parse(s.trim(), &Rfc3339)
        .ok()
        .and_then(|t| t.to_offset(UtcOffset::UTC).format(&Rfc3339).ok())
        .map(Value::Datetime)
        .ok_or_else(|| {
            DomainError::invalid_field(
                field.no,
                format!(
                    "field {} \"{}\" (datetime): expected RFC 3339 such as \"2024-05-01T10:00:00Z\", got \"{s}\"",
                    field.no, field.name
                ),
            )
        })
}

/// Formats epoch milliseconds as RFC 3339 UTC.
pub fn format_ms(ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::FieldOptions;
    use serde_json::json;

    #[test]
    fn file_names_never_carry_paths() {
        assert_eq!(clean_file_name("../../etc/passwd"), "passwd");
        assert_eq!(clean_file_name("C:\\x\\report.pdf"), "report.pdf");
        assert_eq!(clean_file_name(".."), "file");
        assert_eq!(clean_file_name("счёт.pdf"), "счёт.pdf");
    }

    #[test]
    fn a_peers_file_description_is_checked() {
        let sha = "AB".repeat(32);
        let file = FileRef::from_peer(&json!({"name": "../x/счёт.pdf", "size": 3, "sha256": sha}))
            .unwrap();
        assert_eq!(file.name, "счёт.pdf");
        assert_eq!(file.sha256, "ab".repeat(32));
        assert!(
            FileRef::from_peer(&json!({"name": "a", "size": 3, "sha256": "../../etc"})).is_err()
        );
        assert!(FileRef::from_peer(&json!({"name": "a", "size": -1, "sha256": sha})).is_err());
        assert!(FileRef::from_peer(&json!("a.pdf")).is_err());
    }

    fn field(field_type: FieldType, options: FieldOptions) -> Field {
        Field {
            no: 7,
            table_id: 1,
            name: "F".into(),
            field_type,
            options,
        }
    }

    #[test]
    fn money_is_exact() {
        let f = field(FieldType::Money, FieldOptions::default());
        assert_eq!(
            Value::from_json(&f, &json!("1500.50")).unwrap(),
            Value::Money(150050)
        );
        assert_eq!(
            Value::from_json(&f, &json!("0.1")).unwrap(),
            Value::Money(10)
        );
        assert_eq!(
            Value::from_json(&f, &json!(12)).unwrap(),
            Value::Money(1200)
        );
        assert_eq!(
            Value::from_json(&f, &json!("-3,05")).unwrap(),
            Value::Money(-305)
        );
        assert_eq!(
            Value::from_text(&f, "1 500,5", &|_| None).unwrap(),
            Value::Money(150050)
        );
        assert!(
            Value::from_json(&f, &json!(1.5)).is_err(),
            "floats are refused"
        );
        assert!(
            Value::from_json(&f, &json!("1.005")).is_err(),
            "no silent rounding"
        );
        assert!(Value::from_json(&f, &json!("1,500.00")).is_err());
        assert!(Value::from_json(&f, &json!("abc")).is_err());
        assert!(Value::from_json(&f, &json!("99999999999999999999")).is_err());
        assert_eq!(Value::Money(150050).to_json(&f), json!("1500.50"));
        assert_eq!(Value::Money(-5).to_json(&f), json!("-0.05"));
    }

    #[test]
    fn dates_must_be_real() {
        let f = field(FieldType::Date, FieldOptions::default());
        assert_eq!(
            Value::from_json(&f, &json!("2024-02-29")).unwrap(),
            Value::Date("2024-02-29".into())
        );
        assert!(Value::from_json(&f, &json!("2023-02-29")).is_err());
        assert!(
            Value::from_json(&f, &json!("01.02.2024")).is_err(),
            "the API takes ISO 8601 only"
        );
        assert_eq!(
            Value::from_text(&f, "01.02.2024", &|_| None).unwrap(),
            Value::Date("2024-02-01".into())
        );
    }

    #[test]
    fn datetimes_are_normalised_to_utc() {
        let f = field(FieldType::Datetime, FieldOptions::default());
        assert_eq!(
            Value::from_json(&f, &json!("2024-05-01T13:00:00+03:00")).unwrap(),
            Value::Datetime("2024-05-01T10:00:00Z".into())
        );
        assert!(Value::from_json(&f, &json!("2024-05-01 10:00")).is_err());
    }

    #[test]
    fn select_takes_only_its_choices() {
        let f = field(
            FieldType::Select,
            FieldOptions {
                choices: Some(vec!["new".into(), "paid".into()]),
                ..Default::default()
            },
        );
        assert!(Value::from_json(&f, &json!("paid")).is_ok());
        let err = Value::from_json(&f, &json!("lost")).unwrap_err();
        assert!(err.to_string().contains("not one of its choices"), "{err}");
    }

    #[test]
    fn wrong_types_name_the_field() {
        let f = field(FieldType::Number, FieldOptions::default());
        let err = Value::from_json(&f, &json!("12")).unwrap_err();
        assert!(matches!(err, DomainError::Invalid { field: Some(7), .. }));
        assert!(err.to_string().contains("\"F\""));
    }

    /// Parsing holds for any input, not just the examples above: every value a field can
    /// hold comes back unchanged from its JSON and its spreadsheet text, and anything else
    /// is an error, never a panic.
    mod properties {
        use super::*;
        use crate::schema::MAX_MONEY_SCALE;
        use proptest::prelude::*;
        use time::{Month, Time};

        fn money(scale: u32) -> Field {
            field(
                FieldType::Money,
                FieldOptions {
                    scale: Some(scale),
                    ..Default::default()
                },
            )
        }

        /// A round trip of `value` through the field's JSON and its text.
        fn round_trips(field: &Field, value: &Value) -> Result<(), TestCaseError> {
            let json = value.to_json(field);
            prop_assert_eq!(
                &Value::from_json(field, &json).unwrap(),
                value,
                "JSON {}",
                json
            );
            // And as the JSON travels: text on the wire.
            let wire: Json = serde_json::from_str(&json.to_string()).unwrap();
            prop_assert_eq!(
                &Value::from_json(field, &wire).unwrap(),
                value,
                "wire {}",
                wire
            );
            let text = value.to_text(field, &|_| None);
            prop_assert_eq!(
                &Value::from_text(field, &text, &|_| None).unwrap(),
                value,
                "text {}",
                text
            );
            Ok(())
        }

        fn dates() -> impl Strategy<Value = Date> {
            let first = Date::from_calendar_date(1, Month::January, 1).unwrap();
            let last = Date::from_calendar_date(9999, Month::December, 31).unwrap();
            (first.to_julian_day()..=last.to_julian_day())
                .prop_map(|day| Date::from_julian_day(day).unwrap())
        }

        fn field_types() -> impl Strategy<Value = FieldType> {
            prop::sample::select(vec![
                FieldType::Text,
                FieldType::Longtext,
                FieldType::Select,
                FieldType::Number,
                FieldType::Money,
                FieldType::Date,
                FieldType::Datetime,
                FieldType::User,
                FieldType::Link,
                FieldType::File,
            ])
        }

        /// Strings near what people type into number, money and date cells.
        fn cell_text() -> impl Strategy<Value = String> {
            prop_oneof![
                any::<String>(),
                "[-+0-9.,: TZ\u{a0}]{0,30}",
                "[0-9]{1,25}[.,][0-9]{0,25}",
            ]
        }

        proptest! {
            #[test]
            fn any_amount_round_trips_at_every_scale(
                scale in 0..=MAX_MONEY_SCALE,
                units in prop_oneof![Just(i64::MIN), Just(i64::MAX), Just(0), any::<i64>()],
            ) {
                round_trips(&money(scale), &Value::Money(units))?;
            }

            #[test]
            fn an_amount_with_up_to_scale_decimals_is_read_exactly(
                scale in 0..=MAX_MONEY_SCALE,
                negative in any::<bool>(),
                whole in 0..1_000_000_000_000u64,
                decimals in prop::collection::vec(0..10u8, 0..=6),
                comma in any::<bool>(),
            ) {
                let f = money(scale);
                let frac: String = decimals.iter().map(|d| char::from(b'0' + d)).collect();
                let sign = if negative { "-" } else { "" };
                let separator = if comma { "," } else { "." };
                let typed = if frac.is_empty() {
                    format!("{sign}{whole}")
                } else {
                    format!("{sign}{whole}{separator}{frac}")
                };
                let parsed = parse_money(&f, &typed);
                if frac.len() > scale as usize {
                    prop_assert!(parsed.is_err(), "{} at scale {}: no rounding", typed, scale);
                } else {
                    let padded = format!("{frac:0<width$}", width = scale as usize);
                    let magnitude = i64::try_from(whole).unwrap() * 10i64.pow(scale)
                        + padded.parse::<i64>().unwrap_or(0);
                    let units = if negative { -magnitude } else { magnitude };
                    prop_assert_eq!(parsed.unwrap(), Value::Money(units), "{}", typed);
                    // Thousands spaced out, as spreadsheets show them, read the same.
                    let spaced: String = typed
                        .chars()
                        .flat_map(|c| [c, '\u{a0}'])
                        .collect();
                    prop_assert_eq!(parse_money(&f, &spaced).unwrap(), Value::Money(units), "{:?}", spaced);
                }
            }

            #[test]
            fn a_whole_json_number_is_an_amount_in_major_units(
                scale in 0..=MAX_MONEY_SCALE,
                whole in any::<i64>(),
            ) {
                let expected = i128::from(whole) * 10i128.pow(scale);
                match (Value::from_json(&money(scale), &json!(whole)), i64::try_from(expected)) {
                    (Ok(value), Ok(units)) => prop_assert_eq!(value, Value::Money(units)),
                    (Err(_), Err(_)) => {}
                    (got, _) => prop_assert!(false, "{} at scale {}: {:?}", whole, scale, got),
                }
            }

            #[test]
            fn any_finite_number_round_trips(
                n in prop::num::f64::NORMAL
                    | prop::num::f64::SUBNORMAL
                    | prop::num::f64::ZERO
                    | prop::num::f64::POSITIVE
                    | prop::num::f64::NEGATIVE,
            ) {
                round_trips(&field(FieldType::Number, FieldOptions::default()), &Value::Number(n))?;
            }

            #[test]
            fn any_date_round_trips_and_reads_as_a_russian_spreadsheet_writes_it(date in dates()) {
                let f = field(FieldType::Date, FieldOptions::default());
                let iso = format!("{:04}-{:02}-{:02}", date.year(), date.month() as u8, date.day());
                let value = Value::from_json(&f, &json!(iso)).unwrap();
                prop_assert_eq!(&value, &Value::Date(iso.clone()));
                round_trips(&f, &value)?;
                let russian = format!("{:02}.{:02}.{:04}", date.day(), date.month() as u8, date.year());
                prop_assert_eq!(Value::from_text(&f, &russian, &|_| None).unwrap(), value);
            }

            #[test]
            fn a_day_past_the_end_of_its_month_is_refused(
                year in 1..=9999i32,
                month in 1..=12u8,
                past in 1..=20u8,
            ) {
                let f = field(FieldType::Date, FieldOptions::default());
                let month_of = Month::try_from(month).unwrap();
                let day = month_of.length(year) + past;
                for typed in [
                    format!("{year:04}-{month:02}-{day:02}"),
                    format!("{year:04}-{month:02}-00"),
                    format!("{year:04}-{:02}-01", month + 12),
                ] {
                    prop_assert!(Value::from_json(&f, &json!(typed)).is_err(), "{}", typed);
                    prop_assert!(Value::from_text(&f, &typed, &|_| None).is_err(), "{}", typed);
                }
                let russian = format!("{day:02}.{month:02}.{year:04}");
                prop_assert!(Value::from_text(&f, &russian, &|_| None).is_err(), "{}", russian);
            }

            #[test]
            fn any_date_time_is_kept_as_the_same_instant_in_utc(
                date in dates(),
                seconds in 0..86_400u32,
                nanos in prop_oneof![Just(0u32), 0..1_000_000_000u32],
                offset_minutes in -(23 * 60 + 59)..=(23 * 60 + 59i32),
            ) {
                let f = field(FieldType::Datetime, FieldOptions::default());
                let time = Time::from_hms_nano(
                    (seconds / 3600) as u8,
                    (seconds / 60 % 60) as u8,
                    (seconds % 60) as u8,
                    nanos,
                )
                .unwrap();
                let offset = UtcOffset::from_whole_seconds(offset_minutes * 60).unwrap();
                let instant = date.with_time(time).assume_offset(offset);
                // Instants whose UTC date leaves years 1–9999 cannot be written in RFC 3339.
                let Ok(typed) = instant.format(&Rfc3339) else { return Ok(()) };
                let utc = instant.to_offset(UtcOffset::UTC);
                let value = Value::from_json(&f, &json!(typed));
                if utc.year() < 1 || utc.year() > 9999 {
                    prop_assert!(value.is_err(), "{}", typed);
                    return Ok(());
                }
                let value = value.unwrap();
                let Value::Datetime(stored) = &value else { panic!("{value:?}") };
                prop_assert!(stored.ends_with('Z'), "{}", stored);
                prop_assert_eq!(OffsetDateTime::parse(stored, &Rfc3339).unwrap(), instant, "{} → {}", typed, stored);
                round_trips(&f, &value)?;
            }

            #[test]
            fn an_impossible_date_time_is_refused(
                date in dates(),
                (hour, minute, second) in prop_oneof![
                    (24..100u8, 0..60u8, 0..60u8),
                    (0..24u8, 60..100u8, 0..60u8),
                    (0..24u8, 0..60u8, 61..100u8),
                ],
            ) {
                let f = field(FieldType::Datetime, FieldOptions::default());
                let typed = format!(
                    "{:04}-{:02}-{:02}T{hour:02}:{minute:02}:{second:02}Z",
                    date.year(),
                    date.month() as u8,
                    date.day()
                );
                prop_assert!(Value::from_json(&f, &json!(typed)).is_err(), "{}", typed);
            }

            #[test]
            fn any_text_for_any_field_is_a_value_or_an_error_never_a_panic(
                field_type in field_types(),
                scale in 0..=MAX_MONEY_SCALE,
                text in cell_text(),
            ) {
                let f = field(
                    field_type,
                    FieldOptions {
                        scale: (field_type == FieldType::Money).then_some(scale),
                        choices: (field_type == FieldType::Select).then(|| vec!["a".into()]),
                        ..Default::default()
                    },
                );
                let json = Value::from_json(&f, &json!(text));
                let cell = Value::from_text(&f, &text, &|_| None);
                // What is accepted is kept in its normal form: reading it again changes nothing.
                if let Ok(value) = json.and(cell) {
                    let again = value.to_text(&f, &|_| None);
                    prop_assert_eq!(Value::from_text(&f, &again, &|_| None).unwrap(), value, "{:?}", text);
                }
            }

            #[test]
            fn a_money_field_refuses_what_is_not_an_amount(
                scale in 0..=MAX_MONEY_SCALE,
                text in "[0-9]{0,5}([.,][0-9]{0,3}){2,3}|[0-9]*[a-zA-Z_/*][0-9]*|[+-]{2}[0-9]{1,5}|[.,]",
            ) {
                prop_assert!(parse_money(&money(scale), &text).is_err(), "{:?}", text);
            }
        }
    }
}
