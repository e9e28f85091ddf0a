//! [`Cache`]: the typed handle the rest of edgeship holds (in `AppState`). It encodes
//! values with the codec, names keys through the keyspace, and records metrics.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::codec::{Codec, CodecError, Encoded};
use super::fallback::FallbackStore;
use super::keyspace::{CacheKey, KeyPattern, Keyspace, SiteKeys};
use super::layered::LayeredStore;
use super::memory::MemoryStore;
use super::metrics::{CacheMetrics, CacheStats, MeteredStore};
use super::redis::RedisStore;
use super::{Admission, CacheError, CacheStore, DeleteReport, Health, RateLimit, Result};
use crate::config::CacheConfig;

/// Values at least this large are compressed and decoded on the blocking pool, so a large
/// manifest never stalls the async runtime.
const BLOCKING_THRESHOLD: usize = 128 * 1024;

/// The typed cache. Cheap to clone; clones share the store and the metrics.
#[derive(Clone)]
pub struct Cache {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn CacheStore>,
    codec: Codec,
    keys: Keyspace,
    metrics: Arc<CacheMetrics>,
    backend: String,
}

impl Cache {
    /// Builds the cache `[cache]` describes: memory only without `redis_url`; otherwise
    /// Redis (with the optional memory L1) falling back to memory while unreachable.
    /// Does not connect: the first call does, and the cache starts degraded if Redis is
    /// down.
    pub fn from_config(config: &CacheConfig) -> Result<Self> {
        let metrics = Arc::new(CacheMetrics::default());
        let codec = Codec::new(
            config.format,
            config.compression,
            config.compress_threshold_bytes,
        );
        let keys = Keyspace::new(&config.prefix)?;
        let memory = MemoryStore::new(config.memory_max_bytes);
        let store: Arc<dyn CacheStore> = match &config.redis_url {
            None => Arc::new(memory),
            Some(url) => {
                let redis = RedisStore::new(url.expose(), config.redis_options())?;
                let mut primary: Arc<dyn CacheStore> = Arc::new(redis);
                if config.l1_max_bytes > 0 {
                    primary = Arc::new(LayeredStore::new(
                        MemoryStore::new(config.l1_max_bytes),
                        primary,
                        Duration::from_millis(config.l1_ttl_ms),
                        Arc::clone(&metrics),
                    ));
                }
                Arc::new(FallbackStore::new(
                    primary,
                    memory,
                    Arc::clone(&metrics),
                    Duration::from_millis(config.reconnect_interval_ms),
                ))
            }
        };
        Ok(Self::with_store(store, codec, keys, metrics))
    }

    /// A memory-only cache with default settings.
    pub fn memory() -> Self {
        let config = CacheConfig::default();
        Self::with_store(
            Arc::new(MemoryStore::new(config.memory_max_bytes)),
            Codec::default(),
            Keyspace::default(),
            Arc::new(CacheMetrics::default()),
        )
    }

    /// A cache over any store (wrapped in [`MeteredStore`] recording into `metrics`).
    pub fn with_store(
        store: Arc<dyn CacheStore>,
        codec: Codec,
        keys: Keyspace,
        metrics: Arc<CacheMetrics>,
    ) -> Self {
        let backend = store.to_string();
        let store: Arc<dyn CacheStore> = Arc::new(MeteredStore::new(store, Arc::clone(&metrics)));
        Self {
            inner: Arc::new(Inner {
                store,
                codec,
                keys,
                metrics,
                backend,
            }),
        }
    }

    /// The keyspace (prefix) of this cache.
    pub fn keys(&self) -> &Keyspace {
        &self.inner.keys
    }

    /// The keys of one site.
    pub fn site(&self, site: &str) -> SiteKeys {
        self.inner.keys.site(site)
    }

    /// The codec values are written with.
    pub fn codec(&self) -> Codec {
        self.inner.codec
    }

    /// The underlying (metered) store, for raw bytes, counters and structures.
    pub fn store(&self) -> &Arc<dyn CacheStore> {
        &self.inner.store
    }

    /// The counters behind [`stats`](Self::stats).
    pub fn metrics(&self) -> &Arc<CacheMetrics> {
        &self.inner.metrics
    }

    /// Hits, misses, latency, bytes, fallbacks: what `GET /v1/cache/stats` returns.
    pub fn stats(&self) -> CacheStats {
        self.inner.metrics.snapshot(&self.inner.backend)
    }

    /// Ready, or degraded with the reason (`/readyz`).
    pub async fn health(&self) -> Health {
        self.inner.store.health().await
    }

    async fn encode<T: Serialize + ?Sized>(&self, key: &CacheKey, value: &T) -> Result<Bytes> {
        let codec = self.inner.codec;
        let encode_error = |source| CacheError::Encode {
            key: key.to_string(),
            source,
        };
        let payload = codec.serialize(value).map_err(encode_error)?;
        let encoded: Encoded = if payload.len() >= BLOCKING_THRESHOLD {
            tokio::task::spawn_blocking(move || codec.seal(payload))
                .await
                .map_err(|err| {
                    encode_error(CodecError::Serialize {
                        format: codec.format().name(),
                        message: format!("the compressor task failed: {err}"),
                    })
                })?
        } else {
            codec.seal(payload)
        };
        self.inner.metrics.record_encoded(
            encoded.plain_len,
            encoded.bytes.len(),
            encoded.is_compressed(),
        );
        Ok(Bytes::from(encoded.bytes))
    }

    async fn decode<T: DeserializeOwned + Send + 'static>(
        &self,
        key: &CacheKey,
        stored: Bytes,
    ) -> Result<T> {
        let codec = self.inner.codec;
        let result = if stored.len() >= BLOCKING_THRESHOLD / 4 {
            // Compressed values expand: a quarter of the threshold stored is typically
            // more than the threshold decoded.
            tokio::task::spawn_blocking(move || codec.decode::<T>(&stored))
                .await
                .unwrap_or_else(|err| {
                    Err(CodecError::Decompress {
                        compression: "any",
                        message: format!("the decoder task failed: {err}"),
                    })
                })
        } else {
            codec.decode::<T>(&stored)
        };
        result.map_err(|source| {
            self.inner.metrics.record_decode_error();
            tracing::warn!(key = %key, error = %source, "cache value does not decode");
            CacheError::Decode {
                key: key.to_string(),
                source,
            }
        })
    }

    /// Reads and decodes a value.
    ///
    /// # Behavior
    /// - a missing or expired key is `Ok(None)`;
    /// - a value with an unknown or older header, a corrupt payload, or a value of another
    ///   type is [`CacheError::Decode`] naming the key (never garbage, never a panic).
    pub async fn get<T: DeserializeOwned + Send + 'static>(
        &self,
        key: &CacheKey,
    ) -> Result<Option<T>> {
        match self.inner.store.get(key.as_str()).await? {
            None => Ok(None),
            Some(stored) => self.decode(key, stored).await.map(Some),
        }
    }

    /// Reads and decodes many values in one round trip, in the order of `keys`. Any value
    /// that does not decode fails the whole call, naming its key.
    pub async fn get_many<T: DeserializeOwned + Send + 'static>(
        &self,
        keys: &[CacheKey],
    ) -> Result<Vec<Option<T>>> {
        let raw: Vec<String> = keys.iter().map(|k| k.as_str().to_owned()).collect();
        let stored = self.inner.store.get_many(&raw).await?;
        let mut values = Vec::with_capacity(stored.len());
        for (key, value) in keys.iter().zip(stored) {
            values.push(match value {
                None => None,
                Some(bytes) => Some(self.decode(key, bytes).await?),
            });
        }
        Ok(values)
    }

    /// Encodes and writes a value; `ttl` `None` keeps it until deleted or evicted.
    pub async fn set<T: Serialize + ?Sized>(
        &self,
        key: &CacheKey,
        value: &T,
        ttl: Option<Duration>,
    ) -> Result<()> {
        let bytes = self.encode(key, value).await?;
        self.inner.store.set(key.as_str(), bytes, ttl).await
    }

    /// Encodes and writes many values, all with `ttl`, in one round trip.
    pub async fn set_many<T: Serialize>(
        &self,
        entries: &[(CacheKey, T)],
        ttl: Option<Duration>,
    ) -> Result<()> {
        let mut encoded = Vec::with_capacity(entries.len());
        for (key, value) in entries {
            encoded.push((key.as_str().to_owned(), self.encode(key, value).await?));
        }
        self.inner.store.set_many(&encoded, ttl).await
    }

    /// Writes a value only if the key is absent; returns whether it was written.
    pub async fn set_if_absent<T: Serialize + ?Sized>(
        &self,
        key: &CacheKey,
        value: &T,
        ttl: Option<Duration>,
    ) -> Result<bool> {
        let bytes = self.encode(key, value).await?;
        self.inner
            .store
            .set_if_absent(key.as_str(), bytes, ttl)
            .await
    }

    /// Deletes a key; returns whether it existed.
    pub async fn delete(&self, key: &CacheKey) -> Result<bool> {
        self.inner.store.delete(key.as_str()).await
    }

    /// Deletes a key only if it holds `expected` (encoded as [`set`](Self::set) would).
    pub async fn delete_if_equals<T: Serialize + ?Sized>(
        &self,
        key: &CacheKey,
        expected: &T,
    ) -> Result<bool> {
        let bytes = self.encode(key, expected).await?;
        self.inner
            .store
            .delete_if_equals(key.as_str(), &bytes)
            .await
    }

    /// Deletes every key matching `pattern`, in batches (see
    /// [`CacheStore::delete_pattern`]).
    pub async fn delete_pattern(&self, pattern: &KeyPattern) -> Result<DeleteReport> {
        self.inner.store.delete_pattern(pattern.as_str()).await
    }

    /// Sets a key's TTL; returns whether the key exists.
    pub async fn expire(&self, key: &CacheKey, ttl: Duration) -> Result<bool> {
        self.inner.store.expire(key.as_str(), ttl).await
    }

    /// Adds to a counter; see [`CacheStore::incr_by`].
    pub async fn incr_by(&self, key: &CacheKey, delta: i64, ttl: Option<Duration>) -> Result<i64> {
        self.inner.store.incr_by(key.as_str(), delta, ttl).await
    }

    /// How long until `key` expires (`None`: missing or no expiry).
    pub async fn ttl(&self, key: &CacheKey) -> Result<Option<Duration>> {
        self.inner.store.ttl(key.as_str()).await
    }

    /// Counts one request against `limit` under `key`; see [`CacheStore::throttle`].
    pub async fn throttle(&self, key: &CacheKey, limit: RateLimit) -> Result<Admission> {
        self.inner.store.throttle(key.as_str(), limit).await
    }

    /// Adds to one counter of a hash (analytics buckets); see
    /// [`CacheStore::hash_incr_by`].
    pub async fn hash_incr_by(
        &self,
        key: &CacheKey,
        field: &str,
        delta: i64,
        ttl: Option<Duration>,
    ) -> Result<i64> {
        self.inner
            .store
            .hash_incr_by(key.as_str(), field, delta, ttl)
            .await
    }

    /// Reads a hash of counters.
    pub async fn hash_get_all(&self, key: &CacheKey) -> Result<BTreeMap<String, i64>> {
        self.inner.store.hash_get_all(key.as_str()).await
    }

    /// Adds or re-scores a sorted-set member (job queues, time indexes).
    pub async fn sorted_add(&self, key: &CacheKey, member: &str, score: f64) -> Result<bool> {
        self.inner
            .store
            .sorted_add(key.as_str(), member, score)
            .await
    }

    /// Sorted-set members by score range, lowest first, at most `limit`.
    pub async fn sorted_range_by_score(
        &self,
        key: &CacheKey,
        min: f64,
        max: f64,
        limit: usize,
    ) -> Result<Vec<(String, f64)>> {
        self.inner
            .store
            .sorted_range_by_score(key.as_str(), min, max, limit)
            .await
    }

    /// Removes a sorted-set member.
    pub async fn sorted_remove(&self, key: &CacheKey, member: &str) -> Result<bool> {
        self.inner.store.sorted_remove(key.as_str(), member).await
    }
}

impl fmt::Debug for Cache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cache")
            .field("backend", &self.inner.backend)
            .field("prefix", &self.inner.keys.prefix())
            .field("codec", &self.inner.codec)
            .finish()
    }
}
