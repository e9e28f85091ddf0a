//! `edgeship purge` through the real binary: bad patterns, dry runs of the fixtures,
//! confirmation, jobs and their status (also across processes through Redis); and
//! `edgeship stats` reading what deploys recorded in Redis.

mod common;

use common::{Sandbox, fixture, stderr, stdout};
use serde_json::Value;

/// A sandbox with the fixture site deployed to its default (local) site.
fn deployed() -> Sandbox {
    let sandbox = Sandbox::new();
    let output = sandbox.run(&["deploy", fixture("site").to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    sandbox
}

#[test]
fn bad_patterns_exit_2_with_where_and_why() {
    let sandbox = Sandbox::new();
    let long = format!("/{}", "a".repeat(10 * 1024));
    let cases: [(&str, &str); 6] = [
        ("/assets/[ab.js", "at byte 8: `[` is never closed"),
        ("[", "a path pattern starts with `/`"),
        ("", "empty pattern"),
        ("/a/**foo", "`**` must be a whole path segment"),
        ("/a\u{1}b", "control character"),
        (&long, "pattern is 10241 bytes long (limit 2048)"),
    ];
    for (pattern, reason) in cases {
        let output = sandbox.run(&["purge", pattern, "--dry-run"]);
        let err = stderr(&output);
        assert_eq!(output.status.code(), Some(2), "{pattern:.20}: {err}");
        assert!(err.contains(reason), "{pattern:.20}: {err}");
        assert!(err.len() < 400, "the message stays short: {err}");
    }
    let caret = stderr(&sandbox.run(&["purge", "/assets/[ab.js"]));
    assert!(
        caret.contains("  /assets/[ab.js\n          ^"),
        "points at the `[`: {caret}"
    );
}

#[test]
fn a_dry_run_of_the_fixtures_prints_matched_paths_requests_and_cost() {
    let sandbox = deployed();
    let output = sandbox.run(&["purge", "/assets/**/*.css", "/blog/", "/", "--dry-run"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let text = stdout(&output);
    for expected in [
        "  /assets/styles.5b6c7d8e.css\n",
        "  /assets/print.css\n",
        "  /blog/hello-world/index.html\n",
        "  /index.html\n",
        "provider requests (",
        "cost: 2 requests, ",
        "dry run: nothing was purged",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    // The local provider takes prefixes as such; the home page goes as `/` and `/index.html`.
    assert!(text.contains("prefix /blog/"), "{text}");
    assert!(
        text.contains("path /,") || text.contains("path /\n"),
        "{text}"
    );

    let json = sandbox.run(&["purge", "/assets/**/*.css", "--dry-run", "--json"]);
    let plan: Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(
        plan["matched"],
        serde_json::json!(["assets/print.css", "assets/styles.5b6c7d8e.css"])
    );
    assert_eq!(plan["requests"].as_array().unwrap().len(), 1);
    assert_eq!(plan["cost"]["items"], 2);
    assert!(
        !sandbox.path("data/jobs").exists(),
        "a dry run records no job"
    );
}

#[test]
fn everything_and_large_purges_need_confirm_and_jobs_are_readable_by_id() {
    let sandbox = deployed();
    let refused = sandbox.run(&["purge", "/*"]);
    assert_eq!(refused.status.code(), Some(3), "{}", stderr(&refused));
    assert!(stderr(&refused).contains("needs --confirm"));
    let refused = sandbox.run(&[
        "purge",
        "/**/*.{html,css,js,json,svg,txt,xml,webmanifest,map,woff2,png,ico}",
    ]);
    assert_eq!(refused.status.code(), Some(3), "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains("above the 50% threshold"),
        "{}",
        stderr(&refused)
    );

    let done = sandbox.run(&["purge", "/*", "--confirm", "--json"]);
    assert_eq!(done.status.code(), Some(0), "{}", stderr(&done));
    let job: Value = serde_json::from_slice(&done.stdout).unwrap();
    assert_eq!(job["status"], "done");
    assert_eq!(job["batches"][0]["request"]["everything"], true);
    let id = job["id"].as_str().unwrap();
    assert_eq!(
        job["batches"][0]["request"]["reference"],
        format!("{id}-1"),
        "the caller reference is the job id and batch number"
    );

    let status = sandbox.run(&["purge", "status", id]);
    assert_eq!(status.status.code(), Some(0), "{}", stderr(&status));
    assert!(
        stdout(&status).contains(&format!("purge {id} on site `default`")),
        "{}",
        stdout(&status)
    );
    assert!(stdout(&status).contains("request 1: done"));

    let unknown = sandbox.run(&["purge", "status", "p0000000000000000"]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(stderr(&unknown).contains("no purge job `p0000000000000000`"));
    let bad = sandbox.run(&["purge", "status", "../../etc/passwd"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(stderr(&bad).contains("is not a purge job id"));
}

/// Runs the binary with the shared Redis configured under `prefix`.
fn with_redis(sandbox: &Sandbox, prefix: &str, args: &[&str]) -> std::process::Output {
    sandbox
        .command()
        .env("EDGESHIP_CACHE__REDIS_URL", common::redis::SHARED_REDIS)
        .env("EDGESHIP_CACHE__PREFIX", prefix)
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn purge_jobs_live_in_redis_and_survive_the_process() {
    let sandbox = deployed();
    let prefix = common::redis::unique_prefix("purge-jobs");
    let run = |args: &[&str]| with_redis(&sandbox, &prefix, args);
    let output = run(&["purge", "/index.html", "/about/", "--json"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let job: Value = serde_json::from_slice(&output.stdout).unwrap();
    let id = job["id"].as_str().unwrap();
    // With Redis the job is also copied to this machine's files (a Redis outage or data
    // loss keeps it); without that copy, another process (a restarted service, another
    // machine) reads the same job from Redis.
    let copy = sandbox.path(&format!("data/jobs/{id}.json"));
    assert!(copy.exists(), "this machine keeps a copy");
    std::fs::remove_file(&copy).unwrap();
    let status = run(&["purge", "status", id, "--json"]);
    assert_eq!(status.status.code(), Some(0), "{}", stderr(&status));
    let again: Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(again["id"], id);
    assert_eq!(again["status"], "done");
    assert_eq!(
        again["plan"]["patterns"],
        serde_json::json!(["/index.html", "/about/"])
    );
    let mut redis = common::redis::raw_connection(common::redis::SHARED_REDIS);
    let key = format!("{prefix}:global:job:{id}");
    let ttl: i64 = redis::cmd("TTL").arg(&key).query(&mut redis).unwrap();
    assert!(ttl > 6 * 24 * 3600, "jobs expire after a week, ttl {ttl}");
    let _: () = redis::cmd("DEL").arg(&key).query(&mut redis).unwrap();
}

#[test]
fn deploys_with_redis_record_savings_that_stats_prints() {
    let sandbox = Sandbox::new();
    let prefix = common::redis::unique_prefix("stats");
    let run = |args: &[&str]| with_redis(&sandbox, &prefix, args);
    let site = fixture("site");
    let deploy = run(&["deploy", site.to_str().unwrap(), "--json"]);
    assert_eq!(deploy.status.code(), Some(0), "{}", stderr(&deploy));
    let deployed: Value = serde_json::from_slice(&deploy.stdout).unwrap();
    // A no-op redeploy uploads nothing and changes no figure.
    let again = run(&["deploy", site.to_str().unwrap()]);
    assert_eq!(again.status.code(), Some(0), "{}", stderr(&again));

    let output = run(&["stats", "--json"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    let deploys = &report["sites"][0]["deploys"];
    assert_eq!(report["sites"][0]["site"], "default");
    assert_eq!(deploys["all_time"]["deploys"], 1, "{deploys}");
    assert_eq!(deploys["in_range"]["deploys"], 1);
    assert_eq!(
        deploys["current"]["total"]["files"],
        deployed["build"]["files"]
    );
    assert_eq!(
        deploys["current"]["total"]["original_bytes"],
        deployed["build"]["bytes_in"]
    );
    let css = &deploys["current"]["by_content_type"]["text/css"];
    let (original, minified, best) = (
        css["original_bytes"].as_u64().unwrap(),
        css["minified_bytes"].as_u64().unwrap(),
        css["best_bytes"].as_u64().unwrap(),
    );
    assert!(original > minified && minified > best, "{css}");
    assert!(css["variant_bytes"]["br"].as_u64().unwrap() > 0, "{css}");

    let text = stdout(&run(&["stats", "--site", "default"]));
    assert!(text.contains("site default"), "{text}");
    assert!(text.contains("deploys: 1 in range, 1 in all"), "{text}");
    assert!(text.contains("text/css"), "{text}");
    let bad = run(&["stats", "--from", "yesterday"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        stderr(&bad).contains("`from` is `yesterday`"),
        "{}",
        stderr(&bad)
    );
    common::redis::delete_prefix(&prefix);
}
