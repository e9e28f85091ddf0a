//! `edgeship deploy` (the binary) to S3 + CloudFront on moto server, over real HTTP:
//! what is uploaded, what is invalidated, which headers objects carry, and how wrong
//! credentials or a missing bucket end a deploy.

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use edgeship::pipeline::manifest::Manifest;
use edgeship_providers::aws::testing::{self, AuthMoto};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A sandbox whose `edgeship.toml` has site `default` on `bucket` at `endpoint`, and
/// whose commands see only the given credentials (no profile files, no instance role).
fn aws_sandbox(endpoint: &str, bucket: &str, extra: &str) -> common::Sandbox {
    let sandbox = common::Sandbox::new();
    std::fs::write(
        sandbox.path("edgeship.toml"),
        format!(
            "[sites.default]\nprovider = \"aws\"\n\
             [sites.default.aws]\nbucket = \"{bucket}\"\nregion = \"us-east-1\"\n\
             endpoint = \"{endpoint}\"\ncloudfront_endpoint = \"{endpoint}\"\nforce_path_style = true\n\
             {extra}\n\
             [[sites.default.rules]]\npattern = \"/about/**\"\nheaders = {{ \"X-Robots-Tag\" = \"noindex\" }}\n"
        ),
    )
    .unwrap();
    sandbox
}

fn deploy(
    sandbox: &common::Sandbox,
    site: &Path,
    access_key: &str,
    secret: &str,
) -> std::process::Output {
    let mut cmd = sandbox.command();
    cmd.args(["deploy", site.to_str().unwrap(), "--json"]);
    common::s3::with_credentials(&mut cmd, sandbox.dir.path(), access_key, secret);
    cmd.output().unwrap()
}

#[test]
fn a_redeploy_after_changing_three_files_uploads_and_invalidates_exactly_those() {
    let endpoint = testing::moto_endpoint();
    let rt = runtime();
    let bucket = testing::unique_bucket("e2e");
    rt.block_on(testing::create_bucket(&endpoint, &bucket));
    let distribution = rt.block_on(testing::create_distribution(&endpoint, &bucket));
    let sandbox = aws_sandbox(
        &endpoint,
        &bucket,
        &format!("distribution_id = \"{distribution}\""),
    );
    let site = sandbox.path("site");
    common::copy_tree(&common::fixture("site"), &site);
    let s3 = testing::s3_client(&endpoint);

    // First deploy: everything is new, so nothing can be cached and nothing is purged.
    let first = deploy(&sandbox, &site, testing::ACCESS_KEY, testing::SECRET_KEY);
    assert_eq!(first.status.code(), Some(0), "{}", common::stderr(&first));
    let report: serde_json::Value = serde_json::from_slice(&first.stdout).unwrap();
    let before = rt.block_on(common::s3::objects(&s3, &bucket));
    assert_eq!(
        report["uploaded"].as_u64().unwrap() as usize + 3,
        before.len(),
        "every object, the manifest and the deploy's history (its record and the index): {before:?}"
    );
    assert!(before.contains_key("about/index.html") && before.contains_key("assets/print.css"));
    assert!(
        rt.block_on(testing::invalidations(&endpoint, &distribution))
            .is_empty()
    );

    // S3 times are in whole seconds: let a second pass so re-uploads show.
    std::thread::sleep(std::time::Duration::from_millis(1100));
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
    let second = deploy(&sandbox, &site, testing::ACCESS_KEY, testing::SECRET_KEY);
    assert_eq!(second.status.code(), Some(0), "{}", common::stderr(&second));
    let report: serde_json::Value = serde_json::from_slice(&second.stdout).unwrap();
    let after = rt.block_on(common::s3::objects(&s3, &bucket));
    let record = format!(".edgeship/history/{}.json", report["id"].as_str().unwrap());
    assert_eq!(
        after.keys().filter(|k| **k != record).collect::<Vec<_>>(),
        before.keys().collect::<Vec<_>>(),
        "the same objects, and the second deploy's history record"
    );
    let rewritten = common::s3::rewritten(&before, &after);
    // The changed files, each with the compressed variants it has, and the manifest.
    let changed = ["assets/print.css", "about/index.html", "blog/index.html"];
    let mut expected = common::s3::objects_of(&after, &changed);
    assert!(
        expected.len() > 3,
        "compressed variants are stored too: {expected:?}"
    );
    assert_eq!(
        report["uploaded"].as_u64().unwrap() as usize,
        expected.len()
    );
    expected.insert(".edgeship/manifest".into());
    expected.insert(".edgeship/history/index.json".into());
    expected.insert(record.clone());
    assert_eq!(rewritten, expected, "only the changed objects were PUT");

    // One invalidation, for exactly the changed paths; pages also by their directory.
    let invalidations = rt.block_on(testing::invalidations(&endpoint, &distribution));
    assert_eq!(invalidations.len(), 1, "{invalidations:?}");
    let paths: BTreeSet<&str> = invalidations[0].1.iter().map(String::as_str).collect();
    assert_eq!(
        paths,
        BTreeSet::from([
            "/about/",
            "/about/index.html",
            "/assets/print.css",
            "/blog/",
            "/blog/index.html",
        ])
    );

    // Each rewritten object carries what the rules chose, as the manifest records it.
    let manifest = rt
        .block_on(
            s3.get_object()
                .bucket(&bucket)
                .key(".edgeship/manifest")
                .send(),
        )
        .unwrap();
    let manifest = rt.block_on(manifest.body.collect()).unwrap().into_bytes();
    let manifest = Manifest::from_json(&manifest).unwrap();
    for key in expected.iter().filter(|k| !k.starts_with(".edgeship/")) {
        let head = rt
            .block_on(s3.head_object().bucket(&bucket).key(key).send())
            .unwrap();
        let (path, encoding) = match key.rsplit_once('.') {
            Some((path, "br")) => (path, Some("br")),
            Some((path, "gz")) => (path, Some("gzip")),
            Some((path, "zst")) => (path, Some("zstd")),
            _ => (key.as_str(), None),
        };
        let entry = &manifest.assets[path];
        let (content_type, cache_control) = if path.ends_with(".css") {
            ("text/css; charset=utf-8", "public, max-age=300")
        } else {
            (
                "text/html; charset=utf-8",
                "public, max-age=0, must-revalidate",
            )
        };
        assert_eq!(head.content_type(), Some(content_type), "{key}");
        assert_eq!(entry.content_type, content_type, "{key}");
        assert_eq!(head.cache_control(), Some(cache_control), "{key}");
        assert_eq!(entry.cache_control, cache_control, "{key}");
        assert_eq!(head.content_encoding(), encoding, "{key}");
        let metadata = head.metadata().unwrap();
        assert_eq!(metadata["edgeship-hash"], entry.hash.as_str(), "{key}");
        assert_eq!(
            metadata["edgeship-encoding"],
            encoding.unwrap_or("identity"),
            "{key}"
        );
        let headers = metadata.get("edgeship-headers").map(String::as_str);
        if path.starts_with("about/") {
            assert_eq!(headers, Some(r#"{"X-Robots-Tag":"noindex"}"#), "{key}");
        } else {
            assert_eq!(headers, None, "{key}");
        }
        assert_eq!(
            head.content_length().unwrap() as u64,
            match encoding {
                None => entry.size,
                Some(_) => entry
                    .variants
                    .iter()
                    .find(|(e, _)| key.ends_with(e.suffix()))
                    .unwrap()
                    .1
                    .to_owned(),
            },
            "{key}"
        );
    }

    // Nothing changed: nothing is uploaded or invalidated.
    let third = deploy(&sandbox, &site, testing::ACCESS_KEY, testing::SECRET_KEY);
    assert_eq!(third.status.code(), Some(0), "{}", common::stderr(&third));
    let report: serde_json::Value = serde_json::from_slice(&third.stdout).unwrap();
    assert_eq!(report["uploaded"], 0);
    assert_eq!(
        rt.block_on(testing::invalidations(&endpoint, &distribution))
            .len(),
        1
    );
}

#[test]
fn wrong_credentials_end_the_deploy_with_one_clear_error_and_exit_2() {
    let moto = AuthMoto::start();
    let sandbox = aws_sandbox(&moto.endpoint, "edgeship-auth", "");
    let started = std::time::Instant::now();
    let output = deploy(
        &sandbox,
        &common::fixture("site"),
        "AKIAUNKNOWNKEY000000",
        "wrong",
    );
    assert_eq!(output.status.code(), Some(2), "{}", common::stderr(&output));
    let stderr = common::stderr(&output);
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    for needle in [
        "InvalidAccessKeyId",
        "AWS_ACCESS_KEY_ID",
        "AWS_PROFILE",
        "edgeship-auth",
    ] {
        assert!(errors[0].contains(needle), "{} lacks {needle}", errors[0]);
    }
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "no retry storm: {:?}",
        started.elapsed()
    );
}

#[test]
fn a_missing_bucket_ends_the_deploy_with_one_error_naming_the_setting() {
    let endpoint = testing::moto_endpoint();
    let bucket = testing::unique_bucket("missing");
    let sandbox = aws_sandbox(&endpoint, &bucket, "");
    let output = deploy(
        &sandbox,
        &common::fixture("site"),
        testing::ACCESS_KEY,
        testing::SECRET_KEY,
    );
    // A configuration problem, like wrong credentials: exit 2, not the generic 1.
    assert_eq!(output.status.code(), Some(2), "{}", common::stderr(&output));
    let stderr = common::stderr(&output);
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    for needle in [
        bucket.as_str(),
        "us-east-1",
        "sites.default.aws.bucket",
        "does not exist",
    ] {
        assert!(errors[0].contains(needle), "{} lacks {needle}", errors[0]);
    }
}

#[test]
fn an_aws_site_without_a_bucket_is_a_config_error() {
    let sandbox = common::Sandbox::new();
    std::fs::write(
        sandbox.path("edgeship.toml"),
        "[sites.www]\nprovider = \"aws\"\n[sites.www.aws]\nregion = \"eu-west-1\"\n",
    )
    .unwrap();
    let output = sandbox.run(&["config", "check"]);
    assert_eq!(output.status.code(), Some(2), "{}", common::stdout(&output));
    assert!(
        common::stderr(&output).contains("sites.www.aws.bucket: is required"),
        "{}",
        common::stderr(&output)
    );
}

/// The sites registry keeps one provider per site for the life of the service: 20
/// concurrent API calls for one aws site (listings and dry-run purges, each reading the
/// site's manifest from moto) build its SDK clients — and their connection pool — once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_concurrent_api_calls_for_an_aws_site_reuse_one_sdk_client() {
    use std::sync::Arc;

    let endpoint = testing::moto_endpoint();
    let bucket = testing::unique_bucket("registry");
    testing::create_bucket(&endpoint, &bucket).await;
    let data = tempfile::tempdir().unwrap();
    let mut config = edgeship::config::Config {
        data_dir: data.path().to_path_buf(),
        cache_dir: data.path().join("cache"),
        ..Default::default()
    };
    let settings = testing::moto_settings(&endpoint, &bucket);
    let site = config.sites.entry("www".into()).or_default();
    site.provider = edgeship::config::ProviderKind::Aws;
    site.aws = Some(settings.clone());
    let provider = edgeship_providers::aws::AwsProvider::new("www", settings).with_sdk_config(
        testing::sdk_config(testing::ACCESS_KEY, testing::SECRET_KEY),
    );
    let name = provider.to_string();
    let sites = edgeship::site::Sites::with_cache(&config, edgeship::cache::Cache::memory())
        .unwrap()
        .with_provider("www", Arc::new(provider))
        .unwrap();
    let app = common::http::TestApp::start_sites(sites, data).await;

    let auth = format!("Bearer {}", app.admin);
    let mut calls = tokio::task::JoinSet::new();
    for n in 0..20 {
        let (base, auth) = (app.base.clone(), auth.clone());
        calls.spawn(async move {
            let headers = [
                ("authorization", auth.as_str()),
                ("content-type", "application/json"),
            ];
            let response = if n % 2 == 0 {
                common::http::request(&base, "GET", "/v1/sites/www/assets", &headers, b"").await
            } else {
                let body = br#"{"patterns":["/index.html"],"dry_run":true}"#;
                common::http::request(&base, "POST", "/v1/sites/www/purges", &headers, body).await
            };
            (
                response.status,
                String::from_utf8_lossy(&response.body).into_owned(),
            )
        });
    }
    while let Some(answer) = calls.join_next().await {
        let (status, body) = answer.unwrap();
        assert_eq!(status, 200, "{body}");
    }
    let metrics = app.call("GET", "/metrics", &[], b"").await;
    let text = String::from_utf8(metrics.body).unwrap();
    let series = format!("edgeship_provider_clients_built_total{{provider=\"{name}\"}}");
    let built: Option<f64> = text
        .lines()
        .find_map(|line| line.strip_prefix(series.as_str())?.trim().parse().ok());
    assert_eq!(built, Some(1.0), "{series} in:\n{text}");
}

/// One CloudFront log file of `requests` hits for `/index.html` at `hour`.
fn cloudfront_log(hour: u64, requests: u64) -> Vec<u8> {
    use std::io::Write;
    let mut text = String::from(
        "#Version: 1.0\n#Fields: date time x-edge-location sc-bytes c-ip cs-method cs(Host) cs-uri-stem sc-status x-edge-result-type\n",
    );
    for i in 0..requests {
        let t = hour + i;
        text += &format!(
            "2026-12-02\t{:02}:{:02}:{:02}\tFRA56-P1\t1000\t192.0.2.1\tGET\td111111abcdef8.cloudfront.net\t/index.html\t200\tHit\n",
            t % 86_400 / 3600,
            t % 3600 / 60,
            t % 60
        );
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(text.as_bytes()).unwrap();
    gz.finish().unwrap()
}

#[test]
fn logs_pull_reads_each_log_object_once_from_the_bucket_cloudfront_writes_to() {
    let endpoint = testing::moto_endpoint();
    let rt = runtime();
    let bucket = testing::unique_bucket("cf-logs");
    rt.block_on(testing::create_bucket(&endpoint, &bucket));
    let s3 = testing::s3_client(&endpoint);
    let put = |key: &str, body: Vec<u8>| {
        rt.block_on(
            s3.put_object()
                .bucket(&bucket)
                .key(key)
                .body(body.into())
                .send(),
        )
        .unwrap();
    };
    let hour = 1_796_191_200; // 2026-12-02T06:00:00Z
    for (n, requests) in [(1, 10), (2, 20), (3, 30)] {
        put(
            &format!("cf/E2QW.2026-12-02-06.{n}.gz"),
            cloudfront_log(hour, requests),
        );
    }
    put("other/not-a-log.txt", b"outside the prefix".to_vec());

    let sandbox = common::Sandbox::new();
    std::fs::write(
        sandbox.path("edgeship.toml"),
        format!(
            "[sites.default]\nprovider = \"local\"\n\
             [sites.default.logs]\nprovider = \"aws\"\nprefix = \"cf/\"\n\
             [sites.default.logs.aws]\nbucket = \"{bucket}\"\nregion = \"us-east-1\"\nendpoint = \"{endpoint}\"\nforce_path_style = true\n"
        ),
    )
    .unwrap();
    let prefix = common::redis::unique_prefix("logs-pull");
    let pull = || {
        let mut cmd = sandbox.command();
        cmd.args(["logs", "pull", "--json"])
            .env("EDGESHIP_CACHE__REDIS_URL", common::redis::SHARED_REDIS)
            .env("EDGESHIP_CACHE__PREFIX", &prefix);
        common::s3::with_credentials(
            &mut cmd,
            sandbox.dir.path(),
            testing::ACCESS_KEY,
            testing::SECRET_KEY,
        );
        let output = cmd.output().unwrap();
        assert_eq!(output.status.code(), Some(0), "{}", common::stderr(&output));
        String::from_utf8(output.stdout)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .collect::<Vec<_>>()
    };
    let first = pull();
    let keys: Vec<&str> = first.iter().map(|f| f["key"].as_str().unwrap()).collect();
    assert_eq!(
        keys,
        [
            "cf/E2QW.2026-12-02-06.1.gz",
            "cf/E2QW.2026-12-02-06.2.gz",
            "cf/E2QW.2026-12-02-06.3.gz"
        ]
    );
    let requests: u64 = first
        .iter()
        .map(|f| f["report"]["requests"].as_u64().unwrap())
        .sum();
    assert_eq!(requests, 60);

    put("cf/E2QW.2026-12-02-07.4.gz", cloudfront_log(hour + 3600, 5));
    let second = pull();
    assert_eq!(second.len(), 1, "only the new object: {second:?}");
    assert_eq!(second[0]["key"], "cf/E2QW.2026-12-02-07.4.gz");
    assert_eq!(second[0]["stored"]["outcome"], "added");
    assert!(pull().is_empty(), "nothing new");

    let config = edgeship::config::CacheConfig {
        prefix: prefix.clone(),
        ..common::redis::redis_config(common::redis::SHARED_REDIS, "pull")
    };
    let cache = edgeship::cache::Cache::from_config(&config).unwrap();
    let hours = rt
        .block_on(edgeship::analytics::logs::hourly(
            &cache,
            "default",
            hour,
            hour + 7200,
        ))
        .unwrap();
    let counts: Vec<u64> = hours.iter().map(|(_, t)| t.requests).collect();
    assert_eq!(counts, [60, 5], "every file counted once");
    common::redis::delete_prefix(&prefix);
}
