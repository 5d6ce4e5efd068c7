//! Sync settings, fields, progress and log.

use crate::SqliteTx;
use crate::sql_error;
use crmsync_domain::DomainError;
use crmsync_domain::clock::{Hlc, Stamp};
use crmsync_domain::logged_records::LoggedRecords;
use crmsync_domain::store::sync_text::{from_text, read_settings, settings_text, to_text};
use crmsync_domain::store::{StoreResult, SyncStore};
use crmsync_domain::sync::{
    ConflictPolicy, Direction, HeldChange, Mode, PendingLink, Secret, SyncConfig, SyncField,
    SyncLogEntry, SyncState, SyncTable, Transport, TransportSettings, UserMatch,
};
use rusqlite::{OptionalExtension, Transaction, params};

/// Inserts a new sync (id 0) or replaces an existing one's settings; returns its id.
fn save_sync(tx: &Transaction<'_>, sync: &SyncConfig) -> StoreResult<i64> {
    tx.execute(
        "INSERT INTO syncs (id, name, mode, transport, remote_access, remote_url, password, log,
                            period_seconds, user_match, settings)
         VALUES (NULLIF(?1, 0), ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
         ON CONFLICT(id) DO UPDATE SET name = excluded.name, mode = excluded.mode,
                transport = excluded.transport, remote_access = excluded.remote_access,
                remote_url = excluded.remote_url, password = excluded.password,
                log = excluded.log, period_seconds = excluded.period_seconds,
                user_match = excluded.user_match, settings = excluded.settings",
        params![
            sync.id,
            sync.name,
            to_text(&sync.mode)?,
            to_text(&sync.transport.kind())?,
            sync.remote_access,
            sync.remote_url,
            sync.password.0,
            sync.log,
            sync.period_seconds,
            to_text(&sync.user_match)?,
            settings_text(sync)?,
        ],
    )
    .map_err(sql_error)?;
    Ok(if sync.id == 0 {
        tx.last_insert_rowid()
    } else {
        sync.id
    })
}

impl SyncStore for SqliteTx<'_> {
    fn syncs(&mut self) -> StoreResult<Vec<SyncConfig>> {
        let tx = &self.tx;
        let mut stmt = tx
            .prepare_cached(
                "SELECT id, name, mode, transport, remote_access, remote_url, password, log,
                        period_seconds, user_match, settings FROM syncs ORDER BY id",
            )
            .map_err(sql_error)?;
        let mut rows = stmt.query([]).map_err(sql_error)?;
        let mut syncs = Vec::new();
        while let Some(r) = rows.next().map_err(sql_error)? {
            let text = |i: usize| -> StoreResult<String> { r.get(i).map_err(sql_error) };
            let mut sync = SyncConfig {
                id: r.get(0).map_err(sql_error)?,
                name: text(1)?,
                mode: from_text::<Mode>(&text(2)?)?,
                transport: TransportSettings::Http,
                remote_access: r.get(4).map_err(sql_error)?,
                remote_url: r.get(5).map_err(sql_error)?,
                password: Secret(text(6)?),
                log: r.get(7).map_err(sql_error)?,
                period_seconds: r.get(8).map_err(sql_error)?,
                user_match: from_text::<UserMatch>(&text(9)?)?,
                mass_delete_percent: 0,
                conflict_policy: ConflictPolicy::default(),
            };
            let kind = from_text::<Transport>(&text(3)?)?;
            read_settings(&text(10)?, kind, &mut sync)?;
            syncs.push(sync);
        }
        Ok(syncs)
    }

    fn insert_sync(&mut self, sync: &SyncConfig) -> StoreResult<i64> {
        let tx = &self.tx;
        save_sync(
            tx,
            &SyncConfig {
                id: 0,
                ..sync.clone()
            },
        )
    }

    fn update_sync(&mut self, sync: &SyncConfig) -> StoreResult<()> {
        let tx = &self.tx;
        save_sync(tx, sync).map(|_| ())
    }

    fn delete_sync(&mut self, id: i64) -> StoreResult<()> {
        let tx = &self.tx;
        for sql in [
            "DELETE FROM sync_fields WHERE sync_id = ?1",
            "DELETE FROM sync_tables WHERE sync_id = ?1",
            "DELETE FROM sync_state WHERE sync_id = ?1",
            "DELETE FROM sync_log WHERE sync_id = ?1",
            "DELETE FROM sync_pending_links WHERE sync_id = ?1",
            "DELETE FROM sync_held WHERE sync_id = ?1",
            "DELETE FROM sync_uid_pairs WHERE sync_id = ?1",
            "DELETE FROM syncs WHERE id = ?1",
        ] {
            tx.execute(sql, [id]).map_err(sql_error)?;
        }
        Ok(())
    }

    fn sync_fields(&mut self, sync_id: i64) -> StoreResult<Vec<SyncField>> {
        let tx = &self.tx;
        let mut stmt = tx
            .prepare_cached(
                "SELECT id, sync_id, field_no, direction, remote_field_no, conflict_policy FROM sync_fields
                 WHERE sync_id = ?1 ORDER BY id",
            )
            .map_err(sql_error)?;
        let mut rows = stmt.query([sync_id]).map_err(sql_error)?;
        let mut fields = Vec::new();
        while let Some(r) = rows.next().map_err(sql_error)? {
            let direction: String = r.get(3).map_err(sql_error)?;
            fields.push(SyncField {
                id: r.get(0).map_err(sql_error)?,
                sync_id: r.get(1).map_err(sql_error)?,
                field_no: r.get(2).map_err(sql_error)?,
                direction: from_text::<Direction>(&direction)?,
                remote_field_no: r.get(4).map_err(sql_error)?,
                conflict_policy: r
                    .get::<_, Option<String>>(5)
                    .map_err(sql_error)?
                    .map(|p| from_text::<ConflictPolicy>(&p))
                    .transpose()?,
            });
        }
        Ok(fields)
    }

    fn insert_sync_field(&mut self, field: &SyncField) -> StoreResult<i64> {
        let tx = &self.tx;
        tx.execute(
            "INSERT INTO sync_fields (sync_id, field_no, direction, remote_field_no, conflict_policy)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                field.sync_id,
                field.field_no,
                field.direction.as_str(),
                field.remote_field_no,
                field.conflict_policy.map(ConflictPolicy::as_str)
            ],
        )
        .map_err(sql_error)?;
        Ok(tx.last_insert_rowid())
    }

    fn update_sync_field(&mut self, field: &SyncField) -> StoreResult<()> {
        let tx = &self.tx;
        tx.execute(
            "UPDATE sync_fields SET direction = ?1, remote_field_no = ?2, conflict_policy = ?3
             WHERE id = ?4",
            params![
                field.direction.as_str(),
                field.remote_field_no,
                field.conflict_policy.map(ConflictPolicy::as_str),
                field.id
            ],
        )
        .map_err(sql_error)?;
        Ok(())
    }

    fn delete_sync_field(&mut self, id: i64) -> StoreResult<()> {
        let tx = &self.tx;
        tx.execute("DELETE FROM sync_fields WHERE id = ?1", [id])
            .map_err(sql_error)?;
        Ok(())
    }

    fn sync_tables(&mut self) -> StoreResult<Vec<SyncTable>> {
        let tx = &self.tx;
        let mut stmt = tx
            .prepare_cached(
                "SELECT id, sync_id, table_id, direction, remote_table_id FROM sync_tables ORDER BY id",
            )
            .map_err(sql_error)?;
        let mut rows = stmt.query([]).map_err(sql_error)?;
        let mut tables = Vec::new();
        while let Some(r) = rows.next().map_err(sql_error)? {
            let direction: String = r.get(3).map_err(sql_error)?;
            tables.push(SyncTable {
                id: r.get(0).map_err(sql_error)?,
                sync_id: r.get(1).map_err(sql_error)?,
                table_id: r.get(2).map_err(sql_error)?,
                direction: from_text::<Direction>(&direction)?,
                remote_table_id: r.get(4).map_err(sql_error)?,
            });
        }
        Ok(tables)
    }

    fn insert_sync_table(&mut self, table: &SyncTable) -> StoreResult<i64> {
        let tx = &self.tx;
        tx.execute(
            "INSERT INTO sync_tables (sync_id, table_id, direction, remote_table_id)
             VALUES (?1, ?2, ?3, ?4)",
            params![
                table.sync_id,
                table.table_id,
                table.direction.as_str(),
                table.remote_table_id
            ],
        )
        .map_err(sql_error)?;
        Ok(tx.last_insert_rowid())
    }

    fn delete_sync_table(&mut self, id: i64) -> StoreResult<()> {
        let tx = &self.tx;
        tx.execute("DELETE FROM sync_tables WHERE id = ?1", [id])
            .map_err(sql_error)?;
        Ok(())
    }

    fn sync_state(&mut self, sync_id: i64) -> StoreResult<SyncState> {
        let tx = &self.tx;
        let state = tx
            .query_row(
                "SELECT sent_seq, received_seq, peer_instance, peer_catalog, connected, reason,
                        last_run, last_success, last_error, pending_in, resend_request, written_seq,
                        peer_user_match, peer_acked_seq, channel
                 FROM sync_state WHERE sync_id = ?1",
                [sync_id],
                |r| {
                    Ok(SyncState {
                        sent_seq: r.get(0)?,
                        received_seq: r.get(1)?,
                        peer_instance: r.get(2)?,
                        peer_catalog: r.get(3)?,
                        connected: r.get(4)?,
                        reason: r.get(5)?,
                        last_run_ms: r.get(6)?,
                        last_success_ms: r.get(7)?,
                        last_error: r.get(8)?,
                        pending_in: r.get(9)?,
                        resend_request: r.get(10)?,
                        written_seq: r.get(11)?,
                        peer_user_match: r.get(12)?,
                        peer_acked_seq: r.get(13)?,
                        channel: r.get(14)?,
                    })
                },
            )
            .optional()
            .map_err(sql_error)?;
        Ok(state.unwrap_or_default())
    }

    fn save_sync_state(&mut self, sync_id: i64, s: &SyncState) -> StoreResult<()> {
        let tx = &self.tx;
        tx.execute(
            "INSERT INTO sync_state (sync_id, sent_seq, received_seq, peer_instance, peer_catalog,
                    connected, reason, last_run, last_success, last_error, pending_in, resend_request,
                    written_seq, peer_user_match, peer_acked_seq, channel)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)
             ON CONFLICT(sync_id) DO UPDATE SET sent_seq = excluded.sent_seq,
                    received_seq = excluded.received_seq, peer_instance = excluded.peer_instance,
                    peer_catalog = excluded.peer_catalog, connected = excluded.connected,
                    reason = excluded.reason, last_run = excluded.last_run,
                    last_success = excluded.last_success, last_error = excluded.last_error,
                    pending_in = excluded.pending_in, resend_request = excluded.resend_request,
                    written_seq = excluded.written_seq,
                    peer_user_match = excluded.peer_user_match,
                    peer_acked_seq = excluded.peer_acked_seq, channel = excluded.channel",
            params![
                sync_id,
                s.sent_seq,
                s.received_seq,
                s.peer_instance,
                s.peer_catalog,
                s.connected,
                s.reason,
                s.last_run_ms,
                s.last_success_ms,
                s.last_error,
                s.pending_in,
                s.resend_request,
                s.written_seq,
                s.peer_user_match,
                s.peer_acked_seq,
                s.channel
            ],
        )
        .map_err(sql_error)?;
        Ok(())
    }

    fn prune_sync_log(&mut self, before_ms: i64) -> StoreResult<usize> {
        let tx = &self.tx;
        tx.execute("DELETE FROM sync_log WHERE at < ?1", [before_ms])
            .map_err(sql_error)
    }

    fn append_sync_log(&mut self, e: &SyncLogEntry) -> StoreResult<()> {
        let tx = &self.tx;
        let detail = e.detail.as_ref().map(|d| d.to_string());
        let records = e.records.as_ref().map(|r| r.as_str());
        tx.prepare_cached(
            "INSERT INTO sync_log (sync_id, at, kind, message, detail, records) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )
        .and_then(|mut stmt| {
            stmt.execute(params![e.sync_id, e.at_ms, e.kind, e.message, detail, records])
        })
        .map_err(sql_error)?;
        Ok(())
    }

    fn sync_log(
        &mut self,
        sync_id: i64,
        after: i64,
        limit: usize,
    ) -> StoreResult<Vec<SyncLogEntry>> {
        let tx = &self.tx;
        let mut stmt = tx
            .prepare_cached(
                "SELECT id, sync_id, at, kind, message, detail, records FROM sync_log
                 WHERE sync_id = ?1 AND id > ?2 ORDER BY id LIMIT ?3",
            )
            .map_err(sql_error)?;
        let mut rows = stmt
            .query(params![sync_id, after, limit as i64])
            .map_err(sql_error)?;
        let mut entries = Vec::new();
        while let Some(r) = rows.next().map_err(sql_error)? {
            let detail: Option<String> = r.get(5).map_err(sql_error)?;
            entries.push(SyncLogEntry {
                id: r.get(0).map_err(sql_error)?,
                sync_id: r.get(1).map_err(sql_error)?,
                at_ms: r.get(2).map_err(sql_error)?,
                kind: r.get(3).map_err(sql_error)?,
                message: r.get(4).map_err(sql_error)?,
                detail: detail.and_then(|d| serde_json::from_str(&d).ok()),
                records: r
                    .get::<_, Option<String>>(6)
                    .map_err(sql_error)?
                    .map(LoggedRecords::from_stored),
            });
        }
        Ok(entries)
    }

    fn save_pending_link(&mut self, l: &PendingLink) -> StoreResult<()> {
        let tx = &self.tx;
        tx.execute(
            "INSERT OR REPLACE INTO sync_pending_links
                (sync_id, table_id, record_uid, field_no, target_uid, hlc, node)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                l.sync_id,
                l.table_id,
                l.record_uid.as_bytes().as_slice(),
                l.field_no,
                l.target_uid.as_bytes().as_slice(),
                l.stamp.hlc.0 as i64,
                l.stamp.node.as_bytes().as_slice()
            ],
        )
        .map_err(sql_error)?;
        Ok(())
    }

    fn pending_links(&mut self, sync_id: i64) -> StoreResult<Vec<PendingLink>> {
        let tx = &self.tx;
        let mut stmt = tx
            .prepare_cached(
                "SELECT table_id, record_uid, field_no, target_uid, hlc, node FROM sync_pending_links
                 WHERE sync_id = ?1",
            )
            .map_err(sql_error)?;
        let mut rows = stmt.query([sync_id]).map_err(sql_error)?;
        let uid = |bytes: Vec<u8>| {
            uuid::Uuid::from_slice(&bytes).map_err(|e| DomainError::Store(e.to_string()))
        };
        let mut links = Vec::new();
        while let Some(r) = rows.next().map_err(sql_error)? {
            links.push(PendingLink {
                sync_id,
                table_id: r.get(0).map_err(sql_error)?,
                record_uid: uid(r.get(1).map_err(sql_error)?)?,
                field_no: r.get(2).map_err(sql_error)?,
                target_uid: uid(r.get(3).map_err(sql_error)?)?,
                stamp: Stamp {
                    hlc: Hlc(r.get::<_, i64>(4).map_err(sql_error)? as u64),
                    node: uid(r.get(5).map_err(sql_error)?)?,
                },
            });
        }
        Ok(links)
    }

    fn remove_pending_link(&mut self, l: &PendingLink) -> StoreResult<()> {
        let tx = &self.tx;
        tx.execute(
            "DELETE FROM sync_pending_links WHERE sync_id = ?1 AND table_id = ?2 AND record_uid = ?3 AND field_no = ?4",
            params![l.sync_id, l.table_id, l.record_uid.as_bytes().as_slice(), l.field_no],
        )
        .map_err(sql_error)?;
        Ok(())
    }

    fn hold(&mut self, h: &HeldChange) -> StoreResult<()> {
        let tx = &self.tx;
        tx.execute(
            "INSERT OR REPLACE INTO sync_held
                (sync_id, kind, table_id, record_uid, part, item, reason, at_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                h.sync_id,
                h.kind,
                h.table_id,
                h.record_uid.as_bytes().as_slice(),
                h.part,
                h.item.to_string(),
                h.reason,
                h.at_ms
            ],
        )
        .map_err(sql_error)?;
        Ok(())
    }

    fn held(&mut self, sync_id: i64) -> StoreResult<Vec<HeldChange>> {
        let tx = &self.tx;
        let mut stmt = tx
            .prepare_cached(
                "SELECT id, kind, table_id, record_uid, part, item, reason, at_ms FROM sync_held
                 WHERE sync_id = ?1 ORDER BY id",
            )
            .map_err(sql_error)?;
        let mut rows = stmt.query([sync_id]).map_err(sql_error)?;
        let mut held = Vec::new();
        while let Some(r) = rows.next().map_err(sql_error)? {
            let uid: Vec<u8> = r.get(3).map_err(sql_error)?;
            let item: String = r.get(5).map_err(sql_error)?;
            held.push(HeldChange {
                id: r.get(0).map_err(sql_error)?,
                sync_id,
                kind: r.get(1).map_err(sql_error)?,
                table_id: r.get(2).map_err(sql_error)?,
                record_uid: uuid::Uuid::from_slice(&uid)
                    .map_err(|e| DomainError::Store(e.to_string()))?,
                part: r.get(4).map_err(sql_error)?,
                item: serde_json::from_str(&item).map_err(|e| DomainError::Store(e.to_string()))?,
                reason: r.get(6).map_err(sql_error)?,
                at_ms: r.get(7).map_err(sql_error)?,
            });
        }
        Ok(held)
    }

    fn release_held(&mut self, sync_id: i64, id: i64) -> StoreResult<()> {
        let tx = &self.tx;
        tx.execute(
            "DELETE FROM sync_held WHERE sync_id = ?1 AND id = ?2",
            params![sync_id, id],
        )
        .map_err(sql_error)?;
        Ok(())
    }

    fn save_uid_pairs(
        &mut self,
        sync_id: i64,
        table_id: i64,
        pairs: &[(uuid::Uuid, uuid::Uuid)],
    ) -> StoreResult<()> {
        let tx = &self.tx;
        let mut stmt = tx
            .prepare_cached(
                "INSERT INTO sync_uid_pairs (sync_id, table_id, local_uid, peer_uid)
                 VALUES (?1, ?2, ?3, ?4)",
            )
            .map_err(sql_error)?;
        for (local, peer) in pairs {
            stmt.execute(params![
                sync_id,
                table_id,
                local.as_bytes().as_slice(),
                peer.as_bytes().as_slice()
            ])
            .map_err(|e| match e {
                rusqlite::Error::SqliteFailure(f, _)
                    if f.code == rusqlite::ErrorCode::ConstraintViolation =>
                {
                    DomainError::Conflict(format!(
                        "record {local} or the other side's {peer} is already paired on sync {sync_id}"
                    ))
                }
                other => sql_error(other),
            })?;
        }
        Ok(())
    }

    fn uid_pairs(&mut self, sync_id: i64) -> StoreResult<Vec<(uuid::Uuid, uuid::Uuid)>> {
        let tx = &self.tx;
        let mut stmt = tx
            .prepare_cached("SELECT local_uid, peer_uid FROM sync_uid_pairs WHERE sync_id = ?1")
            .map_err(sql_error)?;
        let mut rows = stmt.query([sync_id]).map_err(sql_error)?;
        let mut pairs = Vec::new();
        let uid = |bytes: Vec<u8>| {
            uuid::Uuid::from_slice(&bytes).map_err(|e| DomainError::Store(e.to_string()))
        };
        while let Some(r) = rows.next().map_err(sql_error)? {
            pairs.push((
                uid(r.get(0).map_err(sql_error)?)?,
                uid(r.get(1).map_err(sql_error)?)?,
            ));
        }
        Ok(pairs)
    }

    /// Grows with every change to what a sync's mapping is built from (kept by triggers).
    fn config_version(&mut self) -> StoreResult<i64> {
        let tx = &self.tx;
        tx.prepare_cached("SELECT version FROM config_version WHERE id = 1")
            .and_then(|mut stmt| stmt.query_row([], |r| r.get(0)))
            .map_err(sql_error)
    }
}
