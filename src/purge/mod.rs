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

pub mod config;
pub mod job;
pub mod pattern;
pub mod plan;
pub mod reduce;

use std::collections::BTreeSet;
use std::sync::Arc;

use crate::jobs::JobStore;
use crate::pipeline::manifest::Manifest;
use crate::site::{Site, Sites};
pub use pattern::{Pattern, PatternError};

/// The most patterns one purge may name: planning matches every pattern against every
/// deployed path, so the work is bounded by this times the site's size.
pub const MAX_PATTERNS: usize = 1_000;

/// Why a purge cannot be prepared.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PurgeError {
    /// No patterns were given.
    #[error("no purge patterns given")]
    NoPatterns,
    /// More patterns than [`MAX_PATTERNS`].
    #[error(
        "{given} patterns in one purge; at most {MAX_PATTERNS} are allowed (use prefixes, globs or tags to name many paths at once)"
    )]
    TooManyPatterns {
        /// How many were given.
        given: usize,
    },
    /// A pattern does not parse.
    #[error(transparent)]
    Pattern(#[from] PatternError),
    /// The site is unknown or misconfigured.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The site's manifest cannot be read (provider down, unreadable manifest).
    #[error("reading the site's manifest: {0}")]
    Manifest(#[from] crate::site::ManifestError),
    /// The planning task failed.
    #[error("planning the purge failed: {0}")]
    Planning(#[from] tokio::task::JoinError),
}

/// A purge ready to run (or to show, for a dry run).
#[derive(Debug)]
pub struct Prepared {
    /// The site, with its provider stack.
    pub site: Arc<Site>,
    /// What will be sent and what it costs.
    pub plan: plan::PurgePlan,
    /// Where its job is kept.
    pub store: JobStore,
    /// The site has no manifest, so only exact paths (and prefixes or tags the provider
    /// takes as such) can be purged.
    pub no_manifest: bool,
}

impl Prepared {
    /// The site's provider in its retry and breaker stack.
    pub fn provider(&self) -> &edgeship_providers::SharedProvider {
        self.site.provider()
    }

    /// A job for this purge, started by `source` (`cli`, `api`).
    pub fn job(&self, source: &str) -> job::PurgeJob {
        job::PurgeJob::new(
            self.site.name(),
            &self.provider().to_string(),
            source,
            self.plan.clone(),
        )
    }
}

/// Parses `patterns`, reads the site's manifest and plans the purge with the configured
/// budget and threshold (`confirmed` lifts the confirmation requirement). The cost
/// includes the billed paths already used this month, when the job store counts them.
/// Matching runs off the async workers: it is patterns × deployed paths of CPU work.
pub async fn prepare(
    sites: &Sites,
    site: &str,
    patterns: &[String],
    confirmed: bool,
) -> Result<Prepared, PurgeError> {
    if patterns.is_empty() {
        return Err(PurgeError::NoPatterns);
    }
    if patterns.len() > MAX_PATTERNS {
        return Err(PurgeError::TooManyPatterns {
            given: patterns.len(),
        });
    }
    let parsed = patterns
        .iter()
        .map(|input| Pattern::parse(input).map(|p| (input.clone(), p)))
        .collect::<Result<Vec<_>, _>>()?;
    let site = sites.get(site)?;
    let manifest = site.manifest().await?;
    let no_manifest = manifest.is_none();
    let manifest = manifest.unwrap_or_default();
    let provider = site.provider();
    let caps = provider.capabilities();
    let config = &sites.config().purge;
    let options = plan::PlanOptions {
        max_collateral_share: config.max_collateral_share,
        confirm_share: config.confirm_share,
        confirmed,
    };
    let planning_caps = caps.clone();
    let mut plan = tokio::task::spawn_blocking(move || {
        plan::plan(&parsed, &manifest, &planning_caps, &options)
    })
    .await?;
    let store = sites.jobs().clone();
    let used = job::billed_this_month(&store, &provider.to_string()).await;
    plan.cost = plan::PurgeCost::estimate(&plan.requests, &caps, used);
    Ok(Prepared {
        site,
        plan,
        store,
        no_manifest,
    })
}

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
pub(crate) mod tests {
    use super::*;
    use crate::pipeline::hash::ContentHash;
    use crate::pipeline::manifest::ManifestEntry;
    use proptest::prelude::*;

    /// A manifest of one-byte text assets with the given tags.
    pub(crate) fn manifest(paths: &[(&str, &[&str])]) -> Manifest {
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
                    dictionary: None,
                    deltas: Vec::new(),
                    single: None,
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
