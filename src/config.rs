//! Configuration: one nested serde struct, layered with `figment`.
//!
//! Layers, later wins: built-in defaults < file (`--config`, `EDGESHIP_CONFIG`, or
//! `./edgeship.toml` when present) < environment (`EDGESHIP_…`, `__` for nesting, e.g.
//! `EDGESHIP_SERVER__BIND`) < command-line flags. Unknown keys are errors that name the key.
//! `config/edgeship.example.toml` documents every key.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::cache::{Compression, Format as CacheFormat, Keyspace};
use crate::pipeline::compress::Encoding;
pub use crate::site::config::{ProviderKind, ResolvedSite, SiteConfig};

/// The file name looked up in the working directory when no config path is given.
pub const DEFAULT_CONFIG_FILE: &str = "edgeship.toml";

/// Prefix of the environment variables that override config keys.
pub const ENV_PREFIX: &str = "EDGESHIP_";

/// The name of the site used when a command names none and the config defines none.
pub const DEFAULT_SITE: &str = "default";

/// Errors while loading or checking configuration.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The config file given explicitly does not exist.
    #[error("config file {path} does not exist")]
    MissingFile {
        /// The path that was given.
        path: PathBuf,
    },
    /// A layer failed to parse or a key is unknown or has the wrong type.
    #[error("invalid configuration: {0}")]
    Invalid(String),
    /// A value parsed but is out of range or inconsistent.
    #[error("invalid configuration: {key}: {message}")]
    Value {
        /// The dotted key path, e.g. `pipeline.gzip_level`.
        key: String,
        /// What is wrong with it.
        message: String,
    },
    /// A command named a site the config does not define.
    #[error("unknown site `{name}` (configured sites: {known})")]
    UnknownSite {
        /// The requested site.
        name: String,
        /// The configured site names, comma separated.
        known: String,
    },
}

impl From<figment::Error> for ConfigError {
    fn from(err: figment::Error) -> Self {
        // figment reports every error of every layer; join them so none is lost.
        let messages: Vec<String> = err.into_iter().map(|e| e.to_string()).collect();
        Self::Invalid(messages.join("; "))
    }
}

/// The whole resolved configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where edgeship keeps its state: the default local site, keys, job records.
    pub data_dir: PathBuf,
    /// Where the processing cache lives (safe to delete; it only saves work).
    pub cache_dir: PathBuf,
    /// Logging.
    pub log: LogConfig,
    /// The HTTP service (`edgeship serve`).
    pub server: ServerConfig,
    /// The asset pipeline (minify, precompress, processing cache).
    pub pipeline: PipelineConfig,
    /// The deploy engine (concurrency, retries, deletes, locks).
    pub deploy: DeployConfig,
    /// The purge engine (reduction budget, confirmation threshold, waiting).
    pub purge: PurgeConfig,
    /// The cache layer (Redis or memory).
    pub cache: CacheConfig,
    /// Named deploy targets. Empty means one site, `default`, on the local provider.
    pub sites: BTreeMap<String, SiteConfig>,
}

impl Default for Config {
    fn default() -> Self {
        let data_dir = dirs::data_dir()
            .map(|d| d.join("edgeship"))
            .unwrap_or_else(|| PathBuf::from(".edgeship/data"));
        let cache_dir = dirs::cache_dir()
            .map(|d| d.join("edgeship"))
            .unwrap_or_else(|| PathBuf::from(".edgeship/cache"));
        Self {
            data_dir,
            cache_dir,
            log: LogConfig::default(),
            server: ServerConfig::default(),
            pipeline: PipelineConfig::default(),
            deploy: DeployConfig::default(),
            purge: PurgeConfig::default(),
            cache: CacheConfig::default(),
            sites: BTreeMap::new(),
        }
    }
}

/// Log output settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `tracing` filter directive, e.g. `info` or `edgeship=debug,actix_web=info`.
    pub level: String,
    /// `text` for people, `json` for log collectors.
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: "info".into(),
            format: LogFormat::Text,
        }
    }
}

/// The log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Settings of the HTTP service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address to listen on. Loopback by default so a fresh install exposes nothing.
    pub bind: SocketAddr,
    /// The site whose files the built-in origin serves. Unset: `default` when that site
    /// exists, else the only configured site; with several sites and none named here the
    /// origin serves nothing (and says so at startup).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin_site: Option<String>,
    /// Largest JSON request body, in bytes.
    pub max_json_bytes: usize,
    /// Largest deploy upload (a tar archive), in bytes.
    pub max_upload_bytes: u64,
    /// Most files in a deploy upload.
    pub max_upload_files: u64,
    /// An upload may expand to at most this many times its size when extracted.
    pub max_expansion_ratio: u64,
    /// API requests per second per key, sustained.
    pub key_rate_per_sec: u32,
    /// API requests per key allowed in a burst above the rate.
    pub key_burst: u32,
    /// API requests per second per client IP, sustained.
    pub ip_rate_per_sec: u32,
    /// API requests per client IP allowed in a burst above the rate.
    pub ip_burst: u32,
    /// Failed authentications from one IP within `auth_failure_window_secs` that block it.
    pub auth_failures_before_block: u32,
    /// The window in which failed authentications are counted, in seconds.
    pub auth_failure_window_secs: u64,
    /// How long a blocked IP is refused, in seconds.
    pub block_secs: u64,
    /// Networks allowed to call the API (CIDR); empty allows any.
    pub allow_ips: Vec<ipnet::IpNet>,
    /// Origins allowed by CORS for the API; empty (the default) turns CORS off.
    pub cors_origins: Vec<String>,
    /// On shutdown, how long running deploy and purge jobs may take to finish, in seconds.
    pub shutdown_grace_secs: u64,
}

impl ServerConfig {
    /// Checks limits that would make the service unusable when zero.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (key, value) in [
            ("max_json_bytes", self.max_json_bytes as u64),
            ("max_upload_bytes", self.max_upload_bytes),
            ("max_upload_files", self.max_upload_files),
            ("max_expansion_ratio", self.max_expansion_ratio),
            ("key_rate_per_sec", u64::from(self.key_rate_per_sec)),
            ("key_burst", u64::from(self.key_burst)),
            ("ip_rate_per_sec", u64::from(self.ip_rate_per_sec)),
            ("ip_burst", u64::from(self.ip_burst)),
            (
                "auth_failures_before_block",
                u64::from(self.auth_failures_before_block),
            ),
            ("auth_failure_window_secs", self.auth_failure_window_secs),
        ] {
            if value == 0 {
                return Err(ConfigError::Value {
                    key: format!("server.{key}"),
                    message: "must be at least 1 (0 would refuse every request)".into(),
                });
            }
        }
        Ok(())
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 8080)),
            origin_site: None,
            max_json_bytes: 1024 * 1024,
            max_upload_bytes: 1024 * 1024 * 1024,
            max_upload_files: 100_000,
            max_expansion_ratio: 100,
            key_rate_per_sec: 20,
            key_burst: 40,
            ip_rate_per_sec: 50,
            ip_burst: 100,
            auth_failures_before_block: 10,
            auth_failure_window_secs: 60,
            block_secs: 300,
            allow_ips: Vec::new(),
            cors_origins: Vec::new(),
            shutdown_grace_secs: 30,
        }
    }
}

/// Settings of the asset pipeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PipelineConfig {
    /// Worker threads for processing; 0 means one per core.
    pub workers: usize,
    /// Which minifiers run (a rule's `minify = false` turns them off per path).
    pub minify: MinifyConfig,
    /// Variants produced for compressible files, unless a rule says otherwise.
    pub encodings: Vec<Encoding>,
    /// gzip level, 1–9.
    pub gzip_level: u32,
    /// brotli quality, 0–11.
    pub brotli_quality: u32,
    /// zstd level, 1–22.
    pub zstd_level: i32,
    /// Keep a variant only if it saves at least this percentage of the identity size…
    pub min_saving_percent: f64,
    /// …and at least this many bytes.
    pub min_saving_bytes: u64,
    /// Files at least this large are hashed and compressed by streaming from disk
    /// instead of being read into memory (they are not minified).
    pub stream_threshold_bytes: u64,
    /// Browser targets for CSS (lightningcss), e.g. `{ chrome = "100", safari = "15.4" }`.
    /// Empty keeps modern syntax as written (no lowering).
    pub css_targets: BTreeMap<String, String>,
    /// Glob patterns (relative to the input root) of files that are not published.
    pub exclude: Vec<String>,
    /// Reuse results of earlier runs from the on-disk processing cache.
    pub cache: bool,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        Self {
            workers: 0,
            minify: MinifyConfig::default(),
            encodings: vec![Encoding::Br, Encoding::Gzip, Encoding::Zstd],
            gzip_level: 9,
            brotli_quality: 11,
            zstd_level: 19,
            min_saving_percent: 5.0,
            min_saving_bytes: 256,
            stream_threshold_bytes: 16 * 1024 * 1024,
            css_targets: BTreeMap::new(),
            exclude: vec![
                "**/.git/**".into(),
                "**/.DS_Store".into(),
                "**/Thumbs.db".into(),
                ".edgeship/**".into(),
            ],
            cache: true,
        }
    }
}

/// Per-language minifier switches.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MinifyConfig {
    /// JavaScript with oxc_minifier (compress + mangle; top-level names kept in scripts).
    pub js: bool,
    /// CSS with lightningcss.
    pub css: bool,
    /// JSON (also `.map`, `.webmanifest`) by removing insignificant whitespace.
    pub json: bool,
}

impl Default for MinifyConfig {
    fn default() -> Self {
        Self {
            js: true,
            css: true,
            json: true,
        }
    }
}

/// Settings of the cache layer: Redis when `redis_url` is set, memory otherwise.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheConfig {
    /// Redis to use, e.g. `redis://:password@10.0.0.5:6379/0`. Absent: memory only (one
    /// process). While set but unreachable the cache serves from memory and `/readyz`
    /// reports degraded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis_url: Option<RedisUrl>,
    /// First part of every key: `{prefix}:{site}:…`. Give deployments that share a Redis
    /// different prefixes.
    pub prefix: String,
    /// Serialisation of values: `msgpack` (compact, the default) or `json` (readable with
    /// `redis-cli`). Values are read by their header, so changing it keeps old values.
    pub format: CacheFormat,
    /// Compression of values above the threshold: `zstd`, `gzip` or `none`.
    pub compression: Compression,
    /// Values whose serialised size is above this many bytes are compressed.
    pub compress_threshold_bytes: usize,
    /// Every Redis command must answer within this; a slower one counts as Redis being
    /// unreachable (calls fall back to memory) rather than stalling requests.
    pub command_timeout_ms: u64,
    /// While Redis is unreachable, how often to check whether it is back.
    pub reconnect_interval_ms: u64,
    /// Keys per `SCAN` batch in pattern deletes: other clients wait at most one batch.
    pub scan_batch: usize,
    /// Size bound of the memory store (the embedded default and the fallback).
    pub memory_max_bytes: u64,
    /// Size of a memory L1 in front of Redis; 0 (the default) turns it off. With several
    /// replicas an L1 serves another replica's write only after `l1_ttl_ms`.
    pub l1_max_bytes: u64,
    /// How long the L1 keeps a value (its staleness bound).
    pub l1_ttl_ms: u64,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            redis_url: None,
            prefix: Keyspace::DEFAULT_PREFIX.into(),
            format: CacheFormat::MessagePack,
            compression: Compression::Zstd,
            compress_threshold_bytes: crate::cache::codec::DEFAULT_COMPRESS_THRESHOLD,
            command_timeout_ms: 500,
            reconnect_interval_ms: 1000,
            scan_batch: 1000,
            memory_max_bytes: 256 * 1024 * 1024,
            l1_max_bytes: 0,
            l1_ttl_ms: 2000,
        }
    }
}

/// A Redis URL, kept as a secret: it may hold a password. `Debug` shows it with the
/// credentials replaced; `edgeship config check` redacts it the same way.
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub struct RedisUrl(SecretString);

impl RedisUrl {
    /// Wraps a URL.
    pub fn new(url: impl Into<String>) -> Self {
        Self(SecretString::from(url.into()))
    }

    /// The URL with credentials, for connecting only.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    /// The URL with any credentials replaced by `[redacted]`, for logs.
    pub fn redacted(&self) -> String {
        let mut value = toml::Value::String(self.expose().to_owned());
        redact(&mut value, None);
        value.as_str().unwrap_or_default().to_owned()
    }
}

impl std::fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("RedisUrl").field(&self.redacted()).finish()
    }
}

impl PartialEq for RedisUrl {
    fn eq(&self, other: &Self) -> bool {
        self.expose() == other.expose()
    }
}

/// Serialises the real URL: the layered loader round-trips the config through serde.
/// Everything that prints config (`config check`) goes through [`Config::to_redacted_toml`].
impl Serialize for RedisUrl {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.expose())
    }
}

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

impl Config {
    /// Loads the configuration from all layers. `file` is an explicit `--config` path
    /// (or `EDGESHIP_CONFIG`); `flags` holds dotted-key overrides from the command line.
    pub fn load(file: Option<&Path>, flags: &[(&str, toml::Value)]) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Self::default()));
        match file {
            Some(path) if !path.exists() => {
                return Err(ConfigError::MissingFile {
                    path: path.to_path_buf(),
                });
            }
            Some(path) => figment = figment.merge(Toml::file_exact(path)),
            None if Path::new(DEFAULT_CONFIG_FILE).exists() => {
                figment = figment.merge(Toml::file_exact(DEFAULT_CONFIG_FILE));
            }
            None => {}
        }
        figment = figment.merge(env_provider());
        for (key, value) in flags {
            figment = figment.merge(Serialized::default(key, value));
        }
        let config: Self = figment.extract()?;
        config.validate()?;
        Ok(config)
    }

    /// Checks ranges and consistency that serde cannot express.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let p = &self.pipeline;
        let bad = |key: &str, message: String| {
            Err(ConfigError::Value {
                key: key.into(),
                message,
            })
        };
        if !(1..=9).contains(&p.gzip_level) {
            return bad(
                "pipeline.gzip_level",
                format!("{} is not in 1..=9", p.gzip_level),
            );
        }
        for (key, share) in [
            ("purge.confirm_share", self.purge.confirm_share),
            (
                "purge.max_collateral_share",
                self.purge.max_collateral_share,
            ),
        ] {
            if !(0.0..=1.0).contains(&share) {
                return bad(key, format!("{share} is not a share between 0.0 and 1.0"));
            }
        }
        if p.brotli_quality > 11 {
            return bad(
                "pipeline.brotli_quality",
                format!("{} is not in 0..=11", p.brotli_quality),
            );
        }
        if !(1..=22).contains(&p.zstd_level) {
            return bad(
                "pipeline.zstd_level",
                format!("{} is not in 1..=22", p.zstd_level),
            );
        }
        if !(0.0..100.0).contains(&p.min_saving_percent) {
            return bad(
                "pipeline.min_saving_percent",
                format!("{} is not in 0..100", p.min_saving_percent),
            );
        }
        crate::pipeline::minify::css::parse_targets(&p.css_targets).map_err(|err| {
            ConfigError::Value {
                key: "pipeline.css_targets".into(),
                message: err.to_string(),
            }
        })?;
        self.validate_cache()?;
        crate::pipeline::rules::compile_globs(&p.exclude).map_err(|err| ConfigError::Value {
            key: "pipeline.exclude".into(),
            message: err.to_string(),
        })?;
        if self.deploy.concurrency == 0 {
            return bad("deploy.concurrency", "must be at least 1".into());
        }
        if self.deploy.retry.attempts == 0 {
            return bad("deploy.retry.attempts", "must be at least 1".into());
        }
        for (name, site) in &self.sites {
            site.validate(name)?;
        }
        self.server.validate()?;
        if let Some(name) = &self.server.origin_site {
            self.site(name).map_err(|err| ConfigError::Value {
                key: "server.origin_site".into(),
                message: err.to_string(),
            })?;
        }
        Ok(())
    }

    fn validate_cache(&self) -> Result<(), ConfigError> {
        let c = &self.cache;
        let bad = |key: &str, message: String| {
            Err(ConfigError::Value {
                key: format!("cache.{key}"),
                message,
            })
        };
        if Keyspace::new(&c.prefix).is_err() {
            return bad(
                "prefix",
                format!(
                    "{:?} is not 1–64 of A-Z a-z 0-9 _ - . : (not ending in `:`)",
                    c.prefix
                ),
            );
        }
        if !(1..=60_000).contains(&c.command_timeout_ms) {
            return bad(
                "command_timeout_ms",
                format!("{} is not in 1..=60000", c.command_timeout_ms),
            );
        }
        if !(10..=600_000).contains(&c.reconnect_interval_ms) {
            return bad(
                "reconnect_interval_ms",
                format!("{} is not in 10..=600000", c.reconnect_interval_ms),
            );
        }
        if !(1..=100_000).contains(&c.scan_batch) {
            return bad(
                "scan_batch",
                format!("{} is not in 1..=100000", c.scan_batch),
            );
        }
        if c.memory_max_bytes == 0 {
            return bad("memory_max_bytes", "must be more than 0".into());
        }
        if c.l1_max_bytes > 0 && c.l1_ttl_ms == 0 {
            return bad("l1_ttl_ms", "must be more than 0 when the L1 is on".into());
        }
        if let Some(url) = &c.redis_url {
            let options = crate::cache::redis::RedisOptions::default();
            if let Err(err) = crate::cache::redis::RedisStore::new(url.expose(), options) {
                return bad("redis_url", format!("{} ({err})", url.redacted()));
            }
        }
        Ok(())
    }

    /// The names of the configured sites (`default` when none is configured).
    pub fn site_names(&self) -> Vec<String> {
        if self.sites.is_empty() {
            vec![DEFAULT_SITE.to_owned()]
        } else {
            self.sites.keys().cloned().collect()
        }
    }

    /// Resolves a site by name; `default` always exists when no sites are configured.
    pub fn site(&self, name: &str) -> Result<ResolvedSite, ConfigError> {
        if let Some(site) = self.sites.get(name) {
            return Ok(ResolvedSite {
                name: name.into(),
                provider: site.provider,
                root: site.root.clone().unwrap_or_else(|| self.site_root(name)),
                rules: site.rules.clone(),
                faults: site.faults.clone(),
                aws: site.aws.clone(),
                connections: self.deploy_connections(),
            });
        }
        if name == DEFAULT_SITE && self.sites.is_empty() {
            return Ok(ResolvedSite {
                name: name.into(),
                provider: ProviderKind::Local,
                root: self.site_root(name),
                rules: Vec::new(),
                faults: None,
                aws: None,
                connections: self.deploy_connections(),
            });
        }
        let known: Vec<&str> = self.sites.keys().map(String::as_str).collect();
        Err(ConfigError::UnknownSite {
            name: name.into(),
            known: if known.is_empty() {
                DEFAULT_SITE.into()
            } else {
                known.join(", ")
            },
        })
    }

    /// The site the built-in origin serves: `server.origin_site` when set, else `default`
    /// when it exists, else the only configured site; `None` when several sites are
    /// configured and none is named.
    pub fn origin_site(&self) -> Option<String> {
        match &self.server.origin_site {
            Some(name) => Some(name.clone()),
            None => self.default_site().ok(),
        }
    }

    /// The site a command uses when none is named: `default` when it exists, else the
    /// only configured site. With several sites and no `default` it is an error that
    /// lists them.
    pub fn default_site(&self) -> Result<String, ConfigError> {
        let names = self.site_names();
        if names.iter().any(|name| name == DEFAULT_SITE) {
            return Ok(DEFAULT_SITE.to_owned());
        }
        match names.as_slice() {
            [only] => Ok(only.clone()),
            _ => Err(ConfigError::Value {
                key: "--site".into(),
                message: format!(
                    "several sites are configured and none is `{DEFAULT_SITE}`: name one with --site ({})",
                    names.join(", ")
                ),
            }),
        }
    }

    /// `name`, or the [default site](Self::default_site) when `None`.
    pub fn site_or_default(&self, name: Option<&str>) -> Result<String, ConfigError> {
        match name {
            Some(name) => Ok(name.to_owned()),
            None => self.default_site(),
        }
    }

    /// The ceiling of a deploy's adaptive upload limit: 4× the starting concurrency, at
    /// most 512 (as the deploy engine sets it).
    fn deploy_connections(&self) -> usize {
        self.deploy.concurrency.saturating_mul(4).clamp(1, 512)
    }

    fn site_root(&self, name: &str) -> PathBuf {
        self.data_dir.join("sites").join(name)
    }

    /// The resolved configuration as TOML with secrets replaced by `"[redacted]"`.
    pub fn to_redacted_toml(&self) -> Result<String, ConfigError> {
        let mut value =
            toml::Value::try_from(self).map_err(|e| ConfigError::Invalid(e.to_string()))?;
        redact(&mut value, None);
        toml::to_string_pretty(&value).map_err(|e| ConfigError::Invalid(e.to_string()))
    }
}

/// The environment layer: `EDGESHIP_<KEY>` with `__` separating nested keys. Only
/// variables naming a top-level config key are read, so unrelated `EDGESHIP_*`
/// variables (like `EDGESHIP_CONFIG`) are not mistaken for config.
fn env_provider() -> Env {
    // The top-level keys, taken from the struct itself so new sections need no edit here.
    let top_level_keys: Vec<String> = match toml::Value::try_from(Config::default()) {
        Ok(toml::Value::Table(table)) => table.keys().cloned().collect(),
        _ => Vec::new(),
    };
    Env::prefixed(ENV_PREFIX).split("__").filter(move |key| {
        let top = key.as_str().split('.').next().unwrap_or_default();
        top_level_keys.iter().any(|k| k.eq_ignore_ascii_case(top))
    })
}

/// Key names whose values are secrets wherever they appear.
const SECRET_KEY_PARTS: [&str; 6] = [
    "secret",
    "password",
    "token",
    "api_key",
    "access_key",
    "credential",
];

fn redact(value: &mut toml::Value, key: Option<&str>) {
    let is_secret = key.is_some_and(|k| {
        let k = k.to_ascii_lowercase();
        SECRET_KEY_PARTS.iter().any(|part| k.contains(part))
    });
    match value {
        toml::Value::String(s) if is_secret => *s = "[redacted]".into(),
        // A URL with credentials in it (`redis://user:pass@host`, `…?password=x`) keeps
        // only its host part and its harmless query parameters.
        toml::Value::String(s) if s.contains("://") => *s = redact_url(s),
        toml::Value::Table(table) => {
            for (k, v) in table.iter_mut() {
                redact(v, Some(k));
            }
        }
        toml::Value::Array(items) => {
            for item in items {
                redact(item, key);
            }
        }
        _ => {}
    }
}

/// Query parameters whose values are credentials (redis+unix URLs put the password there).
const SECRET_QUERY_KEYS: [&str; 5] = ["pass", "password", "token", "secret", "key"];

fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (before_query, query) = match rest.split_once('?') {
        Some((before, query)) => (before, Some(query)),
        None => (rest, None),
    };
    let mut out = match before_query.rsplit_once('@') {
        Some((_, host)) => format!("{scheme}://[redacted]@{host}"),
        None => format!("{scheme}://{before_query}"),
    };
    if let Some(query) = query {
        let params: Vec<String> = query
            .split('&')
            .map(|param| match param.split_once('=') {
                Some((name, _))
                    if SECRET_QUERY_KEYS
                        .iter()
                        .any(|k| name.eq_ignore_ascii_case(k)) =>
                {
                    format!("{name}=[redacted]")
                }
                _ => param.to_owned(),
            })
            .collect();
        out.push('?');
        out.push_str(&params.join("&"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &tempfile::TempDir, text: &str) -> PathBuf {
        let path = dir.path().join("edgeship.toml");
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn unsafe_or_empty_site_names_are_refused_before_anything_writes() {
        let dir = tempfile::tempdir().unwrap();
        for (toml, says) in [
            ("[sites.\"../../x\"]\n", "cannot start with `.`"),
            ("[sites.\"x/../y\"]\n", "`/` is not allowed"),
            ("[sites.\"\"]\n", "cannot be empty"),
            ("[sites.\".hidden\"]\n", "cannot start with `.`"),
            ("[sites.\"a b\"]\n", "` ` is not allowed"),
        ] {
            let path = write(&dir, toml);
            let err = Config::load(Some(&path), &[]).unwrap_err().to_string();
            assert!(err.contains(says), "{toml}: {err}");
        }
        let path = write(&dir, "[sites.www-2_a.b]\n");
        assert!(
            Config::load(Some(&path), &[]).is_err(),
            "a dotted key is a table, not a name"
        );
        let path = write(&dir, "[sites.\"www-2_a.b\"]\n");
        Config::load(Some(&path), &[]).unwrap();
    }

    #[test]
    fn limits_that_would_refuse_every_request_and_unknown_origin_sites_are_config_errors() {
        let dir = tempfile::tempdir().unwrap();
        for (toml, key) in [
            ("[server]\nmax_json_bytes = 0\n", "server.max_json_bytes"),
            (
                "[server]\nmax_upload_bytes = 0\n",
                "server.max_upload_bytes",
            ),
            (
                "[server]\nkey_rate_per_sec = 0\n",
                "server.key_rate_per_sec",
            ),
            ("[server]\nip_burst = 0\n", "server.ip_burst"),
            ("[server]\norigin_site = \"www\"\n", "server.origin_site"),
        ] {
            let path = write(&dir, toml);
            let err = Config::load(Some(&path), &[]).unwrap_err().to_string();
            assert!(err.contains(key), "{toml}: {err}");
        }
    }

    #[test]
    fn an_unknown_provider_kind_names_the_key_and_the_kinds_this_build_has() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(&dir, "[sites.www]\nprovider = \"ftp\"\n");
        let err = Config::load(Some(&path), &[]).unwrap_err().to_string();
        assert!(err.contains("unknown provider `ftp`"), "{err}");
        assert!(err.contains("provider"), "{err}");
        assert!(err.contains(&ProviderKind::built_list()), "{err}");
        let path = write(&dir, "[sites.www]\nprovider = \"memory\"\n");
        let config = Config::load(Some(&path), &[]).unwrap();
        assert_eq!(config.site("www").unwrap().provider, ProviderKind::Memory);
    }

    #[test]
    fn the_default_and_origin_site_is_default_or_the_only_site() {
        let mut config = Config::default();
        assert_eq!(config.default_site().unwrap(), DEFAULT_SITE);
        config.sites.insert("www".into(), SiteConfig::default());
        assert_eq!(config.default_site().unwrap(), "www");
        assert_eq!(config.origin_site().as_deref(), Some("www"));
        config.sites.insert("docs".into(), SiteConfig::default());
        let err = config.default_site().unwrap_err().to_string();
        assert!(err.contains("--site (docs, www)"), "{err}");
        assert_eq!(config.origin_site(), None);
        config.server.origin_site = Some("docs".into());
        assert_eq!(config.origin_site().as_deref(), Some("docs"));
        config
            .sites
            .insert(DEFAULT_SITE.into(), SiteConfig::default());
        assert_eq!(config.default_site().unwrap(), DEFAULT_SITE);
    }

    #[test]
    fn unknown_key_is_rejected_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(&dir, "[pipeline]\ngzip_levle = 9\n");
        let err = Config::load(Some(&path), &[]).unwrap_err().to_string();
        assert!(err.contains("gzip_levle"), "{err}");
    }

    #[test]
    fn flags_override_file_and_file_overrides_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(&dir, "[pipeline]\ngzip_level = 6\nzstd_level = 3\n");
        let config = Config::load(
            Some(&path),
            &[("pipeline.zstd_level", toml::Value::Integer(5))],
        )
        .unwrap();
        assert_eq!(config.pipeline.gzip_level, 6);
        assert_eq!(config.pipeline.zstd_level, 5);
        assert_eq!(config.pipeline.brotli_quality, 11);
    }

    #[test]
    fn out_of_range_value_names_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(&dir, "[pipeline]\ngzip_level = 12\n");
        let err = Config::load(Some(&path), &[]).unwrap_err().to_string();
        assert!(err.contains("pipeline.gzip_level"), "{err}");
    }

    #[test]
    fn missing_explicit_file_is_an_error() {
        let err = Config::load(Some(Path::new("/nonexistent/edgeship.toml")), &[]).unwrap_err();
        assert!(matches!(err, ConfigError::MissingFile { .. }));
    }

    #[test]
    fn default_site_exists_without_config_and_unknown_sites_are_named() {
        let config = Config::default();
        let site = config.site("default").unwrap();
        assert_eq!(site.root, config.data_dir.join("sites/default"));
        let err = config.site("www").unwrap_err().to_string();
        assert_eq!(err, "unknown site `www` (configured sites: default)");
    }

    #[cfg(feature = "aws")]
    #[test]
    fn aws_sites_need_a_bucket_and_their_settings_are_checked_by_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            &dir,
            "[sites.www]\nprovider = \"aws\"\n[sites.www.aws]\nbucket = \"assets\"\nprefix = \"www\"\ndistribution_id = \"E2QWRUHAPOMQZL\"\n",
        );
        let config = Config::load(Some(&path), &[]).unwrap();
        let site = config.site("www").unwrap();
        let aws = site.aws.unwrap();
        assert_eq!(aws.bucket, "assets");
        assert_eq!(aws.key_prefix(), "www/");
        assert_eq!(aws.multipart_threshold, 16 * 1024 * 1024);
        assert_eq!(site.connections, 128, "4 × deploy.concurrency");
        for (toml, key) in [
            (
                "[sites.www]\nprovider = \"aws\"\n",
                "sites.www.aws.bucket: is required",
            ),
            (
                "[sites.www]\nprovider = \"aws\"\n[sites.www.aws]\nregion = \"eu-west-1\"\n",
                "sites.www.aws.bucket: is required",
            ),
            (
                "[sites.www]\nprovider = \"aws\"\n[sites.www.aws]\nbucket = \"b\"\npart_size = 1\n",
                "sites.www.aws.part_size",
            ),
            (
                "[sites.www]\nprovider = \"aws\"\n[sites.www.aws]\nbucket = \"b\"\nbukcet = \"c\"\n",
                "bukcet",
            ),
            (
                "[sites.www]\nprovider = \"local\"\n[sites.www.aws]\nbucket = \"b\"\n",
                "sites.www.aws: is only used by provider = \"aws\"",
            ),
        ] {
            let path = write(&dir, toml);
            let err = Config::load(Some(&path), &[]).unwrap_err().to_string();
            assert!(err.contains(key), "{toml}: {err}");
        }
    }

    #[test]
    fn redaction_hides_secret_keys_and_url_credentials() {
        let mut value: toml::Value = toml::from_str(
            "api_token = \"abc\"\n[x]\nurl = \"redis://u:p@h:6379\"\nsecret_access_key = \"k\"\n",
        )
        .unwrap();
        redact(&mut value, None);
        let text = toml::to_string(&value).unwrap();
        assert!(
            !text.contains("abc") && !text.contains("u:p") && !text.contains("\"k\""),
            "{text}"
        );
        assert!(text.contains("redis://[redacted]@h:6379"), "{text}");
    }

    #[test]
    fn cache_section_is_validated_and_its_redis_url_redacted() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            &dir,
            "[cache]\nredis_url = \"redis://:hunter2@10.0.0.5:6379/2\"\nformat = \"json\"\n",
        );
        let config = Config::load(Some(&path), &[]).unwrap();
        assert_eq!(config.cache.format, CacheFormat::Json);
        let url = config.cache.redis_url.as_ref().unwrap();
        assert_eq!(url.expose(), "redis://:hunter2@10.0.0.5:6379/2");
        assert!(!format!("{config:?}").contains("hunter2"));
        let text = config.to_redacted_toml().unwrap();
        assert!(!text.contains("hunter2"), "{text}");
        assert!(
            text.contains("redis_url = \"redis://[redacted]@10.0.0.5:6379/2\""),
            "{text}"
        );

        let unix = RedisUrl::new("redis+unix:///run/redis.sock?db=1&pass=hunter2");
        assert_eq!(
            unix.redacted(),
            "redis+unix:///run/redis.sock?db=1&pass=[redacted]"
        );

        for (toml, key) in [
            ("[cache]\nprefix = \"a b\"\n", "cache.prefix"),
            (
                "[cache]\ncommand_timeout_ms = 0\n",
                "cache.command_timeout_ms",
            ),
            ("[cache]\nscan_batch = 0\n", "cache.scan_batch"),
            (
                "[cache]\nredis_url = \"http://x:secretpw@host\"\n",
                "cache.redis_url",
            ),
            ("[cache]\ncompression = \"lz4\"\n", "compression"),
        ] {
            let path = write(&dir, toml);
            let err = Config::load(Some(&path), &[]).unwrap_err().to_string();
            assert!(err.contains(key), "{toml}: {err}");
            assert!(!err.contains("secretpw"), "{err}");
        }
    }
}

#[cfg(test)]
mod example_tests {
    use super::*;

    #[test]
    fn the_example_config_parses_and_sets_every_top_level_section() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/edgeship.example.toml");
        let config = Config::load(Some(&path), &[]).unwrap();
        assert_eq!(
            config.sites["default"].rules[0].tags,
            vec!["downloads".to_string()]
        );
        assert_eq!(
            config.pipeline,
            PipelineConfig::default(),
            "the example shows the defaults"
        );
        assert_eq!(config.server, ServerConfig::default());
        assert_eq!(
            config.deploy,
            DeployConfig::default(),
            "the example shows the deploy defaults"
        );
        assert_eq!(config.log, LogConfig::default());
        assert_eq!(
            config.cache,
            CacheConfig::default(),
            "the example shows the cache defaults"
        );
        assert_eq!(
            config.purge,
            PurgeConfig::default(),
            "the example shows the purge defaults"
        );
    }
}
