//! File fields: content streamed in (PUT) and out (GET) with its stored checksum.

use super::{ApiError, ApiPath, ApiQuery, blocking};
use crate::app::App;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::{Extension, Json};
use crmsync_domain::{Actor, FieldType, Value};
use serde::Deserialize;
use serde_json::Value as Json_;
use tokio_util::io::ReaderStream;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UploadParams {
    /// The file's name as users see it; defaults to "file".
    name: Option<String>,
}

pub async fn upload(
    State(app): State<App>,
    Extension(actor): Extension<Actor>,
    ApiPath((table_id, id, field_no)): ApiPath<(i64, i64, i64)>,
    ApiQuery(params): ApiQuery<UploadParams>,
    request: Request,
) -> Result<Json<Json_>, ApiError> {
    // Check the target before taking the body, so a wrong address costs no upload.
    let core = app.core.clone();
    blocking(move || {
        let field = core.field(field_no)?;
        if field.table_id != table_id || field.field_type != FieldType::File {
            return Err(crmsync_domain::DomainError::invalid_field(
                field_no,
                format!("field {field_no} is not a file field of table {table_id}"),
            ));
        }
        core.record(table_id, id).map(|_| ())
    })
    .await?;
    let name = params.name.unwrap_or_else(|| "file".into());
    let body = request.into_body().into_data_stream();
    let (file, is_new) = app
        .files
        .store(&name, body)
        .await
        .map_err(|e| ApiError::bad_request(format!("the upload did not complete: {e}")))?;
    let sha256 = file.sha256.clone();
    let core = app.core.clone();
    let result = blocking(move || {
        let record = core.set_file(&actor, table_id, id, field_no, file)?;
        Ok((core.table(table_id)?, record))
    })
    .await;
    match result {
        Ok((table, record)) => Ok(Json(super::records::render_record(&table, &record))),
        Err(e) => {
            if is_new {
                app.files.remove(&sha256).await;
            }
            Err(e)
        }
    }
}

pub async fn download(
    State(app): State<App>,
    ApiPath((table_id, id, field_no)): ApiPath<(i64, i64, i64)>,
) -> Result<Response, ApiError> {
    let core = app.core.clone();
    let record = blocking(move || core.record(table_id, id)).await?;
    let Some(Value::File(file)) = record.values.get(&field_no) else {
        return Err(ApiError::not_found(format!(
            "record {id} has no file in field {field_no}"
        )));
    };
    let path = app
        .files
        .path_of(&file.sha256)
        .map_err(|e| ApiError::internal("file path", e))?;
    let handle = tokio::fs::File::open(&path)
        .await
        .map_err(|e| ApiError::internal("open stored file", e))?;
    let disposition = format!(
        "attachment; filename=\"{}\"; filename*=UTF-8''{}",
        file.name
            .replace(|c: char| !c.is_ascii_graphic() || c == '"', "_"),
        percent_encode(&file.name)
    );
    let mut response = Response::new(Body::from_stream(ReaderStream::with_capacity(
        handle,
        64 * 1024,
    )));
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(file.size));
    if let Ok(v) = HeaderValue::from_str(&disposition) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    if let Ok(v) = HeaderValue::from_str(&file.sha256) {
        headers.insert("x-checksum-sha256", v);
    }
    Ok(response)
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
