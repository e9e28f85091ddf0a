//! Route handlers, one module per concern.

pub mod analytics;
pub mod assets;
pub mod cache;
pub mod dashboard;
pub mod deploy;
pub mod health;
pub mod logs;
pub mod metrics;
pub mod origin;
pub mod purge;
mod upload;

use actix_web::HttpResponse;

pub use super::error::{ApiError, ErrorBody, ErrorDetail, error_response};

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

/// Reads a JSON body of at most `server.max_json_bytes`. Handlers call it only after
/// [`crate::http::auth::Guard::check`] admitted the caller, so a client without a key
/// never makes the service read (and buffer) a body.
pub(crate) async fn json_body<T: serde::de::DeserializeOwned>(
    req: &actix_web::HttpRequest,
    payload: actix_web::web::Payload,
    max_bytes: usize,
) -> Result<T, ApiError> {
    let mut payload = payload.into_inner();
    actix_web::web::JsonBody::<T>::new(req, &mut payload, None, true)
        .limit(max_bytes)
        .await
        .map_err(|err| ApiError::from(&err))
}

/// Reads the query string as `T` (400 `bad_query` when it does not parse). Handlers call
/// it only after [`crate::http::auth::Guard::check`] admitted the caller, so a request
/// without a key is a 401 whatever its query.
pub(crate) fn query<T: serde::de::DeserializeOwned>(
    req: &actix_web::HttpRequest,
) -> Result<T, ApiError> {
    actix_web::web::Query::<T>::from_query(req.query_string())
        .map(actix_web::web::Query::into_inner)
        .map_err(|err| ApiError::bad_request("bad_query", err.to_string()))
}

/// 405 for a method a `/v1` route does not take, naming those it does.
pub fn method_not_allowed(allow: &'static str) -> HttpResponse {
    let mut response = error_response(
        actix_web::http::StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        &format!("this route takes {allow}"),
    );
    response.headers_mut().insert(
        actix_web::http::header::ALLOW,
        actix_web::http::header::HeaderValue::from_static(allow),
    );
    response
}

/// Any `/v1` path no route claims.
pub async fn not_found(req: actix_web::HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::not_found(
        "not_found",
        format!("no API route {} {}", req.method(), req.path()),
    ))
}

/// Answers with a stored job of kind `J`: 200 with the job, 404 unknown (or expired),
/// 400 not an id of that kind, 503 when jobs cannot be read.
pub(crate) async fn job_response<J: crate::jobs::Job>(
    store: &crate::jobs::JobStore,
    id: &str,
) -> Result<HttpResponse, ApiError> {
    match store.load::<J>(id).await? {
        Some(job) => Ok(HttpResponse::Ok().json(&job)),
        None => Err(ApiError::not_found(
            "not_found",
            format!("no {} job `{id}` (jobs are kept 7 days)", J::KIND.name()),
        )),
    }
}
