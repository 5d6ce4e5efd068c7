//! Any file given to a CSV import, into a real SQLite instance: every counted row written,
//! or nothing and the reason; never a panic.
#![no_main]

use crmsync::csv_io::{self, ImportOptions};
use crmsync_domain::{Actor, Instance, Origin, Store, SystemClock};
use libfuzzer_sys::fuzz_target;
use std::io::Cursor;
use std::sync::{Arc, OnceLock};

struct Leads {
    core: crmsync::Core,
    actor: Actor,
    table: i64,
    _dir: tempfile::TempDir,
}

fn leads() -> &'static Leads {
    static LEADS: OnceLock<Leads> = OnceLock::new();
    LEADS.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let store = crmsync_store_sqlite::SqliteStore::open(dir.path()).unwrap();
        let core = Instance::new(store, Arc::new(SystemClock));
        core.ensure_admin(Some("fuzz-admin-password")).unwrap();
        let actor = Actor {
            user: core.users().unwrap().remove(0),
            origin: Origin::Import,
        };
        let table = core.create_table(&actor, "Leads").unwrap().id;
        for (name, kind) in [("Name", "text"), ("Amount", "money"), ("Due", "date"), ("Count", "number"), ("Owner", "user")] {
            core.create_field(&actor, table, name, kind, Default::default()).unwrap();
        }
        Leads { core, actor, table, _dir: dir }
    })
}

fuzz_target!(|bytes: &[u8]| {
    let leads = leads();
    let changes = || leads.core.store().read(|tx| tx.change_count()).unwrap();
    let before = changes();
    let rows = csv_io::count_rows(Cursor::new(bytes), ImportOptions::default()).ok();
    match csv_io::import(&leads.core, &leads.actor, leads.table, Cursor::new(bytes), ImportOptions::default()) {
        Ok(report) => {
            assert_eq!(Some(report.imported), rows);
            assert_eq!(changes() - before, report.imported as u64);
        }
        Err(_) => assert_eq!(changes(), before, "half an import written"),
    }
});
