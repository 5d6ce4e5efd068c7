//! Embedded migrations, applied in order at start by whichever process comes first (the
//! others wait on the same advisory lock, then find nothing to do).

use crate::pg_error;
use crmsync_domain::DomainError;
use postgres::Client;

const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../migrations/0001_init.sql")),
    (2, include_str!("../migrations/0002_channel_requests.sql")),
];
/// The advisory lock migrations run under.
const MIGRATION_LOCK: i64 = 0x0063_726d_7379_6e6d; // "crmsynm"

pub fn apply(client: &mut Client) -> Result<(), DomainError> {
    let mut tx = client.transaction().map_err(pg_error)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .map_err(pg_error)?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY)")
        .map_err(pg_error)?;
    let current: i64 = tx
        .query_one(
            "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
            &[],
        )
        .and_then(|row| row.try_get(0))
        .map_err(pg_error)?;
    for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > current) {
        tx.batch_execute(sql).map_err(pg_error)?;
        tx.execute(
            "INSERT INTO schema_migrations (version) VALUES ($1)",
            &[version],
        )
        .map_err(pg_error)?;
    }
    let has_id: bool = tx
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM meta WHERE key = 'instance_id')",
            &[],
        )
        .and_then(|row| row.try_get(0))
        .map_err(pg_error)?;
    if !has_id {
        // The instance's identity, made once; its writes are node 1.
        let id = uuid::Uuid::now_v7();
        tx.execute(
            "INSERT INTO meta (key, value) VALUES ('instance_id', $1)",
            &[&id.to_string()],
        )
        .map_err(pg_error)?;
        tx.execute("INSERT INTO nodes (id, uid) VALUES (1, $1)", &[&id])
            .map_err(pg_error)?;
    }
    tx.commit().map_err(pg_error)
}
