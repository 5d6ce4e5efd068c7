//! Time, identities and randomness come through here, so tests can drive them.

use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};
use uuid::Uuid;

/// Wall clock and identity source.
pub trait Clock: Send + Sync {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> i64;
    /// A new globally unique record identity (UUIDv7: time-ordered, so indexes stay compact).
    fn new_uid(&self) -> Uuid {
        let ms = self.now_ms().max(0) as u64;
        let mut random = [0u8; 10];
        random[..8].copy_from_slice(&next_random().to_le_bytes());
        random[8..].copy_from_slice(&next_random().to_le_bytes()[..2]);
        uuid::Builder::from_unix_timestamp_millis(ms, &random).into_uuid()
    }
}

thread_local! {
    /// splitmix64 state, seeded from the operating system once per thread: a system call
    /// per record identity was a tenth of bulk-insert time, and identities need uniqueness,
    /// not secrecy.
    static RANDOM_STATE: std::cell::Cell<u64> = std::cell::Cell::new({
        let mut seed = [0u8; 8];
        getrandom::fill(&mut seed).expect("the operating system's random source is available");
        u64::from_le_bytes(seed)
    });
}

fn next_random() -> u64 {
    RANDOM_STATE.with(|state| {
        let next = state.get().wrapping_add(0x9E37_79B9_7F4A_7C15);
        state.set(next);
        let mut z = next;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    })
}

#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0)
    }
}

/// The system clock shifted by a fixed offset: what a machine whose clock is wrong reads
/// (`serve --clock-offset-ms`, for tests and drills of clock trouble).
pub struct OffsetClock(pub i64);

impl Clock for OffsetClock {
    fn now_ms(&self) -> i64 {
        SystemClock.now_ms() + self.0
    }
}

/// A hybrid-logical-clock time: milliseconds in the high 48 bits, a counter in the low 16.
/// It never goes backwards on one instance and always moves past every time it has seen,
/// so "newer" means the same thing on every instance even when wall clocks disagree.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Default,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(transparent)]
pub struct Hlc(pub u64);

impl Hlc {
    const COUNTER_BITS: u32 = 16;

    pub fn from_ms(ms: i64) -> Hlc {
        Hlc((ms.max(0) as u64) << Self::COUNTER_BITS)
    }

    pub fn ms(self) -> i64 {
        (self.0 >> Self::COUNTER_BITS) as i64
    }
}

/// When and where a field's current value was written: compared as (hlc, node), so two
/// instances always agree which of two writes is newer.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct Stamp {
    pub hlc: Hlc,
    pub node: Uuid,
}

/// Issues HLC times for this instance.
#[derive(Debug, Default)]
pub struct HlcClock {
    last: Mutex<Hlc>,
}

impl HlcClock {
    /// The next time: later than the wall clock allows, than anything issued here, and
    /// than `floor` (the newest time persisted or received).
    pub fn next(&self, now_ms: i64, floor: Hlc) -> Hlc {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        let candidate = Hlc::from_ms(now_ms);
        let next = candidate.max(Hlc(last.0.max(floor.0) + 1));
        *last = next;
        next
    }
}

/// A random secret of `bytes` bytes, URL-safe base64 without padding.
pub fn random_token(bytes: usize) -> String {
    use base64::Engine;
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).expect("the operating system's random source is available");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hlc_is_monotonic_even_when_the_wall_clock_goes_back() {
        let clock = HlcClock::default();
        let a = clock.next(1_000, Hlc(0));
        let b = clock.next(900, Hlc(0));
        let c = clock.next(900, Hlc(0));
        assert!(a < b && b < c);
        assert_eq!(b.ms(), 1_000);
    }

    #[test]
    fn hlc_moves_past_a_floor_from_the_future() {
        let clock = HlcClock::default();
        let floor = Hlc::from_ms(5_000);
        let t = clock.next(1_000, floor);
        assert!(t > floor);
        assert_eq!(t.ms(), 5_000);
    }

    #[test]
    fn uids_are_time_ordered() {
        struct Fixed(i64);
        impl Clock for Fixed {
            fn now_ms(&self) -> i64 {
                self.0
            }
        }
        assert!(Fixed(1).new_uid() < Fixed(2).new_uid());
        assert_eq!(Fixed(1).new_uid().get_version_num(), 7);
        let many: std::collections::HashSet<Uuid> =
            (0..10_000).map(|_| Fixed(1).new_uid()).collect();
        assert_eq!(many.len(), 10_000, "unique within one millisecond");
    }
}
