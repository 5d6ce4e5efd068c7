//! The transport seam: the other side of a sync as features see it. A feature (drift
//! check, match by a key, shared numbering, initial sync) asks a [`Peer`] a question and
//! gets its answer, or asks by [`Exchange`] how the two sides meet; it never looks at the
//! transport. Only this file knows which transport carries a question: over HTTP the active
//! side calls the passive side's endpoint (`passive`), over folders the question waits in
//! the sync's mailbox (`mailbox`) for the next packet and the answer comes back in one.

use super::active::{Failure, blocking, call_peer};
use crate::app::App;
use crmsync_domain::sync::{Mode, SyncConfig, Transport};
use crmsync_sync::drift::{DigestRequest, Digests};
use crmsync_sync::protocol::{
    GrantedBlock, Item, NumberBlock, NumberBlockRequest, PairOutcome, PairReply, PairRequest,
    RecordsReply, RecordsRequest, ResendRequest, ResendSummary,
};
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// How the two sides of a sync meet: what a feature may depend on instead of the transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exchange {
    /// This side calls the other and gets each answer in the call (HTTP, active side).
    Calls,
    /// The other side calls this one: what this side asks rides on its next call (HTTP,
    /// passive side).
    IsCalled,
    /// Each side leaves packets for the other (shared folders, FTP): a question travels with
    /// the next packet and its answer with one of theirs.
    Packets,
}

/// A question sent outside the flow of changes.
#[derive(Debug, Clone)]
pub enum Request {
    /// The other side's digests of what the sync carries (a drift check, B-16).
    Digests(DigestRequest),
    /// The other side's records of one table (a match by a key field, B-05).
    Records(RecordsRequest),
    /// Record these pairs of records (a match by a key field, B-05).
    Pairs(PairRequest),
    /// A block of a shared numbering's numbers (B-06).
    Numbers(NumberBlockRequest),
}

/// The answer to a [`Request`].
#[derive(Debug, Clone)]
pub enum Answer {
    Digests(Digests),
    Records(Vec<Item>),
    Paired(PairOutcome),
    Numbers(GrantedBlock),
}

/// What a question is about: one answer is awaited per question at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Question {
    Digests,
    Records,
    Pairs,
    /// Numbers of one field, by its number as it travels.
    Numbers(i64),
}

impl Request {
    pub fn question(&self) -> Question {
        match self {
            Request::Digests(_) => Question::Digests,
            Request::Records(_) => Question::Records,
            Request::Pairs(_) => Question::Pairs,
            Request::Numbers(request) => Question::Numbers(request.field_no),
        }
    }

    /// Whether only the active side asks it (digests, records, pairs); numbers go either way.
    pub fn from_active_side_only(&self) -> bool {
        !matches!(self, Request::Numbers(_))
    }

    /// The question as the sync log names it.
    pub fn describe(&self) -> &'static str {
        match self {
            Request::Digests(_) => "a request for digests",
            Request::Records(_) => "a request for records",
            Request::Pairs(_) => "pairs to record",
            Request::Numbers(_) => "a request for numbers",
        }
    }
}

impl Answer {
    pub fn question(&self) -> Question {
        match self {
            Answer::Digests(_) => Question::Digests,
            Answer::Records(_) => Question::Records,
            Answer::Paired(_) => Question::Pairs,
            Answer::Numbers(block) => Question::Numbers(block.field_no),
        }
    }

    /// The answer as the sync log names it.
    pub fn describe(&self) -> String {
        match self {
            Answer::Digests(_) => "digests".to_string(),
            Answer::Records(_) => "records".to_string(),
            Answer::Paired(_) => "pairs recorded".to_string(),
            Answer::Numbers(block) => format!(
                "numbers {}..{} for field {}",
                block.first, block.last, block.field_no
            ),
        }
    }
}

/// A request whose answer has a type of its own.
pub trait Ask: Into<Request> {
    type Answer;
    fn answer(answer: Answer) -> Option<Self::Answer>;
}

macro_rules! ask {
    ($request:ty, $asked:ident => $answered:ident, $answer:ty) => {
        impl From<$request> for Request {
            fn from(request: $request) -> Self {
                Request::$asked(request)
            }
        }
        impl Ask for $request {
            type Answer = $answer;
            fn answer(answer: Answer) -> Option<$answer> {
                match answer {
                    Answer::$answered(answer) => Some(answer),
                    _ => None,
                }
            }
        }
    };
}

ask!(DigestRequest, Digests => Digests, Digests);
ask!(RecordsRequest, Records => Records, Vec<Item>);
ask!(PairRequest, Pairs => Paired, PairOutcome);
ask!(NumberBlockRequest, Numbers => Numbers, GrantedBlock);

/// The other side of one sync.
pub struct Peer<'a> {
    app: &'a App,
    sync: &'a SyncConfig,
}

impl<'a> Peer<'a> {
    pub fn new(app: &'a App, sync: &'a SyncConfig) -> Self {
        Peer { app, sync }
    }

    pub fn exchange(&self) -> Exchange {
        exchange(self.sync)
    }

    /// Asks the other side and waits for its answer (over folders: up to `patience`).
    pub(crate) async fn ask<R: Ask>(&self, request: R) -> Result<R::Answer, Failure> {
        let answer = match self.sync.transport.kind() {
            Transport::Http => call(self.app, self.sync, request.into()).await?,
            Transport::Local | Transport::Ftp if self.app.syncs.runs_elsewhere(self.sync.id) => {
                return Err(Failure(format!(
                    "sync {} runs in another crmsync process on this database, and its questions travel in the packets that process writes: ask through that process (its server log says \"sync {} runs in this process\")",
                    self.sync.id, self.sync.id
                )));
            }
            Transport::Local | Transport::Ftp => self
                .app
                .mailboxes
                .ask(
                    &self.app.syncs,
                    self.sync.id,
                    request.into(),
                    patience(self.sync),
                )
                .await
                .map_err(Failure)?,
        };
        R::answer(answer).ok_or_else(|| Failure("the other side answered another question".into()))
    }

    /// Asks the other side to send its rows again (an initial sync, a drift repair). When
    /// this side calls, the answer says what it queued; otherwise the request waits for the
    /// next packet or pull (kept in the sync's state, so a restart does not lose it) and
    /// what the other side queued comes back later (`Mailboxes::resent`).
    pub(crate) async fn request_resend(
        &self,
        request: ResendRequest,
    ) -> Result<Option<ResendSummary>, Failure> {
        if self.exchange() == Exchange::Calls {
            return call_peer(self.app, self.sync, "resend", &request)
                .await
                .map(Some);
        }
        self.app.mailboxes.forget_resent(self.sync.id);
        let (core, sync_id) = (self.app.core.clone(), self.sync.id);
        let text = serde_json::to_string(&request).unwrap_or_default();
        blocking(move || core.update_sync_state(sync_id, |s| s.resend_request = Some(text)))
            .await?;
        self.app.syncs.committed();
        Ok(None)
    }
}

pub fn exchange(sync: &SyncConfig) -> Exchange {
    match (sync.transport.kind(), sync.mode) {
        (Transport::Http, Mode::Active) => Exchange::Calls,
        (Transport::Http, Mode::Passive) => Exchange::IsCalled,
        (Transport::Local | Transport::Ftp, _) => Exchange::Packets,
    }
}

/// A sync's exchange loop, started (under the sync's lease) by `supervise`.
pub type Runner = fn(App, i64) -> Pin<Box<dyn Future<Output = ()> + Send>>;

/// The loop that keeps `sync` exchanging, if this side starts its exchanges: over HTTP the
/// active side calls, over folders both sides write and read.
pub fn runner(sync: &SyncConfig) -> Option<Runner> {
    match exchange(sync) {
        Exchange::Calls => Some(|app, id| Box::pin(super::active::run(app, id))),
        Exchange::Packets => Some(|app, id| Box::pin(super::folder::run(app, id))),
        Exchange::IsCalled => None,
    }
}

/// One exchange now, outside the loop (`crmsync sync-now`), as a person reads it.
pub async fn exchange_now(app: &App, sync: &SyncConfig) -> Result<String, String> {
    match exchange(sync) {
        Exchange::Calls => super::active::exchange_once(app, sync.id)
            .await
            .map(|()| "exchanged".to_string()),
        Exchange::Packets => super::folder::exchange_now(app, sync.id)
            .await
            .map(|tally| tally.describe()),
        Exchange::IsCalled => Err(
            "the passive side of an HTTP sync only answers; exchanges are started by the active side"
                .to_string(),
        ),
    }
}

/// How long a question through folders waits for its answer: the question and the answer
/// each wait for a look at a folder (local: every 200 ms; FTP: once a period).
pub fn patience(sync: &SyncConfig) -> Duration {
    match sync.transport.kind() {
        Transport::Local | Transport::Http => Duration::from_secs(10),
        Transport::Ftp => Duration::from_secs(u64::from(sync.period_seconds) * 4 + 10),
    }
}

/// A question over HTTP: one call to the passive side's endpoint for it.
async fn call(app: &App, sync: &SyncConfig, request: Request) -> Result<Answer, Failure> {
    Ok(match request {
        Request::Digests(request) => {
            Answer::Digests(call_peer(app, sync, "digests", &request).await?)
        }
        Request::Records(request) => {
            let reply: RecordsReply = call_peer(app, sync, "records", &request).await?;
            Answer::Records(reply.items)
        }
        Request::Pairs(request) => {
            let reply: PairReply = call_peer(app, sync, "pair", &request).await?;
            Answer::Paired(PairOutcome {
                paired: reply.paired,
                refused: None,
            })
        }
        Request::Numbers(request) => {
            // The owner maps the field only once it has this side's field list: introduce
            // this side first (a request made right after the two paired could otherwise
            // outrun the sync's own hello). Blocks are asked for seldom; one hello costs little.
            super::active::hello(app, sync).await?;
            let block: NumberBlock = call_peer(app, sync, "numbers", &request).await?;
            Answer::Numbers(GrantedBlock {
                field_no: request.field_no,
                first: block.first,
                last: block.last,
                refused: None,
            })
        }
    })
}
