//! The passive side of the HTTP transport: `/sync/v1/{sync_id}/hello|push|pull|…`. The
//! active side starts every exchange; these endpoints only answer, and only requests the
//! sealed channel (`channel`) opened reach them.

use super::channel::{self, Authenticated};
use super::content;
use super::numbering;
use super::peer::{Ask, Request};
use crate::api::{ApiError, blocking};
use crate::app::App;
use axum::Extension;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::StatusCode;
use axum::routing::{post, put};
use axum::{Json, Router};
use crmsync_domain::DomainError;
use crmsync_domain::sync::{SyncConfig, SyncState};
use crmsync_sync::drift::{DigestRequest, Digests};
use crmsync_sync::protocol::{
    Hello, HelloReply, NumberBlock, NumberBlockRequest, Packet, PairReply, PairRequest,
    PullRequest, PushReply, RecordsReply, RecordsRequest, ResendRequest, ResendSummary,
};
use crmsync_sync::{Catalog, Mapping, PROTOCOL_VERSION, apply_packet, build_packet};
use serde::de::DeserializeOwned;
use serde_json::json;
use std::time::Duration;

/// Change-log entries per packet.
pub const PACKET_LIMIT: usize = 5000;
/// The longest a pull may wait for changes.
const MAX_WAIT: Duration = Duration::from_secs(30);

/// The passive endpoints: pairing in the clear, everything else sealed with the paired key
/// (`channel::sealed` opens each request and seals its answer).
pub fn router(app: &App) -> Router<App> {
    let sealed = Router::new()
        .route("/sync/v1/{sync_id}/hello", post(hello))
        .route("/sync/v1/{sync_id}/push", post(push))
        .route("/sync/v1/{sync_id}/pull", post(pull))
        .route("/sync/v1/{sync_id}/resend", post(resend))
        .route("/sync/v1/{sync_id}/digests", post(digests))
        .route("/sync/v1/{sync_id}/numbers", post(numbers))
        .route("/sync/v1/{sync_id}/records", post(records))
        .route("/sync/v1/{sync_id}/pair", post(pair))
        .route("/sync/v1/{sync_id}/content/{sha256}", post(content::offer))
        .route(
            "/sync/v1/{sync_id}/content/{sha256}/{index}",
            put(content::put_chunk)
                .post(content::get_chunk)
                .get(content::get_chunk),
        )
        .route_layer(axum::middleware::from_fn_with_state(
            app.clone(),
            channel::sealed,
        ));
    // Pairing messages are read before anything authenticates them: a few hundred bytes.
    let pairing = Router::new()
        .route("/sync/v1/{sync_id}/pake", post(channel::pake))
        .route("/sync/v1/{sync_id}/pake/confirm", post(channel::confirm))
        .layer(DefaultBodyLimit::max(channel::MAX_PAIRING_BYTES));
    pairing.merge(sealed.layer(DefaultBodyLimit::max(channel::MAX_REQUEST_BYTES)))
}

/// The peer's catalogue as it last described it (none yet: None).
pub fn peer_catalog(app: &App, sync_id: i64) -> Result<Option<Catalog>, DomainError> {
    let state = app.core.sync_state(sync_id)?;
    Ok(state
        .peer_catalog
        .as_deref()
        .and_then(|c| serde_json::from_str(c).ok()))
}

/// Refuses a whole table paired with a table the active side does not have (once it has
/// described its tables; before that, pairing is reported as waiting).
pub fn check_remote_table(
    app: &App,
    sync_id: i64,
    remote_table_id: Option<i64>,
) -> Result<(), DomainError> {
    let (Some(remote), Some(catalog)) = (remote_table_id, peer_catalog(app, sync_id)?) else {
        return Ok(());
    };
    if catalog.iter().any(|c| c.table_id == remote) {
        return Ok(());
    }
    Err(DomainError::invalid(format!(
        "remote_table_id: the active side has no table {remote} (see GET /api/v1/syncs/{sync_id}/catalog)"
    )))
}

/// The mapping of a passive sync, with the active side's catalogue it last sent.
pub fn passive_mapping(app: &App, sync: &SyncConfig) -> Result<Mapping, DomainError> {
    let catalog = peer_catalog(app, sync.id)?;
    let tables = app.core.tables()?;
    let (fields, unpaired) = crmsync_sync::mapping::pair_by_name(
        app.core.sync_fields(sync.id)?,
        &app.core.sync_tables(sync.id)?,
        &tables,
        catalog.as_ref(),
    );
    let mut mapping = Mapping::build(sync, &fields, &tables, catalog.as_ref());
    mapping.problems.extend(unpaired);
    mapping.uids = crmsync_sync::mapping::UidPairs::new(&app.core.uid_pairs(sync.id)?);
    Ok(mapping)
}

/// A sync message's body, or a clear refusal.
pub(crate) fn parse<T: DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("malformed sync message: {e}")))
}

async fn hello(
    State(app): State<App>,
    Extension(Authenticated(sync)): Extension<Authenticated>,
    Path(_sync_id): Path<i64>,
    body: Bytes,
) -> Result<Json<HelloReply>, ApiError> {
    let hello: Hello = parse(&body)?;
    if hello.version != PROTOCOL_VERSION {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "protocol_version",
            format!(
                "this side speaks sync protocol {PROTOCOL_VERSION}, the active side {}",
                hello.version
            ),
        ));
    }
    let app2 = app.clone();
    let user_match = sync.user_match;
    let (instance_id, problems) = blocking(move || {
        let catalog = serde_json::to_string(&hello.catalog).unwrap_or_default();
        app2.core.update_sync_state(sync.id, |s| {
            s.peer_catalog = Some(catalog);
            s.peer_instance = Some(hello.instance_id.clone());
            s.peer_user_match = hello.user_match.map(|m| m.as_str().to_string());
        })?;
        let mapping = passive_mapping(&app2, &sync)?;
        app2.core.log_sync(
            &sync,
            "exchange",
            "the active side connected",
            Some(json!({ "problems": mapping.problems })),
        )?;
        Ok((app2.core.instance_id()?, mapping.problems))
    })
    .await?;
    Ok(Json(HelloReply {
        version: PROTOCOL_VERSION,
        instance_id: instance_id.to_string(),
        problems,
        now_ms: Some(app.core.now_ms()),
        user_match: Some(user_match),
    }))
}

async fn push(
    State(app): State<App>,
    Extension(Authenticated(sync)): Extension<Authenticated>,
    Path(_sync_id): Path<i64>,
    body: Bytes,
) -> Result<Json<PushReply>, ApiError> {
    let packet: Packet = parse(&body)?;
    if let Some(problem) = packet.range_problem() {
        return Err(ApiError::bad_request(format!(
            "the packet is refused: {problem}"
        )));
    }
    if let Some(before) = packet.follows {
        applied_up_to(&app, sync.id, before).await?;
    }
    // Not while an initial sync started here queues its rows (they would include these).
    let applying = app.initial_turns.applying(sync.id).await;
    let applied = blocking(move || receive(&app, &sync, &packet)).await?;
    drop(applying);
    Ok(Json(PushReply { applied }))
}

/// How long a packet pushed right behind another waits for that one to be applied.
const FOLLOWER_WAIT: Duration = Duration::from_secs(30);

/// Waits until this side has applied the active side's log up to `seq` (a packet pushed
/// behind another arrived first, or while that one is applied). Refused when it does not
/// come: applied now, it would move the cursor past the packet before it.
async fn applied_up_to(app: &App, sync_id: i64, seq: i64) -> Result<(), ApiError> {
    let mut receptions = app.syncs.receptions();
    let deadline = tokio::time::Instant::now() + FOLLOWER_WAIT;
    loop {
        let core = app.core.clone();
        let received = blocking(move || Ok(core.sync_state(sync_id)?.received_seq)).await?;
        if received >= seq {
            return Ok(());
        }
        tokio::select! {
            _ = receptions.changed() => {}
            _ = tokio::time::sleep_until(deadline) => {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    "out_of_order",
                    format!(
                        "the packet follows one ending at {seq}, which was not applied (applied up to {received})"
                    ),
                ));
            }
        }
    }
}

/// Applies a packet unless it was applied before; returns the incoming cursor.
pub fn receive(app: &App, sync: &SyncConfig, packet: &Packet) -> Result<i64, DomainError> {
    let state = app.core.sync_state(sync.id)?;
    if packet.upto <= state.received_seq {
        return Ok(state.received_seq);
    }
    let mapping = super::initial::mapping_for(app, sync)?;
    content::ensure_present(app, &mapping, packet)?;
    let report = apply_packet(&app.core, sync, &mapping, packet)?;
    let moved = |s: &mut SyncState| {
        s.received_seq = s.received_seq.max(packet.upto);
        s.pending_in = packet.remaining;
    };
    // The packet's log entry and the cursor it moves: one commit.
    let state = match packet.items.is_empty() {
        true => app.core.update_sync_state(sync.id, moved)?,
        false => {
            app.metrics
                .received(sync.id, app.core.now_ms(), packet.items.len());
            let message = format!(
                "received {} record(s): {} created, {} changed, {} conflict(s), {} held",
                report.items, report.created, report.changed, report.conflicts, report.held
            );
            app.core
                .update_sync_state_logging(sync, "received", message, report.received, moved)?
        }
    };
    app.syncs.received();
    Ok(state.received_seq)
}

async fn pull(
    State(app): State<App>,
    Extension(Authenticated(sync)): Extension<Authenticated>,
    Path(sync_id): Path<i64>,
    body: Bytes,
) -> Result<Json<Packet>, ApiError> {
    let request: PullRequest = parse(&body)?;
    if let Some(resent) = request.resent {
        // Per sync, in memory, like the folder transports' answers: what our initial sync
        // waits for.
        app.mailboxes.with(sync_id, |m| m.got_resent = Some(resent));
    }
    let mut commits = app.syncs.commits();
    let deadline =
        tokio::time::Instant::now() + Duration::from_millis(request.wait_ms).min(MAX_WAIT);
    // Our cursor: what the active side acknowledged, but never before the sync began.
    let ack = {
        let core = app.core.clone();
        let ack = request.ack;
        blocking(move || core.update_sync_state(sync_id, |s| s.sent_seq = s.sent_seq.max(ack)))
            .await?
            .sent_seq
    };
    loop {
        let app2 = app.clone();
        let sync2 = sync.clone();
        let mut packet = blocking(move || {
            let mapping = super::initial::mapping_for(&app2, &sync2)?;
            let mut packet = build_packet(&app2.core, &sync2, &mapping, ack, PACKET_LIMIT)?;
            packet.problems = mapping.problems.clone();
            // Read again: it may have changed while the pull waited.
            packet.user_match = Some(app2.core.sync(sync2.id)?.user_match);
            Ok(packet)
        })
        .await?;
        // An initial sync started here asks the active side for its rows, once.
        let core = app.core.clone();
        let requested = blocking(move || {
            let mut request = None;
            core.update_sync_state(sync_id, |s| request = s.resend_request.take())?;
            Ok(request)
        })
        .await?;
        packet.resend = requested.and_then(|r| serde_json::from_str::<ResendRequest>(&r).ok());
        let news = packet.upto > ack
            || packet.resend.is_some()
            || packet.problems != request.problems
            || packet.user_match != request.user_match;
        if news || tokio::time::Instant::now() >= deadline {
            if !packet.items.is_empty() {
                let core = app.core.clone();
                let sync2 = sync.clone();
                let count = packet.items.len();
                let listed = match sync.log {
                    true => packet.logged_records(),
                    false => Default::default(),
                };
                app.metrics.sent(sync.id, app.core.now_ms(), count);
                blocking(move || {
                    core.log_sync_records(&sync2, "sent", format!("sent {count} record(s)"), listed)
                })
                .await?;
            }
            return Ok(Json(packet));
        }
        tokio::select! {
            _ = commits.changed() => {}
            _ = tokio::time::sleep_until(deadline) => {}
        }
    }
}

async fn resend(
    State(app): State<App>,
    Extension(Authenticated(sync)): Extension<Authenticated>,
    Path(_sync_id): Path<i64>,
    body: Bytes,
) -> Result<Json<ResendSummary>, ApiError> {
    let request: ResendRequest = parse(&body)?;
    let summary = blocking(move || super::initial::queue_own(&app, &sync, request)).await?;
    Ok(Json(summary))
}

/// A question of the active side's (a drift check's digests, a match's records and pairs):
/// answered as a packet's would be (`control::answer`).
async fn answer<R>(app: App, sync: SyncConfig, body: Bytes) -> Result<R::Answer, ApiError>
where
    R: Ask + DeserializeOwned + Send + 'static,
    R::Answer: Send + 'static,
{
    let request: Request = parse::<R>(&body)?.into();
    let answer = blocking(move || {
        let mapping = passive_mapping(&app, &sync)?;
        super::control::answer(&app, &sync, &mapping, &request)
    })
    .await?;
    R::answer(answer)
        .ok_or_else(|| ApiError::internal("a sync question", "answered another question"))
}

/// The passive side's digests for a drift check (B-16), over the fields both sides carry.
async fn digests(
    State(app): State<App>,
    Extension(Authenticated(sync)): Extension<Authenticated>,
    Path(_sync_id): Path<i64>,
    body: Bytes,
) -> Result<Json<Digests>, ApiError> {
    Ok(Json(answer::<DigestRequest>(app, sync, body).await?))
}

/// The passive side's records of one table, as they travel (B-05).
async fn records(
    State(app): State<App>,
    Extension(Authenticated(sync)): Extension<Authenticated>,
    Path(_sync_id): Path<i64>,
    body: Bytes,
) -> Result<Json<RecordsReply>, ApiError> {
    let items = answer::<RecordsRequest>(app, sync, body).await?;
    Ok(Json(RecordsReply { items }))
}

/// Records the pairs the active side matched (B-05).
async fn pair(
    State(app): State<App>,
    Extension(Authenticated(sync)): Extension<Authenticated>,
    Path(_sync_id): Path<i64>,
    body: Bytes,
) -> Result<Json<PairReply>, ApiError> {
    let outcome = answer::<PairRequest>(app, sync, body).await?;
    Ok(Json(PairReply {
        paired: outcome.paired,
    }))
}

/// A block of numbers from their owner (B-06), or from a link of a chain that passes the
/// request on to its own owner.
async fn numbers(
    State(app): State<App>,
    Extension(Authenticated(sync)): Extension<Authenticated>,
    Path(_sync_id): Path<i64>,
    body: Bytes,
) -> Result<Json<NumberBlock>, ApiError> {
    let request: NumberBlockRequest = parse(&body)?;
    let looped = || {
        ApiError::new(
            StatusCode::CONFLICT,
            "numbering_loop",
            numbering::NUMBERING_LOOP,
        )
    };
    if request.hops >= numbering::MAX_HOPS {
        return Err(looped());
    }
    let app2 = app.clone();
    let (mapping, passes_on) = blocking(move || {
        let mapping = passive_mapping(&app2, &sync)?;
        let passes_on = mapping.by_wire(request.field_no).and_then(|route| {
            let upstream = route.local.options.numbering.as_ref()?.from_sync?;
            Some((upstream, route.local.clone()))
        });
        Ok((mapping, passes_on))
    })
    .await?;
    let (first, last) = match passes_on {
        Some((upstream, field)) => {
            numbering::pass_on(&app, upstream, &field, request.count, request.hops)
                .await
                .map_err(|reason| match reason.as_str() {
                    numbering::NUMBERING_LOOP => looped(),
                    _ => ApiError::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "unavailable",
                        format!("this instance passes number requests on, and could not: {reason}"),
                    ),
                })?
        }
        None => {
            let block = blocking(move || Ok(numbering::grant(&app, &mapping, &request))).await?;
            if let Some(refusal) = block.refused {
                return Err(ApiError::from(DomainError::Conflict(refusal)));
            }
            (block.first, block.last)
        }
    };
    Ok(Json(NumberBlock { first, last }))
}
