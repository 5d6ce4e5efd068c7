use super::StoreResult;
use crate::UserId;
use crate::user::{Role, User};
use crate::web_session::WebSession;

pub struct NewUser<'a> {
    pub login: &'a str,
    pub full_name: &'a str,
    pub role: Role,
    pub password_hash: &'a str,
}

#[derive(Default)]
pub struct UserUpdate {
    pub full_name: Option<String>,
    pub role: Option<Role>,
    pub password_hash: Option<String>,
    pub active: Option<bool>,
}

/// Users and their browser sessions.
pub trait UserStore {
    fn users(&mut self) -> StoreResult<Vec<User>>;
    /// The user and their password hash.
    fn user_credentials(&mut self, login: &str) -> StoreResult<Option<(User, String)>>;
    fn insert_user(&mut self, user: &NewUser<'_>) -> StoreResult<UserId>;
    fn update_user(&mut self, id: UserId, update: &UserUpdate) -> StoreResult<()>;

    /// Web sessions, keyed by the SHA-256 of their token (insert or replace).
    fn save_web_session(&mut self, token_hash: &[u8; 32], session: &WebSession) -> StoreResult<()>;
    fn web_session(&mut self, token_hash: &[u8; 32]) -> StoreResult<Option<WebSession>>;
    fn delete_web_session(&mut self, token_hash: &[u8; 32]) -> StoreResult<()>;
    /// Removes sessions last used before `before_ms`.
    fn expire_web_sessions(&mut self, before_ms: i64) -> StoreResult<usize>;
}
