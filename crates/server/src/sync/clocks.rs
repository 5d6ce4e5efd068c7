//! Clock sanity (B-19): how far each peer's clock is from this one's, as seen in its
//! signed requests (passive side), its hello answer (active side) or its packet files'
//! names (folders). Merging never depends on it — hybrid logical clocks order changes
//! whatever the clocks say — but a clock far off makes times in history and logs
//! misleading, so the status says so.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// A peer this far off (either way) is flagged.
pub const WARN_AFTER_MS: i64 = 60_000;

#[derive(Clone, Default)]
pub struct PeerClocks {
    offsets: Arc<Mutex<HashMap<i64, i64>>>,
}

impl PeerClocks {
    /// The peer's clock reads `offset_ms` more than ours (negative: it is behind).
    pub fn observe(&self, sync_id: i64, offset_ms: i64) {
        self.offsets
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(sync_id, offset_ms);
    }

    pub fn offset(&self, sync_id: i64) -> Option<i64> {
        self.offsets
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&sync_id)
            .copied()
    }
}

/// The status's warning for a peer's clock this far off, if it is far enough to matter.
pub fn warning(offset_ms: i64) -> Option<String> {
    if offset_ms.abs() <= WARN_AFTER_MS {
        return None;
    }
    let seconds = offset_ms.abs() / 1000;
    let way = if offset_ms > 0 { "ahead of" } else { "behind" };
    Some(format!(
        "the other side's clock is {seconds} s {way} this one: times in history and logs differ; merging is not affected"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_clock_far_off_is_flagged() {
        assert_eq!(warning(5_000), None);
        assert_eq!(warning(-60_000), None);
        assert!(warning(90_000).unwrap().contains("90 s ahead of"));
        assert!(warning(-3_600_000).unwrap().contains("3600 s behind"));
    }
}
