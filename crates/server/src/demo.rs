//! `crmsync demo`: two instances on loopback with sample data and an HTTP sync between
//! them, set up as the help page's first two cases: client Name, Address and Phone flow
//! one way (main → auxiliary); in Orders, payments flow down and the order status back up.

use crate::app::App;
use anyhow::{Context, Result};
use crmsync_domain::sync::{Direction, Mode, Secret};
use crmsync_domain::syncs::SyncInput;
use crmsync_domain::{Actor, FieldOptions, Origin, Value};
use crmsync_sync::protocol::ResendRequest;
use std::path::Path;

pub const ADMIN_PASSWORD: &str = "demo-admin-1";
const SYNC_PASSWORD: &str = "demo-sync-1";

const FIRST: [&str; 8] = [
    "Иван",
    "Ольга",
    "Пётр",
    "Анна",
    "Сергей",
    "Мария",
    "Дмитрий",
    "Елена",
];
const LAST: [&str; 8] = [
    "Иванов",
    "Петрова",
    "Смирнов",
    "Кузнецова",
    "Попов",
    "Соколова",
    "Лебедев",
    "Новикова",
];
const CITY: [&str; 6] = ["Москва", "Казань", "Пермь", "Омск", "Самара", "Тверь"];

fn admin(app: &App) -> Result<Actor> {
    let user = app
        .core
        .users()?
        .into_iter()
        .find(|u| u.login == "admin")
        .context("the admin user")?;
    Ok(Actor {
        user,
        origin: Origin::Api,
    })
}

/// Creates the tables, rows and both syncs. Returns the active sync's id.
pub async fn seed(main: &App, aux: &App, aux_url: &str, clients: usize) -> Result<i64> {
    let (m, a) = (admin(main)?, admin(aux)?);
    let text = |app: &App, actor: &Actor, table: i64, name: &str| -> Result<i64> {
        Ok(app
            .core
            .create_field(actor, table, name, "text", FieldOptions::default())?
            .no)
    };
    // Main: full client data and orders with payments.
    let m_clients = main.core.create_table(&m, "Clients")?.id;
    let mc: Vec<i64> = ["Name", "Address", "Phone", "Email", "Notes"]
        .iter()
        .map(|n| text(main, &m, m_clients, n))
        .collect::<Result<_>>()?;
    let m_orders = main.core.create_table(&m, "Orders")?.id;
    let m_number = text(main, &m, m_orders, "Number")?;
    let m_client = main
        .core
        .create_field(
            &m,
            m_orders,
            "Client",
            "link",
            FieldOptions {
                table_id: Some(m_clients),
                ..Default::default()
            },
        )?
        .no;
    let m_payment = main
        .core
        .create_field(&m, m_orders, "Payment", "money", FieldOptions::default())?
        .no;
    let status_options = FieldOptions {
        choices: Some(vec!["new".into(), "packed".into(), "shipped".into()]),
        ..Default::default()
    };
    let m_status = main
        .core
        .create_field(&m, m_orders, "Status", "select", status_options.clone())?
        .no;
    let rows: Vec<_> = (0..clients)
        .map(|i| {
            let name = format!("{} {}", FIRST[i % 8], LAST[i % 8]);
            vec![
                (mc[0], Value::Text(format!("{name} №{i}"))),
                (
                    mc[1],
                    Value::Text(format!("{}, ул. Ленина, {}", CITY[i % 6], 1 + i % 150)),
                ),
                (
                    mc[2],
                    Value::Text(format!(
                        "+7 9{:02} {:03}-{:02}-{:02}",
                        i % 100,
                        i % 1000,
                        i % 97,
                        i % 89
                    )),
                ),
                (mc[3], Value::Text(format!("client{i}@example.ru"))),
                (mc[4], Value::Text("только в главной базе".into())),
            ]
        })
        .collect();
    let client_ids = crate::records::create_many(main, m.clone(), m_clients, rows).await?;
    let orders = client_ids
        .iter()
        .step_by(4)
        .enumerate()
        .map(|(i, client)| {
            vec![
                (m_number, Value::Text(format!("З-{:05}", i + 1))),
                (m_client, Value::Link(*client)),
                (m_payment, Value::Money(((i % 50 + 1) * 150_000) as i64)),
                (m_status, Value::Text("new".into())),
            ]
        })
        .collect();
    crate::records::create_many(main, m.clone(), m_orders, orders).await?;

    // Auxiliary: the three client fields, and orders with payment and status.
    let a_clients = aux.core.create_table(&a, "Клиенты")?.id;
    let ac: Vec<i64> = ["Имя", "Адрес", "Телефон"]
        .iter()
        .map(|n| text(aux, &a, a_clients, n))
        .collect::<Result<_>>()?;
    let a_orders = aux.core.create_table(&a, "Заказы")?.id;
    let a_number = text(aux, &a, a_orders, "Номер")?;
    let a_payment = aux
        .core
        .create_field(&a, a_orders, "Оплата", "money", FieldOptions::default())?
        .no;
    let a_status = aux
        .core
        .create_field(&a, a_orders, "Статус", "select", status_options)?
        .no;

    // The passive side first (S-11), then the active side with its address.
    let passive = aux.core.create_sync(
        &a,
        SyncInput {
            name: Some("main office".into()),
            mode: Some(Mode::Passive),
            password: Some(Secret(SYNC_PASSWORD.into())),
            ..Default::default()
        },
    )?;
    let active = main.core.create_sync(
        &m,
        SyncInput {
            name: Some("auxiliary base".into()),
            mode: Some(Mode::Active),
            remote_access: Some(true),
            remote_url: Some(format!("{aux_url}/sync/v1/{}", passive.id)),
            password: Some(Secret(SYNC_PASSWORD.into())),
            period_seconds: Some(1),
            ..Default::default()
        },
    )?;
    let pairs = [
        (mc[0], ac[0], Direction::Upload, Direction::Download),
        (mc[1], ac[1], Direction::Upload, Direction::Download),
        (mc[2], ac[2], Direction::Upload, Direction::Download),
        (m_number, a_number, Direction::Upload, Direction::Download),
        (m_payment, a_payment, Direction::Upload, Direction::Download),
        (m_status, a_status, Direction::Download, Direction::Upload),
    ];
    for (main_field, aux_field, main_direction, aux_direction) in pairs {
        main.core
            .add_sync_field(&m, active.id, main_field, main_direction, None, None)?;
        aux.core.add_sync_field(
            &a,
            passive.id,
            aux_field,
            aux_direction,
            Some(main_field),
            None,
        )?;
    }
    Ok(active.id)
}

async fn bind(port: u16) -> Result<tokio::net::TcpListener> {
    match tokio::net::TcpListener::bind(("127.0.0.1", port)).await {
        Ok(listener) => Ok(listener),
        // Taken: any free port will do for a demo.
        Err(_) => Ok(tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?),
    }
}

pub fn run(dir: &Path, main_port: u16, aux_port: u16, clients: usize) -> Result<()> {
    let main = App::open(&dir.join("main"))?;
    let aux = App::open(&dir.join("aux"))?;
    main.core.ensure_admin(Some(ADMIN_PASSWORD))?;
    aux.core.ensure_admin(Some(ADMIN_PASSWORD))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let (main_listener, aux_listener) = (bind(main_port).await?, bind(aux_port).await?);
        let main_url = format!("http://{}", main_listener.local_addr()?);
        let aux_url = format!("http://{}", aux_listener.local_addr()?);
        let fresh = main.core.tables()?.is_empty();
        let seeded = if fresh {
            println!("creating {clients} sample clients and their orders…");
            Some(seed(&main, &aux, &aux_url, clients).await?)
        } else {
            None
        };
        let shutdown = std::sync::Arc::new(tokio::sync::Notify::new());
        for (app, listener) in [(aux.clone(), aux_listener), (main.clone(), main_listener)] {
            let shutdown = shutdown.clone();
            tokio::spawn(app.serve(listener, async move { shutdown.notified().await }));
        }
        if let Some(sync_id) = seeded {
            // Bring the existing rows across (S-17).
            let sync = main.core.sync(sync_id)?;
            let job = main.jobs.start();
            tokio::spawn(crate::sync::initial::run(
                main.clone(),
                sync,
                ResendRequest::default(),
                job.id,
            ));
        }
        println!("crmsync demo: two instances kept in sync over HTTP");
        println!("  main office:    {main_url}   (Clients, Orders)");
        println!("  auxiliary base: {aux_url}   (Клиенты, Заказы)");
        println!("  open either address in a browser and sign in as admin / {ADMIN_PASSWORD}");
        println!("  data in {}; Ctrl-C stops both", dir.display());
        println!("try: curl -u admin:{ADMIN_PASSWORD} {aux_url}/api/v1/tables/1/records?limit=3");
        tokio::signal::ctrl_c().await?;
        shutdown.notify_waiters();
        Ok(())
    })
}
