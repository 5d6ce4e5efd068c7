//! One line in the server log per API or web request answered: method, path (never the
//! query, which may hold a search), the client's address, status and time taken. Its
//! target is `crmsync::access` (`RUST_LOG=info,crmsync::access=off` silences it). Sync
//! endpoints, polled every second, are not in it: their state changes are logged instead.

use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::{Request, Response};
use std::net::SocketAddr;
use std::time::Duration;
use tower_http::trace::TraceLayer;
use tracing::Span;

pub fn with_access_log<S: Clone + Send + Sync + 'static>(router: Router<S>) -> Router<S> {
    router.layer(
        TraceLayer::new_for_http()
            .make_span_with(|request: &Request<axum::body::Body>| {
                let peer = request
                    .extensions()
                    .get::<ConnectInfo<SocketAddr>>()
                    .map(|c| c.0.ip());
                tracing::info_span!(
                    target: "crmsync::access",
                    "request",
                    method = %request.method(),
                    path = %request.uri().path(),
                    peer = peer.map(tracing::field::display)
                )
            })
            .on_request(())
            .on_response(
                |response: &Response<axum::body::Body>, latency: Duration, _: &Span| {
                    tracing::info!(
                        target: "crmsync::access",
                        status = response.status().as_u16(),
                        ms = latency.as_millis() as u64,
                        "answered"
                    );
                },
            )
            .on_failure(()),
    )
}
