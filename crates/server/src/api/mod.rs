//! The REST API under `/api/v1` (the public contract in DESIGN.md).

pub mod auth;
mod error;
pub mod files;
pub mod records;
pub mod syncs;
mod tables;
mod throttle;
mod transfer;
mod users;

pub use error::ApiError;
pub use throttle::LoginThrottle;
/// How many passwords are hashed at once.
pub const CONCURRENT_HASHES: usize = 2;

use crate::app::App;
use axum::extract::{DefaultBodyLimit, FromRequest, FromRequestParts, State};
use axum::routing::{get, post, put};
use axum::{Json, Router, middleware};
use crmsync_domain::DomainError;
use serde_json::{Value as Json_, json};

/// The API's version; changes only with an incompatible change of the contract.
pub const API_VERSION: u32 = 1;
/// The largest JSON request body; files and CSV are streamed without this limit.
pub const MAX_JSON_BODY: usize = 4 << 20;

/// A JSON body whose rejection is an `ApiError`.
#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct ApiJson<T>(pub T);

#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct ApiQuery<T>(pub T);

#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct ApiPath<T>(pub T);

/// Runs blocking domain work (SQLite, argon2) off the async workers.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, DomainError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal("blocking task", e))?
        .map_err(ApiError::from)
}

pub fn router(app: App) -> Router {
    let authed = Router::new()
        .route("/tables", get(tables::list).post(tables::create))
        .route(
            "/tables/{table_id}",
            get(tables::get)
                .patch(tables::rename)
                .delete(tables::delete),
        )
        .route(
            "/tables/{table_id}/fields",
            get(tables::list_fields).post(tables::create_field),
        )
        .route(
            "/fields/{field_no}",
            get(tables::get_field)
                .patch(tables::update_field)
                .delete(tables::delete_field),
        )
        .route(
            "/tables/{table_id}/records",
            get(records::list).post(records::create),
        )
        .route(
            "/tables/{table_id}/records/{id}",
            get(records::get)
                .patch(records::update)
                .delete(records::delete),
        )
        .route(
            "/tables/{table_id}/records/{id}/restore",
            post(records::restore),
        )
        .route(
            "/tables/{table_id}/records/uid/{uid}",
            get(records::get_by_uid),
        )
        .route(
            "/tables/{table_id}/records/{id}/history",
            get(records::history),
        )
        .route(
            "/tables/{table_id}/records/{id}/files/{field_no}",
            put(files::upload)
                .get(files::download)
                .layer(DefaultBodyLimit::disable()),
        )
        .route(
            "/tables/{table_id}/import",
            post(transfer::import).layer(DefaultBodyLimit::disable()),
        )
        .route("/tables/{table_id}/export", get(transfer::export))
        .route("/syncs", get(syncs::list).post(syncs::create))
        .route(
            "/syncs/{sync_id}",
            get(syncs::get).patch(syncs::update).delete(syncs::delete),
        )
        .route("/syncs/{sync_id}/status", get(syncs::status))
        .route(
            "/syncs/{sync_id}/writer-keys",
            get(syncs::writer_keys).post(syncs::issue_writer_key),
        )
        .route(
            "/syncs/{sync_id}/writer-keys/{key_id}",
            axum::routing::delete(syncs::revoke_writer_key),
        )
        .route("/syncs/{sync_id}/catalog", get(syncs::catalog))
        .route("/syncs/{sync_id}/initial", post(syncs::initial))
        .route("/syncs/{sync_id}/match", post(syncs::match_by_key))
        .route(
            "/syncs/{sync_id}/fields/{field_id}/initial",
            post(syncs::initial_field),
        )
        .route("/jobs/{job_id}", get(syncs::job))
        .route(
            "/tables/{table_id}/records/{id}/sync",
            post(syncs::sync_record),
        )
        .route("/syncs/{sync_id}/log", get(syncs::log))
        .route("/syncs/{sync_id}/held", get(syncs::held))
        .route("/syncs/{sync_id}/drift", get(syncs::drift))
        .route("/syncs/{sync_id}/drift/repair", post(syncs::repair_drift))
        .route(
            "/syncs/{sync_id}/held/{held_id}",
            post(syncs::approve_held).delete(syncs::discard_held),
        )
        .route(
            "/syncs/{sync_id}/tables",
            get(syncs::list_tables).post(syncs::add_table),
        )
        .route(
            "/syncs/{sync_id}/tables/{entry_id}",
            axum::routing::delete(syncs::delete_table),
        )
        .route(
            "/syncs/{sync_id}/fields",
            get(syncs::list_fields).post(syncs::add_field),
        )
        .route(
            "/syncs/{sync_id}/fields/{field_id}",
            axum::routing::patch(syncs::update_field).delete(syncs::delete_field),
        )
        .route("/users", get(users::list).post(users::create))
        .route("/me", get(users::me))
        .route(
            "/users/{id}",
            get(users::get).patch(users::update).delete(users::delete),
        )
        .route_layer(middleware::from_fn_with_state(
            app.clone(),
            auth::require_user,
        ));
    let api = Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .merge(authed)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed);
    let people = Router::new()
        .nest("/api/v1", api)
        .merge(crate::web::router());
    Router::new()
        .merge(crate::access_log::with_access_log(people))
        .merge(crate::sync::passive::router(&app))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(MAX_JSON_BODY))
        .layer(middleware::map_response(security_headers))
        .with_state(app)
}

/// On every answer: no framing (clickjacking), no content sniffing, no referrer sent
/// elsewhere, and a content policy that lets pages load only from this site.
async fn security_headers(mut response: axum::response::Response) -> axum::response::Response {
    use axum::http::{HeaderValue, header};
    let headers = response.headers_mut();
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    // Inline scripts and styles are the templates' own; nothing else is loaded.
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; \
             img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
        ),
    );
    response
}

async fn health(State(app): State<App>) -> Result<Json<Json_>, ApiError> {
    let core = app.core.clone();
    let id = blocking(move || core.instance_id()).await?;
    Ok(Json(json!({
        "ok": true,
        "instance_id": id.to_string(),
        "version": env!("CARGO_PKG_VERSION"),
        "api_version": API_VERSION,
    })))
}

/// Readiness for a load balancer or a monitor: 503 while a sync that worked before has been
/// red longer than `--ready-red-after-seconds`. Unauthenticated, so it says how many, not
/// which or why (the status API and page say that to a signed-in user).
async fn ready(State(app): State<App>) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse;
    let threshold = app.ready_red_after;
    let core = app.core.clone();
    let red = blocking(move || {
        let now = core.now_ms();
        let mut red = 0;
        for sync in core.syncs()? {
            let state = core.sync_state(sync.id)?;
            let (connected, _) = state.as_seen(&sync, now);
            let red_for = state.last_success_ms.map(|t| now - t);
            if !connected && red_for.is_some_and(|ms| ms > threshold.as_millis() as i64) {
                red += 1;
            }
        }
        Ok(red)
    })
    .await?;
    let status = match red {
        0 => axum::http::StatusCode::OK,
        _ => axum::http::StatusCode::SERVICE_UNAVAILABLE,
    };
    let body = json!({
        "ready": red == 0,
        "syncs_red": red,
        "red_after_seconds": threshold.as_secs(),
    });
    Ok((status, Json(body)).into_response())
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such API route; see the README for the list of routes")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this route does not take that method",
    )
}
