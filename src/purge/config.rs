//! The `[purge]` section, checked here and composed into [`crate::config::Config`].

use serde::{Deserialize, Serialize};

use crate::config::ConfigError;

/// Settings of the purge engine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PurgeConfig {
    /// A purge matching more than this share of a site's paths needs `--confirm`
    /// (0.0–1.0). Purging everything always does.
    pub confirm_share: f64,
    /// Directory wildcards may purge at most this share of a site's unchanged paths in
    /// passing, to save provider calls and billed paths (0.0–1.0; 0 keeps purges exact).
    pub max_collateral_share: f64,
    /// How often in-progress purges are polled, in milliseconds.
    pub poll_interval_ms: u64,
    /// The longest a purge waits for in-flight room or, with `--wait`, for completion,
    /// in seconds.
    pub wait_timeout_secs: u64,
}

impl Default for PurgeConfig {
    fn default() -> Self {
        Self {
            confirm_share: 0.5,
            max_collateral_share: 0.1,
            poll_interval_ms: 2000,
            wait_timeout_secs: 900,
        }
    }
}

impl PurgeConfig {
    /// Checks that shares are between 0 and 1; errors name the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (key, share) in [
            ("confirm_share", self.confirm_share),
            ("max_collateral_share", self.max_collateral_share),
        ] {
            if !(0.0..=1.0).contains(&share) {
                return Err(ConfigError::Value {
                    key: format!("purge.{key}"),
                    message: format!("{share} is not a share between 0.0 and 1.0"),
                });
            }
        }
        Ok(())
    }
}
