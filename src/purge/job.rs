//! Purge jobs: every purge (from the CLI, a deploy or the API) is a job with an id, a
//! status and per-batch results, kept where `edgeship purge status <id>` and the API can
//! read it: the cache layer when Redis is configured (so jobs survive restarts and are
//! shared between machines), files under the data directory otherwise.
//!
//! Running a job sends its batches in order, each with the caller reference
//! `<job id>-<batch number>`, so a retried call does not start a second purge. When a
//! batch would exceed the provider's in-flight limits (CloudFront: 3,000 paths and 15
//! wildcards in progress), it waits for earlier purges to finish instead of failing.

use std::time::{Duration, Instant};

use edgeship_providers::{Capabilities, ProviderError, PurgeRequest, PurgeStatus, SharedProvider};
use serde::{Deserialize, Serialize};

use super::plan::PurgePlan;
use crate::jobs::{Job, JobKind, JobStore, new_id, unix_now};

/// Where a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    /// Created, nothing sent yet.
    Pending,
    /// Batches sent, some still in progress (or queued).
    Running,
    /// Every batch is done.
    Done,
    /// Some batches failed, others went through.
    Partial,
    /// Every batch failed.
    Failed,
}

/// Where one batch is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BatchStatus {
    /// Not sent yet.
    Pending,
    /// Accepted by the provider, in progress.
    InProgress,
    /// Done.
    Done,
    /// Refused or failed; see its error.
    Failed,
}

/// One provider request of a job and what became of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Batch {
    /// The request, with its caller reference.
    #[schema(value_type = Object)]
    pub request: PurgeRequest,
    /// Its status.
    pub status: BatchStatus,
    /// The provider's id for it, once accepted.
    #[serde(default)]
    pub provider_id: Option<String>,
    /// Why it failed.
    #[serde(default)]
    pub error: Option<String>,
    /// The class of that error (`auth`, `permission`, `misconfigured`, `retryable`, …):
    /// the first three mean the settings or credentials must change before a retry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class: Option<String>,
}

/// A purge job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PurgeJob {
    /// The job id (lowercase letters, digits and `-`).
    pub id: String,
    /// The site purged.
    pub site: String,
    /// The provider, as named in logs.
    pub provider: String,
    /// Who started it: `cli`, `deploy` or `api`.
    pub source: String,
    /// Its status.
    pub status: JobStatus,
    /// Unix seconds when created.
    pub created_at: u64,
    /// Unix seconds of the last change.
    pub updated_at: u64,
    /// What it purges.
    pub plan: PurgePlan,
    /// One entry per request of the plan.
    pub batches: Vec<Batch>,
}

impl Job for PurgeJob {
    const KIND: JobKind = JobKind::Purge;

    fn id(&self) -> &str {
        &self.id
    }

    fn is_new(&self) -> bool {
        self.status == JobStatus::Pending
    }

    fn updated_at(&self) -> u64 {
        self.updated_at
    }

    fn is_finished(&self) -> bool {
        Self::is_finished(self)
    }
}

impl PurgeJob {
    /// A pending job running `plan` on `site`.
    pub fn new(site: &str, provider: &str, source: &str, plan: PurgePlan) -> Self {
        let id = new_id(JobKind::Purge);
        let batches = plan
            .requests
            .iter()
            .enumerate()
            .map(|(n, request)| Batch {
                request: PurgeRequest {
                    reference: Some(format!("{id}-{}", n + 1)),
                    ..request.clone()
                },
                status: BatchStatus::Pending,
                provider_id: None,
                error: None,
                class: None,
            })
            .collect();
        let now = unix_now();
        Self {
            id,
            site: site.to_string(),
            provider: provider.to_string(),
            source: source.to_string(),
            status: JobStatus::Pending,
            created_at: now,
            updated_at: now,
            plan,
            batches,
        }
    }

    /// Recomputes the job status from its batches.
    fn settle(&mut self) {
        let count = |status| self.batches.iter().filter(|b| b.status == status).count();
        let (failed, done) = (count(BatchStatus::Failed), count(BatchStatus::Done));
        let total = self.batches.len();
        self.status = if failed == total && total > 0 {
            JobStatus::Failed
        } else if done == total {
            JobStatus::Done
        } else if failed > 0 && failed + done == total {
            JobStatus::Partial
        } else if done + failed + count(BatchStatus::InProgress) == 0 {
            JobStatus::Pending
        } else {
            JobStatus::Running
        };
        self.updated_at = unix_now();
    }

    /// Whether the job will not change any more.
    pub fn is_finished(&self) -> bool {
        matches!(
            self.status,
            JobStatus::Done | JobStatus::Partial | JobStatus::Failed
        )
    }

    /// Ends a job that cannot be continued: every batch not finished is `failed` with
    /// `reason` (a batch in progress may still complete at the provider).
    pub fn abandon(&mut self, reason: &str) {
        for batch in &mut self.batches {
            if matches!(batch.status, BatchStatus::Pending | BatchStatus::InProgress) {
                batch.status = BatchStatus::Failed;
                batch.error = Some(reason.to_string());
                batch.class = Some("misconfigured".to_string());
            }
        }
        self.settle();
    }
}

/// How a job is run.
#[derive(Debug, Clone, Copy)]
pub struct RunOptions {
    /// Wait until the provider reports every batch done.
    pub wait: bool,
    /// How often in-progress purges are polled.
    pub poll_interval: Duration,
    /// The longest wait (for in-flight room, or with `wait`, for completion).
    pub timeout: Duration,
}

impl RunOptions {
    /// The configured polling and timeout, waiting for completion or not.
    pub fn from_config(config: &crate::config::PurgeConfig, wait: bool) -> Self {
        Self {
            wait,
            poll_interval: Duration::from_millis(config.poll_interval_ms.max(10)),
            timeout: Duration::from_secs(config.wait_timeout_secs),
        }
    }
}

/// Runs a job's pending batches and saves its progress after each. Returns when every
/// batch was sent (and, with `wait`, finished) or the timeout passed; the job's status
/// says which. Store errors are logged, not fatal: the purge itself matters more.
pub async fn run(
    provider: &SharedProvider,
    store: &JobStore,
    job: &mut PurgeJob,
    options: &RunOptions,
) {
    let caps = provider.capabilities();
    let started = Instant::now();
    if job.status == JobStatus::Pending {
        // Counted once per job, not again when a queued job is continued.
        use crate::metric_names::purge as names;
        metrics::counter!(names::JOBS, "site" => job.site.clone(), "source" => job.source.clone())
            .increment(1);
        metrics::counter!(names::ITEMS, "site" => job.site.clone())
            .increment(job.plan.reduction.items() as u64);
    }
    job.status = JobStatus::Running;
    save_logged(store, job).await;
    for n in 0..job.batches.len() {
        if job.batches[n].status != BatchStatus::Pending {
            continue;
        }
        // Queue behind in-progress purges when this batch would exceed the limits.
        while exceeds_in_flight(&caps, job, n) {
            if started.elapsed() >= options.timeout {
                tracing::warn!(job = %job.id, "purge queued: the provider's in-progress limits are still reached; `edgeship purge status {}` continues it", job.id);
                job.settle();
                save_logged(store, job).await;
                return;
            }
            tokio::time::sleep(options.poll_interval).await;
            refresh(provider, job).await;
        }
        let request = job.batches[n].request.clone();
        match provider.purge(&request).await {
            Ok(receipt) => {
                let batch = &mut job.batches[n];
                batch.provider_id = Some(receipt.id);
                batch.status = match receipt.status {
                    PurgeStatus::Done => BatchStatus::Done,
                    PurgeStatus::InProgress => BatchStatus::InProgress,
                };
                if caps.free_purge_paths_per_month.is_some() {
                    count_billed(store, &job.provider, billed_items(&request)).await;
                }
            }
            Err(err) => {
                let fatal = err.is_fatal_for_provider();
                fail(&mut job.batches[n], &err);
                if fatal {
                    for batch in &mut job.batches[n + 1..] {
                        batch.status = BatchStatus::Failed;
                        batch.error = Some(format!("not sent: {err}"));
                        batch.class = Some(err.class().to_string());
                    }
                }
            }
        }
        job.settle();
        save_logged(store, job).await;
    }
    // With nothing left to send (a continued job), the status follows the batches.
    job.settle();
    while options.wait && job.status == JobStatus::Running && started.elapsed() < options.timeout {
        tokio::time::sleep(options.poll_interval).await;
        refresh(provider, job).await;
        save_logged(store, job).await;
    }
}

/// Asks the provider about every in-progress batch and updates the job.
pub async fn refresh(provider: &SharedProvider, job: &mut PurgeJob) {
    for batch in &mut job.batches {
        if batch.status != BatchStatus::InProgress {
            continue;
        }
        let Some(id) = batch.provider_id.clone() else {
            continue;
        };
        match provider.purge_status(&id).await {
            Ok(PurgeStatus::Done) => batch.status = BatchStatus::Done,
            Ok(PurgeStatus::InProgress) => {}
            // The provider ran the purge and it failed: asking again will not change that.
            Err(err @ ProviderError::OperationFailed { .. }) => fail(batch, &err),
            Err(err) => {
                tracing::warn!(job = %job.id, purge = %id, error = %err, "cannot read purge status")
            }
        }
    }
    job.settle();
}

fn fail(batch: &mut Batch, err: &ProviderError) {
    batch.status = BatchStatus::Failed;
    batch.error = Some(err.to_string());
    batch.class = Some(err.class().to_string());
}

/// Whether sending batch `n` now would exceed the provider's in-flight limits.
fn exceeds_in_flight(caps: &Capabilities, job: &PurgeJob, n: usize) -> bool {
    let split = |r: &PurgeRequest| {
        let wildcards = r
            .paths
            .iter()
            .filter(|p| Capabilities::is_wildcard(p))
            .count();
        (r.paths.len() - wildcards, wildcards)
    };
    let (mut paths, mut wildcards) = split(&job.batches[n].request);
    let in_flight: Vec<_> = job
        .batches
        .iter()
        .filter(|b| b.status == BatchStatus::InProgress)
        .collect();
    if in_flight.is_empty() {
        return false;
    }
    for batch in in_flight {
        let (p, w) = split(&batch.request);
        paths += p;
        wildcards += w;
    }
    caps.max_purge_paths_in_flight
        .is_some_and(|max| paths > max)
        || caps
            .max_purge_wildcards_in_flight
            .is_some_and(|max| wildcards > max)
}

fn billed_items(request: &PurgeRequest) -> u64 {
    if request.everything {
        1
    } else {
        (request.paths.len() + request.tags.len() + request.prefixes.len()) as u64
    }
}

async fn save_logged(store: &JobStore, job: &PurgeJob) {
    if let Err(err) = store.save(job).await {
        tracing::warn!(job = %job.id, error = %err, "cannot save the purge job's progress");
    }
}

/// The month `unix_secs` falls in, as `YYYY-MM` (UTC).
pub fn month_of(unix_secs: u64) -> String {
    // Civil-from-days (Howard Hinnant's algorithm).
    let days = (unix_secs / 86_400) as i64 + 719_468;
    let era = days.div_euclid(146_097);
    let doe = days.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}")
}

fn usage_key(provider: &str) -> String {
    format!("purge-billed:{provider}:{}", month_of(unix_now()))
}

/// Adds billed purge paths to this month's count for `provider`.
async fn count_billed(store: &JobStore, provider: &str, items: u64) {
    let Some(cache) = store.cache() else {
        return;
    };
    let key = cache.keys().global().key(&usage_key(provider));
    let ttl = Some(Duration::from_secs(40 * 24 * 3600));
    if let Err(err) = cache.incr_by(&key, items as i64, ttl).await {
        tracing::warn!(error = %err, "cannot count billed purge paths");
    }
}

/// Billed purge paths edgeship sent this month for `provider`, when the store keeps
/// count (the cache layer does; job files do not).
pub async fn billed_this_month(store: &JobStore, provider: &str) -> Option<u64> {
    let cache = store.cache()?;
    let key = cache.keys().global().key(&usage_key(provider));
    cache
        .incr_by(&key, 0, None)
        .await
        .ok()
        .map(|n| n.max(0) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_are_civil_utc() {
        assert_eq!(month_of(0), "1970-01");
        assert_eq!(month_of(951_782_400), "2000-02", "a leap day");
        assert_eq!(month_of(1_798_675_200), "2026-12");
        assert_eq!(month_of(1_798_761_599), "2026-12");
        assert_eq!(month_of(1_798_761_600), "2027-01");
    }
}
