//! `POST /v1/sites/{site}/logs`: one CDN access log file into the site's analytics, as
//! `edgeship logs ingest` does (scope `logs`, or `admin`; `read` is not enough).

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use super::ApiError;
use crate::analytics::logs::{self, LogError, LogFormat, Stored};
use crate::api_keys::Scope;
use crate::http::AppState;

/// Query options of a log upload.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LogsQuery {
    /// `cloudfront`, `logpush` or `front_door`; recognised from the first line when absent.
    #[param(value_type = Option<LogFormatParam>)]
    pub format: Option<LogFormat>,
}

/// The log formats (for the OpenAPI document).
#[derive(Debug, utoipa::ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum LogFormatParam {
    /// CloudFront standard logs (W3C).
    Cloudfront,
    /// Cloudflare Logpush `http_requests` (NDJSON).
    Logpush,
    /// Azure Front Door access logs (JSON records).
    FrontDoor,
}

/// Reads one log file (plain or gzip) and adds it to the site's CDN analytics.
#[utoipa::path(
    post,
    path = "/v1/sites/{site}/logs",
    operation_id = "ingest_logs",
    tag = "analytics",
    params(("site" = String, Path, description = "The site"), LogsQuery),
    request_body(
        description = "One log file as the CDN delivered it: CloudFront W3C, Logpush NDJSON or Front Door JSON records, plain or gzip'd",
        content(
            (super::deploy::ArchiveBody = "application/gzip"),
            (super::deploy::ArchiveBody = "text/plain"),
            (super::deploy::ArchiveBody = "application/x-ndjson"),
        )
    ),
    responses(
        (status = 200, description = "Ingested: what was read (requests, malformed lines with examples, totals)", body = Object),
        (status = 400, description = "Not a log edgeship reads, or an empty body", body = super::ErrorBody),
        (status = 404, description = "Unknown site", body = super::ErrorBody),
        (status = 408, description = "The body stalled or took too long", body = super::ErrorBody),
        (status = 409, description = "This file was ingested before; nothing was added", body = super::ErrorBody),
        (status = 413, description = "Over `server.max_upload_bytes`", body = super::ErrorBody),
        super::AuthErrors,
    ),
    security(("api_key" = []))
)]
pub async fn ingest(
    req: HttpRequest,
    site: web::Path<String>,
    mut payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let key = state.guard().check(&req, &[Scope::Logs]).await?;
    let query: LogsQuery = super::query(&req)?;
    let config = state.config();
    let registered = state.sites().get(&site)?;
    let _slot = super::upload::slot(&state, &key)?;
    // Under the uploads directory, which a restart clears of what a crash left.
    let dir = super::deploy::uploads_dir(&config.data_dir).join("logs");
    tokio::fs::create_dir_all(&dir)
        .await
        .map_err(|err| ApiError::internal("cannot store the upload", &err))?;
    let file = tempfile::NamedTempFile::new_in(&dir)
        .map_err(|err| ApiError::internal("cannot store the upload", &err))?;
    let received = super::upload::receive(&req, &mut payload, file.path(), &config.server).await?;
    if received == 0 {
        return Err(ApiError::bad_request(
            "empty_body",
            "send one log file as the body",
        ));
    }
    let manifest = registered.manifest().await?.unwrap_or_default();
    let (path, format) = (file.path().to_path_buf(), query.format);
    let read = tokio::task::spawn_blocking(move || logs::read_file(&path, format, &manifest))
        .await
        .map_err(|err| ApiError::internal("reading the log failed", &err))?;
    let mut aggregate = match read {
        Ok(aggregate) => aggregate,
        Err(LogError::UnknownFormat { first, .. }) => {
            return Err(ApiError::bad_request(
                "bad_log",
                format!(
                    "not a CloudFront, Logpush or Front Door log (its first line is {first:?}); name the format with ?format="
                ),
            ));
        }
        Err(err) => return Err(ApiError::internal("reading the log failed", &err)),
    };
    aggregate.report.file = "(upload)".into();
    let stored = logs::store(state.cache(), &site, &aggregate, &config.analytics)
        .await
        .map_err(|err| {
            tracing::error!(error = %err, "storing CDN analytics");
            ApiError::unavailable(
                "analytics_unavailable",
                "analytics cannot be stored right now; nothing was added",
            )
        })?;
    if let Stored::AlreadyIngested { at } = stored {
        return Err(ApiError::Conflict {
            code: "already_ingested",
            message: format!(
                "this file was ingested before (at {}); nothing was added",
                crate::analytics::report::format_time(at)
            ),
        });
    }
    if let Err(err) = logs::refresh_gauges(state.cache(), &site, crate::jobs::unix_now()).await {
        tracing::warn!(error = %err, "cannot refresh the CDN gauges");
    }
    state.guard().audit(
        &req,
        &key,
        "logs.ingest",
        Some(&site),
        json!({ "requests": aggregate.report.requests, "bytes": received }),
    );
    Ok(HttpResponse::Ok().json(&aggregate.report))
}
