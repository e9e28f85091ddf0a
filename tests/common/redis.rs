//! Redis helpers for the cache tests: unique key prefixes on the shared server, a private
//! `redis-server` that a test can kill and restart, and a proxy that delays replies so a
//! test can count round trips.

use std::net::TcpListener as StdListener;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use edgeship::cache::Cache;
use edgeship::config::{CacheConfig, RedisUrl};

/// The shared test Redis that `scripts/test` starts.
pub const SHARED_REDIS: &str = "redis://127.0.0.1:6379";

/// A key prefix no other test (or test run) uses.
pub fn unique_prefix(test: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "test-{test}-{}-{nanos}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// A cache config for `url` under a unique prefix.
pub fn redis_config(url: &str, test: &str) -> CacheConfig {
    CacheConfig {
        redis_url: Some(RedisUrl::new(url)),
        prefix: unique_prefix(test),
        ..CacheConfig::default()
    }
}

/// A synchronous connection for checking what the server holds, independent of the layer.
pub fn raw_connection(url: &str) -> redis::Connection {
    redis::Client::open(url)
        .unwrap()
        .get_connection_with_timeout(Duration::from_secs(5))
        .unwrap_or_else(|err| {
            panic!("Redis at {url} is not reachable ({err}); scripts/test starts it")
        })
}

/// Deletes every key of the cache's prefix (tests clean up after themselves).
pub async fn cleanup(cache: &Cache) {
    let _ = cache.delete_pattern(&cache.keys().all()).await;
}

/// Deletes every key under `prefix` on the shared server (for tests that drive the
/// binary, where no `Cache` handle is at hand).
pub fn delete_prefix(prefix: &str) {
    use redis::Commands;
    let mut conn = raw_connection(SHARED_REDIS);
    let keys: Vec<String> = conn
        .scan_match::<_, String>(format!("{prefix}:*"))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    if !keys.is_empty() {
        let _: () = redis::cmd("UNLINK").arg(&keys).query(&mut conn).unwrap();
    }
}

/// A free local TCP port.
pub fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts `redis-server` with `args`, on loopback, without persistence, its files in
/// `dir`; does not wait for it to answer.
pub fn spawn_redis_server(args: &[&str], dir: &std::path::Path) -> Child {
    Command::new("redis-server")
        .args(args)
        .args([
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
        ])
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|err| panic!("cannot start redis-server ({err}); scripts/test installs it"))
}

/// A `redis-server` of this test only, on a free port, without persistence.
pub struct PrivateRedis {
    pub port: u16,
    child: Option<Child>,
    dir: tempfile::TempDir,
}

impl PrivateRedis {
    pub fn start() -> Self {
        let mut redis = Self {
            port: free_port(),
            child: None,
            dir: tempfile::tempdir().unwrap(),
        };
        redis.spawn();
        redis
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn spawn(&mut self) {
        let child = spawn_redis_server(&["--port", &self.port.to_string()], self.dir.path());
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let answered = redis::Client::open(self.url())
                .and_then(|c| c.get_connection_with_timeout(Duration::from_millis(200)))
                .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c))
                .is_ok();
            if answered {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "redis-server on port {} did not answer within 10 s",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the server (SIGKILL: no goodbye to clients) and waits until the port refuses.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
            assert!(
                Instant::now() < deadline,
                "port {} still answers",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts the server again on the same port (empty: it does not persist).
    pub fn restart(&mut self) {
        self.spawn();
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A TCP proxy to `upstream` that delivers every reply `delay` after the server sent it
/// (requests pass at once). A client that waits for a reply before sending more pays
/// `delay` per round trip; one that pipelines pays it once.
pub struct DelayProxy {
    pub port: u16,
    accept: tokio::task::JoinHandle<()>,
}

impl DelayProxy {
    pub async fn start(upstream: &str, delay: Duration) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let upstream = upstream.to_string();
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = tokio::net::TcpStream::connect(&upstream).await else {
                    continue;
                };
                tokio::spawn(relay(client, server, delay));
            }
        });
        Self { port, accept }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

impl Drop for DelayProxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

async fn relay(client: tokio::net::TcpStream, server: tokio::net::TcpStream, delay: Duration) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    tokio::spawn(async move {
        let _ = tokio::io::copy(&mut client_read, &mut server_write).await;
        let _ = server_write.shutdown().await;
    });
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(tokio::time::Instant, Vec<u8>)>();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match server_read.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if tx
                        .send((tokio::time::Instant::now() + delay, buf[..n].to_vec()))
                        .is_err()
                    {
                        return;
                    }
                }
            }
        }
    });
    while let Some((due, bytes)) = rx.recv().await {
        tokio::time::sleep_until(due).await;
        if client_write.write_all(&bytes).await.is_err() {
            return;
        }
    }
    let _ = client_write.shutdown().await;
}
