//! Where packet files live: a folder on this machine, or one on an FTP server. The folder
//! transport's logic is the same for both; only these few operations differ.

use crmsync_domain::sync::{FtpSettings, LocalSettings};
use std::io::{self, Cursor};
use std::path::Path;
use std::sync::Arc;

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

    fn read(&mut self, dir: &str, name: &str) -> io::Result<Vec<u8>> {
        std::fs::read(Path::new(dir).join(name))
    }

    fn write(&mut self, dir: &str, name: &str, bytes: &[u8]) -> io::Result<()> {
        let temporary = Path::new(dir).join(format!(".{name}.tmp"));
        std::fs::write(&temporary, bytes)?;
        std::fs::rename(&temporary, Path::new(dir).join(name))
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
        Ok(self
            .stream
            .retr_as_buffer(&join(dir, name))
            .map_err(ftp_error)?
            .into_inner())
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
