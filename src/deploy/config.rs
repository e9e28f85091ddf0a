//! The `[deploy]` section, checked here and composed into [`crate::config::Config`].

use serde::{Deserialize, Serialize};

use crate::config::ConfigError;

/// Settings of the deploy engine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeployConfig {
    /// Uploads in flight at the start; adjusted up and down while deploying.
    pub concurrency: usize,
    /// The most stale files `--delete` removes; more is refused (exit 3).
    pub max_deletes: usize,
    /// Where the remote manifest is stored on the site.
    pub manifest_key: String,
    /// A deploy lock older than this is considered abandoned, in seconds.
    pub lock_ttl_secs: u64,
    /// Retries of provider calls.
    pub retry: edgeship_providers::retry::RetryPolicy,
    /// The per-provider circuit breaker.
    pub breaker: edgeship_providers::breaker::BreakerPolicy,
}

impl Default for DeployConfig {
    fn default() -> Self {
        Self {
            concurrency: 32,
            max_deletes: 256,
            manifest_key: ".edgeship/manifest".into(),
            lock_ttl_secs: 1800,
            retry: Default::default(),
            breaker: Default::default(),
        }
    }
}

impl DeployConfig {
    /// Checks concurrency and retries; errors name the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key: &str, message: String| {
            Err(ConfigError::Value {
                key: format!("deploy.{key}"),
                message,
            })
        };
        if self.concurrency == 0 {
            return bad("concurrency", "must be at least 1".into());
        }
        if self.retry.attempts == 0 {
            return bad("retry.attempts", "must be at least 1".into());
        }
        Ok(())
    }
}
