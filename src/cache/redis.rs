//! The Redis store: the `redis` crate over one multiplexed connection that reconnects by
//! itself ([`ConnectionManager`]).
//!
//! One connection is enough: it pipelines concurrent requests from every task, so there is
//! no pool to size. The connection is opened lazily on the first command, so the service
//! starts (degraded) when Redis is down and comes up when it appears. Every command runs
//! under `cache.command_timeout_ms`; a command that does not answer in time is
//! [`CacheError::Timeout`], which the fallback wrapper treats like an outage.
//!
//! Multi-key operations are one round trip each: `get_many` is one `MGET`, `set_many` one
//! pipeline of `SET … PX`. Pattern deletes walk the keyspace with `SCAN … MATCH … COUNT`
//! and `UNLINK` each batch (freeing memory off Redis's main thread), so other clients wait
//! at most one batch; `KEYS` is never used. Counter TTLs use `PEXPIRE … NX` (Redis ≥ 7.0).

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, Instant};

use ::redis::aio::ConnectionManager;
use ::redis::{
    Client, Cmd, ErrorKind, FromRedisValue, Pipeline, RedisError, Script, ServerErrorKind,
};
use async_trait::async_trait;
use bytes::Bytes;
use tokio::sync::OnceCell;

use super::{CacheError, CacheStore, DeleteReport, Result, ttl_millis};

/// How the store talks to Redis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisOptions {
    /// Every command (and every batch of a pattern delete) must answer within this.
    pub command_timeout: Duration,
    /// Opening a connection must succeed within this.
    pub connect_timeout: Duration,
    /// Keys per `SCAN` (its `COUNT` hint) and so at most per `UNLINK`.
    pub scan_batch: usize,
}

impl Default for RedisOptions {
    fn default() -> Self {
        Self {
            command_timeout: Duration::from_millis(500),
            connect_timeout: Duration::from_millis(1000),
            scan_batch: 1000,
        }
    }
}

/// Deletes a key only if it holds the expected value, atomically (lock release).
const DELETE_IF_EQUALS: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
";

/// A [`CacheStore`] backed by Redis.
pub struct RedisStore {
    client: Client,
    connection: OnceCell<ConnectionManager>,
    options: RedisOptions,
    name: String,
    delete_if_equals: Script,
}

impl RedisStore {
    /// A store for `url` (`redis://[user:password@]host[:port][/db]` or
    /// `redis+unix:///path`). Does not connect yet: the first command does.
    pub fn new(url: &str, options: RedisOptions) -> Result<Self> {
        let client = Client::open(url).map_err(|err| {
            // The URL may hold a password: never echo it.
            CacheError::Config(format!(
                "cache.redis_url is not a usable Redis URL ({}); expected redis://[user:password@]host[:port][/db] or redis+unix:///path",
                err.category()
            ))
        })?;
        let info = client.get_connection_info();
        let name = format!("redis {}/{}", info.addr(), info.redis_settings().db());
        Ok(Self {
            client,
            connection: OnceCell::new(),
            options,
            name,
            delete_if_equals: Script::new(DELETE_IF_EQUALS),
        })
    }

    /// The options in force.
    pub fn options(&self) -> &RedisOptions {
        &self.options
    }

    async fn connection(&self) -> Result<ConnectionManager> {
        let manager = self
            .connection
            .get_or_try_init(|| async {
                // The manager's own reconnect retries are kept short: while Redis is down
                // the fallback wrapper probes it, so long backoffs would only delay
                // noticing that it is back.
                let config = ::redis::aio::ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(self.options.connect_timeout))
                    .set_response_timeout(Some(self.options.command_timeout))
                    .set_number_of_retries(1)
                    .set_min_delay(Duration::from_millis(50))
                    .set_max_delay(Duration::from_millis(500));
                ConnectionManager::new_lazy_with_config(self.client.clone(), config)
            })
            .await
            .map_err(|err| self.classify("connect", "", &err))?;
        Ok(manager.clone())
    }

    async fn query<T: FromRedisValue>(
        &self,
        operation: &'static str,
        key: &str,
        cmd: &Cmd,
    ) -> Result<T> {
        let mut conn = self.connection().await?;
        match tokio::time::timeout(self.options.command_timeout, cmd.query_async(&mut conn)).await {
            Ok(result) => result.map_err(|err| self.classify(operation, key, &err)),
            Err(_) => Err(self.timeout(operation)),
        }
    }

    async fn query_pipeline<T: FromRedisValue>(
        &self,
        operation: &'static str,
        key: &str,
        pipe: &Pipeline,
    ) -> Result<T> {
        let mut conn = self.connection().await?;
        match tokio::time::timeout(self.options.command_timeout, pipe.query_async(&mut conn)).await
        {
            Ok(result) => result.map_err(|err| self.classify(operation, key, &err)),
            Err(_) => Err(self.timeout(operation)),
        }
    }

    fn timeout(&self, operation: &'static str) -> CacheError {
        CacheError::Timeout {
            store: self.name.clone(),
            operation,
            after: self.options.command_timeout,
        }
    }

    /// Maps a client error to what callers act on: the backend is unreachable (fall back),
    /// the key holds another type, or the server refused the command.
    fn classify(&self, operation: &'static str, key: &str, err: &RedisError) -> CacheError {
        let text = err.to_string();
        let code = err.code().unwrap_or_default();
        if code == "WRONGTYPE"
            || text.contains("WRONGTYPE")
            || text.contains("not an integer")
            || text.contains("not a valid float")
        {
            return CacheError::WrongType {
                key: key.into(),
                operation,
            };
        }
        let unreachable = err.is_io_error()
            || err.is_connection_dropped()
            || err.is_connection_refusal()
            || err.is_timeout()
            || matches!(
                err.kind(),
                ErrorKind::AuthenticationFailed
                    | ErrorKind::ClusterConnectionNotFound
                    | ErrorKind::Server(
                        ServerErrorKind::BusyLoading
                            | ServerErrorKind::MasterDown
                            | ServerErrorKind::ClusterDown
                            | ServerErrorKind::TryAgain
                            | ServerErrorKind::ReadOnly
                    )
            )
            // Refused credentials: Redis is there but unusable, which callers treat alike.
            || matches!(code, "NOAUTH" | "WRONGPASS" | "LOADING" | "READONLY" | "MASTERDOWN");
        if unreachable {
            CacheError::Unavailable {
                store: self.name.clone(),
                message: text,
            }
        } else {
            CacheError::Backend {
                store: self.name.clone(),
                operation,
                message: text,
            }
        }
    }
}

fn set_cmd(key: &str, value: &[u8], ttl: Option<Duration>) -> Cmd {
    let mut cmd = ::redis::cmd("SET");
    cmd.arg(key).arg(value);
    if let Some(ttl) = ttl {
        cmd.arg("PX").arg(ttl_millis(ttl));
    }
    cmd
}

/// A score as Redis reads it (`inf`, `-inf`, or a decimal).
fn score_arg(score: f64) -> String {
    if score == f64::INFINITY {
        "+inf".into()
    } else if score == f64::NEG_INFINITY {
        "-inf".into()
    } else {
        format!("{score}")
    }
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Not the client: its connection info holds the password.
        f.debug_struct("RedisStore")
            .field("server", &self.name)
            .field("options", &self.options)
            .field("connected", &self.connection.initialized())
            .finish()
    }
}

impl fmt::Display for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

#[async_trait]
impl CacheStore for RedisStore {
    fn kind(&self) -> &'static str {
        "redis"
    }

    async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        self.query("get", key, ::redis::cmd("GET").arg(key)).await
    }

    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Bytes>>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let first = keys.first().map(String::as_str).unwrap_or_default();
        self.query("get_many", first, ::redis::cmd("MGET").arg(keys))
            .await
    }

    async fn set(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<()> {
        self.query("set", key, &set_cmd(key, &value, ttl)).await
    }

    async fn set_many(&self, entries: &[(String, Bytes)], ttl: Option<Duration>) -> Result<()> {
        let Some((first, _)) = entries.first() else {
            return Ok(());
        };
        let mut pipe = Pipeline::with_capacity(entries.len());
        for (key, value) in entries {
            pipe.add_command(set_cmd(key, value, ttl)).ignore();
        }
        self.query_pipeline("set_many", first, &pipe).await
    }

    async fn set_if_absent(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<bool> {
        let mut cmd = set_cmd(key, &value, ttl);
        cmd.arg("NX");
        let reply: Option<String> = self.query("set_if_absent", key, &cmd).await?;
        Ok(reply.is_some())
    }

    async fn delete(&self, key: &str) -> Result<bool> {
        let removed: i64 = self
            .query("delete", key, ::redis::cmd("UNLINK").arg(key))
            .await?;
        Ok(removed > 0)
    }

    async fn delete_if_equals(&self, key: &str, expected: &[u8]) -> Result<bool> {
        let mut conn = self.connection().await?;
        let mut invocation = self.delete_if_equals.key(key);
        invocation.arg(expected);
        let result: std::result::Result<i64, RedisError> = match tokio::time::timeout(
            self.options.command_timeout,
            invocation.invoke_async(&mut conn),
        )
        .await
        {
            Ok(result) => result,
            Err(_) => return Err(self.timeout("delete_if_equals")),
        };
        let removed = result.map_err(|err| self.classify("delete_if_equals", key, &err))?;
        Ok(removed > 0)
    }

    async fn delete_pattern(&self, pattern: &str) -> Result<DeleteReport> {
        let mut report = DeleteReport::default();
        let mut cursor: u64 = 0;
        loop {
            let started = Instant::now();
            let (next, keys): (u64, Vec<Vec<u8>>) = self
                .query(
                    "delete_pattern",
                    pattern,
                    ::redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("MATCH")
                        .arg(pattern)
                        .arg("COUNT")
                        .arg(self.options.scan_batch),
                )
                .await?;
            if !keys.is_empty() {
                let removed: u64 = self
                    .query("delete_pattern", pattern, ::redis::cmd("UNLINK").arg(&keys))
                    .await?;
                report.deleted += removed;
            }
            report.batches += 1;
            report.longest_batch = report.longest_batch.max(started.elapsed());
            cursor = next;
            if cursor == 0 {
                break;
            }
        }
        tracing::debug!(
            store = %self.name,
            pattern,
            deleted = report.deleted,
            batches = report.batches,
            longest_batch_ms = report.longest_batch.as_secs_f64() * 1000.0,
            "pattern delete done"
        );
        Ok(report)
    }

    async fn expire(&self, key: &str, ttl: Duration) -> Result<bool> {
        let set: i64 = self
            .query(
                "expire",
                key,
                ::redis::cmd("PEXPIRE").arg(key).arg(ttl_millis(ttl)),
            )
            .await?;
        Ok(set == 1)
    }

    async fn incr_by(&self, key: &str, delta: i64, ttl: Option<Duration>) -> Result<i64> {
        let mut pipe = ::redis::pipe();
        pipe.atomic().cmd("INCRBY").arg(key).arg(delta);
        expire_if_new(&mut pipe, key, ttl);
        let (value,): (i64,) = self.query_pipeline("incr_by", key, &pipe).await?;
        Ok(value)
    }

    async fn hash_incr_by(
        &self,
        key: &str,
        field: &str,
        delta: i64,
        ttl: Option<Duration>,
    ) -> Result<i64> {
        let mut pipe = ::redis::pipe();
        pipe.atomic().cmd("HINCRBY").arg(key).arg(field).arg(delta);
        expire_if_new(&mut pipe, key, ttl);
        let (value,): (i64,) = self.query_pipeline("hash_incr_by", key, &pipe).await?;
        Ok(value)
    }

    async fn hash_get_all(&self, key: &str) -> Result<BTreeMap<String, i64>> {
        self.query("hash_get_all", key, ::redis::cmd("HGETALL").arg(key))
            .await
    }

    async fn sorted_add(&self, key: &str, member: &str, score: f64) -> Result<bool> {
        let added: i64 = self
            .query(
                "sorted_add",
                key,
                ::redis::cmd("ZADD")
                    .arg(key)
                    .arg(score_arg(score))
                    .arg(member),
            )
            .await?;
        Ok(added == 1)
    }

    async fn sorted_range_by_score(
        &self,
        key: &str,
        min: f64,
        max: f64,
        limit: usize,
    ) -> Result<Vec<(String, f64)>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        self.query(
            "sorted_range_by_score",
            key,
            ::redis::cmd("ZRANGEBYSCORE")
                .arg(key)
                .arg(score_arg(min))
                .arg(score_arg(max))
                .arg("WITHSCORES")
                .arg("LIMIT")
                .arg(0)
                .arg(limit),
        )
        .await
    }

    async fn sorted_remove(&self, key: &str, member: &str) -> Result<bool> {
        let removed: i64 = self
            .query(
                "sorted_remove",
                key,
                ::redis::cmd("ZREM").arg(key).arg(member),
            )
            .await?;
        Ok(removed == 1)
    }

    async fn ping(&self) -> Result<()> {
        let _: String = self.query("ping", "", &::redis::cmd("PING")).await?;
        Ok(())
    }
}

/// Adds `PEXPIRE key ttl NX` to a pipeline: a counter gets its TTL when it is created,
/// and later increments do not extend it.
fn expire_if_new(pipe: &mut ::redis::Pipeline, key: &str, ttl: Option<Duration>) {
    if let Some(ttl) = ttl {
        pipe.cmd("PEXPIRE")
            .arg(key)
            .arg(ttl_millis(ttl))
            .arg("NX")
            .ignore();
    }
}
