//! The pipeline through the library API: every variant decodes to the identity bytes,
//! large files stream, and no input makes processing panic.

mod common;

use std::path::Path;

use edgeship::config::PipelineConfig;
use edgeship::pipeline::build::{NoProgress, build, process_dir};
use edgeship::pipeline::compress::{Encoding, decode};
use edgeship::pipeline::manifest::{MANIFEST_PATH, Manifest};
use edgeship::pipeline::rules::RuleSet;
use edgeship::pipeline::{Pipeline, SourceFile};
use proptest::prelude::*;

fn pipeline(config: &PipelineConfig, cache: &Path) -> Pipeline {
    Pipeline::new(config, RuleSet::new(&[]).unwrap(), cache).unwrap()
}

fn assert_variants_decode(out: &Path) -> usize {
    let manifest = Manifest::from_json(&std::fs::read(out.join(MANIFEST_PATH)).unwrap()).unwrap();
    let mut checked = 0;
    for (path, entry) in &manifest.assets {
        let identity = std::fs::read(out.join(path)).unwrap();
        assert_eq!(identity.len() as u64, entry.size, "{path}");
        assert_eq!(
            blake3::hash(&identity).to_hex().as_str(),
            entry.hash.as_str(),
            "{path}"
        );
        for (encoding, size) in &entry.variants {
            let file = format!("{path}{}", encoding.suffix());
            let compressed = std::fs::read(out.join(&file)).unwrap();
            assert_eq!(compressed.len() as u64, *size, "{file}");
            let mut plain = Vec::new();
            decode(*encoding, &mut &compressed[..], &mut plain).unwrap();
            assert!(plain == identity, "{file} does not decode to {path}");
            checked += 1;
        }
    }
    checked
}

#[test]
fn every_variant_of_every_fixture_decodes_to_the_identity_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let p = pipeline(&PipelineConfig::default(), &tmp.path().join("cache"));
    for set in ["site", "edge-cases"] {
        let out = tmp.path().join(set);
        let report = build(&p, &common::fixture(set), &out, false, &NoProgress).unwrap();
        assert!(report.failures.is_empty(), "{:?}", report.failures);
        let checked = assert_variants_decode(&out);
        let expected: u64 = report.encodings.values().map(|t| t.variants).sum();
        assert_eq!(checked as u64, expected, "{set}");
        assert!(checked > 10, "{set}: only {checked} variants");
    }
}

#[test]
fn large_files_stream_through_and_still_round_trip() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in");
    std::fs::create_dir_all(&input).unwrap();
    // 6 MiB of compressible text, above the (lowered) streaming threshold.
    let line = "const value = computeSomething(index, 'a fairly repetitive line of text');\n";
    let big = line.repeat(6 * 1024 * 1024 / line.len());
    std::fs::write(input.join("big.js"), &big).unwrap();
    let config = PipelineConfig {
        stream_threshold_bytes: 1024 * 1024,
        ..PipelineConfig::default()
    };
    let p = pipeline(&config, &tmp.path().join("cache"));
    let out = tmp.path().join("out");
    let report = build(&p, &input, &out, false, &NoProgress).unwrap();
    assert_eq!(report.files, 1);
    assert_eq!(report.minified, 0, "streamed files are not minified");
    assert_eq!(std::fs::read(out.join("big.js")).unwrap(), big.as_bytes());
    assert_eq!(assert_variants_decode(&out), 3);
}

#[test]
fn a_rule_can_turn_encodings_and_minification_off_per_path() {
    let tmp = tempfile::tempdir().unwrap();
    let rules: Vec<edgeship::pipeline::rules::RuleConfig> = toml::from_str::<toml::Value>(
        "[[r]]\npattern = \"/assets/**\"\nencodings = [\"br\"]\nminify = false\ntags = [\"static\"]\n",
    )
    .unwrap()["r"]
        .clone()
        .try_into()
        .unwrap();
    let p = Pipeline::new(
        &PipelineConfig::default(),
        RuleSet::new(&rules).unwrap(),
        &tmp.path().join("c"),
    )
    .unwrap();
    let (assets, _) = process_dir(&p, &common::fixture("site"), &NoProgress).unwrap();
    let app = assets
        .iter()
        .find(|a| a.path == "assets/app.3f9c2a1b.js")
        .unwrap();
    assert_eq!(
        app.variants.keys().copied().collect::<Vec<_>>(),
        vec![Encoding::Br]
    );
    assert_eq!(app.size, app.source_size, "not minified");
    assert_eq!(app.rule.tags, vec!["static".to_string()]);
    let index = assets.iter().find(|a| a.path == "index.html").unwrap();
    assert_eq!(index.variants.len(), 3);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn no_input_makes_processing_fail_or_panic(
        bytes in prop::collection::vec(any::<u8>(), 0..4096),
        text in "[ -~\\n{}();\"'`/*]{0,2000}",
        ext in prop::sample::select(vec!["js", "mjs", "cjs", "css", "json", "map", "html", "svg", "txt", "woff2", ""]),
    ) {
        let tmp = tempfile::tempdir().unwrap();
        let p = pipeline(&PipelineConfig::default(), &tmp.path().join("cache"));
        for (i, content) in [bytes, text.into_bytes()].into_iter().enumerate() {
            let name = if ext.is_empty() { format!("f{i}") } else { format!("f{i}.{ext}") };
            let abs = tmp.path().join(&name);
            std::fs::write(&abs, &content).unwrap();
            let file = SourceFile { path: name, abs, size: content.len() as u64, stamp: Default::default() };
            let asset = p.process(&file).unwrap();
            let identity = std::fs::read(asset.identity_file()).unwrap();
            prop_assert!(identity.len() <= content.len());
            for encoding in asset.variants.keys() {
                let compressed = std::fs::read(asset.variant_file(*encoding).unwrap()).unwrap();
                let mut plain = Vec::new();
                decode(*encoding, &mut &compressed[..], &mut plain).unwrap();
                prop_assert_eq!(&plain, &identity);
            }
        }
    }
}

#[test]
fn identical_bytes_under_names_that_minify_differently_are_cached_apart() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in");
    std::fs::create_dir_all(&input).unwrap();
    let js = "function longFunctionName(argumentOne) {\n  return argumentOne + 1;\n}\nwindow.f = longFunctionName;\n";
    std::fs::write(input.join("a.js"), js).unwrap();
    std::fs::write(input.join("b.min.js"), js).unwrap();
    let p = pipeline(&PipelineConfig::default(), &tmp.path().join("cache"));
    let (assets, report) = process_dir(&p, &input, &NoProgress).unwrap();
    assert_eq!(report.minified, 1);
    let min = assets.iter().find(|a| a.path == "b.min.js").unwrap();
    assert_eq!(min.size, js.len() as u64, "*.min.js is not re-minified");
    let plain = assets.iter().find(|a| a.path == "a.js").unwrap();
    assert!(plain.size < js.len() as u64);
}

#[test]
fn a_file_rewritten_right_after_a_build_with_the_same_size_is_processed_again() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in");
    std::fs::create_dir_all(&input).unwrap();
    std::fs::write(input.join("a.txt"), "aaaa".repeat(100)).unwrap();
    let p = pipeline(&PipelineConfig::default(), &tmp.path().join("cache"));
    let (first, _) = process_dir(&p, &input, &NoProgress).unwrap();
    std::fs::write(input.join("a.txt"), "bbbb".repeat(100)).unwrap();
    let (second, _) = process_dir(&p, &input, &NoProgress).unwrap();
    assert_ne!(
        first[0].hash, second[0].hash,
        "the stat index must not hide a same-size change"
    );
    let (third, report) = process_dir(&p, &input, &NoProgress).unwrap();
    assert_eq!(third[0].hash, second[0].hash);
    assert_eq!(report.cache_hits, 1);
}
