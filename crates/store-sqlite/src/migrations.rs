//! Embedded migrations, applied in order at start. An applied migration is never edited;
//! changes come as a new file.

use crate::sql_error;
use crmsync_domain::DomainError;
use rusqlite::{Connection, params};

const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../migrations/0001_init.sql")),
    (2, include_str!("../migrations/0002_syncs.sql")),
    (3, include_str!("../migrations/0003_held.sql")),
    (4, include_str!("../migrations/0004_issue6.sql")),
    (5, include_str!("../migrations/0005_whole_tables.sql")),
    (6, include_str!("../migrations/0006_peer_user_match.sql")),
    (7, include_str!("../migrations/0007_peer_acked_seq.sql")),
    (8, include_str!("../migrations/0008_sync_channel.sql")),
    (9, include_str!("../migrations/0009_web_sessions.sql")),
    (10, include_str!("../migrations/0010_log_records.sql")),
];

pub fn apply(conn: &mut Connection) -> Result<(), DomainError> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY)",
    )
    .map_err(sql_error)?;
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(sql_error)?;
    let current: i64 = tx
        .query_row(
            "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
            [],
            |r| r.get(0),
        )
        .map_err(sql_error)?;
    for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > current) {
        tx.execute_batch(sql).map_err(sql_error)?;
        tx.execute(
            "INSERT INTO schema_migrations (version) VALUES (?1)",
            params![version],
        )
        .map_err(sql_error)?;
    }
    let has_id: bool = tx
        .query_row(
            "SELECT EXISTS (SELECT 1 FROM meta WHERE key = 'instance_id')",
            [],
            |r| r.get(0),
        )
        .map_err(sql_error)?;
    if !has_id {
        // The instance's identity, made once; its writes are node 1.
        let id = uuid::Uuid::now_v7();
        tx.execute(
            "INSERT INTO meta (key, value) VALUES ('instance_id', ?1)",
            params![id.to_string()],
        )
        .map_err(sql_error)?;
        tx.execute(
            "INSERT INTO nodes (id, uid) VALUES (1, ?1)",
            params![id.as_bytes().as_slice()],
        )
        .map_err(sql_error)?;
    }
    tx.commit().map_err(sql_error)
}
