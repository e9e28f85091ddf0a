//! One place deciding what an AWS error means: [`failure_of`] reduces an SDK error to a
//! [`Failure`] (what happened on the wire), [`classify`] turns that into a
//! [`ProviderError`] (what a caller should do), with a message naming the bucket or
//! distribution, the region and the setting to check.
//!
//! Error codes and statuses: S3 <https://docs.aws.amazon.com/AmazonS3/latest/API/ErrorResponses.html>,
//! CloudFront <https://docs.aws.amazon.com/cloudfront/latest/APIReference/CommonErrors.html>
//! and the CreateInvalidation errors
//! <https://docs.aws.amazon.com/cloudfront/latest/APIReference/API_CreateInvalidation.html>.

use std::error::Error as StdError;
use std::time::Duration;

use aws_credential_types::provider::error::CredentialsError;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::retry::ErrorKind;

use crate::error::ProviderError;

/// CloudFront answers `TooManyInvalidationsInProgress` (a 400, without Retry-After) while
/// a distribution has 3,000 paths or 15 wildcards in flight; invalidations usually finish
/// within a minute, so the retry layer waits this long and tries again instead of failing.
pub(crate) const INVALIDATIONS_IN_PROGRESS_WAIT: Duration = Duration::from_secs(10);

/// What went wrong with one request, before deciding what it means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Failure {
    /// The service answered with an error.
    Service {
        /// HTTP status (`None` for per-key errors inside a `DeleteObjects` answer).
        status: Option<u16>,
        /// The AWS error code (`NoSuchBucket`); HEAD answers carry none.
        code: Option<String>,
        /// The service's message.
        message: Option<String>,
        /// A `Retry-After` the service sent.
        retry_after: Option<Duration>,
    },
    /// No answer in time (connect or read timeout).
    Timeout(String),
    /// The request could not be sent or its answer not read (refused, reset, TLS, a
    /// truncated body).
    Transport(String),
    /// No usable credentials from the chain.
    Credentials(String),
    /// The request could not be built (a bad setting or value).
    Request(String),
}

/// Reduces an SDK error to what happened.
pub(crate) fn failure_of<E>(err: &SdkError<E, HttpResponse>) -> Failure
where
    E: ProvideErrorMetadata + StdError + 'static,
{
    if let Some(credentials) = credentials_error(err) {
        return Failure::Credentials(DisplayErrorContext(credentials).to_string());
    }
    let detail = || chain(err);
    match err {
        SdkError::ServiceError(service) => {
            let raw = service.raw();
            let retry_after = raw
                .headers()
                .get("retry-after")
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            Failure::Service {
                status: Some(raw.status().as_u16()),
                code: service
                    .err()
                    .code()
                    .filter(|c| !c.is_empty())
                    .map(str::to_owned),
                message: service.err().message().map(str::to_owned),
                retry_after,
            }
        }
        SdkError::TimeoutError(_) => Failure::Timeout(detail()),
        SdkError::DispatchFailure(dispatch) if dispatch.is_timeout() => Failure::Timeout(detail()),
        SdkError::DispatchFailure(dispatch) if dispatch.is_user() => Failure::Request(detail()),
        SdkError::DispatchFailure(dispatch)
            if dispatch.is_io()
                || matches!(
                    dispatch.as_other(),
                    Some(ErrorKind::TransientError | ErrorKind::ServerError)
                ) =>
        {
            Failure::Transport(detail())
        }
        SdkError::DispatchFailure(dispatch)
            if dispatch.as_other() == Some(ErrorKind::ThrottlingError) =>
        {
            Failure::Service {
                status: Some(429),
                code: None,
                message: Some(detail()),
                retry_after: None,
            }
        }
        SdkError::ResponseError(_) => Failure::Transport(detail()),
        _ => Failure::Request(detail()),
    }
}

/// `err` and its sources, each message once, joined by `: `. `DisplayErrorContext`
/// says the same and then the whole error again as `Debug` (`(DispatchFailure(…
/// ConnectorError { kind: Io, … }))`), which buried the cause of a network failure.
pub(crate) fn chain(err: &(dyn StdError + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut current = Some(err);
    while let Some(e) = current {
        let text = e.to_string();
        if !parts.last().is_some_and(|last| last.contains(&text)) {
            parts.push(text);
        }
        current = e.source();
    }
    parts.join(": ")
}

/// The credentials error somewhere in `err`'s source chain, if any: the SDK reports a
/// failed credential lookup as a dispatch failure wrapping it.
fn credentials_error<'a>(err: &'a (dyn StdError + 'static)) -> Option<&'a CredentialsError> {
    let mut current: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(e) = current {
        if let Some(found) = e.downcast_ref::<CredentialsError>() {
            return Some(found);
        }
        current = e.source();
    }
    None
}

/// Who made a request, for messages: the provider's name, the site (setting names are
/// `sites.<site>.aws.*`), the bucket and region, and the distribution.
#[derive(Debug, Clone)]
pub(crate) struct Context {
    /// The provider's display name.
    pub(crate) provider: String,
    /// The site name.
    pub(crate) site: String,
    /// The site's settings table (`aws`, or `cloudflare` for R2), for messages.
    pub(crate) table: &'static str,
    /// The bucket.
    pub(crate) bucket: String,
    /// The region in use (`?` before it is known).
    pub(crate) region: String,
    /// The CloudFront distribution, if any.
    pub(crate) distribution: Option<String>,
}

/// The operation that failed, for messages and the IAM action it needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Operation {
    /// PutObject and the multipart calls.
    Put,
    /// HeadObject.
    Head,
    /// GetObject.
    Get,
    /// ListObjectsV2.
    List,
    /// DeleteObjects.
    Delete,
    /// CreateInvalidation.
    Invalidate,
    /// GetInvalidation.
    InvalidationStatus,
    /// ListInvalidations.
    ListInvalidations,
}

impl Operation {
    /// The IAM action the operation needs.
    fn action(self) -> &'static str {
        match self {
            Self::Put => "s3:PutObject",
            Self::Head | Self::Get => "s3:GetObject",
            Self::List => "s3:ListBucket",
            Self::Delete => "s3:DeleteObject",
            Self::Invalidate => "cloudfront:CreateInvalidation",
            Self::InvalidationStatus => "cloudfront:GetInvalidation",
            Self::ListInvalidations => "cloudfront:ListInvalidations",
        }
    }

    fn is_cloudfront(self) -> bool {
        matches!(
            self,
            Self::Invalidate | Self::InvalidationStatus | Self::ListInvalidations
        )
    }
}

/// What an error means. `target` is the object key (or invalidation id) the call was
/// about, so a 404 on it is [`ProviderError::NotFound`].
pub(crate) fn classify(
    ctx: &Context,
    operation: Operation,
    target: Option<&str>,
    failure: Failure,
) -> ProviderError {
    let provider = ctx.provider.clone();
    let site = &ctx.site;
    let table = ctx.table;
    let place = if operation.is_cloudfront() {
        format!(
            "distribution `{}`",
            ctx.distribution.as_deref().unwrap_or("?")
        )
    } else {
        format!("bucket `{}` in region `{}`", ctx.bucket, ctx.region)
    };
    // The object (or invalidation) a network failure was about.
    let what = target.map(|t| format!(" `{t}`")).unwrap_or_default();
    let credentials_hint = format!(
        "check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN, or the profile \
         (AWS_PROFILE or sites.{site}.{table}.profile)"
    );
    let (status, code, message, retry_after) = match failure {
        Failure::Service {
            status,
            code,
            message,
            retry_after,
        } => (status, code, message, retry_after),
        Failure::Timeout(detail) => {
            return ProviderError::Retryable {
                provider,
                message: format!("{operation:?}{what} on {place} timed out: {detail}"),
            };
        }
        Failure::Transport(detail) => {
            return ProviderError::Retryable {
                provider,
                message: format!("{operation:?}{what} on {place} failed in transit: {detail}"),
            };
        }
        Failure::Credentials(detail) => {
            return ProviderError::Unauthenticated {
                provider,
                message: format!(
                    "no usable AWS credentials for {place} ({detail}); {credentials_hint}, \
                     or run where an IAM role provides them"
                ),
            };
        }
        Failure::Request(detail) => {
            return ProviderError::Invalid {
                provider,
                message: format!("{operation:?} on {place} could not be sent: {detail}"),
            };
        }
    };
    let said = match (&code, &message) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        (Some(code), None) => code.clone(),
        (None, Some(message)) => message.clone(),
        (None, None) => format!("HTTP {}", status.unwrap_or(0)),
    };
    let what = match target {
        Some(target) => format!("{operation:?} `{target}` on {place}"),
        None => format!("{operation:?} on {place}"),
    };
    match (code.as_deref(), status) {
        // S3 asks for a lower request rate with 503 SlowDown; other AWS APIs throttle
        // with 400 Throttling / 429.
        (
            Some(
                "SlowDown"
                | "Throttling"
                | "ThrottlingException"
                | "ThrottledException"
                | "RequestThrottled"
                | "RequestLimitExceeded"
                | "TooManyRequestsException",
            ),
            _,
        )
        | (_, Some(429 | 503)) => ProviderError::Throttled {
            provider,
            retry_after,
        },
        // Too many paths or wildcards in flight on the distribution: wait for some to
        // finish (a 400 without Retry-After).
        (Some("TooManyInvalidationsInProgress"), _) => ProviderError::Throttled {
            provider,
            retry_after: Some(retry_after.unwrap_or(INVALIDATIONS_IN_PROGRESS_WAIT)),
        },
        // The connection idled past S3's limit, a clock the SDK corrects from this very
        // answer, or an upload id that vanished: the same call again can succeed.
        (Some("RequestTimeout" | "RequestTimeTooSkewed" | "NoSuchUpload"), _) => {
            ProviderError::Retryable {
                provider,
                message: format!("{what}: {said}"),
            }
        }
        (Some("NoSuchBucket"), _) => ProviderError::Misconfigured {
            provider,
            message: format!(
                "bucket `{}` does not exist in region `{}` ({said}); check sites.{site}.{table}.bucket, \
                 sites.{site}.{table}.region and sites.{site}.{table}.endpoint",
                ctx.bucket, ctx.region
            ),
        },
        (Some("NoSuchDistribution"), _) => ProviderError::Misconfigured {
            provider,
            message: format!(
                "CloudFront distribution `{}` does not exist ({said}); check sites.{site}.{table}.distribution_id",
                ctx.distribution.as_deref().unwrap_or("?")
            ),
        },
        // The bucket lives in another region (S3 answers 301 to a HEAD, with no body).
        (
            Some(
                "PermanentRedirect"
                | "AuthorizationHeaderMalformed"
                | "IllegalLocationConstraintException",
            ),
            _,
        )
        | (None, Some(301)) => ProviderError::Misconfigured {
            provider,
            message: format!(
                "bucket `{}` is not in region `{}` ({said}); set sites.{site}.{table}.region (or AWS_REGION) to the bucket's region",
                ctx.bucket, ctx.region
            ),
        },
        (
            Some(
                "InvalidAccessKeyId"
                | "InvalidClientTokenId"
                | "UnrecognizedClientException"
                | "MissingAuthenticationToken"
                | "AuthFailure",
            ),
            _,
        ) => ProviderError::Unauthenticated {
            provider,
            message: format!(
                "the access key id is not known to AWS ({what}: {said}); {credentials_hint}"
            ),
        },
        (Some("SignatureDoesNotMatch" | "IncompleteSignature"), _) => {
            ProviderError::Unauthenticated {
                provider,
                message: format!(
                    "the secret access key does not match the access key id ({what}: {said}); {credentials_hint}"
                ),
            }
        }
        (
            Some(
                "ExpiredToken" | "ExpiredTokenException" | "TokenRefreshRequired" | "InvalidToken",
            ),
            _,
        ) => ProviderError::Unauthenticated {
            provider,
            message: format!(
                "the session token is expired or invalid ({what}: {said}); refresh the credentials \
                 (e.g. `aws sso login`) — {credentials_hint}"
            ),
        },
        (
            Some("AccessDenied" | "AccessDeniedException" | "AllAccessDisabled" | "AccountProblem"),
            _,
        )
        | (None, Some(403)) => ProviderError::PermissionDenied {
            provider,
            message: format!(
                "{what} was refused ({said}); the credentials need {} on it (sites.{site}.{table}, AWS_PROFILE)",
                operation.action()
            ),
        },
        (Some("NoSuchKey" | "NotFound" | "NoSuchInvalidation"), _) | (None, Some(404))
            if target.is_some() =>
        {
            ProviderError::NotFound {
                provider,
                key: target.unwrap_or_default().to_string(),
            }
        }
        (_, Some(500..=599)) | (Some("InternalError" | "ServiceUnavailable"), _) => {
            ProviderError::Retryable {
                provider,
                message: format!("{what}: {said}"),
            }
        }
        // InvalidationBatchAlreadyExists (a caller reference reused with other paths),
        // BatchTooLarge, InvalidArgument, MetadataTooLarge, EntityTooLarge, …: the request
        // itself is wrong; sending it again cannot help.
        _ => ProviderError::Invalid {
            provider,
            message: format!("{what}: {said}"),
        },
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_s3::error::{ConnectorError, ErrorMetadata};
    use aws_sdk_s3::operation::put_object::PutObjectError;
    use aws_sdk_s3::primitives::SdkBody;

    use super::*;

    fn ctx() -> Context {
        Context {
            provider: "aws:s3://assets".into(),
            site: "www".into(),
            table: "aws",
            bucket: "assets".into(),
            region: "eu-west-1".into(),
            distribution: Some("E2QWRUHAPOMQZL".into()),
        }
    }

    /// A service error as the SDK builds it from an answer.
    fn service(status: u16, code: Option<&str>) -> SdkError<PutObjectError, HttpResponse> {
        let mut meta = ErrorMetadata::builder().message("from the service");
        if let Some(code) = code {
            meta = meta.code(code);
        }
        let raw = HttpResponse::new(status.try_into().unwrap(), SdkBody::empty());
        SdkError::service_error(PutObjectError::generic(meta.build()), raw)
    }

    fn class_of(err: SdkError<PutObjectError, HttpResponse>, op: Operation) -> ProviderError {
        classify(&ctx(), op, Some("app.js"), failure_of(&err))
    }

    #[test]
    fn throttling_answers_are_throttled_and_invalidation_limits_wait_ten_seconds() {
        for (status, code) in [
            (503, Some("SlowDown")),
            (503, None),
            (429, None),
            (400, Some("Throttling")),
        ] {
            let err = class_of(service(status, code), Operation::Put);
            assert!(
                matches!(
                    err,
                    ProviderError::Throttled {
                        retry_after: None,
                        ..
                    }
                ),
                "{status} {code:?}: {err:?}"
            );
        }
        let err = class_of(
            service(400, Some("TooManyInvalidationsInProgress")),
            Operation::Invalidate,
        );
        assert_eq!(err.retry_after(), Some(Duration::from_secs(10)));
        assert!(err.is_retryable());
    }

    #[test]
    fn server_errors_timeouts_and_dispatch_failures_are_retryable() {
        for err in [
            service(500, Some("InternalError")),
            service(502, None),
            service(400, Some("RequestTimeout")),
            SdkError::timeout_error("read timed out"),
            SdkError::dispatch_failure(ConnectorError::io("connection reset".into())),
            SdkError::dispatch_failure(ConnectorError::timeout("connect timeout".into())),
        ] {
            let class = class_of(err, Operation::Put);
            assert!(
                matches!(class, ProviderError::Retryable { .. }),
                "{class:?}"
            );
        }
    }

    /// What a connection reset looks like to a person: the operation, the key, the
    /// bucket and the cause, once — not the SDK's `Debug` dump of the same chain.
    #[test]
    fn a_network_failure_names_the_key_and_its_cause_once() {
        let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        let err = class_of(
            SdkError::dispatch_failure(ConnectorError::io(Box::new(reset))),
            Operation::Get,
        );
        let text = err.to_string();
        assert!(
            text.contains(
                "Get `app.js` on bucket `assets` in region `eu-west-1` failed in transit"
            ),
            "{text}"
        );
        assert!(text.contains("connection reset"), "{text}");
        for debug in ["ConnectorError", "DispatchFailure", "kind:", "{"] {
            assert!(!text.contains(debug), "{text} has `{debug}`");
        }
    }

    #[test]
    fn credential_errors_are_unauthenticated_and_name_the_settings_to_check() {
        for code in [
            "InvalidAccessKeyId",
            "SignatureDoesNotMatch",
            "ExpiredToken",
        ] {
            let err = class_of(service(403, Some(code)), Operation::Put);
            assert!(err.is_fatal_for_provider(), "{err:?}");
            let text = err.to_string();
            assert!(
                matches!(err, ProviderError::Unauthenticated { .. }),
                "{code}: {text}"
            );
            for needle in [
                code,
                "AWS_ACCESS_KEY_ID",
                "AWS_PROFILE",
                "sites.www.aws.profile",
            ] {
                assert!(text.contains(needle), "{code}: {text} lacks {needle}");
            }
        }
        let missing = SdkError::<PutObjectError, HttpResponse>::dispatch_failure(
            ConnectorError::other(Box::new(CredentialsError::not_loaded_no_source()), None),
        );
        let err = class_of(missing, Operation::Put);
        assert!(
            matches!(err, ProviderError::Unauthenticated { .. }),
            "{err:?}"
        );
        assert!(
            err.to_string().contains("no usable AWS credentials"),
            "{err}"
        );
    }

    #[test]
    fn access_denied_names_the_iam_action() {
        let err = class_of(service(403, Some("AccessDenied")), Operation::Delete);
        assert!(matches!(err, ProviderError::PermissionDenied { .. }));
        assert!(err.to_string().contains("s3:DeleteObject"), "{err}");
        let head = class_of(service(403, None), Operation::Head);
        assert!(head.to_string().contains("s3:GetObject"), "{head}");
    }

    #[test]
    fn a_missing_bucket_or_distribution_is_one_fatal_error_naming_the_setting() {
        let err = class_of(service(404, Some("NoSuchBucket")), Operation::Get);
        assert!(err.is_fatal_for_provider() && !err.is_retryable());
        let text = err.to_string();
        for needle in ["`assets`", "eu-west-1", "sites.www.aws.bucket"] {
            assert!(text.contains(needle), "{text} lacks {needle}");
        }
        let err = class_of(
            service(404, Some("NoSuchDistribution")),
            Operation::Invalidate,
        );
        assert!(err.is_fatal_for_provider());
        assert!(
            err.to_string().contains("sites.www.aws.distribution_id")
                && err.to_string().contains("E2QWRUHAPOMQZL"),
            "{err}"
        );
        let moved = class_of(service(301, None), Operation::Head);
        assert!(
            moved.to_string().contains("sites.www.aws.region"),
            "{moved}"
        );
    }

    #[test]
    fn missing_keys_are_not_found_and_bad_requests_invalid() {
        assert!(matches!(
            class_of(service(404, None), Operation::Head),
            ProviderError::NotFound { key, .. } if key == "app.js"
        ));
        assert!(matches!(
            class_of(service(404, Some("NoSuchKey")), Operation::Get),
            ProviderError::NotFound { .. }
        ));
        for code in [
            "InvalidationBatchAlreadyExists",
            "BatchTooLarge",
            "InvalidArgument",
        ] {
            let err = class_of(service(400, Some(code)), Operation::Invalidate);
            assert!(
                matches!(err, ProviderError::Invalid { .. }) && !err.is_retryable(),
                "{code}: {err:?}"
            );
        }
    }
}
