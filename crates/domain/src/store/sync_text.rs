//! How a sync's settings are kept as text, the same in every store: its enums by their
//! names, and its transport settings as one JSON object (fields added later read as their
//! defaults from older rows).

use super::StoreResult;
use crate::DomainError;
use crate::sync::{
    ConflictPolicy, DEFAULT_MASS_DELETE_PERCENT, FtpSettings, LocalSettings, SyncConfig, Transport,
    TransportSettings,
};
use serde::{Deserialize, Serialize, de::DeserializeOwned};

/// A value (an enum of the sync's settings) as its stored name.
pub fn to_text<T: Serialize>(value: &T) -> StoreResult<String> {
    let json = serde_json::to_value(value).map_err(|e| DomainError::Store(e.to_string()))?;
    Ok(match json {
        serde_json::Value::String(s) => s,
        other => other.to_string(),
    })
}

/// A value read back from its stored name.
pub fn from_text<T: DeserializeOwned>(text: &str) -> StoreResult<T> {
    serde_json::from_value(serde_json::Value::String(text.to_string()))
        .map_err(|e| DomainError::Store(format!("stored value \"{text}\": {e}")))
}

/// A sync's settings kept as one JSON column.
#[derive(Serialize, Deserialize, Default)]
struct Stored {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    local: Option<LocalSettings>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ftp: Option<FtpSettings>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    mass_delete_percent: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    conflict_policy: Option<ConflictPolicy>,
}

/// The settings of `sync` kept in one JSON column.
pub fn settings_text(sync: &SyncConfig) -> StoreResult<String> {
    serde_json::to_string(&Stored {
        local: sync.transport.local().cloned(),
        ftp: sync.transport.ftp().cloned(),
        mass_delete_percent: Some(sync.mass_delete_percent),
        conflict_policy: Some(sync.conflict_policy),
    })
    .map_err(|e| DomainError::Store(e.to_string()))
}

/// The settings read back from their column onto `sync`, whose transport is `kind`.
pub fn read_settings(text: &str, kind: Transport, sync: &mut SyncConfig) -> StoreResult<()> {
    let stored: Stored =
        serde_json::from_str(text).map_err(|e| DomainError::Store(e.to_string()))?;
    // Rows written before the settings were one enum may hold another transport's
    // settings too: only the sync's own are read.
    let missing = || {
        DomainError::Store(format!(
            "sync {}: no {} settings stored",
            sync.id,
            kind.as_str()
        ))
    };
    sync.transport = match kind {
        Transport::Http => TransportSettings::Http,
        Transport::Local => TransportSettings::Local(stored.local.ok_or_else(missing)?),
        Transport::Ftp => TransportSettings::Ftp(stored.ftp.ok_or_else(missing)?),
    };
    sync.mass_delete_percent = stored
        .mass_delete_percent
        .unwrap_or(DEFAULT_MASS_DELETE_PERCENT);
    sync.conflict_policy = stored.conflict_policy.unwrap_or_default();
    Ok(())
}
