//! Minified JavaScript must still work: the fixture site's JS and real libraries from npm
//! are minified by edgeship and then exercised in node with real calls (not just a parse).
//!
//! The libraries are installed (not committed) by `scripts/setup-js-corpus`, which
//! `scripts/test` runs; its directory comes in `EDGESHIP_JS_CORPUS`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use edgeship::pipeline::classify::AssetKind;
use edgeship::pipeline::minify::{MinifyOutcome, MinifySettings, minify};
use serde::Deserialize;

fn node(args: &[&std::ffi::OsStr]) -> std::process::Output {
    Command::new("node")
        .args(args)
        .current_dir(common::repo())
        .output()
        .expect("node is required for the JS smoke tests (scripts/test installs it)")
}

fn assert_node_ok(output: &std::process::Output, what: &str) {
    assert!(
        output.status.success(),
        "{what} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn minified_fixture_js_passes_its_node_smoke_test() {
    let script = common::repo().join("tests/js/fixture-smoke.mjs");
    let site = common::fixture("site");
    // The harness must pass on the originals, or it proves nothing about the minified copy.
    assert_node_ok(
        &node(&[script.as_os_str(), site.as_os_str()]),
        "smoke test on the original fixtures",
    );

    let sandbox = common::Sandbox::new();
    let output = sandbox.run(&["build", site.to_str().unwrap(), "--out", "out", "--json"]);
    assert_eq!(output.status.code(), Some(0), "{}", common::stderr(&output));
    let out = sandbox.path("out");
    for js in [
        "assets/app.3f9c2a1b.js",
        "assets/util.8d7e6f50.js",
        "assets/legacy.js",
    ] {
        let before = std::fs::read(site.join(js)).unwrap().len();
        let after = std::fs::read(out.join(js)).unwrap().len();
        assert!(after < before, "{js} was minified ({before} -> {after})");
    }
    assert_node_ok(
        &node(&[script.as_os_str(), out.as_os_str()]),
        "smoke test on the minified build",
    );
}

#[derive(Debug, Deserialize)]
struct Library {
    name: String,
    file: String,
    mode: String,
}

fn corpus_dir() -> PathBuf {
    let dir = std::env::var_os("EDGESHIP_JS_CORPUS")
        .map(PathBuf::from)
        .or_else(|| dirs::home_dir().map(|h| h.join(".cache/edgeship-test/js-corpus")))
        .unwrap();
    assert!(
        dir.join("node_modules").is_dir(),
        "the JS library corpus is not installed at {}: run scripts/setup-js-corpus (scripts/test does)",
        dir.display()
    );
    dir
}

#[test]
fn real_libraries_still_work_after_minification() {
    let corpus = corpus_dir();
    let libraries: Vec<Library> = serde_json::from_slice(
        &std::fs::read(common::repo().join("tests/js/libraries.json")).unwrap(),
    )
    .unwrap();
    assert!(
        libraries.len() >= 5,
        "at least five real libraries are checked"
    );
    let settings = MinifySettings {
        js: true,
        css: true,
        json: true,
        css_targets: Vec::new(),
    };
    let tmp = tempfile::tempdir().unwrap();
    let smoke = common::repo().join("tests/js/library-smoke.cjs");
    let mut sizes = serde_json::Map::new();
    for lib in &libraries {
        let source_path = corpus.join(&lib.file);
        let source = std::fs::read(&source_path).unwrap();
        let file_name = Path::new(&lib.file).file_name().unwrap().to_str().unwrap();
        let (minified, outcome) = minify(AssetKind::Js, file_name, &source, &settings, false);
        let MinifyOutcome::Minified { before, after } = outcome else {
            panic!("{} ({}) was not minified: {outcome:?}", lib.name, lib.file);
        };
        let minified = minified.unwrap();
        if lib.mode == "module" {
            assert!(
                String::from_utf8_lossy(&minified).contains("export"),
                "{}: module syntax kept",
                lib.name
            );
        }
        let out = tmp.path().join(format!("{}-{file_name}", lib.name));
        std::fs::write(&out, &minified).unwrap();
        let output = node(&[
            smoke.as_os_str(),
            lib.name.as_ref(),
            out.as_os_str(),
            "--corpus".as_ref(),
            corpus.as_os_str(),
        ]);
        assert_node_ok(
            &output,
            &format!("{} smoke test on the minified {}", lib.name, lib.file),
        );
        println!("{:<14} {:>9} -> {:>9} bytes", lib.name, before, after);
        sizes.insert(
            lib.name.clone(),
            serde_json::json!({ "file": lib.file, "original": before, "edgeship": after }),
        );
        // scripts/minifier-report collects the outputs for docs/minifiers.md.
        if let Some(dir) = std::env::var_os("EDGESHIP_MINIFIER_REPORT") {
            std::fs::write(
                Path::new(&dir).join(format!("{}.edgeship.js", lib.name)),
                &minified,
            )
            .unwrap();
        }
    }
    if let Some(dir) = std::env::var_os("EDGESHIP_MINIFIER_REPORT") {
        std::fs::write(
            Path::new(&dir).join("sizes.json"),
            serde_json::to_vec_pretty(&sizes).unwrap(),
        )
        .unwrap();
    }
}
