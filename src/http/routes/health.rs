//! `GET /healthz` (the process is up) and `GET /readyz` (it works as configured: the
//! cache layer, and each configured site's provider).

use std::collections::BTreeMap;
use std::time::Duration;

use actix_web::{HttpResponse, web};
use edgeship_providers::{ProviderError, SharedProvider};
use serde::Serialize;
use serde_json::json;

use crate::cache::Health;
use crate::config::{Config, ConfigError};
use crate::http::AppState;

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

/// What a provider probe found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProbeResult {
    /// `ready` or `unreachable`.
    pub status: &'static str,
    /// The provider, as named in logs.
    pub provider: String,
    /// Why it is unreachable.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Each configured site's provider, and its recent probe results.
#[derive(Debug)]
pub struct ProviderProbes {
    providers: BTreeMap<String, SharedProvider>,
    manifest_key: String,
    results: moka::future::Cache<String, ProbeResult>,
}

impl ProviderProbes {
    /// The providers of every configured site (clients connect on first use).
    pub fn new(config: &Config) -> Result<Self, ConfigError> {
        let mut providers = BTreeMap::new();
        for name in config.site_names() {
            let site = config.site(&name)?;
            providers.insert(name, crate::deploy::open_provider(&site));
        }
        Ok(Self {
            providers,
            manifest_key: config.deploy.manifest_key.clone(),
            results: moka::future::Cache::builder()
                .time_to_live(PROBE_TTL)
                .build(),
        })
    }

    /// Probes every provider (answers younger than [`PROBE_TTL`] are reused; concurrent
    /// callers share one probe): a read of the site's manifest that gets an answer,
    /// found or not, means reachable.
    pub async fn check(&self) -> BTreeMap<String, ProbeResult> {
        let mut results = BTreeMap::new();
        for (site, provider) in &self.providers {
            let result = self
                .results
                .get_with_by_ref(site, probe(provider, &self.manifest_key))
                .await;
            results.insert(site.clone(), result);
        }
        results
    }
}

async fn probe(provider: &SharedProvider, manifest_key: &str) -> ProbeResult {
    let outcome = tokio::time::timeout(PROBE_TIMEOUT, provider.head(manifest_key)).await;
    let reason = match outcome {
        Ok(Ok(_) | Err(ProviderError::NotFound { .. })) => None,
        Ok(Err(err)) => Some(err.to_string()),
        Err(_) => Some(format!("no answer within {} s", PROBE_TIMEOUT.as_secs())),
    };
    ProbeResult {
        status: if reason.is_none() {
            "ready"
        } else {
            "unreachable"
        },
        provider: provider.to_string(),
        reason,
    }
}

/// Readiness: 200 `{"status":"ready","cache":{…},"providers":{site:{…}}}` when the cache
/// layer uses what is configured and every site's provider answers; else 503 with
/// `"status":"degraded"` and, for the first problem, `component` (`cache` or
/// `provider:<site>`) and `reason`. Requests still succeed while the cache is degraded
/// (it serves from memory); the 503 lets a load balancer prefer healthy replicas and
/// tells operators why.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "Ready: the cache and every provider answer", body = Object),
        (status = 503, description = "Degraded: which component, why, since when", body = Object),
    ))]
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let (cache_health, providers) =
        tokio::join!(state.cache().health(), state.provider_probes().check());
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
    if problem.is_none()
        && let Some((site, result)) = providers.iter().find(|(_, r)| r.reason.is_some())
    {
        problem = Some((
            format!("provider:{site}"),
            result.reason.clone().unwrap_or_default(),
        ));
    }
    match problem {
        None => HttpResponse::Ok().json(json!({
            "status": "ready",
            "cache": cache,
            "providers": providers,
        })),
        Some((component, reason)) => HttpResponse::ServiceUnavailable().json(json!({
            "status": "degraded",
            "component": component,
            "reason": reason,
            "degraded_for_ms": cache.get("degraded_for_ms"),
            "cache": cache,
            "providers": providers,
        })),
    }
}
