//! Route handlers, one module per concern.

pub mod cache;
pub mod health;
pub mod metrics;
pub mod origin;

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
