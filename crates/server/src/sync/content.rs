//! File contents beside the packets that name them (B-03), on every transport. A packet
//! is applied only once every file it names is stored here, so a record never points at
//! content that is not there. Content moves in chunks (`crmsync_sync::content`), each
//! checked as it lands and the whole file against its SHA-256 at the end; an interrupted
//! transfer resumes at the first chunk the receiver lacks.
//!
//! - HTTP, active → passive: `POST content/{sha}` asks how much arrived, then
//!   `PUT content/{sha}/{index}?size=N` sends the rest, before the packet is pushed.
//! - HTTP, passive → active: the active side fetches `GET content/{sha}/{index}` after a
//!   pull, before it applies the packet.
//! - Folders: chunk files are written before the packet file and read before it is
//!   applied; they are removed with it.

use super::active::{Failure, request_json};
use super::channel::{Authenticated, request};
use super::folder_channel::Channel;
use super::folders::Folders;
use crate::api::{ApiError, ApiQuery, blocking};
use crate::app::App;
use crate::files::ChunkError;
use axum::Extension;
use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use crmsync_domain::sync::SyncConfig;
use crmsync_domain::{DomainError, FileRef};
use crmsync_sync::content::{CHUNK_BYTES, chunk_count, chunk_file_name, chunk_len, files_in};
use crmsync_sync::{Mapping, Packet};
use reqwest::Method;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::time::Duration;

const CHUNK_TIMEOUT: Duration = Duration::from_secs(120);

/// Refuses to apply a packet that names content not stored here.
pub fn ensure_present(app: &App, mapping: &Mapping, packet: &Packet) -> Result<(), DomainError> {
    match files_in(mapping, packet, true)
        .into_iter()
        .find(|f| !app.files.has(&f.sha256))
    {
        None => Ok(()),
        Some(file) => Err(DomainError::Unavailable(format!(
            "the content of file \"{}\" ({} bytes, SHA-256 {}) has not arrived yet",
            file.name, file.size, file.sha256
        ))),
    }
}

fn chunk_failure(file: &FileRef, e: ChunkError) -> String {
    format!("file \"{}\" ({}): {e}", file.name, file.sha256)
}

#[derive(Serialize, Deserialize)]
pub struct Offer {
    pub size: u64,
}

#[derive(Serialize, Deserialize)]
pub struct Received {
    pub received: u64,
}

/// Active side: sends the passive side whatever it lacks of these files.
pub(crate) async fn upload(
    app: &App,
    sync: &SyncConfig,
    files: Vec<FileRef>,
) -> Result<(), Failure> {
    for file in files {
        let offer = serde_json::to_vec(&Offer { size: file.size }).unwrap_or_default();
        let endpoint = format!("content/{}", file.sha256);
        let reply: Received =
            request_json(app, sync, Method::POST, &endpoint, offer, CHUNK_TIMEOUT).await?;
        let mut received = reply.received;
        let read = |index: u64| {
            let (store, file) = (app.files.clone(), file.clone());
            tokio::task::spawn_blocking(move || store.read_chunk(&file, index))
        };
        // The next chunk is read while the one before travels and is written there.
        let mut reading = (received < file.size).then(|| read(received / CHUNK_BYTES));
        while received < file.size {
            let index = received / CHUNK_BYTES;
            let chunk = reading
                .take()
                .unwrap_or_else(|| read(index))
                .await
                .map_err(|e| Failure(e.to_string()))?
                .map_err(|e| {
                    Failure(format!(
                        "cannot read the content of file \"{}\" here: {e}",
                        file.name
                    ))
                })?;
            if index + 1 < chunk_count(file.size) {
                reading = Some(read(index + 1));
            }
            let endpoint = format!("content/{}/{index}?size={}", file.sha256, file.size);
            let reply: Received =
                request_json(app, sync, Method::PUT, &endpoint, chunk, CHUNK_TIMEOUT).await?;
            if reply.received != received + chunk_len(file.size, index) {
                // It holds another amount than expected (a restart there): ask again
                // from where it is.
                reading = None;
            }
            if reply.received <= received {
                return Err(Failure(format!(
                    "the passive side did not take chunk {index} of file \"{}\"",
                    file.name
                )));
            }
            received = reply.received;
        }
    }
    Ok(())
}

/// Active side: fetches from the passive side the files of a pulled packet not stored here.
pub(crate) async fn fetch(
    app: &App,
    sync: &SyncConfig,
    files: Vec<FileRef>,
) -> Result<(), Failure> {
    for file in files {
        let (store, file2) = (app.files.clone(), file.clone());
        let mut received = tokio::task::spawn_blocking(move || store.received(&file2))
            .await
            .map_err(|e| Failure(e.to_string()))?
            .map_err(|e| Failure(chunk_failure(&file, e)))?;
        while received < file.size {
            let index = received / CHUNK_BYTES;
            let endpoint = format!("content/{}/{index}", file.sha256);
            // POST: a sealed request has a body (GET is still served, for older tools).
            let chunk = request(
                app,
                sync,
                Method::POST,
                &endpoint,
                Vec::new(),
                CHUNK_TIMEOUT,
            )
            .await?;
            let (store, file2) = (app.files.clone(), file.clone());
            received = tokio::task::spawn_blocking(move || store.take_chunk(&file2, index, &chunk))
                .await
                .map_err(|e| Failure(e.to_string()))?
                .map_err(|e| Failure(chunk_failure(&file, e)))?;
        }
    }
    Ok(())
}

/// The files of a packet this side takes and does not store yet.
pub fn missing(app: &App, mapping: &Mapping, packet: &Packet) -> Vec<FileRef> {
    files_in(mapping, packet, true)
        .into_iter()
        .filter(|f| !app.files.has(&f.sha256))
        .collect()
}

/// Passive side: how much of a file has arrived.
pub async fn offer(
    State(app): State<App>,
    Extension(Authenticated(_)): Extension<Authenticated>,
    Path((_, sha256)): Path<(i64, String)>,
    body: Bytes,
) -> Result<Json<Received>, ApiError> {
    let offer: Offer = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("malformed sync message: {e}")))?;
    let file = described(sha256, offer.size)?;
    let store = app.files.clone();
    let received = blocking(move || store.received(&file).map_err(chunk_error)).await?;
    Ok(Json(Received { received }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChunkParams {
    size: u64,
}

/// Passive side: takes the next chunk of a file.
pub async fn put_chunk(
    State(app): State<App>,
    Extension(Authenticated(_)): Extension<Authenticated>,
    Path((_, sha256, index)): Path<(i64, String, u64)>,
    ApiQuery(params): ApiQuery<ChunkParams>,
    body: Bytes,
) -> Result<Json<Received>, ApiError> {
    let file = described(sha256, params.size)?;
    let store = app.files.clone();
    let received = blocking(move || match store.take_chunk(&file, index, &body) {
        // The sender continues from what is here.
        Err(ChunkError::OutOfOrder { received }) => Ok(received),
        other => other.map_err(chunk_error),
    })
    .await?;
    Ok(Json(Received { received }))
}

/// Passive side: hands out a chunk of stored content.
pub async fn get_chunk(
    State(app): State<App>,
    Extension(Authenticated(_)): Extension<Authenticated>,
    Path((_, sha256, index)): Path<(i64, String, u64)>,
) -> Result<Response, ApiError> {
    let store = app.files.clone();
    let chunk = blocking(move || {
        let path = store
            .path_of(&sha256)
            .map_err(|e| DomainError::invalid(e.to_string()))?;
        let size = std::fs::metadata(&path)
            .map_err(|_| DomainError::NotFound(format!("no stored content {sha256}")))?
            .len();
        if index >= chunk_count(size) {
            return Err(DomainError::invalid(format!(
                "content {sha256} has no chunk {index}"
            )));
        }
        store
            .read_chunk(
                &FileRef {
                    name: String::new(),
                    size,
                    sha256,
                },
                index,
            )
            .map_err(|e| DomainError::Store(e.to_string()))
    })
    .await?;
    let mut response = Response::new(Body::from(chunk));
    *response.status_mut() = StatusCode::OK;
    Ok(response)
}

fn described(sha256: String, size: u64) -> Result<FileRef, ApiError> {
    FileRef::from_peer(&serde_json::json!({ "name": "", "size": size, "sha256": sha256 }))
        .map_err(ApiError::bad_request)
}

fn chunk_error(e: ChunkError) -> DomainError {
    match e {
        ChunkError::Io(e) => DomainError::Store(e.to_string()),
        other => DomainError::invalid(other.to_string()),
    }
}

/// What reading a packet's chunk files from a folder came to.
pub enum FolderContent {
    Complete,
    /// A chunk file is not there (yet).
    Missing(String),
    /// What arrived is not the content the packet describes.
    Rejected(String),
}

/// Folders: writes the chunk files of `files` for the packet that follows `after`,
/// skipping those already there (written before an interruption).
pub fn write_chunks(
    app: &App,
    folders: &mut dyn Folders,
    dir: &str,
    after: i64,
    files: &[FileRef],
    channel: &mut Channel,
) -> Result<(), DomainError> {
    if files.is_empty() {
        return Ok(());
    }
    let place = folders.describe(dir);
    let unavailable =
        |e: std::io::Error| DomainError::Unavailable(format!("cannot write to {place}: {e}"));
    let there: HashSet<String> = folders
        .list(dir)
        .map_err(unavailable)?
        .into_iter()
        .collect();
    for file in files {
        for index in 0..chunk_count(file.size) {
            let name = chunk_file_name(after, &file.sha256, index);
            if there.contains(&name) {
                continue;
            }
            let chunk = app.files.read_chunk(file, index).map_err(|e| {
                DomainError::Unavailable(format!(
                    "cannot read the content of file \"{}\" here: {e}",
                    file.name
                ))
            })?;
            // Sealed as its own name: a chunk cannot stand in for another.
            let sealed = channel
                .state
                .seal(channel.role, &name, &chunk, app.core.now_ms())
                .ok_or_else(|| DomainError::Unavailable("not paired with the other side".into()))?;
            folders.write(dir, &name, &sealed).map_err(unavailable)?;
        }
    }
    Ok(())
}

/// Folders: reads what is missing here of `files` from the chunk files of the packet that
/// follows `after`.
pub fn read_chunks(
    app: &App,
    folders: &mut dyn Folders,
    dir: &str,
    after: i64,
    files: &[FileRef],
    channel: &mut Channel,
) -> Result<FolderContent, DomainError> {
    for file in files {
        let mut received = match app.files.received(file) {
            Ok(received) => received,
            Err(e) => return Ok(FolderContent::Rejected(chunk_failure(file, e))),
        };
        while received < file.size {
            let index = received / CHUNK_BYTES;
            let name = chunk_file_name(after, &file.sha256, index);
            let chunk = match folders.read(dir, &name) {
                Ok(chunk) => chunk,
                // A link, pipe, device or oversized file under a chunk's name: never content.
                Err(e) if super::folders::is_refused(&e) => {
                    let why = format!("file \"{}\" ({}): {name} is {e}", file.name, file.sha256);
                    return Ok(FolderContent::Rejected(why));
                }
                Err(_) => return Ok(FolderContent::Missing(name)),
            };
            // Content-addressed, so it may be read again after an interruption: its
            // number is not used up.
            let accepts = channel.accepts();
            let chunk =
                match channel
                    .state
                    .open(&chunk, accepts, false, CHUNK_BYTES as usize + 1024)
                {
                    Ok((header, body)) if header.kind == name => body,
                    Ok((header, _)) => {
                        let why = format!("{name} is sealed as {}", header.kind);
                        return Ok(FolderContent::Rejected(why));
                    }
                    Err(refusal) => {
                        let why =
                            format!("file \"{}\" ({}): {name} {refusal}", file.name, file.sha256);
                        return Ok(FolderContent::Rejected(why));
                    }
                };
            received = match app.files.take_chunk(file, index, &chunk) {
                Ok(received) => received,
                Err(ChunkError::Io(e)) => return Err(DomainError::Store(e.to_string())),
                Err(e) => return Ok(FolderContent::Rejected(chunk_failure(file, e))),
            };
        }
    }
    Ok(FolderContent::Complete)
}
