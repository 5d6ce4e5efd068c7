//! Opening a store: a place opened again — also beside a store still open on it — is the
//! same instance with everything written before (its migrations run once); users and
//! browser sessions round-trip.

use crate::Backend;
use crate::fixtures::{change, clients_with_a_name, named_row};
use crmsync_domain::clock::{Hlc, Stamp};
use crmsync_domain::store::{NewUser, UserUpdate};
use crmsync_domain::web_session::WebSession;
use crmsync_domain::{ChangeOp, Role, Store};

pub fn a_store_opened_again_keeps_its_identity_and_everything_written<B: Backend>() {
    let place = B::new();
    let first = place.open();
    let (table, node) = clients_with_a_name(&first);
    let row = named_row("Anna", Stamp { hlc: Hlc(77), node });
    let id = first
        .write(|tx| {
            tx.set_last_hlc(Hlc(77))?;
            tx.insert_sync(&crate::fixtures::passive_sync("branch"))?;
            tx.insert_record(
                &table,
                &row,
                &change(ChangeOp::Create, Hlc(77), vec![1], vec![]),
            )
        })
        .unwrap();
    let seen = |store: &B::Store| {
        store
            .read(|tx| {
                Ok((
                    tx.instance_id()?,
                    tx.last_hlc()?,
                    tx.tables()?,
                    tx.record(&table, id)?.map(|r| r.record),
                    tx.syncs()?.into_iter().map(|s| s.name).collect::<Vec<_>>(),
                    tx.last_change_seq()?,
                    tx.config_version()?,
                ))
            })
            .unwrap()
    };
    let before = seen(&first);
    assert_eq!(before.0, node);
    assert_eq!(before.1, Hlc(77));
    assert_eq!(before.4, ["branch"]);
    let beside = place.open();
    assert_eq!(seen(&beside), before, "opened beside the first");
    drop(beside);
    drop(first);
    let again = place.open();
    assert_eq!(seen(&again), before, "opened again after both closed");
    let other_place = B::new();
    let other = other_place.open();
    assert_ne!(
        other.read(|tx| tx.instance_id()).unwrap(),
        node,
        "each new place is an instance of its own"
    );
}

pub fn users_and_web_sessions_round_trip<B: Backend>() {
    let place = B::new();
    let store = place.open();
    let id = store
        .write(|tx| {
            tx.insert_user(&NewUser {
                login: "anna",
                full_name: "Анна Петрова",
                role: Role::User,
                password_hash: "$argon2id$hash",
            })
        })
        .unwrap();
    let (user, hash) = store
        .read(|tx| tx.user_credentials("anna"))
        .unwrap()
        .unwrap();
    assert_eq!(
        (user.id, user.login.as_str(), user.full_name.as_str()),
        (id, "anna", "Анна Петрова")
    );
    assert_eq!(
        (user.role, user.active, hash.as_str()),
        (Role::User, true, "$argon2id$hash")
    );
    assert!(
        store
            .read(|tx| tx.user_credentials("nobody"))
            .unwrap()
            .is_none()
    );
    let duplicate = store.write(|tx| {
        tx.insert_user(&NewUser {
            login: "anna",
            full_name: "Another",
            role: Role::Admin,
            password_hash: "x",
        })
    });
    assert!(duplicate.is_err(), "a login is taken once");
    store
        .write(|tx| {
            tx.update_user(
                id,
                &UserUpdate {
                    role: Some(Role::Admin),
                    active: Some(false),
                    password_hash: Some("new".into()),
                    ..UserUpdate::default()
                },
            )
        })
        .unwrap();
    let (user, hash) = store
        .read(|tx| tx.user_credentials("anna"))
        .unwrap()
        .unwrap();
    assert_eq!(
        (
            user.role,
            user.active,
            hash.as_str(),
            user.full_name.as_str()
        ),
        (Role::Admin, false, "new", "Анна Петрова")
    );
    assert_eq!(store.read(|tx| tx.users()).unwrap(), vec![user]);

    let session = |last_seen_ms| WebSession {
        user_id: id,
        csrf: "csrf-token".into(),
        credentials: Some([7; 32]),
        role: Role::Admin,
        last_seen_ms,
    };
    let (a, b) = ([1u8; 32], [2u8; 32]);
    store
        .write(|tx| {
            tx.save_web_session(&a, &session(100))?;
            tx.save_web_session(&b, &session(300))?;
            tx.save_web_session(&a, &session(150))
        })
        .unwrap();
    assert_eq!(
        store.read(|tx| tx.web_session(&a)).unwrap(),
        Some(session(150))
    );
    assert_eq!(store.write(|tx| tx.expire_web_sessions(200)).unwrap(), 1);
    assert_eq!(store.read(|tx| tx.web_session(&a)).unwrap(), None);
    store.write(|tx| tx.delete_web_session(&b)).unwrap();
    assert_eq!(store.read(|tx| tx.web_session(&b)).unwrap(), None);
}
