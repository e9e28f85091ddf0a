//! The purge engine: from what users type to the fewest provider calls.
//!
//! 1. [`pattern`]: exact paths, prefixes, globs, tags and everything, parsed with errors
//!    that say where and why.
//! 2. [`expand`]: patterns against the site's manifest give the concrete deployed paths.
//! 3. [`reduce`]: those paths become the fewest purge items the provider's
//!    capabilities allow (directory wildcards or prefixes within a collateral budget),
//!    then requests within its per-call limits.
//! 4. [`plan`]: all of it plus the cost (calls, CloudFront billed paths) and whether the
//!    user must confirm; `--dry-run` prints it.
//! 5. [`job`]: a purge runs as a job with per-batch results, stored where
//!    `edgeship purge status` and the API read it.

pub mod job;
pub mod pattern;
pub mod plan;
pub mod reduce;

use std::collections::BTreeSet;

use crate::pipeline::manifest::Manifest;
pub use pattern::{Pattern, PatternError};

/// Parses every pattern; the first bad one is the error.
pub fn parse_all<S: AsRef<str>>(inputs: &[S]) -> Result<Vec<Pattern>, PatternError> {
    inputs
        .iter()
        .map(|input| Pattern::parse(input.as_ref()))
        .collect()
}

/// The deployed paths (no leading `/`) that any of `patterns` matches, sorted.
pub fn expand(patterns: &[Pattern], manifest: &Manifest) -> BTreeSet<String> {
    manifest
        .assets
        .iter()
        .filter(|(path, entry)| patterns.iter().any(|p| p.matches(path, &entry.tags)))
        .map(|(path, _)| path.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::hash::ContentHash;
    use crate::pipeline::manifest::ManifestEntry;
    use proptest::prelude::*;

    fn manifest(paths: &[(&str, &[&str])]) -> Manifest {
        let mut manifest = Manifest::default();
        for (path, tags) in paths {
            manifest.assets.insert(
                path.to_string(),
                ManifestEntry {
                    hash: ContentHash::of(path.as_bytes()),
                    size: 1,
                    source_size: 1,
                    content_type: "text/plain".into(),
                    cache_control: "max-age=0".into(),
                    headers: Default::default(),
                    tags: tags.iter().map(|t| t.to_string()).collect(),
                    variants: Default::default(),
                },
            );
        }
        manifest
    }

    #[test]
    fn patterns_expand_to_the_deployed_paths_they_match() {
        let site = manifest(&[
            ("index.html", &[]),
            ("assets/a.css", &[]),
            ("assets/deep/b.css", &[]),
            ("assets/app.js", &["app"]),
            ("blog/post/index.html", &[]),
        ]);
        let patterns = parse_all(&["/assets/**/*.css", "tag:app", "/blog/"]).unwrap();
        let paths: Vec<String> = expand(&patterns, &site).into_iter().collect();
        assert_eq!(
            paths,
            [
                "assets/a.css",
                "assets/app.js",
                "assets/deep/b.css",
                "blog/post/index.html"
            ]
        );
        assert_eq!(expand(&parse_all(&["/*"]).unwrap(), &site).len(), 5);
        assert!(parse_all(&["/ok", "bad"]).is_err());
    }

    proptest! {
        #[test]
        fn expansion_is_exactly_the_matching_subset_of_the_manifest(
            paths in prop::collection::btree_set("[a-c]{1,2}(/[a-c]{1,2}){0,2}\\.(css|js)", 1..40),
            glob in prop::sample::select(vec!["/a/**", "/**/*.css", "/*.js", "/b/*/*.js", "/{a,c}/**/*.css", "/a?/**"]),
        ) {
            let entries: Vec<(&str, &[&str])> = paths.iter().map(|p| (p.as_str(), &[][..])).collect();
            let site = manifest(&entries);
            let pattern = Pattern::parse(glob).unwrap();
            let expanded = expand(std::slice::from_ref(&pattern), &site);
            for path in &paths {
                prop_assert_eq!(expanded.contains(path), pattern.matches(path, &[]));
            }
            prop_assert!(expanded.iter().all(|p| paths.contains(p)), "nothing outside the manifest");
        }
    }
}
