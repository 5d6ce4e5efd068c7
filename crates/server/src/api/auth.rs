//! HTTP Basic authentication on every route but health.

use super::{ApiError, blocking};
use crate::app::App;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::StatusCode;
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::Response;
use base64::Engine;
use crmsync_domain::{Actor, Origin};
use std::net::SocketAddr;

pub async fn require_user(
    State(app): State<App>,
    mut request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let (login, password) = basic_credentials(&request)?;
    let address = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
        .unwrap_or(std::net::Ipv4Addr::UNSPECIFIED.into());
    if let Some(wait) = app.login_throttle.wait(&login, address) {
        let seconds = wait.as_secs() + 1;
        return Err(ApiError {
            retry_after: Some(seconds),
            ..ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_attempts",
                format!("too many wrong passwords for \"{login}\"; try again in {seconds} s"),
            )
        });
    }
    let core = app.core.clone();
    let checked_login = login.clone();
    let user = match blocking(move || core.authenticate(&checked_login, &password)).await {
        Ok(user) => {
            app.login_throttle.succeeded(&login, address);
            user
        }
        Err(e) => {
            if e.status == StatusCode::UNAUTHORIZED {
                tracing::warn!("wrong password for \"{login}\" from {address}");
                app.login_throttle.failed(&login, address);
            }
            return Err(e);
        }
    };
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
