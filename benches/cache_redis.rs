//! Benchmark of the cache layer, driven by `scripts/bench redis` (which also runs
//! `redis-benchmark` on the same server and writes bench/RESULTS.md). Prints one JSON
//! object per measurement on stdout.
//!
//! ```text
//! cache_redis throughput URL [--batch 16] [--tasks 50] [--seconds 5] [--keys 100000] [--value-bytes 100]
//! cache_redis compression MANIFEST.json... [--generate 10000]
//! ```
//!
//! `throughput` measures keys per second through the whole layer (`Cache` from config:
//! codec, metrics, fallback wrapper, Redis store) with `tasks` concurrent callers each
//! issuing `set_many` / `get_many` of `batch` keys. `compression` reports the stored size
//! of real manifests in every format and compression, and encode/decode times.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use edgeship::cache::codec::{Codec, Compression, Format};
use edgeship::cache::{Cache, CacheKey};
use edgeship::config::{CacheConfig, RedisUrl};
use edgeship::pipeline::manifest::Manifest;
use serde_json::json;

type BenchResult<T = ()> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

fn main() -> BenchResult {
    // `cargo bench` appends `--bench`; ignore it.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    match args.first().map(String::as_str) {
        Some("throughput") => throughput(&args[1..]),
        Some("compression") => compression(&args[1..]),
        // Run by a test harness (`--list`, filters) or without arguments: nothing to do.
        _ => {
            eprintln!(
                "usage: cache_redis throughput URL [options] | compression MANIFEST... [--generate N]"
            );
            Ok(())
        }
    }
}

fn option(args: &[String], name: &str, default: u64) -> BenchResult<u64> {
    match args.iter().position(|a| a == name) {
        Some(i) => Ok(args
            .get(i + 1)
            .ok_or(format!("{name} needs a value"))?
            .parse()?),
        None => Ok(default),
    }
}

fn throughput(args: &[String]) -> BenchResult {
    let url = args.first().ok_or("throughput needs a Redis URL")?.clone();
    let batch = option(args, "--batch", 16)? as usize;
    let tasks = option(args, "--tasks", 50)? as usize;
    let seconds = option(args, "--seconds", 5)?;
    let keys = option(args, "--keys", 100_000)? as usize;
    let value_bytes = option(args, "--value-bytes", 100)? as usize;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let config = CacheConfig {
            redis_url: Some(RedisUrl::new(url)),
            prefix: "bench".into(),
            command_timeout_ms: 5000,
            ..CacheConfig::default()
        };
        let cache = Cache::from_config(&config)?;
        let site = cache.site("www");
        let all: Arc<Vec<CacheKey>> = Arc::new(
            (0..keys)
                .map(|i| site.key(&format!("key:{i:08}")))
                .collect(),
        );
        // The value a caller stores: a string of `value_bytes` (stored as header + msgpack
        // str, i.e. value_bytes + 3 bytes, below the compression threshold).
        let value = "v".repeat(value_bytes);
        let stored_len = cache.codec().encode(&value)?.bytes.len();
        for chunk in all.chunks(1000) {
            let entries: Vec<(CacheKey, &String)> =
                chunk.iter().map(|k| (k.clone(), &value)).collect();
            cache.set_many(&entries, None).await?;
        }
        for op in ["set_many", "get_many"] {
            let done = Arc::new(AtomicU64::new(0));
            let deadline = Instant::now() + Duration::from_secs(seconds);
            let started = Instant::now();
            let mut handles = Vec::new();
            for task in 0..tasks {
                let (cache, all, done, value) = (
                    cache.clone(),
                    Arc::clone(&all),
                    Arc::clone(&done),
                    value.clone(),
                );
                handles.push(tokio::spawn(async move {
                    let mut next = task * batch * 7919 % all.len();
                    while Instant::now() < deadline {
                        let end = (next + batch).min(all.len());
                        let keys = &all[next..end];
                        if op == "set_many" {
                            let entries: Vec<(CacheKey, &String)> =
                                keys.iter().map(|k| (k.clone(), &value)).collect();
                            cache.set_many(&entries, None).await?;
                        } else {
                            let values = cache.get_many::<String>(keys).await?;
                            if values.iter().any(Option::is_none) {
                                return Err("a preloaded key is missing".into());
                            }
                        }
                        done.fetch_add(keys.len() as u64, Ordering::Relaxed);
                        next = if end == all.len() { 0 } else { end };
                    }
                    Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
                }));
            }
            for handle in handles {
                handle.await??;
            }
            let elapsed = started.elapsed().as_secs_f64();
            let count = done.load(Ordering::Relaxed);
            println!(
                "{}",
                json!({
                    "bench": "throughput",
                    "op": op,
                    "batch": batch,
                    "tasks": tasks,
                    "keys": count,
                    "seconds": elapsed,
                    "keys_per_second": count as f64 / elapsed,
                    "stored_value_bytes": stored_len,
                })
            );
        }
        let stats = cache.stats();
        if stats.errors > 0 || stats.fallbacks > 0 {
            return Err(format!("the layer reported errors or fallbacks: {stats:?}").into());
        }
        cache.delete_pattern(&cache.keys().all()).await?;
        Ok(())
    })
}

fn compression(args: &[String]) -> BenchResult {
    let generate = option(args, "--generate", 0)? as usize;
    let mut manifests: Vec<(String, Manifest)> = Vec::new();
    let mut skip = false;
    for arg in args {
        if skip {
            skip = false;
            continue;
        }
        if arg == "--generate" {
            skip = true;
            continue;
        }
        let path = PathBuf::from(arg);
        let manifest = Manifest::from_json(&std::fs::read(&path)?)?;
        manifests.push((path.display().to_string(), manifest));
    }
    if generate > 0 {
        manifests.push((
            format!("generated, {generate} entries"),
            generated_manifest(generate)?,
        ));
    }
    for (name, manifest) in manifests {
        let json_on_disk = manifest.to_json().len();
        for (format, compression) in [
            (Format::MessagePack, Compression::Zstd),
            (Format::MessagePack, Compression::Gzip),
            (Format::MessagePack, Compression::None),
            (Format::Json, Compression::Zstd),
            (Format::Json, Compression::Gzip),
            (Format::Json, Compression::None),
        ] {
            let codec = Codec::new(format, compression, 1024);
            let rounds = 20;
            let started = Instant::now();
            let mut encoded = codec.encode(&manifest)?;
            for _ in 1..rounds {
                encoded = codec.encode(&manifest)?;
            }
            let encode_us = started.elapsed().as_secs_f64() * 1e6 / f64::from(rounds);
            let started = Instant::now();
            for _ in 0..rounds {
                let back: Manifest = codec.decode(&encoded.bytes)?;
                if back.assets.len() != manifest.assets.len() {
                    return Err("the manifest did not round-trip".into());
                }
            }
            let decode_us = started.elapsed().as_secs_f64() * 1e6 / f64::from(rounds);
            println!(
                "{}",
                json!({
                    "bench": "compression",
                    "manifest": name,
                    "entries": manifest.assets.len(),
                    "json_on_disk": json_on_disk,
                    "format": format.name(),
                    "compression": compression.name(),
                    "serialized": encoded.plain_len,
                    "stored": encoded.bytes.len(),
                    "encode_us": encode_us,
                    "decode_us": decode_us,
                })
            );
        }
    }
    Ok(())
}

/// A manifest shaped like a large real site: hashed asset names under a few directories,
/// pages, images and fonts, with the headers and variants `edgeship build` records.
fn generated_manifest(entries: usize) -> BenchResult<Manifest> {
    let mut manifest = Manifest::default();
    let kinds = [
        (
            "assets/js",
            "js",
            "text/javascript; charset=utf-8",
            true,
            true,
        ),
        ("assets/css", "css", "text/css; charset=utf-8", true, true),
        ("images", "webp", "image/webp", true, false),
        ("fonts", "woff2", "font/woff2", true, false),
        ("docs", "html", "text/html; charset=utf-8", false, true),
        ("blog", "html", "text/html; charset=utf-8", false, true),
        ("data", "json", "application/json", false, true),
    ];
    for i in 0..entries {
        let (dir, ext, content_type, fingerprinted, compressible) = kinds[i % kinds.len()];
        let hash = blake3::hash(format!("generated asset {i}").as_bytes())
            .to_hex()
            .to_string();
        let size = 500 + (i * 7919) % 200_000;
        let path = if fingerprinted {
            format!("{dir}/section-{}/file-{i}.{}.{ext}", i % 37, &hash[..8])
        } else {
            format!("{dir}/section-{}/page-{i}.{ext}", i % 37)
        };
        let cache_control = if fingerprinted {
            "public, max-age=31536000, immutable"
        } else if ext == "html" {
            "public, max-age=0, must-revalidate"
        } else {
            "public, max-age=300"
        };
        let variants = if compressible {
            json!({ "br": size / 4, "gzip": size / 3, "zstd": size * 3 / 10 })
        } else {
            json!({})
        };
        let entry = serde_json::from_value(json!({
            "hash": hash,
            "size": size,
            "source_size": size + size / 3,
            "content_type": content_type,
            "cache_control": cache_control,
            "variants": variants,
        }))?;
        manifest.assets.insert(path, entry);
    }
    Ok(manifest)
}
