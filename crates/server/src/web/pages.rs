//! Signing in and out, the language switch, and the users page.

use super::{Lang, Page, Signed, Submitted, WebError, WebResult, check_csrf, render, work};
use crate::app::App;
use askama::Template;
use axum::Form;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use crmsync_domain::{DomainError, Role, User};
use serde::Deserialize;
use std::net::SocketAddr;

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    lang: Lang,
    /// This form's token, also in the `SIGN_IN_COOKIE` cookie.
    csrf: String,
    next: String,
    error: Option<String>,
    login: String,
}

#[derive(Deserialize)]
pub struct NextParam {
    next: Option<String>,
}

/// Only a path on this site may follow a sign-in.
/// Where to go after signing in: a path of this site only. Browsers drop tabs and line
/// breaks and read `\\` as `/`, so `/\t/evil.example` would leave the site: anything but a
/// plain `/path` is refused.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && !n
                    .chars()
                    .any(|c| c == '\\' || c.is_control() || c.is_whitespace()) =>
        {
            n.to_string()
        }
        _ => "/tables".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn only_paths_of_this_site_are_followed_after_sign_in() {
        assert_eq!(safe_next(Some("/tables/3")), "/tables/3");
        for evil in [
            "//evil.example",
            "/\t/evil.example",
            "/\\evil.example",
            "/\n/evil.example",
            "https://evil.example",
            "/ /evil.example",
        ] {
            assert_eq!(safe_next(Some(evil)), "/tables", "{evil:?}");
        }
        assert_eq!(safe_next(None), "/tables");
    }
}

/// The sign-in form with a fresh token, set in a cookie too: a sign-in posted from another
/// site cannot read the cookie to copy it into its form.
fn sign_in_page(
    app: &App,
    status: StatusCode,
    lang: Lang,
    next: String,
    error: Option<String>,
    login: String,
) -> Response {
    let Ok(csrf) = crmsync_domain::web_session::random_token() else {
        return WebError::new(
            lang,
            StatusCode::INTERNAL_SERVER_ERROR,
            "the system has no random source",
        )
        .into_response();
    };
    let cookie = super::session::set_cookie(
        super::session::SIGN_IN_COOKIE,
        &csrf,
        app.serves_https,
        None,
    );
    let page = LoginPage {
        lang,
        csrf,
        next,
        error,
        login,
    };
    (status, [(header::SET_COOKIE, cookie)], render(&page)).into_response()
}

pub async fn login_form(
    State(app): State<App>,
    headers: HeaderMap,
    Query(params): Query<NextParam>,
) -> Response {
    let next = safe_next(params.next.as_deref());
    sign_in_page(
        &app,
        StatusCode::OK,
        Lang::of_request(&headers),
        next,
        None,
        String::new(),
    )
}

pub async fn login(
    State(app): State<App>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let lang = Lang::of_request(&headers);
    let form = Submitted(form);
    let (login, password) = (
        form.text("login"),
        form.get("password").unwrap_or_default().to_string(),
    );
    let next = safe_next(form.get("next"));
    let again = |status: StatusCode, error: String| {
        sign_in_page(&app, status, lang, next.clone(), Some(error), login.clone())
    };
    let expected = super::session::cookie(&headers, super::session::SIGN_IN_COOKIE);
    let forged = match (form.get("_csrf"), expected.as_deref()) {
        (Some(sent), Some(expected)) => !super::session::same_token(sent, expected),
        _ => true,
    };
    if forged {
        // Nothing is checked, so a forged form costs no hashing either.
        return again(StatusCode::FORBIDDEN, lang.t("sign-in-expired"));
    }
    let user = match crate::api::auth::check_password(&app, &login, password, peer.ip()).await {
        Ok(user) => user,
        Err(crate::api::auth::PasswordRefusal::Wait(wait)) => {
            let seconds = (wait.as_secs() + 1).to_string();
            return again(
                StatusCode::UNAUTHORIZED,
                lang.with("too-many-attempts", &[("seconds", &seconds)]),
            );
        }
        Err(_) => return again(StatusCode::UNAUTHORIZED, lang.t("wrong-login")),
    };
    let core = app.core.clone();
    let token = match work(lang, move || core.start_web_session(&user)).await {
        Ok((token, _)) => token,
        Err(e) => return e.into_response(),
    };
    let session = super::session::set_cookie(
        super::session::SESSION_COOKIE,
        &token,
        app.serves_https,
        None,
    );
    let spent = super::session::set_cookie(
        super::session::SIGN_IN_COOKIE,
        "",
        app.serves_https,
        Some(0),
    );
    let mut response = Redirect::to(&next).into_response();
    for cookie in [session, spent] {
        if let Ok(value) = axum::http::HeaderValue::from_str(&cookie) {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
    }
    response
}

pub async fn logout(
    State(app): State<App>,
    signed: Signed,
    headers: HeaderMap,
    Form(form): Form<Vec<(String, String)>>,
) -> WebResult<Response> {
    check_csrf(&signed.page, &Submitted(form))?;
    if let Some(token) = super::session::cookie(&headers, super::session::SESSION_COOKIE) {
        let core = app.core.clone();
        work(signed.page.lang, move || core.end_web_session(&token)).await?;
    }
    let cookie = super::session::set_cookie(
        super::session::SESSION_COOKIE,
        "",
        app.serves_https,
        Some(0),
    );
    Ok(([(header::SET_COOKIE, cookie)], Redirect::to("/login")).into_response())
}

/// Remembers the chosen language for a year and goes back where the switch was clicked.
pub async fn switch_language(
    State(app): State<App>,
    headers: HeaderMap,
    Path(code): Path<String>,
) -> WebResult<Response> {
    let lang = Lang::parse(&code).ok_or_else(|| {
        WebError::new(
            Lang::of_request(&headers),
            StatusCode::NOT_FOUND,
            format!("no such language: {code}"),
        )
    })?;
    let back = headers
        .get(header::REFERER)
        .and_then(|r| r.to_str().ok())
        .and_then(|r| r.find("://").map(|i| &r[i + 3..]))
        .and_then(|rest| rest.find('/').map(|i| rest[i..].to_string()))
        .unwrap_or_else(|| "/tables".to_string());
    let cookie = super::session::set_cookie(
        super::i18n::LANG_COOKIE,
        lang.code(),
        app.serves_https,
        Some(365 * 24 * 3600),
    );
    Ok((
        [(header::SET_COOKIE, cookie)],
        Redirect::to(&safe_next(Some(&back))),
    )
        .into_response())
}

pub async fn delete_user(
    State(app): State<App>,
    signed: Signed,
    Path(user_id): Path<i64>,
    Form(form): Form<Vec<(String, String)>>,
) -> WebResult<Response> {
    check_csrf(&signed.page, &Submitted(form))?;
    let actor = signed.actor;
    work(signed.page.lang, move || {
        app.core.delete_user(&actor, user_id)
    })
    .await?;
    Ok(Redirect::to("/users").into_response())
}

#[derive(Template)]
#[template(path = "users.html")]
struct UsersPage {
    page: Page,
    users: Vec<User>,
    error: Option<String>,
}

pub async fn users(State(app): State<App>, signed: Signed) -> WebResult<Response> {
    let page = signed.page.in_section("users");
    let users = work(page.lang, move || app.core.users()).await?;
    Ok(render(&UsersPage {
        page,
        users,
        error: None,
    }))
}

pub async fn create_user(
    State(app): State<App>,
    signed: Signed,
    Form(form): Form<Vec<(String, String)>>,
) -> WebResult<Response> {
    let form = Submitted(form);
    let page = signed.page.in_section("users");
    check_csrf(&page, &form)?;
    let role = if form.text("role") == "admin" {
        Role::Admin
    } else {
        Role::User
    };
    let (login, full_name, password) = (
        form.text("login"),
        form.text("full_name"),
        form.text("password"),
    );
    let actor = signed.actor;
    let core = app.core.clone();
    let created = tokio::task::spawn_blocking(move || {
        core.create_user(&actor, &login, &full_name, role, &password)
    })
    .await
    .map_err(|e| WebError::new(page.lang, StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    match created {
        Ok(_) => Ok(Redirect::to("/users").into_response()),
        Err(e @ (DomainError::Invalid { .. } | DomainError::Conflict(_))) => {
            let users = work(page.lang, move || app.core.users()).await?;
            Ok((
                StatusCode::UNPROCESSABLE_ENTITY,
                render(&UsersPage {
                    page,
                    users,
                    error: Some(e.to_string()),
                }),
            )
                .into_response())
        }
        Err(e) => Err(WebError::domain(page.lang, e)),
    }
}
