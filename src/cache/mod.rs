//! The cache layer: one [`CacheStore`] trait, a Redis and an in-memory implementation, and
//! wrappers that are themselves stores.
//!
//! - [`memory::MemoryStore`] (moka): the embedded default, the fallback while Redis is
//!   down, and the optional L1.
//! - [`redis::RedisStore`]: the `redis` crate over one multiplexed, self-reconnecting
//!   connection ([`ConnectionManager`](::redis::aio::ConnectionManager)), every command
//!   under a timeout.
//! - [`layered::LayeredStore`]: a small memory L1 in front of another store.
//! - [`fallback::FallbackStore`]: Redis, or memory while Redis is unreachable (one warning
//!   per outage, reported on `/readyz`, back to Redis by itself).
//! - [`metrics::MeteredStore`]: counts hits, misses, errors and latency per operation.
//!
//! Stores move opaque bytes. [`Cache`] is the typed handle the rest of edgeship holds: it
//! encodes values with the [`codec`] (MessagePack or JSON, zstd or gzip above a threshold,
//! a one-byte header) and names keys through a [`keyspace::Keyspace`]
//! (`edgeship:{site}:name`). [`Cache::from_config`] composes the stores from `[cache]`:
//!
//! ```text
//! no redis_url:  Metered(Memory)
//! redis_url:     Metered(Fallback(primary = [Layered(L1,] Redis[)], fallback = Memory))
//! ```
//!
//! Counters, hash counters and sorted sets hold plain integers and strings, not encoded
//! values, so Redis can update them in place (`INCRBY`, `HINCRBY`, `ZADD`).
//!
//! # Where it is wired in
//!
//! `AppState` builds one [`Cache`] from `[cache]` and hands it to every handler
//! (`state.cache()`); `/readyz`, `/metrics` and `/v1/cache/stats` read it. Its users,
//! with their keys ([`keyspace::SiteKeys`]):
//!
//! - deploy and purge jobs (`job:{id}`, 7 days), written by the API, the CLI and deploys;
//! - the per-site deploy lock ([`CacheLock`], `lock:deploy`): in Redis when `redis_url`
//!   is set, so deploys from several machines exclude each other (a lock file otherwise);
//! - each site's manifest (`manifest`): a copy of the stored one, used while a `HEAD` of
//!   the stored one shows the same hash (see `site::manifest`), so deploys,
//!   purges and the assets API do not download a large manifest again;
//! - analytics: deploy savings and the origin's served-bytes counters
//!   (`analytics:*`, `origin:served*`);
//! - API keys and their last-known snapshot.
//!
//! The processing cache is deliberately not in it: its entries are the processed files
//! (minified bytes and compressed variants) that the uploading process streams from local
//! disk, so an index of them shared through Redis would point other replicas at files
//! they do not have. Uploads through the API are new files every time, so the service
//! finds earlier results by content hash (one blake3 pass over freshly written files), not
//! through the CLI's stat index.

pub mod codec;
pub mod config;
pub mod fallback;
mod handle;
pub mod keyspace;
pub mod layered;
pub mod lock;
pub mod memory;
pub mod metrics;
pub mod redis;

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use serde::Serialize;

pub use codec::{Codec, CodecError, Compression, Format};
pub use handle::Cache;
pub use keyspace::{CacheKey, KeyPattern, Keyspace, SiteKeys};
pub use lock::CacheLock;
pub use metrics::{CacheMetrics, CacheStats};

/// Result of cache operations.
pub type Result<T, E = CacheError> = std::result::Result<T, E>;

/// Errors of the cache layer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CacheError {
    /// The backend cannot be reached (connection refused or dropped, I/O error, server
    /// loading or read-only, authentication refused). [`fallback::FallbackStore`] serves
    /// these calls from memory.
    #[error("{store} is unreachable: {message}")]
    Unavailable {
        /// The store, e.g. `redis 127.0.0.1:6379`.
        store: String,
        /// What failed.
        message: String,
    },
    /// A command did not answer within the per-command timeout.
    #[error("{store}: {operation} timed out after {after:?}")]
    Timeout {
        /// The store.
        store: String,
        /// The operation, e.g. `get_many`.
        operation: &'static str,
        /// The timeout.
        after: Duration,
    },
    /// The key holds another kind of value (e.g. a counter read as a hash).
    #[error("{key} holds another kind of value than {operation} works on")]
    WrongType {
        /// The key.
        key: String,
        /// The operation.
        operation: &'static str,
    },
    /// The stored value cannot be decoded (unknown header, corrupt payload, other type).
    #[error("{key}: {source}")]
    Decode {
        /// The key.
        key: String,
        /// What is wrong with the value.
        source: CodecError,
    },
    /// A value cannot be encoded.
    #[error("{key}: {source}")]
    Encode {
        /// The key.
        key: String,
        /// What went wrong.
        source: CodecError,
    },
    /// A key, prefix or pattern is not acceptable.
    #[error("invalid cache key {key:?}: {reason}")]
    InvalidKey {
        /// The key as given.
        key: String,
        /// Why it is refused.
        reason: &'static str,
    },
    /// The configuration cannot build a store (e.g. an unparsable Redis URL).
    #[error("cache configuration: {0}")]
    Config(String),
    /// Any other backend error (a command refused by the server).
    #[error("{store}: {operation} failed: {message}")]
    Backend {
        /// The store.
        store: String,
        /// The operation.
        operation: &'static str,
        /// The server's or client's message.
        message: String,
    },
}

impl CacheError {
    /// Whether the backend is unreachable (as opposed to a bad request or a bad value):
    /// these errors make [`fallback::FallbackStore`] switch to memory.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Unavailable { .. } | Self::Timeout { .. })
    }
}

/// How a store is doing, for `/readyz`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "status", rename_all = "lowercase")]
pub enum Health {
    /// Working normally.
    Ready,
    /// Working, but not as configured (e.g. serving from memory because Redis is down).
    Degraded {
        /// What is wrong, e.g. `redis 127.0.0.1:6379 is unreachable: connection refused`.
        reason: String,
        /// How long it has been degraded.
        degraded_for_ms: u64,
    },
}

/// What [`CacheStore::delete_pattern`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct DeleteReport {
    /// Keys deleted.
    pub deleted: u64,
    /// Round trips it took (Redis: one `SCAN` plus at most one `UNLINK` each).
    pub batches: u64,
    /// The longest single batch, i.e. the longest the store was busy for us at once.
    pub longest_batch: Duration,
}

/// A rate limit as GCRA (the generic cell rate algorithm): on average one request per
/// `interval`, and up to `burst` at once after a quiet spell. Kept per key by
/// [`CacheStore::throttle`], so with Redis every replica draws on the same budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// The time one request costs: `1 s / rate`.
    pub interval: Duration,
    /// How many requests may come at once.
    pub burst: u32,
}

impl RateLimit {
    /// `per_sec` requests a second on average, `burst` at once (at least `per_sec`, so a
    /// full second's worth is always allowed; both at least 1).
    pub fn per_second(per_sec: u32, burst: u32) -> Self {
        let per_sec = per_sec.max(1);
        Self {
            interval: Duration::from_secs(1) / per_sec,
            burst: burst.max(per_sec),
        }
    }

    /// How far ahead of now the stored arrival time may run before requests are refused:
    /// `interval × burst`.
    pub fn tolerance(&self) -> Duration {
        self.interval.saturating_mul(self.burst)
    }
}

/// What [`CacheStore::throttle`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Within the limit; the request was counted.
    Admitted,
    /// Over the limit; nothing was counted. The next request is admitted after
    /// `retry_after`.
    Limited {
        /// How long to wait.
        retry_after: Duration,
    },
}

/// A key-value store with TTLs, counters and the few structures jobs and analytics need.
///
/// Object safe: the service holds an `Arc<dyn CacheStore>`. Wrappers (metrics, fallback,
/// L1) implement it too. Keys are full keys (see [`keyspace`]); values are opaque bytes (see
/// [`codec`]).
///
/// # Behavior (every implementation)
/// - a `ttl` of `None` means no expiry; an expired key reads as missing;
/// - `set` replaces any value and any TTL;
/// - deleting a missing key succeeds and returns `false`;
/// - reading a counter with `get` returns its decimal text;
/// - a value or structure operation on a key of another kind is [`CacheError::WrongType`].
#[async_trait]
pub trait CacheStore: Send + Sync + fmt::Debug + fmt::Display {
    /// A short name of the implementation (`memory`, `redis`, `fallback`, …) for logs.
    fn kind(&self) -> &'static str;

    /// Reads one value.
    async fn get(&self, key: &str) -> Result<Option<Bytes>>;

    /// Reads many values in one round trip, in the order of `keys`.
    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Bytes>>>;

    /// Writes one value.
    async fn set(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<()>;

    /// Writes many values, all with the same TTL, in one round trip.
    async fn set_many(&self, entries: &[(String, Bytes)], ttl: Option<Duration>) -> Result<()>;

    /// Writes a value only if the key does not exist; returns whether it was written.
    /// The building block of locks.
    async fn set_if_absent(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<bool>;

    /// Deletes a key; returns whether it existed.
    async fn delete(&self, key: &str) -> Result<bool>;

    /// Deletes a key only if it holds exactly `expected` (atomically); returns whether it
    /// did. Releases a lock only by its owner.
    async fn delete_if_equals(&self, key: &str, expected: &[u8]) -> Result<bool>;

    /// Deletes every key matching a glob `pattern` (Redis rules, see
    /// [`keyspace::glob_match`]).
    ///
    /// # Behavior
    /// - Redis: `SCAN … MATCH` then `UNLINK` in batches, never `KEYS`, so other clients
    ///   are never blocked for more than one batch;
    /// - keys written while it runs may or may not be deleted.
    async fn delete_pattern(&self, pattern: &str) -> Result<DeleteReport>;

    /// How long until a key expires: `None` when it is missing or has no expiry.
    async fn ttl(&self, key: &str) -> Result<Option<Duration>>;

    /// Sets a key's TTL; returns whether the key exists.
    async fn expire(&self, key: &str, ttl: Duration) -> Result<bool>;

    /// Adds `delta` to a counter (missing counters start at 0) and returns the new value.
    /// `ttl` is applied only when the counter has no expiry yet (created by this call),
    /// so a window counter expires a fixed time after its first increment.
    async fn incr_by(&self, key: &str, delta: i64, ttl: Option<Duration>) -> Result<i64>;

    /// Adds `delta` to one field of a hash of counters and returns the field's new value.
    /// `ttl` as in [`incr_by`](Self::incr_by), for the whole hash.
    async fn hash_incr_by(
        &self,
        key: &str,
        field: &str,
        delta: i64,
        ttl: Option<Duration>,
    ) -> Result<i64>;

    /// Reads every field of a hash of counters (empty when the key is missing).
    async fn hash_get_all(&self, key: &str) -> Result<BTreeMap<String, i64>>;

    /// Adds `member` to a sorted set with `score` (or updates its score); returns whether
    /// it is new.
    async fn sorted_add(&self, key: &str, member: &str, score: f64) -> Result<bool>;

    /// Members with `min <= score <= max`, lowest score first (ties by member), at most
    /// `limit`.
    async fn sorted_range_by_score(
        &self,
        key: &str,
        min: f64,
        max: f64,
        limit: usize,
    ) -> Result<Vec<(String, f64)>>;

    /// Removes a member from a sorted set; returns whether it was there.
    async fn sorted_remove(&self, key: &str, member: &str) -> Result<bool>;

    /// Counts one request against `limit` under `key` (GCRA: the key holds the
    /// theoretical arrival time of the next request, and expires when that time passes).
    ///
    /// # Behavior
    /// - admitted requests push the arrival time one `interval` further; a refused one
    ///   changes nothing, so clients that keep retrying are not punished further;
    /// - Redis runs it as one script on the server's clock, so every replica sharing the
    ///   server shares the budget; memory keeps it on tokio's clock.
    async fn throttle(&self, key: &str, limit: RateLimit) -> Result<Admission>;

    /// Checks that the store answers.
    async fn ping(&self) -> Result<()>;

    /// How the store is doing. By default: [`Health::Ready`] when [`ping`](Self::ping)
    /// answers.
    async fn health(&self) -> Health {
        match self.ping().await {
            Ok(()) => Health::Ready,
            Err(err) => Health::Degraded {
                reason: err.to_string(),
                degraded_for_ms: 0,
            },
        }
    }
}

/// A TTL in whole milliseconds for Redis `PX`, at least 1 (Redis refuses 0).
pub(crate) fn ttl_millis(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}
