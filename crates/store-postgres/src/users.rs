//! Users and their browser sessions.

use crate::{PgTx, get};
use crmsync_domain::store::{NewUser, StoreResult, UserStore, UserUpdate};
use crmsync_domain::web_session::WebSession;
use crmsync_domain::{Role, User, UserId};
use postgres::Row;
use postgres::types::ToSql;

fn user_from_row(row: &Row) -> StoreResult<User> {
    let role: &str = get(row, 3)?;
    Ok(User {
        id: get(row, 0)?,
        login: get(row, 1)?,
        full_name: get(row, 2)?,
        role: Role::parse(role).unwrap_or(Role::User),
        active: get(row, 4)?,
    })
}

const USER_COLUMNS: &str = "id, login, full_name, role, active";

impl PgTx<'_> {
    fn set_user_column(
        &mut self,
        id: UserId,
        column: &str,
        value: &(dyn ToSql + Sync),
    ) -> StoreResult<()> {
        self.execute(
            &format!("UPDATE users SET {column} = $1 WHERE id = $2"),
            &[value, &id],
        )?;
        Ok(())
    }
}

impl UserStore for PgTx<'_> {
    fn users(&mut self) -> StoreResult<Vec<User>> {
        self.query(
            &format!("SELECT {USER_COLUMNS} FROM users ORDER BY id"),
            &[],
        )?
        .iter()
        .map(user_from_row)
        .collect()
    }

    fn user_credentials(&mut self, login: &str) -> StoreResult<Option<(User, String)>> {
        // A login is the same whatever its case (the unique index on lower(login)).
        self.query_opt(
            &format!(
                "SELECT {USER_COLUMNS}, password_hash FROM users WHERE lower(login) = lower($1)"
            ),
            &[&login],
        )?
        .map(|row| Ok((user_from_row(&row)?, get(&row, 5)?)))
        .transpose()
    }

    fn insert_user(&mut self, user: &NewUser<'_>) -> StoreResult<UserId> {
        let row = self.query_one(
            "INSERT INTO users (login, full_name, role, password_hash) VALUES ($1, $2, $3, $4)
             RETURNING id",
            &[
                &user.login,
                &user.full_name,
                &user.role.as_str(),
                &user.password_hash,
            ],
        )?;
        get(&row, 0)
    }

    fn update_user(&mut self, id: UserId, update: &UserUpdate) -> StoreResult<()> {
        if let Some(v) = &update.full_name {
            self.set_user_column(id, "full_name", v)?;
        }
        if let Some(v) = update.role {
            self.set_user_column(id, "role", &v.as_str())?;
        }
        if let Some(v) = &update.password_hash {
            self.set_user_column(id, "password_hash", v)?;
        }
        if let Some(v) = update.active {
            self.set_user_column(id, "active", &v)?;
        }
        Ok(())
    }

    fn save_web_session(&mut self, token_hash: &[u8; 32], session: &WebSession) -> StoreResult<()> {
        let credentials = session.credentials.as_ref().map(|c| &c[..]);
        self.execute(
            "INSERT INTO web_sessions (token_hash, user_id, csrf, credentials, role, last_seen_ms)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (token_hash) DO UPDATE SET
                 user_id = excluded.user_id,
                 csrf = excluded.csrf,
                 credentials = excluded.credentials,
                 role = excluded.role,
                 last_seen_ms = excluded.last_seen_ms",
            &[
                &&token_hash[..],
                &session.user_id,
                &session.csrf,
                &credentials,
                &session.role.as_str(),
                &session.last_seen_ms,
            ],
        )?;
        Ok(())
    }

    fn web_session(&mut self, token_hash: &[u8; 32]) -> StoreResult<Option<WebSession>> {
        let Some(row) = self.query_opt(
            "SELECT user_id, csrf, credentials, role, last_seen_ms FROM web_sessions WHERE token_hash = $1",
            &[&&token_hash[..]],
        )?
        else {
            return Ok(None);
        };
        let credentials: Option<Vec<u8>> = get(&row, 2)?;
        let role: &str = get(&row, 3)?;
        Ok(Some(WebSession {
            user_id: get(&row, 0)?,
            csrf: get(&row, 1)?,
            // A stamp of another length than written is no stamp: the session then ends at
            // the comparison.
            credentials: credentials.and_then(|c| c.try_into().ok()),
            role: Role::parse(role).unwrap_or(Role::User),
            last_seen_ms: get(&row, 4)?,
        }))
    }

    fn delete_web_session(&mut self, token_hash: &[u8; 32]) -> StoreResult<()> {
        self.execute(
            "DELETE FROM web_sessions WHERE token_hash = $1",
            &[&&token_hash[..]],
        )?;
        Ok(())
    }

    fn expire_web_sessions(&mut self, before_ms: i64) -> StoreResult<usize> {
        let removed = self.execute(
            "DELETE FROM web_sessions WHERE last_seen_ms < $1",
            &[&before_ms],
        )?;
        usize::try_from(removed).map_err(|e| crmsync_domain::DomainError::Store(e.to_string()))
    }
}
