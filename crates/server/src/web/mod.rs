//! The web UI (B-12), served at `/` by the same process: server-rendered HTML (askama
//! templates in `templates/`), a vendored htmx for the few live parts (progress bars,
//! direction icons), Russian and English. Every change goes through the same domain
//! calls as the REST API, recorded with origin `web`.

mod i18n;
mod pages;
mod records;
pub mod session;
mod syncs;

pub use i18n::Lang;

use crate::api::blocking;
use crate::app::App;
use askama::Template;
use axum::Router;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use crmsync_domain::{Actor, DomainError, Origin, Role, User};

/// What every page knows: who is signed in, in which language, and the form token.
#[derive(Clone)]
pub struct Page {
    pub lang: Lang,
    pub user: User,
    pub csrf: String,
    /// Which part of the navigation is current.
    pub section: &'static str,
}

impl Page {
    pub fn t(&self, key: &str) -> String {
        self.lang.t(key)
    }

    pub fn n(&self, key: &str, count: &i64) -> String {
        self.lang.n(key, "count", *count)
    }

    pub fn is_admin(&self) -> bool {
        self.user.role == Role::Admin
    }

    fn in_section(mut self, section: &'static str) -> Page {
        self.section = section;
        self
    }
}

/// A signed-in request: the user as an actor (origin `web`) and the page context.
pub struct Signed {
    pub actor: Actor,
    pub page: Page,
}

impl FromRequestParts<App> for Signed {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, Self::Rejection> {
        let to_login = || {
            let next = parts
                .uri
                .path_and_query()
                .map(|p| p.as_str().to_string())
                .unwrap_or_default();
            Redirect::to(&format!("/login?next={}", percent(&next))).into_response()
        };
        let Some(token) = session::cookie(&parts.headers, session::SESSION_COOKIE) else {
            return Err(to_login());
        };
        let core = app.core.clone();
        // Ended (idle, signed out), or its user removed, given another password or role.
        let Ok(Some((session, user))) = blocking(move || core.web_session(&token)).await else {
            return Err(to_login());
        };
        Ok(Signed {
            actor: Actor {
                user: user.clone(),
                origin: Origin::Web,
            },
            page: Page {
                lang: Lang::of_request(&parts.headers),
                user,
                csrf: session.csrf,
                section: "",
            },
        })
    }
}

/// A signed-in administrator: sync settings, initial syncs, drift repairs, matches and held
/// changes are theirs; anyone else is shown a refusal.
pub struct Admin(pub Signed);

impl FromRequestParts<App> for Admin {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, Self::Rejection> {
        let signed = Signed::from_request_parts(parts, app).await?;
        if !signed.page.is_admin() {
            let lang = signed.page.lang;
            return Err(
                WebError::new(lang, StatusCode::FORBIDDEN, lang.t("admin-only")).into_response(),
            );
        }
        Ok(Admin(signed))
    }
}

/// A failure shown as a page: what went wrong, in words, with the right status.
pub struct WebError {
    status: StatusCode,
    message: String,
    lang: Lang,
}

impl WebError {
    pub fn new(lang: Lang, status: StatusCode, message: impl Into<String>) -> WebError {
        WebError {
            status,
            message: message.into(),
            lang,
        }
    }

    pub fn domain(lang: Lang, e: DomainError) -> WebError {
        let message = e.to_string();
        WebError::new(lang, crate::api::ApiError::from(e).status, message)
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    lang: Lang,
    title: String,
    message: &'a str,
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        let page = ErrorPage {
            lang: self.lang,
            title: self.lang.t(if self.status == StatusCode::NOT_FOUND {
                "not-found"
            } else {
                "error"
            }),
            message: &self.message,
        };
        (self.status, render(&page)).into_response()
    }
}

pub type WebResult<T> = Result<T, WebError>;

/// Runs blocking domain work; a failure becomes an error page.
pub async fn work<T: Send + 'static>(
    lang: Lang,
    f: impl FnOnce() -> Result<T, DomainError> + Send + 'static,
) -> WebResult<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| WebError::new(lang, StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
        .map_err(|e| WebError::domain(lang, e))
}

pub fn render(template: &impl Template) -> Response {
    match template.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => {
            tracing::error!("rendering a page failed: {e}");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the page could not be rendered",
            )
                .into_response()
        }
    }
}

/// Submitted form fields, in order; every form carries `_csrf`.
#[derive(Clone)]
pub struct Submitted(pub Vec<(String, String)>);

impl Submitted {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self, name: &str) -> String {
        self.get(name).unwrap_or_default().trim().to_string()
    }

    pub fn checked(&self, name: &str) -> bool {
        self.get(name).is_some()
    }
}

/// Refuses a form whose token is not this session's (cross-site request forgery).
pub fn check_csrf(page: &Page, form: &Submitted) -> WebResult<()> {
    match form.get("_csrf") {
        Some(token) if session::same_token(token, &page.csrf) => Ok(()),
        _ => Err(WebError::new(
            page.lang,
            StatusCode::FORBIDDEN,
            "this form has expired or did not come from this site; reload the page and try again",
        )),
    }
}

/// Percent-encodes a query value.
pub fn percent(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The largest sign-in form taken.
pub const MAX_SIGN_IN_BYTES: usize = 16 << 10;

pub fn router() -> Router<App> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/tables") }))
        // A sign-in is read before anyone is known: a form of a login and a password.
        .route(
            "/login",
            get(pages::login_form)
                .post(pages::login)
                .layer(axum::extract::DefaultBodyLimit::max(MAX_SIGN_IN_BYTES)),
        )
        .route("/logout", post(pages::logout))
        .route("/lang/{code}", get(pages::switch_language))
        .route("/static/{file}", get(static_file))
        .route("/users", get(pages::users).post(pages::create_user))
        .route("/users/{id}/delete", post(pages::delete_user))
        .merge(records::router())
        .merge(syncs::router())
}

async fn static_file(
    State(_): State<App>,
    axum::extract::Path(file): axum::extract::Path<String>,
) -> Response {
    let (body, kind): (&'static [u8], &str) = match file.as_str() {
        "htmx.min.js" => (
            include_bytes!("../../static/htmx.min.js"),
            "text/javascript",
        ),
        "app.css" => (include_bytes!("../../static/app.css"), "text/css"),
        "app.js" => (include_bytes!("../../static/app.js"), "text/javascript"),
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    let mut headers = HeaderMap::new();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_str(kind).unwrap());
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    (headers, body).into_response()
}
