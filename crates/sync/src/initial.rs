//! Initial sync (S-17, S-22): every record of the configured tables is queued to be sent
//! again — all configured fields, or one — as resend entries in the change log, so the
//! ordinary exchange carries them in bounded packets and applying stays idempotent.

use crate::mapping::Mapping;
use crate::protocol::{ResendRequest, ResendSummary};
use crmsync_domain::sync::SyncConfig;
use crmsync_domain::{DomainError, Instance, Store, TableId};

/// Records per resend transaction.
const PAGE: usize = 5000;

pub fn resend_all<S: Store>(
    core: &Instance<S>,
    sync: &SyncConfig,
    mapping: &Mapping,
    request: ResendRequest,
) -> Result<ResendSummary, DomainError> {
    let (tables, fields): (Vec<TableId>, Vec<i64>) = match request.field {
        Some(wire_no) => match mapping.by_wire(wire_no).filter(|r| r.direction.sends()) {
            Some(route) => (vec![route.local.table_id], vec![route.local.no]),
            None => (Vec::new(), Vec::new()),
        },
        None => {
            let mut tables: Vec<TableId> = mapping
                .routes
                .iter()
                .filter(|r| r.direction.sends())
                .map(|r| r.local.table_id)
                .collect();
            tables.sort_unstable();
            tables.dedup();
            (tables, Vec::new())
        }
    };
    let mut summary = ResendSummary::default();
    for table in tables {
        let mut after = 0;
        loop {
            let ids = core.record_ids(table, after, PAGE)?;
            let Some(last_id) = ids.last().copied() else {
                break;
            };
            if let Some((first, last)) = core.resend(sync.id, table, &ids, &fields)? {
                if summary.count == 0 {
                    summary.first = first;
                }
                summary.last = last;
                summary.count += ids.len() as i64;
            }
            after = last_id;
        }
    }
    Ok(summary)
}
