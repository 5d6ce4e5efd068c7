//! A record's history as a person reads it: where each change came from, and for a value
//! taken from a peer, which instance wrote it and what it beat.

use super::shown;
use crate::web::Lang;
use crmsync_domain::value::format_ms;
use crmsync_domain::{Change, ChangeOp, Field, Origin, Table, User, Value};

pub(super) struct HistoryEntry {
    pub(super) at: String,
    pub(super) what: String,
    pub(super) source: String,
    /// (field, old, new, why: where a value from a peer was written and what it beat).
    pub(super) fields: Vec<(String, String, String, String)>,
}

/// Names the instance that wrote a value: this one, a sync's other side, or its id.
pub(super) struct Instances {
    pub(super) here: uuid::Uuid,
    pub(super) peers: Vec<(uuid::Uuid, String)>,
}

impl Instances {
    fn name(&self, lang: Lang, node: uuid::Uuid) -> String {
        if node == self.here {
            return lang.t("instance-here");
        }
        match self.peers.iter().find(|(id, _)| *id == node) {
            Some((_, sync)) => lang.with("instance-peer", &[("sync", sync)]),
            None => lang.with("instance-other", &[("id", &node.to_string()[..8])]),
        }
    }

    fn why(&self, lang: Lang, change: &crmsync_domain::FieldChange) -> String {
        let Some(written) = change.written else {
            return String::new();
        };
        let at = |s: &crmsync_domain::Stamp| format_ms(s.hlc.ms());
        let rule = match change.rule.as_deref() {
            None => "provenance",
            Some("here") => "provenance-rule-here",
            Some(_) => "provenance-rule-there",
        };
        let mut text = lang.with(
            rule,
            &[
                ("at", &at(&written)),
                ("instance", &self.name(lang, written.node)),
            ],
        );
        if let Some(replaced) = change.replaced {
            text.push_str("; ");
            text.push_str(&lang.with(
                "provenance-replaced",
                &[
                    ("at", &at(&replaced)),
                    ("instance", &self.name(lang, replaced.node)),
                ],
            ));
        }
        text
    }
}

pub(super) fn history(
    lang: Lang,
    table: &Table,
    changes: &[Change],
    users: &[User],
    syncs: &[(i64, String)],
    instances: &Instances,
) -> Vec<HistoryEntry> {
    changes
        .iter()
        .rev()
        .map(|change| {
            let user = change
                .user_id
                .and_then(|id| users.iter().find(|u| u.id == id))
                .map(|u| u.full_name.clone())
                .unwrap_or_default();
            let sync_name = |id: i64| {
                syncs
                    .iter()
                    .find(|(sid, _)| *sid == id)
                    .map(|(_, n)| format!("\"{n}\""))
                    .unwrap_or_else(|| id.to_string())
            };
            let source = match &change.origin {
                Origin::Sync(id) => lang.with("history-from-sync", &[("sync", &sync_name(*id))]),
                Origin::Rule(id) => lang.with("history-from-rule", &[("sync", &sync_name(*id))]),
                other => {
                    let key = match other {
                        Origin::Web => "history-from-web",
                        Origin::Import => "history-from-import",
                        Origin::Api => "history-from-api",
                        Origin::Repair => "history-from-repair",
                        Origin::Sync(_)
                        | Origin::Rule(_)
                        | Origin::Resend(_)
                        | Origin::Other(_) => "history-from-user",
                    };
                    lang.with(key, &[("user", &user)])
                }
            };
            let what = lang.t(match change.op {
                ChangeOp::Create => "op-create",
                ChangeOp::Update => "op-update",
                ChangeOp::Delete => "op-delete",
                ChangeOp::Restore => "op-restore",
                ChangeOp::Resend => "sync-record",
            });
            let text = |json: &Option<serde_json::Value>, field: Option<&Field>| match (json, field)
            {
                (Some(json), Some(field)) => Value::from_json(field, json)
                    .map(|v| shown(field, &v, users))
                    .unwrap_or_else(|_| json.to_string()),
                (Some(json), None) => json.to_string(),
                (None, _) => String::new(),
            };
            HistoryEntry {
                at: format_ms(change.at_ms),
                what,
                source,
                fields: change
                    .fields
                    .iter()
                    .map(|f| {
                        let field = table.field(f.field_no);
                        let name = field
                            .map(|f| f.name.clone())
                            .unwrap_or_else(|| f.field_no.to_string());
                        (
                            name,
                            text(&f.old, field),
                            text(&Some(f.new.clone()), field),
                            instances.why(lang, f),
                        )
                    })
                    .collect(),
            }
        })
        .collect()
}
