//! `GET /openapi.json`: the API description, generated at compile time from the route
//! handlers' `#[utoipa::path]` attributes and the types they take and return, so it
//! cannot drift from the code.

use std::sync::OnceLock;

use actix_web::HttpResponse;
use utoipa::OpenApi;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};

use super::routes;

/// The document's root.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "edgeship",
        description = "Deploy, purge and analytics API of `edgeship serve`. Every `/v1` route takes `Authorization: Bearer <key>` (create keys with `edgeship keys create`); errors are `{ \"error\": { \"code\", \"message\" } }`."
    ),
    paths(
        routes::deploy::create,
        routes::deploy::status,
        routes::assets::list,
        routes::purge::create,
        routes::purge::status,
        routes::analytics::report,
        routes::logs::ingest,
        routes::cache::stats,
        routes::health::healthz,
        routes::health::readyz,
        routes::metrics::prometheus,
        openapi_json,
    ),
    components(schemas(
        routes::ErrorBody,
        crate::purge::plan::PurgePlan,
        routes::analytics::GroupByParam,
        routes::logs::LogFormatParam,
    )),
    modifiers(&BearerKey),
    tags(
        (name = "deploy", description = "Upload a site as an archive; follow the deploy job; list what is deployed"),
        (name = "purge", description = "Purge paths, prefixes, globs and tags from the CDN"),
        (name = "analytics", description = "Bytes saved by minification and precompression, and what the origin served"),
        (name = "operations", description = "Health, readiness, metrics and this document"),
    )
)]
pub struct ApiDoc;

/// Declares the `api_key` bearer scheme the routes refer to.
struct BearerKey;

impl utoipa::Modify for BearerKey {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let mut scheme = Http::new(HttpAuthScheme::Bearer);
        scheme.description = Some("An API key from `edgeship keys create`".into());
        components.add_security_scheme("api_key", SecurityScheme::Http(scheme));
    }
}

/// Operations whose query parameters read as absent when empty (`from=`).
const EMPTY_AS_ABSENT: [(&str, &str); 1] = [("/v1/analytics", "get")];

/// Says `allowEmptyValue` on the query parameters of [`EMPTY_AS_ABSENT`] (utoipa has no
/// attribute for it), so clients and schemathesis know an empty value is accepted.
fn allow_empty_values(doc: &mut serde_json::Value) {
    for (path, method) in EMPTY_AS_ABSENT {
        if let Some(parameters) = doc["paths"][path][method]["parameters"].as_array_mut() {
            for parameter in parameters.iter_mut().filter(|p| p["in"] == "query") {
                parameter["allowEmptyValue"] = serde_json::Value::Bool(true);
            }
        }
    }
}

/// The document as JSON, rendered once.
pub fn document() -> &'static str {
    static JSON: OnceLock<String> = OnceLock::new();
    JSON.get_or_init(|| {
        let mut doc = ApiDoc::openapi();
        doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
        serde_json::to_value(&doc)
            .and_then(|mut doc| {
                allow_empty_values(&mut doc);
                serde_json::to_string_pretty(&doc)
            })
            .unwrap_or_else(|err| {
                tracing::error!(error = %err, "cannot render the OpenAPI document");
                "{}".to_owned()
            })
    })
}

/// This API's OpenAPI 3.1 description.
#[utoipa::path(get, path = "/openapi.json", tag = "operations",
    responses((status = 200, description = "The OpenAPI document", body = Object)))]
pub async fn openapi_json() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(document())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_registered_route_is_described_with_its_method() {
        let doc: serde_json::Value = serde_json::from_str(document()).unwrap();
        let paths = doc["paths"].as_object().unwrap();
        for (path, method) in [
            ("/v1/sites/{site}/deploys", "post"),
            ("/v1/deploys/{id}", "get"),
            ("/v1/sites/{site}/assets", "get"),
            ("/v1/sites/{site}/purges", "post"),
            ("/v1/purges/{id}", "get"),
            ("/v1/analytics", "get"),
            ("/v1/cache/stats", "get"),
            ("/healthz", "get"),
            ("/readyz", "get"),
            ("/metrics", "get"),
            ("/openapi.json", "get"),
        ] {
            assert!(
                paths.get(path).and_then(|p| p.get(method)).is_some(),
                "{method} {path} missing"
            );
        }
        assert_eq!(
            doc["components"]["securitySchemes"]["api_key"]["scheme"],
            "bearer"
        );
        for status in ["401", "403", "429"] {
            assert!(
                doc["paths"]["/v1/analytics"]["get"]["responses"]
                    .get(status)
                    .is_some(),
                "authenticated routes document {status}"
            );
        }
        let job = &doc["components"]["schemas"]["PurgeJob"]["properties"];
        assert!(job.get("batches").is_some(), "{job}");
        assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
    }
}
