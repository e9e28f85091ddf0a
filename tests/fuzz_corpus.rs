//! Replays every committed fuzz input — the seed corpora under `fuzz/corpus/<target>/`
//! and the crash reproducers under `fuzz/regressions/<target>/` — through the same
//! checks the fuzz targets run (`fuzz/src/lib.rs`, compiled here as a module), without
//! sanitizers or a fuzz build. `scripts/fuzz` runs the fuzzers themselves.

#[path = "../fuzz/src/lib.rs"]
mod fuzz_checks;

use std::path::{Path, PathBuf};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// The files of `dir/<target>/` for every target, sorted; a directory not named after a
/// target fails the test (a typo would otherwise replay nothing).
fn inputs(dir: &Path) -> Vec<(String, PathBuf)> {
    let mut found = Vec::new();
    let Ok(targets) = std::fs::read_dir(dir) else {
        return found;
    };
    for target in targets {
        let target = target.unwrap();
        let name = target.file_name().to_string_lossy().into_owned();
        assert!(
            fuzz_checks::TARGETS.contains(&name.as_str()),
            "{} is not named after a fuzz target ({:?})",
            target.path().display(),
            fuzz_checks::TARGETS
        );
        for file in std::fs::read_dir(target.path()).unwrap() {
            found.push((name.clone(), file.unwrap().path()));
        }
    }
    found.sort();
    found
}

fn replay(dir: &str) -> usize {
    let inputs = inputs(&fuzz_dir().join(dir));
    for (target, path) in &inputs {
        let data = std::fs::read(path).unwrap();
        eprintln!("{target}: {}", path.display());
        assert!(fuzz_checks::check(target, &data));
    }
    inputs.len()
}

#[test]
fn every_seed_corpus_passes_its_fuzz_checks() {
    let replayed = replay("corpus");
    for target in fuzz_checks::TARGETS {
        let dir = fuzz_dir().join("corpus").join(target);
        let count = std::fs::read_dir(&dir)
            .unwrap_or_else(|err| panic!("{}: {err}", dir.display()))
            .count();
        assert!(count > 0, "{target} has a seed corpus");
    }
    assert!(replayed >= fuzz_checks::TARGETS.len());
}

#[test]
fn every_fuzz_regression_passes_its_fuzz_checks() {
    replay("regressions");
}
