//! The monitoring files for Prometheus and Grafana users: the alert rules pass
//! `promtool check rules` and their `promtool test rules` cases, and the Grafana
//! dashboard names only metrics a running `edgeship serve` exposes on `/metrics`.

mod common;

use std::collections::BTreeSet;
use std::process::Command;

use common::http::TestApp;
use serde_json::json;

fn promtool(args: &[&str]) -> std::process::Output {
    Command::new("promtool")
        .args(args)
        .current_dir(common::repo())
        .output()
        .unwrap_or_else(|err| {
            panic!(
                "promtool is not installed ({err}): scripts/test installs it (Debian package `prometheus`)"
            )
        })
}

#[test]
fn the_alert_rules_pass_promtool_and_fire_when_they_should() {
    let check = promtool(&["check", "rules", "config/prometheus-alerts.yml"]);
    let said = String::from_utf8_lossy(&check.stdout).into_owned()
        + &String::from_utf8_lossy(&check.stderr);
    assert!(check.status.success(), "{said}");
    assert!(said.contains("SUCCESS: 6 rules found"), "{said}");
    let test = promtool(&["test", "rules", "tests/promtool/alerts.test.yml"]);
    assert!(
        test.status.success(),
        "{}{}",
        String::from_utf8_lossy(&test.stdout),
        String::from_utf8_lossy(&test.stderr)
    );
}

/// Metric names in PromQL expressions (histogram series reduced to their metric).
fn names_in(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = expr;
    while let Some(at) = rest.find("edgeship_") {
        let name: String = rest[at..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        rest = &rest[at + name.len()..];
        let base = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| name.strip_suffix(suffix))
            .unwrap_or(&name)
            .to_string();
        names.push(base);
    }
    names
}

#[tokio::test]
async fn the_grafana_dashboard_and_the_alerts_name_only_metrics_serve_exposes() {
    let app = TestApp::spawn_with(|_| {}).await;
    let auth = format!("Bearer {}", app.admin);
    let headers = [("authorization", auth.as_str())];
    // Traffic that makes every family appear: a deploy over HTTP, origin requests, a
    // purge, CDN logs.
    let job = app.deploy_fixtures(&auth).await;
    assert_eq!(job["status"], "done", "{job}");
    assert_eq!(
        app.call("GET", "/", &[("accept-encoding", "br")], b"")
            .await
            .status,
        200
    );
    let r = app
        .admin(
            "POST",
            "/v1/sites/default/purges",
            Some(&json!({ "patterns": ["/index.html"], "wait": true })),
        )
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let log = json!({ "EdgeStartTimestamp": now * 1_000_000_000, "ClientRequestPath": "/", "EdgeResponseStatus": 200, "EdgeResponseBytes": 900, "CacheCacheStatus": "hit" }).to_string();
    let r = app
        .call("POST", "/v1/sites/default/logs", &headers, log.as_bytes())
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));

    let metrics = app.call("GET", "/metrics", &[], b"").await;
    let text = String::from_utf8(metrics.body).unwrap();
    let exposed: BTreeSet<String> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect();

    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(common::repo().join("config/grafana-dashboard.json")).unwrap(),
    )
    .unwrap();
    let mut used = BTreeSet::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            used.extend(names_in(target["expr"].as_str().unwrap()));
        }
    }
    let alerts =
        std::fs::read_to_string(common::repo().join("config/prometheus-alerts.yml")).unwrap();
    used.extend(
        alerts
            .lines()
            .filter_map(|l| l.trim().strip_prefix("expr:"))
            .flat_map(names_in),
    );
    assert!(used.len() >= 10, "{used:?}");
    let missing: Vec<&String> = used
        .iter()
        .filter(|name| !exposed.contains(*name))
        .collect();
    assert!(
        missing.is_empty(),
        "not on /metrics: {missing:?}\nexposed: {exposed:?}"
    );
}
