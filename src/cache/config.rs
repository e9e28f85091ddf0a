//! The `[cache]` section, checked here and composed into [`crate::config::Config`].

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Compression, Format as CacheFormat, Keyspace};
use crate::config::{ConfigError, RedisUrl};

/// Settings of the cache layer: Redis when `redis_url` is set, memory otherwise.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheConfig {
    /// Redis to use, e.g. `redis://:password@10.0.0.5:6379/0`. Absent: memory only (one
    /// process). While set but unreachable the cache serves from memory and `/readyz`
    /// reports degraded.
    /// `rediss://…` connects over TLS. With `redis_cluster`, one or more seed nodes of the
    /// cluster, separated by commas.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis_url: Option<RedisUrl>,
    /// `redis_url` names nodes of a Redis Cluster: the client discovers the others and
    /// routes each key to the node holding its slot.
    pub redis_cluster: bool,
    /// PEM file of the CA certificate(s) that sign the Redis server's TLS certificate, for a
    /// private CA; without it a `rediss://` URL is checked against the system's trust store.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis_ca_file: Option<PathBuf>,
    /// First part of every key: `{prefix}:{site}:…`. Give deployments that share a Redis
    /// different prefixes.
    pub prefix: String,
    /// Serialisation of values: `msgpack` (compact, the default) or `json` (readable with
    /// `redis-cli`). Values are read by their header, so changing it keeps old values.
    pub format: CacheFormat,
    /// Compression of values above the threshold: `zstd`, `gzip` or `none`.
    pub compression: Compression,
    /// Values whose serialised size is above this many bytes are compressed.
    pub compress_threshold_bytes: usize,
    /// Every Redis command must answer within this; a slower one counts as Redis being
    /// unreachable (calls fall back to memory) rather than stalling requests.
    pub command_timeout_ms: u64,
    /// While Redis is unreachable, how often to check whether it is back.
    pub reconnect_interval_ms: u64,
    /// Keys per `SCAN` batch in pattern deletes: other clients wait at most one batch.
    pub scan_batch: usize,
    /// Size bound of the memory store (the embedded default and the fallback).
    pub memory_max_bytes: u64,
    /// Size of a memory L1 in front of Redis; 0 (the default) turns it off. With several
    /// replicas an L1 serves another replica's write only after `l1_ttl_ms`.
    pub l1_max_bytes: u64,
    /// How long the L1 keeps a value (its staleness bound).
    pub l1_ttl_ms: u64,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            redis_url: None,
            redis_cluster: false,
            redis_ca_file: None,
            prefix: Keyspace::DEFAULT_PREFIX.into(),
            format: CacheFormat::MessagePack,
            compression: Compression::Zstd,
            compress_threshold_bytes: super::codec::DEFAULT_COMPRESS_THRESHOLD,
            command_timeout_ms: 500,
            reconnect_interval_ms: 1000,
            scan_batch: 1000,
            memory_max_bytes: 256 * 1024 * 1024,
            l1_max_bytes: 0,
            l1_ttl_ms: 2000,
        }
    }
}

impl CacheConfig {
    /// Checks the prefix, timeouts, sizes and the Redis URL; errors name the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let c = self;
        let bad = |key: &str, message: String| {
            Err(ConfigError::Value {
                key: format!("cache.{key}"),
                message,
            })
        };
        if Keyspace::new(&c.prefix).is_err() {
            return bad(
                "prefix",
                format!(
                    "{:?} is not 1–64 of A-Z a-z 0-9 _ - . : (not ending in `:`)",
                    c.prefix
                ),
            );
        }
        if !(1..=60_000).contains(&c.command_timeout_ms) {
            return bad(
                "command_timeout_ms",
                format!("{} is not in 1..=60000", c.command_timeout_ms),
            );
        }
        if !(10..=600_000).contains(&c.reconnect_interval_ms) {
            return bad(
                "reconnect_interval_ms",
                format!("{} is not in 10..=600000", c.reconnect_interval_ms),
            );
        }
        if !(1..=100_000).contains(&c.scan_batch) {
            return bad(
                "scan_batch",
                format!("{} is not in 1..=100000", c.scan_batch),
            );
        }
        if c.memory_max_bytes == 0 {
            return bad("memory_max_bytes", "must be more than 0".into());
        }
        if c.l1_max_bytes > 0 && c.l1_ttl_ms == 0 {
            return bad("l1_ttl_ms", "must be more than 0 when the L1 is on".into());
        }
        match &c.redis_url {
            Some(url) => {
                if let Err(err) = super::redis::RedisStore::new(url.expose(), c.redis_options()) {
                    return bad("redis_url", format!("{} ({err})", url.redacted()));
                }
            }
            None if c.redis_cluster => {
                return bad(
                    "redis_cluster",
                    "is true but cache.redis_url (the seed nodes) is not set".into(),
                );
            }
            None if c.redis_ca_file.is_some() => {
                return bad(
                    "redis_ca_file",
                    "is set but cache.redis_url (a rediss:// URL) is not".into(),
                );
            }
            None => {}
        }
        Ok(())
    }

    /// How the Redis store connects, from these settings.
    pub fn redis_options(&self) -> super::redis::RedisOptions {
        super::redis::RedisOptions {
            command_timeout: Duration::from_millis(self.command_timeout_ms),
            connect_timeout: Duration::from_millis(self.command_timeout_ms.max(1000)),
            scan_batch: self.scan_batch,
            cluster: self.redis_cluster,
            ca_file: self.redis_ca_file.clone(),
        }
    }
}
