//! Long-running work (initial syncs) as jobs a client can watch: `GET /api/v1/jobs/{id}`.
//! Jobs live in memory; after a restart an initial sync is simply started again (it is
//! idempotent).

use serde::Serialize;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct JobStatus {
    pub id: u64,
    /// running, done or failed.
    pub state: &'static str,
    pub done: i64,
    pub total: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// While running: what it waits for now (the other side to apply the rest, or why the
    /// sync cannot reach it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waiting: Option<String>,
}

#[derive(Clone, Default)]
pub struct Jobs {
    inner: Arc<Mutex<(u64, HashMap<u64, JobStatus>)>>,
}

impl Jobs {
    pub fn start(&self) -> JobStatus {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.0 += 1;
        let job = JobStatus {
            id: inner.0,
            state: "running",
            done: 0,
            total: 0,
            error: None,
            waiting: None,
        };
        inner.1.insert(job.id, job.clone());
        job
    }

    pub fn update(&self, id: u64, change: impl FnOnce(&mut JobStatus)) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(job) = inner.1.get_mut(&id) {
            change(job);
        }
    }

    pub fn get(&self, id: u64) -> Option<JobStatus> {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .1
            .get(&id)
            .cloned()
    }
}
