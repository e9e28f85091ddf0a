//! `/dashboard` in headless Chromium (Debian's `chromium`, driven by playwright-core from
//! the JS corpus): the page loads with no JS error and no external request, takes a key,
//! and draws every chart with data from a service that has deploys, origin traffic and
//! CDN logs. A screenshot is saved under the target directory.

mod common;

use common::http::TestApp;
use edgeship::api_keys::Scope;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_draws_every_chart_in_headless_chromium() {
    let corpus = std::env::var("EDGESHIP_JS_CORPUS").expect(
        "EDGESHIP_JS_CORPUS is not set: run the tests through scripts/test (it installs playwright-core with the JS corpus)",
    );
    assert!(
        std::path::Path::new("/usr/bin/chromium").exists() || std::env::var("CHROMIUM").is_ok(),
        "chromium is not installed: scripts/test installs it (Debian package `chromium`)"
    );
    let app = TestApp::spawn_with(|_| {}).await;
    let auth = format!("Bearer {}", app.admin);
    let headers = [("authorization", auth.as_str())];
    // Data for every chart: a deploy (savings by type), origin traffic, CDN logs.
    let job = app.deploy_fixtures(&auth).await;
    assert_eq!(job["status"], "done", "{job}");
    for encoding in ["br", "gzip", "br"] {
        let r = app
            .call(
                "GET",
                "/assets/app.3f9c2a1b.js",
                &[("accept-encoding", encoding)],
                b"",
            )
            .await;
        assert_eq!(r.status, 200);
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let logs: String = (0..40)
        .map(|i| {
            json!({
                "EdgeStartTimestamp": (now - 3 * 3600 + i * 300) * 1_000_000_000,
                "ClientRequestPath": if i % 3 == 0 { "/index.html" } else { "/assets/app.3f9c2a1b.js" },
                "EdgeResponseStatus": 200,
                "EdgeResponseBytes": 2000 + i,
                "CacheCacheStatus": if i % 4 == 0 { "miss" } else { "hit" },
            })
            .to_string()
                + "\n"
        })
        .collect();
    let r = app
        .call("POST", "/v1/sites/default/logs", &headers, logs.as_bytes())
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    // The origin's counters reach the cache layer every second.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;

    let reader = app
        .state
        .guard()
        .keys()
        .create("dashboard", vec![Scope::Read], None, vec![])
        .await
        .unwrap()
        .token;
    let target = std::env::var("CARGO_TARGET_DIR")
        .map_or_else(|_| common::repo().join("target"), std::path::PathBuf::from);
    std::fs::create_dir_all(&target).unwrap();
    let screenshot = target.join("dashboard.png");
    let (base, shot) = (app.base.clone(), screenshot.clone());
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new("node")
            .arg(common::repo().join("tests/js/dashboard.mjs"))
            .args([&base, &reader, shot.to_str().unwrap()])
            .env("NODE_PATH", format!("{corpus}/node_modules"))
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let result: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    let charts = result["charts"].as_array().unwrap();
    assert_eq!(charts.len(), 3, "{result}");
    // The default range is a day in hours: one point per hour the CDN logs cover.
    // Lines stamped after the report's end (the last few) fall outside its range.
    let hours: std::collections::BTreeSet<u64> = (0..40)
        .map(|i| now - 3 * 3600 + i * 300)
        .filter(|t| *t <= now)
        .map(|t| t / 3600)
        .collect();
    assert_eq!(charts[1], json!(["chart-hits", hours.len()]), "{result}");
    assert!(screenshot.exists());
}
