//! The `crmsync` command line.

use crate::app::App;
use crate::csv_io::{self, CsvEncoding, ExportOptions, ImportOptions};
use crate::database::DatabaseUrl;
use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use crmsync_domain::record::StatusFilter;
use crmsync_domain::{Actor, Origin};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "crmsync",
    version,
    about = "A self-hosted CRM data server that keeps several instances in sync",
    long_about = "crmsync runs a CRM instance (tables, fields, records, users) on an embedded \
SQLite database and serves its REST API under /api/v1. Everything an instance keeps \
lives in its data directory (--data): the database crmsync.db and the files/ folder."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// How the server log on standard error is written: `text` for people, `json` (one
    /// object per line) for a log collector. `RUST_LOG` chooses what is logged.
    #[arg(long, global = true, value_enum, env = "CRMSYNC_LOG_FORMAT", default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run an instance: the REST API on --listen, data in --data (created on first start).
    Serve {
        /// The instance's data directory.
        #[arg(long, value_name = "DIR", env = "CRMSYNC_DATA")]
        data: PathBuf,
        #[command(flatten)]
        database: DatabaseArg,
        /// Address to listen on; port 0 picks a free port.
        #[arg(
            long,
            value_name = "HOST:PORT",
            env = "CRMSYNC_LISTEN",
            default_value = "127.0.0.1:8080"
        )]
        listen: String,
        /// Password for the `admin` user created on the first start (else one is generated
        /// and printed once). Ignored once users exist.
        #[arg(long, env = "CRMSYNC_ADMIN_PASSWORD", hide_env_values = true)]
        admin_password: Option<String>,
        /// This instance's address as other instances reach it (shown in a passive sync's
        /// endpoint_url); by default the address the browser or client used.
        #[arg(long, value_name = "URL", env = "CRMSYNC_PUBLIC_URL")]
        public_url: Option<String>,
        #[command(flatten)]
        tls: TlsArgs,
        /// Run as if this machine's clock were off by this many milliseconds (tests and
        /// drills of clock trouble; merging is not affected).
        #[arg(long, hide = true, default_value_t = 0, allow_hyphen_values = true)]
        clock_offset_ms: i64,
        /// Days the sync logs keep their entries; older ones are removed at start and
        /// every hour.
        #[arg(long, env = "CRMSYNC_LOG_KEEP_DAYS", default_value_t = crate::app::DEFAULT_LOG_KEEP_DAYS,
              value_parser = clap::value_parser!(u32).range(1..=3650))]
        log_keep_days: u32,
        /// `GET /api/v1/ready` answers 503 while a sync that worked before has been red
        /// for longer than this many seconds.
        #[arg(long, env = "CRMSYNC_READY_RED_AFTER_SECONDS", default_value_t = crate::app::DEFAULT_READY_RED_AFTER_SECONDS)]
        ready_red_after_seconds: u64,
    },
    /// Import a CSV file into a table: all rows or none, with a report of rejected rows.
    Import {
        #[arg(long, value_name = "DIR", env = "CRMSYNC_DATA")]
        data: PathBuf,
        #[command(flatten)]
        database: DatabaseArg,
        /// Table name or id.
        #[arg(long)]
        table: String,
        /// The CSV file; its header row names the fields.
        file: PathBuf,
        /// auto (UTF-8, else Windows-1251), utf-8 or windows-1251.
        #[arg(long, default_value = "auto")]
        encoding: String,
        /// auto, ";", "," or tab.
        #[arg(long, default_value = "auto")]
        delimiter: String,
        /// The user the import is recorded as.
        #[arg(long = "as", value_name = "LOGIN", default_value = "admin")]
        as_user: String,
    },
    /// Export a table as CSV (to --out, or to standard output).
    Export {
        #[arg(long, value_name = "DIR", env = "CRMSYNC_DATA")]
        data: PathBuf,
        #[command(flatten)]
        database: DatabaseArg,
        /// Table name or id.
        #[arg(long)]
        table: String,
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// utf-8 or windows-1251 (for Excel with Russian settings).
        #[arg(long, default_value = "utf-8")]
        encoding: String,
        /// ";", "," or tab.
        #[arg(long, default_value = ",")]
        delimiter: String,
        /// active, deleted or all.
        #[arg(long, default_value = "active")]
        status: String,
    },
    /// Copy an instance (database and files) to a new directory, safely while it runs.
    /// Start the copy with `crmsync serve --data OUT` to restore it.
    Backup {
        #[arg(long, value_name = "DIR", env = "CRMSYNC_DATA")]
        data: PathBuf,
        #[command(flatten)]
        database: DatabaseArg,
        /// The new directory (must not exist).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
    /// Start two instances on loopback with sample data and an HTTP sync between them.
    Demo {
        /// Where both instances keep their data (reused on the next run).
        #[arg(long, value_name = "DIR", default_value = "demo-data")]
        data: PathBuf,
        #[arg(long, default_value_t = 8080)]
        main_port: u16,
        #[arg(long, default_value_t = 8081)]
        aux_port: u16,
        /// Sample clients to create on the first run.
        #[arg(long, default_value_t = 3000)]
        clients: usize,
    },
    /// Run an exchange of every active or folder sync (or the one named) now, from this
    /// process: an HTTP exchange from the active side, one folder round (write what is
    /// pending, read what arrived) on either side of a folder sync.
    SyncNow {
        #[arg(long, value_name = "DIR", env = "CRMSYNC_DATA")]
        data: PathBuf,
        #[command(flatten)]
        database: DatabaseArg,
        /// Sync id or name; all active HTTP syncs and all folder syncs when absent.
        sync: Option<String>,
        #[command(flatten)]
        trust: TrustArgs,
    },
    /// Show an instance's identity, tables, record counts, users, change log and syncs.
    Status {
        #[arg(long, value_name = "DIR", env = "CRMSYNC_DATA")]
        data: PathBuf,
        #[command(flatten)]
        database: DatabaseArg,
    },
}

/// Where the instance's database is (`--database`).
#[derive(clap::Args)]
struct DatabaseArg {
    /// The database: `sqlite`, the file crmsync.db in --data (the default); `sqlite:DIR`;
    /// or `postgres://USER[:PASSWORD]@HOST[:PORT]/DB` (stored files stay in --data).
    #[arg(
        long = "database",
        env = "CRMSYNC_DATABASE",
        value_name = "URL",
        default_value = "sqlite",
        hide_env_values = true
    )]
    url: String,
}

impl DatabaseArg {
    fn at(&self, data: &std::path::Path) -> Result<DatabaseUrl> {
        Ok(DatabaseUrl::parse(&self.url, data)?)
    }
}

/// HTTPS for this instance (B-09).
#[derive(clap::Args)]
struct TlsArgs {
    /// Serve HTTPS with this certificate (PEM; the chain, this server's first).
    #[arg(
        long,
        value_name = "PEM",
        env = "CRMSYNC_TLS_CERT",
        requires = "tls_key"
    )]
    tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM).
    #[arg(
        long,
        value_name = "PEM",
        env = "CRMSYNC_TLS_KEY",
        requires = "tls_cert"
    )]
    tls_key: Option<PathBuf>,
    #[command(flatten)]
    trust: TrustArgs,
}

#[derive(clap::Args)]
struct TrustArgs {
    /// Also trust this certificate (PEM) when talking to peers over HTTPS or FTPS, e.g. a
    /// peer's self-signed one; public certificates are trusted anyway. Repeatable.
    #[arg(
        long,
        value_name = "PEM",
        env = "CRMSYNC_TRUST_CERTS",
        value_delimiter = ','
    )]
    trust_cert: Vec<PathBuf>,
}

impl TrustArgs {
    fn apply(&self, app: &mut App) -> Result<()> {
        let mut certificates = Vec::new();
        for path in &self.trust_cert {
            certificates.extend(crate::tls::load_certificates(path).map_err(anyhow::Error::msg)?);
        }
        app.trust(&certificates)?;
        Ok(())
    }
}

pub fn main() -> ExitCode {
    // Whatever crmsync writes — database, stored files, backups, packet files, exports — is
    // readable by its own user only: the database holds the sync and FTP passwords.
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    let cli = Cli::parse();
    init_logging(cli.log_format);
    let result = match cli.command {
        Command::Serve {
            data,
            database,
            listen,
            admin_password,
            public_url,
            tls,
            clock_offset_ms,
            log_keep_days,
            ready_red_after_seconds,
        } => serve(
            (data, database),
            listen,
            admin_password,
            public_url,
            tls,
            (clock_offset_ms, log_keep_days, ready_red_after_seconds),
        ),
        Command::Import {
            data,
            database,
            table,
            file,
            encoding,
            delimiter,
            as_user,
        } => import((data, database), table, file, encoding, delimiter, as_user),
        Command::Export {
            data,
            database,
            table,
            out,
            encoding,
            delimiter,
            status,
        } => export((data, database), table, out, encoding, delimiter, status),
        Command::Backup {
            data,
            database,
            out,
        } => backup((data, database), out),
        Command::Demo {
            data,
            main_port,
            aux_port,
            clients,
        } => crate::demo::run(&data, main_port, aux_port, clients),
        Command::SyncNow {
            data,
            database,
            sync,
            trust,
        } => sync_now((data, database), sync, trust),
        Command::Status { data, database } => status((data, database)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The server log on stderr: what `RUST_LOG` asks for (`info` by default; e.g.
/// `RUST_LOG=warn` or `RUST_LOG=info,crmsync::access=off`), as text with colours only on a
/// terminal (a log file holds no escape codes), or as JSON lines.
fn init_logging(format: LogFormat) {
    use std::io::IsTerminal;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter: tracing_subscriber::filter::Targets = std::env::var("RUST_LOG")
        .ok()
        .and_then(|spec| spec.parse().ok())
        .unwrap_or_else(|| {
            tracing_subscriber::filter::Targets::new().with_default(tracing::Level::INFO)
        });
    let text = (format == LogFormat::Text).then(|| {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_target(false)
            .with_ansi(std::io::stderr().is_terminal())
    });
    let json = (format == LogFormat::Json).then(|| {
        tracing_subscriber::fmt::layer()
            .json()
            .with_writer(std::io::stderr)
            .with_current_span(true)
            .with_span_list(false)
    });
    let _ = tracing_subscriber::registry()
        .with(text)
        .with(json)
        .with(filter)
        .try_init();
}

fn serve(
    (data, database): (PathBuf, DatabaseArg),
    listen: String,
    admin_password: Option<String>,
    public_url: Option<String>,
    tls: TlsArgs,
    (clock_offset_ms, log_keep_days, ready_red_after_seconds): (i64, u32, u64),
) -> Result<()> {
    let clock: std::sync::Arc<dyn crmsync_domain::Clock> = if clock_offset_ms == 0 {
        std::sync::Arc::new(crmsync_domain::SystemClock)
    } else {
        std::sync::Arc::new(crmsync_domain::OffsetClock(clock_offset_ms))
    };
    // The address first: a server that cannot listen creates, prints and opens nothing
    // (the admin password was made and shown before a port already in use was found).
    let listener = std::net::TcpListener::bind(&listen)
        .with_context(|| format!("cannot listen on {listen}"))?;
    listener.set_nonblocking(true)?;
    let database = database.at(&data)?;
    let mut app = App::open_with(&data, &database, clock)
        .with_context(|| format!("opening {}", database.shown()))?;
    app.public_url = public_url.map(|u| u.trim_end_matches('/').to_string());
    app.log_keep_days = log_keep_days;
    app.ready_red_after = std::time::Duration::from_secs(ready_red_after_seconds);
    // Uploads cut short by a crash (kill -9) left their temporary files behind.
    let removed = app.files.remove_leftovers();
    if removed > 0 {
        tracing::info!("removed {removed} temporary file(s) left by an interrupted upload");
    }
    tls.trust.apply(&mut app)?;
    let server_tls = match (&tls.tls_cert, &tls.tls_key) {
        (Some(cert), Some(key)) => {
            Some(crate::tls::server_config(cert, key).map_err(anyhow::Error::msg)?)
        }
        _ => None,
    };
    app.serves_https = server_tls.is_some();
    if let Some(generated) = app.core.ensure_admin(admin_password.as_deref())? {
        println!("created user admin with password {generated}");
        println!("(shown only this once; change it with PATCH /api/v1/users/1)");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::from_std(listener)?;
        let address = listener.local_addr()?;
        match server_tls {
            Some(config) => {
                let listener = crate::tls::TlsListener::new(listener, config)?;
                println!("listening on https://{address}");
                std::io::stdout().flush()?;
                app.serve(listener, shutdown_signal()).await?;
            }
            None => {
                println!("listening on http://{address}");
                std::io::stdout().flush()?;
                app.serve(listener, shutdown_signal()).await?;
            }
        }
        Ok(())
    })
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

fn actor_for(app: &App, login: &str) -> Result<Actor> {
    let user = app
        .core
        .users()?
        .into_iter()
        .find(|u| u.login.eq_ignore_ascii_case(login))
        .with_context(|| format!("there is no user \"{login}\""))?;
    Ok(Actor {
        user,
        origin: Origin::Import,
    })
}

fn import(
    (data, database): (PathBuf, DatabaseArg),
    table: String,
    file: PathBuf,
    encoding: String,
    delimiter: String,
    as_user: String,
) -> Result<()> {
    let options = ImportOptions {
        encoding: encoding.parse().map_err(anyhow::Error::msg)?,
        delimiter: csv_io::parse_delimiter(&delimiter).map_err(anyhow::Error::msg)?,
    };
    let app = App::open_existing(&data, &database.at(&data)?)?;
    let actor = actor_for(&app, &as_user)?;
    let table = app.core.table_by_name_or_id(&table)?;
    let input =
        std::fs::File::open(&file).with_context(|| format!("cannot open {}", file.display()))?;
    // A field drawing its numbers from another instance gets them for every row first.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match runtime.block_on(crate::records::import_csv(
        &app, actor, table.id, input, options,
    )) {
        Ok(report) => {
            println!(
                "imported {} records into \"{}\" ({}, delimiter {})",
                report.imported, table.name, report.encoding, report.delimiter
            );
            if !report.ignored_columns.is_empty() {
                println!(
                    "ignored system columns: {}",
                    report.ignored_columns.join(", ")
                );
            }
            Ok(())
        }
        Err(crmsync_domain::DomainError::Rows(rows)) => {
            for row in &rows {
                let line = row.line.unwrap_or(row.row + 1);
                match row.file_line {
                    Some(text_line) => eprintln!(
                        "line {line} (line {text_line} of the text file): {}",
                        row.message
                    ),
                    None => eprintln!("line {line}: {}", row.message),
                }
            }
            anyhow::bail!(
                "{}; nothing was imported",
                crmsync_domain::error::rows_summary(&rows)
            )
        }
        Err(e) => Err(e.into()),
    }
}

fn export(
    (data, database): (PathBuf, DatabaseArg),
    table: String,
    out: Option<PathBuf>,
    encoding: String,
    delimiter: String,
    status: String,
) -> Result<()> {
    let encoding: CsvEncoding = encoding.parse().map_err(anyhow::Error::msg)?;
    let delimiter = csv_io::parse_delimiter(&delimiter)
        .map_err(anyhow::Error::msg)?
        .unwrap_or(b',');
    let status = match status.as_str() {
        "active" => StatusFilter::Active,
        "deleted" => StatusFilter::Deleted,
        "all" => StatusFilter::All,
        other => anyhow::bail!("status \"{other}\" is not one of active, deleted, all"),
    };
    let app = App::open_existing(&data, &database.at(&data)?)?;
    let table = app.core.table_by_name_or_id(&table)?;
    let options = ExportOptions {
        encoding,
        delimiter,
        status,
        ..ExportOptions::default()
    };
    let count = match &out {
        Some(path) => {
            // Written beside the target and renamed, so a failed export leaves no half file.
            let dir = path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(std::path::Path::new("."));
            let mut temp = tempfile::NamedTempFile::new_in(dir)?;
            let count = {
                let mut writer = std::io::BufWriter::new(temp.as_file_mut());
                csv_io::export(&app.core, table.id, &mut writer, options)?
            };
            temp.persist(path)?;
            count
        }
        None => {
            let stdout = std::io::stdout();
            let mut writer = std::io::BufWriter::new(stdout.lock());
            csv_io::export(&app.core, table.id, &mut writer, options)?
        }
    };
    if let Some(path) = out {
        eprintln!(
            "exported {count} records of \"{}\" to {}",
            table.name,
            path.display()
        );
    }
    Ok(())
}

fn backup((data, database): (PathBuf, DatabaseArg), out: PathBuf) -> Result<()> {
    let app = App::open_existing(&data, &database.at(&data)?)?;
    if out.exists() {
        anyhow::bail!("{} exists already; choose a new directory", out.display());
    }
    std::fs::create_dir_all(&out)?;
    // Database first, then files: every file the copied database names is already stored,
    // since content is written before the record that points at it.
    if let Err(e) = app.core.store().backup_to(&out) {
        let _ = std::fs::remove_dir(&out);
        return Err(e.into());
    }
    let copied = copy_contents(&data.join("files"), &out.join("files"))?;
    println!(
        "backed up {} to {} ({copied} stored files)",
        data.display(),
        out.display()
    );
    Ok(())
}

/// Copies stored file contents (not unfinished uploads in tmp/).
fn copy_contents(from: &std::path::Path, to: &std::path::Path) -> Result<u64> {
    std::fs::create_dir_all(to.join("tmp"))?;
    let mut copied = 0;
    let Ok(entries) = std::fs::read_dir(from) else {
        return Ok(0);
    };
    for entry in entries {
        let entry = entry?;
        if !entry.file_type()?.is_dir() || entry.file_name() == "tmp" {
            continue;
        }
        let target = to.join(entry.file_name());
        std::fs::create_dir_all(&target)?;
        for file in std::fs::read_dir(entry.path())? {
            let file = file?;
            std::fs::copy(file.path(), target.join(file.file_name()))?;
            copied += 1;
        }
    }
    Ok(copied)
}

/// `println!` for a report a person may pipe into `head`: when the reader stops reading,
/// the command ends quietly (exit 0) instead of panicking on the closed pipe.
macro_rules! say {
    ($($arg:tt)*) => {
        say_line(format_args!($($arg)*))
    };
}

fn say_line(line: std::fmt::Arguments<'_>) {
    use std::io::Write;
    if let Err(e) = writeln!(std::io::stdout().lock(), "{line}") {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: cannot write the report: {e}");
        std::process::exit(1);
    }
}

/// A sync's side and transport as a person says them: "active side, over HTTP".
fn side_and_transport(sync: &crmsync_domain::sync::SyncConfig) -> String {
    use crmsync_domain::sync::{Mode, Transport};
    let side = match sync.mode {
        Mode::Active => "active side",
        Mode::Passive => "passive side",
    };
    let over = match sync.transport.kind() {
        Transport::Http => "over HTTP",
        Transport::Local => "through local folders",
        Transport::Ftp => "through FTP",
    };
    format!("{side}, {over}")
}

fn status((data, database): (PathBuf, DatabaseArg)) -> Result<()> {
    let app = App::open_existing(&data, &database.at(&data)?)?;
    say!("instance {}", app.core.instance_id()?);
    say!("data     {}", data.display());
    say!("database {}", database.at(&data)?.shown());
    say!("users    {}", app.core.users()?.len());
    say!("changes  {} in the change log", app.core.change_count()?);
    let tables = app.core.table_counts()?;
    if tables.is_empty() {
        say!("tables   none yet");
    }
    for (table, counts) in tables {
        say!(
            "table {} \"{}\": {} fields, {} records ({} deleted)",
            table.id,
            table.name,
            table.fields.len(),
            counts.active,
            counts.deleted
        );
    }
    let syncs = app.core.syncs()?;
    if syncs.is_empty() {
        say!("syncs    none configured");
    }
    for sync in syncs {
        let state = app.core.sync_state(sync.id)?;
        let pending = crmsync_sync::pending_out(&app.core, &sync)?;
        let (connected, reason) = state.as_seen(&sync, app.core.now_ms());
        let health = if connected {
            "connected".to_string()
        } else {
            format!(
                "not connected: {}",
                reason.as_deref().unwrap_or("no exchange yet")
            )
        };
        say!(
            "sync {} \"{}\" ({}): {health}; {pending} change(s) to send, {} to receive; last success {}",
            sync.id,
            sync.name,
            side_and_transport(&sync),
            state.pending_in,
            state
                .last_success_ms
                .map(crmsync_domain::value::format_ms)
                .unwrap_or_else(|| "never".into())
        );
    }
    Ok(())
}

fn sync_now(
    (data, database): (PathBuf, DatabaseArg),
    wanted: Option<String>,
    trust: TrustArgs,
) -> Result<()> {
    use crate::sync::peer::{self, Exchange};
    let mut app = App::open_existing(&data, &database.at(&data)?)?;
    trust.apply(&mut app)?;
    // Over folders both sides write and read; over HTTP only the active side starts.
    let starts_here =
        |s: &crmsync_domain::sync::SyncConfig| peer::exchange(s) != Exchange::IsCalled;
    let all = app.core.syncs()?;
    let any_here = !all.is_empty();
    let syncs: Vec<_> = all
        .into_iter()
        .filter(|s| match &wanted {
            Some(w) => s.id.to_string() == *w || s.name.eq_ignore_ascii_case(w),
            None => starts_here(s),
        })
        .collect();
    if syncs.is_empty() {
        anyhow::bail!(match (&wanted, any_here) {
            (Some(w), _) => format!("there is no sync \"{w}\" here"),
            (None, false) => "there are no syncs here".to_string(),
            (None, true) => "the syncs here are passive sides of HTTP syncs: they only answer, and exchanges are started by the active side (run sync-now there)".to_string(),
        });
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let mut failures = 0;
    for sync in syncs {
        if !starts_here(&sync) {
            // Named here, as before: a notice, not a failure.
            println!(
                "sync {} \"{}\" is the passive side of an HTTP sync: it only answers, and exchanges are started by the active side (run sync-now there)",
                sync.id, sync.name
            );
            continue;
        }
        // On a database several servers share, the one holding the sync's lease runs it:
        // a round here beside it would read and write the same packets at once.
        let mut lease = app.core.store().sync_lease(sync.id)?;
        if !lease.try_take()? {
            println!(
                "sync {} \"{}\" runs in a crmsync server on this database now: it exchanges there on its own",
                sync.id, sync.name
            );
            continue;
        }
        let outcome = runtime.block_on(peer::exchange_now(&app, &sync));
        drop(lease);
        match outcome {
            Ok(done) => println!("sync {} \"{}\": {done}", sync.id, sync.name),
            Err(e) => {
                failures += 1;
                eprintln!("sync {} \"{}\": {e}", sync.id, sync.name);
            }
        }
    }
    if failures > 0 {
        anyhow::bail!("{failures} sync(s) failed");
    }
    Ok(())
}
