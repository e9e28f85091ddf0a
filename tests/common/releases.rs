//! Two releases of the fixture site, for the dictionary and edge-rule tests.

/// The fixture site's bundle.
pub const OLD_BUNDLE: &str = "assets/app.3f9c2a1b.js";
/// The bundle's name in the second release.
pub const NEW_BUNDLE: &str = "assets/app.9d8e7f6a.js";

/// Two releases of the fixture site: v1 with its bundle marking the page `v1`; v2 with
/// the bundle renamed to a new fingerprint, marking the page `v2`, and one feature
/// changed — the rest of the site as it was.
pub fn two_releases() -> (tempfile::TempDir, tempfile::TempDir) {
    let original = std::fs::read_to_string(super::fixture("site").join(OLD_BUNDLE)).unwrap();
    let v1 = copy_of_fixtures();
    std::fs::write(
        v1.path().join(OLD_BUNDLE),
        format!("document.documentElement.dataset.release = \"v1\";\n{original}"),
    )
    .unwrap();
    let v2 = copy_of_fixtures();
    std::fs::remove_file(v2.path().join(OLD_BUNDLE)).unwrap();
    let changed = original.replace("debounce(", "debounce( /* v2 */");
    std::fs::write(
        v2.path().join(NEW_BUNDLE),
        format!(
            "document.documentElement.dataset.release = \"v2\";\n{changed}\nexport const releasedAt = \"2026-12-03\";\n"
        ),
    )
    .unwrap();
    for page in [
        "index.html",
        "about/index.html",
        "blog/index.html",
        "blog/hello-world/index.html",
    ] {
        let path = v2.path().join(page);
        let html = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, html.replace("app.3f9c2a1b.js", "app.9d8e7f6a.js")).unwrap();
    }
    (v1, v2)
}

/// A copy of the fixture site in a temporary directory.
pub fn copy_of_fixtures() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    super::copy_tree(&super::fixture("site"), dir.path());
    dir
}
