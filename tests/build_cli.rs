//! `edgeship build` through the real binary: determinism, the processing cache, the
//! minifier guard, refusals and exit codes.

mod common;

use common::{Sandbox, fixture, read_tree, stderr, stdout};
use serde_json::Value;

fn build_json(sandbox: &Sandbox, input: &std::path::Path, out: &str) -> Value {
    let output = sandbox.run(&["build", input.to_str().unwrap(), "--out", out, "--json"]);
    assert_eq!(output.status.code(), Some(0), "stderr: {}", stderr(&output));
    serde_json::from_slice(&output.stdout).unwrap()
}

#[test]
fn building_the_fixtures_twice_is_byte_identical_and_the_second_run_is_all_cache_hits() {
    let sandbox = Sandbox::new();
    let site = fixture("site");
    let first = build_json(&sandbox, &site, "out1");
    let second = build_json(&sandbox, &site, "out2");

    let files = first["files"].as_u64().unwrap();
    assert!(
        files >= 15,
        "the fixture site has at least 15 files, got {files}"
    );
    assert_eq!(first["cache_hits"], 0);
    assert!(first["compressions"].as_u64().unwrap() > 0);
    assert!(first["minified"].as_u64().unwrap() >= 4, "{first}");

    assert_eq!(second["files"], files);
    assert_eq!(
        second["cache_hits"].as_u64(),
        Some(files),
        "every file is a cache hit"
    );
    assert_eq!(second["cache_misses"], 0);
    assert_eq!(
        second["compressions"], 0,
        "a cached rebuild compresses nothing"
    );

    let one = read_tree(&sandbox.path("out1"));
    let two = read_tree(&sandbox.path("out2"));
    assert_eq!(
        one.keys().collect::<Vec<_>>(),
        two.keys().collect::<Vec<_>>()
    );
    for (path, bytes) in &one {
        assert!(bytes == &two[path], "{path} differs between builds");
    }
    assert!(one.contains_key(".edgeship/manifest.json"));
    assert!(
        one.contains_key("index.html.br")
            && one.contains_key("index.html.gz")
            && one.contains_key("index.html.zst")
    );
    assert!(
        !one.keys().any(|p| p.starts_with("images/hero.png.")),
        "PNG gets no variants"
    );
}

#[test]
fn a_build_without_cache_gives_the_same_bytes_as_a_cached_one() {
    let sandbox = Sandbox::new();
    let site = fixture("site");
    build_json(&sandbox, &site, "cached");
    let output = sandbox.run(&[
        "build",
        site.to_str().unwrap(),
        "--out",
        "fresh",
        "--no-cache",
        "--json",
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["cache_hits"], 0);
    assert_eq!(
        read_tree(&sandbox.path("cached")),
        read_tree(&sandbox.path("fresh"))
    );
}

#[test]
fn broken_js_and_css_ship_unchanged_with_a_warning_naming_the_file() {
    let sandbox = Sandbox::new();
    let edge = fixture("edge-cases");
    let output = sandbox.run(&["build", edge.to_str().unwrap(), "--out", "out"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let err = stderr(&output);
    for name in ["broken.js", "broken.css"] {
        let original = std::fs::read(edge.join(name)).unwrap();
        let shipped = std::fs::read(sandbox.path("out").join(name)).unwrap();
        assert_eq!(original, shipped, "{name} ships byte for byte");
        assert!(
            err.lines().any(|l| l.starts_with(&format!(
                "warning: {name}: not minified, shipped unchanged: syntax error"
            ))),
            "no warning for {name} in:\n{err}"
        );
    }
    assert!(
        stdout(&output).contains("cache: 0 hits"),
        "{}",
        stdout(&output)
    );
}

#[test]
fn a_non_empty_output_that_edgeship_did_not_write_is_refused_with_exit_3() {
    let sandbox = Sandbox::new();
    std::fs::create_dir_all(sandbox.path("precious")).unwrap();
    std::fs::write(sandbox.path("precious/keep.txt"), "mine").unwrap();
    let site = fixture("site");
    let output = sandbox.run(&["build", site.to_str().unwrap(), "--out", "precious"]);
    assert_eq!(output.status.code(), Some(3));
    assert!(
        stderr(&output).contains("is not empty"),
        "{}",
        stderr(&output)
    );
    assert_eq!(
        std::fs::read_dir(sandbox.path("precious")).unwrap().count(),
        1,
        "nothing written"
    );

    let nested = site.join("out");
    let output = sandbox.run(&[
        "build",
        site.to_str().unwrap(),
        "--out",
        nested.to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(3));
    assert!(stderr(&output).contains("overlap"), "{}", stderr(&output));
    assert!(!nested.exists());
}

#[test]
fn files_removed_from_the_input_are_removed_from_the_output_on_rebuild() {
    let sandbox = Sandbox::new();
    let input = sandbox.path("in");
    std::fs::create_dir_all(&input).unwrap();
    std::fs::write(input.join("keep.html"), "<p>keep</p>".repeat(200)).unwrap();
    std::fs::write(input.join("gone.html"), "<p>gone</p>".repeat(200)).unwrap();
    build_json(&sandbox, &input, "out");
    assert!(sandbox.path("out/gone.html.br").exists());
    std::fs::remove_file(input.join("gone.html")).unwrap();
    build_json(&sandbox, &input, "out");
    let tree = read_tree(&sandbox.path("out"));
    assert!(
        !tree.keys().any(|p| p.starts_with("gone.html")),
        "{:?}",
        tree.keys()
    );
    assert!(tree.contains_key("keep.html.br"));
}

#[test]
fn a_missing_input_is_a_usage_error() {
    let sandbox = Sandbox::new();
    let output = sandbox.run(&["build", "no-such-dir", "--out", "out"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("no-such-dir is not a directory"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn stats_without_redis_says_where_analytics_are_and_help_describes_every_command() {
    let sandbox = Sandbox::new();
    let output = sandbox.run(&["stats"]);
    assert_eq!(output.status.code(), Some(2));
    let err = stderr(&output);
    assert!(
        err.contains("no Redis is configured (cache.redis_url)"),
        "{err}"
    );
    assert!(err.contains("/v1/analytics"), "{err}");
    let help = stdout(&sandbox.run(&["--help"]));
    for command in [
        "build", "deploy", "serve", "purge", "stats", "keys", "config",
    ] {
        assert!(
            help.contains(&format!("  {command} ")),
            "--help lacks {command}:\n{help}"
        );
    }
}

#[test]
fn config_check_prints_the_resolved_config_and_rejects_unknown_keys() {
    let sandbox = Sandbox::new();
    std::fs::write(
        sandbox.path("edgeship.toml"),
        "[pipeline]\nzstd_level = 7\n",
    )
    .unwrap();
    let output = sandbox
        .command()
        .args(["config", "check"])
        .env("EDGESHIP_PIPELINE__GZIP_LEVEL", "6")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let text = stdout(&output);
    let resolved: toml::Value = toml::from_str(&text).unwrap();
    assert_eq!(
        resolved["pipeline"]["zstd_level"].as_integer(),
        Some(7),
        "file layer"
    );
    assert_eq!(
        resolved["pipeline"]["gzip_level"].as_integer(),
        Some(6),
        "env layer"
    );
    assert_eq!(
        resolved["server"]["bind"].as_str(),
        Some("127.0.0.1:8080"),
        "default layer"
    );

    std::fs::write(
        sandbox.path("edgeship.toml"),
        "[server]\nbnid = \"0.0.0.0:1\"\n",
    )
    .unwrap();
    let output = sandbox.run(&["config", "check"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("bnid"), "{}", stderr(&output));
}

#[test]
fn with_only_a_non_default_site_build_and_deploy_use_it_and_several_sites_need_site() {
    let sandbox = Sandbox::new();
    std::fs::write(sandbox.path("edgeship.toml"), "[sites.www]\n").unwrap();
    let input = common::fixture("site");
    let built = sandbox.run(&["build", input.to_str().unwrap(), "--out", "out"]);
    assert_eq!(built.status.code(), Some(0), "{}", stderr(&built));
    let deployed = sandbox.run(&["deploy", input.to_str().unwrap()]);
    assert_eq!(deployed.status.code(), Some(0), "{}", stderr(&deployed));
    assert!(
        stdout(&deployed).contains("to site `www`"),
        "{}",
        stdout(&deployed)
    );
    assert!(sandbox.path("data/sites/www/index.html").is_file());

    std::fs::write(sandbox.path("edgeship.toml"), "[sites.www]\n[sites.docs]\n").unwrap();
    let ambiguous = sandbox.run(&["deploy", input.to_str().unwrap()]);
    assert_eq!(ambiguous.status.code(), Some(2));
    assert!(
        stderr(&ambiguous).contains("name one with --site (docs, www)"),
        "{}",
        stderr(&ambiguous)
    );
}

#[test]
fn keys_need_a_name_and_a_positive_lifetime() {
    let sandbox = Sandbox::new();
    for args in [
        &["keys", "create", "--name", "", "--scopes", "read"][..],
        &["keys", "create", "--name", "  ", "--scopes", "read"][..],
        &[
            "keys",
            "create",
            "--name",
            "ci",
            "--scopes",
            "read",
            "--expires-in-days",
            "0",
        ][..],
    ] {
        let output = sandbox.run(args);
        assert_eq!(
            output.status.code(),
            Some(2),
            "{args:?}: {}",
            stderr(&output)
        );
    }
    let created = sandbox.run(&["keys", "create", "--name", "ci", "--scopes", "read"]);
    assert_eq!(created.status.code(), Some(0), "{}", stderr(&created));
}

#[test]
fn serve_on_an_address_in_use_exits_2_with_the_address() {
    let sandbox = Sandbox::new();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let output = sandbox.run(&["serve", "--bind", &addr]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(stderr(&output).contains(&addr), "{}", stderr(&output));
}

#[test]
fn config_check_refuses_what_serve_would_refuse() {
    let sandbox = Sandbox::new();
    for (toml, key) in [
        ("[server]\norigin_site = \"www\"\n", "server.origin_site"),
        ("[server]\nmax_json_bytes = 0\n", "server.max_json_bytes"),
        ("[sites.\"../../x\"]\n", "sites."),
    ] {
        std::fs::write(sandbox.path("edgeship.toml"), toml).unwrap();
        let output = sandbox.run(&["config", "check"]);
        assert_eq!(output.status.code(), Some(2), "{toml}");
        assert!(stderr(&output).contains(key), "{toml}: {}", stderr(&output));
    }
}
