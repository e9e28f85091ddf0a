//! `GET /v1/cache/stats`: the cache layer's counters as JSON.

use actix_web::{HttpResponse, web};

use crate::http::AppState;

/// Hits, misses, hit ratio, per-operation latency, bytes before and after compression,
/// errors, fallbacks and outages of this app's cache (see
/// [`CacheStats`](crate::cache::CacheStats)).
pub async fn stats(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(state.cache().stats())
}
