//! Where state that outlives a request is kept — jobs, deploy locks, API keys — decided
//! once per process.
//!
//! With `cache.redis_url` set it is the cache layer (shared by every process and machine
//! using that Redis); without it, files under `data_dir`, which every command on this
//! machine sees. The memory-only cache is never a home: a CLI run and the service are
//! different processes and must see the same jobs and keys.

use std::path::PathBuf;

use crate::cache::Cache;
use crate::config::Config;

/// Where jobs, locks and keys live.
#[derive(Debug, Clone)]
pub enum StateHome {
    /// The cache layer, backed by Redis.
    Cache(Cache),
    /// Files under the data directory.
    Dir(PathBuf),
}

impl StateHome {
    /// The home `config` implies, reusing the process's one `cache`.
    pub fn new(config: &Config, cache: &Cache) -> Self {
        if config.cache.redis_url.is_some() {
            Self::Cache(cache.clone())
        } else {
            Self::Dir(config.data_dir.clone())
        }
    }
}
