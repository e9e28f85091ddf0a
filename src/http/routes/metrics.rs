//! `GET /metrics`: every metric of the process in the Prometheus text format.

use actix_web::HttpResponse;

/// The Prometheus exposition (text format 0.0.4).
pub async fn prometheus() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(crate::http::prometheus::render())
}
