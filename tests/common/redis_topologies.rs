//! The Redis deployments the cache suite runs on: the shared server `scripts/test` starts,
//! a three-node Redis Cluster on loopback ports, and a TLS-only server with a certificate
//! made for the test. Private servers are started by the test and killed when dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use edgeship::cache::CacheKey;
use edgeship::config::{CacheConfig, RedisUrl};
use redis::{FromRedisValue, TlsCertificates};

use super::redis::{SHARED_REDIS, free_port, spawn_redis_server, unique_prefix};

/// Runs each case (an `async fn(&Backend)` in the calling module) on the shared server, on
/// a three-node cluster and over TLS, as tests named `shared::case`, `cluster::case` and
/// `tls::case`.
#[allow(unused_macros)]
macro_rules! on_every_redis {
    ($($case:ident),+ $(,)?) => {
        /// On the shared server `scripts/test` starts.
        mod shared {
            $(
                #[tokio::test]
                async fn $case() {
                    super::$case(&crate::common::redis_topologies::Backend::shared()).await;
                }
            )+
        }
        /// On a three-node Redis Cluster started by the test.
        mod cluster {
            $(
                #[tokio::test]
                async fn $case() {
                    super::$case(&crate::common::redis_topologies::Backend::cluster()).await;
                }
            )+
        }
        /// On a TLS-only server started by the test.
        mod tls {
            $(
                #[tokio::test]
                async fn $case() {
                    super::$case(&crate::common::redis_topologies::Backend::tls()).await;
                }
            )+
        }
    };
}
#[allow(unused_imports)]
pub(crate) use on_every_redis;

/// A Redis deployment and a way to look at what it holds, independent of the cache layer.
pub struct Backend {
    /// Names the deployment in assertion messages.
    pub label: &'static str,
    url: String,
    cluster: bool,
    ca_file: Option<PathBuf>,
    /// Ports of the private servers (the cluster's nodes).
    pub ports: Vec<u16>,
    _servers: Vec<Server>,
}

impl Backend {
    /// The shared server at 127.0.0.1:6379.
    pub fn shared() -> Self {
        Self {
            label: "redis",
            url: SHARED_REDIS.into(),
            cluster: false,
            ca_file: None,
            ports: vec![6379],
            _servers: Vec::new(),
        }
    }

    /// A new three-node cluster (no replicas), every slot assigned and the cluster ready.
    pub fn cluster() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let ports = cluster_ports(3);
        let servers: Vec<Server> = ports
            .iter()
            .map(|port| {
                let node_dir = dir.path().join(port.to_string());
                std::fs::create_dir_all(&node_dir).unwrap();
                let server = Server::spawn(
                    &[
                        "--port",
                        &port.to_string(),
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        "nodes.conf",
                        "--cluster-node-timeout",
                        "5000",
                    ],
                    &node_dir,
                );
                wait_until(*port, || ping(&format!("redis://127.0.0.1:{port}"), None));
                server
            })
            .collect();
        let mut create = Command::new("redis-cli");
        create.arg("--cluster").arg("create");
        for port in &ports {
            create.arg(format!("127.0.0.1:{port}"));
        }
        let output = create
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .unwrap_or_else(|err| panic!("cannot run redis-cli ({err}); scripts/test installs it"));
        assert!(
            output.status.success(),
            "redis-cli --cluster create failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        for port in &ports {
            wait_until(*port, || {
                let info: String = redis::Client::open(format!("redis://127.0.0.1:{port}"))
                    .and_then(|c| c.get_connection_with_timeout(Duration::from_millis(200)))
                    .and_then(|mut c| redis::cmd("CLUSTER").arg("INFO").query(&mut c))
                    .unwrap_or_default();
                info.contains("cluster_state:ok")
            });
        }
        let url = ports
            .iter()
            .map(|port| format!("redis://127.0.0.1:{port}"))
            .collect::<Vec<_>>()
            .join(",");
        Self {
            label: "redis cluster",
            url,
            cluster: true,
            ca_file: None,
            ports,
            _servers: servers.into_iter().chain([Server::dir_only(dir)]).collect(),
        }
    }

    /// A server that speaks TLS only (no plain port), its certificate signed by a CA made
    /// for this test; clients must trust that CA through `cache.redis_ca_file`.
    pub fn tls() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let certs = make_certificates(dir.path());
        let port = free_port();
        let server = Server::spawn(
            &[
                "--port",
                "0",
                "--tls-port",
                &port.to_string(),
                "--tls-cert-file",
                certs.server_cert.to_str().unwrap(),
                "--tls-key-file",
                certs.server_key.to_str().unwrap(),
                "--tls-ca-cert-file",
                certs.ca_cert.to_str().unwrap(),
                "--tls-auth-clients",
                "no",
            ],
            dir.path(),
        );
        let url = format!("rediss://127.0.0.1:{port}");
        wait_until(port, || ping(&url, Some(&certs.ca_cert)));
        Self {
            label: "redis over TLS",
            url,
            cluster: false,
            ca_file: Some(certs.ca_cert),
            ports: vec![port],
            _servers: vec![server, Server::dir_only(dir)],
        }
    }

    /// The URL the cache connects to (seed nodes, comma-separated, for a cluster).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A cache config for this deployment under a unique prefix.
    pub fn config(&self, test: &str) -> CacheConfig {
        CacheConfig {
            redis_url: Some(RedisUrl::new(&self.url)),
            redis_cluster: self.cluster,
            redis_ca_file: self.ca_file.clone(),
            prefix: unique_prefix(test),
            ..CacheConfig::default()
        }
    }

    /// Runs a command on the deployment with the redis crate directly (routed by key on a
    /// cluster), for checking what the server holds.
    pub fn query<T: FromRedisValue>(&self, cmd: &redis::Cmd) -> T {
        let result = if self.cluster {
            let seeds: Vec<&str> = self.url.split(',').collect();
            redis::cluster::ClusterClient::new(seeds)
                .and_then(|client| client.get_connection())
                .and_then(|mut conn| cmd.query(&mut conn))
        } else {
            client(&self.url, self.ca_file.as_deref())
                .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(5)))
                .and_then(|mut conn| cmd.query(&mut conn))
        };
        result.unwrap_or_else(|err| panic!("{} at {}: {err}", self.label, self.url))
    }

    /// Whether `key` is stored in the server(s) themselves (not only in a memory fallback).
    pub fn exists(&self, key: &CacheKey) -> bool {
        self.query::<i64>(redis::cmd("EXISTS").arg(key.as_str())) == 1
    }

    /// Whether the servers are this test's own (so their key counts are this test's alone).
    pub fn is_private(&self) -> bool {
        !self._servers.is_empty()
    }

    /// How many keys each node holds (one entry for a single server).
    pub fn keys_per_node(&self) -> Vec<i64> {
        if !self.cluster {
            return vec![self.query(&redis::cmd("DBSIZE"))];
        }
        self.ports
            .iter()
            .map(|port| {
                let mut conn = redis::Client::open(format!("redis://127.0.0.1:{port}"))
                    .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(5)))
                    .unwrap();
                redis::cmd("DBSIZE").query(&mut conn).unwrap()
            })
            .collect()
    }
}

/// A client for `url`, trusting `ca` for `rediss://`.
fn client(url: &str, ca: Option<&Path>) -> redis::RedisResult<redis::Client> {
    match ca {
        Some(ca) => {
            let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
            redis::Client::build_with_tls(
                url,
                TlsCertificates {
                    client_tls: None,
                    root_cert: Some(std::fs::read(ca).unwrap()),
                },
            )
        }
        None => redis::Client::open(url),
    }
}

fn ping(url: &str, ca: Option<&Path>) -> bool {
    client(url, ca)
        .and_then(|c| c.get_connection_with_timeout(Duration::from_millis(300)))
        .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c))
        .is_ok()
}

fn wait_until(port: u16, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !ready() {
        assert!(
            Instant::now() < deadline,
            "redis-server on port {port} was not ready within 15 s"
        );
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// `n` free ports whose cluster bus ports (port + 10000) are free too.
fn cluster_ports(n: usize) -> Vec<u16> {
    let mut ports = Vec::new();
    while ports.len() < n {
        let port = free_port();
        let bus_free =
            std::net::TcpListener::bind(("127.0.0.1", port.wrapping_add(10_000))).is_ok();
        if port <= 55_535 && bus_free && !ports.contains(&port) {
            ports.push(port);
        }
    }
    ports
}

/// A private `redis-server` (killed on drop), or only a directory to remove.
struct Server {
    child: Option<Child>,
    _dir: Option<tempfile::TempDir>,
}

impl Server {
    fn spawn(args: &[&str], dir: &Path) -> Self {
        let child = spawn_redis_server(args, dir);
        Self {
            child: Some(child),
            _dir: None,
        }
    }

    fn dir_only(dir: tempfile::TempDir) -> Self {
        Self {
            child: None,
            _dir: Some(dir),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

struct Certificates {
    ca_cert: PathBuf,
    server_cert: PathBuf,
    server_key: PathBuf,
}

/// A CA and a server certificate for 127.0.0.1 and localhost that it signed, with openssl.
fn make_certificates(dir: &Path) -> Certificates {
    let run = |args: &[&str]| {
        let output = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap_or_else(|err| panic!("cannot run openssl ({err})"));
        assert!(
            output.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=edgeship test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    ]);
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName = IP:127.0.0.1, DNS:localhost\n\
         extendedKeyUsage = serverAuth, clientAuth\n\
         basicConstraints = CA:FALSE\n",
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "server.ext",
        "-out",
        "server.pem",
    ]);
    Certificates {
        ca_cert: dir.join("ca.pem"),
        server_cert: dir.join("server.pem"),
        server_key: dir.join("server.key"),
    }
}
