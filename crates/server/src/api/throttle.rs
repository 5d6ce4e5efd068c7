//! Slows down password guessing: after `FREE_FAILURES` wrong passwords for one login from
//! one address, that pair is refused for a while — doubling with each further failure —
//! without checking the password at all. Other addresses are not affected, so a guesser
//! cannot lock the real user out.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const FREE_FAILURES: u32 = 5;
const FIRST_PAUSE: Duration = Duration::from_secs(2);
const LONGEST_PAUSE: Duration = Duration::from_secs(300);
/// Failures older than this are forgotten.
const MEMORY: Duration = Duration::from_secs(900);

#[derive(Clone, Default)]
pub struct LoginThrottle {
    failures: Arc<Mutex<HashMap<(String, IpAddr), Failures>>>,
}

struct Failures {
    count: u32,
    last: Instant,
}

impl LoginThrottle {
    /// How long this login from this address must still wait, if at all.
    pub fn wait(&self, login: &str, address: IpAddr) -> Option<Duration> {
        let failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let entry = failures.get(&(login.to_string(), address))?;
        let pause = pause_after(entry.count)?;
        pause
            .checked_sub(entry.last.elapsed())
            .filter(|d| !d.is_zero())
    }

    pub fn failed(&self, login: &str, address: IpAddr) {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        failures.retain(|_, f| f.last.elapsed() < MEMORY);
        let entry = failures
            .entry((login.to_string(), address))
            .or_insert(Failures {
                count: 0,
                last: Instant::now(),
            });
        entry.count += 1;
        entry.last = Instant::now();
    }

    pub fn succeeded(&self, login: &str, address: IpAddr) {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        failures.remove(&(login.to_string(), address));
    }
}

fn pause_after(count: u32) -> Option<Duration> {
    let over = count.checked_sub(FREE_FAILURES)?;
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
        assert_eq!(pause_after(4), None);
        assert_eq!(pause_after(5), Some(Duration::from_secs(2)));
        assert_eq!(pause_after(6), Some(Duration::from_secs(4)));
        assert_eq!(pause_after(40), Some(LONGEST_PAUSE));
        let throttle = LoginThrottle::default();
        let here: IpAddr = [127, 0, 0, 1].into();
        let there: IpAddr = [127, 0, 0, 2].into();
        for _ in 0..5 {
            assert_eq!(throttle.wait("admin", here), None);
            throttle.failed("admin", here);
        }
        assert!(throttle.wait("admin", here).is_some());
        assert_eq!(
            throttle.wait("admin", there),
            None,
            "other addresses are not locked out"
        );
        throttle.succeeded("admin", here);
        assert_eq!(throttle.wait("admin", here), None);
    }
}
