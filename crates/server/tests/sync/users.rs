//! User fields matched by full name and by id (S-21), end to end like by login; two sides
//! that match differently are told so on both ends; a user with no active match here is
//! held with the reason until one exists.

use super::folders::local_sync;
use super::http::{add_field, pair};
use crate::common::{Client, Server, eventually};
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn user(api: &Client, login: &str, full_name: &str) -> i64 {
    let (code, body) = api
        .post(
            "/users",
            json!({ "login": login, "full_name": full_name, "password": "secret-pass-1", "role": "user" }),
        )
        .await;
    assert_eq!(code, StatusCode::CREATED, "{body}");
    body["id"].as_i64().unwrap()
}

/// Tasks (Title, Owner: a user field) on one side; returns (table, [title, owner]).
async fn tasks(api: &Client) -> (i64, [i64; 2]) {
    let table = api.create_table("Tasks").await;
    let title = api.create_field(table, "Title", "text", json!({})).await;
    let owner = api.create_field(table, "Owner", "user", json!({})).await;
    (table, [title, owner])
}

async fn set_user_match(api: &Client, sync: i64, how: &str) {
    let (code, body) = api
        .patch(&format!("/syncs/{sync}"), json!({ "user_match": how }))
        .await;
    assert_eq!(code, StatusCode::OK, "{body}");
}

/// Tasks on both sides, synced over HTTP both ways: (main's table and fields, aux's, and
/// the active and passive sync).
struct TaskSync {
    m_table: i64,
    m: [i64; 2],
    a_table: i64,
    a: [i64; 2],
    active: i64,
    passive: i64,
}

async fn task_sync(main_api: &Client, aux_api: &Client) -> TaskSync {
    let (m_table, m) = tasks(main_api).await;
    let (a_table, a) = tasks(aux_api).await;
    let (active, passive) = pair(main_api, aux_api, "123456").await;
    for (mine, theirs) in m.iter().zip(a) {
        add_field(main_api, active, *mine, "both", None).await;
        add_field(aux_api, passive, theirs, "both", Some(*mine)).await;
    }
    TaskSync {
        m_table,
        m,
        a_table,
        a,
        active,
        passive,
    }
}

/// Both sides of the task sync match users `how`.
async fn match_users_by(main_api: &Client, aux_api: &Client, t: &TaskSync, how: &str) {
    set_user_match(main_api, t.active, how).await;
    set_user_match(aux_api, t.passive, how).await;
}

/// A task made on main for `owner`, who has no match on aux: it arrives there without its
/// owner, held; returns the held change's reason.
async fn task_held_on_aux(
    main_api: &Client,
    aux_api: &Client,
    t: &TaskSync,
    title: &str,
    owner: i64,
) -> String {
    main_api
        .create_record(
            t.m_table,
            json!({ t.m[0].to_string(): title, t.m[1].to_string(): owner }),
        )
        .await;
    assert_eq!(owner_on(aux_api, t.a_table, t.a, title).await, Value::Null);
    held_reason(aux_api, t.passive).await
}

async fn owner_on(api: &Client, table: i64, f: [i64; 2], title: &str) -> Value {
    eventually(30, "the task on the other side", || async {
        let (_, page) = api.get(&format!("/tables/{table}/records?limit=100")).await;
        page["records"]
            .as_array()?
            .iter()
            .find(|r| r["values"][f[0].to_string()] == title)
            .map(|r| r["values"][f[1].to_string()].clone())
    })
    .await
}

#[tokio::test]
async fn users_match_by_full_name_and_by_id_and_a_mismatch_is_shown_on_both_sides() {
    let dir = tempfile::tempdir().unwrap();
    let main = Server::start(&dir.path().join("main"));
    let aux = Server::start(&dir.path().join("aux"));
    let (main_api, aux_api) = (main.admin(), aux.admin());
    // The same people under other logins; ids line up only by creation order.
    let anna_main = user(&main_api, "anna", "Анна Петрова").await;
    let boris_main = user(&main_api, "boris", "Борис Иванов").await;
    let boris_aux = user(&aux_api, "b.ivanov", "Борис Иванов").await;
    let anna_aux = user(&aux_api, "a.petrova", "Анна Петрова").await;
    assert_eq!((anna_main, boris_aux), (2, 2), "ids as the test expects");
    let t = task_sync(&main_api, &aux_api).await;
    let TaskSync {
        m_table,
        m,
        a_table,
        a,
        active,
        passive,
    } = t;

    // By full name: Anna is Anna on both sides, whatever her login and id.
    match_users_by(&main_api, &aux_api, &t, "full_name").await;
    main_api
        .create_record(
            m_table,
            json!({ m[0].to_string(): "call", m[1].to_string(): anna_main }),
        )
        .await;
    assert_eq!(owner_on(&aux_api, a_table, a, "call").await, anna_aux);
    aux_api
        .create_record(
            a_table,
            json!({ a[0].to_string(): "visit", a[1].to_string(): boris_aux }),
        )
        .await;
    assert_eq!(owner_on(&main_api, m_table, m, "visit").await, boris_main);
    for (api, sync) in [(&main_api, active), (&aux_api, passive)] {
        let (_, s) = api.get(&format!("/syncs/{sync}/status")).await;
        assert_eq!(s["user_match_warning"], Value::Null, "{s}");
    }

    // By id: user 2 is user 2, whoever that is on each side.
    match_users_by(&main_api, &aux_api, &t, "id").await;
    main_api
        .create_record(
            m_table,
            json!({ m[0].to_string(): "mail", m[1].to_string(): anna_main }),
        )
        .await;
    assert_eq!(owner_on(&aux_api, a_table, a, "mail").await, boris_aux);

    // The sides disagree: both statuses say so.
    set_user_match(&aux_api, passive, "login").await;
    for (api, sync) in [(&main_api, active), (&aux_api, passive)] {
        let warning = eventually(30, "the mismatch shown", || async {
            let (_, s) = api.get(&format!("/syncs/{sync}/status")).await;
            s["user_match_warning"].as_str().map(str::to_string)
        })
        .await;
        assert!(warning.contains("match users differently"), "{warning}");
    }
    let html = aux.web_page(&format!("/syncs/{passive}"), "en").await;
    assert!(html.contains("match users differently"), "{html}");
}

#[tokio::test]
async fn over_folders_a_user_match_mismatch_is_shown_too() {
    let dir = tempfile::tempdir().unwrap();
    let (up, down) = (dir.path().join("up"), dir.path().join("down"));
    let main = Server::start(&dir.path().join("main"));
    let aux = Server::start(&dir.path().join("aux"));
    let (main_api, aux_api) = (main.admin(), aux.admin());
    let (m_table, m) = tasks(&main_api).await;
    let (a_table, a) = tasks(&aux_api).await;
    let active = local_sync(&main_api, "active", &up, &down).await;
    let passive = local_sync(&aux_api, "passive", &down, &up).await;
    set_user_match(&aux_api, passive, "full_name").await;
    for (mine, theirs) in m.iter().zip(a) {
        add_field(&main_api, active, *mine, "both", None).await;
        add_field(&aux_api, passive, theirs, "both", Some(*mine)).await;
    }
    main_api
        .create_record(m_table, json!({ m[0].to_string(): "call" }))
        .await;
    // Each side's packet files say how it matches users.
    aux_api
        .create_record(a_table, json!({ a[0].to_string(): "visit" }))
        .await;
    for (api, sync) in [(&aux_api, passive), (&main_api, active)] {
        let warning = eventually(30, "the mismatch shown", || async {
            let (_, s) = api.get(&format!("/syncs/{sync}/status")).await;
            s["user_match_warning"].as_str().map(str::to_string)
        })
        .await;
        assert!(warning.contains("by login"), "{warning}");
    }
}

/// The quarantined change's reason on `api`'s side, once there is one.
async fn held_reason(api: &Client, sync: i64) -> String {
    eventually(30, "the owner held", || async {
        let (_, list) = api.get(&format!("/syncs/{sync}/held")).await;
        list["held"]
            .as_array()?
            .iter()
            .find(|h| h["kind"] == "quarantine")
            .map(|h| h["reason"].as_str().unwrap().to_string())
    })
    .await
}

#[tokio::test]
async fn a_user_with_no_match_by_full_name_or_by_id_is_held_until_the_account_exists() {
    let dir = tempfile::tempdir().unwrap();
    let main = Server::start(&dir.path().join("main"));
    let aux = Server::start(&dir.path().join("aux"));
    let (main_api, aux_api) = (main.admin(), aux.admin());
    // aux has only its admin (user 1); main has two more people.
    let anna_main = user(&main_api, "anna", "Анна Петрова").await;
    let boris_main = user(&main_api, "boris", "Борис Иванов").await;
    let t = task_sync(&main_api, &aux_api).await;
    let (a_table, a) = (t.a_table, t.a);

    // By full name: nobody called Анна Петрова on aux, whatever the logins or ids.
    match_users_by(&main_api, &aux_api, &t, "full_name").await;
    let reason = task_held_on_aux(&main_api, &aux_api, &t, "call", anna_main).await;
    assert!(reason.contains("Анна Петрова"), "{reason}");
    // Her account, under another login: the held owner lands.
    let anna_aux = user(&aux_api, "a.petrova", "Анна Петрова").await;
    eventually(45, "Anna as the owner on aux", || async {
        (owner_on(&aux_api, a_table, a, "call").await == anna_aux).then_some(())
    })
    .await;

    // By id: main's user 3 has no account 3 on aux (only 1 and 2) until one is made.
    match_users_by(&main_api, &aux_api, &t, "id").await;
    assert_eq!(boris_main, 3, "ids as the test expects");
    let reason = task_held_on_aux(&main_api, &aux_api, &t, "visit", boris_main).await;
    assert!(reason.contains("no user matches 3"), "{reason}");
    let third = user(&aux_api, "someone", "Кто-то третий").await;
    assert_eq!(third, 3);
    eventually(45, "user 3 as the owner on aux", || async {
        (owner_on(&aux_api, a_table, a, "visit").await == third).then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_user_whose_account_here_is_deactivated_is_held_until_an_active_one_matches() {
    let dir = tempfile::tempdir().unwrap();
    let main = Server::start(&dir.path().join("main"));
    let aux = Server::start(&dir.path().join("aux"));
    let (main_api, aux_api) = (main.admin(), aux.admin());
    let olga_main = user(&main_api, "olga", "Ольга").await;
    let olga_aux = user(&aux_api, "olga", "Ольга").await;
    let (code, _) = aux_api.delete(&format!("/users/{olga_aux}")).await;
    assert_eq!(
        code,
        StatusCode::NO_CONTENT,
        "removing a user deactivates it"
    );
    let t = task_sync(&main_api, &aux_api).await;
    let (a_table, a) = (t.a_table, t.a);
    match_users_by(&main_api, &aux_api, &t, "full_name").await;
    let reason = task_held_on_aux(&main_api, &aux_api, &t, "call", olga_main).await;
    assert!(
        reason.contains("olga") && reason.contains("deactivated"),
        "{reason}"
    );
    // An active account of the same name: the held owner lands on it, not on the old one.
    let olga_again = user(&aux_api, "o.smirnova", "Ольга").await;
    eventually(45, "the active Ольга as the owner", || async {
        (owner_on(&aux_api, a_table, a, "call").await == olga_again).then_some(())
    })
    .await;
}
