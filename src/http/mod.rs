//! The HTTP service behind `edgeship serve` (actix-web).
//!
//! [`serve`] takes an already-bound listener and a shutdown future, so tests run the real
//! app on port 0 and stop it when they are done.

pub mod origin;
pub mod prometheus;
pub mod routes;

use std::future::Future;
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::Arc;

use actix_web::{App, HttpServer, web};

use crate::cache::Cache;
use crate::config::{Config, ConfigError};
use crate::pipeline::rules::RuleSet;

/// Shared, read-only state of the running service.
#[derive(Debug, Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    origin_root: PathBuf,
    origin_rules: RuleSet,
    origin: origin::Origin,
    cache: Cache,
}

impl AppState {
    /// Builds the state from config: the origin serves `server.origin_site`; the cache is
    /// what `[cache]` describes (Redis with a memory fallback, or memory only). Does not
    /// connect to Redis: the first cache call does.
    pub fn new(config: &Config) -> Result<Self, ConfigError> {
        let cache = Cache::from_config(&config.cache).map_err(|err| ConfigError::Value {
            key: "cache".into(),
            message: err.to_string(),
        })?;
        Self::with_cache(config, cache)
    }

    /// Builds the state with a given cache (tests, embedding).
    pub fn with_cache(config: &Config, cache: Cache) -> Result<Self, ConfigError> {
        let site = config.site(&config.server.origin_site)?;
        let origin_rules = RuleSet::new(&site.rules).map_err(|message| ConfigError::Value {
            key: format!("sites.{}.rules", site.name),
            message,
        })?;
        // Install the process's metrics recorder before the first cache call records.
        prometheus::handle();
        let origin = origin::Origin::new(&site.name, &site.root, &config.deploy.manifest_key);
        Ok(Self {
            inner: Arc::new(Inner {
                origin,
                origin_root: site.root,
                origin_rules,
                cache,
            }),
        })
    }

    /// The cache layer. Manifests, job state, deploy locks and the processing-cache
    /// index go through it (keys from [`Cache::site`]).
    pub fn cache(&self) -> &Cache {
        &self.inner.cache
    }

    /// The directory the origin serves.
    pub fn origin_root(&self) -> &std::path::Path {
        &self.inner.origin_root
    }

    /// The rules that pick headers for origin responses.
    pub fn origin_rules(&self) -> &RuleSet {
        &self.inner.origin_rules
    }

    /// The origin: the site's manifest, file cache and served-bytes counters.
    pub fn origin(&self) -> &origin::Origin {
        &self.inner.origin
    }
}

/// Registers every route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(routes::health::healthz))
        .route("/readyz", web::get().to(routes::health::readyz))
        .route("/metrics", web::get().to(routes::metrics::prometheus))
        .route("/v1/cache/stats", web::get().to(routes::cache::stats));
    if routes::origin::bench_hello_enabled() {
        cfg.route(
            routes::origin::BENCH_HELLO_PATH,
            web::get().to(routes::origin::bench_hello),
        );
    }
    cfg.default_service(web::route().to(routes::origin::serve_file));
}

/// Runs the service on `listener` until `shutdown` resolves, then stops gracefully
/// (in-flight requests finish).
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // Served-bytes counters reach the cache layer every second, and once more at the end.
    let flusher = state.origin().start_flusher(state.cache().clone());
    let server = HttpServer::new(move || {
        App::new()
            .app_data(web::Data::new(state.clone()))
            .configure(configure)
    })
    .disable_signals()
    .listen(listener)?
    .run();
    let handle = server.handle();
    tokio::spawn(async move {
        shutdown.await;
        handle.stop(true).await;
    });
    let result = server.await;
    flusher.stop().await;
    result
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutdown requested; finishing in-flight requests");
}
