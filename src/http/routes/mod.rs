//! Route handlers, one module per concern.

pub mod assets;
pub mod cache;
pub mod deploy;
pub mod health;
pub mod metrics;
pub mod origin;
pub mod purge;

use actix_web::HttpResponse;
use serde_json::json;

/// The one JSON error shape: `{ "error": { "code", "message" } }`.
pub fn error_response(
    status: actix_web::http::StatusCode,
    code: &str,
    message: &str,
) -> HttpResponse {
    HttpResponse::build(status).json(json!({ "error": { "code": code, "message": message } }))
}

/// Any `/v1` path no route claims.
pub async fn not_found(req: actix_web::HttpRequest) -> HttpResponse {
    error_response(
        actix_web::http::StatusCode::NOT_FOUND,
        "not_found",
        &format!("no API route {} {}", req.method(), req.path()),
    )
}
