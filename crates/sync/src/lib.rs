//! Sync logic, independent of how packets travel: which fields go where (`mapping`), what
//! a packet holds (`protocol`), building packets from the change log (`outbox`) and
//! applying a peer's packets through the domain's write path (`apply`).
//!
//! Fields travel under the active side's field numbers; the passive side translates with
//! its mapping. Records are matched by `uid`; local ids never travel.

pub mod apply;
pub mod channel;
pub mod content;
pub mod drift;
pub mod folder;
pub mod folder_channel;
pub mod initial;
pub mod mapping;
pub mod matching;
pub mod outbox;
pub mod protocol;
#[cfg(test)]
mod testing;

pub use apply::apply_packet;
pub use mapping::Mapping;
pub use outbox::{build_packet, pending_out};
pub use protocol::{Catalog, PROTOCOL_VERSION, Packet};
