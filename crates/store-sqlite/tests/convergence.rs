//! Merging is order-independent: two replicas that receive the same stamped writes in
//! different orders (and some twice) end with the same values, stamps and statuses — the
//! property that makes every instance agree (B-01, B-02). Seeded, so a failure repeats.

use crmsync_domain::clock::{Hlc, Stamp};
use crmsync_domain::merge::MergeItem;
use crmsync_domain::{
    Actor, FieldOptions, Instance, Origin, RecordStatus, Role, Store, SystemClock, User, Value,
};
use crmsync_store_sqlite::SqliteStore;
use std::sync::Arc;
use uuid::Uuid;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn replica(dir: &std::path::Path) -> (Instance<SqliteStore>, Actor, i64, Vec<i64>) {
    let core = Instance::new(SqliteStore::open(dir).unwrap(), Arc::new(SystemClock));
    core.ensure_admin(Some("password-1")).unwrap();
    let admin = Actor {
        user: core.users().unwrap().remove(0),
        origin: Origin::Api,
    };
    let table = core.create_table(&admin, "T").unwrap().id;
    let fields = (0..3)
        .map(|i| {
            core.create_field(
                &admin,
                table,
                &format!("F{i}"),
                "text",
                FieldOptions::default(),
            )
            .unwrap()
            .no
        })
        .collect();
    let sync = Actor {
        user: User {
            id: 0,
            login: "sync".into(),
            full_name: "sync".into(),
            role: Role::User,
            active: true,
        },
        origin: Origin::Sync(1),
    };
    (core, sync, table, fields)
}

#[test]
fn replicas_converge_whatever_the_order_of_delivery() {
    for seed in 1..=20u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let uids: Vec<Uuid> = (0..4).map(|_| Uuid::now_v7()).collect();
        let nodes = [Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7()];
        // Each write has a stamp of its own; values repeat on purpose (the same value
        // written independently on two nodes).
        let mut writes = Vec::new();
        for hlc in 1..=60u64 {
            let stamp = Stamp {
                hlc: Hlc(hlc),
                node: nodes[rng.below(3) as usize],
            };
            let uid = uids[rng.below(4) as usize];
            let status = if rng.below(5) == 0 {
                RecordStatus::Deleted
            } else {
                RecordStatus::Active
            };
            let field = rng.below(3) as usize;
            let value = match rng.below(4) {
                0 => Value::Null,
                n => Value::Text(format!("v{n}")),
            };
            writes.push((uid, status, stamp, field, value));
        }
        let dirs = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (a, actor_a, table_a, fields_a) = replica(dirs.0.path());
        let (b, actor_b, table_b, fields_b) = replica(dirs.1.path());
        let item = |w: &(Uuid, RecordStatus, Stamp, usize, Value), fields: &[i64]| MergeItem {
            uid: w.0,
            status: w.1,
            status_stamp: w.2,
            values: vec![(fields[w.3], w.4.clone(), w.2)],
            created_at_ms: None,
        };
        for w in &writes {
            a.merge(&actor_a, table_a, vec![item(w, &fields_a)])
                .unwrap();
        }
        let mut shuffled = writes.clone();
        for i in (1..shuffled.len()).rev() {
            shuffled.swap(i, rng.below(i as u64 + 1) as usize);
        }
        shuffled.extend(writes.iter().take(10).cloned()); // some delivered twice
        for w in &shuffled {
            b.merge(&actor_b, table_b, vec![item(w, &fields_b)])
                .unwrap();
        }
        for uid in &uids {
            let (ta, tb) = (a.table(table_a).unwrap(), b.table(table_b).unwrap());
            let ra = a.store().read(|tx| tx.record_by_uid(&ta, *uid)).unwrap();
            let rb = b.store().read(|tx| tx.record_by_uid(&tb, *uid)).unwrap();
            match (ra, rb) {
                (None, None) => {}
                (Some(ra), Some(rb)) => {
                    assert_eq!(
                        ra.record.status, rb.record.status,
                        "seed {seed}: status of {uid}"
                    );
                    assert_eq!(
                        ra.status_stamp, rb.status_stamp,
                        "seed {seed}: status stamp of {uid}"
                    );
                    for (fa, fb) in fields_a.iter().zip(&fields_b) {
                        assert_eq!(
                            ra.record.values.get(fa),
                            rb.record.values.get(fb),
                            "seed {seed}: value of {uid}"
                        );
                        assert_eq!(
                            ra.stamps.get(fa),
                            rb.stamps.get(fb),
                            "seed {seed}: stamp of {uid}"
                        );
                    }
                }
                (ra, rb) => panic!("seed {seed}: {uid} exists on one side only: {ra:?} {rb:?}"),
            }
        }
    }
}
