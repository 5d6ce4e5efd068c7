//! A randomized convergence test over real processes (issue 6), seeded and reproducible:
//! four instances in a star and a chain at once (spoke1 → hub ← spoke2 ← leaf, each arrow
//! from an active side to the passive side; the last link through local folders, the
//! others over HTTP), random creates, edits, deletes and restores on
//! all of them, and random restarts; at the end, with held deletes approved as an operator
//! would, every instance holds the same records with the same values and statuses —
//! nothing lost, nothing doubled.
//!
//! CRMSYNC_RANDOM_SEED (default 20261125) and CRMSYNC_RANDOM_OPS (default 120) size it;
//! `CRMSYNC_RANDOM_OPS=2000 cargo test -p crmsync --test sync random -- --nocapture` is
//! the larger run.

use super::folders::local_sync;
use super::http::{add_field, clients, pair};
use crate::common::{Client, Server, eventually};
use reqwest::Method;
use serde_json::{Value, json};
use std::collections::BTreeMap;

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

/// Every record of the table: uid → (status, values).
async fn census(api: &Client, table: i64) -> BTreeMap<String, (String, Value)> {
    let mut all = BTreeMap::new();
    let mut after: Option<i64> = None;
    loop {
        let mut path = format!("/tables/{table}/records?status=all&limit=1000");
        if let Some(after) = after {
            path.push_str(&format!("&after={after}"));
        }
        let page = api.ok(Method::GET, &path, None).await;
        for r in page["records"].as_array().unwrap() {
            all.insert(
                r["uid"].as_str().unwrap().to_string(),
                (
                    r["status"].as_str().unwrap().to_string(),
                    r["values"].clone(),
                ),
            );
        }
        match page["next_after"].as_i64() {
            Some(next) => after = Some(next),
            None => return all,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_changes_on_four_instances_in_a_star_and_a_chain_converge() {
    let seed = setting("CRMSYNC_RANDOM_SEED", 20_261_125);
    let ops = setting("CRMSYNC_RANDOM_OPS", 120);
    // Every seed its own non-zero state (xorshift never leaves zero).
    let mut rng = Rng(seed.wrapping_add(0x9E37_79B9_7F4A_7C15).max(1));
    println!("seed {seed}, {ops} operations");
    let dir = tempfile::tempdir().unwrap();
    let names = ["hub", "spoke1", "spoke2", "leaf"];
    let mut servers: Vec<Server> = names
        .iter()
        .map(|n| Server::start(&dir.path().join(n)))
        .collect();
    let mut apis: Vec<Client> = servers.iter().map(|s| s.admin()).collect();
    let mut table = 0;
    let mut fields = Vec::new();
    for api in &apis {
        (table, fields) = clients(api, &["Name", "Phone"]).await;
    }
    // spoke1 → hub and spoke2 → hub over HTTP, leaf → spoke2 through two local folders
    // (active → passive): HTTP and folder syncs mixed in one network, with conflict rules.
    let mut syncs: Vec<(usize, i64)> = Vec::new();
    for (active, passive) in [(1, 0), (2, 0), (3, 2)] {
        let (a, p) = if active == 3 {
            let (up, down) = (dir.path().join("leaf-up"), dir.path().join("leaf-down"));
            (
                local_sync(&apis[active], "active", &up, &down).await,
                local_sync(&apis[passive], "passive", &down, &up).await,
            )
        } else {
            pair(&apis[active], &apis[passive], "123456").await
        };
        for f in &fields {
            add_field(&apis[active], a, *f, "both", None).await;
            add_field(&apis[passive], p, *f, "both", Some(*f)).await;
        }
        // Conflict rules mixed in (B-02): spoke1 wins against the hub, the leaf's
        // neighbour wins against the leaf, spoke2 and the hub keep the newer write.
        let policy = match active {
            1 => "this_side",
            3 => "other_side",
            _ => "newer",
        };
        let (status, body) = apis[active]
            .patch(&format!("/syncs/{a}"), json!({ "conflict_policy": policy }))
            .await;
        assert_eq!(status, reqwest::StatusCode::OK, "{body}");
        syncs.push((active, a));
        syncs.push((passive, p));
    }

    let mut restarts = 0;
    for step in 0..ops {
        let at = rng.below(4) as usize;
        let api = &apis[at];
        let known = census(api, table).await;
        let uids: Vec<&String> = known.keys().collect();
        let pick = |rng: &mut Rng| uids[rng.below(uids.len() as u64) as usize].clone();
        let roll = rng.below(100);
        if uids.is_empty() || roll < 35 {
            let values = json!({ fields[0].to_string(): format!("client {step} at {}", names[at]), fields[1].to_string(): format!("+7 {step}") });
            api.create_record(table, values).await;
        } else {
            let uid = pick(&mut rng);
            let (_, record) = api.get(&format!("/tables/{table}/records/uid/{uid}")).await;
            let id = record["id"].as_i64().unwrap();
            let path = format!("/tables/{table}/records/{id}");
            if roll < 70 {
                let field = fields[rng.below(2) as usize];
                api.patch(&path, json!({ "values": { field.to_string(): format!("edit {step} at {}", names[at]) } }))
                    .await;
            } else if roll < 80 {
                // One field edited at once on every instance that has the record: real
                // conflicts for the rules and the merge to decide.
                let field = fields[rng.below(2) as usize].to_string();
                let mut edits = Vec::new();
                for (i, api) in apis.iter().enumerate() {
                    let (api, uid, field) = (api.clone(), uid.clone(), field.clone());
                    let value = format!("race {step} at {}", names[i]);
                    edits.push(tokio::spawn(async move {
                        let (status, record) =
                            api.get(&format!("/tables/{table}/records/uid/{uid}")).await;
                        if status == reqwest::StatusCode::OK {
                            let id = record["id"].as_i64().unwrap();
                            api.patch(
                                &format!("/tables/{table}/records/{id}"),
                                json!({ "values": { field: value } }),
                            )
                            .await;
                        }
                    }));
                }
                for edit in edits {
                    edit.await.unwrap();
                }
            } else if roll < 92 {
                api.delete(&path).await;
            } else {
                api.post(&format!("{path}/restore"), json!({})).await;
            }
        }
        // Now and then an instance is killed and started again on its address.
        if rng.below(60) == 0 && restarts < 3 {
            let victim = rng.below(4) as usize;
            let address = servers[victim].address();
            let placeholder = Server::start(&dir.path().join(format!("spare{step}")));
            let data = std::mem::replace(&mut servers[victim], placeholder).kill();
            servers[victim] = Server::start_at(&data, &address);
            apis[victim] = servers[victim].admin();
            restarts += 1;
        }
    }
    println!("{restarts} restart(s)");

    // Quiet everywhere, with held deletes approved as an operator would.
    eventually(120, "every instance the same", || async {
        for (at, sync) in &syncs {
            let (_, held) = apis[*at].get(&format!("/syncs/{sync}/held")).await;
            for h in held["held"].as_array().into_iter().flatten() {
                apis[*at]
                    .post(&format!("/syncs/{sync}/held/{}", h["id"]), json!({}))
                    .await;
            }
            let (_, s) = apis[*at].get(&format!("/syncs/{sync}/status")).await;
            if s["pending_out"] != 0 {
                return None;
            }
        }
        let first = census(&apis[0], table).await;
        for api in &apis[1..] {
            if census(api, table).await != first {
                return None;
            }
        }
        Some(())
    })
    .await;
    let result = census(&apis[0], table).await;
    let created = result.len();
    assert!(created > 0);
    // How many conflicts the syncs' rules decided on the way (for the report).
    let mut ruled = 0;
    for (at, sync) in &syncs {
        let (_, log) = apis[*at]
            .get(&format!("/syncs/{sync}/log?limit=1000"))
            .await;
        ruled += log["entries"].as_array().map_or(0, |e| {
            e.iter().filter(|e| e["detail"]["rule"].is_string()).count()
        });
    }
    println!(
        "{created} records, {} deleted, {ruled} conflicts decided by a rule, identical on all four",
        result.values().filter(|(s, _)| s == "deleted").count()
    );
}
