//! `GET /metrics`: every metric of the process in the Prometheus text format.

use actix_web::HttpResponse;

/// The Prometheus exposition (text format 0.0.4).
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Every metric, Prometheus text format", content_type = "text/plain", body = String)))]
pub async fn prometheus() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(crate::http::prometheus::render())
}
