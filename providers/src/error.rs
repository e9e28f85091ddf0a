//! Provider errors, classified by what a caller should do about them.

use std::time::Duration;

/// An error from a provider operation.
///
/// Providers map their SDK or HTTP errors into these variants once (a `classify`
/// function per provider), so callers match on meaning: only [`Self::Retryable`] and
/// [`Self::Throttled`] are worth retrying.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProviderError {
    /// The object does not exist.
    #[error("{provider}: no object at `{key}`")]
    NotFound {
        /// The provider's display name.
        provider: String,
        /// The key that was asked for.
        key: String,
    },
    /// Credentials are missing or wrong. Fatal; the message says which credential.
    #[error("{provider}: authentication failed: {message}")]
    Unauthenticated {
        /// The provider's display name.
        provider: String,
        /// Which credential is missing or wrong, and which setting to check.
        message: String,
    },
    /// Credentials are valid but not allowed to do this. Fatal.
    #[error("{provider}: permission denied: {message}")]
    PermissionDenied {
        /// The provider's display name.
        provider: String,
        /// What was denied.
        message: String,
    },
    /// The provider asks us to slow down (HTTP 429, S3 SlowDown). Retried after
    /// `retry_after` when given.
    #[error("{provider}: throttled{}", retry_after.map(|d| format!(" (retry after {} ms)", d.as_millis())).unwrap_or_default())]
    Throttled {
        /// The provider's display name.
        provider: String,
        /// How long the provider asked us to wait.
        retry_after: Option<Duration>,
    },
    /// A transient failure (5xx, timeout, connection reset). Retried.
    #[error("{provider}: temporary failure: {message}")]
    Retryable {
        /// The provider's display name.
        provider: String,
        /// What failed.
        message: String,
    },
    /// The provider's settings point at something that does not exist or cannot be used
    /// (no such bucket or distribution, a bucket in another region). Fatal for the whole
    /// provider: every call would fail the same way, so a deploy stops at the first one.
    #[error("{provider}: misconfigured: {message}")]
    Misconfigured {
        /// The provider's display name.
        provider: String,
        /// What is wrong and which setting to check.
        message: String,
    },
    /// The request is invalid (bad key, too large, rejected parameters). Fatal.
    #[error("{provider}: invalid request: {message}")]
    Invalid {
        /// The provider's display name.
        provider: String,
        /// What is wrong.
        message: String,
    },
    /// The provider cannot do this operation at all (see its capabilities).
    #[error("{provider}: `{operation}` is not supported")]
    NotSupported {
        /// The provider's display name.
        provider: String,
        /// The operation.
        operation: &'static str,
    },
    /// The circuit breaker is open: the provider failed too often in a row, so calls fail
    /// fast instead of piling up.
    #[error("{provider}: unavailable: {failures} of the last {window} calls failed (last: {last_error}); not calling it for {} s", cooldown.as_secs())]
    CircuitOpen {
        /// The provider's display name.
        provider: String,
        /// Transient failures among the recent calls.
        failures: u32,
        /// How many recent calls were considered.
        window: u32,
        /// The last failure seen.
        last_error: String,
        /// How long the breaker stays open.
        cooldown: Duration,
    },
    /// Retrying did not help: every attempt failed transiently.
    #[error("{provider}: gave up after {attempts} attempts over {} ms: {}", elapsed.as_millis(), source.detail())]
    RetriesExhausted {
        /// The provider's display name.
        provider: String,
        /// Attempts made.
        attempts: u32,
        /// Time from the first attempt to giving up.
        elapsed: Duration,
        /// The last error.
        source: Box<Self>,
    },
    /// An operation the provider accepted and ran on its side ended in failure (a Front
    /// Door purge whose long-running operation reports `Failed`). Not retried: the
    /// message says what the provider reported.
    #[error("{provider}: {operation} failed: {message}")]
    OperationFailed {
        /// The provider's display name.
        provider: String,
        /// What ran (`purge`).
        operation: &'static str,
        /// What the provider reported.
        message: String,
    },
    /// Anything else, with its source.
    #[error("{provider}: {source}")]
    Generic {
        /// The provider's display name.
        provider: String,
        /// The underlying error.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl ProviderError {
    /// The display name of the provider the error is from.
    pub fn provider(&self) -> &str {
        match self {
            Self::NotFound { provider, .. }
            | Self::Unauthenticated { provider, .. }
            | Self::PermissionDenied { provider, .. }
            | Self::Throttled { provider, .. }
            | Self::Retryable { provider, .. }
            | Self::Misconfigured { provider, .. }
            | Self::Invalid { provider, .. }
            | Self::NotSupported { provider, .. }
            | Self::CircuitOpen { provider, .. }
            | Self::RetriesExhausted { provider, .. }
            | Self::OperationFailed { provider, .. }
            | Self::Generic { provider, .. } => provider,
        }
    }

    /// The message without the provider's name in front, for messages that name it
    /// already (a retry giving up, an open breaker's last error).
    pub fn detail(&self) -> String {
        let text = self.to_string();
        match text.strip_prefix(self.provider()) {
            Some(rest) => rest.trim_start_matches(": ").to_string(),
            None => text,
        }
    }

    /// Whether retrying the same call may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Retryable { .. } | Self::Throttled { .. })
    }

    /// Whether this error means the whole provider is unusable right now (bad
    /// credentials, no permission, a missing bucket, breaker open): a deploy stops at the first one instead
    /// of failing every file the same way.
    pub fn is_fatal_for_provider(&self) -> bool {
        matches!(
            self,
            Self::Unauthenticated { .. }
                | Self::PermissionDenied { .. }
                | Self::Misconfigured { .. }
                | Self::CircuitOpen { .. }
        )
    }

    /// The wait the provider asked for, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Throttled { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// A short class name for metrics labels.
    pub fn class(&self) -> &'static str {
        match self {
            Self::NotFound { .. } => "not_found",
            Self::Unauthenticated { .. } => "auth",
            Self::PermissionDenied { .. } => "permission",
            Self::Throttled { .. } => "throttled",
            Self::Retryable { .. } => "retryable",
            Self::Misconfigured { .. } => "misconfigured",
            Self::Invalid { .. } => "invalid",
            Self::NotSupported { .. } => "not_supported",
            Self::OperationFailed { .. } => "failed",
            Self::CircuitOpen { .. } => "circuit_open",
            Self::RetriesExhausted { source, .. } => source.class(),
            Self::Generic { .. } => "other",
        }
    }

    /// Wraps an I/O error, classifying the obviously transient kinds as retryable.
    pub fn from_io(provider: &str, key: &str, err: std::io::Error) -> Self {
        use std::io::ErrorKind as K;
        let provider = provider.to_string();
        match err.kind() {
            K::NotFound => Self::NotFound {
                provider,
                key: key.to_string(),
            },
            K::PermissionDenied => Self::PermissionDenied {
                provider,
                message: format!("{key}: {err}"),
            },
            K::TimedOut
            | K::Interrupted
            | K::WouldBlock
            | K::ConnectionReset
            | K::ConnectionAborted => Self::Retryable {
                provider,
                message: format!("{key}: {err}"),
            },
            _ => Self::Generic {
                provider,
                source: Box::new(err),
            },
        }
    }
}

/// Result alias for provider operations.
pub type Result<T, E = ProviderError> = std::result::Result<T, E>;

/// A provider setting (`[sites.NAME.<provider>]`, `[sites.NAME.faults]`) that is missing
/// or out of range, found before any request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct SettingError {
    /// The field, as named in the config file.
    pub field: &'static str,
    /// What is wrong with it.
    pub message: String,
}

impl SettingError {
    /// `field` is wrong because of `message`.
    pub fn new(field: &'static str, message: impl Into<String>) -> Self {
        Self {
            field,
            message: message.into(),
        }
    }
}

/// A key or request a provider would refuse, found before anything is sent: what is
/// wrong, for people. Providers turn it into [`ProviderError::Invalid`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Rejected(String);

impl Rejected {
    /// Refused because of `reason`.
    pub fn new(reason: impl Into<String>) -> Self {
        Self(reason.into())
    }

    /// The reason.
    pub fn reason(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn giving_up_names_the_provider_once() {
        let err = ProviderError::RetriesExhausted {
            provider: "aws:s3://assets/".into(),
            attempts: 5,
            elapsed: Duration::from_millis(4200),
            source: Box::new(ProviderError::Retryable {
                provider: "aws:s3://assets/".into(),
                message: "connection reset".into(),
            }),
        };
        assert_eq!(
            err.to_string(),
            "aws:s3://assets/: gave up after 5 attempts over 4200 ms: temporary failure: connection reset"
        );
        assert_eq!(err.provider(), "aws:s3://assets/");
        assert!(err.detail().starts_with("gave up after 5 attempts"));
    }
}
