//! The `/v1` API against the running app on a random port: keys, scopes, rate limits,
//! IP blocking, body limits, JSON errors, security headers, request ids, and purges.

mod common;

use std::sync::Arc;

use common::fixture;
use common::http::TestApp;
use common::redis::{SHARED_REDIS, cleanup, raw_connection, redis_config};
use edgeship::api_keys::Scope;
use edgeship::cache::Health;
use edgeship::deploy::{DeployOptions, Deployer};
use edgeship::pipeline::build::NoProgress;
use serde_json::json;

/// An app whose default (local) site holds the deployed fixtures.
async fn deployed(configure: impl FnOnce(&mut edgeship::config::Config)) -> TestApp {
    let app = TestApp::spawn_with(configure).await;
    let options = DeployOptions {
        input: fixture("site"),
        dry_run: false,
        delete: false,
        max_deletes: 256,
        concurrency: 8,
    };
    Deployer::new(app.state.sites(), "default")
        .unwrap()
        .run(&options, Arc::new(NoProgress))
        .await
        .unwrap();
    app
}

async fn key(app: &TestApp, scopes: Vec<Scope>) -> String {
    app.state
        .guard()
        .keys()
        .create("test", scopes, None, vec![])
        .await
        .unwrap()
        .token
}

#[tokio::test]
async fn no_key_is_401_wrong_scope_403_bad_key_401_and_the_right_scope_passes() {
    let app = TestApp::spawn_with(|_| {}).await;
    let none = app.call("GET", "/v1/cache/stats", &[], b"").await;
    assert_eq!(none.status, 401);
    assert_eq!(none.code(), "unauthenticated");
    assert!(
        none.header("www-authenticate")
            .unwrap()
            .starts_with("Bearer")
    );

    let deploy_only = key(&app, vec![Scope::Deploy]).await;
    let auth = format!("Bearer {deploy_only}");
    let wrong = app
        .call("GET", "/v1/cache/stats", &[("authorization", &auth)], b"")
        .await;
    assert_eq!(wrong.status, 403);
    assert!(
        wrong.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("has scopes [deploy]; this route needs one of [read]")
    );

    // The last hex digit changed (never to itself).
    let last = if deploy_only.ends_with('0') { '1' } else { '0' };
    let forged = format!("Bearer {}{last}", &deploy_only[..deploy_only.len() - 1]);
    let bad = app
        .call("GET", "/v1/cache/stats", &[("authorization", &forged)], b"")
        .await;
    assert_eq!(bad.status, 401);
    assert_eq!(bad.code(), "invalid_key");

    let reader = key(&app, vec![Scope::Read]).await;
    let ok = app
        .call(
            "GET",
            "/v1/cache/stats",
            &[("authorization", &format!("Bearer {reader}"))],
            b"",
        )
        .await;
    assert_eq!(ok.status, 200, "{}", String::from_utf8_lossy(&ok.body));

    // A revoked key stops working at once.
    let (id, _) = edgeship::api_keys::parse_token(&reader).unwrap();
    app.state.guard().keys().revoke(id).await.unwrap();
    let revoked = app
        .call(
            "GET",
            "/v1/cache/stats",
            &[("authorization", &format!("Bearer {reader}"))],
            b"",
        )
        .await;
    assert_eq!(revoked.status, 401);
    assert!(
        revoked.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("revoked")
    );
}

#[tokio::test]
async fn over_the_key_rate_is_429_with_retry_after() {
    let app = TestApp::spawn_with(|c| {
        c.server.key_rate_per_sec = 1;
        c.server.key_burst = 2;
    })
    .await;
    let statuses: Vec<u16> = {
        let mut out = Vec::new();
        for _ in 0..4 {
            out.push(app.admin("GET", "/v1/cache/stats", None).await.status);
        }
        out
    };
    assert_eq!(&statuses[..2], [200, 200], "the burst passes");
    assert_eq!(statuses[3], 429);
    let limited = app.admin("GET", "/v1/cache/stats", None).await;
    assert_eq!(limited.code(), "rate_limited");
    let retry: u64 = limited.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=2).contains(&retry), "retry after {retry}");
}

/// One API call with a key that is not valid; its status.
async fn with_a_wrong_key(app: &TestApp) -> u16 {
    let headers = [("authorization", "Bearer nope")];
    app.call("GET", "/v1/cache/stats", &headers, b"")
        .await
        .status
}

fn audit_events(app: &TestApp, event: &str) -> usize {
    let audit = std::fs::read_to_string(app.data.path().join("audit.log")).unwrap_or_default();
    audit
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|l| l["event"] == event)
        .count()
}

/// Two replicas sharing Redis: one key's budget for both, kept on the server.
#[tokio::test]
async fn with_redis_a_keys_rate_limit_holds_across_replicas() {
    let a = TestApp::spawn_with(|c| {
        c.cache = redis_config(SHARED_REDIS, "replica-rate");
        c.server.key_rate_per_sec = 1;
        c.server.key_burst = 4;
    })
    .await;
    let b = a.replica();
    let mut statuses = Vec::new();
    for app in [&a, &b, &a, &b, &a, &b] {
        statuses.push(app.admin("GET", "/v1/cache/stats", None).await.status);
    }
    assert_eq!(
        statuses,
        [200, 200, 200, 200, 429, 429],
        "a burst of 4 over both replicas, not 4 on each"
    );
    let limited = b.admin("GET", "/v1/cache/stats", None).await;
    assert_eq!(limited.code(), "rate_limited");
    let retry: u64 = limited.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=2).contains(&retry), "retry after {retry}");
    // It ran on Redis, not on either replica's memory fallback.
    for app in [&a, &b] {
        assert_eq!(app.state.cache().health().await, Health::Ready);
    }
    let (id, _) = edgeship::api_keys::parse_token(&a.admin).unwrap();
    let slot = format!("{}:global:ratelimit:key:{id}", a.config.cache.prefix);
    let ttl_ms: i64 = redis::cmd("PTTL")
        .arg(&slot)
        .query(&mut raw_connection(SHARED_REDIS))
        .unwrap();
    assert!(
        ttl_ms > 3000,
        "the budget's state is in Redis ({slot}: {ttl_ms} ms)"
    );
    cleanup(a.state.cache()).await;
}

/// Two replicas sharing Redis: failures on either count toward one block, which both
/// enforce, and the block is audited once.
#[tokio::test]
async fn with_redis_failed_authentications_on_every_replica_count_toward_one_block() {
    let a = TestApp::spawn_with(|c| {
        c.cache = redis_config(SHARED_REDIS, "replica-block");
        c.server.auth_failures_before_block = 4;
        c.server.block_secs = 60;
    })
    .await;
    let b = a.replica();
    for app in [&a, &b, &a, &b] {
        assert_eq!(with_a_wrong_key(app).await, 401);
    }
    for app in [&a, &b] {
        let blocked = app.admin("GET", "/v1/cache/stats", None).await;
        assert_eq!(blocked.status, 429, "blocked on every replica");
        assert_eq!(blocked.code(), "blocked");
        let retry: u64 = blocked.header("retry-after").unwrap().parse().unwrap();
        assert!((50..=60).contains(&retry), "retry after {retry}");
        assert_eq!(app.state.cache().health().await, Health::Ready);
    }
    assert_eq!(
        audit_events(&a, "auth.blocked") + audit_events(&b, "auth.blocked"),
        1,
        "one block, one audit event"
    );
    assert_eq!(
        audit_events(&b, "auth.blocked"),
        1,
        "by the replica that blocked"
    );
    let block = format!("{}:global:auth:blocked:127.0.0.1", a.config.cache.prefix);
    let ttl_ms: i64 = redis::cmd("PTTL")
        .arg(&block)
        .query(&mut raw_connection(SHARED_REDIS))
        .unwrap();
    assert!(
        (50_000..=60_000).contains(&ttl_ms),
        "the block is in Redis ({block}: {ttl_ms} ms)"
    );
    cleanup(a.state.cache()).await;
}

/// `block_secs = 0` counts failures but never blocks.
#[tokio::test]
async fn block_secs_zero_never_blocks() {
    let app = TestApp::spawn_with(|c| {
        c.server.auth_failures_before_block = 2;
        c.server.block_secs = 0;
    })
    .await;
    for _ in 0..4 {
        assert_eq!(with_a_wrong_key(&app).await, 401);
    }
    assert_eq!(app.admin("GET", "/v1/cache/stats", None).await.status, 200);
    assert_eq!(audit_events(&app, "auth.blocked"), 0);
}

#[tokio::test]
async fn repeated_auth_failures_block_the_ip_and_write_an_audit_event() {
    let app = TestApp::spawn_with(|c| {
        c.server.auth_failures_before_block = 3;
        c.server.block_secs = 60;
    })
    .await;
    for _ in 0..3 {
        assert_eq!(with_a_wrong_key(&app).await, 401);
    }
    // Blocked now, even with a valid key.
    let blocked = app.admin("GET", "/v1/cache/stats", None).await;
    assert_eq!(blocked.status, 429);
    assert_eq!(blocked.code(), "blocked");
    assert!(
        blocked
            .header("retry-after")
            .unwrap()
            .parse::<u64>()
            .unwrap()
            > 50
    );
    let audit = std::fs::read_to_string(app.data.path().join("audit.log")).unwrap();
    let lines: Vec<serde_json::Value> = audit
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l["event"] == "auth.blocked" && l["ip"] == "127.0.0.1"),
        "{audit}"
    );
    assert!(
        lines.iter().any(|l| l["event"] == "key.create"),
        "the first admin key is audited"
    );
}

#[tokio::test]
async fn bodies_are_capped_and_bad_json_and_unknown_routes_get_json_errors() {
    let app = deployed(|c| c.server.max_json_bytes = 1024).await;
    let auth = format!("Bearer {}", app.admin);
    let headers = [
        ("authorization", auth.as_str()),
        ("content-type", "application/json"),
    ];
    let big = format!("{{\"patterns\":[\"/{}\"]}}", "a".repeat(4096));
    let r = app
        .call("POST", "/v1/sites/default/purges", &headers, big.as_bytes())
        .await;
    assert_eq!(r.status, 413);
    assert_eq!(r.code(), "body_too_large");

    let r = app
        .call(
            "POST",
            "/v1/sites/default/purges",
            &headers,
            b"{\"patterns\": [",
        )
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.code(), "bad_json");
    let r = app
        .call(
            "POST",
            "/v1/sites/default/purges",
            &headers,
            b"{\"patterns\": [], \"nope\": 1}",
        )
        .await;
    assert_eq!(r.status, 400, "unknown fields are refused");

    let r = app
        .admin(
            "POST",
            "/v1/sites/nope/purges",
            Some(&json!({"patterns": ["/a"]})),
        )
        .await;
    assert_eq!(r.status, 404);
    assert_eq!(r.code(), "unknown_site");

    let r = app.admin("GET", "/v1/nothing/here", None).await;
    assert_eq!(r.status, 404);
    assert_eq!(r.code(), "not_found");
}

#[tokio::test]
async fn every_response_has_security_headers_and_a_request_id() {
    let app = TestApp::spawn_with(|_| {}).await;
    for path in ["/healthz", "/v1/cache/stats", "/index.html"] {
        let r = app
            .call("GET", path, &[("x-request-id", "abc-123")], b"")
            .await;
        assert_eq!(
            r.header("x-content-type-options"),
            Some("nosniff"),
            "{path}"
        );
        assert_eq!(r.header("x-frame-options"), Some("DENY"), "{path}");
        assert_eq!(r.header("referrer-policy"), Some("no-referrer"), "{path}");
        assert_eq!(r.header("x-request-id"), Some("abc-123"), "{path}");
    }
    let r = app.call("GET", "/healthz", &[], b"").await;
    assert!(r.header("x-request-id").is_some_and(|id| !id.is_empty()));
    let api = app.admin("GET", "/v1/cache/stats", None).await;
    assert_eq!(api.header("cache-control"), Some("no-store"));
    assert!(
        api.header("access-control-allow-origin").is_none(),
        "CORS is off by default"
    );
}

#[tokio::test]
async fn purges_over_http_use_the_engine_and_their_jobs_are_readable() {
    let app = deployed(|_| {}).await;
    let purger = key(&app, vec![Scope::Purge]).await;
    let auth = format!("Bearer {purger}");
    let headers = [
        ("authorization", auth.as_str()),
        ("content-type", "application/json"),
    ];

    let dry = app
        .call(
            "POST",
            "/v1/sites/default/purges",
            &headers,
            json!({"patterns": ["/assets/**/*.css"], "dry_run": true})
                .to_string()
                .as_bytes(),
        )
        .await;
    assert_eq!(dry.status, 200, "{}", String::from_utf8_lossy(&dry.body));
    assert_eq!(
        dry.json()["matched"],
        json!(["assets/print.css", "assets/styles.5b6c7d8e.css"])
    );
    assert_eq!(dry.json()["cost"]["requests"], 1);

    let bad = app
        .call(
            "POST",
            "/v1/sites/default/purges",
            &headers,
            json!({"patterns": ["/assets/[ab.js"]})
                .to_string()
                .as_bytes(),
        )
        .await;
    assert_eq!(bad.status, 400);
    assert_eq!(bad.code(), "bad_pattern");
    assert_eq!(bad.json()["error"]["position"], 8);

    let everything = app
        .call(
            "POST",
            "/v1/sites/default/purges",
            &headers,
            json!({"patterns": ["/*"]}).to_string().as_bytes(),
        )
        .await;
    assert_eq!(everything.status, 409);
    assert_eq!(everything.code(), "confirmation_required");

    let started = app
        .call(
            "POST",
            "/v1/sites/default/purges",
            &headers,
            json!({"patterns": ["/index.html", "/blog/"]})
                .to_string()
                .as_bytes(),
        )
        .await;
    assert_eq!(
        started.status,
        202,
        "{}",
        String::from_utf8_lossy(&started.body)
    );
    let id = started.json()["id"].as_str().unwrap().to_string();
    assert_eq!(
        started.header("location"),
        Some(format!("/v1/purges/{id}").as_str())
    );
    let mut job = serde_json::Value::Null;
    for _ in 0..50 {
        job = app
            .call(
                "GET",
                &format!("/v1/purges/{id}"),
                &[("authorization", &auth)],
                b"",
            )
            .await
            .json();
        if job["status"] == "done" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(job["status"], "done", "{job}");
    assert_eq!(job["source"], "api");
    assert_eq!(job["batches"][0]["request"]["reference"], format!("{id}-1"));

    let waited = app
        .admin(
            "POST",
            "/v1/sites/default/purges",
            Some(&json!({"patterns": ["/about/"], "wait": true})),
        )
        .await;
    assert_eq!(waited.status, 200);
    assert_eq!(waited.json()["status"], "done");

    let missing = app.admin("GET", "/v1/purges/p0000000000000000", None).await;
    assert_eq!(missing.status, 404);
    let bad_id = app.admin("GET", "/v1/purges/..%2Fx", None).await;
    assert_eq!(bad_id.status, 400);
    // A deploy job's id is not a purge job's: refused, not read as the wrong kind.
    let other_kind = app.admin("GET", "/v1/purges/d0000000000000000", None).await;
    assert_eq!(other_kind.code(), "bad_id");

    let audit = std::fs::read_to_string(app.data.path().join("audit.log")).unwrap();
    assert!(
        audit.contains("\"event\":\"purge.start\"") && audit.contains(&id),
        "{audit}"
    );
}

fn hostile_tar(path: &str) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(4);
    header.set_mode(0o644);
    header.set_entry_type(tar::EntryType::Regular);
    header.as_old_mut().name[..path.len()].copy_from_slice(path.as_bytes());
    header.set_cksum();
    builder.append(&header, &b"evil"[..]).unwrap();
    builder.into_inner().unwrap()
}

#[tokio::test]
async fn a_tar_gz_upload_deploys_the_site_in_the_background_and_reports_progress() {
    let app = TestApp::spawn_with(|_| {}).await;
    let deployer = key(&app, vec![Scope::Deploy]).await;
    let auth = format!("Bearer {deployer}");
    let body = common::tar_gz_of(&fixture("site"));
    let started = app
        .call(
            "POST",
            "/v1/sites/default/deploys",
            &[
                ("authorization", &auth),
                ("content-type", "application/gzip"),
            ],
            &body,
        )
        .await;
    assert_eq!(
        started.status,
        202,
        "{}",
        String::from_utf8_lossy(&started.body)
    );
    let id = started.json()["id"].as_str().unwrap().to_string();
    assert!(started.json()["files"].as_u64().unwrap() >= 15);
    let job = app.finished_deploy(&auth, &id).await;
    assert_eq!(job["status"], "done", "{job}");
    assert!(job["report"]["uploaded"].as_u64().unwrap() > 15, "{job}");
    let root = app.config.site("default").unwrap().root;
    assert!(root.join("index.html").is_file() && root.join("index.html.br").is_file());
    let page = app.call("GET", "/blog/", &[], b"").await;
    assert_eq!(page.status, 200);
    assert!(
        !app.data.path().join("uploads").join(&id).exists(),
        "the upload and its extraction are removed"
    );
    let audit = std::fs::read_to_string(app.data.path().join("audit.log")).unwrap();
    assert!(audit.contains("\"event\":\"deploy.start\"") && audit.contains(&id));
}

#[tokio::test]
async fn hostile_or_oversized_uploads_are_refused_and_write_nothing_outside() {
    let app = TestApp::spawn_with(|c| c.server.max_upload_bytes = 64 * 1024).await;
    let auth = format!("Bearer {}", app.admin);
    let headers = [
        ("authorization", auth.as_str()),
        ("content-type", "application/x-tar"),
    ];
    for path in ["../evil", "/tmp/evil-edgeship-test"] {
        let r = app
            .call(
                "POST",
                "/v1/sites/default/deploys",
                &headers,
                &hostile_tar(path),
            )
            .await;
        assert_eq!(r.status, 400, "{path}");
        assert_eq!(r.code(), "bad_archive");
        assert!(
            r.json()["error"]["message"]
                .as_str()
                .unwrap()
                .contains("refused"),
            "{path}"
        );
    }
    assert!(!app.data.path().join("uploads/evil").exists());
    assert!(!std::path::Path::new("/tmp/evil-edgeship-test").exists());
    let uploads: Vec<_> = std::fs::read_dir(app.data.path().join("uploads"))
        .map(|d| d.collect())
        .unwrap_or_default();
    assert!(uploads.is_empty(), "refused uploads leave nothing behind");

    let big = vec![0u8; 128 * 1024];
    let r = app
        .call("POST", "/v1/sites/default/deploys", &headers, &big)
        .await;
    assert_eq!(r.status, 413);
    assert_eq!(r.code(), "body_too_large");
    let r = app
        .call("POST", "/v1/sites/default/deploys", &headers, b"")
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.code(), "empty_body");
    let r = app
        .call("POST", "/v1/sites/elsewhere/deploys", &headers, b"x")
        .await;
    assert_eq!(r.status, 404);

    let purger = key(&app, vec![Scope::Purge]).await;
    let r = app
        .call(
            "POST",
            "/v1/sites/default/deploys",
            &[("authorization", &format!("Bearer {purger}"))],
            &hostile_tar("ok.txt"),
        )
        .await;
    assert_eq!(r.status, 403, "a purge key cannot deploy");
    let r = app
        .admin("GET", "/v1/deploys/d0000000000000000", None)
        .await;
    assert_eq!(r.status, 404);
}

#[tokio::test]
async fn the_manifest_is_listed_in_pages_with_a_prefix() {
    let app = deployed(|_| {}).await;
    let first = app
        .admin("GET", "/v1/sites/default/assets?limit=5", None)
        .await;
    assert_eq!(first.status, 200);
    let page = first.json();
    let total = page["total"].as_u64().unwrap();
    assert!(total >= 15);
    let mut seen: Vec<String> = page["assets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["path"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(seen.len(), 5);
    let mut cursor = page["next"].as_str().map(str::to_owned);
    while let Some(next) = cursor {
        let page = app
            .admin(
                "GET",
                &format!("/v1/sites/default/assets?limit=5&cursor={next}"),
                None,
            )
            .await
            .json();
        seen.extend(
            page["assets"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a["path"].as_str().unwrap().to_string()),
        );
        cursor = page["next"].as_str().map(str::to_owned);
    }
    assert_eq!(seen.len() as u64, total, "every asset once");
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "in path order");
    let assets = app
        .admin("GET", "/v1/sites/default/assets?prefix=assets/", None)
        .await
        .json();
    let paths: Vec<&str> = assets["assets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["path"].as_str().unwrap())
        .collect();
    assert!(
        !paths.is_empty() && paths.iter().all(|p| p.starts_with("assets/")),
        "{paths:?}"
    );
    assert!(
        assets["assets"][0]["hash"].is_string() && assets["assets"][0]["content_type"].is_string()
    );
    assert_eq!(
        app.admin("GET", "/v1/sites/nope/assets", None).await.status,
        404
    );
}

/// Uploads the fixtures as tar.gz to site `default` (202) and returns the finished job.
/// The whole path through HTTP only: upload the fixtures as tar.gz, poll the deploy to
/// done, fetch an asset with br, gzip and no encoding (each the right bytes, `Vary` set),
/// revalidate with `If-None-Match` (304), and read what it saved in `GET /v1/analytics`.
#[tokio::test]
async fn fixtures_uploaded_as_tar_gz_are_served_negotiated_revalidated_and_counted() {
    let app = TestApp::spawn_with(|_| {}).await;
    let auth = format!(
        "Bearer {}",
        key(&app, vec![Scope::Deploy, Scope::Read]).await
    );
    let job = app.deploy_fixtures(&auth).await;
    assert_eq!(job["status"], "done", "{job}");

    let path = "/assets/styles.5b6c7d8e.css";
    let original = std::fs::read(fixture("site").join("assets/styles.5b6c7d8e.css")).unwrap();
    let fetch = |encoding: &'static str| {
        let app = &app;
        async move {
            let headers: Vec<(&str, &str)> = if encoding.is_empty() {
                vec![]
            } else {
                vec![("accept-encoding", encoding)]
            };
            app.call("GET", path, &headers, b"").await
        }
    };
    let identity = fetch("").await;
    assert_eq!(identity.status, 200);
    assert_eq!(identity.header("content-encoding"), None);
    assert_eq!(
        identity.header("content-type"),
        Some("text/css; charset=utf-8")
    );
    assert!(identity.body.len() < original.len(), "minified");
    let css = String::from_utf8(identity.body.clone()).unwrap();
    assert!(css.contains('{') && !css.contains("\n\n"), "{css:.200}");

    let br = fetch("br").await;
    assert_eq!(br.status, 200);
    assert_eq!(br.header("content-encoding"), Some("br"));
    assert!(
        br.header("vary")
            .unwrap()
            .eq_ignore_ascii_case("accept-encoding")
    );
    let mut decoded = Vec::new();
    brotli::BrotliDecompress(&mut &br.body[..], &mut decoded).unwrap();
    assert_eq!(decoded, identity.body, "br decodes to the identity bytes");
    assert!(br.body.len() < identity.body.len());

    let gzip = fetch("gzip").await;
    assert_eq!(gzip.header("content-encoding"), Some("gzip"));
    assert!(
        gzip.header("vary")
            .unwrap()
            .eq_ignore_ascii_case("accept-encoding")
    );
    let mut decoded = Vec::new();
    std::io::Read::read_to_end(
        &mut flate2::read::GzDecoder::new(&gzip.body[..]),
        &mut decoded,
    )
    .unwrap();
    assert_eq!(decoded, identity.body, "gzip decodes to the identity bytes");

    let etag = br.header("etag").unwrap().to_string();
    assert!(etag.starts_with('"'), "strong: {etag}");
    let revalidated = app
        .call(
            "GET",
            path,
            &[("accept-encoding", "br"), ("if-none-match", &etag)],
            b"",
        )
        .await;
    assert_eq!(revalidated.status, 304);
    assert!(revalidated.body.is_empty());

    // The origin's counters reach the cache layer once a second.
    let mut site = serde_json::Value::Null;
    for _ in 0..60 {
        let report = app
            .call(
                "GET",
                "/v1/analytics?site=default",
                &[("authorization", &auth)],
                b"",
            )
            .await;
        assert_eq!(report.status, 200);
        site = report.json()["sites"][0].clone();
        if site["origin"]["in_range"]["not_modified"] == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    let origin = &site["origin"]["in_range"];
    assert_eq!(origin["not_modified"], 1, "{site}");
    assert_eq!(
        origin["by_encoding"]["br"]["bytes"].as_u64().unwrap(),
        br.body.len() as u64,
        "{origin}"
    );
    assert_eq!(
        origin["by_encoding"]["gzip"]["identity_bytes"]
            .as_u64()
            .unwrap(),
        identity.body.len() as u64
    );
    let deploys = &site["deploys"];
    assert_eq!(deploys["all_time"]["deploys"], 1, "{deploys}");
    assert_eq!(
        deploys["current"]["total"]["files"],
        job["report"]["build"]["files"]
    );
    let css = &deploys["current"]["by_content_type"]["text/css"];
    assert!(
        css["original_bytes"].as_u64() > css["best_bytes"].as_u64(),
        "{css}"
    );
}

#[tokio::test]
async fn analytics_needs_read_and_refuses_bad_ranges_unknown_sites_and_parameters() {
    let app = TestApp::spawn_with(|_| {}).await;
    let purger = format!("Bearer {}", key(&app, vec![Scope::Purge]).await);
    let reader = format!("Bearer {}", key(&app, vec![Scope::Read]).await);
    assert_eq!(app.call("GET", "/v1/analytics", &[], b"").await.status, 401);
    let denied = app
        .call("GET", "/v1/analytics", &[("authorization", &purger)], b"")
        .await;
    assert_eq!(denied.status, 403);
    let empty = app
        .call("GET", "/v1/analytics", &[("authorization", &reader)], b"")
        .await;
    assert_eq!(empty.status, 200);
    let report = empty.json();
    assert_eq!(report["group_by"], "day");
    assert_eq!(report["sites"][0]["site"], "default");
    assert_eq!(report["sites"][0]["deploys"]["all_time"]["deploys"], 0);
    assert_eq!(report["sites"][0]["origin"]["in_range"]["requests"], 0);
    for (query, status, code) in [
        ("from=yesterday", 400, "bad_time"),
        ("from=2026-11-30&to=2026-11-01", 400, "bad_range"),
        ("from=2020-01-01&to=2026-01-01", 400, "bad_range"),
        ("group_by=week", 400, "bad_group_by"),
        ("sight=default", 400, "bad_query"),
        ("site=nope", 404, "unknown_site"),
    ] {
        let answer = app
            .call(
                "GET",
                &format!("/v1/analytics?{query}"),
                &[("authorization", &reader)],
                b"",
            )
            .await;
        assert_eq!(answer.status, status, "{query}");
        assert_eq!(answer.code(), code, "{query}");
    }
    let hourly = app
        .call(
            "GET",
            "/v1/analytics?from=2026-11-29T00:00:00Z&to=2026-11-30T00:00:00Z",
            &[("authorization", &reader)],
            b"",
        )
        .await
        .json();
    assert_eq!(hourly["group_by"], "hour");
    assert_eq!(hourly["from"], "2026-11-29T00:00:00Z");
}

/// `/openapi.json` describes the routes the app really has: every documented path
/// answers with something other than "no such route".
#[tokio::test]
async fn the_openapi_document_describes_routes_that_exist() {
    let app = TestApp::spawn_with(|_| {}).await;
    let doc = app.call("GET", "/openapi.json", &[], b"").await;
    assert_eq!(doc.status, 200);
    let doc = doc.json();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.len() >= 11, "{}", paths.len());
    // Operation ids are unique (generated clients name methods by them).
    let mut ids = std::collections::BTreeSet::new();
    for (path, methods) in paths {
        for (method, operation) in methods.as_object().unwrap() {
            let id = operation["operationId"].as_str().unwrap().to_string();
            assert!(
                ids.insert(id.clone()),
                "{method} {path}: operationId `{id}` twice"
            );
        }
    }
    // The upload body is bytes, not a JSON array of numbers.
    let upload = &paths["/v1/sites/{site}/deploys"]["post"]["requestBody"]["content"];
    for media in ["application/x-tar", "application/gzip", "application/zstd"] {
        let schema = &upload[media]["schema"];
        let schema = match schema["$ref"].as_str() {
            Some(reference) => &doc["components"]["schemas"][reference.rsplit('/').next().unwrap()],
            None => schema,
        };
        assert_eq!(schema["type"], "string", "{media}: {schema}");
        assert_eq!(schema["format"], "binary", "{media}: {schema}");
    }
    // What the routes answer to bad bodies and ids is described, with its constraints.
    let purge = &paths["/v1/sites/{site}/purges"]["post"];
    for status in ["400", "413", "415"] {
        assert!(purge["responses"][status].is_object(), "purge {status}");
    }
    assert!(paths["/v1/sites/{site}/deploys"]["post"]["responses"]["408"].is_object());
    let body = &doc["components"]["schemas"]["PurgeBody"]["properties"]["patterns"];
    assert_eq!(
        (body["minItems"].as_u64(), body["maxItems"].as_u64()),
        (Some(1), Some(1000))
    );
    let id = &paths["/v1/purges/{id}"]["get"]["parameters"][0]["schema"];
    assert!(id["pattern"].is_string(), "{id}");
    for (path, methods) in paths {
        let concrete = path
            .replace("{site}", "default")
            .replace("{id}", "p0000000000000000");
        for method in methods.as_object().unwrap().keys() {
            let answer = app.call(&method.to_uppercase(), &concrete, &[], b"").await;
            assert_ne!(answer.status, 405, "{method} {path}");
            if answer.status == 404 {
                assert_ne!(answer.code(), "not_found", "{method} {path} is not routed");
            }
        }
    }
}

/// The value of the series whose line starts with `series` (name and labels).
fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
}

#[tokio::test]
async fn metrics_count_requests_per_route_and_status_uploads_and_purges() {
    let app = deployed(|config| {
        // A site whose provider always fails, with a breaker that opens after 3 failures.
        let broken = config.sites.entry("broken".into()).or_default();
        broken.provider = edgeship::config::ProviderKind::Memory;
        broken.faults = Some(edgeship_providers::faults::FaultConfig {
            error_rate: 1.0,
            ..Default::default()
        });
        config.sites.entry("default".into()).or_default();
        config.deploy.retry.base_delay_ms = 1;
        config.deploy.retry.max_delay_ms = 2;
        config.deploy.breaker.window = 3;
        config.deploy.breaker.failure_threshold = 3;
    })
    .await;
    let purge = app
        .admin(
            "POST",
            "/v1/sites/default/purges",
            Some(&json!({ "patterns": ["/index.html"], "wait": true })),
        )
        .await;
    assert_eq!(purge.status, 200);
    app.call("GET", "/v1/purges/p0000000000000000", &[], b"")
        .await;
    app.call("GET", "/v1/no-such-route", &[], b"").await;
    app.call("FOO1", "/", &[], b"").await;
    app.call("FOO2", "/", &[], b"").await;
    assert_eq!(app.admin("GET", "/v1/analytics", None).await.status, 200);
    let upload = common::tar_gz_of(&fixture("site"));
    let auth = format!("Bearer {}", app.admin);
    let started = app
        .call(
            "POST",
            "/v1/sites/default/deploys",
            &[
                ("authorization", &auth),
                ("content-type", "application/gzip"),
            ],
            &upload,
        )
        .await;
    assert_eq!(started.status, 202);
    let broken = app.admin("GET", "/v1/sites/broken/assets", None).await;
    assert_eq!(
        broken.status,
        502,
        "{}",
        String::from_utf8_lossy(&broken.body)
    );

    let metrics = app.call("GET", "/metrics", &[], b"").await;
    assert_eq!(metrics.status, 200);
    let text = String::from_utf8(metrics.body).unwrap();
    let requests = "edgeship_http_requests_total";
    for (series, value) in [
        (format!("{requests}{{route=\"/v1/sites/{{site}}/purges\",method=\"POST\",status=\"200\"}}"), 1.0),
        (format!("{requests}{{route=\"/v1/purges/{{id}}\",method=\"GET\",status=\"401\"}}"), 1.0),
        (format!("{requests}{{route=\"unmatched\",method=\"GET\",status=\"404\"}}"), 1.0),
        // Made-up methods share one label value: clients cannot grow the series set.
        (format!("{requests}{{route=\"origin\",method=\"OTHER\",status=\"405\"}}"), 2.0),
        (format!("{requests}{{route=\"/v1/sites/{{site}}/assets\",method=\"GET\",status=\"502\"}}"), 1.0),
        ("edgeship_http_request_duration_seconds_count{route=\"/v1/sites/{site}/purges\",method=\"POST\"}".into(), 1.0),
        ("edgeship_purge_jobs_total{site=\"default\",source=\"api\"}".into(), 1.0),
        ("edgeship_purge_items_total{site=\"default\"}".into(), 2.0),
        ("edgeship_upload_bytes_total{site=\"default\"}".into(), upload.len() as f64),
    ] {
        assert_eq!(metric(&text, &series), Some(value), "{series} in:\n{text}");
    }
    // The broken provider: its failed attempts were retried until the breaker opened.
    // The site's one stack lives as long as the service, so its breaker is still open
    // (with a stack per request, as before the sites registry, it was dropped at once).
    let retried = text
        .lines()
        .find(|l| {
            l.starts_with("edgeship_provider_retries_total{")
                && l.contains("broken")
                && l.contains("class=\"retryable\"")
        })
        .unwrap_or_else(|| panic!("no retries of the broken provider in:\n{text}"));
    assert!(
        retried.ends_with(" 3"),
        "three retries; the fourth attempt met the breaker the third failure opened: {retried}"
    );
    let open = text
        .lines()
        .find(|l| l.starts_with("edgeship_provider_breaker_open{") && l.contains("broken"))
        .unwrap_or_else(|| panic!("no breaker gauge for the broken provider in:\n{text}"));
    assert!(open.ends_with(" 1"), "{open}");
    assert!(text.contains("edgeship_cache_operations_total{"), "{text}");
}

/// The sites registry: one provider stack per site for the life of the service, so its
/// circuit breaker sees every request's calls. 50 purges against a provider that fails
/// every call: the breaker opens once, after `failure_threshold` calls reached the
/// provider, and every later purge fails fast with the breaker's error without calling it.
#[tokio::test]
async fn fifty_purges_against_a_failing_provider_open_its_breaker_once_then_fail_fast() {
    use edgeship_providers::faults::{FaultConfig, Faulty};
    use edgeship_providers::memory::MemoryProvider;

    let data = tempfile::tempdir().unwrap();
    let mut config = edgeship::config::Config {
        data_dir: data.path().to_path_buf(),
        cache_dir: data.path().join("cache"),
        ..Default::default()
    };
    config.deploy.retry.base_delay_ms = 1;
    config.deploy.retry.max_delay_ms = 2;
    config.server.key_burst = 100;
    let threshold = config.deploy.breaker.failure_threshold as u64;
    let failing = Arc::new(Faulty::new(
        MemoryProvider::new("memory:failing"),
        FaultConfig {
            error_rate: 1.0,
            ..Default::default()
        },
    ));
    let sites = edgeship::site::Sites::with_cache(&config, edgeship::cache::Cache::memory())
        .unwrap()
        .with_provider("default", failing.clone())
        .unwrap();
    let app = TestApp::start_sites(sites, data).await;

    let mut messages = Vec::new();
    for _ in 0..50 {
        let purge = app
            .admin(
                "POST",
                "/v1/sites/default/purges",
                Some(&json!({ "patterns": ["/index.html"] })),
            )
            .await;
        assert_eq!(
            purge.status,
            502,
            "{}",
            String::from_utf8_lossy(&purge.body)
        );
        assert_eq!(purge.code(), "provider_failed");
        messages.push(
            purge.json()["error"]["message"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    assert_eq!(
        failing.injected(),
        threshold,
        "exactly the breaker's threshold of calls reached the provider"
    );
    let fast = messages
        .iter()
        .filter(|m| m.contains("not calling it for"))
        .count();
    assert!(
        fast >= 40 && messages.last().unwrap().contains("not calling it for"),
        "later purges fail fast with the breaker's error: {messages:#?}"
    );
    let metrics = String::from_utf8(app.call("GET", "/metrics", &[], b"").await.body).unwrap();
    assert_eq!(
        metric(
            &metrics,
            "edgeship_provider_breaker_open{provider=\"memory:failing\"}"
        ),
        Some(1.0),
        "one breaker, opened once, for the site's one stack:\n{metrics}"
    );
}

/// A `memory` site lives as long as the service: what a deploy over HTTP stored is what
/// the assets route lists afterwards.
#[tokio::test]
async fn a_memory_site_deployed_over_http_lists_every_deployed_path() {
    let app = TestApp::spawn_with(|config| {
        config.sites.entry("default".into()).or_default().provider =
            edgeship::config::ProviderKind::Memory;
    })
    .await;
    let auth = format!("Bearer {}", app.admin);
    let job = app.deploy_fixtures(&auth).await;
    assert_eq!(job["status"], "done", "{job}");
    let processed = job["report"]["build"]["files"].as_u64().unwrap();
    assert!(processed >= 15, "{job}");

    let listed = app
        .admin("GET", "/v1/sites/default/assets?limit=10000", None)
        .await;
    assert_eq!(
        listed.status,
        200,
        "{}",
        String::from_utf8_lossy(&listed.body)
    );
    let listed = listed.json();
    let paths: std::collections::BTreeSet<String> = listed["assets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["path"].as_str().unwrap().to_string())
        .collect();
    let expected: std::collections::BTreeSet<String> =
        common::read_tree(&fixture("site")).into_keys().collect();
    assert_eq!(listed["total"].as_u64(), Some(processed));
    assert_eq!(paths, expected, "every deployed path is listed");
}

/// `serve` with only non-default sites starts: the only site is the origin's; with
/// several and none named, the origin serves none and says how to choose.
#[tokio::test]
async fn serve_without_a_default_site_serves_the_only_site_or_none_with_a_clear_answer() {
    let only = TestApp::spawn_with(|config| {
        config.sites.entry("www".into()).or_default();
    })
    .await;
    let root = only.config.site("www").unwrap().root;
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("index.html"), "<p>www</p>").unwrap();
    let page = only.call("GET", "/", &[], b"").await;
    assert_eq!(page.status, 200);
    assert_eq!(page.body, b"<p>www</p>");
    assert_eq!(only.state.origin_site().unwrap().origin().site(), "www");

    let several = TestApp::spawn_with(|config| {
        config.sites.entry("a".into()).or_default();
        config.sites.entry("b".into()).or_default();
    })
    .await;
    assert!(several.state.origin_site().is_none());
    let page = several.call("GET", "/", &[], b"").await;
    assert_eq!(page.status, 404);
    assert_eq!(page.code(), "no_origin_site");
    assert!(
        page.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("server.origin_site"),
        "{:?}",
        page.json()
    );
    // The API works for both sites.
    assert_eq!(
        several
            .admin("GET", "/v1/sites/b/assets", None)
            .await
            .status,
        200
    );
}

/// A `serve` killed during an HTTP deploy leaves its job `running` and its upload on
/// disk; the next start settles it: `failed` with the reason, the upload removed.
#[tokio::test]
async fn a_restart_settles_deploys_a_killed_serve_left_running_and_removes_their_uploads() {
    use edgeship::deploy::job::{DeployJob, DeployStatus};
    let data = tempfile::tempdir().unwrap();
    let config = edgeship::config::Config {
        data_dir: data.path().to_path_buf(),
        cache_dir: data.path().join("cache"),
        ..Default::default()
    };
    // What the killed process left: the job saved as running, its extracted upload.
    let store = edgeship::jobs::JobStore::Dir(data.path().join("jobs"));
    let mut job = DeployJob::new("default", false, false, 3, 30);
    job.status = DeployStatus::Running;
    store.save(&job).await.unwrap();
    let upload = data.path().join("uploads").join(&job.id).join("site");
    std::fs::create_dir_all(&upload).unwrap();
    std::fs::write(upload.join("index.html"), "<p>half</p>").unwrap();

    let app = TestApp::start(config, data).await;
    let status = app
        .admin("GET", &format!("/v1/deploys/{}", job.id), None)
        .await
        .json();
    assert_eq!(status["status"], "failed", "{status}");
    assert!(
        status["error"]
            .as_str()
            .unwrap()
            .contains("the service stopped while this deploy ran"),
        "{status}"
    );
    assert!(!app.data.path().join("uploads").join(&job.id).exists());
}

/// Sends one byte every 200 ms on `writer` until `stop` is set; `read` collects the
/// answer meanwhile (so an early answer is read before the server closes).
fn trickle(
    stream: tokio::net::TcpStream,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> tokio::task::JoinHandle<common::http::Response> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (mut read, mut write) = stream.into_split();
    let writer = tokio::spawn(async move {
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            if write.write_all(&[0]).await.is_err() {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
        // Keep the connection open, sending nothing.
        std::future::pending::<()>().await;
    });
    tokio::spawn(async move {
        let mut raw = Vec::new();
        let _ = read.read_to_end(&mut raw).await;
        writer.abort();
        common::http::parse_response(&raw)
    })
}

async fn wait_for_uploads(app: &TestApp, count: u32) {
    for _ in 0..200 {
        if app.state.uploads().in_use() == count {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!(
        "{} uploads being received, expected {count}",
        app.state.uploads().in_use()
    );
}

#[tokio::test]
async fn a_json_body_is_read_only_after_the_key_and_the_rate_limit_are_checked() {
    use tokio::io::AsyncWriteExt;
    let app = TestApp::spawn_with(|c| {
        c.server.ip_rate_per_sec = 1;
        c.server.ip_burst = 3;
    })
    .await;
    let mut answers = Vec::new();
    for _ in 0..10 {
        // A megabyte is announced and 12 bytes sent: the answer must not wait for the rest.
        let mut stream = common::http::start_request(
            &app.base,
            "POST",
            "/v1/sites/default/purges",
            &[("content-type", "application/json")],
            Some(1 << 20),
        )
        .await;
        stream.write_all(b"{\"patterns\":").await.unwrap();
        let answer = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            common::http::read_answer(&mut stream),
        )
        .await
        .expect("answered without waiting for the announced body");
        let code = answer.code();
        answers.push((answer.status, code));
        if answer.status == 429 {
            break;
        }
    }
    let (last, earlier) = answers.split_last().unwrap();
    assert_eq!(last, &(429, "rate_limited".to_string()), "{answers:?}");
    assert!(earlier.len() >= 3, "the burst passes first: {answers:?}");
    assert!(
        earlier
            .iter()
            .all(|a| a == &(401, "unauthenticated".to_string())),
        "{answers:?}"
    );

    // With a key, the body is read: one that is not JSON is a 415 in the JSON shape.
    let app = TestApp::spawn_with(|_| {}).await;
    let auth = format!("Bearer {}", app.admin);
    let r = app
        .call(
            "POST",
            "/v1/sites/default/purges",
            &[("authorization", &auth), ("content-type", "text/plain")],
            br#"{"patterns": ["/a"]}"#,
        )
        .await;
    assert_eq!((r.status, r.code().as_str()), (415, "not_json"));
}

#[tokio::test]
async fn uploads_are_limited_per_key_and_in_total_and_stalled_or_endless_ones_are_cut_off() {
    let app = TestApp::spawn_with(|c| {
        c.server.max_uploads_per_key = 1;
        c.server.max_concurrent_uploads = 2;
        c.server.upload_idle_timeout_secs = 2;
        c.server.upload_timeout_secs = 5;
    })
    .await;
    let keys = [
        key(&app, vec![Scope::Deploy]).await,
        key(&app, vec![Scope::Deploy]).await,
        key(&app, vec![Scope::Deploy]).await,
    ];
    let auth: Vec<String> = keys.iter().map(|k| format!("Bearer {k}")).collect();
    let body = common::tar_gz_of(&fixture("site"));
    let path = "/v1/sites/default/deploys";
    let slow = |auth: String| {
        let base = app.base.clone();
        async move {
            common::http::start_request(
                &base,
                "POST",
                path,
                &[
                    ("authorization", &auth),
                    ("content-type", "application/gzip"),
                ],
                Some(1 << 20),
            )
            .await
        }
    };
    let stop_a = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let a = trickle(slow(auth[0].clone()).await, stop_a.clone());
    wait_for_uploads(&app, 1).await;
    let r = app
        .call("POST", path, &[("authorization", &auth[0])], &body)
        .await;
    assert_eq!((r.status, r.code().as_str()), (429, "too_many_uploads"));
    assert!(r.header("retry-after").is_some());
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("max_uploads_per_key")
    );
    // Never stops sending: cut off by the whole-upload limit.
    let b = trickle(
        slow(auth[1].clone()).await,
        Arc::new(std::sync::atomic::AtomicBool::new(false)),
    );
    wait_for_uploads(&app, 2).await;
    let r = app
        .call("POST", path, &[("authorization", &auth[2])], &body)
        .await;
    assert_eq!((r.status, r.code().as_str()), (429, "too_many_uploads"));
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("max_concurrent_uploads")
    );

    // Stalls: cut off by the idle limit.
    stop_a.store(true, std::sync::atomic::Ordering::Relaxed);
    let a = tokio::time::timeout(std::time::Duration::from_secs(20), a)
        .await
        .expect("a stalled upload is cut off")
        .unwrap();
    assert_eq!((a.status, a.code().as_str()), (408, "upload_timeout"));
    assert!(
        a.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("upload_idle_timeout_secs")
    );
    let b = tokio::time::timeout(std::time::Duration::from_secs(20), b)
        .await
        .expect("an endless upload is cut off")
        .unwrap();
    assert_eq!((b.status, b.code().as_str()), (408, "upload_timeout"));
    assert!(
        b.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("upload_timeout_secs")
    );

    // The slots are free again, and nothing of the cut-off uploads was kept.
    wait_for_uploads(&app, 0).await;
    let r = app
        .call("POST", path, &[("authorization", &auth[0])], &body)
        .await;
    assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
    let finished = app
        .finished_deploy(&auth[0], r.json()["id"].as_str().unwrap())
        .await;
    assert_eq!(finished["status"], "done", "{finished}");
}

#[tokio::test]
async fn ten_thousand_patterns_in_one_purge_are_refused_and_a_thousand_are_planned() {
    let app = deployed(|c| c.server.max_json_bytes = 4 << 20).await;
    let many: Vec<String> = (0..10_000).map(|i| format!("/a/**/{i}*.css")).collect();
    let r = app
        .admin(
            "POST",
            "/v1/sites/default/purges",
            Some(&json!({ "patterns": many, "dry_run": true })),
        )
        .await;
    assert_eq!((r.status, r.code().as_str()), (400, "too_many_patterns"));
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("at most 1000")
    );
    let most: Vec<String> = (0..1000).map(|i| format!("/**/{i}*.css")).collect();
    let r = app
        .admin(
            "POST",
            "/v1/sites/default/purges",
            Some(&json!({ "patterns": most, "dry_run": true })),
        )
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    // The origin still answers.
    assert_eq!(app.call("GET", "/", &[], b"").await.status, 200);
}

/// What schemathesis found against `/openapi.json` (docs/RELIABILITY.md), each fixed.
#[tokio::test]
async fn wrong_methods_bad_limits_empty_parameters_and_long_names_get_documented_answers() {
    let app = deployed(|_| {}).await;
    let auth = format!("Bearer {}", app.admin);
    let headers = [("authorization", auth.as_str())];
    // A route's path with another method: 405 naming the methods it takes.
    for (method, path, allow) in [
        ("PUT", "/v1/sites/default/purges", "POST"),
        ("GET", "/v1/sites/default/deploys", "POST"),
        ("DELETE", "/v1/analytics", "GET"),
        ("PATCH", "/v1/purges/p0", "GET"),
    ] {
        let r = app.call(method, path, &headers, b"").await;
        assert_eq!(r.status, 405, "{method} {path}");
        assert_eq!(r.code(), "method_not_allowed");
        assert_eq!(r.header("allow"), Some(allow), "{method} {path}");
    }
    // A page size outside 1–10,000 is refused, not clamped.
    for limit in ["0", "10001"] {
        let r = app
            .call(
                "GET",
                &format!("/v1/sites/default/assets?limit={limit}"),
                &headers,
                b"",
            )
            .await;
        assert_eq!((r.status, r.code().as_str()), (400, "bad_query"), "{limit}");
    }
    // Empty parameters are absent ones.
    let r = app
        .call(
            "GET",
            "/v1/analytics?from=&to=&group_by=&site=",
            &headers,
            b"",
        )
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    // An unknown site's name is told back cut to 100 characters.
    let long = "x".repeat(60_000);
    let r = app
        .call("GET", &format!("/v1/sites/{long}/assets"), &headers, b"")
        .await;
    assert_eq!((r.status, r.code().as_str()), (404, "unknown_site"));
    assert!(r.body.len() < 1000, "{} bytes", r.body.len());

    // The document says so.
    let doc = app.call("GET", "/openapi.json", &[], b"").await.json();
    let schema = |reference: &serde_json::Value| -> serde_json::Value {
        match reference["$ref"].as_str() {
            Some(r) => doc["components"]["schemas"][r.rsplit('/').next().unwrap()].clone(),
            None => reference.clone(),
        }
    };
    let ok = schema(
        &doc["paths"]["/v1/sites/{site}/purges"]["post"]["responses"]["200"]["content"]["application/json"]
            ["schema"],
    );
    let one_of: Vec<String> = ok["oneOf"]
        .as_array()
        .unwrap_or_else(|| panic!("{ok}"))
        .iter()
        .map(|s| {
            s["$ref"]
                .as_str()
                .unwrap_or_default()
                .rsplit('/')
                .next()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(one_of, ["PurgeJob", "PurgePlan"]);
    let items =
        schema(&doc["components"]["schemas"]["PurgeBody"]["properties"]["patterns"]["items"]);
    assert_eq!(items["minLength"], 1, "{items}");
    let id = &doc["paths"]["/v1/deploys/{id}"]["get"]["parameters"][0]["schema"]["pattern"];
    assert!(id.as_str().unwrap().starts_with("^d"), "{id}");
    let params = doc["paths"]["/v1/analytics"]["get"]["parameters"]
        .as_array()
        .unwrap();
    let group_by = params.iter().find(|p| p["name"] == "group_by").unwrap();
    let group_by = serde_json::to_string(group_by).unwrap();
    assert!(group_by.contains("GroupByParam"), "{group_by}");
    let upload = schema(
        &doc["paths"]["/v1/sites/{site}/deploys"]["post"]["requestBody"]["content"]["application/gzip"]
            ["schema"],
    );
    assert_eq!(upload["minLength"], 1, "{upload}");
}

#[tokio::test]
async fn cdn_logs_posted_with_a_logs_key_reach_the_analytics_once() {
    let app = deployed(|_| {}).await;
    let reader = format!("Bearer {}", key(&app, vec![Scope::Read]).await);
    let shipper = format!("Bearer {}", key(&app, vec![Scope::Logs]).await);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let lines: String = (0..5)
        .map(|i| {
            json!({
                "EdgeStartTimestamp": (now - 60 + i) * 1_000_000_000,
                "ClientRequestPath": "/index.html",
                "EdgeResponseStatus": 200,
                "EdgeResponseBytes": 1000 + i,
                "CacheCacheStatus": if i < 4 { "hit" } else { "miss" },
            })
            .to_string()
                + "\n"
        })
        .collect::<String>()
        + "not json\n";
    let path = "/v1/sites/default/logs";
    let send = |auth: String, body: Vec<u8>| {
        let app = &app;
        async move {
            app.call(
                "POST",
                path,
                &[
                    ("authorization", &auth),
                    ("content-type", "application/x-ndjson"),
                ],
                &body,
            )
            .await
        }
    };
    let r = send(reader.clone(), lines.clone().into_bytes()).await;
    assert_eq!(r.status, 403, "read is not enough");
    let r = send(shipper.clone(), lines.clone().into_bytes()).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let report = r.json();
    assert_eq!(report["format"], "logpush");
    assert_eq!(
        (report["requests"].as_u64(), report["malformed"].as_u64()),
        (Some(5), Some(1))
    );
    assert_eq!(report["totals"]["hits"], 4);
    let r = send(shipper.clone(), lines.into_bytes()).await;
    assert_eq!((r.status, r.code().as_str()), (409, "already_ingested"));
    let r = send(shipper, b"hello\nworld\n".to_vec()).await;
    assert_eq!((r.status, r.code().as_str()), (400, "bad_log"));

    let r = app
        .call(
            "GET",
            "/v1/analytics?site=default",
            &[("authorization", &reader)],
            b"",
        )
        .await;
    assert_eq!(r.status, 200);
    let cdn = &r.json()["sites"][0]["cdn"];
    assert_eq!(cdn["in_range"]["requests"], 5, "counted once: {cdn}");
    assert_eq!(cdn["in_range"]["hit_ratio"], 0.8);
}
