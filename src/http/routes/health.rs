//! `GET /healthz` (the process is up) and `GET /readyz` (it works as configured: the
//! cache layer, and each configured site's provider).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use actix_web::{HttpResponse, web};
use edgeship_providers::{ProviderError, SharedProvider};
use serde::Serialize;
use serde_json::json;

use crate::cache::Health;
use crate::http::AppState;
use crate::site::{ProviderKind, Sites};

/// How long a provider probe's answer is reused: load balancers may poll `/readyz`
/// every second without every poll reaching the provider.
pub const PROBE_TTL: Duration = Duration::from_secs(5);

/// A probe slower than this counts as unreachable.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// Liveness: always 200 while the server runs.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "`{\"status\":\"ok\",\"version\":…}`", body = Object)))]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok", "version": env!("CARGO_PKG_VERSION") }))
}

/// What a provider probe found. Only the provider's kind and the error's class are
/// shown (the endpoint is public); the full error goes to the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProbeResult {
    /// `ready` or `unreachable`.
    pub status: &'static str,
    /// The provider kind (`local`, `aws`, …).
    pub provider: String,
    /// Why it is unreachable: the error class (`auth`, `retryable`, `timeout`, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
}

/// Each configured site's provider, and its recent probe results.
#[derive(Debug)]
pub struct ProviderProbes {
    providers: BTreeMap<String, (ProviderKind, SharedProvider)>,
    manifest_key: String,
    origin_site: Option<String>,
    results: moka::future::Cache<String, ProbeResult>,
}

impl ProviderProbes {
    /// The providers of every site in the registry (without retries: a probe wants one
    /// quick answer); `origin_site` is the one readiness depends on.
    pub fn new(sites: &Sites, origin_site: Option<&str>) -> Self {
        let providers = sites
            .iter()
            .map(|site| {
                (
                    site.name().to_string(),
                    (site.kind(), Arc::clone(site.unwrapped_provider())),
                )
            })
            .collect();
        Self {
            providers,
            manifest_key: sites.config().deploy.manifest_key.clone(),
            origin_site: origin_site.map(str::to_owned),
            results: moka::future::Cache::builder()
                .time_to_live(PROBE_TTL)
                .build(),
        }
    }

    /// Probes every provider at once (answers younger than [`PROBE_TTL`] are reused;
    /// concurrent callers share one probe): a read of the site's manifest that gets an
    /// answer, found or not, means reachable.
    pub async fn check(&self) -> BTreeMap<String, ProbeResult> {
        let mut probes = tokio::task::JoinSet::new();
        for (site, (kind, provider)) in &self.providers {
            let (site, kind, provider) = (site.clone(), *kind, provider.clone());
            let (results, key) = (self.results.clone(), self.manifest_key.clone());
            probes.spawn(async move {
                let result = results
                    .get_with_by_ref(&site, probe(&site, kind, &provider, &key))
                    .await;
                (site, result)
            });
        }
        let mut results = BTreeMap::new();
        while let Some(joined) = probes.join_next().await {
            if let Ok((site, result)) = joined {
                results.insert(site, result);
            }
        }
        results
    }

    /// The site the origin serves: the one provider readiness depends on.
    pub fn origin_site(&self) -> Option<&str> {
        self.origin_site.as_deref()
    }
}

async fn probe(
    site: &str,
    kind: ProviderKind,
    provider: &SharedProvider,
    manifest_key: &str,
) -> ProbeResult {
    let outcome = tokio::time::timeout(PROBE_TIMEOUT, provider.head(manifest_key)).await;
    let reason = match outcome {
        Ok(Ok(_) | Err(ProviderError::NotFound { .. })) => None,
        Ok(Err(err)) => {
            tracing::warn!(site, provider = %provider, error = %err, "readiness probe failed");
            Some(err.class())
        }
        Err(_) => {
            tracing::warn!(site, provider = %provider, "readiness probe: no answer within {} s", PROBE_TIMEOUT.as_secs());
            Some("timeout")
        }
    };
    ProbeResult {
        status: if reason.is_none() {
            "ready"
        } else {
            "unreachable"
        },
        provider: kind.to_string(),
        reason,
    }
}

/// Readiness: 200 `{"status":"ready","cache":{…},"providers":{site:{…}}}`, or 503
/// `"status":"degraded"` with the `component` (`cache`, or `provider:<site>` for the
/// site this service's origin serves) and `reason`. Requests still succeed while the
/// cache is degraded (it serves from memory); the 503 lets a load balancer prefer
/// healthy replicas and tells operators why. Other sites' providers are shown but do not
/// make a replica unready (every replica shares them, so a 503 would only empty the
/// pool): an unreachable one is listed under `warnings`.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "Ready: the cache and the origin site's provider answer", body = Object),
        (status = 503, description = "Degraded: which component, why, since when", body = Object),
    ))]
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let probes = state.provider_probes();
    let (cache_health, providers) = tokio::join!(state.cache().health(), probes.check());
    let mut problem: Option<(String, String)> = None;
    let cache = match cache_health {
        Health::Ready => json!({ "status": "ready" }),
        Health::Degraded {
            reason,
            degraded_for_ms,
        } => {
            problem = Some(("cache".into(), reason.clone()));
            json!({ "status": "degraded", "reason": reason, "degraded_for_ms": degraded_for_ms })
        }
    };
    let mut warnings = Vec::new();
    for (site, result) in &providers {
        let Some(reason) = result.reason else {
            continue;
        };
        if Some(site.as_str()) == probes.origin_site() {
            if problem.is_none() {
                problem = Some((format!("provider:{site}"), reason.to_owned()));
            }
        } else {
            warnings.push(format!("provider:{site} is unreachable ({reason})"));
        }
    }
    let mut body = json!({
        "status": "ready",
        "cache": cache,
        "providers": providers,
    });
    if !warnings.is_empty() {
        body["warnings"] = json!(warnings);
    }
    match problem {
        None => HttpResponse::Ok().json(body),
        Some((component, reason)) => {
            body["status"] = json!("degraded");
            body["component"] = json!(component);
            body["reason"] = json!(reason);
            body["degraded_for_ms"] = body["cache"]
                .get("degraded_for_ms")
                .cloned()
                .unwrap_or(serde_json::Value::Null);
            HttpResponse::ServiceUnavailable().json(body)
        }
    }
}
