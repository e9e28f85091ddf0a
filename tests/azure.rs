//! The `azure` provider end to end: Blob storage on Azurite, Front Door purges and Entra
//! ID tokens against the fake ARM and token endpoints
//! (`edgeship_providers::azure::testing`), through the purge engine, the deploy engine
//! and the binary.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;

use edgeship::jobs::JobStore;
use edgeship::purge::job::{BatchStatus, JobStatus, PurgeJob, RunOptions};
use edgeship_providers::azure::testing::{self, FakeAzure};
use edgeship_providers::azure::{AZURITE_KEY, AzureProvider, AzureSettings};
use edgeship_providers::{Provider, SharedProvider};

/// Runs a purge job of `changed` (in a site of `site`) to its end.
async fn purge_job(provider: &SharedProvider, changed: &[&str], site: &[&str]) -> PurgeJob {
    let changed: BTreeSet<String> = changed.iter().map(|p| p.to_string()).collect();
    let site: BTreeSet<String> = site.iter().map(|p| p.to_string()).collect();
    let plan = edgeship::purge::plan::plan_paths(&changed, &site, &provider.capabilities(), 0.1);
    let mut job = PurgeJob::new("www", &provider.to_string(), "deploy", plan);
    let dir = tempfile::tempdir().unwrap();
    let store = JobStore::Dir(dir.path().to_path_buf());
    let options = RunOptions {
        wait: true,
        poll_interval: std::time::Duration::from_millis(10),
        timeout: std::time::Duration::from_secs(30),
    };
    edgeship::purge::job::run(provider, &store, &mut job, &options).await;
    job
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purge_job_follows_front_doors_operation_to_done_or_failed() {
    let fake = FakeAzure::start().await;
    fake.polls_before_end(3);
    let endpoint = testing::azurite_endpoint();
    let container = testing::unique_container("job");
    testing::create_container(&endpoint, &container).await;
    let mut vars = fake.env();
    vars.push(("AZURE_STORAGE_KEY", AZURITE_KEY.to_string()));
    let provider: SharedProvider = Arc::new(
        AzureProvider::new(AzureSettings {
            front_door: Some(fake.front_door()),
            ..testing::azurite_settings(&endpoint, &container)
        })
        .with_env(testing::env_of(vars)),
    );
    let site = ["index.html", "a.css", "blog/index.html"];
    let job = purge_job(&provider, &["a.css"], &site).await;
    assert_eq!(job.status, JobStatus::Done, "{job:?}");
    assert_eq!(job.batches.len(), 1);
    assert!(
        job.batches[0]
            .provider_id
            .as_deref()
            .is_some_and(|id| id.contains("/operationresults/")),
        "{job:?}"
    );
    let polls = fake
        .calls()
        .iter()
        .filter(|(method, target, _)| method == "GET" && target.contains("/operationresults/"))
        .count();
    assert_eq!(polls, 4, "three InProgress answers, then Succeeded");

    fake.polls_before_end(1);
    fake.fail_next();
    let job = purge_job(&provider, &["blog/index.html"], &site).await;
    assert_eq!(job.status, JobStatus::Failed, "{job:?}");
    assert_eq!(job.batches[0].status, BatchStatus::Failed);
    assert_eq!(job.batches[0].class.as_deref(), Some("failed"));
    assert!(
        job.batches[0]
            .error
            .as_deref()
            .is_some_and(|e| e.contains("Purge failed")),
        "{job:?}"
    );
    assert_eq!(
        fake.purges()[1].content_paths,
        ["/blog/", "/blog/index.html"],
        "an index page is purged by its directory too"
    );
}

/// A sandbox whose `edgeship.toml` has site `default` in `container` on Azurite, behind
/// the fake's Front Door endpoint.
fn azure_sandbox(endpoint: &str, container: &str, fake: &FakeAzure) -> common::Sandbox {
    let sandbox = common::Sandbox::new();
    std::fs::write(
        sandbox.path("edgeship.toml"),
        format!(
            "[sites.default]\nprovider = \"azure\"\n\
             [sites.default.azure]\naccount = \"devstoreaccount1\"\ncontainer = \"{container}\"\nendpoint = \"{endpoint}\"\n\
             [sites.default.azure.front_door]\nsubscription_id = \"{}\"\nresource_group = \"{}\"\nprofile = \"{}\"\nendpoint = \"{}\"\n\
             domains = [\"www.example.com\"]\nmanagement_url = \"{}\"\n[purge]\npoll_interval_ms = 50\n",
            testing::SUBSCRIPTION,
            testing::RESOURCE_GROUP,
            testing::PROFILE,
            testing::ENDPOINT,
            fake.base(),
        ),
    )
    .unwrap();
    sandbox
}

fn run(
    sandbox: &common::Sandbox,
    fake: &FakeAzure,
    args: &[&str],
    key: &str,
) -> std::process::Output {
    let mut cmd = sandbox.command();
    cmd.args(args).env("AZURE_STORAGE_KEY", key);
    for (name, value) in fake.env() {
        cmd.env(name, value);
    }
    for name in [
        "AZURE_STORAGE_CONNECTION_STRING",
        "AZURE_STORAGE_SAS_TOKEN",
        "IDENTITY_ENDPOINT",
    ] {
        cmd.env_remove(name);
    }
    cmd.output().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redeploy_to_azure_puts_only_the_changed_blob_and_purges_its_path_and_directory() {
    let fake = FakeAzure::start().await;
    let endpoint = testing::azurite_endpoint();
    let container = testing::unique_container("e2e");
    testing::create_container(&endpoint, &container).await;
    let sandbox = azure_sandbox(&endpoint, &container, &fake);
    let site = sandbox.path("site");
    common::copy_tree(&common::fixture("site"), &site);
    let site_arg = site.to_str().unwrap().to_string();

    let first = tokio::task::block_in_place(|| {
        run(
            &sandbox,
            &fake,
            &["deploy", &site_arg, "--json"],
            AZURITE_KEY,
        )
    });
    assert_eq!(first.status.code(), Some(0), "{}", common::stderr(&first));
    assert!(fake.purges().is_empty(), "a first deploy purges nothing");
    let before = testing::blobs(&endpoint, &container).await;
    assert!(
        before.contains_key("blog/index.html") && before.contains_key(".edgeship/manifest"),
        "{before:?}"
    );
    // Precompressed variants are stored beside the identity blob.
    assert!(
        before
            .keys()
            .any(|k| k.starts_with("blog/index.html") && k != "blog/index.html")
    );

    common::append(
        &site.join("blog/index.html"),
        "\n<p>Updated for the second deploy.</p>\n",
    );
    let second = tokio::task::block_in_place(|| {
        run(
            &sandbox,
            &fake,
            &["deploy", &site_arg, "--json"],
            AZURITE_KEY,
        )
    });
    assert_eq!(second.status.code(), Some(0), "{}", common::stderr(&second));
    let after = testing::blobs(&endpoint, &container).await;
    let rewritten: BTreeSet<&str> = after
        .iter()
        .filter(|(name, etag)| before.get(*name) != Some(*etag))
        .map(|(name, _)| name.as_str())
        .collect();
    let page: BTreeSet<&str> = after
        .keys()
        .map(String::as_str)
        .filter(|k| *k == "blog/index.html" || k.starts_with("blog/index.html."))
        .collect();
    let report: serde_json::Value = serde_json::from_slice(&second.stdout).unwrap();
    let record = format!(".edgeship/history/{}.json", report["id"].as_str().unwrap());
    let mut expected = page.clone();
    expected.insert(".edgeship/manifest");
    expected.insert(".edgeship/history/index.json");
    expected.insert(&record);
    assert_eq!(
        rewritten, expected,
        "only the changed page's blobs were written"
    );

    let purges = fake.purges();
    assert_eq!(purges.len(), 1, "{purges:?}");
    assert_eq!(purges[0].content_paths, ["/blog/", "/blog/index.html"]);
    assert_eq!(purges[0].domains, ["www.example.com"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_account_key_exits_2_with_one_error_naming_the_account_and_the_setting() {
    let fake = FakeAzure::start().await;
    let endpoint = testing::azurite_endpoint();
    let container = testing::unique_container("wrong-key");
    testing::create_container(&endpoint, &container).await;
    let sandbox = azure_sandbox(&endpoint, &container, &fake);
    let site = sandbox.path("site");
    common::copy_tree(&common::fixture("site"), &site);
    let wrong = "d3Jvbmcga2V5IHdyb25nIGtleSB3cm9uZyBrZXk=";
    let output = tokio::task::block_in_place(|| {
        run(&sandbox, &fake, &["deploy", site.to_str().unwrap()], wrong)
    });
    assert_eq!(output.status.code(), Some(2), "{}", common::stderr(&output));
    let stderr = common::stderr(&output);
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(
        errors[0].contains("devstoreaccount1") && errors[0].contains("AZURE_STORAGE_KEY"),
        "{stderr}"
    );
    assert!(!stderr.contains(wrong), "the key is never shown: {stderr}");
    assert!(testing::blobs(&endpoint, &container).await.is_empty());
}
