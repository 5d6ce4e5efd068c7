//! `Origin`: through what a write arrived. Carried typed through the domain and the sync;
//! it becomes text only where it is stored (the change log's `origin` column) and where it
//! is shown (record history in the API and the web UI) — both through [`Origin::as_string`]
//! and [`Origin::parse`], so the two can never disagree.

use crate::sync::SyncId;
use std::fmt;

/// Through what a write arrives; recorded in the change log and shown in record history.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Origin {
    Api,
    /// The web UI.
    Web,
    /// A drift repair rewriting values with fresh stamps (B-16).
    Repair,
    Import,
    /// Applied by this sync from its peer: never sent back over it (no echo).
    Sync(SyncId),
    /// A sync's conflict rule overruling the newer write (B-02): a write with a fresh
    /// stamp that travels everywhere, back to that sync's peer too.
    Rule(SyncId),
    /// A request that this sync send a record again (`ChangeOp::Resend`); no other sync
    /// sends it.
    Resend(SyncId),
    /// Text in the store that names none of the above — written by another version, or by
    /// hand. Kept as it is rather than refused: an origin only decides echoes (which an
    /// unknown one never is) and what history shows, so failing the read would stop a
    /// sync or hide a record's history over a label.
    Other(String),
}

impl Origin {
    /// The stored and shown text: `api`, `web`, `repair`, `import`, `sync:<id>`,
    /// `rule:<id>`, `resend:<id>` (the REST API's history shows these; keep them).
    pub fn as_string(&self) -> String {
        self.to_string()
    }

    /// Reads the stored text back; text that names no origin is `Other`.
    pub fn parse(text: &str) -> Origin {
        // Only the text `as_string` writes (`sync:03` is not `sync:3`), so what is read
        // is written back unchanged.
        let numbered = |prefix: &str| {
            let digits = text.strip_prefix(prefix)?;
            let id = digits.parse::<SyncId>().ok()?;
            (id.to_string() == digits).then_some(id)
        };
        match text {
            "api" => Origin::Api,
            "web" => Origin::Web,
            "repair" => Origin::Repair,
            "import" => Origin::Import,
            _ => {
                if let Some(id) = numbered("sync:") {
                    Origin::Sync(id)
                } else if let Some(id) = numbered("rule:") {
                    Origin::Rule(id)
                } else if let Some(id) = numbered("resend:") {
                    Origin::Resend(id)
                } else {
                    Origin::Other(text.to_string())
                }
            }
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Api => f.write_str("api"),
            Origin::Web => f.write_str("web"),
            Origin::Repair => f.write_str("repair"),
            Origin::Import => f.write_str("import"),
            Origin::Sync(id) => write!(f, "sync:{id}"),
            Origin::Rule(id) => write!(f, "rule:{id}"),
            Origin::Resend(id) => write!(f, "resend:{id}"),
            Origin::Other(text) => f.write_str(text),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_origin_reads_back_as_it_was_stored() {
        for origin in [
            Origin::Api,
            Origin::Web,
            Origin::Repair,
            Origin::Import,
            Origin::Sync(3),
            Origin::Rule(4),
            Origin::Resend(5),
        ] {
            assert_eq!(Origin::parse(&origin.as_string()), origin);
        }
        assert_eq!(Origin::Sync(12).as_string(), "sync:12");
        assert_eq!(Origin::Resend(2).as_string(), "resend:2");
    }

    #[test]
    fn unknown_text_is_kept_as_it_is() {
        for text in [
            "cli", "sync:", "sync:x", "sync:03", "sync:+3", "rule:1:2", "", "API",
        ] {
            let origin = Origin::parse(text);
            assert_eq!(origin, Origin::Other(text.to_string()));
            assert_eq!(origin.as_string(), text);
        }
    }
}
