//! The active side of the HTTP transport. Two loops per sync: one pushes this side's
//! changes as soon as they commit (and every period), one holds a long-poll open to the
//! passive side so its changes arrive as soon as they commit there.

use super::content;
use super::passive::{PACKET_LIMIT, receive};
use crate::app::App;
use crmsync_domain::DomainError;
use crmsync_domain::sync::{SyncConfig, UserMatch};
use crmsync_sync::content::files_in;
use crmsync_sync::mapping::UidPairs;
use crmsync_sync::mapping::catalog;
use crmsync_sync::protocol::{Hello, HelloReply, Packet, PullRequest, PushReply, ResendSummary};
use crmsync_sync::{Mapping, PROTOCOL_VERSION, build_packet};
use reqwest::Method;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::time::Duration;

/// How long the passive side may hold a pull while it has nothing new.
const LONG_POLL: Duration = Duration::from_secs(20);

pub fn active_mapping(app: &App, sync: &SyncConfig) -> Result<Mapping, DomainError> {
    let fields = app.core.sync_fields(sync.id)?;
    let tables = app.core.tables()?;
    let mut mapping = Mapping::build(sync, &fields, &tables, None);
    mapping.uids = UidPairs::new(&app.core.uid_pairs(sync.id)?);
    Ok(mapping)
}

pub async fn run(app: App, sync_id: i64) {
    tokio::join!(push_loop(app.clone(), sync_id), pull_loop(app, sync_id));
}

/// Why an exchange failed, in words for the status page.
pub(crate) struct Failure(pub String);

impl From<DomainError> for Failure {
    fn from(e: DomainError) -> Self {
        Failure(e.to_string())
    }
}

pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, DomainError> + Send + 'static,
) -> Result<T, Failure> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Failure(e.to_string()))?
        .map_err(Failure::from)
}

/// The sync's settings, and whether it has fields to exchange yet (without any, the
/// passive side is still greeted: the green check comes with the right password).
async fn load(app: &App, sync_id: i64) -> Result<(SyncConfig, bool), Failure> {
    let app = app.clone();
    blocking(move || settings(&app, sync_id)).await
}

fn settings(app: &App, sync_id: i64) -> Result<(SyncConfig, bool), DomainError> {
    Ok((
        app.core.sync(sync_id)?,
        !app.core.sync_fields(sync_id)?.is_empty(),
    ))
}

/// A signed request to the passive side of `sync`.
pub(crate) async fn call_peer<B: Serialize, R: DeserializeOwned>(
    app: &App,
    sync: &SyncConfig,
    endpoint: &'static str,
    body: &B,
) -> Result<R, Failure> {
    call(app, sync, endpoint, body, Duration::from_secs(600)).await
}

async fn call<B: Serialize, R: DeserializeOwned>(
    app: &App,
    sync: &SyncConfig,
    endpoint: &'static str,
    body: &B,
    timeout: Duration,
) -> Result<R, Failure> {
    let body = serde_json::to_vec(body).map_err(|e| Failure(e.to_string()))?;
    request_json(app, sync, Method::POST, endpoint, body, timeout).await
}

/// A sealed request whose answer is JSON.
pub(crate) async fn request_json<R: DeserializeOwned>(
    app: &App,
    sync: &SyncConfig,
    method: Method,
    endpoint: &str,
    body: Vec<u8>,
    timeout: Duration,
) -> Result<R, Failure> {
    let answer = super::channel::request(app, sync, method, endpoint, body, timeout).await?;
    serde_json::from_slice(&answer)
        .map_err(|e| Failure(format!("the passive side sent an unreadable answer: {e}")))
}

fn parse_user_match(text: &str) -> Option<UserMatch> {
    serde_json::from_value(serde_json::Value::from(text)).ok()
}

pub(crate) async fn hello(app: &App, sync: &SyncConfig) -> Result<(), Failure> {
    let core = app.core.clone();
    let tables = blocking(move || core.tables()).await?;
    let hello = Hello {
        version: PROTOCOL_VERSION,
        instance_id: app.instance_id.to_string(),
        catalog: catalog(&tables),
        user_match: Some(sync.user_match),
    };
    let asked = app.core.now_ms();
    let reply: HelloReply = call(app, sync, "hello", &hello, Duration::from_secs(30)).await?;
    if let Some(theirs) = reply.now_ms {
        // Against the middle of the round trip.
        let ours = (asked + app.core.now_ms()) / 2;
        app.peer_clocks.observe(sync.id, theirs - ours);
    }
    let core = app.core.clone();
    let id = sync.id;
    blocking(move || {
        core.update_sync_state(id, |s| {
            s.connected = true;
            s.reason = None;
            // The green check shows no stale error beside it, from the first answer on.
            s.last_error = None;
            s.peer_instance = Some(reply.instance_id.clone());
            s.peer_user_match = reply.user_match.map(|m| m.as_str().to_string());
        })
    })
    .await?;
    // The pull loop hears of changes to these later, with every pull.
    report_problems(app, sync, &reply.problems).await
}

/// Shows the passive side's mapping problems in our status (and log), or clears them.
async fn report_problems(app: &App, sync: &SyncConfig, problems: &[String]) -> Result<(), Failure> {
    let core = app.core.clone();
    let sync = sync.clone();
    let text = problems.join("; ");
    blocking(move || {
        core.update_sync_state(sync.id, |s| {
            let ours = s
                .reason
                .as_deref()
                .is_none_or(|r| r.starts_with(PROBLEMS_PREFIX));
            if ours {
                s.reason = (!text.is_empty()).then(|| format!("{PROBLEMS_PREFIX}{text}"));
            }
        })?;
        if !text.is_empty() {
            core.log_sync(&sync, "error", format!("{PROBLEMS_PREFIX}{text}"), None)?;
        }
        Ok(())
    })
    .await
}

const PROBLEMS_PREFIX: &str = "the passive side reports: ";

async fn succeeded(app: &App, sync_id: i64) {
    let core = app.core.clone();
    let now = core.now_ms();
    let _ = blocking(move || {
        core.update_sync_state(sync_id, |s| {
            s.connected = true;
            s.last_run_ms = Some(now);
            s.last_success_ms = Some(now);
            // A recovered sync shows no stale error.
            s.last_error = None;
            if s.reason
                .as_deref()
                .is_some_and(|r| !r.starts_with("the passive side reports"))
            {
                s.reason = None;
            }
        })
    })
    .await;
}

/// Records a failure; logs it once, not on every retry.
async fn failed(app: &App, sync_id: i64, failure: Failure) {
    let core = app.core.clone();
    let now = core.now_ms();
    let _ = blocking(move || {
        let previous = core.sync_state(sync_id)?.reason;
        core.update_sync_state(sync_id, |s| {
            s.connected = false;
            s.reason = Some(failure.0.clone());
            s.last_error = Some(failure.0.clone());
            s.last_run_ms = Some(now);
        })?;
        if previous.as_deref() != Some(failure.0.as_str()) {
            let sync = core.sync(sync_id)?;
            let kind = if failure.0.starts_with("wrong password") {
                "auth"
            } else {
                "error"
            };
            core.log_sync(&sync, kind, failure.0, None)?;
        }
        Ok(())
    })
    .await;
}

fn period(sync: Option<&SyncConfig>) -> Duration {
    Duration::from_secs(u64::from(sync.map_or(5, |s| s.period_seconds)))
}

/// The sync's settings, introduced to the passive side once per connection, and whether
/// it has fields to exchange.
async fn ready(
    app: &App,
    sync_id: i64,
    introduced: &mut bool,
    seen: &mut Option<SyncConfig>,
) -> Result<(SyncConfig, bool), Failure> {
    let (loaded, has_fields) = load(app, sync_id).await?;
    *seen = Some(loaded.clone());
    if !*introduced {
        hello(app, &loaded).await?;
        *introduced = true;
    }
    Ok((loaded, has_fields))
}

async fn push_loop(app: App, sync_id: i64) {
    let mut commits = app.syncs.commits();
    let mut introduced = false;
    loop {
        let mut sync = None;
        let result = async {
            // The settings and the first packet: one trip to the store for a change.
            let app2 = app.clone();
            let (loaded, first) = blocking(move || {
                let (loaded, has_fields) = settings(&app2, sync_id)?;
                // Without fields the pull loop's hellos keep the status.
                let first = match has_fields {
                    true => Some(next_packet(&app2, &loaded, None)?),
                    false => None,
                };
                Ok((loaded, first))
            })
            .await?;
            sync = Some(loaded.clone());
            if !introduced {
                hello(&app, &loaded).await?;
                introduced = true;
            }
            match first {
                Some(first) => push_all(&app, &loaded, Some(first)).await,
                None => Ok(()),
            }
        }
        .await;
        match result {
            Ok(()) => {}
            Err(failure) => {
                introduced = false;
                failed(&app, sync_id, failure).await;
            }
        }
        tokio::select! {
            _ = commits.changed() => {}
            _ = tokio::time::sleep(period(sync.as_ref())) => {}
        }
    }
}

/// The packet of this side's changes after `after` (the outgoing cursor when None), and the
/// files it names.
fn next_packet(
    app: &App,
    sync: &SyncConfig,
    after: Option<i64>,
) -> Result<(Packet, Vec<crmsync_domain::FileRef>), DomainError> {
    let after = match after {
        Some(after) => after,
        None => app.core.sync_state(sync.id)?.sent_seq,
    };
    let mapping = super::initial::mapping_for(app, sync)?;
    let packet = build_packet(&app.core, sync, &mapping, after, PACKET_LIMIT)?;
    let files = files_in(&mapping, &packet, false);
    Ok((packet, files))
}

/// Packets pushed and not answered yet: while the passive side applies one, the next is
/// on its way and read.
const PUSHES_ON_THE_WAY: usize = 2;

/// Sends every pending change, packet by packet; the cursor moves only after the passive
/// side confirms, in the order of the log.
async fn push_all(
    app: &App,
    sync: &SyncConfig,
    first: Option<(Packet, Vec<crmsync_domain::FileRef>)>,
) -> Result<(), Failure> {
    let build = |after: Option<i64>| {
        let (app, sync) = (app.clone(), sync.clone());
        tokio::task::spawn_blocking(move || next_packet(&app, &sync, after))
    };
    // Built ahead while the peer applies what was sent.
    let mut next = match first {
        Some(_) => None,
        None => Some(build(None)),
    };
    let mut built = first;
    let mut on_the_way: std::collections::VecDeque<Push> = Default::default();
    // The end of the last packet pushed: the next one follows it.
    let mut last_pushed: Option<i64> = None;
    loop {
        while on_the_way.len() < PUSHES_ON_THE_WAY {
            let (packet, files) = match built.take() {
                Some(packet) => packet,
                None => match next.take() {
                    Some(building) => building
                        .await
                        .map_err(|e| Failure(e.to_string()))?
                        .map_err(Failure::from)?,
                    None => break,
                },
            };
            if packet.upto == packet.after {
                break;
            }
            next = Some(build(Some(packet.upto)));
            let follows = match on_the_way.is_empty() {
                true => None,
                false => last_pushed,
            };
            if !packet.items.is_empty() {
                last_pushed = Some(packet.upto);
            }
            on_the_way.push_back(Push::start(app, sync, packet, files, follows));
        }
        let Some(mut push) = on_the_way.pop_front() else {
            succeeded(app, sync.id).await;
            return Ok(());
        };
        let reply = push.answer().await?;
        let (upto, count, listed) = (push.upto, push.count, std::mem::take(&mut push.listed));
        let core = app.core.clone();
        let sync2 = sync.clone();
        app.metrics.sent(sync.id, app.core.now_ms(), count);
        // The cursor and the packet's log entry: one commit.
        blocking(move || {
            let moved = |s: &mut crmsync_domain::sync::SyncState| {
                s.sent_seq = s.sent_seq.max(reply.applied.min(upto))
            };
            let message = format!("sent {count} record(s)");
            match count {
                0 => core.update_sync_state(sync2.id, moved),
                _ => core.update_sync_state_logging(&sync2, "sent", message, listed, moved),
            }
        })
        .await?;
    }
}

/// One packet on its way to the passive side (a task of its own, so the next can follow
/// before it is answered); stopped if it is dropped unanswered.
struct Push {
    task: Option<tokio::task::JoinHandle<Result<PushReply, Failure>>>,
    upto: i64,
    count: usize,
    listed: crmsync_domain::logged_records::LoggedRecords,
}

impl Push {
    fn start(
        app: &App,
        sync: &SyncConfig,
        mut packet: Packet,
        files: Vec<crmsync_domain::FileRef>,
        follows: Option<i64>,
    ) -> Push {
        let listed = match sync.log && !packet.items.is_empty() {
            true => packet.logged_records(),
            false => Default::default(),
        };
        let (upto, count) = (packet.upto, packet.items.len());
        let (app, sync) = (app.clone(), sync.clone());
        let task = tokio::spawn(async move {
            if packet.items.is_empty() {
                // Nothing for this sync in that stretch of the log: just move past it.
                return Ok(PushReply {
                    applied: packet.upto,
                });
            }
            // The files it names go first: the passive side applies it only with them.
            content::upload(&app, &sync, files).await?;
            packet.follows = follows;
            // Only its bytes are kept while it is on its way.
            let body = serde_json::to_vec(&packet).map_err(|e| Failure(e.to_string()))?;
            drop(packet);
            let timeout = Duration::from_secs(120);
            request_json(&app, &sync, Method::POST, "push", body, timeout).await
        });
        Push {
            task: Some(task),
            upto,
            count,
            listed,
        }
    }

    async fn answer(&mut self) -> Result<PushReply, Failure> {
        match self.task.take() {
            Some(task) => task.await.map_err(|e| Failure(e.to_string()))?,
            None => Err(Failure("the push was answered already".into())),
        }
    }
}

impl Drop for Push {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

async fn pull_loop(app: App, sync_id: i64) {
    let mut introduced = false;
    let mut known_problems: Vec<String> = Vec::new();
    // What we queued for the passive side's initial sync, told with the next pull.
    let mut resent: Option<ResendSummary> = None;
    loop {
        let mut sync = None;
        let result = async {
            let (loaded, has_fields) = ready(&app, sync_id, &mut introduced, &mut sync).await?;
            if !has_fields {
                // Nothing to pull yet: greeted again each period, so the passive side keeps
                // seeing its active side and a changed password shows.
                succeeded(&app, sync_id).await;
                introduced = false;
                // Often enough that the passive side never thinks it silent.
                tokio::time::sleep(period(Some(&loaded)).min(LONG_POLL)).await;
                // Anything queued before is still to be told.
                return Ok(resent);
            }
            let core = app.core.clone();
            let state = blocking(move || core.sync_state(sync_id)).await?;
            let request = PullRequest {
                ack: state.received_seq,
                wait_ms: LONG_POLL.as_millis() as u64,
                problems: known_problems.clone(),
                user_match: state.peer_user_match.as_deref().and_then(parse_user_match),
                resent,
            };
            let packet: Packet = call(
                &app,
                &loaded,
                "pull",
                &request,
                LONG_POLL + Duration::from_secs(15),
            )
            .await?;
            let app2 = app.clone();
            let resend = packet.resend;
            if packet.user_match.is_some() && packet.user_match != request.user_match {
                let (core, theirs) = (app.core.clone(), packet.user_match);
                blocking(move || {
                    core.update_sync_state(sync_id, |s| {
                        s.peer_user_match = theirs.map(|m| m.as_str().to_string())
                    })
                })
                .await?;
            }
            let mut queued = None;
            if packet.problems != known_problems {
                known_problems = packet.problems.clone();
                report_problems(&app, &loaded, &known_problems).await?;
            }
            fetch_files(&app, &loaded, &packet).await?;
            if let Some(request) = resend {
                // The passive side's initial sync wants our rows as well: queued before its
                // rows in this packet are applied, or they would be queued again.
                let (app2, loaded2) = (app.clone(), loaded.clone());
                queued = Some(
                    blocking(move || super::initial::queue_own(&app2, &loaded2, request)).await?,
                );
            }
            let applying = app.initial_turns.applying(sync_id).await;
            blocking(move || receive(&app2, &loaded, &packet)).await?;
            drop(applying);
            succeeded(&app, sync_id).await;
            Ok::<Option<ResendSummary>, Failure>(queued)
        }
        .await;
        match result {
            // The passive side has heard what was queued before; tell it what is new.
            Ok(queued) => resent = queued,
            Err(failure) => {
                introduced = false;
                failed(&app, sync_id, failure).await;
                tokio::time::sleep(period(sync.as_ref())).await;
            }
        }
    }
}

/// Fetches the files a pulled packet names that are not stored here yet.
async fn fetch_files(app: &App, sync: &SyncConfig, packet: &Packet) -> Result<(), Failure> {
    if packet.items.is_empty() {
        return Ok(());
    }
    let (app2, sync2, packet2) = (app.clone(), sync.clone(), packet.clone());
    let missing = blocking(move || {
        let mapping = super::initial::mapping_for(&app2, &sync2)?;
        Ok(content::missing(&app2, &mapping, &packet2))
    })
    .await?;
    content::fetch(app, sync, missing).await
}

/// One full exchange now, outside the loops (`crmsync sync-now`): hello, push everything,
/// pull what the passive side has.
pub async fn exchange_once(app: &App, sync_id: i64) -> Result<(), String> {
    let result = async {
        let (sync, has_fields) = load(app, sync_id).await?;
        hello(app, &sync).await?;
        if !has_fields {
            succeeded(app, sync_id).await;
            return Ok(());
        }
        push_all(app, &sync, None).await?;
        // What we queued for the passive side's initial sync, told with the next pull.
        let mut resent = None;
        loop {
            let core = app.core.clone();
            let ack = blocking(move || Ok(core.sync_state(sync_id)?.received_seq)).await?;
            let request = PullRequest {
                ack,
                wait_ms: 0,
                problems: Vec::new(),
                user_match: None,
                resent: resent.take(),
            };
            let packet: Packet =
                call(app, &sync, "pull", &request, Duration::from_secs(120)).await?;
            let done = packet.upto <= ack;
            let resend = packet.resend;
            fetch_files(app, &sync, &packet).await?;
            if let Some(request) = resend {
                // The passive side's initial sync wants our rows: queued (before its rows in
                // this packet are applied, or they would be queued again) and sent now, and
                // said so with the next pull.
                let (app2, sync2) = (app.clone(), sync.clone());
                resent = Some(
                    blocking(move || super::initial::queue_own(&app2, &sync2, request)).await?,
                );
            }
            let (app2, sync2) = (app.clone(), sync.clone());
            blocking(move || receive(&app2, &sync2, &packet)).await?;
            if resend.is_some() {
                push_all(app, &sync, None).await?;
                continue;
            }
            if done {
                break;
            }
        }
        succeeded(app, sync_id).await;
        Ok::<(), Failure>(())
    }
    .await;
    match result {
        Ok(()) => Ok(()),
        Err(failure) => {
            let message = failure.0.clone();
            failed(app, sync_id, failure).await;
            Err(message)
        }
    }
}
