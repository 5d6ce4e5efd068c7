//! Wake-ups between the crmsync processes on one database: a process that committed
//! records or changed a sync's settings says so with a `NOTIFY`; every process `LISTEN`s
//! on a connection of its own, so the runner in one process pushes a write made in another
//! as promptly as its own. Nothing is carried but which: the reader looks in the database.

use crate::PgStore;
use postgres::fallible_iterator::FallibleIterator;
use postgres::{Client, NoTls};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, LazyLock, Mutex};
use std::time::Duration;

/// What one process tells the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Announcement {
    /// Records (or what held ones wait for) were written.
    Committed,
    /// A sync's settings changed: its runner starts again with the new ones.
    SettingsChanged,
}

impl Announcement {
    const ALL: [Announcement; 2] = [Announcement::Committed, Announcement::SettingsChanged];

    fn channel(self) -> &'static str {
        match self {
            Announcement::Committed => "crmsync_committed",
            Announcement::SettingsChanged => "crmsync_settings",
        }
    }
}

/// How soon a lost connection is made again.
const RECONNECT_AFTER: Duration = Duration::from_secs(1);

/// Names this process in its notifications, so it does not wake itself a second time.
static THIS_PROCESS: LazyLock<String> = LazyLock::new(|| uuid::Uuid::now_v7().to_string());

/// Sends announcements from a thread and connection of its own: `announce` never waits,
/// and a burst of commits becomes one notification per round trip, not one per commit.
pub struct Announcer {
    shared: Arc<(Mutex<Due>, Condvar)>,
}

#[derive(Default)]
struct Due {
    committed: bool,
    settings: bool,
    stopped: bool,
}

impl PgStore {
    /// Starts the thread that sends this process's announcements.
    pub fn announcer(&self) -> Announcer {
        let shared: Arc<(Mutex<Due>, Condvar)> = Arc::default();
        let (config, due) = (self.pool.config().clone(), shared.clone());
        std::thread::Builder::new()
            .name("crmsync-announce".into())
            .spawn(move || send_announcements(&config, &due))
            .expect("a thread starts");
        Announcer { shared }
    }

    /// Starts the thread that hears other processes' announcements and hands each to
    /// `heard` (both, after a connection was made again: some may have been missed).
    pub fn listen(&self, heard: impl Fn(Announcement) + Send + 'static) -> Listening {
        let stop = Arc::new(AtomicBool::new(false));
        let (config, stopped) = (self.pool.config().clone(), stop.clone());
        std::thread::Builder::new()
            .name("crmsync-listen".into())
            .spawn(move || hear_announcements(&config, &stopped, &heard))
            .expect("a thread starts");
        Listening { stop }
    }
}

impl Announcer {
    pub fn announce(&self, what: Announcement) {
        let (due, wake) = &*self.shared;
        let mut due = due.lock().unwrap_or_else(|e| e.into_inner());
        match what {
            Announcement::Committed => due.committed = true,
            Announcement::SettingsChanged => due.settings = true,
        }
        wake.notify_one();
    }
}

impl Drop for Announcer {
    fn drop(&mut self) {
        let (due, wake) = &*self.shared;
        due.lock().unwrap_or_else(|e| e.into_inner()).stopped = true;
        wake.notify_one();
    }
}

fn send_announcements(config: &postgres::Config, shared: &(Mutex<Due>, Condvar)) {
    let (due, wake) = shared;
    let mut client: Option<Client> = None;
    loop {
        let (committed, settings) = {
            let mut due = due.lock().unwrap_or_else(|e| e.into_inner());
            while !due.committed && !due.settings && !due.stopped {
                due = wake.wait(due).unwrap_or_else(|e| e.into_inner());
            }
            if due.stopped {
                return;
            }
            (
                std::mem::take(&mut due.committed),
                std::mem::take(&mut due.settings),
            )
        };
        let sent = (|| {
            let client = match &mut client {
                Some(c) if !c.is_closed() => c,
                _ => client.insert(config.connect(NoTls)?),
            };
            for (what, due) in [
                (Announcement::Committed, committed),
                (Announcement::SettingsChanged, settings),
            ] {
                if due {
                    client.execute(
                        "SELECT pg_notify($1, $2)",
                        &[&what.channel(), &THIS_PROCESS.as_str()],
                    )?;
                }
            }
            Ok::<(), postgres::Error>(())
        })();
        if sent.is_err() {
            // Kept due and sent once the database answers again.
            client = None;
            let mut due = due.lock().unwrap_or_else(|e| e.into_inner());
            due.committed |= committed;
            due.settings |= settings;
            drop(due);
            std::thread::sleep(RECONNECT_AFTER);
        }
    }
}

/// Hears other processes until dropped.
pub struct Listening {
    stop: Arc<AtomicBool>,
}

impl Drop for Listening {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// How often the listening thread looks whether it should stop.
const LOOK_FOR_STOP: Duration = Duration::from_secs(1);

fn hear_announcements(config: &postgres::Config, stop: &AtomicBool, heard: &dyn Fn(Announcement)) {
    while !stop.load(Ordering::Relaxed) {
        let listening = config.connect(NoTls).and_then(|mut client| {
            client.batch_execute(
                &Announcement::ALL
                    .map(|a| format!("LISTEN {};", a.channel()))
                    .concat(),
            )?;
            Ok(client)
        });
        let Ok(mut client) = listening else {
            std::thread::sleep(RECONNECT_AFTER);
            continue;
        };
        // Whatever was announced while no connection listened is looked at now.
        Announcement::ALL.into_iter().for_each(heard);
        while !stop.load(Ordering::Relaxed) && !client.is_closed() {
            let mut notifications = client.notifications();
            let mut batch = notifications.timeout_iter(LOOK_FOR_STOP);
            let mut broken = false;
            loop {
                match batch.next() {
                    Ok(Some(notification)) if notification.payload() != THIS_PROCESS.as_str() => {
                        let what = Announcement::ALL
                            .into_iter()
                            .find(|a| a.channel() == notification.channel());
                        what.into_iter().for_each(heard);
                    }
                    Ok(Some(_own)) => {}
                    Ok(None) => break,
                    Err(_) => {
                        broken = true;
                        break;
                    }
                }
            }
            if broken {
                break;
            }
        }
    }
}
