//! Slows down password guessing. Every attempt is charged before the password is checked
//! (so a hundred at once cannot all be tried), against three allowances:
//! - one login from one address: 5 free, then a pause doubling from 2 s up to 5 minutes;
//! - one address whatever the login (spraying one password over many logins): 20 free;
//! - one login whatever the address (a guesser with many addresses): 20 free.
//!
//! A correct password clears its login's allowances (not the address's). Logins are
//! compared case-folded, and kept as a digest, so neither case variants nor long logins get
//! fresh allowances or cost memory; at most `MAX_ENTRIES` are kept, the stalest dropped.

use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const FREE_PER_LOGIN_AND_ADDRESS: u32 = 5;
const FREE_PER_ADDRESS: u32 = 20;
const FREE_PER_LOGIN: u32 = 20;
const FIRST_PAUSE: Duration = Duration::from_secs(2);
const LONGEST_PAUSE: Duration = Duration::from_secs(300);
/// Failures older than this are forgotten.
const MEMORY: Duration = Duration::from_secs(900);
const MAX_ENTRIES: usize = 100_000;

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Allowance {
    LoginAtAddress([u8; 32], IpAddr),
    Address(IpAddr),
    Login([u8; 32]),
}

impl Allowance {
    fn free(&self) -> u32 {
        match self {
            Allowance::LoginAtAddress(..) => FREE_PER_LOGIN_AND_ADDRESS,
            Allowance::Address(_) => FREE_PER_ADDRESS,
            Allowance::Login(_) => FREE_PER_LOGIN,
        }
    }
}

#[derive(Clone, Default)]
pub struct LoginThrottle {
    failures: Arc<Mutex<HashMap<Allowance, Failures>>>,
}

struct Failures {
    count: u32,
    last: Instant,
}

fn folded(login: &str) -> [u8; 32] {
    Sha256::digest(login.trim().to_lowercase().as_bytes()).into()
}

fn allowances(login: &str, address: IpAddr) -> [Allowance; 3] {
    let login = folded(login);
    [
        Allowance::LoginAtAddress(login, address),
        Allowance::Address(address),
        Allowance::Login(login),
    ]
}

impl LoginThrottle {
    /// How long this login from this address must still wait, if at all (nothing charged).
    pub fn wait(&self, login: &str, address: IpAddr) -> Option<Duration> {
        let failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        allowances(login, address)
            .iter()
            .filter_map(|a| {
                let entry = failures.get(a)?;
                pause_after(entry.count, a.free())?
                    .checked_sub(entry.last.elapsed())
                    .filter(|d| !d.is_zero())
            })
            .max()
    }

    /// Charges an attempt before its password is checked: Err(wait) when it must not be
    /// tried now. A correct password then calls `succeeded`.
    pub fn attempt(&self, login: &str, address: IpAddr) -> Result<(), Duration> {
        if let Some(wait) = self.wait(login, address) {
            return Err(wait);
        }
        self.failed(login, address);
        Ok(())
    }

    /// Charges a failure without a check (a refused sync request).
    pub fn failed(&self, login: &str, address: IpAddr) {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        failures.retain(|_, f| f.last.elapsed() < MEMORY);
        if failures.len() + 3 > MAX_ENTRIES {
            let stalest = failures.iter().min_by_key(|(_, f)| f.last).map(|(k, _)| *k);
            if let Some(stalest) = stalest {
                failures.remove(&stalest);
            }
        }
        for allowance in allowances(login, address) {
            let entry = failures.entry(allowance).or_insert(Failures {
                count: 0,
                last: Instant::now(),
            });
            entry.count += 1;
            entry.last = Instant::now();
        }
    }

    /// The right password: this login's allowances are whole again (the address's is not:
    /// one correct login does not wash away a spray).
    pub fn succeeded(&self, login: &str, address: IpAddr) {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let [at_address, from_address, login_anywhere] = allowances(login, address);
        failures.remove(&at_address);
        failures.remove(&login_anywhere);
        if let Some(entry) = failures.get_mut(&from_address) {
            entry.count = entry.count.saturating_sub(1);
        }
    }
}

fn pause_after(count: u32, free: u32) -> Option<Duration> {
    let over = count.checked_sub(free)?;
    Some(
        FIRST_PAUSE
            .saturating_mul(1 << over.min(16))
            .min(LONGEST_PAUSE),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_start_after_the_free_failures_and_double() {
        assert_eq!(pause_after(4, 5), None);
        assert_eq!(pause_after(5, 5), Some(Duration::from_secs(2)));
        assert_eq!(pause_after(6, 5), Some(Duration::from_secs(4)));
        assert_eq!(pause_after(40, 5), Some(LONGEST_PAUSE));
        let throttle = LoginThrottle::default();
        let here: IpAddr = [127, 0, 0, 1].into();
        let there: IpAddr = [127, 0, 0, 2].into();
        for _ in 0..5 {
            assert_eq!(throttle.attempt("admin", here), Ok(()));
        }
        assert!(throttle.attempt("admin", here).is_err());
        assert!(
            throttle.attempt("ADMIN ", here).is_err(),
            "a case variant is the same login"
        );
        assert_eq!(
            throttle.wait("admin", there),
            None,
            "other addresses are not locked out"
        );
        throttle.succeeded("admin", here);
        assert_eq!(throttle.wait("admin", here), None);
    }

    #[test]
    fn spraying_one_address_over_many_logins_is_slowed_too() {
        let throttle = LoginThrottle::default();
        let here: IpAddr = [10, 0, 0, 1].into();
        let refused = (0..40)
            .filter(|n| throttle.attempt(&format!("user{n}"), here).is_err())
            .count();
        assert!(refused > 0, "twenty free, then paused");
        assert!(throttle.wait("someone-else", here).is_some());
        assert_eq!(throttle.wait("someone-else", [10, 0, 0, 2].into()), None);
    }
}
