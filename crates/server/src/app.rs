//! Wiring: opens an instance's data directory and serves it on a bound listener.

use crate::database::{Database, DatabaseUrl};
use crate::files::FileStore;
use axum::serve::Listener;
use crmsync_domain::{DomainError, Instance, SystemClock};
use rustls_pki_types::CertificateDer;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The domain over the store chosen at start.
pub type Core = Instance<Database>;

/// Everything one running instance holds; cheap to clone into handlers.
#[derive(Clone)]
pub struct App {
    pub core: Arc<Core>,
    pub files: FileStore,
    pub data_dir: PathBuf,
    pub login_throttle: crate::api::LoginThrottle,
    /// Where passwords are hashed (argon2 takes 19 MiB and a core's worth of time each).
    pub password_hashers: crate::api::auth::PasswordHashers,
    /// This instance's address as peers should use it (`--public-url`), if set.
    pub public_url: Option<String>,
    pub syncs: crate::sync::SyncSignals,
    /// The HTTP client active syncs talk to their peers with.
    pub http: reqwest::Client,
    /// What peers' certificates are checked against (HTTPS and FTPS).
    pub tls_client: Arc<rustls::ClientConfig>,
    /// Whether this instance serves HTTPS (its passive syncs' addresses say so).
    pub serves_https: bool,
    pub instance_id: uuid::Uuid,
    pub jobs: crate::jobs::Jobs,
    /// Signed-in browsers.
    /// What each sync moved in the last hour (its dashboard).
    pub metrics: crate::sync::metrics::Metrics,
    /// How far each sync's peer's clock is from this one's, as last seen.
    pub peer_clocks: crate::sync::clocks::PeerClocks,
    /// One folder exchange at a time per sync.
    pub exchange_turns: crate::sync::ExchangeTurns,
    /// Why the last request for each drawing field's numbers failed (B-06).
    pub numbering_failures: crate::sync::numbering::NumberingFailures,
    /// Requests and answers travelling through folders (drift checks, numbers, matches).
    pub mailboxes: crate::sync::mailbox::Mailboxes,
    /// Packet files each folder sync refused.
    pub rejections: crate::sync::rejections::Rejections,
    /// Sync log entries older than this are removed (`--log-keep-days`).
    pub log_keep_days: u32,
    /// How long a sync that worked before may be red before `/api/v1/ready` says 503.
    pub ready_red_after: std::time::Duration,
    /// One initial sync at a time per sync.
    pub initial_turns: crate::sync::initial::InitialTurns,
    /// Every sync's channel keys (memory only).
    pub channels: crate::sync::channel::Channels,
    /// Each sync's field mapping while nothing it is built from changes.
    pub mappings: crate::sync::mappings::Mappings,
}

/// How long a client has to send a request's head (and how long a kept-alive connection
/// may sit idle).
/// Ten minutes red (a few missed periods are normal on a flaky line) before readiness fails.
pub const DEFAULT_READY_RED_AFTER_SECONDS: u64 = 600;
pub const HEADER_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// Connections open at once; more wait to be accepted until one closes.
pub const MAX_CONNECTIONS: usize = 768;

/// How long sync log entries are kept unless `--log-keep-days` says otherwise.
pub const DEFAULT_LOG_KEEP_DAYS: u32 = 30;

impl App {
    /// Opens (creating on first use) the instance stored in `data_dir` (its SQLite
    /// database and its files).
    pub fn open(data_dir: &Path) -> Result<App, DomainError> {
        let database = DatabaseUrl::Sqlite(data_dir.to_path_buf());
        App::open_with(data_dir, &database, Arc::new(SystemClock))
    }

    /// Opens the instance whose database is `database` and whose files are in `data_dir`,
    /// with `clock` (another clock: a machine whose clock is off, in tests).
    pub fn open_with(
        data_dir: &Path,
        database: &DatabaseUrl,
        clock: Arc<dyn crmsync_domain::Clock>,
    ) -> Result<App, DomainError> {
        let store = Database::open(database)?;
        let core = Arc::new(Instance::new(store, clock));
        let syncs = crate::sync::SyncSignals::default();
        let signals = syncs.clone();
        core.on_commit(move || signals.committed());
        let instance_id = core.instance_id()?;
        let tls_client = crate::tls::client_config(&[]).map_err(DomainError::Store)?;
        let http = http_client(&tls_client)?;
        let files = FileStore::open(&data_dir.join("files"))
            .map_err(|e| DomainError::Store(format!("file store: {e}")))?;
        Ok(App {
            core,
            files,
            data_dir: data_dir.to_path_buf(),
            login_throttle: Default::default(),
            password_hashers: crate::api::auth::PasswordHashers::start(
                crate::api::CONCURRENT_HASHES,
            ),
            public_url: None,
            syncs,
            http,
            tls_client,
            serves_https: false,
            instance_id,
            jobs: Default::default(),
            metrics: Default::default(),
            peer_clocks: Default::default(),
            exchange_turns: Default::default(),
            numbering_failures: Default::default(),
            mailboxes: Default::default(),
            rejections: Default::default(),
            log_keep_days: DEFAULT_LOG_KEEP_DAYS,
            ready_red_after: std::time::Duration::from_secs(DEFAULT_READY_RED_AFTER_SECONDS),
            initial_turns: Default::default(),
            channels: Default::default(),
            mappings: Default::default(),
        })
    }

    /// Trusts these certificates too when talking to peers (a peer's self-signed one).
    pub fn trust(&mut self, certificates: &[CertificateDer<'static>]) -> Result<(), DomainError> {
        self.tls_client = crate::tls::client_config(certificates).map_err(DomainError::Store)?;
        self.http = http_client(&self.tls_client)?;
        Ok(())
    }

    /// Opens an instance that must already exist (for the CLI's offline commands).
    pub fn open_existing(data_dir: &Path, database: &DatabaseUrl) -> Result<App, DomainError> {
        if !Database::exists(database)? {
            let place = match database {
                DatabaseUrl::Sqlite(_) => data_dir.display().to_string(),
                DatabaseUrl::Postgres(_) => database.shown(),
            };
            return Err(DomainError::not_found(format!(
                "there is no crmsync instance in {place} (start one with `crmsync serve --data {}`{})",
                data_dir.display(),
                match database {
                    DatabaseUrl::Sqlite(_) => String::new(),
                    DatabaseUrl::Postgres(_) => format!(" --database {}", database.shown()),
                }
            )));
        }
        App::open_with(data_dir, database, Arc::new(SystemClock))
    }

    /// Serves the API on `listener` (plain TCP or `tls::TlsListener`) until `shutdown`
    /// completes. Its own accept loop, so that a client cannot hold the process with
    /// connections that send nothing: a request's head must arrive within
    /// `HEADER_READ_TIMEOUT` (an idle kept-alive connection is closed after as long), and at
    /// most `MAX_CONNECTIONS` are open at once (further ones wait to be accepted).
    pub async fn serve<L>(
        self,
        mut listener: L,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()>
    where
        L: Listener<Addr = SocketAddr>,
    {
        use axum::extract::ConnectInfo;
        use hyper_util::rt::{TokioIo, TokioTimer};
        use hyper_util::service::TowerToHyperService;

        self.syncs.meet_neighbours(self.core.store());
        tokio::spawn(crate::sync::supervise(self.clone()));
        let router = crate::api::router(self);
        let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
        let (stopping, stop) = tokio::sync::watch::channel(false);
        let mut connections = tokio::task::JoinSet::new();
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            let slot = tokio::select! {
                slot = slots.clone().acquire_owned() => slot.expect("the semaphore stays open"),
                _ = &mut shutdown => break,
            };
            let (io, peer) = tokio::select! {
                accepted = listener.accept() => accepted,
                _ = &mut shutdown => break,
            };
            // The peer address keys the throttling of wrong passwords.
            let service = router.clone().layer(axum::Extension(ConnectInfo(peer)));
            let mut stop = stop.clone();
            connections.spawn(async move {
                let _slot = slot;
                let mut http = hyper::server::conn::http1::Builder::new();
                http.timer(TokioTimer::new())
                    .header_read_timeout(HEADER_READ_TIMEOUT);
                let connection =
                    http.serve_connection(TokioIo::new(io), TowerToHyperService::new(service));
                let mut connection = std::pin::pin!(connection);
                tokio::select! {
                    _ = connection.as_mut() => {}
                    _ = stop.changed() => {
                        connection.as_mut().graceful_shutdown();
                        let _ = connection.await;
                    }
                }
            });
            while connections.try_join_next().is_some() {}
        }
        let _ = stopping.send(true);
        while connections.join_next().await.is_some() {}
        Ok(())
    }
}

fn http_client(tls: &Arc<rustls::ClientConfig>) -> Result<reqwest::Client, DomainError> {
    reqwest::Client::builder()
        .connect_timeout(std::time::Duration::from_secs(10))
        // Peers close a connection idle for `HEADER_READ_TIMEOUT`: one is never reused
        // that close to it.
        .pool_idle_timeout(HEADER_READ_TIMEOUT / 2)
        .use_preconfigured_tls(rustls::ClientConfig::clone(tls))
        .build()
        .map_err(|e| DomainError::Store(format!("HTTP client: {e}")))
}
