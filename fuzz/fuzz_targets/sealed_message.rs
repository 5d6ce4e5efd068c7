//! A request's head header and a sealed body as anyone may send them to a passive side:
//! read or refused, never a panic; nothing opens without the key.
#![no_main]

use crmsync_sync::channel::{self, Head, Key};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let key = Key::from_bytes([7; 32]);
    if let Ok(text) = std::str::from_utf8(bytes)
        && let Some((head, mac)) = Head::parse(text)
    {
        assert!(!head.verify(&key, "push", &mac), "a made-up head verified");
    }
    assert!(
        channel::open(&key, bytes, 1 << 20).is_err(),
        "made-up bytes opened under a key nobody sent them with"
    );
});
