//! Cache metrics: hits, misses, hit ratio, latency per operation, bytes before and after
//! compression, errors, fallbacks.
//!
//! Each [`CacheMetrics`] counts for one cache (one app) in atomics, which
//! `GET /v1/cache/stats` reads; so several apps in one process (the tests) each see their
//! own numbers. Every event is also sent to the process-wide `metrics` facade, which the
//! Prometheus recorder renders on `GET /metrics` (installed by `edgeship serve`).
//! [`MeteredStore`] is the wrapper that records per-operation figures.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use serde::Serialize;

use super::{Admission, CacheStore, DeleteReport, Health, RateLimit, Result};

/// The operations of [`CacheStore`], as metric labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Operation {
    /// `get`
    Get,
    /// `get_many`
    GetMany,
    /// `set`
    Set,
    /// `set_many`
    SetMany,
    /// `set_if_absent`
    SetIfAbsent,
    /// `delete`
    Delete,
    /// `delete_if_equals`
    DeleteIfEquals,
    /// `delete_pattern`
    DeletePattern,
    /// `ttl`
    Ttl,
    /// `expire`
    Expire,
    /// `incr_by`
    IncrBy,
    /// `hash_incr_by`
    HashIncrBy,
    /// `hash_get_all`
    HashGetAll,
    /// `sorted_add`
    SortedAdd,
    /// `sorted_range_by_score`
    SortedRange,
    /// `sorted_remove`
    SortedRemove,
    /// `throttle`
    Throttle,
    /// `ping`
    Ping,
}

impl Operation {
    /// Every operation, in label order.
    pub const ALL: [Self; 18] = [
        Self::Get,
        Self::GetMany,
        Self::Set,
        Self::SetMany,
        Self::SetIfAbsent,
        Self::Delete,
        Self::DeleteIfEquals,
        Self::DeletePattern,
        Self::Ttl,
        Self::Expire,
        Self::IncrBy,
        Self::HashIncrBy,
        Self::HashGetAll,
        Self::SortedAdd,
        Self::SortedRange,
        Self::SortedRemove,
        Self::Throttle,
        Self::Ping,
    ];

    /// The label value, the trait method's name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Get => "get",
            Self::GetMany => "get_many",
            Self::Set => "set",
            Self::SetMany => "set_many",
            Self::SetIfAbsent => "set_if_absent",
            Self::Delete => "delete",
            Self::DeleteIfEquals => "delete_if_equals",
            Self::DeletePattern => "delete_pattern",
            Self::Ttl => "ttl",
            Self::Expire => "expire",
            Self::IncrBy => "incr_by",
            Self::HashIncrBy => "hash_incr_by",
            Self::HashGetAll => "hash_get_all",
            Self::SortedAdd => "sorted_add",
            Self::SortedRange => "sorted_range_by_score",
            Self::SortedRemove => "sorted_remove",
            Self::Throttle => "throttle",
            Self::Ping => "ping",
        }
    }

    fn index(self) -> usize {
        Self::ALL.iter().position(|op| *op == self).unwrap_or(0)
    }
}

/// Upper bounds of the latency buckets, in microseconds (plus one overflow bucket). Also
/// the Prometheus histogram buckets (in seconds).
pub const LATENCY_BUCKETS_US: [u64; 14] = [
    50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000,
];

/// Prometheus metric names.
pub mod names {
    /// Counter, label `op`: calls per operation.
    pub const OPERATIONS: &str = "edgeship_cache_operations_total";
    /// Counter, label `op`: calls that returned an error.
    pub const ERRORS: &str = "edgeship_cache_errors_total";
    /// Histogram, label `op`: latency per operation.
    pub const DURATION: &str = "edgeship_cache_operation_duration_seconds";
    /// Counter: keys read that were found.
    pub const HITS: &str = "edgeship_cache_hits_total";
    /// Counter: keys read that were not found.
    pub const MISSES: &str = "edgeship_cache_misses_total";
    /// Counter: hits answered by the memory L1 in front of Redis.
    pub const L1_HITS: &str = "edgeship_cache_l1_hits_total";
    /// Gauge: hits / (hits + misses) since start.
    pub const HIT_RATIO: &str = "edgeship_cache_hit_ratio";
    /// Counter: bytes of values written, serialised, before compression.
    pub const BYTES_BEFORE: &str = "edgeship_cache_bytes_before_compression_total";
    /// Counter: bytes of values written as stored (header + maybe compressed payload).
    pub const BYTES_AFTER: &str = "edgeship_cache_bytes_after_compression_total";
    /// Counter: values that were stored compressed.
    pub const COMPRESSED_VALUES: &str = "edgeship_cache_compressed_values_total";
    /// Counter: stored values that could not be decoded.
    pub const DECODE_ERRORS: &str = "edgeship_cache_decode_errors_total";
    /// Counter, label `op`: calls served from memory because Redis was unreachable.
    pub const FALLBACKS: &str = "edgeship_cache_fallbacks_total";
    /// Counter: times Redis became unreachable.
    pub const OUTAGES: &str = "edgeship_cache_outages_total";
    /// Gauge: 1 while serving from memory instead of Redis.
    pub const DEGRADED: &str = "edgeship_cache_degraded";
}

/// Registers descriptions of every cache metric with the installed recorder.
pub fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(names::OPERATIONS, "Cache calls per operation.");
    describe_counter!(names::ERRORS, "Cache calls that returned an error.");
    describe_histogram!(
        names::DURATION,
        Unit::Seconds,
        "Latency of cache calls per operation."
    );
    describe_counter!(names::HITS, "Cache keys read that were found.");
    describe_counter!(names::MISSES, "Cache keys read that were not found.");
    describe_counter!(names::L1_HITS, "Hits answered by the memory L1.");
    describe_gauge!(
        names::HIT_RATIO,
        "Cache hits / (hits + misses) since start."
    );
    describe_counter!(
        names::BYTES_BEFORE,
        Unit::Bytes,
        "Bytes of cache values written, before compression."
    );
    describe_counter!(
        names::BYTES_AFTER,
        Unit::Bytes,
        "Bytes of cache values written, as stored."
    );
    describe_counter!(names::COMPRESSED_VALUES, "Cache values stored compressed.");
    describe_counter!(
        names::DECODE_ERRORS,
        "Stored cache values that did not decode."
    );
    describe_counter!(
        names::FALLBACKS,
        "Cache calls served from memory because Redis was unreachable."
    );
    describe_counter!(names::OUTAGES, "Times Redis became unreachable.");
    describe_gauge!(names::DEGRADED, "1 while the cache serves from memory.");
    // Exposed from the start (as 0), so alerts on it see a healthy value, not none.
    metrics::gauge!(names::DEGRADED).increment(0.0);
}

#[derive(Debug, Default)]
struct OpCounters {
    calls: AtomicU64,
    errors: AtomicU64,
    total_us: AtomicU64,
    max_us: AtomicU64,
    buckets: [AtomicU64; LATENCY_BUCKETS_US.len() + 1],
}

/// The counters of one cache. Shared by the wrappers of one composed store.
#[derive(Debug, Default)]
pub struct CacheMetrics {
    hits: AtomicU64,
    misses: AtomicU64,
    l1_hits: AtomicU64,
    bytes_before: AtomicU64,
    bytes_after: AtomicU64,
    values_written: AtomicU64,
    values_compressed: AtomicU64,
    decode_errors: AtomicU64,
    fallbacks: AtomicU64,
    outages: AtomicU64,
    degraded: AtomicBool,
    ops: [OpCounters; Operation::ALL.len()],
}

fn micros(elapsed: Duration) -> u64 {
    u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX)
}

impl CacheMetrics {
    /// Records one call of `op` that took `elapsed`.
    pub fn record_call(&self, op: Operation, elapsed: Duration, ok: bool) {
        let counters = &self.ops[op.index()];
        let us = micros(elapsed);
        counters.calls.fetch_add(1, Ordering::Relaxed);
        counters.total_us.fetch_add(us, Ordering::Relaxed);
        counters.max_us.fetch_max(us, Ordering::Relaxed);
        let bucket = LATENCY_BUCKETS_US
            .iter()
            .position(|bound| us <= *bound)
            .unwrap_or(LATENCY_BUCKETS_US.len());
        counters.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        metrics::counter!(names::OPERATIONS, "op" => op.name()).increment(1);
        metrics::histogram!(names::DURATION, "op" => op.name()).record(elapsed.as_secs_f64());
        if !ok {
            counters.errors.fetch_add(1, Ordering::Relaxed);
            metrics::counter!(names::ERRORS, "op" => op.name()).increment(1);
        }
    }

    /// Records keys read: `hits` found, `misses` not.
    pub fn record_lookups(&self, hits: u64, misses: u64) {
        let total_hits = self.hits.fetch_add(hits, Ordering::Relaxed) + hits;
        let total_misses = self.misses.fetch_add(misses, Ordering::Relaxed) + misses;
        metrics::counter!(names::HITS).increment(hits);
        metrics::counter!(names::MISSES).increment(misses);
        if let Some(ratio) = ratio(total_hits, total_hits + total_misses) {
            metrics::gauge!(names::HIT_RATIO).set(ratio);
        }
    }

    /// Records hits answered by the L1.
    pub fn record_l1_hits(&self, hits: u64) {
        self.l1_hits.fetch_add(hits, Ordering::Relaxed);
        metrics::counter!(names::L1_HITS).increment(hits);
    }

    /// Records one value written: serialised size, stored size, whether compressed.
    pub fn record_encoded(&self, before: usize, after: usize, compressed: bool) {
        let (before, after) = (before as u64, after as u64);
        self.bytes_before.fetch_add(before, Ordering::Relaxed);
        self.bytes_after.fetch_add(after, Ordering::Relaxed);
        self.values_written.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(names::BYTES_BEFORE).increment(before);
        metrics::counter!(names::BYTES_AFTER).increment(after);
        if compressed {
            self.values_compressed.fetch_add(1, Ordering::Relaxed);
            metrics::counter!(names::COMPRESSED_VALUES).increment(1);
        }
    }

    /// Records a stored value that did not decode.
    pub fn record_decode_error(&self) {
        self.decode_errors.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(names::DECODE_ERRORS).increment(1);
    }

    /// Records a call served from memory because Redis was unreachable.
    pub fn record_fallback(&self, op: &'static str) {
        self.fallbacks.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(names::FALLBACKS, "op" => op).increment(1);
    }

    /// Records the start (`true`) or end (`false`) of an outage.
    pub fn set_degraded(&self, degraded: bool) {
        let was = self.degraded.swap(degraded, Ordering::AcqRel);
        if degraded && !was {
            self.outages.fetch_add(1, Ordering::Relaxed);
            metrics::counter!(names::OUTAGES).increment(1);
        }
        metrics::gauge!(names::DEGRADED).set(if degraded { 1.0 } else { 0.0 });
    }

    /// Whether the cache currently serves from memory instead of Redis.
    pub fn is_degraded(&self) -> bool {
        self.degraded.load(Ordering::Acquire)
    }

    /// A consistent-enough snapshot for `GET /v1/cache/stats`.
    pub fn snapshot(&self, backend: &str) -> CacheStats {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let hits = load(&self.hits);
        let misses = load(&self.misses);
        let before = load(&self.bytes_before);
        let after = load(&self.bytes_after);
        let mut operations = BTreeMap::new();
        let mut errors = 0;
        for op in Operation::ALL {
            let c = &self.ops[op.index()];
            let calls = load(&c.calls);
            if calls == 0 {
                continue;
            }
            let buckets: Vec<u64> = c.buckets.iter().map(load).collect();
            let max_us = load(&c.max_us);
            let op_errors = load(&c.errors);
            errors += op_errors;
            operations.insert(
                op.name(),
                OperationStats {
                    calls,
                    errors: op_errors,
                    mean_ms: load(&c.total_us) as f64 / calls as f64 / 1000.0,
                    p50_ms: quantile_ms(&buckets, calls, 0.50, max_us),
                    p99_ms: quantile_ms(&buckets, calls, 0.99, max_us),
                    max_ms: max_us as f64 / 1000.0,
                },
            );
        }
        CacheStats {
            backend: backend.into(),
            degraded: self.is_degraded(),
            hits,
            misses,
            hit_ratio: ratio(hits, hits + misses),
            l1_hits: load(&self.l1_hits),
            errors,
            decode_errors: load(&self.decode_errors),
            fallbacks: load(&self.fallbacks),
            outages: load(&self.outages),
            bytes: ByteStats {
                before_compression: before,
                after_compression: after,
                ratio: ratio(after, before),
                values_written: load(&self.values_written),
                values_compressed: load(&self.values_compressed),
            },
            operations,
        }
    }
}

fn ratio(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

/// The upper bound of the bucket holding quantile `q`, capped at the maximum seen.
fn quantile_ms(buckets: &[u64], calls: u64, q: f64, max_us: u64) -> f64 {
    let rank = ((calls as f64) * q).ceil().max(1.0) as u64;
    let mut seen = 0;
    for (i, count) in buckets.iter().enumerate() {
        seen += count;
        if seen >= rank {
            let bound = LATENCY_BUCKETS_US.get(i).copied().unwrap_or(max_us);
            return bound.min(max_us) as f64 / 1000.0;
        }
    }
    max_us as f64 / 1000.0
}

/// What `GET /v1/cache/stats` returns.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CacheStats {
    /// The composition, e.g. `memory` or `redis 127.0.0.1:6379/0, memory fallback`.
    pub backend: String,
    /// Whether the cache serves from memory because Redis is unreachable.
    pub degraded: bool,
    /// Keys read that were found.
    pub hits: u64,
    /// Keys read that were not found.
    pub misses: u64,
    /// hits / (hits + misses); `null` before the first read.
    pub hit_ratio: Option<f64>,
    /// Hits answered by the memory L1 (included in `hits`).
    pub l1_hits: u64,
    /// Calls that returned an error (all operations).
    pub errors: u64,
    /// Stored values that did not decode (included in `errors` of their operation).
    pub decode_errors: u64,
    /// Calls served from memory because Redis was unreachable.
    pub fallbacks: u64,
    /// Times Redis became unreachable.
    pub outages: u64,
    /// Value sizes written.
    pub bytes: ByteStats,
    /// Per-operation calls, errors and latency (operations never called are left out).
    pub operations: BTreeMap<&'static str, OperationStats>,
}

/// Bytes of values written, before and after compression.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ByteStats {
    /// Serialised sizes, summed.
    pub before_compression: u64,
    /// Stored sizes (header + maybe compressed payload), summed.
    pub after_compression: u64,
    /// after / before; `null` before the first write.
    pub ratio: Option<f64>,
    /// Values written.
    pub values_written: u64,
    /// Values stored compressed.
    pub values_compressed: u64,
}

/// Calls and latency of one operation. Quantiles are bucket upper bounds (see
/// [`LATENCY_BUCKETS_US`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OperationStats {
    /// Calls.
    pub calls: u64,
    /// Calls that returned an error.
    pub errors: u64,
    /// Mean latency.
    pub mean_ms: f64,
    /// Median latency (bucket bound).
    pub p50_ms: f64,
    /// 99th percentile latency (bucket bound).
    pub p99_ms: f64,
    /// Slowest call.
    pub max_ms: f64,
}

/// A store wrapper that records calls, errors, latency, hits and misses.
#[derive(Debug)]
pub struct MeteredStore {
    inner: Arc<dyn CacheStore>,
    metrics: Arc<CacheMetrics>,
}

impl MeteredStore {
    /// Wraps `inner`, recording into `metrics`.
    pub fn new(inner: Arc<dyn CacheStore>, metrics: Arc<CacheMetrics>) -> Self {
        Self { inner, metrics }
    }

    async fn timed<T>(&self, op: Operation, call: impl Future<Output = Result<T>>) -> Result<T> {
        let started = Instant::now();
        let result = call.await;
        self.metrics
            .record_call(op, started.elapsed(), result.is_ok());
        result
    }
}

impl fmt::Display for MeteredStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.fmt(f)
    }
}

#[async_trait]
impl CacheStore for MeteredStore {
    fn kind(&self) -> &'static str {
        self.inner.kind()
    }

    async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        let value = self.timed(Operation::Get, self.inner.get(key)).await?;
        let hit = u64::from(value.is_some());
        self.metrics.record_lookups(hit, 1 - hit);
        Ok(value)
    }

    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Bytes>>> {
        let values = self
            .timed(Operation::GetMany, self.inner.get_many(keys))
            .await?;
        let hits = values.iter().filter(|v| v.is_some()).count() as u64;
        self.metrics
            .record_lookups(hits, values.len() as u64 - hits);
        Ok(values)
    }

    async fn set(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<()> {
        self.timed(Operation::Set, self.inner.set(key, value, ttl))
            .await
    }

    async fn set_many(&self, entries: &[(String, Bytes)], ttl: Option<Duration>) -> Result<()> {
        self.timed(Operation::SetMany, self.inner.set_many(entries, ttl))
            .await
    }

    async fn set_if_absent(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<bool> {
        self.timed(
            Operation::SetIfAbsent,
            self.inner.set_if_absent(key, value, ttl),
        )
        .await
    }

    async fn delete(&self, key: &str) -> Result<bool> {
        self.timed(Operation::Delete, self.inner.delete(key)).await
    }

    async fn delete_if_equals(&self, key: &str, expected: &[u8]) -> Result<bool> {
        self.timed(
            Operation::DeleteIfEquals,
            self.inner.delete_if_equals(key, expected),
        )
        .await
    }

    async fn delete_pattern(&self, pattern: &str) -> Result<DeleteReport> {
        self.timed(Operation::DeletePattern, self.inner.delete_pattern(pattern))
            .await
    }

    async fn expire(&self, key: &str, ttl: Duration) -> Result<bool> {
        self.timed(Operation::Expire, self.inner.expire(key, ttl))
            .await
    }

    async fn incr_by(&self, key: &str, delta: i64, ttl: Option<Duration>) -> Result<i64> {
        self.timed(Operation::IncrBy, self.inner.incr_by(key, delta, ttl))
            .await
    }

    async fn hash_incr_by(
        &self,
        key: &str,
        field: &str,
        delta: i64,
        ttl: Option<Duration>,
    ) -> Result<i64> {
        self.timed(
            Operation::HashIncrBy,
            self.inner.hash_incr_by(key, field, delta, ttl),
        )
        .await
    }

    async fn hash_get_all(&self, key: &str) -> Result<BTreeMap<String, i64>> {
        self.timed(Operation::HashGetAll, self.inner.hash_get_all(key))
            .await
    }

    async fn sorted_add(&self, key: &str, member: &str, score: f64) -> Result<bool> {
        self.timed(
            Operation::SortedAdd,
            self.inner.sorted_add(key, member, score),
        )
        .await
    }

    async fn sorted_range_by_score(
        &self,
        key: &str,
        min: f64,
        max: f64,
        limit: usize,
    ) -> Result<Vec<(String, f64)>> {
        self.timed(
            Operation::SortedRange,
            self.inner.sorted_range_by_score(key, min, max, limit),
        )
        .await
    }

    async fn sorted_remove(&self, key: &str, member: &str) -> Result<bool> {
        self.timed(
            Operation::SortedRemove,
            self.inner.sorted_remove(key, member),
        )
        .await
    }

    async fn ttl(&self, key: &str) -> Result<Option<Duration>> {
        self.timed(Operation::Ttl, self.inner.ttl(key)).await
    }

    async fn throttle(&self, key: &str, limit: RateLimit) -> Result<Admission> {
        self.timed(Operation::Throttle, self.inner.throttle(key, limit))
            .await
    }

    async fn ping(&self) -> Result<()> {
        self.timed(Operation::Ping, self.inner.ping()).await
    }

    async fn health(&self) -> Health {
        self.inner.health().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_reports_ratios_and_latency_buckets() {
        let metrics = CacheMetrics::default();
        assert_eq!(metrics.snapshot("memory").hit_ratio, None);
        metrics.record_lookups(3, 1);
        metrics.record_encoded(1000, 250, true);
        metrics.record_encoded(100, 101, false);
        for us in [40, 40, 40, 900, 30_000] {
            metrics.record_call(Operation::Get, Duration::from_micros(us), true);
        }
        metrics.record_call(Operation::Set, Duration::from_micros(10), false);
        let stats = metrics.snapshot("memory");
        assert_eq!(stats.hit_ratio, Some(0.75));
        assert_eq!(stats.bytes.before_compression, 1100);
        assert_eq!(stats.bytes.after_compression, 351);
        assert_eq!(stats.bytes.values_compressed, 1);
        assert_eq!(stats.errors, 1);
        let get = &stats.operations["get"];
        assert_eq!(get.calls, 5);
        assert_eq!(get.p50_ms, 0.05);
        assert_eq!(get.p99_ms, 30.0, "capped at the maximum seen");
        assert_eq!(get.max_ms, 30.0);
        assert!(!stats.operations.contains_key("delete"));
    }

    #[test]
    fn outages_are_counted_once_per_transition() {
        let metrics = CacheMetrics::default();
        metrics.set_degraded(true);
        metrics.set_degraded(true);
        assert!(metrics.is_degraded());
        metrics.set_degraded(false);
        metrics.set_degraded(true);
        assert_eq!(metrics.snapshot("x").outages, 2);
    }
}
