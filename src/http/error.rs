//! The API's errors: every handler returns `Result<_, ApiError>`, and [`ApiError`] is the
//! one place that maps what went wrong to a status and the one JSON error shape
//! (`{ "error": { "code", "message" } }`, see [`ErrorBody`]).
//!
//! Codes are stable and machine-readable (`unauthenticated`, `rate_limited`,
//! `unknown_site`, …); messages say what happened and what to do. Internal failures are
//! logged with their cause and answered without it.

use std::time::Duration;

use actix_web::http::{StatusCode, header};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

use crate::analytics::report::ReportError;
use crate::config::ConfigError;
use crate::jobs::JobError;
use crate::purge::{PatternError, PurgeError};
use crate::site::ManifestError;

/// The one JSON error shape: `{ "error": { "code", "message" } }`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// The inside of [`ErrorBody`].
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// A stable, machine-readable code (`unauthorized`, `rate_limited`, `bad_json`, …).
    pub code: String,
    /// What happened and what to do, for people.
    pub message: String,
    /// For `bad_pattern`: the pattern (at most 200 characters).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    /// For `bad_pattern`: the byte offset of the offending character.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub position: Option<usize>,
}

/// Why an API request failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// 400: the request is malformed or asks for something invalid.
    #[error("{message}")]
    BadRequest {
        /// The error code.
        code: &'static str,
        /// What is wrong.
        message: String,
    },
    /// 400 `bad_pattern`: a purge pattern does not parse (the body says where).
    #[error(transparent)]
    BadPattern(#[from] PatternError),
    /// 401: no key, or an unknown, expired or revoked one (with `WWW-Authenticate`).
    #[error("{message}")]
    Unauthenticated {
        /// The error code.
        code: &'static str,
        /// Why.
        message: String,
    },
    /// 403: the key lacks the scope, or may not be used from this address.
    #[error("{message}")]
    Forbidden {
        /// The error code.
        code: &'static str,
        /// Why.
        message: String,
    },
    /// 404: no such site, job or route.
    #[error("{message}")]
    NotFound {
        /// The error code.
        code: &'static str,
        /// What is missing.
        message: String,
    },
    /// 408: the client sent its body too slowly (or stopped sending it).
    #[error("{message}")]
    Timeout {
        /// The error code.
        code: &'static str,
        /// Which limit.
        message: String,
    },
    /// 409: the request needs confirmation or conflicts with the current state.
    #[error("{message}")]
    Conflict {
        /// The error code.
        code: &'static str,
        /// What to do.
        message: String,
    },
    /// 413: the body is over its limit.
    #[error("{message}")]
    TooLarge {
        /// The error code.
        code: &'static str,
        /// The limit.
        message: String,
    },
    /// 415: the body is not of a type the route takes.
    #[error("{message}")]
    UnsupportedMediaType {
        /// The error code.
        code: &'static str,
        /// What the route takes.
        message: String,
    },
    /// 429: over a rate limit, or the address is blocked (with `Retry-After`).
    #[error("{message}")]
    RateLimited {
        /// The error code.
        code: &'static str,
        /// Which limit.
        message: String,
        /// When to try again.
        retry_after: Duration,
    },
    /// 502: the site's provider failed.
    #[error("{message}")]
    Provider {
        /// What failed.
        message: String,
    },
    /// 503: a dependency (jobs, keys, analytics) cannot be used right now.
    #[error("{message}")]
    Unavailable {
        /// The error code.
        code: &'static str,
        /// What is unavailable.
        message: String,
    },
    /// 507: the upload cannot be stored.
    #[error("{message}")]
    Storage {
        /// What failed.
        message: String,
    },
    /// 500: a bug or an unexpected local failure; the cause goes to the log only.
    #[error("{message}")]
    Internal {
        /// What failed, for the client (no internals).
        message: String,
    },
}

impl ApiError {
    /// 400 with `code`.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::BadRequest {
            code,
            message: message.into(),
        }
    }

    /// 404 with `code`.
    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::NotFound {
            code,
            message: message.into(),
        }
    }

    /// 503 with `code`.
    pub fn unavailable(code: &'static str, message: impl Into<String>) -> Self {
        Self::Unavailable {
            code,
            message: message.into(),
        }
    }

    /// 500, logging `cause` (which the client does not see).
    pub fn internal(message: impl Into<String>, cause: &dyn std::fmt::Display) -> Self {
        let message = message.into();
        tracing::error!(error = %cause, "{message}");
        Self::Internal { message }
    }

    /// The machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::BadRequest { code, .. }
            | Self::Unauthenticated { code, .. }
            | Self::Forbidden { code, .. }
            | Self::NotFound { code, .. }
            | Self::Timeout { code, .. }
            | Self::Conflict { code, .. }
            | Self::TooLarge { code, .. }
            | Self::UnsupportedMediaType { code, .. }
            | Self::RateLimited { code, .. }
            | Self::Unavailable { code, .. } => code,
            Self::BadPattern(_) => "bad_pattern",
            Self::Provider { .. } => "provider_failed",
            Self::Storage { .. } => "storage",
            Self::Internal { .. } => "internal",
        }
    }

    fn body(&self) -> ErrorBody {
        let (pattern, position) = match self {
            Self::BadPattern(err) => (
                Some(err.pattern.chars().take(200).collect()),
                Some(err.position),
            ),
            _ => (None, None),
        };
        ErrorBody {
            error: ErrorDetail {
                code: self.code().to_owned(),
                message: self.to_string(),
                pattern,
                position,
            },
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::BadRequest { .. } | Self::BadPattern(_) => StatusCode::BAD_REQUEST,
            Self::Unauthenticated { .. } => StatusCode::UNAUTHORIZED,
            Self::Forbidden { .. } => StatusCode::FORBIDDEN,
            Self::NotFound { .. } => StatusCode::NOT_FOUND,
            Self::Timeout { .. } => StatusCode::REQUEST_TIMEOUT,
            Self::Conflict { .. } => StatusCode::CONFLICT,
            Self::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Provider { .. } => StatusCode::BAD_GATEWAY,
            Self::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::Storage { .. } => StatusCode::INSUFFICIENT_STORAGE,
            Self::Internal { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        match self {
            Self::Unauthenticated { .. } => {
                response.insert_header((header::WWW_AUTHENTICATE, "Bearer realm=\"edgeship\""));
            }
            Self::RateLimited { retry_after, .. } => {
                let secs = retry_after.as_secs_f64().ceil().max(1.0) as u64;
                response.insert_header((header::RETRY_AFTER, secs.to_string()));
            }
            _ => {}
        }
        response.json(self.body())
    }
}

/// An error answer outside a handler (the JSON, query and path extractors' error
/// handlers, the default routes): `status` with `code` and `message`.
pub fn error_response(status: StatusCode, code: &str, message: &str) -> HttpResponse {
    HttpResponse::build(status).json(ErrorBody {
        error: ErrorDetail {
            code: code.to_owned(),
            message: message.to_owned(),
            pattern: None,
            position: None,
        },
    })
}

impl From<&actix_web::error::JsonPayloadError> for ApiError {
    fn from(err: &actix_web::error::JsonPayloadError) -> Self {
        use actix_web::error::JsonPayloadError as E;
        match err {
            E::Overflow { limit } | E::OverflowKnownLength { limit, .. } => Self::TooLarge {
                code: "body_too_large",
                message: format!(
                    "JSON bodies are limited to {limit} bytes (server.max_json_bytes)"
                ),
            },
            E::ContentType => Self::UnsupportedMediaType {
                code: "not_json",
                message: "send the body as JSON with `Content-Type: application/json`".into(),
            },
            other => Self::bad_request("bad_json", other.to_string()),
        }
    }
}

impl From<ConfigError> for ApiError {
    fn from(err: ConfigError) -> Self {
        match err {
            ConfigError::UnknownSite { .. } => Self::not_found("unknown_site", err.to_string()),
            other => Self::internal("the site is misconfigured; see the service log", &other),
        }
    }
}

impl From<ManifestError> for ApiError {
    fn from(err: ManifestError) -> Self {
        Self::Provider {
            message: format!("reading the site's manifest: {err}"),
        }
    }
}

impl From<JobError> for ApiError {
    fn from(err: JobError) -> Self {
        match err {
            JobError::BadId { kind, .. } => {
                Self::bad_request("bad_id", format!("not a {} job id", kind.name()))
            }
            other => {
                tracing::error!(error = %other, "job store");
                Self::unavailable(
                    "jobs_unavailable",
                    "jobs cannot be read or recorded right now",
                )
            }
        }
    }
}

impl From<PurgeError> for ApiError {
    fn from(err: PurgeError) -> Self {
        match err {
            PurgeError::NoPatterns => {
                Self::bad_request("no_patterns", "`patterns` must name at least one pattern")
            }
            PurgeError::TooManyPatterns { .. } => {
                Self::bad_request("too_many_patterns", err.to_string())
            }
            PurgeError::Pattern(err) => Self::BadPattern(err),
            PurgeError::Config(err) => err.into(),
            PurgeError::Manifest(err) => err.into(),
            other => Self::internal(
                "the purge could not be prepared; see the service log",
                &other,
            ),
        }
    }
}

impl From<ReportError> for ApiError {
    fn from(err: ReportError) -> Self {
        let code = match &err {
            ReportError::UnknownSite(_) => return Self::not_found("unknown_site", err.to_string()),
            ReportError::BadTime { .. } => "bad_time",
            ReportError::BadGroupBy(_) => "bad_group_by",
            ReportError::Cache(_) => {
                tracing::error!(error = %err, "analytics report");
                return Self::unavailable(
                    "analytics_unavailable",
                    "analytics cannot be read right now",
                );
            }
            _ => "bad_range",
        };
        Self::bad_request(code, err.to_string())
    }
}
