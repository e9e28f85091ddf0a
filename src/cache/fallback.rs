//! Graceful degradation: use the primary store (Redis), and when it is unreachable serve
//! every call from memory until it answers again. No caller sees an error because Redis is
//! down.
//!
//! # Behavior
//! - A call whose primary attempt fails with an unreachable-kind error
//!   ([`CacheError::is_unavailable`]: connection refused or dropped, timeout, …) is
//!   answered by the memory store, and the store becomes *degraded*. Other errors (wrong
//!   type, a refused command) are returned as they are.
//! - Becoming degraded logs one warning with the reason; calls while degraded go straight to
//!   memory (no per-call timeouts, no per-call warnings) and are counted as fallbacks.
//! - While degraded a background probe pings the primary every `probe_interval`; when it
//!   answers, the store logs one line and goes back to the primary. The memory store is
//!   then emptied, so a later outage never serves values older than the primary's.
//! - Writes made during an outage live only in memory and are not copied to the primary
//!   when it returns (this is a cache: they are recomputed on a miss).
//! - [`health`](CacheStore::health) reports [`Health::Degraded`] with the reason while
//!   degraded; when healthy it pings the primary, so `/readyz` notices an outage even when
//!   no call has failed yet.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use tokio::task::AbortHandle;

use super::memory::MemoryStore;
use super::metrics::CacheMetrics;
use super::{Admission, CacheError, CacheStore, DeleteReport, Health, RateLimit, Result};

/// Redis (or any primary) with a memory fallback.
pub struct FallbackStore {
    primary: Arc<dyn CacheStore>,
    fallback: MemoryStore,
    state: Arc<State>,
    probe_interval: Duration,
}

struct State {
    metrics: Arc<CacheMetrics>,
    /// Fast-path mirror of `outage.is_some()`.
    degraded: AtomicBool,
    /// Calls served from memory during the current outage.
    outage_fallbacks: AtomicU64,
    /// The current outage, if any. A `std::sync::Mutex` is fine: it is held for a few
    /// instructions and never across an `.await`.
    outage: Mutex<Option<Outage>>,
}

struct Outage {
    reason: String,
    since: Instant,
    probe: Option<AbortHandle>,
}

impl State {
    fn outage(&self) -> MutexGuard<'_, Option<Outage>> {
        // A panic while holding this lock cannot leave the Option half-written.
        self.outage
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn recover(&self, primary: &dyn CacheStore, fallback: &MemoryStore) {
        let Some(outage) = self.outage().take() else {
            return;
        };
        self.degraded.store(false, Ordering::Release);
        self.metrics.set_degraded(false);
        fallback.clear();
        tracing::info!(
            store = %primary,
            outage_ms = outage.since.elapsed().as_millis() as u64,
            served_from_memory = self.outage_fallbacks.swap(0, Ordering::Relaxed),
            "cache backend answers again; back from the memory fallback"
        );
    }
}

impl FallbackStore {
    /// Uses `primary`, falling back to `fallback` while it is unreachable and probing it
    /// every `probe_interval` until it answers. Fallbacks and outages are counted in
    /// `metrics`.
    pub fn new(
        primary: Arc<dyn CacheStore>,
        fallback: MemoryStore,
        metrics: Arc<CacheMetrics>,
        probe_interval: Duration,
    ) -> Self {
        Self {
            primary,
            fallback,
            state: Arc::new(State {
                metrics,
                degraded: AtomicBool::new(false),
                outage_fallbacks: AtomicU64::new(0),
                outage: Mutex::new(None),
            }),
            probe_interval,
        }
    }

    /// Whether calls are currently served from memory.
    pub fn is_degraded(&self) -> bool {
        self.state.degraded.load(Ordering::Acquire)
    }

    fn enter_degraded(&self, err: &CacheError) {
        let mut outage = self.state.outage();
        if outage.is_some() {
            return;
        }
        tracing::warn!(
            store = %self.primary,
            error = %err,
            "cache backend unreachable; serving the cache from memory until it answers again (logged once per outage)"
        );
        // Without a runtime (not the case in edgeship) nobody probes; `health` then
        // probes inline.
        let probe = tokio::runtime::Handle::try_current().ok().map(|runtime| {
            runtime
                .spawn(probe(
                    Arc::downgrade(&self.state),
                    Arc::clone(&self.primary),
                    self.fallback.clone(),
                    self.probe_interval,
                ))
                .abort_handle()
        });
        *outage = Some(Outage {
            reason: err.to_string(),
            since: Instant::now(),
            probe,
        });
        self.state.outage_fallbacks.store(0, Ordering::Relaxed);
        self.state.degraded.store(true, Ordering::Release);
        self.state.metrics.set_degraded(true);
    }

    /// Runs `primary` unless degraded; on an unreachable-kind error, or while degraded,
    /// runs `fallback` instead.
    async fn call<T, P, PF, F, FF>(
        &self,
        operation: &'static str,
        primary: P,
        fallback: F,
    ) -> Result<T>
    where
        P: FnOnce() -> PF,
        PF: Future<Output = Result<T>>,
        F: FnOnce() -> FF,
        FF: Future<Output = Result<T>>,
    {
        if !self.is_degraded() {
            match primary().await {
                Err(err) if err.is_unavailable() => self.enter_degraded(&err),
                result => return result,
            }
        }
        self.state.metrics.record_fallback(operation);
        self.state.outage_fallbacks.fetch_add(1, Ordering::Relaxed);
        fallback().await
    }
}

/// Pings the primary every `interval` until it answers, then switches back. Holds only a
/// weak reference to the state, so dropping the store ends it.
async fn probe(
    state: Weak<State>,
    primary: Arc<dyn CacheStore>,
    fallback: MemoryStore,
    interval: Duration,
) {
    loop {
        tokio::time::sleep(interval).await;
        let Some(state) = state.upgrade() else {
            return;
        };
        match primary.ping().await {
            Ok(()) => {
                state.recover(primary.as_ref(), &fallback);
                return;
            }
            Err(err) => {
                tracing::debug!(store = %primary, error = %err, "cache backend still unreachable");
                if let Some(outage) = state.outage().as_mut() {
                    outage.reason = err.to_string();
                }
            }
        }
    }
}

impl Drop for FallbackStore {
    fn drop(&mut self) {
        if let Some(outage) = self.state.outage().as_mut()
            && let Some(probe) = outage.probe.take()
        {
            probe.abort();
        }
    }
}

impl fmt::Debug for FallbackStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FallbackStore")
            .field("primary", &self.primary)
            .field("fallback", &self.fallback)
            .field("degraded", &self.is_degraded())
            .field("probe_interval", &self.probe_interval)
            .finish()
    }
}

impl fmt::Display for FallbackStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}, memory fallback", self.primary)
    }
}

#[async_trait]
impl CacheStore for FallbackStore {
    fn kind(&self) -> &'static str {
        "fallback"
    }

    async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        self.call("get", || self.primary.get(key), || self.fallback.get(key))
            .await
    }

    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Bytes>>> {
        self.call(
            "get_many",
            || self.primary.get_many(keys),
            || self.fallback.get_many(keys),
        )
        .await
    }

    async fn set(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<()> {
        let again = value.clone();
        self.call(
            "set",
            || self.primary.set(key, value, ttl),
            || self.fallback.set(key, again, ttl),
        )
        .await
    }

    async fn set_many(&self, entries: &[(String, Bytes)], ttl: Option<Duration>) -> Result<()> {
        self.call(
            "set_many",
            || self.primary.set_many(entries, ttl),
            || self.fallback.set_many(entries, ttl),
        )
        .await
    }

    async fn set_if_absent(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<bool> {
        let again = value.clone();
        self.call(
            "set_if_absent",
            || self.primary.set_if_absent(key, value, ttl),
            || self.fallback.set_if_absent(key, again, ttl),
        )
        .await
    }

    async fn delete(&self, key: &str) -> Result<bool> {
        self.call(
            "delete",
            || self.primary.delete(key),
            || self.fallback.delete(key),
        )
        .await
    }

    async fn delete_if_equals(&self, key: &str, expected: &[u8]) -> Result<bool> {
        self.call(
            "delete_if_equals",
            || self.primary.delete_if_equals(key, expected),
            || self.fallback.delete_if_equals(key, expected),
        )
        .await
    }

    async fn delete_pattern(&self, pattern: &str) -> Result<DeleteReport> {
        self.call(
            "delete_pattern",
            || self.primary.delete_pattern(pattern),
            || self.fallback.delete_pattern(pattern),
        )
        .await
    }

    async fn expire(&self, key: &str, ttl: Duration) -> Result<bool> {
        self.call(
            "expire",
            || self.primary.expire(key, ttl),
            || self.fallback.expire(key, ttl),
        )
        .await
    }

    async fn incr_by(&self, key: &str, delta: i64, ttl: Option<Duration>) -> Result<i64> {
        self.call(
            "incr_by",
            || self.primary.incr_by(key, delta, ttl),
            || self.fallback.incr_by(key, delta, ttl),
        )
        .await
    }

    async fn hash_incr_by(
        &self,
        key: &str,
        field: &str,
        delta: i64,
        ttl: Option<Duration>,
    ) -> Result<i64> {
        self.call(
            "hash_incr_by",
            || self.primary.hash_incr_by(key, field, delta, ttl),
            || self.fallback.hash_incr_by(key, field, delta, ttl),
        )
        .await
    }

    async fn hash_get_all(&self, key: &str) -> Result<BTreeMap<String, i64>> {
        self.call(
            "hash_get_all",
            || self.primary.hash_get_all(key),
            || self.fallback.hash_get_all(key),
        )
        .await
    }

    async fn sorted_add(&self, key: &str, member: &str, score: f64) -> Result<bool> {
        self.call(
            "sorted_add",
            || self.primary.sorted_add(key, member, score),
            || self.fallback.sorted_add(key, member, score),
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
        self.call(
            "sorted_range_by_score",
            || self.primary.sorted_range_by_score(key, min, max, limit),
            || self.fallback.sorted_range_by_score(key, min, max, limit),
        )
        .await
    }

    async fn sorted_remove(&self, key: &str, member: &str) -> Result<bool> {
        self.call(
            "sorted_remove",
            || self.primary.sorted_remove(key, member),
            || self.fallback.sorted_remove(key, member),
        )
        .await
    }

    async fn ttl(&self, key: &str) -> Result<Option<Duration>> {
        self.call("ttl", || self.primary.ttl(key), || self.fallback.ttl(key))
            .await
    }

    async fn throttle(&self, key: &str, limit: RateLimit) -> Result<Admission> {
        self.call(
            "throttle",
            || self.primary.throttle(key, limit),
            || self.fallback.throttle(key, limit),
        )
        .await
    }

    /// Always succeeds: while the primary is down the memory store answers.
    async fn ping(&self) -> Result<()> {
        self.call("ping", || self.primary.ping(), || self.fallback.ping())
            .await
    }

    async fn health(&self) -> Health {
        let current = self.state.outage().as_ref().map(|outage| {
            (
                outage.reason.clone(),
                outage.since.elapsed().as_millis() as u64,
                outage.probe.is_some(),
            )
        });
        if let Some((reason, degraded_for_ms, probed)) = current {
            if !probed && self.primary.ping().await.is_ok() {
                self.state.recover(self.primary.as_ref(), &self.fallback);
                return Health::Ready;
            }
            return Health::Degraded {
                reason,
                degraded_for_ms,
            };
        }
        match self.primary.ping().await {
            Ok(()) => Health::Ready,
            Err(err) => {
                if err.is_unavailable() {
                    self.enter_degraded(&err);
                }
                Health::Degraded {
                    reason: err.to_string(),
                    degraded_for_ms: 0,
                }
            }
        }
    }
}
