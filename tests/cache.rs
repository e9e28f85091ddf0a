//! The cache layer against the real Redis at 127.0.0.1:6379 (each test under its own key
//! prefix) and in memory: one conformance body run against every composition, plus the
//! Redis-specific guarantees (round trips, batched pattern deletes, TTLs, corrupt values).
//!
//! The cases that take a [`Backend`] run three times (see `on_every_redis!`): on the shared
//! server, on a three-node Redis Cluster and on a TLS-only server, the last two started by
//! the test.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::redis::{DelayProxy, SHARED_REDIS, cleanup, raw_connection, redis_config};
use common::redis_topologies::Backend;
use edgeship::cache::codec::CodecError;
use edgeship::cache::{
    Admission, Cache, CacheError, CacheKey, Compression, Format, Health, KeyPattern, RateLimit,
};
use edgeship::config::{CacheConfig, RedisUrl};
use edgeship::pipeline::manifest::{Manifest, ManifestEntry};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Job {
    id: String,
    status: Status,
    attempts: u32,
    progress: f64,
    paths: Vec<String>,
    batches: BTreeMap<String, u64>,
    error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Status {
    Pending,
    Running { batch: u32 },
    Done,
}

fn job(id: &str) -> Job {
    Job {
        id: id.into(),
        status: Status::Running { batch: 3 },
        attempts: 2,
        progress: 0.625,
        paths: vec!["/blog/*".into(), "/caf\u{e9} menu.html".into()],
        batches: BTreeMap::from([("1".into(), 200), ("2".into(), 17)]),
        error: None,
    }
}

/// A manifest large enough to be compressed (well above the 1 KiB threshold).
fn manifest(entries: usize) -> Manifest {
    let mut manifest = Manifest::default();
    for i in 0..entries {
        let hash = blake3::hash(format!("asset {i}").as_bytes())
            .to_hex()
            .to_string();
        let entry: ManifestEntry = serde_json::from_value(serde_json::json!({
            "hash": hash,
            "size": 1000 + i,
            "source_size": 2000 + i,
            "content_type": "text/javascript; charset=utf-8",
            "cache_control": "public, max-age=31536000, immutable",
            "variants": { "br": 300 + i, "gzip": 400 + i }
        }))
        .unwrap();
        manifest
            .assets
            .insert(format!("assets/chunk-{i}.{}.js", &hash[..8]), entry);
    }
    manifest
}

/// The compositions every conformance test runs against, on `backend`.
async fn compositions(backend: &Backend, test: &str) -> Vec<(&'static str, Cache)> {
    let memory = CacheConfig {
        prefix: common::redis::unique_prefix(test),
        ..CacheConfig::default()
    };
    let redis = backend.config(test);
    let json_gzip = CacheConfig {
        format: Format::Json,
        compression: Compression::Gzip,
        ..backend.config(test)
    };
    let with_l1 = CacheConfig {
        l1_max_bytes: 1 << 20,
        ..backend.config(test)
    };
    vec![
        ("memory", Cache::from_config(&memory).unwrap()),
        ("redis msgpack+zstd", Cache::from_config(&redis).unwrap()),
        ("redis json+gzip", Cache::from_config(&json_gzip).unwrap()),
        ("redis with L1", Cache::from_config(&with_l1).unwrap()),
    ]
}

common::redis_topologies::on_every_redis!(
    every_value_type_round_trips_in_every_composition_and_format,
    values_follow_the_store_contract_in_every_composition,
    pattern_deletes_match_the_same_keys_in_memory_and_in_redis,
    redis_values_and_counters_expire,
    a_corrupted_stored_value_is_a_typed_error_naming_the_key,
    unique_prefixes_isolate_caches_that_share_one_redis,
    keys_of_many_sites_are_spread_and_deleted_by_one_pattern,
    throttle_admits_a_burst_then_one_request_per_interval,
    a_throttle_budget_is_shared_by_every_cache_on_one_redis,
);

async fn round_trip<T>(cache: &Cache, name: &str, value: T)
where
    T: Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug + Send + 'static,
{
    let key = cache.site("www").key(name);
    cache.set(&key, &value, None).await.unwrap();
    let back: Option<T> = cache.get(&key).await.unwrap();
    assert_eq!(back.as_ref(), Some(&value), "{name} via {cache:?}");
}

async fn every_value_type_round_trips_in_every_composition_and_format(backend: &Backend) {
    for (label, cache) in compositions(backend, "types").await {
        round_trip(
            &cache,
            "string",
            "caf\u{e9} \u{1f680} \"quoted\"".to_string(),
        )
        .await;
        round_trip(&cache, "empty-string", String::new()).await;
        round_trip(&cache, "u64", u64::MAX).await;
        round_trip(&cache, "i64", i64::MIN).await;
        round_trip(&cache, "f64", -0.1f64).await;
        round_trip(&cache, "bool", true).await;
        round_trip(&cache, "unit", ()).await;
        round_trip(&cache, "bytes", (0u8..=255).collect::<Vec<u8>>()).await;
        round_trip(&cache, "option-none", Option::<u32>::None).await;
        round_trip(&cache, "option-some", Some("x".to_string())).await;
        round_trip(&cache, "list", vec!["a".to_string(); 1000]).await;
        round_trip(
            &cache,
            "map",
            BTreeMap::from([("a".to_string(), 1u32), ("b".to_string(), 2)]),
        )
        .await;
        round_trip(&cache, "struct", job("j1")).await;
        round_trip(&cache, "enum", Status::Pending).await;
        round_trip(&cache, "enum-done", Status::Done).await;
        round_trip(&cache, "manifest", manifest(300)).await;
        if label.starts_with("redis") {
            // Ran on Redis, not on the memory fallback.
            assert!(!cache.metrics().is_degraded(), "{label}");
            for name in ["string", "manifest", "unit", "enum"] {
                assert!(
                    backend.exists(&cache.site("www").key(name)),
                    "{label}: {name}"
                );
            }
        }

        let stats = cache.stats();
        assert!(
            stats.bytes.values_compressed >= 2,
            "{label}: the list and the manifest are above the threshold: {stats:?}"
        );
        assert!(
            stats.bytes.after_compression < stats.bytes.before_compression / 2,
            "{label}: {stats:?}"
        );
        cleanup(&cache).await;
    }
}

async fn values_follow_the_store_contract_in_every_composition(backend: &Backend) {
    for (label, cache) in compositions(backend, "contract").await {
        let site = cache.site("www");
        let key = site.key("job:1");

        assert_eq!(cache.get::<Job>(&key).await.unwrap(), None, "{label}");
        assert!(!cache.delete(&key).await.unwrap(), "{label}: missing key");
        cache.set(&key, &job("1"), None).await.unwrap();
        cache.set(&key, &job("2"), None).await.unwrap();
        assert_eq!(
            cache.get::<Job>(&key).await.unwrap().unwrap().id,
            "2",
            "{label}"
        );
        assert!(cache.delete(&key).await.unwrap(), "{label}");
        assert_eq!(cache.get::<Job>(&key).await.unwrap(), None, "{label}");

        // get_many / set_many keep order and report missing keys.
        let keys: Vec<CacheKey> = (0..5).map(|i| site.key(&format!("m:{i}"))).collect();
        let entries: Vec<(CacheKey, u32)> = keys[..3]
            .iter()
            .enumerate()
            .map(|(i, k)| (k.clone(), i as u32 * 10))
            .collect();
        cache.set_many(&entries, None).await.unwrap();
        assert_eq!(
            cache.get_many::<u32>(&keys).await.unwrap(),
            vec![Some(0), Some(10), Some(20), None, None],
            "{label}"
        );
        assert_eq!(cache.get_many::<u32>(&[]).await.unwrap(), vec![], "{label}");

        // set_if_absent and delete_if_equals: the lock primitives.
        let lock = site.deploy_lock();
        assert!(
            cache.set_if_absent(&lock, "me", None).await.unwrap(),
            "{label}"
        );
        assert!(
            !cache.set_if_absent(&lock, "you", None).await.unwrap(),
            "{label}"
        );
        assert!(
            !cache.delete_if_equals(&lock, "you").await.unwrap(),
            "{label}"
        );
        assert!(
            cache.delete_if_equals(&lock, "me").await.unwrap(),
            "{label}"
        );
        assert!(
            cache.set_if_absent(&lock, "you", None).await.unwrap(),
            "{label}"
        );

        // Counters, with the TTL applied on creation only.
        let counter = site.key("count");
        assert_eq!(
            cache.incr_by(&counter, 5, None).await.unwrap(),
            5,
            "{label}"
        );
        assert_eq!(
            cache.incr_by(&counter, -7, None).await.unwrap(),
            -2,
            "{label}"
        );
        let raw = cache.store().get(counter.as_str()).await.unwrap().unwrap();
        assert_eq!(
            &raw[..],
            b"-2",
            "{label}: a counter reads as its decimal text"
        );
        assert!(
            matches!(
                cache.get::<i64>(&counter).await,
                Err(CacheError::Decode {
                    source: CodecError::UnknownCompression { code: 5 },
                    ..
                })
            ),
            "{label}: a counter is not a codec value"
        );

        // Hash counters (analytics buckets).
        let bucket = site.key("hits:2026-11-23T12");
        for (field, delta) in [("/", 3), ("/app.js", 1), ("/", 2)] {
            cache
                .hash_incr_by(&bucket, field, delta, None)
                .await
                .unwrap();
        }
        assert_eq!(
            cache.hash_get_all(&bucket).await.unwrap(),
            BTreeMap::from([("/".into(), 5), ("/app.js".into(), 1)]),
            "{label}"
        );
        assert!(
            cache
                .hash_get_all(&site.key("nothing"))
                .await
                .unwrap()
                .is_empty(),
            "{label}"
        );

        // Sorted sets (job queues, time indexes).
        let queue = site.key("queue");
        assert!(cache.sorted_add(&queue, "b", 2.0).await.unwrap(), "{label}");
        assert!(cache.sorted_add(&queue, "a", 1.0).await.unwrap(), "{label}");
        assert!(cache.sorted_add(&queue, "c", 2.0).await.unwrap(), "{label}");
        assert!(
            !cache.sorted_add(&queue, "a", 0.5).await.unwrap(),
            "{label}: re-score"
        );
        assert_eq!(
            cache
                .sorted_range_by_score(&queue, f64::NEG_INFINITY, f64::INFINITY, 10)
                .await
                .unwrap(),
            vec![("a".into(), 0.5), ("b".into(), 2.0), ("c".into(), 2.0)],
            "{label}"
        );
        assert_eq!(
            cache
                .sorted_range_by_score(&queue, 1.0, 2.0, 1)
                .await
                .unwrap(),
            vec![("b".into(), 2.0)],
            "{label}"
        );
        assert!(cache.sorted_remove(&queue, "a").await.unwrap(), "{label}");
        assert!(!cache.sorted_remove(&queue, "a").await.unwrap(), "{label}");

        // Operations on a key of another kind are typed errors.
        assert!(
            matches!(
                cache
                    .hash_incr_by(&key_of_value(&cache).await, "f", 1, None)
                    .await,
                Err(CacheError::WrongType { .. })
            ),
            "{label}"
        );
        assert!(
            matches!(
                cache.get::<u32>(&bucket).await,
                Err(CacheError::WrongType { .. })
            ),
            "{label}"
        );
        assert!(
            matches!(
                cache.incr_by(&key_of_value(&cache).await, 1, None).await,
                Err(CacheError::WrongType { .. })
            ),
            "{label}"
        );
        assert!(
            matches!(
                cache.sorted_add(&bucket, "x", 1.0).await,
                Err(CacheError::WrongType { .. })
            ),
            "{label}"
        );
        assert_eq!(cache.health().await, Health::Ready, "{label}");
        cleanup(&cache).await;
    }
}

async fn key_of_value(cache: &Cache) -> CacheKey {
    let key = cache.site("www").key("a-value");
    cache.set(&key, "text", None).await.unwrap();
    key
}

async fn pattern_deletes_match_the_same_keys_in_memory_and_in_redis(backend: &Backend) {
    let names = [
        "job:1",
        "job:2",
        "job:10",
        "job:1:batch:1",
        "jobs",
        "manifest",
        "lock:deploy",
        "a*b",
        "a-b",
        "x[1]",
    ];
    let patterns = [
        "job:*",
        "job:?",
        "job:1*",
        "job:[12]",
        "job:[^1]*",
        "*",
        "a\\*b",
        "a?b",
        "x\\[1]",
        "nothing*",
    ];
    for glob in patterns {
        let mut deleted_by = Vec::new();
        for (label, cache) in compositions(backend, "patterns").await {
            let www = cache.site("www");
            let docs = cache.site("docs");
            for name in names {
                cache.set(&www.key(name), &1u8, None).await.unwrap();
                cache.set(&docs.key(name), &1u8, None).await.unwrap();
            }
            let on_redis = label.starts_with("redis");
            if on_redis {
                assert!(!cache.metrics().is_degraded(), "{label}");
                assert!(
                    names.iter().all(|name| backend.exists(&www.key(name))),
                    "{label}"
                );
            }
            let report = cache.delete_pattern(&www.pattern(glob)).await.unwrap();
            let mut left = Vec::new();
            for name in names {
                let kept = cache.get::<u8>(&www.key(name)).await.unwrap().is_some();
                if kept {
                    left.push(name);
                }
                if on_redis {
                    // The server itself lost exactly what the pattern matched.
                    assert_eq!(
                        backend.exists(&www.key(name)),
                        kept,
                        "{label} {glob} {name}"
                    );
                    assert!(backend.exists(&docs.key(name)), "{label} {glob} {name}");
                }
                assert_eq!(
                    cache.get::<u8>(&docs.key(name)).await.unwrap(),
                    Some(1),
                    "{label}: {glob} must not touch another site"
                );
            }
            assert_eq!(
                report.deleted as usize,
                names.len() - left.len(),
                "{label} {glob}"
            );
            deleted_by.push((label, left));
            cleanup(&cache).await;
        }
        let (first_label, first) = &deleted_by[0];
        for (label, left) in &deleted_by[1..] {
            assert_eq!(left, first, "{glob}: {label} vs {first_label}");
        }
    }
}

/// On a stopped clock the GCRA arithmetic is exact: 2 at once, then one per 500 ms, and
/// a quiet spell refills the burst but never more.
#[tokio::test]
async fn memory_throttle_is_exact_on_tokio_time() {
    tokio::time::pause();
    let cache = Cache::memory();
    let key = cache.keys().global().key("ratelimit:key:k");
    let limit = RateLimit::per_second(2, 2);
    assert_eq!(limit.tolerance(), Duration::from_secs(1));
    assert_eq!(
        cache.throttle(&key, limit).await.unwrap(),
        Admission::Admitted
    );
    assert_eq!(
        cache.throttle(&key, limit).await.unwrap(),
        Admission::Admitted
    );
    assert_eq!(
        cache.throttle(&key, limit).await.unwrap(),
        Admission::Limited {
            retry_after: Duration::from_millis(500)
        }
    );
    tokio::time::advance(Duration::from_millis(200)).await;
    assert_eq!(
        cache.throttle(&key, limit).await.unwrap(),
        Admission::Limited {
            retry_after: Duration::from_millis(300)
        }
    );
    tokio::time::advance(Duration::from_millis(300)).await;
    assert_eq!(
        cache.throttle(&key, limit).await.unwrap(),
        Admission::Admitted
    );
    // A long quiet spell: the key expired, and the burst is 2 again, not more.
    tokio::time::advance(Duration::from_secs(60)).await;
    assert_eq!(cache.get::<String>(&key).await.unwrap(), None, "expired");
    for _ in 0..2 {
        assert_eq!(
            cache.throttle(&key, limit).await.unwrap(),
            Admission::Admitted
        );
    }
    assert!(matches!(
        cache.throttle(&key, limit).await.unwrap(),
        Admission::Limited { .. }
    ));
}

#[tokio::test]
async fn memory_values_and_counters_expire_on_tokio_time() {
    tokio::time::pause();
    let cache = Cache::memory();
    let site = cache.site("www");
    let (value, counter, bucket) = (site.key("v"), site.key("c"), site.key("h"));
    cache
        .set(&value, "x", Some(Duration::from_secs(10)))
        .await
        .unwrap();
    cache
        .incr_by(&counter, 1, Some(Duration::from_secs(10)))
        .await
        .unwrap();
    cache
        .hash_incr_by(&bucket, "f", 1, Some(Duration::from_secs(10)))
        .await
        .unwrap();
    tokio::time::advance(Duration::from_secs(9)).await;
    assert_eq!(
        cache.ttl(&value).await.unwrap(),
        Some(Duration::from_secs(1))
    );
    assert_eq!(cache.ttl(&site.key("missing")).await.unwrap(), None);
    // A later increment does not push the window's expiry back.
    cache
        .incr_by(&counter, 1, Some(Duration::from_secs(60)))
        .await
        .unwrap();
    assert_eq!(
        cache.get::<String>(&value).await.unwrap().as_deref(),
        Some("x")
    );
    assert!(
        cache
            .expire(&bucket, Duration::from_secs(30))
            .await
            .unwrap()
    );
    tokio::time::advance(Duration::from_secs(2)).await;
    assert_eq!(cache.get::<String>(&value).await.unwrap(), None);
    assert_eq!(
        cache.incr_by(&counter, 1, None).await.unwrap(),
        1,
        "a new window"
    );
    assert_eq!(
        cache.hash_get_all(&bucket).await.unwrap().len(),
        1,
        "expiry moved"
    );
    assert!(
        cache.set_if_absent(&value, "y", None).await.unwrap(),
        "an expired key is absent"
    );
}

async fn redis_values_and_counters_expire(backend: &Backend) {
    let cache = Cache::from_config(&backend.config("ttl")).unwrap();
    let site = cache.site("www");
    let (value, keep, counter) = (site.key("v"), site.key("keep"), site.key("c"));
    let ttl = Some(Duration::from_millis(400));
    cache.set(&value, "x", ttl).await.unwrap();
    cache.set(&keep, "y", None).await.unwrap();
    cache.incr_by(&counter, 1, ttl).await.unwrap();
    cache
        .incr_by(&counter, 1, Some(Duration::from_secs(60)))
        .await
        .unwrap();
    let entries = vec![(site.key("m1"), 1u8), (site.key("m2"), 2u8)];
    cache.set_many(&entries, ttl).await.unwrap();
    assert_eq!(
        cache.get::<String>(&value).await.unwrap().as_deref(),
        Some("x")
    );
    // The TTLs are Redis's own (not a memory fallback's).
    assert!(!cache.metrics().is_degraded());
    let pttl = |key: &CacheKey| -> i64 { backend.query(redis::cmd("PTTL").arg(key.as_str())) };
    for key in [&value, &counter, &entries[0].0, &entries[1].0] {
        let left = pttl(key);
        assert!((1..=400).contains(&left), "{key}: PTTL {left}");
    }
    assert_eq!(pttl(&keep), -1, "no TTL");
    // `ttl` reads the same: what is left, or None without an expiry or a key.
    let left = cache.ttl(&value).await.unwrap().unwrap();
    assert!(
        left > Duration::ZERO && left <= Duration::from_millis(400),
        "{left:?}"
    );
    assert_eq!(cache.ttl(&keep).await.unwrap(), None);
    assert_eq!(cache.ttl(&site.key("missing")).await.unwrap(), None);
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert_eq!(cache.ttl(&value).await.unwrap(), None, "expired");
    assert!(!backend.exists(&value) && !backend.exists(&counter) && backend.exists(&keep));
    assert_eq!(cache.get::<String>(&value).await.unwrap(), None);
    assert_eq!(
        cache.get::<String>(&keep).await.unwrap().as_deref(),
        Some("y")
    );
    assert_eq!(
        cache
            .get_many::<u8>(&[site.key("m1"), site.key("m2")])
            .await
            .unwrap(),
        vec![None, None]
    );
    assert_eq!(
        cache.incr_by(&counter, 1, None).await.unwrap(),
        1,
        "the first increment's TTL held; the second did not extend it"
    );
    cleanup(&cache).await;
}

#[tokio::test]
async fn get_many_and_set_many_of_1000_keys_take_one_round_trip() {
    // Every reply reaches the client 250 ms after Redis sent it: N sequential round trips
    // cost at least N × 250 ms, a pipeline costs 250 ms once.
    let delay = Duration::from_millis(250);
    let proxy = DelayProxy::start("127.0.0.1:6379", delay).await;
    let config = CacheConfig {
        command_timeout_ms: 30_000,
        ..redis_config(&proxy.url(), "roundtrip")
    };
    let cache = Cache::from_config(&config).unwrap();
    cache.store().ping().await.unwrap(); // connect (the handshake costs round trips too)

    // The proxy does delay every round trip: three sequential reads take three delays.
    let started = Instant::now();
    for i in 0..3 {
        cache
            .get::<u32>(&cache.site("www").key(&format!("probe:{i}")))
            .await
            .unwrap();
    }
    assert!(started.elapsed() >= delay * 3, "{:?}", started.elapsed());

    let site = cache.site("www");
    let entries: Vec<(CacheKey, String)> = (0..1000)
        .map(|i| (site.key(&format!("k:{i}")), format!("value {i}")))
        .collect();
    // A per-key implementation would take 1000 × 250 ms; give up long before that.
    let limit = delay * 8;
    let started = Instant::now();
    tokio::time::timeout(limit, cache.set_many(&entries, None))
        .await
        .unwrap_or_else(|_| panic!("set_many of 1000 keys took more than {limit:?}"))
        .unwrap();
    let set_many = started.elapsed();

    let keys: Vec<CacheKey> = entries.iter().map(|(k, _)| k.clone()).collect();
    let started = Instant::now();
    let values = tokio::time::timeout(limit, cache.get_many::<String>(&keys))
        .await
        .unwrap_or_else(|_| panic!("get_many of 1000 keys took more than {limit:?}"))
        .unwrap();
    let get_many = started.elapsed();

    assert_eq!(values.len(), 1000);
    for (i, value) in values.iter().enumerate() {
        assert_eq!(value.as_deref(), Some(format!("value {i}").as_str()));
    }
    assert!(
        set_many < delay * 2,
        "set_many of 1000 keys took {set_many:?}: more than one round trip of {delay:?}"
    );
    assert!(
        get_many < delay * 2,
        "get_many of 1000 keys took {get_many:?}: more than one round trip of {delay:?}"
    );
    drop(proxy);
    let direct = Cache::from_config(&CacheConfig {
        redis_url: Some(RedisUrl::new(SHARED_REDIS)),
        ..config
    })
    .unwrap();
    cleanup(&direct).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pattern_delete_of_50000_keys_goes_in_batches_without_blocking_other_clients() {
    let config = CacheConfig {
        command_timeout_ms: 10_000,
        ..redis_config(SHARED_REDIS, "bigdelete")
    };
    let cache = Cache::from_config(&config).unwrap();
    let site = cache.site("www");
    for chunk in 0..10 {
        let entries: Vec<(CacheKey, u32)> = (0..5000)
            .map(|i| (site.key(&format!("asset:{chunk}:{i}")), i))
            .collect();
        cache.set_many(&entries, None).await.unwrap();
    }
    let other = cache.site("docs").key("survivor");
    cache.set(&other, "still here", None).await.unwrap();

    // Another client keeps reading while the delete runs, on its own connection and thread.
    let stop = Arc::new(AtomicBool::new(false));
    let probe_key = other.as_str().to_owned();
    let probe = std::thread::spawn({
        let stop = Arc::clone(&stop);
        move || {
            let mut conn = raw_connection(SHARED_REDIS);
            let mut latencies = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let started = Instant::now();
                let _: Option<Vec<u8>> =
                    redis::cmd("GET").arg(&probe_key).query(&mut conn).unwrap();
                latencies.push(started.elapsed());
            }
            latencies
        }
    });
    std::thread::sleep(Duration::from_millis(50));
    let started = Instant::now();
    let report = cache.delete_pattern(&site.all()).await.unwrap();
    let total = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let latencies = probe.join().unwrap();

    let slowest = latencies.iter().max().copied().unwrap_or_default();
    println!(
        "{report:?}; total {total:?}; the other client: {} calls, slowest {slowest:?}",
        latencies.len()
    );
    assert_eq!(report.deleted, 50_000);
    assert!(
        report.batches >= 40,
        "50,000 keys in batches of about 1,000 (SCAN's COUNT is a hint, a batch may hold a \
         few more) take about 50: {report:?}"
    );
    assert!(
        report.longest_batch * 5 < total,
        "no single batch dominates the delete: {report:?}, total {total:?}"
    );
    let bound = report.longest_batch * 2 + Duration::from_millis(50);
    assert!(
        latencies.len() >= 10,
        "the other client got {} answers during the delete",
        latencies.len()
    );
    assert!(
        slowest <= bound,
        "another client waited {slowest:?}, more than a batch allows ({bound:?}); {report:?}"
    );
    assert_eq!(
        cache.get::<String>(&other).await.unwrap().as_deref(),
        Some("still here")
    );
    let left: Vec<String> = redis::cmd("KEYS")
        .arg(site.all().as_str())
        .query(&mut raw_connection(SHARED_REDIS))
        .unwrap();
    assert!(left.is_empty(), "{} keys left", left.len());
    cleanup(&cache).await;
}

async fn a_corrupted_stored_value_is_a_typed_error_naming_the_key(backend: &Backend) {
    let cache = Cache::from_config(&backend.config("corrupt")).unwrap();
    let key = cache.site("www").manifest();
    cache.set(&key, &manifest(100), None).await.unwrap();

    // Flip bytes inside the compressed payload, as a bad disk or a foreign writer would.
    let mut stored: Vec<u8> = backend.query(redis::cmd("GET").arg(key.as_str()));
    assert_eq!(stored[0], 0x21, "msgpack + zstd header");
    let middle = stored.len() / 2;
    for byte in &mut stored[middle..middle + 16] {
        *byte ^= 0x5a;
    }
    let _: () = backend.query(redis::cmd("SET").arg(key.as_str()).arg(&stored));
    match cache.get::<Manifest>(&key).await {
        Err(CacheError::Decode { key: named, source }) => {
            assert_eq!(named, key.as_str());
            assert!(
                matches!(
                    source,
                    CodecError::Decompress { .. } | CodecError::Deserialize { .. }
                ),
                "{source}"
            );
        }
        other => panic!("expected a decode error, got {other:?}"),
    }

    // A value from another writer without our header, and one from a future version.
    for (raw, expected) in [
        (b"{\"assets\":{}}".to_vec(), "header version 3"),
        (vec![0x41, 0x90], "header version 2"),
        (Vec::new(), "empty"),
    ] {
        let _: () = backend.query(redis::cmd("SET").arg(key.as_str()).arg(&raw));
        let err = cache.get::<Manifest>(&key).await.unwrap_err();
        assert!(matches!(err, CacheError::Decode { .. }), "{err}");
        assert!(err.to_string().contains(expected), "{err}");
    }
    assert_eq!(cache.stats().decode_errors, 4);
    cleanup(&cache).await;
}

async fn unique_prefixes_isolate_caches_that_share_one_redis(backend: &Backend) {
    let a = Cache::from_config(&backend.config("iso")).unwrap();
    let b = Cache::from_config(&backend.config("iso")).unwrap();
    let key_a = a.site("www").manifest();
    let key_b = b.site("www").manifest();
    assert_ne!(key_a, key_b);
    a.set(&key_a, "a", None).await.unwrap();
    b.set(&key_b, "b", None).await.unwrap();
    assert!(
        backend.exists(&key_a) && backend.exists(&key_b),
        "both are stored in Redis"
    );
    a.delete_pattern(&a.keys().all()).await.unwrap();
    assert!(
        !backend.exists(&key_a) && backend.exists(&key_b),
        "only a's prefix was deleted"
    );
    assert_eq!(b.get::<String>(&key_b).await.unwrap().as_deref(), Some("b"));
    let report = b
        .delete_pattern(&KeyPattern::raw(format!("{}:*", b.keys().prefix())))
        .await
        .unwrap();
    assert_eq!(report.deleted, 1);
}

fn retry_after(admission: Admission, label: &str) -> Duration {
    match admission {
        Admission::Limited { retry_after } => retry_after,
        Admission::Admitted => panic!("{label}: admitted over the limit"),
    }
}

/// GCRA: `burst` requests at once, then one per interval; a refused request costs nothing.
async fn throttle_admits_a_burst_then_one_request_per_interval(backend: &Backend) {
    // One per 250 ms, 3 at once.
    let limit = RateLimit {
        interval: Duration::from_millis(250),
        burst: 3,
    };
    assert_eq!(
        RateLimit::per_second(4, 3),
        RateLimit { burst: 4, ..limit },
        "a burst is at least one second's worth"
    );
    for (label, cache) in compositions(backend, "throttle").await {
        let key = cache.keys().global().key("ratelimit:key:k1");
        for i in 0..3 {
            assert_eq!(
                cache.throttle(&key, limit).await.unwrap(),
                Admission::Admitted,
                "{label}: request {i} of the burst"
            );
        }
        let first = retry_after(cache.throttle(&key, limit).await.unwrap(), label);
        assert!(
            first > Duration::from_millis(150) && first <= Duration::from_millis(250),
            "{label}: the 4th waits about one interval, not {first:?}"
        );
        if label != "memory" {
            assert!(backend.exists(&key), "{label}: the state is kept in Redis");
        }
        // Being refused does not push the next admission further out.
        let second = retry_after(cache.throttle(&key, limit).await.unwrap(), label);
        assert!(second <= first, "{label}: {second:?} after {first:?}");
        tokio::time::sleep(second).await;
        assert_eq!(
            cache.throttle(&key, limit).await.unwrap(),
            Admission::Admitted,
            "{label}: one more after waiting"
        );
        retry_after(cache.throttle(&key, limit).await.unwrap(), label);
        // Another key has its own budget.
        let other = cache.keys().global().key("ratelimit:key:k2");
        assert_eq!(
            cache.throttle(&other, limit).await.unwrap(),
            Admission::Admitted,
            "{label}"
        );
        cleanup(&cache).await;
    }
}

/// Two caches on one Redis and prefix (two replicas) draw on one budget.
async fn a_throttle_budget_is_shared_by_every_cache_on_one_redis(backend: &Backend) {
    let config = backend.config("throttle-shared");
    let a = Cache::from_config(&config).unwrap();
    let b = Cache::from_config(&config).unwrap();
    let limit = RateLimit::per_second(1, 4);
    let key = a.keys().global().key("ratelimit:key:shared");
    let mut admitted = 0;
    for i in 0..8 {
        let cache = if i % 2 == 0 { &a } else { &b };
        if cache.throttle(&key, limit).await.unwrap() == Admission::Admitted {
            admitted += 1;
        }
    }
    assert_eq!(admitted, 4, "{}: one budget of 4 for both", backend.label);
    assert_eq!(a.health().await, Health::Ready, "a ran on Redis");
    assert_eq!(b.health().await, Health::Ready, "b ran on Redis");
    assert!(backend.exists(&key));
    cleanup(&a).await;
}

/// Keys of 60 sites land in 60 slots: on a cluster every node holds some, and one pattern
/// delete over the whole keyspace finds them on every node.
async fn keys_of_many_sites_are_spread_and_deleted_by_one_pattern(backend: &Backend) {
    let cache = Cache::from_config(&backend.config("spread")).unwrap();
    let before = if backend.is_private() {
        backend.keys_per_node()
    } else {
        Vec::new()
    };
    let mut keys = Vec::new();
    for site in 0..60 {
        let site = cache.site(&format!("site-{site}"));
        let entries: Vec<(CacheKey, u32)> =
            (0..5).map(|i| (site.key(&format!("k{i}")), i)).collect();
        cache.set_many(&entries, None).await.unwrap();
        cache.incr_by(&site.key("hits"), 1, None).await.unwrap();
        keys.extend(entries.into_iter().map(|(key, _)| key));
    }
    assert!(!cache.metrics().is_degraded(), "{}", backend.label);
    assert!(
        keys.iter().all(|key| backend.exists(key)),
        "{}",
        backend.label
    );
    let values = cache.get_many::<u32>(&keys).await.unwrap();
    assert_eq!(
        values,
        (0..60).flat_map(|_| (0..5).map(Some)).collect::<Vec<_>>(),
        "{}: one MGET over 60 slots",
        backend.label
    );
    // Node key counts are this test's alone only on private servers.
    let private = backend.is_private();
    if private {
        let added: Vec<i64> = backend
            .keys_per_node()
            .iter()
            .zip(&before)
            .map(|(after, before)| after - before)
            .collect();
        assert_eq!(
            added.iter().sum::<i64>(),
            360,
            "{}: {added:?}",
            backend.label
        );
        assert!(
            added.iter().all(|&n| n > 0),
            "{}: every node holds some sites' keys: {added:?}",
            backend.label
        );
    }
    let report = cache.delete_pattern(&cache.keys().all()).await.unwrap();
    assert_eq!(report.deleted, 360, "{}: {report:?}", backend.label);
    assert!(
        keys.iter().all(|key| !backend.exists(key)),
        "{}",
        backend.label
    );
    if private {
        assert_eq!(backend.keys_per_node(), before, "{}", backend.label);
    }
}

#[tokio::test]
async fn redis_unreachable_from_the_start_serves_from_memory_and_reports_degraded() {
    let port = common::redis::free_port(); // nothing listens there
    let config = CacheConfig {
        command_timeout_ms: 300,
        reconnect_interval_ms: 100,
        ..redis_config(&format!("redis://127.0.0.1:{port}"), "down")
    };
    let cache = Cache::from_config(&config).unwrap();
    let key = cache.site("www").manifest();
    for i in 0..20u32 {
        let started = Instant::now();
        cache.set(&key, &i, None).await.unwrap();
        assert_eq!(cache.get::<u32>(&key).await.unwrap(), Some(i));
        assert!(started.elapsed() < Duration::from_secs(2));
    }
    match cache.health().await {
        Health::Degraded { reason, .. } => {
            assert!(reason.contains(&format!("127.0.0.1:{port}")), "{reason}")
        }
        Health::Ready => panic!("nothing listens on {port}"),
    }
    let stats = cache.stats();
    assert!(stats.degraded);
    assert_eq!(
        stats.outages, 1,
        "one outage, however many calls: {stats:?}"
    );
    assert_eq!(stats.fallbacks, 40);
    assert_eq!(stats.errors, 0, "no call failed: {stats:?}");
}

#[tokio::test]
async fn api_keys_survive_a_redis_that_lost_its_data_and_revocations_reach_the_key_file() {
    use edgeship::api_keys::{KeyStore, Scope, parse_token};
    use edgeship::home::StateHome;
    let cache = Cache::from_config(&redis_config(SHARED_REDIS, "keys")).unwrap();
    let data = tempfile::tempdir().unwrap();
    let store = KeyStore::new(&StateHome::Cache(cache.clone()), data.path());
    let created = store
        .create("ci", vec![Scope::Deploy], None, vec![])
        .await
        .unwrap();
    let (id, _) = parse_token(&created.token).unwrap();
    // It is in Redis (not only in a fallback) and in the key file.
    let record = cache.keys().global().key(&format!("apikey:{id}"));
    let mut conn = raw_connection(SHARED_REDIS);
    let exists = |conn: &mut redis::Connection| -> bool {
        redis::cmd("EXISTS")
            .arg(record.as_str())
            .query::<i64>(conn)
            .unwrap()
            == 1
    };
    assert!(exists(&mut conn), "the key is stored in Redis");
    assert!(!cache.metrics().is_degraded());
    let file = std::fs::read_to_string(data.path().join("keys.json")).unwrap();
    assert!(file.contains(id));

    // Redis restarted without persistence: everything under the prefix is gone.
    cleanup(&cache).await;
    assert!(!exists(&mut conn));
    let found = store
        .get(id)
        .await
        .unwrap()
        .expect("the key file still has it");
    assert_eq!(found, created.key);
    assert!(exists(&mut conn), "the key was put back into Redis");
    assert_eq!(store.list().await.unwrap().len(), 1);

    // A revocation made through Redis alone (another machine) reaches this machine's
    // file at the key's next use, so a later data loss cannot bring the key back.
    let mut revoked = created.key.clone();
    revoked.revoked_at = Some(1);
    cache.set(&record, &revoked, None).await.unwrap();
    assert_eq!(store.get(id).await.unwrap(), Some(revoked.clone()));
    cleanup(&cache).await;
    let after = store.get(id).await.unwrap().unwrap();
    assert!(after.revoked_at.is_some(), "the file kept the revocation");
    assert!(!store.has_usable_key().await.unwrap());
    cleanup(&cache).await;
}
