//! Users of one instance and their passwords (argon2id).

use crate::{DomainError, UserId};
use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, SaltString};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    User,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::User => "user",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "admin" => Some(Role::Admin),
            "user" => Some(Role::User),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct User {
    pub id: UserId,
    pub login: String,
    pub full_name: String,
    pub role: Role,
    /// A removed user stays so that records pointing at them keep their meaning.
    #[serde(skip)]
    pub active: bool,
}

pub const MIN_PASSWORD_CHARS: usize = 8;

pub fn hash_password(password: &str) -> Result<String, DomainError> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| DomainError::Store(format!("no randomness: {e}")))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| DomainError::Store(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| DomainError::Store(format!("password hashing failed: {e}")))
}

/// A hash checked against for a login that does not exist, so the answer takes as long as
/// for one that does: argon2id with the same parameters, of 32 random bytes nobody kept
/// (fixed here, so no hashing happens at run time to make it).
pub fn unknown_login_hash() -> &'static str {
    "$argon2id$v=19$m=19456,t=2,p=1$GEEw0dtq1sYXly6eVqcScg$Mu1dLKMaOPuOK13zhniiqR4J3cgXULCNcP/uH5YSDCQ"
}

/// What a session remembers of the password it was signed in with: another password since
/// gives another stamp.
pub fn credential_stamp_of(password_hash: &str) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    Sha256::digest(password_hash.as_bytes()).into()
}

pub fn verify_password(password: &str, hash: &str) -> bool {
    // The 19 MiB argon2 works in is this thread's, kept for its next check: allocated and
    // freed per check, it piled up in the allocator, 19 MiB a wrong password.
    thread_local! {
        static BLOCKS: std::cell::RefCell<Vec<argon2::Block>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    let Ok(parsed) = PasswordHash::new(hash) else {
        return false;
    };
    let (Some(expected), Some(salt)) = (parsed.hash, parsed.salt) else {
        return false;
    };
    let Ok(params) = argon2::Params::try_from(&parsed) else {
        return false;
    };
    let Ok(algorithm) = argon2::Algorithm::try_from(parsed.algorithm) else {
        return false;
    };
    let version = parsed
        .version
        .and_then(|v| argon2::Version::try_from(v).ok())
        .unwrap_or_default();
    let mut salt_bytes = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_bytes) else {
        return false;
    };
    let block_count = params.block_count();
    let argon = Argon2::new(algorithm, version, params);
    let mut out = vec![0u8; expected.len()];
    let computed = BLOCKS.with_borrow_mut(|blocks| {
        if blocks.len() != block_count {
            blocks.clear();
            blocks.resize(block_count, argon2::Block::default());
        }
        argon
            .hash_password_into_with_memory(password.as_bytes(), salt, &mut out, &mut blocks[..])
            .is_ok()
    });
    // Output compares in constant time.
    computed && argon2::password_hash::Output::new(&out).is_ok_and(|o| o == expected)
}

pub fn validate_password(password: &str) -> Result<(), DomainError> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(DomainError::invalid(format!(
            "password must have at least {MIN_PASSWORD_CHARS} characters"
        )));
    }
    Ok(())
}

pub fn validate_login(login: &str) -> Result<String, DomainError> {
    let login = login.trim();
    let ok = !login.is_empty()
        && login.len() <= 64
        && login
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'));
    if ok {
        Ok(login.to_string())
    } else {
        Err(DomainError::invalid(
            "login must be 1-64 letters, digits or . _ - @",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_only_its_password() {
        let hash = hash_password("correct horse").unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &hash));
        assert!(!verify_password("wrong horse", &hash));
        assert!(!verify_password("correct horse", "not a hash"));
    }
}
