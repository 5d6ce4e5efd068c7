//! Users: the first administrator, sign-in with its cache of verified passwords, and
//! adding, changing and removing users.

use super::{Actor, Instance};
use crate::UserId;
use crate::error::DomainError;
use crate::schema::validate_name;
use crate::store::{NewUser, Store, UserUpdate};
use crate::user::{self, Role, User};
use sha2::{Digest, Sha256};
use std::collections::HashMap;

#[derive(Debug, Clone, Default)]
pub struct UserPatch {
    pub full_name: Option<String>,
    pub role: Option<Role>,
    pub password: Option<String>,
}

impl<S: Store> Instance<S> {
    /// Creates `admin` on the first start. Returns the password when it was generated, so
    /// the caller can show it once.
    pub fn ensure_admin(&self, password: Option<&str>) -> Result<Option<String>, DomainError> {
        if !self.store.read(|tx| tx.users())?.is_empty() {
            return Ok(None);
        }
        let (password, generated) = match password {
            Some(p) => (p.to_string(), false),
            None => (crate::clock::random_token(12), true),
        };
        user::validate_password(&password)?;
        let hash = user::hash_password(&password)?;
        self.store.write(|tx| {
            if tx.users()?.is_empty() {
                tx.insert_user(&NewUser {
                    login: "admin",
                    full_name: "Administrator",
                    role: Role::Admin,
                    password_hash: &hash,
                })?;
            }
            Ok(())
        })?;
        Ok(generated.then_some(password))
    }

    /// The user these credentials were verified for before, without hashing (None: they
    /// must be checked, see `authenticate`).
    pub fn authenticate_cached(&self, login: &str, password: &str) -> Option<User> {
        let digest: [u8; 32] = Sha256::digest(password.as_bytes()).into();
        self.cache()
            .get(login)
            .filter(|(cached, _)| *cached == digest)
            .map(|(_, user)| user.clone())
    }

    /// A digest of a login's current password hash: a sign-in made with an earlier
    /// password no longer matches it.
    pub fn credential_stamp(&self, login: &str) -> Result<Option<[u8; 32]>, DomainError> {
        Ok(self
            .store
            .read(|tx| tx.user_credentials(login))?
            .map(|(_, hash)| user::credential_stamp_of(&hash)))
    }

    pub fn authenticate(&self, login: &str, password: &str) -> Result<User, DomainError> {
        if let Some(user) = self.authenticate_cached(login, password) {
            return Ok(user);
        }
        let digest: [u8; 32] = Sha256::digest(password.as_bytes()).into();
        let Some((user, hash)) = self.store.read(|tx| tx.user_credentials(login))? else {
            // An unknown login costs what a known one does: logins cannot be told apart
            // by the time of the answer.
            user::verify_password(password, user::unknown_login_hash());
            return Err(DomainError::Unauthorized);
        };
        if !user.active || !user::verify_password(password, &hash) {
            return Err(DomainError::Unauthorized);
        }
        self.cache()
            .insert(login.to_string(), (digest, user.clone()));
        Ok(user)
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<String, ([u8; 32], User)>> {
        self.auth_cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn users(&self) -> Result<Vec<User>, DomainError> {
        Ok(self
            .store
            .read(|tx| tx.users())?
            .into_iter()
            .filter(|u| u.active)
            .collect())
    }

    /// Every user ever created, removed ones too: history names them.
    pub fn users_including_removed(&self) -> Result<Vec<User>, DomainError> {
        self.store.read(|tx| tx.users())
    }

    pub fn user(&self, id: UserId) -> Result<User, DomainError> {
        self.users()?
            .into_iter()
            .find(|u| u.id == id)
            .ok_or_else(|| DomainError::not_found(format!("there is no user {id}")))
    }

    pub fn create_user(
        &self,
        actor: &Actor,
        login: &str,
        full_name: &str,
        role: Role,
        password: &str,
    ) -> Result<User, DomainError> {
        actor.require_admin()?;
        let login = user::validate_login(login)?;
        let full_name = validate_name("full", full_name)?;
        user::validate_password(password)?;
        let hash = user::hash_password(password)?;
        let id = self.store.write(|tx| {
            if tx
                .users()?
                .iter()
                .any(|u| u.login.eq_ignore_ascii_case(&login))
            {
                return Err(DomainError::Conflict(format!(
                    "login \"{login}\" is taken (logins of removed users stay reserved)"
                )));
            }
            tx.insert_user(&NewUser {
                login: &login,
                full_name: &full_name,
                role,
                password_hash: &hash,
            })
        })?;
        // Sync runners wake: a value held for want of this user may apply now.
        self.notify_commit();
        self.user(id)
    }

    pub fn update_user(
        &self,
        actor: &Actor,
        id: UserId,
        patch: UserPatch,
    ) -> Result<User, DomainError> {
        let is_self = actor.user.id == id;
        if !is_self || patch.role.is_some() {
            actor.require_admin()?;
        }
        let current = self.user(id)?;
        let mut update = UserUpdate::default();
        if let Some(name) = &patch.full_name {
            update.full_name = Some(validate_name("full", name)?);
        }
        if let Some(role) = patch.role {
            if current.role == Role::Admin && role != Role::Admin {
                self.ensure_another_admin(id)?;
            }
            update.role = Some(role);
        }
        if let Some(password) = &patch.password {
            user::validate_password(password)?;
            update.password_hash = Some(user::hash_password(password)?);
        }
        self.store.write(|tx| tx.update_user(id, &update))?;
        self.cache().clear();
        self.user(id)
    }

    /// Removes a user from sign-in and lists; records that point at them keep the id.
    pub fn delete_user(&self, actor: &Actor, id: UserId) -> Result<(), DomainError> {
        actor.require_admin()?;
        if actor.user.id == id {
            return Err(DomainError::Conflict("you cannot remove yourself".into()));
        }
        let user = self.user(id)?;
        if user.role == Role::Admin {
            self.ensure_another_admin(id)?;
        }
        self.store.write(|tx| {
            tx.update_user(
                id,
                &UserUpdate {
                    active: Some(false),
                    ..Default::default()
                },
            )
        })?;
        self.cache().clear();
        Ok(())
    }

    fn ensure_another_admin(&self, id: UserId) -> Result<(), DomainError> {
        let admins = self
            .users()?
            .into_iter()
            .filter(|u| u.role == Role::Admin && u.id != id)
            .count();
        if admins == 0 {
            return Err(DomainError::Conflict(
                "this is the last administrator; make another user admin first".into(),
            ));
        }
        Ok(())
    }
}
