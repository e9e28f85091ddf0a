//! Compression dictionaries end to end (RFC 9842): deploys keep a history, a changed
//! bundle gets delta variants against the version deployed before, and the origin sends
//! them to a browser that holds that version — checked in headless Chromium (Debian's,
//! driven by playwright-core from the JS corpus) and over plain HTTP.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use common::http::TestApp;
use common::releases::{NEW_BUNDLE, OLD_BUNDLE, two_releases};
use edgeship::pipeline::delta::{DeltaEncoding, Sha256};
use edgeship::pipeline::manifest::Manifest;
use serde_json::Value;

fn site_manifest(app: &TestApp) -> Manifest {
    let path = app.data.path().join("sites/default/.edgeship/manifest");
    Manifest::from_json(&std::fs::read(path).unwrap()).unwrap()
}

async fn app_with(encodings: Vec<DeltaEncoding>) -> TestApp {
    TestApp::spawn_with(|config| config.deploy.dictionaries.encodings = encodings).await
}

/// Loads the page in Chromium, redeploys v2 while it waits, reloads; returns the report of
/// tests/js/dictionary.mjs.
async fn browse_across_a_redeploy(app: &TestApp, v2: &Path) -> Value {
    let corpus = std::env::var("EDGESHIP_JS_CORPUS").expect(
        "EDGESHIP_JS_CORPUS is not set: run the tests through scripts/test (it installs playwright-core with the JS corpus)",
    );
    assert!(
        Path::new("/usr/bin/chromium").exists() || std::env::var("CHROMIUM").is_ok(),
        "chromium is not installed: scripts/test installs it (Debian package `chromium`)"
    );
    let mut node = Command::new("node")
        .arg(common::repo().join("tests/js/dictionary.mjs"))
        .args([app.base.as_str(), "/assets/app."])
        .env("NODE_PATH", format!("{corpus}/node_modules"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(node.stdout.take().unwrap()).lines();
    let ready = tokio::task::spawn_blocking(move || {
        let line = lines.next();
        (line, lines)
    });
    let (line, mut lines) = ready.await.unwrap();
    assert_eq!(
        line.unwrap().unwrap(),
        "ready",
        "the first load did not finish"
    );
    app.deploy_dir(v2).await;
    node.stdin.as_mut().unwrap().write_all(b"go\n").unwrap();
    let report = tokio::task::spawn_blocking(move || lines.next())
        .await
        .unwrap()
        .expect("no report from tests/js/dictionary.mjs")
        .unwrap();
    assert!(node.wait().unwrap().success());
    serde_json::from_str(&report).unwrap()
}

/// The one bundle response of a load.
fn bundle(load: &Value, path: &str) -> Value {
    let found: Vec<&Value> = load["bundles"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["url"].as_str().unwrap().ends_with(path))
        .collect();
    assert_eq!(found.len(), 1, "{path} in {load}");
    found[0].clone()
}

async fn returning_visitor_gets_a_delta(encoding: DeltaEncoding) {
    let app = app_with(vec![encoding]).await;
    let (v1, v2) = two_releases();
    app.deploy_dir(v1.path()).await;
    let old = site_manifest(&app).assets[OLD_BUNDLE].clone();
    let offer = old
        .dictionary
        .clone()
        .expect("the bundle is offered as a dictionary");
    assert_eq!(offer.match_pattern, "/assets/app.*.js");

    let report = browse_across_a_redeploy(&app, v2.path()).await;
    assert_eq!(report["problems"], serde_json::json!([]), "{report}");

    // First visit: plain br, and the bundle is kept as a dictionary.
    assert_eq!(report["first"]["release"], "v1");
    let first = bundle(&report["first"], OLD_BUNDLE);
    assert_eq!(first["response"]["content-encoding"], "br", "{first}");
    assert_eq!(
        first["response"]["use-as-dictionary"],
        "match=\"/assets/app.*.js\""
    );

    // The redeploy made a delta of the new bundle against the old one.
    let new = site_manifest(&app).assets[NEW_BUNDLE].clone();
    let delta = new
        .deltas
        .iter()
        .find(|d| d.from == offer.sha256 && d.encoding == encoding)
        .unwrap_or_else(|| panic!("no {encoding} delta in {:?}", new.deltas));
    let br = new.variants[&edgeship::pipeline::compress::Encoding::Br];

    // Reload: the browser names the old bundle, gets the delta, runs the new code.
    assert_eq!(report["reload"]["release"], "v2", "the new bundle ran");
    let reload = bundle(&report["reload"], NEW_BUNDLE);
    assert_eq!(
        reload["request"]["available-dictionary"],
        format!(":{}:", offer.sha256.base64()),
        "{reload}"
    );
    assert_eq!(
        reload["response"]["content-encoding"],
        encoding.token(),
        "{reload}"
    );
    assert_eq!(
        reload["response"]["vary"],
        "accept-encoding, available-dictionary"
    );
    assert_eq!(
        reload["body"], new.size,
        "decoded to the new identity bytes"
    );
    let wire = reload["sizes"]["responseBodySize"].as_u64().unwrap();
    assert_eq!(
        wire, delta.size,
        "the delta's bytes are what crossed the wire"
    );
    assert!(delta.size * 4 < br, "delta {} vs br {br}", delta.size);

    // A browser without the dictionary gets plain br.
    assert_eq!(report["fresh"]["release"], "v2");
    let fresh = bundle(&report["fresh"], NEW_BUNDLE);
    assert!(
        fresh["request"].get("available-dictionary").is_none(),
        "{fresh}"
    );
    assert_eq!(fresh["response"]["content-encoding"], "br");
    assert_eq!(fresh["sizes"]["responseBodySize"], br);

    // The origin counted the delta bytes and what they saved against br.
    let mut origin = Value::Null;
    for _ in 0..40 {
        origin = app
            .admin("GET", "/v1/analytics?site=default", None)
            .await
            .json()["sites"][0]["origin"]["all_time"]
            .clone();
        if origin["delta_bytes"].as_u64() > Some(0) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(origin["delta_bytes"], delta.size, "{origin}");
    assert_eq!(origin["delta_saved_bytes"], br - delta.size, "{origin}");
    assert_eq!(origin["by_encoding"][encoding.token()]["requests"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_holding_the_old_bundle_gets_the_new_one_as_a_dcz_delta() {
    returning_visitor_gets_a_delta(DeltaEncoding::Dcz).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_holding_the_old_bundle_gets_the_new_one_as_a_dcb_delta() {
    returning_visitor_gets_a_delta(DeltaEncoding::Dcb).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_unknown_or_malformed_dictionaries_fall_back_to_br() {
    let app = app_with(vec![DeltaEncoding::Dcz, DeltaEncoding::Dcb]).await;
    let (v1, v2) = two_releases();
    app.deploy_dir(v1.path()).await;
    app.deploy_dir(v2.path()).await;
    let manifest = site_manifest(&app);
    let old = &manifest.assets[OLD_BUNDLE];
    let new = &manifest.assets[NEW_BUNDLE];
    let held = format!(":{}:", old.dictionary.as_ref().unwrap().sha256.base64());
    let path = format!("/{NEW_BUNDLE}");
    let get = |headers: Vec<(&'static str, String)>| {
        let app = &app;
        let path = path.clone();
        async move {
            let headers: Vec<(&str, &str)> =
                headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            app.call("GET", &path, &headers, b"").await
        }
    };

    // Holding v1, accepting both: the smaller delta, which decodes to v2 with v1.
    let r = get(vec![
        ("accept-encoding", "gzip, br, zstd, dcb, dcz".into()),
        ("available-dictionary", held.clone()),
    ])
    .await;
    assert_eq!(r.status, 200);
    let coding: DeltaEncoding = r.header("content-encoding").unwrap().parse().unwrap();
    let smallest = new.deltas.iter().min_by_key(|d| d.size).unwrap();
    assert_eq!(coding, smallest.encoding);
    let v1_bytes = std::fs::read(app.data.path().join("sites/default").join(OLD_BUNDLE)).unwrap();
    let v2_bytes = std::fs::read(app.data.path().join("sites/default").join(NEW_BUNDLE)).unwrap();
    assert_eq!(
        edgeship::pipeline::delta::decode(coding, &v1_bytes, &r.body).unwrap(),
        v2_bytes
    );
    assert!(
        r.header("use-as-dictionary").is_some(),
        "v2 is the next dictionary"
    );
    let etag = r.header("etag").unwrap().to_string();
    // A revalidation of the delta is a 304.
    let again = get(vec![
        ("accept-encoding", "br, dcz, dcb".into()),
        ("available-dictionary", held.clone()),
        ("if-none-match", etag.clone()),
    ])
    .await;
    assert_eq!(again.status, 304);

    // Each other case is served exactly as without dictionaries: br.
    let unknown = format!(":{}:", Sha256::of(b"some other version").base64());
    for (why, headers) in [
        (
            "unknown dictionary",
            vec![
                ("accept-encoding", "br, dcb, dcz".to_string()),
                ("available-dictionary", unknown),
            ],
        ),
        (
            "malformed header",
            vec![
                ("accept-encoding", "br, dcb, dcz".to_string()),
                ("available-dictionary", held.trim_matches(':').to_string()),
            ],
        ),
        (
            "garbage",
            vec![
                ("accept-encoding", "br, dcb, dcz".to_string()),
                ("available-dictionary", ":%%%:".to_string()),
            ],
        ),
        (
            "codings not accepted",
            vec![
                ("accept-encoding", "br".to_string()),
                ("available-dictionary", held.clone()),
            ],
        ),
        (
            "`*` does not stand for a delta",
            vec![
                ("accept-encoding", "br, *".to_string()),
                ("available-dictionary", held.clone()),
            ],
        ),
        (
            "the wrong asset's dictionary",
            vec![
                ("accept-encoding", "br, dcb, dcz".to_string()),
                (
                    "available-dictionary",
                    format!(
                        ":{}:",
                        manifest.assets["assets/util.8d7e6f50.js"]
                            .dictionary
                            .as_ref()
                            .unwrap()
                            .sha256
                            .base64()
                    ),
                ),
            ],
        ),
    ] {
        let r = get(headers).await;
        assert_eq!(r.status, 200, "{why}");
        assert_eq!(r.header("content-encoding"), Some("br"), "{why}");
        assert_eq!(
            r.header("vary"),
            Some("accept-encoding, available-dictionary"),
            "{why}"
        );
        assert_eq!(
            r.body.len() as u64,
            new.variants[&edgeship::pipeline::compress::Encoding::Br],
            "{why}"
        );
    }

    // The history lists both deploys, newest first, through the CLI.
    let cli = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_edgeship"))
            .env_remove("EDGESHIP_CONFIG")
            .env("EDGESHIP_DATA_DIR", app.data.path())
            .env("EDGESHIP_CACHE_DIR", app.data.path().join("cache"))
            .env("EDGESHIP_LOG__LEVEL", "warn")
            .current_dir(app.data.path())
            .args(args)
            .output()
            .unwrap()
    };
    let out = cli(&["deploys", "list", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let history: Value = serde_json::from_slice(&out.stdout).unwrap();
    let history = history.as_array().unwrap();
    assert_eq!(history.len(), 2, "{history:?}");
    assert!(history[0]["time"].as_u64() >= history[1]["time"].as_u64());
    assert!(history[0]["deltas"].as_u64().unwrap() >= 2, "{history:?}");
    assert_eq!(history[1]["deltas"], 0);
    let out = cli(&["deploys", "list"]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains(history[0]["id"].as_str().unwrap()),
        "{table}"
    );
}
