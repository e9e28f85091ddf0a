//! A bounded soak (`scripts/test --long`): `edgeship serve` with Redis under 10 minutes
//! of mixed traffic on loopback — origin GETs in every encoding, purges, analytics,
//! readiness and small deploys — sampling the process's RSS and open file descriptors
//! and the Redis keys under the test's prefix every 10 seconds. The samples go to a
//! file (printed at the end).
//!
//! Flat means: the largest sample of the last third is at most the largest of the first
//! third × 1.2 plus a slack (RSS 16 MiB, 16 descriptors, 50 keys). Job records are
//! counted apart: each deploy and purge is kept 7 days by design, so they grow with the
//! jobs run (and must not grow beyond them). No request may fail.
//!
//! `EDGESHIP_SOAK_SECS` and `EDGESHIP_SOAK_SAMPLE_SECS` shorten it for a try;
//! `EDGESHIP_SOAK_OUT` names the samples file.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::common::redis::{SHARED_REDIS, delete_prefix, raw_connection, unique_prefix};
use crate::common::{Sandbox, copy_tree, fixture, stderr, tar_gz_of};
use crate::serve::Serve;

fn env_secs(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One sample of the process and of Redis.
#[derive(Debug, Clone, Copy)]
struct Sample {
    at_secs: u64,
    rss_kib: u64,
    fds: u64,
    keys: u64,
    job_keys: u64,
    requests: u64,
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

fn fds(pid: u32) -> u64 {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count() as u64
}

/// Keys under `prefix` (job records apart).
fn redis_keys(prefix: &str) -> (u64, u64) {
    use redis::Commands;
    let mut conn = raw_connection(SHARED_REDIS);
    let keys: Vec<String> = conn
        .scan_match::<_, String>(format!("{prefix}:*"))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let jobs = keys.iter().filter(|k| k.contains(":job:")).count() as u64;
    (keys.len() as u64 - jobs, jobs)
}

/// Requests made and the ones that did not get the expected answer.
#[derive(Default)]
struct Counts {
    requests: AtomicU64,
    failures: std::sync::Mutex<Vec<String>>,
    purges: AtomicU64,
    deploys: AtomicU64,
}

impl Counts {
    fn check(&self, what: &str, status: u16, expected: u16, body: &[u8]) -> bool {
        self.requests.fetch_add(1, Ordering::Relaxed);
        if status != expected {
            self.failures.lock().unwrap().push(format!(
                "{what}: {status} {}",
                String::from_utf8_lossy(body)
            ));
            return false;
        }
        true
    }
}

fn flat(name: &str, samples: &[Sample], value: impl Fn(&Sample) -> u64, slack: u64) {
    let third = samples.len() / 3;
    let first = samples[..third].iter().map(&value).max().unwrap();
    let last = samples[samples.len() - third..]
        .iter()
        .map(&value)
        .max()
        .unwrap();
    let bound = first + first / 5 + slack;
    assert!(
        last <= bound,
        "{name} grew: last third up to {last}, first third up to {first} (bound {bound})"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "long suite: scripts/test --long"]
async fn ten_minutes_of_mixed_traffic_keep_rss_fds_and_redis_keys_flat() {
    let duration = Duration::from_secs(env_secs("EDGESHIP_SOAK_SECS", 600));
    let every = Duration::from_secs(env_secs("EDGESHIP_SOAK_SAMPLE_SECS", 10));
    let prefix = unique_prefix("soak");
    let sandbox = Sandbox::new();
    std::fs::write(
        sandbox.path("edgeship.toml"),
        format!(
            "[cache]\nredis_url = \"{SHARED_REDIS}\"\nprefix = \"{prefix}\"\n\
             [server]\nkey_rate_per_sec = 10000\nkey_burst = 10000\nip_rate_per_sec = 10000\nip_burst = 10000\n\
             [sites.default]\nprovider = \"local\"\n"
        ),
    )
    .unwrap();
    let site = sandbox.path("site");
    copy_tree(&fixture("site"), &site);
    let deployed = sandbox.run(&["deploy", site.to_str().unwrap()]);
    assert_eq!(deployed.status.code(), Some(0), "{}", stderr(&deployed));
    let (serve, admin) = Serve::start(&sandbox, &[("EDGESHIP_LOG__LEVEL", "warn")]);
    let serve = Arc::new(serve);
    let key = admin.unwrap();
    let pid = serve.pid();
    let stop = Arc::new(AtomicBool::new(false));
    let counts = Arc::new(Counts::default());

    let mut tasks = tokio::task::JoinSet::new();
    // Origin GETs, paced (about 400 a second in all) so the soak leaves the machine usable.
    for worker in 0..2u64 {
        let (serve, stop, counts) = (Arc::clone(&serve), Arc::clone(&stop), Arc::clone(&counts));
        tasks.spawn(async move {
            let paths = [
                "/",
                "/index.html",
                "/about/",
                "/assets/print.css",
                "/robots.txt",
            ];
            let encodings = ["br", "gzip", "zstd", "identity", "br;q=0, gzip"];
            let mut n = worker;
            while !stop.load(Ordering::Relaxed) {
                let (path, encoding) = (paths[n as usize % 5], encodings[(n / 5) as usize % 5]);
                let r = crate::common::http::request(
                    &serve.base,
                    "GET",
                    path,
                    &[("accept-encoding", encoding)],
                    b"",
                )
                .await;
                counts.check(path, r.status, 200, &r.body);
                n += 2;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        });
    }
    // A purge a second, followed to the end.
    {
        let (serve, stop, counts, key) = (
            Arc::clone(&serve),
            Arc::clone(&stop),
            Arc::clone(&counts),
            key.clone(),
        );
        tasks.spawn(async move {
            let patterns = [
                r#"["/index.html"]"#,
                r#"["/assets/**/*.css", "/about/"]"#,
                r#"["/blog/"]"#,
            ];
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                let body = format!(r#"{{"patterns": {}}}"#, patterns[n % 3]);
                let r = serve
                    .call(
                        &key,
                        "POST",
                        "/v1/sites/default/purges",
                        &[("content-type", "application/json")],
                        body.as_bytes(),
                    )
                    .await;
                if counts.check("purge", r.status, 202, &r.body) {
                    counts.purges.fetch_add(1, Ordering::Relaxed);
                    let id = r.json()["id"].as_str().unwrap().to_string();
                    let job = serve
                        .wait_for(
                            &key,
                            &format!("/v1/purges/{id}"),
                            Duration::from_secs(60),
                            |j| j["status"] != "running" && j["status"] != "pending",
                        )
                        .await;
                    counts.check(
                        "purge job",
                        if job["status"] == "done" { 200 } else { 500 },
                        200,
                        job.to_string().as_bytes(),
                    );
                }
                n += 1;
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
    }
    // Analytics, cache stats and readiness.
    {
        let (serve, stop, counts, key) = (
            Arc::clone(&serve),
            Arc::clone(&stop),
            Arc::clone(&counts),
            key.clone(),
        );
        tasks.spawn(async move {
            let paths = [
                "/v1/analytics?site=default",
                "/v1/analytics?site=default&group_by=day",
                "/v1/cache/stats",
                "/readyz",
                "/metrics",
            ];
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                let r = serve.call(&key, "GET", paths[n % 5], &[], b"").await;
                counts.check(paths[n % 5], r.status, 200, &r.body);
                n += 1;
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        });
    }
    // A small deploy every 20 seconds (one file changes).
    {
        let (serve, stop, counts, key) = (
            Arc::clone(&serve),
            Arc::clone(&stop),
            Arc::clone(&counts),
            key.clone(),
        );
        let site = site.clone();
        tasks.spawn(async move {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                std::fs::write(
                    site.join("changing.txt"),
                    format!("deploy {n}\n").repeat(50),
                )
                .unwrap();
                let r = serve
                    .call(
                        &key,
                        "POST",
                        "/v1/sites/default/deploys",
                        &[("content-type", "application/gzip")],
                        &tar_gz_of(&site),
                    )
                    .await;
                if counts.check("deploy", r.status, 202, &r.body) {
                    counts.deploys.fetch_add(1, Ordering::Relaxed);
                    let id = r.json()["id"].as_str().unwrap().to_string();
                    let job = serve
                        .wait_for(
                            &key,
                            &format!("/v1/deploys/{id}"),
                            Duration::from_secs(120),
                            |j| j["status"] != "running" && j["status"] != "queued",
                        )
                        .await;
                    counts.check(
                        "deploy job",
                        if job["status"] == "done" { 200 } else { 500 },
                        200,
                        job.to_string().as_bytes(),
                    );
                }
                n += 1;
                for _ in 0..20 {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        });
    }

    let started = Instant::now();
    let mut samples = Vec::new();
    loop {
        let (keys, job_keys) = redis_keys(&prefix);
        samples.push(Sample {
            at_secs: started.elapsed().as_secs(),
            rss_kib: rss_kib(pid),
            fds: fds(pid),
            keys,
            job_keys,
            requests: counts.requests.load(Ordering::Relaxed),
        });
        if started.elapsed() >= duration {
            break;
        }
        tokio::time::sleep(every).await;
    }
    stop.store(true, Ordering::Relaxed);
    while tasks.join_next().await.is_some() {}

    let out = std::env::var("EDGESHIP_SOAK_OUT")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| {
            let target = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into());
            std::path::PathBuf::from(target).join("soak-samples.tsv")
        });
    let mut tsv = String::from("seconds\trss_kib\tfds\tredis_keys\tjob_keys\trequests\n");
    for s in &samples {
        tsv.push_str(&format!(
            "{}\t{}\t{}\t{}\t{}\t{}\n",
            s.at_secs, s.rss_kib, s.fds, s.keys, s.job_keys, s.requests
        ));
    }
    std::fs::write(&out, &tsv).unwrap();
    let requests = counts.requests.load(Ordering::Relaxed);
    let (purges, deploys) = (
        counts.purges.load(Ordering::Relaxed),
        counts.deploys.load(Ordering::Relaxed),
    );
    eprintln!(
        "soak: {} s, {requests} requests, {purges} purges, {deploys} deploys; samples in {}\n{tsv}",
        started.elapsed().as_secs(),
        out.display()
    );
    delete_prefix(&prefix);

    let failures = counts.failures.lock().unwrap().clone();
    assert!(
        failures.is_empty(),
        "{} failed requests: {:?}",
        failures.len(),
        &failures[..failures.len().min(20)]
    );
    assert!(samples.len() >= 6, "too few samples: {}", samples.len());
    flat("RSS (KiB)", &samples, |s| s.rss_kib, 16 * 1024);
    flat("open file descriptors", &samples, |s| s.fds, 16);
    flat("Redis keys (jobs apart)", &samples, |s| s.keys, 50);
    let jobs = samples.last().unwrap().job_keys;
    // A purge job per API purge; a deploy job and at most one purge job per deploy (plus
    // the CLI deploy's before the soak).
    assert!(
        jobs <= purges + 2 * deploys + 2,
        "{jobs} job records for {purges} purges and {deploys} deploys"
    );
}
