//! Faults that are proven to land: a TCP relay between the active and the passive side
//! that sees every HTTP request and answer, and cuts or holds the one it is told to (the
//! crash and file tests hold a packet or a chunk with it to kill a process mid-transfer);
//! a connection cut in the middle of a packet, either way, and an answer lost after the
//! passive side applied the packet, lose and double nothing.

use super::crash::{census, import_rows};
use super::http::{SyncedPair, quiet, set_remote, synced_pair};
use crate::common::{Client, Server, eventually};
use serde_json::Value;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// What the relay does to the first message that matches a [`Fault`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Action {
    /// Closes the connection halfway through the request's body.
    CutRequest,
    /// Closes the connection halfway through the answer's body.
    CutAnswer,
    /// Forwards nothing of the request, nor anything after it on that connection.
    Hold,
}

/// A fault for the first request whose request line contains `request` (after `skip`
/// such requests), counting only messages (the request, or the answer for `CutAnswer`)
/// with a body of at least `min_body` bytes. It fires once.
#[derive(Clone, Debug)]
pub struct Fault {
    pub request: String,
    pub action: Action,
    pub skip: usize,
    pub min_body: usize,
}

impl Fault {
    pub fn new(request: &str, action: Action) -> Fault {
        Fault {
            request: request.to_string(),
            action,
            skip: 0,
            min_body: 0,
        }
    }
}

#[derive(Default)]
struct Seen {
    fault: Option<Fault>,
    /// Every request line, in the order the requests were forwarded.
    requests: Vec<String>,
    cuts: usize,
    held: usize,
    /// Every answer's body is altered (one bit of its last byte) on its way back.
    tampering: bool,
    tampered: usize,
}

impl Seen {
    /// Whether the armed fault strikes this message; a strike disarms it.
    fn strikes(&mut self, action: Action, line: &str, body: usize) -> bool {
        let Some(fault) = self.fault.as_mut() else {
            return false;
        };
        if fault.action != action || !line.contains(&fault.request) || body < fault.min_body {
            return false;
        }
        if fault.skip > 0 {
            fault.skip -= 1;
            return false;
        }
        self.fault = None;
        match action {
            Action::Hold => self.held += 1,
            Action::CutRequest | Action::CutAnswer => self.cuts += 1,
        }
        true
    }
}

/// Listens on a loopback port and forwards every connection to `target`, one HTTP/1.1
/// message at a time (framed by Content-Length, as the sync client sends them).
pub struct Relay {
    pub address: String,
    seen: Arc<Mutex<Seen>>,
    accepting: tokio::task::JoinHandle<()>,
}

impl Relay {
    pub async fn start(target: &str) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let seen = Arc::new(Mutex::new(Seen::default()));
        let (target, seen2) = (target.to_string(), seen.clone());
        let accepting = tokio::spawn(async move {
            // Dropped with the relay's task: every connection closes with it.
            let mut connections = tokio::task::JoinSet::new();
            while let Ok((client, _)) = listener.accept().await {
                let (target, seen) = (target.clone(), seen2.clone());
                connections.spawn(async move {
                    if let Ok(server) = TcpStream::connect(&target).await {
                        relay_connection(client, server, seen).await;
                    }
                });
            }
        });
        Relay {
            address,
            seen,
            accepting,
        }
    }

    /// The address of `server`'s passive sync `passive` through this relay (to `server`).
    pub fn endpoint(&self, server: &Server, passive: i64) -> String {
        endpoint(server, passive).replacen(&server.address(), &self.address, 1)
    }

    pub fn arm(&self, fault: Fault) {
        self.seen.lock().unwrap().fault = Some(fault);
    }

    /// From now on alters every answer (or stops), as a man in the middle would.
    pub fn tamper_with_answers(&self, on: bool) {
        self.seen.lock().unwrap().tampering = on;
    }

    pub fn tampered(&self) -> usize {
        self.seen.lock().unwrap().tampered
    }

    pub fn cuts(&self) -> usize {
        self.seen.lock().unwrap().cuts
    }

    pub fn held(&self) -> usize {
        self.seen.lock().unwrap().held
    }

    /// The request lines forwarded so far.
    pub fn requests(&self) -> Vec<String> {
        self.seen.lock().unwrap().requests.clone()
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.accepting.abort();
    }
}

/// Both directions of one connection; either ending (a cut, a hold's peer gone, EOF)
/// closes both sockets.
async fn relay_connection(client: TcpStream, server: TcpStream, seen: Arc<Mutex<Seen>>) {
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    // The request line of each forwarded request, and whether its answer is to be cut.
    let (answers, asked) = mpsc::unbounded_channel();
    tokio::select! {
        _ = requests(client_read, server_write, seen.clone(), answers) => {}
        _ = replies(server_read, client_write, seen, asked) => {}
    }
}

/// One message's head (through the blank line) and its body length; None at EOF.
async fn read_head(
    from: &mut (impl AsyncRead + Unpin),
    buffer: &mut Vec<u8>,
) -> Option<(Vec<u8>, usize)> {
    loop {
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            let head: Vec<u8> = buffer.drain(..end + 4).collect();
            let text = String::from_utf8_lossy(&head).to_ascii_lowercase();
            let length = text
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            return Some((head, length));
        }
        let mut chunk = [0u8; 64 * 1024];
        match from.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
        }
    }
}

/// Forwards `length` body bytes (or only the first `limit` of them); false when a side
/// closed.
async fn forward_body(
    from: &mut (impl AsyncRead + Unpin),
    to: &mut (impl AsyncWrite + Unpin),
    buffer: &mut Vec<u8>,
    length: usize,
    limit: usize,
) -> bool {
    let mut left = length.min(limit);
    loop {
        let take = left.min(buffer.len());
        if to.write_all(&buffer[..take]).await.is_err() {
            return false;
        }
        buffer.drain(..take);
        left -= take;
        if left == 0 {
            return true;
        }
        let mut chunk = [0u8; 64 * 1024];
        match from.read(&mut chunk).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
        }
    }
}

async fn requests(
    mut from: impl AsyncRead + Unpin,
    mut to: impl AsyncWrite + Unpin,
    seen: Arc<Mutex<Seen>>,
    answers: mpsc::UnboundedSender<String>,
) {
    let mut buffer = Vec::new();
    while let Some((head, length)) = read_head(&mut from, &mut buffer).await {
        let line = String::from_utf8_lossy(&head)
            .lines()
            .next()
            .unwrap_or_default()
            .to_string();
        let (hold, cut) = {
            let mut seen = seen.lock().unwrap();
            let hold = seen.strikes(Action::Hold, &line, length);
            let cut = !hold && seen.strikes(Action::CutRequest, &line, length);
            if !hold {
                seen.requests.push(line.clone());
            }
            (hold, cut)
        };
        if hold {
            // Until the other side goes away.
            std::future::pending::<()>().await;
        }
        if to.write_all(&head).await.is_err() {
            return;
        }
        let limit = if cut { length / 2 } else { length };
        if !forward_body(&mut from, &mut to, &mut buffer, length, limit).await || cut {
            return;
        }
        if answers.send(line).is_err() {
            return;
        }
    }
}

async fn replies(
    mut from: impl AsyncRead + Unpin,
    mut to: impl AsyncWrite + Unpin,
    seen: Arc<Mutex<Seen>>,
    mut asked: mpsc::UnboundedReceiver<String>,
) {
    let mut buffer = Vec::new();
    while let Some((head, length)) = read_head(&mut from, &mut buffer).await {
        // No pipelining: an answer is to the oldest request not answered yet.
        let line = asked.recv().await.unwrap_or_default();
        let (cut, tamper) = {
            let mut seen = seen.lock().unwrap();
            let tamper = seen.tampering && length > 0;
            seen.tampered += usize::from(tamper);
            (seen.strikes(Action::CutAnswer, &line, length), tamper)
        };
        if to.write_all(&head).await.is_err() {
            return;
        }
        if tamper {
            let mut body = Vec::with_capacity(length);
            if !forward_body(&mut from, &mut body, &mut buffer, length, length).await {
                return;
            }
            body[length - 1] ^= 1;
            if to.write_all(&body).await.is_err() {
                return;
            }
            continue;
        }
        let limit = if cut { length / 2 } else { length };
        if !forward_body(&mut from, &mut to, &mut buffer, length, limit).await || cut {
            return;
        }
    }
}

/// The address of `server`'s passive sync `passive`, for the active side's `remote_url`.
pub fn endpoint(server: &Server, passive: i64) -> String {
    format!("{}/sync/v1/{passive}", server.url)
}

/// The id of the newest entry of a sync's log (0 when empty).
pub async fn last_log_id(api: &Client, sync: i64) -> i64 {
    log_after(api, sync, 0)
        .await
        .last()
        .map_or(0, |e| e["id"].as_i64().unwrap())
}

/// Every entry of a sync's log after the entry `after`.
pub async fn log_after(api: &Client, sync: i64, mut after: i64) -> Vec<Value> {
    let mut entries = Vec::new();
    loop {
        let (_, log) = api
            .get(&format!("/syncs/{sync}/log?after={after}&limit=1000"))
            .await;
        let page = log["entries"].as_array().unwrap().clone();
        match page.last() {
            Some(last) => after = last["id"].as_i64().unwrap(),
            None => return entries,
        }
        entries.extend(page);
    }
}

/// How many records the log entries of `kind` ("sent", "received") list.
pub fn records_listed(entries: &[Value], kind: &str) -> usize {
    entries
        .iter()
        .filter(|e| e["kind"] == kind)
        .map(|e| e["detail"]["records"].as_array().map_or(0, Vec::len))
        .sum()
}

#[tokio::test]
async fn a_connection_cut_mid_packet_either_way_or_after_the_packet_loses_and_doubles_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let SyncedPair {
        main,
        aux,
        main_table,
        aux_table,
        active,
        passive,
        ..
    } = synced_pair(dir.path(), &["Name"]).await;
    let (main_api, aux_api) = (main.admin(), aux.admin());
    let relay = Relay::start(&aux.address()).await;
    set_remote(&main_api, active, &relay.endpoint(&aux, passive)).await;
    quiet(&main_api, active, &aux_api, passive).await;

    // 6,000 rows a phase, from main or from aux: packets of 5,000 and 1,000, each cut
    // lands well inside the first.
    let phases = [
        // The push is cut halfway through its packet: the passive side gets half a body.
        (
            "main",
            Fault {
                min_body: 10_000,
                ..Fault::new("/push ", Action::CutRequest)
            },
        ),
        // The passive side applies the push, its answer is lost: the packet comes again.
        ("again", Fault::new("/push ", Action::CutAnswer)),
        // A pulled packet is cut halfway: the active side gets half of it.
        (
            "aux",
            Fault {
                min_body: 10_000,
                ..Fault::new("/pull ", Action::CutAnswer)
            },
        ),
    ];
    for (expected, (prefix, fault)) in (1..).zip(phases) {
        let errors_before = last_log_id(&main_api, active).await;
        // (who writes the rows, into which table; who receives them, on which sync)
        let (writer, table, receiver, receiving) = match fault.request.as_str() {
            "/pull " => (&aux_api, aux_table, &main_api, active),
            _ => (&main_api, main_table, &aux_api, passive),
        };
        let received_before = last_log_id(receiver, receiving).await;
        relay.arm(fault.clone());
        import_rows(writer, table, prefix).await;
        eventually(60, &format!("the cut of {fault:?}"), || async {
            (relay.cuts() == expected).then_some(())
        })
        .await;
        let total = expected * super::crash::ROWS;
        eventually(120, "every row on both sides after the cut", || async {
            let (mc, ac) = (
                census(&main_api, main_table).await.0,
                census(&aux_api, aux_table).await.0,
            );
            (mc >= total && ac >= total).then_some(())
        })
        .await;
        quiet(&main_api, active, &aux_api, passive).await;
        let errors: Vec<Value> = log_after(&main_api, active, errors_before)
            .await
            .into_iter()
            .filter(|e| e["kind"] == "error")
            .collect();
        assert!(
            !errors.is_empty(),
            "the cut of {fault:?} shows in the active side's log"
        );
        let received = log_after(receiver, receiving, received_before).await;
        assert_eq!(
            records_listed(&received, "received"),
            super::crash::ROWS,
            "after the cut of {fault:?} each row was applied once"
        );
        for (side, api, table) in [
            ("main", &main_api, main_table),
            ("aux", &aux_api, aux_table),
        ] {
            assert_eq!(
                census(api, table).await,
                (total, total, total),
                "{side} after the cut of {fault:?}: nothing lost, nothing doubled"
            );
        }
    }
}
