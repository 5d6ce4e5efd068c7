use super::StoreResult;
use crate::clock::Hlc;
use uuid::Uuid;

/// What an instance knows of itself: its id and its clock.
pub trait InstanceMeta {
    fn instance_id(&mut self) -> StoreResult<Uuid>;
    /// The newest HLC time this instance has issued or seen.
    fn last_hlc(&mut self) -> StoreResult<Hlc>;
    fn set_last_hlc(&mut self, hlc: Hlc) -> StoreResult<()>;
}
