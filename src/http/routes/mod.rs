//! Route handlers, one module per concern.

pub mod analytics;
pub mod assets;
pub mod cache;
pub mod deploy;
pub mod health;
pub mod metrics;
pub mod origin;
pub mod purge;

use actix_web::HttpResponse;
use serde::Serialize;

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
}

/// The answers every authenticated route may give, for the OpenAPI document.
#[derive(Debug, utoipa::IntoResponses)]
pub enum AuthErrors {
    /// No key, or an unknown, expired or revoked one (with `WWW-Authenticate`).
    #[response(status = 401, description = "No or unknown API key")]
    Unauthorized(ErrorBody),
    /// The key lacks the route's scope, or may not be used from this address.
    #[response(
        status = 403,
        description = "The key lacks the route's scope or may not be used from this address"
    )]
    Forbidden(ErrorBody),
    /// Over a rate limit, or the address is blocked after repeated authentication failures.
    #[response(status = 429, description = "Over a rate limit; see `Retry-After`")]
    TooManyRequests(ErrorBody),
}

/// Answers with [`ErrorBody`].
pub fn error_response(
    status: actix_web::http::StatusCode,
    code: &str,
    message: &str,
) -> HttpResponse {
    HttpResponse::build(status).json(ErrorBody {
        error: ErrorDetail {
            code: code.to_owned(),
            message: message.to_owned(),
        },
    })
}

/// Any `/v1` path no route claims.
pub async fn not_found(req: actix_web::HttpRequest) -> HttpResponse {
    error_response(
        actix_web::http::StatusCode::NOT_FOUND,
        "not_found",
        &format!("no API route {} {}", req.method(), req.path()),
    )
}

/// Answers with a stored job (`kind` is `purge` or `deploy`, for messages; its ids start
/// with `prefix`): 200 with the job, 404 unknown (or expired), 400 not an id of that kind,
/// 503 when jobs cannot be read.
pub(crate) async fn job_response<T>(
    store: &crate::purge::job::JobStore,
    id: &str,
    kind: &str,
    prefix: char,
) -> HttpResponse
where
    T: serde::Serialize + serde::de::DeserializeOwned + Send + 'static,
{
    use actix_web::http::StatusCode;
    if !id.starts_with(prefix) {
        return error_response(
            StatusCode::BAD_REQUEST,
            "bad_id",
            &format!("not a {kind} job id"),
        );
    }
    match store.load_value::<T>(id).await {
        Ok(Some(job)) => HttpResponse::Ok().json(&job),
        Ok(None) => error_response(
            StatusCode::NOT_FOUND,
            "not_found",
            &format!("no {kind} job `{id}` (jobs are kept 7 days)"),
        ),
        Err(crate::purge::job::JobError::BadId(_)) => error_response(
            StatusCode::BAD_REQUEST,
            "bad_id",
            &format!("not a {kind} job id"),
        ),
        Err(err) => {
            tracing::error!(error = %err, "job store");
            error_response(
                StatusCode::SERVICE_UNAVAILABLE,
                "jobs_unavailable",
                &format!("{kind} jobs cannot be read right now"),
            )
        }
    }
}
