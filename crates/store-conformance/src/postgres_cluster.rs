//! Throw-away PostgreSQL servers for tests (as the FTP tests start their own vsftpd): each
//! [`TestCluster`] is a server of its own, from Debian's `postgresql` package (installed by
//! `scripts/test-prerequisites.sh`), on a free loopback port and a temporary data folder,
//! with trust authentication and no durability (fsync off): nothing in it outlives the
//! test, and no system-wide server or password is needed.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// How long a server may take to accept connections (the test machines are small and
/// shared), and to stop before it is killed.
const START_TIMEOUT: Duration = Duration::from_secs(60);
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// The watchdog the server runs under: `$1` the test process's pid, `$2` the folder to
/// remove, `$3` the data folder, then the server's command. A cluster kept in a `static`
/// is never dropped, so the server must stop by itself when the test process is gone
/// (also when it is killed with SIGKILL; a process that has exited but is not yet reaped
/// counts as gone); the watcher polls the test process and stops the server (fast
/// shutdown, then SIGKILL), and the folder goes once the server has exited.
const WATCHDOG: &str = r#"
test_pid=$1 dir=$2 data=$3
shift 3
"$@" &
server=$!
test_alive() {
  kill -0 "$test_pid" 2>/dev/null || return 1
  read -r stat 2>/dev/null < "/proc/$test_pid/stat" || return 0
  case $stat in *") Z "*) return 1 ;; esac
}
(
  while test_alive; do sleep 0.25; done
  pid=$(head -n 1 "$data/postmaster.pid" 2>/dev/null)
  kill -INT "${pid:-$server}" 2>/dev/null
  i=0
  while [ -n "$pid" ] && [ -d "/proc/$pid" ] && [ "$i" -lt 40 ]; do sleep 0.25; i=$((i + 1)); done
  kill -KILL "${pid:-$server}" 2>/dev/null
) &
watcher=$!
wait "$server"
kill "$watcher" 2>/dev/null
test_alive || rm -rf "$dir"
"#;

/// Numbers the databases [`TestCluster::create_database`] makes, unique in the process.
static DATABASES: AtomicU32 = AtomicU32::new(0);

/// A PostgreSQL server of the test's own, stopped and removed when dropped (or, for one
/// that is never dropped, when the test process exits).
pub struct TestCluster {
    bin: PathBuf,
    port: u16,
    data: PathBuf,
    log: PathBuf,
    /// The `sh` watchdog the server runs under; it exits when the server does.
    watchdog: Child,
    /// Last, so the folder goes after the server has stopped.
    folder: tempfile::TempDir,
}

impl TestCluster {
    /// Creates a cluster in a new temporary folder and starts its server on a free
    /// loopback port, waiting until it accepts connections.
    pub fn start() -> TestCluster {
        let bin = postgres_bin();
        let as_root = running_as_root();
        let folder = tempfile::Builder::new()
            .prefix("crmsync-pg-")
            .tempdir_in(temp_parent(as_root))
            .expect("a temporary folder for PostgreSQL");
        if as_root {
            // initdb and postgres refuse to run as root: they run as Debian's `postgres`
            // user, who must own the folder (created 0700 for root).
            run(Command::new("chown").arg("postgres:").arg(folder.path()));
        }
        let data = folder.path().join("data");
        run(server_command(as_root, &bin.join("initdb"))
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
                "--no-sync",
            ])
            .current_dir(folder.path()));
        let log = folder.path().join("postgres.log");
        let port = free_port();
        let watchdog = spawn_server(as_root, &bin, folder.path(), &data, &log, port);
        let mut cluster = TestCluster {
            bin,
            port,
            data,
            log,
            watchdog,
            folder,
        };
        // The port is free when picked but may be taken before the server binds it: then
        // the server exits at once and another port is tried. (A panic here drops the
        // cluster: its server stops and its folder goes.)
        for attempt in 1.. {
            match cluster.wait_until_ready() {
                Ok(()) => break,
                Err(log) if attempt < 5 && log.contains("could not bind") => {
                    cluster.port = free_port();
                    cluster.watchdog = spawn_server(
                        as_root,
                        &cluster.bin,
                        cluster.folder.path(),
                        &cluster.data,
                        &cluster.log,
                        cluster.port,
                    );
                }
                Err(log) => panic!(
                    "PostgreSQL did not start on 127.0.0.1:{}; its log:\n{log}",
                    cluster.port
                ),
            }
        }
        cluster
    }

    /// One cluster for the whole test binary, started on first use, for suites that
    /// need many databases: each test makes its own with [`TestCluster::create_database`].
    /// Never dropped: its watchdog stops it when the test process exits.
    pub fn shared() -> &'static TestCluster {
        static SHARED: OnceLock<TestCluster> = OnceLock::new();
        SHARED.get_or_init(TestCluster::start)
    }

    /// The loopback port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The URL of `database` on this server, as user `postgres` (trusted, no password).
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// Creates a new, empty database with a name of its own and returns its URL.
    pub fn create_database(&self) -> String {
        let name = format!(
            "crmsync_test_{}_{}",
            std::process::id(),
            DATABASES.fetch_add(1, Ordering::Relaxed)
        );
        run(self.client("createdb").arg(&name));
        self.url(&name)
    }

    /// A client program of the server's version (`psql`, `createdb`…), pointed at the
    /// server; the caller adds the database and what to do.
    pub fn client(&self, program: &str) -> Command {
        let mut command = Command::new(self.bin.join(program));
        clear_pg_environment(&mut command);
        command.args([
            "-h",
            "127.0.0.1",
            "-p",
            &self.port.to_string(),
            "-U",
            "postgres",
        ]);
        command
    }

    /// Waits until the server accepts connections; if it exits first, its log. Panics,
    /// with the log, if it takes too long.
    fn wait_until_ready(&mut self) -> Result<(), String> {
        let started = Instant::now();
        loop {
            if self
                .watchdog
                .try_wait()
                .expect("the PostgreSQL watchdog")
                .is_some()
            {
                return Err(read_log(&self.log));
            }
            let ready = self
                .client("pg_isready")
                .arg("-q")
                .stdin(Stdio::null())
                .status()
                .expect("run pg_isready");
            if ready.success() {
                return Ok(());
            }
            assert!(
                started.elapsed() < START_TIMEOUT,
                "PostgreSQL on 127.0.0.1:{} does not accept connections after {START_TIMEOUT:?}; its log:\n{}",
                self.port,
                read_log(&self.log)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stops the server: fast shutdown (SIGINT, which unlike SIGTERM does not wait for the
    /// clients still connected), then SIGKILL if it lingers.
    fn stop(&mut self) {
        if self.exited() {
            return;
        }
        let group = format!("-{}", self.watchdog.id());
        let postmaster = std::fs::read_to_string(self.data.join("postmaster.pid"))
            .ok()
            .and_then(|pid| pid.lines().next().map(|pid| pid.trim().to_string()))
            .filter(|pid| !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()));
        match &postmaster {
            Some(pid) => signal("INT", pid),
            // Not started far enough to say its pid: the watchdog's group, with runuser
            // (which passes the signal on) or the server in it.
            None => signal("TERM", &group),
        }
        let asked = Instant::now();
        while !self.exited() && asked.elapsed() < STOP_TIMEOUT {
            std::thread::sleep(Duration::from_millis(50));
        }
        if !self.exited() {
            if let Some(pid) = &postmaster {
                signal("KILL", pid);
            }
            signal("KILL", &group);
            let _ = self.watchdog.wait();
        }
    }

    /// Whether the watchdog, which waits for the server, has exited.
    fn exited(&mut self) -> bool {
        !matches!(self.watchdog.try_wait(), Ok(None))
    }
}

impl Drop for TestCluster {
    /// The server stops, then the folder (data and log) is removed.
    fn drop(&mut self) {
        self.stop();
    }
}

/// The newest PostgreSQL's programs among Debian's `/usr/lib/postgresql/<version>/bin`.
fn postgres_bin() -> PathBuf {
    let newest = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter(|entry| entry.path().join("bin/initdb").is_file())
        .filter_map(|entry| {
            let version: Vec<u32> = entry
                .file_name()
                .to_str()?
                .split('.')
                .map(|part| part.parse().ok())
                .collect::<Option<_>>()?;
            Some((version, entry.path().join("bin")))
        })
        .max();
    match newest {
        Some((_, bin)) => bin,
        None => panic!(
            "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb): \
             run `bash scripts/test-prerequisites.sh`"
        ),
    }
}

fn running_as_root() -> bool {
    let id = run(Command::new("id").arg("-u"));
    String::from_utf8_lossy(&id.stdout).trim() == "0"
}

/// Where the temporary folder goes: the usual temporary folder, unless run as root and
/// the `postgres` user could not reach into it (say TMPDIR under /root), then /tmp.
fn temp_parent(as_root: bool) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let temp = std::env::temp_dir();
    let reachable = temp
        .ancestors()
        .all(|dir| std::fs::metadata(dir).is_ok_and(|meta| meta.permissions().mode() & 0o001 != 0));
    if as_root && !reachable {
        PathBuf::from("/tmp")
    } else {
        temp
    }
}

/// A PostgreSQL server program, as the `postgres` user when run as root.
fn server_command(as_root: bool, program: &Path) -> Command {
    let mut command = if as_root {
        let mut runuser = Command::new("runuser");
        runuser.args(["-u", "postgres", "--"]).arg(program);
        runuser
    } else {
        Command::new(program)
    };
    clear_pg_environment(&mut command);
    // Messages in English: the log is read back (a port taken is told by its message).
    command.env("LC_ALL", "C.UTF-8");
    command
}

/// Starts the server on `port` under its watchdog, its output into `log`.
fn spawn_server(
    as_root: bool,
    bin: &Path,
    folder: &Path,
    data: &Path,
    log: &Path,
    port: u16,
) -> Child {
    use std::os::unix::process::CommandExt;
    let log = File::create(log).expect("the PostgreSQL log file");
    let server = server_command(as_root, &bin.join("postgres"));
    let mut command = Command::new("sh");
    command
        .args(["-c", WATCHDOG, "sh"])
        .arg(std::process::id().to_string())
        .arg(folder)
        .arg(data)
        .arg(server.get_program())
        .args(server.get_args())
        .arg("-D")
        .arg(data)
        .arg("-p")
        .arg(port.to_string())
        .arg("-k")
        .arg(data)
        .args(["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"])
        .args(["-c", "synchronous_commit=off", "-c", "full_page_writes=off"])
        .args(["-c", "max_connections=200"])
        .current_dir(folder)
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("the PostgreSQL log file"))
        .stderr(log)
        // Its own process group: a Ctrl-C at the terminal stops the tests, and the
        // watchdog then stops the server and removes the folder.
        .process_group(0);
    clear_pg_environment(&mut command);
    command.envs(
        server
            .get_envs()
            .filter_map(|(name, value)| Some((name, value?))),
    );
    command.spawn().expect("start PostgreSQL under sh")
}

/// A loopback port nothing listens on just now.
fn free_port() -> u16 {
    std::net::TcpListener::bind(("127.0.0.1", 0))
        .and_then(|listener| listener.local_addr())
        .expect("a free loopback port")
        .port()
}

/// The libpq variables of the environment (PGHOST, PGOPTIONS, PGSERVICE…) would point the
/// programs elsewhere or change their settings.
fn clear_pg_environment(command: &mut Command) {
    for (name, _) in std::env::vars_os() {
        if name.to_str().is_some_and(|name| name.starts_with("PG")) {
            command.env_remove(name);
        }
    }
}

/// Sends SIGNAL to a process (or, with a leading '-', a process group), ignoring failure.
fn signal(signal: &str, pid: &str) {
    let _ = Command::new("sh")
        .args([
            "-c",
            "kill -s \"$1\" -- \"$2\" 2>/dev/null",
            "sh",
            signal,
            pid,
        ])
        .stdin(Stdio::null())
        .status();
}

/// Runs a command to completion, panicking with its output if it fails.
fn run(command: &mut Command) -> Output {
    let output = command
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {:?}: {e}", command.get_program()));
    assert!(
        output.status.success(),
        "{command:?} failed ({}):\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn read_log(log: &Path) -> String {
    let mut text = String::new();
    match File::open(log).and_then(|mut file| file.read_to_string(&mut text)) {
        Ok(_) => text,
        Err(e) => format!("(no log at {}: {e})", log.display()),
    }
}
