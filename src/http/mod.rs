//! The HTTP service behind `edgeship serve` (actix-web).
//!
//! [`serve`] takes an already-bound listener and a shutdown future, so tests run the real
//! app on port 0 and stop it when they are done.

pub mod routes;

use std::future::Future;
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::Arc;

use actix_web::{App, HttpServer, web};

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
}

impl AppState {
    /// Builds the state from config: the origin serves `server.origin_site`.
    pub fn new(config: &Config) -> Result<Self, ConfigError> {
        let site = config.site(&config.server.origin_site)?;
        let origin_rules = RuleSet::new(&site.rules).map_err(|message| ConfigError::Value {
            key: format!("sites.{}.rules", site.name),
            message,
        })?;
        Ok(Self {
            inner: Arc::new(Inner {
                origin_root: site.root,
                origin_rules,
            }),
        })
    }

    /// The directory the origin serves.
    pub fn origin_root(&self) -> &std::path::Path {
        &self.inner.origin_root
    }

    /// The rules that pick headers for origin responses.
    pub fn origin_rules(&self) -> &RuleSet {
        &self.inner.origin_rules
    }
}

/// Registers every route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(routes::health::healthz))
        .default_service(web::route().to(routes::origin::serve_file));
}

/// Runs the service on `listener` until `shutdown` resolves, then stops gracefully
/// (in-flight requests finish).
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
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
    server.await
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
