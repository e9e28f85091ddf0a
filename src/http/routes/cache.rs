//! `GET /v1/cache/stats`: the cache layer's counters as JSON (scope `read`).

use actix_web::{HttpRequest, HttpResponse, web};

use super::ApiError;
use crate::api_keys::Scope;
use crate::http::AppState;

/// Hits, misses, hit ratio, per-operation latency, bytes before and after compression,
/// errors, fallbacks and outages of this app's cache (see
/// [`CacheStats`](crate::cache::CacheStats)).
#[utoipa::path(
    get,
    path = "/v1/cache/stats",
    tag = "operations",
    responses(
        (status = 200, description = "The cache layer's counters", body = Object),
        super::AuthErrors,
    ),
    security(("api_key" = []))
)]
pub async fn stats(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    state.guard().check(&req, &[Scope::Read]).await?;
    Ok(HttpResponse::Ok().json(state.cache().stats()))
}
