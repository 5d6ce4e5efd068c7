//! Settings → Sync (S-12..S-15, S-17, S-22, S-31): the list of syncs with a green check
//! or a red mark and its reason, adding a sync with the fields the help page lists (the
//! transport's own appearing for that type), a sync's fields with direction icons,
//! numbers and the passive side's mapping, initial sync with a live progress bar, and the
//! log with filters.
//!
//! One file per page or action group; the helpers they share are here.

mod detail;
mod drift;
mod fields;
mod initial;
mod list;
mod log;
mod matching;
mod settings;

use super::{Admin, Lang, Page, Signed, Submitted, WebError, WebResult, check_csrf, render, work};
use crate::app::App;
use askama::Template;
use axum::Form;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use crmsync_domain::sync::{
    ConflictPolicy, Direction, FtpSettings, LocalSettings, Mode, Secret, SyncConfig, SyncLogEntry,
    Transport, UserMatch,
};
use crmsync_domain::syncs::{SyncFieldPatch, SyncInput};
use crmsync_domain::value::format_ms;
use crmsync_domain::{DomainError, Table};
use crmsync_sync::Catalog;
use detail::detail;
use drift::{drift, repair_drift};
use fields::{
    add_field, add_table, delete_field, delete_table, set_field_conflict_policy, turn_direction,
};
use initial::{initial, initial_field, progress};
use list::list;
use log::{approve_held, discard_held, log};
use matching::{match_preview, match_run};
use settings::{create, delete, edit_form, new, save};

pub fn router() -> Router<App> {
    Router::new()
        .route("/syncs", get(list).post(create))
        .route("/syncs/new", get(new))
        .route("/syncs/{sync}", get(detail))
        .route("/syncs/{sync}/edit", get(edit_form).post(save))
        .route("/syncs/{sync}/delete", post(delete))
        .route("/syncs/{sync}/fields", post(add_field))
        .route(
            "/syncs/{sync}/fields/{entry}/direction",
            post(turn_direction),
        )
        .route(
            "/syncs/{sync}/fields/{entry}/conflict",
            post(set_field_conflict_policy),
        )
        .route("/syncs/{sync}/fields/{entry}/delete", post(delete_field))
        .route("/syncs/{sync}/tables", post(add_table))
        .route("/syncs/{sync}/tables/{entry}/delete", post(delete_table))
        .route("/syncs/{sync}/initial", post(initial))
        .route("/syncs/{sync}/fields/{entry}/initial", post(initial_field))
        .route("/syncs/{sync}/log", get(log))
        .route("/syncs/{sync}/match", get(match_preview).post(match_run))
        .route("/syncs/{sync}/drift", get(drift))
        .route("/syncs/{sync}/drift/repair", post(repair_drift))
        .route("/syncs/{sync}/held/{held}/approve", post(approve_held))
        .route("/syncs/{sync}/held/{held}/discard", post(discard_held))
        .route("/jobs/{job}/progress", get(progress))
}

fn mode_key(mode: Mode) -> &'static str {
    match mode {
        Mode::Active => "mode-active",
        Mode::Passive => "mode-passive",
    }
}

fn transport_key(transport: Transport) -> &'static str {
    match transport {
        Transport::Http => "transport-http",
        Transport::Local => "transport-local",
        Transport::Ftp => "transport-ftp",
    }
}

fn arrow(direction: Direction) -> &'static str {
    match direction {
        Direction::Both => "⇄",
        Direction::Upload => "→",
        Direction::Download => "←",
        Direction::Off => "⏸",
    }
}

/// A number typed or picked in a form ("" → none).
fn optional_number(lang: Lang, text: &str, what: &str) -> Result<Option<i64>, WebError> {
    if text.is_empty() {
        return Ok(None);
    }
    text.parse().map(Some).map_err(|_| {
        WebError::new(
            lang,
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("\"{text}\" is not a {what} number"),
        )
    })
}

fn parse_direction(text: &str) -> Direction {
    match text {
        "upload" => Direction::Upload,
        "download" => Direction::Download,
        "off" => Direction::Off,
        _ => Direction::Both,
    }
}
