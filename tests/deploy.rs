//! The deploy engine end to end: against the memory provider with injected faults
//! (library API) and the local provider (the real binary, including SIGKILL and resume).

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use edgeship::config::Config;
use edgeship::deploy::{DeployError, DeployOptions, DeployReport, Deployer};
use edgeship::pipeline::build::NoProgress;
use edgeship::pipeline::compress::{Encoding, decode};
use edgeship::pipeline::delta::Sha256;
use edgeship::pipeline::manifest::Manifest;
use edgeship_providers::faults::{FaultConfig, Faulty};
use edgeship_providers::memory::{Call, MemoryProvider};
use edgeship_providers::retry::RetryPolicy;
use edgeship_providers::{Provider, ProviderError};

struct Env {
    dir: tempfile::TempDir,
    config: Config,
}

impl Env {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config {
            data_dir: dir.path().join("data"),
            cache_dir: dir.path().join("cache"),
            ..Config::default()
        };
        // Fast retries keep fault tests quick; the policy shape is what is under test.
        config.deploy.retry = RetryPolicy {
            attempts: 12,
            base_delay_ms: 1,
            max_delay_ms: 20,
            call_timeout_ms: 10_000,
            min_upload_bytes_per_sec: 1024 * 1024,
        };
        Self { dir, config }
    }

    fn options(&self, input: &Path) -> DeployOptions {
        DeployOptions {
            input: input.to_path_buf(),
            dry_run: false,
            delete: false,
            max_deletes: 256,
            concurrency: 16,
        }
    }

    async fn deploy(
        &self,
        provider: Arc<dyn Provider>,
        options: &DeployOptions,
    ) -> Result<DeployReport, DeployError> {
        Deployer::with_provider(&self.config, "default", provider)
            .unwrap()
            .run(options, Arc::new(NoProgress))
            .await
    }
}

/// A generated site: `n` small text files plus a few HTML pages.
fn generated_site(root: &Path, n: usize) -> PathBuf {
    let site = root.join("generated");
    for i in 0..n {
        let path = site.join(format!("d{:02}/file-{i:05}.txt", i % 50));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, format!("file {i}\n").repeat(1 + i % 40)).unwrap();
    }
    for page in ["index.html", "about/index.html"] {
        let path = site.join(page);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(
            path,
            format!(
                "<!doctype html><title>{page}</title>{}",
                "<p>text</p>".repeat(100)
            ),
        )
        .unwrap();
    }
    site
}

/// Checks, object by object, that the memory provider holds exactly the processed tree:
/// identity bytes, headers, and every variant decoding to the identity.
fn assert_remote_equals_local(memory: &MemoryProvider, config: &Config, input: &Path) {
    let (_, bytes) = memory
        .object(".edgeship/manifest")
        .expect("manifest stored");
    let manifest = Manifest::from_json(&bytes).unwrap();
    let pipeline = edgeship::cli::pipeline_for(config, "default").unwrap();
    let (assets, _) =
        edgeship::pipeline::build::process_dir(&pipeline, input, &NoProgress).unwrap();
    assert_eq!(manifest.assets.len(), assets.len());
    let mut expected_keys = vec![".edgeship/manifest".to_string()];
    for asset in &assets {
        let identity = std::fs::read(asset.identity_file()).unwrap();
        let (meta, stored) = memory
            .object(&asset.path)
            .unwrap_or_else(|| panic!("{} missing", asset.path));
        assert!(stored == identity, "{} bytes differ", asset.path);
        assert_eq!(
            meta.content_type.as_deref(),
            Some(asset.rule.content_type.as_str()),
            "{}",
            asset.path
        );
        assert_eq!(
            meta.cache_control.as_deref(),
            Some(asset.rule.cache_control.as_str()),
            "{}",
            asset.path
        );
        assert_eq!(meta.content_encoding, None);
        // The deploy offers text assets as compression dictionaries, named by the
        // SHA-256 of what ships.
        let mut entry = manifest.assets[&asset.path].clone();
        if let Some(offer) = entry.dictionary.take() {
            assert_eq!(offer.sha256, Sha256::of(&identity), "{}", asset.path);
        }
        assert_eq!(entry, asset.manifest_entry());
        expected_keys.push(asset.path.clone());
        for encoding in asset.variants.keys() {
            let key = format!("{}{}", asset.path, encoding.suffix());
            let (meta, compressed) = memory
                .object(&key)
                .unwrap_or_else(|| panic!("{key} missing"));
            assert_eq!(
                meta.content_encoding.as_deref(),
                Some(encoding.token()),
                "{key}"
            );
            let mut plain = Vec::new();
            decode(*encoding, &mut &compressed[..], &mut plain).unwrap();
            assert!(plain == identity, "{key} does not decode to the identity");
            expected_keys.push(key);
        }
    }
    // The deploy's record in the site's history, and the history's index.
    let history: Vec<String> = memory
        .keys()
        .into_iter()
        .filter(|k| k.starts_with(".edgeship/history/"))
        .collect();
    assert_eq!(history.len(), 2, "{history:?}");
    assert!(history.contains(&".edgeship/history/index.json".to_string()));
    expected_keys.extend(history);
    expected_keys.sort();
    assert_eq!(
        memory.keys(),
        expected_keys,
        "nothing more, nothing less (the in-progress marker is gone)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deploy_through_30_percent_errors_and_10_percent_throttles_ends_complete() {
    let env = Env::new();
    let site = generated_site(env.dir.path(), 5_000);
    for input in [common::fixture("site"), site] {
        let memory = Arc::new(MemoryProvider::default());
        let faults = FaultConfig {
            error_rate: 0.3,
            throttle_rate: 0.1,
            retry_after_ms: 1,
            seed: 9,
            ..Default::default()
        };
        let faulty = Arc::new(Faulty::new(Arc::clone(&memory), faults));
        let report = env
            .deploy(faulty.clone(), &env.options(&input))
            .await
            .unwrap();
        assert!(
            report.failures.is_empty(),
            "{:?}",
            &report.failures[..report.failures.len().min(5)]
        );
        // Every retry answers an injected fault; only a fault on an object's last attempt of
        // a round is answered by the next round instead of a retry.
        let (retries, injected) = (report.retries, faulty.injected());
        assert!(
            retries > 0 && retries <= injected && retries * 100 >= injected * 95,
            "retries {retries}, injected {injected}"
        );
        assert!(report.throttles > 0);
        assert_remote_equals_local(&memory, &env.config, &input);
    }
}

#[tokio::test]
async fn html_is_uploaded_only_after_every_other_asset() {
    let env = Env::new();
    let memory = Arc::new(MemoryProvider::default());
    let faulty = Arc::new(Faulty::new(
        Arc::clone(&memory),
        FaultConfig {
            error_rate: 0.2,
            seed: 3,
            ..Default::default()
        },
    ));
    env.deploy(faulty, &env.options(&common::fixture("site")))
        .await
        .unwrap();
    let puts: Vec<String> = memory
        .calls()
        .into_iter()
        .filter_map(|c| if let Call::Put(k) = c { Some(k) } else { None })
        .collect();
    let is_html = |k: &str| k.contains(".html");
    let first_html = puts.iter().position(|k| is_html(k)).unwrap();
    let last_asset = puts
        .iter()
        .rposition(|k| !is_html(k) && !k.starts_with(".edgeship/"))
        .unwrap();
    assert!(
        last_asset < first_html,
        "asset {} was uploaded after page {}",
        puts[last_asset],
        puts[first_html]
    );
    let manifest_put = puts
        .iter()
        .rposition(|k| k == ".edgeship/manifest")
        .unwrap();
    assert!(
        manifest_put > puts.iter().rposition(|k| is_html(k)).unwrap(),
        "the manifest goes last"
    );
}

#[tokio::test]
async fn a_redeploy_of_an_unchanged_tree_makes_no_put() {
    let env = Env::new();
    let memory = Arc::new(MemoryProvider::default());
    let input = common::fixture("site");
    env.deploy(memory.clone(), &env.options(&input))
        .await
        .unwrap();
    memory.clear_calls();
    let report = env
        .deploy(memory.clone(), &env.options(&input))
        .await
        .unwrap();
    assert_eq!(report.uploaded, 0);
    assert!(report.plan.unchanged > 50);
    let calls = memory.calls();
    assert!(
        !calls
            .iter()
            .any(|c| matches!(c, Call::Put(_) | Call::Delete(_))),
        "{calls:?}"
    );
    assert_eq!(
        calls.len(),
        2,
        "one manifest read and one in-progress check: {calls:?}"
    );
}

/// With the cache layer, a redeploy validates the cached manifest with one `HEAD` instead
/// of downloading it; a manifest changed behind edgeship's back (other hash) is read again.
#[tokio::test]
async fn the_manifest_is_cached_and_revalidated_by_its_hash() {
    let env = Env::new();
    let memory = Arc::new(MemoryProvider::default());
    let cache = edgeship::cache::Cache::memory();
    let input = common::fixture("site");
    let deploy = || async {
        let sites = edgeship::site::Sites::with_cache(&env.config, cache.clone())
            .unwrap()
            .with_provider("default", memory.clone())
            .unwrap();
        Deployer::new(&sites, "default")
            .unwrap()
            .run(&env.options(&input), Arc::new(NoProgress))
            .await
            .unwrap()
    };
    deploy().await;
    let manifest_key = &env.config.deploy.manifest_key;
    let (meta, bytes) = memory.object(manifest_key).unwrap();
    assert_eq!(
        meta.metadata.get("edgeship-hash").map(String::as_str),
        Some(blake3::hash(&bytes).to_hex().as_str()),
        "the stored manifest carries its hash"
    );

    memory.clear_calls();
    let report = deploy().await;
    assert_eq!(report.uploaded, 0);
    let calls = memory.calls();
    assert!(
        calls.contains(&Call::Head(manifest_key.clone()))
            && !calls.contains(&Call::Get(manifest_key.clone())),
        "validated by HEAD, not downloaded: {calls:?}"
    );

    // Someone rewrites the manifest (another tool, a restore): its hash differs, so the
    // next deploy reads it from the provider and sees that nothing is deployed any more.
    let empty = Manifest::default().to_compact_json();
    let mut put = edgeship_providers::PutRequest::bytes(manifest_key.clone(), empty.clone());
    put.metadata.insert(
        "edgeship-hash".into(),
        blake3::hash(&empty).to_hex().to_string(),
    );
    memory.put(put).await.unwrap();
    memory.clear_calls();
    let report = deploy().await;
    assert!(memory.calls().contains(&Call::Get(manifest_key.clone())));
    assert!(
        report.uploaded > 15,
        "everything is uploaded again: {}",
        report.uploaded
    );
    let stored = Manifest::from_json(&memory.object(manifest_key).unwrap().1).unwrap();
    assert!(
        stored.assets.len() > 15,
        "the manifest describes the site again"
    );
}

#[tokio::test]
async fn a_dead_provider_stops_the_deploy_fast_with_one_error_and_the_manifest_unchanged() {
    let env = Env::new();
    let memory = Arc::new(MemoryProvider::default());
    let faulty = Arc::new(Faulty::new(
        Arc::clone(&memory),
        FaultConfig {
            fail_after: Some(0),
            ..Default::default()
        },
    ));
    faulty.set_enabled(false);
    let first = common::fixture("site");
    env.deploy(faulty.clone(), &env.options(&first))
        .await
        .unwrap();
    let manifest_before = memory.object(".edgeship/manifest").unwrap().1;

    faulty.set_enabled(true);
    let big = generated_site(env.dir.path(), 2_000);
    let err = env
        .deploy(faulty.clone(), &env.options(&big))
        .await
        .unwrap_err();
    assert!(
        matches!(
            &err,
            DeployError::Provider(
                ProviderError::CircuitOpen { .. } | ProviderError::RetriesExhausted { .. }
            )
        ),
        "{err:?}"
    );
    assert_eq!(err.exit_code(), 1);
    assert!(
        faulty.injected() < 200,
        "the breaker stopped the deploy after {} failed calls, not thousands",
        faulty.injected()
    );
    assert_eq!(
        memory.object(".edgeship/manifest").unwrap().1,
        manifest_before
    );
}

#[tokio::test]
async fn deletes_above_max_deletes_are_refused_and_delete_nothing() {
    let env = Env::new();
    let memory = Arc::new(MemoryProvider::default());
    let site = generated_site(env.dir.path(), 20);
    env.deploy(memory.clone(), &env.options(&site))
        .await
        .unwrap();
    let before = memory.keys();
    for i in 0..5 {
        std::fs::remove_file(site.join(format!("d{i:02}/file-{i:05}.txt"))).unwrap();
    }
    let options = DeployOptions {
        delete: true,
        max_deletes: 4,
        ..env.options(&site)
    };
    let err = env.deploy(memory.clone(), &options).await.unwrap_err();
    assert_eq!(err.exit_code(), 3);
    assert!(
        err.to_string()
            .contains("would remove 5 stale files, more than --max-deletes 4"),
        "{err}"
    );
    assert_eq!(memory.keys(), before, "nothing changed");

    let options = DeployOptions {
        delete: true,
        max_deletes: 5,
        ..env.options(&site)
    };
    let report = env.deploy(memory.clone(), &options).await.unwrap();
    assert_eq!(report.plan.stale_files, 5);
    assert!(report.deleted >= 5);
    assert!(!memory.keys().iter().any(|k| k.ends_with("file-00000.txt")));
    assert!(
        report
            .purged_paths
            .contains(&"/d00/file-00000.txt".to_string()),
        "deleted paths are purged"
    );
    let manifest = Manifest::from_json(&memory.object(".edgeship/manifest").unwrap().1).unwrap();
    assert!(!manifest.assets.contains_key("d00/file-00000.txt"));
}

#[tokio::test]
async fn changed_files_are_uploaded_and_purged_and_stale_ones_stay_listed_without_delete() {
    let env = Env::new();
    let memory = Arc::new(MemoryProvider::default());
    let site = generated_site(env.dir.path(), 10);
    env.deploy(memory.clone(), &env.options(&site))
        .await
        .unwrap();
    std::fs::write(
        site.join("about/index.html"),
        "<!doctype html><p>changed</p>".repeat(50),
    )
    .unwrap();
    std::fs::remove_file(site.join("d01/file-00001.txt")).unwrap();
    let report = env
        .deploy(memory.clone(), &env.options(&site))
        .await
        .unwrap();
    assert_eq!(
        report.purged_paths,
        vec!["/about/".to_string(), "/about/index.html".to_string()]
    );
    assert_eq!(report.deleted, 0);
    assert!(memory.object("d01/file-00001.txt").is_some());
    let manifest = Manifest::from_json(&memory.object(".edgeship/manifest").unwrap().1).unwrap();
    assert!(
        manifest.assets.contains_key("d01/file-00001.txt"),
        "still stored, so still listed"
    );
    let variants: BTreeMap<Encoding, u64> = manifest.assets["about/index.html"].variants.clone();
    assert!(!variants.is_empty());
}

fn count_sidecars(root: &Path) -> usize {
    walkdir::WalkDir::new(root.join(".edgeship/meta"))
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| {
            e.file_type().is_file()
                && !e
                    .path()
                    .to_string_lossy()
                    .contains(".edgeship/meta/.edgeship/")
        })
        // A write cut short by the kill leaves its temporary file behind.
        .filter(|e| {
            !e.file_name()
                .to_string_lossy()
                .starts_with(".edgeship-tmp-")
        })
        .count()
}

#[test]
fn a_deploy_killed_mid_upload_resumes_with_only_the_missing_objects() {
    let sandbox = common::Sandbox::new();
    let site = generated_site(sandbox.dir.path(), 300);
    let config = sandbox.path("edgeship.toml");
    std::fs::write(
        &config,
        "[sites.default]\nprovider = \"local\"\n[sites.default.faults]\nlatency_ms = 15\n",
    )
    .unwrap();
    let mut child = sandbox
        .command()
        .args([
            "deploy",
            site.to_str().unwrap(),
            "--concurrency",
            "4",
            "--json",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let root = sandbox.path("data/sites/default");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while count_sidecars(&root) < 60 {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the deploy finished before it could be killed"
        );
        assert!(std::time::Instant::now() < deadline, "no progress");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    // SIGKILL: no chance to clean up.
    child.kill().unwrap();
    child.wait().unwrap();
    let completed = count_sidecars(&root);
    assert!(
        root.join(".edgeship/deploy-in-progress").exists(),
        "the marker tells the rerun to check"
    );
    assert!(
        !root.join(".edgeship/manifest").exists(),
        "no manifest before every object is stored"
    );

    std::fs::write(&config, "[sites.default]\nprovider = \"local\"\n").unwrap();
    let output = sandbox.run(&["deploy", site.to_str().unwrap(), "--json"]);
    assert_eq!(output.status.code(), Some(0), "{}", common::stderr(&output));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let total =
        report["plan"]["uploads"].as_u64().unwrap() + report["plan"]["resumed"].as_u64().unwrap();
    assert_eq!(
        report["plan"]["resumed"].as_u64().unwrap() as usize,
        completed
    );
    assert_eq!(
        report["uploaded"].as_u64().unwrap(),
        total - completed as u64,
        "only the missing objects"
    );
    assert!(!root.join(".edgeship/deploy-in-progress").exists());
    let manifest =
        Manifest::from_json(&std::fs::read(root.join(".edgeship/manifest")).unwrap()).unwrap();
    assert_eq!(manifest.assets.len(), 302);
    for (path, entry) in &manifest.assets {
        assert_eq!(
            std::fs::read(root.join(path)).unwrap().len() as u64,
            entry.size,
            "{path}"
        );
    }
}

#[test]
fn the_cli_deploys_through_configured_faults_and_reports_the_retries() {
    let sandbox = common::Sandbox::new();
    std::fs::write(
        sandbox.path("edgeship.toml"),
        "[deploy.retry]\nattempts = 12\nbase_delay_ms = 1\nmax_delay_ms = 10\n\
         [sites.default]\nprovider = \"local\"\n\
         [sites.default.faults]\nerror_rate = 0.3\nthrottle_rate = 0.1\nretry_after_ms = 1\nseed = 5\n",
    )
    .unwrap();
    let site = common::fixture("site");
    let output = sandbox.run(&["deploy", site.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(0), "{}", common::stderr(&output));
    let summary = common::stdout(&output);
    let retries: u64 = summary
        .split_once("; ")
        .and_then(|(_, rest)| rest.split(" retries").next())
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no retry count in:\n{summary}"));
    assert!(retries > 0, "{summary}");
    assert!(
        summary.contains("deployed 21 files to site `default`"),
        "{summary}"
    );
    let root = sandbox.path("data/sites/default");
    assert_eq!(
        std::fs::read(root.join("robots.txt")).unwrap(),
        std::fs::read(site.join("robots.txt")).unwrap()
    );

    let dry = sandbox.run(&["deploy", site.to_str().unwrap(), "--dry-run"]);
    assert_eq!(dry.status.code(), Some(0), "{}", common::stderr(&dry));
    assert!(
        common::stdout(&dry).contains("0 uploads (0 B), 70 unchanged"),
        "{}",
        common::stdout(&dry)
    );
}

#[tokio::test]
async fn with_redis_configured_the_deploy_lock_lives_in_redis_and_is_released() {
    let mut env = Env::new();
    env.config.cache.redis_url = Some(edgeship::config::RedisUrl::new("redis://127.0.0.1:6379"));
    env.config.cache.prefix = format!("edgeship-test-lock-{}", std::process::id());
    let cache = edgeship::cache::Cache::from_config(&env.config.cache).unwrap();
    let key = cache.site("default").deploy_lock();
    let site = generated_site(env.dir.path(), 3);
    let memory = Arc::new(MemoryProvider::default());

    let held = edgeship::cache::CacheLock::acquire(
        &cache,
        key.clone(),
        std::time::Duration::from_secs(60),
    )
    .await
    .unwrap()
    .unwrap();
    let err = env
        .deploy(memory.clone(), &env.options(&site))
        .await
        .unwrap_err();
    assert_eq!(err.exit_code(), 3);
    assert!(err.to_string().contains("held in Redis"), "{err}");
    assert!(memory.keys().is_empty(), "a refused deploy changes nothing");
    held.release().await.unwrap();

    env.deploy(memory.clone(), &env.options(&site))
        .await
        .unwrap();
    let again =
        edgeship::cache::CacheLock::acquire(&cache, key, std::time::Duration::from_secs(60))
            .await
            .unwrap();
    assert!(again.is_some(), "the deploy released its lock");
    again.unwrap().release().await.unwrap();
}

#[tokio::test]
async fn objects_whose_retries_run_out_are_uploaded_again_in_a_later_round() {
    let mut env = Env::new();
    // No retries within a round: every injected failure exhausts that object's attempts.
    env.config.deploy.retry = RetryPolicy {
        attempts: 1,
        base_delay_ms: 1,
        max_delay_ms: 2,
        call_timeout_ms: 10_000,
        min_upload_bytes_per_sec: 1024 * 1024,
    };
    let site = generated_site(env.dir.path(), 60);
    let memory = Arc::new(MemoryProvider::default());
    let faults = FaultConfig {
        fail_first: 8,
        only: vec!["put".into()],
        key_prefix: Some("d0".into()),
        ..Default::default()
    };
    let faulty = Arc::new(Faulty::new(Arc::clone(&memory), faults));
    let report = env
        .deploy(faulty.clone(), &env.options(&site))
        .await
        .unwrap();
    assert_eq!(
        faulty.injected(),
        8,
        "eight uploads failed in the first round"
    );
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    assert_remote_equals_local(&memory, &env.config, &site);
}

/// Two versions of the fixture site under `root`: `v1` as it is, `v2` with every script
/// and stylesheet changed (so the deploy of v2 stores deltas of them against v1).
fn two_versions(root: &Path) -> (PathBuf, PathBuf) {
    let (v1, v2) = (root.join("v1"), root.join("v2"));
    common::copy_tree(&common::fixture("site"), &v1);
    common::copy_tree(&common::fixture("site"), &v2);
    for entry in walkdir::WalkDir::new(&v2) {
        let entry = entry.unwrap();
        let comment = match entry.path().extension().and_then(|e| e.to_str()) {
            Some("css") => "\n/* version 2 */ .v2 { color: red; }\n",
            Some("js") => "\n;globalThis.version = 2;\n",
            _ => continue,
        };
        common::append(entry.path(), comment);
    }
    (v1, v2)
}

/// Whether `key` looks like a delta object: `<path>.<sha-256 hex>.dcb|dcz`.
fn is_delta_key(key: &str) -> bool {
    key.rsplit_once('.')
        .filter(|(_, coding)| ["dcb", "dcz"].contains(coding))
        .and_then(|(rest, _)| rest.rsplit_once('.'))
        .is_some_and(|(_, hex)| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The stored manifest and the delta objects stored that it does not name.
fn unnamed_deltas(memory: &MemoryProvider) -> (Manifest, Vec<String>) {
    let manifest = Manifest::from_json(&memory.object(".edgeship/manifest").unwrap().1).unwrap();
    let named: Vec<String> = manifest
        .assets
        .iter()
        .flat_map(|(path, entry)| entry.deltas.iter().map(|d| d.key(path)))
        .collect();
    let unnamed = memory
        .keys()
        .into_iter()
        .filter(|k| is_delta_key(k) && !named.contains(k))
        .collect();
    (manifest, unnamed)
}

/// `memory` behind a fault layer that fails every PUT of the manifest: a deploy stores
/// its objects and deltas, then cannot publish.
fn failing_manifest_puts(memory: &Arc<MemoryProvider>) -> Arc<Faulty<Arc<MemoryProvider>>> {
    Arc::new(Faulty::new(
        Arc::clone(memory),
        FaultConfig {
            fail_after: Some(0),
            only: vec!["put".into()],
            key_prefix: Some(".edgeship/manifest".into()),
            ..Default::default()
        },
    ))
}

/// A deploy of v2 stores its objects and deltas, then cannot store its manifest (the
/// network goes); rolling back to v1 must delete the deltas it left: named by no manifest,
/// an edge rule picking `<path>.<sha-256 of v1>.dcz` by `Available-Dictionary` would send
/// v2 to a browser holding v1.
#[tokio::test]
async fn a_rollback_after_a_deploy_stopped_before_its_manifest_deletes_the_deltas_it_left() {
    let env = Env::new();
    let (v1, v2) = two_versions(env.dir.path());
    let memory = Arc::new(MemoryProvider::default());
    let faulty = failing_manifest_puts(&memory);
    faulty.set_enabled(false);
    env.deploy(faulty.clone(), &env.options(&v1)).await.unwrap();
    let (v1_manifest, before) = unnamed_deltas(&memory);
    assert_eq!(before, Vec::<String>::new());

    faulty.set_enabled(true);
    let err = env
        .deploy(faulty.clone(), &env.options(&v2))
        .await
        .unwrap_err();
    assert!(matches!(err, DeployError::Provider(_)), "{err:?}");
    let (manifest, left) = unnamed_deltas(&memory);
    assert!(
        manifest.assets.values().all(|e| e.deltas.is_empty()),
        "v1's manifest is still the site's"
    );
    assert!(
        !left.is_empty(),
        "the stopped deploy stored deltas of v2 against v1: {:?}",
        memory.keys()
    );
    let marker: serde_json::Value =
        serde_json::from_slice(&memory.object(".edgeship/deploy-in-progress").unwrap().1).unwrap();
    for key in &left {
        assert!(
            marker["deltas"]
                .as_array()
                .unwrap()
                .contains(&key.as_str().into()),
            "the marker lists {key}: {marker}"
        );
    }

    faulty.set_enabled(false);
    let report = env.deploy(faulty.clone(), &env.options(&v1)).await.unwrap();
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    assert_eq!(report.plan.orphan_deltas, left.len());
    assert_eq!(report.orphan_deltas_removed, left.len() as u64);
    assert_eq!(report.stale_deltas_removed, 0);
    let (_, after) = unnamed_deltas(&memory);
    assert_eq!(
        after,
        Vec::<String>::new(),
        "no delta the manifest does not name"
    );
    assert!(memory.object(".edgeship/deploy-in-progress").is_none());
    let (manifest, _) = unnamed_deltas(&memory);
    assert_eq!(manifest.assets, v1_manifest.assets);
    for (path, entry) in &manifest.assets {
        let (meta, _) = memory.object(path).unwrap();
        assert_eq!(
            meta.metadata
                .get(edgeship_providers::object::META_HASH)
                .map(String::as_str),
            Some(entry.hash.as_str()),
            "{path}: v1's bytes are back"
        );
    }
}

/// A rollback stopped before it could delete the deltas a stopped deploy left lists them
/// in its own marker, so the next run still deletes them.
#[tokio::test]
async fn deltas_of_a_stopped_deploy_are_carried_through_a_rerun_stopped_again() {
    let env = Env::new();
    let (v1, v2) = two_versions(env.dir.path());
    let memory = Arc::new(MemoryProvider::default());
    let no_manifest = failing_manifest_puts(&memory);
    let no_delete = Arc::new(Faulty::new(
        Arc::clone(&memory),
        FaultConfig {
            fail_after: Some(0),
            only: vec!["delete".into()],
            ..Default::default()
        },
    ));
    env.deploy(memory.clone(), &env.options(&v1)).await.unwrap();
    env.deploy(no_manifest, &env.options(&v2))
        .await
        .unwrap_err();
    let (_, left) = unnamed_deltas(&memory);
    assert!(!left.is_empty());

    env.deploy(no_delete, &env.options(&v1)).await.unwrap_err();
    let (_, still) = unnamed_deltas(&memory);
    assert_eq!(still, left, "the rerun could not delete them");
    let marker: serde_json::Value =
        serde_json::from_slice(&memory.object(".edgeship/deploy-in-progress").unwrap().1).unwrap();
    for key in &left {
        assert!(
            marker["deltas"]
                .as_array()
                .unwrap()
                .contains(&key.as_str().into()),
            "the rerun's marker carries {key}: {marker}"
        );
    }

    let report = env.deploy(memory.clone(), &env.options(&v1)).await.unwrap();
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    assert_eq!(report.orphan_deltas_removed, left.len() as u64);
    let (_, after) = unnamed_deltas(&memory);
    assert_eq!(after, Vec::<String>::new());
    assert!(memory.object(".edgeship/deploy-in-progress").is_none());
}

/// v2's manifest names deltas of v2 against v1; rolling back to v1 without `--delete`
/// must delete them (the paths hold v1 again, and a delta made against v1 decodes to v2),
/// and they never count as files against `--max-deletes`.
#[tokio::test]
async fn deltas_the_new_manifest_drops_are_deleted_without_delete_and_not_counted_as_files() {
    let env = Env::new();
    let (v1, v2) = two_versions(env.dir.path());
    let memory = Arc::new(MemoryProvider::default());
    env.deploy(memory.clone(), &env.options(&v1)).await.unwrap();
    env.deploy(memory.clone(), &env.options(&v2)).await.unwrap();
    let (v2_manifest, unnamed) = unnamed_deltas(&memory);
    assert_eq!(unnamed, Vec::<String>::new());
    let v2_deltas: Vec<String> = v2_manifest
        .assets
        .iter()
        .flat_map(|(path, entry)| entry.deltas.iter().map(|d| d.key(path)))
        .collect();
    assert!(!v2_deltas.is_empty(), "v2 has deltas against v1");

    let report = env.deploy(memory.clone(), &env.options(&v1)).await.unwrap();
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    let (v1_manifest, unnamed) = unnamed_deltas(&memory);
    assert_eq!(
        unnamed,
        Vec::<String>::new(),
        "no delta the manifest does not name"
    );
    let kept: Vec<String> = v1_manifest
        .assets
        .iter()
        .flat_map(|(path, entry)| entry.deltas.iter().map(|d| d.key(path)))
        .collect();
    let dropped = v2_deltas.iter().filter(|k| !kept.contains(k)).count();
    assert!(dropped > 0);
    assert_eq!(report.plan.dropped_deltas, dropped);
    assert_eq!(report.stale_deltas_removed, dropped as u64);
    assert_eq!(report.deleted, 0, "no file was deleted");
    assert_eq!(report.plan.stale_files, 0);
    assert!(memory.object(".edgeship/deploy-in-progress").is_none());

    // With `--delete` and `--max-deletes 0`: no stale file, so not refused, although
    // the deltas v1 had are dropped again.
    let options = DeployOptions {
        delete: true,
        max_deletes: 0,
        ..env.options(&v2)
    };
    let report = env.deploy(memory.clone(), &options).await.unwrap();
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    assert!(report.plan.dropped_deltas > 0, "{:?}", report.plan);
    let (_, unnamed) = unnamed_deltas(&memory);
    assert_eq!(unnamed, Vec::<String>::new());
}
