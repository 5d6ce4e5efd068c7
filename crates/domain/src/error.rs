//! The domain's error type: every variant carries a message a person can act on.

use crate::FieldNo;

#[derive(Debug, thiserror::Error)]
pub enum DomainError {
    #[error("{0}")]
    NotFound(String),
    /// A value or request that breaks a rule; `field` names the field when there is one.
    #[error("{message}")]
    Invalid {
        field: Option<FieldNo>,
        message: String,
    },
    /// Several rows of a batch (a CSV import) were rejected; nothing was written.
    #[error("{}, nothing was written", rows_summary(.0))]
    Rows(Vec<RowError>),
    #[error("{0}")]
    Conflict(String),
    #[error("wrong login or password")]
    Unauthorized,
    #[error("{0}")]
    Forbidden(String),
    /// Something outside this instance (a peer, a folder, an FTP server) cannot be
    /// reached or used right now.
    #[error("{0}")]
    Unavailable(String),
    /// A storage failure; the detail is for the server log, never for the client.
    #[error("storage error: {0}")]
    Store(String),
}

impl DomainError {
    pub fn invalid(message: impl Into<String>) -> Self {
        DomainError::Invalid {
            field: None,
            message: message.into(),
        }
    }

    pub fn invalid_field(field: FieldNo, message: impl Into<String>) -> Self {
        DomainError::Invalid {
            field: Some(field),
            message: message.into(),
        }
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        DomainError::NotFound(message.into())
    }
}

/// One error of a rejected row of a batch; a row with several bad values has one each.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct RowError {
    /// The row's position in the batch (1 = first data row).
    pub row: usize,
    /// For a file: the line a spreadsheet shows (the header is line 1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    /// For a text file: the line the row starts on, when a cell spanning several lines
    /// makes it differ from `line`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file_line: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<FieldNo>,
    pub message: String,
}

/// "3 error(s) in 2 row(s)": how many errors and how many distinct rows have them.
pub fn rows_summary(errors: &[RowError]) -> String {
    let mut rows: Vec<usize> = errors.iter().map(|e| e.row).collect();
    rows.sort_unstable();
    rows.dedup();
    format!("{} error(s) in {} row(s)", errors.len(), rows.len())
}
