//! The HTTP service, started on a random port with the real app.

mod common;

use std::time::{Duration, Instant};

use common::redis::{PrivateRedis, SHARED_REDIS, cleanup, raw_connection, redis_config};
use edgeship::cache::Cache;
use edgeship::config::Config;

/// The shared test app, with files in its default site.
struct TestApp(common::http::TestApp);

impl std::ops::Deref for TestApp {
    type Target = common::http::TestApp;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl TestApp {
    /// Starts the app with a data dir whose default site holds `files`.
    async fn spawn(files: &[(&str, &[u8])]) -> Self {
        Self::spawn_with(files, |_| {}).await
    }

    /// Starts the app with `files` and a config adjusted by `configure`.
    async fn spawn_with(files: &[(&str, &[u8])], configure: impl FnOnce(&mut Config)) -> Self {
        let data = tempfile::tempdir().unwrap();
        let mut config = Config {
            data_dir: data.path().to_path_buf(),
            ..Config::default()
        };
        configure(&mut config);
        let root = config.site("default").unwrap().root;
        for (path, bytes) in files {
            let target = root.join(path);
            std::fs::create_dir_all(target.parent().unwrap()).unwrap();
            std::fs::write(target, bytes).unwrap();
        }
        Self(common::http::TestApp::start(config, data).await)
    }

    fn cache(&self) -> &Cache {
        self.state.cache()
    }

    async fn json(&self, path: &str) -> (u16, serde_json::Value) {
        let (status, headers, body) = self.request("GET", path).await;
        assert_eq!(
            header(&headers, "content-type"),
            Some("application/json"),
            "{path}"
        );
        (status, serde_json::from_slice(&body).unwrap())
    }

    async fn request(&self, method: &str, path: &str) -> (u16, Vec<(String, String)>, Vec<u8>) {
        raw_request(&self.base, method, path, &self.admin).await
    }
}

/// One request with the admin key, as (status, lower-cased headers, body).
async fn raw_request(
    base: &str,
    method: &str,
    path: &str,
    key: &str,
) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let auth = format!("Bearer {key}");
    let response =
        common::http::request(base, method, path, &[("authorization", &auth)], b"").await;
    (response.status, response.headers, response.body)
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

#[tokio::test]
async fn healthz_answers_ok() {
    let app = TestApp::spawn(&[]).await;
    let (status, headers, body) = app.request("GET", "/healthz").await;
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "content-type"), Some("application/json"));
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(json["status"], "ok");
}

#[tokio::test]
async fn origin_serves_site_files_with_rule_headers() {
    let app = TestApp::spawn(&[
        ("index.html", b"<!doctype html><p>home</p>"),
        ("blog/index.html", b"<p>blog</p>"),
        ("assets/app.3f9c2a1b.js", b"console.log(1)"),
        ("assets/styles.css", b"a{color:red}"),
        ("docs/caf\u{e9}.txt", "caf\u{e9}".as_bytes()),
    ])
    .await;
    let (status, headers, body) = app.request("GET", "/").await;
    assert_eq!(status, 200);
    assert_eq!(body, b"<!doctype html><p>home</p>");
    assert_eq!(
        header(&headers, "content-type"),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(
        header(&headers, "cache-control"),
        Some("public, max-age=0, must-revalidate")
    );

    let (status, _, body) = app.request("GET", "/blog/").await;
    assert_eq!((status, body.as_slice()), (200, &b"<p>blog</p>"[..]));

    let (status, headers, _) = app.request("GET", "/assets/app.3f9c2a1b.js").await;
    assert_eq!(status, 200);
    assert_eq!(
        header(&headers, "content-type"),
        Some("text/javascript; charset=utf-8")
    );
    assert_eq!(
        header(&headers, "cache-control"),
        Some("public, max-age=31536000, immutable")
    );

    let (_, headers, _) = app.request("GET", "/assets/styles.css").await;
    assert_eq!(
        header(&headers, "content-type"),
        Some("text/css; charset=utf-8")
    );
    assert_eq!(
        header(&headers, "cache-control"),
        Some("public, max-age=300")
    );

    let (status, _, body) = app.request("GET", "/docs/caf%C3%A9.txt").await;
    assert_eq!((status, body.as_slice()), (200, "caf\u{e9}".as_bytes()));

    let (status, headers, body) = app.request("HEAD", "/assets/app.3f9c2a1b.js").await;
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "content-length"), Some("14"));
    assert!(body.is_empty());
}

#[tokio::test]
async fn origin_refuses_traversal_and_reports_missing_files_as_json() {
    let app = TestApp::spawn(&[("index.html", b"x"), (".edgeship/manifest.json", b"{}")]).await;
    let (status, _, body) = app.request("GET", "/nope.js").await;
    assert_eq!(status, 404);
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(json["error"]["code"], "not_found");
    assert_eq!(json["error"]["message"], "no asset at /nope.js");

    let (status, _, _) = app.request("GET", "/%2e%2e/%2e%2e/etc/passwd").await;
    assert_eq!(status, 400);
    let (status, _, _) = app.request("GET", "/.edgeship/manifest.json").await;
    assert_eq!(status, 404);
    let (status, headers, _) = app.request("POST", "/index.html").await;
    assert_eq!(status, 405);
    assert_eq!(header(&headers, "allow"), Some("GET, HEAD"));
}

#[tokio::test]
async fn readyz_is_ready_with_the_embedded_memory_cache() {
    let app = TestApp::spawn(&[]).await;
    let (status, json) = app.json("/readyz").await;
    assert_eq!(status, 200, "{json}");
    assert_eq!(json["status"], "ready");
    assert_eq!(json["cache"]["status"], "ready");
    assert_eq!(json["providers"]["default"]["status"], "ready", "{json}");
    assert_eq!(
        json["providers"]["default"]["provider"], "local",
        "the kind only: /readyz is public, paths stay in the log"
    );
}

/// A failing provider of another site is reported but does not make the replica unready
/// (all replicas share it); a failing provider of the origin's site does.
#[tokio::test]
async fn readyz_names_failing_providers_and_only_the_origins_makes_it_unready() {
    let failing = |config: &mut edgeship::config::Config, site: &str| {
        let site = config.sites.entry(site.into()).or_default();
        site.provider = edgeship::config::ProviderKind::Memory;
        site.faults = Some(edgeship_providers::faults::FaultConfig {
            error_rate: 1.0,
            ..Default::default()
        });
    };
    let app = TestApp::spawn_with(&[], |config| {
        failing(config, "broken");
        config.sites.entry("default".into()).or_default();
    })
    .await;
    let (status, json) = app.json("/readyz").await;
    assert_eq!(status, 200, "{json}");
    assert_eq!(
        json["providers"]["broken"]["status"], "unreachable",
        "{json}"
    );
    assert_eq!(json["providers"]["broken"]["reason"], "retryable", "{json}");
    assert_eq!(
        json["warnings"][0], "provider:broken is unreachable (retryable)",
        "{json}"
    );

    let app = TestApp::spawn_with(&[], |config| failing(config, "default")).await;
    let (status, json) = app.json("/readyz").await;
    assert_eq!(status, 503, "{json}");
    assert_eq!(json["component"], "provider:default");
    assert_eq!(json["reason"], "retryable");
}

#[tokio::test]
async fn cache_stats_count_this_apps_hits_misses_bytes_and_latency() {
    let app = TestApp::spawn(&[]).await;
    let other = TestApp::spawn(&[]).await;
    let cache = app.cache();
    let key = cache.site("www").manifest();
    assert_eq!(cache.get::<String>(&key).await.unwrap(), None);
    cache.set(&key, &"x".repeat(4000), None).await.unwrap();
    for _ in 0..3 {
        assert!(cache.get::<String>(&key).await.unwrap().is_some());
    }

    let (status, stats) = app.json("/v1/cache/stats").await;
    assert_eq!(status, 200);
    assert_eq!(stats["backend"], "memory");
    assert_eq!(stats["degraded"], false);
    assert_eq!(stats["hits"], 3);
    assert_eq!(stats["misses"], 1);
    assert_eq!(stats["hit_ratio"], 0.75);
    assert_eq!(stats["errors"], 0);
    assert_eq!(stats["fallbacks"], 0);
    assert_eq!(stats["bytes"]["before_compression"], 4003);
    assert_eq!(stats["bytes"]["values_compressed"], 1);
    assert!(stats["bytes"]["after_compression"].as_u64().unwrap() < 100);
    assert_eq!(stats["operations"]["get"]["calls"], 4);
    assert_eq!(stats["operations"]["set"]["calls"], 1);
    // Latencies are measured: ordered quantiles, bounded by the slowest call.
    let get = &stats["operations"]["get"];
    let ms = |name: &str| get[name].as_f64().unwrap();
    assert!(ms("max_ms") > 0.0, "{get}");
    assert!(
        ms("p50_ms") <= ms("p99_ms") && ms("p99_ms") <= ms("max_ms"),
        "{get}"
    );
    assert!(
        ms("mean_ms") > 0.0 && ms("mean_ms") <= ms("max_ms"),
        "{get}"
    );

    // Apps in one process keep their own stats (the other one only read its CDN gauges).
    let (_, stats) = other.json("/v1/cache/stats").await;
    assert_eq!(stats["hits"], 0);
    for operation in ["get", "set"] {
        assert!(stats["operations"].get(operation).is_none(), "{stats}");
    }
}

#[tokio::test]
async fn metrics_are_served_in_prometheus_text_by_every_app_of_the_process() {
    let first = TestApp::spawn(&[]).await;
    let second = TestApp::spawn(&[]).await;
    let key = first.cache().site("www").key("k");
    first.cache().set(&key, &1u8, None).await.unwrap();
    first.cache().get::<u8>(&key).await.unwrap();
    for app in [&first, &second] {
        let (status, headers, body) = app.request("GET", "/metrics").await;
        assert_eq!(status, 200);
        assert_eq!(
            header(&headers, "content-type"),
            Some("text/plain; version=0.0.4; charset=utf-8")
        );
        let text = String::from_utf8(body).unwrap();
        for line in [
            "# TYPE edgeship_cache_operations_total counter",
            "edgeship_cache_operations_total{op=\"get\"}",
            "edgeship_cache_hits_total",
            "edgeship_cache_bytes_before_compression_total",
            "edgeship_cache_operation_duration_seconds_bucket{op=\"set\",le=\"0.00005\"}",
        ] {
            assert!(text.contains(line), "{line} missing from:\n{text}");
        }
    }
}

#[tokio::test]
async fn readyz_reports_degraded_when_redis_is_unreachable_at_startup() {
    let port = common::redis::free_port();
    let app = TestApp::spawn_with(&[], |config| {
        config.cache = redis_config(&format!("redis://127.0.0.1:{port}"), "http-down");
        config.cache.command_timeout_ms = 300;
    })
    .await;
    let (status, json) = app.json("/readyz").await;
    assert_eq!(status, 503);
    assert_eq!(json["status"], "degraded");
    assert_eq!(json["component"], "cache");
    let reason = json["reason"].as_str().unwrap();
    assert!(
        reason.contains(&format!("redis 127.0.0.1:{port}/0 is unreachable")),
        "{reason}"
    );
}

/// Redis dies under a running app: calls keep succeeding from memory, readiness says
/// degraded, one outage is counted however many calls fall back; Redis comes back on the
/// same port and the app returns to it by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cache_falls_back_to_memory_while_redis_is_down_and_returns_by_itself() {
    let mut redis = PrivateRedis::start();
    let url = redis.url();
    let app = TestApp::spawn_with(&[], |config| {
        config.cache = redis_config(&url, "http-outage");
        config.cache.command_timeout_ms = 300;
        config.cache.reconnect_interval_ms = 100;
    })
    .await;
    let cache = app.cache().clone();
    let site = cache.site("www");
    let key = site.manifest();

    cache.set(&key, "from redis", None).await.unwrap();
    let stored: Option<Vec<u8>> = redis::cmd("GET")
        .arg(key.as_str())
        .query(&mut raw_connection(&url))
        .unwrap();
    assert!(stored.is_some(), "the value is in Redis");
    let (status, ready) = app.json("/readyz").await;
    assert_eq!(
        (status, &ready["status"]),
        (200, &serde_json::json!("ready")),
        "{ready}"
    );

    redis.kill();
    for i in 0..50u32 {
        let started = Instant::now();
        cache
            .set(&site.key(&format!("k{i}")), &i, None)
            .await
            .unwrap();
        assert_eq!(
            cache.get::<u32>(&site.key(&format!("k{i}"))).await.unwrap(),
            Some(i)
        );
        assert_eq!(
            cache.incr_by(&site.key("count"), 1, None).await.unwrap(),
            i64::from(i) + 1
        );
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "call {i} took {:?}",
            started.elapsed()
        );
    }
    let (status, json) = app.json("/readyz").await;
    assert_eq!(status, 503);
    assert_eq!(json["status"], "degraded");
    assert!(
        json["reason"]
            .as_str()
            .unwrap()
            .contains(&format!("127.0.0.1:{}", redis.port))
    );
    let (_, stats) = app.json("/v1/cache/stats").await;
    assert_eq!(stats["degraded"], true);
    assert_eq!(
        stats["outages"], 1,
        "one outage (one warning), not one per call"
    );
    assert!(stats["fallbacks"].as_u64().unwrap() >= 149, "{stats}");
    assert_eq!(stats["errors"], 0, "no call failed: {stats}");

    redis.restart();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (status, json) = app.json("/readyz").await;
        if status == 200 {
            assert_eq!(json["status"], "ready", "{json}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still degraded 15 s after Redis returned: {json}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Back on Redis: writes land in the restarted server, memory is no longer used.
    let fallbacks = cache.stats().fallbacks;
    cache.set(&key, "after the outage", None).await.unwrap();
    assert_eq!(
        cache.get::<String>(&key).await.unwrap().as_deref(),
        Some("after the outage")
    );
    let stored: Option<Vec<u8>> = redis::cmd("GET")
        .arg(key.as_str())
        .query(&mut raw_connection(&url))
        .unwrap();
    assert!(stored.is_some(), "the write went to Redis");
    let stats = cache.stats();
    assert_eq!(stats.fallbacks, fallbacks);
    assert!(!stats.degraded);
    assert_eq!(stats.outages, 1);
}

#[tokio::test]
async fn the_app_uses_the_configured_redis() {
    let app = TestApp::spawn_with(&[], |config| {
        config.cache = redis_config(SHARED_REDIS, "http-shared");
    })
    .await;
    let key = app.cache().site("www").manifest();
    app.cache().set(&key, "v", None).await.unwrap();
    let exists: bool = redis::cmd("EXISTS")
        .arg(key.as_str())
        .query(&mut raw_connection(SHARED_REDIS))
        .unwrap();
    assert!(exists);
    let (_, stats) = app.json("/v1/cache/stats").await;
    assert!(
        stats["backend"]
            .as_str()
            .unwrap()
            .starts_with("redis 127.0.0.1:6379/0"),
        "{stats}"
    );
    assert_eq!(app.json("/readyz").await.0, 200);
    cleanup(app.cache()).await;
}
