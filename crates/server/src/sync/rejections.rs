//! Packet files a folder sync refused (bad signature, truncated, forged, replayed): counted
//! per sync since this instance started, and whether the latest verdict was a refusal — the
//! status stays red with the reason until a packet from the other side is taken again (a
//! password set the same on both sides, say).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

#[derive(Clone, Default)]
pub struct Rejections {
    by_sync: Arc<Mutex<HashMap<i64, Tally>>>,
}

#[derive(Clone, Default)]
struct Tally {
    count: u64,
    /// The latest refusal's reason while no packet has been taken since.
    standing: Option<String>,
}

impl Rejections {
    pub fn rejected(&self, sync_id: i64, reason: &str) {
        let mut all = self.by_sync.lock().unwrap_or_else(|e| e.into_inner());
        let tally = all.entry(sync_id).or_default();
        tally.count += 1;
        tally.standing = Some(reason.to_string());
    }

    pub fn accepted(&self, sync_id: i64) {
        let mut all = self.by_sync.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(tally) = all.get_mut(&sync_id) {
            tally.standing = None;
        }
    }

    pub fn count(&self, sync_id: i64) -> u64 {
        self.tally(sync_id).count
    }

    /// The status's reason while the latest packet file was refused.
    pub fn standing(&self, sync_id: i64) -> Option<String> {
        let tally = self.tally(sync_id);
        tally.standing.map(|reason| {
            format!(
                "packet files from the other side are rejected ({} so far; set aside as NAME.rejected): {reason} — check that both sides use the same password",
                tally.count
            )
        })
    }

    fn tally(&self, sync_id: i64) -> Tally {
        self.by_sync
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&sync_id)
            .cloned()
            .unwrap_or_default()
    }
}
