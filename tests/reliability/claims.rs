//! README claims that had no test: `server.allow_ips`, CORS, per-IP rate limits shared by
//! every key of an address, the key file's mode, JSON logs and graceful shutdown of the
//! real binary, purges waiting for CloudFront's in-flight room, and monthly purge counts
//! kept in Redis. (API keys while Redis is down: `redis_outage`.)

use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use edgeship::api_keys::Scope;
use edgeship::jobs::JobStore;
use edgeship::purge::job::{self, BatchStatus, JobStatus, PurgeJob, RunOptions};
use edgeship::purge::plan::{PurgeCost, PurgePlan};
use edgeship::purge::reduce::Reduction;
use edgeship_providers::memory::MemoryProvider;
use edgeship_providers::{
    Capabilities, ListPage, ObjectMeta, Provider, PurgeReceipt, PurgeRequest, PurgeStatus,
    PutRequest, SharedProvider,
};

use crate::common::http::TestApp;
use crate::common::redis::{SHARED_REDIS, raw_connection, redis_config};
use crate::common::{Sandbox, stderr};
use crate::serve::Serve;

#[tokio::test]
async fn server_allow_ips_refuses_every_other_address_even_with_an_admin_key() {
    let outside =
        TestApp::spawn_with(|c| c.server.allow_ips = vec!["10.0.0.0/8".parse().unwrap()]).await;
    let r = outside.admin("GET", "/v1/cache/stats", None).await;
    assert_eq!((r.status, r.code().as_str()), (403, "ip_not_allowed"));
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("127.0.0.1")
    );
    // Not an API route: the origin and health answer whoever asks.
    assert_eq!(outside.call("GET", "/healthz", &[], b"").await.status, 200);

    let inside =
        TestApp::spawn_with(|c| c.server.allow_ips = vec!["127.0.0.0/8".parse().unwrap()]).await;
    assert_eq!(
        inside.admin("GET", "/v1/cache/stats", None).await.status,
        200
    );
}

#[tokio::test]
async fn cors_answers_listed_origins_only() {
    let app =
        TestApp::spawn_with(|c| c.server.cors_origins = vec!["https://app.example".into()]).await;
    let preflight = |origin: &'static str| {
        let app = &app;
        async move {
            app.call(
                "OPTIONS",
                "/v1/cache/stats",
                &[
                    ("origin", origin),
                    ("access-control-request-method", "GET"),
                    ("access-control-request-headers", "authorization"),
                ],
                b"",
            )
            .await
        }
    };
    let allowed = preflight("https://app.example").await;
    assert_eq!(allowed.status, 200);
    assert_eq!(
        allowed.header("access-control-allow-origin"),
        Some("https://app.example")
    );
    assert!(
        allowed
            .header("access-control-allow-headers")
            .is_some_and(|h| h.to_ascii_lowercase().contains("authorization")),
        "{:?}",
        allowed.headers
    );
    let other = preflight("https://evil.example").await;
    assert_ne!(other.status, 200);
    assert_eq!(other.header("access-control-allow-origin"), None);

    let auth = format!("Bearer {}", app.admin);
    let get = app
        .call(
            "GET",
            "/v1/cache/stats",
            &[("origin", "https://app.example"), ("authorization", &auth)],
            b"",
        )
        .await;
    assert_eq!(get.status, 200);
    assert_eq!(
        get.header("access-control-allow-origin"),
        Some("https://app.example")
    );
}

/// The per-IP limit is the address's, whichever keys it uses: two keys with room of
/// their own still get 429 once the address is over its burst.
#[tokio::test]
async fn the_per_ip_rate_limit_is_shared_by_every_key_of_an_address() {
    let app = TestApp::spawn_with(|c| {
        c.server.ip_rate_per_sec = 1;
        c.server.ip_burst = 4;
        c.server.key_rate_per_sec = 1000;
        c.server.key_burst = 1000;
    })
    .await;
    let keys = app.state.guard().keys();
    let mut tokens = Vec::new();
    for name in ["a", "b"] {
        tokens.push(
            keys.create(name, vec![Scope::Read], None, vec![])
                .await
                .unwrap()
                .token,
        );
    }
    let mut answers = Vec::new();
    for i in 0..6 {
        let auth = format!("Bearer {}", tokens[i % 2]);
        let r = app
            .call("GET", "/v1/cache/stats", &[("authorization", &auth)], b"")
            .await;
        answers.push((
            r.status,
            if r.status == 200 {
                String::new()
            } else {
                r.code()
            },
        ));
    }
    assert_eq!(
        answers[..4],
        [
            (200, String::new()),
            (200, String::new()),
            (200, String::new()),
            (200, String::new())
        ]
    );
    assert_eq!(answers[4], (429, "rate_limited".to_string()), "{answers:?}");
}

#[test]
fn the_key_file_is_readable_by_its_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let sandbox = Sandbox::new();
    let out = sandbox.run(&["keys", "create", "--name", "ci", "--scopes", "deploy"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let file = sandbox.path("data/keys.json");
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "{mode:o}");
    // Rewritten with a second key: still 0600.
    let out = sandbox.run(&["keys", "create", "--name", "ci2", "--scopes", "read"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "{mode:o}");
    assert!(std::fs::read_to_string(&file).unwrap().contains("ci2"));
}

/// SIGTERM: the server stops accepting, the request in flight is answered, the purge job
/// running in the background is finished and saved, and the process exits 0 — with
/// every log line JSON when `log.format = "json"`.
#[tokio::test]
async fn sigterm_finishes_in_flight_requests_and_jobs_and_logs_are_json() {
    let sandbox = Sandbox::new();
    std::fs::write(
        sandbox.path("edgeship.toml"),
        "[log]\nformat = \"json\"\n[server]\nshutdown_grace_secs = 30\n\
         [sites.default]\nprovider = \"local\"\n\
         [sites.default.faults]\nlatency_ms = 1500\nonly = [\"purge\"]\n",
    )
    .unwrap();
    let (mut serve, admin) = Serve::start(&sandbox, &[]);
    let key = admin.unwrap();
    let body = serde_json::json!({"patterns": ["/index.html"]}).to_string();
    // A purge in the background (202), then one the request waits for.
    let r = serve
        .call(
            &key,
            "POST",
            "/v1/sites/default/purges",
            &[("content-type", "application/json")],
            body.as_bytes(),
        )
        .await;
    assert_eq!(r.status, 202);
    let background = r.json()["id"].as_str().unwrap().to_string();
    let waiting = {
        let (base, key) = (serve.base.clone(), key.clone());
        let body = serde_json::json!({"patterns": ["/about/"], "wait": true}).to_string();
        tokio::spawn(async move {
            let auth = format!("Bearer {key}");
            crate::common::http::request(
                &base,
                "POST",
                "/v1/sites/default/purges",
                &[
                    ("authorization", &auth),
                    ("content-type", "application/json"),
                ],
                body.as_bytes(),
            )
            .await
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let base = serve.base.clone();
    let (code, log) = tokio::task::spawn_blocking(move || {
        let code = serve.terminate();
        (code, serve.log())
    })
    .await
    .unwrap();
    assert_eq!(code, Some(0), "{log}");
    let answer = waiting.await.unwrap();
    assert_eq!(answer.status, 200, "the request in flight was answered");
    assert_eq!(answer.json()["status"], "done");
    let job: serde_json::Value = serde_json::from_slice(
        &std::fs::read(sandbox.path(&format!("data/jobs/{background}.json"))).unwrap(),
    )
    .unwrap();
    assert_eq!(job["status"], "done", "the background job finished: {job}");
    assert!(
        tokio::net::TcpStream::connect(base.trim_start_matches("http://"))
            .await
            .is_err(),
        "no longer accepting"
    );

    let lines: Vec<&str> = log.lines().filter(|l| l.starts_with('{')).collect();
    assert!(
        lines.iter().any(|l| l.contains("shutdown requested")),
        "{log}"
    );
    for line in &lines {
        let json: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(
            json["level"].is_string() && json["fields"].is_object(),
            "{line}"
        );
    }
    // Besides the JSON lines, only the two banner lines for people (the admin key).
    let other: Vec<&str> = log
        .lines()
        .filter(|l| !l.starts_with('{') && !l.trim().is_empty())
        .filter(|l| !l.trim().starts_with("esk_"))
        .filter(|l| !l.starts_with("created an admin API key") && !l.starts_with("use it as"))
        .filter(|l| !l.starts_with("edgeship serving on"))
        .collect();
    assert!(other.is_empty(), "lines that are not JSON: {other:?}");
}

/// A CDN whose purges stay in progress for `polls` status checks; it logs its calls.
#[derive(Debug)]
struct SlowCdn {
    inner: MemoryProvider,
    polls: AtomicU32,
    calls: Mutex<Vec<String>>,
}

impl std::fmt::Display for SlowCdn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("slow-cdn")
    }
}

#[async_trait]
impl Provider for SlowCdn {
    fn capabilities(&self) -> Capabilities {
        Capabilities::cloudfront()
    }
    async fn put(&self, request: PutRequest) -> edgeship_providers::Result<ObjectMeta> {
        self.inner.put(request).await
    }
    async fn head(&self, key: &str) -> edgeship_providers::Result<ObjectMeta> {
        self.inner.head(key).await
    }
    async fn get(&self, key: &str) -> edgeship_providers::Result<(ObjectMeta, Bytes)> {
        self.inner.get(key).await
    }
    async fn list_page(
        &self,
        prefix: &str,
        cursor: Option<String>,
    ) -> edgeship_providers::Result<ListPage> {
        self.inner.list_page(prefix, cursor).await
    }
    async fn delete_many(&self, keys: &[String]) -> edgeship_providers::Result<()> {
        self.inner.delete_many(keys).await
    }
    async fn purge(&self, request: &PurgeRequest) -> edgeship_providers::Result<PurgeReceipt> {
        self.capabilities().validate_purge("slow-cdn", request)?;
        let mut calls = self.calls.lock().unwrap();
        calls.push(format!("purge {}", request.paths.len()));
        Ok(PurgeReceipt {
            id: format!("inv-{}", calls.len()),
            status: PurgeStatus::InProgress,
        })
    }
    async fn purge_status(&self, id: &str) -> edgeship_providers::Result<PurgeStatus> {
        self.calls.lock().unwrap().push(format!("status {id}"));
        let before = self
            .polls
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                Some(n.saturating_sub(1))
            })
            .unwrap_or(0);
        if before > 1 {
            Ok(PurgeStatus::InProgress)
        } else {
            Ok(PurgeStatus::Done)
        }
    }
}

fn job_of(provider: &str, requests: Vec<PurgeRequest>) -> PurgeJob {
    let plan = PurgePlan {
        patterns: Vec::new(),
        matched: Vec::new(),
        site_paths: 0,
        reduction: Reduction::default(),
        requests,
        cost: PurgeCost::default(),
        needs_confirmation: None,
    };
    PurgeJob::new("www", provider, "api", plan)
}

/// CloudFront allows 3,000 paths and 15 wildcards in progress: a batch that would go
/// over waits (polling) until the earlier one is done, then goes out; nothing fails.
#[tokio::test(start_paused = true)]
async fn a_purge_batch_waits_for_cloudfronts_in_flight_room_instead_of_failing() {
    let cdn = std::sync::Arc::new(SlowCdn {
        inner: MemoryProvider::new("slow-cdn"),
        polls: AtomicU32::new(3),
        calls: Mutex::new(Vec::new()),
    });
    let provider: SharedProvider = cdn.clone();
    let paths = |n: usize, tag: &str| (0..n).map(|i| format!("/{tag}/{i}.html")).collect();
    let mut job = job_of(
        "slow-cdn",
        vec![
            PurgeRequest {
                paths: paths(3000, "a"),
                ..Default::default()
            },
            PurgeRequest {
                paths: paths(10, "b"),
                ..Default::default()
            },
        ],
    );
    let dir = tempfile::tempdir().unwrap();
    let store = JobStore::Dir(dir.path().to_path_buf());
    let options = RunOptions {
        wait: true,
        poll_interval: Duration::from_secs(1),
        timeout: Duration::from_secs(600),
    };
    job::run(&provider, &store, &mut job, &options).await;
    assert_eq!(job.status, JobStatus::Done, "{job:?}");
    assert!(job.batches.iter().all(|b| b.status == BatchStatus::Done));
    let calls = cdn.calls.lock().unwrap().clone();
    assert_eq!(
        calls[..5],
        [
            "purge 3000",
            "status inv-1",
            "status inv-1",
            "status inv-1",
            "purge 10"
        ],
        "the second batch went out only once the first was done: {calls:?}"
    );

    // Wildcards: 15 in flight at most.
    cdn.polls.store(2, Ordering::Relaxed);
    cdn.calls.lock().unwrap().clear();
    let wildcards = |n: usize, tag: &str| (0..n).map(|i| format!("/{tag}{i}/*")).collect();
    let mut job = job_of(
        "slow-cdn",
        vec![
            PurgeRequest {
                paths: wildcards(15, "a"),
                ..Default::default()
            },
            PurgeRequest {
                paths: wildcards(1, "b"),
                ..Default::default()
            },
        ],
    );
    job::run(&provider, &store, &mut job, &options).await;
    assert_eq!(job.status, JobStatus::Done, "{job:?}");
    let calls = cdn.calls.lock().unwrap().clone();
    assert_eq!(
        calls[..4],
        ["purge 15", "status inv-1", "status inv-1", "purge 1"],
        "{calls:?}"
    );
}

/// Billed purge paths are counted per provider and month in Redis (shared by every
/// process), and the cost of the next purge starts from that count.
#[tokio::test]
async fn monthly_billed_purge_paths_are_counted_in_redis() {
    let config = redis_config(SHARED_REDIS, "billed");
    let prefix = config.prefix.clone();
    let cache = edgeship::cache::Cache::from_config(&config).unwrap();
    let store = JobStore::Cache(cache.clone());
    let provider: SharedProvider = std::sync::Arc::new(
        MemoryProvider::new("cf-test").with_capabilities(Capabilities::cloudfront()),
    );
    let options = RunOptions {
        wait: false,
        poll_interval: Duration::from_millis(10),
        timeout: Duration::from_secs(10),
    };
    for n in [3usize, 4] {
        let mut job = job_of(
            "cf-test",
            vec![PurgeRequest {
                paths: (0..n).map(|i| format!("/p{n}-{i}.html")).collect(),
                ..Default::default()
            }],
        );
        job::run(&provider, &store, &mut job, &options).await;
        assert_eq!(job.status, JobStatus::Done);
    }
    let month = job::month_of(edgeship::jobs::unix_now());
    let mut conn = raw_connection(SHARED_REDIS);
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}:*purge-billed*"))
        .query(&mut conn)
        .unwrap();
    assert_eq!(keys.len(), 1, "{keys:?}");
    let stored: i64 = redis::cmd("GET").arg(&keys[0]).query(&mut conn).unwrap();
    assert_eq!(stored, 7, "3 + 4 billed paths in {}", keys[0]);
    assert!(
        keys[0].ends_with(&format!("purge-billed:cf-test:{month}")),
        "{}",
        keys[0]
    );
    let ttl: i64 = redis::cmd("TTL").arg(&keys[0]).query(&mut conn).unwrap();
    assert!(ttl > 30 * 24 * 3600, "kept past the month's end: {ttl}");
    assert_eq!(job::billed_this_month(&store, "cf-test").await, Some(7));
    crate::common::redis::delete_prefix(&prefix);
}
