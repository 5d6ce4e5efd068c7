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
    #[error("{} row(s) rejected, nothing was written", .0.len())]
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

/// One rejected row of a batch: the row's number as the user sees it (1 = first data row).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RowError {
    pub row: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<FieldNo>,
    pub message: String,
}
