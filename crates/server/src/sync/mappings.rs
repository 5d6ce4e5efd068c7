//! Each sync's field mapping, built once and kept while nothing it is built from changes:
//! the store's config version (kept by triggers on tables, fields, syncs, their fields,
//! whole tables, matched uids and the peer's catalogue) says when it did. A packet then
//! reads one number instead of all of that, and the other side's catalogue is not parsed
//! again for every packet.

use crate::app::App;
use crmsync_domain::DomainError;
use crmsync_domain::sync::{Mode, SyncConfig, SyncId};
use crmsync_sync::Mapping;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

#[derive(Clone, Default)]
pub struct Mappings(Arc<Mutex<HashMap<SyncId, Kept>>>);

struct Kept {
    version: i64,
    /// The settings it was built with: a caller with other settings gets its own.
    sync: SyncConfig,
    mapping: Arc<Mapping>,
}

impl Mappings {
    /// The mapping of `sync` as the store holds it now (blocking: reads the store).
    pub fn of(&self, app: &App, sync: &SyncConfig) -> Result<Arc<Mapping>, DomainError> {
        // Read before the mapping's parts: a change committed in between leaves the kept
        // mapping under the older number, so the next call builds it again.
        let version = app.core.config_version()?;
        let kept = self.lock().get(&sync.id).and_then(|kept| {
            (kept.version == version && kept.sync == *sync).then(|| kept.mapping.clone())
        });
        if let Some(mapping) = kept {
            return Ok(mapping);
        }
        let mapping = Arc::new(match sync.mode {
            Mode::Active => super::active::active_mapping(app, sync)?,
            Mode::Passive => super::passive::passive_mapping(app, sync)?,
        });
        let kept = Kept {
            version,
            sync: sync.clone(),
            mapping: mapping.clone(),
        };
        self.lock().insert(sync.id, kept);
        Ok(mapping)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<SyncId, Kept>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}
