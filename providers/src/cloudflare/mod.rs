//! `cloudflare`: R2 for storage (through its S3-compatible API), the zone's cache purge
//! API for purges.
//!
//! - [`CloudflareSettings`] is the `[sites.NAME.cloudflare]` table: plain data, so
//!   configuration parses (and says "not available in this build") without the
//!   `cloudflare` cargo feature.
//! - `CloudflareProvider` (feature `cloudflare`) stores objects with the `aws`
//!   provider's S3 implementation pointed at `https://<account_id>.r2.cloudflarestorage.com`
//!   (region `auto`; R2 access keys from the standard `AWS_ACCESS_KEY_ID` /
//!   `AWS_SECRET_ACCESS_KEY` chain), and purges with one pooled HTTPS client per site
//!   against `POST /client/v4/zones/{zone_id}/purge_cache`.
//!
//! Purge limits (<https://developers.cloudflare.com/cache/how-to/purge-cache/>, 2026):
//! every plan may purge by URL, prefix, tag, hostname and everything; a call carries at
//! most 100 URLs (500 on Enterprise) or 100 prefixes / tags / hosts. Rates are per
//! account, as token buckets: URLs 800/s (Free), 1,500/s (Pro, Business), 3,000/s
//! (Enterprise); other purges 5 a minute with a bucket of 25 (Free), 5/s and 25 (Pro),
//! 10/s and 50 (Business), 50/s and 500 (Enterprise). Every limit can also be set on its
//! own.

#[cfg(feature = "cloudflare")]
mod api;
#[cfg(feature = "cloudflare")]
mod provider;
#[cfg(all(feature = "cloudflare", feature = "test-util"))]
pub mod testing;

#[cfg(feature = "cloudflare")]
pub use provider::CloudflareProvider;
/// The API token's type ([`CloudflareProvider::with_token`]).
#[cfg(feature = "cloudflare")]
pub use secrecy::SecretString;

use serde::{Deserialize, Serialize};

use crate::error::SettingError;
use crate::provider::validate_key;

/// The Cloudflare API's base URL.
pub const API_BASE: &str = "https://api.cloudflare.com";

/// The environment variable holding the API token, unless `token_env` names another.
pub const TOKEN_ENV: &str = "CLOUDFLARE_API_TOKEN";

/// A Cloudflare plan: it sets the purge limits (each also settable on its own).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Plan {
    /// Free.
    #[default]
    Free,
    /// Pro.
    Pro,
    /// Business.
    Business,
    /// Enterprise.
    Enterprise,
}

/// The purge limits in force for a site: its plan's, with any set on their own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PurgeLimits {
    /// Most URLs in one call.
    pub urls_per_call: usize,
    /// Most prefixes, tags or hosts in one call.
    pub operations_per_call: usize,
    /// URLs purged per second, per account.
    pub urls_per_second: u32,
    /// Prefix, tag, host and everything purges per minute, per account.
    pub operations_per_minute: u32,
    /// How many of those may go at once before the rate applies.
    pub operation_burst: u32,
}

impl Plan {
    /// The plan's documented limits.
    pub fn limits(self) -> PurgeLimits {
        let (urls_per_call, urls_per_second, operations_per_minute, operation_burst) = match self {
            Self::Free => (100, 800, 5, 25),
            Self::Pro => (100, 1_500, 5 * 60, 25),
            Self::Business => (100, 1_500, 10 * 60, 50),
            Self::Enterprise => (500, 3_000, 50 * 60, 500),
        };
        PurgeLimits {
            urls_per_call,
            operations_per_call: 100,
            urls_per_second,
            operations_per_minute,
            operation_burst,
        }
    }
}

/// The `[sites.NAME.cloudflare]` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CloudflareSettings {
    /// The account id (32 hex digits; dashboard → account home → "Account ID").
    pub account_id: String,
    /// The R2 bucket (required).
    pub bucket: String,
    /// The zone whose cache is purged (32 hex digits; the zone's overview page).
    pub zone_id: String,
    /// The site's public hostnames (`www.example.com`): purge URLs and prefixes are built
    /// for each. At least one.
    pub hosts: Vec<String>,
    /// A key prefix inside the bucket (`"www/"`). Default: none.
    pub prefix: String,
    /// The S3 endpoint (tests). Default `https://<account_id>.r2.cloudflarestorage.com`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// The API's base URL (tests). Default `https://api.cloudflare.com`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_base: Option<String>,
    /// The zone's plan; it sets the limits below. Default `free` (the strictest).
    pub plan: Plan,
    /// The environment variable holding the API token. Default `CLOUDFLARE_API_TOKEN`.
    pub token_env: String,
    /// Most URLs in one purge call. Default: the plan's (100; 500 on Enterprise).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_urls_per_call: Option<usize>,
    /// Most prefixes, tags or hosts in one purge call. Default 100.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_operations_per_call: Option<usize>,
    /// URL purges per second for the account. Default: the plan's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub urls_per_second: Option<u32>,
    /// Other purges per minute for the account. Default: the plan's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operations_per_minute: Option<u32>,
    /// Other purges allowed at once before the rate applies. Default: the plan's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operation_burst: Option<u32>,
    /// Bodies at least this large are uploaded in parts. Default 16 MiB.
    pub multipart_threshold: u64,
    /// Longest wait for a connection, in milliseconds. Default 5 s.
    pub connect_timeout_ms: u64,
    /// Longest wait for a response, in milliseconds. Default 60 s.
    pub read_timeout_ms: u64,
}

impl Default for CloudflareSettings {
    fn default() -> Self {
        Self {
            account_id: String::new(),
            bucket: String::new(),
            zone_id: String::new(),
            hosts: Vec::new(),
            prefix: String::new(),
            endpoint: None,
            api_base: None,
            plan: Plan::Free,
            token_env: TOKEN_ENV.into(),
            max_urls_per_call: None,
            max_operations_per_call: None,
            urls_per_second: None,
            operations_per_minute: None,
            operation_burst: None,
            multipart_threshold: 16 * 1024 * 1024,
            connect_timeout_ms: 5_000,
            read_timeout_ms: 60_000,
        }
    }
}

fn is_cloudflare_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

fn is_hostname(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

impl CloudflareSettings {
    /// The limits in force: the plan's, with those set on their own.
    pub fn limits(&self) -> PurgeLimits {
        let plan = self.plan.limits();
        PurgeLimits {
            urls_per_call: self.max_urls_per_call.unwrap_or(plan.urls_per_call),
            operations_per_call: self
                .max_operations_per_call
                .unwrap_or(plan.operations_per_call),
            urls_per_second: self.urls_per_second.unwrap_or(plan.urls_per_second),
            operations_per_minute: self
                .operations_per_minute
                .unwrap_or(plan.operations_per_minute),
            operation_burst: self.operation_burst.unwrap_or(plan.operation_burst),
        }
    }

    /// The R2 S3 endpoint.
    pub fn s3_endpoint(&self) -> String {
        self.endpoint
            .clone()
            .unwrap_or_else(|| format!("https://{}.r2.cloudflarestorage.com", self.account_id))
    }

    /// The API base URL, without a trailing `/`.
    pub fn api_base(&self) -> String {
        self.api_base
            .as_deref()
            .unwrap_or(API_BASE)
            .trim_end_matches('/')
            .to_string()
    }

    /// The key prefix, normalised to end in `/` (or empty).
    pub fn key_prefix(&self) -> String {
        let trimmed = self.prefix.trim_matches('/');
        if trimmed.is_empty() {
            String::new()
        } else {
            format!("{trimmed}/")
        }
    }

    /// Checks the settings before any request; the error names the field.
    pub fn validate(&self) -> Result<(), SettingError> {
        if !is_cloudflare_id(&self.account_id) {
            return Err(SettingError::new(
                "account_id",
                format!(
                    "`{}` is not a Cloudflare account id (32 hex digits, on the account's home page)",
                    self.account_id.escape_debug()
                ),
            ));
        }
        if !is_cloudflare_id(&self.zone_id) {
            return Err(SettingError::new(
                "zone_id",
                format!(
                    "`{}` is not a Cloudflare zone id (32 hex digits, on the zone's overview page)",
                    self.zone_id.escape_debug()
                ),
            ));
        }
        let bucket_ok = (3..=63).contains(&self.bucket.len())
            && self
                .bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !self.bucket.starts_with('-')
            && !self.bucket.ends_with('-');
        if !bucket_ok {
            return Err(SettingError::new(
                "bucket",
                format!(
                    "`{}` is not an R2 bucket name (3–63 lowercase letters, digits and `-`)",
                    self.bucket.escape_debug()
                ),
            ));
        }
        if self.hosts.is_empty() {
            return Err(SettingError::new(
                "hosts",
                "is required: the site's public hostnames (like [\"www.example.com\"]), used to build purge URLs",
            ));
        }
        if let Some(host) = self.hosts.iter().find(|host| !is_hostname(host)) {
            return Err(SettingError::new(
                "hosts",
                format!(
                    "`{}` is not a hostname (no scheme, port or path: `www.example.com`)",
                    host.escape_debug()
                ),
            ));
        }
        if !self.prefix.trim_matches('/').is_empty() {
            validate_key(self.prefix.trim_matches('/')).map_err(|reason| {
                SettingError::new("prefix", format!("is not a key prefix: {reason}"))
            })?;
        }
        for (field, url) in [("endpoint", &self.endpoint), ("api_base", &self.api_base)] {
            if let Some(url) = url
                && !(url.starts_with("http://") || url.starts_with("https://"))
            {
                return Err(SettingError::new(
                    field,
                    format!("`{url}` is not an http:// or https:// URL"),
                ));
            }
        }
        if self.token_env.is_empty()
            || !self
                .token_env
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            return Err(SettingError::new(
                "token_env",
                format!(
                    "`{}` is not an environment variable name",
                    self.token_env.escape_debug()
                ),
            ));
        }
        let limits = self.limits();
        for (field, value) in [
            ("max_urls_per_call", limits.urls_per_call as u64),
            ("max_operations_per_call", limits.operations_per_call as u64),
            ("urls_per_second", u64::from(limits.urls_per_second)),
            (
                "operations_per_minute",
                u64::from(limits.operations_per_minute),
            ),
            ("operation_burst", u64::from(limits.operation_burst)),
            ("connect_timeout_ms", self.connect_timeout_ms),
            ("read_timeout_ms", self.read_timeout_ms),
        ] {
            if value == 0 {
                return Err(SettingError::new(field, "must be more than 0"));
            }
        }
        if limits.urls_per_call < self.hosts.len() || limits.operations_per_call < self.hosts.len()
        {
            return Err(SettingError::new(
                "hosts",
                format!(
                    "{} hosts do not fit one purge call ({} URLs / {} operations per call)",
                    self.hosts.len(),
                    limits.urls_per_call,
                    limits.operations_per_call
                ),
            ));
        }
        if self.multipart_threshold < crate::aws::MIN_PART_SIZE {
            return Err(SettingError::new(
                "multipart_threshold",
                format!(
                    "{} bytes is below the smallest part ({} bytes)",
                    self.multipart_threshold,
                    crate::aws::MIN_PART_SIZE
                ),
            ));
        }
        Ok(())
    }

    /// The S3 settings R2 storage uses: the same implementation as the `aws` provider.
    pub fn storage(&self) -> crate::aws::AwsSettings {
        crate::aws::AwsSettings {
            bucket: self.bucket.clone(),
            region: Some("auto".into()),
            prefix: self.prefix.clone(),
            endpoint: Some(self.s3_endpoint()),
            force_path_style: true,
            multipart_threshold: self.multipart_threshold,
            connect_timeout_ms: self.connect_timeout_ms,
            read_timeout_ms: self.read_timeout_ms,
            ..crate::aws::AwsSettings::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid() -> CloudflareSettings {
        CloudflareSettings {
            account_id: "0123456789abcdef0123456789abcdef".into(),
            zone_id: "fedcba9876543210fedcba9876543210".into(),
            bucket: "assets".into(),
            hosts: vec!["www.example.com".into()],
            ..CloudflareSettings::default()
        }
    }

    #[test]
    fn settings_are_checked_field_by_field() {
        valid().validate().unwrap();
        let cases: Vec<(CloudflareSettings, &str)> = vec![
            (
                CloudflareSettings {
                    account_id: "abc".into(),
                    ..valid()
                },
                "account_id",
            ),
            (
                CloudflareSettings {
                    zone_id: "".into(),
                    ..valid()
                },
                "zone_id",
            ),
            (
                CloudflareSettings {
                    bucket: "Assets".into(),
                    ..valid()
                },
                "bucket",
            ),
            (
                CloudflareSettings {
                    hosts: vec![],
                    ..valid()
                },
                "hosts",
            ),
            (
                CloudflareSettings {
                    hosts: vec!["https://www.example.com".into()],
                    ..valid()
                },
                "hosts",
            ),
            (
                CloudflareSettings {
                    prefix: "a/../b".into(),
                    ..valid()
                },
                "prefix",
            ),
            (
                CloudflareSettings {
                    api_base: Some("ftp://x".into()),
                    ..valid()
                },
                "api_base",
            ),
            (
                CloudflareSettings {
                    token_env: "MY-TOKEN".into(),
                    ..valid()
                },
                "token_env",
            ),
            (
                CloudflareSettings {
                    max_urls_per_call: Some(0),
                    ..valid()
                },
                "max_urls_per_call",
            ),
        ];
        for (settings, field) in cases {
            assert_eq!(
                settings.validate().unwrap_err().field,
                field,
                "{settings:?}"
            );
        }
    }

    #[test]
    fn plans_set_limits_and_each_limit_can_be_set_alone() {
        assert_eq!(Plan::Free.limits().urls_per_call, 100);
        assert_eq!(Plan::Enterprise.limits().urls_per_call, 500);
        assert_eq!(Plan::Free.limits().operations_per_minute, 5);
        assert_eq!(Plan::Business.limits().operations_per_minute, 600);
        let custom = CloudflareSettings {
            plan: Plan::Enterprise,
            max_urls_per_call: Some(50),
            ..valid()
        };
        assert_eq!(custom.limits().urls_per_call, 50);
        assert_eq!(custom.limits().operation_burst, 500);
        let storage = valid().storage();
        assert_eq!(
            storage.endpoint.as_deref(),
            Some("https://0123456789abcdef0123456789abcdef.r2.cloudflarestorage.com")
        );
        assert_eq!(storage.region.as_deref(), Some("auto"));
    }
}
