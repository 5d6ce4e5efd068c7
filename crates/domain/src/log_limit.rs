//! How many failures a sync's log takes per minute. Anyone who can reach a passive side can
//! make it refuse requests, and each refusal would be a row: past the allowance entries
//! are counted instead, and the count is written with the next one that is.

use crate::sync::SyncId;
use std::collections::HashMap;

/// Entries of one kind (`auth`, `error`) one sync's log takes per minute.
pub const FAILURES_PER_MINUTE: u32 = 30;
const WINDOW_MS: i64 = 60_000;

/// Kinds a stranger can cause (`state`: a sync turning red, in the server log); the others
/// come from authenticated exchanges.
const LIMITED_KINDS: [&str; 3] = ["auth", "error", "state"];

#[derive(Default)]
pub(crate) struct LogLimit {
    /// One per sync and kind (bounded by the syncs that exist).
    windows: HashMap<(SyncId, &'static str), Window>,
}

struct Window {
    start_ms: i64,
    written: u32,
    skipped: u32,
}

/// What to do with an entry.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Admit {
    /// Write it; `skipped` entries were counted and not written before it.
    Write {
        skipped: u32,
    },
    /// Write it and say that the allowance is used up.
    WriteLast,
    Count,
}

impl LogLimit {
    pub(crate) fn admit(&mut self, sync_id: SyncId, kind: &str, now_ms: i64) -> Admit {
        let Some(kind) = LIMITED_KINDS.into_iter().find(|k| *k == kind) else {
            return Admit::Write { skipped: 0 };
        };
        let window = self.windows.entry((sync_id, kind)).or_insert(Window {
            start_ms: now_ms,
            written: 0,
            skipped: 0,
        });
        if now_ms - window.start_ms >= WINDOW_MS {
            let skipped = window.skipped;
            *window = Window {
                start_ms: now_ms,
                written: 1,
                skipped: 0,
            };
            return Admit::Write { skipped };
        }
        window.written += 1;
        match window.written {
            n if n < FAILURES_PER_MINUTE => Admit::Write { skipped: 0 },
            n if n == FAILURES_PER_MINUTE => Admit::WriteLast,
            _ => {
                window.skipped += 1;
                Admit::Count
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_of_failures_is_counted_and_the_count_written_later() {
        let mut limit = LogLimit::default();
        let admitted: Vec<Admit> = (0..40).map(|_| limit.admit(1, "auth", 1_000)).collect();
        assert_eq!(admitted[0], Admit::Write { skipped: 0 });
        assert_eq!(admitted[28], Admit::Write { skipped: 0 });
        assert_eq!(admitted[29], Admit::WriteLast);
        assert!(admitted[30..].iter().all(|a| *a == Admit::Count));
        // Another sync, another kind, and exchanges are not held back.
        assert_eq!(limit.admit(2, "auth", 1_000), Admit::Write { skipped: 0 });
        assert_eq!(limit.admit(1, "error", 1_000), Admit::Write { skipped: 0 });
        assert_eq!(
            limit.admit(1, "received", 1_000),
            Admit::Write { skipped: 0 }
        );
        // A minute later: the count comes with the next entry.
        assert_eq!(limit.admit(1, "auth", 61_000), Admit::Write { skipped: 10 });
        assert_eq!(limit.admit(1, "auth", 61_001), Admit::Write { skipped: 0 });
    }
}
