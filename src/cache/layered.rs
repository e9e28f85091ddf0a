//! A small in-memory L1 in front of another store (Redis): hot values are read without a
//! network round trip.
//!
//! # Behavior
//! - values read from or written to the inner store are kept in the L1 for at most
//!   `l1_ttl` (and never past their own TTL), so another replica's write is seen within
//!   `l1_ttl`: that is the staleness bound this layer trades for speed;
//! - this replica's own writes and deletes update the L1 at once;
//! - counters, hash counters, sorted sets and rate limits bypass the L1 (they change in place on the
//!   server and must be exact).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use super::memory::MemoryStore;
use super::metrics::CacheMetrics;
use super::{Admission, CacheStore, DeleteReport, Health, RateLimit, Result};

/// A memory L1 over an inner store.
#[derive(Debug)]
pub struct LayeredStore {
    l1: MemoryStore,
    inner: Arc<dyn CacheStore>,
    l1_ttl: Duration,
    metrics: Arc<CacheMetrics>,
}

impl LayeredStore {
    /// Puts `l1` in front of `inner`, keeping values at most `l1_ttl`; L1 hits are
    /// counted in `metrics`.
    pub fn new(
        l1: MemoryStore,
        inner: Arc<dyn CacheStore>,
        l1_ttl: Duration,
        metrics: Arc<CacheMetrics>,
    ) -> Self {
        Self {
            l1,
            inner,
            l1_ttl,
            metrics,
        }
    }

    fn l1_ttl(&self, ttl: Option<Duration>) -> Option<Duration> {
        Some(ttl.map_or(self.l1_ttl, |ttl| ttl.min(self.l1_ttl)))
    }
}

impl fmt::Display for LayeredStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} with memory L1", self.inner)
    }
}

#[async_trait]
impl CacheStore for LayeredStore {
    fn kind(&self) -> &'static str {
        "layered"
    }

    async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        if let Ok(Some(value)) = self.l1.get(key).await {
            self.metrics.record_l1_hits(1);
            return Ok(Some(value));
        }
        let value = self.inner.get(key).await?;
        if let Some(value) = &value {
            self.l1.set(key, value.clone(), self.l1_ttl(None)).await?;
        }
        Ok(value)
    }

    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Bytes>>> {
        let mut values = self.l1.get_many(keys).await?;
        let missing: Vec<usize> = (0..keys.len()).filter(|i| values[*i].is_none()).collect();
        self.metrics
            .record_l1_hits((keys.len() - missing.len()) as u64);
        if missing.is_empty() {
            return Ok(values);
        }
        let missing_keys: Vec<String> = missing.iter().map(|i| keys[*i].clone()).collect();
        let fetched = self.inner.get_many(&missing_keys).await?;
        let mut fill = Vec::new();
        for (i, value) in missing.into_iter().zip(fetched) {
            if let Some(value) = &value {
                fill.push((keys[i].clone(), value.clone()));
            }
            values[i] = value;
        }
        self.l1.set_many(&fill, self.l1_ttl(None)).await?;
        Ok(values)
    }

    async fn set(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<()> {
        self.inner.set(key, value.clone(), ttl).await?;
        self.l1.set(key, value, self.l1_ttl(ttl)).await
    }

    async fn set_many(&self, entries: &[(String, Bytes)], ttl: Option<Duration>) -> Result<()> {
        self.inner.set_many(entries, ttl).await?;
        self.l1.set_many(entries, self.l1_ttl(ttl)).await
    }

    async fn set_if_absent(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<bool> {
        let written = self.inner.set_if_absent(key, value, ttl).await?;
        self.l1.delete(key).await?;
        Ok(written)
    }

    async fn delete(&self, key: &str) -> Result<bool> {
        // The inner store first: deleting the L1 first would let a concurrent read
        // refill it from the not-yet-deleted inner value.
        let existed = self.inner.delete(key).await?;
        self.l1.delete(key).await?;
        Ok(existed)
    }

    async fn delete_if_equals(&self, key: &str, expected: &[u8]) -> Result<bool> {
        let deleted = self.inner.delete_if_equals(key, expected).await?;
        self.l1.delete(key).await?;
        Ok(deleted)
    }

    async fn delete_pattern(&self, pattern: &str) -> Result<DeleteReport> {
        let report = self.inner.delete_pattern(pattern).await?;
        self.l1.delete_pattern(pattern).await?;
        Ok(report)
    }

    async fn expire(&self, key: &str, ttl: Duration) -> Result<bool> {
        let exists = self.inner.expire(key, ttl).await?;
        self.l1.delete(key).await?;
        Ok(exists)
    }

    async fn incr_by(&self, key: &str, delta: i64, ttl: Option<Duration>) -> Result<i64> {
        self.inner.incr_by(key, delta, ttl).await
    }

    async fn hash_incr_by(
        &self,
        key: &str,
        field: &str,
        delta: i64,
        ttl: Option<Duration>,
    ) -> Result<i64> {
        self.inner.hash_incr_by(key, field, delta, ttl).await
    }

    async fn hash_get_all(&self, key: &str) -> Result<BTreeMap<String, i64>> {
        self.inner.hash_get_all(key).await
    }

    async fn sorted_add(&self, key: &str, member: &str, score: f64) -> Result<bool> {
        self.inner.sorted_add(key, member, score).await
    }

    async fn sorted_range_by_score(
        &self,
        key: &str,
        min: f64,
        max: f64,
        limit: usize,
    ) -> Result<Vec<(String, f64)>> {
        self.inner.sorted_range_by_score(key, min, max, limit).await
    }

    async fn sorted_remove(&self, key: &str, member: &str) -> Result<bool> {
        self.inner.sorted_remove(key, member).await
    }

    async fn ttl(&self, key: &str) -> Result<Option<Duration>> {
        self.inner.ttl(key).await
    }

    async fn throttle(&self, key: &str, limit: RateLimit) -> Result<Admission> {
        self.inner.throttle(key, limit).await
    }

    async fn ping(&self) -> Result<()> {
        self.inner.ping().await
    }

    async fn health(&self) -> Health {
        self.inner.health().await
    }
}
