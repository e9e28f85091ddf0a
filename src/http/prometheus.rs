//! The process-wide Prometheus recorder behind `GET /metrics`.
//!
//! The `metrics` facade allows one global recorder per process, installed once. [`handle`]
//! installs it on first use and hands every later caller (every app a test process starts)
//! the same handle, so starting several apps never fails. If some other recorder was
//! installed first (an embedding program's), edgeship keeps a private one and `/metrics`
//! shows only what reaches it, with a warning.
//!
//! Besides the cache layer's, provider and origin metrics, this module records the
//! service's own per-request metrics ([`record_request`]):
//!
//! - `edgeship_http_requests_total{route, method, status}`;
//! - `edgeship_http_request_duration_seconds{route, method}` (histogram);
//!
//! `route` is the matched pattern (`/v1/sites/{site}/purges`), `origin` for files the
//! origin serves, and `unmatched` for unknown API paths; `method` is one of the standard
//! methods or `OTHER`. So the label set stays small whatever clients send.
//!
//! Histograms buffer samples until "upkeep" drains them; without the exporter's HTTP
//! listener nobody does that, so one background thread runs it every few seconds for the
//! life of the process (the recorder lives that long too).

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::cache::metrics::{LATENCY_BUCKETS_US, names as cache_names};
use crate::metric_names::{http as names, purge as purge_names};

/// Buckets of the request-duration histogram, in seconds.
const REQUEST_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// How often histogram samples are folded into their buckets.
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// The process's Prometheus handle, installing the global recorder on first call.
pub fn handle() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let buckets: Vec<f64> = LATENCY_BUCKETS_US
            .iter()
            .map(|us| *us as f64 / 1_000_000.0)
            .collect();
        // Only an empty bucket list is refused, and ours are non-empty constants.
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full(cache_names::DURATION.into()), &buckets)
            .and_then(|b| {
                b.set_buckets_for_metric(Matcher::Full(names::DURATION.into()), &REQUEST_BUCKETS)
            })
            .and_then(|b| {
                b.set_buckets_for_metric(
                    Matcher::Full("edgeship_provider_call_duration_seconds".into()),
                    &REQUEST_BUCKETS,
                )
            })
            .unwrap_or_else(|_| PrometheusBuilder::new());
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!(
                "another metrics recorder is installed; /metrics will not show edgeship's metrics"
            );
        }
        crate::cache::metrics::describe();
        describe();
        let upkeep = handle.clone();
        let spawned = std::thread::Builder::new()
            .name("edgeship-metrics-upkeep".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(UPKEEP_INTERVAL);
                    upkeep.run_upkeep();
                }
            });
        if let Err(err) = spawned {
            tracing::warn!(error = %err, "cannot start the metrics upkeep thread; histograms are drained on scrape only");
        }
        handle
    })
}

/// Renders every metric in the Prometheus text format.
pub fn render() -> String {
    let handle = handle();
    handle.run_upkeep();
    handle.render()
}

fn describe() {
    use metrics::{Unit, describe_counter, describe_histogram};
    describe_counter!(
        names::REQUESTS,
        "HTTP requests answered, by route pattern, method and status."
    );
    describe_histogram!(
        names::DURATION,
        Unit::Seconds,
        "Time to answer HTTP requests, by route pattern and method."
    );
    describe_counter!(
        names::UPLOAD_BYTES,
        Unit::Bytes,
        "Bytes of deploy uploads received, by site."
    );
    describe_counter!(purge_names::JOBS, "Purge jobs started, by site and source.");
    describe_counter!(
        purge_names::ITEMS,
        "Items (paths, wildcards, prefixes, tags) sent in purges, by site."
    );
}

/// One series pair of [`record_request`]: the request counter and duration histogram of
/// a route, method and status.
struct RequestSeries {
    method: &'static str,
    status: u16,
    requests: metrics::Counter,
    duration: metrics::Histogram,
}

thread_local! {
    /// Each worker thread's handles, by route: the registry's lookup (label strings
    /// built, keys hashed) is done once per series and thread, not on every request.
    /// Bounded: routes are patterns, methods and statuses few.
    static REQUEST_SERIES: std::cell::RefCell<std::collections::HashMap<String, Vec<RequestSeries>>> =
        std::cell::RefCell::default();
}

/// Counts one answered request and its duration. `route` is the matched pattern, or
/// `None` when no route matched (an origin file, or an unknown API path).
pub fn record_request(
    route: Option<&str>,
    path: &str,
    method: &actix_web::http::Method,
    status: u16,
    elapsed: Duration,
) {
    let route = match route {
        Some(pattern) => pattern,
        None if path == "/v1" || path.starts_with("/v1/") => "unmatched",
        None => "origin",
    };
    use actix_web::http::Method;
    let method = match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    };
    REQUEST_SERIES.with_borrow_mut(|series| {
        let of_route = match series.get_mut(route) {
            Some(of_route) => of_route,
            None => series.entry(route.to_owned()).or_default(),
        };
        let found = match of_route
            .iter()
            .position(|s| s.method == method && s.status == status)
        {
            Some(i) => &of_route[i],
            None => {
                of_route.push(RequestSeries {
                    method,
                    status,
                    requests: metrics::counter!(names::REQUESTS, "route" => route.to_owned(), "method" => method, "status" => status.to_string()),
                    duration: metrics::histogram!(names::DURATION, "route" => route.to_owned(), "method" => method),
                });
                &of_route[of_route.len() - 1]
            }
        };
        found.requests.increment(1);
        found.duration.record(elapsed.as_secs_f64());
    });
}
