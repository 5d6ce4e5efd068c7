//! Leases: which of the crmsync processes on one database runs a sync (the active HTTP
//! loop, the folder rounds). A lease is a session-level advisory lock held on a connection
//! of its own for as long as the runner runs; PostgreSQL drops it when that connection
//! closes — the runner stopped, or its process died — and another process takes it.

use crate::{PgStore, pg_error};
use crmsync_domain::DomainError;
use crmsync_domain::store::StoreResult;
use postgres::{Client, NoTls};

/// The first key of every sync lease (the second is the sync's id). Two-key advisory locks
/// live in a key space of their own, apart from the writers' one-key lock.
const LEASE_NAMESPACE: i32 = 0x6372_6d73; // "crms"

/// One sync's lease as this process sees it: asked for on a connection of its own (kept
/// between tries, so a process waiting for a lease does not connect again every time),
/// held from a successful `try_take` until dropped.
pub struct SyncLease {
    config: postgres::Config,
    key: i32,
    client: Option<Client>,
    held: bool,
}

impl PgStore {
    /// The lease of sync `sync_id`, not taken yet.
    pub fn sync_lease(&self, sync_id: i64) -> StoreResult<SyncLease> {
        let key = i32::try_from(sync_id)
            .map_err(|_| DomainError::Store(format!("sync id {sync_id} has no lease key")))?;
        Ok(SyncLease {
            config: self.pool.config().clone(),
            key,
            client: None,
            held: false,
        })
    }
}

impl SyncLease {
    /// Takes the lease if no process holds it (this one included: a lease is taken once
    /// per runner). True while it is held.
    pub fn try_take(&mut self) -> StoreResult<bool> {
        if self.held {
            if self.is_held() {
                return Ok(true);
            }
            self.release();
        }
        if self.client.as_ref().is_some_and(Client::is_closed) {
            self.release();
        }
        let client = match &mut self.client {
            Some(client) => client,
            None => self
                .client
                .insert(self.config.connect(NoTls).map_err(pg_error)?),
        };
        let row = client
            .query_one(
                "SELECT pg_try_advisory_lock($1, $2)",
                &[&LEASE_NAMESPACE, &self.key],
            )
            .map_err(pg_error);
        let row = match row {
            Ok(row) => row,
            Err(e) => {
                // A broken connection is made anew on the next try.
                self.release();
                return Err(e);
            }
        };
        self.held = crate::get(&row, 0)?;
        Ok(self.held)
    }

    /// Whether the lease is still this process's: a connection that broke (the database
    /// restarted, the network cut) has lost its locks, and another process may hold it now.
    pub fn is_held(&mut self) -> bool {
        self.held
            && self
                .client
                .as_mut()
                .is_some_and(|client| !client.is_closed() && client.simple_query("").is_ok())
    }

    /// Closes the connection, and with it the lock if it was held.
    fn release(&mut self) {
        self.held = false;
        if let Some(client) = self.client.take() {
            // A client closes by blocking on a runtime of its own, which panics on a thread
            // that drives async tasks: closed on a thread of its own (not waited for).
            std::thread::spawn(move || drop(client));
        }
    }
}

impl Drop for SyncLease {
    fn drop(&mut self) {
        self.release();
    }
}
