//! One deploy per site at a time: a lock file with an expiry under the data directory.
//!
//! The lock is created atomically (`create_new`); a lock whose process is gone (a deploy
//! that was killed) or that is older than its expiry is taken over. (With Redis configured, the cache layer's lock
//! replaces this file so several machines share it.)

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::jobs::unix_now;

/// Who holds a lock and until when.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LockInfo {
    /// Process id of the holder.
    pub pid: u32,
    /// When it was taken (seconds since the epoch).
    pub since: u64,
    /// When it expires (seconds since the epoch).
    pub expires: u64,
}

/// Errors taking a lock.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another deploy holds it.
    #[error("another deploy of site `{site}` is running (pid {}, since {} s ago; the lock expires in {} s). Wait for it, or remove {} if that deploy is gone", .info.pid, unix_now().saturating_sub(.info.since), .info.expires.saturating_sub(unix_now()), .path.display())]
    Held {
        /// The site.
        site: String,
        /// The holder.
        info: LockInfo,
        /// The lock file.
        path: PathBuf,
    },
    /// The lock file could not be written.
    #[error("cannot write lock {}: {source}", .path.display())]
    Io {
        /// The lock file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// A held lock; released when dropped.
#[derive(Debug)]
pub struct SiteLock {
    path: PathBuf,
}

impl SiteLock {
    /// Takes the lock of `site` under `dir`, valid for `ttl`.
    pub fn acquire(dir: &Path, site: &str, ttl: Duration) -> Result<Self, LockError> {
        let path = dir.join(format!("{site}.lock"));
        let io = |source| LockError::Io {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        let info = LockInfo {
            pid: std::process::id(),
            since: unix_now(),
            expires: unix_now() + ttl.as_secs(),
        };
        let body = serde_json::to_vec(&info).unwrap_or_default();
        for _ in 0..2 {
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(mut file) => {
                    std::io::Write::write_all(&mut file, &body).map_err(io)?;
                    return Ok(Self { path });
                }
                Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {
                    let held: Option<LockInfo> = std::fs::read(&path)
                        .ok()
                        .and_then(|b| serde_json::from_slice(&b).ok());
                    match held {
                        Some(info) if info.expires > unix_now() && process_alive(info.pid) => {
                            return Err(LockError::Held {
                                site: site.into(),
                                info,
                                path,
                            });
                        }
                        // Expired or unreadable: left by a deploy that died. Take it over.
                        _ => {
                            tracing::warn!(lock = %path.display(), "taking over an expired deploy lock");
                            let _ = std::fs::remove_file(&path);
                        }
                    }
                }
                Err(err) => return Err(io(err)),
            }
        }
        Err(io(std::io::Error::other("lock file keeps reappearing")))
    }
}

/// Whether a process with this id runs on this machine. Where that cannot be told, it
/// is assumed alive and only the expiry frees the lock.
fn process_alive(pid: u32) -> bool {
    if cfg!(target_os = "linux") {
        Path::new("/proc").join(pid.to_string()).exists()
    } else {
        true
    }
}

impl Drop for SiteLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_lock_refuses_a_second_deploy_and_is_released_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let lock = SiteLock::acquire(dir.path(), "www", Duration::from_secs(60)).unwrap();
        let err = SiteLock::acquire(dir.path(), "www", Duration::from_secs(60)).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("another deploy of site `www` is running"),
            "{err}"
        );
        SiteLock::acquire(dir.path(), "other", Duration::from_secs(60)).unwrap();
        drop(lock);
        SiteLock::acquire(dir.path(), "www", Duration::from_secs(60)).unwrap();
    }

    #[test]
    fn a_lock_left_by_a_dead_process_is_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        let left = LockInfo {
            pid,
            since: unix_now(),
            expires: unix_now() + 600,
        };
        std::fs::write(
            dir.path().join("www.lock"),
            serde_json::to_vec(&left).unwrap(),
        )
        .unwrap();
        SiteLock::acquire(dir.path(), "www", Duration::from_secs(60)).unwrap();
    }

    #[test]
    fn an_expired_lock_is_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let stale = LockInfo {
            pid: 1,
            since: 0,
            expires: 1,
        };
        std::fs::write(
            dir.path().join("www.lock"),
            serde_json::to_vec(&stale).unwrap(),
        )
        .unwrap();
        SiteLock::acquire(dir.path(), "www", Duration::from_secs(60)).unwrap();
    }
}
