//! Deploy jobs: a deploy started through the HTTP API runs in the background; its state
//! (status, phase, progress, the final report) is saved as it goes, in the same store as
//! purge jobs, and read by `GET /v1/deploys/{id}`.

use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use super::DeployProgress;
use crate::jobs::{Job, JobKind, new_id, unix_now};

/// Where a deploy job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeployStatus {
    /// Accepted, waiting to start.
    Queued,
    /// Deploying.
    Running,
    /// Finished; every object is in place.
    Done,
    /// Finished, but some objects failed (listed in the report).
    Partial,
    /// Stopped by an error.
    Failed,
}

/// A deploy job's state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DeployJob {
    /// The job id (`d…`).
    pub id: String,
    /// The site.
    pub site: String,
    /// Its status.
    pub status: DeployStatus,
    /// Plan only.
    pub dry_run: bool,
    /// Stale files are deleted.
    pub delete: bool,
    /// Files in the upload.
    pub files: u64,
    /// Bytes of the upload, extracted.
    pub bytes: u64,
    /// The current phase (`assets`, `html`, `delete`…).
    pub phase: Option<String>,
    /// Objects done in the current phase.
    pub objects_done: u64,
    /// Objects in the current phase.
    pub objects_total: u64,
    /// Unix seconds when accepted.
    pub created_at: u64,
    /// Unix seconds of the last change.
    pub updated_at: u64,
    /// The deploy report, when finished.
    #[schema(value_type = Option<Object>)]
    pub report: Option<serde_json::Value>,
    /// Why it failed.
    pub error: Option<String>,
}

impl DeployJob {
    /// A queued job for `site`.
    pub fn new(site: &str, dry_run: bool, delete: bool, files: u64, bytes: u64) -> Self {
        let now = unix_now();
        Self {
            id: new_id(JobKind::Deploy),
            site: site.to_string(),
            status: DeployStatus::Queued,
            dry_run,
            delete,
            files,
            bytes,
            phase: None,
            objects_done: 0,
            objects_total: 0,
            created_at: now,
            updated_at: now,
            report: None,
            error: None,
        }
    }
}

impl DeployJob {
    /// Whether the job will not change any more.
    pub fn is_finished(&self) -> bool {
        matches!(
            self.status,
            DeployStatus::Done | DeployStatus::Partial | DeployStatus::Failed
        )
    }
}

impl Job for DeployJob {
    const KIND: JobKind = JobKind::Deploy;

    fn id(&self) -> &str {
        &self.id
    }

    fn is_new(&self) -> bool {
        self.status == DeployStatus::Queued
    }

    fn updated_at(&self) -> u64 {
        self.updated_at
    }

    fn is_finished(&self) -> bool {
        Self::is_finished(self)
    }
}

/// Progress that updates a shared job state (saved by whoever owns the job).
#[derive(Debug, Clone)]
pub struct JobProgress(pub Arc<Mutex<DeployJob>>);

impl JobProgress {
    fn update(&self, change: impl FnOnce(&mut DeployJob)) {
        let mut job = self.0.lock().unwrap_or_else(|p| p.into_inner());
        change(&mut job);
        job.updated_at = unix_now();
    }

    /// A copy of the current state.
    pub fn snapshot(&self) -> DeployJob {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl DeployProgress for JobProgress {
    fn phase(&self, name: &str, objects: u64, _bytes: u64) {
        self.update(|job| {
            job.phase = Some(name.to_string());
            job.objects_total = objects;
            job.objects_done = 0;
        });
    }

    fn object_done(&self, _bytes: u64) {
        self.update(|job| job.objects_done += 1);
    }
}
