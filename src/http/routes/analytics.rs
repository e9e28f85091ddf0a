//! `GET /v1/analytics`: deploy savings per site and content type, and what the origin
//! served per encoding, as totals and a time series (scope `read`).
//!
//! Answers are kept [`REPORT_TTL`] per query (sites, range widened to whole hours,
//! grouping), and concurrent requests for the same query share one computation, so a
//! dashboard polled by many viewers costs the cache layer one report per query every
//! [`REPORT_TTL`] (the origin's counters reach the cache layer once a second anyway).
//! The kept answers are capped at [`REPORT_CACHE_BYTES`].

use std::time::{Duration, SystemTime};

use actix_web::http::header::ContentType;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;

use super::ApiError;
use crate::analytics::report::{self, Query};
use crate::api_keys::Scope;
use crate::http::AppState;

/// How long an answer is reused for the same query.
pub const REPORT_TTL: Duration = Duration::from_secs(2);

/// The most bytes of answers kept at once.
pub const REPORT_CACHE_BYTES: u64 = 16 * 1024 * 1024;

/// Query parameters of `GET /v1/analytics`. An empty one (`from=`) is an absent one (the
/// document says `allowEmptyValue`).
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AnalyticsParams {
    /// One site; every configured site when absent (or empty).
    pub site: Option<String>,
    /// Range start: Unix seconds, `YYYY-MM-DD` or RFC 3339. Default: 7 days before `to`.
    pub from: Option<String>,
    /// Range end (exclusive), same forms. Default: now.
    pub to: Option<String>,
    /// `hour` or `day` (the series' buckets; default `hour` for ranges up to 2 days, else
    /// `day`), or `type`, `encoding`, `cache_status`, `path`: a breakdown of the CDN's
    /// traffic in each site's `cdn.groups` (series then use the default buckets).
    #[param(value_type = Option<GroupByParam>)]
    pub group_by: Option<String>,
}

/// The groupings of the series (for the OpenAPI document).
#[derive(Debug, utoipa::ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum GroupByParam {
    /// Hourly buckets.
    Hour,
    /// Daily buckets.
    Day,
    /// CDN bytes per content type.
    Type,
    /// CDN bytes per encoding.
    Encoding,
    /// CDN requests and bytes per cache status.
    CacheStatus,
    /// CDN requests and bytes of the top paths.
    Path,
}

/// An empty parameter (`from=`) is the same as an absent one.
fn given(value: &Option<String>) -> Option<&str> {
    value.as_deref().filter(|v| !v.is_empty())
}

/// The cached report answers, by normalised query.
pub type ReportCache = moka::future::Cache<String, bytes::Bytes>;

/// A cache for [`report`]'s answers, weighed by their size.
pub fn report_cache() -> ReportCache {
    moka::future::Cache::builder()
        .weigher(|_key: &String, body: &bytes::Bytes| u32::try_from(body.len()).unwrap_or(u32::MAX))
        .max_capacity(REPORT_CACHE_BYTES)
        .time_to_live(REPORT_TTL)
        .build()
}

/// Deploy savings and origin traffic.
#[utoipa::path(
    get,
    path = "/v1/analytics",
    tag = "analytics",
    params(AnalyticsParams),
    responses(
        (status = 200, description = "Totals and time series per site", body = crate::analytics::report::Report),
        (status = 400, description = "A bad time, range or grouping", body = super::ErrorBody),
        (status = 404, description = "Unknown site", body = super::ErrorBody),
        super::AuthErrors,
    ),
    security(("api_key" = []))
)]
pub async fn report(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    state.guard().check(&req, &[Scope::Read]).await?;
    let params: AnalyticsParams = super::query(&req)?;
    let query = Query::for_config(
        state.config(),
        given(&params.site),
        given(&params.from),
        given(&params.to),
        given(&params.group_by),
        SystemTime::now(),
    )?;
    let key = format!(
        "{}|{}|{}|{:?}|{:?}",
        query.sites.join(","),
        query.from,
        query.to,
        query.group_by,
        query.breakdown
    );
    let origin_site = state.origin_site().map(|site| site.origin().site());
    let compute = async {
        let report = report::build(state.cache(), &query, origin_site)
            .await
            .map_err(|err| err.to_string())?;
        serde_json::to_vec(&report)
            .map(bytes::Bytes::from)
            .map_err(|err| err.to_string())
    };
    match state.report_cache().try_get_with(key, compute).await {
        Ok(body) => Ok(json_body(body)),
        Err(err) => {
            tracing::error!(error = %err, "analytics report");
            Err(ApiError::unavailable(
                "analytics_unavailable",
                "analytics cannot be read right now",
            ))
        }
    }
}

fn json_body(body: bytes::Bytes) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(ContentType::json())
        .body(body)
}
