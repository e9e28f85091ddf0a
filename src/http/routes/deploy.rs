//! `POST /v1/sites/{site}/deploys` (a tar, tar.gz or tar.zst body) and
//! `GET /v1/deploys/{id}`.
//!
//! The body is streamed to a file under `<data_dir>/uploads` (never held in memory) and
//! capped at `server.max_upload_bytes`; the archive is extracted safely (see
//! [`crate::archive`]) before the answer, so a bad archive is a 400 and changes nothing;
//! then the deploy engine runs in the background and the answer is 202 with the job.
//!
//! With Redis configured, the deploy is queued for any replica instead (see
//! [`crate::jobs::queue`]): the archive as received is staged in the site's own storage
//! at [`staging_key`] (under `.edgeship/`, which deploys never list, delete or serve), and
//! the replica that runs the job reads it from there, extracts it again and removes it
//! when the job ends. A replica that cannot stage or queue runs the deploy itself.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use super::ApiError;
use crate::api_keys::Scope;
use crate::archive::{self, Limits};
use crate::deploy::job::{DeployJob, DeployStatus, JobProgress};
use crate::deploy::{DeployOptions, Deployer};
use crate::http::AppState;
use crate::http::worker::Outcome;
use crate::jobs::queue::Delivery;
use edgeship_providers::{Body, Provider, ProviderExt, PutRequest};

/// Query options of a deploy upload.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeployQuery {
    /// Plan only: the report says what would be uploaded.
    #[serde(default)]
    pub dry_run: bool,
    /// Delete files the site has that the upload does not (refused above `deploy.max_deletes`).
    #[serde(default)]
    pub delete: bool,
}

/// The upload body: the raw bytes of a tar archive (plain, gzip or zstd), not JSON.
pub struct ArchiveBody(pub Vec<u8>);

impl utoipa::PartialSchema for ArchiveBody {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Binary)))
            .min_length(Some(1))
            .into()
    }
}

impl utoipa::ToSchema for ArchiveBody {}

/// Where uploads of deploys received by this process are kept while their job runs: one
/// directory per job, named by its id.
pub fn uploads_dir(data_dir: &std::path::Path) -> std::path::PathBuf {
    data_dir.join("uploads")
}

/// Where this replica extracts the queued deploys it runs: one directory per job (not
/// [`uploads_dir`], which the receiving replica, maybe this one, clears on its own).
pub fn runs_dir(data_dir: &std::path::Path) -> std::path::PathBuf {
    data_dir.join("queued-runs")
}

/// Where a queued deploy's archive waits in the site's storage until a replica runs it.
pub fn staging_key(id: &str) -> String {
    format!(".edgeship/staging/{id}.tar")
}

/// Settles the deploys a killed `serve` left behind on this machine: each upload
/// directory still present belongs to a job that never finished (a finished job removes
/// its own). Such a job is marked `failed` with the reason — deploying again resumes,
/// since the deploy engine finds the interrupted deploy's marker — and its upload is
/// removed. Returns how many were settled.
///
/// A deploy this replica queued (its note is in [`crate::jobs::queue::marks_dir`]) is not
/// marked: its entry is still in the queue and a replica runs it from its staged archive;
/// only the local directory is removed.
pub async fn settle_interrupted(state: &AppState) -> usize {
    // Queued deploys this replica was running are claimed again from the queue.
    let runs = runs_dir(&state.config().data_dir);
    if tokio::fs::metadata(&runs).await.is_ok()
        && let Err(err) = tokio::task::spawn_blocking(move || std::fs::remove_dir_all(runs))
            .await
            .map_err(std::io::Error::other)
            .and_then(|removed| removed)
    {
        tracing::warn!(error = %err, "cannot remove the queued deploys a stop interrupted");
    }
    let dir = uploads_dir(&state.config().data_dir);
    let Ok(mut entries) = tokio::fs::read_dir(&dir).await else {
        return 0;
    };
    let marks = crate::jobs::queue::marks_dir(&state.config().data_dir);
    let mut settled = 0;
    while let Ok(Some(entry)) = entries.next_entry().await {
        let id = entry.file_name().to_string_lossy().into_owned();
        let queued = || marks.join(&id).exists();
        if crate::jobs::JobKind::Deploy.owns(&id) && !queued() {
            match state.job_store().load::<DeployJob>(&id).await {
                Ok(Some(mut job)) if !job.is_finished() => {
                    let reason = "the service stopped while this deploy ran; upload the site again: the next deploy checks what is stored and uploads only the rest";
                    if fail(state.job_store(), &mut job, reason).await {
                        settled += 1;
                    }
                }
                Ok(_) => {}
                Err(err) => {
                    tracing::warn!(job = %id, error = %err, "cannot read an interrupted deploy")
                }
            }
        }
        let path = entry.path();
        let removed = tokio::task::spawn_blocking(move || std::fs::remove_dir_all(path))
            .await
            .map_err(std::io::Error::other)
            .and_then(|removed| removed);
        if let Err(err) = removed {
            tracing::warn!(job = %id, error = %err, "cannot remove an interrupted upload");
        }
    }
    if settled > 0 {
        tracing::warn!(
            jobs = settled,
            "deploys interrupted by a stop were marked failed"
        );
    }
    settled
}

/// Removes a directory tree when dropped (uploads and extractions are temporary).
struct TempTree(std::path::PathBuf);

impl Drop for TempTree {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Accepts an upload and starts its deploy.
#[utoipa::path(
    post,
    path = "/v1/sites/{site}/deploys",
    operation_id = "create_deploy",
    tag = "deploy",
    params(("site" = String, Path, description = "The site"), DeployQuery),
    request_body(
        description = "The site's files as a tar archive, plain, gzip- or zstd-compressed",
        content(
            (ArchiveBody = "application/x-tar"),
            (ArchiveBody = "application/gzip"),
            (ArchiveBody = "application/zstd"),
        )
    ),
    responses(
        (status = 202, description = "Extracted and started; poll `Location`", body = crate::deploy::job::DeployJob),
        (status = 400, description = "Not an archive, or an unsafe one (absolute paths, `..`, links leaving the root, devices, too many files, extreme expansion), an empty body or a bad query; nothing was written", body = super::ErrorBody),
        (status = 404, description = "Unknown site", body = super::ErrorBody),
        (status = 408, description = "The body stalled for `server.upload_idle_timeout_secs` or took longer than `server.upload_timeout_secs`; nothing was deployed", body = super::ErrorBody),
        (status = 413, description = "Over `server.max_upload_bytes`", body = super::ErrorBody),
        super::AuthErrors,
    ),
    security(("api_key" = []))
)]
pub async fn create(
    req: HttpRequest,
    site: web::Path<String>,
    mut payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let key = state.guard().check(&req, &[Scope::Deploy]).await?;
    let query: DeployQuery = super::query(&req)?;
    let config = state.config();
    state.sites().get(&site)?;
    // Held while the body is received and extracted.
    let _slot = super::upload::slot(&state, &key)?;
    let mut job = DeployJob::new(&site, query.dry_run, query.delete, 0, 0);
    let work = TempTree(uploads_dir(&config.data_dir).join(&job.id));
    let upload = work.0.join("upload");
    let target = work.0.join("site");
    tokio::fs::create_dir_all(&target)
        .await
        .map_err(|err| ApiError::internal("cannot store the upload", &err))?;
    let received = super::upload::receive(&req, &mut payload, &upload, &config.server).await?;
    metrics::counter!(crate::metric_names::http::UPLOAD_BYTES, "site" => site.to_string())
        .increment(received);
    if received == 0 {
        return Err(ApiError::bad_request(
            "empty_body",
            "send the site as a tar, tar.gz or tar.zst body",
        ));
    }
    let extracted = extract(config, &upload, &target)
        .await
        .map_err(|err| ApiError::internal("extraction failed", &err))?
        .map_err(|err| ApiError::bad_request("bad_archive", err.to_string()))?;
    job.files = extracted.files;
    job.bytes = extracted.bytes;
    let store = state.job_store().clone();
    if let Err(err) = store.save(&job).await {
        tracing::error!(error = %err, "cannot record the deploy job");
        return Err(ApiError::unavailable(
            "jobs_unavailable",
            "the deploy job cannot be recorded right now; nothing was deployed",
        ));
    }
    state.guard().audit(
        &req,
        &key,
        "deploy.start",
        Some(&site),
        json!({ "job": job.id, "files": job.files, "bytes": job.bytes, "dry_run": job.dry_run, "delete": job.delete }),
    );
    let accepted = HttpResponse::Accepted()
        .insert_header(("Location", format!("/v1/deploys/{}", job.id)))
        .json(&job);
    if let Some(queue) = state.queue() {
        match stage_and_queue(&state, queue, &job, &upload).await {
            Ok(()) => {
                // The replica that runs it extracts the staged archive again.
                let _ = tokio::task::spawn_blocking(move || drop(work)).await;
                return Ok(accepted);
            }
            Err(err) => {
                tracing::warn!(job = %job.id, error = %err, "cannot queue the deploy; running it on this replica");
            }
        }
    }
    let _ = tokio::fs::remove_file(&upload).await;
    let options = deploy_options(config, target, &job);
    let progress = JobProgress(Arc::new(Mutex::new(job)));
    let runner = state.get_ref().clone();
    state.spawn_job(async move {
        run(runner, options, progress, work, false).await;
    });
    Ok(accepted)
}

fn deploy_options(
    config: &crate::config::Config,
    input: std::path::PathBuf,
    job: &DeployJob,
) -> DeployOptions {
    DeployOptions {
        input,
        dry_run: job.dry_run,
        delete: job.delete,
        max_deletes: config.deploy.max_deletes,
        concurrency: config.deploy.concurrency.max(1),
    }
}

/// Stages the archive in the site's storage and queues the job; on a queue failure the
/// staged archive is removed again.
async fn stage_and_queue(
    state: &AppState,
    queue: &crate::jobs::queue::JobQueue,
    job: &DeployJob,
    upload: &std::path::Path,
) -> Result<(), String> {
    let site = state.sites().get(&job.site).map_err(|e| e.to_string())?;
    let size = tokio::fs::metadata(upload)
        .await
        .map_err(|e| format!("the upload: {e}"))?
        .len();
    let mut put = PutRequest::bytes(staging_key(&job.id), bytes::Bytes::new());
    put.body = Body::File {
        path: upload.to_path_buf(),
        size,
    };
    put.content_type = Some("application/x-tar".into());
    put.cache_control = Some("private, no-store".into());
    site.provider()
        .put(put)
        .await
        .map_err(|e| format!("staging the upload: {e}"))?;
    match queue.enqueue(&job.id).await {
        Ok(entry) => {
            crate::jobs::queue::mark(&state.config().data_dir, &job.id, &entry);
            Ok(())
        }
        Err(err) => {
            let _ = site.provider().delete_many(&[staging_key(&job.id)]).await;
            Err(format!("queueing: {err}"))
        }
    }
}

/// Whether deploy `id`'s archive is still staged in its site's storage (it is removed
/// when the job ends). Unknown (the storage does not answer) counts as staged.
pub(crate) async fn still_staged(state: &AppState, id: &str) -> bool {
    let Ok(Some(job)) = state.job_store().load::<DeployJob>(id).await else {
        return false;
    };
    let Ok(site) = state.sites().get(&job.site) else {
        return false;
    };
    !matches!(
        site.provider().head(&staging_key(id)).await,
        Err(edgeship_providers::ProviderError::NotFound { .. })
    )
}

/// Runs a queued deploy on this replica: reads its staged archive, extracts it and
/// deploys; waits while another deploy holds the site's lock. The staged archive is
/// removed once the job has ended.
pub(crate) async fn run_queued(state: &AppState, delivery: &Delivery) -> Outcome {
    let store = state.job_store();
    let config = state.config();
    let mut job = match store.load::<DeployJob>(&delivery.job).await {
        Ok(Some(job)) => job,
        Ok(None) => {
            tracing::warn!(job = %delivery.job, "a queued deploy whose record has expired; dropped");
            return Outcome::Ended;
        }
        Err(err) => {
            tracing::warn!(job = %delivery.job, error = %err, "cannot read a queued deploy; leaving it queued");
            return Outcome::Retry;
        }
    };
    let site = match state.sites().get(&job.site) {
        Ok(site) => site,
        Err(err) => {
            fail(store, &mut job, &format!("not run: {err}")).await;
            return Outcome::Ended;
        }
    };
    let key = staging_key(&job.id);
    if job.is_finished() {
        let _ = site.provider().delete_many(&[key]).await;
        return Outcome::Ended;
    }
    let mut work = TempTree(runs_dir(&config.data_dir).join(&job.id));
    let (upload, target) = (work.0.join("upload"), work.0.join("site"));
    let _ = tokio::fs::remove_dir_all(&work.0).await;
    if let Err(err) = tokio::fs::create_dir_all(&target).await {
        tracing::warn!(job = %job.id, error = %err, "cannot make the deploy's work directory; leaving it queued");
        return Outcome::Retry;
    }
    let staged = match site.provider().get_opt(&key).await {
        Ok(Some((_, bytes))) => bytes,
        Ok(None) => {
            let message =
                "the staged upload is gone from the site's storage; upload the site again";
            fail(store, &mut job, message).await;
            return Outcome::Ended;
        }
        Err(err) => {
            let message = format!("the staged upload cannot be read: {err}; upload the site again");
            fail(store, &mut job, &message).await;
            return Outcome::Ended;
        }
    };
    if let Err(err) = tokio::fs::write(&upload, &staged).await {
        tracing::warn!(job = %job.id, error = %err, "cannot write the staged upload; leaving it queued");
        return Outcome::Retry;
    }
    drop(staged);
    match extract(config, &upload, &target).await {
        Ok(Ok(_)) => {}
        Ok(Err(err)) => {
            let message = format!("the staged upload is not a usable archive: {err}");
            fail(store, &mut job, &message).await;
            let _ = site.provider().delete_many(&[key]).await;
            return Outcome::Ended;
        }
        Err(err) => {
            tracing::warn!(job = %job.id, error = %err, "extraction failed; leaving it queued");
            return Outcome::Retry;
        }
    }
    let _ = tokio::fs::remove_file(&upload).await;
    let options = deploy_options(config, target, &job);
    let mut progress = JobProgress(Arc::new(Mutex::new(job)));
    // The extracted site is kept while the site's lock is busy: only the deploy is retried.
    loop {
        match run(state.clone(), options.clone(), progress, work, true).await {
            RunEnd::Finished => {
                if let Err(err) = site.provider().delete_many(&[key]).await {
                    tracing::warn!(job = %delivery.job, error = %err, "cannot remove the staged upload");
                }
                return Outcome::Ended;
            }
            RunEnd::SiteBusy(kept, waiting) => {
                tracing::info!(job = %delivery.job, "another deploy of the site is running; waiting for it");
                tokio::time::sleep(SITE_BUSY_RETRY).await;
                (work, progress) = (kept, waiting);
            }
        }
    }
}

/// Extracts the archive at `upload` into `target` within the server's upload limits, on
/// the blocking pool (an error of the outer result: the extraction task failed).
async fn extract(
    config: &crate::config::Config,
    upload: &std::path::Path,
    target: &std::path::Path,
) -> Result<Result<archive::Extracted, archive::ArchiveError>, tokio::task::JoinError> {
    let limits = Limits {
        max_files: config.server.max_upload_files,
        max_bytes: config
            .server
            .max_upload_bytes
            .saturating_mul(config.server.max_expansion_ratio.max(1)),
        max_ratio: config.server.max_expansion_ratio,
    };
    let (from, into) = (upload.to_path_buf(), target.to_path_buf());
    tokio::task::spawn_blocking(move || archive::extract(&from, &into, &limits)).await
}

/// How long a queued deploy waits before trying a busy site's lock again.
const SITE_BUSY_RETRY: Duration = Duration::from_secs(2);

/// Marks a job failed with `message` and saves it; `false` when it could not be saved.
async fn fail(store: &crate::jobs::JobStore, job: &mut DeployJob, message: &str) -> bool {
    tracing::warn!(job = %job.id, reason = message, "deploy failed");
    job.status = DeployStatus::Failed;
    job.error = Some(message.to_owned());
    job.updated_at = crate::jobs::unix_now();
    match store.save(job).await {
        Ok(()) => true,
        Err(err) => {
            tracing::error!(error = %err, job = %job.id, "cannot save the deploy result");
            false
        }
    }
}

/// How a deploy run ended.
enum RunEnd {
    /// The job ended (done, partial or failed) and its state is saved.
    Finished,
    /// Another deploy holds the site's lock; the job is queued again, unchanged, and its
    /// extracted site and progress are handed back for the next try.
    SiteBusy(TempTree, JobProgress),
}

/// Runs the deploy, saving the job's progress every second; removes the upload's
/// directory, then saves the end state (so a finished job has left nothing behind).
/// With `wait_for_site`, a site whose lock another deploy holds leaves the job queued
/// ([`RunEnd::SiteBusy`]) instead of failing it.
async fn run(
    state: AppState,
    options: DeployOptions,
    progress: JobProgress,
    work: TempTree,
    wait_for_site: bool,
) -> RunEnd {
    let store = state.job_store();
    let site = progress.snapshot().site;
    progress.0.lock().unwrap_or_else(|p| p.into_inner()).status = DeployStatus::Running;
    let saver = {
        let (progress, store) = (progress.clone(), store.clone());
        tokio::spawn(async move {
            loop {
                let job = progress.snapshot();
                if let Err(err) = store.save(&job).await {
                    tracing::warn!(error = %err, "cannot save deploy progress");
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        })
    };
    let id = progress.snapshot().id;
    let result = match Deployer::new(state.sites(), &site) {
        Ok(deployer) => {
            deployer
                .with_id(&id)
                .run(&options, Arc::new(progress.clone()))
                .await
        }
        Err(err) => Err(err),
    };
    saver.abort();
    if wait_for_site && matches!(&result, Err(err) if err.is_site_busy()) {
        let mut job = progress.snapshot();
        job.status = DeployStatus::Queued;
        job.updated_at = crate::jobs::unix_now();
        if let Err(err) = store.save(&job).await {
            tracing::warn!(error = %err, job = %job.id, "cannot save the deploy's state");
        }
        return RunEnd::SiteBusy(work, progress);
    }
    if let Err(err) = tokio::task::spawn_blocking(move || drop(work)).await {
        tracing::warn!(error = %err, "cannot remove the upload directory");
    }
    let mut job = progress.snapshot();
    match result {
        Ok(report) => {
            let failed = !report.failures.is_empty() || !report.build.failures.is_empty();
            job.status = if failed {
                DeployStatus::Partial
            } else {
                DeployStatus::Done
            };
            job.report = serde_json::to_value(&report).ok();
        }
        Err(err) => {
            tracing::warn!(job = %job.id, error = %err, "deploy failed");
            job.status = DeployStatus::Failed;
            // Paths inside the upload directory are told relative to the site's root.
            let root = format!("{}/", options.input.display());
            job.error = Some(err.public_message().replace(&root, ""));
        }
    }
    job.updated_at = crate::jobs::unix_now();
    let status = match job.status {
        DeployStatus::Done => "done",
        DeployStatus::Partial => "partial",
        _ => "failed",
    };
    metrics::counter!(crate::metric_names::deploy::JOBS, "site" => job.site.clone(), "status" => status)
        .increment(1);
    if let Err(err) = store.save(&job).await {
        tracing::error!(error = %err, job = %job.id, "cannot save the deploy result");
    }
    RunEnd::Finished
}

/// A deploy job by id.
#[utoipa::path(
    get,
    path = "/v1/deploys/{id}",
    operation_id = "deploy_status",
    tag = "deploy",
    params(("id" = String, Path, description = "The job id (`d…`)", pattern = r"^d[a-z0-9-]{0,63}$")),
    responses(
        (status = 200, description = "The job: status, phase, progress, and the report once finished", body = crate::deploy::job::DeployJob),
        (status = 400, description = "Not a deploy job id", body = super::ErrorBody),
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
        .check(&req, &[Scope::Deploy, Scope::Read])
        .await?;
    super::job_response::<DeployJob>(state.job_store(), &id).await
}
