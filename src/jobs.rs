//! Background jobs' shared parts: ids, the clock, and the store every job kind (purges,
//! deploys) is saved in.
//!
//! A job is saved after every step, so `GET /v1/{purges,deploys}/{id}` and
//! `edgeship purge status` read where it is, and a job cut off by a restart says where it
//! stopped. The store is the process's [`StateHome`]: the cache layer with Redis (shared
//! and kept [`JOB_TTL`]) and a copy of this machine's jobs under `<data_dir>/jobs`, or
//! those files alone without Redis. The copy keeps a job that ran while Redis was
//! unreachable (the cache layer then holds it in memory, emptied when Redis returns) or
//! that Redis lost (a restart without persistence).

pub mod queue;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::cache::{Cache, CacheError};
use crate::home::StateHome;

/// Seconds since the Unix epoch (0 if the clock is before it).
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// The kinds of job; each id starts with its kind's letter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobKind {
    /// A purge (`p…`).
    Purge,
    /// A deploy (`d…`).
    Deploy,
}

impl JobKind {
    /// The first letter of this kind's ids.
    pub fn letter(self) -> char {
        match self {
            Self::Purge => 'p',
            Self::Deploy => 'd',
        }
    }

    /// The kind's name in messages.
    pub fn name(self) -> &'static str {
        match self {
            Self::Purge => "purge",
            Self::Deploy => "deploy",
        }
    }

    /// Whether `id` is a well-formed id of this kind.
    pub fn owns(self, id: &str) -> bool {
        id.starts_with(self.letter()) && valid_job_id(id)
    }
}

static SEQUENCE: AtomicU64 = AtomicU64::new(0);

/// A new id of `kind`: its letter, then the time in hex seconds and 8 hex digits that
/// make it unique across processes (time-ordered, safe as a file name and a key).
pub fn new_id(kind: JobKind) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let mut hasher = blake3::Hasher::new();
    hasher.update(&nanos.to_le_bytes());
    hasher.update(&std::process::id().to_le_bytes());
    hasher.update(&SEQUENCE.fetch_add(1, Ordering::Relaxed).to_le_bytes());
    let random = hasher.finalize();
    let secs = (nanos / 1_000_000_000) as u64;
    format!("{}{secs:x}{}", kind.letter(), &random.to_hex()[..8])
}

/// Whether `id` looks like a job id (so it is safe as a file name and a key).
pub fn valid_job_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// A job that can be saved in a [`JobStore`].
pub trait Job: Serialize + DeserializeOwned + Send + 'static {
    /// Its kind.
    const KIND: JobKind;
    /// Its id.
    fn id(&self) -> &str;
    /// Whether it was just created (its first save prunes expired job files).
    fn is_new(&self) -> bool;
    /// Unix seconds of its last change.
    fn updated_at(&self) -> u64;
    /// Whether it will not change any more.
    fn is_finished(&self) -> bool;
}

/// Errors of the job store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JobError {
    /// The cache layer failed.
    #[error("jobs: {0}")]
    Cache(#[from] CacheError),
    /// A job file could not be read or written.
    #[error("job file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// A job file does not parse.
    #[error("job file {path} is unreadable: {message}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The id is not a job id of the kind asked for.
    #[error("`{id}` is not a {kind} job id (ids look like `{letter}6745a1b2c3d4e5f6`)", kind = .kind.name(), letter = .kind.letter())]
    BadId {
        /// What was given.
        id: String,
        /// The kind asked for.
        kind: JobKind,
    },
}

/// How long jobs are kept (the cache layer expires them; job files are pruned).
pub const JOB_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// Where jobs are kept.
#[derive(Debug, Clone)]
pub enum JobStore {
    /// The cache layer (Redis): shared by every process and machine.
    Cache(Cache),
    /// JSON files in a directory: for a machine without Redis.
    Dir(PathBuf),
    /// The cache layer, and a copy of this machine's jobs as files in the directory. A
    /// job is read from both and the newer one wins, so none is lost when Redis was
    /// unreachable while it ran or lost its data.
    CacheWithCopy(Cache, PathBuf),
}

impl JobStore {
    /// The store of the process's state home: the cache layer with a copy under
    /// `<data_dir>/jobs`, or those files alone.
    pub fn new(home: &StateHome, data_dir: &Path) -> Self {
        match home {
            StateHome::Cache(cache) => Self::CacheWithCopy(cache.clone(), data_dir.join("jobs")),
            StateHome::Dir(dir) => Self::Dir(dir.join("jobs")),
        }
    }

    /// The cache layer, when jobs are kept there (it also keeps counters beside them).
    pub fn cache(&self) -> Option<&Cache> {
        match self {
            Self::Cache(cache) | Self::CacheWithCopy(cache, _) => Some(cache),
            Self::Dir(_) => None,
        }
    }

    /// Saves a job, replacing its earlier state. With a copy, the job is saved when
    /// either place took it (the other failure is logged).
    pub async fn save<J: Job>(&self, job: &J) -> Result<(), JobError> {
        let id = job.id();
        if !J::KIND.owns(id) {
            return Err(JobError::BadId {
                id: id.to_string(),
                kind: J::KIND,
            });
        }
        match self {
            Self::Cache(cache) => save_cached(cache, job).await,
            Self::Dir(dir) => save_file(dir, job).await,
            Self::CacheWithCopy(cache, dir) => {
                let copied = save_file(dir, job).await;
                match (save_cached(cache, job).await, copied) {
                    (Err(err), Err(_)) => return Err(err),
                    (Err(err), Ok(())) | (Ok(()), Err(err)) => {
                        tracing::warn!(job = %id, error = %err, "job saved in one place only");
                    }
                    (Ok(()), Ok(())) => {}
                }
                Ok(())
            }
        }
    }

    /// Loads a job; `None` when there is no such job (or it expired). An id that is not
    /// of `J`'s kind is [`JobError::BadId`]. With a copy, the newer of the two (by
    /// `updated_at`, a finished one on a tie; the cache layer's when both are the same).
    pub async fn load<J: Job>(&self, id: &str) -> Result<Option<J>, JobError> {
        if !J::KIND.owns(id) {
            return Err(JobError::BadId {
                id: id.to_string(),
                kind: J::KIND,
            });
        }
        match self {
            Self::Cache(cache) => Ok(cache.get(&cache.keys().global().job(id)).await?),
            Self::Dir(dir) => load_file(dir, id).await,
            Self::CacheWithCopy(cache, dir) => {
                let cached: Option<J> = match cache.get(&cache.keys().global().job(id)).await {
                    Ok(job) => job,
                    Err(err) => {
                        tracing::warn!(job = %id, error = %err, "cannot read the job from the cache layer; reading this machine's copy");
                        None
                    }
                };
                let copied: Option<J> = match load_file(dir, id).await {
                    Ok(job) => job,
                    Err(err) => {
                        tracing::warn!(job = %id, error = %err, "cannot read this machine's copy of the job");
                        None
                    }
                };
                Ok(match (cached, copied) {
                    (Some(cached), Some(copied)) => {
                        let age = |job: &J| (job.updated_at(), job.is_finished());
                        Some(if age(&copied) > age(&cached) {
                            copied
                        } else {
                            cached
                        })
                    }
                    (cached, copied) => cached.or(copied),
                })
            }
        }
    }
}

async fn save_cached<J: Job>(cache: &Cache, job: &J) -> Result<(), JobError> {
    let key = cache.keys().global().job(job.id());
    cache.set(&key, job, Some(JOB_TTL)).await?;
    Ok(())
}

async fn save_file<J: Job>(dir: &Path, job: &J) -> Result<(), JobError> {
    let id = job.id();
    let path = dir.join(format!("{id}.json"));
    let io = |source| JobError::Io {
        path: path.clone(),
        source,
    };
    tokio::fs::create_dir_all(dir).await.map_err(io)?;
    if job.is_new() && prune_due() {
        prune_expired(dir).await;
    }
    let json = serde_json::to_vec_pretty(job).map_err(|e| io(e.into()))?;
    let temp = dir.join(format!(".{id}.json.tmp"));
    tokio::fs::write(&temp, json).await.map_err(io)?;
    tokio::fs::rename(&temp, &path).await.map_err(io)?;
    Ok(())
}

async fn load_file<J: Job>(dir: &Path, id: &str) -> Result<Option<J>, JobError> {
    let path = dir.join(format!("{id}.json"));
    match tokio::fs::read(&path).await {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| JobError::Corrupt {
                path,
                message: e.to_string(),
            }),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(JobError::Io { path, source }),
    }
}

/// How often a process prunes expired job files: a prune reads the whole directory, so
/// doing it for every new job made each one slower than the last (a purge API under load
/// fell from 90 to 36 purges a second as job files piled up).
const PRUNE_INTERVAL: Duration = Duration::from_secs(3600);

/// Whether this process has not pruned job files for [`PRUNE_INTERVAL`] (the first new
/// job of a process always prunes).
fn prune_due() -> bool {
    static LAST_PRUNE: AtomicU64 = AtomicU64::new(0);
    let now = unix_now();
    let last = LAST_PRUNE.load(Ordering::Relaxed);
    (last == 0 || now.saturating_sub(last) >= PRUNE_INTERVAL.as_secs())
        && LAST_PRUNE
            .compare_exchange(last, now.max(1), Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
}

/// Removes job files older than [`JOB_TTL`] (the cache layer expires its own).
async fn prune_expired(dir: &std::path::Path) {
    let Ok(mut entries) = tokio::fs::read_dir(dir).await else {
        return;
    };
    while let Ok(Some(entry)) = entries.next_entry().await {
        let expired = entry
            .metadata()
            .await
            .and_then(|m| m.modified())
            .ok()
            .and_then(|modified| modified.elapsed().ok())
            .is_some_and(|age| age > JOB_TTL);
        if expired {
            let _ = tokio::fs::remove_file(entry.path()).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_ids_are_unique_safe_and_of_their_kind() {
        let a = new_id(JobKind::Purge);
        let b = new_id(JobKind::Purge);
        assert_ne!(a, b);
        assert!(JobKind::Purge.owns(&a), "{a}");
        assert!(!JobKind::Deploy.owns(&a), "{a}");
        assert!(JobKind::Deploy.owns(&new_id(JobKind::Deploy)));
        assert!(!valid_job_id("../etc/passwd"));
        assert!(!valid_job_id(""));
    }
}
