//! Sync settings, fields, progress and log.

use crate::{PgTx, get};
use crmsync_domain::DomainError;
use crmsync_domain::clock::{Hlc, Stamp};
use crmsync_domain::logged_records::LoggedRecords;
use crmsync_domain::store::sync_text::{from_text, read_settings, settings_text, to_text};
use crmsync_domain::store::{StoreResult, SyncStore};
use crmsync_domain::sync::{
    ConflictPolicy, Direction, HeldChange, Mode, PendingLink, Secret, SyncConfig, SyncField,
    SyncLogEntry, SyncState, SyncTable, Transport, TransportSettings, UserMatch,
};
use postgres::Row;
use uuid::Uuid;

/// Inserts a new sync (id 0) or replaces an existing one's settings; returns its id.
///
/// An explicit NULL does not take an identity column's default, so a new sync draws its
/// id from the column's sequence itself (one statement for both cases, as in SQLite).
fn save_sync(tx: &mut PgTx<'_>, sync: &SyncConfig) -> StoreResult<i64> {
    let row = tx.query_one(
        "INSERT INTO syncs (id, name, mode, transport, remote_access, remote_url, password, log,
                            period_seconds, user_match, settings)
         VALUES (COALESCE(NULLIF($1::BIGINT, 0), nextval(pg_get_serial_sequence('syncs', 'id'))),
                 $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
         ON CONFLICT (id) DO UPDATE SET name = excluded.name, mode = excluded.mode,
                transport = excluded.transport, remote_access = excluded.remote_access,
                remote_url = excluded.remote_url, password = excluded.password,
                log = excluded.log, period_seconds = excluded.period_seconds,
                user_match = excluded.user_match, settings = excluded.settings
         RETURNING id",
        &[
            &sync.id,
            &sync.name,
            &to_text(&sync.mode)?,
            &to_text(&sync.transport.kind())?,
            &sync.remote_access,
            &sync.remote_url,
            &sync.password.0,
            &sync.log,
            &i64::from(sync.period_seconds),
            &to_text(&sync.user_match)?,
            &settings_text(sync)?,
        ],
    )?;
    get(&row, 0)
}

fn sync_config(r: &Row) -> StoreResult<SyncConfig> {
    let period_seconds: i64 = get(r, 8)?;
    let mut sync = SyncConfig {
        id: get(r, 0)?,
        name: get(r, 1)?,
        mode: from_text::<Mode>(&get::<String>(r, 2)?)?,
        transport: TransportSettings::Http,
        remote_access: get(r, 4)?,
        remote_url: get(r, 5)?,
        password: Secret(get(r, 6)?),
        log: get(r, 7)?,
        period_seconds: u32::try_from(period_seconds).map_err(|e| {
            DomainError::Store(format!("stored period_seconds {period_seconds}: {e}"))
        })?,
        user_match: from_text::<UserMatch>(&get::<String>(r, 9)?)?,
        mass_delete_percent: 0,
        conflict_policy: ConflictPolicy::default(),
    };
    let kind = from_text::<Transport>(&get::<String>(r, 3)?)?;
    read_settings(&get::<String>(r, 10)?, kind, &mut sync)?;
    Ok(sync)
}

impl SyncStore for PgTx<'_> {
    fn syncs(&mut self) -> StoreResult<Vec<SyncConfig>> {
        self.query(
            "SELECT id, name, mode, transport, remote_access, remote_url, password, log,
                    period_seconds, user_match, settings FROM syncs ORDER BY id",
            &[],
        )?
        .iter()
        .map(sync_config)
        .collect()
    }

    fn insert_sync(&mut self, sync: &SyncConfig) -> StoreResult<i64> {
        save_sync(
            self,
            &SyncConfig {
                id: 0,
                ..sync.clone()
            },
        )
    }

    fn update_sync(&mut self, sync: &SyncConfig) -> StoreResult<()> {
        save_sync(self, sync).map(|_| ())
    }

    fn delete_sync(&mut self, id: i64) -> StoreResult<()> {
        for sql in [
            "DELETE FROM sync_fields WHERE sync_id = $1",
            "DELETE FROM sync_tables WHERE sync_id = $1",
            "DELETE FROM sync_state WHERE sync_id = $1",
            "DELETE FROM sync_log WHERE sync_id = $1",
            "DELETE FROM sync_pending_links WHERE sync_id = $1",
            "DELETE FROM sync_held WHERE sync_id = $1",
            "DELETE FROM sync_uid_pairs WHERE sync_id = $1",
            "DELETE FROM syncs WHERE id = $1",
        ] {
            self.execute(sql, &[&id])?;
        }
        Ok(())
    }

    fn sync_fields(&mut self, sync_id: i64) -> StoreResult<Vec<SyncField>> {
        let rows = self.query(
            "SELECT id, sync_id, field_no, direction, remote_field_no, conflict_policy
             FROM sync_fields WHERE sync_id = $1 ORDER BY id",
            &[&sync_id],
        )?;
        rows.iter()
            .map(|r| {
                Ok(SyncField {
                    id: get(r, 0)?,
                    sync_id: get(r, 1)?,
                    field_no: get(r, 2)?,
                    direction: from_text::<Direction>(&get::<String>(r, 3)?)?,
                    remote_field_no: get(r, 4)?,
                    conflict_policy: get::<Option<String>>(r, 5)?
                        .map(|p| from_text::<ConflictPolicy>(&p))
                        .transpose()?,
                })
            })
            .collect()
    }

    fn insert_sync_field(&mut self, field: &SyncField) -> StoreResult<i64> {
        let row = self.query_one(
            "INSERT INTO sync_fields (sync_id, field_no, direction, remote_field_no, conflict_policy)
             VALUES ($1, $2, $3, $4, $5) RETURNING id",
            &[
                &field.sync_id,
                &field.field_no,
                &field.direction.as_str(),
                &field.remote_field_no,
                &field.conflict_policy.map(ConflictPolicy::as_str),
            ],
        )?;
        get(&row, 0)
    }

    fn update_sync_field(&mut self, field: &SyncField) -> StoreResult<()> {
        self.execute(
            "UPDATE sync_fields SET direction = $1, remote_field_no = $2, conflict_policy = $3
             WHERE id = $4",
            &[
                &field.direction.as_str(),
                &field.remote_field_no,
                &field.conflict_policy.map(ConflictPolicy::as_str),
                &field.id,
            ],
        )?;
        Ok(())
    }

    fn delete_sync_field(&mut self, id: i64) -> StoreResult<()> {
        self.execute("DELETE FROM sync_fields WHERE id = $1", &[&id])?;
        Ok(())
    }

    fn sync_tables(&mut self) -> StoreResult<Vec<SyncTable>> {
        let rows = self.query(
            "SELECT id, sync_id, table_id, direction, remote_table_id FROM sync_tables ORDER BY id",
            &[],
        )?;
        rows.iter()
            .map(|r| {
                Ok(SyncTable {
                    id: get(r, 0)?,
                    sync_id: get(r, 1)?,
                    table_id: get(r, 2)?,
                    direction: from_text::<Direction>(&get::<String>(r, 3)?)?,
                    remote_table_id: get(r, 4)?,
                })
            })
            .collect()
    }

    fn insert_sync_table(&mut self, table: &SyncTable) -> StoreResult<i64> {
        let row = self.query_one(
            "INSERT INTO sync_tables (sync_id, table_id, direction, remote_table_id)
             VALUES ($1, $2, $3, $4) RETURNING id",
            &[
                &table.sync_id,
                &table.table_id,
                &table.direction.as_str(),
                &table.remote_table_id,
            ],
        )?;
        get(&row, 0)
    }

    fn delete_sync_table(&mut self, id: i64) -> StoreResult<()> {
        self.execute("DELETE FROM sync_tables WHERE id = $1", &[&id])?;
        Ok(())
    }

    fn sync_state(&mut self, sync_id: i64) -> StoreResult<SyncState> {
        let Some(r) = self.query_opt(
            "SELECT sent_seq, received_seq, peer_instance, peer_catalog, connected, reason,
                    last_run, last_success, last_error, pending_in, resend_request, written_seq,
                    peer_user_match, peer_acked_seq, channel
             FROM sync_state WHERE sync_id = $1",
            &[&sync_id],
        )?
        else {
            return Ok(SyncState::default());
        };
        Ok(SyncState {
            sent_seq: get(&r, 0)?,
            received_seq: get(&r, 1)?,
            peer_instance: get(&r, 2)?,
            peer_catalog: get(&r, 3)?,
            connected: get(&r, 4)?,
            reason: get(&r, 5)?,
            last_run_ms: get(&r, 6)?,
            last_success_ms: get(&r, 7)?,
            last_error: get(&r, 8)?,
            pending_in: get(&r, 9)?,
            resend_request: get(&r, 10)?,
            written_seq: get(&r, 11)?,
            peer_user_match: get(&r, 12)?,
            peer_acked_seq: get(&r, 13)?,
            channel: get(&r, 14)?,
        })
    }

    /// The upsert's update path sets `peer_catalog`, so the config version moves (by the
    /// triggers) exactly when the catalogue is new or differs from the one kept.
    fn save_sync_state(&mut self, sync_id: i64, s: &SyncState) -> StoreResult<()> {
        self.execute(
            "INSERT INTO sync_state (sync_id, sent_seq, received_seq, peer_instance, peer_catalog,
                    connected, reason, last_run, last_success, last_error, pending_in, resend_request,
                    written_seq, peer_user_match, peer_acked_seq, channel)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
             ON CONFLICT (sync_id) DO UPDATE SET sent_seq = excluded.sent_seq,
                    received_seq = excluded.received_seq, peer_instance = excluded.peer_instance,
                    peer_catalog = excluded.peer_catalog, connected = excluded.connected,
                    reason = excluded.reason, last_run = excluded.last_run,
                    last_success = excluded.last_success, last_error = excluded.last_error,
                    pending_in = excluded.pending_in, resend_request = excluded.resend_request,
                    written_seq = excluded.written_seq,
                    peer_user_match = excluded.peer_user_match,
                    peer_acked_seq = excluded.peer_acked_seq, channel = excluded.channel",
            &[
                &sync_id,
                &s.sent_seq,
                &s.received_seq,
                &s.peer_instance,
                &s.peer_catalog,
                &s.connected,
                &s.reason,
                &s.last_run_ms,
                &s.last_success_ms,
                &s.last_error,
                &s.pending_in,
                &s.resend_request,
                &s.written_seq,
                &s.peer_user_match,
                &s.peer_acked_seq,
                &s.channel,
            ],
        )?;
        Ok(())
    }

    fn prune_sync_log(&mut self, before_ms: i64) -> StoreResult<usize> {
        let removed = self.execute("DELETE FROM sync_log WHERE at < $1", &[&before_ms])?;
        usize::try_from(removed).map_err(|e| DomainError::Store(e.to_string()))
    }

    fn append_sync_log(&mut self, e: &SyncLogEntry) -> StoreResult<()> {
        let detail = e.detail.as_ref().map(|d| d.to_string());
        let records = e.records.as_ref().map(|r| r.as_str());
        self.execute(
            "INSERT INTO sync_log (sync_id, at, kind, message, detail, records)
             VALUES ($1, $2, $3, $4, $5, $6)",
            &[&e.sync_id, &e.at_ms, &e.kind, &e.message, &detail, &records],
        )?;
        Ok(())
    }

    fn sync_log(
        &mut self,
        sync_id: i64,
        after: i64,
        limit: usize,
    ) -> StoreResult<Vec<SyncLogEntry>> {
        // A limit beyond i64 is no limit at all.
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self.query(
            "SELECT id, sync_id, at, kind, message, detail, records FROM sync_log
             WHERE sync_id = $1 AND id > $2 ORDER BY id LIMIT $3",
            &[&sync_id, &after, &limit],
        )?;
        rows.iter()
            .map(|r| {
                let detail: Option<String> = get(r, 5)?;
                Ok(SyncLogEntry {
                    id: get(r, 0)?,
                    sync_id: get(r, 1)?,
                    at_ms: get(r, 2)?,
                    kind: get(r, 3)?,
                    message: get(r, 4)?,
                    detail: detail.and_then(|d| serde_json::from_str(&d).ok()),
                    records: get::<Option<String>>(r, 6)?.map(LoggedRecords::from_stored),
                })
            })
            .collect()
    }

    fn save_pending_link(&mut self, l: &PendingLink) -> StoreResult<()> {
        // The stamp's u64 HLC kept bit for bit in a BIGINT, as SQLite keeps it.
        let hlc = l.stamp.hlc.0 as i64;
        self.execute(
            "INSERT INTO sync_pending_links
                (sync_id, table_id, record_uid, field_no, target_uid, hlc, node)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (sync_id, table_id, record_uid, field_no) DO UPDATE SET
                target_uid = excluded.target_uid, hlc = excluded.hlc, node = excluded.node",
            &[
                &l.sync_id,
                &l.table_id,
                &l.record_uid,
                &l.field_no,
                &l.target_uid,
                &hlc,
                &l.stamp.node,
            ],
        )?;
        Ok(())
    }

    /// In primary-key order (the order SQLite reads them in through its key's index).
    fn pending_links(&mut self, sync_id: i64) -> StoreResult<Vec<PendingLink>> {
        let rows = self.query(
            "SELECT table_id, record_uid, field_no, target_uid, hlc, node FROM sync_pending_links
             WHERE sync_id = $1 ORDER BY table_id, record_uid, field_no",
            &[&sync_id],
        )?;
        rows.iter()
            .map(|r| {
                Ok(PendingLink {
                    sync_id,
                    table_id: get(r, 0)?,
                    record_uid: get(r, 1)?,
                    field_no: get(r, 2)?,
                    target_uid: get(r, 3)?,
                    stamp: Stamp {
                        hlc: Hlc(get::<i64>(r, 4)? as u64),
                        node: get(r, 5)?,
                    },
                })
            })
            .collect()
    }

    fn remove_pending_link(&mut self, l: &PendingLink) -> StoreResult<()> {
        self.execute(
            "DELETE FROM sync_pending_links
             WHERE sync_id = $1 AND table_id = $2 AND record_uid = $3 AND field_no = $4",
            &[&l.sync_id, &l.table_id, &l.record_uid, &l.field_no],
        )?;
        Ok(())
    }

    /// Replaces the same part held before as SQLite's `INSERT OR REPLACE` does: the old row
    /// goes and the new one takes a new, higher id, so `held` keeps listing in arrival order.
    fn hold(&mut self, h: &HeldChange) -> StoreResult<()> {
        self.execute(
            "DELETE FROM sync_held
             WHERE sync_id = $1 AND kind = $2 AND table_id = $3 AND record_uid = $4 AND part = $5",
            &[&h.sync_id, &h.kind, &h.table_id, &h.record_uid, &h.part],
        )?;
        self.execute(
            "INSERT INTO sync_held
                (sync_id, kind, table_id, record_uid, part, item, reason, at_ms)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            &[
                &h.sync_id,
                &h.kind,
                &h.table_id,
                &h.record_uid,
                &h.part,
                &h.item.to_string(),
                &h.reason,
                &h.at_ms,
            ],
        )?;
        Ok(())
    }

    fn held(&mut self, sync_id: i64) -> StoreResult<Vec<HeldChange>> {
        let rows = self.query(
            "SELECT id, kind, table_id, record_uid, part, item, reason, at_ms FROM sync_held
             WHERE sync_id = $1 ORDER BY id",
            &[&sync_id],
        )?;
        rows.iter()
            .map(|r| {
                let item: String = get(r, 5)?;
                Ok(HeldChange {
                    id: get(r, 0)?,
                    sync_id,
                    kind: get(r, 1)?,
                    table_id: get(r, 2)?,
                    record_uid: get(r, 3)?,
                    part: get(r, 4)?,
                    item: serde_json::from_str(&item)
                        .map_err(|e| DomainError::Store(e.to_string()))?,
                    reason: get(r, 6)?,
                    at_ms: get(r, 7)?,
                })
            })
            .collect()
    }

    fn release_held(&mut self, sync_id: i64, id: i64) -> StoreResult<()> {
        self.execute(
            "DELETE FROM sync_held WHERE sync_id = $1 AND id = $2",
            &[&sync_id, &id],
        )?;
        Ok(())
    }

    /// A uid already paired on the sync (on either side) is a conflict. It is found with
    /// `ON CONFLICT DO NOTHING` rather than a failed insert, which in PostgreSQL would
    /// abort the whole transaction; the pairs before it stay saved, as in SQLite.
    fn save_uid_pairs(
        &mut self,
        sync_id: i64,
        table_id: i64,
        pairs: &[(Uuid, Uuid)],
    ) -> StoreResult<()> {
        for (local, peer) in pairs {
            let inserted = self.execute(
                "INSERT INTO sync_uid_pairs (sync_id, table_id, local_uid, peer_uid)
                 VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                &[&sync_id, &table_id, local, peer],
            )?;
            if inserted == 0 {
                return Err(DomainError::Conflict(format!(
                    "record {local} or the other side's {peer} is already paired on sync {sync_id}"
                )));
            }
        }
        Ok(())
    }

    /// In `local_uid` order (the order SQLite reads them in through its key's index).
    fn uid_pairs(&mut self, sync_id: i64) -> StoreResult<Vec<(Uuid, Uuid)>> {
        let rows = self.query(
            "SELECT local_uid, peer_uid FROM sync_uid_pairs WHERE sync_id = $1 ORDER BY local_uid",
            &[&sync_id],
        )?;
        rows.iter().map(|r| Ok((get(r, 0)?, get(r, 1)?))).collect()
    }

    /// Grows with every change to what a sync's mapping is built from (kept by triggers).
    fn config_version(&mut self) -> StoreResult<i64> {
        let row = self.query_one("SELECT version FROM config_version WHERE id = 1", &[])?;
        get(&row, 0)
    }
}
