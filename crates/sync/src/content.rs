//! File contents travel beside the packets that name them (B-03): a packet carries a file
//! field's description (name, size, SHA-256); the content goes in chunks of `CHUNK_BYTES`,
//! in order, and is kept only once the whole file matches its checksum. A receiver that
//! was interrupted asks for (or reads) only the chunks it lacks.

use crate::mapping::Mapping;
use crate::protocol::Packet;
use crmsync_domain::{FieldType, FileRef};

/// The size of every chunk but a file's last.
pub const CHUNK_BYTES: u64 = 8 << 20;

/// How many chunks a file of `size` bytes travels in (none for an empty file).
pub fn chunk_count(size: u64) -> u64 {
    size.div_ceil(CHUNK_BYTES)
}

/// The length of chunk `index` of a file of `size` bytes.
pub fn chunk_len(size: u64, index: u64) -> u64 {
    size.saturating_sub(index * CHUNK_BYTES).min(CHUNK_BYTES)
}

/// The files whose content a packet needs: file fields this side takes (`receiving`) or
/// sends, with a value. Each content once, whatever number of records name it.
pub fn files_in(mapping: &Mapping, packet: &Packet, receiving: bool) -> Vec<FileRef> {
    let file_routes: Vec<_> = mapping
        .routes
        .iter()
        .filter(|r| r.local.field_type == FieldType::File)
        .filter(|r| {
            if receiving {
                r.direction.receives()
            } else {
                r.direction.sends()
            }
        })
        .collect();
    let mut files: Vec<FileRef> = Vec::new();
    if file_routes.is_empty() {
        return files;
    }
    for item in &packet.items {
        for (wire_no, field) in &item.fields {
            let routed = file_routes.iter().any(|r| {
                r.wire_no == *wire_no && mapping.local_table(item.table) == Some(r.local.table_id)
            });
            if !routed || field.value.is_null() {
                continue;
            }
            // A description that is not one is reported when the packet is applied.
            if let Ok(file) = FileRef::from_peer(&field.value)
                && !files.iter().any(|f| f.sha256 == file.sha256)
            {
                files.push(file);
            }
        }
    }
    files
}

/// A chunk's file name in a folder: the packet it belongs to (its `after`), the content's
/// checksum and the chunk's place. Written before the packet, removed after it is applied.
pub fn chunk_file_name(packet_after: i64, sha256: &str, index: u64) -> String {
    format!("{packet_after:020}-{sha256}-{index:06}.{CHUNK_EXTENSION}")
}

pub const CHUNK_EXTENSION: &str = "chunk";

/// The `after` of the packet a chunk file belongs to, if `name` is a chunk file's name.
pub fn chunk_packet(name: &str) -> Option<i64> {
    let stem = name.strip_suffix(&format!(".{CHUNK_EXTENSION}"))?;
    let mut parts = stem.split('-');
    let (after, sha, index) = (parts.next()?, parts.next()?, parts.next()?);
    let well_formed = parts.next().is_none()
        && after.len() == 20
        && sha.len() == 64
        && sha.bytes().all(|b| b.is_ascii_hexdigit())
        && index.len() == 6
        && index.bytes().all(|b| b.is_ascii_digit());
    if well_formed {
        after.parse().ok()
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_cover_a_file_exactly() {
        assert_eq!(chunk_count(0), 0);
        assert_eq!(chunk_count(1), 1);
        assert_eq!(chunk_count(CHUNK_BYTES), 1);
        assert_eq!(chunk_count(CHUNK_BYTES + 1), 2);
        assert_eq!(chunk_len(CHUNK_BYTES + 5, 0), CHUNK_BYTES);
        assert_eq!(chunk_len(CHUNK_BYTES + 5, 1), 5);
        assert_eq!(chunk_len(CHUNK_BYTES + 5, 2), 0);
    }

    #[test]
    fn chunk_names_are_recognised_and_nothing_else() {
        let sha = "0f".repeat(32);
        let name = chunk_file_name(42, &sha, 3);
        assert_eq!(chunk_packet(&name), Some(42));
        assert_eq!(chunk_packet(&format!("{name}.tmp")), None);
        assert_eq!(chunk_packet("../00000000000000000042-x-000003.chunk"), None);
        assert!(!crate::folder::is_packet_name(&name));
    }
}
