//! `GET /healthz`: the process is up and serving.

use actix_web::HttpResponse;
use serde_json::json;

/// Liveness: always 200 while the server runs.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok", "version": env!("CARGO_PKG_VERSION") }))
}
