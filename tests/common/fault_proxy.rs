//! A TCP fault proxy: sits between edgeship and an emulator (moto, Azurite) or a fake
//! API and breaks a chosen share of the HTTP exchanges that cross it — connection resets
//! (RST), stalls, slow bytes, truncated responses, refused connections — with a seeded
//! generator, counting every fault it injects so a test can show faults really happened.
//!
//! The proxy knows no HTTP. It tells exchanges apart by turn-taking: bytes from the
//! client after bytes from the upstream start a new exchange (a request), bytes from the
//! upstream after the client's are its response. HTTP/1.1 clients without pipelining —
//! hyper under the AWS SDK, reqwest — talk exactly like that, so each request on a
//! kept-alive connection meets a fault with the configured probability, not only the
//! first one of each connection.
//!
//! What each fault does to an exchange:
//!
//! | fault | effect |
//! |---|---|
//! | `Reset` | either before the request reaches the upstream (part of it forwarded), or after the upstream answered (part of the answer forwarded): the client's socket is closed with `SO_LINGER` 0, so it gets an RST |
//! | `Stall` | nothing moves for [`FaultConfig::stall`] (before the request reaches the upstream, or after it answered), then both connections are dropped |
//! | `Slow` | the answer's first [`FaultConfig::slow_budget`] bytes trickle out [`FaultConfig::slow_chunk`] bytes at a time, one chunk per [`FaultConfig::slow_delay`]; the exchange completes |
//! | `Truncate` | the request is served; part of the answer's first chunk is forwarded, then the connection is closed |
//! | `Refuse` | the connection is closed at once, nothing forwarded (on a kept-alive connection: when the next request arrives) |
//!
//! Reproducible: the decisions of the n-th connection come from a generator seeded with
//! the proxy's seed and n, so a seed gives the same sequence of decisions per connection
//! (which request of a concurrent client lands on which connection is up to scheduling).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A kind of fault, or none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The exchange passes untouched.
    Pass,
    /// The client gets a TCP reset.
    Reset,
    /// Nothing moves for a while, then the connection drops.
    Stall,
    /// The answer's first bytes trickle out slowly (the exchange completes).
    Slow,
    /// Part of the answer, then the connection is closed.
    Truncate,
    /// The connection is closed at once.
    Refuse,
}

/// The share of exchanges meeting each fault, each in `0.0..=1.0`, summing to at most 1.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct FaultRates {
    /// Share of exchanges whose client gets a reset.
    pub reset: f64,
    /// Share of exchanges that stall, then drop.
    pub stall: f64,
    /// Share of answers sent slowly.
    pub slow: f64,
    /// Share of answers cut short.
    pub truncate: f64,
    /// Share of connections closed at once.
    pub refuse: f64,
}

impl FaultRates {
    /// No faults.
    pub fn none() -> Self {
        Self::default()
    }

    /// `total` spread evenly over all five kinds (slow answers included: a fifth of the
    /// faults then complete, slowly).
    pub fn mixed(total: f64) -> Self {
        let each = total / 5.0;
        Self {
            reset: each,
            stall: each,
            slow: each,
            truncate: each,
            refuse: each,
        }
    }

    /// `total` spread evenly over the four kinds that make an exchange fail (reset,
    /// stall, truncate, refuse): `failing(1.0)` lets no exchange through.
    pub fn failing(total: f64) -> Self {
        let each = total / 4.0;
        Self {
            reset: each,
            stall: each,
            slow: 0.0,
            truncate: each,
            refuse: each,
        }
    }

    /// The share of exchanges meeting any fault.
    pub fn total(&self) -> f64 {
        self.reset + self.stall + self.slow + self.truncate + self.refuse
    }

    /// Checks every rate is in `0.0..=1.0` and they sum to at most 1.
    pub fn validate(&self) -> Result<(), String> {
        for (name, rate) in self.named() {
            if !(0.0..=1.0).contains(&rate) {
                return Err(format!("{name} rate {rate} is not in 0..=1"));
            }
        }
        if self.total() > 1.0 + 1e-9 {
            return Err(format!("the rates sum to {}, more than 1", self.total()));
        }
        Ok(())
    }

    fn named(&self) -> [(&'static str, f64); 5] {
        [
            ("reset", self.reset),
            ("stall", self.stall),
            ("slow", self.slow),
            ("truncate", self.truncate),
            ("refuse", self.refuse),
        ]
    }

    /// The fault for a uniform `roll` in `0.0..1.0`.
    pub fn pick(&self, roll: f64) -> Fault {
        let kinds = [
            (Fault::Reset, self.reset),
            (Fault::Stall, self.stall),
            (Fault::Slow, self.slow),
            (Fault::Truncate, self.truncate),
            (Fault::Refuse, self.refuse),
        ];
        let mut upto = 0.0;
        for (fault, rate) in kinds {
            upto += rate;
            if roll < upto {
                return fault;
            }
        }
        Fault::Pass
    }
}

/// How the proxy injects faults.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultConfig {
    /// The share of exchanges meeting each fault.
    pub rates: FaultRates,
    /// Seeds the decisions.
    pub seed: u64,
    /// Exchanges (counted over all connections) let through before faults start.
    pub healthy_exchanges: u64,
    /// How long a stall holds before dropping the connection.
    pub stall: Duration,
    /// Bytes per write of a slow answer.
    pub slow_chunk: usize,
    /// The pause between those writes.
    pub slow_delay: Duration,
    /// How many bytes of an answer are sent slowly (the rest at full speed).
    pub slow_budget: usize,
}

impl FaultConfig {
    /// `rates` with `seed` and the defaults: stalls of 1.5 s, slow answers of 1 KiB in
    /// 64-byte pieces 10 ms apart (a quarter of a second).
    pub fn new(rates: FaultRates, seed: u64) -> Self {
        Self {
            rates,
            seed,
            healthy_exchanges: 0,
            stall: Duration::from_millis(1500),
            slow_chunk: 64,
            slow_delay: Duration::from_millis(10),
            slow_budget: 1024,
        }
    }
}

/// What the proxy did so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FaultCounts {
    /// Connections accepted.
    pub connections: u64,
    /// Exchanges (requests) seen.
    pub exchanges: u64,
    /// Exchanges passed untouched.
    pub passed: u64,
    /// Resets sent.
    pub resets: u64,
    /// Stalls held.
    pub stalls: u64,
    /// Answers sent slowly.
    pub slow: u64,
    /// Answers cut short.
    pub truncated: u64,
    /// Connections closed at once.
    pub refused: u64,
}

impl FaultCounts {
    /// Every fault injected, slow answers included.
    pub fn faults(&self) -> u64 {
        self.resets + self.stalls + self.slow + self.truncated + self.refused
    }

    /// Faults that made an exchange fail (all but slow answers).
    pub fn failures(&self) -> u64 {
        self.resets + self.stalls + self.truncated + self.refused
    }
}

impl std::fmt::Display for FaultCounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} faults in {} exchanges on {} connections: {} resets, {} stalls, {} slow, {} truncated, {} refused",
            self.faults(),
            self.exchanges,
            self.connections,
            self.resets,
            self.stalls,
            self.slow,
            self.truncated,
            self.refused
        )
    }
}

#[derive(Debug, Default)]
struct Counters {
    connections: AtomicU64,
    exchanges: AtomicU64,
    passed: AtomicU64,
    resets: AtomicU64,
    stalls: AtomicU64,
    slow: AtomicU64,
    truncated: AtomicU64,
    refused: AtomicU64,
}

impl Counters {
    fn snapshot(&self) -> FaultCounts {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        FaultCounts {
            connections: get(&self.connections),
            exchanges: get(&self.exchanges),
            passed: get(&self.passed),
            resets: get(&self.resets),
            stalls: get(&self.stalls),
            slow: get(&self.slow),
            truncated: get(&self.truncated),
            refused: get(&self.refused),
        }
    }

    fn count(&self, fault: Fault) {
        let counter = match fault {
            Fault::Pass => &self.passed,
            Fault::Reset => &self.resets,
            Fault::Stall => &self.stalls,
            Fault::Slow => &self.slow,
            Fault::Truncate => &self.truncated,
            Fault::Refuse => &self.refused,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// splitmix64: small, seedable, good enough to spread faults.
#[derive(Debug, Clone)]
pub struct SeededRng(u64);

impl SeededRng {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0.0..1.0`.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next_u64() % n as u64) as usize
        }
    }

    /// A fair coin.
    pub fn coin(&mut self) -> bool {
        self.next_u64() & 1 == 1
    }
}

struct Shared {
    config: Mutex<FaultConfig>,
    counters: Counters,
}

impl Shared {
    fn config(&self) -> FaultConfig {
        self.config
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The fault for the next exchange: none while the healthy exchanges last.
    fn decide(&self, rng: &mut SeededRng) -> (Fault, FaultConfig) {
        let config = self.config();
        let n = self.counters.exchanges.fetch_add(1, Ordering::Relaxed);
        let roll = rng.next_f64();
        let fault = if n < config.healthy_exchanges {
            Fault::Pass
        } else {
            config.rates.pick(roll)
        };
        (fault, config)
    }
}

/// A running proxy in front of one upstream address; it stops when dropped.
pub struct FaultProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FaultProxy {
    /// Starts a proxy on a free loopback port forwarding to `upstream` (`host:port`, or
    /// a URL such as `http://127.0.0.1:5055/devstoreaccount1`, whose host and port are
    /// used). Needs a tokio runtime; panics on a bad config or address.
    pub async fn start(upstream: &str, config: FaultConfig) -> Self {
        if let Err(err) = config.rates.validate() {
            panic!("fault proxy: {err}");
        }
        let upstream_addr = authority(upstream)
            .parse::<SocketAddr>()
            .unwrap_or_else(|err| panic!("fault proxy: upstream {upstream}: {err}"));
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("fault proxy: bind on loopback");
        let addr = listener.local_addr().expect("fault proxy: its address");
        let shared = Arc::new(Shared {
            config: Mutex::new(config),
            counters: Counters::default(),
        });
        let accepting = Arc::clone(&shared);
        let task = tokio::spawn(async move {
            let mut index = 0u64;
            while let Ok((client, _)) = listener.accept().await {
                accepting
                    .counters
                    .connections
                    .fetch_add(1, Ordering::Relaxed);
                let seed = accepting.config().seed;
                let rng = SeededRng::new(seed ^ index.wrapping_mul(0xA24B_AED4_963E_E407));
                index += 1;
                let shared = Arc::clone(&accepting);
                tokio::spawn(relay(client, upstream_addr, shared, rng));
            }
        });
        Self { addr, shared, task }
    }

    /// The proxy's address (`127.0.0.1:PORT`).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `upstream_url` with its authority replaced by the proxy's: the URL to give the
    /// client (`http://127.0.0.1:5055/devstoreaccount1` → `http://127.0.0.1:PROXY/devstoreaccount1`).
    pub fn url_for(&self, upstream_url: &str) -> String {
        let (scheme, rest) = upstream_url
            .split_once("://")
            .unwrap_or(("http", upstream_url));
        let path = rest.find('/').map(|at| &rest[at..]).unwrap_or("");
        format!("{scheme}://{}{path}", self.addr)
    }

    /// Replaces the fault rates from now on (exchanges in flight keep their decision).
    pub fn set_rates(&self, rates: FaultRates) {
        if let Err(err) = rates.validate() {
            panic!("fault proxy: {err}");
        }
        self.shared
            .config
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .rates = rates;
    }

    /// What the proxy did so far.
    pub fn counts(&self) -> FaultCounts {
        self.shared.counters.snapshot()
    }
}

/// `host:port` of a URL or an address.
fn authority(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    rest.split('/').next().unwrap_or(rest)
}

/// Who spoke last on a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Turn {
    /// Nobody yet, or the upstream: the client's next bytes start an exchange.
    Idle,
    /// The client is sending a request.
    Request,
    /// The upstream is answering.
    Response,
}

/// Closes `stream` with an RST instead of a FIN.
fn reset(stream: TcpStream) {
    // If the option cannot be set the close is a FIN: still a broken exchange.
    let _ = stream.set_zero_linger();
    drop(stream);
}

/// Relays one client connection, injecting the faults `shared` decides.
async fn relay(
    mut client: TcpStream,
    upstream: SocketAddr,
    shared: Arc<Shared>,
    mut rng: SeededRng,
) {
    // The first exchange's fault is decided at once, so a refused connection is closed
    // before anything is read from it.
    let (mut fault, mut config) = shared.decide(&mut rng);
    if fault == Fault::Refuse {
        shared.counters.count(Fault::Refuse);
        return;
    }
    let Ok(mut server) = TcpStream::connect(upstream).await else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let mut turn = Turn::Idle;
    let mut first = true;
    let mut slow_left = 0usize;
    let mut up = vec![0u8; 64 * 1024];
    let mut down = vec![0u8; 64 * 1024];
    loop {
        tokio::select! {
            read = client.read(&mut up) => {
                let n = match read {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                if turn != Turn::Request {
                    turn = Turn::Request;
                    if !first {
                        (fault, config) = shared.decide(&mut rng);
                    }
                    first = false;
                    match fault {
                        Fault::Refuse => {
                            shared.counters.count(Fault::Refuse);
                            return;
                        }
                        Fault::Reset if rng.coin() => {
                            // Before the upstream has all of the request.
                            let part = rng.below(n);
                            let _ = server.write_all(&up[..part]).await;
                            shared.counters.count(Fault::Reset);
                            reset(client);
                            return;
                        }
                        Fault::Stall if rng.coin() => {
                            // The request goes nowhere.
                            shared.counters.count(Fault::Stall);
                            tokio::time::sleep(config.stall).await;
                            return;
                        }
                        _ => {}
                    }
                }
                if server.write_all(&up[..n]).await.is_err() {
                    return;
                }
            }
            read = server.read(&mut down) => {
                let n = match read {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                if turn != Turn::Response {
                    turn = Turn::Response;
                    shared.counters.count(fault);
                    match fault {
                        Fault::Reset => {
                            let part = rng.below(n);
                            let _ = client.write_all(&down[..part]).await;
                            reset(client);
                            return;
                        }
                        Fault::Stall => {
                            tokio::time::sleep(config.stall).await;
                            return;
                        }
                        Fault::Truncate => {
                            let part = rng.below(n);
                            let _ = client.write_all(&down[..part]).await;
                            let _ = client.shutdown().await;
                            return;
                        }
                        Fault::Slow => slow_left = config.slow_budget,
                        Fault::Pass | Fault::Refuse => {}
                    }
                }
                let mut sent = 0;
                while slow_left > 0 && sent < n {
                    let piece = config.slow_chunk.max(1).min(slow_left).min(n - sent);
                    if client.write_all(&down[sent..sent + piece]).await.is_err() {
                        return;
                    }
                    sent += piece;
                    slow_left -= piece;
                    tokio::time::sleep(config.slow_delay).await;
                }
                if client.write_all(&down[sent..n]).await.is_err() {
                    return;
                }
            }
        }
    }
}
