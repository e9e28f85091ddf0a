//! `aws`: Amazon S3 for storage, CloudFront for purges.
//!
//! - [`AwsSettings`] is the `[sites.NAME.aws]` table. It is plain data with no SDK types,
//!   so configuration parses (and says "not available in this build") without the `aws`
//!   cargo feature.
//! - `AwsProvider` (feature `aws`) implements [`crate::Provider`] with `aws-sdk-s3` and
//!   `aws-sdk-cloudfront`: one HTTP client per site whose connection pool is sized to the
//!   upload concurrency, bodies streamed from files, multipart uploads with parallel parts
//!   above a threshold, `DeleteObjects` in batches of 1,000, `ListObjectsV2` pages, and
//!   CloudFront invalidations whose caller reference is the purge job's.
//! - Every SDK error goes through one `classify` function into the shared
//!   [`crate::ProviderError`] variants; messages name the bucket (or distribution), the
//!   region and the setting to check.
//!
//! The SDK's own retries are off: the [`crate::retry::Retry`] wrapper is the only retry
//! layer, so a failing call is never retried 3 × 5 times.

#[cfg(feature = "aws")]
mod classify;
#[cfg(feature = "aws")]
pub mod cloudfront;
#[cfg(feature = "aws")]
mod provider;
#[cfg(feature = "aws")]
mod s3;
#[cfg(all(feature = "aws", feature = "test-util"))]
pub mod testing;

#[cfg(feature = "aws")]
pub use provider::{AwsProvider, InvalidationSummary};

/// The AWS SDK crates this provider is built on, for callers that set up buckets and
/// distributions (tests, tools) with the same versions.
#[cfg(feature = "aws")]
pub mod sdk {
    pub use aws_config;
    pub use aws_sdk_cloudfront;
    pub use aws_sdk_s3;
}

use serde::{Deserialize, Serialize};

use crate::error::SettingError;
use crate::provider::validate_key;

/// S3 rejects parts below 5 MiB (except the last); multipart thresholds below it make no
/// sense either. <https://docs.aws.amazon.com/AmazonS3/latest/userguide/qfacts.html>
pub const MIN_PART_SIZE: u64 = 5 * 1024 * 1024;

/// S3's largest part, 5 GiB (same source).
pub const MAX_PART_SIZE: u64 = 5 * 1024 * 1024 * 1024;

/// S3's most parts in one multipart upload (same source); larger objects get larger parts.
pub const MAX_PARTS: u64 = 10_000;

/// The `[sites.NAME.aws]` table: where a site's objects go and which CloudFront
/// distribution serves them. Credentials are not here: they come from the standard AWS
/// chain (environment, shared config/credentials files and `profile`, SSO, web identity,
/// ECS and EC2 instance roles).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AwsSettings {
    /// The S3 bucket (required).
    pub bucket: String,
    /// The bucket's region. Default: the chain's (`AWS_REGION`, the profile's `region`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// A key prefix inside the bucket (`"www/"`), so several sites can share one bucket.
    /// Default: none.
    pub prefix: String,
    /// An S3 endpoint URL for S3-compatible stores (MinIO, Ceph, R2, moto). Default: AWS's
    /// own, or `AWS_ENDPOINT_URL_S3` / `AWS_ENDPOINT_URL` when set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Path-style requests (`https://host/bucket/key`), which most S3-compatible stores
    /// need. Default false: virtual-hosted style, as AWS prefers.
    pub force_path_style: bool,
    /// A CloudFront endpoint URL (tests against an emulator). Default: AWS's own, or
    /// `AWS_ENDPOINT_URL_CLOUDFRONT` / `AWS_ENDPOINT_URL`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cloudfront_endpoint: Option<String>,
    /// The named profile of the shared AWS config files. Default: `AWS_PROFILE`, else
    /// `default`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// The CloudFront distribution in front of the bucket. Without one, purges are no-ops.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub distribution_id: Option<String>,
    /// Bodies at least this large are uploaded in parts. Default 16 MiB: below it one
    /// request is cheaper than three; above it parts upload in parallel and a failed part
    /// is retried alone.
    pub multipart_threshold: u64,
    /// Size of each part. Default 8 MiB (S3's minimum is 5 MiB; objects that would need
    /// more than 10,000 parts get larger ones).
    pub part_size: u64,
    /// Parts of one object uploaded at once. Default 4.
    pub part_concurrency: usize,
    /// Longest wait for a TCP (and TLS) connection, in milliseconds. Default 5 s.
    pub connect_timeout_ms: u64,
    /// Longest wait from sending a request until its response starts, in milliseconds;
    /// it includes sending the body, so it must cover one part or one object below the
    /// multipart threshold. Default 60 s.
    pub read_timeout_ms: u64,
}

impl Default for AwsSettings {
    fn default() -> Self {
        Self {
            bucket: String::new(),
            region: None,
            prefix: String::new(),
            endpoint: None,
            force_path_style: false,
            cloudfront_endpoint: None,
            profile: None,
            distribution_id: None,
            multipart_threshold: 16 * 1024 * 1024,
            part_size: 8 * 1024 * 1024,
            part_concurrency: 4,
            connect_timeout_ms: 5_000,
            read_timeout_ms: 60_000,
        }
    }
}

impl AwsSettings {
    /// Settings for `bucket` with every other value at its default.
    pub fn for_bucket(bucket: impl Into<String>) -> Self {
        Self {
            bucket: bucket.into(),
            ..Self::default()
        }
    }

    /// Checks the settings before any request; on error, the field's name (as in the
    /// config file) and what is wrong.
    pub fn validate(&self) -> Result<(), SettingError> {
        if self.bucket.is_empty() {
            return Err(SettingError::new(
                "bucket",
                "is required: the S3 bucket the site is deployed to",
            ));
        }
        if self.bucket.len() > 255
            || !self
                .bucket
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
        {
            return Err(SettingError::new(
                "bucket",
                format!(
                    "`{}` is not a bucket name (letters, digits, `.`, `-` and `_` only)",
                    self.bucket.escape_debug()
                ),
            ));
        }
        if let Some(region) = &self.region
            && (region.is_empty()
                || !region
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-'))
        {
            return Err(SettingError::new(
                "region",
                format!("`{}` is not a region name", region.escape_debug()),
            ));
        }
        if !self.prefix.is_empty() {
            validate_key(self.prefix.trim_end_matches('/')).map_err(|reason| {
                SettingError::new("prefix", format!("is not a key prefix: {reason}"))
            })?;
        }
        for (field, url) in [
            ("endpoint", &self.endpoint),
            ("cloudfront_endpoint", &self.cloudfront_endpoint),
        ] {
            if let Some(url) = url
                && !(url.starts_with("http://") || url.starts_with("https://"))
            {
                return Err(SettingError::new(
                    field,
                    format!("`{url}` is not an http:// or https:// URL"),
                ));
            }
        }
        if let Some(id) = &self.distribution_id
            && (id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric()))
        {
            return Err(SettingError::new(
                "distribution_id",
                format!(
                    "`{}` is not a CloudFront distribution id (like E2QWRUHAPOMQZL)",
                    id.escape_debug()
                ),
            ));
        }
        if self.multipart_threshold < MIN_PART_SIZE {
            return Err(SettingError::new(
                "multipart_threshold",
                format!(
                    "{} bytes is below S3's smallest part ({MIN_PART_SIZE} bytes)",
                    self.multipart_threshold
                ),
            ));
        }
        if !(MIN_PART_SIZE..=MAX_PART_SIZE).contains(&self.part_size) {
            return Err(SettingError::new(
                "part_size",
                format!(
                    "{} bytes is not in {MIN_PART_SIZE}..={MAX_PART_SIZE} (S3's part sizes)",
                    self.part_size
                ),
            ));
        }
        if !(1..=64).contains(&self.part_concurrency) {
            return Err(SettingError::new(
                "part_concurrency",
                format!("{} is not in 1..=64", self.part_concurrency),
            ));
        }
        for (field, ms) in [
            ("connect_timeout_ms", self.connect_timeout_ms),
            ("read_timeout_ms", self.read_timeout_ms),
        ] {
            if ms == 0 {
                return Err(SettingError::new(field, "must be more than 0"));
            }
        }
        Ok(())
    }

    /// The key prefix as stored: empty, or ending in exactly one `/`.
    pub fn key_prefix(&self) -> String {
        let trimmed = self.prefix.trim_end_matches('/');
        if trimmed.is_empty() {
            String::new()
        } else {
            format!("{trimmed}/")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_bucket_and_bad_values_name_their_field() {
        let cases = [
            (AwsSettings::default(), "bucket", "is required"),
            (
                AwsSettings::for_bucket("a b"),
                "bucket",
                "not a bucket name",
            ),
            (
                AwsSettings {
                    prefix: "/www".into(),
                    ..AwsSettings::for_bucket("b")
                },
                "prefix",
                "starts with `/`",
            ),
            (
                AwsSettings {
                    endpoint: Some("localhost:9000".into()),
                    ..AwsSettings::for_bucket("b")
                },
                "endpoint",
                "not an http",
            ),
            (
                AwsSettings {
                    part_size: 1024,
                    ..AwsSettings::for_bucket("b")
                },
                "part_size",
                "5242880",
            ),
            (
                AwsSettings {
                    multipart_threshold: 1,
                    ..AwsSettings::for_bucket("b")
                },
                "multipart_threshold",
                "smallest part",
            ),
            (
                AwsSettings {
                    distribution_id: Some("E2/../x".into()),
                    ..AwsSettings::for_bucket("b")
                },
                "distribution_id",
                "not a CloudFront distribution id",
            ),
        ];
        for (settings, field, reason) in cases {
            let SettingError {
                field: got_field,
                message,
            } = settings.validate().unwrap_err();
            assert_eq!(got_field, field, "{message}");
            assert!(message.contains(reason), "{field}: {message}");
        }
        assert!(
            AwsSettings::for_bucket("assets.example.com")
                .validate()
                .is_ok()
        );
    }

    #[test]
    fn the_key_prefix_ends_with_one_slash() {
        let with = |prefix: &str| AwsSettings {
            prefix: prefix.into(),
            ..AwsSettings::for_bucket("b")
        };
        assert_eq!(with("").key_prefix(), "");
        assert_eq!(with("www").key_prefix(), "www/");
        assert_eq!(with("sites/www//").key_prefix(), "sites/www/");
    }
}
