//! Initial sync from the web UI, with a live progress bar.

use super::*;

pub(super) async fn start(
    app: App,
    signed: Signed,
    sync_id: i64,
    entry: Option<i64>,
    form: Vec<(String, String)>,
) -> WebResult<Response> {
    check_csrf(&signed.page, &Submitted(form))?;
    let job = crate::sync::actions::start_initial(&app, sync_id, entry)
        .await
        .map_err(|e| WebError::domain(signed.page.lang, e))?;
    Ok(Redirect::to(&format!("/syncs/{sync_id}?job={}", job.id)).into_response())
}

pub(super) async fn initial(
    State(app): State<App>,
    Admin(signed): Admin,
    Path(sync_id): Path<i64>,
    Form(form): Form<Vec<(String, String)>>,
) -> WebResult<Response> {
    start(app, signed, sync_id, None, form).await
}

pub(super) async fn initial_field(
    State(app): State<App>,
    Admin(signed): Admin,
    Path((sync_id, entry)): Path<(i64, i64)>,
    Form(form): Form<Vec<(String, String)>>,
) -> WebResult<Response> {
    start(app, signed, sync_id, Some(entry), form).await
}

#[derive(Template)]
#[template(path = "progress.html")]
pub(super) struct ProgressPart {
    job: u64,
    state: &'static str,
    percent: i64,
    text: String,
}

/// The progress bar of a job, polled by htmx until the job ends.
pub(super) async fn progress(
    State(app): State<App>,
    signed: Signed,
    Path(job): Path<u64>,
) -> WebResult<Response> {
    let lang = signed.page.lang;
    let status = app.jobs.get(job).ok_or_else(|| {
        WebError::new(
            lang,
            StatusCode::NOT_FOUND,
            format!("there is no job {job}"),
        )
    })?;
    let (done, total) = (status.done.to_string(), status.total.to_string());
    let text = match status.state {
        "failed" => lang.with(
            "job-failed",
            &[("error", status.error.as_deref().unwrap_or_default())],
        ),
        "done" => lang.with("job-done", &[("done", &done), ("total", &total)]),
        _ => {
            let running = lang.with("job-running", &[("done", &done), ("total", &total)]);
            // What it waits for: the other side to apply the rest, or why it cannot.
            match &status.waiting {
                Some(waiting) => format!("{running} · {waiting}"),
                None => running,
            }
        }
    };
    let percent = if status.total > 0 {
        (status.done * 100 / status.total).clamp(0, 100)
    } else if status.state == "done" {
        100
    } else {
        0
    };
    Ok(render(&ProgressPart {
        job,
        state: status.state,
        percent,
        text,
    }))
}
