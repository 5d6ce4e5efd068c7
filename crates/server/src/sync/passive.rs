//! The passive side of the HTTP transport: `/sync/v1/{sync_id}/hello|push|pull`. The
//! active side starts every exchange; these endpoints only answer, after checking the
//! request's signature against the sync password.

use super::content;
use super::signing::{self, Refusal};
use crate::api::{ApiError, blocking};
use crate::app::App;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{post, put};
use axum::{Json, Router};
use crmsync_domain::DomainError;
use crmsync_domain::sync::{Mode, SyncConfig, Transport};
use crmsync_sync::protocol::{
    Hello, HelloReply, Packet, PullRequest, PushReply, ResendRequest, ResendSummary,
};
use crmsync_sync::{Catalog, Mapping, PROTOCOL_VERSION, apply_packet, build_packet};
use serde::de::DeserializeOwned;
use serde_json::json;
use std::net::SocketAddr;
use std::time::Duration;

/// Change-log entries per packet.
pub const PACKET_LIMIT: usize = 5000;
/// The longest a pull may wait for changes.
const MAX_WAIT: Duration = Duration::from_secs(30);
const MAX_PACKET_BYTES: usize = 64 << 20;

pub fn router() -> Router<App> {
    Router::new()
        .route("/sync/v1/{sync_id}/hello", post(hello))
        .route("/sync/v1/{sync_id}/push", post(push))
        .route("/sync/v1/{sync_id}/pull", post(pull))
        .route("/sync/v1/{sync_id}/resend", post(resend))
        .route("/sync/v1/{sync_id}/digests", post(digests))
        .route("/sync/v1/{sync_id}/numbers", post(super::numbering::answer))
        .route("/sync/v1/{sync_id}/records", post(super::matching::records))
        .route("/sync/v1/{sync_id}/pair", post(super::matching::pair))
        .route("/sync/v1/{sync_id}/content/{sha256}", post(content::offer))
        .route(
            "/sync/v1/{sync_id}/content/{sha256}/{index}",
            put(content::put_chunk).get(content::get_chunk),
        )
        .layer(DefaultBodyLimit::max(MAX_PACKET_BYTES))
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

/// Checks that the request is for a passive HTTP sync here and carries its password's
/// signature; records the contact.
pub(crate) async fn authenticate(
    app: &App,
    sync_id: i64,
    endpoint: &str,
    headers: &HeaderMap,
    body: &Bytes,
    peer: SocketAddr,
) -> Result<SyncConfig, ApiError> {
    let core = app.core.clone();
    // The sync and who it last heard from, in one read.
    let (sync, last_peer) =
        blocking(move || Ok((core.sync(sync_id)?, core.sync_state(sync_id)?.peer_instance)))
            .await
            .ok()
            .filter(|(s, _)| s.mode == Mode::Passive && s.transport == Transport::Http)
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::NOT_FOUND,
                    "no_sync",
                    format!("there is no passive HTTP sync {sync_id} here"),
                )
            })?;
    // The instance this sync last heard from with the right password has an allowance of
    // its own, so another instance's wrong password on the same address (a misconfigured
    // second office behind one router) does not pause it; every other caller shares one
    // allowance per address, whatever instance id it claims.
    let caller = headers
        .get(signing::INSTANCE_HEADER)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let known = last_peer.is_some_and(|known| known == caller);
    let throttle_key = match known {
        true => format!("sync:{sync_id}:{caller}"),
        false => format!("sync:{sync_id}"),
    };
    if let Some(wait) = app.login_throttle.wait(&throttle_key, peer.ip()) {
        return Err(ApiError {
            retry_after: Some(wait.as_secs() + 1),
            ..ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_attempts",
                "too many wrong passwords; wait and try again",
            )
        });
    }
    let header = headers.get(signing::HEADER).and_then(|h| h.to_str().ok());
    let verdict = signing::verify(&sync.password.0, header, app.core.now_ms(), endpoint, body);
    let peer_instance = headers
        .get(signing::INSTANCE_HEADER)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string);
    match verdict {
        Ok(()) => {
            app.login_throttle.succeeded(&throttle_key, peer.ip());
            if let Some(ts) = signing::claimed_time(header) {
                app.peer_clocks.observe(sync_id, ts - app.core.now_ms());
            }
            let core = app.core.clone();
            let now = app.core.now_ms();
            blocking(move || {
                core.update_sync_state(sync_id, |s| {
                    s.connected = true;
                    s.reason = None;
                    s.last_run_ms = Some(now);
                    s.last_success_ms = Some(now);
                    s.last_error = None;
                    if peer_instance.is_some() {
                        s.peer_instance = peer_instance;
                    }
                })
            })
            .await?;
            Ok(sync)
        }
        Err(refusal) => {
            app.login_throttle.failed(&throttle_key, peer.ip());
            let (code, message) = match refusal {
                Refusal::Stale => (
                    "stale_request",
                    "the request's time is more than 5 minutes off this server's clock".to_string(),
                ),
                Refusal::Missing | Refusal::WrongPassword => (
                    "wrong_password",
                    "the sync password does not match this passive sync".to_string(),
                ),
            };
            let core = app.core.clone();
            let logged = format!("refused a {endpoint} request from {}: {message}", peer.ip());
            let _ = blocking(move || core.log_sync(&sync, "auth", logged, None)).await;
            Err(ApiError::new(StatusCode::UNAUTHORIZED, code, message))
        }
    }
}

/// A sync message's body, or a clear refusal.
pub(crate) fn parse<T: DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("malformed sync message: {e}")))
}

async fn hello(
    State(app): State<App>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(sync_id): Path<i64>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<HelloReply>, ApiError> {
    let sync = authenticate(&app, sync_id, "hello", &headers, &body, peer).await?;
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
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(sync_id): Path<i64>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<PushReply>, ApiError> {
    let sync = authenticate(&app, sync_id, "push", &headers, &body, peer).await?;
    let packet: Packet = parse(&body)?;
    let applied = blocking(move || receive(&app, &sync, &packet)).await?;
    Ok(Json(PushReply { applied }))
}

/// Applies a packet unless it was applied before; returns the incoming cursor.
pub fn receive(app: &App, sync: &SyncConfig, packet: &Packet) -> Result<i64, DomainError> {
    let state = app.core.sync_state(sync.id)?;
    if packet.upto <= state.received_seq {
        return Ok(state.received_seq);
    }
    let mapping = match sync.mode {
        Mode::Passive => passive_mapping(app, sync)?,
        Mode::Active => super::active::active_mapping(app, sync)?,
    };
    content::ensure_present(app, &mapping, packet)?;
    let report = apply_packet(&app.core, sync, &mapping, packet)?;
    if !packet.items.is_empty() {
        app.metrics
            .received(sync.id, app.core.now_ms(), packet.items.len());
        app.core.log_sync(
            sync,
            "received",
            format!(
                "received {} record(s): {} created, {} changed, {} conflict(s), {} held",
                report.items, report.created, report.changed, report.conflicts, report.held
            ),
            Some(json!({ "records": report.received })),
        )?;
    }
    let state = app.core.update_sync_state(sync.id, |s| {
        s.received_seq = s.received_seq.max(packet.upto);
        s.pending_in = packet.remaining;
    })?;
    Ok(state.received_seq)
}

async fn pull(
    State(app): State<App>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(sync_id): Path<i64>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Packet>, ApiError> {
    let sync = authenticate(&app, sync_id, "pull", &headers, &body, peer).await?;
    let request: PullRequest = parse(&body)?;
    if let Some(resent) = request.resent {
        // Per sync, in memory, like the folder transports' answers: what our initial sync
        // waits for.
        app.folder_control
            .with(sync_id, |c| c.got_resent = Some(resent));
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
            let mapping = passive_mapping(&app2, &sync2)?;
            let mut packet = build_packet(&app2.core, &sync2, &mapping, ack, PACKET_LIMIT)?;
            packet.problems = mapping.problems;
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
                let listed = sync.log.then(|| packet.logged_records());
                app.metrics.sent(sync.id, app.core.now_ms(), count);
                blocking(move || {
                    core.log_sync(&sync2, "sent", format!("sent {count} record(s)"), listed)
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
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(sync_id): Path<i64>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<ResendSummary>, ApiError> {
    let sync = authenticate(&app, sync_id, "resend", &headers, &body, peer).await?;
    let request: ResendRequest = parse(&body)?;
    let summary = blocking(move || super::initial::queue_own(&app, &sync, request)).await?;
    Ok(Json(summary))
}

/// The passive side's digests for a drift check (B-16), over the fields both sides carry.
async fn digests(
    State(app): State<App>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(sync_id): Path<i64>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<crmsync_sync::drift::Digests>, ApiError> {
    let sync = authenticate(&app, sync_id, "digests", &headers, &body, peer).await?;
    let request: crmsync_sync::drift::DigestRequest = parse(&body)?;
    let digests = blocking(move || {
        let mapping = passive_mapping(&app, &sync)?;
        crmsync_sync::drift::answer(&app.core, &sync, &mapping, &request)
    })
    .await?;
    Ok(Json(digests))
}
