//! Users. Passwords are write-only.

use super::{ApiError, ApiJson, ApiPath, blocking};
use crate::app::App;
use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use crmsync_domain::instance::UserPatch;
use crmsync_domain::{Actor, Role, User};
use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    login: String,
    full_name: String,
    #[serde(default = "default_role")]
    role: Role,
    password: String,
}

fn default_role() -> Role {
    Role::User
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserChange {
    full_name: Option<String>,
    role: Option<Role>,
    password: Option<String>,
}

pub async fn list(State(app): State<App>) -> Result<Json<Value>, ApiError> {
    let users = blocking(move || app.core.users()).await?;
    Ok(Json(json!({ "users": users })))
}

pub async fn me(Extension(actor): Extension<Actor>) -> Json<User> {
    Json(actor.user)
}

pub async fn create(
    State(app): State<App>,
    Extension(actor): Extension<Actor>,
    ApiJson(body): ApiJson<NewUser>,
) -> Result<(StatusCode, Json<User>), ApiError> {
    let user = blocking(move || {
        app.core.create_user(
            &actor,
            &body.login,
            &body.full_name,
            body.role,
            &body.password,
        )
    })
    .await?;
    Ok((StatusCode::CREATED, Json(user)))
}

pub async fn get(
    State(app): State<App>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<User>, ApiError> {
    Ok(Json(blocking(move || app.core.user(id)).await?))
}

pub async fn update(
    State(app): State<App>,
    Extension(actor): Extension<Actor>,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<UserChange>,
) -> Result<Json<User>, ApiError> {
    let patch = UserPatch {
        full_name: body.full_name,
        role: body.role,
        password: body.password,
    };
    Ok(Json(
        blocking(move || app.core.update_user(&actor, id, patch)).await?,
    ))
}

pub async fn delete(
    State(app): State<App>,
    Extension(actor): Extension<Actor>,
    ApiPath(id): ApiPath<i64>,
) -> Result<StatusCode, ApiError> {
    blocking(move || app.core.delete_user(&actor, id)).await?;
    Ok(StatusCode::NO_CONTENT)
}
