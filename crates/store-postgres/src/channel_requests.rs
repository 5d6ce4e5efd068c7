//! The sealed HTTP channel's request numbers, shared by every process serving the
//! database: each is taken once (see `migrations/0002_channel_requests.sql`).

use crate::{PgStore, pg_error};
use crmsync_domain::DomainError;
use crmsync_domain::store::StoreResult;

/// Taken numbers are kept this long: the channel refuses a request older than its allowed
/// clock skew on its own, so a number needs remembering only about that long.
const KEEP_MS: i64 = 15 * 60 * 1000;
/// One take in this many also removes the numbers past keeping.
const PRUNE_EVERY: u64 = 128;

impl PgStore {
    /// Takes request number `seq` of sync `sync_id` under key `key_id`: true the first
    /// time, in whichever process; false for a number taken before (a replay).
    pub fn take_request_seq(
        &self,
        sync_id: i64,
        key_id: &str,
        seq: u64,
        now_ms: i64,
    ) -> StoreResult<bool> {
        let seq_number = i64::try_from(seq)
            .map_err(|_| DomainError::invalid(format!("request number {seq} is out of range")))?;
        let mut conn = self.pool.get()?;
        let taken = conn.client.execute(
            "INSERT INTO channel_requests (sync_id, key_id, seq, seen_ms) VALUES ($1, $2, $3, $4)
             ON CONFLICT DO NOTHING",
            &[&sync_id, &key_id, &seq_number, &now_ms],
        );
        let pruned = match seq.is_multiple_of(PRUNE_EVERY) {
            true => conn
                .client
                .execute(
                    "DELETE FROM channel_requests WHERE seen_ms < $1",
                    &[&(now_ms - KEEP_MS)],
                )
                .map(|_| ()),
            false => Ok(()),
        };
        drop(conn);
        pruned.map_err(pg_error)?;
        Ok(taken.map_err(pg_error)? == 1)
    }
}
