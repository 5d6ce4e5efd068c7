//! One shared numbering at run time (B-06). The owner of a sequence answers block requests
//! (`grant`) whichever transport brought them (`control`); an instance drawing from it asks
//! through the sync's `Peer` and keeps blocks topped up in the background — woken by
//! commits, so a block is replaced while numbers are still left — and asks once more right
//! before a create finds none. An instance between the two (a chain over HTTP) passes
//! requests on to its own owner (`pass_on`).

use super::peer::Peer;
use crate::app::App;
use crmsync_domain::schema::{MAX_NUMBER_BLOCK, Numbering};
use crmsync_domain::sync::SyncConfig;
use crmsync_domain::{DomainError, Field, FieldNo, TableId};
use crmsync_sync::Mapping;
use crmsync_sync::protocol::{GrantedBlock, NumberBlockRequest};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Forwards allowed along a chain of instances drawing from one another.
pub const MAX_HOPS: u32 = 8;

/// Why the last request for a field's numbers failed, for the status and error messages.
#[derive(Clone, Default)]
pub struct NumberingFailures(Arc<Mutex<HashMap<FieldNo, String>>>);

impl NumberingFailures {
    fn set(&self, field_no: FieldNo, failure: Option<String>) {
        let mut map = self.0.lock().expect("numbering failures");
        match failure {
            Some(f) => map.insert(field_no, f),
            None => map.remove(&field_no),
        };
    }

    pub fn get(&self, field_no: FieldNo) -> Option<String> {
        self.0
            .lock()
            .expect("numbering failures")
            .get(&field_no)
            .cloned()
    }
}

/// The owner's answer to a request for a block of numbers (blocking): the block, or why
/// not. An instance that draws the field's numbers itself refuses here; over HTTP the
/// passive endpoint passes such a request on to its own owner instead (`passive`).
pub fn grant(app: &App, mapping: &Mapping, request: &NumberBlockRequest) -> GrantedBlock {
    let refused = |reason: String| GrantedBlock {
        field_no: request.field_no,
        first: 0,
        last: 0,
        refused: Some(reason),
    };
    let Some(route) = mapping.by_wire(request.field_no) else {
        return refused(format!(
            "field {} is not configured in this sync on the owner's side",
            request.field_no
        ));
    };
    match &route.local.options.numbering {
        Some(n) if n.from_sync.is_none() => match app
            .core
            .allocate_number_block(route.local.no, request.count)
        {
            Ok((first, last)) => GrantedBlock {
                field_no: request.field_no,
                first,
                last,
                refused: None,
            },
            Err(e) => refused(e.to_string()),
        },
        Some(_) => refused(format!(
            "field {} \"{}\" draws its numbers from another instance itself",
            route.local.no, route.local.name
        )),
        None => refused(format!(
            "field {} \"{}\" is not numbered on this instance, so it has no numbers to hand out",
            route.local.no, route.local.name
        )),
    }
}

/// The number `field` travels under in `sync`. A passive side maps fields only once the
/// active side's field list has come (right after the two paired): until then it waits
/// for it, as for an answer.
async fn wire_field(app: &App, sync: &SyncConfig, field: &Field) -> Result<FieldNo, String> {
    let started = Instant::now();
    loop {
        let (app2, sync2, no) = (app.clone(), sync.clone(), field.no);
        let found = tokio::task::spawn_blocking(move || {
            let waiting = sync2.mode == crmsync_domain::sync::Mode::Passive
                && app2.core.sync_state(sync2.id)?.peer_catalog.is_none();
            let mapping = super::initial::mapping_for(&app2, &sync2)?;
            Ok::<_, DomainError>((mapping.by_local(no).map(|r| r.wire_no), waiting))
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
        match found {
            (Some(wire_no), _) => return Ok(wire_no),
            (None, true) if started.elapsed() < super::peer::patience(sync) => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            (None, true) => {
                return Err(
                    "the active side's field list has not come yet (are the two sides paired?)"
                        .to_string(),
                );
            }
            (None, false) => {
                return Err(format!(
                    "field {} is not configured in sync {}",
                    field.no, sync.id
                ));
            }
        }
    }
}

/// Fields of this instance that draw their numbers through a sync.
fn drawing_fields(app: &App) -> Result<Vec<(Field, Numbering)>, DomainError> {
    Ok(app
        .core
        .tables()?
        .into_iter()
        .flat_map(|t| t.fields)
        .filter_map(|f| {
            let numbering = f.options.numbering.clone()?;
            numbering.from_sync.is_some().then_some((f, numbering))
        })
        .collect())
}

/// Asks the owner through `sync` for `count` numbers of the field travelling as `wire_no`.
async fn request_block(
    app: &App,
    sync: &SyncConfig,
    wire_no: FieldNo,
    count: u32,
    hops: u32,
) -> Result<(i64, i64), String> {
    let request = NumberBlockRequest {
        field_no: wire_no,
        count,
        hops,
    };
    let block = Peer::new(app, sync)
        .ask(request)
        .await
        .map_err(|failure| failure.0)?;
    if let Some(refusal) = block.refused {
        return Err(format!("the owner refused: {refusal}"));
    }
    if block.last - block.first + 1 != i64::from(count) {
        return Err(format!(
            "the owner sent {}–{} for a block of {count} numbers",
            block.first, block.last
        ));
    }
    Ok((block.first, block.last))
}

async fn load_sync(app: &App, sync_id: i64) -> Result<SyncConfig, String> {
    let core = app.core.clone();
    super::active::blocking(move || core.sync(sync_id))
        .await
        .map_err(|failure| failure.0)
}

/// Draws `count` numbers for `field` and keeps them; remembers the failure if there is one.
async fn refill(app: &App, field: &Field, numbering: &Numbering, count: u32) -> Result<(), String> {
    let draw = async {
        let sync = load_sync(app, numbering.from_sync.unwrap_or_default()).await?;
        let wire_no = wire_field(app, &sync, field).await?;
        let (first, last) = request_block(app, &sync, wire_no, count, 0).await?;
        let (core, no) = (app.core.clone(), field.no);
        super::active::blocking(move || core.add_number_block(no, first, last))
            .await
            .map_err(|failure| failure.0)
    };
    let failure = draw.await.err();
    app.numbering_failures.set(field.no, failure.clone());
    failure.map_or(Ok(()), Err)
}

/// Keeps every drawing field holding at least half a block, so creating a record never
/// waits for the owner while it is reachable.
pub async fn keep_blocks(app: App) {
    let mut commits = app.syncs.commits();
    loop {
        let app2 = app.clone();
        let low = tokio::task::spawn_blocking(move || {
            let mut low = Vec::new();
            for (field, numbering) in drawing_fields(&app2)? {
                if app2.core.numbers_left(field.no)? * 2 < numbering.block_size() as i64 {
                    low.push((field, numbering));
                }
            }
            Ok::<_, DomainError>(low)
        })
        .await;
        if let Ok(Ok(low)) = low {
            for (field, numbering) in low {
                let _ = refill(&app, &field, &numbering, numbering.block_size()).await;
            }
        }
        tokio::select! {
            _ = commits.changed() => {}
            _ = tokio::time::sleep(super::SAMPLE_EVERY) => {}
        }
    }
}

/// How often a create is tried when concurrent creates used the numbers held meanwhile
/// (each try first draws more, so a few are plenty).
const CREATE_TRIES: usize = 20;

/// Runs a create of `records` records in `table_id` (blocking) with numbers at hand:
/// before the first try a drawing field holding fewer asks its owner for the rest; a try
/// that failed because concurrent creates used the numbers meanwhile draws another block
/// of its own — so every retry adds numbers — and is made again. Adapters create records
/// through `crate::records`, which calls this.
pub(crate) async fn creating<T: Send + 'static>(
    app: &App,
    table_id: TableId,
    records: usize,
    attempt: impl Fn() -> Result<T, DomainError> + Send + Sync + 'static,
) -> Result<T, DomainError> {
    let attempt = Arc::new(attempt);
    let mut tries = 0;
    let mut at_least = records;
    loop {
        ensure_numbers(app, table_id, at_least).await?;
        let attempt = attempt.clone();
        let outcome = tokio::task::spawn_blocking(move || attempt())
            .await
            .map_err(|e| DomainError::Store(e.to_string()))?;
        tries += 1;
        if let Err(DomainError::Unavailable(_)) = &outcome
            && tries < CREATE_TRIES
        {
            // Numbers ran out under concurrent creates: ask for more than is held now,
            // whatever others take meanwhile.
            if let Some(fewest) = holdings(app, table_id).await?.iter().map(|h| h.2).min() {
                at_least = usize::try_from(fewest).unwrap_or_default() + records;
                continue;
            }
        }
        return outcome;
    }
}

/// The fields of `table_id` drawing numbers from another instance, with how many numbers
/// each holds now.
async fn holdings(
    app: &App,
    table_id: TableId,
) -> Result<Vec<(Field, Numbering, i64)>, DomainError> {
    let app = app.clone();
    tokio::task::spawn_blocking(move || {
        let mut held = Vec::new();
        for field in app.core.table(table_id)?.fields {
            if let Some(numbering) = field.options.numbering.clone()
                && numbering.from_sync.is_some()
            {
                let left = app.core.numbers_left(field.no)?;
                held.push((field, numbering, left));
            }
        }
        Ok(held)
    })
    .await
    .map_err(|e| DomainError::Store(e.to_string()))?
}

/// Before `records` records are created in `table_id`: a drawing field holding fewer
/// numbers asks its owner for what is missing (a block at least, and more for a large
/// import); if it cannot, the create is refused with the reason, nothing written.
async fn ensure_numbers(app: &App, table_id: TableId, records: usize) -> Result<(), DomainError> {
    let wanted = i64::try_from(records).unwrap_or(i64::MAX);
    for (field, numbering, mut left) in holdings(app, table_id).await? {
        while left < wanted {
            let missing = (wanted - left).min(i64::from(MAX_NUMBER_BLOCK)) as u32;
            let count = missing.max(numbering.block_size());
            if let Err(reason) = refill(app, &field, &numbering, count).await {
                return Err(DomainError::Unavailable(format!(
                    "no number left for field {} \"{}\": its numbers come from the instance at the other end of sync {}, which could not give more ({reason}); the record was not created",
                    field.no,
                    field.name,
                    numbering.from_sync.unwrap_or_default()
                )));
            }
            left += i64::from(count);
        }
    }
    Ok(())
}

/// A request for numbers that reached an instance drawing the field's numbers itself
/// (a link of a chain): passed on to its own owner through `upstream`, `hops` counting the
/// links so far.
pub async fn pass_on(
    app: &App,
    upstream: i64,
    field: &Field,
    count: u32,
    hops: u32,
) -> Result<(i64, i64), String> {
    if hops >= MAX_HOPS {
        return Err(NUMBERING_LOOP.to_string());
    }
    let sync = load_sync(app, upstream).await?;
    let wire_no = wire_field(app, &sync, field).await?;
    request_block(app, &sync, wire_no, count, hops + 1).await
}

pub const NUMBERING_LOOP: &str = "the request for numbers went round too many instances; the numbering is configured in a circle";
