//! CSV import and export of a table (B-11), shared by the CLI and the API.
//!
//! Import reads UTF-8 or Windows-1251 (what Russian spreadsheets save), detects `;`, `,`
//! or tab, matches the header row to field names, and writes every row through the domain's
//! write path in one transaction: either all rows arrive or none, with a report of every
//! rejected row.

use crate::app::Core;
use crmsync_domain::instance::{MAX_REPORTED_ROW_ERRORS, WriteOp};
use crmsync_domain::record::StatusFilter;
use crmsync_domain::{Actor, DomainError, Field, FieldType, RecordQuery, RowError, User, Value};
use encoding_rs::WINDOWS_1251;
use std::collections::HashMap;
use std::io::{Read, Seek, Write};
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CsvEncoding {
    /// UTF-8 if the file is valid UTF-8, else Windows-1251.
    #[default]
    Auto,
    Utf8,
    Windows1251,
}

impl FromStr for CsvEncoding {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(CsvEncoding::Auto),
            "utf-8" | "utf8" => Ok(CsvEncoding::Utf8),
            "windows-1251" | "cp1251" | "win1251" => Ok(CsvEncoding::Windows1251),
            other => Err(format!(
                "unknown encoding \"{other}\"; use auto, utf-8 or windows-1251"
            )),
        }
    }
}

/// A delimiter as typed by a person: `;`, `,`, `tab` (or `auto` = None).
pub fn parse_delimiter(s: &str) -> Result<Option<u8>, String> {
    match s {
        "auto" => Ok(None),
        ";" => Ok(Some(b';')),
        "," => Ok(Some(b',')),
        "tab" | "\t" => Ok(Some(b'\t')),
        other => Err(format!(
            "unknown delimiter \"{other}\"; use ; , tab or auto"
        )),
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub struct ImportOptions {
    pub encoding: CsvEncoding,
    pub delimiter: Option<u8>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct ImportReport {
    pub imported: usize,
    pub encoding: &'static str,
    pub delimiter: String,
    /// System columns (id, uid, ...) present in the file and skipped.
    pub ignored_columns: Vec<String>,
}

const SYSTEM_COLUMNS: [&str; 5] = ["id", "uid", "created_at", "updated_at", "status"];

/// The delimiter used most often in the header line, outside quotes.
fn detect_delimiter(text: &str) -> u8 {
    let header = text.lines().next().unwrap_or_default();
    let mut counts = [(b';', 0), (b',', 0), (b'\t', 0)];
    let mut quoted = false;
    for b in header.bytes() {
        if b == b'"' {
            quoted = !quoted;
        } else if !quoted && let Some(entry) = counts.iter_mut().find(|(d, _)| *d == b) {
            entry.1 += 1;
        }
    }
    counts
        .iter()
        .max_by_key(|(_, n)| *n)
        .filter(|(_, n)| *n > 0)
        .map(|(d, _)| *d)
        .unwrap_or(b',')
}

fn delimiter_name(d: u8) -> String {
    if d == b'\t' {
        "tab".into()
    } else {
        (d as char).to_string()
    }
}

/// What a header column maps to.
enum Column<'a> {
    Field(&'a Field),
    Ignored,
}

/// The most of a file's first line read to detect its delimiter.
const HEADER_SNIFF_BYTES: usize = 1 << 20;

/// How a file is to be read: its encoding and delimiter, given or detected.
#[derive(Debug, Clone, Copy)]
struct Layout {
    encoding: &'static encoding_rs::Encoding,
    delimiter: u8,
}

impl Layout {
    fn encoding_name(&self) -> &'static str {
        match self.encoding == WINDOWS_1251 {
            true => "windows-1251",
            false => "utf-8",
        }
    }
}

/// Reads the file once, in bounded memory: is it UTF-8 (else Windows-1251 when detecting),
/// and which delimiter does its header line use. Leaves the file rewound.
fn sniff(input: &mut (impl Read + Seek), options: ImportOptions) -> Result<Layout, DomainError> {
    let read_error = |e: std::io::Error| DomainError::invalid(format!("cannot read the file: {e}"));
    let mut header = Vec::new();
    let mut header_done = false;
    let mut valid_utf8 = true;
    let mut offset = 0usize;
    let mut carry: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    let check_utf8 = options.encoding != CsvEncoding::Windows1251;
    loop {
        let n = input.read(&mut chunk).map_err(read_error)?;
        if n == 0 {
            break;
        }
        let bytes = &chunk[..n];
        if !header_done {
            let line_end = bytes.iter().position(|b| *b == b'\n');
            let take = line_end.unwrap_or(n).min(HEADER_SNIFF_BYTES - header.len());
            header.extend_from_slice(&bytes[..take]);
            header_done = line_end.is_some() || header.len() >= HEADER_SNIFF_BYTES;
        }
        if check_utf8 && valid_utf8 {
            // A character split between two reads is carried over to the next.
            carry.extend_from_slice(bytes);
            match std::str::from_utf8(&carry) {
                Ok(_) => {
                    offset += carry.len();
                    carry.clear();
                }
                Err(e) if e.error_len().is_none() => {
                    let valid = e.valid_up_to();
                    offset += valid;
                    carry.drain(..valid);
                }
                Err(e) => {
                    offset += e.valid_up_to();
                    valid_utf8 = false;
                }
            }
        }
    }
    if !carry.is_empty() && valid_utf8 {
        valid_utf8 = !check_utf8;
    }
    input.rewind().map_err(read_error)?;
    let encoding = match (options.encoding, valid_utf8) {
        (CsvEncoding::Windows1251, _) | (CsvEncoding::Auto, false) => WINDOWS_1251,
        (CsvEncoding::Utf8, false) => {
            return Err(DomainError::invalid(format!(
                "the file is not valid UTF-8 (at byte {offset}); if it was saved by a Russian spreadsheet, use encoding windows-1251"
            )));
        }
        _ => encoding_rs::UTF_8,
    };
    let delimiter = options.delimiter.unwrap_or_else(|| {
        let (text, _, _) = encoding.decode(&header);
        detect_delimiter(&text)
    });
    Ok(Layout {
        encoding,
        delimiter,
    })
}

/// The longest row an import reads (a row of many long-text cells is far shorter): the CSV
/// reader holds a whole row, so a file whose quote never closes must stop somewhere.
pub const MAX_ROW_BYTES: u64 = 8 << 20;

/// Refuses to read on once a row (newlines inside quotes are part of it) passes
/// `MAX_ROW_BYTES`. Quotes are tracked as the CSV reader does: `""` toggles twice.
struct RowLimit<R> {
    inner: R,
    quoted: bool,
    row_bytes: u64,
    /// Past the limit once: the file ends there (the reader would retry forever).
    stopped: bool,
}

impl<R: Read> Read for RowLimit<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.stopped {
            return Ok(0);
        }
        let n = self.inner.read(buf)?;
        for b in &buf[..n] {
            match b {
                b'"' => self.quoted = !self.quoted,
                b'\n' if !self.quoted => self.row_bytes = 0,
                _ => {}
            }
            self.row_bytes += 1;
            if self.row_bytes > MAX_ROW_BYTES {
                self.stopped = true;
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!(
                        "a row is longer than {} MiB (a quote that never closes?)",
                        MAX_ROW_BYTES >> 20
                    ),
                ));
            }
        }
        Ok(n)
    }
}

type Decoded<R> = RowLimit<encoding_rs_io::DecodeReaderBytes<R, Vec<u8>>>;

/// How an import reads the file, decoded to UTF-8 as it streams (a byte-order mark
/// dropped): the first row is the header; `flexible` lets rows differ in length.
fn reader<R: Read>(input: R, layout: Layout, flexible: bool) -> csv::Reader<Decoded<R>> {
    let decoded = encoding_rs_io::DecodeReaderBytesBuilder::new()
        .encoding(Some(layout.encoding))
        .bom_override(true)
        .build(input);
    let decoded = RowLimit {
        inner: decoded,
        quoted: false,
        row_bytes: 0,
        stopped: false,
    };
    csv::ReaderBuilder::new()
        .delimiter(layout.delimiter)
        .has_headers(true)
        .flexible(flexible)
        .from_reader(decoded)
}

/// How many data rows a CSV file holds (the records an import would create), so numbers
/// drawn from another instance can be fetched for all of them first.
pub fn count_rows(
    mut input: impl Read + Seek,
    options: ImportOptions,
) -> Result<usize, DomainError> {
    let layout = sniff(&mut input, options)?;
    Ok(reader(input, layout, true).records().count())
}

/// The lines of the text file on which the given data rows start, read again from the
/// start (only for rows with errors, so a file of multi-line cells costs no memory).
fn file_lines(
    input: &mut (impl Read + Seek),
    layout: Layout,
    rows: &[usize],
) -> Result<HashMap<usize, u64>, DomainError> {
    input
        .rewind()
        .map_err(|e| DomainError::invalid(format!("cannot read the file: {e}")))?;
    let wanted: std::collections::BTreeSet<usize> = rows.iter().copied().collect();
    let Some(last) = wanted.last().copied() else {
        return Ok(HashMap::new());
    };
    let mut lines = HashMap::new();
    let mut csv = reader(input, layout, true);
    let mut record = csv::ByteRecord::new();
    for row_no in 1..=last {
        let line = match csv.read_byte_record(&mut record) {
            Ok(true) => record.position().map(csv::Position::line),
            Err(e) => e.position().map(csv::Position::line),
            Ok(false) => break,
        };
        if let Some(line) = line.filter(|_| wanted.contains(&row_no)) {
            lines.insert(row_no, line);
        }
    }
    Ok(lines)
}

pub fn import(
    core: &Core,
    actor: &Actor,
    table_id: i64,
    mut input: impl Read + Seek,
    options: ImportOptions,
) -> Result<ImportReport, DomainError> {
    let table = core.table(table_id)?;
    let layout = sniff(&mut input, options)?;
    let mut reader = reader(&mut input, layout, false);
    let headers = reader
        .headers()
        .map_err(|e| DomainError::invalid(format!("cannot read the header row: {e}")))?
        .clone();
    if headers.iter().all(|h| h.trim().is_empty()) {
        return Err(DomainError::invalid("the file has no header row"));
    }
    let mut columns = Vec::new();
    let mut ignored_columns = Vec::new();
    for (i, header) in headers.iter().enumerate() {
        let name = header.trim();
        // A field wins: a column named like a system column is a field's when the table
        // has a field of that name (an "Status" select, say).
        let Some(field) = table.field_by_name(name) else {
            if SYSTEM_COLUMNS.contains(&name.to_lowercase().as_str()) {
                ignored_columns.push(name.to_string());
                columns.push(Column::Ignored);
                continue;
            }
            let names: Vec<&str> = table.fields.iter().map(|f| f.name.as_str()).collect();
            return Err(DomainError::invalid(format!(
                "column {} \"{name}\" matches no field of table \"{}\"; its fields are: {}",
                i + 1,
                table.name,
                names.join(", ")
            )));
        };
        if field.field_type == FieldType::File {
            return Err(DomainError::invalid(format!(
                "column \"{name}\" is a file field; file content cannot be imported from a spreadsheet"
            )));
        }
        if columns
            .iter()
            .any(|c| matches!(c, Column::Field(f) if f.no == field.no))
        {
            return Err(DomainError::invalid(format!(
                "two columns are named \"{}\"",
                field.name
            )));
        }
        columns.push(Column::Field(field));
    }
    let users = core.users()?;
    let resolve_user = |text: &str| find_user(&users, text);
    // The write path reports one error per row; the other bad values of a row wait here.
    let mut more_errors = Vec::new();
    let mut imported = 0;
    let written = {
        let mut rows = reader.records().enumerate().map(|(index, row)| {
            let row_no = index + 1;
            let row = row.map_err(|e| RowError {
                row: row_no,
                message: format!("cannot read the row: {e}"),
                ..RowError::default()
            })?;
            let mut values = Vec::new();
            let mut errors = Vec::new();
            for (cell, column) in row.iter().zip(&columns) {
                if let Column::Field(field) = column {
                    match Value::from_text(field, cell, &resolve_user) {
                        Ok(value) => values.push((field.no, value)),
                        Err(e) => errors.push(RowError {
                            row: row_no,
                            field: Some(field.no),
                            message: e.to_string(),
                            ..RowError::default()
                        }),
                    }
                }
            }
            let mut errors = errors.into_iter();
            match errors.next() {
                None => Ok(WriteOp::Create(values)),
                Some(first) => {
                    // Bounded: a hostile file cannot fill the memory with errors.
                    let room = MAX_REPORTED_ROW_ERRORS.saturating_sub(more_errors.len());
                    more_errors.extend(errors.take(room));
                    Err(first)
                }
            }
        });
        core.write_ops_each(actor, table_id, &mut rows, &mut |_| imported += 1)
    };
    drop(reader);
    match written {
        Ok(()) => {}
        Err(DomainError::Rows(mut errors)) => {
            errors.append(&mut more_errors);
            // Stable: a row's errors stay in column order.
            errors.sort_by_key(|e| e.row);
            errors.truncate(MAX_REPORTED_ROW_ERRORS);
            let rows: Vec<usize> = errors.iter().map(|e| e.row).collect();
            let starts = file_lines(&mut input, layout, &rows)?;
            for error in &mut errors {
                // The header is line 1; a spreadsheet shows one line per row. A row after
                // a cell of several lines starts further down the text file.
                let line = error.row as u64 + 1;
                error.line = Some(error.row + 1);
                error.file_line = starts.get(&error.row).copied().filter(|l| *l != line);
            }
            return Err(DomainError::Rows(errors));
        }
        Err(e) => return Err(e),
    }
    Ok(ImportReport {
        imported,
        encoding: layout.encoding_name(),
        delimiter: delimiter_name(layout.delimiter),
        ignored_columns,
    })
}

/// A user by login, full name or id, as a spreadsheet may name them.
fn find_user(users: &[User], text: &str) -> Option<i64> {
    let lower = text.to_lowercase();
    users
        .iter()
        .find(|u| u.login.to_lowercase() == lower)
        .or_else(|| users.iter().find(|u| u.full_name.to_lowercase() == lower))
        .or_else(|| {
            text.parse::<i64>()
                .ok()
                .and_then(|id| users.iter().find(|u| u.id == id))
        })
        .map(|u| u.id)
}

#[derive(Debug, Clone, Copy)]
pub struct ExportOptions {
    /// `Auto` exports UTF-8.
    pub encoding: CsvEncoding,
    pub delimiter: u8,
    pub status: StatusFilter,
    /// A text cell a spreadsheet would run as a formula (`=`, `+`, `-`, `@` first) gets a
    /// leading `'`: an exported file opened in a spreadsheet runs nothing a user typed.
    pub neutralize_formulas: bool,
}

impl Default for ExportOptions {
    fn default() -> Self {
        ExportOptions {
            encoding: CsvEncoding::Utf8,
            delimiter: b',',
            status: StatusFilter::Active,
            neutralize_formulas: true,
        }
    }
}

/// A cell of an export that windows-1251 has no code for (an emoji, a Chinese name): an
/// error naming it, never a `&#NNNN;` written in its place.
#[derive(Debug, PartialEq, Eq)]
struct Unwritable {
    row: usize,
    column: usize,
    character: char,
}

#[derive(Debug)]
enum CsvWriteError {
    Unwritable(Unwritable),
    Csv(csv::Error),
}

/// How a header row is quoted: a cell holding another delimiter than the file's ("Name,
/// Surname" in a file split by ";") is quoted, or an import, which detects the delimiter
/// from the header, could count it and split the file at the wrong one.
fn header_quoting(header: &[String], delimiter: u8) -> csv::QuoteStyle {
    let holds_another = header.iter().any(|cell| {
        cell.bytes()
            .any(|b| b != delimiter && [b';', b',', b'\t'].contains(&b))
    });
    if holds_another {
        csv::QuoteStyle::Always
    } else {
        csv::QuoteStyle::Necessary
    }
}

/// Rows as CSV in `encoding` (`Auto` writes UTF-8).
fn csv_bytes(
    rows: &[Vec<String>],
    delimiter: u8,
    encoding: CsvEncoding,
    quoting: csv::QuoteStyle,
) -> Result<Vec<u8>, CsvWriteError> {
    let mut writer = csv::WriterBuilder::new()
        .delimiter(delimiter)
        .quote_style(quoting)
        .from_writer(Vec::new());
    for row in rows {
        writer.write_record(row).map_err(CsvWriteError::Csv)?;
    }
    let bytes = writer
        .into_inner()
        .map_err(|e| CsvWriteError::Csv(e.into_error().into()))?;
    if encoding != CsvEncoding::Windows1251 {
        return Ok(bytes);
    }
    let text = String::from_utf8(bytes).expect("the CSV writer writes the UTF-8 it is given");
    let (encoded, _, unmappable) = WINDOWS_1251.encode(&text);
    if !unmappable {
        return Ok(encoded.into_owned());
    }
    let writable = |c: char| !WINDOWS_1251.encode(c.encode_utf8(&mut [0; 4])).2;
    let unwritable = rows.iter().enumerate().find_map(|(row, cells)| {
        cells.iter().enumerate().find_map(|(column, cell)| {
            let character = cell.chars().find(|c| !writable(*c))?;
            Some(Unwritable {
                row,
                column,
                character,
            })
        })
    });
    Err(CsvWriteError::Unwritable(
        unwritable.expect("the character windows-1251 lacks is in a cell"),
    ))
}

/// Fields whose cells hold what a user typed (numbers and dates are written by us).
fn is_typed_text(field_type: crmsync_domain::FieldType) -> bool {
    use crmsync_domain::FieldType::*;
    matches!(field_type, Text | Longtext | Select | User | Link | File)
}

/// A cell a spreadsheet would take for a formula, made plain text with a leading `'`.
pub fn neutralized(cell: String) -> String {
    match cell.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        true => format!("'{cell}"),
        false => cell,
    }
}

/// Writes the table as CSV, page by page (memory stays flat). Returns the row count.
pub fn export(
    core: &Core,
    table_id: i64,
    out: &mut dyn Write,
    options: ExportOptions,
) -> Result<u64, DomainError> {
    let table = core.table(table_id)?;
    let users = core.users_including_removed()?;
    let user_login = |id: i64| users.iter().find(|u| u.id == id).map(|u| u.login.clone());
    let write_error =
        |e: &dyn std::fmt::Display| DomainError::Store(format!("export interrupted: {e}"));
    // A field named "id" wins (as on import): the system id column is then left out.
    let with_id = table.field_by_name("id").is_none();
    let mut header = Vec::new();
    if with_id {
        header.push("id".to_string());
    }
    header.extend(table.fields.iter().map(|f| f.name.clone()));
    let mut lines_written = 0;
    let mut emit = |rows: Vec<Vec<String>>| -> Result<(), DomainError> {
        let quoting = match lines_written {
            0 => header_quoting(&rows[0], options.delimiter),
            _ => csv::QuoteStyle::Necessary,
        };
        let bytes = csv_bytes(&rows, options.delimiter, options.encoding, quoting).map_err(|e| match e {
            CsvWriteError::Unwritable(cell) => DomainError::invalid(format!(
                "line {}, column \"{}\": {:?} has a character windows-1251 cannot hold ({:?}); export in utf-8",
                lines_written + cell.row + 1,
                header[cell.column],
                rows[cell.row][cell.column],
                cell.character,
            )),
            CsvWriteError::Csv(e) => write_error(&e),
        })?;
        lines_written += rows.len();
        out.write_all(&bytes).map_err(|e| write_error(&e))
    };
    emit(vec![header.clone()])?;
    let mut query = RecordQuery {
        status: options.status,
        limit: 1000,
        ..RecordQuery::default()
    };
    let mut count = 0u64;
    loop {
        let page = core.list_records(table_id, &query)?;
        count += page.records.len() as u64;
        let rows = page
            .records
            .iter()
            .map(|record| {
                let mut row = Vec::new();
                if with_id {
                    row.push(record.id.to_string());
                }
                row.extend(table.fields.iter().map(|f| {
                    let text = record
                        .values
                        .get(&f.no)
                        .unwrap_or(&Value::Null)
                        .to_text(f, &user_login);
                    match options.neutralize_formulas && is_typed_text(f.field_type) {
                        true => neutralized(text),
                        false => text,
                    }
                }));
                row
            })
            .collect();
        emit(rows)?;
        match page.next_after {
            Some(after) => query.after = Some(after),
            None => break,
        }
    }
    out.flush().map_err(|e| write_error(&e))?;
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delimiter_is_detected_from_the_header() {
        assert_eq!(detect_delimiter("Name;Phone;\"a,b\"\n1;2;3"), b';');
        assert_eq!(detect_delimiter("Name,Phone\n"), b',');
        assert_eq!(detect_delimiter("Name\tPhone\n"), b'\t');
        assert_eq!(detect_delimiter("Name\n"), b',');
    }

    /// The encoding an import reads a file in, as reported.
    fn sniffed(bytes: &[u8], encoding: CsvEncoding) -> Result<&'static str, DomainError> {
        let options = ImportOptions {
            encoding,
            delimiter: None,
        };
        sniff(&mut std::io::Cursor::new(bytes), options).map(|l| l.encoding_name())
    }

    #[test]
    fn windows_1251_is_recognised() {
        let (bytes, _, _) = WINDOWS_1251.encode("Имя;Телефон\nИван;1\n");
        assert_eq!(sniffed(&bytes, CsvEncoding::Auto).unwrap(), "windows-1251");
        let rows = read_back(bytes.into_owned(), ImportOptions::default());
        assert_eq!(rows, [["Имя", "Телефон"], ["Иван", "1"]]);
        let with_bom = "\u{feff}Имя\nИван\n".as_bytes().to_vec();
        assert_eq!(sniffed(&with_bom, CsvEncoding::Auto).unwrap(), "utf-8");
        assert_eq!(
            read_back(with_bom, ImportOptions::default()),
            [["Имя"], ["Иван"]]
        );
        assert!(sniffed(&[0xC8, 0xEC], CsvEncoding::Utf8).is_err());
        // A letter split between two reads of the file is still UTF-8.
        let mut long = "Имя\n".to_string();
        while long.len() < 200_000 {
            long.push_str("Ж\n");
        }
        assert_eq!(
            sniffed(long.as_bytes(), CsvEncoding::Auto).unwrap(),
            "utf-8"
        );
    }

    #[test]
    fn a_row_whose_quote_never_closes_stops_the_file_at_the_limit() {
        let mut bytes = b"Name\n\"".to_vec();
        bytes.resize(MAX_ROW_BYTES as usize + 10, b'x');
        let layout = sniff(&mut std::io::Cursor::new(&bytes), ImportOptions::default()).unwrap();
        let mut csv = reader(bytes.as_slice(), layout, false);
        let results: Vec<_> = csv.records().collect();
        assert_eq!(results.len(), 1, "one error, then the end");
        let error = results[0].as_ref().unwrap_err().to_string();
        assert!(error.contains("longer than 8 MiB"), "{error}");
    }

    #[test]
    fn a_value_windows_1251_cannot_hold_is_reported_not_mangled() {
        let rows = [
            vec!["id".to_string(), "Имя".to_string()],
            vec!["1".to_string(), "Анна".to_string()],
            vec!["2".to_string(), "Привет 😀 мир".to_string()],
        ];
        let error = csv_bytes(
            &rows,
            b';',
            CsvEncoding::Windows1251,
            csv::QuoteStyle::Necessary,
        );
        let Err(CsvWriteError::Unwritable(cell)) = error else {
            panic!("written anyway: {error:?}");
        };
        assert_eq!(
            cell,
            Unwritable {
                row: 2,
                column: 1,
                character: '😀'
            }
        );
        assert!(
            csv_bytes(&rows, b';', CsvEncoding::Utf8, csv::QuoteStyle::Necessary).is_ok(),
            "UTF-8 holds it"
        );
    }

    #[test]
    fn a_header_holding_the_other_delimiter_is_read_with_the_right_one() {
        let rows = [
            vec!["id".to_string(), "Фамилия, имя".to_string()],
            vec!["1".to_string(), "Иванов, Иван".to_string()],
        ];
        let quoting = header_quoting(&rows[0], b';');
        let mut bytes = csv_bytes(&rows[..1], b';', CsvEncoding::Utf8, quoting).unwrap();
        bytes.extend(
            csv_bytes(
                &rows[1..],
                b';',
                CsvEncoding::Utf8,
                csv::QuoteStyle::Necessary,
            )
            .unwrap(),
        );
        assert_eq!(
            String::from_utf8(bytes.clone()).unwrap(),
            "\"id\";\"Фамилия, имя\"\n1;Иванов, Иван\n"
        );
        assert_eq!(read_back(bytes, ImportOptions::default()), rows);
        assert!(
            matches!(
                header_quoting(&["id".into(), "Имя".into()], b';'),
                csv::QuoteStyle::Necessary
            ),
            "an ordinary header as it always was"
        );
    }

    /// What an import reads from a file: the header and every row, cell by cell.
    fn read_back(bytes: Vec<u8>, options: ImportOptions) -> Vec<Vec<String>> {
        let layout = sniff(&mut std::io::Cursor::new(&bytes), options).unwrap();
        let mut reader = reader(bytes.as_slice(), layout, false);
        let mut rows = vec![reader.headers().unwrap().iter().map(String::from).collect()];
        rows.extend(
            reader
                .records()
                .map(|r| r.unwrap().iter().map(String::from).collect()),
        );
        rows
    }

    /// A file as an export writes it: the header quoted as `header_quoting` says.
    fn exported(rows: &[Vec<String>], delimiter: u8, encoding: CsvEncoding) -> Vec<u8> {
        let quoting = header_quoting(&rows[0], delimiter);
        let mut bytes = csv_bytes(&rows[..1], delimiter, encoding, quoting).unwrap();
        bytes.extend(
            csv_bytes(&rows[1..], delimiter, encoding, csv::QuoteStyle::Necessary).unwrap(),
        );
        bytes
    }

    mod properties {
        use super::*;
        use proptest::collection::vec;
        use proptest::prelude::*;

        /// Rows of one width (`columns`); the first is the header.
        fn table(
            cell: &'static str,
            columns: std::ops::Range<usize>,
        ) -> impl Strategy<Value = Vec<Vec<String>>> {
            columns.prop_flat_map(move |width| vec(vec(cell, width), 1..6))
        }

        /// Any text: delimiters, quotes, line breaks, Cyrillic, emoji. (A byte order mark
        /// at the very start of a file is taken as one; nothing else is special.)
        const ANY_TEXT: &str = "[a-zA-Zа-яА-ЯёЁ0-9 ;,\"'\t\r\n€№«»😀中]{0,10}";
        /// Text windows-1251 holds.
        const CP1251_TEXT: &str = "[a-zA-Zа-яА-ЯёЁ0-9 ;,\"'\t\r\n€№«»—]{0,10}";
        /// A field name: no control characters (a field's name cannot hold them).
        const NAME: &str = "[a-zA-Zа-яА-ЯёЁ0-9 ;,\"'€№]{1,10}";

        fn delimiter() -> impl Strategy<Value = u8> {
            prop_oneof![Just(b';'), Just(b',')]
        }

        /// A header as an export writes it: the id column and the fields' names.
        fn with_names(rows: Vec<Vec<String>>, names: Vec<String>) -> Vec<Vec<String>> {
            let width = rows[0].len();
            let mut header = vec!["id".to_string()];
            header.extend(names.into_iter().cycle().take(width - 1));
            let mut rows = rows;
            rows[0] = header;
            rows
        }

        proptest! {
            #[test]
            fn any_cells_round_trip_in_utf8(rows in table(ANY_TEXT, 1..5), delimiter in delimiter()) {
                let options = ImportOptions { encoding: CsvEncoding::Utf8, delimiter: Some(delimiter) };
                let bytes = exported(&rows, delimiter, CsvEncoding::Utf8);
                prop_assert_eq!(count_rows(std::io::Cursor::new(&bytes), options).unwrap(), rows.len() - 1);
                prop_assert_eq!(read_back(bytes, options), rows);
            }

            #[test]
            fn cyrillic_cells_round_trip_in_windows_1251(
                rows in table(CP1251_TEXT, 1..5),
                delimiter in delimiter(),
            ) {
                let bytes = exported(&rows, delimiter, CsvEncoding::Windows1251);
                let options = ImportOptions {
                    encoding: CsvEncoding::Windows1251,
                    delimiter: Some(delimiter),
                };
                prop_assert_eq!(read_back(bytes, options), rows);
            }

            /// The delimiter found in an exported header is the one written, whatever the
            /// field names hold.
            #[test]
            fn the_delimiter_is_detected_from_an_exported_header(
                rows in table(CP1251_TEXT, 2..5),
                names in vec(NAME, 1..4),
                delimiter in delimiter(),
                windows_1251 in any::<bool>(),
            ) {
                let rows = with_names(rows, names);
                let encoding = if windows_1251 { CsvEncoding::Windows1251 } else { CsvEncoding::Utf8 };
                let bytes = exported(&rows, delimiter, encoding);
                let options = ImportOptions { encoding, delimiter: None };
                prop_assert_eq!(read_back(bytes, options), rows);
            }

            /// Exported in windows-1251, a cell it cannot hold is named, never written
            /// changed.
            #[test]
            fn a_cell_windows_1251_cannot_hold_is_named(
                rows in table(CP1251_TEXT, 1..5),
                at in any::<proptest::sample::Index>(),
                offending in prop_oneof![Just('😀'), Just('中'), Just('ß'), Just('\u{2028}')],
            ) {
                let mut rows = rows;
                let cells: Vec<(usize, usize)> = (0..rows.len())
                    .flat_map(|r| (0..rows[0].len()).map(move |c| (r, c)))
                    .collect();
                let (row, column) = *at.get(&cells);
                rows[row][column].push(offending);
                let written = csv_bytes(&rows, b';', CsvEncoding::Windows1251, csv::QuoteStyle::Necessary);
                let Err(CsvWriteError::Unwritable(cell)) = written else {
                    return Err(TestCaseError::fail(format!("written: {written:?}")));
                };
                prop_assert_eq!(cell, Unwritable { row, column, character: offending });
            }
        }

        /// A table of one field of each kind a spreadsheet can fill, in a real SQLite
        /// instance (made once per run; each import either writes all its rows or none).
        fn leads() -> &'static (crate::app::Core, Actor, i64, tempfile::TempDir) {
            static LEADS: std::sync::OnceLock<(crate::app::Core, Actor, i64, tempfile::TempDir)> =
                std::sync::OnceLock::new();
            LEADS.get_or_init(|| {
                let dir = tempfile::tempdir().unwrap();
                let store = crate::database::Database::open(&crate::database::DatabaseUrl::Sqlite(
                    dir.path().to_path_buf(),
                ))
                .unwrap();
                let core = crmsync_domain::Instance::new(
                    store,
                    std::sync::Arc::new(crmsync_domain::SystemClock),
                );
                core.ensure_admin(Some("fuzz-admin-password")).unwrap();
                let admin = core.users().unwrap().remove(0);
                let actor = Actor {
                    user: admin,
                    origin: crmsync_domain::Origin::Import,
                };
                let table = core.create_table(&actor, "Leads").unwrap();
                for (name, kind) in [
                    ("Name", "text"),
                    ("Amount", "money"),
                    ("Due", "date"),
                    ("Count", "number"),
                    ("Owner", "user"),
                ] {
                    core.create_field(&actor, table.id, name, kind, Default::default())
                        .unwrap();
                }
                (core, actor, table.id, dir)
            })
        }

        /// Bytes a file might hold: the table's header, then anything (delimiters, quotes,
        /// line breaks, windows-1251 letters, broken UTF-8, a byte order mark).
        fn file() -> impl Strategy<Value = Vec<u8>> {
            let header = prop_oneof![
                Just(b"Name;Amount;Due;Count;Owner\n".to_vec()),
                Just(b"\xEF\xBB\xBFName,Amount\r\n".to_vec()),
                Just("Name\tDue\n".as_bytes().to_vec()),
                Just(Vec::new()),
            ];
            let piece = prop_oneof![
                Just(b";".to_vec()),
                Just(b",".to_vec()),
                Just(b"\"".to_vec()),
                Just(b"\n".to_vec()),
                Just(b"\r\n".to_vec()),
                Just(b"\t".to_vec()),
                Just(b"12,50".to_vec()),
                Just(b"31.12.2025".to_vec()),
                Just(b"admin".to_vec()),
                Just(b"\xC8\xE2\xE0\xED".to_vec()),
                Just("Иван".as_bytes().to_vec()),
                vec(any::<u8>(), 1..4),
            ];
            (header, vec(piece, 0..40))
                .prop_map(|(header, pieces)| [header, pieces.concat()].concat())
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(
                std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(200)
            ))]

            /// Whatever a file holds, an import writes every row it counted or nothing, and
            /// says why; it never panics.
            #[test]
            fn any_file_imports_whole_or_not_at_all(bytes in file()) {
                let (core, actor, table, _) = leads();
                use crmsync_domain::Store;
                let count = |core: &crate::app::Core| core
                    .store()
                    .read(|tx| tx.change_count())
                    .unwrap();
                let before = count(core);
                let rows = count_rows(std::io::Cursor::new(&bytes), ImportOptions::default());
                let result = import(core, actor, *table, std::io::Cursor::new(&bytes), ImportOptions::default());
                match result {
                    Ok(report) => {
                        prop_assert_eq!(Some(report.imported), rows.ok());
                        prop_assert_eq!(count(core) - before, report.imported as u64);
                    }
                    Err(e) => {
                        prop_assert!(!e.to_string().is_empty());
                        prop_assert_eq!(count(core), before, "nothing half-written: {}", e);
                    }
                }
            }
        }
    }
}
