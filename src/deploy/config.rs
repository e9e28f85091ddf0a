//! The `[deploy]` section, checked here and composed into [`crate::config::Config`].

use serde::{Deserialize, Serialize};

use crate::config::ConfigError;
use crate::pipeline::delta::DeltaEncoding;

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
    /// How many deploys' manifests are kept on the site (`edgeship deploys list`); delta
    /// variants are made from the versions they name. 0 keeps none.
    pub history: usize,
    /// Compression dictionaries and delta variants (RFC 9842).
    pub dictionaries: DictionaryConfig,
}

/// `[deploy.dictionaries]`: which assets browsers keep as compression dictionaries, and
/// the delta variants made when one changes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DictionaryConfig {
    /// Offer assets as dictionaries and make deltas at all.
    pub enabled: bool,
    /// Delta codings made: `dcz` (zstd, raw dictionary) and `dcb` (brotli, custom
    /// dictionary).
    pub encodings: Vec<DeltaEncoding>,
    /// Earlier versions of an asset a delta is made from (each costs one delta per
    /// coding at deploy time): visitors who skipped up to this many deploys get deltas.
    pub versions: usize,
    /// Assets larger than this are not offered as dictionaries and get no deltas.
    pub max_dictionary_bytes: u64,
    /// Assets smaller than this are not worth a dictionary.
    pub min_asset_bytes: u64,
    /// Earlier versions kept on this machine (under `cache_dir`) so deltas need not
    /// download them; the oldest go first beyond this many bytes.
    pub store_max_bytes: u64,
}

impl Default for DictionaryConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            encodings: vec![DeltaEncoding::Dcz, DeltaEncoding::Dcb],
            versions: 2,
            max_dictionary_bytes: 8 * 1024 * 1024,
            min_asset_bytes: 1024,
            store_max_bytes: 512 * 1024 * 1024,
        }
    }
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
            history: 10,
            dictionaries: DictionaryConfig::default(),
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
        if self.history > 1000 {
            return bad(
                "history",
                format!("{} is more than 1000 deploys", self.history),
            );
        }
        let dictionaries = &self.dictionaries;
        if dictionaries.enabled && dictionaries.versions == 0 {
            return bad(
                "dictionaries.versions",
                "must be at least 1 (or set dictionaries.enabled = false)".into(),
            );
        }
        if dictionaries.versions > 16 {
            return bad(
                "dictionaries.versions",
                format!("{} is more than 16 earlier versions", dictionaries.versions),
            );
        }
        // A dcb window is at most 16 MiB, and browsers bound what they keep.
        if dictionaries.max_dictionary_bytes > 64 * 1024 * 1024 {
            return bad(
                "dictionaries.max_dictionary_bytes",
                "must be at most 67108864 (64 MiB)".into(),
            );
        }
        Ok(())
    }
}
