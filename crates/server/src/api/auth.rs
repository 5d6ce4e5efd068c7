//! HTTP Basic authentication on every route but health.

use super::{ApiError, blocking};
use crate::app::App;
use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::Response;
use base64::Engine;
use crmsync_domain::{Actor, Origin};

pub async fn require_user(
    State(app): State<App>,
    mut request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let (login, password) = basic_credentials(&request)?;
    let core = app.core.clone();
    let user = blocking(move || core.authenticate(&login, &password)).await?;
    request.extensions_mut().insert(Actor {
        user,
        origin: Origin::Api,
    });
    Ok(next.run(request).await)
}

fn basic_credentials(request: &Request) -> Result<(String, String), ApiError> {
    let missing =
        || ApiError::unauthorized("sign in with HTTP Basic authentication (login and password)");
    let header = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .ok_or_else(missing)?;
    let encoded = header
        .strip_prefix("Basic ")
        .or_else(|| header.strip_prefix("basic "))
        .ok_or_else(missing)?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(|| {
            ApiError::unauthorized("the Authorization header is not valid Basic credentials")
        })?;
    let (login, password) = decoded.split_once(':').ok_or_else(|| {
        ApiError::unauthorized("the Authorization header is not valid Basic credentials")
    })?;
    Ok((login.to_string(), password.to_string()))
}
