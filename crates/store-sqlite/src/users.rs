//! Users and their browser sessions.

use crate::{SqliteTx, sql_error};
use crmsync_domain::store::{NewUser, StoreResult, UserStore, UserUpdate};
use crmsync_domain::web_session::WebSession;
use crmsync_domain::{Role, User, UserId};
use rusqlite::{OptionalExtension, params};

fn user_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<User> {
    let role: String = row.get(3)?;
    Ok(User {
        id: row.get(0)?,
        login: row.get(1)?,
        full_name: row.get(2)?,
        role: Role::parse(&role).unwrap_or(Role::User),
        active: row.get(4)?,
    })
}

const USER_COLUMNS: &str = "id, login, full_name, role, active";

impl UserStore for SqliteTx<'_> {
    fn users(&mut self) -> StoreResult<Vec<User>> {
        let mut stmt = self
            .tx
            .prepare_cached(&format!("SELECT {USER_COLUMNS} FROM users ORDER BY id"))
            .map_err(sql_error)?;
        let users = stmt
            .query_map([], user_from_row)
            .map_err(sql_error)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(sql_error)?;
        Ok(users)
    }

    fn user_credentials(&mut self, login: &str) -> StoreResult<Option<(User, String)>> {
        self.tx
            .query_row(
                &format!("SELECT {USER_COLUMNS}, password_hash FROM users WHERE login = ?1"),
                [login],
                |row| Ok((user_from_row(row)?, row.get(5)?)),
            )
            .optional()
            .map_err(sql_error)
    }

    fn insert_user(&mut self, user: &NewUser<'_>) -> StoreResult<UserId> {
        self.tx
            .execute(
                "INSERT INTO users (login, full_name, role, password_hash) VALUES (?1, ?2, ?3, ?4)",
                params![
                    user.login,
                    user.full_name,
                    user.role.as_str(),
                    user.password_hash
                ],
            )
            .map_err(sql_error)?;
        Ok(self.tx.last_insert_rowid())
    }

    fn update_user(&mut self, id: UserId, update: &UserUpdate) -> StoreResult<()> {
        let tx = &self.tx;
        let set = |column: &str, value: &dyn rusqlite::ToSql| {
            tx.execute(
                &format!("UPDATE users SET {column} = ?1 WHERE id = ?2"),
                params![value, id],
            )
            .map(|_| ())
            .map_err(sql_error)
        };
        if let Some(v) = &update.full_name {
            set("full_name", v)?;
        }
        if let Some(v) = update.role {
            set("role", &v.as_str())?;
        }
        if let Some(v) = &update.password_hash {
            set("password_hash", v)?;
        }
        if let Some(v) = update.active {
            set("active", &v)?;
        }
        Ok(())
    }

    fn save_web_session(&mut self, token_hash: &[u8; 32], session: &WebSession) -> StoreResult<()> {
        self.tx
            .execute(
                "INSERT OR REPLACE INTO web_sessions (token_hash, user_id, csrf, credentials, role, last_seen_ms) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    &token_hash[..],
                    session.user_id,
                    session.csrf,
                    session.credentials.as_ref().map(|c| &c[..]),
                    session.role.as_str(),
                    session.last_seen_ms
                ],
            )
            .map(|_| ())
            .map_err(sql_error)
    }

    fn web_session(&mut self, token_hash: &[u8; 32]) -> StoreResult<Option<WebSession>> {
        self.tx
            .query_row(
                "SELECT user_id, csrf, credentials, role, last_seen_ms FROM web_sessions WHERE token_hash = ?1",
                [&token_hash[..]],
                |row| {
                    let credentials: Option<Vec<u8>> = row.get(2)?;
                    let role: String = row.get(3)?;
                    Ok(WebSession {
                        user_id: row.get(0)?,
                        csrf: row.get(1)?,
                        // A stamp of another length than written is no stamp: the session
                        // then ends at the comparison.
                        credentials: credentials.and_then(|c| c.try_into().ok()),
                        role: Role::parse(&role).unwrap_or(Role::User),
                        last_seen_ms: row.get(4)?,
                    })
                },
            )
            .optional()
            .map_err(sql_error)
    }

    fn delete_web_session(&mut self, token_hash: &[u8; 32]) -> StoreResult<()> {
        self.tx
            .execute(
                "DELETE FROM web_sessions WHERE token_hash = ?1",
                [&token_hash[..]],
            )
            .map(|_| ())
            .map_err(sql_error)
    }

    fn expire_web_sessions(&mut self, before_ms: i64) -> StoreResult<usize> {
        self.tx
            .execute(
                "DELETE FROM web_sessions WHERE last_seen_ms < ?1",
                [before_ms],
            )
            .map_err(sql_error)
    }
}
