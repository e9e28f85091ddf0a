//! The `cloudflare` provider end to end: R2 storage on moto standing in for R2, purges
//! against the fake Cloudflare API (`edgeship_providers::cloudflare::testing`), through
//! the purge engine, the deploy engine and the binary.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;

use edgeship::jobs::{JobKind, JobStore};
use edgeship::purge::job::{BatchStatus, JobStatus, PurgeJob, RunOptions};
use edgeship_providers::aws::testing as moto;
use edgeship_providers::cloudflare::testing::{self, FakeCloudflare};
use edgeship_providers::cloudflare::{CloudflareProvider, SecretString};
use edgeship_providers::{Provider, SharedProvider};

const HOSTS: [&str; 2] = ["www.example.com", "example.com"];

async fn provider(fake: &FakeCloudflare, hosts: &[&str]) -> SharedProvider {
    let endpoint = moto::moto_endpoint();
    let bucket = moto::unique_bucket("cf-engine");
    moto::create_bucket(&endpoint, &bucket).await;
    let settings = fake.settings(&endpoint, &bucket, hosts);
    Arc::new(
        CloudflareProvider::new("www", settings)
            .with_sdk_config(moto::sdk_config(moto::ACCESS_KEY, moto::SECRET_KEY))
            .with_token(SecretString::from(testing::TOKEN.to_string())),
    )
}

/// Plans `changed` against `site` with the provider's capabilities and runs the job.
async fn purge(
    provider: &SharedProvider,
    changed: &BTreeSet<String>,
    site: &BTreeSet<String>,
) -> PurgeJob {
    let plan = edgeship::purge::plan::plan_paths(changed, site, &provider.capabilities(), 0.1);
    let mut job = PurgeJob::new("www", &provider.to_string(), "deploy", plan);
    let dir = tempfile::tempdir().unwrap();
    let store = JobStore::Dir(dir.path().to_path_buf());
    let options = RunOptions {
        wait: true,
        poll_interval: std::time::Duration::from_millis(10),
        timeout: std::time::Duration::from_secs(30),
    };
    edgeship::purge::job::run(provider, &store, &mut job, &options).await;
    let saved: PurgeJob = store.load(&job.id).await.unwrap().unwrap();
    assert_eq!(saved, job, "the job's every step is saved");
    assert!(JobKind::Purge.owns(&job.id));
    job
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_fifty_changed_files_purge_as_three_url_calls_of_at_most_100() {
    let fake = FakeCloudflare::start().await;
    let provider = provider(&fake, &HOSTS[..1]).await;
    // One changed file in each of 250 directories of ten: no directory is worth a prefix.
    let site: BTreeSet<String> = (0..250)
        .flat_map(|d| (0..10).map(move |f| format!("d{d:03}/f{f}.js")))
        .collect();
    let changed: BTreeSet<String> = (0..250).map(|d| format!("d{d:03}/f0.js")).collect();
    let job = purge(&provider, &changed, &site).await;

    let bodies = fake.purges();
    let sizes: Vec<usize> = bodies
        .iter()
        .map(|b| b["files"].as_array().unwrap().len())
        .collect();
    assert_eq!(sizes, vec![100, 100, 50]);
    let urls: BTreeSet<String> = bodies
        .iter()
        .flat_map(|b| b["files"].as_array().unwrap().clone())
        .map(|u| u.as_str().unwrap().to_string())
        .collect();
    let expected: BTreeSet<String> = changed
        .iter()
        .map(|p| format!("https://www.example.com/{p}"))
        .collect();
    assert_eq!(urls, expected);
    // The job reports every batch's result, with Cloudflare's purge id.
    assert_eq!(job.status, JobStatus::Done);
    assert_eq!(job.batches.len(), 3);
    for batch in &job.batches {
        assert_eq!(batch.status, BatchStatus::Done);
        assert_eq!(
            batch.provider_id.as_deref().map(str::len),
            Some(32),
            "{batch:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_thousand_changed_files_under_one_directory_are_one_prefix_purge() {
    let fake = FakeCloudflare::start().await;
    let provider = provider(&fake, &HOSTS).await;
    let changed: BTreeSet<String> = (0..5000)
        .map(|n| format!("assets/chunk-{n:04}.js"))
        .collect();
    let mut site = changed.clone();
    site.extend(["index.html".to_string(), "about/index.html".to_string()]);
    let job = purge(&provider, &changed, &site).await;
    assert_eq!(job.status, JobStatus::Done);
    assert_eq!(
        fake.purges(),
        vec![serde_json::json!({ "prefixes": ["www.example.com/assets", "example.com/assets"] })],
        "one call, never thousands of URLs"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_is_waited_out_and_the_batch_still_succeeds() {
    let fake = FakeCloudflare::start().await;
    let raw = provider(&fake, &HOSTS[..1]).await;
    let (stack, retries, throttles) = edgeship_providers::wrap(
        raw,
        edgeship_providers::retry::RetryPolicy {
            base_delay_ms: 1,
            ..Default::default()
        },
        Default::default(),
    );
    fake.throttle_next(2, 1);
    let site: BTreeSet<String> = ["a.css".to_string(), "b.css".to_string()].into();
    let job = purge(&stack, &["a.css".to_string()].into(), &site).await;
    assert_eq!(job.status, JobStatus::Done, "{job:?}");
    let statuses: Vec<u16> = fake.calls().iter().map(|c| c.status).collect();
    assert_eq!(statuses, vec![429, 429, 200]);
    assert_eq!(throttles.load(std::sync::atomic::Ordering::Relaxed), 2);
    assert_eq!(retries.load(std::sync::atomic::Ordering::Relaxed), 2);
}

/// A sandbox whose `edgeship.toml` has site `default` on R2 (`bucket` on moto) behind
/// the fake's zone, for both hosts.
fn cloudflare_sandbox(endpoint: &str, bucket: &str, api_base: &str) -> common::Sandbox {
    let sandbox = common::Sandbox::new();
    std::fs::write(
        sandbox.path("edgeship.toml"),
        format!(
            "[sites.default]\nprovider = \"cloudflare\"\n\
             [sites.default.cloudflare]\naccount_id = \"{}\"\nzone_id = \"{}\"\nbucket = \"{bucket}\"\n\
             hosts = [\"www.example.com\", \"example.com\"]\nendpoint = \"{endpoint}\"\napi_base = \"{api_base}\"\n",
            testing::ACCOUNT,
            testing::ZONE,
        ),
    )
    .unwrap();
    sandbox
}

fn run(sandbox: &common::Sandbox, args: &[&str], token: &str) -> std::process::Output {
    let mut cmd = sandbox.command();
    cmd.args(args).env("CLOUDFLARE_API_TOKEN", token);
    common::s3::with_credentials(
        &mut cmd,
        sandbox.dir.path(),
        moto::ACCESS_KEY,
        moto::SECRET_KEY,
    );
    cmd.output().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redeploy_to_r2_puts_and_purges_exactly_the_changed_files_for_every_host() {
    let fake = FakeCloudflare::start().await;
    let endpoint = moto::moto_endpoint();
    let bucket = moto::unique_bucket("cf-e2e");
    moto::create_bucket(&endpoint, &bucket).await;
    let sandbox = cloudflare_sandbox(&endpoint, &bucket, fake.base());
    let site = sandbox.path("site");
    common::copy_tree(&common::fixture("site"), &site);
    let s3 = moto::s3_client(&endpoint);
    let site_arg = site.to_str().unwrap().to_string();

    let first = tokio::task::block_in_place(|| {
        run(&sandbox, &["deploy", &site_arg, "--json"], testing::TOKEN)
    });
    assert_eq!(first.status.code(), Some(0), "{}", common::stderr(&first));
    assert!(
        fake.calls().is_empty(),
        "a first deploy purges nothing (nothing was cached)"
    );
    let before = common::s3::objects(&s3, &bucket).await;
    assert!(before.contains_key("assets/print.css") && before.contains_key(".edgeship/manifest"));

    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
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
    let second = tokio::task::block_in_place(|| {
        run(&sandbox, &["deploy", &site_arg, "--json"], testing::TOKEN)
    });
    assert_eq!(second.status.code(), Some(0), "{}", common::stderr(&second));
    let after = common::s3::objects(&s3, &bucket).await;
    let changed = ["assets/print.css", "about/index.html", "blog/index.html"];
    let mut expected = common::s3::objects_of(&after, &changed);
    assert!(expected.len() > 3, "variants are stored too: {expected:?}");
    expected.insert(".edgeship/manifest".into());
    let report: serde_json::Value = serde_json::from_slice(&second.stdout).unwrap();
    expected.insert(".edgeship/history/index.json".into());
    expected.insert(format!(
        ".edgeship/history/{}.json",
        report["id"].as_str().unwrap()
    ));
    assert_eq!(
        common::s3::rewritten(&before, &after),
        expected,
        "only the changed objects were PUT"
    );

    // Purged: exactly the changed paths, pages also by their directory, for every host.
    let mut files = BTreeSet::new();
    for body in fake.purges() {
        let object = body.as_object().unwrap();
        assert_eq!(object.len(), 1, "{body}");
        let urls = body["files"]
            .as_array()
            .unwrap_or_else(|| panic!("URL purges only: {body}"));
        files.extend(urls.iter().map(|u| u.as_str().unwrap().to_string()));
    }
    let expected_urls: BTreeSet<String> = [
        "/about/",
        "/about/index.html",
        "/assets/print.css",
        "/blog/",
        "/blog/index.html",
    ]
    .iter()
    .flat_map(|path| {
        HOSTS
            .iter()
            .map(move |host| format!("https://{host}{path}"))
    })
    .collect();
    assert_eq!(files, expected_urls);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purge_with_an_invalid_token_exits_2_with_one_clear_error() {
    let fake = FakeCloudflare::start().await;
    let endpoint = moto::moto_endpoint();
    let bucket = moto::unique_bucket("cf-token");
    moto::create_bucket(&endpoint, &bucket).await;
    let sandbox = cloudflare_sandbox(&endpoint, &bucket, fake.base());
    let output = tokio::task::block_in_place(|| {
        run(
            &sandbox,
            &["purge", "/index.html", "/assets/app.js"],
            "a-revoked-token",
        )
    });
    assert_eq!(output.status.code(), Some(2), "{}", common::stderr(&output));
    let stderr = common::stderr(&output);
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(
        errors[0].contains(testing::ZONE) && errors[0].contains("Cache Purge"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("a-revoked-token"),
        "the token is never shown: {stderr}"
    );
    assert_eq!(
        fake.calls().len(),
        1,
        "fatal: not retried, later batches not sent"
    );
}
