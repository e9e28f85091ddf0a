//! schemathesis (installed by `scripts/test`, see `scripts/schemathesis`) against a
//! running `edgeship serve`'s `/openapi.json`, with an admin key and every check: no 5xx,
//! every answer's status, content type, headers and body as the document says, valid
//! requests accepted and invalid ones refused. A bounded run (examples per operation
//! capped); the hooks in `schemathesis_hooks.py` make valid cases meaningful (a real
//! archive for deploys, patterns that parse for purges, a real log line for log uploads).

use crate::Rng;
use crate::common::{Sandbox, fixture, repo, stderr};
use crate::serve::Serve;

/// Test cases per API operation and phase: about 1,100 requests in 45 s on 2 cores.
const MAX_EXAMPLES: &str = "100";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_server_error_and_no_disagreement_with_the_openapi_document() {
    let program = std::env::var("EDGESHIP_TEST_SCHEMATHESIS").expect(
        "EDGESHIP_TEST_SCHEMATHESIS is not set: run the tests through scripts/test (it installs schemathesis)",
    );
    let mut rng = Rng::for_test("schemathesis");
    let seed = rng.range(0, 1 << 31).to_string();
    let sandbox = Sandbox::new();
    // Limits high enough that the run tests the routes, not the rate limiter.
    std::fs::write(
        sandbox.path("edgeship.toml"),
        "[server]\nkey_rate_per_sec = 10000\nkey_burst = 10000\nip_rate_per_sec = 10000\nip_burst = 10000\n\
         auth_failures_before_block = 1000000\n\
         [sites.default]\nprovider = \"local\"\n",
    )
    .unwrap();
    let deployed = sandbox.run(&["deploy", fixture("site").to_str().unwrap()]);
    assert_eq!(deployed.status.code(), Some(0), "{}", stderr(&deployed));
    let (serve, admin) = Serve::start(&sandbox, &[]);
    let key = admin.unwrap();

    let schema = format!("{}/openapi.json", serve.base);
    let report = sandbox.path("schemathesis-junit.xml");
    let mut cmd = std::process::Command::new(&program);
    cmd.args(["--no-color", "run", &schema, "--checks", "all"])
        .args(["--header", &format!("Authorization: Bearer {key}")])
        .args(["--max-examples", MAX_EXAMPLES, "--seed", &seed])
        .args(["--request-timeout", "30", "--workers", "2"])
        .args(["--report", "junit", "--report-junit-path"])
        .arg(&report)
        .env("SCHEMATHESIS_HOOKS", "schemathesis_hooks")
        .env("PYTHONPATH", repo().join("tests/reliability"))
        .current_dir(sandbox.dir.path());
    let output = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .unwrap()
        .expect("run schemathesis");
    let out = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "schemathesis found problems (seed {seed}):\n{out}\n{}\nserve log:\n{}",
        String::from_utf8_lossy(&output.stderr),
        serve.log()
    );
    // It did run: every operation, and a real number of requests.
    let junit = std::fs::read_to_string(&report).unwrap();
    let operations = junit.matches("<testcase").count();
    assert!(operations >= 10, "{operations} operations tested:\n{junit}");
    assert!(!serve.log().contains("panicked"), "{}", serve.log());
    // The service is still healthy after the run.
    let health = crate::common::http::request(&serve.base, "GET", "/healthz", &[], b"").await;
    assert_eq!(health.status, 200);
}

/// What schemathesis found, checked without it: a query is read only after the key (a
/// request without one is a 401 whatever its query), every `$ref` of the document
/// resolves (`group_by`'s did not), log formats are an enum, and the analytics
/// parameters say that an empty value is accepted (it reads as absent).
#[tokio::test]
async fn queries_are_read_after_the_key_and_the_document_describes_them() {
    let app = crate::common::http::TestApp::spawn_with(|_| {}).await;
    let auth = format!("Bearer {}", app.admin);
    for (method, path) in [
        ("POST", "/v1/sites/default/deploys?dry_run=maybe"),
        ("POST", "/v1/sites/default/logs?format=apache"),
        ("GET", "/v1/sites/default/assets?limit=x"),
        ("GET", "/v1/analytics?bogus=1"),
    ] {
        let r = app.call(method, path, &[], b"").await;
        assert_eq!(
            (r.status, r.code().as_str()),
            (401, "unauthenticated"),
            "{path}"
        );
        let r = app
            .call(method, path, &[("authorization", &auth)], b"")
            .await;
        assert_eq!((r.status, r.code().as_str()), (400, "bad_query"), "{path}");
    }

    let doc = app.call("GET", "/openapi.json", &[], b"").await.json();
    fn refs<'a>(value: &'a serde_json::Value, found: &mut Vec<&'a str>) {
        match value {
            serde_json::Value::Object(map) => {
                if let Some(serde_json::Value::String(r)) = map.get("$ref") {
                    found.push(r);
                }
                map.values().for_each(|v| refs(v, found));
            }
            serde_json::Value::Array(items) => items.iter().for_each(|v| refs(v, found)),
            _ => {}
        }
    }
    let mut found = Vec::new();
    refs(&doc, &mut found);
    assert!(found.len() > 10, "{found:?}");
    for reference in found {
        let name = reference.trim_start_matches("#/components/schemas/");
        assert!(
            doc["components"]["schemas"].get(name).is_some(),
            "{reference} does not resolve"
        );
    }
    assert_eq!(
        doc["components"]["schemas"]["LogFormatParam"]["enum"],
        serde_json::json!(["cloudfront", "logpush", "front_door"])
    );
    let analytics = doc["paths"]["/v1/analytics"]["get"]["parameters"]
        .as_array()
        .unwrap();
    assert_eq!(analytics.len(), 4);
    assert!(
        analytics.iter().all(|p| p["allowEmptyValue"] == true),
        "{analytics:?}"
    );
}
