//! HTTP Basic authentication on every route but health.

use super::ApiError;
use crate::app::App;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::StatusCode;
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::Response;
use base64::Engine;
use crmsync_domain::{Actor, DomainError, Origin};
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
    let user = match check_password(&app, &login, password, address).await {
        Ok(user) => user,
        Err(PasswordRefusal::Wait(wait)) => {
            let seconds = wait.as_secs() + 1;
            return Err(ApiError {
                retry_after: Some(seconds),
                ..ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "too_many_attempts",
                    format!("too many wrong passwords for this login; try again in {seconds} s"),
                )
            });
        }
        Err(PasswordRefusal::Wrong) => return Err(ApiError::from(DomainError::Unauthorized)),
        Err(PasswordRefusal::Failed(e)) => return Err(e),
    };
    request.extensions_mut().insert(Actor {
        user,
        origin: Origin::Api,
    });
    Ok(next.run(request).await)
}

/// Why a password was not accepted.
pub enum PasswordRefusal {
    /// Too many wrong ones: not checked, try again after this.
    Wait(std::time::Duration),
    Wrong,
    Failed(ApiError),
}

/// Checks a login's password as every sign-in does (API and web): the attempt is charged
/// against the throttle before any hashing, and passwords are hashed on a few threads of
/// their own, so a burst of guesses costs neither memory nor all the CPU.
pub async fn check_password(
    app: &App,
    login: &str,
    password: String,
    address: std::net::IpAddr,
) -> Result<crmsync_domain::User, PasswordRefusal> {
    // A pause holds even for the right password, or the cache would answer guesses fast.
    if let Some(wait) = app.login_throttle.wait(login, address) {
        return Err(PasswordRefusal::Wait(wait));
    }
    if let Some(user) = app.core.authenticate_cached(login, &password) {
        return Ok(user);
    }
    app.login_throttle
        .attempt(login, address)
        .map_err(PasswordRefusal::Wait)?;
    let (core, checked) = (app.core.clone(), login.to_string());
    let checked = app
        .password_hashers
        .run(move || core.authenticate(&checked, &password))
        .await
        .map_err(PasswordRefusal::Failed)?
        .map_err(ApiError::from);
    match checked {
        Ok(user) => {
            app.login_throttle.succeeded(login, address);
            Ok(user)
        }
        Err(e) if e.status == StatusCode::UNAUTHORIZED => {
            tracing::warn!("wrong password for {login:?} from {address}");
            Err(PasswordRefusal::Wrong)
        }
        Err(e) => Err(PasswordRefusal::Failed(e)),
    }
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

/// The threads passwords are hashed on. argon2 takes 19 MiB a hash; freed memory stays
/// with the thread that used it, so hashing on a few threads of its own (instead of any of
/// the blocking pool's hundreds) keeps what guessing can cost at a few hashes' worth.
#[derive(Clone)]
pub struct PasswordHashers {
    jobs: std::sync::mpsc::SyncSender<Box<dyn FnOnce() + Send>>,
}

/// Hashes waiting beyond this are refused at once (the server is busy), not queued.
const WAITING_HASHES: usize = 256;

impl PasswordHashers {
    pub fn start(threads: usize) -> PasswordHashers {
        let (jobs, queue) =
            std::sync::mpsc::sync_channel::<Box<dyn FnOnce() + Send>>(WAITING_HASHES);
        let queue = std::sync::Arc::new(std::sync::Mutex::new(queue));
        for n in 0..threads {
            let queue = queue.clone();
            std::thread::Builder::new()
                .name(format!("password-hasher-{n}"))
                .spawn(move || {
                    loop {
                        let job = queue.lock().unwrap_or_else(|p| p.into_inner()).recv();
                        match job {
                            Ok(job) => job(),
                            Err(_) => return,
                        }
                    }
                })
                .expect("a thread starts");
        }
        PasswordHashers { jobs }
    }

    /// Runs `work` on a hashing thread.
    pub async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        let (done, answer) = tokio::sync::oneshot::channel();
        let busy = || {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "busy",
                "too many sign-ins at once; try again in a moment",
            )
        };
        self.jobs
            .try_send(Box::new(move || {
                let _ = done.send(work());
            }))
            .map_err(|_| busy())?;
        answer.await.map_err(|_| busy())
    }
}
