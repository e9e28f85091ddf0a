//! CDN access logs through `edgeship logs ingest` into Redis: generated CloudFront,
//! Logpush and Front Door logs with known totals (reordered and extra fields, gzip
//! members, a member cut off, garbage lines) give exactly the expected aggregates, and
//! the same file is never counted twice.

mod common;

use std::io::Write;

use common::redis::{SHARED_REDIS, raw_connection, redis_config, unique_prefix};
use common::{Sandbox, fixture, stderr};
use edgeship::analytics::logs;
use edgeship::cache::Cache;
use serde_json::{Value, json};

/// One generated request and what it must count as.
struct Request {
    time: u64,
    path: &'static str,
    status: u16,
    /// Body bytes (the representation sent).
    body: u64,
    /// Bytes with headers, as logged.
    bytes: u64,
    /// hit, miss or other.
    cache: &'static str,
    /// The encoding edgeship must infer.
    encoding: &'static str,
}

fn gzip(text: &str) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(text.as_bytes()).unwrap();
    encoder.finish().unwrap()
}

fn with_redis(sandbox: &Sandbox, prefix: &str, args: &[&str]) -> std::process::Output {
    sandbox
        .command()
        .env("EDGESHIP_CACHE__REDIS_URL", SHARED_REDIS)
        .env("EDGESHIP_CACHE__PREFIX", prefix)
        .args(args)
        .output()
        .unwrap()
}

/// The deployed sizes of a file: identity, br, gzip.
fn sizes(manifest: &Value, path: &str) -> (u64, u64, u64) {
    let entry = &manifest["assets"][path];
    let get = |v: &Value| v.as_u64().unwrap_or_else(|| panic!("{path}: {entry}"));
    (
        get(&entry["size"]),
        get(&entry["variants"]["br"]),
        get(&entry["variants"]["gzip"]),
    )
}

const HOUR: u64 = 1_796_191_200; // 2026-12-02T06:00:00Z

fn cloudfront_line(r: &Request) -> String {
    let seconds = r.time % 86_400;
    let result = match r.cache {
        "hit" => "Hit",
        "miss" => "Miss",
        _ => "Error",
    };
    // Reordered fields, and one CloudFront added after our code was written.
    format!(
        "{}\t2026-12-02\tFRA56-P1\t{}\t/{}\t{}\t{}\t{}\ttext/plain\tx-future",
        format_args!(
            "{:02}:{:02}:{:02}",
            seconds / 3600,
            seconds / 60 % 60,
            seconds % 60
        ),
        r.bytes,
        r.path,
        r.status,
        result,
        if r.status == 200 {
            r.body.to_string()
        } else {
            "-".into()
        },
    )
}

#[test]
fn generated_logs_of_every_cdn_give_exactly_their_totals_and_are_never_counted_twice() {
    let sandbox = Sandbox::new();
    let deployed = sandbox.run(&["deploy", fixture("site").to_str().unwrap()]);
    assert_eq!(deployed.status.code(), Some(0), "{}", stderr(&deployed));
    let manifest: Value = serde_json::from_slice(
        &std::fs::read(sandbox.path("data/sites/default/.edgeship/manifest")).unwrap(),
    )
    .unwrap();
    let (app, app_br, app_gzip) = sizes(&manifest, "assets/app.3f9c2a1b.js");
    let (page, _, page_gzip) = sizes(&manifest, "blog/index.html");

    let requests = [
        Request {
            time: HOUR + 1,
            path: "assets/app.3f9c2a1b.js",
            status: 200,
            body: app_br,
            bytes: app_br + 310,
            cache: "hit",
            encoding: "br",
        },
        Request {
            time: HOUR + 2,
            path: "assets/app.3f9c2a1b.js",
            status: 200,
            body: app_gzip,
            bytes: app_gzip + 305,
            cache: "miss",
            encoding: "gzip",
        },
        Request {
            time: HOUR + 3,
            path: "blog/",
            status: 200,
            body: page,
            bytes: page + 290,
            cache: "hit",
            encoding: "identity",
        },
        Request {
            time: HOUR + 3600 + 5,
            path: "blog/index.html",
            status: 200,
            body: page_gzip,
            bytes: page_gzip + 300,
            cache: "hit",
            encoding: "gzip",
        },
        Request {
            time: HOUR + 3600 + 9,
            path: "missing.png",
            status: 404,
            body: 0,
            bytes: 412,
            cache: "other",
            encoding: "unknown",
        },
        Request {
            time: HOUR + 3600 + 10,
            path: "assets/app.3f9c2a1b.js",
            status: 200,
            body: app_br,
            bytes: app_br + 310,
            cache: "miss",
            encoding: "br",
        },
    ];

    // CloudFront: three gzip members, the last cut off inside its trailer, and garbage.
    let fields = "#Version: 1.0\n#Fields: time date x-edge-location sc-bytes cs-uri-stem sc-status x-edge-result-type sc-content-len sc-content-type x-future-field\n";
    let lines: Vec<String> = requests.iter().map(cloudfront_line).collect();
    let mut cloudfront = gzip(&format!(
        "{fields}{}\n{}\nthis is not a log line\n",
        lines[0], lines[1]
    ));
    cloudfront.extend(gzip(&format!(
        "{}\n{}\n\u{1}\u{2}garbage\twith\ttabs\n{}\n",
        lines[2], lines[3], lines[5]
    )));
    let mut last = gzip(&format!("{}\n", lines[4]));
    last.truncate(last.len() - 4);
    cloudfront.extend(last);
    std::fs::write(sandbox.path("cloudfront.gz"), &cloudfront).unwrap();

    // Logpush: NDJSON with nanosecond timestamps (Logpush's default), gzip'd.
    let logpush: String = requests
        .iter()
        .map(|r| {
            json!({
                "EdgeStartTimestamp": r.time * 1_000_000_000,
                "ClientRequestPath": format!("/{}", r.path),
                "EdgeResponseStatus": r.status,
                "EdgeResponseBytes": r.bytes,
                "EdgeResponseBodyBytes": r.body,
                "CacheCacheStatus": match r.cache { "hit" => "hit", "miss" => "expired", _ => "unknown" },
                "RayID": "8d1f2e3a4b5c6d7e",
            })
            .to_string()
                + "\n"
        })
        .collect::<String>()
        + "{\"EdgeStartTimestamp\": \n";
    std::fs::write(sandbox.path("logpush.log.gz"), gzip(&logpush)).unwrap();

    // Front Door: a batch of records and single records, with a health-probe record.
    let record = |r: &Request| {
        json!({
            "time": format!("2026-12-02T{:02}:{:02}:{:02}.123Z", r.time % 86_400 / 3600, r.time % 3600 / 60, r.time % 60),
            "category": "FrontDoorAccessLog",
            "operationName": "Microsoft.Cdn/Profiles/AccessLog/Write",
            "properties": {
                "requestUri": format!("https://www.example.com:443/{}?v=2", r.path),
                "httpStatusCode": r.status.to_string(),
                "responseBytes": r.bytes.to_string(),
                "cacheStatus": match r.cache { "hit" => "HIT", "miss" => "MISS", _ => "N/A" },
            }
        })
    };
    let mut front_door =
        json!({ "records": [record(&requests[0]), record(&requests[1])] }).to_string() + "\n";
    for r in &requests[2..] {
        front_door += &(record(r).to_string() + "\n");
    }
    front_door += &(json!({ "time": "2026-12-02T07:00:00Z", "category": "FrontDoorHealthProbeLog", "properties": {} }).to_string() + "\n");
    std::fs::write(sandbox.path("frontdoor.json"), &front_door).unwrap();

    let prefix = unique_prefix("cdn-logs");
    let output = with_redis(
        &sandbox,
        &prefix,
        &[
            "logs",
            "ingest",
            "cloudfront.gz",
            "logpush.log.gz",
            "frontdoor.json",
            "--json",
        ],
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let reports: Vec<Value> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(reports.len(), 3);

    let expect = |report: &Value, format: &str, malformed: u64| {
        assert_eq!(report["format"], format, "{report}");
        assert_eq!(report["stored"]["outcome"], "added");
        assert_eq!(report["requests"], requests.len() as u64, "{report}");
        assert_eq!(report["malformed"], malformed, "{report}");
        let totals = &report["totals"];
        let sum = |f: &dyn Fn(&Request) -> u64| requests.iter().map(f).sum::<u64>();
        assert_eq!(totals["bytes"], sum(&|r| r.bytes), "{format}");
        assert_eq!(totals["hits"], sum(&|r| u64::from(r.cache == "hit")));
        assert_eq!(totals["misses"], sum(&|r| u64::from(r.cache == "miss")));
        assert_eq!(totals["other"], 1);
        assert_eq!(
            totals["hit_bytes"],
            sum(&|r| if r.cache == "hit" { r.bytes } else { 0 })
        );
        assert_eq!(totals["requests_by_status"], json!({ "2xx": 5, "4xx": 1 }));
        for encoding in ["br", "gzip", "identity"] {
            assert_eq!(
                totals["bytes_by_encoding"][encoding],
                sum(&|r| if r.encoding == encoding { r.bytes } else { 0 }),
                "{format}: {encoding}: {totals}"
            );
        }
        // Saved: what the 200s for deployed files would have cost as identity.
        let identity = |r: &Request| match r.path {
            "missing.png" => 0,
            p if p.starts_with("blog") => page,
            _ => app,
        };
        assert_eq!(
            totals["saved_bytes"],
            sum(&|r| identity(r).saturating_sub(if r.status == 200 { r.body } else { 0 })),
            "{format}: {totals}"
        );
    };
    expect(&reports[0], "cloudfront", 2);
    assert!(
        reports[0]["truncated"].as_str().is_some(),
        "the cut-off member is reported: {}",
        reports[0]
    );
    expect(&reports[1], "logpush", 1);
    expect(&reports[2], "front_door", 1);
    assert_eq!(
        reports[2]["examples"][0]["reason"],
        "a `FrontDoorHealthProbeLog` record, not FrontDoorAccessLog"
    );

    // Stored in Redis (not a fallback), per hour: the three files, twice the first hour's.
    let config = edgeship::config::CacheConfig {
        prefix: prefix.clone(),
        ..redis_config(SHARED_REDIS, "cdn")
    };
    let cache = Cache::from_config(&config).unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let hours = runtime
        .block_on(logs::hourly(&cache, "default", HOUR, HOUR + 7200))
        .unwrap();
    assert!(!cache.metrics().is_degraded());
    let counts: Vec<(u64, u64)> = hours.iter().map(|(h, t)| (*h, t.requests)).collect();
    assert_eq!(counts, [(HOUR, 9), (HOUR + 3600, 9)]);
    let exists: i64 = redis::cmd("EXISTS")
        .arg(format!("{prefix}:{{default}}:cdn:hour:{HOUR}"))
        .query(&mut raw_connection(SHARED_REDIS))
        .unwrap();
    assert_eq!(exists, 1);
    let day = HOUR - HOUR % 86_400;
    let paths = runtime
        .block_on(logs::top_paths_of_day(&cache, "default", day))
        .unwrap();
    assert_eq!(paths["/assets/app.3f9c2a1b.js"].requests, 9);
    assert_eq!(paths["/assets/app.3f9c2a1b.js"].misses, 6);

    // `edgeship stats` (the body of GET /v1/analytics) reports them.
    let (from, to) = (HOUR.to_string(), (HOUR + 7200).to_string());
    let stats = with_redis(
        &sandbox,
        &prefix,
        &[
            "stats", "--site", "default", "--from", &from, "--to", &to, "--json",
        ],
    );
    assert_eq!(stats.status.code(), Some(0), "{}", stderr(&stats));
    let report: Value = serde_json::from_slice(&stats.stdout).unwrap();
    let cdn = &report["sites"][0]["cdn"];
    assert_eq!(cdn["in_range"]["requests"], 18, "{cdn}");
    assert_eq!(cdn["in_range"]["misses"], 6);
    assert_eq!(cdn["series"].as_array().unwrap().len(), 2);
    assert_eq!(
        cdn["top_paths_by_bytes"][0]["path"],
        "/assets/app.3f9c2a1b.js"
    );
    assert_eq!(cdn["top_paths_by_misses"][0]["misses"], 6);
    let text = with_redis(
        &sandbox,
        &prefix,
        &["stats", "--site", "default", "--from", &from, "--to", &to],
    );
    let text = String::from_utf8_lossy(&text.stdout).into_owned();
    assert!(
        text.contains("CDN, in range: 18 requests, hit ratio 60.0%"),
        "{text}"
    );

    // Breakdowns of the CDN's traffic.
    let by = |dimension: &str| -> Value {
        let output = with_redis(
            &sandbox,
            &prefix,
            &[
                "stats",
                "--site",
                "default",
                "--from",
                &from,
                "--to",
                &to,
                "--group-by",
                dimension,
                "--json",
            ],
        );
        assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
        let report: Value = serde_json::from_slice(&output.stdout).unwrap();
        assert_eq!(report["breakdown"], dimension);
        assert_eq!(
            report["group_by"], "hour",
            "series keep their default buckets"
        );
        report["sites"][0]["cdn"]["groups"].clone()
    };
    let statuses = by("cache_status");
    let requests: Vec<(&str, u64)> = statuses
        .as_array()
        .unwrap()
        .iter()
        .map(|g| (g["key"].as_str().unwrap(), g["requests"].as_u64().unwrap()))
        .collect();
    assert_eq!(requests.len(), 3, "{statuses}");
    assert!(
        requests.contains(&("hit", 9))
            && requests.contains(&("miss", 6))
            && requests.contains(&("other", 3))
    );
    let encodings = by("encoding");
    let bytes: u64 = encodings
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["bytes"].as_u64().unwrap())
        .sum();
    assert_eq!(
        bytes,
        cdn["in_range"]["bytes"].as_u64().unwrap(),
        "{encodings}"
    );
    assert_eq!(by("path")[0]["key"], "/assets/app.3f9c2a1b.js");

    // The same file again: refused, nothing added.
    let again = with_redis(&sandbox, &prefix, &["logs", "ingest", "logpush.log.gz"]);
    assert_eq!(again.status.code(), Some(3), "{}", stderr(&again));
    assert!(
        String::from_utf8_lossy(&again.stdout).contains("ingested before"),
        "{}",
        String::from_utf8_lossy(&again.stdout)
    );
    let hours = runtime
        .block_on(logs::hourly(&cache, "default", HOUR, HOUR + 7200))
        .unwrap();
    assert_eq!(hours[0].1.requests, 9);
    common::redis::delete_prefix(&prefix);
}
