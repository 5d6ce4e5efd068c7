//! The other side's questions (`peer::Request`) answered in one place whichever transport
//! brought them: the passive HTTP endpoints call [`answer`]; a packet's questions are
//! answered after it applied and their answers go with the next packet, and the answers a
//! packet brings go to whoever asked (`mailbox`).

use super::mailbox::{answers_in, carries_control, requests_in};
use super::peer::{Answer, Request};
use crate::app::App;
use crmsync_domain::DomainError;
use crmsync_domain::sync::{Mode, SyncConfig};
use crmsync_sync::Mapping;
use crmsync_sync::Packet;
use crmsync_sync::protocol::PairOutcome;

/// The answer to a question of the other side's (blocking). Digests, records and pairs are
/// the active side's questions to the passive side; numbers go either way, to their owner.
pub fn answer(
    app: &App,
    sync: &SyncConfig,
    mapping: &Mapping,
    request: &Request,
) -> Result<Answer, DomainError> {
    if request.from_active_side_only() && sync.mode != Mode::Passive {
        return Err(DomainError::Conflict(
            "the passive side of a sync answers this; this is the active side".into(),
        ));
    }
    Ok(match request {
        Request::Digests(request) => Answer::Digests(crmsync_sync::drift::answer(
            &app.core, sync, mapping, request,
        )?),
        Request::Records(request) => Answer::Records(crmsync_sync::matching::table_items(
            &app.core,
            sync,
            mapping,
            request.table,
        )?),
        Request::Pairs(request) => Answer::Paired(PairOutcome {
            paired: super::matching::record_pairs(app, sync, mapping, request)?,
            refused: None,
        }),
        Request::Numbers(request) => {
            Answer::Numbers(super::numbering::grant(app, mapping, request))
        }
    })
}

/// Before a packet's changes apply: pairs come first, so the records they name meet.
pub fn before_apply(app: &App, sync: &SyncConfig, packet: &Packet) -> Result<(), DomainError> {
    let Some(pairs) = packet.pairs.as_ref().filter(|_| sync.mode == Mode::Passive) else {
        return Ok(());
    };
    let mapping = super::initial::mapping_for(app, sync)?;
    let reply = match answer(app, sync, &mapping, &Request::Pairs(pairs.clone())) {
        Ok(answer) => answer,
        Err(e) => Answer::Paired(PairOutcome {
            paired: 0,
            refused: Some(e.to_string()),
        }),
    };
    app.mailboxes.send_answer(sync.id, reply);
    app.syncs.committed();
    Ok(())
}

/// After a packet's changes applied: answers its questions, hands its answers over.
pub fn after_apply(app: &App, sync: &SyncConfig, packet: &Packet) -> Result<(), DomainError> {
    if !carries_control(packet) {
        return Ok(());
    }
    if let Some(resent) = packet.resent {
        app.mailboxes.with(sync.id, |m| m.got_resent = Some(resent));
    }
    let mapping = super::initial::mapping_for(app, sync)?;
    for request in requests_in(packet) {
        match request {
            // Answered before the changes applied.
            Request::Pairs(_) if sync.mode == Mode::Passive => {}
            request if request.from_active_side_only() && sync.mode != Mode::Passive => {
                app.core.log_sync(
                    sync,
                    "error",
                    format!(
                        "ignored {} in a packet from the passive side (only the active side asks it)",
                        request.describe()
                    ),
                    None,
                )?;
            }
            request => {
                let reply = answer(app, sync, &mapping, &request)?;
                app.mailboxes.send_answer(sync.id, reply);
            }
        }
    }
    for answer in answers_in(packet) {
        let what = answer.describe();
        if !app.mailboxes.deliver(sync.id, answer) {
            // Not silently: an answer to nothing asked is left out, with the reason.
            app.core.log_sync(
                sync,
                "error",
                format!(
                    "ignored {what} this side did not ask for (asked before a restart, or a replay)"
                ),
                None,
            )?;
        }
    }
    app.syncs.committed();
    Ok(())
}
