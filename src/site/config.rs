//! The `[sites.NAME]` section: one deploy target each, checked here and composed into
//! [`crate::config::Config`].

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::config::ConfigError;

/// Where a site's objects are stored and purged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "&'static str")]
pub enum ProviderKind {
    /// A directory on this machine, served by the built-in origin (the embedded default).
    Local,
    /// In memory, for tests and demos; gone when the process exits.
    Memory,
    /// S3 for storage and CloudFront for purges (cargo feature `aws`).
    Aws,
    /// R2 for storage and the zone's cache purge API (cargo feature `cloudflare`).
    Cloudflare,
    /// Azure Blob Storage for storage and Azure Front Door for purges (cargo feature
    /// `azure`).
    Azure,
}

impl ProviderKind {
    /// Every kind edgeship knows, in the order messages list them.
    pub const ALL: [Self; 5] = [
        Self::Local,
        Self::Memory,
        Self::Aws,
        Self::Cloudflare,
        Self::Azure,
    ];

    /// The name used in configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Local => "local",
            Self::Memory => "memory",
            Self::Aws => "aws",
            Self::Cloudflare => "cloudflare",
            Self::Azure => "azure",
        }
    }

    /// Whether this build includes the kind (cloud providers are cargo features).
    pub fn is_built(self) -> bool {
        match self {
            Self::Local | Self::Memory => true,
            Self::Aws => cfg!(feature = "aws"),
            Self::Cloudflare => cfg!(feature = "cloudflare"),
            Self::Azure => cfg!(feature = "azure"),
        }
    }

    /// The kinds this build includes, comma separated, for messages.
    pub fn built_list() -> String {
        Self::ALL
            .iter()
            .filter(|kind| kind.is_built())
            .map(|kind| kind.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl std::fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<ProviderKind> for &'static str {
    fn from(kind: ProviderKind) -> Self {
        kind.as_str()
    }
}

/// A `provider = "…"` edgeship does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown provider `{}` (this build has: {})", .0.escape_debug(), ProviderKind::built_list())]
pub struct UnknownProvider(pub String);

impl TryFrom<String> for ProviderKind {
    type Error = UnknownProvider;

    fn try_from(name: String) -> Result<Self, Self::Error> {
        Self::ALL
            .into_iter()
            .find(|kind| kind.as_str() == name)
            .ok_or(UnknownProvider(name))
    }
}

/// One deploy target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteConfig {
    /// Provider kind: `local` is the embedded default.
    #[serde(default = "default_provider")]
    pub provider: ProviderKind,
    /// Root directory of a `local` site; default `<data_dir>/sites/<name>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root: Option<PathBuf>,
    /// Ordered rules; the first whose pattern matches a path decides its settings.
    #[serde(default)]
    pub rules: Vec<crate::pipeline::rules::RuleConfig>,
    /// Fault injection in front of the provider (for trying deploys under failure).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub faults: Option<edgeship_providers::faults::FaultConfig>,
    /// S3 + CloudFront settings of an `aws` site (`[sites.NAME.aws]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws: Option<edgeship_providers::aws::AwsSettings>,
    /// R2 + zone settings of a `cloudflare` site (`[sites.NAME.cloudflare]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloudflare: Option<edgeship_providers::cloudflare::CloudflareSettings>,
    /// Blob + Front Door settings of an `azure` site (`[sites.NAME.azure]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub azure: Option<edgeship_providers::azure::AzureSettings>,
    /// Where the CDN delivers the site's access logs, for `edgeship logs pull`
    /// (`[sites.NAME.logs]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logs: Option<LogSource>,
}

/// The bucket or container a CDN writes a site's access logs to (`[sites.NAME.logs]`),
/// with the same provider tables as a site: `[sites.NAME.logs.aws]` for S3 (CloudFront
/// standard logs), `.cloudflare` for R2 (Logpush), `.azure` for a Blob container (Front
/// Door diagnostic settings), or `root` for a local directory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSource {
    /// Where the logs are stored.
    pub provider: ProviderKind,
    /// Only objects under this key prefix are logs (`cloudfront/`, `logpush/www/`).
    #[serde(default)]
    pub prefix: String,
    /// The logs' format; recognised from each file's first line when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<crate::analytics::logs::LogFormat>,
    /// The directory of a `local` source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root: Option<PathBuf>,
    /// An S3 bucket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws: Option<edgeship_providers::aws::AwsSettings>,
    /// An R2 bucket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloudflare: Option<edgeship_providers::cloudflare::CloudflareSettings>,
    /// A Blob container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub azure: Option<edgeship_providers::azure::AzureSettings>,
}

impl LogSource {
    /// The source as a site of its own (its provider tables are checked and opened the
    /// same way).
    pub fn as_site(&self) -> SiteConfig {
        SiteConfig {
            provider: self.provider,
            root: self.root.clone(),
            aws: self.aws.clone(),
            cloudflare: self.cloudflare.clone(),
            azure: self.azure.clone(),
            ..SiteConfig::default()
        }
    }
}

impl Default for SiteConfig {
    /// A `local` site under the data directory with the built-in rules.
    fn default() -> Self {
        Self {
            provider: default_provider(),
            root: None,
            rules: Vec::new(),
            faults: None,
            aws: None,
            cloudflare: None,
            azure: None,
            logs: None,
        }
    }
}

fn default_provider() -> ProviderKind {
    ProviderKind::Local
}

/// The longest site name: it becomes a directory name and part of cache keys.
pub const MAX_SITE_NAME: usize = 64;

/// Why a site name is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SiteNameError {
    /// `""`.
    #[error("a site name cannot be empty")]
    Empty,
    /// Over [`MAX_SITE_NAME`] bytes.
    #[error("a site name is at most {MAX_SITE_NAME} characters")]
    TooLong,
    /// Starts with `.` (`.`, `..`, hidden directories).
    #[error("a site name cannot start with `.`")]
    LeadingDot,
    /// A character outside `A-Z a-z 0-9 _ - .`.
    #[error("`{}` is not allowed in a site name (use A-Z a-z 0-9 _ - .)", .0.escape_debug())]
    BadCharacter(char),
}

/// Checks a site name: 1–64 of `A-Z a-z 0-9 _ - .`, not starting with `.`, so it is safe
/// as a directory name (a local site's root, lock files) and inside cache keys.
pub fn check_site_name(name: &str) -> Result<(), SiteNameError> {
    if name.is_empty() {
        return Err(SiteNameError::Empty);
    }
    if name.len() > MAX_SITE_NAME {
        return Err(SiteNameError::TooLong);
    }
    if name.starts_with('.') {
        return Err(SiteNameError::LeadingDot);
    }
    match name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
    {
        Some(bad) => Err(SiteNameError::BadCharacter(bad)),
        None => Ok(()),
    }
}

impl SiteConfig {
    /// Checks the site named `name`; errors name the key (`sites.NAME.…`).
    pub fn validate(&self, name: &str) -> Result<(), ConfigError> {
        let bad = |key: String, message: String| Err(ConfigError::Value { key, message });
        if let Err(err) = check_site_name(name) {
            return bad(format!("sites.{name:?}"), err.to_string());
        }
        if let Some(faults) = &self.faults {
            faults.validate().map_err(|err| ConfigError::Value {
                key: format!("sites.{name}.faults.{}", err.field),
                message: err.message,
            })?;
        }
        if !self.provider.is_built() {
            return bad(
                format!("sites.{name}.provider"),
                format!(
                    "provider `{}` is not available in this build (built without the `{}` cargo feature; available: {})",
                    self.provider,
                    self.provider,
                    ProviderKind::built_list()
                ),
            );
        }
        if let Some(logs) = &self.logs {
            let source = logs.as_site();
            if source.provider == ProviderKind::Memory {
                return bad(
                    format!("sites.{name}.logs.provider"),
                    "logs cannot be pulled from `memory`; use local, aws, cloudflare or azure"
                        .into(),
                );
            }
            if !source.provider.is_built() {
                return bad(
                    format!("sites.{name}.logs.provider"),
                    format!(
                        "provider `{}` is not available in this build",
                        source.provider
                    ),
                );
            }
            source.validate_provider_table(&format!("{name}.logs"))?;
        }
        self.validate_provider_table(name)?;
        crate::pipeline::rules::RuleSet::new(&self.rules).map_err(|err| ConfigError::Value {
            key: format!("sites.{name}.rules"),
            message: err.to_string(),
        })?;
        Ok(())
    }
}

impl SiteConfig {
    /// The provider's own table must be there (`[sites.NAME.aws]` for `aws`, …) and no
    /// other provider's.
    fn validate_provider_table(&self, name: &str) -> Result<(), ConfigError> {
        let value = |key: String, message: String| Err(ConfigError::Value { key, message });
        let tables = [
            (
                ProviderKind::Aws,
                self.aws.is_some(),
                "bucket",
                "the S3 bucket",
            ),
            (
                ProviderKind::Cloudflare,
                self.cloudflare.is_some(),
                "account_id",
                "the account, R2 bucket, zone and hosts",
            ),
            (
                ProviderKind::Azure,
                self.azure.is_some(),
                "container",
                "the storage account and container (and a [sites.NAME.azure.front_door] table to purge)",
            ),
        ];
        for (kind, present, first, holds) in tables {
            if kind == self.provider && !present {
                return value(
                    format!("sites.{name}.{kind}.{first}"),
                    format!(
                        "is required: provider = \"{kind}\" needs a [sites.{name}.{kind}] table with {holds}"
                    ),
                );
            }
            if kind != self.provider && present {
                return value(
                    format!("sites.{name}.{kind}"),
                    format!(
                        "is only used by provider = \"{kind}\" (this site's provider is `{}`)",
                        self.provider
                    ),
                );
            }
        }
        if let Some(aws) = &self.aws {
            aws.validate().map_err(|err| ConfigError::Value {
                key: format!("sites.{name}.aws.{}", err.field),
                message: err.message,
            })?;
        }
        if let Some(cloudflare) = &self.cloudflare {
            cloudflare.validate().map_err(|err| ConfigError::Value {
                key: format!("sites.{name}.cloudflare.{}", err.field),
                message: err.message,
            })?;
        }
        if let Some(azure) = &self.azure {
            azure.validate().map_err(|err| ConfigError::Value {
                key: format!("sites.{name}.azure.{}", err.field),
                message: err.message,
            })?;
        }
        Ok(())
    }
}

/// A site with every default filled in.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedSite {
    /// The site name.
    pub name: String,
    /// Provider kind.
    pub provider: ProviderKind,
    /// Root directory for a local site.
    pub root: PathBuf,
    /// The site's own rules (the built-in defaults apply after them).
    pub rules: Vec<crate::pipeline::rules::RuleConfig>,
    /// Injected faults, if configured.
    pub faults: Option<edgeship_providers::faults::FaultConfig>,
    /// S3 + CloudFront settings of an `aws` site.
    pub aws: Option<edgeship_providers::aws::AwsSettings>,
    /// R2 + zone settings of a `cloudflare` site.
    pub cloudflare: Option<edgeship_providers::cloudflare::CloudflareSettings>,
    /// Blob + Front Door settings of an `azure` site.
    pub azure: Option<edgeship_providers::azure::AzureSettings>,
    /// The most provider calls a deploy of the site makes at once (the ceiling of its
    /// adaptive upload limit); providers with connection pools size them to it.
    pub connections: usize,
}
