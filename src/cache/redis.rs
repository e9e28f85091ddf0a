//! The Redis store: the `redis` crate over one multiplexed connection that reconnects by
//! itself ([`ConnectionManager`]), or over the crate's cluster client for a Redis Cluster;
//! either over TCP or TLS (`rediss://`).
//!
//! One connection is enough: it pipelines concurrent requests from every task, so there is
//! no pool to size (the cluster client keeps one such connection per node). The connection
//! is opened lazily on the first command, so the service starts (degraded) when Redis is
//! down and comes up when it appears. Every command runs under `cache.command_timeout_ms`;
//! a command that does not answer in time is [`CacheError::Timeout`], which the fallback
//! wrapper treats like an outage.
//!
//! Multi-key operations are one round trip each: `get_many` is one `MGET`, `set_many` one
//! pipeline of `SET … PX`. Pattern deletes walk the keyspace with `SCAN … MATCH … COUNT`
//! and `UNLINK` each batch (freeing memory off Redis's main thread), so other clients wait
//! at most one batch; `KEYS` is never used. Counter TTLs use `PEXPIRE … NX` (Redis ≥ 7.0).
//!
//! On a cluster, commands are routed by key slot. Every key of a site shares a slot (the
//! `{site}` hash tag, see [`super::keyspace`]), so per-key commands, scripts and the
//! atomic counter pipelines work unchanged. What differs: an `MGET` over several slots is
//! split per node by the client, `set_many` sends one `SET` per key concurrently (a
//! pipeline may not span slots; the per-node connections still pipeline them), and a
//! pattern delete scans every primary in turn.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use ::redis::aio::{ConnectionLike, ConnectionManager};
use ::redis::cluster::{ClusterClient, ClusterConfig};
use ::redis::cluster_async::ClusterConnection;
use ::redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use ::redis::{
    Client, Cmd, ErrorKind, FromRedisValue, IntoConnectionInfo, Pipeline, RedisError, RedisFuture,
    Script, ServerErrorKind, TlsCertificates, Value,
};
use async_trait::async_trait;
use bytes::Bytes;
use futures_util::future::try_join_all;
use tokio::sync::OnceCell;

use super::{Admission, CacheError, CacheStore, DeleteReport, RateLimit, Result, ttl_millis};

/// How the store talks to Redis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisOptions {
    /// Every command (and every batch of a pattern delete) must answer within this.
    pub command_timeout: Duration,
    /// Opening a connection must succeed within this.
    pub connect_timeout: Duration,
    /// Keys per `SCAN` (its `COUNT` hint) and so at most per `UNLINK`.
    pub scan_batch: usize,
    /// The URL names seed nodes of a Redis Cluster (the others are discovered).
    pub cluster: bool,
    /// A PEM file of the CA certificates that sign the server's certificate, for
    /// `rediss://` URLs; without it the system's trust store is used.
    pub ca_file: Option<PathBuf>,
}

impl Default for RedisOptions {
    fn default() -> Self {
        Self {
            command_timeout: Duration::from_millis(500),
            connect_timeout: Duration::from_millis(1000),
            scan_batch: 1000,
            cluster: false,
            ca_file: None,
        }
    }
}

/// The seed URLs in a `redis_url`: one URL, or for a cluster several separated by commas
/// (`redis://10.0.0.1:6379,redis://10.0.0.2:6379`). A comma splits only where the next
/// URL starts, so a comma inside a password is kept.
pub fn seed_urls(url: &str) -> Vec<&str> {
    let mut seeds = Vec::new();
    let mut start = 0;
    for (at, _) in url.match_indices(',') {
        let next = url[at + 1..].trim_start();
        if next.starts_with("redis://") || next.starts_with("rediss://") {
            seeds.push(url[start..at].trim());
            start = at + 1;
        }
    }
    seeds.push(url[start..].trim());
    seeds
}

/// Deletes a key only if it holds the expected value, atomically (lock release).
const DELETE_IF_EQUALS: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
";

/// GCRA on the server's clock (see [`CacheStore::throttle`]). KEYS[1] holds the theoretical
/// arrival time in microseconds; ARGV: the interval and the tolerance in microseconds.
/// Returns 0 when admitted, else the microseconds to wait. `TIME` before a write needs
/// effect replication, the default since Redis 5 (asked for explicitly where it is not).
const THROTTLE: &str = r"
if redis.replicate_commands then redis.replicate_commands() end
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local arrival = tonumber(redis.call('GET', KEYS[1])) or now
if arrival < now then arrival = now end
local next = arrival + tonumber(ARGV[1])
local ahead = next - now
local tolerance = tonumber(ARGV[2])
if ahead > tolerance then
  return ahead - tolerance
end
redis.call('SET', KEYS[1], string.format('%.0f', next), 'PX', math.ceil(ahead / 1000))
return 0
";

/// Where the store connects: one server, or a cluster through its seed nodes. One per
/// store, so the size difference of the variants does not matter.
#[allow(clippy::large_enum_variant)]
enum Target {
    Server(Client),
    Cluster(ClusterClient),
}

/// An open connection of either kind; both reconnect by themselves.
#[derive(Clone)]
enum Connection {
    Server(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Server(conn) => conn.req_packed_command(cmd),
            Self::Cluster(conn) => conn.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Server(conn) => conn.req_packed_commands(pipeline, offset, count),
            Self::Cluster(conn) => conn.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Server(conn) => conn.get_db(),
            Self::Cluster(conn) => conn.get_db(),
        }
    }
}

/// A [`CacheStore`] backed by Redis.
pub struct RedisStore {
    target: Target,
    connection: OnceCell<Connection>,
    options: RedisOptions,
    name: String,
    delete_if_equals: Script,
    throttle: Script,
}

impl RedisStore {
    /// A store for `url` (`redis://[user:password@]host[:port][/db]`,
    /// `rediss://…` for TLS, or `redis+unix:///path`; with [`RedisOptions::cluster`], one
    /// or more comma-separated seed nodes). Does not connect yet: the first command does.
    pub fn new(url: &str, options: RedisOptions) -> Result<Self> {
        // The URL may hold a password: errors never echo it.
        let unusable = |err: RedisError| {
            CacheError::Config(format!(
                "cache.redis_url is not a usable Redis URL ({}); expected redis://[user:password@]host[:port][/db], rediss://… or redis+unix:///path",
                err.category()
            ))
        };
        let seeds = seed_urls(url);
        if seeds.len() > 1 && !options.cluster {
            return Err(CacheError::Config(
                "cache.redis_url lists several servers, which only a cluster takes (cache.redis_cluster = true)".into(),
            ));
        }
        let mut infos = Vec::with_capacity(seeds.len());
        for seed in &seeds {
            infos.push(seed.into_connection_info().map_err(unusable)?);
        }
        let tls_seeds = infos
            .iter()
            .filter(|info| matches!(info.addr(), ::redis::ConnectionAddr::TcpTls { .. }))
            .count();
        let tls = tls_seeds > 0;
        if tls && tls_seeds != infos.len() {
            return Err(CacheError::Config(
                "cache.redis_url mixes rediss:// and redis:// seeds; use one scheme".into(),
            ));
        }
        let certificates = match &options.ca_file {
            Some(_) if !tls => {
                return Err(CacheError::Config(
                    "cache.redis_ca_file is set but cache.redis_url is not rediss:// (TLS)".into(),
                ));
            }
            Some(path) => {
                let pem = std::fs::read(path).map_err(|err| {
                    CacheError::Config(format!(
                        "cache.redis_ca_file {} cannot be read: {err}",
                        path.display()
                    ))
                })?;
                Some(TlsCertificates {
                    client_tls: None,
                    root_cert: Some(pem),
                })
            }
            None => None,
        };
        if tls {
            // rustls needs a process-wide crypto provider; another part of the binary may
            // have installed the same one already, which is fine.
            let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        }
        let first = infos
            .first()
            .map(|info| info.addr().to_string())
            .unwrap_or_default();
        let (target, name) = if options.cluster {
            let mut builder = ClusterClient::builder(infos)
                .connection_timeout(options.connect_timeout)
                .response_timeout(options.command_timeout)
                .retries(2);
            if let Some(certificates) = certificates {
                builder = builder.certs(certificates);
            }
            let client = builder.build().map_err(unusable)?;
            let more = match seeds.len() {
                1 => String::new(),
                n => format!(" +{} seeds", n - 1),
            };
            (
                Target::Cluster(client),
                format!("redis cluster {first}{more}"),
            )
        } else {
            let Some(info) = infos.pop() else {
                return Err(CacheError::Config("cache.redis_url is empty".into()));
            };
            let db = info.redis_settings().db();
            let client = match certificates {
                Some(certificates) => Client::build_with_tls(info, certificates),
                None => Client::open(info),
            }
            .map_err(unusable)?;
            (Target::Server(client), format!("redis {first}/{db}"))
        };
        Ok(Self {
            target,
            connection: OnceCell::new(),
            options,
            name,
            delete_if_equals: Script::new(DELETE_IF_EQUALS),
            throttle: Script::new(THROTTLE),
        })
    }

    /// The options in force.
    pub fn options(&self) -> &RedisOptions {
        &self.options
    }

    async fn connection(&self) -> Result<Connection> {
        let connection = self
            .connection
            .get_or_try_init(|| async {
                match &self.target {
                    Target::Server(client) => {
                        // The manager's own reconnect retries are kept short: while Redis
                        // is down the fallback wrapper probes it, so long backoffs would
                        // only delay noticing that it is back.
                        let config = ::redis::aio::ConnectionManagerConfig::new()
                            .set_connection_timeout(Some(self.options.connect_timeout))
                            .set_response_timeout(Some(self.options.command_timeout))
                            .set_number_of_retries(1)
                            .set_min_delay(Duration::from_millis(50))
                            .set_max_delay(Duration::from_millis(500));
                        ConnectionManager::new_lazy_with_config(client.clone(), config)
                            .map(Connection::Server)
                    }
                    Target::Cluster(client) => {
                        // Connecting reads the slot map from a seed, so it fails (and the
                        // next command tries again) while the cluster is unreachable.
                        let config = ClusterConfig::new()
                            .set_connection_timeout(self.options.connect_timeout)
                            .set_response_timeout(self.options.command_timeout);
                        let connect = client.get_async_connection_with_config(config);
                        match tokio::time::timeout(self.options.connect_timeout, connect).await {
                            Ok(result) => result.map(Connection::Cluster),
                            Err(_) => Err(RedisError::from((
                                ErrorKind::Io,
                                "connecting to the cluster timed out",
                            ))),
                        }
                    }
                }
            })
            .await
            .map_err(|err| self.classify("connect", "", &err))?;
        Ok(connection.clone())
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

    /// Runs a command outside the [`CacheStore`] contract (the job queue's stream
    /// commands), under the store's timeout and with its error mapping. `key` names the
    /// key in errors.
    pub async fn command<T: FromRedisValue>(
        &self,
        operation: &'static str,
        key: &str,
        cmd: &Cmd,
    ) -> Result<T> {
        self.query(operation, key, cmd).await
    }

    /// Runs a Lua script (loaded on first use) with `keys` and `args`, like
    /// [`command`](Self::command).
    pub async fn script<T: FromRedisValue>(
        &self,
        operation: &'static str,
        script: &Script,
        keys: &[&str],
        args: &[&str],
    ) -> Result<T> {
        let mut conn = self.connection().await?;
        let mut invocation = script.prepare_invoke();
        for key in keys {
            invocation.key(*key);
        }
        for arg in args {
            invocation.arg(*arg);
        }
        let key = keys.first().copied().unwrap_or_default();
        match tokio::time::timeout(
            self.options.command_timeout,
            invocation.invoke_async(&mut conn),
        )
        .await
        {
            Ok(result) => result.map_err(|err| self.classify(operation, key, &err)),
            Err(_) => Err(self.timeout(operation)),
        }
    }

    /// Runs `cmd` on one cluster node (by address), or as usual on a single server.
    async fn query_on<T: FromRedisValue>(
        &self,
        node: Option<&(String, u16)>,
        operation: &'static str,
        key: &str,
        cmd: &Cmd,
    ) -> Result<T> {
        let Some((host, port)) = node else {
            return self.query(operation, key, cmd).await;
        };
        let Connection::Cluster(mut conn) = self.connection().await? else {
            return self.query(operation, key, cmd).await;
        };
        let routing = RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
            host: host.clone(),
            port: *port,
        });
        let reply = tokio::time::timeout(
            self.options.command_timeout,
            conn.route_command(cmd.clone(), routing),
        )
        .await
        .map_err(|_| self.timeout(operation))?
        .map_err(|err| self.classify(operation, key, &err))?;
        T::from_redis_value(reply).map_err(|err| self.classify(operation, key, &err.into()))
    }

    /// The primaries of the cluster, from `CLUSTER SLOTS` (host and port of each).
    async fn cluster_primaries(&self) -> Result<Vec<(String, u16)>> {
        let slots: Vec<Value> = self
            .query("cluster_slots", "", ::redis::cmd("CLUSTER").arg("SLOTS"))
            .await?;
        let mut primaries = Vec::new();
        for range in slots {
            // [start, end, [host, port, id, …], replicas…]
            let Value::Array(parts) = range else { continue };
            let Some(Value::Array(primary)) = parts.get(2) else {
                continue;
            };
            let host = match primary.first() {
                Some(Value::BulkString(host)) => String::from_utf8_lossy(host).into_owned(),
                Some(Value::SimpleString(host)) => host.clone(),
                _ => continue,
            };
            let Some(Value::Int(port)) = primary.get(1) else {
                continue;
            };
            let Ok(port) = u16::try_from(*port) else {
                continue;
            };
            if !primaries.contains(&(host.clone(), port)) {
                primaries.push((host, port));
            }
        }
        Ok(primaries)
    }

    /// `SCAN … MATCH` and `UNLINK` in batches on one server (or one cluster node).
    async fn delete_pattern_on(
        &self,
        node: Option<&(String, u16)>,
        pattern: &str,
        report: &mut DeleteReport,
    ) -> Result<()> {
        let mut cursor: u64 = 0;
        loop {
            let started = Instant::now();
            let (next, keys): (u64, Vec<Vec<u8>>) = self
                .query_on(
                    node,
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
                // Routed by the keys' slots (split per slot on a cluster).
                let removed: u64 = self
                    .query("delete_pattern", pattern, ::redis::cmd("UNLINK").arg(&keys))
                    .await?;
                report.deleted += removed;
            }
            report.batches += 1;
            report.longest_batch = report.longest_batch.max(started.elapsed());
            cursor = next;
            if cursor == 0 {
                return Ok(());
            }
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
        if matches!(self.target, Target::Cluster(_)) {
            // A pipeline must stay in one slot; the keys may not.
            let sets = entries.iter().map(|(key, value)| async move {
                let cmd = set_cmd(key, value, ttl);
                self.query::<()>("set_many", key, &cmd).await
            });
            try_join_all(sets).await?;
            return Ok(());
        }
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
        match &self.target {
            Target::Server(_) => self.delete_pattern_on(None, pattern, &mut report).await?,
            Target::Cluster(_) => {
                // Each primary holds its own slots: walk them one after the other.
                for node in self.cluster_primaries().await? {
                    self.delete_pattern_on(Some(&node), pattern, &mut report)
                        .await?;
                }
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

    async fn ttl(&self, key: &str) -> Result<Option<Duration>> {
        // -2: missing, -1: no expiry.
        let millis: i64 = self
            .query("ttl", key, ::redis::cmd("PTTL").arg(key))
            .await?;
        Ok(u64::try_from(millis).ok().map(Duration::from_millis))
    }

    async fn throttle(&self, key: &str, limit: RateLimit) -> Result<Admission> {
        let micros = |d: Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        let interval = micros(limit.interval).max(1).to_string();
        let tolerance = micros(limit.tolerance()).to_string();
        let wait: u64 = self
            .script("throttle", &self.throttle, &[key], &[&interval, &tolerance])
            .await?;
        Ok(match wait {
            0 => Admission::Admitted,
            micros => Admission::Limited {
                retry_after: Duration::from_micros(micros),
            },
        })
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
