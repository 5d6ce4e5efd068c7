//! One shared numbering at run time (B-06). The owner of a sequence answers block requests
//! as the passive side of an HTTP sync (`/sync/v1/{id}/numbers`); an instance drawing
//! from it keeps blocks topped up in the background — woken by commits, so a block is
//! replaced while numbers are still left — and asks once more right before a create finds
//! none. An instance between the two (a chain) passes requests on to its own owner.

use super::active::{Failure, call_peer};
use super::passive::{authenticate, passive_mapping};
use crate::api::{ApiError, blocking};
use crate::app::App;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode};
use crmsync_domain::schema::Numbering;
use crmsync_domain::{DomainError, Field, FieldNo, TableId};
use crmsync_sync::protocol::{NumberBlock, NumberBlockRequest};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

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
    let block: NumberBlock = call_peer(app, &sync, "numbers", &request).await?;
    if block.last - block.first + 1 != count as i64 {
        return Err(Failure(format!(
            "the owner sent {}–{} for a block of {count} numbers",
            block.first, block.last
        )));
    }
    Ok(block)
}

/// Draws one block for `field` and keeps it; remembers the failure if there is one.
async fn refill(app: &App, field: &Field, numbering: &Numbering) -> Result<(), String> {
    let sync_id = numbering.from_sync.unwrap_or_default();
    let outcome = match request_block(app, sync_id, field.no, numbering.block_size(), 0).await {
        Ok(block) => {
            let core = app.core.clone();
            let no = field.no;
            super::active::blocking(move || core.add_number_block(no, block.first, block.last))
                .await
        }
        Err(failure) => Err(failure),
    };
    let failure = outcome.err().map(|f| f.0);
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
                let _ = refill(&app, &field, &numbering).await;
            }
        }
        tokio::select! {
            _ = commits.changed() => {}
            _ = tokio::time::sleep(super::SAMPLE_EVERY) => {}
        }
    }
}

/// How often a create is tried when concurrent creates used the numbers held meanwhile.
pub const CREATE_TRIES: usize = 5;

/// Runs a create of records in `table_id` (blocking) with numbers at hand: before each
/// try a drawing field holding none asks its owner; a try that failed because other
/// creates used the last numbers meanwhile is made again.
pub async fn creating<T: Send + 'static>(
    app: &App,
    table_id: TableId,
    attempt: impl Fn() -> Result<T, DomainError> + Send + Sync + 'static,
) -> Result<T, DomainError> {
    let attempt = Arc::new(attempt);
    let mut tries = 0;
    loop {
        ensure_numbers(app, table_id).await?;
        let attempt = attempt.clone();
        let outcome = tokio::task::spawn_blocking(move || attempt())
            .await
            .map_err(|e| DomainError::Store(e.to_string()))?;
        tries += 1;
        match outcome {
            Err(DomainError::Unavailable(_))
                if tries < CREATE_TRIES && ran_out(app, table_id).await => {}
            other => return other,
        }
    }
}

/// Whether a field of `table_id` drawing numbers from another instance holds none.
pub async fn ran_out(app: &App, table_id: TableId) -> bool {
    matches!(empty_fields(app, table_id).await, Ok(empty) if !empty.is_empty())
}

async fn empty_fields(
    app: &App,
    table_id: TableId,
) -> Result<Vec<(Field, Numbering)>, DomainError> {
    let app = app.clone();
    tokio::task::spawn_blocking(move || {
        let mut empty = Vec::new();
        for (field, numbering) in drawing_fields(&app)? {
            if field.table_id == table_id && app.core.numbers_left(field.no)? == 0 {
                empty.push((field, numbering));
            }
        }
        Ok(empty)
    })
    .await
    .map_err(|e| DomainError::Store(e.to_string()))?
}

/// Before records are created in `table_id`: a drawing field holding no numbers asks its
/// owner now; if it cannot, the create is refused with the reason, nothing written.
pub async fn ensure_numbers(app: &App, table_id: TableId) -> Result<(), DomainError> {
    let empty = empty_fields(app, table_id).await?;
    for (field, numbering) in empty {
        if let Err(reason) = refill(app, &field, &numbering).await {
            return Err(DomainError::Unavailable(format!(
                "no number left for field {} \"{}\": its numbers come from the instance at the other end of sync {}, which could not give more ({reason}); the record was not created",
                field.no,
                field.name,
                numbering.from_sync.unwrap_or_default()
            )));
        }
    }
    Ok(())
}

/// The owner's side (or a link of a chain): `POST /sync/v1/{sync_id}/numbers`.
pub async fn answer(
    State(app): State<App>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(sync_id): Path<i64>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<NumberBlock>, ApiError> {
    let sync = authenticate(&app, sync_id, "numbers", &headers, &body, peer).await?;
    let request: NumberBlockRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("malformed number request: {e}")))?;
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
