//! `GET /healthz` (the process is up) and `GET /readyz` (it works as configured).

use actix_web::{HttpResponse, web};
use serde_json::json;

use crate::cache::Health;
use crate::http::AppState;

/// Liveness: always 200 while the server runs.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok", "version": env!("CARGO_PKG_VERSION") }))
}

/// Readiness: 200 `{"status":"ready"}`, or 503
/// `{"status":"degraded","component":"cache","reason":…,"degraded_for_ms":…}` while the
/// cache serves from memory because Redis is unreachable. Requests still succeed while
/// degraded; the 503 lets a load balancer prefer healthy replicas and operators see why.
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    match state.cache().health().await {
        Health::Ready => HttpResponse::Ok().json(json!({ "status": "ready" })),
        Health::Degraded {
            reason,
            degraded_for_ms,
        } => HttpResponse::ServiceUnavailable().json(json!({
            "status": "degraded",
            "component": "cache",
            "reason": reason,
            "degraded_for_ms": degraded_for_ms,
        })),
    }
}
