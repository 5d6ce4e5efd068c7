//! Whatever lies in a download folder, read as a packet file by a paired passive side:
//! refused or read, never a panic. The input is tried as the file itself (nothing gets
//! past the seal) and as what the other side sealed (the packet's JSON and its checks).
#![no_main]

use crmsync_sync::channel::Role;
use crmsync_sync::folder_channel::{FolderChannel, PairingStep};
use libfuzzer_sys::fuzz_target;

fn paired() -> (FolderChannel, FolderChannel) {
    let (mut active, mut passive) = (FolderChannel::load(None, "pw"), FolderChannel::load(None, "pw"));
    let PairingStep::Write(offer) = active.active_step("pw", "A", 1) else {
        unreachable!("a fresh channel offers")
    };
    let Ok(PairingStep::Write(answer)) = passive.take(Role::Passive, "pw", "P", &offer, 1) else {
        unreachable!("an offer is answered")
    };
    let Ok(PairingStep::Write(confirmation)) = active.take(Role::Active, "pw", "A", &answer, 1)
    else {
        unreachable!("an answer is confirmed")
    };
    passive
        .take(Role::Passive, "pw", "P", &confirmation, 1)
        .expect("the confirmation is taken");
    (active, passive)
}

fuzz_target!(|bytes: &[u8]| {
    let (mut active, mut passive) = paired();
    assert!(crmsync_sync::folder::decode(bytes, &mut passive, &[Role::Active], true).is_err());
    let sealed = active
        .seal(Role::Active, crmsync_sync::folder::PACKET_KIND, bytes, 1)
        .expect("a paired side seals");
    if let Ok(packet) = crmsync_sync::folder::decode(&sealed, &mut passive, &[Role::Active], true) {
        assert!(packet.after <= packet.upto, "a packet reaching back: {packet:?}");
    }
});
