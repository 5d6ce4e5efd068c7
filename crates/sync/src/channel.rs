//! The sync channel (protocol 2): how two instances that share a sync password agree a key
//! and seal every message with it — HTTP requests and answers, packet files and chunk files
//! alike (docs/protocol.md, SECURITY.md).
//!
//! * **Pairing.** The two sides run SPAKE2 (Ed25519) on the password: the active side sends
//!   its message, the passive side answers with its own and a confirmation, the active side
//!   confirms back. Captured pairings allow no offline guessing; each attempt is one online
//!   guess. The key is bound to both instance ids.
//! * **Sealing.** A message is `MAGIC | u32 header length | header JSON | nonce | AEAD`. The
//!   header is readable (which key, who sends, what, its sequence number and time) and
//!   authenticated with the body, which is zstd-compressed and encrypted with
//!   ChaCha20-Poly1305 under the agreed key.
//! * **Once only.** Every message carries a sequence number that only grows (microseconds
//!   of the sender's clock, or one more than the last); the receiver remembers recent ones
//!   and refuses a number it has seen or one older than its window.

use hmac::{Hmac, Mac};
use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, Nonce, UnboundKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use spake2::{Ed25519Group, Identity, Password, Spake2};
use std::collections::BTreeSet;

/// The first bytes of every sealed message.
pub const MAGIC: &[u8; 8] = b"CRMSCH02";
/// Older protocols' packet files, recognised to say why they are refused.
const OLD_MAGICS: [&[u8; 8]; 2] = [b"CRMSPK01", b"CRMSPK00"];
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
const MAX_HEADER_LEN: usize = 4096;
/// How far apart a message's time and the receiver's clock may be over HTTP.
pub const MAX_SKEW_MS: i64 = 5 * 60 * 1000;
/// Sequence numbers are remembered this far back (µs), and at most `WINDOW_ENTRIES` of them;
/// anything older is refused as a replay.
const WINDOW_US: u64 = 10 * 60 * 1_000_000;
const WINDOW_ENTRIES: usize = 20_000;

/// Who sends a message. A message is accepted only from the role opposite the receiver's
/// (or from a writer the receiver issued a key to), so nothing can be reflected back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Active,
    Passive,
    /// A third-party program writing packets with a key the instance issued for it.
    Writer,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Active => "active",
            Role::Passive => "passive",
            Role::Writer => "writer",
        }
    }
}

/// A 256-bit channel key and its public id (which key a message is sealed with).
#[derive(Clone, PartialEq, Eq)]
pub struct Key {
    bytes: [u8; 32],
    id: String,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Key({})", self.id)
    }
}

fn hmac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    for part in parts {
        mac.update(part);
        mac.update(b"\n");
    }
    mac.finalize().into_bytes().into()
}

impl Key {
    pub fn from_bytes(bytes: [u8; 32]) -> Key {
        let id = hex::encode(&hmac(&bytes, &[b"crmsync key id"])[..8]);
        Key { bytes, id }
    }

    /// A fresh random key (one issued to a third-party writer).
    pub fn random() -> Key {
        Key::from_bytes(random_bytes())
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.bytes)
    }

    pub fn from_hex(text: &str) -> Option<Key> {
        let bytes: [u8; 32] = hex::decode(text.trim()).ok()?.try_into().ok()?;
        Some(Key::from_bytes(bytes))
    }
}

pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).expect("the system's random source works");
    bytes
}

// ---- pairing ----

const ID_ACTIVE: &[u8] = b"crmsync sync active";
const ID_PASSIVE: &[u8] = b"crmsync sync passive";

/// The SPAKE2 secret drawn from a stored seed, so a side that waits days for a folder
/// answer (or restarts meanwhile) can still finish the pairing it began.
struct SeededRng {
    seed: [u8; 32],
    counter: u64,
}

impl rand_core::RngCore for SeededRng {
    fn next_u32(&mut self) -> u32 {
        rand_core::impls::next_u32_via_fill(self)
    }
    fn next_u64(&mut self) -> u64 {
        rand_core::impls::next_u64_via_fill(self)
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        for chunk in dest.chunks_mut(32) {
            let block = hmac(&self.seed, &[b"spake2 scalar", &self.counter.to_be_bytes()]);
            self.counter += 1;
            chunk.copy_from_slice(&block[..chunk.len()]);
        }
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

impl rand_core::CryptoRng for SeededRng {}

fn start(password: &str, role: Role, seed: &[u8; 32]) -> (Spake2<Ed25519Group>, Vec<u8>) {
    let rng = SeededRng {
        seed: *seed,
        counter: 0,
    };
    let (password, a, b) = (
        Password::new(password.as_bytes()),
        Identity::new(ID_ACTIVE),
        Identity::new(ID_PASSIVE),
    );
    match role {
        Role::Active => Spake2::start_a_with_rng(&password, &a, &b, rng),
        _ => Spake2::start_b_with_rng(&password, &a, &b, rng),
    }
}

/// This side's pairing message, from its secret seed.
pub fn pake_message(password: &str, role: Role, seed: &[u8; 32]) -> Vec<u8> {
    start(password, role, seed).1
}

/// The key both sides arrive at when they used the same password (a different one gives a
/// different key, which the confirmations show).
pub fn pake_key(
    password: &str,
    role: Role,
    seed: &[u8; 32],
    peer_message: &[u8],
    active_instance: &str,
    passive_instance: &str,
) -> Result<Key, Refusal> {
    let shared = start(password, role, seed)
        .0
        .finish(peer_message)
        .map_err(|_| Refusal::BadPairing)?;
    Ok(Key::from_bytes(hmac(
        &shared,
        &[
            b"crmsync channel key v2",
            active_instance.as_bytes(),
            passive_instance.as_bytes(),
        ],
    )))
}

/// What a side shows to prove it holds the key (and so the password): a MAC by role.
pub fn confirmation(key: &Key, role: Role) -> String {
    hex::encode(hmac(
        &key.bytes,
        &[b"crmsync confirms", role.as_str().as_bytes()],
    ))
}

/// Whether `claimed` is the confirmation of `role` under `key`, compared in constant time.
pub fn confirms(key: &Key, role: Role, claimed: &str) -> bool {
    let Ok(claimed) = hex::decode(claimed) else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(&key.bytes).expect("HMAC takes any key length");
    for part in [&b"crmsync confirms"[..], role.as_str().as_bytes()] {
        mac.update(part);
        mac.update(b"\n");
    }
    mac.verify_slice(&claimed).is_ok()
}

/// The headers of an HTTP request, authenticated on their own so the receiver can refuse a
/// request before reading its body: which key, the sequence number, the time, the
/// endpoint and the body's length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub key: String,
    pub seq: u64,
    pub ts: i64,
    pub len: u64,
}

/// The header that carries a [`Head`].
pub const HEAD_HEADER: &str = "x-crmsync-head";

impl Head {
    fn mac(&self, key: &Key, kind: &str) -> [u8; 32] {
        hmac(
            &key.bytes,
            &[
                b"crmsync request head",
                self.key.as_bytes(),
                self.seq.to_string().as_bytes(),
                self.ts.to_string().as_bytes(),
                kind.as_bytes(),
                self.len.to_string().as_bytes(),
            ],
        )
    }

    /// The header's value for a request to `kind` sealed with `key`.
    pub fn encode(&self, key: &Key, kind: &str) -> String {
        format!(
            "key={},seq={},ts={},len={},mac={}",
            self.key,
            self.seq,
            self.ts,
            self.len,
            hex::encode(self.mac(key, kind))
        )
    }

    /// The head a header claims, and its MAC, unchecked.
    pub fn parse(value: &str) -> Option<(Head, Vec<u8>)> {
        let mut head = Head {
            key: String::new(),
            seq: 0,
            ts: 0,
            len: 0,
        };
        let mut mac = None;
        for part in value.split(',') {
            match part.trim().split_once('=')? {
                ("key", v) => head.key = v.to_string(),
                ("seq", v) => head.seq = v.parse().ok()?,
                ("ts", v) => head.ts = v.parse().ok()?,
                ("len", v) => head.len = v.parse().ok()?,
                ("mac", v) => mac = hex::decode(v).ok(),
                _ => {}
            }
        }
        Some((head, mac?))
    }

    /// Whether `mac` proves this head for `kind` under `key` (constant time).
    pub fn verify(&self, key: &Key, kind: &str, mac: &[u8]) -> bool {
        let expected = self.mac(key, kind);
        expected.len() == mac.len()
            && expected
                .iter()
                .zip(mac)
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    }
}

/// A password's strength as a notice, or None when it is long enough. A short password is
/// still safe against captured traffic (the pairing allows no offline guess), but each
/// online attempt tries one; a long one makes that hopeless too.
pub fn weak_password_notice(password: &str) -> Option<String> {
    let distinct: BTreeSet<char> = password.chars().collect();
    (password.chars().count() < 12 || distinct.len() < 6).then(|| {
        "a short password: safe against captured traffic, but each pairing attempt online \
         is one guess (throttled); a generated password of 16 or more characters is better"
            .to_string()
    })
}

// ---- sealing ----

/// The readable part of a sealed message; authenticated with the body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    /// The protocol version.
    pub v: u32,
    /// The id of the key it is sealed with.
    pub key: String,
    /// Who sends it.
    pub role: Role,
    /// What it is: the HTTP endpoint (`push`, `content/{sha256}/{index}`…), `packet` or
    /// `chunk` for files.
    pub kind: String,
    /// Grows with every message of the sender.
    pub seq: u64,
    /// The sender's clock (Unix ms).
    pub ts: i64,
    /// In an answer: the `seq` of the request it answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply: Option<u64>,
    /// The body is not compressed (a writer with no zstd at hand); otherwise it is zstd.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub raw: bool,
}

/// Why a message was not accepted; nothing in it was used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    NotSealed,
    OldProtocol,
    UnknownKey(String),
    NotAuthentic,
    TooLarge,
    WrongRole(Role),
    WrongKind { expected: String, got: String },
    NotTheAnswer,
    Stale,
    Replay,
    BadPairing,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::NotSealed => f.write_str("is not a sealed crmsync message (wrong header or truncated)"),
            Refusal::OldProtocol => f.write_str(
                "was written by an older crmsync (sync protocol 1): update the other side to protocol 2",
            ),
            Refusal::UnknownKey(id) => write!(
                f,
                "is sealed with a key this side does not hold ({id}): the two sides must pair again"
            ),
            Refusal::NotAuthentic => f.write_str(
                "does not authenticate under the agreed key: forged, altered, truncated, or another password",
            ),
            Refusal::TooLarge => f.write_str("is too large"),
            Refusal::WrongRole(role) => write!(f, "claims to come from the {} side, which cannot send it here", role.as_str()),
            Refusal::WrongKind { expected, got } => {
                write!(f, "is a '{got}' message where '{expected}' was expected")
            }
            Refusal::NotTheAnswer => f.write_str("is not the answer to the request this side sent"),
            Refusal::Stale => f.write_str(
                "has a time more than 5 minutes off this side's clock (a replay, or a clock is wrong)",
            ),
            Refusal::Replay => f.write_str("is a replay: this message was accepted before"),
            Refusal::BadPairing => f.write_str("is a malformed pairing message"),
        }
    }
}

fn aead_key(key: &Key) -> LessSafeKey {
    LessSafeKey::new(UnboundKey::new(&CHACHA20_POLY1305, &key.bytes).expect("a 256-bit key"))
}

/// Bodies larger than this are sealed uncompressed (`raw`): they are file contents, mostly
/// compressed already, and compressing them would cost a copy as large as the body.
const COMPRESS_UP_TO: usize = 4 << 20;

/// Seals `body` under `key`; `header.key` is set to the key's id.
pub fn seal(key: &Key, header: &Header, body: &[u8]) -> Vec<u8> {
    let header = Header {
        key: key.id.clone(),
        raw: header.raw || body.len() > COMPRESS_UP_TO,
        ..header.clone()
    };
    let raw = header.raw;
    let header = serde_json::to_vec(&header).expect("a header serialises");
    let compressed = (!raw).then(|| zstd::bulk::compress(body, 1).expect("zstd compresses"));
    let plain = compressed.as_deref().unwrap_or(body);
    let mut out =
        Vec::with_capacity(MAGIC.len() + 4 + header.len() + NONCE_LEN + plain.len() + TAG_LEN);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(header.len() as u32).to_be_bytes());
    out.extend_from_slice(&header);
    let aad_len = out.len();
    let nonce: [u8; NONCE_LEN] = random_bytes();
    out.extend_from_slice(&nonce);
    out.extend_from_slice(plain);
    // Encrypted where it lies: no second copy of the body.
    let (readable, rest) = out.split_at_mut(aad_len + NONCE_LEN);
    let tag = aead_key(key)
        .seal_in_place_separate_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(&readable[..aad_len]),
            rest,
        )
        .expect("a message fits the cipher's limits");
    out.extend_from_slice(tag.as_ref());
    out
}

fn split(bytes: &[u8]) -> Result<(Header, usize), Refusal> {
    if bytes.len() >= MAGIC.len() && OLD_MAGICS.iter().any(|m| &bytes[..MAGIC.len()] == *m) {
        return Err(Refusal::OldProtocol);
    }
    if bytes.len() < MAGIC.len() + 4 || &bytes[..MAGIC.len()] != MAGIC {
        return Err(Refusal::NotSealed);
    }
    let len = u32::from_be_bytes(bytes[8..12].try_into().expect("4 bytes")) as usize;
    let aad_len = 12 + len;
    if len > MAX_HEADER_LEN || bytes.len() < aad_len + NONCE_LEN + TAG_LEN {
        return Err(Refusal::NotSealed);
    }
    let header = serde_json::from_slice(&bytes[12..aad_len]).map_err(|_| Refusal::NotSealed)?;
    Ok((header, aad_len))
}

/// The readable header, unauthenticated: only to find the key to open the message with.
pub fn peek(bytes: &[u8]) -> Result<Header, Refusal> {
    split(bytes).map(|(header, _)| header)
}

/// Opens a message sealed under `key`: the header and the body, or why not. A body that
/// would decompress beyond `max_body` bytes is refused.
pub fn open(key: &Key, bytes: &[u8], max_body: usize) -> Result<(Header, Vec<u8>), Refusal> {
    open_owned(key, bytes.to_vec(), max_body)
}

/// The same, decrypting in the message's own buffer (a chunk is not copied again).
pub fn open_owned(
    key: &Key,
    mut bytes: Vec<u8>,
    max_body: usize,
) -> Result<(Header, Vec<u8>), Refusal> {
    let (header, aad_len) = split(&bytes)?;
    if header.key != key.id {
        return Err(Refusal::UnknownKey(header.key));
    }
    let nonce: [u8; NONCE_LEN] = bytes[aad_len..aad_len + NONCE_LEN]
        .try_into()
        .expect("12 bytes");
    let start = aad_len + NONCE_LEN;
    let (readable, sealed) = bytes.split_at_mut(start);
    let plain_len = aead_key(key)
        .open_in_place(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(&readable[..aad_len]),
            sealed,
        )
        .map_err(|_| Refusal::NotAuthentic)?
        .len();
    let body = match header.raw {
        true if plain_len <= max_body => {
            bytes.truncate(start + plain_len);
            bytes.drain(..start);
            bytes
        }
        true => return Err(Refusal::TooLarge),
        false => zstd::bulk::decompress(&bytes[start..start + plain_len], max_body)
            .map_err(|_| Refusal::TooLarge)?,
    };
    Ok((header, body))
}

/// What the receiver expects of a message beyond its key.
#[derive(Debug, Clone)]
pub struct Expect<'a> {
    /// The roles it may come from.
    pub from: &'a [Role],
    /// Its kind; None accepts any (a folder's packets and chunks are told apart after).
    pub kind: Option<&'a str>,
    /// For an answer: the request's `seq`.
    pub reply_to: Option<u64>,
    /// Over HTTP: this side's clock, to refuse a message far off it.
    pub now_ms: Option<i64>,
}

/// Opens and checks a message, and remembers its sequence number in `window` once every
/// check has passed.
pub fn open_checked(
    key: &Key,
    bytes: &[u8],
    expect: &Expect<'_>,
    window: &mut ReplayWindow,
    max_body: usize,
) -> Result<(Header, Vec<u8>), Refusal> {
    open_checked_owned(key, bytes.to_vec(), expect, window, max_body)
}

/// The same, decrypting in the message's own buffer.
pub fn open_checked_owned(
    key: &Key,
    bytes: Vec<u8>,
    expect: &Expect<'_>,
    window: &mut ReplayWindow,
    max_body: usize,
) -> Result<(Header, Vec<u8>), Refusal> {
    let (header, body) = open_owned(key, bytes, max_body)?;
    check(&header, expect, window)?;
    Ok((header, body))
}

/// Checks an opened message's header against what is expected, and remembers its sequence
/// number in `window` once every check has passed.
pub fn check(
    header: &Header,
    expect: &Expect<'_>,
    window: &mut ReplayWindow,
) -> Result<(), Refusal> {
    if !expect.from.contains(&header.role) {
        return Err(Refusal::WrongRole(header.role));
    }
    if let Some(kind) = expect.kind
        && header.kind != kind
    {
        return Err(Refusal::WrongKind {
            expected: kind.to_string(),
            got: header.kind.clone(),
        });
    }
    if expect.reply_to.is_some() && header.reply != expect.reply_to {
        return Err(Refusal::NotTheAnswer);
    }
    if let Some(now) = expect.now_ms
        && (now - header.ts).abs() > MAX_SKEW_MS
    {
        return Err(Refusal::Stale);
    }
    if !window.accept(header.seq) {
        return Err(Refusal::Replay);
    }
    Ok(())
}

/// The next sequence number after `last`: the clock in microseconds, or one more than the
/// last when the clock has not moved on (or went back), so it only grows, also across a
/// restart from an old backup.
pub fn next_seq(last: &mut u64, now_ms: i64) -> u64 {
    *last = (*last + 1).max(now_ms.max(0) as u64 * 1000);
    *last
}

/// The sequence numbers accepted recently: a number at or below `floor`, or one seen, is a
/// replay.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplayWindow {
    floor: u64,
    recent: BTreeSet<u64>,
}

impl ReplayWindow {
    /// Whether `seq` would be accepted, without remembering it.
    pub fn is_new(&self, seq: u64) -> bool {
        seq > self.floor && !self.recent.contains(&seq)
    }

    /// Whether `seq` is new; if so it is remembered.
    pub fn accept(&mut self, seq: u64) -> bool {
        if seq <= self.floor || !self.recent.insert(seq) {
            return false;
        }
        let highest = *self.recent.last().expect("just inserted");
        while let Some(&oldest) = self.recent.first() {
            if oldest + WINDOW_US >= highest && self.recent.len() <= WINDOW_ENTRIES {
                break;
            }
            self.recent.pop_first();
            self.floor = self.floor.max(oldest);
        }
        true
    }
}

/// The SHA-256 of a text, hex: how an issued writer key's secret is named in logs.
pub fn fingerprint(bytes: &[u8]) -> String {
    hex::encode(&Sha256::digest(bytes)[..8])
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn paired(pw_active: &str, pw_passive: &str) -> (Key, Key) {
        let (seed_a, seed_b) = (random_bytes(), random_bytes());
        let msg_a = pake_message(pw_active, Role::Active, &seed_a);
        let msg_b = pake_message(pw_passive, Role::Passive, &seed_b);
        let a = pake_key(pw_active, Role::Active, &seed_a, &msg_b, "A", "B").unwrap();
        let b = pake_key(pw_passive, Role::Passive, &seed_b, &msg_a, "A", "B").unwrap();
        (a, b)
    }

    fn header(kind: &str, seq: u64) -> Header {
        Header {
            v: 2,
            key: String::new(),
            role: Role::Active,
            kind: kind.to_string(),
            seq,
            ts: 1_000,
            reply: None,
            raw: false,
        }
    }

    #[test]
    fn the_same_password_gives_the_same_key_and_the_confirmations_show_a_different_one() {
        let (a, b) = paired("123456", "123456");
        assert_eq!(a, b);
        assert!(confirms(&b, Role::Active, &confirmation(&a, Role::Active)));
        // A confirmation by one role is not one by the other (no reflection).
        assert!(!confirms(
            &b,
            Role::Passive,
            &confirmation(&a, Role::Active)
        ));
        let (a, b) = paired("123456", "123457");
        assert_ne!(a, b);
        assert!(!confirms(&b, Role::Active, &confirmation(&a, Role::Active)));
        // A stored seed gives the same message and key again (a folder pairing resumes).
        let seed = random_bytes();
        assert_eq!(
            pake_message("pw", Role::Active, &seed),
            pake_message("pw", Role::Active, &seed)
        );
        // The key binds the instance ids.
        let (seed_a, seed_b) = (random_bytes(), random_bytes());
        let msg_b = pake_message("pw", Role::Passive, &seed_b);
        let k1 = pake_key("pw", Role::Active, &seed_a, &msg_b, "A", "B").unwrap();
        let k2 = pake_key("pw", Role::Active, &seed_a, &msg_b, "A", "C").unwrap();
        assert_ne!(k1, k2);
        assert_eq!(
            pake_key("pw", Role::Active, &seed_a, b"junk", "A", "B"),
            Err(Refusal::BadPairing)
        );
    }

    #[test]
    fn a_sealed_message_opens_once_under_its_key_only_and_shows_nothing() {
        let (key, _) = paired("pw", "pw");
        let body = br#"{"name":"Secret Client Ltd"}"#;
        let sealed = seal(&key, &header("push", 5), body);
        assert!(!sealed.windows(6).any(|w| w == b"Secret"));
        let expect = Expect {
            from: &[Role::Active],
            kind: Some("push"),
            reply_to: None,
            now_ms: Some(2_000),
        };
        let mut window = ReplayWindow::default();
        let (h, opened) = open_checked(&key, &sealed, &expect, &mut window, 1 << 20).unwrap();
        assert_eq!((h.seq, opened.as_slice()), (5, &body[..]));
        assert_eq!(
            open_checked(&key, &sealed, &expect, &mut window, 1 << 20),
            Err(Refusal::Replay)
        );
        let other = Key::random();
        assert!(matches!(
            open(&other, &sealed, 1 << 20),
            Err(Refusal::UnknownKey(_))
        ));
        let wrong_kind = Expect {
            kind: Some("pull"),
            ..expect.clone()
        };
        let mut fresh = ReplayWindow::default();
        assert!(matches!(
            open_checked(&key, &sealed, &wrong_kind, &mut fresh, 1 << 20),
            Err(Refusal::WrongKind { .. })
        ));
        let from_passive = Expect {
            from: &[Role::Passive],
            ..expect.clone()
        };
        assert_eq!(
            open_checked(&key, &sealed, &from_passive, &mut fresh, 1 << 20),
            Err(Refusal::WrongRole(Role::Active))
        );
        let later = Expect {
            now_ms: Some(1_000 + MAX_SKEW_MS + 1),
            ..expect.clone()
        };
        assert_eq!(
            open_checked(&key, &sealed, &later, &mut fresh, 1 << 20),
            Err(Refusal::Stale)
        );
        let answer = Expect {
            reply_to: Some(4),
            ..expect
        };
        assert_eq!(
            open_checked(&key, &sealed, &answer, &mut fresh, 1 << 20),
            Err(Refusal::NotTheAnswer)
        );
        // Refused checks did not use up the number.
        assert!(fresh.accept(5));
        assert_eq!(
            open(&key, b"CRMSPK01xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", 10),
            Err(Refusal::OldProtocol)
        );
        let big = seal(&key, &header("push", 6), &vec![b'x'; 1 << 16]);
        assert_eq!(open(&key, &big, 1 << 10), Err(Refusal::TooLarge));
    }

    #[test]
    fn a_request_head_is_proven_for_its_key_kind_and_length_only() {
        let (key, _) = paired("pw", "pw");
        let head = Head {
            key: key.id().to_string(),
            seq: 7,
            ts: 1_000,
            len: 60 << 20,
        };
        let value = head.encode(&key, "push");
        let (parsed, mac) = Head::parse(&value).unwrap();
        assert_eq!(parsed, head);
        assert!(parsed.verify(&key, "push", &mac));
        assert!(!parsed.verify(&key, "pull", &mac));
        assert!(!parsed.verify(&Key::random(), "push", &mac));
        let longer = Head {
            len: 61 << 20,
            ..parsed
        };
        assert!(!longer.verify(&key, "push", &mac));
        assert_eq!(Head::parse("key=x,seq=nope,mac=00"), None);
    }

    #[test]
    fn sequence_numbers_only_grow_and_the_window_forgets_only_what_it_then_refuses() {
        let mut last = 0;
        let first = next_seq(&mut last, 1_000);
        let second = next_seq(&mut last, 1_000);
        let after_clock_went_back = next_seq(&mut last, 10);
        assert!(first < second && second < after_clock_went_back);
        let mut window = ReplayWindow::default();
        let base = 1_000_000_000_000u64;
        assert!(window.accept(base + 5));
        assert!(window.accept(base + 3), "a little out of order is fine");
        assert!(!window.accept(base + 3));
        assert!(window.accept(base + WINDOW_US + 10));
        assert!(!window.accept(base + 4), "older than the window: refused");
    }

    proptest! {
        #[test]
        fn any_flipped_bit_or_cut_is_refused_and_never_panics(
            body in proptest::collection::vec(any::<u8>(), 0..512),
            flip in any::<proptest::sample::Index>(),
            cut in any::<proptest::sample::Index>(),
        ) {
            let key = Key::from_bytes([7; 32]);
            let sealed = seal(&key, &header("packet", 9), &body);
            prop_assert_eq!(open(&key, &sealed, 1 << 20).unwrap().1, body);
            let mut flipped = sealed.clone();
            let at = flip.index(flipped.len());
            flipped[at] ^= 1;
            prop_assert!(open(&key, &flipped, 1 << 20).is_err());
            let cut_at = cut.index(sealed.len());
            prop_assert!(open(&key, &sealed[..cut_at], 1 << 20).is_err());
        }

        /// A request's head as it arrives (anyone's header): read or refused, never a
        /// panic; a head this side wrote is read back as written, and proves itself only
        /// for its own key and endpoint.
        #[test]
        fn any_request_head_is_read_or_refused_and_only_its_own_verifies(
            text in "[a-z0-9=,. -]{0,80}",
            seq in any::<u64>(),
            ts in any::<i64>(),
            len in any::<u64>(),
            kind in "[a-z/?=0-9]{1,20}",
        ) {
            if let Some((head, mac)) = Head::parse(&text) {
                prop_assert!(!head.verify(&Key::from_bytes([7; 32]), "push", &mac));
            }
            let key = Key::from_bytes([7; 32]);
            let head = Head { key: key.id().to_string(), seq, ts, len };
            let (read, mac) = Head::parse(&head.encode(&key, &kind)).expect("its own head");
            prop_assert_eq!(&read, &head);
            prop_assert!(read.verify(&key, &kind, &mac));
            prop_assert!(!read.verify(&Key::from_bytes([8; 32]), &kind, &mac));
            let other_endpoint = format!("{}x", kind);
            prop_assert!(!read.verify(&key, &other_endpoint, &mac));
        }

        #[test]
        fn every_sequence_number_is_accepted_at_most_once(
            seqs in proptest::collection::vec(0u64..2_000_000_000, 1..200),
        ) {
            let mut window = ReplayWindow::default();
            let mut accepted = BTreeSet::new();
            for seq in seqs {
                if window.accept(seq) {
                    prop_assert!(accepted.insert(seq), "{} accepted twice", seq);
                }
            }
        }
    }
}
