//! The process-wide Prometheus recorder behind `GET /metrics`.
//!
//! The `metrics` facade allows one global recorder per process, installed once. [`handle`]
//! installs it on first use and hands every later caller (every app a test process starts)
//! the same handle, so starting several apps never fails. If some other recorder was
//! installed first (an embedding program's), edgeship keeps a private one and `/metrics`
//! shows only what reaches it, with a warning.
//!
//! Histograms buffer samples until "upkeep" drains them; without the exporter's HTTP
//! listener nobody does that, so one background thread runs it every few seconds for the
//! life of the process (the recorder lives that long too).

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::cache::metrics::{LATENCY_BUCKETS_US, names};

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
        // Only an empty bucket list is refused, and ours is a non-empty constant.
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full(names::DURATION.into()), &buckets)
            .unwrap_or_else(|_| PrometheusBuilder::new());
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!(
                "another metrics recorder is installed; /metrics will not show edgeship's metrics"
            );
        }
        crate::cache::metrics::describe();
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
