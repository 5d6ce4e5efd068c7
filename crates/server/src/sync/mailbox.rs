//! Per sync, in memory: the questions and answers that wait for the next packet, the
//! answers awaited, and what a packet transport keeps between rounds. An answer that
//! arrives wakes whoever waits for it at once (no polling). A question lost with a restart
//! is simply asked again.

use super::SyncSignals;
use super::peer::{Answer, Question, Request};
use crmsync_sync::Packet;
use crmsync_sync::drift::DigestRequest;
use crmsync_sync::protocol::{RecordsRequest, ResendSummary};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;

#[derive(Clone, Default)]
pub struct Mailboxes(Arc<Mutex<HashMap<i64, Mailbox>>>);

/// One sync's mailbox.
pub struct Mailbox {
    /// Questions and answers to go with the next packet, in order.
    outgoing: Vec<Message>,
    /// Per question: how many asked and are not answered yet, and the answers that came.
    awaiting: HashMap<Question, Awaited>,
    /// Bumped when an answer arrives.
    arrived: watch::Sender<u64>,
    /// The `ack` our last packet carried: a packet goes when we have applied more since.
    pub ack_written: i64,
    /// What we queued in answer to the other side's `resend` (over HTTP it rides on the
    /// active side's next pull)…
    pub send_resent: Option<ResendSummary>,
    /// …and what the other side queued in answer to ours (over HTTP on a passive side too).
    pub got_resent: Option<ResendSummary>,
    /// Before any packet with changes was applied: where the other side's packets with
    /// changes start (the `after` of a packet without changes is the writer's position),
    /// so a first packet that never came shows as missing rather than being skipped.
    pub peer_start: Option<i64>,
    /// The time in the name of the last packet file written: names never repeat.
    pub last_name_ms: i64,
}

impl Default for Mailbox {
    fn default() -> Self {
        Mailbox {
            outgoing: Vec::new(),
            awaiting: HashMap::new(),
            arrived: watch::channel(0).0,
            ack_written: 0,
            send_resent: None,
            got_resent: None,
            peer_start: None,
            last_name_ms: 0,
        }
    }
}

#[derive(Default)]
struct Awaited {
    asked: usize,
    arrived: VecDeque<Answer>,
}

#[derive(Debug, Clone)]
enum Message {
    Request(Request),
    Answer(Answer),
}

impl Mailboxes {
    pub fn with<T>(&self, sync_id: i64, f: impl FnOnce(&mut Mailbox) -> T) -> T {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        f(map.entry(sync_id).or_default())
    }

    /// Whether something waits to be written (a packet goes even with no changes).
    pub fn waiting(&self, sync_id: i64) -> bool {
        self.with(sync_id, |m| {
            !m.outgoing.is_empty() || m.send_resent.is_some()
        })
    }

    /// An answer to a question of the other side's, to go with the next packet.
    pub fn send_answer(&self, sync_id: i64, answer: Answer) {
        self.with(sync_id, |m| m.outgoing.push(Message::Answer(answer)));
    }

    /// Puts `request` out with the next packet and waits up to `patience` for its answer.
    /// A block of numbers that came after its asker gave up is taken by the next ask for
    /// the same field instead of asking again (the owner handed those numbers out).
    pub async fn ask(
        &self,
        signals: &SyncSignals,
        sync_id: i64,
        request: Request,
        patience: Duration,
    ) -> Result<Answer, String> {
        let question = request.question();
        let numbers = matches!(question, Question::Numbers(_));
        let mut arrived = self.with(sync_id, |m| {
            let awaited = m.awaiting.entry(question).or_default();
            if !numbers {
                // An answer to an earlier ask whose asker gave up is out of date.
                awaited.arrived.clear();
            }
            if awaited.arrived.is_empty() {
                awaited.asked += 1;
                m.outgoing.push(Message::Request(request));
            }
            m.arrived.subscribe()
        });
        // Wakes the sync's round, which writes the next packet.
        signals.committed();
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            let answer = self.with(sync_id, |m| {
                m.awaiting
                    .get_mut(&question)
                    .and_then(|awaited| awaited.arrived.pop_front())
            });
            if let Some(answer) = answer {
                return Ok(answer);
            }
            // An answer arriving between the look above and this wait still wakes it: the
            // receiver has not seen that bump.
            if tokio::time::timeout_at(deadline, arrived.changed())
                .await
                .is_err()
            {
                return Err(format!(
                    "asked through the sync's folders {} s ago and no answer yet; is the other side running and reading its folder?",
                    patience.as_secs()
                ));
            }
        }
    }

    /// An answer that arrived: kept for its asker, who is woken. `false` when nothing
    /// asked it (asked before a restart, or a replay): the caller says so.
    pub fn deliver(&self, sync_id: i64, answer: Answer) -> bool {
        self.with(sync_id, |m| match m.awaiting.get_mut(&answer.question()) {
            Some(awaited) if awaited.asked > 0 => {
                awaited.asked -= 1;
                awaited.arrived.push_back(answer);
                m.arrived.send_modify(|n| *n += 1);
                true
            }
            _ => false,
        })
    }

    /// What the other side said it queued in answer to this side's `resend`, once it came.
    pub fn resent(&self, sync_id: i64) -> Option<ResendSummary> {
        self.with(sync_id, |m| m.got_resent)
    }

    pub fn forget_resent(&self, sync_id: i64) {
        self.with(sync_id, |m| m.got_resent = None);
    }

    /// Moves what waits into `packet`; returns whether there was anything.
    pub fn fill(&self, sync_id: i64, packet: &mut Packet) -> bool {
        let outgoing = self.with(sync_id, |m| {
            packet.resent = m.send_resent.take();
            std::mem::take(&mut m.outgoing)
        });
        for message in outgoing {
            match message {
                Message::Request(Request::Digests(request)) => {
                    packet.digest_request = Some(request.fields);
                    packet.digest_directions = Some(request.directions);
                }
                Message::Request(Request::Records(request)) => {
                    packet.records_request = Some(request.table)
                }
                Message::Request(Request::Pairs(request)) => packet.pairs = Some(request),
                Message::Request(Request::Numbers(request)) => packet.number_requests.push(request),
                Message::Answer(Answer::Digests(digests)) => packet.digests = Some(digests),
                Message::Answer(Answer::Records(items)) => packet.records = Some(items),
                Message::Answer(Answer::Paired(outcome)) => packet.paired = Some(outcome),
                Message::Answer(Answer::Numbers(block)) => packet.number_blocks.push(block),
            }
        }
        carries_control(packet)
    }
}

/// The questions a packet carries.
pub fn requests_in(packet: &Packet) -> Vec<Request> {
    let mut requests = Vec::new();
    if let Some(fields) = &packet.digest_request {
        requests.push(Request::Digests(DigestRequest {
            fields: fields.clone(),
            directions: packet.digest_directions.clone().unwrap_or_default(),
        }));
    }
    if let Some(table) = packet.records_request {
        requests.push(Request::Records(RecordsRequest { table }));
    }
    if let Some(pairs) = &packet.pairs {
        requests.push(Request::Pairs(pairs.clone()));
    }
    requests.extend(packet.number_requests.iter().cloned().map(Request::Numbers));
    requests
}

/// The answers a packet carries.
pub fn answers_in(packet: &Packet) -> Vec<Answer> {
    let mut answers = Vec::new();
    answers.extend(packet.digests.clone().map(Answer::Digests));
    answers.extend(packet.records.clone().map(Answer::Records));
    answers.extend(packet.paired.clone().map(Answer::Paired));
    answers.extend(packet.number_blocks.iter().cloned().map(Answer::Numbers));
    answers
}

/// Whether a packet carries questions or answers (read whatever its place in sequence).
pub fn carries_control(packet: &Packet) -> bool {
    packet.digest_request.is_some()
        || packet.records_request.is_some()
        || packet.pairs.is_some()
        || !packet.number_requests.is_empty()
        || packet.digests.is_some()
        || packet.records.is_some()
        || packet.paired.is_some()
        || !packet.number_blocks.is_empty()
        || packet.resent.is_some()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crmsync_sync::protocol::{GrantedBlock, NumberBlockRequest};

    const SYNC: i64 = 7;

    fn numbers(field_no: i64) -> Request {
        Request::Numbers(NumberBlockRequest {
            field_no,
            count: 3,
            hops: 0,
        })
    }

    fn block(field_no: i64, first: i64) -> Answer {
        Answer::Numbers(GrantedBlock {
            field_no,
            first,
            last: first + 2,
            refused: None,
        })
    }

    fn first_of(answer: Answer) -> i64 {
        match answer {
            Answer::Numbers(block) => block.first,
            other => panic!("{other:?}"),
        }
    }

    /// Lets the spawned asks put their questions out (the clock is paused: time moves only
    /// when every task waits on it).
    async fn settle() {
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn an_answer_wakes_its_asker_at_once() {
        let (mailboxes, signals) = (Mailboxes::default(), SyncSignals::default());
        let asking = tokio::spawn({
            let (mailboxes, signals) = (mailboxes.clone(), signals.clone());
            async move {
                let asked_at = tokio::time::Instant::now();
                let answer = mailboxes
                    .ask(&signals, SYNC, numbers(1), Duration::from_secs(10))
                    .await;
                (answer, asked_at.elapsed())
            }
        });
        settle().await;
        let mut packet = Packet::default();
        assert!(mailboxes.fill(SYNC, &mut packet), "the question goes out");
        assert_eq!(packet.number_requests.len(), 1);
        assert!(mailboxes.deliver(SYNC, block(1, 100)));
        let (answer, waited) = asking.await.unwrap();
        assert_eq!(first_of(answer.unwrap()), 100);
        // Polling would have let the paused clock move on to its next look.
        assert_eq!(waited, Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn two_asks_for_one_fields_numbers_each_get_a_block() {
        let (mailboxes, signals) = (Mailboxes::default(), SyncSignals::default());
        let ask = || {
            let (mailboxes, signals) = (mailboxes.clone(), signals.clone());
            tokio::spawn(async move {
                mailboxes
                    .ask(&signals, SYNC, numbers(1), Duration::from_secs(10))
                    .await
            })
        };
        let (first, second) = (ask(), ask());
        settle().await;
        let mut packet = Packet::default();
        mailboxes.fill(SYNC, &mut packet);
        assert_eq!(packet.number_requests.len(), 2);
        assert!(mailboxes.deliver(SYNC, block(1, 100)));
        assert!(mailboxes.deliver(SYNC, block(1, 103)));
        let mut firsts = vec![
            first_of(first.await.unwrap().unwrap()),
            first_of(second.await.unwrap().unwrap()),
        ];
        firsts.sort();
        assert_eq!(firsts, [100, 103]);
        // A third block was never asked for: refused, so no number is used twice.
        assert!(!mailboxes.deliver(SYNC, block(1, 106)));
    }

    #[tokio::test(start_paused = true)]
    async fn numbers_that_come_after_their_asker_gave_up_serve_the_next_ask() {
        let (mailboxes, signals) = (Mailboxes::default(), SyncSignals::default());
        let patience = Duration::from_secs(10);
        let gave_up = mailboxes.ask(&signals, SYNC, numbers(1), patience).await;
        assert!(gave_up.unwrap_err().contains("no answer yet"));
        assert!(
            mailboxes.deliver(SYNC, block(1, 100)),
            "the owner handed them out"
        );
        let mut packet = Packet::default();
        mailboxes.fill(SYNC, &mut packet);
        let answer = mailboxes.ask(&signals, SYNC, numbers(1), patience).await;
        assert_eq!(first_of(answer.unwrap()), 100);
        let mut again = Packet::default();
        assert!(!mailboxes.fill(SYNC, &mut again), "nothing asked again");
    }

    #[tokio::test(start_paused = true)]
    async fn an_answer_to_nothing_asked_is_refused() {
        let mailboxes = Mailboxes::default();
        assert!(!mailboxes.deliver(SYNC, Answer::Records(Vec::new())));
        assert!(!mailboxes.deliver(SYNC, block(1, 100)));
    }
}
