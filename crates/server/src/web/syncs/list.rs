//! The list of syncs, each with a green check or a red mark and its reason.

use super::*;

pub(super) struct SyncRow {
    pub(super) id: i64,
    pub(super) name: String,
    pub(super) mode: String,
    pub(super) transport: String,
    pub(super) connected: bool,
    pub(super) reason: String,
    /// Beside the green check ("no fields yet").
    pub(super) notice: String,
    /// The sync password is short (a notice, with the way to a generated one).
    pub(super) weak_password: bool,
    pub(super) last_run: String,
    pub(super) pending_out: i64,
    pub(super) pending_in: i64,
    /// "3 held changes", when there are any.
    pub(super) held: String,
    pub(super) clock_warning: String,
    pub(super) user_match_warning: String,
    pub(super) waiting_links: usize,
}

#[derive(Template)]
#[template(path = "syncs.html")]
pub(super) struct SyncsPage {
    page: Page,
    syncs: Vec<SyncRow>,
}

pub(super) fn row(page: &Page, app: &App, sync: &SyncConfig) -> Result<SyncRow, DomainError> {
    let mut view = crate::sync::actions::status(app, sync)?;
    if !page.is_admin() {
        view.hide_settings(sync);
    }
    Ok(SyncRow {
        id: sync.id,
        name: sync.name.clone(),
        mode: page.t(mode_key(sync.mode)),
        transport: page.t(transport_key(sync.transport.kind())),
        connected: view.connected,
        reason: view.reason.unwrap_or_default(),
        notice: view.notice.clone().unwrap_or_default(),
        weak_password: view.weak_password,
        last_run: view
            .state
            .last_run_ms
            .map(format_ms)
            .unwrap_or_else(|| page.t("never")),
        pending_out: view.pending_out,
        pending_in: view.state.pending_in,
        clock_warning: view.clock_warning.clone().unwrap_or_default(),
        user_match_warning: view.user_match_warning.clone().unwrap_or_default(),
        waiting_links: view.waiting_links,
        held: match (view.held_quarantine + view.held_mass_delete) as i64 {
            0 => String::new(),
            n => page.lang.n("held-count", "count", n),
        },
    })
}

pub(super) async fn list(State(app): State<App>, signed: Signed) -> WebResult<Response> {
    let page = signed.page.in_section("syncs");
    let page2 = page.clone();
    let syncs = work(page.lang, move || {
        app.core
            .syncs()?
            .iter()
            .map(|s| row(&page2, &app, s))
            .collect()
    })
    .await?;
    Ok(render(&SyncsPage { page, syncs }))
}
