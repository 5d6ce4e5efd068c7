//! What the behaviours share: a change-log entry to write with a row, and a first table.

use crmsync_domain::clock::{Hlc, Stamp};
use crmsync_domain::record::NewRow;
use crmsync_domain::{
    Change, ChangeOp, FieldChange, FieldOptions, FieldType, RecordStatus, Store, Table, Value,
};
use uuid::Uuid;

/// A change-log entry of `op` as a sync (sync 1) writes it.
pub fn change(op: ChangeOp, hlc: Hlc, created: Vec<i64>, fields: Vec<FieldChange>) -> Change {
    Change {
        seq: 0,
        table_id: 1,
        record_id: 0,
        record_uid: Uuid::nil(),
        op,
        hlc,
        origin: crmsync_domain::Origin::Sync(1),
        user_id: None,
        at_ms: 1,
        created_fields: created,
        fields,
    }
}

/// A table "Clients" with one text field "Name", and this instance's node id.
pub fn clients_with_a_name<S: Store>(store: &S) -> (Table, Uuid) {
    let table = store
        .write(|tx| {
            let id = tx.create_table("Clients")?;
            tx.create_field(id, "Name", FieldType::Text, &FieldOptions::default())?;
            Ok(tx.tables()?.remove(0))
        })
        .unwrap();
    (table, store.read(|tx| tx.instance_id()).unwrap())
}

/// A new active record's row with field 1 set to `name`, all under `stamp`.
pub fn named_row(name: &str, stamp: Stamp) -> NewRow {
    NewRow {
        uid: Uuid::now_v7(),
        created_at_ms: 1,
        status: RecordStatus::Active,
        status_stamp: stamp,
        values: vec![(1, Value::Text(name.into()), stamp)],
    }
}

/// A passive HTTP sync named `name`, as `insert_sync` takes it.
pub fn passive_sync(name: &str) -> crmsync_domain::sync::SyncConfig {
    use crmsync_domain::sync::{
        ConflictPolicy, Mode, Secret, SyncConfig, TransportSettings, UserMatch,
    };
    SyncConfig {
        id: 0,
        name: name.into(),
        mode: Mode::Passive,
        transport: TransportSettings::Http,
        remote_access: false,
        remote_url: None,
        password: Secret::default(),
        log: true,
        period_seconds: 5,
        user_match: UserMatch::Login,
        mass_delete_percent: 20,
        conflict_policy: ConflictPolicy::Newer,
    }
}
