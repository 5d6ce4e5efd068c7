//! Where packet files live: a folder on this machine, or one on an FTP server. The folder
//! transport's logic is the same for both; only these few operations differ.

use crmsync_domain::sync::{FtpSettings, LocalSettings};
use std::io::{self, Cursor, Read, Write};
use std::path::Path;
use std::sync::Arc;

/// The most a file read from a sync's folder may hold: a packet carries a few thousand
/// records and a chunk 8 MiB; anything larger is set aside unread.
pub const MAX_FILE_BYTES: u64 = 128 << 20;

/// A file in a sync's folder that is refused unread: a link, a pipe, a device, or too
/// large. Its error kind is `InvalidData`; other errors (a file gone meanwhile) are not.
fn refused(why: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, why)
}

/// Whether a read failed because the file itself is refused (set it aside), not because
/// reading it failed this time.
pub fn is_refused(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::InvalidData
}

fn too_large() -> String {
    format!("larger than {} MiB", MAX_FILE_BYTES >> 20)
}

/// Reads at most `MAX_FILE_BYTES` (one more byte tells a larger file).
fn read_capped(reader: &mut dyn Read) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    reader.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(refused(too_large()));
    }
    Ok(bytes)
}

pub trait Folders {
    /// Creates the folder if it is missing.
    fn prepare(&mut self, dir: &str) -> io::Result<()>;
    /// File names in the folder (names only, whatever the server lists).
    fn list(&mut self, dir: &str) -> io::Result<Vec<String>>;
    fn read(&mut self, dir: &str, name: &str) -> io::Result<Vec<u8>>;
    /// Writes `bytes` under a temporary name and renames it to `name` when complete.
    fn write(&mut self, dir: &str, name: &str, bytes: &[u8]) -> io::Result<()>;
    fn remove(&mut self, dir: &str, name: &str) -> io::Result<()>;
    fn rename(&mut self, dir: &str, from: &str, to: &str) -> io::Result<()>;
    /// The folder as a person would name it in a message.
    fn describe(&self, dir: &str) -> String;
}

pub struct LocalFolders;

impl Folders for LocalFolders {
    fn prepare(&mut self, dir: &str) -> io::Result<()> {
        std::fs::create_dir_all(dir)
    }

    fn list(&mut self, dir: &str) -> io::Result<Vec<String>> {
        Ok(std::fs::read_dir(dir)?
            .filter_map(|entry| entry.ok().and_then(|e| e.file_name().into_string().ok()))
            .collect())
    }

    /// Only a regular file, never through a link (a link planted in a shared folder could
    /// point anywhere), never blocking on a pipe, and never more than `MAX_FILE_BYTES`.
    fn read(&mut self, dir: &str, name: &str) -> io::Result<Vec<u8>> {
        use rustix::fs::{Mode, OFlags};
        let path = Path::new(dir).join(name);
        let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
        let fd = rustix::fs::open(&path, flags, Mode::empty()).map_err(|e| {
            if e == rustix::io::Errno::LOOP {
                refused("a link, not a file".to_string())
            } else {
                io::Error::from(e)
            }
        })?;
        let mut file = std::fs::File::from(fd);
        let meta = file.metadata()?;
        if !meta.is_file() {
            return Err(refused(
                "not a regular file (a folder, pipe or device)".to_string(),
            ));
        }
        if meta.len() > MAX_FILE_BYTES {
            return Err(refused(too_large()));
        }
        read_capped(&mut file)
    }

    /// Under a fresh unpredictable name created exclusively (a link planted under a
    /// temporary name cannot redirect the write), flushed to disk, then renamed into place.
    fn write(&mut self, dir: &str, name: &str, bytes: &[u8]) -> io::Result<()> {
        let mut temporary = tempfile::Builder::new()
            .prefix(&format!(".{name}."))
            .suffix(".tmp")
            .tempfile_in(dir)?;
        temporary.write_all(bytes)?;
        temporary.as_file().sync_all()?;
        temporary
            .persist(Path::new(dir).join(name))
            .map_err(|e| e.error)?;
        // The rename itself reaches the disk before the cursor that relies on it moves;
        // some mounted shares cannot sync a folder, and the file's own data is on disk.
        let _ = std::fs::File::open(dir).and_then(|folder| folder.sync_all());
        Ok(())
    }

    fn remove(&mut self, dir: &str, name: &str) -> io::Result<()> {
        std::fs::remove_file(Path::new(dir).join(name))
    }

    fn rename(&mut self, dir: &str, from: &str, to: &str) -> io::Result<()> {
        std::fs::rename(Path::new(dir).join(from), Path::new(dir).join(to))
    }

    fn describe(&self, dir: &str) -> String {
        dir.to_string()
    }
}

impl LocalFolders {
    pub fn dirs(settings: &LocalSettings) -> (String, String) {
        (settings.upload_dir.clone(), settings.download_dir.clone())
    }
}

/// One FTP session (passive mode, binary transfers), opened for each round, so a dropped
/// connection or a restarted server costs one round, not the sync.
pub struct FtpFolders {
    stream: suppaftp::RustlsFtpStream,
    host: String,
}

const FTP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

fn ftp_error(e: suppaftp::FtpError) -> io::Error {
    io::Error::other(e.to_string())
}

fn join(dir: &str, name: &str) -> String {
    format!("{}/{name}", dir.trim_end_matches('/'))
}

impl FtpFolders {
    /// Connects and logs in; with `tls`, explicit FTPS (AUTH TLS, then a private data
    /// channel), the server's certificate checked against `trust`.
    pub fn connect(
        settings: &FtpSettings,
        trust: &Arc<rustls::ClientConfig>,
    ) -> io::Result<FtpFolders> {
        let address = format!("{}:{}", settings.host, settings.port);
        let socket: std::net::SocketAddr = std::net::ToSocketAddrs::to_socket_addrs(&address)
            .ok()
            .and_then(|mut a| a.next())
            .ok_or_else(|| {
                io::Error::other(format!(
                    "cannot reach the FTP server {address}: unknown host"
                ))
            })?;
        let mut stream = suppaftp::RustlsFtpStream::connect_timeout(socket, FTP_TIMEOUT)
            .map_err(|e| io::Error::other(format!("cannot reach the FTP server {address}: {e}")))?;
        // A server that stops answering fails the round instead of holding it forever.
        stream.get_ref().set_read_timeout(Some(FTP_TIMEOUT))?;
        stream.get_ref().set_write_timeout(Some(FTP_TIMEOUT))?;
        if settings.tls {
            let connector = suppaftp::RustlsConnector::from(Arc::clone(trust));
            stream = stream.into_secure(connector, &settings.host).map_err(|e| {
                let e = e.to_string();
                io::Error::other(format!(
                    "TLS with the FTP server {address} failed (ftp.tls): {e}{}",
                    crate::tls::hint(&e)
                ))
            })?;
        }
        stream
            .login(settings.login.as_str(), settings.password.0.as_str())
            .map_err(|e| {
                io::Error::other(format!("the FTP server {address} refused the login: {e}"))
            })?;
        stream
            .transfer_type(suppaftp::types::FileType::Binary)
            .map_err(ftp_error)?;
        Ok(FtpFolders {
            stream,
            host: address,
        })
    }
}

impl Folders for FtpFolders {
    fn prepare(&mut self, dir: &str) -> io::Result<()> {
        // MKD each level; "exists already" answers are fine, a real problem shows later.
        let mut path = String::new();
        for part in dir.split('/').filter(|p| !p.is_empty()) {
            path.push('/');
            path.push_str(part);
            let _ = self.stream.mkdir(&path);
        }
        Ok(())
    }

    fn list(&mut self, dir: &str) -> io::Result<Vec<String>> {
        // NLST: plain names, not one server's LIST format; some servers prefix the folder.
        let names = self.stream.nlst(Some(dir)).map_err(ftp_error)?;
        Ok(names
            .into_iter()
            .map(|n| n.rsplit('/').next().unwrap_or_default().to_string())
            .collect())
    }

    fn read(&mut self, dir: &str, name: &str) -> io::Result<Vec<u8>> {
        let mut outcome = None;
        let transfer = self.stream.retr(&join(dir, name), |reader| {
            outcome = Some(read_capped(reader));
            Ok(())
        });
        match (outcome, transfer) {
            // Too large: refused even though the transfer was cut short.
            (Some(Err(e)), _) if is_refused(&e) => Err(e),
            (_, Err(e)) => Err(ftp_error(e)),
            (Some(read), Ok(())) => read,
            (None, Ok(())) => Err(io::Error::other(format!("{name}: nothing was read"))),
        }
    }

    fn write(&mut self, dir: &str, name: &str, bytes: &[u8]) -> io::Result<()> {
        let temporary = join(dir, &format!(".{name}.tmp"));
        self.stream
            .put_file(&temporary, &mut Cursor::new(bytes))
            .map_err(ftp_error)?;
        let target = join(dir, name);
        // Some servers refuse to rename over an existing file.
        let _ = self.stream.rm(&target);
        self.stream.rename(&temporary, &target).map_err(ftp_error)
    }

    fn remove(&mut self, dir: &str, name: &str) -> io::Result<()> {
        self.stream.rm(join(dir, name)).map_err(ftp_error)
    }

    fn rename(&mut self, dir: &str, from: &str, to: &str) -> io::Result<()> {
        self.stream
            .rename(&join(dir, from), &join(dir, to))
            .map_err(ftp_error)
    }

    fn describe(&self, dir: &str) -> String {
        format!("ftp://{}{dir}", self.host)
    }
}

impl Drop for FtpFolders {
    fn drop(&mut self) {
        let _ = self.stream.quit();
    }
}
