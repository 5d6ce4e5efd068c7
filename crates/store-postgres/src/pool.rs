//! The store's connections to PostgreSQL: at most `max_connections` open at once (callers
//! wait for one, up to `pool_timeout`), each with a bounded cache of prepared statements,
//! and the timeouts an OLTP server wants (connect, lock wait, statement) unless the URL
//! names its own.

use crate::pg_error;
use crmsync_domain::DomainError;
use crmsync_domain::store::StoreResult;
use hashlink::LruCache;
use postgres::{Client, Config, NoTls, Statement};
use std::ops::{Deref, DerefMut};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Idle connections kept for the next transaction.
const MAX_IDLE_CONNECTIONS: usize = 8;
/// Prepared statements kept per connection, the least recently used dropped first (and
/// closed on the server): a packet's merge uses a few dozen; more would only grow.
pub const STATEMENT_CACHE_CAPACITY: usize = 128;
/// How long a TCP connection to the server may take, unless the URL says
/// (`connect_timeout=SECONDS`).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Session settings unless the URL's `options` sets them: a writer waiting on a lock
/// fails instead of queueing forever, and no statement holds a connection for minutes.
const DEFAULT_SESSION_SETTINGS: [(&str, &str); 2] =
    [("lock_timeout", "30s"), ("statement_timeout", "60s")];

/// How many connections the store opens and how long a caller waits for one; also from
/// the URL's `pool_max_connections=N` and `pool_timeout=SECONDS` (crmsync's own
/// parameters, taken out before the URL reaches the driver).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolLimits {
    pub max_connections: usize,
    pub wait: Duration,
}

impl Default for PoolLimits {
    fn default() -> Self {
        PoolLimits {
            max_connections: 16,
            wait: Duration::from_secs(30),
        }
    }
}

/// The driver's configuration for `url` with crmsync's defaults, and the pool's limits.
pub(crate) fn parse_url(url: &str) -> StoreResult<(Config, PoolLimits)> {
    let mut limits = PoolLimits::default();
    let driver_url = match url.split_once('?') {
        None => url.to_string(),
        Some((address, query)) => {
            let mut kept = Vec::new();
            for parameter in query.split('&') {
                let (key, value) = parameter.split_once('=').unwrap_or((parameter, ""));
                let number = || {
                    value.parse::<u64>().ok().filter(|n| *n > 0).ok_or_else(|| {
                        DomainError::invalid(format!(
                            "the database URL's {key} must be a whole number above 0"
                        ))
                    })
                };
                match key {
                    "pool_max_connections" => limits.max_connections = number()? as usize,
                    "pool_timeout" => limits.wait = Duration::from_secs(number()?),
                    _ => kept.push(parameter),
                }
            }
            match kept.is_empty() {
                true => address.to_string(),
                false => format!("{address}?{}", kept.join("&")),
            }
        }
    };
    let mut config: Config = driver_url.parse().map_err(pg_error)?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    let mut options = config.get_options().unwrap_or_default().to_string();
    for (name, value) in DEFAULT_SESSION_SETTINGS {
        if !options.contains(name) {
            options = format!("{options} -c {name}={value}")
                .trim_start()
                .to_string();
        }
    }
    config.options(&options);
    if config.get_application_name().is_none() {
        config.application_name("crmsync");
    }
    Ok((config, limits))
}

/// A client with the statements it has prepared (a statement belongs to its connection).
pub(crate) struct Connection {
    pub(crate) client: Client,
    pub(crate) statements: LruCache<String, Statement>,
}

pub(crate) struct Pool {
    config: Config,
    limits: PoolLimits,
    state: Mutex<PoolState>,
    /// Signalled when a connection is given back or closed.
    freed: Condvar,
}

struct PoolState {
    idle: Vec<Connection>,
    /// Connections open, idle or in use (or being opened).
    open: usize,
}

impl Pool {
    pub(crate) fn new(config: Config, limits: PoolLimits) -> Pool {
        Pool {
            config,
            limits,
            state: Mutex::new(PoolState {
                idle: Vec::new(),
                open: 0,
            }),
            freed: Condvar::new(),
        }
    }

    /// The driver's configuration, for connections kept outside the pool (a sync's lease,
    /// announcements).
    pub(crate) fn config(&self) -> &Config {
        &self.config
    }

    fn state(&self) -> MutexGuard<'_, PoolState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// An idle connection, a new one while fewer than `max_connections` are open, or the
    /// first given back within `wait`.
    pub(crate) fn get(&self) -> StoreResult<Pooled<'_>> {
        let deadline = Instant::now() + self.limits.wait;
        let mut state = self.state();
        loop {
            while let Some(conn) = state.idle.pop() {
                if !conn.client.is_closed() {
                    return Ok(Pooled {
                        pool: self,
                        conn: Some(conn),
                    });
                }
                state.open -= 1;
            }
            if state.open < self.limits.max_connections {
                state.open += 1;
                drop(state);
                return match self.connect() {
                    Ok(conn) => Ok(Pooled {
                        pool: self,
                        conn: Some(conn),
                    }),
                    Err(e) => {
                        self.state().open -= 1;
                        self.freed.notify_one();
                        Err(e)
                    }
                };
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(DomainError::Store(format!(
                    "all {} connections to PostgreSQL stayed busy for {} s \
                     (the URL's pool_max_connections and pool_timeout set these)",
                    self.limits.max_connections,
                    self.limits.wait.as_secs_f64()
                )));
            }
            state = self
                .freed
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    fn connect(&self) -> StoreResult<Connection> {
        let client = self.config.connect(NoTls).map_err(|e| {
            let timeout = self.config.get_connect_timeout().copied();
            match e.as_db_error() {
                Some(_) => pg_error(e),
                None => DomainError::Store(format!(
                    "cannot connect to PostgreSQL at {} (connect timeout {} s): {e}",
                    self.address(),
                    timeout.unwrap_or_default().as_secs_f64()
                )),
            }
        })?;
        Ok(Connection {
            client,
            statements: LruCache::new(STATEMENT_CACHE_CAPACITY),
        })
    }

    /// Hosts and ports, for errors (never the user or password).
    fn address(&self) -> String {
        let hosts: Vec<String> = self
            .config
            .get_hosts()
            .iter()
            .map(|host| match host {
                postgres::config::Host::Tcp(name) => name.clone(),
                postgres::config::Host::Unix(path) => path.display().to_string(),
            })
            .collect();
        let ports: Vec<String> = self.config.get_ports().iter().map(u16::to_string).collect();
        format!("{}:{}", hosts.join(","), ports.join(","))
    }

    fn give_back(&self, conn: Connection) {
        let mut state = self.state();
        if state.idle.len() < MAX_IDLE_CONNECTIONS && !conn.client.is_closed() {
            state.idle.push(conn);
        } else {
            state.open -= 1;
            drop(state);
            drop(conn);
        }
        self.freed.notify_one();
    }

    /// The most prepared statements any idle connection holds.
    pub(crate) fn most_cached_statements(&self) -> usize {
        let state = self.state();
        state
            .idle
            .iter()
            .map(|c| c.statements.len())
            .max()
            .unwrap_or(0)
    }
}

impl Drop for Pool {
    /// A client closes by blocking on a runtime of its own, which panics on a thread that
    /// drives async tasks (a server dropping its store as it stops): close them on a thread
    /// of their own.
    fn drop(&mut self) {
        let state = self.state.get_mut().unwrap_or_else(|p| p.into_inner());
        let idle = std::mem::take(&mut state.idle);
        if !idle.is_empty() {
            let _ = std::thread::spawn(move || drop(idle)).join();
        }
    }
}

/// A connection taken from the pool, given back when dropped (also on a panic).
pub(crate) struct Pooled<'p> {
    pool: &'p Pool,
    conn: Option<Connection>,
}

impl Deref for Pooled<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        self.conn
            .as_ref()
            .expect("a pooled connection until dropped")
    }
}

impl DerefMut for Pooled<'_> {
    fn deref_mut(&mut self) -> &mut Connection {
        self.conn
            .as_mut()
            .expect("a pooled connection until dropped")
    }
}

impl Drop for Pooled<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            self.pool.give_back(conn);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_url_keeps_its_own_settings_and_gets_the_defaults_it_lacks() {
        let (config, limits) = parse_url(
            "postgres://u@db:5433/crm?connect_timeout=3&pool_max_connections=4&pool_timeout=2\
             &options=-c%20lock_timeout%3D1s",
        )
        .unwrap();
        assert_eq!(config.get_connect_timeout(), Some(&Duration::from_secs(3)));
        assert_eq!(
            limits,
            PoolLimits {
                max_connections: 4,
                wait: Duration::from_secs(2)
            }
        );
        assert_eq!(
            config.get_options(),
            Some("-c lock_timeout=1s -c statement_timeout=60s")
        );
        let (config, limits) = parse_url("postgres://u@db/crm").unwrap();
        assert_eq!(config.get_connect_timeout(), Some(&CONNECT_TIMEOUT));
        assert_eq!(limits, PoolLimits::default());
        assert_eq!(
            config.get_options(),
            Some("-c lock_timeout=30s -c statement_timeout=60s")
        );
        assert!(parse_url("postgres://u@db/crm?pool_max_connections=0").is_err());
    }
}
