//! The sync channel through folders: pairing by files and the keys it leaves, kept with
//! the sync between rounds (a folder's answer can take days: a laptop offline).
//!
//! The active side writes a pairing offer (its SPAKE2 message); the passive side answers
//! with its own and a confirmation; the active side checks it and writes its own
//! confirmation. Both then seal every packet and chunk file with the key. A side that finds
//! files sealed with a key it does not hold (it was restored from a backup, or its password
//! changed) pairs again: the active side offers anew, the passive side asks it to.

use crate::channel::{
    self, Expect, Header, Key, Refusal, ReplayWindow, Role, confirmation, confirms, pake_key,
    pake_message, random_bytes,
};
use serde::{Deserialize, Serialize};

/// The first bytes of a pairing file (readable: nothing in it is secret).
pub const PAIRING_MAGIC: &[u8; 8] = b"CRMSPR02";
/// A pairing file is small; anything longer is not one.
pub const MAX_PAIRING_FILE: usize = 16 << 10;
/// A key is used this long, then the active side pairs again.
pub const RENEW_AFTER_MS: i64 = 7 * 24 * 60 * 60 * 1000;
/// An offer not answered within this is made again (its answer may have been lost).
const OFFER_AGAIN_AFTER_MS: i64 = 60 * 60 * 1000;
/// After a failed pairing the active side waits this long before it offers again, twice as
/// long after each further failure, up to an hour: each attempt is one online guess.
const FIRST_RETRY_MS: i64 = 5 * 1000;
const LONGEST_RETRY_MS: i64 = 60 * 60 * 1000;
/// A passive side without a key asks for a pairing when it starts without one, and then at
/// most this often (an active side offline for days finds one request, not thousands).
const ASK_AGAIN_EVERY_MS: i64 = 60 * 60 * 1000;
/// The passive side answers at most this many offers an hour: each is one online guess.
const ANSWERS_PER_HOUR: usize = 10;
/// Keys kept: the newest and the ones before (files still on their way).
const KEYS_KEPT: usize = 3;

/// What a pairing file says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PairingFile {
    pub v: u32,
    pub role: Role,
    /// The writer's instance id (bound into the key).
    pub from: String,
    /// Which pairing attempt of the active side this belongs to.
    pub epoch: u64,
    /// The SPAKE2 message (hex): in an offer and an answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pake: Option<String>,
    /// The proof of the key (hex): in an answer and the active side's confirmation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirm: Option<String>,
    /// From the passive side: it holds no key the active side uses; please offer again.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub again: bool,
}

impl PairingFile {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = PAIRING_MAGIC.to_vec();
        out.extend_from_slice(&serde_json::to_vec(self).expect("serialises"));
        out
    }

    pub fn decode(bytes: &[u8]) -> Option<PairingFile> {
        let body = bytes.strip_prefix(PAIRING_MAGIC)?;
        (body.len() <= MAX_PAIRING_FILE)
            .then(|| serde_json::from_slice(body).ok())
            .flatten()
    }
}

/// A key agreed with the other side (or issued to a writer), with what came under it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredKey {
    key: String,
    made_ms: i64,
    /// The other side showed it holds this key too: this side seals with it.
    confirmed: bool,
    #[serde(default)]
    received: ReplayWindow,
    /// For an issued writer key: what it is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
}

impl StoredKey {
    fn key(&self) -> Option<Key> {
        Key::from_hex(&self.key)
    }

    pub fn id(&self) -> String {
        self.key().map(|k| k.id().to_string()).unwrap_or_default()
    }

    pub fn made_ms(&self) -> i64 {
        self.made_ms
    }
}

/// One side's channel state for a folder sync.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct FolderChannel {
    /// Which password it belongs to (a fingerprint): another password starts afresh.
    password: String,
    /// Newest first.
    keys: Vec<StoredKey>,
    /// Keys issued to third-party writers (the instance is their receiver only).
    #[serde(default)]
    pub writers: Vec<StoredKey>,
    /// A pairing under way (active side): this side's secret seed, hex.
    seed: Option<String>,
    epoch: u64,
    offered_ms: i64,
    /// Passive side: when it answered offers (the last hour's).
    answered_ms: Vec<i64>,
    /// Passive side: the offers it answered (fingerprints of their SPAKE2 messages), so a
    /// copy delivered again is refused.
    #[serde(default)]
    answered_offers: Vec<String>,
    /// Passive side: when it last asked for a pairing.
    again_ms: i64,
    /// Active side: the passive side asked for a pairing (answered once the wait after
    /// failures allows).
    #[serde(default)]
    again_wanted: bool,
    /// Active side: pairings failed in a row.
    #[serde(default)]
    failures: u32,
    /// This side's last sequence number.
    sent: u64,
    /// Why the last pairing failed, for the status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
}

/// What a side does next about pairing.
#[derive(Debug, PartialEq, Eq)]
pub enum PairingStep {
    /// Write this pairing file.
    Write(PairingFile),
    Nothing,
}

impl FolderChannel {
    /// The stored state, or a fresh one when there is none or it was made with another
    /// password.
    pub fn load(stored: Option<&str>, password: &str) -> FolderChannel {
        let print = channel::fingerprint(password.as_bytes());
        let mut state: FolderChannel = stored
            .and_then(|s| serde_json::from_str(s).ok())
            .unwrap_or_default();
        if state.password != print {
            // Issued writer keys are the instance's own; they outlive a password change.
            state = FolderChannel {
                password: print,
                writers: std::mem::take(&mut state.writers),
                sent: state.sent,
                ..FolderChannel::default()
            };
        }
        state
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("serialises")
    }

    /// The key this side seals with: the newest the other side has shown it holds.
    pub fn sealing_key(&self) -> Option<Key> {
        self.keys
            .iter()
            .find(|k| k.confirmed)
            .and_then(StoredKey::key)
    }

    /// Active side: a pairing offer to write now, if one is due — no key yet, the key is
    /// old, an offer went unanswered for an hour, or the other side asked.
    pub fn active_step(&mut self, password: &str, own: &str, now_ms: i64) -> PairingStep {
        let newest = self.keys.iter().find(|k| k.confirmed);
        let waited = now_ms - self.offered_ms;
        let due = match (&self.seed, newest) {
            (Some(_), _) => waited >= OFFER_AGAIN_AFTER_MS,
            _ if self.failures > 0 && waited < self.retry_after_ms() => false,
            (None, None) => true,
            _ if self.again_wanted => true,
            (None, Some(key)) => now_ms - key.made_ms >= RENEW_AFTER_MS,
        };
        if !due {
            return PairingStep::Nothing;
        }
        let seed: [u8; 32] = match self.seed.as_deref().and_then(|s| hex::decode(s).ok()) {
            Some(seed) if seed.len() == 32 => seed.try_into().expect("32 bytes"),
            _ => {
                self.epoch += 1;
                let seed = random_bytes();
                self.seed = Some(hex::encode(seed));
                seed
            }
        };
        self.offered_ms = now_ms;
        self.again_wanted = false;
        PairingStep::Write(PairingFile {
            v: crate::PROTOCOL_VERSION,
            role: Role::Active,
            from: own.to_string(),
            epoch: self.epoch,
            pake: Some(hex::encode(pake_message(password, Role::Active, &seed))),
            confirm: None,
            again: false,
        })
    }

    /// A pairing file from the other side: what to write in answer, or why it is refused.
    pub fn take(
        &mut self,
        mode: Role,
        password: &str,
        own: &str,
        file: &PairingFile,
        now_ms: i64,
    ) -> Result<PairingStep, String> {
        match (mode, file.role) {
            (Role::Active, Role::Passive) if file.again => {
                // Unauthenticated: it can ask for a pairing, never skip the wait after
                // failures. An offer still waiting is in the other side's folder: it will
                // be answered.
                if self.seed.is_some() {
                    return Ok(PairingStep::Nothing);
                }
                self.again_wanted = true;
                Ok(self.active_step(password, own, now_ms))
            }
            (Role::Active, Role::Passive) => self.take_answer(password, own, file),
            (Role::Passive, Role::Active) if file.pake.is_some() => {
                self.answer(password, own, file, now_ms)
            }
            (Role::Passive, Role::Active) => self.take_confirmation(file),
            (_, role) => Err(format!(
                "a pairing file from the {} side, which cannot send one here",
                role.as_str()
            )),
        }
    }

    fn answer(
        &mut self,
        password: &str,
        own: &str,
        offer: &PairingFile,
        now_ms: i64,
    ) -> Result<PairingStep, String> {
        let print = channel::fingerprint(offer.pake.as_deref().unwrap_or_default().as_bytes());
        if self.answered_offers.contains(&print) {
            return Err("a pairing offer answered before, delivered again (a replay)".to_string());
        }
        self.answered_ms.retain(|t| now_ms - t < 60 * 60 * 1000);
        if self.answered_ms.len() >= ANSWERS_PER_HOUR {
            return Err(format!(
                "more than {ANSWERS_PER_HOUR} pairing offers within an hour: not answered \
                 (each is one guess at the password)"
            ));
        }
        self.answered_ms.push(now_ms);
        self.answered_offers.push(print);
        let excess = self.answered_offers.len().saturating_sub(KEYS_KEPT * 4);
        self.answered_offers.drain(..excess);
        let seed: [u8; 32] = random_bytes();
        let message = hex::decode(offer.pake.as_deref().unwrap_or_default())
            .map_err(|_| Refusal::BadPairing.to_string())?;
        let key = pake_key(password, Role::Passive, &seed, &message, &offer.from, own)
            .map_err(|e| e.to_string())?;
        let proof = confirmation(&key, Role::Passive);
        self.remember(key, false, now_ms);
        Ok(PairingStep::Write(PairingFile {
            v: crate::PROTOCOL_VERSION,
            role: Role::Passive,
            from: own.to_string(),
            epoch: offer.epoch,
            pake: Some(hex::encode(pake_message(password, Role::Passive, &seed))),
            confirm: Some(proof),
            again: false,
        }))
    }

    fn take_answer(
        &mut self,
        password: &str,
        own: &str,
        answer: &PairingFile,
    ) -> Result<PairingStep, String> {
        let seed = self.seed.as_deref().and_then(|s| hex::decode(s).ok());
        let Some(seed) = seed.filter(|_| answer.epoch == self.epoch) else {
            return Err(
                "an answer to no pairing offer this side waits on (answered before, or a \
                 replay); nothing from it is taken"
                    .to_string(),
            );
        };
        let seed: [u8; 32] = seed
            .try_into()
            .map_err(|_| "a damaged pairing seed".to_string())?;
        let message = hex::decode(answer.pake.as_deref().unwrap_or_default())
            .map_err(|_| Refusal::BadPairing.to_string())?;
        let key = pake_key(password, Role::Active, &seed, &message, own, &answer.from)
            .map_err(|e| e.to_string())?;
        self.seed = None;
        let proof = confirmation(&key, Role::Active);
        let step = PairingStep::Write(PairingFile {
            v: crate::PROTOCOL_VERSION,
            role: Role::Active,
            from: own.to_string(),
            epoch: answer.epoch,
            pake: None,
            confirm: Some(proof),
            again: false,
        });
        if !confirms(
            &key,
            Role::Passive,
            answer.confirm.as_deref().unwrap_or_default(),
        ) {
            let why = "wrong password: the other side's pairing answer does not match this \
                       side's password (the two sides have different passwords, or someone \
                       else wrote it); nothing from it is taken"
                .to_string();
            self.failure = Some(why);
            self.failures += 1;
            // The confirmation still goes, so the other side sees the mismatch too.
            return Ok(step);
        }
        self.failure = None;
        self.failures = 0;
        self.remember(key, true, answer_time(self));
        Ok(step)
    }

    fn take_confirmation(&mut self, file: &PairingFile) -> Result<PairingStep, String> {
        let claimed = file.confirm.as_deref().unwrap_or_default();
        let found = self.keys.iter_mut().find(|k| {
            k.key()
                .is_some_and(|key| confirms(&key, Role::Active, claimed))
        });
        match found {
            Some(key) if key.confirmed => Err(
                "a pairing confirmation for a key confirmed before, delivered again (a replay)"
                    .to_string(),
            ),
            Some(key) => {
                key.confirmed = true;
                self.failure = None;
                Ok(PairingStep::Nothing)
            }
            None => {
                // A wrong confirmation only answers the newest key (older keys' answers were
                // confirmed or superseded).
                self.keys.retain(|k| k.confirmed);
                let why = "wrong password: the active side's pairing confirmation does not \
                           match this side's password (the two sides have different \
                           passwords); nothing from it is taken"
                    .to_string();
                self.failure = Some(why.clone());
                Err(why)
            }
        }
    }

    fn remember(&mut self, key: Key, confirmed: bool, now_ms: i64) {
        self.keys.retain(|k| k.key.as_str() != key.to_hex());
        self.keys.insert(
            0,
            StoredKey {
                key: key.to_hex(),
                made_ms: now_ms,
                confirmed,
                received: ReplayWindow::default(),
                label: None,
            },
        );
        self.keys.truncate(KEYS_KEPT);
    }

    /// Seals a file's body with the newest confirmed key (None: not paired yet).
    pub fn seal(&mut self, role: Role, kind: &str, body: &[u8], now_ms: i64) -> Option<Vec<u8>> {
        let key = self.sealing_key()?;
        let header = Header {
            v: crate::PROTOCOL_VERSION,
            key: String::new(),
            role,
            kind: kind.to_string(),
            seq: channel::next_seq(&mut self.sent, now_ms),
            ts: now_ms,
            reply: None,
            raw: false,
        };
        Some(channel::seal(&key, &header, body))
    }

    /// Opens a file from the other side (or an issued writer): under any key kept, from
    /// the roles `from`. `once`: its sequence number must be new (packets; chunk files are
    /// named by their content and may be read again after an interruption).
    pub fn open(
        &mut self,
        bytes: &[u8],
        from: &[Role],
        once: bool,
        max_body: usize,
    ) -> Result<(Header, Vec<u8>), Refusal> {
        let header = channel::peek(bytes)?;
        let (stored, roles): (&mut StoredKey, &[Role]) =
            match self.keys.iter().position(|k| k.id() == header.key) {
                Some(at) => (&mut self.keys[at], from),
                None => match self.writers.iter().position(|k| k.id() == header.key) {
                    Some(at) => (&mut self.writers[at], &[Role::Writer]),
                    None => return Err(Refusal::UnknownKey(header.key)),
                },
            };
        let key = stored.key().ok_or(Refusal::UnknownKey(header.key))?;
        let expect = Expect {
            from: roles,
            kind: None,
            reply_to: None,
            now_ms: None,
        };
        let mut scratch = ReplayWindow::default();
        let window = if once {
            &mut stored.received
        } else {
            &mut scratch
        };
        let opened = channel::open_checked(&key, bytes, &expect, window, max_body)?;
        // Sealed by the other side with it: it holds the key.
        stored.confirmed = true;
        Ok(opened)
    }

    /// Whether a file (opened before) carries a sequence number not taken yet.
    pub fn is_new(&self, bytes: &[u8]) -> bool {
        let Ok(header) = channel::peek(bytes) else {
            return false;
        };
        self.keys
            .iter()
            .chain(self.writers.iter())
            .find(|k| k.id() == header.key)
            .is_some_and(|k| k.received.is_new(header.seq))
    }

    /// Uses up a file's sequence number once it is applied (it was opened without, to be
    /// looked at first); false when it was used before.
    pub fn use_up(&mut self, bytes: &[u8]) -> bool {
        let Ok(header) = channel::peek(bytes) else {
            return false;
        };
        self.keys
            .iter_mut()
            .chain(self.writers.iter_mut())
            .find(|k| k.id() == header.key)
            .is_some_and(|k| k.received.accept(header.seq))
    }

    /// Passive side, holding no key the active side uses (new, restored from a backup, its
    /// password changed), or on a file under a key it does not hold: asks the active side
    /// to pair again (at most once a minute).
    pub fn ask_again(&mut self, own: &str, now_ms: i64) -> PairingStep {
        if self.again_ms > 0 && now_ms - self.again_ms < ASK_AGAIN_EVERY_MS {
            return PairingStep::Nothing;
        }
        self.again_ms = now_ms;
        PairingStep::Write(PairingFile {
            v: crate::PROTOCOL_VERSION,
            role: Role::Passive,
            from: own.to_string(),
            epoch: 0,
            pake: None,
            confirm: None,
            again: true,
        })
    }

    /// Active side, on a file under a key it does not hold (the other side paired anew
    /// while this one was restored from a backup): offers a new pairing.
    pub fn offer_again(&mut self, password: &str, own: &str, now_ms: i64) -> PairingStep {
        if self.seed.is_some() {
            return PairingStep::Nothing;
        }
        self.again_wanted = true;
        self.active_step(password, own, now_ms)
    }

    /// How long the active side waits after its last failed pairing.
    fn retry_after_ms(&self) -> i64 {
        let doublings = self.failures.saturating_sub(1).min(20);
        (FIRST_RETRY_MS << doublings).min(LONGEST_RETRY_MS)
    }

    /// Issues a key for a third-party writer: returned once, kept to open its files.
    pub fn issue_writer_key(&mut self, label: &str, now_ms: i64) -> Key {
        let key = Key::random();
        self.writers.push(StoredKey {
            key: key.to_hex(),
            made_ms: now_ms,
            confirmed: true,
            received: ReplayWindow::default(),
            label: Some(label.to_string()),
        });
        key
    }

    /// Revokes an issued writer key; whether there was one with that id.
    pub fn revoke_writer_key(&mut self, id: &str) -> bool {
        let before = self.writers.len();
        self.writers.retain(|k| k.id() != id);
        self.writers.len() != before
    }

    /// Whether this side holds a key the other side has shown it holds.
    pub fn paired(&self) -> bool {
        self.sealing_key().is_some()
    }
}

/// When an answer's key counts as made: the offer's time (renewal counts from the offer).
fn answer_time(state: &FolderChannel) -> i64 {
    state.offered_ms
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(step: PairingStep) -> PairingFile {
        match step {
            PairingStep::Write(file) => PairingFile::decode(&file.encode()).unwrap(),
            PairingStep::Nothing => panic!("expected a pairing file"),
        }
    }

    fn pair(
        pw_active: &str,
        pw_passive: &str,
    ) -> (FolderChannel, FolderChannel, Result<PairingStep, String>) {
        let mut active = FolderChannel::load(None, pw_active);
        let mut passive = FolderChannel::load(None, pw_passive);
        let offer = write(active.active_step(pw_active, "A", 1_000));
        assert_eq!(
            active.active_step(pw_active, "A", 2_000),
            PairingStep::Nothing
        );
        let answer = write(
            passive
                .take(Role::Passive, pw_passive, "P", &offer, 1_000)
                .unwrap(),
        );
        let confirmation = write(
            active
                .take(Role::Active, pw_active, "A", &answer, 3_000)
                .unwrap(),
        );
        let last = passive.take(Role::Passive, pw_passive, "P", &confirmation, 4_000);
        (active, passive, last)
    }

    #[test]
    fn pairing_through_files_gives_both_sides_the_key_and_files_open_once() {
        let (mut active, mut passive, last) = pair("123456", "123456");
        assert_eq!(last, Ok(PairingStep::Nothing));
        assert_eq!(active.sealing_key(), passive.sealing_key());
        let sealed = active.seal(Role::Active, "packet", b"{}", 5_000).unwrap();
        let (header, body) = passive
            .open(&sealed, &[Role::Active], true, 1 << 20)
            .unwrap();
        assert_eq!(
            (header.kind.as_str(), body.as_slice()),
            ("packet", &b"{}"[..])
        );
        assert_eq!(
            passive.open(&sealed, &[Role::Active], true, 1 << 20),
            Err(Refusal::Replay)
        );
        // A file of its own, put back in its download folder, is refused.
        let own = passive.seal(Role::Passive, "packet", b"{}", 6_000).unwrap();
        assert!(matches!(
            passive.open(&own, &[Role::Active], true, 1 << 20),
            Err(Refusal::WrongRole(Role::Passive))
        ));
        // The state survives being stored.
        let mut again = FolderChannel::load(Some(&passive.to_json()), "123456");
        assert_eq!(
            again.open(&sealed, &[Role::Active], true, 1 << 20),
            Err(Refusal::Replay)
        );
        // Another password starts afresh.
        assert!(!FolderChannel::load(Some(&passive.to_json()), "654321").paired());
    }

    #[test]
    fn different_passwords_are_seen_on_both_sides_and_leave_no_key() {
        let (active, passive, last) = pair("123456", "654321");
        assert!(
            active
                .failure
                .as_deref()
                .unwrap()
                .contains("wrong password")
        );
        assert!(last.unwrap_err().contains("wrong password"));
        assert!(!active.paired() && !passive.paired());
    }

    #[test]
    fn an_old_answer_or_offer_replayed_changes_nothing_the_active_side_uses() {
        let mut active = FolderChannel::load(None, "pw");
        let mut passive = FolderChannel::load(None, "pw");
        let offer = write(active.active_step("pw", "A", 1_000));
        let answer = write(
            passive
                .take(Role::Passive, "pw", "P", &offer, 1_000)
                .unwrap(),
        );
        write(
            active
                .take(Role::Active, "pw", "A", &answer, 2_000)
                .unwrap(),
        );
        let key = active.sealing_key();
        // The same answer again: the active side waits on no offer any more.
        assert!(
            active
                .take(Role::Active, "pw", "A", &answer, 3_000)
                .is_err()
        );
        assert_eq!(active.sealing_key(), key);
        // The same offer again: refused, not answered a second time.
        assert!(
            passive
                .take(Role::Passive, "pw", "P", &offer, 3_000)
                .is_err()
        );
        // Offers beyond the hourly allowance are not answered.
        for at in 0..ANSWERS_PER_HOUR {
            let mut fresh = FolderChannel::load(None, "pw");
            let offer = write(fresh.active_step("pw", "A", 1));
            let _ = passive.take(Role::Passive, "pw", "P", &offer, 10_000 + at as i64);
        }
        let mut fresh = FolderChannel::load(None, "pw");
        let offer = write(fresh.active_step("pw", "A", 1));
        assert!(
            passive
                .take(Role::Passive, "pw", "P", &offer, 20_000)
                .is_err()
        );
    }

    #[test]
    fn an_issued_writer_key_opens_only_writer_files_and_can_be_revoked() {
        let mut receiver = FolderChannel::load(None, "pw");
        let key = receiver.issue_writer_key("web shop", 1);
        let header = Header {
            v: 2,
            key: String::new(),
            role: Role::Writer,
            kind: "packet".into(),
            seq: 7,
            ts: 0,
            reply: None,
            raw: true,
        };
        let sealed = channel::seal(&key, &header, b"{}");
        assert!(
            receiver
                .open(&sealed, &[Role::Passive], true, 1 << 10)
                .is_ok()
        );
        let pretending = channel::seal(
            &key,
            &Header {
                role: Role::Passive,
                seq: 8,
                ..header.clone()
            },
            b"{}",
        );
        assert!(
            receiver
                .open(&pretending, &[Role::Passive], true, 1 << 10)
                .is_err()
        );
        assert!(receiver.revoke_writer_key(key.id()));
        let later = channel::seal(&key, &Header { seq: 9, ..header }, b"{}");
        assert!(matches!(
            receiver.open(&later, &[Role::Passive], true, 1 << 10),
            Err(Refusal::UnknownKey(_))
        ));
    }
}
