//! A randomized test over real processes (issues 6 and 12), seeded and reproducible, that
//! checks every instance against a model of what the test wrote: four instances in a star
//! and a chain at once (spoke1 → hub ← spoke2 ← leaf, each arrow from an active side to
//! the passive side; the last link through local folders, the others over HTTP), with
//! conflict rules (spoke1's sync `this_side`, the leaf's `other_side`, spoke2's `newer`),
//! random creates, edits, deletes and restores on all of them, and restarts.
//!
//! The run goes in rounds. Within a round each field of a record, and its status, is
//! written by one instance at most, so the last accepted write is the value every instance
//! must end with; a refused write (non-2xx) changes nothing. Some rounds start with a
//! deliberate conflict: one ruled link cut, the same field edited on both of its ends,
//! the link restored — the rule's side must win everywhere. Each round ends when every
//! sync is quiet and every instance equals the model: every record the test created once,
//! no other record, each status and value as written. Held deletes are approved as an
//! operator would.
//!
//! CRMSYNC_RANDOM_SEED (default 20261125) and CRMSYNC_RANDOM_OPS (default 120) size it;
//! `CRMSYNC_RANDOM_OPS=2000 cargo test -p crmsync --test sync random -- --nocapture` is
//! the larger run. The draws depend on the seed alone, so a seed replays the same writes
//! (up to what the servers answer: an edit can find its record not there yet); a failure
//! prints every write as it happened (instance, uid, field, value, status).

use super::folders::local_sync;
use super::http::{add_field, clients, pair, set_remote};
use crate::common::{Client, Server, eventually};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const NAMES: [&str; 4] = ["hub", "spoke1", "spoke2", "leaf"];
const HUB: usize = 0;
const SPOKE1: usize = 1;
const SPOKE2: usize = 2;
const LEAF: usize = 3;
/// An address nothing listens on: an active HTTP sync pointed there is cut off.
const DEAD_URL: &str = "http://127.0.0.1:9/sync/v1/1";
/// How long a round may take to settle before the test reports what differs.
const SETTLE_SECONDS: u64 = 120;

/// xorshift64*: small, seeded, the same sequence everywhere.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// What the model says one record is.
#[derive(Clone, Debug)]
struct Expected {
    deleted: bool,
    /// One value per field of the table, in order.
    values: Vec<String>,
}

/// A record as an instance holds it.
#[derive(Clone, Debug, PartialEq)]
struct Held {
    id: i64,
    status: String,
    values: Value,
}

/// One part of a record a write touches: its status or one field.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
enum Part {
    Status,
    Field(usize),
}

/// Every write of the run, printed if the test fails (also on a panic in a helper).
struct OpLog {
    header: String,
    lines: Vec<String>,
}

impl Drop for OpLog {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}; every write, in order:", self.header);
            for line in &self.lines {
                eprintln!("  {line}");
            }
        }
    }
}

/// Every record of the table on one instance: uid → what it holds.
async fn census(api: &Client, table: i64) -> BTreeMap<String, Held> {
    let mut all = BTreeMap::new();
    let mut after = String::new();
    loop {
        let page = api
            .ok(
                Method::GET,
                &format!("/tables/{table}/records?status=all&limit=1000{after}"),
                None,
            )
            .await;
        for r in page["records"].as_array().unwrap() {
            all.insert(
                r["uid"].as_str().unwrap().to_string(),
                Held {
                    id: r["id"].as_i64().unwrap(),
                    status: r["status"].as_str().unwrap().to_string(),
                    values: r["values"].clone(),
                },
            );
        }
        match page["next_after"].as_i64() {
            Some(next) => after = format!("&after={next}"),
            None => return all,
        }
    }
}

/// Every entry of a sync's log, following pages.
async fn whole_log(api: &Client, sync: i64) -> Vec<Value> {
    let mut entries = Vec::new();
    loop {
        let after = entries
            .last()
            .map_or(0, |e: &Value| e["id"].as_i64().unwrap());
        let (status, page) = api
            .get(&format!("/syncs/{sync}/log?after={after}&limit=1000"))
            .await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let page = page["entries"].as_array().unwrap().clone();
        if page.is_empty() {
            return entries;
        }
        entries.extend(page);
    }
}

/// A conflict the test made on purpose: the rule's winner must show in the log.
struct Deliberate {
    uid: String,
    field_no: i64,
    /// The two ends of the link: (instance, sync).
    ends: [(usize, i64); 2],
}

/// The four instances and their syncs.
struct Network {
    dir: tempfile::TempDir,
    servers: Vec<Option<Server>>,
    apis: Vec<Client>,
    table: i64,
    fields: Vec<i64>,
    /// Every sync as (instance, sync id).
    syncs: Vec<(usize, i64)>,
    /// The HTTP links to the hub: (active instance, its sync, the hub's passive sync).
    to_hub: Vec<(usize, i64, i64)>,
    /// The leaf's folder link: the leaf's active sync and spoke2's passive one.
    leaf_sync: i64,
    spoke2_folder_sync: i64,
    /// Local record ids by uid, per instance (ids never travel).
    ids: Vec<HashMap<String, i64>>,
}

impl Network {
    async fn start() -> Network {
        let dir = tempfile::tempdir().unwrap();
        let servers: Vec<Option<Server>> = NAMES
            .iter()
            .map(|n| Some(Server::start(&dir.path().join(n))))
            .collect();
        let apis: Vec<Client> = servers.iter().flatten().map(|s| s.admin()).collect();
        let mut table = 0;
        let mut fields = Vec::new();
        for api in &apis {
            (table, fields) = clients(api, &["Name", "Phone"]).await;
        }
        let mut network = Network {
            dir,
            servers,
            apis,
            table,
            fields,
            syncs: Vec::new(),
            to_hub: Vec::new(),
            leaf_sync: 0,
            spoke2_folder_sync: 0,
            ids: vec![HashMap::new(); 4],
        };
        for (active, passive) in [(SPOKE1, HUB), (SPOKE2, HUB), (LEAF, SPOKE2)] {
            let (a, p) = if active == LEAF {
                let (up, down) = network.leaf_dirs(false);
                (
                    local_sync(&network.apis[active], "active", &up, &down).await,
                    local_sync(&network.apis[passive], "passive", &down, &up).await,
                )
            } else {
                pair(&network.apis[active], &network.apis[passive], "123456").await
            };
            for f in &network.fields {
                add_field(&network.apis[active], a, *f, "both", None).await;
                add_field(&network.apis[passive], p, *f, "both", Some(*f)).await;
            }
            let policy = match active {
                SPOKE1 => "this_side",
                LEAF => "other_side",
                _ => "newer",
            };
            let (status, body) = network.apis[active]
                .patch(&format!("/syncs/{a}"), json!({ "conflict_policy": policy }))
                .await;
            assert_eq!(status, StatusCode::OK, "{body}");
            network.syncs.extend([(active, a), (passive, p)]);
            if active == LEAF {
                (network.leaf_sync, network.spoke2_folder_sync) = (a, p);
            } else {
                network.to_hub.push((active, a, p));
            }
        }
        network
    }

    /// The leaf's (upload, download) folders; `cut`: the ones nobody else reads.
    fn leaf_dirs(&self, cut: bool) -> (PathBuf, PathBuf) {
        let prefix = if cut { "cut" } else { "leaf" };
        (
            self.dir.path().join(format!("{prefix}-up")),
            self.dir.path().join(format!("{prefix}-down")),
        )
    }

    /// Kills an instance and starts it again on its data, on a fresh port (its old one may
    /// be taken meanwhile), and points the active syncs that call it at the new address.
    async fn restart(&mut self, victim: usize) {
        let data = self.servers[victim].take().unwrap().kill();
        let server = Server::start(&data);
        self.apis[victim] = server.admin();
        self.servers[victim] = Some(server);
        if victim == HUB {
            for (active, sync, passive) in self.to_hub.clone() {
                let endpoint = self.apis[HUB]
                    .ok(Method::GET, &format!("/syncs/{passive}"), None)
                    .await["endpoint_url"]
                    .as_str()
                    .unwrap()
                    .to_string();
                set_remote(&self.apis[active], sync, &endpoint).await;
            }
        }
    }

    /// This instance's id of a record, if the record is there.
    async fn local_id(&mut self, at: usize, uid: &str) -> Option<i64> {
        if let Some(id) = self.ids[at].get(uid) {
            return Some(*id);
        }
        let (status, record) = self.apis[at]
            .get(&format!("/tables/{}/records/uid/{uid}", self.table))
            .await;
        let id = status
            .is_success()
            .then(|| record["id"].as_i64().unwrap())?;
        self.ids[at].insert(uid.to_string(), id);
        Some(id)
    }
}

/// The test's own account of every write, and what each instance must hold.
struct Model {
    records: BTreeMap<String, Expected>,
    /// Uids in the order the test created them: what the draws pick from, so a seed
    /// draws the same writes again (uids themselves differ from run to run).
    created: Vec<String>,
    log: OpLog,
    /// Who wrote each part of a record this round (one writer a part a round).
    owners: HashMap<(String, Part), usize>,
}

impl Model {
    fn free(&self, uid: &str, part: Part, at: usize) -> bool {
        self.owners
            .get(&(uid.to_string(), part))
            .is_none_or(|owner| *owner == at)
    }

    fn note(&mut self, line: String) {
        self.log.lines.push(line);
    }

    /// Creates a record on `at`; returns its uid if the server took it.
    async fn create(&mut self, net: &mut Network, at: usize, tag: &str) -> Option<String> {
        let values: Vec<String> = (0..net.fields.len())
            .map(|k| format!("{tag} f{k} at {}", NAMES[at]))
            .collect();
        let body: serde_json::Map<String, Value> = net
            .fields
            .iter()
            .zip(&values)
            .map(|(f, v)| (f.to_string(), json!(v)))
            .collect();
        let (status, record) = net.apis[at]
            .post(
                &format!("/tables/{}/records", net.table),
                json!({ "values": body }),
            )
            .await;
        let uid = status
            .is_success()
            .then(|| record["uid"].as_str().unwrap().to_string());
        self.note(format!(
            "{tag}: {} create uid={} values={values:?} -> {status}",
            NAMES[at],
            uid.as_deref().unwrap_or("-")
        ));
        let uid = uid?;
        net.ids[at].insert(uid.clone(), record["id"].as_i64().unwrap());
        for part in (0..values.len()).map(Part::Field).chain([Part::Status]) {
            self.owners.insert((uid.clone(), part), at);
        }
        self.created.push(uid.clone());
        self.records.insert(
            uid.clone(),
            Expected {
                deleted: false,
                values,
            },
        );
        Some(uid)
    }

    /// Edits one field of a record on `at`; returns whether the server took it.
    async fn edit(
        &mut self,
        net: &mut Network,
        at: usize,
        uid: &str,
        field: usize,
        value: String,
        tag: &str,
    ) -> bool {
        let status = match net.local_id(at, uid).await {
            Some(id) => {
                let values = json!({ net.fields[field].to_string(): value });
                net.apis[at]
                    .patch(
                        &format!("/tables/{}/records/{id}", net.table),
                        json!({ "values": values }),
                    )
                    .await
                    .0
            }
            None => StatusCode::NOT_FOUND,
        };
        self.note(format!(
            "{tag}: {} edit uid={uid} field={} value={value:?} -> {status}",
            NAMES[at], net.fields[field]
        ));
        if status.is_success() {
            self.records.get_mut(uid).unwrap().values[field] = value;
        }
        status.is_success()
    }

    /// Deletes or restores a record on `at`.
    async fn set_status(
        &mut self,
        net: &mut Network,
        at: usize,
        uid: &str,
        delete: bool,
        tag: &str,
    ) {
        let status = match net.local_id(at, uid).await {
            Some(id) => {
                let path = format!("/tables/{}/records/{id}", net.table);
                match delete {
                    true => net.apis[at].delete(&path).await.0,
                    false => {
                        net.apis[at]
                            .post(&format!("{path}/restore"), json!({}))
                            .await
                            .0
                    }
                }
            }
            None => StatusCode::NOT_FOUND,
        };
        let op = if delete { "delete" } else { "restore" };
        self.note(format!("{tag}: {} {op} uid={uid} -> {status}", NAMES[at]));
        if status.is_success() {
            self.records.get_mut(uid).unwrap().deleted = delete;
        }
    }

    /// One random write on a random instance, within this round's one-writer-a-part rule.
    async fn random_write(&mut self, net: &mut Network, rng: &mut Rng, tag: &str) {
        let at = rng.below(4) as usize;
        let uids = self.created.clone();
        let roll = rng.below(100);
        if !uids.is_empty() && roll >= 30 {
            // A few tries for a part no other instance wrote this round; else a create.
            for _ in 0..5 {
                let uid = &uids[rng.below(uids.len() as u64) as usize];
                let part = match roll < 75 {
                    true => Part::Field(rng.below(net.fields.len() as u64) as usize),
                    false => Part::Status,
                };
                if !self.free(uid, part, at) {
                    continue;
                }
                self.owners.insert((uid.clone(), part), at);
                match part {
                    Part::Field(k) => {
                        let value = format!("{tag} f{k} at {}", NAMES[at]);
                        self.edit(net, at, uid, k, value, tag).await;
                    }
                    Part::Status => {
                        // Drawn, not read from the model, so the draws never depend on
                        // an answer; deleting a deleted record changes nothing.
                        let delete = rng.below(2) == 0;
                        self.set_status(net, at, uid, delete, tag).await;
                    }
                }
                return;
            }
        }
        self.create(net, at, tag).await;
    }

    /// Cuts a ruled link, edits one field of one record on both of its ends (in a random
    /// order), restores the link; the model takes the rule's side. `leaf`: the leaf–spoke2
    /// folder link (`other_side`: spoke2 wins), else spoke1–hub (`this_side`: spoke1 wins).
    async fn conflict(
        &mut self,
        net: &mut Network,
        rng: &mut Rng,
        leaf: bool,
        tag: &str,
    ) -> Option<Deliberate> {
        // A field of a live record no other conflict of this round has taken.
        let open: Vec<(String, usize)> = self
            .created
            .iter()
            .filter(|uid| !self.records[*uid].deleted)
            .flat_map(|uid| (0..net.fields.len()).map(|k| (uid.clone(), k)))
            .filter(|(uid, k)| !self.owners.contains_key(&(uid.clone(), Part::Field(*k))))
            .collect();
        if open.is_empty() {
            return None;
        }
        let (uid, field) = open[rng.below(open.len() as u64) as usize].clone();
        self.owners
            .insert((uid.clone(), Part::Field(field)), usize::MAX);
        let (winner, loser) = match leaf {
            true => (SPOKE2, LEAF),
            false => (SPOKE1, HUB),
        };
        let ends = match leaf {
            true => [(LEAF, net.leaf_sync), (SPOKE2, net.spoke2_folder_sync)],
            false => {
                let (_, a, p) = net.to_hub[0];
                [(SPOKE1, a), (HUB, p)]
            }
        };
        self.note(format!(
            "{tag}: cut {}–{}",
            NAMES[ends[0].0], NAMES[ends[1].0]
        ));
        let endpoint = match leaf {
            true => {
                cut_leaf(net).await;
                None
            }
            false => {
                let (_, sync, _) = net.to_hub[0];
                let api = &net.apis[SPOKE1];
                let endpoint =
                    api.ok(Method::GET, &format!("/syncs/{sync}"), None).await["remote_url"]
                        .as_str()
                        .unwrap()
                        .to_string();
                set_remote(api, sync, DEAD_URL).await;
                eventually(30, "spoke1 cut off from the hub", || async {
                    let (_, s) = api.get(&format!("/syncs/{sync}/status")).await;
                    (s["connected"] == false).then_some(())
                })
                .await;
                Some(endpoint)
            }
        };
        // In either order: the rule goes with the newer write or against it.
        let mut order = [loser, winner];
        if rng.below(2) == 0 {
            order.reverse();
        }
        let mut taken = Vec::new();
        for at in order {
            let value = format!("{tag} conflict f{field} at {}", NAMES[at]);
            if self.edit(net, at, &uid, field, value.clone(), tag).await {
                taken.push((at, value));
            }
        }
        // The model's last write would be the loser's when it wrote second; the rule says
        // the winner's.
        if let Some((_, value)) = taken.iter().find(|(at, _)| *at == winner) {
            self.records.get_mut(&uid).unwrap().values[field] = value.clone();
        }
        match endpoint {
            None => reconnect_leaf(net).await,
            Some(endpoint) => set_remote(&net.apis[SPOKE1], net.to_hub[0].1, &endpoint).await,
        }
        self.note(format!("{tag}: restored the link"));
        (taken.len() == 2).then(|| Deliberate {
            uid,
            field_no: net.fields[field],
            ends,
        })
    }

    /// What an instance holds that the model does not say, in words; empty when equal.
    fn differences(&self, net: &Network, at: usize, held: &BTreeMap<String, Held>) -> Vec<String> {
        let mut wrong = Vec::new();
        for (uid, expected) in &self.records {
            let Some(h) = held.get(uid) else {
                wrong.push(format!("{}: {uid} missing", NAMES[at]));
                continue;
            };
            let status = if expected.deleted {
                "deleted"
            } else {
                "active"
            };
            if h.status != status {
                wrong.push(format!(
                    "{}: {uid} is {} (model: {status})",
                    NAMES[at], h.status
                ));
            }
            for (no, value) in net.fields.iter().zip(&expected.values) {
                if h.values[no.to_string()] != json!(value) {
                    wrong.push(format!(
                        "{}: {uid} field {no} is {} (model: {value:?})",
                        NAMES[at],
                        h.values[no.to_string()]
                    ));
                }
            }
        }
        for uid in held.keys().filter(|u| !self.records.contains_key(*u)) {
            wrong.push(format!("{}: {uid} is not in the model", NAMES[at]));
        }
        wrong
    }

    /// Waits until every sync is quiet (nothing pending out, held deletes approved) and
    /// every instance holds what the model says, the same in two polls in a row; fails
    /// with what differs if that does not happen in time.
    async fn settle(&mut self, net: &mut Network, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(SETTLE_SECONDS);
        let mut previous: Option<Vec<BTreeMap<String, Held>>> = None;
        loop {
            let mut busy = Vec::new();
            let mut statuses = Vec::new();
            for (at, sync) in &net.syncs {
                let api = &net.apis[*at];
                let (_, held) = api.get(&format!("/syncs/{sync}/held")).await;
                for h in held["held"].as_array().into_iter().flatten() {
                    if h["kind"] == "mass_delete" {
                        api.post(&format!("/syncs/{sync}/held/{}", h["id"]), json!({}))
                            .await;
                    }
                }
                let (_, s) = api.get(&format!("/syncs/{sync}/status")).await;
                if s["pending_out"] != 0 || s["held"]["quarantine"] != 0 {
                    busy.push(format!("{} sync {sync}", NAMES[*at]));
                }
                statuses.push(format!("{} sync {sync}: {s}", NAMES[*at]));
            }
            let mut now = Vec::new();
            let mut wrong = Vec::new();
            for at in 0..4 {
                let held = census(&net.apis[at], net.table).await;
                wrong.extend(self.differences(net, at, &held));
                for (uid, h) in &held {
                    net.ids[at].insert(uid.clone(), h.id);
                }
                now.push(held);
            }
            if busy.is_empty() && wrong.is_empty() && previous.as_ref() == Some(&now) {
                return;
            }
            if Instant::now() > deadline {
                for (at, sync) in &net.syncs {
                    for e in whole_log(&net.apis[*at], *sync).await {
                        if e["kind"] != "sent" {
                            statuses.push(format!("{} sync {sync} log: {e}", NAMES[*at]));
                        }
                    }
                }
                panic!(
                    "{}: {what} did not settle in {SETTLE_SECONDS} s; what differs from the model ({} records):\n{}\nsyncs not quiet: {busy:?}\n{}",
                    self.log.header,
                    self.records.len(),
                    wrong.join("\n"),
                    statuses.join("\n")
                );
            }
            previous = Some(now);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Points the leaf's folder sync at folders spoke2 does not use, and waits until its
/// runner writes there (its first packet after a settings change is a hello).
async fn cut_leaf(net: &Network) {
    let (up, down) = net.leaf_dirs(true);
    let api = &net.apis[LEAF];
    let (status, body) = api
        .patch(
            &format!("/syncs/{}", net.leaf_sync),
            json!({ "local": { "upload_dir": up, "download_dir": down } }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    eventually(30, "the leaf writing into the cut-off folder", || async {
        (!packet_files(&up).is_empty()).then_some(())
    })
    .await;
}

/// Carries what the leaf wrote while cut off to spoke2's folder (as a person would carry
/// the files) and points the leaf back at the shared folders.
async fn reconnect_leaf(net: &Network) {
    let (cut_up, _) = net.leaf_dirs(true);
    let (up, down) = net.leaf_dirs(false);
    // Once its changes are in files (nothing pending) the leaf writes nothing more there:
    // it reads nothing while cut off, so it has nothing to answer.
    let (api, sync) = (&net.apis[LEAF], net.leaf_sync);
    eventually(30, "the leaf's changes written while cut off", || async {
        let (_, s) = api.get(&format!("/syncs/{sync}/status")).await;
        (s["pending_out"] == 0).then_some(())
    })
    .await;
    for name in packet_files(&cut_up) {
        std::fs::rename(cut_up.join(&name), up.join(&name)).unwrap();
    }
    let (status, body) = net.apis[LEAF]
        .patch(
            &format!("/syncs/{}", net.leaf_sync),
            json!({ "local": { "upload_dir": up, "download_dir": down } }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// Finished files in a folder (a file being written is a hidden temporary).
fn packet_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|n| !n.starts_with('.'))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_changes_on_four_instances_in_a_star_and_a_chain_match_the_model() {
    let seed = setting("CRMSYNC_RANDOM_SEED", 20_261_125);
    let ops = setting("CRMSYNC_RANDOM_OPS", 120);
    // Every seed its own non-zero state (xorshift never leaves zero).
    let mut rng = Rng(seed.wrapping_add(0x9E37_79B9_7F4A_7C15).max(1));
    let header = format!("CRMSYNC_RANDOM_SEED={seed} CRMSYNC_RANDOM_OPS={ops}");
    println!("{header}");
    let started = Instant::now();
    let mut net = Network::start().await;
    let mut model = Model {
        records: BTreeMap::new(),
        created: Vec::new(),
        log: OpLog {
            header,
            lines: Vec::new(),
        },
        owners: HashMap::new(),
    };

    // Rounds of about a twelfth of the run each (8 to 40 writes), so a run has a dozen
    // or more checkpoints and a large run is not all waiting.
    let mean = (ops / 12).clamp(8, 40);
    let mut rounds = Vec::new();
    let mut left = ops;
    while left > 0 {
        let length = (mean / 2 + rng.below(mean + 1)).clamp(1, left);
        rounds.push(length);
        left -= length;
    }
    // One conflict of each ruled link for sure (not in the first round: records first),
    // more at random; one restart for sure, more at random.
    let later_round = |rng: &mut Rng| 1 + rng.below(rounds.len().saturating_sub(1) as u64);
    let forced_conflicts = [later_round(&mut rng), later_round(&mut rng)];
    let forced_restart = rng.below(ops);
    let most_restarts = (ops / 200).max(3);

    let mut deliberate = Vec::new();
    let mut restarts = 0;
    let mut op = 0;
    for (round, length) in rounds.iter().enumerate() {
        model.owners.clear();
        for (leaf, forced) in [false, true].into_iter().zip(forced_conflicts) {
            if forced == round as u64 || (round > 0 && rng.below(4) == 0) {
                let tag = format!("round {round}");
                if let Some(made) = model.conflict(&mut net, &mut rng, leaf, &tag).await {
                    deliberate.push(made);
                }
            }
        }
        for _ in 0..*length {
            let tag = format!("round {round} op {op}");
            model.random_write(&mut net, &mut rng, &tag).await;
            // Now and then an instance is killed in the middle of the traffic.
            if op == forced_restart || (rng.below(60) == 0 && restarts < most_restarts) {
                let victim = rng.below(4) as usize;
                model.note(format!("{tag}: restart {}", NAMES[victim]));
                net.restart(victim).await;
                restarts += 1;
            }
            op += 1;
        }
        model.settle(&mut net, &format!("round {round}")).await;
    }
    assert!(restarts >= 1, "{}", model.log.header);

    // Every conflict made on purpose was decided by a rule, and logged so.
    let mut ruled = 0;
    let mut logs = HashMap::new();
    for (at, sync) in &net.syncs {
        let log = whole_log(&net.apis[*at], *sync).await;
        ruled += log
            .iter()
            .filter(|e| e["detail"]["rule"].is_string())
            .count();
        logs.insert((*at, *sync), log);
    }
    for made in &deliberate {
        let logged = made.ends.iter().any(|end| {
            logs[end].iter().any(|e| {
                e["kind"] == "conflict"
                    && e["detail"]["uid"] == made.uid.as_str()
                    && e["detail"]["field_no"] == made.field_no
                    && e["detail"]["rule"].is_string()
            })
        });
        assert!(
            logged,
            "{}: the conflict on {} field {} was not decided by a rule",
            model.log.header, made.uid, made.field_no
        );
    }
    assert!(
        ruled >= 1 && !deliberate.is_empty(),
        "{}: no conflict decided by a rule",
        model.log.header
    );
    let refused = model
        .log
        .lines
        .iter()
        .filter(|l| l.contains(" -> ") && !l.contains(" -> 2"))
        .count();
    println!(
        "{} records ({} deleted) on all four as the model says after {} rounds; {} writes refused; \
         {} conflicts made on purpose, {ruled} decided by a rule in all; {restarts} restart(s); {:.1} s",
        model.records.len(),
        model.records.values().filter(|e| e.deleted).count(),
        rounds.len(),
        refused,
        deliberate.len(),
        started.elapsed().as_secs_f64()
    );
}
