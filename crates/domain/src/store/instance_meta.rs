use super::StoreResult;
use crate::DomainError;
use crate::clock::Hlc;
use uuid::Uuid;

/// What an instance knows of itself: its id and its clock.
pub trait InstanceMeta {
    fn instance_id(&mut self) -> StoreResult<Uuid>;
    /// The newest HLC time this instance has issued or seen.
    fn last_hlc(&mut self) -> StoreResult<Hlc>;
    fn set_last_hlc(&mut self, hlc: Hlc) -> StoreResult<()>;
}

/// A store's `meta` table of keys and text values, from which every store's
/// `InstanceMeta` is made alike.
pub trait MetaTable {
    fn meta(&mut self, key: &str) -> StoreResult<Option<String>>;
    fn set_meta(&mut self, key: &str, value: &str) -> StoreResult<()>;
}

impl<T: MetaTable> InstanceMeta for T {
    fn instance_id(&mut self) -> StoreResult<Uuid> {
        let text = self
            .meta("instance_id")?
            .ok_or_else(|| DomainError::Store("instance id missing".into()))?;
        Uuid::parse_str(&text).map_err(|e| DomainError::Store(e.to_string()))
    }

    fn last_hlc(&mut self) -> StoreResult<Hlc> {
        Ok(Hlc(self
            .meta("last_hlc")?
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)))
    }

    fn set_last_hlc(&mut self, hlc: Hlc) -> StoreResult<()> {
        self.set_meta("last_hlc", &hlc.0.to_string())
    }
}
