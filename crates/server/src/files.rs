//! Stored file contents, addressed by their SHA-256: written streaming to a temporary file
//! while hashing, then renamed into place, so a file is never whole in memory and never
//! half-visible. Client-given names are metadata only and never touch a path.

use crmsync_domain::FileRef;
use futures_util::{Stream, StreamExt};
use sha2::{Digest, Sha256};
use std::io;
use std::path::{Path, PathBuf};
use tokio::io::AsyncWriteExt;

#[derive(Clone, Debug)]
pub struct FileStore {
    root: PathBuf,
}

impl FileStore {
    pub fn open(root: &Path) -> io::Result<FileStore> {
        std::fs::create_dir_all(root.join("tmp"))?;
        Ok(FileStore {
            root: root.to_path_buf(),
        })
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
            tokio::fs::create_dir_all(target.parent().expect("content paths have a parent"))
                .await?;
            temp_path.persist(&target).map_err(|e| e.error)?;
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

/// The last path component of a client-given name, without control characters.
pub fn clean_file_name(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or_default();
    let cleaned: String = base.chars().filter(|c| !c.is_control()).take(255).collect();
    let cleaned = cleaned.trim();
    if cleaned.is_empty() || cleaned == "." || cleaned == ".." {
        "file".to_string()
    } else {
        cleaned.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_never_carry_paths() {
        assert_eq!(clean_file_name("../../etc/passwd"), "passwd");
        assert_eq!(clean_file_name("C:\\x\\report.pdf"), "report.pdf");
        assert_eq!(clean_file_name(".."), "file");
        assert_eq!(clean_file_name("счёт.pdf"), "счёт.pdf");
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
