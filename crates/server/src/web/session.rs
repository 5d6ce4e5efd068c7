//! Browser sessions: a random token in an HttpOnly, SameSite=Lax cookie, kept in memory
//! (a restart signs everyone out), each with its own CSRF token that every form carries.

use axum::http::HeaderMap;
use crmsync_domain::UserId;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const SESSION_COOKIE: &str = "crmsync_session";
/// A session unused this long ends.
const IDLE_LIMIT: Duration = Duration::from_secs(12 * 3600);

#[derive(Debug, Clone)]
pub struct Session {
    pub user_id: UserId,
    pub csrf: String,
    /// The password the user signed in with (`credential_stamp`): another one since ends
    /// the session.
    pub credentials: Option<[u8; 32]>,
    last_seen: Instant,
}

#[derive(Clone, Default)]
pub struct Sessions {
    live: Arc<Mutex<HashMap<String, Session>>>,
}

/// 32 random bytes as hex.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the system has a random source");
    hex::encode(bytes)
}

impl Sessions {
    /// Starts a session; returns its token.
    pub fn start(&self, user_id: UserId, credentials: Option<[u8; 32]>) -> String {
        let token = random_token();
        let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        live.retain(|_, s| s.last_seen.elapsed() < IDLE_LIMIT);
        live.insert(
            token.clone(),
            Session {
                user_id,
                csrf: random_token(),
                credentials,
                last_seen: Instant::now(),
            },
        );
        token
    }

    pub fn get(&self, token: &str) -> Option<Session> {
        let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        let session = live.get_mut(token)?;
        if session.last_seen.elapsed() >= IDLE_LIMIT {
            live.remove(token);
            return None;
        }
        session.last_seen = Instant::now();
        Some(session.clone())
    }

    pub fn end(&self, token: &str) {
        self.live
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(token);
    }
}

/// A cookie's value from the request headers.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|h| h.to_str().ok())
        .flat_map(|h| h.split(';'))
        .find_map(|pair| {
            let (key, value) = pair.trim().split_once('=')?;
            (key == name).then(|| value.to_string())
        })
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Lax, Secure over HTTPS.
pub fn set_cookie(name: &str, value: &str, secure: bool, max_age: Option<u64>) -> String {
    let mut cookie = format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax");
    if secure {
        cookie.push_str("; Secure");
    }
    if let Some(seconds) = max_age {
        cookie.push_str(&format!("; Max-Age={seconds}"));
    }
    cookie
}

/// Compares two tokens in time that does not depend on where they differ.
pub fn same_token(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}
