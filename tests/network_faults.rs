//! Deploys and purges through a TCP fault proxy (`common::fault_proxy`) between the
//! `edgeship` binary and moto, Azurite and the fake CDN APIs: resets, stalls, slow bytes,
//! truncated answers and refused connections on a seeded share of the HTTP exchanges.
//!
//! Every deploy through faults is checked object by object with a client that is not
//! edgeship's: the AWS SDK (or object_store for Azure) reads every stored object straight
//! from the emulator — not through the proxy — and its bytes are compared (blake3) with
//! the local build output; the stored manifest must equal the build's. Every test asserts
//! the proxy really injected faults.
//!
//! `EDGESHIP_FAULT_SEED=N` replaces every test's seed (to explore other fault sequences).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Output;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::fault_proxy::{Fault, FaultConfig, FaultCounts, FaultProxy, FaultRates, SeededRng};
use edgeship::pipeline::manifest::{Manifest, ManifestEntry};
use edgeship_providers::aws::sdk::aws_sdk_s3;
use edgeship_providers::aws::testing as moto;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The seed of a test: `EDGESHIP_FAULT_SEED` when set, else `default`.
fn seed(default: u64) -> u64 {
    std::env::var("EDGESHIP_FAULT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// Runs `cmd` off the async workers (the proxy keeps running on them).
async fn run(mut cmd: std::process::Command) -> Output {
    tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap()
}

/// The lines of `output`'s stderr that report an error.
fn errors(output: &Output) -> Vec<String> {
    common::stderr(output)
        .lines()
        .filter(|l| l.starts_with("error"))
        .map(str::to_owned)
        .collect()
}

/// A deploy's error after the network failed is one line that names what it was
/// talking to, says what to do, and carries no `Debug` dump of a client's error.
fn assert_clear(error: &str, names: &[&str]) {
    for name in names {
        assert!(error.contains(name), "{error} does not name {name}");
    }
    assert!(
        error.contains("deploy again"),
        "{error} does not say what to do"
    );
    for debug in ["DispatchFailure", "ConnectorError", "{ "] {
        assert!(!error.contains(debug), "{error} has `{debug}`");
    }
}

// ---------------------------------------------------------------------------------------
// The proxy itself.
// ---------------------------------------------------------------------------------------

#[test]
fn fault_rates_are_checked_and_a_seed_repeats_its_decisions() {
    assert!(FaultRates::mixed(0.3).validate().is_ok());
    assert!((FaultRates::mixed(0.3).total() - 0.3).abs() < 1e-9);
    assert!(FaultRates::failing(1.0).validate().is_ok());
    assert!(
        FaultRates::mixed(1.2).validate().is_err(),
        "more than 1 in all"
    );
    let negative = FaultRates {
        reset: -0.1,
        ..FaultRates::none()
    };
    assert!(negative.validate().unwrap_err().contains("reset"));

    // The kinds are laid out one after the other over 0..1.
    let rates = FaultRates {
        reset: 0.1,
        stall: 0.1,
        slow: 0.1,
        truncate: 0.1,
        refuse: 0.1,
    };
    let picks: Vec<Fault> = [0.05, 0.15, 0.25, 0.35, 0.45, 0.55, 0.99]
        .iter()
        .map(|roll| rates.pick(*roll))
        .collect();
    use Fault::*;
    assert_eq!(picks, [Reset, Stall, Slow, Truncate, Refuse, Pass, Pass]);
    assert_eq!(FaultRates::none().pick(0.0), Pass);
    assert_eq!(FaultRates::failing(1.0).pick(0.999_999), Refuse);

    // The same seed gives the same decisions, and about the configured share of faults.
    let decisions = |seed| {
        let mut rng = SeededRng::new(seed);
        (0..10_000)
            .map(|_| FaultRates::mixed(0.3).pick(rng.next_f64()))
            .collect::<Vec<_>>()
    };
    assert_eq!(decisions(7), decisions(7));
    assert_ne!(decisions(7), decisions(8));
    let faults = decisions(7).iter().filter(|f| **f != Pass).count();
    assert!((2_800..3_200).contains(&faults), "{faults} of 10,000");
    for kind in [Reset, Stall, Slow, Truncate, Refuse] {
        let n = decisions(7).iter().filter(|f| **f == kind).count();
        assert!((480..720).contains(&n), "{kind:?}: {n}");
    }
}

/// A keep-alive HTTP/1.1 upstream answering every request with `BODY_LEN` bytes.
const BODY_LEN: usize = 4000;

async fn upstream() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let mut seen = Vec::new();
                loop {
                    let Ok(n) = stream.read(&mut buf).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    seen.extend_from_slice(&buf[..n]);
                    while let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                        seen.drain(..end + 4);
                        let head = format!(
                            "HTTP/1.1 200 OK\r\nContent-Length: {BODY_LEN}\r\nConnection: keep-alive\r\n\r\n"
                        );
                        let mut answer = head.into_bytes();
                        answer.extend(std::iter::repeat_n(b'x', BODY_LEN));
                        if stream.write_all(&answer).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    addr
}

/// What a client saw of one exchange.
#[derive(Debug, PartialEq)]
enum Seen {
    /// The whole answer.
    Complete,
    /// Fewer bytes than the answer has, then the end of the stream.
    Cut(usize),
    /// A connection reset.
    Reset,
}

/// Sends one request on `stream` and reads its answer.
async fn exchange(stream: &mut tokio::net::TcpStream) -> Seen {
    if stream
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .is_err()
    {
        return Seen::Reset;
    }
    let mut got = Vec::new();
    let mut buf = vec![0u8; 8192];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) => return Seen::Cut(got.len()),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(err) if err.kind() == std::io::ErrorKind::ConnectionReset => return Seen::Reset,
            Err(err) => panic!("unexpected {err}"),
        }
        if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n")
            && got.len() >= end + 4 + BODY_LEN
        {
            return Seen::Complete;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fault_proxy_does_to_each_exchange_what_it_counts() {
    let upstream = upstream().await;
    let only = |fault: Fault| {
        let mut rates = FaultRates::none();
        match fault {
            Fault::Reset => rates.reset = 1.0,
            Fault::Stall => rates.stall = 1.0,
            Fault::Slow => rates.slow = 1.0,
            Fault::Truncate => rates.truncate = 1.0,
            Fault::Refuse => rates.refuse = 1.0,
            Fault::Pass => {}
        }
        FaultConfig {
            stall: Duration::from_millis(300),
            ..FaultConfig::new(rates, seed(1))
        }
    };

    // Pass-through: three requests on one kept-alive connection, three exchanges.
    let proxy = FaultProxy::start(&upstream, only(Fault::Pass)).await;
    let mut stream = tokio::net::TcpStream::connect(proxy.addr()).await.unwrap();
    for _ in 0..3 {
        assert_eq!(exchange(&mut stream).await, Seen::Complete);
    }
    let counts = proxy.counts();
    assert_eq!(
        (counts.connections, counts.exchanges, counts.passed),
        (1, 3, 3)
    );
    assert_eq!(counts.faults(), 0);

    // Each fault on every exchange, 20 times (fresh connections, since the faults end them).
    for fault in [
        Fault::Reset,
        Fault::Stall,
        Fault::Slow,
        Fault::Truncate,
        Fault::Refuse,
    ] {
        let proxy = FaultProxy::start(&upstream, only(fault)).await;
        let mut exchanges = tokio::task::JoinSet::new();
        for _ in 0..20 {
            let addr = proxy.addr();
            exchanges.spawn(async move {
                let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
                let started = Instant::now();
                (exchange(&mut stream).await, started.elapsed())
            });
        }
        while let Some(joined) = exchanges.join_next().await {
            let (seen, took) = joined.unwrap();
            match fault {
                Fault::Reset => assert!(
                    seen == Seen::Reset || matches!(seen, Seen::Cut(n) if n < BODY_LEN),
                    "{seen:?}"
                ),
                Fault::Stall => {
                    assert!(matches!(seen, Seen::Cut(0) | Seen::Reset), "{seen:?}");
                    assert!(took >= Duration::from_millis(290), "{took:?}");
                }
                Fault::Slow => {
                    assert_eq!(seen, Seen::Complete);
                    // 1 KiB in 64-byte pieces, 10 ms apart.
                    assert!(took >= Duration::from_millis(150), "{took:?}");
                }
                Fault::Truncate => {
                    assert!(matches!(seen, Seen::Cut(n) if n < BODY_LEN), "{seen:?}")
                }
                Fault::Refuse => assert!(matches!(seen, Seen::Cut(0) | Seen::Reset), "{seen:?}"),
                Fault::Pass => unreachable!(),
            }
        }
        let counts = proxy.counts();
        let counted = match fault {
            Fault::Reset => counts.resets,
            Fault::Stall => counts.stalls,
            Fault::Slow => counts.slow,
            Fault::Truncate => counts.truncated,
            Fault::Refuse => counts.refused,
            Fault::Pass => unreachable!(),
        };
        assert_eq!(counted, 20, "{fault:?}: {counts}");
        assert_eq!(counts.faults(), 20, "{fault:?}: {counts}");
    }

    // Faults start after the healthy exchanges, and rates can change on a running proxy.
    let proxy = FaultProxy::start(
        &upstream,
        FaultConfig {
            healthy_exchanges: 2,
            ..only(Fault::Truncate)
        },
    )
    .await;
    let mut stream = tokio::net::TcpStream::connect(proxy.addr()).await.unwrap();
    assert_eq!(exchange(&mut stream).await, Seen::Complete);
    assert_eq!(exchange(&mut stream).await, Seen::Complete);
    assert!(matches!(exchange(&mut stream).await, Seen::Cut(_)));
    proxy.set_rates(FaultRates::none());
    let mut stream = tokio::net::TcpStream::connect(proxy.addr()).await.unwrap();
    assert_eq!(exchange(&mut stream).await, Seen::Complete);
    assert_eq!(proxy.counts().truncated, 1);
}

// ---------------------------------------------------------------------------------------
// Sites to deploy, and what they must look like on the store.
// ---------------------------------------------------------------------------------------

/// Writes a site of `files` files into `root`: pages, scripts, styles, JSON, SVG and
/// incompressible images in directories of 50, each file's content unique.
fn generate_site(root: &Path, files: usize) {
    for n in 0..files {
        let dir = root.join(format!("section-{:03}", n / 50));
        std::fs::create_dir_all(&dir).unwrap();
        let (name, body): (String, Vec<u8>) = match n % 10 {
            0 | 1 => (
                format!("page-{n}.html"),
                format!(
                    "<!doctype html>\n<html><head><title>Page {n}</title>\
                     <link rel=\"stylesheet\" href=\"style-{n}.css\"></head>\n<body>\n{}</body></html>\n",
                    (0..(n % 7 + 3))
                        .map(|p| format!("<p>Paragraph {p} of page {n}: the quick brown fox jumps over the lazy dog.</p>\n"))
                        .collect::<String>()
                )
                .into_bytes(),
            ),
            2..=4 => (
                format!("module-{n}.js"),
                format!(
                    "// module {n}\nexport function compute{n}(input) {{\n{}  return input;\n}}\n",
                    (0..(n % 11 + 2))
                        .map(|s| format!("  const step{s} = input * {s} + {n}; // step {s}\n  input = step{s} % 9973;\n"))
                        .collect::<String>()
                )
                .into_bytes(),
            ),
            5 | 6 => (
                format!("style-{n}.css"),
                (0..(n % 9 + 2))
                    .map(|r| format!(".block-{n}-{r} {{\n  margin: {r}px;\n  color: #{:06x};\n}}\n", (n * 97 + r) % 0xffffff))
                    .collect::<String>()
                    .into_bytes(),
            ),
            7 => (
                format!("data-{n}.json"),
                format!(
                    "{{\"id\": {n}, \"items\": [{}]}}\n",
                    (0..(n % 13 + 1))
                        .map(|i| format!("{{\"name\": \"item {i}\", \"value\": {}}}", i * n))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
                .into_bytes(),
            ),
            8 => (
                format!("icon-{n}.svg"),
                format!(
                    "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 10 10\"><circle cx=\"5\" cy=\"5\" r=\"{}\"/></svg>\n",
                    n % 5 + 1
                )
                .into_bytes(),
            ),
            _ => {
                let mut rng = SeededRng::new(n as u64);
                let bytes = (0..(512 + n % 1500)).map(|_| rng.next_u64() as u8).collect();
                (format!("image-{n}.png"), bytes)
            }
        };
        std::fs::write(dir.join(name), body).unwrap();
    }
}

/// The build output of `site` with the sandbox's configuration (what a deploy stores):
/// key → bytes, and the manifest.
fn build_output(sandbox: &common::Sandbox, site: &Path) -> (BTreeMap<String, Vec<u8>>, Manifest) {
    let out = sandbox.path(&format!("out-{}", unique()));
    let output = sandbox.run(&[
        "build",
        site.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", common::stderr(&output));
    let mut tree = common::read_tree(&out);
    let manifest = tree
        .remove(edgeship::pipeline::manifest::MANIFEST_PATH)
        .expect("the build's manifest");
    assert!(
        tree.keys().all(|k| !k.starts_with(".edgeship/")),
        "{tree:?}"
    );
    (tree, Manifest::from_json(&manifest).unwrap())
}

fn unique() -> u64 {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

fn hash(bytes: &[u8]) -> String {
    blake3::hash(bytes).to_hex().to_string()
}

/// An object as read back from the store: its bytes' hash and size, and edgeship's hash
/// metadata.
#[derive(Debug)]
struct Stored {
    hash: String,
    size: u64,
    meta_hash: Option<String>,
}

/// A manifest entry without what depends on the site's history rather than on the build
/// (the dictionary offer and the deltas from earlier versions): what `edgeship build`
/// writes for the same files.
fn built_part(entry: &ManifestEntry) -> ManifestEntry {
    ManifestEntry {
        dictionary: None,
        deltas: Vec::new(),
        ..entry.clone()
    }
}

/// The stored manifest describes the build: the same paths, each with the build's hash,
/// sizes, headers and variants.
fn assert_manifest_describes(stored: &Manifest, built: &Manifest) {
    let project = |m: &Manifest| -> BTreeMap<String, ManifestEntry> {
        m.assets
            .iter()
            .map(|(path, entry)| (path.clone(), built_part(entry)))
            .collect()
    };
    assert_eq!(
        project(stored),
        project(built),
        "the stored manifest is the build's"
    );
}

/// Checks what a client read back against the build output: every built object stored
/// with the same bytes and the manifest's hash in its metadata; nothing else stored but
/// the deltas the stored manifest names (made from earlier versions, so not in a build);
/// the stored manifest equal to the build's, and no interrupted-deploy marker. Returns
/// the objects checked.
fn assert_store_matches(
    stored: &BTreeMap<String, Stored>,
    stored_manifest: &Manifest,
    own_keys: &BTreeSet<String>,
    expected: &BTreeMap<String, Vec<u8>>,
    manifest: &Manifest,
) -> usize {
    assert!(
        own_keys.contains(".edgeship/manifest")
            && !own_keys.contains(edgeship::deploy::IN_PROGRESS_KEY),
        "the manifest is stored and no deploy is marked in progress: {own_keys:?}"
    );
    assert_manifest_describes(stored_manifest, manifest);
    let stored_keys: BTreeSet<&String> = stored.keys().collect();
    let expected_keys: BTreeSet<&String> = expected.keys().collect();
    assert_eq!(
        expected_keys.difference(&stored_keys).collect::<Vec<_>>(),
        Vec::<&&String>::new(),
        "built but not stored (lost)"
    );
    for (key, bytes) in expected {
        let object = &stored[key];
        assert_eq!(object.hash, hash(bytes), "{key}: the stored bytes differ");
        let path = [".br", ".gz", ".zst"]
            .iter()
            .find_map(|suffix| {
                key.strip_suffix(suffix)
                    .filter(|path| manifest.assets.contains_key(*path))
            })
            .unwrap_or(key);
        assert_eq!(
            object.meta_hash.as_deref(),
            Some(manifest.assets[path].hash.as_str()),
            "{key}: hash metadata"
        );
    }
    let deltas: BTreeMap<String, (u64, &str)> = stored_manifest
        .assets
        .iter()
        .flat_map(|(path, entry)| {
            entry
                .deltas
                .iter()
                .map(move |d| (d.key(path), (d.size, entry.hash.as_str())))
        })
        .collect();
    for (key, (size, entry_hash)) in &deltas {
        let object = stored
            .get(key)
            .unwrap_or_else(|| panic!("the manifest names the delta {key}, not stored"));
        assert_eq!(object.size, *size, "{key}: size");
        assert_eq!(object.meta_hash.as_deref(), Some(*entry_hash), "{key}");
    }
    let unknown: Vec<&&String> = stored_keys
        .difference(&expected_keys)
        .filter(|key| !deltas.contains_key(key.as_str()))
        .collect();
    assert!(
        unknown.is_empty(),
        "stored but neither built nor a delta: {unknown:?}"
    );
    expected.len() + deltas.len()
}

/// Every object of `bucket`, read straight from moto with the SDK (32 at a time): the
/// objects outside `.edgeship/`, the stored manifest and edgeship's own keys.
async fn read_bucket(
    bucket: &str,
) -> (BTreeMap<String, Stored>, Option<Manifest>, BTreeSet<String>) {
    let s3 = moto::s3_client(&moto::moto_endpoint());
    let keys: Vec<String> = common::s3::objects(&s3, bucket).await.into_keys().collect();
    let (own, keys): (Vec<String>, Vec<String>) =
        keys.into_iter().partition(|k| k.starts_with(".edgeship/"));
    let manifest = if own.iter().any(|k| k == ".edgeship/manifest") {
        let (bytes, _) = get_object(&s3, bucket, ".edgeship/manifest").await;
        Some(Manifest::from_json(&bytes).expect("the stored manifest parses"))
    } else {
        None
    };
    let limit = Arc::new(tokio::sync::Semaphore::new(32));
    let mut tasks = tokio::task::JoinSet::new();
    for key in keys {
        let (s3, bucket, limit) = (s3.clone(), bucket.to_string(), Arc::clone(&limit));
        tasks.spawn(async move {
            let _permit = limit.acquire_owned().await.unwrap();
            let (bytes, meta_hash) = get_object(&s3, &bucket, &key).await;
            (
                key,
                Stored {
                    hash: hash(&bytes),
                    size: bytes.len() as u64,
                    meta_hash,
                },
            )
        });
    }
    let mut stored = BTreeMap::new();
    while let Some(joined) = tasks.join_next().await {
        let (key, object) = joined.unwrap();
        stored.insert(key, object);
    }
    (stored, manifest, own.into_iter().collect())
}

async fn get_object(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> (Vec<u8>, Option<String>) {
    let object = s3
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {key}: {}", aws_sdk_s3::error::DisplayErrorContext(e)));
    let meta_hash = object
        .metadata()
        .and_then(|m| m.get("edgeship-hash"))
        .cloned();
    let bytes = object.body.collect().await.unwrap().into_bytes().to_vec();
    (bytes, meta_hash)
}

/// Reads the bucket back and checks it against `site`'s build output; returns the
/// number of objects compared.
async fn verify_bucket(sandbox: &common::Sandbox, bucket: &str, site: &Path) -> usize {
    let (expected, manifest) = build_output(sandbox, site);
    let (stored, stored_manifest, own) = read_bucket(bucket).await;
    let stored_manifest = stored_manifest.expect("a manifest is stored");
    assert_store_matches(&stored, &stored_manifest, &own, &expected, &manifest)
}

// ---------------------------------------------------------------------------------------
// S3 (and CloudFront) on moto.
// ---------------------------------------------------------------------------------------

/// A sandbox whose site `default` is `bucket` on the S3 (and CloudFront) at `endpoint`.
fn aws_sandbox(endpoint: &str, bucket: &str, extra: &str) -> common::Sandbox {
    let sandbox = common::Sandbox::new();
    write_aws_config(&sandbox, endpoint, bucket, extra);
    sandbox
}

fn write_aws_config(sandbox: &common::Sandbox, endpoint: &str, bucket: &str, extra: &str) {
    std::fs::write(
        sandbox.path("edgeship.toml"),
        format!(
            "[sites.default]\nprovider = \"aws\"\n\
             [sites.default.aws]\nbucket = \"{bucket}\"\nregion = \"us-east-1\"\n\
             endpoint = \"{endpoint}\"\ncloudfront_endpoint = \"{endpoint}\"\nforce_path_style = true\n\
             {extra}\n\
             [[sites.default.rules]]\npattern = \"/about/**\"\nheaders = {{ \"X-Robots-Tag\" = \"noindex\" }}\n"
        ),
    )
    .unwrap();
}

fn aws_deploy(sandbox: &common::Sandbox, site: &Path) -> std::process::Command {
    let mut cmd = sandbox.command();
    cmd.args(["deploy", site.to_str().unwrap(), "--json"]);
    common::s3::with_credentials(
        &mut cmd,
        sandbox.dir.path(),
        moto::ACCESS_KEY,
        moto::SECRET_KEY,
    );
    cmd
}

/// Deploys `site` to a fresh bucket through a proxy injecting `rates` of faults;
/// asserts it completes, then reads every object back from moto directly. Returns the
/// fault counts, the objects compared and the deploy's duration.
async fn deploy_to_s3_through_faults(
    site: &Path,
    rates: FaultRates,
    seed: u64,
) -> (FaultCounts, usize, Duration) {
    let endpoint = moto::moto_endpoint();
    let bucket = moto::unique_bucket("faults");
    moto::create_bucket(&endpoint, &bucket).await;
    let proxy = FaultProxy::start(&endpoint, FaultConfig::new(rates, seed)).await;
    let sandbox = aws_sandbox(&proxy.url_for(&endpoint), &bucket, "");
    let started = Instant::now();
    let output = run(aws_deploy(&sandbox, site)).await;
    let took = started.elapsed();
    let counts = proxy.counts();
    eprintln!("seed {seed}: {counts}; deploy took {took:?}");
    assert_eq!(
        output.status.code(),
        Some(0),
        "seed {seed}, {counts}:\n{}",
        common::stderr(&output)
    );
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert!(
        report["failures"].as_array().unwrap().is_empty(),
        "{report}"
    );
    assert!(
        report["retries"].as_u64().unwrap() > 0,
        "faults were retried: {report}"
    );
    eprintln!(
        "uploaded {} objects, {} retries, final concurrency {}, build {} ms, deploy {} ms",
        report["uploaded"],
        report["retries"],
        report["final_concurrency"],
        report["build"]["duration_ms"],
        report["duration_ms"]
    );
    let objects = verify_bucket(&sandbox, &bucket, site).await;
    (counts, objects, took)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fixtures_deploy_and_redeploy_to_s3_through_30_percent_network_faults_intact() {
    let endpoint = moto::moto_endpoint();
    let bucket = moto::unique_bucket("faults-fixtures");
    moto::create_bucket(&endpoint, &bucket).await;
    let distribution = moto::create_distribution(&endpoint, &bucket).await;
    let seed = seed(30);
    let proxy = FaultProxy::start(&endpoint, FaultConfig::new(FaultRates::mixed(0.3), seed)).await;
    let sandbox = aws_sandbox(
        &proxy.url_for(&endpoint),
        &bucket,
        &format!("distribution_id = \"{distribution}\""),
    );
    let site = sandbox.path("site");
    common::copy_tree(&common::fixture("site"), &site);

    let first = run(aws_deploy(&sandbox, &site)).await;
    assert_eq!(first.status.code(), Some(0), "{}", common::stderr(&first));
    let objects = verify_bucket(&sandbox, &bucket, &site).await;
    assert!(objects > 40, "{objects}");

    // Change a stylesheet and two pages; the redeploy meets faults too, its purge included.
    common::append(
        &site.join("assets/print.css"),
        "\n.changed { color: red; }\n",
    );
    for page in ["about/index.html", "blog/index.html"] {
        common::append(
            &site.join(page),
            "\n<p>Updated for the second deploy.</p>\n",
        );
    }
    let second = run(aws_deploy(&sandbox, &site)).await;
    assert_eq!(second.status.code(), Some(0), "{}", common::stderr(&second));
    let report: serde_json::Value = serde_json::from_slice(&second.stdout).unwrap();
    assert!(
        report["failures"].as_array().unwrap().is_empty(),
        "{report}"
    );
    verify_bucket(&sandbox, &bucket, &site).await;

    // The invalidation names exactly the changed paths. A retried call may be recorded
    // twice by moto (it ignores the caller reference, which CloudFront deduplicates on):
    // every one recorded must then be the same request.
    let invalidations = moto::invalidations(&endpoint, &distribution).await;
    assert!(!invalidations.is_empty());
    let expected: BTreeSet<&str> = [
        "/about/",
        "/about/index.html",
        "/assets/print.css",
        "/blog/",
        "/blog/index.html",
    ]
    .into();
    for (reference, paths) in &invalidations {
        assert_eq!(
            reference, &invalidations[0].0,
            "one caller reference: {invalidations:?}"
        );
        let paths: BTreeSet<&str> = paths.iter().map(String::as_str).collect();
        assert_eq!(paths, expected);
    }

    let counts = proxy.counts();
    eprintln!("seed {seed}: {counts}");
    assert!(counts.failures() >= 10, "faults really happened: {counts}");
    for (kind, n) in [
        ("resets", counts.resets),
        ("stalls", counts.stalls),
        ("slow", counts.slow),
        ("truncated", counts.truncated),
        ("refused", counts.refused),
    ] {
        assert!(n > 0, "no {kind}: {counts}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_generated_500_file_site_deploys_to_s3_through_30_percent_faults_intact() {
    let dir = tempfile::tempdir().unwrap();
    generate_site(dir.path(), 500);
    let (counts, objects, took) =
        deploy_to_s3_through_faults(dir.path(), FaultRates::mixed(0.3), seed(500)).await;
    eprintln!("500 files: {objects} objects verified, deploy {took:?}");
    assert!(objects >= 500, "{objects}");
    assert!(counts.failures() >= 50, "{counts}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "long suite: scripts/test --long"]
async fn a_generated_5000_file_site_deploys_to_s3_through_30_percent_faults_intact() {
    let dir = tempfile::tempdir().unwrap();
    generate_site(dir.path(), 5000);
    let (counts, objects, took) =
        deploy_to_s3_through_faults(dir.path(), FaultRates::mixed(0.3), seed(5000)).await;
    eprintln!("5,000 files: {objects} objects verified, deploy {took:?}");
    assert!(objects >= 5000, "{objects}");
    assert!(counts.failures() >= 500, "{counts}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deploy_through_100_percent_faults_fails_fast_with_one_error_and_the_manifest_stays_true()
{
    let endpoint = moto::moto_endpoint();
    let bucket = moto::unique_bucket("faults-all");
    moto::create_bucket(&endpoint, &bucket).await;
    // Version 1 is deployed directly.
    let sandbox = aws_sandbox(&endpoint, &bucket, "");
    let site = sandbox.path("site");
    common::copy_tree(&common::fixture("site"), &site);
    let first = run(aws_deploy(&sandbox, &site)).await;
    assert_eq!(first.status.code(), Some(0), "{}", common::stderr(&first));
    let (v1, v1_manifest) = build_output(&sandbox, &site);

    // Version 2, through a network that breaks every exchange.
    common::append(
        &site.join("assets/print.css"),
        "\n.changed { color: red; }\n",
    );
    common::append(&site.join("index.html"), "\n<p>Version 2.</p>\n");
    let seed = seed(100);
    let proxy =
        FaultProxy::start(&endpoint, FaultConfig::new(FaultRates::failing(1.0), seed)).await;
    write_aws_config(&sandbox, &proxy.url_for(&endpoint), &bucket, "");
    let started = Instant::now();
    let output = run(aws_deploy(&sandbox, &site)).await;
    let took = started.elapsed();
    let counts = proxy.counts();
    eprintln!("seed {seed}: {counts}; failed after {took:?}");
    assert_eq!(output.status.code(), Some(1), "{}", common::stderr(&output));
    let errors = errors(&output);
    eprintln!("{}", errors.join("\n"));
    assert_eq!(errors.len(), 1, "one error:\n{}", common::stderr(&output));
    assert_clear(&errors[0], &[bucket.as_str(), ".edgeship/manifest"]);
    assert!(took < Duration::from_secs(30), "fails fast: {took:?}");
    assert_eq!(counts.passed, 0, "{counts}");
    assert!(counts.failures() >= 5, "{counts}");

    // What is stored is still version 1, as its manifest says.
    let (stored, stored_manifest, own) = read_bucket(&bucket).await;
    assert_store_matches(
        &stored,
        &stored_manifest.expect("version 1's manifest"),
        &own,
        &v1,
        &v1_manifest,
    );
}

// ---------------------------------------------------------------------------------------
// Azure Blob on Azurite, Front Door purges on the fake ARM API.
// ---------------------------------------------------------------------------------------

/// Every blob of `container`, read straight from Azurite with object_store (32 at a
/// time), split as [`read_bucket`] splits a bucket.
async fn read_container(
    endpoint: &str,
    container: &str,
) -> (BTreeMap<String, Stored>, Option<Manifest>, BTreeSet<String>) {
    use futures_util::StreamExt;
    use object_store::azure::MicrosoftAzureBuilder;
    use object_store::{ObjectStore, ObjectStoreExt};

    let store: Arc<dyn ObjectStore> = Arc::new(
        MicrosoftAzureBuilder::new()
            .with_account("devstoreaccount1")
            .with_access_key(edgeship_providers::azure::AZURITE_KEY)
            .with_container_name(container)
            .with_endpoint(endpoint.to_string())
            .with_allow_http(true)
            .build()
            .unwrap(),
    );
    let mut paths = Vec::new();
    let mut listing = store.list(None);
    while let Some(meta) = listing.next().await {
        paths.push(meta.unwrap().location);
    }
    let limit = Arc::new(tokio::sync::Semaphore::new(32));
    let mut tasks = tokio::task::JoinSet::new();
    for path in paths {
        let (store, limit) = (Arc::clone(&store), Arc::clone(&limit));
        tasks.spawn(async move {
            let _permit = limit.acquire_owned().await.unwrap();
            let got = store
                .get(&path)
                .await
                .unwrap_or_else(|e| panic!("GET {path}: {e}"));
            let meta_hash = got.attributes.iter().find_map(|(attribute, value)| {
                // Azure metadata names are identifiers: `-` is stored as `_`.
                matches!(attribute, object_store::Attribute::Metadata(name) if name == "edgeship_hash")
                    .then(|| value.to_string())
            });
            let bytes = got.bytes().await.unwrap();
            (path.to_string(), bytes.to_vec(), meta_hash)
        });
    }
    let (mut stored, mut manifest, mut own) = (BTreeMap::new(), None, BTreeSet::new());
    while let Some(joined) = tasks.join_next().await {
        let (key, bytes, meta_hash) = joined.unwrap();
        if key.starts_with(".edgeship/") {
            if key == ".edgeship/manifest" {
                manifest = Some(Manifest::from_json(&bytes).expect("the stored manifest parses"));
            }
            own.insert(key);
        } else {
            stored.insert(
                key,
                Stored {
                    hash: hash(&bytes),
                    size: bytes.len() as u64,
                    meta_hash,
                },
            );
        }
    }
    (stored, manifest, own)
}

/// A sandbox whose site `default` is `container` at the Blob `endpoint`, purged through
/// Front Door at `management_url`.
fn azure_sandbox(endpoint: &str, container: &str, management_url: &str) -> common::Sandbox {
    use edgeship_providers::azure::testing;
    let sandbox = common::Sandbox::new();
    std::fs::write(
        sandbox.path("edgeship.toml"),
        format!(
            "[sites.default]\nprovider = \"azure\"\n\
             [sites.default.azure]\naccount = \"devstoreaccount1\"\ncontainer = \"{container}\"\nendpoint = \"{endpoint}\"\n\
             [sites.default.azure.front_door]\nsubscription_id = \"{}\"\nresource_group = \"{}\"\nprofile = \"{}\"\nendpoint = \"{}\"\n\
             domains = [\"www.example.com\"]\nmanagement_url = \"{management_url}\"\n[purge]\npoll_interval_ms = 50\n",
            testing::SUBSCRIPTION,
            testing::RESOURCE_GROUP,
            testing::PROFILE,
            testing::ENDPOINT,
        ),
    )
    .unwrap();
    sandbox
}

fn azure_deploy(sandbox: &common::Sandbox, site: &Path, authority: &str) -> std::process::Command {
    use edgeship_providers::azure::testing;
    let mut cmd = sandbox.command();
    cmd.args(["deploy", site.to_str().unwrap(), "--json"])
        .env("AZURE_STORAGE_KEY", edgeship_providers::azure::AZURITE_KEY)
        .env("AZURE_TENANT_ID", testing::TENANT)
        .env("AZURE_CLIENT_ID", testing::CLIENT_ID)
        .env("AZURE_CLIENT_SECRET", testing::CLIENT_SECRET)
        .env("AZURE_AUTHORITY_HOST", authority);
    for name in [
        "AZURE_STORAGE_CONNECTION_STRING",
        "AZURE_STORAGE_SAS_TOKEN",
        "IDENTITY_ENDPOINT",
    ] {
        cmd.env_remove(name);
    }
    cmd
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fixtures_deploy_to_azurite_and_purge_front_door_through_30_percent_faults_intact() {
    use edgeship_providers::azure::testing::{self, FakeAzure};
    let fake = FakeAzure::start().await;
    let endpoint = testing::azurite_endpoint();
    let container = testing::unique_container("faults");
    testing::create_container(&endpoint, &container).await;
    let seed = seed(31);
    let blob_proxy =
        FaultProxy::start(&endpoint, FaultConfig::new(FaultRates::mixed(0.3), seed)).await;
    let api_proxy = FaultProxy::start(
        fake.base(),
        FaultConfig::new(FaultRates::failing(0.3), seed + 2),
    )
    .await;
    let api = api_proxy.url_for(fake.base());
    let sandbox = azure_sandbox(&blob_proxy.url_for(&endpoint), &container, &api);
    let site = sandbox.path("site");
    common::copy_tree(&common::fixture("site"), &site);

    let verify = || async {
        let (expected, manifest) = build_output(&sandbox, &site);
        let (stored, stored_manifest, own) = read_container(&endpoint, &container).await;
        assert_store_matches(
            &stored,
            &stored_manifest.expect("a manifest is stored"),
            &own,
            &expected,
            &manifest,
        )
    };
    let first = run(azure_deploy(&sandbox, &site, &api)).await;
    assert_eq!(first.status.code(), Some(0), "{}", common::stderr(&first));
    assert!(verify().await > 40);
    assert!(fake.purges().is_empty(), "a first deploy purges nothing");

    common::append(
        &site.join("blog/index.html"),
        "\n<p>Updated for the second deploy.</p>\n",
    );
    let second = run(azure_deploy(&sandbox, &site, &api)).await;
    assert_eq!(second.status.code(), Some(0), "{}", common::stderr(&second));
    let report: serde_json::Value = serde_json::from_slice(&second.stdout).unwrap();
    assert!(
        report["failures"].as_array().unwrap().is_empty(),
        "{report}"
    );
    verify().await;
    // A purge whose answer was lost is sent again: every purge Front Door accepted is
    // this one.
    let purges = fake.purges();
    assert!(!purges.is_empty());
    for purge in &purges {
        assert_eq!(purge.content_paths, ["/blog/", "/blog/index.html"]);
    }

    let (blob, arm) = (blob_proxy.counts(), api_proxy.counts());
    eprintln!("seed {seed}: blob {blob}; ARM and Entra ID {arm}");
    assert!(blob.failures() >= 10, "{blob}");
    assert!(arm.failures() >= 1, "{arm}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deploy_to_azurite_through_100_percent_faults_fails_fast_and_stores_no_manifest() {
    use edgeship_providers::azure::testing::{self, FakeAzure};
    let fake = FakeAzure::start().await;
    let endpoint = testing::azurite_endpoint();
    let container = testing::unique_container("faults-all");
    testing::create_container(&endpoint, &container).await;
    let seed = seed(101);
    let proxy =
        FaultProxy::start(&endpoint, FaultConfig::new(FaultRates::failing(1.0), seed)).await;
    let sandbox = azure_sandbox(&proxy.url_for(&endpoint), &container, fake.base());
    let started = Instant::now();
    let output = run(azure_deploy(
        &sandbox,
        &common::fixture("site"),
        fake.base(),
    ))
    .await;
    let took = started.elapsed();
    let counts = proxy.counts();
    eprintln!("seed {seed}: {counts}; failed after {took:?}");
    assert_eq!(output.status.code(), Some(1), "{}", common::stderr(&output));
    let errors = errors(&output);
    eprintln!("{}", errors.join("\n"));
    assert_eq!(errors.len(), 1, "one error:\n{}", common::stderr(&output));
    assert_clear(&errors[0], &[container.as_str()]);
    assert!(took < Duration::from_secs(30), "fails fast: {took:?}");
    assert_eq!(counts.passed, 0, "{counts}");
    assert!(counts.failures() >= 5, "{counts}");
    // Whatever reached Azurite, no manifest names anything.
    let (_, manifest, _) = read_container(&endpoint, &container).await;
    assert_eq!(manifest, None);
}

// ---------------------------------------------------------------------------------------
// Cloudflare: R2 on moto, purges on the fake Cloudflare API.
// ---------------------------------------------------------------------------------------

fn write_cloudflare_config(sandbox: &common::Sandbox, endpoint: &str, bucket: &str, api: &str) {
    use edgeship_providers::cloudflare::testing;
    std::fs::write(
        sandbox.path("edgeship.toml"),
        format!(
            "[sites.default]\nprovider = \"cloudflare\"\n\
             [sites.default.cloudflare]\naccount_id = \"{}\"\nzone_id = \"{}\"\nbucket = \"{bucket}\"\n\
             hosts = [\"www.example.com\", \"example.com\"]\nendpoint = \"{endpoint}\"\napi_base = \"{api}\"\n",
            testing::ACCOUNT,
            testing::ZONE,
        ),
    )
    .unwrap();
}

fn cloudflare_command(sandbox: &common::Sandbox, args: &[&str]) -> std::process::Command {
    let mut cmd = sandbox.command();
    cmd.args(args).env(
        "CLOUDFLARE_API_TOKEN",
        edgeship_providers::cloudflare::testing::TOKEN,
    );
    common::s3::with_credentials(
        &mut cmd,
        sandbox.dir.path(),
        moto::ACCESS_KEY,
        moto::SECRET_KEY,
    );
    cmd
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purge_through_30_percent_faults_reaches_the_cloudflare_api_for_every_url() {
    use edgeship_providers::cloudflare::testing::FakeCloudflare;
    let fake = FakeCloudflare::start().await;
    let endpoint = moto::moto_endpoint();
    let bucket = moto::unique_bucket("faults-cf");
    moto::create_bucket(&endpoint, &bucket).await;
    // 250 directories of two scripts; one script of each is purged, so no directory is
    // worth a prefix: 500 URLs (two hosts) in calls of at most 100.
    let sandbox = common::Sandbox::new();
    let site = sandbox.path("site");
    for d in 0..250 {
        let dir = site.join(format!("d{d:03}"));
        std::fs::create_dir_all(&dir).unwrap();
        for f in 0..2 {
            std::fs::write(
                dir.join(format!("f{f}.js")),
                format!("export const v = {d}{f};\n"),
            )
            .unwrap();
        }
    }
    write_cloudflare_config(&sandbox, &endpoint, &bucket, fake.base());
    let deploy = run(cloudflare_command(
        &sandbox,
        &["deploy", site.to_str().unwrap()],
    ))
    .await;
    assert_eq!(deploy.status.code(), Some(0), "{}", common::stderr(&deploy));
    assert!(fake.calls().is_empty());

    let seed = seed(32);
    let s3_proxy =
        FaultProxy::start(&endpoint, FaultConfig::new(FaultRates::mixed(0.3), seed)).await;
    let api_proxy = FaultProxy::start(
        fake.base(),
        FaultConfig::new(FaultRates::failing(0.3), seed),
    )
    .await;
    write_cloudflare_config(
        &sandbox,
        &s3_proxy.url_for(&endpoint),
        &bucket,
        &api_proxy.url_for(fake.base()),
    );
    let output = run(cloudflare_command(
        &sandbox,
        &["purge", "/d*/f0.js", "--json"],
    ))
    .await;
    let (s3, api) = (s3_proxy.counts(), api_proxy.counts());
    eprintln!("seed {seed}: R2 {s3}; Cloudflare API {api}");
    assert_eq!(output.status.code(), Some(0), "{}", common::stderr(&output));
    let job: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(job["status"], "done", "{job}");

    let mut purged = BTreeSet::new();
    for body in fake.purges() {
        for url in body["files"]
            .as_array()
            .unwrap_or_else(|| panic!("URLs only: {body}"))
        {
            purged.insert(url.as_str().unwrap().to_string());
        }
    }
    let expected: BTreeSet<String> = (0..250)
        .flat_map(|d| {
            ["www.example.com", "example.com"].map(|host| format!("https://{host}/d{d:03}/f0.js"))
        })
        .collect();
    assert_eq!(purged, expected);
    assert!(api.failures() >= 1, "{api}");
}

/// Every page, script and stylesheet of the fixtures site under `site`, changed.
fn change_fixture_files(site: &Path) -> usize {
    let mut changed = 0;
    for entry in walkdir::WalkDir::new(site) {
        let entry = entry.unwrap();
        let path = entry.path();
        let comment = match path.extension().and_then(|e| e.to_str()) {
            Some("html") => "\n<!-- version 2 -->\n",
            Some("css") => "\n/* version 2 */ .v2 { color: red; }\n",
            Some("js") => "\n;globalThis.version = 2;\n",
            _ => continue,
        };
        common::append(path, comment);
        changed += 1;
    }
    changed
}

/// Connections that hang for good (the proxy holds every request for a minute): the
/// client's read timeout, not the server, ends each attempt, so the deploy still fails
/// within its retries' time instead of hanging.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deploy_whose_requests_hang_fails_within_its_timeouts() {
    let endpoint = moto::moto_endpoint();
    let bucket = moto::unique_bucket("faults-hang");
    moto::create_bucket(&endpoint, &bucket).await;
    let seed = seed(103);
    let proxy = FaultProxy::start(
        &endpoint,
        FaultConfig {
            stall: Duration::from_secs(60),
            ..FaultConfig::new(
                FaultRates {
                    stall: 1.0,
                    ..FaultRates::none()
                },
                seed,
            )
        },
    )
    .await;
    let sandbox = aws_sandbox(&proxy.url_for(&endpoint), &bucket, "read_timeout_ms = 1000");
    let started = Instant::now();
    let output = run(aws_deploy(&sandbox, &common::fixture("site"))).await;
    let took = started.elapsed();
    let counts = proxy.counts();
    eprintln!("seed {seed}: {counts}; failed after {took:?}");
    assert_eq!(output.status.code(), Some(1), "{}", common::stderr(&output));
    let errors = errors(&output);
    eprintln!("{}", errors.join("\n"));
    assert_eq!(errors.len(), 1, "{}", common::stderr(&output));
    assert_clear(&errors[0], &[bucket.as_str(), "timed out"]);
    assert_eq!(counts.stalls, counts.exchanges, "{counts}");
    assert!(counts.stalls >= 5, "{counts}");
    assert!(
        took < Duration::from_secs(20),
        "bounded by the timeouts: {took:?}"
    );
    let (stored, manifest, _) = read_bucket(&bucket).await;
    assert!(stored.is_empty() && manifest.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_network_lost_mid_deploy_stops_it_and_a_rollback_deploy_restores_every_object() {
    let endpoint = moto::moto_endpoint();
    let bucket = moto::unique_bucket("faults-midway");
    moto::create_bucket(&endpoint, &bucket).await;
    let sandbox = aws_sandbox(&endpoint, &bucket, "");
    let site = sandbox.path("site");
    common::copy_tree(&common::fixture("site"), &site);
    let first = run(aws_deploy(&sandbox, &site)).await;
    assert_eq!(first.status.code(), Some(0), "{}", common::stderr(&first));
    let (v1, v1_manifest) = build_output(&sandbox, &site);

    // Version 2 loses the network after its first 20 exchanges: some of its objects are
    // stored over version 1's, the rest never arrive.
    assert!(change_fixture_files(&site) >= 10);
    let seed = seed(102);
    let proxy = FaultProxy::start(
        &endpoint,
        FaultConfig {
            healthy_exchanges: 20,
            ..FaultConfig::new(FaultRates::failing(1.0), seed)
        },
    )
    .await;
    write_aws_config(&sandbox, &proxy.url_for(&endpoint), &bucket, "");
    let started = Instant::now();
    let output = run(aws_deploy(&sandbox, &site)).await;
    let took = started.elapsed();
    let counts = proxy.counts();
    eprintln!("seed {seed}: {counts}; failed after {took:?}");
    assert_eq!(output.status.code(), Some(1), "{}", common::stderr(&output));
    let errors = errors(&output);
    eprintln!("{}", errors.join("\n"));
    assert_eq!(errors.len(), 1, "{}", common::stderr(&output));
    assert_clear(&errors[0], &[bucket.as_str(), "calls failed"]);
    assert!(took < Duration::from_secs(60), "fails fast: {took:?}");
    assert_eq!(counts.passed, 20, "{counts}");
    assert!(counts.failures() >= 10, "{counts}");
    let (stored, manifest, own) = read_bucket(&bucket).await;
    assert!(
        own.contains(".edgeship/deploy-in-progress"),
        "the interrupted deploy is marked: {own:?}"
    );
    let manifest = manifest.expect("version 1's manifest is still there");
    assert_manifest_describes(&manifest, &v1_manifest);
    let overwritten = v1
        .iter()
        .filter(|(key, bytes)| stored[*key].hash != hash(bytes))
        .count();
    assert!(overwritten > 0, "version 2 reached the store in part");
    // The delta objects version 2 stored before the network went (version 2 against
    // version 1 as dictionary), named by no manifest: an edge rule that picks
    // `<path>.<sha-256>.dcb` by `Available-Dictionary` alone would send version 2 to a
    // browser holding version 1, so the rollback must delete them.
    let left: Vec<&String> = stored
        .keys()
        .filter(|key| !v1.contains_key(*key) && !is_named_delta(&manifest, key))
        .collect();
    eprintln!("deltas left by the interrupted deploy: {left:?}");
    for key in &left {
        assert!(is_delta_of(key, &v1_manifest), "{key} is not a delta");
    }
    let left = left.len() as u64;

    // Rolling back to version 1 must put version 1's bytes back everywhere (and clear
    // the marker), although its manifest says they are stored already.
    std::fs::remove_dir_all(&site).unwrap();
    common::copy_tree(&common::fixture("site"), &site);
    write_aws_config(&sandbox, &endpoint, &bucket, "");
    let rollback = run(aws_deploy(&sandbox, &site)).await;
    assert_eq!(
        rollback.status.code(),
        Some(0),
        "{}",
        common::stderr(&rollback)
    );
    let report: serde_json::Value = serde_json::from_slice(&rollback.stdout).unwrap();
    assert_eq!(
        report["uploaded"].as_u64(),
        Some(overwritten as u64),
        "exactly the overwritten objects are uploaded again: {report}"
    );
    // Every delta key the interrupted deploy's marker listed is deleted, those it never
    // got to store included.
    assert!(
        report["orphan_deltas_removed"].as_u64() >= Some(left),
        "the deltas the interrupted deploy left are deleted: {report}"
    );
    let (stored, stored_manifest, own) = read_bucket(&bucket).await;
    let stored_manifest = stored_manifest.expect("a manifest");
    assert_store_matches(&stored, &stored_manifest, &own, &v1, &v1_manifest);
}

/// Whether `key` is a delta object (`<path>.<sha-256 hex>.dcb|dcz`) of a path of
/// `manifest`.
fn is_delta_of(key: &str, manifest: &Manifest) -> bool {
    key.rsplit_once('.')
        .filter(|(_, coding)| ["dcb", "dcz"].contains(coding))
        .and_then(|(rest, _)| rest.rsplit_once('.'))
        .is_some_and(|(path, sha)| sha.len() == 64 && manifest.assets.contains_key(path))
}

/// Whether `key` is a delta the manifest names.
fn is_named_delta(manifest: &Manifest, key: &str) -> bool {
    manifest
        .assets
        .iter()
        .any(|(path, entry)| entry.deltas.iter().any(|d| d.key(path) == key))
}
