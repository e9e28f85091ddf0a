//! `POST /v1/sites/{site}/purges` and `GET /v1/purges/{id}`: the purge engine over HTTP,
//! the same plan, jobs and limits as `edgeship purge`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use super::ApiError;
use crate::api_keys::Scope;
use crate::http::AppState;
use crate::http::worker::Outcome;
use crate::jobs::JobKind;
use crate::jobs::queue::Delivery;
use crate::purge::job::{self, PurgeJob, RunOptions};
use crate::purge::prepare;

/// The body of a purge request.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PurgeBody {
    /// Patterns, as on the command line (`/index.html`, `/blog/`, `/a/**/*.css`, `tag:x`, `/*`):
    /// 1 to 1,000.
    #[schema(min_items = 1, max_items = 1000, value_type = Vec<PatternText>)]
    pub patterns: Vec<String>,
    /// Answer with the plan (matched paths, provider requests, cost); send nothing.
    #[serde(default)]
    pub dry_run: bool,
    /// Allow purging everything or more than `purge.confirm_share` of the site.
    #[serde(default)]
    pub confirm: bool,
    /// Answer when the provider reports the purge done (200), not at once (202).
    #[serde(default)]
    pub wait: bool,
}

/// One purge pattern (for the OpenAPI document): never empty.
#[derive(Debug)]
pub struct PatternText(pub String);

impl utoipa::PartialSchema for PatternText {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        ObjectBuilder::new()
            .schema_type(Type::String)
            .min_length(Some(1))
            .into()
    }
}

impl utoipa::ToSchema for PatternText {}

/// What a purge request is answered with: the job, or with `dry_run` the plan.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum PurgeAnswer {
    /// The job (202, or 200 with `wait`).
    Job(crate::purge::job::PurgeJob),
    /// The plan (200 with `dry_run`).
    Plan(crate::purge::plan::PurgePlan),
}

/// Plans and starts a purge. 202 with the job (it runs in the background), 200 with the
/// finished job when `wait` is set, 200 with the plan for `dry_run`, 409 when the purge
/// needs `confirm`.
#[utoipa::path(
    post,
    path = "/v1/sites/{site}/purges",
    operation_id = "create_purge",
    tag = "purge",
    params(("site" = String, Path, description = "The site")),
    request_body = PurgeBody,
    responses(
        (status = 202, description = "Started; the job runs in the background (`Location` points at it)", body = crate::purge::job::PurgeJob),
        (status = 200, description = "With `wait`: the finished job. With `dry_run`: the plan (a `PurgePlan`), nothing sent", body = PurgeAnswer),
        (status = 400, description = "No, too many or bad patterns (`bad_pattern` gives the `position`), malformed JSON", body = super::ErrorBody),
        (status = 404, description = "Unknown site", body = super::ErrorBody),
        (status = 409, description = "Purges everything or more than `purge.confirm_share` of the site: resend with `confirm`", body = super::ErrorBody),
        (status = 413, description = "Body over `server.max_json_bytes`", body = super::ErrorBody),
        (status = 415, description = "Not `Content-Type: application/json`", body = super::ErrorBody),
        super::AuthErrors,
    ),
    security(("api_key" = []))
)]
pub async fn create(
    req: HttpRequest,
    site: web::Path<String>,
    body: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let key = state.guard().check(&req, &[Scope::Purge]).await?;
    let body: PurgeBody =
        super::json_body(&req, body, state.config().server.max_json_bytes).await?;
    let prepared = prepare(state.sites(), &site, &body.patterns, body.confirm).await?;
    if body.dry_run {
        return Ok(HttpResponse::Ok().json(&prepared.plan));
    }
    if let Some(reason) = &prepared.plan.needs_confirmation {
        return Err(ApiError::Conflict {
            code: "confirmation_required",
            message: format!("this purge needs `\"confirm\": true`: {reason}"),
        });
    }
    let mut job = prepared.job("api");
    state.guard().audit(
        &req,
        &key,
        "purge.start",
        Some(prepared.site.name()),
        json!({ "job": job.id, "patterns": body.patterns, "items": prepared.plan.cost.items }),
    );
    if let Err(err) = prepared.store.save(&job).await {
        tracing::error!(error = %err, "cannot record the purge job");
        return Err(ApiError::unavailable(
            "jobs_unavailable",
            "the purge job cannot be recorded right now; nothing was purged",
        ));
    }
    let options = RunOptions::from_config(&state.config().purge, body.wait);
    if body.wait {
        // The caller waits for this request: it runs here, marked so that a restart of
        // this replica continues it.
        let mark = RunningMark::new(&state.config().data_dir, &job.id);
        job::run(prepared.provider(), &prepared.store, &mut job, &options).await;
        drop(mark);
        return Ok(HttpResponse::Ok().json(&job));
    }
    let accepted = HttpResponse::Accepted()
        .insert_header(("Location", format!("/v1/purges/{}", job.id)))
        .json(&job);
    if let Some(queue) = state.queue() {
        // Any replica runs it; this one only if the queue cannot take it.
        match queue.enqueue(&job.id).await {
            Ok(entry) => {
                crate::jobs::queue::mark(&state.config().data_dir, &job.id, &entry);
                return Ok(accepted);
            }
            Err(err) => {
                tracing::warn!(job = %job.id, error = %err, "cannot queue the purge; running it on this replica");
            }
        }
    }
    let mark = RunningMark::new(&state.config().data_dir, &job.id);
    state.spawn_job(async move {
        job::run(prepared.provider(), &prepared.store, &mut job, &options).await;
        drop(mark);
    });
    Ok(accepted)
}

/// Runs a queued purge on this replica from its saved state: batches already sent are
/// not sent again, and the rest go out with the job's own caller references.
pub(crate) async fn run_queued(state: &AppState, delivery: &Delivery) -> Outcome {
    let store = state.job_store();
    let mut job = match store.load::<PurgeJob>(&delivery.job).await {
        Ok(Some(job)) if job.is_finished() => return Outcome::Ended,
        Ok(Some(job)) => job,
        Ok(None) => {
            tracing::warn!(job = %delivery.job, "a queued purge whose record has expired; dropped");
            return Outcome::Ended;
        }
        Err(err) => {
            tracing::warn!(job = %delivery.job, error = %err, "cannot read a queued purge; leaving it queued");
            return Outcome::Retry;
        }
    };
    match state.sites().get(&job.site) {
        Ok(site) => {
            let options = RunOptions::from_config(&state.config().purge, false);
            job::run(site.provider(), store, &mut job, &options).await;
        }
        Err(err) => {
            job.abandon(&format!("not run: {err}"));
            if let Err(err) = store.save(&job).await {
                tracing::warn!(job = %job.id, error = %err, "cannot save a purge job");
            }
        }
    }
    Outcome::Ended
}

/// Where `serve` marks the purge jobs it is running: one empty file per job, named by
/// its id and removed when the run returns. A file found at startup names a job that a
/// stop (a crash, `kill -9`, a shutdown grace period that ran out) cut off.
pub fn running_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("purges-running")
}

/// Marks a purge job as running in this process until dropped.
#[derive(Debug)]
struct RunningMark(PathBuf);

impl RunningMark {
    fn new(data_dir: &Path, id: &str) -> Self {
        let dir = running_dir(data_dir);
        let path = dir.join(id);
        if let Err(err) = std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&path, b"")) {
            tracing::warn!(job = %id, error = %err, "cannot mark the purge job as running; if the service stops before it ends, it is not continued");
        }
        Self(path)
    }
}

impl Drop for RunningMark {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Continues the purge jobs a stopped `serve` left unfinished on this machine (their
/// marks are still in [`running_dir`]), in the background: batches not sent yet go out
/// with the job's own references, so a provider that already has one (CloudFront's
/// `CallerReference`) does not purge twice, and batches in progress are followed. A job
/// whose site is no longer configured is marked `failed` with the reason. Returns how
/// many jobs were continued.
pub async fn resume_interrupted(state: &AppState) -> usize {
    let Ok(mut entries) = tokio::fs::read_dir(running_dir(&state.config().data_dir)).await else {
        return 0;
    };
    let mut resumed = 0;
    while let Ok(Some(entry)) = entries.next_entry().await {
        let mark = RunningMark(entry.path());
        let id = entry.file_name().to_string_lossy().into_owned();
        if !JobKind::Purge.owns(&id) {
            continue;
        }
        let store = state.job_store().clone();
        let mut job = match store.load::<PurgeJob>(&id).await {
            Ok(Some(job)) if !job.is_finished() => job,
            Ok(_) => continue,
            Err(err) => {
                tracing::warn!(job = %id, error = %err, "cannot read a purge job a stop cut off");
                continue;
            }
        };
        match state.sites().get(&job.site) {
            Ok(site) => {
                tracing::warn!(job = %id, site = %job.site, "continuing a purge job a stop cut off");
                let provider = Arc::clone(site.provider());
                let options = RunOptions::from_config(&state.config().purge, false);
                state.spawn_job(async move {
                    job::run(&provider, &store, &mut job, &options).await;
                    drop(mark);
                });
                resumed += 1;
            }
            Err(err) => {
                job.abandon(&format!("not continued after a restart: {err}"));
                if let Err(err) = store.save(&job).await {
                    tracing::warn!(job = %id, error = %err, "cannot settle a purge job a stop cut off");
                }
            }
        }
    }
    resumed
}

/// A purge job by id.
#[utoipa::path(
    get,
    path = "/v1/purges/{id}",
    operation_id = "purge_status",
    tag = "purge",
    params(("id" = String, Path, description = "The job id (`p…`)", pattern = r"^p[a-z0-9-]{0,63}$")),
    responses(
        (status = 200, description = "The job, with each batch's status", body = crate::purge::job::PurgeJob),
        (status = 400, description = "Not a job id", body = super::ErrorBody),
        (status = 404, description = "No such job (jobs are kept 7 days)", body = super::ErrorBody),
        super::AuthErrors,
    ),
    security(("api_key" = []))
)]
pub async fn status(
    req: HttpRequest,
    id: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    state
        .guard()
        .check(&req, &[Scope::Purge, Scope::Read])
        .await?;
    super::job_response::<crate::purge::job::PurgeJob>(state.job_store(), &id).await
}
