//! SIGKILL of `edgeship deploy` and `edgeship serve` at seeded points — mid-upload, while
//! the manifest PUT is in flight, mid-purge (a deploy's own purge, and a purge job of the
//! API) — then a restart or a rerun. Each test checks that the job resumes or says
//! `failed` with a reason, that the redeploy completes and the stored site is verified
//! object by object, that no object stored by the killed run is PUT again (the local
//! provider renames a new file into place per PUT, so its inode shows every write), and
//! that every changed path is purged in the end.
//!
//! Faults hold each phase open long enough to land in it: `latency_ms` on PUTs, on the
//! manifest's PUT only, or on purges. The seed picks the point within the phase.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::Rng;
use crate::common::{Sandbox, stderr, tar_gz_of};
use crate::serve::Serve;
use crate::site::{self, Snapshot};

const SITE: &str = "[sites.default]\nprovider = \"local\"\n";
const FILES: usize = 120;

/// Where a kill lands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Some of the objects are stored.
    Upload,
    /// Every object is stored; the manifest's PUT is in flight.
    Manifest,
    /// The manifest is stored; the deploy's purge is in flight.
    Purge,
}

impl Phase {
    /// The faults that hold the phase open.
    fn faults(self) -> &'static str {
        match self {
            Self::Upload => "[sites.default.faults]\nlatency_ms = 20\nonly = [\"put\"]\n",
            Self::Manifest => {
                "[sites.default.faults]\nlatency_ms = 2500\nonly = [\"put\"]\nkey_prefix = \".edgeship/manifest\"\n"
            }
            Self::Purge => "[sites.default.faults]\nlatency_ms = 2500\nonly = [\"purge\"]\n",
        }
    }

    /// Waits (polling the site's directory) until the process is in the phase, then a
    /// seeded moment more, so the kill lands at a random point inside it.
    fn wait_for_kill_point(
        self,
        root: &Path,
        before: &Snapshot,
        planned: &BTreeSet<String>,
        rng: &mut Rng,
        running: &mut dyn FnMut() -> bool,
    ) {
        let upload_point = rng.range(1, planned.len() as u64 - planned.len() as u64 / 3) as usize;
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            assert!(
                running(),
                "the deploy ended before it could be killed ({self:?})"
            );
            assert!(Instant::now() < deadline, "never reached {self:?}");
            let now = Snapshot::of(root);
            let reached = match self {
                Self::Upload => now.written_since(before).len() >= upload_point,
                Self::Manifest => now.completed_since(before) == *planned,
                Self::Purge => now.changed(before, ".edgeship/manifest"),
            };
            if reached {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        if self != Self::Upload {
            std::thread::sleep(Duration::from_millis(rng.range(0, 1500)));
        }
    }
}

/// The objects (keys) a deploy of `input` would upload now, from a dry run.
fn planned_uploads(sandbox: &Sandbox, input: &Path) -> BTreeSet<String> {
    let dry = sandbox.run(&["deploy", input.to_str().unwrap(), "--dry-run", "--json"]);
    assert_eq!(dry.status.code(), Some(0), "{}", stderr(&dry));
    let report: serde_json::Value = serde_json::from_slice(&dry.stdout).unwrap();
    report["planned"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["key"].as_str().unwrap().to_string())
        .collect()
}

/// The job files' purge jobs started by deploys.
fn deploy_purges(data: &Path) -> Vec<serde_json::Value> {
    site::purge_jobs(&data.join("jobs"))
        .into_iter()
        .filter(|job| job["source"] == "deploy")
        .collect()
}

/// Kills `edgeship deploy` in `phase` of a redeploy that changes a third of the site,
/// then reruns it.
fn cli_deploy_killed(phase: Phase, test: &str) {
    let mut rng = Rng::for_test(test);
    let sandbox = Sandbox::new();
    let input = site::generate(sandbox.dir.path(), "site", FILES);
    let config = sandbox.path("edgeship.toml");
    let data = sandbox.path("data");
    let root = data.join("sites/default");
    let marker = root.join(".edgeship/deploy-in-progress");
    std::fs::write(&config, SITE).unwrap();
    let first = sandbox.run(&["deploy", input.to_str().unwrap()]);
    assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));

    let changed = site::change(&input, FILES, 1);
    let planned = planned_uploads(&sandbox, &input);
    assert!(planned.len() > 100, "{}", planned.len());
    let before = Snapshot::of(&root);
    std::fs::write(&config, format!("{SITE}{}", phase.faults())).unwrap();
    let mut child = sandbox
        .command()
        .args(["deploy", input.to_str().unwrap(), "--concurrency", "4"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    phase.wait_for_kill_point(&root, &before, &planned, &mut rng, &mut || {
        child.try_wait().unwrap().is_none()
    });
    child.kill().unwrap();
    child.wait().unwrap();

    // Where the kill landed.
    let killed = Snapshot::of(&root);
    assert!(
        marker.exists(),
        "the in-progress marker tells the rerun to check"
    );
    let completed = killed.completed_since(&before);
    match phase {
        Phase::Upload => assert!(
            completed.len() < planned.len() && !killed.changed(&before, ".edgeship/manifest"),
            "killed mid-upload: {} of {} stored, manifest untouched",
            completed.len(),
            planned.len()
        ),
        Phase::Manifest => {
            assert_eq!(completed, planned);
            assert!(
                !killed.changed(&before, ".edgeship/manifest"),
                "killed before the manifest PUT went through"
            );
        }
        Phase::Purge => {
            assert!(killed.changed(&before, ".edgeship/manifest"));
            let cut = deploy_purges(&data);
            assert_eq!(cut.len(), 1, "{cut:?}");
            assert_eq!(cut[0]["status"], "running", "killed mid-purge: {}", cut[0]);
            assert_eq!(cut[0]["batches"][0]["status"], "pending", "{}", cut[0]);
        }
    }

    std::fs::write(&config, SITE).unwrap();
    let rerun = sandbox.run(&["deploy", input.to_str().unwrap(), "--json"]);
    assert_eq!(rerun.status.code(), Some(0), "{}", stderr(&rerun));
    let report: serde_json::Value = serde_json::from_slice(&rerun.stdout).unwrap();
    let after = Snapshot::of(&root);
    let expected: BTreeSet<String> = planned.difference(&completed).cloned().collect();
    assert_eq!(
        after.written_since(&killed),
        expected,
        "the rerun PUTs exactly what the killed deploy had not stored"
    );
    assert_eq!(report["uploaded"], expected.len() as u64, "{report}");
    eprintln!(
        "{test}: {} objects to PUT; the killed deploy stored {}, the rerun PUT {}",
        planned.len(),
        completed.len(),
        expected.len()
    );
    if phase == Phase::Upload {
        assert_eq!(
            report["plan"]["resumed"],
            completed.len() as u64,
            "{report}"
        );
    }
    site::verify(&root, &input);
    assert!(!marker.exists(), "a completed rerun clears the marker");
    let purged = site::purged_paths(&deploy_purges(&data));
    let missed: Vec<&String> = changed.difference(&purged).collect();
    assert!(missed.is_empty(), "changed paths never purged: {missed:?}");

    if phase == Phase::Purge {
        // The purge job the kill cut off is continued by `edgeship purge status`.
        let cut = deploy_purges(&data)
            .into_iter()
            .find(|job| job["status"] == "running")
            .expect("the cut-off job");
        let id = cut["id"].as_str().unwrap();
        let status = sandbox.run(&["purge", "status", id, "--json"]);
        assert_eq!(status.status.code(), Some(0), "{}", stderr(&status));
        let job: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
        assert_eq!(job["status"], "done", "{job}");
        assert_eq!(job["batches"][0]["request"]["reference"], format!("{id}-1"));
    }

    // Settled: the next deploy has nothing to upload, check or purge.
    let jobs = deploy_purges(&data).len();
    let third = sandbox.run(&["deploy", input.to_str().unwrap(), "--json"]);
    assert_eq!(third.status.code(), Some(0), "{}", stderr(&third));
    let report: serde_json::Value = serde_json::from_slice(&third.stdout).unwrap();
    assert_eq!(report["uploaded"], 0, "{report}");
    assert_eq!(report["plan"]["resumed"], 0, "{report}");
    assert_eq!(deploy_purges(&data).len(), jobs, "nothing more to purge");
    assert!(Snapshot::of(&root).written_since(&after).is_empty());
}

#[test]
fn a_cli_deploy_killed_mid_upload_resumes_and_purges_what_the_killed_run_changed() {
    cli_deploy_killed(Phase::Upload, "cli_deploy_killed_mid_upload");
}

#[test]
fn a_cli_deploy_killed_during_the_manifest_put_resumes_and_purges_every_change() {
    cli_deploy_killed(Phase::Manifest, "cli_deploy_killed_mid_manifest");
}

#[test]
fn a_cli_deploy_killed_mid_purge_purges_on_rerun_and_its_job_can_be_continued() {
    cli_deploy_killed(Phase::Purge, "cli_deploy_killed_mid_purge");
}

/// Posts the site at `input` as a deploy; returns the job id.
async fn post_deploy(serve: &Serve, key: &str, input: &Path) -> String {
    let r = serve
        .call(
            key,
            "POST",
            "/v1/sites/default/deploys",
            &[("content-type", "application/gzip")],
            &tar_gz_of(input),
        )
        .await;
    assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
    r.json()["id"].as_str().unwrap().to_string()
}

async fn finished_deploy(serve: &Serve, key: &str, id: &str) -> serde_json::Value {
    serve
        .wait_for(
            key,
            &format!("/v1/deploys/{id}"),
            Duration::from_secs(120),
            |job| job["status"] != "queued" && job["status"] != "running",
        )
        .await
}

/// Kills `serve` in `phase` of an HTTP deploy, restarts it, and deploys again.
async fn serve_killed_during_a_deploy(phase: Phase, test: &str) {
    let mut rng = Rng::for_test(test);
    let sandbox = Sandbox::new();
    let input = site::generate(sandbox.dir.path(), "site", FILES);
    let config = sandbox.path("edgeship.toml");
    let data = sandbox.path("data");
    let root = data.join("sites/default");
    std::fs::write(&config, SITE).unwrap();
    let (mut serve, admin) = Serve::start(&sandbox, &[]);
    let key = admin.expect("a first start prints the admin key");
    let id = post_deploy(&serve, &key, &input).await;
    assert_eq!(finished_deploy(&serve, &key, &id).await["status"], "done");
    serve.terminate();

    let changed = site::change(&input, FILES, 1);
    let planned = planned_uploads(&sandbox, &input);
    let before = Snapshot::of(&root);
    std::fs::write(&config, format!("{SITE}{}", phase.faults())).unwrap();
    let (mut serve, _) = Serve::start(&sandbox, &[]);
    let cut = post_deploy(&serve, &key, &input).await;
    let pid = serve.pid();
    phase.wait_for_kill_point(&root, &before, &planned, &mut rng, &mut || {
        Path::new(&format!("/proc/{pid}")).exists()
    });
    serve.kill();
    let killed = Snapshot::of(&root);
    let completed = killed.completed_since(&before);
    assert!(
        data.join("uploads").join(&cut).exists(),
        "the killed deploy's upload is still there"
    );
    let saved: serde_json::Value =
        serde_json::from_slice(&std::fs::read(data.join(format!("jobs/{cut}.json"))).unwrap())
            .unwrap();
    assert_eq!(saved["status"], "running", "{saved}");

    std::fs::write(&config, SITE).unwrap();
    let (serve, _) = Serve::start(&sandbox, &[]);
    let job = serve
        .call(&key, "GET", &format!("/v1/deploys/{cut}"), &[], b"")
        .await
        .json();
    assert_eq!(job["status"], "failed", "{job}");
    assert!(
        job["error"]
            .as_str()
            .unwrap()
            .contains("the service stopped while this deploy ran"),
        "{job}"
    );
    assert!(
        !data.join("uploads").join(&cut).exists(),
        "its upload is removed"
    );

    let again = post_deploy(&serve, &key, &input).await;
    let job = finished_deploy(&serve, &key, &again).await;
    assert_eq!(job["status"], "done", "{job}");
    let after = Snapshot::of(&root);
    let expected: BTreeSet<String> = planned.difference(&completed).cloned().collect();
    assert_eq!(
        after.written_since(&killed),
        expected,
        "the redeploy PUTs exactly what the killed one had not stored"
    );
    eprintln!(
        "{test}: {} objects to PUT; the killed deploy stored {}, the redeploy PUT {}",
        planned.len(),
        completed.len(),
        expected.len()
    );
    site::verify(&root, &input);
    assert!(!root.join(".edgeship/deploy-in-progress").exists());
    let purged = site::purged_paths(&deploy_purges(&data));
    let missed: Vec<&String> = changed.difference(&purged).collect();
    assert!(missed.is_empty(), "changed paths never purged: {missed:?}");
    // The origin serves the new pages.
    let page = serve.call(&key, "GET", "/about/", &[], b"").await;
    assert_eq!(page.status, 200);
    assert!(String::from_utf8_lossy(&page.body).ends_with("<p>round 1</p>"));
}

#[tokio::test]
async fn serve_killed_mid_upload_of_an_http_deploy_reports_it_failed_and_the_redeploy_resumes() {
    serve_killed_during_a_deploy(Phase::Upload, "serve_killed_mid_upload").await;
}

#[tokio::test]
async fn serve_killed_during_a_deploys_manifest_put_reports_it_failed_and_the_redeploy_resumes() {
    serve_killed_during_a_deploy(Phase::Manifest, "serve_killed_mid_manifest").await;
}

#[tokio::test]
async fn serve_killed_mid_purge_of_an_http_deploy_reports_it_failed_and_the_redeploy_purges() {
    serve_killed_during_a_deploy(Phase::Purge, "serve_killed_mid_deploy_purge").await;
}

/// A purge job of the API cut off by SIGKILL is continued when `serve` starts again: its
/// batches go out once, with the job's own references, and the job ends `done`.
#[cfg(feature = "aws")]
#[tokio::test]
async fn serve_killed_mid_purge_job_continues_it_on_restart_and_cloudfront_gets_each_batch_once() {
    use edgeship_providers::aws::testing;
    let mut rng = Rng::for_test("serve_killed_mid_purge_job");
    let endpoint = testing::moto_endpoint();
    let bucket = testing::unique_bucket("kill-purge");
    testing::create_bucket(&endpoint, &bucket).await;
    let distribution = testing::create_distribution(&endpoint, &bucket).await;
    let sandbox = Sandbox::new();
    let config = sandbox.path("edgeship.toml");
    let aws = format!(
        "[sites.default]\nprovider = \"aws\"\n\
         [sites.default.aws]\nbucket = \"{bucket}\"\nregion = \"us-east-1\"\n\
         endpoint = \"{endpoint}\"\ncloudfront_endpoint = \"{endpoint}\"\nforce_path_style = true\n\
         distribution_id = \"{distribution}\"\n"
    );
    std::fs::write(
        &config,
        format!("{aws}[sites.default.faults]\nlatency_ms = 2500\nonly = [\"purge\"]\n"),
    )
    .unwrap();
    let credentials = [
        ("AWS_ACCESS_KEY_ID", testing::ACCESS_KEY),
        ("AWS_SECRET_ACCESS_KEY", testing::SECRET_KEY),
        ("AWS_EC2_METADATA_DISABLED", "true"),
    ];
    let (mut serve, admin) = Serve::start(&sandbox, &credentials);
    let key = admin.unwrap();
    let patterns =
        serde_json::json!({"patterns": ["/index.html", "/about/index.html", "/app.css"]});
    let r = serve
        .call(
            &key,
            "POST",
            "/v1/sites/default/purges",
            &[("content-type", "application/json")],
            patterns.to_string().as_bytes(),
        )
        .await;
    assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
    let id = r.json()["id"].as_str().unwrap().to_string();
    tokio::time::sleep(Duration::from_millis(rng.range(0, 1500))).await;
    serve.kill();
    assert!(
        testing::invalidations(&endpoint, &distribution)
            .await
            .is_empty(),
        "killed before the invalidation was sent"
    );

    std::fs::write(&config, &aws).unwrap();
    let (serve, _) = Serve::start(&sandbox, &credentials);
    let job = serve
        .wait_for(
            &key,
            &format!("/v1/purges/{id}"),
            Duration::from_secs(60),
            |job| job["status"] != "running" && job["status"] != "pending",
        )
        .await;
    assert_eq!(job["status"], "done", "{job}");
    let invalidations = testing::invalidations(&endpoint, &distribution).await;
    let sent: Vec<String> = job["batches"][0]["request"]["paths"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap().to_string())
        .collect();
    assert!(sent.contains(&"/index.html".to_string()), "{job}");
    assert_eq!(
        invalidations,
        vec![(format!("{id}-1"), sent)],
        "one invalidation, sent once, with the job's reference"
    );
}
