//! Every sync request is signed with the sync password (HMAC-SHA256 over the time, the
//! endpoint and the body's SHA-256); the password itself never travels. Requests older or
//! newer than `MAX_SKEW_MS` are refused, so a captured request cannot be replayed later.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

pub const HEADER: &str = "x-crmsync-signature";
pub const INSTANCE_HEADER: &str = "x-crmsync-instance";
pub const MAX_SKEW_MS: i64 = 5 * 60 * 1000;

fn mac(password: &str, ts: i64, endpoint: &str, body: &[u8]) -> Hmac<Sha256> {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(password.as_bytes()).expect("HMAC takes any key length");
    mac.update(format!("crmsync-sync-v1\n{ts}\n{endpoint}\n").as_bytes());
    mac.update(hex::encode(Sha256::digest(body)).as_bytes());
    mac
}

/// The header value for a request.
pub fn sign(password: &str, ts: i64, endpoint: &str, body: &[u8]) -> String {
    let sig = hex::encode(mac(password, ts, endpoint, body).finalize().into_bytes());
    format!("ts={ts},sig={sig}")
}

/// The time a signature header claims (the sender's clock), unchecked.
pub fn claimed_time(header: Option<&str>) -> Option<i64> {
    header?
        .split(',')
        .find_map(|part| part.trim().strip_prefix("ts="))
        .and_then(|ts| ts.parse().ok())
}

#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    Missing,
    Stale,
    WrongPassword,
}

pub fn verify(
    password: &str,
    header: Option<&str>,
    now_ms: i64,
    endpoint: &str,
    body: &[u8],
) -> Result<(), Refusal> {
    let header = header.ok_or(Refusal::Missing)?;
    let mut ts = None;
    let mut sig = None;
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("ts", v)) => ts = v.parse::<i64>().ok(),
            Some(("sig", v)) => sig = hex::decode(v).ok(),
            _ => {}
        }
    }
    let (Some(ts), Some(sig)) = (ts, sig) else {
        return Err(Refusal::Missing);
    };
    if (now_ms - ts).abs() > MAX_SKEW_MS {
        return Err(Refusal::Stale);
    }
    mac(password, ts, endpoint, body)
        .verify_slice(&sig)
        .map_err(|_| Refusal::WrongPassword)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_proves_the_password_the_body_and_the_time() {
        let header = sign("123456", 1_000, "push", b"{}");
        assert_eq!(
            verify("123456", Some(&header), 1_500, "push", b"{}"),
            Ok(())
        );
        assert_eq!(
            verify("654321", Some(&header), 1_500, "push", b"{}"),
            Err(Refusal::WrongPassword)
        );
        assert_eq!(
            verify("123456", Some(&header), 1_500, "push", b"{ }"),
            Err(Refusal::WrongPassword)
        );
        assert_eq!(
            verify("123456", Some(&header), 1_500, "pull", b"{}"),
            Err(Refusal::WrongPassword)
        );
        assert_eq!(
            verify(
                "123456",
                Some(&header),
                1_000 + MAX_SKEW_MS + 1,
                "push",
                b"{}"
            ),
            Err(Refusal::Stale)
        );
        assert_eq!(
            verify("123456", None, 0, "push", b"{}"),
            Err(Refusal::Missing)
        );
    }
}
