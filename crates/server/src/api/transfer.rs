//! CSV import (request body) and export (streamed response).

use super::{ApiError, ApiPath, ApiQuery, blocking};
use crate::app::App;
use crate::csv_io::{self, CsvEncoding, ExportOptions, ImportOptions, ImportReport};
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::response::Response;
use axum::{Extension, Json};
use crmsync_domain::{Actor, Origin};
use futures_util::StreamExt;
use serde::Deserialize;
use std::io::{self, Write};
use tokio::io::AsyncWriteExt;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportParams {
    encoding: Option<String>,
    delimiter: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportParams {
    encoding: Option<String>,
    delimiter: Option<String>,
    status: Option<String>,
    /// `neutralize` (the default) or `keep`.
    formulas: Option<String>,
}

/// The largest CSV file an import takes (it is spooled to disk, then read in bounded
/// memory): far more than a spreadsheet holds, far less than a full disk.
pub const MAX_IMPORT_BYTES: u64 = 1 << 30;

pub async fn import(
    State(app): State<App>,
    Extension(mut actor): Extension<Actor>,
    ApiPath(table_id): ApiPath<i64>,
    ApiQuery(params): ApiQuery<ImportParams>,
    request: Request,
) -> Result<Json<ImportReport>, ApiError> {
    let options = ImportOptions {
        encoding: params
            .encoding
            .as_deref()
            .map(str::parse)
            .transpose()
            .map_err(ApiError::bad_request)?
            .unwrap_or_default(),
        delimiter: match params.delimiter.as_deref() {
            Some(d) => csv_io::parse_delimiter(d).map_err(ApiError::bad_request)?,
            None => None,
        },
    };
    // Spool the body to disk first: a dropped connection then imports nothing.
    let spool = tempfile::tempfile_in(app.data_dir.join("files").join("tmp"))
        .map_err(|e| ApiError::internal("import spool", e))?;
    let mut file = tokio::fs::File::from_std(spool);
    let mut body = request.into_body().into_data_stream();
    let mut spooled = 0u64;
    while let Some(chunk) = body.next().await {
        let chunk = chunk
            .map_err(|e| ApiError::bad_request(format!("the upload did not complete: {e}")))?;
        spooled += chunk.len() as u64;
        if spooled > MAX_IMPORT_BYTES {
            return Err(ApiError::new(
                axum::http::StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                format!(
                    "a CSV import may hold at most {} MiB; split the file",
                    MAX_IMPORT_BYTES >> 20
                ),
            ));
        }
        file.write_all(&chunk)
            .await
            .map_err(|e| ApiError::internal("import spool", e))?;
    }
    let file = file.into_std().await;
    actor.origin = Origin::Import;
    let report = crate::records::import_csv(&app, actor, table_id, file, options).await?;
    Ok(Json(report))
}

pub async fn export(
    State(app): State<App>,
    ApiPath(table_id): ApiPath<i64>,
    ApiQuery(params): ApiQuery<ExportParams>,
) -> Result<Response, ApiError> {
    let encoding: CsvEncoding = params
        .encoding
        .as_deref()
        .map(str::parse)
        .transpose()
        .map_err(ApiError::bad_request)?
        .unwrap_or(CsvEncoding::Utf8);
    let delimiter = match params.delimiter.as_deref() {
        Some(d) => csv_io::parse_delimiter(d)
            .map_err(ApiError::bad_request)?
            .unwrap_or(b','),
        None => b',',
    };
    let status = super::records::parse_status(params.status.as_deref())?;
    let keep_formulas = match params.formulas.as_deref() {
        None | Some("neutralize") => false,
        Some("keep") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "formulas: \"{other}\" is not one of neutralize, keep"
            )));
        }
    };
    let core = app.core.clone();
    let table = blocking(move || core.table(table_id)).await?;
    let (sender, receiver) = tokio::sync::mpsc::channel::<Result<Bytes, io::Error>>(8);
    let core = app.core.clone();
    tokio::task::spawn_blocking(move || {
        let mut out = ChannelWriter {
            sender: sender.clone(),
            buffer: Vec::new(),
        };
        let options = ExportOptions {
            encoding,
            delimiter,
            status,
            neutralize_formulas: !keep_formulas,
        };
        if let Err(e) = csv_io::export(&core, table_id, &mut out, options) {
            tracing::warn!("export of table {table_id} stopped: {e}");
            let _ = sender.blocking_send(Err(io::Error::other(e.to_string())));
        }
    });
    let stream = futures_util::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|item| (item, receiver))
    });
    let charset = if encoding == CsvEncoding::Windows1251 {
        "windows-1251"
    } else {
        "utf-8"
    };
    let mut response = Response::new(Body::from_stream(stream));
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&format!("text/csv; charset={charset}")) {
        headers.insert(header::CONTENT_TYPE, v);
    }
    let file_name: String = table
        .name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{file_name}.csv\"")) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(response)
}

/// Hands blocking writes to the async response body in 64 KiB chunks.
struct ChannelWriter {
    sender: tokio::sync::mpsc::Sender<Result<Bytes, io::Error>>,
    buffer: Vec<u8>,
}

impl ChannelWriter {
    fn send(&mut self) -> io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::take(&mut self.buffer));
        self.sender
            .blocking_send(Ok(chunk))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the client went away"))
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buffer.extend_from_slice(data);
        if self.buffer.len() >= 64 * 1024 {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}
