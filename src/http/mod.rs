//! The HTTP service behind `edgeship serve` (actix-web).
//!
//! [`serve`] takes an already-bound listener and a shutdown future, so tests run the real
//! app on port 0 and stop it when they are done.

pub mod auth;
pub mod error;
pub mod openapi;
pub mod origin;
pub mod prometheus;
pub mod routes;
pub mod uploads;
pub mod worker;

use std::future::Future;
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::Arc;

use std::time::Duration;

use actix_web::http::{StatusCode, header};
use actix_web::{App, HttpServer, middleware, web};

use tokio_util::task::TaskTracker;

use crate::api_keys::KeyStore;
use crate::audit::AuditLog;
use crate::cache::Cache;
use crate::config::Config;
use crate::jobs::JobStore;
use crate::jobs::queue::JobQueue;
use crate::pipeline::rules::RuleSet;
use crate::site::{SiteError, Sites};

/// Shared, read-only state of the running service.
#[derive(Debug, Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    sites: Sites,
    origin: Option<OriginSite>,
    guard: auth::Guard,
    jobs: TaskTracker,
    /// The runtime background jobs run on (see [`AppState::spawn_job`]).
    runtime: Option<tokio::runtime::Handle>,
    report_cache: routes::analytics::ReportCache,
    providers: routes::health::ProviderProbes,
    uploads: Arc<uploads::UploadSlots>,
    /// The job queue shared with other replicas (with Redis only).
    queue: Option<Arc<JobQueue>>,
}

/// The local site the built-in origin serves.
#[derive(Debug)]
pub struct OriginSite {
    root: PathBuf,
    rules: RuleSet,
    origin: origin::Origin,
}

impl OriginSite {
    /// The directory served.
    pub fn root(&self) -> &std::path::Path {
        &self.root
    }

    /// The rules that pick headers for files not in the manifest.
    pub fn rules(&self) -> &RuleSet {
        &self.rules
    }

    /// The site's manifest, file cache and served-bytes counters.
    pub fn origin(&self) -> &origin::Origin {
        &self.origin
    }
}

impl AppState {
    /// Builds the state from config: the sites registry with the cache `[cache]`
    /// describes (Redis with a memory fallback, or memory only), and the origin of the
    /// site [`Config::origin_site`] picks. Does not connect to Redis: the first cache
    /// call does.
    pub fn new(config: &Config) -> Result<Self, SiteError> {
        // The process's metrics recorder first: what registers metrics while the sites
        // are built must reach it.
        prometheus::handle();
        Self::with_sites(Sites::new(config)?)
    }

    /// Builds the state with a given cache (tests, embedding).
    pub fn with_cache(config: &Config, cache: Cache) -> Result<Self, SiteError> {
        prometheus::handle();
        Self::with_sites(Sites::with_cache(config, cache)?)
    }

    /// Builds the state around a sites registry (tests give theirs providers).
    pub fn with_sites(sites: Sites) -> Result<Self, SiteError> {
        // Before the origin registers its counters.
        prometheus::handle();
        let config = sites.config();
        let origin = match config.origin_site() {
            Some(name) => {
                let site = sites.get(&name)?;
                let settings = site.settings();
                let rules = site.rules().clone();
                Some(OriginSite {
                    origin: origin::Origin::new(
                        &settings.name,
                        &settings.root,
                        &config.deploy.manifest_key,
                    ),
                    root: settings.root.clone(),
                    rules,
                })
            }
            None => {
                tracing::warn!(
                    sites = %sites.names().collect::<Vec<_>>().join(", "),
                    "the built-in origin serves no site: several sites are configured and none is `default`; set server.origin_site to serve one"
                );
                None
            }
        };
        let keys = KeyStore::new(sites.home(), &config.data_dir);
        let audit = AuditLog::new(&config.data_dir);
        let guard = auth::Guard::new(&config.server, keys, audit, sites.cache().clone());
        let providers =
            routes::health::ProviderProbes::new(&sites, origin.as_ref().map(|o| o.origin.site()));
        // Jobs go through the queue when they are kept in Redis (every replica sees them).
        let queue = match (&config.cache.redis_url, sites.home()) {
            (Some(url), crate::home::StateHome::Cache(cache)) => Some(Arc::new(
                JobQueue::new(
                    url.expose(),
                    config.cache.redis_options(),
                    cache.keys(),
                    &JobQueue::consumer_name(),
                    config.jobs.clone(),
                )
                .map_err(SiteError::Cache)?,
            )),
            _ => None,
        };
        Ok(Self {
            inner: Arc::new(Inner {
                origin,
                guard,
                jobs: TaskTracker::new(),
                runtime: tokio::runtime::Handle::try_current().ok(),
                report_cache: routes::analytics::report_cache(),
                providers,
                uploads: uploads::UploadSlots::new(&config.server),
                queue,
                sites,
            }),
        })
    }

    /// The configuration the service runs with.
    pub fn config(&self) -> &Config {
        self.inner.sites.config()
    }

    /// Every configured site with its long-lived provider stack.
    pub fn sites(&self) -> &Sites {
        &self.inner.sites
    }

    /// Authentication, scopes and rate limits of the API.
    pub fn guard(&self) -> &auth::Guard {
        &self.inner.guard
    }

    /// Where deploy and purge jobs are kept.
    pub fn job_store(&self) -> &JobStore {
        self.inner.sites.jobs()
    }

    /// Background jobs (deploys, purges); shutdown waits for them.
    pub fn jobs(&self) -> &TaskTracker {
        &self.inner.jobs
    }

    /// Runs a background job (a deploy or a purge) on the runtime the state was built on,
    /// the service's own. A request handler's runtime is its HTTP worker's, which ends
    /// when the server stops: a job spawned there would be dropped at shutdown instead
    /// of being given `server.shutdown_grace_secs` to finish.
    pub fn spawn_job<F>(&self, job: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        match &self.inner.runtime {
            Some(runtime) => drop(self.inner.jobs.spawn_on(job, runtime)),
            None => drop(self.inner.jobs.spawn(job)),
        }
    }

    /// Creates and returns an admin key when no usable key exists (first start), so a
    /// fresh install is usable at once and never open.
    pub async fn ensure_admin_key(&self) -> Result<Option<String>, crate::api_keys::KeyError> {
        let keys = self.inner.guard.keys();
        if keys.has_usable_key().await? {
            return Ok(None);
        }
        let created = self
            .inner
            .guard
            .create_key("initial-admin", vec![crate::api_keys::Scope::Admin])
            .await?;
        AuditLog::new(&self.config().data_dir).record(&crate::audit::event(
            "key.create",
            "service",
            serde_json::json!({ "id": created.key.id, "name": created.key.name, "scopes": ["admin"] }),
        ));
        Ok(Some(created.token))
    }

    /// The cache layer. Manifests, job state, deploy locks and the processing-cache
    /// index go through it (keys from [`Cache::site`]).
    pub fn cache(&self) -> &Cache {
        self.inner.sites.cache()
    }

    /// The site the built-in origin serves, if any.
    pub fn origin_site(&self) -> Option<&OriginSite> {
        self.inner.origin.as_ref()
    }

    /// Recent `GET /v1/analytics` answers, by query string.
    pub fn report_cache(&self) -> &routes::analytics::ReportCache {
        &self.inner.report_cache
    }

    /// Deploy uploads being received, limited in total and per key.
    pub fn uploads(&self) -> &Arc<uploads::UploadSlots> {
        &self.inner.uploads
    }

    /// The job queue shared by replicas: present when jobs are kept in Redis.
    pub fn queue(&self) -> Option<&Arc<JobQueue>> {
        self.inner.queue.as_ref()
    }

    /// Each configured site's provider, probed for `/readyz`.
    pub fn provider_probes(&self) -> &routes::health::ProviderProbes {
        &self.inner.providers
    }
}

/// Registers every route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(routes::health::healthz))
        .route("/readyz", web::get().to(routes::health::readyz))
        .route("/metrics", web::get().to(routes::metrics::prometheus))
        .route("/openapi.json", web::get().to(openapi::openapi_json))
        .route("/dashboard", web::get().to(routes::dashboard::index))
        .route(
            "/dashboard/app.js",
            web::get().to(routes::dashboard::script),
        )
        .route(
            "/dashboard/app.css",
            web::get().to(routes::dashboard::style),
        )
        .service(
            web::scope("/v1")
                .wrap(
                    middleware::DefaultHeaders::new()
                        .add((
                            header::CONTENT_SECURITY_POLICY,
                            "default-src 'none'; frame-ancestors 'none'",
                        ))
                        .add((header::CACHE_CONTROL, "no-store")),
                )
                .service(only_get("/cache/stats").route(web::get().to(routes::cache::stats)))
                .service(only_get("/analytics").route(web::get().to(routes::analytics::report)))
                .service(
                    only_post("/sites/{site}/purges").route(web::post().to(routes::purge::create)),
                )
                .service(only_get("/purges/{id}").route(web::get().to(routes::purge::status)))
                .service(
                    only_post("/sites/{site}/deploys")
                        .route(web::post().to(routes::deploy::create)),
                )
                .service(only_get("/deploys/{id}").route(web::get().to(routes::deploy::status)))
                .service(
                    only_post("/sites/{site}/logs").route(web::post().to(routes::logs::ingest)),
                )
                .service(
                    only_get("/sites/{site}/assets").route(web::get().to(routes::assets::list)),
                )
                .default_service(web::route().to(routes::not_found)),
        );
    if routes::origin::bench_hello_enabled() {
        cfg.route(
            routes::origin::BENCH_HELLO_PATH,
            web::get().to(routes::origin::bench_hello),
        );
    }
    cfg.default_service(web::route().to(routes::origin::serve_file));
}

/// A `/v1` resource answering other methods than GET with 405 and `Allow`.
fn only_get(path: &str) -> actix_web::Resource {
    web::resource(path).default_service(web::to(|| async { routes::method_not_allowed("GET") }))
}

/// A `/v1` resource answering other methods than POST with 405 and `Allow`.
fn only_post(path: &str) -> actix_web::Resource {
    web::resource(path).default_service(web::to(|| async { routes::method_not_allowed("POST") }))
}

/// JSON bodies: capped at `max_json_bytes`; bad ones get the JSON error shape (413 when
/// too large, 400 when malformed, 415 when not JSON). Handlers read bodies with
/// [`routes::json_body`] after authenticating; this is for any extractor use.
fn json_config(max_bytes: usize) -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(max_bytes)
        .error_handler(|err, _req| {
            let response = actix_web::ResponseError::error_response(&error::ApiError::from(&err));
            actix_web::error::InternalError::from_response(err, response).into()
        })
}

/// Query strings: a bad one gets the JSON error shape (400 `bad_query`).
fn query_config() -> web::QueryConfig {
    web::QueryConfig::default().error_handler(|err, _req| {
        let response =
            routes::error_response(StatusCode::BAD_REQUEST, "bad_query", &err.to_string());
        actix_web::error::InternalError::from_response(err, response).into()
    })
}

/// Path parameters: a bad one gets the JSON error shape (404 `not_found`).
fn path_config() -> web::PathConfig {
    web::PathConfig::default().error_handler(|err, _req| {
        let response = routes::error_response(StatusCode::NOT_FOUND, "not_found", &err.to_string());
        actix_web::error::InternalError::from_response(err, response).into()
    })
}

/// Headers every response carries, and a request id (the client's `X-Request-Id` when it
/// is sane, else a new one) echoed back and attached to the request's log lines.
fn security_headers() -> middleware::DefaultHeaders {
    middleware::DefaultHeaders::new()
        .add((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .add((header::X_FRAME_OPTIONS, "DENY"))
        .add((header::REFERRER_POLICY, "no-referrer"))
        .add(("Cross-Origin-Resource-Policy", "same-site"))
}

fn cors(origins: &[String]) -> actix_cors::Cors {
    let mut cors = actix_cors::Cors::default()
        .allowed_methods(["GET", "POST", "DELETE"])
        .allowed_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
        .max_age(600);
    for origin in origins {
        cors = cors.allowed_origin(origin);
    }
    cors
}

/// Runs the service on `listener` until `shutdown` resolves, then stops gracefully
/// (in-flight requests finish).
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // Deploys a killed predecessor left running are settled, and its purge jobs
    // continued, before anything is served.
    routes::deploy::settle_interrupted(&state).await;
    routes::purge::resume_interrupted(&state).await;
    let tracker = state.jobs().clone();
    // This replica's share of the queued jobs.
    let workers = state
        .queue()
        .map(|queue| worker::start(state.clone(), Arc::clone(queue)));
    let grace = Duration::from_secs(state.config().server.shutdown_grace_secs);
    // Served-bytes counters reach the cache layer every second, and once more at the end.
    let flusher = state
        .origin_site()
        .map(|site| site.origin().start_flusher(state.cache().clone()));
    // The CDN gauges follow logs ingested by any process (`logs pull` from cron).
    let gauges = {
        let (cache, sites) = (state.cache().clone(), state.config().site_names());
        tokio::spawn(async move {
            loop {
                for site in &sites {
                    let _ = crate::analytics::logs::refresh_gauges(
                        &cache,
                        site,
                        crate::jobs::unix_now(),
                    )
                    .await;
                }
                tokio::time::sleep(Duration::from_secs(60)).await;
            }
        })
    };
    let server = HttpServer::new(move || {
        let server = &state.config().server;
        App::new()
            .app_data(web::Data::new(state.clone()))
            .app_data(json_config(server.max_json_bytes))
            .app_data(query_config())
            .app_data(path_config())
            .wrap(middleware::Condition::new(
                !server.cors_origins.is_empty(),
                cors(&server.cors_origins),
            ))
            .wrap(security_headers())
            .wrap_fn(request_id)
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
    if let Some(workers) = workers {
        // No new jobs; those running get the grace period below, and what they leave
        // unfinished is claimed by another replica.
        workers.stop().await;
    }
    gauges.abort();
    if let Some(flusher) = flusher {
        flusher.stop().await;
    }
    result?;
    // Running deploy and purge jobs finish (their state is saved after every step, so
    // one cut off by the grace period can be continued).
    tracker.close();
    if !tracker.is_empty() {
        tracing::info!(jobs = tracker.len(), "waiting for running jobs");
        if tokio::time::timeout(grace, tracker.wait()).await.is_err() {
            tracing::warn!(
                jobs = tracker.len(),
                "jobs still running at shutdown; their saved state says where they stopped"
            );
        }
    }
    Ok(())
}

static REQUEST_SEQUENCE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// Gives every request an id: the client's `X-Request-Id` when it is short and printable,
/// else a new one; echoed in the response and recorded on the request's log span.
fn request_id<S, B>(
    req: actix_web::dev::ServiceRequest,
    srv: &S,
) -> impl Future<Output = Result<actix_web::dev::ServiceResponse<B>, actix_web::Error>> + use<S, B>
where
    S: actix_web::dev::Service<
            actix_web::dev::ServiceRequest,
            Response = actix_web::dev::ServiceResponse<B>,
            Error = actix_web::Error,
        >,
{
    use tracing::Instrument;
    let given = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_owned);
    let id = given.unwrap_or_else(|| {
        format!(
            "{:x}-{:x}",
            crate::jobs::unix_now(),
            REQUEST_SEQUENCE.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        )
    });
    let span = tracing::info_span!("request", id = %id, method = %req.method(), path = %req.path());
    let started = std::time::Instant::now();
    let future = srv.call(req);
    async move {
        let mut response = future.await?;
        let request = response.request();
        prometheus::record_request(
            request.match_pattern().as_deref(),
            request.path(),
            request.method(),
            response.status().as_u16(),
            started.elapsed(),
        );
        if let Ok(value) = header::HeaderValue::from_str(&id) {
            response
                .headers_mut()
                .insert(header::HeaderName::from_static("x-request-id"), value);
        }
        Ok(response)
    }
    .instrument(span)
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
