//! Sign-ins to the web UI, kept in the store so a restart signs nobody out.
//!
//! A session is known by the SHA-256 of its cookie token: the database holds nothing a
//! reader could present as a cookie. It ends when unused for [`IDLE_LIMIT_MS`], when its
//! user is removed, or when the user's password or role changes after signing in.

use crate::instance::Instance;
use crate::store::Store;
use crate::user::{self, Role, User};
use crate::{DomainError, UserId};
use sha2::{Digest, Sha256};

/// A session unused this long ends.
pub const IDLE_LIMIT_MS: i64 = 12 * 3600 * 1000;
/// How stale a session's last use may be before it is written again (not on every page).
const TOUCH_AFTER_MS: i64 = 60 * 1000;

/// One sign-in, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebSession {
    pub user_id: UserId,
    /// The token every form of this session carries (cross-site request forgery).
    pub csrf: String,
    /// The password signed in with (`credential_stamp`): another one since ends it.
    pub credentials: Option<[u8; 32]>,
    /// The role signed in with: another one since ends it.
    pub role: Role,
    pub last_seen_ms: i64,
}

/// 32 random bytes as hex: a cookie or form token.
pub fn random_token() -> Result<String, DomainError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| DomainError::Store(format!("no randomness: {e}")))?;
    Ok(hex::encode(bytes))
}

fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl<S: Store> Instance<S> {
    /// Signs `user` in: returns the cookie token and the session.
    pub fn start_web_session(&self, user: &User) -> Result<(String, WebSession), DomainError> {
        let token = random_token()?;
        let session = WebSession {
            user_id: user.id,
            csrf: random_token()?,
            credentials: self.credential_stamp(&user.login)?,
            role: user.role,
            last_seen_ms: self.now_ms(),
        };
        let hash = token_hash(&token);
        let expired_before = session.last_seen_ms - IDLE_LIMIT_MS;
        self.store().write(|tx| {
            tx.expire_web_sessions(expired_before)?;
            tx.save_web_session(&hash, &session)
        })?;
        Ok((token, session))
    }

    /// The session a cookie token names and its user, if it still stands; a session that
    /// no longer does is ended.
    pub fn web_session(&self, token: &str) -> Result<Option<(WebSession, User)>, DomainError> {
        let hash = token_hash(token);
        // The session, its user and the user's password, read together.
        let found = self.store().read(|tx| {
            let Some(session) = tx.web_session(&hash)? else {
                return Ok(None);
            };
            let login = tx
                .users()?
                .into_iter()
                .find(|u| u.id == session.user_id && u.active)
                .map(|u| u.login);
            let credentials = match login {
                Some(login) => tx.user_credentials(&login)?,
                None => None,
            };
            Ok(Some((session, credentials)))
        })?;
        let Some((mut session, credentials)) = found else {
            return Ok(None);
        };
        let now = self.now_ms();
        let stands = credentials.as_ref().is_some_and(|(user, password_hash)| {
            now - session.last_seen_ms < IDLE_LIMIT_MS
                && user.role == session.role
                && Some(user::credential_stamp_of(password_hash)) == session.credentials
        });
        let user = credentials.map(|(user, _)| user);
        match user {
            Some(user) if stands => {
                if now - session.last_seen_ms >= TOUCH_AFTER_MS {
                    session.last_seen_ms = now;
                    self.store()
                        .write(|tx| tx.save_web_session(&hash, &session))?;
                }
                Ok(Some((session, user)))
            }
            _ => {
                self.store().write(|tx| tx.delete_web_session(&hash))?;
                Ok(None)
            }
        }
    }

    /// Signs out the session a cookie token names.
    pub fn end_web_session(&self, token: &str) -> Result<(), DomainError> {
        let hash = token_hash(token);
        self.store().write(|tx| tx.delete_web_session(&hash))
    }
}
