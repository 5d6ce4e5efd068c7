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
    (11, include_str!("../migrations/0011_record_counts.sql")),
    (12, include_str!("../migrations/0012_config_version.sql")),
];

pub fn apply(conn: &mut Connection) -> Result<(), DomainError> {
    // A database already up to date is only read: opening one (`crmsync status`, polled by
    // scripts) must not take the write lock from the server working in it.
    if up_to_date(conn)? {
        return Ok(());
    }
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
    if current < 11 {
        count_existing_records(&tx)?;
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

/// Migration 11's counts for the tables that exist already (SQL alone cannot name them).
fn count_existing_records(tx: &rusqlite::Transaction<'_>) -> Result<(), DomainError> {
    let tables: Vec<i64> = tx
        .prepare("SELECT id FROM crm_tables")
        .and_then(|mut stmt| stmt.query_map([], |r| r.get(0))?.collect())
        .map_err(sql_error)?;
    for id in tables {
        let (active, deleted) = crate::records::count_rows(tx, id)?;
        tx.execute(
            "INSERT OR REPLACE INTO record_counts (table_id, active, deleted) VALUES (?1, ?2, ?3)",
            params![id, active, deleted],
        )
        .map_err(sql_error)?;
    }
    Ok(())
}

/// Whether every migration is applied and the instance has its identity.
fn up_to_date(conn: &Connection) -> Result<bool, DomainError> {
    let latest = MIGRATIONS.last().map_or(0, |(v, _)| *v);
    conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE name = 'schema_migrations')",
        [],
        |r| r.get::<_, bool>(0),
    )
    .and_then(|exists| match exists {
        false => Ok(false),
        true => conn.query_row(
            "SELECT (SELECT COALESCE(MAX(version), 0) FROM schema_migrations) = ?1
                AND EXISTS (SELECT 1 FROM meta WHERE key = 'instance_id')",
            [latest],
            |r| r.get(0),
        ),
    })
    .map_err(sql_error)
}
