//! The sync channel over HTTP (protocol 2; the pure parts are `crmsync_sync::channel`):
//! pairing from the password, then every request and every answer sealed with the key.
//!
//! Keys live in memory only: a restart on either side, or a key older than
//! `RENEW_AFTER`, makes the active side pair again (one round trip more), so nothing at
//! rest gives the key away and a side restored from a backup simply pairs anew. The one
//! exception is a passive side served by several processes on one PostgreSQL database
//! (`StoredKeys`): any of them must answer, so its keys are kept in the database.

use super::active::Failure;
use crate::api::{ApiError, blocking};
use crate::app::App;
use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use crmsync_domain::sync::{Mode, SyncConfig, SyncState, Transport};
use crmsync_sync::channel::{
    self, Expect, Head, Header, Key, Refusal, ReplayWindow, Role, confirmation, confirms, pake_key,
    pake_message, random_bytes,
};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The largest pairing message (`/pake`, `/pake/confirm`), read unauthenticated.
pub const MAX_PAIRING_BYTES: usize = 16 << 10;

/// A key is used this long, then the active side pairs again.
pub const RENEW_AFTER: Duration = Duration::from_secs(24 * 60 * 60);
/// A pairing the active side has not confirmed within this is forgotten.
const PAIRING_TIMEOUT: Duration = Duration::from_secs(60);
/// The most a sealed answer may hold (the largest packet, compressed or not).
pub const MAX_MESSAGE_BYTES: usize = 256 << 20;
/// The most a request may hold: it is read whole before it can be authenticated, so less
/// (a chunk is 8 MiB; a push of 5,000 records far less than this).
pub const MAX_REQUEST_BYTES: usize = 64 << 20;
pub const SEALED_TYPE: &str = "application/vnd.crmsync.sealed";
/// How protocol 1 signed its requests: recognised, to refuse it with the reason.
const PROTOCOL_1_SIGNATURE: &str = "x-crmsync-signature";

/// The active side asks to pair: its SPAKE2 message.
#[derive(Debug, Serialize, Deserialize)]
pub struct PairingOffer {
    pub v: u32,
    /// The active side's instance id (bound into the key).
    pub from: String,
    /// Hex.
    pub pake: String,
}

/// The passive side's SPAKE2 message and its proof that it holds the same key.
#[derive(Debug, Serialize, Deserialize)]
pub struct PairingAnswer {
    pub v: u32,
    pub from: String,
    pub pake: String,
    pub confirm: String,
    /// Names this pairing in the confirmation that follows.
    pub pairing: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct PairingConfirmation {
    pub pairing: String,
    pub confirm: String,
}

/// A key in use, with what has come under it.
struct Session {
    key: Key,
    /// Which password it was paired from: a changed password pairs again.
    password: String,
    made: Instant,
    /// The sequence number of this side's last message under it.
    sent: u64,
    received: ReplayWindow,
}

impl Session {
    fn new(key: Key, password: &str) -> Session {
        Session {
            key,
            password: channel::fingerprint(password.as_bytes()),
            made: Instant::now(),
            sent: 0,
            received: ReplayWindow::default(),
        }
    }
}

struct Pending {
    id: String,
    key: Key,
    peer_instance: String,
    made: Instant,
}

/// The passive side of one sync: its current key and the one before (requests under way
/// when the active side paired again), and a pairing waiting for confirmation.
#[derive(Default)]
struct Answering {
    sessions: Vec<Session>,
    pending: Option<Pending>,
}

/// Every sync's keys in this process.
#[derive(Clone, Default)]
pub struct Channels {
    active: Arc<Mutex<HashMap<i64, Session>>>,
    /// One pairing at a time per sync: the loops that all find no key wait for it.
    pairing: Arc<Mutex<HashMap<i64, Arc<tokio::sync::Mutex<()>>>>>,
    passive: Arc<Mutex<HashMap<i64, Answering>>>,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

// ---- the passive side's keys when several processes answer ----

/// With several processes on one database (PostgreSQL behind a load balancer), a pairing
/// may be confirmed, and each request answered, by another process than the one that
/// paired: the passive side's keys are kept in the sync's stored state, where every one of
/// them finds them. That lets no one more forge a packet than before: the sync's password
/// is stored in the same database, and whoever reads it can pair anyway. Request numbers
/// are taken in the database too (`Database::take_request_seq`), so a request replayed to
/// another process is refused as by the first. On SQLite one process answers: its keys
/// stay in its memory (`Channels::passive`).
#[derive(Default, Serialize, Deserialize)]
struct StoredKeys {
    /// Newest first: the current key and the one before.
    sessions: Vec<StoredSession>,
    pending: Option<StoredPending>,
}

#[derive(Serialize, Deserialize)]
struct StoredSession {
    /// Hex.
    key: String,
    /// Which password it was paired from (`channel::fingerprint`).
    password: String,
}

#[derive(Serialize, Deserialize)]
struct StoredPending {
    id: String,
    key: String,
    peer_instance: String,
    made_ms: i64,
}

/// The stored form names itself: the same state field holds a folder sync's channel.
#[derive(Default, Serialize, Deserialize)]
struct Stored {
    http_passive: StoredKeys,
}

impl StoredKeys {
    fn load(state: Option<&SyncState>) -> StoredKeys {
        state
            .and_then(|s| s.channel.as_deref())
            .and_then(|json| serde_json::from_str::<Stored>(json).ok())
            .map(|stored| stored.http_passive)
            .unwrap_or_default()
    }

    fn into_json(self) -> String {
        serde_json::to_string(&Stored { http_passive: self }).expect("keys serialise")
    }

    /// The stored key named `key_id` that was paired from `password`.
    fn find(&self, key_id: &str, password: &str) -> Option<Key> {
        self.sessions
            .iter()
            .filter(|s| s.password == password)
            .filter_map(|s| Key::from_hex(&s.key))
            .find(|key| key.id() == key_id)
    }
}

/// Whether the passive side's keys live in the database (several processes may answer).
fn keys_stored(app: &App) -> bool {
    app.core.store().is_shared()
}

/// Changes the stored keys of `sync_id` in one transaction; returns what `change` does.
async fn change_stored_keys<T: Send + 'static>(
    app: &App,
    sync_id: i64,
    change: impl FnOnce(&mut StoredKeys) -> T + Send + 'static,
) -> Result<T, ApiError> {
    let core = app.core.clone();
    blocking(move || {
        let mut outcome = None;
        core.update_sync_state(sync_id, |state| {
            let mut keys = StoredKeys::load(Some(state));
            outcome = Some(change(&mut keys));
            state.channel = Some(keys.into_json());
        })?;
        Ok(outcome.expect("the change ran"))
    })
    .await
}

// ---- the active side ----

/// The key to seal the next request of `sync` with, pairing first when there is none or
/// it is due for renewal.
async fn active_key(app: &App, sync: &SyncConfig) -> Result<(Key, u64), Failure> {
    let current = || {
        let mut sessions = lock(&app.channels.active);
        sessions
            .get_mut(&sync.id)
            .filter(|s| {
                s.made.elapsed() < RENEW_AFTER
                    && s.password == channel::fingerprint(sync.password.0.as_bytes())
            })
            .map(|s| {
                (
                    s.key.clone(),
                    channel::next_seq(&mut s.sent, app.core.now_ms()),
                )
            })
    };
    if let Some(current) = current() {
        return Ok(current);
    }
    let turn = lock(&app.channels.pairing)
        .entry(sync.id)
        .or_default()
        .clone();
    let _turn = turn.lock().await;
    // Another loop may have paired meanwhile.
    if let Some(current) = current() {
        return Ok(current);
    }
    let now = app.core.now_ms();
    let key = pair(app, sync).await?;
    let mut sessions = lock(&app.channels.active);
    let session = sessions
        .entry(sync.id)
        .or_insert_with(|| Session::new(key.clone(), &sync.password.0));
    if session.key != key {
        *session = Session::new(key, &sync.password.0);
    }
    Ok((
        session.key.clone(),
        channel::next_seq(&mut session.sent, now),
    ))
}

/// Pairs with the passive side of `sync`: SPAKE2 on the password, each side proving it
/// arrived at the same key.
async fn pair(app: &App, sync: &SyncConfig) -> Result<Key, Failure> {
    let base = sync.remote_url.as_deref().unwrap_or_default();
    let seed = random_bytes();
    let password = &sync.password.0;
    let offer = PairingOffer {
        v: crmsync_sync::PROTOCOL_VERSION,
        from: app.instance_id.to_string(),
        pake: hex::encode(pake_message(password, Role::Active, &seed)),
    };
    let answer: PairingAnswer = clear_call(app, sync, &format!("{base}/pake"), &offer).await?;
    let key = hex::decode(&answer.pake)
        .map_err(|_| Refusal::BadPairing)
        .and_then(|msg| {
            pake_key(
                password,
                Role::Active,
                &seed,
                &msg,
                &offer.from,
                &answer.from,
            )
        })
        .map_err(|e| Failure(format!("the passive side's pairing answer is {e}")))?;
    // Sent whatever the passive side proved: a passive side with another password shows
    // the mismatch in its own status too.
    let confirmed = PairingConfirmation {
        pairing: answer.pairing.clone(),
        confirm: confirmation(&key, Role::Active),
    };
    if !confirms(&key, Role::Passive, &answer.confirm) {
        let _ = clear_call::<_, serde_json::Value>(
            app,
            sync,
            &format!("{base}/pake/confirm"),
            &confirmed,
        )
        .await;
        return Err(Failure(format!(
            "wrong password: the passive side at {base} could not prove it knows this sync's \
             password (the two sides have different passwords, or something else answers \
             there); nothing was sent or applied"
        )));
    }
    let _: serde_json::Value =
        clear_call(app, sync, &format!("{base}/pake/confirm"), &confirmed).await?;
    Ok(key)
}

/// A pairing call: JSON both ways, nothing secret in it.
async fn clear_call<B: Serialize, R: serde::de::DeserializeOwned>(
    app: &App,
    sync: &SyncConfig,
    url: &str,
    body: &B,
) -> Result<R, Failure> {
    let response = send(
        app,
        url,
        reqwest::Method::POST,
        "application/json",
        None,
        Duration::from_secs(30),
        serde_json::to_vec(body).expect("serialises"),
    )
    .await?;
    let status = response.status();
    let bytes = read_capped(response, 1 << 16).await?;
    if !status.is_success() {
        return Err(refused(sync, status, &bytes));
    }
    serde_json::from_slice(&bytes).map_err(|e| {
        Failure(format!(
            "the passive side sent an unreadable pairing answer: {e}"
        ))
    })
}

async fn send(
    app: &App,
    url: &str,
    method: reqwest::Method,
    content_type: &str,
    head: Option<String>,
    timeout: Duration,
    body: Vec<u8>,
) -> Result<reqwest::Response, Failure> {
    let mut request = app
        .http
        .request(method, url)
        .header(header::CONTENT_TYPE.as_str(), content_type);
    if let Some(head) = head {
        request = request.header(channel::HEAD_HEADER, head);
    }
    request
        .timeout(timeout)
        .body(body)
        .send()
        .await
        .map_err(|e| {
            if e.is_timeout() {
                Failure(format!("the passive side at {url} did not answer in time"))
            } else {
                let cause = root_cause(&e);
                Failure(format!(
                    "cannot reach the passive side at {url}: {cause}{}",
                    crate::tls::hint(&cause)
                ))
            }
        })
}

/// An answer's body, refused past `cap` bytes whatever it claims.
async fn read_capped(mut response: reqwest::Response, cap: usize) -> Result<Vec<u8>, Failure> {
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| Failure(format!("the passive side's answer broke off: {e}")))?
    {
        if body.len() + chunk.len() > cap {
            return Err(Failure(format!(
                "the passive side's answer is larger than {cap} bytes; nothing in it was used"
            )));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn root_cause(e: &dyn std::error::Error) -> String {
    let mut cause = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        cause = s.to_string();
        source = s.source();
    }
    cause
}

/// An answer that refuses, in words (unsealed answers come before any key is checked:
/// they can say no, never yes).
fn refused(sync: &SyncConfig, status: reqwest::StatusCode, body: &[u8]) -> Failure {
    let detail: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let code = detail["error"].as_str().unwrap_or_default();
    let text = detail["detail"].as_str().unwrap_or_default();
    Failure(match (status.as_u16(), code) {
        (401, "wrong_password") => {
            format!("wrong password: the passive side refused it ({text})")
        }
        (401, _) => format!("the passive side refused the request: {text}"),
        (429, _) => "the passive side is pausing after wrong passwords; it will retry".to_string(),
        (404, "no_sync" | "") => format!(
            "there is no passive sync at {} (or it runs an older crmsync without sync \
             protocol 2); check remote_url",
            sync.remote_url.as_deref().unwrap_or_default()
        ),
        (409, "protocol_version") => format!("protocol version mismatch: {text}"),
        _ => format!("the passive side answered {status}: {text}"),
    })
}

/// A sealed request to the passive side: `endpoint` is the part of the address after the
/// sync's own. Returns the answer's body once it is proven to be the passive side's answer
/// to this very request.
pub(crate) async fn request(
    app: &App,
    sync: &SyncConfig,
    method: reqwest::Method,
    endpoint: &str,
    body: Vec<u8>,
    timeout: Duration,
) -> Result<Vec<u8>, Failure> {
    let url = format!(
        "{}/{endpoint}",
        sync.remote_url.as_deref().unwrap_or_default()
    );
    let mut paired_again = false;
    loop {
        let (key, seq) = active_key(app, sync).await?;
        let header = Header {
            v: crmsync_sync::PROTOCOL_VERSION,
            key: String::new(),
            role: Role::Active,
            kind: endpoint.to_string(),
            seq,
            ts: app.core.now_ms(),
            reply: None,
            raw: false,
        };
        let sealed = channel::seal(&key, &header, &body);
        // Its headers are proven on their own: the passive side reads no body it cannot
        // tell comes from this side.
        let head = Head {
            key: key.id().to_string(),
            seq,
            ts: header.ts,
            len: sealed.len() as u64,
        }
        .encode(&key, endpoint);
        let response = send(
            app,
            &url,
            method.clone(),
            SEALED_TYPE,
            Some(head),
            timeout,
            sealed,
        )
        .await?;
        let status = response.status();
        let answer = read_capped(response, MAX_MESSAGE_BYTES).await?;
        if answer.starts_with(channel::MAGIC) {
            // Decrypted outside the lock; checked and remembered under it.
            let opened =
                channel::open_owned(&key, answer, MAX_MESSAGE_BYTES).and_then(|(header, plain)| {
                    let mut sessions = lock(&app.channels.active);
                    let Some(session) = sessions.get_mut(&sync.id).filter(|s| s.key == key) else {
                        // Renewed meanwhile: this answer's number cannot be remembered.
                        return Err(Refusal::UnknownKey(header.key));
                    };
                    let expect = Expect {
                        from: &[Role::Passive],
                        kind: Some(endpoint),
                        reply_to: Some(seq),
                        now_ms: Some(app.core.now_ms()),
                    };
                    channel::check(&header, &expect, &mut session.received)?;
                    Ok((header, plain))
                });
            let (_, plain) = opened.map_err(|refusal| {
                Failure(format!(
                    "an answer from the passive side was refused: it {refusal}; nothing in it \
                     was used"
                ))
            })?;
            if status.is_success() {
                return Ok(plain);
            }
            return Err(refused(sync, status, &plain));
        }
        let code = serde_json::from_slice::<serde_json::Value>(&answer)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_string));
        if status == reqwest::StatusCode::UNAUTHORIZED
            && code.as_deref() == Some("unknown_key")
            && !paired_again
        {
            // The passive side restarted (or renewed): pair again, once.
            lock(&app.channels.active).remove(&sync.id);
            paired_again = true;
            continue;
        }
        if status.is_success() {
            return Err(Failure(
                "the passive side's answer is not sealed (something in the path answered \
                 instead of it); nothing in it was used"
                    .to_string(),
            ));
        }
        return Err(refused(sync, status, &answer));
    }
}

// ---- the passive side ----

/// The sync an authenticated request is for; handlers take it from the request.
#[derive(Clone)]
pub struct Authenticated(pub SyncConfig);

/// A passive HTTP sync's settings and its state (none if it cannot be read).
fn passive_sync(app: &App, sync_id: i64) -> Result<(SyncConfig, Option<SyncState>), ApiError> {
    let found = app
        .core
        .sync(sync_id)
        .ok()
        .filter(|s| s.mode == Mode::Passive && s.transport.kind() == Transport::Http);
    let Some(sync) = found else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "no_sync",
            format!("there is no passive HTTP sync {sync_id} here"),
        ));
    };
    Ok((sync, app.core.sync_state(sync_id).ok()))
}

/// The peer of a sync's last pairing.
fn last_peer(state: Option<SyncState>) -> Option<String> {
    state.and_then(|s| s.peer_instance)
}

/// The instance this sync last paired with has an allowance of its own, so another
/// instance's wrong password on the same address (a misconfigured second office behind
/// one router) does not pause it; every other caller shares one allowance per address.
fn throttle_key(sync_id: i64, caller: &str, last_peer: Option<&str>) -> String {
    match last_peer == Some(caller) {
        true => format!("sync:{sync_id}:{caller}"),
        false => format!("sync:{sync_id}"),
    }
}

fn throttled(app: &App, key: &str, peer: SocketAddr) -> Result<(), ApiError> {
    match app.login_throttle.wait(key, peer.ip()) {
        Some(wait) => Err(ApiError {
            retry_after: Some(wait.as_secs() + 1),
            ..ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_attempts",
                "too many wrong passwords; wait and try again",
            )
        }),
        None => Ok(()),
    }
}

/// `POST /sync/v1/{id}/pake`: the active side's SPAKE2 message; answers with this side's
/// and its confirmation. Every attempt counts against the throttle until it is confirmed:
/// each is one online guess at the password.
pub async fn pake(
    State(app): State<App>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(sync_id): Path<i64>,
    body: Bytes,
) -> Result<Json<PairingAnswer>, ApiError> {
    let app2 = app.clone();
    let (sync, state) = blocking(move || Ok(passive_sync(&app2, sync_id))).await??;
    let last_peer = last_peer(state);
    let offer: PairingOffer = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("malformed pairing message: {e}")))?;
    if offer.v != crmsync_sync::PROTOCOL_VERSION {
        return Err(old_protocol(offer.v));
    }
    let throttle = throttle_key(sync_id, &offer.from, last_peer.as_deref());
    throttled(&app, &throttle, peer)?;
    app.login_throttle.failed(&throttle, peer.ip());
    let seed = random_bytes();
    let password = &sync.password.0;
    let own = app.instance_id.to_string();
    let key = hex::decode(&offer.pake)
        .map_err(|_| Refusal::BadPairing)
        .and_then(|msg| pake_key(password, Role::Passive, &seed, &msg, &offer.from, &own))
        .map_err(|e| ApiError::bad_request(format!("the pairing offer {e}")))?;
    let pairing = hex::encode(random_bytes::<16>());
    let answer = PairingAnswer {
        v: crmsync_sync::PROTOCOL_VERSION,
        from: own,
        pake: hex::encode(pake_message(password, Role::Passive, &seed)),
        confirm: confirmation(&key, Role::Passive),
        pairing: pairing.clone(),
    };
    // One pairing waits per sync: nothing an unauthenticated caller sends piles up.
    if keys_stored(&app) {
        let pending = StoredPending {
            id: pairing,
            key: key.to_hex(),
            peer_instance: offer.from,
            made_ms: app.core.now_ms(),
        };
        change_stored_keys(&app, sync_id, move |keys| keys.pending = Some(pending)).await?;
    } else {
        lock(&app.channels.passive)
            .entry(sync_id)
            .or_default()
            .pending = Some(Pending {
            id: pairing,
            key,
            peer_instance: offer.from,
            made: Instant::now(),
        });
    }
    Ok(Json(answer))
}

/// `POST /sync/v1/{id}/pake/confirm`: the active side proves it holds the key; from now
/// on its requests sealed with it are taken.
pub async fn confirm(
    State(app): State<App>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(sync_id): Path<i64>,
    body: Bytes,
) -> Result<Json<serde_json::Value>, ApiError> {
    let app2 = app.clone();
    let (sync, state) = blocking(move || Ok(passive_sync(&app2, sync_id))).await??;
    let last_peer = last_peer(state);
    let confirmation: PairingConfirmation = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("malformed pairing message: {e}")))?;
    let pending = if keys_stored(&app) {
        let (id, now) = (confirmation.pairing.clone(), app.core.now_ms());
        let timeout = PAIRING_TIMEOUT.as_millis() as i64;
        change_stored_keys(&app, sync_id, move |keys| match keys.pending.take() {
            Some(p) if p.id == id && (0..timeout).contains(&(now - p.made_ms)) => {
                Key::from_hex(&p.key).map(|key| Pending {
                    id: p.id,
                    key,
                    peer_instance: p.peer_instance,
                    made: Instant::now(),
                })
            }
            other => {
                keys.pending = other;
                None
            }
        })
        .await?
    } else {
        let mut syncs = lock(&app.channels.passive);
        let answering = syncs.entry(sync_id).or_default();
        match answering.pending.take() {
            Some(p) if p.id == confirmation.pairing && p.made.elapsed() < PAIRING_TIMEOUT => {
                Some(p)
            }
            other => {
                answering.pending = other;
                None
            }
        }
    };
    let Some(pending) = pending else {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unknown_pairing",
            "no such pairing is waiting here (it timed out, or this side restarted)",
        ));
    };
    let throttle = throttle_key(sync_id, &pending.peer_instance, last_peer.as_deref());
    if !confirms(&pending.key, Role::Active, &confirmation.confirm) {
        let reason = format!(
            "wrong password: a pairing attempt from {} (instance {}) used another password; \
             nothing from it was taken",
            peer.ip(),
            pending.peer_instance
        );
        let app2 = app.clone();
        let logged = reason.clone();
        blocking(move || {
            app2.core.update_sync_state(sync_id, |s| {
                s.connected = false;
                s.reason = Some(logged.clone());
                s.last_error = Some(logged.clone());
            })?;
            app2.core.log_sync(&sync, "auth", logged, None)
        })
        .await?;
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "wrong_password",
            reason,
        ));
    }
    app.login_throttle.succeeded(&throttle, peer.ip());
    if keys_stored(&app) {
        let stored = StoredSession {
            key: pending.key.to_hex(),
            password: channel::fingerprint(sync.password.0.as_bytes()),
        };
        change_stored_keys(&app, sync_id, move |keys| {
            keys.sessions.insert(0, stored);
            keys.sessions.truncate(2);
        })
        .await?;
    } else {
        let mut syncs = lock(&app.channels.passive);
        let answering = syncs.entry(sync_id).or_default();
        answering
            .sessions
            .insert(0, Session::new(pending.key, &sync.password.0));
        answering.sessions.truncate(2);
    }
    let app2 = app.clone();
    let peer_instance = pending.peer_instance;
    blocking(move || {
        app2.core
            .update_sync_state(sync_id, |s| s.peer_instance = Some(peer_instance))?;
        let message = "the active side proved the sync password: a fresh key is agreed";
        app2.core.log_sync(&sync, "auth", message, None)
    })
    .await?;
    Ok(Json(serde_json::json!({ "paired": true })))
}

fn old_protocol(theirs: u32) -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "protocol_version",
        format!(
            "this side speaks sync protocol {}, the active side {theirs}: update crmsync on \
             the older side",
            crmsync_sync::PROTOCOL_VERSION
        ),
    )
}

/// Opens every request to a passive sync endpoint and seals its answer. Nothing reaches a
/// handler unless it was sealed with a key paired from this sync's password, is addressed
/// to this endpoint, is fresh and was not seen before.
pub async fn sealed(
    State(app): State<App>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(params): Path<HashMap<String, String>>,
    request: Request,
    next: Next,
) -> Response {
    match open_request(&app, peer, &params, request).await {
        Ok((request, sync_id, key, seq, kind)) => {
            let response = next.run(request).await;
            seal_response(&app, sync_id, &key, seq, &kind, response).await
        }
        Err(error) => error.into_response(),
    }
}

async fn open_request(
    app: &App,
    peer: SocketAddr,
    params: &HashMap<String, String>,
    request: Request,
) -> Result<(Request, i64, Key, u64, String), ApiError> {
    let sync_id: i64 = params
        .get("sync_id")
        .and_then(|id| id.parse().ok())
        .ok_or_else(|| ApiError::bad_request("no sync id in the address"))?;
    let prefix = format!("/sync/v1/{sync_id}/");
    // The query is part of what is sealed (a chunk's `size`).
    let kind = request
        .uri()
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or_default()
        .strip_prefix(&prefix)
        .unwrap_or_default()
        .to_string();
    let app2 = app.clone();
    let (sync, state) = blocking(move || Ok(passive_sync(&app2, sync_id))).await??;
    // A forged or replayed request cannot guess anything; its allowance only keeps a
    // flood of them out of the log.
    let throttle = format!("sync:{sync_id}:sealed");
    throttled(app, &throttle, peer)?;
    let password = channel::fingerprint(sync.password.0.as_bytes());
    let (parts, body) = request.into_parts();
    let claimed = parts
        .headers
        .get(channel::HEAD_HEADER)
        .and_then(|h| h.to_str().ok())
        .and_then(Head::parse);
    let Some((head, mac)) = claimed else {
        if parts.headers.contains_key(PROTOCOL_1_SIGNATURE) {
            return Err(old_protocol(1));
        }
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "not_authentic",
            format!("the request has no {} header", channel::HEAD_HEADER),
        ));
    };
    // Everything about the request is checked before its body is read: an unauthenticated
    // caller costs no memory.
    let stale = |head: &Head| (app.core.now_ms() - head.ts).abs() > channel::MAX_SKEW_MS;
    let checked: Result<Key, Option<Refusal>> = if keys_stored(app) {
        match StoredKeys::load(state.as_ref()).find(&head.key, &password) {
            None => Err(None),
            Some(key) if !head.verify(&key, &kind, &mac) => Err(Some(Refusal::NotAuthentic)),
            Some(_) if stale(&head) => Err(Some(Refusal::Stale)),
            Some(key) => {
                // Its head is proven: its number is taken now, by whichever process
                // gets it first, before its body is read.
                let (core, key_id, seq) = (app.core.clone(), head.key.clone(), head.seq);
                let now = app.core.now_ms();
                let taken =
                    blocking(move || core.store().take_request_seq(sync_id, &key_id, seq, now))
                        .await?;
                taken.then_some(key).ok_or(Some(Refusal::Replay))
            }
        }
    } else {
        let syncs = lock(&app.channels.passive);
        let session = syncs.get(&sync_id).and_then(|a| {
            a.sessions
                .iter()
                .find(|s| s.key.id() == head.key && s.password == password)
        });
        match session {
            None => Err(None),
            Some(s) if !head.verify(&s.key, &kind, &mac) => Err(Some(Refusal::NotAuthentic)),
            Some(_) if stale(&head) => Err(Some(Refusal::Stale)),
            Some(s) if !s.received.is_new(head.seq) => Err(Some(Refusal::Replay)),
            Some(s) => Ok(s.key.clone()),
        }
    };
    let key = match checked {
        Ok(key) => key,
        Err(None) => {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unknown_key",
                Refusal::UnknownKey(head.key.clone()).to_string(),
            ));
        }
        Err(Some(refusal)) => {
            app.login_throttle.failed(&throttle, peer.ip());
            let logged = format!("refused a {kind} request from {}: it {refusal}", peer.ip());
            let core = app.core.clone();
            let _ = blocking(move || core.log_sync(&sync, "auth", logged, None)).await;
            return Err(unauthentic(refusal));
        }
    };
    if head.len > MAX_REQUEST_BYTES as u64 {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("a request may hold at most {MAX_REQUEST_BYTES} bytes"),
        ));
    }
    let bytes = axum::body::to_bytes(body, head.len as usize)
        .await
        .ok()
        .filter(|b| b.len() as u64 == head.len)
        .ok_or_else(|| {
            ApiError::bad_request("the request's body is not as long as its head says")
        })?;
    // Decrypted outside the lock (a chunk is 8 MiB), in the request's own buffer; checked
    // and remembered under it.
    let opened = channel::open_owned(&key, Vec::from(bytes), MAX_REQUEST_BYTES * 4).and_then(
        |(header, plain)| {
            if header.seq != head.seq || header.key != head.key {
                return Err(Refusal::NotAuthentic);
            }
            let expect = Expect {
                from: &[Role::Active],
                kind: Some(&kind),
                reply_to: None,
                now_ms: Some(app.core.now_ms()),
            };
            if keys_stored(app) {
                // Its number was taken in the database with its head.
                channel::check(&header, &expect, &mut ReplayWindow::default())?;
                return Ok((header, plain));
            }
            let mut syncs = lock(&app.channels.passive);
            let session = syncs
                .get_mut(&sync_id)
                .and_then(|a| a.sessions.iter_mut().find(|s| s.key == key))
                .ok_or_else(|| Refusal::UnknownKey(header.key.clone()))?;
            channel::check(&header, &expect, &mut session.received)?;
            Ok((header, plain))
        },
    );
    let (header, plain) = match opened {
        Ok(opened) => opened,
        Err(refusal) => {
            app.login_throttle.failed(&throttle, peer.ip());
            let logged = format!("refused a {kind} request from {}: it {refusal}", peer.ip());
            let core = app.core.clone();
            let _ = blocking(move || core.log_sync(&sync, "auth", logged, None)).await;
            return Err(unauthentic(refusal));
        }
    };
    app.peer_clocks
        .observe(sync_id, header.ts - app.core.now_ms());
    let now = app.core.now_ms();
    // Marked green and seen; while it is, at most once a second (a busy sync does not
    // rewrite its state, on the way of every request, for a newer millisecond).
    let seen_lately = state.is_some_and(|s| {
        s.connected
            && s.reason.is_none()
            && s.last_error.is_none()
            && s.last_success_ms
                .is_some_and(|at| (0..SEEN_EVERY_MS).contains(&(now - at)))
    });
    if !seen_lately {
        let core = app.core.clone();
        blocking(move || {
            core.update_sync_state(sync_id, |s| {
                s.connected = true;
                s.reason = None;
                s.last_run_ms = Some(now);
                s.last_success_ms = Some(now);
                s.last_error = None;
            })
        })
        .await?;
    }
    let mut request = Request::from_parts(parts, Body::from(plain));
    request.extensions_mut().insert(Authenticated(sync));
    Ok((request, sync_id, key, header.seq, kind))
}

/// How often a passive sync in good health records that its active side was heard.
const SEEN_EVERY_MS: i64 = 1000;

fn unauthentic(refusal: Refusal) -> ApiError {
    let code = match refusal {
        Refusal::Stale => "stale_request",
        Refusal::Replay => "replay",
        Refusal::OldProtocol => "protocol_version",
        _ => "not_authentic",
    };
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        code,
        format!("the request {refusal}"),
    )
}

async fn seal_response(
    app: &App,
    sync_id: i64,
    key: &Key,
    reply: u64,
    kind: &str,
    response: Response,
) -> Response {
    let (mut parts, body) = response.into_parts();
    let Ok(plain) = axum::body::to_bytes(body, MAX_MESSAGE_BYTES).await else {
        return ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "too_large",
            "the answer is too large",
        )
        .into_response();
    };
    let now = app.core.now_ms();
    let seq = if keys_stored(app) {
        // The request's own number: taken once in the database, so no answer of any
        // process under this key has it, and no counter need be shared.
        reply
    } else {
        let mut syncs = lock(&app.channels.passive);
        let session = syncs
            .get_mut(&sync_id)
            .and_then(|a| a.sessions.iter_mut().find(|s| s.key == *key));
        match session {
            Some(session) => channel::next_seq(&mut session.sent, now),
            // Renewed meanwhile: the clock alone still gives a growing number.
            None => channel::next_seq(&mut 0, now),
        }
    };
    let header = Header {
        v: crmsync_sync::PROTOCOL_VERSION,
        key: String::new(),
        role: Role::Passive,
        kind: kind.to_string(),
        seq,
        ts: app.core.now_ms(),
        reply: Some(reply),
        raw: false,
    };
    let sealed = channel::seal(key, &header, &plain);
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(SEALED_TYPE),
    );
    Response::from_parts(parts, Body::from(sealed))
}
