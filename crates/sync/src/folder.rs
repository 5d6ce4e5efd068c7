//! Packet files for the folder transports (local folders, FTP): what a side writes into its
//! upload folder and its peer reads from its download folder.
//!
//! A file is the packet's JSON sealed with the sync channel's key (`channel::seal`, kind
//! `packet`): forged, truncated, corrupted, replayed or foreign files are recognised before
//! anything in it is read, and nothing of it is readable in the folder. Its name carries
//! the packet's cursors, so files sort in sequence.

use crate::channel::{Refusal, Role};
use crate::folder_channel::FolderChannel;
use crate::protocol::Packet;

pub const EXTENSION: &str = "cspk";
/// The kind a packet file is sealed as; chunk files are sealed as their own name.
pub const PACKET_KIND: &str = "packet";

#[derive(Debug, PartialEq, Eq)]
pub enum Rejection {
    /// Not sealed for this sync, or sealed wrongly: the channel's reason.
    Refused(Refusal),
    /// Sealed correctly but not a packet.
    Unreadable(String),
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Rejection::Refused(refusal) => refusal.fmt(f),
            Rejection::Unreadable(e) => write!(f, "is sealed correctly but unreadable: {e}"),
        }
    }
}

/// The most a packet may decompress to; a packet holds at most a few thousand records.
pub const MAX_PACKET_BYTES: usize = 512 << 20;

/// A packet file's bytes, sealed with the channel's key; None before the two sides paired.
pub fn encode(
    packet: &Packet,
    channel: &mut FolderChannel,
    role: Role,
    now_ms: i64,
) -> Option<Vec<u8>> {
    let json = serde_json::to_vec(packet).expect("a packet serialises");
    channel.seal(role, PACKET_KIND, &json, now_ms)
}

/// Opens a packet file from the roles `from`. `once`: its sequence number is used up (a
/// file read to be applied); a look that applies nothing leaves it unused.
pub fn decode(
    bytes: &[u8],
    channel: &mut FolderChannel,
    from: &[Role],
    once: bool,
) -> Result<Packet, Rejection> {
    let (header, json) = channel
        .open(bytes, from, once, MAX_PACKET_BYTES)
        .map_err(Rejection::Refused)?;
    if header.kind != PACKET_KIND {
        return Err(Rejection::Refused(Refusal::WrongKind {
            expected: PACKET_KIND.to_string(),
            got: header.kind,
        }));
    }
    let packet: Packet =
        serde_json::from_slice(&json).map_err(|e| Rejection::Unreadable(e.to_string()))?;
    match packet.range_problem() {
        Some(problem) => Err(Rejection::Unreadable(problem)),
        None => Ok(packet),
    }
}

/// A packet file's name: `AFTER-UPTO-MILLIS.cspk`, zero-padded, so names sort in sequence
/// (a packet with nothing new, e.g. one that only carries a request, sorts before the next
/// one that starts where it does) and two packets never share a name.
pub fn file_name(packet: &Packet, written_at_ms: i64) -> String {
    format!(
        "{:020}-{:020}-{:013}.{EXTENSION}",
        packet.after,
        packet.upto,
        written_at_ms.max(0)
    )
}

/// When the writer says it wrote a packet file (its clock), from the file's name.
pub fn written_at(name: &str) -> Option<i64> {
    is_packet_name(name)
        .then(|| name.split(['-', '.']).nth(2)?.parse().ok())
        .flatten()
}

/// Only names this side could have written are read: the three numbers and the extension.
pub fn is_packet_name(name: &str) -> bool {
    let Some(stem) = name.strip_suffix(&format!(".{EXTENSION}")) else {
        return false;
    };
    let parts: Vec<&str> = stem.split('-').collect();
    parts.len() == 3
        && [20, 20, 13]
            .iter()
            .zip(&parts)
            .all(|(len, part)| part.len() == *len && part.bytes().all(|b| b.is_ascii_digit()))
}

/// What to do with a packet given how far this side has read (`received`: the highest
/// `upto` applied, 0 before the first packet).
#[derive(Debug, PartialEq, Eq)]
pub enum Sequence {
    Apply,
    /// Everything in it was applied before: a replay.
    Replay,
    /// Something before it is missing; wait for it.
    Gap,
}

pub fn sequence(packet: &Packet, received: i64) -> Sequence {
    if received > 0 && packet.upto <= received {
        Sequence::Replay
    } else if received > 0 && packet.after > received {
        Sequence::Gap
    } else {
        Sequence::Apply
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{Item, WireField, WireStamp};

    fn packet(after: i64, upto: i64) -> Packet {
        Packet {
            after,
            upto,
            ..Packet::default()
        }
    }

    /// Two channels paired with each other, as an active and a passive side.
    fn paired() -> (FolderChannel, FolderChannel) {
        use crate::folder_channel::PairingStep;
        let (mut active, mut passive) = (
            FolderChannel::load(None, "pw"),
            FolderChannel::load(None, "pw"),
        );
        let PairingStep::Write(offer) = active.active_step("pw", "A", 1) else {
            panic!("an offer")
        };
        let Ok(PairingStep::Write(answer)) = passive.take(Role::Passive, "pw", "P", &offer, 1)
        else {
            panic!("an answer")
        };
        let Ok(PairingStep::Write(confirmation)) = active.take(Role::Active, "pw", "A", &answer, 1)
        else {
            panic!("a confirmation")
        };
        passive
            .take(Role::Passive, "pw", "P", &confirmation, 1)
            .unwrap();
        (active, passive)
    }

    #[test]
    fn a_packet_whose_range_runs_backwards_is_unreadable() {
        let (mut active, mut passive) = paired();
        for (after, upto) in [(20, 10), (-5, 10)] {
            let bytes = encode(&packet(after, upto), &mut active, Role::Active, 5).unwrap();
            let refused = decode(&bytes, &mut passive, &[Role::Active], true);
            assert!(
                matches!(&refused, Err(Rejection::Unreadable(why)) if why.contains("no range")),
                "{refused:?}"
            );
        }
    }

    #[test]
    fn a_packet_round_trips_once_and_any_change_is_caught() {
        let (mut active, mut passive) = paired();
        let p = packet(10, 20);
        let bytes = encode(&p, &mut active, Role::Active, 5).unwrap();
        assert_eq!(
            decode(&bytes, &mut passive, &[Role::Active], false).unwrap(),
            p
        );
        assert_eq!(
            decode(&bytes, &mut passive, &[Role::Active], true).unwrap(),
            p
        );
        assert_eq!(
            decode(&bytes, &mut passive, &[Role::Active], true),
            Err(Rejection::Refused(Refusal::Replay))
        );
        let (_, mut stranger) = paired();
        assert!(matches!(
            decode(&bytes, &mut stranger, &[Role::Active], true),
            Err(Rejection::Refused(Refusal::UnknownKey(_)))
        ));
        let mut flipped = bytes.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert_eq!(
            decode(&flipped, &mut passive, &[Role::Active], true),
            Err(Rejection::Refused(Refusal::NotAuthentic))
        );
        assert_eq!(
            decode(
                b"hello world, this is not a packet at all!",
                &mut passive,
                &[Role::Active],
                true
            ),
            Err(Rejection::Refused(Refusal::NotSealed))
        );
        // Not paired yet: nothing is written.
        assert_eq!(
            encode(&p, &mut FolderChannel::load(None, "pw"), Role::Active, 5),
            None
        );
    }

    #[test]
    fn names_sort_in_sequence_and_nothing_else_is_read() {
        let name = file_name(&packet(42, 50), 1_700_000_000_000);
        assert_eq!(
            name,
            "00000000000000000042-00000000000000000050-1700000000000.cspk"
        );
        assert!(is_packet_name(&name));
        assert!(
            file_name(&packet(42, 42), 9) < file_name(&packet(42, 50), 1),
            "a request first"
        );
        assert!(!is_packet_name(&format!("../{name}")));
        assert!(!is_packet_name(&format!("{name}.tmp")));
        assert!(!is_packet_name(&format!("{name}.rejected")));
        assert!(!is_packet_name("evil.cspk"));
    }

    #[test]
    fn replays_and_gaps_are_recognised() {
        assert_eq!(
            sequence(&packet(5, 9), 0),
            Sequence::Apply,
            "the first packet starts anywhere"
        );
        assert_eq!(sequence(&packet(9, 15), 9), Sequence::Apply);
        assert_eq!(
            sequence(&packet(5, 12), 9),
            Sequence::Apply,
            "a rewritten overlap is harmless"
        );
        assert_eq!(sequence(&packet(5, 9), 9), Sequence::Replay);
        assert_eq!(sequence(&packet(12, 20), 9), Sequence::Gap);
    }

    #[test]
    fn a_number_arrives_as_the_very_same_number() {
        // Found by `any_packet_round_trips`: without serde_json's exact float parsing this
        // one arrived one unit in the last place off, a drift no repair could mend.
        let number = 1.390_650_084_540_528_3e149_f64;
        let mut p = packet(1, 2);
        p.items.push(Item {
            uid: uuid::Uuid::nil(),
            table: 1,
            status: "active".into(),
            status_stamp: WireStamp {
                hlc: 1,
                node: uuid::Uuid::nil(),
            },
            fields: [(
                1,
                WireField {
                    value: number.into(),
                    stamp: WireStamp {
                        hlc: 1,
                        node: uuid::Uuid::nil(),
                    },
                },
            )]
            .into(),
            created_at_ms: None,
        });
        let (mut active, mut passive) = paired();
        let bytes = encode(&p, &mut active, Role::Active, 1).unwrap();
        let back = decode(&bytes, &mut passive, &[Role::Active], true).unwrap();
        assert_eq!(back.items[0].fields[&1].value.as_f64(), Some(number));
    }

    mod properties {
        use super::*;
        use crate::testing;
        use proptest::prelude::*;
        use proptest::sample::Index;

        proptest! {
            #[test]
            fn any_packet_round_trips(packet in testing::packet()) {
                let (mut active, mut passive) = paired();
                let bytes = encode(&packet, &mut active, Role::Active, 1).unwrap();
                prop_assert_eq!(decode(&bytes, &mut passive, &[Role::Active], true), Ok(packet));
            }

            #[test]
            fn any_truncation_or_flipped_bit_is_rejected(
                packet in testing::packet(),
                cut in any::<Index>(),
                at in any::<Index>(),
                bit in 0u8..8,
            ) {
                let (mut active, mut passive) = paired();
                let bytes = encode(&packet, &mut active, Role::Active, 1).unwrap();
                let cut = cut.index(bytes.len());
                prop_assert!(decode(&bytes[..cut], &mut passive, &[Role::Active], true).is_err());
                let mut flipped = bytes.clone();
                let at = at.index(flipped.len());
                flipped[at] ^= 1 << bit;
                prop_assert!(decode(&flipped, &mut passive, &[Role::Active], true).is_err());
            }

            /// Whatever lies in a download folder: refused, never a panic.
            #[test]
            fn arbitrary_bytes_are_refused(
                magic in prop_oneof![Just(crate::channel::MAGIC.to_vec()), Just(b"CRMSPK01".to_vec()), Just(Vec::new())],
                rest in proptest::collection::vec(any::<u8>(), 0..200),
            ) {
                let (_, mut passive) = paired();
                let bytes = [magic, rest].concat();
                prop_assert!(decode(&bytes, &mut passive, &[Role::Active], true).is_err());
            }

            /// Names sort as their packets' cursors and writing times do, and each is read
            /// back as a packet file's name with its time.
            #[test]
            fn names_sort_in_sequence(
                a in (0..i64::MAX, 0..i64::MAX, 0i64..10_000_000_000_000),
                b in (0..i64::MAX, 0..i64::MAX, 0i64..10_000_000_000_000),
            ) {
                let name = |(after, upto, ms): (i64, i64, i64)| file_name(&packet(after, upto), ms);
                let (first, second) = (name(a), name(b));
                prop_assert_eq!(first.cmp(&second), a.cmp(&b));
                prop_assert!(is_packet_name(&first));
                prop_assert_eq!(written_at(&first), Some(a.2));
            }

            /// Sealed with the right key but not a packet: unreadable, not a panic.
            #[test]
            fn a_sealed_body_that_is_no_packet_is_unreadable(
                body in proptest::collection::vec(any::<u8>(), 0..200),
            ) {
                let (mut active, mut passive) = paired();
                prop_assume!(serde_json::from_slice::<Packet>(&body).is_err());
                let bytes = active.seal(Role::Active, PACKET_KIND, &body, 1).unwrap();
                prop_assert!(matches!(
                    decode(&bytes, &mut passive, &[Role::Active], true),
                    Err(Rejection::Unreadable(_))
                ));
            }
        }
    }
}
