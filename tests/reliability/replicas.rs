//! Several `serve` replicas sharing one Redis.
//!
//! - The job queue itself (a Redis Stream with a consumer group) against the real server:
//!   on the shared server, a three-node cluster and over TLS.
//! - Two `serve` processes sharing Redis, an R2 bucket (moto) and the fake Cloudflare
//!   API: deploys and purges sent to both, one replica SIGKILLed mid-job, and every job
//!   done once in effect, checked object by object in the bucket and purge by purge at
//!   the fake API.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use edgeship::cache::Keyspace;
use edgeship::jobs::queue::{JobQueue, JobsConfig};
use edgeship_providers::aws::testing as moto;
use edgeship_providers::cloudflare::testing::{self, FakeCloudflare};

use crate::common::redis::{SHARED_REDIS, delete_prefix, unique_prefix};
use crate::common::redis_topologies::Backend;
use crate::common::{Sandbox, tar_gz_of};
use crate::serve::Serve;

/// A queue on `backend` under `prefix`, as replica `consumer`.
fn queue(backend: &Backend, prefix: &str, consumer: &str, claim_after_secs: u64) -> JobQueue {
    JobQueue::new(
        backend.url(),
        backend.config("queue").redis_options(),
        &Keyspace::new(prefix).unwrap(),
        consumer,
        JobsConfig {
            concurrency: 4,
            claim_after_secs,
            poll_ms: 100,
        },
    )
    .unwrap()
}

fn stream_key(prefix: &str) -> String {
    format!("{prefix}:global:jobs:queue")
}

/// A job is handed to exactly one replica and leaves the stream when it is done.
async fn each_job_goes_to_one_replica_and_leaves_when_done(backend: &Backend) {
    let prefix = unique_prefix("queue-one");
    let a = queue(backend, &prefix, "a", 60);
    let b = queue(backend, &prefix, "b", 60);
    a.ensure_group().await.unwrap();
    b.ensure_group().await.unwrap();
    a.ensure_group().await.unwrap(); // idempotent

    for job in ["p1", "p2", "d3"] {
        a.enqueue(job).await.unwrap();
    }
    assert_eq!(a.depth().await.unwrap(), (3, 0), "{}", backend.label);
    let to_a = a.next(2).await.unwrap();
    let to_b = b.next(4).await.unwrap();
    assert_eq!(to_a.len(), 2, "{}: {to_a:?}", backend.label);
    assert_eq!(to_b.len(), 1, "{}: {to_b:?}", backend.label);
    let mut seen: Vec<&str> = to_a.iter().chain(&to_b).map(|d| d.job.as_str()).collect();
    seen.sort_unstable();
    assert_eq!(seen, ["d3", "p1", "p2"], "{}", backend.label);
    assert!(to_a.iter().chain(&to_b).all(|d| !d.claimed));
    assert!(
        b.next(4).await.unwrap().is_empty(),
        "nothing is handed out twice"
    );
    assert_eq!(a.depth().await.unwrap(), (3, 3), "{}", backend.label);
    // The stream is in the server itself (not in a memory fallback).
    assert_eq!(
        backend.query::<i64>(redis::cmd("XLEN").arg(stream_key(&prefix))),
        3
    );

    for delivery in &to_a {
        a.done(delivery).await.unwrap();
    }
    b.done(&to_b[0]).await.unwrap();
    assert_eq!(a.depth().await.unwrap(), (0, 0), "{}", backend.label);
    let _: i64 = backend.query(redis::cmd("DEL").arg(stream_key(&prefix)));
}

/// A replica that stops checking in loses its job to another after `claim_after_secs`;
/// one that checks in keeps its own.
async fn a_silent_replicas_job_is_claimed_and_a_checking_in_one_keeps_its_own(backend: &Backend) {
    let prefix = unique_prefix("queue-claim");
    let a = queue(backend, &prefix, "a", 3);
    let b = queue(backend, &prefix, "b", 3);
    a.ensure_group().await.unwrap();
    a.enqueue("p-silent").await.unwrap();
    a.enqueue("p-alive").await.unwrap();
    let taken = a.next(2).await.unwrap();
    assert_eq!(taken.len(), 2, "{}", backend.label);
    let (silent, alive) = if taken[0].job == "p-silent" {
        (&taken[0], &taken[1])
    } else {
        (&taken[1], &taken[0])
    };

    // `a` checks in for one job only, every 900 ms, while `b` keeps looking.
    let started = Instant::now();
    let mut claimed = Vec::new();
    while started.elapsed() < Duration::from_secs(8) && claimed.is_empty() {
        assert!(a.check_in(alive).await.unwrap(), "{}", backend.label);
        claimed = b.next(4).await.unwrap();
        tokio::time::sleep(Duration::from_millis(900)).await;
    }
    let waited = started.elapsed();
    assert_eq!(claimed.len(), 1, "{}: {claimed:?}", backend.label);
    assert_eq!(claimed[0].job, "p-silent");
    assert!(claimed[0].claimed, "marked as claimed from another replica");
    assert!(
        waited >= Duration::from_secs(3),
        "{}: claimed after {waited:?}, before claim_after_secs",
        backend.label
    );
    // The old owner learns it lost the job; the new one owns it; the other stays a's.
    assert!(!a.check_in(silent).await.unwrap(), "{}", backend.label);
    assert!(b.check_in(&claimed[0]).await.unwrap(), "{}", backend.label);
    assert!(a.check_in(alive).await.unwrap(), "{}", backend.label);
    b.done(&claimed[0]).await.unwrap();
    a.done(alive).await.unwrap();
    assert_eq!(a.depth().await.unwrap(), (0, 0), "{}", backend.label);
    let _: i64 = backend.query(redis::cmd("DEL").arg(stream_key(&prefix)));
}

/// An entry that is not a job (another writer's) is acknowledged and skipped.
async fn an_entry_without_a_job_is_dropped(backend: &Backend) {
    let prefix = unique_prefix("queue-bad");
    let a = queue(backend, &prefix, "a", 60);
    a.ensure_group().await.unwrap();
    for (field, value) in [("something", "else"), ("job", "../../etc/passwd")] {
        let _: String = backend.query(
            redis::cmd("XADD")
                .arg(stream_key(&prefix))
                .arg("*")
                .arg(field)
                .arg(value),
        );
    }
    a.enqueue("p-good").await.unwrap();
    let taken = a.next(4).await.unwrap();
    assert_eq!(
        taken.iter().map(|d| d.job.as_str()).collect::<Vec<_>>(),
        ["p-good"],
        "{}",
        backend.label
    );
    a.done(&taken[0]).await.unwrap();
    assert_eq!(a.depth().await.unwrap(), (0, 0), "{}", backend.label);
    let _: i64 = backend.query(redis::cmd("DEL").arg(stream_key(&prefix)));
}

crate::common::redis_topologies::on_every_redis!(
    each_job_goes_to_one_replica_and_leaves_when_done,
    a_silent_replicas_job_is_claimed_and_a_checking_in_one_keeps_its_own,
    an_entry_without_a_job_is_dropped,
);

const SITES: usize = 10;
const FILES: usize = 20;

/// The files of `site` in `version`: every third file changes between versions.
fn site_files(site: usize, version: usize) -> BTreeMap<String, Vec<u8>> {
    (0..FILES)
        .map(|file| {
            let changes = file % 3 == 0;
            let v = if changes { version } else { 0 };
            let body = format!("site {site} file {file} version {v}\n").repeat(40 + file);
            (format!("f{file:02}.txt"), body.into_bytes())
        })
        .collect()
}

/// The paths each site's API purge asks for: files no redeploy changes (so the deploys'
/// own purges never name them).
fn purged_paths() -> Vec<String> {
    vec!["/f01.txt".into(), "/f04.txt".into(), "/f07.txt".into()]
}

fn write_site(dir: &Path, files: &BTreeMap<String, Vec<u8>>) {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).unwrap();
    for (path, body) in files {
        std::fs::write(dir.join(path), body).unwrap();
    }
}

/// The shared configuration: ten sites in one R2 bucket (one prefix each) behind the
/// fake's zone, files stored as they are (no minifying, no variants, no dictionary
/// deltas) so the bucket can be compared byte for byte, uploads slowed so a kill lands mid-deploy, and jobs claimed
/// 3 s after their replica stops checking in.
fn config(endpoint: &str, bucket: &str, api_base: &str, prefix: &str) -> String {
    let mut toml = format!(
        "[pipeline]\nencodings = []\n[pipeline.minify]\njs = false\ncss = false\njson = false\n\
         [deploy]\nconcurrency = 2\n[deploy.dictionaries]\nenabled = false\n\
         [cache]\nredis_url = \"{SHARED_REDIS}\"\nprefix = \"{prefix}\"\n\
         [jobs]\nconcurrency = 2\nclaim_after_secs = 3\npoll_ms = 200\n"
    );
    for site in 0..SITES {
        toml.push_str(&format!(
            "[sites.s{site}]\nprovider = \"cloudflare\"\n\
             [sites.s{site}.faults]\nlatency_ms = 150\nonly = [\"put\"]\n\
             [sites.s{site}.cloudflare]\naccount_id = \"{}\"\nzone_id = \"{}\"\nbucket = \"{bucket}\"\n\
             prefix = \"s{site}/\"\nhosts = [\"s{site}.example.com\"]\nendpoint = \"{endpoint}\"\napi_base = \"{api_base}\"\n",
            testing::ACCOUNT,
            testing::ZONE,
        ));
    }
    toml
}

/// A replica: its own data directory, the shared config.
fn replica(config: &str) -> Sandbox {
    let sandbox = Sandbox::new();
    std::fs::write(sandbox.path("edgeship.toml"), config).unwrap();
    sandbox
}

fn env(sandbox: &Sandbox) -> Vec<(&'static str, String)> {
    vec![
        (
            "EDGESHIP_CONFIG",
            sandbox.path("edgeship.toml").display().to_string(),
        ),
        ("CLOUDFLARE_API_TOKEN", testing::TOKEN.into()),
        ("AWS_ACCESS_KEY_ID", moto::ACCESS_KEY.into()),
        ("AWS_SECRET_ACCESS_KEY", moto::SECRET_KEY.into()),
        ("AWS_EC2_METADATA_DISABLED", "true".into()),
        (
            "AWS_CONFIG_FILE",
            sandbox.path("no-aws-config").display().to_string(),
        ),
        (
            "AWS_SHARED_CREDENTIALS_FILE",
            sandbox.path("no-aws-credentials").display().to_string(),
        ),
    ]
}

fn start(sandbox: &Sandbox) -> (Serve, Option<String>) {
    let env = env(sandbox);
    let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    Serve::start(sandbox, &pairs)
}

async fn post_deploy(serve: &Serve, key: &str, site: usize, dir: &Path) -> String {
    let r = serve
        .call(
            key,
            "POST",
            &format!("/v1/sites/s{site}/deploys"),
            &[("content-type", "application/gzip")],
            &tar_gz_of(dir),
        )
        .await;
    assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
    r.json()["id"].as_str().unwrap().to_string()
}

async fn post_purge(serve: &Serve, key: &str, site: usize) -> String {
    let body = serde_json::json!({ "patterns": purged_paths() }).to_string();
    let r = serve
        .call(
            key,
            "POST",
            &format!("/v1/sites/s{site}/purges"),
            &[("content-type", "application/json")],
            body.as_bytes(),
        )
        .await;
    assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
    r.json()["id"].as_str().unwrap().to_string()
}

async fn finished(serve: &Serve, key: &str, id: &str) -> serde_json::Value {
    let path = if id.starts_with('d') {
        format!("/v1/deploys/{id}")
    } else {
        format!("/v1/purges/{id}")
    };
    serve
        .wait_for(key, &path, Duration::from_secs(180), |job| {
            !matches!(
                job["status"].as_str(),
                Some("queued" | "pending" | "running")
            )
        })
        .await
}

/// Every object under each site's prefix, with its bytes, from the bucket itself.
async fn stored(
    s3: &edgeship_providers::aws::sdk::aws_sdk_s3::Client,
    bucket: &str,
) -> BTreeMap<String, Vec<u8>> {
    let mut objects = BTreeMap::new();
    for key in crate::common::s3::objects(s3, bucket).await.into_keys() {
        let body = s3
            .get_object()
            .bucket(bucket)
            .key(&key)
            .send()
            .await
            .unwrap()
            .body
            .collect()
            .await
            .unwrap()
            .into_bytes()
            .to_vec();
        objects.insert(key, body);
    }
    objects
}

/// The job ids a replica's log says it started running.
fn started_by(log: &str) -> BTreeSet<String> {
    log.lines()
        .filter(|line| line.contains("running a queued job"))
        .filter_map(|line| {
            let at = line.find("job=")? + 4;
            let id: String = line[at..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                .collect();
            Some(id)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_share_jobs_and_the_survivor_finishes_what_a_killed_one_was_running() {
    let fake = FakeCloudflare::start().await;
    let endpoint = moto::moto_endpoint();
    let bucket = moto::unique_bucket("replicas");
    moto::create_bucket(&endpoint, &bucket).await;
    let s3 = moto::s3_client(&endpoint);
    let prefix = unique_prefix("replicas");
    let config = config(&endpoint, &bucket, fake.base(), &prefix);
    let (sandbox_a, sandbox_b) = (replica(&config), replica(&config));
    let (mut a, admin) = tokio::task::block_in_place(|| start(&sandbox_a));
    let key = admin.expect("a first start prints the admin key");
    let (b, second) = tokio::task::block_in_place(|| start(&sandbox_b));
    assert!(
        second.is_none(),
        "the second replica finds the key in Redis"
    );

    // Version 0 of every site, through both replicas.
    let work = tempfile::tempdir().unwrap();
    let mut first = Vec::new();
    for site in 0..SITES {
        let dir = work.path().join(format!("s{site}-v0"));
        write_site(&dir, &site_files(site, 0));
        let via = if site % 2 == 0 { &a } else { &b };
        first.push(post_deploy(via, &key, site, &dir).await);
    }
    for id in &first {
        assert_eq!(finished(&b, &key, id).await["status"], "done");
    }
    let calls_before = fake.purges().len();

    // Twenty jobs: a redeploy (version 1) and a purge of every site, spread over both.
    let mut deploys = Vec::new();
    let mut purges = Vec::new();
    for site in 0..SITES {
        let dir = work.path().join(format!("s{site}-v1"));
        write_site(&dir, &site_files(site, 1));
        let (one, other) = if site % 2 == 0 { (&a, &b) } else { (&b, &a) };
        deploys.push(post_deploy(one, &key, site, &dir).await);
        purges.push(post_purge(other, &key, site).await);
    }
    // Kill `a` while it runs a redeploy (uploads take 150 ms each, two at a time).
    let deadline = Instant::now() + Duration::from_secs(60);
    while !started_by(&a.log()).iter().any(|id| deploys.contains(id)) {
        assert!(
            Instant::now() < deadline,
            "a never ran a redeploy:\n{}",
            a.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    let a_log = a.log();
    a.kill();
    let cut: BTreeSet<String> = started_by(&a_log)
        .into_iter()
        .filter(|id| deploys.contains(id) || purges.contains(id))
        .collect();
    eprintln!("a was killed running or having run: {cut:?}");

    // The survivor finishes everything.
    for id in deploys.iter().chain(&purges) {
        let job = finished(&b, &key, id).await;
        assert_eq!(job["status"], "done", "{job}");
    }
    let b_log = b.log();
    let unfinished_by_a: Vec<&String> = cut
        .iter()
        .filter(|id| started_by(&b_log).contains(*id))
        .collect();
    assert!(
        !unfinished_by_a.is_empty(),
        "b claimed at least one job a was running: a ran {cut:?}"
    );
    assert!(
        b_log.contains("claimed a job whose replica stopped checking in"),
        "{b_log}"
    );

    // The bucket, object by object: every site holds exactly version 1 and its
    // manifest, and no staged upload is left.
    let objects = stored(&s3, &bucket).await;
    for site in 0..SITES {
        let want = site_files(site, 1);
        let have: BTreeMap<String, Vec<u8>> = objects
            .iter()
            .filter_map(|(key, body)| {
                let rel = key.strip_prefix(&format!("s{site}/"))?;
                (!rel.starts_with(".edgeship/")).then(|| (rel.to_string(), body.clone()))
            })
            .collect();
        assert_eq!(
            have.keys().collect::<Vec<_>>(),
            want.keys().collect::<Vec<_>>(),
            "site s{site}"
        );
        for (path, body) in &want {
            assert!(have[path] == *body, "s{site}/{path} is not version 1's");
        }
        assert!(objects.contains_key(&format!("s{site}/.edgeship/manifest")));
        assert!(!objects.contains_key(&format!("s{site}/.edgeship/deploy-in-progress")));
    }
    let staged: Vec<&String> = objects
        .keys()
        .filter(|k| k.contains(".edgeship/staging/"))
        .collect();
    assert!(staged.is_empty(), "staged uploads left: {staged:?}");

    // Purges at the fake API: every site's paths purged; once for jobs a never ran, at
    // most twice for one a was running (a batch sent just before the kill, whose state
    // was not saved yet, goes again: purging twice is harmless, losing one is not).
    let purge_bodies = &fake.purges()[calls_before..];
    for (site, id) in purges.iter().enumerate() {
        for path in purged_paths() {
            let url = format!("https://s{site}.example.com{path}");
            let times = purge_bodies
                .iter()
                .filter(|body| {
                    body["files"]
                        .as_array()
                        .is_some_and(|files| files.iter().any(|f| f == url.as_str()))
                })
                .count();
            if cut.contains(id) {
                assert!((1..=2).contains(&times), "{url}: purged {times} times");
            } else {
                assert_eq!(times, 1, "{url}: purged {times} times by job {id}");
            }
        }
    }
    // The queue is empty: nothing left pending for a replica that is gone.
    let queue = JobQueue::new(
        SHARED_REDIS,
        edgeship::config::CacheConfig::default().redis_options(),
        &Keyspace::new(&prefix).unwrap(),
        "checker",
        JobsConfig::default(),
    )
    .unwrap();
    assert_eq!(queue.depth().await.unwrap(), (0, 0));
    drop(b);
    delete_prefix(&prefix);
}

/// Redis restarted without its data forgets the queue: a purge that waited there (the
/// only worker busy with a slow deploy) is run by the replica that queued it, from its
/// own copy of the job, once nobody has touched the job for `claim_after_secs`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_job_a_restarted_redis_forgot_is_run_by_the_replica_that_queued_it() {
    let mut redis = crate::common::redis::PrivateRedis::start();
    let url = redis.url();
    let app = crate::common::http::TestApp::spawn_with(|c| {
        c.cache = crate::common::redis::redis_config(&url, "lost-queue");
        c.cache.command_timeout_ms = 300;
        c.cache.reconnect_interval_ms = 100;
        c.jobs = JobsConfig {
            concurrency: 1,
            claim_after_secs: 3,
            poll_ms: 100,
        };
        c.deploy.concurrency = 1;
        c.sites.insert(
            "default".into(),
            toml::from_str("provider = \"local\"\n[faults]\nlatency_ms = 150\nonly = [\"put\"]\n")
                .unwrap(),
        );
    })
    .await;
    let work = tempfile::tempdir().unwrap();
    let site = work.path().join("site");
    let files = |version: usize| -> BTreeMap<String, Vec<u8>> {
        (0..30)
            .map(|f| {
                (
                    format!("f{f:02}.txt"),
                    format!("file {f} v{version}\n").repeat(30).into_bytes(),
                )
            })
            .collect()
    };
    write_site(&site, &files(0));
    app.deploy_dir(&site).await;

    // The only worker busy for about 4.5 s with a redeploy of every file...
    write_site(&site, &files(1));
    let auth = format!("Bearer {}", app.admin);
    let r = app
        .call(
            "POST",
            "/v1/sites/default/deploys",
            &[
                ("authorization", &auth),
                ("content-type", "application/gzip"),
            ],
            &tar_gz_of(&site),
        )
        .await;
    assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
    let deploy = r.json()["id"].as_str().unwrap().to_string();
    // ...and a purge queued behind it.
    let r = app
        .admin(
            "POST",
            "/v1/sites/default/purges",
            Some(&serde_json::json!({ "patterns": ["/f01.txt"] })),
        )
        .await;
    assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
    let purge = r.json()["id"].as_str().unwrap().to_string();
    let waiting = app
        .admin("GET", &format!("/v1/purges/{purge}"), None)
        .await
        .json();
    assert_eq!(waiting["status"], "pending", "{waiting}");

    // Redis restarts empty: the queue, with the purge's entry, is gone.
    redis.kill();
    redis.restart();
    let mut conn = crate::common::redis::raw_connection(&url);
    let keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut conn).unwrap();
    assert!(keys.is_empty(), "Redis came back empty: {keys:?}");

    let deadline = Instant::now() + Duration::from_secs(60);
    let (deploy_job, purge_job) = loop {
        let d = app
            .admin("GET", &format!("/v1/deploys/{deploy}"), None)
            .await
            .json();
        let p = app
            .admin("GET", &format!("/v1/purges/{purge}"), None)
            .await
            .json();
        let open =
            |s: &serde_json::Value| matches!(s.as_str(), Some("queued" | "pending" | "running"));
        if !open(&d["status"]) && !open(&p["status"]) {
            break (d, p);
        }
        assert!(Instant::now() < deadline, "still open after 60 s: {d} {p}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(deploy_job["status"], "done", "{deploy_job}");
    assert_eq!(purge_job["status"], "done", "{purge_job}");
    // Nothing is left noted as queued.
    let marks = edgeship::jobs::queue::marks_dir(app.data.path());
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::fs::read_dir(&marks).map(|d| d.count()).unwrap_or(0) > 0 {
        assert!(
            Instant::now() < deadline,
            "notes left in {}",
            marks.display()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
