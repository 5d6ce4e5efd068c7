//! A file field's content: uploaded and downloaded.

use crate::app::App;
use crate::web::{Signed, WebError, WebResult, work};
use axum::extract::{Multipart, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};

/// A file chosen in the record form: streamed into the file store, then set through the
/// write path. The CSRF token comes first in the multipart body.
pub(super) async fn upload_file(
    State(app): State<App>,
    signed: Signed,
    Path((table_id, id, field_no)): Path<(i64, i64, i64)>,
    mut multipart: Multipart,
) -> WebResult<Response> {
    let lang = signed.page.lang;
    let bad = |m: String| WebError::new(lang, StatusCode::BAD_REQUEST, m);
    let mut token_ok = false;
    while let Some(part) = multipart
        .next_field()
        .await
        .map_err(|e| bad(e.to_string()))?
    {
        match part.name() {
            Some("_csrf") => {
                let token = part.text().await.map_err(|e| bad(e.to_string()))?;
                token_ok = crate::web::session::same_token(&token, &signed.page.csrf);
            }
            Some("file") if token_ok => {
                let name = part.file_name().unwrap_or("file").to_string();
                let (file, is_new) = app
                    .files
                    .store(&name, part)
                    .await
                    .map_err(|e| bad(format!("the upload did not complete: {e}")))?;
                let (app2, actor, sha) = (app.clone(), signed.actor.clone(), file.sha256.clone());
                let result = work(lang, move || {
                    app2.core.set_file(&actor, table_id, id, field_no, file)
                })
                .await;
                if result.is_err() && is_new {
                    app.files.remove(&sha).await;
                }
                result?;
                return Ok(
                    Redirect::to(&format!("/tables/{table_id}/{id}?notice=saved")).into_response(),
                );
            }
            _ => {}
        }
    }
    Err(if token_ok {
        bad("choose a file to upload".into())
    } else {
        WebError::new(
            lang,
            StatusCode::FORBIDDEN,
            "this form has expired; reload the page and try again",
        )
    })
}

pub(super) async fn download_file(
    State(app): State<App>,
    _signed: Signed,
    Path((table_id, id, field_no)): Path<(i64, i64, i64)>,
) -> Response {
    crate::api::files::download(State(app), crate::api::ApiPath((table_id, id, field_no)))
        .await
        .into_response()
}
