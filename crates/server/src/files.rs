//! Stored file contents, addressed by their SHA-256: written streaming to a temporary file
//! while hashing, then renamed into place, so a file is never whole in memory and never
//! half-visible. Client-given names are metadata only and never touch a path.

use crmsync_domain::FileRef;
use crmsync_domain::value::clean_file_name;
use crmsync_sync::content::{CHUNK_BYTES, chunk_len};
use futures_util::{Stream, StreamExt};
use sha2::{Digest, Sha256};
use std::io::{self, Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio::io::AsyncWriteExt;

#[derive(Clone, Debug)]
pub struct FileStore {
    root: PathBuf,
    /// Chunks of one content arriving twice at once (a retried request) append in turn.
    incoming: Arc<Mutex<()>>,
}

/// Why a chunk of a peer's content was not taken.
#[derive(Debug)]
pub enum ChunkError {
    /// Not the next chunk: the receiver holds `received` bytes; continue from there.
    OutOfOrder {
        received: u64,
    },
    WrongLength {
        expected: u64,
        got: u64,
    },
    /// The complete content does not match its checksum; what arrived was discarded.
    Mismatch,
    Io(io::Error),
}

impl std::fmt::Display for ChunkError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChunkError::OutOfOrder { received } => {
                write!(f, "not the next chunk: {received} bytes have arrived")
            }
            ChunkError::WrongLength { expected, got } => {
                write!(f, "a chunk of {got} bytes where {expected} were due")
            }
            ChunkError::Mismatch => f.write_str(
                "the content does not match its SHA-256 checksum; what arrived was discarded",
            ),
            ChunkError::Io(e) => write!(f, "{e}"),
        }
    }
}

impl From<io::Error> for ChunkError {
    fn from(e: io::Error) -> Self {
        ChunkError::Io(e)
    }
}

impl FileStore {
    pub fn open(root: &Path) -> io::Result<FileStore> {
        std::fs::create_dir_all(root.join("tmp"))?;
        std::fs::create_dir_all(root.join("incoming"))?;
        Ok(FileStore {
            root: root.to_path_buf(),
            incoming: Arc::default(),
        })
    }

    /// Removes the temporary files of uploads that never finished (the process was killed
    /// mid-upload); called when the server starts, before anything is uploaded. Returns how
    /// many there were.
    pub fn remove_leftovers(&self) -> usize {
        std::fs::read_dir(self.root.join("tmp"))
            .into_iter()
            .flatten()
            .flatten()
            .filter(|entry| entry.file_type().is_ok_and(|t| t.is_file()))
            .filter(|entry| std::fs::remove_file(entry.path()).is_ok())
            .count()
    }

    /// Whether the content with this checksum is stored here.
    pub fn has(&self, sha256: &str) -> bool {
        self.path_of(sha256).is_ok_and(|p| p.is_file())
    }

    fn part_of(&self, sha256: &str) -> io::Result<PathBuf> {
        self.path_of(sha256)?;
        Ok(self
            .root
            .join("incoming")
            .join(format!("{}.part", sha256.to_ascii_lowercase())))
    }

    /// How many bytes of a peer's file have arrived (its size once it is stored). An empty
    /// file has no chunks: it is stored here and now.
    pub fn received(&self, file: &FileRef) -> Result<u64, ChunkError> {
        let _guard = self.incoming.lock().unwrap_or_else(|e| e.into_inner());
        self.received_locked(file)
    }

    fn received_locked(&self, file: &FileRef) -> Result<u64, ChunkError> {
        if self.has(&file.sha256) {
            return Ok(file.size);
        }
        if file.size == 0 {
            let part = self.part_of(&file.sha256)?;
            std::fs::write(&part, b"")?;
            self.complete(file, &part)?;
            return Ok(0);
        }
        let part = self.part_of(&file.sha256)?;
        match std::fs::metadata(&part) {
            // A chunk cut short by a crash is dropped; it arrives again whole.
            Ok(meta) if meta.len() % CHUNK_BYTES != 0 && meta.len() < file.size => {
                let whole = meta.len() - meta.len() % CHUNK_BYTES;
                std::fs::OpenOptions::new()
                    .write(true)
                    .open(&part)?
                    .set_len(whole)?;
                Ok(whole)
            }
            // Whole but never stored (the process stopped between the last chunk and its
            // renaming): checked now; content that fails the check arrives again.
            Ok(meta) if meta.len() >= file.size => match self.complete(file, &part) {
                Ok(()) => Ok(file.size),
                Err(ChunkError::Mismatch) => Ok(0),
                Err(e) => Err(e),
            },
            Ok(meta) => Ok(meta.len()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(0),
            Err(e) => Err(e.into()),
        }
    }

    /// Appends chunk `index` of a peer's file; returns the bytes held now. A chunk that
    /// arrived before is ignored; the last one stores the file if the checksum matches.
    pub fn take_chunk(&self, file: &FileRef, index: u64, bytes: &[u8]) -> Result<u64, ChunkError> {
        let _guard = self.incoming.lock().unwrap_or_else(|e| e.into_inner());
        let received = self.received_locked(file)?;
        let offset = index.saturating_mul(CHUNK_BYTES);
        if received == file.size || offset < received {
            return Ok(received);
        }
        if offset > received {
            return Err(ChunkError::OutOfOrder { received });
        }
        let expected = chunk_len(file.size, index);
        if bytes.len() as u64 != expected {
            return Err(ChunkError::WrongLength {
                expected,
                got: bytes.len() as u64,
            });
        }
        let part = self.part_of(&file.sha256)?;
        let mut handle = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&part)?;
        // Not flushed to disk chunk by chunk (that took a third of a transfer's time): a
        // process that dies leaves what it wrote with the system, and what a power cut
        // leaves wrong fails the checksum below, then arrives again.
        handle.write_all(bytes)?;
        drop(handle);
        let received = received + expected;
        if received == file.size {
            self.complete(file, &part)?;
        }
        Ok(received)
    }

    /// Stores a completely arrived file if it matches its checksum, else discards it.
    fn complete(&self, file: &FileRef, part: &Path) -> Result<(), ChunkError> {
        let mut hasher = Sha256::new();
        let mut content = std::fs::File::open(part)?;
        io::copy(&mut content, &mut hasher)?;
        if hex::encode(hasher.finalize()) != file.sha256.to_ascii_lowercase() {
            let _ = std::fs::remove_file(part);
            return Err(ChunkError::Mismatch);
        }
        // On disk before it is named by its checksum: a name always means checked content.
        content.sync_all()?;
        let target = self.path_of(&file.sha256)?;
        let folder = target.parent().expect("content paths have a parent");
        std::fs::create_dir_all(folder)?;
        std::fs::rename(part, &target)?;
        // The new name on disk too (and the folder it may have created).
        sync_folder(folder)?;
        sync_folder(&self.root).map_err(ChunkError::from)
    }

    /// Chunk `index` of stored content, for a peer.
    pub fn read_chunk(&self, file: &FileRef, index: u64) -> io::Result<Vec<u8>> {
        let len = chunk_len(file.size, index);
        let mut handle = std::fs::File::open(self.path_of(&file.sha256)?)?;
        handle.seek(io::SeekFrom::Start(index.saturating_mul(CHUNK_BYTES)))?;
        let mut bytes = vec![0; len as usize];
        handle.read_exact(&mut bytes)?;
        Ok(bytes)
    }

    /// Where the content with this checksum lives. Refuses anything but 64 hex digits.
    pub fn path_of(&self, sha256: &str) -> io::Result<PathBuf> {
        if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a sha256 checksum",
            ));
        }
        let sha = sha256.to_ascii_lowercase();
        Ok(self.root.join(&sha[..2]).join(&sha))
    }

    /// Streams `body` to disk. Returns the stored file's description and whether this
    /// content was new (so a caller whose later step fails can remove it again).
    pub async fn store<S, B, E>(&self, name: &str, body: S) -> io::Result<(FileRef, bool)>
    where
        S: Stream<Item = Result<B, E>> + Unpin,
        B: AsRef<[u8]>,
        E: std::fmt::Display,
    {
        let temp = tempfile::Builder::new()
            .prefix("upload-")
            .tempfile_in(self.root.join("tmp"))?;
        let (std_file, temp_path) = temp.into_parts();
        let mut file = tokio::fs::File::from_std(std_file);
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        let mut body = body;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| io::Error::other(format!("upload interrupted: {e}")))?;
            let bytes = chunk.as_ref();
            hasher.update(bytes);
            size += bytes.len() as u64;
            file.write_all(bytes).await?;
        }
        file.flush().await?;
        file.sync_all().await?;
        drop(file);
        let sha256 = hex::encode(hasher.finalize());
        let target = self.path_of(&sha256)?;
        let is_new = !target.exists();
        if is_new {
            let folder = target.parent().expect("content paths have a parent");
            tokio::fs::create_dir_all(folder).await?;
            temp_path.persist(&target).map_err(|e| e.error)?;
            let folders = [folder.to_path_buf(), self.root.clone()];
            tokio::task::spawn_blocking(move || folders.iter().try_for_each(sync_folder))
                .await
                .map_err(io::Error::other)??;
        }
        Ok((
            FileRef {
                name: clean_file_name(name),
                size,
                sha256,
            },
            is_new,
        ))
    }

    pub async fn remove(&self, sha256: &str) {
        if let Ok(path) = self.path_of(sha256) {
            let _ = tokio::fs::remove_file(path).await;
        }
    }
}

/// Flushes a folder's entries (a file renamed into it, a folder made in it) to disk.
fn sync_folder(folder: impl AsRef<Path>) -> io::Result<()> {
    std::fs::File::open(folder)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn described(bytes: &[u8]) -> FileRef {
        FileRef {
            name: "scan.pdf".into(),
            size: bytes.len() as u64,
            sha256: hex::encode(Sha256::digest(bytes)),
        }
    }

    #[test]
    fn a_peers_file_arrives_chunk_by_chunk_and_resumes_after_a_cut() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::open(dir.path()).unwrap();
        let bytes: Vec<u8> = (0..CHUNK_BYTES + 1000).map(|i| (i % 251) as u8).collect();
        let file = described(&bytes);
        let (first, second) = bytes.split_at(CHUNK_BYTES as usize);
        assert!(matches!(
            store.take_chunk(&file, 1, second),
            Err(ChunkError::OutOfOrder { received: 0 })
        ));
        assert!(matches!(
            store.take_chunk(&file, 0, &first[..10]),
            Err(ChunkError::WrongLength { .. })
        ));
        // A crash in the middle of appending leaves part of a chunk: it is dropped.
        std::fs::write(store.part_of(&file.sha256).unwrap(), &first[..5000]).unwrap();
        assert_eq!(store.received(&file).unwrap(), 0);
        assert_eq!(store.take_chunk(&file, 0, first).unwrap(), CHUNK_BYTES);
        assert_eq!(
            store.take_chunk(&file, 0, first).unwrap(),
            CHUNK_BYTES,
            "a repeat is ignored"
        );
        assert!(!store.has(&file.sha256));
        assert_eq!(store.take_chunk(&file, 1, second).unwrap(), file.size);
        assert!(store.has(&file.sha256));
        assert_eq!(store.read_chunk(&file, 1).unwrap(), second);
    }

    #[test]
    fn content_that_does_not_match_its_checksum_is_discarded() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::open(dir.path()).unwrap();
        let file = described(b"the real content");
        assert!(matches!(
            store.take_chunk(&file, 0, b"forged  content!"),
            Err(ChunkError::Mismatch)
        ));
        assert!(!store.has(&file.sha256));
        assert_eq!(store.received(&file).unwrap(), 0, "nothing kept");
        let empty = described(b"");
        assert_eq!(store.received(&empty).unwrap(), 0);
        assert!(store.has(&empty.sha256), "an empty file needs no chunks");
    }

    #[test]
    fn checksums_are_the_only_paths() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::open(dir.path()).unwrap();
        assert!(store.path_of("../x").is_err());
        assert!(
            store
                .path_of(&"a".repeat(64))
                .unwrap()
                .starts_with(dir.path())
        );
    }
}
