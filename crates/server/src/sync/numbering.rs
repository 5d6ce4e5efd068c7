//! One shared numbering at run time (B-06). The owner of a sequence answers block requests
//! as the passive side of an HTTP sync (`/sync/v1/{id}/numbers`), or over folders in its
//! packet files (`control`); an instance drawing from it keeps blocks topped up in
//! the background — woken by commits, so a block is replaced while numbers are still left
//! — and asks once more right before a create finds none. An instance between the two (a
//! chain over HTTP) passes requests on to its own owner.

use super::active::{Failure, call_peer};
use super::channel::Authenticated;
use super::passive::{parse, passive_mapping};
use crate::api::{ApiError, blocking};
use crate::app::App;
use axum::Extension;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use crmsync_domain::schema::{MAX_NUMBER_BLOCK, Numbering};
use crmsync_domain::sync::{SyncConfig, Transport};
use crmsync_domain::{DomainError, Field, FieldNo, TableId};
use crmsync_sync::Mapping;
use crmsync_sync::protocol::{GrantedBlock, NumberBlock, NumberBlockRequest};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Forwards allowed along a chain of instances drawing from one another.
const MAX_HOPS: u32 = 8;

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

/// The owner's side over folders: answers the requests a packet carried (blocking).
pub fn grant_from_folder(
    app: &App,
    sync: &SyncConfig,
    mapping: &Mapping,
    requests: &[NumberBlockRequest],
) -> Result<(), DomainError> {
    if requests.is_empty() {
        return Ok(());
    }
    let mut grants = Vec::new();
    for request in requests {
        let refused = |reason: String| GrantedBlock {
            field_no: request.field_no,
            first: 0,
            last: 0,
            refused: Some(reason),
        };
        let grant = match mapping.by_wire(request.field_no) {
            None => refused(format!(
                "field {} is not configured in this sync on the owner's side",
                request.field_no
            )),
            Some(route) => match &route.local.options.numbering {
                Some(n) if n.from_sync.is_none() => {
                    match app
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
                    }
                }
                _ => refused(format!(
                    "field {} \"{}\" does not own a numbering on the other side",
                    route.local.no, route.local.name
                )),
            },
        };
        grants.push(grant);
    }
    app.folder_control
        .with(sync.id, |c| c.send_number_blocks.extend(grants));
    Ok(())
}

/// The drawing side over folders: keeps the blocks a packet brought (blocking).
pub fn receive_from_folder(
    app: &App,
    sync: &SyncConfig,
    mapping: &Mapping,
    blocks: &[GrantedBlock],
) -> Result<(), DomainError> {
    if blocks.is_empty() {
        return Ok(());
    }
    for block in blocks {
        // Taken only for a request outstanding here, once: a block nobody asked for (asked
        // before a restart, or delivered again) is left out, so no number is used twice.
        let asked = app.folder_control.with(sync.id, |c| {
            c.numbers_asked
                .get(&block.field_no)
                .is_some_and(|(_, refused)| refused.is_none())
        });
        if !asked {
            app.core.log_sync(
                sync,
                "error",
                format!(
                    "ignored numbers {}..{} for field {} this side did not ask for (asked before a restart, or a replay)",
                    block.first, block.last, block.field_no
                ),
                None,
            )?;
            continue;
        }
        let refusal = match (&block.refused, mapping.by_wire(block.field_no)) {
            (Some(reason), _) => Some(reason.clone()),
            (None, Some(route)) => app
                .core
                .add_number_block(route.local.no, block.first, block.last)
                .err()
                .map(|e| e.to_string()),
            (None, None) => Some(format!("field {} is not configured here", block.field_no)),
        };
        app.folder_control.with(sync.id, |c| match &refusal {
            None => {
                c.numbers_asked.remove(&block.field_no);
            }
            Some(reason) => {
                c.numbers_asked
                    .insert(block.field_no, (Instant::now(), Some(reason.clone())));
            }
        });
    }
    Ok(())
}

/// Asks the owner through folders for `count` numbers of `field`, and waits for them.
async fn folder_refill(
    app: &App,
    sync: &SyncConfig,
    field: &Field,
    count: u32,
) -> Result<(), String> {
    // A passive side maps fields only once the active side's field list has come (right
    // after the two paired): until then it waits for it, as for the answer.
    let started = Instant::now();
    let wire_no = loop {
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
            (Some(wire_no), _) => break wire_no,
            (None, true) if started.elapsed() < super::control::patience(sync) => {
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
    };
    let request = NumberBlockRequest {
        field_no: wire_no,
        count,
        hops: 0,
    };
    app.folder_control
        .ask(
            app,
            sync,
            |c| {
                c.send_number_requests.push(request);
                c.numbers_asked.insert(wire_no, (Instant::now(), None));
            },
            // A block kept clears the field's entry; a refusal stays in it.
            |c| match c.numbers_asked.get(&wire_no) {
                None => Some(Ok(())),
                Some((_, Some(refusal))) => Some(Err(format!("the owner refused: {refusal}"))),
                Some((_, None)) => None,
            },
        )
        .await?
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

/// Asks the owner, through `sync_id`, for `count` numbers of `field_no`.
async fn request_block(
    app: &App,
    sync_id: i64,
    field_no: FieldNo,
    count: u32,
    hops: u32,
) -> Result<NumberBlock, Failure> {
    let core = app.core.clone();
    let sync = super::active::blocking(move || core.sync(sync_id)).await?;
    let request = NumberBlockRequest {
        field_no,
        count,
        hops,
    };
    // The owner maps the field only once it has this side's field list: introduce this side
    // first (a request made right after the two paired could otherwise outrun the sync's
    // own hello). Blocks are asked for seldom; one hello more costs little.
    super::active::hello(app, &sync).await?;
    let block: NumberBlock = call_peer(app, &sync, "numbers", &request).await?;
    if block.last - block.first + 1 != count as i64 {
        return Err(Failure(format!(
            "the owner sent {}–{} for a block of {count} numbers",
            block.first, block.last
        )));
    }
    Ok(block)
}

/// Draws `count` numbers for `field` and keeps them; remembers the failure if there is one.
async fn refill(app: &App, field: &Field, numbering: &Numbering, count: u32) -> Result<(), String> {
    let sync_id = numbering.from_sync.unwrap_or_default();
    let core = app.core.clone();
    let sync = match tokio::task::spawn_blocking(move || core.sync(sync_id)).await {
        Ok(Ok(sync)) => sync,
        Ok(Err(e)) => return Err(e.to_string()),
        Err(e) => return Err(e.to_string()),
    };
    let failure = if sync.transport == Transport::Http {
        let outcome = match request_block(app, sync_id, field.no, count, 0).await {
            Ok(block) => {
                let core = app.core.clone();
                let no = field.no;
                super::active::blocking(move || core.add_number_block(no, block.first, block.last))
                    .await
            }
            Err(failure) => Err(failure),
        };
        outcome.err().map(|f| f.0)
    } else {
        folder_refill(app, &sync, field, count).await.err()
    };
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
/// of its own — so every retry adds numbers — and is made again.
pub async fn creating<T: Send + 'static>(
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

/// The owner's side (or a link of a chain): `POST /sync/v1/{sync_id}/numbers`.
pub async fn answer(
    State(app): State<App>,
    Extension(Authenticated(sync)): Extension<Authenticated>,
    Path(_sync_id): Path<i64>,
    body: Bytes,
) -> Result<Json<NumberBlock>, ApiError> {
    let request: NumberBlockRequest = parse(&body)?;
    if request.hops >= MAX_HOPS {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "numbering_loop",
            "the request for numbers went round too many instances; the numbering is configured in a circle",
        ));
    }
    let app2 = app.clone();
    let wire_no = request.field_no;
    let field = blocking(move || {
        let mapping = passive_mapping(&app2, &sync)?;
        mapping
            .routes
            .iter()
            .find(|r| r.wire_no == wire_no)
            .map(|r| r.local.clone())
            .ok_or_else(|| {
                DomainError::Conflict(format!(
                    "the active side's field {wire_no} is not mapped to a field of sync {} here",
                    sync.id
                ))
            })
    })
    .await?;
    let numbering = field.options.numbering.clone().ok_or_else(|| {
        ApiError::from(DomainError::Conflict(format!(
            "field {} \"{}\" is not numbered on this instance, so it has no numbers to hand out",
            field.no, field.name
        )))
    })?;
    let block = match numbering.from_sync {
        None => {
            let no = field.no;
            let (first, last) =
                blocking(move || app.core.allocate_number_block(no, request.count)).await?;
            NumberBlock { first, last }
        }
        Some(upstream) => request_block(&app, upstream, field.no, request.count, request.hops + 1)
            .await
            .map_err(|f| {
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    format!(
                        "this instance passes number requests on, and could not: {}",
                        f.0
                    ),
                )
            })?,
    };
    Ok(Json(block))
}
