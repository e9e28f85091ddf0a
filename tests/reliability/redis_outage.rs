//! Redis killed and restarted (without persistence: it comes back empty) under a bounded
//! mixed API load — deploy uploads, purges, analytics, origin GETs — against the app on
//! a random port: no request fails, `/readyz` says degraded while Redis is down, API
//! keys (old and new) keep working, and afterwards every job is readable and the origin's
//! counts of the outage and after are in the restarted Redis.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::common::http::{Response, TestApp};
use crate::common::redis::{PrivateRedis, raw_connection, redis_config};

/// What one round of load did.
#[derive(Debug, Default)]
struct Tally {
    requests: u64,
    failures: Vec<String>,
    deploys: Vec<String>,
    purges: Vec<String>,
    /// Origin responses per encoding they carried.
    origin: BTreeMap<String, i64>,
}

impl Tally {
    fn expect(&mut self, what: &str, r: &Response, status: u16) -> bool {
        self.requests += 1;
        if r.status != status {
            self.failures.push(format!(
                "{what}: {} {}",
                r.status,
                String::from_utf8_lossy(&r.body)
            ));
            return false;
        }
        true
    }

    fn add(&mut self, other: Self) {
        self.requests += other.requests;
        self.failures.extend(other.failures);
        self.deploys.extend(other.deploys);
        self.purges.extend(other.purges);
        for (encoding, n) in other.origin {
            *self.origin.entry(encoding).or_default() += n;
        }
    }
}

/// Polls a job until it is finished; every poll must answer 200.
async fn finish(app: &TestApp, key: &str, path: &str, tally: &mut Tally) -> serde_json::Value {
    let auth = format!("Bearer {key}");
    for _ in 0..600 {
        let r = app
            .call("GET", path, &[("authorization", &auth)], b"")
            .await;
        if !tally.expect(path, &r, 200) {
            return serde_json::Value::Null;
        }
        let job = r.json();
        if !["queued", "running", "pending"].contains(&job["status"].as_str().unwrap_or("")) {
            return job;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    tally.failures.push(format!("{path} never finished"));
    serde_json::Value::Null
}

/// Two deploys (each changes one file), one after the other as a CI would send them.
async fn deploys(app: &TestApp, key: &str, site: &Path, round: u32) -> Tally {
    let mut tally = Tally::default();
    let auth = format!("Bearer {key}");
    for n in 0..2 {
        std::fs::write(
            site.join("changing.txt"),
            format!("round {round}, deploy {n}\n"),
        )
        .unwrap();
        let r = app
            .call(
                "POST",
                "/v1/sites/default/deploys",
                &[
                    ("authorization", &auth),
                    ("content-type", "application/gzip"),
                ],
                &crate::common::tar_gz_of(site),
            )
            .await;
        if !tally.expect("deploy", &r, 202) {
            continue;
        }
        let id = r.json()["id"].as_str().unwrap().to_string();
        let job = finish(app, key, &format!("/v1/deploys/{id}"), &mut tally).await;
        if job["status"] != "done" {
            tally.failures.push(format!("deploy {id}: {job}"));
        }
        tally.deploys.push(id);
    }
    tally
}

async fn purges(app: &TestApp, key: &str) -> Tally {
    let mut tally = Tally::default();
    let auth = format!("Bearer {key}");
    for patterns in [vec!["/index.html"], vec!["/assets/**/*.css", "/blog/"]] {
        let body = serde_json::json!({ "patterns": patterns }).to_string();
        let r = app
            .call(
                "POST",
                "/v1/sites/default/purges",
                &[
                    ("authorization", &auth),
                    ("content-type", "application/json"),
                ],
                body.as_bytes(),
            )
            .await;
        if !tally.expect("purge", &r, 202) {
            continue;
        }
        let id = r.json()["id"].as_str().unwrap().to_string();
        let job = finish(app, key, &format!("/v1/purges/{id}"), &mut tally).await;
        if job["status"] != "done" {
            tally.failures.push(format!("purge {id}: {job}"));
        }
        tally.purges.push(id);
    }
    tally
}

async fn analytics(app: &TestApp, key: &str) -> Tally {
    let mut tally = Tally::default();
    let auth = format!("Bearer {key}");
    for query in [
        "site=default",
        "site=default&group_by=day",
        "",
        "site=default&group_by=hour",
    ] {
        let r = app
            .call(
                "GET",
                &format!("/v1/analytics?{query}"),
                &[("authorization", &auth)],
                b"",
            )
            .await;
        tally.expect("analytics", &r, 200);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tally
}

async fn origin(app: &TestApp) -> Tally {
    let mut tally = Tally::default();
    for i in 0..60 {
        let accept = ["br", "gzip", "identity"][i % 3];
        let path = ["/index.html", "/about/", "/assets/print.css"][i / 3 % 3];
        let r = app
            .call("GET", path, &[("accept-encoding", accept)], b"")
            .await;
        if tally.expect(path, &r, 200) {
            let encoding = r
                .header("content-encoding")
                .unwrap_or("identity")
                .to_string();
            *tally.origin.entry(encoding).or_default() += 1;
        }
    }
    tally
}

/// One round of the mixed load, every kind at once.
async fn round(app: &TestApp, key: &str, site: &Path, n: u32) -> Tally {
    let (a, b, c, d) = tokio::join!(
        deploys(app, key, site, n),
        purges(app, key),
        analytics(app, key),
        origin(app),
    );
    let mut tally = Tally::default();
    for t in [a, b, c, d] {
        tally.add(t);
    }
    tally
}

/// Origin requests per encoding in Redis's totals of site `default`.
fn origin_requests(conn: &mut redis::Connection, app: &TestApp) -> BTreeMap<String, i64> {
    let totals = app.state.cache().site("default").key("origin:served");
    let stored: BTreeMap<String, i64> = redis::cmd("HGETALL")
        .arg(totals.as_str())
        .query(conn)
        .unwrap();
    stored
        .iter()
        .filter_map(|(field, n)| {
            field
                .strip_suffix(":requests")
                .map(|encoding| (encoding.to_string(), *n))
        })
        .collect()
}

/// Waits until Redis holds `expected` origin requests (the counts are flushed every
/// second).
async fn wait_for_origin_counts(
    conn: &mut redis::Connection,
    app: &TestApp,
    expected: &BTreeMap<String, i64>,
    what: &str,
) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let requests = origin_requests(conn, app);
        if requests == *expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "origin requests in Redis {requests:?}, served {what} {expected:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn readyz(app: &TestApp) -> (u16, serde_json::Value) {
    let r = app.call("GET", "/readyz", &[], b"").await;
    (r.status, r.json())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_under_a_mixed_api_load_fails_no_request_and_loses_no_job_or_count() {
    let mut redis = PrivateRedis::start();
    let url = redis.url();
    let app = TestApp::spawn_with(|c| {
        c.cache = redis_config(&url, "outage-load");
        c.cache.command_timeout_ms = 300;
        c.cache.reconnect_interval_ms = 100;
        c.server.key_rate_per_sec = 10_000;
        c.server.key_burst = 10_000;
        c.server.ip_rate_per_sec = 10_000;
        c.server.ip_burst = 10_000;
    })
    .await;
    let cache = app.state.cache().clone();
    let key = app.admin.clone();
    let work = tempfile::tempdir().unwrap();
    let site = work.path().join("site");
    crate::common::copy_tree(&crate::common::fixture("site"), &site);
    let mut total = Tally::default();

    // Redis up: the site deployed, then the load.
    assert_eq!(readyz(&app).await.0, 200);
    let first = app.deploy_fixtures(&format!("Bearer {key}")).await;
    assert_eq!(first["status"], "done", "{first}");
    let before = round(&app, &key, &site, 0).await;
    let mut conn = raw_connection(&url);
    for id in before.deploys.iter().chain(&before.purges) {
        let stored: bool = redis::cmd("EXISTS")
            .arg(cache.keys().global().job(id).as_str())
            .query(&mut conn)
            .unwrap();
        assert!(stored, "job {id} is in Redis before the outage");
    }
    wait_for_origin_counts(&mut conn, &app, &before.origin, "before the outage").await;
    total.add(before);

    // Redis killed: the same load, and a key created during the outage.
    redis.kill();
    let (status, ready) = readyz(&app).await;
    assert_eq!(
        (status, ready["status"].as_str()),
        (503, Some("degraded")),
        "{ready}"
    );
    assert_eq!(ready["component"], "cache", "{ready}");
    let during = round(&app, &key, &site, 1).await;
    let new_key = app
        .state
        .guard()
        .create_key("during-outage", vec![edgeship::api_keys::Scope::Read])
        .await
        .expect("keys can be created while Redis is down")
        .token;
    let r = app
        .call(
            "GET",
            "/v1/cache/stats",
            &[("authorization", &format!("Bearer {new_key}"))],
            b"",
        )
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["degraded"], true);
    assert_eq!(
        readyz(&app).await.0,
        503,
        "still degraded at the end of the round"
    );
    let outage_origin = during.origin.clone();
    total.add(during);

    // Redis back (empty): readiness returns by itself, then the load again.
    redis.restart();
    let deadline = Instant::now() + Duration::from_secs(15);
    while readyz(&app).await.0 != 200 {
        assert!(
            Instant::now() < deadline,
            "still degraded 15 s after Redis returned"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let after = round(&app, &key, &site, 2).await;
    let mut conn = raw_connection(&url);
    for id in after.deploys.iter().chain(&after.purges) {
        let stored: bool = redis::cmd("EXISTS")
            .arg(cache.keys().global().job(id).as_str())
            .query(&mut conn)
            .unwrap();
        assert!(stored, "job {id} is in the restarted Redis");
    }
    let mut expected = outage_origin;
    for (encoding, n) in &after.origin {
        *expected.entry(encoding.clone()).or_default() += n;
    }
    total.add(after);

    eprintln!(
        "{} requests ({} deploys, {} purges) before, during and after the outage",
        total.requests,
        total.deploys.len(),
        total.purges.len()
    );
    assert!(
        total.failures.is_empty(),
        "failed requests: {:#?}",
        total.failures
    );
    assert!(total.requests > 200, "{} requests", total.requests);

    // Every job, from before, during and after the outage, is still readable.
    let auth = format!("Bearer {key}");
    for (kind, id) in total
        .deploys
        .iter()
        .map(|id| ("deploys", id))
        .chain(total.purges.iter().map(|id| ("purges", id)))
    {
        let r = app
            .call(
                "GET",
                &format!("/v1/{kind}/{id}"),
                &[("authorization", &auth)],
                b"",
            )
            .await;
        assert_eq!(
            r.status,
            200,
            "{kind} {id}: {}",
            String::from_utf8_lossy(&r.body)
        );
        assert_eq!(r.json()["status"], "done", "{kind} {id}");
    }
    // Keys: the admin key (from before) and the new one are back in Redis after use.
    for token in [&key, &new_key] {
        let (id, _) = edgeship::api_keys::parse_token(token).unwrap();
        let r = app
            .call(
                "GET",
                "/v1/cache/stats",
                &[("authorization", &format!("Bearer {token}"))],
                b"",
            )
            .await;
        assert_eq!(r.status, 200);
        let stored: bool = redis::cmd("EXISTS")
            .arg(cache.keys().global().key(&format!("apikey:{id}")).as_str())
            .query(&mut conn)
            .unwrap();
        assert!(stored, "key {id} is in the restarted Redis");
    }
    // The origin's counts of the outage and after reach the restarted Redis (those
    // from before went with the data Redis lost).
    wait_for_origin_counts(&mut conn, &app, &expected, "during and after the outage").await;
    let stats = cache.stats();
    assert_eq!(stats.outages, 1, "{stats:?}");
    assert_eq!(stats.errors, 0, "{stats:?}");
}
