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

pub use crate::cache::config::CacheConfig;
pub use crate::deploy::config::DeployConfig;
pub use crate::pipeline::config::{MinifyConfig, PipelineConfig};
pub use crate::purge::config::PurgeConfig;
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
    #[error("unknown site `{}` (configured sites: {known})", cut(name))]
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

/// A name as told back in messages: at most 100 characters, escaped.
fn cut(name: &str) -> String {
    let mut shown: String = name
        .chars()
        .take(100)
        .collect::<String>()
        .escape_debug()
        .to_string();
    if name.chars().count() > 100 {
        shown.push('…');
    }
    shown
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
    /// CDN-log analytics (retention, top paths).
    pub analytics: crate::analytics::logs::AnalyticsConfig,
    /// How `serve` replicas share deploy and purge jobs through Redis.
    pub jobs: crate::jobs::queue::JobsConfig,
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
            analytics: crate::analytics::logs::AnalyticsConfig::default(),
            jobs: crate::jobs::queue::JobsConfig::default(),
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
    /// Deploy uploads being received at once, from all keys; more are answered 429.
    pub max_concurrent_uploads: u32,
    /// Deploy uploads being received at once with one key; more are answered 429.
    pub max_uploads_per_key: u32,
    /// An upload that sends no bytes for this long is cut off with 408, in seconds.
    pub upload_idle_timeout_secs: u64,
    /// An upload must be received completely within this long, or it is cut off with
    /// 408, in seconds (at the default, 1 GiB needs about 300 KB/s).
    pub upload_timeout_secs: u64,
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
    /// How long a blocked IP is refused, in seconds; 0 never blocks.
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
            (
                "max_concurrent_uploads",
                u64::from(self.max_concurrent_uploads),
            ),
            ("max_uploads_per_key", u64::from(self.max_uploads_per_key)),
            ("upload_idle_timeout_secs", self.upload_idle_timeout_secs),
            ("upload_timeout_secs", self.upload_timeout_secs),
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
            max_concurrent_uploads: 16,
            max_uploads_per_key: 4,
            upload_idle_timeout_secs: 30,
            upload_timeout_secs: 3600,
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

    /// Checks ranges and consistency that serde cannot express: each section checks
    /// itself (next to its module), then what spans sections.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.pipeline.validate()?;
        self.purge.validate()?;
        self.cache.validate()?;
        self.deploy.validate()?;
        self.analytics.validate()?;
        self.jobs.validate()?;
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
                cloudflare: site.cloudflare.clone(),
                azure: site.azure.clone(),
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
                cloudflare: None,
                azure: None,
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
    /// when it exists, else the only configured site when it is a `local` one (the only
    /// kind the origin has files of); `None` otherwise.
    pub fn origin_site(&self) -> Option<String> {
        if let Some(name) = &self.server.origin_site {
            return Some(name.clone());
        }
        let name = self.default_site().ok()?;
        let local = self
            .site(&name)
            .is_ok_and(|site| site.provider == ProviderKind::Local);
        (name == DEFAULT_SITE || local).then_some(name)
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
        toml::Value::String(s) if s.contains("://") => {
            *s = crate::cache::redis::seed_urls(s)
                .into_iter()
                .map(redact_url)
                .collect::<Vec<_>>()
                .join(",");
        }
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
        assert!(err.contains("sites.www.provider"), "{err}");
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
    fn azure_sites_need_a_container_and_their_settings_are_checked_by_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            &dir,
            "[sites.www]\nprovider = \"azure\"\n[sites.www.azure]\naccount = \"wwwassets\"\ncontainer = \"site\"\n\
             [sites.www.azure.front_door]\nsubscription_id = \"0b1f6471-1bf0-4dda-aec3-cb9272f09590\"\nresource_group = \"web-rg\"\nprofile = \"web\"\nendpoint = \"www\"\n",
        );
        let config = Config::load(Some(&path), &[]).unwrap();
        let azure = config.site("www").unwrap().azure.unwrap();
        assert_eq!(azure.container, "site");
        assert_eq!(azure.front_door.unwrap().max_paths_per_call, 100);
        for (toml, key) in [
            (
                "[sites.www]\nprovider = \"azure\"\n",
                "sites.www.azure.container: is required",
            ),
            (
                "[sites.www]\nprovider = \"azure\"\n[sites.www.azure]\naccount = \"a1b2c\"\ncontainer = \"Site\"\n",
                "sites.www.azure.container",
            ),
            (
                "[sites.www]\nprovider = \"azure\"\n[sites.www.azure]\naccount = \"a1b2c\"\ncontainer = \"site\"\ncredential = \"password\"\n",
                "credential",
            ),
            (
                "[sites.www]\nprovider = \"azure\"\n[sites.www.azure]\naccount = \"a1b2c\"\ncontainer = \"site\"\n[sites.www.azure.front_door]\nsubscription_id = \"x\"\n",
                "sites.www.azure.front_door.subscription_id",
            ),
            (
                "[sites.www]\nprovider = \"local\"\n[sites.www.azure]\ncontainer = \"site\"\n",
                "sites.www.azure: is only used by provider = \"azure\"",
            ),
        ] {
            let path = write(&dir, toml);
            let err = Config::load(Some(&path), &[]).unwrap_err().to_string();
            assert!(err.contains(key), "{toml}: {err}");
        }
    }

    #[test]
    fn a_sites_log_source_is_checked_like_a_site() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            &dir,
            "[sites.www.logs]\nprovider = \"aws\"\nprefix = \"cf/\"\nformat = \"cloudfront\"\n[sites.www.logs.aws]\nbucket = \"www-logs\"\n",
        );
        let config = Config::load(Some(&path), &[]).unwrap();
        let logs = config.sites["www"].logs.clone().unwrap();
        assert_eq!(logs.prefix, "cf/");
        assert_eq!(logs.aws.unwrap().bucket, "www-logs");
        for (toml, key) in [
            (
                "[sites.www.logs]\nprovider = \"aws\"\n",
                "sites.www.logs.aws.bucket: is required",
            ),
            (
                "[sites.www.logs]\nprovider = \"memory\"\n",
                "sites.www.logs.provider",
            ),
            (
                "[sites.www.logs]\nprovider = \"aws\"\nformat = \"apache\"\n[sites.www.logs.aws]\nbucket = \"b\"\n",
                "format",
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
        assert_eq!(config.cache.format, crate::cache::Format::Json);
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

        // Cluster seeds: each URL redacted, a comma inside a password kept with it.
        let seeds = RedisUrl::new("redis://:pw1@10.0.0.1:6379, redis://u:a,b@10.0.0.2:6379");
        assert_eq!(
            seeds.redacted(),
            "redis://[redacted]@10.0.0.1:6379,redis://[redacted]@10.0.0.2:6379"
        );

        let ca = dir.path().join("ca.pem");
        for (toml, key) in [
            ("[cache]\nredis_cluster = true\n", "cache.redis_cluster"),
            (
                "[cache]\nredis_url = \"redis://:secretpw@a:1,redis://b:2\"\n",
                "cache.redis_cluster = true",
            ),
            (
                "[cache]\nredis_url = \"redis://:secretpw@a:1\"\nredis_ca_file = \"/x.pem\"\n",
                "cache.redis_ca_file is set but cache.redis_url is not rediss://",
            ),
            (
                format!(
                    "[cache]\nredis_url = \"rediss://:secretpw@a:1\"\nredis_ca_file = \"{}\"\n",
                    ca.display()
                )
                .as_str(),
                "cannot be read",
            ),
            (
                "[cache]\nredis_cluster = true\nredis_url = \"rediss://:secretpw@a:1,redis://b:2\"\n",
                "mixes rediss:// and redis://",
            ),
        ] {
            let path = write(&dir, toml);
            let err = Config::load(Some(&path), &[]).unwrap_err().to_string();
            assert!(err.contains(key), "{toml}: {err}");
            assert!(!err.contains("secretpw"), "{err}");
        }

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
