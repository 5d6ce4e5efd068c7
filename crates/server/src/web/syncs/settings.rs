//! Adding a sync, editing and deleting it: the settings form with the transport's own
//! fields.

use super::*;

/// The add-sync form, with what was typed when it comes back with an error.
#[derive(Template)]
#[template(path = "sync_new.html")]
pub(super) struct NewSyncPage {
    page: Page,
    form: Submitted,
    error: Option<String>,
    /// The sync being edited; none when adding one.
    editing: Option<i64>,
}

pub(super) async fn new(Admin(signed): Admin) -> Response {
    render(&NewSyncPage {
        page: signed.page.in_section("syncs"),
        form: Submitted(vec![
            ("mode".into(), "active".into()),
            ("transport".into(), "http".into()),
            ("log".into(), "on".into()),
            ("period_seconds".into(), "5".into()),
            ("mass_delete_percent".into(), "20".into()),
            ("conflict_policy".into(), "newer".into()),
            ("ftp_port".into(), "21".into()),
        ]),
        error: None,
        editing: None,
    })
}

/// A sync's settings as the form shows them; passwords are never shown.
pub(super) fn form_of(sync: &SyncConfig) -> Submitted {
    let mut fields: Vec<(String, String)> = vec![
        ("name".into(), sync.name.clone()),
        (
            "mode".into(),
            match sync.mode {
                Mode::Active => "active",
                Mode::Passive => "passive",
            }
            .into(),
        ),
        (
            "transport".into(),
            match sync.transport.kind() {
                Transport::Http => "http",
                Transport::Local => "local",
                Transport::Ftp => "ftp",
            }
            .into(),
        ),
        (
            "remote_url".into(),
            sync.remote_url.clone().unwrap_or_default(),
        ),
        ("period_seconds".into(), sync.period_seconds.to_string()),
        (
            "mass_delete_percent".into(),
            sync.mass_delete_percent.to_string(),
        ),
        (
            "conflict_policy".into(),
            sync.conflict_policy.as_str().into(),
        ),
        (
            "user_match".into(),
            match sync.user_match {
                UserMatch::Login => "login",
                UserMatch::FullName => "full_name",
                UserMatch::Id => "id",
            }
            .into(),
        ),
        ("ftp_port".into(), "21".into()),
    ];
    if sync.remote_access {
        fields.push(("remote_access".into(), "on".into()));
    }
    if sync.log {
        fields.push(("log".into(), "on".into()));
    }
    if let Some(local) = sync.transport.local() {
        fields.push(("local_upload_dir".into(), local.upload_dir.clone()));
        fields.push(("local_download_dir".into(), local.download_dir.clone()));
    }
    if let Some(ftp) = sync.transport.ftp() {
        fields.retain(|(k, _)| k != "ftp_port");
        fields.extend([
            ("ftp_host".into(), ftp.host.clone()),
            ("ftp_port".into(), ftp.port.to_string()),
            ("ftp_login".into(), ftp.login.clone()),
            ("ftp_upload_dir".into(), ftp.upload_dir.clone()),
            ("ftp_download_dir".into(), ftp.download_dir.clone()),
        ]);
        if ftp.tls {
            fields.push(("ftp_tls".into(), "on".into()));
        }
    }
    Submitted(fields)
}

pub(super) async fn edit_form(
    State(app): State<App>,
    Admin(signed): Admin,
    Path(sync_id): Path<i64>,
) -> WebResult<Response> {
    let page = signed.page.in_section("syncs");
    let sync = work(page.lang, move || app.core.sync(sync_id)).await?;
    Ok(render(&NewSyncPage {
        page,
        form: form_of(&sync),
        error: None,
        editing: Some(sync_id),
    }))
}

/// Saves edited settings; a password left empty stays as it was.
pub(super) async fn save(
    State(app): State<App>,
    Admin(signed): Admin,
    Path(sync_id): Path<i64>,
    Form(form): Form<Vec<(String, String)>>,
) -> WebResult<Response> {
    let form = Submitted(form);
    let page = signed.page.in_section("syncs");
    check_csrf(&page, &form)?;
    let actor = signed.actor;
    let app2 = app.clone();
    let outcome = tokio::task::spawn_blocking(move || {
        let saved = app2.core.sync(sync_id).and_then(|old| {
            let mut input = input_of(&form)?;
            if form.text("password").is_empty() {
                input.password = None;
            }
            if let (Some(ftp), Some(old_ftp)) = (input.ftp.as_mut(), old.transport.ftp())
                && ftp.password.0.is_empty()
            {
                ftp.password = old_ftp.password.clone();
            }
            app2.core.update_sync(&actor, sync_id, input)
        });
        (saved, form)
    })
    .await
    .map_err(|e| WebError::new(page.lang, StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    match outcome {
        (Ok(_), _) => {
            app.syncs.changed();
            Ok(Redirect::to(&format!("/syncs/{sync_id}")).into_response())
        }
        (Err(e @ (DomainError::Invalid { .. } | DomainError::Conflict(_))), mut form) => {
            form.0
                .retain(|(k, _)| k != "password" && k != "ftp_password");
            Ok((
                StatusCode::UNPROCESSABLE_ENTITY,
                render(&NewSyncPage {
                    page,
                    form,
                    error: Some(e.to_string()),
                    editing: Some(sync_id),
                }),
            )
                .into_response())
        }
        (Err(e), _) => Err(WebError::domain(page.lang, e)),
    }
}

pub(super) fn input_of(form: &Submitted) -> Result<SyncInput, DomainError> {
    let mode = match form.text("mode").as_str() {
        "passive" => Mode::Passive,
        _ => Mode::Active,
    };
    let transport = match form.text("transport").as_str() {
        "local" => Transport::Local,
        "ftp" => Transport::Ftp,
        _ => Transport::Http,
    };
    let user_match = match form.text("user_match").as_str() {
        "full_name" => UserMatch::FullName,
        "id" => UserMatch::Id,
        _ => UserMatch::Login,
    };
    let period = form.text("period_seconds");
    let period_seconds = period.parse().map_err(|_| {
        DomainError::invalid(format!("period: \"{period}\" is not a number of seconds"))
    })?;
    let remote_url = form.text("remote_url");
    let share = form.text("mass_delete_percent");
    let mass_delete_percent =
        if share.is_empty() {
            None
        } else {
            Some(share.parse().map_err(|_| {
                DomainError::invalid(format!("\"{share}\" is not a share in percent"))
            })?)
        };
    let conflict_policy = match form.text("conflict_policy").as_str() {
        "this_side" => ConflictPolicy::ThisSide,
        "other_side" => ConflictPolicy::OtherSide,
        _ => ConflictPolicy::Newer,
    };
    Ok(SyncInput {
        mass_delete_percent,
        conflict_policy: Some(conflict_policy),
        name: Some(form.text("name")),
        mode: Some(mode),
        transport: Some(transport),
        remote_access: Some(form.checked("remote_access")),
        remote_url: (!remote_url.is_empty()).then_some(remote_url),
        password: Some(Secret(form.get("password").unwrap_or_default().to_string())),
        log: Some(form.checked("log")),
        period_seconds: Some(period_seconds),
        user_match: Some(user_match),
        local: (transport == Transport::Local).then(|| LocalSettings {
            upload_dir: form.text("local_upload_dir"),
            download_dir: form.text("local_download_dir"),
        }),
        ftp: (transport == Transport::Ftp)
            .then(|| {
                let port = form.text("ftp_port");
                let port = if port.is_empty() {
                    Ok(21)
                } else {
                    port.parse()
                };
                port.map(|port| FtpSettings {
                    host: form.text("ftp_host"),
                    port,
                    login: form.text("ftp_login"),
                    password: Secret(form.get("ftp_password").unwrap_or_default().to_string()),
                    upload_dir: form.text("ftp_upload_dir"),
                    download_dir: form.text("ftp_download_dir"),
                    tls: form.checked("ftp_tls"),
                })
            })
            .transpose()
            .map_err(|_| DomainError::invalid("ftp.port: a port is a number from 1 to 65535"))?,
    })
}

pub(super) async fn create(
    State(app): State<App>,
    Admin(signed): Admin,
    Form(form): Form<Vec<(String, String)>>,
) -> WebResult<Response> {
    let form = Submitted(form);
    let page = signed.page.in_section("syncs");
    check_csrf(&page, &form)?;
    let actor = signed.actor;
    let app2 = app.clone();
    let outcome = tokio::task::spawn_blocking(move || {
        let created = input_of(&form).and_then(|input| app2.core.create_sync(&actor, input));
        (created, form)
    })
    .await
    .map_err(|e| WebError::new(page.lang, StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    match outcome {
        (Ok(sync), _) => {
            app.syncs.changed();
            Ok(Redirect::to(&format!("/syncs/{}", sync.id)).into_response())
        }
        (Err(e @ (DomainError::Invalid { .. } | DomainError::Conflict(_))), mut form) => {
            // Passwords are not sent back into the page.
            form.0
                .retain(|(k, _)| k != "password" && k != "ftp_password");
            Ok((
                StatusCode::UNPROCESSABLE_ENTITY,
                render(&NewSyncPage {
                    page,
                    form,
                    error: Some(e.to_string()),
                    editing: None,
                }),
            )
                .into_response())
        }
        (Err(e), _) => Err(WebError::domain(page.lang, e)),
    }
}

pub(super) async fn delete(
    State(app): State<App>,
    Admin(signed): Admin,
    Path(sync_id): Path<i64>,
    Form(form): Form<Vec<(String, String)>>,
) -> WebResult<Response> {
    check_csrf(&signed.page, &Submitted(form))?;
    let (core, actor) = (app.core.clone(), signed.actor);
    work(signed.page.lang, move || core.delete_sync(&actor, sync_id)).await?;
    app.syncs.changed();
    Ok(Redirect::to("/syncs").into_response())
}
