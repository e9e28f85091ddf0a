//! `GET /v1/sites/{site}/assets?prefix=&cursor=&limit=`: the site's manifest (what is
//! deployed: path, hash, sizes, headers, variants), in path order, a page at a time.

use std::ops::Bound;

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use super::ApiError;
use crate::api_keys::Scope;
use crate::http::AppState;

/// Most assets in one page.
pub const MAX_PAGE: usize = 10_000;

/// Paging and filtering.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AssetsQuery {
    /// Only paths starting with this (no leading `/`).
    #[serde(default)]
    pub prefix: String,
    /// The `next` of the previous page.
    pub cursor: Option<String>,
    /// Page size (default 1,000, at most 10,000).
    #[param(minimum = 1, maximum = 10000)]
    pub limit: Option<usize>,
}

/// One page of the manifest: `{ site, total, assets: [{ path, hash, size, variants,
/// headers… }], next }`; pass `next` as `cursor` for the following page.
#[utoipa::path(
    get,
    path = "/v1/sites/{site}/assets",
    tag = "deploy",
    params(("site" = String, Path, description = "The site"), AssetsQuery),
    responses(
        (status = 200, description = "One page of deployed assets, in path order", body = Object),
        (status = 400, description = "A bad query (unknown parameter, `limit` not a number)", body = super::ErrorBody),
        (status = 404, description = "Unknown site", body = super::ErrorBody),
        (status = 502, description = "The provider failed", body = super::ErrorBody),
        super::AuthErrors,
    ),
    security(("api_key" = []))
)]
pub async fn list(
    req: HttpRequest,
    site: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    state
        .guard()
        .check(&req, &[Scope::Read, Scope::Deploy])
        .await?;
    let query: AssetsQuery = super::query(&req)?;
    let site = state.sites().get(&site)?;
    let manifest = site.manifest().await?.unwrap_or_default();
    let limit = query.limit.unwrap_or(1000);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::bad_request(
            "bad_query",
            format!("limit must be 1 to {MAX_PAGE} (got {limit})"),
        ));
    }
    let prefix = query.prefix.trim_start_matches('/');
    let start = match &query.cursor {
        Some(cursor) => Bound::Excluded(cursor.clone()),
        None => Bound::Included(prefix.to_string()),
    };
    let mut page = Vec::with_capacity(limit.min(manifest.assets.len()));
    let mut next = None;
    for (path, entry) in manifest
        .assets
        .range::<String, _>((start, Bound::Unbounded))
        .take_while(|(path, _)| path.starts_with(prefix))
    {
        if page.len() == limit {
            next = page.last().map(|(p, _): &(&String, _)| (*p).clone());
            break;
        }
        page.push((path, entry));
    }
    let assets: Vec<serde_json::Value> = page
        .into_iter()
        .map(|(path, entry)| {
            let mut value = serde_json::to_value(entry).unwrap_or_default();
            if let Some(object) = value.as_object_mut() {
                object.insert("path".into(), json!(path));
            }
            value
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({
        "site": site.name(),
        "total": manifest.assets.len(),
        "assets": assets,
        "next": next,
    })))
}
